/* metrics.h - classification metrics for K-class probability outputs: one-vs-rest ROC AUC and
 * average precision per class (bit-for-bit the definitions of scikit-learn's roc_auc_score and
 * average_precision_score), their macro means, accuracy, the confusion matrix, the ROC and PR
 * curves, and mergeable score histograms for federated evaluation. Not a plotting or file
 * module (eval/plot.h, eval/report.h); no sample weights, no calibration metrics.
 *
 * Conventions shared by every function here:
 *   - probs is n x K row-major (sample i, class k at probs[i*K + k]); the score of sample i for
 *     class k is probs[i*K + k] and the one-vs-rest truth is labels[i] == k. Scores need not sum
 *     to one, but must be finite; labels must lie in [0, K).
 *   - Equal scores form one threshold group (as sklearn's _binary_clf_curve): all samples of a
 *     group cross the threshold together, so the ROC curve takes a diagonal step across a tie
 *     and AUC counts a tied (positive, negative) pair as one half (Mann-Whitney with midranks).
 *   - Undefined values are NaN: AUC when class k has no positives or no negatives (sklearn
 *     raises), AP when class k has no positives (sklearn warns and returns 0; with no negatives
 *     AP is 1, as sklearn's). Macro means average the defined classes only and are NaN when none
 *     is defined; macro_*_classes says how many were averaged. eval/report.h writes NaN as null.
 */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <stdint.h>

#include "../common/status.h"

#define FL_MAX_CLASSES 64 /* the same bound as data/cohort.h */

/* Scalar metrics of one evaluation. Caller-owned; fl_metrics_compute fills it and allocates
 * confusion, fl_metrics_destroy frees it. */
typedef struct {
    int n, K;
    double auc[FL_MAX_CLASSES];    /* one-vs-rest ROC AUC of class k; NaN if undefined */
    double ap[FL_MAX_CLASSES];     /* one-vs-rest average precision of class k; NaN if undefined */
    int64_t n_pos[FL_MAX_CLASSES]; /* support: samples whose label is k */
    double macro_auc, macro_ap;    /* unweighted mean over the classes where it is defined */
    int macro_auc_classes, macro_ap_classes; /* how many classes entered each mean */
    double accuracy;    /* fraction with argmax_k probs == label (first max); NaN if n=0 */
    int64_t *confusion; /* K x K: [true][predicted] counts, predicted = argmax */
} fl_metrics;

/* Computes every field of out from probs (n x K) and labels (n), 1 <= K <= FL_MAX_CLASSES,
 * n >= 0. Returns FL_OK, or FL_EINVAL (bad K or n, a label outside [0, K), a non-finite score;
 * the sentence names the sample) or FL_ENOMEM; on failure out holds nothing to free. out is
 * overwritten, not destroyed first. O(K n log n) time, O(n) scratch. */
fl_status fl_metrics_compute(const float *probs, const int32_t *labels, int n, int K,
                             fl_metrics *out, fl_err *err);
/* Frees out->confusion and zeroes out; NULL and zeroed structs are fine. */
void fl_metrics_destroy(fl_metrics *out);

/* One class's curves, in sklearn's orders:
 *   ROC, as roc_curve(drop_intermediate=False): point 0 is (0, 0) with threshold +inf (sklearn
 *     1.2 writes max score + 1 there, 1.3 and later +inf); point j >= 1 is the j-th distinct
 *     score from the top, with fpr/tpr of "score >= threshold". fpr (tpr) is NaN throughout when
 *     the class has no negatives (positives), where sklearn warns and divides by zero likewise.
 *   PR, as precision_recall_curve: the distinct scores in increasing order, with the precision
 *     and recall of "score >= threshold", then a final point (recall 0, precision 1) that has no
 *     threshold (n_pr = n_thresholds + 1). With no positives recall is 1 (as sklearn). */
typedef struct {
    int n_roc;         /* distinct scores + 1 */
    double *fpr;       /* n_roc */
    double *tpr;       /* n_roc */
    double *roc_thr;   /* n_roc */
    int n_pr;          /* distinct scores + 1 */
    double *precision; /* n_pr */
    double *recall;    /* n_pr */
    double *pr_thr;    /* n_pr - 1 */
    double auc, ap;    /* as fl_metrics, for legends */
} fl_class_curves;

/* Curves of every class; caller-owned, filled by fl_curves_compute, freed by fl_curves_destroy.
 * All arrays live in one slab. */
typedef struct {
    int K;
    fl_class_curves cls[FL_MAX_CLASSES];
    double *slab;
} fl_metrics_curves;

/* Computes the ROC and PR curves (and AUC, AP) of every class; arguments and failures as
 * fl_metrics_compute. Memory O(K n) doubles. */
fl_status fl_curves_compute(const float *probs, const int32_t *labels, int n, int K,
                            fl_metrics_curves *out, fl_err *err);
void fl_curves_destroy(fl_metrics_curves *out);

/* --- histograms for federated evaluation ---------------------------------------------------
 * Each site bins its one-vs-rest scores into B equal bins of [0, 1] (bin b holds scores in
 * [b/B, (b+1)/B), the last bin also 1; scores below 0 or above 1 are clamped into the end bins)
 * and counts positives and negatives per bin. Histograms merge by adding counts, so they can be
 * summed by the server or by secure aggregation without revealing any one score.
 * fl_hist_auc / fl_hist_ap treat each bin as one tied threshold group. They are therefore exact
 * (equal to fl_metrics_compute on the pooled scores) when all scores that share a bin are equal,
 * e.g. scores quantised to bin centres; otherwise they are the metrics of the scores rounded to
 * their bins, with AUC off by at most half the fraction of (positive, negative) pairs that share
 * a bin. Undefined cases give NaN as above. */
typedef struct {
    int K, B;
    uint64_t
        *counts; /* K x 2 x B: counts[(k*2 + 0)*B + b] negatives, [(k*2 + 1)*B + b] positives */
} fl_score_hist;

/* Allocates zeroed counts for K classes (1 <= K <= FL_MAX_CLASSES) and B >= 1 bins. Returns
 * FL_OK, FL_EINVAL or FL_ENOMEM (then h holds nothing to free). */
fl_status fl_score_hist_init(fl_score_hist *h, int K, int B, fl_err *err);
void fl_score_hist_destroy(fl_score_hist *h);
/* Adds n samples; FL_EINVAL (and no change to h) on a bad label or a non-finite score. */
fl_status fl_score_hist_add(fl_score_hist *h, const float *probs, const int32_t *labels, int n,
                            fl_err *err);
/* dst += src; FL_ESHAPE if K or B differ. */
fl_status fl_score_hist_merge(fl_score_hist *dst, const fl_score_hist *src, fl_err *err);
/* The bin of score s among B (clamped; the index fl_score_hist_add uses). */
int fl_score_hist_bin(float s, int B);
/* AUC and AP of class k from the (merged) histogram; NaN when undefined or k out of range. */
double fl_hist_auc(const fl_score_hist *h, int k);
double fl_hist_ap(const fl_score_hist *h, int k);

/* The same layout with real-valued counts: the sum of the sites' noised histograms under
 * differential privacy (docs/privacy.md, "Noised evaluation"). A noised count may be negative or
 * fractional; the merge adds them as they are, and the metrics read each merged count clamped at
 * 0 (a post-processing, so it costs no privacy), an empty bin (both counts 0 after the clamp)
 * being no threshold. With whole non-negative counts they equal fl_hist_auc / fl_hist_ap. */
typedef struct {
    int K, B;
    double *counts; /* K x 2 x B, as fl_score_hist's */
} fl_score_histd;

/* As fl_score_hist_init / _destroy. */
fl_status fl_score_histd_init(fl_score_histd *h, int K, int B, fl_err *err);
void fl_score_histd_destroy(fl_score_histd *h);
/* h += counts[0 .. K*2*B), each finite; FL_EINVAL (h unchanged) on a non-finite count. */
fl_status fl_score_histd_add(fl_score_histd *h, const double *counts, fl_err *err);
double fl_histd_auc(const fl_score_histd *h, int k);
double fl_histd_ap(const fl_score_histd *h, int k);

#endif
