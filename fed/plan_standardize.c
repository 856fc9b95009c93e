/* plan_standardize.c - the study plan's choice of standardization ([fusion] standardize) and
 * the feature lists of site standardization (rna_names, meth_names, clinical_names). Under
 * federated standardization the statistics and features phases send each site's sums of its
 * patients' values; under site standardization nothing about the data leaves a site for it:
 * each site z-scores its own training patients, and the plan fixes which features the fusion
 * model takes, in which order (docs/privacy.md, "Standardization under DP"). */
#include <stdlib.h>
#include <string.h>

#include "fed/plan_keys.h"

static const char *const list_keys[3] = {"rna_names", "meth_names", "clinical_names"};

#define FL_PLAN_NAME_MAXS (1 << 20) /* names in one list */

typedef struct {
    fl_plan_names *list;
    const char *key;
} add_ctx;

static int add_name(void *user, const char *s, char *msg) {
    add_ctx *c = user;
    fl_plan_names *l = c->list;
    if (strlen(s) > FL_PLAN_NAME_MAX)
        return fl_conf_complain(msg, "%s: '%.40s...' is longer than %d characters", c->key, s,
                                FL_PLAN_NAME_MAX);
    if (l->n == FL_PLAN_NAME_MAXS)
        return fl_conf_complain(msg, "%s names more than %d features", c->key, FL_PLAN_NAME_MAXS);
    if ((l->n & (l->n - 1)) == 0) { /* 0, 1, 2, 4...: grow to twice */
        char **v = realloc(l->v, (size_t)(l->n ? 2 * l->n : 1) * sizeof *v);
        if (!v) return fl_conf_complain(msg, "%s: out of memory", c->key);
        l->v = v;
    }
    if (!(l->v[l->n] = strdup(s))) return fl_conf_complain(msg, "%s: out of memory", c->key);
    l->n++;
    return 1;
}

int fl_plan_add_names(fl_plan *p, int k, const char *value, char *msg) {
    int i = k - F_RNA_NAMES;
    add_ctx c = {&p->names[i], list_keys[i]};
    return fl_plan_each_item(msg, list_keys[i], value, add_name, &c);
}

void fl_plan_free_names(fl_plan *p) {
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < p->names[i].n; j++) free(p->names[i].v[j]);
        free(p->names[i].v);
        p->names[i] = (fl_plan_names){0};
    }
}

const fl_plan_names *fl_plan_names_of(const fl_plan *p, fl_modality m) {
    if (m < FL_MODALITY_RNA || m > FL_MODALITY_CLINICAL) return NULL;
    return &p->names[m - FL_MODALITY_RNA];
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *fl_plan_names_twice(const fl_plan_names *l, fl_status *st) {
    *st = FL_OK;
    if (l->n < 2) return NULL;
    char **v = malloc((size_t)l->n * sizeof *v);
    if (!v) {
        *st = FL_ENOMEM;
        return NULL;
    }
    memcpy(v, l->v, (size_t)l->n * sizeof *v);
    qsort(v, (size_t)l->n, sizeof *v, by_name);
    const char *dup = NULL;
    for (int j = 1; j < l->n && !dup; j++)
        if (strcmp(v[j - 1], v[j]) == 0) dup = v[j];
    free(v);
    return dup;
}

static fl_status check_site(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err) {
    if (SEEN(seen, K_PHASES) && (p->phases & PHASE_BIT(FL_PHASE_STATISTICS)))
        return fl_fail(err, FL_EFORMAT,
                       "%s: [study] phases names statistics, which standardize = site does not "
                       "run (each hospital standardizes its own patients)",
                       name);
    p->phases &= ~PHASE_BIT(FL_PHASE_STATISTICS);
    for (int k = F_RNA; k <= F_METH; k++)
        if (SEEN(seen, k))
            return fl_fail(err, FL_EFORMAT,
                           "%s: [fusion] %s ranks features by the statistics phase's sums, "
                           "which standardize = site does not send: name the features (%s)",
                           name, k == F_RNA ? "rna_features" : "meth_features",
                           list_keys[k - F_RNA]);
    int fusion = (p->phases & PHASE_BIT(FL_PHASE_FUSION)) != 0;
    for (int m = FL_MODALITY_RNA; m <= FL_MODALITY_CLINICAL; m++) {
        const fl_plan_names *l = &p->names[m - FL_MODALITY_RNA];
        int used = fusion && (p->modalities & FL_MODALITY_BIT(m));
        if (used && l->n == 0)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [fusion] uses %s under standardize = site but has no %s (the "
                           "features the model takes, e.g. ranked on public data by `fedlung "
                           "plan features`)",
                           name, fl_modality_name((fl_modality)m), list_keys[m - FL_MODALITY_RNA]);
        if (!used && l->n)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [fusion] %s is set but the fusion model %s (remove the list: "
                           "`fedlung plan features --modalities` lists only those it takes)",
                           name, list_keys[m - FL_MODALITY_RNA],
                           fusion ? "does not use that modality" : "is not trained");
        fl_status st;
        const char *dup = fl_plan_names_twice(l, &st);
        if (st != FL_OK) return fl_fail(err, st, "%s: out of memory", name);
        if (dup)
            return fl_fail(err, FL_EFORMAT, "%s: [fusion] %s names '%s' twice", name,
                           list_keys[m - FL_MODALITY_RNA], dup);
    }
    return FL_OK;
}

fl_status fl_plan_check_standardize(const char *name, fl_plan *p, const uint64_t *seen,
                                    fl_err *err) {
    int dp = p->privacy.mechanism != FL_DP_NONE;
    if (!SEEN(seen, F_STANDARDIZE)) p->standardize = dp ? FL_STD_SITE : FL_STD_FEDERATED;
    if (p->standardize == FL_STD_SITE) return check_site(name, p, seen, err);
    if (dp)
        return fl_fail(err, FL_EFORMAT,
                       "%s: [fusion] standardize = federated under differential privacy: the "
                       "statistics and features phases would send each hospital's un-noised "
                       "sums (use standardize = site)",
                       name);
    for (int i = 0; i < 3; i++)
        if (p->names[i].n)
            return fl_fail(err, FL_EFORMAT,
                           "%s: [fusion] %s is for standardize = site (federated standardization "
                           "ranks the features by variance: rna_features, meth_features)",
                           name, list_keys[i]);
    return FL_OK;
}
