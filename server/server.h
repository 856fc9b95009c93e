/* server.h - `fedlung server`'s network side: a gRPC C-core server over mutual TLS that
 * identifies each client by its certificate's CN, checks it against the allow-list and the
 * study id, and answers Join and Status. Single-threaded: handlers run on the thread that calls
 * fl_server_run. Not yet here: rounds, tasks, models and updates (NextTask, GetModel, PutUpdate
 * and PutEval answer UNIMPLEMENTED). */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include <grpc/status.h>
#include <signal.h>
#include <stdint.h>

#include "common/status.h"
#include "server/config.h"

/* The largest request accepted (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH), and JoinReply's
 * max_message_bytes. */
#define FL_SERVER_MAX_RECV (8u << 20)

/* What happened to a call, for the log and (next) the audit log. */
typedef enum {
    FL_SERVER_EV_START,   /* the server listens: detail says where and how */
    FL_SERVER_EV_WARNING, /* something the operator must see (insecure = true) */
    FL_SERVER_EV_JOIN,    /* a client joined (or joined again) */
    FL_SERVER_EV_REFUSED, /* a call was refused: code and detail say why */
    FL_SERVER_EV_STOP,    /* the server shuts down */
} fl_server_event_kind;

typedef struct {
    fl_server_event_kind kind;
    int64_t unix_ms;       /* when */
    const char *client;    /* the caller's identity (certificate CN), "" if unknown */
    const char *method;    /* "Join", "Status", ... or "" */
    grpc_status_code code; /* the status answered (OK for START, JOIN, STOP) */
    const char *detail;    /* one sentence: the refusal's reason, or what was recorded */
} fl_server_event;

/* Receives every event, on the server's thread, before the call is answered. The default
 * (sink NULL) writes one line per event to stderr; the audit log will be a sink. */
typedef void (*fl_server_sink)(void *user, const fl_server_event *ev);

/* Writes ev as one line to stderr ("fedlung server: JOIN hospital-a Join: ..."). */
void fl_server_log_event(void *user, const fl_server_event *ev);

typedef struct fl_server fl_server;

/* Starts a server for cfg (which must outlive it): grpc_init, credentials (mTLS with client
 * certificates required and verified against cfg->ca; insecure credentials and a warning on
 * stderr when cfg->insecure), binds cfg->listen with SO_REUSEPORT off and an 8 MiB receive
 * limit, and starts it. sink may be NULL (fl_server_log_event). Returns FL_OK with *out owned by
 * the caller (fl_server_free); FL_EIO when a TLS file cannot be read or the address cannot be
 * bound; FL_EFORMAT when the method table disagrees with fedlung.proto. */
fl_status fl_server_new(const fl_server_config *cfg, fl_server_sink sink, void *user,
                        fl_server **out, fl_err *err);

/* The port the server listens on (the one in cfg->listen, or the one picked for port 0). */
int fl_server_port(const fl_server *s);

/* Serves calls until *stop becomes non-zero (a signal handler sets it; it is polled every
 * 200 ms), then returns FL_OK. FL_EIO if the completion queue shuts down unexpectedly,
 * FL_ENOMEM if no further call can be accepted (out of memory). */
fl_status fl_server_run(fl_server *s, volatile sig_atomic_t *stop, fl_err *err);

/* Shuts down in the order gRPC needs (shutdown and notify, cancel all calls, drain, destroy the
 * server, shut down and drain the queue, grpc_shutdown) and frees s. NULL is a no-op. */
void fl_server_free(fl_server *s);

#endif
