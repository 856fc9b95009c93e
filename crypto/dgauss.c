/* dgauss.c - the Canonne-Kamath-Steinke discrete Gaussian in integer arithmetic: random bits
 * from a pool, uniform integers by rejection, Bernoulli(p) for rational p, Bernoulli(exp(-x))
 * for rational x >= 0, the discrete Laplace, and Algorithm 1 on top. Rationals are u128 with the
 * one square that needs 256 bits (the bias's numerator) split into quotient and remainder.
 * Not constant time: the number of draws depends on the sample, as in the paper. */
#include "dgauss.h"

#include <string.h>

#include <openssl/crypto.h>

typedef unsigned __int128 u128;

/* Random bits: blocks of bytes from the caller's source, handed out a few bits at a time. After
 * a failure st is set and every draw is 0; each loop below checks st so that it ends. */
typedef struct {
    fl_rand_fn fn;
    void *ctx;
    fl_status st;
    size_t pos; /* next unread byte of buf; sizeof buf when empty */
    uint64_t word;
    unsigned nbits; /* unread low bits of word */
    uint8_t buf[256];
} bit_pool;

static uint64_t low_bits(uint64_t w, unsigned k) {
    return k >= 64 ? w : w & ((UINT64_C(1) << k) - 1);
}

static uint64_t next_word(bit_pool *p) {
    if (p->pos == sizeof p->buf) {
        if (p->st == FL_OK) p->st = p->fn(p->ctx, p->buf, sizeof p->buf);
        if (p->st != FL_OK) return 0;
        p->pos = 0;
    }
    uint64_t w;
    memcpy(&w, p->buf + p->pos, sizeof w);
    p->pos += sizeof w;
    return w;
}

/* k uniform bits, 1 <= k <= 64. */
static uint64_t take_bits(bit_pool *p, unsigned k) {
    if (p->nbits >= k) {
        uint64_t v = low_bits(p->word, k);
        p->word = k >= 64 ? 0 : p->word >> k;
        p->nbits -= k;
        return v;
    }
    unsigned have = p->nbits, need = k - have; /* have < 64, so the shift below is defined */
    uint64_t w = next_word(p), v = p->word | low_bits(w, need) << have;
    p->word = need >= 64 ? 0 : w >> need;
    p->nbits = 64 - need;
    return v;
}

/* Uniform on {0, ..., m - 1}, m >= 1: draw as many bits as m - 1 has, retry when >= m (fewer
 * than two tries on average). */
static u128 uniform(bit_pool *p, u128 m) {
    if (m == 1) return 0;
    unsigned bits = 0;
    for (u128 x = m - 1; x; x >>= 1) bits++;
    for (;;) {
        u128 v = take_bits(p, bits < 64 ? bits : 64);
        if (bits > 64) v |= (u128)take_bits(p, bits - 64) << 64;
        if (v < m || p->st != FL_OK) return v;
    }
}

/* Bernoulli(r / (d k)), d, k >= 1. One uniform draw when d k fits in 128 bits, else the
 * product of Bernoulli(r / d) and Bernoulli(1 / k), which has the same probability. */
static int bernoulli(bit_pool *p, u128 r, u128 d, u128 k) {
    if (r == 0) return 0;
    if (k <= ~(u128)0 / d) return uniform(p, d * k) < r;
    return uniform(p, d) < r && uniform(p, k) == 0;
}

/* Bernoulli(exp(-r/d)) for 0 <= r <= d (CKS Algorithm 2's first part): the parity of the
 * first k at which Bernoulli(x/k) fails. */
static int bernoulli_exp1(bit_pool *p, u128 r, u128 d) {
    u128 k = 1;
    while (bernoulli(p, r, d, k) && p->st == FL_OK) k++;
    return (int)(k & 1);
}

/* Bernoulli(exp(-(q + r/d))), 0 <= r < d: q independent Bernoulli(exp(-1)) and then the
 * fraction must all succeed. */
static int bernoulli_exp(bit_pool *p, uint64_t q, u128 r, u128 d) {
    for (uint64_t i = 0; i < q; i++)
        if (!bernoulli_exp1(p, 1, 1) || p->st != FL_OK) return 0;
    return bernoulli_exp1(p, r, d);
}

/* The sampler's constants for sigma^2 = num/den: t = floor(sqrt(sigma^2)) + 1 (the discrete
 * Laplace's scale), t * den, and D = 2 num t^2 den, the bias's denominator. With num, den <=
 * 2^60: t^2 den <= (sqrt(num) + sqrt(den))^2 <= 2^62, so D <= 2^123 and t den <= 2^61. */
typedef struct {
    uint64_t num, t;
    u128 t_den, d;
} dgauss_params;

static uint64_t isqrt64(uint64_t y) {
    uint64_t r = 0, bit = UINT64_C(1) << 62;
    while (bit > y) bit >>= 2;
    for (; bit; bit >>= 2) {
        if (y >= r + bit) {
            y -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
    }
    return r;
}

#define MAG_LIMIT (UINT64_C(1) << 62) /* candidates at or beyond are rejected (see dgauss.h) */

/* The discrete Laplace with P[c] proportional to exp(-|c|/t) (CKS Algorithm 2): a magnitude
 * v t + u with u accepted with probability exp(-u/t) and v geometric with ratio exp(-1), a
 * random sign, "-0" redrawn. Returns 0 (draw again) past MAG_LIMIT or on a failed source. */
static int dlaplace(bit_pool *p, uint64_t t, int64_t *c) {
    for (;;) {
        int negative = (int)take_bits(p, 1);
        uint64_t u, v = 0;
        do {
            u = (uint64_t)uniform(p, t);
        } while (!bernoulli_exp1(p, u, t) && p->st == FL_OK);
        while (bernoulli_exp1(p, 1, 1) && p->st == FL_OK && v < MAG_LIMIT) v++;
        if (p->st != FL_OK || v > (MAG_LIMIT - 1 - u) / t) return 0; /* mag < 2^62 */
        uint64_t mag = v * t + u;
        if (negative && mag == 0) continue;
        *c = negative ? -(int64_t)mag : (int64_t)mag;
        return 1;
    }
}

/* Algorithm 1: a discrete Laplace candidate c kept with probability exp(-bias),
 * bias = (|c| - sigma^2/t)^2 / (2 sigma^2) = m^2 / D with m = | |c| t den - num |. m < 2^124,
 * so m^2 takes 256 bits (hi:lo); it is split into q = floor(m^2 / D) and r = m^2 mod D by
 * long division of the low 64 bits, once floor(m^2 / 2^64) is known to be below D (else
 * q >= 2^64 and the candidate is rejected, see dgauss.h). */
static int64_t dgauss_one(bit_pool *p, const dgauss_params *g) {
    for (;;) {
        int64_t c;
        if (!dlaplace(p, g->t, &c)) {
            if (p->st != FL_OK) return 0;
            continue;
        }
        u128 a = (u128)(c < 0 ? -(uint64_t)c : (uint64_t)c) * g->t_den;
        u128 m = a >= g->num ? a - g->num : g->num - a;
        u128 m0 = (uint64_t)m, m1 = (uint64_t)(m >> 64);
        u128 lo = m0 * m0, mid = 2 * m0 * m1, hi = m1 * m1; /* m1 < 2^60: mid < 2^125 */
        u128 lo2 = lo + (mid << 64);
        hi += (mid >> 64) + (lo2 < lo);
        lo = lo2;
        if (hi >> 64) continue;
        u128 rem = hi << 64 | lo >> 64;
        if (rem >= g->d) continue;
        uint64_t q = 0;
        for (int b = 63; b >= 0; b--) {
            rem = rem << 1 | (uint64_t)(lo >> b & 1);
            q <<= 1;
            if (rem >= g->d) {
                rem -= g->d;
                q |= 1;
            }
        }
        if (bernoulli_exp(p, q, rem, g->d) && p->st == FL_OK) return c;
        if (p->st != FL_OK) return 0;
    }
}

/* Checks sigma^2 and fills g; starts the pool. */
static fl_status dgauss_begin(uint64_t num, uint64_t den, fl_rand_fn fn, void *ctx,
                              dgauss_params *g, bit_pool *p, fl_err *err) {
    if (num < 1 || num > FL_DGAUSS_MAX_TERM || den < 1 || den > FL_DGAUSS_MAX_TERM)
        return fl_fail(err, FL_EINVAL,
                       "discrete Gaussian: sigma^2 = %llu/%llu, each part must be in 1..2^60",
                       (unsigned long long)num, (unsigned long long)den);
    g->num = num;
    g->t = isqrt64(num / den) + 1; /* floor(sqrt(floor(y))) = floor(sqrt(y)) */
    g->t_den = (u128)g->t * den;
    g->d = 2 * (u128)num * g->t * g->t_den;
    memset(p, 0, sizeof *p);
    p->fn = fn;
    p->ctx = ctx;
    p->pos = sizeof p->buf;
    return FL_OK;
}

/* Wipes the pool and reports a failed source. */
static fl_status dgauss_end(bit_pool *p, fl_err *err) {
    fl_status st = p->st;
    OPENSSL_cleanse(p, sizeof *p);
    if (st != FL_OK) return fl_fail(err, st, "discrete Gaussian: the random source failed");
    return FL_OK;
}

fl_status fl_dgauss_samples(uint64_t sigma2_num, uint64_t sigma2_den, fl_rand_fn rand_fn,
                            void *rand_ctx, int64_t *out, size_t n, fl_err *err) {
    dgauss_params g;
    bit_pool p;
    fl_status st = dgauss_begin(sigma2_num, sigma2_den, rand_fn, rand_ctx, &g, &p, err);
    if (st != FL_OK) return st;
    for (size_t i = 0; i < n && p.st == FL_OK; i++) out[i] = dgauss_one(&p, &g);
    return dgauss_end(&p, err);
}

fl_status fl_dgauss_sample(uint64_t sigma2_num, uint64_t sigma2_den, fl_rand_fn rand_fn,
                           void *rand_ctx, int64_t *out, fl_err *err) {
    return fl_dgauss_samples(sigma2_num, sigma2_den, rand_fn, rand_ctx, out, 1, err);
}

fl_status fl_dgauss_add_u32(uint32_t *v, size_t n, uint64_t sigma2_num, uint64_t sigma2_den,
                            fl_rand_fn rand_fn, void *rand_ctx, fl_err *err) {
    dgauss_params g;
    bit_pool p;
    fl_status st = dgauss_begin(sigma2_num, sigma2_den, rand_fn, rand_ctx, &g, &p, err);
    if (st != FL_OK) return st;
    volatile int64_t c = 0; /* the noise is secret: volatile so that the final wipe stays */
    for (size_t i = 0; i < n && p.st == FL_OK; i++) {
        c = dgauss_one(&p, &g);
        v[i] += (uint32_t)(uint64_t)c; /* two's complement, mod 2^32 */
    }
    c = 0;
    return dgauss_end(&p, err);
}
