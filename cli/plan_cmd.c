/* plan_cmd.c - `fedlung plan features`: the [fusion] feature lists of a site-standardized study
 * plan, ranked on a public reference cohort (fed/plan_features.h does the ranking and the
 * writing). Parsing, the output file and exit codes only. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../common/atomic.h"
#include "../fed/plan.h"
#include "../fed/plan_features.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung plan features COHORT.h5 [--rna N] [--meth M] [--split all|train]\n"
    "                             [--no-mvalue] [--modalities LIST] [--out FILE]\n"
    "\n"
    "Ranks the features of a reference cohort - public data such as TCGA, never a hospital's\n"
    "own patients - as the federation's statistics phase ranks them, and writes the lines of a\n"
    "study plan's [fusion] section for site standardization (docs/privacy.md): standardize =\n"
    "site and the lists rna_names, meth_names and clinical_names, in the fusion model's input\n"
    "order, split over lines of at most 199 characters. RNA and methylation: the features of\n"
    "largest sample variance (ties by position); clinical: every feature, in the cohort's order.\n"
    "A modality the cohort lacks gets no list.\n"
    "\n"
    "  --rna N          RNA features kept, top N by variance; 0 = all (default 256)\n"
    "  --meth M         methylation features kept, top M by variance; 0 = all (default 256)\n"
    "  --split S        all (default) or train: only the patients of the cohort's train split\n"
    "  --no-mvalue      rank methylation by its beta values (for a plan with mvalue = false);\n"
    "                   by default by M-values, log2(beta / (1 - beta)), as the plan's default\n"
    "  --modalities L   the omics modalities to list, of rna,methylation,clinical: those the\n"
    "                   plan's fusion model takes (a plan refuses a list it does not use);\n"
    "                   default every one the cohort has\n"
    "  --out FILE       write the lines to FILE (atomically: on failure FILE is unchanged);\n"
    "                   default stdout\n"
    "What was ranked goes to stderr. Exit 0, 1 on failure (one sentence), 2 on bad usage.\n";

enum { O_RNA = 256, O_METH, O_SPLIT, O_NO_MVALUE, O_MODALITIES, O_OUT, O_HELP };

/* "rna,clinical" into bits (1 << fl_omics); 0 for an empty item or a name that is not an omics
 * modality. */
static unsigned omics_list(const char *list) {
    unsigned bits = 0;
    for (const char *p = list;; p++) {
        size_t n = strcspn(p, ",");
        int m = 0;
        while (m < FL_N_OMICS && (strlen(fl_omics_name((fl_omics)m)) != n ||
                                  strncmp(p, fl_omics_name((fl_omics)m), n) != 0))
            m++;
        if (n == 0 || m == FL_N_OMICS) return 0;
        bits |= 1u << m;
        p += n;
        if (!*p) return bits;
    }
}

/* Returns 0, 1 for --help, or -1 after saying what is wrong. */
static int parse(int argc, char **argv, fl_plan_features_opts *o, const char **cohort,
                 const char **out) {
    static const struct option longopts[] = {{"rna", required_argument, 0, O_RNA},
                                             {"meth", required_argument, 0, O_METH},
                                             {"split", required_argument, 0, O_SPLIT},
                                             {"no-mvalue", no_argument, 0, O_NO_MVALUE},
                                             {"modalities", required_argument, 0, O_MODALITIES},
                                             {"out", required_argument, 0, O_OUT},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case O_RNA:
            bad = fl_parse_int(optarg, 0, 1 << 30, &o->rna);
            break;
        case O_METH:
            bad = fl_parse_int(optarg, 0, 1 << 30, &o->meth);
            break;
        case O_SPLIT:
            bad = strcmp(optarg, "all") != 0 && strcmp(optarg, "train") != 0;
            o->train_only = strcmp(optarg, "train") == 0;
            break;
        case O_NO_MVALUE:
            o->mvalue = 0;
            break;
        case O_MODALITIES:
            bad = !(o->omics = omics_list(optarg));
            break;
        case O_OUT:
            *out = optarg;
            break;
        case 'h':
        case O_HELP:
            return 1;
        default:
            fprintf(stderr, "fedlung plan features: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "fedlung plan features: bad value '%s' for --%s\n", optarg,
                    longopts[idx].name);
            return -1;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "fedlung plan features: %s\n",
                optind == argc ? "name the cohort file" : "one cohort file, please");
        return -1;
    }
    *cohort = argv[optind];
    return 0;
}

/* What was ranked, one line per modality, on stderr. */
static void summarize(const fl_plan_features *pf) {
    for (int m = 0; m < FL_N_OMICS; m++) {
        if (pf->F[m] == 0) continue;
        if (m == FL_MOD_CLINICAL)
            fprintf(stderr,
                    "fedlung plan features: %d clinical features of %d patients: kept all, "
                    "in the cohort's order\n",
                    pf->n[m], pf->used[m]);
        else
            fprintf(stderr,
                    "fedlung plan features: ranked %d %s features over %d patients%s: "
                    "kept %d\n",
                    pf->F[m], fl_omics_name((fl_omics)m), pf->used[m],
                    m == FL_MOD_METHYLATION && pf->opts.mvalue ? " (M-values)" : "", pf->n[m]);
    }
}

/* Writes the fragment to out (atomically) or stdout; *size gets its bytes. */
static fl_status write_out(const fl_plan_features *pf, const char *out, size_t *size, fl_err *err) {
    if (!out) {
        *size = fl_plan_features_write(pf, stdout);
        if (fflush(stdout) != 0 || ferror(stdout))
            return fl_fail(err, FL_EIO, "cannot write the feature lists to stdout");
        return FL_OK;
    }
    fl_atomic_file af;
    fl_status st = fl_atomic_open(&af, out, err);
    if (st != FL_OK) return st;
    *size = fl_plan_features_write(pf, af.f);
    return fl_atomic_commit(&af, err);
}

static int cmd_features(int argc, char **argv) {
    fl_plan_features_opts o;
    fl_plan_features_opts_default(&o);
    const char *cohort = NULL, *out = NULL;
    int p = parse(argc, argv, &o, &cohort, &out);
    if (p == 1) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);
    fl_err err = {{0}};
    fl_cohort c;
    fl_plan_features pf;
    if (fl_cohort_load(&c, cohort, &err) != FL_OK) return fl_cli_fail(&err);
    fl_status st = fl_plan_features_rank(&c, cohort, &o, &pf, &err);
    fl_cohort_destroy(&c);
    if (st != FL_OK) return fl_cli_fail(&err);
    summarize(&pf);
    size_t size = 0;
    st = write_out(&pf, out, &size, &err);
    fl_plan_features_destroy(&pf);
    if (st != FL_OK) return fl_cli_fail(&err);
    if (size > FL_PLAN_MAX_TEXT)
        fprintf(stderr,
                "fedlung plan features: warning: the lists take %zu bytes, more than a "
                "whole plan may (%d): keep fewer features (--rna, --meth)\n",
                size, FL_PLAN_MAX_TEXT);
    if (out) fprintf(stderr, "fedlung plan features: wrote %s\n", out);
    return FL_EXIT_OK;
}

static const char plan_usage[] =
    "usage: fedlung plan <subcommand> [options]\n"
    "\n"
    "subcommands:\n"
    "  features COHORT.h5   a site-standardized plan's feature lists, ranked on public data\n"
    "\n"
    "Run `fedlung plan features --help` for its options.\n";

int fl_cmd_plan(int argc, char **argv) {
    if (argc < 2) return fl_cli_usage(plan_usage);
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(plan_usage, stdout);
        return FL_EXIT_OK;
    }
    if (strcmp(sub, "features") == 0) return cmd_features(argc - 1, argv + 1);
    fprintf(stderr, "fedlung plan: unknown subcommand '%s'\n", sub);
    return fl_cli_usage(plan_usage);
}
