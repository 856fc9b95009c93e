/* site.h - a hospital's local work for the federation, on its own cohort file and nothing else:
 * the statistics of the statistics phase, local training of the image and fusion models from a
 * global model (the update is w_local - w_global), the patient embeddings of the features
 * phase, and the score histograms of federated evaluation. No network here: client.c fetches
 * the global models and sends what these functions compute. Models travel as flat float vectors
 * (the parameter slab, then the buffer slab: fl_model_params / fl_model_buffers order). */
#ifndef FL_SITE_H
#define FL_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "../fed/plan.h"
#include "../fed/stats.h"

typedef struct fl_site fl_site;

/* Opens the site's cohort (kept open for tiles) for plan p (which must outlive the site).
 * Checks that the cohort's class names equal the plan's and that it has the tile size the
 * plan's image phase needs. threads: engine threads (0 = all); seed: local shuffling and
 * dropout. Returns FL_OK, or the cohort reader's error, or FL_EINVAL with the mismatch
 * ("hospital-a.h5: classes LUAD,LUSC,NORMAL, the plan has LUAD,LUSC"). */
fl_status fl_site_open(fl_site **out, const char *cohort, const fl_plan *p, int threads,
                       uint64_t seed, fl_err *err);
void fl_site_free(fl_site *s);

/* The data summary a client declares when it joins: counts only, no patient data. */
typedef struct {
    int n_classes;
    uint64_t patients;
    uint64_t per_class[FL_PLAN_MAX_CLASSES];
    uint64_t modality_patients[4]; /* by fl_modality - 1 */
    uint32_t features[4];          /* F of each modality (image: 0) */
    uint8_t features_sha256[4][32]; /* SHA-256 of the feature names, each followed by '\n' */
} fl_site_summary;
void fl_site_summarize(const fl_site *s, fl_site_summary *out);

/* Length in floats of this site's statistics vector: for each omics modality of the plan, in
 * the order rna, methylation, clinical, FL_STATS_LEN(F). */
size_t fl_site_statistics_len(const fl_site *s);
/* Statistics phase: fills vec (fl_site_statistics_len floats) with the blocks of fed/stats.h over
 * the site's training patients (methylation as M-values when the plan says so). */
fl_status fl_site_statistics(fl_site *s, float *vec, fl_err *err);

/* Records the global standardization of modality m (the statistics phase's result for the
 * omics, the features phase's for the image embedding): r->index refers to the site's feature
 * order. FL_EINVAL when an index is out of range. */
fl_status fl_site_set_standardization(fl_site *s, fl_modality m, const fl_stats_result *r,
                                      fl_err *err);

/* Features phase: embeds every patient with the global RNet (model: its flat vector of n
 * floats, which must match the plan's ResNet; FL_ESHAPE otherwise), keeps the embeddings for the
 * fusion phase, and fills vec (FL_STATS_LEN(E) floats, E = the embedding width: *E on return;
 * vec must hold FL_STATS_LEN(2048 * width)) with the sums over the training patients that have
 * tiles. */
fl_status fl_site_features(fl_site *s, const float *model, size_t n, float *vec, int *E,
                           fl_err *err);

/* Length in floats of the global model of phase ph (image, or fusion once every standardization
 * it needs was set, else 0). */
size_t fl_site_model_len(fl_site *s, fl_phase ph);

/* Local training of phase ph (image or fusion) from the global model (n floats) with the task's
 * settings h (local_steps or epochs, batch, optimizer, lr, momentum, weight decay, fedprox_mu;
 * the rest is ignored): writes delta = w_local - w_global (n floats) and, in *examples, the
 * number of training examples used (tiles for the image phase, patients for fusion) and, in
 * *loss, the mean training loss of the round. A batch larger than the training set is the full
 * set (full-batch gradient descent). Training mode (batch statistics, dropout); with
 * h->fedbn the buffer part of delta is 0. */
fl_status fl_site_train(fl_site *s, fl_phase ph, const fl_plan_training *h, const float *global,
                        size_t n, float *delta, double *examples, double *loss, fl_err *err);

/* Federated evaluation: scores the site's test patients with the global model of phase ph
 * (patient score = mean tile probability for the image phase) and fills hist (n_classes * 2 *
 * bins counts, the layout of eval/metrics.h's fl_score_hist), *loss_sum (summed cross-entropy
 * of the patient scores), *patients and per_class (n_classes counts). */
fl_status fl_site_evaluate(fl_site *s, fl_phase ph, const float *global, size_t n, int bins,
                           uint64_t *hist, double *loss_sum, uint64_t *patients,
                           uint64_t *per_class, fl_err *err);

/* Writes the global model of phase ph as a checkpoint a hospital can use with `fedlung eval`
 * and `fedlung explain` (for fusion: the /pipeline section with the standardization and the
 * feature names; the image model written beside it as <path>.rnet.h5 when the fusion model uses
 * the image modality). Atomic. */
fl_status fl_site_save_model(fl_site *s, fl_phase ph, const float *global, size_t n,
                             const char *path, fl_err *err);

#endif
