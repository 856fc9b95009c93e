/* test_import_table.c - the CSV/TSV reader and `cohort import-table` through the library: a
 * quoted CSV with a BOM, CRLF and a multi-line field; an R-style TSV with sites, a split column
 * and --classes; missing values; one-hot columns; the seeded stratified split; and every bad
 * input, each of which must name the table (and the line), fail, and leave nothing written.
 * Fixtures are written into a mkdtemp folder, removed after. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/cohort.h"
#include "data/csv.h"
#include "data/import_table.h"
#include "harness.h"

static const char *fixture(const char *name, const char *text) {
    const char *p = fl_test_path(name);
    fl_test_write_file(p, text, strlen(text));
    return p;
}

/* Entries of fl_test_dir that are neither fixtures (*.csv, *.tsv) nor folders: outputs or temp
 * files. */
static int count_outputs(void) {
    DIR *d = opendir(fl_test_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || e->d_type == DT_DIR) continue;
        if (dot && (strcmp(dot, ".csv") == 0 || strcmp(dot, ".tsv") == 0)) continue;
        n++;
    }
    if (d) closedir(d);
    return n;
}

#define CHECK_STR(a, b)                                                             \
    do {                                                                            \
        const char *a_ = (a), *b_ = (b);                                            \
        fl_test_checks++;                                                           \
        if (!a_ || strcmp(a_, b_) != 0)                                             \
            fl_test_fail_at(__FILE__, __LINE__, "%s == \"%s\": got \"%s\"", #a, b_, \
                            a_ ? a_ : "(null)");                                    \
    } while (0)

#define CHECK_NAN(x)                                                                          \
    do {                                                                                      \
        fl_test_checks++;                                                                     \
        if (!isnan(x)) fl_test_fail_at(__FILE__, __LINE__, "%s = %g, expected NaN", #x, (x)); \
    } while (0)

/* Imports opts into out.h5 and expects failure with status want (0: any) and a message holding
 * the table's path and `where` ("t.csv:5:" or just the path); nothing may be left behind. */
static void expect_bad(const fl_import_options *o, fl_status want, const char *where, int line) {
    fl_err err = {{0}};
    char out[512]; /* not from fl_test_path: o->csv may be one of its buffers */
    snprintf(out, sizeof out, "%s/out.h5", fl_test_dir);
    fl_status s = fl_import_table(o, out, &err);
    fl_test_checks++;
    if (s == FL_OK) {
        fl_test_fail_at(__FILE__, line, "importing %s succeeded", o->csv);
        unlink(out);
        return;
    }
    if (want && s != want)
        fl_test_fail_at(__FILE__, line, "status %s, expected %s (%s)", fl_status_str(s),
                        fl_status_str(want), err.msg);
    if (!strstr(err.msg, o->csv) || !strstr(err.msg, where))
        fl_test_fail_at(__FILE__, line, "message lacks \"%s\": %s", where, err.msg);
    if (fl_test_file_exists(out)) fl_test_fail_at(__FILE__, line, "%s was written", out);
    if (count_outputs()) fl_test_fail_at(__FILE__, line, "something was left in %s", fl_test_dir);
}
#define EXPECT_BAD(o, want, where) expect_bad(o, want, where, __LINE__)

static void base_options(fl_import_options *o, const char *csv) {
    fl_import_options_default(o);
    o->csv = csv;
    o->id_col = "patient";
    o->label_col = "diagnosis";
}

/* ------------------------------------------------------------------------------------------ */

static void test_csv_reader(void) {
    fl_err err = {{0}};
    fl_csv *r = NULL;
    fl_csv_record rec;
    const char *p = fixture("r.csv", "\xEF\xBB\xBF"
                                     "a,\"b,c\",d\r\n"
                                     "1,\"x \"\"q\"\"\",\r\n"
                                     "2,\"two\nlines\",z\r\n"
                                     ",,\r\n"
                                     "\r\n");
    CHECK_OK(fl_csv_open(&r, p, 0, &err), &err);
    if (!r) return;
    CHECK_EQ_INT(fl_csv_delim(r), ',');
    const fl_csv_record *h = fl_csv_header(r);
    CHECK_EQ_INT(h->n, 3);
    CHECK_STR(h->field[0], "a");
    CHECK_STR(h->field[1], "b,c");
    for (int pass = 0; pass < 2; pass++) {
        CHECK_EQ_INT(fl_csv_next(r, &rec, &err), 1);
        CHECK_EQ_INT(rec.line, 2);
        CHECK_STR(rec.field[1], "x \"q\"");
        CHECK_STR(rec.field[2], "");
        CHECK_EQ_INT(fl_csv_next(r, &rec, &err), 1);
        CHECK_EQ_INT(rec.line, 3);
        CHECK_STR(rec.field[1], "two\nlines");
        CHECK_STR(rec.field[2], "z");
        CHECK_EQ_INT(fl_csv_next(r, &rec, &err), 0); /* ",," and "" at the end are skipped */
        fl_csv_rewind(r);
    }
    fl_csv_free(r);

    /* A tab in the header makes a TSV; commas are then ordinary characters. */
    p = fixture("r.tsv", "a\tb\n1,5\t\"q\"\n");
    CHECK_OK(fl_csv_open(&r, p, 0, &err), &err);
    if (r) {
        CHECK_EQ_INT(fl_csv_delim(r), '\t');
        CHECK_EQ_INT(fl_csv_next(r, &rec, &err), 1);
        CHECK_STR(rec.field[0], "1,5");
        CHECK_STR(rec.field[1], "q");
        fl_csv_free(r);
    }
    /* Forcing the delimiter overrides detection. */
    p = fixture("f.csv", "a;x\tb\n1\t2\n");
    CHECK_OK(fl_csv_open(&r, p, ',', &err), &err);
    if (r) {
        CHECK_EQ_INT(fl_csv_header(r)->n, 1);
        fl_csv_free(r);
    }
    /* Failures name the file and line. */
    struct {
        const char *text, *where;
    } bad[] = {
        {"a,b\n1,2\n3\n", ":3: 1 field, the header has 2"},
        {"a,b\n1,\"open\n2,3\n", ":2: field 2 opens a quote"},
        {"a,b\n1,\"x\"y\n", ":2: field 2 has text after its closing quote"},
        {"a,b\n1,2\n\n3,4\n", ":3: an empty row"},
        {"a,b\n1,2\n3,\0\n", ":3: a NUL byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i].text);
        if (i == 4) n = 11; /* the NUL is part of the text */
        fl_test_write_file(fl_test_path("bad.csv"), bad[i].text, n);
        const char *bp = fl_test_path("bad.csv");
        int got = fl_csv_open(&r, bp, 0, &err); /* a NUL byte fails here already */
        if (got == FL_OK)
            while ((got = fl_csv_next(r, &rec, &err)) == 1) {
            }
        CHECK(got < 0);
        CHECK(strstr(err.msg, bp) != NULL);
        if (!strstr(err.msg, bad[i].where))
            fl_test_fail_at(__FILE__, __LINE__, "case %zu: message lacks \"%s\": %s", i,
                            bad[i].where, err.msg);
        fl_csv_free(r);
    }
}

/* A clinical CSV: BOM, CRLF, quoted commas and quotes, a multi-line field, missing values in
 * every spelling, numeric and text columns, trailing blank lines. */
static const char good_csv[] = "\xEF\xBB\xBFpatient,diagnosis,age,sex,pack_years,smoking\r\n"
                               "P1,LUAD,63,male,20,\"former, quit \"\"2001\"\"\"\r\n"
                               "P2,LUSC,NA,female,'--,current\r\n"
                               "P3,LUAD,71,,35.5,never\r\n"
                               "P4,NORMAL,55,female,,\"multi\nline\"\r\n"
                               "P5,LUSC,1e2,male,null,current\r\n"
                               "P6,LUAD, -4.5 ,female,--,NaN\r\n"
                               "\r\n"
                               "\r\n";

static void test_good_csv(void) {
    fl_err err = {{0}};
    fl_import_options o;
    const char *csv = fixture("good.csv", good_csv), *out = fl_test_path("good.h5");
    base_options(&o, csv);
    CHECK_OK(fl_import_table(&o, out, &err), &err);
    fl_cohort c;
    CHECK_OK(fl_cohort_load(&c, out, &err), &err);
    if (c.P == 0) return;
    CHECK_EQ_INT(c.P, 6);
    CHECK_EQ_INT(c.n_classes, 3);
    CHECK_STR(c.class_names[0], "LUAD");
    CHECK_STR(c.class_names[1], "LUSC");
    CHECK_STR(c.class_names[2], "NORMAL");
    CHECK_EQ_INT(c.n_sites, 1);
    CHECK_STR(c.site_names[0], "site0");
    static const int labels[6] = {0, 1, 0, 2, 1, 0};
    for (int p = 0; p < 6; p++) {
        char id[8];
        snprintf(id, sizeof id, "P%d", p + 1);
        CHECK_STR(c.id[p], id);
        CHECK_STR(c.case_id[p], id);
        CHECK_EQ_INT(c.label[p], labels[p]);
        CHECK_EQ_INT(c.stage[p], -1);
        CHECK_EQ_INT(c.site[p], 0);
    }
    CHECK_EQ_INT(c.tile, 0);
    CHECK_EQ_INT(c.n_tiles, 0);
    CHECK_EQ_INT(c.omics[FL_MOD_RNA].F, 0);
    CHECK_EQ_INT(c.omics[FL_MOD_METHYLATION].F, 0);
    const fl_omics_matrix *m = &c.omics[FL_MOD_CLINICAL];
    /* age, sex=male, sex=female, pack_years, smoking= x 4 (first-appearance order) */
    static const char *names[] = {"age",
                                  "sex=male",
                                  "sex=female",
                                  "pack_years",
                                  "smoking=former, quit \"2001\"",
                                  "smoking=current",
                                  "smoking=never",
                                  "smoking=multi\nline"};
    CHECK_EQ_INT(m->F, 8);
    for (int f = 0; f < 8 && f < m->F; f++) CHECK_STR(m->features[f], names[f]);
    if (m->F == 8) {
        const float *v = m->values;
#define V(p, f) v[(p)*8 + (f)]
        CHECK_CLOSE(V(0, 0), 63, 0, 0);
        CHECK_CLOSE(V(0, 1), 1, 0, 0);
        CHECK_CLOSE(V(0, 2), 0, 0, 0);
        CHECK_CLOSE(V(0, 3), 20, 0, 0);
        CHECK_CLOSE(V(0, 4), 1, 0, 0);
        CHECK_CLOSE(V(0, 5), 0, 0, 0);
        CHECK_NAN(V(1, 0)); /* NA */
        CHECK_NAN(V(1, 3)); /* '-- */
        CHECK_NAN(V(2, 1)); /* empty sex: the whole block */
        CHECK_NAN(V(2, 2));
        CHECK_CLOSE(V(2, 3), 35.5, 0, 0);
        CHECK_NAN(V(3, 3)); /* empty */
        CHECK_CLOSE(V(3, 7), 1, 0, 0);
        CHECK_CLOSE(V(4, 0), 100, 0, 0);
        CHECK_NAN(V(4, 3));                             /* null */
        CHECK_CLOSE(V(5, 0), -4.5, 0, 0);               /* blanks around a number */
        CHECK_NAN(V(5, 3));                             /* -- */
        for (int f = 4; f < 8; f++) CHECK_NAN(V(5, f)); /* NaN */
#undef V
    }
    for (int p = 0; p < 6; p++) CHECK_EQ_INT(m->present[p], 1);
    CHECK(m->encoding && strstr(m->encoding, "one-hot") && strstr(m->encoding, "\"pack_years\""));
    CHECK(c.provenance && strstr(c.provenance, "good.csv") && strstr(c.provenance, "70/15/15"));
    /* 70/15/15 by largest remainder: LUAD (3) 2/1/0, LUSC (2) 2/0/0, NORMAL (1) 1/0/0. */
    int n_split[3][3] = {{0}};
    for (int p = 0; p < 6; p++) n_split[c.label[p]][c.split[p]]++;
    CHECK_EQ_INT(n_split[0][0], 2);
    CHECK_EQ_INT(n_split[0][1], 1);
    CHECK_EQ_INT(n_split[1][0], 2);
    CHECK_EQ_INT(n_split[2][0], 1);
    fl_cohort_destroy(&c);
    unlink(out);
}

/* An R-style TSV (quoted fields), sites, a split column, --classes and --modality rna. */
static void test_tsv_sites_split_classes(void) {
    fl_err err = {{0}};
    fl_import_options o;
    const char *tsv = fixture("rna.tsv", "id\tsite\tsplit\tclass\tG1\tG2\tnote\n"
                                         "S1\tA\ttrain\tLUSC\t1.5\t2\tx\n"
                                         "S2\tB\tval\tLUAD\tNA\t0\ty\n"
                                         "\"S3\"\t\"A\"\t\"test\"\t\"LUAD\"\t\"3\"\t4e-1\tz\n"
                                         "S4\tB\tTrain\tLUSC\t\t\t\n");
    fl_import_options_default(&o);
    o.csv = tsv;
    o.id_col = "id";
    o.label_col = "class";
    o.site_col = "site";
    o.split_col = "split";
    o.classes = "LUAD, LUSC,NORMAL";
    o.ignore = "note";
    o.modality = FL_MOD_RNA;
    const char *out = fl_test_path("rna.h5");
    CHECK_OK(fl_import_table(&o, out, &err), &err);
    fl_cohort c;
    CHECK_OK(fl_cohort_load(&c, out, &err), &err);
    if (c.P != 4) {
        CHECK_EQ_INT(c.P, 4);
        fl_cohort_destroy(&c);
        return;
    }
    CHECK_EQ_INT(c.n_classes, 3);
    CHECK_STR(c.class_names[0], "LUAD");
    CHECK_STR(c.class_names[2], "NORMAL"); /* kept although no row has it */
    CHECK_EQ_INT(c.label[0], 1);
    CHECK_EQ_INT(c.label[1], 0);
    CHECK_EQ_INT(c.n_sites, 2);
    CHECK_STR(c.site_names[0], "A");
    CHECK_STR(c.site_names[1], "B");
    CHECK_EQ_INT(c.site[3], 1);
    CHECK_STR(c.id[2], "S3");
    static const int splits[4] = {FL_SPLIT_TRAIN, FL_SPLIT_VAL, FL_SPLIT_TEST, FL_SPLIT_TRAIN};
    for (int p = 0; p < 4; p++) CHECK_EQ_INT(c.split[p], splits[p]);
    const fl_omics_matrix *m = &c.omics[FL_MOD_RNA];
    CHECK_EQ_INT(m->F, 2);
    CHECK_EQ_INT(c.omics[FL_MOD_CLINICAL].F, 0);
    if (m->F == 2) {
        CHECK_STR(m->features[0], "G1");
        CHECK_CLOSE(m->values[0], 1.5, 0, 0);
        CHECK_NAN(m->values[2]);
        CHECK_CLOSE(m->values[4], 3, 0, 0);
        CHECK_CLOSE(m->values[5], 0.4, 1e-7, 0);
        CHECK_NAN(m->values[6]);
        CHECK_EQ_INT(m->present[1], 1);
        CHECK_EQ_INT(m->present[3], 0); /* every value missing */
    }
    fl_cohort_destroy(&c);
    unlink(out);
}

/* The seeded split: stratified by label, largest remainders, reproducible, train guaranteed. */
static void test_seeded_split(void) {
    fl_err err = {{0}};
    char *text = malloc(64 * 200 + 64);
    size_t len = (size_t)sprintf(text, "patient,diagnosis,x\n");
    for (int i = 0; i < 100; i++) /* 50 A, 30 B, 20 C; and a class D of 3 */
        len += (size_t)sprintf(text + len, "p%03d,%s,%d\n", i,
                               i < 50   ? "A"
                               : i < 80 ? "B"
                                        : "C",
                               i);
    for (int i = 0; i < 3; i++) len += (size_t)sprintf(text + len, "d%d,D,%d\n", i, i);
    const char *csv = fixture("big.csv", text);
    free(text);
    fl_import_options o;
    base_options(&o, csv);
    fl_cohort a, b, d;
    CHECK_OK(fl_import_table_build(&o, &a, &err), &err);
    CHECK_OK(fl_import_table_build(&o, &b, &err), &err);
    o.seed = 2;
    CHECK_OK(fl_import_table_build(&o, &d, &err), &err);
    if (a.P != 103 || b.P != 103 || d.P != 103) {
        CHECK_EQ_INT(a.P, 103);
        goto done;
    }
    CHECK(memcmp(a.split, b.split, 103) == 0);
    CHECK(memcmp(a.split, d.split, 103) != 0);
    int n[4][3] = {{0}};
    for (int p = 0; p < 103; p++) n[a.label[p]][a.split[p]]++;
    /* 50: 35 / 7.5 / 7.5 -> 35 / 8 / 7; 30: 21 / 4.5 / 4.5 -> 21 / 5 / 4; 20: 14 / 3 / 3;
     * 3: 2.1 / 0.45 / 0.45 -> 2 / 1 / 0. */
    static const int want[4][3] = {{35, 8, 7}, {21, 5, 4}, {14, 3, 3}, {2, 1, 0}};
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 3; s++) CHECK_EQ_INT(n[k][s], want[k][s]);
    /* A split that would give a class of 3 no training patient still gives it one. */
    fl_cohort_destroy(&d);
    CHECK_OK(fl_import_parse_split("1/50/49", o.split, &err), &err);
    CHECK_OK(fl_import_table_build(&o, &d, &err), &err);
    int train_d = 0;
    for (int p = 0; p < d.P; p++) train_d += d.label[p] == 3 && d.split[p] == FL_SPLIT_TRAIN;
    CHECK_EQ_INT(train_d, 1);
done:
    fl_cohort_destroy(&a);
    fl_cohort_destroy(&b);
    fl_cohort_destroy(&d);
}

static void test_parse_split(void) {
    fl_err err = {{0}};
    int w[3];
    CHECK_OK(fl_import_parse_split("70/15/15", w, &err), &err);
    CHECK_EQ_INT(w[0], 70);
    CHECK_EQ_INT(w[2], 15);
    CHECK_OK(fl_import_parse_split("8/1/1", w, &err), &err);
    const char *bad[] = {"",      "70/15",    "70/15/15/0", "0/50/50",
                         "a/b/c", "70/-5/35", "70/15/15x",  "70 /15/15"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(fl_import_parse_split(bad[i], w, &err) == FL_EINVAL);
}

/* Every bad table and option: failure, the file (and line) named, nothing written. */
static void test_bad_inputs(void) {
    fl_import_options o;
    char where[600];
    const char *p;
#define BAD_TABLE(name, text, status, line_text)             \
    do {                                                     \
        p = fixture(name, text);                             \
        base_options(&o, p);                                 \
        snprintf(where, sizeof where, "%s%s", p, line_text); \
        EXPECT_BAD(&o, status, where);                       \
    } while (0)

    BAD_TABLE("empty.csv", "", FL_EFORMAT, ": the file is empty");
    BAD_TABLE("blank.csv", "\xEF\xBB\xBF \r\n\n", FL_EFORMAT, ": the file is empty");
    BAD_TABLE("header.csv", "patient,diagnosis,age\r\n", FL_EFORMAT, ": no data rows");
    BAD_TABLE("header2.csv", "patient,diagnosis,age\n\n\n", FL_EFORMAT, ": no data rows");
    BAD_TABLE("firstblank.csv", "\npatient,diagnosis,age\n1,A,2\n", FL_EFORMAT, ":1:");
    BAD_TABLE("ragged.csv", "patient,diagnosis,a,b,c,d,e\n1,A,1,2,3,4,5\n2,B,1,2,3,4\n", FL_EFORMAT,
              ":3: 6 fields, the header has 7");
    BAD_TABLE("ragged2.csv", "patient,diagnosis,a\n1,A,1,2\n", FL_EFORMAT,
              ":2: 4 fields, the header has 3");
    BAD_TABLE("dup.csv", "patient,diagnosis,a\nP1,A,1\nP2,B,2\nP1,A,3\nP2,B,4\n", FL_EFORMAT,
              ":4: id \"P1\" already appears on line 2");
    BAD_TABLE("noid.csv", "pid,diagnosis,age\n1,A,2\n", FL_ENOTFOUND,
              ": no column \"patient\" (--id) in the header; line 1 has \"pid\", \"diagnosis\", "
              "\"age\"");
    BAD_TABLE("nolabel.csv", "patient,dx,age\n1,A,2\n", FL_ENOTFOUND,
              ": no column \"diagnosis\" (--label)");
    BAD_TABLE("nofeat.csv", "patient,diagnosis\n1,A\n2,B\n", FL_EFORMAT,
              ": no feature columns for --modality clinical");
    BAD_TABLE("emptylabel.csv", "patient,diagnosis,a\n1,A,1\n2,,2\n", FL_EFORMAT,
              ":3: the label (column \"diagnosis\") is missing");
    BAD_TABLE("nalabel.csv", "patient,diagnosis,a\n1,A,1\n2,A,1\n3,NA,2\n", FL_EFORMAT,
              ":4: the label");
    BAD_TABLE("emptyid.csv", "patient,diagnosis,a\n1,A,1\n,B,2\n", FL_EFORMAT,
              ":3: the id (column \"patient\") is missing");
    BAD_TABLE("quote.csv", "patient,diagnosis,a\n1,A,\"open\n2,B,2\n", FL_EFORMAT,
              ":2: field 3 opens a quote that is never closed");
    BAD_TABLE("afterquote.csv", "patient,diagnosis,a\n1,A,1\n2,\"B\"x,2\n", FL_EFORMAT,
              ":3: field 2 has text after its closing quote");
    BAD_TABLE("hole.csv", "patient,diagnosis,a\n1,A,1\n\n2,B,2\n", FL_EFORMAT,
              ":3: an empty row inside the table");
    BAD_TABLE("dupcol.csv", "patient,diagnosis,a,b,a\n1,A,1,2,3\n", FL_EFORMAT,
              ":1: columns 3 and 5 are both named \"a\"");
    BAD_TABLE("noname.csv", ",patient,diagnosis,a\n0,1,A,1\n", FL_EFORMAT,
              ":1: column 1 has no name");
    BAD_TABLE("huge.csv", "patient,diagnosis,a\n1,A,1e300\n", FL_EFORMAT,
              ":2: column \"a\": 1e300 does not fit a float");

    /* A NUL byte: a binary file. */
    p = fl_test_path("nul.csv");
    fl_test_write_file(p, "patient,diagnosis,a\n1,A,\0\n", 26);
    base_options(&o, p);
    snprintf(where, sizeof where, "%s:2: a NUL byte", p);
    EXPECT_BAD(&o, FL_EFORMAT, where);

    /* More than FL_IMPORT_MAX_LEVELS distinct texts in a column. */
    char *t = malloc(400 * 32);
    size_t len = (size_t)sprintf(t, "patient,diagnosis,barcode\n");
    for (int i = 0; i < FL_IMPORT_MAX_LEVELS + 1; i++)
        len += (size_t)sprintf(t + len, "%d,A,bc%d\n", i, i);
    BAD_TABLE("levels.csv", t, FL_EFORMAT, ":258: column \"barcode\" has more than 256");
    /* More than FL_MAX_CLASSES labels. */
    len = (size_t)sprintf(t, "patient,diagnosis,x\n");
    for (int i = 0; i < FL_MAX_CLASSES + 1; i++)
        len += (size_t)sprintf(t + len, "%d,class%d,1\n", i, i);
    BAD_TABLE("classes.csv", t, FL_EFORMAT, ":66: label \"class64\" would be class 65");
    free(t);

    /* Options that meet the table. */
    p = fixture("opt.csv", "patient,diagnosis,site,split,g\nP1,A,s1,train,1\nP2,B,s1,val,x\n"
                           "P3,C,,test,2\n");
    base_options(&o, p);
    o.classes = "A,B";
    snprintf(where, sizeof where, "%s:4: label \"C\" is not one of --classes A,B", p);
    EXPECT_BAD(&o, FL_EFORMAT, where);
    base_options(&o, p);
    o.site_col = "site";
    snprintf(where, sizeof where, "%s:4: the site (column \"site\") is missing", p);
    EXPECT_BAD(&o, FL_EFORMAT, where);
    base_options(&o, p);
    o.site_col = "hospital";
    snprintf(where, sizeof where, "%s: no column \"hospital\" (--site)", p);
    EXPECT_BAD(&o, FL_ENOTFOUND, where);
    base_options(&o, p);
    o.split_col = "fold";
    snprintf(where, sizeof where, "%s: no column \"fold\" (--split-column)", p);
    EXPECT_BAD(&o, FL_ENOTFOUND, where);
    base_options(&o, p);
    o.ignore = "site,nothere";
    snprintf(where, sizeof where, "%s: no column \"nothere\" (--ignore)", p);
    EXPECT_BAD(&o, FL_ENOTFOUND, where);
    base_options(&o, p);
    o.modality = FL_MOD_METHYLATION;
    o.ignore = "site,split";
    snprintf(where, sizeof where, "%s:3: column \"g\" holds \"x\", not a number", p);
    EXPECT_BAD(&o, FL_EFORMAT, where);
    base_options(&o, p);
    o.label_col = "patient";
    EXPECT_BAD(&o, FL_EINVAL, "has another role");
    p = fixture("split.csv", "patient,diagnosis,split,g\nP1,A,train,1\nP2,B,validation,2\n");
    base_options(&o, p);
    o.split_col = "split";
    snprintf(where, sizeof where, "%s:3: split \"validation\" (column \"split\") is not train", p);
    EXPECT_BAD(&o, FL_EFORMAT, where);

    /* Unreadable: missing, a folder, and (when not root) a file without read permission. */
    base_options(&o, fl_test_path("missing.csv"));
    EXPECT_BAD(&o, FL_ENOTFOUND, ": cannot open");
    mkdir(fl_test_path("folder.csv"), 0700);
    base_options(&o, fl_test_path("folder.csv"));
    EXPECT_BAD(&o, FL_EIO, ": cannot read");
    rmdir(fl_test_path("folder.csv"));
    if (geteuid() != 0) {
        p = fixture("locked.csv", "patient,diagnosis,a\n1,A,1\n");
        chmod(p, 0);
        base_options(&o, p);
        EXPECT_BAD(&o, FL_EIO, ": cannot open");
        chmod(p, 0600);
    }
    /* The output may not replace the table. */
    fl_err err = {{0}};
    p = fixture("self.csv", "patient,diagnosis,a\n1,A,1\n");
    base_options(&o, p);
    CHECK(fl_import_table(&o, p, &err) == FL_EINVAL);
    CHECK(strstr(err.msg, "overwrite the table") != NULL);
    /* An output folder that does not exist: the writer's sentence, nothing left. */
    base_options(&o, p);
    CHECK(fl_import_table(&o, fl_test_path("no/such/dir/x.h5"), &err) != FL_OK);
    CHECK(strstr(err.msg, "no/such/dir/x.h5") != NULL);
    CHECK_EQ_INT(count_outputs(), 0);
#undef BAD_TABLE
}

int main(void) {
    if (!fl_test_mkdtemp("fl_import_")) return 1;
    test_csv_reader();
    test_good_csv();
    test_tsv_sites_split_classes();
    test_seeded_split();
    test_parse_split();
    test_bad_inputs();
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_import_table");
}
