/* audit.h - fedlung's tamper-evident audit logs (the server's event log, a hospital's outbox
 * log): append-only text, one JSON object per line, each carrying the SHA-256 of the line
 * before it, with Ed25519-signed checkpoints over RFC 6962 Merkle roots of each round's records.
 * docs/audit.md describes the format, what is signed and what verification proves. Not a
 * general logger: it records events, never debugging output, and it never rewrites a line
 * except to cut a torn final one at open (and says so in the log). */
#ifndef FL_AUDIT_H
#define FL_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "hash.h"
#include "merkle.h"
#include "sign.h"

#define FL_AUDIT_FORMAT "fedlung-audit/1" /* data.format of every log's first record */
#define FL_AUDIT_KIND_MAX 32              /* a kind is 1 to 32 of [a-z0-9_] */
#define FL_AUDIT_ACTOR_MAX 256            /* an actor is 1 to 256 bytes */
#define FL_AUDIT_DATA_MAX 65536           /* data_json's bytes */
/* The domain-separation prefix of every checkpoint signature (see docs/audit.md). */
#define FL_AUDIT_SIG_PREFIX "fedlung-audit/1 checkpoint\n"

/* Kinds the log writes itself and fl_audit_append refuses. */
#define FL_AUDIT_KIND_CREATED "log_created" /* line 1: format and key id */
#define FL_AUDIT_KIND_CHECKPOINT "checkpoint"
#define FL_AUDIT_KIND_CUT "cut" /* a torn final line was removed at open */

/* One record, as read back. Every string is NUL-terminated and valid until the callback (or
 * function) that received the record returns. */
typedef struct {
    int64_t line;      /* 1-based line number in the file (equal to seq in an intact log) */
    int64_t seq;       /* 1, 2, 3, ... */
    int64_t round;     /* the federated round, -1 for events outside rounds */
    const char *time;  /* "YYYY-MM-DDTHH:MM:SSZ", UTC, when the record was written */
    const char *kind;  /* "join", "task", "update_accepted", ..., "checkpoint" */
    const char *actor; /* who acted: a client's certificate name, "server", "audit", ... */
    const char *data;  /* the event's fields: a JSON object, as written */
    const char *prev;  /* 64 hex digits: SHA-256 of the previous line ("0" x 64 on line 1) */
    const char *sig;   /* 128 hex digits on checkpoints, NULL on other records */
} fl_audit_record;

/* ---- writing ---- */

typedef struct fl_audit fl_audit;

/* Opens the log at path for appending (creating it, mode 0644 less the umask, with its
 * "log_created" record when it does not exist or is empty) under an exclusive lock, signing
 * checkpoints with key (a private Ed25519 key, borrowed: it must outlive the log). The existing
 * file is verified first, as fl_audit_verify does with key's public half; then
 *  - a torn final line (no newline, or a last line that does not parse) is cut: the file is
 *    truncated after the last good line, fsynced, and a "cut" record naming the offset, the
 *    number of bytes and their SHA-256 is appended;
 *  - any other problem (an edited, removed, reordered or forged record, a bad signature, a log
 *    of another key) is refused: FL_EFORMAT, the sentence names path, the line and why.
 * Returns FL_OK with *out open, FL_EINVAL (key is public only), FL_EIO (cannot open, lock
 * - "in use by another process" - read, truncate or write), FL_EFORMAT or FL_ENOMEM; on failure
 * *out is NULL and a refused file is left as it was. */
fl_status fl_audit_open(const char *path, const fl_sign_key *key, fl_audit **out, fl_err *err);

/* Appends one record: {"seq", "time" (now, UTC), "kind", "round", "actor", "data", "prev"} as
 * one line with a single write() on an O_APPEND descriptor, then fsync. kind is 1 to 32 of
 * [a-z0-9_] and not one the log writes itself; actor 1 to 256 bytes; round >= -1; data_json a
 * JSON object on one line (no CR or LF), at most FL_AUDIT_DATA_MAX bytes, or NULL for {}.
 * Returns FL_OK, FL_EINVAL (the sentence says which argument), FL_EIO (the write or fsync
 * failed: a partly written line is truncated away when possible; if not, or if fsync failed,
 * the log refuses further appends until reopened) or FL_ENOMEM. Thread-safe. */
fl_status fl_audit_append(fl_audit *log, const char *kind, int64_t round, const char *actor,
                          const char *data_json, fl_err *err);

/* Appends a signed "checkpoint" record for round: data {"from", "to", "count", "merkle_root",
 * "key_id"} covering the records since the previous checkpoint (or since line 1), and "sig",
 * the Ed25519 signature of FL_AUDIT_SIG_PREFIX followed by the record's line without its
 * ",\"sig\":..." member. A checkpoint over no records is allowed. Errors as fl_audit_append,
 * plus FL_EBACKEND if signing fails. Thread-safe. */
fl_status fl_audit_checkpoint(fl_audit *log, int64_t round, fl_err *err);

/* The last record's seq and the SHA-256 of its line (64 hex digits), which an operator can
 * publish; seq is 0 and head is "" for no log. */
void fl_audit_head(fl_audit *log, int64_t *seq, char head[FL_SHA256_HEX]);

/* Releases the lock and the descriptor; NULL is a no-op. Records after the last checkpoint
 * stay unsigned until a later open signs them: call fl_audit_checkpoint first. */
void fl_audit_close(fl_audit *log);

/* ---- reading ---- */

/* What fl_audit_verify found. */
typedef struct {
    int64_t records;             /* lines that verified (the chain, their form, signatures) */
    int64_t checkpoints;         /* checkpoints whose signature verified */
    int64_t bad_line;            /* 0 when every line verified, else the first line that did not */
    int torn;                    /* whether bad_line is a torn final line (cut at the next open) */
    char problem[320];           /* why bad_line failed ("" when bad_line is 0) */
    int64_t unsigned_records;    /* verified records after the last checkpoint */
    int64_t last_checkpoint_seq; /* 0 when there is none */
    char last_checkpoint[FL_SHA256_HEX]; /* SHA-256 of the last checkpoint's line, or "" */
    char head[FL_SHA256_HEX];            /* SHA-256 of the last verified line, or "" */
} fl_audit_report;

/* Verifies the log at path against pub (an Ed25519 key; only its public half is used), line by
 * line from line 1, stopping at the first line that fails:
 *  - unparseable or not in the canonical form the writer produces (an edit by hand);
 *  - a seq that is not the previous one plus one (a removed, inserted or reordered record);
 *  - a prev that is not the SHA-256 of the line before (an altered line);
 *  - a first record that is not "log_created" with pub's key id;
 *  - a checkpoint whose range, count, Merkle root or key id is wrong, or whose signature does
 *    not verify with pub (a forged checkpoint, or the wrong key);
 *  - a final line without its newline (torn: report->torn).
 * Records after the last checkpoint are counted in unsigned_records: their chain is intact but
 * no signature vouches for them (whoever can write the file could have appended them).
 * Returns FL_OK whenever the file could be read, intact or not (see report->bad_line);
 * FL_ENOTFOUND / FL_EIO when it cannot be read, FL_ENOMEM. */
fl_status fl_audit_verify(const char *path, const fl_sign_key *pub, fl_audit_report *report,
                          fl_err *err);

/* Where a record stands under the signed checkpoint that covers it (see fl_audit_walk): enough
 * for fl_merkle_inclusion_verify(leaf, index, size, path, path_len, root) to show, to someone
 * who trusts the checkpoint, that the record is in the log. */
typedef struct {
    int64_t checkpoint; /* line of the verified checkpoint over the record; 0: none yet (the
                           record comes after the last checkpoint: not signed, no proof) */
    uint64_t index;     /* the record is leaf `index` (0-based) ... */
    uint64_t size;      /* ... of the `size` records that checkpoint covers */
    uint8_t leaf[FL_SHA256_LEN]; /* SHA-256(0x00 || the record's line without its newline) */
    uint8_t root[FL_SHA256_LEN]; /* the checkpoint's merkle_root */
    size_t path_len;             /* the RFC 6962 inclusion proof: path[0..path_len) */
    uint8_t path[FL_MERKLE_MAX_PATH][FL_SHA256_LEN];
} fl_audit_proof;

/* Verifies the log at path against pub exactly as fl_audit_verify does (same report), and calls
 * fn, when not NULL, for every record that verified, checkpoints excepted, in order: a record
 * a checkpoint covers once that checkpoint has verified, with its inclusion proof under the
 * checkpoint's merkle_root; at the end, the good records after the last good checkpoint (not
 * signed), with proof->checkpoint 0. Records from the first bad line on are never passed. fn
 * returns 0, or -1 when out of memory (the walk then stops with FL_ENOMEM). Returns as
 * fl_audit_verify. */
fl_status fl_audit_walk(const char *path, const fl_sign_key *pub,
                        int (*fn)(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx),
                        void *ctx, fl_audit_report *report, fl_err *err);

/* Calls fn for every line of the log at path, in order, without verifying anything: with the
 * parsed record and problem NULL, or, for a line that does not parse, with a record holding
 * only .line and problem saying why. fn returns 0 to go on, anything else to stop. Returns
 * FL_OK (also when fn stopped early), FL_ENOTFOUND / FL_EIO, FL_ENOMEM. */
fl_status fl_audit_foreach(const char *path,
                           int (*fn)(const fl_audit_record *r, const char *problem, void *ctx),
                           void *ctx, fl_err *err);

/* A one-line digest of a record's data (a JSON object) for tables, into out (cap bytes, always
 * NUL-terminated): "key=value" pairs separated by spaces, strings unquoted, hex digests of 40
 * or more digits cut to their first 12 and "...", nested values as their JSON text, control
 * characters as '?', and "..." at the end when out is full. */
void fl_audit_data_summary(const char *data_json, char *out, size_t cap);

/* The value of member name of a record's data (a JSON object), malloc'd (the caller frees it):
 * a string decoded, any other value as its JSON text exactly as written ("4.8706417429295286",
 * "null", "{...}"). NULL when data has no such member, is not an object, or memory ran out. */
char *fl_audit_data_get(const char *data_json, const char *name);

#endif
