/* test_audit.c - the audit log (crypto/audit.h): RFC 6962 roots against crypto-vectors.md,
 * append + checkpoint + verify, and every tamper caught: an edited byte, a removed, reordered,
 * re-chained or foreign record, a forged checkpoint, the wrong key; a torn tail cut at open and
 * the cut logged; argument checks and the lock. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../crypto/audit.h"
#include "../crypto/audit_impl.h"
#include "../crypto/merkle.h"
#include "harness.h"

static fl_sign_key *key, *other_key; /* the server's key; someone else's */

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

/* A file's lines (without newlines), at most 64; the count in *n. Frees with free_lines. */
typedef struct {
    char *line[64];
    int n;
    int last_newline; /* whether the file ended with a newline */
} lines;

static void read_lines(const char *path, lines *L) {
    memset(L, 0, sizeof *L);
    size_t len;
    char *text = fl_test_read_file(path, &len);
    if (!text) return;
    char *p = text;
    while (p < text + len && L->n < 64) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t k = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        L->line[L->n] = strndup(p, k);
        L->n++;
        p += k + (nl ? 1 : 0);
        L->last_newline = nl != NULL;
    }
    free(text);
}

static void write_lines(const char *path, const lines *L) {
    fl__json_buf b = {0};
    for (int i = 0; i < L->n; i++)
        if (L->line[i]) fl__json_put(&b, "%s\n", L->line[i]);
    fl_test_write_file(path, b.s ? b.s : "", b.len);
    free(b.s);
}

static void free_lines(lines *L) {
    for (int i = 0; i < L->n; i++) free(L->line[i]);
    memset(L, 0, sizeof *L);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *text = fl_test_read_file(from, &n);
    fl_test_write_file(to, text ? text : "", text ? n : 0);
    free(text);
}

static fl_audit_report verify(const char *path, const fl_sign_key *pub) {
    fl_audit_report rep;
    fl_err err = {{0}};
    CHECK_OK(fl_audit_verify(path, pub, &rep, &err), &err);
    return rep;
}

/* The report must name bad_line and contain text. */
#define CHECK_BROKEN(rep, line, text)                                               \
    do {                                                                            \
        CHECK_EQ_INT((rep).bad_line, (line));                                       \
        fl_test_checks++;                                                           \
        if (!strstr((rep).problem, (text)))                                         \
            fl_test_fail_at(__FILE__, __LINE__, "problem lacks \"%s\": %s", (text), \
                            (rep).problem);                                         \
    } while (0)

#define H64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* A two-round server log of 13 lines:
 *   1 log_created  2 join a  3 join b  4 task r1  5 update_accepted r1  6 update_rejected r1
 *   7 aggregate r1  8 checkpoint r1  9 task r2  10 update_accepted r2  11 aggregate r2
 *   12 checkpoint r2  13 evaluation r2 (unsigned) */
static void make_log(const char *path) {
    fl_err err = {{0}};
    fl_audit *log = NULL;
    remove(path);
    CHECK_OK(fl_audit_open(path, key, &log, &err), &err);
    if (!log) return;
    CHECK_OK(fl_audit_append(log, "join", -1, "hospital_a", "{\"cn\":\"hospital_a\"}", &err), &err);
    CHECK_OK(fl_audit_append(log, "join", -1, "hospital_b", "{\"cn\":\"hospital_b\"}", &err), &err);
    for (int round = 1; round <= 2; round++) {
        CHECK_OK(fl_audit_append(log, "task", round, "server", "{\"clients\":2}", &err), &err);
        CHECK_OK(fl_audit_append(log, "update_accepted", round, "hospital_a",
                                 "{\"sha256\":\"" H64 "\",\"clip\":1.0,\"sigma\":0.8}", &err),
                 &err);
        if (round == 1)
            CHECK_OK(fl_audit_append(log, "update_rejected", round, "hospital_b",
                                     "{\"reason\":\"stale round\"}", &err),
                     &err);
        CHECK_OK(
            fl_audit_append(log, "aggregate", round, "server", "{\"sha256\":\"" H64 "\"}", &err),
            &err);
        CHECK_OK(fl_audit_checkpoint(log, round, &err), &err);
    }
    CHECK_OK(fl_audit_append(log, "evaluation", 2, "server", "{\"auc\":0.91}", &err), &err);
    fl_audit_close(log);
}

/* ------------------------------------------------------------------------------------------ */
/* RFC 6962                                                                                    */

static void test_merkle(void) {
    static const char *const inputs[] = {"",
                                         "00",
                                         "10",
                                         "2021",
                                         "3031",
                                         "40414243",
                                         "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f"};
    static const char *const roots[] = {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    };
    uint8_t leaves[8][FL_SHA256_LEN], root[FL_SHA256_LEN];
    char hex[FL_SHA256_HEX];
    for (int i = 0; i < 8; i++) {
        uint8_t d[16];
        size_t n = strlen(inputs[i]) / 2;
        CHECK(fl_hex_decode(inputs[i], d, n) == FL_OK);
        CHECK(fl_merkle_leaf_hash(d, n, leaves[i]) == FL_OK);
    }
    fl_hex_encode(leaves[1], FL_SHA256_LEN, hex);
    CHECK(strcmp(hex, "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7") == 0);
    for (size_t n = 0; n <= 8; n++) {
        CHECK(fl_merkle_root((const uint8_t(*)[FL_SHA256_LEN])leaves, n, root) == FL_OK);
        fl_hex_encode(root, sizeof root, hex);
        if (strcmp(hex, roots[n]) != 0)
            fl_test_fail_at(__FILE__, __LINE__, "root of %zu leaves: %s, want %s", n, hex,
                            roots[n]);
        fl_test_checks++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* writing and verifying an intact log                                                         */

typedef struct {
    int n, bad;
    char kinds[32][24];
    int64_t rounds[32];
    char data[32][160];
} seen;

static int collect(const fl_audit_record *r, const char *problem, void *ctx) {
    seen *s = ctx;
    if (problem) {
        s->bad++;
        return 0;
    }
    if (s->n < 32) {
        snprintf(s->kinds[s->n], sizeof s->kinds[0], "%s", r->kind);
        snprintf(s->data[s->n], sizeof s->data[0], "%s", r->data);
        s->rounds[s->n] = r->round;
        s->n++;
    }
    return 0;
}

static void test_intact(void) {
    const char *path = fl_test_path("server.audit");
    make_log(path);
    fl_audit_report rep = verify(path, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 13);
    CHECK_EQ_INT(rep.checkpoints, 2);
    CHECK_EQ_INT(rep.last_checkpoint_seq, 12);
    CHECK_EQ_INT(rep.unsigned_records, 1);
    CHECK(strlen(rep.head) == 64 && strlen(rep.last_checkpoint) == 64);
    CHECK(rep.problem[0] == '\0');

    /* The last checkpoint's hash is that of line 12, the head that of line 13. */
    lines L;
    read_lines(path, &L);
    CHECK_EQ_INT(L.n, 13);
    CHECK(L.last_newline);
    char hex[FL_SHA256_HEX];
    if (L.n == 13) {
        fl_sha256_hex(L.line[11], strlen(L.line[11]), hex);
        CHECK(strcmp(hex, rep.last_checkpoint) == 0);
        fl_sha256_hex(L.line[12], strlen(L.line[12]), hex);
        CHECK(strcmp(hex, rep.head) == 0);
        CHECK(strncmp(L.line[0], "{\"seq\":1,\"time\":\"", 17) == 0);
        CHECK(strstr(L.line[0], "\"prev\":\"0000000000000000000000000000000000000000000000000"));
        CHECK(strstr(L.line[7], "\"kind\":\"checkpoint\"") && strstr(L.line[7], "\"sig\":\""));
        CHECK(strstr(L.line[7], "\"from\":1,\"to\":7,\"count\":7"));
        CHECK(strstr(L.line[11], "\"from\":9,\"to\":11,\"count\":3"));
    }
    free_lines(&L);

    /* Read back in order, data as written. */
    seen s = {0};
    fl_err err = {{0}};
    CHECK_OK(fl_audit_foreach(path, collect, &s, &err), &err);
    CHECK_EQ_INT(s.n, 13);
    CHECK_EQ_INT(s.bad, 0);
    CHECK(strcmp(s.kinds[0], "log_created") == 0 && strcmp(s.kinds[4], "update_accepted") == 0);
    CHECK(strcmp(s.kinds[7], "checkpoint") == 0 && strcmp(s.kinds[12], "evaluation") == 0);
    CHECK_EQ_INT(s.rounds[1], -1);
    CHECK_EQ_INT(s.rounds[9], 2);
    CHECK(strcmp(s.data[5], "{\"reason\":\"stale round\"}") == 0);

    /* Reopened: the chain goes on, and a checkpoint signs the tail. */
    fl_audit *log = NULL;
    CHECK_OK(fl_audit_open(path, key, &log, &err), &err);
    if (log) {
        int64_t seq;
        fl_audit_head(log, &seq, hex);
        CHECK_EQ_INT(seq, 13);
        CHECK(strcmp(hex, rep.head) == 0);
        CHECK_OK(fl_audit_append(log, "resume", 3, "server", "{\"from_round\":3}", &err), &err);
        CHECK_OK(fl_audit_checkpoint(log, 3, &err), &err);
        /* Two checkpoints in a row: the second covers nothing, root SHA-256(""). */
        CHECK_OK(fl_audit_checkpoint(log, 3, &err), &err);
        fl_audit_close(log);
    }
    rep = verify(path, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 16);
    CHECK_EQ_INT(rep.checkpoints, 4);
    CHECK_EQ_INT(rep.unsigned_records, 0);
    read_lines(path, &L);
    if (L.n == 16) {
        CHECK(strstr(L.line[14], "\"from\":13,\"to\":14,\"count\":2"));
        CHECK(strstr(L.line[15], "\"from\":16,\"to\":15,\"count\":0,\"merkle_root\":\"e3b0c442"));
    }
    free_lines(&L);

    /* Strings with quotes, escapes and UTF-8 round-trip in canonical form. */
    const char *p2 = fl_test_path("escapes.audit");
    CHECK_OK(fl_audit_open(p2, key, &log, &err), &err);
    if (log) {
        CHECK_OK(fl_audit_append(log, "refusal", 0, "h\xc3\xb4pital \"A\"\t\\",
                                 "{\"why\":\"plan \\\"x\\\" not approved\",\"n\":[1,{\"a\":null}]}",
                                 &err),
                 &err);
        CHECK_OK(fl_audit_checkpoint(log, 0, &err), &err);
        fl_audit_close(log);
    }
    rep = verify(p2, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.checkpoints, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* tampering                                                                                   */

/* A fresh copy of the reference log, as lines. */
static const char *tampered(const char *ref, const char *name, lines *L) {
    static char path[512];
    snprintf(path, sizeof path, "%s", fl_test_path(name));
    copy_file(ref, path);
    read_lines(path, L);
    return path;
}

/* Writes L to path (freeing L when done is set) and verifies it with the server's key. */
static fl_audit_report rewrite(const char *path, lines *L, int done) {
    write_lines(path, L);
    if (done) free_lines(L);
    return verify(path, key);
}

/* Writes and frees L, verifies path: the first broken line must be `line`, for a reason holding
 * text. */
static void expect_broken(const char *path, lines *L, int64_t line, const char *text) {
    fl_audit_report rep = rewrite(path, L, 1);
    fl_test_checks++;
    if (rep.bad_line != line || !strstr(rep.problem, text))
        fl_test_fail_at(__FILE__, __LINE__,
                        "%s: line %" PRId64 " (%s), expected line %" PRId64 " with \"%s\"", path,
                        rep.bad_line, rep.problem, line, text);
}

/* Replaces the first `from` in line i with `to` (same length or not). */
static void edit_line(lines *L, int i, const char *from, const char *to) {
    char *at = strstr(L->line[i], from);
    if (!at) {
        fl_test_fail_at(__FILE__, __LINE__, "no \"%s\" in line %d", from, i + 1);
        return;
    }
    size_t n = strlen(L->line[i]) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - L->line[i]), L->line[i], to, at + strlen(from));
    free(L->line[i]);
    L->line[i] = s;
}

/* Rewrites lines from..n-1 (0-based) so that seq and prev chain again after an edit: what an
 * attacker with write access but without the key can do. */
static void rechain(lines *L, int from) {
    for (int i = from; i < L->n; i++) {
        fl_audit_record r;
        char why[96], prev[FL_SHA256_HEX];
        if (!fl__audit_parse(L->line[i], strlen(L->line[i]), &r, why, sizeof why)) {
            fl_test_fail_at(__FILE__, __LINE__, "line %d: %s", i + 1, why);
            return;
        }
        fl_sha256_hex(L->line[i - 1], strlen(L->line[i - 1]), prev);
        free((char *)r.prev);
        r.prev = strdup(prev);
        r.seq = i + 1;
        fl__json_buf b = {0};
        fl__audit_serialize(&b, &r, 1);
        free(L->line[i]);
        L->line[i] = b.s;
        fl__audit_record_free(&r);
    }
}

/* A record appended to L by someone: seq and prev chained, signed with signer when it is a
 * checkpoint (with key_id claimed) over the records since the last checkpoint (line cp). */
static char *forge(const lines *L, const char *kind, const char *data, const fl_sign_key *signer) {
    char prev[FL_SHA256_HEX], sig_hex[2 * FL_ED25519_SIG_LEN + 1];
    const char *last = L->line[L->n - 1];
    fl_sha256_hex(last, strlen(last), prev);
    fl_audit_record r = {.seq = L->n + 1,
                         .time = "2030-01-01T00:00:00Z",
                         .kind = kind,
                         .round = 2,
                         .actor = "server",
                         .data = data,
                         .prev = prev};
    fl__json_buf b = {0};
    if (signer) {
        fl__audit_signed_message(&b, &r);
        uint8_t sig[FL_ED25519_SIG_LEN];
        fl_err err;
        CHECK_OK(fl_sign(signer, b.s, b.len, sig, &err), &err);
        fl_hex_encode(sig, sizeof sig, sig_hex);
        r.sig = sig_hex;
        b.len = 0;
    }
    fl__audit_serialize(&b, &r, 1);
    return b.s;
}

/* The data of a checkpoint over lines from..to (1-based) of L, claiming key_id. */
static void checkpoint_data(const lines *L, int from, int to, const char *key_id, char *out,
                            size_t cap) {
    uint8_t leaves[64][FL_SHA256_LEN], root[FL_SHA256_LEN];
    char hex[FL_SHA256_HEX];
    for (int i = from; i <= to; i++)
        fl_merkle_leaf_hash(L->line[i - 1], strlen(L->line[i - 1]), leaves[i - from]);
    fl_merkle_root((const uint8_t(*)[FL_SHA256_LEN])leaves, (size_t)(to - from + 1), root);
    fl_hex_encode(root, sizeof root, hex);
    snprintf(out, cap,
             "{\"from\":%d,\"to\":%d,\"count\":%d,\"merkle_root\":\"%s\",\"key_id\":\"%s\"}", from,
             to, to - from + 1, hex, key_id);
}

/* Appends to L (lines 1-14) a forged record of kind, signed by signer (none if NULL) and, for a
 * checkpoint, claiming key id claimed over lines 13-14; writes and verifies it, then takes the
 * line off L again. */
static fl_audit_report try_append(const char *path, lines *L, const char *kind, const char *claimed,
                                  const fl_sign_key *signer) {
    char data[400] = "{}";
    if (!strcmp(kind, "checkpoint")) checkpoint_data(L, 13, 14, claimed, data, sizeof data);
    char *forged = forge(L, kind, data, signer);
    L->line[L->n++] = forged;
    fl_audit_report rep = rewrite(path, L, 0);
    free(L->line[--L->n]);
    return rep;
}

static void test_tamper(void) {
    char ref[512];
    snprintf(ref, sizeof ref, "%s", fl_test_path("ref.audit")); /* fl_test_path's rotate */
    make_log(ref);
    lines L;
    fl_audit_report rep;

    /* One byte of a record's data: the next line's prev no longer matches. */
    const char *p = tampered(ref, "edit.audit", &L);
    edit_line(&L, 4, "\"clip\":1.0", "\"clip\":9.0");
    rep = rewrite(p, &L, 1);
    CHECK_BROKEN(rep, 6, "line 5 was altered");
    CHECK_EQ_INT(rep.records, 5); /* the lines before it verified */

    /* The same edit, re-chained (seq and prev fixed up): the signed checkpoint catches it. */
    p = tampered(ref, "rechain.audit", &L);
    edit_line(&L, 4, "\"clip\":1.0", "\"clip\":9.0");
    rechain(&L, 5);
    expect_broken(p, &L, 8, "merkle_root");

    /* An edited checkpoint: its own signature fails. */
    p = tampered(ref, "editcp.audit", &L);
    edit_line(&L, 11, "\"round\":2", "\"round\":7");
    expect_broken(p, &L, 12, "signature does not verify");

    /* A removed record: a gap in seq. */
    p = tampered(ref, "delete.audit", &L);
    free(L.line[3]);
    L.line[3] = NULL;
    expect_broken(p, &L, 4, "seq is 5, expected 4");

    /* A removed record re-chained: the checkpoint's range and root no longer fit. */
    p = tampered(ref, "delete2.audit", &L);
    free(L.line[3]);
    memmove(&L.line[3], &L.line[4], (size_t)(L.n - 4) * sizeof *L.line);
    L.n--;
    rechain(&L, 3);
    expect_broken(p, &L, 7, "covers records 1-7");

    /* Two records swapped. */
    p = tampered(ref, "swap.audit", &L);
    char *t = L.line[4];
    L.line[4] = L.line[5];
    L.line[5] = t;
    expect_broken(p, &L, 5, "reordered");

    /* A space added: still JSON, but not the form the log writes. */
    p = tampered(ref, "space.audit", &L);
    edit_line(&L, 2, "\"kind\":", "\"kind\": ");
    expect_broken(p, &L, 3, "not in the form");

    /* A record appended by someone else, correctly chained: not signed, so only reported as
     * unsigned; verification still passes the chain. */
    p = tampered(ref, "append.audit", &L);
    char *forged = forge(&L, "update_accepted", "{\"sha256\":\"" H64 "\"}", NULL);
    L.line[L.n++] = forged;
    rep = rewrite(p, &L, 0);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.unsigned_records, 2);
    CHECK_EQ_INT(rep.last_checkpoint_seq, 12);

    /* ... and a checkpoint forged to sign it: with the server's key id but another key, or
     * with the other key's id: both fail. One right in every respect verifies (so the forging
     * code is sound); one without "sig", or a "sig" on another kind of record, does not. */
    char key_id[FL_SHA256_HEX], other_id[FL_SHA256_HEX];
    fl_sign_key_id(key, key_id);
    fl_sign_key_id(other_key, other_id);
    rep = try_append(p, &L, "checkpoint", key_id, other_key);
    CHECK_BROKEN(rep, 15, "signature does not verify");
    rep = try_append(p, &L, "checkpoint", other_id, other_key);
    CHECK_BROKEN(rep, 15, "signed by key id");
    rep = try_append(p, &L, "checkpoint", key_id, NULL);
    CHECK_BROKEN(rep, 15, "a checkpoint without \"sig\"");
    rep = try_append(p, &L, "evaluation", key_id, key);
    CHECK_BROKEN(rep, 15, "\"sig\" on a record of kind \"evaluation\"");
    rep = try_append(p, &L, "checkpoint", key_id, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.checkpoints, 3);
    free_lines(&L);

    /* The wrong public key: line 1 names the log's key. */
    rep = verify(ref, other_key);
    CHECK_BROKEN(rep, 1, "the wrong public key");
    CHECK_EQ_INT(rep.records, 0);

    /* Opening a tampered log is refused and leaves it as it was. */
    p = fl_test_path("swap.audit");
    size_t n0, n1;
    char *before = fl_test_read_file(p, &n0);
    fl_audit *log = NULL;
    fl_err err = {{0}};
    CHECK(fl_audit_open(p, key, &log, &err) == FL_EFORMAT && !log);
    CHECK_MSG(err, "swap.audit: line 5");
    CHECK_MSG(err, "refusing to append");
    char *after = fl_test_read_file(p, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(before), free(after);
    /* So is a log of another key. */
    CHECK(fl_audit_open(ref, other_key, &log, &err) == FL_EFORMAT && !log);
    CHECK_MSG(err, "created for key id");
}

/* ------------------------------------------------------------------------------------------ */
/* torn tails                                                                                  */

static void test_torn(void) {
    char ref[512];
    snprintf(ref, sizeof ref, "%s", fl_test_path("ref2.audit"));
    make_log(ref);
    size_t n;
    char *text = fl_test_read_file(ref, &n);
    if (!text) return;
    char *last = text + n - 2;
    while (last > text && last[-1] != '\n') last--; /* the start of line 13 */
    size_t keep = (size_t)(last - text), cut = 25;
    fl_err err = {{0}};
    fl_audit *log = NULL;

    /* Cut in the middle of the last line: verify says torn; open cuts it and logs the cut. */
    const char *p = fl_test_path("torn.audit");
    fl_test_write_file(p, text, keep + cut);
    fl_audit_report rep = verify(p, key);
    CHECK_BROKEN(rep, 13, "torn");
    CHECK(rep.torn);
    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
    if (log) {
        CHECK_OK(fl_audit_append(log, "resume", 2, "server", NULL, &err), &err);
        fl_audit_close(log);
    }
    rep = verify(p, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 14);
    lines L;
    read_lines(p, &L);
    if (L.n == 14) {
        char want[200], hex[FL_SHA256_HEX];
        fl_sha256_hex(last, cut, hex);
        snprintf(want, sizeof want,
                 "\"kind\":\"cut\",\"round\":-1,\"actor\":\"audit\",\"data\":{\"line\":13,"
                 "\"offset\":%zu,\"bytes\":%zu,\"sha256\":\"%s\",\"reason\":\"no newline\"}",
                 keep, cut, hex);
        CHECK(strstr(L.line[12], want));
        CHECK(
            strstr(L.line[13], "\"kind\":\"resume\",\"round\":2,\"actor\":\"server\",\"data\":{}"));
    }
    free_lines(&L);

    /* A last line that ends in a newline but does not parse (garbage after a crash). */
    p = fl_test_path("garbage.audit");
    fl__json_buf b = {0};
    fl__json_put(&b, "%.*s{\"seq\":13,\"ti\n", (int)keep, text);
    fl_test_write_file(p, b.s, b.len);
    rep = verify(p, key);
    CHECK_BROKEN(rep, 13, "unparseable");
    CHECK(rep.torn);
    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
    fl_audit_close(log);
    rep = verify(p, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    read_lines(p, &L);
    CHECK(L.n == 13 && strstr(L.line[12], "\"bytes\":14,") && strstr(L.line[12], "unparseable"));
    free_lines(&L);
    /* An unparseable line in the middle is no torn write: refused. */
    b.len = 0;
    fl__json_put(&b, "%.*s{garbage}\n%s", (int)keep, text, last);
    fl_test_write_file(p, b.s, b.len);
    rep = verify(p, key);
    CHECK_BROKEN(rep, 13, "unparseable");
    CHECK(!rep.torn);
    CHECK(fl_audit_open(p, key, &log, &err) == FL_EFORMAT);
    free(b.s);

    /* A torn first line: the file restarts with log_created, then the cut. */
    p = fl_test_path("torn1.audit");
    fl_test_write_file(p, text, 30);
    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
    fl_audit_close(log);
    rep = verify(p, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 2);
    read_lines(p, &L);
    CHECK(L.n == 2 && strstr(L.line[1], "\"offset\":0,\"bytes\":30,"));
    free_lines(&L);
    free(text);

    /* An empty file: verify says so; open starts the log. */
    p = fl_test_path("empty.audit");
    fl_test_write_file(p, "", 0);
    rep = verify(p, key);
    CHECK_BROKEN(rep, 1, "empty");
    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
    fl_audit_close(log);
    rep = verify(p, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* arguments, files, the lock                                                                  */

static void test_arguments(void) {
    const char *p = fl_test_path("args.audit");
    fl_err err = {{0}};
    fl_audit *log = NULL, *again = NULL;
    fl_audit_report rep;
    CHECK(fl_audit_verify(fl_test_path("missing.audit"), key, &rep, &err) == FL_ENOTFOUND);
    CHECK_MSG(err, "missing.audit");
    fl_sign_key *pub = NULL;
    uint8_t raw[FL_ED25519_PUB_LEN];
    fl_sign_key_public(key, raw);
    CHECK_OK(fl_sign_key_from_public(raw, &pub, &err), &err);
    CHECK(fl_audit_open(p, pub, &log, &err) == FL_EINVAL && !log);
    CHECK_MSG(err, "private key");

    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
    if (!log) goto done;
    struct stat st;
    CHECK(stat(p, &st) == 0);
    /* A second writer is locked out. */
    CHECK(fl_audit_open(p, key, &again, &err) == FL_EIO && !again);
    CHECK_MSG(err, "in use by another process");

    static const struct {
        const char *kind, *actor, *data;
        int64_t round;
        const char *msg;
    } bad[] = {
        {"Join", "a", "{}", 0, "kind \"Join\""},
        {"", "a", "{}", 0, "kind \"\""},
        {"a_kind_name_longer_than_thirty_two", "a", "{}", 0, "kind"},
        {"checkpoint", "a", "{}", 0, "written by the log itself"},
        {"log_created", "a", "{}", 0, "written by the log itself"},
        {"cut", "a", "{}", 0, "written by the log itself"},
        {"join", "", "{}", 0, "actor"},
        {"join", "a", "{}", -2, "round -2"},
        {"join", "a", "{\"a\":\n1}", 0, "line break"},
        {"join", "a", "[1]", 0, "not one JSON object"},
        {"join", "a", "{\"a\":1", 0, "not one JSON object"},
        {"join", "a", "{} {}", 0, "not one JSON object"},
        {"join", "a", " {}", 0, "not one JSON object"},
        {"join", "a", "{\"a\":nan}", 0, "not one JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fl_status s =
            fl_audit_append(log, bad[i].kind, bad[i].round, bad[i].actor, bad[i].data, &err);
        fl_test_checks++;
        if (s != FL_EINVAL || !strstr(err.msg, bad[i].msg) || !strstr(err.msg, "args.audit"))
            fl_test_fail_at(__FILE__, __LINE__, "bad[%zu]: %s: %s", i, fl_status_str(s), err.msg);
    }
    char *big = malloc(FL_AUDIT_DATA_MAX + 16);
    memset(big, ' ', FL_AUDIT_DATA_MAX + 15);
    big[0] = '{';
    big[FL_AUDIT_DATA_MAX + 14] = '}';
    big[FL_AUDIT_DATA_MAX + 15] = '\0';
    CHECK(fl_audit_append(log, "join", 0, "a", big, &err) == FL_EINVAL);
    CHECK_MSG(err, "bytes");
    free(big);
    CHECK_OK(fl_audit_append(log, "join", 0, "a", NULL, &err), &err);
    fl_audit_close(log);
    log = NULL;
    rep = verify(p, key);
    CHECK_EQ_INT(rep.bad_line, 0);
    CHECK_EQ_INT(rep.records, 2); /* log_created and the one good join */
    /* After close, the lock is free again. */
    CHECK_OK(fl_audit_open(p, key, &log, &err), &err);
done:
    fl_audit_close(log);
    fl_audit_close(NULL);
    fl_sign_key_free(pub);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_audit_")) return 1;
    fl_err err = {{0}};
    CHECK_OK(fl_sign_key_generate(&key, &err), &err);
    CHECK_OK(fl_sign_key_generate(&other_key, &err), &err);
    if (key && other_key) {
        test_merkle();
        test_intact();
        test_tamper();
        test_torn();
        test_arguments();
    }
    fl_sign_key_free(key);
    fl_sign_key_free(other_key);
    if (fl_test_failures == 0) fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_audit");
}
