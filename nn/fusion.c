/* fusion.c - builds the MMLM fusion head (see fusion.h for its structure and names). */
#include "fusion.h"

#include <stdio.h>
#include <string.h>

void fl_fusion_config_default(fl_fusion_config *c) {
    memset(c, 0, sizeof *c);
    c->enc_dim = 64;
    c->hidden = 64;
    c->dropout = 0.2f;
    c->classes = 3;
}

fl_status fl_fusion_build(fl_graph **out, const fl_fusion_config *c, fl_err *err) {
    *out = NULL;
    if (c->n_modalities < 1 || c->n_modalities > FL_FUSION_MAX_MODALITIES)
        return fl_fail(err, FL_EINVAL, "fusion: %d modalities (1 to %d allowed)", c->n_modalities,
                       FL_FUSION_MAX_MODALITIES);
    if (c->enc_dim < 1 || c->hidden < 1 || c->classes < 1 || c->stages < 0)
        return fl_fail(err, FL_EINVAL, "fusion: encoder, hidden and class sizes must be >= 1");
    fl_graph *g = fl_graph_new();
    if (!g) return fl_fail(err, FL_ENOMEM, "fusion: out of memory");

    int encoded[FL_FUSION_MAX_MODALITIES];
    for (int i = 0; i < c->n_modalities; i++) {
        const char *m = c->names[i];
        char name[FL_NAME_LEN];
        if (c->in_dim[i] < 1) {
            fl_graph_free(g);
            return fl_fail(err, FL_EINVAL, "fusion: modality %s has no features", m);
        }
        int one = 1;
        int x = fl_graph_input(g, m, 1, &c->in_dim[i]);
        snprintf(name, sizeof name, "%s_mask", m);
        int mask = fl_graph_input(g, name, 1, &one);
        snprintf(name, sizeof name, "enc.%s.fc", m);
        x = fl_graph_linear(g, name, x, c->enc_dim, 1);
        snprintf(name, sizeof name, "enc.%s.norm", m);
        x = fl_graph_relu(g, fl_graph_layernorm(g, name, x), 1);
        x = fl_graph_dropout(g, x, c->dropout);
        encoded[i] = fl_graph_rowscale(g, x, mask);
    }
    int z = fl_graph_concat(g, c->n_modalities, encoded);
    z = fl_graph_linear(g, "head.fc1", z, c->hidden, 1);
    int fused = fl_graph_relu(g, fl_graph_layernorm(g, "head.norm", z), 1);
    int h = fl_graph_dropout(g, fused, c->dropout);
    fl_graph_output(g, "logits", fl_graph_linear(g, "head.cls", h, c->classes, 1));
    if (c->stages > 0)
        fl_graph_output(g, "stage_logits", fl_graph_linear(g, "head.stage", h, c->stages, 1));
    fl_graph_output(g, "fused", fused);
    if (g->status != FL_OK) {
        fl_status s = fl_fail(err, g->status, "fusion: %s", g->err.msg);
        fl_graph_free(g);
        return s;
    }
    *out = g;
    return FL_OK;
}
