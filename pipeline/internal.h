/* internal.h - pieces shared by the pipeline's commands: tile ranges per patient, running an
 * image model over patients, the standardization of omics, the pipeline's section of a model
 * file, and the training steps. Internal to pipeline/ and to the federation's site
 * (client/site*.c), which trains and scores the same models the same way. */
#ifndef FL_PIPELINE_INTERNAL_H
#define FL_PIPELINE_INTERNAL_H

#include "../common/rng.h"
#include "../data/cohort.h"
#include "../nn/checkpoint.h"
#include "../nn/model.h"
#include "pipeline.h"

/* Where a step computes: fl_backend_new's device ("cpu" when NULL), its CPU threads (0: the
 * default) and its CUDA precision. */
typedef struct {
    const char *device;
    int threads;
    fl_precision precision;
} fl_compute;
#define FL_COMPUTE_CPU(nthreads) ((fl_compute){NULL, (nthreads), FL_PREC_FP32})

/* first[p] and count[p] of each patient's tiles (tiles are grouped by patient). Caller frees
 * both. */
fl_status fl_tile_ranges(const fl_cohort *c, int64_t **first, int64_t **count, fl_err *err);

/* want[p] = 1 for the patients of split s. Returns how many. */
int fl_split_mask(const fl_cohort *c, fl_split s, uint8_t *want);

/* Runs m in eval mode over every tile of the wanted patients and writes per patient the mean
 * softmax probability (probs, P x K) and/or the mean pooled embedding (emb, P x E), either may
 * be NULL; has_tiles[p] (may be NULL) says whether patient p had any tile. */
fl_status fl_image_patient_outputs(fl_model *m, fl_cohort_file *f, const fl_cohort *c,
                                   const uint8_t *want, float *probs, float *emb,
                                   uint8_t *has_tiles, int quiet, fl_err *err);

/* Row-wise softmax in place (host). */
void fl_softmax_rows(float *x, int n, int K);

/* Methylation's beta -> M-value, log2(beta / (1 - beta)) with beta clamped to [1e-3, 1 - 1e-3]:
 * the transform the standardization applies when its mvalue flag is set. */
double fl_mvalue(double beta);

/* Standardization of one modality: kept features (by name), their means and deviations. */
typedef struct {
    int n;        /* features kept */
    char **names; /* n */
    float *mean, *std;
    int mvalue; /* methylation: beta -> M-value before anything else */
} fl_standardizer;

/* Fits on the rows with train[p] && present[p]: keeps the top_k features by variance (all
 * when top_k <= 0 or >= F), ignoring NaN. */
fl_status fl_standardizer_fit(fl_standardizer *s, const fl_omics_matrix *m, int P,
                              const uint8_t *train, int top_k, int mvalue, fl_err *err);
/* Fits on a dense P x F matrix (image embeddings), features named "emb<i>". */
fl_status fl_standardizer_fit_dense(fl_standardizer *s, const float *x, int P, int F,
                                    const uint8_t *train, const uint8_t *present, fl_err *err);
/* out (P x n) = z-scores of m's columns matched by name; NaN and absent rows become 0. A kept
 * feature missing from m is an error naming it. */
fl_status fl_standardizer_apply(const fl_standardizer *s, const fl_omics_matrix *m, int P,
                                float *out, fl_err *err);
void fl_standardizer_apply_dense(const fl_standardizer *s, const float *x, int P,
                                 const uint8_t *present, float *out);
void fl_standardizer_destroy(fl_standardizer *s);

/* The pipeline's section of a model file (group /pipeline). */
typedef struct {
    char kind[16]; /* "image" or "fusion" */
    int n_classes;
    char class_names[FL_MAX_CLASSES][64];
    /* fusion only */
    int n_modalities;
    char modalities[4][32];
    int in_dim[4], enc_dim, hidden, stages;
    float dropout;
    fl_standardizer std[4]; /* per modality */
    char image_model[1024]; /* path of the RNet used for embeddings, "" if none */
    char image_sha256[65];
    double val_macro_auc;
    int best_epoch;
} fl_pipeline_info;

/* Saves m with meta to path (atomically) with info in /pipeline. */
fl_status fl_pipeline_save(fl_model *m, const fl_model_meta *meta, const fl_pipeline_info *info,
                           const char *path, fl_err *err);
/* Reads /pipeline of path into info (zero it first); standardizers are allocated. */
fl_status fl_pipeline_read(const char *path, fl_pipeline_info *info, fl_err *err);
void fl_pipeline_info_destroy(fl_pipeline_info *info);

/* ---- MMLM inputs ---- */

/* Embeds every patient with the RNet checkpoint at path (mean of tile embeddings), run on dev:
 * *emb gets P x *E floats, *has P flags (patients with tiles); sha256 receives the checkpoint's
 * hash. */
fl_status fl_image_embeddings(const char *path, const fl_cohort *c, fl_cohort_file *f,
                              const fl_compute *dev, int quiet, float **emb, int *E, uint8_t **has,
                              char sha256[65], fl_err *err);

/* Embeds every patient of c with image model m (eval mode, mean of tile embeddings): *emb gets
 * P x *E floats, *has P flags (patients with tiles). On failure both are NULL. */
fl_status fl_image_embed_patients(fl_model *m, const fl_cohort *c, fl_cohort_file *f, int quiet,
                                  float **emb, int *E, uint8_t **has, fl_err *err);

/* Per modality i of info: x[i] (P x info->in_dim[i]) standardized features, mask[i] (P) 1/0. */
typedef struct {
    int P, n;
    float *x[4], *mask[4];
} fl_fusion_inputs;

/* Builds the inputs of info's modalities for every patient of c; emb/has are the image
 * embeddings when "image" is among the modalities (else NULL). */
fl_status fl_fusion_inputs_build(const fl_pipeline_info *info, const fl_cohort *c, const float *emb,
                                 const uint8_t *has, fl_fusion_inputs *in, fl_err *err);
void fl_fusion_inputs_destroy(fl_fusion_inputs *in);

/* Builds the inputs of the fusion model file at model_path (info read from it) for every patient
 * of c (file f): embeds the patients with the image model first when "image" is among its
 * modalities (image_model, or the path recorded in info when NULL), which must be the one it was
 * trained with (same SHA-256). When emb is non-NULL the image embeddings are handed over (*emb P x
 * *E, *has P; both NULL when the model uses no image), else freed. */
fl_status fl_fusion_inputs_load(const fl_pipeline_info *info, const char *model_path,
                                const char *image_model, const fl_cohort *c, fl_cohort_file *f,
                                int threads, int quiet, fl_fusion_inputs *in, float **emb, int *E,
                                uint8_t **has, fl_err *err);
/* Builds the fusion model described by info on a CPU backend (batches of `batch`, eval use) and
 * loads its weights from path. On failure *be and *m are NULL. */
/* The MMLM graph that info (modalities, sizes, classes, stages) describes. */
fl_status fl_fusion_graph_build(const fl_pipeline_info *info, fl_graph **g, fl_err *err);

fl_status fl_fusion_model_load(const char *path, const fl_pipeline_info *info, int batch,
                               int threads, fl_backend **be, fl_model **m, fl_err *err);

/* Runs the fusion model (eval mode) on the n patients rows[]: probs (n x K) softmax of the
 * class head; stage_probs (n x stages) if non-NULL and the model has a stage head. */
fl_status fl_fusion_predict(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                            float *probs, float *stage_probs, fl_err *err);
/* Runs the fusion model (eval mode) on the n patients rows[] and copies its "fused" output, the
 * head's hidden vector (n x hidden), to fused: the patient embedding that UMAP shows. */
fl_status fl_fusion_embed(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                          float *fused, fl_err *err);
/* Copies the inputs of patients rows[0..n) (n <= batch; the rest padded with zeros) into m. */
fl_status fl_fusion_set_batch(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                              fl_err *err);

/* A new backend on dev and a model on it for graph g (whose ownership passes to the model, also
 * on failure), initialised from seed, then loaded from the checkpoint at path unless path is
 * NULL. On failure *be and *m are NULL, and err says why (for a device that cannot start, the
 * backend's own sentence). */
fl_status fl_model_on(fl_graph *g, int batch, const fl_compute *dev, uint64_t seed,
                      const char *path, fl_backend **be, fl_model **m, fl_err *err);
/* fl_model_on a CPU backend of `threads` threads. */
fl_status fl_model_on_cpu(fl_graph *g, int batch, int threads, uint64_t seed, const char *path,
                          fl_backend **be, fl_model **m, fl_err *err);

/* Builds a ResNet from a checkpoint's attributes and loads it on dev, for batches of `batch`. */
fl_status fl_load_image_model_on(const char *path, int batch, const fl_compute *dev,
                                 fl_backend **be, fl_model **m, fl_model_meta *meta, fl_err *err);
/* fl_load_image_model_on a CPU backend of `threads` threads. */
fl_status fl_load_image_model(const char *path, int batch, int threads, fl_backend **be,
                              fl_model **m, fl_model_meta *meta, fl_err *err);

/* ---- training steps (the single-site trainers and the federation's local training) ---- */

/* In-place Fisher-Yates shuffles drawing from r. */
void fl_shuffle_i64(int64_t *a, int64_t n, fl_rng *r);
void fl_shuffle_int(int *a, int n, fl_rng *r);

/* Host scratch of one image training batch of B tiles of T px. */
typedef struct {
    int B, T;
    uint8_t *raw; /* T x T x 3: one tile as read */
    float *x;     /* B x 3 x T x T: the model's input */
    int32_t *y;   /* B: labels */
} fl_image_batch;

/* Allocates b for batches of B tiles of T px (FL_ENOMEM: b holds nothing to free). */
fl_status fl_image_batch_init(fl_image_batch *b, int B, int T, fl_err *err);
void fl_image_batch_destroy(fl_image_batch *b);

/* One training step's gradient of RNet m (batch b->B) on the tiles tiles[0..b->B) of c (file f):
 * reads them with the training augmentation (flips, rotations, colour jitter drawn from r),
 * labels them with their patients' labels, runs forward (train mode) and backward. Leaves the
 * gradient slab and *loss (mean cross-entropy) for the caller's optimizer step. */
fl_status fl_image_train_grad(fl_model *m, fl_cohort_file *f, const fl_cohort *c,
                              const int64_t *tiles, fl_image_batch *b, fl_rng *r, float *loss,
                              fl_err *err);

/* The same for fusion model m on the patients rows[0..n) of in (n <= m's batch; the padding
 * rows are zeros and ignored by the loss), with the stage head's loss added when stages > 0.
 * y and ys are scratch of m's batch labels. *loss is the class head's mean cross-entropy. */
fl_status fl_fusion_train_grad(fl_model *m, const fl_fusion_inputs *in, const fl_cohort *c,
                               const int *rows, int n, int stages, int32_t *y, int32_t *ys,
                               float *loss, fl_err *err);

#endif
