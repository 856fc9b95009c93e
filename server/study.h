/* study.h - one study's round state machine on the server: who joined, which phase and round
 * it is, which step (training, evaluation), the deadlines, the stragglers and retries, the
 * aggregation of updates as they stream in, federated evaluation from score histograms, the
 * commit of each round (server/state.h) and the audit records (server/slog.h). The gRPC side
 * (server.c) calls these functions with decoded, validated requests and sends what they pack;
 * nothing here touches a call. Single-threaded: every function runs on the server's thread
 * (fl_snapshot_unref excepted). */
#ifndef FL_STUDY_H
#define FL_STUDY_H

#include <grpc/byte_buffer.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fed/plan.h"
#include "proto/rpc.h"
#include "server/config.h"
#include "server/slog.h"

/* One version of a global model: immutable bytes that downloads in flight share. Each chunk
 * slice holds a reference until gRPC releases it (on any thread). */
typedef struct {
    atomic_int refs;
    uint64_t version;
    fl_phase phase;
    size_t n_params, n_buffers;
    uint8_t sha256[32];
    float *data; /* n_params + n_buffers floats, little-endian on the wire */
} fl_snapshot;

void fl_snapshot_ref(fl_snapshot *m);
/* Drops a reference; the last frees it. NULL is a no-op. Thread-safe. */
void fl_snapshot_unref(fl_snapshot *m);
/* The signature of a slice release callback: fl_snapshot_unref(user). */
void fl_snapshot_release(void *user);

typedef struct fl_study fl_study;

typedef enum {
    FL_STUDY_RUNNING = 0,
    FL_STUDY_DONE = 1,    /* every phase committed: `fedlung server` exits 0 */
    FL_STUDY_STOPPED = 2, /* too few clients after the retries, or the join timeout: exit 3 */
    FL_STUDY_FAILED = 3,  /* the disk or the audit log failed: exit 1 */
} fl_study_state;

/* Opens the study of cfg with plan p (both must outlive it): reads the committed state from
 * cfg->state_dir and resumes after the last committed round (recorded as "resume"), or starts
 * from the beginning. Returns FL_OK or the state files' error. */
fl_status fl_study_open(fl_study **out, const fl_server_config *cfg, const fl_plan *p, fl_slog *log,
                        fl_err *err);
void fl_study_free(fl_study *s);

/* Moves the study on at time now (ms): starts round 1 once min_clients joined, ends a step
 * whose participants are all done or whose deadline passed (dropping the stragglers, retrying
 * or stopping a round below the minimum), aggregates, commits. Returns the state; the reason of
 * DONE / STOPPED / FAILED is fl_study_reason. */
fl_study_state fl_study_tick(fl_study *s, int64_t now);
const char *fl_study_reason(const fl_study *s);
/* 1 when every joined site has been answered DONE (the server may stop). */
int fl_study_all_told(const fl_study *s);
/* A counter that changes whenever a held NextTask might now get an answer. */
uint64_t fl_study_epoch(const fl_study *s);

/* The handlers. Each returns the gRPC status (st has the sentence); on OK *reply is the packed
 * answer (the caller sends and destroys it). id is the caller's verified identity. */
grpc_status_code fl_study_join(fl_study *s, const char *id, const Fedlung__V1__JoinRequest *rq,
                               grpc_byte_buffer **reply, fl_rpc_status *st);
/* NextTask: returns 1 when answered (a task, or an error in st), 0 when there is nothing yet and
 * the call should be held (ask again when fl_study_epoch changes); with expired = 1 it answers
 * WAIT instead of holding. */
int fl_study_next_task(fl_study *s, const char *id, const Fedlung__V1__TaskRequest *rq, int expired,
                       grpc_byte_buffer **reply, fl_rpc_status *st);
/* GetModel: on OK *snap is a new reference to the model asked for (the caller streams it from
 * rq->offset and drops the reference when the last chunk was released). */
grpc_status_code fl_study_get_model(fl_study *s, const char *id,
                                    const Fedlung__V1__ModelRequest *rq, fl_snapshot **snap,
                                    fl_rpc_status *st);
/* PutUpdate, one at a time: begin with the header (FAILED_PRECONDITION for a stale round, a
 * client without a training task or one whose update is in, a wrong version or size), chunks in
 * order, then end (accepts it only if the length and SHA-256 match and cancelled is 0: the
 * Receipt in *reply) or abort. fl_study_update_busy says whether an upload is staged. */
int fl_study_update_busy(const fl_study *s);
grpc_status_code fl_study_update_begin(fl_study *s, const char *id,
                                       const Fedlung__V1__UpdateHeader *h, fl_rpc_status *st);
grpc_status_code fl_study_update_chunk(fl_study *s, const char *id, uint64_t offset,
                                       const uint8_t *data, size_t len, fl_rpc_status *st);
grpc_status_code fl_study_update_end(fl_study *s, const char *id, int cancelled,
                                     grpc_byte_buffer **reply, fl_rpc_status *st);
/* Drops the staged upload of id (if it is the one staged), recording why. */
void fl_study_update_abort(fl_study *s, const char *id, const char *why);
/* PutEval: len and sha256 are those of the report's bytes as received (recorded, and echoed in
 * the receipt). */
grpc_status_code fl_study_put_eval(fl_study *s, const char *id, const Fedlung__V1__EvalReport *rq,
                                   uint64_t len, const uint8_t sha256[32], grpc_byte_buffer **reply,
                                   fl_rpc_status *st);
/* Whether an EvalReport's form (proto/rpc.c validated it) is the one plan p asks for: noised,
 * with the plan's noise multiplier, under a DP plan with eval_noise_multiplier > 0; exact
 * otherwise. Returns 1, or 0 with one sentence in why (cap bytes). */
int fl_study_eval_form_ok(const fl_plan *p, const Fedlung__V1__EvalReport *rq, char *why,
                          size_t cap);
grpc_status_code fl_study_status(fl_study *s, grpc_byte_buffer **reply, fl_rpc_status *st);
/* Secure aggregation (server/study_secagg.c): a site's key advert, its sealed key shares and
 * its unmask answer, each for the step of the round that holds its task (FAILED_PRECONDITION
 * otherwise; INVALID_ARGUMENT for what the protocol refuses: that site then counts as dropped
 * at the step's deadline). len and sha256 are the request's bytes as received (recorded and
 * echoed in the Receipt, as PutEval's). On OK *reply is a Receipt. An advert is accepted only
 * when its certificate is the TLS peer's (peer_pem, peer_len bytes of PEM: the same CN and key;
 * NULL under insecure, where it is not checked), chains to the server's CA as a client's with
 * CN id, and signed it; the SHA-256 of that certificate goes into the advert's record. */
grpc_status_code fl_study_advertise_keys(fl_study *s, const char *id, const char *peer_pem,
                                         size_t peer_len, const Fedlung__V1__SecAggAdvert *rq,
                                         uint64_t len, const uint8_t sha256[32],
                                         grpc_byte_buffer **reply, fl_rpc_status *st);
grpc_status_code fl_study_share_keys(fl_study *s, const char *id,
                                     const Fedlung__V1__SecAggShares *rq, uint64_t len,
                                     const uint8_t sha256[32], grpc_byte_buffer **reply,
                                     fl_rpc_status *st);
grpc_status_code fl_study_unmask(fl_study *s, const char *id,
                                 const Fedlung__V1__SecAggUnmaskReply *rq, uint64_t len,
                                 const uint8_t sha256[32], grpc_byte_buffer **reply,
                                 fl_rpc_status *st);

#endif
