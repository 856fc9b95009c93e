/* checkpoint.c - HDF5 model checkpoints (see checkpoint.h for the layout) and the SHA-256 of a
 * model's slabs. HDF5 errors are caught here and turned into one sentence naming the file and
 * the dataset; nothing else in fedlung sees an hid_t from this file. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atomic.h"
#include "../common/h5.h"
#include "../crypto/hash.h"

#define FORMAT_NAME "fedlung-model"
#define SHA_CHUNK_FLOATS ((size_t)1 << 20) /* 4 MiB read back from the device at a time */

void fl_model_meta_init(fl_model_meta *meta) {
    memset(meta, 0, sizeof *meta);
    meta->width = 1.0f;
    meta->round = -1;
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-256                                                                                     */

fl_status fl_model_sha256(fl_model *m, char hex[65]) {
    const fl_graph *g = fl_model_graph(m);
    fl_backend *be = fl_model_backend(m);
    hex[0] = '\0';
    fl_sha256_ctx h = {0};
    float *buf = malloc(SHA_CHUNK_FLOATS * sizeof *buf);
    fl_status s = buf ? fl_sha256_init(&h) : FL_ENOMEM;
    /* Trainable tensors, then buffers, each in graph order (= slab order); the alignment
     * padding between tensors in a slab is left out, so the hash depends on values only. */
    for (int pass = 1; s == FL_OK && pass >= 0; pass--) {
        const float *slab = pass ? fl_model_params(m) : fl_model_buffers(m);
        for (int i = 0; s == FL_OK && i < g->n_params; i++) {
            const fl_param *p = &g->params[i];
            if (p->trainable != pass) continue;
            for (size_t off = 0; s == FL_OK && off < p->numel; off += SHA_CHUNK_FLOATS) {
                size_t n = p->numel - off < SHA_CHUNK_FLOATS ? p->numel - off : SHA_CHUNK_FLOATS;
                be->download(be, buf, slab + p->offset + off, n * sizeof *buf);
                s = fl_sha256_update(&h, buf, n * sizeof *buf);
            }
        }
    }
    uint8_t md[FL_SHA256_LEN];
    if (s == FL_OK) s = fl_sha256_final(&h, md);
    if (s == FL_OK) fl_hex_encode(md, sizeof md, hex);
    fl_sha256_destroy(&h);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                  */

/* A string attribute into out (cap bytes with the NUL); too long a value is FL_H5_ATTR_BADTYPE. */
static fl_h5_attr_result attr_read_str(hid_t loc, const char *name, char *out, size_t cap) {
    char *v;
    fl_h5_attr_result r = fl_h5_attr_str(loc, name, &v);
    if (r != FL_H5_ATTR_OK) return r;
    size_t n = strlen(v);
    if (n < cap)
        memcpy(out, v, n + 1);
    else
        r = FL_H5_ATTR_BADTYPE;
    free(v);
    return r;
}

/* An int or float attribute (mtype H5T_NATIVE_INT or H5T_NATIVE_FLOAT); a float may be stored
 * as an integer, an int may not be stored as a float. */
static fl_h5_attr_result attr_read_num(hid_t loc, const char *name, hid_t mtype, void *out) {
    H5T_class_t cls = H5Tequal(mtype, H5T_NATIVE_FLOAT) > 0 ? H5T_FLOAT : H5T_INTEGER;
    return fl_h5_attr_num(loc, name, cls, mtype, out);
}

/* ------------------------------------------------------------------------------------------ */
/* meta                                                                                        */

static fl_status meta_from_file(hid_t f, const char *path, fl_model_meta *meta, fl_err *err) {
    char format[64];
    int version = 0;
    fl_model_meta_init(meta);
    if (attr_read_str(f, "format", format, sizeof format) != FL_H5_ATTR_OK ||
        strcmp(format, FORMAT_NAME) != 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s: not a fedlung model checkpoint (no \"format\" = \"" FORMAT_NAME
                       "\" attribute)",
                       path);
    if (attr_read_num(f, "version", H5T_NATIVE_INT, &version) != FL_H5_ATTR_OK)
        return fl_fail(err, FL_EFORMAT,
                       "%s: the \"version\" attribute is missing or not an "
                       "integer",
                       path);
    if (version != FL_CHECKPOINT_VERSION)
        return fl_fail(err, FL_EUNSUPPORTED,
                       "%s: checkpoint version %d is not supported (this "
                       "build reads version %d)",
                       path, version, FL_CHECKPOINT_VERSION);

    struct {
        const char *name;
        char *out;
    } strs[] = {{"arch", meta->arch}, {"stem", meta->stem}, {"sha256", meta->sha256}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        size_t cap = strs[i].out == meta->sha256 ? sizeof meta->sha256 : FL_META_STR;
        if (attr_read_str(f, strs[i].name, strs[i].out, cap) != FL_H5_ATTR_OK)
            return fl_fail(err, FL_EFORMAT,
                           "%s: the \"%s\" attribute is missing, not a string "
                           "or too long",
                           path, strs[i].name);
    }
    if (strlen(meta->sha256) != 64 || strspn(meta->sha256, "0123456789abcdef") != 64)
        return fl_fail(err, FL_EFORMAT, "%s: the \"sha256\" attribute is not 64 hex digits", path);
    struct {
        const char *name;
        int *out;
    } ints[] = {{"tile", &meta->tile}, {"classes", &meta->classes}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (attr_read_num(f, ints[i].name, H5T_NATIVE_INT, ints[i].out) != FL_H5_ATTR_OK)
            return fl_fail(err, FL_EFORMAT,
                           "%s: the \"%s\" attribute is missing or not an "
                           "integer",
                           path, ints[i].name);
    }
    if (attr_read_num(f, "width", H5T_NATIVE_FLOAT, &meta->width) != FL_H5_ATTR_OK)
        return fl_fail(err, FL_EFORMAT, "%s: the \"width\" attribute is missing or not a number",
                       path);
    /* Optional ones: absent is fine, present with the wrong type is not. */
    if (attr_read_str(f, "phase", meta->phase, sizeof meta->phase) >= FL_H5_ATTR_BADTYPE)
        return fl_fail(err, FL_EFORMAT, "%s: the \"phase\" attribute is not a short string", path);
    if (attr_read_num(f, "round", H5T_NATIVE_INT, &meta->round) >= FL_H5_ATTR_BADTYPE)
        return fl_fail(err, FL_EFORMAT, "%s: the \"round\" attribute is not an integer", path);
    if (attr_read_num(f, "groupnorm", H5T_NATIVE_INT, &meta->groupnorm) >= FL_H5_ATTR_BADTYPE ||
        meta->groupnorm < 0)
        return fl_fail(err, FL_EFORMAT, "%s: the \"groupnorm\" attribute is not a group count",
                       path);
    H5Eclear2(H5E_DEFAULT);
    return FL_OK;
}

fl_status fl_checkpoint_read_meta(const char *path, fl_model_meta *meta, fl_err *err) {
    hid_t f = -1;
    fl_status s = fl_h5_open(path, H5P_DEFAULT, "not an HDF5 file", &f, err);
    if (s != FL_OK) return s;
    s = meta_from_file(f, path, meta, err);
    H5Fclose(f);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* save                                                                                        */

static int meta_str_ok(const char *s) {
    return memchr(s, '\0', FL_META_STR) != NULL;
}

fl_status fl_checkpoint_save(fl_model *m, const fl_model_meta *meta, const char *path,
                             fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    char msg[FL_H5_MSG_LEN], hex[65], *tmp = NULL;
    hid_t f = -1, space = -1, dset = -1;
    float *buf = NULL;
    fl_status s;
    fl_h5_quiet();

    if (!meta || !meta_str_ok(meta->arch) || !meta->arch[0] || !meta_str_ok(meta->stem) ||
        !meta_str_ok(meta->phase))
        return fl_fail(err, FL_EINVAL,
                       "%s: the model description has no arch or an "
                       "unterminated string",
                       path);
    s = fl_model_sha256(m, hex);
    if (s != FL_OK) return fl_fail(err, s, "%s: cannot hash the model's tensors", path);
    size_t most = 1;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].numel > most) most = g->params[i].numel;
    buf = malloc(most * sizeof *buf);
    if (!buf) return fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, most);
    s = fl_atomic_tmp_reserve(path, &tmp, NULL, err);
    if (s != FL_OK) goto fail;

    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot create %s (%s)", path, tmp, fl_h5_msg(msg));
        goto fail;
    }
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *p = &g->params[i];
        hsize_t dims[4];
        for (int d = 0; d < p->ndim; d++) dims[d] = (hsize_t)p->shape[d];
        s = fl_model_get_tensor(m, i, buf);
        if (s != FL_OK) {
            fl_fail(err, s, "%s: cannot copy tensor '%s' out of the model", path, p->name);
            goto fail;
        }
        space = p->ndim > 0 ? H5Screate_simple(p->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        if (space >= 0)
            dset = H5Dcreate2(f, p->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            s = fl_fail(err, FL_EIO, "%s: cannot write dataset /%s (%s)", path, p->name,
                        fl_h5_msg(msg));
            goto fail;
        }
        H5Dclose(dset);
        H5Sclose(space);
        dset = space = -1;
    }

    int version = FL_CHECKPOINT_VERSION;
    const char *what = NULL;
    if (fl_h5_attr_write_str(f, "format", FORMAT_NAME) < 0)
        what = "format";
    else if (fl_h5_attr_write(f, "version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) < 0)
        what = "version";
    else if (fl_h5_attr_write_str(f, "arch", meta->arch) < 0)
        what = "arch";
    else if (fl_h5_attr_write(f, "tile", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->tile) < 0)
        what = "tile";
    else if (fl_h5_attr_write_str(f, "stem", meta->stem) < 0)
        what = "stem";
    else if (fl_h5_attr_write(f, "classes", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->classes) < 0)
        what = "classes";
    else if (fl_h5_attr_write(f, "width", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &meta->width) < 0)
        what = "width";
    else if (fl_h5_attr_write_str(f, "sha256", hex) < 0)
        what = "sha256";
    else if (meta->phase[0] && fl_h5_attr_write_str(f, "phase", meta->phase) < 0)
        what = "phase";
    else if (meta->round >= 0 &&
             fl_h5_attr_write(f, "round", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->round) < 0)
        what = "round";
    else if (meta->groupnorm > 0 &&
             fl_h5_attr_write(f, "groupnorm", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->groupnorm) < 0)
        what = "groupnorm";
    if (what) {
        s = fl_fail(err, FL_EIO, "%s: cannot write attribute \"%s\" (%s)", path, what,
                    fl_h5_msg(msg));
        goto fail;
    }
    herr_t closed = H5Fclose(f);
    f = -1;
    if (closed < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot finish the file (%s)", path, fl_h5_msg(msg));
        goto fail;
    }
    s = fl_atomic_tmp_commit(tmp, path, err);
fail:
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (f >= 0) H5Fclose(f);
    if (s != FL_OK) fl_atomic_tmp_remove(tmp);
    H5Eclear2(H5E_DEFAULT);
    free(tmp);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* load                                                                                        */

typedef struct {
    const fl_graph *g;
    char extra[FL_NAME_LEN + 32];
} extra_ctx;

/* Stops at the first dataset at the root that the model has no parameter for. */
static herr_t find_extra(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    extra_ctx *c = data;
    hid_t o = H5Oopen(group, name, H5P_DEFAULT);
    if (o < 0) return 0; /* a dangling link is not a tensor */
    int is_dataset = H5Iget_type(o) == H5I_DATASET;
    H5Oclose(o);
    if (is_dataset && fl_graph_find_param(c->g, name) < 0) {
        snprintf(c->extra, sizeof c->extra, "%s", name);
        return 1;
    }
    return 0;
}

static void fmt_dims(char *buf, size_t cap, int ndim, const hsize_t *dims, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "",
                              dims ? (int64_t)dims[i] : shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* Checks dataset name exists, is floating-point and has p's shape. */
static fl_status check_dataset(hid_t f, const fl_param *p, const char *path, fl_err *err) {
    char want[128], have[128];
    fmt_dims(want, sizeof want, p->ndim, NULL, p->shape);
    if (H5Lexists(f, p->name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return fl_fail(err, FL_ENOTFOUND, "%s: dataset /%s %s is missing", path, p->name, want);
    }
    fl_status s = FL_OK;
    hid_t d = H5Dopen2(f, p->name, H5P_DEFAULT), t = -1, sp = -1;
    if (d >= 0) t = H5Dget_type(d);
    if (d >= 0) sp = H5Dget_space(d);
    int ndim = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (d < 0 || t < 0 || ndim < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        char msg[FL_H5_MSG_LEN];
        s = fl_fail(err, FL_EFORMAT, "%s: /%s is not a readable dataset (%s)", path, p->name,
                    fl_h5_msg(msg));
    } else if (H5Tget_class(t) != H5T_FLOAT) {
        s = fl_fail(err, FL_EFORMAT, "%s: dataset /%s is not floating-point", path, p->name);
    } else {
        int same = ndim == p->ndim;
        for (int i = 0; same && i < ndim; i++) same = dims[i] == (hsize_t)p->shape[i];
        if (!same) {
            fmt_dims(have, sizeof have, ndim, dims, NULL);
            s = fl_fail(err, FL_ESHAPE, "%s: dataset /%s has shape %s but the model needs %s", path,
                        p->name, have, want);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return s;
}

fl_status fl_checkpoint_load(fl_model *m, const char *path, fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    fl_model_meta meta;
    char msg[FL_H5_MSG_LEN], hex[65];
    float *buf = NULL;
    hid_t f = -1, d = -1;
    fl_status s = fl_h5_open(path, H5P_DEFAULT, "not an HDF5 file", &f, err);
    if (s != FL_OK) return s;
    s = meta_from_file(f, path, &meta, err);
    if (s != FL_OK) goto fail;

    /* Check everything before touching the model. */
    size_t most = 1;
    for (int i = 0; i < g->n_params; i++) {
        s = check_dataset(f, &g->params[i], path, err);
        if (s != FL_OK) goto fail;
        if (g->params[i].numel > most) most = g->params[i].numel;
    }
    extra_ctx ctx = {g, ""};
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, find_extra, &ctx) < 0) {
        s = fl_fail(err, FL_EFORMAT, "%s: cannot list the root group (%s)", path, fl_h5_msg(msg));
        goto fail;
    }
    if (ctx.extra[0]) {
        s = fl_fail(err, FL_EFORMAT, "%s: dataset /%s is not a parameter of the model", path,
                    ctx.extra);
        goto fail;
    }

    buf = malloc(most * sizeof *buf);
    if (!buf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, most);
        goto fail;
    }
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *p = &g->params[i];
        d = H5Dopen2(f, p->name, H5P_DEFAULT);
        if (d < 0 || H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            s = fl_fail(err, FL_EIO, "%s: cannot read dataset /%s (%s)", path, p->name,
                        fl_h5_msg(msg));
            goto fail;
        }
        H5Dclose(d);
        d = -1;
        s = fl_model_set_tensor(m, i, buf);
        if (s != FL_OK) {
            fl_fail(err, s, "%s: cannot copy dataset /%s into the model", path, p->name);
            goto fail;
        }
    }
    s = fl_model_sha256(m, hex);
    if (s != FL_OK) {
        fl_fail(err, s, "%s: cannot hash the loaded tensors", path);
        goto fail;
    }
    if (strcmp(hex, meta.sha256) != 0) {
        s = fl_fail(err, FL_EFORMAT,
                    "%s: SHA-256 mismatch: the tensors hash to %.16s... but the "
                    "\"sha256\" attribute says %.16s...; the file was altered or damaged",
                    path, hex, meta.sha256);
        goto fail;
    }
fail:
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    free(buf);
    return s;
}
