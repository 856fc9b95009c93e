/* report.c - predictions CSV, metrics JSON and the atomic temporary-file-and-rename writer.
 * Output only; the formats are documented in report.h. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* atomic files                                                                                */

fl_status fl_atomic_open(fl_atomic_file *af, const char *path, fl_err *err) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memset(af, 0, sizeof *af);
    if (!path || !*path) return fl_fail(err, FL_EINVAL, "atomic write: empty path");
    size_t len = strlen(path) + 12;
    af->path = strdup(path);
    af->tmp = malloc(len);
    if (!af->path || !af->tmp) {
        fl_atomic_abort(af);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                 (uint64_t)(uintptr_t)af->tmp;
    int fd = -1, e = EEXIST;
    for (int attempt = 0; attempt < 100 && fd < 0 && e == EEXIST; attempt++) {
        char suf[7];
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            suf[i] = abc[(x >> 33) % (sizeof abc - 1)];
        }
        suf[6] = '\0';
        snprintf(af->tmp, len, "%s.tmp.%s", path, suf);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) e = errno;
    }
    if (fd < 0) {
        free(af->tmp); /* nothing was created: abort must not unlink a stranger's file */
        af->tmp = NULL;
        fl_atomic_abort(af);
        return fl_fail(err, FL_EIO, "%s: cannot create a temporary file next to it: %s", path,
                       strerror(e));
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        e = errno;
        close(fd);
        fl_atomic_abort(af);
        return fl_fail(err, FL_EIO, "%s: cannot open a stream: %s", path, strerror(e));
    }
    return FL_OK;
}

fl_status fl_atomic_commit(fl_atomic_file *af, fl_err *err) {
    int e = 0;
    if (ferror(af->f)) e = EIO; /* a failed fwrite/fprintf since open; errno is long gone */
    if (fflush(af->f) != 0 && !e) e = errno;
    if (!e && fsync(fileno(af->f)) != 0) e = errno;
    if (fclose(af->f) != 0 && !e) e = errno;
    af->f = NULL;
    if (!e && rename(af->tmp, af->path) != 0) e = errno;
    if (e) {
        fl_status s = fl_fail(err, FL_EIO, "%s: cannot write: %s", af->path, strerror(e));
        fl_atomic_abort(af);
        return s;
    }
    char *slash = strrchr(af->path, '/'); /* make the rename durable; failing here loses nothing */
    if (slash == af->path)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    int fd = open(slash ? af->path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(af->tmp); /* renamed: nothing to remove */
    af->tmp = NULL;
    fl_atomic_abort(af);
    return FL_OK;
}

void fl_atomic_abort(fl_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

/* ------------------------------------------------------------------------------------------ */
/* CSV                                                                                         */

/* Writes prefix + s as one CSV field, quoted (quotes doubled) when it needs to be. */
static void csv_field(FILE *f, const char *prefix, const char *s) {
    if (!strpbrk(s, ",\"\r\n") && !strpbrk(prefix, ",\"\r\n")) {
        fprintf(f, "%s%s", prefix, s);
        return;
    }
    fputc('"', f);
    for (int part = 0; part < 2; part++)
        for (const char *c = part ? s : prefix; *c; c++) {
            if (*c == '"') fputc('"', f);
            fputc(*c, f);
        }
    fputc('"', f);
}

fl_status fl_write_predictions_csv(const char *path, const char *const *ids, const int32_t *labels,
                                   const char *const *class_names, const float *probs, int n, int K,
                                   fl_err *err) {
    if (K < 1 || K > FL_MAX_CLASSES || n < 0 || !class_names || (n > 0 && (!ids || !probs)))
        return fl_fail(err, FL_EINVAL,
                       "%s: %d predictions of %d classes, or missing ids, "
                       "classes or probabilities",
                       path, n, K);
    for (int k = 0; k < K; k++)
        if (!class_names[k]) return fl_fail(err, FL_EINVAL, "%s: class %d has no name", path, k);
    for (int i = 0; i < n; i++)
        if (!ids[i]) return fl_fail(err, FL_EINVAL, "%s: sample %d has no id", path, i);
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    fputs("patient_id,label", af.f);
    for (int k = 0; k < K; k++) {
        fputc(',', af.f);
        csv_field(af.f, "p_", class_names[k]);
    }
    fputc('\n', af.f);
    for (int i = 0; i < n; i++) {
        csv_field(af.f, "", ids[i]);
        fputc(',', af.f);
        if (labels && labels[i] >= 0 && labels[i] < K) csv_field(af.f, "", class_names[labels[i]]);
        for (int k = 0; k < K; k++) fprintf(af.f, ",%.9g", (double)probs[(size_t)i * K + k]);
        fputc('\n', af.f);
    }
    return fl_atomic_commit(&af, err);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                        */

void fl_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*c < 0x20 || *c == 0x7f)
                fprintf(f, "\\u%04x", *c);
            else
                fputc(*c, f);
        }
    }
    fputc('"', f);
}

/* A JSON number with 17 significant digits (round-trips a double), or null when not finite. */
static void json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* Writes extra_json's members: the text inside its outer braces if it is an object, else as is.
 * Writes ", " before them when there are any. */
static void json_extra(FILE *f, const char *extra) {
    const char *b = extra, *e = extra + strlen(extra);
    while (b < e && strchr(" \t\r\n", *b)) b++;
    while (e > b && strchr(" \t\r\n", e[-1])) e--;
    if (e - b >= 2 && *b == '{' && e[-1] == '}') {
        b++;
        e--;
        while (b < e && strchr(" \t\r\n", *b)) b++;
        while (e > b && strchr(" \t\r\n", e[-1])) e--;
    }
    if (b == e) return;
    fputs(",\n  ", f);
    fwrite(b, 1, (size_t)(e - b), f);
}

fl_status fl_write_metrics_json(const char *path, const fl_metrics *m,
                                const char *const *class_names, int K, const char *extra_json,
                                fl_err *err) {
    if (!m || !class_names || K != m->K || K < 1 || K > FL_MAX_CLASSES || !m->confusion)
        return fl_fail(err, FL_EINVAL,
                       "%s: metrics of %d classes written with %d class names, "
                       "or no metrics",
                       path, m ? m->K : 0, K);
    for (int k = 0; k < K; k++)
        if (!class_names[k]) return fl_fail(err, FL_EINVAL, "%s: class %d has no name", path, k);
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    FILE *f = af.f;
    fprintf(f, "{\n  \"n\": %d,\n  \"per_class\": {", m->n);
    for (int k = 0; k < K; k++) {
        fputs(k ? ",\n    " : "\n    ", f);
        fl_json_write_string(f, class_names[k]);
        fputs(": {\"auc\": ", f);
        json_number(f, m->auc[k]);
        fputs(", \"ap\": ", f);
        json_number(f, m->ap[k]);
        fprintf(f, ", \"support\": %lld}", (long long)m->n_pos[k]);
    }
    fputs("\n  },\n  \"macro\": {\"auc\": ", f);
    json_number(f, m->macro_auc);
    fputs(", \"ap\": ", f);
    json_number(f, m->macro_ap);
    fprintf(f,
            ", \"auc_classes\": %d, \"ap_classes\": %d},\n  \"accuracy\": ", m->macro_auc_classes,
            m->macro_ap_classes);
    json_number(f, m->accuracy);
    fputs(",\n  \"confusion\": [", f);
    for (int t = 0; t < K; t++) {
        fputs(t ? ",\n    [" : "\n    [", f);
        for (int p = 0; p < K; p++)
            fprintf(f, "%s%lld", p ? ", " : "", (long long)m->confusion[(size_t)t * K + p]);
        fputc(']', f);
    }
    fputs("\n  ]", f);
    if (extra_json) json_extra(f, extra_json);
    fputs("\n}\n", f);
    return fl_atomic_commit(&af, err);
}
