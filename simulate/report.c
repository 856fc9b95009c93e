/* report.c - what the simulator tells: the server's rounds.csv read back, one line per committed
 * round, and at the end the study's files gathered into DIR, the audit log verified, the AUC
 * and loss charts and a summary. Not the source of any number: every figure comes from the
 * server's rounds.csv, which it rebuilds from its journal. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../crypto/audit.h"
#include "../eval/plot.h"
#include "../fed/plan.h"
#include "sim_impl.h"

double fl_sim_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- rounds.csv ---- */

enum { C_ROUND, C_PHASE, C_PARTICIPANTS, C_LOSS, C_MACRO, C_CLIP, N_FIXED };
static const char *const fixed_columns[N_FIXED] = {"round", "phase",     "participants",
                                                   "loss",  "macro_auc", "clip_norm"};

/* Splits line (modified in place, newline removed) at commas into at most cap fields. Returns
 * the number of fields. */
static int split_csv(char *line, char **field, int cap) {
    line[strcspn(line, "\r\n")] = '\0';
    int n = 0;
    for (char *p = line; n < cap;) {
        field[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

/* A cell as a number: NaN when empty; -1 when it is not a number. */
static int parse_cell(const char *s, double *out) {
    if (!*s) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || *end ? -1 : 0;
}

void fl_sim_rounds_destroy(fl_sim_rounds *r) {
    free(r->rows);
    free(r->auc);
    free(r->class_names);
    memset(r, 0, sizeof *r);
}

/* Reads the header: column index of each fixed column (-1 if absent) and the auc_<class>
 * columns, whose names go to r->class_names and indices to auc_col. Returns 0 or -1. */
static int parse_header(char *line, fl_sim_rounds *r, int col[N_FIXED], int *auc_col) {
    char *field[N_FIXED + FL_SIM_MAX_HOSPITALS + 64];
    int n = split_csv(line, field, (int)(sizeof field / sizeof *field));
    for (int j = 0; j < N_FIXED; j++) col[j] = -1;
    r->class_names = calloc((size_t)n, sizeof *r->class_names);
    if (!r->class_names) return -1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < N_FIXED; j++)
            if (strcmp(field[i], fixed_columns[j]) == 0) col[j] = i;
        if (strncmp(field[i], "auc_", 4) == 0) {
            snprintf(r->class_names[r->n_classes], sizeof *r->class_names, "%s", field[i] + 4);
            auc_col[r->n_classes++] = i;
        }
    }
    r->has_clip = col[C_CLIP] >= 0;
    return col[C_ROUND] >= 0 && col[C_PHASE] >= 0 ? 0 : -1;
}

/* Appends one data row. Returns 0, or -1 (what is wrong in *why). */
static int parse_row(char *line, fl_sim_rounds *r, const int col[N_FIXED], const int *auc_col,
                     const char **why) {
    char *field[N_FIXED + FL_SIM_MAX_HOSPITALS + 64];
    int n = split_csv(line, field, (int)(sizeof field / sizeof *field));
    fl_sim_row *row = &r->rows[r->n_rows];
    double v[N_FIXED];
    for (int j = 0; j < N_FIXED; j++) {
        v[j] = NAN;
        if (col[j] < 0 || j == C_PHASE) continue;
        if (col[j] >= n || parse_cell(field[col[j]], &v[j]) != 0) {
            *why = fixed_columns[j];
            return -1;
        }
    }
    if (!(v[C_ROUND] >= 1) || col[C_PHASE] >= n) {
        *why = "round";
        return -1;
    }
    row->round = (int)v[C_ROUND];
    row->participants = isfinite(v[C_PARTICIPANTS]) ? (int)v[C_PARTICIPANTS] : 0;
    snprintf(row->phase, sizeof row->phase, "%s", field[col[C_PHASE]]);
    /* Only training phases are evaluated: whatever a statistics or features row holds is
     * not a measurement of its own. */
    int evaluated = strcmp(row->phase, "statistics") != 0 && strcmp(row->phase, "features") != 0;
    row->loss = evaluated ? v[C_LOSS] : NAN;
    row->macro_auc = evaluated ? v[C_MACRO] : NAN;
    row->clip_norm = v[C_CLIP];
    for (int k = 0; k < r->n_classes; k++) {
        double *a = &r->auc[(size_t)r->n_rows * (size_t)r->n_classes + (size_t)k];
        if (auc_col[k] >= n || parse_cell(field[auc_col[k]], a) != 0) {
            *why = "auc";
            return -1;
        }
        if (!evaluated) *a = NAN;
    }
    r->n_rows++;
    return 0;
}

fl_status fl_sim_rounds_load(const char *path, fl_sim_rounds *r, fl_err *err) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", path,
                       strerror(errno));
    fl_status s = FL_OK;
    char line[8192];
    int col[N_FIXED], auc_col[N_FIXED + FL_SIM_MAX_HOSPITALS + 64], cap = 0, lineno = 1;
    const char *why = "";
    if (!fgets(line, sizeof line, f) || parse_header(line, r, col, auc_col) != 0) {
        s = fl_fail(err, FL_EFORMAT, "%s:1: not a rounds.csv header (round,phase,...)", path);
        goto done;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n' || line[0] == '\0') continue;
        if (r->n_rows == cap) {
            cap = cap ? 2 * cap : 16;
            fl_sim_row *rows = realloc(r->rows, sizeof *rows * (size_t)cap);
            if (rows) r->rows = rows;
            double *auc = realloc(r->auc, sizeof *auc * (size_t)cap * (size_t)(r->n_classes + 1));
            if (auc) r->auc = auc;
            if (!rows || !auc) {
                s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
        }
        if (parse_row(line, r, col, auc_col, &why) != 0) {
            s = fl_fail(err, FL_EFORMAT, "%s:%d: bad %s cell", path, lineno, why);
            goto done;
        }
    }
    if (ferror(f)) s = fl_fail(err, FL_EIO, "%s: read failed", path);
done:
    fclose(f);
    if (s != FL_OK) fl_sim_rounds_destroy(r);
    return s;
}

int fl_sim_rounds_last(const fl_sim_rounds *r) {
    int last = 0;
    for (int i = 0; i < r->n_rows; i++)
        if (r->rows[i].round > last) last = r->rows[i].round;
    return last;
}

void fl_sim_rounds_print(const fl_sim_rounds *r, const fl_sim_eps *eps, int *printed, FILE *out) {
    int hi = *printed;
    for (int i = 0; i < r->n_rows; i++) {
        const fl_sim_row *w = &r->rows[i];
        if (w->round <= *printed) continue;
        fprintf(out, "round %-3d %-10s %2d hospital%s", w->round, w->phase, w->participants,
                w->participants == 1 ? " " : "s");
        if (isfinite(w->loss)) fprintf(out, "  loss %.3f", w->loss);
        if (isfinite(w->macro_auc)) fprintf(out, "  macro AUC %.3f", w->macro_auc);
        if (isfinite(w->clip_norm)) fprintf(out, "  C %.4g", w->clip_norm);
        if (eps && fl_sim_phase_trained(w->phase)) {
            fputs("  \u03b5", out);
            for (int k = 0; k < eps->n; k++) {
                int refused = w->round <= eps->rounds &&
                              eps->refused[(size_t)(w->round - 1) * (size_t)eps->n + (size_t)k];
                fprintf(out, " %d:%.2f%s", k + 1, fl_sim_eps_total(eps, k, w->round),
                        refused ? "(refused)" : "");
            }
        }
        fputc('\n', out);
        if (w->round > hi) hi = w->round;
    }
    *printed = hi;
    fflush(out);
}

/* ---- the charts ---- */

/* Whether any of the n values is a number. */
static int any_finite(const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) return 1;
    return 0;
}

#define MAX_PHASES 4 /* trained phases told apart in a chart */

/* The metric of each row (loss or macro AUC) split by phase, one series per phase that has a
 * value, in order of appearance: ys[j * n + i] is row i's value when it is of phase j, NaN
 * otherwise. series[j] gets the name "<phase> <what>" (in names) and the colour j. Returns the
 * number of series. */
static int split_by_phase(const fl_sim_rounds *r, const double *x, int loss, double *ys,
                          char names[MAX_PHASES][64], fl_plot_series *series) {
    int n = r->n_rows, np = 0;
    const char *phase[MAX_PHASES];
    for (int i = 0; i < n; i++) {
        const fl_sim_row *w = &r->rows[i];
        double v = loss ? w->loss : w->macro_auc;
        if (!isfinite(v)) continue;
        int j = 0;
        while (j < np && strcmp(phase[j], w->phase) != 0) j++;
        if (j == MAX_PHASES) continue;
        if (j == np) {
            phase[j] = w->phase;
            snprintf(names[j], 64, "%s %s", w->phase, loss ? "loss" : "macro AUC");
            for (int t = 0; t < n; t++) ys[j * n + t] = NAN;
            series[j] = (fl_plot_series){
                .name = names[j], .x = x, .y = ys + j * n, .n = n, .color = j, .markers = 1};
            np++;
        }
        ys[j * n + i] = v;
    }
    return np;
}

/* DIR/auc.png (the macro AUC of each trained phase, each class's AUC dashed) and DIR/loss.png
 * (the loss of each trained phase), one point per evaluated round. */
static fl_status draw_charts(const fl_sim_layout *L, const fl_sim_rounds *r, fl_err *err) {
    int n = r->n_rows, K = r->n_classes < 32 ? r->n_classes : 32;
    double *x = malloc(sizeof *x * (size_t)(n ? n : 1) * (size_t)(1 + MAX_PHASES + K));
    if (!x) return fl_fail(err, FL_ENOMEM, "out of memory");
    double *ys = x + n, *auc = ys + MAX_PHASES * n; /* MAX_PHASES x n, K x n */
    for (int i = 0; i < n; i++) {
        x[i] = r->rows[i].round;
        for (int k = 0; k < K; k++)
            auc[k * n + i] = r->auc[(size_t)i * (size_t)r->n_classes + (size_t)k];
    }
    fl_plot_series s[MAX_PHASES + 32];
    char names[MAX_PHASES][64], class_names[32][80];
    char path[FL_SIM_PATH];
    fl_status st = FL_OK;
    int ns = split_by_phase(r, x, 0, ys, names, s);
    for (int k = 0; k < K && ns > 0; k++) {
        snprintf(class_names[k], sizeof class_names[k], "AUC %s", r->class_names[k]);
        if (any_finite(auc + k * n, n))
            s[ns++] = (fl_plot_series){.name = class_names[k],
                                       .x = x,
                                       .y = auc + k * n,
                                       .n = n,
                                       .color = MAX_PHASES + k,
                                       .dashed = 1};
    }
    if (ns > 0) {
        fl_sim_path(path, "%s/auc.png", L->dir);
        fl_plot_spec spec = {
            .title = "Federated evaluation: AUC per round", .xlabel = "round", .ylabel = "AUC"};
        st = fl_plot_lines(path, &spec, s, ns, err);
    }
    ns = split_by_phase(r, x, 1, ys, names, s);
    if (st == FL_OK && ns > 0) {
        fl_sim_path(path, "%s/loss.png", L->dir);
        fl_plot_spec spec = {
            .title = "Federated evaluation: loss per round", .xlabel = "round", .ylabel = "loss"};
        st = fl_plot_lines(path, &spec, s, ns, err);
    }
    free(x);
    return st;
}

/* ---- the end of a run ---- */

/* Copies the server's results into DIR: rounds.csv, audit.log and model.h5 must be there,
 * rnet.h5 when the plan trained one. */
static fl_status gather(const fl_sim_layout *L, fl_err *err) {
    static const char *const files[] = {"rounds.csv", "audit.log", "model.h5", "rnet.h5"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char src[FL_SIM_PATH], dst[FL_SIM_PATH];
        fl_sim_path(src, "%s/server/state/%s", L->dir, files[i]);
        fl_sim_path(dst, "%s/%s", L->dir, files[i]);
        fl_status s = fl_sim_copy_file(src, dst, err);
        int optional = i == 3 && !(L->phases & (1u << FL_PHASE_IMAGE));
        if (s == FL_ENOTFOUND && optional) continue;
        if (s == FL_ENOTFOUND)
            return fl_fail(err, FL_EFORMAT, "the server finished without writing %s", src);
        if (s != FL_OK) return s;
    }
    return FL_OK;
}

/* Verifies DIR/audit.log with DIR/server.pub and prints the verdict. */
static fl_status verify_audit(const fl_sim_layout *L, fl_err *err) {
    char log[FL_SIM_PATH], pub_path[FL_SIM_PATH];
    fl_sim_path(log, "%s/audit.log", L->dir);
    fl_sim_path(pub_path, "%s/server.pub", L->dir);
    fl_sign_key *pub = NULL;
    fl_status s = fl_sign_key_load_public(pub_path, &pub, err);
    if (s != FL_OK) return s;
    fl_audit_report rep;
    s = fl_audit_verify(log, pub, &rep, err);
    fl_sign_key_free(pub);
    if (s != FL_OK) return s;
    if (rep.bad_line)
        return fl_fail(err, FL_EFORMAT, "%s: BROKEN at line %lld: %s", log, (long long)rep.bad_line,
                       rep.problem);
    printf("audit log verified with server.pub: intact, %lld records, %lld signed checkpoints",
           (long long)rep.records, (long long)rep.checkpoints);
    if (rep.unsigned_records)
        printf(" (%lld records after the last checkpoint)", (long long)rep.unsigned_records);
    printf("\n");
    return FL_OK;
}

/* The last evaluated row of phase, or NULL. */
static const fl_sim_row *final_of(const fl_sim_rounds *r, const char *phase) {
    const fl_sim_row *last = NULL;
    for (int i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i].phase, phase) == 0 && isfinite(r->rows[i].macro_auc))
            last = &r->rows[i];
    return last;
}

fl_status fl_sim_finish(const fl_sim_layout *L, int *printed, double t0, fl_err *err) {
    fl_status s = gather(L, err);
    if (s != FL_OK) return s;
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/rounds.csv", L->dir);
    fl_sim_rounds r;
    if ((s = fl_sim_rounds_load(path, &r, err)) != FL_OK) return s;
    fl_sim_eps eps = {0};
    if (L->dp) s = fl_sim_eps_load(L, &eps, err);
    if (s == FL_OK) fl_sim_rounds_print(&r, L->dp ? &eps : NULL, printed, stdout);
    if (s == FL_OK) s = verify_audit(L, err);
    if (s == FL_OK) s = draw_charts(L, &r, err);
    if (s == FL_OK && L->dp) s = fl_sim_eps_write(L, &r, &eps, 1, err);
    if (s == FL_OK && L->dp)
        for (int k = 0; k < L->n; k++)
            printf("hospital-%d spent \u03b5 %.2f (delta %g)\n", k + 1,
                   fl_sim_eps_total(&eps, k, fl_sim_rounds_last(&r)), FL_SIM_DELTA);
    fl_sim_eps_destroy(&eps);
    if (s == FL_OK) {
        static const char *const trained[] = {"image", "fusion"};
        for (int i = 0; i < 2; i++) {
            const fl_sim_row *w = final_of(&r, trained[i]);
            if (w)
                printf("final %s macro AUC %.3f (round %d)\n", trained[i], w->macro_auc, w->round);
        }
        double wall = fl_sim_now() - t0;
        int charts = 0;
        for (int i = 0; i < r.n_rows; i++) charts |= isfinite(r.rows[i].macro_auc);
        printf("%d rounds in %.0f min %02.0f s; results in %s: rounds.csv audit.log server.pub "
               "model.h5%s%s%s\n",
               fl_sim_rounds_last(&r), floor(wall / 60), fmod(wall, 60), L->dir,
               L->phases & (1u << FL_PHASE_IMAGE) ? " rnet.h5" : "",
               charts ? " auc.png loss.png" : "", L->dp ? " privacy.csv epsilon.png" : "");
    }
    fl_sim_rounds_destroy(&r);
    return s;
}
