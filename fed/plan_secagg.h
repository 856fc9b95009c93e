/* plan_secagg.h - the fixed-point encoding and the encoded-domain noise that a study plan's
 * [privacy] section implies for secure aggregation (docs/privacy.md, "DP under secure
 * aggregation"). The server and every site compute them from the same approved plan and the
 * round's number of sites, and a site refuses a task whose scale differs. Not the encoding
 * itself (crypto/fixedpoint.h) nor the sampler (crypto/dgauss.h).
 *
 * What is clipped. Each site clips its whole update to the L2 bound B before encoding:
 * B = clip_norm without DP and under DP-FedAvg, B = update_clip under DP-SGD (whose clip_norm
 * bounds one patient's gradient, not the update). Every |coordinate| is then <= B.
 *
 * Noise. Under DP-FedAvg each site adds the discrete Gaussian N_Z(0, sigma_i^2) to its encoded
 * update, sigma_i = scale * sigma C / sqrt(n - k) rounded up to a rational (never less noise
 * than planned); under DP-SGD the noise was added by DP-SGD itself and none is added here.
 *
 * Range. The scale is the largest power of two with n round(B scale) < 2^30 (a bit of headroom,
 * as without noise) and n round(B scale) + 10 sigma_sum < 2^31, sigma_sum = sigma_i sqrt(n) the
 * std of the noise in the sum of n sites: a coordinate of the sum wraps with probability below
 * 2e-23. */
#ifndef FL_PLAN_SECAGG_H
#define FL_PLAN_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "fed/plan.h"

/* B: the L2 bound of a site's update under secure aggregation (0 when secagg is off). */
double fl_plan_sa_clip(const fl_plan_privacy *pv);

/* The fixed-point scale for a round of n sites. FL_EINVAL (with the reason) when no power of two
 * fits, e.g. a noise so large against B that the range cannot hold it. */
fl_status fl_plan_sa_scale(const fl_plan_privacy *pv, uint32_t n, double *scale, fl_err *err);

/* DP-FedAvg under secure aggregation: sigma_i^2 = *num / *den in encoded units for that scale,
 * rounded up, both terms within crypto/dgauss.h's bound; *num = 0 when no noise is added here.
 * FL_EINVAL when sigma_i < 4: below that the sum of discrete Gaussians is measurably not one
 * (Kairouz et al. 2021's tau term), and the accounting would not hold. */
fl_status fl_plan_sa_noise(const fl_plan_privacy *pv, double scale, uint64_t *num, uint64_t *den,
                           fl_err *err);

/* The L2 bound a site clips its update to before encoding it at `scale` with d coordinates.
 * Rounding to the grid can lengthen a vector by up to sqrt(d) / 2 grid units, so under DP-FedAvg
 * (whose noise is calibrated to the sensitivity B scale) the site clips to B - sqrt(d) / (2 scale)
 * and the encoded update's L2 norm stays within B scale: the accounting is that of the plan's
 * noise multiplier, unchanged. B otherwise (only the range matters there). 0 when the rounding
 * alone would exceed B (the plan's scale is too coarse for d; fl_plan_sa_scale's messages). */
double fl_plan_sa_clip_for(const fl_plan_privacy *pv, double scale, size_t d);

#endif
