/* dp_accountant.h - the RDP accountant of DP-SGD (DESIGN §5): Rényi DP of the Poisson-subsampled
 * Gaussian mechanism at a list of orders, composition over training phases with different
 * (q, σ, steps), conversion to (ε, δ), and a planner that finds σ for a target ε.
 * Not the mechanism itself (clipping and noise live with the optimizer), and no PRV/GDP
 * accountant. The formulas, their numerics and the CLI are in docs/privacy.md. */
#ifndef FL_DP_ACCOUNTANT_H
#define FL_DP_ACCOUNTANT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

/* Opacus' default orders: 1.1, 1.2, ..., 10.9 (step 0.1), then 12, 13, ..., 63. */
#define FL_RDP_N_DEFAULT_ORDERS 151
/* Orders must be finite, > 1 and at most this. */
#define FL_RDP_MAX_ORDER 1e6
/* The planner's tolerance: the σ it returns meets the target and is at most this much (relative)
 * above the smallest σ that does (as computed here). */
#define FL_RDP_SIGMA_RTOL 1e-9

/* How RDP becomes (ε, δ). BALLE: Balle et al. 2020 (Opacus' and TF Privacy's default),
 *   ε = rdp(α) + ln((α-1)/α) - (ln δ + ln α)/(α-1);
 * CLASSIC: Mironov 2017, Prop. 3, ε = rdp(α) + ln(1/δ)/(α-1). Either way the minimum over the
 * orders, and never below 0. */
typedef enum { FL_DP_CONVERSION_BALLE = 0, FL_DP_CONVERSION_CLASSIC = 1 } fl_dp_conversion;

/* Writes the FL_RDP_N_DEFAULT_ORDERS default orders into orders (as Opacus computes them,
 * 1 + x/10.0 and then the integers). */
void fl_rdp_default_orders(double orders[FL_RDP_N_DEFAULT_ORDERS]);

/* RDP of `steps` compositions of the Poisson-subsampled Gaussian with sample rate q ∈ [0, 1] and
 * noise multiplier sigma ≥ 0 (noise std / clip norm), at each of the n orders: rdp[k] =
 * steps · RDP_α(q, σ) for α = orders[k]. Integer orders use the binomial expansion, fractional
 * ones the series of Mironov et al. 2019; q = 1 is the Gaussian mechanism, α/(2σ²) exactly;
 * q = 0 or steps = 0 give 0; sigma = 0 (with q > 0) gives +∞. Returns FL_OK, or FL_EINVAL
 * for an argument out of range, or FL_EUNSUPPORTED if a fractional order's series did not
 * converge (err says which); rdp is then unspecified. */
fl_status fl_rdp_compute(double q, double sigma, int64_t steps, const double *orders, size_t n,
                         double *rdp, fl_err *err);

/* The smallest ε over the n orders for this δ ∈ (0, 1), with the conversion conv; *best_order
 * is the order that gives it (the first one on a tie; NaN if every rdp is +∞, when *eps is +∞).
 * best_order may be NULL. rdp values must be ≥ 0 (+∞ allowed). Returns FL_OK or FL_EINVAL. */
fl_status fl_rdp_epsilon(const double *rdp, const double *orders, size_t n, double delta,
                         fl_dp_conversion conv, double *eps, double *best_order, fl_err *err);

/* ---- the accountant: RDP summed over phases (composition) ----
 * An accountant keeps the per-step curve of the last mechanism it computed (pricing a round and
 * then spending it costs one series evaluation), so even its const calls write to it: one
 * thread at a time. */

typedef struct fl_accountant fl_accountant;

/* A new accountant that has spent nothing, over the n orders given (copied), or over the
 * default orders if orders is NULL. Free with fl_accountant_free. Returns FL_OK, FL_EINVAL (an
 * order out of range, n = 0) or FL_ENOMEM; *out is NULL on failure. */
fl_status fl_accountant_new(const double *orders, size_t n, fl_accountant **out, fl_err *err);
/* Frees acc; NULL is a no-op. */
void fl_accountant_free(fl_accountant *acc);

/* Composes one phase: `steps` steps of the subsampled Gaussian with (q, sigma), as
 * fl_rdp_compute. On failure acc is unchanged. */
fl_status fl_accountant_add(fl_accountant *acc, double q, double sigma, int64_t steps, fl_err *err);
/* Composes an RDP curve given directly (one value ≥ 0 per order of acc, in its order), e.g. one
 * read back from the outbox log. On failure acc is unchanged. */
fl_status fl_accountant_add_rdp(fl_accountant *acc, const double *rdp, fl_err *err);
/* ε spent so far for δ, as fl_rdp_epsilon over acc's orders. */
fl_status fl_accountant_epsilon(const fl_accountant *acc, double delta, fl_dp_conversion conv,
                                double *eps, double *best_order, fl_err *err);
/* The ε that acc would have spent after one more phase (q, sigma, steps), acc unchanged: what
 * a client checks against its ε_max before it accepts a round. */
fl_status fl_accountant_epsilon_with(const fl_accountant *acc, double q, double sigma,
                                     int64_t steps, double delta, fl_dp_conversion conv,
                                     double *eps, double *best_order, fl_err *err);

/* acc's orders and the RDP it has spent at each (*n of each; pointers into acc, valid until it
 * is freed). n may be NULL. */
const double *fl_accountant_orders(const fl_accountant *acc, size_t *n);
const double *fl_accountant_rdp(const fl_accountant *acc);
/* Phases and steps composed so far (fl_accountant_add_rdp counts a phase of 0 steps). */
int fl_accountant_phases(const fl_accountant *acc);
int64_t fl_accountant_steps(const fl_accountant *acc);

/* ---- the planner ---- */

/* The noise multiplier for one more phase of `steps` steps at sample rate q ∈ (0, 1] so that the
 * total ε (what prior has spent plus this phase) is at most target_eps for δ: the smallest such σ
 * up to FL_RDP_SIGMA_RTOL, found by bracketing and bisection (ε falls as σ grows). prior may be
 * NULL (nothing spent, the default orders). *eps_at (may be NULL) gets the ε at the σ returned.
 * Returns FL_OK; FL_EINVAL for arguments out of range, or when the target cannot be met: no σ
 * brings ε to the target when it is at or below the ε that prior alone converts to (the limit
 * σ → ∞; with nothing spent, a floor set by δ and the largest order), and the message gives that
 * floor; or when even
 * σ = 1e-6 meets it. */
fl_status fl_accountant_sigma_for_epsilon(const fl_accountant *prior, double q, int64_t steps,
                                          double delta, double target_eps, fl_dp_conversion conv,
                                          double *sigma, double *eps_at, fl_err *err);
/* The same with nothing spent before, over the default orders. */
fl_status fl_rdp_sigma_for_epsilon(double q, int64_t steps, double delta, double target_eps,
                                   fl_dp_conversion conv, double *sigma, fl_err *err);

/* "balle" or "classic". */
const char *fl_dp_conversion_name(fl_dp_conversion conv);

#endif
