/* pki.c - the certificates of pki.h with OpenSSL 3.0's libcrypto (EVP keys, X509 builders):
 * making a CA and its certificates, reading them back, and verifying one against the CA. Keys
 * are ECDSA P-256, which every TLS stack gRPC may sit on accepts. Nothing here speaks TLS. */
#define OPENSSL_API_COMPAT 30000 /* hide everything deprecated in 3.0 (RSA_*, EC_KEY_*) */

#include "pki.h"
#include "pki_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../common/atomic.h"

#define BACKDATE_S 3600 /* certificates start an hour ago, for clocks that run behind */

fl_status fl__pki_ossl_fail(fl_err *err, fl_status s, const char *fmt, ...) {
    char msg[FL_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    if (why) return fl_fail(err, s, "%s (OpenSSL: %s)", msg, why);
    return fl_fail(err, s, "%s", msg);
}

char *fl_pki_time_str(long long t, char buf[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, 32, "%lld", t);
    return buf;
}

/* t in seconds since the epoch; 0 if it cannot be read. */
static long long asn1_time(const ASN1_TIME *t) {
    struct tm tm;
    return ASN1_TIME_to_tm(t, &tm) == 1 ? (long long)timegm(&tm) : 0;
}

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int fl_pki_name_valid(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > FL_PKI_NAME_MAX || !is_name_char(name[0]) || name[0] == '.' ||
        name[0] == '_' || name[0] == '-' || strcmp(name, "ca") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(name[i])) return 0;
    return 1;
}

/* "dir/name" in malloc'd memory, or NULL. */
static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Makes folder dir with mode 0700 unless it exists (as a folder). */
static fl_status ensure_dir(const char *dir, fl_err *err) {
    struct stat st;
    if (mkdir(dir, 0700) == 0) return FL_OK;
    int e = errno;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return FL_OK;
    return fl_fail(err, FL_EIO, "%s: cannot make the folder: %s", dir,
                   e == EEXIST ? "a file of that name exists" : strerror(e));
}

/* ---- writing PEM files atomically ---------------------------------------------------------- */

/* Writes key (if non-NULL) or crt as PEM into a temporary file beside path and sets *tmp to its
 * name for fl_atomic_tmp_commit. A key's file is made 0600 before anything is written to it. */
static fl_status write_tmp(const char *path, EVP_PKEY *key, X509 *crt, char **tmp, fl_err *err) {
    int fd;
    fl_status s = fl_atomic_tmp_reserve(path, tmp, &fd, err);
    if (s != FL_OK) return s;
    FILE *f = NULL;
    int ok = (!key || fchmod(fd, 0600) == 0) && (f = fdopen(fd, "wb")) != NULL;
    int e = ok ? 0 : errno;
    if (ok)
        ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, crt);
    if (ok && fflush(f) != 0) e = errno;
    if ((f ? fclose(f) : close(fd)) != 0 && !e) e = errno;
    if (ok && !e) return FL_OK;
    fl_atomic_tmp_remove(*tmp);
    free(*tmp);
    *tmp = NULL;
    if (!ok && !e) return fl__pki_ossl_fail(err, FL_EBACKEND, "%s: cannot encode", path);
    return fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(e));
}

/* Writes key to key_path (0600) and crt to crt_path, both replaced atomically; the
 * certificate is committed last, so that a pair is never a new certificate beside an old key. */
static fl_status write_pair(const char *key_path, EVP_PKEY *key, const char *crt_path, X509 *crt,
                            fl_err *err) {
    char *ktmp = NULL, *ctmp = NULL;
    fl_status s = write_tmp(key_path, key, NULL, &ktmp, err);
    if (s == FL_OK) s = write_tmp(crt_path, NULL, crt, &ctmp, err);
    if (s == FL_OK) s = fl_atomic_tmp_commit(ktmp, key_path, err);
    if (s == FL_OK) {
        free(ktmp);
        ktmp = NULL;
        s = fl_atomic_tmp_commit(ctmp, crt_path, err);
    } else {
        fl_atomic_tmp_remove(ctmp);
    }
    fl_atomic_tmp_remove(ktmp);
    free(ktmp);
    free(ctmp);
    return s;
}

/* ---- reading PEM files --------------------------------------------------------------------- */

/* Never prompts: an encrypted key is refused rather than waiting on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

fl_status fl__pki_read_pem(const char *path, X509 **crt, EVP_PKEY **key, fl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    int ok = key ? (*key = PEM_read_PrivateKey(f, NULL, no_password, NULL)) != NULL
                 : (*crt = PEM_read_X509(f, NULL, NULL, NULL)) != NULL;
    fclose(f);
    if (ok) return FL_OK;
    return fl__pki_ossl_fail(err, FL_EFORMAT, "%s: no %s in it", path,
                             key ? "unencrypted PEM private key" : "PEM certificate");
}

/* ---- building certificates ----------------------------------------------------------------- */

typedef struct {
    int nid;
    const char *value; /* in openssl.cnf's syntax, e.g. "critical,CA:TRUE" */
} ext_spec;

/* A new ECDSA P-256 key, or NULL with the reason in err. */
static EVP_PKEY *new_key(fl_err *err) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k) fl__pki_ossl_fail(err, FL_EBACKEND, "cannot generate an ECDSA P-256 key");
    return k;
}

/* Sets x's serial to 128 random bits from OpenSSL's CSPRNG (RFC 5280 allows 20 octets). */
static int set_random_serial(X509 *x) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return 0;
    b[0] |= 0x01; /* never zero */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = ai && X509_set_serialNumber(x, ai);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return ok;
}

/* Makes a certificate for key with subject CN=cn, valid [nb, na], with the extensions in
 * order, signed by issuer_key as issuer (both NULL: self-signed). */
static fl_status make_cert(X509 **out, const char *cn, EVP_PKEY *key, X509 *issuer,
                           EVP_PKEY *issuer_key, long long nb, long long na, const ext_spec *exts,
                           int n_ext, fl_err *err) {
    X509 *x = X509_new();
    *out = NULL;
    if (!x) return fl__pki_ossl_fail(err, FL_ENOMEM, "%s: cannot make a certificate", cn);
    X509_NAME *subj = X509_get_subject_name(x);
    int ok = X509_set_version(x, X509_VERSION_3) && set_random_serial(x) &&
             ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) &&
             ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) && X509_set_pubkey(x, key) &&
             X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                        -1, 0) &&
             X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj);
    if (!ok) goto fail;
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    for (int i = 0; i < n_ext; i++) {
        X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
        ok = e && X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        if (!ok) {
            fl__pki_ossl_fail(err, FL_EINVAL, "%s: cannot add the extension %s = %s", cn,
                              OBJ_nid2sn(exts[i].nid), exts[i].value);
            X509_free(x);
            return FL_EINVAL;
        }
    }
    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) goto fail;
    *out = x;
    return FL_OK;
fail:
    X509_free(x);
    return fl__pki_ossl_fail(err, FL_EBACKEND, "%s: cannot build the certificate", cn);
}

/* ---- the CA -------------------------------------------------------------------------------- */

static int ca_name_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FL_PKI_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

fl_status fl_pki_init(const char *dir, const fl_pki_init_opts *opts, fl_err *err) {
    fl_pki_init_opts o = opts ? *opts : (fl_pki_init_opts){0};
    const char *cn = o.name ? o.name : FL_PKI_DEFAULT_CA_NAME;
    int days = o.days ? o.days : FL_PKI_CA_DAYS;
    if (!dir || !*dir) return fl_fail(err, FL_EINVAL, "pki init: no folder given");
    if (!ca_name_valid(cn))
        return fl_fail(err, FL_EINVAL,
                       "pki init: the CA name '%s' is not 1 to %d printable "
                       "characters",
                       cn, FL_PKI_NAME_MAX);
    if (days < 1 || days > FL_PKI_MAX_DAYS)
        return fl_fail(err, FL_EINVAL, "pki init: %d days is not between 1 and %d", days,
                       FL_PKI_MAX_DAYS);
    char *kpath = join(dir, "ca.key"), *cpath = join(dir, "ca.crt");
    EVP_PKEY *key = NULL;
    X509 *crt = NULL;
    fl_status s = FL_OK;
    if (!kpath || !cpath) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (!o.force && (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0)) {
        s = fl_fail(err, FL_EINVAL,
                    "%s: a CA exists there already (replacing it needs --force, "
                    "and orphans every certificate it issued)",
                    dir);
        goto done;
    }
    if ((s = ensure_dir(dir, err)) != FL_OK) goto done;
    if (!(key = new_key(err))) {
        s = FL_EBACKEND;
        goto done;
    }
    static const ext_spec exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign,cRLSign"},
        {NID_subject_key_identifier, "hash"},
    };
    long long now = (long long)time(NULL);
    s = make_cert(&crt, cn, key, NULL, NULL, now - BACKDATE_S, now + 86400LL * days, exts,
                  (int)(sizeof exts / sizeof exts[0]), err);
    if (s == FL_OK) s = write_pair(kpath, key, cpath, crt, err);
done:
    X509_free(crt);
    EVP_PKEY_free(key);
    free(kpath);
    free(cpath);
    return s;
}

/* Loads ca_dir's ca.crt and ca.key and checks they belong together and the CA is usable now. */
static fl_status load_ca(const char *ca_dir, X509 **crt, EVP_PKEY **key, fl_err *err) {
    char *kpath = join(ca_dir, "ca.key"), *cpath = join(ca_dir, "ca.crt");
    fl_status s = FL_OK;
    *crt = NULL;
    *key = NULL;
    if (!kpath || !cpath) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", ca_dir);
        goto done;
    }
    if ((s = fl__pki_read_pem(cpath, crt, NULL, err)) != FL_OK ||
        (s = fl__pki_read_pem(kpath, NULL, key, err)))
        goto done; /* the message names the file */
    if (X509_check_private_key(*crt, *key) != 1)
        s = fl__pki_ossl_fail(err, FL_EINVAL, "%s does not belong to %s", kpath, cpath);
    else if (X509_check_ca(*crt) < 1)
        s = fl_fail(err, FL_EINVAL, "%s is not a CA certificate", cpath);
    else if (X509_cmp_current_time(X509_get0_notAfter(*crt)) <= 0)
        s = fl_fail(err, FL_EINVAL, "%s has expired; make a new CA with `fedlung pki init`", cpath);
done:
    if (s != FL_OK) {
        X509_free(*crt);
        EVP_PKEY_free(*key);
        *crt = NULL;
        *key = NULL;
    }
    free(kpath);
    free(cpath);
    return s;
}

/* ---- issuing ------------------------------------------------------------------------------- */

/* A DNS name of labels [A-Za-z0-9-] (not starting or ending with '-'), at most 253 characters;
 * the first label may be "*". */
static int dns_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 253) return 0;
    if (s[0] == '*' && s[1] == '.') s += 2;
    while (*s) {
        size_t len = strcspn(s, ".");
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-') return 0;
        for (size_t i = 0; i < len; i++)
            if (!is_name_char(s[i]) || s[i] == '.' || s[i] == '_') return 0;
        s += len;
        if (*s == '.' && !*++s) return 0; /* a trailing dot */
    }
    return 1;
}

/* Writes in's canonical "DNS:name" or "IP:address" form into out (FL_PKI_SAN_LEN bytes). */
static fl_status san_canonical(const char *in, char *out, fl_err *err) {
    unsigned char addr[16];
    int is_dns = strncmp(in, "DNS:", 4) == 0, is_ip = strncmp(in, "IP:", 3) == 0;
    const char *v = is_dns ? in + 4 : is_ip ? in + 3 : in;
    if (!is_dns) {
        int fam = inet_pton(AF_INET, v, addr) == 1    ? AF_INET
                  : inet_pton(AF_INET6, v, addr) == 1 ? AF_INET6
                                                      : 0;
        char txt[INET6_ADDRSTRLEN];
        if (fam && inet_ntop(fam, addr, txt, sizeof txt)) {
            snprintf(out, FL_PKI_SAN_LEN, "IP:%s", txt);
            return FL_OK;
        }
        if (is_ip) return fl_fail(err, FL_EINVAL, "SAN '%s': not an IPv4 or IPv6 address", in);
    }
    if (!dns_valid(v)) return fl_fail(err, FL_EINVAL, "SAN '%s': not a DNS name", in);
    snprintf(out, FL_PKI_SAN_LEN, "DNS:%s", v);
    return FL_OK;
}

/* The subjectAltName value for role and the extra entries, comma-separated, duplicates
 * (DNS names compared without case) dropped; "" when there are none. Malloc'd into *out. */
static fl_status san_list(fl_pki_role role, const char *const *sans, int n, char **out,
                          fl_err *err) {
    char(*e)[FL_PKI_SAN_LEN] = calloc((size_t)n + 2, FL_PKI_SAN_LEN);
    char *list = calloc((size_t)n + 2, FL_PKI_SAN_LEN + 1);
    int k = 0;
    fl_status s = FL_OK;
    *out = NULL;
    if (!e || !list) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for %d SANs", n);
        goto done;
    }
    if (role == FL_PKI_SERVER) {
        strcpy(e[k++], "DNS:localhost");
        strcpy(e[k++], "IP:127.0.0.1");
    }
    for (int i = 0; i < n && s == FL_OK; i++) {
        if ((s = san_canonical(sans[i], e[k], err)) != FL_OK) break;
        int dup = 0;
        for (int j = 0; j < k && !dup; j++) dup = strcasecmp(e[j], e[k]) == 0;
        k += !dup;
    }
    for (int i = 0; i < k && s == FL_OK; i++) {
        if (i) strcat(list, ",");
        strcat(list, e[i]);
    }
done:
    free(e);
    if (s == FL_OK)
        *out = list;
    else
        free(list);
    return s;
}

/* Refuses, unless force, to replace path. */
static fl_status check_absent(const char *path, int force, fl_err *err) {
    if (force || access(path, F_OK) != 0) return FL_OK;
    return fl_fail(err, FL_EINVAL, "%s exists already (replace it with --force)", path);
}

/* The validity window o asks for: [now - BACKDATE_S, now + days], or the explicit one. */
static fl_status validity(const fl_pki_issue_opts *o, const char *name, long long *nb,
                          long long *na, fl_err *err) {
    int days = o->days ? o->days : FL_PKI_CERT_DAYS;
    long long now = (long long)time(NULL);
    *nb = now - BACKDATE_S;
    *na = now + 86400LL * days;
    if (o->not_after) {
        *nb = o->not_before;
        *na = o->not_after;
    } else if (days < 1 || days > FL_PKI_MAX_DAYS) {
        return fl_fail(err, FL_EINVAL, "pki issue: %s: %d days is not between 1 and %d", name, days,
                       FL_PKI_MAX_DAYS);
    }
    if (*na <= *nb)
        return fl_fail(err, FL_EINVAL, "pki issue: %s: the validity ends before it begins", name);
    return FL_OK;
}

fl_status fl_pki_issue(const char *ca_dir, const char *name, fl_pki_role role,
                       const fl_pki_issue_opts *opts, fl_err *err) {
    fl_pki_issue_opts o = opts ? *opts : (fl_pki_issue_opts){0};
    const char *out_dir = o.out_dir ? o.out_dir : ca_dir;
    if (!ca_dir || !*ca_dir || !out_dir || !*out_dir)
        return fl_fail(err, FL_EINVAL, "pki issue: no CA folder given");
    if (!fl_pki_name_valid(name))
        return fl_fail(err, FL_EINVAL,
                       "pki issue: the name '%s' is not 1 to %d characters of "
                       "A-Z a-z 0-9 . _ - starting with a letter or digit (and not 'ca')",
                       name ? name : "", FL_PKI_NAME_MAX);
    if (role != FL_PKI_SERVER && role != FL_PKI_CLIENT)
        return fl_fail(err, FL_EINVAL, "pki issue: %s: the role is neither server nor client",
                       name);
    if (o.n_sans < 0 || o.n_sans > FL_PKI_MAX_SANS - 2 || (o.n_sans && !o.sans))
        return fl_fail(err, FL_EINVAL, "pki issue: %s: at most %d --san entries", name,
                       FL_PKI_MAX_SANS - 2);
    long long nb, na;
    fl_status s = validity(&o, name, &nb, &na, err);
    if (s != FL_OK) return s;

    size_t nlen = strlen(name);
    char *kfile = malloc(nlen + 5), *cfile = malloc(nlen + 5), *kpath = NULL, *cpath = NULL;
    char *sans = NULL;
    X509 *ca = NULL, *crt = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    if (kfile && cfile) {
        snprintf(kfile, nlen + 5, "%s.key", name);
        snprintf(cfile, nlen + 5, "%s.crt", name);
        kpath = join(out_dir, kfile);
        cpath = join(out_dir, cfile);
    }
    if (!kpath || !cpath) {
        s = fl_fail(err, FL_ENOMEM, "pki issue: %s: out of memory", name);
        goto done;
    }
    if ((s = check_absent(kpath, o.force, err)) != FL_OK ||
        (s = check_absent(cpath, o.force, err)) != FL_OK ||
        (s = san_list(role, o.sans, o.n_sans, &sans, err)) != FL_OK ||
        (s = load_ca(ca_dir, &ca, &ca_key, err)) != FL_OK)
        goto done;
    long long ca_end = asn1_time(X509_get0_notAfter(ca));
    if (!o.days && !o.not_after && na > ca_end) na = ca_end; /* the default stops with the CA */
    if (na > ca_end) {
        char b1[32], b2[32];
        s = fl_fail(err, FL_EINVAL,
                    "pki issue: %s would be valid until %s, after its CA (%s/ca.crt, until %s); "
                    "ask for fewer days",
                    name, fl_pki_time_str(na, b1), ca_dir, fl_pki_time_str(ca_end, b2));
        goto done;
    }
    if ((s = ensure_dir(out_dir, err)) != FL_OK) goto done;
    if (!(key = new_key(err))) {
        s = FL_EBACKEND;
        goto done;
    }
    ext_spec exts[6] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, role == FL_PKI_SERVER ? "serverAuth" : "clientAuth"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
        {NID_subject_alt_name, sans},
    };
    s = make_cert(&crt, name, key, ca, ca_key, nb, na, exts, *sans ? 6 : 5, err);
    if (s == FL_OK) s = write_pair(kpath, key, cpath, crt, err);
done:
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    X509_free(crt);
    X509_free(ca);
    free(sans);
    free(kfile);
    free(cfile);
    free(kpath);
    free(cpath);
    return s;
}

/* ---- reading certificates ------------------------------------------------------------------ */

void fl__pki_name_cn(const X509_NAME *nm, char *out) {
    out[0] = '\0';
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (i < 0) return;
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
    if (n >= 0) snprintf(out, FL_PKI_CN_LEN, "%.*s", n, (const char *)u);
    OPENSSL_free(u);
}

/* One GENERAL_NAME as "DNS:x", "IP:a.b.c.d" and the like into out (FL_PKI_SAN_LEN bytes). */
static void general_name(const GENERAL_NAME *g, char *out) {
    int type;
    const void *v = GENERAL_NAME_get0_value(g, &type);
    const ASN1_STRING *str = v;
    const char *tag = type == GEN_DNS ? "DNS" : type == GEN_EMAIL ? "email" : "URI";
    char txt[INET6_ADDRSTRLEN];
    switch (type) {
    case GEN_DNS:
    case GEN_EMAIL:
    case GEN_URI:
        snprintf(out, FL_PKI_SAN_LEN, "%s:%.*s", tag, ASN1_STRING_length(str),
                 (const char *)ASN1_STRING_get0_data(str));
        break;
    case GEN_IPADD: {
        int len = ASN1_STRING_length(str);
        int fam = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
        if (fam && inet_ntop(fam, ASN1_STRING_get0_data(str), txt, sizeof txt))
            snprintf(out, FL_PKI_SAN_LEN, "IP:%s", txt);
        else
            snprintf(out, FL_PKI_SAN_LEN, "IP:?");
        break;
    }
    default:
        snprintf(out, FL_PKI_SAN_LEN, "other");
    }
}

static fl_status info_of(X509 *x, const char *what, fl_pki_info *info, fl_err *err) {
    memset(info, 0, sizeof *info);
    fl__pki_name_cn(X509_get_subject_name(x), info->cn);
    fl__pki_name_cn(X509_get_issuer_name(x), info->issuer_cn);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex) snprintf(info->serial, sizeof info->serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    info->not_before = asn1_time(X509_get0_notBefore(x));
    info->not_after = asn1_time(X509_get0_notAfter(x));
    unsigned int mdlen = 0;
    if (!X509_digest(x, EVP_sha256(), info->sha256, &mdlen) || mdlen != 32)
        return fl__pki_ossl_fail(err, FL_EBACKEND, "%s: cannot hash the certificate", what);
    for (int i = 0; i < 32; i++)
        snprintf(info->fingerprint + 3 * i, 4, i < 31 ? "%02X:" : "%02X", info->sha256[i]);
    info->is_ca = X509_check_ca(x) >= 1;
    uint32_t xku = X509_get_extended_key_usage(x);
    info->has_eku = xku != UINT32_MAX;
    if (info->has_eku)
        info->eku = ((xku & XKU_SSL_SERVER) ? FL_PKI_SERVER : 0) |
                    ((xku & XKU_SSL_CLIENT) ? FL_PKI_CLIENT : 0);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    for (int i = 0; i < n; i++) {
        if (info->n_sans == FL_PKI_MAX_SANS) {
            info->sans_truncated = 1;
            break;
        }
        general_name(sk_GENERAL_NAME_value(gens, i), info->sans[info->n_sans++]);
    }
    GENERAL_NAMES_free(gens);
    ERR_clear_error(); /* a missing extension queues nothing useful */
    return FL_OK;
}

fl_status fl_pki_cert_info(const char *path, fl_pki_info *info, fl_err *err) {
    X509 *x = NULL;
    fl_status s = fl__pki_read_pem(path, &x, NULL, err);
    if (s == FL_OK) s = info_of(x, path, info, err);
    X509_free(x);
    return s;
}

fl_status fl_pki_cert_info_pem(const char *pem, size_t len, const char *what, fl_pki_info *info,
                               fl_err *err) {
    if (!what) what = "certificate";
    if (!pem || len > INT32_MAX) return fl_fail(err, FL_EINVAL, "%s: no PEM given", what);
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    fl_status s = x ? info_of(x, what, info, err)
                    : fl__pki_ossl_fail(err, FL_EFORMAT, "%s: not a PEM certificate", what);
    X509_free(x);
    return s;
}

/* ---- verifying ----------------------------------------------------------------------------- */

static const char *role_str(fl_pki_role role) {
    return role == FL_PKI_SERVER ? "server" : "client";
}

static const char *role_eku(unsigned bits) {
    return bits == (FL_PKI_SERVER | FL_PKI_CLIENT) ? "serverAuth, clientAuth"
           : bits == FL_PKI_SERVER                 ? "serverAuth"
           : bits == FL_PKI_CLIENT                 ? "clientAuth"
                                                   : "neither serverAuth nor clientAuth";
}

/* The sentence for X509_verify_cert's error e at depth (0: the certificate, 1: the CA). */
static fl_status verify_fail(X509_STORE_CTX *ctx, const char *ca_crt, const char *crt,
                             fl_err *err) {
    int e = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
    const char *what = depth == 0 ? crt : ca_crt, *why = X509_verify_cert_error_string(e);
    char when[32];
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return fl_fail(err, FL_EINVAL, "%s: %s (not after %s)", what, why,
                       fl_pki_time_str(bad ? asn1_time(X509_get0_notAfter(bad)) : 0, when));
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return fl_fail(err, FL_EINVAL, "%s: %s (not before %s)", what, why,
                       fl_pki_time_str(bad ? asn1_time(X509_get0_notBefore(bad)) : 0, when));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return fl_fail(err, FL_EINVAL, "%s: not issued by the CA in %s (%s)", crt, ca_crt, why);
    default:
        return fl_fail(err, FL_EINVAL, "%s: refused under %s: %s", what, ca_crt, why);
    }
}

fl_status fl__pki_verify_x509(X509 *ca, X509 *x, fl_pki_role role, const char *ca_crt,
                              const char *crt, fl_err *err) {
    if (role != FL_PKI_SERVER && role != FL_PKI_CLIENT)
        return fl_fail(err, FL_EINVAL, "%s: the role is neither server nor client", crt);
    uint32_t xku = X509_get_extended_key_usage(x);
    unsigned have = xku == UINT32_MAX ? 0
                                      : ((xku & XKU_SSL_SERVER) ? FL_PKI_SERVER : 0) |
                                            ((xku & XKU_SSL_CLIENT) ? FL_PKI_CLIENT : 0);
    if (xku != UINT32_MAX && !(have & role))
        return fl_fail(err, FL_EINVAL,
                       "%s: extendedKeyUsage %s does not allow a %s (it is not a %s "
                       "certificate)",
                       crt, role_eku(have), role_str(role), role_str(role));
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    fl_status s = FL_OK;
    if (!store || !ctx || !X509_STORE_add_cert(store, ca) ||
        !X509_STORE_CTX_init(ctx, store, x, NULL) ||
        !X509_STORE_CTX_set_purpose(ctx, role == FL_PKI_SERVER ? X509_PURPOSE_SSL_SERVER
                                                               : X509_PURPOSE_SSL_CLIENT))
        s = fl__pki_ossl_fail(err, FL_EBACKEND, "%s: cannot set up the verification", crt);
    else if (X509_verify_cert(ctx) != 1)
        s = verify_fail(ctx, ca_crt, crt, err);
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return s;
}

fl_status fl_pki_verify(const char *ca_crt, const char *crt, fl_pki_role role, fl_err *err) {
    if (role != FL_PKI_SERVER && role != FL_PKI_CLIENT)
        return fl_fail(err, FL_EINVAL, "%s: the role is neither server nor client", crt);
    X509 *ca = NULL, *x = NULL;
    fl_status s = fl__pki_read_pem(ca_crt, &ca, NULL, err);
    if (s == FL_OK) s = fl__pki_read_pem(crt, &x, NULL, err);
    if (s == FL_OK) s = fl__pki_verify_x509(ca, x, role, ca_crt, crt, err);
    X509_free(x);
    X509_free(ca);
    return s;
}
