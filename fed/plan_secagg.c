/* plan_secagg.c - the secure-aggregation encoding a plan implies (fed/plan_secagg.h). */
#include "fed/plan_secagg.h"

#include <math.h>

#include "crypto/dgauss.h"
#include "crypto/fixedpoint.h"

#define WRAP_SIGMAS 10.0  /* the sum's noise stays within this many std of the range */
#define MIN_SIGMA 4.0     /* the smallest per-site discrete Gaussian std accepted */

double fl_plan_sa_clip(const fl_plan_privacy *pv) {
    if (!pv->secagg) return 0;
    return pv->mechanism == FL_DP_SGD ? pv->update_clip : pv->clip_norm;
}

/* The per-site noise std in encoded units per unit of scale (0 without DP-FedAvg). */
static double noise_per_scale(const fl_plan_privacy *pv) {
    return pv->mechanism == FL_DP_FEDAVG ? fl_plan_dp_fedavg_std(pv) : 0;
}

fl_status fl_plan_sa_scale(const fl_plan_privacy *pv, uint32_t n, double *scale, fl_err *err) {
    double B = fl_plan_sa_clip(pv), std = noise_per_scale(pv);
    fl_err e = {{0}};
    for (unsigned bits = 1; bits <= 30; bits++) {
        double s;
        if (fl_fixed_scale_for(B, n, bits, &s, &e) != FL_OK) break;
        double room = 2147483648.0 - (double)n * (double)llround(B * s);
        if (WRAP_SIGMAS * std * s * sqrt((double)n) < room) {
            *scale = s;
            return FL_OK;
        }
    }
    return fl_fail(err, FL_EINVAL,
                   "secure aggregation: no fixed-point scale holds %u sites' updates of L2 norm "
                   "%g plus noise of std %g each in 32 bits%s%s",
                   n, B, std, e.msg[0] ? ": " : "", e.msg);
}

fl_status fl_plan_sa_noise(const fl_plan_privacy *pv, double scale, uint64_t *num, uint64_t *den,
                           fl_err *err) {
    *num = 0;
    *den = 1;
    double sigma = noise_per_scale(pv) * scale;
    if (sigma == 0) return FL_OK;
    if (!(sigma >= MIN_SIGMA))
        return fl_fail(err, FL_EINVAL,
                       "DP-FedAvg under secure aggregation: the discrete Gaussian's std is %g "
                       "grid units (scale %g), below %g: raise the noise or the clip norm",
                       sigma, scale, MIN_SIGMA);
    double var = sigma * sigma;
    /* the largest power-of-two denominator that keeps the numerator within the sampler's bound */
    int e2 = 0;
    frexp(var, &e2); /* var < 2^e2 */
    int shift = 59 - e2;
    if (shift < 0)
        return fl_fail(err, FL_EINVAL,
                       "DP-FedAvg under secure aggregation: a noise variance of %g grid units "
                       "exceeds the discrete Gaussian's 2^60",
                       var);
    if (shift > 59) shift = 59;
    *den = UINT64_C(1) << shift;
    /* var 2^shift < 2^59, so the numerator is within FL_DGAUSS_MAX_TERM; rounded up, never
     * less noise than planned */
    *num = (uint64_t)ceil(ldexp(var, shift));
    return FL_OK;
}

double fl_plan_sa_clip_for(const fl_plan_privacy *pv, double scale, size_t d) {
    double B = fl_plan_sa_clip(pv);
    if (pv->mechanism != FL_DP_FEDAVG) return B;
    double b = B - 0.5 * sqrt((double)d) / scale;
    return b > 0 ? b : 0;
}
