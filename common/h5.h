/* h5.h - the few HDF5 1.10 operations fedlung's files need, with errors folded into one
 * sentence naming the file and the object: HDF5's error text, opening a file for reading,
 * string, integer and float attributes, string arrays and float arrays. Not a general HDF5
 * wrapper. `file` in messages is the path. */
#ifndef FL_H5_H
#define FL_H5_H

#include <hdf5.h>
#include <stdint.h>

#include "status.h"

/* Silences HDF5's automatic error printing (process-wide); call before any other H5 use. */
void fl_h5_quiet(void);

#define FL_H5_MSG_LEN 200
/* The innermost description on HDF5's error stack (the most specific one) copied into msg,
 * "unknown HDF5 error" when there is none; the stack is then cleared. Returns msg. */
const char *fl_h5_msg(char msg[FL_H5_MSG_LEN]);

/* Opens path read-only with the file-access properties fapl (H5P_DEFAULT for none), after
 * fl_h5_quiet. Returns FL_OK with *file open, or fails with a sentence naming path:
 * FL_ENOTFOUND / FL_EIO "cannot open: <reason>" when it cannot be read, FL_EFORMAT
 * "<not_hdf5>" (e.g. "not an HDF5 file") when it is no HDF5 file, FL_EIO "cannot open as HDF5
 * (<HDF5's reason>)" when HDF5 refuses it. */
fl_status fl_h5_open(const char *path, hid_t fapl, const char *not_hdf5, hid_t *file, fl_err *err);

/* ---- attributes, wording left to the caller ---- */

/* What reading an attribute gave; the values from FL_H5_ATTR_BADTYPE on all mean "present but
 * unusable", so an optional attribute is refused with r >= FL_H5_ATTR_BADTYPE. */
typedef enum {
    FL_H5_ATTR_OK,
    FL_H5_ATTR_MISSING, /* no attribute of that name */
    FL_H5_ATTR_BADTYPE, /* present, but not a single value of the class asked for */
    FL_H5_ATTR_EREAD,   /* present and well typed, but reading it failed (HDF5 or memory) */
} fl_h5_attr_result;

/* Reads a scalar string attribute, fixed-length or variable-length (as h5py writes str), in
 * its own character set, into a malloc'd *out (the caller frees it; NULL unless OK). */
fl_h5_attr_result fl_h5_attr_str(hid_t loc, const char *name, char **out);
/* Reads a scalar numeric attribute converted to the memory type mtype into out. cls H5T_INTEGER
 * accepts integer attributes only, H5T_FLOAT any number (integer or floating-point). */
fl_h5_attr_result fl_h5_attr_num(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype,
                                 void *out);
/* Creates the scalar attribute name (which must not exist) of file type ftype and writes v
 * (memory type mtype). Returns < 0 on failure, leaving HDF5's error stack for fl_h5_msg. */
herr_t fl_h5_attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v);
/* The same for a fixed-length, NUL-terminated UTF-8 string (h5py reads it as bytes). */
herr_t fl_h5_attr_write_str(hid_t loc, const char *name, const char *v);

/* ---- attributes and datasets with messages ---- */

/* Set: replaces the attribute if it exists (strings fixed-length UTF-8, ints int64, doubles
 * float64). Get: reads a scalar attribute (a string fixed or variable length, truncated to
 * cap; a number of either class, converted). FL_EFORMAT if missing or mistyped, FL_EIO if HDF5
 * fails; messages name file and attribute. */
fl_status fl_h5_set_str(hid_t obj, const char *name, const char *value, const char *file,
                        fl_err *err);
fl_status fl_h5_set_int(hid_t obj, const char *name, int64_t value, const char *file, fl_err *err);
fl_status fl_h5_set_double(hid_t obj, const char *name, double value, const char *file,
                           fl_err *err);
fl_status fl_h5_get_str(hid_t obj, const char *name, char *buf, size_t cap, const char *file,
                        fl_err *err);
fl_status fl_h5_get_int(hid_t obj, const char *name, int64_t *value, const char *file, fl_err *err);
fl_status fl_h5_get_double(hid_t obj, const char *name, double *value, const char *file,
                           fl_err *err);

/* A 1-D dataset of n strings (variable length, UTF-8). */
fl_status fl_h5_write_strings(hid_t loc, const char *name, char *const *s, int n, const char *file,
                              fl_err *err);
/* Reads a 1-D string dataset: *out gets n malloc'd strings (caller frees each and the array). */
fl_status fl_h5_read_strings(hid_t loc, const char *name, char ***out, int *n, const char *file,
                             fl_err *err);
/* A float32 dataset of rank ndim (1 or 2). */
fl_status fl_h5_write_f32(hid_t loc, const char *name, const float *x, int ndim,
                          const hsize_t *dims, const char *file, fl_err *err);
/* Reads a float32 dataset of exactly `count` elements. */
fl_status fl_h5_read_f32(hid_t loc, const char *name, float *x, size_t count, const char *file,
                         fl_err *err);

#endif
