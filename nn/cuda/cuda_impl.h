/* cuda_impl.h - the CUDA backend's shared state and op functions, one per fl_backend field
 * (backend.h has the contracts). Internal to nn/cuda/, which is compiled by nvcc into the module
 * libfedlung_cuda.so; the rest of fedlung reaches it only through nn/cuda_loader.c, which
 * dlopen()s the module and calls fl_cuda_module_create.
 *
 * Every op is enqueued on one stream (fl_cuda.stream) and returns without waiting, except the
 * ones that hand a value to the host (download, sumsq, softmax_ce). Ops return void, as the
 * interface does: a CUDA, cuBLAS or cuDNN error inside an op is a bug or a lost device, and
 * FL_CU/FL_CUBLAS/FL_CUDNN print file, line and the library's message and abort. */
#ifndef FL_CUDA_IMPL_H
#define FL_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "../backend.h"
}

typedef struct {
    int device;
    fl_precision precision;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    void *workspace; /* cuDNN/cuBLAS scratch, grown by fl_cuda_workspace */
    size_t workspace_bytes;
    double *reduce;      /* device scratch for reductions read back (sumsq, the loss) */
    double *reduce_host; /* pinned host copy of it */
    /* (reduce holds FL_CUDA_REDUCE_SLOTS doubles and reduce_host as many, both allocated by
     * cuda_backend.cu; ops use reduce only within one call, on the stream: it is also the
     * device-side scratch of maxpool_backward's window bounds. Nothing else may keep it.) */
    void *bf16_scratch; /* BF16: bf16 copies of an op's inputs, grown by fl_cuda_bf16_scratch */
    size_t bf16_bytes;
} fl_cuda;

#define FL_CUDA(be) ((fl_cuda *)(be)->impl)
/* Doubles in fl_cuda.reduce (and reduce_host): a final value or two plus one partial per block
 * of the two-pass deterministic reductions (sumsq, softmax_ce). */
#define FL_CUDA_REDUCE_SLOTS 1024

[[noreturn]] void fl_cuda_die(const char *file, int line, const char *lib, const char *msg);

#define FL_CU(call)                                                                             \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess) fl_cuda_die(__FILE__, __LINE__, "CUDA", cudaGetErrorString(e_)); \
    } while (0)
#define FL_CUBLAS(call)                                                           \
    do {                                                                          \
        cublasStatus_t e_ = (call);                                               \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                          \
            fl_cuda_die(__FILE__, __LINE__, "cuBLAS", cublasGetStatusString(e_)); \
    } while (0)
#define FL_CUDNN(call)                                                         \
    do {                                                                       \
        cudnnStatus_t e_ = (call);                                             \
        if (e_ != CUDNN_STATUS_SUCCESS)                                        \
            fl_cuda_die(__FILE__, __LINE__, "cuDNN", cudnnGetErrorString(e_)); \
    } while (0)
/* After a kernel launch: launch errors surface here, execution errors at the next sync. */
#define FL_CU_LAUNCHED() FL_CU(cudaGetLastError())

/* Grid size for n elements at `threads` per block, capped for grid-stride loops. */
static inline unsigned fl_cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 65535u * 8u ? 65535u * 8u : b);
}

/* Device scratch of at least `bytes` (the backend's one workspace; valid until the next call). */
void *fl_cuda_workspace(fl_backend *be, size_t bytes);
/* BF16 scratch of at least `bytes`, separate from the workspace. */
void *fl_cuda_bf16_scratch(fl_backend *be, size_t bytes);
/* (Both grow by waiting for the stream, freeing and allocating again, rounded up to whole MiB,
 * so request the largest size early (conv2d_plan does); they abort through fl_cuda_die when the
 * device is out of memory; bytes == 0 returns the current buffer, NULL before any request.)
 * Nothing else in the module reads back to the host: labels and class weights reach the ops as
 * device pointers (fl_model_loss_ce uploads them); upload, download, sumsq and softmax_ce are the
 * calls that wait for the stream and count be->transfers. */

/* ---- the op functions (backend.h documents each) ---- */
void fl_cuda_nchw_to_nhwc(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);
void fl_cuda_nhwc_to_nchw(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);
fl_status fl_cuda_conv2d_plan(fl_backend *be, const fl_conv2d_shape *s, void **plan, fl_err *err);
void fl_cuda_conv2d_plan_free(fl_backend *be, void *plan);
void fl_cuda_conv2d_forward(fl_backend *be, void *plan, const float *x, const float *w,
                            const float *b, float *y);
void fl_cuda_conv2d_backward(fl_backend *be, void *plan, const float *x, const float *w,
                             const float *dy, float *dx, float beta, float *dw, float *db);
void fl_cuda_batchnorm_forward(fl_backend *be, const float *x, float *y, int M, int C,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, float momentum, float eps, int train,
                               float *save_mean, float *save_invstd);
void fl_cuda_batchnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int M, int C, const float *gamma,
                                const float *save_mean, const float *save_invstd, int train,
                                float *dgamma, float *dbeta);
void fl_cuda_groupnorm_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C,
                               int G, const float *gamma, const float *beta, float eps,
                               float *save_mean, float *save_invstd);
void fl_cuda_groupnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int N, int HW, int C, int G, const float *gamma,
                                const float *save_mean, const float *save_invstd, float *dgamma,
                                float *dbeta);
void fl_cuda_layernorm_forward(fl_backend *be, const float *x, float *y, int M, int F,
                               const float *gamma, const float *beta, float eps, float *save_mean,
                               float *save_invstd);
void fl_cuda_layernorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int M, int F, const float *gamma,
                                const float *save_mean, const float *save_invstd, float *dgamma,
                                float *dbeta);
void fl_cuda_relu_forward(fl_backend *be, const float *x, float *y, size_t n);
void fl_cuda_relu_backward(fl_backend *be, const float *y, const float *dy, float *dx,
                           float beta_acc, size_t n);
void fl_cuda_maxpool_forward(fl_backend *be, const float *x, float *y, int32_t *idx, int N, int H,
                             int W, int C, int k, int s, int p, int P, int Q);
void fl_cuda_maxpool_backward(fl_backend *be, const float *dy, const int32_t *idx, float *dx,
                              float beta_acc, int N, int H, int W, int C, int P, int Q);
void fl_cuda_gap_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C);
void fl_cuda_gap_backward(fl_backend *be, const float *dy, float *dx, float beta_acc, int N, int HW,
                          int C);
void fl_cuda_linear_forward(fl_backend *be, const float *x, const float *w, const float *b,
                            float *y, int M, int IN, int OUT);
void fl_cuda_linear_backward(fl_backend *be, const float *x, const float *w, const float *dy,
                             float *dx, float beta_acc, float *dw, float *db, int M, int IN,
                             int OUT);
void fl_cuda_dropout_forward(fl_backend *be, const float *x, float *y, float *mask, size_t n,
                             float p, uint64_t seed);
void fl_cuda_dropout_backward(fl_backend *be, const float *dy, const float *mask, float *dx,
                              float beta_acc, size_t n);
void fl_cuda_add(fl_backend *be, const float *a, const float *b, float *y, size_t n);
void fl_cuda_accumulate(fl_backend *be, float *dst, const float *src, float beta, size_t n);
void fl_cuda_copy_cols(fl_backend *be, const float *src, int src_ld, float *dst, int dst_ld, int M,
                       int F, float beta);
void fl_cuda_rowscale(fl_backend *be, const float *x, const float *s, float *y, int M, int F);
void fl_cuda_scale(fl_backend *be, float *x, float a, size_t n);
double fl_cuda_sumsq(fl_backend *be, const float *x, size_t n);
void fl_cuda_sub(fl_backend *be, const float *a, const float *b, float *y, size_t n);
void fl_cuda_axpy(fl_backend *be, float *y, const float *x, float a, size_t n);
float fl_cuda_softmax_ce(fl_backend *be, const float *logits, const int32_t *labels,
                         const float *class_w, int M, int K, float *dlogits, float *probs);
void fl_cuda_softmax(fl_backend *be, const float *logits, float *probs, int M, int K);
void fl_cuda_sgd_step(fl_backend *be, float *w, const float *g, float *buf, size_t n, float lr,
                      float momentum, float wd, int nesterov);
void fl_cuda_adamw_step(fl_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                        float lr, float b1, float b2, float eps, float wd, int step);

/* The module's one exported symbol (nn/cuda_loader.c looks it up by this name): creates the
 * backend on device o->device, or returns NULL with err set to one sentence. */
extern "C" fl_backend *fl_cuda_module_create(const fl_cuda_options *o, fl_err *err);
#define FL_CUDA_MODULE_ENTRY "fl_cuda_module_create"

#endif
