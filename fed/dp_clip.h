/* dp_clip.h - the arithmetic of DP-FedAvg's adaptive clipping (Andrew et al. 2021,
 * "Differentially Private Learning with Adaptive Clipping"), which hospitals and server share
 * (docs/privacy.md, "Client-level DP-FedAvg"): the noise multiplier of the updates that makes the
 * pair (updates, bits) cost what the plan's noise multiplier costs, the mean of a round's noised
 * bits, the geometric step of the clip norm and the range of clip norms it can reach. Not the
 * noise (client/task_dp.h) nor the plan's keys (fed/plan.h). */
#ifndef FL_DP_CLIP_H
#define FL_DP_CLIP_H

/* Andrew et al., Theorem 1: a round whose updates carry Gaussian noise of multiplier z_delta
 * (std z_delta C on their sum, sensitivity C) and whose clipping bits carry noise of std sigma_b
 * on their sum (each site's bit, centred at 1/2, moves the sum by at most 1/2) is the Gaussian
 * mechanism of multiplier z when z^-2 = z_delta^-2 + (2 sigma_b)^-2. Returns
 * z_delta = (z^-2 - (2 sigma_b)^-2)^-1/2 for z >= 0 and sigma_b > z / 2 (0 for z = 0), or NaN
 * when it is undefined (2 sigma_b <= z: the bits alone would cost more than z). */
double fl_dp_update_multiplier(double z, double sigma_b);

/* The server's estimate of the fraction of a round's updates that were not clipped, from the
 * sum of the m noised bits it received (each [norm <= C] plus a share of the noise) and the n
 * sites the plan expects: 1/2 + (bits_sum - m / 2) / n, clamped to [0, 1]. The denominator is the
 * expected count (the paper's fixed-denominator estimate), so the number of sites that answered
 * is not divided out; a missing site counts as an undecided 1/2. */
double fl_dp_clip_bits_mean(double bits_sum, int m, int n);

/* The next clip norm after a round whose (noised) bits average b_mean, for the target quantile
 * gamma in (0, 1) and the step eta > 0: C * exp(-eta (b_mean - gamma)). When more than gamma of
 * the updates were under C (b_mean > gamma), C was above the gamma-quantile of the norms and
 * shrinks; when fewer, it grows. Its fixed point is the gamma-quantile. */
double fl_dp_adaptive_clip_next(double C, double b_mean, double gamma, double eta);

/* 1 when C can be the clip norm after at most `steps` updates from C0 with bits means in
 * [0, 1]: |log(C / C0)| <= steps * eta * max(gamma, 1 - gamma) (with a relative slack of 1e-9
 * for rounding); 0 otherwise, and for C that is not finite and > 0. */
int fl_dp_clip_reachable(double C, double C0, double gamma, double eta, long steps);

#endif
