/* h5.c - attribute and dataset helpers over HDF5 1.10. */
#include "h5.h"

#include <stdlib.h>
#include <string.h>

void fl_h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static fl_status h5_fail(fl_err *err, const char *file, const char *what, const char *name) {
    return fl_fail(err, FL_EIO, "%s: cannot %s %s", file, what, name);
}

static fl_status set_attr(hid_t obj, const char *name, hid_t type, const void *value,
                          const char *file, fl_err *err) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc < 0 ? h5_fail(err, file, "write attribute", name) : FL_OK;
}

fl_status fl_h5_set_str(hid_t obj, const char *name, const char *value, const char *file,
                        fl_err *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    fl_status s = set_attr(obj, name, t, value, file, err);
    H5Tclose(t);
    return s;
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
    fl_status s = FL_OK;
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    if (a < 0) return fl_fail(err, FL_EFORMAT, "%s: attribute %s is missing", file, name);
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) != H5T_STRING) {
        s = fl_fail(err, FL_EFORMAT, "%s: attribute %s is not a string", file, name);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *v = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 will not convert between character sets */
        if (H5Aread(a, mt, &v) < 0)
            s = h5_fail(err, file, "read attribute", name);
        else
            snprintf(buf, cap, "%s", v ? v : "");
        if (v) H5free_memory(v);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        char *tmp = calloc(n + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (!tmp)
            s = fl_fail(err, FL_ENOMEM, "out of memory");
        else if (H5Aread(a, mt, tmp) < 0)
            s = h5_fail(err, file, "read attribute", name);
        else
            snprintf(buf, cap, "%s", tmp);
        free(tmp);
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return s;
}

static fl_status get_num(hid_t obj, const char *name, hid_t type, void *value, const char *file,
                         fl_err *err) {
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    if (a < 0) return fl_fail(err, FL_EFORMAT, "%s: attribute %s is missing", file, name);
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(ft);
    herr_t rc = (cls == H5T_INTEGER || cls == H5T_FLOAT) ? H5Aread(a, type, value) : -1;
    H5Tclose(ft);
    H5Aclose(a);
    return rc < 0 ? fl_fail(err, FL_EFORMAT, "%s: attribute %s is not a number", file, name)
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
