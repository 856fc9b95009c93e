/* fixedpoint.c - ENCODING_FIXED32's encoder, modular sum and signed decoder, and the choice of
 * scale that keeps a sum of n clipped encodings inside int32. Doubles only at the edges (the
 * float in, the float out); everything in between is integer. */
#include "fixedpoint.h"

#include <math.h>

#define SCALE_MIN 0x1p-60 /* proto/rpc_validate.c's range for fixed_scale */
#define SCALE_MAX 0x1p60

static int scale_ok(double scale) {
    return isfinite(scale) && scale > 0;
}

fl_status fl_fixed_scale_for(double clip, size_t n_clients, unsigned bits_margin, double *scale,
                             fl_err *err) {
    *scale = 0;
    if (!scale_ok(clip) || n_clients == 0 || bits_margin > 30)
        return fl_fail(err, FL_EINVAL,
                       "fixed-point scale: need a finite clip > 0, n_clients >= 1 and "
                       "bits_margin <= 30, got clip %g, %zu clients, margin %u",
                       clip, n_clients, bits_margin);
    double bound = ldexp(1.0, 31 - (int)bits_margin), n = (double)n_clients;
    /* Start at the power of two just above target = bound / (n clip): any larger one has
     * n round(clip s) > 2 bound - n / 2 >= bound. Halve while the rounded clip reaches the
     * bound (once or twice when a scale exists). clip * s < 2^32 keeps llround in range. */
    double target = bound / (n * clip);
    double s = target >= SCALE_MAX ? SCALE_MAX : 0; /* 0: none (also when n clip overflows) */
    if (target > 0 && target < SCALE_MAX) {
        int e;
        frexp(target, &e); /* 2^(e-1) <= target < 2^e */
        s = fmin(ldexp(1.0, e), SCALE_MAX);
    }
    while (s >= SCALE_MIN && n * (double)llround(clip * s) >= bound) s /= 2;
    if (s < SCALE_MIN || llround(clip * s) < 1)
        return fl_fail(err, FL_EINVAL,
                       "fixed-point scale: clip %g with %zu clients and %u bits of margin leaves "
                       "no scale in [2^-60, 2^60] where the clip is a whole unit",
                       clip, n_clients, bits_margin);
    *scale = s;
    return FL_OK;
}

fl_status fl_fixed_encode(const float *x, size_t n, double scale, uint32_t *out, fl_err *err) {
    if (!scale_ok(scale))
        return fl_fail(err, FL_EINVAL, "fixed-point encoding: scale %g is not finite and > 0",
                       scale);
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i] * scale;
        if (!(fabs(v) < 2147483647.5)) /* also NaN */
            return fl_fail(err, FL_EINVAL,
                           "fixed-point encoding: value %zu is %g, %g after scaling by %g, "
                           "outside the int32 range",
                           i, (double)x[i], v, scale);
        out[i] = (uint32_t)(uint64_t)llround(v); /* two's complement mod 2^32 */
    }
    return FL_OK;
}

void fl_fixed_accumulate(uint32_t *acc, const uint32_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += v[i];
}

fl_status fl_fixed_decode_sum(const uint32_t *sum, size_t n, double scale, float *out,
                              fl_err *err) {
    if (!scale_ok(scale))
        return fl_fail(err, FL_EINVAL, "fixed-point decoding: scale %g is not finite and > 0",
                       scale);
    for (size_t i = 0; i < n; i++) {
        int64_t s = (int64_t)sum[i] - ((int64_t)(sum[i] >> 31) << 32); /* as int32 */
        out[i] = (float)((double)s / scale);
    }
    return FL_OK;
}
