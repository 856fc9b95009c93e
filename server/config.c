/* config.c - reads the server's INI file with libinih and checks every key. libinih does the
 * lexing; this file owns the schema: which keys exist, their types, their defaults, and the
 * messages. It does not open any of the files the config names. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/pki.h"

#define MAX_FILE (1 << 20)
/* Debian's libinih is built with INI_MAX_LINE 200: a longer line would be split silently. */
#define MAX_LINE 199

typedef struct {
    fl_server_config *cfg;
    char msg[FL_ERR_LEN]; /* the first complaint; ini_parse_string returns its line */
    unsigned seen;        /* bit per key in keys[] */
} parse_state;

enum { K_LISTEN, K_STUDY, K_STATE_DIR, K_MIN_CLIENTS, K_CA, K_CERT, K_KEY, K_INSECURE, K_ALLOW };
static const struct {
    const char *section, *name;
} keys[] = {
    [K_LISTEN] = {"server", "listen"},
    [K_STUDY] = {"server", "study"},
    [K_STATE_DIR] = {"server", "state_dir"},
    [K_MIN_CLIENTS] = {"server", "min_clients"},
    [K_CA] = {"tls", "ca"},
    [K_CERT] = {"tls", "cert"},
    [K_KEY] = {"tls", "key"},
    [K_INSECURE] = {"tls", "insecure"},
    [K_ALLOW] = {"clients", "allow"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* Records the first complaint; returns 0, libinih's "this line is wrong". */
__attribute__((format(printf, 2, 3))) static int complain(parse_state *ps, const char *fmt, ...) {
    va_list ap;
    if (ps->msg[0]) return 0;
    va_start(ap, fmt);
    vsnprintf(ps->msg, sizeof ps->msg, fmt, ap);
    va_end(ap);
    return 0;
}

/* Copies value into dst (cap bytes) or complains that it is too long. */
static int set_str(parse_state *ps, const char *name, char *dst, size_t cap, const char *value) {
    size_t n = strlen(value);
    if (n == 0) return complain(ps, "%s is empty", name);
    if (n >= cap) return complain(ps, "%s is longer than the limit", name);
    memcpy(dst, value, n + 1);
    return 1;
}

static int study_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FL_CONFIG_MAX_ID) return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Adds each comma-separated name of value to cfg->allow. */
static int add_allow(parse_state *ps, const char *value) {
    fl_server_config *cfg = ps->cfg;
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t')) end--;
        char name[FL_CONFIG_MAX_ID + 2];
        if (end == 0) return complain(ps, "allow has an empty name");
        snprintf(name, sizeof name, "%.*s", (int)(end < sizeof name ? end : sizeof name - 1), p);
        if (end > FL_CONFIG_MAX_ID || !fl_pki_name_valid(name))
            return complain(ps, "allow: '%s' is not a certificate name (1-64 of A-Z a-z 0-9 . _ -)",
                            name);
        if (fl_server_config_allows(cfg, name, end))
            return complain(ps, "allow names '%s' twice", name);
        if (cfg->n_allow == FL_CONFIG_MAX_ALLOW)
            return complain(ps, "allow names more clients than the limit of 4096");
        void *grown = realloc(cfg->allow, (cfg->n_allow + 1) * sizeof cfg->allow[0]);
        if (!grown) return complain(ps, "out of memory");
        cfg->allow = grown;
        memcpy(cfg->allow[cfg->n_allow++], name, end + 1);
        if (p[n] != ',') return 1;
        p += n + 1;
    }
}

static int on_entry(void *user, const char *section, const char *name, const char *value) {
    parse_state *ps = user;
    fl_server_config *cfg = ps->cfg;
    if (ps->msg[0]) return 0; /* report the first problem only */
    int k = 0;
    while (k < N_KEYS &&
           !(strcmp(keys[k].section, section) == 0 && strcmp(keys[k].name, name) == 0))
        k++;
    if (k == N_KEYS) return complain(ps, "unknown key '%s' in [%s]", name, section);
    if ((ps->seen & (1u << k)) && k != K_ALLOW)
        return complain(ps, "%s is set twice in [%s]", name, section);
    ps->seen |= 1u << k;
    if (strstr(value, " #") || strstr(value, "\t#"))
        return complain(ps, "%s: a comment after a value starts with ' ;', not '#'", name);
    switch (k) {
    case K_LISTEN:
        if (!strrchr(value, ':')) return complain(ps, "listen '%s' is not host:port", value);
        return set_str(ps, name, cfg->listen, sizeof cfg->listen, value);
    case K_STUDY:
        if (!study_valid(value))
            return complain(ps, "study '%s' is not an id (1-64 of A-Z a-z 0-9 . _ -)", value);
        return set_str(ps, name, cfg->study, sizeof cfg->study, value);
    case K_STATE_DIR:
        return set_str(ps, name, cfg->state_dir, sizeof cfg->state_dir, value);
    case K_MIN_CLIENTS: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 1 || v > FL_CONFIG_MAX_ALLOW)
            return complain(ps, "min_clients '%s' is not a number from 1 to 4096", value);
        cfg->min_clients = (int)v;
        return 1;
    }
    case K_CA:
        return set_str(ps, name, cfg->ca, sizeof cfg->ca, value);
    case K_CERT:
        return set_str(ps, name, cfg->cert, sizeof cfg->cert, value);
    case K_KEY:
        return set_str(ps, name, cfg->key, sizeof cfg->key, value);
    case K_INSECURE:
        if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
            strcasecmp(value, "yes") == 0)
            cfg->insecure = 1;
        else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                 strcasecmp(value, "no") == 0)
            cfg->insecure = 0;
        else
            return complain(ps, "insecure '%s' is not true or false", value);
        return 1;
    default:
        return add_allow(ps, value);
    }
}

/* libinih reports a line it cannot parse only by its number: find those first, with a reason,
 * and refuse lines too long for it. Returns 0 or the first bad line's number (1-based). */
static int precheck(const char *text, const char **why) {
    int line = 0;
    for (const char *p = text; *p;) {
        line++;
        size_t n = strcspn(p, "\n");
        const char *s = p;
        while (s < p + n && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        size_t rest = (size_t)(p + n - s);
        if (n > MAX_LINE) {
            *why = "line longer than 199 characters (split a long allow list over several lines)";
            return line;
        }
        if (rest > 0 && *s != '#' && *s != ';') {
            if (*s == '[' ? !memchr(s, ']', rest) : !memchr(s, '=', rest)) {
                *why = *s == '[' ? "section header without ']'" : "expected key = value";
                return line;
            }
        }
        p += n + (p[n] == '\n');
    }
    return 0;
}

char *fl_config_read_text(const char *path, size_t limit, fl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fl_fail(err, FL_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(limit + 1);
    size_t n = buf ? fread(buf, 1, limit + 1, f) : 0;
    int bad = !buf || ferror(f) || n > limit || memchr(buf, 0, n);
    fclose(f);
    if (bad) {
        fl_fail(err, FL_EIO, "%s: %s", path,
                !buf        ? "out of memory"
                : n > limit ? "larger than expected for this file"
                            : "cannot be read as text");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* Makes a relative path in dst (cap bytes) relative to the config file's folder. */
static int resolve(const char *config_path, char *dst, size_t cap) {
    const char *slash = strrchr(config_path, '/');
    if (!dst[0] || dst[0] == '/' || !slash) return 1;
    char tmp[FL_CONFIG_MAX_PATH];
    int n = snprintf(tmp, sizeof tmp, "%.*s/%s", (int)(slash - config_path), config_path, dst);
    if (n < 0 || (size_t)n >= cap) return 0;
    memcpy(dst, tmp, (size_t)n + 1);
    return 1;
}

fl_status fl_server_config_load(const char *path, fl_server_config *cfg, fl_err *err) {
    memset(cfg, 0, sizeof *cfg);
    if (strlen(path) >= sizeof cfg->path) return fl_fail(err, FL_EINVAL, "config path too long");
    char *text = fl_config_read_text(path, MAX_FILE, err);
    if (!text) return FL_EIO;
    fl_status st = FL_EFORMAT;
    parse_state ps = {.cfg = cfg};
    const char *why = NULL;
    int line = precheck(text, &why);
    if (line) {
        fl_fail(err, st, "%s:%d: %s", path, line, why);
        goto fail;
    }
    cfg->min_clients = 1;
    line = ini_parse_string(text, on_entry, &ps);
    if (line != 0) {
        fl_fail(err, st, "%s:%d: %s", path, line, ps.msg[0] ? ps.msg : "cannot parse this line");
        goto fail;
    }
    int required[] = {K_LISTEN, K_STUDY, K_STATE_DIR, K_ALLOW, K_CA, K_CERT, K_KEY};
    int n_required = cfg->insecure ? 4 : 7;
    for (int i = 0; i < n_required; i++) {
        int k = required[i];
        if (!(ps.seen & (1u << k))) {
            fl_fail(err, st, "%s: [%s] %s is missing%s", path, keys[k].section, keys[k].name,
                    k >= K_CA ? " (or set insecure = true for local experiments)" : "");
            goto fail;
        }
    }
    if (!resolve(path, cfg->ca, sizeof cfg->ca) || !resolve(path, cfg->cert, sizeof cfg->cert) ||
        !resolve(path, cfg->key, sizeof cfg->key)) {
        fl_fail(err, st, "%s: a [tls] path is too long once made relative to the file", path);
        goto fail;
    }
    memcpy(cfg->path, path, strlen(path) + 1);
    free(text);
    return FL_OK;
fail:
    free(text);
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
