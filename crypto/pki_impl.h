/* pki_impl.h - what pki.c shares with cert_sign.c at OpenSSL's level: reading a PEM file,
 * OpenSSL's errors as one sentence, a certificate's CN, and the check of a certificate against
 * a CA with pki.h's sentences. Internal to crypto/: the API is pki.h and cert_sign.h. */
#ifndef FL_PKI_IMPL_H
#define FL_PKI_IMPL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki.h"

/* Fails with s and the sentence, followed by OpenSSL's reason for the oldest error it queued
 * (the root cause); the queue is cleared so no stale reason leaks into a later message. */
fl_status fl__pki_ossl_fail(fl_err *err, fl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads the first PEM certificate (key == NULL) into *crt, or the first unencrypted PEM
 * private key into *key, of path (the caller frees it). Never prompts for a password. Returns
 * FL_OK, FL_ENOTFOUND or FL_EIO (cannot open path), FL_EFORMAT (none in it); the message names
 * path. */
fl_status fl__pki_read_pem(const char *path, X509 **crt, EVP_PKEY **key, fl_err *err);

/* The first CN of nm as UTF-8 into out (FL_PKI_CN_LEN bytes), "" if it has none. */
void fl__pki_name_cn(const X509_NAME *nm, char *out);

/* fl_pki_verify's checks of x under ca (neither is taken): x's extendedKeyUsage allows role,
 * x chains to ca by signature, both are valid now. ca_crt and crt name them in the sentence of
 * a refusal (FL_EINVAL); FL_EBACKEND when OpenSSL cannot set up the check. */
fl_status fl__pki_verify_x509(X509 *ca, X509 *x, fl_pki_role role, const char *ca_crt,
                              const char *crt, fl_err *err);

#endif
