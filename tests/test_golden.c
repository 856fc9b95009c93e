/* test_golden.c - the engine against PyTorch on the fixtures of tests/golden/ (written by
 * tests/golden/make_fixtures.py): width-reduced ResNets and the fusion MLP, comparing forward
 * outputs in train and eval mode, the loss, every parameter gradient, BatchNorm running
 * statistics after one train forward, and the losses of 5 SGD steps.
 *
 * Metric, per tensor: max_i |engine_i - ref_i| / max(max_i |ref_i|, floor) <= 1e-4, where floor
 * is 1e-3 for outputs, losses and buffers, and 1e-3 * (the largest |gradient| of the model)
 * for gradients: a tensor is judged against its own scale, and a gradient that nearly cancels
 * (a BN bias ahead of another train-mode BN) against the model's gradient scale instead of its
 * own rounding noise. The references are PyTorch in float64 (stored as float32), on which
 * PyTorch's own float32 scores below 1e-5. Not a finite-difference test (see test_ops.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/fusion.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

#define GOLDEN_RTOL 1e-4
#define GOLDEN_FLOOR 1e-3

static const char *const FIXTURES[] = {
    "golden/resnet18_w16_t32_imagenet.safetensors",
    "golden/resnet18_w16_t32_small.safetensors",
    "golden/resnet50_w16_t64_imagenet.safetensors",
    "golden/fusion.safetensors",
};

/* One open fixture and what the comparisons need to name their failures. */
typedef struct {
    const char *path;
    fl_safetensors *st;
    double worst; /* largest error seen, for the summary line */
    char worst_what[FL_NAME_LEN + 32];
} fixture;

/* The tensor `name` of the fixture as n floats (malloc'd, caller frees), or NULL after a
 * failure naming the fixture and tensor (missing, or not n elements). */
static float *fx_floats(fixture *fx, const char *name, size_t n) {
    fl_err err = {{0}};
    const fl_st_tensor *t = fl_safetensors_find(fx->st, name);
    fl_test_checks++;
    if (!t) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: no tensor %s", fx->path, name);
        return NULL;
    }
    if (t->numel != n) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: %s has %zu elements, the engine %zu", fx->path,
                        name, t->numel, n);
        return NULL;
    }
    float *out = malloc((n ? n : 1) * sizeof *out);
    if (!out || fl_safetensors_read_f32(fx->st, t, out, &err) != FL_OK) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: reading %s: %s", fx->path, name, err.msg);
        free(out);
        return NULL;
    }
    return out;
}

static int32_t *fx_labels(fixture *fx, const char *name, size_t n) {
    fl_err err = {{0}};
    const fl_st_tensor *t = fl_safetensors_find(fx->st, name);
    int64_t *wide = malloc((n ? n : 1) * sizeof *wide);
    int32_t *out = malloc((n ? n : 1) * sizeof *out);
    fl_test_checks++;
    if (!t || t->numel != n || !wide || !out ||
        fl_safetensors_read_i64(fx->st, t, wide, &err) != FL_OK) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: %s missing, not %zu elements or unreadable %s",
                        fx->path, name, n, err.msg);
        free(wide);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) out[i] = (int32_t)wide[i];
    free(wide);
    return out;
}

static const char *fx_meta(fixture *fx, const char *key) {
    const char *v = fl_safetensors_metadata(fx->st, key);
    if (!v) fl_test_fail_at(__FILE__, __LINE__, "%s: no metadata %s", fx->path, key);
    return v ? v : "0";
}

/* The metric of the file comment; fails naming fixture and tensor, and the worst element. */
static void compare(fixture *fx, const char *what, const float *got, const float *ref, size_t n,
                    double floor_abs) {
    double scale = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)ref[i]));
    scale = fmax(scale, floor_abs);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]) / scale;
        if (!(d <= worst)) { /* catches NaN */
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    fl_test_checks++;
    if (worst > fx->worst) {
        fx->worst = worst;
        snprintf(fx->worst_what, sizeof fx->worst_what, "%s", what);
    }
    if (!(worst <= GOLDEN_RTOL))
        fl_test_fail_at(__FILE__, __LINE__,
                        "%s: %s: error %.3g > %.0e at [%zu]: engine %.9g, PyTorch %.9g "
                        "(scale %.3g)",
                        fx->path, what, worst, GOLDEN_RTOL, at, (double)got[at], (double)ref[at],
                        scale);
}

static void compare_output(fixture *fx, fl_model *m, const char *output, const char *ref_name) {
    const fl_graph *g = fl_model_graph(m);
    fl_err err = {{0}};
    int o = fl_graph_find_output(g, output);
    fl_test_checks++;
    if (o < 0) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: the engine has no output %s", fx->path, output);
        return;
    }
    size_t n = (size_t)fl_model_batch(m) * g->values[g->outputs[o]].numel;
    float *ref = fx_floats(fx, ref_name, n), *got = malloc(n * sizeof *got);
    if (ref && got) {
        CHECK_OK(fl_model_get_output(m, o, got, &err), &err);
        compare(fx, ref_name, got, ref, n, GOLDEN_FLOOR);
    }
    free(ref);
    free(got);
}

/* Copies every "param.<name>" into the model (parameters and BN running statistics), and checks
 * that the fixture has no parameter the engine lacks. Returns 0 on any failure. */
static int load_params(fixture *fx, fl_model *m) {
    const fl_graph *g = fl_model_graph(m);
    int n_file = 0, ok = 1;
    for (int i = 0; i < fl_safetensors_count(fx->st); i++)
        if (strncmp(fl_safetensors_tensor(fx->st, i)->name, "param.", 6) == 0) n_file++;
    if (n_file != g->n_params) {
        fl_test_fail_at(__FILE__, __LINE__, "%s: %d param.* tensors, the engine has %d", fx->path,
                        n_file, g->n_params);
        ok = 0;
    }
    for (int p = 0; p < g->n_params; p++) {
        char name[FL_NAME_LEN + 16];
        snprintf(name, sizeof name, "param.%s", g->params[p].name);
        float *v = fx_floats(fx, name, g->params[p].numel);
        if (!v) {
            ok = 0;
            continue;
        }
        fl_model_set_tensor(m, p, v);
        free(v);
    }
    return ok;
}

/* Sets every graph input from "input.<name>", or from "input" for a single-input graph. */
static int load_inputs(fixture *fx, fl_model *m) {
    const fl_graph *g = fl_model_graph(m);
    fl_err err = {{0}};
    for (int i = 0; i < g->n_inputs; i++) {
        const fl_value *v = &g->values[g->inputs[i]];
        char name[FL_NAME_LEN + 16];
        snprintf(name, sizeof name, "input.%s", g->nodes[v->producer].name);
        if (g->n_inputs == 1 && !fl_safetensors_find(fx->st, name)) snprintf(name, 16, "input");
        float *x = fx_floats(fx, name, (size_t)fl_model_batch(m) * v->numel);
        if (!x) return 0;
        CHECK_OK(fl_model_set_input(m, i, x, &err), &err);
        free(x);
    }
    return 1;
}

/* Forward in train mode and the fixture's loss: CE(logits) (+ CE(stage_logits)). */
static float train_loss(fixture *fx, fl_model *m, const int32_t *labels,
                        const int32_t *stage_labels) {
    const fl_graph *g = fl_model_graph(m);
    fl_err err = {{0}};
    float loss = 0, l2 = 0;
    CHECK_OK(fl_model_forward(m, 1, &err), &err);
    CHECK_OK(fl_model_loss_ce(m, fl_graph_find_output(g, "logits"), labels, NULL, &loss, &err),
             &err);
    if (stage_labels) {
        CHECK_OK(fl_model_loss_ce(m, fl_graph_find_output(g, "stage_logits"), stage_labels, NULL,
                                  &l2, &err),
                 &err);
        loss += l2;
    }
    return loss;
}

/* The largest |value| over the fixture's "grad.*" tensors: the model's gradient scale. */
static double grad_scale(fixture *fx) {
    double scale = 0;
    for (int i = 0; i < fl_safetensors_count(fx->st); i++) {
        const fl_st_tensor *t = fl_safetensors_tensor(fx->st, i);
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        float *v = fx_floats(fx, t->name, t->numel);
        for (size_t j = 0; v && j < t->numel; j++) scale = fmax(scale, fabs((double)v[j]));
        free(v);
    }
    return scale;
}

/* Gradients of every trainable parameter vs "grad.<name>", buffers vs "buffer_after.<name>". */
static void compare_grads_and_buffers(fixture *fx, fl_model *m) {
    const fl_graph *g = fl_model_graph(m);
    fl_backend *be = fl_model_backend(m);
    double gscale = grad_scale(fx);
    for (int p = 0; p < g->n_params; p++) {
        const fl_param *pp = &g->params[p];
        char name[FL_NAME_LEN + 16];
        snprintf(name, sizeof name, "%s.%s", pp->trainable ? "grad" : "buffer_after", pp->name);
        float *ref = fx_floats(fx, name, pp->numel), *got = malloc(pp->numel * sizeof *got);
        if (ref && got) {
            if (pp->trainable) {
                be->download(be, got, fl_model_grads(m) + pp->offset, pp->numel * sizeof *got);
                compare(fx, name, got, ref, pp->numel, GOLDEN_FLOOR * gscale);
            } else {
                fl_model_get_tensor(m, p, got);
                compare(fx, name, got, ref, pp->numel, GOLDEN_FLOOR);
            }
        }
        free(ref);
        free(got);
    }
}

static fl_status build_graph(fixture *fx, fl_graph **g, int *batch, int *stages, fl_err *err) {
    const char *kind = fx_meta(fx, "kind");
    *batch = atoi(fx_meta(fx, "batch"));
    *stages = 0;
    if (strcmp(kind, "resnet") == 0) {
        fl_resnet_config c;
        fl_resnet_config_default(&c);
        c.depth = atoi(fx_meta(fx, "depth"));
        c.tile = atoi(fx_meta(fx, "tile"));
        c.stem = (fl_stem)fl_stem_from_name(fx_meta(fx, "stem"));
        c.classes = atoi(fx_meta(fx, "classes"));
        c.width = (float)atof(fx_meta(fx, "width"));
        return fl_resnet_build(g, &c, err);
    }
    fl_fusion_config c;
    fl_fusion_config_default(&c);
    /* "image:16,rna:24,..." */
    char mods[256];
    snprintf(mods, sizeof mods, "%s", fx_meta(fx, "modalities"));
    for (char *save = NULL, *tok = strtok_r(mods, ",", &save);
         tok && c.n_modalities < FL_FUSION_MAX_MODALITIES; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon) return fl_fail(err, FL_EFORMAT, "%s: bad modalities metadata", fx->path);
        *colon = '\0';
        snprintf(c.names[c.n_modalities], sizeof c.names[0], "%s", tok);
        c.in_dim[c.n_modalities++] = atoi(colon + 1);
    }
    c.enc_dim = atoi(fx_meta(fx, "enc_dim"));
    c.hidden = atoi(fx_meta(fx, "hidden"));
    c.classes = atoi(fx_meta(fx, "classes"));
    c.stages = *stages = atoi(fx_meta(fx, "stages"));
    c.dropout = (float)atof(fx_meta(fx, "dropout"));
    return fl_fusion_build(g, &c, err);
}

static void run_fixture(const char *path, fl_backend *be) {
    fixture fx = {.path = path};
    fl_err err = {{0}};
    fl_graph *g = NULL;
    fl_model *m = NULL;
    int32_t *labels = NULL, *stage_labels = NULL;
    float *ref_loss = NULL, *ref_sgd = NULL;
    float *losses = NULL;
    int batch = 0, stages = 0, steps = 0, is_resnet;
    fl_optim opt = {0};
    fl_optim_config oc;

    fl_test_checks++;
    if (fl_safetensors_open(&fx.st, path, &err) != FL_OK) {
        fl_test_fail_at(__FILE__, __LINE__,
                        "%s: %s (regenerate with /usr/bin/python3 "
                        "tests/golden/make_fixtures.py)",
                        path, err.msg);
        return;
    }
    is_resnet = strcmp(fx_meta(&fx, "kind"), "resnet") == 0;
    CHECK_OK(build_graph(&fx, &g, &batch, &stages, &err), &err);
    if (!g) goto done;
    CHECK_OK(fl_model_new(&m, g, be, batch, 1, &err), &err); /* takes g */
    if (!m) goto done;
    labels = fx_labels(&fx, "labels", (size_t)batch);
    if (stages) stage_labels = fx_labels(&fx, "stage_labels", (size_t)batch);
    ref_loss = fx_floats(&fx, "loss", 1);
    steps = atoi(fx_meta(&fx, "steps"));
    ref_sgd = fx_floats(&fx, "sgd_losses", (size_t)steps);
    if (!labels || (stages && !stage_labels) || !ref_loss || !ref_sgd) goto done;
    if (!load_params(&fx, m) || !load_inputs(&fx, m)) goto done;

    /* Eval mode first, while the running statistics are still the fixture's. */
    if (is_resnet) {
        CHECK_OK(fl_model_forward(m, 0, &err), &err);
        compare_output(&fx, m, "logits", "logits_eval");
    }

    float loss = train_loss(&fx, m, labels, stage_labels);
    if (is_resnet) {
        compare_output(&fx, m, "logits", "logits_train");
    } else {
        compare_output(&fx, m, "logits", "logits");
        compare_output(&fx, m, "stage_logits", "stage_logits");
        compare_output(&fx, m, "fused", "fused");
    }
    compare(&fx, "loss", &loss, ref_loss, 1, GOLDEN_FLOOR);
    CHECK_OK(fl_model_backward(m, &err), &err);
    compare_grads_and_buffers(&fx, m);

    /* SGD from the fixture's parameters again; sgd_losses[k] is the loss before step k+1. */
    if (!load_params(&fx, m)) goto done;
    fl_optim_config_default(&oc);
    oc.kind = FL_OPT_SGD;
    oc.lr = (float)atof(fx_meta(&fx, "lr"));
    oc.momentum = (float)atof(fx_meta(&fx, "momentum"));
    oc.weight_decay = (float)atof(fx_meta(&fx, "weight_decay"));
    CHECK_OK(fl_optim_init(&opt, m, &oc, &err), &err);
    if (!opt.m) goto done;
    losses = calloc((size_t)steps, sizeof *losses);
    for (int k = 0; losses && k < steps; k++) {
        losses[k] = train_loss(&fx, m, labels, stage_labels);
        CHECK_OK(fl_model_backward(m, &err), &err);
        CHECK_OK(fl_optim_step(&opt, NULL, &err), &err);
    }
    if (losses) compare(&fx, "sgd_losses", losses, ref_sgd, (size_t)steps, GOLDEN_FLOOR);
    printf("%s: worst error %.2e (%s)\n", path, fx.worst, fx.worst_what);

done:
    fl_optim_destroy(&opt);
    fl_model_free(m);
    free(losses);
    free(labels);
    free(stage_labels);
    free(ref_loss);
    free(ref_sgd);
    fl_safetensors_close(fx.st);
}

int main(void) {
    fl_err err = {{0}};
    fl_backend *be = fl_backend_cpu_new(2, &err);
    if (!be) {
        fprintf(stderr, "test_golden: CPU backend: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) run_fixture(FIXTURES[i], be);
    be->destroy(be);
    return fl_test_summary("test_golden");
}
