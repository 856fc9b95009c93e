/* graph.c - building a model's graph: nodes, value shapes and the parameter layout.
 * Shapes are inferred as nodes are added; the first error sticks in the graph. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fl_graph *fl_graph_new(void) {
    return calloc(1, sizeof(fl_graph));
}

void fl_graph_free(fl_graph *g) {
    if (!g) return;
    free(g->nodes);
    free(g->values);
    free(g->params);
    free(g);
}

static int graph_error(fl_graph *g, fl_status s, const char *fmt, const char *what) {
    if (g->status == FL_OK) {
        g->status = s;
        snprintf(g->err.msg, sizeof g->err.msg, fmt, what);
    }
    return -1;
}

static int grow(void **items, int *cap, int need, size_t size) {
    if (need <= *cap) return 0;
    int cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(*items, (size_t)cap2 * size);
    if (!p) return -1;
    *items = p;
    *cap = cap2;
    return 0;
}

static int valid_value(const fl_graph *g, int v) {
    return v >= 0 && v < g->n_values;
}

/* Appends a parameter "<prefix>.<suffix>" and returns its index. */
static int add_param(fl_graph *g, const char *prefix, const char *suffix, int ndim,
                     const int64_t *shape, int trainable) {
    if (grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof(fl_param)))
        return graph_error(g, FL_ENOMEM, "graph: out of memory%s", "");
    fl_param *p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    if (snprintf(p->name, sizeof p->name, "%s.%s", prefix, suffix) >= (int)sizeof p->name)
        return graph_error(g, FL_EINVAL, "graph: parameter name too long: %s", prefix);
    if (fl_graph_find_param(g, p->name) >= 0)
        return graph_error(g, FL_EINVAL, "graph: duplicate parameter %s", p->name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->trainable = trainable;
    size_t *slab = trainable ? &g->n_trainable : &g->n_buffer;
    p->offset = *slab;
    /* Keep every tensor 64-byte aligned inside its slab. */
    *slab += (p->numel + 15) & ~(size_t)15;
    return g->n_params++;
}

/* Appends a node with a fresh output value of the given per-sample shape. */
static fl_node *add_node(fl_graph *g, fl_op op, int n_in, const int *in, int ndim,
                         const int *shape_in) {
    if (g->status != FL_OK) return NULL;
    /* shape_in may point into g->values, which grow() below can move. */
    int shape[3] = {0, 0, 0};
    for (int i = 0; i < ndim && i < 3; i++) shape[i] = shape_in[i];
    for (int i = 0; i < n_in; i++)
        if (!valid_value(g, in[i])) {
            graph_error(g, FL_EINVAL, "graph: node uses an unknown value%s", "");
            return NULL;
        }
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(fl_node)) ||
        grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof(fl_value))) {
        graph_error(g, FL_ENOMEM, "graph: out of memory%s", "");
        return NULL;
    }
    fl_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    v->numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            graph_error(g, FL_ESHAPE, "graph: a layer's output would be empty%s", "");
            return NULL;
        }
        v->shape[i] = shape[i];
        v->numel *= (size_t)shape[i];
    }
    v->producer = g->n_nodes;
    fl_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    for (int i = 0; i < 4; i++) n->param[i] = -1;
    n->out = g->n_values++;
    return n;
}

int fl_graph_input(fl_graph *g, const char *name, int ndim, const int *shape) {
    if (g->n_inputs >= (int)(sizeof g->inputs / sizeof *g->inputs))
        return graph_error(g, FL_EINVAL, "graph: too many inputs (%s)", name);
    if (ndim != 1 && ndim != 3)
        return graph_error(g, FL_EINVAL, "graph: input %s must be 1-D or 3-D", name);
    fl_node *n = add_node(g, FL_OP_INPUT, 0, NULL, ndim, shape);
    if (!n) return -1;
    snprintf(n->name, sizeof n->name, "%s", name);
    g->inputs[g->n_inputs++] = n->out;
    return n->out;
}

static int need_image(fl_graph *g, int x, const char *what) {
    if (g->status != FL_OK) return 0;
    if (!valid_value(g, x) || g->values[x].ndim != 3) {
        graph_error(g, FL_ESHAPE, "graph: %s needs an image (C,H,W) input", what);
        return 0;
    }
    return 1;
}

static int need_rows(fl_graph *g, int x, const char *what) {
    if (g->status != FL_OK) return 0;
    if (!valid_value(g, x) || g->values[x].ndim != 1) {
        graph_error(g, FL_ESHAPE, "graph: %s needs a feature-row input", what);
        return 0;
    }
    return 1;
}

int fl_graph_conv2d(fl_graph *g, const char *prefix, int x, int out_channels, int k, int stride,
                    int pad, int bias) {
    if (!need_image(g, x, prefix)) return -1;
    const fl_value *v = &g->values[x];
    int C = v->shape[0], H = v->shape[1], W = v->shape[2];
    int P = (H + 2 * pad - k) / stride + 1, Q = (W + 2 * pad - k) / stride + 1;
    int shape[3] = {out_channels, P, Q};
    int in[1] = {x};
    int64_t wshape[4] = {out_channels, C, k, k}, bshape[1] = {out_channels};
    int w = add_param(g, prefix, "weight", 4, wshape, 1);
    int b = bias ? add_param(g, prefix, "bias", 1, bshape, 1) : -1;
    fl_node *n = add_node(g, FL_OP_CONV2D, 1, in, 3, shape);
    if (!n) return -1;
    n->param[0] = w;
    n->param[1] = b;
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    snprintf(n->name, sizeof n->name, "%s", prefix);
    return n->out;
}

static int add_norm(fl_graph *g, fl_op op, const char *prefix, int x, int channels, int running) {
    int64_t shape[1] = {channels};
    int w = add_param(g, prefix, "weight", 1, shape, 1);
    int b = add_param(g, prefix, "bias", 1, shape, 1);
    int rm = running ? add_param(g, prefix, "running_mean", 1, shape, 0) : -1;
    int rv = running ? add_param(g, prefix, "running_var", 1, shape, 0) : -1;
    const fl_value *v = &g->values[x];
    int in[1] = {x};
    fl_node *n = add_node(g, op, 1, in, v->ndim, v->shape);
    if (!n) return -1;
    n->param[0] = w;
    n->param[1] = b;
    n->param[2] = rm;
    n->param[3] = rv;
    n->eps = 1e-5f;
    n->momentum = 0.1f;
    snprintf(n->name, sizeof n->name, "%s", prefix);
    return n->out;
}

int fl_graph_batchnorm2d(fl_graph *g, const char *prefix, int x) {
    if (!need_image(g, x, prefix)) return -1;
    return add_norm(g, FL_OP_BATCHNORM2D, prefix, x, g->values[x].shape[0], 1);
}

int fl_graph_groupnorm(fl_graph *g, const char *prefix, int x, int groups) {
    if (!need_image(g, x, prefix)) return -1;
    int C = g->values[x].shape[0];
    if (groups <= 0 || C % groups != 0)
        return graph_error(g, FL_ESHAPE, "graph: %s: channels not divisible by groups", prefix);
    int v = add_norm(g, FL_OP_GROUPNORM, prefix, x, C, 0);
    if (v >= 0) g->nodes[g->n_nodes - 1].groups = groups;
    return v;
}

int fl_graph_layernorm(fl_graph *g, const char *prefix, int x) {
    if (!need_rows(g, x, prefix)) return -1;
    return add_norm(g, FL_OP_LAYERNORM, prefix, x, g->values[x].shape[0], 0);
}

static int add_unary(fl_graph *g, fl_op op, int x) {
    if (g->status != FL_OK || !valid_value(g, x)) {
        graph_error(g, FL_EINVAL, "graph: unknown input value%s", "");
        return -1;
    }
    const fl_value *v = &g->values[x];
    int in[1] = {x};
    fl_node *n = add_node(g, op, 1, in, v->ndim, v->shape);
    return n ? n->out : -1;
}

int fl_graph_relu(fl_graph *g, int x, int inplace) {
    int v = add_unary(g, FL_OP_RELU, x);
    if (v >= 0) g->nodes[g->n_nodes - 1].inplace = inplace;
    return v;
}

int fl_graph_dropout(fl_graph *g, int x, float p) {
    if (p < 0 || p >= 1) return graph_error(g, FL_EINVAL, "graph: dropout p out of [0,1)%s", "");
    int v = add_unary(g, FL_OP_DROPOUT, x);
    if (v >= 0) g->nodes[g->n_nodes - 1].p = p;
    return v;
}

int fl_graph_maxpool2d(fl_graph *g, int x, int k, int stride, int pad) {
    if (!need_image(g, x, "maxpool")) return -1;
    const fl_value *v = &g->values[x];
    int shape[3] = {v->shape[0], (v->shape[1] + 2 * pad - k) / stride + 1,
                    (v->shape[2] + 2 * pad - k) / stride + 1};
    int in[1] = {x};
    fl_node *n = add_node(g, FL_OP_MAXPOOL2D, 1, in, 3, shape);
    if (!n) return -1;
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    return n->out;
}

int fl_graph_gap(fl_graph *g, int x) {
    if (!need_image(g, x, "global average pool")) return -1;
    int shape[1] = {g->values[x].shape[0]};
    int in[1] = {x};
    fl_node *n = add_node(g, FL_OP_GAP, 1, in, 1, shape);
    return n ? n->out : -1;
}

int fl_graph_linear(fl_graph *g, const char *prefix, int x, int out_features, int bias) {
    if (!need_rows(g, x, prefix)) return -1;
    int64_t wshape[2] = {out_features, g->values[x].shape[0]}, bshape[1] = {out_features};
    int w = add_param(g, prefix, "weight", 2, wshape, 1);
    int b = bias ? add_param(g, prefix, "bias", 1, bshape, 1) : -1;
    int shape[1] = {out_features};
    int in[1] = {x};
    fl_node *n = add_node(g, FL_OP_LINEAR, 1, in, 1, shape);
    if (!n) return -1;
    n->param[0] = w;
    n->param[1] = b;
    snprintf(n->name, sizeof n->name, "%s", prefix);
    return n->out;
}

int fl_graph_add(fl_graph *g, int a, int b) {
    if (g->status != FL_OK) return -1;
    if (!valid_value(g, a) || !valid_value(g, b) || g->values[a].numel != g->values[b].numel ||
        g->values[a].ndim != g->values[b].ndim)
        return graph_error(g, FL_ESHAPE, "graph: add of values with different shapes%s", "");
    int in[2] = {a, b};
    fl_node *n = add_node(g, FL_OP_ADD, 2, in, g->values[a].ndim, g->values[a].shape);
    return n ? n->out : -1;
}

int fl_graph_concat(fl_graph *g, int count, const int *xs) {
    if (count < 1 || count > FL_MAX_IN)
        return graph_error(g, FL_EINVAL, "graph: concat of too many values%s", "");
    int total = 0;
    for (int i = 0; i < count; i++) {
        if (!need_rows(g, xs[i], "concat")) return -1;
        total += g->values[xs[i]].shape[0];
    }
    int shape[1] = {total};
    fl_node *n = add_node(g, FL_OP_CONCAT, count, xs, 1, shape);
    return n ? n->out : -1;
}

int fl_graph_rowscale(fl_graph *g, int x, int s) {
    if (!need_rows(g, x, "rowscale") || !need_rows(g, s, "rowscale")) return -1;
    if (g->values[s].shape[0] != 1)
        return graph_error(g, FL_ESHAPE, "graph: rowscale factor must have one value%s", "");
    int in[2] = {x, s};
    fl_node *n = add_node(g, FL_OP_ROWSCALE, 2, in, 1, g->values[x].shape);
    return n ? n->out : -1;
}

int fl_graph_output(fl_graph *g, const char *name, int v) {
    if (g->status != FL_OK) return -1;
    if (!valid_value(g, v) || g->values[v].ndim != 1)
        return graph_error(g, FL_EINVAL, "graph: output %s must be a feature row", name);
    if (g->n_outputs >= (int)(sizeof g->outputs / sizeof *g->outputs))
        return graph_error(g, FL_EINVAL, "graph: too many outputs (%s)", name);
    snprintf(g->output_names[g->n_outputs], sizeof g->output_names[0], "%s", name);
    g->outputs[g->n_outputs] = v;
    return g->n_outputs++;
}

int fl_graph_find_param(const fl_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return i;
    return -1;
}

int fl_graph_find_output(const fl_graph *g, const char *name) {
    for (int i = 0; i < g->n_outputs; i++)
        if (strcmp(g->output_names[i], name) == 0) return i;
    return -1;
}

int fl_graph_find_input(const fl_graph *g, const char *name) {
    for (int i = 0; i < g->n_inputs; i++)
        if (strcmp(g->nodes[g->values[g->inputs[i]].producer].name, name) == 0) return i;
    return -1;
}

size_t fl_graph_count(const fl_graph *g, int trainable) {
    size_t n = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable == trainable) n += g->params[i].numel;
    return n;
}

double fl_graph_flops(const fl_graph *g) {
    double flops = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const fl_node *n = &g->nodes[i];
        const fl_value *x = &g->values[n->in[0]], *y = &g->values[n->out];
        if (n->op == FL_OP_CONV2D)
            flops += 2.0 * y->numel * x->shape[0] * n->k * n->k;
        else if (n->op == FL_OP_LINEAR)
            flops += 2.0 * y->numel * x->shape[0];
    }
    return flops;
}
