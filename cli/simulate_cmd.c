/* simulate_cmd.c - `fedlung simulate`: a whole federation (server and N hospital clients over
 * gRPC on 127.0.0.1) on this machine. Parsing, signals and exit codes only; simulate/ does the
 * work. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../simulate/simulate.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung simulate [--out DIR] [--hospitals N] [--rounds R]\n"
    "                        [--partition site|iid|dirichlet:ALPHA] [--seed S]\n"
    "                        [--cohort FILE | --synthetic [--patients N] [--sites S] [--tile T]\n"
    "                         [--tiles-per-patient K] [--genes G] [--probes M]]\n"
    "                        [--plan FILE] [--threads N] [--round-timeout SECONDS]\n"
    "                        [--device cpu|cuda|cuda:N] [--precision fp32|tf32|bf16]\n"
    "                        [--drop-client K@ROUND]... [--kill-server-at ROUND]\n"
    "                        [--straggler K:SECONDS]...\n"
    "                        [--dp patient|client [--noise-multiplier S] [--sample-rate Q]]\n"
    "                        [--epsilon-max E] [--secagg] [--clip-norm C] [--update-clip B]\n"
    "                        [--adaptive-clip [--clip-bit-noise S]] [--eval-noise Z]\n"
    "                        [--standardize site|federated]\n"
    "\n"
    "Runs a federated study on this machine: a server and N hospital clients, each a process of\n"
    "this binary, over gRPC with mutual TLS on 127.0.0.1 (a throw-away PKI in DIR/pki). The\n"
    "cohort is split among the hospitals (DIR/hospitals/hospital-K/cohort.h5), every hospital\n"
    "approves the plan DIR/study.plan by its SHA-256, and one line is printed per committed\n"
    "round. With no options: the demo (README.md), the default synthetic cohort split by site\n"
    "over 3 hospitals, an image phase (ResNet-18, small stem) and a fusion phase.\n"
    "\n"
    "  --out DIR              results and working files (default " FL_SIM_DEFAULT_OUT "):\n"
    "                         rounds.csv, audit.log, server.pub, model.h5, rnet.h5, auc.png,\n"
    "                         loss.png; logs in DIR/server/server.log, DIR/hospitals/*/\n"
    "  --hospitals N          clients, 1..64 (default 3)\n"
    "  --rounds R             rounds of each training phase of the written plan (default 2)\n"
    "  --partition P          site (the cohort's sites dealt round-robin), iid, or\n"
    "                         dirichlet:ALPHA (label skew; small ALPHA = strong) (default site)\n"
    "  --seed S               seed of the synthetic cohort and of the partition (default 1)\n"
    "  --cohort FILE          split this cohort instead of a synthetic one\n"
    "  --synthetic            the synthetic cohort (the default), written to DIR/cohort.h5 and\n"
    "                         reused while its settings stay the same; its settings, as in\n"
    "                         `fedlung cohort synth`: --patients (300) --sites (4) --tile (64)\n"
    "                         --tiles-per-patient (16) --genes (1000) --probes (2000)\n"
    "  --plan FILE            run this study plan as it is, instead of the demo's\n"
    "  --threads N            cores shared out among the processes (default: all)\n"
    "  --device D             where the hospitals train: cpu (default), cuda or cuda:N (every\n"
    "                         hospital on that GPU; one that cannot start fails at once)\n"
    "  --precision P          the hospitals' precision on cuda: fp32 (default), tf32, bf16\n"
    "  --round-timeout S      the server's deadline of each step of a round (default 300)\n"
    "faults:\n"
    "  --drop-client K@ROUND  kill hospital K's client (SIGKILL) once round ROUND has started;\n"
    "                         it is not restarted (the server then needs N minus the dropped)\n"
    "  --kill-server-at ROUND kill the server (SIGKILL) during round ROUND and restart it on\n"
    "                         the same port; it resumes from its journal\n"
    "  --straggler K:SECONDS  hospital K waits SECONDS before every upload\n"
    "privacy (docs/privacy.md), added to the plan as its [privacy] section:\n"
    "  --dp patient           DP-SGD at every hospital (mechanism = dp-sgd, delta 1e-5): each\n"
    "                         patient's gradient clipped to --clip-norm, Gaussian noise of\n"
    "                         --noise-multiplier (1) times it, patients sampled at\n"
    "                         --sample-rate (0.1); needs --epsilon-max. DIR/privacy.csv and\n"
    "                         DIR/epsilon.png: the epsilon each hospital spent, per round\n"
    "  --dp client            DP-FedAvg: each hospital clips its update and adds its share of\n"
    "                         the noise; epsilon is accounted at the server, and by each\n"
    "                         hospital for itself (q 1); needs --epsilon-max\n"
    "  --adaptive-clip        with --dp client: the clip norm starts at --clip-norm and moves\n"
    "                         towards the median update norm (adaptive_clip = true); the bits'\n"
    "                         noise --clip-bit-noise (default N/20) must exceed half the\n"
    "                         --noise-multiplier. rounds.csv and privacy.csv gain clip_norm\n"
    "  --eval-noise Z         with --dp: eval_noise_multiplier = Z, the Gaussian noise on each\n"
    "                         hospital's evaluation report (default 4; 0: reports un-noised)\n"
    "  --epsilon-max E        every hospital's budget (client.conf [privacy] epsilon_max): a\n"
    "                         hospital refuses a round that would take it above E\n"
    "  --secagg               secure aggregation (secagg = true; updates clipped to\n"
    "                         --clip-norm, uniform weights); with --dp client the noise is\n"
    "                         the discrete Gaussian, added to the encoded update\n"
    "  --clip-norm C          the L2 bound of --dp and --secagg (default 1)\n"
    "  --update-clip B        --dp patient with --secagg: the L2 bound of each hospital's\n"
    "                         update for the fixed-point encoding (default 1000)\n"
    "  --standardize S        how the fusion model's inputs are z-scored ([fusion] standardize):\n"
    "                         federated, the statistics phase summing every hospital's patients\n"
    "                         (the default without --dp; refused with it: the sums would leave\n"
    "                         every hospital un-noised), or site, each hospital with its own\n"
    "                         training patients (the default with --dp): the demo plan then has\n"
    "                         no statistics phase and lists the features, ranked as `fedlung\n"
    "                         plan features` ranks on a public reference cohort DIR/public.h5\n"
    "                         (the generator's genes and probes, 64 other patients: --seed plus\n"
    "                         7919); a --plan must agree, and a --cohort needs a --plan\n"
    "ROUND counts every round of the study (statistics, image, features, fusion) from 1.\n"
    "Exit 0 when the study finished and its audit log verified, 1 on failure (the logs to\n"
    "read are named), 2 on bad usage.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

enum {
    O_OUT = 256,
    O_HOSPITALS,
    O_ROUNDS,
    O_PARTITION,
    O_SEED,
    O_COHORT,
    O_SYNTHETIC,
    O_PATIENTS,
    O_SITES,
    O_TILE,
    O_TPP,
    O_GENES,
    O_PROBES,
    O_PLAN,
    O_THREADS,
    O_TIMEOUT,
    O_DROP,
    O_KILL,
    O_STRAGGLER,
    O_DP,
    O_NOISE,
    O_SAMPLE_RATE,
    O_EPSILON_MAX,
    O_SECAGG,
    O_CLIP,
    O_DEVICE,
    O_PRECISION,
    O_UPDATE_CLIP,
    O_ADAPTIVE,
    O_BIT_NOISE,
    O_EVAL_NOISE,
    O_STANDARDIZE,
    O_HELP
};

/* Parses "K<sep>V" with K in 1..64 and V in lo..hi into *f. Returns 0 or -1. */
static int parse_fault(const char *text, char sep, int lo, int hi, fl_sim_fault *f) {
    const char *at = strchr(text, sep);
    if (!at || at == text) return -1;
    char k[16];
    size_t n = (size_t)(at - text);
    if (n >= sizeof k) return -1;
    memcpy(k, text, n);
    k[n] = '\0';
    return fl_parse_int(k, 1, FL_SIM_MAX_HOSPITALS, &f->hospital) == 0 &&
                   fl_parse_int(at + 1, lo, hi, &f->value) == 0
               ? 0
               : -1;
}

/* Parses a finite number above lo (or equal to it when lo_ok) and at most hi into *out.
 * Returns 0 or -1. */
static int parse_double(const char *text, double lo, int lo_ok, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || (v == lo && !lo_ok) || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, 1 for --help, or -1 after saying what is wrong. */
static int parse(int argc, char **argv, fl_sim_options *o) {
    static const struct option longopts[] = {{"out", required_argument, 0, O_OUT},
                                             {"hospitals", required_argument, 0, O_HOSPITALS},
                                             {"rounds", required_argument, 0, O_ROUNDS},
                                             {"partition", required_argument, 0, O_PARTITION},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"cohort", required_argument, 0, O_COHORT},
                                             {"synthetic", no_argument, 0, O_SYNTHETIC},
                                             {"patients", required_argument, 0, O_PATIENTS},
                                             {"sites", required_argument, 0, O_SITES},
                                             {"tile", required_argument, 0, O_TILE},
                                             {"tiles-per-patient", required_argument, 0, O_TPP},
                                             {"genes", required_argument, 0, O_GENES},
                                             {"probes", required_argument, 0, O_PROBES},
                                             {"plan", required_argument, 0, O_PLAN},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"round-timeout", required_argument, 0, O_TIMEOUT},
                                             {"drop-client", required_argument, 0, O_DROP},
                                             {"kill-server-at", required_argument, 0, O_KILL},
                                             {"straggler", required_argument, 0, O_STRAGGLER},
                                             {"dp", required_argument, 0, O_DP},
                                             {"noise-multiplier", required_argument, 0, O_NOISE},
                                             {"sample-rate", required_argument, 0, O_SAMPLE_RATE},
                                             {"epsilon-max", required_argument, 0, O_EPSILON_MAX},
                                             {"secagg", no_argument, 0, O_SECAGG},
                                             {"clip-norm", required_argument, 0, O_CLIP},
                                             {"device", required_argument, 0, O_DEVICE},
                                             {"precision", required_argument, 0, O_PRECISION},
                                             {"update-clip", required_argument, 0, O_UPDATE_CLIP},
                                             {"adaptive-clip", no_argument, 0, O_ADAPTIVE},
                                             {"clip-bit-noise", required_argument, 0, O_BIT_NOISE},
                                             {"eval-noise", required_argument, 0, O_EVAL_NOISE},
                                             {"standardize", required_argument, 0, O_STANDARDIZE},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    fl_synth_config *sy = &o->synth;
    /* The options that take an integer: where it goes, its range, and whether it is one of the
     * synthetic cohort's settings. */
    const struct {
        int code, *dst, lo, hi, synthetic;
    } ints[] = {{O_HOSPITALS, &o->hospitals, 1, FL_SIM_MAX_HOSPITALS, 0},
                {O_ROUNDS, &o->rounds, 1, 10000, 0},
                {O_PATIENTS, &sy->patients, 1, 100000, 1},
                {O_SITES, &sy->sites, 1, FL_SYNTH_MAX_SITES, 1},
                {O_TILE, &sy->tile, 0, 1024, 1},
                {O_TPP, &sy->tiles_per_patient, 0, 10000, 1},
                {O_GENES, &sy->genes, 64, 100000, 1},
                {O_PROBES, &sy->probes, 64, 1000000, 1},
                {O_THREADS, &o->threads, 1, 4096, 0},
                {O_TIMEOUT, &o->round_timeout_s, 1, 86400, 0},
                {O_KILL, &o->kill_server_at, 1, 1 << 20, 0}};
    int c, idx = 0, synthetic = 0, rounds = 0, dp_tuned = 0, clip = 0, update_clip = 0;
    fl_precision precision = FL_PREC_FP32;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        int bad = 0, seed, is_int = 0;
        for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
            if (ints[i].code == c) {
                is_int = 1;
                bad = fl_parse_int(optarg, ints[i].lo, ints[i].hi, ints[i].dst);
                synthetic |= ints[i].synthetic;
            }
        rounds |= c == O_ROUNDS;
        switch (is_int ? 0 : c) {
        case 0:
            break;
        case O_OUT:
            o->out_dir = optarg;
            break;
        case O_PARTITION: {
            fl_err err;
            bad = fl_partition_parse(optarg, &o->partition, &err) != FL_OK;
            o->partition_text = optarg;
            break;
        }
        case O_SEED:
            bad = fl_parse_int(optarg, 0, 1 << 30, &seed);
            sy->seed = o->partition.seed = (uint64_t)seed;
            break;
        case O_COHORT:
            o->cohort = optarg;
            break;
        case O_SYNTHETIC:
            synthetic = 1;
            break;
        case O_PLAN:
            o->plan = optarg;
            break;
        case O_DROP:
            bad = o->n_drops == FL_SIM_MAX_HOSPITALS ||
                  parse_fault(optarg, '@', 1, 1 << 20, &o->drops[o->n_drops++]);
            break;
        case O_STRAGGLER:
            bad = o->n_stragglers == FL_SIM_MAX_HOSPITALS ||
                  parse_fault(optarg, ':', 0, 86400, &o->stragglers[o->n_stragglers++]);
            break;
        case O_DP:
            bad = strcmp(optarg, "patient") != 0 && strcmp(optarg, "client") != 0;
            o->dp = strcmp(optarg, "client") == 0 ? FL_SIM_DP_CLIENT : FL_SIM_DP_PATIENT;
            break;
        case O_NOISE:
            bad = parse_double(optarg, 0, 1, 1e6, &o->noise_multiplier);
            dp_tuned = 1;
            break;
        case O_SAMPLE_RATE:
            bad = parse_double(optarg, 0, 0, 1, &o->sample_rate);
            dp_tuned = 1;
            break;
        case O_EPSILON_MAX:
            bad = parse_double(optarg, 0, 0, 1e9, &o->epsilon_max);
            break;
        case O_SECAGG:
            o->secagg = 1;
            break;
        case O_CLIP:
            bad = parse_double(optarg, 0, 0, 1e9, &o->clip_norm);
            clip = 1;
            break;
        case O_DEVICE:
            bad = fl_cli_parse_device(optarg, &o->device);
            break;
        case O_PRECISION:
            bad = fl_cli_parse_precision(optarg, &precision);
            o->precision = optarg;
            break;
        case O_UPDATE_CLIP:
            bad = parse_double(optarg, 0, 0, 1e9, &o->update_clip);
            update_clip = 1;
            break;
        case O_ADAPTIVE:
            o->adaptive_clip = 1;
            break;
        case O_BIT_NOISE:
            bad = parse_double(optarg, 0, 0, 1e9, &o->clip_bit_noise);
            break;
        case O_EVAL_NOISE:
            bad = parse_double(optarg, 0, 1, 1e6, &o->eval_noise);
            break;
        case O_STANDARDIZE:
            bad = strcmp(optarg, "site") != 0 && strcmp(optarg, "federated") != 0;
            o->standardize = strcmp(optarg, "site") == 0 ? FL_SIM_STD_SITE : FL_SIM_STD_FEDERATED;
            break;
        case 'h':
        case O_HELP:
            return 1;
        default:
            fprintf(stderr, "fedlung simulate: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "fedlung simulate: bad value '%s' for --%s\n", optarg,
                    longopts[idx].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedlung simulate: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    const char *clash = o->cohort && synthetic ? "--cohort and the synthetic cohort's options"
                        : o->plan && rounds    ? "--plan and --rounds (the plan says how many)"
                                               : NULL;
    if (clash) {
        fprintf(stderr, "fedlung simulate: %s exclude each other\n", clash);
        return -1;
    }
    const char *alone = dp_tuned && !o->dp ? "--noise-multiplier and --sample-rate need --dp"
                        : clip && !o->dp && !o->secagg ? "--clip-norm needs --dp or --secagg"
                        : update_clip && !(o->dp == FL_SIM_DP_PATIENT && o->secagg)
                            ? "--update-clip needs --dp patient and --secagg"
                            : NULL;
    if (alone) {
        fprintf(stderr, "fedlung simulate: %s\n", alone);
        return -1;
    }
    if (fl_cli_check_device("simulate", o->device ? o->device : "cpu", precision) != 0) return -1;
    fl_err err;
    if (!o->cohort && (fl_synth_config_check(sy, &err) != FL_OK || sy->patients < sy->sites)) {
        fprintf(stderr, "fedlung simulate: %s\n",
                sy->patients < sy->sites ? "--patients must be at least --sites" : err.msg);
        return -1;
    }
    if (fl_sim_options_check(o, &err) != FL_OK) {
        fprintf(stderr, "fedlung simulate: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int fl_cmd_simulate(int argc, char **argv) {
    fl_sim_options o;
    fl_sim_options_default(&o);
    int p = parse(argc, argv, &o);
    if (p == 1) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);

    /* No SA_RESTART: a signal ends the supervisor's sleep, which then stops the children. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    o.interrupted = &interrupted;

    fl_err err = {{0}};
    return fl_simulate(&o, &err) == FL_OK ? FL_EXIT_OK : fl_cli_fail(&err);
}
