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
#include "../nn/backend.h"
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
/* Where the site's models compute from now on: fl_backend_new's device ("cpu", the default
 * after fl_site_open, "cuda" or "cuda:N"; copied) and precision. A device that cannot start
 * makes the next phase's work fail with the backend's sentence, so a client checks it when it
 * starts (fl_backend_new once). */
void fl_site_set_device(fl_site *s, const char *device, fl_precision precision);

/* The data summary a client declares when it joins: counts only, no patient data (a client
 * with a privacy budget leaves the patient counts out: client.c). */
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

/* Site standardization (the plan's standardize = site): standardizes each omics modality of the
 * fusion model over the site's own training patients, for the plan's names in the plan's order,
 * and, when emb_sums is not NULL, the image embeddings from their sums (FL_STATS_LEN(E) floats:
 * what fl_site_features wrote). Nothing leaves the site. A modality that fewer than 2 of the
 * site's training patients have cannot be estimated: it is left out (fl_site_left_out). FL_EINVAL
 * under federated standardization. */
fl_status fl_site_standardize_here(fl_site *s, const float *emb_sums, int E, fl_err *err);
/* The modalities (FL_MODALITY_BIT) fl_site_standardize_here left out: their inputs are masked
 * for every patient of the site, as if no patient had them. */
unsigned fl_site_left_out(const fl_site *s);

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

/* ---- differential privacy (site_dp.c) ----
 * Under the plan's [privacy] mechanism = dp-sgd, fl_site_train runs DP-SGD instead: each step
 * draws patients by Poisson sampling (rate q) from the training patients (the image phase: those
 * with tiles), computes each drawn patient's gradient on its own (fusion: its row; image: the
 * sum over up to h->batch of its tiles, drawn at random when it has more, the model's batch
 * padded with rows the loss ignores), clips it to L2 norm C over all parameters, adds Gaussian
 * noise of std sigma C to every coordinate of the sum, divides by q n (the expected batch,
 * Opacus' convention) and takes the optimizer step (with FedProx's and Adam's L2 terms as
 * without DP). Steps per round: h->local_steps, or ceil(h->epochs / q). *examples is then the
 * number of patients sampled from (the client does not send it). The noise and the sampling
 * come from the site's fl_dp_source; without one, DP training is refused. */

/* A Gaussian noise source: out[0..n) = independent N(0, std^2) draws. A source that fails
 * writes NaN, which the site refuses. */
typedef void (*fl_noise_fn)(void *user, float *out, size_t n, double std);
/* Poisson sampling: mask[i] = 1 with probability q, else 0, independently for each i < n. A
 * source that fails writes 0xff, which the site refuses. */
typedef void (*fl_sample_fn)(void *user, uint8_t *mask, size_t n, double q);
/* The randomness of DP-SGD. For real use the CSPRNG (fl_dp_csprng_source); tests pass seeded
 * functions. */
typedef struct {
    fl_noise_fn noise;
    fl_sample_fn sample;
    void *user; /* handed to both */
} fl_dp_source;

/* Sets the site's DP-SGD randomness (copied; src->user must outlive the site's training). */
void fl_site_set_dp_source(fl_site *s, const fl_dp_source *src);

/* One DP-SGD round at a site: what its accountant composes and its outbox records. */
typedef struct {
    double q;       /* Poisson sampling rate of patients per step */
    double sigma;   /* noise multiplier: noise std sigma * clip on the sum of clipped gradients */
    double clip;    /* C, the L2 bound of each patient's gradient */
    int64_t steps;  /* optimizer steps of the round */
    int batch;      /* model rows per patient: 1 (fusion), or the image's tiles per patient */
    int n_patients; /* the patients sampled from */
    /* after training (fl_site_dp_last) */
    double sampled; /* patients drawn, summed over the steps */
    double seconds; /* wall time of the round's steps */
} fl_site_dp_round;

/* The DP-SGD round that fl_site_train would run for phase ph with settings h under the plan's
 * [privacy] (its q, sigma and C; the steps and batch as above; batch = min(h->batch, the most
 * tiles a training patient has) for the image). Returns FL_OK; FL_EINVAL when the plan has no
 * DP-SGD, ph does not train, or there is no patient to sample from. */
fl_status fl_site_dp_plan(fl_site *s, fl_phase ph, const fl_plan_training *h, fl_site_dp_round *out,
                          fl_err *err);
/* The last DP-SGD round fl_site_train ran at s, with sampled and seconds (all 0 before any). */
const fl_site_dp_round *fl_site_dp_last(const fl_site *s);

/* The CSPRNG as a DP source (crypto/rand.h): Box-Muller over 2 x 53 random bits per pair of
 * Gaussians, and a 53-bit uniform per sampling draw. st is FL_OK until a draw fails (err then
 * says why, and the draws hold the values the site refuses). Init before use; destroy wipes the
 * unused random bytes. */
typedef struct {
    fl_status st;
    fl_err err;
    uint64_t buf[2048]; /* random words not used yet: buf[at..n) */
    size_t at, n;
} fl_dp_csprng;
void fl_dp_csprng_init(fl_dp_csprng *c);
/* The source that draws from c (which must outlive its use). */
fl_dp_source fl_dp_csprng_source(fl_dp_csprng *c);
void fl_dp_csprng_destroy(fl_dp_csprng *c);

/* ---- the privacy ledger: what a site's DP-SGD rounds spent, kept across restarts ----
 * A text file (state_dir/privacy.state) with one line per round whose update was released
 * ("round=R phase=P q=Q sigma=S clip=C steps=T"), rewritten atomically by each spend, and an
 * RDP accountant (crypto/dp_accountant.h, default orders, Balle et al.'s conversion) that
 * composes all of them. */
typedef struct fl_dp_ledger fl_dp_ledger;

/* Opens the ledger at path (a missing file is a ledger with nothing spent). Returns FL_OK;
 * FL_EIO when it exists but cannot be read; FL_EFORMAT "<path>:<line>: ..." for a line that is
 * not a round (an edited or damaged ledger is never silently reset); FL_ENOMEM. */
fl_status fl_dp_ledger_open(const char *path, fl_dp_ledger **out, fl_err *err);
void fl_dp_ledger_free(fl_dp_ledger *l);
/* Training rounds recorded so far; evaluations recorded so far. */
int fl_dp_ledger_rounds(const fl_dp_ledger *l);
int fl_dp_ledger_evaluations(const fl_dp_ledger *l);
/* The epsilon spent for delta (0 when nothing was), after one more round next if it is
 * non-NULL (l unchanged). Returns FL_OK (+inf when a round had sigma = 0), or the accountant's
 * FL_EINVAL. */
fl_status fl_dp_ledger_epsilon(const fl_dp_ledger *l, const fl_site_dp_round *next, double delta,
                               double *eps, fl_err *err);
/* Records round r of phase ph: the file first (atomically), then the accountant. To be called
 * before the round's update leaves. Returns FL_OK, FL_EIO (the file could not be replaced: l is
 * unchanged), FL_EINVAL or FL_ENOMEM. */
fl_status fl_dp_ledger_spend(fl_dp_ledger *l, int64_t round, fl_phase ph, const fl_site_dp_round *r,
                             fl_err *err);
/* The same for the noised evaluation report of round `round` (phase ph's model): one Gaussian
 * mechanism, q 1, noise multiplier sigma, 1 step (a line "... steps=1 eval"). To be called
 * before the report leaves. */
fl_status fl_dp_ledger_spend_eval(fl_dp_ledger *l, int64_t round, fl_phase ph, double sigma,
                                  fl_err *err);

/* Noised evaluation (docs/privacy.md, "Noised evaluation"): the report's n_hist counts, its
 * patients and its K patients per class each plus Gaussian noise of std count_std, its loss_sum
 * plus noise of std loss_std, all drawn from src, into the noised_* outputs (caller-owned,
 * n_hist and K doubles). Returns FL_OK; FL_EBACKEND when the source failed (a non-finite
 * draw: nothing is to be sent); FL_ENOMEM. */
fl_status fl_dp_eval_noise(const fl_dp_source *src, double count_std, double loss_std,
                           const uint64_t *hist, size_t n_hist, uint64_t patients,
                           const uint64_t *per_class, size_t K, double loss_sum,
                           double *noised_hist, double *noised_patients, double *noised_per_class,
                           double *noised_loss, fl_err *err);

/* Federated evaluation: scores the site's test patients with the global model of phase ph
 * (patient score = mean tile probability for the image phase) and fills hist (n_classes * 2 *
 * bins counts, the layout of eval/metrics.h's fl_score_hist), *loss_sum (summed cross-entropy
 * of the patient scores, each patient's clipped to loss_clip when it is > 0: noised reports
 * need the bound), *patients and per_class (n_classes counts). */
fl_status fl_site_evaluate(fl_site *s, fl_phase ph, const float *global, size_t n, int bins,
                           double loss_clip, uint64_t *hist, double *loss_sum, uint64_t *patients,
                           uint64_t *per_class, fl_err *err);

/* Writes the global model of phase ph as a checkpoint a hospital can use with `fedlung eval`
 * and `fedlung explain` (for fusion: the /pipeline section with the standardization and the
 * feature names; the image model written beside it as <path>.rnet.h5 when the fusion model uses
 * the image modality). Atomic. */
fl_status fl_site_save_model(fl_site *s, fl_phase ph, const float *global, size_t n,
                             const char *path, fl_err *err);

#endif
