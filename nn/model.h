/* model.h - a graph made runnable on a backend for one batch size: parameter, gradient and
 * buffer slabs, preallocated activations, and forward/backward passes that allocate nothing.
 * Not an optimizer (see optim.h) nor a file format (see checkpoint.h, safetensors.h). */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include "backend.h"
#include "graph.h"
#include "tensor.h"

typedef struct fl_model fl_model;

/* Creates a model for graph g (ownership of g passes to the model, also on failure) on backend
 * be (borrowed; must outlive the model) for batches of exactly `batch` samples. Parameters are
 * initialised as torchvision/PyTorch would (kaiming-normal fan-out convolutions, BN weight 1
 * bias 0, linear U(+-1/sqrt(in))), from `seed`. */
fl_status fl_model_new(fl_model **out, fl_graph *g, fl_backend *be, int batch, uint64_t seed,
                       fl_err *err);
void fl_model_free(fl_model *m);

const fl_graph *fl_model_graph(const fl_model *m);
fl_backend *fl_model_backend(const fl_model *m);
int fl_model_batch(const fl_model *m);

/* The slabs, on the backend's device. Gradients share the parameters' offsets. */
float *fl_model_params(fl_model *m);
float *fl_model_grads(fl_model *m);
float *fl_model_buffers(fl_model *m);

/* Views of a parameter (or buffer) and of its gradient (a buffer has none: data NULL), and of
 * a value's activations for the current batch. */
fl_tensor fl_model_param_tensor(fl_model *m, int param);
fl_tensor fl_model_grad_tensor(fl_model *m, int param);
fl_tensor fl_model_value_tensor(fl_model *m, int v);

/* Copies one named tensor to or from host memory (PyTorch layout). */
fl_status fl_model_get_tensor(fl_model *m, int param, float *host);
fl_status fl_model_set_tensor(fl_model *m, int param, const float *host);

/* Copies input `i` (rows = batch) from host memory: images in NCHW, features row-major. */
fl_status fl_model_set_input(fl_model *m, int i, const float *host, fl_err *err);
/* Runs every node; train = 1 uses batch statistics, updates running statistics and applies
 * dropout (seeded by the model seed and an internal step counter). */
fl_status fl_model_forward(fl_model *m, int train, fl_err *err);
/* Copies output `o` (batch rows) to host memory. */
fl_status fl_model_get_output(fl_model *m, int o, float *host, fl_err *err);
/* Copies any value's activations from the last forward to host memory: images as NCHW
 * (N = batch), feature rows row-major. For explanations (CAM reads the last block's maps). */
fl_status fl_model_get_value(fl_model *m, int v, float *host, fl_err *err);
/* Index of the value a node named `prefix` produced (e.g. "layer4.2.conv3"), or the input of
 * the global average pool for "gap_input"; -1 if none. */
int fl_model_find_value(const fl_model *m, const char *name);
/* Softmax cross-entropy on output `o` against host labels (-1 = ignore) and optional class
 * weights (host, K). Sets that output's gradient (a later call for another output adds its
 * own gradient as a separate loss term). Returns the loss in *loss. */
fl_status fl_model_loss_ce(fl_model *m, int o, const int32_t *labels, const float *class_w,
                           float *loss, fl_err *err);
/* Backpropagates the gradients set by fl_model_loss_ce into the gradient slab (overwritten). */
fl_status fl_model_backward(fl_model *m, fl_err *err);
/* For explanations (Grad-CAM): takes grad (host, batch x output o's size) as the gradient of
 * output o, backpropagates it only through the nodes after value v's producer, and copies the
 * gradient reaching v to dv (host, laid out as fl_model_get_value). Follows a forward (eval
 * mode for per-sample gradients); overwrites those nodes' parameter gradients and any loss
 * set since. FL_EINVAL for an unknown output, or a v without a gradient (an input). */
fl_status fl_model_backward_from(fl_model *m, int o, const float *grad, int v, float *dv,
                                 fl_err *err);

/* Bytes of activation memory (values, saved statistics, gradient slots) for this batch. */
size_t fl_model_activation_bytes(const fl_model *m);

#endif
