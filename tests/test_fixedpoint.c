/* test_fixedpoint.c - crypto/fixedpoint: known encodings (rounding half away from zero, two's
 * complement), the scale for (clip, n, margin) is the largest power of two that keeps n clipped
 * encodings inside int32, and sums of n encodings - negative values, extremes at +-clip, a
 * modular sum that wraps on the way - decode to the float sum within n / (2 scale). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../crypto/fixedpoint.h"
#include "harness.h"

static void test_encode_known(void) {
    static const struct {
        float x;
        double scale;
        uint32_t want;
    } k[] = {
        {0.0f, 1, 0},
        {-0.0f, 1, 0},
        {1.0f, 1, 1},
        {-1.0f, 1, 0xffffffff},
        {0.5f, 1, 1},
        {-0.5f, 1, 0xffffffff},
        {2.5f, 1, 3},
        {-2.5f, 1, 0xfffffffd},
        {0.49999997f, 1, 0},
        {1.5f, 65536, 0x18000},
        {-1.5f, 65536, 0xfffe8000},
        {-1e-3f, 0x1p20, (uint32_t)-1049}, /* -1048.576 */
        {2147483520.0f, 1, 0x7fffff80},    /* the largest float below 2^31 */
        {-2147483520.0f, 1, 0x80000080},
    };
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        uint32_t got = 12345;
        CHECK_OK(fl_fixed_encode(&k[i].x, 1, k[i].scale, &got, &err), &err);
        if (got != k[i].want)
            fl_test_fail_at(__FILE__, __LINE__, "encode(%.9g, %g) = 0x%08x, want 0x%08x",
                            (double)k[i].x, k[i].scale, got, k[i].want);
        fl_test_checks++;
    }
    /* Out of range, not finite, a bad scale: refused, the message names the value's index. */
    float bad[] = {0.0f, 2147483648.0f, -2147483648.0f, NAN, INFINITY, -INFINITY};
    uint32_t out[6];
    for (int i = 1; i < 6; i++) {
        float two[2] = {1.0f, bad[i]};
        CHECK_EQ_INT(fl_fixed_encode(two, 2, 1, out, &err), FL_EINVAL);
        CHECK_MSG(err, "value 1 is");
    }
    CHECK_EQ_INT(fl_fixed_encode(bad, 1, 0, out, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_fixed_encode(bad, 1, NAN, out, &err), FL_EINVAL);
    CHECK_MSG(err, "scale nan");
    CHECK_EQ_INT(fl_fixed_decode_sum(out, 1, -1, bad, &err), FL_EINVAL);
    CHECK_MSG(err, "scale -1");
}

/* n * round(clip * s) < 2^(31 - margin) for s, and not for 2 s; s a power of two. */
static void test_scale(void) {
    static const struct {
        double clip;
        size_t n;
        unsigned margin;
    } c[] = {{1, 1, 0},           {1, 10, 0},   {0.1, 3, 4},   {5, 100, 8},
             {3.7, 7, 2},         {1e-3, 1, 0}, {1e-12, 2, 0}, {1e6, 1000, 0},
             {1, 255, 12},        {0.5, 3, 0},  {1e-17, 1, 0}, /* capped at 2^60 */
             {306783378.4, 7, 0}, /* s = 1 > 2^31 / (7 clip), as the clip rounds down */};
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        double s = -1, bound = ldexp(1, 31 - (int)c[i].margin), n = (double)c[i].n;
        CHECK_OK(fl_fixed_scale_for(c[i].clip, c[i].n, c[i].margin, &s, &err), &err);
        int e;
        CHECK(frexp(s, &e) == 0.5);
        CHECK(n * (double)llround(c[i].clip * s) < bound);
        CHECK(llround(c[i].clip * s) >= 1);
        if (s < 0x1p60 && n * (double)llround(c[i].clip * 2 * s) < bound)
            fl_test_fail_at(__FILE__, __LINE__, "clip %g, n %zu, margin %u: 2 * %g would fit too",
                            c[i].clip, c[i].n, c[i].margin, s);
        fl_test_checks++;
    }
    double s = 1;
    CHECK_EQ_INT(fl_fixed_scale_for(0, 3, 0, &s, &err), FL_EINVAL);
    CHECK_MSG(err, "clip 0");
    CHECK(s == 0);
    CHECK_EQ_INT(fl_fixed_scale_for(-1, 3, 0, &s, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_fixed_scale_for(INFINITY, 3, 0, &s, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_fixed_scale_for(NAN, 3, 0, &s, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_fixed_scale_for(1, 0, 0, &s, &err), FL_EINVAL);
    CHECK_MSG(err, "0 clients");
    CHECK_EQ_INT(fl_fixed_scale_for(1, 3, 31, &s, &err), FL_EINVAL);
    CHECK_MSG(err, "margin 31");
    CHECK_EQ_INT(fl_fixed_scale_for(1e300, 3, 0, &s, &err), FL_EINVAL); /* below 2^-60 */
    CHECK_MSG(err, "leaves no scale");
    CHECK_EQ_INT(fl_fixed_scale_for(1e-30, 1, 0, &s, &err), FL_EINVAL); /* 2^60 clip < 1/2 */
    CHECK_MSG(err, "leaves no scale");
    CHECK_EQ_INT(fl_fixed_scale_for(1, (size_t)1 << 31, 0, &s, &err), FL_EINVAL); /* < 1 unit */
    CHECK_MSG(err, "leaves no scale");
}

/* n clients' updates in [-clip, clip] (uniform, with coordinates at +clip for all, -clip for
 * all, alternating, 0, and tiny), encoded, summed mod 2^32, decoded: the int32 read back is
 * exactly the sum of the rounded values, so the float is within n / (2 scale) of the true sum
 * (and half a float ulp); the modular sum wrapped on many coordinates on the way. */
static void check_sum(size_t n_clients, double clip, unsigned margin, uint64_t seed) {
    enum { D = 4096 };
    float *x = malloc(n_clients * D * sizeof *x), got[D];
    uint32_t *enc = malloc(n_clients * D * sizeof *enc), acc[D] = {0};
    double s;
    fl_err err = {{0}};
    CHECK_OK(fl_fixed_scale_for(clip, n_clients, margin, &s, &err), &err);
    fl_rng r;
    fl_rng_seed(&r, seed);
    for (size_t c = 0; c < n_clients; c++) {
        float *xc = x + c * D;
        for (int i = 0; i < D; i++) xc[i] = (float)((2 * fl_rng_uniform(&r) - 1) * clip);
        xc[0] = (float)clip, xc[1] = (float)-clip, xc[2] = c % 2 ? (float)clip : (float)-clip;
        xc[3] = 0, xc[4] = (float)(clip * 1e-9), xc[5] = -(float)(clip * 1e-9);
        if ((double)xc[0] > clip) xc[0] = nextafterf(xc[0], 0); /* clip as a float, inside */
        if ((double)xc[1] < -clip) xc[1] = nextafterf(xc[1], 0);
        xc[2] = xc[2] > 0 ? xc[0] : xc[1];
        CHECK_OK(fl_fixed_encode(xc, D, s, enc + c * D, &err), &err);
    }
    int wrapped = 0, wrong = 0, worst = -1;
    double worst_err = 0, tol = (double)n_clients / (2 * s);
    for (int i = 0; i < D; i++) {
        int wrap = 0;
        for (size_t c = 0; c < n_clients; c++) {
            uint32_t before = acc[i];
            fl_fixed_accumulate(acc + i, enc + c * D + i, 1);
            wrap |= acc[i] < before; /* passed 2^32 - 1 -> 0 */
        }
        wrapped += wrap;
    }
    CHECK_OK(fl_fixed_decode_sum(acc, D, s, got, &err), &err);
    for (int i = 0; i < D; i++) {
        double sum = 0;
        long long isum = 0;
        for (size_t c = 0; c < n_clients; c++) {
            sum += (double)x[c * D + i];
            isum += llround((double)x[c * D + i] * s);
        }
        wrong += (int64_t)(int32_t)acc[i] != isum; /* exact in int32 */
        double e = fabs((double)got[i] - sum), allowed = tol + fabs(sum) * 0x1p-24;
        if (e > allowed && (worst < 0 || e - allowed > worst_err))
            worst = i, worst_err = e - allowed;
    }
    CHECK_EQ_INT(wrong, 0);
    if (worst >= 0)
        fl_test_fail_at(__FILE__, __LINE__,
                        "n %zu, clip %g, scale %g: coordinate %d off by %g more "
                        "than n / (2 scale) = %g",
                        n_clients, clip, s, worst, worst_err, tol);
    fl_test_checks++;
    if (n_clients > 1) CHECK(wrapped > D / 4);
    /* the extremes: n * clip and -n * clip come back with their sign */
    CHECK(got[0] > 0 && got[1] < 0);
    CHECK_CLOSE(got[0], n_clients * (double)x[0], 0x1p-24, tol);
    free(x), free(enc);
}

int main(void) {
    test_encode_known();
    test_scale();
    check_sum(7, 1.0, 0, 1); /* no margin: 7 round(clip s) = 0.875 * 2^31 */
    check_sum(2, 0.25, 0, 2);
    check_sum(50, 3.0, 6, 3); /* with room for noise */
    check_sum(255, 1e-2, 0, 4);
    check_sum(1, 1.0, 0, 5);
    return fl_test_summary("fixedpoint");
}
