/* test_stats.c - federated statistics (fed/stats.h): a random matrix with NaNs split over three
 * sites, their float blocks summed and finished, against pipeline/standardize.c fitted on the
 * pooled rows (means, deviations, kept features and their order); the block's layout, the
 * features with fewer than 2 values, and the refusal when no feature has 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../fed/stats.h"
#include "../pipeline/internal.h"
#include "harness.h"

#define NP 61 /* patients: 20 + 20 + 21 rows */
#define NF 40 /* features */

/* x (NP x NF): feature j ~ N(3 + 0.1 j, (0.5 + 0.05 j)^2) with 10% NaN, so variances are distinct;
 * feature 5 is constant, feature 7 has one value, row 9 is a patient without the modality. */
static void make_matrix(float *x, uint8_t *present) {
    fl_rng r;
    fl_rng_seed(&r, 42);
    for (int p = 0; p < NP; p++) {
        present[p] = p != 9;
        for (int j = 0; j < NF; j++) {
            double v = 3 + 0.1 * j + (0.5 + 0.05 * j) * fl_rng_normal(&r);
            if (fl_rng_uniform(&r) < 0.1 || !present[p]) v = NAN;
            if (j == 5) v = present[p] ? 2.5 : NAN;
            if (j == 7) v = p == 3 ? 1.25 : NAN;
            x[(size_t)p * NF + j] = (float)v;
        }
    }
}

/* Sums the three sites' float blocks (rows [0,20), [20,40), [40,NP)) into total (3F floats). */
static void federate(const float *x, const uint8_t *present, float *total) {
    static const int first[4] = {0, 20, 40, NP};
    memset(total, 0, FL_STATS_LEN(NF) * sizeof(float));
    for (int s = 0; s < 3; s++) {
        double acc[FL_STATS_LEN(NF)] = {0};
        float block[FL_STATS_LEN(NF)];
        for (int p = first[s]; p < first[s + 1]; p++)
            if (present[p]) fl_stats_add_row(acc, x + (size_t)p * NF, NF);
        fl_stats_to_float(acc, NF, block);
        for (size_t i = 0; i < FL_STATS_LEN(NF); i++) total[i] += block[i];
    }
}

/* r against the pooled fit with top_k. */
static void compare(const fl_stats_result *r, const float *x, uint8_t *present, int top_k) {
    char *names[NF];
    char buf[NF][8];
    for (int j = 0; j < NF; j++) {
        snprintf(buf[j], sizeof buf[j], "f%d", j);
        names[j] = buf[j];
    }
    fl_omics_matrix m = {.F = NF, .features = names, .values = (float *)x, .present = present};
    uint8_t train[NP];
    memset(train, 1, sizeof train);
    fl_standardizer s;
    fl_err err = {{0}};
    CHECK_OK(fl_standardizer_fit(&s, &m, NP, train, top_k, 0, &err), &err);
    CHECK_EQ_INT(r->F, NF);
    CHECK_EQ_INT(r->n, s.n);
    if (r->n != s.n) goto done;
    for (int i = 0; i < s.n; i++) {
        char want[8];
        snprintf(want, sizeof want, "f%u", r->index[i]);
        fl_test_checks++;
        if (strcmp(want, s.names[i]) != 0)
            fl_test_fail_at(__FILE__, __LINE__, "top_k %d: kept[%d] is %s, the pooled fit's %s",
                            top_k, i, want, s.names[i]);
    }
    CHECK_ARRAYS("mean", r->mean, s.mean, (size_t)s.n, 1e-5, 1e-3);
    CHECK_ARRAYS("std", r->std, s.std, (size_t)s.n, 1e-5, 1e-3);
done:
    fl_standardizer_destroy(&s);
}

static void check_pooled(void) {
    float *x = malloc((size_t)NP * NF * sizeof *x);
    uint8_t present[NP];
    float total[FL_STATS_LEN(NF)];
    make_matrix(x, present);
    federate(x, present, total);
    CHECK_CLOSE(total[5], NP - 1, 0, 0);          /* counts: the constant feature in every row */
    CHECK_CLOSE(total[7], 1, 0, 0);               /* the single value */
    CHECK_CLOSE(total[NF + 7], 1.25, 0, 0);       /* its sum */
    CHECK_CLOSE(total[2 * NF + 7], 1.5625, 0, 0); /* its square */

    static const int top_k[] = {0, 10, 1, NF, NF + 5};
    for (size_t i = 0; i < sizeof top_k / sizeof top_k[0]; i++) {
        fl_stats_result r;
        fl_err err = {{0}};
        CHECK_OK(fl_stats_finish(total, NF, top_k[i], &r, &err), &err);
        compare(&r, x, present, top_k[i]);
        if (top_k[i] == 0) {
            /* the constant feature has deviation 1 and ranks second to last, the one-value
             * feature last (with its value as mean) */
            CHECK_EQ_INT(r.index[NF - 2], 5);
            CHECK_CLOSE(r.std[NF - 2], 1, 0, 0);
            CHECK_CLOSE(r.mean[NF - 2], 2.5, 1e-7, 0);
            CHECK_EQ_INT(r.index[NF - 1], 7);
            CHECK_CLOSE(r.mean[NF - 1], 1.25, 0, 0);
            CHECK_CLOSE(r.std[NF - 1], 1, 0, 0);
        }
        fl_stats_result_destroy(&r);
        CHECK(r.index == NULL && r.n == 0);
    }
    free(x);
}

static void check_refusals(void) {
    double acc[FL_STATS_LEN(3)] = {0};
    const float row[3] = {1, NAN, 2};
    fl_stats_add_row(acc, row, 3);
    CHECK_CLOSE(acc[0], 1, 0, 0);
    CHECK_CLOSE(acc[1], 0, 0, 0);
    CHECK_CLOSE(acc[3 + 2], 2, 0, 0);
    CHECK_CLOSE(acc[6 + 2], 4, 0, 0);
    float sum[FL_STATS_LEN(3)];
    fl_stats_to_float(acc, 3, sum);
    fl_stats_result r;
    fl_err err = {{0}};
    CHECK_EQ_INT(fl_stats_finish(sum, 3, 0, &r, &err), FL_EINVAL);
    CHECK_MSG(err, "fewer than 2 training patients have this modality");
    CHECK(r.index == NULL);
    fl_stats_result_destroy(&r); /* harmless after a failure */

    /* two equal variances keep their feature order */
    const float a[3] = {1, 5, 1}, b[3] = {3, 5, 3};
    memset(acc, 0, sizeof acc);
    fl_stats_add_row(acc, a, 3);
    fl_stats_add_row(acc, a, 3);
    fl_stats_add_row(acc, b, 3);
    fl_stats_to_float(acc, 3, sum);
    CHECK_OK(fl_stats_finish(sum, 3, 2, &r, &err), &err);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.index[0], 0);
    CHECK_EQ_INT(r.index[1], 2);
    fl_stats_result_destroy(&r);
}

int main(void) {
    check_pooled();
    check_refusals();
    return fl_test_summary("test_stats");
}
