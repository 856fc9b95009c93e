/* harness.h - the tiny test harness: checks that print both sides and count failures; a test's
 * main returns fl_test_summary(), which is non-zero if anything failed. */
#ifndef FL_HARNESS_H
#define FL_HARNESS_H

#include <stddef.h>

extern int fl_test_failures;
extern int fl_test_checks;

void fl_test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Relative-or-absolute closeness: |a-b| <= tol * max(1, |a|, |b|)... see harness.c. */
int fl_test_close(double a, double b, double rtol, double atol);
/* Largest |a-b| / max(|b|, floor) over n elements; prints where it occurs when above tol. */
int fl_test_arrays_close(const char *what, const float *a, const float *b, size_t n, double rtol,
                         double floor_abs, const char *file, int line);
int fl_test_summary(const char *name);

#define CHECK(cond)                                                  \
    do {                                                             \
        fl_test_checks++;                                            \
        if (!(cond)) fl_test_fail_at(__FILE__, __LINE__, "%s", #cond); \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        fl_test_checks++;                                                                \
        if (a_ != b_)                                                                    \
            fl_test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)
#define CHECK_CLOSE(a, b, rtol, atol)                                                        \
    do {                                                                                     \
        double a_ = (a), b_ = (b);                                                           \
        fl_test_checks++;                                                                    \
        if (!fl_test_close(a_, b_, rtol, atol))                                              \
            fl_test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g", #a, #b, a_, b_);   \
    } while (0)
#define CHECK_ARRAYS(what, a, b, n, rtol, floor_abs) \
    fl_test_arrays_close(what, a, b, n, rtol, floor_abs, __FILE__, __LINE__)
#define CHECK_OK(expr, errp)                                                              \
    do {                                                                                  \
        fl_status s_ = (expr);                                                            \
        fl_test_checks++;                                                                 \
        if (s_ != FL_OK)                                                                  \
            fl_test_fail_at(__FILE__, __LINE__, "%s failed: %s: %s", #expr,               \
                            fl_status_str(s_), (errp)->msg);                              \
    } while (0)

#endif
