/* client.h - `fedlung client`'s network side: a gRPC C-core channel over mutual TLS to the
 * study's server, synchronous unary calls on a pluck completion queue with a deadline, and the
 * first steps of a site's life: Join (with a data summary of counts only) and Status, retried
 * with exponential back-off while the server is unreachable. Not yet here: NextTask, models,
 * training and updates. */
#ifndef FL_CLIENT_H
#define FL_CLIENT_H

#include <grpc/status.h>
#include <stdint.h>

#include "client/config.h"
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

typedef struct fl_client fl_client;

/* Prepares a client for cfg (which must outlive it): checks the method table, grpc_init, reads
 * the TLS files into channel credentials (our key and certificate, the consortium CA as the only
 * root), and the data summary from cfg->cohort if set (counts per class and per modality; no
 * patient data is kept). Returns FL_OK with *out owned by the caller (fl_client_free); FL_EIO
 * when a TLS or cohort file cannot be read; the cohort loader's status for a bad cohort. */
fl_status fl_client_new(const fl_client_config *cfg, fl_client **out, fl_err *err);

/* One unary call of method m on a fresh channel (so every attempt dials anew) with a deadline of
 * timeout_s seconds: sends rq, waits on the pluck queue, returns the final status in *code and,
 * on OK, the unpacked and validated reply in *reply (protobuf_c_message_free_unpacked). Returns
 * FL_OK; on a non-OK status fl_rpc_fail_status's code with "<method>: <CODE>: <details>" in
 * err; FL_EFORMAT for a reply that does not decode. */
fl_status fl_client_call(fl_client *c, fl_rpc_method m, const ProtobufCMessage *rq,
                         double timeout_s, grpc_status_code *code, ProtobufCMessage **reply,
                         fl_err *err);

/* Join, then Status, retried as one step while a call ends UNAVAILABLE or DEADLINE_EXCEEDED:
 * waits r->first_s, doubling to r->max_s, with jitter, at most r->max_attempts attempts. Logs
 * each attempt and its result as one line on stderr. Returns FL_OK with *status owned by the
 * caller (protobuf_c_message_free_unpacked); any other status is final (PERMISSION_DENIED,
 * FAILED_PRECONDITION, UNAUTHENTICATED, ...) with one sentence in err, or the last
 * UNAVAILABLE once the attempts are spent; *final_code is the last gRPC status. */
fl_status fl_client_join(fl_client *c, const fl_client_retry *r, Fedlung__V1__StatusReply **status,
                         grpc_status_code *final_code, fl_err *err);

/* Frees the credentials and what else c holds, then grpc_shutdown. NULL is a no-op. */
void fl_client_free(fl_client *c);

#endif
