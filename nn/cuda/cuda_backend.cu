/* cuda_backend.cu - the CUDA backend object: device choice, the stream and the cuBLAS/cuDNN
 * handles bound to it, device memory and transfers, the two scratch buffers, and the table of op
 * functions; the module's one exported symbol, fl_cuda_module_create. Not the ops themselves
 * (the other files of nn/cuda/).
 *
 * Threads: CUDA's current device is per host thread. Creation makes o->device current on the
 * calling thread and every op runs on the current device, so a backend on a device other than 0
 * is used from the thread that created it (device 0 works from any thread). */
#include "cuda_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

[[noreturn]] void fl_cuda_die(const char *file, int line, const char *lib, const char *msg) {
    fprintf(stderr, "fedlung: cuda backend: %s:%d: %s error: %s\n", file, line, lib, msg);
    abort();
}

/* Formats one sentence into err (which may be NULL). The module cannot call fl_fail: it links
 * nothing of fedlung_core. */
__attribute__((format(printf, 2, 3))) static void set_err(fl_err *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

/* ---- memory ---- */

static void *cuda_alloc(fl_backend *be, size_t bytes) {
    fl_cuda *c = FL_CUDA(be);
    void *p = NULL;
    /* cudaMalloc aligns to 256 bytes (the contract asks 64); it returns NULL for 0 bytes, the
     * CPU backend a valid pointer, so 0 becomes 1. */
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError(); /* not an op's error: keep it from FL_CU_LAUNCHED */
        return NULL;
    }
    /* Zero-filled in stream order: every later use of p is an op on the same stream, or an
     * upload/download, which synchronize the stream first. */
    FL_CU(cudaMemsetAsync(p, 0, bytes ? bytes : 1, c->stream));
    return p;
}

static void cuda_free(fl_backend *be, void *p) {
    (void)be;
    /* cudaFree waits for the device, so no queued op still reads p. */
    if (p) FL_CU(cudaFree(p));
}

/* The host buffer may be pageable and freed right after the call: the copy is complete on
 * return (an async copy on the stream, after the ops queued before it, then a wait). */
static void cuda_upload(fl_backend *be, void *dst_dev, const void *src_host, size_t bytes) {
    fl_cuda *c = FL_CUDA(be);
    be->transfers++;
    if (!bytes) return;
    FL_CU(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, c->stream));
    FL_CU(cudaStreamSynchronize(c->stream));
}

static void cuda_download(fl_backend *be, void *dst_host, const void *src_dev, size_t bytes) {
    fl_cuda *c = FL_CUDA(be);
    be->transfers++;
    if (!bytes) return;
    FL_CU(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, c->stream));
    FL_CU(cudaStreamSynchronize(c->stream));
}

static void cuda_copy(fl_backend *be, void *dst_dev, const void *src_dev, size_t bytes) {
    if (!bytes || dst_dev == src_dev) return;
    FL_CU(cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice, FL_CUDA(be)->stream));
}

static void cuda_zero(fl_backend *be, void *p, size_t bytes) {
    if (!bytes) return;
    FL_CU(cudaMemsetAsync(p, 0, bytes, FL_CUDA(be)->stream));
}

/* Grows *buf to at least `bytes` (rounded up to whole MiB, so a slowly growing request does
 * not reallocate each time). The old buffer may still be read by queued ops: wait first. */
static void *grow(fl_cuda *c, void **buf, size_t *have, size_t bytes, const char *what) {
    if (bytes <= *have) return *buf;
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    FL_CU(cudaStreamSynchronize(c->stream));
    if (*buf) FL_CU(cudaFree(*buf));
    *buf = NULL;
    *have = 0;
    if (cudaMalloc(buf, want) != cudaSuccess) {
        char msg[160];
        snprintf(msg, sizeof msg, "out of device memory for a %zu-byte %s", want, what);
        fl_cuda_die(__FILE__, __LINE__, "CUDA", msg);
    }
    *have = want;
    return *buf;
}

/* Both abort through fl_cuda_die when the device has no memory left for them; bytes == 0
 * returns the current buffer (NULL before the first request). */
void *fl_cuda_workspace(fl_backend *be, size_t bytes) {
    fl_cuda *c = FL_CUDA(be);
    return grow(c, &c->workspace, &c->workspace_bytes, bytes, "workspace");
}

void *fl_cuda_bf16_scratch(fl_backend *be, size_t bytes) {
    fl_cuda *c = FL_CUDA(be);
    return grow(c, &c->bf16_scratch, &c->bf16_bytes, bytes, "bf16 scratch");
}

/* Frees c's resources; each may be absent (a creation that failed half way). */
static void release(fl_cuda *c) {
    if (!c) return;
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->workspace) (void)cudaFree(c->workspace);
    if (c->bf16_scratch) (void)cudaFree(c->bf16_scratch);
    if (c->reduce) (void)cudaFree(c->reduce);
    if (c->reduce_host) (void)cudaFreeHost(c->reduce_host);
    if (c->blas) (void)cublasDestroy(c->blas);
    if (c->dnn) (void)cudnnDestroy(c->dnn);
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

static void cuda_destroy(fl_backend *be) {
    if (!be) return;
    fl_cuda *c = FL_CUDA(be);
    /* A kernel that failed asynchronously reports here rather than vanish at exit. */
    if (c && c->stream) FL_CU(cudaStreamSynchronize(c->stream));
    release(c);
    free(be);
}

/* ---- creation ---- */

/* A kernel that does nothing: asking for its attributes tells whether this module carries code
 * the device can run (an architecture it was built for, or PTX the driver can compile). */
static __global__ void fl_cuda_probe_kernel(void) {}

static fl_backend *create(const fl_cuda_options *o, fl_err *err) {
    int device = o ? o->device : 0;
    fl_precision precision = o ? o->precision : FL_PREC_FP32;
    if (precision != FL_PREC_FP32 && precision != FL_PREC_TF32 && precision != FL_PREC_BF16) {
        set_err(err, "unknown precision %d (fp32, tf32 or bf16)", (int)precision);
        return NULL;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        /* cudart reports a missing driver as "insufficient": say which of the two it is. */
        int drv = 0;
        if (e == cudaErrorInsufficientDriver && cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
        if (e == cudaErrorInsufficientDriver && drv == 0)
            set_err(err, "no usable GPU: no NVIDIA driver is loaded (no libcuda.so.1, or a stub)");
        else if (e == cudaErrorInsufficientDriver)
            set_err(err,
                    "no usable GPU: the NVIDIA driver supports CUDA %d.%d, this module was built "
                    "with CUDA %d.%d (update the driver, or rebuild with an older CUDA)",
                    drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
        else
            set_err(err, "no usable GPU: %s",
                    e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device is present");
        (void)cudaGetLastError();
        return NULL;
    }
    if (device < 0 || device >= count) {
        set_err(err, "no CUDA device %d: this machine has %d (cuda:0 to cuda:%d)", device, count,
                count - 1);
        return NULL;
    }
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaFree(0)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        set_err(err, "no usable GPU: device %d: %s", device, cudaGetErrorString(e));
        (void)cudaGetLastError();
        return NULL;
    }
    cudaFuncAttributes attr;
    if ((e = cudaFuncGetAttributes(&attr, fl_cuda_probe_kernel)) != cudaSuccess) {
        set_err(err,
                "no usable GPU: device %d (%s, compute capability %d.%d) cannot run this "
                "module's code (%s); rebuild with -DCMAKE_CUDA_ARCHITECTURES=%d%d",
                device, prop.name, prop.major, prop.minor, cudaGetErrorString(e), prop.major,
                prop.minor);
        (void)cudaGetLastError();
        return NULL;
    }

    fl_backend *be = (fl_backend *)calloc(1, sizeof *be);
    fl_cuda *c = (fl_cuda *)calloc(1, sizeof *c);
    cublasStatus_t bs;
    cudnnStatus_t ds;
    if (!be || !c) {
        set_err(err, "cuda backend: out of host memory");
        goto fail;
    }
    c->device = device;
    c->precision = precision;
    /* A blocking stream: should anything use the legacy default stream after all, it is
     * ordered with the backend's work instead of racing it. */
    if ((e = cudaStreamCreate(&c->stream)) != cudaSuccess ||
        (e = cudaMalloc(&c->reduce, FL_CUDA_REDUCE_SLOTS * sizeof(double))) != cudaSuccess ||
        (e = cudaMallocHost(&c->reduce_host, FL_CUDA_REDUCE_SLOTS * sizeof(double))) !=
            cudaSuccess) {
        set_err(err, "no usable GPU: device %d (%s): %s", device, prop.name, cudaGetErrorString(e));
        goto fail;
    }
    if ((bs = cublasCreate(&c->blas)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        /* FP32 is exact fp32 (the golden checks); TF32 lets tensor cores round the inputs;
         * BF16 GEMMs name their bf16 types and fp32 compute themselves. */
        (bs = cublasSetMathMode(c->blas, precision == FL_PREC_TF32   ? CUBLAS_TF32_TENSOR_OP_MATH
                                         : precision == FL_PREC_FP32 ? CUBLAS_PEDANTIC_MATH
                                                                     : CUBLAS_DEFAULT_MATH)) !=
            CUBLAS_STATUS_SUCCESS) {
        set_err(err, "cannot start cuBLAS on device %d (%s): %s", device, prop.name,
                cublasGetStatusString(bs));
        goto fail;
    }
    if ((ds = cudnnCreate(&c->dnn)) != CUDNN_STATUS_SUCCESS ||
        (ds = cudnnSetStream(c->dnn, c->stream)) != CUDNN_STATUS_SUCCESS) {
        set_err(err, "cannot start cuDNN on device %d (%s): %s", device, prop.name,
                cudnnGetErrorString(ds));
        goto fail;
    }

    be->name = "cuda";
    be->device = FL_DEVICE_CUDA;
    be->threads = 1;
    be->impl = c;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->destroy = cuda_destroy;
#define FL_CUDA_OP(name) be->name = fl_cuda_##name;
    FL_CUDA_OP(nchw_to_nhwc)
    FL_CUDA_OP(nhwc_to_nchw)
    FL_CUDA_OP(conv2d_plan)
    FL_CUDA_OP(conv2d_plan_free)
    FL_CUDA_OP(conv2d_forward)
    FL_CUDA_OP(conv2d_backward)
    FL_CUDA_OP(batchnorm_forward)
    FL_CUDA_OP(batchnorm_backward)
    FL_CUDA_OP(groupnorm_forward)
    FL_CUDA_OP(groupnorm_backward)
    FL_CUDA_OP(layernorm_forward)
    FL_CUDA_OP(layernorm_backward)
    FL_CUDA_OP(relu_forward)
    FL_CUDA_OP(relu_backward)
    FL_CUDA_OP(maxpool_forward)
    FL_CUDA_OP(maxpool_backward)
    FL_CUDA_OP(gap_forward)
    FL_CUDA_OP(gap_backward)
    FL_CUDA_OP(linear_forward)
    FL_CUDA_OP(linear_backward)
    FL_CUDA_OP(dropout_forward)
    FL_CUDA_OP(dropout_backward)
    FL_CUDA_OP(add)
    FL_CUDA_OP(accumulate)
    FL_CUDA_OP(copy_cols)
    FL_CUDA_OP(rowscale)
    FL_CUDA_OP(scale)
    FL_CUDA_OP(sumsq)
    FL_CUDA_OP(sub)
    FL_CUDA_OP(axpy)
    FL_CUDA_OP(softmax_ce)
    FL_CUDA_OP(softmax)
    FL_CUDA_OP(sgd_step)
    FL_CUDA_OP(adamw_step)
#undef FL_CUDA_OP
    return be;

fail:
    release(c);
    free(be);
    (void)cudaGetLastError();
    return NULL;
}

/* The one symbol the module exports (it is compiled with -fvisibility=hidden). */
extern "C" __attribute__((visibility("default"))) fl_backend *
fl_cuda_module_create(const fl_cuda_options *o, fl_err *err) {
    return create(o, err);
}
