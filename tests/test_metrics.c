/* test_metrics.c - eval/: AUC, AP, curves, accuracy and confusion on small hand-computed cases
 * (ties, missing classes, argmax ties), score histograms (exactness on quantised scores, merge),
 * input validation, the CSV/JSON writers (exact text, escaping, atomicity) and the PNG charts.
 * `test_metrics --dump DIR [B]` is the helper of check_metrics_sklearn.sh: it reads DIR/input.csv
 * ("label,<class 0>,...", then one row of label and K scores per sample), writes every metric and
 * curve to DIR/out.csv ("key,k,j,value") and the reports and charts next to it. */
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomic.h"
#include "eval/metrics.h"
#include "eval/plot.h"
#include "eval/report.h"
#include "harness.h"

#define TOL 1e-12

/* Checks n doubles against expected values to TOL (NaN must match NaN). */
static void check_doubles(const char *what, const double *got, const double *want, int n,
                          int line) {
    for (int i = 0; i < n; i++) {
        fl_test_checks++;
        int ok = isnan(want[i])   ? isnan(got[i])
                 : isinf(want[i]) ? got[i] == want[i]
                                  : fabs(got[i] - want[i]) <= TOL;
        if (!ok)
            fl_test_fail_at(__FILE__, line, "%s[%d]: %.17g, expected %.17g", what, i, got[i],
                            want[i]);
    }
}
#define CHECK_DOUBLES(what, got, ...)                                                     \
    do {                                                                                  \
        const double want_[] = {__VA_ARGS__};                                             \
        check_doubles(what, got, want_, (int)(sizeof want_ / sizeof want_[0]), __LINE__); \
    } while (0)

/* Binary scores s as a 2-class matrix (1 - s, s). */
static void two_class(const float *s, int n, float *probs) {
    for (int i = 0; i < n; i++) {
        probs[2 * i] = 1.0f - s[i];
        probs[2 * i + 1] = s[i];
    }
}

/* sklearn's documented example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8]. */
static void test_sklearn_example(void) {
    const float s[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int32_t y[4] = {0, 0, 1, 1};
    float p[8];
    two_class(s, 4, p);
    fl_err err = {{0}};
    fl_metrics m;
    CHECK_OK(fl_metrics_compute(p, y, 4, 2, &m, &err), &err);
    CHECK_CLOSE(m.auc[1], 0.75, 0, TOL);
    CHECK_CLOSE(m.ap[1], 0.5 * 1.0 + 0.5 * (2.0 / 3.0), 0, TOL); /* 0.8333 */
    CHECK_CLOSE(m.auc[0], 0.75, 0, TOL); /* the mirror image: same pairs, reversed */
    CHECK_CLOSE(m.ap[0], 0.5 * 1.0 + 0.5 * (2.0 / 3.0), 0, TOL);
    CHECK_CLOSE(m.macro_auc, 0.75, 0, TOL);
    CHECK_EQ_INT(m.macro_auc_classes, 2);
    /* argmax: 0.1 -> 0 (right), 0.4 -> 0 (right), 0.35 -> 0 (wrong), 0.8 -> 1 (right) */
    CHECK_CLOSE(m.accuracy, 0.75, 0, TOL);
    CHECK_EQ_INT(m.confusion[0], 2);
    CHECK_EQ_INT(m.confusion[1], 0);
    CHECK_EQ_INT(m.confusion[2], 1);
    CHECK_EQ_INT(m.confusion[3], 1);
    CHECK_EQ_INT(m.n_pos[0], 2);
    CHECK_EQ_INT(m.n_pos[1], 2);
    fl_metrics_destroy(&m);
    fl_metrics_destroy(&m); /* idempotent */

    fl_metrics_curves c;
    CHECK_OK(fl_curves_compute(p, y, 4, 2, &c, &err), &err);
    const fl_class_curves *c1 = &c.cls[1];
    CHECK_EQ_INT(c1->n_roc, 5);
    CHECK_DOUBLES("fpr", c1->fpr, 0, 0, 0.5, 0.5, 1);
    CHECK_DOUBLES("tpr", c1->tpr, 0, 0.5, 0.5, 1, 1);
    CHECK_DOUBLES("roc_thr", c1->roc_thr, INFINITY, 0.8f, 0.4f, 0.35f, 0.1f);
    CHECK_EQ_INT(c1->n_pr, 5);
    CHECK_DOUBLES("precision", c1->precision, 0.5, 2.0 / 3.0, 0.5, 1, 1);
    CHECK_DOUBLES("recall", c1->recall, 1, 1, 0.5, 0.5, 0);
    CHECK_DOUBLES("pr_thr", c1->pr_thr, 0.1f, 0.35f, 0.4f, 0.8f);
    CHECK_CLOSE(c1->auc, 0.75, 0, TOL);
    fl_curves_destroy(&c);
}

/* Ties: a tied (positive, negative) pair counts one half; a tie is one threshold. */
static void test_ties(void) {
    fl_err err = {{0}};
    fl_metrics m;
    { /* all equal: AUC 1/2, AP = prevalence */
        const float s[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
        const int32_t y[5] = {1, 0, 1, 0, 0};
        float p[10];
        two_class(s, 5, p);
        CHECK_OK(fl_metrics_compute(p, y, 5, 2, &m, &err), &err);
        CHECK_CLOSE(m.auc[1], 0.5, 0, TOL);
        CHECK_CLOSE(m.ap[1], 0.4, 0, TOL);
        CHECK_CLOSE(m.auc[0], 0.5, 0, TOL);
        CHECK_CLOSE(m.ap[0], 0.6, 0, TOL);
        CHECK_CLOSE(m.accuracy, 0.6, 0, TOL); /* argmax ties go to class 0 */
        fl_metrics_destroy(&m);
        fl_metrics_curves c;
        CHECK_OK(fl_curves_compute(p, y, 5, 2, &c, &err), &err);
        CHECK_EQ_INT(c.cls[1].n_roc, 2);
        CHECK_DOUBLES("fpr", c.cls[1].fpr, 0, 1);
        CHECK_DOUBLES("precision", c.cls[1].precision, 0.4, 1);
        CHECK_DOUBLES("recall", c.cls[1].recall, 1, 0);
        fl_curves_destroy(&c);
    }
    { /* y = [1, 0, 0], s = [0.7, 0.7, 0.2]: pairs (0.7+, 0.7-) = 1/2, (0.7+, 0.2-) = 1 */
        const float s[3] = {0.7f, 0.7f, 0.2f};
        const int32_t y[3] = {1, 0, 0};
        float p[6];
        two_class(s, 3, p);
        CHECK_OK(fl_metrics_compute(p, y, 3, 2, &m, &err), &err);
        CHECK_CLOSE(m.auc[1], 0.75, 0, TOL);
        CHECK_CLOSE(m.ap[1], 0.5, 0, TOL); /* the only step: recall 0 -> 1 at precision 1/2 */
        fl_metrics_destroy(&m);
    }
    { /* midranks: y = [1,1,0,1,0,0], s = [.9,.5,.5,.5,.5,.1] -> ranks 6, 3.5 x4, 1;
       * U = (6 + 3.5 + 3.5) - 3*4/2 = 7, AUC = 7/9; AP = 1/3*1 + 2/3*(3/5) */
        const float s[6] = {0.9f, 0.5f, 0.5f, 0.5f, 0.5f, 0.1f};
        const int32_t y[6] = {1, 1, 0, 1, 0, 0};
        float p[12];
        two_class(s, 6, p);
        CHECK_OK(fl_metrics_compute(p, y, 6, 2, &m, &err), &err);
        CHECK_CLOSE(m.auc[1], 7.0 / 9.0, 0, TOL);
        CHECK_CLOSE(m.ap[1], 1.0 / 3.0 + 2.0 / 3.0 * 0.6, 0, TOL);
        fl_metrics_destroy(&m);
    }
}

/* Three classes, one of them absent: its AUC and AP are NaN and left out of the macro means. */
static void test_missing_class(void) {
    const float p[4 * 3] = {
        0.7f, 0.2f, 0.1f, /* label 0 */
        0.3f, 0.6f, 0.1f, /* label 1 */
        0.5f, 0.4f, 0.1f, /* label 1, predicted 0 */
        0.2f, 0.3f, 0.5f, /* label 0, predicted 2 */
    };
    const int32_t y[4] = {0, 1, 1, 0};
    fl_err err = {{0}};
    fl_metrics m;
    CHECK_OK(fl_metrics_compute(p, y, 4, 3, &m, &err), &err);
    /* class 0: positives 0.7, 0.2; negatives 0.3, 0.5 -> pairs won: 0.7 beats both = 2 of 4 */
    CHECK_CLOSE(m.auc[0], 0.5, 0, TOL);
    /* order 0.7+, 0.5-, 0.3-, 0.2+: AP = 1/2 * 1 + 1/2 * 2/4 */
    CHECK_CLOSE(m.ap[0], 0.75, 0, TOL);
    /* class 1: positives 0.6, 0.4; negatives 0.2, 0.3 -> 4 of 4 */
    CHECK_CLOSE(m.auc[1], 1.0, 0, TOL);
    CHECK_CLOSE(m.ap[1], 1.0, 0, TOL);
    CHECK(isnan(m.auc[2]));
    CHECK(isnan(m.ap[2]));
    CHECK_EQ_INT(m.macro_auc_classes, 2);
    CHECK_EQ_INT(m.macro_ap_classes, 2);
    CHECK_CLOSE(m.macro_auc, 0.75, 0, TOL);
    CHECK_CLOSE(m.macro_ap, 0.875, 0, TOL);
    CHECK_CLOSE(m.accuracy, 0.5, 0, TOL);
    const int64_t conf[9] = {1, 0, 1, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++) CHECK_EQ_INT(m.confusion[i], conf[i]);
    CHECK_EQ_INT(m.n_pos[2], 0);
    fl_metrics_destroy(&m);

    /* A class with only positives: AUC undefined, AP 1 (as sklearn). */
    const float q[2 * 2] = {0.9f, 0.1f, 0.4f, 0.6f};
    const int32_t z[2] = {0, 0};
    CHECK_OK(fl_metrics_compute(q, z, 2, 2, &m, &err), &err);
    CHECK(isnan(m.auc[0]) && isnan(m.auc[1]));
    CHECK_CLOSE(m.ap[0], 1.0, 0, TOL);
    CHECK(isnan(m.ap[1]));
    CHECK(isnan(m.macro_auc));
    CHECK_EQ_INT(m.macro_auc_classes, 0);
    fl_metrics_destroy(&m);

    fl_metrics_curves c;
    CHECK_OK(fl_curves_compute(q, z, 2, 2, &c, &err), &err);
    CHECK(isnan(c.cls[0].fpr[0]) && isnan(c.cls[0].fpr[2])); /* no negatives: fpr all NaN */
    CHECK_DOUBLES("tpr", c.cls[0].tpr, 0, 0.5, 1);
    CHECK(isnan(c.cls[1].tpr[1])); /* no positives: tpr all NaN */
    CHECK_DOUBLES("recall(no positives)", c.cls[1].recall, 1, 1, 0);
    CHECK_DOUBLES("precision(no positives)", c.cls[1].precision, 0, 0, 1);
    fl_curves_destroy(&c);

    /* No samples at all. */
    CHECK_OK(fl_metrics_compute(NULL, NULL, 0, 3, &m, &err), &err);
    CHECK(isnan(m.accuracy) && isnan(m.auc[0]) && isnan(m.macro_ap));
    fl_metrics_destroy(&m);
}

static void test_errors(void) {
    const float p[4] = {0.5f, 0.5f, NAN, 0.2f};
    const int32_t good[2] = {0, 1}, bad[2] = {0, 2};
    const float fine[4] = {0.5f, 0.5f, 0.1f, 0.2f};
    fl_err err = {{0}};
    fl_metrics m;
    fl_metrics_curves c;
    CHECK_EQ_INT(fl_metrics_compute(fine, bad, 2, 2, &m, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "sample 1 has label 2") != NULL);
    CHECK(m.confusion == NULL);
    CHECK_EQ_INT(fl_metrics_compute(p, good, 2, 2, &m, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "non-finite") != NULL);
    CHECK_EQ_INT(fl_metrics_compute(fine, good, 2, 0, &m, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_metrics_compute(fine, good, 2, FL_MAX_CLASSES + 1, &m, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_metrics_compute(fine, good, -1, 2, &m, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_curves_compute(fine, bad, 2, 2, &c, &err), FL_EINVAL);
    CHECK(c.slab == NULL);
}

/* Histograms: exact on scores at bin centres, equal to pooled metrics after a merge. */
static void test_hist(void) {
    enum { N = 300, K = 3, B = 16 };
    static float p[N * K];
    static int32_t y[N];
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)(i % K);
        for (int k = 0; k < K; k++) {
            x = x * 1103515245u + 12345u;
            int bin = (int)((x >> 16) % B);
            if (k == y[i] && bin < B - 3) bin += 3; /* some signal */
            p[i * K + k] = ((float)bin + 0.5f) / B; /* a bin centre */
        }
    }
    fl_err err = {{0}};
    fl_metrics m;
    CHECK_OK(fl_metrics_compute(p, y, N, K, &m, &err), &err);
    fl_score_hist a, b, whole;
    CHECK_OK(fl_score_hist_init(&a, K, B, &err), &err);
    CHECK_OK(fl_score_hist_init(&b, K, B, &err), &err);
    CHECK_OK(fl_score_hist_init(&whole, K, B, &err), &err);
    CHECK_OK(fl_score_hist_add(&a, p, y, 100, &err), &err);
    CHECK_OK(fl_score_hist_add(&b, p + 100 * K, y + 100, N - 100, &err), &err);
    CHECK_OK(fl_score_hist_add(&whole, p, y, N, &err), &err);
    CHECK_OK(fl_score_hist_merge(&a, &b, &err), &err);
    for (int k = 0; k < K; k++) {
        CHECK_CLOSE(fl_hist_auc(&a, k), m.auc[k], 0, TOL);
        CHECK_CLOSE(fl_hist_ap(&a, k), m.ap[k], 0, TOL);
        CHECK(m.auc[k] > 0.6); /* the data are not degenerate */
    }
    CHECK(memcmp(a.counts, whole.counts, sizeof *a.counts * K * 2 * B) == 0);
    fl_metrics_destroy(&m);

    /* Validation leaves the histogram alone; shapes must agree; bins clamp. */
    const int32_t badl[1] = {7};
    CHECK_EQ_INT(fl_score_hist_add(&b, p, badl, 1, &err), FL_EINVAL);
    fl_score_hist other;
    CHECK_OK(fl_score_hist_init(&other, K, B + 1, &err), &err);
    CHECK_EQ_INT(fl_score_hist_merge(&a, &other, &err), FL_ESHAPE);
    fl_score_hist_destroy(&other);
    CHECK_EQ_INT(fl_score_hist_init(&other, 0, 4, &err), FL_EINVAL);
    CHECK(isnan(fl_hist_auc(&a, K)) && isnan(fl_hist_ap(&a, -1)));
    CHECK_EQ_INT(fl_score_hist_bin(0.0f, 10), 0);
    CHECK_EQ_INT(fl_score_hist_bin(-0.3f, 10), 0);
    CHECK_EQ_INT(fl_score_hist_bin(0.15f, 10), 1);
    CHECK_EQ_INT(fl_score_hist_bin(0.999f, 10), 9);
    CHECK_EQ_INT(fl_score_hist_bin(1.0f, 10), 9);
    CHECK_EQ_INT(fl_score_hist_bin(4.0f, 10), 9);
    CHECK_EQ_INT(fl_score_hist_bin(0.5f, 1), 0);

    /* Empty histograms: undefined. */
    fl_score_hist e;
    CHECK_OK(fl_score_hist_init(&e, 2, 4, &err), &err);
    CHECK(isnan(fl_hist_auc(&e, 0)) && isnan(fl_hist_ap(&e, 1)));
    fl_score_hist_destroy(&e);
    fl_score_hist_destroy(&a);
    fl_score_hist_destroy(&b);
    fl_score_hist_destroy(&whole);
    fl_score_hist_destroy(&other);
    fl_score_hist_destroy(NULL);
}

static void test_reports(void) {
    const char *names[3] = {"LUAD", "LU,SC", "a\"b\\c\n"};
    const char *ids[2] = {"TCGA-05-4244", "id \"2\""};
    const int32_t y[2] = {0, 2};
    const float p[6] = {0.7f, 0.2f, 0.1f, 0.1f, 0.2f, 0.7f};
    fl_err err = {{0}};
    CHECK_OK(fl_write_predictions_csv(fl_test_path("pred.csv"), ids, y, names, p, 2, 3, &err),
             &err);
    char *csv = fl_test_read_file(fl_test_path("pred.csv"), NULL);
    const char *want_csv = "patient_id,label,p_LUAD,\"p_LU,SC\",\"p_a\"\"b\\c\n\"\n"
                           "TCGA-05-4244,LUAD,0.699999988,0.200000003,0.100000001\n"
                           "\"id \"\"2\"\"\",\"a\"\"b\\c\n\",0.100000001,0.200000003,0.699999988\n";
    CHECK(csv && strcmp(csv, want_csv) == 0);
    if (csv && strcmp(csv, want_csv) != 0) printf("got:\n%s\nexpected:\n%s\n", csv, want_csv);
    free(csv);

    fl_metrics m;
    CHECK_OK(fl_metrics_compute(p, y, 2, 3, &m, &err), &err);
    CHECK_OK(
        fl_write_metrics_json(fl_test_path("m.json"), &m, names, 3, " { \"round\": 3 } ", &err),
        &err);
    char *json = fl_test_read_file(fl_test_path("m.json"), NULL);
    const char *want_json =
        "{\n  \"n\": 2,\n  \"per_class\": {\n"
        "    \"LUAD\": {\"auc\": 1, \"ap\": 1, \"support\": 1},\n"
        "    \"LU,SC\": {\"auc\": null, \"ap\": null, \"support\": 0},\n"
        "    \"a\\\"b\\\\c\\n\": {\"auc\": 1, \"ap\": 1, \"support\": 1}\n  },\n"
        "  \"macro\": {\"auc\": 1, \"ap\": 1, \"auc_classes\": 2, \"ap_classes\": 2},\n"
        "  \"accuracy\": 1,\n  \"confusion\": [\n    [1, 0, 0],\n    [0, 0, 0],\n"
        "    [0, 0, 1]\n  ],\n  \"round\": 3\n}\n";
    CHECK(json && strcmp(json, want_json) == 0);
    if (json && strcmp(json, want_json) != 0) printf("got:\n%s\nexpected:\n%s\n", json, want_json);
    free(json);
    CHECK_OK(fl_write_metrics_json(fl_test_path("m2.json"), &m, names, 3, NULL, &err), &err);
    json = fl_test_read_file(fl_test_path("m2.json"), NULL);
    CHECK(json && strstr(json, "]\n  ]\n}\n") != NULL);
    free(json);
    CHECK_EQ_INT(fl_write_metrics_json(fl_test_path("m3.json"), &m, names, 2, NULL, &err),
                 FL_EINVAL);
    fl_metrics_destroy(&m);

    /* Failures leave no file and no temporary behind. */
    CHECK_EQ_INT(
        fl_write_predictions_csv(fl_test_path("missing/pred.csv"), ids, y, names, p, 2, 3, &err),
        FL_EIO);
    CHECK(strstr(err.msg, "missing/pred.csv") != NULL);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    if (access("/dev/full", W_OK) == 0) { /* a full disk: the commit must notice */
        fl_atomic_file af;
        CHECK_OK(fl_atomic_open(&af, fl_test_path("full"), &err), &err);
        fclose(af.f);
        af.f = fopen("/dev/full", "wb");
        CHECK(af.f != NULL);
        if (af.f) {
            for (int i = 0; i < 10000; i++) fputs("0123456789", af.f);
            CHECK_EQ_INT(fl_atomic_commit(&af, &err), FL_EIO);
            CHECK(access(fl_test_path("full"), F_OK) != 0);
        } else {
            fl_atomic_abort(&af);
        }
        CHECK_EQ_INT(fl_test_count_tmp(), 0);
    }
}

/* A PNG file's signature and size from its IHDR chunk. */
static void check_png(const char *path, int W, int H) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)fl_test_read_file(path, &len);
    CHECK(b && len > 1000 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (b && len > 24) {
        CHECK_EQ_INT((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19], W);
        CHECK_EQ_INT((b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23], H);
    }
    free(b);
}

static void test_plots(void) {
    enum { N = 200, K = 3 };
    static float p[N * K];
    static int32_t y[N];
    unsigned x = 777;
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)(i % K);
        float sum = 0;
        for (int k = 0; k < K; k++) {
            x = x * 1103515245u + 12345u;
            p[i * K + k] = (float)((x >> 8) & 0xffff) / 65536.0f + (k == y[i] ? 0.6f * k : 0);
            sum += p[i * K + k];
        }
        for (int k = 0; k < K; k++) p[i * K + k] /= sum;
    }
    const char *names[K] = {"LUAD", "LUSC", "normal"};
    fl_err err = {{0}};
    fl_metrics_curves c;
    CHECK_OK(fl_curves_compute(p, y, N, K, &c, &err), &err);
    CHECK_OK(fl_plot_roc(fl_test_path("roc.png"), &c, names, K, &err), &err);
    CHECK_OK(fl_plot_pr(fl_test_path("pr.png"), &c, names, K, &err), &err);
    check_png(fl_test_path("roc.png"), 800, 600);
    check_png(fl_test_path("pr.png"), 800, 600);
    CHECK_EQ_INT(fl_plot_roc(fl_test_path("roc2.png"), &c, names, K - 1, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_plot_roc(fl_test_path("nodir/roc.png"), &c, names, K, &err), FL_EIO);
    fl_curves_destroy(&c);

    /* The generic plotter: auto ranges, NaN gaps, markers, an empty and a one-point series. */
    double xs[6] = {1, 2, 3, NAN, 5, 6}, ys[6] = {0.9, 0.7, 0.65, 0.5, 0.45, 0.44};
    double one = 3;
    fl_plot_series s[3] = {
        {.name = "loss", .x = xs, .y = ys, .n = 6, .color = 0, .markers = 1},
        {.name = "empty", .n = 0, .color = 1},
        {.name = "one", .x = &one, .y = &one, .n = 1, .color = 12, .markers = 1},
    };
    fl_plot_spec spec = {
        .title = "Loss", .xlabel = "Round", .ylabel = "Loss", .width = 640, .height = 400};
    CHECK_OK(fl_plot_lines(fl_test_path("loss.png"), &spec, s, 3, &err), &err);
    check_png(fl_test_path("loss.png"), 640, 400);
    spec.width = 100;
    CHECK_EQ_INT(fl_plot_lines(fl_test_path("bad.png"), &spec, s, 3, &err), FL_EINVAL);
    spec.width = 0;
    s[0].x = NULL;
    CHECK_EQ_INT(fl_plot_lines(fl_test_path("bad.png"), &spec, s, 1, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* --dump DIR [B]                                                                              */

static void put(FILE *f, const char *key, int k, int j, double v) {
    if (isnan(v))
        fprintf(f, "%s,%d,%d,nan\n", key, k, j);
    else if (isinf(v))
        fprintf(f, "%s,%d,%d,%s\n", key, k, j, v > 0 ? "inf" : "-inf");
    else
        fprintf(f, "%s,%d,%d,%.17g\n", key, k, j, v);
}

/* Frees cairo's and fontconfig's process-wide font caches so that LeakSanitizer reports only
 * our leaks. fontconfig comes in through cairo (the tests do not link it): found at run time. */
static void release_font_caches(void) {
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini) fc_fini();
}

static int dump(const char *d, int B) {
    char path[1024], line[65536];
    snprintf(path, sizeof path, "%s/input.csv", d);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof line, f)) {
        fprintf(stderr, "test_metrics --dump: cannot read %s\n", path);
        if (f) fclose(f);
        return 1;
    }
    static char names_buf[FL_MAX_CLASSES][64];
    const char *names[FL_MAX_CLASSES];
    int K = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *tok = strtok(line, ","); tok; tok = strtok(NULL, ",")) {
        if (tok == line) continue; /* "label" */
        if (K == FL_MAX_CLASSES) break;
        snprintf(names_buf[K], sizeof names_buf[K], "%s", tok);
        names[K] = names_buf[K];
        K++;
    }
    int n = 0, cap = 1024;
    float *p = malloc((size_t)cap * K * sizeof *p);
    int32_t *y = malloc((size_t)cap * sizeof *y);
    while (p && y && fgets(line, sizeof line, f)) {
        if (line[0] == '\n' || line[0] == '\0') continue;
        if (n == cap) {
            cap *= 2;
            p = realloc(p, (size_t)cap * K * sizeof *p);
            y = realloc(y, (size_t)cap * sizeof *y);
            if (!p || !y) break;
        }
        char *e = line;
        y[n] = (int32_t)strtol(e, &e, 10);
        for (int k = 0; k < K; k++) {
            if (*e != ',') {
                fprintf(stderr, "test_metrics --dump: %s: row %d is short\n", path, n + 1);
                fclose(f);
                return 1;
            }
            p[(size_t)n * K + k] = strtof(e + 1, &e);
        }
        n++;
    }
    fclose(f);
    if (!p || !y) {
        fprintf(stderr, "test_metrics --dump: out of memory\n");
        return 1;
    }

    fl_err err = {{0}};
    fl_metrics m;
    fl_metrics_curves c;
    fl_score_hist h, part;
    fl_status s = fl_metrics_compute(p, y, n, K, &m, &err);
    if (s == FL_OK) s = fl_curves_compute(p, y, n, K, &c, &err);
    if (s == FL_OK) s = fl_score_hist_init(&h, K, B, &err);
    for (int lo = 0; s == FL_OK && lo < n; lo += n / 3 + 1) { /* three "sites", merged */
        int cnt = n - lo < n / 3 + 1 ? n - lo : n / 3 + 1;
        s = fl_score_hist_init(&part, K, B, &err);
        if (s == FL_OK) s = fl_score_hist_add(&part, p + (size_t)lo * K, y + lo, cnt, &err);
        if (s == FL_OK) s = fl_score_hist_merge(&h, &part, &err);
        fl_score_hist_destroy(&part);
    }
    if (s != FL_OK) {
        fprintf(stderr, "test_metrics --dump: %s: %s\n", fl_status_str(s), err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/out.csv", d);
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "test_metrics --dump: cannot write %s\n", path);
        return 1;
    }
    fprintf(f, "key,k,j,value\n");
    for (int k = 0; k < K; k++) {
        put(f, "auc", k, 0, m.auc[k]);
        put(f, "ap", k, 0, m.ap[k]);
        put(f, "hist_auc", k, 0, fl_hist_auc(&h, k));
        put(f, "hist_ap", k, 0, fl_hist_ap(&h, k));
        const fl_class_curves *cc = &c.cls[k];
        put(f, "curve_auc", k, 0, cc->auc);
        put(f, "curve_ap", k, 0, cc->ap);
        for (int j = 0; j < cc->n_roc; j++) {
            put(f, "roc_fpr", k, j, cc->fpr[j]);
            put(f, "roc_tpr", k, j, cc->tpr[j]);
            put(f, "roc_thr", k, j, cc->roc_thr[j]);
        }
        for (int j = 0; j < cc->n_pr; j++) {
            put(f, "pr_precision", k, j, cc->precision[j]);
            put(f, "pr_recall", k, j, cc->recall[j]);
            if (j + 1 < cc->n_pr) put(f, "pr_thr", k, j, cc->pr_thr[j]);
        }
        for (int j = 0; j < K; j++) put(f, "confusion", k, j, (double)m.confusion[k * K + j]);
    }
    put(f, "macro_auc", 0, 0, m.macro_auc);
    put(f, "macro_ap", 0, 0, m.macro_ap);
    put(f, "accuracy", 0, 0, m.accuracy);
    int bad = fclose(f) != 0;

    /* The reports and charts, for a look (check_metrics_sklearn.sh keeps them on request). */
    char **ids = calloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; ids && i < n; i++) {
        ids[i] = malloc(24);
        if (ids[i]) snprintf(ids[i], 24, "P%05d", i);
    }
    snprintf(path, sizeof path, "%s/predictions.csv", d);
    if (!ids) s = FL_ENOMEM;
    if (s == FL_OK)
        s = fl_write_predictions_csv(path, (const char *const *)ids, y, names, p, n, K, &err);
    snprintf(path, sizeof path, "%s/metrics.json", d);
    if (s == FL_OK) s = fl_write_metrics_json(path, &m, names, K, "\"source\": \"dump\"", &err);
    snprintf(path, sizeof path, "%s/roc.png", d);
    if (s == FL_OK) s = fl_plot_roc(path, &c, names, K, &err);
    snprintf(path, sizeof path, "%s/pr.png", d);
    if (s == FL_OK) s = fl_plot_pr(path, &c, names, K, &err);
    if (s != FL_OK) fprintf(stderr, "test_metrics --dump: %s: %s\n", fl_status_str(s), err.msg);
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    fl_metrics_destroy(&m);
    fl_curves_destroy(&c);
    fl_score_hist_destroy(&h);
    free(p);
    free(y);
    release_font_caches();
    return bad || s != FL_OK;
}

/* Noised (real-valued) histograms: the sum of two sites' noised counts, with the merged bins
 * clamped at 0, gives the metrics of the integer histogram whose counts are those clamped sums;
 * with whole non-negative counts they are fl_hist_auc / fl_hist_ap exactly. */
static void test_histd(void) {
    enum { K = 2, B = 8 };
    fl_err err = {{0}};
    /* site 1 and site 2, each K x 2 x B; noise that leaves negative and fractional counts */
    double s1[K * 2 * B], s2[K * 2 * B];
    fl_score_hist clamped;
    CHECK_OK(fl_score_hist_init(&clamped, K, B, &err), &err);
    unsigned x = 777;
    for (int i = 0; i < K * 2 * B; i++) {
        x = x * 1103515245u + 12345u;
        int want = (int)((x >> 16) % 7) - 2; /* the merged sum: -2 .. 4, so some clamp to 0 */
        double noise = ((double)((x >> 8) % 1000) - 500) / 100; /* -5 .. 5, split over two */
        s1[i] = 0.5 * want + noise;
        s2[i] = 0.5 * want - noise;
        clamped.counts[i] = want > 0 ? (uint64_t)want : 0;
    }
    fl_score_histd h;
    CHECK_OK(fl_score_histd_init(&h, K, B, &err), &err);
    CHECK_OK(fl_score_histd_add(&h, s1, &err), &err);
    CHECK_OK(fl_score_histd_add(&h, s2, &err), &err);
    int negative = 0;
    for (int i = 0; i < K * 2 * B; i++) negative += h.counts[i] < -0.5;
    CHECK(negative > 0); /* the clamp is exercised */
    for (int k = 0; k < K; k++) {
        CHECK_CLOSE(fl_histd_auc(&h, k), fl_hist_auc(&clamped, k), 0, 1e-12);
        CHECK_CLOSE(fl_histd_ap(&h, k), fl_hist_ap(&clamped, k), 0, 1e-12);
        CHECK(!isnan(fl_histd_auc(&h, k)));
    }
    /* a non-finite count is refused and changes nothing */
    double before = h.counts[3];
    s1[5] = NAN;
    CHECK_EQ_INT(fl_score_histd_add(&h, s1, &err), FL_EINVAL);
    CHECK(h.counts[3] == before);
    /* fractional counts: a positive of weight 0.5 above a negative of weight 2 ranks perfectly */
    fl_score_histd f;
    CHECK_OK(fl_score_histd_init(&f, 1, 2, &err), &err);
    double one[4] = {2.0, -1.0, -0.3, 0.5}; /* neg bins 0, 1; pos bins 0, 1 */
    CHECK_OK(fl_score_histd_add(&f, one, &err), &err);
    CHECK_CLOSE(fl_histd_auc(&f, 0), 1.0, 0, 1e-12);
    CHECK_CLOSE(fl_histd_ap(&f, 0), 1.0, 0, 1e-12);
    /* all clamped away: undefined */
    double gone[4] = {-1, -1, -2, 0};
    fl_score_histd_destroy(&f);
    CHECK_OK(fl_score_histd_init(&f, 1, 2, &err), &err);
    CHECK_OK(fl_score_histd_add(&f, gone, &err), &err);
    CHECK(isnan(fl_histd_auc(&f, 0)) && isnan(fl_histd_ap(&f, 0)));
    CHECK(isnan(fl_histd_auc(&f, 1)));
    fl_score_histd_destroy(&f);
    /* a refused init leaves the histogram empty (destroyable) */
    CHECK_EQ_INT(fl_score_histd_init(&f, 1, 0, &err), FL_EINVAL);
    CHECK(f.counts == NULL);
    fl_score_histd_destroy(&f);
    fl_score_histd_destroy(&h);
    fl_score_histd_destroy(NULL);
    fl_score_hist_destroy(&clamped);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2], argc >= 4 ? atoi(argv[3]) : 20);

    if (!fl_test_mkdtemp("fl_test_metrics.")) return 1;
    test_sklearn_example();
    test_ties();
    test_missing_class();
    test_errors();
    test_hist();
    test_histd();
    test_reports();
    test_plots();
    release_font_caches();
    if (getenv("FL_KEEP_TEST_FILES")) {
        printf("test_metrics: files kept in %s\n", fl_test_dir);
    } else {
        fl_test_rmtree(fl_test_dir);
    }
    return fl_test_summary("test_metrics");
}
