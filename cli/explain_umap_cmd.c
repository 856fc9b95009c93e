/* explain_umap_cmd.c - `fedlung explain umap`: UMAP of a cohort's patient embeddings (fused
 * MMLM and image-only RNet), or of a plain .npy matrix (numpy users, bench/umap). Parsing and
 * exit codes only; the work is pipeline/explain_umap.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../pipeline/explain_umap.h"
#include "cli.h"
#include "explain_cmds.h"

static const char usage[] =
    "usage: fedlung explain umap --cohort F.h5 --model MMLM.h5|RNET.h5 --out DIR\n"
    "                            [--image-model RNET.h5] [--split all|train|val|test]\n"
    "                            [--neighbors K] [--min-dist D] [--epochs E] [--seed N]\n"
    "                            [--dump] [--threads N] [--quiet]\n"
    "       fedlung explain umap --input X.npy --out DIR [--neighbors K] [--min-dist D]\n"
    "                            [--epochs E] [--seed N] [--threads N] [--quiet]\n"
    "\n"
    "Cohort mode: with a fusion model, its fused embeddings (the head's hidden vector) ->\n"
    "  DIR/umap_fused.csv (patient_id,label,site,x,y), DIR/umap_fused_class.png and\n"
    "  DIR/umap_fused_site.png (points coloured by class, by site); with an image model (RNET.h5\n"
    "  as --model, --image-model, or the one recorded in the fusion model), the mean tile\n"
    "  embeddings of the patients with tiles -> DIR/umap_image.csv and DIR/umap_image_*.png.\n"
    "  --split defaults to all patients. --dump also writes the embeddings UMAP was given,\n"
    "  DIR/umap_fused_embeddings.npy and DIR/umap_image_embeddings.npy (rows as in the CSV).\n"
    "Array mode: the rows of X.npy (points x features) -> DIR/umap.csv (row,x,y).\n"
    "  --neighbors  neighbourhood size, the point itself included (default 15)\n"
    "  --min-dist   how tightly points may pack (default 0.1)\n"
    "  --epochs     SGD epochs (default 500, 200 above 10000 points)\n"
    "  --seed       the same seed gives the same layout (default 1)\n";

enum {
    O_COHORT = 256,
    O_MODEL,
    O_IMAGE_MODEL,
    O_INPUT,
    O_OUT,
    O_SPLIT,
    O_NEIGHBORS,
    O_MIN_DIST,
    O_EPOCHS,
    O_SEED,
    O_THREADS,
    O_QUIET,
    O_DUMP,
    O_HELP
};

static const struct option longopts[] = {{"cohort", required_argument, 0, O_COHORT},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"image-model", required_argument, 0, O_IMAGE_MODEL},
                                         {"input", required_argument, 0, O_INPUT},
                                         {"out", required_argument, 0, O_OUT},
                                         {"split", required_argument, 0, O_SPLIT},
                                         {"neighbors", required_argument, 0, O_NEIGHBORS},
                                         {"min-dist", required_argument, 0, O_MIN_DIST},
                                         {"epochs", required_argument, 0, O_EPOCHS},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"dump", no_argument, 0, O_DUMP},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};

int fl_cmd_explain_umap(int argc, char **argv) {
    fl_umap_explain_config c = {.split = -1};
    fl_umap_config_default(&c.umap);
    const char *input = NULL;
    int opt, idx = 0, seed = 1;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (opt) {
        case O_COHORT:
            c.cohort = optarg;
            break;
        case O_MODEL:
            c.model = optarg;
            break;
        case O_IMAGE_MODEL:
            c.image_model = optarg;
            break;
        case O_INPUT:
            input = optarg;
            break;
        case O_OUT:
            c.outdir = optarg;
            break;
        case O_SPLIT:
            if (strcmp(optarg, "all") == 0)
                c.split = -1;
            else if (strcmp(optarg, "train") == 0)
                c.split = FL_SPLIT_TRAIN;
            else if (strcmp(optarg, "val") == 0)
                c.split = FL_SPLIT_VAL;
            else if (strcmp(optarg, "test") == 0)
                c.split = FL_SPLIT_TEST;
            else
                bad = 1;
            break;
        case O_NEIGHBORS:
            bad = fl_parse_int(optarg, 2, 1000, &c.umap.n_neighbors);
            break;
        case O_MIN_DIST:
            bad = fl_parse_float(optarg, 0, 1, &c.umap.min_dist);
            break;
        case O_EPOCHS:
            bad = fl_parse_int(optarg, 1, 100000, &c.umap.n_epochs);
            break;
        case O_SEED:
            bad = fl_parse_int(optarg, 0, 1 << 30, &seed);
            break;
        case O_THREADS:
            bad = fl_parse_int(optarg, 1, 1024, &c.umap.threads);
            break;
        case O_QUIET:
            c.umap.quiet = 1;
            break;
        case O_DUMP:
            c.dump = 1;
            break;
        case O_HELP:
            fputs(usage, stdout);
            return FL_EXIT_OK;
        default:
            fprintf(stderr, "fedlung explain umap: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return fl_cli_usage(usage);
        }
        if (bad) {
            fprintf(stderr, "fedlung explain umap: bad value '%s' for --%s\n", optarg,
                    longopts[idx].name);
            return fl_cli_usage(usage);
        }
    }
    c.umap.seed = (uint64_t)seed;
    int cohort_mode = c.cohort || c.model || c.image_model || c.dump;
    if (optind < argc || !c.outdir || (input && cohort_mode) ||
        (!input && (!c.cohort || !c.model))) {
        fprintf(stderr, "fedlung explain umap: give --out with either --cohort and --model, or "
                        "--input\n");
        return fl_cli_usage(usage);
    }
    fl_err err = {{0}};
    fl_status s =
        input ? fl_explain_umap_npy(input, c.outdir, &c.umap, &err) : fl_explain_umap(&c, &err);
    if (s != FL_OK) return fl_cli_fail(&err);
    printf("%s\n", c.outdir);
    return FL_EXIT_OK;
}
