/* cohort_impl.h - what cohort.c, cohort_read.c, cohort_write.c (and partition.c) share: the
 * dataset names, the semantic checks that both the reader and the writer apply, and sorting
 * names with their indices. HDF5's error translation is common/h5.h's. Not public API. */
#ifndef FL_COHORT_IMPL_H
#define FL_COHORT_IMPL_H

#include "../common/h5.h"
#include "cohort.h"

#define FL__COHORT_FORMAT "fedlung-cohort"

/* Per modality: the group and the name of its feature-name dataset. */
extern const char *const fl__omics_features[FL_N_OMICS]; /* "genes", "probes", "columns" */

/* Checks what the header promises beyond shapes: class and site counts, unique non-NULL ids,
 * label / site / split / stage ranges, samples of one case sharing a split, tile_patient in
 * range and non-decreasing, and that every present modality has its arrays. Messages name
 * path and the dataset the value lives in ("x.h5: /patients/label[3] = 5 is out of range ...").
 * Returns FL_OK or FL_EFORMAT (FL_ENOMEM if a scratch allocation fails). */
fl_status fl__cohort_check(const fl_cohort *c, const char *path, fl_err *err);

/* A name and where it was, for finding duplicates and runs of equal names by sorting. */
typedef struct {
    const char *s;
    int i;
} fl__keyed;
/* Fills k (P entries, caller-allocated) with the P strings of s and their indices, sorted by
 * string and, among equal strings, by index. The strings are borrowed, not copied. */
void fl__sort_keyed(fl__keyed *k, char *const *s, int P);

/* Tiles [start, start + count) of the (N, tile, tile, 3) uint8 dataset pixels: read into `into`
 * when it is not NULL, else written from `from` (count * tile * tile * 3 bytes either way). The
 * range must lie inside the dataset. Returns < 0 on failure, leaving HDF5's error stack for
 * fl_h5_msg. */
herr_t fl__tiles_io(hid_t pixels, int64_t start, int64_t count, int tile, void *into,
                    const void *from);

/* The tile edge and tile count of an open cohort file (0, 0 without tiles). */
void fl__cohort_file_dims(const fl_cohort_file *f, int *tile, int64_t *n_tiles);

#endif
