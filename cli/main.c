/* main.c - `fedlung`: dispatches git-style subcommands. Owns exit codes and nothing else.
 * The engine-only build (FL_ENGINE_ONLY: no HDF5, gRPC, OpenSSL, CPU backend) has `model` only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifdef FL_ENGINE_ONLY
static const char usage[] =
    "usage: fedlung <command> [options]\n"
    "\n"
    "commands (engine-only build: the engine and its CUDA backend, no federation):\n"
    "  model info|forward|bench|opcheck|step   inspect, run, time and check the ResNet family\n"
    "\n"
    "Run `fedlung model --help` for the options.\n";
#else
static const char usage[] =
    "usage: fedlung <command> [options]\n"
    "\n"
    "commands:\n"
    "  model info|forward|bench|opcheck|step  inspect, run, time and check RNet (CPU or GPU)\n"
    "  cohort synth|info|import-table|split   make, inspect and split cohort files\n"
    "  train image|fusion         train RNet on tiles, or MMLM on omics (+ RNet features)\n"
    "  eval                       score a split with a model: metrics, predictions, ROC/PR\n"
    "  explain cam|umap           class activation maps; UMAP of patient embeddings\n"
    "  pki init|issue|show|verify the consortium CA and its server and client certificates\n"
    "  audit keygen|verify|show|report  signing keys, verification, a table, an HTML report\n"
    "  privacy epsilon|sigma|rdp  the DP-SGD accountant: epsilon spent, sigma for a target\n"
    "  plan features COHORT.h5    a study plan's feature lists, ranked on public data\n"
    "  server --config FILE       the federation server of a study: rounds, aggregation, logs\n"
    "  client --config FILE       a hospital's client: runs the study's tasks on its cohort\n"
    "  simulate                   a federation on this machine: a server, N hospitals, faults\n"
    "  demo                       train a small model for a few steps and print the loss\n"
    "\n"
    "Run `fedlung <command> --help` for a command's options.\n";
#endif

/* How OpenMP threads wait between parallel regions matters more than any kernel here. Measured
 * on this 2-core machine, ResNet-50 @64 px training: idle machine, libgomp's default spinning
 * 122 images/s, a short spin (GOMP_SPINCOUNT=20000) 123, never spinning (passive) 96; with
 * the other core busy, the default 12, the short spin 15, passive 55. fedlung uses the short
 * spin unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment); on a
 * shared or oversubscribed machine set OMP_WAIT_POLICY=PASSIVE or use fewer --threads.
 * libgomp reads these when it loads, so fedlung re-executes itself once with the setting. */
static void prefer_short_spinning(char **argv) {
#ifndef FL_ENGINE_ONLY /* which has no OpenMP */
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", "20000", 1);
    execv("/proc/self/exe", argv);
    /* If re-execution is impossible, carry on with the default policy. */
#endif
}

int main(int argc, char **argv) {
    prefer_short_spinning(argv);
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
#ifndef FL_ENGINE_ONLY
    if (strcmp(cmd, "cohort") == 0) return fl_cmd_cohort(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) return fl_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return fl_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "explain") == 0) return fl_cmd_explain(argc - 1, argv + 1);
    if (strcmp(cmd, "pki") == 0) return fl_cmd_pki(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0) return fl_cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "privacy") == 0) return fl_cmd_privacy(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0) return fl_cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "server") == 0) return fl_cmd_server(argc - 1, argv + 1);
    if (strcmp(cmd, "client") == 0) return fl_cmd_client(argc - 1, argv + 1);
    if (strcmp(cmd, "simulate") == 0) return fl_cmd_simulate(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return fl_cmd_demo(argc - 1, argv + 1);
#endif
    fprintf(stderr, "fedlung: unknown command '%s'\n", cmd);
    return fl_cli_usage(usage);
}
