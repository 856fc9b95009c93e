/* fixedpoint.h - ENCODING_FIXED32 (docs/protocol.md): a clipped float update as
 * round(x * scale) mod 2^32, two's complement, the form secure aggregation masks and sums, and
 * the decoding of a SUM of such encodings as a signed int32 divided by scale. Not clipping and
 * not noise: the update arrives clipped (every |x| <= C), the discrete Gaussian is
 * crypto/dgauss.h's.
 *
 * Range. Each |round(x * scale)| <= R = round(C * scale), so a sum of n encodings is exact in
 * int32 while n R < 2^31: the modular sum may wrap on the way (it does as soon as signs mix)
 * and still decodes to the integer sum. fl_fixed_scale_for picks the largest power of two with
 * n R < 2^(31 - bits_margin); the margin's bits are headroom for the noise added in the encoded
 * domain (its sum must stay below 2^31 - n R as well, say 8 sigma of it). A power of two keeps
 * x * scale and the decoding's division exact, so the only error is the rounding: at most
 * n / (2 scale) on a sum of n, plus half a float ulp of the result. */
#ifndef FL_FIXEDPOINT_H
#define FL_FIXEDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

/* The largest power of two scale with n_clients * round(clip * scale) < 2^(31 - bits_margin),
 * at most 2^60 (the wire's limit). Returns FL_OK, or FL_EINVAL when clip is not finite and
 * positive, n_clients is 0, bits_margin > 30, or no scale in [2^-60, 2^60] leaves clip at least
 * one unit (the message says which). */
fl_status fl_fixed_scale_for(double clip, size_t n_clients, unsigned bits_margin, double *scale,
                             fl_err *err);

/* out[i] = round(x[i] * scale) mod 2^32 (half away from zero, as llround), i < n. Returns FL_OK,
 * or FL_EINVAL when scale is not finite and positive or an x[i] * scale is not finite or rounds
 * outside +-(2^31 - 1) (the message names i; out is then partly written). */
fl_status fl_fixed_encode(const float *x, size_t n, double scale, uint32_t *out, fl_err *err);

/* acc[i] += v[i] mod 2^32, i < n: what the server does to masked encodings. */
void fl_fixed_accumulate(uint32_t *acc, const uint32_t *v, size_t n);

/* out[i] = sum[i] read as a signed int32 (two's complement), divided by scale, as a float.
 * Returns FL_OK, or FL_EINVAL when scale is not finite and positive. */
fl_status fl_fixed_decode_sum(const uint32_t *sum, size_t n, double scale, float *out, fl_err *err);

#endif
