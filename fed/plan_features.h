/* plan_features.h - the feature lists of a study plan under site standardization ([fusion]
 * standardize = site: rna_names, meth_names, clinical_names), ranked on a reference cohort -
 * public data such as TCGA, never a hospital's own - exactly as the federated statistics phase
 * ranks the hospitals' sums (fed/stats.h): RNA and methylation (as M-values when the plan's
 * mvalue is on) by sample variance, largest first, ties by position; clinical features all, in
 * the cohort's order. Writes the plan fragment; it does not read plans (fed/plan.c does). */
#ifndef FL_PLAN_FEATURES_H
#define FL_PLAN_FEATURES_H

#include <stdio.h>

#include "../common/status.h"
#include "../data/cohort.h"
#include "plan.h" /* FL_PLAN_NAME_MAX */

#define FL_PLAN_FEATURES_DEFAULT 256 /* top-variance features kept, as rna_features' default */
#define FL_PLAN_LINE_MAX 199         /* characters of a plan line (common/conf.c) */

typedef struct {
    int rna, meth;  /* top-variance features kept: N > 0, or 0 for all (default 256 each) */
    int train_only; /* 1: only the train split's patients; 0 (default): every patient */
    int mvalue;     /* 1 (default): methylation ranked as M-values, as the plan's mvalue */
    unsigned omics; /* bit (1 << fl_omics) of each modality to list: those the plan's fusion
                       model takes (default all three; a listed one the cohort lacks is refused) */
} fl_plan_features_opts;

void fl_plan_features_opts_default(fl_plan_features_opts *o);

/* One cohort's lists. */
typedef struct {
    fl_plan_features_opts opts; /* what they were ranked with */
    char *source;               /* the cohort's path (heap) */
    int patients;               /* patients chosen (every one, or the train split's) */
    int F[FL_N_OMICS];          /* features the cohort has; 0: modality absent, no list */
    int used[FL_N_OMICS];       /* patients chosen who have the modality */
    int n[FL_N_OMICS];          /* features listed */
    char **names[FL_N_OMICS];   /* n[m] names (heap), in the fusion model's input order */
} fl_plan_features;

/* The statistics phase's block of one omics matrix over rows[0..n_rows) (patients without the
 * modality skipped): count, sum and sum of squares per feature (FL_STATS_LEN(n) floats into out)
 * of the n features cols[0..n) in that order, or of all om->F features when cols is NULL, each
 * beta value first turned into its M-value when mvalue is set - what a hospital sends in the
 * statistics phase, and what site standardization keeps. FL_ENOMEM (the sentence names what)
 * or FL_OK. */
fl_status fl_plan_features_sums(const fl_omics_matrix *om, const int *rows, int n_rows,
                                const int *cols, int n, int mvalue, float *out, fl_err *err);

/* Ranks cohort c (read from path, which messages name) with o into *pf (fl_plan_features_destroy
 * frees it; on failure it holds nothing). FL_EINVAL with a sentence naming path when a modality
 * has fewer than 2 chosen patients (or no feature with 2 values), when o->omics names a modality
 * the cohort lacks (except by default: then it gets no list), or when a listed name cannot
 * go into a plan: empty, longer than FL_PLAN_NAME_MAX, a ',' ';' '#' or control character,
 * leading or trailing blanks, or twice in one list. FL_ENOMEM. */
fl_status fl_plan_features_rank(const fl_cohort *c, const char *path,
                                const fl_plan_features_opts *o, fl_plan_features *pf, fl_err *err);

/* Writes the plan fragment for [fusion]: two comment lines (the source, its patients, what was
 * kept), "standardize = site", then rna_names, meth_names and clinical_names, each list over as
 * many lines as it needs, none longer than FL_PLAN_LINE_MAX. Returns the bytes written; write
 * errors are the stream's (ferror). */
size_t fl_plan_features_write(const fl_plan_features *pf, FILE *f);

void fl_plan_features_destroy(fl_plan_features *pf); /* NULL-safe; leaves it zeroed */

#endif
