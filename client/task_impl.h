/* task_impl.h - the task loop's state, shared by task.c (the loop: join, NextTask, downloads,
 * uploads and one function per kind of task) and task_privacy.c (the privacy bookkeeping: the
 * budget ledger, refusals, DP-FedAvg's clipping and noise, the DP numbers logged and recorded).
 * Internal to client/. */
#ifndef FL_TASK_IMPL_H
#define FL_TASK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "client/config.h"
#include "client/site.h"
#include "client/task.h"
#include "client/task_secagg.h"
#include "client/transfer.h"
#include "crypto/audit.h"
#include "crypto/cert_sign.h"
#include "crypto/hash.h"
#include "crypto/sign.h"
#include "fed/plan.h"
#include "proto/rpc.h"

/* The loop's state: one per fl_task_run, which frees what it holds. */
typedef struct {
    fl_client *c;
    const fl_client_config *cfg;
    const fl_task_options *o;
    fl_transfer *tr;
    fl_plan plan;
    int have_plan;
    char plan_hex[FL_SHA256_HEX];
    fl_site *site;
    fl_site_summary summary;
    fl_sign_key *key;       /* the outbox's */
    fl_cert_signer *signer; /* a plan with secure aggregation: the TLS key signs the adverts */
    fl_audit *outbox;
    char client_id[FL_RPC_MAX_ID + 1]; /* as the server saw us */
    uint64_t last_round;               /* the last round of a task */
    int64_t unsigned_round;            /* round of outbox records not yet checkpointed, or -1 */
    fl_phase model_phase;              /* the phase of the model in the transfer cache */
    fl_phase evaluated; /* the phase of the last task if it was an EVAL (its model is cached) */
    int E;              /* the embedding width, once the features phase ran */
    unsigned std_set;   /* modalities whose standardization was applied */
    uint8_t std_sha[4][FL_SHA256_LEN]; /* ... and the hash of what was applied */
    float *buf;                        /* a work vector of cap floats (deltas, statistics) */
    size_t cap;
    /* a plan with differential privacy */
    fl_dp_ledger *ledger;   /* what this site spent (state_dir/privacy.state) */
    fl_dp_csprng *csprng;   /* DP-SGD's noise and sampling; DP-FedAvg's noise */
    uint64_t refused_round; /* a refused TRAIN or EVAL round, for the next NextTask (0: none) */
    char refused_reason[256];
    fl_sa_site sa; /* the current secure-aggregation round (client/task_secagg.h) */
} loop;

/* A DP round's numbers, for the update header and the outbox. DP-FedAvg fills r.q = 1,
 * r.sigma = the plan's z, r.clip = the round's C and r.steps = 1: what this hospital's ledger
 * counts (it cannot verify the server's sampling of sites), and the server accounts the same z
 * over the rounds it ran. */
typedef struct {
    fl_site_dp_round r;
    double eps_round, eps_total, delta;
    int fedavg;       /* 1: DP-FedAvg (clipped, noised update), 0: DP-SGD */
    double noise_std; /* DP-FedAvg: the std added per coordinate, z_update C / sqrt(n - k) */
    /* DP-FedAvg with adaptive clipping: the updates' noise multiplier (fed/dp_clip.h), the
     * noised bit sent and the std of its noise */
    int adaptive;
    double z_update, bit, bit_std;
    /* an evaluation report (r: q 1, sigma z_e, clip 1, steps 1): DP_EVAL_NOISED, or
     * DP_EVAL_PLAIN when the plan sends it un-noised (eval_noise_multiplier = 0, nothing spent);
     * the noise std of its counts and of its loss_sum, and the loss clip */
    int eval;
    double count_std, loss_std, loss_clip;
} dp_spend;
enum { DP_EVAL_NOISED = 1, DP_EVAL_PLAIN = 2 };

/* ---- task_privacy.c ---- */

/* At the study's start, after the site opened: under a DP plan, refuses it (FL_EINVAL "refused
 * plan <hex>..: ...") when cfg sets no epsilon_max or a smaller delta than the plan's, else opens
 * L->ledger (state_dir/privacy.state), declares the budget spent so far to the client, makes
 * L->csprng (DP-SGD's source is given to the site) and logs the mechanism; under secure
 * aggregation, loads L->signer from [tls] key and cert (FL_EINVAL when [tls] lacks key, cert or
 * ca). FL_OK with nothing opened for a plan without either. */
fl_status fl_task_privacy_start(loop *L, fl_err *err);

/* A TRAIN task's privacy must be the approved plan's (ph's mechanism with its parameters, the
 * clip norm moving only as adaptive clipping can; none for a phase the plan does not train with
 * DP): FL_OK, else FL_EINVAL naming both. */
fl_status fl_task_check_privacy(loop *L, const Fedlung__V1__Task *t, fl_phase ph, fl_err *err);

/* Under DP (L->ledger open), before anything else of TRAIN task t of phase ph with training
 * settings h: fills *dp with what the round would spend (DP-SGD's round from fl_site_dp_plan,
 * DP-FedAvg's counted at q 1) and the epsilon before and after it. When the total would pass
 * epsilon_max, refuses the round (*refused = 1: logged, an outbox record "refused", and
 * L->refused_round for the next NextTask) and returns the outbox's status; else *refused = 0.
 * Failures of the site or the ledger are returned as they are. */
fl_status fl_task_dp_price(loop *L, const Fedlung__V1__Task *t, fl_phase ph,
                           const fl_plan_training *h, dp_spend *dp, int *refused, fl_err *err);

/* After training, before the upload: bounds delta[0..n_sent) in place as the plan says (dp NULL
 * without DP): DP-FedAvg without secure aggregation clips and noises it (and under adaptive
 * clipping sets dp->bit, the noised clipping bit); secure aggregation clips it to its fixed-point
 * range; a plan's clip_norm without DP clips it. Each logs one line. Then, under DP, charges the
 * round to the ledger and declares the new total to the client: from here on a crash
 * over-counts. FL_EINVAL when the fixed-point scale is too coarse, FL_EBACKEND when the noise
 * source failed (delta must then not be sent), the ledger's failures. */
fl_status fl_task_privatize_update(loop *L, const Fedlung__V1__Task *t, fl_phase ph, dp_spend *dp,
                                   float *delta, size_t n_sent, fl_err *err);

/* The log line of a DP TRAIN task (dp not NULL) whose update was sent: its loss, the epsilon of
 * the round and in all, and sent (send_update's "sent ... sha256 .."). */
void fl_task_dp_report(const loop *L, const Fedlung__V1__Task *t, fl_phase ph, const dp_spend *dp,
                       double loss, const char *sent);

/* Under DP (L->ledger open), before anything else of EVAL task t of phase ph: fills *dp with the
 * report's mechanism (noised: q 1, sigma eval_noise_multiplier, 1 step, priced as a round is;
 * DP_EVAL_PLAIN with nothing priced when the plan sends reports un-noised). Refuses the
 * evaluation past epsilon_max as fl_task_dp_price refuses a round (*refused = 1). */
fl_status fl_task_eval_price(loop *L, const Fedlung__V1__Task *t, fl_phase ph, dp_spend *dp,
                             int *refused, fl_err *err);
/* After the report is noised, before it leaves: charges it to the ledger (DP_EVAL_NOISED) and
 * declares the new total to the client. */
fl_status fl_task_eval_charge(loop *L, const Fedlung__V1__Task *t, fl_phase ph, const dp_spend *dp,
                              fl_err *err);

/* The DP numbers of an outbox record into out (cap bytes): ",\"clip_norm\":..." (or "" when dp
 * is NULL). */
void fl_task_dp_json(const dp_spend *dp, char *out, size_t cap);

#endif
