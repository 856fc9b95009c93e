/* simulate.h - `fedlung simulate`: a whole federation on one machine. It makes (or reads) a
 * cohort and splits it among N hospitals, makes a throw-away PKI, an audit key, a study plan and
 * the configs, then runs the server and N clients as processes of this same binary over gRPC
 * on 127.0.0.1, injects the faults asked for, prints one line per committed round and writes
 * the study's results and plots into one folder. Not a federation engine: the server and the
 * clients do all the work; this module launches, watches and reports. */
#ifndef FL_SIMULATE_H
#define FL_SIMULATE_H

#include <signal.h>

#include "../common/status.h"
#include "../data/partition.h"
#include "../data/synth.h"

#define FL_SIM_MAX_HOSPITALS 64
#define FL_SIM_DEFAULT_OUT "simulation"
#define FL_SIM_DEFAULT_HOSPITALS 3
#define FL_SIM_DEFAULT_ROUNDS 2          /* rounds of each training phase (image, fusion) */
#define FL_SIM_DEFAULT_ROUND_TIMEOUT 300 /* seconds, server.conf's round_timeout_s */
#define FL_SIM_DEFAULT_CLIP_NORM 1.0     /* [privacy] clip_norm of --dp patient and --secagg */
#define FL_SIM_DEFAULT_NOISE 1.0         /* [privacy] noise_multiplier of --dp patient */
#define FL_SIM_DEFAULT_SAMPLE_RATE 0.1   /* [privacy] sample_rate of --dp patient */
#define FL_SIM_DP_IMAGE_BATCH 4          /* the demo plan's [image] batch under --dp patient */
#define FL_SIM_DEFAULT_UPDATE_CLIP 1000.0 /* [privacy] update_clip of --dp patient --secagg */
#define FL_SIM_DELTA 1e-5                /* the plan's and every hospital's delta */
#define FL_SIM_PUBLIC_SEED_OFFSET 7919   /* the public reference cohort's seed: the cohort's + */
#define FL_SIM_PUBLIC_PATIENTS 64        /* its patients (1 site, no tiles) */

/* --dp: the unit whose privacy is protected. */
typedef enum {
    FL_SIM_DP_NONE = 0,
    FL_SIM_DP_PATIENT, /* DP-SGD at each site: [privacy] mechanism = dp-sgd */
    FL_SIM_DP_CLIENT,  /* DP-FedAvg: mechanism = dp-fedavg, dp_clients = the hospitals */
} fl_sim_dp;

/* --standardize: how the fusion model's inputs are z-scored ([fusion] standardize). */
typedef enum {
    FL_SIM_STD_AUTO = 0,  /* site under --dp, federated without */
    FL_SIM_STD_FEDERATED, /* the statistics phase sums the hospitals' patients (not under --dp) */
    FL_SIM_STD_SITE,      /* each hospital its own patients; the demo plan lists the features,
                             ranked on a public reference cohort (DIR/public.h5) */
} fl_sim_standardize;

/* One fault: hospital (1-based) and the round (the server's counter, unique across phases)
 * or the seconds it concerns. */
typedef struct {
    int hospital;
    int value;
} fl_sim_fault;

typedef struct {
    const char *out_dir;         /* DIR, created if missing */
    int hospitals;               /* N, 1..FL_SIM_MAX_HOSPITALS */
    int rounds;                  /* rounds of each training phase of the written plan */
    fl_partition_spec partition; /* mode, alpha and seed; parts is ignored (N) */
    const char *partition_text;  /* as the user wrote it, for provenance and messages */
    const char *cohort;          /* a cohort file to split, or NULL for the synthetic one */
    fl_synth_config synth;       /* the synthetic cohort, written to DIR/cohort.h5 */
    const char *plan;            /* a study plan used as is, or NULL to write the demo's */
    int threads;                 /* cores shared out among the processes; 0: all online */
    const char *device;          /* --device: every client.conf's [client] device; NULL: cpu */
    const char *precision;       /* --precision: their precision (fp32, tf32, bf16); NULL: fp32 */
    int round_timeout_s;         /* server.conf round_timeout_s */
    fl_sim_fault drops[FL_SIM_MAX_HOSPITALS]; /* --drop-client K@ROUND: value = ROUND */
    int n_drops;
    fl_sim_fault stragglers[FL_SIM_MAX_HOSPITALS]; /* --straggler K:SECONDS: value = SECONDS */
    int n_stragglers;
    int kill_server_at;                 /* --kill-server-at ROUND, 0: none */
    fl_sim_dp dp;                       /* --dp: written into the plan's [privacy] */
    int secagg;                         /* --secagg: [privacy] secagg = true */
    double clip_norm;                   /* --clip-norm C (dp and secagg) */
    double update_clip;                 /* --update-clip B (dp patient with secagg) */
    double noise_multiplier;            /* --noise-multiplier sigma (dp) */
    double sample_rate;                 /* --sample-rate q (dp) */
    double epsilon_max;                 /* --epsilon-max: every client.conf's; 0: not set */
    int adaptive_clip;                  /* --adaptive-clip (dp client): adaptive_clip = true */
    double clip_bit_noise;              /* --clip-bit-noise (adaptive): 0: the plan's default */
    double eval_noise;                  /* --eval-noise Z (dp): < 0: the plan's default */
    fl_sim_standardize standardize;     /* --standardize */
    volatile sig_atomic_t *interrupted; /* set (by a signal handler) to stop the run; or NULL */
} fl_sim_options;

/* Fills o with the defaults: the demo (FL_SIM_DEFAULT_*, partition by site, the default
 * synthetic cohort, the demo plan, all cores). */
void fl_sim_options_default(fl_sim_options *o);

/* Whether o standardizes at each site: --standardize site, or --dp without --standardize. */
int fl_sim_site_standardized(const fl_sim_options *o);

/* Checks what the command line cannot: fault hospitals within 1..N, no hospital dropped twice,
 * rounds >= 1, --dp with --epsilon-max, --adaptive-clip only with --dp client, no --standardize
 * federated under --dp, site standardization of a --cohort only with a --plan, and a [privacy]
 * section (--dp, --secagg, --adaptive-clip) that the study plan's rules accept (one it refuses,
 * e.g. a --clip-bit-noise too small for the noise multiplier, is refused with the plan's own
 * sentence). FL_EINVAL with a sentence naming the option. */
fl_status fl_sim_options_check(const fl_sim_options *o, fl_err *err);

/* Runs the whole simulation (see the file comment). With a device other than cpu it first
 * starts that backend once, so a GPU that cannot start fails it (FL_EBACKEND, the backend's
 * sentence) before anything is written. Progress and the children's fate go to
 * stderr; the round lines, the audit verdict and the summary to stdout. Returns FL_OK when the
 * study finished, its results are in out_dir and the audit log verified; otherwise FL_EINVAL
 * (bad cohort, plan or partition), FL_EIO (files, processes, a failed server or client, an
 * interrupt), FL_EFORMAT (unreadable outputs, a broken audit log), ... with one sentence that
 * names the logs to read. Every child process is gone when it returns, whatever happened. */
fl_status fl_simulate(const fl_sim_options *o, fl_err *err);

#endif
