/* plot.h - PNG charts drawn with cairo: a generic plotter of named (x, y) series, as lines or
 * as scatter points, with axes, ticks, grid, title and legend, and the ROC and precision-recall
 * charts built on it. Not a plotting library: linear axes only, no subplots, no fonts beyond
 * cairo's toy text API. */
#ifndef FL_PLOT_H
#define FL_PLOT_H

#include "../common/status.h"
#include "metrics.h"

/* Where the legend goes; FL_LEGEND_AUTO picks the corner that hides the least of the lines
 * (preferring lower right, upper right, lower left, upper left when several are clear). */
typedef enum {
    FL_LEGEND_AUTO = 0,
    FL_LEGEND_UPPER_RIGHT,
    FL_LEGEND_UPPER_LEFT,
    FL_LEGEND_LOWER_RIGHT,
    FL_LEGEND_LOWER_LEFT,
    FL_LEGEND_NONE,
    FL_LEGEND_OUTSIDE, /* right of the plot area (which narrows), in as many columns as needed */
} fl_legend_pos;

/* One line. Points with a NaN coordinate break the line. The caller keeps the arrays. */
typedef struct {
    const char *name; /* legend text; NULL: no legend entry */
    const double *x;  /* n */
    const double *y;  /* n */
    int n;
    int color;      /* index into the palette (tab10, then repeats dashed); -1: grey */
    int dashed;     /* draw dashed (reference lines) */
    int steps_post; /* draw as matplotlib's drawstyle="steps-post": y[i] holds until x[i+1] */
    int markers;    /* also draw a dot at every point */
} fl_plot_series;

/* A chart. Ranges with min >= max (e.g. both 0) are taken from the data, padded by 4%. */
typedef struct {
    const char *title;  /* NULL: none */
    const char *xlabel; /* NULL: none */
    const char *ylabel; /* NULL: none */
    double xmin, xmax, ymin, ymax;
    int width, height; /* pixels; 0: 800 x 600 */
    fl_legend_pos legend;
} fl_plot_spec;

/* Draws the series (n_series >= 0) into a PNG at path, written atomically. Returns FL_OK,
 * FL_EINVAL (a series with n < 0 or missing points, a size below 200 x 150 or above 8000 x 8000),
 * FL_EIO or FL_EBACKEND (cairo failed; its message is kept); path is untouched on failure. */
fl_status fl_plot_lines(const char *path, const fl_plot_spec *spec, const fl_plot_series *series,
                        int n_series, fl_err *err);

/* Draws each series as unconnected points of its colour (dashed, steps_post and markers are
 * ignored; past ten series the palette repeats as open circles, then filled and open squares),
 * with the axes, title and legend of fl_plot_lines; points with a NaN coordinate are skipped.
 * Series are drawn in order, so later ones lie on top. Failures as fl_plot_lines. */
fl_status fl_plot_scatter(const char *path, const fl_plot_spec *spec, const fl_plot_series *series,
                          int n_series, fl_err *err);

/* The ROC curves of curves->K classes, one colour per class, legend "<class> (AUC = 0.873)"
 * ("AUC n/a" when undefined), the chance diagonal dashed, axes [0, 1], 800 x 600. class_names
 * has K entries (NULL entries print as "class <k>"). Failures as fl_plot_lines, FL_EINVAL when
 * K differs from curves->K. */
fl_status fl_plot_roc(const char *path, const fl_metrics_curves *curves,
                      const char *const *class_names, int K, fl_err *err);
/* The precision-recall curves likewise (drawn as steps, whose area is the AP), legend
 * "<class> (AP = 0.812)", axes [0, 1]. */
fl_status fl_plot_pr(const char *path, const fl_metrics_curves *curves,
                     const char *const *class_names, int K, fl_err *err);

#endif
