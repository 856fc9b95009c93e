/* plan_features.c - a site-standardized plan's feature lists ranked on a reference cohort
 * (fed/plan_features.h): the statistics phase's sums over the chosen patients and its ranking
 * (fed/stats.c), the names checked for what a plan line can hold, and the fragment written.
 * No plan parsing, no file handling beyond the stream it is given. */
#include "plan_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/internal.h" /* fl_mvalue: the transform the standardization applies */
#include "stats.h"

/* The plan's keys, by fl_omics. */
static const char *const list_keys[FL_N_OMICS] = {"rna_names", "meth_names", "clinical_names"};

void fl_plan_features_opts_default(fl_plan_features_opts *o) {
    o->rna = o->meth = FL_PLAN_FEATURES_DEFAULT;
    o->train_only = 0;
    o->mvalue = 1;
    o->omics = (1u << FL_N_OMICS) - 1;
}

fl_status fl_plan_features_sums(const fl_omics_matrix *om, const int *rows, int n_rows,
                                const int *cols, int n, int mvalue, float *out, fl_err *err) {
    if (!cols) n = om->F;
    double *acc = calloc(FL_STATS_LEN(n) + 1, sizeof(double));
    float *row = malloc(((size_t)n + 1) * sizeof(float));
    if (!acc || !row) {
        free(acc);
        free(row);
        return fl_fail(err, FL_ENOMEM, "out of memory for the sums of %d features", n);
    }
    for (int i = 0; i < n_rows; i++) {
        int pt = rows[i];
        if (!om->present[pt]) continue;
        const float *x = om->values + (size_t)pt * om->F;
        for (int k = 0; k < n; k++) {
            float v = x[cols ? cols[k] : k];
            row[k] = mvalue && !isnan(v) ? (float)fl_mvalue(v) : v;
        }
        fl_stats_add_row(acc, row, n);
    }
    fl_stats_to_float(acc, n, out); /* the floats that travel, as a hospital sends them */
    free(acc);
    free(row);
    return FL_OK;
}

/* Why name s cannot go into a plan's comma-separated list, or NULL when it can. */
static const char *unsafe(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n > FL_PLAN_NAME_MAX) return "is longer than 127 characters";
    if (s[0] == ' ' || s[n - 1] == ' ') return "begins or ends with a blank";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == ',') return "has a ',', the lists' separator";
        if (*p == ';' || *p == '#') return "has a ';' or '#', which start a comment in a plan";
        if (*p < 0x20 || *p == 0x7f) return "has a control character";
    }
    return NULL;
}

/* s for a message: at most 60 characters, control characters as '?'. */
static void printable(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; s[n] && n + 1 < cap && n < 60; n++) {
        unsigned char ch = (unsigned char)s[n];
        out[n] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[n] = '\0';
}

/* FL_EINVAL naming path when a name of list m is unsafe or there twice; FL_ENOMEM. */
static fl_status check_names(const fl_plan_features *pf, const char *path, fl_omics m,
                             fl_err *err) {
    char shown[64];
    int n = pf->n[m];
    for (int k = 0; k < n; k++) {
        const char *why = unsafe(pf->names[m][k]);
        if (!why) continue;
        printable(shown, sizeof shown, pf->names[m][k]);
        return fl_fail(err, FL_EINVAL, "%s: the %s feature '%s' %s: a plan cannot list it", path,
                       fl_omics_name(m), shown, why);
    }
    fl_plan_names l = {pf->names[m], n};
    fl_status st;
    const char *dup = fl_plan_names_twice(&l, &st);
    if (st != FL_OK) return fl_fail(err, st, "%s: out of memory for %d names", path, n);
    if (!dup) return FL_OK;
    printable(shown, sizeof shown, dup);
    return fl_fail(err, FL_EINVAL, "%s: the %s feature '%s' is there twice", path,
                   fl_omics_name(m), shown);
}

/* The list of modality m into pf: the top features by variance over rows (omics), or every
 * clinical feature in order. */
static fl_status rank_modality(const fl_cohort *c, const char *path, fl_omics m, const int *rows,
                               fl_plan_features *pf, fl_err *err) {
    const fl_omics_matrix *om = &c->omics[m];
    const char *name = fl_omics_name(m);
    pf->F[m] = om->F;
    if (om->F == 0) return FL_OK;
    for (int i = 0; i < pf->patients; i++) pf->used[m] += om->present[rows[i]] != 0;
    if (pf->used[m] < 2)
        return fl_fail(err, FL_EINVAL, "%s: %d of its %d %spatients %s %s data; ranking needs 2",
                       path, pf->used[m], pf->patients, pf->opts.train_only ? "training " : "",
                       pf->used[m] == 1 ? "has" : "have", name);
    fl_stats_result r = {0};
    fl_status st = FL_OK;
    int n = om->F;
    if (m != FL_MOD_CLINICAL) {
        float *sums = malloc(FL_STATS_LEN(om->F) * sizeof *sums);
        int mvalue = m == FL_MOD_METHYLATION && pf->opts.mvalue;
        fl_err inner;
        if (!sums)
            return fl_fail(err, FL_ENOMEM, "%s: out of memory for %d %s features", path, om->F,
                           name);
        st = fl_plan_features_sums(om, rows, pf->patients, NULL, 0, mvalue, sums, err);
        if (st == FL_OK &&
            (st = fl_stats_finish(sums, om->F, m == FL_MOD_RNA ? pf->opts.rna : pf->opts.meth, &r,
                                  &inner)) != FL_OK)
            fl_fail(err, st, "%s: %s: %s", path, name, inner.msg);
        free(sums);
        if (st != FL_OK) return st;
        n = r.n;
    }
    if (!(pf->names[m] = calloc((size_t)n + 1, sizeof(char *))))
        st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %d names", path, n);
    for (int k = 0; k < n && st == FL_OK; k++) {
        const char *s = om->features[m == FL_MOD_CLINICAL ? k : (int)r.index[k]];
        if ((pf->names[m][k] = strdup(s)))
            pf->n[m]++;
        else
            st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %d names", path, n);
    }
    fl_stats_result_destroy(&r);
    return st == FL_OK ? check_names(pf, path, m, err) : st;
}

fl_status fl_plan_features_rank(const fl_cohort *c, const char *path,
                                const fl_plan_features_opts *o, fl_plan_features *pf, fl_err *err) {
    memset(pf, 0, sizeof *pf);
    pf->opts = *o;
    int *rows = malloc(((size_t)c->P + 1) * sizeof *rows);
    fl_status st = FL_OK;
    if (!rows || !(pf->source = strdup(path))) {
        st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %d patients", path, c->P);
        goto done;
    }
    for (int p = 0; p < c->P; p++)
        if (!o->train_only || c->split[p] == FL_SPLIT_TRAIN) rows[pf->patients++] = p;
    unsigned all = (1u << FL_N_OMICS) - 1;
    for (int m = 0; m < FL_N_OMICS && st == FL_OK; m++) {
        if (!(o->omics & (1u << m))) continue;
        if (c->omics[m].F == 0 && o->omics != all)
            st = fl_fail(err, FL_EINVAL, "%s has no %s data to rank", path,
                         fl_omics_name((fl_omics)m));
        else
            st = rank_modality(c, path, (fl_omics)m, rows, pf, err);
    }
done:
    free(rows);
    if (st != FL_OK) fl_plan_features_destroy(pf);
    return st;
}

/* fprintf's count, 0 on error (the stream keeps the error). */
static size_t counted(int n) {
    return n > 0 ? (size_t)n : 0;
}

/* "key = a, b, c" lines of at most FL_PLAN_LINE_MAX characters (each name fits: it is at most
 * FL_PLAN_NAME_MAX). */
static size_t write_list(FILE *f, const char *key, char *const *names, int n) {
    size_t out = 0, len = 0; /* len: the open line's characters, 0 when none is open */
    for (int k = 0; k < n; k++) {
        size_t w = strlen(names[k]);
        if (len && len + 2 + w > FL_PLAN_LINE_MAX) {
            out += fputc('\n', f) != EOF;
            len = 0;
        }
        size_t put =
            counted(len ? fprintf(f, ", %s", names[k]) : fprintf(f, "%s = %s", key, names[k]));
        len += put;
        out += put;
    }
    if (len) out += fputc('\n', f) != EOF;
    return out;
}

/* The first comment line: the source (its name alone, or cut, when the path would make the
 * line too long; control characters as '?') and the patients. */
static size_t write_source(FILE *f, const fl_plan_features *pf) {
    char tail[96];
    snprintf(tail, sizeof tail, ": %d patients (%s)", pf->patients,
             pf->opts.train_only ? "the train split" : "every split");
    static const char head[] = "# ranked by `fedlung plan features` on ";
    size_t avail = FL_PLAN_LINE_MAX - (sizeof head - 1) - strlen(tail);
    const char *src = pf->source, *slash = strrchr(src, '/');
    if (strlen(src) > avail && slash && slash[1]) src = slash + 1;
    int cut = strlen(src) > avail;
    size_t keep = cut ? avail - 3 : strlen(src);
    size_t out = fputs(head, f) != EOF ? sizeof head - 1 : 0;
    for (size_t i = 0; i < keep; i++) {
        unsigned char ch = (unsigned char)src[i];
        out += fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f) != EOF;
    }
    return out + counted(fprintf(f, "%s%s\n", cut ? "..." : "", tail));
}

size_t fl_plan_features_write(const fl_plan_features *pf, FILE *f) {
    size_t out = write_source(f, pf);
    char what[FL_N_OMICS][80];
    for (int m = 0; m < FL_N_OMICS; m++) {
        const char *name = fl_omics_name((fl_omics)m);
        if (pf->F[m] == 0)
            snprintf(what[m], sizeof what[m], "no %s", name);
        else if (m == FL_MOD_CLINICAL)
            snprintf(what[m], sizeof what[m], "%s all %d in the cohort's order", name, pf->n[m]);
        else
            snprintf(what[m], sizeof what[m], "%s %d of %d by variance%s", name, pf->n[m], pf->F[m],
                     m == FL_MOD_METHYLATION && pf->opts.mvalue ? " of M-values" : "");
    }
    out +=
        counted(fprintf(f, "# kept: %s; %s; %s\nstandardize = site\n", what[0], what[1], what[2]));
    for (int m = 0; m < FL_N_OMICS; m++) out += write_list(f, list_keys[m], pf->names[m], pf->n[m]);
    return out;
}

void fl_plan_features_destroy(fl_plan_features *pf) {
    if (!pf) return;
    for (int m = 0; m < FL_N_OMICS; m++) {
        for (int k = 0; k < pf->n[m]; k++) free(pf->names[m][k]);
        free(pf->names[m]);
    }
    free(pf->source);
    memset(pf, 0, sizeof *pf);
}
