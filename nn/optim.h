/* optim.h - optimizers over a model's flat slabs: SGD (momentum, Nesterov, weight decay) and
 * AdamW, cosine and step learning-rate schedules, and clipping by global gradient norm, all
 * with PyTorch's semantics. The optimizer state is two slabs shaped like the parameters. */
#ifndef FL_OPTIM_H
#define FL_OPTIM_H

#include "model.h"

typedef enum { FL_OPT_SGD = 0, FL_OPT_ADAMW = 1 } fl_opt_kind;
typedef enum { FL_SCHED_CONSTANT = 0, FL_SCHED_COSINE = 1, FL_SCHED_STEP = 2 } fl_sched_kind;

typedef struct {
    fl_opt_kind kind;
    float lr;
    float momentum; /* SGD */
    int nesterov;   /* SGD */
    float weight_decay;
    float beta1, beta2, eps; /* AdamW */
    fl_sched_kind schedule;
    int total_steps; /* cosine: steps to reach min_lr */
    float min_lr;    /* cosine */
    int step_size;   /* step: decay every step_size steps */
    float gamma;     /* step: multiply by gamma */
    float clip_norm; /* > 0: clip the global gradient norm to this */
} fl_optim_config;

typedef struct {
    fl_optim_config c;
    fl_model *m;
    float *state1, *state2; /* SGD momentum; AdamW first and second moments */
    int step;               /* steps taken */
} fl_optim;

/* SGD, lr 0.01, momentum 0.9, weight decay 1e-4, constant schedule, no clipping. */
void fl_optim_config_default(fl_optim_config *c);
fl_status fl_optim_init(fl_optim *o, fl_model *m, const fl_optim_config *c, fl_err *err);
void fl_optim_destroy(fl_optim *o);
/* The learning rate the schedule gives at 0-based step t. */
float fl_optim_lr_at(const fl_optim_config *c, int t);
/* Clips (if configured) and applies one update from the model's gradient slab. The gradient
 * norm before clipping goes to *grad_norm if non-NULL. */
fl_status fl_optim_step(fl_optim *o, double *grad_norm, fl_err *err);
/* Zeroes the optimizer state (after the global model is replaced in a federated round). */
void fl_optim_reset(fl_optim *o);

#endif
