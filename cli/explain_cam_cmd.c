/* explain_cam_cmd.c - `fedlung explain cam`: class activation maps (CAM, or Grad-CAM) of an
 * image model over the top tiles of each patient of a cohort, as PNG overlays and .npy maps,
 * or over an array of inputs (numpy users, tests). The map math is pipeline/cam.h; the
 * drawing eval/heatmap.h. Not a saliency toolbox: last-block maps of a ResNet only. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/atomic.h"
#include "../common/progress.h"
#include "../eval/heatmap.h"
#include "../nn/checkpoint.h"
#include "../nn/npy.h"
#include "../nn/resnet.h"
#include "../nn/safetensors.h"
#include "../pipeline/cam.h"
#include "../pipeline/internal.h"
#include "../pipeline/tiles.h"
#include "cli.h"
#include "explain_cmds.h"

static const char usage[] =
    "usage: fedlung explain cam --cohort F.h5 --model RNET.h5 --out DIR [--split train|val|test]\n"
    "                           [--patients ID,...] [--top-k K] [--class NAME|all|predicted]\n"
    "                           [--grad-cam] [--alpha A] [--threads N] [--quiet]\n"
    "       fedlung explain cam --input X.npy --weights W.safetensors|W.h5 --arch A --tile T\n"
    "                           [--stem S] [--classes K] [--width W] --out MAPS.npy\n"
    "                           [--class INDEX|all|predicted] [--grad-cam] [--threads N]\n"
    "\n"
    "Cohort mode: scores every tile of the chosen patients (--patients, else the --split, default\n"
    "  test), and for each patient and class draws the K tiles (default 4) with the highest\n"
    "  probability of that class: DIR/<patient>/<class>_tile<rank>.png (tile | map over tile |\n"
    "  colour bar) and .npy (the raw T x T float32 map), listed in DIR/index.csv.\n"
    "Array mode: X.npy holds normalised inputs (N, 3, T, T) as for `fedlung model forward`;\n"
    "  MAPS.npy gets the raw maps (N, K, T, T), K = the classes asked for (1 unless all).\n"
    "  --class     a class name (cohort) or index (array), all (default), or predicted\n"
    "  --grad-cam  weights = spatial mean of d logit / d maps, ReLU before upsampling\n"
    "  --alpha     opacity of the colour map over the tile, 0..1 (default 0.45)\n"
    "Maps are upsampled bilinearly like torch interpolate(mode=\"bilinear\", "
    "align_corners=False).\n";

#define CAM_BATCH 16

typedef struct {
    const char *cohort, *model, *out, *patients, *cls, *input, *weights;
    fl_split split;
    int top_k, grad_cam, threads, quiet;
    float alpha;
    fl_resnet_config net;
} cam_opts;

enum {
    O_COHORT = 256,
    O_MODEL,
    O_OUT,
    O_SPLIT,
    O_PATIENTS,
    O_TOPK,
    O_CLASS,
    O_GRADCAM,
    O_ALPHA,
    O_THREADS,
    O_QUIET,
    O_INPUT,
    O_WEIGHTS,
    O_ARCH,
    O_TILE,
    O_STEM,
    O_CLASSES,
    O_WIDTH,
    O_HELP
};

/* Returns 1 for --help, 0 when parsed, -1 on a usage error (already reported). */
static int parse(int argc, char **argv, cam_opts *o) {
    static const struct option longopts[] = {{"cohort", required_argument, 0, O_COHORT},
                                             {"model", required_argument, 0, O_MODEL},
                                             {"out", required_argument, 0, O_OUT},
                                             {"split", required_argument, 0, O_SPLIT},
                                             {"patients", required_argument, 0, O_PATIENTS},
                                             {"top-k", required_argument, 0, O_TOPK},
                                             {"class", required_argument, 0, O_CLASS},
                                             {"grad-cam", no_argument, 0, O_GRADCAM},
                                             {"alpha", required_argument, 0, O_ALPHA},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"quiet", no_argument, 0, O_QUIET},
                                             {"input", required_argument, 0, O_INPUT},
                                             {"weights", required_argument, 0, O_WEIGHTS},
                                             {"arch", required_argument, 0, O_ARCH},
                                             {"tile", required_argument, 0, O_TILE},
                                             {"stem", required_argument, 0, O_STEM},
                                             {"classes", required_argument, 0, O_CLASSES},
                                             {"width", required_argument, 0, O_WIDTH},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    fl_resnet_config_default(&o->net);
    o->split = FL_SPLIT_TEST;
    o->top_k = 4;
    o->alpha = 0.45f;
    o->cls = "all";
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case O_COHORT:
            o->cohort = optarg;
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_OUT:
            o->out = optarg;
            break;
        case O_PATIENTS:
            o->patients = optarg;
            break;
        case O_CLASS:
            o->cls = optarg;
            break;
        case O_INPUT:
            o->input = optarg;
            break;
        case O_WEIGHTS:
            o->weights = optarg;
            break;
        case O_GRADCAM:
            o->grad_cam = 1;
            break;
        case O_QUIET:
            o->quiet = 1;
            break;
        case O_SPLIT:
            bad = strcmp(optarg, "train") == 0  ? (o->split = FL_SPLIT_TRAIN, 0)
                  : strcmp(optarg, "val") == 0  ? (o->split = FL_SPLIT_VAL, 0)
                  : strcmp(optarg, "test") == 0 ? (o->split = FL_SPLIT_TEST, 0)
                                                : 1;
            break;
        case O_TOPK:
            bad = fl_parse_int(optarg, 1, 10000, &o->top_k);
            break;
        case O_ALPHA:
            bad = fl_parse_float(optarg, 0, 1, &o->alpha);
            break;
        case O_THREADS:
            bad = fl_parse_int(optarg, 1, 1024, &o->threads);
            break;
        case O_ARCH:
            bad = !(o->net.depth = fl_resnet_depth_from_name(optarg));
            break;
        case O_TILE:
            bad = fl_parse_int(optarg, 32, 8192, &o->net.tile);
            break;
        case O_STEM: {
            int s = fl_stem_from_name(optarg);
            bad = s < 0;
            o->net.stem = (fl_stem)(s < 0 ? 0 : s);
            break;
        }
        case O_CLASSES:
            bad = fl_parse_int(optarg, 1, FL_MAX_CLASSES, &o->net.classes);
            break;
        case O_WIDTH:
            bad = fl_parse_float(optarg, 1e-3, 64, &o->net.width);
            break;
        case O_HELP:
            return 1;
        default:
            fprintf(stderr, "fedlung explain cam: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "fedlung explain cam: bad value '%s' for --%s\n", optarg,
                    longopts[idx].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedlung explain cam: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ---- the model pass: activations, logits and maps of one batch ---- */

typedef struct {
    fl_model *m;
    int B, K, C, h, w, T;
    int v_maps, o_logits;
    float *fc;     /* K x C: the class head's weights (CAM) */
    float *A;      /* B x C x h x w: the last block's maps (the input of global pooling) */
    float *dA;     /* B x C x h x w: d logit / d A (Grad-CAM) */
    float *logits; /* B x K */
    float *wrow;   /* B x K (one-hot gradient) or B x C (per-row weights) */
} cam_runner;

static void runner_destroy(cam_runner *r) {
    free(r->fc);
    free(r->A);
    free(r->dA);
    free(r->logits);
    free(r->wrow);
    memset(r, 0, sizeof *r);
}

/* Finds the pooled maps and the class head of m (a ResNet: maps -> GAP -> linear "logits"). */
static fl_status runner_init(cam_runner *r, fl_model *m, fl_err *err) {
    memset(r, 0, sizeof *r);
    const fl_graph *g = fl_model_graph(m);
    r->m = m;
    r->B = fl_model_batch(m);
    r->o_logits = fl_graph_find_output(g, "logits");
    r->v_maps = fl_model_find_value(m, "gap_input");
    if (r->o_logits < 0 || r->v_maps < 0 || g->values[r->v_maps].ndim != 3)
        return fl_fail(err, FL_EUNSUPPORTED,
                       "explain cam: the model has no pooled feature maps and logits");
    const fl_node *head = &g->nodes[g->values[g->outputs[r->o_logits]].producer];
    const fl_node *pool = &g->nodes[g->values[head->in[0]].producer];
    if (head->op != FL_OP_LINEAR || pool->op != FL_OP_GAP || pool->in[0] != r->v_maps)
        return fl_fail(err, FL_EUNSUPPORTED,
                       "explain cam: the logits are not a linear layer over the pooled maps");
    const fl_value *maps = &g->values[r->v_maps];
    r->C = maps->shape[0];
    r->h = maps->shape[1];
    r->w = maps->shape[2];
    r->K = g->values[g->outputs[r->o_logits]].shape[0];
    r->T = g->values[g->inputs[0]].shape[1];
    size_t n_maps = (size_t)r->B * r->C * r->h * r->w;
    int row = r->K > r->C ? r->K : r->C;
    r->fc = malloc((size_t)r->K * r->C * sizeof(float));
    r->A = malloc(n_maps * sizeof(float));
    r->dA = malloc(n_maps * sizeof(float));
    r->logits = malloc((size_t)r->B * r->K * sizeof(float));
    r->wrow = malloc((size_t)r->B * row * sizeof(float));
    if (!r->fc || !r->A || !r->dA || !r->logits || !r->wrow) {
        runner_destroy(r);
        return fl_fail(err, FL_ENOMEM, "explain cam: out of memory for a batch of %d maps", r->B);
    }
    fl_model_get_tensor(m, head->param[0], r->fc); /* nn.Linear weight: K x C */
    return FL_OK;
}

/* Runs the batch x (B x 3 x T x T, normalised) in eval mode: r->logits and r->A. */
static fl_status runner_forward(cam_runner *r, const float *x, fl_err *err) {
    fl_status s;
    if ((s = fl_model_set_input(r->m, 0, x, err)) != FL_OK ||
        (s = fl_model_forward(r->m, 0, err)) != FL_OK ||
        (s = fl_model_get_output(r->m, r->o_logits, r->logits, err)) != FL_OK)
        return s;
    return fl_model_get_value(r->m, r->v_maps, r->A, err);
}

/* Maps (n x T x T) of the first n rows of the last forward, row i for class cls[i]. CAM: the
 * class's fc weights; Grad-CAM: one backward of the one-hot logits, then ReLU'd maps. */
static fl_status runner_maps(cam_runner *r, const int *cls, int n, int grad_cam, float *out,
                             fl_err *err) {
    if (!grad_cam) {
        for (int i = 0; i < n; i++)
            memcpy(r->wrow + (size_t)i * r->C, r->fc + (size_t)cls[i] * r->C,
                   (size_t)r->C * sizeof(float));
        return fl_cam_compute(r->A, n, r->C, r->h, r->w, r->wrow, (size_t)r->C, 0, r->T, out, err);
    }
    memset(r->wrow, 0, (size_t)r->B * r->K * sizeof(float));
    for (int i = 0; i < n; i++) r->wrow[(size_t)i * r->K + cls[i]] = 1.0f;
    fl_status s = fl_model_backward_from(r->m, r->o_logits, r->wrow, r->v_maps, r->dA, err);
    if (s != FL_OK) return s;
    fl_cam_grad_weights(r->dA, n, r->C, r->h, r->w, r->wrow);
    return fl_cam_compute(r->A, n, r->C, r->h, r->w, r->wrow, (size_t)r->C, 1, r->T, out, err);
}

static int argmax(const float *x, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (x[k] > x[best]) best = k;
    return best;
}

/* ---- array mode ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int run_array(const cam_opts *o) {
    fl_err err = {{0}};
    float *x = NULL, *maps = NULL, *batch_maps = NULL;
    int *cls = NULL, ndim, rc = FL_EXIT_FAIL, T = o->net.tile;
    int64_t shape[4];
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_graph *g = NULL;
    cam_runner r = {0};
    if (fl_npy_read_f32(o->input, &x, &ndim, shape, &err) != FL_OK) return fl_cli_fail(&err);
    if (ndim != 4 || shape[0] < 1 || shape[1] != 3 || shape[2] != T || shape[3] != T) {
        fl_fail(&err, FL_ESHAPE, "%s: expected a float32 array of shape (N, 3, %d, %d)", o->input,
                T, T);
        goto done;
    }
    int N = (int)shape[0], B = N < CAM_BATCH ? N : CAM_BATCH, K = o->net.classes, fixed = -1;
    if (strcmp(o->cls, "all") != 0 && strcmp(o->cls, "predicted") != 0 &&
        fl_parse_int(o->cls, 0, K - 1, &fixed) != 0) {
        fprintf(stderr, "fedlung explain cam: --class '%s' is not all, predicted or 0..%d\n",
                o->cls, K - 1);
        free(x);
        return fl_cli_usage(usage);
    }
    int n_out = strcmp(o->cls, "all") == 0 ? K : 1;
    if (fl_resnet_build(&g, &o->net, &err) != FL_OK) goto done;
    if (!(be = fl_backend_cpu_new(o->threads, &err))) goto done;
    fl_status s = fl_model_new(&m, g, be, B, 1, &err);
    g = NULL; /* the model owns it now */
    if (s != FL_OK) goto done;
    s = ends_with(o->weights, ".h5") ? fl_checkpoint_load(m, o->weights, &err)
                                     : fl_safetensors_load_model(m, o->weights, &err);
    if (s != FL_OK || runner_init(&r, m, &err) != FL_OK) goto done;
    size_t TT = (size_t)T * T, per = 3 * TT;
    maps = malloc((size_t)N * n_out * TT * sizeof(float));
    batch_maps = malloc((size_t)B * TT * sizeof(float));
    cls = malloc((size_t)B * sizeof(int));
    if (!maps || !batch_maps || !cls) {
        fl_fail(&err, FL_ENOMEM, "out of memory for %d maps of %d x %d", N * n_out, T, T);
        goto done;
    }
    for (int i0 = 0; i0 < N; i0 += B) {
        int n = N - i0 < B ? N - i0 : B;
        /* The last batch reuses the array's final rows so every row is a real input. */
        int start = i0 + B <= N ? i0 : N - B;
        if (runner_forward(&r, x + (size_t)start * per, &err) != FL_OK) goto done;
        int skip = i0 - start; /* rows of this batch already written */
        for (int j = 0; j < n_out; j++) {
            for (int i = 0; i < B; i++)
                cls[i] = fixed >= 0                         ? fixed
                         : strcmp(o->cls, "predicted") == 0 ? argmax(r.logits + (size_t)i * K, K)
                                                            : j;
            if (runner_maps(&r, cls, B, o->grad_cam, batch_maps, &err) != FL_OK) goto done;
            for (int i = skip; i < skip + n; i++)
                memcpy(maps + ((size_t)(start + i) * n_out + j) * TT, batch_maps + (size_t)i * TT,
                       TT * sizeof(float));
        }
    }
    int64_t oshape[4] = {N, n_out, T, T};
    if (fl_npy_write_f32(o->out, maps, 4, oshape, &err) != FL_OK) goto done;
    rc = FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK) fl_cli_fail(&err);
    runner_destroy(&r);
    fl_model_free(m);
    fl_graph_free(g);
    if (be) be->destroy(be);
    free(x);
    free(maps);
    free(batch_maps);
    free(cls);
    return rc;
}

/* ---- cohort mode ---- */

/* Reads the cohort tiles tiles[0..n) (consecutive indices in one read) into raw (n x T x T x 3)
 * and their normalised model inputs into x (n x 3 x T x T). */
static fl_status load_tiles(fl_cohort_file *f, const int64_t *tiles, int n, int T, uint8_t *raw,
                            float *x, fl_err *err) {
    size_t tile_bytes = (size_t)T * T * 3;
    for (int i = 0; i < n;) {
        int run = 1;
        while (i + run < n && tiles[i + run] == tiles[i] + run) run++;
        fl_status s = fl_cohort_read_tiles(f, tiles[i], run, raw + (size_t)i * tile_bytes, err);
        if (s != FL_OK) return s;
        i += run;
    }
    for (int i = 0; i < n; i++)
        fl_tile_to_input(raw + (size_t)i * tile_bytes, T, x + (size_t)i * 3 * T * T, NULL, 0);
    return FL_OK;
}

/* probs (n x K) = the softmax probabilities of tiles[0..n). */
static fl_status score_tiles(cam_runner *r, fl_cohort_file *f, const int64_t *tiles, int64_t n,
                             uint8_t *raw, float *x, float *probs, int quiet, fl_err *err) {
    fl_progress prog;
    fl_progress_begin(&prog, "scoring tiles", n, quiet);
    for (int64_t i = 0; i < n; i += r->B) {
        int b = n - i < r->B ? (int)(n - i) : r->B;
        fl_status s = load_tiles(f, tiles + i, b, r->T, raw, x, err);
        if (s == FL_OK) s = runner_forward(r, x, err);
        if (s != FL_OK) return s;
        fl_softmax_rows(r->logits, b, r->K);
        memcpy(probs + (size_t)i * r->K, r->logits, (size_t)b * r->K * sizeof(float));
        fl_progress_update(&prog, i + b);
    }
    fl_progress_end(&prog, "%lld tiles", (long long)n);
    return FL_OK;
}

typedef struct {
    float p;   /* the class's probability */
    int64_t t; /* cohort tile index */
} ranked_tile;

/* Highest probability first; ties in tile order. */
static int by_prob_desc(const void *a, const void *b) {
    const ranked_tile *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->t > y->t) - (x->t < y->t);
}

/* A name safe as one path component: [A-Za-z0-9._-] kept, anything else '_', no leading '.'. */
static void path_safe(const char *in, char *out, size_t cap) {
    size_t n = 0;
    if (in[0] == '.' || !in[0]) out[n++] = '_';
    for (; *in && n + 1 < cap; in++) {
        char ch = *in;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? ch : '_';
    }
    out[n] = '\0';
}

/* One CSV field, RFC 4180-quoted when it holds a comma, quote or line break, then sep. */
static void csv_put(FILE *f, const char *s, char sep) {
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(sep, f);
}

static fl_status make_dir(const char *dir, fl_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return fl_fail(err, FL_EIO, "%s: cannot create the folder: %s", dir, strerror(errno));
    return FL_OK;
}

/* want[p] = 1 for the patients named in list ("ID,ID,..."); fails naming an unknown one. */
static fl_status want_patients(const fl_cohort *c, const char *list, const char *path,
                               uint8_t *want, fl_err *err) {
    char *buf = strdup(list);
    if (!buf) return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_status s = FL_OK;
    for (char *save = NULL, *id = strtok_r(buf, ",", &save); id && s == FL_OK;
         id = strtok_r(NULL, ",", &save)) {
        int p = 0;
        while (p < c->P && strcmp(c->id[p], id) != 0) p++;
        if (p == c->P)
            s = fl_fail(err, FL_ENOTFOUND, "%s has no patient '%s'", path, id);
        else
            want[p] = 1;
    }
    free(buf);
    return s;
}

/* The tables a cohort run works over, freed together. */
typedef struct {
    fl_cohort c;
    fl_cohort_file *f;
    fl_backend *be;
    fl_model *m;
    cam_runner r;
    char names[FL_MAX_CLASSES][64]; /* class names as the model knows them */
    uint8_t *want, *raw;
    int64_t *first, *count, *tiles; /* tile ranges per patient; the tiles to score */
    float *probs, *x, *maps;        /* per scored tile K; B inputs; B maps */
    ranked_tile *rank;
    int *cls;
    fl_atomic_file index;
} cam_run;

static void cam_run_destroy(cam_run *w) {
    fl_atomic_abort(&w->index);
    runner_destroy(&w->r);
    fl_model_free(w->m);
    if (w->be) w->be->destroy(w->be);
    fl_cohort_close(w->f);
    fl_cohort_destroy(&w->c);
    free(w->want);
    free(w->raw);
    free(w->first);
    free(w->count);
    free(w->tiles);
    free(w->probs);
    free(w->x);
    free(w->maps);
    free(w->rank);
    free(w->cls);
}

/* Class names: the model's /pipeline section, else the cohort's when the count matches, else
 * "class<k>". */
static void class_names(cam_run *w, const char *model) {
    fl_pipeline_info info;
    fl_err ignored;
    int K = w->r.K, from_model = fl_pipeline_read(model, &info, &ignored) == FL_OK;
    for (int k = 0; k < K; k++) {
        const char *name = from_model && info.n_classes == K ? info.class_names[k]
                           : w->c.n_classes == K             ? w->c.class_names[k]
                                                             : NULL;
        if (name)
            snprintf(w->names[k], sizeof w->names[k], "%s", name);
        else
            snprintf(w->names[k], sizeof w->names[k], "class%d", k);
    }
    if (from_model) fl_pipeline_info_destroy(&info);
}

/* Writes the maps of one patient's top tiles for class k (ranked: the patient's tiles by
 * probability, n of them), files under dir (DIR/<patient>), rows into the index. */
static fl_status explain_class(cam_run *w, const cam_opts *o, int p, int k, int n, const char *dir,
                               const char *pdir, fl_err *err) {
    cam_runner *r = &w->r;
    int T = r->T, top = n < o->top_k ? n : o->top_k;
    size_t TT = (size_t)T * T;
    char cname[80], png[4200], npy[4200], caption[256];
    path_safe(w->names[k], cname, sizeof cname);
    for (int i0 = 0; i0 < top; i0 += r->B) {
        int b = top - i0 < r->B ? top - i0 : r->B;
        int64_t sel[CAM_BATCH];
        for (int i = 0; i < b; i++) {
            sel[i] = w->rank[i0 + i].t;
            w->cls[i] = k;
        }
        fl_status s = load_tiles(w->f, sel, b, T, w->raw, w->x, err);
        if (s == FL_OK) s = runner_forward(r, w->x, err);
        if (s == FL_OK) s = runner_maps(r, w->cls, b, o->grad_cam, w->maps, err);
        if (s != FL_OK) return s;
        for (int i = 0; i < b; i++) {
            int rank = i0 + i + 1;
            const float *map = w->maps + (size_t)i * TT;
            int64_t shape[2] = {T, T};
            snprintf(npy, sizeof npy, "%s/%s_tile%d.npy", dir, cname, rank);
            snprintf(png, sizeof png, "%s/%s_tile%d.png", dir, cname, rank);
            snprintf(caption, sizeof caption, "%s  %s  p = %.3f  tile %lld  (%s)", w->c.id[p],
                     w->names[k], (double)w->rank[i0 + i].p, (long long)sel[i],
                     o->grad_cam ? "Grad-CAM" : "CAM");
            if ((s = fl_npy_write_f32(npy, map, 2, shape, err)) != FL_OK ||
                (s = fl_heatmap_write_png(png, w->raw + (size_t)i * TT * 3, map, T, o->alpha,
                                          caption, err)) != FL_OK)
                return s;
            FILE *idx = w->index.f;
            csv_put(idx, w->c.id[p], ',');
            csv_put(idx, w->names[k], ',');
            fprintf(idx, "%d,%lld,%.9g,", rank, (long long)sel[i], (double)w->rank[i0 + i].p);
            snprintf(npy, sizeof npy, "%s/%s_tile%d.npy", pdir, cname, rank);
            snprintf(png, sizeof png, "%s/%s_tile%d.png", pdir, cname, rank);
            csv_put(idx, png, ',');
            csv_put(idx, npy, '\n');
        }
    }
    return FL_OK;
}

/* Resolves --class against the names: -1 all, -2 predicted, else the class; -3 unknown. */
static int class_choice(const cam_run *w, const char *choice) {
    if (strcmp(choice, "all") == 0) return -1;
    if (strcmp(choice, "predicted") == 0) return -2;
    for (int k = 0; k < w->r.K; k++)
        if (strcmp(w->names[k], choice) == 0) return k;
    return -3;
}

static fl_status cohort_setup(cam_run *w, const cam_opts *o, fl_err *err) {
    fl_model_meta meta;
    /* The model first: HDF5 refuses a second open of one file, so a cohort passed as --model
     * would otherwise fail with HDF5's words rather than ours. */
    fl_status s = fl_load_image_model(o->model, CAM_BATCH, o->threads, &w->be, &w->m, &meta, err);
    if (s == FL_OK) s = fl_cohort_open(&w->f, &w->c, o->cohort, err);
    if (s == FL_OK) s = runner_init(&w->r, w->m, err);
    if (s != FL_OK) return s;
    if (w->r.K > FL_MAX_CLASSES)
        return fl_fail(err, FL_EUNSUPPORTED, "%s has %d classes, more than the %d supported",
                       o->model, w->r.K, FL_MAX_CLASSES);
    if (w->c.tile != meta.tile)
        return fl_fail(err, FL_ESHAPE, "%s expects %d-px tiles but %s has %d px", o->model,
                       meta.tile, o->cohort, w->c.tile);
    class_names(w, o->model);
    int P = w->c.P, B = w->r.B, T = w->r.T;
    w->want = calloc((size_t)P + 1, 1);
    w->tiles = malloc((size_t)(w->c.n_tiles + 1) * sizeof(int64_t));
    w->probs = malloc((size_t)(w->c.n_tiles + 1) * w->r.K * sizeof(float));
    w->raw = malloc((size_t)B * T * T * 3);
    w->x = calloc((size_t)B * 3 * T * T, sizeof(float));
    w->maps = malloc((size_t)B * T * T * sizeof(float));
    w->rank = malloc((size_t)(w->c.n_tiles + 1) * sizeof(ranked_tile));
    w->cls = malloc((size_t)B * sizeof(int));
    if (!w->want || !w->tiles || !w->probs || !w->raw || !w->x || !w->maps || !w->rank || !w->cls)
        return fl_fail(err, FL_ENOMEM, "out of memory for %lld tiles", (long long)w->c.n_tiles);
    if (o->patients)
        s = want_patients(&w->c, o->patients, o->cohort, w->want, err);
    else if (fl_split_mask(&w->c, o->split, w->want) == 0)
        s = fl_fail(err, FL_EINVAL, "%s: no patients in the %s split", o->cohort,
                    fl_split_name(o->split));
    if (s == FL_OK) s = fl_tile_ranges(&w->c, &w->first, &w->count, err);
    return s;
}

static int run_cohort(const cam_opts *o) {
    fl_err err = {{0}};
    cam_run w = {0};
    char dir[4096], pdir[1024], path[4096];
    int rc = FL_EXIT_FAIL;
    fl_status s = cohort_setup(&w, o, &err);
    if (s != FL_OK) goto done;
    int choice = class_choice(&w, o->cls), K = w.r.K, P = w.c.P;
    if (choice == -3) {
        char known[FL_MAX_CLASSES * 66] = "";
        for (int k = 0; k < K; k++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                     w.names[k]);
        s = fl_fail(&err, FL_ENOTFOUND, "%s has no class '%s' (its classes: %s)", o->model, o->cls,
                    known);
        goto done;
    }
    /* The wanted patients' tiles in cohort order; pos[p] is where patient p's start. */
    int64_t n = 0, n_patients = 0;
    for (int p = 0; p < P; p++) {
        if (!w.want[p]) continue;
        if (w.count[p] == 0) {
            if (!o->quiet)
                fprintf(stderr, "explain cam: patient %s has no tiles; skipped\n", w.c.id[p]);
            continue;
        }
        for (int64_t j = 0; j < w.count[p]; j++) w.tiles[n + j] = w.first[p] + j;
        n += w.count[p];
        n_patients++;
    }
    if (n_patients == 0) {
        s = fl_fail(&err, FL_EINVAL, "%s: none of the chosen patients has tiles", o->cohort);
        goto done;
    }
    if ((s = score_tiles(&w.r, w.f, w.tiles, n, w.raw, w.x, w.probs, o->quiet, &err)) != FL_OK ||
        (s = make_dir(o->out, &err)) != FL_OK)
        goto done;
    snprintf(path, sizeof path, "%s/index.csv", o->out);
    if ((s = fl_atomic_open(&w.index, path, &err)) != FL_OK) goto done;
    fputs("patient_id,class,rank,tile_index,probability,png,npy\n", w.index.f);
    int per_class = choice == -1 ? K : 1;
    fl_progress prog;
    fl_progress_begin(&prog, "class activation maps", n_patients * per_class, o->quiet);
    int64_t at = 0, done_maps = 0, written = 0;
    for (int p = 0; p < P; p++) {
        if (!w.want[p] || w.count[p] == 0) continue;
        const float *pp = w.probs + (size_t)at * K; /* count[p] x K */
        float mean[FL_MAX_CLASSES] = {0};
        for (int64_t j = 0; j < w.count[p]; j++)
            for (int k = 0; k < K; k++) mean[k] += pp[j * K + k] / (float)w.count[p];
        path_safe(w.c.id[p], pdir, sizeof pdir);
        snprintf(dir, sizeof dir, "%s/%s", o->out, pdir);
        if ((s = make_dir(dir, &err)) != FL_OK) goto done;
        for (int j = 0; j < per_class; j++) {
            int k = choice >= 0 ? choice : choice == -2 ? argmax(mean, K) : j;
            for (int64_t t = 0; t < w.count[p]; t++)
                w.rank[t] = (ranked_tile){pp[t * K + k], w.first[p] + t};
            qsort(w.rank, (size_t)w.count[p], sizeof *w.rank, by_prob_desc);
            int cnt = w.count[p] < o->top_k ? (int)w.count[p] : o->top_k;
            if ((s = explain_class(&w, o, p, k, cnt, dir, pdir, &err)) != FL_OK) goto done;
            written += cnt;
            fl_progress_update(&prog, ++done_maps);
        }
        at += w.count[p];
    }
    if ((s = fl_atomic_commit(&w.index, &err)) != FL_OK) goto done;
    fl_progress_end(&prog, "%lld maps of %lld patients in %s", (long long)written,
                    (long long)n_patients, o->out);
    rc = FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK) fl_cli_fail(&err);
    cam_run_destroy(&w);
    return rc;
}

int fl_cmd_explain_cam(int argc, char **argv) {
    cam_opts o;
    int p = parse(argc, argv, &o);
    if (p > 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);
    if (o.input) {
        if (!o.weights || !o.out || o.cohort || o.model) {
            fprintf(stderr, "fedlung explain cam: --input needs --weights and --out, and takes no "
                            "--cohort or --model\n");
            return fl_cli_usage(usage);
        }
        return run_array(&o);
    }
    if (!o.cohort || !o.model || !o.out) {
        fprintf(stderr, "fedlung explain cam: --cohort, --model and --out are required\n");
        return fl_cli_usage(usage);
    }
    return run_cohort(&o);
}
