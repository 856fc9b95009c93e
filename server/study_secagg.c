/* study_secagg.c - a training round under secure aggregation (docs/privacy.md, "Secure
 * aggregation"): the steps ADVERTISE, SHARE, TRAIN (masked inputs through PutUpdate) and UNMASK
 * around crypto/secagg.h's server object, their tasks, the three RPCs and the audit records.
 * The protocol's logic is secagg.c's; this file only moves its structs. Not the statistics and
 * features phases, which stay on the plain path, nor the evaluation histograms (in the clear).
 *
 * The server never holds one site's unmasked update: a masked upload is staged as bytes whose
 * only consumer is fl_secagg_server_add_masked (through a fl_secagg_masked view), and it is
 * added only after its SHA-256 and length were verified, in one go, because a masked input that
 * stops partway cannot be taken out of the sum (secagg.h). The staging reuses the aggregator's
 * staging vector, which the plain path would fill with one site's floats: masked words reveal
 * nothing. What leaves the protocol is the decoded sum over the survivors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cert_sign.h"
#include "crypto/fixedpoint.h"
#include "fed/plan_secagg.h"
#include "study_impl.h"

_Static_assert(FL_RPC_SECAGG_MAX_CLIENTS == FL_SECAGG_MAX_CLIENTS, "proto/rpc.h vs secagg.h");
_Static_assert(FL_RPC_SECAGG_KEY_LEN == FL_SECAGG_KEY_LEN, "proto/rpc.h vs secagg.h");
_Static_assert(FL_RPC_SECAGG_KEY_LEN == FL_X25519_LEN, "proto/rpc.h vs kex.h");
_Static_assert(FL_RPC_SECAGG_SIG_MAX == FL_SECAGG_SIG_MAX, "proto/rpc.h vs secagg.h");
_Static_assert(FL_CERT_SIG_MAX <= FL_SECAGG_SIG_MAX, "cert_sign.h vs secagg.h");
_Static_assert(FL_RPC_SECAGG_CERT_MAX == FL_CERT_DER_MAX, "proto/rpc.h vs cert_sign.h");
_Static_assert(FL_RPC_SECAGG_SHARE_CT_LEN == FL_SECAGG_SHARE_CT_LEN, "proto/rpc.h vs secagg.h");
_Static_assert(FL_RPC_SECAGG_KEY_LEN == FL_SHAMIR_SECRET_LEN, "proto/rpc.h vs shamir.h");

/* Structure: the protocol's only way in for masked data is a read-only fl_secagg_masked view,
 * and this file's staging is handed to nothing else (fl_study_sa_update_commit). */
_Static_assert(_Generic(&fl_secagg_server_add_masked,
                        fl_status (*)(fl_secagg_server *, const fl_secagg_masked *, fl_err *) : 1,
                        default : 0),
               "the server sums masked views only");

#define precondition(st, ...) fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, __VA_ARGS__)

int fl_study_sa_wanted(const fl_study *s) {
    return s->plan->privacy.secagg && (s->phase == FL_PHASE_IMAGE || s->phase == FL_PHASE_FUSION);
}

void fl_study_sa_reset(fl_study *s) {
    fl_secagg_server_free(s->sa.srv); /* wipes the shares and the sum */
    s->sa.srv = NULL;
    s->sa.on = 0;
    s->sa.u1 = NULL;
    s->sa.n_u1 = 0;
    s->sa.masked_upload = 0;
    memset(&s->sa.req, 0, sizeof s->sa.req);
    for (size_t i = 0; i < s->n_parts; i++) {
        s->parts[i].sa_index = 0;
        s->parts[i].sa_cert_len = 0;
    }
}

static participant *by_index(fl_study *s, uint32_t index) {
    for (size_t i = 0; i < s->n_parts; i++)
        if (index && s->parts[i].sa_index == index) return &s->parts[i];
    return NULL;
}

/* Holds an advert to the connection it came on (peer_pem, the TLS peer's certificate): its
 * certificate is the peer's (same CN, same key), chains to this server's CA as a client's with
 * CN id, and its key signed the advert's bytes. Under insecure there is no TLS identity to hold
 * it to: relayed unchecked (the peers check it all the same). */
static fl_status check_advert(const fl_study *s, const char *id, const char *peer_pem,
                              size_t peer_len, const fl_secagg_advert *a,
                              const ProtobufCBinaryData *cert, fl_err *err) {
    if (s->cfg->tls.insecure) return FL_OK;
    if (!peer_pem) return fl_fail(err, FL_EINVAL, "the connection shows no TLS client certificate");
    uint8_t msg[FL_SECAGG_ADVERT_BYTES_MAX];
    size_t n = fl_secagg_advert_bytes(s->cfg->study, (uint64_t)s->round, a, msg);
    fl_status st =
        fl_cert_match_pem(cert->data, cert->len, peer_pem, peer_len, "its certificate", err);
    if (st == FL_OK)
        st = fl_cert_verify(s->cfg->tls.ca, cert->data, cert->len, id, msg, n, a->sig, a->sig_len,
                            "its certificate", err);
    return st;
}

/* The round cannot run or lost too many sites: recorded, then retried like a round below
 * min_clients. */
static void sa_short(fl_study *s, int64_t now, int got, const fl_err *err) {
    char data[FL_ERR_LEN + 64], esc[FL_ERR_LEN];
    fl_slog_json_str(err->msg, esc, sizeof esc);
    snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
    fl_study_event(s, "secagg_aborted", "", data, "round %lld: secure aggregation aborted: %s",
                   (long long)s->round, err->msg);
    int needed = (int)s->sa.t;
    fl_study_sa_reset(s);
    fl_study_retry_or_stop(s, now, got, needed, "sites of the secure aggregation");
}

void fl_study_sa_round_begin(fl_study *s, int64_t now) {
    fl_err err = {{0}};
    uint32_t n = 0;
    fl_study_sa_reset(s);
    s->sa.on = 1;
    for (size_t i = 0; i < s->n_parts && n < FL_SECAGG_MAX_CLIENTS; i++)
        if (s->parts[i].joined) s->parts[i].sa_index = ++n;
    const fl_plan_privacy *pv = &s->plan->privacy;
    s->sa.n = n;
    s->sa.t = pv->secagg_threshold ? pv->secagg_threshold : fl_secagg_default_t(n);
    s->sa.dim = s->expect_params + s->expect_buffers;
    s->sa.cipher = pv->secagg_cipher;
    fl_status st = FL_OK;
    if (n < 2 || s->sa.t > n)
        st = fl_fail(&err, FL_EINVAL, "secure aggregation needs t = %u of %u sites", s->sa.t, n);
    if (st == FL_OK) st = fl_plan_sa_scale(pv, n, &s->sa.scale, &err);
    fl_secagg_params p = {.study = s->cfg->study,
                          .round = (uint64_t)s->round,
                          .n = n,
                          .t = s->sa.t,
                          .dim = s->sa.dim,
                          .cipher = (fl_stream_cipher)s->sa.cipher};
    /* no verify hook: fl_study_advertise_keys checks each advert with more to say */
    if (st == FL_OK) st = fl_secagg_server_new(&p, NULL, &s->sa.srv, &err);
    if (st != FL_OK) {
        /* a step that asks nobody and ends at its deadline with a retry (sites may join) */
        char data[FL_ERR_LEN + 64], esc[FL_ERR_LEN];
        fl_slog_json_str(err.msg, esc, sizeof esc);
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
        fl_study_event(s, "secagg_aborted", "", data,
                       "round %lld: secure aggregation cannot run: %s", (long long)s->round,
                       err.msg);
        fl_secagg_server_free(s->sa.srv);
        s->sa.srv = NULL;
        fl_study_step_begin(s, STEP_SA_ADVERTISE, now);
        for (size_t i = 0; i < s->n_parts; i++) s->parts[i].state = PART_NONE;
        return;
    }
    char data[160];
    snprintf(data, sizeof data,
             "{\"n\":%u,\"t\":%u,\"dim\":%zu,\"fixed_scale\":%.17g,\"cipher\":\"%s\"}", n, s->sa.t,
             s->sa.dim, s->sa.scale, s->sa.cipher ? "chacha20" : "aes-ctr");
    fl_study_event(s, "secagg_round", "", data,
                   "round %lld: secure aggregation of %u sites, threshold %u", (long long)s->round,
                   n, s->sa.t);
    fl_study_step_begin(s, STEP_SA_ADVERTISE, now);
}

/* Begins the next step with only the sites listed (by number) in `in` eligible. */
static void next_step(fl_study *s, study_step step, const uint8_t in[FL_SECAGG_MAX_CLIENTS + 1],
                      int64_t now) {
    fl_study_step_begin(s, step, now);
    for (size_t i = 0; i < s->n_parts; i++) {
        participant *p = &s->parts[i];
        if (p->state == PART_ELIGIBLE && !(p->sa_index && in[p->sa_index])) p->state = PART_NONE;
    }
}

void fl_study_sa_advance(fl_study *s, int64_t now) {
    if (!s->sa.srv) { /* the round could not start its secure aggregation */
        if (now < s->deadline_ms) return;
        int n = (int)s->sa.n, t = (int)s->sa.t;
        fl_study_sa_reset(s);
        return fl_study_retry_or_stop(s, now, n, t, "sites of the secure aggregation");
    }
    int done = 0, active = 0;
    uint8_t in[FL_SECAGG_MAX_CLIENTS + 1] = {0};
    for (size_t i = 0; i < s->n_parts; i++) {
        const participant *p = &s->parts[i];
        done += p->state == PART_DONE;
        active += p->state == PART_ELIGIBLE || p->state == PART_WORKING;
        if (p->state == PART_DONE && p->sa_index) in[p->sa_index] = 1;
    }
    int late = now >= s->deadline_ms;
    if (active && !late) return;
    static const char *const why[] = {
        [STEP_SA_ADVERTISE] = "no key advert before the deadline",
        [STEP_SA_SHARE] = "no key shares before the deadline",
        [STEP_TRAIN] = "no masked update before the deadline",
        [STEP_SA_UNMASK] = "no unmask answer before the deadline",
    };
    if (active) fl_study_drop_stragglers(s, why[s->step]);
    fl_err err = {{0}};
    char data[2400];
    switch (s->step) {
    case STEP_SA_ADVERTISE:
        if (fl_secagg_server_close_adverts(s->sa.srv, &s->sa.u1, &s->sa.n_u1, &err) != FL_OK)
            return sa_short(s, now, done, &err);
        snprintf(data, sizeof data, "{\"adverts\":%zu,\"n\":%u,\"t\":%u}", s->sa.n_u1, s->sa.n,
                 s->sa.t);
        fl_study_event(s, "secagg_adverts", "", data, "round %lld: %zu of %u sites advertised keys",
                       (long long)s->round, s->sa.n_u1, s->sa.n);
        return next_step(s, STEP_SA_SHARE, in, now);
    case STEP_SA_SHARE:
        if (fl_secagg_server_close_shares(s->sa.srv, &err) != FL_OK)
            return sa_short(s, now, done, &err);
        snprintf(data, sizeof data, "{\"u2\":%d}", done);
        fl_study_event(s, "secagg_shares", "", data, "round %lld: %d sites shared their keys (U2)",
                       (long long)s->round, done);
        return next_step(s, STEP_TRAIN, in, now);
    case STEP_TRAIN: {
        if (fl_secagg_server_close_masked(s->sa.srv, &s->sa.req, &err) != FL_OK)
            return sa_short(s, now, done, &err);
        const fl_secagg_unmask_request *r = &s->sa.req;
        int at = snprintf(data, sizeof data, "{\"u3\":%u,\"dropped\":[", r->n_survivors);
        for (uint32_t i = 0; i < r->n_dropped && at < (int)sizeof data - 80; i++) {
            participant *p = by_index(s, r->dropped[i]);
            at += snprintf(data + at, sizeof data - (size_t)at, "%s\"%s\"", i ? "," : "",
                           p ? p->id : "?");
        }
        snprintf(data + at, sizeof data - (size_t)at, "]}");
        fl_study_event(s, "secagg_masked", "", data,
                       "round %lld: %u masked inputs in (U3), %u sites dropped after sharing keys",
                       (long long)s->round, r->n_survivors, r->n_dropped);
        memset(in, 0, sizeof in);
        for (uint32_t i = 0; i < r->n_survivors; i++) in[r->survivors[i]] = 1;
        return next_step(s, STEP_SA_UNMASK, in, now);
    }
    case STEP_SA_UNMASK: {
        const uint32_t *sum;
        uint32_t survivors = s->sa.req.n_survivors;
        if (fl_secagg_server_finish(s->sa.srv, &sum, &err) != FL_OK)
            return sa_short(s, now, done, &err);
        if ((int)survivors < s->cfg->min_clients) {
            fl_fail(&err, FL_EINVAL, "%u masked inputs, min_clients is %d", survivors,
                    s->cfg->min_clients);
            return sa_short(s, now, (int)survivors, &err);
        }
        float *avg = malloc(s->sa.dim * sizeof(float));
        uint8_t sha[32];
        char hex[65];
        if (!avg) return sa_short(s, now, done, &(fl_err){"out of memory for the sum"});
        fl_status st = fl_fixed_decode_sum(sum, s->sa.dim, s->sa.scale, avg, &err);
        if (st == FL_OK) st = fl_sha256(avg, s->sa.dim * sizeof(float), sha);
        if (st == FL_OK) st = fl_agg_add_sum(&s->agg, avg, (int)survivors, &err);
        free(avg);
        if (st != FL_OK) return sa_short(s, now, done, &err);
        fl_hex_encode(sha, 32, hex);
        snprintf(data, sizeof data,
                 "{\"answers\":%d,\"survivors\":%u,\"dropped\":%u,\"sum_sha256\":\"%s\"}", done,
                 survivors, s->sa.req.n_dropped, hex);
        fl_study_event(s, "secagg_unmasked", "", data,
                       "round %lld: %d answers unmasked the sum of %u updates, sha256 %.16s…",
                       (long long)s->round, done, survivors, hex);
        s->participants = (int)survivors;
        fl_secagg_server_free(s->sa.srv); /* the protocol's state is no longer needed */
        s->sa.srv = NULL;
        s->sa.u1 = NULL;
        s->sa.n_u1 = 0;
        s->sa.on = 0; /* the round goes on as any other: EVAL, commit */
        return fl_study_finish_train(s, now);
    }
    default:
        return;
    }
}

/* ---- tasks ---- */

grpc_status_code fl_study_sa_pack_task(fl_study *s, const participant *p, Fedlung__V1__Task *t,
                                       grpc_byte_buffer **reply, fl_rpc_status *st) {
    Fedlung__V1__SecAggParams sp = FEDLUNG__V1__SEC_AGG_PARAMS__INIT;
    Fedlung__V1__SecAggUnmaskRequest ur = FEDLUNG__V1__SEC_AGG_UNMASK_REQUEST__INIT;
    Fedlung__V1__SecAggAdvert *adv = NULL, **advp = NULL;
    Fedlung__V1__SecAggShare *sh = NULL, **shp = NULL;
    fl_secagg_share_ct *cts = NULL;
    uint32_t u2[FL_SECAGG_MAX_CLIENTS];
    grpc_status_code code = GRPC_STATUS_OK;
    sp.index = p->sa_index;
    sp.n = s->sa.n;
    sp.threshold = s->sa.t;
    sp.dim = s->sa.dim;
    sp.cipher = (Fedlung__V1__SecAggCipher)s->sa.cipher;
    sp.fixed_scale = s->sa.scale;
    t->secagg = &sp;
    switch (s->step) {
    case STEP_SA_ADVERTISE:
        t->kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_ADVERTISE;
        break;
    case STEP_SA_SHARE: {
        t->kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_SHARE;
        size_t n = s->sa.n_u1;
        adv = calloc(n, sizeof *adv);
        advp = calloc(n, sizeof *advp);
        if (!adv || !advp) goto oom;
        for (size_t i = 0; i < n; i++) {
            const fl_secagg_advert *a = &s->sa.u1[i];
            participant *q = by_index(s, a->index);
            fedlung__v1__sec_agg_advert__init(&adv[i]);
            adv[i].study_id = (char *)s->cfg->study;
            adv[i].round = (uint64_t)s->round;
            adv[i].index = a->index;
            adv[i].client_id = (char *)a->id;
            adv[i].c_pk = (ProtobufCBinaryData){FL_X25519_LEN, (uint8_t *)a->c_pk};
            adv[i].s_pk = (ProtobufCBinaryData){FL_X25519_LEN, (uint8_t *)a->s_pk};
            adv[i].signature = (ProtobufCBinaryData){a->sig_len, (uint8_t *)a->sig};
            adv[i].certificate =
                (ProtobufCBinaryData){q ? q->sa_cert_len : 0, q ? q->sa_cert : (uint8_t *)""};
            advp[i] = &adv[i];
        }
        t->n_secagg_adverts = n;
        t->secagg_adverts = advp;
        break;
    }
    case STEP_TRAIN: {
        size_t n = 0;
        fl_err err;
        cts = calloc(FL_SECAGG_MAX_CLIENTS, sizeof *cts);
        if (!cts) goto oom;
        fl_status fs = fl_secagg_server_shares_for(s->sa.srv, p->sa_index, cts,
                                                   FL_SECAGG_MAX_CLIENTS, &n, &err);
        if (fs != FL_OK) {
            code = fl_rpc_status_from(st, fs, &err);
            goto done;
        }
        sh = calloc(n ? n : 1, sizeof *sh);
        shp = calloc(n ? n : 1, sizeof *shp);
        if (!sh || !shp) goto oom;
        for (size_t i = 0; i < n; i++) {
            fedlung__v1__sec_agg_share__init(&sh[i]);
            sh[i].from = cts[i].from;
            sh[i].to = cts[i].to;
            sh[i].ciphertext = (ProtobufCBinaryData){FL_SECAGG_SHARE_CT_LEN, cts[i].ct};
            shp[i] = &sh[i];
        }
        t->n_secagg_shares = n;
        t->secagg_shares = shp;
        for (size_t i = 0; i < s->n_parts; i++) /* U2: the sites of this step, by number */
            if (s->parts[i].sa_index && s->parts[i].state != PART_NONE)
                u2[t->n_secagg_u2++] = s->parts[i].sa_index;
        for (size_t i = 1; i < t->n_secagg_u2; i++) /* ascending (few: insertion) */
            for (size_t j = i; j > 0 && u2[j - 1] > u2[j]; j--) {
                uint32_t x = u2[j];
                u2[j] = u2[j - 1];
                u2[j - 1] = x;
            }
        t->secagg_u2 = u2;
        t->update->encoding = FEDLUNG__V1__ENCODING__ENCODING_FIXED32;
        t->update->fixed_scale = s->sa.scale;
        break;
    }
    case STEP_SA_UNMASK:
        t->kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_UNMASK;
        ur.n_survivors = s->sa.req.n_survivors;
        ur.survivors = s->sa.req.survivors;
        ur.n_dropped = s->sa.req.n_dropped;
        ur.dropped = s->sa.req.dropped;
        t->secagg_unmask = &ur;
        break;
    default:
        break;
    }
    {
        fl_err err;
        fl_status fs = fl_rpc_pack(&t->base, reply, &err);
        code = fs == FL_OK ? fl_rpc_status_set(st, GRPC_STATUS_OK, "ok")
                           : fl_rpc_status_from(st, fs, &err);
    }
    goto done;
oom:
    code = fl_rpc_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for a task");
done:
    free(adv);
    free(advp);
    free(sh);
    free(shp);
    free(cts);
    return code;
}

/* ---- the masked upload ---- */

grpc_status_code fl_study_sa_update_begin(fl_study *s, const Fedlung__V1__UpdateHeader *h,
                                          fl_rpc_status *st) {
    if (h->encoding != FEDLUNG__V1__ENCODING__ENCODING_FIXED32 || h->fixed_scale != s->sa.scale)
        return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                                 "round %lld runs secure aggregation: the update must be "
                                 "ENCODING_FIXED32 with fixed_scale %.17g",
                                 (long long)s->round, s->sa.scale);
    if (s->agg.busy || h->length != (uint64_t)s->sa.dim * 4)
        return fl_rpc_status_set(st, GRPC_STATUS_INTERNAL, "the staging is not free");
    s->sa.masked_upload = 1;
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

/* The staging as bytes of masked words: what fl_secagg_server_add_masked will read. */
static uint8_t *masked_stage(fl_study *s) {
    return (uint8_t *)(void *)s->agg.staging;
}

void fl_study_sa_stage_chunk(fl_study *s, uint64_t offset, const uint8_t *data, size_t len) {
    memcpy(masked_stage(s) + offset, data, len); /* the caller checked offset + len <= length */
}

fl_status fl_study_sa_update_commit(fl_study *s, const participant *p, fl_err *err) {
    /* the whole upload, verified: into the protocol's sum in one go, as a masked view */
    fl_secagg_masked m = {
        .from = p->sa_index, .offset = 0, .count = s->sa.dim, .data = masked_stage(s)};
    fl_status st = fl_secagg_server_add_masked(s->sa.srv, &m, err);
    fl_study_sa_stage_clear(s);
    return st;
}

void fl_study_sa_stage_clear(fl_study *s) {
    if (s->sa.masked_upload) memset(masked_stage(s), 0, s->sa.dim * 4);
    s->sa.masked_upload = 0;
}

/* ---- the three RPCs ---- */

/* The common checks: joined, the round, the step, a task of it held. */
static participant *sa_caller(fl_study *s, const char *id, const char *study, uint64_t round,
                              study_step step, const char *what, fl_rpc_status *st) {
    participant *p = fl_study_find(s, id);
    if (!p || !p->joined) {
        precondition(st, "client '%s' has not joined", id);
        return NULL;
    }
    if (fl_rpc_check_scope(st, s->cfg->study, (uint64_t)s->round, study, round) != GRPC_STATUS_OK)
        return NULL;
    if (!s->sa.on || s->step != step || !p->sa_index) {
        precondition(st, "round %lld is not collecting %s", (long long)s->round, what);
        return NULL;
    }
    if (p->state != PART_WORKING) {
        precondition(st, "'%s' has no %s task in round %lld", id, what, (long long)s->round);
        return NULL;
    }
    return p;
}

/* Records the accepted message (its fields in `fields`, a JSON object's members) and answers. */
static grpc_status_code receipt(fl_study *s, participant *p, const char *kind, const char *fields,
                                const char *text, uint64_t len, const uint8_t sha256[32],
                                grpc_byte_buffer **reply, fl_rpc_status *st) {
    p->state = PART_DONE;
    char hex[65], data[400];
    fl_hex_encode(sha256, 32, hex);
    snprintf(data, sizeof data, "{\"bytes\":%llu,\"sha256\":\"%s\",%s}", (unsigned long long)len,
             hex, fields);
    fl_study_event(s, kind, p->id, data, "%s", text);
    Fedlung__V1__Receipt r = FEDLUNG__V1__RECEIPT__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = (uint64_t)s->round;
    r.length = len;
    r.sha256 = (ProtobufCBinaryData){32, (uint8_t *)sha256};
    fl_err err;
    fl_status fs = fl_rpc_pack(&r.base, reply, &err);
    grpc_status_code code = fs == FL_OK ? fl_rpc_status_set(st, GRPC_STATUS_OK, "ok")
                                        : fl_rpc_status_from(st, fs, &err);
    fl_study_advance(s, fl_now_ms());
    return code;
}

/* A secagg message refused: the audit record carries what and why. */
static void sa_refused(fl_study *s, const char *id, const char *what, const char *why) {
    char data[FL_ERR_LEN + 64], esc[FL_ERR_LEN];
    fl_slog_json_str(why, esc, sizeof esc);
    snprintf(data, sizeof data, "{\"message\":\"%s\",\"reason\":\"%s\"}", what, esc);
    fl_study_event(s, "secagg_refused", id, data, "%s refused: %s", what, why);
}
grpc_status_code fl_study_advertise_keys(fl_study *s, const char *id, const char *peer_pem,
                                         size_t peer_len, const Fedlung__V1__SecAggAdvert *rq,
                                         uint64_t len, const uint8_t sha256[32],
                                         grpc_byte_buffer **reply, fl_rpc_status *st) {
    participant *p =
        sa_caller(s, id, rq->study_id, rq->round, STEP_SA_ADVERTISE, "key adverts", st);
    if (!p) return st->code;
    if (rq->index != p->sa_index)
        return fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                                 "the advert is for site number %u, '%s' is number %u", rq->index,
                                 id, p->sa_index);
    fl_secagg_advert a;
    memset(&a, 0, sizeof a);
    a.index = p->sa_index;
    snprintf(a.id, sizeof a.id, "%s", id); /* the TLS identity, not a field */
    memcpy(a.c_pk, rq->c_pk.data, FL_X25519_LEN);
    memcpy(a.s_pk, rq->s_pk.data, FL_X25519_LEN);
    a.sig_len = rq->signature.len;
    memcpy(a.sig, rq->signature.data, a.sig_len); /* validated: 1..FL_SECAGG_SIG_MAX bytes */
    fl_err err = {{0}};
    uint8_t cert_sha[FL_SHA256_LEN];
    fl_status fs = check_advert(s, id, peer_pem, peer_len, &a, &rq->certificate, &err);
    if (fs == FL_OK && fl_sha256(rq->certificate.data, rq->certificate.len, cert_sha) != FL_OK)
        fs = fl_fail(&err, FL_EBACKEND, "SHA-256 of its certificate failed");
    if (fs == FL_OK) fs = fl_secagg_server_add_advert(s->sa.srv, &a, &err);
    if (fs != FL_OK) {
        sa_refused(s, id, "advert", err.msg);
        return fl_rpc_status_from(st, fs, &err);
    }
    memcpy(p->sa_cert, rq->certificate.data, rq->certificate.len); /* validated: fits */
    p->sa_cert_len = rq->certificate.len;
    char data[200], hex[FL_SHA256_HEX];
    fl_hex_encode(cert_sha, FL_SHA256_LEN, hex);
    snprintf(data, sizeof data, "\"index\":%u,\"certificate_sha256\":\"%s\"", a.index, hex);
    return receipt(s, p, "secagg_advert", data, "key advert accepted", len, sha256, reply, st);
}

grpc_status_code fl_study_share_keys(fl_study *s, const char *id,
                                     const Fedlung__V1__SecAggShares *rq, uint64_t len,
                                     const uint8_t sha256[32], grpc_byte_buffer **reply,
                                     fl_rpc_status *st) {
    participant *p = sa_caller(s, id, rq->study_id, rq->round, STEP_SA_SHARE, "key shares", st);
    if (!p) return st->code;
    fl_secagg_share_ct *cts = calloc(rq->n_shares ? rq->n_shares : 1, sizeof *cts);
    if (!cts) return fl_rpc_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < rq->n_shares; i++) {
        cts[i].from = rq->shares[i]->from;
        cts[i].to = rq->shares[i]->to;
        memcpy(cts[i].ct, rq->shares[i]->ciphertext.data, FL_SECAGG_SHARE_CT_LEN);
    }
    fl_err err;
    fl_status fs = fl_secagg_server_add_shares(s->sa.srv, p->sa_index, cts, rq->n_shares, &err);
    free(cts);
    if (fs != FL_OK) {
        sa_refused(s, id, "key shares", err.msg);
        return fl_rpc_status_from(st, fs, &err);
    }
    char data[64];
    snprintf(data, sizeof data, "\"shares\":%zu", rq->n_shares);
    return receipt(s, p, "secagg_share", data, "key shares accepted", len, sha256, reply, st);
}

grpc_status_code fl_study_unmask(fl_study *s, const char *id,
                                 const Fedlung__V1__SecAggUnmaskReply *rq, uint64_t len,
                                 const uint8_t sha256[32], grpc_byte_buffer **reply,
                                 fl_rpc_status *st) {
    participant *p =
        sa_caller(s, id, rq->study_id, rq->round, STEP_SA_UNMASK, "unmask answers", st);
    if (!p) return st->code;
    fl_secagg_unmask_reply *r = calloc(1, sizeof *r);
    if (!r) return fl_rpc_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    r->from = p->sa_index;
    r->n_b = (uint32_t)rq->n_b_peer;
    r->n_sk = (uint32_t)rq->n_sk_peer;
    for (size_t i = 0; i < rq->n_b_peer; i++) {
        r->b_peer[i] = rq->b_peer[i];
        memcpy(r->b_share[i], rq->b_share[i].data, FL_SHAMIR_SECRET_LEN);
    }
    for (size_t i = 0; i < rq->n_sk_peer; i++) {
        r->sk_peer[i] = rq->sk_peer[i];
        memcpy(r->sk_share[i], rq->sk_share[i].data, FL_SHAMIR_SECRET_LEN);
    }
    fl_err err;
    fl_status fs = fl_secagg_server_add_unmask(s->sa.srv, r, &err);
    fl_wipe(r, sizeof *r);
    free(r);
    if (fs != FL_OK) {
        sa_refused(s, id, "unmask answer", err.msg);
        return fl_rpc_status_from(st, fs, &err);
    }
    char data[96];
    snprintf(data, sizeof data, "\"b_shares\":%zu,\"sk_shares\":%zu", rq->n_b_peer, rq->n_sk_peer);
    return receipt(s, p, "secagg_unmask", data, "unmask answer accepted", len, sha256, reply, st);
}
