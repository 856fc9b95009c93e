/* task.c - the hospital client's task loop (client/task.h): the plan check, the site, the
 * NextTask long poll, one function per kind of task and the outbox log. The network calls are
 * client.c's and transfer.c's, the local work site.c's, the privacy bookkeeping (the budget, a
 * DP round that would exceed epsilon_max refused, DP-FedAvg's noise) task_privacy.c's; this file
 * only sequences them and decides what a failure means (go on, join again, or stop). */
#include "task.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/task_impl.h"

/* PutUpdate attempts while the server answers UNAVAILABLE (busy, or unreachable for a while),
 * before the loop joins again. */
#define UPLOAD_ATTEMPTS 6

fl_task_options fl_task_options_default(void) {
    return (fl_task_options){.retry = fl_client_retry_default(), .threads = -1, .wait_ms = 10000};
}

/* What a failed call means for the loop. */
static int network_code(grpc_status_code code) {
    return code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED;
}

static float *work_vector(loop *L, size_t n, fl_err *err) {
    if (n == 0) n = 1; /* a plan without omics still has a (empty) statistics vector */
    if (n > L->cap) {
        free(L->buf);
        L->cap = 0;
        if (!(L->buf = malloc(n * sizeof(float)))) {
            fl_fail(err, FL_ENOMEM, "out of memory for %zu floats", n);
            return NULL;
        }
        L->cap = n;
    }
    return L->buf;
}

/* "44.7 MB", "12.3 kB", "512 B" */
static const char *human_bytes(double b, char out[32]) {
    if (b >= 1e6)
        snprintf(out, 32, "%.1f MB", b / 1e6);
    else if (b >= 1e3)
        snprintf(out, 32, "%.1f kB", b / 1e3);
    else
        snprintf(out, 32, "%.0f B", b);
    return out;
}

/* ---- the plan, the site, the outbox ---- */

/* The plan of a JoinReply, if the hash matches and the officer approved it. */
static fl_status check_plan(loop *L, const Fedlung__V1__JoinReply *jr, fl_err *err) {
    uint8_t sha[FL_SHA256_LEN];
    char hex[FL_SHA256_HEX];
    if (jr->plan_hash.len != FL_SHA256_LEN)
        return fl_fail(err, FL_EINVAL, "the server's JoinReply carries a plan but no plan_hash");
    fl_hex_encode(jr->plan_hash.data, FL_SHA256_LEN, hex);
    if (fl_sha256(jr->plan.data, jr->plan.len, sha) != FL_OK)
        return fl_fail(err, FL_EBACKEND, "SHA-256 failed");
    if (memcmp(sha, jr->plan_hash.data, FL_SHA256_LEN) != 0)
        return fl_fail(err, FL_EINVAL,
                       "refused plan %s: the plan the server sent does not hash to it", hex);
    int approved = 0;
    for (int i = 0; i < L->cfg->n_approve; i++)
        approved |= memcmp(L->cfg->approve[i], sha, FL_SHA256_LEN) == 0;
    if (!approved)
        return fl_fail(err, FL_EINVAL,
                       "refused plan %s: not approved by this hospital (client.conf approve)", hex);
    memcpy(L->plan_hex, hex, sizeof hex);
    return FL_OK;
}

/* The outbox's signing key: state_dir/outbox.key, made on first use. */
static fl_status outbox_key(loop *L, fl_err *err) {
    char path[FL_CONF_MAX_PATH + 16];
    snprintf(path, sizeof path, "%s/outbox.key", L->cfg->state_dir);
    fl_status st = fl_sign_key_load_private(path, &L->key, err);
    if (st != FL_ENOTFOUND) return st;
    if ((st = fl_sign_key_generate(&L->key, err)) != FL_OK) return st;
    if ((st = fl_sign_key_save_private(L->key, path, err)) != FL_OK) return st;
    snprintf(path, sizeof path, "%s/outbox.pub", L->cfg->state_dir);
    if ((st = fl_sign_key_save_public(L->key, path, err)) != FL_OK) return st;
    fl_client_log("made the outbox signing key %s/outbox.key (public half: outbox.pub)",
                  L->cfg->state_dir);
    return FL_OK;
}

/* After the first Join with a plan: parse it, open the site and the outbox. */
static fl_status start_study(loop *L, const Fedlung__V1__JoinReply *jr, fl_err *err) {
    fl_status st = check_plan(L, jr, err);
    if (st != FL_OK) return st;
    if ((st = fl_plan_parse((const char *)jr->plan.data, jr->plan.len, "the server's plan",
                            &L->plan, err)) != FL_OK)
        return st;
    L->have_plan = 1;
    /* each site shuffles differently under the same plan */
    uint64_t seed = L->plan.seed ^ 0xcbf29ce484222325ull;
    for (const char *p = jr->client_id; *p; p++) seed = (seed ^ (uint8_t)*p) * 0x100000001b3ull;
    int threads = L->o->threads >= 0 ? L->o->threads : L->cfg->threads;
    if ((st = fl_site_open(&L->site, L->cfg->cohort, &L->plan, threads, seed, err)) != FL_OK)
        return st;
    fl_site_set_device(L->site, L->cfg->device, L->cfg->precision);
    fl_site_summarize(L->site, &L->summary);
    if ((st = fl_task_privacy_start(L, err)) != FL_OK) return st;
    if ((st = outbox_key(L, err)) != FL_OK) return st;
    char path[FL_CONF_MAX_PATH + 16];
    snprintf(path, sizeof path, "%s/outbox.log", L->cfg->state_dir);
    if ((st = fl_audit_open(path, L->key, &L->outbox, err)) != FL_OK) return st;
    fl_client_log("plan %.16s.. approved: study %s, %d classes; cohort %s open", L->plan_hex,
                  L->plan.id, L->plan.n_classes, L->cfg->cohort);
    return FL_OK;
}

/* Join (with back-off), and on the first one with a plan, the study's start. A rejoin must
 * find the same plan. */
static fl_status join(loop *L, int *no_plan, grpc_status_code *code, fl_err *err) {
    Fedlung__V1__JoinReply *jr = NULL;
    fl_status st = fl_client_join(L->c, &L->o->retry, &jr, NULL, code, err);
    if (st != FL_OK) return st;
    *code = GRPC_STATUS_OK;
    snprintf(L->client_id, sizeof L->client_id, "%s", jr->client_id);
    if (jr->round < L->last_round) L->last_round = jr->round; /* the server resumed earlier */
    if (!L->have_plan && jr->plan.len == 0 && jr->plan_hash.len == 0) {
        *no_plan = 1;
    } else if (!L->have_plan) {
        st = start_study(L, jr, err);
        /* the site's own summary is the one to declare, and under DP the budget: join again
         * if ours was off or the server has not seen the budget yet */
        int changed = st == FL_OK && fl_client_set_summary(L->c, &L->summary);
        if (st == FL_OK && (changed || L->ledger)) {
            protobuf_c_message_free_unpacked(&jr->base, NULL);
            jr = NULL;
            fl_client_log("joining again with the site's data summary%s",
                          L->ledger ? " and privacy budget" : "");
            st = fl_client_join(L->c, &L->o->retry, &jr, NULL, code, err);
        }
    }
    if (st == FL_OK && L->have_plan &&
        (jr->plan_hash.len != FL_SHA256_LEN ||
         memcmp(jr->plan_hash.data, L->plan.sha256, FL_SHA256_LEN) != 0))
        st = fl_fail(err, FL_EINVAL,
                     "the server now runs another plan than %.16s..; restart "
                     "this client to review it",
                     L->plan_hex);
    if (jr) protobuf_c_message_free_unpacked(&jr->base, NULL);
    return st;
}

/* Signs the outbox records of the round before, once a task of another round comes (or at
 * the end). */
static fl_status checkpoint(loop *L, int64_t next_round, fl_err *err) {
    if (!L->outbox || L->unsigned_round < 0 || L->unsigned_round == next_round) return FL_OK;
    fl_status st = fl_audit_checkpoint(L->outbox, L->unsigned_round, err);
    if (st == FL_OK) L->unsigned_round = -1;
    return st;
}

/* One outbox record for a message that left (examples < 0: no count was sent). */
static fl_status record(loop *L, const char *kind, const Fedlung__V1__Task *t, size_t bytes,
                        const uint8_t sha[FL_SHA256_LEN], double examples, const dp_spend *dp,
                        fl_err *err) {
    char hex[FL_SHA256_HEX], data[1024], count[48] = "", dps[512];
    fl_hex_encode(sha, FL_SHA256_LEN, hex);
    if (examples >= 0) snprintf(count, sizeof count, ",\"examples\":%.17g", examples);
    fl_task_dp_json(dp, dps, sizeof dps);
    snprintf(data, sizeof data,
             "{\"phase\":\"%s\",\"model_version\":%" PRIu64 ",\"bytes\":%zu,\"sha256\":\"%s\"%s%s}",
             fl_phase_name((fl_phase)t->phase), t->model_version, bytes, hex, count, dps);
    fl_status st = fl_audit_append(L->outbox, kind, (int64_t)t->round, L->client_id, data, err);
    if (st == FL_OK) L->unsigned_round = (int64_t)t->round;
    return st;
}

/* ---- the tasks ---- */

/* The largest count in a statistics block (count[F], sum[F], sumsq[F]): the patients behind
 * it. */
static double block_patients(const float *v, size_t F) {
    double n = 0;
    for (size_t i = 0; i < F; i++) n = v[i] > n ? v[i] : n;
    return n;
}

/* PutUpdate of vec (n_params + n_buffers floats) for task t, in the task's encoding (FIXED32
 * rewrites vec in place), and its outbox record. */
static fl_status send_update(loop *L, const Fedlung__V1__Task *t, const char *kind, float *vec,
                             uint64_t n_params, uint64_t n_buffers, double examples,
                             const dp_spend *dp, char sent[96], grpc_status_code *code,
                             fl_err *err) {
    Fedlung__V1__UpdateHeader h = FEDLUNG__V1__UPDATE_HEADER__INIT;
    h.study_id = (char *)L->cfg->study;
    h.round = t->round;
    h.model_version = t->model_version;
    h.encoding = FEDLUNG__V1__ENCODING__ENCODING_FLOAT32;
    h.n_params = n_params;
    h.n_buffers = n_buffers;
    h.count_kind = examples < 0 ? FEDLUNG__V1__COUNT_KIND__COUNT_KIND_OMITTED
                                : FEDLUNG__V1__COUNT_KIND__COUNT_KIND_EXACT;
    h.example_count = examples < 0 ? 0 : examples;
    if (dp) { /* no count under DP (it would tell the cohort's size); the DP declared */
        h.count_kind = FEDLUNG__V1__COUNT_KIND__COUNT_KIND_OMITTED;
        h.example_count = 0;
        h.mechanism = dp->fedavg ? FEDLUNG__V1__DP_MECHANISM__DP_MECHANISM_DP_FEDAVG
                                 : FEDLUNG__V1__DP_MECHANISM__DP_MECHANISM_DP_SGD;
        h.clip_norm = dp->r.clip;
        h.noise_multiplier = dp->r.sigma;
        if (dp->adaptive) h.clip_bit = dp->bit; /* noised; the norm stays here */
    }
    size_t n = (size_t)(n_params + n_buffers);
    fl_status st;
    if (t->secagg && t->update && t->update->encoding == FEDLUNG__V1__ENCODING__ENCODING_FIXED32) {
        /* masked: no example count (uniform weights; it would tell the cohort's size) */
        h.encoding = t->update->encoding;
        h.fixed_scale = L->sa.scale;
        h.count_kind = FEDLUNG__V1__COUNT_KIND__COUNT_KIND_OMITTED;
        h.example_count = 0;
        h.clip_norm = L->plan.privacy.clip_norm;
        examples = -1;
        if ((st = fl_sa_site_mask(&L->sa, vec, n, err)) != FL_OK) return st;
    } else if (t->update && t->update->encoding == FEDLUNG__V1__ENCODING__ENCODING_FIXED32) {
        h.encoding = t->update->encoding;
        h.fixed_scale = t->update->fixed_scale;
        for (size_t i = 0; i < n; i++) { /* round(x * scale) mod 2^32, two's complement */
            uint32_t u = (uint32_t)(int64_t)llround((double)vec[i] * h.fixed_scale);
            memcpy(&vec[i], &u, sizeof u);
        }
    }
    if (L->o->delay_upload_s > 0) {
        fl_client_log("round %" PRIu64 ": waiting %.1f s before the upload (--delay-upload)",
                      t->round, L->o->delay_upload_s);
        fl_client_sleep(L->o->delay_upload_s);
    }
    size_t bytes = n * sizeof(float);
    uint8_t sha[FL_SHA256_LEN];
    char audit[FL_SHA256_HEX], hex[FL_SHA256_HEX], hb[32];
    /* a minute, plus 1 MB/s; a busy or briefly unreachable server gets the same bytes again */
    fl_client_backoff b;
    fl_client_backoff_init(&b, &L->o->retry);
    for (int attempt = 1;; attempt++) {
        st = fl_transfer_put_update(L->tr, &h, bytes, vec, sha, 60.0 + (double)bytes / 1e6, audit,
                                    code, err);
        if (st == FL_OK || *code != GRPC_STATUS_UNAVAILABLE || attempt == UPLOAD_ATTEMPTS) break;
        double s = fl_client_backoff_next(&b);
        fl_client_log("upload attempt %d: %s; retrying in %.1f s", attempt, err->msg, s);
        fl_client_sleep(s);
    }
    if (st != FL_OK) return st;
    fl_hex_encode(sha, FL_SHA256_LEN, hex);
    snprintf(sent, 96, "sent %s sha256 %.8s..", human_bytes((double)bytes, hb), hex);
    return record(L, kind, t, bytes, sha, dp || examples < 0 ? -1 : examples, dp, err);
}

/* Says which modalities site standardization left out here (too few training patients). */
static void log_left_out(const loop *L) {
    unsigned out = fl_site_left_out(L->site);
    for (int m = FL_MODALITY_IMAGE; m <= FL_MODALITY_CLINICAL; m++)
        if (out & FL_MODALITY_BIT(m))
            fl_client_log("site standardization: fewer than 2 training patients have %s here: "
                          "left out (masked for every patient)",
                          fl_modality_name((fl_modality)m));
}

/* Under site standardization: the site's own, computed once (with the embeddings' in the
 * features phase when the model takes the image). A server's global one is refused. */
static fl_status standardize_here(loop *L, const Fedlung__V1__Task *t, fl_err *err) {
    if (t->n_standardization)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": the task carries a global standardization, which the "
                       "approved plan does not use (standardize = site)",
                       t->round);
    unsigned omics = L->plan.modalities & ~FL_MODALITY_BIT(FL_MODALITY_IMAGE);
    if ((L->std_set & omics) == omics) return FL_OK;
    fl_status st = fl_site_standardize_here(L->site, NULL, 0, err);
    if (st != FL_OK) return st;
    L->std_set |= omics;
    log_left_out(L);
    return FL_OK;
}

/* Applies the task's standardizations that differ from what the site has. */
static fl_status apply_standardization(loop *L, const Fedlung__V1__Task *t, fl_err *err) {
    if (L->plan.standardize == FL_STD_SITE) return standardize_here(L, t, err);
    for (size_t i = 0; i < t->n_standardization; i++) {
        const Fedlung__V1__FeatureStats *fs = t->standardization[i];
        int m = fs->modality;
        if (m < FL_MODALITY_IMAGE || m > FL_MODALITY_CLINICAL) continue;
        fl_sha256_ctx h = {0};
        uint8_t sha[FL_SHA256_LEN];
        fl_status st = fl_sha256_init(&h);
        if (st == FL_OK) st = fl_sha256_update(&h, fs->index, fs->n_index * sizeof *fs->index);
        if (st == FL_OK) st = fl_sha256_update(&h, fs->mean, fs->n_mean * sizeof *fs->mean);
        if (st == FL_OK) st = fl_sha256_update(&h, fs->std, fs->n_std * sizeof *fs->std);
        if (st == FL_OK) st = fl_sha256_final(&h, sha);
        fl_sha256_destroy(&h);
        if (st != FL_OK) return fl_fail(err, st, "SHA-256 failed");
        if ((L->std_set & FL_MODALITY_BIT(m)) && !memcmp(L->std_sha[m - 1], sha, sizeof sha))
            continue;
        /* validation made n_index == n_mean == n_std; the image keeps all of its features */
        fl_stats_result r = {.F = m == FL_MODALITY_IMAGE ? (int)fs->n_index
                                                         : (int)L->summary.features[m - 1],
                             .n = (int)fs->n_index,
                             .index = fs->index,
                             .mean = fs->mean,
                             .std = fs->std};
        if ((st = fl_site_set_standardization(L->site, (fl_modality)m, &r, err)) != FL_OK)
            return st;
        L->std_set |= FL_MODALITY_BIT(m);
        memcpy(L->std_sha[m - 1], sha, sizeof sha);
    }
    return FL_OK;
}

/* The task's global model, checked, from the cache or the server. */
static fl_status get_model(loop *L, const Fedlung__V1__Task *t, fl_phase ph,
                           const fl_transfer_model **m, grpc_status_code *code, fl_err *err) {
    if (t->model_sha256.len != FL_SHA256_LEN)
        return fl_fail(err, FL_EINVAL, "the %s task of round %" PRIu64 " names no model",
                       fl_phase_name(ph), t->round);
    fl_status st =
        fl_transfer_get_model(L->tr, L->cfg->study, t->round, t->model_version,
                              t->model_sha256.data, fl_site_model_len(L->site, ph), m, code, err);
    if (st == FL_OK) L->model_phase = ph;
    return st;
}

static fl_status task_statistics(loop *L, const Fedlung__V1__Task *t, grpc_status_code *code,
                                 fl_err *err) {
    if (L->plan.standardize == FL_STD_SITE)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": a statistics task, which the approved plan does not "
                       "run (standardize = site): nothing sent",
                       t->round);
    size_t n = fl_site_statistics_len(L->site);
    float *vec = work_vector(L, n, err);
    if (!vec) return FL_ENOMEM;
    fl_status st = fl_site_statistics(L->site, vec, err);
    if (st != FL_OK) return st;
    /* the first block's counts: the training patients with the first modality */
    double patients = 0;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL && n; m++)
        if (L->plan.modalities & FL_MODALITY_BIT(m) && L->summary.features[m - 1]) {
            patients = block_patients(vec, L->summary.features[m - 1]);
            break;
        }
    char sent[96];
    if ((st = send_update(L, t, "statistics", vec, n, 0, patients, NULL, sent, code, err)) != FL_OK)
        return st;
    fl_client_log("round %" PRIu64 " statistics: %zu sums over %.0f training patients, %s",
                  t->round, n, patients, sent);
    return FL_OK;
}

static fl_status task_features(loop *L, const Fedlung__V1__Task *t, grpc_status_code *code,
                               fl_err *err) {
    const fl_transfer_model *m;
    fl_status st = get_model(L, t, FL_PHASE_IMAGE, &m, code, err);
    if (st != FL_OK) return st;
    size_t n = (size_t)(m->n_params + m->n_buffers);
    /* room for FL_STATS_LEN(2048 * width) */
    float *vec =
        work_vector(L, FL_STATS_LEN(32 * (size_t)lroundf(64 * L->plan.net.width) + 64), err);
    if (!vec) return FL_ENOMEM;
    if ((st = fl_site_features(L->site, m->w, n, vec, &L->E, err)) != FL_OK) return st;
    double patients = block_patients(vec, (size_t)L->E);
    char sent[96];
    size_t len = FL_STATS_LEN(L->E);
    if (L->plan.standardize == FL_STD_SITE) { /* the sums stay here; an empty update says done */
        if ((st = fl_site_standardize_here(L->site, vec, L->E, err)) != FL_OK) return st;
        L->std_set = L->plan.modalities;
        log_left_out(L);
        if ((st = send_update(L, t, "statistics", vec, 0, 0, -1, NULL, sent, code, err)) != FL_OK)
            return st;
        fl_client_log("round %" PRIu64 " features: embedded patients with model %" PRIu64
                      " (%d features, %.0f training patients) and standardized here (site "
                      "standardization), %s",
                      t->round, t->model_version, L->E, patients, sent);
        return FL_OK;
    }
    if ((st = send_update(L, t, "statistics", vec, len, 0, patients, NULL, sent, code, err)) !=
        FL_OK)
        return st;
    fl_client_log("round %" PRIu64 " features: embedded patients with model %" PRIu64
                  " (%d features, %.0f training patients), %s",
                  t->round, t->model_version, L->E, patients, sent);
    return FL_OK;
}

/* The plan's training settings for ph with the task's hyper-parameters over them. */
static fl_plan_training task_training(const loop *L, const Fedlung__V1__Task *t, fl_phase ph) {
    fl_plan_training h = *fl_plan_training_of(&L->plan, ph);
    const Fedlung__V1__HyperParameters *hp = t->hyper;
    if (hp) {
        h.lr = (float)hp->lr;
        h.epochs = (int)hp->epochs;
        h.local_steps = (int)hp->local_steps;
        if (hp->batch_size) h.batch = (int)hp->batch_size;
        h.fedprox_mu = (float)hp->fedprox_mu;
        if (hp->optimizer) h.optimizer = (fl_local_optimizer)hp->optimizer;
        h.momentum = (float)hp->momentum;
        h.weight_decay = (float)hp->weight_decay;
    }
    if (t->update) h.fedbn = !t->update->send_buffers;
    return h;
}

static fl_status task_train(loop *L, const Fedlung__V1__Task *t, fl_phase ph,
                            grpc_status_code *code, fl_err *err) {
    fl_plan_training h = task_training(L, t, ph);
    dp_spend dps = {0}, *dp = NULL;
    fl_status st = FL_OK;
    if (L->ledger) { /* what the round would spend, before anything else */
        int refused;
        dp = &dps;
        if ((st = fl_task_dp_price(L, t, ph, &h, dp, &refused, err)) != FL_OK || refused) return st;
    }
    const fl_transfer_model *m;
    if (L->plan.privacy.secagg && !t->secagg) /* never a plain update under an approved secagg */
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": a TRAIN task without secure aggregation, which the "
                       "approved plan requires",
                       t->round);
    if (t->secagg && (st = fl_sa_site_receive(&L->sa, t, err)) != FL_OK) {
        *code = GRPC_STATUS_FAILED_PRECONDITION; /* out of this round, not of the study */
        return st;
    }
    if ((st = apply_standardization(L, t, err)) != FL_OK ||
        (st = get_model(L, t, ph, &m, code, err)) != FL_OK)
        return st;
    size_t n = (size_t)(m->n_params + m->n_buffers);
    float *delta = work_vector(L, n, err);
    if (!delta) return FL_ENOMEM;
    double examples = 0, loss = 0;
    if ((st = fl_site_train(L->site, ph, &h, m->w, n, delta, &examples, &loss, err)) != FL_OK)
        return st;
    size_t n_sent = (size_t)m->n_params + (h.fedbn ? 0 : (size_t)m->n_buffers);
    if ((st = fl_task_privatize_update(L, t, ph, dp, delta, n_sent, err)) != FL_OK) return st;
    char sent[96];
    if ((st = send_update(L, t, t->secagg ? "masked_update" : "update", delta, m->n_params,
                          h.fedbn ? 0 : m->n_buffers, examples, dp, sent, code, err)) != FL_OK)
        return st;
    if (dp) {
        fl_task_dp_report(L, t, ph, dp, loss, sent);
        return FL_OK;
    }
    int k = h.local_steps ? h.local_steps : h.epochs;
    fl_client_log("round %" PRIu64 " %s: trained %d %s%s on %.0f %s, loss %.4g, %s", t->round,
                  fl_phase_name(ph), k, h.local_steps ? "step" : "epoch", k == 1 ? "" : "s",
                  examples, ph == FL_PHASE_IMAGE ? "tiles" : "patients", loss, sent);
    return FL_OK;
}

/* Noises the exact report rep (hist, patients, per_class, loss_sum) into its noised form for
 * dp (fl_dp_eval_noise with the CSPRNG), into nh (K * 2 * bins) and npc (K), and empties the
 * exact fields: nothing exact leaves. */
static fl_status noise_report(loop *L, const dp_spend *dp, Fedlung__V1__EvalReport *rep, double *nh,
                              double *npc, fl_err *err) {
    fl_dp_source src = fl_dp_csprng_source(L->csprng);
    double loss;
    fl_status st =
        fl_dp_eval_noise(&src, dp->count_std, dp->loss_std, rep->histogram, rep->n_histogram,
                         rep->patients, rep->patients_per_class, rep->n_patients_per_class,
                         rep->loss_sum, nh, &rep->noised_patients, npc, &loss, err);
    if (st != FL_OK) return st;
    rep->n_noised_histogram = rep->n_histogram;
    rep->noised_histogram = nh;
    rep->n_noised_patients_per_class = rep->n_patients_per_class;
    rep->noised_patients_per_class = npc;
    rep->noise_multiplier = dp->r.sigma;
    rep->loss_sum = loss;
    rep->n_histogram = rep->n_patients_per_class = 0;
    rep->histogram = rep->patients_per_class = NULL;
    rep->patients = 0;
    return FL_OK;
}

static fl_status task_eval(loop *L, const Fedlung__V1__Task *t, fl_phase ph, grpc_status_code *code,
                           fl_err *err) {
    dp_spend dps = {0}, *dp = NULL;
    fl_status st = FL_OK;
    if (L->ledger) { /* what the report would spend, before anything else */
        int refused;
        dp = &dps;
        if ((st = fl_task_eval_price(L, t, ph, dp, &refused, err)) != FL_OK || refused) return st;
    }
    int noised = dp && dp->eval == DP_EVAL_NOISED;
    st = apply_standardization(L, t, err);
    const fl_transfer_model *m;
    if (st != FL_OK || (st = get_model(L, t, ph, &m, code, err)) != FL_OK) return st;
    size_t K = (size_t)L->plan.n_classes, bins = (size_t)L->plan.bins;
    uint64_t *hist = calloc(K * 2 * bins, sizeof *hist), per_class[FL_PLAN_MAX_CLASSES] = {0};
    double *nh = noised ? calloc(K * 2 * bins, sizeof *nh) : NULL, npc[FL_PLAN_MAX_CLASSES] = {0};
    if (!hist || (noised && !nh)) {
        free(hist);
        return fl_fail(err, FL_ENOMEM, "out of memory for the evaluation histograms");
    }
    Fedlung__V1__EvalReport rep = FEDLUNG__V1__EVAL_REPORT__INIT;
    rep.study_id = (char *)L->cfg->study;
    rep.round = t->round;
    rep.model_version = t->model_version;
    rep.n_classes = (uint32_t)K;
    rep.bins = (uint32_t)bins;
    rep.n_histogram = K * 2 * bins;
    rep.histogram = hist;
    rep.n_patients_per_class = K;
    rep.patients_per_class = per_class;
    st = fl_site_evaluate(L->site, ph, m->w, (size_t)(m->n_params + m->n_buffers), (int)bins,
                          noised ? dp->loss_clip : 0, hist, &rep.loss_sum, &rep.patients, per_class,
                          err);
    uint64_t patients = rep.patients;
    double loss = patients ? rep.loss_sum / (double)patients : 0.0;
    if (st == FL_OK && noised) st = noise_report(L, dp, &rep, nh, npc, err);
    if (noised) memset(hist, 0, K * 2 * bins * sizeof *hist); /* the exact counts are not kept */
    ProtobufCMessage *rc = NULL;
    size_t bytes = protobuf_c_message_get_packed_size(&rep.base);
    uint8_t *packed = st == FL_OK ? malloc(bytes ? bytes : 1) : NULL;
    uint8_t sha[FL_SHA256_LEN];
    if (st == FL_OK && !packed) st = fl_fail(err, FL_ENOMEM, "out of memory");
    if (st == FL_OK) {
        protobuf_c_message_pack(&rep.base, packed);
        if (fl_sha256(packed, bytes, sha) != FL_OK)
            st = fl_fail(err, FL_EBACKEND, "SHA-256 failed");
    }
    free(packed);
    /* spent once the noised report exists, before it can leave */
    if (st == FL_OK && dp) st = fl_task_eval_charge(L, t, ph, dp, err);
    if (st == FL_OK) st = fl_client_call(L->c, FL_RPC_PUT_EVAL, &rep.base, 60.0, code, &rc, err);
    if (st == FL_OK) st = record(L, "eval", t, bytes, sha, dp ? -1 : (double)patients, dp, err);
    if (st == FL_OK) {
        char hex[FL_SHA256_HEX], hb[32], how[192] = "";
        fl_hex_encode(sha, FL_SHA256_LEN, hex);
        if (noised)
            snprintf(how, sizeof how,
                     " (not sent: the report left noised, noise multiplier %g, std %g per count; "
                     "ε this evaluation %.3f, total %.3f of %g)",
                     dp->r.sigma, dp->count_std, dp->eps_round, dp->eps_total, L->cfg->epsilon_max);
        else if (dp)
            snprintf(how, sizeof how, " (sent un-noised: eval_noise_multiplier = 0)");
        fl_client_log("round %" PRIu64 " %s: evaluated model %" PRIu64 " on %" PRIu64
                      " test patients, loss %.4g%s, sent %s sha256 %.8s..",
                      t->round, fl_phase_name(ph), t->model_version, patients, loss, how,
                      human_bytes((double)bytes, hb), hex);
    }
    if (rc) protobuf_c_message_free_unpacked(rc, NULL);
    free(hist);
    free(nh);
    return st;
}

/* DONE. The final global model (fusion, else image) goes to state_dir/model.h5 when the study
 * is over: the model DONE names, if it names one; else the last one evaluated here if it is of
 * that phase, unless Status says the study is not done (a study that ends evaluates its last
 * round, and the server may be gone by the time we ask). */
static fl_status task_done(loop *L, const Fedlung__V1__Task *t, grpc_status_code *code,
                           fl_err *err) {
    fl_client_log("DONE: %s", t->reason[0] ? t->reason : "(no reason given)");
    fl_phase ph = (L->plan.phases & (1u << FL_PHASE_FUSION)) ? FL_PHASE_FUSION : FL_PHASE_IMAGE;
    const fl_transfer_model *m = NULL;
    if (t->phase == (Fedlung__V1__Phase)ph && t->model_sha256.len == FL_SHA256_LEN &&
        get_model(L, t, ph, &m, code, err) != FL_OK) {
        fl_client_log("the final model could not be fetched (%s)", err->msg);
        m = NULL;
    }
    if (!m && t->model_sha256.len == 0 && L->evaluated == ph) {
        Fedlung__V1__StatusRequest sq = FEDLUNG__V1__STATUS_REQUEST__INIT;
        sq.study_id = (char *)L->cfg->study;
        ProtobufCMessage *rep = NULL;
        int done = 1;
        if (fl_client_call(L->c, FL_RPC_STATUS, &sq.base, L->o->retry.call_timeout_s, code, &rep,
                           err) == FL_OK)
            done = ((Fedlung__V1__StatusReply *)rep)->done;
        if (rep) protobuf_c_message_free_unpacked(rep, NULL);
        if (done) m = fl_transfer_cached(L->tr);
    }
    *code = GRPC_STATUS_OK;
    if (!m) {
        fl_client_log("no final %s model at this site: nothing to keep", fl_phase_name(ph));
        return FL_OK;
    }
    char path[FL_CONF_MAX_PATH + 16];
    snprintf(path, sizeof path, "%s/model.h5", L->cfg->state_dir);
    fl_status st =
        fl_site_save_model(L->site, ph, m->w, (size_t)(m->n_params + m->n_buffers), path, err);
    if (st != FL_OK) return st;
    fl_client_log("wrote the final %s model (version %" PRIu64 ") to %s", fl_phase_name(ph),
                  m->version, path);
    return FL_OK;
}

/* A secure-aggregation step (client/task_secagg.h): the message made from the task, sent and
 * recorded in the outbox. A task whose parameters are not the approved plan's stops the client
 * (as a TRAIN task's privacy would); a failure of the protocol takes the site out of this round
 * only. */
static fl_status task_secagg(loop *L, const Fedlung__V1__Task *t, grpc_status_code *code,
                             fl_err *err) {
    Fedlung__V1__SecAggAdvert adv;
    Fedlung__V1__SecAggShares sh;
    Fedlung__V1__SecAggUnmaskReply un;
    const ProtobufCMessage *msg;
    fl_rpc_method method;
    const char *kind;
    fl_status st;
    if (t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_ADVERTISE) {
        /* L->signer is NULL only under a plan without secagg, which fl_sa_site_advertise refuses */
        st = fl_sa_site_advertise(&L->sa, &L->plan.privacy, L->cfg->study, L->client_id, L->signer,
                                  L->cfg->tls.ca, t, &adv, err);
        msg = &adv.base, method = FL_RPC_ADVERTISE_KEYS, kind = "secagg_advert";
        if (st != FL_OK) return st;
    } else {
        if (t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_SHARE) {
            st = fl_sa_site_share(&L->sa, L->cfg->study, t, &sh, err);
            msg = &sh.base, method = FL_RPC_SHARE_KEYS, kind = "secagg_shares";
        } else {
            st = fl_sa_site_unmask(&L->sa, L->cfg->study, t, &un, err);
            msg = &un.base, method = FL_RPC_UNMASK, kind = "secagg_unmask";
        }
        if (st != FL_OK) {
            fl_sa_site_reset(&L->sa);
            *code = GRPC_STATUS_FAILED_PRECONDITION;
            return st;
        }
    }
    size_t bytes = protobuf_c_message_get_packed_size(msg);
    uint8_t *packed = malloc(bytes ? bytes : 1), sha[FL_SHA256_LEN];
    if (!packed) return fl_fail(err, FL_ENOMEM, "out of memory");
    protobuf_c_message_pack(msg, packed);
    st = fl_sha256(packed, bytes, sha);
    free(packed);
    if (st != FL_OK) return fl_fail(err, st, "SHA-256 failed");
    ProtobufCMessage *rc = NULL;
    st = fl_client_call(L->c, method, msg, L->o->retry.call_timeout_s, code, &rc, err);
    if (rc) protobuf_c_message_free_unpacked(rc, NULL);
    if (method == FL_RPC_UNMASK) fl_sa_site_reset(&L->sa); /* this site's part is over */
    if (st != FL_OK) return st;
    char hex[FL_SHA256_HEX];
    fl_hex_encode(sha, FL_SHA256_LEN, hex);
    fl_client_log("round %" PRIu64 " %s: secure aggregation: sent %s (%zu bytes, sha256 %.8s..)",
                  t->round, fl_phase_name((fl_phase)t->phase), kind, bytes, hex);
    return record(L, kind, t, bytes, sha, -1, NULL, err);
}

/* One TRAIN or EVAL task. */
static fl_status do_task(loop *L, const Fedlung__V1__Task *t, grpc_status_code *code, fl_err *err) {
    *code = GRPC_STATUS_OK;
    if (t->plan_hash.len && (t->plan_hash.len != FL_SHA256_LEN ||
                             memcmp(t->plan_hash.data, L->plan.sha256, FL_SHA256_LEN) != 0))
        return fl_fail(err, FL_EINVAL, "a task of round %" PRIu64 " belongs to another plan",
                       t->round);
    if (t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_ADVERTISE ||
        t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_SHARE ||
        t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_UNMASK)
        return task_secagg(L, t, code, err);
    fl_phase ph = (fl_phase)t->phase;
    int train = t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN;
    fl_status st;
    if (train && (st = fl_task_check_privacy(L, t, ph, err)) != FL_OK) return st;
    if (train && ph == FL_PHASE_STATISTICS) return task_statistics(L, t, code, err);
    if (train && ph == FL_PHASE_FEATURES) return task_features(L, t, code, err);
    if (ph != FL_PHASE_IMAGE && ph != FL_PHASE_FUSION)
        return fl_fail(err, FL_EUNSUPPORTED, "round %" PRIu64 ": a %s task of phase %s", t->round,
                       train ? "TRAIN" : "EVAL", fl_phase_name(ph));
    return train ? task_train(L, t, ph, code, err) : task_eval(L, t, ph, code, err);
}

/* Whether the loop goes on after a failed task or call (after rejoining if need be). */
static fl_status recover(loop *L, fl_status st, grpc_status_code code, fl_err *err) {
    if (code == GRPC_STATUS_FAILED_PRECONDITION || code == GRPC_STATUS_DATA_LOSS) {
        fl_client_log("%s; giving up this task, asking for the next", err->msg);
        return FL_OK;
    }
    if (!network_code(code)) return st;
    fl_client_log("%s; joining again", err->msg);
    int no_plan = 0;
    return join(L, &no_plan, &code, err);
}

static fl_status run(loop *L, int *no_plan, grpc_status_code *code, fl_err *err) {
    fl_status st = join(L, no_plan, code, err);
    if (st != FL_OK || *no_plan) {
        if (*no_plan) fl_client_log("the server runs no study plan yet: nothing to do");
        return st;
    }
    int refused = 0; /* NextTask refusals in a row */
    for (;;) {
        Fedlung__V1__TaskRequest rq = FEDLUNG__V1__TASK_REQUEST__INIT;
        rq.study_id = (char *)L->cfg->study;
        rq.round = L->last_round;
        rq.wait_ms = L->o->wait_ms;
        rq.refused_round = L->refused_round;
        rq.refused_reason = L->refused_round ? L->refused_reason : "";
        ProtobufCMessage *rep = NULL;
        st = fl_client_call(L->c, FL_RPC_NEXT_TASK, &rq.base, L->o->wait_ms / 1000.0 + 20.0, code,
                            &rep, err);
        if (st != FL_OK) {
            /* a round we named that the server is not in: join again, which learns its round */
            int stale = *code == GRPC_STATUS_FAILED_PRECONDITION && ++refused <= 3;
            if (!stale && !network_code(*code)) return st;
            fl_client_log("%s; joining again", err->msg);
            if (stale) fl_client_sleep(1.0);
            if ((st = join(L, no_plan, code, err)) != FL_OK) return st;
            continue;
        }
        refused = 0;
        L->refused_round = 0; /* the server has it */
        const Fedlung__V1__Task *t = (const Fedlung__V1__Task *)rep;
        if (t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_WAIT) {
            fl_client_sleep(t->retry_after_ms / 1000.0);
        } else if (t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_DONE) {
            st = task_done(L, t, code, err);
            protobuf_c_message_free_unpacked(rep, NULL);
            return st;
        } else if ((st = checkpoint(L, (int64_t)t->round, err)) == FL_OK) {
            L->last_round = t->round;
            st = do_task(L, t, code, err);
            /* a refused evaluation (its budget) fetched no model */
            L->evaluated = st == FL_OK && t->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_EVAL &&
                                   L->refused_round != t->round
                               ? (fl_phase)t->phase
                               : FL_PHASE_NONE;
            if (st != FL_OK) st = recover(L, st, *code, err);
        }
        protobuf_c_message_free_unpacked(rep, NULL);
        if (st != FL_OK) return st;
    }
}

fl_status fl_task_run(fl_client *c, const fl_client_config *cfg, const fl_task_options *o,
                      int *no_plan, grpc_status_code *code, fl_err *err) {
    loop L = {.c = c, .cfg = cfg, .o = o, .unsigned_round = -1};
    *no_plan = 0;
    *code = GRPC_STATUS_OK;
    fl_status st = fl_transfer_new(c, &L.tr, err);
    if (st == FL_OK) {
        fl_transfer_corrupt_downloads(L.tr, o->corrupt_downloads);
        st = run(&L, no_plan, code, err);
    }
    fl_err err2 = {{0}};
    if (checkpoint(&L, -2, &err2) != FL_OK) {
        fl_client_log("outbox: %s", err2.msg);
        if (st == FL_OK) {
            *err = err2;
            st = FL_EIO;
        }
    }
    fl_sa_site_reset(&L.sa);
    fl_audit_close(L.outbox);
    fl_dp_ledger_free(L.ledger);
    if (L.csprng) fl_dp_csprng_destroy(L.csprng);
    free(L.csprng);
    fl_sign_key_free(L.key);
    fl_cert_signer_free(L.signer);
    fl_site_free(L.site);
    if (L.have_plan) fl_plan_destroy(&L.plan);
    fl_transfer_free(L.tr);
    free(L.buf);
    return st;
}
