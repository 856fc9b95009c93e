/* kdf.c - HKDF-SHA256 over OpenSSL 3's EVP_KDF "HKDF" in its extract-only and expand-only modes
 * (see kdf.h). OpenSSL copies the key material into the KDF context and clears it on free. */
#include "kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>

#include "rand.h"

/* One HKDF call in mode (EVP_KDF_HKDF_MODE_*): key is the IKM (extract) or the PRK (expand). */
static fl_status hkdf_run(int mode, const uint8_t *key, size_t key_len, const uint8_t *salt,
                          size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                          size_t out_len, const char *what, fl_err *err) {
    static const uint8_t none[1]; /* OpenSSL wants a pointer even for an empty string */
    char digest[] = "SHA256";
    OSSL_PARAM params[6], *p = params;
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    *p++ =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(key ? key : none), key_len);
    /* No salt at all: RFC 5869 §2.2 then uses HashLen zeros, which is what HMAC does with an
     * empty key; OpenSSL does the same when the parameter is absent. */
    if (salt && salt_len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info && info_len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *p = OSSL_PARAM_construct_end();

    memset(out, 0, out_len);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    fl_status s = FL_OK;
    if (!ctx || EVP_KDF_derive(ctx, out, out_len, params) != 1) {
        fl_wipe(out, out_len);
        s = fl_crypto_fail(err, FL_EBACKEND, "HKDF-SHA256 %s failed", what);
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return s;
}

fl_status fl_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          uint8_t prk[FL_HKDF_PRK_LEN], fl_err *err) {
    return hkdf_run(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikm_len, salt, salt_len, NULL, 0, prk,
                    FL_HKDF_PRK_LEN, "extract", err);
}

fl_status fl_hkdf_expand(const uint8_t prk[FL_HKDF_PRK_LEN], const uint8_t *info, size_t info_len,
                         uint8_t *okm, size_t okm_len, fl_err *err) {
    if (okm_len == 0 || okm_len > FL_HKDF_MAX_OKM) {
        if (okm_len) memset(okm, 0, okm_len);
        return fl_fail(err, FL_EINVAL,
                       "HKDF-SHA256 gives 1 to %d bytes of output, not %zu (RFC 5869 §2.3)",
                       FL_HKDF_MAX_OKM, okm_len);
    }
    if (info_len > FL_HKDF_MAX_INFO) {
        memset(okm, 0, okm_len);
        return fl_fail(err, FL_EINVAL, "HKDF info of %zu bytes is longer than the %d allowed",
                       info_len, FL_HKDF_MAX_INFO);
    }
    return hkdf_run(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, FL_HKDF_PRK_LEN, NULL, 0, info, info_len,
                    okm, okm_len, "expand", err);
}

fl_status fl_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                  const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len, fl_err *err) {
    uint8_t prk[FL_HKDF_PRK_LEN];
    fl_status s = fl_hkdf_extract(salt, salt_len, ikm, ikm_len, prk, err);
    if (s == FL_OK)
        s = fl_hkdf_expand(prk, info, info_len, okm, okm_len, err);
    else if (okm_len)
        memset(okm, 0, okm_len);
    fl_wipe(prk, sizeof prk);
    return s;
}
