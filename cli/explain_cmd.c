/* explain_cmd.c - `fedlung explain <subcommand>`: dispatches to the explanation tools (class
 * activation maps, UMAP of patient embeddings). Each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "explain_cmds.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} explain_subcommand;

/* Subcommands add one line here. */
static const explain_subcommand subcommands[] = {
    {"cam", fl_cmd_explain_cam, "class activation maps over the top tiles of each patient"},
    {"umap", fl_cmd_explain_umap,
     "UMAP of patient embeddings (fused and image-only), coloured by class and site"},
    {NULL, NULL, NULL},
};

static void explain_usage(FILE *f) {
    fputs("usage: fedlung explain <subcommand> [options]\n\nsubcommands:\n", f);
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (subcommands[i].name) fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].what);
    fputs("\nRun `fedlung explain <subcommand> --help` for its options.\n", f);
}

int fl_cmd_explain(int argc, char **argv) {
    if (argc < 2) {
        explain_usage(stderr);
        return FL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        explain_usage(stdout);
        return FL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (subcommands[i].name && strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "fedlung explain: unknown subcommand '%s'\n", argv[1]);
    explain_usage(stderr);
    return FL_EXIT_USAGE;
}
