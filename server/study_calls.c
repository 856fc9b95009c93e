/* study_calls.c - the study's answers to Join, NextTask, GetModel, PutUpdate, PutEval and
 * Status: checks against the round state, the packed replies and the audit records. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study_impl.h"

#define VERSION "0.1.0"

static grpc_status_code pack(const ProtobufCMessage *m, grpc_byte_buffer **reply,
                             fl_rpc_status *st) {
    fl_err err;
    fl_status fs = fl_rpc_pack(m, reply, &err);
    if (fs != FL_OK) return fl_rpc_status_from(st, fs, &err);
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

/* FAILED_PRECONDITION with a sentence. */
#define precondition(st, ...) fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, __VA_ARGS__)

static int hash_listed(ProtobufCBinaryData *list, size_t n, const uint8_t h[32]) {
    for (size_t i = 0; i < n; i++)
        if (list[i].len == 32 && memcmp(list[i].data, h, 32) == 0) return 1;
    return 0;
}

/* ---- Join ---- */

/* Checks the site's feature lists against the study's (the first site that joined). */
static int features_agree(fl_study *s, const participant *p, char *why, size_t cap) {
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        if (!(fl_study_fusion_needs(s) & FL_MODALITY_BIT(m))) continue;
        if (!p->has_features[m - 1] || p->features[m - 1] == 0) {
            snprintf(why, cap, "it has no %s features, which the plan's fusion uses",
                     fl_modality_name((fl_modality)m));
            return 0;
        }
        for (size_t i = 0; i < s->n_parts; i++) {
            const participant *q = &s->parts[i];
            if (q == p || !q->joined) continue;
            if (q->features[m - 1] != p->features[m - 1] ||
                memcmp(q->features_sha256[m - 1], p->features_sha256[m - 1], 32) != 0) {
                snprintf(why, cap,
                         "its %s features (%u, list hash differs or not) do not match %s's (%u): "
                         "every site must share one feature list",
                         fl_modality_name((fl_modality)m), p->features[m - 1], q->id,
                         q->features[m - 1]);
                return 0;
            }
            break;
        }
    }
    return 1;
}

grpc_status_code fl_study_join(fl_study *s, const char *id, const Fedlung__V1__JoinRequest *rq,
                               grpc_byte_buffer **reply, fl_rpc_status *st) {
    const fl_plan *pl = s->plan;
    const Fedlung__V1__DataSummary *d = rq->data;
    /* the site's classes must be the plan's, in order */
    if (d && d->n_class_names) {
        int same = (int)d->n_class_names == pl->n_classes;
        for (int k = 0; same && k < pl->n_classes; k++)
            same = strcmp(d->class_names[k], pl->class_names[k]) == 0;
        if (!same)
            return precondition(st,
                                "client '%s' declares classes that differ from the plan's (%s, "
                                "... %d classes)",
                                id, pl->class_names[0], pl->n_classes);
    }
    participant *p = fl_study_find(s, id);
    int again = p != NULL;
    participant tmp;
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.id, sizeof tmp.id, "%s", id);
    for (size_t i = 0; d && i < d->n_modalities; i++) {
        const Fedlung__V1__ModalityCount *mc = d->modalities[i];
        if (!mc || mc->modality < 1 || mc->modality > 4) continue;
        tmp.has_features[mc->modality - 1] = 1;
        tmp.features[mc->modality - 1] = mc->features;
        if (mc->features_sha256.len == 32)
            memcpy(tmp.features_sha256[mc->modality - 1], mc->features_sha256.data, 32);
    }
    int approved = hash_listed(rq->approved_plan_hashes, rq->n_approved_plan_hashes, pl->sha256);
    char why[FL_ERR_LEN] = "";
    if (approved && !features_agree(s, &tmp, why, sizeof why)) {
        fl_study_event(s, "refused", id, NULL, "join refused: %s", why);
        return precondition(st, "client '%s': %s", id, why);
    }
    if (!p) {
        p = &s->parts[s->n_parts++]; /* room for every allowed name was made at start */
        *p = tmp;
    } else {
        memcpy(p->features, tmp.features, sizeof p->features);
        memcpy(p->features_sha256, tmp.features_sha256, sizeof p->features_sha256);
        memcpy(p->has_features, tmp.has_features, sizeof p->has_features);
    }
    p->last_seen_ms = fl_now_ms();
    char hex[65];
    fl_plan_hash_hex(pl, hex);
    if (!approved) {
        p->joined = 0;
        char data[160];
        snprintf(data, sizeof data, "{\"plan_sha256\":\"%s\"}", hex);
        fl_study_event(s, "refused", id, data,
                       "has not approved plan %.16s…: not counted as a participant", hex);
    } else {
        int first = !p->joined || !again;
        p->joined = 1; /* a site that joins during a step takes part from the next one */
        char data[400], budget[160] = "";
        if (rq->budget)
            snprintf(budget, sizeof budget,
                     ",\"epsilon_max\":%.9g,\"epsilon_spent\":%.9g,\"delta\":%.9g",
                     rq->budget->epsilon_max, rq->budget->epsilon_spent, rq->budget->delta);
        char patients[48] = ""; /* none when withheld (a hospital with a budget) */
        if (d && d->n_patients_per_class)
            snprintf(patients, sizeof patients, "\"patients\":%llu,",
                     (unsigned long long)d->patients);
        snprintf(data, sizeof data, "{%s\"software\":\"%.32s\",\"plan_sha256\":\"%s\"%s}", patients,
                 rq->software_version, hex, budget);
        if (first && !patients[0])
            fl_study_event(s, "join", id, data, "%s: plan approved (patient counts withheld)",
                           again ? "joined again" : "joined");
        else if (first)
            fl_study_event(s, "join", id, data, "%s: %llu patients, plan approved",
                           again ? "joined again" : "joined",
                           (unsigned long long)(d ? d->patients : 0));
        else
            fl_study_event(s, "join", id, data, "joined again (reconnect)");
    }
    Fedlung__V1__JoinReply r = FEDLUNG__V1__JOIN_REPLY__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = (uint64_t)s->round;
    r.client_id = (char *)id;
    r.plan_hash = (ProtobufCBinaryData){32, (uint8_t *)pl->sha256};
    r.plan = (ProtobufCBinaryData){pl->text_len, (uint8_t *)pl->text};
    r.phase =
        s->step == STEP_JOIN ? FEDLUNG__V1__PHASE__PHASE_UNSPECIFIED : (Fedlung__V1__Phase)s->phase;
    r.protocol_version = FL_RPC_PROTOCOL_VERSION;
    r.server_version = VERSION;
    r.max_message_bytes = FL_RPC_MAX_MESSAGE;
    r.max_chunk_bytes = FL_RPC_CHUNK_MAX;
    fl_study_advance(s, fl_now_ms());
    return pack(&r.base, reply, st);
}

/* ---- NextTask ---- */

static Fedlung__V1__Optimizer optimizer_of(fl_local_optimizer o) {
    return o == FL_LOCAL_SGD    ? FEDLUNG__V1__OPTIMIZER__OPTIMIZER_SGD
           : o == FL_LOCAL_ADAM ? FEDLUNG__V1__OPTIMIZER__OPTIMIZER_ADAM
                                : FEDLUNG__V1__OPTIMIZER__OPTIMIZER_ADAMW;
}

static grpc_status_code answer(fl_study *s, Fedlung__V1__TaskKind kind, const char *reason,
                               grpc_byte_buffer **reply, fl_rpc_status *st) {
    Fedlung__V1__Task t = FEDLUNG__V1__TASK__INIT;
    t.study_id = (char *)s->cfg->study;
    t.round = (uint64_t)s->round;
    t.kind = kind;
    t.reason = (char *)reason;
    t.plan_hash = (ProtobufCBinaryData){32, (uint8_t *)s->plan->sha256};
    t.retry_after_ms = kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_WAIT ? 1000 : 0;
    if (kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_DONE && s->state == FL_STUDY_DONE && s->model) {
        /* the study's final model, for the site to keep (GetModel still serves it) */
        t.phase = (Fedlung__V1__Phase)s->model->phase;
        t.model_version = s->model->version;
        t.model_sha256 = (ProtobufCBinaryData){32, s->model->sha256};
    }
    return pack(&t.base, reply, st);
}

/* A TRAIN or EVAL task of the current step. */
static grpc_status_code work_task(fl_study *s, const participant *p, grpc_byte_buffer **reply,
                                  fl_rpc_status *st) {
    Fedlung__V1__Task t = FEDLUNG__V1__TASK__INIT;
    Fedlung__V1__HyperParameters h = FEDLUNG__V1__HYPER_PARAMETERS__INIT;
    Fedlung__V1__UpdateSpec u = FEDLUNG__V1__UPDATE_SPEC__INIT;
    Fedlung__V1__PrivacyParams pp = FEDLUNG__V1__PRIVACY_PARAMS__INIT;
    Fedlung__V1__FeatureStats fs[4], *fsp[4];
    t.study_id = (char *)s->cfg->study;
    t.round = (uint64_t)s->round;
    t.kind = s->step == STEP_EVAL ? FEDLUNG__V1__TASK_KIND__TASK_KIND_EVAL
                                  : FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN;
    t.reason = "";
    t.phase = (Fedlung__V1__Phase)s->phase;
    if (s->model) {
        t.model_version = s->model->version;
        t.model_sha256 = (ProtobufCBinaryData){32, s->model->sha256};
    }
    t.deadline_unix_ms = s->deadline_ms;
    t.plan_hash = (ProtobufCBinaryData){32, (uint8_t *)s->plan->sha256};
    const fl_plan_training *pt = fl_plan_training_of(s->plan, s->phase);
    if (pt) {
        h.lr = pt->lr;
        h.epochs = (uint32_t)pt->epochs;
        h.batch_size = (uint32_t)pt->batch;
        h.local_steps = (uint32_t)pt->local_steps;
        h.fedprox_mu = pt->fedprox_mu;
        h.optimizer = optimizer_of(pt->optimizer);
        h.momentum = pt->momentum;
        h.weight_decay = pt->weight_decay;
        t.hyper = &h;
    }
    /* the plan's DP, for the trained phases' training: the site checks it against the plan it
     * approved, so the server can neither weaken nor drop it */
    const fl_plan_privacy *pv = &s->plan->privacy;
    if (pt && s->step == STEP_TRAIN && pv->mechanism != FL_DP_NONE) {
        pp.mechanism = (Fedlung__V1__DpMechanism)pv->mechanism;
        pp.clip_norm = pv->mechanism == FL_DP_FEDAVG ? s->clip : pv->clip_norm; /* adaptive */
        pp.noise_multiplier = pv->noise_multiplier;
        pp.sample_rate = pv->sample_rate;
        pp.delta = pv->delta;
        t.privacy = &pp;
    }
    u.encoding = FEDLUNG__V1__ENCODING__ENCODING_FLOAT32;
    u.send_buffers = !(pt && pt->fedbn);
    t.update = &u;
    if (s->phase == FL_PHASE_FUSION) {
        for (int m = FL_MODALITY_IMAGE; m <= FL_MODALITY_CLINICAL; m++) {
            if (!(s->plan->modalities & FL_MODALITY_BIT(m)) || !s->has_std[m - 1]) continue;
            Fedlung__V1__FeatureStats *f = &fs[t.n_standardization];
            fedlung__v1__feature_stats__init(f);
            f->modality = (Fedlung__V1__Modality)m;
            f->n_index = f->n_mean = f->n_std = (size_t)s->std[m - 1].n;
            f->index = s->std[m - 1].index;
            f->mean = s->std[m - 1].mean;
            f->std = s->std[m - 1].std;
            fsp[t.n_standardization++] = f;
        }
        t.standardization = fsp;
    }
    if (s->sa.on) return fl_study_sa_pack_task(s, p, &t, reply, st);
    return pack(&t.base, reply, st);
}

int fl_study_next_task(fl_study *s, const char *id, const Fedlung__V1__TaskRequest *rq, int expired,
                       grpc_byte_buffer **reply, fl_rpc_status *st) {
    participant *p = fl_study_find(s, id);
    if (!p || !p->joined) {
        precondition(st, "client '%s' has not joined this study with its plan approved (call Join)",
                     id);
        return 1;
    }
    p->last_seen_ms = fl_now_ms();
    /* the site refuses the training task it holds (its privacy budget): it leaves the round */
    if (rq->refused_round && rq->refused_round == (uint64_t)s->round &&
        (s->step == STEP_TRAIN || s->step == STEP_EVAL) && p->state == PART_WORKING &&
        s->state == FL_STUDY_RUNNING) {
        /* an evaluation refused counts as one not sent */
        if (s->step == STEP_TRAIN && s->up.active && strcmp(s->up.id, id) == 0)
            fl_study_update_abort(s, id, "the site refused the round");
        p->state = PART_DROPPED;
        const char *why =
            rq->refused_reason && rq->refused_reason[0] ? rq->refused_reason : "(no reason given)";
        char data[FL_RPC_MAX_TEXT + 64], esc[FL_RPC_MAX_TEXT];
        fl_slog_json_str(why, esc, sizeof esc);
        snprintf(data, sizeof data, "{\"refused_round\":%llu,\"task\":\"%s\",\"reason\":\"%s\"}",
                 (unsigned long long)rq->refused_round, s->step == STEP_EVAL ? "eval" : "train",
                 esc);
        fl_study_event(s, "refused", id, data, "refused %sround %lld: %s",
                       s->step == STEP_EVAL ? "the evaluation of " : "", (long long)s->round, why);
        fl_study_advance(s, fl_now_ms());
    }
    if (s->state != FL_STUDY_RUNNING) p->told_done = 1;
    if (s->state == FL_STUDY_DONE) {
        answer(s, FEDLUNG__V1__TASK_KIND__TASK_KIND_DONE, "the study is complete", reply, st);
        return 1;
    }
    if (s->state != FL_STUDY_RUNNING) {
        answer(s, FEDLUNG__V1__TASK_KIND__TASK_KIND_DONE, s->reason, reply, st);
        return 1;
    }
    if (s->step != STEP_JOIN && s->step != STEP_END &&
        (p->state == PART_ELIGIBLE || p->state == PART_WORKING)) {
        int first = p->state == PART_ELIGIBLE;
        p->state = PART_WORKING;
        if (first) {
            char data[128];
            const char *kind = s->step == STEP_EVAL           ? "eval"
                               : s->step == STEP_SA_ADVERTISE ? "secagg_advertise"
                               : s->step == STEP_SA_SHARE     ? "secagg_share"
                               : s->step == STEP_SA_UNMASK    ? "secagg_unmask"
                                                              : "train";
            snprintf(data, sizeof data, "{\"kind\":\"%s\",\"phase\":\"%s\",\"model_version\":%llu}",
                     kind, fl_phase_name(s->phase),
                     (unsigned long long)(s->model ? s->model->version : 0));
            fl_study_event(s, "task", id, data, "%s task of round %lld (%s)",
                           s->step == STEP_EVAL    ? "evaluation"
                           : s->step == STEP_TRAIN ? "training"
                                                   : kind,
                           (long long)s->round, fl_phase_name(s->phase));
        }
        work_task(s, p, reply, st);
        return 1;
    }
    if (!expired) return 0;
    const char *why = s->step == STEP_JOIN       ? "waiting for hospitals to join"
                      : p->state == PART_DROPPED ? "dropped from this round; wait for the next"
                      : p->state == PART_DONE    ? "waiting for the other hospitals"
                                                 : "joined during a round; wait for the next";
    answer(s, FEDLUNG__V1__TASK_KIND__TASK_KIND_WAIT, why, reply, st);
    return 1;
}

/* ---- GetModel ---- */

grpc_status_code fl_study_get_model(fl_study *s, const char *id,
                                    const Fedlung__V1__ModelRequest *rq, fl_snapshot **snap,
                                    fl_rpc_status *st) {
    *snap = NULL;
    participant *p = fl_study_find(s, id);
    if (!p || !p->joined) return precondition(st, "client '%s' has not joined", id);
    if (fl_rpc_check_scope(st, s->cfg->study, (uint64_t)s->round, rq->study_id, rq->round) !=
        GRPC_STATUS_OK)
        return st->code;
    if (!s->model || rq->model_version != s->model->version)
        return precondition(st, "model version %llu is not the current one (%llu)",
                            (unsigned long long)rq->model_version,
                            (unsigned long long)(s->model ? s->model->version : 0));
    uint64_t total = (uint64_t)(s->model->n_params + s->model->n_buffers) * 4;
    if (rq->offset > total || rq->offset % 4)
        return fl_rpc_status_set(
            st, GRPC_STATUS_OUT_OF_RANGE,
            "offset %llu is not a float boundary within the model's %llu bytes",
            (unsigned long long)rq->offset, (unsigned long long)total);
    fl_snapshot_ref(s->model);
    *snap = s->model;
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

/* ---- PutUpdate ---- */

/* Drops the staged upload's bytes: a masked input's (wiped, never summed) or a plain one's. */
static void stage_drop(fl_study *s) {
    if (s->sa.masked_upload)
        fl_study_sa_stage_clear(s);
    else
        fl_agg_stage_abort(&s->agg);
}

int fl_study_update_busy(const fl_study *s) {
    return s->up.active;
}

grpc_status_code fl_study_update_begin(fl_study *s, const char *id,
                                       const Fedlung__V1__UpdateHeader *h, fl_rpc_status *st) {
    participant *p = fl_study_find(s, id);
    if (!p || !p->joined) return precondition(st, "client '%s' has not joined", id);
    if (fl_rpc_check_scope(st, s->cfg->study, (uint64_t)s->round, h->study_id, h->round) !=
        GRPC_STATUS_OK)
        return st->code;
    if (s->step != STEP_TRAIN)
        return precondition(st, "round %lld is not collecting updates", (long long)s->round);
    if (p->state == PART_DONE)
        return precondition(st, "the update of '%s' for round %lld is already in", id,
                            (long long)s->round);
    if (p->state == PART_DROPPED)
        return precondition(st, "'%s' was dropped from round %lld (deadline passed)", id,
                            (long long)s->round);
    if (p->state != PART_WORKING)
        return precondition(st, "'%s' has no training task in round %lld", id, (long long)s->round);
    uint64_t version = s->model && s->phase != FL_PHASE_FEATURES ? s->model->version : 0;
    if (s->phase == FL_PHASE_FEATURES) version = s->model->version;
    if (h->model_version != version)
        return precondition(st, "the update is from model version %llu, the round's is %llu",
                            (unsigned long long)h->model_version, (unsigned long long)version);
    if (h->n_params != s->expect_params || h->n_buffers != s->expect_buffers)
        return precondition(st, "the update has %llu + %llu values, the round needs %zu + %zu",
                            (unsigned long long)h->n_params, (unsigned long long)h->n_buffers,
                            s->expect_params, s->expect_buffers);
    if (s->up.active)
        return fl_rpc_status_set(st, GRPC_STATUS_UNAVAILABLE, "another update is being received");
    if (s->sa.on) { /* a masked input: staged whole, then into the protocol's sum */
        if (fl_study_sa_update_begin(s, h, st) != GRPC_STATUS_OK) return st->code;
        goto stage;
    }
    if (h->encoding != FEDLUNG__V1__ENCODING__ENCODING_FLOAT32)
        return fl_rpc_status_set(st, GRPC_STATUS_UNIMPLEMENTED,
                                 "only ENCODING_FLOAT32 updates are accepted without secure "
                                 "aggregation");
    const fl_plan_training *pt = fl_plan_training_of(s->plan, s->phase);
    const fl_plan_privacy *pv = &s->plan->privacy;
    /* DP-FedAvg: uniform weights inside the DP sum (the plan has weighted = false), and the
     * update must declare the round's clipping and the plan's noise and carry no example count
     * (and a clipping bit only under adaptive clipping) */
    if (pt && pv->mechanism == FL_DP_FEDAVG &&
        (h->mechanism != FEDLUNG__V1__DP_MECHANISM__DP_MECHANISM_DP_FEDAVG ||
         h->count_kind != FEDLUNG__V1__COUNT_KIND__COUNT_KIND_OMITTED || h->example_count != 0 ||
         h->clip_norm != s->clip || h->noise_multiplier != pv->noise_multiplier ||
         (!pv->adaptive_clip && h->clip_bit != 0)))
        return fl_rpc_status_set(
            st, GRPC_STATUS_INVALID_ARGUMENT,
            "the plan trains with DP-FedAvg (C %g, sigma %g, no example "
            "count%s); the update declares mechanism %d, C %g, sigma %g, "
            "count kind %d, clipping bit %g",
            s->clip, pv->noise_multiplier, pv->adaptive_clip ? "" : ", no clipping bit",
            (int)h->mechanism, h->clip_norm, h->noise_multiplier, (int)h->count_kind, h->clip_bit);
    double weight = 1;
    if (pt && pt->weighted) {
        if (h->count_kind == FEDLUNG__V1__COUNT_KIND__COUNT_KIND_OMITTED || !(h->example_count > 0))
            return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                                     "the plan weights updates by example count, and this "
                                     "update declares none");
        weight = h->example_count;
    }
    if (s->up.active)
        return fl_rpc_status_set(st, GRPC_STATUS_UNAVAILABLE, "another update is being received");
    fl_err err;
    if (fl_agg_stage_begin(&s->agg, weight, &err) != FL_OK)
        return fl_rpc_status_from(st, FL_EINVAL, &err);
stage:
    if (fl_sha256_init(&s->up.h) != FL_OK) {
        stage_drop(s);
        return fl_rpc_status_set(st, GRPC_STATUS_INTERNAL, "SHA-256 unavailable");
    }
    s->up.has_h = 1;
    s->up.active = 1;
    snprintf(s->up.id, sizeof s->up.id, "%s", id);
    s->up.length = h->length;
    s->up.received = 0;
    memcpy(s->up.sha256, h->sha256.data, 32);
    s->up.examples = h->example_count;
    s->up.clip_norm = h->clip_norm;
    s->up.noise_multiplier = h->noise_multiplier;
    s->up.clip_bit = h->clip_bit;
    s->up.mechanism = (int)h->mechanism;
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

static int staged_by(const fl_study *s, const char *id) {
    return s->up.active && strcmp(s->up.id, id) == 0;
}

grpc_status_code fl_study_update_chunk(fl_study *s, const char *id, uint64_t offset,
                                       const uint8_t *data, size_t len, fl_rpc_status *st) {
    if (!staged_by(s, id))
        return precondition(st,
                            "the update was dropped (the round moved on or its deadline passed)");
    if (offset != s->up.received || len % 4 || len > s->up.length - s->up.received) {
        fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "chunk at offset %llu of %zu bytes: expected offset %llu, a multiple "
                          "of 4 bytes, within the %llu announced",
                          (unsigned long long)offset, len, (unsigned long long)s->up.received,
                          (unsigned long long)s->up.length);
        fl_study_update_abort(s, id, st->msg);
        return st->code;
    }
    fl_err err;
    if (s->sa.masked_upload) { /* masked words, summed only once the whole upload checked out */
        if (fl_sha256_update(&s->up.h, data, len) != FL_OK) {
            fl_rpc_status_set(st, GRPC_STATUS_INTERNAL, "SHA-256 failed");
            fl_study_update_abort(s, id, st->msg);
            return st->code;
        }
        fl_study_sa_stage_chunk(s, offset, data, len);
        s->up.received += len;
        return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
    }
    if (fl_sha256_update(&s->up.h, data, len) != FL_OK ||
        fl_agg_stage_chunk(&s->agg, (size_t)(offset / 4), (const float *)(const void *)data,
                           len / 4, &err) != FL_OK) {
        fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "chunk refused by the aggregator");
        fl_study_update_abort(s, id, st->msg);
        return st->code;
    }
    s->up.received += len;
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

void fl_study_update_abort(fl_study *s, const char *id, const char *why) {
    if (!staged_by(s, id)) return;
    stage_drop(s);
    fl_sha256_destroy(&s->up.h);
    s->up.has_h = 0;
    s->up.active = 0;
    char data[FL_ERR_LEN + 32], esc[FL_ERR_LEN - 64];
    fl_slog_json_str(why, esc, sizeof esc);
    snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
    fl_study_event(s, "update_rejected", id, data, "update rejected: %s", why);
}

grpc_status_code fl_study_update_end(fl_study *s, const char *id, int cancelled,
                                     grpc_byte_buffer **reply, fl_rpc_status *st) {
    if (!staged_by(s, id))
        return precondition(st,
                            "the update was dropped (the round moved on or its deadline passed)");
    uint8_t got[32];
    fl_status hs = fl_sha256_final(&s->up.h, got);
    fl_sha256_destroy(&s->up.h);
    s->up.has_h = 0;
    char hex[65];
    fl_hex_encode(got, 32, hex);
    if (cancelled || s->up.received != s->up.length || hs != FL_OK ||
        memcmp(got, s->up.sha256, 32) != 0) {
        if (cancelled)
            fl_rpc_status_set(st, GRPC_STATUS_CANCELLED, "the upload was cancelled");
        else if (s->up.received != s->up.length)
            fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                              "the update has %llu bytes, its header announced %llu",
                              (unsigned long long)s->up.received, (unsigned long long)s->up.length);
        else
            fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                              "the update's SHA-256 is %s, not the one in its header", hex);
        stage_drop(s);
        s->up.active = 0;
        char data[FL_ERR_LEN + 32], esc[FL_ERR_LEN - 64];
        fl_slog_json_str(st->msg, esc, sizeof esc);
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
        fl_study_event(s, "update_rejected", id, data, "update rejected: %s", st->msg);
        return st->code;
    }
    fl_err err;
    s->up.active = 0;
    participant *p = fl_study_find(s, id);
    int masked = s->sa.masked_upload;
    if ((masked ? fl_study_sa_update_commit(s, p, &err) : fl_agg_stage_commit(&s->agg, &err)) !=
        FL_OK) {
        fl_study_event(s, "update_rejected", id, NULL, "update rejected: %s", err.msg);
        return fl_rpc_status_from(st, FL_EINVAL, &err);
    }
    p->state = PART_DONE;
    p->last_round = (uint64_t)s->round;
    s->participants++;
    char data[448], bit[48] = "";
    if (s->plan->privacy.adaptive_clip && !masked && fl_plan_training_of(s->plan, s->phase)) {
        /* the round's bits, for the next C */
        s->clip_bits += s->up.clip_bit;
        snprintf(bit, sizeof bit, ",\"clip_bit\":%.17g", s->up.clip_bit);
    }
    static const char *const mech[] = {"none", "dp-sgd", "dp-fedavg"};
    snprintf(data, sizeof data,
             "{\"bytes\":%llu,\"sha256\":\"%s\",\"examples\":%.0f,\"mechanism\":\"%s\","
             "\"clip_norm\":%.17g,\"noise_multiplier\":%.9g%s%s}",
             (unsigned long long)s->up.length, hex, s->up.examples,
             s->up.mechanism >= 0 && s->up.mechanism <= 2 ? mech[s->up.mechanism] : "?",
             s->up.clip_norm, s->up.noise_multiplier, bit, masked ? ",\"masked\":true" : "");
    fl_study_event(s, "update_accepted", id, data,
                   "update of round %lld accepted: %llu bytes, sha256 %.16s…", (long long)s->round,
                   (unsigned long long)s->up.length, hex);
    int64_t seq;
    char head[FL_SHA256_HEX] = "";
    if (s->log->audit) fl_audit_head(s->log->audit, &seq, head);
    uint8_t audit_hash[32];
    int has_audit = head[0] && fl_hex_decode(head, audit_hash, 32) == FL_OK;
    Fedlung__V1__Receipt r = FEDLUNG__V1__RECEIPT__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = (uint64_t)s->round;
    r.length = s->up.length;
    r.sha256 = (ProtobufCBinaryData){32, got};
    if (has_audit) r.audit_hash = (ProtobufCBinaryData){32, audit_hash};
    grpc_status_code code = pack(&r.base, reply, st);
    fl_study_advance(s, fl_now_ms());
    return code;
}

/* ---- PutEval ---- */

int fl_study_eval_form_ok(const fl_plan *p, const Fedlung__V1__EvalReport *rq, char *why,
                          size_t cap) {
    int noised = fl_plan_eval_noised(p), sent_noised = rq->n_noised_histogram != 0;
    double z = p->privacy.eval_noise_multiplier;
    if (noised == sent_noised && (!noised || rq->noise_multiplier == z)) return 1;
    if (noised && sent_noised)
        snprintf(why, cap,
                 "a report noised with noise multiplier %g, the plan's eval_noise_multiplier "
                 "is %g",
                 rq->noise_multiplier, z);
    else
        snprintf(why, cap, "%s report under a plan that %s", noised ? "an un-noised" : "a noised",
                 noised ? "asks for noised ones (eval_noise_multiplier > 0)" : "has exact ones");
    return 0;
}

grpc_status_code fl_study_put_eval(fl_study *s, const char *id, const Fedlung__V1__EvalReport *rq,
                                   uint64_t len, const uint8_t sha256[32], grpc_byte_buffer **reply,
                                   fl_rpc_status *st) {
    participant *p = fl_study_find(s, id);
    if (!p || !p->joined) return precondition(st, "client '%s' has not joined", id);
    if (fl_rpc_check_scope(st, s->cfg->study, (uint64_t)s->round, rq->study_id, rq->round) !=
        GRPC_STATUS_OK)
        return st->code;
    if (s->step != STEP_EVAL || p->state != PART_WORKING)
        return precondition(st, "'%s' has no evaluation task in round %lld", id,
                            (long long)s->round);
    if (rq->model_version != s->model->version)
        return precondition(st, "evaluation of model %llu, the round's is %llu",
                            (unsigned long long)rq->model_version,
                            (unsigned long long)s->model->version);
    if ((int)rq->n_classes != s->plan->n_classes || (int)rq->bins != s->plan->bins)
        return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                                 "evaluation of %u classes in %u bins, the plan has %d in %d",
                                 rq->n_classes, rq->bins, s->plan->n_classes, s->plan->bins);
    /* the report's form must be the plan's: noised under DP with eval_noise_multiplier > 0 */
    char why[192];
    if (!fl_study_eval_form_ok(s->plan, rq, why, sizeof why)) {
        char data[256];
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", why);
        fl_study_event(s, "eval_refused", id, data, "evaluation of round %lld refused: %s",
                       (long long)s->round, why);
        return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "evaluation refused: %s", why);
    }
    int noised = fl_plan_eval_noised(s->plan);
    size_t n = (size_t)s->hist.K * 2 * (size_t)s->hist.B;
    double site_auc = NAN;
    if (noised) {
        fl_err e = {{0}};
        if (fl_score_histd_add(&s->histd, rq->noised_histogram, &e) != FL_OK)
            return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", e.msg);
        s->eval_patients_noised += rq->noised_patients;
    } else {
        for (size_t i = 0; i < n; i++) s->hist.counts[i] += rq->histogram[i];
        s->eval_patients += rq->patients;
    }
    /* under DP a site's own metric is a data-dependent number: neither computed nor recorded */
    int dp = s->plan->privacy.mechanism != FL_DP_NONE;
    if (!dp) { /* a view of the report's counts (the server sees each site's histogram anyway) */
        fl_score_hist site = {s->hist.K, s->hist.B, rq->histogram};
        double sum = 0;
        int n_auc = 0;
        for (int k = 0; k < site.K; k++) {
            double a = fl_hist_auc(&site, k);
            if (!isnan(a)) sum += a, n_auc++;
        }
        site_auc = n_auc ? sum / n_auc : NAN;
    }
    s->eval_loss += rq->loss_sum;
    s->evaluated++;
    p->state = PART_DONE;
    char data[384];
    char hex[65];
    fl_hex_encode(sha256, 32, hex);
    char auc[48] = "";
    if (!dp) snprintf(auc, sizeof auc, ",\"macro_auc\":%.6f", isnan(site_auc) ? -1.0 : site_auc);
    if (noised)
        snprintf(data, sizeof data,
                 "{\"bytes\":%llu,\"sha256\":\"%s\",\"noised\":true,\"noise_multiplier\":%.17g,"
                 "\"patients_noised\":%.6f,\"loss_sum_noised\":%.6f}",
                 (unsigned long long)len, hex, rq->noise_multiplier, rq->noised_patients,
                 rq->loss_sum);
    else
        snprintf(data, sizeof data,
                 "{\"bytes\":%llu,\"sha256\":\"%s\",%s\"patients\":%llu,\"loss_sum\":%.6f%s}",
                 (unsigned long long)len, hex, dp ? "\"noised\":false,\"noise_multiplier\":0," : "",
                 (unsigned long long)rq->patients, rq->loss_sum, auc);
    if (noised)
        fl_study_event(s, "evaluation", id, data,
                       "evaluation of round %lld: noised report (noise multiplier %g, about %.0f "
                       "patients; site metrics withheld under DP)",
                       (long long)s->round, rq->noise_multiplier, rq->noised_patients);
    else if (dp)
        fl_study_event(s, "evaluation", id, data,
                       "evaluation of round %lld: %llu patients, un-noised report "
                       "(eval_noise_multiplier 0; site metrics withheld under DP)",
                       (long long)s->round, (unsigned long long)rq->patients);
    else
        fl_study_event(s, "evaluation", id, data,
                       "evaluation of round %lld: %llu patients, site macro AUC %.4f",
                       (long long)s->round, (unsigned long long)rq->patients, site_auc);
    Fedlung__V1__Receipt r = FEDLUNG__V1__RECEIPT__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = (uint64_t)s->round;
    r.length = len;
    r.sha256 = (ProtobufCBinaryData){32, (uint8_t *)sha256};
    grpc_status_code code = pack(&r.base, reply, st);
    fl_study_advance(s, fl_now_ms());
    return code;
}

/* ---- Status ---- */

grpc_status_code fl_study_status(fl_study *s, grpc_byte_buffer **reply, fl_rpc_status *st) {
    size_t n = s->n_parts ? s->n_parts : 1;
    Fedlung__V1__Participant *parts = calloc(n, sizeof *parts);
    Fedlung__V1__Participant **ptrs = calloc(n, sizeof *ptrs);
    if (!parts || !ptrs) {
        free(parts);
        free(ptrs);
        return fl_rpc_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    static const Fedlung__V1__ParticipantState map[] = {
        [PART_NONE] = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_JOINED,
        [PART_ELIGIBLE] = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_JOINED,
        [PART_WORKING] = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_WORKING,
        [PART_DONE] = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_DONE,
        [PART_DROPPED] = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_DROPPED,
    };
    uint32_t received = 0;
    int total = 0, done = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        fedlung__v1__participant__init(&parts[i]);
        parts[i].client_id = s->parts[i].id;
        parts[i].state = map[s->parts[i].state];
        parts[i].last_round = s->parts[i].last_round;
        parts[i].last_seen_unix_ms = s->parts[i].last_seen_ms;
        ptrs[i] = &parts[i];
        received += s->step == STEP_TRAIN && s->parts[i].state == PART_DONE;
    }
    for (fl_phase ph = fl_plan_next_phase(s->plan, FL_PHASE_NONE); ph != FL_PHASE_NONE;
         ph = fl_plan_next_phase(s->plan, ph)) {
        const fl_plan_training *t = fl_plan_training_of(s->plan, ph);
        total += t ? t->rounds : 1;
    }
    done = s->n_rows;
    Fedlung__V1__StatusReply r = FEDLUNG__V1__STATUS_REPLY__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = (uint64_t)s->round;
    r.phase = s->step == STEP_JOIN && s->n_rows == 0 ? FEDLUNG__V1__PHASE__PHASE_UNSPECIFIED
                                                     : (Fedlung__V1__Phase)s->phase;
    const fl_plan_training *t = fl_plan_training_of(s->plan, s->phase);
    r.rounds_total = (uint64_t)(t ? t->rounds : 1);
    r.model_version = s->model ? s->model->version : 0;
    r.participants_joined = 0;
    for (size_t i = 0; i < s->n_parts; i++) r.participants_joined += s->parts[i].joined;
    r.updates_received = received;
    r.updates_needed = (uint32_t)s->cfg->min_clients;
    r.progress = total ? (double)done / total : 0;
    r.done = s->state == FL_STUDY_DONE;
    r.n_participants = s->n_parts;
    r.participants = ptrs;
    grpc_status_code code = pack(&r.base, reply, st);
    free(parts);
    free(ptrs);
    return code;
}
