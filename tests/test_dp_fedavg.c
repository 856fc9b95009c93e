/* test_dp_fedavg.c - client-level DP-FedAvg (docs/privacy.md, "Client-level DP-FedAvg"): the
 * plan's dp-fedavg keys and what they imply (uniform weights, GroupNorm, the noise std
 * sigma C / sqrt(n - k)); a site's clipping to C and the std of the noise it adds (seeded
 * source), the sum of n - k sites' noise at std sigma C; a failed source; the server's uniform
 * average of the privatized updates; adaptive clipping: its plan keys and their checks, the
 * updates' noise multiplier z_delta against hand-computed values and the accountant (updates
 * and bits together cost z), the server's mean of the bits and the rule's sign, the range of
 * clip norms a hospital accepts, and convergence to the target quantile. The federation
 * itself: tests/check_dp_fedavg.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/task_dp.h"
#include "../fed/dp_clip.h"
#include "../common/rng.h"
#include "../crypto/dp_accountant.h"
#include "../server/aggregate.h"
#include "harness.h"

static fl_err err;

static const char *PLAN_TEXT = "[study]\n"
                               "id = dpfa-test\n"
                               "classes = LUAD,LUSC,NORMAL\n"
                               "phases = fusion\n"
                               "[fusion]\n"
                               "modalities = rna,clinical\n"
                               "standardize = site\n"
                               "rna_names = G1, G2\n"
                               "clinical_names = age\n"
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

/* The adaptive keys: defaults, values, and every refusal with its sentence. */
static void test_adaptive_plan(void) {
    fl_plan p;
    char privacy[512];
    snprintf(privacy, sizeof privacy, "%sadaptive_clip = true\nclip_bit_noise = 1.5\n", DP);
    CHECK_OK(parse(&p, "", privacy), &err);
    CHECK_EQ_INT(p.privacy.adaptive_clip, 1);
    CHECK_CLOSE(p.privacy.target_quantile, 0.5, 0, 0);
    CHECK_CLOSE(p.privacy.clip_lr, 0.2, 0, 0);
    CHECK_CLOSE(p.privacy.clip_bit_noise, 1.5, 0, 0);
    /* z 1.5, sigma_b 1.5: z_delta = (1/2.25 - 1/9)^-1/2 = (1/3)^-1/2 = sqrt(3); C 2 over
     * n - k = 3 sites: each adds sqrt(3) 2 / sqrt(3) = 2, and sigma_b / sqrt(3) on its bit */
    CHECK_CLOSE(fl_plan_dp_fedavg_multiplier(&p.privacy), sqrt(3.0), 1e-15, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_std(&p.privacy), 2, 1e-15, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_std_at(&p.privacy, 0.5), 0.5, 1e-15, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_bit_std(&p.privacy), 1.5 / sqrt(3.0), 1e-15, 0);
    fl_plan_destroy(&p);
    /* the defaults: sigma_b = dp_clients / 20 = 5 with 100 sites */
    CHECK_OK(parse(&p, "",
                   "mechanism = dp-fedavg\nclip_norm = 0.1\nnoise_multiplier = 1\n"
                   "dp_clients = 100\nadaptive_clip = yes\ntarget_quantile = 0.8\n"
                   "clip_lr = 0.05\n"),
             &err);
    CHECK_CLOSE(p.privacy.clip_bit_noise, 5, 0, 0);
    CHECK_CLOSE(p.privacy.target_quantile, 0.8, 0, 0);
    CHECK_CLOSE(p.privacy.clip_lr, 0.05, 0, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_multiplier(&p.privacy), 1 / sqrt(1 - 0.01), 1e-15, 0);
    fl_plan_destroy(&p);
    /* without adaptive clipping nothing changes: z itself, no bit */
    CHECK_OK(parse(&p, "", DP), &err);
    CHECK_EQ_INT(p.privacy.adaptive_clip, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_multiplier(&p.privacy), 1.5, 0, 0);
    CHECK_CLOSE(fl_plan_dp_fedavg_bit_std(&p.privacy), 0, 0, 0);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "",
                   "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\n"
                   "dp_clients = 3\nadaptive_clip = false\n"),
             &err);
    fl_plan_destroy(&p);

    const char *fedavg = "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\n"
                         "dp_clients = 40\n";
    const struct {
        const char *extra, *msg;
    } bad[] = {
        {"target_quantile = 0.5\n",
         "[privacy] target_quantile is set but adaptive_clip is not (add adaptive_clip = true, "
         "or remove it)"},
        {"adaptive_clip = false\nclip_lr = 0.1\n", "clip_lr is set but adaptive_clip is not"},
        {"clip_bit_noise = 3\n", "clip_bit_noise is set but adaptive_clip is not"},
        {"adaptive_clip = true\ntarget_quantile = 1\n",
         "target_quantile '1' is not a number in (0, 1)"},
        {"adaptive_clip = true\ntarget_quantile = 0\n",
         "target_quantile '0' is not a number in (0, 1)"},
        {"adaptive_clip = true\nclip_lr = 0\n", "clip_lr '0' is not a number > 0"},
        {"adaptive_clip = true\nclip_bit_noise = -1\n", "clip_bit_noise '-1' is not a number > 0"},
        {"adaptive_clip = maybe\n", "adaptive_clip"},
        /* the plan's 65th key: past the first word of the parser's seen bits */
        {"adaptive_clip = true\nclip_bit_noise = 3\nclip_bit_noise = 3\n",
         "clip_bit_noise is set twice in [privacy]"},
        /* 40 sites: the default sigma_b is 2, and 2 sigma_b = 4 > z = 1 is fine; 0.5 is the
         * boundary (2 sigma_b = z) and refused */
        {"adaptive_clip = true\nclip_bit_noise = 0.5\n",
         "adaptive_clip needs clip_bit_noise above noise_multiplier / 2 (Andrew et al. 2021, "
         "Theorem 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(privacy, sizeof privacy, "%s%s", fedavg, bad[i].extra);
        CHECK(parse(&p, "", privacy) == FL_EFORMAT);
        CHECK_MSG(err, bad[i].msg);
    }
    /* the default sigma_b too small: 4 sites give 0.2, below z / 2 = 0.75 */
    snprintf(privacy, sizeof privacy, "%sadaptive_clip = true\n", DP);
    CHECK(parse(&p, "", privacy) == FL_EFORMAT);
    CHECK_MSG(err, "it has clip_bit_noise 0.2 (the default, dp_clients / 20) and "
                   "noise_multiplier 1.5: raise clip_bit_noise or lower noise_multiplier");
    /* only with dp-fedavg */
    CHECK(parse(&p, "", "adaptive_clip = true\n") == FL_EFORMAT);
    CHECK_MSG(err, "[privacy] adaptive_clip is only for mechanism = dp-fedavg (it has none)");
    CHECK(parse(&p, "",
                "mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.5\n"
                "target_quantile = 0.5\n") == FL_EFORMAT);
    CHECK_MSG(err, "[privacy] target_quantile is only for mechanism = dp-fedavg (it has dp-sgd)");
}

/* Theorem 1 of Andrew et al.: z_delta = (z^-2 - (2 sigma_b)^-2)^-1/2 against values worked by
 * hand, undefined at and below 2 sigma_b = z; and the pair (updates at z_delta, bits at sigma_b
 * with sensitivity 1/2, i.e. multiplier 2 sigma_b) composes, in the accountant, to exactly the
 * epsilon of one Gaussian mechanism at z. */
static void test_update_multiplier(void) {
    CHECK_CLOSE(fl_dp_update_multiplier(1.5, 1.5), sqrt(3.0), 1e-15, 0);
    /* z 2, sigma_b 2.5: (0.25 - 0.04)^-1/2 = 0.21^-1/2 = 2.1821789023599... */
    CHECK_CLOSE(fl_dp_update_multiplier(2, 2.5), 2.1821789023599238, 1e-14, 0);
    /* z 1, sigma_b 1: (1 - 1/4)^-1/2 = 2 / sqrt(3) */
    CHECK_CLOSE(fl_dp_update_multiplier(1, 1), 2 / sqrt(3.0), 1e-15, 0);
    CHECK_CLOSE(fl_dp_update_multiplier(0, 0.15), 0, 0, 0);
    CHECK(isnan(fl_dp_update_multiplier(1, 0.5)));  /* the bits alone would cost z */
    CHECK(isnan(fl_dp_update_multiplier(1, 0.25))); /* ... more than z */
    CHECK(isnan(fl_dp_update_multiplier(-1, 1)));
    CHECK(isnan(fl_dp_update_multiplier(INFINITY, 1)));
    const double cases[][2] = {{1.5, 1.5}, {2, 2.5}, {0.7, 0.4}, {1.1, 10}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double z = cases[i][0], sb = cases[i][1], zd = fl_dp_update_multiplier(z, sb);
        CHECK_CLOSE(1 / (zd * zd) + 1 / (4 * sb * sb), 1 / (z * z), 1e-13, 0);
        fl_accountant *pair = NULL, *one = NULL;
        double e_pair = 0, e_one = 0;
        CHECK_OK(fl_accountant_new(NULL, 0, &pair, &err), &err);
        CHECK_OK(fl_accountant_new(NULL, 0, &one, &err), &err);
        if (!pair || !one) goto next;
        for (int round = 0; round < 5; round++) {
            CHECK_OK(fl_accountant_add(pair, 1, zd, 1, &err), &err);
            CHECK_OK(fl_accountant_add(pair, 1, 2 * sb, 1, &err), &err);
        }
        CHECK_OK(fl_accountant_add(one, 1, z, 5, &err), &err);
        CHECK_OK(fl_accountant_epsilon(pair, 1e-5, FL_DP_CONVERSION_BALLE, &e_pair, NULL, &err),
                 &err);
        CHECK_OK(fl_accountant_epsilon(one, 1e-5, FL_DP_CONVERSION_BALLE, &e_one, NULL, &err),
                 &err);
        CHECK_CLOSE(e_pair, e_one, 1e-9, 0);
    next:
        fl_accountant_free(pair);
        fl_accountant_free(one);
    }
}

/* The server's side of a round: the mean of the noised bits over the expected count (a site
 * that did not answer counts as 1/2), clamped to [0, 1], and the next C from it, with the sign
 * that shrinks C when more than gamma of the updates were under it. */
static void test_server_clip_step(void) {
    const double all_under[3] = {1.02, 0.97, 1.01}, all_over[3] = {0.03, -0.04, 0.0};
    double sum_under = 0, sum_over = 0;
    for (int i = 0; i < 3; i++) sum_under += all_under[i], sum_over += all_over[i];
    /* 3 of 3 sites: 1/2 + (sum - 3/2) / 3 = sum / 3 */
    CHECK_CLOSE(fl_dp_clip_bits_mean(sum_under, 3, 3), 1.0, 1e-15, 0); /* 3.00 / 3 */
    CHECK_CLOSE(fl_dp_clip_bits_mean(sum_over, 3, 3), 0, 0, 0);        /* -0.01 / 3: clamped */
    CHECK_CLOSE(fl_dp_clip_bits_mean(2.1, 3, 3), 0.7, 1e-15, 0);
    /* 2 of 4 expected sites, both under: 1/2 + (2 - 1) / 4 */
    CHECK_CLOSE(fl_dp_clip_bits_mean(2, 2, 4), 0.75, 0, 0);
    /* 2 of 4, one under one over: undecided */
    CHECK_CLOSE(fl_dp_clip_bits_mean(1, 2, 4), 0.5, 0, 0);
    CHECK_CLOSE(fl_dp_clip_bits_mean(9, 3, 3), 1, 0, 0);
    CHECK_CLOSE(fl_dp_clip_bits_mean(-9, 3, 3), 0, 0, 0);
    /* every update under C: C was above the median, so it shrinks by exp(-0.2 * 0.5) */
    double C = 4,
           next = fl_dp_adaptive_clip_next(C, fl_dp_clip_bits_mean(sum_under, 3, 3), 0.5, 0.2);
    CHECK(next < C);
    CHECK_CLOSE(next, 4 * exp(-0.1), 1e-15, 0);
    /* every update over C: it grows by exp(0.2 * 0.5) */
    next = fl_dp_adaptive_clip_next(C, fl_dp_clip_bits_mean(sum_over, 3, 3), 0.5, 0.2);
    CHECK(next > C);
    CHECK_CLOSE(next, 4 * exp(0.1), 1e-15, 0);
    /* 0.7 under at target 0.8: too few unclipped, C grows by exp(0.2 * 0.1) */
    CHECK_CLOSE(fl_dp_adaptive_clip_next(C, 0.7, 0.8, 0.2), 4 * exp(0.02), 1e-15, 0);
    /* what a hospital accepts: within steps * eta * max(gamma, 1 - gamma) of C0 in log */
    CHECK(fl_dp_clip_reachable(1, 1, 0.5, 0.2, 0));
    CHECK(!fl_dp_clip_reachable(1.01, 1, 0.5, 0.2, 0));
    CHECK(fl_dp_clip_reachable(exp(-0.2), 1, 0.5, 0.2, 2));
    CHECK(fl_dp_clip_reachable(exp(0.2), 1, 0.5, 0.2, 2));
    CHECK(!fl_dp_clip_reachable(exp(0.21), 1, 0.5, 0.2, 2));
    CHECK(fl_dp_clip_reachable(exp(-0.32), 1, 0.8, 0.2, 2)); /* gamma 0.8: down 0.16 a round */
    CHECK(!fl_dp_clip_reachable(exp(-0.33), 1, 0.8, 0.2, 2));
    CHECK(!fl_dp_clip_reachable(0, 1, 0.5, 0.2, 100));
    CHECK(!fl_dp_clip_reachable(NAN, 1, 0.5, 0.2, 100));
    CHECK(!fl_dp_clip_reachable(INFINITY, 1, 0.5, 0.2, 100));
    /* a sequence of steps stays reachable */
    C = 1;
    for (int t = 1; t <= 20; t++) {
        C = fl_dp_adaptive_clip_next(C, t % 3 ? 1.0 : 0.0, 0.5, 0.2);
        CHECK(fl_dp_clip_reachable(C, 1, 0.5, 0.2, t));
    }
}

int main(void) {
    test_plan();
    test_adaptive_plan();
    test_update_multiplier();
    test_server_clip_step();
    test_clip();
    test_noise();
    test_uniform();
    test_adaptive();
    return fl_test_summary("test_dp_fedavg");
}
