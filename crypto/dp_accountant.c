/* dp_accountant.c - RDP of the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019), its
 * composition and conversion to (ε, δ), and the σ planner. All series run in long double and in
 * log space; it is not a generic RDP library (no other mechanisms). See docs/privacy.md. */
#include "dp_accountant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A fractional order's series stops once a term is below e^-36 (2.3e-16) of the partial sum, past
 * i = α and right after a positive term: from there the terms alternate in sign and shrink, so
 * the partial sum exceeds the limit by less than the first term left out - an upper bound, on
 * the side that overstates ε. A series still going after MAX_TERMS terms (q near 1/2 with a
 * very large σ) is reported, never truncated. */
#define SERIES_LOG_CUTOFF (-36.0L)
#define MAX_TERMS 4000000L
/* The planner's bracket: σ is looked for in [SIGMA_MIN, SIGMA_MAX]. */
#define SIGMA_MIN 1e-6
#define SIGMA_MAX 1e7

struct fl_accountant {
    size_t n;       /* orders */
    double *orders; /* [n] */
    double *rdp;    /* [n] RDP spent at each order */
    double *work;   /* [n] scratch for one phase's curve */
    double *curve;  /* [n + 3] the per-step RDP of the last (q, sigma) asked, then q, sigma, and
                       1 when it holds them: a round is priced, then spent, with the same
                       mechanism, and the series at fractional orders is the whole cost */
    int phases;
    int64_t steps;
};

/* ---- log-space helpers ---- */

/* ln erfc(x) without underflow. erfcl for x < 10; beyond, erfc(x) = e^{-x²}/√π · g(x) with g from
 * the continued fraction 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) evaluated from 40 levels
 * down, or for x ≥ 100 from the asymptotic series (1/x)(1 - 1/2x² + 3/4x⁴ - 15/8x⁶ + 105/16x⁸),
 * whose next term is below 3e-19: both exact to long double precision there. */
static long double log_erfc(long double x) {
    if (x < 10.0L) return logl(erfcl(x));
    const long double ln_sqrt_pi = 0.57236494292470008707171367567652935L;
    long double g;
    if (x < 100.0L) {
        long double f = x;
        for (int k = 40; k >= 1; k--) f = x + (0.5L * k) / f;
        g = 1.0L / f;
    } else {
        long double u = 1.0L / (2.0L * x * x);
        g = (1.0L - u * (1.0L - 3.0L * u * (1.0L - 5.0L * u * (1.0L - 7.0L * u)))) / x;
    }
    return -x * x - ln_sqrt_pi + logl(g);
}

/* ln(e^a - 1) for a > 0. */
static long double log_expm1(long double a) {
    return a > 40.0L ? a + log1pl(-expl(-a)) : logl(expm1l(a));
}

/* ln(1 + e^l). */
static long double log1p_exp(long double l) {
    return l > 0.0L ? l + log1pl(expl(-l)) : log1pl(expl(l));
}

/* ---- RDP of one step ---- */

/* ln A_α for integer α ≥ 2 and 0 < q < 1, where A_α = Σ_i C(α,i) q^i (1-q)^(α-i) e^{(i²-i)/2σ²}.
 * The binomial weights sum to 1, so A_α - 1 = Σ_{i≥2} C(α,i) q^i (1-q)^(α-i) (e^{(i²-i)/2σ²} - 1),
 * a sum of positive terms taken by log-sum-exp, and ln A_α = log1p(A_α - 1): no cancellation
 * even when A_α - 1 is far below the precision of 1. */
static long double log_a_int(long double q, long double sigma, long alpha) {
    const long double lq = logl(q), l1q = log1pl(-q), two_s2 = 2.0L * sigma * sigma;
    /* log C(α, i) by the ratio C(α,i+1) = C(α,i) (α-i)/(i+1); C(α,0) = 1, C(α,2) = α(α-1)/2. */
    long double log_c = logl(0.5L * (long double)alpha * (long double)(alpha - 1));
    long double m = -INFINITY, sum = 0.0L; /* Σ so far = sum · e^m */
    for (long i = 2; i <= alpha; i++) {
        long double fi = (long double)i;
        long double t =
            log_c + fi * lq + ((long double)alpha - fi) * l1q + log_expm1((fi * fi - fi) / two_s2);
        if (t > m) {
            sum = sum * expl(m - t) + 1.0L;
            m = t;
        } else {
            sum += expl(t - m);
        }
        log_c += logl((long double)(alpha - i)) - logl(fi + 1.0L);
    }
    return log1p_exp(m + logl(sum));
}

/* ln A_α for fractional α > 1 and 0 < q < 1: the series of Mironov et al. 2019 (§3.3), split at
 * z0 = σ² ln(1/q - 1) + 1/2, A_α = Σ_i C(α,i) (s0_i + s1_i) with
 *   s0_i = q^i (1-q)^(α-i) e^{(i²-i)/2σ²} · erfc((i - z0)/(√2σ))/2,
 *   s1_i = q^(α-i) (1-q)^i e^{((α-i)²-(α-i))/2σ²} · erfc((z0 - (α-i))/(√2σ))/2,
 * the generalised binomial C(α,i) changing sign at every i > α. Every term is formed in log
 * space and added, with its sign, to one long double sum kept scaled by its largest term.
 * Returns 0, or -1 if MAX_TERMS were not enough (*out unset). */
static int log_a_frac(long double q, long double sigma, long double alpha, long double *out) {
    const long double lq = logl(q), l1q = log1pl(-q), two_s2 = 2.0L * sigma * sigma;
    const long double z0 = sigma * sigma * (l1q - lq) + 0.5L;
    const long double inv = 1.0L / (sqrtl(2.0L) * sigma), ln_half = -logl(2.0L);
    long double log_c = 0.0L, sign = 1.0L; /* ln |C(α, i)| and its sign */
    long double m = -INFINITY, sum = 0.0L; /* Σ so far = sum · e^m */
    for (long i = 0; i < MAX_TERMS; i++) {
        long double fi = (long double)i, j = alpha - fi;
        long double ls0 = log_c + fi * lq + j * l1q + (fi * fi - fi) / two_s2 + ln_half +
                          log_erfc((fi - z0) * inv);
        long double ls1 =
            log_c + j * lq + fi * l1q + (j * j - j) / two_s2 + ln_half + log_erfc((z0 - j) * inv);
        long double top = fmaxl(ls0, ls1);
        if (top > m) {
            sum *= expl(m - top);
            m = top;
        }
        sum += sign * (expl(ls0 - m) + expl(ls1 - m));
        if (fi > alpha && sign > 0.0L && sum > 0.0L && top < m + logl(sum) + SERIES_LOG_CUTOFF) {
            *out = m + logl(sum);
            return 0;
        }
        if (j < 0.0L) sign = -sign;
        log_c += logl(fabsl(j)) - logl(fi + 1.0L);
    }
    return -1;
}

/* RDP of one step at order alpha (q ∈ (0, 1), σ > 0). */
static int rdp_step(double q, double sigma, double alpha, double *out) {
    long double la;
    if (alpha == floor(alpha)) {
        la = log_a_int(q, sigma, (long)alpha);
    } else if (log_a_frac(q, sigma, alpha, &la) != 0) {
        return -1;
    }
    *out = (double)(la / ((long double)alpha - 1.0L));
    return 0;
}

/* ---- arguments ---- */

static fl_status check_orders(const double *orders, size_t n, fl_err *err) {
    if (n == 0 || !orders) return fl_fail(err, FL_EINVAL, "no RDP orders given");
    for (size_t k = 0; k < n; k++)
        if (!(orders[k] > 1.0 && orders[k] <= FL_RDP_MAX_ORDER))
            return fl_fail(err, FL_EINVAL, "RDP order %g is not in (1, %g]", orders[k],
                           FL_RDP_MAX_ORDER);
    return FL_OK;
}

static fl_status check_mechanism(double q, double sigma, int64_t steps, fl_err *err) {
    if (!(q >= 0.0 && q <= 1.0))
        return fl_fail(err, FL_EINVAL, "sample rate %g is not in [0, 1]", q);
    if (!(sigma >= 0.0) || isinf(sigma))
        return fl_fail(err, FL_EINVAL, "noise multiplier %g is not a finite number >= 0", sigma);
    if (steps < 0) return fl_fail(err, FL_EINVAL, "steps %lld is negative", (long long)steps);
    return FL_OK;
}

static fl_status check_delta(double delta, fl_err *err) {
    if (!(delta > 0.0 && delta < 1.0))
        return fl_fail(err, FL_EINVAL, "delta %g is not in (0, 1)", delta);
    return FL_OK;
}

/* ---- public: RDP and conversion ---- */

void fl_rdp_default_orders(double orders[FL_RDP_N_DEFAULT_ORDERS]) {
    for (int x = 1; x < 100; x++) orders[x - 1] = 1.0 + x / 10.0;
    for (int a = 12; a < 64; a++) orders[99 + a - 12] = a;
}

fl_status fl_rdp_compute(double q, double sigma, int64_t steps, const double *orders, size_t n,
                         double *rdp, fl_err *err) {
    fl_status s = check_orders(orders, n, err);
    if (s == FL_OK) s = check_mechanism(q, sigma, steps, err);
    if (s != FL_OK) return s;
    for (size_t k = 0; k < n; k++) {
        double a = orders[k], r;
        if (q == 0.0 || steps == 0) {
            r = 0.0;
        } else if (sigma == 0.0) {
            r = INFINITY;
        } else if (q == 1.0) {
            r = a / (2.0 * sigma * sigma);
        } else if (rdp_step(q, sigma, a, &r) != 0) {
            return fl_fail(err, FL_EUNSUPPORTED,
                           "the RDP series at order %g (q %g, sigma %g) did not converge in %ld "
                           "terms",
                           a, q, sigma, MAX_TERMS);
        }
        rdp[k] = r * (double)steps;
    }
    return FL_OK;
}

/* ε at one order; rdp ≥ 0, possibly +∞. */
static double eps_at(double rdp, double alpha, double delta, fl_dp_conversion conv) {
    long double a = alpha, e;
    if (conv == FL_DP_CONVERSION_CLASSIC)
        e = rdp - logl(delta) / (a - 1.0L);
    else
        e = rdp + log1pl(-1.0L / a) - (logl(delta) + logl(a)) / (a - 1.0L);
    return (double)e;
}

fl_status fl_rdp_epsilon(const double *rdp, const double *orders, size_t n, double delta,
                         fl_dp_conversion conv, double *eps, double *best_order, fl_err *err) {
    fl_status s = check_orders(orders, n, err);
    if (s == FL_OK) s = check_delta(delta, err);
    if (s != FL_OK) return s;
    if (conv != FL_DP_CONVERSION_BALLE && conv != FL_DP_CONVERSION_CLASSIC)
        return fl_fail(err, FL_EINVAL, "unknown conversion %d", (int)conv);
    double best = INFINITY, at = NAN;
    for (size_t k = 0; k < n; k++) {
        if (!(rdp[k] >= 0.0))
            return fl_fail(err, FL_EINVAL, "RDP %g at order %g is not a number >= 0", rdp[k],
                           orders[k]);
        double e = eps_at(rdp[k], orders[k], delta, conv);
        if (e < best) {
            best = e;
            at = orders[k];
        }
    }
    *eps = best > 0.0 ? best : 0.0; /* an (ε, δ) guarantee with ε < 0 also holds with ε = 0 */
    if (best_order) *best_order = at;
    return FL_OK;
}

const char *fl_dp_conversion_name(fl_dp_conversion conv) {
    return conv == FL_DP_CONVERSION_CLASSIC ? "classic" : "balle";
}

/* ---- public: the accountant ---- */

fl_status fl_accountant_new(const double *orders, size_t n, fl_accountant **out, fl_err *err) {
    *out = NULL;
    double defaults[FL_RDP_N_DEFAULT_ORDERS];
    if (!orders) {
        fl_rdp_default_orders(defaults);
        orders = defaults;
        n = FL_RDP_N_DEFAULT_ORDERS;
    }
    fl_status s = check_orders(orders, n, err);
    if (s != FL_OK) return s;
    fl_accountant *acc = calloc(1, sizeof *acc);
    double *slab = calloc(4 * n + 3, sizeof *slab); /* orders | rdp | work | curve, key */
    if (!acc || !slab) {
        free(acc);
        free(slab);
        return fl_fail(err, FL_ENOMEM, "out of memory for an accountant of %zu orders", n);
    }
    acc->n = n;
    acc->orders = slab;
    acc->rdp = slab + n;
    acc->work = slab + 2 * n;
    acc->curve = slab + 3 * n;
    memcpy(acc->orders, orders, n * sizeof *orders);
    *out = acc;
    return FL_OK;
}

void fl_accountant_free(fl_accountant *acc) {
    if (!acc) return;
    free(acc->orders);
    free(acc);
}

/* The RDP of `steps` steps of (q, sigma) at every order into out, from acc's kept per-step curve
 * when it is of the same (q, sigma) (exactly fl_rdp_compute's values: r * steps either way). */
static fl_status phase_curve(const fl_accountant *acc, double q, double sigma, int64_t steps,
                             double *out, fl_err *err) {
    double *key = acc->curve + acc->n;
    fl_status s = check_mechanism(q, sigma, steps, err);
    if (s != FL_OK) return s;
    if (!(key[2] == 1.0 && key[0] == q && key[1] == sigma)) {
        key[2] = 0.0;
        if ((s = fl_rdp_compute(q, sigma, 1, acc->orders, acc->n, acc->curve, err)) != FL_OK)
            return s;
        key[0] = q;
        key[1] = sigma;
        key[2] = 1.0;
    }
    for (size_t k = 0; k < acc->n; k++) out[k] = steps == 0 ? 0.0 : acc->curve[k] * (double)steps;
    return FL_OK;
}

fl_status fl_accountant_add(fl_accountant *acc, double q, double sigma, int64_t steps,
                            fl_err *err) {
    fl_status s = phase_curve(acc, q, sigma, steps, acc->work, err);
    if (s != FL_OK) return s;
    for (size_t k = 0; k < acc->n; k++) acc->rdp[k] += acc->work[k];
    acc->phases++;
    acc->steps += steps;
    return FL_OK;
}

fl_status fl_accountant_add_rdp(fl_accountant *acc, const double *rdp, fl_err *err) {
    for (size_t k = 0; k < acc->n; k++)
        if (!(rdp[k] >= 0.0))
            return fl_fail(err, FL_EINVAL, "RDP %g at order %g is not a number >= 0", rdp[k],
                           acc->orders[k]);
    for (size_t k = 0; k < acc->n; k++) acc->rdp[k] += rdp[k];
    acc->phases++;
    return FL_OK;
}

fl_status fl_accountant_epsilon(const fl_accountant *acc, double delta, fl_dp_conversion conv,
                                double *eps, double *best_order, fl_err *err) {
    return fl_rdp_epsilon(acc->rdp, acc->orders, acc->n, delta, conv, eps, best_order, err);
}

/* ε of acc plus one phase, the phase's curve written into work (acc->n values). */
static fl_status epsilon_with(const fl_accountant *acc, double *work, double q, double sigma,
                              int64_t steps, double delta, fl_dp_conversion conv, double *eps,
                              double *best_order, fl_err *err) {
    fl_status s = phase_curve(acc, q, sigma, steps, work, err);
    if (s != FL_OK) return s;
    for (size_t k = 0; k < acc->n; k++) work[k] += acc->rdp[k];
    return fl_rdp_epsilon(work, acc->orders, acc->n, delta, conv, eps, best_order, err);
}

fl_status fl_accountant_epsilon_with(const fl_accountant *acc, double q, double sigma,
                                     int64_t steps, double delta, fl_dp_conversion conv,
                                     double *eps, double *best_order, fl_err *err) {
    double *work = malloc(acc->n * sizeof *work);
    if (!work) return fl_fail(err, FL_ENOMEM, "out of memory for %zu orders", acc->n);
    fl_status s = epsilon_with(acc, work, q, sigma, steps, delta, conv, eps, best_order, err);
    free(work);
    return s;
}

const double *fl_accountant_orders(const fl_accountant *acc, size_t *n) {
    if (n) *n = acc->n;
    return acc->orders;
}

const double *fl_accountant_rdp(const fl_accountant *acc) {
    return acc->rdp;
}

int fl_accountant_phases(const fl_accountant *acc) {
    return acc->phases;
}

int64_t fl_accountant_steps(const fl_accountant *acc) {
    return acc->steps;
}

/* ---- public: the planner ---- */

/* Bisection on [lo, hi] with ε(lo) > target ≥ ε(hi) until hi - lo ≤ FL_RDP_SIGMA_RTOL · hi.
 * ε(σ) is non-increasing: at every order the subsampled Gaussian's RDP falls as σ grows, and so
 * does the minimum over the orders of a conversion that is increasing in the RDP. */
static fl_status plan(const fl_accountant *acc, double *work, double q, int64_t steps, double delta,
                      double target, fl_dp_conversion conv, double *sigma, double *eps_at_sigma,
                      fl_err *err) {
    double floor_eps, e_hi, e;
    fl_status s = fl_rdp_epsilon(acc->rdp, acc->orders, acc->n, delta, conv, &floor_eps, NULL, err);
    if (s != FL_OK) return s;
    if (target <= floor_eps) {
        double largest = acc->orders[0];
        for (size_t k = 1; k < acc->n; k++) largest = fmax(largest, acc->orders[k]);
        return fl_fail(err, FL_EINVAL,
                       "no noise multiplier reaches epsilon %g: with delta %g and these orders "
                       "(largest %g) epsilon stays at %.6g or above however large sigma is",
                       target, delta, largest, floor_eps);
    }
    double lo = 0.0, hi = 1.0;
    for (;;) { /* grow hi until it meets the target; lo stays one that does not (or 0) */
        if ((s = epsilon_with(acc, work, q, hi, steps, delta, conv, &e_hi, NULL, err)) != FL_OK)
            return s;
        if (e_hi <= target) break;
        if (hi >= SIGMA_MAX)
            return fl_fail(err, FL_EINVAL, "even sigma %g gives epsilon %g > %g", hi, e_hi, target);
        lo = hi;
        hi *= 2.0;
    }
    while (lo == 0.0) { /* shrink lo until it misses the target */
        double t = hi / 2.0;
        if (t < SIGMA_MIN)
            return fl_fail(err, FL_EINVAL, "every sigma >= %g gives epsilon <= %g: nothing to plan",
                           SIGMA_MIN, target);
        if ((s = epsilon_with(acc, work, q, t, steps, delta, conv, &e, NULL, err)) != FL_OK)
            return s;
        if (e > target) {
            lo = t;
        } else {
            hi = t;
            e_hi = e;
        }
    }
    while (hi - lo > FL_RDP_SIGMA_RTOL * hi) {
        double mid = 0.5 * (lo + hi);
        if ((s = epsilon_with(acc, work, q, mid, steps, delta, conv, &e, NULL, err)) != FL_OK)
            return s;
        if (e <= target) {
            hi = mid;
            e_hi = e;
        } else {
            lo = mid;
        }
    }
    *sigma = hi;
    if (eps_at_sigma) *eps_at_sigma = e_hi;
    return FL_OK;
}

fl_status fl_accountant_sigma_for_epsilon(const fl_accountant *prior, double q, int64_t steps,
                                          double delta, double target_eps, fl_dp_conversion conv,
                                          double *sigma, double *eps_at, fl_err *err) {
    if (!(q > 0.0 && q <= 1.0))
        return fl_fail(err, FL_EINVAL, "sample rate %g is not in (0, 1]", q);
    if (steps < 1) return fl_fail(err, FL_EINVAL, "steps %lld is not >= 1", (long long)steps);
    if (!(target_eps > 0.0) || isinf(target_eps))
        return fl_fail(err, FL_EINVAL, "target epsilon %g is not a finite number > 0", target_eps);
    fl_status s = check_delta(delta, err);
    if (s != FL_OK) return s;
    fl_accountant *fresh = NULL;
    if (!prior) {
        if ((s = fl_accountant_new(NULL, 0, &fresh, err)) != FL_OK) return s;
        prior = fresh;
    }
    double *work = malloc(prior->n * sizeof *work);
    if (!work) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for %zu orders", prior->n);
        goto done;
    }
    s = plan(prior, work, q, steps, delta, target_eps, conv, sigma, eps_at, err);
done:
    free(work);
    fl_accountant_free(fresh);
    return s;
}

fl_status fl_rdp_sigma_for_epsilon(double q, int64_t steps, double delta, double target_eps,
                                   fl_dp_conversion conv, double *sigma, fl_err *err) {
    return fl_accountant_sigma_for_epsilon(NULL, q, steps, delta, target_eps, conv, sigma, NULL,
                                           err);
}
