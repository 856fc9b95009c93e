/* state.h - the server's crash-safe state. A round is committed in three steps: its state file
 * state_dir/state/round-<N>.bin (everything needed to resume: the global model, the server
 * optimizer's moments, the standardizations) is written to a temporary file, fsynced and
 * renamed; then one line is appended to state_dir/journal.jsonl and fsynced — that line is the
 * commit; then state_dir/rounds.csv is rebuilt from the journal (atomically). At start-up the
 * last journal line names the state file to resume from; a torn last line is cut, and a state
 * file newer than the journal is an uncommitted round, removed and run again. Not the audit
 * log (crypto/audit.h), which records events, not state. */
#ifndef FL_SERVER_STATE_H
#define FL_SERVER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "fed/plan.h"
#include "fed/stats.h"

/* One committed round, as the journal keeps it. */
typedef struct {
    int64_t round; /* unique across phases, from 1 */
    fl_phase phase;
    int phase_round;  /* from 1 within the phase */
    int phase_done;   /* 1: the last round of its phase */
    int participants; /* updates aggregated */
    int evaluated;    /* sites that returned an evaluation (0: loss, AUC, AP are NaN) */
    double loss, macro_auc;
    double auc[FL_PLAN_MAX_CLASSES], ap[FL_PLAN_MAX_CLASSES];
    uint64_t model_version;
    char model_sha256[65]; /* "" when the phase has no model (statistics) */
    int64_t unix_ms;
    /* DP-FedAvg with adaptive clipping, a trained round (NaN otherwise; the journal line then
     * has no such keys, nor rounds.csv a clip_norm cell): the clip norm C of its updates, the
     * mean of their noised bits and the C the rule gives the next round of the phase */
    double clip_norm, clip_bits_mean, clip_next;
} fl_journal_row;

/* What a state file holds. Vectors are heap (fl_server_state_destroy frees them). */
typedef struct {
    fl_journal_row row; /* the round it belongs to */
    size_t n_params, n_buffers;
    float *global; /* the phase's global model, n_params + n_buffers; NULL if none */
    size_t n_rnet;
    float *rnet; /* the image phase's final model (the features phase embeds with it) */
    size_t n_opt;
    float *m, *v; /* FedAdam / FedYogi moments (n_opt each) or NULL */
    int opt_step;
    int has_std[4]; /* by fl_modality - 1 */
    fl_stats_result std[4];
    double clip; /* DP-FedAvg's adaptive clipping: the clip norm of the next round; 0: none */
} fl_server_state;

void fl_server_state_destroy(fl_server_state *st);

/* Commits round st->row: the state file, the journal line, rounds.csv (columns round, phase,
 * participants, loss, macro_auc, auc_<class>... for p's classes, then clip_norm when p has
 * adaptive clipping). Returns FL_OK or FL_EIO / FL_ENOMEM naming the file. */
fl_status fl_state_commit(const char *state_dir, const fl_plan *p, const fl_server_state *st,
                          fl_err *err);

/* Reads the journal (cutting a torn last line) into *rows (heap, *n of them; NULL and 0 when
 * there is none) and, when there is a committed round, its state file into *st (zeroed when
 * none). Removes state files of uncommitted rounds and rebuilds rounds.csv. FL_EFORMAT when a
 * journal line or the state file is damaged (the sentence names file and line). */
fl_status fl_state_load(const char *state_dir, const fl_plan *p, fl_journal_row **rows, int *n,
                        fl_server_state *st, fl_err *err);

#endif
