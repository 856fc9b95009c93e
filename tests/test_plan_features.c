/* test_plan_features.c - a site-standardized plan's feature lists (fed/plan_features.h) on a
 * cohort built in memory: the RNA and methylation rankings against pipeline/standardize.c's
 * pooled fit (the same patients, top_k and M-value transform), ties by position, the clamped
 * M-values deciding an order that the betas reverse, the train split, clinical in cohort order,
 * the refusals (too few patients, unsafe or repeated names), the fragment's lines, and the plan
 * parser (fed/plan.c) reading the fragment back into the same lists under [fusion]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../fed/plan.h"
#include "../fed/plan_features.h"
#include "../pipeline/internal.h"
#include "harness.h"

#define NP 40 /* patients: 0..29 train, 30..34 val, 35..39 test */
#define NG 30 /* genes */
#define NM 3  /* probes */
#define NC 3  /* clinical columns */

typedef struct {
    fl_cohort c;
    char *gene[NG], *probe[NM], *clin[NC];
    char names[NG + NM + NC][160];
    float rna[NP * NG], meth[NP * NM], clinical[NP * NC];
    uint8_t split[NP], present[FL_N_OMICS][NP];
} fixture;

/* Genes: g<j> ~ N(5, (0.2 + 0.05 j)^2) (distinct variances), g7 a copy of g3 (a tie: g3
 * first), g11 constant, patient 38 without RNA. Probes: m0 is 0.5 but for a 0 and a 1, whose
 * M-values clamped at 1e-3 are -+9.97 (variance 5.09; 9.07 clamped at 1e-4, infinite
 * unclamped); m1 has M-values -+2.5 (variance 6.41); m2 betas 0.3 and 0.7 (M-values -+1.22).
 * By M-value: m1, m0, m2; by beta: m1 (0.126), m2 (0.041), m0 (0.013). Clinical: age,
 * stage=II (an imported one-hot column), male. */
static void make(fixture *x) {
    memset(x, 0, sizeof *x);
    fl_rng r;
    fl_rng_seed(&r, 7);
    for (int j = 0; j < NG; j++) snprintf(x->names[j], sizeof x->names[j], "g%d", j);
    for (int j = 0; j < NM; j++) snprintf(x->names[NG + j], sizeof x->names[0], "m%d", j);
    static const char *const clin[NC] = {"age", "stage=II", "male"};
    for (int j = 0; j < NC; j++) snprintf(x->names[NG + NM + j], sizeof x->names[0], "%s", clin[j]);
    for (int j = 0; j < NG; j++) x->gene[j] = x->names[j];
    for (int j = 0; j < NM; j++) x->probe[j] = x->names[NG + j];
    for (int j = 0; j < NC; j++) x->clin[j] = x->names[NG + NM + j];
    for (int p = 0; p < NP; p++) {
        x->split[p] = p < 30 ? FL_SPLIT_TRAIN : p < 35 ? FL_SPLIT_VAL : FL_SPLIT_TEST;
        for (int m = 0; m < FL_N_OMICS; m++) x->present[m][p] = 1;
        x->present[FL_MOD_RNA][38] = 0;
        for (int j = 0; j < NG; j++)
            x->rna[p * NG + j] = p == 38 ? NAN : (float)(5 + (0.2 + 0.05 * j) * fl_rng_normal(&r));
        x->rna[p * NG + 7] = x->rna[p * NG + 3];
        x->rna[p * NG + 11] = p == 38 ? NAN : 4.5f;
        double s = p % 2 ? 2.5 : -2.5;
        x->meth[p * NM + 0] = p == 0 ? 0.0f : p == 1 ? 1.0f : 0.5f;
        x->meth[p * NM + 1] = (float)(pow(2, s) / (1 + pow(2, s)));
        x->meth[p * NM + 2] = p % 2 ? 0.7f : 0.3f;
        x->clinical[p * NC + 0] = (float)(60 + p);
        x->clinical[p * NC + 1] = (float)(p % 3 == 0);
        x->clinical[p * NC + 2] = (float)(p % 2);
    }
    fl_cohort *c = &x->c;
    c->P = NP;
    c->split = x->split;
    c->omics[FL_MOD_RNA] = (fl_omics_matrix){NG, x->gene, x->rna, x->present[FL_MOD_RNA], NULL};
    c->omics[FL_MOD_METHYLATION] =
        (fl_omics_matrix){NM, x->probe, x->meth, x->present[FL_MOD_METHYLATION], NULL};
    c->omics[FL_MOD_CLINICAL] =
        (fl_omics_matrix){NC, x->clin, x->clinical, x->present[FL_MOD_CLINICAL], NULL};
}

/* The list of modality m against the pooled fit of pipeline/standardize.c. */
static void against_pooled(const fixture *x, const fl_plan_features *pf, fl_omics m, int top_k) {
    uint8_t train[NP];
    for (int p = 0; p < NP; p++) train[p] = !pf->opts.train_only || x->split[p] == FL_SPLIT_TRAIN;
    fl_standardizer s;
    fl_err err = {{0}};
    int mvalue = m == FL_MOD_METHYLATION && pf->opts.mvalue;
    CHECK_OK(fl_standardizer_fit(&s, &x->c.omics[m], NP, train, top_k, mvalue, &err), &err);
    CHECK_EQ_INT(pf->n[m], s.n);
    for (int i = 0; i < s.n && i < pf->n[m]; i++) {
        fl_test_checks++;
        if (strcmp(pf->names[m][i], s.names[i]) != 0)
            fl_test_fail_at(__FILE__, __LINE__, "%s top %d: [%d] is %s, the pooled fit's %s",
                            fl_omics_name(m), top_k, i, pf->names[m][i], s.names[i]);
    }
    fl_standardizer_destroy(&s);
}

static int index_of(char *const *names, int n, const char *want) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0) return i;
    return -1;
}

static void check_ranking(void) {
    fixture *x = malloc(sizeof *x);
    make(x);
    fl_plan_features_opts o;
    fl_plan_features_opts_default(&o);
    CHECK_EQ_INT(o.rna, 256);
    CHECK_EQ_INT(o.mvalue, 1);
    fl_plan_features pf;
    fl_err err = {{0}};
    CHECK_OK(fl_plan_features_rank(&x->c, "mem.h5", &o, &pf, &err), &err);
    CHECK_EQ_INT(pf.patients, NP);
    CHECK_EQ_INT(pf.used[FL_MOD_RNA], NP - 1);
    CHECK_EQ_INT(pf.n[FL_MOD_RNA], NG); /* 256 > NG: all */
    against_pooled(x, &pf, FL_MOD_RNA, 0);
    against_pooled(x, &pf, FL_MOD_METHYLATION, 0);
    CHECK_EQ_INT(index_of(pf.names[FL_MOD_RNA], NG, "g3") + 1,
                 index_of(pf.names[FL_MOD_RNA], NG, "g7"));    /* the tie, by position */
    CHECK(strcmp(pf.names[FL_MOD_RNA][NG - 1], "g11") == 0);   /* the constant, last */
    CHECK(strcmp(pf.names[FL_MOD_METHYLATION][0], "m1") == 0); /* M-values, clamped at 1e-3 */
    CHECK(strcmp(pf.names[FL_MOD_METHYLATION][1], "m0") == 0);
    CHECK(strcmp(pf.names[FL_MOD_METHYLATION][2], "m2") == 0);
    for (int j = 0; j < NC; j++) CHECK(strcmp(pf.names[FL_MOD_CLINICAL][j], x->clin[j]) == 0);
    fl_plan_features_destroy(&pf);
    CHECK(pf.source == NULL && pf.n[0] == 0);

    o.rna = 5;
    o.meth = 0;
    o.mvalue = 0;
    o.train_only = 1;
    CHECK_OK(fl_plan_features_rank(&x->c, "mem.h5", &o, &pf, &err), &err);
    CHECK_EQ_INT(pf.patients, 30);
    CHECK_EQ_INT(pf.used[FL_MOD_RNA], 30);
    CHECK_EQ_INT(pf.n[FL_MOD_RNA], 5);
    against_pooled(x, &pf, FL_MOD_RNA, 5);
    against_pooled(x, &pf, FL_MOD_METHYLATION, 0);
    CHECK(strcmp(pf.names[FL_MOD_METHYLATION][0], "m1") == 0); /* betas: m2 above m0 */
    CHECK(strcmp(pf.names[FL_MOD_METHYLATION][1], "m2") == 0);
    fl_plan_features_destroy(&pf);
    fl_plan_features_destroy(NULL);
    free(x);
}

/* Parses a fragment's "key = a, b" lines back into the names of key, in order, checking every
 * line's length; returns how many (at most cap). */
static int read_back(const char *text, const char *key, char out[][160], int cap) {
    int n = 0;
    size_t klen = strlen(key);
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        fl_test_checks++;
        if (len > FL_PLAN_LINE_MAX)
            fl_test_fail_at(__FILE__, __LINE__, "a line of %zu characters: %.60s...", len, p);
        if (strncmp(p, key, klen) == 0 && strncmp(p + klen, " = ", 3) == 0) {
            const char *q = p + klen + 3, *end = p + len;
            while (q < end && n < cap) {
                size_t w = strcspn(q, ",\n");
                snprintf(out[n++], 160, "%.*s", (int)w, q);
                q += w;
                if (q < end && *q == ',') q += 2; /* ", " */
            }
        }
        p += len + (p[len] == '\n');
    }
    return n;
}

static void check_fragment(void) {
    fixture *x = malloc(sizeof *x);
    make(x);
    /* long names, so that the lists take several lines: 127 characters is the most allowed */
    for (int j = 0; j < NG; j++)
        snprintf(x->names[j], sizeof x->names[j], "%s%0*d", j == 0 ? "" : "gene_",
                 j == 0 ? 127 : 40, j);
    x->c.omics[FL_MOD_METHYLATION].F = 0; /* absent: no list */
    fl_plan_features_opts o;
    fl_plan_features_opts_default(&o);
    fl_plan_features pf;
    fl_err err = {{0}};
    char long_path[400];
    memset(long_path, 'd', sizeof long_path);
    memcpy(long_path + 300, "/public-reference.h5", 21);
    long_path[0] = '/';
    CHECK_OK(fl_plan_features_rank(&x->c, long_path, &o, &pf, &err), &err);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    size_t wrote = fl_plan_features_write(&pf, f);
    fclose(f);
    CHECK_EQ_INT(wrote, size);
    static const char first[] = "# ranked by `fedlung plan features` on public-reference.h5: 40 "
                                "patients (every split)\n";
    CHECK(strncmp(text, first, sizeof first - 1) == 0);
    CHECK(strstr(text, "no methylation") != NULL);
    CHECK(strstr(text, "\nstandardize = site\n") != NULL);
    CHECK(strstr(text, "meth_names") == NULL);
    char got[NG][160];
    int n = read_back(text, "rna_names", got, NG);
    CHECK_EQ_INT(n, NG);
    for (int i = 0; i < n && i < pf.n[FL_MOD_RNA]; i++)
        CHECK(strcmp(got[i], pf.names[FL_MOD_RNA][i]) == 0);
    n = read_back(text, "clinical_names", got, NC);
    CHECK_EQ_INT(n, NC);
    CHECK(strstr(text, "\nclinical_names = age, stage=II, male\n") != NULL);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "rna_names = ")); p++) lines++;
    CHECK(lines >= 7); /* 30 names of ~46 characters */
    free(text);
    fl_plan_features_destroy(&pf);
    free(x);
}

static void check_refusals(void) {
    fixture *x = malloc(sizeof *x);
    fl_plan_features_opts o;
    fl_plan_features_opts_default(&o);
    fl_plan_features pf;
    fl_err err = {{0}};
    static const struct {
        const char *name, *why;
    } bad[] = {{"a,b", "','"},           {"cg1;x", "';'"},       {"x#1", "'#'"},
               {" lead", "blank"},       {"trail ", "blank"},    {"", "empty"},
               {"new\nline", "control"}, {"tab\tbed", "control"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        make(x);
        snprintf(x->names[NG + NM + 1], sizeof x->names[0], "%s", bad[i].name);
        CHECK_FAILS(fl_plan_features_rank(&x->c, "bad.h5", &o, &pf, &err), err, "bad.h5");
        CHECK_MSG(err, bad[i].why);
        CHECK(pf.source == NULL);
    }
    make(x);
    memset(x->names[5], 'n', 128);
    x->names[5][128] = '\0';
    CHECK_FAILS(fl_plan_features_rank(&x->c, "long.h5", &o, &pf, &err), err, "long.h5");
    CHECK_MSG(err, "longer than 127");
    o.rna = 3; /* a name not kept is not listed, so it does not matter */
    make(x);
    snprintf(x->names[0], sizeof x->names[0], "g,0");
    CHECK_OK(fl_plan_features_rank(&x->c, "ok.h5", &o, &pf, &err), &err);
    fl_plan_features_destroy(&pf);
    o.rna = 0;
    make(x);
    snprintf(x->names[4], sizeof x->names[0], "g9");
    CHECK_FAILS(fl_plan_features_rank(&x->c, "twice.h5", &o, &pf, &err), err, "twice.h5");
    CHECK_MSG(err, "'g9' is there twice");

    /* one patient with methylation among the chosen: not enough */
    make(x);
    for (int p = 1; p < NP; p++) x->present[FL_MOD_METHYLATION][p] = 0;
    CHECK_FAILS(fl_plan_features_rank(&x->c, "few.h5", &o, &pf, &err), err, "few.h5");
    CHECK_MSG(err, "1 of its 40 patients has methylation data");
    /* two patients, but every value missing */
    make(x);
    for (int p = 0; p < NP * NM; p++) x->meth[p] = NAN;
    CHECK_FAILS(fl_plan_features_rank(&x->c, "nan.h5", &o, &pf, &err), err, "nan.h5");
    CHECK_MSG(err, "methylation");
    free(x);
}

/* A plan made of a [study] section, [fusion] keys and the fragment parses (under DP-SGD too,
 * where site standardization is required) into the same lists. */
static void check_parses(void) {
    fixture *x = malloc(sizeof *x);
    make(x);
    fl_plan_features_opts o;
    fl_plan_features_opts_default(&o);
    fl_plan_features pf;
    fl_err err = {{0}};
    CHECK_OK(fl_plan_features_rank(&x->c, "mem.h5", &o, &pf, &err), &err);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    fputs("[study]\nid = t\nclasses = A,B\nphases = fusion\n[fusion]\n"
          "modalities = rna,methylation,clinical\nrounds = 1\nepochs = 1\n",
          f);
    fl_plan_features_write(&pf, f);
    fputs("[privacy]\nmechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\n"
          "sample_rate = 0.1\n",
          f);
    fclose(f);
    fl_plan p;
    fl_status st = fl_plan_parse(text, size, "fragment.plan", &p, &err);
    CHECK_OK(st, &err);
    if (st == FL_OK) {
        CHECK_EQ_INT(p.standardize, FL_STD_SITE);
        for (int m = 0; m < FL_N_OMICS; m++) {
            const fl_plan_names *l = fl_plan_names_of(&p, (fl_modality)(FL_MODALITY_RNA + m));
            CHECK_EQ_INT(l->n, pf.n[m]);
            for (int k = 0; k < l->n && k < pf.n[m]; k++)
                CHECK(strcmp(l->v[k], pf.names[m][k]) == 0);
        }
        fl_plan_destroy(&p);
    }
    free(text);
    fl_plan_features_destroy(&pf);
    free(x);
}

int main(void) {
    check_ranking();
    check_fragment();
    check_refusals();
    check_parses();
    return fl_test_summary("test_plan_features");
}
