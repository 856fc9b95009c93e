/* gdc.h - builds a cohort from what a consortium downloads from the GDC (TCGA): the sample sheet
 * that links files to samples, STAR - Counts RNA tables, SeSAMe methylation betas, the clinical
 * and exposure exports (legacy and new-portal column names), and H&E tiles from slides or tile
 * folders. Not a downloader and not a normaliser: values are stored as the files give them
 * (RNA as log2(x+1)). The rules (what is an error, how labels, sites and splits are derived)
 * are in docs/formats.md, "GDC downloads". */
#ifndef FL_GDC_H
#define FL_GDC_H

#include <stdint.h>
#include <stdio.h>

#include "../common/status.h"
#include "cohort.h"
#include "slides.h"

/* Receives one sentence per warning (e.g. a duplicate file kept out); may be NULL. */
typedef void (*fl_gdc_warn_fn)(void *ctx, const char *msg);

typedef struct {
    fl_gdc_warn_fn fn;
    void *ctx;
} fl_gdc_warn;

/* Formats a warning and hands it to w->fn (nothing when w or w->fn is NULL). */
void fl_gdc_warnf(const fl_gdc_warn *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- identifiers and small parsers ---- */

/* 1 if s begins with a TCGA-style sample barcode "PPPP-SS-CCCC-TTV" (project, tissue source
 * site, participant, two-digit sample type, vial letter), else 0. */
int fl_gdc_is_sample_barcode(const char *s);
/* 1 if s is exactly a case barcode "PPPP-SS-CCCC". */
int fl_gdc_is_case_barcode(const char *s);

/* A GDC missing value: empty, '--, --, NA, not reported, unknown, not allowed to collect
 * (blanks around ignored, any case). */
int fl_gdc_is_missing(const char *s);

/* ajcc_pathologic_stage text to 0..3 ("Stage I", "Stage IA", "IB" -> 0; "Stage II*" -> 1;
 * "Stage III*" -> 2; "Stage IV*" -> 3); anything else (missing, "Stage X", "Stage 0") -> -1. */
int fl_gdc_stage(const char *text);

/* tobacco_smoking_status to never_smoker: 1 lifelong non-smoker (or legacy code 1), 0 current
 * or reformed smoker (codes 2-5), -1 missing, -2 a value not recognised. */
int fl_gdc_never_smoker(const char *text);

/* ---- the sample sheet ---- */

typedef enum { FL_GDC_RNA = 0, FL_GDC_METHYLATION = 1, FL_GDC_N_KINDS = 2 } fl_gdc_kind;

typedef struct {
    char *id;                   /* sample barcode, 16 characters: "TCGA-05-4244-01A" */
    char *case_id;              /* its first 12 characters */
    char tss[3];                /* barcode characters 6-7: the tissue source site */
    int type;                   /* barcode characters 14-15: 1..9 tumour, 11 solid tissue normal */
    char *project;              /* Project ID */
    char *label;                /* NORMAL for type 11, else from --label-column or the rule */
    long line;                  /* the first sheet line naming the sample */
    char *file[FL_GDC_N_KINDS]; /* resolved paths (NULL: none) */
    long file_line[FL_GDC_N_KINDS];
} fl_gdc_sample;

typedef struct {
    const char *path;
    const char *dir[FL_GDC_N_KINDS]; /* --rna, --methylation (NULL: that kind's rows ignored) */
    const char *label_column;        /* a sheet column holding the class, or NULL */
    const char *label_rule;          /* "TCGA-LUAD=LUAD,..." or NULL (project without "TCGA-") */
} fl_gdc_sheet_options;

typedef struct {
    int n;
    fl_gdc_sample *s; /* sorted by id, so the samples of a case are neighbours */
} fl_gdc_sheet;

/* Reads the sample sheet: rows of the kinds whose folder is given (Data Type "Gene Expression
 * Quantification" or "Methylation Beta Value"), each resolved to DIR/<File ID>/<File Name> or
 * DIR/<File Name>. Errors (FILE:LINE and the reason): a missing column, a sample id that is not
 * a barcode or a Case ID that is not its first 12 characters, a file that is not there, a
 * project missing from --label-rule, no usable rows. Warnings: a second file of one kind for
 * a sample (the first row is kept), sample types other than tumour (01-09) and solid tissue
 * normal (11), which are left out. out is emptied first; destroy it with
 * fl_gdc_sheet_destroy. */
fl_status fl_gdc_sheet_read(const fl_gdc_sheet_options *o, fl_gdc_sheet *out, const fl_gdc_warn *w,
                            fl_err *err);
void fl_gdc_sheet_destroy(fl_gdc_sheet *s);

/* Slides (regular files with an OpenSlide extension) or tile folders (sub-folders) in dir or
 * one level below (the GDC layout <uuid>/<name>), matched to samples by name: the first 16
 * characters equal a sample id, or else the first 15 (case and sample type: diagnostic
 * slides are vial "Z") match exactly one sample. *match gets n entries of {path, sample index},
 * sorted by sample then path; names matching no sample, or two, are left out with a warning.
 * folders: 1 to list folders (--tiles), 0 slide files (--slides). */
typedef struct {
    char *path;
    int sample;
} fl_gdc_image;

fl_status fl_gdc_find_images(const char *dir, int folders, const fl_gdc_sheet *sheet,
                             fl_gdc_image **match, int *n, const fl_gdc_warn *w, fl_err *err);
void fl_gdc_images_free(fl_gdc_image *m, int n);

/* ---- RNA and methylation ---- */

typedef enum { FL_GDC_TPM = 0, FL_GDC_FPKM, FL_GDC_FPKM_UQ, FL_GDC_COUNTS } fl_gdc_rna_value;

/* "tpm", "fpkm", "fpkm_uq", "counts" -> *v; -1 if text is none of them. */
int fl_gdc_rna_value_parse(const char *text, fl_gdc_rna_value *v);
/* The STAR - Counts column a value is read from ("tpm_unstranded", ..., "unstranded"). */
const char *fl_gdc_rna_column(fl_gdc_rna_value v);

/* Reads P STAR - Counts files (paths[p] NULL: sample p has no RNA) into m: features are the gene
 * ids of the first file (with version, "ENSG00000136352.13"), values log2(x + 1) of the chosen
 * column, NaN rows and present 0 where there is no file. Every file must have the header, skip
 * its N_* rows and list the same genes in the same order; a difference is an error naming both
 * files and the line. m is emptied first; on failure it holds nothing. */
fl_status fl_gdc_rna_load(char *const *paths, int P, fl_gdc_rna_value v, fl_omics_matrix *m,
                          fl_err *err);

/* Reads P SeSAMe beta files (headerless "probe<TAB>beta", NA missing; paths[p] NULL: no
 * methylation) into m, features the first file's probes in its order. Every file must list the
 * same probes (in any order); a probe one file lacks or repeats is an error naming both files.
 * Probes missing in more than max_missing (0..1) of the samples with a file are dropped
 * (*dropped counts them; NULL allowed). */
fl_status fl_gdc_methylation_load(char *const *paths, int P, double max_missing, fl_omics_matrix *m,
                                  int *dropped, fl_err *err);

/* ---- clinical ---- */

/* One case's clinical row after de-duplication (NaN: missing). */
typedef struct {
    char *case_id;      /* case_submitter_id / cases.submitter_id */
    float age;          /* years: age_at_index, else age_at_diagnosis / 365.25 */
    float male;         /* gender: 1 male, 0 female */
    float never_smoker; /* tobacco_smoking_status: 1 lifelong non-smoker, 0 smoker */
    float pack_years;   /* pack_years_smoked; 0 for never smokers without a value */
    int stage;          /* ajcc_pathologic_stage, 0..3 or -1 */
    long line;          /* the case's first row in the clinical file */
} fl_gdc_case;

typedef struct {
    int n;
    fl_gdc_case *c;         /* sorted by case_id */
    int exposure_unmatched; /* exposure rows of cases not in the clinical file */
} fl_gdc_clinical;

/* Reads clinical.tsv and, if exposure is non-NULL, exposure.tsv (legacy or dotted new-portal
 * column names; a second, description row under a dotted header is skipped). Rows of one case
 * are merged field by field, the first non-missing value winning; differing non-missing values
 * give one warning per file. Errors: a file that cannot be read, a ragged row, no case id
 * column, a case id missing, a number column (age, pack-years) holding text. out is emptied
 * first; destroy with fl_gdc_clinical_destroy. */
fl_status fl_gdc_clinical_read(const char *clinical, const char *exposure, fl_gdc_clinical *out,
                               const fl_gdc_warn *w, fl_err *err);
/* The case with that id, or NULL. */
const fl_gdc_case *fl_gdc_clinical_find(const fl_gdc_clinical *cl, const char *case_id);
void fl_gdc_clinical_destroy(fl_gdc_clinical *cl);

/* The clinical features written per sample, in this order, and the encoding attribute. */
#define FL_GDC_CLINICAL_F 4
extern const char *const fl_gdc_clinical_columns[FL_GDC_CLINICAL_F];
extern const char fl_gdc_clinical_encoding[];

/* ---- the import ---- */

typedef struct {
    const char *sample_sheet;
    const char *rna_dir, *methylation_dir;
    const char *clinical, *exposure;    /* exposure needs clinical */
    const char *slides_dir, *tiles_dir; /* at most one */
    const char *classes;      /* "LUAD,LUSC,NORMAL": the class order; NULL: sorted, NORMAL last */
    const char *label_column; /* see fl_gdc_sheet_options */
    const char *label_rule;
    fl_gdc_rna_value rna_value; /* default tpm */
    double max_probe_missing;   /* default 0.2 */
    fl_slide_options slide;     /* tile (also the --tiles size), mpp, magnification, max_tiles */
    int split[3];               /* train/val/test weights, default 70/15/15 */
    uint64_t seed;              /* default 1 */
    int quiet;                  /* no progress on stderr */
    fl_gdc_warn warn;
} fl_gdc_options;

void fl_gdc_options_default(fl_gdc_options *o);

/* Builds everything but the tiles: samples (sorted by id), classes, sites (TSS codes), splits
 * (by case, stratified by the case's class, seeded), stage, RNA, methylation, clinical,
 * provenance. The sheet is returned too (for matching images); destroy both. */
fl_status fl_gdc_build(const fl_gdc_options *o, fl_cohort *c, fl_gdc_sheet *sheet, fl_err *err);

/* fl_gdc_build, then tiles (one slide or folder at a time, spooled to an unlinked temporary file
 * beside out_path), then the cohort written atomically: on any failure nothing is left. */
fl_status fl_gdc_import(const fl_gdc_options *o, const char *out_path, fl_err *err);

/* ---- line reading shared by the parsers ---- */

typedef struct {
    FILE *f;
    const char *path;
    char *buf;
    size_t cap;
    long line; /* of the last line returned */
} fl_gdc_lines;

/* Opens path (errors name it: FL_ENOTFOUND, FL_EIO). */
fl_status fl_gdc_lines_open(fl_gdc_lines *r, const char *path, fl_err *err);
/* The next line without its line end ("\n" or "\r\n") in *line (valid until the next call):
 * 1, 0 at the end, or a negative status (a read error, a NUL byte: "FILE:LINE: ..."). */
int fl_gdc_lines_next(fl_gdc_lines *r, char **line, fl_err *err);
void fl_gdc_lines_close(fl_gdc_lines *r);
/* Splits line at tabs in place into at most max fields; returns the number of fields there are
 * (which may exceed max: the rest are not split). */
int fl_gdc_split_tabs(char *line, char **field, int max);
/* Parses a whole field as a finite decimal number; 0 on success. */
int fl_gdc_parse_number(const char *s, double *v);
/* Frees what an omics matrix holds and zeroes it. */
void fl_gdc_matrix_clear(fl_omics_matrix *m);

/* Features with one value each, growing while the first file of a modality is read. */
typedef struct {
    char **id;
    float *value;
    int n, cap;
} fl_gdc_named;
/* Appends a copy of id and value; -1 when out of memory. */
int fl_gdc_named_push(fl_gdc_named *l, const char *id, float value);

/* Reads one file of a modality. With row == NULL it appends the file's features and values to
 * first; otherwise the file must list first's features (read from the file ref) and its values
 * go to row[0..first->n). Errors name path and the line. */
typedef fl_status (*fl_gdc_file_reader)(void *ctx, const char *path, fl_gdc_named *first,
                                        const char *ref, float *row, fl_err *err);
/* The P x F matrix of P files (paths[p] NULL: row p NaN, present 0) through read; features are
 * those of the first file. m is emptied first; on failure it holds nothing. */
fl_status fl_gdc_load_matrix(char *const *paths, int P, fl_gdc_file_reader read, void *ctx,
                             fl_omics_matrix *m, fl_err *err);

#endif
