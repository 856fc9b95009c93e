/* server_cmd.c - `fedlung server --config FILE`: reads the configuration, starts the gRPC
 * server and serves the study until it ends or SIGINT / SIGTERM. Parsing, signals and exit
 * codes only; server/ does the work. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../server/config.h"
#include "../server/server.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung server --config FILE [--quiet]\n"
    "\n"
    "Runs the federation server of one study: hospitals connect over mutual TLS, are known by\n"
    "their certificate's CN and must be on the allow-list. The server runs the study plan's\n"
    "phases (statistics, image, features, fusion) round by round: tasks, model downloads,\n"
    "updates aggregated as they stream in, federated evaluation, and a crash-safe commit of\n"
    "each round in state_dir (journal.jsonl, rounds.csv, audit.log, model.h5). Restarted with\n"
    "the same config after a crash, it resumes after the last committed round. Every event is\n"
    "logged to stderr and to the signed audit log (`fedlung audit verify`).\n"
    "\n"
    "FILE is an INI file (see docs/deploy.md):\n"
    "  [server]  listen = 127.0.0.1:50051   study = ID   state_dir = DIR   plan = study.plan\n"
    "            audit_key = server.key   min_clients = N   round_timeout_s = 600\n"
    "            join_timeout_s = 0   retries = 2\n"
    "  [tls]     ca = ca.crt   cert = server.crt   key = server.key   insecure = false\n"
    "  [clients] allow = hospital-a, hospital-b\n"
    "\n"
    "Exit status: 0 the study is complete (or stopped by a signal), 1 failure, 2 usage,\n"
    "3 the study stopped: too few hospitals remained after the retries (the log says why).\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int fl_cmd_server(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int quiet = 0;
    const char *config = NULL;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1) break;
        if (c == 'h') {
            fputs(usage, stdout);
            return FL_EXIT_OK;
        }
        if (c == 'q') {
            quiet = 1;
            continue;
        }
        if (c != 'c') {
            fprintf(stderr, "fedlung server: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return fl_cli_usage(usage);
        }
        config = optarg;
    }
    if (!config || optind < argc) return fl_cli_usage(usage);

    fl_err err = {{0}};
    fl_server_config cfg;
    if (fl_server_config_load(config, &cfg, &err) != FL_OK) return fl_cli_fail(&err);
    if (mkdir(cfg.state_dir, 0700) != 0 && errno != EEXIST) {
        fl_fail(&err, FL_EIO, "%s: cannot create state_dir %s: %s", config, cfg.state_dir,
                strerror(errno));
        fl_server_config_destroy(&cfg);
        return fl_cli_fail(&err);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    fl_server *srv = NULL;
    fl_study_state end = FL_STUDY_RUNNING;
    fl_status st = fl_server_new(&cfg, quiet, &srv, &err);
    if (st == FL_OK) st = fl_server_run(srv, &stop_requested, &end, &err);
    fl_server_free(srv);
    fl_server_config_destroy(&cfg);
    if (st != FL_OK) return fl_cli_fail(&err);
    if (end == FL_STUDY_STOPPED) {
        fprintf(stderr, "fedlung server: the study stopped before it was complete (see above)\n");
        return FL_EXIT_STUDY_STOPPED;
    }
    return FL_EXIT_OK;
}
