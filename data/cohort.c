/* cohort.c - the cohort's shared pieces: names, freeing, tile hyperslabs and the checks of what
 * a cohort promises (ranges, unique ids, one split per case), applied both before writing and
 * after reading. The file layout lives in cohort_read.c and cohort_write.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort_impl.h"

const char *const fl__omics_features[FL_N_OMICS] = {"genes", "probes", "columns"};

const char *fl_omics_name(fl_omics m) {
    switch (m) {
    case FL_MOD_RNA:
        return "rna";
    case FL_MOD_METHYLATION:
        return "methylation";
    case FL_MOD_CLINICAL:
        return "clinical";
    default:
        return "unknown";
    }
}

const char *fl_split_name(fl_split s) {
    switch (s) {
    case FL_SPLIT_TRAIN:
        return "train";
    case FL_SPLIT_VAL:
        return "val";
    case FL_SPLIT_TEST:
        return "test";
    default:
        return "unknown";
    }
}

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void fl_cohort_destroy(fl_cohort *c) {
    if (!c) return;
    free_strings(c->id, c->P);
    free_strings(c->case_id, c->P);
    free(c->site);
    free(c->label);
    free(c->stage);
    free(c->split);
    free_strings(c->class_names, c->n_classes);
    free_strings(c->site_names, c->n_sites);
    for (int m = 0; m < FL_N_OMICS; m++) {
        fl_omics_matrix *o = &c->omics[m];
        free_strings(o->features, o->F);
        free(o->values);
        free(o->present);
        free(o->encoding);
    }
    free(c->tile_patient);
    free(c->provenance);
    memset(c, 0, sizeof *c);
}

herr_t fl__tiles_io(hid_t pixels, int64_t start, int64_t count, int tile, void *into,
                    const void *from) {
    hsize_t off[4] = {(hsize_t)start, 0, 0, 0};
    hsize_t n[4] = {(hsize_t)count, (hsize_t)tile, (hsize_t)tile, 3};
    hid_t fs = H5Dget_space(pixels), ms = H5Screate_simple(4, n, NULL);
    herr_t r = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, n, NULL) >= 0)
        r = into ? H5Dread(pixels, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, into)
                 : H5Dwrite(pixels, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, from);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* checks                                                                                      */

static int keyed_cmp(const void *a, const void *b) {
    const fl__keyed *x = a, *y = b;
    int r = strcmp(x->s, y->s);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

void fl__sort_keyed(fl__keyed *k, char *const *s, int P) {
    for (int i = 0; i < P; i++) k[i] = (fl__keyed){s[i], i};
    qsort(k, (size_t)P, sizeof *k, keyed_cmp);
}

static fl_status check_names(char *const *names, int n, const char *path, const char *dset,
                             fl_err *err) {
    if (n > 0 && !names)
        return fl_fail(err, FL_EINVAL, "%s: %s: the names are missing", path, dset);
    for (int i = 0; i < n; i++)
        if (!names[i])
            return fl_fail(err, FL_EINVAL, "%s: %s[%d] is missing (NULL)", path, dset, i);
    return FL_OK;
}

static fl_status check_patients(const fl_cohort *c, const char *path, fl_err *err) {
    const int P = c->P;
    for (int p = 0; p < P; p++) {
        if (c->label[p] < 0 || c->label[p] >= c->n_classes)
            return fl_fail(err, FL_EFORMAT,
                           "%s: /patients/label[%d] = %d is out of range (/meta/classes has %d "
                           "names)",
                           path, p, (int)c->label[p], c->n_classes);
        if (c->site[p] < 0 || c->site[p] >= c->n_sites)
            return fl_fail(err, FL_EFORMAT,
                           "%s: /patients/site[%d] = %d is out of range (/meta/sites has %d names)",
                           path, p, (int)c->site[p], c->n_sites);
        if (c->split[p] > FL_SPLIT_TEST)
            return fl_fail(err, FL_EFORMAT,
                           "%s: /patients/split[%d] = %d is not 0 (train), 1 (val) or 2 (test)",
                           path, p, (int)c->split[p]);
        if (c->stage[p] < -1 || c->stage[p] > 3)
            return fl_fail(err, FL_EFORMAT,
                           "%s: /patients/stage[%d] = %d is not -1 (unknown) or 0..3 (stage I..IV)",
                           path, p, (int)c->stage[p]);
    }
    if (P == 0) return FL_OK;

    fl__keyed *k = malloc((size_t)(unsigned)P * sizeof *k);
    if (!k) return fl_fail(err, FL_ENOMEM, "%s: out of memory checking %d patients", path, P);
    fl_status s = FL_OK;
    fl__sort_keyed(k, c->id, P);
    for (int i = 1; i < P && s == FL_OK; i++)
        if (strcmp(k[i - 1].s, k[i].s) == 0)
            s = fl_fail(err, FL_EFORMAT, "%s: /patients/id has \"%s\" twice (entries %d and %d)",
                        path, k[i].s, k[i - 1].i, k[i].i);
    if (s == FL_OK) fl__sort_keyed(k, c->case_id, P);
    /* After sorting by case, each run of equal case ids must share one split. */
    for (int i = 1; i < P && s == FL_OK; i++) {
        int a = k[i - 1].i, b = k[i].i;
        if (strcmp(k[i - 1].s, k[i].s) == 0 && c->split[a] != c->split[b])
            s = fl_fail(err, FL_EFORMAT,
                        "%s: /patients/split puts samples of case \"%s\" in %s (\"%s\", entry %d) "
                        "and %s (\"%s\", entry %d)",
                        path, k[i].s, fl_split_name((fl_split)c->split[a]), c->id[a], a,
                        fl_split_name((fl_split)c->split[b]), c->id[b], b);
    }
    free(k);
    return s;
}

static fl_status check_tiles(const fl_cohort *c, const char *path, fl_err *err) {
    if (c->n_tiles < 0 || c->tile < 0)
        return fl_fail(err, FL_EINVAL, "%s: /tiles: negative tile count %lld or size %d", path,
                       (long long)c->n_tiles, c->tile);
    if (c->n_tiles == 0) return FL_OK;
    if (c->tile == 0)
        return fl_fail(err, FL_EINVAL, "%s: /tiles: %lld tiles but a tile size of 0", path,
                       (long long)c->n_tiles);
    if (!c->tile_patient)
        return fl_fail(err, FL_EINVAL, "%s: /tiles/patient is missing (NULL)", path);
    for (int64_t t = 0; t < c->n_tiles; t++) {
        int32_t p = c->tile_patient[t];
        if (p < 0 || p >= c->P)
            return fl_fail(err, FL_EFORMAT,
                           "%s: /tiles/patient[%lld] = %d is out of range (/patients/id has %d "
                           "entries)",
                           path, (long long)t, (int)p, c->P);
        if (t > 0 && p < c->tile_patient[t - 1])
            return fl_fail(err, FL_EFORMAT,
                           "%s: /tiles/patient[%lld] = %d follows %d (tiles must be grouped by "
                           "patient in patient order)",
                           path, (long long)t, (int)p, (int)c->tile_patient[t - 1]);
    }
    return FL_OK;
}

fl_status fl__cohort_check(const fl_cohort *c, const char *path, fl_err *err) {
    fl_status s;
    if (c->P < 0) return fl_fail(err, FL_EINVAL, "%s: negative patient count %d", path, c->P);
    if (c->n_classes < 1 || c->n_classes > FL_MAX_CLASSES)
        return fl_fail(err, FL_EFORMAT, "%s: /meta/classes has %d names, expected 1 to %d", path,
                       c->n_classes, FL_MAX_CLASSES);
    if (c->n_sites < 0) return fl_fail(err, FL_EINVAL, "%s: negative site count", path);
    if ((s = check_names(c->class_names, c->n_classes, path, "/meta/classes", err)) ||
        (s = check_names(c->site_names, c->n_sites, path, "/meta/sites", err)) ||
        (s = check_names(c->id, c->P, path, "/patients/id", err)) ||
        (s = check_names(c->case_id, c->P, path, "/patients/case", err)))
        return s;
    if (c->P > 0 && (!c->site || !c->label || !c->stage || !c->split))
        return fl_fail(err, FL_EINVAL, "%s: /patients: site, label, stage or split is missing",
                       path);
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *o = &c->omics[m];
        char dset[64];
        if (o->F < 0)
            return fl_fail(err, FL_EINVAL, "%s: /%s: negative feature count %d", path,
                           fl_omics_name((fl_omics)m), o->F);
        if (o->F == 0) continue;
        snprintf(dset, sizeof dset, "/%s/%s", fl_omics_name((fl_omics)m), fl__omics_features[m]);
        if ((s = check_names(o->features, o->F, path, dset, err))) return s;
        if (c->P > 0 && (!o->values || !o->present))
            return fl_fail(err, FL_EINVAL, "%s: /%s: values or present is missing", path,
                           fl_omics_name((fl_omics)m));
        for (int p = 0; p < c->P; p++)
            if (o->present[p] > 1)
                return fl_fail(err, FL_EFORMAT, "%s: /%s/present[%d] = %d is not 0 or 1", path,
                               fl_omics_name((fl_omics)m), p, (int)o->present[p]);
    }
    if ((s = check_patients(c, path, err))) return s;
    return check_tiles(c, path, err);
}
