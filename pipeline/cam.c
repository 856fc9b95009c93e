/* cam.c - CAM and Grad-CAM maps: a channel-weighted sum of feature maps, an optional ReLU and
 * bilinear upsampling (align_corners=False). Not the model pass that produces the maps. */
#include "cam.h"

#include <stdlib.h>

void fl_cam_grad_weights(const float *dA, int N, int C, int h, int w, float *alpha) {
    size_t hw = (size_t)h * w;
    for (size_t ik = 0; ik < (size_t)N * C; ik++) {
        const float *g = dA + ik * hw;
        double sum = 0;
        for (size_t p = 0; p < hw; p++) sum += g[p];
        alpha[ik] = (float)(sum / (double)hw);
    }
}

/* One axis of the resize: output index o reads source indices i0 and i1 with weight t on i1. */
typedef struct {
    int i0, i1;
    float t;
} lerp_tap;

static lerp_tap tap_at(int in, int out, int o) {
    float src = (float)in / (float)out * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    int i0 = (int)src;
    if (i0 > in - 1) i0 = in - 1;
    return (lerp_tap){i0, i0 < in - 1 ? i0 + 1 : i0, src - (float)i0};
}

void fl_cam_upsample(const float *src, int h, int w, float *dst, int H, int W) {
    for (int y = 0; y < H; y++) {
        lerp_tap ty = tap_at(h, H, y);
        const float *r0 = src + (size_t)ty.i0 * w, *r1 = src + (size_t)ty.i1 * w;
        float b = ty.t, a = 1.0f - b;
        for (int x = 0; x < W; x++) {
            lerp_tap tx = tap_at(w, W, x);
            float d = tx.t, c = 1.0f - d;
            dst[(size_t)y * W + x] =
                a * (c * r0[tx.i0] + d * r0[tx.i1]) + b * (c * r1[tx.i0] + d * r1[tx.i1]);
        }
    }
}

fl_status fl_cam_compute(const float *A, int N, int C, int h, int w, const float *weights,
                         size_t w_stride, int relu, int T, float *out, fl_err *err) {
    if (N < 1 || C < 1 || h < 1 || w < 1 || T < 1)
        return fl_fail(err, FL_EINVAL, "cam: bad sizes N %d, C %d, %d x %d maps, tile %d", N, C, h,
                       w, T);
    size_t hw = (size_t)h * w;
    double *acc = malloc(hw * sizeof *acc);
    float *small = malloc(hw * sizeof *small);
    if (!acc || !small) {
        free(acc);
        free(small);
        return fl_fail(err, FL_ENOMEM, "cam: out of memory for %d maps of %d x %d", N, h, w);
    }
    for (int i = 0; i < N; i++) {
        const float *wi = weights + (size_t)i * w_stride;
        const float *Ai = A + (size_t)i * C * hw; /* C x h x w */
        for (size_t p = 0; p < hw; p++) acc[p] = 0;
        for (int k = 0; k < C; k++) {
            const float *Ak = Ai + (size_t)k * hw;
            double wk = wi[k];
            for (size_t p = 0; p < hw; p++) acc[p] += wk * Ak[p];
        }
        for (size_t p = 0; p < hw; p++) {
            float v = (float)acc[p];
            small[p] = relu && v < 0 ? 0.0f : v;
        }
        fl_cam_upsample(small, h, w, out + (size_t)i * T * T, T, T);
    }
    free(acc);
    free(small);
    return FL_OK;
}
