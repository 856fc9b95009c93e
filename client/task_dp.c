/* task_dp.c - DP-FedAvg's clipping and noise at a site, and its adaptive-clipping bit
 * (client/task_dp.h). Not the decision to send (client/task_privacy.c), the noise source
 * (client/site_dp.c) nor the clip norm's update (fed/dp_clip.c). */
#include "client/task_dp.h"

#include <math.h>

#include "client/task_secagg.h"

#define NOISE_BLOCK 1024 /* noise drawn per call of the source, on the stack */

fl_status fl_dp_fedavg_privatize(float *delta, size_t n, double C, double std,
                                 const fl_dp_source *src, double *norm, fl_err *err) {
    if (!(C > 0) || !(std >= 0) || !src || !src->noise)
        return fl_fail(err, FL_EINVAL,
                       "DP-FedAvg needs a clip norm > 0 (%g), a noise std >= 0 (%g) and a noise "
                       "source",
                       C, std);
    double before = fl_sa_clip(delta, n, C);
    if (norm) *norm = before;
    if (!isfinite(before)) /* not clipped: it would leave unbounded */
        return fl_fail(err, FL_EINVAL, "the update is not finite: not sent under DP-FedAvg");
    float z[NOISE_BLOCK];
    for (size_t i = 0; i < n; i += NOISE_BLOCK) {
        size_t m = n - i < NOISE_BLOCK ? n - i : NOISE_BLOCK;
        src->noise(src->user, z, m, std);
        for (size_t j = 0; j < m; j++) {
            if (isnan(z[j]))
                return fl_fail(err, FL_EBACKEND,
                               "the noise source failed: the DP-FedAvg update is not sent");
            delta[i + j] += z[j];
        }
    }
    return FL_OK;
}

double fl_dp_clip_bit(double norm, double C, double std, const fl_dp_source *src) {
    float z = 0;
    if (std > 0) src->noise(src->user, &z, 1, std);
    return (norm <= C ? 1.0 : 0.0) + (double)z;
}
