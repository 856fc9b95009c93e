/* train_image.c - RNet at one site: SGD over the train split's tiles with augmentation, patient
 * scores on the validation split after every epoch, the best epoch kept. Its training step
 * (fl_image_train_grad) is also the federation's local step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/progress.h"
#include "../eval/metrics.h"
#include "../nn/optim.h"
#include "internal.h"
#include "tiles.h"

void fl_image_train_config_default(fl_image_train_config *c) {
    memset(c, 0, sizeof *c);
    fl_resnet_config_default(&c->net);
    c->net.depth = 18;
    c->net.tile = 0;
    c->net.stem = FL_STEM_SMALL;
    c->net.width = 0.5f;
    c->epochs = 6;
    c->batch = 32;
    c->lr = 0.05f;
    c->weight_decay = 1e-4f;
    c->seed = 1;
}

/* Macro AUC of the validation patients' mean tile probabilities (NaN if undefined). */
static fl_status validate(fl_model *m, fl_cohort_file *f, const fl_cohort *c, const uint8_t *val,
                          int quiet, double *auc, fl_err *err) {
    int K = c->n_classes, n = 0;
    float *probs = malloc((size_t)c->P * K * sizeof(float)), *rows = NULL;
    int32_t *labels = malloc((size_t)c->P * sizeof(int32_t));
    uint8_t *has = calloc((size_t)c->P, 1);
    fl_status s = FL_OK;
    if (!probs || !labels || !has) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if ((s = fl_image_patient_outputs(m, f, c, val, probs, NULL, has, quiet, err)) != FL_OK)
        goto done;
    rows = probs; /* compact the scored patients in place */
    for (int p = 0; p < c->P; p++)
        if (val[p] && has[p]) {
            memmove(rows + (size_t)n * K, probs + (size_t)p * K, (size_t)K * sizeof(float));
            labels[n++] = c->label[p];
        }
    fl_metrics mt;
    *auc = NAN;
    if (n > 0 && (s = fl_metrics_compute(rows, labels, n, K, &mt, err)) == FL_OK) {
        *auc = mt.macro_auc;
        fl_metrics_destroy(&mt);
    }
done:
    free(probs);
    free(labels);
    free(has);
    return s;
}

fl_status fl_image_batch_init(fl_image_batch *b, int B, int T, fl_err *err) {
    b->B = B;
    b->T = T;
    b->raw = malloc((size_t)T * T * 3);
    b->x = malloc((size_t)B * 3 * T * T * sizeof(float));
    b->y = malloc((size_t)B * sizeof(int32_t));
    if (!b->raw || !b->x || !b->y) {
        fl_image_batch_destroy(b);
        return fl_fail(err, FL_ENOMEM, "out of memory for a batch of %d tiles", B);
    }
    return FL_OK;
}

void fl_image_batch_destroy(fl_image_batch *b) {
    free(b->raw);
    free(b->x);
    free(b->y);
    memset(b, 0, sizeof *b);
}

void fl_shuffle_i64(int64_t *a, int64_t n, fl_rng *r) {
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(fl_rng_u64(r) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

fl_status fl_image_train_grad(fl_model *m, fl_cohort_file *f, const fl_cohort *c,
                              const int64_t *tiles, fl_image_batch *b, fl_rng *r, float *loss,
                              fl_err *err) {
    int T = b->T;
    fl_status s;
    for (int i = 0; i < b->B; i++) {
        int64_t t = tiles[i];
        if ((s = fl_cohort_read_tiles(f, t, 1, b->raw, err)) != FL_OK) return s;
        fl_tile_to_input(b->raw, T, b->x + (size_t)i * 3 * T * T, r, 0.1f);
        b->y[i] = c->label[c->tile_patient[t]];
    }
    if ((s = fl_model_set_input(m, 0, b->x, err)) != FL_OK ||
        (s = fl_model_forward(m, 1, err)) != FL_OK ||
        (s = fl_model_loss_ce(m, 0, b->y, NULL, loss, err)) != FL_OK)
        return s;
    return fl_model_backward(m, err);
}

fl_status fl_train_image(const fl_image_train_config *cfg, fl_err *err) {
    fl_cohort c = {0};
    fl_cohort_file *f = NULL;
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_optim opt = {0};
    fl_graph *g = NULL;
    fl_image_batch batch = {0};
    int64_t *order = NULL;
    uint8_t *val = NULL;
    float *best = NULL;
    fl_status s = fl_cohort_open(&f, &c, cfg->cohort, err);
    if (s != FL_OK) return s;
    int B = cfg->batch, T = c.tile;
    if (T == 0) {
        s = fl_fail(err, FL_EINVAL, "%s: the cohort has no tiles to train an image model on",
                    cfg->cohort);
        goto done;
    }
    fl_resnet_config net = cfg->net;
    if (net.tile && net.tile != T) {
        s = fl_fail(err, FL_EINVAL, "%s: tiles are %d px but --tile %d was asked for", cfg->cohort,
                    T, net.tile);
        goto done;
    }
    net.tile = T;
    net.classes = c.n_classes;

    int64_t n_train = 0;
    if (!(order = malloc((size_t)(c.n_tiles + 1) * sizeof *order)) ||
        !(val = calloc((size_t)c.P + 1, 1))) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    for (int64_t t = 0; t < c.n_tiles; t++)
        if (c.split[c.tile_patient[t]] == FL_SPLIT_TRAIN) order[n_train++] = t;
    int n_val = fl_split_mask(&c, FL_SPLIT_VAL, val);
    int64_t steps_per_epoch = n_train / B;
    if (steps_per_epoch < 1) {
        s = fl_fail(err, FL_EINVAL, "%s: %lld training tiles, fewer than one batch of %d",
                    cfg->cohort, (long long)n_train, B);
        goto done;
    }

    if ((s = fl_resnet_build(&g, &net, err)) != FL_OK) goto done;
    fl_compute dev = {cfg->device, cfg->threads, cfg->precision};
    s = fl_model_on(g, B, &dev, cfg->seed, NULL, &be, &m, err);
    g = NULL;
    if (s != FL_OK) goto done;
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    oc.lr = cfg->lr;
    oc.weight_decay = cfg->weight_decay;
    oc.schedule = FL_SCHED_COSINE;
    oc.total_steps = (int)(steps_per_epoch * cfg->epochs);
    if ((s = fl_optim_init(&opt, m, &oc, err)) != FL_OK) goto done;

    const fl_graph *gr = fl_model_graph(m);
    size_t np = gr->n_trainable, nb = gr->n_buffer;
    if ((s = fl_image_batch_init(&batch, B, T, err)) != FL_OK) goto done;
    best = malloc((np + nb + 1) * sizeof(float));
    if (!best) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (!cfg->quiet) {
        char where[80];
        if (be->device == FL_DEVICE_CPU)
            snprintf(where, sizeof where, "%d threads", be->threads);
        else
            snprintf(where, sizeof where, "on %s", be->name);
        fprintf(stderr,
                "train image: resnet%d (%s stem, width %g) on %lld tiles of %d px, %d "
                "validation patients, batch %d, %d epochs, %s\n",
                net.depth, fl_stem_name(net.stem), (double)net.width, (long long)n_train, T, n_val,
                B, cfg->epochs, where);
    }
    fl_rng rng;
    fl_rng_seed(&rng, cfg->seed ^ 0x5eed);
    double best_auc = -1;
    int best_epoch = 0;
    for (int e = 0; e < cfg->epochs; e++) {
        fl_shuffle_i64(order, n_train, &rng);
        char what[64];
        snprintf(what, sizeof what, "epoch %d/%d", e + 1, cfg->epochs);
        fl_progress prog;
        fl_progress_begin(&prog, what, steps_per_epoch, cfg->quiet);
        double loss_sum = 0;
        for (int64_t st = 0; st < steps_per_epoch; st++) {
            float loss;
            if ((s = fl_image_train_grad(m, f, &c, order + st * B, &batch, &rng, &loss, err)) !=
                    FL_OK ||
                (s = fl_optim_step(&opt, NULL, err)) != FL_OK)
                goto done;
            if (!isfinite(loss)) {
                s = fl_fail(err, FL_EINVAL,
                            "training diverged (loss %g) in epoch %d; try a lower --lr",
                            (double)loss, e + 1);
                goto done;
            }
            loss_sum += loss;
            fl_progress_update(&prog, st + 1);
        }
        double auc = NAN;
        if (n_val > 0 && (s = validate(m, f, &c, val, 1, &auc, err)) != FL_OK) goto done;
        int improved = n_val == 0 || (!isnan(auc) && auc > best_auc);
        fl_progress_end(&prog, "train loss %.4f, validation macro AUC %.4f%s",
                        loss_sum / steps_per_epoch, auc, improved ? " (best)" : "");
        if (improved) {
            best_auc = isnan(auc) ? best_auc : auc;
            best_epoch = e + 1;
            be->download(be, best, fl_model_params(m), np * sizeof(float));
            be->download(be, best + np, fl_model_buffers(m), nb * sizeof(float));
        }
    }
    be->upload(be, fl_model_params(m), best, np * sizeof(float));
    be->upload(be, fl_model_buffers(m), best + np, nb * sizeof(float));

    fl_model_meta meta;
    fl_model_meta_init(&meta);
    snprintf(meta.arch, sizeof meta.arch, "resnet%d", net.depth);
    snprintf(meta.stem, sizeof meta.stem, "%s", fl_stem_name(net.stem));
    snprintf(meta.phase, sizeof meta.phase, "image");
    meta.tile = T;
    meta.classes = c.n_classes;
    meta.width = net.width;
    fl_pipeline_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.kind, sizeof info.kind, "image");
    info.n_classes = c.n_classes;
    for (int k = 0; k < c.n_classes; k++)
        snprintf(info.class_names[k], sizeof info.class_names[k], "%s", c.class_names[k]);
    info.val_macro_auc = best_auc;
    info.best_epoch = best_epoch;
    if ((s = fl_pipeline_save(m, &meta, &info, cfg->out, err)) != FL_OK) goto done;
    if (!cfg->quiet)
        fprintf(stderr, "train image: kept epoch %d (validation macro AUC %.4f)\n", best_epoch,
                best_auc);
done:
    fl_optim_destroy(&opt);
    fl_model_free(m);
    fl_graph_free(g);
    if (be) be->destroy(be);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    fl_image_batch_destroy(&batch);
    free(order);
    free(val);
    free(best);
    return s;
}
