/* slog.c - the server's event records: a stderr line and an audit record per event. */
#include "slog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t fl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fl_slog_json_str(const char *s, char *out, size_t cap) {
    size_t o = 0;
    int cut = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\')
            n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20)
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        else {
            esc[0] = (char)c;
            n = 1;
        }
        if (o + n >= cap) {
            cut = 1;
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    if (cut) { /* never end in a split UTF-8 sequence: drop the last (possibly whole) one */
        while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80) o--;
        if (o > 0 && (unsigned char)out[o - 1] >= 0xc0) o--;
    }
    out[o] = 0;
}

fl_status fl_slog_event(fl_slog *log, const char *kind, int64_t round, const char *actor,
                        const char *data_json, const char *fmt, ...) {
    char text[FL_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!log->quiet) {
        int64_t ms = fl_now_ms();
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        char upper[40];
        size_t i = 0;
        for (; kind[i] && i < sizeof upper - 1; i++)
            upper[i] = kind[i] >= 'a' && kind[i] <= 'z' ? (char)(kind[i] - 32) : kind[i];
        upper[i] = 0;
        fprintf(stderr, "%s.%03dZ fedlung server: %s%s%s %s\n", when, (int)(ms % 1000), upper,
                actor && actor[0] ? " " : "", actor ? actor : "", text);
    }
    if (!log->audit || log->failed != FL_OK) return log->failed;
    fl_status s = fl_audit_append(log->audit, kind, round, actor && actor[0] ? actor : "server",
                                  data_json, &log->err);
    if (s != FL_OK) {
        log->failed = s;
        fprintf(stderr, "fedlung server: the audit log failed: %s\n", log->err.msg);
    }
    return s;
}
