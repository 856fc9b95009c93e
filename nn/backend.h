/* backend.h - the compute backend interface: a struct of function pointers that every device
 * (cpu/ now, cuda/ later) fills in. Model code calls only these; it never includes oneDNN,
 * BLAS or CUDA headers. Not a tensor library: ops take raw pointers and explicit dimensions.
 *
 * Layout contract (all backends):
 *   - 4-D activations are channels-last: x[((n*H + h)*W + w)*C + c]  ("NHWC").
 *   - 2-D activations are row-major (M rows, F features).
 *   - Parameters keep PyTorch's layout: conv weight (K, C, R, S), linear weight (OUT, IN).
 *   - Every pointer given to an op lives on the backend's device (from be->alloc).
 *
 * Gradient contract: an op's input gradient is accumulated as dx = beta*dx + grad, with beta 0
 * (overwrite) or 1 (add); parameter gradients (dw, db, dgamma, dbeta) are overwritten. A NULL
 * dx means "not needed". Where a backward may alias dx with dy, its comment says so. */
#ifndef FL_BACKEND_H
#define FL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

typedef enum { FL_DEVICE_CPU = 0, FL_DEVICE_CUDA = 1 } fl_device;

typedef struct {
    int N, C, H, W; /* input batch, channels, height, width */
    int K, R, S;    /* output channels, kernel height and width */
    int stride, pad;
    int P, Q;     /* output height and width: (H + 2*pad - R)/stride + 1 */
    int has_bias; /* bias of K elements */
} fl_conv2d_shape;

typedef struct fl_backend fl_backend;

struct fl_backend {
    const char *name;
    fl_device device;
    int threads;
    void *impl; /* backend-private state */
    /* Host<->device traffic, counted by every backend the same way: each upload and download,
     * and each scalar an op reads back (softmax_ce's loss, sumsq). A test hook: tests assert
     * how many a training step makes (cpu counts its memcpys as the GPU would its copies). */
    uint64_t transfers;

    /* ---- memory ---- */
    /* Returns zero-filled, 64-byte-aligned device memory, or NULL. */
    void *(*alloc)(fl_backend *be, size_t bytes);
    void (*free)(fl_backend *be, void *p); /* free(NULL) is a no-op */
    void (*upload)(fl_backend *be, void *dst_dev, const void *src_host, size_t bytes);
    void (*download)(fl_backend *be, void *dst_host, const void *src_dev, size_t bytes);
    void (*copy)(fl_backend *be, void *dst_dev, const void *src_dev, size_t bytes);
    void (*zero)(fl_backend *be, void *p, size_t bytes);
    /* Frees the backend itself and everything it owns. */
    void (*destroy)(fl_backend *be);

    /* ---- layout ---- */
    void (*nchw_to_nhwc)(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);
    void (*nhwc_to_nchw)(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);

    /* ---- conv2d: x (N,H,W,C), w (K,C,R,S), b (K) or NULL, y (N,P,Q,K) ---- */
    /* Builds the backend's plan for one shape; *plan is freed with conv2d_plan_free. */
    fl_status (*conv2d_plan)(fl_backend *be, const fl_conv2d_shape *s, void **plan, fl_err *err);
    void (*conv2d_plan_free)(fl_backend *be, void *plan);
    void (*conv2d_forward)(fl_backend *be, void *plan, const float *x, const float *w,
                           const float *b, float *y);
    /* Must follow conv2d_forward on the same plan with the same w (the plan may keep w in its
     * preferred layout). dx may be NULL; db may be NULL when there is no bias. */
    void (*conv2d_backward)(fl_backend *be, void *plan, const float *x, const float *w,
                            const float *dy, float *dx, float beta, float *dw, float *db);

    /* ---- batchnorm2d over M = N*H*W rows of C channels ----
     * train: normalise with batch statistics (biased variance), then running = (1-momentum) *
     * running + momentum * batch (unbiased variance for running_var), as PyTorch does.
     * eval: normalise with running statistics. Either way save_mean/save_invstd (C each)
     * receive the mean and 1/sqrt(var+eps) that were used. */
    void (*batchnorm_forward)(fl_backend *be, const float *x, float *y, int M, int C,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, float momentum, float eps, int train,
                              float *save_mean, float *save_invstd);
    /* train = 0: the statistics were constants (eval-mode / frozen BN). */
    void (*batchnorm_backward)(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int C, const float *gamma,
                               const float *save_mean, const float *save_invstd, int train,
                               float *dgamma, float *dbeta);

    /* ---- groupnorm over x (N, HW, C), G groups of C/G channels; save_* have N*G ---- */
    void (*groupnorm_forward)(fl_backend *be, const float *x, float *y, int N, int HW, int C,
                              int G, const float *gamma, const float *beta, float eps,
                              float *save_mean, float *save_invstd);
    void (*groupnorm_backward)(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int N, int HW, int C, int G, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta);

    /* ---- layernorm over the last dimension: x (M, F); save_* have M ---- */
    void (*layernorm_forward)(fl_backend *be, const float *x, float *y, int M, int F,
                              const float *gamma, const float *beta, float eps, float *save_mean,
                              float *save_invstd);
    void (*layernorm_backward)(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int F, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta);

    /* ---- relu: y may equal x; backward reads y; dx may equal dy when beta_acc == 0 ---- */
    void (*relu_forward)(fl_backend *be, const float *x, float *y, size_t n);
    void (*relu_backward)(fl_backend *be, const float *y, const float *dy, float *dx,
                          float beta_acc, size_t n);

    /* ---- max pooling, window k, stride s, padding p (padding never wins) ----
     * x (N,H,W,C), y (N,P,Q,C); idx (N,P,Q,C) receives the flat h*W+w of the winner (the
     * first maximum in row-major window order, as PyTorch). */
    void (*maxpool_forward)(fl_backend *be, const float *x, float *y, int32_t *idx, int N, int H,
                            int W, int C, int k, int s, int p, int P, int Q);
    void (*maxpool_backward)(fl_backend *be, const float *dy, const int32_t *idx, float *dx,
                             float beta_acc, int N, int H, int W, int C, int P, int Q);

    /* ---- global average pool: x (N, HW, C) -> y (N, C) ---- */
    void (*gap_forward)(fl_backend *be, const float *x, float *y, int N, int HW, int C);
    void (*gap_backward)(fl_backend *be, const float *dy, float *dx, float beta_acc, int N, int HW,
                         int C);

    /* ---- linear: y (M,OUT) = x (M,IN) w^T + b; w (OUT,IN); b may be NULL ---- */
    void (*linear_forward)(fl_backend *be, const float *x, const float *w, const float *b,
                           float *y, int M, int IN, int OUT);
    void (*linear_backward)(fl_backend *be, const float *x, const float *w, const float *dy,
                            float *dx, float beta_acc, float *dw, float *db, int M, int IN,
                            int OUT);

    /* ---- dropout: mask[i] = 0 or 1/(1-p), drawn from (seed, i) alone, so results do not
     * depend on the thread count; y = x * mask. backward: dx = beta*dx + dy * mask. ---- */
    void (*dropout_forward)(fl_backend *be, const float *x, float *y, float *mask, size_t n,
                            float p, uint64_t seed);
    void (*dropout_backward)(fl_backend *be, const float *dy, const float *mask, float *dx,
                             float beta_acc, size_t n);

    /* ---- element-wise helpers ---- */
    void (*add)(fl_backend *be, const float *a, const float *b, float *y, size_t n); /* y=a+b */
    /* dst = beta*dst + src */
    void (*accumulate)(fl_backend *be, float *dst, const float *src, float beta, size_t n);
    /* Column block copy: dst[i*dst_ld + j] = beta*dst[...] + src[i*src_ld + j], j < F. */
    void (*copy_cols)(fl_backend *be, const float *src, int src_ld, float *dst, int dst_ld, int M,
                      int F, float beta);
    /* y[i,:] = s[i] * x[i,:], x and y (M,F), s (M). y may equal x. */
    void (*rowscale)(fl_backend *be, const float *x, const float *s, float *y, int M, int F);
    /* x *= a */
    void (*scale)(fl_backend *be, float *x, float a, size_t n);
    /* Returns the sum of squares of x, accumulated in double (read back to the host). */
    double (*sumsq)(fl_backend *be, const float *x, size_t n);
    /* y = a - b (federation: the update w - w0); y may equal a or b */
    void (*sub)(fl_backend *be, const float *a, const float *b, float *y, size_t n);
    /* y += a * x (federation: noise added to an update, a step along a direction) */
    void (*axpy)(fl_backend *be, float *y, const float *x, float a, size_t n);

    /* ---- softmax cross-entropy, PyTorch semantics ----
     * logits (M,K); labels (M) int32 with -1 = ignore; class_w (K) or NULL. Loss = sum_i
     * w[y_i] * -log softmax(logits_i)[y_i] / sum_i w[y_i] over non-ignored rows (0 if none).
     * Writes dlogits (M,K) = d loss / d logits (overwrite) and probs (M,K) if non-NULL.
     * Returns the loss (the one scalar a step reads back). */
    float (*softmax_ce)(fl_backend *be, const float *logits, const int32_t *labels,
                        const float *class_w, int M, int K, float *dlogits, float *probs);
    void (*softmax)(fl_backend *be, const float *logits, float *probs, int M, int K);

    /* ---- optimizers over flat slabs of n elements, PyTorch semantics ----
     * SGD: g' = g + wd*w; buf = momentum*buf + g' (buf starts at 0, dampening 0);
     * nesterov: g' += momentum*buf, else g' = buf (when momentum > 0); w -= lr*g'. */
    void (*sgd_step)(fl_backend *be, float *w, const float *g, float *buf, size_t n, float lr,
                     float momentum, float wd, int nesterov);
    /* AdamW: w *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
     * w -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps), t = step (1-based). */
    void (*adamw_step)(fl_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                       float lr, float b1, float b2, float eps, float wd, int step);
};

/* Precision of the CUDA backend's convolutions and linear layers. FP32 is exact fp32 (cuDNN FMA
 * math, cuBLAS pedantic: the golden checks); TF32 lets tensor cores round inputs to 10-bit
 * mantissas; BF16 runs them on bf16 copies of inputs and weights with fp32 accumulation and
 * fp32 master weights, autocast-style. The CPU backend is always FP32. */
typedef enum { FL_PREC_FP32 = 0, FL_PREC_TF32 = 1, FL_PREC_BF16 = 2 } fl_precision;

typedef struct {
    int device;             /* CUDA device ordinal (default 0) */
    fl_precision precision; /* default FL_PREC_FP32 */
} fl_cuda_options;

/* Creates the CUDA backend from the module libfedlung_cuda.so (nn/cuda/, loaded at run time so
 * a build with CUDA still runs where there is no GPU or no CUDA library). NULL on failure with
 * err set to one sentence saying why (no module, no driver, no GPU, ...). o may be NULL. */
fl_backend *fl_backend_cuda_new(const fl_cuda_options *o, fl_err *err);

/* The backend a command's --device names: "cpu" or "cuda" / "cuda:N" (the CUDA device ordinal),
 * with `threads` for the CPU and `precision` for CUDA (the CPU refuses anything but FP32). NULL
 * with err set when the name is unknown or that backend cannot start. */
fl_backend *fl_backend_new(const char *device, int threads, fl_precision precision, fl_err *err);

/* Parses "fp32", "tf32" or "bf16"; FL_EINVAL otherwise. */
fl_status fl_precision_parse(const char *s, fl_precision *out, fl_err *err);

/* Creates the CPU backend (oneDNN convolutions, OpenBLAS GEMM, OpenMP loops) with `threads`
 * threads (<= 0: FEDLUNG_THREADS, else the number of cores). NULL on failure, with err set. */
fl_backend *fl_backend_cpu_new(int threads, fl_err *err);

/* The thread count to use: `requested` if > 0, else $FEDLUNG_THREADS if set, else cores. */
int fl_threads_default(int requested);

#endif
