/* config.c - reads the server's INI file with libinih and checks every key. libinih does the
 * lexing; this file owns the schema: which keys exist, their types, their defaults, and the
 * messages. It does not open any of the files the config names. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "crypto/pki.h"

enum {
    K_LISTEN,
    K_STUDY,
    K_STATE_DIR,
    K_MIN_CLIENTS,
    K_CA,
    K_CERT,
    K_KEY,
    K_INSECURE,
    K_ALLOW,
    K_PLAN,
    K_AUDIT_KEY,
    K_ROUND_TIMEOUT,
    K_JOIN_TIMEOUT,
    K_RETRIES,
};
static const fl_conf_key keys[] = {
    [K_LISTEN] = {"server", "listen"},
    [K_STUDY] = {"server", "study"},
    [K_STATE_DIR] = {"server", "state_dir"},
    [K_MIN_CLIENTS] = {"server", "min_clients"},
    FL_CONF_TLS_KEYS, /* K_CA .. K_INSECURE */
    [K_ALLOW] = {"clients", "allow"},
    [K_PLAN] = {"server", "plan"},
    [K_AUDIT_KEY] = {"server", "audit_key"},
    [K_ROUND_TIMEOUT] = {"server", "round_timeout_s"},
    [K_JOIN_TIMEOUT] = {"server", "join_timeout_s"},
    [K_RETRIES] = {"server", "retries"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* Adds each comma-separated name of value to cfg->allow. */
static int add_allow(fl_server_config *cfg, char *msg, const char *value) {
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t')) end--;
        char name[FL_CONFIG_MAX_ID + 2];
        if (end == 0) return fl_conf_complain(msg, "allow has an empty name");
        snprintf(name, sizeof name, "%.*s", (int)(end < sizeof name ? end : sizeof name - 1), p);
        if (end > FL_CONFIG_MAX_ID || !fl_pki_name_valid(name))
            return fl_conf_complain(
                msg, "allow: '%s' is not a certificate name (1-64 of A-Z a-z 0-9 . _ -)", name);
        if (fl_server_config_allows(cfg, name, end))
            return fl_conf_complain(msg, "allow names '%s' twice", name);
        if (cfg->n_allow == FL_CONFIG_MAX_ALLOW)
            return fl_conf_complain(msg, "allow names more clients than the limit of 4096");
        void *grown = realloc(cfg->allow, (cfg->n_allow + 1) * sizeof cfg->allow[0]);
        if (!grown) return fl_conf_complain(msg, "out of memory");
        cfg->allow = grown;
        memcpy(cfg->allow[cfg->n_allow++], name, end + 1);
        if (p[n] != ',') return 1;
        p += n + 1;
    }
}

/* An integer value in [lo, hi] into *out, or a complaint. */
static int set_int(char *msg, const char *name, const char *value, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi)
        return fl_conf_complain(msg, "%s '%s' is not a number from %ld to %ld", name, value, lo,
                                hi);
    *out = (int)v;
    return 1;
}

static int set_key(void *user, int k, const char *name, const char *value, char *msg) {
    fl_server_config *cfg = user;
    switch (k) {
    case K_PLAN:
        return fl_conf_set_str(msg, name, cfg->plan, sizeof cfg->plan, value);
    case K_AUDIT_KEY:
        return fl_conf_set_str(msg, name, cfg->audit_key, sizeof cfg->audit_key, value);
    case K_ROUND_TIMEOUT:
        return set_int(msg, name, value, 1, 7 * 86400, &cfg->round_timeout_s);
    case K_JOIN_TIMEOUT:
        return set_int(msg, name, value, 0, 30 * 86400, &cfg->join_timeout_s);
    case K_RETRIES:
        return set_int(msg, name, value, 0, 100, &cfg->retries);
    case K_LISTEN:
        if (!strrchr(value, ':'))
            return fl_conf_complain(msg, "listen '%s' is not host:port", value);
        return fl_conf_set_str(msg, name, cfg->listen, sizeof cfg->listen, value);
    case K_STUDY:
        if (!fl_conf_id_valid(value))
            return fl_conf_complain(msg, "study '%s' is not an id (1-64 of A-Z a-z 0-9 . _ -)",
                                    value);
        return fl_conf_set_str(msg, name, cfg->study, sizeof cfg->study, value);
    case K_STATE_DIR:
        return fl_conf_set_str(msg, name, cfg->state_dir, sizeof cfg->state_dir, value);
    case K_MIN_CLIENTS:
        return set_int(msg, name, value, 1, FL_CONFIG_MAX_ALLOW, &cfg->min_clients);
    case K_CA:
    case K_CERT:
    case K_KEY:
    case K_INSECURE:
        return fl_conf_set_tls(&cfg->tls, k - K_CA, name, value, msg);
    default:
        return add_allow(cfg, msg, value);
    }
}

fl_status fl_server_config_load(const char *path, fl_server_config *cfg, fl_err *err) {
    memset(cfg, 0, sizeof *cfg);
    if (strlen(path) >= sizeof cfg->path) return fl_fail(err, FL_EINVAL, "config path too long");
    cfg->min_clients = 1;
    cfg->round_timeout_s = 600;
    cfg->retries = 2;
    fl_conf_schema schema = {keys, N_KEYS, (uint64_t)1 << K_ALLOW, set_key, cfg};
    unsigned seen;
    static const int required[] = {K_LISTEN, K_STUDY,     K_STATE_DIR, K_ALLOW, K_PLAN,
                                   K_CA,     K_AUDIT_KEY, K_CERT,      K_KEY};
    unsigned tls = 1u << K_CA | 1u << K_CERT | 1u << K_KEY | 1u << K_AUDIT_KEY;
    fl_status st = fl_conf_parse(path, &schema, &seen, err);
    if (st == FL_OK)
        st = fl_conf_require(path, &schema, seen, required, cfg->tls.insecure ? 5 : 9, tls, err);
    if (st != FL_OK) goto fail;
    st = FL_EFORMAT;
    if (!fl_conf_resolve_tls(path, &cfg->tls) ||
        !fl_conf_resolve(path, cfg->plan, sizeof cfg->plan) ||
        (cfg->audit_key[0] && !fl_conf_resolve(path, cfg->audit_key, sizeof cfg->audit_key)) ||
        !fl_conf_resolve(path, cfg->state_dir, sizeof cfg->state_dir)) {
        fl_fail(err, st, "%s: a path is too long once made relative to the file", path);
        goto fail;
    }
    memcpy(cfg->path, path, strlen(path) + 1);
    return FL_OK;
fail:
    fl_server_config_destroy(cfg);
    return st;
}

void fl_server_config_destroy(fl_server_config *cfg) {
    free(cfg->allow);
    memset(cfg, 0, sizeof *cfg);
}

int fl_server_config_allows(const fl_server_config *cfg, const char *cn, size_t n) {
    for (size_t i = 0; i < cfg->n_allow; i++)
        if (strlen(cfg->allow[i]) == n && memcmp(cfg->allow[i], cn, n) == 0) return 1;
    return 0;
}
