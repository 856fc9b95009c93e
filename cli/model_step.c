/* model_step.c - `fedlung model step`: one training step of a ResNet (train-mode forward,
 * softmax cross-entropy, backward) on any device, with the loss, the logits and every
 * parameter's gradient written under PyTorch names, so PyTorch can check the step
 * (tests/gpu/torch_parity.py step). --weights-out writes the seeded initial weights first.
 * Not a trainer: no optimizer step, one batch, no data pipeline. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atomic.h"
#include "../nn/model.h"
#include "../nn/npy.h"
#include "../nn/resnet.h"
#include "../nn/safetensors.h"
#include "cli.h"
#include "model_opts.h"

static const char usage[] =
    "usage: fedlung model step --arch A --tile T [--stem S] [--classes K] [--width W] [--seed S]\n"
    "                          [--device D] [--precision P] [--threads N]\n"
    "                          (--weights-out W.safetensors [--batch B]\n"
    "                           | --weights W.safetensors --input X.npy --labels Y.npy\n"
    "                             --out G.safetensors [--batch B])\n"
    "\n"
    "--weights-out writes the model's initial weights, drawn from --seed by the engine's\n"
    "initialisation (torchvision's), as safetensors with PyTorch names. Otherwise one\n"
    "training step: the weights loaded, the batch X (N, 3, T, T) float NCHW with labels Y (N)\n"
    "integers, a train-mode forward (batch statistics), softmax cross-entropy (mean over the\n"
    "batch) and the backward pass; G receives \"loss\" (1), \"logits\" (N, K), \"grad.NAME\"\n"
    "for every parameter and \"buffer_after.NAME\" for the BatchNorm running statistics after\n"
    "the step, as F32, with the step's host<->device transfers in the metadata.\n"
    "\n"
    "  --arch      resnet18, resnet34, resnet50, resnet101 or resnet152 (default resnet152)\n"
    "  --tile      square input size in pixels, >= 32 (default 224)\n"
    "  --stem      imagenet (default) or small\n"
    "  --classes   number of classes (default 3)\n"
    "  --width     channel multiplier (default 1)\n"
    "  --seed      seed of the initial weights (default 42)\n"
    "  --batch     batch size (default: N of X; 1 with --weights-out)\n"
    "  --device    cpu, cuda or cuda:N (default " FL_CLI_DEFAULT_DEVICE ")\n"
    "  --precision fp32 (default), tf32 or bf16 (cuda only)\n";

typedef struct {
    fl_cli_model_opts m; /* the shared options (model_opts.h) */
    const char *weights_out, *weights, *input, *labels, *out;
    uint64_t seed;
} step_opts;

enum { OPT_SEED = FL_MOPT_OWN, OPT_WEIGHTS_OUT, OPT_WEIGHTS, OPT_INPUT, OPT_LABELS, OPT_OUT };

/* Stores the value of own option code into the step_opts at ctx; -1 if it is bad. */
static int own_option(int code, const char *value, void *ctx) {
    step_opts *o = ctx;
    int v;
    switch (code) {
    case OPT_SEED:
        if (fl_parse_int(value, 0, 2147483647, &v)) return -1;
        o->seed = (uint64_t)v;
        break;
    case OPT_WEIGHTS_OUT:
        o->weights_out = value;
        break;
    case OPT_WEIGHTS:
        o->weights = value;
        break;
    case OPT_INPUT:
        o->input = value;
        break;
    case OPT_LABELS:
        o->labels = value;
        break;
    case OPT_OUT:
        o->out = value;
        break;
    }
    return 0;
}

/* 0: run; 1: --help; -1: bad usage (already said). */
static int parse(int argc, char **argv, step_opts *o) {
    static const struct option longopts[] = {FL_MOPT_MODEL_ENTRIES,
                                             {"seed", required_argument, 0, OPT_SEED},
                                             FL_MOPT_BATCH_ENTRY,
                                             {"weights-out", required_argument, 0, OPT_WEIGHTS_OUT},
                                             {"weights", required_argument, 0, OPT_WEIGHTS},
                                             {"input", required_argument, 0, OPT_INPUT},
                                             {"labels", required_argument, 0, OPT_LABELS},
                                             {"out", required_argument, 0, OPT_OUT},
                                             FL_MOPT_RUN_ENTRIES,
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->seed = 42;
    int p = fl_cli_model_opts_parse(argc, argv, "model step", longopts, &o->m, own_option, o);
    if (p) return p;
    int step = o->weights || o->input || o->labels || o->out;
    if (o->weights_out && step) {
        fprintf(stderr, "fedlung model step: --weights-out cannot be combined with a step "
                        "(--weights, --input, --labels, --out)\n");
        return -1;
    }
    if (!o->weights_out && !(o->weights && o->input && o->labels && o->out)) {
        fprintf(stderr, "fedlung model step: give --weights-out, or all of --weights, --input, "
                        "--labels and --out\n");
        return -1;
    }
    return fl_cli_check_device("model step", o->m.device, o->m.precision);
}

/* ---- the output file: a safetensors writer for named host arrays ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->oom = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* One tensor of the output: a name and where its floats come from (a device pointer of the
 * model, or host memory). */
typedef struct {
    char name[FL_NAME_LEN + 16];
    int ndim;
    int64_t shape[4];
    size_t numel;
    const float *dev;  /* download from here, or */
    const float *host; /* copy from here */
} out_tensor;

/* Writes the tensors as F32 safetensors with string metadata {key, value, ..., NULL}. */
static fl_status write_tensors(const char *path, fl_backend *be, const out_tensor *ts, int n,
                               const char *const *meta, fl_err *err) {
    text h = {0};
    fl_atomic_file af = {0};
    float *buf = NULL;
    fl_status s = FL_OK;
    size_t off = 0, most = 1;
    put(&h, "{\"__metadata__\":{");
    for (int i = 0; meta[i]; i += 2) put(&h, "%s\"%s\":\"%s\"", i ? "," : "", meta[i], meta[i + 1]);
    put(&h, "}");
    for (int i = 0; i < n; i++) {
        put(&h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", ts[i].name);
        for (int d = 0; d < ts[i].ndim; d++) put(&h, "%s%" PRId64, d ? "," : "", ts[i].shape[d]);
        put(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + ts[i].numel * sizeof(float));
        off += ts[i].numel * sizeof(float);
        if (ts[i].numel > most) most = ts[i].numel;
    }
    put(&h, "}");
    while (!h.oom && h.len % 8) put(&h, " "); /* the data starts 8-byte aligned */
    if (h.oom || !(buf = malloc(most * sizeof *buf))) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((s = fl_atomic_open(&af, path, err)) != FL_OK) goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(h.s, 1, h.len, af.f) == h.len;
    for (int i = 0; ok && i < n; i++) {
        const float *src = ts[i].host;
        if (ts[i].dev) {
            be->download(be, buf, ts[i].dev, ts[i].numel * sizeof(float));
            src = buf;
        }
        ok = fwrite(src, sizeof(float), ts[i].numel, af.f) == ts[i].numel;
    }
    if (!ok) {
        s = fl_fail(err, FL_EIO, "%s: cannot write", path);
        goto done;
    }
    s = fl_atomic_commit(&af, err); /* releases af either way */
done:
    fl_atomic_abort(&af);
    free(buf);
    free(h.s);
    return s;
}

/* ---- the command ---- */

static const char *precision_name(fl_precision p) {
    return p == FL_PREC_TF32 ? "tf32" : p == FL_PREC_BF16 ? "bf16" : "fp32";
}

/* Reads X (N, 3, T, T) and Y (N); sets *n. */
static fl_status read_batch(const step_opts *o, float **x, int32_t **y, int *n, fl_err *err) {
    int ndim;
    int64_t shape[4];
    int T = o->m.net.tile;
    fl_status s = fl_npy_read_f32(o->input, x, &ndim, shape, err);
    if (s != FL_OK) return s;
    if (ndim != 4 || shape[0] < 1 || shape[1] != 3 || shape[2] != T || shape[3] != T)
        return fl_fail(err, FL_ESHAPE, "%s: expected a float array (N, 3, %d, %d)", o->input, T, T);
    *n = (int)shape[0];
    if ((s = fl_npy_read_i32(o->labels, y, &ndim, shape, err)) != FL_OK) return s;
    if (ndim != 1 || shape[0] != *n)
        return fl_fail(err, FL_ESHAPE, "%s: expected %d integer labels (one per image of %s)",
                       o->labels, *n, o->input);
    for (int i = 0; i < *n; i++)
        if ((*y)[i] < -1 || (*y)[i] >= o->m.net.classes)
            return fl_fail(err, FL_EINVAL, "%s: label %d of image %d is not in [-1, %d)", o->labels,
                           (*y)[i], i, o->m.net.classes);
    if (o->m.batch && o->m.batch != *n)
        return fl_fail(err, FL_ESHAPE, "%s holds %d images, --batch says %d", o->input, *n,
                       o->m.batch);
    return FL_OK;
}

int fl_cmd_model_step(int argc, char **argv) {
    step_opts o;
    int p = parse(argc, argv, &o);
    if (p > 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);

    fl_err err = {{0}};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_graph *g = NULL;
    float *x = NULL, *logits = NULL;
    int32_t *y = NULL;
    out_tensor *ts = NULL;
    int rc = FL_EXIT_FAIL, n = o.m.batch ? o.m.batch : 1;
    char seed[24], width[24], tile[16], classes[16], batch[16], transfers[24], arch[16];
    snprintf(arch, sizeof arch, "resnet%d", o.m.net.depth);
    snprintf(seed, sizeof seed, "%" PRIu64, o.seed);
    snprintf(width, sizeof width, "%g", (double)o.m.net.width);
    snprintf(tile, sizeof tile, "%d", o.m.net.tile);
    snprintf(classes, sizeof classes, "%d", o.m.net.classes);

    if (!o.weights_out && read_batch(&o, &x, &y, &n, &err) != FL_OK) goto done;
    if (fl_resnet_build(&g, &o.m.net, &err) != FL_OK) goto done;
    if (!(be = fl_backend_new(o.m.device, o.m.threads, o.m.precision, &err))) goto done;
    fl_status s = fl_model_new(&m, g, be, n, o.seed, &err);
    g = NULL; /* the model owns it now, also on failure */
    if (s != FL_OK) goto done;
    snprintf(batch, sizeof batch, "%d", n);

    if (o.weights_out) {
        const char *meta[] = {
            "arch",  arch,  "tile", tile, "stem", fl_stem_name(o.m.net.stem), "classes", classes,
            "width", width, "seed", seed, NULL};
        if (fl_safetensors_save_model(m, o.weights_out, meta, &err) != FL_OK) goto done;
        fprintf(stderr, "model step: initial weights of %s (seed %s) written to %s\n", arch, seed,
                o.weights_out);
        rc = FL_EXIT_OK;
        goto done;
    }

    if (fl_safetensors_load_model(m, o.weights, &err) != FL_OK) goto done;
    if (fl_model_set_input(m, 0, x, &err) != FL_OK) goto done;
    const fl_graph *mg = fl_model_graph(m);
    int out = fl_graph_find_output(mg, "logits");
    float loss;
    uint64_t t0 = be->transfers;
    double time0 = fl_now();
    if (fl_model_forward(m, 1, &err) != FL_OK ||
        fl_model_loss_ce(m, out, y, NULL, &loss, &err) != FL_OK ||
        fl_model_backward(m, &err) != FL_OK)
        goto done;
    uint64_t moved = be->transfers - t0; /* the labels' upload and the loss read back */
    double dt = fl_now() - time0;
    snprintf(transfers, sizeof transfers, "%" PRIu64, moved);

    int K = o.m.net.classes;
    if (!(logits = malloc((size_t)n * K * sizeof *logits)) ||
        !(ts = calloc((size_t)mg->n_params + 2, sizeof *ts))) {
        fl_fail(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (fl_model_get_output(m, out, logits, &err) != FL_OK) goto done;
    int nt = 0;
    ts[nt++] = (out_tensor){.name = "loss", .ndim = 1, .shape = {1}, .numel = 1, .host = &loss};
    ts[nt++] = (out_tensor){
        .name = "logits", .ndim = 2, .shape = {n, K}, .numel = (size_t)n * K, .host = logits};
    for (int i = 0; i < mg->n_params; i++) {
        const fl_param *prm = &mg->params[i];
        out_tensor *t = &ts[nt++];
        snprintf(t->name, sizeof t->name, "%s%s", prm->trainable ? "grad." : "buffer_after.",
                 prm->name);
        t->ndim = prm->ndim;
        memcpy(t->shape, prm->shape, sizeof t->shape);
        t->numel = prm->numel;
        t->dev =
            prm->trainable ? fl_model_grad_tensor(m, i).data : fl_model_param_tensor(m, i).data;
    }
    const char *meta[] = {"arch",      arch,
                          "tile",      tile,
                          "stem",      fl_stem_name(o.m.net.stem),
                          "classes",   classes,
                          "width",     width,
                          "batch",     batch,
                          "device",    be->name,
                          "precision", precision_name(o.m.precision),
                          "transfers", transfers,
                          NULL};
    if (write_tensors(o.out, be, ts, nt, meta, &err) != FL_OK) goto done;
    fprintf(stderr,
            "model step: %s on %s (%s), batch %d: loss %.6f, %.3f s, %s host<->device transfers; "
            "%d tensors written to %s\n",
            arch, be->name, precision_name(o.m.precision), n, (double)loss, dt, transfers, nt,
            o.out);
    rc = FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK) fl_cli_fail(&err);
    fl_graph_free(g);
    fl_model_free(m);
    if (be) be->destroy(be);
    free(x);
    free(y);
    free(logits);
    free(ts);
    return rc;
}
