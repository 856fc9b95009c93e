/* fedavg_reference.c - the centralized side of FedAvg's defining identity, for
 * tests/check_fedavg_identity.sh: on the pooled cohort (the union of the hospitals' data), the
 * statistics phase's standardization, then ROUNDS steps of full-batch gradient descent on the
 * fusion model from the plan's initial weights, compared with the federation's final model.
 * With one local step of full-batch plain SGD per client, example weighting and server learning
 * rate 1, the two must agree to float tolerance.
 * Usage: fedavg_reference PLAN POOLED.h5 ROUNDS FEDERATED_MODEL.h5 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/site.h"
#include "server/gmodel.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: fedavg_reference PLAN POOLED.h5 ROUNDS FEDERATED_MODEL.h5\n");
        return 2;
    }
    fl_err err = {{0}};
    fl_plan p;
    fl_site *site = NULL;
    float *stats = NULL, *w = NULL, *delta = NULL, *fed = NULL;
    fl_stats_result r[4] = {{0}};
    int rc = 1, rounds = atoi(argv[3]);
    if (fl_plan_load(argv[1], &p, &err) != FL_OK) goto fail_plan;
    if (fl_site_open(&site, argv[2], &p, 0, 1, &err) != FL_OK) goto done;
    size_t ns = fl_site_statistics_len(site);
    if (!(stats = malloc(ns * sizeof(float)))) goto done;
    if (fl_site_statistics(site, stats, &err) != FL_OK) goto done;
    /* the server's finish_statistics on the one "site" that holds everything */
    fl_site_summary sum;
    fl_site_summarize(site, &sum);
    int in_dim[4] = {0};
    const float *at = stats;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        if (!(p.modalities & FL_MODALITY_BIT(m))) continue;
        int F = (int)sum.features[m - 1];
        int top = m == FL_MODALITY_RNA ? p.rna_features
                  : m == FL_MODALITY_METHYLATION ? p.meth_features : 0;
        if (fl_stats_finish(at, F, top, &r[m - 1], &err) != FL_OK ||
            fl_site_set_standardization(site, (fl_modality)m, &r[m - 1], &err) != FL_OK)
            goto done;
        in_dim[m - 1] = r[m - 1].n;
        at += FL_STATS_LEN(F);
    }
    size_t np, nb, np2, nb2;
    if (fl_gmodel_init(&p, FL_PHASE_FUSION, in_dim, NULL, &w, &np, &nb, &err) != FL_OK ||
        fl_gmodel_init(&p, FL_PHASE_FUSION, in_dim, argv[4], &fed, &np2, &nb2, &err) != FL_OK)
        goto done;
    size_t n = np + nb;
    if (!(delta = malloc(n * sizeof(float)))) goto done;
    for (int k = 0; k < rounds; k++) {
        double examples, loss;
        if (fl_site_train(site, FL_PHASE_FUSION, &p.fusion, w, n, delta, &examples, &loss,
                          &err) != FL_OK)
            goto done;
        for (size_t i = 0; i < n; i++) w[i] += delta[i];
        printf("step %d: %.0f patients, loss %.6f\n", k + 1, examples, loss);
    }
    double max_diff = 0, max_w = 0, moved = 0;
    float *w0 = NULL;
    size_t a, b;
    if (fl_gmodel_init(&p, FL_PHASE_FUSION, in_dim, NULL, &w0, &a, &b, &err) != FL_OK) goto done;
    for (size_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, fabs((double)w[i] - fed[i]));
        max_w = fmax(max_w, fabs((double)w[i]));
        moved = fmax(moved, fabs((double)w[i] - w0[i]));
    }
    free(w0);
    printf("centralized vs federated: max |diff| %.3g, max |w| %.3g, max movement %.3g\n",
           max_diff, max_w, moved);
    /* float tolerance, and the weights must have moved far more than that */
    rc = max_diff <= 1e-5 * fmax(1.0, max_w) && moved > 100 * max_diff ? 0 : 1;
    if (rc) fprintf(stderr, "fedavg_reference: the federated model differs from the centralized one\n");
done:
    if (err.msg[0]) fprintf(stderr, "fedavg_reference: %s\n", err.msg);
    for (int k = 0; k < 4; k++) fl_stats_result_destroy(&r[k]);
    free(stats);
    free(w);
    free(delta);
    free(fed);
    fl_site_free(site);
    fl_plan_destroy(&p);
    return rc;
fail_plan:
    fprintf(stderr, "fedavg_reference: %s\n", err.msg);
    return 1;
}
