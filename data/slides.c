/* slides.c - tiles from a whole-slide image through OpenSlide: the resolution asked for, a
 * tissue mask (Otsu on saturation at a thumbnail level), the tissue tiles on a regular grid, a
 * spatially spread subset, each read from the nearest finer pyramid level and box-resampled.
 * Not a viewer, not a stain normaliser, and no tissue model beyond colour saturation. */
#include "slides.h"

#include <errno.h>
#include <math.h>
#include <openslide.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/progress.h"

/* The mask is computed on the finest level whose longest side is at most this, box-reduced to
 * it when even the coarsest level is larger. */
#define MASK_MAX_SIDE 2048
/* Saturation (0-255) that is never tissue: Otsu on a slide of bare glass would otherwise split
 * the noise. H&E tissue sits well above (0.15-0.6). */
#define MASK_MIN_SAT 20
/* A pixel whose brightest channel is below this is ink, dust or scanner fill, not tissue, however
 * saturated its noise. */
#define MASK_MIN_VALUE 20

void fl_slide_options_default(fl_slide_options *o) {
    memset(o, 0, sizeof *o);
    o->tile = 256;
    o->max_tiles = 64;
    o->min_tissue = 0.5;
}

/* OpenSlide's premultiplied ARGB to RGB: un-premultiplied; fully transparent is white (what lies
 * outside the scanned area). */
static void argb_rgb(uint32_t p, uint8_t *rgb) {
    unsigned a = p >> 24, c[3] = {(p >> 16) & 255, (p >> 8) & 255, p & 255};
    for (int k = 0; k < 3; k++) {
        unsigned v = a == 0 ? 255 : a == 255 ? c[k] : (c[k] * 255 + a / 2) / a;
        rgb[k] = (uint8_t)(v > 255 ? 255 : v);
    }
}

/* OpenSlide's sticky error as ours, keeping its text. */
static fl_status slide_error(openslide_t *osr, const char *path, fl_err *err) {
    const char *e = openslide_get_error(osr);
    if (!e) return FL_OK;
    return fl_fail(err, FL_EIO, "%s: openslide: %s", path, e);
}

/* A positive finite number from a slide property, or 0 when absent or not one. */
static double prop_num(openslide_t *osr, const char *name) {
    const char *s = openslide_get_property_value(osr, name);
    if (!s) return 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v <= 0) return 0;
    return v;
}

/* Microns per level-0 pixel: openslide.mpp-x, else aperio.MPP, else a TIFF XResolution in px per
 * centimetre (OpenSlide 3.4 derives none for generic TIFFs); 0 when the slide says nothing. */
static double slide_mpp(openslide_t *osr) {
    double v = prop_num(osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
    if (v == 0) v = prop_num(osr, "aperio.MPP");
    if (v == 0) {
        const char *unit = openslide_get_property_value(osr, "tiff.ResolutionUnit");
        double ppcm = prop_num(osr, "tiff.XResolution");
        if (unit && strcmp(unit, "centimeter") == 0 && ppcm > 0) v = 1e4 / ppcm;
    }
    return v;
}

/* The downsample relative to level 0 that gives the resolution o asks for (1 when it asks for
 * none). Fails naming the slide and the property it lacks. */
static fl_status target_factor(openslide_t *osr, const char *path, const fl_slide_options *o,
                               double *f, fl_err *err) {
    *f = 1;
    if (o->mpp > 0) {
        double mpp0 = slide_mpp(osr);
        if (mpp0 == 0)
            return fl_fail(err, FL_EFORMAT,
                           "%s: --mpp %g needs the slide's resolution, but it has no "
                           "openslide.mpp-x (nor aperio.MPP, nor a TIFF resolution in cm)",
                           path, o->mpp);
        *f = o->mpp / mpp0;
    } else if (o->magnification > 0) {
        double mag0 = prop_num(osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
        if (mag0 == 0) mag0 = prop_num(osr, "aperio.AppMag");
        if (mag0 == 0)
            return fl_fail(err, FL_EFORMAT,
                           "%s: --magnification %g needs the scan's objective power, but the "
                           "slide has no openslide.objective-power (nor aperio.AppMag)",
                           path, o->magnification);
        *f = mag0 / o->magnification;
    }
    return FL_OK;
}

/* Otsu's threshold of a 256-bin histogram: the t maximising the between-class variance of
 * {<= t} and {> t}; 0 for a histogram with one value. */
static int otsu(const int64_t hist[256]) {
    double total = 0, sum = 0;
    for (int i = 0; i < 256; i++) total += (double)hist[i], sum += (double)i * (double)hist[i];
    double wb = 0, sumb = 0, best_var = -1;
    int best = 0;
    for (int t = 0; t < 256; t++) {
        wb += (double)hist[t];
        sumb += (double)t * (double)hist[t];
        double wf = total - wb;
        if (wb == 0) continue;
        if (wf == 0) break;
        double mb = sumb / wb, mf = (sum - sumb) / wf;
        double var = wb * wf * (mb - mf) * (mb - mf);
        if (var > best_var) best_var = var, best = t;
    }
    return best;
}

/* Saturation 0-255 of an RGB colour (HSV S); 0 for near-black. */
static uint8_t saturation(double r, double g, double b) {
    double mx = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b));
    if (mx < MASK_MIN_VALUE) return 0;
    return (uint8_t)(255 * (mx - mn) / mx + 0.5);
}

/* The tissue mask: *mask gets mw x mh bytes (1 = tissue; caller frees), each mask pixel the mean
 * colour of an r x r block of the chosen level. */
static fl_status tissue_mask(openslide_t *osr, const char *path, uint8_t **mask, int64_t *mw,
                             int64_t *mh, fl_err *err) {
    int32_t nl = openslide_get_level_count(osr), L = nl - 1;
    int64_t lw = 0, lh = 0;
    for (int32_t l = 0; l < nl; l++) {
        openslide_get_level_dimensions(osr, l, &lw, &lh);
        if (lw <= MASK_MAX_SIDE && lh <= MASK_MAX_SIDE) {
            L = l;
            break;
        }
    }
    openslide_get_level_dimensions(osr, L, &lw, &lh);
    double ds = openslide_get_level_downsample(osr, L);
    int64_t side = lw > lh ? lw : lh, r = (side + MASK_MAX_SIDE - 1) / MASK_MAX_SIDE;
    *mw = lw / r > 0 ? lw / r : 1;
    *mh = lh / r > 0 ? lh / r : 1;
    int64_t bw = *mw * r; /* level columns that feed the mask */
    int64_t rows = (int64_t)(1 << 22) / (bw * r) > 0 ? (1 << 22) / (bw * r) : 1; /* per strip */
    uint8_t *sat = malloc((size_t)(*mw * *mh));
    uint32_t *buf = malloc((size_t)(bw * r * rows) * 4);
    double *acc = malloc((size_t)*mw * 3 * sizeof(double));
    fl_status s = FL_OK;
    if (!sat || !buf || !acc) {
        s = fl_fail(err, FL_ENOMEM, "%s: no memory for a %lldx%lld tissue mask", path,
                    (long long)*mw, (long long)*mh);
        goto done;
    }
    int64_t hist[256] = {0};
    for (int64_t my0 = 0; my0 < *mh; my0 += rows) {
        int64_t n = *mh - my0 < rows ? *mh - my0 : rows;
        openslide_read_region(osr, buf, 0, llround((double)(my0 * r) * ds), L, bw, n * r);
        if ((s = slide_error(osr, path, err))) goto done;
        for (int64_t my = 0; my < n; my++) {
            memset(acc, 0, (size_t)*mw * 3 * sizeof(double));
            for (int64_t y = 0; y < r; y++)
                for (int64_t x = 0; x < bw; x++) {
                    uint8_t c[3];
                    argb_rgb(buf[(my * r + y) * bw + x], c);
                    for (int k = 0; k < 3; k++) acc[x / r * 3 + k] += c[k];
                }
            for (int64_t mx = 0; mx < *mw; mx++) {
                double *a = acc + mx * 3, k = (double)(r * r);
                uint8_t v = saturation(a[0] / k, a[1] / k, a[2] / k);
                sat[(my0 + my) * *mw + mx] = v;
                hist[v]++;
            }
        }
    }
    int t = otsu(hist);
    if (t < MASK_MIN_SAT) t = MASK_MIN_SAT;
    for (int64_t i = 0; i < *mw * *mh; i++) sat[i] = sat[i] > t;
    *mask = sat;
    sat = NULL;
done:
    free(sat);
    free(buf);
    free(acc);
    return s;
}

/* Farthest-point sampling: marks k of the n points (x, y) in keep[]. The first is the point
 * nearest the centroid, each next the one farthest from those already taken; ties go to the
 * lower index, so the choice is deterministic. dist is scratch for n doubles. */
static void spread(const fl_tile_coord *c, int64_t n, int k, uint8_t *keep, double *dist) {
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) mx += (double)c[i].x, my += (double)c[i].y;
    mx /= (double)n, my /= (double)n;
    int64_t pick = 0;
    for (int64_t i = 0; i < n; i++) {
        double dx = (double)c[i].x - mx, dy = (double)c[i].y - my;
        dist[i] = -(dx * dx + dy * dy); /* nearest the centroid = the largest */
        if (dist[i] > dist[pick]) pick = i;
    }
    for (int64_t i = 0; i < n; i++) dist[i] = INFINITY;
    for (int taken = 0; taken < k; taken++) {
        keep[pick] = 1;
        int64_t next = -1;
        for (int64_t i = 0; i < n; i++) {
            double dx = (double)(c[i].x - c[pick].x), dy = (double)(c[i].y - c[pick].y);
            double d = dx * dx + dy * dy;
            if (d < dist[i]) dist[i] = d;
            if (!keep[i] && (next < 0 || dist[i] > dist[next])) next = i;
        }
        if (next < 0) break;
        pick = next;
    }
}

/* Box (area-average) weights of source pixel i for destination pixel j at scale s source px per
 * destination px: the overlap of [i, i+1) with [j s, (j+1) s), over s. */
static double box_weight(int64_t i, int j, double s) {
    double a = j * s, b = (j + 1) * s;
    double lo = fmax((double)i, a), hi = fmin((double)(i + 1), b);
    return hi > lo ? (hi - lo) / s : 0;
}

/* Resamples the w x w ARGB region src, whose first span x span px are the tile, to t x t RGB
 * (HWC) in dst by area averaging: each destination pixel is the mean of the source area it
 * covers (so upsampling degrades to near-nearest). tmp: w x t x 3 doubles. */
static void box_resample(const uint32_t *src, int64_t w, double span, int t, double *tmp,
                         uint8_t *dst) {
    double sc = span / t; /* source px per destination px */
    for (int64_t y = 0; y < w; y++)
        for (int j = 0; j < t; j++) {
            double v[3] = {0, 0, 0};
            for (int64_t i = (int64_t)floor(j * sc); i < (int64_t)ceil((j + 1) * sc) && i < w;
                 i++) {
                uint8_t c[3];
                argb_rgb(src[y * w + i], c);
                double wt = box_weight(i, j, sc);
                for (int k = 0; k < 3; k++) v[k] += wt * c[k];
            }
            for (int k = 0; k < 3; k++) tmp[(y * t + j) * 3 + k] = v[k];
        }
    for (int j = 0; j < t; j++)
        for (int x = 0; x < t * 3; x++) {
            double v = 0;
            for (int64_t i = (int64_t)floor(j * sc); i < (int64_t)ceil((j + 1) * sc) && i < w; i++)
                v += box_weight(i, j, sc) * tmp[i * t * 3 + x];
            dst[(size_t)j * t * 3 + x] = (uint8_t)(fmin(fmax(v, 0), 255) + 0.5);
        }
}

/* The first mask pixel whose centre lies at or after level-0 coordinate x (px per mask px m). */
static int64_t mask_first(double x, double m) {
    return (int64_t)ceil(x / m - 0.5);
}

/* Where tiles are read: the pyramid level whose downsample is the largest <= f (a 0.1% slack
 * absorbs downsamples like 4.0003 that rounded level sizes give). */
static int32_t read_level(openslide_t *osr, double f) {
    int32_t best = 0;
    for (int32_t l = 1; l < openslide_get_level_count(osr); l++)
        if (openslide_get_level_downsample(osr, l) <= f * 1.001) best = l;
    return best;
}

typedef struct {
    int32_t level;
    double span;    /* tile edge in px of that level */
    int64_t w;      /* px read per side */
    uint32_t *argb; /* w x w */
    double *tmp;    /* w x tile x 3 */
} tile_reader;

/* Reads the tile whose level-0 corner is (x, y) into out (t x t x 3). */
static fl_status read_tile(openslide_t *osr, const char *path, tile_reader *tr, int64_t x,
                           int64_t y, int t, uint8_t *out, fl_err *err) {
    openslide_read_region(osr, tr->argb, x, y, tr->level, tr->w, tr->w);
    fl_status s = slide_error(osr, path, err);
    if (s) return s;
    if (tr->w == t) { /* the level has the target resolution: no resampling */
        for (int64_t i = 0; i < (int64_t)t * t; i++) argb_rgb(tr->argb[i], out + i * 3);
        return FL_OK;
    }
    box_resample(tr->argb, tr->w, tr->span, t, tr->tmp, out);
    return FL_OK;
}

static fl_status check_options(const char *path, const fl_slide_options *o, fl_err *err) {
    if (o->tile < 1 || o->tile > 8192)
        return fl_fail(err, FL_EINVAL, "%s: tile size %d is not in 1..8192", path, o->tile);
    if (!(o->mpp >= 0) || !(o->magnification >= 0) || !isfinite(o->mpp) ||
        !isfinite(o->magnification))
        return fl_fail(err, FL_EINVAL, "%s: --mpp %g / --magnification %g must be >= 0", path,
                       o->mpp, o->magnification);
    if (o->max_tiles < 0)
        return fl_fail(err, FL_EINVAL, "%s: max tiles %d is negative", path, o->max_tiles);
    if (!(o->min_tissue >= 0 && o->min_tissue <= 1))
        return fl_fail(err, FL_EINVAL, "%s: min tissue %g is not in [0, 1]", path, o->min_tissue);
    return FL_OK;
}

fl_status fl_slide_tile(const char *path, const fl_slide_options *o, uint8_t **pixels,
                        fl_tile_coord **coords, int *n, fl_err *err) {
    *pixels = NULL;
    *coords = NULL;
    *n = 0;
    openslide_t *osr = NULL;
    uint8_t *mask = NULL, *keep = NULL, *px = NULL;
    fl_tile_coord *cand = NULL, *kept = NULL;
    double *dist = NULL;
    tile_reader tr = {0};
    int64_t nc = 0, nk = 0;
    fl_status s = check_options(path, o, err);
    if (s) return s;
    struct stat st;
    if (stat(path, &st) != 0)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", path,
                       strerror(errno));
    osr = openslide_open(path);
    if (!osr)
        return fl_fail(err, FL_EFORMAT, "%s: not a whole-slide image OpenSlide can read", path);
    if ((s = slide_error(osr, path, err))) goto done;

    double f;
    if ((s = target_factor(osr, path, o, &f, err))) goto done;
    int64_t W, H, mw, mh;
    openslide_get_level0_dimensions(osr, &W, &H);
    double span0 = o->tile * f; /* tile edge in level-0 px */
    if ((s = tissue_mask(osr, path, &mask, &mw, &mh, err))) goto done;

    /* Candidates: the grid of tiles that fit in level 0, row-major, with their tissue fraction
     * (the share of mask pixels whose centres fall inside; the one under the tile's centre when
     * the tile is smaller than a mask pixel). */
    int64_t nx = (int64_t)floor((double)W / span0 + 1e-9),
            ny = (int64_t)floor((double)H / span0 + 1e-9);
    double mx = (double)W / (double)mw, my = (double)H / (double)mh; /* level-0 px per mask px */
    cand = malloc((size_t)(nx * ny > 0 ? nx * ny : 1) * sizeof *cand);
    if (!cand) {
        s = fl_fail(err, FL_ENOMEM, "%s: no memory for %lld candidate tiles", path,
                    (long long)(nx * ny));
        goto done;
    }
    for (int64_t j = 0; j < ny; j++)
        for (int64_t i = 0; i < nx; i++) {
            int64_t x = llround((double)i * span0), y = llround((double)j * span0);
            int64_t a0 = mask_first(x, mx), a1 = mask_first(x + span0, mx);
            int64_t b0 = mask_first(y, my), b1 = mask_first(y + span0, my);
            if (a1 <= a0) a0 = (int64_t)((x + span0 / 2) / mx), a1 = a0 + 1;
            if (b1 <= b0) b0 = (int64_t)((y + span0 / 2) / my), b1 = b0 + 1;
            if (a1 > mw) a1 = mw;
            if (b1 > mh) b1 = mh;
            int64_t in = 0, all = 0;
            for (int64_t b = b0; b < b1; b++)
                for (int64_t a = a0; a < a1; a++) in += mask[b * mw + a], all++;
            float frac = all ? (float)in / (float)all : 0;
            if (frac >= o->min_tissue) cand[nc++] = (fl_tile_coord){x, y, frac};
        }

    /* The subset: all, or max_tiles spread over the tissue, kept in row-major order. */
    int64_t want = o->max_tiles > 0 && nc > o->max_tiles ? o->max_tiles : nc;
    keep = calloc((size_t)(nc > 0 ? nc : 1), 1);
    dist = malloc((size_t)(nc > 0 ? nc : 1) * sizeof *dist);
    kept = malloc((size_t)(want > 0 ? want : 1) * sizeof *kept);
    if (!keep || !dist || !kept) {
        s = fl_fail(err, FL_ENOMEM, "%s: no memory for %lld candidate tiles", path, (long long)nc);
        goto done;
    }
    if (want < nc)
        spread(cand, nc, (int)want, keep, dist);
    else if (nc > 0)
        memset(keep, 1, (size_t)nc);
    for (int64_t i = 0; i < nc; i++)
        if (keep[i]) kept[nk++] = cand[i];

    if (nk > INT32_MAX) {
        s = fl_fail(err, FL_EINVAL, "%s: %lld tiles; set a max_tiles", path, (long long)nk);
        goto done;
    }

    /* Reading: from the level nearest the target from the finer side, resampled to tile px. */
    int t = o->tile;
    tr.level = read_level(osr, f);
    tr.span = span0 / openslide_get_level_downsample(osr, tr.level);
    tr.w = fabs(tr.span - t) <= 0.5 ? t : (int64_t)ceil(tr.span - 1e-6);
    px = malloc((size_t)nk * (size_t)t * (size_t)t * 3 + 1);
    tr.argb = malloc((size_t)(tr.w * tr.w) * 4);
    tr.tmp = malloc((size_t)tr.w * (size_t)t * 3 * sizeof(double));
    if (!px || !tr.argb || !tr.tmp) {
        s = fl_fail(err, FL_ENOMEM, "%s: no memory for %lld tiles of %d px", path, (long long)nk,
                    t);
        goto done;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char what[160];
    snprintf(what, sizeof what, "tiling %s", base);
    fl_progress prog;
    fl_progress_begin(&prog, what, nk, o->quiet);
    for (int64_t i = 0; i < nk; i++) {
        if ((s = read_tile(osr, path, &tr, kept[i].x, kept[i].y, t, px + (size_t)i * t * t * 3,
                           err)))
            goto done;
        fl_progress_update(&prog, i + 1);
    }
    fl_progress_end(&prog, "%lld tiles of %lld candidates (level %d, %.3gx downsample)",
                    (long long)nk, (long long)nc, tr.level, f);
    *pixels = px;
    *coords = kept;
    *n = (int)nk;
    px = NULL;
    kept = NULL;
done:
    if (osr) openslide_close(osr);
    free(mask);
    free(keep);
    free(dist);
    free(cand);
    free(kept);
    free(px);
    free(tr.argb);
    free(tr.tmp);
    return s;
}
