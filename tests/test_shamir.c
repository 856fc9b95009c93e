/* test_shamir.c - crypto/shamir: FIPS-197 products and an inverse through split and combine,
 * reconstruction from every size of subset >= t, secrecy of t - 1 shares (exhaustively for
 * t = 3, and as "every candidate secret has exactly one polynomial" for t = 5), the argument
 * checks, and a failing random source. */
#include <stdio.h>
#include <string.h>

#include "../common/rng.h"
#include "../crypto/shamir.h"
#include "harness.h"

#define L FL_SHAMIR_SECRET_LEN

/* The random source: seeded splitmix64 bytes, or a script (call i fills every byte with
 * script[i]) when script is set; fails at call fail_at (0: never). */
typedef struct {
    fl_rng rng;
    const uint8_t *script;
    int calls, fail_at;
} source;

static fl_status source_bytes(void *ctx, uint8_t *out, size_t n) {
    source *s = ctx;
    if (++s->calls == s->fail_at) return FL_EBACKEND;
    if (s->script) memset(out, s->script[s->calls - 1], n);
    for (size_t i = 0; i < n && !s->script; i++) out[i] = (uint8_t)fl_rng_u64(&s->rng);
    return FL_OK;
}

static void fill_random(fl_rng *r, uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)fl_rng_u64(r);
}

/* ------------------------------------------------------------------------------------------ */

/* With t = 2 and a zero secret, share x is a * x: FIPS-197 §4.2's 0x57 * 0x83 = 0xc1 and
 * 0x57 * 0x13 = 0xfe. Combining y = (1, 0) at x = (0x52, 1) gives L_1 = 1 / (0x52 ^ 1) =
 * 0x53^-1 = 0xca, the textbook inverse (0x53 * 0xca = 0x01 in AES's field). */
static void test_known_answers(void) {
    static uint8_t shares[0x83][L];
    uint8_t zero[L] = {0}, a = 0x57, s[L];
    source src = {.script = &a};
    fl_err err = {{0}};
    CHECK_OK(fl_shamir_split(zero, 2, 0x83, source_bytes, &src, shares, &err), &err);
    for (int b = 0; b < L; b++) {
        CHECK_EQ_INT(shares[0][b], 0x57);        /* x = 1 */
        CHECK_EQ_INT(shares[0x13 - 1][b], 0xfe); /* x = 0x13 */
        CHECK_EQ_INT(shares[0x83 - 1][b], 0xc1); /* x = 0x83 */
    }
    uint8_t y[2][L];
    memset(y[0], 1, L);
    memset(y[1], 0, L);
    const uint32_t xs[2] = {0x52, 1};
    CHECK_OK(fl_shamir_combine((const uint8_t(*)[L])y, xs, 2, s, &err), &err);
    for (int b = 0; b < L; b++) CHECK_EQ_INT(s[b], 0xca);
}

/* Random secrets, (t, n) from 1-of-1 to 255-of-255: every subset tried, of every size from t
 * to n and in shuffled order, gives the secret back; t - 1 shares do not. */
static void test_round_trip(void) {
    static const unsigned tn[][2] = {{1, 1}, {1, 5}, {2, 2},   {2, 3},    {3, 5},
                                     {5, 5}, {4, 9}, {10, 20}, {255, 255}};
    static uint8_t shares[FL_SHAMIR_MAX_SHARES][L], pick[FL_SHAMIR_MAX_SHARES][L];
    uint32_t xs[FL_SHAMIR_MAX_SHARES], order[FL_SHAMIR_MAX_SHARES];
    fl_rng r;
    fl_rng_seed(&r, 42);
    source src;
    fl_rng_seed(&src.rng, 7);
    src.script = NULL, src.calls = 0, src.fail_at = 0;
    fl_err err = {{0}};
    for (size_t c = 0; c < sizeof tn / sizeof *tn; c++) {
        unsigned t = tn[c][0], n = tn[c][1];
        uint8_t secret[L], got[L];
        fill_random(&r, secret, L);
        CHECK_OK(fl_shamir_split(secret, t, n, source_bytes, &src, shares, &err), &err);
        if (t > 1) CHECK(memcmp(shares[0], secret, L) != 0);
        for (int trial = 0; trial < 6; trial++) {
            for (unsigned i = 0; i < n; i++) order[i] = i;
            for (unsigned i = n - 1; i > 0; i--) { /* Fisher-Yates */
                unsigned j = (unsigned)(fl_rng_u64(&r) % (i + 1)), tmp = order[i];
                order[i] = order[j], order[j] = tmp;
            }
            unsigned k = t + (unsigned)(fl_rng_u64(&r) % (n - t + 1));
            if (trial == 0) k = t;
            if (trial == 1) k = n;
            for (unsigned i = 0; i < k; i++) {
                memcpy(pick[i], shares[order[i]], L);
                xs[i] = order[i] + 1;
            }
            memset(got, 0, L);
            CHECK_OK(fl_shamir_combine((const uint8_t(*)[L])pick, xs, k, got, &err), &err);
            if (memcmp(got, secret, L) != 0)
                fl_test_fail_at(__FILE__, __LINE__, "%u-of-%u: %u shares do not give the secret", t,
                                n, k);
            fl_test_checks++;
            if (t > 1) { /* t - 1 of them: a wrong value (equal with probability 2^-256) */
                CHECK_OK(fl_shamir_combine((const uint8_t(*)[L])pick, xs, t - 1, got, &err), &err);
                CHECK(memcmp(got, secret, L) != 0);
            }
        }
    }
}

/* t = 3, x = 1, 2: for each of three secret bytes s, the 65536 coefficient pairs (a_1, a_2)
 * give 65536 different share pairs (f(1), f(2)), every one exactly once. So with uniform
 * coefficients two shares are uniform on GF(2^8)^2 whatever s is: they say nothing about it. */
static void test_two_shares_are_uniform(void) {
    static uint8_t hit[65536];
    static const uint8_t secrets[] = {0x00, 0xa5, 0xff};
    uint8_t shares[3][L], secret[L] = {0};
    fl_err err = {{0}};
    for (size_t si = 0; si < sizeof secrets; si++) {
        memset(hit, 0, sizeof hit);
        secret[0] = secrets[si];
        int failed = 0, missing = 0;
        for (unsigned e = 0; e < 65536; e++) {
            uint8_t coef[2] = {(uint8_t)e, (uint8_t)(e >> 8)};
            source src = {.script = coef};
            failed |= fl_shamir_split(secret, 3, 3, source_bytes, &src, shares, &err) != FL_OK;
            hit[shares[0][0] | shares[1][0] << 8]++;
        }
        for (unsigned v = 0; v < 65536; v++) missing += hit[v] != 1;
        CHECK(!failed);
        CHECK_EQ_INT(missing, 0);
    }
}

/* t = 5 of n = 8, four shares fixed (x = 2, 4, 5, 7): as the fifth share (x = 8) runs over all
 * 256 values in every byte, the combined secret takes all 256 values in every byte. Each
 * candidate secret has exactly one degree-4 polynomial through the four shares, so they leave
 * every secret equally likely. */
static void test_every_secret_consistent(void) {
    uint8_t shares[8][L], secret[L], pick[5][L], got[L];
    static const uint32_t xs[5] = {2, 4, 5, 7, 8};
    fl_rng r;
    fl_rng_seed(&r, 3);
    fill_random(&r, secret, L);
    source src;
    fl_rng_seed(&src.rng, 11);
    src.script = NULL, src.calls = 0, src.fail_at = 0;
    fl_err err = {{0}};
    CHECK_OK(fl_shamir_split(secret, 5, 8, source_bytes, &src, shares, &err), &err);
    for (int i = 0; i < 4; i++) memcpy(pick[i], shares[xs[i] - 1], L);
    static uint16_t seen[L][256];
    memset(seen, 0, sizeof seen);
    for (unsigned y = 0; y < 256; y++) {
        memset(pick[4], (int)y, L);
        CHECK_OK(fl_shamir_combine((const uint8_t(*)[L])pick, xs, 5, got, &err), &err);
        for (int b = 0; b < L; b++) seen[b][got[b]]++;
        if (y == 0) { /* and the true fifth share gives the true secret */
            memcpy(pick[4], shares[7], L);
            CHECK_OK(fl_shamir_combine((const uint8_t(*)[L])pick, xs, 5, got, &err), &err);
            CHECK(memcmp(got, secret, L) == 0);
        }
    }
    int not_once = 0;
    for (int b = 0; b < L; b++)
        for (int v = 0; v < 256; v++) not_once += seen[b][v] != 1;
    CHECK_EQ_INT(not_once, 0);
}

static void test_arguments(void) {
    uint8_t secret[L], shares[4][L], got[L];
    memset(secret, 0x33, L);
    source src;
    fl_rng_seed(&src.rng, 1);
    src.script = NULL, src.calls = 0, src.fail_at = 0;
    fl_err err = {{0}};
    static const unsigned bad[][2] = {{0, 3}, {4, 3}, {1, 0}, {2, 256}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ_INT(
            fl_shamir_split(secret, bad[i][0], bad[i][1], source_bytes, &src, shares, &err),
            FL_EINVAL);
        CHECK_MSG(err, "1 <= t <= n <= 255");
    }
    CHECK_OK(fl_shamir_split(secret, 2, 4, source_bytes, &src, shares, &err), &err);
    memset(got, 0x77, L);
    const uint32_t dup[2] = {3, 3}, zero[2] = {0, 1}, big[2] = {1, 256};
    CHECK_EQ_INT(fl_shamir_combine((const uint8_t(*)[L])shares, dup, 2, got, &err), FL_EINVAL);
    CHECK_MSG(err, "x = 3 appears twice");
    CHECK_EQ_INT(fl_shamir_combine((const uint8_t(*)[L])shares, zero, 2, got, &err), FL_EINVAL);
    CHECK_MSG(err, "share 0 has x = 0");
    CHECK_EQ_INT(fl_shamir_combine((const uint8_t(*)[L])shares, big, 2, got, &err), FL_EINVAL);
    CHECK_MSG(err, "x = 256");
    CHECK_EQ_INT(fl_shamir_combine((const uint8_t(*)[L])shares, dup, 0, got, &err), FL_EINVAL);
    CHECK_MSG(err, "got 0");
    uint8_t untouched[L];
    memset(untouched, 0x77, L);
    CHECK(memcmp(got, untouched, L) == 0);

    /* The source fails on its second call (the second coefficient of 3-of-4): its status comes
     * back and no share keeps the partial polynomial. */
    src.calls = 0, src.fail_at = 2;
    uint8_t zeros[4][L] = {{0}};
    CHECK_EQ_INT(fl_shamir_split(secret, 3, 4, source_bytes, &src, shares, &err), FL_EBACKEND);
    CHECK_MSG(err, "random source failed");
    CHECK(memcmp(shares, zeros, sizeof zeros) == 0);
}

/* The production source: the CSPRNG (crypto/rand.h) through the same callback. */
static void test_csprng_source(void) {
    uint8_t secret[32], back[32], shares[5][32];
    uint32_t xs[3] = {5, 2, 4};
    uint8_t pick[3][32];
    fl_err err;
    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i * 7 + 1);
    CHECK(fl_shamir_split(secret, 3, 5, fl_rand_source, NULL, shares, &err) == FL_OK);
    for (int i = 0; i < 3; i++) memcpy(pick[i], shares[xs[i] - 1], 32);
    CHECK(fl_shamir_combine(pick, xs, 3, back, &err) == FL_OK);
    CHECK(memcmp(back, secret, 32) == 0);
}

int main(void) {
    test_csprng_source();
    test_known_answers();
    test_round_trip();
    test_two_shares_are_uniform();
    test_every_secret_consistent();
    test_arguments();
    return fl_test_summary("shamir");
}
