/* aggregate.h - the server's aggregation of model updates, as flat float vectors: a running
 * weighted sum fed chunk by chunk, then a server optimizer step (FedAvg, FedAdam, FedYogi).
 * Memory is two model-sized vectors (the sum and one staging vector) plus the optimizer state,
 * whatever the number of clients: uploads are staged one at a time and only an update that
 * passed its checks (length, SHA-256, not cancelled) is added to the sum.
 * Not a transport and not a privacy mechanism: it never sees who sent what beyond a weight. */
#ifndef FL_AGGREGATE_H
#define FL_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

typedef enum {
    FL_AGG_FEDAVG = 0, /* also the server side of FedProx (mu acts in the clients' loss) */
    FL_AGG_FEDADAM = 1,
    FL_AGG_FEDYOGI = 2,
} fl_agg_strategy;

typedef struct {
    fl_agg_strategy strategy;
    float server_lr;         /* FedAvg: 1 = plain averaging */
    float beta1, beta2, tau; /* FedAdam / FedYogi (Reddi et al. 2021): 0.9, 0.99, 1e-3 */
    size_t n_params;         /* the first n_params floats are parameters (optimizer applies) */
    size_t n_buffers;        /* the next n_buffers are BatchNorm statistics (always averaged) */
    int fedbn;               /* 1: buffers stay local, the global buffers are never changed */
} fl_agg_config;

typedef struct {
    fl_agg_config c;
    size_t n;            /* n_params + n_buffers */
    float *sum;          /* sum over accepted updates of weight * delta */
    float *staging;      /* the update being received */
    float *m, *v;        /* server optimizer state (FedAdam / FedYogi), NULL for FedAvg */
    double weight_total; /* sum of accepted weights this round */
    int accepted;        /* updates accepted this round */
    int busy;            /* an update is being staged */
    double stage_weight;
    size_t staged; /* floats received for the staged update */
    int step;      /* server optimizer steps taken */
} fl_aggregator;

void fl_agg_config_default(fl_agg_config *c, size_t n_params, size_t n_buffers);
fl_status fl_agg_init(fl_aggregator *a, const fl_agg_config *c, fl_err *err);
void fl_agg_destroy(fl_aggregator *a);

/* Starts a round: clears the sum and the count (the optimizer state carries over). */
void fl_agg_begin_round(fl_aggregator *a);

/* Staging one update: begin (FL_EINVAL if another update is being staged: the caller
 * serialises uploads), chunks in any order (each float written once: offset + count <= n),
 * then commit (adds weight * staging to the sum; FL_ESHAPE unless exactly n floats arrived)
 * or abort (drops it). weight > 0: the example count, or 1 for uniform weighting. */
fl_status fl_agg_stage_begin(fl_aggregator *a, double weight, fl_err *err);
fl_status fl_agg_stage_chunk(fl_aggregator *a, size_t offset, const float *delta, size_t count,
                             fl_err *err);
fl_status fl_agg_stage_commit(fl_aggregator *a, fl_err *err);
void fl_agg_stage_abort(fl_aggregator *a);

/* Secure aggregation: the round's updates arrive already summed (the decoded masked sum,
 * crypto/fixedpoint.h) over `count` sites of uniform weight 1. Adds sum[0..n) to the running sum
 * and count to weight_total and accepted, as count stage_commit calls of weight 1 whose deltas
 * add up to sum would (fl_agg_finish then averages over count). The server never holds one
 * site's update on this path. FL_EINVAL while an update is staged, for count < 1 or a value
 * that is not finite (nothing added). */
fl_status fl_agg_add_sum(fl_aggregator *a, const float *sum, int count, fl_err *err);

/* Applies the round: avg = sum / weight_total; parameters move by the strategy, buffers by
 * avg (unless fedbn). global (n floats) is updated in place. FL_EINVAL with no update. */
fl_status fl_agg_finish(fl_aggregator *a, float *global, fl_err *err);

#endif
