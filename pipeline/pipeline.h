/* pipeline.h - the seed paper's pipeline at one site: RNet on tiles, patient embeddings, MMLM
 * fusion with standardized omics, and evaluation. The federation runs the same steps at each
 * hospital; here they run on one cohort file. Not a scheduler and not a file format (the
 * cohort and the checkpoints have their own modules). */
#ifndef FL_PIPELINE_H
#define FL_PIPELINE_H

#include <stdint.h>

#include "../common/status.h"
#include "../data/cohort.h"
#include "../nn/backend.h"
#include "../nn/resnet.h"

typedef struct {
    const char *cohort, *out;
    fl_resnet_config net; /* tile 0 = the cohort's tile size; classes from the cohort */
    int epochs;           /* default 6 */
    int batch;            /* default 32 */
    float lr;             /* SGD with momentum 0.9, cosine schedule; default 0.05 */
    float weight_decay;   /* default 1e-4 */
    int threads;
    const char *device;     /* fl_backend_new's: "cpu" (also NULL, the default), "cuda", "cuda:N" */
    fl_precision precision; /* on cuda; default fp32 */
    uint64_t seed;
    int quiet;
} fl_image_train_config;

void fl_image_train_config_default(fl_image_train_config *c);
/* Trains RNet on the train split's tiles (tile label = patient label; flips, 90-degree
 * rotations and colour jitter), scores the validation patients after every epoch (patient
 * score = mean tile probability) and writes the best epoch's weights to c->out. */
fl_status fl_train_image(const fl_image_train_config *c, fl_err *err);

enum { FL_USE_IMAGE = 1, FL_USE_RNA = 2, FL_USE_METHYLATION = 4, FL_USE_CLINICAL = 8 };

typedef struct {
    const char *cohort, *out;
    const char *image_model; /* NULL: no image modality */
    unsigned modalities;     /* FL_USE_* bits; 0 = every modality present (image if a model) */
    int stage_head;
    int epochs;         /* default 150 */
    int batch;          /* default 32 */
    float lr;           /* AdamW; default 3e-3 */
    float weight_decay; /* default 1e-2 */
    int rna_features;   /* top-variance genes kept; default 256 */
    int meth_features;  /* top-variance probes kept; default 256 */
    int mvalue;         /* methylation beta -> M-value; default 1 */
    int enc_dim, hidden;
    float dropout;
    int threads;
    const char *device;     /* as fl_image_train_config's: the fusion model and, with */
    fl_precision precision; /* image_model, the patient embeddings run there */
    uint64_t seed;
    int quiet;
} fl_fusion_train_config;

void fl_fusion_train_config_default(fl_fusion_train_config *c);
/* Fits the standardization on the train split (variance selection, z-scores; stored in the
 * model file), embeds each patient with the image model (mean of tile embeddings) when given,
 * trains MMLM and writes the best epoch (validation macro AUC) to c->out. */
fl_status fl_train_fusion(const fl_fusion_train_config *c, fl_err *err);

typedef struct {
    const char *cohort, *model, *outdir;
    const char *image_model; /* overrides the image model path recorded in a fusion model */
    fl_split split;          /* default test */
    int threads;
    int quiet;
} fl_eval_config;

/* Scores the split's patients with an image or fusion model and writes outdir/metrics.json,
 * outdir/predictions.csv, outdir/roc.png and outdir/pr.png. metrics.json is computed from
 * exactly the probabilities written to predictions.csv. *macro_auc receives the macro AUC. */
fl_status fl_evaluate(const fl_eval_config *c, double *macro_auc, fl_err *err);

#endif
