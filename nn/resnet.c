/* resnet.c - builds torchvision's ResNet-18/34/50/101/152 as a graph, with the same parameter
 * names, for any square tile, with the imagenet or the small stem and a width multiplier. */
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void fl_resnet_config_default(fl_resnet_config *c) {
    memset(c, 0, sizeof *c);
    c->depth = 152;
    c->tile = 224;
    c->stem = FL_STEM_IMAGENET;
    c->classes = 3;
    c->width = 1.0f;
}

int fl_resnet_depth_from_name(const char *arch) {
    static const int depths[] = {18, 34, 50, 101, 152};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        char name[16];
        snprintf(name, sizeof name, "resnet%d", depths[i]);
        if (strcmp(arch, name) == 0) return depths[i];
    }
    return 0;
}

const char *fl_stem_name(fl_stem s) {
    return s == FL_STEM_SMALL ? "small" : "imagenet";
}

int fl_stem_from_name(const char *name) {
    if (strcmp(name, "imagenet") == 0) return FL_STEM_IMAGENET;
    if (strcmp(name, "small") == 0) return FL_STEM_SMALL;
    return -1;
}

static int norm(fl_graph *g, const fl_resnet_config *c, const char *prefix, int x) {
    return c->groupnorm > 0 ? fl_graph_groupnorm(g, prefix, x, c->groupnorm)
                            : fl_graph_batchnorm2d(g, prefix, x);
}

/* conv -> norm, named "<block>.conv<i>" and "<block>.bn<i>". */
static int conv_norm(fl_graph *g, const fl_resnet_config *c, const char *block, int i, int x,
                     int out, int k, int stride, int pad) {
    char name[FL_NAME_LEN];
    snprintf(name, sizeof name, "%.40s.conv%d", block, i);
    x = fl_graph_conv2d(g, name, x, out, k, stride, pad, 0);
    snprintf(name, sizeof name, "%.40s.bn%d", block, i);
    return norm(g, c, name, x);
}

/* One BasicBlock (expansion 1) or Bottleneck (expansion 4), torchvision v1.5 layout: the
 * bottleneck's stride sits on its 3x3 convolution. */
static int block(fl_graph *g, const fl_resnet_config *c, const char *name, int x, int planes,
                 int stride, int bottleneck) {
    int expansion = bottleneck ? 4 : 1, in_ch = g->status == FL_OK ? g->values[x].shape[0] : 0;
    int y;
    if (bottleneck) {
        y = conv_norm(g, c, name, 1, x, planes, 1, 1, 0);
        y = fl_graph_relu(g, y, 1);
        y = conv_norm(g, c, name, 2, y, planes, 3, stride, 1);
        y = fl_graph_relu(g, y, 1);
        y = conv_norm(g, c, name, 3, y, planes * expansion, 1, 1, 0);
    } else {
        y = conv_norm(g, c, name, 1, x, planes, 3, stride, 1);
        y = fl_graph_relu(g, y, 1);
        y = conv_norm(g, c, name, 2, y, planes, 3, 1, 1);
    }
    int identity = x;
    if (stride != 1 || in_ch != planes * expansion) {
        char ds[FL_NAME_LEN];
        snprintf(ds, sizeof ds, "%.40s.downsample.0", name);
        identity = fl_graph_conv2d(g, ds, x, planes * expansion, 1, stride, 0, 0);
        snprintf(ds, sizeof ds, "%.40s.downsample.1", name);
        identity = norm(g, c, ds, identity);
    }
    return fl_graph_relu(g, fl_graph_add(g, y, identity), 1);
}

fl_status fl_resnet_build(fl_graph **out, const fl_resnet_config *c, fl_err *err) {
    static const int counts[][4] = {
        {2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}, {3, 4, 23, 3}, {3, 8, 36, 3}};
    int which = c->depth == 18    ? 0
                : c->depth == 34  ? 1
                : c->depth == 50  ? 2
                : c->depth == 101 ? 3
                : c->depth == 152 ? 4
                                  : -1;
    *out = NULL;
    if (which < 0)
        return fl_fail(err, FL_EINVAL, "resnet: depth %d is not one of 18, 34, 50, 101, 152",
                       c->depth);
    if (c->tile < 32)
        return fl_fail(err, FL_EINVAL, "resnet: tile %d px is below the minimum of 32", c->tile);
    if (c->classes < 1) return fl_fail(err, FL_EINVAL, "resnet: classes must be at least 1");
    int base = (int)lroundf(64.0f * c->width);
    if (!(c->width > 0) || base < 1)
        return fl_fail(err, FL_EINVAL, "resnet: width %g leaves no channels", (double)c->width);
    if (c->groupnorm > 0 && base % c->groupnorm != 0)
        return fl_fail(err, FL_EINVAL, "resnet: %d channels are not divisible into %d groups", base,
                       c->groupnorm);
    int bottleneck = c->depth >= 50;

    fl_graph *g = fl_graph_new();
    if (!g) return fl_fail(err, FL_ENOMEM, "resnet: out of memory");
    int shape[3] = {3, c->tile, c->tile};
    int x = fl_graph_input(g, "image", 3, shape);
    if (c->stem == FL_STEM_IMAGENET) {
        x = fl_graph_conv2d(g, "conv1", x, base, 7, 2, 3, 0);
        x = fl_graph_relu(g, norm(g, c, "bn1", x), 1);
        x = fl_graph_maxpool2d(g, x, 3, 2, 1);
    } else {
        x = fl_graph_conv2d(g, "conv1", x, base, 3, 1, 1, 0);
        x = fl_graph_relu(g, norm(g, c, "bn1", x), 1);
    }
    for (int stage = 0; stage < 4; stage++) {
        for (int b = 0; b < counts[which][stage]; b++) {
            char name[FL_NAME_LEN];
            snprintf(name, sizeof name, "layer%d.%d", stage + 1, b);
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            x = block(g, c, name, x, base << stage, stride, bottleneck);
        }
    }
    int emb = fl_graph_gap(g, x);
    int logits = fl_graph_linear(g, "fc", emb, c->classes, 1);
    fl_graph_output(g, "logits", logits);
    fl_graph_output(g, "embedding", emb);
    if (g->status != FL_OK) {
        fl_status s =
            fl_fail(err, g->status, "resnet%d at %d px: %s", c->depth, c->tile, g->err.msg);
        fl_graph_free(g);
        return s;
    }
    *out = g;
    return FL_OK;
}
