/* partition.h - splits a cohort's patients among N parts (federated clients): by site, IID, or
 * with Dirichlet label skew. Pure functions of (cohort, mode, N, seed) to a part index per
 * patient; the samples of one case always share a part. Not a writer: `fedlung cohort split`
 * and the simulator turn the indices into files or clients. */
#ifndef FL_PARTITION_H
#define FL_PARTITION_H

#include <stdint.h>

#include "../common/rng.h"
#include "../common/status.h"
#include "cohort.h"

typedef enum {
    FL_PARTITION_SITE = 0,     /* one part per site that has patients, in site order */
    FL_PARTITION_IID = 1,      /* cases shuffled into N parts of near-equal patient counts */
    FL_PARTITION_DIRICHLET = 2 /* per class, part shares ~ Dir(alpha); small alpha = strong skew */
} fl_partition_mode;

typedef struct {
    fl_partition_mode mode;
    double alpha;  /* Dirichlet concentration, > 0 */
    int parts;     /* N; for site 0 means "one per site" */
    uint64_t seed; /* iid and dirichlet */
} fl_partition_spec;

/* Parses "site", "iid" or "dirichlet:ALPHA" (0 < ALPHA <= 1e6) into spec->mode and spec->alpha,
 * leaving parts and seed alone. FL_EINVAL with a sentence quoting text otherwise. */
fl_status fl_partition_parse(const char *text, fl_partition_spec *spec, fl_err *err);

/* Assigns every patient of c a part in [0, *n_parts) into part (c->P entries, caller-owned).
 * *n_parts receives the number of parts (spec->parts, or the number of sites with patients).
 * Every part gets at least one case. Cases (c->case_id) are never divided; a case's class is
 * the label of its first sample. Dirichlet: per class, shares q ~ Dir(alpha) over the parts,
 * the class's cases shuffled and cut by largest remainders of n_class * q; a draw leaving a part
 * empty is redrawn (up to 100 times), then one case moves from the part with most cases to each
 * empty part. Fails with FL_EINVAL (sentence without a file name) when N exceeds the number of
 * cases, N < 1, --parts disagrees with the site count, or a case spans two sites (site mode). */
fl_status fl_partition(const fl_cohort *c, const fl_partition_spec *spec, int32_t *part,
                       int *n_parts, fl_err *err);

/* One draw q ~ Dir(alpha, ..., alpha) of K components (sum 1), from Gamma(alpha) draws by
 * Marsaglia-Tsang computed in log space, so tiny alphas do not underflow to 0/0. */
void fl_dirichlet_sample(fl_rng *rng, double alpha, int K, double *q);

#endif
