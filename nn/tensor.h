/* tensor.h - a typed view of engine memory: shape, dtype and the device it lives on. The
 * engine keeps parameters, gradients and activations in slabs it owns; an fl_tensor names one
 * piece of them for code outside the engine (checkpoints, federation, explanations). A view
 * owns nothing and is valid while its model lives. */
#ifndef FL_TENSOR_H
#define FL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef enum { FL_F32 = 0 } fl_dtype;

typedef struct {
    float *data;      /* on `device` */
    int ndim;         /* 0..4 */
    int64_t shape[4]; /* PyTorch order: parameters as PyTorch, activations N,C,H,W / N,F */
    fl_dtype dtype;
    fl_device device;
    int channels_last; /* 1: a 4-D activation stored NHWC (every backend's layout) */
} fl_tensor;

static inline size_t fl_tensor_numel(const fl_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

#endif
