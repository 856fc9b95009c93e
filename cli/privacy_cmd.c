/* privacy_cmd.c - `fedlung privacy epsilon|sigma|rdp`: the RDP accountant of DP-SGD from the
 * command line (what a study would spend, the noise a target needs, the curve itself). Parsing
 * and printing only; crypto/dp_accountant.c does the work. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/dp_accountant.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung privacy epsilon --sample-rate Q --noise-multiplier Z --steps T --delta D\n"
    "       fedlung privacy sigma   --target-epsilon E --sample-rate Q --steps T --delta D\n"
    "       fedlung privacy rdp     --sample-rate Q --noise-multiplier Z --steps T\n"
    "       common options: [--phase Q,Z,T]... [--orders A,B,...] [--conversion balle|classic]\n"
    "                       [--verbose]\n"
    "\n"
    "The RDP accountant of DP-SGD: T steps of the Poisson-subsampled Gaussian mechanism with\n"
    "sample rate Q and noise multiplier Z (noise std / clip norm), as Opacus counts them.\n"
    "epsilon: prints the epsilon spent for delta D alone on its first line (10 significant\n"
    "  digits); --verbose adds the best order, its RDP and the conversion.\n"
    "sigma: prints the smallest noise multiplier (to a relative 1e-9) with which T steps at Q\n"
    "  spend at most epsilon E; --verbose adds the epsilon it spends and its order.\n"
    "rdp: prints one line per order: the order and the RDP spent at it.\n"
    "\n"
    "  --phase Q,Z,T       one more phase composed with the one above (repeatable); with sigma,\n"
    "                      phases already spent, and the sigma printed is for the new phase;\n"
    "                      with epsilon and rdp, --phase alone may replace the first three\n"
    "  --orders A,B,...    RDP orders, each > 1 (default Opacus': 1.1 to 10.9 by 0.1, 12 to 63)\n"
    "  --conversion C      balle (Balle et al. 2020, the default, as Opacus) or classic\n"
    "                      (eps = rdp + ln(1/delta)/(order - 1))\n"
    "See docs/privacy.md for the formulas. Exit 0, 1 on failure, 2 on bad usage.\n";

/* The options that take one number, in privacy_opts.v[] and .has[] (getopt_long returns
 * O_NUMERIC + their index). */
enum { V_Q, V_Z, V_T, V_DELTA, V_TARGET, N_NUMERIC };
static const struct {
    const char *name;
    double lo, hi;
    const char *bounds; /* "[]", "()", ...: which of lo and hi are allowed */
} numeric[N_NUMERIC] = {
    [V_Q] = {"sample-rate", 0, 1, "[]"},
    [V_Z] = {"noise-multiplier", 0, HUGE_VAL, "[)"},
    [V_T] = {"steps", 0, 1e15, "[]"},
    [V_DELTA] = {"delta", 0, 1, "()"},
    [V_TARGET] = {"target-epsilon", 0, HUGE_VAL, "()"},
};
enum { O_PHASE = 256, O_ORDERS, O_CONV, O_VERBOSE, O_HELP, O_NUMERIC = 512 };

#define MAX_PHASES 64
#define MAX_ORDERS 1024

typedef struct {
    double v[N_NUMERIC]; /* the numeric options' values */
    int has[N_NUMERIC];  /* whether each was given */
    long long steps;     /* v[V_T] as a whole number */
    int verbose;
    fl_dp_conversion conv;
    int n_phases;
    double phase_q[MAX_PHASES], phase_z[MAX_PHASES];
    long long phase_t[MAX_PHASES];
    size_t n_orders; /* 0: the default orders */
    double orders[MAX_ORDERS];
} privacy_opts;

/* Reads a number from *p up to the next separator sep (or the end), which it skips; 0 when it
 * is a finite number, -1 if not. */
static int next_number(const char **p, char sep, double *out) {
    char *end;
    errno = 0;
    *out = strtod(*p, &end);
    if (errno || end == *p || !isfinite(*out) || (*end && *end != sep)) return -1;
    *p = *end ? end + 1 : end;
    return 0;
}

/* A step count: a whole number in [0, 1e15] (strtod, so 1e4 is accepted). */
static int as_steps(double v, long long *out) {
    if (!(v >= 0.0 && v <= 1e15) || v != floor(v)) return -1;
    *out = (long long)v;
    return 0;
}

/* One option's number, within lo and hi; bounds says which are included, as in "[]" or "(]".
 * Returns 0, or -1 after saying what is wrong. */
static int number_opt(const char *name, const char *value, double lo, double hi, const char *bounds,
                      double *out) {
    const char *p = value;
    if (next_number(&p, '\0', out) == 0 && *p == '\0' &&
        (bounds[0] == '[' ? *out >= lo : *out > lo) && (bounds[1] == ']' ? *out <= hi : *out < hi))
        return 0;
    fprintf(stderr, "fedlung privacy: --%s must be a number in %c%g, %g%c: '%s'\n", name, bounds[0],
            lo, hi, bounds[1], value);
    return -1;
}

static int parse_phase(const char *value, privacy_opts *o) {
    const char *p = value;
    double q, z, t;
    long long steps;
    if (o->n_phases == MAX_PHASES) {
        fprintf(stderr, "fedlung privacy: more than %d phases\n", MAX_PHASES);
        return -1;
    }
    if (next_number(&p, ',', &q) || next_number(&p, ',', &z) || next_number(&p, '\0', &t) || *p ||
        !(q >= 0 && q <= 1) || !(z >= 0) || as_steps(t, &steps)) {
        fprintf(stderr,
                "fedlung privacy: --phase wants Q,Z,T (0 <= Q <= 1, Z >= 0, whole T >= 0): "
                "'%s'\n",
                value);
        return -1;
    }
    o->phase_q[o->n_phases] = q;
    o->phase_z[o->n_phases] = z;
    o->phase_t[o->n_phases++] = steps;
    return 0;
}

static int parse_orders(const char *value, privacy_opts *o) {
    const char *p = value;
    o->n_orders = 0;
    while (*p) {
        double a;
        if (o->n_orders == MAX_ORDERS || next_number(&p, ',', &a) || !(a > 1) ||
            a > FL_RDP_MAX_ORDER) {
            fprintf(stderr,
                    "fedlung privacy: --orders wants at most %d numbers in (1, %g], "
                    "comma-separated: '%s'\n",
                    MAX_ORDERS, FL_RDP_MAX_ORDER, value);
            return -1;
        }
        o->orders[o->n_orders++] = a;
    }
    if (o->n_orders == 0) fprintf(stderr, "fedlung privacy: --orders is empty\n");
    return o->n_orders ? 0 : -1;
}

/* Parses the options after the subcommand. Returns 0, 1 for --help, or -1 after saying what is
 * wrong. */
static int parse(int argc, char **argv, privacy_opts *o) {
    /* the numeric options first (filled from numeric[]), then the others */
    struct option longopts[N_NUMERIC + 6] = {[N_NUMERIC] = {"phase", required_argument, 0, O_PHASE},
                                             {"orders", required_argument, 0, O_ORDERS},
                                             {"conversion", required_argument, 0, O_CONV},
                                             {"verbose", no_argument, 0, O_VERBOSE},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    for (int k = 0; k < N_NUMERIC; k++)
        longopts[k] = (struct option){numeric[k].name, required_argument, 0, O_NUMERIC + k};
    memset(o, 0, sizeof *o);
    optind = 1;
    opterr = 0;
    int c, bad = 0;
    while (!bad && (c = getopt_long(argc, argv, "+hv", longopts, NULL)) != -1) {
        if (c >= O_NUMERIC && c < O_NUMERIC + N_NUMERIC) {
            c -= O_NUMERIC;
            o->has[c] = 1;
            bad = number_opt(numeric[c].name, optarg, numeric[c].lo, numeric[c].hi,
                             numeric[c].bounds, &o->v[c]);
            if (!bad && c == V_T && (bad = as_steps(o->v[c], &o->steps)) != 0)
                fprintf(stderr, "fedlung privacy: --steps must be a whole number: '%s'\n", optarg);
        } else if (c == O_PHASE) {
            bad = parse_phase(optarg, o);
        } else if (c == O_ORDERS) {
            bad = parse_orders(optarg, o);
        } else if (c == O_CONV) {
            o->conv =
                !strcmp(optarg, "classic") ? FL_DP_CONVERSION_CLASSIC : FL_DP_CONVERSION_BALLE;
            bad = strcmp(optarg, "classic") && strcmp(optarg, "balle");
            if (bad) fprintf(stderr, "fedlung privacy: --conversion is balle or classic\n");
        } else if (c == 'v' || c == O_VERBOSE) {
            o->verbose = 1;
        } else if (c == 'h' || c == O_HELP) {
            return 1;
        } else {
            fprintf(stderr, "fedlung privacy: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (bad) return -1;
    if (optind < argc) {
        fprintf(stderr, "fedlung privacy: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* An accountant over o's orders with every --phase composed, and the phase of
 * --sample-rate/--noise-multiplier/--steps when with_main. */
static fl_status accountant(const privacy_opts *o, int with_main, fl_accountant **acc,
                            fl_err *err) {
    fl_status s = fl_accountant_new(o->n_orders ? o->orders : NULL, o->n_orders, acc, err);
    for (int k = 0; s == FL_OK && k < o->n_phases; k++)
        s = fl_accountant_add(*acc, o->phase_q[k], o->phase_z[k], o->phase_t[k], err);
    if (s == FL_OK && with_main) s = fl_accountant_add(*acc, o->v[V_Q], o->v[V_Z], o->steps, err);
    if (s != FL_OK) {
        fl_accountant_free(*acc);
        *acc = NULL;
    }
    return s;
}

/* Whether the phase of --sample-rate/--noise-multiplier/--steps is given: all three (1), or
 * none when --phase is (0); -1 after saying what is missing. */
static int main_phase(const privacy_opts *o) {
    int given = o->has[V_Q] + o->has[V_Z] + o->has[V_T];
    if (given == 3) return 1;
    if (given == 0 && o->n_phases > 0) return 0;
    fprintf(stderr, "fedlung privacy: give --sample-rate, --noise-multiplier and --steps "
                    "(or --phase Q,Z,T)\n");
    return -1;
}

/* The --verbose lines about an ε at best_order. */
static void explain(const privacy_opts *o, const fl_accountant *acc, double best_order) {
    size_t n;
    const double *orders = fl_accountant_orders(acc, &n);
    const double *rdp = fl_accountant_rdp(acc);
    double lo = orders[0], hi = orders[0], at = NAN;
    for (size_t k = 0; k < n; k++) {
        lo = fmin(lo, orders[k]);
        hi = fmax(hi, orders[k]);
        if (orders[k] == best_order && isnan(at)) at = rdp[k];
    }
    printf("best order: %.10g (of %zu orders, %.10g to %.10g)\n", best_order, n, lo, hi);
    printf("rdp at best order: %.10g\n", at);
    printf("conversion: %s, delta %.10g\n",
           o->conv == FL_DP_CONVERSION_CLASSIC ? "classic (rdp + ln(1/delta)/(order - 1))"
                                               : "balle (Balle et al. 2020)",
           o->v[V_DELTA]);
    printf("composed: %d phase%s, %lld steps\n", fl_accountant_phases(acc),
           fl_accountant_phases(acc) == 1 ? "" : "s", (long long)fl_accountant_steps(acc));
    if (n > 1 && (best_order == lo || best_order == hi))
        printf("note: the best order is the %s of the list; more orders (--orders) may give a "
               "smaller epsilon\n",
               best_order == lo ? "smallest" : "largest");
}

static int cmd_epsilon(const privacy_opts *o) {
    int with_main = main_phase(o);
    if (with_main < 0 || !o->has[V_DELTA] || o->has[V_TARGET]) return fl_cli_usage(usage);
    fl_err err = {{0}};
    fl_accountant *acc = NULL;
    double eps, best;
    fl_status s = accountant(o, with_main, &acc, &err);
    if (s == FL_OK) s = fl_accountant_epsilon(acc, o->v[V_DELTA], o->conv, &eps, &best, &err);
    if (s == FL_OK) {
        printf("%.10g\n", eps);
        if (o->verbose) explain(o, acc, best);
    }
    fl_accountant_free(acc);
    return s == FL_OK ? FL_EXIT_OK : fl_cli_fail(&err);
}

static int cmd_sigma(const privacy_opts *o) {
    if (!o->has[V_TARGET] || !o->has[V_Q] || !o->has[V_T] || !o->has[V_DELTA] || o->has[V_Z])
        return fl_cli_usage(usage);
    fl_err err = {{0}};
    fl_accountant *acc = NULL;
    double sigma, eps, best, delta = o->v[V_DELTA];
    fl_status s = accountant(o, 0, &acc, &err);
    if (s == FL_OK)
        s = fl_accountant_sigma_for_epsilon(acc, o->v[V_Q], o->steps, delta, o->v[V_TARGET],
                                            o->conv, &sigma, &eps, &err);
    if (s == FL_OK) printf("%.10g\n", sigma);
    if (s == FL_OK && o->verbose) { /* the accountant with the planned phase, to explain its ε */
        s = fl_accountant_add(acc, o->v[V_Q], sigma, o->steps, &err);
        if (s == FL_OK) s = fl_accountant_epsilon(acc, delta, o->conv, &eps, &best, &err);
        if (s == FL_OK) {
            printf("epsilon at this sigma: %.10g (target %.10g)\n", eps, o->v[V_TARGET]);
            explain(o, acc, best);
            printf("tolerance: sigma is at most %g (relative) above the smallest that meets the "
                   "target\n",
                   FL_RDP_SIGMA_RTOL);
        }
    }
    fl_accountant_free(acc);
    return s == FL_OK ? FL_EXIT_OK : fl_cli_fail(&err);
}

static int cmd_rdp(const privacy_opts *o) {
    int with_main = main_phase(o);
    if (with_main < 0 || o->has[V_TARGET] || o->has[V_DELTA]) return fl_cli_usage(usage);
    fl_err err = {{0}};
    fl_accountant *acc = NULL;
    fl_status s = accountant(o, with_main, &acc, &err);
    size_t n = 0;
    const double *orders = s == FL_OK ? fl_accountant_orders(acc, &n) : NULL;
    for (size_t k = 0; k < n; k++) printf("%.10g %.10g\n", orders[k], fl_accountant_rdp(acc)[k]);
    fl_accountant_free(acc);
    return s == FL_OK ? FL_EXIT_OK : fl_cli_fail(&err);
}

int fl_cmd_privacy(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(const privacy_opts *);
    } subcommands[] = {{"epsilon", cmd_epsilon}, {"sigma", cmd_sigma}, {"rdp", cmd_rdp}};
    privacy_opts o;
    int p = argc < 2 ? -1 : parse(argc - 1, argv + 1, &o);
    const char *sub = argc < 2 ? "" : argv[1];
    if (p == 1 || !strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    for (size_t k = 0; p == 0 && k < sizeof subcommands / sizeof subcommands[0]; k++)
        if (!strcmp(sub, subcommands[k].name)) return subcommands[k].run(&o);
    if (p == 0) fprintf(stderr, "fedlung privacy: unknown subcommand '%s'\n", sub);
    return fl_cli_usage(usage);
}
