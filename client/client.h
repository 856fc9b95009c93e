/* client.h - `fedlung client`'s network side: a gRPC C-core channel over mutual TLS to the
 * study's server, calls on a pluck completion queue with a deadline (unary here; the streaming
 * transfers of client/transfer.c build on the same call helpers), and Join (with the approved
 * plan hashes and a data summary of counts only) and Status, retried with exponential back-off
 * while the server is unreachable. Not here: the task loop (client/task.c), models, training. */
#ifndef FL_CLIENT_H
#define FL_CLIENT_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <stdint.h>

#include "client/config.h"
#include "client/site.h"
#include "common/rng.h"
#include "common/status.h"
#include "proto/rpc.h"

/* Back-off between attempts while the server answers UNAVAILABLE (or does not answer). */
typedef struct {
    int max_attempts;      /* 0: no limit */
    double first_s;        /* the first wait (1 s) */
    double max_s;          /* waits double up to this (30 s) */
    uint64_t seed;         /* the jitter's RNG: each wait is scaled by a factor in [0.8, 1.2) */
    double call_timeout_s; /* deadline of each call */
} fl_client_retry;

/* The defaults: unlimited attempts, 1 s doubling to 30 s, 20 s per call, seed 0. */
fl_client_retry fl_client_retry_default(void);

/* The waits of one series of attempts under r. */
typedef struct {
    const fl_client_retry *r;
    fl_rng rng;  /* the jitter, seeded with r->seed */
    double wait; /* the next wait before jitter */
} fl_client_backoff;
void fl_client_backoff_init(fl_client_backoff *b, const fl_client_retry *r);
/* The next wait in seconds (jittered; the one after doubles, up to r->max_s). */
double fl_client_backoff_next(fl_client_backoff *b);

typedef struct fl_client fl_client;

/* One line on stderr: "<UTC time with ms>Z fedlung client: <message>". */
void fl_client_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sleeps s seconds (nothing for s <= 0), resuming after signals. */
void fl_client_sleep(double s);

/* Prepares a client for cfg (which must outlive it): checks the method table, grpc_init, reads
 * the TLS files into channel credentials (our key and certificate, the consortium CA as the only
 * root), and the data summary from cfg->cohort if set (counts per class and per modality, the
 * feature counts and the SHA-256 of the feature names; no patient data is kept). Returns FL_OK
 * with *out owned by the caller (fl_client_free); FL_EIO when a TLS or cohort file cannot be
 * read; the cohort loader's status for a bad cohort. */
fl_status fl_client_new(const fl_client_config *cfg, fl_client **out, fl_err *err);

/* Replaces the data summary sent by later Joins with s (from fl_site_summarize; the class
 * names stay the cohort's). Returns 1 if it differs from the one held before, else 0. */
int fl_client_set_summary(fl_client *c, const fl_site_summary *s);

/* The privacy budget later Joins declare (JoinRequest.budget): the officer's cap, what this
 * hospital's accountant says it spent, and delta. Counts only what the hospital already logs. */
void fl_client_set_budget(fl_client *c, double epsilon_max, double epsilon_spent, double delta);

/* One call in progress on its own channel (so every attempt dials anew) and pluck queue, with
 * what its final status brings. */
typedef struct {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata md; /* fedlung-client-id, sent under insecure only */
    int n_md;
    grpc_metadata_array init_md, trailing_md;
    grpc_status_code code; /* the final status, once a RECV_STATUS_ON_CLIENT op completed */
    grpc_slice details;
    const char *error_string;
} fl_client_rpc;

/* Opens a call of method m with a deadline of timeout_s seconds from now, on a fresh channel
 * whose receive and send limits are FL_RPC_MAX_MESSAGE. Close it with fl_client_rpc_close. */
void fl_client_rpc_open(fl_client *c, fl_rpc_method m, double timeout_s, fl_client_rpc *r);
/* The ops every call needs, pointing into r: SEND_INITIAL_METADATA (the client id under
 * insecure), RECV_INITIAL_METADATA, RECV_STATUS_ON_CLIENT (into r->code and r->details). */
grpc_op fl_client_rpc_send_md(fl_client_rpc *r);
grpc_op fl_client_rpc_recv_md(fl_client_rpc *r);
grpc_op fl_client_rpc_recv_status(fl_client_rpc *r);
/* Starts a batch of n ops and waits for it (at most until the call's deadline). Returns 1 when
 * it completed with success, 0 when it completed without (the call is over: collect the
 * status), -1 when gRPC refused to start it. */
int fl_client_rpc_run(fl_client_rpc *r, const grpc_op *ops, size_t n);
/* The call's final status as fl_status, with "<method>: <CODE>: <details>" in err unless OK. */
fl_status fl_client_rpc_result(const fl_client_rpc *r, fl_rpc_method m, fl_err *err);
/* Unrefs the call, destroys the channel and drains and destroys the queue. */
void fl_client_rpc_close(fl_client_rpc *r);

/* One unary call of method m with a deadline of timeout_s seconds: sends rq, returns the final
 * status in *code and, on OK, the unpacked and validated reply in *reply
 * (protobuf_c_message_free_unpacked). Returns FL_OK; on a non-OK status fl_rpc_fail_status's
 * code with "<method>: <CODE>: <details>" in err; FL_EFORMAT for a reply that does not decode. */
fl_status fl_client_call(fl_client *c, fl_rpc_method m, const ProtobufCMessage *rq,
                         double timeout_s, grpc_status_code *code, ProtobufCMessage **reply,
                         fl_err *err);

/* Join (with cfg's approved plan hashes and the data summary, if any), then Status unless status
 * is NULL, retried as one step while a call ends UNAVAILABLE or DEADLINE_EXCEEDED: waits
 * r->first_s, doubling to r->max_s, with jitter, at most r->max_attempts attempts. Logs each
 * attempt and its result as one line on stderr. Returns FL_OK with *joined (if non-NULL) and
 * *status (if non-NULL) owned by the caller (protobuf_c_message_free_unpacked); any other status
 * is final (PERMISSION_DENIED, FAILED_PRECONDITION, UNAUTHENTICATED, ...) with one sentence in
 * err, or the last UNAVAILABLE once the attempts are spent; *final_code is the last gRPC
 * status. */
fl_status fl_client_join(fl_client *c, const fl_client_retry *r, Fedlung__V1__JoinReply **joined,
                         Fedlung__V1__StatusReply **status, grpc_status_code *final_code,
                         fl_err *err);

/* Frees the credentials and what else c holds, then grpc_shutdown. NULL is a no-op. */
void fl_client_free(fl_client *c);

#endif
