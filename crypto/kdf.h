/* kdf.h - HKDF with SHA-256 (RFC 5869) over OpenSSL 3's EVP_KDF: extract, expand, and both in one
 * call. Secure aggregation binds its keys to study and round through the info string. Not a
 * password hash: HKDF assumes input keying material that already has entropy. */
#ifndef FL_KDF_H
#define FL_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_HKDF_PRK_LEN 32                      /* bytes of a pseudorandom key (SHA-256) */
#define FL_HKDF_MAX_OKM (255 * FL_HKDF_PRK_LEN) /* RFC 5869 §2.3: L <= 255 HashLen */
#define FL_HKDF_MAX_INFO 1024                   /* what OpenSSL 3.0 accepts as info */

/* PRK = HMAC-SHA256(salt, ikm). salt may be NULL/0 (RFC 5869: a string of 32 zeros); ikm may be
 * NULL when ikm_len is 0. Returns FL_OK, or FL_EBACKEND with OpenSSL's reason (prk is then
 * zero). The caller wipes prk when done. */
fl_status fl_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          uint8_t prk[FL_HKDF_PRK_LEN], fl_err *err);
/* OKM = the first okm_len bytes of T(1) || T(2) || ... with T(i) = HMAC(prk, T(i-1) || info ||
 * i). FL_EINVAL when okm_len is 0 or above FL_HKDF_MAX_OKM, or info_len above FL_HKDF_MAX_INFO;
 * FL_EBACKEND with OpenSSL's reason. On failure okm is zero. */
fl_status fl_hkdf_expand(const uint8_t prk[FL_HKDF_PRK_LEN], const uint8_t *info, size_t info_len,
                         uint8_t *okm, size_t okm_len, fl_err *err);
/* Extract then expand; the intermediate PRK never leaves this function (it is wiped). */
fl_status fl_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                  const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len, fl_err *err);

#endif
