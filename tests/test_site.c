/* test_site.c - a hospital's local work (client/site.h) on a small synthetic cohort split into
 * three site files: their statistics add up to the pooled cohort's, FedAvg of one full-batch SGD
 * step equals that step on the pooled cohort, FedProx's proximal term, reproducible rounds,
 * evaluation histograms that merge into the pooled one, saved models that `fedlung eval`'s code
 * scores the same, and the mismatches a site refuses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/site.h"
#include "../data/partition.h"
#include "../data/synth.h"
#include "../eval/metrics.h"
#include "../pipeline/internal.h"
#include "harness.h"

#define N_SITES 3
#define POOLED N_SITES /* sites[POOLED] is the whole cohort as one site */
#define N_CLASSES 3

static const char *PLAN_TEXT = "[study]\n"
                               "id = site-test\n"
                               "classes = %s\n"
                               "seed = 3\n"
                               "bins = 200\n"
                               "[image]\n"
                               "arch = resnet18\n"
                               "stem = small\n"
                               "tile = %d\n"
                               "width = 0.125\n"
                               "rounds = 1\n"
                               "local_steps = 2\n"
                               "batch = 4\n"
                               "optimizer = sgd\n"
                               "lr = 0.01\n"
                               "momentum = 0.9\n"
                               "[fusion]\n"
                               "modalities = %s\n"
                               "rna_features = 24\n"
                               "meth_features = 24\n"
                               "enc_dim = 8\n"
                               "hidden = 8\n"
                               "dropout = 0\n"
                               "rounds = 1\n"
                               "local_steps = 1\n"
                               "batch = 65536\n"
                               "optimizer = sgd\n"
                               "lr = 0.5\n"
                               "momentum = 0\n"
                               "weight_decay = 0\n";

static fl_plan plan;     /* fusion on rna, methylation, clinical */
static fl_plan plan_img; /* fusion on image, rna, clinical */
static char paths[N_SITES + 1][512];
static fl_site *sites[N_SITES + 1];
static fl_err err;

static int parse_plan(fl_plan *p, const char *classes, int tile, const char *modalities) {
    char text[2048];
    snprintf(text, sizeof text, PLAN_TEXT, classes, tile, modalities);
    fl_status s = fl_plan_parse(text, strlen(text), "the test plan", p, &err);
    CHECK_OK(s, &err);
    return s == FL_OK ? 0 : -1;
}

/* The pooled cohort and its three IID parts as site files. */
static int make_cohorts(void) {
    fl_synth_config sc;
    fl_synth_config_default(&sc);
    sc.patients = 150;
    sc.sites = 3;
    sc.tile = 32;
    sc.tiles_per_patient = 2;
    sc.genes = 80;
    sc.probes = 96;
    sc.seed = 5;
    snprintf(paths[POOLED], sizeof paths[0], "%s", fl_test_path("pooled.h5"));
    CHECK_OK(fl_synth_write(&sc, paths[POOLED], &err), &err);
    fl_cohort c = {0};
    fl_cohort_file *f = NULL;
    CHECK_OK(fl_cohort_open(&f, &c, paths[POOLED], &err), &err);
    if (!f) return -1;
    int32_t *part = malloc((size_t)c.P * sizeof(int32_t));
    uint8_t *keep = malloc((size_t)c.P);
    fl_partition_spec spec = {.mode = FL_PARTITION_IID, .parts = N_SITES, .seed = 2};
    int n_parts = 0;
    CHECK_OK(fl_partition(&c, &spec, part, &n_parts, &err), &err);
    CHECK_EQ_INT(n_parts, N_SITES);
    for (int i = 0; i < N_SITES; i++) {
        char name[32];
        snprintf(name, sizeof name, "site%d.h5", i);
        snprintf(paths[i], sizeof paths[i], "%s", fl_test_path(name));
        for (int p = 0; p < c.P; p++) keep[p] = part[p] == i;
        CHECK_OK(fl_cohort_save_subset(&c, f, keep, paths[i], &err), &err);
    }
    free(part);
    free(keep);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    return fl_test_failures ? -1 : 0;
}

/* A global model's initial flat vector (parameters, then buffers) for graph g (freed). */
static float *initial_model(fl_graph *g, size_t *n) {
    fl_backend *be;
    fl_model *m;
    if (fl_model_on_cpu(g, 1, 2, plan.seed, NULL, &be, &m, &err) != FL_OK) return NULL;
    const fl_graph *mg = fl_model_graph(m);
    size_t np = mg->n_trainable, nb = mg->n_buffer;
    float *w = malloc((np + nb) * sizeof(float));
    be->download(be, w, fl_model_params(m), np * sizeof(float));
    be->download(be, w + np, fl_model_buffers(m), nb * sizeof(float));
    *n = np + nb;
    fl_model_free(m);
    be->destroy(be);
    return w;
}

/* max |a - b| / max |b|: closeness of two update vectors as a whole. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return scale > 0 ? d / scale : d;
}

/* (2) The sites' statistics add up to the pooled site's; the standardization derived from them
 * is the pipeline's fit on the pooled training patients. Sets it at every site. */
static void test_statistics(void) {
    size_t len = fl_site_statistics_len(sites[POOLED]);
    float *sum = calloc(len, sizeof(float)), *one = malloc(len * sizeof(float));
    float *pooled = malloc(len * sizeof(float));
    for (int i = 0; i < N_SITES; i++) {
        CHECK_EQ_INT(fl_site_statistics_len(sites[i]), len);
        CHECK_OK(fl_site_statistics(sites[i], one, &err), &err);
        for (size_t j = 0; j < len; j++) sum[j] += one[j];
    }
    CHECK_OK(fl_site_statistics(sites[POOLED], pooled, &err), &err);
    CHECK_ARRAYS("summed statistics", sum, pooled, len, 1e-5, 1e-3);

    fl_cohort c = {0};
    CHECK_OK(fl_cohort_load(&c, paths[POOLED], &err), &err);
    uint8_t *train = malloc((size_t)c.P);
    fl_split_mask(&c, FL_SPLIT_TRAIN, train);
    const fl_modality mods[3] = {FL_MODALITY_RNA, FL_MODALITY_METHYLATION, FL_MODALITY_CLINICAL};
    const int top[3] = {plan.rna_features, plan.meth_features, 0};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        const fl_omics_matrix *om = &c.omics[mods[i] - FL_MODALITY_RNA];
        fl_stats_result r = {0};
        fl_standardizer ref = {0};
        CHECK_OK(fl_stats_finish(sum + at, om->F, top[i], &r, &err), &err);
        CHECK_OK(fl_standardizer_fit(&ref, om, c.P, train, top[i],
                                     mods[i] == FL_MODALITY_METHYLATION, &err),
                 &err);
        CHECK_EQ_INT(r.n, ref.n);
        for (int j = 0; j < r.n && j < ref.n; j++) {
            CHECK(strcmp(om->features[r.index[j]], ref.names[j]) == 0);
            CHECK_CLOSE(r.mean[j], ref.mean[j], 1e-4, 1e-4);
            CHECK_CLOSE(r.std[j], ref.std[j], 1e-4, 1e-4);
        }
        for (int s = 0; s <= N_SITES; s++)
            CHECK_OK(fl_site_set_standardization(sites[s], mods[i], &r, &err), &err);
        at += FL_STATS_LEN(om->F);
        fl_stats_result_destroy(&r);
        fl_standardizer_destroy(&ref);
    }
    CHECK_EQ_INT(at, len);
    fl_site_summary sum0, sumP;
    fl_site_summarize(sites[0], &sum0);
    fl_site_summarize(sites[POOLED], &sumP);
    CHECK_EQ_INT(sum0.features[FL_MODALITY_RNA - 1], 80);
    CHECK(memcmp(sum0.features_sha256, sumP.features_sha256, sizeof sum0.features_sha256) == 0);
    uint64_t total = 0;
    for (int k = 0; k < N_CLASSES; k++) total += sumP.per_class[k];
    CHECK_EQ_INT(total, sumP.patients);
    CHECK_EQ_INT(sumP.modality_patients[FL_MODALITY_IMAGE - 1], 150);
    for (int k = 0; k < N_CLASSES; k++) CHECK(sumP.per_class[k] > 0);
    free(train);
    fl_cohort_destroy(&c);
    free(sum);
    free(one);
    free(pooled);
}

/* (1) FedAvg of the sites' one full-batch SGD step = the step on the pooled cohort; FedProx's
 * term; reproducible rounds. Returns the pooled model after its step (the evaluation's). */
static float *test_fusion_training(size_t *n_out) {
    size_t n = fl_site_model_len(sites[POOLED], FL_PHASE_FUSION);
    CHECK(n > 0);
    int in_dim[4] = {0, 24, 24, 0};
    fl_site_summary sm;
    fl_site_summarize(sites[POOLED], &sm);
    in_dim[FL_MODALITY_CLINICAL - 1] = (int)sm.features[FL_MODALITY_CLINICAL - 1];
    fl_graph *g = NULL;
    CHECK_OK(fl_plan_fusion_graph(&plan, in_dim, &g, &err), &err);
    size_t n_init = 0;
    float *global = g ? initial_model(g, &n_init) : NULL;
    CHECK_EQ_INT(n_init, n);
    if (!global || n_init != n) return NULL;
    float *avg = calloc(n, sizeof(float)), *delta = malloc(n * sizeof(float));
    float *pooled = malloc(n * sizeof(float));
    double ex_sum = 0, loss_sum = 0, ex, loss;
    for (int i = 0; i < N_SITES; i++) {
        CHECK_EQ_INT(fl_site_model_len(sites[i], FL_PHASE_FUSION), n);
        CHECK_OK(fl_site_train(sites[i], FL_PHASE_FUSION, &plan.fusion, global, n, delta, &ex,
                               &loss, &err),
                 &err);
        for (size_t j = 0; j < n; j++) avg[j] += (float)(ex * delta[j]);
        ex_sum += ex;
        loss_sum += ex * loss;
    }
    for (size_t j = 0; j < n; j++) avg[j] = (float)(avg[j] / ex_sum);
    CHECK_OK(fl_site_train(sites[POOLED], FL_PHASE_FUSION, &plan.fusion, global, n, pooled, &ex,
                           &loss, &err),
             &err);
    CHECK_EQ_INT(ex, ex_sum);
    CHECK_CLOSE(loss_sum / ex_sum, loss, 1e-5, 0);
    double d = rel_diff(avg, pooled, n);
    if (d > 1e-5) fl_test_fail_at(__FILE__, __LINE__, "FedAvg vs pooled step: %g", d);
    CHECK(d <= 1e-5);
    CHECK(rel_diff(pooled, global, n) > 0); /* the step moved the model */

    /* FedProx: the second step's gradient gains mu (w1 - w_global) = mu * (the first step's
     * delta), so with SGD: delta_mu = delta_0 - lr mu delta_1. */
    fl_plan_training h = plan.fusion;
    float *d1 = malloc(n * sizeof(float)), *d2 = malloc(n * sizeof(float));
    float *dmu = malloc(n * sizeof(float));
    h.local_steps = 2;
    CHECK_OK(fl_site_train(sites[POOLED], FL_PHASE_FUSION, &h, global, n, d2, &ex, &loss, &err),
             &err);
    h.fedprox_mu = 0.3f;
    CHECK_OK(fl_site_train(sites[POOLED], FL_PHASE_FUSION, &h, global, n, dmu, &ex, &loss, &err),
             &err);
    memcpy(d1, pooled, n * sizeof(float));
    for (size_t j = 0; j < n; j++) d2[j] -= h.lr * h.fedprox_mu * d1[j];
    d = rel_diff(dmu, d2, n);
    if (d > 1e-4) fl_test_fail_at(__FILE__, __LINE__, "FedProx step: %g", d);
    CHECK(d <= 1e-4);
    CHECK(rel_diff(dmu, d1, n) > 1e-3); /* the second step did something */

    /* Reproducible: a fresh site with the same seed trains the same minibatch round, bit for
     * bit, with Adam, AdamW and momentum SGD alike. */
    const fl_local_optimizer opts[3] = {FL_LOCAL_ADAM, FL_LOCAL_ADAMW, FL_LOCAL_SGD};
    for (int o = 0; o < 3; o++) {
        fl_plan_training hb = plan.fusion;
        hb.local_steps = 0;
        hb.epochs = 2;
        hb.batch = 8;
        hb.optimizer = opts[o];
        hb.lr = 0.01f;
        hb.momentum = 0.9f;
        hb.weight_decay = 0.01f;
        fl_site *fresh = NULL;
        CHECK_OK(fl_site_open(&fresh, paths[0], &plan, 2, 77, &err), &err);
        fl_site *again = NULL;
        CHECK_OK(fl_site_open(&again, paths[0], &plan, 2, 77, &err), &err);
        if (!fresh || !again) break;
        /* The standardization from site 0's own statistics. */
        size_t len = fl_site_statistics_len(fresh), at = 0;
        float *v = malloc(len * sizeof(float));
        CHECK_OK(fl_site_statistics(fresh, v, &err), &err);
        for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
            fl_stats_result r = {0};
            int F = (int)sm.features[m - 1];
            CHECK_OK(fl_stats_finish(v + at, F, in_dim[m - 1], &r, &err), &err);
            CHECK_OK(fl_site_set_standardization(fresh, (fl_modality)m, &r, &err), &err);
            CHECK_OK(fl_site_set_standardization(again, (fl_modality)m, &r, &err), &err);
            fl_stats_result_destroy(&r);
            at += FL_STATS_LEN(F);
        }
        free(v);
        size_t nf = fl_site_model_len(fresh, FL_PHASE_FUSION);
        CHECK_EQ_INT(nf, n);
        if (nf == n) {
            CHECK_OK(fl_site_train(fresh, FL_PHASE_FUSION, &hb, global, n, d1, &ex, &loss, &err),
                     &err);
            CHECK_OK(fl_site_train(again, FL_PHASE_FUSION, &hb, global, n, d2, &ex, &loss, &err),
                     &err);
            CHECK(memcmp(d1, d2, n * sizeof(float)) == 0);
            CHECK(isfinite(loss) && loss > 0);
            /* The next round draws other batches. */
            CHECK_OK(fl_site_train(again, FL_PHASE_FUSION, &hb, global, n, d2, &ex, &loss, &err),
                     &err);
            CHECK(memcmp(d1, d2, n * sizeof(float)) != 0);
        }
        fl_site_free(fresh);
        fl_site_free(again);
    }
    for (size_t j = 0; j < n; j++) global[j] += pooled[j];
    free(avg);
    free(delta);
    free(pooled);
    free(d1);
    free(d2);
    free(dmu);
    *n_out = n;
    return global;
}

/* The probabilities of the saved model at path on the test patients of cohort path, by the
 * pipeline's code (what `fedlung eval` runs). *n test patients; caller frees. */
static float *pipeline_scores(const char *model, const char *cohort, int32_t **labels, int *n) {
    fl_pipeline_info info;
    fl_cohort c = {0};
    fl_cohort_file *f = NULL;
    fl_fusion_inputs in = {0};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    float *probs = NULL;
    *n = 0;
    *labels = NULL;
    CHECK_OK(fl_pipeline_read(model, &info, &err), &err);
    CHECK_OK(fl_cohort_open(&f, &c, cohort, &err), &err);
    if (!f) return NULL;
    int *rows = malloc((size_t)c.P * sizeof(int));
    *labels = malloc((size_t)c.P * sizeof(int32_t));
    for (int p = 0; p < c.P; p++)
        if (c.split[p] == FL_SPLIT_TEST) {
            (*labels)[*n] = c.label[p];
            rows[(*n)++] = p;
        }
    probs = malloc((size_t)*n * N_CLASSES * sizeof(float));
    CHECK_OK(fl_fusion_inputs_load(&info, model, NULL, &c, f, 2, 1, &in, NULL, NULL, NULL, &err),
             &err);
    CHECK_OK(fl_fusion_model_load(model, &info, 64, 2, &be, &m, &err), &err);
    if (m) CHECK_OK(fl_fusion_predict(m, &in, rows, *n, probs, NULL, &err), &err);
    fl_model_free(m);
    if (be) be->destroy(be);
    fl_fusion_inputs_destroy(&in);
    fl_pipeline_info_destroy(&info);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    free(rows);
    return probs;
}

/* Histogram and summed cross-entropy of probs as fl_site_evaluate computes them. */
static void hist_of(const float *probs, const int32_t *labels, int n, int bins, uint64_t *counts,
                    double *ce) {
    fl_score_hist h = {.K = N_CLASSES, .B = bins, .counts = counts};
    memset(counts, 0, (size_t)N_CLASSES * 2 * bins * sizeof(uint64_t));
    CHECK_OK(fl_score_hist_add(&h, probs, labels, n, &err), &err);
    *ce = 0;
    for (int i = 0; i < n; i++) *ce -= log(fmax(probs[(size_t)i * N_CLASSES + labels[i]], 1e-12));
}

/* (3) The sites' histograms merge into the pooled one; AUC within binning of the exact one.
 * (4) The saved model scores the same through the pipeline. */
static void test_evaluation(const float *w, size_t n) {
    int B = plan.bins;
    size_t hn = (size_t)N_CLASSES * 2 * B;
    uint64_t *merged = calloc(hn, sizeof(uint64_t)), *one = malloc(hn * sizeof(uint64_t));
    uint64_t *pooled = malloc(hn * sizeof(uint64_t)), *mine = malloc(hn * sizeof(uint64_t));
    uint64_t per_class[N_CLASSES], pc_sum[N_CLASSES] = {0}, patients, pat_sum = 0;
    double loss, loss_sum = 0;
    for (int i = 0; i < N_SITES; i++) {
        CHECK_OK(fl_site_evaluate(sites[i], FL_PHASE_FUSION, w, n, B, 0, one, &loss, &patients,
                                  per_class, &err),
                 &err);
        for (size_t j = 0; j < hn; j++) merged[j] += one[j];
        for (int k = 0; k < N_CLASSES; k++) pc_sum[k] += per_class[k];
        pat_sum += patients;
        loss_sum += loss;
    }
    CHECK_OK(fl_site_evaluate(sites[POOLED], FL_PHASE_FUSION, w, n, B, 0, pooled, &loss, &patients,
                              per_class, &err),
             &err);
    CHECK(memcmp(merged, pooled, hn * sizeof(uint64_t)) == 0);
    CHECK_EQ_INT(pat_sum, patients);
    for (int k = 0; k < N_CLASSES; k++) CHECK_EQ_INT(pc_sum[k], per_class[k]);
    CHECK_CLOSE(loss_sum, loss, 1e-9, 0);

    const char *model = fl_test_path("fusion.h5");
    CHECK_OK(fl_site_save_model(sites[POOLED], FL_PHASE_FUSION, w, n, model, &err), &err);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    int32_t *labels;
    int nt;
    float *probs = pipeline_scores(model, paths[POOLED], &labels, &nt);
    CHECK_EQ_INT(nt, patients);
    double ce;
    hist_of(probs, labels, nt, B, mine, &ce);
    CHECK(memcmp(mine, pooled, hn * sizeof(uint64_t)) == 0);
    CHECK_CLOSE(ce, loss, 1e-6, 0);
    fl_metrics mt;
    CHECK_OK(fl_metrics_compute(probs, labels, nt, N_CLASSES, &mt, &err), &err);
    fl_score_hist h = {.K = N_CLASSES, .B = B, .counts = merged};
    for (int k = 0; k < N_CLASSES; k++) {
        /* AUC is off by at most half the share of (positive, negative) pairs in one bin. */
        const uint64_t *neg = merged + (size_t)(k * 2) * B, *pos = neg + B;
        double shared = 0, np = 0, nn = 0;
        for (int b = 0; b < B; b++) {
            shared += (double)pos[b] * neg[b];
            np += pos[b];
            nn += neg[b];
        }
        double bound = 0.5 * shared / (np * nn) + 1e-12;
        double got = fl_hist_auc(&h, k);
        if (isnan(mt.auc[k]) ? !isnan(got) : !(fabs(got - mt.auc[k]) <= bound))
            fl_test_fail_at(__FILE__, __LINE__,
                            "class %d: histogram AUC %.9g, exact %.9g, bound %g", k, got, mt.auc[k],
                            bound);
    }
    fl_metrics_destroy(&mt);
    free(probs);
    free(labels);
    free(merged);
    free(one);
    free(pooled);
    free(mine);
}

/* The image phase: the features phase's sums, local training (FedBN keeps the buffers home),
 * evaluation histograms, and a fusion model on the image embeddings saved with its RNet. */
static void test_image(void) {
    fl_graph *g = NULL;
    size_t n = 0;
    CHECK_OK(fl_plan_image_graph(&plan, &g, &err), &err);
    float *rnet = g ? initial_model(g, &n) : NULL;
    if (!rnet) return;
    CHECK_EQ_INT(fl_site_model_len(sites[0], FL_PHASE_IMAGE), n);
    int E = 0, E2 = 0;
    size_t len = FL_STATS_LEN(2048 * plan.net.width);
    float *sum = calloc(len, sizeof(float)), *one = malloc(len * sizeof(float));
    float *pooled = malloc(len * sizeof(float));
    for (int i = 0; i < N_SITES; i++) {
        CHECK_OK(fl_site_features(sites[i], rnet, n, one, &E, &err), &err);
        for (size_t j = 0; j < FL_STATS_LEN(E); j++) sum[j] += one[j];
    }
    CHECK_OK(fl_site_features(sites[POOLED], rnet, n, pooled, &E2, &err), &err);
    CHECK_EQ_INT(E, 64); /* 512 x width */
    CHECK_EQ_INT(E2, E);
    CHECK_ARRAYS("summed embedding statistics", sum, pooled, FL_STATS_LEN(E), 1e-4, 1e-3);

    float *delta = malloc(n * sizeof(float));
    double ex, loss, ex_sum = 0;
    fl_plan_training h = plan.image;
    h.fedbn = 1;
    size_t nb = 0;
    for (int i = 0; i < N_SITES; i++) {
        CHECK_OK(fl_site_train(sites[i], FL_PHASE_IMAGE, &h, rnet, n, delta, &ex, &loss, &err),
                 &err);
        ex_sum += ex;
        CHECK(isfinite(loss) && loss > 0);
    }
    fl_cohort c = {0};
    CHECK_OK(fl_cohort_load(&c, paths[POOLED], &err), &err);
    int64_t train_tiles = 0;
    for (int64_t t = 0; t < c.n_tiles; t++) train_tiles += c.split[c.tile_patient[t]] == 0;
    CHECK_EQ_INT(ex_sum, train_tiles);
    fl_cohort_destroy(&c);
    /* The buffer part: after the parameters, as long as the graph's buffer slab. */
    CHECK_OK(fl_plan_image_graph(&plan, &g, &err), &err);
    if (g) {
        nb = g->n_buffer;
        fl_graph_free(g);
    }
    int zero = 1;
    for (size_t j = n - nb; j < n; j++) zero &= delta[j] == 0;
    CHECK(nb > 0 && zero);
    h.fedbn = 0;
    CHECK_OK(fl_site_train(sites[0], FL_PHASE_IMAGE, &h, rnet, n, delta, &ex, &loss, &err), &err);
    zero = 1;
    for (size_t j = n - nb; j < n; j++) zero &= delta[j] == 0;
    CHECK(!zero);

    int B = plan.bins;
    size_t hn = (size_t)N_CLASSES * 2 * B;
    uint64_t *merged = calloc(hn, sizeof(uint64_t)), *hist = malloc(hn * sizeof(uint64_t));
    uint64_t per_class[N_CLASSES], patients, pat_sum = 0;
    double ce;
    for (int i = 0; i <= N_SITES; i++) {
        CHECK_OK(fl_site_evaluate(sites[i], FL_PHASE_IMAGE, rnet, n, B, 0, hist, &ce, &patients,
                                  per_class, &err),
                 &err);
        if (i < N_SITES) {
            for (size_t j = 0; j < hn; j++) merged[j] += hist[j];
            pat_sum += patients;
        }
    }
    CHECK(memcmp(merged, hist, hn * sizeof(uint64_t)) == 0);
    CHECK_EQ_INT(pat_sum, patients);
    CHECK(patients > 0);

    /* Fusion on the image embeddings: the saved model and its RNet score the same through
     * the pipeline (which re-embeds the patients with <model>.rnet.h5). */
    fl_site *s = NULL;
    CHECK_OK(fl_site_open(&s, paths[POOLED], &plan_img, 2, 9, &err), &err);
    if (s) {
        fl_stats_result r = {0};
        CHECK_OK(fl_site_features(s, rnet, n, one, &E, &err), &err);
        CHECK_EQ_INT(fl_site_model_len(s, FL_PHASE_FUSION), 0); /* no standardization yet */
        CHECK_OK(fl_stats_finish(one, E, 0, &r, &err), &err);
        CHECK_OK(fl_site_set_standardization(s, FL_MODALITY_IMAGE, &r, &err), &err);
        fl_stats_result_destroy(&r);
        size_t sl = fl_site_statistics_len(s);
        float *v = malloc(sl * sizeof(float));
        CHECK_OK(fl_site_statistics(s, v, &err), &err);
        fl_site_summary sm;
        fl_site_summarize(s, &sm);
        int F_rna = (int)sm.features[FL_MODALITY_RNA - 1];
        int in_dim[4] = {E, 24, 0, (int)sm.features[FL_MODALITY_CLINICAL - 1]};
        CHECK_OK(fl_stats_finish(v, F_rna, 24, &r, &err), &err);
        CHECK_OK(fl_site_set_standardization(s, FL_MODALITY_RNA, &r, &err), &err);
        fl_stats_result_destroy(&r);
        CHECK_OK(fl_stats_finish(v + FL_STATS_LEN(F_rna), in_dim[3], 0, &r, &err), &err);
        CHECK_OK(fl_site_set_standardization(s, FL_MODALITY_CLINICAL, &r, &err), &err);
        fl_stats_result_destroy(&r);
        free(v);
        size_t nf = 0;
        fl_graph *fg = NULL;
        CHECK_OK(fl_plan_fusion_graph(&plan_img, in_dim, &fg, &err), &err);
        float *w = fg ? initial_model(fg, &nf) : NULL;
        CHECK_EQ_INT(fl_site_model_len(s, FL_PHASE_FUSION), nf);
        if (w) {
            float *d = malloc(nf * sizeof(float));
            CHECK_OK(
                fl_site_train(s, FL_PHASE_FUSION, &plan_img.fusion, w, nf, d, &ex, &loss, &err),
                &err);
            for (size_t j = 0; j < nf; j++) w[j] += d[j];
            CHECK_OK(fl_site_evaluate(s, FL_PHASE_FUSION, w, nf, B, 0, hist, &ce, &patients,
                                      per_class, &err),
                     &err);
            const char *model = fl_test_path("fusion-img.h5");
            CHECK_OK(fl_site_save_model(s, FL_PHASE_FUSION, w, nf, model, &err), &err);
            char rnet_path[600];
            snprintf(rnet_path, sizeof rnet_path, "%s.rnet.h5", model);
            CHECK(fl_test_file_exists(rnet_path));
            int32_t *labels;
            int nt;
            float *probs = pipeline_scores(model, paths[POOLED], &labels, &nt);
            double ce2;
            hist_of(probs, labels, nt, B, merged, &ce2);
            CHECK(memcmp(merged, hist, hn * sizeof(uint64_t)) == 0);
            CHECK_CLOSE(ce2, ce, 1e-6, 0);
            free(probs);
            free(labels);
            free(d);
            free(w);
        }
        fl_site_free(s);
    }
    free(merged);
    free(hist);
    free(delta);
    free(sum);
    free(one);
    free(pooled);
    free(rnet);
}

/* (5) What a site refuses. */
static void test_errors(void) {
    fl_plan bad;
    fl_site *s = NULL;
    if (parse_plan(&bad, "LUAD,LUSC", 32, "rna")) return;
    CHECK_FAILS(fl_site_open(&s, paths[0], &bad, 2, 1, &err), err, paths[0]);
    CHECK_MSG(err, "classes LUAD,LUSC,NORMAL, the plan has LUAD,LUSC");
    CHECK(s == NULL);
    fl_plan_destroy(&bad);

    if (parse_plan(&bad, "LUAD,LUSC,NORMAL", 64, "rna")) return;
    CHECK_FAILS(fl_site_open(&s, paths[0], &bad, 2, 1, &err), err, paths[0]);
    CHECK_MSG(err, "tiles are 32 px, the plan's image model takes 64 px");
    fl_plan_destroy(&bad);

    const char *missing = fl_test_path("missing.h5");
    CHECK_FAILS(fl_site_open(&s, missing, &plan, 2, 1, &err), err, missing);

    /* Models of the wrong length. */
    size_t n = fl_site_model_len(sites[0], FL_PHASE_IMAGE);
    float *w = calloc(n + 1, sizeof(float)), *vec = malloc(FL_STATS_LEN(2048) * sizeof(float));
    uint64_t hist[N_CLASSES * 2 * 4], per_class[N_CLASSES], patients;
    double ex, loss;
    int E;
    CHECK(fl_site_train(sites[0], FL_PHASE_IMAGE, &plan.image, w, n - 1, w, &ex, &loss, &err) ==
          FL_ESHAPE);
    CHECK_MSG(err, "floats");
    CHECK(fl_site_features(sites[0], w, n + 1, vec, &E, &err) == FL_ESHAPE);
    CHECK(fl_site_evaluate(sites[0], FL_PHASE_IMAGE, w, 7, 4, 0, hist, &loss, &patients, per_class,
                           &err) == FL_ESHAPE);
    CHECK(fl_site_train(sites[0], FL_PHASE_STATISTICS, &plan.image, w, n, w, &ex, &loss, &err) ==
          FL_EINVAL);

    /* Fusion before its standardization; an index outside the site's features. */
    CHECK_OK(fl_site_open(&s, paths[1], &plan, 2, 1, &err), &err);
    if (s) {
        CHECK_EQ_INT(fl_site_model_len(s, FL_PHASE_FUSION), 0);
        CHECK(fl_site_train(s, FL_PHASE_FUSION, &plan.fusion, w, 10, w, &ex, &loss, &err) ==
              FL_EINVAL);
        CHECK_MSG(err, "standardization");
        uint32_t index[2] = {3, 80};
        float mean[2] = {0, 0}, sd[2] = {1, 1};
        fl_stats_result r = {.F = 80, .n = 2, .index = index, .mean = mean, .std = sd};
        CHECK(fl_site_set_standardization(s, FL_MODALITY_RNA, &r, &err) == FL_EINVAL);
        CHECK_MSG(err, "feature 80 of 80");
        index[0] = index[1] = 1; /* the image takes each of its dimensions once */
        r.F = r.n = 2;
        CHECK(fl_site_set_standardization(s, FL_MODALITY_IMAGE, &r, &err) == FL_EINVAL);
        CHECK_MSG(err, "twice");
        fl_site_free(s);
    }
    free(w);
    free(vec);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_site_")) return 1;
    const char *classes = "LUAD,LUSC,NORMAL";
    if (parse_plan(&plan, classes, 32, "rna,methylation,clinical") == 0 &&
        parse_plan(&plan_img, classes, 32, "image,rna,clinical") == 0 && make_cohorts() == 0) {
        int ok = 1;
        for (int i = 0; i <= N_SITES; i++) {
            CHECK_OK(fl_site_open(&sites[i], paths[i], &plan, 2, 11, &err), &err);
            ok &= sites[i] != NULL;
        }
        if (ok) {
            size_t n = 0;
            test_statistics();
            float *w = test_fusion_training(&n);
            if (w) test_evaluation(w, n);
            free(w);
            test_image();
            test_errors();
        }
        for (int i = 0; i <= N_SITES; i++) fl_site_free(sites[i]);
    }
    fl_plan_destroy(&plan);
    fl_plan_destroy(&plan_img);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("site");
}
