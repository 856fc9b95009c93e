/* standardize.c - per-modality feature selection by variance and z-scoring, fitted on the
 * train split and stored with the model, so the same transform applies at inference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rank.h"
#include "internal.h"

double fl_mvalue(double beta) {
    /* M = log2(beta / (1 - beta)), with beta clamped away from 0 and 1. */
    double b = beta < 1e-3 ? 1e-3 : beta > 1 - 1e-3 ? 1 - 1e-3 : beta;
    return log2(b / (1 - b));
}

static double value_at(const fl_omics_matrix *m, int p, int j, int mvalue) {
    double v = m->values[(size_t)p * m->F + j];
    return (mvalue && !isnan(v)) ? fl_mvalue(v) : v;
}

static fl_status alloc_std(fl_standardizer *s, int n, fl_err *err) {
    s->n = n;
    s->names = calloc((size_t)n, sizeof(char *));
    s->mean = calloc((size_t)n, sizeof(float));
    s->std = calloc((size_t)n, sizeof(float));
    if (!s->names || !s->mean || !s->std) {
        fl_standardizer_destroy(s);
        return fl_fail(err, FL_ENOMEM, "out of memory for %d features", n);
    }
    return FL_OK;
}

fl_status fl_standardizer_fit(fl_standardizer *s, const fl_omics_matrix *m, int P,
                              const uint8_t *train, int top_k, int mvalue, fl_err *err) {
    memset(s, 0, sizeof *s);
    int F = m->F;
    int *r = malloc((size_t)F * sizeof *r);
    double *mean = calloc((size_t)F, sizeof(double)), *sd = calloc((size_t)F, sizeof(double));
    double *score = calloc((size_t)F, sizeof(double));
    fl_status st = FL_OK;
    if (!r || !mean || !sd || !score) {
        st = fl_fail(err, FL_ENOMEM, "out of memory for %d features", F);
        goto done;
    }
    int rows = 0;
    for (int p = 0; p < P; p++) rows += train[p] && m->present[p];
    if (rows < 2) {
        st = fl_fail(err, FL_EINVAL, "fewer than 2 training patients have this modality");
        goto done;
    }
    for (int j = 0; j < F; j++) {
        double sum = 0, sq = 0;
        int n = 0;
        for (int p = 0; p < P; p++) {
            if (!train[p] || !m->present[p]) continue;
            double v = value_at(m, p, j, mvalue);
            if (isnan(v)) continue;
            sum += v;
            n++;
        }
        double mu = n ? sum / n : 0;
        for (int p = 0; p < P; p++) {
            if (!train[p] || !m->present[p]) continue;
            double v = value_at(m, p, j, mvalue);
            if (!isnan(v)) sq += (v - mu) * (v - mu);
        }
        mean[j] = mu;
        sd[j] = n > 1 ? sqrt(sq / (n - 1)) : 0;
        score[j] = n > 1 ? sd[j] * sd[j] : -1.0; /* too few values: ranks last */
    }
    if ((st = fl_rank_desc(score, F, r, err)) != FL_OK) goto done;
    int keep = (top_k <= 0 || top_k > F) ? F : top_k;
    if ((st = alloc_std(s, keep, err)) != FL_OK) goto done;
    s->mvalue = mvalue;
    for (int i = 0; i < keep; i++) {
        int j = r[i];
        s->names[i] = strdup(m->features[j]);
        if (!s->names[i]) {
            fl_standardizer_destroy(s);
            st = fl_fail(err, FL_ENOMEM, "out of memory");
            goto done;
        }
        s->mean[i] = (float)mean[j];
        s->std[i] = (float)(sd[j] > 1e-6 ? sd[j] : 1.0);
    }
done:
    free(r);
    free(mean);
    free(sd);
    free(score);
    return st;
}

fl_status fl_standardizer_fit_dense(fl_standardizer *s, const float *x, int P, int F,
                                    const uint8_t *train, const uint8_t *present, fl_err *err) {
    memset(s, 0, sizeof *s);
    fl_status st = alloc_std(s, F, err);
    if (st != FL_OK) return st;
    for (int j = 0; j < F; j++) {
        double sum = 0, sq = 0;
        int n = 0;
        for (int p = 0; p < P; p++)
            if (train[p] && present[p]) {
                sum += x[(size_t)p * F + j];
                n++;
            }
        double mu = n ? sum / n : 0;
        for (int p = 0; p < P; p++)
            if (train[p] && present[p]) {
                double d = x[(size_t)p * F + j] - mu;
                sq += d * d;
            }
        double sd = n > 1 ? sqrt(sq / (n - 1)) : 1;
        char name[32];
        snprintf(name, sizeof name, "emb%d", j);
        if (!(s->names[j] = strdup(name))) {
            fl_standardizer_destroy(s);
            return fl_fail(err, FL_ENOMEM, "out of memory");
        }
        s->mean[j] = (float)mu;
        s->std[j] = (float)(sd > 1e-6 ? sd : 1.0);
    }
    return FL_OK;
}

fl_status fl_standardizer_apply(const fl_standardizer *s, const fl_omics_matrix *m, int P,
                                float *out, fl_err *err) {
    int *col = malloc((size_t)(s->n ? s->n : 1) * sizeof(int));
    if (!col) return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int i = 0; i < s->n; i++) {
        col[i] = -1;
        for (int j = 0; j < m->F; j++)
            if (strcmp(m->features[j], s->names[i]) == 0) {
                col[i] = j;
                break;
            }
        if (col[i] < 0) {
            fl_status st =
                fl_fail(err, FL_ENOTFOUND,
                        "feature %s used by the model is missing from the cohort", s->names[i]);
            free(col);
            return st;
        }
    }
    for (int p = 0; p < P; p++)
        for (int i = 0; i < s->n; i++) {
            double v = m->present[p] ? value_at(m, p, col[i], s->mvalue) : NAN;
            out[(size_t)p * s->n + i] = isnan(v) ? 0.0f : (float)((v - s->mean[i]) / s->std[i]);
        }
    free(col);
    return FL_OK;
}

void fl_standardizer_apply_dense(const fl_standardizer *s, const float *x, int P,
                                 const uint8_t *present, float *out) {
    for (int p = 0; p < P; p++)
        for (int i = 0; i < s->n; i++)
            out[(size_t)p * s->n + i] =
                present[p] ? (x[(size_t)p * s->n + i] - s->mean[i]) / s->std[i] : 0.0f;
}

void fl_standardizer_destroy(fl_standardizer *s) {
    if (s->names)
        for (int i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}
