/* cpu_impl.h - the CPU backend's op functions, one per fl_backend field (backend.h has
 * the contracts). Internal to nn/cpu/. Memory and lifetime live in cpu_backend.c. */
#ifndef FL_CPU_IMPL_H
#define FL_CPU_IMPL_H

#include "../backend.h"

void fl_cpu_nchw_to_nhwc(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);
void fl_cpu_nhwc_to_nchw(fl_backend *be, const float *src, float *dst, int N, int C, int H, int W);
fl_status fl_cpu_conv2d_plan(fl_backend *be, const fl_conv2d_shape *s, void **plan, fl_err *err);
void fl_cpu_conv2d_plan_free(fl_backend *be, void *plan);
void fl_cpu_conv2d_forward(fl_backend *be, void *plan, const float *x, const float *w,
                           const float *b, float *y);
void fl_cpu_conv2d_backward(fl_backend *be, void *plan, const float *x, const float *w,
                            const float *dy, float *dx, float beta, float *dw, float *db);
void fl_cpu_batchnorm_forward(fl_backend *be, const float *x, float *y, int M, int C,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, float momentum, float eps, int train,
                              float *save_mean, float *save_invstd);
void fl_cpu_batchnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int C, const float *gamma,
                               const float *save_mean, const float *save_invstd, int train,
                               float *dgamma, float *dbeta);
void fl_cpu_groupnorm_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C, int G,
                              const float *gamma, const float *beta, float eps, float *save_mean,
                              float *save_invstd);
void fl_cpu_groupnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int N, int HW, int C, int G, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta);
void fl_cpu_layernorm_forward(fl_backend *be, const float *x, float *y, int M, int F,
                              const float *gamma, const float *beta, float eps, float *save_mean,
                              float *save_invstd);
void fl_cpu_layernorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int F, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta);
void fl_cpu_relu_forward(fl_backend *be, const float *x, float *y, size_t n);
void fl_cpu_relu_backward(fl_backend *be, const float *y, const float *dy, float *dx,
                          float beta_acc, size_t n);
void fl_cpu_maxpool_forward(fl_backend *be, const float *x, float *y, int32_t *idx, int N, int H,
                            int W, int C, int k, int s, int p, int P, int Q);
void fl_cpu_maxpool_backward(fl_backend *be, const float *dy, const int32_t *idx, float *dx,
                             float beta_acc, int N, int H, int W, int C, int P, int Q);
void fl_cpu_gap_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C);
void fl_cpu_gap_backward(fl_backend *be, const float *dy, float *dx, float beta_acc, int N, int HW,
                         int C);
void fl_cpu_linear_forward(fl_backend *be, const float *x, const float *w, const float *b, float *y,
                           int M, int IN, int OUT);
void fl_cpu_linear_backward(fl_backend *be, const float *x, const float *w, const float *dy,
                            float *dx, float beta_acc, float *dw, float *db, int M, int IN,
                            int OUT);
void fl_cpu_dropout_forward(fl_backend *be, const float *x, float *y, float *mask, size_t n,
                            float p, uint64_t seed);
void fl_cpu_dropout_backward(fl_backend *be, const float *dy, const float *mask, float *dx,
                             float beta_acc, size_t n);
void fl_cpu_add(fl_backend *be, const float *a, const float *b, float *y, size_t n);
void fl_cpu_accumulate(fl_backend *be, float *dst, const float *src, float beta, size_t n);
void fl_cpu_copy_cols(fl_backend *be, const float *src, int src_ld, float *dst, int dst_ld, int M,
                      int F, float beta);
void fl_cpu_rowscale(fl_backend *be, const float *x, const float *s, float *y, int M, int F);
void fl_cpu_scale(fl_backend *be, float *x, float a, size_t n);
double fl_cpu_sumsq(fl_backend *be, const float *x, size_t n);
void fl_cpu_sub(fl_backend *be, const float *a, const float *b, float *y, size_t n);
void fl_cpu_axpy(fl_backend *be, float *y, const float *x, float a, size_t n);
float fl_cpu_softmax_ce(fl_backend *be, const float *logits, const int32_t *labels,
                        const float *class_w, int M, int K, float *dlogits, float *probs);
void fl_cpu_softmax(fl_backend *be, const float *logits, float *probs, int M, int K);
void fl_cpu_sgd_step(fl_backend *be, float *w, const float *g, float *buf, size_t n, float lr,
                     float momentum, float wd, int nesterov);
void fl_cpu_adamw_step(fl_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                       float lr, float b1, float b2, float eps, float wd, int step);

/* A scratch buffer owned by the backend, grown when a larger one is first asked for (so only
 * the first step of a model allocates) and reused by every later call; NULL when out of
 * memory. One caller at a time: ops use it from the calling thread, outside parallel regions. */
void *fl_cpu_scratch(fl_backend *be, size_t bytes);

/* oneDNN engine and stream, created with the backend (conv.c). */
fl_status fl_cpu_conv_startup(fl_backend *be, fl_err *err);
void fl_cpu_conv_shutdown(fl_backend *be);

#endif
