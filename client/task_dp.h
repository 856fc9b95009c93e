/* task_dp.h - a hospital's side of client-level DP-FedAvg (docs/privacy.md, "Client-level
 * DP-FedAvg"): the update delta clipped to L2 norm C and Gaussian noise added to each coordinate
 * before it leaves; and the arithmetic of adaptive clipping (Andrew et al. 2021), not yet wired
 * into the federation. Not the accountant (the server composes the rounds, server/study.c) and
 * not the noise source (client/site.h's fl_dp_source, the CSPRNG in real use). */
#ifndef FL_TASK_DP_H
#define FL_TASK_DP_H

#include <stddef.h>

#include "client/site.h"
#include "common/status.h"

/* Clips delta[0..n) to L2 norm C in place, then adds independent N(0, std^2) draws from src to
 * every coordinate (std = fl_plan_dp_fedavg_std: sigma C / sqrt(n_sites - dropouts)). *norm
 * (may be NULL) gets the L2 norm before clipping: a data-dependent number that must not leave
 * the site. Returns FL_OK; FL_EINVAL for C <= 0, std < 0, a source without noise or a non-finite
 * update; FL_EBACKEND
 * when the source failed (it wrote NaN): delta is then unspecified and must not be sent. */
fl_status fl_dp_fedavg_privatize(float *delta, size_t n, double C, double std,
                                 const fl_dp_source *src, double *norm, fl_err *err);

/* Adaptive clipping, a site's part: its bit b = [norm <= C] plus N(0, std^2) from src (std: the
 * share of the bits' noise this site adds, sigma_b / sqrt(n - k)). Returns the noised bit, or
 * NaN when the source failed. */
double fl_dp_clip_bit(double norm, double C, double std, const fl_dp_source *src);

/* Adaptive clipping, the server's part (geometric update): the next clip norm after a round
 * whose (noised) bits average b_mean, for the target quantile gamma in (0, 1) and the step
 * eta > 0: C * exp(-eta (b_mean - gamma)). When more than gamma of the updates were under C
 * (b_mean > gamma), C was above the gamma-quantile of the norms and shrinks; when fewer, it
 * grows. Its fixed point is the gamma-quantile. */
double fl_dp_adaptive_clip_next(double C, double b_mean, double gamma, double eta);

#endif
