/* gdc_rna.c - GDC STAR - Counts gene tables to the /rna matrix (log2(x + 1) of one column), and
 * the line reader the RNA and methylation parsers share. Files are read one line at a time, so
 * only the matrix itself is held. Not an aligner's output in general: the header, the four N_*
 * rows and the gene order are those of the GDC mRNA pipeline. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gdc.h"

/* ------------------------------------------------------------------------------------------ */
/* lines                                                                                       */

fl_status fl_gdc_lines_open(fl_gdc_lines *r, const char *path, fl_err *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!(r->f = fopen(path, "rb")))
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    return FL_OK;
}

int fl_gdc_lines_next(fl_gdc_lines *r, char **line, fl_err *err) {
    errno = 0;
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) {
        if (ferror(r->f))
            return fl_fail(err, FL_EIO, "%s:%ld: read error: %s", r->path, r->line + 1,
                           strerror(errno ? errno : EIO));
        return 0;
    }
    r->line++;
    if ((size_t)n != strlen(r->buf))
        return fl_fail(err, FL_EFORMAT, "%s:%ld: a NUL byte; this is a binary file, not a table",
                       r->path, r->line);
    if (n > 0 && r->buf[n - 1] == '\n') r->buf[--n] = '\0';
    if (n > 0 && r->buf[n - 1] == '\r') r->buf[--n] = '\0';
    *line = r->buf;
    return 1;
}

void fl_gdc_lines_close(fl_gdc_lines *r) {
    if (r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int fl_gdc_split_tabs(char *line, char **field, int max) {
    int n = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (n < max) {
            field[n] = p;
            if (tab) *tab = '\0';
        }
        n++;
        if (!tab) return n;
        p = tab + 1;
    }
}

int fl_gdc_parse_number(const char *s, double *v) {
    char *end;
    while (*s == ' ') s++;
    if (!*s) return -1;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end || errno == ERANGE || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* STAR - Counts                                                                               */

static const char *const value_names[] = {"tpm", "fpkm", "fpkm_uq", "counts"};
static const char *const value_columns[] = {"tpm_unstranded", "fpkm_unstranded",
                                            "fpkm_uq_unstranded", "unstranded"};

int fl_gdc_rna_value_parse(const char *text, fl_gdc_rna_value *v) {
    for (int i = 0; i < 4; i++)
        if (strcmp(text, value_names[i]) == 0) {
            *v = (fl_gdc_rna_value)i;
            return 0;
        }
    return -1;
}

const char *fl_gdc_rna_column(fl_gdc_rna_value v) {
    return value_columns[v];
}

#define STAR_MAX_FIELDS 16

/* Reads one STAR - Counts file (ctx: the fl_gdc_rna_value). With row == NULL the genes are
 * appended to first; otherwise they must equal first's (read from ref), values to row[0..n). */
static fl_status read_star(void *ctx, const char *path, fl_gdc_named *first, const char *ref,
                           float *row, fl_err *err) {
    const fl_gdc_rna_value v = *(const fl_gdc_rna_value *)ctx;
    fl_gdc_lines r;
    char *line, *f[STAR_MAX_FIELDS];
    int nh = 0, col = -1, got, genes = 0;
    fl_status s = fl_gdc_lines_open(&r, path, err);
    if (s) return s;
    while ((got = fl_gdc_lines_next(&r, &line, err)) == 1) {
        if (nh == 0) { /* the "# gene-model: ..." comment, then the header */
            if (line[0] == '#') continue;
            nh = fl_gdc_split_tabs(line, f, STAR_MAX_FIELDS);
            if (nh < 4 || nh > STAR_MAX_FIELDS || strcmp(f[0], "gene_id") != 0 ||
                strcmp(f[1], "gene_name") != 0 || strcmp(f[2], "gene_type") != 0) {
                s = fl_fail(err, FL_EFORMAT,
                            "%s:%ld: the header does not begin gene_id, gene_name, gene_type: "
                            "not a STAR - Counts gene table (*.augmented_star_gene_counts.tsv)",
                            path, r.line);
                goto done;
            }
            for (int j = 3; j < nh; j++)
                if (strcmp(f[j], value_columns[v]) == 0) col = j;
            if (col < 0) {
                s = fl_fail(err, FL_EFORMAT,
                            "%s:%ld: no column \"%s\" (--rna-value %s) in the header", path, r.line,
                            value_columns[v], value_names[v]);
                goto done;
            }
            continue;
        }
        int n = fl_gdc_split_tabs(line, f, STAR_MAX_FIELDS);
        if (n != nh) {
            s = fl_fail(err, FL_EFORMAT, "%s:%ld: %d fields, the header has %d (a truncated file?)",
                        path, r.line, n, nh);
            goto done;
        }
        if (strncmp(f[0], "N_", 2) == 0) continue; /* N_unmapped, N_multimapping, ... */
        double x;
        if (fl_gdc_parse_number(f[col], &x) || x < 0) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:%ld: %s of gene %.40s is \"%.40s\", not a non-negative number", path,
                        r.line, value_columns[v], f[0], f[col]);
            goto done;
        }
        float y = (float)log2(x + 1.0);
        if (!row) {
            if (fl_gdc_named_push(first, f[0], y) < 0) {
                s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
        } else if (genes >= first->n) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:%ld: gene %.40s is one more than the %d genes of %s; every RNA file "
                        "must list the same genes in the same order",
                        path, r.line, f[0], first->n, ref);
            goto done;
        } else if (strcmp(first->id[genes], f[0]) != 0) {
            s = fl_fail(err, FL_EFORMAT,
                        "%s:%ld: gene %.40s where %s has %.40s; every RNA file must list the "
                        "same genes in the same order",
                        path, r.line, f[0], ref, first->id[genes]);
            goto done;
        } else {
            row[genes] = y;
        }
        genes++;
    }
    if (got < 0) {
        s = (fl_status)got;
    } else if (nh == 0) {
        s = fl_fail(err, FL_EFORMAT, "%s: empty, or no header line (a truncated file?)", path);
    } else if (genes == 0) {
        s = fl_fail(err, FL_EFORMAT, "%s:%ld: no gene rows below the header and N_* rows", path,
                    r.line);
    } else if (row && genes != first->n) {
        s = fl_fail(err, FL_EFORMAT,
                    "%s:%ld: ends after %d genes, %s has %d (a truncated file?); every RNA file "
                    "must list the same genes",
                    path, r.line, genes, ref, first->n);
    }
done:
    fl_gdc_lines_close(&r);
    return s;
}

fl_status fl_gdc_rna_load(char *const *paths, int P, fl_gdc_rna_value v, fl_omics_matrix *m,
                          fl_err *err) {
    return fl_gdc_load_matrix(paths, P, read_star, &v, m, err);
}

/* ------------------------------------------------------------------------------------------ */
/* what the RNA and methylation matrices share                                                 */

int fl_gdc_named_push(fl_gdc_named *l, const char *id, float value) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1024;
        char **ids = realloc(l->id, (size_t)cap * sizeof *ids);
        if (ids) l->id = ids;
        float *v = ids ? realloc(l->value, (size_t)cap * sizeof *v) : NULL;
        if (!v) return -1;
        l->value = v;
        l->cap = cap;
    }
    if (!(l->id[l->n] = strdup(id))) return -1;
    l->value[l->n++] = value;
    return 0;
}

void fl_gdc_matrix_clear(fl_omics_matrix *m) {
    fl_cohort owner = {0}; /* the cohort's destructor knows how a matrix is freed */
    owner.omics[0] = *m;
    fl_cohort_destroy(&owner);
    memset(m, 0, sizeof *m);
}

fl_status fl_gdc_load_matrix(char *const *paths, int P, fl_gdc_file_reader read, void *ctx,
                             fl_omics_matrix *m, fl_err *err) {
    fl_gdc_named first = {0};
    fl_status s = FL_OK;
    int p0 = 0;
    memset(m, 0, sizeof *m);
    while (p0 < P && !paths[p0]) p0++;
    if (p0 == P) return FL_OK; /* no file at all: the modality is absent */
    if ((s = read(ctx, paths[p0], &first, NULL, NULL, err))) goto fail;
    m->F = first.n;
    m->values = malloc((size_t)P * (size_t)m->F * sizeof *m->values);
    m->present = calloc((size_t)P, 1);
    if (!m->values || !m->present) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for %d x %d values of %s and the like", P, m->F,
                    paths[p0]);
        goto fail;
    }
    for (int p = 0; p < P; p++) {
        float *row = m->values + (size_t)p * (size_t)m->F;
        if (p == p0) {
            memcpy(row, first.value, (size_t)m->F * sizeof *row);
        } else if (paths[p]) {
            if ((s = read(ctx, paths[p], &first, paths[p0], row, err))) goto fail;
        } else {
            for (int j = 0; j < m->F; j++) row[j] = NAN;
        }
        m->present[p] = paths[p] != NULL;
    }
    m->features = first.id; /* first.n names */
    free(first.value);
    return FL_OK;
fail:
    for (int j = 0; j < first.n; j++) free(first.id[j]);
    free(first.id);
    free(first.value);
    m->F = 0;
    fl_gdc_matrix_clear(m);
    return s;
}
