/* linear.cu - the fully connected layer on the GPU: three cuBLAS GEMMs (forward, dx, dw) on
 * row-major data through the column-major identity (a row-major (r, c) matrix is a column-major
 * (c, r) one), a bias broadcast kernel and a deterministic column sum for the bias gradient.
 * Weights keep PyTorch's (OUT, IN). The handle's math mode (set at creation by precision:
 * pedantic fp32, TF32 tensor ops, or default) decides FP32 vs TF32; BF16 converts the GEMM's
 * inputs to bf16 copies on every call (forward: x and w; backward: dy, w and x) and runs
 * cublasGemmEx with fp32 compute and fp32 outputs. Not a general GEMM wrapper. */
#include "kernels.cuh"

/* C (m x n, column-major, ldc) = op(A) op(B) + beta*C, beta == 0 not reading C. A and B are
 * fp32, or with bf16 their bf16 copies (fp32 accumulation and output either way). */
static void gemm(fl_cuda *cu, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc,
                 bool bf16) {
    const float one = 1.0f;
    if (bf16)
        FL_CUBLAS(cublasGemmEx(cu->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF,
                               ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
    else
        FL_CUBLAS(cublasSgemm(cu->blas, ta, tb, m, n, k, &one, (const float *)A, lda,
                              (const float *)B, ldb, &beta, C, ldc));
}

void fl_cuda_linear_forward(fl_backend *be, const float *x, const float *w, const float *b,
                            float *y, int M, int IN, int OUT) {
    fl_cuda *cu = FL_CUDA(be);
    cudaStream_t st = cu->stream;
    if (M <= 0 || OUT <= 0) return;
    size_t ny = (size_t)M * OUT;
    if (b) fl_cuda_bias<false>(st, y, b, ny, OUT);
    if (IN <= 0) {
        if (!b) FL_CU(cudaMemsetAsync(y, 0, ny * sizeof(float), st));
        return;
    }
    /* y (M,OUT) = x (M,IN) w^T [+ y]; column-major: y^T (OUT x M) = op_T(w: IN x OUT) x^T. */
    const void *xa = x, *wa = w;
    bool bf16 = cu->precision == FL_PREC_BF16;
    if (bf16) {
        size_t nx = (size_t)M * IN, nw = (size_t)OUT * IN;
        char *bf = (char *)fl_cuda_bf16_scratch(be, fl_cuda_align(nx * 2) + fl_cuda_align(nw * 2));
        __nv_bfloat16 *xb = (__nv_bfloat16 *)bf,
                      *wb = (__nv_bfloat16 *)(bf + fl_cuda_align(nx * 2));
        fl_cuda_to_bf16(st, x, xb, nx);
        fl_cuda_to_bf16(st, w, wb, nw);
        xa = xb;
        wa = wb;
    }
    gemm(cu, CUBLAS_OP_T, CUBLAS_OP_N, OUT, M, IN, wa, IN, xa, IN, b ? 1.0f : 0.0f, y, OUT, bf16);
}

void fl_cuda_linear_backward(fl_backend *be, const float *x, const float *w, const float *dy,
                             float *dx, float beta_acc, float *dw, float *db, int M, int IN,
                             int OUT) {
    fl_cuda *cu = FL_CUDA(be);
    cudaStream_t st = cu->stream;
    if (M <= 0 || IN <= 0 || OUT <= 0) {
        /* Degenerate shapes: the parameter gradients are empty sums. */
        size_t m = M > 0 ? (size_t)M : 0, in = IN > 0 ? (size_t)IN : 0;
        size_t out = OUT > 0 ? (size_t)OUT : 0;
        if (dw && out * in != 0) FL_CU(cudaMemsetAsync(dw, 0, out * in * sizeof(float), st));
        if (db && out) FL_CU(cudaMemsetAsync(db, 0, out * sizeof(float), st));
        if (dx && beta_acc == 0.0f && m * in != 0)
            FL_CU(cudaMemsetAsync(dx, 0, m * in * sizeof(float), st));
        return;
    }
    size_t nx = (size_t)M * IN, nw = (size_t)OUT * IN, ny = (size_t)M * OUT;
    const void *xa = x, *wa = w, *dya = dy;
    bool bf16 = cu->precision == FL_PREC_BF16;
    if (bf16) {
        /* One request for all three copies: dy (both GEMMs), w (dx), x (dw). */
        size_t by = fl_cuda_align(ny * 2), bw = fl_cuda_align(nw * 2);
        char *bf = (char *)fl_cuda_bf16_scratch(be, by + bw + fl_cuda_align(nx * 2));
        __nv_bfloat16 *dyb = (__nv_bfloat16 *)bf, *wb = (__nv_bfloat16 *)(bf + by);
        __nv_bfloat16 *xb = (__nv_bfloat16 *)(bf + by + bw);
        fl_cuda_to_bf16(st, dy, dyb, ny);
        dya = dyb;
        if (dx) {
            fl_cuda_to_bf16(st, w, wb, nw);
            wa = wb;
        }
        if (dw) {
            fl_cuda_to_bf16(st, x, xb, nx);
            xa = xb;
        }
    }
    /* dx (M,IN) = beta*dx + dy (M,OUT) w (OUT,IN); column-major: dx^T (IN x M) = w^T dy^T. */
    if (dx)
        gemm(cu, CUBLAS_OP_N, CUBLAS_OP_N, IN, M, OUT, wa, IN, dya, OUT, beta_acc, dx, IN, bf16);
    /* dw (OUT,IN) = dy^T (OUT,M) x (M,IN); column-major: dw^T (IN x OUT) = x^T (IN x M) dy. */
    if (dw) gemm(cu, CUBLAS_OP_N, CUBLAS_OP_T, IN, OUT, M, xa, IN, dya, OUT, 0.0f, dw, IN, bf16);
    /* db (OUT) = column sums of the fp32 dy, in double, deterministic. */
    if (db) {
        double *ws = (double *)fl_cuda_workspace(be, fl_cuda_col_doubles(1, M, OUT) * 8);
        fl_cuda_colsum(st, dy, M, OUT, ws, db);
    }
}
