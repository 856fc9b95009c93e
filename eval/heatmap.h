/* heatmap.h - a per-pixel map drawn over its image tile: the jet colour map, per-tile min-max
 * normalisation, and a PNG (tile | overlay | colour bar) written with cairo. For class
 * activation maps (pipeline/cam.h). Not a chart: no axes; see plot.h for those. */
#ifndef FL_HEATMAP_H
#define FL_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

/* MATLAB/matplotlib-style jet: v = 0 dark blue, 0.25 blue-cyan, 0.5 green-yellow, 0.75 orange,
 * 1 dark red. v is clamped to [0, 1] (NaN reads as 0); rgb receives three values in [0, 1]. */
void fl_heatmap_jet(float v, float rgb[3]);

/* out[i] = (map[i] - min) / (max - min) over the n values (out may be map); a constant map, or
 * one with a non-finite value, becomes all zeros where not finite or when max == min. */
void fl_heatmap_normalize(const float *map, size_t n, float *out);

/* Writes a PNG to path (atomically, common/atomic.h): on the left the tile (T x T x 3 uint8,
 * HWC RGB), in the middle the tile blended with the jet colours of map (T x T floats,
 * normalised here with fl_heatmap_normalize): pixel = (1 - alpha) * tile + alpha * colour,
 * on the right a colour bar from the map's minimum (bottom) to maximum (top). Tiles under
 * 256 px are enlarged by a whole factor (nearest neighbour) so they stay visible. caption
 * (may be NULL) is drawn above the panels. Returns FL_OK, FL_EINVAL (T < 1 or alpha outside
 * [0, 1]), FL_ENOMEM, FL_EIO or FL_EBACKEND (cairo's message kept); path is untouched on
 * failure. */
fl_status fl_heatmap_write_png(const char *path, const uint8_t *tile, const float *map, int T,
                               float alpha, const char *caption, fl_err *err);

#endif
