/* modelfile.c - the pipeline's section of a model file: group /pipeline beside the tensors,
 * holding the class names and, for MMLM, the modalities, sizes and standardization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atomic.h"
#include "../common/h5.h"
#include "internal.h"

static fl_status write_info(hid_t f, const fl_pipeline_info *in, const char *path, fl_err *err) {
    fl_status s;
    hid_t g = H5Gcreate2(f, "pipeline", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return fl_fail(err, FL_EIO, "%s: cannot create group /pipeline", path);
    char *classes[FL_MAX_CLASSES];
    for (int k = 0; k < in->n_classes; k++) classes[k] = (char *)in->class_names[k];
    if ((s = fl_h5_set_str(g, "kind", in->kind, path, err)) ||
        (s = fl_h5_write_strings(g, "classes", classes, in->n_classes, path, err)) ||
        (s = fl_h5_set_double(g, "val_macro_auc", in->val_macro_auc, path, err)) ||
        (s = fl_h5_set_int(g, "best_epoch", in->best_epoch, path, err)))
        goto done;
    if (strcmp(in->kind, "fusion") == 0) {
        if ((s = fl_h5_set_int(g, "enc_dim", in->enc_dim, path, err)) ||
            (s = fl_h5_set_int(g, "hidden", in->hidden, path, err)) ||
            (s = fl_h5_set_int(g, "stages", in->stages, path, err)) ||
            (s = fl_h5_set_double(g, "dropout", in->dropout, path, err)) ||
            (s = fl_h5_set_str(g, "image_model", in->image_model, path, err)) ||
            (s = fl_h5_set_str(g, "image_sha256", in->image_sha256, path, err)))
            goto done;
        char *mods[4];
        for (int i = 0; i < in->n_modalities; i++) mods[i] = (char *)in->modalities[i];
        if ((s = fl_h5_write_strings(g, "modalities", mods, in->n_modalities, path, err)))
            goto done;
        for (int i = 0; i < in->n_modalities; i++) {
            const fl_standardizer *st = &in->std[i];
            hid_t mg = H5Gcreate2(g, in->modalities[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            hsize_t dims[1] = {(hsize_t)st->n};
            s = mg < 0 ? fl_fail(err, FL_EIO, "%s: cannot create /pipeline/%s", path,
                                 in->modalities[i])
                       : FL_OK;
            if (!s) s = fl_h5_write_strings(mg, "features", st->names, st->n, path, err);
            if (!s) s = fl_h5_write_f32(mg, "mean", st->mean, 1, dims, path, err);
            if (!s) s = fl_h5_write_f32(mg, "std", st->std, 1, dims, path, err);
            if (!s) s = fl_h5_set_int(mg, "mvalue", st->mvalue, path, err);
            if (mg >= 0) H5Gclose(mg);
            if (s) goto done;
        }
    }
done:
    H5Gclose(g);
    return s;
}

fl_status fl_pipeline_save(fl_model *m, const fl_model_meta *meta, const fl_pipeline_info *info,
                           const char *path, fl_err *err) {
    /* Tensors, then the pipeline section, into a temporary file that replaces path at the end. */
    char *tmp = NULL;
    fl_status s = fl_atomic_tmp_reserve(path, &tmp, NULL, err);
    if (s != FL_OK) return s;
    if ((s = fl_checkpoint_save(m, meta, tmp, err)) == FL_OK) {
        hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) {
            s = fl_fail(err, FL_EIO, "%s: cannot reopen to add the pipeline section", tmp);
        } else {
            s = write_info(f, info, path, err);
            if (H5Fclose(f) < 0 && s == FL_OK) s = fl_fail(err, FL_EIO, "%s: cannot close", tmp);
        }
    }
    if (s == FL_OK)
        s = fl_atomic_tmp_commit(tmp, path, err);
    else
        fl_atomic_tmp_remove(tmp);
    free(tmp);
    return s;
}

/* An integer attribute into an int; *out is untouched on failure. */
static fl_status get_int(hid_t g, const char *name, int *out, const char *path, fl_err *err) {
    int64_t v = 0;
    fl_status s = fl_h5_get_int(g, name, &v, path, err);
    if (s == FL_OK) *out = (int)v;
    return s;
}

static fl_status read_modality(hid_t g, const char *name, fl_standardizer *st, const char *path,
                               fl_err *err) {
    hid_t mg = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Gopen2(g, name, H5P_DEFAULT) : -1;
    if (mg < 0) return fl_fail(err, FL_EFORMAT, "%s: /pipeline/%s is missing", path, name);
    int64_t mv = 0;
    fl_status s = fl_h5_read_strings(mg, "features", &st->names, &st->n, path, err);
    if (!s) {
        st->mean = malloc((size_t)(st->n + 1) * sizeof(float));
        st->std = malloc((size_t)(st->n + 1) * sizeof(float));
        if (!st->mean || !st->std) s = fl_fail(err, FL_ENOMEM, "out of memory");
    }
    if (!s) s = fl_h5_read_f32(mg, "mean", st->mean, (size_t)st->n, path, err);
    if (!s) s = fl_h5_read_f32(mg, "std", st->std, (size_t)st->n, path, err);
    if (!s) s = fl_h5_get_int(mg, "mvalue", &mv, path, err);
    st->mvalue = (int)mv;
    H5Gclose(mg);
    return s;
}

fl_status fl_pipeline_read(const char *path, fl_pipeline_info *in, fl_err *err) {
    memset(in, 0, sizeof *in);
    fl_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return fl_fail(err, FL_EIO, "%s: cannot open as a model file", path);
    hid_t g = H5Lexists(f, "pipeline", H5P_DEFAULT) > 0 ? H5Gopen2(f, "pipeline", H5P_DEFAULT) : -1;
    if (g < 0) {
        H5Fclose(f);
        return fl_fail(err, FL_EFORMAT, "%s: no /pipeline section (not written by fedlung train)",
                       path);
    }
    char **names = NULL;
    int n = 0;
    fl_status s = fl_h5_get_str(g, "kind", in->kind, sizeof in->kind, path, err);
    if (!s) s = fl_h5_read_strings(g, "classes", &names, &n, path, err);
    if (!s && (n < 1 || n > FL_MAX_CLASSES))
        s = fl_fail(err, FL_EFORMAT, "%s: /pipeline/classes has %d entries", path, n);
    for (int k = 0; !s && k < n; k++)
        snprintf(in->class_names[k], sizeof in->class_names[k], "%s", names[k]);
    in->n_classes = n;
    if (!s) s = fl_h5_get_double(g, "val_macro_auc", &in->val_macro_auc, path, err);
    if (!s) s = get_int(g, "best_epoch", &in->best_epoch, path, err);
    if (!s && strcmp(in->kind, "fusion") == 0) {
        char **mods = NULL;
        int nm = 0;
        double d = 0;
        if (!s) s = get_int(g, "enc_dim", &in->enc_dim, path, err);
        if (!s) s = get_int(g, "hidden", &in->hidden, path, err);
        if (!s) s = get_int(g, "stages", &in->stages, path, err);
        if (!s) s = fl_h5_get_double(g, "dropout", &d, path, err);
        in->dropout = (float)d;
        if (!s)
            s = fl_h5_get_str(g, "image_model", in->image_model, sizeof in->image_model, path, err);
        if (!s)
            s = fl_h5_get_str(g, "image_sha256", in->image_sha256, sizeof in->image_sha256, path,
                              err);
        if (!s) s = fl_h5_read_strings(g, "modalities", &mods, &nm, path, err);
        if (!s && (nm < 1 || nm > 4))
            s = fl_fail(err, FL_EFORMAT, "%s: /pipeline/modalities has %d entries", path, nm);
        for (int i = 0; !s && i < nm; i++) {
            snprintf(in->modalities[i], sizeof in->modalities[i], "%s", mods[i]);
            s = read_modality(g, mods[i], &in->std[i], path, err);
            in->in_dim[i] = in->std[i].n;
            in->n_modalities = i + 1;
        }
        for (int i = 0; i < nm; i++) free(mods[i]);
        free(mods);
    } else if (!s && strcmp(in->kind, "image") != 0) {
        s = fl_fail(err, FL_EFORMAT, "%s: unknown pipeline kind '%s'", path, in->kind);
    }
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
    H5Gclose(g);
    H5Fclose(f);
    if (s) fl_pipeline_info_destroy(in);
    return s;
}

void fl_pipeline_info_destroy(fl_pipeline_info *in) {
    for (int i = 0; i < 4; i++) fl_standardizer_destroy(&in->std[i]);
    in->n_modalities = 0;
}
