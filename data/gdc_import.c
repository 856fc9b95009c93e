/* gdc_import.c - `fedlung cohort import`: the sample sheet's samples become cohort entries with
 * classes, sites (TSS codes), splits by case and stage; the RNA, methylation and clinical
 * matrices and the tiles of each sample's slides or tile folder are added, and the cohort is
 * written atomically. Tiles are spooled one slide at a time to an unlinked file beside the
 * output, since the writer needs the tile count up front. Not a parser: see gdc_*.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/atomic.h"
#include "../common/progress.h"
#include "../common/rng.h"
#include "gdc.h"

void fl_gdc_options_default(fl_gdc_options *o) {
    memset(o, 0, sizeof *o);
    o->rna_value = FL_GDC_TPM;
    o->max_probe_missing = 0.2;
    fl_slide_options_default(&o->slide);
    o->split[0] = 70;
    o->split[1] = 15;
    o->split[2] = 15;
    o->seed = 1;
}

static fl_status nomem(const char *what, fl_err *err) {
    return fl_fail(err, FL_ENOMEM, "%s: out of memory", what);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The index of s among n names, or -1. */
static int name_index(char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* Adds s to the n names unless it is there; -1 when out of memory. */
static int add_name(char **names, int *n, const char *s) {
    if (name_index(names, *n, s) >= 0) return 0;
    if (!(names[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* classes, sites, splits                                                                      */

/* --classes "A,B,C" (blanks around names trimmed) into c->class_names. */
static fl_status parse_classes(const char *text, fl_cohort *c, fl_err *err) {
    if (!(c->class_names = calloc(FL_MAX_CLASSES, sizeof *c->class_names)))
        return nomem("--classes", err);
    for (const char *p = text;;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        while (p < end && *p == ' ') p++;
        const char *q = end;
        while (q > p && q[-1] == ' ') q--;
        if (q == p || c->n_classes == FL_MAX_CLASSES)
            return fl_fail(err, FL_EINVAL, "--classes \"%.200s\": %s", text,
                           q == p ? "an empty name" : "more than 64 classes");
        char *name = strndup(p, (size_t)(q - p));
        if (!name) return nomem("--classes", err);
        if (name_index(c->class_names, c->n_classes, name) >= 0) {
            fl_fail(err, FL_EINVAL, "--classes \"%.200s\" names \"%.60s\" twice", text, name);
            free(name);
            return FL_EINVAL;
        }
        c->class_names[c->n_classes++] = name;
        if (!*end) return FL_OK;
        p = end + 1;
    }
}

/* Classes (--classes, or the tumour labels sorted and NORMAL last), labels, sites. */
static fl_status assign_labels(const fl_gdc_options *o, const fl_gdc_sheet *sh, fl_cohort *c,
                               fl_err *err) {
    const int P = sh->n;
    fl_status s;
    if (o->classes) {
        if ((s = parse_classes(o->classes, c, err))) return s;
    } else {
        if (!(c->class_names = calloc((size_t)P + 1, sizeof *c->class_names)))
            return nomem(o->sample_sheet, err);
        int normal = 0;
        for (int p = 0; p < P; p++) {
            if (strcmp(sh->s[p].label, "NORMAL") == 0)
                normal = 1;
            else if (add_name(c->class_names, &c->n_classes, sh->s[p].label) < 0)
                return nomem(o->sample_sheet, err);
        }
        qsort(c->class_names, (size_t)c->n_classes, sizeof *c->class_names, str_cmp);
        if (normal && add_name(c->class_names, &c->n_classes, "NORMAL") < 0)
            return nomem(o->sample_sheet, err);
        if (c->n_classes > FL_MAX_CLASSES)
            return fl_fail(err, FL_EFORMAT, "%s: %d classes; at most %d", o->sample_sheet,
                           c->n_classes, FL_MAX_CLASSES);
    }
    if (!(c->site_names = calloc((size_t)P, sizeof *c->site_names)))
        return nomem(o->sample_sheet, err);
    for (int p = 0; p < P; p++)
        if (add_name(c->site_names, &c->n_sites, sh->s[p].tss) < 0)
            return nomem(o->sample_sheet, err);
    qsort(c->site_names, (size_t)c->n_sites, sizeof *c->site_names, str_cmp);
    for (int p = 0; p < P; p++) {
        const fl_gdc_sample *x = &sh->s[p];
        c->site[p] = name_index(c->site_names, c->n_sites, x->tss);
        if ((c->label[p] = name_index(c->class_names, c->n_classes, x->label)) < 0)
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: sample %s has class \"%.60s\", not one of "
                           "--classes %s",
                           o->sample_sheet, x->line, x->id, x->label, o->classes);
    }
    return FL_OK;
}

/* Splits by case (the samples of a case are neighbours), stratified by the case's class: its
 * first tumour sample's label, else its normal's. Within a class the cases are shuffled
 * (seeded) and case i of n goes to train when (i + 1/2) / n <= w_train / sum(w), else to val
 * when at most (w_train + w_val) / sum(w), else to test. */
static fl_status assign_splits(const fl_gdc_options *o, const fl_gdc_sheet *sh, fl_cohort *c,
                               fl_err *err) {
    const int P = sh->n;
    const long S = (long)o->split[0] + o->split[1] + o->split[2];
    int *first = malloc((size_t)P * sizeof *first), *cls = malloc((size_t)P * sizeof *cls);
    int *order = malloc((size_t)P * sizeof *order), n_cases = 0;
    if (!first || !cls || !order) {
        free(first), free(cls), free(order);
        return nomem(o->sample_sheet, err);
    }
    for (int p = 0; p < P; p++) {
        if (p == 0 || strcmp(sh->s[p].case_id, sh->s[p - 1].case_id) != 0) {
            first[n_cases] = p;
            cls[n_cases++] = c->label[p]; /* tumour types (01-09) sort before normals (11) */
        }
    }
    for (int k = 0; k < c->n_classes; k++) {
        int n = 0;
        for (int i = 0; i < n_cases; i++)
            if (cls[i] == k) order[n++] = i;
        fl_rng rng;
        fl_rng_seed(&rng, fl_mix64(o->seed, 0x6DC0u + (uint64_t)k));
        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(fl_rng_u64(&rng) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < n; i++) {
            long u = (2L * i + 1) * S; /* (i + 1/2) / n compared with w / S, times 2nS */
            uint8_t split = u <= 2L * n * o->split[0]                   ? FL_SPLIT_TRAIN
                            : u <= 2L * n * (o->split[0] + o->split[1]) ? FL_SPLIT_VAL
                                                                        : FL_SPLIT_TEST;
            int ci = order[i], end = ci + 1 < n_cases ? first[ci + 1] : P;
            for (int p = first[ci]; p < end; p++) c->split[p] = split;
        }
    }
    free(first), free(cls), free(order);
    return FL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* modalities                                                                                  */

static fl_status add_omics(const fl_gdc_options *o, const fl_gdc_sheet *sh, fl_cohort *c,
                           int *dropped, fl_err *err) {
    const int P = sh->n;
    char **paths = malloc((size_t)P * sizeof *paths);
    fl_status s = FL_OK;
    if (!paths) return nomem(o->sample_sheet, err);
    for (int p = 0; p < P; p++) paths[p] = sh->s[p].file[FL_GDC_RNA];
    if (o->rna_dir) s = fl_gdc_rna_load(paths, P, o->rna_value, &c->omics[FL_MOD_RNA], err);
    for (int p = 0; p < P; p++) paths[p] = sh->s[p].file[FL_GDC_METHYLATION];
    if (s == FL_OK && o->methylation_dir)
        s = fl_gdc_methylation_load(paths, P, o->max_probe_missing, &c->omics[FL_MOD_METHYLATION],
                                    dropped, err);
    free(paths);
    return s;
}

/* The clinical matrix (the case's row for each sample) and the stage of tumour samples. */
static fl_status add_clinical(const fl_gdc_options *o, const fl_gdc_sheet *sh, fl_cohort *c,
                              fl_err *err) {
    const int P = sh->n, F = FL_GDC_CLINICAL_F;
    fl_gdc_clinical cl;
    fl_omics_matrix *m = &c->omics[FL_MOD_CLINICAL];
    fl_status s = fl_gdc_clinical_read(o->clinical, o->exposure, &cl, &o->warn, err);
    if (s) return s;
    m->F = F;
    m->features = calloc(F, sizeof *m->features);
    m->values = malloc((size_t)P * F * sizeof *m->values);
    m->present = calloc((size_t)P, 1);
    m->encoding = strdup(fl_gdc_clinical_encoding);
    uint8_t *used = calloc((size_t)(cl.n ? cl.n : 1), 1);
    if (!m->features || !m->values || !m->present || !m->encoding || !used) goto nomem;
    for (int j = 0; j < F; j++)
        if (!(m->features[j] = strdup(fl_gdc_clinical_columns[j]))) goto nomem;
    int no_row = 0, unused = 0;
    const char *example = NULL;
    for (int p = 0; p < P; p++) {
        const fl_gdc_case *k = fl_gdc_clinical_find(&cl, sh->s[p].case_id);
        float *row = m->values + (size_t)p * F;
        if (!k) {
            for (int j = 0; j < F; j++) row[j] = NAN;
            if (!no_row++) example = sh->s[p].case_id;
            continue;
        }
        used[k - cl.c] = 1;
        row[0] = k->age;
        row[1] = k->male;
        row[2] = k->never_smoker;
        row[3] = k->pack_years;
        m->present[p] = 1;
        c->stage[p] = sh->s[p].type == 11 ? -1 : k->stage; /* a normal has no tumour stage */
    }
    for (int i = 0; i < cl.n; i++) unused += !used[i];
    if (no_row)
        fl_gdc_warnf(&o->warn,
                     "%s: %d samples have no clinical row for their case (e.g. %s); their "
                     "clinical features are missing",
                     o->clinical, no_row, example);
    if (unused)
        fl_gdc_warnf(&o->warn, "%s: %d cases have no sample in %s and are left out", o->clinical,
                     unused, o->sample_sheet);
    if (cl.exposure_unmatched)
        fl_gdc_warnf(&o->warn, "%s: %d rows are of cases not in %s and are left out", o->exposure,
                     cl.exposure_unmatched, o->clinical);
    free(used);
    fl_gdc_clinical_destroy(&cl);
    return FL_OK;
nomem:
    free(used);
    fl_gdc_clinical_destroy(&cl);
    return nomem(o->clinical, err);
}

static char *provenance(const fl_gdc_options *o, const fl_cohort *c, int dropped) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "fedlung cohort import: sample sheet %s (%d samples)", o->sample_sheet, c->P);
    if (o->rna_dir)
        fprintf(f, "; RNA %s: STAR - Counts %s as log2(x+1), %d genes (gene ids)", o->rna_dir,
                fl_gdc_rna_column(o->rna_value), c->omics[FL_MOD_RNA].F);
    if (o->methylation_dir)
        fprintf(f, "; methylation %s: SeSAMe betas, %d probes (%d dropped, NA in more than %g)",
                o->methylation_dir, c->omics[FL_MOD_METHYLATION].F, dropped, o->max_probe_missing);
    if (o->clinical) fprintf(f, "; clinical %s", o->clinical);
    if (o->exposure) fprintf(f, ", exposure %s", o->exposure);
    if (o->slides_dir)
        fprintf(f, "; slides %s (tile %d px, mpp %g, magnification %g, at most %d per slide)",
                o->slides_dir, o->slide.tile, o->slide.mpp, o->slide.magnification,
                o->slide.max_tiles);
    if (o->tiles_dir) fprintf(f, "; tile folders %s (%d px)", o->tiles_dir, o->slide.tile);
    fprintf(f, "; labels: NORMAL for sample type 11, else %s%s",
            o->label_column ? "column "
            : o->label_rule ? "--label-rule "
                            : "project id without TCGA-",
            o->label_column ? o->label_column
            : o->label_rule ? o->label_rule
                            : "");
    fprintf(f, "; sites: TSS codes; split %d/%d/%d by case, stratified by class, seed %llu",
            o->split[0], o->split[1], o->split[2], (unsigned long long)o->seed);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

fl_status fl_gdc_build(const fl_gdc_options *o, fl_cohort *c, fl_gdc_sheet *sh, fl_err *err) {
    fl_gdc_sheet_options so = {
        o->sample_sheet, {o->rna_dir, o->methylation_dir}, o->label_column, o->label_rule};
    fl_status s;
    int dropped = 0;
    memset(c, 0, sizeof *c);
    memset(sh, 0, sizeof *sh);
    if (!o->sample_sheet || (!o->rna_dir && !o->methylation_dir))
        return fl_fail(err, FL_EINVAL, "a sample sheet and --rna or --methylation are needed");
    if (o->exposure && !o->clinical) return fl_fail(err, FL_EINVAL, "--exposure needs --clinical");
    if (o->slides_dir && o->tiles_dir)
        return fl_fail(err, FL_EINVAL, "--slides and --tiles exclude each other");
    if (!(o->max_probe_missing >= 0 && o->max_probe_missing <= 1))
        return fl_fail(err, FL_EINVAL, "--max-probe-missing %g is not in [0, 1]",
                       o->max_probe_missing);
    if (o->split[0] <= 0 || o->split[1] < 0 || o->split[2] < 0)
        return fl_fail(err, FL_EINVAL, "split weights %d/%d/%d: train must be positive",
                       o->split[0], o->split[1], o->split[2]);
    if ((s = fl_gdc_sheet_read(&so, sh, &o->warn, err))) return s;
    const int P = sh->n;
    c->P = P;
    c->id = calloc((size_t)P, sizeof *c->id);
    c->case_id = calloc((size_t)P, sizeof *c->case_id);
    c->site = malloc((size_t)P * sizeof *c->site);
    c->label = malloc((size_t)P * sizeof *c->label);
    c->stage = malloc((size_t)P * sizeof *c->stage);
    c->split = malloc((size_t)P);
    if (!c->id || !c->case_id || !c->site || !c->label || !c->stage || !c->split) goto nomem;
    for (int p = 0; p < P; p++) {
        if (!(c->id[p] = strdup(sh->s[p].id)) || !(c->case_id[p] = strdup(sh->s[p].case_id)))
            goto nomem;
        c->stage[p] = -1;
    }
    if ((s = assign_labels(o, sh, c, err)) || (s = assign_splits(o, sh, c, err)) ||
        (s = add_omics(o, sh, c, &dropped, err)) ||
        (o->clinical && (s = add_clinical(o, sh, c, err))))
        goto fail;
    if (!(c->provenance = provenance(o, c, dropped))) goto nomem;
    return FL_OK;
nomem:
    s = nomem(o->sample_sheet, err);
fail:
    fl_cohort_destroy(c);
    fl_gdc_sheet_destroy(sh);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* tiles and writing                                                                           */

/* Tiles every matched slide or folder into the spool, one at a time; c->tile_patient and
 * c->n_tiles describe what was spooled. */
static fl_status spool_tiles(const fl_gdc_options *o, const fl_gdc_sheet *sh, fl_cohort *c,
                             FILE *spool, fl_err *err) {
    const int folders = o->tiles_dir != NULL, T = o->slide.tile;
    const char *dir = folders ? o->tiles_dir : o->slides_dir;
    const size_t tb = (size_t)T * T * 3;
    fl_gdc_image *img;
    int n_img;
    int64_t cap = 0;
    fl_status s = fl_gdc_find_images(dir, folders, sh, &img, &n_img, &o->warn, err);
    if (s) return s;
    fl_progress pr;
    fl_progress_begin(&pr, folders ? "reading tile folders" : "tiling slides", n_img, o->quiet);
    for (int i = 0; i < n_img && s == FL_OK; i++) {
        uint8_t *px = NULL;
        fl_tile_coord *coords = NULL;
        int n = 0;
        s = folders ? fl_tile_folder_read(img[i].path, T, &px, &n, err)
                    : fl_slide_tile(img[i].path, &o->slide, &px, &coords, &n, err);
        if (s == FL_OK && n > 0 && fwrite(px, tb, (size_t)n, spool) != (size_t)n)
            s = fl_fail(err, FL_EIO, "cannot spool the tiles of %s beside the output (disk full?)",
                        img[i].path);
        if (s == FL_OK && c->n_tiles + n > cap) {
            int64_t nc = cap ? 2 * cap : 4096;
            while (nc < c->n_tiles + n) nc *= 2;
            int32_t *t = realloc(c->tile_patient, (size_t)nc * sizeof *t);
            if (!t)
                s = nomem(img[i].path, err);
            else
                c->tile_patient = t, cap = nc;
        }
        for (int k = 0; s == FL_OK && k < n; k++) c->tile_patient[c->n_tiles++] = img[i].sample;
        free(px);
        free(coords);
        fl_progress_update(&pr, i + 1);
    }
    if (s == FL_OK)
        fl_progress_end(&pr, "%lld tiles of %d px from %d %s", (long long)c->n_tiles, T, n_img,
                        folders ? "folders" : "slides");
    c->tile = c->n_tiles > 0 ? T : 0;
    fl_gdc_images_free(img, n_img);
    return s;
}

/* Writes c, its tiles read back from the spool in batches. */
static fl_status write_cohort(const fl_cohort *c, FILE *spool, const char *out, fl_err *err) {
    fl_cohort_writer *w = NULL;
    const size_t tb = (size_t)c->tile * c->tile * 3;
    const int64_t batch = 64;
    uint8_t *buf = NULL;
    fl_status s = fl_cohort_writer_begin(&w, c, out, err);
    if (s) return s;
    if (c->n_tiles > 0) {
        if (!(buf = malloc(tb * batch))) s = nomem(out, err);
        if (s == FL_OK && fseek(spool, 0, SEEK_SET) != 0)
            s = fl_fail(err, FL_EIO, "%s: cannot rewind the tile spool", out);
    }
    for (int64_t t = 0; s == FL_OK && t < c->n_tiles; t += batch) {
        int64_t n = c->n_tiles - t < batch ? c->n_tiles - t : batch;
        if (fread(buf, tb, (size_t)n, spool) != (size_t)n)
            s = fl_fail(err, FL_EIO, "%s: cannot read back the tile spool", out);
        else
            s = fl_cohort_write_tiles(w, buf, n, err);
    }
    free(buf);
    if (s == FL_OK) return fl_cohort_writer_commit(w, err);
    fl_cohort_writer_abort(w);
    return s;
}

fl_status fl_gdc_import(const fl_gdc_options *o, const char *out_path, fl_err *err) {
    fl_cohort c;
    fl_gdc_sheet sh;
    FILE *spool = NULL;
    fl_status s = fl_gdc_build(o, &c, &sh, err);
    if (s) return s;
    if (o->slides_dir || o->tiles_dir) {
        char *tmp = NULL;
        if ((s = fl_atomic_tmp_reserve(out_path, &tmp, NULL, err))) goto done;
        spool = fopen(tmp, "w+b");
        unlink(tmp); /* the spool lives as long as the stream, never on disk by name */
        free(tmp);
        if (!spool) {
            s = fl_fail(err, FL_EIO, "%s: cannot open a tile spool beside it", out_path);
            goto done;
        }
        if ((s = spool_tiles(o, &sh, &c, spool, err))) goto done;
    }
    s = write_cohort(&c, spool, out_path, err);
done:
    if (spool) fclose(spool);
    fl_cohort_destroy(&c);
    fl_gdc_sheet_destroy(&sh);
    return s;
}
