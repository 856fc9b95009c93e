/* main.c - `fedlung`: dispatches git-style subcommands. Owns exit codes and nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: fedlung <command> [options]\n"
    "\n"
    "commands:\n"
    "  model info|forward|bench   inspect, run and time the ResNet family (RNet)\n"
    "  cohort synth|info|import-table|split   make, inspect and split cohort files\n"
    "  train image|fusion         train RNet on tiles, or MMLM on omics (+ RNet features)\n"
    "  eval                       score a split with a model: metrics, predictions, ROC/PR\n"
    "  demo                       train a small model for a few steps and print the loss\n"
    "\n"
    "Run `fedlung <command> --help` for a command's options.\n";

/* OpenMP threads that spin while waiting make a shared or oversubscribed machine crawl
 * (measured here: ResNet-18 training at 12 instead of 116 images/s with the other core busy),
 * and a federation runs several engines on the same cores. libgomp reads its wait policy when
 * it loads, so fedlung re-executes itself once with OMP_WAIT_POLICY=PASSIVE unless the user
 * chose a policy. */
static void prefer_passive_waiting(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    /* If re-execution is impossible, carry on with the default policy. */
}

int main(int argc, char **argv) {
    prefer_passive_waiting(argv);
    if (argc < 2) return fl_cli_usage(usage);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("fedlung 0.1.0");
        return FL_EXIT_OK;
    }
    if (strcmp(cmd, "model") == 0) return fl_cmd_model(argc - 1, argv + 1);
    if (strcmp(cmd, "cohort") == 0) return fl_cmd_cohort(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) return fl_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return fl_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return fl_cmd_demo(argc - 1, argv + 1);
    fprintf(stderr, "fedlung: unknown command '%s'\n", cmd);
    return fl_cli_usage(usage);
}
