/* train_fusion.c - MMLM at one site: standardization fitted on the train split, patient
 * embeddings from RNet, AdamW over the train patients, the best validation epoch kept. Its
 * training step (fl_fusion_train_grad) is also the federation's local step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/progress.h"
#include "../common/rng.h"
#include "../eval/metrics.h"
#include "../nn/optim.h"
#include "internal.h"

void fl_fusion_train_config_default(fl_fusion_train_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 150;
    c->batch = 32;
    c->lr = 3e-3f;
    c->weight_decay = 1e-2f;
    c->rna_features = 256;
    c->meth_features = 256;
    c->mvalue = 1;
    c->enc_dim = 32;
    c->hidden = 32;
    c->dropout = 0.2f;
    c->seed = 1;
}

/* Which modalities to use, in the fixed order image, rna, methylation, clinical. */
static fl_status choose_modalities(const fl_fusion_train_config *cfg, const fl_cohort *c,
                                   fl_pipeline_info *info, fl_err *err) {
    static const struct {
        unsigned bit;
        const char *name;
        int omics; /* -1: image */
    } all[] = {{FL_USE_IMAGE, "image", -1},
               {FL_USE_RNA, "rna", FL_MOD_RNA},
               {FL_USE_METHYLATION, "methylation", FL_MOD_METHYLATION},
               {FL_USE_CLINICAL, "clinical", FL_MOD_CLINICAL}};
    for (int i = 0; i < 4; i++) {
        int available = all[i].omics < 0 ? cfg->image_model != NULL : c->omics[all[i].omics].F > 0;
        int wanted = cfg->modalities ? (cfg->modalities & all[i].bit) != 0 : available;
        if (!wanted) continue;
        if (!available && all[i].omics < 0)
            return fl_fail(err, FL_EINVAL, "the image modality needs --image-model");
        if (!available)
            return fl_fail(err, FL_EINVAL, "%s: the cohort has no %s data", cfg->cohort,
                           all[i].name);
        snprintf(info->modalities[info->n_modalities++], sizeof info->modalities[0], "%s",
                 all[i].name);
    }
    if (info->n_modalities == 0)
        return fl_fail(err, FL_EINVAL, "%s: no modality to train on", cfg->cohort);
    return FL_OK;
}

/* Macro AUC on the patients rows[0..n). */
static fl_status score(fl_model *m, const fl_fusion_inputs *in, const fl_cohort *c, const int *rows,
                       int n, double *auc, fl_err *err) {
    int K = c->n_classes;
    float *probs = malloc((size_t)n * K * sizeof(float) + 1);
    int32_t *labels = malloc((size_t)n * sizeof(int32_t) + 1);
    fl_status s = FL_OK;
    *auc = NAN;
    if (!probs || !labels) s = fl_fail(err, FL_ENOMEM, "out of memory");
    if (s == FL_OK) s = fl_fusion_predict(m, in, rows, n, probs, NULL, err);
    if (s == FL_OK) {
        for (int i = 0; i < n; i++) labels[i] = c->label[rows[i]];
        fl_metrics mt;
        if ((s = fl_metrics_compute(probs, labels, n, K, &mt, err)) == FL_OK) {
            *auc = mt.macro_auc;
            fl_metrics_destroy(&mt);
        }
    }
    free(probs);
    free(labels);
    return s;
}

void fl_shuffle_int(int *a, int n, fl_rng *r) {
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(fl_rng_u64(r) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

fl_status fl_fusion_train_grad(fl_model *m, const fl_fusion_inputs *in, const fl_cohort *c,
                               const int *rows, int n, int stages, int32_t *y, int32_t *ys,
                               float *loss, fl_err *err) {
    int B = fl_model_batch(m);
    float stage_loss;
    fl_status s;
    for (int r = 0; r < B; r++) { /* padding rows are ignored by the loss */
        y[r] = r < n ? c->label[rows[r]] : -1;
        ys[r] = r < n ? c->stage[rows[r]] : -1;
    }
    if ((s = fl_fusion_set_batch(m, in, rows, n, err)) != FL_OK ||
        (s = fl_model_forward(m, 1, err)) != FL_OK ||
        (s = fl_model_loss_ce(m, 0, y, NULL, loss, err)) != FL_OK ||
        (stages && (s = fl_model_loss_ce(m, 1, ys, NULL, &stage_loss, err)) != FL_OK))
        return s;
    return fl_model_backward(m, err);
}

fl_status fl_train_fusion(const fl_fusion_train_config *cfg, fl_err *err) {
    fl_cohort c = {0};
    fl_cohort_file *f = NULL;
    fl_pipeline_info info;
    fl_fusion_inputs in = {0};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_graph *g = NULL;
    fl_optim opt = {0};
    float *emb = NULL, *best = NULL;
    uint8_t *has = NULL, *train = NULL;
    int *tr = NULL, *va = NULL;
    int32_t *y = NULL, *ys = NULL;
    memset(&info, 0, sizeof info);
    fl_compute dev = {cfg->device, cfg->threads, cfg->precision};
    fl_status s = fl_cohort_open(&f, &c, cfg->cohort, err);
    if (s != FL_OK) return s;
    if ((s = choose_modalities(cfg, &c, &info, err)) != FL_OK) goto done;
    snprintf(info.kind, sizeof info.kind, "fusion");
    info.n_classes = c.n_classes;
    for (int k = 0; k < c.n_classes; k++)
        snprintf(info.class_names[k], sizeof info.class_names[k], "%s", c.class_names[k]);
    info.enc_dim = cfg->enc_dim;
    info.hidden = cfg->hidden;
    info.dropout = cfg->dropout;
    info.stages = cfg->stage_head ? 4 : 0;

    train = calloc((size_t)c.P + 1, 1);
    tr = malloc((size_t)c.P * sizeof(int) + 1);
    va = malloc((size_t)c.P * sizeof(int) + 1);
    if (!train || !tr || !va) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    int n_tr = 0, n_va = 0;
    for (int p = 0; p < c.P; p++) {
        train[p] = c.split[p] == FL_SPLIT_TRAIN;
        if (train[p]) tr[n_tr++] = p;
        if (c.split[p] == FL_SPLIT_VAL) va[n_va++] = p;
    }
    if (n_tr < 2) {
        s = fl_fail(err, FL_EINVAL, "%s: only %d training patients", cfg->cohort, n_tr);
        goto done;
    }

    /* Standardization, fitted on the training patients only. */
    for (int i = 0; i < info.n_modalities; i++) {
        const char *name = info.modalities[i];
        if (strcmp(name, "image") == 0) {
            int E;
            if ((s = fl_image_embeddings(cfg->image_model, &c, f, &dev, cfg->quiet, &emb, &E, &has,
                                         info.image_sha256, err)) != FL_OK ||
                (s = fl_standardizer_fit_dense(&info.std[i], emb, c.P, E, train, has, err)) !=
                    FL_OK)
                goto done;
            snprintf(info.image_model, sizeof info.image_model, "%s", cfg->image_model);
        } else {
            fl_omics o = strcmp(name, "rna") == 0           ? FL_MOD_RNA
                         : strcmp(name, "methylation") == 0 ? FL_MOD_METHYLATION
                                                            : FL_MOD_CLINICAL;
            int top = o == FL_MOD_RNA           ? cfg->rna_features
                      : o == FL_MOD_METHYLATION ? cfg->meth_features
                                                : 0;
            if ((s = fl_standardizer_fit(&info.std[i], &c.omics[o], c.P, train, top,
                                         o == FL_MOD_METHYLATION && cfg->mvalue, err)) != FL_OK) {
                char what[FL_ERR_LEN];
                snprintf(what, sizeof what, "%s", err->msg);
                s = fl_fail(err, s, "%s: %s: %s", cfg->cohort, name, what);
                goto done;
            }
        }
        info.in_dim[i] = info.std[i].n;
    }
    if ((s = fl_fusion_inputs_build(&info, &c, emb, has, &in, err)) != FL_OK) goto done;

    info.n_classes = c.n_classes;
    int B = cfg->batch < n_tr ? cfg->batch : n_tr;
    if ((s = fl_fusion_graph_build(&info, &g, err)) != FL_OK) goto done;
    s = fl_model_on(g, B, &dev, cfg->seed, NULL, &be, &m, err);
    g = NULL;
    if (s != FL_OK) goto done;
    int steps_per_epoch = (n_tr + B - 1) / B;
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    oc.kind = FL_OPT_ADAMW;
    oc.lr = cfg->lr;
    oc.weight_decay = cfg->weight_decay;
    oc.schedule = FL_SCHED_COSINE;
    oc.total_steps = steps_per_epoch * cfg->epochs;
    if ((s = fl_optim_init(&opt, m, &oc, err)) != FL_OK) goto done;

    const fl_graph *gr = fl_model_graph(m);
    size_t np = gr->n_trainable;
    y = malloc((size_t)B * sizeof(int32_t));
    ys = malloc((size_t)B * sizeof(int32_t));
    best = malloc((np + 1) * sizeof(float));
    if (!y || !ys || !best) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (!cfg->quiet) {
        fprintf(stderr, "train fusion: %d training and %d validation patients; modalities", n_tr,
                n_va);
        for (int i = 0; i < info.n_modalities; i++)
            fprintf(stderr, " %s(%d)", info.modalities[i], info.in_dim[i]);
        fprintf(stderr, "; %d epochs", cfg->epochs);
        if (be->device != FL_DEVICE_CPU) fprintf(stderr, ", on %s", be->name);
        fputc('\n', stderr);
    }
    fl_rng rng;
    fl_rng_seed(&rng, cfg->seed ^ 0xf05e);
    double best_auc = -1;
    fl_progress prog;
    fl_progress_begin(&prog, "train fusion", cfg->epochs, cfg->quiet);
    for (int e = 0; e < cfg->epochs; e++) {
        fl_shuffle_int(tr, n_tr, &rng);
        for (int at = 0; at < n_tr; at += B) {
            int k = n_tr - at < B ? n_tr - at : B;
            float loss;
            if ((s = fl_fusion_train_grad(m, &in, &c, tr + at, k, info.stages, y, ys, &loss,
                                          err)) != FL_OK ||
                (s = fl_optim_step(&opt, NULL, err)) != FL_OK)
                goto done;
        }
        double auc = NAN;
        if (n_va > 0 && (s = score(m, &in, &c, va, n_va, &auc, err)) != FL_OK) goto done;
        /* >= keeps the later of equal epochs: validation AUC saturates on easy data. */
        if (n_va == 0 || (!isnan(auc) && auc >= best_auc)) {
            best_auc = isnan(auc) ? best_auc : auc;
            info.best_epoch = e + 1;
            be->download(be, best, fl_model_params(m), np * sizeof(float));
        }
        fl_progress_update(&prog, e + 1);
    }
    fl_progress_end(&prog, "kept epoch %d, validation macro AUC %.4f", info.best_epoch, best_auc);
    be->upload(be, fl_model_params(m), best, np * sizeof(float));
    info.val_macro_auc = best_auc;
    fl_model_meta meta;
    fl_model_meta_init(&meta);
    snprintf(meta.arch, sizeof meta.arch, "fusion");
    snprintf(meta.phase, sizeof meta.phase, "fusion");
    meta.classes = c.n_classes;
    s = fl_pipeline_save(m, &meta, &info, cfg->out, err);
done:
    fl_optim_destroy(&opt);
    fl_model_free(m);
    fl_graph_free(g);
    if (be) be->destroy(be);
    fl_fusion_inputs_destroy(&in);
    fl_pipeline_info_destroy(&info);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    free(emb);
    free(has);
    free(train);
    free(tr);
    free(va);
    free(y);
    free(ys);
    free(best);
    return s;
}
