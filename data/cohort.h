/* cohort.h - a site's cohort: patients (samples) with labels, splits and sites; H&E tiles;
 * RNA, methylation and clinical matrices. One HDF5 file per site (layout in docs/formats.md).
 * Everything but the tile pixels is held in memory (hundreds to thousands of patients); tiles
 * are written and read in batches, never all at once. Not a preprocessing step: values are
 * stored as imported (RNA log2(TPM+1), methylation beta, clinical encoded). */
#ifndef FL_COHORT_H
#define FL_COHORT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_COHORT_VERSION 1
#define FL_MAX_CLASSES 64

typedef enum { FL_SPLIT_TRAIN = 0, FL_SPLIT_VAL = 1, FL_SPLIT_TEST = 2 } fl_split;

typedef enum { FL_MOD_RNA = 0, FL_MOD_METHYLATION = 1, FL_MOD_CLINICAL = 2, FL_N_OMICS = 3 } fl_omics;

/* One omics matrix: P rows (patients, in cohort order) x F features. A patient without this
 * modality has present[p] = 0 and a row of NaN; individual missing values are NaN. */
typedef struct {
    int F;           /* 0: the modality is absent from the cohort */
    char **features; /* F names: gene ids, probe ids, or clinical column names */
    float *values;   /* P x F, row-major */
    uint8_t *present;/* P */
    char *encoding;  /* clinical only: how columns were encoded (free text / JSON), or NULL */
} fl_omics_matrix;

typedef struct {
    int P;                   /* patients (samples) */
    char **id;               /* P sample ids (unique) */
    char **case_id;          /* P case (patient) ids: samples of a case share a split */
    int32_t *site;           /* P, index into site_names */
    int32_t *label;          /* P, index into class_names */
    int32_t *stage;          /* P, 0..3 for stage I..IV, -1 unknown */
    uint8_t *split;          /* P, fl_split */
    int n_classes;
    char **class_names;      /* fixed order */
    int n_sites;
    char **site_names;
    fl_omics_matrix omics[FL_N_OMICS];
    /* tiles */
    int tile;                /* tile edge in px, 0: no tiles */
    int64_t n_tiles;
    int32_t *tile_patient;   /* n_tiles, patient index of each tile (tiles grouped by patient) */
    char *provenance;        /* free text: generator and options, or import sources */
} fl_cohort;

const char *fl_omics_name(fl_omics m);      /* "rna", "methylation", "clinical" */
const char *fl_split_name(fl_split s);      /* "train", "val", "test" */

/* Frees everything a cohort owns (not the struct itself); NULL-safe; leaves it zeroed. */
void fl_cohort_destroy(fl_cohort *c);

/* ---- reading ---- */
typedef struct fl_cohort_file fl_cohort_file;

/* Opens a cohort file and loads everything but the tile pixels into c. Validates the format
 * tag and version, every dataset's shape against P / F / n_tiles, label / site / split ranges
 * and unique ids; failures name the file, the dataset and the mismatch
 * ("cohort.h5: /rna/values has 812 columns, /rna/genes has 810"). */
fl_status fl_cohort_open(fl_cohort_file **out, fl_cohort *c, const char *path, fl_err *err);
/* Reads tiles [start, start+count) into out (count x tile x tile x 3 uint8, HWC). */
fl_status fl_cohort_read_tiles(fl_cohort_file *f, int64_t start, int64_t count, uint8_t *out,
                               fl_err *err);
void fl_cohort_close(fl_cohort_file *f);
/* Convenience: open, load the metadata, close (no tile access). */
fl_status fl_cohort_load(fl_cohort *c, const char *path, fl_err *err);

/* ---- writing ---- */
typedef struct fl_cohort_writer fl_cohort_writer;

/* Starts writing c (its patients, classes, sites, omics, provenance; c->n_tiles and
 * c->tile_patient describe the tiles to come, which must be grouped by patient) to a
 * temporary file beside path. Tiles are then appended in order with fl_cohort_write_tiles.
 * fl_cohort_writer_commit renames it to path; fl_cohort_writer_abort (or any failure) removes
 * it, so a failed command leaves nothing behind. */
fl_status fl_cohort_writer_begin(fl_cohort_writer **out, const fl_cohort *c, const char *path,
                                 fl_err *err);
fl_status fl_cohort_write_tiles(fl_cohort_writer *w, const uint8_t *pixels, int64_t count,
                                fl_err *err);
fl_status fl_cohort_writer_commit(fl_cohort_writer *w, fl_err *err); /* frees w */
void fl_cohort_writer_abort(fl_cohort_writer *w);                    /* frees w; NULL-safe */

/* Writes a cohort without tiles (or copies tiles from src_file for the kept patients when
 * src_file is non-NULL): used by import-table and split. keep (P of src, or NULL = all)
 * selects patients. */
fl_status fl_cohort_save_subset(const fl_cohort *c, fl_cohort_file *src_file, const uint8_t *keep,
                                const char *path, fl_err *err);

#endif
