/* model.c - runs a graph on a backend: slab and activation allocation, forward, loss and
 * backward. Everything a step touches is allocated here, once; a step allocates nothing.
 * Activation gradients live in a few reusable slots assigned by a static walk of the graph. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

typedef struct {
    void *plan; /* conv2d */
    float *save_mean, *save_invstd;
    int32_t *idx; /* maxpool winners */
    float *mask;  /* dropout */
} node_state;

struct fl_model {
    fl_graph *g;
    fl_backend *be;
    int N;
    uint64_t seed, step;
    int train; /* mode of the last forward, which backward follows */
    float *params, *grads, *buffers;
    float **x;      /* per value: activations (N * numel), device */
    float **dx;     /* per value: gradient slot, NULL for inputs */
    int *owns_x;    /* x[v] was allocated for v (not an in-place alias) */
    char *written;  /* per value, during backward: dx[v] holds a gradient */
    char *grad_set; /* per output: a loss set its gradient */
    node_state *ns;
    float **slots;
    int n_slots;
    float *staging;  /* host-layout image input before NCHW -> NHWC */
    int32_t *labels; /* N, device */
    float *class_w;  /* per output's K, device */
    size_t act_bytes;
};

static void *balloc(fl_model *m, size_t bytes) {
    void *p = m->be->alloc(m->be, bytes ? bytes : 1);
    m->act_bytes += bytes;
    return p;
}

static float *param_ptr(fl_model *m, int i) {
    if (i < 0) return NULL;
    const fl_param *p = &m->g->params[i];
    return (p->trainable ? m->params : m->buffers) + p->offset;
}

static float *grad_ptr(fl_model *m, int i) {
    return i < 0 ? NULL : m->grads + m->g->params[i].offset;
}

/* PyTorch's default initialisation for each parameter, drawn on the host. */
static fl_status init_params(fl_model *m, fl_err *err) {
    const fl_graph *g = m->g;
    fl_rng rng;
    fl_rng_seed(&rng, m->seed);
    for (int n = 0; n < g->n_nodes; n++) {
        const fl_node *node = &g->nodes[n];
        for (int k = 0; k < 4; k++) {
            int pi = node->param[k];
            if (pi < 0) continue;
            const fl_param *p = &g->params[pi];
            float *host = malloc(p->numel * sizeof(float));
            if (!host) return fl_fail(err, FL_ENOMEM, "model: out of memory");
            if (node->op == FL_OP_CONV2D && k == 0) {
                /* kaiming_normal_(mode="fan_out", nonlinearity="relu") as torchvision. */
                double std = sqrt(2.0 / (double)(p->shape[0] * p->shape[2] * p->shape[3]));
                for (size_t i = 0; i < p->numel; i++) host[i] = (float)(std * fl_rng_normal(&rng));
            } else if (node->op == FL_OP_CONV2D || node->op == FL_OP_LINEAR) {
                /* nn.Linear / nn.Conv2d bias default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
                const fl_value *in = &g->values[node->in[0]];
                double fan_in = node->op == FL_OP_LINEAR ? in->shape[0]
                                                         : (double)in->shape[0] * node->k * node->k;
                double bound = 1.0 / sqrt(fan_in);
                for (size_t i = 0; i < p->numel; i++)
                    host[i] = (float)(bound * (2.0 * fl_rng_uniform(&rng) - 1.0));
            } else {
                /* norms: weight 1, bias 0, running_mean 0, running_var 1 */
                float v = (k == 0 || k == 3) ? 1.0f : 0.0f;
                for (size_t i = 0; i < p->numel; i++) host[i] = v;
            }
            m->be->upload(m->be, param_ptr(m, pi), host, p->numel * sizeof(float));
            free(host);
        }
    }
    return FL_OK;
}

/* Which values are read by how many nodes. */
static int *count_consumers(const fl_graph *g) {
    int *uses = calloc((size_t)g->n_values, sizeof *uses);
    if (!uses) return NULL;
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++) uses[g->nodes[n].in[i]]++;
    return uses;
}

static int is_input_value(const fl_graph *g, int v) {
    return g->nodes[g->values[v].producer].op == FL_OP_INPUT;
}

/* Static walk of the backward pass: gives each non-input value a gradient slot, reusing a slot
 * once the value's producer has run its backward. Returns the number of slots or -1. */
static int assign_slots(const fl_graph *g, int *slot_of) {
    int n_slots = 0, n_free = 0;
    int *free_list = malloc((size_t)(g->n_values + 1) * sizeof *free_list);
    if (!free_list) return -1;
#define TAKE() (n_free ? free_list[--n_free] : n_slots++)
    for (int v = 0; v < g->n_values; v++) slot_of[v] = -1;
    for (int o = 0; o < g->n_outputs; o++)
        if (slot_of[g->outputs[o]] < 0) slot_of[g->outputs[o]] = TAKE();
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        const fl_node *node = &g->nodes[n];
        if (node->op == FL_OP_INPUT) continue;
        int out = node->out, shared = 0;
        if (slot_of[out] < 0) slot_of[out] = TAKE();
        for (int i = 0; i < node->n_in; i++) {
            int in = node->in[i];
            if (is_input_value(g, in) || slot_of[in] >= 0) continue;
            if (node->op == FL_OP_RELU && node->inplace) {
                slot_of[in] = slot_of[out];
                shared = 1;
            } else {
                slot_of[in] = TAKE();
            }
        }
        if (!shared) free_list[n_free++] = slot_of[out];
    }
#undef TAKE
    free(free_list);
    return n_slots;
}

static fl_status alloc_state(fl_model *m, fl_err *err) {
    fl_graph *g = m->g;
    fl_backend *be = m->be;
    int N = m->N;
    size_t max_value = 0, max_input = 0;
    int *uses = count_consumers(g), *slot_of = malloc((size_t)g->n_values * sizeof(int));
    fl_status status = FL_OK;
    if (!uses || !slot_of) goto oom;

    for (int n = 0; n < g->n_nodes; n++) {
        const fl_node *node = &g->nodes[n];
        const fl_value *y = &g->values[node->out];
        size_t bytes = (size_t)N * y->numel * sizeof(float);
        if (y->numel > max_value) max_value = y->numel;
        /* An in-place ReLU writes over its input when it is that input's only reader. */
        if (node->op == FL_OP_RELU && node->inplace && uses[node->in[0]] == 1 &&
            !is_input_value(g, node->in[0])) {
            m->x[node->out] = m->x[node->in[0]];
        } else {
            if (!(m->x[node->out] = balloc(m, bytes))) goto oom;
            m->owns_x[node->out] = 1;
        }
        if (node->op == FL_OP_INPUT && y->numel > max_input) max_input = y->numel;

        node_state *s = &m->ns[n];
        const fl_value *x = node->n_in ? &g->values[node->in[0]] : NULL;
        switch (node->op) {
        case FL_OP_CONV2D: {
            fl_conv2d_shape cs = {.N = N,
                                  .C = x->shape[0],
                                  .H = x->shape[1],
                                  .W = x->shape[2],
                                  .K = y->shape[0],
                                  .R = node->k,
                                  .S = node->k,
                                  .stride = node->stride,
                                  .pad = node->pad,
                                  .P = y->shape[1],
                                  .Q = y->shape[2],
                                  .has_bias = node->param[1] >= 0};
            if ((status = be->conv2d_plan(be, &cs, &s->plan, err)) != FL_OK) goto fail;
            break;
        }
        case FL_OP_BATCHNORM2D:
        case FL_OP_GROUPNORM:
        case FL_OP_LAYERNORM: {
            size_t count = node->op == FL_OP_BATCHNORM2D ? (size_t)x->shape[0]
                           : node->op == FL_OP_GROUPNORM ? (size_t)N * node->groups
                                                         : (size_t)N;
            if (!(s->save_mean = balloc(m, count * sizeof(float))) ||
                !(s->save_invstd = balloc(m, count * sizeof(float))))
                goto oom;
            break;
        }
        case FL_OP_MAXPOOL2D:
            if (!(s->idx = balloc(m, (size_t)N * y->numel * sizeof(int32_t)))) goto oom;
            break;
        case FL_OP_DROPOUT:
            if (!(s->mask = balloc(m, bytes))) goto oom;
            break;
        default:
            break;
        }
    }

    m->n_slots = assign_slots(g, slot_of);
    if (m->n_slots < 0 || !(m->slots = calloc((size_t)m->n_slots, sizeof(float *)))) goto oom;
    for (int i = 0; i < m->n_slots; i++)
        if (!(m->slots[i] = balloc(m, (size_t)N * max_value * sizeof(float)))) goto oom;
    for (int v = 0; v < g->n_values; v++) m->dx[v] = slot_of[v] >= 0 ? m->slots[slot_of[v]] : NULL;

    int max_classes = 1;
    for (int o = 0; o < g->n_outputs; o++)
        if (g->values[g->outputs[o]].shape[0] > max_classes)
            max_classes = g->values[g->outputs[o]].shape[0];
    if (!(m->staging = balloc(m, (size_t)N * max_input * sizeof(float))) ||
        !(m->labels = balloc(m, (size_t)N * sizeof(int32_t))) ||
        !(m->class_w = balloc(m, (size_t)max_classes * sizeof(float))))
        goto oom;
    goto done;
oom:
    status = fl_fail(err, FL_ENOMEM, "model: out of memory for activations (batch %d)", N);
fail:
done:
    free(uses);
    free(slot_of);
    return status;
}

fl_status fl_model_new(fl_model **out, fl_graph *g, fl_backend *be, int batch, uint64_t seed,
                       fl_err *err) {
    *out = NULL;
    if (g->status != FL_OK) {
        fl_status s = fl_fail(err, g->status, "%s", g->err.msg);
        fl_graph_free(g);
        return s;
    }
    if (batch < 1) {
        fl_graph_free(g);
        return fl_fail(err, FL_EINVAL, "model: batch must be at least 1, not %d", batch);
    }
    fl_model *m = calloc(1, sizeof *m);
    if (!m) {
        fl_graph_free(g);
        return fl_fail(err, FL_ENOMEM, "model: out of memory");
    }
    m->g = g;
    m->be = be;
    m->N = batch;
    m->seed = seed;
    fl_status status = FL_OK;
    m->x = calloc((size_t)g->n_values, sizeof(float *));
    m->dx = calloc((size_t)g->n_values, sizeof(float *));
    m->owns_x = calloc((size_t)g->n_values, sizeof(int));
    m->written = calloc((size_t)g->n_values, 1);
    m->grad_set = calloc((size_t)g->n_outputs + 1, 1);
    m->ns = calloc((size_t)g->n_nodes, sizeof(node_state));
    m->params = be->alloc(be, (g->n_trainable ? g->n_trainable : 1) * sizeof(float));
    m->grads = be->alloc(be, (g->n_trainable ? g->n_trainable : 1) * sizeof(float));
    m->buffers = be->alloc(be, (g->n_buffer ? g->n_buffer : 1) * sizeof(float));
    if (!m->x || !m->dx || !m->owns_x || !m->written || !m->grad_set || !m->ns || !m->params ||
        !m->grads || !m->buffers) {
        status = fl_fail(err, FL_ENOMEM, "model: out of memory for %zu parameters", g->n_trainable);
        goto fail;
    }
    if ((status = alloc_state(m, err)) != FL_OK || (status = init_params(m, err)) != FL_OK)
        goto fail;
    *out = m;
    return FL_OK;
fail:
    fl_model_free(m);
    return status;
}

void fl_model_free(fl_model *m) {
    if (!m) return;
    fl_backend *be = m->be;
    fl_graph *g = m->g;
    if (m->ns)
        for (int n = 0; n < g->n_nodes; n++) {
            node_state *s = &m->ns[n];
            if (s->plan) be->conv2d_plan_free(be, s->plan);
            be->free(be, s->save_mean);
            be->free(be, s->save_invstd);
            be->free(be, s->idx);
            be->free(be, s->mask);
        }
    if (m->x)
        for (int v = 0; v < g->n_values; v++)
            if (m->owns_x[v]) be->free(be, m->x[v]);
    for (int i = 0; i < m->n_slots; i++) be->free(be, m->slots[i]);
    be->free(be, m->staging);
    be->free(be, m->labels);
    be->free(be, m->class_w);
    be->free(be, m->params);
    be->free(be, m->grads);
    be->free(be, m->buffers);
    free(m->slots);
    free(m->x);
    free(m->dx);
    free(m->owns_x);
    free(m->written);
    free(m->grad_set);
    free(m->ns);
    fl_graph_free(g);
    free(m);
}

const fl_graph *fl_model_graph(const fl_model *m) {
    return m->g;
}
fl_backend *fl_model_backend(const fl_model *m) {
    return m->be;
}
int fl_model_batch(const fl_model *m) {
    return m->N;
}
float *fl_model_params(fl_model *m) {
    return m->params;
}
float *fl_model_grads(fl_model *m) {
    return m->grads;
}
float *fl_model_buffers(fl_model *m) {
    return m->buffers;
}
size_t fl_model_activation_bytes(const fl_model *m) {
    return m->act_bytes;
}

static fl_tensor param_view(fl_model *m, int i, float *data) {
    fl_tensor t = {0};
    if (i < 0 || i >= m->g->n_params) return t;
    const fl_param *p = &m->g->params[i];
    t.data = data;
    t.ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) t.shape[d] = p->shape[d];
    t.dtype = FL_F32;
    t.device = m->be->device;
    return t;
}

fl_tensor fl_model_param_tensor(fl_model *m, int i) {
    return param_view(m, i, i >= 0 && i < m->g->n_params ? param_ptr(m, i) : NULL);
}

fl_tensor fl_model_grad_tensor(fl_model *m, int i) {
    int ok = i >= 0 && i < m->g->n_params && m->g->params[i].trainable;
    return param_view(m, i, ok ? grad_ptr(m, i) : NULL);
}

fl_tensor fl_model_value_tensor(fl_model *m, int v) {
    fl_tensor t = {0};
    if (v < 0 || v >= m->g->n_values) return t;
    const fl_value *val = &m->g->values[v];
    t.data = m->x[v];
    t.ndim = val->ndim + 1;
    t.shape[0] = m->N;
    for (int d = 0; d < val->ndim; d++) t.shape[d + 1] = val->shape[d];
    t.dtype = FL_F32;
    t.device = m->be->device;
    t.channels_last = val->ndim == 3;
    return t;
}

fl_status fl_model_get_tensor(fl_model *m, int param, float *host) {
    if (param < 0 || param >= m->g->n_params) return FL_EINVAL;
    m->be->download(m->be, host, param_ptr(m, param), m->g->params[param].numel * sizeof(float));
    return FL_OK;
}

fl_status fl_model_set_tensor(fl_model *m, int param, const float *host) {
    if (param < 0 || param >= m->g->n_params) return FL_EINVAL;
    m->be->upload(m->be, param_ptr(m, param), host, m->g->params[param].numel * sizeof(float));
    return FL_OK;
}

fl_status fl_model_set_input(fl_model *m, int i, const float *host, fl_err *err) {
    if (i < 0 || i >= m->g->n_inputs)
        return fl_fail(err, FL_EINVAL, "model: no input %d (the model has %d)", i, m->g->n_inputs);
    int v = m->g->inputs[i];
    const fl_value *val = &m->g->values[v];
    size_t bytes = (size_t)m->N * val->numel * sizeof(float);
    if (val->ndim == 3) {
        m->be->upload(m->be, m->staging, host, bytes);
        m->be->nchw_to_nhwc(m->be, m->staging, m->x[v], m->N, val->shape[0], val->shape[1],
                            val->shape[2]);
    } else {
        m->be->upload(m->be, m->x[v], host, bytes);
    }
    return FL_OK;
}

static void node_forward(fl_model *m, int n, int train) {
    fl_backend *be = m->be;
    const fl_graph *g = m->g;
    const fl_node *node = &g->nodes[n];
    node_state *s = &m->ns[n];
    const fl_value *y = &g->values[node->out];
    const fl_value *xv = node->n_in ? &g->values[node->in[0]] : NULL;
    const float *x = node->n_in ? m->x[node->in[0]] : NULL;
    float *out = m->x[node->out];
    int N = m->N;
    size_t total = (size_t)N * y->numel;
    switch (node->op) {
    case FL_OP_INPUT:
        break;
    case FL_OP_CONV2D:
        be->conv2d_forward(be, s->plan, x, param_ptr(m, node->param[0]),
                           param_ptr(m, node->param[1]), out);
        break;
    case FL_OP_BATCHNORM2D:
        be->batchnorm_forward(be, x, out, N * xv->shape[1] * xv->shape[2], xv->shape[0],
                              param_ptr(m, node->param[0]), param_ptr(m, node->param[1]),
                              param_ptr(m, node->param[2]), param_ptr(m, node->param[3]),
                              node->momentum, node->eps, train, s->save_mean, s->save_invstd);
        break;
    case FL_OP_GROUPNORM:
        be->groupnorm_forward(be, x, out, N, xv->shape[1] * xv->shape[2], xv->shape[0],
                              node->groups, param_ptr(m, node->param[0]),
                              param_ptr(m, node->param[1]), node->eps, s->save_mean,
                              s->save_invstd);
        break;
    case FL_OP_LAYERNORM:
        be->layernorm_forward(be, x, out, N, xv->shape[0], param_ptr(m, node->param[0]),
                              param_ptr(m, node->param[1]), node->eps, s->save_mean,
                              s->save_invstd);
        break;
    case FL_OP_RELU:
        be->relu_forward(be, x, out, total);
        break;
    case FL_OP_MAXPOOL2D:
        be->maxpool_forward(be, x, out, s->idx, N, xv->shape[1], xv->shape[2], xv->shape[0],
                            node->k, node->stride, node->pad, y->shape[1], y->shape[2]);
        break;
    case FL_OP_GAP:
        be->gap_forward(be, x, out, N, xv->shape[1] * xv->shape[2], xv->shape[0]);
        break;
    case FL_OP_LINEAR:
        be->linear_forward(be, x, param_ptr(m, node->param[0]), param_ptr(m, node->param[1]), out,
                           N, xv->shape[0], y->shape[0]);
        break;
    case FL_OP_DROPOUT:
        if (train && node->p > 0)
            be->dropout_forward(be, x, out, s->mask, total, node->p,
                                fl_mix64(m->seed ^ m->step, (uint64_t)n));
        else
            be->copy(be, out, x, total * sizeof(float));
        break;
    case FL_OP_ADD:
        be->add(be, x, m->x[node->in[1]], out, total);
        break;
    case FL_OP_CONCAT: {
        int off = 0;
        for (int i = 0; i < node->n_in; i++) {
            int F = g->values[node->in[i]].shape[0];
            be->copy_cols(be, m->x[node->in[i]], F, out + off, y->shape[0], N, F, 0.0f);
            off += F;
        }
        break;
    }
    case FL_OP_ROWSCALE:
        be->rowscale(be, x, m->x[node->in[1]], out, N, y->shape[0]);
        break;
    }
}

fl_status fl_model_forward(fl_model *m, int train, fl_err *err) {
    (void)err;
    if (train) m->step++;
    for (int n = 0; n < m->g->n_nodes; n++) node_forward(m, n, train);
    memset(m->grad_set, 0, (size_t)m->g->n_outputs + 1);
    m->train = train;
    return FL_OK;
}

fl_status fl_model_get_output(fl_model *m, int o, float *host, fl_err *err) {
    if (o < 0 || o >= m->g->n_outputs) return fl_fail(err, FL_EINVAL, "model: no output %d", o);
    int v = m->g->outputs[o];
    m->be->download(m->be, host, m->x[v], (size_t)m->N * m->g->values[v].numel * sizeof(float));
    return FL_OK;
}

/* Copies N rows of value v from device buffer src (its activations or its gradient) to host:
 * images NHWC on the device -> NCHW on the host (a host transpose: explanations are not hot). */
static fl_status download_value(fl_model *m, int v, const float *src, float *host, fl_err *err) {
    const fl_value *val = &m->g->values[v];
    size_t n = (size_t)m->N * val->numel;
    if (val->ndim != 3) {
        m->be->download(m->be, host, src, n * sizeof(float));
        return FL_OK;
    }
    float *tmp = malloc(n * sizeof(float));
    if (!tmp) return fl_fail(err, FL_ENOMEM, "model: out of memory reading a value");
    m->be->download(m->be, tmp, src, n * sizeof(float));
    int C = val->shape[0], HW = val->shape[1] * val->shape[2];
    for (int i = 0; i < m->N; i++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++)
                host[((size_t)i * C + c) * HW + p] = tmp[((size_t)i * HW + p) * C + c];
    free(tmp);
    return FL_OK;
}

fl_status fl_model_get_value(fl_model *m, int v, float *host, fl_err *err) {
    if (v < 0 || v >= m->g->n_values) return fl_fail(err, FL_EINVAL, "model: no value %d", v);
    return download_value(m, v, m->x[v], host, err);
}

int fl_model_find_value(const fl_model *m, const char *name) {
    const fl_graph *g = m->g;
    for (int n = 0; n < g->n_nodes; n++) {
        const fl_node *node = &g->nodes[n];
        if (strcmp(name, "gap_input") == 0 && node->op == FL_OP_GAP) return node->in[0];
        if (node->name[0] && strcmp(node->name, name) == 0) return node->out;
    }
    return -1;
}

fl_status fl_model_loss_ce(fl_model *m, int o, const int32_t *labels, const float *class_w,
                           float *loss, fl_err *err) {
    if (o < 0 || o >= m->g->n_outputs) return fl_fail(err, FL_EINVAL, "model: no output %d", o);
    int v = m->g->outputs[o], K = m->g->values[v].shape[0];
    for (int i = 0; i < m->N; i++)
        if (labels[i] < -1 || labels[i] >= K)
            return fl_fail(err, FL_EINVAL, "model: label %d of sample %d is outside 0..%d",
                           labels[i], i, K - 1);
    fl_backend *be = m->be;
    be->upload(be, m->labels, labels, (size_t)m->N * sizeof(int32_t));
    if (class_w) be->upload(be, m->class_w, class_w, (size_t)K * sizeof(float));
    *loss = be->softmax_ce(be, m->x[v], m->labels, class_w ? m->class_w : NULL, m->N, K, m->dx[v],
                           NULL);
    m->grad_set[o] = 1;
    return FL_OK;
}

static void node_backward(fl_model *m, int n) {
    fl_backend *be = m->be;
    const fl_graph *g = m->g;
    const fl_node *node = &g->nodes[n];
    node_state *s = &m->ns[n];
    const fl_value *y = &g->values[node->out];
    const fl_value *xv = &g->values[node->in[0]];
    int in0 = node->in[0];
    const float *x = m->x[in0], *dy = m->dx[node->out];
    float *dx = m->dx[in0];
    float beta = m->written[in0] ? 1.0f : 0.0f;
    int N = m->N;
    size_t total = (size_t)N * y->numel;
    switch (node->op) {
    case FL_OP_INPUT:
        return;
    case FL_OP_CONV2D:
        be->conv2d_backward(be, s->plan, x, param_ptr(m, node->param[0]), dy, dx, beta,
                            grad_ptr(m, node->param[0]), grad_ptr(m, node->param[1]));
        break;
    case FL_OP_BATCHNORM2D:
        be->batchnorm_backward(be, x, dy, dx, beta, N * xv->shape[1] * xv->shape[2], xv->shape[0],
                               param_ptr(m, node->param[0]), s->save_mean, s->save_invstd, m->train,
                               grad_ptr(m, node->param[0]), grad_ptr(m, node->param[1]));
        break;
    case FL_OP_GROUPNORM:
        be->groupnorm_backward(be, x, dy, dx, beta, N, xv->shape[1] * xv->shape[2], xv->shape[0],
                               node->groups, param_ptr(m, node->param[0]), s->save_mean,
                               s->save_invstd, grad_ptr(m, node->param[0]),
                               grad_ptr(m, node->param[1]));
        break;
    case FL_OP_LAYERNORM:
        be->layernorm_backward(be, x, dy, dx, beta, N, xv->shape[0], param_ptr(m, node->param[0]),
                               s->save_mean, s->save_invstd, grad_ptr(m, node->param[0]),
                               grad_ptr(m, node->param[1]));
        break;
    case FL_OP_RELU:
        be->relu_backward(be, m->x[node->out], dy, dx, beta, total);
        break;
    case FL_OP_MAXPOOL2D:
        be->maxpool_backward(be, dy, s->idx, dx, beta, N, xv->shape[1], xv->shape[2], xv->shape[0],
                             y->shape[1], y->shape[2]);
        break;
    case FL_OP_GAP:
        be->gap_backward(be, dy, dx, beta, N, xv->shape[1] * xv->shape[2], xv->shape[0]);
        break;
    case FL_OP_LINEAR:
        be->linear_backward(be, x, param_ptr(m, node->param[0]), dy, dx, beta,
                            grad_ptr(m, node->param[0]), grad_ptr(m, node->param[1]), N,
                            xv->shape[0], y->shape[0]);
        break;
    case FL_OP_DROPOUT:
        if (!dx) break;
        if (m->train && node->p > 0)
            be->dropout_backward(be, dy, s->mask, dx, beta, total);
        else
            be->accumulate(be, dx, dy, beta, total);
        break;
    case FL_OP_ADD:
        for (int i = 0; i < 2; i++) {
            int in = node->in[i];
            if (m->dx[in]) be->accumulate(be, m->dx[in], dy, m->written[in] ? 1.0f : 0.0f, total);
            m->written[in] = 1;
        }
        return;
    case FL_OP_CONCAT: {
        int off = 0;
        for (int i = 0; i < node->n_in; i++) {
            int in = node->in[i], F = g->values[in].shape[0];
            if (m->dx[in])
                be->copy_cols(be, dy + off, y->shape[0], m->dx[in], F, N, F,
                              m->written[in] ? 1.0f : 0.0f);
            m->written[in] = 1;
            off += F;
        }
        return;
    }
    case FL_OP_ROWSCALE:
        /* The scale is a presence mask (an input): only x receives a gradient. */
        if (dx) {
            if (beta == 0.0f) {
                be->rowscale(be, dy, m->x[node->in[1]], dx, N, y->shape[0]);
            } else {
                /* dx += s*dy without a temporary: scale dy in place (it is not read again). */
                float *dyw = m->dx[node->out];
                be->rowscale(be, dyw, m->x[node->in[1]], dyw, N, y->shape[0]);
                be->accumulate(be, dx, dyw, 1.0f, total);
            }
        }
        break;
    }
    m->written[in0] = 1;
}

/* Runs the backward of nodes n_nodes-1 down to stop+1 from the gradients marked in written. */
static void backward_nodes(fl_model *m, int stop) {
    const fl_graph *g = m->g;
    for (int n = g->n_nodes - 1; n > stop; n--) {
        const fl_node *node = &g->nodes[n];
        if (node->op == FL_OP_INPUT) continue;
        if (!m->written[node->out]) {
            /* Nothing downstream depends on this value: its gradient is zero. */
            m->be->zero(m->be, m->dx[node->out],
                        (size_t)m->N * g->values[node->out].numel * sizeof(float));
            m->written[node->out] = 1;
        }
        node_backward(m, n);
    }
    memset(m->grad_set, 0, (size_t)g->n_outputs + 1);
}

fl_status fl_model_backward(fl_model *m, fl_err *err) {
    const fl_graph *g = m->g;
    int any = 0;
    memset(m->written, 0, (size_t)g->n_values);
    for (int o = 0; o < g->n_outputs; o++)
        if (m->grad_set[o]) {
            m->written[g->outputs[o]] = 1;
            any = 1;
        }
    if (!any) return fl_fail(err, FL_EINVAL, "model: backward without a loss");
    backward_nodes(m, -1);
    return FL_OK;
}

fl_status fl_model_backward_from(fl_model *m, int o, const float *grad, int v, float *dv,
                                 fl_err *err) {
    const fl_graph *g = m->g;
    if (o < 0 || o >= g->n_outputs) return fl_fail(err, FL_EINVAL, "model: no output %d", o);
    if (v < 0 || v >= g->n_values || !m->dx[v])
        return fl_fail(err, FL_EINVAL, "model: value %d has no gradient (an input, or none)", v);
    int ov = g->outputs[o];
    m->be->upload(m->be, m->dx[ov], grad, (size_t)m->N * g->values[ov].numel * sizeof(float));
    memset(m->written, 0, (size_t)g->n_values);
    m->written[ov] = 1;
    /* Stopping above v's producer keeps dx[v] intact: its slot is only recycled once the
     * producer's backward has read it. */
    backward_nodes(m, g->values[v].producer);
    return download_value(m, v, m->dx[v], dv, err);
}
