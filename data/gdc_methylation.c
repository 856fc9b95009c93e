/* gdc_methylation.c - GDC SeSAMe level-3 beta files (headerless "probe<TAB>beta", NA for masked
 * probes) to the /methylation matrix, with probes dropped by their missing rate across samples.
 * Betas are kept as they are: no imputation and no M-values. Not a reader of the older
 * five-column "Composite Element REF" files. */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gdc.h"

/* What reading the files of one import shares: the first file's probes sorted, for files in
 * another order, and a flag per probe seen in the file being read. */
typedef struct {
    int *order;
    uint8_t *seen;
} beta_scratch;

static int order_cmp(const void *a, const void *b, void *ctx) {
    char *const *id = ctx;
    return strcmp(id[*(const int *)a], id[*(const int *)b]);
}

/* The index of probe id among first's (sorted by order), or -1. */
static int find_probe(const fl_gdc_named *first, const int *order, const char *id) {
    int lo = 0, hi = first->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(first->id[order[mid]], id);
        if (c == 0) return order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Sorts the first file's probes into sc->order; a probe listed twice is an error naming both
 * lines (the file has one probe per line). */
static fl_status sort_probes(beta_scratch *sc, const fl_gdc_named *first, const char *path,
                             fl_err *err) {
    if (!(sc->order = malloc((size_t)first->n * sizeof *sc->order)) ||
        !(sc->seen = malloc((size_t)first->n)))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < first->n; i++) sc->order[i] = i;
    qsort_r(sc->order, (size_t)first->n, sizeof *sc->order, order_cmp, first->id);
    for (int i = 1; i < first->n; i++) {
        int a = sc->order[i - 1], b = sc->order[i];
        if (strcmp(first->id[a], first->id[b]) == 0)
            return fl_fail(err, FL_EFORMAT, "%s:%d: probe %.40s already appears on line %d", path,
                           (a > b ? a : b) + 1, first->id[a], (a < b ? a : b) + 1);
    }
    return FL_OK;
}

/* Reads one beta file (ctx: the beta_scratch). With row == NULL the probes are appended to
 * first; otherwise each must be one of first's (read from ref), exactly once, its value going to
 * row[index]. */
static fl_status read_betas(void *ctx, const char *path, fl_gdc_named *first, const char *ref,
                            float *row, fl_err *err) {
    beta_scratch *sc = ctx;
    fl_gdc_lines r;
    char *line, *f[3];
    int got, n = 0;
    long blank = 0;
    fl_status s = fl_gdc_lines_open(&r, path, err);
    if (s) return s;
    if (row) memset(sc->seen, 0, (size_t)first->n);
    while ((got = fl_gdc_lines_next(&r, &line, err)) == 1) {
        if (!line[0]) {
            if (!blank) blank = r.line;
            continue;
        }
        if (blank) {
            s = fl_fail(err, FL_EFORMAT, "%s:%ld: an empty line inside the file", path, blank);
            goto done;
        }
        int nf = fl_gdc_split_tabs(line, f, 3);
        if (nf != 2) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:%ld: %d fields; a SeSAMe beta file has two, probe id and beta, "
                        "tab-separated, without a header",
                        path, r.line, nf);
            goto done;
        }
        double x = NAN;
        if (strcmp(f[1], "NA") != 0 && (fl_gdc_parse_number(f[1], &x) || x < 0 || x > 1)) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:%ld: beta \"%.40s\" of probe %.40s is neither NA nor a number in "
                        "[0, 1]",
                        path, r.line, f[1], f[0]);
            goto done;
        }
        if (!row) {
            if (fl_gdc_named_push(first, f[0], (float)x) < 0) {
                s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            continue;
        }
        int k = n < first->n && strcmp(first->id[n], f[0]) == 0 ? n : -1; /* the same order */
        if (k < 0) k = find_probe(first, sc->order, f[0]);
        if (k < 0 || sc->seen[k]) {
            s = fl_fail(err, FL_EFORMAT,
                        k < 0 ? "%s:%ld: probe %.40s is not in %s; every methylation file must "
                                "list the same probes"
                              : "%s:%ld: probe %.40s appears twice (%s lists it once)",
                        path, r.line, f[0], ref);
            goto done;
        }
        sc->seen[k] = 1;
        row[k] = (float)x;
        n++;
    }
    if (got < 0) {
        s = (fl_status)got;
    } else if ((row ? n : first->n) == 0) {
        s = fl_fail(err, FL_EFORMAT, "%s: no probes (an empty file?)", path);
    } else if (!row) {
        s = sort_probes(sc, first, path, err);
    } else if (n < first->n) {
        int k = 0;
        while (sc->seen[k]) k++;
        s = fl_fail(err, FL_EFORMAT,
                    "%s: %d probes, %s has %d (%s is not in %s; a truncated file?); every "
                    "methylation file must list the same probes",
                    path, n, ref, first->n, first->id[k], path);
    }
done:
    fl_gdc_lines_close(&r);
    return s;
}

/* Drops the probes missing in more than max_missing of the present rows, in place. */
static fl_status filter_probes(fl_omics_matrix *m, int P, double max_missing, int *dropped,
                               const char *first, fl_err *err) {
    int n_present = 0, F = 0;
    int *miss = calloc((size_t)m->F, sizeof *miss), *keep = miss; /* keep overwrites miss */
    if (!miss) return fl_fail(err, FL_ENOMEM, "%s: out of memory", first);
    for (int p = 0; p < P; p++) {
        const float *row = m->values + (size_t)p * (size_t)m->F;
        n_present += m->present[p];
        for (int j = 0; j < m->F && m->present[p]; j++) miss[j] += isnan(row[j]) != 0;
    }
    for (int j = 0; j < m->F; j++) {
        if ((double)miss[j] <= max_missing * n_present)
            keep[F++] = j; /* F <= j: miss[j] is read before keep[F] is written */
        else
            free(m->features[j]);
    }
    if (F == 0) {
        free(keep);
        m->F = 0; /* every name is freed */
        return fl_fail(err, FL_EFORMAT,
                       "every probe is NA in more than %g of the methylation samples "
                       "(--max-probe-missing); first file %s",
                       max_missing, first);
    }
    for (int p = 0; p < P; p++) {
        float *src = m->values + (size_t)p * (size_t)m->F, *dst = m->values + (size_t)p * F;
        for (int i = 0; i < F; i++) dst[i] = src[keep[i]];
    }
    for (int i = 0; i < F; i++) m->features[i] = m->features[keep[i]];
    if (dropped) *dropped = m->F - F;
    m->F = F;
    free(keep);
    return FL_OK;
}

fl_status fl_gdc_methylation_load(char *const *paths, int P, double max_missing, fl_omics_matrix *m,
                                  int *dropped, fl_err *err) {
    beta_scratch sc = {0};
    int p0 = 0;
    if (dropped) *dropped = 0;
    fl_status s = fl_gdc_load_matrix(paths, P, read_betas, &sc, m, err);
    while (p0 < P && !paths[p0]) p0++;
    if (s == FL_OK && m->F > 0) s = filter_probes(m, P, max_missing, dropped, paths[p0], err);
    if (s) fl_gdc_matrix_clear(m);
    free(sc.order);
    free(sc.seen);
    return s;
}
