/* site_impl.h - the inside of an fl_site, shared by site.c (opening, statistics,
 * standardization, features, checkpoints) and site_train.c (local training and evaluation).
 * Internal to client/. */
#ifndef FL_SITE_IMPL_H
#define FL_SITE_IMPL_H

#include "../pipeline/internal.h"
#include "site.h"

struct fl_site {
    const fl_plan *p;
    char path[4096]; /* the cohort file, for messages */
    fl_cohort c;
    fl_cohort_file *f;
    int threads;
    char device[16]; /* fl_backend_new's device; "" = cpu */
    fl_precision precision;
    uint64_t seed;
    uint64_t rounds; /* fl_site_train calls so far: each seeds its own shuffling, dropout */
    int *train_rows; /* n_train patients of split TRAIN */
    int *test_rows;  /* n_test patients of split TEST */
    int n_train, n_test;
    int64_t *train_tiles; /* n_train_tiles tiles of the training patients */
    int64_t n_train_tiles;
    /* The global standardization, by modality - 1 (names = this site's feature names). */
    unsigned have_std; /* FL_MODALITY_BIT set */
    fl_standardizer std[4];
    /* Site standardization: the plan's rna, methylation, clinical names as columns of the
     * cohort (site_std.c), or NULL. */
    int *cols[3];
    unsigned left_out; /* FL_MODALITY_BIT of the modalities too few training patients have
                          here to standardize: masked for every patient */
    /* The features phase: the global RNet (its flat vector) and every patient's embedding. */
    float *rnet; /* n_rnet floats, NULL before the features phase */
    size_t n_rnet;
    float *emb;   /* P x E */
    uint8_t *has; /* P: the patient has tiles */
    int E;
    /* The fusion model's inputs for every patient, built from the above when first needed. */
    fl_fusion_inputs in;
    int in_ready;
    /* DP-SGD (site_dp.c): its randomness and its last round */
    fl_dp_source dp_src;
    int has_dp_src;
    fl_site_dp_round dp_last;
};

/* The fusion model's description (kind, classes, the plan's modalities with in_dim, enc_dim,
 * hidden, dropout, and shallow copies of the site's standardizers: not to be destroyed). FL_EINVAL
 * naming the first modality whose standardization is missing. */
fl_status fl_site_fusion_info(const fl_site *s, fl_pipeline_info *info, fl_err *err);

/* The global model of phase ph (image or fusion) on a new backend on the site's device (with its
 * threads and precision) for batches of B, with dropout seeded by seed and the weights of the
 * flat vector w (n floats: FL_ESHAPE when the plan's model has another length). On failure *be
 * and *m are NULL. */
fl_status fl_site_model(fl_site *s, fl_phase ph, const float *w, size_t n, int B, uint64_t seed,
                        fl_backend **be, fl_model **m, fl_err *err);

/* Builds s->in when it is not current (needs every standardization; the image embeddings when
 * the plan's fusion uses the image). */
fl_status fl_site_fusion_inputs(fl_site *s, fl_err *err);

/* Site standardization: finds each of the plan's names in the cohort (s->cols). FL_OK at once
 * under federated standardization; FL_EINVAL naming the first missing name. */
fl_status fl_site_std_resolve(fl_site *s, fl_err *err);

/* ---- DP-SGD inside fl_site_train (site_dp.c) ---- */

/* One DP-SGD round's state over model m (batch r->batch) of phase ph. */
typedef struct fl_site_dp fl_site_dp;

/* 1 when the plan trains with DP-SGD. */
int fl_site_dp_on(const fl_site *s);
/* Starts a round r (from fl_site_dp_plan) on m. FL_EINVAL without a DP source; FL_ENOMEM. On
 * failure *out is NULL. */
fl_status fl_site_dp_new(fl_site_dp **out, fl_site *s, fl_phase ph, fl_model *m,
                         const fl_site_dp_round *r, fl_err *err);
/* One step's gradient into m's gradient slab: sample, clip and sum, noise, / (q n). *loss is
 * the mean loss of the patients drawn (0 when none was). FL_EINVAL when the source failed or a
 * gradient is not finite. */
fl_status fl_site_dp_step(fl_site_dp *d, fl_rng *r, float *loss, fl_err *err);
/* The gradient of patient i of the round's population (0 <= i < r->n_patients, in the site's
 * order of training patients) into m's gradient slab, summed over its tiles of this step (the
 * image; rows of the model batch beyond them are padding); *loss its mean loss. */
fl_status fl_site_dp_patient_grad(fl_site_dp *d, int i, fl_rng *r, float *loss, fl_err *err);
/* Ends the round: records it as s's last (sampled, seconds) and returns the mean loss of the
 * patients drawn. Frees d. */
double fl_site_dp_finish(fl_site_dp *d);
/* Frees d without recording; NULL is a no-op. */
void fl_site_dp_free(fl_site_dp *d);

#endif
