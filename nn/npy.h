/* npy.h - NumPy .npy arrays in and out, so numpy users and tests can feed the engine and read
 * its results. Reads format versions 1.0, 2.0 and 3.0 (C order, little-endian, up to 4 dims);
 * writes 1.0. Not a general NumPy reader: no structured dtypes, no Fortran order, no .npz. */
#ifndef FL_NPY_H
#define FL_NPY_H

#include <stdint.h>

#include "../common/status.h"

#define FL_NPY_MAX_DIMS 4

/* Reads a numeric array as float32. Accepts '<f4', '<f8' (rounded to float), and the integer
 * and boolean dtypes ('|b1', '|i1', '|u1', '<i2', '<u2', '<i4', '<u4', '<i8', '<u8', converted
 * to the nearest float). On success *data is a malloc'd array of shape[0]*...*shape[ndim-1]
 * floats (one float for a 0-d array) that the caller frees, *ndim is 0..4, and shape[i] for
 * i >= ndim is 1. On failure *data is NULL and err names the file and what is wrong. */
fl_status fl_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[4], fl_err *err);

/* Reads an integer array (labels) as int32: '<i4', '<i8', and the smaller integer and boolean
 * dtypes; values outside the int32 range and floating dtypes are errors. Same contract as
 * fl_npy_read_f32. */
fl_status fl_npy_read_i32(const char *path, int32_t **data, int *ndim, int64_t shape[4],
                          fl_err *err);

/* Writes data (shape[0]*...*shape[ndim-1] elements, C order; ndim 0..4) as '<f4' or '<i4'.
 * The file is written to "<path>.tmp.XXXXXX" in the same folder, flushed, and renamed over
 * path on success; a failure leaves neither a partial file nor the temporary behind. */
fl_status fl_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                           fl_err *err);
fl_status fl_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape,
                           fl_err *err);

#endif
