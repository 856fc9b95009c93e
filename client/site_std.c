/* site_std.c - site standardization (plan standardize = site; docs/privacy.md, "Standardization
 * under DP"): the site finds the plan's feature names in its cohort and z-scores the fusion
 * model's inputs with its own training patients' means and deviations. Nothing about them
 * leaves the site: the statistics phase does not run and the features phase's update is empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fed/plan_features.h"
#include "site_impl.h"

static int site_mode(const fl_site *s) {
    return s->p->standardize == FL_STD_SITE;
}

/* Whether the fusion model takes modality m. */
static int fusion_uses(const fl_plan *p, fl_modality m) {
    return (p->phases & (1u << FL_PHASE_FUSION)) && (p->modalities & FL_MODALITY_BIT(m));
}

fl_status fl_site_std_resolve(fl_site *s, fl_err *err) {
    if (!site_mode(s)) return FL_OK;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        if (!fusion_uses(s->p, (fl_modality)m)) continue;
        const fl_plan_names *l = fl_plan_names_of(s->p, (fl_modality)m);
        const fl_omics_matrix *om = &s->c.omics[m - FL_MODALITY_RNA];
        int *cols = malloc(((size_t)l->n + 1) * sizeof *cols), missing = 0, first = -1;
        if (!cols) return fl_fail(err, FL_ENOMEM, "out of memory for %d feature names", l->n);
        /* a linear search per name: plans name hundreds of features, cohorts have thousands */
        for (int i = 0; i < l->n; i++) {
            cols[i] = -1;
            for (int j = 0; j < om->F && cols[i] < 0; j++)
                if (strcmp(om->features[j], l->v[i]) == 0) cols[i] = j;
            if (cols[i] < 0 && missing++ == 0) first = i;
        }
        if (missing) {
            free(cols);
            return fl_fail(err, FL_EINVAL,
                           "%s: the plan's %s feature '%s' is not in this cohort (%d of its %d "
                           "names are missing)",
                           s->path, fl_modality_name((fl_modality)m), l->v[first], missing, l->n);
        }
        free(s->cols[m - FL_MODALITY_RNA]);
        s->cols[m - FL_MODALITY_RNA] = cols;
    }
    return FL_OK;
}

/* Modality m's standardization over the training patients, for the plan's features. With fewer
 * than 2 of them having the modality there is nothing to estimate it from: the modality is left
 * out here (s->left_out; every patient's input of it masked) under the identity. */
static fl_status omics_std(fl_site *s, fl_modality m, fl_err *err) {
    const fl_plan_names *l = fl_plan_names_of(s->p, m);
    const fl_omics_matrix *om = &s->c.omics[m - FL_MODALITY_RNA];
    const int *cols = s->cols[m - FL_MODALITY_RNA];
    int n = l->n, mvalue = m == FL_MODALITY_METHYLATION && s->p->mvalue, have = 0;
    for (int i = 0; i < s->n_train; i++) have += om->present[s->train_rows[i]] != 0;
    float *sum = malloc((FL_STATS_LEN(n) + 1) * sizeof(float));
    fl_stats_result r = {0};
    fl_status st = FL_OK;
    if (!sum || !cols)
        st = fl_fail(err, cols ? FL_ENOMEM : FL_EINVAL, "%s: %s for the %s standardization",
                     s->path, cols ? "out of memory" : "no feature columns", fl_modality_name(m));
    s->left_out &= ~FL_MODALITY_BIT(m);
    if (st == FL_OK && have < 2) { /* as if 2 zeros: mean 0, deviation 1, the identity */
        memset(sum, 0, FL_STATS_LEN(n) * sizeof(float));
        for (int k = 0; k < n; k++) sum[k] = 2;
        s->left_out |= FL_MODALITY_BIT(m);
    } else if (st == FL_OK) {
        st = fl_plan_features_sums(om, s->train_rows, s->n_train, cols, n, mvalue, sum, err);
    }
    if (st == FL_OK) {
        st = fl_stats_moments(sum, n, &r, err);
        if (st != FL_OK) {
            char why[FL_ERR_LEN];
            snprintf(why, sizeof why, "%s", err->msg);
            st = fl_fail(err, st, "%s: %s: %s", s->path, fl_modality_name(m), why);
        }
    }
    if (st == FL_OK) { /* positions in the plan's list -> in this cohort's feature order */
        r.F = om->F;
        for (int k = 0; k < n; k++) r.index[k] = (uint32_t)cols[k];
        st = fl_site_set_standardization(s, m, &r, err);
    }
    fl_stats_result_destroy(&r);
    free(sum);
    return st;
}

fl_status fl_site_standardize_here(fl_site *s, const float *emb_sums, int E, fl_err *err) {
    if (!site_mode(s))
        return fl_fail(err, FL_EINVAL, "the plan standardizes globally (standardize = federated)");
    fl_status st = FL_OK;
    for (int m = FL_MODALITY_RNA; st == FL_OK && m <= FL_MODALITY_CLINICAL; m++)
        if (fusion_uses(s->p, (fl_modality)m)) st = omics_std(s, (fl_modality)m, err);
    if (st != FL_OK || !emb_sums) return st;
    fl_stats_result r;
    s->left_out &= ~FL_MODALITY_BIT(FL_MODALITY_IMAGE);
    if (E > 0 && emb_sums[0] < 2) { /* patients with tiles: each dimension counts them all */
        float *one = calloc(FL_STATS_LEN(E), sizeof(float));
        if (!one) return fl_fail(err, FL_ENOMEM, "out of memory");
        for (int k = 0; k < E; k++) one[k] = 2; /* as if 2 zeros: the identity */
        st = fl_stats_moments(one, E, &r, err);
        free(one);
        s->left_out |= FL_MODALITY_BIT(FL_MODALITY_IMAGE);
    } else {
        st = fl_stats_moments(emb_sums, E, &r, err);
    }
    if (st != FL_OK) {
        char why[FL_ERR_LEN];
        snprintf(why, sizeof why, "%s", err->msg);
        return fl_fail(err, st, "%s: image embeddings: %s", s->path, why);
    }
    st = fl_site_set_standardization(s, FL_MODALITY_IMAGE, &r, err);
    fl_stats_result_destroy(&r);
    return st;
}

unsigned fl_site_left_out(const fl_site *s) {
    return s->left_out;
}
