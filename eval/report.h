/* report.h - evaluation results as files: per-patient predictions as CSV, metrics as JSON, both
 * written atomically (a temporary file next to the destination, renamed over it), and the
 * atomic-file helper that eval/plot.c shares. Not a parser: nothing here reads these files. */
#ifndef FL_REPORT_H
#define FL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "../common/status.h"
#include "metrics.h"

/* A file written as "<path>.tmp.XXXXXX" in the destination's folder and renamed over path by
 * fl_atomic_commit, so a reader sees the old file or the whole new one, never a part. */
typedef struct {
    FILE *f;    /* write here between open and commit */
    char *path; /* owned copies */
    char *tmp;
} fl_atomic_file;

/* Creates the temporary file (mode 0666 less the umask). Returns FL_OK, FL_EIO (the folder is
 * missing or not writable; the sentence names path) or FL_ENOMEM; on failure af holds nothing. */
fl_status fl_atomic_open(fl_atomic_file *af, const char *path, fl_err *err);
/* Flushes, fsyncs and closes the temporary file and renames it over path. Returns FL_OK or
 * FL_EIO (a write error since open, e.g. a full disk, or the rename failed; the temporary file
 * is removed). af is released either way. */
fl_status fl_atomic_commit(fl_atomic_file *af, fl_err *err);
/* Closes and removes the temporary file and releases af; a released or zeroed af is fine. */
void fl_atomic_abort(fl_atomic_file *af);

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
