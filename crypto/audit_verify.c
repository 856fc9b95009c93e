/* audit_verify.c - reading audit logs (see audit.h): verification from line 1 with a public key,
 * optionally handing each verified record over with its inclusion proof; a plain walk over the
 * records for display; digests and members of a record's data. Nothing here writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit_impl.h"
#include "merkle.h"

static fl_status open_log(const char *path, FILE **f, fl_err *err) {
    *f = fopen(path, "r");
    if (*f) return FL_OK;
    return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                   strerror(errno));
}

/* fl_audit_walk's state: the good records since the last good checkpoint (copies), waiting for
 * the checkpoint that will cover them. */
typedef struct {
    int (*fn)(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx);
    void *ctx;
    fl_audit_record *pending;
    size_t n, cap;
} walker;

static char *dup_or_null(const char *s, int *oom) {
    char *d = s ? strdup(s) : NULL;
    if (s && !d) *oom = 1;
    return d;
}

/* Hands the pending records to fn (under the checkpoint `cp` whose leaves c->leaves are, or
 * unsigned when cp is NULL) and frees them. Returns 0 or -1. */
static int flush(walker *w, const fl_audit_record *cp, const fl__audit_chain *c) {
    fl_audit_proof proof;
    int ok = 0;
    memset(&proof, 0, sizeof proof);
    if (cp && fl_merkle_root((const uint8_t(*)[FL_SHA256_LEN])c->leaves, c->n_leaves, proof.root) !=
                  FL_OK)
        ok = -1;
    for (size_t i = 0; i < w->n; i++) {
        proof.checkpoint = 0;
        if (ok == 0 && cp && i < c->n_leaves) { /* always: one leaf per record */
            fl_err err;
            proof.checkpoint = cp->line;
            proof.index = i;
            proof.size = c->n_leaves;
            memcpy(proof.leaf, c->leaves[i], sizeof proof.leaf);
            if (fl_merkle_inclusion_proof((const uint8_t(*)[FL_SHA256_LEN])c->leaves, c->n_leaves,
                                          i, proof.path, FL_MERKLE_MAX_PATH, &proof.path_len,
                                          &err) != FL_OK)
                ok = -1;
        }
        if (ok == 0 && w->fn(&w->pending[i], &proof, w->ctx) != 0) ok = -1;
        fl__audit_record_free(&w->pending[i]);
    }
    w->n = 0;
    return ok;
}

static int on_good(void *ctx, const fl_audit_record *r, const fl__audit_chain *c) {
    walker *w = ctx;
    if (strcmp(r->kind, FL_AUDIT_KIND_CHECKPOINT) == 0) return flush(w, r, c);
    void *grown = fl__audit_grow(w->pending, w->n, &w->cap, sizeof *w->pending);
    if (!grown) return -1;
    w->pending = grown;
    int oom = 0;
    fl_audit_record *p = &w->pending[w->n++];
    *p = *r;
    p->time = dup_or_null(r->time, &oom), p->kind = dup_or_null(r->kind, &oom);
    p->actor = dup_or_null(r->actor, &oom), p->data = dup_or_null(r->data, &oom);
    p->prev = dup_or_null(r->prev, &oom), p->sig = dup_or_null(r->sig, &oom);
    return oom ? -1 : 0;
}

fl_status fl_audit_walk(const char *path, const fl_sign_key *pub,
                        int (*fn)(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx),
                        void *ctx, fl_audit_report *report, fl_err *err) {
    memset(report, 0, sizeof *report);
    FILE *f;
    fl_status s = open_log(path, &f, err);
    if (s != FL_OK) return s;
    walker w = {fn, ctx, NULL, 0, 0};
    fl__audit_chain c;
    fl__audit_chain_init(&c, pub);
    if (fn) {
        c.on_good = on_good;
        c.on_good_ctx = &w;
    }
    s = fl__audit_chain_scan(&c, f, path, err);
    fclose(f);
    if (s == FL_OK && fn && flush(&w, NULL, &c) != 0)
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory while reading", path);
    for (size_t i = 0; i < w.n; i++) fl__audit_record_free(&w.pending[i]);
    free(w.pending);
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

fl_status fl_audit_verify(const char *path, const fl_sign_key *pub, fl_audit_report *report,
                          fl_err *err) {
    return fl_audit_walk(path, pub, NULL, NULL, report, err);
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

/* Reads the next member of an object at j: its name into *key (malloc'd), and its value, a
 * string decoded into *val (malloc'd) with *is_str 1, or any other value as its JSON text at
 * [*start, j->p) with *val NULL. Returns 1, or 0 (the caller frees *key and *val). */
static int member(fl__json *j, char **key, char **val, const char **start, int *is_str) {
    *key = *val = NULL;
    if (!fl__json_string(j, key) || !fl__json_eat(j, ':')) return 0;
    fl__json_ws(j);
    *start = j->p;
    *is_str = j->p < j->end && *j->p == '"';
    return *is_str ? fl__json_string(j, val) : fl__json_skip(j, 1);
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
        char *key, *val;
        const char *start;
        int is_str, ok = member(&j, &key, &val, &start, &is_str);
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

char *fl_audit_data_get(const char *data_json, const char *name) {
    fl__json j = {data_json, data_json, data_json + strlen(data_json), NULL};
    if (!fl__json_eat(&j, '{') || fl__json_eat(&j, '}')) return NULL;
    do {
        char *key, *val;
        const char *start;
        int is_str;
        if (!member(&j, &key, &val, &start, &is_str)) {
            free(key), free(val);
            return NULL;
        }
        int found = strcmp(key, name) == 0;
        free(key);
        if (found) return is_str ? val : strndup(start, (size_t)(j.p - start));
        free(val);
    } while (fl__json_eat(&j, ','));
    return NULL;
}
