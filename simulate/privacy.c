/* privacy.c - what DP cost each simulated hospital: the epsilon in the records of its outbox
 * log (DP-SGD, or DP-FedAvg counted by the hospital at q 1, and its noised evaluation reports),
 * gathered per round into DIR/privacy.csv (with the round's clip norm under adaptive clipping),
 * the round lines and DIR/epsilon.png.
 * Not an accountant: every number is the one the hospital's own client computed and recorded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atomic.h"
#include "../crypto/audit.h"
#include "../eval/plot.h"
#include "sim_impl.h"

void fl_sim_eps_destroy(fl_sim_eps *e) {
    free(e->eps);
    free(e->refused);
    memset(e, 0, sizeof *e);
}

/* Makes room for rounds 1..round. Returns 0 or -1 (out of memory). */
static int grow(fl_sim_eps *e, int round) {
    if (round <= e->rounds) return 0;
    int cap = e->rounds ? e->rounds : 8;
    while (cap < round) cap *= 2;
    size_t cells = (size_t)cap * (size_t)e->n;
    double *eps = realloc(e->eps, sizeof *eps * cells);
    if (eps) e->eps = eps;
    char *refused = realloc(e->refused, cells);
    if (refused) e->refused = refused;
    if (!eps || !refused) return -1;
    for (size_t i = (size_t)e->rounds * (size_t)e->n; i < cells; i++) {
        e->eps[i] = NAN;
        e->refused[i] = 0;
    }
    e->rounds = cap;
    return 0;
}

typedef struct {
    fl_sim_eps *e;
    int k, nomem;
} load_ctx;

static int on_record(const fl_audit_record *r, const char *problem, void *arg) {
    load_ctx *c = arg;
    if (problem || r->round < 1 || r->round > (1 << 20)) return 0;
    /* a masked update (secure aggregation) records the same epsilon as a plain one; a noised
     * evaluation report spends too, after its round's update (the later total wins) */
    int update = strcmp(r->kind, "update") == 0 || strcmp(r->kind, "masked_update") == 0 ||
                 strcmp(r->kind, "eval") == 0;
    int refused = strcmp(r->kind, "refused") == 0;
    if (!update && !refused) return 0;
    if (refused) { /* a refused evaluation: the round's training went on */
        char *task = fl_audit_data_get(r->data, "task");
        int eval = task && strcmp(task, "eval") == 0;
        free(task);
        if (eval) return 0;
    }
    char *v = update ? fl_audit_data_get(r->data, "epsilon_total") : NULL;
    if (update && !v) return 0; /* an update without DP */
    if (grow(c->e, (int)r->round) != 0) {
        free(v);
        c->nomem = 1;
        return 1;
    }
    size_t at = (size_t)(r->round - 1) * (size_t)c->e->n + (size_t)c->k;
    if (refused) c->e->refused[at] = 1;
    if (v) c->e->eps[at] = strcmp(v, "null") == 0 ? INFINITY : strtod(v, NULL);
    free(v);
    return 0;
}

fl_status fl_sim_eps_load(const fl_sim_layout *L, fl_sim_eps *e, fl_err *err) {
    memset(e, 0, sizeof *e);
    e->n = L->n;
    for (int k = 0; k < L->n; k++) {
        char path[FL_SIM_PATH];
        fl_sim_path(path, "%s/hospitals/hospital-%d/state/outbox.log", L->dir, k + 1);
        load_ctx c = {e, k, 0};
        fl_status s = fl_audit_foreach(path, on_record, &c, err);
        if (s == FL_ENOTFOUND) continue;
        if (s == FL_OK && c.nomem) s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        if (s != FL_OK) {
            fl_sim_eps_destroy(e);
            return s;
        }
    }
    return FL_OK;
}

double fl_sim_eps_total(const fl_sim_eps *e, int k, int round) {
    for (int t = (round < e->rounds ? round : e->rounds); t >= 1; t--) {
        double v = e->eps[(size_t)(t - 1) * (size_t)e->n + (size_t)k];
        if (!isnan(v)) return v;
    }
    return 0;
}

int fl_sim_phase_trained(const char *phase) {
    return strcmp(phase, "image") == 0 || strcmp(phase, "fusion") == 0;
}

/* DIR/epsilon.png: one line per hospital over the n_x trained rounds x, values in eps
 * (n hospitals x n_x). */
static fl_status plot(const fl_sim_layout *L, const double *x, const double *eps, int n_x,
                      fl_err *err) {
    fl_plot_series s[FL_SIM_MAX_HOSPITALS];
    char names[FL_SIM_MAX_HOSPITALS][32];
    for (int k = 0; k < L->n; k++) {
        snprintf(names[k], sizeof names[k], "hospital-%d", k + 1);
        s[k] = (fl_plot_series){.name = names[k],
                                .x = x,
                                .y = eps + (size_t)k * (size_t)n_x,
                                .n = n_x,
                                .color = k,
                                .markers = 1};
    }
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/epsilon.png", L->dir);
    fl_plot_spec spec = {.title = "Privacy spent: epsilon of each hospital",
                         .xlabel = "round",
                         .ylabel = "epsilon",
                         .legend = L->n > 8 ? FL_LEGEND_OUTSIDE : FL_LEGEND_AUTO};
    return fl_plot_lines(path, &spec, s, L->n, err);
}

fl_status fl_sim_eps_write(const fl_sim_layout *L, const fl_sim_rounds *r, const fl_sim_eps *e,
                           int draw, fl_err *err) {
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/privacy.csv", L->dir);
    size_t cells = (size_t)(r->n_rows ? r->n_rows : 1) * (size_t)(L->n + 1);
    double *x = malloc(sizeof *x * cells), *eps = x + (r->n_rows ? r->n_rows : 1);
    if (!x) return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    int n_x = 0;
    if (s == FL_OK) {
        fprintf(af.f, "round,phase,hospital,epsilon_total%s\n", r->has_clip ? ",clip_norm" : "");
        for (int i = 0; i < r->n_rows; i++) {
            const fl_sim_row *w = &r->rows[i];
            if (!fl_sim_phase_trained(w->phase)) continue;
            x[n_x] = w->round;
            char clip[40] = "";
            if (r->has_clip && isfinite(w->clip_norm))
                snprintf(clip, sizeof clip, ",%.9g", w->clip_norm);
            else if (r->has_clip)
                snprintf(clip, sizeof clip, ",");
            for (int k = 0; k < L->n; k++) {
                double v = fl_sim_eps_total(e, k, w->round);
                eps[(size_t)k * (size_t)r->n_rows + (size_t)n_x] = isfinite(v) ? v : NAN;
                if (isfinite(v))
                    fprintf(af.f, "%d,%s,hospital-%d,%.6f%s\n", w->round, w->phase, k + 1, v, clip);
                else
                    fprintf(af.f, "%d,%s,hospital-%d,inf%s\n", w->round, w->phase, k + 1, clip);
            }
            n_x++;
        }
        s = fl_atomic_commit(&af, err);
    }
    /* the series are rows of eps with a stride of r->n_rows: pack them to a stride of n_x */
    for (int k = 1; k < L->n && n_x < r->n_rows; k++)
        memmove(eps + (size_t)k * (size_t)n_x, eps + (size_t)k * (size_t)r->n_rows,
                sizeof *eps * (size_t)n_x);
    if (s == FL_OK && draw && n_x > 0) s = plot(L, x, eps, n_x, err);
    free(x);
    return s;
}
