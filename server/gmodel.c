/* gmodel.c - global models as flat vectors, built and saved with the engine on one CPU
 * thread (the server does not train). */
#include "gmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"
#include "nn/checkpoint.h"
#include "nn/model.h"

fl_status fl_gmodel_graph(const fl_plan *p, fl_phase ph, const int in_dim[4], fl_graph **g,
                          fl_err *err) {
    if (ph == FL_PHASE_IMAGE || ph == FL_PHASE_FEATURES) return fl_plan_image_graph(p, g, err);
    if (ph == FL_PHASE_FUSION) return fl_plan_fusion_graph(p, in_dim, g, err);
    return fl_fail(err, FL_EINVAL, "the %s phase has no model", fl_phase_name(ph));
}

/* A model of phase ph on a one-thread CPU backend, batch 1. */
static fl_status build(const fl_plan *p, fl_phase ph, const int in_dim[4], fl_backend **be,
                       fl_model **m, fl_err *err) {
    fl_graph *g = NULL;
    *be = NULL;
    *m = NULL;
    fl_status s = fl_gmodel_graph(p, ph, in_dim, &g, err);
    if (s != FL_OK) return s;
    if (!(*be = fl_backend_cpu_new(1, err))) {
        fl_graph_free(g);
        return FL_EBACKEND;
    }
    if ((s = fl_model_new(m, g, *be, 1, p->seed, err)) != FL_OK) {
        (*be)->destroy(*be);
        *be = NULL;
    }
    return s;
}

static void release(fl_backend *be, fl_model *m) {
    fl_model_free(m);
    if (be) be->destroy(be);
}

fl_status fl_gmodel_init(const fl_plan *p, fl_phase ph, const int in_dim[4], const char *path,
                         float **data, size_t *n_params, size_t *n_buffers, fl_err *err) {
    fl_backend *be;
    fl_model *m;
    *data = NULL;
    fl_status s = build(p, ph, in_dim, &be, &m, err);
    if (s != FL_OK) return s;
    if (path && (s = fl_checkpoint_load(m, path, err)) != FL_OK) goto done;
    const fl_graph *g = fl_model_graph(m);
    *n_params = g->n_trainable;
    *n_buffers = g->n_buffer;
    if (!(*data = malloc((*n_params + *n_buffers + 1) * sizeof(float)))) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for a model of %zu values",
                    *n_params + *n_buffers);
        goto done;
    }
    be->download(be, *data, fl_model_params(m), *n_params * sizeof(float));
    if (*n_buffers)
        be->download(be, *data + *n_params, fl_model_buffers(m), *n_buffers * sizeof(float));
done:
    release(be, m);
    return s;
}

fl_status fl_gmodel_embedding_dim(const fl_plan *p, int *E, fl_err *err) {
    fl_graph *g;
    fl_status s = fl_plan_image_graph(p, &g, err);
    if (s != FL_OK) return s;
    int o = fl_graph_find_output(g, "embedding");
    if (o < 0)
        s = fl_fail(err, FL_EINVAL, "the plan's ResNet has no embedding output");
    else
        *E = (int)g->values[g->outputs[o]].numel;
    fl_graph_free(g);
    return s;
}

fl_status fl_gmodel_save(const fl_plan *p, fl_phase ph, const int in_dim[4], const float *data,
                         size_t n, int round, const char *path, fl_err *err) {
    fl_backend *be;
    fl_model *m;
    fl_status s = build(p, ph, in_dim, &be, &m, err);
    if (s != FL_OK) return s;
    const fl_graph *g = fl_model_graph(m);
    if (n != g->n_trainable + g->n_buffer) {
        s = fl_fail(err, FL_ESHAPE, "%s: a model of %zu values, the %s model has %zu", path, n,
                    fl_phase_name(ph), g->n_trainable + g->n_buffer);
        goto done;
    }
    be->upload(be, fl_model_params(m), data, g->n_trainable * sizeof(float));
    if (g->n_buffer)
        be->upload(be, fl_model_buffers(m), data + g->n_trainable, g->n_buffer * sizeof(float));
    fl_model_meta meta;
    fl_model_meta_init(&meta);
    if (ph == FL_PHASE_FUSION) {
        snprintf(meta.arch, sizeof meta.arch, "fusion");
    } else {
        snprintf(meta.arch, sizeof meta.arch, "resnet%d", p->net.depth);
        meta.tile = p->net.tile;
        snprintf(meta.stem, sizeof meta.stem, "%s", fl_stem_name(p->net.stem));
        meta.width = p->net.width;
        meta.groupnorm = p->net.groupnorm;
    }
    meta.classes = p->n_classes;
    snprintf(meta.phase, sizeof meta.phase, "%s", fl_phase_name(ph));
    meta.round = round;
    s = fl_checkpoint_save(m, &meta, path, err);
done:
    release(be, m);
    return s;
}
