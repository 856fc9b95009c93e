/* demo_cmd.c - `fedlung demo`: trains a small ResNet on a synthetic three-class tile task for
 * a few dozen SGD steps and prints the loss falling. It shows the engine learning; the
 * federated demo replaces it as `make run` once the federation exists. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../nn/optim.h"
#include "../nn/resnet.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung demo [--steps S] [--threads N] [--seed N] [--device cpu|cuda|cuda:N]\n"
    "                    [--precision fp32|tf32|bf16]\n"
    "\n"
    "Trains ResNet-18 (width 1/4, small stem) on 32-px synthetic tiles of three classes\n"
    "(stain-like colour and texture differ by class) with SGD and prints the loss per step,\n"
    "on the CPU (default) or a GPU (--device cuda; --precision applies there only).\n";

/* One synthetic tile of class k, NCHW: a class-specific colour cast and stripe frequency under
 * noise, so the classes are learnable but not trivially separable at the first step. */
static void make_tile(fl_rng *r, int k, int T, float *px) {
    static const float cast[3][3] = {{0.6f, -0.2f, 0.4f}, {-0.3f, 0.5f, 0.1f}, {0.2f, 0.3f, -0.5f}};
    float freq = 0.3f + 0.25f * (float)k;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++)
                px[(c * T + y) * T + x] = 0.5f * cast[k][c] + 0.4f * sinf(freq * (float)(x + y)) +
                                          (float)fl_rng_normal(r);
}

int fl_cmd_demo(int argc, char **argv) {
    static const struct option longopts[] = {{"steps", required_argument, 0, 's'},
                                             {"threads", required_argument, 0, 't'},
                                             {"seed", required_argument, 0, 'r'},
                                             {"device", required_argument, 0, 'd'},
                                             {"precision", required_argument, 0, 'p'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int steps = 40, threads = 0, seed = 7, c;
    const char *device = FL_CLI_DEFAULT_DEVICE;
    fl_precision precision = FL_PREC_FP32;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        if (c == 's')
            bad = fl_parse_int(optarg, 1, 100000, &steps);
        else if (c == 't')
            bad = fl_parse_int(optarg, 1, 1024, &threads);
        else if (c == 'r')
            bad = fl_parse_int(optarg, 0, 1 << 30, &seed);
        else if (c == 'd')
            bad = fl_cli_parse_device(optarg, &device);
        else if (c == 'p')
            bad = fl_cli_parse_precision(optarg, &precision);
        else if (c == 'h') {
            fputs(usage, stdout);
            return FL_EXIT_OK;
        } else
            return fl_cli_usage(usage);
        if (bad) return fl_cli_usage(usage);
    }
    if (optind < argc || fl_cli_check_device("demo", device, precision) != 0)
        return fl_cli_usage(usage);

    enum { B = 32, T = 32 };
    fl_err err = {{0}};
    fl_resnet_config rc;
    fl_resnet_config_default(&rc);
    rc.depth = 18;
    rc.tile = T;
    rc.stem = FL_STEM_SMALL;
    rc.width = 0.25f;
    fl_graph *g = NULL;
    fl_backend *be = NULL;
    fl_model *m = NULL;
    fl_optim opt = {0};
    int ret = FL_EXIT_FAIL;
    float *x = malloc((size_t)B * 3 * T * T * sizeof(float));
    int32_t labels[B];
    if (!x) {
        fl_fail(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    if (fl_resnet_build(&g, &rc, &err) != FL_OK ||
        !(be = fl_backend_new(device, threads, precision, &err)) ||
        fl_model_new(&m, g, be, B, (uint64_t)seed, &err) != FL_OK)
        goto done;
    g = NULL; /* owned by the model now */
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    oc.lr = 0.05f;
    oc.schedule = FL_SCHED_COSINE;
    oc.total_steps = steps;
    if (fl_optim_init(&opt, m, &oc, &err) != FL_OK) goto done;
    fprintf(stderr, "demo: resnet18 (width 1/4, small stem) on %d-px synthetic tiles, batch %d, ",
            T, B);
    if (be->device == FL_DEVICE_CPU)
        fprintf(stderr, "%d threads\n", be->threads);
    else
        fprintf(stderr, "on %s (%s)\n", be->name, fl_cli_precision_name(precision));
    fl_rng rng;
    fl_rng_seed(&rng, (uint64_t)seed);
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++) {
            labels[i] = (int32_t)(fl_rng_u64(&rng) % 3);
            make_tile(&rng, labels[i], T, x + (size_t)i * 3 * T * T);
        }
        float loss;
        double t0 = fl_now();
        if (fl_model_set_input(m, 0, x, &err) != FL_OK || fl_model_forward(m, 1, &err) != FL_OK ||
            fl_model_loss_ce(m, 0, labels, NULL, &loss, &err) != FL_OK ||
            fl_model_backward(m, &err) != FL_OK || fl_optim_step(&opt, NULL, &err) != FL_OK)
            goto done;
        if (!isfinite(loss)) {
            fl_fail(&err, FL_EINVAL, "the loss diverged at step %d", s + 1);
            goto done;
        }
        if (s == 0) first = loss;
        last = loss;
        printf("step %3d  loss %.4f  lr %.4f  %.0f img/s\n", s + 1, (double)loss,
               (double)fl_optim_lr_at(&oc, s), B / (fl_now() - t0));
        fflush(stdout);
    }
    printf("loss %.4f -> %.4f\n", first, last);
    ret = FL_EXIT_OK;
done:
    if (ret != FL_EXIT_OK) fl_cli_fail(&err);
    fl_optim_destroy(&opt);
    fl_model_free(m);
    fl_graph_free(g);
    if (be) be->destroy(be);
    free(x);
    return ret;
}
