/* slides.h - tiles from whole-slide images (OpenSlide) and from folders of PNG/JPEG tiles:
 * what `fedlung cohort import --slides DIR | --tiles DIR` stores as a patient's tiles.
 * Not a viewer and not a stain normaliser. */
#ifndef FL_SLIDES_H
#define FL_SLIDES_H

#include <stdint.h>

#include "../common/status.h"

typedef struct {
    int tile;             /* output tile edge in px (default 256) */
    double mpp;           /* target microns per pixel; 0: use magnification */
    double magnification; /* target objective power (e.g. 20); 0 with mpp 0: level 0 as is */
    int max_tiles;        /* per slide, spread over the tissue; 0: all (default 64) */
    double min_tissue;    /* fraction of a tile that must be tissue (default 0.5) */
    int quiet;            /* no progress on stderr */
} fl_slide_options;

void fl_slide_options_default(fl_slide_options *o);

/* A kept tile: its top-left corner in level-0 pixels and its tissue fraction. */
typedef struct {
    int64_t x, y;
    float tissue;
} fl_tile_coord;

/* Tiles one slide: the tissue mask is an Otsu threshold on saturation at a thumbnail level;
 * tiles come from the pyramid level nearest the target resolution (resampled to exactly
 * `tile` px); a tile is kept when its tissue fraction >= min_tissue; at most max_tiles,
 * spread over the slide. *pixels gets n x tile x tile x 3 uint8 (RGB, HWC; caller frees),
 * *coords n entries (caller frees). Errors name the slide. */
fl_status fl_slide_tile(const char *path, const fl_slide_options *o, uint8_t **pixels,
                        fl_tile_coord **coords, int *n, fl_err *err);

/* Reads every *.png / *.jpg / *.jpeg in dir (sorted by name), each exactly tile x tile RGB
 * (grey or RGBA converted), into *pixels (n x tile x tile x 3, caller frees). A file of
 * another size or an unreadable image is an error naming it. */
fl_status fl_tile_folder_read(const char *dir, int tile, uint8_t **pixels, int *n, fl_err *err);

#endif
