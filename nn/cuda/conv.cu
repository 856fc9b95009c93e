/* conv.cu - 2-D convolution on the GPU through cuDNN 9's legacy convolution API: activations
 * stay channels-last (NHWC tensor descriptors), and since cuDNN's fast NHWC kernels want the
 * filter channels-last too, each plan keeps a KRSC copy of the PyTorch-layout (KCRS) weights,
 * made by a transpose kernel at every forward and reused by the backward (backend.h allows it);
 * weight gradients come back KRSC and are transposed into dw. 1x1 (and C == 1) filters have the
 * same bytes in both layouts and skip the copies in FP32/TF32. Algorithms are chosen once per
 * plan by cuDNN's heuristics (no timing runs). Not the graph API and not fused with BN/ReLU.
 *
 * BF16 is autocast-style copies, not a bf16 activation graph: every forward converts x to a bf16
 * copy and the fp32 weights to bf16 KRSC, runs cuDNN on bf16 tensors with fp32 compute, then
 * converts y back to fp32 (adding the bias); every backward converts dy and x (again) to bf16,
 * and converts cuDNN's bf16 dx (beta accumulation in fp32) and bf16 dw back. Per conv and
 * training step that is five extra passes over activation-sized tensors (x twice and dy once
 * fp32 -> bf16, y and dx once bf16 -> fp32): 18 bytes per element of x (22 when dx accumulates)
 * and 12 per element of y beyond cuDNN's own traffic, which itself is bf16. The math runs on
 * bf16 tensor cores; the memory traffic is not halved, so memory-bound layers gain little or
 * lose. The bias gradient is always summed from the fp32 dy. */
#include "kernels.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Largest cuDNN workspace an algorithm may ask for. */
#define CONV_WS_CAP ((size_t)256 << 20)

typedef struct {
    fl_conv2d_shape s;
    fl_precision prec;
    int same_layout;    /* R*S == 1 or C == 1: KCRS and KRSC are the same bytes */
    cudnnDataType_t dt; /* the tensors cuDNN sees: FLOAT, or BFLOAT16 copies */
    cudnnTensorDescriptor_t x_desc, y_desc; /* (N,C,H,W) and (N,K,P,Q), both NHWC in memory */
    cudnnFilterDescriptor_t w_desc;         /* (K,C,R,S), KRSC in memory */
    /* One convolution descriptor per direction: each carries the math type of its algorithm. */
    cudnnConvolutionDescriptor_t fwd_conv, data_conv, filt_conv;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t data_algo;
    cudnnConvolutionBwdFilterAlgo_t filt_algo;
    size_t fwd_ws, data_ws, filt_ws; /* cuDNN workspace bytes of each algorithm */
    size_t bwd_ws;                   /* backward's whole workspace request (see plan) */
    size_t fwd_bf, bwd_bf;           /* BF16: bf16 scratch bytes of forward and backward */
    /* The weights as cuDNN reads them, written by forward and read by backward: K*R*S*C floats
     * (FP32/TF32 when !same_layout) or bf16 (BF16); NULL when cuDNN reads w itself. */
    void *w_krsc;
} conv_plan;

/* ---- kernels ---- */

static __device__ inline float to_f32(float v) {
    return v;
}
static __device__ inline float to_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <typename T> static __device__ inline T from_f32(float v);
template <> __device__ inline float from_f32<float>(float v) {
    return v;
}
template <> __device__ inline __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* out (K, R*S, C) = w (K, C, R*S), converted to T. One thread per output element (coalesced
 * writes; the weights are small). */
template <typename T>
static __global__ void w_to_krsc_k(const float *__restrict__ w, T *__restrict__ out, int K, int C,
                                   int RS) {
    size_t n = (size_t)K * C * RS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t c = i % C, t = i / C, rs = t % RS, k = t / RS;
        out[i] = from_f32<T>(w[(k * C + c) * RS + rs]);
    }
}

/* dw (K, C, R*S) = in (K, R*S, C) in fp32 (overwrite). */
template <typename T>
static __global__ void krsc_to_kcrs_k(const T *__restrict__ in, float *__restrict__ dw, int K,
                                      int C, int RS) {
    size_t n = (size_t)K * C * RS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t rs = i % RS, t = i / RS, c = t % C, k = t / C;
        dw[i] = to_f32(in[(k * RS + rs) * C + c]);
    }
}

template <typename T>
static void w_to_krsc(cudaStream_t st, const float *w, T *out, const fl_conv2d_shape *s) {
    size_t n = (size_t)s->K * s->C * s->R * s->S;
    w_to_krsc_k<T>
        <<<fl_cuda_blocks(n, FL_K_THREADS), FL_K_THREADS, 0, st>>>(w, out, s->K, s->C, s->R * s->S);
    FL_CU_LAUNCHED();
}

template <typename T>
static void krsc_to_kcrs(cudaStream_t st, const T *in, float *dw, const fl_conv2d_shape *s) {
    size_t n = (size_t)s->K * s->C * s->R * s->S;
    krsc_to_kcrs_k<T>
        <<<fl_cuda_blocks(n, FL_K_THREADS), FL_K_THREADS, 0, st>>>(in, dw, s->K, s->C, s->R * s->S);
    FL_CU_LAUNCHED();
}

/* ---- plan ---- */

/* The module links nothing of fedlung_core (no fl_fail): one sentence into err, if any. */
__attribute__((format(printf, 3, 4))) static fl_status conv_fail(fl_err *err, fl_status st,
                                                                 const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

#define DNN_TRY(call, what)                                                                     \
    do {                                                                                        \
        cudnnStatus_t e_ = (call);                                                              \
        if (e_ != CUDNN_STATUS_SUCCESS) {                                                       \
            status = conv_fail(err, FL_EBACKEND, "conv2d %s: cuDNN %s failed: %s", shape, what, \
                               cudnnGetErrorString(e_));                                        \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

/* Whether the heuristics' math type may run at this precision. FP32 must be true fp32 (FMA
 * kernels, never tensor cores: the golden checks); its descriptors stay FMA, so `relaxed` lets
 * an algorithm listed as DEFAULT be tried under FMA as a last resort (cuDNN's workspace query
 * refuses it if it has no FMA kernel). TF32 never lets cuDNN convert fp32 to fp16. */
static bool math_ok(fl_precision prec, cudnnMathType_t m, bool relaxed) {
    if (prec == FL_PREC_FP32) return m == CUDNN_FMA_MATH || (relaxed && m == CUDNN_DEFAULT_MATH);
    if (prec == FL_PREC_TF32) return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return true;
}

/* Transform-domain algorithms (FFT, Winograd) round differently from a direct sum, by more than
 * the 1e-5 the FP32 golden checks allow on some shapes: FP32 takes them only as a last resort. */
static bool fwd_transform(int a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
static bool data_transform(int a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
static bool filt_transform(int a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/* The math type a convolution descriptor starts with, before the heuristics are asked: FMA for
 * FP32; DEFAULT for TF32 (on sm_80+ it permits TF32 tensor cores on fp32 data, as PyTorch's
 * allow_tf32); TENSOR_OP for bf16 data. */
static cudnnMathType_t base_math(fl_precision prec) {
    return prec == FL_PREC_FP32   ? CUDNN_FMA_MATH
           : prec == FL_PREC_TF32 ? CUDNN_DEFAULT_MATH
                                  : CUDNN_TENSOR_OP_MATH;
}

/* Picks the first of the heuristics' n results (best first) that succeeded, fits CONV_WS_CAP,
 * runs at this precision and whose workspace size cuDNN confirms with the descriptor set to its
 * math type (FP32 keeps FMA whatever the result says). Three passes: deterministic and no
 * transform algorithm in FP32; then any determinism; then anything math_ok allows relaxed. Returns
 * the index or -1; *ws gets the workspace bytes. query(algo, &bytes) asks cuDNN for the workspace
 * size. */
template <typename Perf, typename Query>
static int choose(const Perf *perf, int n, fl_precision prec, bool (*transform)(int),
                  cudnnConvolutionDescriptor_t conv, Query query, size_t *ws) {
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < n; i++) {
            const Perf *r = &perf[i];
            if (r->status != CUDNN_STATUS_SUCCESS || r->memory > CONV_WS_CAP) continue;
            if (!math_ok(prec, r->mathType, pass == 2)) continue;
            if (pass == 0 && r->determinism != CUDNN_DETERMINISTIC) continue;
            if (pass < 2 && prec == FL_PREC_FP32 && transform((int)r->algo)) continue;
            cudnnMathType_t m = prec == FL_PREC_FP32 ? CUDNN_FMA_MATH : r->mathType;
            if (cudnnSetConvolutionMathType(conv, m) != CUDNN_STATUS_SUCCESS) continue;
            size_t bytes = 0;
            if (query(r->algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > CONV_WS_CAP) continue;
            *ws = bytes > r->memory ? bytes : r->memory;
            return i;
        }
    }
    return -1;
}

static size_t maxz(size_t a, size_t b) {
    return a > b ? a : b;
}

void fl_cuda_conv2d_plan_free(fl_backend *be, void *plan) {
    (void)be;
    conv_plan *p = (conv_plan *)plan;
    if (!p) return;
    /* Destroying a NULL descriptor is not documented as a no-op: guard each. */
    if (p->x_desc) (void)cudnnDestroyTensorDescriptor(p->x_desc);
    if (p->y_desc) (void)cudnnDestroyTensorDescriptor(p->y_desc);
    if (p->w_desc) (void)cudnnDestroyFilterDescriptor(p->w_desc);
    if (p->fwd_conv) (void)cudnnDestroyConvolutionDescriptor(p->fwd_conv);
    if (p->data_conv) (void)cudnnDestroyConvolutionDescriptor(p->data_conv);
    if (p->filt_conv) (void)cudnnDestroyConvolutionDescriptor(p->filt_conv);
    /* cudaFree waits for the device: no queued forward still writes w_krsc. */
    if (p->w_krsc) FL_CU(cudaFree(p->w_krsc));
    free(p);
}

fl_status fl_cuda_conv2d_plan(fl_backend *be, const fl_conv2d_shape *s, void **out, fl_err *err) {
    fl_cuda *cu = FL_CUDA(be);
    fl_status status = FL_OK;
    char shape[128]; /* nine ints of up to 11 characters and the text between */
    snprintf(shape, sizeof shape, "%dx%dx%dx%d -> %d (%dx%d/%d pad %d)", s->N, s->C, s->H, s->W,
             s->K, s->R, s->S, s->stride, s->pad);
    *out = NULL;
    if (s->N < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->K < 1 || s->R < 1 || s->S < 1 ||
        s->stride < 1 || s->pad < 0)
        return conv_fail(err, FL_EINVAL, "conv2d %s: dimensions must be positive", shape);
    int P = (s->H + 2 * s->pad - s->R) / s->stride + 1,
        Q = (s->W + 2 * s->pad - s->S) / s->stride + 1;
    if (s->H + 2 * s->pad < s->R || s->W + 2 * s->pad < s->S || s->P != P || s->Q != Q)
        return conv_fail(err, FL_ESHAPE, "conv2d %s: output %dx%d, expected %dx%d", shape, s->P,
                         s->Q, P, Q);

    conv_plan *p = (conv_plan *)calloc(1, sizeof *p);
    if (!p) return conv_fail(err, FL_ENOMEM, "conv2d %s: out of host memory", shape);
    p->s = *s;
    p->prec = cu->precision;
    p->same_layout = s->R * s->S == 1 || s->C == 1;
    p->dt = p->prec == FL_PREC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    size_t nx = (size_t)s->N * s->H * s->W * s->C, ny = (size_t)s->N * s->P * s->Q * s->K;
    size_t nw = (size_t)s->K * s->C * s->R * s->S;
    int rows = s->N * s->P * s->Q;
    {
        DNN_TRY(cudnnCreateTensorDescriptor(&p->x_desc), "tensor descriptor");
        DNN_TRY(cudnnCreateTensorDescriptor(&p->y_desc), "tensor descriptor");
        DNN_TRY(cudnnCreateFilterDescriptor(&p->w_desc), "filter descriptor");
        DNN_TRY(cudnnCreateConvolutionDescriptor(&p->fwd_conv), "convolution descriptor");
        DNN_TRY(cudnnCreateConvolutionDescriptor(&p->data_conv), "convolution descriptor");
        DNN_TRY(cudnnCreateConvolutionDescriptor(&p->filt_conv), "convolution descriptor");
        DNN_TRY(
            cudnnSetTensor4dDescriptor(p->x_desc, CUDNN_TENSOR_NHWC, p->dt, s->N, s->C, s->H, s->W),
            "input descriptor");
        DNN_TRY(
            cudnnSetTensor4dDescriptor(p->y_desc, CUDNN_TENSOR_NHWC, p->dt, s->N, s->K, s->P, s->Q),
            "output descriptor");
        /* Filter format NHWC = KRSC. */
        DNN_TRY(
            cudnnSetFilter4dDescriptor(p->w_desc, p->dt, CUDNN_TENSOR_NHWC, s->K, s->C, s->R, s->S),
            "filter descriptor");
        cudnnConvolutionDescriptor_t convs[3] = {p->fwd_conv, p->data_conv, p->filt_conv};
        for (int i = 0; i < 3; i++) {
            /* Cross-correlation, as PyTorch; fp32 accumulation for bf16 data too. */
            DNN_TRY(cudnnSetConvolution2dDescriptor(convs[i], s->pad, s->pad, s->stride, s->stride,
                                                    1, 1, CUDNN_CROSS_CORRELATION,
                                                    CUDNN_DATA_FLOAT),
                    "convolution descriptor");
            DNN_TRY(cudnnSetConvolutionMathType(convs[i], base_math(p->prec)), "math type");
        }
        int on, oc, oh, ow;
        DNN_TRY(cudnnGetConvolution2dForwardOutputDim(p->fwd_conv, p->x_desc, p->w_desc, &on, &oc,
                                                      &oh, &ow),
                "output size");
        if (on != s->N || oc != s->K || oh != s->P || ow != s->Q) {
            status =
                conv_fail(err, FL_ESHAPE, "conv2d %s: cuDNN makes %dx%dx%dx%d, not %dx%dx%dx%d",
                          shape, on, oh, ow, oc, s->N, s->P, s->Q, s->K);
            goto fail;
        }

        cudnnHandle_t h = cu->dnn;
        int n = 0, idx;
        cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        DNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x_desc, p->w_desc, p->fwd_conv,
                                                       p->y_desc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                       &n, fp),
                "forward heuristics");
        idx = choose(
            fp, n, p->prec, fwd_transform, p->fwd_conv,
            [&](cudnnConvolutionFwdAlgo_t a, size_t *b) {
                return cudnnGetConvolutionForwardWorkspaceSize(h, p->x_desc, p->w_desc, p->fwd_conv,
                                                               p->y_desc, a, b);
            },
            &p->fwd_ws);
        if (idx < 0) goto no_algo;
        p->fwd_algo = fp[idx].algo;

        cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        DNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                    h, p->w_desc, p->y_desc, p->data_conv, p->x_desc,
                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, dp),
                "backward-data heuristics");
        idx = choose(
            dp, n, p->prec, data_transform, p->data_conv,
            [&](cudnnConvolutionBwdDataAlgo_t a, size_t *b) {
                return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w_desc, p->y_desc,
                                                                    p->data_conv, p->x_desc, a, b);
            },
            &p->data_ws);
        if (idx < 0) goto no_algo;
        p->data_algo = dp[idx].algo;

        cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        DNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                    h, p->x_desc, p->y_desc, p->filt_conv, p->w_desc,
                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, wp),
                "backward-filter heuristics");
        idx = choose(
            wp, n, p->prec, filt_transform, p->filt_conv,
            [&](cudnnConvolutionBwdFilterAlgo_t a, size_t *b) {
                return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                    h, p->x_desc, p->y_desc, p->filt_conv, p->w_desc, a, b);
            },
            &p->filt_ws);
        if (idx < 0) goto no_algo;
        p->filt_algo = wp[idx].algo;
    }

    /* The KRSC weights this plan owns (w itself when the layouts agree in fp32). */
    if (p->prec == FL_PREC_BF16 || !p->same_layout) {
        size_t bytes = nw * (p->prec == FL_PREC_BF16 ? sizeof(__nv_bfloat16) : sizeof(float));
        if (cudaMalloc(&p->w_krsc, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            p->w_krsc = NULL;
            status = conv_fail(err, FL_ENOMEM,
                               "conv2d %s: out of device memory for %zu bytes of "
                               "weights",
                               shape, bytes);
            goto fail;
        }
    }
    /* Backward runs its steps one after the other on the stream, so they share one workspace
     * request: the bias sum's partials, then backward data, then backward filter followed by
     * the KRSC weight gradient (FP32/TF32 when the layouts differ; BF16 keeps it in bf16
     * scratch). */
    p->bwd_ws =
        maxz(s->has_bias ? fl_cuda_col_doubles(1, rows, s->K) * sizeof(double) : 0,
             maxz(p->data_ws,
                  fl_cuda_align(p->filt_ws) +
                      (p->prec != FL_PREC_BF16 && !p->same_layout ? nw * sizeof(float) : 0)));
    if (p->prec == FL_PREC_BF16) {
        size_t bx = fl_cuda_align(nx * 2), by = fl_cuda_align(ny * 2);
        p->fwd_bf = bx + by;
        p->bwd_bf = by + 2 * bx + fl_cuda_align(nw * 2); /* dy, x, dx, dw */
    }
    /* Grow the shared buffers now, not in the first training step (growing waits for the
     * stream); both abort the process if the device is out of memory. */
    (void)fl_cuda_workspace(be, maxz(p->fwd_ws, p->bwd_ws));
    if (p->prec == FL_PREC_BF16) (void)fl_cuda_bf16_scratch(be, maxz(p->fwd_bf, p->bwd_bf));
    *out = p;
    return FL_OK;

no_algo:
    status = conv_fail(err, FL_EUNSUPPORTED,
                       "conv2d %s: cuDNN offers no %s algorithm within %zu MiB of workspace", shape,
                       p->prec == FL_PREC_FP32   ? "fp32 (FMA)"
                       : p->prec == FL_PREC_TF32 ? "tf32"
                                                 : "bf16",
                       CONV_WS_CAP >> 20);
fail:
    fl_cuda_conv2d_plan_free(be, p);
    return status;
}

/* ---- forward and backward ---- */

void fl_cuda_conv2d_forward(fl_backend *be, void *plan, const float *x, const float *w,
                            const float *b, float *y) {
    fl_cuda *cu = FL_CUDA(be);
    conv_plan *p = (conv_plan *)plan;
    const fl_conv2d_shape *s = &p->s;
    cudaStream_t st = cu->stream;
    size_t nx = (size_t)s->N * s->H * s->W * s->C, ny = (size_t)s->N * s->P * s->Q * s->K;
    const float one = 1.0f, zero = 0.0f;
    void *ws = fl_cuda_workspace(be, p->fwd_ws);
    if (p->prec == FL_PREC_BF16) {
        char *bf = (char *)fl_cuda_bf16_scratch(be, p->fwd_bf);
        __nv_bfloat16 *xb = (__nv_bfloat16 *)bf,
                      *yb = (__nv_bfloat16 *)(bf + fl_cuda_align(nx * 2));
        __nv_bfloat16 *wb = (__nv_bfloat16 *)p->w_krsc;
        fl_cuda_to_bf16(st, x, xb, nx);
        w_to_krsc<__nv_bfloat16>(st, w, wb, s);
        FL_CUDNN(cudnnConvolutionForward(cu->dnn, &one, p->x_desc, xb, p->w_desc, wb, p->fwd_conv,
                                         p->fwd_algo, ws, p->fwd_ws, &zero, p->y_desc, yb));
        fl_cuda_from_bf16(st, yb, y, ny, 0.0f, s->has_bias ? b : NULL, s->K);
        return;
    }
    const float *wk = w;
    if (!p->same_layout) {
        w_to_krsc<float>(st, w, (float *)p->w_krsc, s);
        wk = (const float *)p->w_krsc;
    }
    FL_CUDNN(cudnnConvolutionForward(cu->dnn, &one, p->x_desc, x, p->w_desc, wk, p->fwd_conv,
                                     p->fwd_algo, ws, p->fwd_ws, &zero, p->y_desc, y));
    if (s->has_bias && b) fl_cuda_bias<true>(st, y, b, ny, s->K);
}

void fl_cuda_conv2d_backward(fl_backend *be, void *plan, const float *x, const float *w,
                             const float *dy, float *dx, float beta, float *dw, float *db) {
    fl_cuda *cu = FL_CUDA(be);
    conv_plan *p = (conv_plan *)plan;
    const fl_conv2d_shape *s = &p->s;
    cudaStream_t st = cu->stream;
    size_t nx = (size_t)s->N * s->H * s->W * s->C, ny = (size_t)s->N * s->P * s->Q * s->K;
    int rows = s->N * s->P * s->Q;
    const float one = 1.0f, zero = 0.0f;
    char *ws = (char *)fl_cuda_workspace(be, p->bwd_ws);

    /* db (K) = sum over N, P, Q of dy, from the fp32 dy in every precision. */
    if (s->has_bias && db) fl_cuda_colsum(st, dy, rows, s->K, (double *)ws, db);

    if (p->prec == FL_PREC_BF16) {
        char *bf = (char *)fl_cuda_bf16_scratch(be, p->bwd_bf);
        size_t bx = fl_cuda_align(nx * 2), by = fl_cuda_align(ny * 2);
        __nv_bfloat16 *dyb = (__nv_bfloat16 *)bf, *xb = (__nv_bfloat16 *)(bf + by);
        __nv_bfloat16 *dxb = (__nv_bfloat16 *)(bf + by + bx);
        __nv_bfloat16 *dwb = (__nv_bfloat16 *)(bf + by + 2 * bx);
        fl_cuda_to_bf16(st, dy, dyb, ny);
        if (dx) {
            /* bf16 dx from cuDNN, then dx = beta*dx + dx_bf16 in fp32. */
            FL_CUDNN(cudnnConvolutionBackwardData(cu->dnn, &one, p->w_desc, p->w_krsc, p->y_desc,
                                                  dyb, p->data_conv, p->data_algo, ws, p->data_ws,
                                                  &zero, p->x_desc, dxb));
            fl_cuda_from_bf16(st, dxb, dx, nx, beta, NULL, 0);
        }
        if (dw) {
            fl_cuda_to_bf16(st, x, xb, nx);
            FL_CUDNN(cudnnConvolutionBackwardFilter(cu->dnn, &one, p->x_desc, xb, p->y_desc, dyb,
                                                    p->filt_conv, p->filt_algo, ws, p->filt_ws,
                                                    &zero, p->w_desc, dwb));
            krsc_to_kcrs<__nv_bfloat16>(st, dwb, dw, s);
        }
        return;
    }

    const float *wk = p->same_layout ? w : (const float *)p->w_krsc;
    if (dx) /* cuDNN blends: dx = 1*grad + beta*dx (beta == 0 does not read dx). */
        FL_CUDNN(cudnnConvolutionBackwardData(cu->dnn, &one, p->w_desc, wk, p->y_desc, dy,
                                              p->data_conv, p->data_algo, ws, p->data_ws, &beta,
                                              p->x_desc, dx));
    if (dw) {
        float *dwk = p->same_layout ? dw : (float *)(ws + fl_cuda_align(p->filt_ws));
        FL_CUDNN(cudnnConvolutionBackwardFilter(cu->dnn, &one, p->x_desc, x, p->y_desc, dy,
                                                p->filt_conv, p->filt_algo, ws, p->filt_ws, &zero,
                                                p->w_desc, dwk));
        if (!p->same_layout) krsc_to_kcrs<float>(st, dwk, dw, s);
    }
}
