/* dp_clip.c - adaptive clipping's arithmetic (fed/dp_clip.h): closed forms only, no state, no
 * randomness. */
#include "fed/dp_clip.h"

#include <math.h>

double fl_dp_update_multiplier(double z, double sigma_b) {
    if (!(z >= 0) || !(sigma_b >= 0) || !isfinite(z)) return NAN;
    if (z == 0) return 0;
    if (!(2 * sigma_b > z)) return NAN;
    return 1 / sqrt(1 / (z * z) - 1 / (4 * sigma_b * sigma_b));
}

double fl_dp_clip_bits_mean(double bits_sum, int m, int n) {
    double b = 0.5 + (bits_sum - 0.5 * m) / n;
    return b < 0 ? 0 : b > 1 ? 1 : b;
}

double fl_dp_adaptive_clip_next(double C, double b_mean, double gamma, double eta) {
    return C * exp(-eta * (b_mean - gamma));
}

int fl_dp_clip_reachable(double C, double C0, double gamma, double eta, long steps) {
    if (!(C > 0) || !isfinite(C) || !(C0 > 0) || steps < 0) return 0;
    double most = (double)steps * eta * (gamma > 0.5 ? gamma : 1 - gamma);
    return fabs(log(C / C0)) <= most * (1 + 1e-9) + 1e-12;
}
