/* stats.h - the federated statistics of the statistics and features phases: each site sends,
 * for F features, the count of its training patients with a value, their sum and their sum of
 * squares; the server adds the sites' vectors (nothing else: a sum is what secure aggregation
 * can compute) and derives the global means, standard deviations and the variance ranking.
 * The same numbers as pipeline/standardize.c fitted on the pooled training patients (sample
 * standard deviation, features ranked by variance, ties by position), up to float rounding. */
#ifndef FL_STATS_H
#define FL_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

/* Floats in one modality's block: count[F], then sum[F], then sumsq[F]. */
#define FL_STATS_LEN(F) ((size_t)3 * (size_t)(F))

/* Adds row x (F values; NaN = missing, skipped) to a block of 3F doubles. */
void fl_stats_add_row(double *acc, const float *x, int F);
/* Rounds a block of 3F doubles to the float vector that travels. */
void fl_stats_to_float(const double *acc, int F, float *out);

/* One modality's global standardization. */
typedef struct {
    int F;          /* features the sites have */
    int n;          /* features kept */
    uint32_t *index; /* n positions in the sites' (agreed) feature order, by variance desc */
    float *mean, *std; /* n: std is the sample deviation, 1 where it is below 1e-6 */
} fl_stats_result;

/* From the summed block (3F floats) keeps the top_k features by variance (all when top_k <= 0
 * or >= F; a feature with fewer than 2 values ranks last) with their means and deviations.
 * FL_EINVAL when no feature has 2 values ("fewer than 2 training patients have this
 * modality"). */
fl_status fl_stats_finish(const float *sum, int F, int top_k, fl_stats_result *r, fl_err *err);
/* The same without ranking: every one of the F features, in its own order (index i = i), with
 * its mean and deviation (site standardization, where the plan fixes the features). */
fl_status fl_stats_moments(const float *sum, int F, fl_stats_result *r, fl_err *err);
void fl_stats_result_destroy(fl_stats_result *r);

#endif
