/* tiles.c - tile normalisation and augmentation. */
#include "tiles.h"

#include <stddef.h>

static const float mean_rgb[3] = {0.485f, 0.456f, 0.406f}; /* ImageNet statistics */
static const float std_rgb[3] = {0.229f, 0.224f, 0.225f};

void fl_tile_to_input(const uint8_t *hwc, int T, float *out, fl_rng *r, float amount) {
    int flip = 0, rot = 0;
    float bright = 0, contrast = 1, sat = 1;
    if (r) {
        uint64_t bits = fl_rng_u64(r);
        flip = (int)(bits & 1);
        rot = (int)((bits >> 1) & 3);
        bright = amount * (float)(2 * fl_rng_uniform(r) - 1);
        contrast = 1 + amount * (float)(2 * fl_rng_uniform(r) - 1);
        sat = 1 + amount * (float)(2 * fl_rng_uniform(r) - 1);
    }
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++) {
            /* Output pixel (y, x) reads source (sy, sx) after rotation and flip. */
            int sy = y, sx = x, t;
            for (int k = 0; k < rot; k++) {
                t = sy;
                sy = sx;
                sx = T - 1 - t;
            }
            if (flip) sx = T - 1 - sx;
            const uint8_t *px = hwc + ((size_t)sy * T + sx) * 3;
            float c[3] = {px[0] / 255.0f, px[1] / 255.0f, px[2] / 255.0f};
            if (r) {
                float grey = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
                for (int k = 0; k < 3; k++)
                    c[k] = (grey + sat * (c[k] - grey) - 0.5f) * contrast + 0.5f + bright;
            }
            for (int k = 0; k < 3; k++)
                out[((size_t)k * T + y) * T + x] = (c[k] - mean_rgb[k]) / std_rgb[k];
        }
}
