/* h5.c - HDF5 error text, opening for reading, and attribute and dataset helpers over HDF5
 * 1.10. Nothing here keeps state beyond HDF5's own (the error stack, the silenced printing). */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fl_h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    char *msg = data;
    (void)n;
    if (e->desc && e->desc[0]) snprintf(msg, FL_H5_MSG_LEN, "%s", e->desc); /* the last one wins */
    return 0;
}

const char *fl_h5_msg(char msg[FL_H5_MSG_LEN]) {
    snprintf(msg, FL_H5_MSG_LEN, "unknown HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_cb, msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

fl_status fl_h5_open(const char *path, hid_t fapl, const char *not_hdf5, hid_t *file, fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    *file = -1;
    fl_h5_quiet();
    if (access(path, R_OK) != 0)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return fl_fail(err, FL_EFORMAT, "%s: %s", path, not_hdf5);
    }
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (*file < 0)
        return fl_fail(err, FL_EIO, "%s: cannot open as HDF5 (%s)", path, fl_h5_msg(msg));
    return FL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                  */

/* Opens the scalar attribute name and checks its class (H5T_FLOAT also accepts integers). */
static fl_h5_attr_result attr_open(hid_t loc, const char *name, H5T_class_t cls, hid_t *a,
                                   hid_t *t) {
    *a = *t = -1;
    if (H5Aexists(loc, name) <= 0) return FL_H5_ATTR_MISSING;
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    if (*a < 0) return FL_H5_ATTR_EREAD;
    *t = H5Aget_type(*a);
    hid_t space = H5Aget_space(*a);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (*t < 0 || npoints < 0) return FL_H5_ATTR_EREAD;
    H5T_class_t c = H5Tget_class(*t);
    if (npoints != 1 || (c != cls && !(cls == H5T_FLOAT && c == H5T_INTEGER)))
        return FL_H5_ATTR_BADTYPE;
    return FL_H5_ATTR_OK;
}

static void attr_close(hid_t a, hid_t t) {
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
}

fl_h5_attr_result fl_h5_attr_str(hid_t loc, const char *name, char **out) {
    hid_t a, t, mt = -1;
    *out = NULL;
    fl_h5_attr_result r = attr_open(loc, name, H5T_STRING, &a, &t);
    if (r != FL_H5_ATTR_OK) goto done;
    r = FL_H5_ATTR_EREAD;
    /* HDF5 will not convert between character sets: read in the attribute's own. */
    if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) goto done;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &v) < 0) goto done;
        *out = strdup(v ? v : "");
        if (v) H5free_memory(v);
    } else {
        size_t size = H5Tget_size(t);
        char *v = calloc(1, size + 1);
        if (v && H5Tset_size(mt, size + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, v) >= 0)
            *out = v;
        else
            free(v);
    }
    if (*out) r = FL_H5_ATTR_OK;
done:
    if (mt >= 0) H5Tclose(mt);
    attr_close(a, t);
    return r;
}

fl_h5_attr_result fl_h5_attr_num(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype,
                                 void *out) {
    hid_t a, t;
    fl_h5_attr_result r = attr_open(loc, name, cls, &a, &t);
    if (r == FL_H5_ATTR_OK && H5Aread(a, mtype, out) < 0) r = FL_H5_ATTR_EREAD;
    attr_close(a, t);
    return r;
}

herr_t fl_h5_attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR), a = -1;
    herr_t r = -1;
    if (space < 0) return -1;
    a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) r = H5Awrite(a, mtype, v);
    if (a >= 0 && H5Aclose(a) < 0) r = -1;
    H5Sclose(space);
    return r;
}

herr_t fl_h5_attr_write_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t r = -1;
    if (t < 0) return -1;
    if (H5Tset_size(t, strlen(v) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
        r = fl_h5_attr_write(loc, name, t, t, v);
    H5Tclose(t);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* attributes and datasets with messages                                                       */

static fl_status h5_fail(fl_err *err, const char *file, const char *what, const char *name) {
    return fl_fail(err, FL_EIO, "%s: cannot %s %s", file, what, name);
}

/* Replaces the attribute name, whose file and memory type are both type. */
static fl_status set_attr(hid_t obj, const char *name, hid_t type, const void *value,
                          const char *file, fl_err *err) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    herr_t rc = fl_h5_attr_write(obj, name, type, type, value);
    return rc < 0 ? h5_fail(err, file, "write attribute", name) : FL_OK;
}

fl_status fl_h5_set_str(hid_t obj, const char *name, const char *value, const char *file,
                        fl_err *err) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    return fl_h5_attr_write_str(obj, name, value) < 0 ? h5_fail(err, file, "write attribute", name)
                                                      : FL_OK;
}

fl_status fl_h5_set_int(hid_t obj, const char *name, int64_t value, const char *file, fl_err *err) {
    return set_attr(obj, name, H5T_NATIVE_INT64, &value, file, err);
}

fl_status fl_h5_set_double(hid_t obj, const char *name, double value, const char *file,
                           fl_err *err) {
    return set_attr(obj, name, H5T_NATIVE_DOUBLE, &value, file, err);
}

fl_status fl_h5_get_str(hid_t obj, const char *name, char *buf, size_t cap, const char *file,
                        fl_err *err) {
    char *v;
    switch (fl_h5_attr_str(obj, name, &v)) {
    case FL_H5_ATTR_OK:
        snprintf(buf, cap, "%s", v);
        free(v);
        return FL_OK;
    case FL_H5_ATTR_MISSING:
        return fl_fail(err, FL_EFORMAT, "%s: attribute %s is missing", file, name);
    case FL_H5_ATTR_BADTYPE:
        return fl_fail(err, FL_EFORMAT, "%s: attribute %s is not a string", file, name);
    default:
        return h5_fail(err, file, "read attribute", name);
    }
}

/* Any number (either class) converted to type. */
static fl_status get_num(hid_t obj, const char *name, hid_t type, void *value, const char *file,
                         fl_err *err) {
    fl_h5_attr_result r = fl_h5_attr_num(obj, name, H5T_FLOAT, type, value);
    if (r == FL_H5_ATTR_MISSING)
        return fl_fail(err, FL_EFORMAT, "%s: attribute %s is missing", file, name);
    return r != FL_H5_ATTR_OK
               ? fl_fail(err, FL_EFORMAT, "%s: attribute %s is not a number", file, name)
               : FL_OK;
}

fl_status fl_h5_get_int(hid_t obj, const char *name, int64_t *value, const char *file,
                        fl_err *err) {
    return get_num(obj, name, H5T_NATIVE_INT64, value, file, err);
}

fl_status fl_h5_get_double(hid_t obj, const char *name, double *value, const char *file,
                           fl_err *err) {
    return get_num(obj, name, H5T_NATIVE_DOUBLE, value, file, err);
}

fl_status fl_h5_write_strings(hid_t loc, const char *name, char *const *s, int n, const char *file,
                              fl_err *err) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : (n ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) : 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    H5Tclose(t);
    return rc < 0 ? h5_fail(err, file, "write dataset", name) : FL_OK;
}

fl_status fl_h5_read_strings(hid_t loc, const char *name, char ***out, int *n, const char *file,
                             fl_err *err) {
    *out = NULL;
    *n = 0;
    hid_t d = H5Lexists(loc, name, H5P_DEFAULT) > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : -1;
    if (d < 0) return fl_fail(err, FL_EFORMAT, "%s: dataset %s is missing", file, name);
    fl_status s = FL_OK;
    hid_t space = H5Dget_space(d), ft = H5Dget_type(d);
    hsize_t dims[1] = {0};
    char **raw = NULL;
    if (H5Sget_simple_extent_ndims(space) != 1 || H5Tget_class(ft) != H5T_STRING ||
        H5Tis_variable_str(ft) <= 0) {
        s = fl_fail(err, FL_EFORMAT, "%s: %s is not a 1-D array of strings", file, name);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    raw = calloc(dims[0] + 1, sizeof(char *));
    *out = calloc(dims[0] + 1, sizeof(char *));
    if (!raw || !*out) {
        s = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft));
    herr_t rc = dims[0] ? H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : 0;
    H5Tclose(mt);
    if (rc < 0) {
        s = h5_fail(err, file, "read dataset", name);
        goto done;
    }
    for (hsize_t i = 0; i < dims[0]; i++) {
        (*out)[i] = strdup(raw[i] ? raw[i] : "");
        if (raw[i]) H5free_memory(raw[i]);
        if (!(*out)[i]) s = fl_fail(err, FL_ENOMEM, "out of memory");
    }
    *n = (int)dims[0];
done:
    if (s != FL_OK && *out) {
        for (hsize_t i = 0; i < dims[0]; i++) free((*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    free(raw);
    H5Tclose(ft);
    H5Sclose(space);
    H5Dclose(d);
    return s;
}

fl_status fl_h5_write_f32(hid_t loc, const char *name, const float *x, int ndim,
                          const hsize_t *dims, const char *file, fl_err *err) {
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    return rc < 0 ? h5_fail(err, file, "write dataset", name) : FL_OK;
}

fl_status fl_h5_read_f32(hid_t loc, const char *name, float *x, size_t count, const char *file,
                         fl_err *err) {
    hid_t d = H5Lexists(loc, name, H5P_DEFAULT) > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : -1;
    if (d < 0) return fl_fail(err, FL_EFORMAT, "%s: dataset %s is missing", file, name);
    hid_t space = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    fl_status s = FL_OK;
    if (n != (hssize_t)count)
        s = fl_fail(err, FL_ESHAPE, "%s: %s has %lld values, expected %zu", file, name,
                    (long long)n, count);
    else if (count && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        s = h5_fail(err, file, "read dataset", name);
    H5Sclose(space);
    H5Dclose(d);
    return s;
}
