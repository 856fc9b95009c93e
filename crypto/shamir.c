/* shamir.c - Shamir secret sharing byte-wise over GF(2^8) (AES's field). The arithmetic is
 * branch-free and table-free so that nothing depends on a secret byte's value; the x's are
 * public. Not a general GF(2^8) library: multiply and invert are all it needs. */
#include "shamir.h"

#include <string.h>

#include <openssl/crypto.h>

/* a * b in GF(2^8) mod x^8 + x^4 + x^3 + x + 1, by shift-and-add with masks instead of
 * branches (FIPS-197 §4.2: 0x57 * 0x83 = 0xc1, 0x57 * 0x13 = 0xfe). */
static uint8_t gf_mul(uint8_t a, uint8_t b) {
    unsigned r = 0, x = a;
    for (int i = 0; i < 8; i++) {
        r ^= (0u - ((b >> i) & 1u)) & x;
        x = ((x << 1) ^ ((0u - (x >> 7)) & 0x11bu)) & 0xffu;
    }
    return (uint8_t)r;
}

/* a^254 = a^-1 for a != 0 (and 0 for 0), by a fixed square-and-multiply chain. */
static uint8_t gf_inv(uint8_t a) {
    uint8_t r = a; /* a^1, then a^(2^k - 1) up to k = 7 */
    for (int i = 0; i < 6; i++) r = gf_mul(gf_mul(r, r), a);
    return gf_mul(r, r); /* a^(2 * 127) */
}

fl_status fl_shamir_split(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                          fl_rand_fn rand_fn, void *rand_ctx,
                          uint8_t (*shares)[FL_SHAMIR_SECRET_LEN], fl_err *err) {
    if (n < 1 || n > FL_SHAMIR_MAX_SHARES || t < 1 || t > n)
        return fl_fail(err, FL_EINVAL, "Shamir split: need 1 <= t <= n <= %d, got t = %u, n = %u",
                       FL_SHAMIR_MAX_SHARES, t, n);
    /* f(x) = s + sum_j a_j x^j, one coefficient row (32 bytes, one per byte's polynomial) at a
     * time: share i gains a_j * x_i^j, with x_i^j kept in pw[i]. Only one row is ever held. */
    uint8_t pw[FL_SHAMIR_MAX_SHARES], a[FL_SHAMIR_SECRET_LEN];
    fl_status st = FL_OK;
    for (unsigned i = 0; i < n; i++) {
        memcpy(shares[i], secret, FL_SHAMIR_SECRET_LEN);
        pw[i] = 1;
    }
    for (unsigned j = 1; j < t; j++) {
        if ((st = rand_fn(rand_ctx, a, sizeof a)) != FL_OK) {
            fl_fail(err, st, "Shamir split: the random source failed (coefficient %u of %u)", j,
                    t - 1);
            goto fail;
        }
        for (unsigned i = 0; i < n; i++) {
            pw[i] = gf_mul(pw[i], (uint8_t)(i + 1));
            for (int b = 0; b < FL_SHAMIR_SECRET_LEN; b++) shares[i][b] ^= gf_mul(a[b], pw[i]);
        }
    }
    OPENSSL_cleanse(a, sizeof a);
    return FL_OK;
fail:
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(shares, (size_t)n * FL_SHAMIR_SECRET_LEN);
    return st;
}

fl_status fl_shamir_combine(const uint8_t (*shares)[FL_SHAMIR_SECRET_LEN], const uint32_t *xs,
                            size_t k, uint8_t secret[FL_SHAMIR_SECRET_LEN], fl_err *err) {
    if (k < 1 || k > FL_SHAMIR_MAX_SHARES)
        return fl_fail(err, FL_EINVAL, "Shamir combine: need 1 to %d shares, got %zu",
                       FL_SHAMIR_MAX_SHARES, k);
    uint8_t seen[FL_SHAMIR_MAX_SHARES + 1] = {0};
    for (size_t i = 0; i < k; i++) {
        if (xs[i] < 1 || xs[i] > FL_SHAMIR_MAX_SHARES)
            return fl_fail(err, FL_EINVAL, "Shamir combine: share %zu has x = %u, outside 1..%d", i,
                           (unsigned)xs[i], FL_SHAMIR_MAX_SHARES);
        if (seen[xs[i]]++)
            return fl_fail(err, FL_EINVAL, "Shamir combine: x = %u appears twice", (unsigned)xs[i]);
    }
    /* s = f(0) = sum_i y_i L_i, L_i = prod_{j != i} x_j / (x_j - x_i); minus is xor here. */
    uint8_t acc[FL_SHAMIR_SECRET_LEN] = {0};
    for (size_t i = 0; i < k; i++) {
        uint8_t num = 1, den = 1;
        for (size_t j = 0; j < k; j++) {
            if (j == i) continue;
            num = gf_mul(num, (uint8_t)xs[j]);
            den = gf_mul(den, (uint8_t)(xs[j] ^ xs[i]));
        }
        uint8_t li = gf_mul(num, gf_inv(den));
        for (int b = 0; b < FL_SHAMIR_SECRET_LEN; b++) acc[b] ^= gf_mul(shares[i][b], li);
    }
    memcpy(secret, acc, sizeof acc); /* via acc, so secret may overlap a share */
    OPENSSL_cleanse(acc, sizeof acc);
    return FL_OK;
}
