/* import_table.c - one table to one cohort in two passes over the CSV/TSV: the first checks every
 * row (ids, labels, sites, splits) and decides which feature columns are numeric, the second fills
 * the matrix (text columns become one-hot blocks). Nothing is written until every row has been
 * read. Not a general dataframe loader: no type inference beyond "every value is a number". */
#include "import_table.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../common/rng.h"
#include "csv.h"

/* The spellings of a missing value (compared after trimming blanks; NA, NaN and null in any
 * case). Keep docs/formats.md in step. */
static const char *const missing_tokens[] = {"", "NA", "NaN", "'--", "--", "null"};
#define N_MISSING ((int)(sizeof missing_tokens / sizeof missing_tokens[0]))

void fl_import_options_default(fl_import_options *o) {
    memset(o, 0, sizeof *o);
    o->modality = FL_MOD_CLINICAL;
    o->seed = 1;
    o->split[0] = 70;
    o->split[1] = 15;
    o->split[2] = 15;
}

fl_status fl_import_parse_split(const char *text, int w[3], fl_err *err) {
    const char *p = text;
    long sum = 0;
    for (int i = 0; i < 3; i++) {
        char *end;
        if (!isdigit((unsigned char)*p)) goto bad;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || v > 1000000) goto bad;
        w[i] = (int)v;
        sum += v;
        p = end;
        if (i < 2 && *p++ != '/') goto bad;
    }
    if (*p || sum <= 0 || w[0] <= 0) goto bad;
    return FL_OK;
bad:
    return fl_fail(err, FL_EINVAL,
                   "--split \"%.60s\": expected train/val/test weights such as 70/15/15 "
                   "(non-negative integers, train positive)",
                   text);
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */

/* A growable string for the provenance and the encoding. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)k) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->failed = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
}

/* Appends s as a JSON string literal. */
static void sb_json(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            sb_printf(b, "\\u%04x", *p);
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

/* s without leading and trailing blanks, as [*begin, *begin + *len). */
static void trim(const char *s, const char **begin, size_t *len) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    *begin = s;
    *len = n;
}

static int is_missing(const char *s) {
    const char *b;
    size_t n;
    trim(s, &b, &n);
    for (int i = 0; i < N_MISSING; i++)
        if (strlen(missing_tokens[i]) == n && strncasecmp(b, missing_tokens[i], n) == 0) return 1;
    return 0;
}

/* 1: s is a decimal number (blanks around allowed) that fits a float, stored in *v; 0: it is
 * not a number; -1: a number too large for a float. No hex, inf or nan spellings. */
static int parse_number(const char *s, double *v) {
    const char *b, *p;
    size_t n;
    trim(s, &b, &n);
    p = b;
    if (*p == '+' || *p == '-') p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, digits++;
    }
    if (digits == 0) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    if ((size_t)(p - b) != n) return 0;
    double x = strtod(b, NULL);
    if (!isfinite(x) || fabs(x) > FLT_MAX) return -1;
    *v = x;
    return 1;
}

/* Index of s among the n names, or -1. */
static int find_name(char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Appends strdup(s) to a growable array; -1 when out of memory. */
static int push_string(char ***a, int *n, int *cap, const char *s) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 8;
        char **t = realloc(*a, (size_t)c * sizeof *t);
        if (!t) return -1;
        *a = t;
        *cap = c;
    }
    if (!((*a)[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

/* Splits "a,b,c" (blanks around entries trimmed) into new strings; FL_EINVAL for an empty or a
 * repeated entry. */
static fl_status split_list(const char *text, const char *option, char ***out, int *n,
                            fl_err *err) {
    int cap = 0;
    *out = NULL;
    *n = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *item = strndup(p, len), *b;
        size_t bl;
        if (!item) goto nomem;
        trim(item, (const char **)&b, &bl);
        memmove(item, b, bl);
        item[bl] = '\0';
        fl_status s = FL_OK;
        if (bl == 0)
            s = fl_fail(err, FL_EINVAL, "%s \"%.200s\" has an empty entry", option, text);
        else if (find_name(*out, *n, item) >= 0)
            s = fl_fail(err, FL_EINVAL, "%s \"%.200s\" names \"%.100s\" twice", option, text, item);
        else if (push_string(out, n, &cap, item) < 0)
            s = fl_fail(err, FL_ENOMEM, "out of memory reading %s", option);
        free(item);
        if (s) {
            free_strings(*out, *n);
            *out = NULL;
            *n = 0;
            return s;
        }
        if (!comma) return FL_OK;
        p = comma + 1;
    }
nomem:
    free_strings(*out, *n);
    *out = NULL;
    *n = 0;
    return fl_fail(err, FL_ENOMEM, "out of memory reading %s", option);
}

/* ------------------------------------------------------------------------------------------ */
/* the importer                                                                                */

typedef enum { COL_FEATURE_NUM, COL_FEATURE_CAT, COL_ROLE, COL_IGNORED } col_kind;

typedef struct {
    col_kind kind;
    int slot;      /* features: index into the staging matrix's columns */
    char **levels; /* text columns: distinct values in order of first appearance */
    int n_levels, cap_levels;
} column;

typedef struct {
    const fl_import_options *o;
    const char *path;
    fl_csv *csv;
    int ncol;
    column *col;
    int c_id, c_label, c_site, c_split; /* column indices, -1 when not given */
    int n_slots;                        /* feature columns */
    /* rows, in file order */
    int P, cap;
    char **id;
    long *line;
    int32_t *label, *site;
    uint8_t *split;
    char **classes, **sites;
    int n_classes, n_sites, cap_classes, cap_sites, fixed_classes;
    /* staging: P x n_slots, a number, a level index or NaN */
    float *stage;
    uint8_t *present;
} importer;

static void importer_destroy(importer *im) {
    fl_csv_free(im->csv);
    for (int j = 0; j < im->ncol && im->col; j++)
        free_strings(im->col[j].levels, im->col[j].n_levels);
    free(im->col);
    free_strings(im->id, im->P);
    free(im->line);
    free(im->label);
    free(im->site);
    free(im->split);
    free_strings(im->classes, im->n_classes);
    free_strings(im->sites, im->n_sites);
    free(im->stage);
    free(im->present);
}

static fl_status nomem(const importer *im, fl_err *err) {
    return fl_fail(err, FL_ENOMEM, "%s: out of memory", im->path);
}

/* "t.csv: no column "x" in the header (line 1 has "a", "b", ...)". */
static fl_status no_column(const importer *im, const char *option, const char *name, fl_err *err) {
    const fl_csv_record *h = fl_csv_header(im->csv);
    char list[320];
    size_t len = 0;
    list[0] = '\0';
    for (int j = 0; j < h->n; j++) {
        char name[80]; /* control characters shown as '?', so a binary file cannot garble it */
        size_t n = 0;
        for (const char *q = h->field[j]; *q && n < sizeof name - 1; q++)
            name[n++] = (unsigned char)*q < 0x20 || *q == 0x7f ? '?' : *q;
        name[n] = '\0';
        int k = snprintf(list + len, sizeof list - len, "%s\"%s\"", j ? ", " : "", name);
        if (k < 0 || len + (size_t)k >= sizeof list - 40) {
            snprintf(list + len, sizeof list - len, ", ... %d columns in all", h->n);
            break;
        }
        len += (size_t)k;
    }
    return fl_fail(err, FL_ENOTFOUND, "%s: no column \"%.100s\" (%s) in the header; line 1 has %s",
                   im->path, name, option, list);
}

typedef struct {
    const char *name;
    int j;
} name_index;

static int name_index_cmp(const void *a, const void *b) {
    const name_index *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x->j > y->j) - (x->j < y->j);
}

/* Finds the columns named by the options and checks the header's names. */
static fl_status map_columns(importer *im, fl_err *err) {
    const fl_import_options *o = im->o;
    const fl_csv_record *h = fl_csv_header(im->csv);
    fl_status s;
    im->ncol = h->n;
    if (!(im->col = calloc((size_t)h->n, sizeof *im->col))) return nomem(im, err);
    struct {
        const char *name, *option;
        int *index;
    } roles[] = {{o->id_col, "--id", &im->c_id},
                 {o->label_col, "--label", &im->c_label},
                 {o->site_col, "--site", &im->c_site},
                 {o->split_col, "--split-column", &im->c_split}};
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        *roles[r].index = -1;
        if (!roles[r].name) continue;
        int j = find_name(h->field, h->n, roles[r].name);
        if (j < 0) return no_column(im, roles[r].option, roles[r].name, err);
        if (im->col[j].kind == COL_ROLE)
            return fl_fail(err, FL_EINVAL, "%s: %s names column \"%s\", which has another role",
                           im->path, roles[r].option, roles[r].name);
        im->col[j].kind = COL_ROLE;
        *roles[r].index = j;
    }
    if (o->ignore) {
        char **names;
        int n;
        if ((s = split_list(o->ignore, "--ignore", &names, &n, err))) return s;
        for (int i = 0; i < n && s == FL_OK; i++) {
            int j = find_name(h->field, h->n, names[i]);
            if (j < 0)
                s = no_column(im, "--ignore", names[i], err);
            else if (im->col[j].kind == COL_ROLE)
                s = fl_fail(err, FL_EINVAL, "%s: --ignore names column \"%s\", which has a role",
                            im->path, names[i]);
            else
                im->col[j].kind = COL_IGNORED;
        }
        free_strings(names, n);
        if (s) return s;
    }
    for (int j = 0; j < h->n; j++) {
        if (im->col[j].kind != COL_FEATURE_NUM) continue;
        if (h->field[j][0] == '\0')
            return fl_fail(err, FL_EFORMAT,
                           "%s:1: column %d has no name in the header (name it, or drop the "
                           "column)",
                           im->path, j + 1);
        im->col[j].slot = im->n_slots++;
    }
    /* Feature names must be unique among all the header's names (sorted: tables can be wide). */
    name_index *k = malloc((size_t)h->n * sizeof *k);
    if (!k) return nomem(im, err);
    for (int j = 0; j < h->n; j++) k[j] = (name_index){h->field[j], j};
    qsort(k, (size_t)h->n, sizeof *k, name_index_cmp);
    s = FL_OK;
    for (int i = 1; i < h->n && s == FL_OK; i++)
        if (strcmp(k[i - 1].name, k[i].name) == 0 && (im->col[k[i - 1].j].kind == COL_FEATURE_NUM ||
                                                      im->col[k[i].j].kind == COL_FEATURE_NUM))
            s = fl_fail(err, FL_EFORMAT, "%s:1: columns %d and %d are both named \"%s\"", im->path,
                        k[i - 1].j + 1, k[i].j + 1, k[i].name);
    free(k);
    if (s) return s;
    if (im->n_slots == 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s: no feature columns for --modality %s (the header has only the id, "
                       "label, site, split or ignored columns)",
                       im->path, fl_omics_name(o->modality));
    return FL_OK;
}

static fl_status grow_rows(importer *im, fl_err *err) {
    if (im->P < im->cap) return FL_OK;
    int cap = im->cap ? 2 * im->cap : 256;
    char **id = realloc(im->id, (size_t)cap * sizeof *id);
    if (id) im->id = id;
    long *line = id ? realloc(im->line, (size_t)cap * sizeof *line) : NULL;
    if (line) im->line = line;
    int32_t *label = line ? realloc(im->label, (size_t)cap * sizeof *label) : NULL;
    if (label) im->label = label;
    int32_t *site = label ? realloc(im->site, (size_t)cap * sizeof *site) : NULL;
    if (site) im->site = site;
    uint8_t *split = site ? realloc(im->split, (size_t)cap) : NULL;
    if (!split) return nomem(im, err);
    im->split = split;
    im->cap = cap;
    return FL_OK;
}

/* Pass 1, one row: the id, label, site and split, and whether each feature is a number. */
static fl_status first_pass_row(importer *im, const fl_csv_record *rec, fl_err *err) {
    const fl_import_options *o = im->o;
    const char *path = im->path;
    const long L = rec->line;
    fl_status s;
    if ((s = grow_rows(im, err))) return s;
    const char *id = rec->field[im->c_id];
    if (is_missing(id))
        return fl_fail(err, FL_EFORMAT, "%s:%ld: the id (column \"%s\") is missing (\"%.60s\")",
                       path, L, o->id_col, id);
    const char *label = rec->field[im->c_label];
    if (is_missing(label))
        return fl_fail(err, FL_EFORMAT, "%s:%ld: the label (column \"%s\") is missing (\"%.60s\")",
                       path, L, o->label_col, label);
    int k = find_name(im->classes, im->n_classes, label);
    if (k < 0 && im->fixed_classes)
        return fl_fail(err, FL_EFORMAT, "%s:%ld: label \"%.100s\" is not one of --classes %s", path,
                       L, label, o->classes);
    if (k < 0) {
        if (im->n_classes == FL_MAX_CLASSES)
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: label \"%.100s\" would be class %d; a cohort has at most %d "
                           "(is --label the right column?)",
                           path, L, label, FL_MAX_CLASSES + 1, FL_MAX_CLASSES);
        if (push_string(&im->classes, &im->n_classes, &im->cap_classes, label) < 0)
            return nomem(im, err);
        k = im->n_classes - 1;
    }
    int site = 0;
    if (im->c_site >= 0) {
        const char *name = rec->field[im->c_site];
        if (is_missing(name))
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: the site (column \"%s\") is missing (\"%.60s\")", path, L,
                           o->site_col, name);
        site = find_name(im->sites, im->n_sites, name);
        if (site < 0) {
            if (push_string(&im->sites, &im->n_sites, &im->cap_sites, name) < 0)
                return nomem(im, err);
            site = im->n_sites - 1;
        }
    }
    uint8_t split = FL_SPLIT_TRAIN;
    if (im->c_split >= 0) {
        const char *v, *text = rec->field[im->c_split];
        size_t n;
        trim(text, &v, &n);
        int found = 0;
        for (int sp = FL_SPLIT_TRAIN; sp <= FL_SPLIT_TEST && !found; sp++)
            if (strlen(fl_split_name((fl_split)sp)) == n &&
                strncasecmp(v, fl_split_name((fl_split)sp), n) == 0) {
                split = (uint8_t)sp;
                found = 1;
            }
        if (!found)
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: split \"%.60s\" (column \"%s\") is not train, val or test",
                           path, L, text, o->split_col);
    }
    for (int j = 0; j < im->ncol; j++) {
        column *c = &im->col[j];
        double v;
        if (c->kind != COL_FEATURE_NUM || is_missing(rec->field[j])) continue;
        int r = parse_number(rec->field[j], &v);
        const char *colname = fl_csv_header(im->csv)->field[j];
        if (r < 0)
            return fl_fail(err, FL_EFORMAT, "%s:%ld: column \"%s\": %.60s does not fit a float",
                           path, L, colname, rec->field[j]);
        if (r == 1) continue;
        if (o->modality != FL_MOD_CLINICAL)
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: column \"%s\" holds \"%.60s\", not a number (--modality %s "
                           "takes numeric columns only; --ignore it)",
                           path, L, colname, rec->field[j], fl_omics_name(o->modality));
        c->kind = COL_FEATURE_CAT;
    }
    if (!(im->id[im->P] = strdup(id))) return nomem(im, err);
    im->line[im->P] = L;
    im->label[im->P] = k;
    im->site[im->P] = site;
    im->split[im->P] = split;
    im->P++;
    return FL_OK;
}

typedef struct {
    const char *id;
    long line;
} id_line;

static int id_line_cmp(const void *a, const void *b) {
    const id_line *x = a, *y = b;
    int r = strcmp(x->id, y->id);
    return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* The first repeated id (by the line of its second appearance), naming both lines. */
static fl_status check_unique_ids(const importer *im, fl_err *err) {
    id_line *k = malloc((size_t)im->P * sizeof *k);
    if (!k) return nomem(im, err);
    for (int p = 0; p < im->P; p++) k[p] = (id_line){im->id[p], im->line[p]};
    qsort(k, (size_t)im->P, sizeof *k, id_line_cmp);
    int worst = -1;
    for (int i = 1; i < im->P; i++)
        if (strcmp(k[i - 1].id, k[i].id) == 0 && (i < 2 || strcmp(k[i - 2].id, k[i].id) != 0) &&
            (worst < 0 || k[i].line < k[worst].line))
            worst = i;
    fl_status s = FL_OK;
    if (worst >= 0)
        s = fl_fail(err, FL_EFORMAT, "%s:%ld: id \"%.100s\" already appears on line %ld", im->path,
                    k[worst].line, k[worst].id, k[worst - 1].line);
    free(k);
    return s;
}

/* Pass 2, one row: numbers, level indices or NaN into the staging row. */
static fl_status second_pass_row(importer *im, int p, const fl_csv_record *rec, fl_err *err) {
    float *row = im->stage + (size_t)p * (size_t)im->n_slots;
    int any = 0;
    for (int j = 0; j < im->ncol; j++) {
        column *c = &im->col[j];
        if (c->kind != COL_FEATURE_NUM && c->kind != COL_FEATURE_CAT) continue;
        const char *v = rec->field[j];
        if (is_missing(v)) {
            row[c->slot] = NAN;
            continue;
        }
        any = 1;
        if (c->kind == COL_FEATURE_NUM) {
            double x = 0;
            parse_number(v, &x); /* pass 1 saw it parse */
            row[c->slot] = (float)x;
            continue;
        }
        int k = find_name(c->levels, c->n_levels, v);
        if (k < 0) {
            if (c->n_levels == FL_IMPORT_MAX_LEVELS)
                return fl_fail(err, FL_EFORMAT,
                               "%s:%ld: column \"%s\" has more than %d distinct values (is it an "
                               "identifier? --ignore it)",
                               im->path, rec->line, fl_csv_header(im->csv)->field[j],
                               FL_IMPORT_MAX_LEVELS);
            if (push_string(&c->levels, &c->n_levels, &c->cap_levels, v) < 0) return nomem(im, err);
            k = c->n_levels - 1;
        }
        row[c->slot] = (float)k;
    }
    im->present[p] = (uint8_t)any;
    return FL_OK;
}

/* Runs both passes over the table. */
static fl_status read_table(importer *im, fl_err *err) {
    fl_csv_record rec;
    fl_status s;
    int r;
    while ((r = fl_csv_next(im->csv, &rec, err)) == 1)
        if ((s = first_pass_row(im, &rec, err))) return s;
    if (r < 0) return (fl_status)r;
    if (im->P == 0)
        return fl_fail(err, FL_EFORMAT, "%s: no data rows below the header (line 1)", im->path);
    if ((s = check_unique_ids(im, err))) return s;
    im->stage = malloc((size_t)im->P * (size_t)im->n_slots * sizeof *im->stage);
    im->present = malloc((size_t)im->P);
    if (!im->stage || !im->present) return nomem(im, err);
    fl_csv_rewind(im->csv);
    for (int p = 0; p < im->P; p++) {
        if ((r = fl_csv_next(im->csv, &rec, err)) != 1)
            return r < 0
                       ? (fl_status)r
                       : fl_fail(err, FL_EIO, "%s: the table changed while it was read", im->path);
        if ((s = second_pass_row(im, p, &rec, err))) return s;
    }
    return FL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the cohort                                                                                  */

/* Per class, a seeded shuffle of its rows split by largest remainders (see docs/formats.md). */
static fl_status assign_splits(const importer *im, uint8_t *split, fl_err *err) {
    const int *w = im->o->split;
    const long S = (long)w[0] + w[1] + w[2];
    int *rows = malloc((size_t)im->P * sizeof *rows);
    if (!rows) return nomem(im, err);
    for (int k = 0; k < im->n_classes; k++) {
        int n = 0;
        for (int p = 0; p < im->P; p++)
            if (im->label[p] == k) rows[n++] = p;
        fl_rng rng;
        fl_rng_seed(&rng, fl_mix64(im->o->seed, 0x5E11u + (uint64_t)k));
        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(fl_rng_u64(&rng) % (uint64_t)(i + 1));
            int t = rows[i];
            rows[i] = rows[j];
            rows[j] = t;
        }
        long cnt[3], rem[3], left = n;
        for (int i = 0; i < 3; i++) {
            cnt[i] = (long)n * w[i] / S;
            rem[i] = (long)n * w[i] % S;
            left -= cnt[i];
        }
        while (left-- > 0) { /* largest remainder; ties go to train, then val */
            int best = 0;
            for (int i = 1; i < 3; i++)
                if (rem[i] > rem[best]) best = i;
            cnt[best]++;
            rem[best] = -1;
        }
        if (n >= 3 && cnt[0] == 0) { /* every class of 3 or more trains on at least one */
            int from = cnt[1] >= cnt[2] ? 1 : 2;
            cnt[from]--;
            cnt[0]++;
        }
        for (int i = 0; i < n; i++)
            split[rows[i]] = (uint8_t)(i < cnt[0]            ? FL_SPLIT_TRAIN
                                       : i < cnt[0] + cnt[1] ? FL_SPLIT_VAL
                                                             : FL_SPLIT_TEST);
    }
    free(rows);
    return FL_OK;
}

/* The matrix: numeric columns as they are, text columns as one-hot blocks "<col>=<value>". */
static fl_status build_matrix(importer *im, fl_omics_matrix *m, fl_err *err) {
    const fl_csv_record *h = fl_csv_header(im->csv);
    int F = 0, n_cat = 0;
    for (int j = 0; j < im->ncol; j++) {
        if (im->col[j].kind == COL_FEATURE_NUM) F++;
        if (im->col[j].kind == COL_FEATURE_CAT) F += im->col[j].n_levels, n_cat++;
    }
    if (!(m->features = calloc((size_t)F, sizeof *m->features))) return nomem(im, err);
    m->F = F;
    int *first = malloc((size_t)im->n_slots * sizeof *first); /* first feature of each slot */
    if (!first) return nomem(im, err);
    for (int j = 0, f = 0; j < im->ncol; j++) {
        column *c = &im->col[j];
        if (c->kind == COL_FEATURE_NUM) {
            first[c->slot] = f;
            if (!(m->features[f++] = strdup(h->field[j]))) goto nomem;
        } else if (c->kind == COL_FEATURE_CAT) {
            first[c->slot] = f;
            for (int l = 0; l < c->n_levels; l++) {
                size_t len = strlen(h->field[j]) + strlen(c->levels[l]) + 2;
                if (!(m->features[f] = malloc(len))) goto nomem;
                snprintf(m->features[f++], len, "%s=%s", h->field[j], c->levels[l]);
            }
        }
    }
    m->present = im->present;
    im->present = NULL;
    if (n_cat == 0) { /* the staging matrix is the matrix */
        m->values = im->stage;
        im->stage = NULL;
        free(first);
        return FL_OK;
    }
    if (!(m->values = malloc((size_t)im->P * (size_t)F * sizeof *m->values))) goto nomem;
    for (int p = 0; p < im->P; p++) {
        const float *in = im->stage + (size_t)p * (size_t)im->n_slots;
        float *out = m->values + (size_t)p * (size_t)F;
        for (int j = 0; j < im->ncol; j++) {
            const column *c = &im->col[j];
            float v = in[c->slot];
            if (c->kind == COL_FEATURE_NUM) {
                out[first[c->slot]] = v;
            } else if (c->kind == COL_FEATURE_CAT) {
                for (int l = 0; l < c->n_levels; l++)
                    out[first[c->slot] + l] = isnan(v) ? NAN : (float)(l == (int)v);
            }
        }
    }
    free(first);
    return FL_OK;
nomem:
    free(first);
    return nomem(im, err);
}

/* The clinical "encoding" attribute: JSON describing every feature column. HDF5 keeps small
 * attributes in the object header (64 KiB), so a very wide table gets the summary only. */
static char *encoding_json(const importer *im) {
    const fl_csv_record *h = fl_csv_header(im->csv);
    for (int detail = 1; detail >= 0; detail--) {
        sbuf b = {0};
        sb_printf(&b, "{\"source\":\"fedlung import-table\",\"categorical\":\"one-hot, a column "
                      "per value named column=value, values in order of first appearance\","
                      "\"missing\":[");
        for (int i = 0; i < N_MISSING; i++) {
            sb_printf(&b, i ? "," : "");
            sb_json(&b, missing_tokens[i]);
        }
        sb_printf(&b, "],\"missing_value\":\"NaN (every column of a one-hot block)\"");
        if (detail) {
            sb_printf(&b, ",\"columns\":[");
            int first = 1;
            for (int j = 0; j < im->ncol; j++) {
                const column *c = &im->col[j];
                if (c->kind != COL_FEATURE_NUM && c->kind != COL_FEATURE_CAT) continue;
                sb_printf(&b, first ? "{\"name\":" : ",{\"name\":");
                first = 0;
                sb_json(&b, h->field[j]);
                if (c->kind == COL_FEATURE_NUM) {
                    sb_printf(&b, ",\"type\":\"numeric\"}");
                    continue;
                }
                sb_printf(&b, ",\"type\":\"categorical\",\"levels\":[");
                for (int l = 0; l < c->n_levels; l++) {
                    sb_printf(&b, l ? "," : "");
                    sb_json(&b, c->levels[l]);
                }
                sb_printf(&b, "]}");
            }
            sb_printf(&b, "]");
        }
        sb_printf(&b, "}");
        if (!b.failed && (!detail || b.len < 60000)) return b.s;
        free(b.s);
        if (b.failed) return NULL;
    }
    return NULL;
}

static char *provenance_text(const importer *im, int F) {
    const fl_import_options *o = im->o;
    int n_num = 0, n_cat = 0;
    for (int j = 0; j < im->ncol; j++) {
        n_num += im->col[j].kind == COL_FEATURE_NUM;
        n_cat += im->col[j].kind == COL_FEATURE_CAT;
    }
    sbuf b = {0};
    sb_printf(&b, "fedlung import-table: %s (%s, %d rows); id \"%s\", label \"%s\"; ", im->path,
              fl_csv_delim(im->csv) == '\t' ? "TSV" : "CSV", im->P, o->id_col, o->label_col);
    sb_printf(&b, "%s: %d features from %d columns (%d numeric as float",
              fl_omics_name(o->modality), F, n_num + n_cat, n_num);
    if (n_cat) sb_printf(&b, ", %d text one-hot as \"column=value\"", n_cat);
    sb_printf(&b, "), missing values NaN; ");
    if (o->site_col)
        sb_printf(&b, "sites from \"%s\"; ", o->site_col);
    else
        sb_printf(&b, "one site \"site0\"; ");
    if (o->split_col)
        sb_printf(&b, "split from \"%s\"", o->split_col);
    else
        sb_printf(&b, "split %d/%d/%d by label, seed %llu", o->split[0], o->split[1], o->split[2],
                  (unsigned long long)o->seed);
    if (o->classes) sb_printf(&b, "; classes %s", o->classes);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static fl_status fill_cohort(importer *im, fl_cohort *c, fl_err *err) {
    const int P = im->P;
    fl_status s;
    if (im->c_split < 0 && (s = assign_splits(im, im->split, err))) return s;
    c->P = P;
    c->id = im->id;
    im->id = NULL;
    c->label = im->label;
    im->label = NULL;
    c->site = im->site;
    im->site = NULL;
    c->split = im->split;
    im->split = NULL;
    c->n_classes = im->n_classes;
    c->class_names = im->classes;
    im->classes = NULL;
    im->n_classes = 0;
    if (im->c_site >= 0) {
        c->n_sites = im->n_sites;
        c->site_names = im->sites;
        im->sites = NULL;
        im->n_sites = 0;
    } else {
        c->n_sites = 1;
        if (!(c->site_names = calloc(1, sizeof *c->site_names)) ||
            !(c->site_names[0] = strdup("site0")))
            return nomem(im, err);
    }
    c->case_id = calloc((size_t)P, sizeof *c->case_id);
    c->stage = malloc((size_t)P * sizeof *c->stage);
    if (!c->case_id || !c->stage) return nomem(im, err);
    for (int p = 0; p < P; p++) {
        if (!(c->case_id[p] = strdup(c->id[p]))) return nomem(im, err);
        c->stage[p] = -1;
    }
    fl_omics_matrix *m = &c->omics[im->o->modality];
    if ((s = build_matrix(im, m, err))) return s;
    if (im->o->modality == FL_MOD_CLINICAL && !(m->encoding = encoding_json(im)))
        return nomem(im, err);
    if (!(c->provenance = provenance_text(im, m->F))) return nomem(im, err);
    return FL_OK;
}

fl_status fl_import_table_build(const fl_import_options *o, fl_cohort *out, fl_err *err) {
    importer im = {0};
    fl_status s;
    memset(out, 0, sizeof *out);
    if (!o->csv) return fl_fail(err, FL_EINVAL, "no table given (--csv)");
    im.o = o;
    im.path = o->csv;
    if (!o->id_col || !o->label_col)
        return fl_fail(err, FL_EINVAL, "%s: both the id and the label column must be named",
                       o->csv);
    if (o->modality < 0 || o->modality >= FL_N_OMICS)
        return fl_fail(err, FL_EINVAL, "%s: unknown modality %d", o->csv, (int)o->modality);
    if (!o->split_col && (o->split[0] <= 0 || o->split[1] < 0 || o->split[2] < 0))
        return fl_fail(err, FL_EINVAL,
                       "%s: split weights %d/%d/%d: train must be positive, the "
                       "others non-negative",
                       o->csv, o->split[0], o->split[1], o->split[2]);
    if (o->classes) {
        if ((s = split_list(o->classes, "--classes", &im.classes, &im.n_classes, err))) return s;
        if (im.n_classes > FL_MAX_CLASSES) {
            s = fl_fail(err, FL_EINVAL, "--classes names %d classes; at most %d", im.n_classes,
                        FL_MAX_CLASSES);
            goto done;
        }
        im.fixed_classes = 1;
    }
    if ((s = fl_csv_open(&im.csv, o->csv, o->delim, err)) || (s = map_columns(&im, err)) ||
        (s = read_table(&im, err)) || (s = fill_cohort(&im, out, err)))
        goto done;
done:
    if (s) fl_cohort_destroy(out);
    importer_destroy(&im);
    return s;
}

fl_status fl_import_table(const fl_import_options *o, const char *out_path, fl_err *err) {
    struct stat a, b;
    fl_cohort c;
    if (o->csv && stat(o->csv, &a) == 0 && stat(out_path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return fl_fail(err, FL_EINVAL, "%s: the output would overwrite the table itself", out_path);
    fl_status s = fl_import_table_build(o, &c, err);
    if (s) return s;
    s = fl_cohort_save_subset(&c, NULL, NULL, out_path, err);
    fl_cohort_destroy(&c);
    return s;
}
