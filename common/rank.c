/* rank.c - a stable descending order of positions by score. */
#include "rank.h"

#include <stdlib.h>

typedef struct {
    double score;
    int index;
} ranked;

static int by_score_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->index - y->index; /* stable: earlier position first */
}

fl_status fl_rank_desc(const double *score, int n, int *order, fl_err *err) {
    ranked *r = malloc((size_t)(n > 0 ? n : 1) * sizeof *r);
    if (!r) return fl_fail(err, FL_ENOMEM, "out of memory ranking %d values", n);
    for (int j = 0; j < n; j++) r[j] = (ranked){score[j], j};
    qsort(r, (size_t)n, sizeof *r, by_score_desc);
    for (int i = 0; i < n; i++) order[i] = r[i].index;
    free(r);
    return FL_OK;
}
