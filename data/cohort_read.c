/* cohort_read.c - opens a cohort file: loads patients, classes, sites and omics into memory,
 * checks every shape and range against the header's promises, and reads tiles by hyperslab.
 * Not a converter: a file that breaks the layout is refused with one sentence, never repaired.
 * HDF5 is not thread-safe here: use a fl_cohort_file from one thread at a time. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort_impl.h"

struct fl_cohort_file {
    hid_t file;
    hid_t pixels; /* /tiles/pixels (N, tile, tile, 3) uint8, or -1 without tiles */
    char *path;
    int tile;
    int64_t n_tiles;
};

/* Tiles the chunk cache of /tiles/pixels holds: a training batch's worth. */
#define TILE_CACHE_TILES 64
#define TILE_CACHE_MAX_BYTES ((size_t)64 << 20)
#define TILE_CACHE_SLOTS 12421 /* prime, ~100x the chunks that fit (HDF5's advice) */

/* ------------------------------------------------------------------------------------------ */
/* datasets                                                                                    */

static const char *class_word(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER:
        return "integer";
    case H5T_FLOAT:
        return "floating-point";
    case H5T_STRING:
        return "string";
    default:
        return "other";
    }
}

/* Opens the dataset name (an absolute path) and checks its rank and type class (floats also
 * accept integers). Fills dims[rank]. On failure *d is -1 and err names path and name. */
static fl_status dset_open(hid_t f, const char *path, const char *name, int rank, H5T_class_t cls,
                           hsize_t *dims, hid_t *d, fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    *d = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return fl_fail(err, FL_EFORMAT, "%s: %s is missing", path, name);
    }
    hid_t dd = H5Dopen2(f, name, H5P_DEFAULT);
    if (dd < 0)
        return fl_fail(err, FL_EFORMAT, "%s: %s is not a readable dataset (%s)", path, name,
                       fl_h5_msg(msg));
    hid_t t = H5Dget_type(dd), sp = H5Dget_space(dd);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    fl_status s = FL_OK;
    if (c != cls && !(cls == H5T_FLOAT && c == H5T_INTEGER))
        s = fl_fail(err, FL_EFORMAT, "%s: %s holds %s values, expected %s", path, name,
                    class_word(c), class_word(cls));
    else if (nd != rank)
        s = fl_fail(err, FL_EFORMAT, "%s: %s is %d-dimensional, expected %d", path, name, nd, rank);
    else if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        s = fl_fail(err, FL_EFORMAT, "%s: %s: %s", path, name, fl_h5_msg(msg));
    else if (cls == H5T_STRING && dims[0] > INT_MAX)
        s = fl_fail(err, FL_EFORMAT, "%s: %s has too many entries", path, name);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (s == FL_OK)
        *d = dd;
    else
        H5Dclose(dd);
    return s;
}

/* Reads the whole of d, converted to mtype, into a new buffer of n elements of esize bytes. */
static fl_status dset_read(hid_t d, hid_t mtype, size_t n, size_t esize, void **out,
                           const char *path, const char *name, fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    *out = calloc(n ? n : 1, esize);
    if (!*out) return fl_fail(err, FL_ENOMEM, "%s: out of memory reading %s", path, name);
    if (n && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        free(*out);
        *out = NULL;
        return fl_fail(err, FL_EIO, "%s: cannot read %s (%s)", path, name, fl_h5_msg(msg));
    }
    return FL_OK;
}

/* Reads the 1-D string dataset name into *out (*n strings, each malloc'ed). */
static fl_status read_strings(hid_t f, const char *path, const char *name, int *n, char ***out,
                              fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    hsize_t dims[1];
    hid_t d, t = -1, mt = -1;
    void *buf = NULL;
    *out = NULL;
    *n = 0;
    fl_status s = dset_open(f, path, name, 1, H5T_STRING, dims, &d, err);
    if (s) return s;
    size_t N = (size_t)dims[0], size = 0;
    int vlen = 0;
    if ((t = H5Dget_type(d)) < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(t)) < 0)
        goto h5fail;
    vlen = H5Tis_variable_str(t) > 0;
    size = vlen ? sizeof(char *) : H5Tget_size(t) + 1;
    if (H5Tset_size(mt, vlen ? H5T_VARIABLE : size) < 0 ||
        (!vlen && H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0))
        goto h5fail;
    *out = calloc(N ? N : 1, sizeof **out);
    buf = calloc(N ? N : 1, size);
    if (!*out || !buf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory reading %s", path, name);
        goto fail;
    }
    if (N && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) goto h5fail;
    s = FL_OK;
    for (size_t i = 0; i < N && s == FL_OK; i++) {
        const char *v = vlen ? ((char **)buf)[i] : (char *)buf + i * size;
        if (!((*out)[i] = strdup(v ? v : "")))
            s = fl_fail(err, FL_ENOMEM, "%s: out of memory reading %s", path, name);
    }
    if (vlen && N) {
        hid_t sp = H5Dget_space(d);
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
        H5Sclose(sp);
    }
    if (s) goto fail;
    *n = (int)N;
    goto done;
h5fail:
    s = fl_fail(err, FL_EIO, "%s: cannot read %s (%s)", path, name, fl_h5_msg(msg));
fail:
    if (*out)
        for (size_t i = 0; i < N; i++) free((*out)[i]);
    free(*out);
    *out = NULL;
done:
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return s;
}

/* Reads the 1-D dataset name of class cls into *out (converted to mtype); it must have n
 * entries, like the dataset ref. */
static fl_status read_vec(hid_t f, const char *path, const char *name, H5T_class_t cls, hid_t mtype,
                          size_t esize, hsize_t n, const char *ref, void **out, fl_err *err) {
    hsize_t dims[1];
    hid_t d;
    *out = NULL;
    fl_status s = dset_open(f, path, name, 1, cls, dims, &d, err);
    if (s) return s;
    if (dims[0] != n)
        s = fl_fail(err, FL_ESHAPE, "%s: %s has %llu entries, %s has %llu", path, name,
                    (unsigned long long)dims[0], ref, (unsigned long long)n);
    else
        s = dset_read(d, mtype, (size_t)n, esize, out, path, name, err);
    H5Dclose(d);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* sections                                                                                    */

static fl_status read_root(hid_t f, const char *path, fl_cohort *c, fl_err *err) {
    char *format = NULL;
    int version = 0;
    fl_h5_attr_result r = fl_h5_attr_str(f, "format", &format);
    int ok = r == FL_H5_ATTR_OK && strcmp(format, FL__COHORT_FORMAT) == 0;
    fl_status s = FL_OK;
    if (!ok && r == FL_H5_ATTR_OK)
        s = fl_fail(err, FL_EFORMAT,
                    "%s: not a cohort file (the \"format\" attribute is \"%.100s\", expected "
                    "\"" FL__COHORT_FORMAT "\")",
                    path, format);
    else if (!ok)
        s = fl_fail(err, FL_EFORMAT,
                    "%s: not a cohort file (no \"format\" = \"" FL__COHORT_FORMAT "\" attribute)",
                    path);
    free(format);
    if (s) return s;
    if (fl_h5_attr_num(f, "version", H5T_INTEGER, H5T_NATIVE_INT, &version) != FL_H5_ATTR_OK)
        return fl_fail(err, FL_EFORMAT,
                       "%s: the \"version\" attribute is missing or not an integer", path);
    if (version != FL_COHORT_VERSION)
        return fl_fail(err, FL_EUNSUPPORTED,
                       "%s: cohort version %d is not supported (this build reads version %d)", path,
                       version, FL_COHORT_VERSION);
    r = fl_h5_attr_str(f, "provenance", &c->provenance);
    if (r >= FL_H5_ATTR_BADTYPE)
        return fl_fail(err, FL_EFORMAT, "%s: the \"provenance\" attribute is not a string", path);
    H5Eclear2(H5E_DEFAULT);
    return FL_OK;
}

static fl_status read_patients(hid_t f, const char *path, fl_cohort *c, fl_err *err) {
    fl_status s;
    int n;
    if ((s = read_strings(f, path, "/meta/classes", &c->n_classes, &c->class_names, err)) ||
        (s = read_strings(f, path, "/meta/sites", &c->n_sites, &c->site_names, err)) ||
        (s = read_strings(f, path, "/patients/id", &c->P, &c->id, err)))
        return s;
    const char *ref = "/patients/id";
    hsize_t P = (hsize_t)c->P;
    if ((s = read_strings(f, path, "/patients/case", &n, &c->case_id, err))) return s;
    if ((hsize_t)n != P) {
        for (int i = 0; i < n; i++) free(c->case_id[i]);
        free(c->case_id);
        c->case_id = NULL;
        return fl_fail(err, FL_ESHAPE, "%s: /patients/case has %d entries, %s has %d", path, n, ref,
                       c->P);
    }
    if ((s = read_vec(f, path, "/patients/site", H5T_INTEGER, H5T_NATIVE_INT32, 4, P, ref,
                      (void **)&c->site, err)) ||
        (s = read_vec(f, path, "/patients/label", H5T_INTEGER, H5T_NATIVE_INT32, 4, P, ref,
                      (void **)&c->label, err)) ||
        (s = read_vec(f, path, "/patients/stage", H5T_INTEGER, H5T_NATIVE_INT32, 4, P, ref,
                      (void **)&c->stage, err)) ||
        (s = read_vec(f, path, "/patients/split", H5T_INTEGER, H5T_NATIVE_UINT8, 1, P, ref,
                      (void **)&c->split, err)))
        return s;
    return FL_OK;
}

static fl_status read_omics(hid_t f, const char *path, fl_cohort *c, fl_omics m, fl_err *err) {
    fl_omics_matrix *o = &c->omics[m];
    const char *g = fl_omics_name(m);
    char values[64], feats[64], present[64], msg[FL_H5_MSG_LEN];
    hsize_t dims[2];
    hid_t d = -1;
    if (H5Lexists(f, g, H5P_DEFAULT) <= 0) { /* the modality is absent */
        H5Eclear2(H5E_DEFAULT);
        return FL_OK;
    }
    snprintf(values, sizeof values, "/%s/values", g);
    snprintf(feats, sizeof feats, "/%s/%s", g, fl__omics_features[m]);
    snprintf(present, sizeof present, "/%s/present", g);
    fl_status s = read_strings(f, path, feats, &o->F, &o->features, err);
    if (s) return s;
    if ((s = read_vec(f, path, present, H5T_INTEGER, H5T_NATIVE_UINT8, 1, (hsize_t)c->P,
                      "/patients/id", (void **)&o->present, err)))
        return s;
    if ((s = dset_open(f, path, values, 2, H5T_FLOAT, dims, &d, err))) return s;
    if (dims[0] != (hsize_t)c->P)
        s = fl_fail(err, FL_ESHAPE, "%s: %s has %llu rows, /patients/id has %d", path, values,
                    (unsigned long long)dims[0], c->P);
    else if (dims[1] != (hsize_t)o->F)
        s = fl_fail(err, FL_ESHAPE, "%s: %s has %llu columns, %s has %d", path, values,
                    (unsigned long long)dims[1], feats, o->F);
    else
        s = dset_read(d, H5T_NATIVE_FLOAT, (size_t)c->P * (size_t)o->F, sizeof(float),
                      (void **)&o->values, path, values, err);
    H5Dclose(d);
    if (s) return s;
    if (m == FL_MOD_CLINICAL) {
        hid_t grp = H5Gopen2(f, g, H5P_DEFAULT);
        if (grp < 0)
            return fl_fail(err, FL_EFORMAT, "%s: /%s is not a group (%s)", path, g, fl_h5_msg(msg));
        fl_h5_attr_result r = fl_h5_attr_str(grp, "encoding", &o->encoding);
        H5Gclose(grp);
        if (r >= FL_H5_ATTR_BADTYPE)
            return fl_fail(err, FL_EFORMAT, "%s: the \"encoding\" attribute of /%s is not a string",
                           path, g);
        H5Eclear2(H5E_DEFAULT);
    }
    if (o->F == 0) { /* an empty group reads as an absent modality */
        free(o->values);
        free(o->present);
        free(o->features);
        free(o->encoding);
        memset(o, 0, sizeof *o);
    }
    return FL_OK;
}

/* Opens /tiles/pixels with a chunk cache that holds a batch of tiles, so reading a batch
 * decompresses each chunk once. */
static hid_t open_pixels(hid_t f, size_t chunk_bytes) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS), d = -1;
    size_t bytes = chunk_bytes * TILE_CACHE_TILES;
    if (bytes > TILE_CACHE_MAX_BYTES) bytes = TILE_CACHE_MAX_BYTES;
    if (bytes < ((size_t)1 << 20)) bytes = (size_t)1 << 20;
    if (dapl >= 0 && H5Pset_chunk_cache(dapl, TILE_CACHE_SLOTS, bytes, 1.0) >= 0)
        d = H5Dopen2(f, "/tiles/pixels", dapl);
    if (dapl >= 0) H5Pclose(dapl);
    return d;
}

static fl_status read_tiles_meta(hid_t f, fl_cohort_file *cf, fl_cohort *c, fl_err *err) {
    const char *path = cf->path;
    char msg[FL_H5_MSG_LEN];
    hsize_t dims[4], chunk[4] = {1, 1, 1, 1};
    hid_t d = -1, t = -1, dcpl = -1;
    int tile = 0;
    if (H5Lexists(f, "tiles", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return FL_OK;
    }
    hid_t grp = H5Gopen2(f, "tiles", H5P_DEFAULT);
    if (grp < 0)
        return fl_fail(err, FL_EFORMAT, "%s: /tiles is not a group (%s)", path, fl_h5_msg(msg));
    fl_h5_attr_result r = fl_h5_attr_num(grp, "tile", H5T_INTEGER, H5T_NATIVE_INT, &tile);
    H5Gclose(grp);
    if (r != FL_H5_ATTR_OK || tile <= 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s: /tiles has no positive integer \"tile\" attribute (the tile edge in "
                       "pixels)",
                       path);
    fl_status s = dset_open(f, path, "/tiles/pixels", 4, H5T_INTEGER, dims, &d, err);
    if (s) return s;
    t = H5Dget_type(d);
    dcpl = H5Dget_create_plist(d);
    if (t < 0 || H5Tget_size(t) != 1 || H5Tget_sign(t) != H5T_SGN_NONE)
        s = fl_fail(err, FL_EFORMAT, "%s: /tiles/pixels is not uint8", path);
    else if (dims[1] != (hsize_t)tile || dims[2] != (hsize_t)tile || dims[3] != 3)
        s = fl_fail(err, FL_ESHAPE,
                    "%s: /tiles/pixels has tiles of shape (%llu, %llu, %llu), the \"tile\" "
                    "attribute of /tiles says (%d, %d, 3)",
                    path, (unsigned long long)dims[1], (unsigned long long)dims[2],
                    (unsigned long long)dims[3], tile, tile);
    if (s == FL_OK && dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) H5Pget_chunk(dcpl, 4, chunk);
    if (t >= 0) H5Tclose(t);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Dclose(d);
    if (s) return s;

    c->tile = tile;
    c->n_tiles = (int64_t)dims[0];
    if ((s = read_vec(f, path, "/tiles/patient", H5T_INTEGER, H5T_NATIVE_INT32, 4, dims[0],
                      "/tiles/pixels", (void **)&c->tile_patient, err)))
        return s;
    cf->pixels = open_pixels(f, (size_t)(chunk[0] * chunk[1] * chunk[2] * chunk[3]));
    if (cf->pixels < 0)
        return fl_fail(err, FL_EIO, "%s: cannot open /tiles/pixels (%s)", path, fl_h5_msg(msg));
    cf->tile = tile;
    cf->n_tiles = c->n_tiles;
    return FL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* public                                                                                      */

void fl__cohort_file_dims(const fl_cohort_file *f, int *tile, int64_t *n_tiles) {
    *tile = f->tile;
    *n_tiles = f->n_tiles;
}

void fl_cohort_close(fl_cohort_file *f) {
    if (!f) return;
    if (f->pixels >= 0) H5Dclose(f->pixels);
    if (f->file >= 0) H5Fclose(f->file);
    H5Eclear2(H5E_DEFAULT);
    free(f->path);
    free(f);
}

fl_status fl_cohort_open(fl_cohort_file **out, fl_cohort *c, const char *path, fl_err *err) {
    fl_status s;
    hid_t fapl = -1;
    *out = NULL;
    memset(c, 0, sizeof *c);
    fl_h5_quiet();
    fl_cohort_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    f->file = f->pixels = -1;
    /* Strong close: closing the file also closes anything a failure path left open. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    s = fl_h5_open(path, fapl >= 0 ? fapl : H5P_DEFAULT, "not a cohort file (not HDF5)", &f->file,
                   err);
    if (fapl >= 0) H5Pclose(fapl);
    if (s) goto fail;
    if ((s = read_root(f->file, path, c, err)) || (s = read_patients(f->file, path, c, err)))
        goto fail;
    for (int m = 0; m < FL_N_OMICS; m++)
        if ((s = read_omics(f->file, path, c, (fl_omics)m, err))) goto fail;
    if ((s = read_tiles_meta(f->file, f, c, err)) || (s = fl__cohort_check(c, path, err)))
        goto fail;
    H5Eclear2(H5E_DEFAULT);
    *out = f;
    return FL_OK;
fail:
    fl_cohort_close(f);
    fl_cohort_destroy(c);
    return s;
}

fl_status fl_cohort_load(fl_cohort *c, const char *path, fl_err *err) {
    fl_cohort_file *f;
    fl_status s = fl_cohort_open(&f, c, path, err);
    fl_cohort_close(f);
    return s;
}

fl_status fl_cohort_read_tiles(fl_cohort_file *f, int64_t start, int64_t count, uint8_t *out,
                               fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    if (f->pixels < 0)
        return fl_fail(err, FL_ENOTFOUND, "%s: the cohort has no /tiles/pixels", f->path);
    if (start < 0 || count < 0 || start > f->n_tiles || count > f->n_tiles - start)
        return fl_fail(
            err, FL_EINVAL, "%s: tiles [%lld, %lld) lie outside /tiles/pixels (%lld tiles)",
            f->path, (long long)start, (long long)start + (long long)count, (long long)f->n_tiles);
    if (count == 0) return FL_OK;
    if (fl__tiles_io(f->pixels, start, count, f->tile, out, NULL) < 0)
        return fl_fail(err, FL_EIO, "%s: cannot read tiles [%lld, %lld) of /tiles/pixels (%s)",
                       f->path, (long long)start, (long long)(start + count), fl_h5_msg(msg));
    return FL_OK;
}
