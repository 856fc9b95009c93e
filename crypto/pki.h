/* pki.h - the consortium's certificates, made with OpenSSL 3's libcrypto: a CA (ECDSA P-256),
 * server and client certificates it signs, and the checks the server and client run on them
 * before gRPC's handshake and for the allow-list. Not a TLS stack (gRPC does the handshake)
 * and not a general CA: no revocation lists, no OCSP, no encrypted keys. */
#ifndef FL_PKI_H
#define FL_PKI_H

#include <stddef.h>

#include "../common/status.h"

/* What a certificate is for: its extendedKeyUsage (serverAuth, clientAuth). Bits, so that a
 * certificate's usages can be or'ed in fl_pki_info.eku. */
typedef enum { FL_PKI_SERVER = 1, FL_PKI_CLIENT = 2 } fl_pki_role;

#define FL_PKI_CA_DAYS 3650  /* default validity of a CA */
#define FL_PKI_CERT_DAYS 730 /* default validity of a server or client certificate */
#define FL_PKI_MAX_DAYS 36500
#define FL_PKI_NAME_MAX 64 /* RFC 5280's upper bound on a common name */
#define FL_PKI_MAX_SANS 32 /* subjectAltName entries kept by fl_pki_cert_info, and --san's */
#define FL_PKI_SAN_LEN 264 /* "DNS:" + a 253-character name + NUL, rounded up */
#define FL_PKI_CN_LEN 260  /* 64 characters of UTF-8 + NUL */
#define FL_PKI_DEFAULT_CA_NAME "fedlung consortium CA"

/* Whether name may name a certificate: 1 to 64 characters of [A-Za-z0-9._-], starting with a
 * letter or digit, and not "ca" (it becomes both the file names NAME.key, NAME.crt, which must
 * not replace the CA's own, and the certificate's CN). Returns 1 or 0. */
int fl_pki_name_valid(const char *name);

typedef struct {
    const char *name; /* the CA's subject CN (1 to 64 printable characters); NULL for
                         FL_PKI_DEFAULT_CA_NAME */
    int days;         /* validity from now; 0 for FL_PKI_CA_DAYS */
    int force;        /* replace an existing CA in the folder */
} fl_pki_init_opts;

/* Makes a consortium CA in dir (created 0700 if missing): dir/ca.key, an unencrypted PKCS#8
 * PEM ECDSA P-256 key written with mode 0600, and dir/ca.crt, self-signed, basicConstraints
 * CA:TRUE (critical), keyUsage keyCertSign and cRLSign (critical), subjectKeyIdentifier, valid
 * from an hour ago for opts->days. opts NULL means the defaults. Refuses (FL_EINVAL) when
 * dir/ca.key or dir/ca.crt exists, unless opts->force. Both files are replaced atomically.
 * Returns FL_OK, FL_EINVAL (a bad name or days, an existing CA), FL_EIO, FL_ENOMEM or
 * FL_EBACKEND (OpenSSL failed; its text is in the message). */
fl_status fl_pki_init(const char *dir, const fl_pki_init_opts *opts, fl_err *err);

typedef struct {
    const char *const *sans; /* extra subjectAltName entries: "DNS:host", "IP:a.b.c.d",
                                "IP:v6" or a bare value (an address if it parses as one, else
                                a DNS name; "*.example.org" wildcards allowed) */
    int n_sans;              /* at most FL_PKI_MAX_SANS - 2 */
    int days;                /* validity from now; 0 for FL_PKI_CERT_DAYS */
    long long not_before;    /* with not_after non-zero: the exact validity window in seconds */
    long long not_after;     /* since the epoch instead of days (tests make expired ones) */
    const char *out_dir;     /* where NAME.key and NAME.crt go (created 0700 if missing);
                                NULL for ca_dir */
    int force;               /* replace an existing NAME.key / NAME.crt */
} fl_pki_issue_opts;

/* Issues a certificate for name signed by the CA in ca_dir (ca.key, ca.crt as fl_pki_init
 * makes them): a new ECDSA P-256 key in out_dir/NAME.key (mode 0600) and out_dir/NAME.crt
 * holding the certificate alone (the CA's is ca_dir/ca.crt): subject CN=name, issuer the CA,
 * a random 128-bit serial, basicConstraints CA:FALSE, keyUsage digitalSignature (critical),
 * extendedKeyUsage serverAuth or clientAuth, subject/authority key identifiers, and
 * subjectAltName: for a server DNS:localhost and IP:127.0.0.1 and then opts->sans, for a client
 * opts->sans only (none by default; its identity is the CN). Duplicate SANs are dropped. Valid
 * from an hour ago (clock skew) for opts->days, which must not outlive the CA (the default,
 * 730 days, stops where the CA does). opts NULL means
 * the defaults. Refuses to replace existing files unless opts->force. Returns FL_OK,
 * FL_EINVAL (a bad name, role, SAN or validity, existing files, a CA key that does not match
 * its certificate or an expired CA), FL_ENOTFOUND (no CA in ca_dir), FL_EFORMAT (ca.key or
 * ca.crt is not PEM), FL_EIO, FL_ENOMEM or FL_EBACKEND; the message names the file. */
fl_status fl_pki_issue(const char *ca_dir, const char *name, fl_pki_role role,
                       const fl_pki_issue_opts *opts, fl_err *err);

/* What fl_pki_cert_info reads from a certificate (not a verdict: see fl_pki_verify). Fixed size:
 * nothing to free. */
typedef struct {
    char cn[FL_PKI_CN_LEN];        /* subject CN as UTF-8; "" if it has none */
    char issuer_cn[FL_PKI_CN_LEN]; /* issuer CN as UTF-8; "" if it has none */
    char serial[48];               /* hexadecimal, as `openssl x509 -serial` prints it */
    long long not_before;          /* seconds since the epoch, UTC */
    long long not_after;
    unsigned char sha256[32]; /* SHA-256 of the DER certificate (for pinning) */
    char fingerprint[96];     /* the same as "AB:CD:...", like `openssl x509 -fingerprint
                                 -sha256` */
    int is_ca;                /* basicConstraints CA:TRUE */
    int has_eku;              /* it has an extendedKeyUsage extension */
    unsigned eku;             /* FL_PKI_SERVER | FL_PKI_CLIENT bits found in it */
    int n_sans;               /* entries in sans, at most FL_PKI_MAX_SANS */
    int sans_truncated;       /* it had more than FL_PKI_MAX_SANS */
    char sans[FL_PKI_MAX_SANS][FL_PKI_SAN_LEN]; /* "DNS:host", "IP:1.2.3.4", "IP:::1",
                                                   "email:...", "URI:...", "other" */
} fl_pki_info;

/* Reads the first PEM certificate of the file at path into *info. Returns FL_OK, FL_ENOTFOUND
 * or FL_EIO (cannot open path), FL_EFORMAT (no PEM certificate in it), FL_ENOMEM or
 * FL_EBACKEND; the message names path. */
fl_status fl_pki_cert_info(const char *path, fl_pki_info *info, fl_err *err);
/* The same for a PEM certificate in memory (len bytes, no NUL needed), e.g. the peer's from
 * gRPC's auth context; what names it in messages ("peer certificate"). */
fl_status fl_pki_cert_info_pem(const char *pem, size_t len, const char *what, fl_pki_info *info,
                               fl_err *err);

/* Checks that the certificate at crt may act as role under the CA certificate at ca_crt: it
 * chains to that CA (signature), both are within their validity now, and its
 * extendedKeyUsage allows role (OpenSSL's sslserver/sslclient purpose). Returns FL_OK, FL_EINVAL
 * with one sentence on why it is refused ("hospital-a.crt: certificate has expired (not after
 * 2024-05-01 10:00:00 UTC)", "...: not issued by the CA in ca.crt (...)", "server.crt:
 * extendedKeyUsage serverAuth does not allow a client (...)"), or what fl_pki_cert_info
 * returns for a file that cannot be read. */
fl_status fl_pki_verify(const char *ca_crt, const char *crt, fl_pki_role role, fl_err *err);

/* "YYYY-MM-DD HH:MM:SS UTC" for t (seconds since the epoch) into buf. Returns buf. */
char *fl_pki_time_str(long long t, char buf[32]);

#endif
