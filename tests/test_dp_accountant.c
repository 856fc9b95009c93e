/* test_dp_accountant.c - the RDP accountant (crypto/dp_accountant.h): every case of the Opacus
 * reference vectors (both conversions, the best order, the per-order RDP), q = 1 exactly,
 * composition as a sum, monotonicity, continuity across integer orders and towards q = 1, the
 * small-q limit, the planner's round trip and refusals, and argument checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../crypto/dp_accountant.h"
#include "harness.h"

/* Copied from shared/reference/dp-vectors.json (Opacus' RDP accountant, default orders), which
 * a clean clone may not have: q, sigma, steps, delta, then ε and the best order with the
 * conversion of Balle et al. 2020 ("opacus_rdp_*"), then with the classic one. */
static const struct {
    double q, sigma;
    int64_t steps;
    double delta, eps, order, classic_eps, classic_order;
} cases[] = {
    {0.004, 1.1, 15000, 1e-05, 2.502870926647115, 8.4, 2.9050453035117187, 9.1},
    {0.01, 4.0, 10000, 1e-05, 1.0354900660362476, 17, 1.2585747412527164, 20},
    {0.04, 1.5, 2250, 1e-05, 7.3291111714386545, 3.9, 8.073848277153212, 4.1},
    {0.01, 1.0, 1000, 1e-05, 2.1013652716430564, 7.8, 2.537982880184644, 7.9},
    {1.0, 1.0, 10, 1e-05, 19.05359753163139, 2.5, 20.175283643313485, 2.5},
    {1.0, 5.0, 100, 1e-05, 10.725509696418232, 3.3, 11.59705227707093, 3.4},
    {1.0, 10.0, 1000, 1e-06, 20.551991629803823, 2.6, 21.626770916449573, 2.7},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* The same file's "rdp_per_order_q0.01_sigma2.5_T50". */
static const double per_order[] = {1.5, 2.5, 5, 50, 100};
static const double per_order_rdp[] = {0.0006500708974468719, 0.0010854180568268625,
                                       0.0021807565623077614, 0.023846037538705817,
                                       167.41630754841827};

#define REF_RTOL 1e-6

static double orders[FL_RDP_N_DEFAULT_ORDERS];
static double max_rel; /* the largest relative error against the reference file */

static double rel(double a, double b) {
    return fabs(a - b) / fabs(b);
}

/* a against the reference b at REF_RTOL, noted in max_rel. */
static void check_ref(const char *what, int k, double a, double b) {
    double r = rel(a, b);
    if (r > max_rel) max_rel = r;
    fl_test_checks++;
    if (!(r <= REF_RTOL))
        fl_test_fail_at(__FILE__, __LINE__, "%s of case %d: %.17g vs reference %.17g (rel %.3g)",
                        what, k, a, b, r);
}

static void test_default_orders(void) {
    CHECK_EQ_INT(FL_RDP_N_DEFAULT_ORDERS, 151);
    CHECK(orders[0] == 1.1 && orders[1] == 1.2 && orders[98] == 10.9);
    CHECK(orders[9] == 2.0 && orders[99] == 12.0 && orders[150] == 63.0);
}

static void test_reference_cases(void) {
    double rdp[FL_RDP_N_DEFAULT_ORDERS];
    fl_err err = {{0}};
    for (size_t k = 0; k < N_CASES; k++) {
        double eps, at;
        CHECK_OK(fl_rdp_compute(cases[k].q, cases[k].sigma, cases[k].steps, orders,
                                FL_RDP_N_DEFAULT_ORDERS, rdp, &err),
                 &err);
        CHECK_OK(fl_rdp_epsilon(rdp, orders, FL_RDP_N_DEFAULT_ORDERS, cases[k].delta,
                                FL_DP_CONVERSION_BALLE, &eps, &at, &err),
                 &err);
        check_ref("balle epsilon", (int)k, eps, cases[k].eps);
        CHECK_CLOSE(at, cases[k].order, 1e-12, 0);
        CHECK_OK(fl_rdp_epsilon(rdp, orders, FL_RDP_N_DEFAULT_ORDERS, cases[k].delta,
                                FL_DP_CONVERSION_CLASSIC, &eps, &at, &err),
                 &err);
        check_ref("classic epsilon", (int)k, eps, cases[k].classic_eps);
        CHECK_CLOSE(at, cases[k].classic_order, 1e-12, 0);
        /* the accountant with one phase says the same */
        fl_accountant *acc = NULL;
        double eps2;
        CHECK_OK(fl_accountant_new(NULL, 0, &acc, &err), &err);
        CHECK_OK(fl_accountant_add(acc, cases[k].q, cases[k].sigma, cases[k].steps, &err), &err);
        CHECK_OK(
            fl_accountant_epsilon(acc, cases[k].delta, FL_DP_CONVERSION_BALLE, &eps2, &at, &err),
            &err);
        check_ref("accountant epsilon", (int)k, eps2, cases[k].eps);
        fl_accountant_free(acc);
    }
}

static void test_per_order(void) {
    double rdp[5];
    fl_err err = {{0}};
    CHECK_OK(fl_rdp_compute(0.01, 2.5, 50, per_order, 5, rdp, &err), &err);
    for (int k = 0; k < 5; k++) check_ref("per-order rdp", k, rdp[k], per_order_rdp[k]);
}

/* Both conversions are what docs/privacy.md writes, at one order. */
static void test_conversions(void) {
    double a = 4.5, r = 0.75, delta = 1e-5, eps, at;
    fl_err err = {{0}};
    CHECK_OK(fl_rdp_epsilon(&r, &a, 1, delta, FL_DP_CONVERSION_CLASSIC, &eps, &at, &err), &err);
    CHECK_CLOSE(eps, r + log(1 / delta) / (a - 1), 1e-15, 0);
    CHECK(at == a);
    CHECK_OK(fl_rdp_epsilon(&r, &a, 1, delta, FL_DP_CONVERSION_BALLE, &eps, NULL, &err), &err);
    CHECK_CLOSE(eps, r - (log(delta) + log(a)) / (a - 1) + log((a - 1) / a), 1e-15, 0);
    /* Balle is never looser than classic (ln((α-1)/α) - ln(α)/(α-1) < 0) */
    double eps_c;
    CHECK_OK(fl_rdp_epsilon(&r, &a, 1, delta, FL_DP_CONVERSION_CLASSIC, &eps_c, NULL, &err), &err);
    CHECK(eps < eps_c);
    /* a negative bound becomes 0; ties go to the first order */
    double big[2] = {1000, 1000}, zero[2] = {0, 0};
    CHECK_OK(fl_rdp_epsilon(zero, big, 2, 0.5, FL_DP_CONVERSION_BALLE, &eps, &at, &err), &err);
    CHECK(eps == 0.0);
    double two[2] = {3, 3};
    zero[1] = 0;
    CHECK_OK(fl_rdp_epsilon(zero, two, 2, 1e-5, FL_DP_CONVERSION_BALLE, &eps, &at, &err), &err);
    CHECK(at == 3);
    /* every order infinite: ε = ∞, no order */
    double inf[2] = {INFINITY, INFINITY};
    CHECK_OK(fl_rdp_epsilon(inf, two, 2, 1e-5, FL_DP_CONVERSION_BALLE, &eps, &at, &err), &err);
    CHECK(isinf(eps) && isnan(at));
    CHECK(!strcmp(fl_dp_conversion_name(FL_DP_CONVERSION_BALLE), "balle"));
    CHECK(!strcmp(fl_dp_conversion_name(FL_DP_CONVERSION_CLASSIC), "classic"));
}

/* q = 1: no subsampling, the Gaussian mechanism's α/(2σ²) per step, to the last bit. */
static void test_q1_exact(void) {
    double extra[] = {1.01, 2.0, 7.25, 100.5, 1000};
    double rdp[FL_RDP_N_DEFAULT_ORDERS];
    fl_err err = {{0}};
    CHECK_OK(fl_rdp_compute(1.0, 1.3, 7, orders, FL_RDP_N_DEFAULT_ORDERS, rdp, &err), &err);
    int exact = 1;
    for (int k = 0; k < FL_RDP_N_DEFAULT_ORDERS; k++)
        exact &= rdp[k] == orders[k] / (2 * 1.3 * 1.3) * 7;
    CHECK(exact);
    CHECK_OK(fl_rdp_compute(1.0, 0.5, 3, extra, 5, rdp, &err), &err);
    for (int k = 0; k < 5; k++) CHECK(rdp[k] == extra[k] / (2 * 0.5 * 0.5) * 3);
    /* and q just below 1 (the series) approaches it */
    double small[] = {1.5, 2, 2.5, 3};
    CHECK_OK(fl_rdp_compute(1 - 1e-7, 1.0, 1, small, 4, rdp, &err), &err);
    for (int k = 0; k < 4; k++) CHECK_CLOSE(rdp[k], small[k] / 2, 1e-5, 0);
}

/* The edges: q = 0, steps = 0, σ = 0. */
static void test_edges(void) {
    double a[] = {1.5, 2, 32}, rdp[3], eps, at;
    fl_err err = {{0}};
    CHECK_OK(fl_rdp_compute(0.0, 1.0, 100, a, 3, rdp, &err), &err);
    CHECK(rdp[0] == 0 && rdp[1] == 0 && rdp[2] == 0);
    CHECK_OK(fl_rdp_compute(0.3, 1.0, 0, a, 3, rdp, &err), &err);
    CHECK(rdp[0] == 0 && rdp[1] == 0 && rdp[2] == 0);
    CHECK_OK(fl_rdp_compute(0.3, 0.0, 5, a, 3, rdp, &err), &err);
    CHECK(isinf(rdp[0]) && isinf(rdp[1]) && isinf(rdp[2]));
    CHECK_OK(fl_rdp_epsilon(rdp, a, 3, 1e-5, FL_DP_CONVERSION_BALLE, &eps, &at, &err), &err);
    CHECK(isinf(eps) && isnan(at));
}

/* Fractional orders (the series) meet integer ones (the binomial sum) on both sides. */
static void test_integer_fraction_continuity(void) {
    fl_err err = {{0}};
    static const double qs[] = {0.001, 0.01, 0.3, 0.7}, sigmas[] = {0.8, 1.0, 2.5, 6.0};
    for (int c = 0; c < 4; c++)
        for (int n = 2; n <= 40; n += 19) {
            double a[3] = {n - 1e-7, n, n + 1e-7}, rdp[3];
            CHECK_OK(fl_rdp_compute(qs[c], sigmas[c], 1, a, 3, rdp, &err), &err);
            CHECK_CLOSE(rdp[0], rdp[1], 1e-6, 0);
            CHECK_CLOSE(rdp[2], rdp[1], 1e-6, 0);
            CHECK(rdp[0] <= rdp[1] * (1 + 1e-12) && rdp[1] <= rdp[2] * (1 + 1e-12));
        }
}

/* Small q: RDP_α ≈ α q² (e^{1/σ²} - 1) / 2 (the second-order term of the expansion), while
 * q^i e^{(i²-i)/2σ²} stays small for i ≤ α (orders up to 10.9 here; at 23 the i = α term is
 * already e^-11.5·23 · e^253 and RDP is about 4.6, correctly). */
static void test_small_q(void) {
    double rdp[FL_RDP_N_DEFAULT_ORDERS];
    fl_err err = {{0}};
    double q = 1e-5, sigma = 1.0;
    CHECK_OK(fl_rdp_compute(q, sigma, 1, orders, FL_RDP_N_DEFAULT_ORDERS, rdp, &err), &err);
    for (int k = 0; k < 99; k += 7)
        CHECK_CLOSE(rdp[k], orders[k] * q * q * expm1(1 / (sigma * sigma)) / 2, 1e-3, 0);
}

/* RDP grows with the order, with q and with the steps and falls with σ; so does ε. */
static void test_monotone(void) {
    double rdp[FL_RDP_N_DEFAULT_ORDERS];
    fl_err err = {{0}};
    CHECK_OK(fl_rdp_compute(0.02, 1.2, 1, orders, FL_RDP_N_DEFAULT_ORDERS, rdp, &err), &err);
    int up = 1;
    for (int k = 1; k < FL_RDP_N_DEFAULT_ORDERS; k++) up &= rdp[k] >= rdp[k - 1];
    CHECK(up);
    double prev = INFINITY, eps;
    for (double sigma = 0.5; sigma < 20; sigma *= 1.25) {
        fl_accountant *acc = NULL;
        CHECK_OK(fl_accountant_new(NULL, 0, &acc, &err), &err);
        CHECK_OK(fl_accountant_epsilon_with(acc, 0.02, sigma, 1000, 1e-5, FL_DP_CONVERSION_BALLE,
                                            &eps, NULL, &err),
                 &err);
        if (!(eps < prev))
            fl_test_fail_at(__FILE__, __LINE__, "epsilon %g at sigma %g is not below %g", eps,
                            sigma, prev);
        prev = eps;
        fl_accountant_free(acc);
    }
    double last = 0;
    for (double q = 0.001; q < 1; q *= 2) {
        CHECK_OK(fl_rdp_compute(q, 1.0, 10, orders, FL_RDP_N_DEFAULT_ORDERS, rdp, &err), &err);
        CHECK_OK(fl_rdp_epsilon(rdp, orders, FL_RDP_N_DEFAULT_ORDERS, 1e-5, FL_DP_CONVERSION_BALLE,
                                &eps, NULL, &err),
                 &err);
        CHECK(eps > last);
        last = eps;
    }
    last = 0;
    for (int64_t t = 1; t < 1000000; t *= 10) {
        CHECK_OK(fl_rdp_compute(0.01, 1.0, t, orders, FL_RDP_N_DEFAULT_ORDERS, rdp, &err), &err);
        CHECK_OK(fl_rdp_epsilon(rdp, orders, FL_RDP_N_DEFAULT_ORDERS, 1e-5, FL_DP_CONVERSION_BALLE,
                                &eps, NULL, &err),
                 &err);
        CHECK(eps > last);
        last = eps;
    }
}

/* Composition is the sum of the phases' curves. */
static void test_composition(void) {
    const size_t n = FL_RDP_N_DEFAULT_ORDERS;
    double r1[FL_RDP_N_DEFAULT_ORDERS], r2[FL_RDP_N_DEFAULT_ORDERS];
    fl_err err = {{0}};
    fl_accountant *acc = NULL, *one = NULL;
    CHECK_OK(fl_accountant_new(NULL, 0, &acc, &err), &err);
    CHECK_OK(fl_accountant_new(orders, n, &one, &err), &err);
    CHECK_OK(fl_rdp_compute(0.01, 1.0, 300, orders, n, r1, &err), &err);
    CHECK_OK(fl_rdp_compute(0.05, 2.0, 700, orders, n, r2, &err), &err);
    /* ε that a phase would add, asked before adding it */
    double before, after, at_before, at_after;
    CHECK_OK(fl_accountant_add(acc, 0.01, 1.0, 300, &err), &err);
    CHECK_OK(fl_accountant_epsilon_with(acc, 0.05, 2.0, 700, 1e-5, FL_DP_CONVERSION_BALLE, &before,
                                        &at_before, &err),
             &err);
    CHECK_CLOSE(fl_accountant_rdp(acc)[0], r1[0], 1e-15, 0); /* unchanged by the question */
    CHECK_OK(fl_accountant_add(acc, 0.05, 2.0, 700, &err), &err);
    CHECK_OK(fl_accountant_epsilon(acc, 1e-5, FL_DP_CONVERSION_BALLE, &after, &at_after, &err),
             &err);
    CHECK(before == after && at_before == at_after);
    size_t n_acc;
    const double *o = fl_accountant_orders(acc, &n_acc), *sum = fl_accountant_rdp(acc);
    CHECK_EQ_INT(n_acc, n);
    int same = 1;
    for (size_t k = 0; k < n; k++) same &= o[k] == orders[k] && sum[k] == r1[k] + r2[k];
    CHECK(same);
    CHECK_EQ_INT(fl_accountant_phases(acc), 2);
    CHECK_EQ_INT(fl_accountant_steps(acc), 1000);
    /* steps split over two phases with the same (q, σ) = one phase with all of them */
    CHECK_OK(fl_accountant_add(one, 0.01, 1.0, 100, &err), &err);
    CHECK_OK(fl_accountant_add(one, 0.01, 1.0, 200, &err), &err);
    for (size_t k = 0; k < n; k++) CHECK_CLOSE(fl_accountant_rdp(one)[k], r1[k], 1e-14, 0);
    /* a curve given directly composes the same way */
    CHECK_OK(fl_accountant_add_rdp(one, r2, &err), &err);
    for (size_t k = 0; k < n; k++) CHECK_CLOSE(fl_accountant_rdp(one)[k], sum[k], 1e-14, 0);
    CHECK_EQ_INT(fl_accountant_phases(one), 3);
    CHECK_EQ_INT(fl_accountant_steps(one), 300);
    /* a bad phase leaves the accountant as it was */
    r2[3] = -1;
    CHECK(fl_accountant_add_rdp(one, r2, &err) == FL_EINVAL);
    CHECK(fl_accountant_add(one, 2.0, 1.0, 5, &err) == FL_EINVAL);
    CHECK_EQ_INT(fl_accountant_phases(one), 3);
    CHECK_CLOSE(fl_accountant_rdp(one)[3], sum[3], 1e-14, 0);
    fl_accountant_free(acc);
    fl_accountant_free(one);
    fl_accountant_free(NULL);
}

/* The planner finds each case's σ again from its ε; the σ it returns meets the target and a
 * σ smaller by twice the tolerance does not. */
static void test_planner(void) {
    fl_err err = {{0}};
    for (size_t k = 0; k < N_CASES; k++) {
        double sigma, eps, at;
        CHECK_OK(fl_rdp_sigma_for_epsilon(cases[k].q, cases[k].steps, cases[k].delta, cases[k].eps,
                                          FL_DP_CONVERSION_BALLE, &sigma, &err),
                 &err);
        CHECK_CLOSE(sigma, cases[k].sigma, 1e-6, 0);
        fl_accountant *acc = NULL;
        CHECK_OK(fl_accountant_new(NULL, 0, &acc, &err), &err);
        CHECK_OK(fl_accountant_epsilon_with(acc, cases[k].q, sigma, cases[k].steps, cases[k].delta,
                                            FL_DP_CONVERSION_BALLE, &eps, &at, &err),
                 &err);
        CHECK(eps <= cases[k].eps);
        CHECK_OK(fl_accountant_epsilon_with(acc, cases[k].q, sigma * (1 - 2 * FL_RDP_SIGMA_RTOL),
                                            cases[k].steps, cases[k].delta, FL_DP_CONVERSION_BALLE,
                                            &eps, &at, &err),
                 &err);
        CHECK(eps > cases[k].eps);
        fl_accountant_free(acc);
    }
    /* with phases already spent: σ for the next one so that the total stays at the target */
    fl_accountant *prior = NULL;
    double sigma, eps_at, eps;
    CHECK_OK(fl_accountant_new(NULL, 0, &prior, &err), &err);
    CHECK_OK(fl_accountant_add(prior, 0.02, 1.5, 500, &err), &err);
    CHECK_OK(fl_accountant_sigma_for_epsilon(prior, 0.01, 2000, 1e-5, 3.0, FL_DP_CONVERSION_CLASSIC,
                                             &sigma, &eps_at, &err),
             &err);
    CHECK_OK(fl_accountant_epsilon_with(prior, 0.01, sigma, 2000, 1e-5, FL_DP_CONVERSION_CLASSIC,
                                        &eps, NULL, &err),
             &err);
    CHECK(eps == eps_at && eps <= 3.0 && eps > 3.0 - 1e-6);
    /* a target under what prior alone converts to cannot be met, and the message says so */
    double spent;
    CHECK_OK(fl_accountant_epsilon(prior, 1e-5, FL_DP_CONVERSION_BALLE, &spent, NULL, &err), &err);
    CHECK(fl_accountant_sigma_for_epsilon(prior, 0.01, 10, 1e-5, spent, FL_DP_CONVERSION_BALLE,
                                          &sigma, NULL, &err) == FL_EINVAL);
    CHECK_MSG(err, "however large sigma is");
    fl_accountant_free(prior);
    /* nothing spent: the floor of the orders (about 0.103 for δ = 1e-5 and orders up to 63) */
    CHECK(fl_rdp_sigma_for_epsilon(0.01, 100, 1e-5, 0.05, FL_DP_CONVERSION_BALLE, &sigma, &err) ==
          FL_EINVAL);
    CHECK_MSG(err, "largest 63");
    CHECK_OK(fl_rdp_sigma_for_epsilon(0.01, 100, 1e-5, 0.2, FL_DP_CONVERSION_BALLE, &sigma, &err),
             &err);
    CHECK(sigma > 1);
    /* a target so loose that any σ ≥ 1e-6 meets it */
    CHECK(fl_rdp_sigma_for_epsilon(1e-9, 1, 0.5, 1e30, FL_DP_CONVERSION_BALLE, &sigma, &err) ==
          FL_EINVAL);
    CHECK_MSG(err, "nothing to plan");
    CHECK(fl_rdp_sigma_for_epsilon(0, 100, 1e-5, 1, FL_DP_CONVERSION_BALLE, &sigma, &err) ==
          FL_EINVAL);
    CHECK(fl_rdp_sigma_for_epsilon(0.1, 0, 1e-5, 1, FL_DP_CONVERSION_BALLE, &sigma, &err) ==
          FL_EINVAL);
    CHECK(fl_rdp_sigma_for_epsilon(0.1, 10, 1e-5, -1, FL_DP_CONVERSION_BALLE, &sigma, &err) ==
          FL_EINVAL);
}

static void test_arguments(void) {
    double a[] = {2, 3}, rdp[2] = {0, 0}, eps;
    fl_err err = {{0}};
    fl_accountant *acc = NULL;
    CHECK(fl_rdp_compute(1.5, 1, 1, a, 2, rdp, &err) == FL_EINVAL);
    CHECK_MSG(err, "sample rate 1.5");
    CHECK(fl_rdp_compute(NAN, 1, 1, a, 2, rdp, &err) == FL_EINVAL);
    CHECK(fl_rdp_compute(0.1, -1, 1, a, 2, rdp, &err) == FL_EINVAL);
    CHECK_MSG(err, "noise multiplier -1");
    CHECK(fl_rdp_compute(0.1, INFINITY, 1, a, 2, rdp, &err) == FL_EINVAL);
    CHECK(fl_rdp_compute(0.1, 1, -1, a, 2, rdp, &err) == FL_EINVAL);
    CHECK(fl_rdp_compute(0.1, 1, 1, a, 0, rdp, &err) == FL_EINVAL);
    double bad[] = {2, 1};
    CHECK(fl_rdp_compute(0.1, 1, 1, bad, 2, rdp, &err) == FL_EINVAL);
    CHECK_MSG(err, "order 1 ");
    bad[1] = NAN;
    CHECK(fl_rdp_compute(0.1, 1, 1, bad, 2, rdp, &err) == FL_EINVAL);
    bad[1] = 2e6;
    CHECK(fl_accountant_new(bad, 2, &acc, &err) == FL_EINVAL && acc == NULL);
    CHECK(fl_rdp_epsilon(rdp, a, 2, 0, FL_DP_CONVERSION_BALLE, &eps, NULL, &err) == FL_EINVAL);
    CHECK_MSG(err, "delta 0");
    CHECK(fl_rdp_epsilon(rdp, a, 2, 1, FL_DP_CONVERSION_BALLE, &eps, NULL, &err) == FL_EINVAL);
    CHECK(fl_rdp_epsilon(rdp, a, 2, 1e-5, (fl_dp_conversion)7, &eps, NULL, &err) == FL_EINVAL);
    rdp[1] = -0.5;
    CHECK(fl_rdp_epsilon(rdp, a, 2, 1e-5, FL_DP_CONVERSION_BALLE, &eps, NULL, &err) == FL_EINVAL);
    CHECK_MSG(err, "RDP -0.5 at order 3");
}

int main(void) {
    fl_rdp_default_orders(orders);
    test_default_orders();
    test_reference_cases();
    test_per_order();
    test_conversions();
    test_q1_exact();
    test_edges();
    test_integer_fraction_continuity();
    test_small_q();
    test_monotone();
    test_composition();
    test_planner();
    test_arguments();
    printf("dp-vectors.json: largest relative error %.3g (tolerance %g) over %zu epsilons and %zu "
           "per-order values\n",
           max_rel, REF_RTOL, 3 * N_CASES, sizeof per_order / sizeof per_order[0]);
    return fl_test_summary("test_dp_accountant");
}
