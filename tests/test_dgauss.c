/* test_dgauss.c - crypto/dgauss against the exact N_Z(0, sigma^2): P[0] and P[+-1] from
 * shared/reference/crypto-vectors.md per value, the whole histogram by chi-square (and a check
 * that the same histogram fails against a sigma^2 5% off, so the test has teeth), mean and
 * variance, the extremes of the sigma^2 range, Z_2^32 noise with wrap-around, determinism,
 * arguments and a failing random source. Floating point only here, in the expectations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../crypto/dgauss.h"
#include "harness.h"

/* Seeded splitmix64 bytes; fails at call fail_at (0: never). */
typedef struct {
    fl_rng rng;
    int calls, fail_at;
} source;

static fl_status source_bytes(void *ctx, uint8_t *out, size_t n) {
    source *s = ctx;
    if (++s->calls == s->fail_at) return FL_EIO;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = fl_rng_u64(&s->rng);
        memcpy(out + i, &w, n - i < 8 ? n - i : 8);
    }
    return FL_OK;
}

static void source_init(source *s, uint64_t seed) {
    fl_rng_seed(&s->rng, seed);
    s->calls = 0, s->fail_at = 0;
}

/* The exact N_Z(0, s2): p[k + K] = exp(-k^2 / (2 s2)) / Z for |k| <= K, Z summed far into the
 * tails (40 sigma), and the variance and fourth moment. */
typedef struct {
    int K;
    double *p, var, m4;
} dgauss_law;

static dgauss_law law(double s2, int K) {
    dgauss_law d = {K, calloc((size_t)(2 * K + 1), sizeof(double)), 0, 0};
    double z = 0, m2 = 0, m4 = 0;
    int far = (int)(40 * sqrt(s2)) + 10;
    for (int k = -far; k <= far; k++) {
        double w = exp(-(double)k * k / (2 * s2));
        z += w, m2 += w * k * k, m4 += w * k * k * (double)k * k;
        if (k >= -K && k <= K) d.p[k + K] = w;
    }
    for (int k = 0; k <= 2 * K; k++) d.p[k] /= z;
    d.var = m2 / z, d.m4 = m4 / z;
    return d;
}

/* Pearson's chi-square of counts[2K+1] (values -K..K) against d: bins from the left, each
 * closed once its expected count reaches 20, what is left at the right joining the last one;
 * *df = bins - 1. */
static double chi_square(const long *counts, long n, const dgauss_law *d, int *df) {
    double chi = 0, e = 0, o = 0, last_e = 0, last_o = 0;
    int bins = 0;
    for (int k = 0; k <= 2 * d->K; k++) {
        e += n * d->p[k], o += (double)counts[k];
        if (e < 20) continue;
        if (bins++) chi += (last_o - last_e) * (last_o - last_e) / last_e;
        last_e = e, last_o = o, e = o = 0;
    }
    last_e += e, last_o += o;
    chi += (last_o - last_e) * (last_o - last_e) / last_e;
    *df = bins - 1;
    return chi;
}

/* The upper 1e-6 point of chi-square(df), by Wilson-Hilferty: a deterministic run has no
 * second chance, so the bar is high; test_teeth shows that it still catches a 5% error. */
static double chi_limit(int df) {
    double z = 4.753, a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

typedef struct {
    uint64_t num, den;
    double p0, p1; /* crypto-vectors.md's P[0] and P[1], or 0 for none */
    long n;        /* samples */
} sigma_case;

static const sigma_case cases[] = {
    {1, 4, 0.786570707041948, 0.106450769423145, 400000},
    {1, 1, 0.398942278266862, 0.241970723224461, 400000},
    {4, 1, 0.199471140200716, 0.176032663382150, 400000},
    {100, 1, 0.0398942280401433, 0.0396952547477012, 400000},
    {5, 2, 0, 0, 200000}, /* sigma^2 = 2.5: a proper fraction */
};

/* Samples case c into counts over -K..K (and moments), then checks P[0], P[+-1], the
 * chi-square, mean and variance; and that the same counts fail chi-square against 1.05 s2. */
static void test_distribution(const sigma_case *c, uint64_t seed) {
    double s2 = (double)c->num / (double)c->den;
    int K = (int)(12 * sqrt(s2)) + 4;
    dgauss_law d = law(s2, K), off = law(1.05 * s2, K);
    if (c->p0 > 0) { /* the expectations agree with the reference table first */
        CHECK_CLOSE(d.p[K], c->p0, 1e-12, 0);
        CHECK_CLOSE(d.p[K + 1], c->p1, 1e-12, 0);
    }
    int64_t *x = malloc((size_t)c->n * sizeof *x);
    long *counts = calloc((size_t)(2 * K + 1), sizeof *counts);
    source src;
    source_init(&src, seed);
    fl_err err = {{0}};
    CHECK_OK(fl_dgauss_samples(c->num, c->den, source_bytes, &src, x, (size_t)c->n, &err), &err);
    double sum = 0, sumsq = 0;
    long outside = 0;
    for (long i = 0; i < c->n; i++) {
        sum += (double)x[i], sumsq += (double)x[i] * (double)x[i];
        if (x[i] < -K || x[i] > K)
            outside++;
        else
            counts[x[i] + K]++;
    }
    CHECK_EQ_INT(outside, 0); /* beyond 12 sigma + 4 */
    double n = (double)c->n;
    for (int k = -1; k <= 1; k++) { /* each within 5 standard errors */
        double p = d.p[K + k], se = sqrt(p * (1 - p) / n), got = counts[K + k] / n;
        if (fabs(got - p) > 5 * se)
            fl_test_fail_at(__FILE__, __LINE__, "sigma^2 = %g: P[%d] = %.6f, want %.6f +- %.6f", s2,
                            k, got, p, 5 * se);
        fl_test_checks++;
    }
    double mean = sum / n, var = sumsq / n - mean * mean;
    double se_mean = sqrt(d.var / n), se_var = sqrt((d.m4 - d.var * d.var) / n);
    if (fabs(mean) > 5 * se_mean || fabs(var - d.var) > 5 * se_var)
        fl_test_fail_at(__FILE__, __LINE__,
                        "sigma^2 = %g: mean %.5f (want 0 +- %.5f), variance %.5f (want %.5f "
                        "+- %.5f)",
                        s2, mean, 5 * se_mean, var, d.var, 5 * se_var);
    fl_test_checks++;
    int df, df_off;
    double chi = chi_square(counts, c->n, &d, &df),
           chi_off = chi_square(counts, c->n, &off, &df_off);
    if (chi > chi_limit(df))
        fl_test_fail_at(__FILE__, __LINE__, "sigma^2 = %g: chi-square %.1f on %d df > %.1f", s2,
                        chi, df, chi_limit(df));
    fl_test_checks++;
    if (chi_off <= chi_limit(df_off)) /* the teeth: 5% off in sigma^2 must show */
        fl_test_fail_at(__FILE__, __LINE__,
                        "sigma^2 = %g: chi-square against 1.05 sigma^2 only %.1f on %d df", s2,
                        chi_off, df_off);
    fl_test_checks++;
    if (getenv("FL_TEST_VERBOSE"))
        printf("sigma^2 %-5g n %ld: P0 %.5f mean %+.4f var %.4f (%.4f) chi2 %.1f/%d (1.05: %.0f)\n",
               s2, c->n, counts[K] / n, mean, var, d.var, chi, df, chi_off);
    free(x), free(counts), free(d.p), free(off.p);
}

/* The ends of the range: sigma^2 = 2^60 (sigma = 2^30) and 2^40 give the right spread, and
 * sigma^2 = 2^-60 and 2^-40 give 0 every time (P[+-1] = exp(-2^39) and less); num = den = 2^60
 * is sigma^2 = 1 through the largest intermediates. */
static void test_range(void) {
    enum { N = 20000 };
    static int64_t x[N];
    static const struct {
        uint64_t num, den;
        double var; /* 0: every sample 0 */
    } r[] = {
        {UINT64_C(1) << 60, 1, 0x1p60},
        {UINT64_C(1) << 40, 1, 0x1p40},
        {1, UINT64_C(1) << 60, 0},
        {1, UINT64_C(1) << 40, 0},
        {UINT64_C(1) << 60, UINT64_C(1) << 60, 0.999999788767728},
    };
    source src;
    source_init(&src, 99);
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        CHECK_OK(fl_dgauss_samples(r[i].num, r[i].den, source_bytes, &src, x, N, &err), &err);
        double sum = 0, sumsq = 0;
        long nonzero = 0;
        for (int j = 0; j < N; j++) sum += (double)x[j], sumsq += (double)x[j] * x[j];
        for (int j = 0; j < N; j++) nonzero += x[j] != 0;
        if (r[i].var == 0) {
            CHECK_EQ_INT(nonzero, 0);
            continue;
        }
        double mean = sum / N, var = sumsq / N - mean * mean, sd = sqrt(r[i].var);
        /* 5 standard errors: sigma / sqrt(N) for the mean, sigma^2 sqrt(2 / N) for the variance */
        CHECK(fabs(mean) < 5 * sd / sqrt(N));
        CHECK_CLOSE(var, r[i].var, 5 * sqrt(2.0 / N), 0);
    }
}

/* fl_dgauss_add_u32 adds exactly fl_dgauss_samples' values for the same seed, mod 2^32: next to
 * 0 negative noise wraps up to 2^32 - k, next to 2^32 - 1 positive noise wraps down. */
static void test_add_u32(void) {
    enum { N = 1000 };
    static uint32_t v[N], v0[N];
    static int64_t x[N], y[N];
    for (int i = 0; i < N; i++) v0[i] = v[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? UINT32_MAX : 1u << 31;
    source a, b;
    source_init(&a, 5), source_init(&b, 5);
    fl_err err = {{0}};
    CHECK_OK(fl_dgauss_samples(100, 1, source_bytes, &a, x, N, &err), &err);
    CHECK_OK(fl_dgauss_add_u32(v, N, 100, 1, source_bytes, &b, &err), &err);
    int wrong = 0, wrapped = 0;
    for (int i = 0; i < N; i++) {
        wrong += v[i] != (uint32_t)(v0[i] + (uint32_t)(uint64_t)x[i]);
        wrapped += (x[i] < 0 && v0[i] == 0) || (x[i] > 0 && v0[i] == UINT32_MAX);
        int64_t back = (int64_t)(int32_t)(v[i] - v0[i]); /* the noise read back as signed */
        wrong += back != x[i];
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(wrapped > N / 4);
    /* the same seed, the same samples; another seed, others */
    source_init(&a, 5), source_init(&b, 6);
    CHECK_OK(fl_dgauss_samples(100, 1, source_bytes, &a, y, N, &err), &err);
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK_OK(fl_dgauss_samples(100, 1, source_bytes, &b, y, N, &err), &err);
    CHECK(memcmp(x, y, sizeof x) != 0);
    int64_t one;
    source_init(&a, 5);
    CHECK_OK(fl_dgauss_sample(100, 1, source_bytes, &a, &one, &err), &err);
    CHECK_EQ_INT(one, x[0]);
}

static void test_arguments(void) {
    static int64_t x[1000];
    static uint32_t v[1000];
    source src;
    source_init(&src, 1);
    fl_err err = {{0}};
    static const uint64_t bad[][2] = {
        {0, 1}, {1, 0}, {(UINT64_C(1) << 60) + 1, 1}, {1, (UINT64_C(1) << 60) + 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ_INT(fl_dgauss_samples(bad[i][0], bad[i][1], source_bytes, &src, x, 1, &err),
                     FL_EINVAL);
        CHECK_MSG(err, "must be in 1..2^60");
        CHECK_EQ_INT(fl_dgauss_add_u32(v, 1, bad[i][0], bad[i][1], source_bytes, &src, &err),
                     FL_EINVAL);
    }
    CHECK_EQ_INT(src.calls, 0);
    /* A source that fails at once, or after a few blocks: the call ends with its status. */
    for (int at = 1; at <= 3; at++) {
        source_init(&src, 2), src.fail_at = at;
        CHECK_EQ_INT(fl_dgauss_samples(4, 1, source_bytes, &src, x, 1000, &err), FL_EIO);
        CHECK_MSG(err, "random source failed");
        source_init(&src, 2), src.fail_at = at;
        CHECK_EQ_INT(fl_dgauss_add_u32(v, 1000, 1, 1u << 20, source_bytes, &src, &err), FL_EIO);
    }
    CHECK_OK(fl_dgauss_samples(4, 1, source_bytes, &src, x, 0, &err), &err); /* n = 0 */
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        test_distribution(&cases[i], 1000 + i);
    test_range();
    test_add_u32();
    test_arguments();
    return fl_test_summary("dgauss");
}
