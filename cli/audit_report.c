/* audit_report.c - `fedlung audit report`: the server's audit log and the hospitals' outbox logs,
 * each verified, rendered as one self-contained HTML page for privacy officers: inline CSS and
 * SVG, nothing loaded, nothing linked, every string from a log escaped. Not a verifier of its
 * own: crypto/audit*.c decides what is intact, and only records a verified checkpoint signs are
 * shown. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/atomic.h"
#include "../crypto/audit_report.h"
#include "audit_cmds.h"
#include "cli.h"

#define MAX_LOGS (1 + FL_AUDIT_MAX_OUTBOX)

/* One signed record, copied out of its log. */
typedef struct {
    int src; /* 0: the server log, i > 0: outbox log i */
    int64_t line, round, checkpoint;
    char *time, *kind, *actor, *data;
} rec;

/* One log and what verification found. */
typedef struct {
    const char *path;
    char key_id[FL_SHA256_HEX];
    fl_audit_report v;
    int64_t shown;                    /* its records in the report */
    int64_t incl_checked, incl_found; /* outbox logs: records the server should have, found */
} src_log;

typedef struct {
    rec *r;
    size_t n, cap;
    src_log logs[MAX_LOGS];
    int n_logs;
    int cur;           /* the log being read */
    const char **hosp; /* the actors that are hospitals, by name (pointing into r) */
    int n_hosp;
    int64_t *rounds; /* the rounds in which a hospital spent privacy budget, ascending */
    size_t n_rounds;
    double eps_top; /* the largest finite epsilon_total or epsilon_max shown */
    int oom;        /* find_hospitals() ran out of memory */
    FILE *f;
} report;

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */

static int keep(const fl_audit_record *r, const fl_audit_proof *proof, void *ctx) {
    report *R = ctx;
    if (!proof->checkpoint) return 0; /* not signed: left out */
    if (R->n == R->cap) {
        size_t cap = R->cap ? 2 * R->cap : 256;
        void *grown = realloc(R->r, cap * sizeof *R->r);
        if (!grown) return -1;
        R->r = grown;
        R->cap = cap;
    }
    rec *x = &R->r[R->n++];
    *x = (rec){R->cur,          r->line,         r->round,         proof->checkpoint,
               strdup(r->time), strdup(r->kind), strdup(r->actor), strdup(r->data)};
    R->logs[R->cur].shown++;
    return x->time && x->kind && x->actor && x->data ? 0 : -1;
}

static int count_included(const fl_audit_inclusion *inc, void *ctx) {
    src_log *L = ctx;
    L->incl_checked++;
    L->incl_found += inc->status == FL_AUDIT_INCLUDED;
    return 0;
}

/* Reads log i (keys[i]) into R; the outbox logs are also checked against the server log. */
static fl_status read_log(report *R, int i, fl_sign_key **keys, fl_err *err) {
    src_log *L = &R->logs[i];
    R->cur = i;
    fl_sign_key_id(keys[i], L->key_id);
    fl_status s = fl_audit_walk(L->path, keys[i], keep, R, &L->v, err);
    if (s != FL_OK || i == 0) return s;
    fl_audit_report a, b;
    return fl_audit_check_inclusion(R->logs[0].path, keys[0], L->path, keys[i], count_included, L,
                                    &a, &b, err);
}

#define is_hospital(x) (strcmp((x)->actor, "server") != 0 && strcmp((x)->actor, "audit") != 0)
static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* R->hosp: every actor but "server" and "audit", by name, each once; room for R->rounds. */
static void find_hospitals(report *R) {
    size_t n = 0;
    R->hosp = calloc(R->n + 1, sizeof *R->hosp);
    R->rounds = calloc(R->n + 1, sizeof *R->rounds);
    if (!R->hosp || !R->rounds) R->oom = 1;
    for (size_t i = 0; !R->oom && i < R->n; i++)
        if (is_hospital(&R->r[i])) R->hosp[n++] = R->r[i].actor;
    if (n) qsort(R->hosp, n, sizeof *R->hosp, by_name);
    for (size_t i = 0; i < n; i++)
        if (!R->n_hosp || strcmp(R->hosp[R->n_hosp - 1], R->hosp[i]) != 0)
            R->hosp[R->n_hosp++] = R->hosp[i];
}

/* ------------------------------------------------------------------------------------------ */
/* HTML                                                                                        */

/* Writes s as HTML text (also fit for a quoted attribute): markup characters as references,
 * and '/' and '=' too, so that no text from a log can ever read as a URL or an attribute;
 * control characters as '?'. */
static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (strchr("&<>\"'/=", c))
            fprintf(f, "&#%d;", c);
        else
            fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
}

#define get(x, name) fl_audit_data_get((x)->data, name) /* malloc'd, or NULL */

/* <td class="cls"> (none when cls is NULL) with s escaped, or with a dash when s is NULL. */
static void td(FILE *f, const char *cls, const char *s) {
    fprintf(f, cls ? "<td class=\"%s\">" : "<td>", cls);
    esc(f, s ? s : "\u2013");
    fputs("</td>", f);
}

/* <td> with member name of x's data (x may be NULL), or with `none` when it is missing. With
 * num 1, a number is shown to 6 digits; with num -1, a negative one (the server's "none") is
 * shown as `none`. */
static void td_member(FILE *f, const rec *x, const char *name, const char *none, int num) {
    char *v = x ? get(x, name) : NULL, *end = NULL, text[32];
    double d = v ? strtod(v, &end) : 0;
    const char *show = v;
    if (!v || (num < 0 && end != v && d < 0))
        show = none;
    else if (num > 0 && end != v && !*end)
        snprintf(text, sizeof text, "%.6g", d), show = text;
    td(f, num ? "num" : NULL, show);
    free(v);
}

/* <h2>title</h2> and a table's header row of the columns in cols, separated by '|'. */
static void table_head(FILE *f, const char *title, const char *cols) {
    fprintf(f, "<h2>%s</h2><table><tr><th>", title);
    for (; *cols; cols++) fputs(*cols == '|' ? "</th><th>" : (char[2]){*cols, 0}, f);
    fputs("</th></tr>\n", f);
}

/* Whether kind is one of the kinds in list, "|a|b|". */
static int kind_in(const char *kind, const char *list) {
    const char *p = strstr(list, kind);
    return p && p[-1] == '|' && p[strlen(kind)] == '|';
}

/* The actors of the server's records of the kinds in list in round, comma-separated, as a
 * <td>. */
static void td_actors(FILE *f, const report *R, int64_t round, const char *list) {
    int n = 0;
    fputs("<td>", f);
    for (size_t i = 0; i < R->n; i++) {
        const rec *x = &R->r[i];
        if (x->src == 0 && x->round == round && kind_in(x->kind, list)) {
            fputs(n++ ? ", " : "", f);
            esc(f, x->actor);
        }
    }
    fputs("</td>", f);
}

static const char css[] =
    "body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}h1{font"
    "-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}table{border-"
    "collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:"
    "left;vertical-align:top}th{background:#f2f2f2}td.num{text-align:right}.ok{color:#176117;font"
    "-weight:bold}.bad{color:#b00020;font-weight:bold}.meta{color:#666}.hash{font-family:"
    "monospace}svg text{font-size:12px;fill:#333}td:first-child{white-space:nowrap}";

/* The first (last: the last) record of kind by actor (NULL: anyone) in log src (src < 0: in
 * any outbox log), or NULL. */
static const rec *find(const report *R, int src, const char *kind, const char *actor, int last) {
    const rec *found = NULL;
    for (size_t i = 0; i < R->n && !(found && !last); i++)
        if ((src < 0 ? R->r[i].src > 0 : R->r[i].src == src) && !strcmp(R->r[i].kind, kind) &&
            (!actor || !strcmp(R->r[i].actor, actor)))
            found = &R->r[i];
    return found;
}

/* How many records of kind by actor (NULL: anyone) log src has (src < 0: the outbox logs). */
static size_t count_of(const report *R, int src, const char *kind, const char *actor) {
    size_t n = 0;
    for (size_t i = 0; i < R->n; i++)
        n += (src < 0 ? R->r[i].src > 0 : R->r[i].src == src) && !strcmp(R->r[i].kind, kind) &&
             (!actor || !strcmp(R->r[i].actor, actor));
    return n;
}

static void section_study(const report *R) {
    FILE *f = R->f;
    const rec *start = find(R, 0, "server_start", NULL, 1), *first = NULL, *last = NULL;
    for (size_t i = 0; i < R->n; i++)
        if (R->r[i].src == 0) last = &R->r[i], first = first ? first : &R->r[i];
    const char *kinds[] = {"study_done", "complete",      "study_failed",
                           "failed",     "study_stopped", "stopped"};
    const rec *end = NULL;
    int k = 0;
    while (k < 6 && !(end = find(R, 0, kinds[k], NULL, 1))) k += 2;
    char *plan = start ? get(start, "plan_sha256") : NULL,
         *listen = start ? get(start, "listen") : NULL;
    char status[160] = "not finished, or the server did not get to say so", rounds[24], resumed[24];
    char span[64];
    if (end) snprintf(status, sizeof status, "%s (%s)", kinds[k + 1], end->time);
    snprintf(span, sizeof span, "%s to %s", first ? first->time : "-", last ? last->time : "-");
    snprintf(rounds, sizeof rounds, "%zu", count_of(R, 0, "round_committed", NULL));
    snprintf(resumed, sizeof resumed, "%zu", count_of(R, 0, "resume", NULL));
    const char *rows[][2] = {
        {"Study plan (SHA-256)", plan ? plan : "unknown: no server_start record"},
        {"Server", listen},
        {"Signed records (UTC)", span},
        {"Status", status},
        {"Rounds committed", rounds},
        {"Server restarts", resumed}};
    fputs("<h2>Study</h2><table>", f);
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
        fprintf(f, "<tr><th>%s</th>", rows[r][0]), td(f, NULL, rows[r][1]), fputs("</tr>", f);
    fputs("</table>\n", f);
    free(plan), free(listen);
}

static void section_verification(const report *R) {
    FILE *f = R->f;
    table_head(f, "Verification", "Log|File|Key id|Status|Records shown|In the server log");
    for (int i = 0; i < R->n_logs; i++) {
        const src_log *L = &R->logs[i];
        const fl_audit_report *v = &L->v;
        const rec *own = NULL; /* an outbox log's first record of its hospital */
        for (size_t k = 0; i && !own && k < R->n; k++)
            if (R->r[k].src == i && is_hospital(&R->r[k])) own = &R->r[k];
        fputs(i ? "<tr><td>outbox of " : "<tr><td>server", f);
        esc(f, own ? own->actor : "");
        fputs("</td>", f);
        td(f, NULL, L->path);
        fprintf(f,
                "<td class=\"hash\">%.16s\u2026</td><td data-log=\"%d\" data-status=\"%s\" "
                "class=\"%s\">",
                L->key_id, i, v->bad_line ? "broken" : "intact", v->bad_line ? "bad" : "ok");
        if (v->bad_line) {
            fprintf(f, "BROKEN at line %" PRId64 ": ", v->bad_line);
            esc(f, v->problem);
            fputs(". Records from there on are not shown.", f);
        } else {
            fprintf(f, "intact: %" PRId64 " records, %" PRId64 " signed checkpoints", v->records,
                    v->checkpoints);
            if (v->last_checkpoint_seq)
                fprintf(f, "; last checkpoint line %" PRId64 ", sha256 %.16s\u2026",
                        v->last_checkpoint_seq, v->last_checkpoint);
        }
        if (v->unsigned_records)
            fprintf(f,
                    " (%" PRId64 " record%s after the last checkpoint, not signed yet: not shown)",
                    v->unsigned_records, v->unsigned_records == 1 ? "" : "s");
        fprintf(f, "</td><td class=\"num\">%" PRId64 "</td>", L->shown);
        if (i == 0)
            td(f, NULL, NULL);
        else
            fprintf(f, "<td class=\"%s\">%" PRId64 " of %" PRId64 " included</td>",
                    L->incl_found == L->incl_checked ? "ok" : "bad", L->incl_found,
                    L->incl_checked);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void section_rounds(const report *R) {
    FILE *f = R->f;
    table_head(f, "Rounds",
               "Round|Phase|Participants|Updates from|Dropped or refused|Evaluated by|Macro AUC|"
               "Loss|Model SHA-256|Signed at line");
    for (size_t i = 0; i < R->n; i++) {
        const rec *x = &R->r[i];
        if (x->src != 0 || strcmp(x->kind, "round_committed") != 0) continue;
        fprintf(f, "<tr><td class=\"num\">%" PRId64 "</td>", x->round);
        td_member(f, x, "phase", "?", 0);
        td_member(f, x, "participants", "?", 1);
        td_actors(f, R, x->round, "|update_accepted|");
        td_actors(f, R, x->round, "|dropped|refused|");
        td_actors(f, R, x->round, "|evaluation|");
        td_member(f, x, "macro_auc", "\u2013", -1);
        td_member(f, x, "loss", "\u2013", -1);
        char *sha = get(x, "model_sha256");
        if (sha && strlen(sha) > 15) strcpy(sha + 12, "\u2026");
        td(f, "hash", sha);
        fprintf(f, "<td class=\"num\">%" PRId64 "</td></tr>\n", x->checkpoint);
        free(sha);
    }
    fputs("</table>\n", f);
}

static void section_participants(const report *R) {
    FILE *f = R->f;
    table_head(f, "Participants",
               "Hospital|First joined|Patients|Joins|Updates accepted|Updates rejected|Dropped|"
               "Refusals (server log)|Refusals (outbox log)");
    for (int h = 0; h < R->n_hosp; h++) {
        const char *who = R->hosp[h];
        const rec *join = find(R, 0, "join", who, 0);
        fputs("<tr>", f);
        td(f, NULL, who);
        td(f, NULL, join ? join->time : "never");
        td_member(f, find(R, 0, "join", who, 1), "patients", "\u2013", 1);
        fprintf(f,
                "<td class=\"num\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td>"
                "<td class=\"num\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td>"
                "</tr>\n",
                count_of(R, 0, "join", who), count_of(R, 0, "update_accepted", who),
                count_of(R, 0, "update_rejected", who), count_of(R, 0, "dropped", who),
                count_of(R, 0, "refused", who), count_of(R, -1, "refused", who));
    }
    fputs("</table>\n", f);
}

/* ------------------------------------------------------------------------------------------ */
/* privacy                                                                                     */

/* Whether x spent privacy budget by who's account: a DP record (with epsilon_total) of who's,
 * from an outbox log (from_outbox) or the server log. A refusal spent nothing: its
 * epsilon_total is what the round would have brought. */
static int spends(const rec *x, const char *who, int from_outbox) {
    return (x->src > 0) == from_outbox && !strcmp(x->actor, who) && strcmp(x->kind, "refused") &&
           strstr(x->data, "\"epsilon_total\":");
}

/* Whether an outbox log has a record of who's that spends: then only they count for who. */
static int outbox_spends(const report *R, const char *who) {
    for (size_t i = 0; i < R->n; i++)
        if (spends(&R->r[i], who, 1)) return 1;
    return 0;
}

/* who's spending record in round (the last of that round; the last of all when round < 0),
 * from the outbox logs when they have one of who's, else from the server log; or NULL. */
static const rec *spend(const report *R, const char *who, int64_t round) {
    int ob = outbox_spends(R, who);
    for (size_t i = R->n; i-- > 0;)
        if ((round < 0 || R->r[i].round == round) && spends(&R->r[i], who, ob)) return &R->r[i];
    return NULL;
}

/* A number of x's data (x may be NULL), or NaN (also for null, an infinite epsilon). */
static double value(const rec *x, const char *name) {
    char *v = x ? get(x, name) : NULL;
    double e = v && strcmp(v, "null") != 0 ? atof(v) : NAN;
    free(v);
    return isfinite(e) ? e : NAN;
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static int by_round(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Fills R->rounds (room for R->n) and R->eps_top. */
static void spend_rounds(report *R) {
    size_t n = 0;
    for (int h = 0; h < R->n_hosp; h++) {
        int ob = outbox_spends(R, R->hosp[h]);
        for (size_t i = 0; i < R->n; i++)
            if (spends(&R->r[i], R->hosp[h], ob)) { /* fmax skips a NaN */
                R->rounds[n++] = R->r[i].round;
                R->eps_top = fmax(R->eps_top, value(&R->r[i], "epsilon_total"));
            }
        R->eps_top = fmax(R->eps_top, value(find(R, -1, "refused", R->hosp[h], 1), "epsilon_max"));
    }
    if (n) qsort(R->rounds, n, sizeof *R->rounds, by_round);
    for (size_t i = 0; i < n; i++)
        if (!R->n_rounds || R->rounds[R->n_rounds - 1] != R->rounds[i])
            R->rounds[R->n_rounds++] = R->rounds[i];
}

/* The epsilon of each hospital over R->rounds as an inline SVG line chart, y from 0, with each
 * hospital's cap (epsilon_max of its refusals) dashed. */
static void eps_chart(const report *R) {
    FILE *f = R->f;
    const double W = 820, H = 360, L = 60, T = 15, pw = W - L - 170, ph = H - T - 45;
    int64_t r0 = R->rounds[0], r1 = R->rounds[R->n_rounds - 1];
    double ymax = R->eps_top > 0 ? R->eps_top * 1.05 : 1, xspan = (double)r1 - (double)r0;
    double p = pow(10, floor(log10(ymax / 5))), m = ymax / 5 / p;
    double step = p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
    ymax = ceil(ymax / step) * step;
#define PX(r) (L + (r1 > r0 ? ((double)(r) - (double)r0) / xspan * pw : pw / 2))
#define PY(e) (T + ph - (e) / ymax * ph)
    fprintf(f,
            "<svg width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"epsilon spent per "
            "hospital over rounds\">\n",
            W, H);
    for (double y = 0; y <= ymax + step / 2; y += step)
        fprintf(f,
                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text "
                "x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                L, L + pw, PY(y), PY(y), L - 6, PY(y) + 4, y);
    for (size_t k = 0; k < R->n_rounds; k += (R->n_rounds + 11) / 12) /* 12 labels at most */
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%" PRId64 "</text>\n",
                PX(R->rounds[k]), T + ph + 18, R->rounds[k]);
    fprintf(f,
            "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#333\"/><text x=\"%.1f\" "
            "y=\"%.1f\" text-anchor=\"middle\">round</text><text x=\"14\" y=\"%.1f\" "
            "transform=\"rotate(-90 14 %.1f)\" text-anchor=\"middle\">\u03b5 spent (total)"
            "</text>\n",
            L, T, T + ph, L + pw, L + pw / 2, H - 6, T + ph / 2, T + ph / 2);
    for (int h = 0; h < R->n_hosp; h++) {
        /* earlier lines wider, so that hospitals that spent alike all show */
        const char *color = palette[h % 10], *who = R->hosp[h];
        double width = 2 + 4.0 * (R->n_hosp - 1 - h) / (R->n_hosp > 1 ? R->n_hosp - 1 : 1);
        double cap = value(find(R, -1, "refused", who, 1), "epsilon_max");
        fprintf(f, "<g data-series=\"%d\">", h);
        if (isfinite(cap))
            fprintf(f,
                    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-dasharray=\"6 4\"/>",
                    L, L + pw, PY(cap), PY(cap), color);
        double px = NAN, py = NAN; /* the point before */
        for (size_t k = 0; k < R->n_rounds; k++) {
            int64_t r = R->rounds[k];
            double e = value(spend(R, who, r), "epsilon_total");
            double x = PX(r), y = PY(e);
            if (!isfinite(e)) continue;
            if (isfinite(px))
                fprintf(f,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"%.1f\"/>",
                        px, py, x, y, color, width);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"><title>", px = x,
                    py = y, 2.5 + 0.6 * width, color);
            esc(f, who);
            fprintf(f, ", round %" PRId64 ": \u03b5 %.4g</title></circle>", r, e);
        }
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/><text "
                "x=\"%.1f\" y=\"%.1f\">",
                L + pw + 14, T + 8 + 20 * h, color, L + pw + 34, T + 14 + 20 * h);
        esc(f, who);
        fputs("</text></g>\n", f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">dashed: \u03b5 max</text></svg>\n", L + pw + 14,
            T + 20 + 20 * R->n_hosp);
#undef PX
#undef PY
}

static void section_privacy(const report *R) {
    FILE *f = R->f;
    if (!R->n_rounds) {
        fputs("<h2>Privacy budget</h2><p>No record carries a privacy spend (epsilon_total): "
              "differential privacy was off, or no outbox log was given.</p>\n",
              f);
        return;
    }
    table_head(f, "Privacy budget: \u03b5 spent per hospital",
               "Hospital|\u03b5 spent (total)|\u03b4|Clip norm|Noise multiplier|\u03b5 max|"
               "Last round|Source");
    for (int h = 0; h < R->n_hosp; h++) {
        const char *who = R->hosp[h];
        const rec *x = spend(R, who, -1);
        char *eps = x ? get(x, "epsilon_total") : NULL;
        fputs("<tr>", f);
        td(f, NULL, who);
        if (eps) { /* exactly as the log has it: the test compares the strings */
            fputs("<td class=\"num eps\" data-hospital=\"", f);
            esc(f, who);
            fputs("\" data-epsilon=\"", f);
            esc(f, eps);
            fputs("\">", f);
            esc(f, strcmp(eps, "null") ? eps : "\u221e (no noise)");
            fputs("</td>", f);
        } else {
            td(f, NULL, NULL);
        }
        free(eps);
        td_member(f, x, "delta", "\u2013", 1);
        td_member(f, x, "clip_norm", "\u2013", 1);
        td_member(f, x, "noise_multiplier", "\u2013", 1);
        td_member(f, find(R, -1, "refused", who, 1), "epsilon_max", "\u2013", 1);
        if (x)
            fprintf(f, "<td class=\"num\">%" PRId64 "</td><td>%s</td></tr>\n", x->round,
                    x->src ? "its outbox log" : "the server log");
        else
            fputs("<td>\u2013</td><td>no DP record</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    eps_chart(R);
    fputs("<table><tr><th>Round</th>", f);
    for (int h = 0; h < R->n_hosp; h++) fputs("<th>", f), esc(f, R->hosp[h]), fputs("</th>", f);
    fputs("</tr>\n", f);
    for (size_t k = 0; k < R->n_rounds; k++) {
        fprintf(f, "<tr><td class=\"num\">%" PRId64 "</td>", R->rounds[k]);
        for (int h = 0; h < R->n_hosp; h++)
            td_member(f, spend(R, R->hosp[h], R->rounds[k]), "epsilon_total", "\u2013", 0);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void section_refusals(const report *R) {
    FILE *f = R->f;
    table_head(f, "Refusals, rejections and dropouts", "Log|Line|Time (UTC)|Round|Who|What|Reason");
    size_t n = 0;
    for (size_t i = 0; i < R->n; i++) {
        const rec *x = &R->r[i];
        if (!kind_in(x->kind, "|refused|update_rejected|handshake_refused|dropped|")) continue;
        n++;
        fprintf(f, "<tr><td>%s</td><td class=\"num\">%" PRId64 "</td>",
                x->src ? "outbox" : "server", x->line);
        td(f, NULL, x->time);
        fprintf(f, "<td class=\"num\">%" PRId64 "</td>", x->round);
        td(f, NULL, x->actor);
        td(f, NULL, x->kind);
        char *why = get(x, "reason"), sum[512];
        if (!why) fl_audit_data_summary(x->data, sum, sizeof sum);
        td(f, NULL, why ? why : sum);
        free(why);
        fputs("</tr>\n", f);
    }
    if (!n) fputs("<tr><td colspan=\"7\">none</td></tr>\n", f);
    fputs("</table>\n", f);
}

static void render(const report *R) {
    FILE *f = R->f;
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(f,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fedlung "
            "audit report</title><style>%s</style></head><body>\n<h1>fedlung audit report</h1>"
            "<p class=\"meta\">Written %s from ",
            css, now);
    esc(f, R->logs[0].path);
    fprintf(f,
            " and %d outbox log%s. Only records that a verified, signed checkpoint covers are "
            "shown.</p>\n",
            R->n_logs - 1, R->n_logs == 2 ? "" : "s");
    section_study(R);
    section_verification(R);
    section_rounds(R);
    section_participants(R);
    section_privacy(R);
    section_refusals(R);
    fputs("</body></html>\n", f);
}

int fl_cmd_audit_report(const fl_audit_opts *o) {
    fl_err err = {{0}};
    report R = {0};
    fl_sign_key *keys[MAX_LOGS] = {0};
    fl_atomic_file af = {0};
    fl_status s = FL_OK;
    R.n_logs = 1 + o->n_outbox;
    for (int i = 0; i < R.n_logs && s == FL_OK; i++) {
        R.logs[i].path = i ? o->outbox[i - 1] : o->log;
        s = fl_sign_key_load_public(i ? o->outbox_key[i - 1] : o->key, &keys[i], &err);
        if (s == FL_OK) s = read_log(&R, i, keys, &err);
    }
    if (s == FL_OK) find_hospitals(&R);
    if (s == FL_OK && !R.oom) spend_rounds(&R);
    if (s == FL_OK && R.oom) s = fl_fail(&err, FL_ENOMEM, "out of memory");
    if (s == FL_OK) s = fl_atomic_open(&af, o->out, &err);
    if (s == FL_OK) {
        R.f = af.f;
        render(&R);
        s = fl_atomic_commit(&af, &err);
    }
    int bad = 0;
    for (int i = 0; i < R.n_logs; i++) {
        fl_sign_key_free(keys[i]);
        bad += R.logs[i].v.bad_line != 0 || R.logs[i].incl_found != R.logs[i].incl_checked;
    }
    if (s == FL_OK)
        printf("%s: %zu rounds, %d hospitals; %s\n", o->out,
               count_of(&R, 0, "round_committed", NULL), R.n_hosp,
               bad ? "WARNING: a log fails verification or lacks records (see the page)"
                   : "every log intact, every outbox record in the server log");
    for (size_t i = 0; i < R.n; i++)
        free(R.r[i].time), free(R.r[i].kind), free(R.r[i].actor), free(R.r[i].data);
    free(R.r), free(R.hosp), free(R.rounds);
    return s != FL_OK ? fl_cli_fail(&err) : bad ? FL_EXIT_FAIL : FL_EXIT_OK;
}
