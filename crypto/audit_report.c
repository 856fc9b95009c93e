/* audit_report.c - an outbox log checked against the server's log (see audit_report.h): the
 * server records a hospital's records should have are collected with their inclusion proofs in
 * one walk of the server log, then each outbox record is looked up and its proof verified. Not
 * the verification of either log by itself: fl_audit_walk does that. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_impl.h"
#include "audit_report.h"

enum { S_ACCEPTED, S_REJECTED, S_EVALUATION, S_REFUSED };

/* A server record an outbox record may point to. */
typedef struct {
    int kind; /* S_* */
    int64_t line, round;
    char *actor;
    char *key; /* S_ACCEPTED: sha256; S_REFUSED: refused_round; S_REJECTED: the reason */
    fl_audit_proof proof;
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
} server_index;

const char *fl_audit_inclusion_status_str(fl_audit_inclusion_status s) {
    switch (s) {
    case FL_AUDIT_INCLUDED:
        return "included";
    case FL_AUDIT_UNSIGNED:
        return "not signed";
    case FL_AUDIT_MISSING:
        return "MISSING";
    case FL_AUDIT_BAD_PROOF:
        return "BAD PROOF";
    }
    return "?";
}

static int collect(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx) {
    server_index *x = ctx;
    static const char *const kinds[] = {"update_accepted", "update_rejected", "evaluation",
                                        "refused"};
    static const char *const keys[] = {"sha256", "reason", "sha256", "refused_round"};
    int k = 0;
    while (k < 4 && strcmp(r->kind, kinds[k]) != 0) k++;
    if (k == 4) return 0;
    void *grown = fl__audit_grow(x->e, x->n, &x->cap, sizeof *x->e);
    if (!grown) return -1;
    x->e = grown;
    entry *e = &x->e[x->n];
    e->kind = k;
    e->line = r->line;
    e->round = r->round;
    e->proof = *proof;
    e->key = keys[k] ? fl_audit_data_get(r->data, keys[k]) : NULL;
    e->actor = strdup(r->actor);
    if (!e->actor) {
        free(e->key);
        return -1;
    }
    x->n++;
    return 0;
}

static void index_free(server_index *x) {
    for (size_t i = 0; i < x->n; i++) free(x->e[i].actor), free(x->e[i].key);
    free(x->e);
}

typedef struct {
    const server_index *x;
    int (*fn)(const fl_audit_inclusion *inc, void *ctx);
    void *ctx;
} matcher;

/* The first server entry of kind k by actor, in round (round >= 0) or with key (key non-NULL). */
static const entry *find(const server_index *x, int k, const char *actor, int64_t round,
                         const char *key) {
    for (size_t i = 0; i < x->n; i++) {
        const entry *e = &x->e[i];
        if (e->kind == k && strcmp(e->actor, actor) == 0 && (round < 0 || e->round == round) &&
            (!key || (e->key && strcmp(e->key, key) == 0)))
            return e;
    }
    return NULL;
}

static int match(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx) {
    (void)proof;
    const matcher *m = ctx;
    fl_audit_inclusion inc = {.sent = r, .status = FL_AUDIT_MISSING};
    char *sha = NULL, round[24];
    const entry *e = NULL;
    snprintf(round, sizeof round, "%" PRId64, r->round);
    if (strcmp(r->kind, "refused") == 0) {
        e = find(m->x, S_REFUSED, r->actor, -1, round);
        snprintf(inc.expect, sizeof inc.expect,
                 "\"refused\" record of %.200s with refused_round %s", r->actor, round);
    } else if (strcmp(r->kind, "eval") == 0) {
        /* the report's SHA-256 when both logs have it (servers before it had the round only) */
        sha = fl_audit_data_get(r->data, "sha256");
        e = find(m->x, S_EVALUATION, r->actor, r->round, NULL);
        if (e && e->key && sha && strcmp(e->key, sha) != 0) e = NULL; /* another report */
        snprintf(inc.expect, sizeof inc.expect,
                 "\"evaluation\" record of %.200s in round %s%s%.64s", r->actor, round,
                 sha ? " with sha256 " : "", sha ? sha : "");
        free(sha);
        sha = NULL;
    } else if (strcmp(r->kind, FL_AUDIT_KIND_CREATED) != 0 &&
               strcmp(r->kind, FL_AUDIT_KIND_CUT) != 0 &&
               (sha = fl_audit_data_get(r->data, "sha256"))) {
        e = find(m->x, S_ACCEPTED, r->actor, -1, sha);
        snprintf(inc.expect, sizeof inc.expect,
                 "\"update_accepted\" record of %.200s with sha256 %.64s", r->actor, sha);
        const entry *rej = e ? NULL : find(m->x, S_REJECTED, r->actor, r->round, NULL);
        if (rej)
            snprintf(inc.note, sizeof inc.note,
                     "the server logged update_rejected at line %" PRId64 ": %.300s", rej->line,
                     rej->key ? rej->key : "(no reason)");
        free(sha);
    } else {
        return 0; /* nothing the server logs */
    }
    if (e) {
        fl_err err;
        inc.server_line = e->line;
        inc.proof = &e->proof;
        if (!e->proof.checkpoint)
            inc.status = FL_AUDIT_UNSIGNED;
        else if (fl_merkle_inclusion_verify(e->proof.leaf, e->proof.index, e->proof.size,
                                            (const uint8_t(*)[FL_SHA256_LEN])e->proof.path,
                                            e->proof.path_len, e->proof.root, &err) == FL_OK)
            inc.status = FL_AUDIT_INCLUDED;
        else
            inc.status = FL_AUDIT_BAD_PROOF;
    }
    return m->fn(&inc, m->ctx);
}

fl_status fl_audit_check_inclusion(const char *server_log, const fl_sign_key *server_pub,
                                   const char *outbox_log, const fl_sign_key *outbox_pub,
                                   int (*fn)(const fl_audit_inclusion *inc, void *ctx), void *ctx,
                                   fl_audit_report *server_report, fl_audit_report *outbox_report,
                                   fl_err *err) {
    server_index x = {0};
    memset(outbox_report, 0, sizeof *outbox_report);
    fl_status s = fl_audit_walk(server_log, server_pub, collect, &x, server_report, err);
    matcher m = {&x, fn, ctx};
    if (s == FL_OK) s = fl_audit_walk(outbox_log, outbox_pub, match, &m, outbox_report, err);
    index_free(&x);
    return s;
}
