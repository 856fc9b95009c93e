/* checkpoint.c - HDF5 model checkpoints (see checkpoint.h for the layout) and the SHA-256 of a
 * model's slabs. HDF5 errors are caught here and turned into one sentence naming the file and
 * the dataset; nothing else in fedlung sees an hid_t from this file. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    fl_status s = FL_OK;
    hex[0] = '\0';
    float *buf = malloc(SHA_CHUNK_FLOATS * sizeof *buf);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!buf || !ctx) {
        s = FL_ENOMEM;
        goto fail;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) goto crypto;
    /* Trainable tensors, then buffers, each in graph order (= slab order); the alignment
     * padding between tensors in a slab is left out, so the hash depends on values only. */
    for (int pass = 1; pass >= 0; pass--) {
        const float *slab = pass ? fl_model_params(m) : fl_model_buffers(m);
        for (int i = 0; i < g->n_params; i++) {
            const fl_param *p = &g->params[i];
            if (p->trainable != pass) continue;
            for (size_t off = 0; off < p->numel; off += SHA_CHUNK_FLOATS) {
                size_t n = p->numel - off < SHA_CHUNK_FLOATS ? p->numel - off : SHA_CHUNK_FLOATS;
                be->download(be, buf, slab + p->offset + off, n * sizeof *buf);
                if (EVP_DigestUpdate(ctx, buf, n * sizeof *buf) != 1) goto crypto;
            }
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) goto crypto;
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    goto fail; /* shared cleanup */
crypto:
    ERR_clear_error();
    s = FL_EBACKEND;
fail:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* HDF5 error text                                                                             */

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    char *msg = data;
    if (e->desc && e->desc[0]) snprintf(msg, 200, "%s", e->desc); /* the last one wins */
    return 0;
}

/* The innermost message on HDF5's error stack (then cleared), or "unknown HDF5 error". */
static const char *h5_msg(char msg[200]) {
    snprintf(msg, 200, "unknown HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_cb, msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

static void h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                  */

static herr_t attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR), a = -1;
    herr_t r = -1;
    if (space < 0) return -1;
    a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) r = H5Awrite(a, mtype, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return r;
}

/* A fixed-length, NUL-terminated ASCII string attribute (h5py reads it as bytes). */
static herr_t attr_write_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t r = -1;
    if (t < 0) return -1;
    if (H5Tset_size(t, strlen(v) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0)
        r = attr_write(loc, name, t, t, v);
    H5Tclose(t);
    return r;
}

typedef enum { ATTR_OK, ATTR_MISSING, ATTR_BADTYPE } attr_result;

/* Opens a scalar attribute of the given class; ATTR_MISSING if absent. */
static attr_result attr_open(hid_t loc, const char *name, H5T_class_t cls, hid_t *a, hid_t *t) {
    *a = *t = -1;
    if (H5Aexists(loc, name) <= 0) return ATTR_MISSING;
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    if (*a < 0) return ATTR_BADTYPE;
    *t = H5Aget_type(*a);
    hid_t space = H5Aget_space(*a);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (*t < 0 || npoints != 1) return ATTR_BADTYPE;
    H5T_class_t c = H5Tget_class(*t);
    if (c != cls && !(cls == H5T_FLOAT && c == H5T_INTEGER)) return ATTR_BADTYPE;
    return ATTR_OK;
}

static void attr_close(hid_t a, hid_t t) {
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
}

/* Reads a string attribute, fixed-length or variable-length (as h5py writes str), into out. */
static attr_result attr_read_str(hid_t loc, const char *name, char *out, size_t cap) {
    hid_t a, t, mt = -1;
    attr_result r = attr_open(loc, name, H5T_STRING, &a, &t);
    if (r != ATTR_OK) goto done;
    r = ATTR_BADTYPE;
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0) goto done;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &v) < 0 || !v) goto done;
        size_t n = strlen(v);
        if (n < cap) {
            memcpy(out, v, n + 1);
            r = ATTR_OK;
        }
        H5free_memory(v);
    } else {
        size_t size = H5Tget_size(t);
        char *v = calloc(1, size + 1);
        if (!v) goto done;
        if (H5Tset_size(mt, size + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, v) >= 0 && strlen(v) < cap) {
            memcpy(out, v, strlen(v) + 1);
            r = ATTR_OK;
        }
        free(v);
    }
done:
    if (mt >= 0) H5Tclose(mt);
    attr_close(a, t);
    return r;
}

static attr_result attr_read_num(hid_t loc, const char *name, hid_t mtype, void *out) {
    hid_t a, t;
    H5T_class_t cls = H5Tequal(mtype, H5T_NATIVE_FLOAT) > 0 ? H5T_FLOAT : H5T_INTEGER;
    attr_result r = attr_open(loc, name, cls, &a, &t);
    if (r == ATTR_OK && H5Aread(a, mtype, out) < 0) r = ATTR_BADTYPE;
    attr_close(a, t);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* meta                                                                                        */

static fl_status open_file(const char *path, hid_t *file, fl_err *err) {
    char msg[200];
    h5_quiet();
    if (access(path, R_OK) != 0)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return fl_fail(err, FL_EFORMAT, "%s: not an HDF5 file", path);
    }
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return fl_fail(err, FL_EIO, "%s: cannot open as HDF5 (%s)", path, h5_msg(msg));
    return FL_OK;
}

static fl_status meta_from_file(hid_t f, const char *path, fl_model_meta *meta, fl_err *err) {
    char format[64];
    int version = 0;
    fl_model_meta_init(meta);
    if (attr_read_str(f, "format", format, sizeof format) != ATTR_OK ||
        strcmp(format, FORMAT_NAME) != 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s: not a fedlung model checkpoint (no \"format\" = \"" FORMAT_NAME
                       "\" attribute)",
                       path);
    if (attr_read_num(f, "version", H5T_NATIVE_INT, &version) != ATTR_OK)
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
        if (attr_read_str(f, strs[i].name, strs[i].out, cap) != ATTR_OK)
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
        if (attr_read_num(f, ints[i].name, H5T_NATIVE_INT, ints[i].out) != ATTR_OK)
            return fl_fail(err, FL_EFORMAT,
                           "%s: the \"%s\" attribute is missing or not an "
                           "integer",
                           path, ints[i].name);
    }
    if (attr_read_num(f, "width", H5T_NATIVE_FLOAT, &meta->width) != ATTR_OK)
        return fl_fail(err, FL_EFORMAT, "%s: the \"width\" attribute is missing or not a number",
                       path);
    /* Optional ones: absent is fine, present with the wrong type is not. */
    if (attr_read_str(f, "phase", meta->phase, sizeof meta->phase) == ATTR_BADTYPE)
        return fl_fail(err, FL_EFORMAT, "%s: the \"phase\" attribute is not a short string", path);
    if (attr_read_num(f, "round", H5T_NATIVE_INT, &meta->round) == ATTR_BADTYPE)
        return fl_fail(err, FL_EFORMAT, "%s: the \"round\" attribute is not an integer", path);
    H5Eclear2(H5E_DEFAULT);
    return FL_OK;
}

fl_status fl_checkpoint_read_meta(const char *path, fl_model_meta *meta, fl_err *err) {
    hid_t f = -1;
    fl_status s = open_file(path, &f, err);
    if (s != FL_OK) return s;
    s = meta_from_file(f, path, meta, err);
    H5Fclose(f);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* save                                                                                        */

/* Reserves "<path>.tmp.XXXXXX" with O_EXCL (mode 0666 less the umask) for HDF5 to overwrite. */
static fl_status tmp_reserve(const char *path, char **tmp, fl_err *err) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(path) + 12;
    *tmp = malloc(n);
    if (!*tmp) return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                 (uint64_t)(uintptr_t)*tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        char suf[7];
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            suf[i] = abc[(x >> 33) % (sizeof abc - 1)];
        }
        suf[6] = '\0';
        snprintf(*tmp, n, "%s.tmp.%s", path, suf);
        int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) break;
        close(fd);
        return FL_OK;
    }
    fl_status s = fl_fail(err, FL_EIO, "%s: cannot create a temporary file next to it: %s", path,
                          strerror(errno));
    free(*tmp);
    *tmp = NULL;
    return s;
}

/* fsyncs the finished temporary file, renames it over path and syncs the folder. */
static fl_status tmp_commit(const char *path, const char *tmp, fl_err *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC), e = 0;
    if (fd < 0 || fsync(fd) != 0) e = errno;
    if (fd >= 0) close(fd);
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) return fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(e));
    char *dir = strdup(path); /* make the rename durable; failing here loses nothing */
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        free(dir);
    }
    return FL_OK;
}

static int meta_str_ok(const char *s) {
    return memchr(s, '\0', FL_META_STR) != NULL;
}

fl_status fl_checkpoint_save(fl_model *m, const fl_model_meta *meta, const char *path,
                             fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    char msg[200], hex[65], *tmp = NULL;
    hid_t f = -1, space = -1, dset = -1;
    float *buf = NULL;
    fl_status s;
    h5_quiet();

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
    s = tmp_reserve(path, &tmp, err);
    if (s != FL_OK) goto fail;

    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot create %s (%s)", path, tmp, h5_msg(msg));
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
                        h5_msg(msg));
            goto fail;
        }
        H5Dclose(dset);
        H5Sclose(space);
        dset = space = -1;
    }

    int version = FL_CHECKPOINT_VERSION;
    const char *what = NULL;
    if (attr_write_str(f, "format", FORMAT_NAME) < 0)
        what = "format";
    else if (attr_write(f, "version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) < 0)
        what = "version";
    else if (attr_write_str(f, "arch", meta->arch) < 0)
        what = "arch";
    else if (attr_write(f, "tile", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->tile) < 0)
        what = "tile";
    else if (attr_write_str(f, "stem", meta->stem) < 0)
        what = "stem";
    else if (attr_write(f, "classes", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->classes) < 0)
        what = "classes";
    else if (attr_write(f, "width", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &meta->width) < 0)
        what = "width";
    else if (attr_write_str(f, "sha256", hex) < 0)
        what = "sha256";
    else if (meta->phase[0] && attr_write_str(f, "phase", meta->phase) < 0)
        what = "phase";
    else if (meta->round >= 0 &&
             attr_write(f, "round", H5T_STD_I32LE, H5T_NATIVE_INT, &meta->round) < 0)
        what = "round";
    if (what) {
        s = fl_fail(err, FL_EIO, "%s: cannot write attribute \"%s\" (%s)", path, what, h5_msg(msg));
        goto fail;
    }
    herr_t closed = H5Fclose(f);
    f = -1;
    if (closed < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot finish the file (%s)", path, h5_msg(msg));
        goto fail;
    }
    s = tmp_commit(path, tmp, err);
fail:
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (f >= 0) H5Fclose(f);
    if (tmp && s != FL_OK) unlink(tmp);
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
        char msg[200];
        s = fl_fail(err, FL_EFORMAT, "%s: /%s is not a readable dataset (%s)", path, p->name,
                    h5_msg(msg));
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
    char msg[200], hex[65];
    float *buf = NULL;
    hid_t f = -1, d = -1;
    fl_status s = open_file(path, &f, err);
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
        s = fl_fail(err, FL_EFORMAT, "%s: cannot list the root group (%s)", path, h5_msg(msg));
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
                        h5_msg(msg));
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
