/* cohort_impl.h - what cohort.c, cohort_read.c and cohort_write.c share: the dataset names, the
 * HDF5 error translation and the semantic checks that both the reader and the writer apply.
 * Not part of the public API. */
#ifndef FL_COHORT_IMPL_H
#define FL_COHORT_IMPL_H

#include <hdf5.h>

#include "cohort.h"

#define FL__COHORT_FORMAT "fedlung-cohort"

/* Per modality: the group and the name of its feature-name dataset. */
extern const char *const fl__omics_features[FL_N_OMICS]; /* "genes", "probes", "columns" */

/* Silences HDF5's automatic error printing (failures are translated instead). */
void fl__h5_quiet(void);
/* The innermost description on HDF5's error stack, which is then cleared; never NULL. */
const char *fl__h5_msg(char msg[200]);

/* Checks what the header promises beyond shapes: class and site counts, unique non-NULL ids,
 * label / site / split / stage ranges, samples of one case sharing a split, tile_patient in
 * range and non-decreasing, and that every present modality has its arrays. Messages name
 * path and the dataset the value lives in ("x.h5: /patients/label[3] = 5 is out of range ...").
 * Returns FL_OK or FL_EFORMAT (FL_ENOMEM if a scratch allocation fails). */
fl_status fl__cohort_check(const fl_cohort *c, const char *path, fl_err *err);

/* The tile edge and tile count of an open cohort file (0, 0 without tiles). */
void fl__cohort_file_dims(const fl_cohort_file *f, int *tile, int64_t *n_tiles);

#endif
