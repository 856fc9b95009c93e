/* cohort_import_cmd.c - `fedlung cohort import`: option parsing and the summary around
 * data/gdc.h, which builds a cohort from GDC downloads. Not where files are parsed or samples
 * linked: that lives in data/gdc_*.c so the tests drive it directly. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/cohort.h"
#include "../data/gdc.h"
#include "../data/import_table.h"
#include "cli.h"
#include "cohort_cmds.h"

static const char usage[] =
    "usage: fedlung cohort import --sample-sheet SHEET.tsv [--rna DIR] [--methylation DIR]\n"
    "           [--clinical clinical.tsv [--exposure exposure.tsv]] [--slides DIR | --tiles DIR]\n"
    "           --out FILE.h5 [--classes A,B,...] [--rna-value tpm|fpkm|fpkm_uq|counts]\n"
    "           [--label-column COL | --label-rule PROJECT=CLASS,...] [--max-probe-missing F]\n"
    "           [--tile T] [--mpp M | --magnification X] [--max-tiles K] [--split 70/15/15]\n"
    "           [--seed N] [--quiet]\n"
    "\n"
    "Builds a cohort from GDC downloads: one entry per sample of the sample sheet's RNA and\n"
    "methylation rows (files under DIR/<File ID>/<File Name> or DIR/<File Name>). Solid tissue\n"
    "normal samples (type 11) are NORMAL; the others get their project without \"TCGA-\", or\n"
    "--label-column / --label-rule. Sites are TSS codes; splits are drawn by case. See\n"
    "docs/formats.md, \"GDC downloads\".\n"
    "  --sample-sheet       gdc_sample_sheet.*.tsv (required)\n"
    "  --rna DIR            STAR - Counts files (*.augmented_star_gene_counts.tsv)\n"
    "  --methylation DIR    SeSAMe beta files (*.level3betas.txt)\n"
    "  --clinical FILE      clinical.tsv (legacy or new-portal export)\n"
    "  --exposure FILE      exposure.tsv (smoking), with --clinical\n"
    "  --slides DIR         whole-slide images named <sample barcode>...(.svs, ...)\n"
    "  --tiles DIR          one folder of PNG/JPEG tiles per sample, named by its barcode\n"
    "  --out FILE.h5        the cohort to write (required)\n"
    "  --classes A,B,...    the class order (default: labels sorted, NORMAL last)\n"
    "  --rna-value V        the column stored as log2(x+1): tpm (default), fpkm, fpkm_uq,\n"
    "                       counts (unstranded)\n"
    "  --label-column COL   a sheet column holding the class of tumour samples\n"
    "  --label-rule R       PROJECT=CLASS,... e.g. TCGA-LUAD=LUAD,TCGA-LUSC=LUSC\n"
    "  --max-probe-missing F  drop probes NA in more than F of the samples (default 0.2)\n"
    "  --tile T             tile edge in px (default 256; --tiles: the PNGs' size)\n"
    "  --mpp M              slides: target microns per pixel\n"
    "  --magnification X    slides: target objective power (e.g. 20)\n"
    "  --max-tiles K        slides: tiles per slide, 0 all (default 64)\n"
    "  --split a/b/c        train/val/test weights of the split by case (default 70/15/15)\n"
    "  --seed N             seed of the split (default 1)\n"
    "  --quiet              no progress or warnings on stderr\n";

static void print_warning(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "fedlung: warning: %s\n", msg);
}

/* Prints what was written, read back from the file. */
static int summarize(const char *out) {
    fl_cohort c;
    fl_err err = {{0}};
    if (fl_cohort_load(&c, out, &err)) return fl_cli_fail(&err);
    printf("%s: %d samples at %d sites; classes", out, c.P, c.n_sites);
    for (int k = 0; k < c.n_classes; k++) {
        int n = 0;
        for (int p = 0; p < c.P; p++) n += c.label[p] == k;
        printf("%s %s %d", k ? "," : "", c.class_names[k], n);
    }
    for (int m = 0; m < FL_N_OMICS; m++)
        if (c.omics[m].F) printf("; %s %d features", fl_omics_name((fl_omics)m), c.omics[m].F);
    if (c.n_tiles) printf("; %lld tiles of %d px", (long long)c.n_tiles, c.tile);
    printf("\n");
    fl_cohort_destroy(&c);
    return FL_EXIT_OK;
}

int fl_cmd_cohort_import(int argc, char **argv) {
    /* Options kept as given come first, so that one table maps them to their field. */
    enum { O_SHEET = 256, O_RNA, O_METH, O_CLIN, O_EXPO, O_SLIDES, O_TILES, O_OUT, O_CLASSES };
    enum { O_LCOL = O_CLASSES + 1, O_LRULE, O_TEXT_END };
    enum { O_VALUE = 300, O_MAXMISS, O_TILE, O_MPP, O_MAG, O_MAXT, O_SPLIT, O_SEED, O_QUIET };
    enum { O_HELP = 400 };
    static const struct option longopts[] = {{"sample-sheet", required_argument, 0, O_SHEET},
                                             {"rna", required_argument, 0, O_RNA},
                                             {"methylation", required_argument, 0, O_METH},
                                             {"clinical", required_argument, 0, O_CLIN},
                                             {"exposure", required_argument, 0, O_EXPO},
                                             {"slides", required_argument, 0, O_SLIDES},
                                             {"tiles", required_argument, 0, O_TILES},
                                             {"out", required_argument, 0, O_OUT},
                                             {"classes", required_argument, 0, O_CLASSES},
                                             {"label-column", required_argument, 0, O_LCOL},
                                             {"label-rule", required_argument, 0, O_LRULE},
                                             {"rna-value", required_argument, 0, O_VALUE},
                                             {"max-probe-missing", required_argument, 0, O_MAXMISS},
                                             {"tile", required_argument, 0, O_TILE},
                                             {"mpp", required_argument, 0, O_MPP},
                                             {"magnification", required_argument, 0, O_MAG},
                                             {"max-tiles", required_argument, 0, O_MAXT},
                                             {"split", required_argument, 0, O_SPLIT},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"quiet", no_argument, 0, O_QUIET},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    fl_gdc_options o;
    fl_err err = {{0}};
    const char *out = NULL, *why = NULL;
    const char **text[O_TEXT_END - O_SHEET] = {&o.sample_sheet, &o.rna_dir,   &o.methylation_dir,
                                               &o.clinical,     &o.exposure,  &o.slides_dir,
                                               &o.tiles_dir,    &out,         &o.classes,
                                               &o.label_column, &o.label_rule};
    float x = 0;
    int ch, bad = 0;
    fl_gdc_options_default(&o);
    o.warn.fn = print_warning;
    optind = 1;
    opterr = 0;
    while (!bad && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch >= O_SHEET && ch < O_TEXT_END) {
            *text[ch - O_SHEET] = optarg;
            continue;
        }
        switch (ch) {
        case O_VALUE:
            bad = fl_gdc_rna_value_parse(optarg, &o.rna_value);
            break;
        case O_MAXMISS:
            bad = fl_parse_float(optarg, 0, 1, &x);
            o.max_probe_missing = x;
            break;
        case O_TILE:
            bad = fl_parse_int(optarg, 8, 4096, &o.slide.tile);
            break;
        case O_MPP:
            bad = fl_parse_float(optarg, 1e-3f, 1e3f, &x);
            o.slide.mpp = x;
            break;
        case O_MAG:
            bad = fl_parse_float(optarg, 0.1f, 1e3f, &x);
            o.slide.magnification = x;
            break;
        case O_MAXT:
            bad = fl_parse_int(optarg, 0, 1000000, &o.slide.max_tiles);
            break;
        case O_SPLIT:
            if (fl_import_parse_split(optarg, o.split, &err)) {
                fprintf(stderr, "fedlung: %s\n", err.msg);
                bad = 1;
            }
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            bad = !*optarg || *optarg == '-' || *end || errno;
            break;
        }
        case O_QUIET:
            o.quiet = o.slide.quiet = 1;
            o.warn.fn = NULL;
            break;
        case O_HELP:
            fputs(usage, stdout);
            return FL_EXIT_OK;
        default:
            bad = 1;
        }
    }
    if (bad)
        why = "";
    else if (!o.sample_sheet || !out)
        why = "--sample-sheet and --out are required";
    else if (!o.rna_dir && !o.methylation_dir)
        why = "--rna or --methylation is required (the samples are those of their files)";
    else if (o.exposure && !o.clinical)
        why = "--exposure needs --clinical";
    else if (o.slides_dir && o.tiles_dir)
        why = "--slides and --tiles exclude each other";
    else if (o.label_column && o.label_rule)
        why = "--label-column and --label-rule exclude each other";
    else if (o.slide.mpp > 0 && o.slide.magnification > 0)
        why = "--mpp and --magnification exclude each other";
    if (why || optind != argc) {
        if (why && *why) fprintf(stderr, "fedlung: %s\n", why);
        return fl_cli_usage(usage);
    }
    if (fl_gdc_import(&o, out, &err)) return fl_cli_fail(&err);
    return summarize(out);
}
