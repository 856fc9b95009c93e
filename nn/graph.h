/* graph.h - a model's structure: a list of nodes over numbered values, and the layout of its
 * parameters. Builders (resnet.c, fusion.c) describe a network with these calls; model.c turns
 * a graph into something that runs on a backend. Shapes here exclude the batch dimension.
 * Not an autograd system: the graph is fixed once built and nodes run in the order added. */
#ifndef FL_GRAPH_H
#define FL_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_NAME_LEN 96
#define FL_MAX_IN 8

typedef enum {
    FL_OP_INPUT,
    FL_OP_CONV2D,
    FL_OP_BATCHNORM2D,
    FL_OP_GROUPNORM,
    FL_OP_RELU,
    FL_OP_MAXPOOL2D,
    FL_OP_GAP,
    FL_OP_LINEAR,
    FL_OP_LAYERNORM,
    FL_OP_DROPOUT,
    FL_OP_ADD,
    FL_OP_CONCAT,
    FL_OP_ROWSCALE,
} fl_op;

/* A parameter tensor. Trainable ones live in the parameter slab (and, at the same offset, in
 * the gradient slab); buffers (BatchNorm running statistics) live in the buffer slab. */
typedef struct {
    char name[FL_NAME_LEN]; /* torchvision state_dict key, e.g. "layer3.4.conv2.weight" */
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset; /* in floats, within its slab */
    int trainable; /* 1: parameter slab, 0: buffer slab */
} fl_param;

/* A value: one activation tensor per sample. 3-D shapes (C,H,W) are images (stored NHWC);
 * 1-D shapes (F) are feature rows. */
typedef struct {
    int ndim;
    int shape[3];
    size_t numel; /* per sample */
    int producer; /* node index */
} fl_value;

typedef struct {
    fl_op op;
    int n_in;
    int in[FL_MAX_IN]; /* value indices */
    int out;           /* value index */
    int param[4];      /* parameter indices (-1 = none): weight, bias, running_mean, running_var */
    int k, stride, pad, groups; /* conv/pool geometry; groups for groupnorm */
    float p;                    /* dropout probability */
    float eps, momentum;        /* norms */
    int inplace;                /* relu: output shares the input's buffer */
    char name[FL_NAME_LEN];     /* input name, or the parameter prefix */
} fl_node;

typedef struct {
    fl_node *nodes;
    int n_nodes, cap_nodes;
    fl_value *values;
    int n_values, cap_values;
    fl_param *params;
    int n_params, cap_params;
    size_t n_trainable; /* floats in the parameter slab */
    size_t n_buffer;    /* floats in the buffer slab */
    int inputs[16], n_inputs;   /* value indices of FL_OP_INPUT nodes, in order added */
    int outputs[8], n_outputs;  /* value indices marked as outputs */
    char output_names[8][32];
    fl_status status; /* sticky: the first builder error */
    fl_err err;
} fl_graph;

fl_graph *fl_graph_new(void);
void fl_graph_free(fl_graph *g);

/* Builders return the new value's index, or -1 after recording the first error in g->status /
 * g->err (later calls then do nothing and return -1, so a builder checks once at the end). */
int fl_graph_input(fl_graph *g, const char *name, int ndim, const int *shape);
int fl_graph_conv2d(fl_graph *g, const char *prefix, int x, int out_channels, int k, int stride,
                    int pad, int bias);
int fl_graph_batchnorm2d(fl_graph *g, const char *prefix, int x);
int fl_graph_groupnorm(fl_graph *g, const char *prefix, int x, int groups);
int fl_graph_relu(fl_graph *g, int x, int inplace);
int fl_graph_maxpool2d(fl_graph *g, int x, int k, int stride, int pad);
int fl_graph_gap(fl_graph *g, int x);
int fl_graph_linear(fl_graph *g, const char *prefix, int x, int out_features, int bias);
int fl_graph_layernorm(fl_graph *g, const char *prefix, int x);
int fl_graph_dropout(fl_graph *g, int x, float p);
int fl_graph_add(fl_graph *g, int a, int b);
int fl_graph_concat(fl_graph *g, int n, const int *xs);
/* y[i,:] = s[i] * x[i,:]; s is a value of shape (1), usually an input (a presence mask). */
int fl_graph_rowscale(fl_graph *g, int x, int s);
/* Marks value v as output `name`; returns its output index or -1. */
int fl_graph_output(fl_graph *g, const char *name, int v);

/* Index of the parameter called name, or -1. */
int fl_graph_find_param(const fl_graph *g, const char *name);
int fl_graph_find_output(const fl_graph *g, const char *name);
int fl_graph_find_input(const fl_graph *g, const char *name);

/* Number of elements in the trainable (1) or buffer (0) tensors, without alignment padding. */
size_t fl_graph_count(const fl_graph *g, int trainable);

/* Forward multiply-adds x 2 per sample (convolutions and linear layers). */
double fl_graph_flops(const fl_graph *g);

#endif
