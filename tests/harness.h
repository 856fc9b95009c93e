/* harness.h - the tiny test harness: checks that print both sides and count failures (a test's
 * main returns fl_test_summary(), which is non-zero if anything failed), and the scratch folder
 * and file helpers the file-format tests share. */
#ifndef FL_HARNESS_H
#define FL_HARNESS_H

#include <stddef.h>
#include <string.h>

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

/* ---- a scratch folder per test run ---- */

/* The folder made by fl_test_mkdtemp ("" before). */
extern char fl_test_dir[256];
/* Makes "$TMPDIR/<prefix>XXXXXX" (/tmp when TMPDIR is unset or long) into fl_test_dir and
 * returns it, or prints why not and returns NULL. */
const char *fl_test_mkdtemp(const char *prefix);
/* fl_test_dir/name in a static buffer; four rotate, so one call can take several paths. */
const char *fl_test_path(const char *name);
/* Removes path and everything below it. Returns 0, or -1 after printing what could not go. */
int fl_test_rmtree(const char *path);
/* Entries of fl_test_dir named like a temporary file of common/atomic.h (there must never be
 * any left behind). */
int fl_test_count_tmp(void);

/* ---- files ---- */

/* Writes n bytes to path, replacing it; a failure fails the test (the message names path). */
void fl_test_write_file(const char *path, const void *data, size_t n);
/* The whole file as a malloc'd NUL-terminated string (*len bytes, len may be NULL), or NULL. */
char *fl_test_read_file(const char *path, size_t *len);
/* Whether anything (a file, a folder) exists at path. */
int fl_test_file_exists(const char *path);

#define CHECK(cond)                                                    \
    do {                                                               \
        fl_test_checks++;                                              \
        if (!(cond)) fl_test_fail_at(__FILE__, __LINE__, "%s", #cond); \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                 \
    do {                                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                                \
        fl_test_checks++;                                                                  \
        if (a_ != b_)                                                                      \
            fl_test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)
#define CHECK_CLOSE(a, b, rtol, atol)                                                     \
    do {                                                                                  \
        double a_ = (a), b_ = (b);                                                        \
        fl_test_checks++;                                                                 \
        if (!fl_test_close(a_, b_, rtol, atol))                                           \
            fl_test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g", #a, #b, a_, b_); \
    } while (0)
#define CHECK_ARRAYS(what, a, b, n, rtol, floor_abs) \
    fl_test_arrays_close(what, a, b, n, rtol, floor_abs, __FILE__, __LINE__)
#define CHECK_OK(expr, errp)                                                                   \
    do {                                                                                       \
        fl_status s_ = (expr);                                                                 \
        fl_test_checks++;                                                                      \
        if (s_ != FL_OK)                                                                       \
            fl_test_fail_at(__FILE__, __LINE__, "%s failed: %s: %s", #expr, fl_status_str(s_), \
                            (errp)->msg);                                                      \
    } while (0)
/* A call that must fail with a message naming path (err is an fl_err, not a pointer). */
#define CHECK_FAILS(expr, err, path)                                                               \
    do {                                                                                           \
        fl_status s_ = (expr);                                                                     \
        fl_test_checks++;                                                                          \
        if (s_ == FL_OK)                                                                           \
            fl_test_fail_at(__FILE__, __LINE__, "%s succeeded", #expr);                            \
        else if (!strstr((err).msg, (path)))                                                       \
            fl_test_fail_at(__FILE__, __LINE__, "%s: message does not name %s: %s", #expr, (path), \
                            (err).msg);                                                            \
    } while (0)
/* err's message must contain text. */
#define CHECK_MSG(err, text)                                                                    \
    do {                                                                                        \
        fl_test_checks++;                                                                       \
        if (!strstr((err).msg, (text)))                                                         \
            fl_test_fail_at(__FILE__, __LINE__, "message lacks \"%s\": %s", (text), (err).msg); \
    } while (0)

#endif
