/* conf.c - the parts of fedlung's INI configs that do not depend on a schema: text reading,
 * the line pre-check, value parsers and their messages. libinih itself is called by each
 * config's loader. */
#include "conf.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Debian's libinih is built with INI_MAX_LINE 200: a longer line would be split silently. */
#define MAX_LINE 199
#define ID_MAX 64

int fl_conf_complain(char *msg, const char *fmt, ...) {
    va_list ap;
    if (msg[0]) return 0;
    va_start(ap, fmt);
    vsnprintf(msg, FL_ERR_LEN, fmt, ap);
    va_end(ap);
    return 0;
}

int fl_conf_set_str(char *msg, const char *name, char *dst, size_t cap, const char *value) {
    size_t n = strlen(value);
    if (n == 0) return fl_conf_complain(msg, "%s is empty", name);
    if (n >= cap) return fl_conf_complain(msg, "%s is longer than the limit", name);
    memcpy(dst, value, n + 1);
    return 1;
}

int fl_conf_set_bool(char *msg, const char *name, int *out, const char *value) {
    if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcasecmp(value, "yes") == 0)
        *out = 1;
    else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
             strcasecmp(value, "no") == 0)
        *out = 0;
    else
        return fl_conf_complain(msg, "%s '%s' is not true or false", name, value);
    return 1;
}

static int no_hash_comment(char *msg, const char *name, const char *value) {
    if (strstr(value, " #") || strstr(value, "\t#"))
        return fl_conf_complain(msg, "%s: a comment after a value starts with ' ;', not '#'", name);
    return 1;
}

int fl_conf_id_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX) return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
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
            *why = "line longer than 199 characters (split a long list over several lines)";
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

int fl_conf_read_pems(const char *ca, const char *cert, const char *key, char *pem[3],
                      fl_err *err) {
    const char *paths[3] = {ca, cert, key};
    for (int i = 0; i < 3; i++) pem[i] = NULL;
    for (int i = 0; i < 3; i++) {
        if (!(pem[i] = fl_config_read_text(paths[i], 1u << 20, err))) {
            fl_conf_free_pems(pem);
            return 0;
        }
    }
    return 1;
}

void fl_conf_free_pems(char *pem[3]) {
    if (pem[2]) explicit_bzero(pem[2], strlen(pem[2]));
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
        pem[i] = NULL;
    }
}

int fl_conf_resolve(const char *config_path, char *dst, size_t cap) {
    const char *slash = strrchr(config_path, '/');
    if (!dst[0] || dst[0] == '/' || !slash) return 1;
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%.*s/%s", (int)(slash - config_path), config_path, dst);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= sizeof tmp) return 0;
    memcpy(dst, tmp, (size_t)n + 1);
    return 1;
}

typedef struct {
    const fl_conf_schema *s;
    char msg[FL_ERR_LEN];              /* the first complaint; ini_parse_string returns its line */
    uint64_t seen[FL_CONF_SEEN_WORDS]; /* bit k % 64 of word k / 64 per key */
} parse_state;

static int on_entry(void *user, const char *section, const char *name, const char *value) {
    parse_state *ps = user;
    const fl_conf_schema *s = ps->s;
    if (ps->msg[0]) return 0; /* report the first problem only */
    int k = 0;
    while (k < s->n_keys &&
           !(strcmp(s->keys[k].section, section) == 0 && strcmp(s->keys[k].name, name) == 0))
        k++;
    if (k == s->n_keys) return fl_conf_complain(ps->msg, "unknown key '%s' in [%s]", name, section);
    uint64_t bit = (uint64_t)1 << (k % 64);
    if ((ps->seen[k / 64] & bit) && !(k < 64 && ((s->repeatable >> k) & 1)))
        return fl_conf_complain(ps->msg, "%s is set twice in [%s]", name, section);
    ps->seen[k / 64] |= bit;
    if (!no_hash_comment(ps->msg, name, value)) return 0;
    return s->set(s->user, k, name, value, ps->msg);
}

fl_status fl_conf_parse_text(const char *text, const char *name, const fl_conf_schema *s,
                             uint64_t *seen, fl_err *err) {
    fl_status st = FL_OK;
    parse_state ps = {.s = s};
    const char *why = NULL;
    int line = precheck(text, &why);
    if (s->n_keys > FL_CONF_MAX_KEYS) {
        st = fl_fail(err, FL_EINVAL, "%s: a schema of %d keys, more than %d", name, s->n_keys,
                     FL_CONF_MAX_KEYS);
    } else if (line) {
        st = fl_fail(err, FL_EFORMAT, "%s:%d: %s", name, line, why);
    } else if ((line = ini_parse_string(text, on_entry, &ps)) != 0) {
        st = fl_fail(err, FL_EFORMAT, "%s:%d: %s", name, line,
                     ps.msg[0] ? ps.msg : "cannot parse this line");
    }
    int words = s->n_keys > FL_CONF_MAX_KEYS ? FL_CONF_SEEN_WORDS : (s->n_keys + 63) / 64;
    memcpy(seen, ps.seen, (size_t)words * sizeof *seen);
    return st;
}

fl_status fl_conf_parse(const char *path, const fl_conf_schema *s, unsigned *seen, fl_err *err) {
    *seen = 0;
    char *text = fl_config_read_text(path, FL_CONF_MAX_FILE, err);
    if (!text) return FL_EIO;
    uint64_t seen64[FL_CONF_SEEN_WORDS] = {0};
    fl_status st = fl_conf_parse_text(text, path, s, seen64, err);
    free(text);
    *seen = (unsigned)seen64[0];
    return st;
}

fl_status fl_conf_require(const char *path, const fl_conf_schema *s, unsigned seen,
                          const int *required, int n, unsigned tls_keys, fl_err *err) {
    for (int i = 0; i < n; i++) {
        int k = required[i];
        if (!(seen & (1u << k)))
            return fl_fail(err, FL_EFORMAT, "%s: [%s] %s is missing%s", path, s->keys[k].section,
                           s->keys[k].name,
                           tls_keys & (1u << k) ? " (or set insecure = true for local experiments)"
                                                : "");
    }
    return FL_OK;
}

int fl_conf_set_tls(fl_conf_tls *t, int i, const char *name, const char *value, char *msg) {
    char *dst[3] = {t->ca, t->cert, t->key};
    if (i == 3) return fl_conf_set_bool(msg, name, &t->insecure, value);
    return fl_conf_set_str(msg, name, dst[i], sizeof t->ca, value);
}

int fl_conf_resolve_tls(const char *config_path, fl_conf_tls *t) {
    return fl_conf_resolve(config_path, t->ca, sizeof t->ca) &&
           fl_conf_resolve(config_path, t->cert, sizeof t->cert) &&
           fl_conf_resolve(config_path, t->key, sizeof t->key);
}
