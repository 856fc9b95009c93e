/* train_cmd.c - `fedlung train image|fusion` and `fedlung eval`: the single-site pipeline
 * from the command line. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../pipeline/pipeline.h"
#include "cli.h"

static const char train_usage[] =
    "usage: fedlung train image  --cohort F.h5 --out M.h5 [--arch resnet18|...|resnet152]\n"
    "                            [--tile T] [--stem imagenet|small] [--width W] [--epochs E]\n"
    "                            [--batch B] [--lr LR] [--seed N] [--threads N] [--quiet]\n"
    "                            [--device cpu|cuda|cuda:N] [--precision fp32|tf32|bf16]\n"
    "       fedlung train fusion --cohort F.h5 --out F.h5 [--image-model M.h5]\n"
    "                            [--modalities image,rna,methylation,clinical] [--stage-head]\n"
    "                            [--epochs E] [--batch B] [--lr LR] [--rna-features N]\n"
    "                            [--meth-features N] [--no-mvalue] [--seed N] [--threads N]\n"
    "                            [--device D] [--precision P] [--quiet]\n"
    "\n"
    "train image: RNet on the train split's tiles; the epoch with the best validation macro AUC\n"
    "  (patient score = mean tile probability) is kept. Defaults: resnet18, small stem, width\n"
    "  0.5, the cohort's tile size, 6 epochs, batch 32, SGD lr 0.05 with a cosine schedule.\n"
    "train fusion: MMLM on standardized omics (fitted on the train split, stored in the model)\n"
    "  and, with --image-model, RNet patient embeddings. --modalities defaults to every modality\n"
    "  the cohort has (image only with --image-model). Defaults: 150 epochs, AdamW lr 3e-3.\n"
    "--device: cpu (default; --threads threads), cuda or cuda:N (that GPU; fusion embeds the\n"
    "  patients there too). Without a usable GPU, cuda fails at once with one sentence saying\n"
    "  why. --precision (cuda only): fp32 (default), tf32 (tensor cores) or bf16 (bf16 compute,\n"
    "  fp32 master weights) for the convolutions and linear layers.\n";

static const char eval_usage[] =
    "usage: fedlung eval --cohort F.h5 --model M.h5 --out DIR [--split train|val|test]\n"
    "                    [--image-model M.h5] [--threads N] [--quiet]\n"
    "\n"
    "Writes DIR/metrics.json, DIR/predictions.csv, DIR/roc.png and DIR/pr.png for the split's\n"
    "patients (default: test). --image-model overrides the RNet path recorded in a fusion model.\n";

static int bad_value(const char *cmd, const char *opt, const char *value, const char *usage) {
    fprintf(stderr, "fedlung %s: bad value '%s' for --%s\n", cmd, value, opt);
    return fl_cli_usage(usage);
}

/* "image,rna" -> FL_USE_* bits; 0 on an unknown name. */
static unsigned parse_modalities(const char *list) {
    unsigned bits = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned b = strcmp(t, "image") == 0         ? FL_USE_IMAGE
                     : strcmp(t, "rna") == 0         ? FL_USE_RNA
                     : strcmp(t, "methylation") == 0 ? FL_USE_METHYLATION
                     : strcmp(t, "clinical") == 0    ? FL_USE_CLINICAL
                                                     : 0;
        if (!b) return 0;
        bits |= b;
    }
    return bits;
}

enum {
    O_COHORT = 256,
    O_OUT,
    O_ARCH,
    O_TILE,
    O_STEM,
    O_WIDTH,
    O_EPOCHS,
    O_BATCH,
    O_LR,
    O_SEED,
    O_THREADS,
    O_QUIET,
    O_IMAGE_MODEL,
    O_MODALITIES,
    O_STAGE,
    O_RNA,
    O_METH,
    O_NO_MVALUE,
    O_MODEL,
    O_SPLIT,
    O_DEVICE,
    O_PRECISION,
    O_HELP
};

static const struct option longopts[] = {{"cohort", required_argument, 0, O_COHORT},
                                         {"out", required_argument, 0, O_OUT},
                                         {"arch", required_argument, 0, O_ARCH},
                                         {"tile", required_argument, 0, O_TILE},
                                         {"stem", required_argument, 0, O_STEM},
                                         {"width", required_argument, 0, O_WIDTH},
                                         {"epochs", required_argument, 0, O_EPOCHS},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"lr", required_argument, 0, O_LR},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"image-model", required_argument, 0, O_IMAGE_MODEL},
                                         {"modalities", required_argument, 0, O_MODALITIES},
                                         {"stage-head", no_argument, 0, O_STAGE},
                                         {"rna-features", required_argument, 0, O_RNA},
                                         {"meth-features", required_argument, 0, O_METH},
                                         {"no-mvalue", no_argument, 0, O_NO_MVALUE},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"split", required_argument, 0, O_SPLIT},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"precision", required_argument, 0, O_PRECISION},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};

int fl_cmd_train(int argc, char **argv) {
    if (argc < 2) return fl_cli_usage(train_usage);
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(train_usage, stdout);
        return FL_EXIT_OK;
    }
    int image = strcmp(sub, "image") == 0;
    if (!image && strcmp(sub, "fusion") != 0) {
        fprintf(stderr, "fedlung train: unknown subcommand '%s'\n", sub);
        return fl_cli_usage(train_usage);
    }
    fl_image_train_config ic;
    fl_fusion_train_config fc;
    fl_image_train_config_default(&ic);
    fl_fusion_train_config_default(&fc);
    int c, idx = 0, seed = 1, threads = 0, quiet = 0, epochs = 0, batch = 0;
    float lr = 0;
    const char *cohort = NULL, *out = NULL, *device = FL_CLI_DEFAULT_DEVICE;
    fl_precision precision = FL_PREC_FP32;
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case O_COHORT:
            cohort = optarg;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_ARCH:
            bad = !image || !(ic.net.depth = fl_resnet_depth_from_name(optarg));
            break;
        case O_TILE:
            bad = !image || fl_parse_int(optarg, 32, 8192, &ic.net.tile);
            break;
        case O_STEM: {
            int st = fl_stem_from_name(optarg);
            bad = !image || st < 0;
            ic.net.stem = (fl_stem)st;
            break;
        }
        case O_WIDTH:
            bad = !image || fl_parse_float(optarg, 0.01, 8, &ic.net.width);
            break;
        case O_EPOCHS:
            bad = fl_parse_int(optarg, 1, 100000, &epochs);
            break;
        case O_BATCH:
            bad = fl_parse_int(optarg, 1, 4096, &batch);
            break;
        case O_LR:
            bad = fl_parse_float(optarg, 1e-7, 10, &lr);
            break;
        case O_SEED:
            bad = fl_parse_int(optarg, 0, 1 << 30, &seed);
            break;
        case O_THREADS:
            bad = fl_parse_int(optarg, 1, 1024, &threads);
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_IMAGE_MODEL:
            bad = image, fc.image_model = optarg;
            break;
        case O_MODALITIES:
            bad = image || !(fc.modalities = parse_modalities(optarg));
            break;
        case O_STAGE:
            bad = image, fc.stage_head = 1;
            break;
        case O_RNA:
            bad = image || fl_parse_int(optarg, 1, 1 << 20, &fc.rna_features);
            break;
        case O_METH:
            bad = image || fl_parse_int(optarg, 1, 1 << 20, &fc.meth_features);
            break;
        case O_NO_MVALUE:
            bad = image, fc.mvalue = 0;
            break;
        case O_DEVICE:
            bad = fl_cli_parse_device(optarg, &device);
            break;
        case O_PRECISION:
            bad = fl_cli_parse_precision(optarg, &precision);
            break;
        case O_HELP:
            fputs(train_usage, stdout);
            return FL_EXIT_OK;
        default:
            fprintf(stderr, "fedlung train %s: unknown option or missing value: %s\n", sub,
                    argv[optind - 1]);
            return fl_cli_usage(train_usage);
        }
        if (bad) {
            if (!optarg) {
                fprintf(stderr, "fedlung train %s: --%s does not apply here\n", sub,
                        longopts[idx].name);
                return fl_cli_usage(train_usage);
            }
            return bad_value("train", longopts[idx].name, optarg, train_usage);
        }
    }
    if (optind < argc || !cohort || !out) {
        fprintf(stderr, "fedlung train %s: --cohort and --out are required\n", sub);
        return fl_cli_usage(train_usage);
    }
    if (fl_cli_check_device(image ? "train image" : "train fusion", device, precision) != 0)
        return fl_cli_usage(train_usage);
    fl_err err = {{0}};
    fl_status s;
    if (image) {
        ic.cohort = cohort;
        ic.out = out;
        ic.seed = (uint64_t)seed;
        ic.threads = threads;
        ic.device = device;
        ic.precision = precision;
        ic.quiet = quiet;
        if (epochs) ic.epochs = epochs;
        if (batch) ic.batch = batch;
        if (lr > 0) ic.lr = lr;
        s = fl_train_image(&ic, &err);
    } else {
        fc.cohort = cohort;
        fc.out = out;
        fc.seed = (uint64_t)seed;
        fc.threads = threads;
        fc.device = device;
        fc.precision = precision;
        fc.quiet = quiet;
        if (epochs) fc.epochs = epochs;
        if (batch) fc.batch = batch;
        if (lr > 0) fc.lr = lr;
        s = fl_train_fusion(&fc, &err);
    }
    if (s != FL_OK) return fl_cli_fail(&err);
    printf("%s\n", out);
    return FL_EXIT_OK;
}

int fl_cmd_eval(int argc, char **argv) {
    fl_eval_config ec = {0};
    ec.split = FL_SPLIT_TEST;
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case O_COHORT:
            ec.cohort = optarg;
            break;
        case O_MODEL:
            ec.model = optarg;
            break;
        case O_OUT:
            ec.outdir = optarg;
            break;
        case O_IMAGE_MODEL:
            ec.image_model = optarg;
            break;
        case O_THREADS:
            bad = fl_parse_int(optarg, 1, 1024, &ec.threads);
            break;
        case O_QUIET:
            ec.quiet = 1;
            break;
        case O_SPLIT:
            if (strcmp(optarg, "train") == 0)
                ec.split = FL_SPLIT_TRAIN;
            else if (strcmp(optarg, "val") == 0)
                ec.split = FL_SPLIT_VAL;
            else if (strcmp(optarg, "test") == 0)
                ec.split = FL_SPLIT_TEST;
            else
                bad = 1;
            break;
        case O_HELP:
            fputs(eval_usage, stdout);
            return FL_EXIT_OK;
        default:
            fprintf(stderr, "fedlung eval: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return fl_cli_usage(eval_usage);
        }
        if (bad) return bad_value("eval", longopts[idx].name, optarg, eval_usage);
    }
    if (optind < argc || !ec.cohort || !ec.model || !ec.outdir) {
        fprintf(stderr, "fedlung eval: --cohort, --model and --out are required\n");
        return fl_cli_usage(eval_usage);
    }
    fl_err err = {{0}};
    double auc;
    if (fl_evaluate(&ec, &auc, &err) != FL_OK) return fl_cli_fail(&err);
    printf("%s/metrics.json\n", ec.outdir);
    return FL_EXIT_OK;
}
