/* task.h - a hospital's task loop: join, check the study plan against the officer's approvals,
 * open the cohort for it, then NextTask after NextTask until the server says DONE, doing each
 * task with client/site.h's local work and client/transfer.h's transfers, and recording every
 * message that leaves in the outbox log (crypto/audit.h). Not the transport (client.c), not the
 * local computations (site.c), not the command line (cli/client_cmd.c). */
#ifndef FL_TASK_H
#define FL_TASK_H

#include <grpc/status.h>

#include "client/client.h"
#include "client/config.h"
#include "common/status.h"

typedef struct {
    fl_client_retry retry; /* back-off of every (re)join */
    int threads;           /* engine threads; -1: cfg's [client] threads */
    double delay_upload_s; /* testing aid: sleep this long before each PutUpdate */
    int corrupt_downloads; /* testing aid: damage the first N model downloads in transit */
    unsigned wait_ms;      /* NextTask's long poll (10000) */
} fl_task_options;

/* The defaults: fl_client_retry_default, threads from the config, no testing aids, 10 s. */
fl_task_options fl_task_options_default(void);

/* Runs the study for client c with config cfg (cfg->cohort set; both outlive the call):
 *  1. Join (retried while the server is unreachable). When the server runs no plan yet, logs so
 *     and returns FL_OK with *no_plan = 1.
 *  2. The plan: its SHA-256 must equal the reply's plan_hash, which must be one of cfg's
 *     approve hashes; otherwise FL_EINVAL "refused plan <hex>: not approved by this hospital
 *     (client.conf approve)". Parses it, opens the cohort for it (fl_site_open), joins again if
 *     the site's data summary differs from the one sent, and opens the outbox log
 *     state_dir/outbox.log, signed with state_dir/outbox.key (made on first use, with its
 *     public half in state_dir/outbox.pub).
 *  3. NextTask until DONE: WAIT sleeps retry_after_ms; TRAIN and EVAL fetch the model, work and
 *     upload (one stderr line per task, one outbox record per message sent, a checkpoint per
 *     round); a FAILED_PRECONDITION (the round moved on) is logged and the loop goes on; an
 *     UNAVAILABLE or DEADLINE_EXCEEDED joins again (with back-off) and goes on; a model whose
 *     downloads were all damaged gives up that task.
 *  4. DONE: when the study is over (Status.done), writes the final global model (fusion, else
 *     image) to state_dir/model.h5, and returns FL_OK.
 * Any other failure is returned with one sentence in err and the last gRPC status in *code
 * (GRPC_STATUS_OK when the failure was local). */
fl_status fl_task_run(fl_client *c, const fl_client_config *cfg, const fl_task_options *o,
                      int *no_plan, grpc_status_code *code, fl_err *err);

#endif
