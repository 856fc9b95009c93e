/* eltwise.cu - the CUDA backend's element-wise ops: ReLU, dropout (the CPU's mask, bit for bit),
 * add/accumulate/scale/sub/axpy, column copies, row scaling, the sum of squares, and the
 * NCHW <-> NHWC layout changes. Grid-stride kernels on the backend's stream; none allocates.
 * Not fused kernels: those belong to the ops that need them. */
#include "cuda_impl.h"
#include "kernels.cuh"

#define THREADS 256u

/* Every thread of a grid-stride loop over n elements. */
#define FOR_EACH(i, n)                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

#define LAUNCH(kernel, n, ...)                                                                  \
    do {                                                                                        \
        if ((n) == 0) break;                                                                    \
        kernel<<<fl_cuda_blocks((n), THREADS), THREADS, 0, FL_CUDA(be)->stream>>>(__VA_ARGS__); \
        FL_CU_LAUNCHED();                                                                       \
    } while (0)

/* ---- relu ---- */

/* No __restrict__ in this file where the contract lets outputs alias inputs (y == x, dx == dy,
 * sub's y == a or b): each element is read before it is written, by the same thread. */
static __global__ void relu_forward_k(const float *x, float *y, size_t n) {
    FOR_EACH(i, n) {
        float v = x[i];
        y[i] = v < 0.0f ? 0.0f : v; /* NaN stays visible, as torch.relu */
    }
}

static __global__ void relu_backward_k(const float *y, const float *dy, float *dx, float beta,
                                       size_t n) {
    FOR_EACH(i, n) {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = beta == 0.0f ? g : beta * dx[i] + g;
    }
}

void fl_cuda_relu_forward(fl_backend *be, const float *x, float *y, size_t n) {
    LAUNCH(relu_forward_k, n, x, y, n);
}

void fl_cuda_relu_backward(fl_backend *be, const float *y, const float *dy, float *dx,
                           float beta_acc, size_t n) {
    if (!dx) return; /* "not needed" (backend.h) */
    LAUNCH(relu_backward_k, n, y, dy, dx, beta_acc, n);
}

/* ---- dropout ---- */

/* splitmix64's finaliser, as nn/cpu/eltwise.c: the masks must agree bit for bit. */
__host__ __device__ static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Element i keeps its value when u_i >= p, u_i = the top 24 bits of mix64(base + (i+1)*golden)
 * as a float in [0, 1) (exact: a 24-bit integer times 2^-24), exactly as the CPU. */
static __global__ void dropout_forward_k(const float *x, float *y, float *mask, size_t n, float p,
                                         float keep, uint64_t base) {
    FOR_EACH(i, n) {
        uint64_t z = mix64(base + (i + 1) * 0x9E3779B97F4A7C15ull);
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        float m = u >= p ? keep : 0.0f;
        if (mask) mask[i] = m;
        y[i] = x[i] * m;
    }
}

static __global__ void dropout_backward_k(const float *dy, const float *mask, float *dx, float beta,
                                          size_t n) {
    FOR_EACH(i, n) {
        float g = dy[i] * mask[i];
        dx[i] = beta == 0.0f ? g : beta * dx[i] + g;
    }
}

void fl_cuda_dropout_forward(fl_backend *be, const float *x, float *y, float *mask, size_t n,
                             float p, uint64_t seed) {
    float keep = p <= 0.0f ? 1.0f : p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    uint64_t base = mix64(seed + 0x9E3779B97F4A7C15ull);
    LAUNCH(dropout_forward_k, n, x, y, mask, n, p, keep, base);
}

void fl_cuda_dropout_backward(fl_backend *be, const float *dy, const float *mask, float *dx,
                              float beta_acc, size_t n) {
    if (!dx) return;
    LAUNCH(dropout_backward_k, n, dy, mask, dx, beta_acc, n);
}

/* ---- arithmetic ---- */

static __global__ void add_k(const float *a, const float *b, float *y, size_t n) {
    FOR_EACH(i, n) y[i] = a[i] + b[i];
}

static __global__ void sub_k(const float *a, const float *b, float *y, size_t n) {
    FOR_EACH(i, n) y[i] = a[i] - b[i];
}

static __global__ void accumulate_k(float *dst, const float *src, float beta, size_t n) {
    FOR_EACH(i, n) dst[i] = beta == 0.0f ? src[i] : beta * dst[i] + src[i];
}

static __global__ void scale_k(float *x, float a, size_t n) {
    FOR_EACH(i, n) x[i] *= a;
}

static __global__ void axpy_k(float *y, const float *x, float a, size_t n) {
    FOR_EACH(i, n) y[i] += a * x[i];
}

/* Element t of the (M, F) block: row t / F, column t % F. */
static __global__ void copy_cols_k(const float *src, int src_ld, float *dst, int dst_ld, int F,
                                   float beta, size_t n) {
    FOR_EACH(t, n) {
        size_t i = t / (size_t)F, j = t % (size_t)F;
        float s = src[i * (size_t)src_ld + j];
        float *d = dst + i * (size_t)dst_ld + j;
        *d = beta == 0.0f ? s : beta * *d + s;
    }
}

static __global__ void rowscale_k(const float *x, const float *s, float *y, int F, size_t n) {
    FOR_EACH(t, n) y[t] = s[t / (size_t)F] * x[t];
}

void fl_cuda_add(fl_backend *be, const float *a, const float *b, float *y, size_t n) {
    LAUNCH(add_k, n, a, b, y, n);
}

void fl_cuda_sub(fl_backend *be, const float *a, const float *b, float *y, size_t n) {
    LAUNCH(sub_k, n, a, b, y, n);
}

void fl_cuda_accumulate(fl_backend *be, float *dst, const float *src, float beta, size_t n) {
    LAUNCH(accumulate_k, n, dst, src, beta, n);
}

void fl_cuda_scale(fl_backend *be, float *x, float a, size_t n) {
    LAUNCH(scale_k, n, x, a, n);
}

void fl_cuda_axpy(fl_backend *be, float *y, const float *x, float a, size_t n) {
    LAUNCH(axpy_k, n, y, x, a, n);
}

void fl_cuda_copy_cols(fl_backend *be, const float *src, int src_ld, float *dst, int dst_ld, int M,
                       int F, float beta) {
    if (M <= 0 || F <= 0) return;
    size_t n = (size_t)M * F;
    LAUNCH(copy_cols_k, n, src, src_ld, dst, dst_ld, F, beta, n);
}

void fl_cuda_rowscale(fl_backend *be, const float *x, const float *s, float *y, int M, int F) {
    if (M <= 0 || F <= 0) return;
    size_t n = (size_t)M * F;
    LAUNCH(rowscale_k, n, x, s, y, F, n);
}

/* ---- sum of squares: two passes, deterministic ----
 * Pass 1: a grid fixed by n alone, each thread summing a fixed grid-stride subset in double,
 * each block a fixed tree, into part[block]. Pass 2: one block sums the parts by a fixed tree.
 * So the result is the same on every run (not bit-equal to the CPU's, whose chunks differ). */

#define SUMSQ_BLOCKS (FL_CUDA_REDUCE_SLOTS - 1)

static __global__ void sumsq_part_k(const float *x, size_t n, double *part) {
    double acc = 0;
    FOR_EACH(i, n) {
        double v = x[i];
        acc += v * v;
    }
    double total = fl_block_sum<THREADS>(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = total;
}

static __global__ void sum_parts_k(const double *part, unsigned nparts, double *out) {
    double acc = 0;
    for (unsigned i = threadIdx.x; i < nparts; i += blockDim.x) acc += part[i];
    double total = fl_block_sum<THREADS>(acc);
    if (threadIdx.x == 0) *out = total;
}

double fl_cuda_sumsq(fl_backend *be, const float *x, size_t n) {
    fl_cuda *c = FL_CUDA(be);
    be->transfers++;
    if (n == 0) return 0.0;
    unsigned nb = fl_cuda_blocks(n, THREADS);
    if (nb > SUMSQ_BLOCKS) nb = SUMSQ_BLOCKS;
    /* reduce[0] = the total, reduce[1..nb] = the parts */
    sumsq_part_k<<<nb, THREADS, 0, c->stream>>>(x, n, c->reduce + 1);
    FL_CU_LAUNCHED();
    sum_parts_k<<<1, THREADS, 0, c->stream>>>(c->reduce + 1, nb, c->reduce);
    FL_CU_LAUNCHED();
    FL_CU(cudaMemcpyAsync(c->reduce_host, c->reduce, sizeof(double), cudaMemcpyDeviceToHost,
                          c->stream));
    FL_CU(cudaStreamSynchronize(c->stream));
    return c->reduce_host[0];
}

/* ---- layout ---- */

#define TILE 32
#define TILE_ROWS 8

/* dst (N, B, A) = transpose of src (N, A, B) per sample, through a padded shared tile so that
 * both the reads and the writes are coalesced. Tiles: x over B, y over A, z over samples. */
static __global__ void transpose_k(const float *__restrict__ src, float *__restrict__ dst, int N,
                                   int A, int B) {
    __shared__ float tile[TILE][TILE + 1];
    int tiles_a = (A + TILE - 1) / TILE;
    int b0 = blockIdx.x * TILE;
    for (int n = blockIdx.z; n < N; n += gridDim.z) {
        const float *s = src + (size_t)n * A * B;
        float *d = dst + (size_t)n * A * B;
        for (int ta = blockIdx.y; ta < tiles_a; ta += gridDim.y) {
            int a0 = ta * TILE;
            for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
                int a = a0 + j, b = b0 + threadIdx.x;
                if (a < A && b < B) tile[j][threadIdx.x] = s[(size_t)a * B + b];
            }
            __syncthreads();
            for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
                int b = b0 + j, a = a0 + threadIdx.x;
                if (a < A && b < B) d[(size_t)b * A + a] = tile[threadIdx.x][j];
            }
            __syncthreads();
        }
    }
}

static void transpose(fl_backend *be, const float *src, float *dst, int N, int A, int B) {
    if (N <= 0 || A <= 0 || B <= 0) return;
    unsigned tiles_a = (unsigned)(A + TILE - 1) / TILE, tiles_b = (unsigned)(B + TILE - 1) / TILE;
    dim3 grid(tiles_b, tiles_a < 65535u ? tiles_a : 65535u, N < 65535 ? (unsigned)N : 65535u);
    transpose_k<<<grid, dim3(TILE, TILE_ROWS), 0, FL_CUDA(be)->stream>>>(src, dst, N, A, B);
    FL_CU_LAUNCHED();
}

void fl_cuda_nchw_to_nhwc(fl_backend *be, const float *src, float *dst, int N, int C, int H,
                          int W) {
    transpose(be, src, dst, N, C, H * W);
}

void fl_cuda_nhwc_to_nchw(fl_backend *be, const float *src, float *dst, int N, int C, int H,
                          int W) {
    transpose(be, src, dst, N, H * W, C);
}
