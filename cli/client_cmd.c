/* client_cmd.c - `fedlung client --config FILE [--threads N] [--max-attempts N]
 * [--delay-upload SECONDS]`: reads the hospital's configuration, joins the study's server
 * (retrying while it is unreachable) and runs the study's tasks until it is done, or, without a
 * cohort, prints the server's Status. Parsing, output and exit codes only; client/ does the
 * work. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../client/client.h"
#include "../client/config.h"
#include "../client/task.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung client --config FILE [--threads N] [--max-attempts N]\n"
    "                      [--delay-upload SECONDS]\n"
    "\n"
    "Runs a hospital's side of a study: dials the server over mutual TLS with this site's\n"
    "certificate and joins the study (software version, the plan hashes this hospital approved,\n"
    "a data summary: patients per class, modalities, feature counts; no patient data). It runs\n"
    "only a plan whose SHA-256 is one of the config's approve lines. Then it asks for tasks until\n"
    "the study is done: computes the statistics, trains the global model on the local cohort and\n"
    "uploads the change, evaluates global models on its test patients; at the end it writes the\n"
    "final model to state_dir/model.h5 and exits 0. Every message that leaves is recorded in\n"
    "state_dir/outbox.log (hash-chained, signed with state_dir/outbox.key: check it with\n"
    "`fedlung audit verify state_dir/outbox.log --key state_dir/outbox.pub`). Without a [data]\n"
    "cohort it only joins and prints the server's Status.\n"
    "While the server is unreachable it retries, waiting 1 s doubling to 30 s with jitter;\n"
    "--max-attempts N gives up after N attempts in a row (default: never). A refusal (not on the\n"
    "allow-list, another study, no identity, a plan not approved) is final. Each attempt and each\n"
    "task is logged on stderr.\n"
    "Under a plan with DP-SGD ([privacy] in the plan) the site trains with per-patient clipping\n"
    "and Gaussian noise from the CSPRNG, and keeps what it spent in state_dir/privacy.state.\n"
    "Before each training round it computes the epsilon it would have spent after it; a round\n"
    "that would exceed [privacy] epsilon_max is refused (\"refused: round R would spend ...\"\n"
    "here, in the outbox and in the server's log), and the server goes on without this site. A\n"
    "plan with DP needs epsilon_max, and one whose delta is larger than [privacy] delta is\n"
    "refused.\n"
    "With [client] device = cuda it trains and evaluates on that GPU; a GPU that cannot start\n"
    "stops the client at once, with one sentence saying why.\n"
    "  --threads N             engine threads (default: [client] threads, 0 = all cores)\n"
    "  --delay-upload SECONDS  testing aid: wait before every upload (a straggler)\n"
    "  --corrupt-downloads N   testing aid: damage the first N model downloads in transit\n"
    "\n"
    "FILE is an INI file (see docs/deploy.md, \"Running a hospital client\"):\n"
    "  [client]  server = fl.example.org:50051   study = ID   name = CN   state_dir = DIR\n"
    "            approve = <64 hex: SHA-256 of an approved plan> (repeatable)   threads = 0\n"
    "            device = cpu|cuda|cuda:N (where it trains; default cpu)\n"
    "            precision = fp32|tf32|bf16 (on cuda; default fp32)\n"
    "  [tls]     ca = ca.crt   cert = hospital-a.crt   key = hospital-a.key   insecure = false\n"
    "  [data]    cohort = cohort.h5\n"
    "  [privacy] epsilon_max = 3   delta = 1e-5 (the officer's delta; default 1e-5)\n";

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
                                             {"threads", required_argument, 0, 't'},
                                             {"delay-upload", required_argument, 0, 'd'},
                                             {"corrupt-downloads", required_argument, 0, 'x'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *config = NULL;
    fl_task_options opt = fl_task_options_default();
    float delay = 0;
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
        } else if ((c == 'm' && fl_parse_int(optarg, 1, 1000000, &opt.retry.max_attempts) == 0) ||
                   (c == 't' && fl_parse_int(optarg, 0, 4096, &opt.threads) == 0) ||
                   (c == 'x' && fl_parse_int(optarg, 0, 1000, &opt.corrupt_downloads) == 0)) {
            continue;
        } else if (c == 'd' && fl_parse_float(optarg, 0, 86400, &delay) == 0) {
            opt.delay_upload_s = delay;
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
    if (cfg.cohort[0] && strcmp(cfg.device, "cpu") != 0) {
        /* A GPU that cannot start stops the client now, not at its first training round. */
        fl_backend *be = fl_backend_new(cfg.device, 1, cfg.precision, &err);
        if (!be) return fl_cli_fail(&err);
        be->destroy(be);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    opt.retry.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);

    fl_client *cl = NULL;
    Fedlung__V1__StatusReply *status = NULL;
    grpc_status_code code = GRPC_STATUS_OK;
    int no_plan = 0;
    fl_status st = fl_client_new(&cfg, &cl, &err);
    if (st == FL_OK && cfg.cohort[0]) st = fl_task_run(cl, &cfg, &opt, &no_plan, &code, &err);
    if (st == FL_OK && (!cfg.cohort[0] || no_plan))
        st = fl_client_join(cl, &opt.retry, NULL, &status, &code, &err);
    if (st == FL_OK && status) print_status(status);
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
