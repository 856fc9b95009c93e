/* evaluate.c - scores a split's patients with an RNet or MMLM model file and writes the
 * metrics, the predictions they were computed from, and ROC / PR plots. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../eval/metrics.h"
#include "../eval/plot.h"
#include "../eval/report.h"
#include "internal.h"

/* The model's classes must be the cohort's, in the same order. */
static fl_status check_classes(const fl_pipeline_info *info, const fl_cohort *c, const char *model,
                               const char *cohort, fl_err *err) {
    int same = info->n_classes == c->n_classes;
    for (int k = 0; same && k < c->n_classes; k++)
        same = strcmp(info->class_names[k], c->class_names[k]) == 0;
    if (!same)
        return fl_fail(err, FL_EINVAL,
                       "%s was trained on classes different from %s's (%d vs %d, "
                       "or another order)",
                       model, cohort, info->n_classes, c->n_classes);
    return FL_OK;
}

static fl_status score_image(const fl_eval_config *cfg, const fl_cohort *c, fl_cohort_file *f,
                             const uint8_t *want, float *probs, uint8_t *has, fl_err *err) {
    fl_backend *be;
    fl_model *m;
    fl_model_meta meta;
    fl_status s = fl_load_image_model(cfg->model, 32, cfg->threads, &be, &m, &meta, err);
    if (s != FL_OK) return s;
    if (meta.tile != c->tile)
        s = fl_fail(err, FL_ESHAPE, "%s expects %d-px tiles but %s has %d px", cfg->model,
                    meta.tile, cfg->cohort, c->tile);
    else
        s = fl_image_patient_outputs(m, f, c, want, probs, NULL, has, cfg->quiet, err);
    fl_model_free(m);
    be->destroy(be);
    return s;
}

static fl_status score_fusion(const fl_eval_config *cfg, const fl_pipeline_info *info,
                              const fl_cohort *c, fl_cohort_file *f, const int *rows, int n,
                              float *probs, float *stage_probs, fl_err *err) {
    fl_fusion_inputs in = {0};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_status s = fl_fusion_inputs_load(info, cfg->model, cfg->image_model, c, f, cfg->threads,
                                        cfg->quiet, &in, NULL, NULL, NULL, err);
    if (s == FL_OK) s = fl_fusion_model_load(cfg->model, info, 64, cfg->threads, &be, &m, err);
    if (s == FL_OK) s = fl_fusion_predict(m, &in, rows, n, probs, stage_probs, err);
    fl_model_free(m);
    if (be) be->destroy(be);
    fl_fusion_inputs_destroy(&in);
    return s;
}

/* ,"stage": {...} for the rows with a known stage, appended to metrics.json. */
static fl_status stage_json(const float *stage_probs, const int32_t *stages, int n, int S,
                            char *out, size_t cap, fl_err *err) {
    float *p = malloc((size_t)n * S * sizeof(float) + 1);
    int32_t *y = malloc((size_t)n * sizeof(int32_t) + 1);
    int m = 0;
    fl_status s = FL_OK;
    if (!p || !y) s = fl_fail(err, FL_ENOMEM, "out of memory");
    for (int i = 0; s == FL_OK && i < n; i++)
        if (stages[i] >= 0 && stages[i] < S) {
            memcpy(p + (size_t)m * S, stage_probs + (size_t)i * S, (size_t)S * sizeof(float));
            y[m++] = stages[i];
        }
    fl_metrics mt;
    if (s == FL_OK && m > 0 && (s = fl_metrics_compute(p, y, m, S, &mt, err)) == FL_OK) {
        snprintf(out, cap, "\"stage\": {\"patients\": %d, \"macro_auc\": ", m);
        if (isnan(mt.macro_auc))
            strncat(out, "null", cap - strlen(out) - 1);
        else
            snprintf(out + strlen(out), cap - strlen(out), "%.9g", mt.macro_auc);
        snprintf(out + strlen(out), cap - strlen(out), ", \"accuracy\": %.9g}", mt.accuracy);
        fl_metrics_destroy(&mt);
    }
    free(p);
    free(y);
    return s;
}

fl_status fl_evaluate(const fl_eval_config *cfg, double *macro_auc, fl_err *err) {
    fl_pipeline_info info;
    fl_cohort c = {0};
    fl_cohort_file *f = NULL;
    float *all = NULL, *probs = NULL, *stage_probs = NULL;
    uint8_t *want = NULL, *has = NULL;
    int *rows = NULL;
    int32_t *labels = NULL, *stages = NULL;
    const char **ids = NULL;
    fl_metrics mt = {0};
    fl_metrics_curves curves = {0};
    char path[4096], extra[512] = "";
    fl_status s = fl_pipeline_read(cfg->model, &info, err);
    if (s != FL_OK) return s;
    if ((s = fl_cohort_open(&f, &c, cfg->cohort, err)) != FL_OK) goto done;
    if ((s = check_classes(&info, &c, cfg->model, cfg->cohort, err)) != FL_OK) goto done;
    if (mkdir(cfg->outdir, 0777) != 0 && errno != EEXIST) {
        s = fl_fail(err, FL_EIO, "%s: cannot create the output folder: %s", cfg->outdir,
                    strerror(errno));
        goto done;
    }
    int K = c.n_classes, n = 0, S = info.stages;
    want = calloc((size_t)c.P + 1, 1);
    has = calloc((size_t)c.P + 1, 1);
    rows = malloc((size_t)c.P * sizeof(int) + 1);
    all = malloc((size_t)c.P * K * sizeof(float) + 1);
    probs = malloc((size_t)c.P * K * sizeof(float) + 1);
    stage_probs = malloc((size_t)c.P * (S ? S : 1) * sizeof(float) + 1);
    labels = malloc((size_t)c.P * sizeof(int32_t) + 1);
    stages = malloc((size_t)c.P * sizeof(int32_t) + 1);
    ids = malloc((size_t)c.P * sizeof(char *) + 1);
    if (!want || !has || !rows || !all || !probs || !stage_probs || !labels || !stages || !ids) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (fl_split_mask(&c, cfg->split, want) == 0) {
        s = fl_fail(err, FL_EINVAL, "%s: no patients in the %s split", cfg->cohort,
                    fl_split_name(cfg->split));
        goto done;
    }
    if (strcmp(info.kind, "image") == 0) {
        if ((s = score_image(cfg, &c, f, want, all, has, err)) != FL_OK) goto done;
        for (int p = 0; p < c.P; p++)
            if (want[p] && has[p]) {
                memcpy(probs + (size_t)n * K, all + (size_t)p * K, (size_t)K * sizeof(float));
                rows[n++] = p;
            }
    } else {
        for (int p = 0; p < c.P; p++)
            if (want[p]) rows[n++] = p;
        if ((s = score_fusion(cfg, &info, &c, f, rows, n, probs, S ? stage_probs : NULL, err)) !=
            FL_OK)
            goto done;
    }
    if (n == 0) {
        s = fl_fail(err, FL_EINVAL, "%s: no %s patient has tiles to score", cfg->cohort,
                    fl_split_name(cfg->split));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        labels[i] = c.label[rows[i]];
        stages[i] = c.stage[rows[i]];
        ids[i] = c.id[rows[i]];
    }
    /* predictions.csv prints each float with 9 significant digits, which reads back as the same
     * float: metrics.json is computed from exactly the numbers in the file. */
    if (S && (s = stage_json(stage_probs, stages, n, S, extra, sizeof extra, err)) != FL_OK)
        goto done;
    const char *const *names = (const char *const *)c.class_names;
    snprintf(path, sizeof path, "%s/predictions.csv", cfg->outdir);
    if ((s = fl_write_predictions_csv(path, ids, labels, names, probs, n, K, err)) != FL_OK)
        goto done;
    if ((s = fl_metrics_compute(probs, labels, n, K, &mt, err)) != FL_OK) goto done;
    snprintf(path, sizeof path, "%s/metrics.json", cfg->outdir);
    if ((s = fl_write_metrics_json(path, &mt, names, K, extra[0] ? extra : NULL, err)) != FL_OK)
        goto done;
    if ((s = fl_curves_compute(probs, labels, n, K, &curves, err)) != FL_OK) goto done;
    snprintf(path, sizeof path, "%s/roc.png", cfg->outdir);
    if ((s = fl_plot_roc(path, &curves, names, K, err)) != FL_OK) goto done;
    snprintf(path, sizeof path, "%s/pr.png", cfg->outdir);
    if ((s = fl_plot_pr(path, &curves, names, K, err)) != FL_OK) goto done;
    if (macro_auc) *macro_auc = mt.macro_auc;
    if (!cfg->quiet) {
        fprintf(stderr, "eval: %d %s patients, macro AUC %.4f, macro AP %.4f, accuracy %.4f\n", n,
                fl_split_name(cfg->split), mt.macro_auc, mt.macro_ap, mt.accuracy);
    }
done:
    fl_metrics_destroy(&mt);
    fl_curves_destroy(&curves);
    fl_pipeline_info_destroy(&info);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    free(all);
    free(probs);
    free(stage_probs);
    free(want);
    free(has);
    free(rows);
    free(labels);
    free(stages);
    free(ids);
    return s;
}
