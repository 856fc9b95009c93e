/* stream.h - keystream generators for secure aggregation's mask expansion: AES-256-CTR and
 * ChaCha20 (RFC 8439) over OpenSSL 3, read chunk by chunk into a caller's buffer or added as
 * 32-bit words modulo 2^32 straight into a vector, on several threads (OpenMP), at memory speed.
 * Not encryption: there is no authentication here (aead.h is that), and a (key, iv) pair names
 * one mask, so it must never serve two. */
#ifndef FL_STREAM_H
#define FL_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_STREAM_KEY_LEN 32 /* AES-256 and ChaCha20 keys */
#define FL_STREAM_IV_LEN 16  /* OpenSSL's IV for both; see fl_stream_init */

typedef enum {
    FL_STREAM_AES256_CTR = 0,
    FL_STREAM_CHACHA20 = 1,
} fl_stream_cipher;

/* A keystream owned by the caller (init ... destroy). It holds a copy of the key, which destroy
 * wipes. One stream is used by one thread at a time; the add functions spread one call over
 * threads themselves. */
typedef struct {
    fl_stream_cipher cipher;
    uint8_t key[FL_STREAM_KEY_LEN];
    uint8_t iv[FL_STREAM_IV_LEN]; /* the stream's start */
    uint64_t pos;                 /* keystream bytes already used */
    void *evp;                    /* EVP_CIPHER*, fetched once */
    void *ctx;                    /* EVP_CIPHER_CTX* positioned at pos, or NULL */
} fl_stream;

/* Starts the keystream of cipher under key at iv, position 0. iv is OpenSSL's 16 bytes:
 * for AES-256-CTR the first counter block (a 128-bit big-endian counter, incremented per 16-byte
 * block); for ChaCha20 a 32-bit little-endian block counter then the 96-bit nonce of RFC 8439
 * §2.3 (a ChaCha20 stream ends when that counter would wrap: 2^32 blocks of 64 bytes from 0).
 * Returns FL_OK, FL_EINVAL for an unknown cipher, or FL_EBACKEND with OpenSSL's reason; on
 * failure s holds nothing (destroy is still fine). */
fl_status fl_stream_init(fl_stream *s, fl_stream_cipher cipher,
                         const uint8_t key[FL_STREAM_KEY_LEN], const uint8_t iv[FL_STREAM_IV_LEN],
                         fl_err *err);
/* Moves to keystream byte pos (any byte, forward or back). FL_EINVAL past a ChaCha20 stream's
 * end. */
fl_status fl_stream_seek(fl_stream *s, uint64_t pos, fl_err *err);
/* Writes the next n keystream bytes into out and advances by n. Returns FL_OK, FL_EINVAL when
 * they run past a ChaCha20 stream's end (out is then zero and the position unchanged), or
 * FL_EBACKEND with OpenSSL's reason. */
fl_status fl_stream_bytes(fl_stream *s, uint8_t *out, size_t n, fl_err *err);
/* acc[i] += sign * w[i] modulo 2^32 for i < n, where w[i] is the little-endian word at keystream
 * bytes 4i..4i+3 from the current position; sign is +1 (mask) or -1 (unmask). Advances by 4n.
 * Runs on OpenMP's threads (omp_set_num_threads / OMP_NUM_THREADS), each from its own offset.
 * Returns FL_OK; FL_EINVAL for another sign or past a ChaCha20 stream's end (acc untouched);
 * FL_EBACKEND with OpenSSL's reason (acc is then partly masked: discard it). */
fl_status fl_stream_add_u32(fl_stream *s, uint32_t *acc, size_t n, int sign, fl_err *err);
/* The same for k streams at once, acc[i] += sum_j sign[j] * w_j[i], in one pass over acc: with
 * many masks this reads and writes the vector once instead of k times. The streams must be
 * distinct; each advances by 4n. */
fl_status fl_stream_add_u32_many(fl_stream *const *s, const int *sign, size_t k, uint32_t *acc,
                                 size_t n, fl_err *err);
/* Wipes the key and releases OpenSSL's state; a zeroed or failed-init s is fine. */
void fl_stream_destroy(fl_stream *s);

#endif
