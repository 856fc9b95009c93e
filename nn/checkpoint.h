/* checkpoint.h - model checkpoints in HDF5: one float32 dataset per tensor at the root, named
 * exactly like the torchvision state_dict key ("/layer1.0.conv1.weight"), and root attributes
 * that say how to rebuild the graph and a SHA-256 that proves the weights are intact.
 * Not optimizer or server state (the server keeps its own journal). Uses HDF5 1.10 APIs only.
 *
 * Root attributes: "format" = "fedlung-model" (string), "version" = 1 (int32), "arch"
 * (string), "tile" (int32), "stem" (string), "classes" (int32), "width" (float32), "sha256"
 * (64 lowercase hex digits, string), and optionally "phase" (string), "round" (int32),
 * "groupnorm" (int32, GroupNorm groups of a ResNet trained with differential privacy). */
#ifndef FL_CHECKPOINT_H
#define FL_CHECKPOINT_H

#include "../common/status.h"
#include "model.h"

#define FL_CHECKPOINT_VERSION 1
#define FL_META_STR 64

/* What a checkpoint says about its model, beyond the tensors. */
typedef struct {
    char arch[FL_META_STR];  /* "resnet18" ... "resnet152", or "fusion" */
    int tile;                /* input tile height = width in px; 0 when there is no image input */
    char stem[FL_META_STR];  /* "imagenet" or "small" (fl_stem_name); "" when not a ResNet */
    int classes;             /* class-head outputs */
    float width;             /* channel multiplier (1 = torchvision) */
    char phase[FL_META_STR]; /* optional training phase ("" = not written) */
    int round;               /* optional federated round (-1 = not written) */
    int groupnorm;           /* optional: GroupNorm groups of a ResNet (0 = BatchNorm, not
                                written; DP training uses GroupNorm) */
    char sha256[65];         /* filled by fl_checkpoint_read_meta; ignored by save */
} fl_model_meta;

/* Empty strings, zeros, width 1, round -1. */
void fl_model_meta_init(fl_model_meta *meta);

/* Hex SHA-256 (64 lowercase digits and a NUL) of m's slabs: the float32 bytes of every
 * trainable tensor in slab (= graph) order, then of every buffer, read back from the device in
 * chunks. The slabs' alignment padding is not hashed, so the value depends only on the
 * tensors; for a torchvision ResNet it equals hashing named_parameters() then the float
 * named_buffers(). FL_ENOMEM or FL_EBACKEND (OpenSSL failed) leave hex as "". */
fl_status fl_model_sha256(fl_model *m, char hex[65]);

/* Writes every parameter and buffer of m with meta's attributes and m's SHA-256 into
 * "<path>.tmp.XXXXXX", fsyncs it and renames it over path; a failure leaves nothing behind.
 * HDF5's own error printing is switched off (process-wide); its messages are folded into
 * err, which names the file and the dataset or attribute. */
fl_status fl_checkpoint_save(fl_model *m, const fl_model_meta *meta, const char *path, fl_err *err);

/* Reads the root attributes into meta (fl_model_meta_init first), so a caller can build the
 * right graph before loading. FL_EFORMAT if the file is not a fedlung model checkpoint or an
 * attribute is missing or mistyped; FL_EUNSUPPORTED for another version. */
fl_status fl_checkpoint_read_meta(const char *path, fl_model_meta *meta, fl_err *err);

/* Loads every parameter and buffer of m from path. Before touching m it checks that every
 * tensor is present, floating-point and of the right shape, and that the file has no dataset
 * the model lacks (errors name the dataset and both shapes); after loading it recomputes the
 * SHA-256 and fails with FL_EFORMAT if it differs from the "sha256" attribute (m then holds
 * the file's altered values, which the caller must not use). */
fl_status fl_checkpoint_load(fl_model *m, const char *path, fl_err *err);

#endif
