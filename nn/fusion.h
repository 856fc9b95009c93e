/* fusion.h - the MMLM head of the seed paper: one encoder per modality (linear -> LayerNorm ->
 * ReLU -> dropout, then multiplied by that modality's presence mask), concatenation, and an MLP
 * with a class head and an optional stage head.
 *
 * Inputs, in order, per modality m: "<m>" (in_dim features) and "<m>_mask" (1 value: 1 present,
 * 0 absent; an absent modality's features must be finite, e.g. 0). Parameters, per modality:
 * "enc.<m>.fc.weight/bias", "enc.<m>.norm.weight/bias"; then "head.fc1.weight/bias",
 * "head.norm.weight/bias", "head.cls.weight/bias" and, with stages, "head.stage.weight/bias".
 * Computation after the encoders: z = concat(e_m) -> fc1 -> norm -> relu -> dropout -> cls
 * (and -> stage). Outputs: "logits" and, with stages, "stage_logits"; "fused" (the hidden
 * vector after the head's ReLU) for UMAP. */
#ifndef FL_FUSION_H
#define FL_FUSION_H

#include "graph.h"

#define FL_FUSION_MAX_MODALITIES 4

typedef struct {
    int n_modalities;
    char names[FL_FUSION_MAX_MODALITIES][32]; /* e.g. "image", "rna", "methylation", "clinical" */
    int in_dim[FL_FUSION_MAX_MODALITIES];
    int enc_dim;   /* encoder output per modality (default 64) */
    int hidden;    /* head hidden width (default 64) */
    float dropout; /* default 0.2 */
    int classes;   /* default 3 */
    int stages;    /* 0 = no stage head */
} fl_fusion_config;

void fl_fusion_config_default(fl_fusion_config *c);
fl_status fl_fusion_build(fl_graph **out, const fl_fusion_config *c, fl_err *err);

#endif
