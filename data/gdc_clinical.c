/* gdc_clinical.c - the GDC clinical.tsv and exposure.tsv exports (legacy names such as
 * case_submitter_id, or the new portal's dotted names such as cases.submitter_id) to one row per
 * case: age, sex, smoking and stage. Rows repeat per treatment or diagnosis; they are merged
 * field by field. Not a general clinical model: only the fields below are read. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "gdc.h"

const char *const fl_gdc_clinical_columns[FL_GDC_CLINICAL_F] = {"age", "male", "never_smoker",
                                                                "pack_years"};
const char fl_gdc_clinical_encoding[] =
    "{\"source\": \"fedlung cohort import (GDC clinical.tsv / exposure.tsv)\", "
    "\"age\": \"years: age_at_index, else age_at_diagnosis / 365.25\", "
    "\"male\": \"gender: 1 male, 0 female\", "
    "\"never_smoker\": \"tobacco_smoking_status: 1 Lifelong Non-Smoker, 0 current or reformed "
    "smoker\", \"pack_years\": \"pack_years_smoked, 0 for never smokers without a value\", "
    "\"missing\": \"NaN ('--, not reported, unknown)\", \"shared_by_case\": true, "
    "\"duplicates\": \"rows of one case merged, the first non-missing value of each field\"}";

/* ------------------------------------------------------------------------------------------ */
/* value vocabularies                                                                          */

int fl_gdc_stage(const char *text) {
    static const char *const roman[] = {"IV", "III", "II", "I"}; /* longest first */
    static const int stage[] = {3, 2, 1, 0};
    const char *p = text;
    while (*p == ' ') p++;
    if (strncasecmp(p, "stage", 5) == 0) p += 5;
    while (*p == ' ') p++;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(roman[i]);
        if (strncmp(p, roman[i], n) != 0) continue;
        p += n;
        if (*p >= 'A' && *p <= 'C') p++;        /* IA, IIB, IIIC */
        while (isdigit((unsigned char)*p)) p++; /* IA1 (AJCC 8th) */
        while (*p == ' ') p++;
        return *p ? -1 : stage[i];
    }
    return -1;
}

/* 1 if s begins with prefix, ignoring case. */
static int starts(const char *s, const char *prefix) {
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int fl_gdc_never_smoker(const char *text) {
    static const char *const never[] = {"lifelong non", "never", "non-smoker", "nonsmoker"};
    static const char *const smoker[] = {"current", "former", "reformed", "smoker", "ex-smoker"};
    const char *p = text;
    while (*p == ' ') p++;
    if (fl_gdc_is_missing(p) || starts(p, "smoking history not documented")) return -1;
    if (p[0] && !p[1] && p[0] >= '1' && p[0] <= '5') return p[0] == '1'; /* biotab codes */
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (starts(p, never[i])) return 1;
    for (size_t i = 0; i < sizeof smoker / sizeof smoker[0]; i++)
        if (starts(p, smoker[i])) return 0;
    return -2;
}

/* ------------------------------------------------------------------------------------------ */
/* reading rows                                                                                */

enum { F_CASE, F_AGE_INDEX, F_AGE_DIAG, F_GENDER, F_STAGE, F_SMOKING, F_PACK_YEARS, N_FIELDS };
/* Accepted column names per field: the legacy export's, then the new portal's. */
static const char *const field_names[N_FIELDS][2] = {
    {"case_submitter_id", "cases.submitter_id"},
    {"age_at_index", "demographic.age_at_index"},
    {"age_at_diagnosis", "diagnoses.age_at_diagnosis"},
    {"gender", "demographic.gender"},
    {"ajcc_pathologic_stage", "diagnoses.ajcc_pathologic_stage"},
    {"tobacco_smoking_status", "exposures.tobacco_smoking_status"},
    {"pack_years_smoked", "exposures.pack_years_smoked"}};
static const int numeric_field[N_FIELDS] = {
    [F_AGE_INDEX] = 1, [F_AGE_DIAG] = 1, [F_PACK_YEARS] = 1};

/* One row: its non-missing values of the fields (NULL: missing or no such column). */
typedef struct {
    char *v[N_FIELDS];
    int file; /* 0 clinical, 1 exposure */
    long line;
} raw_row;

typedef struct {
    const char *path[2];
    raw_row *row;
    int n, cap;
} raw_rows;

static fl_status nomem(const char *path, fl_err *err) {
    return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
}

static void raw_rows_free(raw_rows *r) {
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < N_FIELDS; k++) free(r->row[i].v[k]);
    free(r->row);
}

/* Reads every row of one file into rr. */
static fl_status read_file(raw_rows *rr, int file, fl_err *err) {
    const char *path = rr->path[file];
    fl_csv *csv = NULL;
    fl_csv_record rec;
    int col[N_FIELDS], r, dotted = 0, first = 1;
    fl_status s = fl_csv_open(&csv, path, '\t', err);
    if (s) return s;
    const fl_csv_record *h = fl_csv_header(csv);
    for (int j = 0; j < h->n; j++) dotted |= strchr(h->field[j], '.') != NULL;
    for (int k = 0; k < N_FIELDS; k++) {
        col[k] = -1;
        for (int j = 0; j < h->n && col[k] < 0; j++)
            if (strcmp(h->field[j], field_names[k][0]) == 0 ||
                strcmp(h->field[j], field_names[k][1]) == 0)
                col[k] = j;
    }
    if (col[F_CASE] < 0) {
        s = fl_fail(err, FL_EFORMAT,
                    "%s:1: no case column (case_submitter_id, or cases.submitter_id in the new "
                    "portal's export); is this a GDC %s.tsv?",
                    path, file ? "exposure" : "clinical");
        goto done;
    }
    while ((r = fl_csv_next(csv, &rec, err)) == 1) {
        const char *cs = rec.field[col[F_CASE]];
        /* The new portal's export may have a second row describing the columns. */
        if (first && dotted && !fl_gdc_is_case_barcode(cs)) {
            first = 0;
            continue;
        }
        first = 0;
        if (fl_gdc_is_missing(cs)) {
            s = fl_fail(err, FL_EFORMAT, "%s:%ld: the case id (%s) is missing", path, rec.line,
                        h->field[col[F_CASE]]);
            goto done;
        }
        if (rr->n == rr->cap) {
            int cap = rr->cap ? 2 * rr->cap : 256;
            raw_row *t = realloc(rr->row, (size_t)cap * sizeof *t);
            if (!t) goto nomem;
            rr->row = t;
            rr->cap = cap;
        }
        raw_row *row = &rr->row[rr->n++];
        memset(row, 0, sizeof *row);
        row->file = file;
        row->line = rec.line;
        for (int k = 0; k < N_FIELDS; k++) {
            const char *v = col[k] >= 0 ? rec.field[col[k]] : "";
            double x;
            if (fl_gdc_is_missing(v)) continue;
            if (numeric_field[k] && fl_gdc_parse_number(v, &x)) {
                s = fl_fail(err, FL_EFORMAT, "%s:%ld: %s \"%.40s\" is not a number", path, rec.line,
                            h->field[col[k]], v);
                goto done;
            }
            if (!(row->v[k] = strdup(v))) goto nomem;
        }
    }
    if (r < 0) s = (fl_status)r;
done:
    fl_csv_free(csv);
    return s;
nomem:
    fl_csv_free(csv);
    return nomem(path, err);
}

static int raw_cmp(const void *a, const void *b) {
    const raw_row *x = a, *y = b;
    int r = strcmp(x->v[F_CASE], y->v[F_CASE]);
    if (r) return r;
    if (x->file != y->file) return x->file - y->file;
    return (x->line > y->line) - (x->line < y->line);
}

/* ------------------------------------------------------------------------------------------ */
/* merging                                                                                     */

/* Conflicts seen in one file: the count and the first. */
typedef struct {
    int n;
    char text[300];
} conflicts;

/* Encodes the merged values of one case (v[k]: the first non-missing value of field k). */
static void encode_case(fl_gdc_case *c, char *const *v, int *unknown_smoking, char *example) {
    double x;
    c->age = c->male = c->never_smoker = c->pack_years = NAN;
    if (v[F_AGE_INDEX] && !fl_gdc_parse_number(v[F_AGE_INDEX], &x))
        c->age = (float)x;
    else if (v[F_AGE_DIAG] && !fl_gdc_parse_number(v[F_AGE_DIAG], &x))
        c->age = (float)(x / 365.25);
    if (v[F_GENDER] && strcasecmp(v[F_GENDER], "male") == 0) c->male = 1;
    if (v[F_GENDER] && strcasecmp(v[F_GENDER], "female") == 0) c->male = 0;
    int never = v[F_SMOKING] ? fl_gdc_never_smoker(v[F_SMOKING]) : -1;
    if (never >= 0) c->never_smoker = (float)never;
    if (never == -2 && !(*unknown_smoking)++) snprintf(example, 80, "%.70s", v[F_SMOKING]);
    if (v[F_PACK_YEARS] && !fl_gdc_parse_number(v[F_PACK_YEARS], &x))
        c->pack_years = (float)x;
    else if (never == 1)
        c->pack_years = 0;
    c->stage = v[F_STAGE] ? fl_gdc_stage(v[F_STAGE]) : -1;
}

/* Merges the sorted rows of each case into out->c. */
static fl_status merge(raw_rows *rr, fl_gdc_clinical *out, const fl_gdc_warn *w, fl_err *err) {
    conflicts cf[2] = {{0}, {0}};
    int unknown_smoking = 0;
    char example[80] = "";
    if (!(out->c = calloc((size_t)(rr->n ? rr->n : 1), sizeof *out->c)))
        return nomem(rr->path[0], err);
    for (int i = 0; i < rr->n;) {
        int j = i;
        while (j < rr->n && strcmp(rr->row[j].v[F_CASE], rr->row[i].v[F_CASE]) == 0) j++;
        if (rr->row[i].file == 1) { /* exposure rows only: no clinical row for the case */
            out->exposure_unmatched += j - i;
            i = j;
            continue;
        }
        char *v[N_FIELDS] = {0};
        long line[N_FIELDS] = {0};
        int from[N_FIELDS] = {0};
        for (int a = i; a < j; a++) {
            const raw_row *r = &rr->row[a];
            for (int k = 1; k < N_FIELDS; k++) {
                if (!r->v[k]) continue;
                if (!v[k]) {
                    v[k] = r->v[k];
                    line[k] = r->line;
                    from[k] = r->file;
                } else if (strcmp(v[k], r->v[k]) != 0 && !cf[r->file].n++) {
                    snprintf(cf[r->file].text, sizeof cf[r->file].text,
                             "%s:%ld: case %s has %s \"%s\", but \"%s\" on line %ld of %s",
                             rr->path[r->file], r->line, r->v[F_CASE], field_names[k][0], r->v[k],
                             v[k], line[k], rr->path[from[k]]);
                }
            }
        }
        fl_gdc_case *c = &out->c[out->n++];
        c->case_id = rr->row[i].v[F_CASE];
        rr->row[i].v[F_CASE] = NULL;
        c->line = rr->row[i].line;
        encode_case(c, v, &unknown_smoking, example);
        i = j;
    }
    for (int f = 0; f < 2; f++)
        if (cf[f].n)
            fl_gdc_warnf(w,
                         "%s; %d such conflicts in %s: the first non-missing value (in file and "
                         "line order) is kept",
                         cf[f].text, cf[f].n, rr->path[f]);
    if (unknown_smoking)
        fl_gdc_warnf(w,
                     "%s: %d cases have a tobacco_smoking_status fedlung does not know (e.g. "
                     "\"%s\"); their never_smoker is NaN",
                     rr->path[rr->path[1] ? 1 : 0], unknown_smoking, example);
    return FL_OK;
}

fl_status fl_gdc_clinical_read(const char *clinical, const char *exposure, fl_gdc_clinical *out,
                               const fl_gdc_warn *w, fl_err *err) {
    raw_rows rr = {{clinical, exposure}, NULL, 0, 0};
    fl_status s;
    memset(out, 0, sizeof *out);
    if ((s = read_file(&rr, 0, err)) || (exposure && (s = read_file(&rr, 1, err)))) goto done;
    if (rr.n) qsort(rr.row, (size_t)rr.n, sizeof *rr.row, raw_cmp);
    s = merge(&rr, out, w, err);
done:
    raw_rows_free(&rr);
    if (s) fl_gdc_clinical_destroy(out);
    return s;
}

static int case_key_cmp(const void *key, const void *elem) {
    return strcmp(key, ((const fl_gdc_case *)elem)->case_id);
}

const fl_gdc_case *fl_gdc_clinical_find(const fl_gdc_clinical *cl, const char *case_id) {
    if (!cl->n) return NULL;
    return bsearch(case_id, cl->c, (size_t)cl->n, sizeof *cl->c, case_key_cmp);
}

void fl_gdc_clinical_destroy(fl_gdc_clinical *cl) {
    for (int i = 0; cl->c && i < cl->n; i++) free(cl->c[i].case_id);
    free(cl->c);
    memset(cl, 0, sizeof *cl);
}
