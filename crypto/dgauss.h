/* dgauss.h - the exact discrete Gaussian N_Z(0, sigma^2) of Canonne, Kamath and Steinke 2020
 * (arXiv:2004.00010, Algorithm 1 over their discrete Laplace and Bernoulli(exp(-x))), with
 * sigma^2 = num / den rational and every acceptance test in integer arithmetic, as in their
 * reference code: no floating point, so no Box-Muller low bits to leak (Mironov 2012). It is
 * the noise of DP under secure aggregation, added to the Z_2^32 encoding. Not an accountant:
 * it adds the noise it is told to; the privacy of sigma is the caller's.
 *
 * Exact up to one cut-off: a candidate with |c| >= 2^62, or one whose acceptance probability
 * is exp(-x) with x >= 2^64, is rejected outright. The first kind turns up with probability
 * below exp(-2^31), and either kind would be accepted with probability below exp(-2^62), so
 * the output's distance from N_Z(0, sigma^2) is below 2^-(2^62); no test, attack or float
 * could see it. */
#ifndef FL_DGAUSS_H
#define FL_DGAUSS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "rand.h" /* fl_rand_fn, fl_rand_source */

#define FL_DGAUSS_MAX_TERM (UINT64_C(1) << 60) /* bound on sigma2_num and sigma2_den */

/* Draws n samples of N_Z(0, sigma2_num / sigma2_den) into out[0..n). Both parts must be in
 * 1..FL_DGAUSS_MAX_TERM (so sigma^2 from 2^-60 to 2^60), else FL_EINVAL. Randomness comes
 * from rand_fn(rand_ctx, ...) in blocks of 256 bytes, consumed bit by bit; what is left of the
 * last block is wiped, so one call per vector is cheaper than one per value. A source that
 * repeats gives the same samples (a shorter call, a prefix of them). Returns FL_OK, FL_EINVAL,
 * or rand_fn's failure (out is then partly written and must be discarded). */
fl_status fl_dgauss_samples(uint64_t sigma2_num, uint64_t sigma2_den, fl_rand_fn rand_fn,
                            void *rand_ctx, int64_t *out, size_t n, fl_err *err);

/* One sample: fl_dgauss_samples with n = 1. */
fl_status fl_dgauss_sample(uint64_t sigma2_num, uint64_t sigma2_den, fl_rand_fn rand_fn,
                           void *rand_ctx, int64_t *out, fl_err *err);

/* Adds independent N_Z(0, sigma2_num / sigma2_den) noise to each of v[0..n), a vector in
 * Z_2^32 (crypto/fixedpoint.h's encoding), wrapping mod 2^32. Uses the randomness exactly as
 * fl_dgauss_samples does for the same n, so the same seed adds the same noise. Returns what
 * fl_dgauss_samples returns; on failure v is partly noised and must be discarded. The noise
 * itself is wiped; v is the caller's. */
fl_status fl_dgauss_add_u32(uint32_t *v, size_t n, uint64_t sigma2_num, uint64_t sigma2_den,
                            fl_rand_fn rand_fn, void *rand_ctx, fl_err *err);

#endif
