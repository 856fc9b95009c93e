/* task_privacy.c - a hospital's privacy bookkeeping in the task loop (client/task_impl.h): what
 * an approved plan's DP and secure aggregation need at the study's start, each TRAIN task's
 * privacy checked against the plan, the budget ledger that prices a round and refuses one past
 * epsilon_max, the update bounded (DP-FedAvg's clipping, noise and adaptive-clipping bit) and
 * charged before it leaves, and the DP numbers of the log lines and outbox records. Not the
 * mechanisms (client/task_dp.c, client/site_dp.c, fed/dp_clip.c), nor the loop and the uploads
 * (client/task.c). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/task_dp.h"
#include "client/task_impl.h"
#include "fed/dp_clip.h"
#include "fed/plan_secagg.h"

/* ---- the study's start ---- */

/* A plan with DP: this hospital's budget must be set and its delta at least the plan's; the
 * ledger of what was spent before, and the CSPRNG for the site. */
static fl_status dp_start(loop *L, fl_err *err) {
    const fl_plan_privacy *pv = &L->plan.privacy;
    if (pv->mechanism == FL_DP_NONE) {
        if (L->cfg->epsilon_max > 0)
            fl_client_log("privacy: the plan trains without differential privacy (epsilon_max "
                          "is not used)");
        return FL_OK;
    }
    int fedavg = pv->mechanism == FL_DP_FEDAVG;
    if (!(L->cfg->epsilon_max > 0))
        return fl_fail(err, FL_EINVAL,
                       "refused plan %.16s..: it trains with %s and %s sets no [privacy] "
                       "epsilon_max",
                       L->plan_hex, fedavg ? "DP-FedAvg" : "DP-SGD", L->cfg->path);
    if (pv->delta > L->cfg->delta)
        return fl_fail(err, FL_EINVAL,
                       "refused plan %.16s..: its delta %g is larger than this hospital's %g "
                       "([privacy] delta)",
                       L->plan_hex, pv->delta, L->cfg->delta);
    char path[FL_CONF_MAX_PATH + 16];
    snprintf(path, sizeof path, "%s/privacy.state", L->cfg->state_dir);
    double eps;
    fl_status st = fl_dp_ledger_open(path, &L->ledger, err);
    if (st == FL_OK) st = fl_dp_ledger_epsilon(L->ledger, NULL, pv->delta, &eps, err);
    if (st != FL_OK) return st;
    fl_client_set_budget(L->c, L->cfg->epsilon_max, eps, pv->delta);
    if (!(L->csprng = malloc(sizeof *L->csprng)))
        return fl_fail(err, FL_ENOMEM, "out of memory for the CSPRNG source");
    fl_dp_csprng_init(L->csprng);
    if (fl_plan_eval_noised(&L->plan))
        fl_client_log("privacy: evaluation reports noised: noise multiplier %g, std %g on each "
                      "count and %g on the loss sum (each patient's loss clipped to %g); %d "
                      "spent so far, each counted as one Gaussian mechanism at q 1",
                      pv->eval_noise_multiplier, fl_plan_eval_count_std(&L->plan),
                      fl_plan_eval_loss_std(&L->plan), pv->eval_loss_clip,
                      fl_dp_ledger_evaluations(L->ledger));
    else
        fl_client_log("privacy: warning: the plan sends evaluation reports un-noised "
                      "(eval_noise_multiplier = 0): the test patients' score histograms, counts "
                      "and loss leave this hospital exact");
    if (fedavg) { /* client-level: each round counted here as the Gaussian mechanism at q 1 */
        char adaptive[160] = "";
        if (pv->adaptive_clip)
            snprintf(adaptive, sizeof adaptive,
                     "; adaptive clipping towards the %g quantile (step %g), update noise "
                     "multiplier %g, bit noise std %g",
                     pv->target_quantile, pv->clip_lr, fl_plan_dp_fedavg_multiplier(pv),
                     fl_plan_dp_fedavg_bit_std(pv));
        fl_client_log("privacy: DP-FedAvg (update clipped to C %g, noise std %g per coordinate: "
                      "sigma %g over %d sites, %d may drop out%s); spent so far: epsilon %.4g "
                      "over %d rounds, epsilon_max %g at delta %g (each round counted at q 1, "
                      "sigma %g)",
                      pv->clip_norm, fl_plan_dp_fedavg_std(pv), pv->noise_multiplier,
                      pv->dp_clients, pv->dp_dropouts, adaptive, eps,
                      fl_dp_ledger_rounds(L->ledger), L->cfg->epsilon_max, pv->delta,
                      pv->noise_multiplier);
        return FL_OK;
    }
    fl_dp_source src = fl_dp_csprng_source(L->csprng);
    fl_site_set_dp_source(L->site, &src);
    fl_client_log("privacy: DP-SGD (C %g, sigma %g, q %g); spent so far: epsilon %.4g over %d "
                  "rounds, epsilon_max %g at delta %g",
                  pv->clip_norm, pv->noise_multiplier, pv->sample_rate, eps,
                  fl_dp_ledger_rounds(L->ledger), L->cfg->epsilon_max, pv->delta);
    return FL_OK;
}

/* A plan with secure aggregation: the TLS client key and certificate that sign this site's key
 * adverts, and the CA that its peers' certificates must chain to, all from [tls] (which
 * insecure = true makes optional, but not for secure aggregation). */
static fl_status secagg_identity(loop *L, fl_err *err) {
    const fl_conf_tls *tls = &L->cfg->tls;
    if (!tls->key[0] || !tls->cert[0] || !tls->ca[0])
        return fl_fail(err, FL_EINVAL,
                       "refused plan %.16s..: its secure aggregation signs this site's keys with "
                       "its TLS client key, and %s does not set all of [tls] key, cert and ca",
                       L->plan_hex, L->cfg->path);
    fl_status st = fl_cert_signer_load(tls->key, tls->cert, &L->signer, err);
    if (st == FL_OK)
        fl_client_log("secure aggregation: key adverts signed as %s (%s), peers checked against %s",
                      fl_cert_signer_cn(L->signer), tls->cert, tls->ca);
    return st;
}

fl_status fl_task_privacy_start(loop *L, fl_err *err) {
    fl_status st = dp_start(L, err);
    if (st == FL_OK && L->plan.privacy.secagg) st = secagg_identity(L, err);
    return st;
}

/* ---- the outbox's DP numbers ---- */

/* x as a JSON number, or null when it is not finite (sigma = 0 spends an infinite epsilon). */
static const char *json_num(double x, char out[32]) {
    if (isfinite(x))
        snprintf(out, 32, "%.17g", x);
    else
        snprintf(out, 32, "null");
    return out;
}

/* The DP numbers of an outbox record: ",\"clip_norm\":..." (or "" without DP). */
void fl_task_dp_json(const dp_spend *dp, char *out, size_t cap) {
    char a[32], b[32];
    out[0] = 0;
    if (dp && dp->eval == DP_EVAL_PLAIN)
        snprintf(out, cap, ",\"noised\":false,\"noise_multiplier\":0");
    else if (dp && dp->eval)
        snprintf(out, cap,
                 ",\"noised\":true,\"noise_multiplier\":%.17g,\"noise_std\":%.17g,"
                 "\"loss_clip\":%.17g,\"loss_noise_std\":%.17g,\"sample_rate\":1,\"steps\":1,"
                 "\"delta\":%.17g,\"epsilon_round\":%s,\"epsilon_total\":%s",
                 dp->r.sigma, dp->count_std, dp->loss_clip, dp->loss_std, dp->delta,
                 json_num(dp->eps_round, a), json_num(dp->eps_total, b));
    else if (dp && dp->fedavg) {
        int n = snprintf(out, cap,
                         ",\"mechanism\":\"dp-fedavg\",\"clip_norm\":%.17g,"
                         "\"noise_multiplier\":%.17g,\"noise_std\":%.17g,\"sample_rate\":1,"
                         "\"delta\":%.17g,\"epsilon_round\":%s,\"epsilon_total\":%s",
                         dp->r.clip, dp->r.sigma, dp->noise_std, dp->delta,
                         json_num(dp->eps_round, a), json_num(dp->eps_total, b));
        if (dp->adaptive && n > 0 && (size_t)n < cap)
            n += snprintf(out + n, cap - (size_t)n,
                          ",\"adaptive_clip\":true,\"noise_multiplier_update\":%.17g,"
                          "\"clip_bit_std\":%.17g",
                          dp->z_update, dp->bit_std);
        if (dp->adaptive && !isnan(dp->bit) && n > 0 && (size_t)n < cap) /* it was sent */
            snprintf(out + n, cap - (size_t)n, ",\"clip_bit\":%.17g", dp->bit);
    } else if (dp)
        snprintf(out, cap,
                 ",\"clip_norm\":%.17g,\"noise_multiplier\":%.17g,\"sample_rate\":%.17g,"
                 "\"steps\":%" PRId64 ",\"delta\":%.17g,\"epsilon_round\":%s,"
                 "\"epsilon_total\":%s",
                 dp->r.clip, dp->r.sigma, dp->r.q, dp->r.steps, dp->delta,
                 json_num(dp->eps_round, a), json_num(dp->eps_total, b));
}

/* ---- a TRAIN task ---- */

/* Under adaptive clipping, whether the task's clip norm is one the rule can have reached by
 * round t from the plan's clip_norm: the bits' mean lies in [0, 1], so each committed round moves
 * log C by at most clip_lr max(gamma, 1 - gamma); a phase starts again from clip_norm, and the
 * rounds before it only loosen the bound. Any C > 0 keeps the noise at z C per sensitivity C;
 * this only keeps a server from choosing C freely. */
static int clip_allowed(const fl_plan_privacy *pv, const Fedlung__V1__Task *t, double C) {
    if (!pv->adaptive_clip) return C == pv->clip_norm;
    return fl_dp_clip_reachable(C, pv->clip_norm, pv->target_quantile, pv->clip_lr,
                                t->round > 0 ? (long)t->round - 1 : 0);
}

/* A TRAIN task's privacy must be the approved plan's: its mechanism with its very parameters in
 * the trained phases of a DP plan (the clip norm moving only as adaptive clipping can), none
 * otherwise. The server can neither weaken nor drop it. */
fl_status fl_task_check_privacy(loop *L, const Fedlung__V1__Task *t, fl_phase ph, fl_err *err) {
    const fl_plan_privacy *pv = &L->plan.privacy;
    const Fedlung__V1__PrivacyParams *tp = t->privacy;
    int want = fl_plan_training_of(&L->plan, ph) ? (int)pv->mechanism : FL_DP_NONE;
    int got = tp ? (int)tp->mechanism : FL_DP_NONE;
    if (got == want &&
        (want == FL_DP_NONE ||
         (clip_allowed(pv, t, tp->clip_norm) && tp->noise_multiplier == pv->noise_multiplier &&
          tp->sample_rate == pv->sample_rate && tp->delta == pv->delta)))
        return FL_OK;
    if (got == want && pv->adaptive_clip && tp->noise_multiplier == pv->noise_multiplier &&
        tp->sample_rate == pv->sample_rate && tp->delta == pv->delta)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": the task's clip norm %g is not one adaptive clipping "
                       "can reach from the approved plan's %g (target quantile %g, clip_lr %g)",
                       t->round, tp->clip_norm, pv->clip_norm, pv->target_quantile, pv->clip_lr);
    return fl_fail(err, FL_EINVAL,
                   "round %" PRIu64 ": the task's privacy (mechanism %d, C %g, sigma %g, q %g, "
                   "delta %g) is not the approved plan's (mechanism %d, C %g, sigma %g, q %g, "
                   "delta %g)",
                   t->round, got, tp ? tp->clip_norm : 0, tp ? tp->noise_multiplier : 0,
                   tp ? tp->sample_rate : 0, tp ? tp->delta : 0, want, want ? pv->clip_norm : 0,
                   want ? pv->noise_multiplier : 0, want ? pv->sample_rate : 0,
                   want ? pv->delta : 0);
}

/* A DP-FedAvg round as this hospital counts it: the Gaussian mechanism at q 1 with the plan's
 * noise multiplier z on an update clipped to the task's C (fl_task_check_privacy accepted it),
 * and the noise it adds: std z_update C / sqrt(n - k) per coordinate, and its bit's share of
 * sigma_b under adaptive clipping. */
static void fedavg_round(const loop *L, const Fedlung__V1__Task *t, dp_spend *dp) {
    const fl_plan_privacy *pv = &L->plan.privacy;
    dp->fedavg = 1;
    dp->r.q = 1;
    dp->r.sigma = pv->noise_multiplier;
    dp->r.clip = t->privacy->clip_norm;
    dp->r.steps = 1;
    dp->adaptive = pv->adaptive_clip;
    dp->z_update = fl_plan_dp_fedavg_multiplier(pv);
    dp->noise_std = fl_plan_dp_fedavg_std_at(pv, dp->r.clip);
    dp->bit_std = fl_plan_dp_fedavg_bit_std(pv);
    dp->bit = NAN; /* until one is sent */
}

/* Refuses round t: logged, recorded in the outbox, and told to the server with the next
 * NextTask. */
static fl_status refuse(loop *L, const Fedlung__V1__Task *t, fl_phase ph, const dp_spend *dp,
                        fl_err *err) {
    snprintf(L->refused_reason, sizeof L->refused_reason,
             "refused: %sround %" PRIu64 " would spend ε %.2f, total %.2f > epsilon_max %.2f",
             dp->eval ? "the evaluation of " : "", t->round, dp->eps_round, dp->eps_total,
             L->cfg->epsilon_max);
    L->refused_round = t->round;
    if (dp->eval)
        fl_client_log("round %" PRIu64 " %s: %s (delta %g, a noised evaluation report at "
                      "noise multiplier %g)",
                      t->round, fl_phase_name(ph), L->refused_reason, dp->delta, dp->r.sigma);
    else if (dp->fedavg)
        fl_client_log("round %" PRIu64 " %s: %s (delta %g, a DP-FedAvg round counted at q 1, "
                      "sigma %g)",
                      t->round, fl_phase_name(ph), L->refused_reason, dp->delta, dp->r.sigma);
    else
        fl_client_log("round %" PRIu64 " %s: %s (delta %g, %" PRId64 " steps at q %g, sigma %g)",
                      t->round, fl_phase_name(ph), L->refused_reason, dp->delta, dp->r.steps,
                      dp->r.q, dp->r.sigma);
    char data[1024], dps[512];
    fl_task_dp_json(dp, dps, sizeof dps);
    /* the reason is our own sentence: no character to escape */
    snprintf(data, sizeof data,
             "{\"phase\":\"%s\",\"task\":\"%s\",\"reason\":\"%s\",\"epsilon_max\":%.17g%s}",
             fl_phase_name(ph), dp->eval ? "eval" : "train", L->refused_reason, L->cfg->epsilon_max,
             dps);
    fl_status st =
        fl_audit_append(L->outbox, "refused", (int64_t)t->round, L->client_id, data, err);
    if (st == FL_OK) L->unsigned_round = (int64_t)t->round;
    return st;
}

fl_status fl_task_dp_price(loop *L, const Fedlung__V1__Task *t, fl_phase ph,
                           const fl_plan_training *h, dp_spend *dp, int *refused, fl_err *err) {
    const fl_plan_privacy *pv = &L->plan.privacy;
    fl_status st = FL_OK;
    *refused = 0;
    memset(dp, 0, sizeof *dp);
    double before;
    dp->delta = pv->delta;
    if (pv->mechanism == FL_DP_FEDAVG)
        fedavg_round(L, t, dp);
    else
        st = fl_site_dp_plan(L->site, ph, h, &dp->r, err);
    if (st != FL_OK ||
        (st = fl_dp_ledger_epsilon(L->ledger, NULL, dp->delta, &before, err)) != FL_OK ||
        (st = fl_dp_ledger_epsilon(L->ledger, &dp->r, dp->delta, &dp->eps_total, err)) != FL_OK)
        return st;
    dp->eps_round = dp->eps_total - before;
    if (dp->eps_total <= L->cfg->epsilon_max) return FL_OK;
    *refused = 1;
    return refuse(L, t, ph, dp, err);
}

fl_status fl_task_eval_price(loop *L, const Fedlung__V1__Task *t, fl_phase ph, dp_spend *dp,
                             int *refused, fl_err *err) {
    const fl_plan *p = &L->plan;
    *refused = 0;
    memset(dp, 0, sizeof *dp);
    dp->delta = p->privacy.delta;
    if (!fl_plan_eval_noised(p)) {
        dp->eval = DP_EVAL_PLAIN;
        return FL_OK;
    }
    dp->eval = DP_EVAL_NOISED;
    dp->r = (fl_site_dp_round){
        .q = 1, .sigma = p->privacy.eval_noise_multiplier, .clip = 1, .steps = 1};
    dp->count_std = fl_plan_eval_count_std(p);
    dp->loss_std = fl_plan_eval_loss_std(p);
    dp->loss_clip = p->privacy.eval_loss_clip;
    double before;
    fl_status st;
    if ((st = fl_dp_ledger_epsilon(L->ledger, NULL, dp->delta, &before, err)) != FL_OK ||
        (st = fl_dp_ledger_epsilon(L->ledger, &dp->r, dp->delta, &dp->eps_total, err)) != FL_OK)
        return st;
    dp->eps_round = dp->eps_total - before;
    if (dp->eps_total <= L->cfg->epsilon_max) return FL_OK;
    *refused = 1;
    return refuse(L, t, ph, dp, err);
}

fl_status fl_task_eval_charge(loop *L, const Fedlung__V1__Task *t, fl_phase ph, const dp_spend *dp,
                              fl_err *err) {
    if (dp->eval != DP_EVAL_NOISED) return FL_OK;
    fl_status st = fl_dp_ledger_spend_eval(L->ledger, (int64_t)t->round, ph, dp->r.sigma, err);
    if (st == FL_OK) fl_client_set_budget(L->c, L->cfg->epsilon_max, dp->eps_total, dp->delta);
    return st;
}

fl_status fl_task_privatize_update(loop *L, const Fedlung__V1__Task *t, fl_phase ph, dp_spend *dp,
                                   float *delta, size_t n_sent, fl_err *err) {
    const fl_plan_privacy *pv = &L->plan.privacy;
    fl_status st;
    /* without DP-SGD a plan's clip_norm bounds the update itself (secure aggregation's
     * fixed-point range needs it): clip the delta that is sent */
    if (dp && dp->fedavg && !t->secagg) { /* clipped and noised: nothing un-noised leaves */
        fl_dp_source src = fl_dp_csprng_source(L->csprng);
        double norm;
        char bit[96] = "";
        if ((st = fl_dp_fedavg_privatize(delta, n_sent, dp->r.clip, dp->noise_std, &src, &norm,
                                         err)) != FL_OK)
            return st;
        if (dp->adaptive) { /* [norm <= C] leaves only noised */
            dp->bit = fl_dp_clip_bit(norm, dp->r.clip, dp->bit_std, &src);
            if (isnan(dp->bit))
                return fl_fail(err, FL_EBACKEND,
                               "the noise source failed: the DP-FedAvg update is not sent");
            snprintf(bit, sizeof bit, "; clipping bit %d sent as %.4g (noise std %g)",
                     norm <= dp->r.clip, dp->bit, dp->bit_std);
        }
        fl_client_log("round %" PRIu64
                      " %s: DP-FedAvg: update norm %.4g (not sent), clipped to %g, "
                      "noise std %g per coordinate%s",
                      t->round, fl_phase_name(ph), norm, dp->r.clip, dp->noise_std, bit);
    } else if (t->secagg || (!dp && pv->clip_norm > 0)) {
        /* the update's L2 bound: the fixed-point range under secure aggregation (under DP-SGD a
         * post-processing of its output), else the plan's clip on the update itself */
        double B = t->secagg ? fl_plan_sa_clip_for(pv, L->sa.scale, n_sent) : pv->clip_norm;
        if (!(B > 0))
            return fl_fail(err, FL_EINVAL,
                           "round %" PRIu64 ": the fixed-point scale %g is too coarse for %zu "
                           "coordinates under DP-FedAvg (rounding alone exceeds clip_norm %g)",
                           t->round, L->sa.scale, n_sent, pv->clip_norm);
        double norm = fl_sa_clip(delta, n_sent, B);
        if (dp && dp->fedavg)
            fl_client_log("round %" PRIu64 " %s: DP-FedAvg under secure aggregation: update norm "
                          "%.4g (not sent), clipped to %g; discrete Gaussian noise of std %g "
                          "joins the encoding",
                          t->round, fl_phase_name(ph), norm, B, dp->noise_std);
        else
            fl_client_log("round %" PRIu64 " %s: update norm %.4g, clipped to %g", t->round,
                          fl_phase_name(ph), norm, B);
    }
    /* spent once the update exists, before it can leave: a crash from here on over-counts */
    if (dp && (st = fl_dp_ledger_spend(L->ledger, (int64_t)t->round, ph, &dp->r, err)) != FL_OK)
        return st;
    if (dp) fl_client_set_budget(L->c, L->cfg->epsilon_max, dp->eps_total, dp->delta);
    return FL_OK;
}

void fl_task_dp_report(const loop *L, const Fedlung__V1__Task *t, fl_phase ph, const dp_spend *dp,
                       double loss, const char *sent) {
    if (dp->fedavg) {
        fl_client_log("round %" PRIu64 " %s: trained, loss %.4g, DP-FedAvg update (no example "
                      "count), ε this round %.3f, total %.3f of %g (delta %g), %s",
                      t->round, fl_phase_name(ph), loss, dp->eps_round, dp->eps_total,
                      L->cfg->epsilon_max, dp->delta, sent);
        return;
    }
    const fl_site_dp_round *r = fl_site_dp_last(L->site);
    fl_client_log("round %" PRIu64 " %s: DP-SGD %" PRId64 " steps on %d patients (q %g, %.1f "
                  "drawn per step, C %g, sigma %g, %.2f s), loss %.4g, ε this round %.3f, "
                  "total %.3f of %g (delta %g), %s",
                  t->round, fl_phase_name(ph), r->steps, r->n_patients, r->q,
                  r->sampled / (double)r->steps, r->clip, r->sigma, r->seconds, loss, dp->eps_round,
                  dp->eps_total, L->cfg->epsilon_max, dp->delta, sent);
}
