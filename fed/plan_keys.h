/* plan_keys.h - the study plan's key schema, shared by fed/plan.c (reading, the consistency of
 * phases and training) and fed/plan_privacy.c (the [privacy] section's checks): key indices,
 * the bits saying which were set, and the checks plan_privacy.c exports. Internal to fed/. */
#ifndef FL_PLAN_KEYS_H
#define FL_PLAN_KEYS_H

#include <stdint.h>

#include "common/conf.h"
#include "fed/plan.h"

#define PHASE_BIT(ph) (1u << (ph))
#define ALL_PHASES                                                                               \
    (PHASE_BIT(FL_PHASE_STATISTICS) | PHASE_BIT(FL_PHASE_IMAGE) | PHASE_BIT(FL_PHASE_FEATURES) | \
     PHASE_BIT(FL_PHASE_FUSION))
#define ALL_MODALITIES 0xfu
#define OMICS_MODALITIES                                                           \
    (FL_MODALITY_BIT(FL_MODALITY_RNA) | FL_MODALITY_BIT(FL_MODALITY_METHYLATION) | \
     FL_MODALITY_BIT(FL_MODALITY_CLINICAL))

/* The keys of a training section, in the order of set_training's i. */
enum {
    T_ROUNDS,
    T_LOCAL_STEPS,
    T_EPOCHS,
    T_BATCH,
    T_OPTIMIZER,
    T_LR,
    T_MOMENTUM,
    T_WEIGHT_DECAY,
    T_FEDPROX_MU,
    T_STRATEGY,
    T_SERVER_LR,
    T_BETA1,
    T_BETA2,
    T_TAU,
    T_FEDBN,
    T_WEIGHTED,
    T_EVAL_EVERY,
    N_TRAINING
};

/* The schema: [study] keys, [image] keys then its training keys, [fusion] keys then its
 * training keys. */
enum { K_ID, K_CLASSES, K_PHASES, K_SEED, K_BINS, N_STUDY };
enum { I_ARCH = N_STUDY, I_STEM, I_TILE, I_WIDTH, I_MODEL, I_TRAINING };
enum {
    F_MODALITIES = I_TRAINING + N_TRAINING,
    F_RNA,
    F_METH,
    F_MVALUE,
    F_ENC_DIM,
    F_HIDDEN,
    F_DROPOUT,
    F_STANDARDIZE,
    F_RNA_NAMES,
    F_METH_NAMES,
    F_CLINICAL_NAMES,
    F_TRAINING,
    P_MECHANISM = F_TRAINING + N_TRAINING,
    P_CLIP_NORM,
    P_NOISE,
    P_SAMPLE_RATE,
    P_DELTA,
    P_SECAGG,
    P_SECAGG_THRESHOLD,
    P_SECAGG_CIPHER,
    P_DP_CLIENTS,
    P_DP_DROPOUTS,
    P_ADAPTIVE_CLIP,
    P_TARGET_QUANTILE,
    P_CLIP_LR,
    P_CLIP_BIT_NOISE,
    P_UPDATE_CLIP,
    P_EVAL_NOISE,
    P_EVAL_LOSS_CLIP,
    N_KEYS
};
_Static_assert(N_KEYS <= FL_CONF_MAX_KEYS, "the plan's keys are tracked in common/conf.h's bits");
/* Whether key k was seen (bits from fl_conf_parse_text). */
#define SEEN(seen, k) (((seen)[(k) / 64] >> ((k) % 64)) & 1)

/* The [privacy] key names, in P_MECHANISM order (fed/plan.c). */
extern const char *const fl_plan_privacy_names[];

/* fed/plan_privacy.c: the [privacy] section against the rest of the plan (seen: the keys set).
 * Each returns FL_OK or FL_EFORMAT with a sentence naming the file (name) and the key. */
fl_status fl_plan_check_privacy(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err);
fl_status fl_plan_check_adaptive(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err);
fl_status fl_plan_check_secagg(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err);
fl_status fl_plan_check_eval_noise(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err);

/* fed/plan.c: calls item(user, item_text, msg) for each comma-separated item of value (spaces
 * trimmed; an empty item is a complaint). Returns 1, or 0 after a complaint. */
int fl_plan_each_item(char *msg, const char *name, const char *value,
                      int (*item)(void *user, const char *s, char *msg), void *user);

/* fed/plan_standardize.c: [fusion] standardize and the name lists. fl_plan_add_names appends
 * value's comma-separated names to the list of key k (F_RNA_NAMES...; the keys repeat); returns
 * 1 or 0 after a complaint in msg. fl_plan_check_standardize settles the default (site under DP)
 * and the statistics phase, and checks lists against modalities and mode. fl_plan_free_names
 * frees the lists. */
int fl_plan_add_names(fl_plan *p, int k, const char *value, char *msg);
fl_status fl_plan_check_standardize(const char *name, fl_plan *p, const uint64_t *seen,
                                    fl_err *err);
void fl_plan_free_names(fl_plan *p);

#endif
