/* plot.c - line and scatter charts with cairo's image surface and toy text API, written as PNG
 * through the atomic writer of common/atomic.h; ROC and PR charts as thin wrappers. Pixel layout
 * is fixed margins around one plot rectangle (narrowed for a legend outside it); nothing here
 * measures fonts beyond cairo_text_extents. */
#include "plot.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/atomic.h"

#define PLOT_PI 3.14159265358979323846

/* matplotlib's tab10, so the charts read like the Python ones next to them. */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

/* The plot rectangle in pixels and the data ranges it shows. */
typedef struct {
    double x0, y0, w, h; /* left, top, width, height */
    double xmin, xmax, ymin, ymax;
} frame;

static double px(const frame *fr, double x) {
    return fr->x0 + (x - fr->xmin) / (fr->xmax - fr->xmin) * fr->w;
}

static double py(const frame *fr, double y) {
    return fr->y0 + fr->h - (y - fr->ymin) / (fr->ymax - fr->ymin) * fr->h;
}

/* Sets colour, width and dash of series s. */
static void series_style(cairo_t *cr, const fl_plot_series *s) {
    int dashed = s->dashed;
    if (s->color < 0) {
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    } else {
        const double *c = palette[s->color % 10];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        dashed ^= (s->color / 10) % 2; /* past ten series, alternate solid and dashed */
    }
    cairo_set_line_width(cr, s->color < 0 ? 1.5 : 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    static const double dash[] = {7.0, 5.0};
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
}

/* Colour of series s's points: its line colour, slightly transparent so crowds show density. */
static void point_style(cairo_t *cr, const fl_plot_series *s) {
    const double *c = s->color < 0 ? (const double[3]){0.45, 0.45, 0.45} : palette[s->color % 10];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.8);
    cairo_set_line_width(cr, 1.4);
    cairo_set_dash(cr, NULL, 0, 0);
}

/* One scatter point of series colour index `color` at (x, y) pixels, radius r: filled circle,
 * then (past ten colours) open circle, filled square, open square. */
static void draw_marker(cairo_t *cr, double x, double y, int color, double r) {
    int shape = color < 0 ? 0 : (color / 10) % 4;
    cairo_new_sub_path(cr);
    if (shape < 2)
        cairo_arc(cr, x, y, r, 0, 2 * PLOT_PI);
    else
        cairo_rectangle(cr, x - 0.9 * r, y - 0.9 * r, 1.8 * r, 1.8 * r);
    if (shape % 2)
        cairo_stroke(cr);
    else
        cairo_fill(cr);
}

/* Calls f(ctx, x, y) on points along series s, `per` samples per drawn segment (steps-post
 * segments are two legs), or on its points alone when `points`, to find where it runs. */
static void series_walk(const fl_plot_series *s, int per, int points,
                        void (*f)(void *, double, double), void *ctx) {
    for (int i = 0; points && i < s->n; i++)
        if (!isnan(s->x[i]) && !isnan(s->y[i])) f(ctx, s->x[i], s->y[i]);
    for (int i = 0; !points && i + 1 < s->n; i++) {
        double xa = s->x[i], ya = s->y[i], xb = s->x[i + 1], yb = s->y[i + 1];
        if (isnan(xa) || isnan(ya) || isnan(xb) || isnan(yb)) continue;
        for (int t = 0; t <= per; t++) {
            double u = (double)t / per;
            if (s->steps_post) {
                f(ctx, xa + u * (xb - xa), ya);
                f(ctx, xb, ya + u * (yb - ya));
            } else {
                f(ctx, xa + u * (xb - xa), ya + u * (yb - ya));
            }
        }
    }
    if (!points && s->n == 1 && !isnan(s->x[0]) && !isnan(s->y[0])) f(ctx, s->x[0], s->y[0]);
}

static void draw_series(cairo_t *cr, const frame *fr, const fl_plot_series *s, int points) {
    if (points) {
        point_style(cr, s);
        for (int i = 0; i < s->n; i++)
            if (!isnan(s->x[i]) && !isnan(s->y[i]))
                draw_marker(cr, px(fr, s->x[i]), py(fr, s->y[i]), s->color, 3.5);
        return;
    }
    series_style(cr, s);
    int pen = 0; /* a current point exists */
    for (int i = 0; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        if (isnan(x) || isnan(y)) {
            pen = 0;
            continue;
        }
        if (!pen) {
            cairo_move_to(cr, px(fr, x), py(fr, y));
        } else {
            if (s->steps_post) cairo_line_to(cr, px(fr, x), py(fr, s->y[i - 1]));
            cairo_line_to(cr, px(fr, x), py(fr, y));
        }
        pen = 1;
    }
    cairo_stroke(cr);
    if (s->markers)
        for (int i = 0; i < s->n; i++) {
            if (isnan(s->x[i]) || isnan(s->y[i])) continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, px(fr, s->x[i]), py(fr, s->y[i]), 3.0, 0, 2 * PLOT_PI);
            cairo_fill(cr);
        }
}

/* A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) giving about `target` intervals. */
static double nice_step(double range, int target) {
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return p * (f < 1.5 ? 1 : f < 2.25 ? 2 : f < 3.5 ? 2.5 : f < 7.5 ? 5 : 10);
}

/* Formats tick value v for a given step: enough decimals to tell neighbours apart. */
static void tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0; /* no "-0" or "1e-17" */
    double big = fmax(fabs(v), step);
    if (big >= 1e6 || step < 1e-4) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int dec = 0;
    while (dec < 8 && fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6) dec++;
    snprintf(buf, cap, "%.*f", dec, v);
}

/* Ticks, grid and tick labels of one axis (vertical = 0: x axis). */
static void draw_axis(cairo_t *cr, const frame *fr, int vertical) {
    double lo = vertical ? fr->ymin : fr->xmin, hi = vertical ? fr->ymax : fr->xmax;
    double step = nice_step(hi - lo, vertical ? 6 : 8);
    cairo_set_font_size(cr, 13);
    for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
        double p = vertical ? py(fr, t) : px(fr, t);
        cairo_set_source_rgb(cr, 0.90, 0.90, 0.90); /* grid */
        cairo_set_line_width(cr, 1);
        if (vertical) {
            cairo_move_to(cr, fr->x0, round(p) + 0.5);
            cairo_line_to(cr, fr->x0 + fr->w, round(p) + 0.5);
        } else {
            cairo_move_to(cr, round(p) + 0.5, fr->y0);
            cairo_line_to(cr, round(p) + 0.5, fr->y0 + fr->h);
        }
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0); /* tick mark */
        if (vertical) {
            cairo_move_to(cr, fr->x0 - 5, round(p) + 0.5);
            cairo_line_to(cr, fr->x0, round(p) + 0.5);
        } else {
            cairo_move_to(cr, round(p) + 0.5, fr->y0 + fr->h);
            cairo_line_to(cr, round(p) + 0.5, fr->y0 + fr->h + 5);
        }
        cairo_stroke(cr);
        char buf[32];
        tick_label(buf, sizeof buf, t, step);
        cairo_text_extents_t te;
        cairo_text_extents(cr, buf, &te);
        if (vertical)
            cairo_move_to(cr, fr->x0 - 9 - te.x_advance, p + te.height / 2);
        else
            cairo_move_to(cr, p - te.x_advance / 2, fr->y0 + fr->h + 9 + te.height);
        cairo_show_text(cr, buf);
    }
}

/* Finite min and max of n values into *lo, *hi (unchanged when there are none). */
static void extend(const double *v, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

/* Turns a data range [lo, hi] (lo > hi: no data) into a padded, non-empty axis range. */
static void pad_range(double *lo, double *hi) {
    if (*lo > *hi) {
        *lo = 0;
        *hi = 1;
        return;
    }
    if (*lo == *hi) {
        double d = *lo ? fabs(*lo) * 0.1 : 0.5;
        *lo -= d;
        *hi += d;
        return;
    }
    double d = (*hi - *lo) * 0.04;
    *lo -= d;
    *hi += d;
}

/* Counting how many line samples fall inside a candidate legend box (pixels). */
typedef struct {
    const frame *fr;
    double bx, by, bw, bh;
    long hits;
} box_count;

static void count_in_box(void *ctx, double x, double y) {
    box_count *b = ctx;
    double X = px(b->fr, x), Y = py(b->fr, y);
    if (X >= b->bx && X <= b->bx + b->bw && Y >= b->by && Y <= b->by + b->bh) b->hits++;
}

/* The legend's box: entries in columns of at most `rows` (those that fit the plot's height). */
typedef struct {
    int entries, rows, cols;
    double col_w, w, h; /* pixels */
} legend_box;

#define LEGEND_ROW 20.0
#define LEGEND_PAD 8.0
#define LEGEND_SAMPLE 28.0

static legend_box legend_measure(cairo_t *cr, double plot_h, const fl_plot_series *series,
                                 int n_series) {
    legend_box lb = {0};
    double text_w = 0;
    cairo_set_font_size(cr, 13);
    for (int i = 0; i < n_series; i++)
        if (series[i].name) {
            cairo_text_extents_t te;
            cairo_text_extents(cr, series[i].name, &te);
            text_w = fmax(text_w, te.x_advance);
            lb.entries++;
        }
    if (!lb.entries) return lb;
    lb.rows = (int)((plot_h - 2 * LEGEND_PAD + 4) / LEGEND_ROW);
    lb.rows = lb.rows < 1 ? 1 : lb.rows > lb.entries ? lb.entries : lb.rows;
    lb.cols = (lb.entries + lb.rows - 1) / lb.rows;
    lb.col_w = LEGEND_PAD + LEGEND_SAMPLE + 8 + text_w;
    lb.w = lb.cols * lb.col_w + LEGEND_PAD;
    lb.h = LEGEND_PAD * 2 + LEGEND_ROW * lb.rows - 4;
    return lb;
}

static void draw_legend(cairo_t *cr, const frame *fr, fl_legend_pos pos,
                        const fl_plot_series *series, int n_series, int points) {
    legend_box lb = legend_measure(cr, fr->h, series, n_series);
    if (!lb.entries || pos == FL_LEGEND_NONE) return;
    const double row = LEGEND_ROW, pad = LEGEND_PAD, sample = LEGEND_SAMPLE;
    double bw = lb.w, bh = lb.h;
    double left = fr->x0 + 10, right = fr->x0 + fr->w - 10 - bw;
    double top = fr->y0 + 10, bottom = fr->y0 + fr->h - 10 - bh;
    double bx = right, by = top;
    if (pos == FL_LEGEND_OUTSIDE) {
        bx = fr->x0 + fr->w + 12;
        by = fr->y0;
    } else if (pos == FL_LEGEND_AUTO) { /* the corner crossed by the fewest line samples; ties
                                         * go to lower right, upper right, lower left, upper left */
        const double cx[4] = {right, right, left, left}, cy[4] = {bottom, top, bottom, top};
        long best = -1;
        for (int c = 0; c < 4; c++) {
            box_count b = {fr, cx[c], cy[c], bw, bh, 0};
            for (int i = 0; i < n_series; i++)
                series_walk(&series[i], 16, points, count_in_box, &b);
            if (best < 0 || b.hits < best) {
                best = b.hits;
                bx = cx[c];
                by = cy[c];
            }
        }
    } else {
        bx = pos == FL_LEGEND_UPPER_LEFT || pos == FL_LEGEND_LOWER_LEFT ? left : right;
        by = pos == FL_LEGEND_LOWER_LEFT || pos == FL_LEGEND_LOWER_RIGHT ? bottom : top;
    }
    cairo_rectangle(cr, round(bx) + 0.5, round(by) + 0.5, round(bw), round(bh));
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_stroke(cr);
    for (int i = 0, e = 0; i < n_series; i++) {
        if (!series[i].name) continue;
        double x = bx + pad + (e / lb.rows) * lb.col_w,
               y = by + pad + row / 2 - 2 + (e % lb.rows) * row;
        e++;
        if (points) {
            point_style(cr, &series[i]);
            draw_marker(cr, x + sample / 2, y, series[i].color, 4.5);
        } else {
            series_style(cr, &series[i]);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + sample, y);
            cairo_stroke(cr);
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_text_extents_t te;
        cairo_text_extents(cr, series[i].name, &te);
        cairo_move_to(cr, x + sample + 8, y - te.y_bearing - te.height / 2);
        cairo_show_text(cr, series[i].name);
    }
}

static cairo_status_t png_to_file(void *closure, const unsigned char *data, unsigned int length) {
    return fwrite(data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS
                                                      : CAIRO_STATUS_WRITE_ERROR;
}

/* fl_plot_lines, or with `points` fl_plot_scatter. */
static fl_status plot_chart(const char *path, const fl_plot_spec *spec,
                            const fl_plot_series *series, int n_series, int points, fl_err *err) {
    int W = spec->width ? spec->width : 800, H = spec->height ? spec->height : 600;
    if (W < 200 || H < 150 || W > 8000 || H > 8000)
        return fl_fail(err, FL_EINVAL, "%s: a %dx%d chart, expected 200x150 to 8000x8000", path, W,
                       H);
    if (n_series < 0 || (n_series > 0 && !series))
        return fl_fail(err, FL_EINVAL, "%s: %d series", path, n_series);
    for (int i = 0; i < n_series; i++)
        if (series[i].n < 0 || (series[i].n > 0 && (!series[i].x || !series[i].y)))
            return fl_fail(err, FL_EINVAL, "%s: series %d has %d points, or none given", path, i,
                           series[i].n);

    frame fr = {.xmin = spec->xmin, .xmax = spec->xmax, .ymin = spec->ymin, .ymax = spec->ymax};
    if (!(fr.xmin < fr.xmax)) {
        fr.xmin = INFINITY;
        fr.xmax = -INFINITY;
        for (int i = 0; i < n_series; i++) extend(series[i].x, series[i].n, &fr.xmin, &fr.xmax);
        pad_range(&fr.xmin, &fr.xmax);
    }
    if (!(fr.ymin < fr.ymax)) {
        fr.ymin = INFINITY;
        fr.ymax = -INFINITY;
        for (int i = 0; i < n_series; i++) extend(series[i].y, series[i].n, &fr.ymin, &fr.ymax);
        pad_range(&fr.ymin, &fr.ymax);
    }
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surf);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    fr.x0 = 84;
    fr.y0 = spec->title ? 48 : 20;
    fr.w = W - fr.x0 - 24;
    fr.h = H - fr.y0 - 66;
    if (spec->legend == FL_LEGEND_OUTSIDE) { /* the plot gives up the legend's width */
        legend_box lb = legend_measure(cr, fr.h, series, n_series);
        if (lb.entries) fr.w = fmax(fr.w - lb.w - 12, 40);
    }

    draw_axis(cr, &fr, 0);
    draw_axis(cr, &fr, 1);
    cairo_save(cr);
    cairo_rectangle(cr, fr.x0, fr.y0, fr.w, fr.h);
    cairo_clip(cr);
    for (int i = 0; i < n_series; i++) draw_series(cr, &fr, &series[i], points);
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_rectangle(cr, round(fr.x0) + 0.5, round(fr.y0) + 0.5, round(fr.w), round(fr.h));
    cairo_stroke(cr);
    draw_legend(cr, &fr, spec->legend, series, n_series, points);

    cairo_text_extents_t te;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 15);
    if (spec->xlabel) {
        cairo_text_extents(cr, spec->xlabel, &te);
        cairo_move_to(cr, fr.x0 + fr.w / 2 - te.x_advance / 2, H - 14);
        cairo_show_text(cr, spec->xlabel);
    }
    if (spec->ylabel) {
        cairo_text_extents(cr, spec->ylabel, &te);
        cairo_save(cr);
        cairo_translate(cr, 24, fr.y0 + fr.h / 2 + te.x_advance / 2);
        cairo_rotate(cr, -PLOT_PI / 2);
        cairo_move_to(cr, 0, 0);
        cairo_show_text(cr, spec->ylabel);
        cairo_restore(cr);
    }
    if (spec->title) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(cr, 17);
        cairo_text_extents(cr, spec->title, &te);
        cairo_move_to(cr, fr.x0 + fr.w / 2 - te.x_advance / 2, 30);
        cairo_show_text(cr, spec->title);
    }

    fl_status s = FL_OK;
    cairo_status_t cs = cairo_status(cr);
    if (cs != CAIRO_STATUS_SUCCESS) {
        s = fl_fail(err, FL_EBACKEND, "%s: cairo: %s", path, cairo_status_to_string(cs));
        goto done;
    }
    cairo_surface_flush(surf);
    fl_atomic_file af;
    s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) goto done;
    cs = cairo_surface_write_to_png_stream(surf, png_to_file, af.f);
    if (cs != CAIRO_STATUS_SUCCESS) {
        fl_atomic_abort(&af);
        s = fl_fail(err, cs == CAIRO_STATUS_WRITE_ERROR ? FL_EIO : FL_EBACKEND, "%s: cairo: %s",
                    path, cairo_status_to_string(cs));
        goto done;
    }
    s = fl_atomic_commit(&af, err);
done:
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return s;
}

fl_status fl_plot_lines(const char *path, const fl_plot_spec *spec, const fl_plot_series *series,
                        int n_series, fl_err *err) {
    return plot_chart(path, spec, series, n_series, 0, err);
}

fl_status fl_plot_scatter(const char *path, const fl_plot_spec *spec, const fl_plot_series *series,
                          int n_series, fl_err *err) {
    return plot_chart(path, spec, series, n_series, 1, err);
}

/* ------------------------------------------------------------------------------------------ */
/* ROC and PR                                                                                  */

static fl_status plot_curves(const char *path, const fl_metrics_curves *curves,
                             const char *const *class_names, int K, int roc, fl_err *err) {
    if (!curves || K != curves->K || K < 1 || K > FL_MAX_CLASSES)
        return fl_fail(err, FL_EINVAL, "%s: %d class names for curves of %d classes", path, K,
                       curves ? curves->K : 0);
    static const double diag[2] = {0, 1};
    fl_plot_series s[FL_MAX_CLASSES + 1];
    char names[FL_MAX_CLASSES][128];
    int n = 0;
    if (roc) s[n++] = (fl_plot_series){.x = diag, .y = diag, .n = 2, .color = -1, .dashed = 1};
    for (int k = 0; k < K; k++) {
        const fl_class_curves *c = &curves->cls[k];
        char cname[24];
        snprintf(cname, sizeof cname, "class %d", k);
        const char *name = class_names && class_names[k] ? class_names[k] : cname;
        double v = roc ? c->auc : c->ap;
        char val[16];
        if (isnan(v))
            snprintf(val, sizeof val, "n/a");
        else
            snprintf(val, sizeof val, "%.3f", v);
        snprintf(names[k], sizeof names[k], "%.80s (%s = %s)", name, roc ? "AUC" : "AP", val);
        s[n++] = (fl_plot_series){
            .name = names[k],
            .x = roc ? c->fpr : c->recall,
            .y = roc ? c->tpr : c->precision,
            .n = roc ? c->n_roc : c->n_pr,
            .color = k,
            .steps_post = !roc,
        };
    }
    fl_plot_spec spec = {
        .title = roc ? "ROC curves (one-vs-rest)" : "Precision-recall curves (one-vs-rest)",
        .xlabel = roc ? "False positive rate" : "Recall",
        .ylabel = roc ? "True positive rate" : "Precision",
        .xmin = -0.01,
        .xmax = 1.01,
        .ymin = -0.01,
        .ymax = 1.01,
        .legend = FL_LEGEND_AUTO,
    };
    return fl_plot_lines(path, &spec, s, n, err);
}

fl_status fl_plot_roc(const char *path, const fl_metrics_curves *curves,
                      const char *const *class_names, int K, fl_err *err) {
    return plot_curves(path, curves, class_names, K, 1, err);
}

fl_status fl_plot_pr(const char *path, const fl_metrics_curves *curves,
                     const char *const *class_names, int K, fl_err *err) {
    return plot_curves(path, curves, class_names, K, 0, err);
}
