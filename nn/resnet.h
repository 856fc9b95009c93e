/* resnet.h - the ResNet family (18/34/50/101/152) with torchvision's exact structure and
 * parameter names, for any square tile >= 32 px. RNet of the seed paper is resnet152. */
#ifndef FL_RESNET_H
#define FL_RESNET_H

#include "graph.h"

typedef enum {
    FL_STEM_IMAGENET = 0, /* conv1 7x7/2 pad 3, bn1, relu, maxpool 3x3/2 pad 1 (torchvision) */
    FL_STEM_SMALL = 1,    /* conv1 3x3/1 pad 1, bn1, relu, no maxpool (64-128 px tiles) */
} fl_stem;

typedef struct {
    int depth;   /* 18, 34, 50, 101 or 152 */
    int tile;    /* input height = width, >= 32 */
    fl_stem stem;
    int classes; /* fc outputs */
    float width; /* channel multiplier: stage widths round(64*width)*{1,2,4,8}, >= 1 each */
    int groupnorm; /* 0: BatchNorm (default); > 0: GroupNorm with this many groups (DP mode) */
} fl_resnet_config;

/* Fills defaults: resnet152, 224 px, imagenet stem, 3 classes, width 1, BatchNorm. */
void fl_resnet_config_default(fl_resnet_config *c);

/* Builds the graph: input "image" (3, tile, tile); outputs "logits" (classes) and "embedding"
 * (the pooled 512 or 2048*width features). */
fl_status fl_resnet_build(fl_graph **out, const fl_resnet_config *c, fl_err *err);

/* "resnet152" -> 152; returns 0 for an unknown name. */
int fl_resnet_depth_from_name(const char *arch);
const char *fl_stem_name(fl_stem s);
/* "imagenet" / "small" -> stem; returns -1 for an unknown name. */
int fl_stem_from_name(const char *name);

#endif
