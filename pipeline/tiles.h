/* tiles.h - from cohort tiles (uint8 HWC) to model input (float NCHW, ImageNet-normalised),
 * with the training augmentations: flips, 90-degree rotations, mild colour jitter. */
#ifndef FL_TILES_H
#define FL_TILES_H

#include <stdint.h>

#include "../common/rng.h"

/* Writes one T x T tile into out (3 x T x T floats). With r non-NULL, applies a random
 * dihedral transform and brightness/contrast/saturation jitter of up to +-amount. */
void fl_tile_to_input(const uint8_t *hwc, int T, float *out, fl_rng *r, float amount);

#endif
