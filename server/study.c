/* study.c - the round state machine: phases, rounds, steps, deadlines, stragglers, retries,
 * aggregation, commits and resumption. The handlers are in study_calls.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dp_accountant.h"
#include "fed/dp_clip.h"
#include "server/gmodel.h"
#include "study_impl.h"

/* ---- snapshots ---- */

void fl_snapshot_ref(fl_snapshot *m) {
    atomic_fetch_add(&m->refs, 1);
}

void fl_snapshot_unref(fl_snapshot *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        free(m->data);
        free(m);
    }
}

void fl_snapshot_release(void *user) {
    fl_snapshot_unref(user);
}

/* A snapshot owning data (freed on failure too). */
static fl_snapshot *snapshot_new(uint64_t version, fl_phase ph, float *data, size_t n_params,
                                 size_t n_buffers) {
    fl_snapshot *m = calloc(1, sizeof *m);
    if (!m || fl_sha256(data, (n_params + n_buffers) * sizeof(float), m->sha256) != FL_OK) {
        free(m);
        free(data);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->version = version;
    m->phase = ph;
    m->n_params = n_params;
    m->n_buffers = n_buffers;
    m->data = data;
    return m;
}

/* ---- records ---- */

participant *fl_study_find(fl_study *s, const char *id) {
    for (size_t i = 0; i < s->n_parts; i++)
        if (strcmp(s->parts[i].id, id) == 0) return &s->parts[i];
    return NULL;
}

void fl_study_event(fl_study *s, const char *kind, const char *actor, const char *data_json,
                    const char *fmt, ...) {
    char text[FL_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (fl_slog_event(s->log, kind, s->round, actor, data_json, "%s", text) != FL_OK &&
        s->state == FL_STUDY_RUNNING) {
        s->state = FL_STUDY_FAILED;
        snprintf(s->reason, sizeof s->reason, "the audit log failed: %.400s", s->log->err.msg);
    }
    s->epoch++;
}

static void fail(fl_study *s, const fl_err *err) {
    if (s->state != FL_STUDY_RUNNING) return;
    s->state = FL_STUDY_FAILED;
    snprintf(s->reason, sizeof s->reason, "%s", err->msg);
    fl_study_event(s, "study_failed", "", NULL, "%s", err->msg);
}

static void stop(fl_study *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stop(fl_study *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof s->reason, fmt, ap);
    va_end(ap);
    char data[2 * FL_ERR_LEN], esc[FL_ERR_LEN];
    fl_slog_json_str(s->reason, esc, sizeof esc);
    snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
    fl_study_event(s, "study_stopped", "", data, "%s", s->reason);
    if (s->state == FL_STUDY_RUNNING) s->state = FL_STUDY_STOPPED;
    s->step = STEP_END;
}

unsigned fl_study_fusion_needs(const fl_study *s) {
    return s->plan->phases & (1u << FL_PHASE_FUSION) ? s->plan->modalities : 0;
}

/* ---- phases ---- */

static size_t joined_count(const fl_study *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_parts; i++) n += s->parts[i].joined;
    return n;
}

static int omics_in_plan(const fl_study *s, fl_modality m) {
    return (s->plan->modalities & FL_MODALITY_BIT(m)) != 0;
}

/* The feature count of modality m as the sites declared it (all agree: checked at Join). */
static int site_features(const fl_study *s, fl_modality m) {
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].joined && s->parts[i].has_features[m - 1])
            return (int)s->parts[i].features[m - 1];
    return 0;
}

/* The fusion model's inputs: what the standardizations kept, or under site standardization what
 * the plan names and the RNet's embedding width. */
static void in_dims(const fl_study *s, int in_dim[4]) {
    for (int k = 0; k < 4; k++) in_dim[k] = s->has_std[k] ? s->std[k].n : 0;
    if (s->plan->standardize != FL_STD_SITE) return;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++)
        in_dim[m - 1] = fl_plan_names_of(s->plan, (fl_modality)m)->n;
    fl_err ignored;
    if (fl_gmodel_embedding_dim(s->plan, &in_dim[FL_MODALITY_IMAGE - 1], &ignored) != FL_OK)
        in_dim[FL_MODALITY_IMAGE - 1] = 0; /* the fusion graph then says the image has none */
}

/* Sets up the aggregation of the current phase for updates of np + nb floats. */
static fl_status agg_setup(fl_study *s, size_t np, size_t nb, fl_err *err) {
    if (s->agg_ready) fl_agg_destroy(&s->agg);
    s->agg_ready = 0;
    const fl_plan_training *t = fl_plan_training_of(s->plan, s->phase);
    fl_agg_config c;
    int fedbn = t && t->fedbn;
    fl_agg_config_default(&c, np, fedbn ? 0 : nb);
    if (t) {
        c.strategy = (fl_agg_strategy)t->strategy;
        c.server_lr = t->server_lr;
        c.beta1 = t->beta1;
        c.beta2 = t->beta2;
        c.tau = t->tau;
    }
    s->expect_params = np;
    s->expect_buffers = fedbn ? 0 : nb;
    fl_status st = fl_agg_init(&s->agg, &c, err);
    s->agg_ready = st == FL_OK;
    return st;
}

/* Starts phase ph from its beginning: its model and aggregation. A resumed phase passes its
 * committed global vector (ownership taken) instead. */
static fl_status phase_start(fl_study *s, fl_phase ph, float *resume, fl_err *err) {
    s->phase = ph;
    fl_snapshot_unref(s->model);
    s->model = NULL;
    float *data = resume;
    size_t np = 0, nb = 0;
    int in_dim[4];
    in_dims(s, in_dim);
    fl_status st = FL_OK;
    switch (ph) {
    case FL_PHASE_STATISTICS: {
        size_t L = 0;
        for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++)
            if (omics_in_plan(s, (fl_modality)m)) L += FL_STATS_LEN(site_features(s, m));
        if (L == 0) return fl_fail(err, FL_EINVAL, "no site declared omics features");
        return agg_setup(s, L, 0, err);
    }
    case FL_PHASE_FEATURES:
        if ((st = fl_gmodel_embedding_dim(s->plan, &s->embed_dim, err)) != FL_OK) return st;
        if (!s->rnet && (st = fl_gmodel_init(s->plan, ph, in_dim, s->plan->image_model, &s->rnet,
                                             &np, &nb, err)) != FL_OK)
            return st;
        if (!s->rnet) return fl_fail(err, FL_EINVAL, "the features phase has no RNet");
        fl_graph *g;
        if ((st = fl_gmodel_graph(s->plan, ph, in_dim, &g, err)) != FL_OK) return st;
        np = g->n_trainable;
        nb = g->n_buffer;
        fl_graph_free(g);
        s->n_rnet = np + nb;
        if (!(data = malloc(s->n_rnet * sizeof(float))))
            return fl_fail(err, FL_ENOMEM, "out of memory for the RNet");
        memcpy(data, s->rnet, s->n_rnet * sizeof(float));
        if (!(s->model = snapshot_new(++s->version, ph, data, np, nb)))
            return fl_fail(err, FL_ENOMEM, "out of memory for a model snapshot");
        /* under site standardization each site keeps its sums: its update is an empty
         * acknowledgment that it embedded its patients */
        return agg_setup(s, s->plan->standardize == FL_STD_SITE ? 0 : FL_STATS_LEN(s->embed_dim), 0,
                         err);
    case FL_PHASE_IMAGE:
    case FL_PHASE_FUSION: {
        fl_graph *g;
        if ((st = fl_gmodel_graph(s->plan, ph, in_dim, &g, err)) != FL_OK) {
            free(resume);
            return st;
        }
        np = g->n_trainable;
        nb = g->n_buffer;
        fl_graph_free(g);
        if (!data &&
            (st = fl_gmodel_init(s->plan, ph, in_dim, NULL, &data, &np, &nb, err)) != FL_OK)
            return st;
        if (!(s->model = snapshot_new(resume ? s->version : ++s->version, ph, data, np, nb)))
            return fl_fail(err, FL_ENOMEM, "out of memory for a model snapshot");
        return agg_setup(s, np, nb, err);
    }
    default:
        return fl_fail(err, FL_EINVAL, "no phase to start");
    }
}

/* ---- steps ---- */

void fl_study_step_begin(fl_study *s, study_step step, int64_t now) {
    s->step = step;
    s->deadline_ms = now + (int64_t)s->cfg->round_timeout_s * 1000;
    for (size_t i = 0; i < s->n_parts; i++)
        s->parts[i].state = s->parts[i].joined ? PART_ELIGIBLE : PART_NONE;
    s->epoch++;
}

static void round_begin(fl_study *s, int64_t now) {
    fl_agg_begin_round(&s->agg);
    s->participants = 0;
    s->clip_bits = 0;
    s->evaluated = 0; /* a round without an evaluation step reports none */
    s->eval_loss = 0;
    s->eval_patients = 0;
    s->up.active = 0;
    fl_study_sa_reset(s);
    char data[128];
    snprintf(data, sizeof data, "{\"phase\":\"%s\",\"phase_round\":%d,\"attempt\":%d}",
             fl_phase_name(s->phase), s->phase_round, s->attempt + 1);
    fl_study_event(s, "round_started", "", data, "round %lld: %s %d%s, %zu hospitals",
                   (long long)s->round, fl_phase_name(s->phase), s->phase_round,
                   s->attempt ? " (retry)" : "", joined_count(s));
    if (fl_study_sa_wanted(s))
        fl_study_sa_round_begin(s, now);
    else
        fl_study_step_begin(s, STEP_TRAIN, now);
}

static int rounds_of(const fl_study *s, fl_phase ph) {
    const fl_plan_training *t = fl_plan_training_of(s->plan, ph);
    return t ? t->rounds : 1;
}

static int eval_due(const fl_study *s) {
    const fl_plan_training *t = fl_plan_training_of(s->plan, s->phase);
    if (!t) return 0;
    if (s->phase_round == t->rounds) return 1;
    return t->eval_every > 0 && s->phase_round % t->eval_every == 0;
}

/* Saves a finished phase's model where operators expect it. */
static fl_status phase_finish(fl_study *s, fl_err *err) {
    char path[4200];
    int in_dim[4];
    in_dims(s, in_dim);
    if (s->phase == FL_PHASE_IMAGE) {
        size_t n = s->model->n_params + s->model->n_buffers;
        float *copy = malloc(n * sizeof(float));
        if (!copy) return fl_fail(err, FL_ENOMEM, "out of memory for the RNet");
        memcpy(copy, s->model->data, n * sizeof(float));
        free(s->rnet);
        s->rnet = copy;
        s->n_rnet = n;
        snprintf(path, sizeof path, "%s/rnet.h5", s->cfg->state_dir);
    } else if (s->phase == FL_PHASE_FUSION) {
        snprintf(path, sizeof path, "%s/model.h5", s->cfg->state_dir);
    } else
        return FL_OK;
    fl_status st =
        fl_gmodel_save(s->plan, s->phase, in_dim, s->model->data,
                       s->model->n_params + s->model->n_buffers, (int)s->round, path, err);
    if (st == FL_OK)
        fl_study_event(s, "model_saved", "", NULL, "%s model of round %lld written to %s",
                       fl_phase_name(s->phase), (long long)s->round, path);
    return st;
}

/* DP-FedAvg: the "dp_round" record of a committed trained round, with the epsilon spent so far
 * (docs/privacy.md, "Client-level DP-FedAvg"). Recomputed from the journal's rows, so a resumed
 * server counts the rounds before its restart. Each committed trained round of m sites is one
 * Gaussian mechanism on the uniform sum (sensitivity C) with noise std sigma C sqrt(m / (n - k)),
 * i.e. noise multiplier sigma sqrt(m / (n - k)), at sampling rate q = m / allowed sites (1
 * without an allow list). Under adaptive clipping the sites' updates carry the larger
 * multiplier z_delta and their bits noise sigma_b, which together cost what sigma alone does
 * (fed/dp_clip.h): the accounting is the same, and the record adds the round's C, the mean of
 * its bits and the next C. Returns FL_OK, or the accountant's failure. */
static fl_status dp_round_record(fl_study *s, fl_err *err) {
    const fl_plan_privacy *pv = &s->plan->privacy;
    if (pv->mechanism != FL_DP_FEDAVG || !fl_plan_training_of(s->plan, s->phase)) return FL_OK;
    fl_accountant *acc = NULL;
    fl_status st = fl_accountant_new(NULL, 0, &acc, err);
    double q = 1, sigma = 0, eps = INFINITY;
    int rounds = 0;
    for (int i = 0; st == FL_OK && i < s->n_rows; i++) {
        const fl_journal_row *r = &s->rows[i];
        if (!fl_plan_training_of(s->plan, r->phase) || r->participants < 1) continue;
        q = s->cfg->n_allow ? fmin(1.0, r->participants / (double)s->cfg->n_allow) : 1.0;
        sigma = pv->noise_multiplier *
                sqrt(r->participants / (double)(pv->dp_clients - pv->dp_dropouts));
        st = fl_accountant_add(acc, q, sigma, 1, err);
        rounds++;
    }
    if (st == FL_OK)
        st = fl_accountant_epsilon(acc, pv->delta, FL_DP_CONVERSION_BALLE, &eps, NULL, err);
    fl_accountant_free(acc);
    if (st != FL_OK) return st;
    const fl_journal_row *row = &s->rows[s->n_rows - 1];
    char data[1024], e[32] = "null", adaptive[512] = "", line[160] = "";
    if (isfinite(eps)) snprintf(e, sizeof e, "%.17g", eps);
    if (pv->adaptive_clip) {
        snprintf(adaptive, sizeof adaptive,
                 ",\"adaptive_clip\":true,\"noise_multiplier_update\":%.17g,"
                 "\"clip_bit_noise\":%.17g,\"target_quantile\":%.17g,\"clip_lr\":%.17g,"
                 "\"clip_bits_mean\":%.17g,\"clip_next\":%.17g",
                 fl_plan_dp_fedavg_multiplier(pv), pv->clip_bit_noise, pv->target_quantile,
                 pv->clip_lr, row->clip_bits_mean, row->clip_next);
        snprintf(line, sizeof line, "; C %.4g, bits mean %.3f (target %g): next C %.4g",
                 row->clip_norm, row->clip_bits_mean, pv->target_quantile, row->clip_next);
    }
    snprintf(data, sizeof data,
             "{\"mechanism\":\"dp-fedavg\",\"phase\":\"%s\",\"participants\":%d,"
             "\"sample_rate\":%.17g,\"clip_norm\":%.17g,\"noise_multiplier\":%.17g,"
             "\"noise_multiplier_round\":%.17g,\"rounds\":%d,\"delta\":%.17g,\"epsilon\":%s%s}",
             fl_phase_name(s->phase), s->participants, q,
             pv->adaptive_clip ? row->clip_norm : pv->clip_norm, pv->noise_multiplier, sigma,
             rounds, pv->delta, e, adaptive);
    fl_study_event(s, "dp_round", "", data,
                   "round %lld: DP-FedAvg over %d sites (q %g, sigma %g), epsilon %.4g after %d "
                   "rounds (delta %g)%s",
                   (long long)s->round, s->participants, q, sigma, eps, rounds, pv->delta, line);
    return FL_OK;
}

/* Commits the round (state file, journal, rounds.csv, signed audit checkpoint) and moves on. */
static void commit(fl_study *s, int64_t now) {
    fl_err err = {{0}};
    fl_journal_row row;
    memset(&row, 0, sizeof row);
    row.round = s->round;
    row.phase = s->phase;
    row.phase_round = s->phase_round;
    row.phase_done = s->phase_round >= rounds_of(s, s->phase);
    row.participants = s->participants;
    row.evaluated = s->evaluated;
    row.loss = row.macro_auc = NAN;
    for (int k = 0; k < FL_PLAN_MAX_CLASSES; k++) row.auc[k] = row.ap[k] = NAN;
    if (s->evaluated && s->has_hist) {
        int noised = fl_plan_eval_noised(s->plan); /* the noised sums, clamped at 0 */
        if (noised) { /* a mean of losses clipped to [0, L]: so is its noised estimate */
            double L = s->plan->privacy.eval_loss_clip;
            row.loss = s->eval_loss / (s->eval_patients_noised > 1 ? s->eval_patients_noised : 1);
            row.loss = row.loss < 0 ? 0 : row.loss > L ? L : row.loss;
        } else
            row.loss = s->eval_patients ? s->eval_loss / (double)s->eval_patients : NAN;
        double sum = 0;
        int n = 0;
        for (int k = 0; k < s->plan->n_classes; k++) {
            row.auc[k] = noised ? fl_histd_auc(&s->histd, k) : fl_hist_auc(&s->hist, k);
            row.ap[k] = noised ? fl_histd_ap(&s->histd, k) : fl_hist_ap(&s->hist, k);
            if (!isnan(row.auc[k])) sum += row.auc[k], n++;
        }
        row.macro_auc = n ? sum / n : NAN;
    }
    row.model_version = s->model ? s->model->version : 0;
    if (s->model) fl_hex_encode(s->model->sha256, 32, row.model_sha256);
    row.unix_ms = now;
    /* adaptive clipping: this round's C, its bits' mean and the next C; a new phase starts
     * again from the plan's clip_norm */
    const fl_plan_privacy *pv = &s->plan->privacy;
    int adaptive = pv->mechanism == FL_DP_FEDAVG && pv->adaptive_clip;
    row.clip_norm = row.clip_bits_mean = row.clip_next = NAN;
    if (adaptive && fl_plan_training_of(s->plan, s->phase)) {
        row.clip_norm = s->clip;
        row.clip_bits_mean = fl_dp_clip_bits_mean(s->clip_bits, s->participants, pv->dp_clients);
        row.clip_next =
            fl_dp_adaptive_clip_next(s->clip, row.clip_bits_mean, pv->target_quantile, pv->clip_lr);
    }
    double clip_after = !adaptive                                ? 0
                        : row.phase_done || isnan(row.clip_next) ? pv->clip_norm
                                                                 : row.clip_next;

    fl_server_state st;
    memset(&st, 0, sizeof st);
    st.row = row;
    if (s->model) {
        st.n_params = s->model->n_params;
        st.n_buffers = s->model->n_buffers;
        st.global = s->model->data;
    }
    st.rnet = s->rnet;
    st.n_rnet = s->rnet ? s->n_rnet : 0;
    if (s->agg_ready && s->agg.m) {
        st.n_opt = s->agg.c.n_params;
        st.m = s->agg.m;
        st.v = s->agg.v;
        st.opt_step = s->agg.step;
    }
    memcpy(st.has_std, s->has_std, sizeof st.has_std);
    memcpy(st.std, s->std, sizeof st.std);
    st.clip = clip_after;
    if (row.phase_done && phase_finish(s, &err) != FL_OK) return fail(s, &err);
    if (fl_state_commit(s->cfg->state_dir, s->plan, &st, &err) != FL_OK) return fail(s, &err);
    fl_journal_row *grown = realloc(s->rows, (size_t)(s->n_rows + 1) * sizeof *grown);
    if (!grown) return fail(s, &(fl_err){"out of memory for the journal"});
    s->rows = grown;
    s->rows[s->n_rows++] = row;

    char data[512];
    snprintf(data, sizeof data,
             "{\"phase\":\"%s\",\"phase_round\":%d,\"participants\":%d,\"evaluated\":%d,"
             "\"model_version\":%llu,\"model_sha256\":\"%s\",\"macro_auc\":%.6f,\"loss\":%.6f}",
             fl_phase_name(row.phase), row.phase_round, row.participants, row.evaluated,
             (unsigned long long)row.model_version, row.model_sha256,
             isnan(row.macro_auc) ? -1.0 : row.macro_auc, isnan(row.loss) ? -1.0 : row.loss);
    fl_study_event(s, "round_committed", "", data,
                   "round %lld (%s %d) committed: %d updates, %d evaluations, macro AUC %.4f",
                   (long long)s->round, fl_phase_name(s->phase), s->phase_round, row.participants,
                   row.evaluated, row.macro_auc);
    if (dp_round_record(s, &err) != FL_OK) return fail(s, &err);
    if (s->log->audit && fl_audit_checkpoint(s->log->audit, s->round, &err) != FL_OK)
        return fail(s, &err);
    if (adaptive) s->clip = clip_after;

    s->round++;
    s->attempt = 0;
    if (!row.phase_done) {
        s->phase_round++;
        return round_begin(s, now);
    }
    fl_phase next = fl_plan_next_phase(s->plan, s->phase);
    if (next == FL_PHASE_NONE) {
        s->state = FL_STUDY_DONE;
        s->step = STEP_END;
        snprintf(s->reason, sizeof s->reason, "every phase is done");
        fl_study_event(s, "study_done", "", NULL, "the study is complete after %lld rounds",
                       (long long)(s->round - 1));
        if (s->log->audit) fl_audit_checkpoint(s->log->audit, s->round - 1, &err);
        return;
    }
    s->phase_round = 1;
    if (phase_start(s, next, NULL, &err) != FL_OK) return fail(s, &err);
    fl_study_event(s, "phase_started", "", NULL, "phase %s: %d rounds", fl_phase_name(next),
                   rounds_of(s, next));
    round_begin(s, now);
}

/* The statistics and features phases: the summed blocks give the standardizations. */
static fl_status finish_statistics(fl_study *s, fl_err *err) {
    const float *sum = s->agg.sum;
    if (s->plan->standardize == FL_STD_SITE) return FL_OK; /* nothing was summed */
    if (s->phase == FL_PHASE_FEATURES) {
        fl_stats_result_destroy(&s->std[FL_MODALITY_IMAGE - 1]);
        s->has_std[FL_MODALITY_IMAGE - 1] = 0;
        fl_status st = fl_stats_finish(sum, s->embed_dim, 0, &s->std[FL_MODALITY_IMAGE - 1], err);
        s->has_std[FL_MODALITY_IMAGE - 1] = st == FL_OK;
        return st;
    }
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        if (!omics_in_plan(s, (fl_modality)m)) continue;
        int F = site_features(s, m);
        int top = m == FL_MODALITY_RNA           ? s->plan->rna_features
                  : m == FL_MODALITY_METHYLATION ? s->plan->meth_features
                                                 : 0;
        fl_stats_result_destroy(&s->std[m - 1]);
        s->has_std[m - 1] = 0;
        fl_status st = fl_stats_finish(sum, F, top, &s->std[m - 1], err);
        if (st != FL_OK)
            return fl_fail(err, st, "%s: %s", fl_modality_name((fl_modality)m), err->msg);
        s->has_std[m - 1] = 1;
        sum += FL_STATS_LEN(F);
    }
    return FL_OK;
}

/* The training step is over with enough updates: aggregate, then evaluate or commit. */
void fl_study_finish_train(fl_study *s, int64_t now) {
    fl_err err = {{0}};
    if (s->phase == FL_PHASE_STATISTICS || s->phase == FL_PHASE_FEATURES) {
        if (finish_statistics(s, &err) != FL_OK) return fail(s, &err);
        if (s->plan->standardize == FL_STD_SITE)
            fl_study_event(s, "aggregate", "", NULL,
                           "round %lld: %d sites embedded their patients (site standardization: "
                           "nothing summed)",
                           (long long)s->round, s->participants);
        else
            fl_study_event(s, "aggregate", "", NULL, "round %lld: %s of %d sites summed",
                           (long long)s->round, fl_phase_name(s->phase), s->participants);
        return commit(s, now);
    }
    size_t n = s->model->n_params + s->model->n_buffers;
    float *next = malloc(n * sizeof(float));
    if (!next) return fail(s, &(fl_err){"out of memory for the next global model"});
    memcpy(next, s->model->data, n * sizeof(float));
    if (fl_agg_finish(&s->agg, next, &err) != FL_OK) {
        free(next);
        return fail(s, &err);
    }
    fl_snapshot *m =
        snapshot_new(++s->version, s->phase, next, s->model->n_params, s->model->n_buffers);
    if (!m) return fail(s, &(fl_err){"out of memory for a model snapshot"});
    fl_snapshot_unref(s->model);
    s->model = m;
    char hex[65], data[256];
    fl_hex_encode(m->sha256, 32, hex);
    snprintf(data, sizeof data,
             "{\"participants\":%d,\"model_version\":%llu,\"model_sha256\":\"%s\"}",
             s->participants, (unsigned long long)m->version, hex);
    fl_study_event(s, "aggregate", "", data, "round %lld: %d updates aggregated into version %llu",
                   (long long)s->round, s->participants, (unsigned long long)m->version);
    if (!eval_due(s)) return commit(s, now);
    fl_score_hist_destroy(&s->hist);
    fl_score_histd_destroy(&s->histd);
    s->has_hist =
        fl_score_hist_init(&s->hist, s->plan->n_classes, s->plan->bins, &err) == FL_OK &&
        (!fl_plan_eval_noised(s->plan) ||
         fl_score_histd_init(&s->histd, s->plan->n_classes, s->plan->bins, &err) == FL_OK);
    if (!s->has_hist) return fail(s, &err);
    s->eval_loss = 0;
    s->eval_patients = 0;
    s->eval_patients_noised = 0;
    s->evaluated = 0;
    fl_study_step_begin(s, STEP_EVAL, now);
}

/* Marks the step's unfinished participants dropped, telling the log why. */
void fl_study_drop_stragglers(fl_study *s, const char *why) {
    for (size_t i = 0; i < s->n_parts; i++) {
        participant *p = &s->parts[i];
        if (p->state != PART_ELIGIBLE && p->state != PART_WORKING) continue;
        if (s->up.active && strcmp(s->up.id, p->id) == 0) fl_study_update_abort(s, p->id, why);
        p->state = PART_DROPPED;
        fl_study_event(s, "dropped", p->id, NULL, "dropped from round %lld: %s",
                       (long long)s->round, why);
    }
}

void fl_study_advance(fl_study *s, int64_t now) {
    if (s->state != FL_STUDY_RUNNING) return;
    if (s->step == STEP_JOIN) {
        if ((int)joined_count(s) >= s->cfg->min_clients) {
            fl_err err = {{0}};
            if (!s->agg_ready && phase_start(s, s->phase, NULL, &err) != FL_OK)
                return fail(s, &err);
            return round_begin(s, now);
        }
        if (s->cfg->join_timeout_s > 0 &&
            now - s->join_since_ms > (int64_t)s->cfg->join_timeout_s * 1000)
            stop(s, "only %zu of the %d hospitals needed joined within join_timeout_s = %d",
                 joined_count(s), s->cfg->min_clients, s->cfg->join_timeout_s);
        return;
    }
    if (s->sa.on && s->step != STEP_EVAL && s->step != STEP_END) return fl_study_sa_advance(s, now);
    if (s->step != STEP_TRAIN && s->step != STEP_EVAL) return;
    int done = 0, active = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        done += s->parts[i].state == PART_DONE;
        active += s->parts[i].state == PART_ELIGIBLE || s->parts[i].state == PART_WORKING;
    }
    int late = now >= s->deadline_ms;
    if (s->step == STEP_EVAL) {
        if (active && !late) return;
        if (active) fl_study_drop_stragglers(s, "no evaluation before the deadline");
        return commit(s, now);
    }
    if (active && !late) return;
    if (done >= s->cfg->min_clients) {
        if (active) fl_study_drop_stragglers(s, "no update before the deadline");
        return fl_study_finish_train(s, now);
    }
    if (!late) return; /* everyone answered but too few: joins may still come */
    fl_study_drop_stragglers(s, "no update before the deadline");
    fl_study_retry_or_stop(s, now, done, s->cfg->min_clients, "updates");
}

void fl_study_retry_or_stop(fl_study *s, int64_t now, int got, int needed, const char *what) {
    if (s->attempt >= s->cfg->retries)
        return stop(s, "round %lld had %d of the %d %s needed after %d attempts",
                    (long long)s->round, got, needed, what, s->attempt + 1);
    s->attempt++;
    char data[96];
    snprintf(data, sizeof data, "{\"updates\":%d,\"needed\":%d,\"attempt\":%d}", got, needed,
             s->attempt + 1);
    fl_study_event(s, "round_retry", "", data, "round %lld: %d of %d %s; running it again",
                   (long long)s->round, got, needed, what);
    round_begin(s, now);
}

fl_study_state fl_study_tick(fl_study *s, int64_t now) {
    fl_study_advance(s, now);
    return s->state;
}

const char *fl_study_reason(const fl_study *s) {
    return s->reason;
}

int fl_study_all_told(const fl_study *s) {
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].joined && !s->parts[i].told_done) return 0;
    return 1;
}

uint64_t fl_study_epoch(const fl_study *s) {
    return s->epoch;
}

/* ---- open, resume, free ---- */

/* Adaptive clipping: the clip norm the next round uses, from the state file of the last
 * committed round, which must agree with its journal line (the rule's next C, or the plan's
 * clip_norm when the phase was done). */
static fl_status resume_clip(fl_study *s, const fl_server_state *st, fl_err *err) {
    const fl_plan_privacy *pv = &s->plan->privacy;
    const fl_journal_row *last = &s->rows[s->n_rows - 1];
    if (pv->mechanism != FL_DP_FEDAVG || !pv->adaptive_clip) return FL_OK;
    double want = last->phase_done || isnan(last->clip_next) ? pv->clip_norm : last->clip_next;
    if (st->clip != want)
        return fl_fail(err, FL_EFORMAT,
                       "%s/state/round-%lld.bin: its clip norm %.17g is not the %.17g of "
                       "journal.jsonl's round %lld (adaptive clipping)",
                       s->cfg->state_dir, (long long)last->round, st->clip, want,
                       (long long)last->round);
    s->clip = st->clip;
    return FL_OK;
}

fl_status fl_study_open(fl_study **out, const fl_server_config *cfg, const fl_plan *p, fl_slog *log,
                        fl_err *err) {
    *out = NULL;
    fl_study *s = calloc(1, sizeof *s);
    if (!s || !(s->parts = calloc(cfg->n_allow ? cfg->n_allow : 1, sizeof *s->parts))) {
        free(s);
        return fl_fail(err, FL_ENOMEM, "out of memory for the study");
    }
    s->cfg = cfg;
    s->plan = p;
    s->log = log;
    s->join_since_ms = fl_now_ms();
    s->clip = p->privacy.clip_norm;
    fl_server_state st;
    fl_status rc = fl_state_load(cfg->state_dir, p, &s->rows, &s->n_rows, &st, err);
    if (rc != FL_OK) {
        fl_study_free(s);
        return rc;
    }
    fl_phase ph = fl_plan_next_phase(p, FL_PHASE_NONE);
    s->round = 1;
    s->phase_round = 1;
    float *resume = NULL;
    if (s->n_rows && (rc = resume_clip(s, &st, err)) != FL_OK) goto fail;
    if (s->n_rows) {
        const fl_journal_row *last = &s->rows[s->n_rows - 1];
        s->round = last->round + 1;
        s->version = last->model_version;
        for (int k = 0; k < s->n_rows; k++)
            if (s->rows[k].model_version > s->version) s->version = s->rows[k].model_version;
        memcpy(s->has_std, st.has_std, sizeof s->has_std);
        memcpy(s->std, st.std, sizeof s->std);
        memset(st.std, 0, sizeof st.std);
        s->rnet = st.rnet;
        s->n_rnet = st.n_rnet;
        st.rnet = NULL;
        if (last->phase_done) {
            ph = fl_plan_next_phase(p, last->phase);
        } else {
            ph = last->phase;
            s->phase_round = last->phase_round + 1;
            resume = st.global;
            st.global = NULL;
        }
    }
    if (ph == FL_PHASE_NONE) { /* everything was committed before the restart */
        s->state = FL_STUDY_DONE;
        s->step = STEP_END;
        snprintf(s->reason, sizeof s->reason, "every phase is done");
    } else {
        /* The statistics phase sizes itself from the joins: set up at the first round. */
        s->phase = ph;
        if (ph != FL_PHASE_STATISTICS && (rc = phase_start(s, ph, resume, err)) != FL_OK) {
            resume = NULL;
            goto fail;
        }
        resume = NULL;
        if (s->agg_ready && st.m && st.n_opt == s->agg.c.n_params && s->agg.m) {
            memcpy(s->agg.m, st.m, st.n_opt * sizeof(float));
            memcpy(s->agg.v, st.v, st.n_opt * sizeof(float));
            s->agg.step = st.opt_step;
        }
        s->step = STEP_JOIN;
    }
    if (s->n_rows) {
        char data[160], clip[48] = "";
        if (p->privacy.adaptive_clip) snprintf(clip, sizeof clip, ",\"clip_norm\":%.17g", s->clip);
        snprintf(data, sizeof data, "{\"committed\":%lld,\"next_phase\":\"%s\"%s}",
                 (long long)s->round - 1, fl_phase_name(ph), clip);
        if (ph == FL_PHASE_NONE)
            fl_study_event(s, "resume", "", data,
                           "every phase was committed before the restart (%lld rounds)",
                           (long long)s->round - 1);
        else
            fl_study_event(s, "resume", "", data, "resuming after round %lld (next: %s round %d)",
                           (long long)s->round - 1, fl_phase_name(ph), s->phase_round);
    }
    fl_server_state_destroy(&st);
    *out = s;
    return FL_OK;
fail:
    free(resume);
    fl_server_state_destroy(&st);
    fl_study_free(s);
    return rc;
}

void fl_study_free(fl_study *s) {
    if (!s) return;
    if (s->up.has_h) fl_sha256_destroy(&s->up.h);
    fl_study_sa_reset(s);
    if (s->agg_ready) fl_agg_destroy(&s->agg);
    fl_snapshot_unref(s->model);
    free(s->rnet);
    for (int k = 0; k < 4; k++) fl_stats_result_destroy(&s->std[k]);
    if (s->has_hist) fl_score_hist_destroy(&s->hist);
    fl_score_histd_destroy(&s->histd);
    free(s->rows);
    free(s->parts);
    free(s);
}
