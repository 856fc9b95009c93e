/* shamir.h - t-of-n Shamir secret sharing of a 32-byte secret, byte-wise over GF(2^8), for
 * secure aggregation's shares of the self-mask seed and of the mask key (Bonawitz et al. 2017).
 * Not verifiable secret sharing: a share is taken as given; honest-but-curious parties only.
 *
 * Why GF(2^8) and not GF(p), p = 2^255 - 19: the secrets are arbitrary 32-byte strings (PRG
 * seeds, X25519 private keys) and a field below 2^256 cannot hold all 2^256 of them, so a prime
 * field would need a larger p and 33-byte shares. Byte-wise GF(2^8) shares every string as it
 * is, a share is exactly 32 bytes, the arithmetic is a few constant-time lines without a bignum
 * or a secret-indexed table, and the field is AES's (x^8 + x^4 + x^3 + x + 1, as in SLIP-39),
 * so FIPS-197's products are its known answers. The price is at most 255 shares, x = 1..255:
 * far more than the hospitals of one study. Each of the 32 bytes has its own polynomial
 * f(x) = s + a_1 x + ... + a_{t-1} x^{t-1} with uniform a_j; share x is (f(x) of each byte).
 * Any t - 1 shares are uniform and independent of s (for every candidate s there is exactly
 * one such polynomial through them), any t give s by Lagrange interpolation at 0. */
#ifndef FL_SHAMIR_H
#define FL_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "rand.h" /* fl_rand_fn, fl_rand_source */

#define FL_SHAMIR_SECRET_LEN 32 /* bytes of a secret and of a share's y */
#define FL_SHAMIR_MAX_SHARES 255

/* Splits secret into n shares of which any t recover it, 1 <= t <= n <= 255. Share i
 * (0-based) goes to shares[i] and belongs to x = i + 1, the client's index in the round. The
 * t - 1 random coefficients, 32 bytes each, come from rand_fn(rand_ctx, ...) and are wiped after
 * use. Returns FL_OK; FL_EINVAL for t or n out of range; the status of rand_fn when it fails, with
 * every share wiped (a partial polynomial would leak). shares must not overlap secret. */
fl_status fl_shamir_split(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                          fl_rand_fn rand_fn, void *rand_ctx,
                          uint8_t (*shares)[FL_SHAMIR_SECRET_LEN], fl_err *err);

/* Recovers the secret from k shares: shares[i] belongs to x = xs[i]; the xs must be distinct,
 * in 1..255 (FL_EINVAL otherwise, secret untouched). With k >= t shares of one split this is
 * the secret; with fewer it is a value unrelated to it, and nothing here can tell (t is not
 * stored in a share). Constant time in the shares' contents. Returns FL_OK or FL_EINVAL. */
fl_status fl_shamir_combine(const uint8_t (*shares)[FL_SHAMIR_SECRET_LEN], const uint32_t *xs,
                            size_t k, uint8_t secret[FL_SHAMIR_SECRET_LEN], fl_err *err);

#endif
