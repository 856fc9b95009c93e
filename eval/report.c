/* report.c - predictions CSV and metrics JSON, written through common/atomic.h.
 * Output only; the formats are documented in report.h. */
#include "report.h"

#include <math.h>
#include <string.h>

#include "../common/atomic.h"

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
