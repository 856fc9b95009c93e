/* test_dp_fedavg.c - client-level DP-FedAvg (docs/privacy.md, "Client-level DP-FedAvg"): the
 * plan's dp-fedavg keys and what they imply (uniform weights, GroupNorm, the noise std
 * sigma C / sqrt(n - k)); a site's clipping to C and the std of the noise it adds (seeded
 * source), the sum of n - k sites' noise at std sigma C; a failed source; the server's uniform
 * average of the privatized updates; adaptive clipping's rule (its sign, and convergence to the
 * target quantile). The federation itself: tests/check_dp_fedavg.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/task_dp.h"
#include "../common/rng.h"
#include "../server/aggregate.h"
#include "harness.h"

static fl_err err;

static const char *PLAN_TEXT = "[study]\n"
                               "id = dpfa-test\n"
                               "classes = LUAD,LUSC,NORMAL\n"
                               "phases = statistics,fusion\n"
                               "[fusion]\n"
                               "modalities = rna,clinical\n"
                               "%s"
                               "[privacy]\n"
                               "%s";
static const char *DP = "mechanism = dp-fedavg\n"
                        "clip_norm = 2\n"
                        "noise_multiplier = 1.5\n"
                        "dp_clients = 4\n"
                        "dp_dropouts = 1\n";

static fl_status parse(fl_plan *p, const char *fusion_extra, const char *privacy) {
    char text[1024];
    snprintf(text, sizeof text, PLAN_TEXT, fusion_extra, privacy);
    return fl_plan_parse(text, strlen(text), "the test plan", p, &err);
}

/* ---- a seeded noise source (tests only: real noise comes from the CSPRNG) ---- */

static void seeded_noise(void *user, float *out, size_t n, double std) {
    for (size_t i = 0; i < n; i++) out[i] = (float)(std * fl_rng_normal(user));
}

static void nan_noise(void *user, float *out, size_t n, double std) {
    (void)user, (void)std;
    for (size_t i = 0; i < n; i++) out[i] = NAN;
}

static void test_plan(void) {
    fl_plan p;
    CHECK_OK(parse(&p, "", DP), &err);
    CHECK_EQ_INT(p.privacy.mechanism, FL_DP_FEDAVG);
    CHECK_EQ_INT(p.privacy.dp_clients, 4);
    CHECK_EQ_INT(p.privacy.dp_dropouts, 1);
    CHECK_EQ_INT(p.fusion.weighted, 0); /* uniform weights inside the DP sum */
    CHECK(p.net.groupnorm > 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_std(&p.privacy), 1.5 * 2 / sqrt(3.0), 1e-15, 0);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "",
                   "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\n"
                   "dp_clients = 9\n"),
             &err);
    CHECK_CLOSE(fl_plan_dp_fedavg_std(&p.privacy), 1.0 / 3, 1e-15, 0);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "",
                   "mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\n"
                   "sample_rate = 0.5\n"),
             &err);
    CHECK_CLOSE(fl_plan_dp_fedavg_std(&p.privacy), 0, 0, 0); /* not DP-FedAvg */
    fl_plan_destroy(&p);

    const struct {
        const char *fusion, *privacy, *msg;
    } bad[] = {
        {"", "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\n", "needs dp_clients"},
        {"", "mechanism = dp-fedavg\nnoise_multiplier = 1\ndp_clients = 3\n", "needs clip_norm"},
        {"", "mechanism = dp-fedavg\nclip_norm = 1\ndp_clients = 3\n", "needs noise_multiplier"},
        {"",
         "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
         "dp_dropouts = 3\n",
         "dp_dropouts 3 must be below dp_clients 3"},
        {"",
         "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
         "sample_rate = 0.5\n",
         "sample_rate is DP-SGD's"},
        {"", "mechanism = dp-fedavg\ndp_clients = 0\n", "dp_clients '0' is not a whole number"},
        {"",
         "mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.5\n"
         "dp_clients = 3\n",
         "dp_clients is only for mechanism = dp-fedavg (it has dp-sgd)"},
        {"", "dp_dropouts = 1\n", "dp_dropouts is only for mechanism = dp-fedavg (it has none)"},
        {"weighted = true\n", DP,
         "[fusion] weighted = true needs the sites' example counts, "
         "which DP-FedAvg does not send"},
        {"",
         "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
         "secagg = true\n",
         "secagg = true with mechanism"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(parse(&p, bad[i].fusion, bad[i].privacy) == FL_EFORMAT);
        CHECK_MSG(err, bad[i].msg);
    }
}

/* Clipping: a long update comes back at norm C (direction kept), a short one unchanged. */
static void test_clip(void) {
    fl_rng r;
    fl_rng_seed(&r, 1);
    fl_dp_source src = {seeded_noise, NULL, &r};
    float x[4] = {3, 0, -4, 0}, y[3] = {0.1f, -0.2f, 0.3f};
    double norm = 0;
    CHECK_OK(fl_dp_fedavg_privatize(x, 4, 1.0, 0, &src, &norm, &err), &err);
    CHECK_CLOSE(norm, 5, 1e-12, 0);
    CHECK_CLOSE(x[0], 0.6, 1e-6, 0);
    CHECK_CLOSE(x[2], -0.8, 1e-6, 0);
    CHECK(sqrt((double)x[0] * x[0] + (double)x[2] * x[2]) <= 1.0);
    CHECK_OK(fl_dp_fedavg_privatize(y, 3, 1.0, 0, &src, &norm, &err), &err);
    CHECK(y[1] == -0.2f);
    /* refusals: no clip norm, a failed source, a non-finite update */
    CHECK(fl_dp_fedavg_privatize(y, 3, 0, 1, &src, NULL, &err) == FL_EINVAL);
    fl_dp_source broken = {nan_noise, NULL, NULL};
    CHECK(fl_dp_fedavg_privatize(y, 3, 1, 1, &broken, NULL, &err) == FL_EBACKEND);
    CHECK_MSG(err, "the noise source failed");
    float z[2] = {NAN, 1};
    CHECK(fl_dp_fedavg_privatize(z, 2, 1, 1, &src, NULL, &err) == FL_EINVAL);
    CHECK_MSG(err, "not finite");
}

/* The noise: each of n - k = 3 sites adds std sigma C / sqrt(3) per coordinate (more than the
 * stack block of the implementation), so their sum has std sigma C; a zero update clipped stays
 * zero, so the sum is the noise alone. The same seed gives the same noise. */
static void test_noise(void) {
    fl_plan p;
    CHECK_OK(parse(&p, "", DP), &err);
    double std = fl_plan_dp_fedavg_std(&p.privacy), C = p.privacy.clip_norm;
    enum { N = 60000, SITES = 3 };
    float *d = calloc(N, sizeof *d), *sum = calloc(N, sizeof *sum), *again = calloc(N, sizeof *d);
    CHECK(d && sum && again);
    if (!d || !sum || !again) goto out;
    fl_rng r;
    fl_rng_seed(&r, 7);
    fl_dp_source src = {seeded_noise, NULL, &r};
    double s1 = 0, s2 = 0;
    for (int k = 0; k < SITES; k++) {
        memset(d, 0, N * sizeof *d);
        CHECK_OK(fl_dp_fedavg_privatize(d, N, C, std, &src, NULL, &err), &err);
        if (k == 0) {
            for (int i = 0; i < N; i++) s1 += d[i], s2 += (double)d[i] * d[i];
            CHECK_CLOSE(sqrt(s2 / N), std, 0.02, 0); /* 60000 draws: ~0.3 % std error */
            CHECK(fabs(s1 / N) < 4 * std / sqrt((double)N));
            memcpy(again, d, N * sizeof *d);
        }
        for (int i = 0; i < N; i++) sum[i] += d[i];
    }
    s2 = 0;
    for (int i = 0; i < N; i++) s2 += (double)sum[i] * sum[i];
    CHECK_CLOSE(sqrt(s2 / N), p.privacy.noise_multiplier * C, 0.02, 0);
    fl_rng_seed(&r, 7);
    memset(d, 0, N * sizeof *d);
    CHECK_OK(fl_dp_fedavg_privatize(d, N, C, std, &src, NULL, &err), &err);
    CHECK(memcmp(d, again, N * sizeof *d) == 0);
out:
    free(d);
    free(sum);
    free(again);
    fl_plan_destroy(&p);
}

/* The server's side: the privatized updates staged with weight 1 (the plan's weighted = false)
 * average uniformly, whatever the sites' sizes. */
static void test_uniform(void) {
    fl_aggregator a;
    fl_agg_config c;
    fl_agg_config_default(&c, 3, 0);
    CHECK_OK(fl_agg_init(&a, &c, &err), &err);
    fl_rng r;
    fl_rng_seed(&r, 3);
    fl_dp_source src = {seeded_noise, NULL, &r};
    float u[3][3] = {{10, 0, 0}, {0, 0.5f, 0}, {0, 0, -0.25f}}, g[3] = {1, 1, 1};
    double want[3] = {1, 1, 1};
    fl_agg_begin_round(&a);
    for (int k = 0; k < 3; k++) {
        CHECK_OK(fl_dp_fedavg_privatize(u[k], 3, 1.0, 0.01, &src, NULL, &err), &err);
        for (int i = 0; i < 3; i++) want[i] += u[k][i] / 3.0;
        CHECK_OK(fl_agg_stage_begin(&a, 1, &err), &err);
        CHECK_OK(fl_agg_stage_chunk(&a, 0, u[k], 3, &err), &err);
        CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
    }
    CHECK_OK(fl_agg_finish(&a, g, &err), &err);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(g[i], want[i], 1e-6, 1e-7);
    /* the first update was clipped from norm 10 to 1: it moves the mean by about 1/3 only */
    CHECK(fabs(g[0] - (1 + 1 / 3.0)) < 0.05);
    fl_agg_destroy(&a);
}

/* Adaptive clipping (Andrew et al. 2021): the sign of the rule (more than gamma of the updates
 * under C: C shrinks), and, from far below and far above, C converging to the gamma-quantile of
 * synthetic log-normal norms with noised bits (100 sites a round, bits' noise std 1 in all). */
static void test_adaptive(void) {
    CHECK(fl_dp_adaptive_clip_next(1, 0.9, 0.5, 0.2) < 1);
    CHECK(fl_dp_adaptive_clip_next(1, 0.1, 0.5, 0.2) > 1);
    CHECK_CLOSE(fl_dp_adaptive_clip_next(2, 0.5, 0.5, 0.2), 2, 0, 0);
    CHECK_CLOSE(fl_dp_adaptive_clip_next(1, 1, 0.5, 0.2), exp(-0.1), 1e-15, 0);
    enum { SITES = 100, ROUNDS = 600 };
    const double gammas[2] = {0.5, 0.8}, starts[2] = {1e-3, 1e3};
    for (int g = 0; g < 2; g++) {
        /* norms exp(N(0, 1)): the gamma-quantile is exp(z_gamma) */
        double want = g == 0 ? 1.0 : exp(0.8416212335729143);
        for (int s = 0; s < 2; s++) {
            fl_rng r;
            fl_rng_seed(&r, 11 + (uint64_t)(2 * g + s));
            fl_dp_source src = {seeded_noise, NULL, &r};
            double C = starts[s], late = 0;
            for (int t = 0; t < ROUNDS; t++) {
                double sum = 0;
                for (int i = 0; i < SITES; i++)
                    sum +=
                        fl_dp_clip_bit(exp(fl_rng_normal(&r)), C, 1.0 / sqrt((double)SITES), &src);
                C = fl_dp_adaptive_clip_next(C, sum / SITES, gammas[g], 0.2);
                if (t >= ROUNDS - 100) late += log(C) / 100;
            }
            /* the mean of log C over the last 100 rounds, within 10 % of the quantile */
            CHECK_CLOSE(exp(late), want, 0.1, 0);
        }
    }
}

int main(void) {
    test_plan();
    test_clip();
    test_noise();
    test_uniform();
    test_adaptive();
    return fl_test_summary("test_dp_fedavg");
}
