/* server.h - `fedlung server`: a gRPC C-core server over mutual TLS that identifies each client
 * by its certificate's CN, checks it against the allow-list and the study id, and serves the
 * study (server/study.h): Join, NextTask (a long poll), GetModel (chunks streamed from a
 * shared model version without copies), PutUpdate (chunks added to the running sum one upload
 * at a time, later uploads held back by flow control), PutEval and Status. Every event goes
 * to stderr and the signed audit log. Single-threaded: everything runs on the thread that
 * calls fl_server_run. */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "common/status.h"
#include "server/config.h"
#include "server/study.h"

/* The largest request accepted (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH). */
#define FL_SERVER_MAX_RECV FL_RPC_MAX_MESSAGE

typedef struct fl_server fl_server;

/* Starts a server for cfg (which must outlive it): reads the plan, opens the audit log
 * (state_dir/audit.log, signed with cfg->audit_key; a torn last record is cut and the cut
 * logged), resumes the study from state_dir, then grpc_init, credentials (mTLS with client
 * certificates required and verified against cfg->ca; insecure credentials and a warning when
 * cfg->insecure), binds cfg->listen with SO_REUSEPORT off, and starts. quiet: no stderr event
 * lines. Returns FL_OK with *out owned by the caller (fl_server_free); FL_EIO when a file
 * cannot be read or the address cannot be bound; FL_EFORMAT for a bad plan, audit log or state,
 * or a method table that disagrees with fedlung.proto. */
fl_status fl_server_new(const fl_server_config *cfg, int quiet, fl_server **out, fl_err *err);

/* The port the server listens on (the one in cfg->listen, or the one picked for port 0). */
int fl_server_port(const fl_server *s);

/* Serves the study until it ends (DONE: after every site was told, or a grace period;
 * STOPPED; FAILED) or *stop becomes non-zero (a signal handler sets it), and says which in
 * *end (FL_STUDY_RUNNING when stopped by the signal). Returns FL_OK, or FL_EIO / FL_ENOMEM when
 * gRPC itself fails; a FAILED study returns FL_EIO with its reason. */
fl_status fl_server_run(fl_server *s, volatile sig_atomic_t *stop, fl_study_state *end,
                        fl_err *err);

/* Shuts down in the order gRPC needs and frees s (closing the audit log with a last signed
 * checkpoint). NULL is a no-op. */
void fl_server_free(fl_server *s);

#endif
