/* server_cmd.c - `fedlung server --config FILE`: reads the configuration, starts the gRPC
 * server and serves until SIGINT or SIGTERM. Parsing, signals and exit codes only; server/
 * does the work. */
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
    "usage: fedlung server --config FILE\n"
    "\n"
    "Runs the federation server of one study: clients connect over mutual TLS, are known by\n"
    "their certificate's CN, must be on the config's allow-list, and may Join and ask for the\n"
    "Status (rounds come next). Every join and refusal is logged to stderr. SIGINT or SIGTERM\n"
    "stops it cleanly (exit 0).\n"
    "\n"
    "FILE is an INI file (see docs/deploy.md, \"Running the server\"):\n"
    "  [server]  listen = 127.0.0.1:50051   study = ID   state_dir = DIR   min_clients = N\n"
    "  [tls]     ca = ca.crt   cert = server.crt   key = server.key   insecure = false\n"
    "  [clients] allow = hospital-a, hospital-b\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int fl_cmd_server(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
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
    fl_status st = fl_server_new(&cfg, NULL, NULL, &srv, &err);
    if (st == FL_OK) st = fl_server_run(srv, &stop_requested, &err);
    fl_server_free(srv);
    fl_server_config_destroy(&cfg);
    return st == FL_OK ? FL_EXIT_OK : fl_cli_fail(&err);
}
