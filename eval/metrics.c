/* metrics.c - one-vs-rest AUC, average precision, curves, accuracy and confusion from exact
 * scores, and the same metrics from mergeable score histograms. Every metric goes through one
 * representation: the threshold groups of a class (distinct scores from the top, with the
 * cumulative true and false positives of "score >= threshold"), as sklearn's _binary_clf_curve.
 * Not a statistics package: no confidence intervals, no weights. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One sample seen from one class: its score and whether it is a positive. */
typedef struct {
    float s;
    int32_t pos;
} scored;

/* The threshold groups of one class, highest score first, as they stream past: each group
 * moves the cumulative counts (tp, fp) of "score >= threshold" at once. Running sums give AUC
 * and AP; when thr is non-NULL the groups are also kept (capacity: one per sample or bin). */
typedef struct {
    double tp, fp;             /* cumulative counts so far (double: exact below 2^53) */
    double area2;              /* twice the area under the unnormalised ROC step so far */
    double ap_sum;             /* sum over groups of dtp * precision */
    int m;                     /* groups so far */
    double *thr, *g_tp, *g_fp; /* m each, or NULL */
} groups;

static void groups_start(groups *g) {
    g->tp = g->fp = g->area2 = g->ap_sum = 0;
    g->m = 0;
}

/* Adds one group of dtp positives and dfp negatives (not both zero) at score thr. The trapezoid
 * of a group counts its tied (positive, negative) pairs as one half: Mann-Whitney with midranks.
 * area2 is a sum of integers, exact in double below 2^53. */
static void groups_step(groups *g, double thr, double dtp, double dfp) {
    double tp = g->tp + dtp, fp = g->fp + dfp;
    g->area2 += dfp * (tp + g->tp);
    if (dtp > 0) g->ap_sum += dtp * (tp / (tp + fp));
    g->tp = tp;
    g->fp = fp;
    if (g->thr) {
        g->thr[g->m] = thr;
        g->g_tp[g->m] = tp;
        g->g_fp[g->m] = fp;
    }
    g->m++;
}

/* ROC AUC: the trapezoid over the groups, normalised; NaN without positives or negatives. */
static double groups_auc(const groups *g) {
    if (g->tp == 0 || g->fp == 0) return NAN;
    return g->area2 / (2.0 * g->tp * g->fp);
}

/* sum_j (R_j - R_{j-1}) P_j over the groups, R_{-1} = 0: sklearn's uninterpolated AP; NaN
 * without positives. */
static double groups_ap(const groups *g) {
    if (g->tp == 0) return NAN;
    return g->ap_sum / g->tp;
}

/* Descending by score. Equal scores compare equal; their order is irrelevant because a group
 * is consumed whole. */
static int scored_desc(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x < y) - (x > y);
}

static fl_status check_inputs(const float *probs, const int32_t *labels, int n, int K,
                              fl_err *err) {
    if (K < 1 || K > FL_MAX_CLASSES)
        return fl_fail(err, FL_EINVAL, "metrics: %d classes, expected 1 to %d", K, FL_MAX_CLASSES);
    if (n < 0) return fl_fail(err, FL_EINVAL, "metrics: %d samples", n);
    if (n > 0 && (!probs || !labels))
        return fl_fail(err, FL_EINVAL, "metrics: %d samples but no scores or labels", n);
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= K)
            return fl_fail(err, FL_EINVAL, "metrics: sample %d has label %d, outside [0, %d)", i,
                           (int)labels[i], K);
        for (int k = 0; k < K; k++)
            if (!isfinite(probs[(size_t)i * K + k]))
                return fl_fail(err, FL_EINVAL,
                               "metrics: sample %d has a non-finite score %g for "
                               "class %d",
                               i, (double)probs[(size_t)i * K + k], k);
    }
    return FL_OK;
}

/* Streams the groups of class k into g, sorting buf (n) on the way. */
static void class_groups(const float *probs, const int32_t *labels, int n, int K, int k,
                         scored *buf, groups *g) {
    for (int i = 0; i < n; i++) {
        buf[i].s = probs[(size_t)i * K + k];
        buf[i].pos = labels[i] == k;
    }
    qsort(buf, (size_t)n, sizeof *buf, scored_desc);
    groups_start(g);
    double dtp = 0, dfp = 0;
    for (int i = 0; i < n; i++) {
        if (buf[i].pos)
            dtp += 1;
        else
            dfp += 1;
        if (i == n - 1 || buf[i + 1].s != buf[i].s) { /* last sample of its group */
            groups_step(g, buf[i].s, dtp, dfp);
            dtp = dfp = 0;
        }
    }
}

static void macro_means(const double *v, int K, double *mean, int *count) {
    double sum = 0;
    int c = 0;
    for (int k = 0; k < K; k++)
        if (!isnan(v[k])) {
            sum += v[k];
            c++;
        }
    *mean = c ? sum / c : NAN;
    *count = c;
}

fl_status fl_metrics_compute(const float *probs, const int32_t *labels, int n, int K,
                             fl_metrics *out, fl_err *err) {
    memset(out, 0, sizeof *out);
    fl_status s = check_inputs(probs, labels, n, K, err);
    if (s != FL_OK) return s;
    groups g = {0};
    scored *buf = malloc((n > 0 ? (size_t)n : 1) * sizeof *buf);
    out->confusion = calloc((size_t)K * K, sizeof *out->confusion);
    if (!buf || !out->confusion) {
        s = fl_fail(err, FL_ENOMEM, "metrics: out of memory for %d samples of %d classes", n, K);
        goto fail;
    }
    out->n = n;
    out->K = K;
    for (int k = 0; k < K; k++) {
        class_groups(probs, labels, n, K, k, buf, &g);
        out->auc[k] = groups_auc(&g);
        out->ap[k] = groups_ap(&g);
    }
    macro_means(out->auc, K, &out->macro_auc, &out->macro_auc_classes);
    macro_means(out->ap, K, &out->macro_ap, &out->macro_ap_classes);

    int64_t correct = 0;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (p[k] > p[best]) best = k; /* first maximum, as numpy.argmax */
        out->confusion[(size_t)labels[i] * K + best]++;
        out->n_pos[labels[i]]++;
        correct += best == labels[i];
    }
    out->accuracy = n ? (double)correct / n : NAN;
    free(buf);
    return FL_OK;
fail:
    free(buf);
    fl_metrics_destroy(out);
    return s;
}

void fl_metrics_destroy(fl_metrics *out) {
    if (!out) return;
    free(out->confusion);
    memset(out, 0, sizeof *out);
}

/* Writes the curves of one class from its kept groups (m) into dst, 6 m + 5 doubles in the
 * order fpr, tpr, roc_thr, precision, recall (m + 1 each), pr_thr (m). */
static void curves_fill(const groups *g, double *dst) {
    int m = g->m;
    double P = g->tp, N = g->fp;
    double *fpr = dst, *tpr = fpr + m + 1, *thr = tpr + m + 1;
    double *prec = thr + m + 1, *rec = prec + m + 1, *pthr = rec + m + 1;
    fpr[0] = tpr[0] = 0;
    thr[0] = INFINITY;
    for (int j = 0; j < m; j++) {
        fpr[j + 1] = N > 0 ? g->g_fp[j] / N : NAN; /* sklearn: all NaN, (0, 0) included */
        tpr[j + 1] = P > 0 ? g->g_tp[j] / P : NAN;
        thr[j + 1] = g->thr[j];
    }
    if (N == 0) fpr[0] = NAN;
    if (P == 0) tpr[0] = NAN;
    for (int i = 0; i < m; i++) { /* increasing thresholds */
        int j = m - 1 - i;
        prec[i] = g->g_tp[j] / (g->g_tp[j] + g->g_fp[j]);
        rec[i] = P > 0 ? g->g_tp[j] / P : 1.0;
        pthr[i] = g->thr[j];
    }
    prec[m] = 1.0;
    rec[m] = 0.0;
}

fl_status fl_curves_compute(const float *probs, const int32_t *labels, int n, int K,
                            fl_metrics_curves *out, fl_err *err) {
    memset(out, 0, sizeof *out);
    fl_status s = check_inputs(probs, labels, n, K, err);
    if (s != FL_OK) return s;
    size_t cap = n > 0 ? (size_t)n : 1, used = 0, off[FL_MAX_CLASSES];
    scored *buf = malloc(cap * sizeof *buf);
    groups g = {0};
    g.thr = malloc(3 * cap * sizeof *g.thr);
    if (!buf || !g.thr) {
        s = fl_fail(err, FL_ENOMEM, "metrics: out of memory for the curves of %d samples", n);
        goto fail;
    }
    g.g_tp = g.thr + cap;
    g.g_fp = g.g_tp + cap;
    out->K = K;
    for (int k = 0; k < K; k++) {
        class_groups(probs, labels, n, K, k, buf, &g);
        size_t need = 6 * (size_t)g.m + 5;
        double *grown = realloc(out->slab, (used + need) * sizeof *grown);
        if (!grown) {
            s = fl_fail(err, FL_ENOMEM, "metrics: out of memory for the curves of class %d", k);
            goto fail;
        }
        out->slab = grown;
        off[k] = used;
        curves_fill(&g, out->slab + used);
        used += need;
        fl_class_curves *c = &out->cls[k];
        c->n_roc = c->n_pr = g.m + 1;
        c->auc = groups_auc(&g);
        c->ap = groups_ap(&g);
    }
    for (int k = 0; k < K; k++) { /* the slab has stopped moving */
        fl_class_curves *c = &out->cls[k];
        size_t m1 = (size_t)c->n_roc;
        c->fpr = out->slab + off[k];
        c->tpr = c->fpr + m1;
        c->roc_thr = c->tpr + m1;
        c->precision = c->roc_thr + m1;
        c->recall = c->precision + m1;
        c->pr_thr = c->recall + m1;
    }
    free(buf);
    free(g.thr);
    return FL_OK;
fail:
    free(buf);
    free(g.thr);
    fl_curves_destroy(out);
    return s;
}

void fl_curves_destroy(fl_metrics_curves *out) {
    if (!out) return;
    free(out->slab);
    memset(out, 0, sizeof *out);
}

/* ------------------------------------------------------------------------------------------ */
/* histograms                                                                                  */

/* Zeroed counts (elem bytes each) for K classes and B bins; what names the histogram in the
 * sentence of a failure. */
static fl_status hist_alloc(int K, int B, size_t elem, const char *what, void **counts,
                            fl_err *err) {
    *counts = NULL;
    if (K < 1 || K > FL_MAX_CLASSES || B < 1 || B > (1 << 24))
        return fl_fail(err, FL_EINVAL,
                       "%s: %d classes and %d bins, expected 1 to %d classes and 1 to 2^24 bins",
                       what, K, B, FL_MAX_CLASSES);
    if (!(*counts = calloc((size_t)K * 2 * B, elem)))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory for %d x %d bins", what, K, B);
    return FL_OK;
}

fl_status fl_score_hist_init(fl_score_hist *h, int K, int B, fl_err *err) {
    memset(h, 0, sizeof *h);
    void *c;
    fl_status st = hist_alloc(K, B, sizeof *h->counts, "score histogram", &c, err);
    if (st == FL_OK) *h = (fl_score_hist){K, B, c};
    return st;
}

void fl_score_hist_destroy(fl_score_hist *h) {
    if (!h) return;
    free(h->counts);
    memset(h, 0, sizeof *h);
}

int fl_score_hist_bin(float s, int B) {
    double x = floor((double)s * B); /* exact: a float times B < 2^24 fits a double */
    if (!(x > 0)) return 0;          /* also NaN, which callers reject before */
    return x >= B ? B - 1 : (int)x;
}

fl_status fl_score_hist_add(fl_score_hist *h, const float *probs, const int32_t *labels, int n,
                            fl_err *err) {
    if (!h->counts) return fl_fail(err, FL_EINVAL, "score histogram: not initialised");
    fl_status s = check_inputs(probs, labels, n, h->K, err);
    if (s != FL_OK) return s;
    int K = h->K, B = h->B;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            int b = fl_score_hist_bin(probs[(size_t)i * K + k], B);
            h->counts[((size_t)k * 2 + (labels[i] == k)) * B + b]++;
        }
    return FL_OK;
}

fl_status fl_score_hist_merge(fl_score_hist *dst, const fl_score_hist *src, fl_err *err) {
    if (dst->K != src->K || dst->B != src->B)
        return fl_fail(err, FL_ESHAPE, "score histogram: merging %d classes x %d bins into %d x %d",
                       src->K, src->B, dst->K, dst->B);
    size_t total = (size_t)dst->K * 2 * dst->B;
    for (size_t i = 0; i < total; i++) dst->counts[i] += src->counts[i];
    return FL_OK;
}

/* Streams the groups of class k from its bins, highest bin first (threshold: the bin's lower
 * edge); an empty bin is no threshold. The counts are whole (u) or real (d, each read clamped at
 * 0). Keeps nothing, so it needs no memory. Returns AUC, or AP when ap is 1; NaN when k is out
 * of range. */
static double hist_metric(const uint64_t *u, const double *d, int K, int B, int k, int ap) {
    if ((!u && !d) || k < 0 || k >= K) return NAN;
    size_t at = (size_t)k * 2 * B; /* negatives, then positives */
    groups g = {0};
    groups_start(&g);
    for (int b = B - 1; b >= 0; b--) {
        double n = u ? (double)u[at + b] : fmax(d[at + b], 0);
        double p = u ? (double)u[at + B + b] : fmax(d[at + B + b], 0);
        if (p > 0 || n > 0) groups_step(&g, (double)b / B, p, n);
    }
    return ap ? groups_ap(&g) : groups_auc(&g);
}

double fl_hist_auc(const fl_score_hist *h, int k) {
    return h ? hist_metric(h->counts, NULL, h->K, h->B, k, 0) : NAN;
}

double fl_hist_ap(const fl_score_hist *h, int k) {
    return h ? hist_metric(h->counts, NULL, h->K, h->B, k, 1) : NAN;
}

/* real-valued (noised) histograms */

fl_status fl_score_histd_init(fl_score_histd *h, int K, int B, fl_err *err) {
    void *c; /* NULL on failure, when h is all zero */
    fl_status st = hist_alloc(K, B, sizeof *h->counts, "noised score histogram", &c, err);
    *h = st == FL_OK ? (fl_score_histd){K, B, c} : (fl_score_histd){0, 0, NULL};
    return st;
}

void fl_score_histd_destroy(fl_score_histd *h) {
    if (h) free(h->counts), *h = (fl_score_histd){0, 0, NULL};
}

fl_status fl_score_histd_add(fl_score_histd *h, const double *counts, fl_err *err) {
    size_t total = (size_t)h->K * 2 * h->B;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(counts[i]))
            return fl_fail(err, FL_EINVAL, "noised score histogram: count %zu is not finite", i);
    for (size_t i = 0; i < total; i++) h->counts[i] += counts[i];
    return FL_OK;
}

double fl_histd_auc(const fl_score_histd *h, int k) {
    return h ? hist_metric(NULL, h->counts, h->K, h->B, k, 0) : NAN;
}

double fl_histd_ap(const fl_score_histd *h, int k) {
    return h ? hist_metric(NULL, h->counts, h->K, h->B, k, 1) : NAN;
}
