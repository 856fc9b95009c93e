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
    /* VmHWM starts afresh at exec; getrusage's ru_maxrss carries a parent's high-water mark
     * across fork and exec (a bench started from a python that imported torch reported 374
     * instead of 280 MB). */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
    if (f) fclose(f);
    if (kib >= 0) return kib * 1024;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (long long)ru.ru_maxrss * 1024; /* Linux reports KiB */
}
