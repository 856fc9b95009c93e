/* site.c - a hospital's cohort seen by the federation: opening it against the plan, the join
 * summary, the statistics phase's sums, the global standardization, the features phase's
 * embeddings and the checkpoints a hospital keeps. Local training and evaluation are in
 * site_train.c; the network is client.c's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/hash.h"
#include "../fed/plan_features.h"
#include "site_impl.h"

/* The cohort's omics matrix of modality m (rna, methylation, clinical), or NULL (image). */
static const fl_omics_matrix *omics_of(const fl_site *s, fl_modality m) {
    switch (m) {
    case FL_MODALITY_RNA:
        return &s->c.omics[FL_MOD_RNA];
    case FL_MODALITY_METHYLATION:
        return &s->c.omics[FL_MOD_METHYLATION];
    case FL_MODALITY_CLINICAL:
        return &s->c.omics[FL_MOD_CLINICAL];
    case FL_MODALITY_IMAGE:
        break;
    }
    return NULL;
}

static int plan_has(const fl_plan *p, fl_modality m) {
    return (p->modalities & FL_MODALITY_BIT(m)) != 0;
}

/* "A,B,C" of n names into buf. */
static void join_names(char *buf, size_t cap, char *const *names, int n) {
    buf[0] = '\0';
    for (int k = 0; k < n; k++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", k ? "," : "", names[k]);
}

static fl_status check_plan(const fl_site *s, fl_err *err) {
    const fl_plan *p = s->p;
    const fl_cohort *c = &s->c;
    int same = c->n_classes == p->n_classes;
    for (int k = 0; same && k < p->n_classes; k++)
        same = strcmp(c->class_names[k], p->class_names[k]) == 0;
    if (!same) {
        char have[1024], want[1024];
        char *plan_names[FL_PLAN_MAX_CLASSES];
        for (int k = 0; k < p->n_classes; k++) plan_names[k] = (char *)p->class_names[k];
        join_names(have, sizeof have, c->class_names, c->n_classes);
        join_names(want, sizeof want, plan_names, p->n_classes);
        return fl_fail(err, FL_EINVAL, "%s: classes %s, the plan has %s", s->path, have, want);
    }
    unsigned image_work = (1u << FL_PHASE_IMAGE) | (1u << FL_PHASE_FEATURES);
    if ((p->phases & image_work) && c->tile != p->net.tile) {
        if (c->tile == 0)
            return fl_fail(err, FL_EINVAL, "%s: no tiles, the plan's image model needs %d-px tiles",
                           s->path, p->net.tile);
        return fl_fail(err, FL_EINVAL, "%s: tiles are %d px, the plan's image model takes %d px",
                       s->path, c->tile, p->net.tile);
    }
    return FL_OK;
}

fl_status fl_site_open(fl_site **out, const char *cohort, const fl_plan *p, int threads,
                       uint64_t seed, fl_err *err) {
    *out = NULL;
    fl_site *s = calloc(1, sizeof *s);
    if (!s) return fl_fail(err, FL_ENOMEM, "out of memory");
    s->p = p;
    s->threads = threads;
    s->seed = seed;
    snprintf(s->path, sizeof s->path, "%s", cohort);
    fl_status st = fl_cohort_open(&s->f, &s->c, cohort, err);
    if (st == FL_OK) st = check_plan(s, err);
    if (st == FL_OK) st = fl_site_std_resolve(s, err);
    if (st != FL_OK) goto fail;
    const fl_cohort *c = &s->c;
    s->train_rows = malloc(((size_t)c->P + 1) * sizeof(int));
    s->test_rows = malloc(((size_t)c->P + 1) * sizeof(int));
    s->train_tiles = malloc(((size_t)c->n_tiles + 1) * sizeof(int64_t));
    if (!s->train_rows || !s->test_rows || !s->train_tiles) {
        st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %d patients", cohort, c->P);
        goto fail;
    }
    for (int i = 0; i < c->P; i++) {
        if (c->split[i] == FL_SPLIT_TRAIN) s->train_rows[s->n_train++] = i;
        if (c->split[i] == FL_SPLIT_TEST) s->test_rows[s->n_test++] = i;
    }
    for (int64_t t = 0; t < c->n_tiles; t++)
        if (c->split[c->tile_patient[t]] == FL_SPLIT_TRAIN) s->train_tiles[s->n_train_tiles++] = t;
    *out = s;
    return FL_OK;
fail:
    fl_site_free(s);
    return st;
}

void fl_site_set_device(fl_site *s, const char *device, fl_precision precision) {
    snprintf(s->device, sizeof s->device, "%s", device ? device : "");
    s->precision = precision;
}

void fl_site_free(fl_site *s) {
    if (!s) return;
    fl_cohort_close(s->f);
    fl_cohort_destroy(&s->c);
    free(s->train_rows);
    free(s->test_rows);
    free(s->train_tiles);
    for (int i = 0; i < 4; i++) fl_standardizer_destroy(&s->std[i]);
    for (int i = 0; i < 3; i++) free(s->cols[i]);
    free(s->rnet);
    free(s->emb);
    free(s->has);
    fl_fusion_inputs_destroy(&s->in);
    free(s);
}

void fl_site_summarize(const fl_site *s, fl_site_summary *out) {
    const fl_cohort *c = &s->c;
    memset(out, 0, sizeof *out);
    out->n_classes = c->n_classes;
    out->patients = (uint64_t)c->P;
    for (int i = 0; i < c->P; i++)
        if (c->label[i] >= 0 && c->label[i] < FL_PLAN_MAX_CLASSES) out->per_class[c->label[i]]++;
    int last = -1; /* tiles are grouped by patient */
    for (int64_t t = 0; t < c->n_tiles; t++)
        if (c->tile_patient[t] != last) {
            out->modality_patients[FL_MODALITY_IMAGE - 1]++;
            last = c->tile_patient[t];
        }
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        const fl_omics_matrix *om = omics_of(s, (fl_modality)m);
        fl_sha256_ctx h = {0};
        out->features[m - 1] = (uint32_t)om->F;
        for (int i = 0; om->F > 0 && i < c->P; i++) out->modality_patients[m - 1] += om->present[i];
        /* Only OpenSSL failing to allocate can fail here; the digest is then all zeros. */
        fl_status st = fl_sha256_init(&h);
        for (int j = 0; st == FL_OK && j < om->F; j++)
            if ((st = fl_sha256_update(&h, om->features[j], strlen(om->features[j]))) == FL_OK)
                st = fl_sha256_update(&h, "\n", 1);
        if (st == FL_OK) st = fl_sha256_final(&h, out->features_sha256[m - 1]);
        if (st != FL_OK) memset(out->features_sha256[m - 1], 0, 32);
        fl_sha256_destroy(&h);
    }
}

size_t fl_site_statistics_len(const fl_site *s) {
    size_t n = 0;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++)
        if (plan_has(s->p, (fl_modality)m)) n += FL_STATS_LEN(omics_of(s, (fl_modality)m)->F);
    return n;
}

fl_status fl_site_statistics(fl_site *s, float *vec, fl_err *err) {
    size_t at = 0;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        if (!plan_has(s->p, (fl_modality)m)) continue;
        const fl_omics_matrix *om = omics_of(s, (fl_modality)m);
        int mvalue = m == FL_MODALITY_METHYLATION && s->p->mvalue;
        fl_status st =
            fl_plan_features_sums(om, s->train_rows, s->n_train, NULL, 0, mvalue, vec + at, err);
        if (st != FL_OK) return st;
        at += FL_STATS_LEN(om->F);
    }
    return FL_OK;
}

/* The standardization drops the inputs built from the previous one. */
static void inputs_stale(fl_site *s) {
    fl_fusion_inputs_destroy(&s->in);
    s->in_ready = 0;
}

fl_status fl_site_set_standardization(fl_site *s, fl_modality m, const fl_stats_result *r,
                                      fl_err *err) {
    if (m < FL_MODALITY_IMAGE || m > FL_MODALITY_CLINICAL)
        return fl_fail(err, FL_EINVAL, "modality %d does not exist", (int)m);
    const char *name = fl_modality_name(m);
    const fl_omics_matrix *om = omics_of(s, m);
    /* The image embedding's features are its dimensions: all of them, in their own order (what
     * fl_standardizer_apply_dense and a single-site fusion model expect). */
    int F = om ? om->F : r->F, image = om == NULL;
    if (r->F != F)
        return fl_fail(err, FL_EINVAL, "%s: the %s standardization is for %d features, not %d",
                       s->path, name, r->F, F);
    if (r->n < 1 || r->n > F || (image && r->n != F))
        return fl_fail(err, FL_EINVAL, "%s: the %s standardization keeps %d of %d features",
                       s->path, name, r->n, F);
    fl_standardizer st = {0};
    st.n = r->n;
    st.mvalue = m == FL_MODALITY_METHYLATION && s->p->mvalue;
    st.names = calloc((size_t)r->n, sizeof(char *));
    st.mean = calloc((size_t)r->n, sizeof(float));
    st.std = calloc((size_t)r->n, sizeof(float));
    fl_status rc = FL_OK;
    if (!st.names || !st.mean || !st.std) rc = fl_fail(err, FL_ENOMEM, "out of memory");
    for (int i = 0; rc == FL_OK && i < r->n; i++) {
        uint32_t j = r->index[i];
        int to = image ? (int)j : i;
        if (j >= (uint32_t)F || (image && st.names[to])) {
            rc = fl_fail(err, FL_EINVAL, "%s: the %s standardization names feature %u of %d%s",
                         s->path, name, j, F, j < (uint32_t)F ? " twice" : "");
            break;
        }
        char emb_name[32];
        snprintf(emb_name, sizeof emb_name, "emb%u", j);
        if (!(st.names[to] = strdup(image ? emb_name : om->features[j]))) {
            rc = fl_fail(err, FL_ENOMEM, "out of memory");
            break;
        }
        st.mean[to] = r->mean[i];
        st.std[to] = r->std[i];
    }
    if (rc != FL_OK) {
        fl_standardizer_destroy(&st);
        return rc;
    }
    fl_standardizer_destroy(&s->std[m - 1]);
    s->std[m - 1] = st;
    s->have_std |= FL_MODALITY_BIT(m);
    inputs_stale(s);
    return FL_OK;
}

fl_status fl_site_fusion_info(const fl_site *s, fl_pipeline_info *info, fl_err *err) {
    const fl_plan *p = s->p;
    memset(info, 0, sizeof *info);
    snprintf(info->kind, sizeof info->kind, "fusion");
    info->n_classes = p->n_classes;
    for (int k = 0; k < p->n_classes; k++)
        snprintf(info->class_names[k], sizeof info->class_names[k], "%s", p->class_names[k]);
    info->enc_dim = p->enc_dim;
    info->hidden = p->hidden;
    info->dropout = p->dropout;
    info->val_macro_auc = -1; /* no validation: the federation evaluates on the test split */
    for (int m = FL_MODALITY_IMAGE; m <= FL_MODALITY_CLINICAL; m++) {
        if (!plan_has(p, (fl_modality)m)) continue;
        if (!(s->have_std & FL_MODALITY_BIT(m)))
            return fl_fail(err, FL_EINVAL, "the fusion model needs the %s standardization first",
                           fl_modality_name((fl_modality)m));
        int i = info->n_modalities++;
        snprintf(info->modalities[i], sizeof info->modalities[i], "%s",
                 fl_modality_name((fl_modality)m));
        info->std[i] = s->std[m - 1];
        info->in_dim[i] = s->std[m - 1].n;
    }
    return FL_OK;
}

/* FL_OK unless the fusion model uses the image and the features phase has not run here. */
static fl_status check_features(const fl_site *s, fl_err *err) {
    if (!plan_has(s->p, FL_MODALITY_IMAGE) || s->emb) return FL_OK;
    return fl_fail(err, FL_EINVAL,
                   "%s: the fusion model uses image embeddings and the features phase has not "
                   "run here",
                   s->path);
}

fl_status fl_site_fusion_inputs(fl_site *s, fl_err *err) {
    if (s->in_ready) return FL_OK;
    fl_pipeline_info info;
    fl_status st = fl_site_fusion_info(s, &info, err);
    if (st != FL_OK) return st;
    if ((st = check_features(s, err)) != FL_OK) return st;
    if (plan_has(s->p, FL_MODALITY_IMAGE)) {
        if (s->std[FL_MODALITY_IMAGE - 1].n != s->E)
            return fl_fail(err, FL_ESHAPE,
                           "%s: the image standardization has %d features, the embeddings %d",
                           s->path, s->std[FL_MODALITY_IMAGE - 1].n, s->E);
    }
    if ((st = fl_fusion_inputs_build(&info, &s->c, s->emb, s->has, &s->in, err)) != FL_OK) {
        char why[FL_ERR_LEN];
        snprintf(why, sizeof why, "%s", err->msg);
        return fl_fail(err, st, "%s: %s", s->path, why);
    }
    for (int i = 0; i < info.n_modalities; i++) /* what site standardization left out */
        for (int m = FL_MODALITY_IMAGE; m <= FL_MODALITY_CLINICAL; m++)
            if ((s->left_out & FL_MODALITY_BIT(m)) &&
                strcmp(info.modalities[i], fl_modality_name((fl_modality)m)) == 0) {
                memset(s->in.x[i], 0, (size_t)s->c.P * (size_t)info.in_dim[i] * sizeof(float));
                memset(s->in.mask[i], 0, (size_t)s->c.P * sizeof(float));
            }
    s->in_ready = 1;
    return FL_OK;
}

/* The graph of phase ph's global model. */
static fl_status phase_graph(const fl_site *s, fl_phase ph, fl_graph **g, fl_err *err) {
    *g = NULL;
    if (ph == FL_PHASE_IMAGE) return fl_plan_image_graph(s->p, g, err);
    if (ph != FL_PHASE_FUSION)
        return fl_fail(err, FL_EINVAL, "the %s phase has no model", fl_phase_name(ph));
    fl_pipeline_info info;
    int in_dim[4] = {0};
    fl_status st = fl_site_fusion_info(s, &info, err);
    for (int m = FL_MODALITY_IMAGE; st == FL_OK && m <= FL_MODALITY_CLINICAL; m++)
        in_dim[m - 1] = s->std[m - 1].n;
    return st == FL_OK ? fl_plan_fusion_graph(s->p, in_dim, g, err) : st;
}

fl_status fl_site_model(fl_site *s, fl_phase ph, const float *w, size_t n, int B, uint64_t seed,
                        fl_backend **be, fl_model **m, fl_err *err) {
    fl_graph *g;
    *be = NULL;
    *m = NULL;
    fl_status st = phase_graph(s, ph, &g, err);
    if (st != FL_OK) return st;
    size_t np = g->n_trainable, nb = g->n_buffer;
    if (n != np + nb) {
        fl_graph_free(g);
        return fl_fail(err, FL_ESHAPE, "the global %s model has %zu floats, the plan's has %zu",
                       fl_phase_name(ph), n, np + nb);
    }
    fl_compute dev = {s->device[0] ? s->device : NULL, s->threads, s->precision};
    if ((st = fl_model_on(g, B, &dev, seed, NULL, be, m, err)) != FL_OK) return st;
    (*be)->upload(*be, fl_model_params(*m), w, np * sizeof(float));
    (*be)->upload(*be, fl_model_buffers(*m), w + np, nb * sizeof(float));
    return FL_OK;
}

size_t fl_site_model_len(fl_site *s, fl_phase ph) {
    fl_graph *g;
    fl_err err;
    if (phase_graph(s, ph, &g, &err) != FL_OK) return 0;
    size_t n = g->n_trainable + g->n_buffer;
    fl_graph_free(g);
    return n;
}

fl_status fl_site_features(fl_site *s, const float *model, size_t n, float *vec, int *E,
                           fl_err *err) {
    fl_backend *be;
    fl_model *m;
    float *emb = NULL, *copy = malloc((n + 1) * sizeof(float));
    uint8_t *has = NULL;
    double *acc = NULL;
    int width = 0;
    if (!copy) return fl_fail(err, FL_ENOMEM, "out of memory for the image model");
    fl_status st = fl_site_model(s, FL_PHASE_IMAGE, model, n, 32, s->seed, &be, &m, err);
    if (st != FL_OK) {
        free(copy);
        return st;
    }
    st = fl_image_embed_patients(m, &s->c, s->f, 1, &emb, &width, &has, err);
    if (st == FL_OK && !(acc = calloc(FL_STATS_LEN(width) + 1, sizeof(double))))
        st = fl_fail(err, FL_ENOMEM, "out of memory");
    if (st == FL_OK) {
        for (int i = 0; i < s->n_train; i++)
            if (has[s->train_rows[i]])
                fl_stats_add_row(acc, emb + (size_t)s->train_rows[i] * width, width);
        fl_stats_to_float(acc, width, vec);
        *E = width;
        memcpy(copy, model, n * sizeof(float));
        free(s->rnet);
        free(s->emb);
        free(s->has);
        s->rnet = copy;
        s->n_rnet = n;
        s->emb = emb;
        s->has = has;
        s->E = width;
        copy = NULL;
        emb = NULL;
        has = NULL;
        inputs_stale(s);
    }
    fl_model_free(m);
    be->destroy(be);
    free(copy);
    free(emb);
    free(has);
    free(acc);
    return st;
}

/* Saves RNet m to path with the /pipeline section of an image model. */
static fl_status save_image(fl_site *s, fl_model *m, const char *path, fl_err *err) {
    const fl_plan *p = s->p;
    fl_model_meta meta;
    fl_model_meta_init(&meta);
    snprintf(meta.arch, sizeof meta.arch, "resnet%d", p->net.depth);
    snprintf(meta.stem, sizeof meta.stem, "%s", fl_stem_name(p->net.stem));
    snprintf(meta.phase, sizeof meta.phase, "image");
    meta.tile = p->net.tile;
    meta.classes = p->n_classes;
    meta.width = p->net.width;
    meta.groupnorm = p->net.groupnorm;
    fl_pipeline_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.kind, sizeof info.kind, "image");
    info.n_classes = p->n_classes;
    for (int k = 0; k < p->n_classes; k++)
        snprintf(info.class_names[k], sizeof info.class_names[k], "%s", p->class_names[k]);
    info.val_macro_auc = -1;
    return fl_pipeline_save(m, &meta, &info, path, err);
}

fl_status fl_site_save_model(fl_site *s, fl_phase ph, const float *global, size_t n,
                             const char *path, fl_err *err) {
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_pipeline_info info;
    fl_status st = FL_OK;
    if (ph == FL_PHASE_FUSION) {
        if ((st = fl_site_fusion_info(s, &info, err)) != FL_OK) return st;
        if ((st = check_features(s, err)) != FL_OK) return st;
        if (plan_has(s->p, FL_MODALITY_IMAGE)) {
            /* The RNet of the embeddings, beside the model, as `fedlung eval` finds it. */
            int w = snprintf(info.image_model, sizeof info.image_model, "%s.rnet.h5", path);
            if (w < 0 || (size_t)w >= sizeof info.image_model)
                return fl_fail(err, FL_EINVAL, "%s: the path is too long", path);
            if ((st = fl_site_model(s, FL_PHASE_IMAGE, s->rnet, s->n_rnet, 1, s->seed, &be, &m,
                                    err)) != FL_OK ||
                (st = save_image(s, m, info.image_model, err)) != FL_OK)
                goto done;
            if ((st = fl_model_sha256(m, info.image_sha256)) != FL_OK) {
                st = fl_fail(err, st, "%s: cannot hash the image model", info.image_model);
                goto done;
            }
            fl_model_free(m);
            be->destroy(be);
            m = NULL;
            be = NULL;
        }
    }
    if ((st = fl_site_model(s, ph, global, n, 1, s->seed, &be, &m, err)) != FL_OK) goto done;
    if (ph == FL_PHASE_IMAGE) {
        st = save_image(s, m, path, err);
    } else {
        fl_model_meta meta;
        fl_model_meta_init(&meta);
        snprintf(meta.arch, sizeof meta.arch, "fusion");
        snprintf(meta.phase, sizeof meta.phase, "fusion");
        meta.classes = s->p->n_classes;
        st = fl_pipeline_save(m, &meta, &info, path, err);
    }
done:
    fl_model_free(m);
    if (be) be->destroy(be);
    return st;
}
