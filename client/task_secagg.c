/* task_secagg.c - a hospital's side of a secure-aggregation round: crypto/secagg.h's client
 * object fed from the server's tasks, its answers as fedlung.proto messages. The sending and
 * the outbox records are client/task.c's. */
#include "task_secagg.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dgauss.h"
#include "crypto/fixedpoint.h"
#include "fed/plan_secagg.h"
#include "crypto/rand.h"

/* Words masked per pass (4 MiB of floats). */
#define SA_CHUNK ((size_t)1 << 20)

static void free_messages(fl_sa_site *s) {
    if (s->cts) fl_wipe(s->cts, FL_SECAGG_MAX_CLIENTS * sizeof *s->cts);
    free(s->cts);
    free(s->sh);
    free(s->shp);
    if (s->reply) fl_wipe(s->reply, sizeof *s->reply);
    free(s->reply);
    free(s->bin);
    s->cts = NULL;
    s->sh = NULL;
    s->shp = NULL;
    s->reply = NULL;
    s->bin = NULL;
}

void fl_sa_site_reset(fl_sa_site *s) {
    fl_secagg_client_free(s->c);
    free_messages(s);
    memset(s, 0, sizeof *s);
}

static fl_status sign_advert(void *ctx, const uint8_t *msg, size_t n, uint8_t *sig, size_t *sig_len,
                             fl_err *err) {
    fl_sa_site *s = ctx;
    return fl_cert_sign(s->signer, msg, n, sig, sig_len, err);
}

/* A peer's advert, with the certificate the server relayed for it in U1: chained to this site's
 * CA, for a client, named id, and its key's signature. The first refusal is kept for the log. */
static int verify_advert(void *ctx, uint32_t index, const char *id, const uint8_t *msg, size_t n,
                         const uint8_t *sig, size_t sig_len) {
    fl_sa_site *s = ctx;
    const ProtobufCBinaryData *c = index <= FL_SECAGG_MAX_CLIENTS ? s->cert[index] : NULL;
    fl_err e = {{0}};
    fl_status st =
        c ? fl_cert_verify(s->ca, c->data, c->len, id, msg, n, sig, sig_len, "its certificate", &e)
          : fl_fail(&e, FL_EINVAL, "no certificate came with it");
    if (st == FL_OK) return 1;
    if (!s->refused_why[0]) {
        s->refused_index = index;
        snprintf(s->refused_id, sizeof s->refused_id, "%s", id);
        snprintf(s->refused_why, sizeof s->refused_why, "%s", e.msg);
    }
    return 0;
}

/* The task is of this site's current round. */
static fl_status in_round(const fl_sa_site *s, const Fedlung__V1__Task *t, const char *step,
                          fl_err *err) {
    if (!s->c || s->round != t->round || !t->secagg || t->secagg->index != s->index)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": a secure-aggregation %s task without this site's "
                       "keys of that round (it restarted, or missed the advertise step)",
                       t->round, step);
    return FL_OK;
}

fl_status fl_sa_site_advertise(fl_sa_site *s, const fl_plan_privacy *pv, const char *study,
                               const char *id, const fl_cert_signer *signer, const char *ca,
                               const Fedlung__V1__Task *t, Fedlung__V1__SecAggAdvert *out,
                               fl_err *err) {
    fl_sa_site_reset(s);
    const Fedlung__V1__SecAggParams *p = t->secagg;
    if (!pv->secagg)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": a secure-aggregation task, but the approved plan "
                       "has no secagg",
                       t->round);
    if (!p) return fl_fail(err, FL_EINVAL, "round %" PRIu64 ": no Task.secagg", t->round);
    uint32_t want_t = pv->secagg_threshold ? pv->secagg_threshold : fl_secagg_default_t(p->n);
    double scale = 0; /* recomputed from the approved plan: the site refuses another */
    uint64_t num = 0, den = 1;
    fl_status st = fl_plan_sa_scale(pv, p->n, &scale, err);
    if (st == FL_OK) st = fl_plan_sa_noise(pv, scale, &num, &den, err);
    if (st != FL_OK) return st;
    if ((int)p->cipher != pv->secagg_cipher || p->threshold < want_t || p->fixed_scale != scale)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": the task's secure aggregation (threshold %u, cipher "
                       "%d, scale %g) is not the approved plan's (threshold %u for %u sites, "
                       "cipher %d, scale %g)",
                       t->round, p->threshold, (int)p->cipher, p->fixed_scale, want_t, p->n,
                       pv->secagg_cipher, scale);
    if (strcmp(fl_cert_signer_cn(signer), id) != 0)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": this site's certificate names %s, but the server knows "
                       "it as %s: its peers would refuse its key advert",
                       t->round, fl_cert_signer_cn(signer), id);
    s->round = t->round;
    s->index = p->index;
    s->n = p->n;
    s->t = p->threshold;
    s->dim = (size_t)p->dim;
    s->scale = scale;
    s->noise_num = num;
    s->noise_den = den;
    s->min_survivors =
        pv->mechanism == FL_DP_FEDAVG ? (uint32_t)(pv->dp_clients - pv->dp_dropouts) : 0;
    s->signer = signer;
    s->ca = ca;
    fl_secagg_params sp = {.study = study,
                           .round = t->round,
                           .n = p->n,
                           .t = p->threshold,
                           .dim = (size_t)p->dim,
                           .cipher = (fl_stream_cipher)p->cipher};
    fl_secagg_hooks hooks = {.sign = sign_advert, .verify = verify_advert, .ctx = s};
    if ((st = fl_secagg_client_new(&sp, p->index, id, &hooks, &s->c, err)) != FL_OK ||
        (st = fl_secagg_client_advertise(s->c, &s->advert, err)) != FL_OK) {
        fl_sa_site_reset(s);
        return st;
    }
    size_t der_len;
    const uint8_t *der = fl_cert_signer_der(signer, &der_len);
    fedlung__v1__sec_agg_advert__init(out);
    out->study_id = (char *)study;
    out->round = t->round;
    out->index = s->advert.index;
    out->client_id = "";
    out->c_pk = (ProtobufCBinaryData){FL_X25519_LEN, s->advert.c_pk};
    out->s_pk = (ProtobufCBinaryData){FL_X25519_LEN, s->advert.s_pk};
    out->signature = (ProtobufCBinaryData){s->advert.sig_len, s->advert.sig};
    out->certificate = (ProtobufCBinaryData){der_len, (uint8_t *)der};
    return FL_OK;
}

fl_status fl_sa_site_share(fl_sa_site *s, const char *study, const Fedlung__V1__Task *t,
                           Fedlung__V1__SecAggShares *out, fl_err *err) {
    fl_status st = in_round(s, t, "share", err);
    if (st != FL_OK) return st;
    free_messages(s);
    size_t n = t->n_secagg_adverts;
    fl_secagg_advert *u1 = calloc(n ? n : 1, sizeof *u1);
    s->cts = calloc(FL_SECAGG_MAX_CLIENTS, sizeof *s->cts);
    s->sh = calloc(FL_SECAGG_MAX_CLIENTS, sizeof *s->sh);
    s->shp = calloc(FL_SECAGG_MAX_CLIENTS, sizeof *s->shp);
    if (!u1 || !s->cts || !s->sh || !s->shp) {
        free(u1);
        return fl_fail(err, FL_ENOMEM, "out of memory for the advert list");
    }
    memset(s->cert, 0, sizeof s->cert);
    s->refused_why[0] = '\0';
    for (size_t i = 0; i < n; i++) { /* validated: keys of 32 bytes, indices 1..255, ids */
        const Fedlung__V1__SecAggAdvert *a = t->secagg_adverts[i];
        u1[i].index = a->index;
        snprintf(u1[i].id, sizeof u1[i].id, "%s", a->client_id);
        memcpy(u1[i].c_pk, a->c_pk.data, FL_X25519_LEN);
        memcpy(u1[i].s_pk, a->s_pk.data, FL_X25519_LEN);
        u1[i].sig_len = a->signature.len;
        memcpy(u1[i].sig, a->signature.data, a->signature.len);
        s->cert[a->index] = &a->certificate;
    }
    size_t n_out = 0;
    st = fl_secagg_client_share_keys(s->c, u1, n, s->cts, FL_SECAGG_MAX_CLIENTS, &n_out, err);
    free(u1);
    memset(s->cert, 0, sizeof s->cert); /* views into t */
    if (st != FL_OK && s->refused_why[0])
        return fl_fail(err, st,
                       "round %" PRIu64 ": secure aggregation: refused the key advert of %s "
                       "(site %u): %s; this site leaves the round",
                       t->round, s->refused_id, s->refused_index, s->refused_why);
    if (st != FL_OK) return st;
    fedlung__v1__sec_agg_shares__init(out);
    out->study_id = (char *)study;
    out->round = t->round;
    for (size_t i = 0; i < n_out; i++) {
        fedlung__v1__sec_agg_share__init(&s->sh[i]);
        s->sh[i].from = s->cts[i].from;
        s->sh[i].to = s->cts[i].to;
        s->sh[i].ciphertext = (ProtobufCBinaryData){FL_SECAGG_SHARE_CT_LEN, s->cts[i].ct};
        s->shp[i] = &s->sh[i];
    }
    out->n_shares = n_out;
    out->shares = s->shp;
    return FL_OK;
}

fl_status fl_sa_site_receive(fl_sa_site *s, const Fedlung__V1__Task *t, fl_err *err) {
    fl_status st = in_round(s, t, "masked-input", err);
    if (st != FL_OK) return st;
    if (t->secagg->dim != s->dim)
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": the input has %" PRIu64 " words, not %zu", t->round,
                       t->secagg->dim, s->dim);
    size_t n = t->n_secagg_shares;
    fl_secagg_share_ct *cts = calloc(n ? n : 1, sizeof *cts);
    if (!cts) return fl_fail(err, FL_ENOMEM, "out of memory for the shares");
    for (size_t i = 0; i < n; i++) {
        cts[i].from = t->secagg_shares[i]->from;
        cts[i].to = t->secagg_shares[i]->to;
        memcpy(cts[i].ct, t->secagg_shares[i]->ciphertext.data, FL_SECAGG_SHARE_CT_LEN);
    }
    st = fl_secagg_client_receive_shares(s->c, cts, n, err);
    fl_wipe(cts, (n ? n : 1) * sizeof *cts);
    free(cts);
    return st;
}

double fl_sa_clip(float *vec, size_t n, double C) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)vec[i] * vec[i];
    double norm = sqrt(ss);
    if (norm > C) {
        /* a float product may round above C / norm * |x|: stay strictly inside the ball */
        float f = (float)(C / norm);
        while ((double)f * norm > C) f = nextafterf(f, 0);
        for (size_t i = 0; i < n; i++) vec[i] *= f;
    }
    return norm;
}

fl_status fl_sa_site_mask(fl_sa_site *s, float *vec, size_t n, fl_err *err) {
    if (!s->c || n != s->dim)
        return fl_fail(err, FL_EINVAL, "a masked input of %zu words, the round's is %zu", n,
                       s->dim);
    float *tmp = malloc((n < SA_CHUNK ? n : SA_CHUNK) * sizeof *tmp);
    if (!tmp) return fl_fail(err, FL_ENOMEM, "out of memory for masking");
    fl_status st = FL_OK;
    for (size_t off = 0; off < n && st == FL_OK; off += SA_CHUNK) {
        size_t k = n - off < SA_CHUNK ? n - off : SA_CHUNK;
        uint32_t *words = (uint32_t *)(void *)(vec + off); /* the words overwrite their floats */
        fl_secagg_masked view;
        memcpy(tmp, vec + off, k * sizeof *tmp);
        st = fl_fixed_encode(tmp, k, s->scale, words, err);
        /* DP-FedAvg: the discrete Gaussian joins the encoding before the mask hides it */
        if (st == FL_OK && s->noise_num)
            st = fl_dgauss_add_u32(words, k, s->noise_num, s->noise_den, fl_rand_source, NULL,
                                   err);
        if (st == FL_OK) st = fl_secagg_client_mask(s->c, off, words, k, &view, err);
    }
    fl_wipe(tmp, (n < SA_CHUNK ? n : SA_CHUNK) * sizeof *tmp);
    free(tmp);
    return st;
}

fl_status fl_sa_site_unmask(fl_sa_site *s, const char *study, const Fedlung__V1__Task *t,
                            Fedlung__V1__SecAggUnmaskReply *out, fl_err *err) {
    fl_status st = in_round(s, t, "unmask", err);
    if (st != FL_OK) return st;
    const Fedlung__V1__SecAggUnmaskRequest *u = t->secagg_unmask;
    if (!u) return fl_fail(err, FL_EINVAL, "round %" PRIu64 ": no unmask request", t->round);
    if (u->n_survivors < s->min_survivors) /* DP-FedAvg: each site's noise is for n - k sites */
        return fl_fail(err, FL_EINVAL,
                       "round %" PRIu64 ": refused to unmask a sum of %zu sites' inputs: the "
                       "plan's DP-FedAvg noise is for at least %u (dp_clients - dp_dropouts), "
                       "fewer would carry less noise than accounted",
                       t->round, u->n_survivors, s->min_survivors);
    free_messages(s);
    fl_secagg_unmask_request *req = calloc(1, sizeof *req);
    s->reply = calloc(1, sizeof *s->reply);
    s->bin = calloc(2 * FL_SECAGG_MAX_CLIENTS, sizeof *s->bin);
    if (!req || !s->reply || !s->bin) {
        free(req);
        return fl_fail(err, FL_ENOMEM, "out of memory for the unmask answer");
    }
    req->n_survivors = (uint32_t)u->n_survivors; /* validated: at most 255, ascending */
    req->n_dropped = (uint32_t)u->n_dropped;
    /* an empty repeated field is NULL in protobuf-c: memcpy must not see it */
    if (u->n_survivors) memcpy(req->survivors, u->survivors, u->n_survivors * sizeof *u->survivors);
    if (u->n_dropped) memcpy(req->dropped, u->dropped, u->n_dropped * sizeof *u->dropped);
    st = fl_secagg_client_unmask(s->c, req, s->reply, err);
    free(req);
    if (st != FL_OK) return st;
    fl_secagg_unmask_reply *r = s->reply;
    fedlung__v1__sec_agg_unmask_reply__init(out);
    out->study_id = (char *)study;
    out->round = t->round;
    out->index = s->index;
    out->n_b_peer = out->n_b_share = r->n_b;
    out->b_peer = r->b_peer;
    out->n_sk_peer = out->n_sk_share = r->n_sk;
    out->sk_peer = r->sk_peer;
    for (uint32_t i = 0; i < r->n_b; i++)
        s->bin[i] = (ProtobufCBinaryData){FL_SHAMIR_SECRET_LEN, r->b_share[i]};
    for (uint32_t i = 0; i < r->n_sk; i++)
        s->bin[FL_SECAGG_MAX_CLIENTS + i] =
            (ProtobufCBinaryData){FL_SHAMIR_SECRET_LEN, r->sk_share[i]};
    out->b_share = s->bin;
    out->sk_share = s->bin + FL_SECAGG_MAX_CLIENTS;
    return FL_OK;
}
