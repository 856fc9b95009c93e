/* site_train.c - a site's local training round (from the global model to its update) and its
 * federated evaluation (score histograms of the test patients). The steps are the single-site
 * trainers' (pipeline/internal.h); what the federation adds is a constant learning rate per
 * round, FedProx's proximal term, and the update as a difference from the global model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/metrics.h"
#include "../nn/optim.h"
#include "site_impl.h"

/* The local optimizer of h, at a constant learning rate. Adam's weight decay is an L2 term in
 * the gradient (PyTorch's Adam; see grad_terms), so it runs as AdamW without decoupled decay. */
static void local_optimizer(const fl_plan_training *h, fl_optim_config *oc) {
    fl_optim_config_default(oc);
    oc->lr = h->lr;
    oc->schedule = FL_SCHED_CONSTANT;
    oc->weight_decay = h->weight_decay;
    oc->momentum = h->momentum;
    if (h->optimizer != FL_LOCAL_SGD) oc->kind = FL_OPT_ADAMW;
    if (h->optimizer == FL_LOCAL_ADAM) oc->weight_decay = 0;
}

/* What the local objective adds to the loss's gradient before each step: FedProx's
 * mu (w - w_global) and Adam's L2 decay l2 w, as g += (mu + l2) w - mu w_global. */
typedef struct {
    float mu, l2;
    float *anchor; /* device, n_trainable: -mu w_global */
    float *tmp;    /* device, n_trainable */
} grad_terms;

static fl_status grad_terms_init(grad_terms *t, fl_model *m, const fl_plan_training *h,
                                 const float *global, fl_err *err) {
    fl_backend *be = fl_model_backend(m);
    size_t np = fl_model_graph(m)->n_trainable, bytes = (np + 1) * sizeof(float);
    memset(t, 0, sizeof *t);
    t->mu = h->fedprox_mu;
    t->l2 = h->optimizer == FL_LOCAL_ADAM ? h->weight_decay : 0.0f;
    if (t->mu == 0 && t->l2 == 0) return FL_OK;
    t->tmp = be->alloc(be, bytes);
    t->anchor = be->alloc(be, bytes);
    if (!t->tmp || !t->anchor) return fl_fail(err, FL_ENOMEM, "out of memory for FedProx");
    be->upload(be, t->anchor, global, np * sizeof(float));
    be->scale(be, t->anchor, -t->mu, np);
    return FL_OK;
}

static void grad_terms_apply(const grad_terms *t, fl_model *m) {
    if (!t->tmp) return;
    fl_backend *be = fl_model_backend(m);
    size_t np = fl_model_graph(m)->n_trainable;
    be->copy(be, t->tmp, fl_model_params(m), np * sizeof(float));
    be->scale(be, t->tmp, t->mu + t->l2, np);
    be->accumulate(be, t->tmp, t->anchor, 1.0f, np);
    be->accumulate(be, fl_model_grads(m), t->tmp, 1.0f, np);
}

static void grad_terms_destroy(grad_terms *t, fl_model *m) {
    if (!m) return;
    fl_backend *be = fl_model_backend(m);
    be->free(be, t->tmp);
    be->free(be, t->anchor);
    memset(t, 0, sizeof *t);
}

/* The examples of one round in their shuffled order: tiles (image) or patients (fusion), and the
 * scratch of a batch. */
typedef struct {
    int image;
    int64_t n, at; /* examples, and where the next batch starts in the current shuffle */
    int B;
    int64_t *tiles;
    int *rows;
    fl_image_batch batch;
    int32_t *y, *ys;
} examples;

static fl_status examples_init(examples *e, fl_site *s, int image, int B, fl_err *err) {
    memset(e, 0, sizeof *e);
    e->image = image;
    e->n = e->at = image ? s->n_train_tiles : s->n_train;
    e->B = B;
    if (image) {
        e->tiles = malloc((size_t)e->n * sizeof(int64_t));
        if (!e->tiles)
            return fl_fail(err, FL_ENOMEM, "out of memory for %lld tiles", (long long)e->n);
        memcpy(e->tiles, s->train_tiles, (size_t)e->n * sizeof(int64_t));
        return fl_image_batch_init(&e->batch, B, s->c.tile, err);
    }
    e->rows = malloc((size_t)e->n * sizeof(int));
    e->y = malloc((size_t)B * sizeof(int32_t));
    e->ys = malloc((size_t)B * sizeof(int32_t));
    if (!e->rows || !e->y || !e->ys) return fl_fail(err, FL_ENOMEM, "out of memory");
    memcpy(e->rows, s->train_rows, (size_t)e->n * sizeof(int));
    return FL_OK;
}

static void examples_destroy(examples *e) {
    free(e->tiles);
    free(e->rows);
    free(e->y);
    free(e->ys);
    fl_image_batch_destroy(&e->batch);
}

/* One step's gradient on the next batch. An epoch is a shuffle: the image drops the last
 * partial batch (BatchNorm wants full batches, as the single-site trainer), fusion pads it. */
static fl_status next_grad(examples *e, fl_site *s, fl_model *m, fl_rng *r, float *loss,
                           fl_err *err) {
    if (e->image) {
        if (e->at + e->B > e->n) {
            fl_shuffle_i64(e->tiles, e->n, r);
            e->at = 0;
        }
        e->at += e->B;
        return fl_image_train_grad(m, s->f, &s->c, e->tiles + e->at - e->B, &e->batch, r, loss,
                                   err);
    }
    if (e->at >= e->n) {
        fl_shuffle_int(e->rows, (int)e->n, r);
        e->at = 0;
    }
    int k = e->n - e->at < e->B ? (int)(e->n - e->at) : e->B;
    e->at += k;
    return fl_fusion_train_grad(m, &s->in, &s->c, e->rows + e->at - k, k, 0, e->y, e->ys, loss,
                                err);
}

fl_status fl_site_train(fl_site *s, fl_phase ph, const fl_plan_training *h, const float *global,
                        size_t n, float *delta, double *examples_out, double *loss_out,
                        fl_err *err) {
    if (ph != FL_PHASE_IMAGE && ph != FL_PHASE_FUSION)
        return fl_fail(err, FL_EINVAL, "the %s phase does not train", fl_phase_name(ph));
    int image = ph == FL_PHASE_IMAGE;
    int64_t n_ex = image ? s->n_train_tiles : s->n_train;
    if (n_ex < 1)
        return fl_fail(err, FL_EINVAL, "%s: no training %s", s->path, image ? "tiles" : "patients");
    if (h->batch < 1) return fl_fail(err, FL_EINVAL, "the batch size must be >= 1");
    int B = h->batch < n_ex ? h->batch : (int)n_ex;
    int64_t per_epoch = image ? n_ex / B : (n_ex + B - 1) / B;
    int64_t steps = h->local_steps > 0 ? h->local_steps : (int64_t)h->epochs * per_epoch;
    fl_status st;
    fl_site_dp_round dr; /* DP-SGD: its own steps, batch and population (site_dp.c) */
    fl_site_dp *dp = NULL;
    if (fl_site_dp_on(s)) {
        if ((st = fl_site_dp_plan(s, ph, h, &dr, err)) != FL_OK) return st;
        B = dr.batch;
        steps = dr.steps;
        n_ex = dr.n_patients;
    }
    if (steps < 1) return fl_fail(err, FL_EINVAL, "no local steps (local_steps and epochs are 0)");
    if (!image && (st = fl_site_fusion_inputs(s, err)) != FL_OK) return st;
    /* Each round draws its own shuffles, augmentations and dropout masks, the same on a rerun. */
    uint64_t seed = s->seed + ++s->rounds;
    fl_backend *be;
    fl_model *m;
    if ((st = fl_site_model(s, ph, global, n, B, seed, &be, &m, err)) != FL_OK) return st;
    fl_optim opt = {0};
    fl_optim_config oc;
    grad_terms terms = {0};
    examples ex;
    local_optimizer(h, &oc);
    if ((st = examples_init(&ex, s, image, B, err)) != FL_OK ||
        (st = fl_optim_init(&opt, m, &oc, err)) != FL_OK ||
        (st = grad_terms_init(&terms, m, h, global, err)) != FL_OK ||
        (fl_site_dp_on(s) && (st = fl_site_dp_new(&dp, s, ph, m, &dr, err)) != FL_OK))
        goto done;
    fl_rng rng;
    fl_rng_seed(&rng, seed ^ 0x5173);
    double loss_sum = 0;
    for (int64_t k = 0; k < steps; k++) {
        float loss;
        st = dp ? fl_site_dp_step(dp, &rng, &loss, err) : next_grad(&ex, s, m, &rng, &loss, err);
        if (st != FL_OK) goto done;
        if (!isfinite(loss)) {
            st = fl_fail(err, FL_EINVAL, "%s: local training diverged (loss %g at step %lld)",
                         s->path, (double)loss, (long long)k + 1);
            goto done;
        }
        grad_terms_apply(&terms, m);
        if ((st = fl_optim_step(&opt, NULL, err)) != FL_OK) goto done;
        loss_sum += loss;
    }
    const fl_graph *g = fl_model_graph(m);
    size_t np = g->n_trainable, nb = g->n_buffer;
    be->download(be, delta, fl_model_params(m), np * sizeof(float));
    be->download(be, delta + np, fl_model_buffers(m), nb * sizeof(float));
    for (size_t i = 0; i < n; i++) delta[i] -= global[i];
    if (h->fedbn) memset(delta + np, 0, nb * sizeof(float));
    *examples_out = (double)n_ex;
    *loss_out = dp ? fl_site_dp_finish(dp) : loss_sum / (double)steps;
    dp = NULL;
done:
    fl_site_dp_free(dp);
    grad_terms_destroy(&terms, m);
    fl_optim_destroy(&opt);
    examples_destroy(&ex);
    fl_model_free(m);
    be->destroy(be);
    return st;
}

/* Scores the test patients with the global model: probs (n x K, compacted) of rows[0..*n). The
 * image scores the test patients that have tiles (mean tile probability). */
static fl_status score_test(fl_site *s, fl_phase ph, const float *global, size_t n_w, float *probs,
                            int *rows, int *n, fl_err *err) {
    int image = ph == FL_PHASE_IMAGE, K = s->p->n_classes, P = s->c.P;
    fl_backend *be;
    fl_model *m;
    uint8_t *want = NULL, *has = NULL;
    fl_status st;
    *n = 0;
    if (!image && (st = fl_site_fusion_inputs(s, err)) != FL_OK) return st;
    /* The batch sizes of `fedlung eval`, so a saved model scores the same there. */
    if ((st = fl_site_model(s, ph, global, n_w, image ? 32 : 64, s->seed, &be, &m, err)) != FL_OK)
        return st;
    if (!image) {
        memcpy(rows, s->test_rows, (size_t)s->n_test * sizeof(int));
        *n = s->n_test;
        st = fl_fusion_predict(m, &s->in, rows, *n, probs, NULL, err);
        goto done;
    }
    want = calloc((size_t)P + 1, 1);
    has = calloc((size_t)P + 1, 1);
    if (!want || !has) {
        st = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < s->n_test; i++) want[s->test_rows[i]] = 1;
    if ((st = fl_image_patient_outputs(m, s->f, &s->c, want, probs, NULL, has, 1, err)) != FL_OK)
        goto done;
    for (int p = 0; p < P; p++) /* compact in place: row n <= p */
        if (want[p] && has[p]) {
            memmove(probs + (size_t)*n * K, probs + (size_t)p * K, (size_t)K * sizeof(float));
            rows[(*n)++] = p;
        }
done:
    free(want);
    free(has);
    fl_model_free(m);
    be->destroy(be);
    return st;
}

fl_status fl_site_evaluate(fl_site *s, fl_phase ph, const float *global, size_t n, int bins,
                           double loss_clip, uint64_t *hist, double *loss_sum, uint64_t *patients,
                           uint64_t *per_class, fl_err *err) {
    if (ph != FL_PHASE_IMAGE && ph != FL_PHASE_FUSION)
        return fl_fail(err, FL_EINVAL, "the %s phase has no model to evaluate", fl_phase_name(ph));
    if (bins < 1) return fl_fail(err, FL_EINVAL, "%d histogram bins", bins);
    int K = s->p->n_classes, P = s->c.P, scored = 0;
    float *probs = malloc(((size_t)P * K + 1) * sizeof(float));
    int *rows = malloc(((size_t)P + 1) * sizeof(int));
    int32_t *labels = malloc(((size_t)P + 1) * sizeof(int32_t));
    fl_status st = FL_OK;
    if (!probs || !rows || !labels) st = fl_fail(err, FL_ENOMEM, "out of memory");
    if (st == FL_OK) st = score_test(s, ph, global, n, probs, rows, &scored, err);
    if (st != FL_OK) goto done;
    memset(hist, 0, (size_t)K * 2 * bins * sizeof(uint64_t));
    memset(per_class, 0, (size_t)K * sizeof(uint64_t));
    double ce = 0;
    for (int i = 0; i < scored; i++) {
        labels[i] = s->c.label[rows[i]];
        float p_true = probs[(size_t)i * K + labels[i]];
        double l = -log(p_true > 1e-12f ? (double)p_true : 1e-12);
        ce += loss_clip > 0 && l > loss_clip ? loss_clip : l; /* in [0, L]: its sensitivity */
        per_class[labels[i]]++;
    }
    fl_score_hist h = {.K = K, .B = bins, .counts = hist}; /* filled in the caller's memory */
    if ((st = fl_score_hist_add(&h, probs, labels, scored, err)) != FL_OK) goto done;
    *loss_sum = ce;
    *patients = (uint64_t)scored;
done:
    free(probs);
    free(rows);
    free(labels);
    return st;
}
