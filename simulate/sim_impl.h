/* sim_impl.h - what the simulator's files share: the run's layout (folder, port, plan hash),
 * the setup, the process supervisor and the reports. Internal to simulate/. */
#ifndef FL_SIM_IMPL_H
#define FL_SIM_IMPL_H

#include <stdio.h>

#include "simulate.h"

#define FL_SIM_PATH 4096
#define FL_SIM_DIR_MAX 3000 /* DIR's absolute length, so that every path under it fits */

/* What setup decided and every later step needs. Paths under dir are made with fl_sim_path:
 *   study.plan  cohort.h5  pki/  server.pub  rounds.csv  audit.log  model.h5  auc.png  loss.png
 *   server/{server.conf, server.log, audit.key, audit.pub, state/}
 *   hospitals/hospital-K/{client.conf, client.log, cohort.h5, state/} */
typedef struct {
    char dir[FL_SIM_PATH]; /* DIR, absolute */
    char study[65];        /* the plan's study id */
    char plan_hash[65];    /* its SHA-256, the hospitals' approval */
    unsigned phases;       /* the plan's phases, bits 1 << fl_phase */
    int n;                 /* hospitals */
    int port;              /* 127.0.0.1:port, chosen once, kept across server restarts */
    int min_clients;
    int client_threads, server_threads; /* engine threads of each process */
    int dp;                             /* the plan trains with DP: report epsilon */
} fl_sim_layout;

/* simulate.c: the plan's [privacy] section that o asks for (--dp, --secagg), starting with a
 * blank line, into out (cap bytes; "" when o asks for none). */
void fl_sim_privacy_section(const fl_sim_options *o, char *out, size_t cap);

/* Formats a path into out (FL_SIM_PATH bytes); setup keeps DIR short enough that it fits. */
void fl_sim_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies the file at src to dst, atomically (a reader sees the old file or the whole new one).
 * FL_ENOTFOUND when src is not there, FL_EIO naming the file that failed. */
fl_status fl_sim_copy_file(const char *src, const char *dst, fl_err *err);

/* setup.c: the folder, the cohort and its partition, the PKI, the audit key, the plan, the port
 * and the configs (the simulate.h file comment), with progress on stderr. */
fl_status fl_sim_setup(const fl_sim_options *o, fl_sim_layout *L, fl_err *err);

/* The server's rounds.csv: one row per committed round. Cells not evaluated are NaN. */
typedef struct {
    int round, participants;
    char phase[16];
    double loss, macro_auc;
    double clip_norm; /* DP-FedAvg's adaptive clipping: the round's clip norm, else NaN */
} fl_sim_row;

typedef struct {
    int n_rows, n_classes;
    int has_clip;            /* the file has a clip_norm column (adaptive clipping) */
    fl_sim_row *rows;        /* n_rows, in file order */
    double *auc;             /* n_rows x n_classes, NaN when not evaluated */
    char (*class_names)[64]; /* n_classes, from the header's auc_<class> columns */
} fl_sim_rounds;

/* report.c: reads a rounds.csv into r (fl_sim_rounds_destroy frees it). FL_ENOTFOUND when the
 * file is not there (yet), FL_EFORMAT "<path>:<line>: ..." when it does not parse, FL_ENOMEM.
 * On failure r holds nothing. */
fl_status fl_sim_rounds_load(const char *path, fl_sim_rounds *r, fl_err *err);
void fl_sim_rounds_destroy(fl_sim_rounds *r);
/* The highest round in r, 0 when empty: the rounds committed so far. */
int fl_sim_rounds_last(const fl_sim_rounds *r);
/* The epsilon each hospital has spent under DP (DP-SGD, or DP-FedAvg counted at q 1), from the
 * records of its outbox log (DIR/hospitals/hospital-K/state/outbox.log): an "update" record
 * carries the hospital's epsilon_total after that round, a "refused" record says it refused
 * the round. */
typedef struct {
    int n, rounds; /* hospitals; rounds 1..rounds are covered */
    double *eps;   /* rounds x n: [(round - 1) * n + k], NaN where hospital k released nothing */
    char *refused; /* rounds x n: 1 where hospital k refused the round */
} fl_sim_eps;

/* privacy.c: reads every hospital's outbox log into e (fl_sim_eps_destroy frees it). A log not
 * there yet, and a line that does not parse (one being written), count as no record. FL_OK, or
 * FL_ENOMEM / FL_EIO with e empty. */
fl_status fl_sim_eps_load(const fl_sim_layout *L, fl_sim_eps *e, fl_err *err);
void fl_sim_eps_destroy(fl_sim_eps *e);
/* Hospital k's (0-based) epsilon spent by the end of round: its last epsilon_total at or before
 * it, 0 before its first DP round, +inf for an infinite one. */
double fl_sim_eps_total(const fl_sim_eps *e, int k, int round);
/* Writes DIR/privacy.csv (round,phase,hospital,epsilon_total: one row per hospital per trained
 * round of r, epsilon_total as fl_sim_eps_total, "inf" when infinite; then the round's clip_norm
 * when r has the column) atomically, and, when plot
 * is set, DIR/epsilon.png (each hospital's epsilon over those rounds). FL_EIO / FL_EBACKEND
 * naming the file. */
fl_status fl_sim_eps_write(const fl_sim_layout *L, const fl_sim_rounds *r, const fl_sim_eps *e,
                           int plot, fl_err *err);

/* Prints one line per row of r whose round is above *printed ("round 3  image  3 hospitals
 * loss 0.812  macro AUC 0.741") to out, and raises *printed. A round with a clip norm
 * (adaptive clipping) shows it ("  C 0.8312"); with eps (DP), a trained round's line ends with
 * each hospital's epsilon spent ("  ε 1:4.87 2:4.87 3:4.87(refused)"). */
void fl_sim_rounds_print(const fl_sim_rounds *r, const fl_sim_eps *eps, int *printed, FILE *out);

/* Whether a rounds.csv phase is a trained one (image, fusion), which is evaluated and spends
 * epsilon. */
int fl_sim_phase_trained(const char *phase);

/* procs.c: runs the server and the clients until the server finishes the study (FL_OK), with
 * the faults of o; the round lines are printed as rounds commit, *printed holding the last
 * printed round. Fails with FL_EIO and a sentence naming the logs when the server stops the
 * study, crashes, or every client is gone, or when o->interrupted is set. No child is left
 * running or unreaped on return. */
fl_status fl_sim_run(const fl_sim_options *o, const fl_sim_layout *L, int *printed, fl_err *err);

/* report.c: after the server's success: copies rounds.csv, audit.log, model.h5 (and rnet.h5)
 * from the server's state into DIR, prints the rounds not yet printed, verifies the audit log
 * with DIR/server.pub, draws DIR/auc.png and DIR/loss.png and prints the summary (the final
 * macro AUC of each trained phase, the wall time since t0 on fl_sim_now's clock, the paths). */
fl_status fl_sim_finish(const fl_sim_layout *L, int *printed, double t0, fl_err *err);

/* Seconds on a monotonic clock. */
double fl_sim_now(void);

#endif
