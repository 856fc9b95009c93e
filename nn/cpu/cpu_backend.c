/* cpu_backend.c - the CPU backend object: memory, threads, and the table of op functions.
 * The ops themselves live in the other files of nn/cpu/ (conv.c uses oneDNN, linear.c
 * OpenBLAS, the rest are OpenMP loops). */
#include "cpu_impl.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fl_threads_default(int requested) {
    if (requested > 0) return requested;
    const char *env = getenv("FEDLUNG_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *cpu_alloc(fl_backend *be, size_t bytes) {
    (void)be;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

static void cpu_free(fl_backend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_copy(fl_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}

/* Uploads and downloads are plain copies here, counted as the GPU counts its transfers. */
static void cpu_upload(fl_backend *be, void *dst, const void *src, size_t bytes) {
    be->transfers++;
    cpu_copy(be, dst, src, bytes);
}

static void cpu_download(fl_backend *be, void *dst, const void *src, size_t bytes) {
    be->transfers++;
    cpu_copy(be, dst, src, bytes);
}

static void cpu_zero(fl_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
}

static void cpu_destroy(fl_backend *be) {
    if (!be) return;
    fl_cpu_conv_shutdown(be);
    free(be);
}

fl_backend *fl_backend_cpu_new(int threads, fl_err *err) {
    fl_backend *be = calloc(1, sizeof *be);
    if (!be) {
        fl_fail(err, FL_ENOMEM, "cpu backend: out of memory");
        return NULL;
    }
    be->name = "cpu";
    be->device = FL_DEVICE_CPU;
    be->threads = fl_threads_default(threads);
    omp_set_num_threads(be->threads);
    openblas_set_num_threads(be->threads);

    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->destroy = cpu_destroy;

#define FL_CPU_OP(name) be->name = fl_cpu_##name;
    FL_CPU_OP(nchw_to_nhwc)
    FL_CPU_OP(nhwc_to_nchw)
    FL_CPU_OP(conv2d_plan)
    FL_CPU_OP(conv2d_plan_free)
    FL_CPU_OP(conv2d_forward)
    FL_CPU_OP(conv2d_backward)
    FL_CPU_OP(batchnorm_forward)
    FL_CPU_OP(batchnorm_backward)
    FL_CPU_OP(groupnorm_forward)
    FL_CPU_OP(groupnorm_backward)
    FL_CPU_OP(layernorm_forward)
    FL_CPU_OP(layernorm_backward)
    FL_CPU_OP(relu_forward)
    FL_CPU_OP(relu_backward)
    FL_CPU_OP(maxpool_forward)
    FL_CPU_OP(maxpool_backward)
    FL_CPU_OP(gap_forward)
    FL_CPU_OP(gap_backward)
    FL_CPU_OP(linear_forward)
    FL_CPU_OP(linear_backward)
    FL_CPU_OP(dropout_forward)
    FL_CPU_OP(dropout_backward)
    FL_CPU_OP(add)
    FL_CPU_OP(accumulate)
    FL_CPU_OP(copy_cols)
    FL_CPU_OP(rowscale)
    FL_CPU_OP(scale)
    FL_CPU_OP(sumsq)
    FL_CPU_OP(sub)
    FL_CPU_OP(axpy)
    FL_CPU_OP(softmax_ce)
    FL_CPU_OP(softmax)
    FL_CPU_OP(sgd_step)
    FL_CPU_OP(adamw_step)
#undef FL_CPU_OP

    if (fl_cpu_conv_startup(be, err) != FL_OK) {
        free(be);
        return NULL;
    }
    return be;
}
