/* test_site_dp.c - a site's DP-SGD (client/site_dp.c) on a small synthetic cohort: the plan's
 * [privacy] section and the GroupNorm model it implies; per-patient clipping equal to a direct
 * computation of each patient's gradient (fusion) and the sum over a patient's tiles equal to
 * tile-by-tile gradients (image); with large C and no noise, the non-DP full-batch step; the
 * noise's standard deviation; the Poisson sampling rate; reproducibility with a seeded source;
 * the CSPRNG source; the privacy ledger. `test_site_dp --bench` measures the cost per step
 * against non-DP training (docs/privacy.md, "DP-SGD"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../client/site_impl.h"
#include "../crypto/dp_accountant.h"
#include "../data/synth.h"
#include "harness.h"

static const char *PLAN_TEXT = "[study]\n"
                               "id = dp-test\n"
                               "classes = LUAD,LUSC,NORMAL\n"
                               "seed = 3\n"
                               "[image]\n"
                               "arch = resnet18\n"
                               "stem = small\n"
                               "tile = 32\n"
                               "width = %s\n"
                               "local_steps = 1\n"
                               "batch = 4\n"
                               "[fusion]\n"
                               "modalities = rna,clinical\n"
                               /* site standardization (DP's; asked for, so that plans
                                  without DP read too): 24 of the synthetic genes */
                               "standardize = site\n"
                               "rna_names = NKX2-1, NAPSA, SFTA2, SFTA3, TMC5, CEACAM6, KRT7\n"
                               "rna_names = MUC1, KRT5, KRT6A, KRT6B, TP63, SOX2, DSG3, CALML3\n"
                               "rna_names = PKP1, CLCA2, SPRR1B, KRT14, S100A2, AGER, SFTPC\n"
                               "rna_names = CLDN18, FABP4\n"
                               "clinical_names = age, male, never_smoker, pack_years\n"
                               "enc_dim = 8\n"
                               "hidden = 8\n"
                               "dropout = 0\n"
                               "%s"
                               "[privacy]\n"
                               "%s";
static const char *DP = "mechanism = dp-sgd\n"
                        "clip_norm = 1\n"
                        "noise_multiplier = 1.1\n"
                        "sample_rate = 0.25\n";

static fl_err err;
static char cohort[512];

static fl_status parse(fl_plan *p, const char *width, const char *fusion_extra,
                       const char *privacy) {
    char text[2048];
    snprintf(text, sizeof text, PLAN_TEXT, width, fusion_extra, privacy);
    return fl_plan_parse(text, strlen(text), "the test plan", p, &err);
}

/* ---- a seeded DP source (tests only: real noise comes from the CSPRNG) ---- */

typedef struct {
    fl_rng r;
} seeded;

static void seeded_noise(void *user, float *out, size_t n, double std) {
    seeded *s = user;
    for (size_t i = 0; i < n; i++) out[i] = (float)(std * fl_rng_normal(&s->r));
}

static void seeded_sample(void *user, uint8_t *mask, size_t n, double q) {
    seeded *s = user;
    for (size_t i = 0; i < n; i++) mask[i] = fl_rng_uniform(&s->r) < q;
}

/* What the CSPRNG source writes when it fails. */
static void nan_noise(void *user, float *out, size_t n, double std) {
    for (size_t i = 0; i < n; i++) out[i] = NAN;
}

static fl_dp_source seeded_source(seeded *s, uint64_t seed) {
    fl_rng_seed(&s->r, seed);
    return (fl_dp_source){seeded_noise, seeded_sample, s};
}

/* ---- the plan ---- */

static void test_plan(void) {
    fl_plan p;
    CHECK_OK(parse(&p, "0.125", "", DP), &err);
    CHECK_EQ_INT(p.privacy.mechanism, FL_DP_SGD);
    CHECK_CLOSE(p.privacy.clip_norm, 1, 0, 0);
    CHECK_CLOSE(p.privacy.noise_multiplier, 1.1, 0, 0);
    CHECK_CLOSE(p.privacy.sample_rate, 0.25, 0, 0);
    CHECK_CLOSE(p.privacy.delta, 1e-5, 0, 0);
    CHECK_EQ_INT(p.net.groupnorm, 8); /* 8 channels in the first stage */
    CHECK_EQ_INT(p.image.weighted, 0);
    CHECK_EQ_INT(p.fusion.weighted, 0);
    fl_graph *g = NULL;
    CHECK_OK(fl_plan_image_graph(&p, &g, &err), &err);
    if (g) {
        CHECK_EQ_INT(g->n_buffer, 0); /* GroupNorm: nothing but parameters */
        int gn = 0;
        for (int k = 0; k < g->n_nodes; k++) {
            CHECK(g->nodes[k].op != FL_OP_BATCHNORM2D);
            gn += g->nodes[k].op == FL_OP_GROUPNORM;
        }
        CHECK_EQ_INT(gn, 20); /* bn1, 2 per block, 3 downsamples */
        fl_graph_free(g);
    }
    fl_plan_destroy(&p);
    /* 32 groups where the widths allow, else the largest divisor below */
    CHECK_OK(parse(&p, "1", "", DP), &err);
    CHECK_EQ_INT(p.net.groupnorm, 32);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "0.75", "", DP), &err);
    CHECK_EQ_INT(p.net.groupnorm, 24);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "1", "", "mechanism = none\n"), &err);
    CHECK_EQ_INT(p.net.groupnorm, 0);
    CHECK_EQ_INT(p.fusion.weighted, 1);
    fl_plan_destroy(&p);
    CHECK_OK(parse(&p, "1", "",
                   "mechanism = dp-sgd\nclip_norm = 0.5\nnoise_multiplier = 0\n"
                   "sample_rate = 1\ndelta = 1e-6\n"),
             &err);
    CHECK_CLOSE(p.privacy.sample_rate, 1, 0, 0);
    CHECK_CLOSE(p.privacy.delta, 1e-6, 0, 0);
    fl_plan_destroy(&p);

    const struct {
        const char *fusion, *privacy, *msg;
    } bad[] = {
        {"", "mechanism = dp-fedavg\n", "mechanism = dp-fedavg needs clip_norm"},
        {"", "mechanism = dp\n", "is not one of none, dp-sgd, dp-fedavg"},
        {"", "mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\n", "needs sample_rate"},
        {"", "mechanism = dp-sgd\nclip_norm = 1\nsample_rate = 0.1\n", "needs noise_multiplier"},
        {"", "noise_multiplier = 1\n", "noise_multiplier is set but there is no mechanism"},
        {"", "mechanism = dp-sgd\nclip_norm = 0\n", "clip_norm '0' is not a number > 0"},
        {"", "mechanism = dp-sgd\nnoise_multiplier = -1\n", "is not a number >= 0"},
        {"", "mechanism = dp-sgd\nsample_rate = 0\n", "sample_rate '0' is not a number in (0, 1]"},
        {"", "mechanism = dp-sgd\nsample_rate = 1.5\n", "is not a number in (0, 1]"},
        {"", "mechanism = dp-sgd\ndelta = 1\n", "delta '1' is not a number in (0, 1)"},
        {"weighted = true\n", DP, "[fusion] weighted = true needs the sites' example counts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(parse(&p, "1", bad[i].fusion, bad[i].privacy) == FL_EFORMAT);
        CHECK_MSG(err, bad[i].msg);
    }
}

/* ---- the site ---- */

/* One site's synthetic cohort of P patients with T tiles of 32 px each and F genes and probes,
 * in the test folder under name; its path in `cohort`. */
static int make_cohort(const char *name, int P, int T, int F) {
    fl_synth_config sc;
    fl_synth_config_default(&sc);
    sc.patients = P;
    sc.sites = 1;
    sc.tile = 32;
    sc.tiles_per_patient = T;
    sc.genes = sc.probes = F;
    sc.seed = 7;
    snprintf(cohort, sizeof cohort, "%s", fl_test_path(name));
    CHECK_OK(fl_synth_write(&sc, cohort, &err), &err);
    return fl_test_failures ? -1 : 0;
}

/* A site of plan p with its own standardization (the fusion model's input). */
static fl_site *open_site(const fl_plan *p, uint64_t seed, int threads) {
    fl_site *s = NULL;
    CHECK_OK(fl_site_open(&s, cohort, p, threads, seed, &err), &err);
    if (s) CHECK_OK(fl_site_standardize_here(s, NULL, 0, &err), &err);
    return s;
}

/* The phase's global model at its initial weights (n floats). */
static float *initial(fl_site *s, fl_phase ph, size_t *n) {
    fl_backend *be;
    fl_model *m;
    *n = fl_site_model_len(s, ph);
    float *w = calloc(*n, sizeof(float));
    CHECK_OK(fl_site_model(s, ph, w, *n, 1, 3, &be, &m, &err), &err);
    if (!m) return w;
    const fl_graph *g = fl_model_graph(m);
    CHECK_EQ_INT(g->n_buffer, 0);
    be->download(be, w, fl_model_params(m), g->n_trainable * sizeof(float));
    fl_model_free(m);
    be->destroy(be);
    return w;
}

/* SGD at a constant lr, no momentum or decay: delta = -lr * (the step's gradient). */
static fl_plan_training plain_sgd(const fl_plan *p, float lr, int steps) {
    fl_plan_training h = p->fusion;
    h.optimizer = FL_LOCAL_SGD;
    h.lr = lr;
    h.momentum = 0;
    h.weight_decay = 0;
    h.local_steps = steps;
    h.epochs = 0;
    h.batch = 65536;
    return h;
}

static double rel_diff(const float *a, const double *b, size_t n) {
    double d = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return scale > 0 ? d / scale : d;
}

/* Each training patient's gradient of the fusion model at w, by the pipeline's step on a batch
 * of one; returns their sum after clipping each to C (n floats, the delta of one SGD step at
 * lr 1 is -sum / n). */
static double *clipped_sum(fl_site *s, const float *w, size_t n, double C) {
    double *sum = calloc(n, sizeof(double));
    float *g = malloc(n * sizeof(float));
    fl_backend *be;
    fl_model *m;
    CHECK_OK(fl_site_model(s, FL_PHASE_FUSION, w, n, 1, 3, &be, &m, &err), &err);
    if (!m) return sum;
    for (int i = 0; i < s->n_train; i++) {
        int32_t y, ys;
        float loss;
        CHECK_OK(
            fl_fusion_train_grad(m, &s->in, &s->c, &s->train_rows[i], 1, 0, &y, &ys, &loss, &err),
            &err);
        be->download(be, g, fl_model_grads(m), n * sizeof(float));
        double norm = 0;
        for (size_t j = 0; j < n; j++) norm += (double)g[j] * g[j];
        norm = sqrt(norm);
        double f = norm > C ? C / norm : 1;
        for (size_t j = 0; j < n; j++) sum[j] += f * g[j];
    }
    fl_model_free(m);
    be->destroy(be);
    free(g);
    return sum;
}

/* Clipping per patient (against the direct computation, with a C that clips every patient and
 * one that clips none, the latter equal to the non-DP full-batch step), the noise's std, the
 * sampling rate, reproducibility, a missing source. */
static void test_fusion(fl_plan *p) {
    fl_site *s = open_site(p, 11, 2);
    if (!s) return;
    size_t n;
    float *w = initial(s, FL_PHASE_FUSION, &n);
    float *d0 = malloc(n * sizeof(float)), *d1 = malloc(n * sizeof(float));
    double ex, loss;
    seeded src;
    fl_dp_source ds = seeded_source(&src, 1);
    fl_plan_training h = plain_sgd(p, 1.0f, 1);

    /* no source, no DP training */
    CHECK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d0, &ex, &loss, &err) == FL_EINVAL);
    CHECK_MSG(err, "needs a source of noise and sampling");
    fl_site_set_dp_source(s, &ds);

    p->privacy.sample_rate = 1; /* every patient at every step */
    p->privacy.noise_multiplier = 0;
    const double Cs[2] = {1e-3, 1e6};
    for (int c = 0; c < 2; c++) {
        p->privacy.clip_norm = Cs[c];
        CHECK_OK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d0, &ex, &loss, &err), &err);
        CHECK_EQ_INT(ex, s->n_train);
        double *want = clipped_sum(s, w, n, Cs[c]);
        for (size_t j = 0; j < n; j++) want[j] *= -1.0 / s->n_train;
        double d = rel_diff(d0, want, n);
        if (d > 1e-5) fl_test_fail_at(__FILE__, __LINE__, "C = %g: DP step vs direct %g", Cs[c], d);
        if (c == 0) { /* every patient clipped: the step's norm is at most lr C */
            double norm = 0;
            for (size_t j = 0; j < n; j++) norm += (double)d0[j] * d0[j];
            CHECK(sqrt(norm) <= Cs[c] * (1 + 1e-5) && sqrt(norm) > Cs[c] / 10);
        }
        free(want);
    }
    /* no clipping, no noise, every patient: the non-DP full-batch step */
    p->privacy.mechanism = FL_DP_NONE;
    CHECK_OK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err), &err);
    p->privacy.mechanism = FL_DP_SGD;
    CHECK_ARRAYS("DP without clipping or noise vs full batch", d0, d1, n, 1e-5, 1e-6);

    /* the noise: the difference of two steps from the same weights is -noise / n */
    p->privacy.clip_norm = 0.5;
    CHECK_OK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d0, &ex, &loss, &err), &err);
    p->privacy.noise_multiplier = 2;
    CHECK_OK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err), &err);
    fl_backend *be;
    fl_model *m;
    CHECK_OK(fl_site_model(s, FL_PHASE_FUSION, w, n, 1, 3, &be, &m, &err), &err);
    if (m) {
        const fl_graph *g = fl_model_graph(m);
        uint8_t *real = calloc(n, 1);
        for (int k = 0; k < g->n_params; k++)
            if (g->params[k].trainable) memset(real + g->params[k].offset, 1, g->params[k].numel);
        double sum = 0, sq = 0, cnt = 0;
        int gaps_zero = 1;
        for (size_t j = 0; j < n; j++) {
            double z = -((double)d1[j] - d0[j]) * s->n_train;
            if (!real[j]) {
                gaps_zero &= d1[j] == 0;
                continue;
            }
            sum += z;
            sq += z * z;
            cnt++;
        }
        CHECK(gaps_zero); /* the slab's alignment gaps stay 0 */
        double mean = sum / cnt, sd = sqrt(sq / cnt - mean * mean), want = 2 * 0.5;
        CHECK(cnt > 300);
        CHECK_CLOSE(sd, want, 4.0 / sqrt(2 * cnt) + 1e-3, 0);
        CHECK(fabs(mean) < 4 * want / sqrt(cnt));
        free(real);
        fl_model_free(m);
        be->destroy(be);
    }
    const fl_site_dp_round *last = fl_site_dp_last(s);
    CHECK_CLOSE(last->sigma, 2, 0, 0);
    CHECK_EQ_INT(last->steps, 1);
    CHECK_EQ_INT(last->batch, 1);

    /* Poisson sampling at q = 0.25 over 200 steps */
    p->privacy.sample_rate = 0.25;
    p->privacy.noise_multiplier = 1;
    h = plain_sgd(p, 1e-3f, 200);
    CHECK_OK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err), &err);
    double draws = (double)last->steps * last->n_patients, rate = last->sampled / draws;
    CHECK(fabs(rate - 0.25) < 4 * sqrt(0.25 * 0.75 / draws));
    CHECK(isfinite(loss) && loss > 0);
    /* epochs = 3 at q = 0.25: 12 steps */
    h.local_steps = 0;
    h.epochs = 3;
    fl_site_dp_round r;
    CHECK_OK(fl_site_dp_plan(s, FL_PHASE_FUSION, &h, &r, &err), &err);
    CHECK_EQ_INT(r.steps, 12);
    CHECK_EQ_INT(r.n_patients, s->n_train);

    /* reproducible: a fresh site with the same seeds trains the same update, bit for bit; another
     * source seed draws other patients and other noise */
    h = plain_sgd(p, 0.05f, 5);
    h.optimizer = FL_LOCAL_ADAMW;
    h.weight_decay = 0.01f;
    fl_site *a = open_site(p, 5, 2), *b = open_site(p, 5, 2);
    seeded sa, sb;
    fl_dp_source da = seeded_source(&sa, 9), db = seeded_source(&sb, 9);
    if (a && b) {
        fl_site_set_dp_source(a, &da);
        fl_site_set_dp_source(b, &db);
        CHECK_OK(fl_site_train(a, FL_PHASE_FUSION, &h, w, n, d0, &ex, &loss, &err), &err);
        CHECK_OK(fl_site_train(b, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err), &err);
        CHECK(memcmp(d0, d1, n * sizeof(float)) == 0);
        CHECK(fl_site_dp_last(a)->sampled == fl_site_dp_last(b)->sampled);
        db = seeded_source(&sb, 10);
        fl_site_set_dp_source(b, &db);
        CHECK_OK(fl_site_train(b, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err), &err);
        CHECK(memcmp(d0, d1, n * sizeof(float)) != 0);
    }
    fl_site_free(a);
    fl_site_free(b);

    /* a failing source is refused */
    fl_dp_source broken = {nan_noise, seeded_sample, &src};
    fl_site_set_dp_source(s, &broken);
    CHECK(fl_site_train(s, FL_PHASE_FUSION, &h, w, n, d1, &ex, &loss, &err) == FL_EINVAL);
    CHECK_MSG(err, "the DP noise source failed");
    fl_site_free(s);
    free(w);
    free(d0);
    free(d1);
}

/* The image: a patient's gradient is the sum of its tiles' (the batch's padding rows ignored,
 * GroupNorm per sample), tiles drawn at random beyond the cap; a clipped round. */
static void test_image(fl_plan *p) {
    fl_site *s = open_site(p, 13, 2);
    if (!s) return;
    size_t n;
    float *w = initial(s, FL_PHASE_IMAGE, &n);
    seeded src;
    fl_dp_source ds = seeded_source(&src, 2);
    fl_site_set_dp_source(s, &ds);
    fl_plan_training h = p->image; /* batch 4: a patient's 3 tiles and a padding row */
    fl_site_dp_round r;
    CHECK_OK(fl_site_dp_plan(s, FL_PHASE_IMAGE, &h, &r, &err), &err);
    CHECK_EQ_INT(r.batch, 3); /* the most tiles of a patient */
    CHECK_EQ_INT(r.n_patients, s->n_train);
    h.batch = 64;
    CHECK_OK(fl_site_dp_plan(s, FL_PHASE_IMAGE, &h, &r, &err), &err);
    CHECK_EQ_INT(r.batch, 3);
    r.batch = 4; /* a padding row, as with a patient that has fewer tiles than others */
    fl_backend *be = NULL, *be1 = NULL;
    fl_model *m = NULL, *m1 = NULL;
    fl_site_dp *dp = NULL;
    fl_image_batch b1 = {0};
    float *got = malloc(n * sizeof(float)), *one = malloc(n * sizeof(float));
    double *want = calloc(n, sizeof(double));
    CHECK_OK(fl_site_model(s, FL_PHASE_IMAGE, w, n, r.batch, 3, &be, &m, &err), &err);
    CHECK_OK(fl_site_model(s, FL_PHASE_IMAGE, w, n, 1, 3, &be1, &m1, &err), &err);
    if (m) CHECK_OK(fl_site_dp_new(&dp, s, FL_PHASE_IMAGE, m, &r, &err), &err);
    CHECK_OK(fl_image_batch_init(&b1, 1, s->c.tile, &err), &err);
    if (dp && m1) {
        const int patient = 4;
        fl_rng rng;
        float loss;
        fl_rng_seed(&rng, 99);
        CHECK_OK(fl_site_dp_patient_grad(dp, patient, &rng, &loss, &err), &err);
        be->download(be, got, fl_model_grads(m), n * sizeof(float));
        /* the same tiles with the same augmentations, one at a time (every patient has tiles:
         * the population is the training patients in order) */
        int p_row = s->train_rows[patient];
        fl_rng_seed(&rng, 99);
        int tiles = 0;
        for (int64_t t = 0; t < s->c.n_tiles; t++) {
            if (s->c.tile_patient[t] != p_row) continue;
            CHECK_OK(fl_image_train_grad(m1, s->f, &s->c, &t, &b1, &rng, &loss, &err), &err);
            be1->download(be1, one, fl_model_grads(m1), n * sizeof(float));
            for (size_t j = 0; j < n; j++) want[j] += one[j];
            tiles++;
        }
        CHECK_EQ_INT(tiles, 3);
        double d = rel_diff(got, want, n);
        if (d > 1e-4)
            fl_test_fail_at(__FILE__, __LINE__, "patient gradient vs its tiles' sum: %g", d);
    }
    fl_site_dp_free(dp);
    fl_model_free(m);
    if (be) be->destroy(be);
    fl_model_free(m1);
    if (be1) be1->destroy(be1);
    fl_image_batch_destroy(&b1);

    /* a round: 2 of the 3 tiles per patient, every patient clipped: |delta| <= lr C */
    p->privacy.sample_rate = 0.5;
    p->privacy.noise_multiplier = 0;
    p->privacy.clip_norm = 1e-3;
    h = p->image;
    h.batch = 2;
    h.optimizer = FL_LOCAL_SGD;
    h.lr = 1;
    h.momentum = 0;
    h.weight_decay = 0;
    h.local_steps = 2;
    double ex, loss;
    CHECK_OK(fl_site_train(s, FL_PHASE_IMAGE, &h, w, n, got, &ex, &loss, &err), &err);
    double norm = 0;
    for (size_t j = 0; j < n; j++) norm += (double)got[j] * got[j];
    const fl_site_dp_round *last = fl_site_dp_last(s);
    double bound = last->sampled * 1e-3 / (0.5 * last->n_patients); /* C / (q n) per patient */
    CHECK(sqrt(norm) > 0 && sqrt(norm) <= bound * (1 + 1e-4));
    CHECK_EQ_INT(last->batch, 2);
    CHECK(isfinite(loss) && loss > 0);
    fl_site_free(s);
    free(w);
    free(got);
    free(one);
    free(want);
}

/* The CSPRNG source: Gaussian moments and the sampling rate. */
static void test_csprng(void) {
    fl_dp_csprng c;
    fl_dp_csprng_init(&c);
    fl_dp_source src = fl_dp_csprng_source(&c);
    const size_t N = 400001;
    float *x = malloc(N * sizeof(float));
    uint8_t *mask = malloc(N);
    src.noise(src.user, x, N, 2.0);
    double s1 = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < N; i++) s1 += x[i];
    double mean = s1 / N;
    for (size_t i = 0; i < N; i++) {
        double d = x[i] - mean;
        s2 += d * d;
        s4 += d * d * d * d;
    }
    double var = s2 / N;
    CHECK(fabs(mean) < 4 * 2.0 / sqrt((double)N));
    CHECK_CLOSE(sqrt(var), 2.0, 4.0 / sqrt(2.0 * N), 0);
    CHECK_CLOSE(s4 / N / (var * var), 3.0, 0.05, 0); /* kurtosis of a Gaussian */
    src.sample(src.user, mask, N, 0.1);
    double k = 0;
    for (size_t i = 0; i < N; i++) k += mask[i];
    CHECK(fabs(k / N - 0.1) < 4 * sqrt(0.1 * 0.9 / N));
    CHECK_EQ_INT(c.st, FL_OK);
    fl_dp_csprng_destroy(&c);
    free(x);
    free(mask);
}

/* A restarted client's ledger at path remembers `rounds` training rounds, `evals` evaluation
 * reports and the epsilon eps (delta 1e-5). */
static void check_reopened(const char *path, int rounds, int evals, double eps) {
    fl_dp_ledger *l = NULL;
    double got = -1;
    CHECK_OK(fl_dp_ledger_open(path, &l, &err), &err);
    if (!l) return;
    CHECK_EQ_INT(fl_dp_ledger_rounds(l), rounds);
    CHECK_EQ_INT(fl_dp_ledger_evaluations(l), evals);
    CHECK_OK(fl_dp_ledger_epsilon(l, NULL, 1e-5, &got, &err), &err);
    CHECK_CLOSE(got, eps, 1e-12, 0);
    fl_dp_ledger_free(l);
}

/* The ledger: spends survive a reopen, compose like the accountant, refuse a damaged file. */
static void test_ledger(void) {
    const char *path = fl_test_path("privacy.state");
    fl_dp_ledger *l = NULL;
    CHECK_OK(fl_dp_ledger_open(path, &l, &err), &err);
    if (!l) return;
    fl_site_dp_round r = {.q = 0.01, .sigma = 1.1, .clip = 1, .steps = 100};
    double e0, e1, e2, want;
    CHECK_OK(fl_dp_ledger_epsilon(l, NULL, 1e-5, &e0, &err), &err);
    CHECK_CLOSE(e0, 0, 0, 0);
    CHECK_OK(fl_dp_ledger_epsilon(l, &r, 1e-5, &e1, &err), &err);
    CHECK_OK(fl_dp_ledger_spend(l, 3, FL_PHASE_IMAGE, &r, &err), &err);
    r.q = 0.02;
    CHECK_OK(fl_dp_ledger_spend(l, 4, FL_PHASE_FUSION, &r, &err), &err);
    CHECK_OK(fl_dp_ledger_epsilon(l, NULL, 1e-5, &e2, &err), &err);
    CHECK_EQ_INT(fl_dp_ledger_rounds(l), 2);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_dp_ledger_free(l);
    fl_accountant *acc = NULL;
    CHECK_OK(fl_accountant_new(NULL, 0, &acc, &err), &err);
    CHECK_OK(fl_accountant_add(acc, 0.01, 1.1, 100, &err), &err);
    CHECK_OK(fl_accountant_epsilon(acc, 1e-5, FL_DP_CONVERSION_BALLE, &want, NULL, &err), &err);
    CHECK_CLOSE(e1, want, 1e-12, 0);
    CHECK_OK(fl_accountant_add(acc, 0.02, 1.1, 100, &err), &err);
    CHECK_OK(fl_accountant_epsilon(acc, 1e-5, FL_DP_CONVERSION_BALLE, &want, NULL, &err), &err);
    fl_accountant_free(acc);
    CHECK_CLOSE(e2, want, 1e-12, 0);
    check_reopened(path, 2, 0, e2);
    size_t len;
    char *text = fl_test_read_file(path, &len);
    CHECK(text && strstr(text, "round=4 phase=fusion q=0.02 sigma=1.1000000000000001 clip=1 "
                               "steps=100\n"));
    free(text);
    const char *bad = "round=1 phase=image q=2 sigma=1 clip=1 steps=1\n";
    fl_test_write_file(path, bad, strlen(bad));
    CHECK(fl_dp_ledger_open(path, &l, &err) == FL_EFORMAT);
    CHECK_MSG(err, "privacy.state:1: not a round");
}

/* A noised evaluation report in the ledger: one Gaussian mechanism at q 1, sigma z_e, 1 step,
 * composed with the training rounds; the total equals `fedlung privacy epsilon --phase
 * 0.25,1,4 --phase 1,4,1 --delta 1e-5` (4.992516743, the CLI's number, computed apart). */
static void test_ledger_eval(void) {
    fl_site_dp_round r = {.q = 0.25, .sigma = 1, .clip = 1, .steps = 4};
    fl_site_dp_round ev = {.q = 1, .sigma = 4, .clip = 1, .steps = 1};
    const char *path = fl_test_path("privacy_eval.state");
    fl_dp_ledger *l = NULL;
    if (fl_dp_ledger_open(path, &l, &err) != FL_OK) {
        CHECK_OK(FL_EIO, &err); /* reported with the ledger's sentence */
        return;
    }
    double priced, spent;
    CHECK_OK(fl_dp_ledger_spend(l, 2, FL_PHASE_FUSION, &r, &err), &err);
    CHECK_OK(fl_dp_ledger_epsilon(l, &ev, 1e-5, &priced, &err), &err);
    CHECK_OK(fl_dp_ledger_spend_eval(l, 2, FL_PHASE_FUSION, 4, &err), &err);
    CHECK_OK(fl_dp_ledger_epsilon(l, NULL, 1e-5, &spent, &err), &err);
    CHECK_CLOSE(priced, 4.992516743, 1e-9, 0);
    CHECK_CLOSE(spent, priced, 1e-12, 0);
    CHECK_EQ_INT(fl_dp_ledger_rounds(l), 1);
    CHECK_EQ_INT(fl_dp_ledger_evaluations(l), 1);
    fl_dp_ledger_free(l);
    check_reopened(path, 1, 1, spent);
    size_t len;
    char *text = fl_test_read_file(path, &len);
    CHECK(text && strstr(text, "round=2 phase=fusion q=1 sigma=4 clip=1 steps=1 eval\n"));
    free(text);
    /* an evaluation is one step at q 1; anything else is a damaged line */
    static const char *const bad[] = {"round=2 phase=fusion q=0.5 sigma=4 clip=1 steps=1 eval\n",
                                      "round=2 phase=fusion q=1 sigma=4 clip=1 steps=2 eval\n",
                                      "round=2 phase=fusion q=1 sigma=4 clip=1 steps=1 evil\n",
                                      "round=2 phase=fusion q=1 sigma=4 clip=1 steps=1eval\n"};
    for (int i = 0; i < 4; i++) {
        fl_test_write_file(path, bad[i], strlen(bad[i]));
        CHECK(fl_dp_ledger_open(path, &l, &err) == FL_EFORMAT);
        CHECK_MSG(err, "privacy_eval.state:1: not a round");
    }
}

/* fl_dp_eval_noise: every count plus N(0, count_std^2), the loss plus N(0, loss_std^2), with the
 * plan's stds for K = 2 (z_e 4: 4 sqrt(5) per count, times L = 10 on the loss); a failed source
 * sends nothing. */
static void test_eval_noise(void) {
    fl_dp_csprng c;
    fl_dp_csprng_init(&c);
    fl_dp_source src = fl_dp_csprng_source(&c);
    const size_t K = 2, N = 2 * K * 20000, R = 4000;
    double cs = 4 * sqrt(5.0), ls = cs * 10;
    uint64_t *hist = malloc(N * sizeof *hist), per_class[2] = {7, 5};
    double *nh = malloc(N * sizeof *nh), np, npc[2], nl;
    for (size_t i = 0; i < N; i++) hist[i] = i % 3;
    CHECK_OK(
        fl_dp_eval_noise(&src, cs, ls, hist, N, 12, per_class, K, 3.5, nh, &np, npc, &nl, &err),
        &err);
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) {
        double d = nh[i] - (double)hist[i];
        s1 += d;
        s2 += d * d;
    }
    CHECK(fabs(s1 / N) < 4 * cs / sqrt((double)N));
    CHECK_CLOSE(sqrt(s2 / N), cs, 4.0 / sqrt(2.0 * N), 0);
    /* the scalars over R reports of one count */
    double p1 = 0, p2 = 0, l1 = 0, l2 = 0, c2 = 0;
    for (size_t r = 0; r < R; r++) {
        CHECK_OK(
            fl_dp_eval_noise(&src, cs, ls, hist, 4, 12, per_class, K, 3.5, nh, &np, npc, &nl, &err),
            &err);
        p1 += np - 12;
        p2 += (np - 12) * (np - 12);
        l1 += nl - 3.5;
        l2 += (nl - 3.5) * (nl - 3.5);
        c2 += (npc[1] - 5) * (npc[1] - 5);
    }
    CHECK(fabs(p1 / R) < 4 * cs / sqrt((double)R) && fabs(l1 / R) < 4 * ls / sqrt((double)R));
    CHECK_CLOSE(sqrt(p2 / R), cs, 5.0 / sqrt(2.0 * R), 0);
    CHECK_CLOSE(sqrt(c2 / R), cs, 5.0 / sqrt(2.0 * R), 0);
    CHECK_CLOSE(sqrt(l2 / R), ls, 5.0 / sqrt(2.0 * R), 0);
    CHECK_EQ_INT(c.st, FL_OK);
    fl_dp_csprng_destroy(&c);
    fl_dp_source broken = {nan_noise, NULL, NULL};
    CHECK(fl_dp_eval_noise(&broken, cs, ls, hist, 4, 12, per_class, K, 3.5, nh, &np, npc, &nl,
                           &err) == FL_EBACKEND);
    CHECK_MSG(err, "the evaluation report is not sent");
    free(hist);
    free(nh);
}

/* ---- the cost of DP-SGD (--bench) ---- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Milliseconds per step of phase ph at s, DP-SGD (dp) or not: the best of 3 rounds of `steps`
 * steps (the machine may be shared). */
static double ms_per_step(fl_site *s, fl_plan *p, fl_phase ph, fl_plan_training h, int dp,
                          int steps, const float *w, size_t n, float *delta) {
    double ex, loss, best = INFINITY;
    h.local_steps = steps;
    h.epochs = 0;
    p->privacy.mechanism = dp ? FL_DP_SGD : FL_DP_NONE;
    for (int k = 0; k < 3; k++) {
        double t0 = now_s();
        CHECK_OK(fl_site_train(s, ph, &h, w, n, delta, &ex, &loss, &err), &err);
        best = fmin(best, 1e3 * (now_s() - t0) / steps);
    }
    p->privacy.mechanism = FL_DP_SGD;
    return best;
}

static void bench(void) {
    if (make_cohort("bench.h5", 256, 4, 256)) return;
    const char *widths[2] = {"0.125", "0.5"};
    for (int wi = 0; wi < 2; wi++) {
        fl_plan p;
        if (parse(&p, widths[wi], "", DP) != FL_OK) return;
        fl_site *s = open_site(&p, 1, 1); /* one thread: the machine may be shared */
        if (!s) return;
        fl_dp_csprng c;
        fl_dp_csprng_init(&c);
        fl_dp_source src = fl_dp_csprng_source(&c);
        fl_site_set_dp_source(s, &src);
        int n_train = s->n_train;
        for (int image = 0; image < 2; image++) {
            if (!image && wi) continue;
            fl_phase ph = image ? FL_PHASE_IMAGE : FL_PHASE_FUSION;
            size_t n;
            float *w = initial(s, ph, &n), *d = malloc(n * sizeof(float));
            /* the same expected examples per step: 32 patients (fusion), 8 patients x 4 tiles
             * against 32 tiles (image) */
            fl_plan_training h = image ? p.image : p.fusion;
            h.batch = 32;
            double base = ms_per_step(s, &p, ph, h, 0, image ? 4 : 40, w, n, d);
            p.privacy.sample_rate = (image ? 8.0 : 32.0) / n_train;
            h.batch = 4;
            double dp = ms_per_step(s, &p, ph, h, 1, image ? 4 : 40, w, n, d);
            double t0 = now_s();
            src.noise(src.user, d, n, 1.0);
            double noise = 1e3 * (now_s() - t0);
            printf("%-28s %9zu params: non-DP %8.2f ms/step, DP-SGD %8.2f ms/step (x%.1f), "
                   "CSPRNG noise %.2f ms/step\n",
                   image ? (wi ? "resnet18 small w0.5 32px" : "resnet18 small w0.125 32px")
                         : "fusion MLP (rna,meth,clin)",
                   n, base, dp, dp / base, noise);
            free(w);
            free(d);
        }
        /* the noise alone for a full-width ResNet-18 (11.2 M parameters) */
        if (wi == 1) {
            size_t big = 11689512;
            float *x = malloc(big * sizeof(float));
            double t0 = now_s();
            src.noise(src.user, x, big, 1.0);
            printf("CSPRNG Gaussian noise for 11.7 M parameters: %.1f ms\n", 1e3 * (now_s() - t0));
            free(x);
        }
        fl_dp_csprng_destroy(&c);
        fl_site_free(s);
        fl_plan_destroy(&p);
    }
}

int main(int argc, char **argv) {
    if (!fl_test_mkdtemp("fl_site_dp_")) return 1;
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench();
    } else {
        test_plan();
        test_csprng();
        test_ledger();
        test_ledger_eval();
        test_eval_noise();
        fl_plan p;
        CHECK_OK(parse(&p, "0.125", "", DP), &err);
        if (fl_test_failures == 0 && make_cohort("cohort.h5", 60, 3, 64) == 0) {
            test_fusion(&p);
            test_image(&p);
        }
        fl_plan_destroy(&p);
    }
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("site_dp");
}
