/* task_dp.h - a hospital's side of client-level DP-FedAvg (docs/privacy.md, "Client-level
 * DP-FedAvg"): the update delta clipped to L2 norm C and Gaussian noise added to each coordinate
 * before it leaves; and, under adaptive clipping (Andrew et al. 2021), the noised bit that says
 * whether the update was under C. Not the accountants (the server composes the rounds,
 * server/study.c; the hospital's ledger, client/task_privacy.c), not the clip norm's update rule
 * (fed/dp_clip.h) and not the noise source (client/site.h's fl_dp_source, the CSPRNG in real
 * use). */
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
 * share of the bits' noise this site adds, fl_plan_dp_fedavg_bit_std: sigma_b / sqrt(n - k)).
 * Returns the noised bit, or NaN when the source failed. The server's part is fed/dp_clip.h. */
double fl_dp_clip_bit(double norm, double C, double std, const fl_dp_source *src);

#endif
