/* hash.h - SHA-256 (one-shot and incremental, over OpenSSL's EVP) and lowercase hex encoding.
 * The one place fedlung hashes: model checkpoints, the audit log's chain and Merkle trees.
 * Not a generic digest layer: SHA-256 only. */
#ifndef FL_HASH_H
#define FL_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_SHA256_LEN 32                      /* bytes of a digest */
#define FL_SHA256_HEX (2 * FL_SHA256_LEN + 1) /* its hex form with the NUL */

/* SHA-256 of data[0..n) into out. Returns FL_OK, or FL_ENOMEM / FL_EBACKEND when OpenSSL fails
 * (its error queue is cleared). data may be NULL when n is 0. */
fl_status fl_sha256(const void *data, size_t n, uint8_t out[FL_SHA256_LEN]);
/* The same as 64 lowercase hex digits and a NUL; on failure hex is "". */
fl_status fl_sha256_hex(const void *data, size_t n, char hex[FL_SHA256_HEX]);

/* An incremental SHA-256 owned by the caller: init, any number of updates, final. Every call
 * returns FL_OK, or FL_ENOMEM / FL_EBACKEND from OpenSSL; after a failure only destroy is
 * useful. final releases the context (destroy after it is a no-op), so a context hashes once. */
typedef struct {
    void *ctx; /* EVP_MD_CTX*, NULL when released */
} fl_sha256_ctx;

fl_status fl_sha256_init(fl_sha256_ctx *h);
fl_status fl_sha256_update(fl_sha256_ctx *h, const void *data, size_t n);
fl_status fl_sha256_final(fl_sha256_ctx *h, uint8_t out[FL_SHA256_LEN]);
/* Releases the context without a digest; a released or zeroed h is fine. */
void fl_sha256_destroy(fl_sha256_ctx *h);

/* Writes n bytes as 2n lowercase hex digits and a NUL into hex (2n + 1 bytes). */
void fl_hex_encode(const uint8_t *bytes, size_t n, char *hex);
/* Reads exactly 2n hex digits (either case) from hex, which must end there (NUL), into
 * out[0..n). Returns FL_OK or FL_EFORMAT (out is then undefined). */
fl_status fl_hex_decode(const char *hex, uint8_t *out, size_t n);

#endif
