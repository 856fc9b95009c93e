/* test_plan_secagg.c - fed/plan_secagg: the plan rules for DP together with secure aggregation
 * (DP-SGD needs update_clip, DP-FedAvg's encoded noise must be representable), the fixed-point
 * scale is the largest power of two whose range holds n clipped updates (with a bit to spare)
 * plus 10 std of the summed noise, the discrete Gaussian's rational variance is never below the plan's, clipping
 * to fl_plan_sa_clip_for keeps the ROUNDED update within B scale (the DP sensitivity), and n
 * sites' encoded, noised updates sum and decode to the plain sum plus noise of the planned std. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../crypto/dgauss.h"
#include "../crypto/fixedpoint.h"
#include "../crypto/rand.h"
#include "../fed/plan_secagg.h"
#include "harness.h"

#define HEAD                                                                        \
    "[study]\nid = s\nclasses = A,B\nphases = fusion\n[fusion]\nmodalities = rna\n" \
    "standardize = site\nrna_names = G1, G2\n"                                      \
    "rounds = 1\nepochs = 1\n[privacy]\n"

static fl_status parse(const char *privacy, fl_plan *p, fl_err *err) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s", HEAD, privacy);
    return fl_plan_parse(text, strlen(text), "p.plan", p, err);
}

static void refused(const char *privacy, const char *why) {
    fl_plan p;
    fl_err err = {{0}};
    CHECK_FAILS(parse(privacy, &p, &err), err, why);
}

static void test_rules(void) {
    fl_plan p;
    fl_err err = {{0}};
    /* DP-FedAvg under secagg: accepted, the discrete Gaussian in the encoding */
    CHECK_OK(parse("mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
                   "secagg = true\n",
                   &p, &err),
             &err);
    CHECK(fl_plan_sa_clip(&p.privacy) == 1.0);
    fl_plan_destroy(&p);
    /* DP-SGD under secagg: the update's own bound is required, and used */
    refused("mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.1\n"
            "secagg = true\n",
            "update_clip");
    CHECK_OK(parse("mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.1\n"
                   "secagg = true\nupdate_clip = 50\n",
                   &p, &err),
             &err);
    CHECK(fl_plan_sa_clip(&p.privacy) == 50.0);
    double s;
    uint64_t num, den;
    CHECK_OK(fl_plan_sa_noise(&p.privacy, 1024, &num, &den, &err), &err);
    CHECK(num == 0); /* DP-SGD noised its own output: nothing added in the encoding */
    fl_plan_destroy(&p);
    /* update_clip only where it means something */
    refused("secagg = true\nclip_norm = 1\nupdate_clip = 5\n", "update_clip");
    refused("mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.1\n"
            "update_clip = 5\n",
            "update_clip");
    refused("mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
            "secagg = true\nupdate_clip = 5\n",
            "update_clip");
    /* noise too small for the grid: the sum of discrete Gaussians would not be one */
    refused("mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1e-9\ndp_clients = 3\n"
            "secagg = true\n",
            "below 4");
    /* without DP the scale is the old one: one bit of headroom */
    CHECK_OK(parse("secagg = true\nclip_norm = 2\n", &p, &err), &err);
    double want;
    CHECK_OK(fl_plan_sa_scale(&p.privacy, 5, &s, &err), &err);
    CHECK_OK(fl_fixed_scale_for(2, 5, 1, &want, &err), &err);
    CHECK(s == want);
    fl_plan_destroy(&p);
}

/* The scale holds n clipped encodings plus 10 std of the summed noise; twice it does not. */
static void test_scale(void) {
    static const struct {
        double clip, sigma;
        int clients, dropouts;
        uint32_t n;
    } k[] = {{1, 1, 3, 0, 3}, {0.5, 4, 10, 2, 10}, {3, 0.3, 50, 5, 60}, {1, 20, 2, 0, 2}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        fl_plan_privacy pv = {.mechanism = FL_DP_FEDAVG,
                              .clip_norm = k[i].clip,
                              .noise_multiplier = k[i].sigma,
                              .dp_clients = k[i].clients,
                              .dp_dropouts = k[i].dropouts,
                              .secagg = 1};
        fl_err err = {{0}};
        double s;
        CHECK_OK(fl_plan_sa_scale(&pv, k[i].n, &s, &err), &err);
        double std = fl_plan_dp_fedavg_std(&pv), n = k[i].n;
        CHECK(fabs(std - k[i].sigma * k[i].clip / sqrt(k[i].clients - k[i].dropouts)) < 1e-12);
        double used = n * (double)llround(k[i].clip * s) + 10 * std * s * sqrt(n);
        CHECK(used < 2147483648.0);
        CHECK(n * (double)llround(k[i].clip * s) < 1073741824.0);
        double clipped2 = n * (double)llround(k[i].clip * 2 * s);
        CHECK(clipped2 >= 1073741824.0 || clipped2 + 10 * std * 2 * s * sqrt(n) >= 2147483648.0);
        CHECK(s == ldexp(1, ilogb(s))); /* a power of two */
        /* the rational variance: at least the planned one, and barely more */
        uint64_t num, den;
        CHECK_OK(fl_plan_sa_noise(&pv, s, &num, &den, &err), &err);
        double var = (std * s) * (std * s);
        CHECK(num >= 1 && num <= FL_DGAUSS_MAX_TERM && den >= 1 && den <= FL_DGAUSS_MAX_TERM);
        CHECK((double)num / (double)den >= var);
        CHECK((double)num / (double)den <= var * (1 + 1e-15) + 1.0 / (double)den);
    }
}

/* A vector clipped to fl_plan_sa_clip_for and rounded to the grid stays within B scale, even
 * when every coordinate rounds away from zero by almost half a unit. */
static void test_clip_for_rounding(void) {
    fl_plan_privacy pv = {.mechanism = FL_DP_FEDAVG,
                          .clip_norm = 1,
                          .noise_multiplier = 1,
                          .dp_clients = 3,
                          .secagg = 1};
    enum { D = 4096 };
    double scale = 256; /* a coarse grid makes the rounding matter */
    double b = fl_plan_sa_clip_for(&pv, scale, D);
    CHECK_CLOSE(b, 1 - 0.5 * sqrt((double)D) / scale, 1e-12, 0);
    /* coordinates at k + 0.499 grid units, then clipped to b: the worst case for rounding */
    static float x[D];
    double ss = 0;
    for (int i = 0; i < D; i++) {
        x[i] = (float)(((i % 3) + 0.499) / scale) * (i % 2 ? 1.0f : -1.0f);
        ss += (double)x[i] * x[i];
    }
    float f = (float)(b / sqrt(ss));
    for (int i = 0; i < D; i++) x[i] *= ss > b * b ? f : 1.0f;
    static uint32_t w[D];
    fl_err err = {{0}};
    CHECK_OK(fl_fixed_encode(x, D, scale, w, &err), &err);
    double norm2 = 0;
    for (int i = 0; i < D; i++) norm2 += (double)(int32_t)w[i] * (double)(int32_t)w[i];
    CHECK(sqrt(norm2) <= 1 * scale);
    /* without DP-FedAvg only the range matters: the bound is B itself */
    pv.mechanism = FL_DP_NONE;
    CHECK(fl_plan_sa_clip_for(&pv, scale, D) == 1.0);
    /* a grid too coarse for d: 0, which the site refuses */
    pv.mechanism = FL_DP_FEDAVG;
    CHECK(fl_plan_sa_clip_for(&pv, 4, D) == 0.0);
}

/* n sites: clipped vectors, encoded, noised with the plan's discrete Gaussian from the CSPRNG,
 * summed mod 2^32 and decoded: the error against the plain sum has mean ~0 and the std of n
 * sites' noise, sqrt(n) * sigma C / sqrt(n - k). */
static void test_noised_sum(void) {
    enum { N = 3, D = 20000 };
    fl_plan_privacy pv = {.mechanism = FL_DP_FEDAVG,
                          .clip_norm = 1,
                          .noise_multiplier = 0.8,
                          .dp_clients = N,
                          .dp_dropouts = 1,
                          .secagg = 1};
    fl_err err = {{0}};
    double scale;
    uint64_t num, den;
    CHECK_OK(fl_plan_sa_scale(&pv, N, &scale, &err), &err);
    CHECK_OK(fl_plan_sa_noise(&pv, scale, &num, &den, &err), &err);
    double b = fl_plan_sa_clip_for(&pv, scale, D);
    static float x[D], dec[D];
    static double plain[D];
    static uint32_t w[D], acc[D];
    fl_rng rng;
    fl_rng_seed(&rng, 11);
    for (int c = 0; c < N; c++) {
        double ss = 0;
        for (int i = 0; i < D; i++) {
            x[i] = (float)fl_rng_normal(&rng);
            ss += (double)x[i] * x[i];
        }
        for (int i = 0; i < D; i++) { /* clipped to b: each coordinate about b / sqrt(D) */
            x[i] = (float)(x[i] * (b / sqrt(ss)));
            plain[i] += x[i];
        }
        CHECK_OK(fl_fixed_encode(x, D, scale, w, &err), &err);
        CHECK_OK(fl_dgauss_add_u32(w, D, num, den, fl_rand_source, NULL, &err), &err);
        fl_fixed_accumulate(acc, w, D);
    }
    CHECK_OK(fl_fixed_decode_sum(acc, D, scale, dec, &err), &err);
    double m = 0, v = 0;
    for (int i = 0; i < D; i++) m += dec[i] - plain[i];
    m /= D;
    for (int i = 0; i < D; i++) v += (dec[i] - plain[i] - m) * (dec[i] - plain[i] - m);
    double sd = sqrt(v / (D - 1)), want = sqrt((double)N) * fl_plan_dp_fedavg_std(&pv);
    /* the std of a sample std over D draws is ~ sd / sqrt(2 D) = 0.5%: 4% is > 7 of them */
    CHECK_CLOSE(sd, want, 0.04, 0);
    CHECK(fabs(m) < 5 * want / sqrt((double)D));
}

int main(void) {
    test_rules();
    test_scale();
    test_clip_for_rounding();
    test_noised_sum();
    return fl_test_summary("plan_secagg");
}
