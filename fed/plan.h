/* plan.h - the study plan: the one document a consortium's privacy officers approve (by its
 * SHA-256) and that server and hospitals both read, so that they build the same models and run
 * the same phases. An INI file (libinih, via common/conf.h) with [study], [image], [fusion] and
 * [privacy] sections, checked strictly: an unknown key or a bad value is an error naming file and
 * line. It says what is trained and how; it is not the server's deployment config (address,
 * certificates, allow-list, deadlines: server/config.h) nor a hospital's (client/config.h). */
#ifndef FL_PLAN_H
#define FL_PLAN_H

#include <stdint.h>

#include "../common/status.h"
#include "../nn/graph.h"
#include "../nn/resnet.h"

#define FL_PLAN_MAX_CLASSES 16
#define FL_PLAN_MAX_TEXT (64 << 10) /* bytes of a plan file */

/* The study's phases, in the order they run (DESIGN.md §2). Values equal proto's Phase. */
typedef enum {
    FL_PHASE_NONE = 0,
    FL_PHASE_STATISTICS = 1, /* federated sums -> global z-score parameters, variance ranking */
    FL_PHASE_IMAGE = 2,      /* RNet, federated training */
    FL_PHASE_FEATURES = 3,   /* local embedding with the global RNet + federated sums of them */
    FL_PHASE_FUSION = 4,     /* MMLM, federated training */
} fl_phase;

/* The four modalities, in the fixed order of the fusion model's inputs. Values equal proto's
 * Modality. Bits (1 << (m - 1)) make modality sets. */
typedef enum {
    FL_MODALITY_IMAGE = 1,
    FL_MODALITY_RNA = 2,
    FL_MODALITY_METHYLATION = 3,
    FL_MODALITY_CLINICAL = 4,
} fl_modality;
#define FL_MODALITY_BIT(m) (1u << ((m)-1))

/* How a site protects its patients (DESIGN.md §5). Values equal proto's DpMechanism. */
typedef enum { FL_DP_NONE = 0, FL_DP_SGD = 1, FL_DP_FEDAVG = 2 } fl_dp_mechanism;

/* The [privacy] section: what every site's local training does under differential privacy. */
typedef struct {
    fl_dp_mechanism mechanism; /* FL_DP_NONE (default), FL_DP_SGD or FL_DP_FEDAVG */
    double clip_norm;          /* C > 0: each patient's gradient is clipped to this L2 norm
                                  (DP-SGD); each site's update delta (DP-FedAvg, or without a
                                  mechanism; 0: none) */
    double noise_multiplier;   /* sigma >= 0: Gaussian noise of std sigma * C on the sum */
    double sample_rate;        /* q in (0, 1]: Poisson rate of patients per step */
    double delta;              /* the delta of (epsilon, delta), in (0, 1); default 1e-5 */
    /* DP-FedAvg (docs/privacy.md, "Client-level DP-FedAvg"): each of the n expected sites adds
     * N(0, (sigma C)^2 / (n - k)) per coordinate, so that any n - k of them sum to noise of std
     * sigma C at least. */
    int dp_clients;  /* n >= 1: the sites expected per round (required with dp-fedavg) */
    int dp_dropouts; /* k in [0, n): sites that may drop out of a round; default 0 */
    /* DP-FedAvg's adaptive clipping (Andrew et al. 2021; docs/privacy.md, "Client-level
     * DP-FedAvg"): clip_norm is the first round's C; each round the sites also send a noised bit
     * [norm <= C] and the server moves C towards the target quantile of the update norms. The
     * updates' noise multiplier is raised to fl_plan_dp_fedavg_multiplier so that updates and
     * bits together cost what noise_multiplier costs. */
    int adaptive_clip;      /* 1: adaptive (only with dp-fedavg); 0: C fixed (default) */
    double target_quantile; /* gamma in (0, 1): the fraction of updates left unclipped (0.5) */
    double clip_lr;         /* eta > 0: C_{t+1} = C_t exp(-eta (b_mean - gamma)) (0.2) */
    double clip_bit_noise;  /* sigma_b > noise_multiplier / 2: the std of the noise on the sum
                               of the n - k sites' bits (default dp_clients / 20) */
    /* Secure aggregation (docs/privacy.md, "Secure aggregation"): updates travel as
     * ENCODING_FIXED32 masked so that the server learns only their sum. Each site clips its
     * update to an L2 bound (fed/plan_secagg.h: clip_norm, or update_clip under DP-SGD), the
     * fixed-point range; uniform weights and FedBN off. Under DP-FedAvg the noise is the
     * discrete Gaussian, added in the encoded domain. */
    int secagg;                /* 1: secure aggregation of the trained phases' updates */
    uint32_t secagg_threshold; /* t; 0 = max(2, ceil(2n/3)) over the round's n participants */
    int secagg_cipher;         /* mask expansion: 0 aes-ctr (default), 1 chacha20 (values of
                                  crypto/stream.h's fl_stream_cipher) */
    double update_clip;        /* DP-SGD with secagg: the L2 bound of each site's update (a
                                  post-processing of the DP-SGD output: it costs no epsilon) */
    /* Noised evaluation (docs/privacy.md, "Noised evaluation"), under a DP mechanism only: each
     * site's EvalReport is one Gaussian mechanism of noise multiplier z_e on the vector (the
     * histogram's counts, the patients, the patients per class, loss_sum / L) of L2
     * sensitivity sqrt(K + 3) for one patient, each patient's cross-entropy clipped to [0, L];
     * the site's ledger counts it at q 1, sigma z_e, 1 step. */
    double eval_noise_multiplier; /* z_e >= 0 (default FL_PLAN_EVAL_NOISE under DP; 0: the
                                     reports travel un-noised) */
    double eval_loss_clip;        /* L > 0 (default FL_PLAN_EVAL_LOSS_CLIP under DP) */
} fl_plan_privacy;

#define FL_PLAN_EVAL_NOISE 4.0      /* default eval_noise_multiplier under DP */
#define FL_PLAN_EVAL_LOSS_CLIP 10.0 /* default eval_loss_clip under DP */
#define FL_PLAN_EVAL_BINS 20        /* default [study] bins with noised evaluation reports */
#define FL_PLAN_EVAL_MAX_BINS 50    /* the most bins noised reports may have */

/* How the fusion model's inputs are standardized (docs/privacy.md, "Standardization under
 * DP"). */
typedef enum {
    FL_STD_FEDERATED = 0, /* the statistics and features phases: the sites' sums give global
                             z-scores and the variance ranking (the default without DP) */
    FL_STD_SITE = 1,      /* each site z-scores its own data with its own training patients; the
                             plan names the features (the default, and required, under DP) */
} fl_standardize;

#define FL_PLAN_NAME_MAX 127 /* characters of a name in a feature list */

/* A feature list the plan names ([fusion] rna_names, meth_names, clinical_names), in order. */
typedef struct {
    char **v; /* n names (heap, owned by the plan) */
    int n;
} fl_plan_names;

typedef enum { FL_STRATEGY_FEDAVG = 0, FL_STRATEGY_FEDADAM = 1, FL_STRATEGY_FEDYOGI = 2 } fl_strategy;
typedef enum { FL_LOCAL_SGD = 1, FL_LOCAL_ADAM = 2, FL_LOCAL_ADAMW = 3 } fl_local_optimizer;

/* How one federated training phase trains (the same keys in [image] and [fusion]). */
typedef struct {
    int rounds;        /* federated rounds of this phase (>= 1) */
    int local_steps;   /* optimizer steps per round at each site (> 0), or 0 ... */
    int epochs;        /* ... local epochs per round (> 0) when local_steps is 0 */
    int batch;         /* >= 1 */
    fl_local_optimizer optimizer;
    float lr, momentum, weight_decay;
    float fedprox_mu;     /* 0 = FedAvg's local objective; > 0 adds mu/2 |w - w_global|^2 */
    fl_strategy strategy; /* the server optimizer */
    float server_lr;      /* FedAvg: 1; FedAdam/FedYogi: Reddi et al.'s eta */
    float beta1, beta2, tau;
    int fedbn;         /* 1: BatchNorm statistics stay at each site (not sent, not averaged) */
    int weighted;      /* 1: weight updates by example count (FedAvg); 0: uniform */
    int eval_every;    /* federated evaluation after every k-th round (and the last); 0 = last */
} fl_plan_training;

typedef struct {
    /* [study] */
    char id[65];                                 /* the study id; must equal the server's */
    int n_classes;                               /* 2..FL_PLAN_MAX_CLASSES */
    char class_names[FL_PLAN_MAX_CLASSES][64];   /* in label order; must equal each cohort's */
    unsigned phases;                             /* bit (1 << phase) for each phase run */
    uint64_t seed;                               /* initial weights of every global model */
    int bins; /* evaluation histogram bins (default 1000; FL_PLAN_EVAL_BINS and at most
                 FL_PLAN_EVAL_MAX_BINS when fl_plan_eval_noised) */
    /* [image] */
    fl_resnet_config net;                        /* depth, tile, stem, width (classes = n_classes) */
    fl_plan_training image;
    char image_model[4096]; /* with no image phase: the RNet checkpoint the server starts the
                               features phase from (relative to the plan's folder), or "" */
    /* [fusion] */
    unsigned modalities;                         /* FL_MODALITY_BIT set (default: all four) */
    int rna_features, meth_features;             /* top-variance features kept (default 256) */
    int mvalue;                                  /* methylation beta -> M-value (default 1) */
    fl_standardize standardize;                  /* default FL_STD_SITE under DP, else federated */
    fl_plan_names names[3]; /* FL_STD_SITE: the features of rna, methylation, clinical (by
                               fl_modality - FL_MODALITY_RNA), required for each omics modality
                               of the fusion model; none under FL_STD_FEDERATED */
    int enc_dim, hidden;                         /* default 32, 32 */
    float dropout;                               /* default 0.2 */
    fl_plan_training fusion;
    /* [privacy] (with DP-SGD: net.groupnorm is set, BatchNorm being per-batch, and weighted
     * is false in both phases, the example counts not being sent) */
    fl_plan_privacy privacy;
    /* not in the file */
    uint8_t sha256[32]; /* of the file's exact bytes */
    char *text;         /* the file's bytes, NUL-terminated (heap; JoinReply.plan carries them) */
    size_t text_len;
    char path[4096];    /* where it was read from, for messages ("" when parsed from memory) */
} fl_plan;

/* Reads and checks the plan at path. Returns FL_OK (*p owned: fl_plan_destroy); FL_EIO when it
 * cannot be read; FL_EFORMAT "<file>:<line>: <what is wrong>" or "<file>: <what is missing or
 * inconsistent>" (e.g. fusion uses the image modality but neither an image phase nor
 * image_model is given). On failure *p holds nothing. */
fl_status fl_plan_load(const char *path, fl_plan *p, fl_err *err);
/* The same from n bytes received in a JoinReply (name is used in messages, e.g. "the server's
 * plan"); relative paths stay as they are. */
fl_status fl_plan_parse(const char *text, size_t n, const char *name, fl_plan *p, fl_err *err);
void fl_plan_destroy(fl_plan *p);

/* DP-FedAvg: the noise std each site adds per coordinate for the plan's clip_norm,
 * fl_plan_dp_fedavg_std_at(pv, pv->clip_norm); 0 for another mechanism. */
double fl_plan_dp_fedavg_std(const fl_plan_privacy *pv);
/* ... for the clip norm C of a round (adaptive clipping moves it): z C / sqrt(n - k), z being
 * fl_plan_dp_fedavg_multiplier; 0 for another mechanism. */
double fl_plan_dp_fedavg_std_at(const fl_plan_privacy *pv, double C);
/* DP-FedAvg: the noise multiplier of the updates: the plan's noise_multiplier z, or with
 * adaptive clipping z_delta = (z^-2 - (2 sigma_b)^-2)^-1/2 (fed/dp_clip.h), which the plan's
 * checks made defined; 0 for another mechanism. The accounting stays at z. */
double fl_plan_dp_fedavg_multiplier(const fl_plan_privacy *pv);
/* Adaptive clipping: the std of the noise each site adds to its bit, sigma_b / sqrt(n - k), so
 * that the bits of n - k sites sum to noise of std sigma_b; 0 without adaptive clipping. */
double fl_plan_dp_fedavg_bit_std(const fl_plan_privacy *pv);

/* Whether the sites' evaluation reports travel noised: a DP mechanism with
 * eval_noise_multiplier > 0. */
int fl_plan_eval_noised(const fl_plan *p);
/* With noised reports, the noise std of each count of a report (histogram bins, patients,
 * patients per class): z_e sqrt(K + 3) for the plan's K classes; of its loss_sum: that times
 * eval_loss_clip. 0 when the reports are not noised. */
double fl_plan_eval_count_std(const fl_plan *p);
double fl_plan_eval_loss_std(const fl_plan *p);

/* The names [fusion] gives omics modality m (rna, methylation, clinical), or NULL for another
 * modality; n is 0 without a list. */
const fl_plan_names *fl_plan_names_of(const fl_plan *p, fl_modality m);

/* The first name list l holds twice (a pointer into l), or NULL; *st is FL_ENOMEM when there
 * was no memory to sort a copy of the list, else FL_OK. */
const char *fl_plan_names_twice(const fl_plan_names *l, fl_status *st);

/* "statistics", "image", "features", "fusion" (and "none"). */
const char *fl_phase_name(fl_phase ph);
/* "image", "rna", "methylation", "clinical". */
const char *fl_modality_name(fl_modality m);
/* The phase after ph that the plan runs, or FL_PHASE_NONE when ph was the last. ph NONE gives
 * the first. */
fl_phase fl_plan_next_phase(const fl_plan *p, fl_phase ph);
/* The training settings of a trained phase (image, fusion); NULL for the others. */
const fl_plan_training *fl_plan_training_of(const fl_plan *p, fl_phase ph);
/* The SHA-256 as 64 lower-case hex digits + NUL. */
void fl_plan_hash_hex(const fl_plan *p, char hex[65]);

/* The global model graph of the image phase: the plan's ResNet. */
fl_status fl_plan_image_graph(const fl_plan *p, fl_graph **g, fl_err *err);
/* The MMLM graph of the fusion phase, for the plan's modalities (in the fixed order) with
 * in_dim[m - 1] input features for modality m (the statistics and features phases decide
 * these: features kept, and the embedding width). */
fl_status fl_plan_fusion_graph(const fl_plan *p, const int in_dim[4], fl_graph **g, fl_err *err);

#endif
