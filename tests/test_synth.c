/* test_synth.c - the synthetic lung cohort: determinism of the written file, counts, ranges and
 * names, paired normals, splits, missing modalities, the direction of the omics and tile class
 * signals, kappa, per-site stain effects, and a cohort sharing another's features (own_features)
 * but not its patients. Calibration against trained models is not here
 * (it needs the CNN); see docs for the numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data/cohort.h"
#include "../data/synth.h"
#include "harness.h"

static void small_config(fl_synth_config *c, uint64_t seed) {
    fl_synth_config_default(c);
    c->patients = 80;
    c->tile = 32;
    c->tiles_per_patient = 3;
    c->genes = 96;
    c->probes = 128;
    c->seed = seed;
}

static int same_floats(const float *a, const float *b, size_t n) { /* bitwise, NaN == NaN */
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Loads path's metadata and all its tiles (*pixels, malloc'd). */
static int load_all(const char *path, fl_cohort *c, uint8_t **pixels) {
    fl_err err = {{0}};
    fl_cohort_file *f = NULL;
    *pixels = NULL;
    CHECK_OK(fl_cohort_open(&f, c, path, &err), &err);
    if (!f) return -1;
    size_t n = (size_t)c->n_tiles * c->tile * c->tile * 3;
    *pixels = malloc(n ? n : 1);
    CHECK_OK(fl_cohort_read_tiles(f, 0, c->n_tiles, *pixels, &err), &err);
    fl_cohort_close(f);
    return 0;
}

static int cohorts_equal(const fl_cohort *a, const uint8_t *pa, const fl_cohort *b,
                         const uint8_t *pb) {
    if (a->P != b->P || a->n_tiles != b->n_tiles || a->tile != b->tile) return 0;
    for (int p = 0; p < a->P; p++)
        if (strcmp(a->id[p], b->id[p]) || strcmp(a->case_id[p], b->case_id[p]) ||
            a->label[p] != b->label[p] || a->site[p] != b->site[p] || a->stage[p] != b->stage[p] ||
            a->split[p] != b->split[p])
            return 0;
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *x = &a->omics[m], *y = &b->omics[m];
        if (x->F != y->F || !same_floats(x->values, y->values, (size_t)a->P * x->F)) return 0;
        if (memcmp(x->present, y->present, (size_t)a->P)) return 0;
    }
    return memcmp(pa, pb, (size_t)a->n_tiles * a->tile * a->tile * 3) == 0;
}

static void test_determinism(void) {
    char pa[512], pb[512], pc[512];
    snprintf(pa, sizeof pa, "%s/a.h5", fl_test_dir);
    snprintf(pb, sizeof pb, "%s/b.h5", fl_test_dir);
    snprintf(pc, sizeof pc, "%s/c.h5", fl_test_dir);
    fl_synth_config c;
    fl_err err = {{0}};
    small_config(&c, 7);
    CHECK_OK(fl_synth_write(&c, pa, &err), &err);
    CHECK_OK(fl_synth_write(&c, pb, &err), &err);
    small_config(&c, 8);
    CHECK_OK(fl_synth_write(&c, pc, &err), &err);
    fl_cohort a, b, d;
    uint8_t *ta, *tb, *td;
    if (load_all(pa, &a, &ta) || load_all(pb, &b, &tb) || load_all(pc, &d, &td)) return;
    CHECK(cohorts_equal(&a, ta, &b, tb));
    CHECK(!cohorts_equal(&a, ta, &d, td));
    CHECK(a.P == d.P && strcmp(a.id[0], d.id[0]) != 0);
    CHECK(a.provenance && strstr(a.provenance, "seed=7"));
    free(ta);
    free(tb);
    free(td);
    fl_cohort_destroy(&a);
    fl_cohort_destroy(&b);
    fl_cohort_destroy(&d);

    /* A failed write leaves nothing behind and says why. */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.h5", fl_test_dir);
    err.msg[0] = 0;
    small_config(&c, 7);
    CHECK(fl_synth_write(&c, bad, &err) != FL_OK);
    CHECK(err.msg[0] != 0);
    CHECK(access(bad, F_OK) != 0);
    c.sites = 0;
    CHECK_EQ_INT(fl_synth_write(&c, pa, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "sites") != NULL);
}

/* Index of the feature called name, or of the first probe named "cg..._<name>"; -1 if none. */
static int feature(const fl_omics_matrix *m, const char *name) {
    size_t k = strlen(name);
    for (int j = 0; j < m->F; j++) {
        const char *f = m->features[j];
        size_t n = strlen(f);
        if (strcmp(f, name) == 0) return j;
        if (n > k + 1 && f[n - k - 1] == '_' && strcmp(f + n - k, name) == 0) return j;
    }
    return -1;
}

/* Mean of column j over samples with label y (skipping NaN). */
static double class_mean(const fl_cohort *c, const fl_omics_matrix *m, int j, int y) {
    double s = 0;
    int n = 0;
    for (int p = 0; p < c->P; p++) {
        float v = m->values[(size_t)p * m->F + j];
        if (c->label[p] == y && !isnan(v)) s += v, n++;
    }
    return n ? s / n : NAN;
}

static void test_contents(void) {
    fl_synth_config cfg;
    fl_synth_config_default(&cfg);
    cfg.tile = 0; /* metadata and omics only */
    fl_cohort c;
    fl_err err = {{0}};
    CHECK_OK(fl_synth_build(&cfg, &c, NULL, &err), &err);
    if (c.P == 0) return;
    CHECK_EQ_INT(c.P, 300);
    CHECK_EQ_INT(c.n_classes, 3);
    CHECK(!strcmp(c.class_names[0], "LUAD") && !strcmp(c.class_names[1], "LUSC") &&
          !strcmp(c.class_names[2], "NORMAL"));
    CHECK_EQ_INT(c.n_sites, 4);
    CHECK(!strcmp(c.site_names[0], "05") && !strcmp(c.site_names[1], "18"));
    CHECK_EQ_INT(c.n_tiles, 0);
    int per_class[3] = {0}, per_split[3] = {0}, per_site[4] = {0};
    for (int p = 0; p < c.P; p++) {
        CHECK(c.label[p] >= 0 && c.label[p] < 3);
        CHECK(c.site[p] >= 0 && c.site[p] < 4);
        CHECK(c.split[p] <= FL_SPLIT_TEST);
        CHECK(c.label[p] == 2 ? c.stage[p] == -1 : c.stage[p] >= 0 && c.stage[p] <= 3);
        per_class[c.label[p]]++;
        per_split[c.split[p]]++;
        per_site[c.site[p]]++;
        /* TCGA-style ids: TCGA-TSS-XXXX-01A (tumour) or -11A (normal), case = id prefix */
        CHECK_EQ_INT(strlen(c.id[p]), 16);
        CHECK(strncmp(c.id[p], c.case_id[p], 12) == 0 && strlen(c.case_id[p]) == 12);
        CHECK(!strcmp(c.id[p] + 12, c.label[p] == 2 ? "-11A" : "-01A"));
        CHECK(!strncmp(c.id[p] + 5, c.site_names[c.site[p]], 2));
    }
    /* pi_global 48/40/12 with mild skew; Zipf-like sites; 70/15/15 split */
    CHECK(per_class[0] > 90 && per_class[1] > 60 && per_class[2] > 10 && per_class[2] < 80);
    CHECK(per_site[0] > per_site[1] && per_site[1] > per_site[2] && per_site[2] > per_site[3]);
    CHECK(fabs(per_split[0] / 300.0 - 0.70) < 0.06 && fabs(per_split[2] / 300.0 - 0.15) < 0.05);

    /* Samples of a case share the split and (NORMAL included) the clinical row; ids unique. */
    const fl_omics_matrix *cl = &c.omics[FL_MOD_CLINICAL];
    int pairs = 0;
    for (int p = 0; p < c.P; p++)
        for (int q = p + 1; q < c.P; q++) {
            CHECK(strcmp(c.id[p], c.id[q]) != 0);
            if (strcmp(c.case_id[p], c.case_id[q])) continue;
            pairs++;
            CHECK_EQ_INT(c.split[p], c.split[q]);
            CHECK(same_floats(cl->values + 4 * (size_t)p, cl->values + 4 * (size_t)q, 4));
            CHECK(c.label[p] == 2 || c.label[q] == 2);
        }
    CHECK(pairs > 10);

    /* Clinical ranges; the no-smoking site (index 3) has NaN smoking fields, others mostly not. */
    CHECK_EQ_INT(cl->F, 4);
    CHECK(!strcmp(cl->features[0], "age") && !strcmp(cl->features[3], "pack_years"));
    int smoking_nan[4] = {0};
    for (int p = 0; p < c.P; p++) {
        const float *r = cl->values + 4 * (size_t)p;
        CHECK(r[0] >= 30 && r[0] <= 90 && (r[1] == 0 || r[1] == 1));
        CHECK(isnan(r[2]) || r[2] == 0 || r[2] == 1);
        CHECK(isnan(r[3]) || r[3] >= 0);
        smoking_nan[c.site[p]] += isnan(r[2]) && isnan(r[3]);
    }
    CHECK_EQ_INT(smoking_nan[3], per_site[3]);
    CHECK(smoking_nan[0] < per_site[0] / 4);

    /* Methylation: site 2 absent (present 0, NaN), others present, beta in [0, 1], ~0.5-1 % NA. */
    const fl_omics_matrix *me = &c.omics[FL_MOD_METHYLATION];
    CHECK_EQ_INT(me->F, 2000);
    CHECK(!strncmp(me->features[0], "cg", 2) && strlen(me->features[0]) >= 10);
    long na = 0, total = 0;
    for (int p = 0; p < c.P; p++) {
        const float *r = me->values + (size_t)p * me->F;
        if (c.site[p] == 2) {
            CHECK_EQ_INT(me->present[p], 0);
            int all_nan = 1;
            for (int j = 0; j < me->F; j++) all_nan &= isnan(r[j]);
            CHECK(all_nan);
            continue;
        }
        CHECK_EQ_INT(me->present[p], 1);
        for (int j = 0; j < me->F; j++, total++) {
            if (isnan(r[j]))
                na++;
            else if (!(r[j] >= 0 && r[j] <= 1))
                CHECK(r[j] >= 0 && r[j] <= 1);
        }
    }
    CHECK(na > 0.003 * total && na < 0.012 * total);

    /* RNA: named markers with the intended direction, background genes named GENE0001... */
    const fl_omics_matrix *rna = &c.omics[FL_MOD_RNA];
    CHECK_EQ_INT(rna->F, 1000);
    int krt5 = feature(rna, "KRT5"), napsa = feature(rna, "NAPSA"), ager = feature(rna, "AGER");
    CHECK(krt5 >= 0 && napsa >= 0 && ager >= 0 && feature(rna, "GENE0001") >= 0);
    if (krt5 >= 0 && napsa >= 0 && ager >= 0) {
        CHECK(class_mean(&c, rna, krt5, 1) > class_mean(&c, rna, krt5, 0) + 2);
        CHECK(class_mean(&c, rna, napsa, 0) > class_mean(&c, rna, napsa, 1) + 1);
        CHECK(class_mean(&c, rna, ager, 2) > class_mean(&c, rna, ager, 0) + 0.5);
    }
    for (int p = 0; p < c.P; p++) CHECK(rna->present[p] == 1);
    for (size_t i = 0; i < (size_t)c.P * rna->F; i++)
        if (!(rna->values[i] >= 0 && rna->values[i] < 30)) {
            CHECK(rna->values[i] >= 0 && rna->values[i] < 30);
            break;
        }
    int shox2 = feature(me, "SHOX2");
    CHECK(shox2 >= 0);
    if (shox2 >= 0) CHECK(class_mean(&c, me, shox2, 0) > class_mean(&c, me, shox2, 2) + 0.08);
    fl_cohort_destroy(&c);

    /* Without missing modalities every site has methylation. */
    cfg.no_methylation_site = cfg.no_smoking_site = -1;
    cfg.patients = 40;
    CHECK_OK(fl_synth_build(&cfg, &c, NULL, &err), &err);
    for (int p = 0; p < c.P; p++) CHECK(c.omics[FL_MOD_METHYLATION].present[p] == 1);
    fl_cohort_destroy(&c);
}

/* Per-class and per-site tile statistics from in-memory rendering. */
typedef struct {
    double white[3], dark[3], rgb[FL_SYNTH_MAX_SITES][2][3];
    int n[3], ns[FL_SYNTH_MAX_SITES][2];
} tile_stats;

static void measure(float kappa, tile_stats *ts) {
    fl_synth_config cfg;
    fl_synth_config_default(&cfg);
    cfg.patients = 240;
    cfg.tiles_per_patient = 8;
    cfg.genes = cfg.probes = 64;
    cfg.kappa = kappa;
    cfg.label_skew = 0; /* IID labels: no site-class confounding of colours */
    cfg.seed = 11;
    fl_cohort c;
    fl_synth_plan *plan = NULL;
    fl_err err = {{0}};
    memset(ts, 0, sizeof *ts);
    CHECK_OK(fl_synth_build(&cfg, &c, &plan, &err), &err);
    if (!plan) return;
    int T = cfg.tile, K = cfg.tiles_per_patient;
    uint8_t *px = malloc((size_t)K * T * T * 3);
    for (int p = 0; p < c.P; p++) {
        CHECK_OK(fl_synth_render_tiles(plan, p, px), &err);
        double white = 0, dark = 0, rgb[3] = {0};
        for (int i = 0; i < K * T * T; i++) {
            const uint8_t *q = px + 3 * (size_t)i;
            int mn = q[0] < q[1] ? q[0] : q[1];
            mn = mn < q[2] ? mn : q[2];
            white += mn > 215;
            dark += q[0] < 150; /* haematoxylin-dense (nuclei) */
            for (int k = 0; k < 3; k++) rgb[k] += q[k];
        }
        int y = c.label[p], s = c.site[p], half = p % 2;
        ts->white[y] += white / (K * T * T);
        ts->dark[y] += dark / (K * T * T);
        ts->n[y]++;
        for (int k = 0; k < 3; k++) ts->rgb[s][half][k] += rgb[k] / (K * T * T);
        ts->ns[s][half]++;
    }
    for (int y = 0; y < 3; y++) ts->white[y] /= ts->n[y], ts->dark[y] /= ts->n[y];
    for (int s = 0; s < cfg.sites; s++)
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 3; k++) ts->rgb[s][h][k] /= ts->ns[s][h];
    free(px);
    fl_synth_plan_free(plan);
    fl_cohort_destroy(&c);
}

static double dist3(const double *a, const double *b) {
    return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                (a[2] - b[2]) * (a[2] - b[2]));
}

static void test_tiles(void) {
    tile_stats k1, k0, k3;
    measure(1, &k1);
    measure(0, &k0);
    measure(3, &k3);
    printf("white fraction LUAD/LUSC/NORMAL: kappa 0 %.3f %.3f %.3f, kappa 1 %.3f %.3f %.3f, "
           "kappa 3 %.3f %.3f %.3f\n",
           k0.white[0], k0.white[1], k0.white[2], k1.white[0], k1.white[1], k1.white[2],
           k3.white[0], k3.white[1], k3.white[2]);
    printf("dark fraction  LUAD/LUSC/NORMAL: kappa 1 %.3f %.3f %.3f\n", k1.dark[0], k1.dark[1],
           k1.dark[2]);
    /* NORMAL tiles show more white space (alveoli), LUSC more nuclei; more so as kappa grows,
     * and hardly at all at kappa 0. */
    CHECK(k1.white[2] > k1.white[1] + 0.02 && k1.white[2] > k1.white[0] + 0.01);
    CHECK(k1.dark[1] > k1.dark[2]);
    CHECK(k3.white[2] - k3.white[1] > k1.white[2] - k1.white[1]);
    CHECK(fabs(k0.white[2] - k0.white[1]) < 0.5 * (k1.white[2] - k1.white[1]));

    /* Site stain effects: with IID labels, site mean colours differ more than two halves of a
     * site do. */
    const tile_stats st = k1;
    double between = 0, within = 0;
    for (int s = 0; s < 4; s++) {
        within = fmax(within, dist3(st.rgb[s][0], st.rgb[s][1]));
        for (int t = s + 1; t < 4; t++) between = fmax(between, dist3(st.rgb[s][0], st.rgb[t][0]));
    }
    printf("site mean colour: largest distance between sites %.2f, within a site %.2f\n", between,
           within);
    CHECK(between > 2 * within);
    CHECK(between > 3);
}

/* A public reference cohort of the simulator: another seed, the features of seed 1. Its gene
 * and probe names are seed 1's (probe ids are drawn, so a plain other seed renames them), its
 * values are not, and its provenance says so. */
static void test_own_features(void) {
    fl_synth_config a, b, plain;
    small_config(&a, 1);
    small_config(&b, 7920);
    small_config(&plain, 7920);
    b.own_features = 1;
    b.feature_seed = 1;
    fl_cohort ca, cb, cp;
    fl_err err = {{0}};
    CHECK_OK(fl_synth_build(&a, &ca, NULL, &err), &err);
    CHECK_OK(fl_synth_build(&b, &cb, NULL, &err), &err);
    CHECK_OK(fl_synth_build(&plain, &cp, NULL, &err), &err);
    int renamed = 0;
    for (int m = FL_MOD_RNA; m <= FL_MOD_METHYLATION; m++) {
        const fl_omics_matrix *x = &ca.omics[m], *y = &cb.omics[m], *z = &cp.omics[m];
        CHECK_EQ_INT(x->F, y->F);
        for (int j = 0; j < x->F && j < y->F; j++) {
            CHECK(strcmp(x->features[j], y->features[j]) == 0);
            renamed += strcmp(x->features[j], z->features[j]) != 0;
        }
        CHECK(!same_floats(x->values, y->values, (size_t)ca.P * x->F));
    }
    CHECK(renamed > 0); /* the plain other seed: other probe ids */
    CHECK(strstr(cb.provenance, " seed=7920 feature_seed=1 ") != NULL);
    CHECK(strstr(ca.provenance, "feature_seed") == NULL);
    fl_cohort_destroy(&ca);
    fl_cohort_destroy(&cb);
    fl_cohort_destroy(&cp);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_test_synth_")) return 1;
    test_own_features();
    test_determinism();
    test_contents();
    test_tiles();
    if (fl_test_rmtree(fl_test_dir) != 0) fprintf(stderr, "could not remove %s\n", fl_test_dir);
    return fl_test_summary("test_synth");
}
