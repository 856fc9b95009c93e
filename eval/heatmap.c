/* heatmap.c - jet colours, min-max normalisation and the tile | overlay | colour-bar PNG, drawn
 * pixel by pixel into a cairo image surface (text through cairo's toy API) and written through
 * the atomic writer. Not a general image library: RGB tiles and one map per picture. */
#include "heatmap.h"

#include <cairo.h>
#include <math.h>
#include <stdlib.h>

#include "../common/atomic.h"

#define HM_MARGIN 8
#define HM_GAP 8
#define HM_BAR 14
#define HM_LABELS 34 /* room for the bar's "max" / "min" */
#define HM_CAPTION 22

static float clamp01(float v) {
    return v > 0 ? (v < 1 ? v : 1) : 0; /* NaN fails v > 0: 0 */
}

void fl_heatmap_jet(float v, float rgb[3]) {
    v = clamp01(v);
    rgb[0] = clamp01(1.5f - fabsf(4 * v - 3));
    rgb[1] = clamp01(1.5f - fabsf(4 * v - 2));
    rgb[2] = clamp01(1.5f - fabsf(4 * v - 1));
}

void fl_heatmap_normalize(const float *map, size_t n, float *out) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(map[i])) {
            lo = map[i] < lo ? map[i] : lo;
            hi = map[i] > hi ? map[i] : hi;
        }
    float range = hi - lo;
    for (size_t i = 0; i < n; i++)
        out[i] = isfinite(map[i]) && range > 0 ? (map[i] - lo) / range : 0.0f;
}

static uint32_t pack_rgb(float r, float g, float b) {
    return (uint32_t)lroundf(clamp01(r) * 255) << 16 | (uint32_t)lroundf(clamp01(g) * 255) << 8 |
           (uint32_t)lroundf(clamp01(b) * 255);
}

/* Paints the two panels and the colour bar into the RGB24 pixels of surf. */
static void paint_pixels(cairo_surface_t *surf, const uint8_t *tile, const float *norm, int T,
                         int zoom, float alpha, int top) {
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf), S = T * zoom;
    int x_overlay = HM_MARGIN + S + HM_GAP, x_bar = x_overlay + S + HM_GAP;
    cairo_surface_flush(surf);
    for (int y = 0; y < S; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)(top + y) * stride);
        for (int x = 0; x < S; x++) {
            size_t i = (size_t)(y / zoom) * T + (size_t)(x / zoom);
            float px[3] = {tile[3 * i] / 255.0f, tile[3 * i + 1] / 255.0f,
                           tile[3 * i + 2] / 255.0f};
            float c[3];
            fl_heatmap_jet(norm[i], c);
            row[HM_MARGIN + x] = pack_rgb(px[0], px[1], px[2]);
            row[x_overlay + x] =
                pack_rgb((1 - alpha) * px[0] + alpha * c[0], (1 - alpha) * px[1] + alpha * c[1],
                         (1 - alpha) * px[2] + alpha * c[2]);
        }
        float c[3];
        fl_heatmap_jet(S > 1 ? 1.0f - (float)y / (float)(S - 1) : 1.0f, c);
        for (int x = 0; x < HM_BAR; x++) row[x_bar + x] = pack_rgb(c[0], c[1], c[2]);
    }
    cairo_surface_mark_dirty(surf);
}

fl_status fl_heatmap_write_png(const char *path, const uint8_t *tile, const float *map, int T,
                               float alpha, const char *caption, fl_err *err) {
    if (T < 1 || T > 8192 || !(alpha >= 0 && alpha <= 1))
        return fl_fail(err, FL_EINVAL,
                       "%s: a %d-px tile with alpha %g (expected 1..8192 px, alpha "
                       "in [0, 1])",
                       path, T, (double)alpha);
    int zoom = T < 256 ? (256 + T - 1) / T : 1, S = T * zoom;
    int top = HM_MARGIN + (caption ? HM_CAPTION : 0);
    int W = HM_MARGIN + S + HM_GAP + S + HM_GAP + HM_BAR + HM_LABELS, H = top + S + HM_MARGIN;
    float *norm = malloc((size_t)T * T * sizeof *norm);
    if (!norm) return fl_fail(err, FL_ENOMEM, "%s: out of memory for a %d-px map", path, T);
    fl_heatmap_normalize(map, (size_t)T * T, norm);

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    fl_status s = FL_OK;
    cairo_status_t cs = cairo_status(cr);
    if (cs == CAIRO_STATUS_SUCCESS) {
        paint_pixels(surf, tile, norm, T, zoom, alpha, top);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_font_size(cr, 11);
        int x_labels = HM_MARGIN + 2 * (S + HM_GAP) + HM_BAR + 4;
        cairo_move_to(cr, x_labels, top + 10);
        cairo_show_text(cr, "max");
        cairo_move_to(cr, x_labels, top + S);
        cairo_show_text(cr, "min");
        if (caption) {
            cairo_set_font_size(cr, 13);
            cairo_move_to(cr, HM_MARGIN, HM_MARGIN + 14);
            cairo_show_text(cr, caption);
        }
        cs = cairo_status(cr);
    }
    if (cs != CAIRO_STATUS_SUCCESS) {
        s = fl_fail(err, FL_EBACKEND, "%s: cairo: %s", path, cairo_status_to_string(cs));
        goto done;
    }
    /* cairo writes the file by name: reserve a temporary beside path, then rename it over. */
    cairo_surface_flush(surf);
    char *tmp = NULL;
    if ((s = fl_atomic_tmp_reserve(path, &tmp, NULL, err)) != FL_OK) goto done;
    cs = cairo_surface_write_to_png(surf, tmp);
    if (cs == CAIRO_STATUS_SUCCESS) {
        s = fl_atomic_tmp_commit(tmp, path, err);
    } else {
        fl_atomic_tmp_remove(tmp);
        s = fl_fail(err, cs == CAIRO_STATUS_WRITE_ERROR ? FL_EIO : FL_EBACKEND, "%s: cairo: %s",
                    path, cairo_status_to_string(cs));
    }
    free(tmp);
done:
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    free(norm);
    return s;
}
