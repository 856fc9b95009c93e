/* progress.c - terminal bar or periodic lines on stderr. */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void fl_progress_begin(fl_progress *p, const char *what, int64_t total, int quiet) {
    p->what = what;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->start = p->last = seconds();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
}

void fl_progress_update(fl_progress *p, int64_t done) {
    p->done = done;
    if (p->quiet) return;
    double now = seconds();
    double gap = p->tty ? 0.1 : 10.0;
    if (now - p->last < gap && done < p->total) return;
    p->last = now;
    double frac = (double)done / (double)p->total;
    double eta = frac > 0 ? (now - p->start) * (1 - frac) / frac : 0;
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3.0f%%  eta %4.0f s ", p->what, bar, 100 * frac, eta);
    } else {
        fprintf(stderr, "%s: %lld/%lld (%.0f%%), eta %.0f s\n", p->what, (long long)done,
                (long long)p->total, 100 * frac, eta);
    }
    fflush(stderr);
}

void fl_progress_end(fl_progress *p, const char *fmt, ...) {
    if (p->quiet) return;
    if (p->tty) fputs("\r\033[K", stderr);
    fprintf(stderr, "%s: ", p->what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%.1f s)\n", seconds() - p->start);
}
