/* study_impl.h - the study's state, shared by study.c (steps, rounds, phases, commits) and
 * study_calls.c (the handlers). Internal to server/. */
#ifndef FL_STUDY_IMPL_H
#define FL_STUDY_IMPL_H

#include "crypto/cert_sign.h"
#include "crypto/hash.h"
#include "crypto/secagg.h"
#include "eval/metrics.h"
#include "server/aggregate.h"
#include "server/state.h"
#include "server/study.h"

/* A participant's part in the current step. */
typedef enum {
    PART_NONE = 0, /* not in this step (joined after it began, or refused the plan) */
    PART_ELIGIBLE, /* in the step, no task sent yet */
    PART_WORKING,  /* task sent, result not in */
    PART_DONE,     /* result accepted */
    PART_DROPPED,  /* missed the deadline */
} part_state;

typedef struct {
    char id[FL_CONFIG_MAX_ID + 1];
    int joined; /* 1 once it joined with the plan approved */
    int64_t last_seen_ms;
    uint64_t last_round; /* the last round it contributed to */
    part_state state;
    uint32_t features[4]; /* by fl_modality - 1, from its data summary */
    uint8_t features_sha256[4][32];
    int has_features[4];
    int told_done; /* it was answered DONE */
    /* secure aggregation (study_secagg.c): its number in the round (0: not in it) and the
     * certificate (DER) its advert was signed with, the TLS identity it connected with, relayed
     * to the peers */
    uint32_t sa_index;
    size_t sa_cert_len;
    uint8_t sa_cert[FL_CERT_DER_MAX];
} participant;

/* A secure-aggregation round runs SA_ADVERTISE, SA_SHARE, TRAIN (the masked inputs), SA_UNMASK,
 * then EVAL as any round. */
typedef enum {
    STEP_JOIN,
    STEP_TRAIN,
    STEP_EVAL,
    STEP_END,
    STEP_SA_ADVERTISE,
    STEP_SA_SHARE,
    STEP_SA_UNMASK,
} study_step;

struct fl_study {
    const fl_server_config *cfg;
    const fl_plan *plan;
    fl_slog *log;
    participant *parts; /* cfg->n_allow slots, n_parts used */
    size_t n_parts;

    fl_study_state state;
    char reason[FL_ERR_LEN];
    uint64_t epoch;

    fl_phase phase;
    int64_t round;   /* the round in progress (committed + 1) */
    int phase_round; /* its number within the phase, from 1 */
    study_step step;
    int attempt; /* re-runs of this round so far */
    int64_t deadline_ms, join_since_ms;

    /* the phase's global model (NULL in the statistics phase) and what the phases decided */
    fl_snapshot *model;
    uint64_t version; /* the last model version issued */
    float *rnet;      /* the final image model, n_rnet floats, for the features phase */
    size_t n_rnet;
    int has_std[4];
    fl_stats_result std[4]; /* by fl_modality - 1 */
    int embed_dim;

    /* the round's aggregation */
    fl_aggregator agg;
    int agg_ready;
    size_t expect_params, expect_buffers; /* what an update must hold */
    struct {
        int active;
        char id[FL_CONFIG_MAX_ID + 1];
        uint64_t length, received;
        uint8_t sha256[32];
        double examples;
        double clip_norm, noise_multiplier; /* declared by the site (DP) */
        double clip_bit;                    /* its noised bit (adaptive clipping) */
        int mechanism;
        fl_sha256_ctx h;
        int has_h;
    } up;
    /* the round's secure aggregation (study_secagg.c) */
    struct {
        int on;                /* this round's updates are masked (plan secagg, trained phase) */
        fl_secagg_server *srv; /* the protocol's server: the only place masked words are summed */
        uint32_t n, t;         /* sites invited, threshold */
        size_t dim;            /* words of every masked input */
        double scale;          /* ENCODING_FIXED32's scale for n sites of clip norm C */
        int cipher;            /* fl_stream_cipher */
        const fl_secagg_advert *u1; /* the advert list (owned by srv) */
        size_t n_u1;
        fl_secagg_unmask_request req; /* survivors and dropped, once the masked step closed */
        int masked_upload;            /* the staged upload is a masked input (up.*) */
    } sa;
    /* DP-FedAvg: the clip norm C of the round's trained updates (the plan's, or under adaptive
     * clipping the one the rule reached: resumed from the state file), and the sum of the
     * noised bits of the updates accepted in the round (study_calls.c) */
    double clip;
    double clip_bits;
    /* the round's evaluation */
    fl_score_hist hist;
    int has_hist;
    /* with noised reports (fl_plan_eval_noised): the sum of the sites' noised histograms and of
     * their noised patient counts, in place of hist and eval_patients */
    fl_score_histd histd;
    double eval_patients_noised;
    double eval_loss;
    uint64_t eval_patients;
    int evaluated;
    int participants; /* updates aggregated in this round */

    fl_journal_row *rows; /* the journal so far */
    int n_rows;
};

participant *fl_study_find(fl_study *s, const char *id);
/* Records an event (server/slog.h); a failed audit write fails the study. */
void fl_study_event(fl_study *s, const char *kind, const char *actor, const char *data_json,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Re-evaluates the current step after an accepted result (may aggregate, commit, advance). */
void fl_study_advance(fl_study *s, int64_t now);
/* study.c's steps, for study_secagg.c. */
void fl_study_step_begin(fl_study *s, study_step step, int64_t now);
void fl_study_drop_stragglers(fl_study *s, const char *why);
/* The training step is over with the round's sum in s->agg: the server step, then EVAL or the
 * commit. */
void fl_study_finish_train(fl_study *s, int64_t now);
/* A round short of sites (got of needed `what`): run it again, or stop after the retries. */
void fl_study_retry_or_stop(fl_study *s, int64_t now, int got, int needed, const char *what);

/* ---- secure aggregation (study_secagg.c) ---- */

/* 1 when the current phase's training rounds run secure aggregation. */
int fl_study_sa_wanted(const fl_study *s);
/* Starts the round's secure aggregation: numbers the joined sites 1..n, makes the protocol's
 * server and begins the advertise step (or retries the round when it cannot run). */
void fl_study_sa_round_begin(fl_study *s, int64_t now);
/* Ends a secure-aggregation step when all its sites answered or its deadline passed. */
void fl_study_sa_advance(fl_study *s, int64_t now);
/* Drops the round's protocol state (wiping it) and the sites' numbers. */
void fl_study_sa_reset(fl_study *s);
/* Adds the secure-aggregation fields of p's task to t and packs it into *reply. */
grpc_status_code fl_study_sa_pack_task(fl_study *s, const participant *p, Fedlung__V1__Task *t,
                                       grpc_byte_buffer **reply, fl_rpc_status *st);
/* PutUpdate of a masked input: the header's checks, a chunk into the staging, the end (adds the
 * verified upload to the protocol's sum in one go). */
grpc_status_code fl_study_sa_update_begin(fl_study *s, const Fedlung__V1__UpdateHeader *h,
                                          fl_rpc_status *st);
void fl_study_sa_stage_chunk(fl_study *s, uint64_t offset, const uint8_t *data, size_t len);
fl_status fl_study_sa_update_commit(fl_study *s, const participant *p, fl_err *err);
void fl_study_sa_stage_clear(fl_study *s);

/* The modalities whose standardization the fusion phase needs (a FL_MODALITY_BIT set). */
unsigned fl_study_fusion_needs(const fl_study *s);

#endif
