/* audit_impl.h - what the audit log's writer (audit.c) and reader (audit_verify.c) share: the
 * record's parser and canonical serialisation, and the chain checker that both the verifier
 * and the writer (over its own lines) advance one line at a time. Internal to crypto/audit*.c
 * and its test. */
#ifndef FL_AUDIT_IMPL_H
#define FL_AUDIT_IMPL_H

#include <stdio.h>

#include "../nn/json_header.h"
#include "audit.h"

/* ---- one record ---- */

/* Parses line[0..len) (no newline) into r, whose strings are malloc'd (free with
 * fl__audit_record_free; r->line is left alone). Returns 1, or 0 with a reason in why (cap
 * bytes) and r freed. Only the form is checked here: members, types, the time's layout. */
int fl__audit_parse(const char *line, size_t len, fl_audit_record *r, char *why, size_t cap);
/* Frees what fl__audit_parse allocated and zeroes the strings; line and numbers stay. */
void fl__audit_record_free(fl_audit_record *r);
/* Appends r's canonical line (no newline) to b: the members in the order seq, time, kind,
 * round, actor, data, prev[, sig], no spaces, strings escaped by fl__json_put_str. With
 * with_sig 0 the sig member is left out: that is the signed part of a checkpoint. */
void fl__audit_serialize(fl__json_buf *b, const fl_audit_record *r, int with_sig);
/* The message a checkpoint's sig signs: FL_AUDIT_SIG_PREFIX then r serialised without sig. */
void fl__audit_signed_message(fl__json_buf *b, const fl_audit_record *r);
/* Whether kind is 1 to FL_AUDIT_KIND_MAX characters of [a-z0-9_]. */
int fl__audit_kind_valid(const char *kind);
/* array (of *cap elements of elem bytes, n in use) with room for one more: array itself, or
 * a larger copy (*cap doubled, from 32) with array freed; NULL when out of memory (array is
 * then left as it was). */
void *fl__audit_grow(void *array, size_t n, size_t *cap, size_t elem);

/* ---- the chain ---- */

/* The state after the last good line, and the first problem. Call fl__audit_chain_init, set
 * on_good if wanted, then feed lines; release with fl__audit_chain_destroy. */
typedef struct fl__audit_chain {
    const fl_sign_key *pub;      /* checks checkpoint signatures (borrowed) */
    char key_id[FL_SHA256_HEX];  /* pub's key id */
    int64_t seq;                 /* the last good record's seq; 0 before line 1 */
    uint8_t head[FL_SHA256_LEN]; /* SHA-256 of the last good line; zeros before line 1 */
    int64_t last_cp;             /* seq of the last good checkpoint, 0 if none */
    uint8_t last_cp_hash[FL_SHA256_LEN];
    uint8_t (*leaves)[FL_SHA256_LEN]; /* RFC 6962 leaf hashes of records since last_cp */
    size_t n_leaves, cap_leaves;
    int64_t checkpoints; /* good checkpoints */
    int64_t good_bytes;  /* file bytes through the last good line's newline */
    /* the first problem: */
    int64_t bad_line; /* 0 while all is well */
    int torn;         /* bad_line is a torn final line */
    char problem[320];
    /* Called (when set) for every good line before the chain moves past it: for a record after
     * its leaf hash was pushed (it is leaves[n_leaves - 1]), for a checkpoint while leaves still
     * holds those of the records it covers. Returns 0, or -1 (out of memory: the line counts as
     * not added and fl__audit_chain_add returns -1). */
    int (*on_good)(void *ctx, const fl_audit_record *r, const struct fl__audit_chain *c);
    void *on_good_ctx;
} fl__audit_chain;

void fl__audit_chain_init(fl__audit_chain *c, const fl_sign_key *pub);
void fl__audit_chain_destroy(fl__audit_chain *c);
/* Checks the complete line[0..len) (without its newline) as the next line of the chain and, if
 * it is good, advances the chain past it (good_bytes grows by len + 1). Returns 1 if good; 0
 * with bad_line and problem set (*unparseable says whether the line did not even parse);
 * -1 when out of memory. */
int fl__audit_chain_add(fl__audit_chain *c, const char *line, size_t len, int *unparseable);
/* Reads f from its current position (the file's start) line by line into c, stopping at the
 * first problem. A final line without a newline, or a final line that does not parse, is
 * marked torn. Returns FL_OK (problem or not), FL_EIO or FL_ENOMEM (with a sentence naming
 * path). */
fl_status fl__audit_chain_scan(fl__audit_chain *c, FILE *f, const char *path, fl_err *err);

#endif
