/* test_secagg.c - crypto/secagg: whole rounds of n = 4, 5 and 7 clients with no dropout, one,
 * and n - t, at each step where a client can drop, whose sum equals the plain sum exactly and
 * decodes to the float sum; the threshold (fewer than t at each step aborts with the sentence,
 * t - 1 shares rebuild nothing); masked inputs that look uniform and uncorrelated with the
 * input; refused forgeries (advert signatures, share ciphertexts, an unmask request for both
 * shares of a client); the HKDF known answers; and the server's input type. `test_secagg
 * --bench` times a round of 10 clients over 60M words instead; it is not part of ctest. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/rng.h"
#include "../crypto/fixedpoint.h"
#include "../crypto/hash.h"
#include "../crypto/secagg.h"
#include "../crypto/sign.h"
#include "harness.h"

#define MAXN 12
#define STUDY "nsclc-fl-2026"

/* The server's only way in for masked data is fl_secagg_masked, a read-only view it adds into
 * its sum: no API hands it an individual vector to keep, and none gives one back. */
_Static_assert(_Generic(&fl_secagg_server_add_masked,
                        fl_status (*)(fl_secagg_server *, const fl_secagg_masked *, fl_err *) : 1,
                        default : 0),
               "the server takes masked inputs only as fl_secagg_masked");
_Static_assert(_Generic(((fl_secagg_masked *)0)->data, const void * : 1, default : 0),
               "a masked view is read-only");
_Static_assert(_Generic(&fl_secagg_server_finish,
                        fl_status (*)(fl_secagg_server *, const uint32_t **, fl_err *) : 1,
                        default : 0),
               "the server hands out only the sum");

/* ------------------------------------------------------------------------------------------ */
/* identities and randomness                                                                   */

/* The certificates of the study: client i's Ed25519 key and id. Ids run backwards (client 1 has
 * the largest), so id order and index order disagree, as they may in a real round. */
typedef struct {
    fl_sign_key *key[MAXN + 1];
    char id[MAXN + 1][FL_SECAGG_ID_MAX + 1];
} directory;
static directory dir;

/* One party's hooks context: who it is, and its seeded random bytes. */
typedef struct {
    uint32_t self;
    fl_rng rng;
    int calls, fail_at; /* the random source fails at call fail_at (0: never) */
} party;

static fl_status sign_cb(void *ctx, const uint8_t *msg, size_t n, uint8_t *sig, size_t *len,
                         fl_err *err) {
    const party *p = ctx;
    if (*len < FL_ED25519_SIG_LEN) return fl_fail(err, FL_EINVAL, "no room for a signature");
    *len = FL_ED25519_SIG_LEN;
    return fl_sign(dir.key[p->self], msg, n, sig, err);
}

/* Looks the signer up by id (the certificate's CN), as the federation would. */
static int verify_cb(void *ctx, uint32_t index, const char *id, const uint8_t *msg, size_t n,
                     const uint8_t *sig, size_t len) {
    for (uint32_t i = 1; i <= MAXN; i++)
        if (!strcmp(dir.id[i], id))
            return i == index && len == FL_ED25519_SIG_LEN &&
                   fl_sign_verify(dir.key[i], msg, n, sig);
    return 0;
}

static fl_status rand_cb(void *ctx, uint8_t *out, size_t n) {
    party *p = ctx;
    if (++p->calls == p->fail_at) return FL_EBACKEND;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(fl_rng_u64(&p->rng) >> 56);
    return FL_OK;
}

static void directory_init(void) {
    fl_err err = {{0}};
    for (uint32_t i = 1; i <= MAXN; i++) {
        uint8_t seed[FL_ED25519_SEED_LEN];
        for (int b = 0; b < FL_ED25519_SEED_LEN; b++) seed[b] = (uint8_t)(i * 37 + b);
        CHECK_OK(fl_sign_key_from_seed(seed, &dir.key[i], &err), &err);
        snprintf(dir.id[i], sizeof dir.id[i], "hospital-%02u.example.org", 50 - i);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* a round                                                                                     */

/* Where a client leaves the round. */
enum {
    STAY = 0,       /* to the end */
    NO_ADVERT,      /* never advertises */
    AFTER_ADVERT,   /* advertises, sends no shares (U1 only) */
    AFTER_SHARES,   /* shares its keys, sends no masked input (U2 \ U3) */
    AFTER_MASKED,   /* sends its masked input, does not answer Unmask (U3 \ U5) */
    PARTIAL_MASKED, /* sends half of its masked input */
};

typedef struct {
    fl_secagg_params p;
    uint32_t t;
    party pt[MAXN + 1], server_pt;
    fl_secagg_hooks h[MAXN + 1], server_h;
    fl_secagg_client *c[MAXN + 1];
    fl_secagg_server *srv;
    const fl_secagg_advert *u1;
    size_t n_u1;
} round_ctx;

static int round_open(round_ctx *r, uint32_t n, uint32_t t, size_t dim, fl_stream_cipher cipher,
                      int csprng, uint64_t seed) {
    fl_err err = {{0}};
    memset(r, 0, sizeof *r);
    r->p = (fl_secagg_params){
        .study = STUDY, .round = 42, .n = n, .t = t, .dim = dim, .cipher = cipher};
    r->t = t ? t : fl_secagg_default_t(n);
    r->server_h = (fl_secagg_hooks){.verify = verify_cb, .ctx = &r->server_pt};
    CHECK_OK(fl_secagg_server_new(&r->p, &r->server_h, &r->srv, &err), &err);
    for (uint32_t i = 1; i <= n; i++) {
        r->pt[i].self = i;
        fl_rng_seed(&r->pt[i].rng, fl_mix64(seed, i));
        r->h[i] = (fl_secagg_hooks){.sign = sign_cb,
                                    .verify = verify_cb,
                                    .ctx = &r->pt[i],
                                    .rand = csprng ? NULL : rand_cb,
                                    .rand_ctx = &r->pt[i]};
        CHECK_OK(fl_secagg_client_new(&r->p, i, dir.id[i], &r->h[i], &r->c[i], &err), &err);
    }
    return r->srv != NULL;
}

static void round_free(round_ctx *r) {
    for (uint32_t i = 1; i <= MAXN; i++) fl_secagg_client_free(r->c[i]);
    fl_secagg_server_free(r->srv);
    memset(r, 0, sizeof *r);
}

/* Step 0 for the clients that advertise; returns close_adverts' status (err: its sentence). */
static fl_status step_adverts(round_ctx *r, const int *drop, fl_err *err) {
    for (uint32_t i = 1; i <= r->p.n; i++) {
        if (drop[i] == NO_ADVERT) continue;
        fl_secagg_advert a;
        CHECK_OK(fl_secagg_client_advertise(r->c[i], &a, err), err);
        CHECK_OK(fl_secagg_server_add_advert(r->srv, &a, err), err);
    }
    return fl_secagg_server_close_adverts(r->srv, &r->u1, &r->n_u1, err);
}

/* Step 1 for the clients that share their keys. */
static fl_status step_shares(round_ctx *r, const int *drop, fl_err *err) {
    static fl_secagg_share_ct cts[MAXN];
    for (uint32_t i = 1; i <= r->p.n; i++) {
        if (drop[i] == NO_ADVERT || drop[i] == AFTER_ADVERT) continue;
        size_t k = 0;
        CHECK_OK(fl_secagg_client_share_keys(r->c[i], r->u1, r->n_u1, cts, MAXN, &k, err), err);
        CHECK_EQ_INT(k, r->n_u1 - 1);
        CHECK_OK(fl_secagg_server_add_shares(r->srv, i, cts, k, err), err);
    }
    return fl_secagg_server_close_shares(r->srv, err);
}

/* Client i takes its share ciphertexts from the server. */
static void receive(round_ctx *r, uint32_t i) {
    static fl_secagg_share_ct cts[MAXN];
    fl_err err = {{0}};
    size_t k = 0;
    CHECK_OK(fl_secagg_server_shares_for(r->srv, i, cts, MAXN, &k, &err), &err);
    CHECK_OK(fl_secagg_client_receive_shares(r->c[i], cts, k, &err), &err);
}

/* Client i's input: uniform floats in [-1, 1], a few at the clip. */
static void make_input(fl_rng *g, float *x, size_t dim) {
    for (size_t j = 0; j < dim; j++) x[j] = (float)(2 * fl_rng_uniform(g) - 1);
    x[0] = 1, x[dim - 1] = -1;
}

typedef struct {
    uint32_t n, t;
    size_t dim, chunk; /* chunk: words per fl_secagg_client_mask_floats call */
    fl_stream_cipher cipher;
    int csprng;
    int drop[MAXN + 1];
    const char *expect_fail; /* NULL: the round must succeed; else a text of the abort */
} scenario;

/* Runs sc from start to end and checks the sum (or the abort it expects). */
static void run_round(const scenario *sc, const char *what) {
    round_ctx r;
    fl_err err = {{0}};
    const int *drop = sc->drop;
    uint32_t n = sc->n;
    size_t dim = sc->dim, chunk = sc->chunk ? sc->chunk : dim;
    if (!round_open(&r, n, sc->t, dim, sc->cipher, sc->csprng, fl_mix64(n, dim + sc->t))) {
        round_free(&r);
        return;
    }
    double scale;
    CHECK_OK(fl_fixed_scale_for(1.0, n, 0, &scale, &err), &err);
    float *x = malloc(dim * sizeof *x), *got = malloc(dim * sizeof *got);
    uint32_t *y = malloc(dim * sizeof *y), *enc = malloc(dim * sizeof *enc);
    uint32_t *want = calloc(dim, sizeof *want);
    double *fsum = calloc(dim, sizeof *fsum);
    fl_rng g;
    fl_rng_seed(&g, 1234 + n);
    fl_secagg_unmask_reply *reply = malloc(sizeof *reply);
    fl_secagg_unmask_request req;
    const uint32_t *sum = NULL;
    uint32_t n_surv = 0, n_drop = 0;
    fl_status st = step_adverts(&r, drop, &err);
    if (st == FL_OK) st = step_shares(&r, drop, &err);
    for (uint32_t i = 1; st == FL_OK && i <= n; i++) {
        if (drop[i] != STAY && drop[i] != AFTER_MASKED && drop[i] != PARTIAL_MASKED) {
            n_drop += drop[i] == AFTER_SHARES;
            continue;
        }
        receive(&r, i);
        make_input(&g, x, dim);
        CHECK_OK(fl_fixed_encode(x, dim, scale, enc, &err), &err);
        size_t stop = drop[i] == PARTIAL_MASKED ? dim / 2 : dim;
        for (size_t off = 0; off < dim; off += chunk) {
            size_t m = dim - off < chunk ? dim - off : chunk;
            fl_secagg_masked view;
            CHECK_OK(
                fl_secagg_client_mask_floats(r.c[i], off, x + off, m, scale, y + off, &view, &err),
                &err);
            CHECK(view.from == i && view.offset == off && view.count == m && view.data == y + off);
            /* The server takes the chunk in two pieces of its own, up to stop. */
            for (size_t a = off, half = off + m / 2; a < off + m && a < stop;) {
                size_t b = a < half ? half : off + m;
                b = b < stop ? b : stop;
                fl_secagg_masked piece = {.from = i, .offset = a, .count = b - a, .data = y + a};
                CHECK_OK(fl_secagg_server_add_masked(r.srv, &piece, &err), &err);
                a = b;
            }
        }
        CHECK_EQ_INT(fl_secagg_server_received(r.srv, i), stop);
        memset(y, 0xa5, dim * sizeof *y); /* the server must not have kept the view */
        if (drop[i] == PARTIAL_MASKED) continue;
        n_surv++;
        for (size_t j = 0; j < dim; j++) want[j] += enc[j], fsum[j] += (double)x[j];
    }
    if (st == FL_OK) st = fl_secagg_server_close_masked(r.srv, &req, &err);
    if (st == FL_OK) {
        CHECK_EQ_INT(req.n_survivors, n_surv);
        CHECK_EQ_INT(req.n_dropped, n_drop);
        for (uint32_t k = 0; k < req.n_survivors; k++) {
            uint32_t i = req.survivors[k];
            CHECK(drop[i] == STAY || drop[i] == AFTER_MASKED);
            if (drop[i] == AFTER_MASKED) continue;
            CHECK_OK(fl_secagg_client_unmask(r.c[i], &req, reply, &err), &err);
            CHECK_OK(fl_secagg_server_add_unmask(r.srv, reply, &err), &err);
        }
        st = fl_secagg_server_finish(r.srv, &sum, &err);
    }
    if (sc->expect_fail) {
        fl_test_checks++;
        if (st == FL_OK)
            fl_test_fail_at(__FILE__, __LINE__, "%s: the round succeeded", what);
        else if (!strstr(err.msg, sc->expect_fail))
            fl_test_fail_at(__FILE__, __LINE__, "%s: \"%s\" lacks \"%s\"", what, err.msg,
                            sc->expect_fail);
        /* Aborted: every later call says so. */
        CHECK(fl_secagg_server_finish(r.srv, &sum, &err) != FL_OK && sum == NULL);
        CHECK_MSG(err, "aborted");
    } else if (st != FL_OK) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: %s", what, err.msg);
    } else {
        size_t wrong = 0, first = dim;
        for (size_t j = 0; j < dim; j++)
            if (sum[j] != want[j]) wrong++, first = first < j ? first : j;
        fl_test_checks++;
        if (wrong)
            fl_test_fail_at(__FILE__, __LINE__,
                            "%s: %zu of %zu words differ, first [%zu]: %u vs %u", what, wrong, dim,
                            first, sum[first], want[first]);
        CHECK_OK(fl_fixed_decode_sum(sum, dim, scale, got, &err), &err);
        double tol = n / (2 * scale) + n * 0x1p-23, worst = 0;
        for (size_t j = 0; j < dim; j++) worst = fmax(worst, fabs(got[j] - fsum[j]));
        fl_test_checks++;
        if (worst > tol)
            fl_test_fail_at(__FILE__, __LINE__, "%s: decoded sum off by %g > %g", what, worst, tol);
        const uint32_t *again = NULL;
        CHECK_OK(fl_secagg_server_finish(r.srv, &again, &err), &err);
        CHECK(again == sum);
    }
    free(x), free(got), free(y), free(enc), free(want), free(fsum), free(reply);
    round_free(&r);
}

/* n = 4, 5, 7 (t = 3, 4, 5): no dropout, one and n - t at each step where a client can drop. */
static void test_rounds(void) {
    static const uint32_t ns[] = {4, 5, 7};
    static const int where[] = {AFTER_MASKED, AFTER_SHARES, AFTER_ADVERT, NO_ADVERT};
    int rounds = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        uint32_t n = ns[a], t = fl_secagg_default_t(n);
        scenario sc = {.n = n, .dim = 1000 + n, .chunk = 97 * n, .cipher = FL_STREAM_AES256_CTR};
        char what[96];
        snprintf(what, sizeof what, "n = %u, no dropout", n);
        run_round(&sc, what), rounds++;
        for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
            uint32_t counts[2] = {1, n - t};
            for (int k = 0; k < 2; k++) {
                scenario d = sc;
                /* Drop the clients with the largest indices, then again the smallest. */
                for (int side = 0; side < 2; side++) {
                    memset(d.drop, 0, sizeof d.drop);
                    for (uint32_t j = 0; j < counts[k]; j++)
                        d.drop[side ? 1 + j : n - j] = where[w];
                    snprintf(what, sizeof what, "n = %u, %u dropped (stage %d, side %d)", n,
                             counts[k], where[w], side);
                    run_round(&d, what), rounds++;
                }
            }
        }
    }
    /* n - t dropouts spread over the steps: n = 7 (t = 5) and n = 10 (t = 7). */
    for (uint32_t n = 7; n <= 10; n += 3) {
        static const int kind[] = {AFTER_SHARES, AFTER_MASKED, AFTER_ADVERT};
        uint32_t t = fl_secagg_default_t(n), pos[] = {2, n, 4};
        scenario m = {.n = n, .dim = 999, .chunk = 400, .cipher = FL_STREAM_AES256_CTR};
        for (uint32_t j = 0; j < n - t; j++) m.drop[pos[j]] = kind[j];
        char what[64];
        snprintf(what, sizeof what, "n = %u, %u dropped at different steps", n, n - t);
        run_round(&m, what), rounds++;
    }
    /* ChaCha20; the CSPRNG instead of a seeded source; a vector long enough for the adders to
     * split it between threads, masked in uneven chunks; a non-default threshold; n = 2. */
    scenario c = {.n = 5, .dim = 3001, .chunk = 1000, .cipher = FL_STREAM_CHACHA20};
    c.drop[3] = AFTER_SHARES;
    run_round(&c, "ChaCha20, one dropped after ShareKeys"), rounds++;
    scenario rnd = {.n = 4, .dim = 777, .cipher = FL_STREAM_AES256_CTR, .csprng = 1};
    rnd.drop[1] = AFTER_SHARES;
    run_round(&rnd, "CSPRNG, one dropped after ShareKeys"), rounds++;
    scenario big = {.n = 4, .dim = 200003, .chunk = 70001, .cipher = FL_STREAM_AES256_CTR};
    big.drop[4] = AFTER_SHARES;
    run_round(&big, "200003 words in chunks of 70001"), rounds++;
    scenario lo = {.n = 7, .t = 4, .dim = 500, .cipher = FL_STREAM_AES256_CTR};
    lo.drop[1] = lo.drop[2] = AFTER_SHARES, lo.drop[3] = AFTER_MASKED;
    run_round(&lo, "n = 7, t = 4, 3 dropped"), rounds++;
    scenario two = {.n = 2, .dim = 10, .cipher = FL_STREAM_AES256_CTR};
    run_round(&two, "n = 2"), rounds++;
    printf("test_secagg: %d rounds with their exact sums\n", rounds);
}

/* ------------------------------------------------------------------------------------------ */
/* the threshold                                                                               */

/* Fewer than t at each step: the round aborts with the sentence, and says so afterwards. */
static void test_too_few(void) {
    /* n, up to 3 (client, where it leaves), the abort's text ("t = ..." unless partial) */
    static const struct {
        uint32_t n, drop[3][2];
        const char *expect;
    } cases[] = {
        {4, {{1, NO_ADVERT}, {2, NO_ADVERT}}, "3 of 4 clients, 2 remain after AdvertiseKeys"},
        {4, {{1, AFTER_ADVERT}, {2, AFTER_ADVERT}}, "3 of 4 clients, 2 remain after ShareKeys"},
        {4, {{3, AFTER_SHARES}, {4, AFTER_SHARES}}, "3 of 4 clients, 2 remain after MaskedInput"},
        {4, {{1, AFTER_MASKED}, {4, AFTER_MASKED}}, "3 of 4 clients, 2 remain after Unmask"},
        {4, {{2, PARTIAL_MASKED}}, "client 2 (hospital-48.example.org) sent 50 of 100 words"},
        {7, {{1, AFTER_SHARES}, {2, AFTER_SHARES}, {3, AFTER_MASKED}}, "4 remain after Unmask"},
    };
    const char *msg = "secure aggregation needs t = 3 of 4 clients, 2 remain";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        scenario sc = {.n = cases[i].n, .dim = 100, .expect_fail = cases[i].expect};
        sc.cipher = sc.n == 7 ? FL_STREAM_CHACHA20 : FL_STREAM_AES256_CTR;
        for (int j = 0; j < 3; j++)
            if (cases[i].drop[j][0]) sc.drop[cases[i].drop[j][0]] = (int)cases[i].drop[j][1];
        run_round(&sc, cases[i].expect);
    }

    /* A client given fewer than t adverts refuses before sharing anything. */
    round_ctx r;
    fl_err err = {{0}};
    round_open(&r, 4, 0, 10, FL_STREAM_AES256_CTR, 0, 9);
    fl_secagg_advert ad[4];
    for (uint32_t i = 1; i <= 4; i++)
        CHECK_OK(fl_secagg_client_advertise(r.c[i], &ad[i - 1], &err), &err);
    fl_secagg_share_ct cts[4];
    size_t k = 7;
    CHECK(fl_secagg_client_share_keys(r.c[1], ad, 2, cts, 4, &k, &err) == FL_EINVAL);
    CHECK_MSG(err, msg);
    CHECK_EQ_INT(k, 0);
    CHECK(fl_secagg_client_share_keys(r.c[1], ad, 4, cts, 4, &k, &err) != FL_OK);
    CHECK_MSG(err, "aborted");
    round_free(&r);
}

/* t - 1 shares rebuild nothing: the dropped client's mask key from t shares matches its
 * advertised public key; from t - 1 (any of them) it does not. */
static void test_shamir_threshold(void) {
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    uint32_t n = 5, gone = 2;
    drop[gone] = AFTER_SHARES;
    round_open(&r, n, 0, 64, FL_STREAM_AES256_CTR, 0, 77);
    CHECK_OK(step_adverts(&r, drop, &err), &err);
    CHECK_OK(step_shares(&r, drop, &err), &err);
    uint32_t words[64] = {0};
    for (uint32_t i = 1; i <= n; i++) {
        if (i == gone) continue;
        receive(&r, i);
        fl_secagg_masked v;
        CHECK_OK(fl_secagg_client_mask(r.c[i], 0, words, 64, &v, &err), &err);
        CHECK_OK(fl_secagg_server_add_masked(r.srv, &v, &err), &err);
    }
    fl_secagg_unmask_request req;
    CHECK_OK(fl_secagg_server_close_masked(r.srv, &req, &err), &err);
    CHECK_EQ_INT(req.n_dropped, 1);
    static fl_secagg_unmask_reply rep[MAXN];
    uint8_t shares[MAXN][FL_SHAMIR_SECRET_LEN], secret[32], pk[32];
    uint32_t xs[MAXN];
    for (uint32_t k = 0; k < req.n_survivors; k++) {
        CHECK_OK(fl_secagg_client_unmask(r.c[req.survivors[k]], &req, &rep[k], &err), &err);
        CHECK_EQ_INT(rep[k].n_sk, 1);
        CHECK_EQ_INT(rep[k].sk_peer[0], gone);
        memcpy(shares[k], rep[k].sk_share[0], 32);
        xs[k] = rep[k].from;
    }
    const fl_secagg_advert *ad = NULL;
    for (size_t i = 0; i < r.n_u1; i++)
        if (r.u1[i].index == gone) ad = &r.u1[i];
    uint32_t t = r.t;
    for (uint32_t skip = 0; ad && skip <= req.n_survivors; skip++) {
        /* skip = n_survivors: the first t shares; otherwise t - 1 of them without share skip */
        uint8_t pick[MAXN][FL_SHAMIR_SECRET_LEN];
        uint32_t px[MAXN], k = 0;
        for (uint32_t j = 0; j < req.n_survivors && k < t; j++) {
            if (j == skip) continue;
            memcpy(pick[k], shares[j], 32);
            px[k++] = xs[j];
        }
        if (skip < req.n_survivors) k = t - 1;
        CHECK_OK(fl_shamir_combine((const uint8_t(*)[32])pick, px, k, secret, &err), &err);
        CHECK_OK(fl_x25519_public(secret, pk, &err), &err);
        CHECK((memcmp(pk, ad->s_pk, 32) == 0) == (k == t));
    }
    /* The server with t - 1 answers refuses to finish. */
    for (uint32_t k = 0; k + 1 < t; k++)
        CHECK_OK(fl_secagg_server_add_unmask(r.srv, &rep[k], &err), &err);
    const uint32_t *sum = NULL;
    CHECK(fl_secagg_server_finish(r.srv, &sum, &err) == FL_EINVAL && !sum);
    CHECK_MSG(err, "needs t = 4 of 5 clients, 3 remain after Unmask");
    round_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* what a masked input reveals                                                                 */

/* Pearson's chi-square of the byte histogram of b[0..n) against the uniform one. */
static double chi_square(const void *b, size_t n) {
    double hist[256] = {0}, chi = 0, e = n / 256.0;
    for (size_t j = 0; j < n; j++) hist[((const uint8_t *)b)[j]]++;
    for (int k = 0; k < 256; k++) chi += (hist[k] - e) * (hist[k] - e) / e;
    return chi;
}

/* A client's masked input, for an input full of structure (small values, runs of zeros, a
 * ramp), has uniform bytes (chi-square over 256 bins) and no correlation with the input. */
static void test_masked_statistics(void) {
    enum { DIM = 1 << 18 };
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    round_open(&r, 4, 0, DIM, FL_STREAM_AES256_CTR, 0, 5);
    CHECK_OK(step_adverts(&r, drop, &err), &err);
    CHECK_OK(step_shares(&r, drop, &err), &err);
    receive(&r, 1);
    uint32_t *x = malloc(DIM * sizeof *x), *y = malloc(DIM * sizeof *y);
    for (size_t j = 0; j < DIM; j++)
        x[j] = j % 3 == 0 ? 0 : (uint32_t)(int32_t)((int)(j % 2001) - 1000);
    memcpy(y, x, DIM * sizeof *y);
    fl_secagg_masked v;
    CHECK_OK(fl_secagg_client_mask(r.c[1], 0, y, DIM, &v, &err), &err);
    /* 255 degrees of freedom: mean 255, sd 22.6; 400 is beyond 6 sd (p < 1e-9). The input's
     * own bytes are far from uniform, for contrast. */
    double chi = chi_square(v.data, 4 * (size_t)DIM), chi_x = chi_square(x, 4 * (size_t)DIM);
    printf("test_secagg: masked bytes chi-square %.1f (255 dof), the input's %.3g\n", chi, chi_x);
    CHECK(chi < 400);
    CHECK(chi_x > 1e5);
    /* Pearson correlation of x and y as signed 32-bit numbers: |r| < 5 / sqrt(DIM). */
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t j = 0; j < DIM; j++) {
        double a = (int32_t)x[j], c = (int32_t)y[j];
        sx += a, sy += c, sxx += a * a, syy += c * c, sxy += a * c;
    }
    double cov = sxy / DIM - sx / DIM * sy / DIM;
    double corr = cov / sqrt((sxx / DIM - sx / DIM * sx / DIM) * (syy / DIM - sy / DIM * sy / DIM));
    printf("test_secagg: correlation of input and masked input %.2e (bound %.2e)\n", corr,
           5 / sqrt(DIM));
    CHECK(fabs(corr) < 5 / sqrt(DIM));
    /* Bit by bit too: each of the 32 bit positions is set in about half the words. */
    for (int bit = 0; bit < 32; bit++) {
        size_t ones = 0;
        for (size_t j = 0; j < DIM; j++) ones += (y[j] >> bit) & 1;
        CHECK(fabs((double)ones - DIM / 2.0) < 6 * sqrt(DIM / 4.0));
    }
    free(x), free(y);
    round_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* refusals                                                                                    */

/* Clients up to the end of step 0, with U1 in r.u1 (a copy the test may alter). */
static void open_advertised(round_ctx *r, fl_secagg_advert *u1, uint64_t seed) {
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    round_open(r, 4, 0, 32, FL_STREAM_AES256_CTR, 0, seed);
    CHECK_OK(step_adverts(r, drop, &err), &err);
    memcpy(u1, r->u1, r->n_u1 * sizeof *u1);
}

static void test_refused_adverts(void) {
    round_ctx r;
    fl_err err = {{0}};
    static fl_secagg_advert u1[4], bad[4];
    fl_secagg_share_ct cts[4];
    size_t k;
    /* Each forgery: a mask key swapped, a signature bit flipped, a peer's advert signed by
     * another client, an id changed, this client's own advert replaced, a repeated index. */
    for (int what = 0; what < 6; what++) {
        open_advertised(&r, u1, 100 + what);
        memcpy(bad, u1, sizeof bad);
        const char *expect = "has no valid signature";
        if (what == 0) bad[2].s_pk[5] ^= 1;
        if (what == 1) bad[2].sig[63] ^= 0x80;
        if (what == 2) memcpy(bad[2].sig, bad[3].sig, FL_ED25519_SIG_LEN);
        if (what == 3) bad[2].id[0] = 'H';
        if (what == 4) bad[0].c_pk[0] ^= 1, expect = "is not its own";
        if (what == 5) bad[3] = bad[2], expect = "seen before";
        fl_status st = fl_secagg_client_share_keys(r.c[1], bad, 4, cts, 4, &k, &err);
        CHECK(st == (what < 4 ? FL_EFORMAT : FL_EINVAL));
        CHECK_MSG(err, expect);
        if (what < 4) CHECK_MSG(err, "client 3");
        /* Aborted: even the true list is refused now. */
        CHECK(fl_secagg_client_share_keys(r.c[1], u1, 4, cts, 4, &k, &err) != FL_OK);
        CHECK_MSG(err, "was aborted");
        /* Another client takes the true list. */
        CHECK_OK(fl_secagg_client_share_keys(r.c[2], u1, 4, cts, 4, &k, &err), &err);
        round_free(&r);
    }
    /* The server with a verifier refuses a forged advert without aborting. */
    round_open(&r, 4, 0, 8, FL_STREAM_AES256_CTR, 0, 3);
    for (uint32_t i = 1; i <= 4; i++) {
        fl_secagg_advert a;
        CHECK_OK(fl_secagg_client_advertise(r.c[i], &a, &err), &err);
        fl_secagg_advert f = a;
        f.s_pk[0] ^= 1;
        CHECK(fl_secagg_server_add_advert(r.srv, &f, &err) == FL_EFORMAT);
        CHECK_OK(fl_secagg_server_add_advert(r.srv, &a, &err), &err);
        CHECK(fl_secagg_server_add_advert(r.srv, &a, &err) == FL_EINVAL); /* a repeat */
    }
    const fl_secagg_advert *list;
    size_t count;
    CHECK_OK(fl_secagg_server_close_adverts(r.srv, &list, &count, &err), &err);
    CHECK_EQ_INT(count, 4);
    round_free(&r);
}

static void test_refused_shares(void) {
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    static fl_secagg_share_ct in[MAXN], bad[MAXN];
    /* A flipped byte anywhere in a ciphertext or its tag, or a ciphertext relabelled as coming
     * from another client, fails to open; a client refuses and aborts. */
    size_t spots[] = {
        0, 8, 40, FL_SECAGG_SHARE_PT_LEN - 1, FL_SECAGG_SHARE_PT_LEN, FL_SECAGG_SHARE_CT_LEN - 1};
    for (size_t s = 0; s <= sizeof spots / sizeof *spots; s++) {
        round_open(&r, 4, 0, 16, FL_STREAM_AES256_CTR, 0, 200 + s);
        CHECK_OK(step_adverts(&r, drop, &err), &err);
        CHECK_OK(step_shares(&r, drop, &err), &err);
        size_t k;
        CHECK_OK(fl_secagg_server_shares_for(r.srv, 2, in, MAXN, &k, &err), &err);
        memcpy(bad, in, sizeof bad);
        if (s < sizeof spots / sizeof *spots)
            bad[1].ct[spots[s]] ^= 0x10;
        else
            bad[1].from = bad[0].from, bad[0].from = in[1].from; /* two labels swapped */
        CHECK(fl_secagg_client_receive_shares(r.c[2], bad, k, &err) == FL_EFORMAT);
        CHECK_MSG(err, "do not authenticate");
        CHECK(fl_secagg_client_receive_shares(r.c[2], in, k, &err) != FL_OK);
        CHECK_MSG(err, "was aborted");
        round_free(&r);
    }
    /* The server refuses malformed share lists without aborting. */
    round_open(&r, 4, 0, 16, FL_STREAM_AES256_CTR, 0, 300);
    CHECK_OK(step_adverts(&r, drop, &err), &err);
    size_t k;
    CHECK_OK(fl_secagg_client_share_keys(r.c[1], r.u1, r.n_u1, in, MAXN, &k, &err), &err);
    CHECK(fl_secagg_server_add_shares(r.srv, 2, in, k, &err) == FL_EINVAL); /* wrong sender */
    CHECK(fl_secagg_server_add_shares(r.srv, 1, in, k - 1, &err) == FL_EINVAL);
    memcpy(bad, in, sizeof bad);
    bad[1].to = bad[0].to;
    CHECK(fl_secagg_server_add_shares(r.srv, 1, bad, k, &err) == FL_EINVAL);
    CHECK_OK(fl_secagg_server_add_shares(r.srv, 1, in, k, &err), &err);
    CHECK(fl_secagg_server_add_shares(r.srv, 1, in, k, &err) == FL_EINVAL); /* a repeat */
    round_free(&r);
}

/* A client answers an unmask request only as the protocol allows: never both shares of one
 * client, nobody left out or twice, itself a survivor, at least t survivors; once. */
static void test_refused_unmask(void) {
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    drop[4] = AFTER_SHARES;
    static fl_secagg_unmask_reply rep;
    for (int what = 0; what < 7; what++) {
        round_open(&r, 4, 0, 16, FL_STREAM_AES256_CTR, 0, 400 + what);
        CHECK_OK(step_adverts(&r, drop, &err), &err);
        CHECK_OK(step_shares(&r, drop, &err), &err);
        uint32_t w[16] = {0};
        for (uint32_t i = 1; i <= 3; i++) {
            receive(&r, i);
            fl_secagg_masked v;
            CHECK_OK(fl_secagg_client_mask(r.c[i], 0, w, 16, &v, &err), &err);
            CHECK_OK(fl_secagg_server_add_masked(r.srv, &v, &err), &err);
        }
        fl_secagg_unmask_request req, bad;
        CHECK_OK(fl_secagg_server_close_masked(r.srv, &req, &err), &err);
        CHECK_EQ_INT(req.n_survivors, 3);
        CHECK_EQ_INT(req.n_dropped, 1);
        bad = req;
        const char *expect = NULL;
        if (what == 0) { /* client 2 asked as survivor and as dropped */
            bad.dropped[bad.n_dropped++] = 2;
            expect = "asks for both shares of client 2";
        } else if (what == 1) { /* client 4 asked as dropped and as survivor */
            bad.survivors[bad.n_survivors++] = 4;
            expect = "asks for both shares of client 4";
        } else if (what == 2) {
            bad.survivors[2] = bad.survivors[1];
            expect = "lists client 2 twice";
        } else if (what == 3) {
            bad.n_dropped = 0;
            expect = "leaves out client 4";
        } else if (what == 4) { /* client 1 moved to dropped */
            bad.survivors[0] = 3, bad.n_survivors = 2;
            bad.dropped[bad.n_dropped++] = 1;
            expect = "lists it as dropped";
        } else if (what == 5) { /* client 3 moved to dropped: 2 survivors < t */
            bad.n_survivors = 2;
            bad.dropped[bad.n_dropped++] = 3;
            expect = "needs t = 3 of 4 clients, 2 remain";
        }
        if (expect) {
            CHECK(fl_secagg_client_unmask(r.c[1], &bad, &rep, &err) == FL_EINVAL);
            CHECK_MSG(err, expect);
            CHECK_EQ_INT(rep.n_b + rep.n_sk, 0);
            CHECK(fl_secagg_client_unmask(r.c[1], &req, &rep, &err) != FL_OK);
            CHECK_MSG(err, "was aborted");
        } else { /* what == 6: a second request, even the same one, is refused */
            CHECK_OK(fl_secagg_client_unmask(r.c[1], &req, &rep, &err), &err);
            CHECK_EQ_INT(rep.n_b, 3);
            CHECK_EQ_INT(rep.n_sk, 1);
            static fl_secagg_unmask_reply again;
            CHECK(fl_secagg_client_unmask(r.c[1], &req, &again, &err) == FL_EINVAL);
            CHECK_MSG(err, "out of order");
            CHECK_EQ_INT(again.from, 0); /* nothing on failure */
            /* The server refuses an answer that does not fit the request, or a repeat. */
            fl_secagg_unmask_reply other;
            CHECK_OK(fl_secagg_client_unmask(r.c[2], &req, &other, &err), &err);
            other.sk_peer[0] = 3;
            CHECK(fl_secagg_server_add_unmask(r.srv, &other, &err) == FL_EINVAL);
            CHECK_OK(fl_secagg_server_add_unmask(r.srv, &rep, &err), &err);
            CHECK(fl_secagg_server_add_unmask(r.srv, &rep, &err) == FL_EINVAL);
        }
        round_free(&r);
    }
}

/* Steps out of order, chunks out of order, and bad parameters. */
static void test_order_and_params(void) {
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    uint32_t w[8] = {0};
    fl_secagg_masked v;
    round_open(&r, 3, 0, 8, FL_STREAM_AES256_CTR, 0, 500);
    CHECK(fl_secagg_client_mask(r.c[1], 0, w, 8, &v, &err) == FL_EINVAL);
    CHECK_MSG(err, "out of order");
    drop[1] = NO_ADVERT; /* aborted by that */
    CHECK_OK(step_adverts(&r, drop, &err), &err);
    CHECK_OK(step_shares(&r, drop, &err), &err);
    receive(&r, 2);
    CHECK(fl_secagg_client_mask(r.c[2], 4, w, 4, &v, &err) == FL_EINVAL); /* a gap */
    CHECK_MSG(err, "chunks go in order");
    receive(&r, 3);
    CHECK_OK(fl_secagg_client_mask(r.c[3], 0, w, 5, &v, &err), &err);
    /* The server: out of order and past the end refused, nothing added; resuming works. */
    fl_secagg_masked early = v;
    early.offset = 1;
    CHECK(fl_secagg_server_add_masked(r.srv, &early, &err) == FL_EINVAL);
    fl_secagg_masked part = v;
    part.count = 2;
    CHECK_OK(fl_secagg_server_add_masked(r.srv, &part, &err), &err);
    CHECK_EQ_INT(fl_secagg_server_received(r.srv, 3), 2);
    part.offset = 2, part.count = 3, part.data = w + 2;
    CHECK_OK(fl_secagg_server_add_masked(r.srv, &part, &err), &err);
    CHECK(fl_secagg_client_mask(r.c[3], 5, w + 5, 4, &v, &err) == FL_EINVAL); /* past dim */
    round_free(&r);

    fl_secagg_params p = {.study = STUDY, .round = 1, .n = 4, .t = 2, .dim = 4};
    fl_secagg_server *s = NULL;
    CHECK(fl_secagg_server_new(&p, NULL, &s, &err) == FL_EINVAL && !s); /* t = n / 2 */
    CHECK_MSG(err, "need n/2 < t <= n");
    p.t = 5;
    CHECK(fl_secagg_server_new(&p, NULL, &s, &err) == FL_EINVAL);
    p.t = 0, p.n = 1;
    CHECK(fl_secagg_server_new(&p, NULL, &s, &err) == FL_EINVAL);
    p.n = 4, p.dim = 0;
    CHECK(fl_secagg_server_new(&p, NULL, &s, &err) == FL_EINVAL);
    p.dim = 4, p.study = "";
    CHECK(fl_secagg_server_new(&p, NULL, &s, &err) == FL_EINVAL);
    p.study = STUDY;
    fl_secagg_hooks h = {.sign = sign_cb, .verify = verify_cb};
    fl_secagg_client *c = NULL;
    CHECK(fl_secagg_client_new(&p, 5, dir.id[1], &h, &c, &err) == FL_EINVAL && !c);
    CHECK(fl_secagg_client_new(&p, 1, "", &h, &c, &err) == FL_EINVAL);
    h.verify = NULL;
    CHECK(fl_secagg_client_new(&p, 1, dir.id[1], &h, &c, &err) == FL_EINVAL);
    fl_secagg_client_free(NULL);
    fl_secagg_server_free(NULL);

    /* A failing random source: at the key draw, then at a Shamir coefficient (nothing leaves). */
    party fp = {.self = 1, .fail_at = 1};
    h = (fl_secagg_hooks){
        .sign = sign_cb, .verify = verify_cb, .ctx = &fp, .rand = rand_cb, .rand_ctx = &fp};
    CHECK(fl_secagg_client_new(&p, 1, dir.id[1], &h, &c, &err) == FL_EBACKEND && !c);
    CHECK_MSG(err, "random source failed");
    round_open(&r, 3, 0, 8, FL_STREAM_AES256_CTR, 0, 600);
    memset(drop, 0, sizeof drop);
    CHECK_OK(step_adverts(&r, drop, &err), &err);
    r.pt[1].fail_at = r.pt[1].calls + 2; /* the split of b, after that of s_sk */
    fl_secagg_share_ct cts[3];
    size_t k = 9;
    memset(cts, 0x5a, sizeof cts);
    CHECK(fl_secagg_client_share_keys(r.c[1], r.u1, r.n_u1, cts, 3, &k, &err) == FL_EBACKEND);
    CHECK_MSG(err, "random source failed");
    CHECK_EQ_INT(k, 0);
    round_free(&r);
    static const uint32_t t_of[][2] = {{1, 2}, {2, 2}, {3, 2},  {4, 3},    {5, 4},
                                       {6, 4}, {7, 5}, {10, 7}, {100, 67}, {255, 170}};
    for (size_t i = 0; i < sizeof t_of / sizeof *t_of; i++)
        CHECK_EQ_INT(fl_secagg_default_t(t_of[i][0]), t_of[i][1]);
}

/* ------------------------------------------------------------------------------------------ */
/* known answers                                                                               */

static void check_hex(const uint8_t *got, const char *hex, const char *what) {
    char h[2 * 64 + 1];
    size_t n = strlen(hex) / 2;
    fl_hex_encode(got, n, h);
    fl_test_checks++;
    if (strcmp(h, hex)) fl_test_fail_at(__FILE__, __LINE__, "%s: %s, want %s", what, h, hex);
}

/* The derivations bound to study, round and the two ids, from RFC 7748 §6.1's shared secret
 * K and b = 00 01 .. 1f, study "nsclc-fl-2026", round 0x0102030405060708, ids
 * "hospital-b.example.org" (u) and "hospital-a.example.org" (v). The expected values were
 * computed once with Python's `cryptography` (38.0) and are checked here without it:
 *
 *   from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as Sk, \
 *       X25519PublicKey as Pk
 *   from cryptography.hazmat.primitives.kdf.hkdf import HKDF
 *   from cryptography.hazmat.primitives import hashes
 *   from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
 *   h = bytes.fromhex
 *   K = Sk.from_private_bytes(h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
 *       ).exchange(Pk.from_public_bytes(h(
 *       "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")))
 *   study, rnd = b"nsclc-fl-2026", 0x0102030405060708
 *   a, b = b"hospital-b.example.org", b"hospital-a.example.org"
 *   def info(label, ida, idb=None):
 *       lo, hi = sorted([ida, idb]) if idb is not None else (ida, b"")
 *       return label + b"\0" + study + b"\0" + rnd.to_bytes(8, "big") + lo + b"\0" + hi
 *   kdf = lambda ikm, inf: HKDF(hashes.SHA256(), 32, b"fedlung-secagg-v1", inf).derive(ikm)
 *   mask = kdf(K, info(b"mask", a, b)); enc = kdf(K, info(b"enc", a, b))
 *   self = kdf(bytes(range(32)), info(b"self", a))
 *   ctr = Cipher(algorithms.AES(mask), modes.CTR(bytes(16))).encryptor().update(bytes(16))
 *   print(K.hex(), mask.hex(), enc.hex(), self.hex(), ctr.hex()) */
static void test_kat(void) {
    static const char *alice_sk =
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    static const char *bob_sk = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    static const char *mask_hex =
        "a61f67b1606d2b9e2e6676210b09506b9d12de02902aff4cfe24bb3b7bcc87f8";
    static const char *enc_hex = "489d85005125683b0c3890eeb667bea35a776fdc520083c556b4a038f492ef9e";
    static const char *self_hex =
        "e4623c091ed8b914aefcbebff2fbabd83c426493b046e4d88bbb35a0732002c2";
    const char *u = "hospital-b.example.org", *v = "hospital-a.example.org";
    uint64_t round = 0x0102030405060708;
    fl_err err = {{0}};
    uint8_t ask[32], bsk[32], apk[32], bpk[32], k_ab[32], k_ba[32], key[32], key2[32], b[32];
    CHECK(fl_hex_decode(alice_sk, ask, 32) == FL_OK && fl_hex_decode(bob_sk, bsk, 32) == FL_OK);
    CHECK_OK(fl_x25519_public(ask, apk, &err), &err);
    CHECK_OK(fl_x25519_public(bsk, bpk, &err), &err);
    CHECK_OK(fl_x25519_shared(ask, bpk, k_ab, &err), &err);
    CHECK_OK(fl_x25519_shared(bsk, apk, k_ba, &err), &err);
    check_hex(k_ab, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", "K");
    /* Both sides, each with its own id first, derive the same keys. */
    CHECK_OK(fl_secagg_derive_key(FL_SECAGG_KEY_MASK, k_ab, STUDY, round, u, v, key, &err), &err);
    check_hex(key, mask_hex, "mask key (u's side)");
    CHECK_OK(fl_secagg_derive_key(FL_SECAGG_KEY_MASK, k_ba, STUDY, round, v, u, key2, &err), &err);
    check_hex(key2, mask_hex, "mask key (v's side)");
    /* Its first AES-256-CTR block at IV 0: the first 4 mask words. */
    fl_stream s;
    uint8_t iv[16] = {0}, block[16];
    CHECK_OK(fl_stream_init(&s, FL_STREAM_AES256_CTR, key, iv, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, block, 16, &err), &err);
    fl_stream_destroy(&s);
    check_hex(block, "3981eb457ca1f26c018378dcc6e72ee3", "first mask block");
    CHECK_OK(fl_secagg_derive_key(FL_SECAGG_KEY_ENC, k_ab, STUDY, round, u, v, key, &err), &err);
    check_hex(key, enc_hex, "share encryption key");
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    CHECK_OK(fl_secagg_derive_key(FL_SECAGG_KEY_SELF, b, STUDY, round, u, NULL, key, &err), &err);
    check_hex(key, self_hex, "self-mask key");
    /* Every input is bound: another study, round, id or label gives another key. */
    CHECK_OK(fl_secagg_derive_key(FL_SECAGG_KEY_MASK, k_ab, STUDY, round, u, v, key, &err), &err);
    const char *studies[] = {STUDY, "nsclc-fl-2027", STUDY, STUDY, STUDY};
    const uint64_t rounds[] = {round + 1, round, round, round, round};
    const char *ids[] = {u, u, "hospital-c.example.org", u, u};
    for (int i = 0; i < 5; i++) {
        fl_secagg_key_kind kind = i == 3 ? FL_SECAGG_KEY_ENC : FL_SECAGG_KEY_MASK;
        const uint8_t *ikm = i == 4 ? b : k_ab;
        CHECK_OK(fl_secagg_derive_key(kind, ikm, studies[i], rounds[i], ids[i], v, key2, &err),
                 &err);
        CHECK(memcmp(key, key2, 32) != 0);
    }
    CHECK(fl_secagg_derive_key(FL_SECAGG_KEY_MASK, k_ab, STUDY, round, u, u, key, &err) ==
          FL_EINVAL);
    CHECK(fl_secagg_derive_key(FL_SECAGG_KEY_MASK, k_ab, "", round, u, v, key, &err) == FL_EINVAL);

    /* The advert's canonical bytes, field by field. */
    fl_secagg_advert a = {.index = 0x0a0b0c0d, .id = "hospital-b.example.org"};
    memcpy(a.c_pk, apk, 32);
    memcpy(a.s_pk, bpk, 32);
    uint8_t msg[FL_SECAGG_ADVERT_BYTES_MAX];
    size_t len = fl_secagg_advert_bytes(STUDY, round, &a, msg), at = 0;
    CHECK_EQ_INT(len, 25 + 14 + 8 + 4 + 23 + 64);
    CHECK(!memcmp(msg + at, "fedlung-secagg-v1 advert\0nsclc-fl-2026\0", 39));
    at += 39;
    CHECK(!memcmp(msg + at, "\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b\x0c\x0d", 12));
    at += 12;
    CHECK(!memcmp(msg + at, "hospital-b.example.org", 23));
    at += 23;
    CHECK(!memcmp(msg + at, apk, 32) && !memcmp(msg + at + 32, bpk, 32));
    a.id[0] = 0;
    CHECK_EQ_INT(fl_secagg_advert_bytes(STUDY, round, &a, msg), 0);
    memset(a.id, 'x', sizeof a.id); /* no NUL */
    CHECK_EQ_INT(fl_secagg_advert_bytes(STUDY, round, &a, msg), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* --bench: a round of n clients over a long vector                                            */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Client i's input word j: anything cheap that differs by client and position. */
static uint32_t bench_x(uint32_t i, size_t j) {
    return (uint32_t)(j * 2654435761u) ^ (i * 0x9e3779b9u);
}

/* One round, timed; gone (0: none) drops after ShareKeys. Returns 0 when the sum is exact. */
static int bench_round(uint32_t n, size_t dim, size_t chunk, fl_stream_cipher cipher, uint32_t gone,
                       uint32_t *y) {
    round_ctx r;
    fl_err err = {{0}};
    int drop[MAXN + 1] = {0};
    if (gone) drop[gone] = AFTER_SHARES;
    double t0 = now();
    if (!round_open(&r, n, 0, dim, cipher, 1, 1) || step_adverts(&r, drop, &err) != FL_OK ||
        step_shares(&r, drop, &err) != FL_OK) {
        fprintf(stderr, "secagg bench: %s\n", err.msg);
        round_free(&r);
        return 1;
    }
    double setup = now() - t0, mask_best = 1e9, mask_sum = 0, add_sum = 0;
    int ok = 1;
    for (uint32_t i = 1; ok && i <= n; i++) {
        if (i == gone) continue;
        receive(&r, i);
        for (size_t j = 0; j < dim; j++) y[j] = bench_x(i, j);
        double m = 0, a = 0;
        for (size_t off = 0; ok && off < dim; off += chunk) {
            size_t c = dim - off < chunk ? dim - off : chunk;
            fl_secagg_masked v;
            double t1 = now();
            ok = fl_secagg_client_mask(r.c[i], off, y + off, c, &v, &err) == FL_OK;
            double t2 = now();
            ok = ok && fl_secagg_server_add_masked(r.srv, &v, &err) == FL_OK;
            m += t2 - t1, a += now() - t2;
        }
        mask_best = m < mask_best ? m : mask_best;
        mask_sum += m, add_sum += a;
    }
    fl_secagg_unmask_request req;
    static fl_secagg_unmask_reply rep;
    const uint32_t *sum = NULL;
    ok = ok && fl_secagg_server_close_masked(r.srv, &req, &err) == FL_OK;
    for (uint32_t k = 0; ok && k < req.n_survivors; k++)
        ok = fl_secagg_client_unmask(r.c[req.survivors[k]], &req, &rep, &err) == FL_OK &&
             fl_secagg_server_add_unmask(r.srv, &rep, &err) == FL_OK;
    double t3 = now();
    ok = ok && fl_secagg_server_finish(r.srv, &sum, &err) == FL_OK;
    double unmask = now() - t3;
    size_t wrong = 0;
    for (size_t j = 0; ok && j < dim; j++) {
        uint32_t want = 0;
        for (uint32_t i = 1; i <= n; i++) want += i == gone ? 0 : bench_x(i, j);
        wrong += sum[j] != want;
    }
    /* Each client: its self mask and one per other member of U2 (the dropped one included). */
    uint32_t alive = n - (gone != 0), masks = n;
    uint32_t server_masks = alive + (gone ? alive : 0);
    if (!ok)
        fprintf(stderr, "secagg bench: %s\n", err.msg);
    else
        printf("%u clients, %u dropped after ShareKeys: keys + shares %.3f s; client mask (%u "
               "masks, %zu-word chunks) best %.3f s, mean %.3f s; server add %.3f s per client; "
               "server unmask (%u masks) %.3f s; sum %s\n",
               n, gone ? 1u : 0u, setup, masks, chunk, mask_best, mask_sum / alive, add_sum / alive,
               server_masks, unmask, wrong ? "WRONG" : "exact");
    round_free(&r);
    return !ok || wrong;
}

static int bench(int argc, char **argv) {
    int threads = 2, bad = (argc - 2) % 2;
    unsigned n = 10;
    double mb = 240, chunk_mb = 4;
    fl_stream_cipher cipher = FL_STREAM_AES256_CTR;
    for (int i = 2; !bad && i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (!strcmp(opt, "--threads"))
            threads = atoi(val);
        else if (!strcmp(opt, "--clients"))
            n = (unsigned)atoi(val);
        else if (!strcmp(opt, "--mb"))
            mb = atof(val);
        else if (!strcmp(opt, "--chunk-mb"))
            chunk_mb = atof(val);
        else if (!strcmp(opt, "--cipher") && (!strcmp(val, "aes") || !strcmp(val, "chacha20")))
            cipher = strcmp(val, "aes") ? FL_STREAM_CHACHA20 : FL_STREAM_AES256_CTR;
        else
            bad = 1;
    }
    if (bad || threads < 1 || n < 3 || n > MAXN || mb <= 0 || chunk_mb <= 0) {
        fprintf(stderr,
                "usage: %s --bench [--clients N (3..%d)] [--mb MB] [--chunk-mb MB] "
                "[--threads T] [--cipher aes|chacha20]\n",
                argv[0], MAXN);
        return 2;
    }
    omp_set_num_threads(threads);
    size_t dim = (size_t)(mb * 1e6 / 4), chunk = (size_t)(chunk_mb * 1e6 / 4);
    uint32_t *y = malloc(dim * sizeof *y);
    if (!y) return fprintf(stderr, "secagg bench: out of memory\n"), 1;
    memset(y, 0, dim * sizeof *y);
    printf("secagg bench: %zu words (%.0f MB) per client, %s, %d threads\n", dim, dim * 4 / 1e6,
           cipher == FL_STREAM_AES256_CTR ? "AES-256-CTR" : "ChaCha20", threads);
    int rc = bench_round(n, dim, chunk, cipher, 0, y) || bench_round(n, dim, chunk, cipher, 2, y) ||
             bench_round(n, dim, dim, cipher, 0, y);
    free(y);
    return rc;
}

int main(int argc, char **argv) {
    directory_init();
    int rc = 0;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        rc = bench(argc, argv);
    } else {
        test_kat();
        test_rounds();
        test_too_few();
        test_shamir_threshold();
        test_masked_statistics();
        test_refused_adverts();
        test_refused_shares();
        test_refused_unmask();
        test_order_and_params();
        rc = fl_test_summary("test_secagg");
    }
    for (uint32_t i = 1; i <= MAXN; i++) fl_sign_key_free(dir.key[i]);
    return rc;
}
