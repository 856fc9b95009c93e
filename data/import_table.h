/* import_table.h - builds a cohort from one table (CSV/TSV, one row per patient): the id, label,
 * optional site and split columns, and every other column as a feature of one modality
 * (clinical, rna or methylation). Numbers are kept as float; text columns of a clinical table
 * are one-hot encoded. Not a merger: one table gives one modality, without tiles.
 * The rules (missing values, split rounding) are in docs/formats.md, "Importing a table". */
#ifndef FL_IMPORT_TABLE_H
#define FL_IMPORT_TABLE_H

#include <stdint.h>

#include "../common/status.h"
#include "cohort.h"

/* Distinct values a text column may have before it is refused as an identifier-like column. */
#define FL_IMPORT_MAX_LEVELS 256

typedef struct {
    const char *csv;       /* the table's path */
    char delim;            /* ',' or '\t' to force one; 0: a tab in the header means TSV */
    const char *id_col;    /* required: unique sample ids (case id = sample id) */
    const char *label_col; /* required: the class of each row, kept verbatim */
    const char *site_col;  /* optional: the site of each row; NULL: one site "site0" */
    const char *split_col; /* optional: train / val / test per row; NULL: a seeded split */
    const char *classes;   /* optional: "A,B,C", the class order (a label outside is an error) */
    const char *ignore;    /* optional: "c1,c2", columns that are not features */
    fl_omics modality;     /* which matrix the feature columns fill */
    uint64_t seed;         /* seeded split: default 1 */
    int split[3];          /* seeded split: train / val / test weights, default 70 / 15 / 15 */
} fl_import_options;

/* Fills o with the defaults above (csv, id_col and label_col NULL, modality clinical). */
void fl_import_options_default(fl_import_options *o);

/* Parses "70/15/15" (three non-negative integers with a positive sum, train's positive) into
 * w[3]. Returns FL_OK or FL_EINVAL with a sentence quoting text. */
fl_status fl_import_parse_split(const char *text, int w[3], fl_err *err);

/* Reads the table and fills out (caller destroys it with fl_cohort_destroy); on failure out is
 * left empty. Errors are one sentence naming the table and, where there is one, the line
 * ("t.csv:12: id \"P7\" already appears on line 4"): FL_ENOTFOUND / FL_EIO for an unreadable
 * file, FL_ENOTFOUND for a named column that is missing (the header is listed), FL_EINVAL for
 * bad options, FL_EFORMAT for everything wrong inside the table. */
fl_status fl_import_table_build(const fl_import_options *o, fl_cohort *out, fl_err *err);

/* fl_import_table_build, then writes the cohort to out_path (atomically: on any failure nothing
 * is left at out_path or beside it). Refuses to overwrite the table itself. */
fl_status fl_import_table(const fl_import_options *o, const char *out_path, fl_err *err);

#endif
