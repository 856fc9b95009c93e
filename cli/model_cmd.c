/* model_cmd.c - `fedlung model info|forward|bench` (and the dispatch of opcheck and step, which
 * live in their own files): the engine from the command line, so numpy users, tests and
 * benchmarks can drive it, on the CPU or a GPU (--device). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../nn/checkpoint.h"
#include "../nn/npy.h"
#include "../nn/optim.h"
#include "../nn/resnet.h"
#include "../nn/safetensors.h"
#include "cli.h"
#include "model_opts.h"

#ifdef FL_ENGINE_ONLY
#define WEIGHTS_FORMATS "W.safetensors"
#define BUILD_NOTE                                                                              \
    "\nThis is the engine-only build: no CPU backend (--device defaults to cuda) and no HDF5\n" \
    "(weights from .safetensors only).\n"
#else
#define WEIGHTS_FORMATS "W.safetensors|W.h5"
#define BUILD_NOTE ""
#endif

static const char usage[] =
    "usage: fedlung model info    --arch A --tile T [--stem imagenet|small] [--classes K] [--width "
    "W]\n"
    "       fedlung model forward --arch A --tile T [--stem S] [--classes K] [--width W]\n"
    "                             --weights " WEIGHTS_FORMATS " --input X.npy --out Y.npy\n"
    "                             [--features] [--batch B] [--threads N]\n"
    "                             [--device cpu|cuda|cuda:N] [--precision fp32|tf32|bf16]\n"
    "       fedlung model bench   --arch A --tile T --batch B [--steps S] [--threads N]\n"
    "                             [--stem S] [--classes K] [--width W] [--weights W] [--json]\n"
    "                             [--device D] [--precision P]\n"
    "       fedlung model opcheck [options]   every op and its backward against reference .npy\n"
    "       fedlung model step    [options]   one training step: its loss and gradients to a file\n"
    "\n"
    "  --arch      resnet18, resnet34, resnet50, resnet101 or resnet152 (default resnet152)\n"
    "  --tile      square input size in pixels, >= 32 (default 224)\n"
    "  --stem      imagenet (7x7/2 + maxpool, torchvision) or small (3x3/1, no maxpool)\n"
    "  --classes   number of classes (default 3)\n"
    "  --width     channel multiplier (default 1)\n"
    "  --features  write the pooled embeddings instead of the logits\n"
    "  --threads   CPU compute threads (default $FEDLUNG_THREADS or the number of cores)\n"
    "  --device    cpu, cuda or cuda:N, the GPU of that ordinal (default " FL_CLI_DEFAULT_DEVICE
    ");\n"
    "              without a usable GPU, cuda fails with one sentence saying why\n"
    "  --precision of convolutions and linear layers on cuda: fp32 (default, exact), tf32\n"
    "              (tensor cores) or bf16 (bf16 compute, fp32 master weights); cpu is fp32 only\n"
    "  --json      bench: print exactly one JSON object on stdout\n"
    "\n"
    "bench times training steps (forward, loss, backward, SGD step; the batch uploaded once)\n"
    "and reports the median. `fedlung model opcheck --help` and `model step --help` give\n"
    "their options.\n" BUILD_NOTE;

typedef struct {
    fl_cli_model_opts m; /* the shared options (model_opts.h) */
    const char *weights, *input, *out;
    int features, steps, json;
} model_opts;

enum { OPT_WEIGHTS = FL_MOPT_OWN, OPT_INPUT, OPT_OUT, OPT_FEATURES, OPT_STEPS, OPT_JSON };

/* Stores the value of own option code into the model_opts at ctx; -1 if it is bad. */
static int own_option(int code, const char *value, void *ctx) {
    model_opts *o = ctx;
    switch (code) {
    case OPT_WEIGHTS:
        o->weights = value;
        break;
    case OPT_INPUT:
        o->input = value;
        break;
    case OPT_OUT:
        o->out = value;
        break;
    case OPT_FEATURES:
        o->features = 1;
        break;
    case OPT_STEPS:
        return fl_parse_int(value, 1, 1 << 20, &o->steps);
    case OPT_JSON:
        o->json = 1;
        break;
    }
    return 0;
}

static int parse(int argc, char **argv, model_opts *o) {
    static const struct option longopts[] = {FL_MOPT_MODEL_ENTRIES,
                                             {"weights", required_argument, 0, OPT_WEIGHTS},
                                             {"input", required_argument, 0, OPT_INPUT},
                                             {"out", required_argument, 0, OPT_OUT},
                                             {"features", no_argument, 0, OPT_FEATURES},
                                             FL_MOPT_BATCH_ENTRY,
                                             {"steps", required_argument, 0, OPT_STEPS},
                                             {"json", no_argument, 0, OPT_JSON},
                                             FL_MOPT_RUN_ENTRIES,
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->steps = 5;
    int p = fl_cli_model_opts_parse(argc, argv, "model", longopts, &o->m, own_option, o);
    return p ? p : fl_cli_check_device("model", o->m.device, o->m.precision);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_hdf5(const char *path) {
    return ends_with(path, ".h5") || ends_with(path, ".hdf5");
}

/* FL_OK if this build can read the weights file at path (NULL: none): the engine-only build
 * has no HDF5. Checked before any work starts. */
static fl_status weights_readable(const char *path, fl_err *err) {
#ifdef FL_ENGINE_ONLY
    if (path && is_hdf5(path))
        return fl_fail(err, FL_EUNSUPPORTED,
                       "%s: this engine-only build has no HDF5, so it reads weights from "
                       ".safetensors only",
                       path);
#endif
    return FL_OK;
}

/* Loads .safetensors or .h5 weights into m. */
static fl_status load_weights(fl_model *m, const char *path, fl_err *err) {
    fl_status s = weights_readable(path, err);
    if (s != FL_OK) return s;
#ifndef FL_ENGINE_ONLY
    if (is_hdf5(path)) return fl_checkpoint_load(m, path, err);
#endif
    return fl_safetensors_load_model(m, path, err);
}

/* ---- the sizing backend: `model info` builds the model only to measure it ----
 * Device memory is host memory it never touches (calloc'd pages stay unmapped), uploads are
 * dropped and convolutions need no plan; every compute op is NULL. So info needs no compute
 * backend, and works in the engine-only build on a machine without a GPU. */
static void *sizing_alloc(fl_backend *be, size_t bytes) {
    return calloc(1, bytes ? bytes : 1);
}
static void sizing_free(fl_backend *be, void *p) {
    free(p);
}
static void sizing_upload(fl_backend *be, void *dst, const void *src, size_t bytes) {}
static fl_status sizing_conv2d_plan(fl_backend *be, const fl_conv2d_shape *s, void **plan,
                                    fl_err *err) {
    *plan = NULL;
    return FL_OK;
}
static void sizing_destroy(fl_backend *be) {
    free(be);
}

static fl_backend *sizing_backend_new(fl_err *err) {
    fl_backend *be = calloc(1, sizeof *be);
    if (!be) {
        fl_fail(err, FL_ENOMEM, "out of memory");
        return NULL;
    }
    be->name = "sizing";
    be->device = FL_DEVICE_CPU;
    be->alloc = sizing_alloc;
    be->free = sizing_free;
    be->upload = sizing_upload;
    be->conv2d_plan = sizing_conv2d_plan;
    be->destroy = sizing_destroy;
    return be;
}

/* The model of o on --device for batches of `batch`, with o->weights loaded if given; or, when
 * sizing_only, on the sizing backend without weights. On failure *m and *be may be set; the caller
 * frees them. */
static fl_status build(fl_model **m, fl_backend **be, const model_opts *o, int batch,
                       int sizing_only, fl_err *err) {
    fl_graph *g;
    fl_status s = fl_resnet_build(&g, &o->m.net, err);
    if (s != FL_OK) return s;
    *be = sizing_only ? sizing_backend_new(err)
                      : fl_backend_new(o->m.device, o->m.threads, o->m.precision, err);
    if (!*be) {
        fl_graph_free(g);
        return FL_EBACKEND;
    }
    s = fl_model_new(m, g, *be, batch, 42, err);
    if (s == FL_OK && o->weights && !sizing_only) s = load_weights(*m, o->weights, err);
    return s;
}

static int cmd_info(const model_opts *o) {
    fl_err err = {{0}};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    if (build(&m, &be, o, 1, 1, &err) != FL_OK) {
        fl_model_free(m);
        if (be) be->destroy(be);
        return fl_cli_fail(&err);
    }
    const fl_graph *g = fl_model_graph(m);
    int emb = g->values[g->outputs[fl_graph_find_output(g, "embedding")]].shape[0];
    printf("arch           resnet%d (%s stem, width %g)\n", o->m.net.depth,
           fl_stem_name(o->m.net.stem), (double)o->m.net.width);
    printf("tile           %d px\n", o->m.net.tile);
    printf("classes        %d\n", o->m.net.classes);
    size_t np = fl_graph_count(g, 1);
    printf("parameters     %zu (%.1f MB)\n", np, np * 4.0 / 1e6);
    printf("buffers        %zu (BatchNorm running statistics)\n", fl_graph_count(g, 0));
    printf("embedding      %d\n", emb);
    printf("forward FLOPs  %.3f GFLOP per tile\n", fl_graph_flops(g) / 1e9);
    printf("activations    %.1f MB per tile (training, batch 1)\n",
           fl_model_activation_bytes(m) / 1e6);
    fl_model_free(m);
    be->destroy(be);
    return FL_EXIT_OK;
}

static int cmd_forward(model_opts *o) {
    if (!o->weights || !o->input || !o->out) {
        fprintf(stderr, "fedlung model forward: --weights, --input and --out are required\n");
        return fl_cli_usage(usage);
    }
    fl_err err = {{0}};
    float *x = NULL, *y = NULL, *rows = NULL;
    int ndim, rc = FL_EXIT_FAIL;
    int64_t shape[4];
    fl_backend *be = NULL;
    fl_model *m = NULL;
    if (weights_readable(o->weights, &err) != FL_OK ||
        fl_npy_read_f32(o->input, &x, &ndim, shape, &err) != FL_OK)
        return fl_cli_fail(&err);
    int T = o->m.net.tile;
    if (ndim != 4 || shape[1] != 3 || shape[2] != T || shape[3] != T) {
        fl_fail(&err, FL_ESHAPE, "%s: expected a float32 array of shape (N, 3, %d, %d), got %d-D",
                o->input, T, T, ndim);
        if (ndim == 4)
            snprintf(err.msg + strlen(err.msg), sizeof err.msg - strlen(err.msg),
                     " (%lld, %lld, %lld, %lld)", (long long)shape[0], (long long)shape[1],
                     (long long)shape[2], (long long)shape[3]);
        goto done;
    }
    int n = (int)shape[0], B = o->m.batch ? o->m.batch : (n < 16 ? n : 16);
    if (n < 1) {
        fl_fail(&err, FL_ESHAPE, "%s: the array holds no images", o->input);
        goto done;
    }
    if (build(&m, &be, o, B, 0, &err) != FL_OK) goto done;
    const fl_graph *g = fl_model_graph(m);
    int out = fl_graph_find_output(g, o->features ? "embedding" : "logits");
    int F = g->values[g->outputs[out]].shape[0];
    size_t per = (size_t)3 * T * T;
    y = malloc((size_t)n * F * sizeof(float));
    rows = calloc((size_t)B * (per > (size_t)F ? per : (size_t)F), sizeof(float));
    if (!y || !rows) {
        fl_fail(&err, FL_ENOMEM, "out of memory for %d images", n);
        goto done;
    }
    for (int i = 0; i < n; i += B) {
        int k = n - i < B ? n - i : B; /* the last batch is padded with zeros */
        memset(rows, 0, (size_t)B * per * sizeof(float));
        memcpy(rows, x + (size_t)i * per, (size_t)k * per * sizeof(float));
        if (fl_model_set_input(m, 0, rows, &err) != FL_OK ||
            fl_model_forward(m, 0, &err) != FL_OK ||
            fl_model_get_output(m, out, rows, &err) != FL_OK)
            goto done;
        memcpy(y + (size_t)i * F, rows, (size_t)k * F * sizeof(float));
    }
    int64_t oshape[2] = {n, F};
    if (fl_npy_write_f32(o->out, y, 2, oshape, &err) != FL_OK) goto done;
    rc = FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK) fl_cli_fail(&err);
    fl_model_free(m);
    if (be) be->destroy(be);
    free(x);
    free(y);
    free(rows);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(model_opts *o) {
    if (!o->m.batch) {
        fprintf(stderr, "fedlung model bench: --batch is required\n");
        return fl_cli_usage(usage);
    }
    fl_err err = {{0}};
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_optim opt = {0};
    float *x = NULL;
    int32_t *labels = NULL;
    double *times = NULL;
    int rc = FL_EXIT_FAIL, B = o->m.batch, T = o->m.net.tile, warmup = 2;
    if (weights_readable(o->weights, &err) != FL_OK || build(&m, &be, o, B, 0, &err) != FL_OK)
        goto done;
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    oc.weight_decay = 0; /* the benchmark's step: SGD, lr 0.01, momentum 0.9 */
    if (fl_optim_init(&opt, m, &oc, &err) != FL_OK) goto done;
    size_t per = (size_t)3 * T * T;
    x = malloc((size_t)B * per * sizeof(float));
    labels = malloc((size_t)B * sizeof(int32_t));
    times = malloc((size_t)o->steps * sizeof(double));
    if (!x || !labels || !times) {
        fl_fail(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (o->input) {
        float *in;
        int ndim;
        int64_t shape[4];
        if (fl_npy_read_f32(o->input, &in, &ndim, shape, &err) != FL_OK) goto done;
        if (ndim != 4 || shape[0] != B || shape[1] != 3 || shape[2] != T || shape[3] != T) {
            free(in);
            fl_fail(&err, FL_ESHAPE, "%s: expected shape (%d, 3, %d, %d)", o->input, B, T, T);
            goto done;
        }
        memcpy(x, in, (size_t)B * per * sizeof(float));
        free(in);
    } else {
        fl_rng rng;
        fl_rng_seed(&rng, 1234);
        for (size_t i = 0; i < (size_t)B * per; i++) x[i] = (float)fl_rng_normal(&rng);
    }
    for (int i = 0; i < B; i++) labels[i] = i % o->m.net.classes;
    /* The batch goes to the device once: the steps time the model, not the host-to-device copy
     * (a PyTorch benchmark keeps its batch on the GPU too). The forward never writes its
     * input. Each step reads its loss back, which waits for the GPU. */
    if (fl_model_set_input(m, 0, x, &err) != FL_OK) goto done;
    float first_loss = 0;
    for (int s = 0; s < warmup + o->steps; s++) {
        double t0 = fl_now();
        float loss;
        if (fl_model_forward(m, 1, &err) != FL_OK ||
            fl_model_loss_ce(m, 0, labels, NULL, &loss, &err) != FL_OK ||
            fl_model_backward(m, &err) != FL_OK || fl_optim_step(&opt, NULL, &err) != FL_OK)
            goto done;
        double dt = fl_now() - t0;
        if (s == 0) first_loss = loss;
        if (s >= warmup) times[s - warmup] = dt;
        if (!o->json || s == 0)
            fprintf(stderr, "step %d/%d: loss %.6f, %.3f s\n", s + 1, warmup + o->steps, loss, dt);
    }
    qsort(times, (size_t)o->steps, sizeof *times, cmp_double);
    double median =
        o->steps % 2 ? times[o->steps / 2] : 0.5 * (times[o->steps / 2 - 1] + times[o->steps / 2]);
    double ips = B / median;
    const char *prec = fl_cli_precision_name(o->m.precision);
    if (o->json)
        printf("{\"arch\": \"resnet%d\", \"tile\": %d, \"batch\": %d, \"device\": \"%s\", "
               "\"precision\": \"%s\", \"threads\": %d, \"steps\": %d, "
               "\"images_per_second\": %.6g, \"peak_rss_bytes\": %lld, \"first_loss\": %.9g}\n",
               o->m.net.depth, T, B, o->m.device, prec, be->threads, o->steps, ips,
               fl_peak_rss_bytes(), (double)first_loss);
    else if (be->device == FL_DEVICE_CPU)
        printf("resnet%d @%d px, batch %d, %d threads: %.2f images/s (median of %d steps), "
               "peak RSS %.0f MB, first loss %.6f\n",
               o->m.net.depth, T, B, be->threads, ips, o->steps, fl_peak_rss_bytes() / 1e6,
               (double)first_loss);
    else
        printf("resnet%d @%d px, batch %d, %s %s: %.2f images/s (median of %d steps), "
               "first loss %.6f\n",
               o->m.net.depth, T, B, o->m.device, prec, ips, o->steps, (double)first_loss);
    rc = FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK) fl_cli_fail(&err);
    fl_optim_destroy(&opt);
    fl_model_free(m);
    if (be) be->destroy(be);
    free(x);
    free(labels);
    free(times);
    return rc;
}

int fl_cmd_model(int argc, char **argv) {
    if (argc < 2) return fl_cli_usage(usage);
    const char *sub = argv[1];
    /* These two parse their own options. */
    if (strcmp(sub, "opcheck") == 0) return fl_cmd_model_opcheck(argc - 1, argv + 1);
    if (strcmp(sub, "step") == 0) return fl_cmd_model_step(argc - 1, argv + 1);
    model_opts o;
    int p = parse(argc - 1, argv + 1, &o);
    if (p > 0 || strcmp(sub, "--help") == 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);
    if (strcmp(sub, "info") == 0) return cmd_info(&o);
    if (strcmp(sub, "forward") == 0) return cmd_forward(&o);
    if (strcmp(sub, "bench") == 0) return cmd_bench(&o);
    fprintf(stderr, "fedlung model: unknown subcommand '%s'\n", sub);
    return fl_cli_usage(usage);
}
