/* cert_sign.c - cert_sign.h over OpenSSL 3's EVP: ECDSA with SHA-256 by a TLS client key, and
 * its verification under the consortium CA with pki.c's certificate checks. It reads a
 * certificate's DER as the wire carries it; it writes no files. */
#define OPENSSL_API_COMPAT 30000 /* hide everything deprecated in 3.0 (EC_KEY_*) */

#include "cert_sign.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki_impl.h"

struct fl_cert_signer {
    EVP_PKEY *key;
    size_t der_len;
    uint8_t der[FL_CERT_DER_MAX];
    char cn[FL_PKI_CN_LEN];
};

/* x's DER encoding into der (FL_CERT_DER_MAX bytes) and *len. */
static fl_status encode_der(X509 *x, uint8_t *der, size_t *len, const char *what, fl_err *err) {
    int n = i2d_X509(x, NULL);
    if (n <= 0) return fl__pki_ossl_fail(err, FL_EFORMAT, "%s: cannot encode it as DER", what);
    if ((size_t)n > FL_CERT_DER_MAX)
        return fl_fail(err, FL_EFORMAT, "%s: %d bytes of DER, more than the %d allowed", what, n,
                       FL_CERT_DER_MAX);
    uint8_t *p = der;
    if (i2d_X509(x, &p) != n)
        return fl__pki_ossl_fail(err, FL_EFORMAT, "%s: cannot encode it as DER", what);
    *len = (size_t)n;
    return FL_OK;
}

/* Parses der[0..len) as exactly one certificate into *x (the caller frees it). */
static fl_status decode_der(const uint8_t *der, size_t len, X509 **x, const char *what,
                            fl_err *err) {
    const unsigned char *p = der;
    *x = NULL;
    if (!der || len == 0 || len > FL_CERT_DER_MAX)
        return fl_fail(err, FL_EFORMAT, "%s: %zu bytes, not a DER certificate of 1 to %d", what,
                       der ? len : 0, FL_CERT_DER_MAX);
    *x = d2i_X509(NULL, &p, (long)len);
    if (*x && p == der + len) return FL_OK;
    X509_free(*x);
    *x = NULL;
    return fl__pki_ossl_fail(err, FL_EFORMAT, "%s: not a DER certificate", what);
}

static int is_ec(const EVP_PKEY *k) {
    return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC;
}

fl_status fl_cert_signer_load(const char *key_path, const char *crt_path, fl_cert_signer **out,
                              fl_err *err) {
    *out = NULL;
    X509 *x = NULL;
    fl_cert_signer *s = calloc(1, sizeof *s);
    if (!s) return fl_fail(err, FL_ENOMEM, "%s: out of memory", crt_path);
    fl_status st = fl__pki_read_pem(key_path, NULL, &s->key, err);
    if (st == FL_OK) st = fl__pki_read_pem(crt_path, &x, NULL, err);
    if (st != FL_OK) goto done;
    if (!is_ec(s->key))
        st = fl_fail(err, FL_EINVAL, "%s: not an elliptic-curve (ECDSA) key", key_path);
    else if (X509_check_private_key(x, s->key) != 1)
        st = fl__pki_ossl_fail(err, FL_EINVAL, "%s does not belong to %s", key_path, crt_path);
    else
        st = encode_der(x, s->der, &s->der_len, crt_path, err);
    if (st == FL_OK) fl__pki_name_cn(X509_get_subject_name(x), s->cn);
done:
    X509_free(x);
    if (st == FL_OK)
        *out = s;
    else
        fl_cert_signer_free(s);
    return st;
}

void fl_cert_signer_free(fl_cert_signer *s) {
    if (!s) return;
    EVP_PKEY_free(s->key);
    free(s);
}

const uint8_t *fl_cert_signer_der(const fl_cert_signer *s, size_t *len) {
    *len = s->der_len;
    return s->der;
}

const char *fl_cert_signer_cn(const fl_cert_signer *s) {
    return s->cn;
}

fl_status fl_cert_sign(const fl_cert_signer *s, const void *msg, size_t n, uint8_t *sig,
                       size_t *sig_len, fl_err *err) {
    int need = EVP_PKEY_get_size(s->key);
    if (need <= 0 || (size_t)need > *sig_len)
        return fl_fail(err, FL_EINVAL, "a signature of %s takes up to %d bytes, room for %zu",
                       s->cn, need, *sig_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = *sig_len;
    int ok = ctx && EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, s->key, NULL) == 1 &&
             EVP_DigestSign(ctx, sig, &len, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return fl__pki_ossl_fail(err, FL_EBACKEND, "cannot sign as %s", s->cn);
    *sig_len = len;
    return FL_OK;
}

/* FL_OK when x's subject has exactly one CN and it is cn (byte for byte, no NUL inside). */
static fl_status check_cn(X509 *x, const char *cn, const char *who, fl_err *err) {
    const X509_NAME *nm = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (i < 0) return fl_fail(err, FL_EINVAL, "%s: it has no CN, %s expected", who, cn);
    if (X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
        return fl_fail(err, FL_EINVAL, "%s: its subject has several CNs", who);
    char got[FL_PKI_CN_LEN];
    fl__pki_name_cn(nm, got);
    unsigned char *u = NULL;
    int len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
    int same = len >= 0 && (size_t)len == strlen(cn) && memcmp(u, cn, (size_t)len) == 0;
    OPENSSL_free(u);
    if (!same) return fl_fail(err, FL_EINVAL, "%s: its CN is %s, not %s", who, got, cn);
    return FL_OK;
}

fl_status fl_cert_verify(const char *ca_crt, const uint8_t *der, size_t der_len, const char *cn,
                         const void *msg, size_t n, const uint8_t *sig, size_t sig_len,
                         const char *who, fl_err *err) {
    if (!who) who = "the certificate";
    if (!cn || !*cn) return fl_fail(err, FL_EINVAL, "%s: no identity to check it against", who);
    X509 *x = NULL, *ca = NULL;
    EVP_MD_CTX *ctx = NULL;
    fl_status st = decode_der(der, der_len, &x, who, err);
    if (st == FL_OK) st = fl__pki_read_pem(ca_crt, &ca, NULL, err);
    if (st != FL_OK) goto done;
    /* pki.c's check lets a certificate without extendedKeyUsage act as anything: here the
     * extension must be there and say clientAuth */
    uint32_t xku = X509_get_extended_key_usage(x);
    if (xku == UINT32_MAX) {
        st =
            fl_fail(err, FL_EINVAL, "%s: it has no extendedKeyUsage (clientAuth is required)", who);
        goto done;
    }
    if ((st = fl__pki_verify_x509(ca, x, FL_PKI_CLIENT, ca_crt, who, err)) != FL_OK ||
        (st = check_cn(x, cn, who, err)) != FL_OK)
        goto done;
    EVP_PKEY *pub = X509_get0_pubkey(x);
    if (!is_ec(pub)) {
        st = fl_fail(err, FL_EINVAL, "%s: not an elliptic-curve (ECDSA) key", who);
        goto done;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pub, NULL) != 1) {
        st = fl__pki_ossl_fail(err, FL_EBACKEND, "%s: cannot set up the verification", who);
        goto done;
    }
    if (!sig || sig_len == 0 || EVP_DigestVerify(ctx, sig, sig_len, msg, n) != 1)
        st = fl_fail(err, FL_EINVAL, "%s: the signature does not verify with its key", who);
done:
    ERR_clear_error(); /* a refused signature queues OpenSSL's reason, not needed */
    EVP_MD_CTX_free(ctx);
    X509_free(x);
    X509_free(ca);
    return st;
}

fl_status fl_cert_match_pem(const uint8_t *der, size_t der_len, const char *pem, size_t pem_len,
                            const char *who, fl_err *err) {
    if (!who) who = "the certificate";
    X509 *x = NULL, *peer = NULL;
    fl_status st = decode_der(der, der_len, &x, who, err);
    if (st != FL_OK) return st;
    BIO *b = pem && pem_len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)pem_len) : NULL;
    peer = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    char a[FL_PKI_CN_LEN], c[FL_PKI_CN_LEN];
    if (!peer) {
        st = fl__pki_ossl_fail(err, FL_EFORMAT, "%s: the connection's certificate is not PEM", who);
        goto done;
    }
    fl__pki_name_cn(X509_get_subject_name(x), a);
    fl__pki_name_cn(X509_get_subject_name(peer), c);
    if (strcmp(a, c) != 0)
        st = fl_fail(err, FL_EINVAL, "%s: its CN is %s, the connection's certificate says %s", who,
                     a, c);
    else if (EVP_PKEY_eq(X509_get0_pubkey(x), X509_get0_pubkey(peer)) != 1)
        st = fl_fail(err, FL_EINVAL, "%s: its public key is not the connection's", who);
done:
    ERR_clear_error();
    X509_free(x);
    X509_free(peer);
    return st;
}
