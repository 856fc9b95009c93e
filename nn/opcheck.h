/* opcheck.h - a fixed list of small op cases that between them call every op of the fl_backend
 * table, forward and backward, so two backends (the CPU and a GPU) can be compared op by op.
 * Each case has named host arrays: inputs (drawn from a seed, or replaced by the caller with
 * stored ones) and outputs (what the backend computed). Not a comparer: files, tolerances and
 * verdicts belong to the caller (cli/model_opcheck.c; tests/gpu/torch_parity.py redoes each
 * case in PyTorch from the manifest the caller writes). */
#ifndef FL_OPCHECK_H
#define FL_OPCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "backend.h"

#define FL_OPCHECK_MAX_ARRAYS 16
#define FL_OPCHECK_PARAMS_LEN 320

typedef enum { FL_OPCHECK_IN = 0, FL_OPCHECK_OUT = 1 } fl_opcheck_role;

/* One named array of a case, on the host, C order. Activations are in the backend's layout
 * (NHWC for images); parameters in PyTorch's. */
typedef struct {
    const char *name; /* "x", "w", "dy", "dx", ... (static); the file is CASE.NAME.npy */
    fl_opcheck_role role;
    int is_int; /* int32 (labels, maxpool winners) in i, else float32 in f */
    int ndim;   /* 1..4 */
    int64_t shape[4];
    size_t numel;
    float *f;   /* numel floats, owned by the case (NULL when is_int) */
    int32_t *i; /* numel int32, owned by the case (NULL unless is_int) */
    /* Outputs of convolutions and linear layers: the number of products summed into each
     * element (C*R*S for a conv's y, N*P*Q for its dw, ...), which sets the TF32/BF16 bounds;
     * 0 for outputs whose accuracy does not depend on fl_precision. */
    int reduction;
} fl_opcheck_array;

typedef struct {
    const char *name; /* e.g. "conv3x3_s1_p1_bias_beta1" (static) */
    const char *op;   /* the kind, which names the PyTorch computation: "conv2d", ... (static) */
    /* The case's scalar parameters as the text of a JSON object, e.g.
     * {"stride": 2, "pad": 1, "beta": 1}; array shapes are in the arrays. */
    char params[FL_OPCHECK_PARAMS_LEN];
    int n;
    fl_opcheck_array a[FL_OPCHECK_MAX_ARRAYS];
    /* Internal to opcheck.c: the case's index, and its device copies while it runs. */
    int index;
    void *dev[FL_OPCHECK_MAX_ARRAYS];
} fl_opcheck_case;

/* Number of cases; their names, 0 <= i < count. */
int fl_opcheck_count(void);
const char *fl_opcheck_name(int i);

/* Sets up case i in c (caller-owned, any contents): declares its arrays, fills every input
 * with values drawn from seed (the same on every machine), and allocates every output on the
 * host. Returns FL_OK, FL_EINVAL (i out of range) or FL_ENOMEM; on failure c holds nothing
 * to free. */
fl_status fl_opcheck_case_init(fl_opcheck_case *c, int i, uint64_t seed, fl_err *err);

/* Runs c on be: uploads the inputs (as they are now in c, so a caller may first replace
 * them), runs the case's ops, and downloads every output into c. Device memory is freed
 * before it returns. FL_EBACKEND when the backend fails (a plan, an allocation, or a
 * `transfers` counter that moved differently from the copies made), with err naming the case;
 * outputs are then undefined. */
fl_status fl_opcheck_case_run(fl_opcheck_case *c, fl_backend *be, fl_err *err);

/* Frees the host arrays; c may then be initialised again. NULL is a no-op. */
void fl_opcheck_case_destroy(fl_opcheck_case *c);

/* The array called name, or NULL. */
fl_opcheck_array *fl_opcheck_find(fl_opcheck_case *c, const char *name);

#endif
