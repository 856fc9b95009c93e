/* util.c - small helpers shared by the subcommands: errors, number parsing, clocks, memory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

int fl_cli_fail(const fl_err *err) {
    fprintf(stderr, "fedlung: %s\n", err->msg);
    return FL_EXIT_FAIL;
}

int fl_cli_usage(const char *usage) {
    fputs(usage, stderr);
    return FL_EXIT_USAGE;
}

int fl_parse_int(const char *value, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int fl_parse_float(const char *value, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = (float)v;
    return 0;
}

double fl_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

long long fl_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (long long)ru.ru_maxrss * 1024; /* Linux reports KiB */
}
