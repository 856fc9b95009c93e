/* config.h - the `fedlung server` configuration file: an INI file (libinih) with [server],
 * [tls] and [clients] sections, checked strictly (an unknown key, a bad value or a missing
 * required key is an error naming the file and line). It is not the study plan. */
#ifndef FL_SERVER_CONFIG_H
#define FL_SERVER_CONFIG_H

#include <stddef.h>

#include "common/conf.h"
#include "common/status.h"

#define FL_CONFIG_MAX_PATH 4096
#define FL_CONFIG_MAX_ID 64 /* a study id or a client CN: 1-64 of A-Z a-z 0-9 . _ - */
#define FL_CONFIG_MAX_ALLOW 4096

typedef struct {
    /* [server] */
    char listen[256];                   /* "127.0.0.1:50051": host:port for gRPC */
    char study[FL_CONFIG_MAX_ID + 1];   /* the one study this server runs */
    char state_dir[FL_CONFIG_MAX_PATH]; /* checkpoints, journal, audit log */
    int min_clients;                    /* joined clients needed before round 1 (>= 1), and
                                           updates needed to aggregate a round */
    char plan[FL_CONFIG_MAX_PATH];      /* the study plan (fed/plan.h) */
    char audit_key[FL_CONFIG_MAX_PATH]; /* Ed25519 key signing the audit log ("" if insecure) */
    int round_timeout_s;                /* deadline of a training or evaluation step (600) */
    int join_timeout_s;                 /* wait for min_clients before round 1; 0 = forever */
    int retries;                        /* re-runs of a round that ended below min_clients (2) */
    fl_conf_tls tls;                    /* [tls] */
    /* [clients] */
    char (*allow)[FL_CONFIG_MAX_ID + 1]; /* the CNs allowed to join, n_allow of them (heap) */
    size_t n_allow;
    char path[FL_CONFIG_MAX_PATH]; /* the file this was read from, for messages */
} fl_server_config;

/* Reads the file at path into *cfg (which the caller then owns: fl_server_config_destroy).
 * Keys: [server] listen, study, state_dir, plan (required), min_clients (default 1),
 * round_timeout_s (600), join_timeout_s (0), retries (2), audit_key (required unless insecure;
 * without it under insecure the audit log is not signed); [tls] ca, cert, key (required unless
 * insecure), insecure (true/false, default false); [clients] allow (comma-separated CNs; may be
 * repeated, the lists add up; at least one name). Relative paths (tls, plan, audit_key,
 * state_dir) are taken relative to the config file's folder. Lines hold at most 199 characters
 * (libinih's limit). Returns FL_OK; FL_EIO when the file cannot be read; FL_EFORMAT with
 * "<file>:<line>: <what is wrong>" (or "<file>: no [server] study" for a missing key). On
 * failure *cfg holds nothing to free. */
fl_status fl_server_config_load(const char *path, fl_server_config *cfg, fl_err *err);

/* Frees what cfg holds and zeroes it; a zeroed cfg is fine. */
void fl_server_config_destroy(fl_server_config *cfg);

/* 1 if the n bytes at cn are exactly one of the allowed names, else 0. */
int fl_server_config_allows(const fl_server_config *cfg, const char *cn, size_t n);

#endif
