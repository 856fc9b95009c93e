/* rand.h - secret randomness from OpenSSL's CSPRNG (RAND_bytes), wiping secrets from memory, and
 * the translation of OpenSSL's errors that every primitive of crypto/ shares. Not a seeded or
 * reproducible generator: common/rng.h is that, and must never produce anything secret. */
#ifndef FL_RAND_H
#define FL_RAND_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

/* Fills buf[0..n) from OpenSSL's CSPRNG (the operating system's entropy behind a DRBG). Returns
 * FL_OK, or FL_EBACKEND with OpenSSL's reason in err (buf is then wiped: never half-random). */
fl_status fl_rand_bytes(void *buf, size_t n, fl_err *err);
/* A uniform 64-bit integer into *out. Errors as for fl_rand_bytes. */
fl_status fl_rand_u64(uint64_t *out, fl_err *err);
/* A uniform integer in [0, bound) into *out, by rejection (no modulo bias). FL_EINVAL when bound
 * is 0; otherwise as for fl_rand_bytes. */
fl_status fl_rand_below(uint64_t bound, uint64_t *out, fl_err *err);

/* Overwrites p[0..n) with zeros in a way the compiler cannot drop (OPENSSL_cleanse). For keys,
 * seeds and shared secrets once they are no longer needed; p may be NULL when n is 0. */
void fl_wipe(void *p, size_t n);

/* A source of uniform random bytes for the samplers and secret sharing (crypto/dgauss.h,
 * crypto/shamir.h): fills out[0..n) and returns FL_OK, or a failure status that the caller's
 * function then returns. ctx is the source's own. Production passes fl_rand_source (the
 * CSPRNG; ctx ignored); tests pass a seeded generator. */
typedef fl_status (*fl_rand_fn)(void *ctx, uint8_t *out, size_t n);
fl_status fl_rand_source(void *ctx, uint8_t *out, size_t n);

/* For crypto/ modules: writes "<what>: <OpenSSL's most recent reason>" into err (OpenSSL's queue
 * is then cleared; "unknown OpenSSL error" when it was empty) and returns s. what is a printf
 * format. */
fl_status fl_crypto_fail(fl_err *err, fl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
