/* harness.c - failure counting and array comparison for the tests. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

int fl_test_failures;
int fl_test_checks;

void fl_test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fl_test_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int fl_test_close(double a, double b, double rtol, double atol) {
    if (isnan(a) || isnan(b)) return 0;
    return fabs(a - b) <= atol + rtol * fmax(fabs(a), fabs(b));
}

int fl_test_arrays_close(const char *what, const float *a, const float *b, size_t n, double rtol,
                         double floor_abs, const char *file, int line) {
    double worst = 0;
    size_t at = 0;
    fl_test_checks++;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(fabs((double)b[i]), floor_abs);
        if (isnan(d) || d > worst) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    if (worst > rtol) {
        fl_test_fail_at(file, line, "%s: max rel err %.3g > %.3g at [%zu]: %.9g vs %.9g", what,
                        worst, rtol, at, (double)a[at], (double)b[at]);
        return 0;
    }
    return 1;
}

int fl_test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, fl_test_checks, fl_test_failures);
    return fl_test_failures ? 1 : 0;
}
