/* conf.h - what every fedlung INI file (libinih) shares: reading the file as text, a pre-check
 * that gives libinih's bare line numbers a reason, complaints recorded once, string, boolean and
 * id values, and paths relative to the file. The schemas (which keys exist) live with their
 * commands (server/config.c, client/config.c). */
#ifndef FL_CONF_H
#define FL_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define FL_CONF_MAX_FILE (1 << 20)
#define FL_CONF_MAX_KEYS 128 /* keys of a schema read with fl_conf_parse_text */
#define FL_CONF_SEEN_WORDS ((FL_CONF_MAX_KEYS + 63) / 64)

/* A config's schema: its keys, and a setter that checks and stores one value. */
typedef struct {
    const char *section, *name;
} fl_conf_key;
typedef struct {
    const fl_conf_key *keys; /* n_keys of them (at most 32; FL_CONF_MAX_KEYS with
                                fl_conf_parse_text) */
    int n_keys;
    uint64_t repeatable; /* bit k: keys[k] may appear more than once (k < 64) */
    /* Stores value for keys[k]; returns 1, or 0 after fl_conf_complain(msg, ...). */
    int (*set)(void *user, int k, const char *name, const char *value, char *msg);
    void *user;
} fl_conf_schema;

/* The [tls] section every config has: the consortium CA, our certificate and key (PEM paths), or
 * insecure = true (no TLS, for local experiments only). */
#define FL_CONF_MAX_PATH 4096
typedef struct {
    char ca[FL_CONF_MAX_PATH];   /* consortium CA certificate (PEM) the peer must chain to */
    char cert[FL_CONF_MAX_PATH]; /* our certificate (PEM) */
    char key[FL_CONF_MAX_PATH];  /* its private key (PEM) */
    int insecure;                /* 1: no TLS at all */
} fl_conf_tls;
/* The four [tls] keys in the order of fl_conf_set_tls's i, for a schema's keys[]. */
#define FL_CONF_TLS_KEYS                              \
    {"tls", "ca"}, {"tls", "cert"}, {"tls", "key"}, { \
        "tls", "insecure"                             \
    }
/* Stores the value of [tls] key i (0 ca, 1 cert, 2 key, 3 insecure). Returns 1, or 0 after a
 * complaint in msg. */
int fl_conf_set_tls(fl_conf_tls *t, int i, const char *name, const char *value, char *msg);
/* Makes t's paths relative to the folder of config_path. Returns 1, or 0 if one would not fit. */
int fl_conf_resolve_tls(const char *config_path, fl_conf_tls *t);

/* Reads the INI file at path (at most FL_CONF_MAX_FILE bytes) and hands each key to s->set: an
 * unknown key, a key set twice (unless repeatable), a '#' comment after a value, a line libinih
 * cannot parse or a setter's complaint stops it. Returns FL_OK with a bit per key seen in
 * *seen; FL_EIO when the file cannot be read; FL_EFORMAT "<file>:<line>: <what is wrong>". */
fl_status fl_conf_parse(const char *path, const fl_conf_schema *s, unsigned *seen, fl_err *err);
/* The same over text already in memory (NUL-terminated), named name in messages, for up to
 * FL_CONF_MAX_KEYS keys: seen[0 .. (n_keys + 63) / 64) gets bit k % 64 of word k / 64 for each
 * key k seen. Returns FL_OK or FL_EFORMAT "<name>:<line>: <what is wrong>" (FL_EINVAL for a
 * schema of too many keys). */
fl_status fl_conf_parse_text(const char *text, const char *name, const fl_conf_schema *s,
                             uint64_t *seen, fl_err *err);

/* Checks that each of the n keys in required[] was seen. Returns FL_OK, or FL_EFORMAT
 * "<file>: [<section>] <name> is missing" for the first that was not, followed by " (or set
 * insecure = true for local experiments)" when its bit is in tls_keys. */
fl_status fl_conf_require(const char *path, const fl_conf_schema *s, unsigned seen,
                          const int *required, int n, unsigned tls_keys, fl_err *err);

/* Reads a whole text file (at most limit bytes, no NUL bytes) into a NUL-terminated heap
 * string the caller frees. NULL with err set ("<path>: No such file or directory") on failure. */
char *fl_config_read_text(const char *path, size_t limit, fl_err *err);

/* Records the first complaint in msg (FL_ERR_LEN bytes; later ones are dropped). Returns 0,
 * libinih's "this line is wrong", so a handler can `return fl_conf_complain(...)`. */
int fl_conf_complain(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies value into dst (cap bytes) or complains that it is empty or too long. Returns 1 or 0. */
int fl_conf_set_str(char *msg, const char *name, char *dst, size_t cap, const char *value);

/* Reads the PEM files of a TLS identity (at most 1 MiB each) into pem[0] (the CA), pem[1] (the
 * certificate) and pem[2] (the key), heap strings. Returns 1; 0 with err set ("<path>: ...")
 * and nothing left to free. */
int fl_conf_read_pems(const char *ca, const char *cert, const char *key, char *pem[3], fl_err *err);
/* Wipes the key's bytes and frees the three strings (NULLs are fine). */
void fl_conf_free_pems(char *pem[3]);

/* Parses true/false/yes/no/1/0 into *out, or complains. Returns 1 or 0. */
int fl_conf_set_bool(char *msg, const char *name, int *out, const char *value);

/* 1 if s is an id: 1-64 of A-Z a-z 0-9 . _ - */
int fl_conf_id_valid(const char *s);

/* Makes a relative path in dst (cap bytes) relative to the folder of the file config_path.
 * Returns 1, or 0 if the result would not fit. */
int fl_conf_resolve(const char *config_path, char *dst, size_t cap);

#endif
