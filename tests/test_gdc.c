/* test_gdc.c - the GDC parsers through the library: stage and smoking vocabularies, missing
 * values ('--), barcodes; clinical.tsv / exposure.tsv with legacy and dotted names, the new
 * portal's description row and rows repeated per treatment; STAR - Counts and SeSAMe files and
 * their mismatches; and, on the fixture of tests/gdc/make_fixtures.py (skipped without
 * /usr/bin/python3), labels, splits by case, stage and the clinical rows of a whole import.
 * Fixtures are written into a mkdtemp folder, removed after. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/gdc.h"
#include "harness.h"

static const char *fixture(const char *name, const char *text) {
    const char *p = fl_test_path(name);
    fl_test_write_file(p, text, strlen(text));
    return p;
}

/* Warnings are collected here, joined by newlines. */
static char warnings[4096];
static void collect(void *ctx, const char *msg) {
    (void)ctx;
    size_t n = strlen(warnings);
    snprintf(warnings + n, sizeof warnings - n, "%s\n", msg);
}
static const fl_gdc_warn collector = {collect, NULL};

static void test_vocabularies(void) {
    static const struct {
        const char *text;
        int stage;
    } stages[] = {{"Stage I", 0},    {"Stage IA", 0},    {"Stage IB", 0},  {"Stage IA1", 0},
                  {"Stage II", 1},   {"Stage IIA", 1},   {"Stage IIB", 1}, {"Stage III", 2},
                  {"Stage IIIA", 2}, {"Stage IIIB", 2},  {"Stage IV", 3},  {"Stage IVA", 3},
                  {"IB", 0},         {"stage iiia", -1}, {"Stage X", -1},  {"Stage 0", -1},
                  {"'--", -1},       {"", -1},           {"Stage IE", -1}, {"Not Reported", -1}};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        int got = fl_gdc_stage(stages[i].text);
        fl_test_checks++;
        if (got != stages[i].stage)
            fl_test_fail_at(__FILE__, __LINE__, "fl_gdc_stage(\"%s\") = %d, expected %d",
                            stages[i].text, got, stages[i].stage);
    }
    CHECK(fl_gdc_is_missing("'--"));
    CHECK(fl_gdc_is_missing(" '-- "));
    CHECK(fl_gdc_is_missing("--"));
    CHECK(fl_gdc_is_missing(""));
    CHECK(fl_gdc_is_missing("NA"));
    CHECK(fl_gdc_is_missing("not reported"));
    CHECK(fl_gdc_is_missing("Not Reported"));
    CHECK(fl_gdc_is_missing("Unknown"));
    CHECK(!fl_gdc_is_missing("0"));
    CHECK(!fl_gdc_is_missing("male"));
    CHECK(!fl_gdc_is_missing("'-"));
    CHECK_EQ_INT(fl_gdc_never_smoker("Lifelong Non-Smoker"), 1);
    CHECK_EQ_INT(fl_gdc_never_smoker("1"), 1);
    CHECK_EQ_INT(fl_gdc_never_smoker("Current Smoker"), 0);
    CHECK_EQ_INT(fl_gdc_never_smoker("Current Reformed Smoker for < or = 15 yrs"), 0);
    CHECK_EQ_INT(fl_gdc_never_smoker("4"), 0);
    CHECK_EQ_INT(fl_gdc_never_smoker("'--"), -1);
    CHECK_EQ_INT(fl_gdc_never_smoker("Unknown"), -1);
    CHECK_EQ_INT(fl_gdc_never_smoker("Smoking history not documented"), -1);
    CHECK_EQ_INT(fl_gdc_never_smoker("Sometimes"), -2);
    CHECK(fl_gdc_is_sample_barcode("TCGA-05-4244-01A"));
    CHECK(fl_gdc_is_sample_barcode("TCGA-05-4244-01Z-00-DX1.svs"));
    CHECK(!fl_gdc_is_sample_barcode("TCGA-05-4244-01"));
    CHECK(!fl_gdc_is_sample_barcode("TCGA-05-4244-0AA"));
    CHECK(fl_gdc_is_case_barcode("TCGA-05-4244"));
    CHECK(!fl_gdc_is_case_barcode("TCGA-05-4244-01A"));
    fl_gdc_rna_value v;
    CHECK(fl_gdc_rna_value_parse("fpkm_uq", &v) == 0 && v == FL_GDC_FPKM_UQ);
    CHECK(fl_gdc_rna_value_parse("TPM", &v) != 0);
}

/* Checks one case's merged values (NaN compares equal to NaN). */
static void check_case(const fl_gdc_clinical *cl, const char *id, float age, float male,
                       float never, float packs, int stage, int line) {
    const fl_gdc_case *c = fl_gdc_clinical_find(cl, id);
    const float got[4] = {c ? c->age : 0, c ? c->male : 0, c ? c->never_smoker : 0,
                          c ? c->pack_years : 0};
    const float want[4] = {age, male, never, packs};
    fl_test_checks++;
    if (!c) {
        fl_test_fail_at(__FILE__, line, "case %s not found", id);
        return;
    }
    for (int j = 0; j < 4; j++)
        if (!(isnan(want[j]) ? isnan(got[j]) : fabsf(got[j] - want[j]) < 1e-4f))
            fl_test_fail_at(__FILE__, line, "case %s, %s: %g, expected %g", id,
                            fl_gdc_clinical_columns[j], got[j], want[j]);
    if (c->stage != stage)
        fl_test_fail_at(__FILE__, line, "case %s: stage %d, expected %d", id, c->stage, stage);
}

/* Reads a clinical and an exposure file, warnings collected; n cases expected. */
static void read_pair(const char *clin, const char *expo, fl_gdc_clinical *cl, int n, int line) {
    fl_err err = {{0}};
    warnings[0] = '\0';
    fl_test_checks++;
    if (fl_gdc_clinical_read(clin, expo, cl, &collector, &err) != FL_OK)
        fl_test_fail_at(__FILE__, line, "reading %s: %s", clin, err.msg);
    else if (cl->n != n)
        fl_test_fail_at(__FILE__, line, "%s: %d cases, expected %d", clin, cl->n, n);
}

static void test_clinical(void) {
    fl_gdc_clinical cl;
    fl_err err = {{0}};
    /* Legacy: rows per treatment; a first row with '-- age and a later one with it; a conflict;
     * age only in days; an exposure row of a case without a clinical row. */
    const char *clin =
        fixture("clinical.tsv",
                "case_id\tcase_submitter_id\tproject_id\tage_at_index\tage_at_diagnosis\tgender\t"
                "ajcc_pathologic_stage\ttreatment_type\n"
                "u1\tTCGA-05-4244\tTCGA-LUAD\t'--\t25567\tmale\tStage IV\tRadiation\n"
                "u1\tTCGA-05-4244\tTCGA-LUAD\t70\t25567\tmale\tStage IV\tPharmaceutical\n"
                "u2\tTCGA-18-3406\tTCGA-LUSC\t67\t'--\tfemale\tStage IA\tRadiation\n"
                "u2\tTCGA-18-3406\tTCGA-LUSC\t67\t'--\tfemale\tStage IIB\tPharmaceutical\n"
                "u3\tTCGA-44-2655\tTCGA-LUAD\t'--\t21915\tnot reported\t'--\t'--\n");
    const char *expo = fixture(
        "exposure.tsv", "case_id\tcase_submitter_id\ttobacco_smoking_status\tpack_years_smoked\n"
                        "u1\tTCGA-05-4244\tCurrent Smoker\t45\n"
                        "u2\tTCGA-18-3406\tLifelong Non-Smoker\t'--\n"
                        "u3\tTCGA-44-2655\t'--\t'--\n"
                        "u3\tTCGA-44-2655\tCurrent Reformed Smoker for > 15 yrs\t12.5\n"
                        "u9\tTCGA-99-0000\tCurrent Smoker\t3\n");
    read_pair(clin, expo, &cl, 3, __LINE__);
    CHECK_EQ_INT(cl.exposure_unmatched, 1);
    check_case(&cl, "TCGA-05-4244", 70, 1, 0, 45, 3, __LINE__);
    check_case(&cl, "TCGA-18-3406", 67, 0, 1, 0, 0, __LINE__); /* never smoker: 0 pack-years */
    check_case(&cl, "TCGA-44-2655", (float)(21915 / 365.25), NAN, 0, 12.5f, -1, __LINE__);
    CHECK(fl_gdc_clinical_find(&cl, "TCGA-99-0000") == NULL);
    /* The stage conflict of TCGA-18-3406 is one warning naming both lines; the first is kept. */
    CHECK(strstr(warnings, "clinical.tsv:5: case TCGA-18-3406 has ajcc_pathologic_stage") != NULL);
    CHECK(strstr(warnings, "on line 4 of") != NULL);
    fl_gdc_clinical_destroy(&cl);

    /* New portal: dotted names, a description row, exposures in their own file. */
    const char *clin2 =
        fixture("clinical2.tsv",
                "cases.case_id\tcases.submitter_id\tproject.project_id\tdemographic.age_at_index\t"
                "demographic.gender\tdiagnoses.ajcc_pathologic_stage\tdiagnoses.submitter_id\n"
                "The UUID\tThe barcode of the case\tProject\tAge in years\tGender\tStage\tId\n"
                "u1\tTCGA-05-4244\tTCGA-LUAD\t70\tmale\tStage IV\tTCGA-05-4244_diagnosis\n"
                "u1\tTCGA-05-4244\tTCGA-LUAD\t70\tmale\tStage IV\tTCGA-05-4244_diagnosis\n"
                "u2\tTCGA-18-3406\tTCGA-LUSC\t67\tfemale\tStage IA\tTCGA-18-3406_diagnosis\n");
    const char *expo2 =
        fixture("exposure2.tsv", "cases.submitter_id\texposures.tobacco_smoking_status\t"
                                 "exposures.pack_years_smoked\n"
                                 "Barcode\tStatus\tPack-years\n"
                                 "TCGA-05-4244\tCurrent Smoker\t45\n"
                                 "TCGA-18-3406\tLifelong Non-Smoker\t'--\n");
    read_pair(clin2, expo2, &cl, 2, __LINE__);
    check_case(&cl, "TCGA-05-4244", 70, 1, 0, 45, 3, __LINE__);
    check_case(&cl, "TCGA-18-3406", 67, 0, 1, 0, 0, __LINE__);
    CHECK_EQ_INT(strlen(warnings), 0);
    fl_gdc_clinical_destroy(&cl);

    /* Errors name the file and line. */
    const char *bad = fixture("bad_clin.tsv", "case_submitter_id\tage_at_index\n"
                                              "TCGA-05-4244\t70\n"
                                              "TCGA-18-3406\tseventy\n");
    CHECK_FAILS(fl_gdc_clinical_read(bad, NULL, &cl, NULL, &err), err, "bad_clin.tsv:3:");
    bad = fixture("nocase.tsv", "case_id\tage_at_index\nu1\t70\n");
    CHECK_FAILS(fl_gdc_clinical_read(bad, NULL, &cl, NULL, &err), err, "nocase.tsv:1:");
    bad = fixture("ragged.tsv", "case_submitter_id\tage_at_index\nTCGA-05-4244\t70\textra\n");
    CHECK_FAILS(fl_gdc_clinical_read(bad, NULL, &cl, NULL, &err), err, "ragged.tsv:2:");
    bad = fixture("emptycase.tsv", "case_submitter_id\tage_at_index\n'--\t70\n");
    CHECK_FAILS(fl_gdc_clinical_read(bad, NULL, &cl, NULL, &err), err, "emptycase.tsv:2:");
    CHECK_EQ_INT(cl.n, 0);
}

#define STAR_HEAD                                                                                \
    "# gene-model: GENCODE v36\n"                                                                \
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded" \
    "\tfpkm_unstranded\tfpkm_uq_unstranded\n"                                                    \
    "N_unmapped\t\t\t8120268\t8120268\t8120268\t\t\t\n"                                          \
    "N_multimapping\t\t\t4402480\t4402480\t4402480\t\t\t\n"                                      \
    "N_noFeature\t\t\t1446120\t24573336\t24781939\t\t\t\n"                                       \
    "N_ambiguous\t\t\t5551010\t1476463\t1462076\t\t\t\n"

static void test_rna(void) {
    fl_err err = {{0}};
    fl_omics_matrix m;
    char *paths[3];
    paths[0] = strdup(fixture("a.tsv", STAR_HEAD
                              "ENSG00000000003.15\tTSPAN6\tprotein_coding\t3231\t1634\t1597\t"
                              "44.6685\t16.8557\t23.8956\n"
                              "ENSG00000000005.6\tTNMD\tprotein_coding\t0\t0\t0\t0\t0\t0\n"));
    paths[1] = NULL;
    paths[2] = strdup(fixture(
        "b.tsv", STAR_HEAD "ENSG00000000003.15\tTSPAN6\tprotein_coding\t7\t1\t6\t3\t2\t1\n"
                           "ENSG00000000005.6\tTNMD\tprotein_coding\t1\t0\t1\t15\t0.5\t0.25\r\n"));
    CHECK_OK(fl_gdc_rna_load(paths, 3, FL_GDC_TPM, &m, &err), &err);
    CHECK_EQ_INT(m.F, 2);
    CHECK(m.F == 2 && strcmp(m.features[1], "ENSG00000000005.6") == 0);
    CHECK_CLOSE(m.values[0], log2(45.6685), 1e-6, 1e-6);
    CHECK_CLOSE(m.values[1], 0, 0, 1e-7);
    CHECK(isnan(m.values[2]) && isnan(m.values[3]));
    CHECK_CLOSE(m.values[5], 4, 1e-6, 1e-6); /* log2(15 + 1) */
    CHECK(m.present[0] && !m.present[1] && m.present[2]);
    fl_gdc_matrix_clear(&m);
    CHECK_OK(fl_gdc_rna_load(paths, 3, FL_GDC_COUNTS, &m, &err), &err);
    CHECK_CLOSE(m.values[0], log2(3232.0), 1e-6, 1e-6);
    fl_gdc_matrix_clear(&m);

    /* Another gene order, a truncated file, a header that is not STAR's. */
    free(paths[2]);
    paths[2] = strdup(fixture("c.tsv", STAR_HEAD
                              "ENSG00000000005.6\tTNMD\tprotein_coding\t1\t0\t1\t15\t0.5\t0.25\n"
                              "ENSG00000000003.15\tTSPAN6\tprotein_coding\t7\t1\t6\t3\t2\t1\n"));
    CHECK_FAILS(fl_gdc_rna_load(paths, 3, FL_GDC_TPM, &m, &err), err, "c.tsv:7:");
    CHECK_MSG(err, "a.tsv has ENSG00000000003.15");
    CHECK_EQ_INT(m.F, 0);
    free(paths[2]);
    paths[2] = strdup(fixture("d.tsv", STAR_HEAD "ENSG00000000003.15\tTSPAN6\tprotein_co"));
    CHECK_FAILS(fl_gdc_rna_load(paths, 3, FL_GDC_TPM, &m, &err), err, "d.tsv:7:");
    free(paths[2]);
    paths[2] = strdup(fixture("e.tsv", STAR_HEAD
                              "ENSG00000000003.15\tTSPAN6\tprotein_coding\t7\t1\t6\t3\t2\t1\n"));
    CHECK_FAILS(fl_gdc_rna_load(paths, 3, FL_GDC_TPM, &m, &err), err, "e.tsv:7:");
    CHECK_MSG(err, "ends after 1 genes");
    free(paths[2]);
    paths[2] = strdup(fixture("f.tsv", "gene\tvalue\nENSG00000000003.15\t1\n"));
    CHECK_FAILS(fl_gdc_rna_load(paths, 3, FL_GDC_TPM, &m, &err), err, "f.tsv:1:");
    free(paths[0]);
    free(paths[2]);
}

static void test_methylation(void) {
    fl_err err = {{0}};
    fl_omics_matrix m;
    int dropped = -1;
    char *paths[4] = {strdup(fixture("m1.txt", "cg00000029\t0.4538\ncg00000108\tNA\n"
                                               "cg00000109\t0.8712\ncg00000165\tNA\n")),
                      strdup(fixture("m2.txt", "cg00000165\t0.5\ncg00000109\t0.25\n"
                                               "cg00000108\tNA\ncg00000029\t1\n")),
                      NULL,
                      strdup(fixture("m3.txt", "cg00000029\t0\ncg00000108\tNA\n"
                                               "cg00000109\tNA\ncg00000165\t0.1\n"))};
    /* NA rates over the 3 files: cg...108 3/3, cg...109 1/3, cg...165 1/3. */
    CHECK_OK(fl_gdc_methylation_load(paths, 4, 0.34, &m, &dropped, &err), &err);
    CHECK_EQ_INT(m.F, 3);
    CHECK_EQ_INT(dropped, 1);
    CHECK(m.F == 3 && strcmp(m.features[1], "cg00000109") == 0);
    CHECK_CLOSE(m.values[3 * 1 + 1], 0.25, 0, 1e-7); /* m2 in another order */
    CHECK_CLOSE(m.values[3 * 1 + 0], 1, 0, 1e-7);
    CHECK(isnan(m.values[3 * 2]) && !m.present[2]);
    CHECK(isnan(m.values[3 * 3 + 1]));
    fl_gdc_matrix_clear(&m);
    CHECK_OK(fl_gdc_methylation_load(paths, 4, 0.2, &m, &dropped, &err), &err);
    CHECK_EQ_INT(m.F, 1);
    fl_gdc_matrix_clear(&m);

    free(paths[1]);
    paths[1] = strdup(fixture("m4.txt", "cg00000029\t0.5\ncg00000108\tNA\ncg00000110\t0.2\n"
                                        "cg00000165\t0.1\n"));
    CHECK_FAILS(fl_gdc_methylation_load(paths, 4, 0.2, &m, NULL, &err), err, "m4.txt:3:");
    CHECK_MSG(err, "m1.txt");
    free(paths[1]);
    paths[1] = strdup(fixture("m5.txt", "cg00000029\t0.5\ncg00000108\tNA\ncg00000109\t0.2\n"));
    CHECK_FAILS(fl_gdc_methylation_load(paths, 4, 0.2, &m, NULL, &err), err, "m5.txt");
    CHECK_MSG(err, "cg00000165 is not in");
    free(paths[1]);
    paths[1] = strdup(fixture("m6.txt", "cg00000029\t0.5\ncg00000029\tNA\ncg00000109\t0.2\n"
                                        "cg00000165\t0.1\n"));
    CHECK_FAILS(fl_gdc_methylation_load(paths, 4, 0.2, &m, NULL, &err), err, "m6.txt:2:");
    free(paths[1]);
    paths[1] = strdup(fixture("m7.txt", "Composite Element REF\tBeta_value\tGene_Symbol\n"));
    CHECK_FAILS(fl_gdc_methylation_load(paths, 4, 0.2, &m, NULL, &err), err, "m7.txt:1:");
    CHECK_EQ_INT(m.F, 0);
    for (int i = 0; i < 4; i++) free(paths[i]);
}

/* The fixture tree of make_fixtures.py through fl_gdc_build. */
static void test_fixture_import(void) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("test_gdc: /usr/bin/python3 not found; the fixture import is skipped\n");
        return;
    }
    char cmd[600], root[300];
    snprintf(root, sizeof root, "%s/fx", fl_test_dir);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 gdc/make_fixtures.py %s", root);
    CHECK_EQ_INT(system(cmd), 0);
    char sheet[400], rna[400], meth[400], clin[400], expo[400], clin2[400], expo2[400];
    snprintf(sheet, sizeof sheet, "%s/good/sample_sheet.tsv", root);
    snprintf(rna, sizeof rna, "%s/good/rna", root);
    snprintf(meth, sizeof meth, "%s/good/methylation", root);
    snprintf(clin, sizeof clin, "%s/good/clinical.tsv", root);
    snprintf(expo, sizeof expo, "%s/good/exposure.tsv", root);
    snprintf(clin2, sizeof clin2, "%s/good/new/clinical.tsv", root);
    snprintf(expo2, sizeof expo2, "%s/good/new/exposure.tsv", root);
    fl_gdc_options o;
    fl_gdc_options_default(&o);
    o.sample_sheet = sheet;
    o.rna_dir = rna;
    o.methylation_dir = meth;
    o.clinical = clin;
    o.exposure = expo;
    o.warn = collector;
    warnings[0] = '\0';
    fl_cohort c, c2;
    fl_gdc_sheet sh;
    fl_err err = {{0}};
    CHECK_OK(fl_gdc_build(&o, &c, &sh, &err), &err);
    if (c.P != 8) {
        fl_test_fail_at(__FILE__, __LINE__, "%d samples, expected 8", c.P);
        return;
    }
    CHECK_EQ_INT(c.n_classes, 3);
    CHECK(strcmp(c.class_names[2], "NORMAL") == 0 && strcmp(c.class_names[0], "LUAD") == 0);
    CHECK_EQ_INT(c.n_sites, 3);
    CHECK(strcmp(c.site_names[0], "05") == 0 && strcmp(c.site_names[2], "44") == 0);
    for (int p = 0; p < c.P; p++) {
        int normal = strcmp(c.id[p] + 13, "11A") == 0;
        CHECK_EQ_INT(normal, c.label[p] == 2);
        CHECK(strncmp(c.id[p], c.case_id[p], 12) == 0 && strlen(c.case_id[p]) == 12);
        CHECK(strncmp(c.site_names[c.site[p]], c.id[p] + 5, 2) == 0);
        if (p > 0 && strcmp(c.case_id[p], c.case_id[p - 1]) == 0)
            CHECK_EQ_INT(c.split[p], c.split[p - 1]); /* a normal shares its case's split */
        if (normal) CHECK_EQ_INT(c.stage[p], -1);
    }
    int tumours[2][3] = {{0}}; /* [LUAD, LUSC][split]: 3 cases each -> 2 train, 1 val */
    for (int p = 0; p < c.P; p++)
        if (c.label[p] < 2) tumours[c.label[p]][c.split[p]]++;
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(tumours[k][FL_SPLIT_TRAIN], 2);
        CHECK_EQ_INT(tumours[k][FL_SPLIT_VAL], 1);
    }
    CHECK_EQ_INT(c.stage[0], 3); /* TCGA-05-4244-01A: Stage IV */
    CHECK(strcmp(c.id[1], "TCGA-05-4244-11A") == 0);
    CHECK_EQ_INT(c.omics[FL_MOD_RNA].F, 30);
    CHECK_EQ_INT(c.omics[FL_MOD_METHYLATION].F, 48);         /* two probes NA in 3 of 7 dropped */
    CHECK_EQ_INT(c.omics[FL_MOD_METHYLATION].present[4], 0); /* TCGA-18-3406-11A */
    const fl_omics_matrix *cl = &c.omics[FL_MOD_CLINICAL];
    CHECK_EQ_INT(cl->F, 4);
    CHECK_CLOSE(cl->values[4 * 1 + 0], 70, 0, 1e-5); /* the normal has its case's row */
    CHECK_CLOSE(cl->values[4 * 1 + 3], 45, 0, 1e-5);
    CHECK(strstr(warnings, "second rna file") != NULL);
    CHECK(strstr(warnings, "1 cases have no sample") != NULL);
    fl_gdc_sheet_destroy(&sh);

    /* The same clinical data in the new portal's format gives the same matrix. */
    o.clinical = clin2;
    o.exposure = expo2;
    CHECK_OK(fl_gdc_build(&o, &c2, &sh, &err), &err);
    if (c2.P == c.P) {
        const fl_omics_matrix *cl2 = &c2.omics[FL_MOD_CLINICAL];
        for (int i = 0; i < c.P * 4; i++) {
            fl_test_checks++;
            float a = cl->values[i], b = cl2->values[i];
            if (!(isnan(a) ? isnan(b) : a == b))
                fl_test_fail_at(__FILE__, __LINE__, "clinical value %d: %g legacy, %g new", i, a,
                                b);
        }
        for (int p = 0; p < c.P; p++) CHECK_EQ_INT(c2.stage[p], c.stage[p]);
    }
    fl_gdc_sheet_destroy(&sh);
    fl_cohort_destroy(&c2);
    fl_cohort_destroy(&c);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_gdc_")) return 1;
    test_vocabularies();
    test_clinical();
    test_rna();
    test_methylation();
    test_fixture_import();
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_gdc");
}
