/* util.c - small helpers shared by the subcommands: errors, number parsing, clocks, memory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int fl_cli_parse_device(const char *value, const char **out) {
    int ordinal;
    if (strcmp(value, "cpu") != 0 && strcmp(value, "cuda") != 0 &&
        (strncmp(value, "cuda:", 5) != 0 || value[5] < '0' || value[5] > '9' ||
         fl_parse_int(value + 5, 0, 1023, &ordinal) != 0))
        return -1;
    *out = value;
    return 0;
}

/* Indexed by fl_precision. */
static const char *const precision_names[] = {"fp32", "tf32", "bf16"};

int fl_cli_parse_precision(const char *value, fl_precision *out) {
    for (int p = 0; p < (int)(sizeof precision_names / sizeof *precision_names); p++)
        if (strcmp(value, precision_names[p]) == 0) {
            *out = (fl_precision)p;
            return 0;
        }
    return -1;
}

const char *fl_cli_precision_name(fl_precision p) {
    return (unsigned)p < sizeof precision_names / sizeof *precision_names ? precision_names[p]
                                                                          : "?";
}

int fl_cli_check_device(const char *cmd, const char *device, fl_precision p) {
    if (p == FL_PREC_FP32 || strncmp(device, "cuda", 4) == 0) return 0;
    fprintf(stderr, "fedlung %s: --precision %s needs --device cuda (the CPU computes in fp32)\n",
            cmd, fl_cli_precision_name(p));
    return -1;
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
