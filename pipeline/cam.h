/* cam.h - class activation maps from a CNN's last feature maps: CAM (Zhou et al. 2016, the
 * class's fc weights) and Grad-CAM (Selvaraju et al. 2017, spatially averaged gradients),
 * bilinearly upsampled to the tile. Host math over NCHW arrays only: running the model,
 * choosing tiles and drawing are the caller's (cli/explain_cam_cmd.c, eval/heatmap.h). */
#ifndef FL_CAM_H
#define FL_CAM_H

#include <stddef.h>

#include "../common/status.h"

/* Grad-CAM's channel weights: alpha (N x C) = the mean over the h x w positions of dA (N x C x
 * h x w, NCHW), the gradient of one class's logit with respect to the feature maps. */
void fl_cam_grad_weights(const float *dA, int N, int C, int h, int w, float *alpha);

/* Class activation maps of N samples, upsampled to T x T:
 *   M_i = sum_k weights[i * w_stride + k] * A[i, k]     (A: N x C x h x w, NCHW; no bias)
 * then, with relu, max(M_i, 0) at the feature resolution (Grad-CAM), then bilinear
 * upsampling as fl_cam_upsample. w_stride 0 shares one row of C weights across the batch (CAM:
 * the fc weights of the class); w_stride C gives each sample its own row (Grad-CAM's alpha).
 * out holds N x T x T floats. FL_EINVAL for non-positive sizes, FL_ENOMEM. */
fl_status fl_cam_compute(const float *A, int N, int C, int h, int w, const float *weights,
                         size_t w_stride, int relu, int T, float *out, fl_err *err);

/* Resizes src (h x w) to dst (H x W) bilinearly with PyTorch's align_corners=False semantics
 * (torch.nn.functional.interpolate(mode="bilinear", align_corners=False) with a size): output
 * pixel y samples source row (y + 0.5) * h / H - 0.5, clamped below at 0, and likewise for x;
 * the last row and column repeat at the far edge. */
void fl_cam_upsample(const float *src, int h, int w, float *dst, int H, int W);

#endif
