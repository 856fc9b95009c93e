/* gmodel.h - the server's global models as flat vectors: the initial weights of a phase's model
 * built from the plan (the same engine and seed at every site, so nothing but the vector needs
 * to travel), an RNet read from a checkpoint, and the final models written as checkpoints.
 * A vector is the parameter slab then the buffer slab, as the engine lays them out (tensors in
 * state_dict order, each 64-byte aligned with zero padding: the sites build the same slabs). */
#ifndef FL_GMODEL_H
#define FL_GMODEL_H

#include <stddef.h>

#include "common/status.h"
#include "fed/plan.h"

/* The graph of phase ph (image or features: the ResNet; fusion: the MMLM with in_dim). */
fl_status fl_gmodel_graph(const fl_plan *p, fl_phase ph, const int in_dim[4], fl_graph **g,
                          fl_err *err);

/* The initial weights of phase ph's model (the plan's seed) into *data (heap), with the slab
 * sizes; or, when path is non-NULL, the weights of the checkpoint at path. */
fl_status fl_gmodel_init(const fl_plan *p, fl_phase ph, const int in_dim[4], const char *path,
                         float **data, size_t *n_params, size_t *n_buffers, fl_err *err);

/* Floats of one embedding of phase ph's model (the ResNet's "embedding" output). */
fl_status fl_gmodel_embedding_dim(const fl_plan *p, int *E, fl_err *err);

/* Writes data (the vector of phase ph's model) as a checkpoint at path (atomically), with the
 * phase and round in its attributes. */
fl_status fl_gmodel_save(const fl_plan *p, fl_phase ph, const int in_dim[4], const float *data,
                         size_t n, int round, const char *path, fl_err *err);

#endif
