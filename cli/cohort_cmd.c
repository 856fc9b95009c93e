/* cohort_cmd.c - `fedlung cohort <subcommand>`: the dispatcher for the cohort tools and the
 * `synth` subcommand (the synthetic lung cohort). Other subcommands live in their own files and
 * are listed in the table below; this file only routes to them. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/cohort.h"
#include "../data/synth.h"
#include "cli.h"
#include "cohort_cmds.h"

int fl_cmd_cohort_synth(int argc, char **argv);

/* ---- dispatcher: add info, import-table, split, ... here ---- */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} cohort_subcommand;

static const cohort_subcommand subcommands[] = {
    {"synth", fl_cmd_cohort_synth, "write a synthetic multimodal lung cohort"},
    {"info", fl_cmd_cohort_info, "print a cohort's classes by site, splits, modalities, tiles"},
    {"import-table", fl_cmd_cohort_import_table, "build a cohort from a CSV/TSV table"},
    {"split", fl_cmd_cohort_split, "write N part files (by site, iid or dirichlet:ALPHA)"},
    {"import", fl_cmd_cohort_import, "build a cohort from GDC downloads (sample sheet, STAR counts, SeSAMe betas, clinical, slides)"},
};
enum { N_SUBCOMMANDS = sizeof subcommands / sizeof subcommands[0] };

static void cohort_usage(FILE *f) {
    fputs("usage: fedlung cohort <subcommand> [options]\n\nsubcommands:\n", f);
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(f, "  %-14s %s\n", subcommands[i].name, subcommands[i].what);
    fputs("\nRun `fedlung cohort <subcommand> --help` for its options.\n", f);
}

int fl_cmd_cohort(int argc, char **argv) {
    if (argc < 2) {
        cohort_usage(stderr);
        return FL_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        cohort_usage(stdout);
        return FL_EXIT_OK;
    }
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (strcmp(sub, subcommands[i].name) == 0) return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "fedlung cohort: unknown subcommand '%s'\n", sub);
    cohort_usage(stderr);
    return FL_EXIT_USAGE;
}

/* ---- synth ---- */

static const char synth_usage[] =
    "usage: fedlung cohort synth --out FILE.h5 [options]\n"
    "\n"
    "Writes a synthetic multimodal lung cohort (LUAD / LUSC / NORMAL): H&E-like tiles, RNA,\n"
    "methylation and clinical data, with site effects, label skew and missing modalities.\n"
    "The same options and seed always give the same file.\n"
    "\n"
    "  --out FILE             the cohort file to write (HDF5; required)\n"
    "  --patients N           samples, tumour and paired adjacent normal (default 300)\n"
    "  --sites S              hospitals, 1..16, Zipf-like sizes (default 4)\n"
    "  --tile T               tile edge in px, 16..1024, or 0 for no tiles (default 64)\n"
    "  --tiles-per-patient K  tiles per sample (default 16)\n"
    "  --genes G              RNA features, >= 64 (default 1000)\n"
    "  --probes M             methylation probes, >= 64 (default 2000)\n"
    "  --label-skew A         Dirichlet alpha of each site's class mix: 0 none, 100 ~IID,\n"
    "                         10 mild (default), <= 1 strong\n"
    "  --seed N               random seed (default 1)\n"
    "  --kappa K              image signal strength: 0 none, 1 calibrated (default), 2 easy\n"
    "  --no-missing           every site has every modality (default: the 3rd site has no\n"
    "                         methylation, the 4th no smoking history)\n";

enum {
    OPT_OUT = 256,
    OPT_PATIENTS,
    OPT_SITES,
    OPT_TILE,
    OPT_TPP,
    OPT_GENES,
    OPT_PROBES,
    OPT_SKEW,
    OPT_SEED,
    OPT_KAPPA,
    OPT_NO_MISSING,
    OPT_HELP
};

typedef struct {
    double t0, last;
} progress_state;

/* Progress on stderr, at most twice a second. */
static void progress(void *ctx, int64_t done, int64_t total) {
    progress_state *ps = ctx;
    double now = fl_now();
    if (done < total && now - ps->last < 0.5) return;
    ps->last = now;
    fprintf(stderr, "\rfedlung cohort synth: %lld / %lld tiles (%.0f s)", (long long)done,
            (long long)total, now - ps->t0);
    if (done == total) fputc('\n', stderr);
}

int fl_cmd_cohort_synth(int argc, char **argv) {
    static const struct option longopts[] = {{"out", required_argument, 0, OPT_OUT},
                                             {"patients", required_argument, 0, OPT_PATIENTS},
                                             {"sites", required_argument, 0, OPT_SITES},
                                             {"tile", required_argument, 0, OPT_TILE},
                                             {"tiles-per-patient", required_argument, 0, OPT_TPP},
                                             {"genes", required_argument, 0, OPT_GENES},
                                             {"probes", required_argument, 0, OPT_PROBES},
                                             {"label-skew", required_argument, 0, OPT_SKEW},
                                             {"seed", required_argument, 0, OPT_SEED},
                                             {"kappa", required_argument, 0, OPT_KAPPA},
                                             {"no-missing", no_argument, 0, OPT_NO_MISSING},
                                             {"help", no_argument, 0, OPT_HELP},
                                             {0, 0, 0, 0}};
    fl_synth_config cfg;
    fl_synth_config_default(&cfg);
    const char *out = NULL;
    int c, idx = 0, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        switch (c) {
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_PATIENTS:
            bad = fl_parse_int(optarg, 1, 100000, &cfg.patients);
            break;
        case OPT_SITES:
            bad = fl_parse_int(optarg, 1, FL_SYNTH_MAX_SITES, &cfg.sites);
            break;
        case OPT_TILE:
            bad = fl_parse_int(optarg, 0, 1024, &cfg.tile) || (cfg.tile > 0 && cfg.tile < 16);
            break;
        case OPT_TPP:
            bad = fl_parse_int(optarg, 0, 10000, &cfg.tiles_per_patient);
            break;
        case OPT_GENES:
            bad = fl_parse_int(optarg, 64, 100000, &cfg.genes);
            break;
        case OPT_PROBES:
            bad = fl_parse_int(optarg, 64, 1000000, &cfg.probes);
            break;
        case OPT_SKEW:
            bad = fl_parse_float(optarg, 0, 1e6, &cfg.label_skew);
            break;
        case OPT_SEED: {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            bad = end == optarg || *end || optarg[0] == '-';
            cfg.seed = v;
            break;
        }
        case OPT_KAPPA:
            bad = fl_parse_float(optarg, 0, 100, &cfg.kappa);
            break;
        case OPT_NO_MISSING:
            cfg.no_methylation_site = cfg.no_smoking_site = -1;
            break;
        case OPT_HELP:
            fputs(synth_usage, stdout);
            return FL_EXIT_OK;
        default:
            fprintf(stderr, "fedlung cohort synth: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return fl_cli_usage(synth_usage);
        }
        if (bad) {
            fprintf(stderr, "fedlung cohort synth: bad value '%s' for --%s\n", optarg,
                    longopts[idx].name);
            return fl_cli_usage(synth_usage);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedlung cohort synth: unexpected argument '%s'\n", argv[optind]);
        return fl_cli_usage(synth_usage);
    }
    if (!out) {
        fprintf(stderr, "fedlung cohort synth: --out is required\n");
        return fl_cli_usage(synth_usage);
    }
    if (cfg.patients < cfg.sites) {
        fprintf(stderr, "fedlung cohort synth: --patients (%d) must be at least --sites (%d)\n",
                cfg.patients, cfg.sites);
        return fl_cli_usage(synth_usage);
    }
    progress_state ps = {fl_now(), 0};
    int64_t tiles = cfg.tile > 0 ? (int64_t)cfg.patients * cfg.tiles_per_patient : 0;
    if (tiles * cfg.tile * cfg.tile * 3 > (64ll << 20)) { /* report progress beyond ~64 MiB */
        cfg.progress = progress;
        cfg.progress_ctx = &ps;
    }
    fl_err err = {{0}};
    if (fl_synth_write(&cfg, out, &err) != FL_OK) return fl_cli_fail(&err);
    /* Read the metadata back: the summary is what the file says, and it proves it opens. */
    fl_cohort co;
    if (fl_cohort_load(&co, out, &err) != FL_OK) return fl_cli_fail(&err);
    int per_class[3] = {0}, cases = 0;
    for (int p = 0; p < co.P; p++) {
        if (co.label[p] >= 0 && co.label[p] < 3) per_class[co.label[p]]++;
        /* the generator writes the samples of a case next to each other */
        cases += p == 0 || strcmp(co.case_id[p], co.case_id[p - 1]) != 0;
    }
    char tiles_text[64] = "no tiles";
    if (co.n_tiles > 0)
        snprintf(tiles_text, sizeof tiles_text, "%lld tiles of %d px", (long long)co.n_tiles,
                 co.tile);
    printf("%d samples (%d LUAD, %d LUSC, %d NORMAL) from %d cases at %d site%s, %s, %d genes, "
           "%d probes: %s\n",
           co.P, per_class[0], per_class[1], per_class[2], cases, co.n_sites,
           co.n_sites == 1 ? "" : "s", tiles_text, co.omics[FL_MOD_RNA].F,
           co.omics[FL_MOD_METHYLATION].F, out);
    fl_cohort_destroy(&co);
    return FL_EXIT_OK;
}
