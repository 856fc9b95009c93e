/* audit_verify.c - reading audit logs (see audit.h): verification from line 1 with a public key,
 * and a plain walk over the records for display. Neither writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit_impl.h"

static fl_status open_log(const char *path, FILE **f, fl_err *err) {
    *f = fopen(path, "r");
    if (*f) return FL_OK;
    return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                   strerror(errno));
}

fl_status fl_audit_verify(const char *path, const fl_sign_key *pub, fl_audit_report *report,
                          fl_err *err) {
    memset(report, 0, sizeof *report);
    FILE *f;
    fl_status s = open_log(path, &f, err);
    if (s != FL_OK) return s;
    fl__audit_chain c;
    fl__audit_chain_init(&c, pub);
    s = fl__audit_chain_scan(&c, f, path, err);
    fclose(f);
    if (s == FL_OK) {
        if (c.seq == 0 && !c.bad_line) {
            c.bad_line = 1;
            snprintf(c.problem, sizeof c.problem, "the log is empty");
        }
        report->records = c.seq;
        report->checkpoints = c.checkpoints;
        report->bad_line = c.bad_line;
        report->torn = c.torn;
        snprintf(report->problem, sizeof report->problem, "%s", c.problem);
        report->unsigned_records = c.seq - c.last_cp;
        report->last_checkpoint_seq = c.last_cp;
        if (c.last_cp)
            fl_hex_encode(c.last_cp_hash, sizeof c.last_cp_hash, report->last_checkpoint);
        if (c.seq) fl_hex_encode(c.head, sizeof c.head, report->head);
    }
    fl__audit_chain_destroy(&c);
    return s;
}

fl_status fl_audit_foreach(const char *path,
                           int (*fn)(const fl_audit_record *r, const char *problem, void *ctx),
                           void *ctx, fl_err *err) {
    FILE *f;
    fl_status s = open_log(path, &f, err);
    if (s != FL_OK) return s;
    char *line = NULL, why[128];
    size_t cap = 0;
    ssize_t n;
    int stop = 0;
    for (int64_t at = 1; !stop && (n = getline(&line, &cap, f)) >= 0; at++) {
        fl_audit_record r = {.line = at};
        if (line[n - 1] != '\n') {
            stop = fn(&r, "a torn final record (no newline)", ctx);
        } else if (!fl__audit_parse(line, (size_t)n - 1, &r, why, sizeof why)) {
            r.line = at;
            stop = fn(&r, why, ctx);
        } else {
            r.line = at;
            stop = fn(&r, NULL, ctx);
            fl__audit_record_free(&r);
        }
    }
    if (ferror(f)) s = fl_fail(err, FL_EIO, "%s: cannot read", path);
    free(line);
    fclose(f);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* display                                                                                     */

/* Appends s[0..n) to out (at *len, cap bytes with the NUL), control characters as '?'; returns
 * 0 once out is full. */
static int put_text(char *out, size_t cap, size_t *len, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (*len + 1 >= cap) return 0;
        unsigned char c = (unsigned char)s[i];
        out[(*len)++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[*len] = '\0';
    return 1;
}

void fl_audit_data_summary(const char *data_json, char *out, size_t cap) {
    if (cap == 0) return;
    out[0] = '\0';
    size_t len = 0, cap_text = cap > 4 ? cap - 3 : 1; /* room for "..." */
    fl__json j = {data_json, data_json, data_json + strlen(data_json), NULL};
    int full = 0;
    if (!fl__json_eat(&j, '{')) { /* not an object: shown as it is */
        put_text(out, cap, &len, data_json, strlen(data_json));
        return;
    }
    if (fl__json_eat(&j, '}')) return; /* {} */
    do {
        char *key = NULL, *val = NULL;
        if (!fl__json_string(&j, &key) || !fl__json_eat(&j, ':')) {
            free(key);
            break;
        }
        fl__json_ws(&j);
        const char *start = j.p;
        int is_str = j.p < j.end && *j.p == '"';
        int ok = is_str ? fl__json_string(&j, &val) : fl__json_skip(&j, 1);
        if (ok) {
            const char *v = is_str ? val : start;
            size_t vn = is_str ? strlen(val) : (size_t)(j.p - start);
            int hash = is_str && vn >= 40 && strspn(val, "0123456789abcdef") == vn; /* a digest */
            full = (len && !put_text(out, cap_text, &len, " ", 1)) ||
                   !put_text(out, cap_text, &len, key, strlen(key)) ||
                   !put_text(out, cap_text, &len, "=", 1) ||
                   !put_text(out, cap_text, &len, v, hash ? 12 : vn) ||
                   (hash && !put_text(out, cap_text, &len, "...", 3));
        }
        free(key), free(val);
        if (!ok || full) break;
    } while (fl__json_eat(&j, ','));
    if (full) put_text(out, cap, &len, "...", 3);
}
