/* fusion_data.c - MMLM's inputs: image embeddings from an RNet checkpoint, standardized omics
 * with presence masks; rebuilding a fusion model from its file; batched prediction and fused
 * embeddings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/fusion.h"
#include "internal.h"

/* The end of both loaders: graph g (handed over) on a new backend on dev, as a model of `batch`
 * with the weights of checkpoint `path`. On failure *be and *m are NULL. */
fl_status fl_model_on(fl_graph *g, int batch, const fl_compute *dev, uint64_t seed,
                      const char *path, fl_backend **be, fl_model **m, fl_err *err) {
    fl_status s;
    *m = NULL;
    if (!(*be = fl_backend_new(dev->device ? dev->device : "cpu", dev->threads, dev->precision,
                               err))) {
        fl_graph_free(g);
        return FL_EBACKEND;
    }
    if ((s = fl_model_new(m, g, *be, batch, seed, err)) == FL_OK && path)
        s = fl_checkpoint_load(*m, path, err);
    if (s != FL_OK) {
        fl_model_free(*m);
        (*be)->destroy(*be);
        *m = NULL;
        *be = NULL;
    }
    return s;
}

fl_status fl_model_on_cpu(fl_graph *g, int batch, int threads, uint64_t seed, const char *path,
                          fl_backend **be, fl_model **m, fl_err *err) {
    fl_compute cpu = FL_COMPUTE_CPU(threads);
    return fl_model_on(g, batch, &cpu, seed, path, be, m, err);
}

fl_status fl_load_image_model(const char *path, int batch, int threads, fl_backend **be,
                              fl_model **m, fl_model_meta *meta, fl_err *err) {
    fl_compute cpu = FL_COMPUTE_CPU(threads);
    return fl_load_image_model_on(path, batch, &cpu, be, m, meta, err);
}

fl_status fl_load_image_model_on(const char *path, int batch, const fl_compute *dev,
                                 fl_backend **be, fl_model **m, fl_model_meta *meta, fl_err *err) {
    *be = NULL;
    *m = NULL;
    fl_status s = fl_checkpoint_read_meta(path, meta, err);
    if (s != FL_OK) return s;
    fl_resnet_config rc;
    fl_resnet_config_default(&rc);
    rc.depth = fl_resnet_depth_from_name(meta->arch);
    int stem = fl_stem_from_name(meta->stem);
    if (!rc.depth || stem < 0)
        return fl_fail(err, FL_EFORMAT, "%s: not an image model (arch '%s', stem '%s')", path,
                       meta->arch, meta->stem);
    rc.stem = (fl_stem)stem;
    rc.tile = meta->tile;
    rc.classes = meta->classes;
    rc.width = meta->width;
    rc.groupnorm = meta->groupnorm;
    fl_graph *g;
    if ((s = fl_resnet_build(&g, &rc, err)) != FL_OK) return s;
    return fl_model_on(g, batch, dev, 1, path, be, m, err);
}

fl_status fl_image_embed_patients(fl_model *m, const fl_cohort *c, fl_cohort_file *f, int quiet,
                                  float **emb, int *E, uint8_t **has, fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    *E = g->values[g->outputs[fl_graph_find_output(g, "embedding")]].shape[0];
    uint8_t *want = malloc((size_t)c->P + 1);
    *emb = calloc((size_t)c->P * *E + 1, sizeof(float));
    *has = calloc((size_t)c->P + 1, 1);
    fl_status s = FL_OK;
    if (!want || !*emb || !*has) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for embeddings");
    } else {
        memset(want, 1, (size_t)c->P);
        s = fl_image_patient_outputs(m, f, c, want, NULL, *emb, *has, quiet, err);
    }
    free(want);
    if (s != FL_OK) {
        free(*emb);
        free(*has);
        *emb = NULL;
        *has = NULL;
    }
    return s;
}

fl_status fl_image_embeddings(const char *path, const fl_cohort *c, fl_cohort_file *f,
                              const fl_compute *dev, int quiet, float **emb, int *E, uint8_t **has,
                              char sha256[65], fl_err *err) {
    fl_backend *be;
    fl_model *m;
    fl_model_meta meta;
    *emb = NULL;
    *has = NULL;
    fl_status s = fl_load_image_model_on(path, 32, dev, &be, &m, &meta, err);
    if (s != FL_OK) return s;
    if (meta.tile != c->tile)
        s = fl_fail(err, FL_ESHAPE, "%s expects %d-px tiles but the cohort's are %d px", path,
                    meta.tile, c->tile);
    else if ((s = fl_image_embed_patients(m, c, f, quiet, emb, E, has, err)) == FL_OK)
        memcpy(sha256, meta.sha256, 65);
    fl_model_free(m);
    be->destroy(be);
    return s;
}

static const fl_omics_matrix *omics_by_name(const fl_cohort *c, const char *name) {
    for (int i = 0; i < FL_N_OMICS; i++)
        if (strcmp(fl_omics_name((fl_omics)i), name) == 0) return &c->omics[i];
    return NULL;
}

fl_status fl_fusion_inputs_build(const fl_pipeline_info *info, const fl_cohort *c, const float *emb,
                                 const uint8_t *has, fl_fusion_inputs *in, fl_err *err) {
    memset(in, 0, sizeof *in);
    in->P = c->P;
    in->n = info->n_modalities;
    fl_status s = FL_OK;
    for (int i = 0; i < in->n && s == FL_OK; i++) {
        const char *name = info->modalities[i];
        in->x[i] = calloc((size_t)c->P * info->in_dim[i] + 1, sizeof(float));
        in->mask[i] = calloc((size_t)c->P + 1, sizeof(float));
        if (!in->x[i] || !in->mask[i]) {
            s = fl_fail(err, FL_ENOMEM, "out of memory for %s features", name);
            break;
        }
        if (strcmp(name, "image") == 0) {
            if (!emb) {
                s = fl_fail(err, FL_EINVAL,
                            "the model uses image features but no image model "
                            "was given");
                break;
            }
            fl_standardizer_apply_dense(&info->std[i], emb, c->P, has, in->x[i]);
            for (int p = 0; p < c->P; p++) in->mask[i][p] = has[p] ? 1.0f : 0.0f;
            continue;
        }
        const fl_omics_matrix *om = omics_by_name(c, name);
        if (!om || om->F == 0) {
            s = fl_fail(err, FL_ENOTFOUND, "the model uses %s but the cohort has none", name);
            break;
        }
        if ((s = fl_standardizer_apply(&info->std[i], om, c->P, in->x[i], err)) != FL_OK) break;
        for (int p = 0; p < c->P; p++) in->mask[i][p] = om->present[p] ? 1.0f : 0.0f;
    }
    if (s != FL_OK) fl_fusion_inputs_destroy(in);
    return s;
}

fl_status fl_fusion_inputs_load(const fl_pipeline_info *info, const char *model_path,
                                const char *image_model, const fl_cohort *c, fl_cohort_file *f,
                                int threads, int quiet, fl_fusion_inputs *in, float **emb_out,
                                int *E_out, uint8_t **has_out, fl_err *err) {
    float *emb = NULL;
    uint8_t *has = NULL;
    int E = 0;
    fl_status s = FL_OK;
    memset(in, 0, sizeof *in);
    for (int i = 0; i < info->n_modalities; i++) {
        if (strcmp(info->modalities[i], "image") != 0) continue;
        const char *path = image_model ? image_model : info->image_model;
        char sha[65];
        fl_compute cpu = FL_COMPUTE_CPU(threads);
        if ((s = fl_image_embeddings(path, c, f, &cpu, quiet, &emb, &E, &has, sha, err)) != FL_OK)
            goto done;
        if (strcmp(sha, info->image_sha256) != 0) {
            s = fl_fail(err, FL_EINVAL,
                        "%s is not the image model %s was trained with (SHA-256 differs)", path,
                        model_path);
            goto done;
        }
    }
    s = fl_fusion_inputs_build(info, c, emb, has, in, err);
done:
    if (s == FL_OK && emb_out) {
        *emb_out = emb;
        *has_out = has;
        *E_out = E;
    } else {
        free(emb);
        free(has);
    }
    return s;
}

fl_status fl_fusion_graph_build(const fl_pipeline_info *info, fl_graph **g, fl_err *err) {
    fl_fusion_config fc;
    fl_fusion_config_default(&fc);
    fc.n_modalities = info->n_modalities;
    for (int i = 0; i < info->n_modalities; i++) {
        snprintf(fc.names[i], sizeof fc.names[i], "%s", info->modalities[i]);
        fc.in_dim[i] = info->in_dim[i];
    }
    fc.enc_dim = info->enc_dim;
    fc.hidden = info->hidden;
    fc.dropout = info->dropout;
    fc.classes = info->n_classes;
    fc.stages = info->stages;
    return fl_fusion_build(g, &fc, err);
}

fl_status fl_fusion_model_load(const char *path, const fl_pipeline_info *info, int batch,
                               int threads, fl_backend **be, fl_model **m, fl_err *err) {
    *be = NULL;
    *m = NULL;
    fl_graph *g;
    fl_status s = fl_fusion_graph_build(info, &g, err);
    if (s != FL_OK) return s;
    return fl_model_on_cpu(g, batch, threads, 1, path, be, m, err);
}

void fl_fusion_inputs_destroy(fl_fusion_inputs *in) {
    for (int i = 0; i < 4; i++) {
        free(in->x[i]);
        free(in->mask[i]);
    }
    memset(in, 0, sizeof *in);
}

fl_status fl_fusion_set_batch(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                              fl_err *err) {
    int B = fl_model_batch(m), maxd = 1;
    const fl_graph *g = fl_model_graph(m);
    for (int i = 0; i < in->n; i++) {
        int d = g->values[g->inputs[2 * i]].shape[0];
        maxd = d > maxd ? d : maxd;
    }
    float *buf = calloc((size_t)B * maxd, sizeof(float));
    if (!buf) return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_status s = FL_OK;
    for (int i = 0; i < in->n && s == FL_OK; i++) {
        int d = g->values[g->inputs[2 * i]].shape[0];
        memset(buf, 0, (size_t)B * maxd * sizeof(float));
        for (int r = 0; r < n; r++)
            memcpy(buf + (size_t)r * d, in->x[i] + (size_t)rows[r] * d, (size_t)d * sizeof(float));
        if ((s = fl_model_set_input(m, 2 * i, buf, err)) != FL_OK) break;
        memset(buf, 0, (size_t)B * sizeof(float));
        for (int r = 0; r < n; r++) buf[r] = in->mask[i][rows[r]];
        s = fl_model_set_input(m, 2 * i + 1, buf, err);
    }
    free(buf);
    return s;
}

/* Forward passes over rows[] in batches: probs (softmax of "logits"), stage_probs (of
 * "stage_logits", when the model has them) and fused ("fused"), each skipped when NULL. */
static fl_status fusion_run(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                            float *probs, float *stage_probs, float *fused, fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    int B = fl_model_batch(m), o_cls = fl_graph_find_output(g, "logits"),
        o_stage = fl_graph_find_output(g, "stage_logits"),
        o_fused = fl_graph_find_output(g, "fused");
    if (fused && o_fused < 0)
        return fl_fail(err, FL_EINVAL, "the fusion model has no \"fused\" output");
    int K = g->values[g->outputs[o_cls]].shape[0];
    int S = o_stage >= 0 ? g->values[g->outputs[o_stage]].shape[0] : 0;
    int F = o_fused >= 0 ? g->values[g->outputs[o_fused]].shape[0] : 0;
    int most = K > S ? K : S;
    most = most > F ? most : F;
    float *out = malloc((size_t)B * most * sizeof(float));
    if (!out) return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_status s = FL_OK;
    for (int at = 0; at < n && s == FL_OK; at += B) {
        int k = n - at < B ? n - at : B;
        if ((s = fl_fusion_set_batch(m, in, rows + at, k, err)) != FL_OK ||
            (s = fl_model_forward(m, 0, err)) != FL_OK)
            break;
        if (fused) {
            if ((s = fl_model_get_output(m, o_fused, out, err)) != FL_OK) break;
            memcpy(fused + (size_t)at * F, out, (size_t)k * F * sizeof(float));
        }
        if (probs) {
            if ((s = fl_model_get_output(m, o_cls, out, err)) != FL_OK) break;
            fl_softmax_rows(out, k, K);
            memcpy(probs + (size_t)at * K, out, (size_t)k * K * sizeof(float));
        }
        if (stage_probs && S > 0) {
            if ((s = fl_model_get_output(m, o_stage, out, err)) != FL_OK) break;
            fl_softmax_rows(out, k, S);
            memcpy(stage_probs + (size_t)at * S, out, (size_t)k * S * sizeof(float));
        }
    }
    free(out);
    return s;
}

fl_status fl_fusion_predict(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                            float *probs, float *stage_probs, fl_err *err) {
    return fusion_run(m, in, rows, n, probs, stage_probs, NULL, err);
}

fl_status fl_fusion_embed(fl_model *m, const fl_fusion_inputs *in, const int *rows, int n,
                          float *fused, fl_err *err) {
    return fusion_run(m, in, rows, n, NULL, NULL, fused, err);
}
