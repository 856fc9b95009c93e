/* report.h - evaluation results as files: per-patient predictions as CSV, metrics as JSON, both
 * written atomically (common/atomic.h: a temporary file next to the destination, renamed over
 * it). Not a parser: nothing here reads these files. */
#ifndef FL_REPORT_H
#define FL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "../common/status.h"
#include "metrics.h"

/* Writes one row per sample: "patient_id,label,p_<class 0>,...,p_<class K-1>" (header first),
 * the label as its class name (empty when labels is NULL or labels[i] is outside [0, K)), the
 * probabilities probs[i*K + k] with 9 significant digits (exact for floats). Fields holding a
 * comma, quote or line break are quoted as RFC 4180. ids (n strings) and class_names (K) are
 * required. Returns FL_OK, FL_EINVAL, FL_EIO or FL_ENOMEM; path is untouched on failure. */
fl_status fl_write_predictions_csv(const char *path, const char *const *ids, const int32_t *labels,
                                   const char *const *class_names, const float *probs, int n, int K,
                                   fl_err *err);

/* Writes m as one JSON object:
 *   {"n": N, "per_class": {"<class>": {"auc": A, "ap": P, "support": S}, ...},
 *    "macro": {"auc": A, "ap": P, "auc_classes": C, "ap_classes": C},
 *    "accuracy": X, "confusion": [[...], ...] (rows true class, columns predicted), EXTRA}
 * Class names are JSON-escaped; NaN (undefined) values are written as null, others with 17
 * significant digits. extra_json, when not NULL, is spliced in after "confusion": either members
 * ("\"round\": 3, \"site\": \"a\"") or an object whose braces are dropped; it is the caller's to
 * keep valid (it is not checked). K must equal m->K. Returns FL_OK, FL_EINVAL, FL_EIO or
 * FL_ENOMEM; path is untouched on failure. */
fl_status fl_write_metrics_json(const char *path, const fl_metrics *m,
                                const char *const *class_names, int K, const char *extra_json,
                                fl_err *err);

/* Writes s as a JSON string literal (quotes included) to f: ", \ and control characters are
 * escaped, other bytes (UTF-8) pass through. */
void fl_json_write_string(FILE *f, const char *s);

#endif
