/* explain_umap.c - UMAP of patient embeddings: runs the fusion model for its "fused" vectors and
 * the image model for mean tile embeddings, lays each set out with eval/umap.c and writes a CSV
 * and two scatter plots (by class, by site) per set. Not a report: reading the plots is the
 * user's (docs/explain.md). */
#include "explain_umap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/atomic.h"
#include "../eval/plot.h"
#include "../nn/npy.h"
#include "internal.h"

static fl_status make_dir(const char *dir, fl_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return fl_fail(err, FL_EIO, "%s: cannot create the output folder: %s", dir,
                       strerror(errno));
    return FL_OK;
}

/* s as one CSV field, quoted (quotes doubled) when it holds a comma, quote or line break. */
static void csv_text(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One row of n labels per point: "row" (or the ids, classes and sites of cohort patients) and
 * the dim coordinates. co and rows NULL: plain row numbers. */
static fl_status write_csv(const char *path, const fl_cohort *co, const int *rows, const float *Y,
                           int n, int dim, fl_err *err) {
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    fputs(co ? "patient_id,label,site" : "row", af.f);
    for (int d = 0; d < dim; d++)
        if (dim == 2)
            fputs(d ? ",y" : ",x", af.f);
        else
            fprintf(af.f, ",u%d", d + 1);
    fputc('\n', af.f);
    for (int i = 0; i < n; i++) {
        if (co) {
            int p = rows[i];
            csv_text(af.f, co->id[p]);
            fputc(',', af.f);
            csv_text(af.f, co->class_names[co->label[p]]);
            fputc(',', af.f);
            csv_text(af.f, co->site_names[co->site[p]]);
        } else {
            fprintf(af.f, "%d", i);
        }
        for (int d = 0; d < dim; d++) fprintf(af.f, ",%.9g", Y[(size_t)i * dim + d]);
        fputc('\n', af.f);
    }
    return fl_atomic_commit(&af, err);
}

/* A scatter of the n points Y (n x 2) with one series (and colour) per group, group[i] in
 * [0, G); empty groups are left out of the legend. */
static fl_status plot_groups(const char *path, const char *title, const float *Y,
                             const int32_t *group, int n, int G, char *const *names, fl_err *err) {
    double *x = malloc((size_t)n * sizeof(double) + 1), *y = malloc((size_t)n * sizeof(double) + 1);
    fl_plot_series *series = calloc((size_t)G + 1, sizeof(fl_plot_series));
    fl_status s = FL_OK;
    if (!x || !y || !series) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for %s", path);
        goto done;
    }
    int at = 0, used = 0;
    for (int g = 0; g < G; g++) { /* the points grouped, each group contiguous */
        int start = at;
        for (int i = 0; i < n; i++)
            if (group[i] == g) {
                x[at] = Y[(size_t)i * 2];
                y[at++] = Y[(size_t)i * 2 + 1];
            }
        if (at > start)
            series[used++] = (fl_plot_series){
                .name = names[g], .x = x + start, .y = y + start, .n = at - start, .color = g};
    }
    fl_plot_spec spec = {.title = title,
                         .xlabel = "UMAP 1",
                         .ylabel = "UMAP 2",
                         .width = 960,
                         .height = 700,
                         .legend = FL_LEGEND_OUTSIDE};
    s = fl_plot_scatter(path, &spec, series, used, err);
done:
    free(x);
    free(y);
    free(series);
    return s;
}

/* UMAP of one embedding set (X: n x D, for cohort patients rows[]) and its files
 * outdir/umap_<set>.csv, umap_<set>_class.png, umap_<set>_site.png. */
static fl_status embed_and_write(const fl_umap_explain_config *c, const fl_cohort *co,
                                 const char *set, const char *what, const int *rows, const float *X,
                                 int n, int D, fl_err *err) {
    float *Y = malloc((size_t)n * 2 * sizeof(float));
    int32_t *group = malloc((size_t)n * sizeof(int32_t) + 1);
    char path[4096], title[256], scope[64];
    fl_status s = FL_OK;
    if (!Y || !group) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the UMAP of %d patients", n);
        goto done;
    }
    if (!c->umap.quiet) fprintf(stderr, "umap: %s embeddings of %d patients (%d-d)\n", set, n, D);
    if ((s = fl_umap(&c->umap, X, n, D, Y, err)) != FL_OK) goto done;
    int k = n / 2 - 1 < 10 ? n / 2 - 1 : 10; /* trustworthiness needs k < n / 2 */
    double t;
    fl_err ignored;
    if (!c->umap.quiet && k >= 1 && n <= 20000 &&
        fl_trustworthiness(X, D, Y, 2, n, k, c->umap.threads, &t, &ignored) == FL_OK)
        fprintf(stderr, "umap: %s: trustworthiness (k = %d) %.4f\n", set, k, t);
    snprintf(path, sizeof path, "%s/umap_%s.csv", c->outdir, set);
    if ((s = write_csv(path, co, rows, Y, n, 2, err)) != FL_OK) goto done;
    if (c->dump) {
        snprintf(path, sizeof path, "%s/umap_%s_embeddings.npy", c->outdir, set);
        if ((s = fl_npy_write_f32(path, X, 2, (const int64_t[2]){n, D}, err)) != FL_OK) goto done;
    }
    snprintf(scope, sizeof scope, "%s",
             c->split < 0 ? "all splits" : fl_split_name((fl_split)c->split));
    for (int by_site = 0; by_site < 2; by_site++) {
        for (int i = 0; i < n; i++) group[i] = by_site ? co->site[rows[i]] : co->label[rows[i]];
        snprintf(title, sizeof title, "UMAP of %s by %s (%s, %d patients)", what,
                 by_site ? "site" : "class", scope, n);
        snprintf(path, sizeof path, "%s/umap_%s_%s.png", c->outdir, set,
                 by_site ? "site" : "class");
        if ((s = plot_groups(path, title, Y, group, n, by_site ? co->n_sites : co->n_classes,
                             by_site ? co->site_names : co->class_names, err)) != FL_OK)
            goto done;
    }
    if (!c->umap.quiet)
        fprintf(stderr, "umap: wrote %s/umap_%s.csv and its plots\n", c->outdir, set);
done:
    free(Y);
    free(group);
    return s;
}

/* The fused embeddings of the n patients rows[] (n x hidden into *X, *D = hidden). */
static fl_status fused_embeddings(const fl_umap_explain_config *c, const fl_pipeline_info *info,
                                  const fl_fusion_inputs *in, const int *rows, int n, float **X,
                                  int *D, fl_err *err) {
    fl_backend *be;
    fl_model *m;
    fl_status s = fl_fusion_model_load(c->model, info, 64, c->umap.threads, &be, &m, err);
    if (s != FL_OK) return s;
    *D = info->hidden;
    if (!(*X = malloc((size_t)n * *D * sizeof(float) + 1)))
        s = fl_fail(err, FL_ENOMEM, "out of memory for %d fused embeddings", n);
    else
        s = fl_fusion_embed(m, in, rows, n, *X, err);
    fl_model_free(m);
    be->destroy(be);
    return s;
}

fl_status fl_explain_umap(const fl_umap_explain_config *c, fl_err *err) {
    if (c->umap.n_components != 2)
        return fl_fail(err, FL_EINVAL, "the UMAP plots need 2 components, not %d",
                       c->umap.n_components);
    fl_pipeline_info info = {0};
    fl_cohort co = {0};
    fl_cohort_file *f = NULL;
    fl_fusion_inputs in = {0};
    float *emb = NULL, *X = NULL;
    uint8_t *has = NULL, *want = NULL;
    int *rows = NULL, E = 0, D = 0, n = 0, threads = c->umap.threads, quiet = c->umap.quiet;
    fl_status s = fl_pipeline_read(c->model, &info, err);
    if (s != FL_OK) return s;
    int fusion = strcmp(info.kind, "fusion") == 0;
    if ((s = fl_cohort_open(&f, &co, c->cohort, err)) != FL_OK) goto done;
    if ((s = make_dir(c->outdir, err)) != FL_OK) goto done;
    want = calloc((size_t)co.P + 1, 1);
    rows = malloc((size_t)co.P * sizeof(int) + 1);
    if (!want || !rows) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (c->split < 0)
        memset(want, 1, (size_t)co.P);
    else if (fl_split_mask(&co, (fl_split)c->split, want) == 0) {
        s = fl_fail(err, FL_EINVAL, "%s: no patients in the %s split", c->cohort,
                    fl_split_name((fl_split)c->split));
        goto done;
    }
    const char *image_path = c->image_model ? c->image_model : fusion ? NULL : c->model;
    if (fusion) {
        if ((s = fl_fusion_inputs_load(&info, c->model, c->image_model, &co, f, threads, quiet, &in,
                                       &emb, &E, &has, err)) != FL_OK)
            goto done;
        for (int p = 0; p < co.P; p++)
            if (want[p]) rows[n++] = p;
        if ((s = fused_embeddings(c, &info, &in, rows, n, &X, &D, err)) != FL_OK) goto done;
        fl_fusion_inputs_destroy(&in);
        if ((s = embed_and_write(c, &co, "fused", "fused MMLM embeddings", rows, X, n, D, err)) !=
            FL_OK)
            goto done;
        if (!emb && !image_path && info.image_model[0]) image_path = info.image_model;
    }
    if (!emb && image_path) {
        char sha[65];
        fl_compute cpu = FL_COMPUTE_CPU(threads);
        if ((s = fl_image_embeddings(image_path, &co, f, &cpu, quiet, &emb, &E, &has, sha, err)) !=
            FL_OK)
            goto done;
    }
    if (!emb) {
        if (!quiet) fprintf(stderr, "umap: no image model, so no image-only embeddings\n");
        goto done;
    }
    free(X);
    if (!(X = malloc((size_t)co.P * E * sizeof(float) + 1))) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for %d image embeddings", co.P);
        goto done;
    }
    n = 0;
    for (int p = 0; p < co.P; p++)
        if (want[p] && has[p]) {
            memcpy(X + (size_t)n * E, emb + (size_t)p * E, (size_t)E * sizeof(float));
            rows[n++] = p;
        }
    if (n == 0) {
        s = fl_fail(err, FL_EINVAL, "%s: no patient of the %s has tiles to embed", c->cohort,
                    c->split < 0 ? "cohort" : fl_split_name((fl_split)c->split));
        goto done;
    }
    s = embed_and_write(c, &co, "image", "RNet image embeddings", rows, X, n, E, err);
done:
    fl_fusion_inputs_destroy(&in);
    fl_pipeline_info_destroy(&info);
    fl_cohort_close(f);
    fl_cohort_destroy(&co);
    free(emb);
    free(has);
    free(want);
    free(rows);
    free(X);
    return s;
}

fl_status fl_explain_umap_npy(const char *input, const char *outdir, const fl_umap_config *u,
                              fl_err *err) {
    float *X = NULL, *Y = NULL;
    int ndim;
    int64_t shape[4];
    char path[4096];
    fl_status s = fl_npy_read_f32(input, &X, &ndim, shape, err);
    if (s != FL_OK) return s;
    if (ndim != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] > (1 << 30) || shape[1] > (1 << 30)) {
        s = fl_fail(err, FL_ESHAPE, "%s: expected a 2-d array (points x features), not %d-d", input,
                    ndim);
        goto done;
    }
    int n = (int)shape[0], D = (int)shape[1];
    if (!(Y = malloc((size_t)n * u->n_components * sizeof(float)))) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the UMAP of %d points", n);
        goto done;
    }
    if ((s = make_dir(outdir, err)) != FL_OK) goto done;
    if ((s = fl_umap(u, X, n, D, Y, err)) != FL_OK) goto done;
    snprintf(path, sizeof path, "%s/umap.csv", outdir);
    s = write_csv(path, NULL, NULL, Y, n, u->n_components, err);
done:
    free(X);
    free(Y);
    return s;
}
