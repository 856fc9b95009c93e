/* config.h - the `fedlung client` configuration file of one hospital: an INI file (libinih)
 * with [client], [tls] and [data] sections, checked strictly like the server's (an unknown key,
 * a bad value or a missing required key is an error naming the file and line). */
#ifndef FL_CLIENT_CONFIG_H
#define FL_CLIENT_CONFIG_H

#include "common/conf.h"
#include "common/status.h"
#include "nn/backend.h"

#define FL_CLIENT_MAX_ID 64      /* a study id or a CN: 1-64 of A-Z a-z 0-9 . _ - */
#define FL_CLIENT_MAX_APPROVE 64 /* [client] approve lines */

typedef struct {
    /* [client] */
    char server[256];                 /* "fl.example.org:50051": host:port to dial */
    char study[FL_CLIENT_MAX_ID + 1]; /* the study this hospital takes part in */
    char name[FL_CLIENT_MAX_ID + 1];  /* our certificate's CN (informational with TLS;
                                         the fedlung-client-id under insecure), or "" */
    char state_dir[FL_CONF_MAX_PATH]; /* the client's own state: outbox log and key, model */
    int n_approve;                    /* plan hashes this hospital's officer approved */
    unsigned char approve[FL_CLIENT_MAX_APPROVE][32];
    int threads;            /* engine threads for local work (0 = all cores) */
    char device[16];        /* where local work computes: "cpu" (default), "cuda" or "cuda:N" */
    fl_precision precision; /* on cuda: FL_PREC_FP32 (default), TF32 or BF16 */
    fl_conf_tls tls;        /* [tls] */
    /* [data] */
    char cohort[FL_CONF_MAX_PATH]; /* the site's cohort file (HDF5), or "" (Join only) */
    char path[FL_CONF_MAX_PATH];   /* the file this was read from, for messages */
    /* [privacy] (the hospital's privacy officer decides these, not the plan): epsilon_max is
     * the cap on the epsilon of all this site's DP rounds (0 = not set); delta the officer's
     * delta (default 1e-5), which a plan's must not exceed */
    double epsilon_max;
    double delta;
} fl_client_config;

/* Reads the file at path into *cfg. Keys: [client] server, study, state_dir (required), name
 * (required when insecure), approve (64 hex digits: the SHA-256 of a study plan; repeatable, at
 * most FL_CLIENT_MAX_APPROVE), threads (>= 0, default 0), device (cpu, cuda or cuda:N; default
 * cpu), precision (fp32, tf32 or bf16; default fp32; not fp32 needs a cuda device); [tls] ca, cert,
 * key (required unless insecure), insecure (true/false, default false); [data] cohort (optional:
 * without it the client only joins; the task loop needs it); [privacy] epsilon_max (> 0; the task
 * loop needs it for a plan with differential privacy), delta (in (0, 1), default 1e-5). Relative
 * tls, data and state_dir paths are taken relative to the config file's folder. Returns FL_OK;
 * FL_EIO when the file cannot be read; FL_EFORMAT with "<file>:<line>: <what is wrong>" or "<file>:
 * [client] study is missing". Holds no heap memory: there is nothing to destroy. */
fl_status fl_client_config_load(const char *path, fl_client_config *cfg, fl_err *err);

#endif
