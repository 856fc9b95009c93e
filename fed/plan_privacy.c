/* plan_privacy.c - the study plan's [privacy] section checked against the rest of the plan
 * (DP-SGD, DP-FedAvg and its adaptive clipping, secure aggregation and DP inside it, noised
 * evaluation), and the DP quantities a plan implies. fed/plan.c reads the keys. */
#include <math.h>

#include "fed/dp_clip.h"
#include "fed/plan_keys.h"
#include "fed/plan_secagg.h"

/* [privacy]: without a mechanism only clip_norm (the sites clip their update deltas); DP-SGD
 * needs C, sigma and q; DP-FedAvg needs C, sigma and the sites expected per round (n, and k
 * dropouts below it). Either sends no example counts (so no weighting by them) and trains the
 * ResNet with GroupNorm (DP-SGD: BatchNorm mixes the patients of a batch, a patient's gradient
 * would depend on the others'; DP-FedAvg: running statistics are no noise-tolerant parameters). */

fl_status fl_plan_check_privacy(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err) {
    static const int needed[] = {P_CLIP_NORM, P_NOISE, P_SAMPLE_RATE, P_DELTA};
    static const char *const mech[] = {"none", "dp-sgd", "dp-fedavg"};
    fl_plan_privacy *pv = &p->privacy;
    int fedavg = pv->mechanism == FL_DP_FEDAVG;
    for (int k = P_DP_CLIENTS; k <= P_DP_DROPOUTS; k++)
        if (!fedavg && SEEN(seen, k))
            return fl_fail(err, FL_EFORMAT,
                           "%s: [privacy] %s is only for mechanism = dp-fedavg (it has %s)", name,
                           fl_plan_privacy_names[k - P_MECHANISM], mech[pv->mechanism]);
    if (pv->mechanism == FL_DP_NONE) {
        /* without DP, clip_norm bounds each site's update delta (client-side clipping; secure
         * aggregation's fixed-point range needs it) */
        for (int i = 1; i < 4; i++)
            if (SEEN(seen, needed[i]))
                return fl_fail(err, FL_EFORMAT,
                               "%s: [privacy] %s is set but there is no mechanism (add "
                               "mechanism = dp-sgd, or remove it)",
                               name, fl_plan_privacy_names[needed[i] - P_MECHANISM]);
        return FL_OK;
    }
    for (int i = 0; i < (fedavg ? 2 : 3); i++)
        if (!SEEN(seen, needed[i]))
            return fl_fail(err, FL_EFORMAT, "%s: [privacy] mechanism = %s needs %s", name,
                           mech[pv->mechanism], fl_plan_privacy_names[needed[i] - P_MECHANISM]);
    if (fedavg && SEEN(seen, P_SAMPLE_RATE))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] sample_rate is DP-SGD's (patients per step); dp-fedavg "
                       "samples no patients",
                       name);
    if (fedavg && !SEEN(seen, P_DP_CLIENTS))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] mechanism = dp-fedavg needs dp_clients (the sites expected "
                       "per round: each adds noise sigma C / sqrt(dp_clients - dp_dropouts))",
                       name);
    if (fedavg && pv->dp_dropouts >= pv->dp_clients)
        return fl_fail(err, FL_EFORMAT, "%s: [privacy] dp_dropouts %d must be below dp_clients %d",
                       name, pv->dp_dropouts, pv->dp_clients);
    const fl_phase trained[2] = {FL_PHASE_IMAGE, FL_PHASE_FUSION};
    for (int i = 0; i < 2; i++) {
        fl_plan_training *t = i == 0 ? &p->image : &p->fusion;
        int base = i == 0 ? I_TRAINING : F_TRAINING;
        if ((p->phases & PHASE_BIT(trained[i])) && SEEN(seen, base + T_WEIGHTED) && t->weighted)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [%s] weighted = true needs the sites' example counts, which "
                           "%s does not send (they would tell each cohort's size)",
                           name, fl_phase_name(trained[i]), fedavg ? "DP-FedAvg" : "DP-SGD");
        t->weighted = 0;
    }
    /* 32 groups, or the largest divisor of the first stage's width below that (every later
     * width is a multiple of it) */
    int width = (int)lroundf(64.0f * p->net.width), g = 32;
    while (g > 1 && width % g != 0) g--;
    p->net.groupnorm = g;
    return FL_OK;
}

/* [privacy] secagg: the masked sum is of clipped fixed-point updates with uniform weights, so
 * the update's L2 bound is required (clip_norm; under DP-SGD, whose clip_norm bounds a patient's
 * gradient, update_clip), weighted must be false and FedBN off in the trained phases (the
 * BatchNorm statistics are part of the summed vector). fed/plan_secagg.h derives the encoding. */
fl_status fl_plan_check_secagg(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err) {
    fl_plan_privacy *pv = &p->privacy;
    int sgd = pv->mechanism == FL_DP_SGD;
    if (!pv->secagg) {
        static const int only_secagg[] = {P_SECAGG_THRESHOLD, P_SECAGG_CIPHER, P_UPDATE_CLIP};
        for (int i = 0; i < 3; i++)
            if (SEEN(seen, only_secagg[i]))
                return fl_fail(err, FL_EFORMAT,
                               "%s: [privacy] %s is set but secagg is not (add secagg = true, or "
                               "remove it)",
                               name, fl_plan_privacy_names[only_secagg[i] - P_MECHANISM]);
        return FL_OK;
    }
    if (sgd && !SEEN(seen, P_UPDATE_CLIP))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] secagg = true with mechanism = dp-sgd needs update_clip "
                       "(the L2 bound each site clips its update to for the fixed-point "
                       "encoding; clip_norm bounds one patient's gradient)",
                       name);
    if (!sgd && SEEN(seen, P_UPDATE_CLIP))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] update_clip is for secagg with mechanism = dp-sgd (here "
                       "clip_norm bounds the update)",
                       name);
    if (!SEEN(seen, P_CLIP_NORM))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] secagg = true needs clip_norm (each site clips its update "
                       "to it; it sizes the fixed-point encoding)",
                       name);
    if (pv->secagg_threshold == 1)
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] secagg_threshold = 1 would let the server unmask one "
                       "site's update (use 0 for the default, or at least 2)",
                       name);
    const fl_phase trained[2] = {FL_PHASE_IMAGE, FL_PHASE_FUSION};
    for (int i = 0; i < 2; i++) {
        fl_plan_training *t = i == 0 ? &p->image : &p->fusion;
        int base = i == 0 ? I_TRAINING : F_TRAINING;
        if (!(p->phases & PHASE_BIT(trained[i]))) continue;
        if (SEEN(seen, base + T_WEIGHTED) && t->weighted)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [%s] weighted = true is not possible with secagg = true (the "
                           "server sees only the sum, with uniform weights)",
                           name, fl_phase_name(trained[i]));
        if (t->fedbn)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [%s] fedbn = true is not possible with secagg = true (every "
                           "site's update must have the same length)",
                           name, fl_phase_name(trained[i]));
        t->weighted = 0;
    }
    if (pv->mechanism == FL_DP_FEDAVG) { /* the encoding must hold the noise */
        double scale;
        uint64_t num, den;
        fl_err e = {{0}};
        if (fl_plan_sa_scale(pv, (uint32_t)pv->dp_clients, &scale, &e) != FL_OK ||
            fl_plan_sa_noise(pv, scale, &num, &den, &e) != FL_OK)
            return fl_fail(err, FL_EFORMAT, "%s: [privacy] %s (for dp_clients = %d sites)", name,
                           e.msg, pv->dp_clients);
    }
    return FL_OK;
}

/* [privacy] adaptive_clip and its keys: only with dp-fedavg, the others only with
 * adaptive_clip = true; defaults gamma 0.5, eta 0.2, sigma_b = dp_clients / 20 (Andrew et al.'s
 * suggestion); sigma_b must exceed noise_multiplier / 2 for the updates' noise multiplier to
 * exist (fed/dp_clip.h); not with secagg (each site's bit would travel outside the masked sum). */
fl_status fl_plan_check_adaptive(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err) {
    static const char *const mech[] = {"none", "dp-sgd", "dp-fedavg"};
    fl_plan_privacy *pv = &p->privacy;
    for (int k = P_ADAPTIVE_CLIP; k <= P_CLIP_BIT_NOISE; k++) {
        const char *key = fl_plan_privacy_names[k - P_MECHANISM];
        if (SEEN(seen, k) && pv->mechanism != FL_DP_FEDAVG)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [privacy] %s is only for mechanism = dp-fedavg (it has %s)", name,
                           key, mech[pv->mechanism]);
        if (SEEN(seen, k) && k != P_ADAPTIVE_CLIP && !pv->adaptive_clip)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [privacy] %s is set but adaptive_clip is not (add "
                           "adaptive_clip = true, or remove it)",
                           name, key);
    }
    if (!pv->adaptive_clip) return FL_OK;
    if (pv->secagg)
        return fl_fail(err, FL_EFORMAT,
                       "%s: [privacy] adaptive_clip = true is not possible with secagg = true yet "
                       "(each site's clipping bit would travel outside the masked sum)",
                       name);
    if (!SEEN(seen, P_TARGET_QUANTILE)) pv->target_quantile = 0.5;
    if (!SEEN(seen, P_CLIP_LR)) pv->clip_lr = 0.2;
    int default_noise = !SEEN(seen, P_CLIP_BIT_NOISE);
    if (default_noise) pv->clip_bit_noise = pv->dp_clients / 20.0;
    if (!isnan(fl_dp_update_multiplier(pv->noise_multiplier, pv->clip_bit_noise))) return FL_OK;
    return fl_fail(err, FL_EFORMAT,
                   "%s: [privacy] adaptive_clip needs clip_bit_noise above noise_multiplier / 2 "
                   "(Andrew et al. 2021, Theorem 1: the updates then take the noise multiplier "
                   "(z^-2 - (2 clip_bit_noise)^-2)^-1/2); it has clip_bit_noise %g%s and "
                   "noise_multiplier %g: raise clip_bit_noise or lower noise_multiplier",
                   name, pv->clip_bit_noise, default_noise ? " (the default, dp_clients / 20)" : "",
                   pv->noise_multiplier);
}

/* [privacy] eval_noise_multiplier and eval_loss_clip (docs/privacy.md, "Noised evaluation"):
 * only with a DP mechanism, where they default to FL_PLAN_EVAL_NOISE and FL_PLAN_EVAL_LOSS_CLIP;
 * with noised reports the histogram has at most FL_PLAN_EVAL_MAX_BINS bins (default
 * FL_PLAN_EVAL_BINS): the noise of every bin adds up over the bins a threshold sweeps. */
fl_status fl_plan_check_eval_noise(const char *name, fl_plan *p, const uint64_t *seen,
                                   fl_err *err) {
    fl_plan_privacy *pv = &p->privacy;
    if (pv->mechanism == FL_DP_NONE) {
        for (int k = P_EVAL_NOISE; k <= P_EVAL_LOSS_CLIP; k++)
            if (SEEN(seen, k))
                return fl_fail(err, FL_EFORMAT,
                               "%s: [privacy] %s is only for a DP mechanism (dp-sgd or "
                               "dp-fedavg); without one the evaluation reports are exact",
                               name, fl_plan_privacy_names[k - P_MECHANISM]);
        return FL_OK;
    }
    if (!SEEN(seen, P_EVAL_NOISE)) pv->eval_noise_multiplier = FL_PLAN_EVAL_NOISE;
    if (!SEEN(seen, P_EVAL_LOSS_CLIP)) pv->eval_loss_clip = FL_PLAN_EVAL_LOSS_CLIP;
    if (!(pv->eval_noise_multiplier > 0)) {
        if (SEEN(seen, P_EVAL_LOSS_CLIP))
            return fl_fail(err, FL_EFORMAT,
                           "%s: [privacy] eval_loss_clip is set but eval_noise_multiplier = 0 "
                           "sends the evaluation reports un-noised (remove one of them)",
                           name);
        return FL_OK;
    }
    if (!SEEN(seen, K_BINS)) p->bins = FL_PLAN_EVAL_BINS;
    if (p->bins > FL_PLAN_EVAL_MAX_BINS)
        return fl_fail(err, FL_EFORMAT,
                       "%s: [study] bins = %d is too many for noised evaluation reports "
                       "([privacy] eval_noise_multiplier %g adds noise of std %g to every bin): "
                       "use at most %d (default %d), or eval_noise_multiplier = 0 to send the "
                       "reports un-noised",
                       name, p->bins, pv->eval_noise_multiplier,
                       pv->eval_noise_multiplier * sqrt((double)p->n_classes + 3),
                       FL_PLAN_EVAL_MAX_BINS, FL_PLAN_EVAL_BINS);
    return FL_OK;
}

/* ---- what a plan's DP implies ---- */

double fl_plan_dp_fedavg_std(const fl_plan_privacy *pv) {
    return fl_plan_dp_fedavg_std_at(pv, pv->clip_norm);
}

double fl_plan_dp_fedavg_std_at(const fl_plan_privacy *pv, double C) {
    if (pv->mechanism != FL_DP_FEDAVG || pv->dp_clients <= pv->dp_dropouts) return 0;
    return fl_plan_dp_fedavg_multiplier(pv) * C / sqrt((double)(pv->dp_clients - pv->dp_dropouts));
}

double fl_plan_dp_fedavg_multiplier(const fl_plan_privacy *pv) {
    if (pv->mechanism != FL_DP_FEDAVG) return 0;
    if (!pv->adaptive_clip) return pv->noise_multiplier;
    return fl_dp_update_multiplier(pv->noise_multiplier, pv->clip_bit_noise);
}

double fl_plan_dp_fedavg_bit_std(const fl_plan_privacy *pv) {
    if (pv->mechanism != FL_DP_FEDAVG || !pv->adaptive_clip || pv->dp_clients <= pv->dp_dropouts)
        return 0;
    return pv->clip_bit_noise / sqrt((double)(pv->dp_clients - pv->dp_dropouts));
}

int fl_plan_eval_noised(const fl_plan *p) {
    return p->privacy.mechanism != FL_DP_NONE && p->privacy.eval_noise_multiplier > 0;
}

double fl_plan_eval_count_std(const fl_plan *p) {
    if (!fl_plan_eval_noised(p)) return 0;
    return p->privacy.eval_noise_multiplier * sqrt((double)p->n_classes + 3);
}

double fl_plan_eval_loss_std(const fl_plan *p) {
    return fl_plan_eval_count_std(p) * (fl_plan_eval_noised(p) ? p->privacy.eval_loss_clip : 0);
}
