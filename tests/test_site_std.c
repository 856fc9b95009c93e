/* test_site_std.c - site standardization (client/site_std.c, plan standardize = site): each
 * named feature's mean and sample deviation equal a two-pass computation over the site's training
 * patients written here (methylation as M-values), in the plan's order whatever the cohort's; the
 * fusion model takes exactly the plan's features; the embeddings' standardization from their
 * sums; a modality too few training patients have is left out (masked for every patient); a
 * name the cohort lacks, and a plan that standardizes federally, are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/site_impl.h"
#include "../data/synth.h"
#include "harness.h"

static fl_err err;
static char cohort[512];

/* The plan for the cohort's features: `pick` of its rna genes and of its methylation probes, in
 * the order given (positions in the cohort), and all 4 clinical columns reversed. */
static fl_status parse_plan(const fl_cohort *c, const int *pick, int n, const char *extra,
                            fl_plan *p) {
    char text[8192];
    int at = snprintf(text, sizeof text,
                      "[study]\nid = std-test\nclasses = LUAD,LUSC,NORMAL\nphases = fusion\n"
                      "[fusion]\nmodalities = rna,methylation,clinical\nstandardize = site\n"
                      "rounds = 1\nepochs = 1\n%s",
                      extra);
    const char *keys[2] = {"rna_names", "meth_names"};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < n; i++) /* one name a line: lists may span lines */
            at += snprintf(text + at, sizeof text - (size_t)at, "%s = %s\n", keys[m],
                           c->omics[m].features[pick[i]]);
    snprintf(text + at, sizeof text - (size_t)at,
             "clinical_names = pack_years, never_smoker, male, age\n");
    return fl_plan_parse(text, strlen(text), "the test plan", p, &err);
}

/* Mean and sample deviation of column j of omics m over the training patients with a value. */
static void reference(const fl_cohort *c, int m, int j, int mvalue, double *mean, double *sd) {
    const fl_omics_matrix *om = &c->omics[m];
    double s = 0, q = 0;
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->P; i++) {
            float x = om->values[(size_t)i * om->F + j];
            if (c->split[i] != FL_SPLIT_TRAIN || !om->present[i] || isnan(x)) continue;
            double v = mvalue ? fl_mvalue(x) : x;
            if (pass == 0) {
                s += v;
                n++;
            } else {
                q += (v - s / n) * (v - s / n);
            }
        }
    *mean = s / n;
    *sd = sqrt(q / (n - 1));
}

static void test_omics(const fl_cohort *c) {
    static const int pick[5] = {17, 3, 60, 0, 41}; /* not in the cohort's order */
    fl_plan p;
    CHECK_OK(parse_plan(c, pick, 5, "", &p), &err);
    fl_site *s = NULL;
    CHECK_OK(fl_site_open(&s, cohort, &p, 1, 1, &err), &err);
    if (!s) return fl_plan_destroy(&p);
    CHECK_EQ_INT(fl_site_model_len(s, FL_PHASE_FUSION), 0); /* not standardized yet */
    CHECK_OK(fl_site_standardize_here(s, NULL, 0, &err), &err);
    fl_pipeline_info info;
    CHECK_OK(fl_site_fusion_info(s, &info, &err), &err);
    CHECK_EQ_INT(info.n_modalities, 3);
    for (int k = 0; k < 3 && k < info.n_modalities; k++) {
        const fl_standardizer *st = &info.std[k];
        int m = k, n = k < 2 ? 5 : 4;
        CHECK_EQ_INT(info.in_dim[k], n);
        CHECK_EQ_INT(st->mvalue, m == FL_MOD_METHYLATION);
        for (int i = 0; i < n && i < st->n; i++) {
            int j = k < 2 ? pick[i] : 3 - i;
            CHECK(strcmp(st->names[i], c->omics[m].features[j]) == 0);
            double mean, sd;
            reference(c, m, j, m == FL_MOD_METHYLATION, &mean, &sd);
            CHECK_CLOSE(st->mean[i], mean, 1e-5, 1e-5);
            CHECK_CLOSE(st->std[i], sd > 1e-6 ? sd : 1, 1e-4, 1e-5);
        }
    }
    /* the fusion model takes the plan's features: its length equals a graph of those widths */
    fl_graph *g;
    int dims[4] = {0, 5, 5, 4};
    CHECK_OK(fl_plan_fusion_graph(&p, dims, &g, &err), &err);
    if (g) CHECK_EQ_INT(fl_site_model_len(s, FL_PHASE_FUSION), g->n_trainable + g->n_buffer);
    fl_graph_free(g);
    /* embeddings from their sums (count, sum, sum of squares of 2 dimensions over 4 patients:
     * values 1, 2, 3, 4 and 0, 0, 0, 0) */
    const float sums[6] = {4, 4, 10, 0, 30, 0};
    CHECK_OK(fl_site_standardize_here(s, sums, 2, &err), &err);
    const fl_standardizer *img = &s->std[FL_MODALITY_IMAGE - 1];
    CHECK_EQ_INT(img->n, 2);
    if (img->n == 2) {
        CHECK_CLOSE(img->mean[0], 2.5, 1e-6, 0);
        CHECK_CLOSE(img->std[0], sqrt(5.0 / 3.0), 1e-6, 0);
        CHECK_CLOSE(img->std[1], 1, 0, 0); /* constant: deviation 1 */
    }
    fl_site_free(s);
    fl_plan_destroy(&p);
}

/* A modality that one training patient has here: left out, its inputs masked for everyone. */
static void test_left_out(fl_cohort *c) {
    uint8_t *present = c->omics[FL_MOD_METHYLATION].present, *keep = malloc((size_t)c->P);
    memcpy(keep, present, (size_t)c->P);
    int kept = 0;
    for (int i = 0; i < c->P; i++)
        if (c->split[i] == FL_SPLIT_TRAIN && present[i] && kept++ > 0) present[i] = 0;
    char path[512];
    snprintf(path, sizeof path, "%s", fl_test_path("one-meth.h5"));
    CHECK_OK(fl_cohort_save_subset(c, NULL, NULL, path, &err), &err);
    memcpy(present, keep, (size_t)c->P);
    free(keep);
    static const int pick[3] = {5, 6, 7};
    fl_plan p;
    CHECK_OK(parse_plan(c, pick, 3, "", &p), &err);
    fl_site *s = NULL;
    CHECK_OK(fl_site_open(&s, path, &p, 1, 1, &err), &err);
    if (s) {
        CHECK_OK(fl_site_standardize_here(s, NULL, 0, &err), &err);
        CHECK_EQ_INT(fl_site_left_out(s), FL_MODALITY_BIT(FL_MODALITY_METHYLATION));
        CHECK_OK(fl_site_fusion_inputs(s, &err), &err);
        float rna = 0, meth = 0; /* inputs 0 rna, 1 methylation, 2 clinical */
        for (int i = 0; i < c->P; i++) {
            rna += s->in.mask[0][i];
            meth += s->in.mask[1][i];
            for (int k = 0; k < 3; k++) meth += fabsf(s->in.x[1][(size_t)i * 3 + k]);
        }
        CHECK(rna > 0);
        CHECK(meth == 0);
        /* the image embeddings of fewer than 2 patients likewise */
        const float sums[6] = {1, 1, 3, 0, 9, 0};
        CHECK_OK(fl_site_standardize_here(s, sums, 2, &err), &err);
        CHECK(fl_site_left_out(s) & FL_MODALITY_BIT(FL_MODALITY_IMAGE));
    }
    fl_site_free(s);
    fl_plan_destroy(&p);
}

static void test_refusals(const fl_cohort *c) {
    static const int pick[2] = {1, 2};
    fl_plan p;
    char extra[128];
    snprintf(extra, sizeof extra, "rna_names = NOT-A-GENE\n");
    CHECK_OK(parse_plan(c, pick, 2, extra, &p), &err);
    fl_site *s = NULL;
    CHECK_FAILS(fl_site_open(&s, cohort, &p, 1, 1, &err), err, cohort);
    CHECK_MSG(err, "the plan's rna feature 'NOT-A-GENE' is not in this cohort (1 of its 3 names");
    CHECK(s == NULL);
    fl_plan_destroy(&p);
    /* a plan that standardizes with the federation's statistics */
    const char *fed = "[study]\nid = f\nclasses = LUAD,LUSC,NORMAL\nphases = statistics,fusion\n"
                      "[fusion]\nmodalities = rna\n";
    CHECK_OK(fl_plan_parse(fed, strlen(fed), "fed.plan", &p, &err), &err);
    CHECK_OK(fl_site_open(&s, cohort, &p, 1, 1, &err), &err);
    if (s) {
        CHECK(fl_site_standardize_here(s, NULL, 0, &err) == FL_EINVAL);
        CHECK_MSG(err, "standardize = federated");
    }
    fl_site_free(s);
    fl_plan_destroy(&p);
}

int main(void) {
    fl_synth_config sc;
    fl_synth_config_default(&sc);
    sc.patients = 60;
    sc.sites = 1;
    sc.tile = 0;
    sc.tiles_per_patient = 0;
    sc.genes = 64;
    sc.probes = 64;
    sc.seed = 11;
    snprintf(cohort, sizeof cohort, "%s", fl_test_path("std.h5"));
    CHECK_OK(fl_synth_write(&sc, cohort, &err), &err);
    fl_cohort c = {0};
    CHECK_OK(fl_cohort_load(&c, cohort, &err), &err);
    if (fl_test_failures == 0) {
        test_omics(&c);
        test_left_out(&c);
        test_refusals(&c);
    }
    fl_cohort_destroy(&c);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("site_std");
}
