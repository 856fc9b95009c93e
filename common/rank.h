/* rank.h - positions ordered by a score, largest first, ties by position: how features are
 * kept by variance, shared by the single-site standardization (pipeline/standardize.c) and the
 * federated statistics (fed/stats.c) so that both keep the same features in the same order. */
#ifndef FL_RANK_H
#define FL_RANK_H

#include "status.h"

/* Writes to order[0..n) the positions 0..n-1 sorted by score descending, equal scores by
 * position ascending. Returns FL_OK, or FL_ENOMEM. */
fl_status fl_rank_desc(const double *score, int n, int *order, fl_err *err);

#endif
