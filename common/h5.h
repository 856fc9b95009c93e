/* h5.h - the few HDF5 1.10 operations fedlung's files need, with errors folded into one
 * sentence naming the file and the object: string, integer and float attributes, string
 * arrays and float arrays. Not a general HDF5 wrapper. `file` in messages is the path. */
#ifndef FL_H5_H
#define FL_H5_H

#include <hdf5.h>
#include <stdint.h>

#include "status.h"

/* Silences HDF5's automatic error printing (process-wide); call before any other H5 use. */
void fl_h5_quiet(void);

fl_status fl_h5_set_str(hid_t obj, const char *name, const char *value, const char *file,
                        fl_err *err);
fl_status fl_h5_set_int(hid_t obj, const char *name, int64_t value, const char *file, fl_err *err);
fl_status fl_h5_set_double(hid_t obj, const char *name, double value, const char *file,
                           fl_err *err);
/* Reads a string attribute (fixed or variable length) into buf (truncated to cap). */
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
