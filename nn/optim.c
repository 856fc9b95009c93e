/* optim.c - the optimizer driver: schedule, clipping and the backend's update kernels. */
#include "optim.h"

#include <math.h>
#include <string.h>

void fl_optim_config_default(fl_optim_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = FL_OPT_SGD;
    c->lr = 0.01f;
    c->momentum = 0.9f;
    c->weight_decay = 1e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->gamma = 0.1f;
}

fl_status fl_optim_init(fl_optim *o, fl_model *m, const fl_optim_config *c, fl_err *err) {
    memset(o, 0, sizeof *o);
    if (!(c->lr > 0)) return fl_fail(err, FL_EINVAL, "optimizer: learning rate must be > 0");
    if (c->schedule == FL_SCHED_COSINE && c->total_steps < 1)
        return fl_fail(err, FL_EINVAL, "optimizer: cosine schedule needs total steps >= 1");
    if (c->schedule == FL_SCHED_STEP && c->step_size < 1)
        return fl_fail(err, FL_EINVAL, "optimizer: step schedule needs a step size >= 1");
    o->c = *c;
    o->m = m;
    fl_backend *be = fl_model_backend(m);
    size_t bytes = (fl_model_graph(m)->n_trainable + 1) * sizeof(float);
    o->state1 = be->alloc(be, bytes);
    o->state2 = c->kind == FL_OPT_ADAMW ? be->alloc(be, bytes) : NULL;
    if (!o->state1 || (c->kind == FL_OPT_ADAMW && !o->state2)) {
        fl_optim_destroy(o);
        return fl_fail(err, FL_ENOMEM, "optimizer: out of memory for its state");
    }
    return FL_OK;
}

void fl_optim_destroy(fl_optim *o) {
    if (!o->m) return;
    fl_backend *be = fl_model_backend(o->m);
    be->free(be, o->state1);
    be->free(be, o->state2);
    memset(o, 0, sizeof *o);
}

void fl_optim_reset(fl_optim *o) {
    fl_backend *be = fl_model_backend(o->m);
    size_t bytes = fl_model_graph(o->m)->n_trainable * sizeof(float);
    be->zero(be, o->state1, bytes);
    if (o->state2) be->zero(be, o->state2, bytes);
    o->step = 0;
}

float fl_optim_lr_at(const fl_optim_config *c, int t) {
    switch (c->schedule) {
    case FL_SCHED_COSINE: {
        /* CosineAnnealingLR's closed form, held at min_lr after total_steps. */
        double frac = t >= c->total_steps ? 1.0 : (double)t / c->total_steps;
        return (float)(c->min_lr + (c->lr - c->min_lr) * 0.5 * (1.0 + cos(M_PI * frac)));
    }
    case FL_SCHED_STEP:
        return (float)(c->lr * pow(c->gamma, t / c->step_size));
    case FL_SCHED_CONSTANT:
        break;
    }
    return c->lr;
}

fl_status fl_optim_step(fl_optim *o, double *grad_norm, fl_err *err) {
    fl_model *m = o->m;
    fl_backend *be = fl_model_backend(m);
    size_t n = fl_model_graph(m)->n_trainable;
    float *w = fl_model_params(m), *g = fl_model_grads(m);
    double norm = 0;
    if (grad_norm || o->c.clip_norm > 0) norm = sqrt(be->sumsq(be, g, n));
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm) && o->c.clip_norm > 0)
        return fl_fail(err, FL_EINVAL, "optimizer: gradient norm is not finite");
    if (o->c.clip_norm > 0) {
        /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1. */
        double coef = o->c.clip_norm / (norm + 1e-6);
        if (coef < 1.0) be->scale(be, g, (float)coef, n);
    }
    float lr = fl_optim_lr_at(&o->c, o->step);
    o->step++;
    if (o->c.kind == FL_OPT_ADAMW)
        be->adamw_step(be, w, g, o->state1, o->state2, n, lr, o->c.beta1, o->c.beta2, o->c.eps,
                       o->c.weight_decay, o->step);
    else
        be->sgd_step(be, w, g, o->state1, n, lr, o->c.momentum, o->c.weight_decay, o->c.nesterov);
    return FL_OK;
}
