/* aggregate.c - staged, weighted accumulation of updates and the server optimizers. */
#include "aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fl_agg_config_default(fl_agg_config *c, size_t n_params, size_t n_buffers) {
    memset(c, 0, sizeof *c);
    c->strategy = FL_AGG_FEDAVG;
    c->server_lr = 1.0f;
    c->beta1 = 0.9f;
    c->beta2 = 0.99f;
    c->tau = 1e-3f;
    c->n_params = n_params;
    c->n_buffers = n_buffers;
}

static float *zeros(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}

fl_status fl_agg_init(fl_aggregator *a, const fl_agg_config *c, fl_err *err) {
    memset(a, 0, sizeof *a);
    a->c = *c;
    a->n = c->n_params + c->n_buffers;
    if (!(c->server_lr > 0)) return fl_fail(err, FL_EINVAL, "aggregator: server lr must be > 0");
    a->sum = zeros(a->n + 1); /* n = 0: updates that are acknowledgments, with nothing to add */
    a->staging = zeros(a->n + 1);
    if (c->strategy != FL_AGG_FEDAVG) {
        a->m = zeros(c->n_params);
        a->v = zeros(c->n_params);
    }
    if (!a->sum || !a->staging || (c->strategy != FL_AGG_FEDAVG && (!a->m || !a->v))) {
        fl_agg_destroy(a);
        return fl_fail(err, FL_ENOMEM, "aggregator: out of memory for %zu values", c->n_params);
    }
    return FL_OK;
}

void fl_agg_destroy(fl_aggregator *a) {
    free(a->sum);
    free(a->staging);
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

void fl_agg_begin_round(fl_aggregator *a) {
    memset(a->sum, 0, a->n * sizeof(float));
    a->weight_total = 0;
    a->accepted = 0;
    fl_agg_stage_abort(a);
}

fl_status fl_agg_stage_begin(fl_aggregator *a, double weight, fl_err *err) {
    if (a->busy) return fl_fail(err, FL_EINVAL, "aggregator: another update is being received");
    if (!(weight > 0) || !isfinite(weight))
        return fl_fail(err, FL_EINVAL, "aggregator: update weight %g is not positive", weight);
    a->busy = 1;
    a->stage_weight = weight;
    a->staged = 0;
    return FL_OK;
}

fl_status fl_agg_stage_chunk(fl_aggregator *a, size_t offset, const float *delta, size_t count,
                             fl_err *err) {
    if (!a->busy) return fl_fail(err, FL_EINVAL, "aggregator: chunk outside an update");
    if (offset > a->n || count > a->n - offset)
        return fl_fail(err, FL_ESHAPE, "aggregator: chunk [%zu, %zu) beyond the model's %zu values",
                       offset, offset + count, a->n);
    memcpy(a->staging + offset, delta, count * sizeof(float));
    a->staged += count;
    return FL_OK;
}

fl_status fl_agg_stage_commit(fl_aggregator *a, fl_err *err) {
    if (!a->busy) return fl_fail(err, FL_EINVAL, "aggregator: no update to commit");
    if (a->staged != a->n) {
        size_t got = a->staged;
        fl_agg_stage_abort(a);
        return fl_fail(err, FL_ESHAPE, "aggregator: update has %zu values, the model %zu", got,
                       a->n);
    }
    float w = (float)a->stage_weight;
    for (size_t i = 0; i < a->n; i++) {
        float d = a->staging[i];
        if (!isfinite(d)) {
            fl_agg_stage_abort(a);
            return fl_fail(err, FL_EINVAL, "aggregator: update value %zu is not finite", i);
        }
        a->sum[i] += w * d;
    }
    a->weight_total += a->stage_weight;
    a->accepted++;
    /* No need to clear the staging vector: the next update must write every value of it. */
    a->busy = 0;
    a->staged = 0;
    return FL_OK;
}

void fl_agg_stage_abort(fl_aggregator *a) {
    if (a->busy || a->staged) memset(a->staging, 0, a->n * sizeof(float));
    a->busy = 0;
    a->staged = 0;
}

fl_status fl_agg_add_sum(fl_aggregator *a, const float *sum, int count, fl_err *err) {
    if (a->busy) return fl_fail(err, FL_EINVAL, "aggregator: an update is being staged");
    if (count < 1) return fl_fail(err, FL_EINVAL, "aggregator: a sum of %d updates", count);
    for (size_t i = 0; i < a->n; i++)
        if (!isfinite(sum[i]))
            return fl_fail(err, FL_EINVAL, "aggregator: summed value %zu is not finite", i);
    for (size_t i = 0; i < a->n; i++) a->sum[i] += sum[i];
    a->weight_total += count;
    a->accepted += count;
    return FL_OK;
}

fl_status fl_agg_finish(fl_aggregator *a, float *global, fl_err *err) {
    if (a->accepted == 0) return fl_fail(err, FL_EINVAL, "aggregator: no update was accepted");
    const fl_agg_config *c = &a->c;
    double inv = 1.0 / a->weight_total;
    size_t P = c->n_params;
    a->step++;
    for (size_t i = 0; i < P; i++) {
        float d = (float)(a->sum[i] * inv); /* the average update: a pseudo-gradient, negated */
        switch (c->strategy) {
        case FL_AGG_FEDAVG:
            global[i] += c->server_lr * d;
            break;
        case FL_AGG_FEDADAM:
        case FL_AGG_FEDYOGI: {
            float d2 = d * d;
            a->m[i] = c->beta1 * a->m[i] + (1 - c->beta1) * d;
            if (c->strategy == FL_AGG_FEDADAM)
                a->v[i] = c->beta2 * a->v[i] + (1 - c->beta2) * d2;
            else /* Yogi: v -= (1 - b2) d^2 sign(v - d^2) */
                a->v[i] -= (1 - c->beta2) * d2 * (a->v[i] > d2 ? 1.0f : a->v[i] < d2 ? -1.0f : 0);
            global[i] += c->server_lr * a->m[i] / (sqrtf(a->v[i]) + c->tau);
            break;
        }
        }
    }
    if (!c->fedbn)
        for (size_t i = P; i < a->n; i++) global[i] += (float)(a->sum[i] * inv);
    return FL_OK;
}
