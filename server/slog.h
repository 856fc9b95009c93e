/* slog.h - what the server records: every event as one line on stderr for the operator and,
 * when an audit log is open, one hash-chained record (crypto/audit.h) for the privacy officer.
 * One place, so the two never disagree. Not the round journal (server/state.h). */
#ifndef FL_SLOG_H
#define FL_SLOG_H

#include <stdint.h>

#include "common/status.h"
#include "crypto/audit.h"

typedef struct {
    fl_audit *audit;  /* NULL: stderr only */
    int quiet;        /* 1: no stderr lines (tests) */
    fl_status failed; /* the first audit write that failed (the server must stop), or FL_OK */
    fl_err err;       /* its sentence */
} fl_slog;

/* Records an event: stderr "<time> fedlung server: <KIND> <actor> <text>" and, with an audit
 * log, the record {kind, round, actor, data} (data_json a one-line JSON object or NULL). kind
 * is lower case ("join", "update_accepted"); round -1 when none. Returns FL_OK or the audit
 * log's failure (also kept in log->failed). */
fl_status fl_slog_event(fl_slog *log, const char *kind, int64_t round, const char *actor,
                        const char *data_json, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Copies s into out (cap bytes) as the inside of a JSON string: quotes, backslashes and
 * control characters escaped; truncated at a character boundary to fit. */
void fl_slog_json_str(const char *s, char *out, size_t cap);

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t fl_now_ms(void);

#endif
