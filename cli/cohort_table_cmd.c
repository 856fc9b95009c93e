/* cohort_table_cmd.c - `fedlung cohort info`, `import-table` and `split`: option parsing and
 * printing around data/cohort.h, data/import_table.h and data/partition.h. Not where cohorts
 * are built or partitioned: that logic lives in data/ so tests and the simulator share it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../data/cohort.h"
#include "../data/import_table.h"
#include "../data/partition.h"
#include "cli.h"
#include "cohort_cmds.h"

/* Strict unsigned 64-bit parsing for --seed; 0 on success. */
static int parse_u64(const char *v, uint64_t *out) {
    char *end;
    if (!*v || *v == '-' || *v == '+') return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)x;
    return 0;
}

static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct case ids (-1 when out of memory). */
static int count_cases(const fl_cohort *c) {
    if (c->P == 0) return 0;
    char **s = malloc((size_t)c->P * sizeof *s);
    if (!s) return -1;
    memcpy(s, c->case_id, (size_t)c->P * sizeof *s);
    qsort(s, (size_t)c->P, sizeof *s, str_cmp);
    int n = 1;
    for (int p = 1; p < c->P; p++) n += strcmp(s[p - 1], s[p]) != 0;
    free(s);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* info                                                                                        */

static const char info_usage[] =
    "usage: fedlung cohort info FILE [--json]\n"
    "\n"
    "Prints a cohort file's patients by class and site, its splits, modalities (features and\n"
    "patients having each), tiles and provenance.\n"
    "  --json   print the same as one JSON object\n";

/* counts[(row) * K + k] of patients by (site or split) and class. */
static int *tabulate(const fl_cohort *c, int by_site) {
    int rows = by_site ? c->n_sites : 3, K = c->n_classes;
    int *t = calloc((size_t)(rows ? rows : 1) * (size_t)K, sizeof *t);
    if (!t) return NULL;
    for (int p = 0; p < c->P; p++) t[(by_site ? c->site[p] : c->split[p]) * K + c->label[p]]++;
    return t;
}

static void print_table(const fl_cohort *c, const int *t, int rows, char *const *row_names,
                        const char *corner) {
    const int K = c->n_classes;
    int w0 = (int)strlen(corner), w = 5;
    if (w0 < 5) w0 = 5;
    for (int r = 0; r < rows; r++)
        if ((int)strlen(row_names[r]) > w0) w0 = (int)strlen(row_names[r]);
    for (int k = 0; k < K; k++)
        if ((int)strlen(c->class_names[k]) > w) w = (int)strlen(c->class_names[k]);
    printf("  %-*s", w0, corner);
    for (int k = 0; k < K; k++) printf("  %*s", w, c->class_names[k]);
    printf("  %*s\n", w, "total");
    int *col = calloc((size_t)K, sizeof *col), all = 0;
    for (int r = 0; r < rows; r++) {
        int sum = 0;
        printf("  %-*s", w0, row_names[r]);
        for (int k = 0; k < K; k++) {
            printf("  %*d", w, t[r * K + k]);
            sum += t[r * K + k];
            if (col) col[k] += t[r * K + k];
        }
        printf("  %*d\n", w, sum);
        all += sum;
    }
    if (col && rows > 1) {
        printf("  %-*s", w0, "total");
        for (int k = 0; k < K; k++) printf("  %*d", w, col[k]);
        printf("  %*d\n", w, all);
    }
    free(col);
}

static void print_info_text(const char *path, const fl_cohort *c, int cases, const int *by_site,
                            const int *by_split) {
    char *split_names[3] = {"train", "val", "test"};
    printf("%s: %d patients (%d cases), %d classes, %d sites\n", path, c->P, cases, c->n_classes,
           c->n_sites);
    printf("patients by site and class:\n");
    print_table(c, by_site, c->n_sites, c->site_names, "site");
    printf("patients by split and class:\n");
    print_table(c, by_split, 3, split_names, "split");
    printf("modalities:\n");
    int any = 0;
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *o = &c->omics[m];
        if (o->F == 0) continue;
        int n = 0;
        for (int p = 0; p < c->P; p++) n += o->present[p];
        printf("  %-12s %6d features, %d of %d patients\n", fl_omics_name((fl_omics)m), o->F, n,
               c->P);
        any = 1;
    }
    if (!any) printf("  none\n");
    if (c->omics[FL_MOD_CLINICAL].F && c->omics[FL_MOD_CLINICAL].encoding)
        printf("clinical encoding: %s\n", c->omics[FL_MOD_CLINICAL].encoding);
    if (c->n_tiles > 0)
        printf("tiles: %lld of %dx%d px (%.1f per patient)\n", (long long)c->n_tiles, c->tile,
               c->tile, c->P ? (double)c->n_tiles / c->P : 0.0);
    else
        printf("tiles: none\n");
    printf("provenance: %s\n", c->provenance ? c->provenance : "(none)");
}

static void json_counts(const int *t, int rows, int K) {
    printf("[");
    for (int r = 0; r < rows; r++) {
        printf(r ? ",[" : "[");
        for (int k = 0; k < K; k++) printf(k ? ",%d" : "%d", t[r * K + k]);
        printf("]");
    }
    printf("]");
}

static void json_names(char *const *s, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        if (i) printf(",");
        json_str(stdout, s[i]);
    }
    printf("]");
}

static void print_info_json(const char *path, const fl_cohort *c, int cases, const int *by_site,
                            const int *by_split) {
    const int K = c->n_classes;
    printf("{\"file\":");
    json_str(stdout, path);
    printf(",\"patients\":%d,\"cases\":%d,\"classes\":", c->P, cases);
    json_names(c->class_names, K);
    printf(",\"sites\":");
    json_names(c->site_names, c->n_sites);
    printf(",\"patients_by_class\":[");
    for (int k = 0; k < K; k++) {
        int n = 0;
        for (int p = 0; p < c->P; p++) n += c->label[p] == k;
        printf(k ? ",%d" : "%d", n);
    }
    printf("],\"patients_by_site_class\":");
    json_counts(by_site, c->n_sites, K);
    printf(",\"splits\":{");
    for (int s = 0; s < 3; s++) {
        int n = 0;
        for (int k = 0; k < K; k++) n += by_split[s * K + k];
        printf("%s\"%s\":{\"patients\":%d,\"by_class\":[", s ? "," : "", fl_split_name((fl_split)s),
               n);
        for (int k = 0; k < K; k++) printf(k ? ",%d" : "%d", by_split[s * K + k]);
        printf("]}");
    }
    printf("},\"modalities\":{");
    for (int m = 0, first = 1; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *o = &c->omics[m];
        if (o->F == 0) continue;
        int n = 0;
        for (int p = 0; p < c->P; p++) n += o->present[p];
        printf("%s\"%s\":{\"features\":%d,\"patients\":%d}", first ? "" : ",",
               fl_omics_name((fl_omics)m), o->F, n);
        first = 0;
    }
    printf("},\"clinical_encoding\":");
    json_str(stdout, c->omics[FL_MOD_CLINICAL].F ? c->omics[FL_MOD_CLINICAL].encoding : NULL);
    printf(",\"tiles\":{\"tile\":%d,\"count\":%lld},\"provenance\":", c->tile,
           (long long)c->n_tiles);
    json_str(stdout, c->provenance);
    printf("}\n");
}

int fl_cmd_cohort_info(int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(info_usage, stdout);
            return FL_EXIT_OK;
        }
        if (ch != 'j') return fl_cli_usage(info_usage);
        json = 1;
    }
    if (argc - optind != 1) return fl_cli_usage(info_usage);
    const char *path = argv[optind];
    fl_cohort c;
    fl_err err = {{0}};
    if (fl_cohort_load(&c, path, &err)) return fl_cli_fail(&err);
    int cases = count_cases(&c);
    int *by_site = tabulate(&c, 1), *by_split = tabulate(&c, 0);
    int rc = FL_EXIT_OK;
    if (cases < 0 || !by_site || !by_split) {
        fl_fail(&err, FL_ENOMEM, "%s: out of memory", path);
        rc = fl_cli_fail(&err);
    } else if (json) {
        print_info_json(path, &c, cases, by_site, by_split);
    } else {
        print_info_text(path, &c, cases, by_site, by_split);
    }
    free(by_site);
    free(by_split);
    fl_cohort_destroy(&c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* import-table                                                                                */

static const char import_usage[] =
    "usage: fedlung cohort import-table --csv FILE --id COL --label COL\n"
    "                                   --modality clinical|rna|methylation --out FILE.h5\n"
    "                                   [--site COL] [--split-column COL | --split 70/15/15]\n"
    "                                   [--seed N] [--classes A,B,...] [--ignore C1,C2,...]\n"
    "                                   [--delimiter comma|tab]\n"
    "\n"
    "Builds a cohort from a CSV/TSV table with one row per patient; every column other than the\n"
    "id, label, site, split and ignored ones is a feature of the modality (numbers as float;\n"
    "text, in clinical tables, one-hot as \"column=value\"). Missing values (empty, NA, NaN, '--,\n"
    "--, null) become NaN. See docs/formats.md, \"Importing a table\".\n"
    "  --site          the site of each row (default: one site \"site0\")\n"
    "  --split-column  train / val / test per row (default: a seeded split stratified by label)\n"
    "  --split         train/val/test weights of the seeded split (default 70/15/15)\n"
    "  --seed          seed of the split (default 1)\n"
    "  --classes       the class order; a label outside it is an error\n"
    "  --ignore        columns that are not features\n"
    "  --delimiter     force the delimiter (default: tab if the header has one, else comma)\n";

int fl_cmd_cohort_import_table(int argc, char **argv) {
    enum { O_CSV = 256, O_ID, O_LABEL, O_SITE, O_SPLITCOL, O_CLASSES, O_IGNORE, O_MODALITY };
    enum { O_OUT = 300, O_SEED, O_SPLIT, O_DELIM, O_HELP };
    static const struct option longopts[] = {{"csv", required_argument, 0, O_CSV},
                                             {"id", required_argument, 0, O_ID},
                                             {"label", required_argument, 0, O_LABEL},
                                             {"site", required_argument, 0, O_SITE},
                                             {"split-column", required_argument, 0, O_SPLITCOL},
                                             {"classes", required_argument, 0, O_CLASSES},
                                             {"ignore", required_argument, 0, O_IGNORE},
                                             {"modality", required_argument, 0, O_MODALITY},
                                             {"out", required_argument, 0, O_OUT},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"split", required_argument, 0, O_SPLIT},
                                             {"delimiter", required_argument, 0, O_DELIM},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    fl_import_options o;
    fl_err err = {{0}};
    const char *out = NULL;
    int ch, bad = 0, have_modality = 0, have_split = 0;
    fl_import_options_default(&o);
    optind = 1;
    opterr = 0;
    while (!bad && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case O_CSV:
            o.csv = optarg;
            break;
        case O_ID:
            o.id_col = optarg;
            break;
        case O_LABEL:
            o.label_col = optarg;
            break;
        case O_SITE:
            o.site_col = optarg;
            break;
        case O_SPLITCOL:
            o.split_col = optarg;
            break;
        case O_CLASSES:
            o.classes = optarg;
            break;
        case O_IGNORE:
            o.ignore = optarg;
            break;
        case O_MODALITY:
            have_modality = 1;
            if (strcmp(optarg, "clinical") == 0)
                o.modality = FL_MOD_CLINICAL;
            else if (strcmp(optarg, "rna") == 0)
                o.modality = FL_MOD_RNA;
            else if (strcmp(optarg, "methylation") == 0)
                o.modality = FL_MOD_METHYLATION;
            else
                bad = 1;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_SEED:
            bad = parse_u64(optarg, &o.seed);
            break;
        case O_SPLIT:
            have_split = 1;
            if (fl_import_parse_split(optarg, o.split, &err)) {
                fprintf(stderr, "fedlung: %s\n", err.msg);
                bad = 1;
            }
            break;
        case O_DELIM:
            if (strcmp(optarg, "comma") == 0 || strcmp(optarg, ",") == 0)
                o.delim = ',';
            else if (strcmp(optarg, "tab") == 0 || strcmp(optarg, "\t") == 0)
                o.delim = '\t';
            else
                bad = 1;
            break;
        case O_HELP:
            fputs(import_usage, stdout);
            return FL_EXIT_OK;
        default:
            bad = 1;
        }
    }
    if (!bad && (!o.csv || !o.id_col || !o.label_col || !have_modality || !out)) {
        fputs("fedlung: cohort import-table needs --csv, --id, --label, --modality and --out\n",
              stderr);
        bad = 1;
    } else if (!bad && have_split && o.split_col) {
        fputs("fedlung: --split and --split-column exclude each other\n", stderr);
        bad = 1;
    }
    if (bad || optind != argc) return fl_cli_usage(import_usage);
    if (fl_import_table(&o, out, &err)) return fl_cli_fail(&err);

    /* Read back what was written: the summary is then the file's, not the importer's. */
    fl_cohort c;
    if (fl_cohort_load(&c, out, &err)) return fl_cli_fail(&err);
    printf("%s: %d patients, %d sites, %s %d features; classes", out, c.P, c.n_sites,
           fl_omics_name(o.modality), c.omics[o.modality].F);
    for (int k = 0; k < c.n_classes; k++) {
        int n = 0;
        for (int p = 0; p < c.P; p++) n += c.label[p] == k;
        printf("%s %s %d", k ? "," : "", c.class_names[k], n);
    }
    printf("\n");
    fl_cohort_destroy(&c);
    return FL_EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* split                                                                                       */

static const char split_usage[] =
    "usage: fedlung cohort split FILE --partition site|iid|dirichlet:ALPHA [--parts N]\n"
    "                            --out DIR [--seed S]\n"
    "\n"
    "Writes DIR/part-1.h5 ... DIR/part-N.h5, each with its patients' tiles, omics and splits.\n"
    "A case's samples always stay together.\n"
    "  --partition  site: one part per site (--parts, if given, must equal the site count);\n"
    "               iid: cases shuffled into N parts of near-equal size;\n"
    "               dirichlet:ALPHA: per class, part shares ~ Dir(ALPHA) (small = skewed)\n"
    "  --parts      N, required for iid and dirichlet\n"
    "  --seed       seed of iid and dirichlet (default 1)\n";

/* mkdir -p; 0 on success, else -1 with errno set. */
static int make_dirs(const char *dir) {
    char *d = strdup(dir);
    if (!d) return -1;
    for (char *p = d + 1;; p++) {
        if (*p != '/' && *p) continue;
        char keep = *p;
        *p = '\0';
        if (mkdir(d, 0777) != 0 && errno != EEXIST) {
            free(d);
            return -1;
        }
        *p = keep;
        if (!keep) break;
    }
    free(d);
    struct stat st;
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int fl_cmd_cohort_split(int argc, char **argv) {
    enum { O_PARTITION = 256, O_PARTS, O_OUT, O_SEED, O_HELP };
    static const struct option longopts[] = {{"partition", required_argument, 0, O_PARTITION},
                                             {"parts", required_argument, 0, O_PARTS},
                                             {"out", required_argument, 0, O_OUT},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    fl_partition_spec spec = {FL_PARTITION_IID, 0, 0, 1};
    fl_err err = {{0}};
    const char *out = NULL, *partition = NULL;
    int ch, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case O_PARTITION:
            partition = optarg;
            if (fl_partition_parse(optarg, &spec, &err)) {
                fprintf(stderr, "fedlung: %s\n", err.msg);
                bad = 1;
            }
            break;
        case O_PARTS:
            bad = fl_parse_int(optarg, 1, 100000, &spec.parts);
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_SEED:
            bad = parse_u64(optarg, &spec.seed);
            break;
        case O_HELP:
            fputs(split_usage, stdout);
            return FL_EXIT_OK;
        default:
            bad = 1;
        }
    }
    if (!bad && (!partition || !out)) {
        fputs("fedlung: cohort split needs --partition and --out\n", stderr);
        bad = 1;
    } else if (!bad && spec.mode != FL_PARTITION_SITE && spec.parts == 0) {
        fputs("fedlung: --partition iid and dirichlet need --parts N\n", stderr);
        bad = 1;
    }
    if (bad || argc - optind != 1) return fl_cli_usage(split_usage);
    const char *path = argv[optind];

    fl_cohort c;
    fl_cohort_file *f = NULL;
    int32_t *part = NULL;
    uint8_t *keep = NULL;
    char **written = NULL;
    int N = 0, n_written = 0, rc = FL_EXIT_FAIL;
    char *orig_prov = NULL, *prov = NULL;
    if (fl_cohort_open(&f, &c, path, &err)) return fl_cli_fail(&err);
    part = malloc((size_t)(c.P ? c.P : 1) * sizeof *part);
    keep = malloc((size_t)(c.P ? c.P : 1));
    if (!part || !keep) {
        fl_fail(&err, FL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (fl_partition(&c, &spec, part, &N, &err)) {
        fl_err inner = err;
        fl_fail(&err, FL_EINVAL, "%s: %s", path, inner.msg);
        goto fail;
    }
    if (make_dirs(out) != 0) {
        fl_fail(&err, FL_EIO, "%s: cannot create the folder: %s", out, strerror(errno));
        goto fail;
    }
    if (!(written = calloc((size_t)N, sizeof *written))) {
        fl_fail(&err, FL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    orig_prov = c.provenance;
    for (int k = 0; k < N; k++) {
        size_t len = strlen(out) + 32;
        char *dst = malloc(len);
        size_t plen = (orig_prov ? strlen(orig_prov) : 0) + strlen(path) + strlen(partition) + 128;
        free(prov);
        prov = malloc(plen);
        if (!dst || !prov) {
            free(dst);
            fl_fail(&err, FL_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        snprintf(dst, len, "%s/part-%d.h5", out, k + 1);
        snprintf(prov, plen,
                 "%s%sfedlung cohort split: part %d of %d of %s (--partition %s, seed %llu)",
                 orig_prov ? orig_prov : "", orig_prov ? "\n" : "", k + 1, N, path, partition,
                 (unsigned long long)spec.seed);
        c.provenance = prov;
        int n = 0;
        for (int p = 0; p < c.P; p++) n += keep[p] = part[p] == k;
        fl_status s = fl_cohort_save_subset(&c, f, keep, dst, &err);
        c.provenance = orig_prov;
        if (s) {
            free(dst);
            goto fail;
        }
        written[n_written++] = dst;
    }
    /* Report only once every part is written: a failure removes them all. */
    for (int k = 0; k < N; k++) {
        int n = 0;
        for (int p = 0; p < c.P; p++) n += part[p] == k;
        printf("%s: %d patient%s;", written[k], n, n == 1 ? "" : "s");
        for (int j = 0; j < c.n_classes; j++) {
            int m = 0;
            for (int p = 0; p < c.P; p++) m += part[p] == k && c.label[p] == j;
            printf("%s %s %d", j ? "," : "", c.class_names[j], m);
        }
        for (int p = 0; p < c.P && spec.mode == FL_PARTITION_SITE; p++)
            if (part[p] == k) {
                printf("; site %s", c.site_names[c.site[p]]);
                break;
            }
        printf("\n");
    }
    rc = FL_EXIT_OK;
fail:
    if (rc != FL_EXIT_OK) {
        for (int i = 0; i < n_written; i++) unlink(written[i]); /* all parts or none */
        fl_cli_fail(&err);
    }
    if (written)
        for (int i = 0; i < n_written; i++) free(written[i]);
    free(written);
    free(prov);
    free(part);
    free(keep);
    fl_cohort_close(f);
    fl_cohort_destroy(&c);
    return rc;
}
