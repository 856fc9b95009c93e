/* audit.c - the audit log's writer (see audit.h): open with verification and the cut of a torn
 * tail, one line per record with a single O_APPEND write and fsync, signed checkpoints. Every
 * line written goes through the same chain checker as verification (audit_record.c). Reading
 * a log is audit_verify.c. */
#define _GNU_SOURCE /* flock */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_impl.h"
#include "merkle.h"

#define LOG_ACTOR "audit" /* the actor of the records the log writes itself */

struct fl_audit {
    char *path;
    int fd;                 /* O_RDWR | O_APPEND, flock'ed */
    const fl_sign_key *key; /* borrowed */
    fl__audit_chain chain;  /* the state after the last line written */
    int broken;             /* a write could not be undone: refuse to append until reopened */
    pthread_mutex_t mu;
};

/* The current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
static void now_utc(char out[21]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes all of buf[0..n) at the end of the file and fsyncs it. On failure the file is cut back
 * to the chain's length (a torn line never stays behind a good one); if that fails too, or if
 * fsync failed, the log is marked broken. */
static fl_status write_line(fl_audit *log, const char *buf, size_t n, fl_err *err) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(log->fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            if (ftruncate(log->fd, (off_t)log->chain.good_bytes) != 0 || fsync(log->fd) != 0)
                log->broken = 1;
            return fl_fail(err, FL_EIO, "%s: cannot append a record: %s", log->path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(log->fd) != 0) {
        log->broken = 1;
        return fl_fail(err, FL_EIO, "%s: cannot fsync a record: %s", log->path, strerror(errno));
    }
    return FL_OK;
}

/* Fills r's seq (the next), time (now, into the caller's time) and prev (the chain's head,
 * into the caller's prev). */
static void stamp(const fl_audit *log, fl_audit_record *r, char time[21],
                  char prev[FL_SHA256_HEX]) {
    now_utc(time);
    fl_hex_encode(log->chain.head, sizeof log->chain.head, prev);
    r->seq = log->chain.seq + 1;
    r->time = time;
    r->prev = prev;
}

/* Serialises the stamped record r, writes it and advances the chain over it. */
static fl_status write_record(fl_audit *log, const fl_audit_record *r, fl_err *err) {
    if (log->broken)
        return fl_fail(err, FL_EIO, "%s: an earlier write failed; reopen the log to go on",
                       log->path);
    fl__json_buf b = {0};
    fl__audit_serialize(&b, r, 1);
    fl__json_put(&b, "\n");
    if (b.oom) {
        free(b.s);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", log->path);
    }
    fl_status s = write_line(log, b.s, b.len, err);
    int unparseable;
    int ok = s == FL_OK ? fl__audit_chain_add(&log->chain, b.s, b.len - 1, &unparseable) : 1;
    if (ok != 1) { /* written, yet not what the chain accepts: never expected */
        log->broken = 1;
        s = ok < 0 ? fl_fail(err, FL_ENOMEM, "%s: out of memory", log->path)
                   : fl_fail(err, FL_EIO, "%s: line %" PRId64 " as written fails verification: %s",
                             log->path, log->chain.bad_line, log->chain.problem);
    }
    free(b.s);
    return s;
}

/* Stamps and writes r. */
static fl_status append_record(fl_audit *log, fl_audit_record *r, fl_err *err) {
    char time[21], prev[FL_SHA256_HEX];
    stamp(log, r, time, prev);
    return write_record(log, r, err);
}

/* The log's own records: data_json built here, so valid by construction. */
static fl_status append_own(fl_audit *log, const char *kind, int64_t round, const char *data,
                            fl_err *err) {
    fl_audit_record r = {.kind = kind, .round = round, .actor = LOG_ACTOR, .data = data};
    return append_record(log, &r, err);
}

/* The first line: {"format": FL_AUDIT_FORMAT, "key_id": the signing key's id}. */
static fl_status append_created(fl_audit *log, fl_err *err) {
    char data[40 + sizeof FL_AUDIT_FORMAT + FL_SHA256_HEX];
    snprintf(data, sizeof data, "{\"format\":\"%s\",\"key_id\":\"%s\"}", FL_AUDIT_FORMAT,
             log->chain.key_id);
    return append_own(log, FL_AUDIT_KIND_CREATED, -1, data, err);
}

/* Cuts the file (size bytes) after the chain's last good line, where the torn record that was
 * line `line` began, and logs the cut. */
static fl_status cut_tail(fl_audit *log, int64_t size, int64_t line, const char *reason,
                          fl_err *err) {
    int64_t at = log->chain.good_bytes, n = size - at;
    fl_sha256_ctx h = {0};
    uint8_t md[FL_SHA256_LEN];
    char hex[FL_SHA256_HEX], buf[4096];
    fl_status s = fl_sha256_init(&h);
    for (int64_t off = at; s == FL_OK && off < size;) {
        size_t want = size - off < (int64_t)sizeof buf ? (size_t)(size - off) : sizeof buf;
        ssize_t got = pread(log->fd, buf, want, (off_t)off);
        if (got <= 0) {
            fl_sha256_destroy(&h);
            return fl_fail(err, FL_EIO, "%s: cannot read the torn final record: %s", log->path,
                           got < 0 ? strerror(errno) : "the file shrank");
        }
        s = fl_sha256_update(&h, buf, (size_t)got);
        off += got;
    }
    if (s == FL_OK) s = fl_sha256_final(&h, md);
    fl_sha256_destroy(&h);
    if (s != FL_OK) return fl_fail(err, s, "%s: cannot hash the torn final record", log->path);
    fl_hex_encode(md, sizeof md, hex);
    if (ftruncate(log->fd, (off_t)at) != 0 || fsync(log->fd) != 0)
        return fl_fail(err, FL_EIO, "%s: cannot cut the torn final record: %s", log->path,
                       strerror(errno));
    if (at == 0 && (s = append_created(log, err)) != FL_OK) return s;
    char data[300];
    snprintf(data, sizeof data,
             "{\"line\":%" PRId64 ",\"offset\":%" PRId64 ",\"bytes\":%" PRId64
             ",\"sha256\":\"%s\",\"reason\":\"%s\"}",
             line, at, n, hex, reason);
    return append_own(log, FL_AUDIT_KIND_CUT, -1, data, err);
}

fl_status fl_audit_open(const char *path, const fl_sign_key *key, fl_audit **out, fl_err *err) {
    *out = NULL;
    if (!key || !fl_sign_key_is_private(key))
        return fl_fail(err, FL_EINVAL, "%s: the audit log needs a private key to sign with", path);
    fl_audit *log = calloc(1, sizeof *log);
    if (!log || !(log->path = strdup(path))) {
        free(log);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    log->key = key;
    log->fd = -1;
    pthread_mutex_init(&log->mu, NULL);
    fl__audit_chain_init(&log->chain, key);
    fl_status s = FL_OK;
    FILE *f = NULL;
    log->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log->fd < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot lock: %s", path,
                    errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        goto fail;
    }
    int rfd = dup(log->fd);
    struct stat st;
    if (rfd < 0 || !(f = fdopen(rfd, "r")) || fstat(log->fd, &st) != 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot read: %s", path, strerror(errno));
        if (rfd >= 0 && !f) close(rfd);
        goto fail;
    }
    s = fl__audit_chain_scan(&log->chain, f, path, err);
    if (s != FL_OK) goto fail;
    fl__audit_chain *c = &log->chain;
    if (c->bad_line && !c->torn) {
        s = fl_fail(err, FL_EFORMAT,
                    "%s: line %" PRId64 ": %s; refusing to append to a log that fails verification",
                    path, c->bad_line, c->problem);
        goto fail;
    }
    if (c->torn) {
        /* The chain goes on from the last good line; the cut is logged. */
        int64_t line = c->bad_line;
        const char *reason = strstr(c->problem, "newline") ? "no newline" : "unparseable";
        c->bad_line = 0;
        c->torn = 0;
        c->problem[0] = '\0';
        s = cut_tail(log, (int64_t)st.st_size, line, reason, err);
    } else if (c->seq == 0) {
        s = append_created(log, err);
    }
    if (s != FL_OK) goto fail;
    fclose(f);
    *out = log;
    return FL_OK;
fail:
    if (f) fclose(f);
    fl_audit_close(log);
    return s;
}

/* Checks the caller's record fields; FL_EINVAL naming the log and the field. */
static fl_status check_args(const fl_audit *log, const char *kind, int64_t round, const char *actor,
                            const char *data, fl_err *err) {
    const char *p = log->path;
    if (!kind || !fl__audit_kind_valid(kind))
        return fl_fail(err, FL_EINVAL, "%s: kind \"%.40s\" is not 1 to %d of [a-z0-9_]", p,
                       kind ? kind : "(null)", FL_AUDIT_KIND_MAX);
    if (!strcmp(kind, FL_AUDIT_KIND_CREATED) || !strcmp(kind, FL_AUDIT_KIND_CHECKPOINT) ||
        !strcmp(kind, FL_AUDIT_KIND_CUT))
        return fl_fail(err, FL_EINVAL, "%s: kind \"%s\" is written by the log itself", p, kind);
    if (round < -1) return fl_fail(err, FL_EINVAL, "%s: round %" PRId64 " is below -1", p, round);
    if (!actor || !actor[0] || strlen(actor) > FL_AUDIT_ACTOR_MAX)
        return fl_fail(err, FL_EINVAL, "%s: the actor must be 1 to %d bytes", p,
                       FL_AUDIT_ACTOR_MAX);
    size_t n = strlen(data);
    if (n > FL_AUDIT_DATA_MAX)
        return fl_fail(err, FL_EINVAL, "%s: %s data of %zu bytes (at most %d)", p, kind, n,
                       FL_AUDIT_DATA_MAX);
    if (strpbrk(data, "\r\n"))
        return fl_fail(err, FL_EINVAL, "%s: %s data holds a line break", p, kind);
    /* One JSON object and nothing after it. */
    fl__json j = {data, data, data + n, NULL};
    if (n == 0 || data[0] != '{' || !fl__json_skip(&j, 0) || j.p != j.end)
        return fl_fail(err, FL_EINVAL, "%s: %s data is not one JSON object (%s near byte %zu)", p,
                       kind, j.what ? j.what : "text after it", (size_t)(j.p - data));
    return FL_OK;
}

fl_status fl_audit_append(fl_audit *log, const char *kind, int64_t round, const char *actor,
                          const char *data_json, fl_err *err) {
    const char *data = data_json ? data_json : "{}";
    fl_status s = check_args(log, kind, round, actor, data, err);
    if (s != FL_OK) return s;
    fl_audit_record r = {.kind = kind, .round = round, .actor = actor, .data = data};
    pthread_mutex_lock(&log->mu);
    s = append_record(log, &r, err);
    pthread_mutex_unlock(&log->mu);
    return s;
}

fl_status fl_audit_checkpoint(fl_audit *log, int64_t round, fl_err *err) {
    if (round < -1)
        return fl_fail(err, FL_EINVAL, "%s: round %" PRId64 " is below -1", log->path, round);
    pthread_mutex_lock(&log->mu);
    fl__audit_chain *c = &log->chain;
    uint8_t root[FL_SHA256_LEN], sig[FL_ED25519_SIG_LEN];
    char root_hex[FL_SHA256_HEX], sig_hex[2 * FL_ED25519_SIG_LEN + 1], prev[FL_SHA256_HEX];
    char data[200 + 2 * FL_SHA256_HEX], time[21];
    fl__json_buf msg = {0};
    fl_status s = fl_merkle_root((const uint8_t(*)[FL_SHA256_LEN])c->leaves, c->n_leaves, root);
    if (s != FL_OK) {
        s = fl_fail(err, s, "%s: cannot hash the round's records", log->path);
        goto done;
    }
    fl_hex_encode(root, sizeof root, root_hex);
    int64_t from = c->last_cp + 1, to = c->seq;
    snprintf(data, sizeof data,
             "{\"from\":%" PRId64 ",\"to\":%" PRId64 ",\"count\":%" PRId64
             ",\"merkle_root\":\"%s\",\"key_id\":\"%s\"}",
             from, to, to - from + 1, root_hex, c->key_id);
    fl_audit_record r = {
        .kind = FL_AUDIT_KIND_CHECKPOINT, .round = round, .actor = LOG_ACTOR, .data = data};
    stamp(log, &r, time, prev); /* before signing: the time and prev are signed */
    fl__audit_signed_message(&msg, &r);
    if (msg.oom) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", log->path);
        goto done;
    }
    if ((s = fl_sign(log->key, msg.s, msg.len, sig, err)) != FL_OK) goto done;
    fl_hex_encode(sig, sizeof sig, sig_hex);
    r.sig = sig_hex;
    s = write_record(log, &r, err);
done:
    pthread_mutex_unlock(&log->mu);
    free(msg.s);
    return s;
}

void fl_audit_head(fl_audit *log, int64_t *seq, char head[FL_SHA256_HEX]) {
    *seq = 0;
    head[0] = '\0';
    if (!log) return;
    pthread_mutex_lock(&log->mu);
    *seq = log->chain.seq;
    fl_hex_encode(log->chain.head, sizeof log->chain.head, head);
    pthread_mutex_unlock(&log->mu);
}

void fl_audit_close(fl_audit *log) {
    if (!log) return;
    if (log->fd >= 0) close(log->fd); /* releases the flock */
    fl__audit_chain_destroy(&log->chain);
    pthread_mutex_destroy(&log->mu);
    free(log->path);
    free(log);
}
