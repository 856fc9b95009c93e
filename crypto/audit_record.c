/* audit_record.c - one audit record (parse, canonical form) and the hash chain checked line by
 * line (see audit_impl.h). Both the verifier and the writer go through fl__audit_chain_add, so
 * the log is checked by the same code that will later verify it. Not the file handling: that
 * is audit.c (writing) and audit_verify.c (reading). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit_impl.h"
#include "merkle.h"

/* ------------------------------------------------------------------------------------------ */
/* parsing                                                                                     */

enum { F_INT, F_STR, F_OBJ };

/* One expected member of an object: where its value goes, and whether it came. */
typedef struct {
    const char *name;
    int type; /* F_INT: int64_t*, F_STR: char** (decoded), F_OBJ: char** (the JSON text) */
    void *out;
    int optional;
    int seen;
} field;

typedef struct {
    fl__json j;
    char why[96]; /* a reason naming a member, pointed to by j.what */
} parser;

static int fail_member(parser *ps, const char *fmt, const char *name) {
    snprintf(ps->why, sizeof ps->why, fmt, name);
    return fl__json_fail(&ps->j, ps->why);
}

/* Parses one object whose members are exactly fields (optional ones may be missing), in any
 * order, each once. Values are malloc'd into the fields' outputs; on failure some may be set
 * and the caller frees them. */
static int parse_fields(parser *ps, field *f, int n) {
    fl__json *j = &ps->j;
    if (!fl__json_eat(j, '{')) return fl__json_fail(j, "expected a JSON object");
    if (!fl__json_eat(j, '}')) {
        do {
            char *key;
            if (!fl__json_string(j, &key)) return 0;
            int i = 0;
            while (i < n && strcmp(f[i].name, key) != 0) i++;
            if (i == n) {
                fail_member(ps, "unknown member \"%.40s\"", key);
                free(key);
                return 0;
            }
            free(key);
            if (f[i].seen++) return fail_member(ps, "member \"%s\" twice", f[i].name);
            if (!fl__json_eat(j, ':')) return fl__json_fail(j, "expected ':'");
            if (f[i].type == F_INT) {
                if (!fl__json_int(j, f[i].out)) return 0;
            } else if (f[i].type == F_STR) {
                if (!fl__json_string(j, f[i].out)) return 0;
            } else {
                fl__json_ws(j);
                const char *start = j->p;
                if (j->p >= j->end || *j->p != '{')
                    return fail_member(ps, "member \"%s\" is not an object", f[i].name);
                if (!fl__json_skip(j, 1)) return 0;
                char *copy = malloc((size_t)(j->p - start) + 1);
                if (!copy) return fl__json_fail(j, "out of memory");
                memcpy(copy, start, (size_t)(j->p - start));
                copy[j->p - start] = '\0';
                *(char **)f[i].out = copy;
            }
        } while (fl__json_eat(j, ','));
        if (!fl__json_eat(j, '}')) return fl__json_fail(j, "expected ',' or '}'");
    }
    for (int i = 0; i < n; i++)
        if (!f[i].seen && !f[i].optional) return fail_member(ps, "no \"%s\" member", f[i].name);
    return 1;
}

/* Whether s is exactly n lowercase hex digits. */
static int is_hex(const char *s, size_t n) {
    return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* "YYYY-MM-DDTHH:MM:SSZ" by layout (digits where digits go). */
static int time_valid(const char *t) {
    static const char layout[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(t) != sizeof layout - 1) return 0;
    for (size_t i = 0; layout[i]; i++)
        if (layout[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != layout[i]) return 0;
    return 1;
}

int fl__audit_kind_valid(const char *kind) {
    size_t n = strlen(kind);
    return n >= 1 && n <= FL_AUDIT_KIND_MAX &&
           strspn(kind, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

void fl__audit_record_free(fl_audit_record *r) {
    free((char *)r->time), free((char *)r->kind), free((char *)r->actor);
    free((char *)r->data), free((char *)r->prev), free((char *)r->sig);
    r->time = r->kind = r->actor = r->data = r->prev = r->sig = NULL;
}

int fl__audit_parse(const char *line, size_t len, fl_audit_record *r, char *why, size_t cap) {
    char *time = NULL, *kind = NULL, *actor = NULL, *data = NULL, *prev = NULL, *sig = NULL;
    int64_t seq = 0, round = 0;
    field f[] = {
        {"seq", F_INT, &seq, 0, 0},     {"time", F_STR, &time, 0, 0},
        {"kind", F_STR, &kind, 0, 0},   {"round", F_INT, &round, 0, 0},
        {"actor", F_STR, &actor, 0, 0}, {"data", F_OBJ, &data, 0, 0},
        {"prev", F_STR, &prev, 0, 0},   {"sig", F_STR, &sig, 1, 0},
    };
    parser ps = {.j = {line, line, line + len, NULL}};
    int ok = parse_fields(&ps, f, (int)(sizeof f / sizeof *f));
    if (ok) {
        fl__json_ws(&ps.j);
        if (ps.j.p != ps.j.end) ok = fl__json_fail(&ps.j, "text after the object");
    }
    r->time = time, r->kind = kind, r->actor = actor, r->data = data, r->prev = prev;
    r->sig = sig, r->seq = seq, r->round = round;
    const char *bad = NULL;
    if (!ok)
        bad = ps.j.what;
    else if (seq < 1)
        bad = "seq is not a positive integer";
    else if (round < -1)
        bad = "round is below -1";
    else if (!time_valid(time))
        bad = "time is not YYYY-MM-DDTHH:MM:SSZ";
    else if (!fl__audit_kind_valid(kind))
        bad = "kind is not 1 to 32 of [a-z0-9_]";
    else if (!actor[0] || strlen(actor) > FL_AUDIT_ACTOR_MAX)
        bad = "actor is empty or longer than 256 bytes";
    else if (!is_hex(prev, 2 * FL_SHA256_LEN))
        bad = "prev is not 64 lowercase hex digits";
    else if (sig && !is_hex(sig, 2 * FL_ED25519_SIG_LEN))
        bad = "sig is not 128 lowercase hex digits";
    if (!bad) return 1;
    snprintf(why, cap, "%s", bad);
    fl__audit_record_free(r);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the canonical form                                                                          */

void fl__audit_serialize(fl__json_buf *b, const fl_audit_record *r, int with_sig) {
    fl__json_put(b, "{\"seq\":%" PRId64 ",\"time\":", r->seq);
    fl__json_put_str(b, r->time);
    fl__json_put(b, ",\"kind\":");
    fl__json_put_str(b, r->kind);
    fl__json_put(b, ",\"round\":%" PRId64 ",\"actor\":", r->round);
    fl__json_put_str(b, r->actor);
    fl__json_put(b, ",\"data\":%s,\"prev\":\"%s\"", r->data, r->prev);
    if (with_sig && r->sig) fl__json_put(b, ",\"sig\":\"%s\"", r->sig);
    fl__json_put(b, "}");
}

void fl__audit_signed_message(fl__json_buf *b, const fl_audit_record *r) {
    fl__json_put(b, "%s", FL_AUDIT_SIG_PREFIX);
    fl__audit_serialize(b, r, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* the chain                                                                                   */

void fl__audit_chain_init(fl__audit_chain *c, const fl_sign_key *pub) {
    memset(c, 0, sizeof *c);
    c->pub = pub;
    fl_sign_key_id(pub, c->key_id);
}

void fl__audit_chain_destroy(fl__audit_chain *c) {
    free(c->leaves);
    c->leaves = NULL;
    c->n_leaves = c->cap_leaves = 0;
}

static int problem(fl__audit_chain *c, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int problem(fl__audit_chain *c, int64_t line, const char *fmt, ...) {
    c->bad_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof c->problem, fmt, ap);
    va_end(ap);
    return 0;
}

/* Checks line 1's data: {"format": FL_AUDIT_FORMAT, "key_id": the verifying key's id}. */
static int check_created(fl__audit_chain *c, const fl_audit_record *r) {
    char *format = NULL, *key_id = NULL;
    field f[] = {{"format", F_STR, &format, 0, 0}, {"key_id", F_STR, &key_id, 0, 0}};
    parser ps = {.j = {r->data, r->data, r->data + strlen(r->data), NULL}};
    int ok = parse_fields(&ps, f, 2);
    if (!ok)
        problem(c, r->line, "the log_created record's data: %s", ps.j.what);
    else if (strcmp(format, FL_AUDIT_FORMAT) != 0)
        ok = problem(c, r->line, "format \"%.40s\" is not " FL_AUDIT_FORMAT, format);
    else if (strcmp(key_id, c->key_id) != 0)
        ok = problem(c, r->line,
                     "the log was created for key id %.16s..., not the given key's %.16s... "
                     "(the wrong public key?)",
                     key_id, c->key_id);
    free(format), free(key_id);
    return ok;
}

/* Checks a checkpoint: its range is every record since the last checkpoint, its Merkle root is
 * theirs, its key id is the verifying key's and its signature verifies. -1: out of memory. */
static int check_checkpoint(fl__audit_chain *c, const fl_audit_record *r) {
    int64_t from = 0, to = 0, count = 0;
    char *root = NULL, *key_id = NULL;
    field f[] = {{"from", F_INT, &from, 0, 0},
                 {"to", F_INT, &to, 0, 0},
                 {"count", F_INT, &count, 0, 0},
                 {"merkle_root", F_STR, &root, 0, 0},
                 {"key_id", F_STR, &key_id, 0, 0}};
    parser ps = {.j = {r->data, r->data, r->data + strlen(r->data), NULL}};
    uint8_t want[FL_SHA256_LEN], sig[FL_ED25519_SIG_LEN];
    char want_hex[FL_SHA256_HEX];
    fl__json_buf msg = {0};
    int ok = parse_fields(&ps, f, 5);
    if (!ok) {
        problem(c, r->line, "checkpoint data: %s", ps.j.what);
        goto done;
    }
    ok = 0;
    if (from != c->last_cp + 1 || to != r->seq - 1 || count != to - from + 1) {
        problem(c, r->line,
                "the checkpoint covers records %" PRId64 "-%" PRId64 " (count %" PRId64
                ") but the records since the last checkpoint are %" PRId64 "-%" PRId64,
                from, to, count, c->last_cp + 1, r->seq - 1);
        goto done;
    }
    if (strcmp(key_id, c->key_id) != 0) {
        problem(c, r->line,
                "the checkpoint is signed by key id %.16s..., not the given key's %.16s...", key_id,
                c->key_id);
        goto done;
    }
    if (fl_merkle_root((const uint8_t(*)[FL_SHA256_LEN])c->leaves, c->n_leaves, want) != FL_OK) {
        ok = -1;
        goto done;
    }
    fl_hex_encode(want, sizeof want, want_hex);
    if (strcmp(root, want_hex) != 0) {
        problem(c, r->line,
                "merkle_root %.16s... is not the root of records %" PRId64 "-%" PRId64
                " (%.16s...)",
                root, from, to, want_hex);
        goto done;
    }
    fl__audit_signed_message(&msg, r);
    if (msg.oom) {
        ok = -1;
        goto done;
    }
    fl_hex_decode(r->sig, sig, sizeof sig); /* checked as 128 hex digits by the parser */
    if (!fl_sign_verify(c->pub, msg.s, msg.len, sig)) {
        problem(c, r->line, "the checkpoint's signature does not verify with the given key");
        goto done;
    }
    ok = 1;
done:
    free(root), free(key_id), free(msg.s);
    return ok;
}

void *fl__audit_grow(void *array, size_t n, size_t *cap, size_t elem) {
    if (n < *cap) return array;
    size_t more = *cap ? 2 * *cap : 32;
    void *grown = realloc(array, more * elem);
    if (grown) *cap = more;
    return grown;
}

static int push_leaf(fl__audit_chain *c, const char *line, size_t len) {
    void *grown = fl__audit_grow(c->leaves, c->n_leaves, &c->cap_leaves, sizeof *c->leaves);
    if (!grown) return -1;
    c->leaves = grown;
    return fl_merkle_leaf_hash(line, len, c->leaves[c->n_leaves++]) == FL_OK ? 1 : -1;
}

int fl__audit_chain_add(fl__audit_chain *c, const char *line, size_t len, int *unparseable) {
    fl_audit_record r = {.line = c->seq + 1};
    int64_t at = c->seq + 1; /* the line number: lines are only added while all is well */
    char why[96], head_hex[FL_SHA256_HEX];
    fl__json_buf canon = {0};
    *unparseable = 0;
    if (!fl__audit_parse(line, len, &r, why, sizeof why)) {
        *unparseable = 1;
        return problem(c, at, "unparseable: %s", why);
    }
    int ok = 0;
    fl__audit_serialize(&canon, &r, 1);
    if (canon.oom) {
        ok = -1;
        goto done;
    }
    if (canon.len != len || memcmp(canon.s, line, len) != 0) {
        problem(c, at, "not in the form the log writes (the line was edited)");
        goto done;
    }
    if (r.seq != at) {
        problem(c, at,
                "seq is %" PRId64 ", expected %" PRId64 ": a record was removed, inserted or "
                "reordered",
                r.seq, at);
        goto done;
    }
    fl_hex_encode(c->head, sizeof c->head, head_hex);
    if (strcmp(r.prev, head_hex) != 0) {
        if (at == 1)
            problem(c, at, "prev of the first record is not 64 zeros");
        else
            problem(c, at,
                    "prev %.16s... is not the SHA-256 of line %" PRId64 " (%.16s...): line "
                    "%" PRId64 " was altered, or this record was not written after it",
                    r.prev, at - 1, head_hex, at - 1);
        goto done;
    }
    int created = strcmp(r.kind, FL_AUDIT_KIND_CREATED) == 0;
    int checkpoint = strcmp(r.kind, FL_AUDIT_KIND_CHECKPOINT) == 0;
    if ((at == 1) != created) {
        problem(c, at,
                at == 1 ? "the first record is not \"log_created\""
                        : "\"log_created\" after line 1");
        goto done;
    }
    if (!checkpoint != !r.sig) {
        problem(c, at,
                checkpoint ? "a checkpoint without \"sig\"" : "\"sig\" on a record of kind \"%s\"",
                r.kind);
        goto done;
    }
    if (created && !check_created(c, &r)) goto done;
    if (checkpoint) {
        ok = check_checkpoint(c, &r);
        if (ok != 1) goto done;
        ok = 0;
        if (c->on_good && c->on_good(c->on_good_ctx, &r, c) < 0) {
            ok = -1;
            goto done;
        }
        c->n_leaves = 0;
        c->last_cp = at;
        c->checkpoints++;
    } else if (push_leaf(c, line, len) < 0 ||
               (c->on_good && c->on_good(c->on_good_ctx, &r, c) < 0)) {
        ok = -1;
        goto done;
    }
    if (fl_sha256(line, len, c->head) != FL_OK) {
        ok = -1;
        goto done;
    }
    if (checkpoint) memcpy(c->last_cp_hash, c->head, sizeof c->head);
    c->seq = at;
    c->good_bytes += (int64_t)len + 1;
    ok = 1;
done:
    fl__audit_record_free(&r);
    free(canon.s);
    return ok;
}

fl_status fl__audit_chain_scan(fl__audit_chain *c, FILE *f, const char *path, fl_err *err) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    fl_status s = FL_OK;
    while (!c->bad_line && (n = getline(&line, &cap, f)) >= 0) {
        if (n == 0 || line[n - 1] != '\n') {
            c->torn = 1;
            problem(c, c->seq + 1, "a torn final record: %zd bytes without a newline", n);
            break;
        }
        int unparseable;
        int ok = fl__audit_chain_add(c, line, (size_t)n - 1, &unparseable);
        if (ok < 0) {
            s = fl_fail(err, FL_ENOMEM, "%s: out of memory while verifying", path);
            break;
        }
        if (!ok && unparseable) {
            int next = fgetc(f);
            if (next == EOF && !ferror(f)) c->torn = 1; /* the last line: a torn write */
        }
    }
    if (s == FL_OK && ferror(f)) s = fl_fail(err, FL_EIO, "%s: cannot read", path);
    free(line);
    return s;
}
