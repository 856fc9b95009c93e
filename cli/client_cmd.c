/* client_cmd.c - `fedlung client --config FILE [--max-attempts N]`: reads the hospital's
 * configuration, joins the study's server (retrying while it is unreachable), prints the
 * server's Status. Parsing, output and exit codes only; client/ does the work. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../client/client.h"
#include "../client/config.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung client --config FILE [--max-attempts N]\n"
    "\n"
    "Runs a hospital's side of a study: dials the server over mutual TLS with this site's\n"
    "certificate, joins the study (software version and a data summary: patients per class and\n"
    "modalities present, no patient data), asks for the Status and prints it (training comes\n"
    "next). While the server is unreachable it retries, waiting 1 s doubling to 30 s with\n"
    "jitter; --max-attempts N gives up after N attempts (default: never). A refusal (not on the\n"
    "allow-list, another study, no identity) is final. Each attempt is logged on stderr.\n"
    "\n"
    "FILE is an INI file (see docs/deploy.md, \"Running a hospital client\"):\n"
    "  [client]  server = fl.example.org:50051   study = ID   name = CN   state_dir = DIR\n"
    "  [tls]     ca = ca.crt   cert = hospital-a.crt   key = hospital-a.key   insecure = false\n"
    "  [data]    cohort = cohort.h5\n";

static const char *phase_name(int phase) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&fedlung__v1__phase__descriptor, phase);
    return v ? v->name : "?";
}

static const char *state_name(int state) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&fedlung__v1__participant_state__descriptor, state);
    return v ? v->name : "?";
}

static void print_status(const Fedlung__V1__StatusReply *s) {
    printf("study %s: round %llu, phase %s, %u joined, %u needed%s\n", s->study_id,
           (unsigned long long)s->round, phase_name(s->phase), s->participants_joined,
           s->updates_needed, s->done ? ", done" : "");
    for (size_t i = 0; i < s->n_participants; i++)
        printf("  %s %s\n", s->participants[i]->client_id, state_name(s->participants[i]->state));
}

int fl_cmd_client(int argc, char **argv) {
    static const struct option longopts[] = {{"config", required_argument, 0, 'c'},
                                             {"max-attempts", required_argument, 0, 'm'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *config = NULL;
    fl_client_retry retry = fl_client_retry_default();
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1) break;
        if (c == 'h') {
            fputs(usage, stdout);
            return FL_EXIT_OK;
        }
        if (c == 'c') {
            config = optarg;
        } else if (c == 'm' && fl_parse_int(optarg, 1, 1000000, &retry.max_attempts) == 0) {
            continue;
        } else {
            fprintf(stderr, "fedlung client: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return fl_cli_usage(usage);
        }
    }
    if (!config || optind < argc) return fl_cli_usage(usage);

    fl_err err = {{0}};
    fl_client_config cfg;
    if (fl_client_config_load(config, &cfg, &err) != FL_OK) return fl_cli_fail(&err);
    if (mkdir(cfg.state_dir, 0700) != 0 && errno != EEXIST) {
        fl_fail(&err, FL_EIO, "%s: cannot create state_dir %s: %s", config, cfg.state_dir,
                strerror(errno));
        return fl_cli_fail(&err);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    retry.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);

    fl_client *cl = NULL;
    Fedlung__V1__StatusReply *status = NULL;
    grpc_status_code code = GRPC_STATUS_OK;
    fl_status st = fl_client_new(&cfg, &cl, &err);
    if (st == FL_OK) st = fl_client_join(cl, &retry, &status, &code, &err);
    if (st == FL_OK) print_status(status);
    if (status) protobuf_c_message_free_unpacked(&status->base, NULL);
    fl_client_free(cl);
    if (st == FL_OK) return FL_EXIT_OK;
    if (code == GRPC_STATUS_PERMISSION_DENIED)
        fprintf(stderr, "fedlung: permission denied: the server does not allow this site (%s)\n",
                err.msg);
    else if (code == GRPC_STATUS_FAILED_PRECONDITION)
        fprintf(stderr, "fedlung: the server refused study '%s' (%s)\n", cfg.study, err.msg);
    else if (code == GRPC_STATUS_UNAUTHENTICATED)
        fprintf(stderr, "fedlung: the server could not identify this site (%s)\n", err.msg);
    else if (code == GRPC_STATUS_UNAVAILABLE)
        fprintf(stderr, "fedlung: cannot reach the server at %s (%s)\n", cfg.server, err.msg);
    else
        return fl_cli_fail(&err);
    return FL_EXIT_FAIL;
}
