/* test_aggregate.c - the server's aggregation: weighting, staging (a rejected or partial update
 * never touches the sum; empty updates), FedAdam / FedYogi against their formulas, FedBN, and
 * FedAvg's defining identity with the real engine: three clients each taking one full-batch SGD
 * step and averaged by example count give the centralized full-batch step on the union. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../nn/fusion.h"
#include "../nn/optim.h"
#include "../server/aggregate.h"
#include "harness.h"

static void test_weighting_and_staging(void) {
    fl_err err = {{0}};
    fl_aggregator a;
    fl_agg_config c;
    fl_agg_config_default(&c, 3, 1);
    CHECK_OK(fl_agg_init(&a, &c, &err), &err);
    float g[4] = {1, 2, 3, 10};
    float d1[4] = {1, 1, 1, 1}, d2[4] = {5, -3, 0, 3};
    fl_agg_begin_round(&a);
    CHECK_OK(fl_agg_stage_begin(&a, 3, &err), &err);
    CHECK(fl_agg_stage_begin(&a, 1, &err) == FL_EINVAL);        /* one upload at a time */
    CHECK_OK(fl_agg_stage_chunk(&a, 2, d1 + 2, 2, &err), &err); /* chunks in any order */
    CHECK_OK(fl_agg_stage_chunk(&a, 0, d1, 2, &err), &err);
    CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
    /* A partial update is refused and leaves no trace. */
    CHECK_OK(fl_agg_stage_begin(&a, 100, &err), &err);
    CHECK_OK(fl_agg_stage_chunk(&a, 0, d2, 3, &err), &err);
    CHECK(fl_agg_stage_commit(&a, &err) == FL_ESHAPE);
    CHECK(fl_agg_stage_chunk(&a, 3, d2, 2, &err) == FL_EINVAL); /* no update open */
    /* An aborted update (e.g. a SHA-256 mismatch) likewise. */
    CHECK_OK(fl_agg_stage_begin(&a, 100, &err), &err);
    CHECK_OK(fl_agg_stage_chunk(&a, 0, d2, 4, &err), &err);
    fl_agg_stage_abort(&a);
    CHECK(fl_agg_stage_chunk(&a, 4, d2, 1, &err) == FL_EINVAL);
    CHECK_OK(fl_agg_stage_begin(&a, 1, &err), &err);
    CHECK(fl_agg_stage_chunk(&a, 3, d2, 2, &err) == FL_ESHAPE); /* beyond the model */
    CHECK_OK(fl_agg_stage_chunk(&a, 0, d2, 4, &err), &err);
    CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
    CHECK_EQ_INT(a.accepted, 2);
    CHECK_OK(fl_agg_finish(&a, g, &err), &err);
    /* weights 3 and 1: avg = (3*d1 + d2) / 4 */
    CHECK_CLOSE(g[0], 1 + (3 + 5) / 4.0, 1e-6, 0);
    CHECK_CLOSE(g[1], 2 + (3 - 3) / 4.0, 1e-6, 0);
    CHECK_CLOSE(g[2], 3 + 3 / 4.0, 1e-6, 0);
    CHECK_CLOSE(g[3], 10 + (3 + 3) / 4.0, 1e-6, 0); /* buffers are averaged too */
    fl_agg_begin_round(&a);
    CHECK(fl_agg_finish(&a, g, &err) == FL_EINVAL); /* nothing accepted */
    fl_agg_destroy(&a);
}

/* Updates of no values: the features phase's acknowledgments under site standardization. Each
 * is counted; a value in one is refused. */
static void test_empty_updates(void) {
    fl_err err = {{0}};
    fl_aggregator a;
    fl_agg_config c;
    fl_agg_config_default(&c, 0, 0);
    CHECK_OK(fl_agg_init(&a, &c, &err), &err);
    float x = 1;
    fl_agg_begin_round(&a);
    for (int k = 0; k < 3; k++) {
        CHECK_OK(fl_agg_stage_begin(&a, 1, &err), &err);
        if (k == 1) CHECK(fl_agg_stage_chunk(&a, 0, &x, 1, &err) == FL_ESHAPE);
        CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
    }
    CHECK_EQ_INT(a.accepted, 3);
    fl_agg_destroy(&a);
}

static void test_adaptive_and_fedbn(void) {
    fl_err err = {{0}};
    for (int yogi = 0; yogi < 2; yogi++) {
        fl_aggregator a;
        fl_agg_config c;
        fl_agg_config_default(&c, 2, 1);
        c.strategy = yogi ? FL_AGG_FEDYOGI : FL_AGG_FEDADAM;
        c.server_lr = 0.1f;
        c.fedbn = 1;
        CHECK_OK(fl_agg_init(&a, &c, &err), &err);
        float g[3] = {0, 0, 7};
        double m[2] = {0, 0}, v[2] = {0, 0}, ref[2] = {0, 0};
        float deltas[2][3] = {{0.5f, -2.0f, 1.0f}, {0.1f, 1.0f, 1.0f}};
        for (int r = 0; r < 2; r++) {
            fl_agg_begin_round(&a);
            CHECK_OK(fl_agg_stage_begin(&a, 1, &err), &err);
            CHECK_OK(fl_agg_stage_chunk(&a, 0, deltas[r], 3, &err), &err);
            CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
            CHECK_OK(fl_agg_finish(&a, g, &err), &err);
            for (int i = 0; i < 2; i++) {
                double d = deltas[r][i], d2 = d * d;
                m[i] = 0.9 * m[i] + 0.1 * d;
                if (yogi)
                    v[i] -= 0.01 * d2 * (v[i] > d2 ? 1 : v[i] < d2 ? -1 : 0);
                else
                    v[i] = 0.99 * v[i] + 0.01 * d2;
                ref[i] += 0.1 * m[i] / (sqrt(v[i]) + 1e-3);
            }
        }
        CHECK_CLOSE(g[0], ref[0], 1e-5, 1e-7);
        CHECK_CLOSE(g[1], ref[1], 1e-5, 1e-7);
        CHECK(g[2] == 7.0f); /* FedBN: the global buffers never move */
        fl_agg_destroy(&a);
    }
}

/* ---- FedAvg's identity with the engine ---- */

enum { FEATURES = 6, CLASSES = 3 };

static fl_model *mlp(fl_backend *be, int batch) {
    fl_err err = {{0}};
    fl_fusion_config c;
    fl_fusion_config_default(&c);
    c.n_modalities = 1;
    strcpy(c.names[0], "x");
    c.in_dim[0] = FEATURES;
    c.enc_dim = 5;
    c.hidden = 4;
    c.dropout = 0;
    c.classes = CLASSES;
    fl_graph *g;
    fl_model *m = NULL;
    CHECK_OK(fl_fusion_build(&g, &c, &err), &err);
    CHECK_OK(fl_model_new(&m, g, be, batch, 17, &err), &err);
    return m;
}

/* One plain full-batch SGD step (no momentum, no decay) from w on rows [from, from+n). */
static void sgd_step(fl_backend *be, const float *w, const float *x, const int32_t *y, int from,
                     int n, float lr, float *out) {
    fl_err err = {{0}};
    fl_model *m = mlp(be, n);
    size_t P = fl_model_graph(m)->n_trainable;
    memcpy(fl_model_params(m), w, P * sizeof(float));
    float *ones = malloc((size_t)n * sizeof(float)), loss;
    for (int i = 0; i < n; i++) ones[i] = 1;
    CHECK_OK(fl_model_set_input(m, 0, x + (size_t)from * FEATURES, &err), &err);
    CHECK_OK(fl_model_set_input(m, 1, ones, &err), &err);
    CHECK_OK(fl_model_forward(m, 1, &err), &err);
    CHECK_OK(fl_model_loss_ce(m, 0, y + from, NULL, &loss, &err), &err);
    CHECK_OK(fl_model_backward(m, &err), &err);
    fl_optim o;
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    oc.lr = lr;
    oc.momentum = 0;
    oc.weight_decay = 0;
    CHECK_OK(fl_optim_init(&o, m, &oc, &err), &err);
    CHECK_OK(fl_optim_step(&o, NULL, &err), &err);
    memcpy(out, fl_model_params(m), P * sizeof(float));
    fl_optim_destroy(&o);
    fl_model_free(m);
    free(ones);
}

static void test_fedavg_identity(fl_backend *be) {
    enum { N = 16 };
    static const int sizes[3] = {5, 7, 4};
    fl_err err = {{0}};
    fl_model *m0 = mlp(be, 1);
    size_t P = fl_model_graph(m0)->n_trainable;
    float *fed = malloc(P * sizeof(float)), *central = malloc(P * sizeof(float));
    float *local = malloc(P * sizeof(float)), *delta = malloc(P * sizeof(float));
    memcpy(fed, fl_model_params(m0), P * sizeof(float));
    memcpy(central, fed, P * sizeof(float));
    fl_model_free(m0);
    float x[N * FEATURES];
    int32_t y[N];
    fl_rng r;
    fl_rng_seed(&r, 3);
    for (int i = 0; i < N * FEATURES; i++) x[i] = (float)fl_rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = (int32_t)(fl_rng_u64(&r) % CLASSES);
    fl_aggregator a;
    fl_agg_config c;
    fl_agg_config_default(&c, P, 0);
    CHECK_OK(fl_agg_init(&a, &c, &err), &err);
    for (int round = 0; round < 3; round++) {
        fl_agg_begin_round(&a);
        for (int k = 0, from = 0; k < 3; from += sizes[k++]) {
            sgd_step(be, fed, x, y, from, sizes[k], 0.5f, local);
            for (size_t i = 0; i < P; i++) delta[i] = local[i] - fed[i];
            CHECK_OK(fl_agg_stage_begin(&a, sizes[k], &err), &err);
            CHECK_OK(fl_agg_stage_chunk(&a, 0, delta, P, &err), &err);
            CHECK_OK(fl_agg_stage_commit(&a, &err), &err);
        }
        CHECK_OK(fl_agg_finish(&a, fed, &err), &err);
        sgd_step(be, central, x, y, 0, N, 0.5f, central);
    }
    CHECK_ARRAYS("FedAvg vs centralized after 3 rounds", fed, central, P, 1e-4, 1e-2);
    fl_agg_destroy(&a);
    free(fed);
    free(central);
    free(local);
    free(delta);
}

/* Secure aggregation hands the server a decoded sum: fl_agg_add_sum of n updates must move the
 * model exactly as n staged commits of weight 1. */
static void test_add_sum(void) {
    fl_err err = {{0}};
    fl_agg_config c;
    fl_aggregator ag, bg;
    fl_agg_config_default(&c, 3, 1);
    CHECK(fl_agg_init(&ag, &c, &err) == FL_OK && fl_agg_init(&bg, &c, &err) == FL_OK);
    fl_agg_begin_round(&ag);
    fl_agg_begin_round(&bg);
    float d[3][4] = {{1, 2, 3, 4}, {0.5f, -1, 2, 0}, {-3, 1, 1, 8}}, sum[4] = {0};
    for (int i = 0; i < 3; i++) {
        CHECK(fl_agg_stage_begin(&ag, 1, &err) == FL_OK);
        CHECK(fl_agg_stage_chunk(&ag, 0, d[i], 4, &err) == FL_OK);
        CHECK(fl_agg_stage_commit(&ag, &err) == FL_OK);
        for (int j = 0; j < 4; j++) sum[j] += d[i][j];
    }
    CHECK(fl_agg_add_sum(&bg, sum, 3, &err) == FL_OK);
    CHECK(fl_agg_add_sum(&bg, sum, 0, &err) == FL_EINVAL);
    float ga[4] = {0}, gb[4] = {0};
    CHECK(fl_agg_finish(&ag, ga, &err) == FL_OK && fl_agg_finish(&bg, gb, &err) == FL_OK);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(ga[j], gb[j], 1e-6, 1e-7);
    fl_agg_destroy(&ag);
    fl_agg_destroy(&bg);
}

int main(void) {
    fl_err err = {{0}};
    test_add_sum();
    fl_backend *be = fl_backend_cpu_new(2, &err);
    CHECK(be != NULL);
    test_weighting_and_staging();
    test_empty_updates();
    test_adaptive_and_fedbn();
    if (be) test_fedavg_identity(be);
    if (be) be->destroy(be);
    return fl_test_summary("test_aggregate");
}
