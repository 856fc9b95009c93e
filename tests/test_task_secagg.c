/* test_task_secagg.c - client/task_secagg.c, a hospital's side of a secure-aggregation round,
 * driven with constructed Tasks as the server would send them and the crypto server object of
 * crypto/secagg.h routing between three sites whose adverts are signed with TLS client keys of
 * a consortium CA made at test time (crypto/cert_sign.h):
 *  - a whole round: the decoded sum equals the plain sum of the three inputs;
 *  - a server that tampers with the relayed adverts is refused by the peers, each refusal naming
 *    the peer and why: hospital-2's certificate swapped for hospital-3's, a rogue CA's
 *    certificate for hospital-2 over keys the server made, hospital-2's mask key replaced under
 *    its real certificate and signature, hospital-2 renamed; the refusing site's round is over;
 *  - a site whose certificate does not name the id the server knows refuses to advertise;
 *  - under DP-FedAvg the decoded sum carries the 3 sites' discrete Gaussian noise (its std), and
 *    a site refuses to unmask a sum of fewer sites than dp_clients - dp_dropouts.
 * The gRPC transport and the server's own check of adverts are
 * tests/check_secagg_federation.sh's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/task_secagg.h"
#include "../crypto/fixedpoint.h"
#include "../crypto/pki.h"
#include "../fed/plan_secagg.h"
#include "harness.h"

#define N 3      /* sites */
#define DIM 1000 /* words of each input */
#define STUDY "secagg-tls"
#define ROUND 4

static const char *const ID[N + 1] = {"", "hospital-1", "hospital-2", "hospital-3"};

typedef struct {
    char ca[512]; /* the consortium CA's certificate file */
    fl_cert_signer *signer[N + 1];
    fl_cert_signer *rogue; /* a rogue CA's certificate and key for hospital-2 */
    fl_plan_privacy pv;
    double scale;
    fl_sa_site site[N + 1];
    Fedlung__V1__SecAggAdvert adv[N + 1];   /* what each site sent (views into site[v]) */
    Fedlung__V1__SecAggAdvert relay[N + 1]; /* what the server relays, client_id filled in */
    Fedlung__V1__SecAggAdvert *relayp[N];
} fed;

/* A task of round ROUND for site `index` with the round's parameters. */
static void task_init(const fed *F, Fedlung__V1__Task *t, Fedlung__V1__SecAggParams *p,
                      uint32_t index, Fedlung__V1__TaskKind kind) {
    fedlung__v1__task__init(t);
    fedlung__v1__sec_agg_params__init(p);
    p->index = index;
    p->n = N;
    p->threshold = fl_secagg_default_t(N);
    p->dim = DIM;
    p->cipher = FEDLUNG__V1__SEC_AGG_CIPHER__SECAGG_CIPHER_AES256_CTR;
    p->fixed_scale = F->scale;
    t->study_id = STUDY;
    t->round = ROUND;
    t->kind = kind;
    t->secagg = p;
}

static fl_status advertise(fed *F, fl_sa_site *site, uint32_t v, const char *id,
                           const fl_cert_signer *signer, Fedlung__V1__SecAggAdvert *out,
                           fl_err *err) {
    Fedlung__V1__Task t;
    Fedlung__V1__SecAggParams p;
    task_init(F, &t, &p, v, FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_ADVERTISE);
    return fl_sa_site_advertise(site, &F->pv, STUDY, id, signer, F->ca, &t, out, err);
}

/* Step 0 at every site; the relayed list as an honest server makes it. */
static int advertise_all(fed *F) {
    fl_err err = {{0}};
    for (uint32_t v = 1; v <= N; v++) {
        fl_sa_site_reset(&F->site[v]);
        fl_status st = advertise(F, &F->site[v], v, ID[v], F->signer[v], &F->adv[v], &err);
        CHECK_OK(st, &err);
        if (st != FL_OK) return 0;
        F->relay[v] = F->adv[v];
        F->relay[v].client_id = (char *)ID[v]; /* the server's TLS view of the sender */
        F->relayp[v - 1] = &F->relay[v];
    }
    return 1;
}

/* Step 1 at site v with the relayed list. */
static fl_status share(fed *F, uint32_t v, Fedlung__V1__SecAggShares *out, fl_err *err) {
    Fedlung__V1__Task t;
    Fedlung__V1__SecAggParams p;
    task_init(F, &t, &p, v, FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_SHARE);
    t.n_secagg_adverts = N;
    t.secagg_adverts = F->relayp;
    return fl_sa_site_share(&F->site[v], STUDY, &t, out, err);
}

static fl_secagg_advert advert_of(const Fedlung__V1__SecAggAdvert *m) {
    fl_secagg_advert a;
    memset(&a, 0, sizeof a);
    a.index = m->index;
    snprintf(a.id, sizeof a.id, "%s", m->client_id);
    memcpy(a.c_pk, m->c_pk.data, FL_X25519_LEN);
    memcpy(a.s_pk, m->s_pk.data, FL_X25519_LEN);
    a.sig_len = m->signature.len;
    memcpy(a.sig, m->signature.data, a.sig_len);
    return a;
}

/* A whole round through the handlers; the decoded sum against the plain one. */
static void test_round(fed *F) {
    fl_err err = {{0}};
    fl_secagg_params sp = {.study = STUDY, .round = ROUND, .n = N, .dim = DIM};
    fl_secagg_server *srv = NULL;
    float *x = malloc((size_t)N * DIM * sizeof *x), *vec = malloc(DIM * sizeof *vec);
    float *sum = malloc(DIM * sizeof *sum), *got = malloc(DIM * sizeof *got);
    fl_secagg_share_ct *cts = calloc(FL_SECAGG_MAX_CLIENTS, sizeof *cts);
    Fedlung__V1__SecAggShare *sh = calloc(N, sizeof *sh), **shp = calloc(N, sizeof *shp);
    fl_secagg_unmask_reply *rep = calloc(1, sizeof *rep);
    CHECK(x && vec && sum && got && cts && sh && shp && rep);
    if (!x || !vec || !sum || !got || !cts || !sh || !shp || !rep || !advertise_all(F)) goto done;
    CHECK_OK(fl_secagg_server_new(&sp, NULL, &srv, &err), &err);
    if (!srv) goto done;
    for (uint32_t v = 1; v <= N; v++) {
        fl_secagg_advert a = advert_of(&F->relay[v]);
        CHECK_OK(fl_secagg_server_add_advert(srv, &a, &err), &err);
    }
    const fl_secagg_advert *u1;
    size_t n_u1;
    CHECK_OK(fl_secagg_server_close_adverts(srv, &u1, &n_u1, &err), &err);
    for (uint32_t v = 1; v <= N; v++) {
        Fedlung__V1__SecAggShares out;
        CHECK_OK(share(F, v, &out, &err), &err);
        CHECK_EQ_INT(out.n_shares, N - 1);
        for (size_t i = 0; i < out.n_shares && i < N; i++) {
            cts[i].from = out.shares[i]->from;
            cts[i].to = out.shares[i]->to;
            memcpy(cts[i].ct, out.shares[i]->ciphertext.data, FL_SECAGG_SHARE_CT_LEN);
        }
        CHECK_OK(fl_secagg_server_add_shares(srv, v, cts, out.n_shares, &err), &err);
    }
    CHECK_OK(fl_secagg_server_close_shares(srv, &err), &err);
    memset(sum, 0, DIM * sizeof *sum);
    for (uint32_t v = 1; v <= N; v++) { /* TRAIN: the shares for v, then its masked input */
        size_t n = 0;
        CHECK_OK(fl_secagg_server_shares_for(srv, v, cts, FL_SECAGG_MAX_CLIENTS, &n, &err), &err);
        for (size_t i = 0; i < n && i < N; i++) {
            fedlung__v1__sec_agg_share__init(&sh[i]);
            sh[i].from = cts[i].from;
            sh[i].to = cts[i].to;
            sh[i].ciphertext = (ProtobufCBinaryData){FL_SECAGG_SHARE_CT_LEN, cts[i].ct};
            shp[i] = &sh[i];
        }
        Fedlung__V1__Task t;
        Fedlung__V1__SecAggParams p;
        task_init(F, &t, &p, v, FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN);
        t.n_secagg_shares = n;
        t.secagg_shares = shp;
        CHECK_OK(fl_sa_site_receive(&F->site[v], &t, &err), &err);
        for (size_t i = 0; i < DIM; i++) {
            x[(v - 1) * DIM + i] = (float)(0.01 * sin(0.37 * (double)(i + 1) * v));
            sum[i] += x[(v - 1) * DIM + i];
        }
        memcpy(vec, x + (v - 1) * DIM, DIM * sizeof *vec);
        CHECK_OK(fl_sa_site_mask(&F->site[v], vec, DIM, &err), &err);
        CHECK(memcmp(vec, x + (v - 1) * DIM, DIM * sizeof *vec) != 0); /* masked in place */
        fl_secagg_masked m = {.from = v, .offset = 0, .count = DIM, .data = vec};
        CHECK_OK(fl_secagg_server_add_masked(srv, &m, &err), &err);
    }
    fl_secagg_unmask_request req;
    CHECK_OK(fl_secagg_server_close_masked(srv, &req, &err), &err);
    CHECK_EQ_INT(req.n_survivors, N);
    Fedlung__V1__SecAggUnmaskRequest ur = FEDLUNG__V1__SEC_AGG_UNMASK_REQUEST__INIT;
    ur.n_survivors = req.n_survivors;
    ur.survivors = req.survivors;
    for (uint32_t v = 1; v <= N; v++) {
        Fedlung__V1__Task t;
        Fedlung__V1__SecAggParams p;
        Fedlung__V1__SecAggUnmaskReply out;
        task_init(F, &t, &p, v, FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_UNMASK);
        t.secagg_unmask = &ur;
        CHECK_OK(fl_sa_site_unmask(&F->site[v], STUDY, &t, &out, &err), &err);
        memset(rep, 0, sizeof *rep);
        rep->from = out.index;
        rep->n_b = (uint32_t)out.n_b_peer;
        rep->n_sk = (uint32_t)out.n_sk_peer;
        for (size_t i = 0; i < out.n_b_peer && i < N; i++) {
            rep->b_peer[i] = out.b_peer[i];
            memcpy(rep->b_share[i], out.b_share[i].data, FL_SHAMIR_SECRET_LEN);
        }
        CHECK_OK(fl_secagg_server_add_unmask(srv, rep, &err), &err);
    }
    const uint32_t *words;
    CHECK_OK(fl_secagg_server_finish(srv, &words, &err), &err);
    if (words) {
        CHECK_OK(fl_fixed_decode_sum(words, DIM, F->scale, got, &err), &err);
        double worst = 0, sq = 0; /* each input rounds by at most 1 / (2 scale) per word */
        for (size_t i = 0; i < DIM; i++) {
            worst = fmax(worst, fabs((double)got[i] - sum[i]));
            sq += ((double)got[i] - sum[i]) * ((double)got[i] - sum[i]);
        }
        uint64_t num = 0, den = 1; /* DP-FedAvg: N sites' discrete Gaussians in the sum */
        CHECK_OK(fl_plan_sa_noise(&F->pv, F->scale, &num, &den, &err), &err);
        double noise = sqrt(N * (double)num / (double)den) / F->scale;
        CHECK(worst <= N / (2 * F->scale) + 6 * noise + 1e-7);
        if (noise > 0) CHECK_CLOSE(sqrt(sq / DIM), noise, 0.1, 0);
    }
done:
    fl_secagg_server_free(srv);
    free(x), free(vec), free(sum), free(got), free(cts), free(sh), free(shp), free(rep);
}

/* After a tampered relay, sites 1 and 3 refuse site 2's advert with a sentence naming it (as
 * the relay names it: id) and containing why; their round is over. Site 2 is not asked (it
 * does not check itself). */
static void expect_refused(fed *F, const char *id, const char *why, int line) {
    for (uint32_t v = 1; v <= N; v += 2) {
        fl_err err = {{0}};
        Fedlung__V1__SecAggShares out;
        fl_status st = share(F, v, &out, &err);
        fl_test_checks++;
        if (st == FL_OK) {
            fl_test_fail_at(__FILE__, line, "site %u accepted a tampered advert (%s)", v, why);
            continue;
        }
        char head[160];
        snprintf(head, sizeof head,
                 "round 4: secure aggregation: refused the key advert of %s (site 2): its "
                 "certificate: ",
                 id);
        if (!strstr(err.msg, head) || !strstr(err.msg, why))
            fl_test_fail_at(__FILE__, line, "site %u: the refusal lacks \"%s\": %s", v, why,
                            err.msg);
        Fedlung__V1__Task t;
        Fedlung__V1__SecAggParams p;
        task_init(F, &t, &p, v, FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN);
        CHECK(fl_sa_site_receive(&F->site[v], &t, &err) != FL_OK); /* its part is over */
    }
}

static void test_tampered(fed *F) {
    fl_err err = {{0}};
    /* hospital-2's advert relayed with hospital-3's certificate */
    if (!advertise_all(F)) return;
    F->relay[2].certificate = F->relay[3].certificate;
    expect_refused(F, "hospital-2", "its CN is hospital-3, not hospital-2", __LINE__);

    /* the server's own keys for hospital-2, signed under a rogue CA's hospital-2 certificate */
    fl_sa_site mitm;
    memset(&mitm, 0, sizeof mitm);
    Fedlung__V1__SecAggAdvert fake;
    if (!advertise_all(F)) return;
    CHECK_OK(advertise(F, &mitm, 2, "hospital-2", F->rogue, &fake, &err), &err);
    F->relay[2] = fake;
    F->relay[2].client_id = "hospital-2";
    expect_refused(F, "hospital-2", "not issued by the CA", __LINE__);

    /* hospital-2's own certificate and signature over the server's mask key */
    if (!advertise_all(F)) return;
    F->relay[2].s_pk = fake.s_pk;
    expect_refused(F, "hospital-2", "the signature does not verify", __LINE__);
    if (!advertise_all(F)) return;
    F->relay[2].c_pk = fake.c_pk;
    expect_refused(F, "hospital-2", "the signature does not verify", __LINE__);

    /* hospital-2 relayed under another name */
    if (!advertise_all(F)) return;
    F->relay[2].client_id = "hospital-9";
    expect_refused(F, "hospital-9", "its CN is hospital-2, not hospital-9", __LINE__);
    fl_sa_site_reset(&mitm);

    /* the untampered list still goes through (the refusals left nothing behind) */
    if (!advertise_all(F)) return;
    Fedlung__V1__SecAggShares out;
    CHECK_OK(share(F, 1, &out, &err), &err);
}

/* DP-FedAvg (n = 3, k = 0): each site's noise is for 3; a request to unmask the sum of 2 is
 * refused, saying why. */
static void test_dp_survivors(fed *F) {
    fl_err err = {{0}};
    if (!advertise_all(F)) return;
    static const uint32_t two[2] = {1, 2};
    Fedlung__V1__SecAggUnmaskRequest ur = FEDLUNG__V1__SEC_AGG_UNMASK_REQUEST__INIT;
    ur.n_survivors = 2;
    ur.survivors = (uint32_t *)two;
    Fedlung__V1__Task t;
    Fedlung__V1__SecAggParams p;
    Fedlung__V1__SecAggUnmaskReply out;
    task_init(F, &t, &p, 1, FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_UNMASK);
    t.secagg_unmask = &ur;
    CHECK(fl_sa_site_unmask(&F->site[1], STUDY, &t, &out, &err) == FL_EINVAL);
    CHECK_MSG(err, "refused to unmask a sum of 2 sites' inputs: the plan's DP-FedAvg noise is for "
                   "at least 3");
}

/* A site whose certificate names another id than the server's view of it does not advertise. */
static void test_own_identity(fed *F) {
    fl_err err = {{0}};
    fl_sa_site s;
    memset(&s, 0, sizeof s);
    Fedlung__V1__SecAggAdvert out;
    CHECK_FAILS(advertise(F, &s, 1, "hospital-1", F->signer[2], &out, &err), err, "hospital-2");
    CHECK_MSG(err, "the server knows it as hospital-1");
    CHECK(s.c == NULL);
    fl_sa_site_reset(&s);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_task_secagg_")) return 1;
    static fed F;
    fl_err err = {{0}};
    char ca_dir[512], k[512], c[512];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", fl_test_dir);
    snprintf(F.ca, sizeof F.ca, "%s/ca/ca.crt", fl_test_dir);
    fl_pki_issue_opts o = {.out_dir = fl_test_path("certs")};
    CHECK_OK(fl_pki_init(ca_dir, NULL, &err), &err);
    for (int v = 1; v <= N; v++) {
        CHECK_OK(fl_pki_issue(ca_dir, ID[v], FL_PKI_CLIENT, &o, &err), &err);
        snprintf(k, sizeof k, "%s/certs/%s.key", fl_test_dir, ID[v]);
        snprintf(c, sizeof c, "%s/certs/%s.crt", fl_test_dir, ID[v]);
        CHECK_OK(fl_cert_signer_load(k, c, &F.signer[v], &err), &err);
    }
    CHECK_OK(fl_pki_init(fl_test_path("rogue"), NULL, &err), &err);
    CHECK_OK(fl_pki_issue(fl_test_path("rogue"), "hospital-2", FL_PKI_CLIENT, NULL, &err), &err);
    snprintf(k, sizeof k, "%s/rogue/hospital-2.key", fl_test_dir);
    snprintf(c, sizeof c, "%s/rogue/hospital-2.crt", fl_test_dir);
    CHECK_OK(fl_cert_signer_load(k, c, &F.rogue, &err), &err);
    F.pv = (fl_plan_privacy){.secagg = 1, .clip_norm = 1.0};
    CHECK_OK(fl_fixed_scale_for(F.pv.clip_norm, N, 1, &F.scale, &err), &err);
    if (fl_test_failures == 0) {
        test_round(&F);
        test_tampered(&F);
        test_own_identity(&F);
    }
    /* the same round under DP-FedAvg: the sum carries the sites' noise; too few survivors */
    F.pv = (fl_plan_privacy){.secagg = 1,
                             .mechanism = FL_DP_FEDAVG,
                             .clip_norm = 1.0,
                             .noise_multiplier = 0.5,
                             .dp_clients = N,
                             .delta = 1e-5};
    CHECK_OK(fl_plan_sa_scale(&F.pv, N, &F.scale, &err), &err);
    if (fl_test_failures == 0) {
        test_round(&F);
        test_dp_survivors(&F);
    }
    for (int v = 0; v <= N; v++) {
        fl_sa_site_reset(&F.site[v]);
        fl_cert_signer_free(F.signer[v]);
    }
    fl_cert_signer_free(F.rogue);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_task_secagg");
}
