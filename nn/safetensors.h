/* safetensors.h - the safetensors weight format (8-byte little-endian header length, a JSON
 * header, raw little-endian tensor bytes): how torchvision weights come in and models go out.
 * Not a general JSON library; not a checkpoint (see checkpoint.h for SHA-checked HDF5). */
#ifndef FL_SAFETENSORS_H
#define FL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "model.h"

#define FL_ST_MAX_DIMS 8

typedef enum {
    FL_ST_BOOL,
    FL_ST_U8,
    FL_ST_I8,
    FL_ST_U16,
    FL_ST_I16,
    FL_ST_U32,
    FL_ST_I32,
    FL_ST_U64,
    FL_ST_I64,
    FL_ST_F16,
    FL_ST_BF16,
    FL_ST_F32,
    FL_ST_F64,
    FL_ST_F8_E4M3, /* listed, not readable */
    FL_ST_F8_E5M2, /* listed, not readable */
} fl_st_dtype;

/* One tensor of an open file. data points into the file's mapping (not necessarily aligned);
 * it stays valid until fl_safetensors_close. */
typedef struct {
    const char *name;
    fl_st_dtype dtype;
    int ndim; /* 0 (a scalar) .. FL_ST_MAX_DIMS */
    int64_t shape[FL_ST_MAX_DIMS];
    size_t numel;
    const void *data;
    size_t nbytes; /* numel * element size = end - begin */
} fl_st_tensor;

typedef struct fl_safetensors fl_safetensors;

/* The dtype's name in the format ("F32", "I64", ...); its element size in bytes; whether it is
 * one of the floating types this reader converts to float (F16, BF16, F32, F64). */
const char *fl_st_dtype_name(fl_st_dtype t);
size_t fl_st_dtype_size(fl_st_dtype t);
int fl_st_dtype_is_float(fl_st_dtype t);

/* Opens and validates path (memory-mapped read-only): the header must be valid JSON of the
 * format, every dtype known, every shape's bytes equal to its data_offsets span, every span
 * inside the file, and names unique. Overlapping or unsorted spans are accepted. On failure
 * *out is NULL and err names the file and the first problem. */
fl_status fl_safetensors_open(fl_safetensors **out, const char *path, fl_err *err);
void fl_safetensors_close(fl_safetensors *st); /* NULL is a no-op */

/* Tensors in header order. */
int fl_safetensors_count(const fl_safetensors *st);
const fl_st_tensor *fl_safetensors_tensor(const fl_safetensors *st, int i);
/* The tensor called name, or NULL. */
const fl_st_tensor *fl_safetensors_find(const fl_safetensors *st, const char *name);
/* The "__metadata__" value for key, or NULL. */
const char *fl_safetensors_metadata(const fl_safetensors *st, const char *key);

/* Converts t's numel elements to float (F32, F64, F16, BF16) or int64 (integer and BOOL
 * dtypes) into out. FL_EUNSUPPORTED for other dtypes, with err naming the file and tensor. */
fl_status fl_safetensors_read_f32(const fl_safetensors *st, const fl_st_tensor *t, float *out,
                                  fl_err *err);
fl_status fl_safetensors_read_i64(const fl_safetensors *st, const fl_st_tensor *t, int64_t *out,
                                  fl_err *err);

/* Loads every parameter and buffer of m's graph from path by torchvision name, converting
 * floating dtypes to float. Errors (the model is left unchanged): a missing tensor, a shape
 * that differs (both shapes named), a non-floating tensor for a parameter, or a floating
 * tensor in the file that the model does not have. Integer tensors the model does not have
 * (BatchNorm's I64 "num_batches_tracked") are skipped silently. */
fl_status fl_safetensors_load_model(fl_model *m, const char *path, fl_err *err);

/* As fl_safetensors_load_model, but parameters whose names start with one of the prefixes in
 * the NULL-terminated list skip (e.g. {"fc.", NULL} to keep a freshly initialised classifier
 * when fine-tuning ImageNet weights for another number of classes): they keep their values,
 * and file tensors under those prefixes are ignored. skip may be NULL. */
fl_status fl_safetensors_load_model_skip(fl_model *m, const char *path, const char *const *skip,
                                         fl_err *err);

/* Writes every parameter and buffer of m as F32 in graph order, with an optional
 * "__metadata__" of string pairs given as a NULL-terminated list {key0, value0, key1, ...}
 * (metadata may be NULL). Written to "<path>.tmp.XXXXXX", fsynced and renamed over path; a
 * failure leaves nothing behind. */
fl_status fl_safetensors_save_model(fl_model *m, const char *path, const char *const *metadata,
                                    fl_err *err);

#endif
