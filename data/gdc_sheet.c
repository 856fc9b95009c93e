/* gdc_sheet.c - the GDC sample sheet (which file belongs to which sample) and the file layout of
 * a download: sheet rows resolved to <dir>/<File ID>/<File Name>, slides and tile folders found
 * by barcode, and the TCGA identifier rules they share. Not a reader of the files themselves. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "csv.h"
#include "gdc.h"

void fl_gdc_warnf(const fl_gdc_warn *w, const char *fmt, ...) {
    if (!w || !w->fn) return;
    char msg[FL_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->fn(w->ctx, msg);
}

/* ------------------------------------------------------------------------------------------ */
/* identifiers                                                                                 */

/* n alphanumeric characters at s. */
static int alnum_run(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i])) return 0;
    return 1;
}

int fl_gdc_is_case_barcode(const char *s) {
    return strlen(s) == 12 && alnum_run(s, 4) && s[4] == '-' && alnum_run(s + 5, 2) &&
           s[7] == '-' && alnum_run(s + 8, 4);
}

int fl_gdc_is_sample_barcode(const char *s) {
    if (strlen(s) < 16) return 0;
    char c[13];
    memcpy(c, s, 12);
    c[12] = '\0';
    return fl_gdc_is_case_barcode(c) && s[12] == '-' && isdigit((unsigned char)s[13]) &&
           isdigit((unsigned char)s[14]) && isalpha((unsigned char)s[15]);
}

int fl_gdc_is_missing(const char *s) {
    static const char *const tokens[] = {"",
                                         "'--",
                                         "--",
                                         "NA",
                                         "not reported",
                                         "unknown",
                                         "Unknown/not reported",
                                         "not allowed to collect"};
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r')) n--;
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
        if (strlen(tokens[i]) == n && strncasecmp(s, tokens[i], n) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the sample sheet                                                                            */

enum { C_FILE_ID, C_FILE_NAME, C_DATA_TYPE, C_PROJECT, C_CASE, C_SAMPLE, N_REQUIRED };
static const char *const required[N_REQUIRED] = {"File ID",    "File Name", "Data Type",
                                                 "Project ID", "Case ID",   "Sample ID"};
/* Data Type of each kind's files. */
static const char *const kind_type[FL_GDC_N_KINDS] = {"Gene Expression Quantification",
                                                      "Methylation Beta Value"};
static const char *const kind_option[FL_GDC_N_KINDS] = {"--rna", "--methylation"};

/* One usable row of the sheet. */
typedef struct {
    char *sample, *path, *project, *label;
    int kind;
    long line;
} sheet_row;

typedef struct {
    const fl_gdc_sheet_options *o;
    fl_csv *csv;
    int col[N_REQUIRED], label_col;
    char **rule_from, **rule_to;
    int n_rule;
    sheet_row *row;
    int n_rows, cap_rows;
} sheet_reader;

static fl_status nomem(const char *path, fl_err *err) {
    return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
}

static void free_rows(sheet_row *r, int n) {
    for (int i = 0; i < n; i++) {
        free(r[i].sample);
        free(r[i].path);
        free(r[i].project);
        free(r[i].label);
    }
    free(r);
}

static void reader_destroy(sheet_reader *sr) {
    fl_csv_free(sr->csv);
    for (int i = 0; i < sr->n_rule; i++) free(sr->rule_from[i]), free(sr->rule_to[i]);
    free(sr->rule_from);
    free(sr->rule_to);
    free_rows(sr->row, sr->n_rows);
}

/* "TCGA-LUAD=LUAD,TCGA-LUSC=LUSC" into the reader's rule; FL_EINVAL quoting the rule. */
static fl_status parse_rule(sheet_reader *sr, const char *rule, fl_err *err) {
    int n = 1;
    for (const char *p = rule; *p; p++) n += *p == ',';
    sr->rule_from = calloc((size_t)n, sizeof *sr->rule_from);
    sr->rule_to = calloc((size_t)n, sizeof *sr->rule_to);
    if (!sr->rule_from || !sr->rule_to) return nomem("--label-rule", err);
    for (const char *p = rule;; p++) {
        const char *end = strchr(p, ','), *eq = strchr(p, '=');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end || eq == p || eq + 1 == end)
            return fl_fail(err, FL_EINVAL,
                           "--label-rule \"%.200s\": expected PROJECT=CLASS,... such as "
                           "TCGA-LUAD=LUAD,TCGA-LUSC=LUSC",
                           rule);
        sr->rule_from[sr->n_rule] = strndup(p, (size_t)(eq - p));
        sr->rule_to[sr->n_rule] = strndup(eq + 1, (size_t)(end - eq - 1));
        if (!sr->rule_from[sr->n_rule++] || !sr->rule_to[sr->n_rule - 1])
            return nomem("--label-rule", err);
        if (!*end) return FL_OK;
        p = end;
    }
}

/* The column named name, or -1. */
static int find_column(const fl_csv_record *h, const char *name) {
    for (int j = 0; j < h->n; j++)
        if (strcmp(h->field[j], name) == 0) return j;
    return -1;
}

/* dir/<id>/<name> or dir/<name> as a new string if it is a regular file, else NULL (*missing
 * says whether it was absent rather than out of memory). */
static char *resolve(const char *dir, const char *id, const char *name, int *missing) {
    struct stat st;
    size_t len = strlen(dir) + strlen(id) + strlen(name) + 3;
    char *p = malloc(len);
    *missing = 0;
    if (!p) return NULL;
    snprintf(p, len, "%s/%s/%s", dir, id, name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
    snprintf(p, len, "%s/%s", dir, name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
    free(p);
    *missing = 1;
    return NULL;
}

/* The class of a tumour row: --label-column, the rule, or the project without "TCGA-". */
static fl_status row_label(const sheet_reader *sr, const fl_csv_record *rec, const char *project,
                           char **label, fl_err *err) {
    const char *path = sr->o->path, *v = project;
    if (sr->label_col >= 0) {
        v = rec->field[sr->label_col];
        if (fl_gdc_is_missing(v))
            return fl_fail(err, FL_EFORMAT, "%s:%ld: the label (column \"%s\") is missing", path,
                           rec->line, sr->o->label_column);
    } else if (sr->n_rule) {
        int k = 0;
        while (k < sr->n_rule && strcmp(sr->rule_from[k], project) != 0) k++;
        if (k == sr->n_rule)
            return fl_fail(err, FL_EFORMAT, "%s:%ld: project \"%.60s\" is not in --label-rule %s",
                           path, rec->line, project, sr->o->label_rule);
        v = sr->rule_to[k];
    } else if (strncmp(project, "TCGA-", 5) == 0 && project[5]) {
        v = project + 5;
    }
    return (*label = strdup(v)) ? FL_OK : nomem(path, err);
}

/* Reads one record into a sheet_row (or skips it); *skipped counts rows of other kinds. */
static fl_status read_row(sheet_reader *sr, const fl_csv_record *rec, int *other, long *other_line,
                          int *no_dir, fl_err *err) {
    const char *path = sr->o->path;
    char *const *f = rec->field;
    int kind = 0;
    while (kind < FL_GDC_N_KINDS && strcmp(f[sr->col[C_DATA_TYPE]], kind_type[kind]) != 0) kind++;
    if (kind == FL_GDC_N_KINDS) {
        if (!(*other)++) *other_line = rec->line;
        return FL_OK;
    }
    if (!sr->o->dir[kind]) {
        (*no_dir)++;
        return FL_OK;
    }
    const char *sample = f[sr->col[C_SAMPLE]], *cs = f[sr->col[C_CASE]];
    const char *project = f[sr->col[C_PROJECT]];
    const char *fid = f[sr->col[C_FILE_ID]], *fname = f[sr->col[C_FILE_NAME]];
    if (strchr(sample, ','))
        return fl_fail(err, FL_EFORMAT,
                       "%s:%ld: file %.80s is linked to several samples (\"%.80s\"); RNA and "
                       "methylation files belong to one",
                       path, rec->line, fname, sample);
    if (!fl_gdc_is_sample_barcode(sample) || strlen(sample) != 16)
        return fl_fail(err, FL_EFORMAT,
                       "%s:%ld: Sample ID \"%.60s\" is not a TCGA sample barcode such as "
                       "TCGA-05-4244-01A",
                       path, rec->line, sample);
    if (strlen(cs) != 12 || strncmp(cs, sample, 12) != 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s:%ld: Case ID \"%.60s\" is not the first 12 characters of Sample ID %s",
                       path, rec->line, cs, sample);
    if (fl_gdc_is_missing(project))
        return fl_fail(err, FL_EFORMAT, "%s:%ld: Project ID is missing", path, rec->line);
    if (!*fid || !*fname || strchr(fid, '/') || strchr(fname, '/') || fname[0] == '.')
        return fl_fail(err, FL_EFORMAT,
                       "%s:%ld: File ID \"%.60s\" / File Name \"%.80s\" is not a "
                       "plain name",
                       path, rec->line, fid, fname);
    if (sr->n_rows == sr->cap_rows) {
        int cap = sr->cap_rows ? 2 * sr->cap_rows : 64;
        sheet_row *t = realloc(sr->row, (size_t)cap * sizeof *t);
        if (!t) return nomem(path, err);
        sr->row = t;
        sr->cap_rows = cap;
    }
    sheet_row *r = &sr->row[sr->n_rows];
    memset(r, 0, sizeof *r);
    sr->n_rows++;
    r->kind = kind;
    r->line = rec->line;
    int missing;
    if (!(r->sample = strdup(sample)) || !(r->project = strdup(project))) return nomem(path, err);
    if (!(r->path = resolve(sr->o->dir[kind], fid, fname, &missing)))
        return missing ? fl_fail(err, FL_ENOTFOUND,
                                 "%s:%ld: the %s file of sample %s is missing: %s is neither in "
                                 "%s/%s/ nor in %s itself (an incomplete download?)",
                                 path, rec->line, kind == FL_GDC_RNA ? "RNA" : "methylation",
                                 sample, fname, sr->o->dir[kind], fid, sr->o->dir[kind])
                       : nomem(path, err);
    int type = (sample[13] - '0') * 10 + (sample[14] - '0');
    if (type == 11) return (r->label = strdup("NORMAL")) ? FL_OK : nomem(path, err);
    return row_label(sr, rec, project, &r->label, err);
}

static int row_cmp(const void *a, const void *b) {
    const sheet_row *x = a, *y = b;
    int r = strcmp(x->sample, y->sample);
    return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* Rows sorted by sample into samples; a sample's rows must agree on project and label. */
static fl_status merge_rows(sheet_reader *sr, fl_gdc_sheet *out, const fl_gdc_warn *w,
                            fl_err *err) {
    const char *path = sr->o->path;
    int dup = 0, other_type = 0;
    const char *other_example = NULL, *last_other = "";
    if (sr->n_rows) qsort(sr->row, (size_t)sr->n_rows, sizeof *sr->row, row_cmp);
    if (!(out->s = calloc((size_t)(sr->n_rows ? sr->n_rows : 1), sizeof *out->s)))
        return nomem(path, err);
    for (int i = 0; i < sr->n_rows; i++) {
        sheet_row *r = &sr->row[i];
        int type = (r->sample[13] - '0') * 10 + (r->sample[14] - '0');
        if (type != 11 && (type < 1 || type > 9)) {
            if (strcmp(last_other, r->sample) != 0 && !other_type++) other_example = r->sample;
            last_other = r->sample;
            continue;
        }
        fl_gdc_sample *s = out->n ? &out->s[out->n - 1] : NULL;
        if (!s || strcmp(s->id, r->sample) != 0) {
            s = &out->s[out->n++];
            s->id = r->sample;
            s->project = r->project;
            s->label = r->label;
            r->sample = r->project = r->label = NULL;
            s->line = r->line;
            s->type = type;
            memcpy(s->tss, s->id + 5, 2);
            if (!(s->case_id = strndup(s->id, 12))) return nomem(path, err);
        } else if (strcmp(s->project, r->project) != 0 || strcmp(s->label, r->label) != 0) {
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: sample %s has project %s, class %s here but %s, %s on line "
                           "%ld",
                           path, r->line, s->id, r->project, r->label, s->project, s->label,
                           s->line);
        }
        if (s->file[r->kind]) {
            if (!dup++)
                fl_gdc_warnf(w,
                             "%s:%ld: sample %s has a second %s file (%s); the first, on line "
                             "%ld, is kept",
                             path, r->line, s->id, kind_option[r->kind] + 2, r->path,
                             s->file_line[r->kind]);
            continue;
        }
        s->file[r->kind] = r->path;
        s->file_line[r->kind] = r->line;
        r->path = NULL;
    }
    if (dup > 1)
        fl_gdc_warnf(w,
                     "%s: %d files in all were left out as second files of one kind for a "
                     "sample (the first row of each is kept)",
                     path, dup);
    if (other_type)
        fl_gdc_warnf(w,
                     "%s: %d samples are neither tumour (types 01-09) nor solid tissue normal "
                     "(11) and are left out (e.g. %s)",
                     path, other_type, other_example);
    if (out->n == 0)
        return fl_fail(err, FL_EFORMAT,
                       "%s: no tumour or solid tissue normal samples with RNA (\"%s\") or "
                       "methylation (\"%s\") files of the folders given",
                       path, kind_type[0], kind_type[1]);
    return FL_OK;
}

fl_status fl_gdc_sheet_read(const fl_gdc_sheet_options *o, fl_gdc_sheet *out, const fl_gdc_warn *w,
                            fl_err *err) {
    sheet_reader sr = {.o = o, .label_col = -1};
    fl_csv_record rec;
    fl_status s;
    int r, other = 0, no_dir = 0;
    long other_line = 0;
    memset(out, 0, sizeof *out);
    if (o->label_rule && (s = parse_rule(&sr, o->label_rule, err))) goto done;
    if ((s = fl_csv_open(&sr.csv, o->path, '\t', err))) goto done;
    const fl_csv_record *h = fl_csv_header(sr.csv);
    for (int k = 0; k < N_REQUIRED; k++)
        if ((sr.col[k] = find_column(h, required[k])) < 0) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:1: no column \"%s\"; a GDC sample sheet has File ID, File Name, "
                        "Data Category, Data Type, Project ID, Case ID, Sample ID, Sample Type",
                        o->path, required[k]);
            goto done;
        }
    if (o->label_column && (sr.label_col = find_column(h, o->label_column)) < 0) {
        s = fl_fail(err, FL_ENOTFOUND, "%s:1: no column \"%s\" (--label-column)", o->path,
                    o->label_column);
        goto done;
    }
    while ((r = fl_csv_next(sr.csv, &rec, err)) == 1)
        if ((s = read_row(&sr, &rec, &other, &other_line, &no_dir, err))) goto done;
    if (r < 0) {
        s = (fl_status)r;
        goto done;
    }
    if (other)
        fl_gdc_warnf(w, "%s: %d rows of other data types (the first on line %ld) are ignored",
                     o->path, other, other_line);
    if (no_dir)
        fl_gdc_warnf(w,
                     "%s: %d RNA or methylation rows are ignored: their folder (--rna, "
                     "--methylation) was not given",
                     o->path, no_dir);
    s = merge_rows(&sr, out, w, err);
done:
    reader_destroy(&sr);
    if (s) fl_gdc_sheet_destroy(out);
    return s;
}

void fl_gdc_sheet_destroy(fl_gdc_sheet *sh) {
    for (int i = 0; sh->s && i < sh->n; i++) {
        fl_gdc_sample *s = &sh->s[i];
        free(s->id);
        free(s->case_id);
        free(s->project);
        free(s->label);
        for (int k = 0; k < FL_GDC_N_KINDS; k++) free(s->file[k]);
    }
    free(sh->s);
    memset(sh, 0, sizeof *sh);
}

/* ------------------------------------------------------------------------------------------ */
/* slides and tile folders                                                                     */

static int has_slide_extension(const char *name) {
    static const char *const ext[] = {".svs", ".tif",  ".tiff", ".ndpi",    ".vms", ".vmu",
                                      ".scn", ".mrxs", ".bif",  ".svslide", ".dcm"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot, ext[i]) == 0) return 1;
    return 0;
}

/* The sample an image name belongs to: -1 none, -2 several. */
static int match_sample(const fl_gdc_sheet *sh, const char *name) {
    if (!fl_gdc_is_sample_barcode(name)) return -1;
    int lo = 0, hi = sh->n, n15 = 0, k15 = -1;
    while (lo < hi) { /* first sample >= the name's 16 characters */
        int mid = (lo + hi) / 2;
        if (strncmp(sh->s[mid].id, name, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sh->n && strncmp(sh->s[lo].id, name, 16) == 0) return lo;
    for (int i = lo - 1; i >= 0 && strncmp(sh->s[i].id, name, 15) == 0; i--) n15++, k15 = i;
    for (int i = lo; i < sh->n && strncmp(sh->s[i].id, name, 15) == 0; i++) n15++, k15 = i;
    return n15 == 1 ? k15 : n15 ? -2 : -1;
}

typedef struct {
    fl_gdc_image *m;
    int n, cap, unmatched, ambiguous;
    char example[2][128];
} image_list;

/* Considers dir/name: a candidate when it is a folder (folders) or a slide file (!folders). */
static fl_status consider(image_list *l, const fl_gdc_sheet *sh, const char *dir, const char *name,
                          int folders, int depth, fl_err *err);

static fl_status scan(image_list *l, const fl_gdc_sheet *sh, const char *dir, int folders,
                      int depth, fl_err *err) {
    DIR *d = opendir(dir);
    if (!d)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO,
                       "%s: cannot open the "
                       "folder: %s",
                       dir, strerror(errno));
    struct dirent *e;
    fl_status s = FL_OK;
    while (s == FL_OK && (e = readdir(d)))
        if (e->d_name[0] != '.') s = consider(l, sh, dir, e->d_name, folders, depth, err);
    closedir(d);
    return s;
}

static fl_status consider(image_list *l, const fl_gdc_sheet *sh, const char *dir, const char *name,
                          int folders, int depth, fl_err *err) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    struct stat st;
    if (!p) return nomem(dir, err);
    snprintf(p, len, "%s/%s", dir, name);
    int found = stat(p, &st) == 0;
    int is_dir = found && S_ISDIR(st.st_mode), is_file = found && S_ISREG(st.st_mode);
    fl_status s = FL_OK;
    if (!folders && is_dir && depth == 0 && !fl_gdc_is_sample_barcode(name)) {
        s = scan(l, sh, p, folders, depth + 1, err); /* the GDC layout <uuid>/<file> */
    } else if ((folders && is_dir) || (!folders && is_file && has_slide_extension(name))) {
        int k = match_sample(sh, name);
        if (k < 0) {
            int *count = k == -1 ? &l->unmatched : &l->ambiguous;
            if (!(*count)++) snprintf(l->example[k == -1 ? 0 : 1], 128, "%.120s", name);
        } else {
            if (l->n == l->cap) {
                int cap = l->cap ? 2 * l->cap : 64;
                fl_gdc_image *t = realloc(l->m, (size_t)cap * sizeof *t);
                if (!t) {
                    free(p);
                    return nomem(dir, err);
                }
                l->m = t;
                l->cap = cap;
            }
            l->m[l->n++] = (fl_gdc_image){p, k};
            return FL_OK;
        }
    }
    free(p);
    return s;
}

static int image_cmp(const void *a, const void *b) {
    const fl_gdc_image *x = a, *y = b;
    return x->sample != y->sample ? (x->sample > y->sample) - (x->sample < y->sample)
                                  : strcmp(x->path, y->path);
}

fl_status fl_gdc_find_images(const char *dir, int folders, const fl_gdc_sheet *sheet,
                             fl_gdc_image **match, int *n, const fl_gdc_warn *w, fl_err *err) {
    image_list l = {0};
    const char *what = folders ? "tile folders" : "slides";
    fl_status s = scan(&l, sheet, dir, folders, 0, err);
    *match = NULL;
    *n = 0;
    if (s) {
        fl_gdc_images_free(l.m, l.n);
        return s;
    }
    if (l.n) qsort(l.m, (size_t)l.n, sizeof *l.m, image_cmp);
    if (l.unmatched)
        fl_gdc_warnf(w, "%s: %d %s match no sample of the sheet and are left out (e.g. %s)", dir,
                     l.unmatched, what, l.example[0]);
    if (l.ambiguous)
        fl_gdc_warnf(w,
                     "%s: %d %s match two samples of one case and type (e.g. %s); name them by "
                     "the full sample barcode",
                     dir, l.ambiguous, what, l.example[1]);
    *match = l.m;
    *n = l.n;
    return FL_OK;
}

void fl_gdc_images_free(fl_gdc_image *m, int n) {
    for (int i = 0; m && i < n; i++) free(m[i].path);
    free(m);
}
