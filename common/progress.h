/* progress.h - progress on stderr for long work: a redrawn bar on a terminal, a line every few
 * seconds otherwise (logs, CI). Never writes to stdout. */
#ifndef FL_PROGRESS_H
#define FL_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *what;
    int64_t total, done;
    double start, last;
    int tty, quiet;
} fl_progress;

void fl_progress_begin(fl_progress *p, const char *what, int64_t total, int quiet);
void fl_progress_update(fl_progress *p, int64_t done);
/* Ends the bar and prints `what: <summary>` (printf-style) as a final line. */
void fl_progress_end(fl_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
