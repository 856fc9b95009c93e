/* cert_sign.h - signatures by a certified identity of the consortium (pki.h): a hospital signs
 * with its TLS client key (ECDSA, SHA-256, the DER signature of X9.62), and anyone holding the
 * consortium's CA certificate verifies it with the hospital's DER certificate, after checking
 * that certificate: issued by that CA, valid now, extendedKeyUsage clientAuth, CN the expected
 * id. Secure aggregation's adverts are signed so (client/task_secagg.c). Not a CA, not TLS, and
 * no revocation (as pki.h: the consortium has no CRL or OCSP). */
#ifndef FL_CERT_SIGN_H
#define FL_CERT_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_CERT_DER_MAX 4096 /* bytes of a DER certificate this module accepts */
#define FL_CERT_SIG_MAX 160  /* bytes of a signature: a DER ECDSA signature up to P-521 (139) */

/* A private key and its certificate, loaded together. */
typedef struct fl_cert_signer fl_cert_signer;

/* Loads the unencrypted PEM private key at key_path and the (first) PEM certificate at
 * crt_path, which must hold that key's public half and have an elliptic-curve key (pki.h issues
 * P-256). *out is freed with fl_cert_signer_free. Returns FL_OK; FL_ENOTFOUND / FL_EIO (a file
 * cannot be read), FL_EFORMAT (no PEM key or certificate in it, a certificate longer than
 * FL_CERT_DER_MAX bytes in DER), FL_EINVAL (the key is not the certificate's, or not an EC key),
 * FL_ENOMEM; the sentence names the file. */
fl_status fl_cert_signer_load(const char *key_path, const char *crt_path, fl_cert_signer **out,
                              fl_err *err);
/* Frees s (wiping nothing: OpenSSL frees the key's secret); NULL is a no-op. */
void fl_cert_signer_free(fl_cert_signer *s);
/* s's certificate as DER (owned by s) and its length in *len. */
const uint8_t *fl_cert_signer_der(const fl_cert_signer *s, size_t *len);
/* s's certificate's subject CN (UTF-8, owned by s; "" if it has none). */
const char *fl_cert_signer_cn(const fl_cert_signer *s);

/* Signs msg[0..n) with s's key: ECDSA over SHA-256(msg), DER-encoded, into sig, which holds
 * *sig_len bytes on entry (FL_CERT_SIG_MAX is always enough); *sig_len is set to the
 * signature's length. Returns FL_OK, FL_EINVAL (sig too small), FL_EBACKEND with OpenSSL's
 * reason. */
fl_status fl_cert_sign(const fl_cert_signer *s, const void *msg, size_t n, uint8_t *sig,
                       size_t *sig_len, fl_err *err);

/* Checks that sig[0..sig_len) is a signature of msg[0..n) by the holder of the DER certificate
 * der[0..der_len), and that this certificate is the consortium's identity of cn: issued (signed)
 * by the CA certificate in the PEM file ca_crt, it and the CA valid now, its extendedKeyUsage
 * allows clientAuth, its subject has exactly one CN and that CN is cn, and its key is an EC key.
 * The certificate's checks come first, so a refusal says the first thing wrong. Returns FL_OK;
 * FL_EINVAL with one sentence on why it is refused ("hospital-2's certificate: certificate has
 * expired (not after ...)", "...: not issued by the CA in ca.crt (...)", "...: its CN is
 * hospital-3, not hospital-2", "...: the signature does not verify"); FL_EFORMAT when der is
 * not a DER certificate (or has trailing bytes); what fl_pki_cert_info returns when ca_crt
 * cannot be read. who names the certificate in the sentence (NULL: "the certificate"). */
fl_status fl_cert_verify(const char *ca_crt, const uint8_t *der, size_t der_len, const char *cn,
                         const void *msg, size_t n, const uint8_t *sig, size_t sig_len,
                         const char *who, fl_err *err);

/* Checks that the DER certificate der[0..der_len) names the same identity as the PEM
 * certificate pem[0..pem_len) (as gRPC gives the TLS peer's): the same subject CN and the same
 * public key. Returns FL_OK; FL_EINVAL with the sentence ("...: its CN is X, the connection's
 * certificate says Y", "...: its public key is not the connection's"); FL_EFORMAT when either
 * cannot be parsed. who names der's certificate (NULL: "the certificate"). */
fl_status fl_cert_match_pem(const uint8_t *der, size_t der_len, const char *pem, size_t pem_len,
                            const char *who, fl_err *err);

#endif
