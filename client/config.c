/* config.c - the schema of the client's INI file: its keys, their checks and defaults. The
 * lexing is libinih's, the shared value parsers are common/conf.c's. Opens none of the files
 * the config names. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "crypto/hash.h"

enum {
    K_SERVER,
    K_STUDY,
    K_NAME,
    K_STATE_DIR,
    K_CA,
    K_CERT,
    K_KEY,
    K_INSECURE,
    K_COHORT,
    K_APPROVE,
    K_THREADS,
    K_DEVICE,
    K_PRECISION,
    K_EPSILON_MAX,
    K_DELTA
};
static const fl_conf_key keys[] = {
    [K_SERVER] = {"client", "server"},
    [K_STUDY] = {"client", "study"},
    [K_NAME] = {"client", "name"},
    [K_STATE_DIR] = {"client", "state_dir"},
    FL_CONF_TLS_KEYS, /* K_CA .. K_INSECURE */
    [K_COHORT] = {"data", "cohort"},
    [K_APPROVE] = {"client", "approve"},
    [K_THREADS] = {"client", "threads"},
    [K_DEVICE] = {"client", "device"},
    [K_PRECISION] = {"client", "precision"},
    [K_EPSILON_MAX] = {"privacy", "epsilon_max"},
    [K_DELTA] = {"privacy", "delta"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

static int set_key(void *user, int k, const char *name, const char *value, char *msg) {
    fl_client_config *cfg = user;
    switch (k) {
    case K_SERVER:
        if (!strrchr(value, ':'))
            return fl_conf_complain(msg, "server '%s' is not host:port", value);
        return fl_conf_set_str(msg, name, cfg->server, sizeof cfg->server, value);
    case K_STUDY:
    case K_NAME:
        if (!fl_conf_id_valid(value))
            return fl_conf_complain(msg, "%s '%s' is not an id (1-64 of A-Z a-z 0-9 . _ -)", name,
                                    value);
        return k == K_STUDY ? fl_conf_set_str(msg, name, cfg->study, sizeof cfg->study, value)
                            : fl_conf_set_str(msg, name, cfg->name, sizeof cfg->name, value);
    case K_STATE_DIR:
        return fl_conf_set_str(msg, name, cfg->state_dir, sizeof cfg->state_dir, value);
    case K_CA:
    case K_CERT:
    case K_KEY:
    case K_INSECURE:
        return fl_conf_set_tls(&cfg->tls, k - K_CA, name, value, msg);
    case K_APPROVE:
        if (cfg->n_approve == FL_CLIENT_MAX_APPROVE)
            return fl_conf_complain(msg, "more than %d approve lines", FL_CLIENT_MAX_APPROVE);
        if (strlen(value) != 64 || fl_hex_decode(value, cfg->approve[cfg->n_approve], 32) != FL_OK)
            return fl_conf_complain(msg, "approve '%s' is not a plan hash (64 hex digits)", value);
        cfg->n_approve++;
        return 1;
    case K_THREADS: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 0 || v > 4096)
            return fl_conf_complain(msg, "threads '%s' is not a number from 0 to 4096", value);
        cfg->threads = (int)v;
        return 1;
    }
    case K_DEVICE: {
        /* The name only: whether that GPU can start is the client's to find out at start. */
        size_t digits = strncmp(value, "cuda:", 5) == 0 ? strspn(value + 5, "0123456789") : 0;
        int ordinal = digits >= 1 && digits <= 4 && value[5 + digits] == '\0';
        if (strcmp(value, "cpu") != 0 && strcmp(value, "cuda") != 0 && !ordinal)
            return fl_conf_complain(msg, "device '%s' is not cpu, cuda or cuda:N", value);
        return fl_conf_set_str(msg, name, cfg->device, sizeof cfg->device, value);
    }
    case K_PRECISION: {
        static const char *const names[] = {"fp32", "tf32", "bf16"}; /* by fl_precision */
        for (int p = 0; p < 3; p++)
            if (strcmp(value, names[p]) == 0) {
                cfg->precision = (fl_precision)p;
                return 1;
            }
        return fl_conf_complain(msg, "precision '%s' is not fp32, tf32 or bf16", value);
    }
    case K_EPSILON_MAX:
    case K_DELTA: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        int eps = k == K_EPSILON_MAX;
        if (errno || end == value || *end || !isfinite(v) || !(v > 0) || (!eps && !(v < 1)))
            return fl_conf_complain(msg, "%s '%s' is not a number %s", name, value,
                                    eps ? "> 0" : "in (0, 1)");
        *(eps ? &cfg->epsilon_max : &cfg->delta) = v;
        return 1;
    }
    default:
        return fl_conf_set_str(msg, name, cfg->cohort, sizeof cfg->cohort, value);
    }
}

fl_status fl_client_config_load(const char *path, fl_client_config *cfg, fl_err *err) {
    memset(cfg, 0, sizeof *cfg);
    if (strlen(path) >= sizeof cfg->path) return fl_fail(err, FL_EINVAL, "config path too long");
    cfg->delta = 1e-5;
    fl_conf_schema schema = {keys, N_KEYS, (uint64_t)1 << K_APPROVE, set_key, cfg};
    unsigned seen;
    static const int required[] = {K_SERVER, K_STUDY, K_STATE_DIR, K_CA, K_CERT, K_KEY};
    unsigned tls = 1u << K_CA | 1u << K_CERT | 1u << K_KEY;
    fl_status st = fl_conf_parse(path, &schema, &seen, err);
    if (st == FL_OK)
        st = fl_conf_require(path, &schema, seen, required, cfg->tls.insecure ? 3 : 6, tls, err);
    if (st != FL_OK) goto fail;
    st = FL_EFORMAT;
    if (!cfg->device[0]) memcpy(cfg->device, "cpu", 4);
    if (cfg->precision != FL_PREC_FP32 && strcmp(cfg->device, "cpu") == 0) {
        fl_fail(err, st, "%s: [client] precision other than fp32 needs device = cuda", path);
        goto fail;
    }
    if (cfg->tls.insecure && !cfg->name[0]) {
        fl_fail(err, st, "%s: [client] name is missing (insecure mode names the client by it)",
                path);
        goto fail;
    }
    if (!fl_conf_resolve_tls(path, &cfg->tls) ||
        !fl_conf_resolve(path, cfg->cohort, sizeof cfg->cohort) ||
        !fl_conf_resolve(path, cfg->state_dir, sizeof cfg->state_dir)) {
        fl_fail(err, st, "%s: a path is too long once made relative to the file", path);
        goto fail;
    }
    memcpy(cfg->path, path, strlen(path) + 1);
    return FL_OK;
fail:
    memset(cfg, 0, sizeof *cfg);
    return st;
}
