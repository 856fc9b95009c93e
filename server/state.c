/* state.c - the server's state files, its round journal and rounds.csv: written so that a
 * kill -9 at any moment leaves either the previous committed round or the new one. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic.h"
#include "crypto/hash.h"

#define STATE_MAGIC "FLSTATE2"    /* written: version 1 and the clip norm after opt_step */
#define STATE_MAGIC_V1 "FLSTATE1" /* read too: no clip norm */

void fl_server_state_destroy(fl_server_state *st) {
    free(st->global);
    free(st->rnet);
    free(st->m);
    free(st->v);
    for (int k = 0; k < 4; k++) fl_stats_result_destroy(&st->std[k]);
    memset(st, 0, sizeof *st);
}

static void state_path(const char *dir, int64_t round, char *out, size_t cap) {
    snprintf(out, cap, "%s/state/round-%lld.bin", dir, (long long)round);
}

/* ---- the state file: magic, sizes, the clip norm, vectors, standardizations, SHA-256 of all
 * before ---- */

typedef struct {
    FILE *f;
    fl_sha256_ctx h;
    int bad;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (n == 0 || w->bad) return;
    if (fwrite(p, 1, n, w->f) != n || fl_sha256_update(&w->h, p, n) != FL_OK) w->bad = 1;
}
static void put_u64(writer *w, uint64_t v) {
    put(w, &v, sizeof v);
}

static fl_status write_state(const char *path, const fl_server_state *st, fl_err *err) {
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    writer w = {af.f, {0}, 0};
    if (fl_sha256_init(&w.h) != FL_OK) w.bad = 1;
    put(&w, STATE_MAGIC, 8);
    put_u64(&w, (uint64_t)st->row.round);
    put_u64(&w, st->n_params);
    put_u64(&w, st->n_buffers);
    put_u64(&w, st->global ? 1 : 0);
    put_u64(&w, st->n_rnet);
    put_u64(&w, st->n_opt);
    put_u64(&w, (uint64_t)st->opt_step);
    put(&w, &st->clip, sizeof st->clip);
    if (st->global) put(&w, st->global, (st->n_params + st->n_buffers) * sizeof(float));
    put(&w, st->rnet, st->n_rnet * sizeof(float));
    put(&w, st->m, st->n_opt * sizeof(float));
    put(&w, st->v, st->n_opt * sizeof(float));
    for (int k = 0; k < 4; k++) {
        const fl_stats_result *r = &st->std[k];
        put_u64(&w, (uint64_t)st->has_std[k]);
        if (!st->has_std[k]) continue;
        put_u64(&w, (uint64_t)r->F);
        put_u64(&w, (uint64_t)r->n);
        put(&w, r->index, (size_t)r->n * sizeof(uint32_t));
        put(&w, r->mean, (size_t)r->n * sizeof(float));
        put(&w, r->std, (size_t)r->n * sizeof(float));
    }
    uint8_t digest[FL_SHA256_LEN];
    if (!w.bad && fl_sha256_final(&w.h, digest) == FL_OK) {
        if (fwrite(digest, 1, sizeof digest, af.f) != sizeof digest) w.bad = 1;
    } else
        w.bad = 1;
    fl_sha256_destroy(&w.h);
    if (w.bad) {
        fl_atomic_abort(&af);
        return fl_fail(err, FL_EIO, "%s: cannot write the server state (%s)", path,
                       strerror(errno ? errno : EIO));
    }
    return fl_atomic_commit(&af, err);
}

typedef struct {
    const uint8_t *p;
    size_t n, at;
    int bad;
} reader;

static void get(reader *r, void *out, size_t n) {
    if (r->bad || n > r->n - r->at) {
        r->bad = 1;
        if (out && n) memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->at, n);
    r->at += n;
}
static uint64_t get_u64(reader *r) {
    uint64_t v = 0;
    get(r, &v, sizeof v);
    return v;
}
/* n floats (or uint32) into a new heap array; NULL for n = 0 or when the file is short. */
static void *get_array(reader *r, uint64_t n, size_t size) {
    if (n == 0 || r->bad || n > (r->n - r->at) / size) {
        if (n) r->bad = 1;
        return NULL;
    }
    void *a = malloc(n * size);
    if (!a) {
        r->bad = 1;
        return NULL;
    }
    get(r, a, n * size);
    return a;
}

static fl_status read_state(const char *path, int64_t round, fl_server_state *st, fl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fl_fail(err, FL_EIO, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return fl_fail(err, FL_EIO, "%s: cannot read the server state", path);
    }
    fclose(f);
    fl_status s = FL_OK;
    uint8_t digest[FL_SHA256_LEN];
    int v1 = len >= 8 && memcmp(buf, STATE_MAGIC_V1, 8) == 0;
    if (len < 8 + 32 || (!v1 && memcmp(buf, STATE_MAGIC, 8) != 0) ||
        fl_sha256(buf, (size_t)len - 32, digest) != FL_OK ||
        memcmp(digest, buf + len - 32, 32) != 0) {
        free(buf);
        return fl_fail(err, FL_EFORMAT, "%s: not a fedlung server state file, or damaged", path);
    }
    reader r = {buf, (size_t)len - 32, 8, 0};
    if ((int64_t)get_u64(&r) != round) r.bad = 1;
    st->n_params = get_u64(&r);
    st->n_buffers = get_u64(&r);
    int has_global = get_u64(&r) != 0;
    st->n_rnet = get_u64(&r);
    st->n_opt = get_u64(&r);
    st->opt_step = (int)get_u64(&r);
    st->clip = 0;
    if (!v1) get(&r, &st->clip, sizeof st->clip);
    if (!(st->clip >= 0) || !isfinite(st->clip)) r.bad = 1;
    if (has_global) st->global = get_array(&r, st->n_params + st->n_buffers, sizeof(float));
    st->rnet = get_array(&r, st->n_rnet, sizeof(float));
    st->m = get_array(&r, st->n_opt, sizeof(float));
    st->v = get_array(&r, st->n_opt, sizeof(float));
    for (int k = 0; k < 4 && !r.bad; k++) {
        st->has_std[k] = get_u64(&r) != 0;
        if (!st->has_std[k]) continue;
        fl_stats_result *q = &st->std[k];
        q->F = (int)get_u64(&r);
        q->n = (int)get_u64(&r);
        if (q->n <= 0 || q->n > q->F) {
            r.bad = 1;
            break;
        }
        q->index = get_array(&r, (uint64_t)q->n, sizeof(uint32_t));
        q->mean = get_array(&r, (uint64_t)q->n, sizeof(float));
        q->std = get_array(&r, (uint64_t)q->n, sizeof(float));
    }
    if (r.bad || r.at != r.n) s = fl_fail(err, FL_EFORMAT, "%s: inconsistent server state", path);
    free(buf);
    return s;
}

/* ---- the journal ---- */

static void put_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void put_list(FILE *f, const double *v, int n) {
    fputc('[', f);
    for (int k = 0; k < n; k++) {
        if (k) fputc(',', f);
        put_num(f, v[k]);
    }
    fputc(']', f);
}

/* One journal line (with its newline) into a heap string. */
static char *journal_line(const fl_plan *p, const fl_journal_row *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f,
            "{\"round\":%lld,\"phase\":\"%s\",\"phase_round\":%d,\"phase_done\":%d,"
            "\"participants\":%d,\"evaluated\":%d,\"loss\":",
            (long long)r->round, fl_phase_name(r->phase), r->phase_round, r->phase_done,
            r->participants, r->evaluated);
    put_num(f, r->loss);
    fputs(",\"macro_auc\":", f);
    put_num(f, r->macro_auc);
    fputs(",\"auc\":", f);
    put_list(f, r->auc, p->n_classes);
    fputs(",\"ap\":", f);
    put_list(f, r->ap, p->n_classes);
    fprintf(f, ",\"model_version\":%llu,\"model_sha256\":\"%s\",\"unix_ms\":%lld",
            (unsigned long long)r->model_version, r->model_sha256, (long long)r->unix_ms);
    if (isfinite(r->clip_norm)) {
        fputs(",\"clip_norm\":", f);
        put_num(f, r->clip_norm);
        fputs(",\"clip_bits_mean\":", f);
        put_num(f, r->clip_bits_mean);
        fputs(",\"clip_next\":", f);
        put_num(f, r->clip_next);
    }
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The value after "key": in line, or NULL. */
static const char *field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(line, pat);
    return at ? at + strlen(pat) : NULL;
}

/* A number or null (NaN) at *pp, advancing it. Returns 0 if neither. */
static int parse_num(const char **pp, double *v) {
    const char *p = *pp;
    if (strncmp(p, "null", 4) == 0) {
        *v = NAN;
        *pp = p + 4;
        return 1;
    }
    char *end;
    *v = strtod(p, &end);
    if (end == p) return 0;
    *pp = end;
    return 1;
}

static int parse_int_field(const char *line, const char *key, int64_t *out) {
    const char *p = field(line, key);
    double v;
    if (!p || !parse_num(&p, &v) || !isfinite(v)) return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_row(const fl_plan *p, const char *line, fl_journal_row *r) {
    memset(r, 0, sizeof *r);
    int64_t v[8];
    static const char *const ints[] = {"round",     "phase_round", "phase_done",   "participants",
                                       "evaluated", "unix_ms",     "model_version"};
    for (int i = 0; i < 7; i++)
        if (!parse_int_field(line, ints[i], &v[i])) return 0;
    r->round = v[0];
    r->phase_round = (int)v[1];
    r->phase_done = (int)v[2];
    r->participants = (int)v[3];
    r->evaluated = (int)v[4];
    r->unix_ms = v[5];
    r->model_version = (uint64_t)v[6];
    const char *ph = field(line, "phase");
    if (!ph || *ph != '"') return 0;
    for (int k = FL_PHASE_STATISTICS; k <= FL_PHASE_FUSION; k++) {
        size_t n = strlen(fl_phase_name((fl_phase)k));
        if (strncmp(ph + 1, fl_phase_name((fl_phase)k), n) == 0 && ph[1 + n] == '"')
            r->phase = (fl_phase)k;
    }
    const char *q;
    if (r->phase == FL_PHASE_NONE || !(q = field(line, "loss")) || !parse_num(&q, &r->loss) ||
        !(q = field(line, "macro_auc")) || !parse_num(&q, &r->macro_auc))
        return 0;
    const char *lists[2] = {"auc", "ap"};
    for (int l = 0; l < 2; l++) {
        double *dst = l ? r->ap : r->auc;
        if (!(q = field(line, lists[l])) || *q++ != '[') return 0;
        for (int k = 0; k < p->n_classes; k++) {
            if ((k && *q++ != ',') || !parse_num(&q, &dst[k])) return 0;
        }
        if (*q != ']') return 0;
    }
    const char *h = field(line, "model_sha256");
    if (!h || *h != '"') return 0;
    size_t n = strcspn(h + 1, "\"");
    if (n != 0 && n != 64) return 0;
    memcpy(r->model_sha256, h + 1, n);
    r->model_sha256[n] = 0;
    /* adaptive clipping's three, all or none */
    const char *clips[3] = {"clip_norm", "clip_bits_mean", "clip_next"};
    double *cv[3] = {&r->clip_norm, &r->clip_bits_mean, &r->clip_next};
    int found = 0;
    for (int i = 0; i < 3; i++) {
        *cv[i] = NAN;
        if (!(q = field(line, clips[i]))) continue;
        if (!parse_num(&q, cv[i])) return 0;
        found++;
    }
    return found == 0 || (found == 3 && r->clip_norm > 0 && r->clip_next > 0);
}

/* rounds.csv from the rows. */
static fl_status write_csv(const char *dir, const fl_plan *p, const fl_journal_row *rows, int n,
                           fl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/rounds.csv", dir);
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    int clip = p->privacy.adaptive_clip;
    fputs("round,phase,participants,loss,macro_auc", af.f);
    for (int k = 0; k < p->n_classes; k++) fprintf(af.f, ",auc_%s", p->class_names[k]);
    fputs(clip ? ",clip_norm\n" : "\n", af.f);
    for (int i = 0; i < n; i++) {
        const fl_journal_row *r = &rows[i];
        fprintf(af.f, "%lld,%s,%d,", (long long)r->round, fl_phase_name(r->phase), r->participants);
        if (isfinite(r->loss)) fprintf(af.f, "%.6f", r->loss);
        fputc(',', af.f);
        if (isfinite(r->macro_auc)) fprintf(af.f, "%.6f", r->macro_auc);
        for (int k = 0; k < p->n_classes; k++) {
            fputc(',', af.f);
            if (isfinite(r->auc[k])) fprintf(af.f, "%.6f", r->auc[k]);
        }
        if (clip) fputc(',', af.f);
        if (clip && isfinite(r->clip_norm)) fprintf(af.f, "%.9g", r->clip_norm);
        fputc('\n', af.f);
    }
    return fl_atomic_commit(&af, err);
}

/* Reads every complete line of the journal; cuts a torn last line. */
static fl_status read_journal(const char *dir, const fl_plan *p, fl_journal_row **rows, int *n,
                              fl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    *rows = NULL;
    *n = 0;
    FILE *f = fopen(path, "r+");
    if (!f) return errno == ENOENT ? FL_OK : fl_fail(err, FL_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long good = 0;
    int lineno = 0;
    fl_status s = FL_OK;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') break; /* torn: cut below */
        fl_journal_row r;
        if (!parse_row(p, line, &r) || r.round != *n + 1) {
            s = fl_fail(err, FL_EFORMAT, "%s:%d: not a journal line of round %d", path, lineno,
                        *n + 1);
            break;
        }
        fl_journal_row *grown = realloc(*rows, (size_t)(*n + 1) * sizeof **rows);
        if (!grown) {
            s = fl_fail(err, FL_ENOMEM, "out of memory reading %s", path);
            break;
        }
        *rows = grown;
        (*rows)[(*n)++] = r;
        good = ftell(f);
    }
    free(line);
    if (s == FL_OK) {
        fseek(f, 0, SEEK_END);
        long end = ftell(f);
        if (end > good) {
            fprintf(stderr, "fedlung server: %s: cutting a torn last line (%ld bytes)\n", path,
                    end - good);
            if (ftruncate(fileno(f), good) != 0 || fsync(fileno(f)) != 0)
                s = fl_fail(err, FL_EIO, "%s: cannot cut the torn last line: %s", path,
                            strerror(errno));
        }
    }
    fclose(f);
    if (s != FL_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return s;
}

/* Removes state files of rounds other than keep and keep - 1. */
static void prune(const char *dir, int64_t keep) {
    char sdir[4200];
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    DIR *d = opendir(sdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long r;
        char tail;
        if (sscanf(e->d_name, "round-%lld.bi%c", &r, &tail) != 2 || tail != 'n') continue;
        if (r == keep || r == keep - 1) continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", sdir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

fl_status fl_state_commit(const char *dir, const fl_plan *p, const fl_server_state *st,
                          fl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/state", dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return fl_fail(err, FL_EIO, "%s: %s", path, strerror(errno));
    state_path(dir, st->row.round, path, sizeof path);
    fl_status s = write_state(path, st, err);
    if (s != FL_OK) return s;
    char *line = journal_line(p, &st->row);
    if (!line) return fl_fail(err, FL_ENOMEM, "out of memory for a journal line");
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    size_t n = strlen(line);
    int ok = fd >= 0 && write(fd, line, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    free(line);
    if (!ok) return fl_fail(err, FL_EIO, "%s: cannot append the round: %s", path, strerror(e));
    fl_journal_row *rows;
    int nr;
    if ((s = read_journal(dir, p, &rows, &nr, err)) != FL_OK) return s;
    s = write_csv(dir, p, rows, nr, err);
    free(rows);
    prune(dir, st->row.round);
    return s;
}

fl_status fl_state_load(const char *dir, const fl_plan *p, fl_journal_row **rows, int *n,
                        fl_server_state *st, fl_err *err) {
    memset(st, 0, sizeof *st);
    fl_status s = read_journal(dir, p, rows, n, err);
    if (s != FL_OK) return s;
    int64_t last = *n ? (*rows)[*n - 1].round : 0;
    prune(dir, last); /* also a state file written after the last commit */
    char path[4200];
    state_path(dir, last + 1, path, sizeof path);
    unlink(path);
    if (*n) {
        state_path(dir, last, path, sizeof path);
        if ((s = read_state(path, last, st, err)) != FL_OK) goto fail;
        st->row = (*rows)[*n - 1];
    }
    if ((s = write_csv(dir, p, *rows, *n, err)) != FL_OK) goto fail;
    return FL_OK;
fail:
    fl_server_state_destroy(st);
    free(*rows);
    *rows = NULL;
    *n = 0;
    return s;
}
