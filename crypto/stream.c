/* stream.c - AES-256-CTR and ChaCha20 keystreams over OpenSSL 3 (see stream.h). A keystream is
 * the encryption of zeros; any position is reached by setting the counter in the IV and
 * discarding the rest of a block, which is how each thread of the add functions starts at its
 * own offset. The keystream goes through a 16 KiB buffer per thread that stays in L1 cache with
 * its slice of the vector, so the vector is read and written once per call. */
#include "stream.h"

#include <omp.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "rand.h"

#define CHUNK 4096        /* words per step: 16 KiB of keystream, plus 16 KiB of the vector */
#define PAR_MIN (1 << 16) /* below this many words one thread does the whole call */
#define PIECE (1 << 30)   /* EVP takes int lengths: larger requests go in pieces */

static const uint8_t zeros[4 * CHUNK]; /* the plaintext whose encryption is the keystream */

static size_t block_len(const fl_stream *s) {
    return s->cipher == FL_STREAM_CHACHA20 ? 64 : 16;
}

/* Keystream bytes from the start to the stream's end: ChaCha20's 32-bit block counter must not
 * wrap (RFC 8439 §2.4; OpenSSL would carry into the nonce instead). AES-CTR's 128-bit counter
 * does not end within 64-bit positions. */
static uint64_t stream_end(const fl_stream *s) {
    if (s->cipher != FL_STREAM_CHACHA20) return UINT64_MAX;
    const uint8_t *c = s->iv;
    uint32_t first =
        (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
    return ((UINT64_C(1) << 32) - first) * 64;
}

/* FL_OK when bytes [pos, pos + n) lie within the stream. */
static fl_status check_range(const fl_stream *s, uint64_t pos, uint64_t n, fl_err *err) {
    uint64_t end = stream_end(s);
    if (n > end || pos > end - n)
        return fl_fail(err, FL_EINVAL,
                       "ChaCha20 keystream bytes %llu to %llu are past its end at byte %llu "
                       "(the 32-bit block counter would wrap)",
                       (unsigned long long)pos, (unsigned long long)(pos + n),
                       (unsigned long long)end);
    return FL_OK;
}

/* The IV that starts block number `block` of s. */
static void iv_at(const fl_stream *s, uint64_t block, uint8_t iv[FL_STREAM_IV_LEN]) {
    memcpy(iv, s->iv, FL_STREAM_IV_LEN);
    if (s->cipher == FL_STREAM_CHACHA20) {
        /* Little-endian counter in bytes 0..3; check_range keeps it from wrapping. */
        uint64_t c = ((uint64_t)iv[0] | (uint64_t)iv[1] << 8 | (uint64_t)iv[2] << 16 |
                      (uint64_t)iv[3] << 24) +
                     block;
        for (int i = 0; i < 4; i++) iv[i] = (uint8_t)(c >> (8 * i));
        return;
    }
    /* AES-CTR: the whole block is one big-endian counter, as OpenSSL increments it. */
    unsigned carry = 0;
    for (int i = FL_STREAM_IV_LEN - 1; i >= 0; i--) {
        unsigned v = iv[i] + (unsigned)(block & 0xff) + carry;
        iv[i] = (uint8_t)v;
        carry = v >> 8;
        block >>= 8;
    }
}

/* Sets ctx (new or used) to produce the keystream of s from byte pos. */
static fl_status ctx_at(const fl_stream *s, EVP_CIPHER_CTX *ctx, uint64_t pos, fl_err *err) {
    uint8_t iv[FL_STREAM_IV_LEN], junk[64];
    size_t bl = block_len(s), rem = (size_t)(pos % bl);
    int len;
    iv_at(s, pos / bl, iv);
    fl_status st = FL_OK;
    if (EVP_EncryptInit_ex2(ctx, s->evp, s->key, iv, NULL) != 1 ||
        (rem && EVP_EncryptUpdate(ctx, junk, &len, zeros, (int)rem) != 1))
        st = fl_crypto_fail(err, FL_EBACKEND, "cannot start the keystream at byte %llu",
                            (unsigned long long)pos);
    fl_wipe(junk, sizeof junk);
    return st;
}

fl_status fl_stream_init(fl_stream *s, fl_stream_cipher cipher,
                         const uint8_t key[FL_STREAM_KEY_LEN], const uint8_t iv[FL_STREAM_IV_LEN],
                         fl_err *err) {
    memset(s, 0, sizeof *s);
    const char *name = cipher == FL_STREAM_AES256_CTR ? "AES-256-CTR"
                       : cipher == FL_STREAM_CHACHA20 ? "ChaCha20"
                                                      : NULL;
    if (!name) return fl_fail(err, FL_EINVAL, "unknown keystream cipher %d", (int)cipher);
    s->evp = EVP_CIPHER_fetch(NULL, name, NULL);
    if (!s->evp) return fl_crypto_fail(err, FL_EBACKEND, "OpenSSL has no %s", name);
    s->cipher = cipher;
    memcpy(s->key, key, FL_STREAM_KEY_LEN);
    memcpy(s->iv, iv, FL_STREAM_IV_LEN);
    return FL_OK;
}

/* Forgets the positioned context (the next fl_stream_bytes makes one at pos). */
static void drop_ctx(fl_stream *s) {
    EVP_CIPHER_CTX_free(s->ctx);
    s->ctx = NULL;
}

fl_status fl_stream_seek(fl_stream *s, uint64_t pos, fl_err *err) {
    fl_status st = check_range(s, pos, 0, err);
    if (st != FL_OK) return st;
    drop_ctx(s);
    s->pos = pos;
    return FL_OK;
}

fl_status fl_stream_bytes(fl_stream *s, uint8_t *out, size_t n, fl_err *err) {
    if (n == 0) return FL_OK;
    memset(out, 0, n);
    fl_status st = check_range(s, s->pos, n, err);
    if (st != FL_OK) return st;
    if (!s->ctx) {
        s->ctx = EVP_CIPHER_CTX_new();
        if (!s->ctx) return fl_crypto_fail(err, FL_ENOMEM, "cannot allocate a cipher context");
        st = ctx_at(s, s->ctx, s->pos, err);
    }
    for (size_t off = 0; st == FL_OK && off < n; off += PIECE) {
        int piece = n - off < PIECE ? (int)(n - off) : PIECE, len;
        if (EVP_EncryptUpdate(s->ctx, out + off, &len, out + off, piece) != 1 || len != piece)
            st = fl_crypto_fail(err, FL_EBACKEND, "keystream generation failed");
    }
    if (st != FL_OK) {
        fl_wipe(out, n);
        drop_ctx(s);
        return st;
    }
    s->pos += n;
    return FL_OK;
}

static void add_words(uint32_t *restrict acc, const uint32_t *restrict w, size_t m) {
#pragma omp simd
    for (size_t i = 0; i < m; i++) acc[i] += w[i];
}

static void sub_words(uint32_t *restrict acc, const uint32_t *restrict w, size_t m) {
#pragma omp simd
    for (size_t i = 0; i < m; i++) acc[i] -= w[i];
}

/* One thread's share: acc[lo..hi) += sum_j sign[j] * w_j, each stream from its own position. */
static fl_status add_range(fl_stream *const *s, const int *sign, size_t k, uint32_t *acc, size_t lo,
                           size_t hi, fl_err *err) {
    _Alignas(64) uint32_t ks[CHUNK];
    EVP_CIPHER_CTX **ctx = calloc(k, sizeof *ctx);
    fl_status st = FL_OK;
    if (!ctx) return fl_fail(err, FL_ENOMEM, "out of memory for %zu cipher contexts", k);
    for (size_t j = 0; st == FL_OK && j < k; j++) {
        ctx[j] = EVP_CIPHER_CTX_new();
        st = ctx[j] ? ctx_at(s[j], ctx[j], s[j]->pos + 4 * (uint64_t)lo, err)
                    : fl_crypto_fail(err, FL_ENOMEM, "cannot allocate a cipher context");
    }
    for (size_t c = lo; st == FL_OK && c < hi; c += CHUNK) {
        size_t m = hi - c < CHUNK ? hi - c : CHUNK;
        for (size_t j = 0; j < k; j++) {
            int len;
            if (EVP_EncryptUpdate(ctx[j], (uint8_t *)ks, &len, zeros, (int)(4 * m)) != 1) {
                st = fl_crypto_fail(err, FL_EBACKEND, "keystream generation failed");
                break;
            }
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            for (size_t i = 0; i < m; i++) ks[i] = __builtin_bswap32(ks[i]);
#endif
            if (sign[j] > 0)
                add_words(acc + c, ks, m);
            else
                sub_words(acc + c, ks, m);
        }
    }
    fl_wipe(ks, sizeof ks);
    for (size_t j = 0; j < k; j++) EVP_CIPHER_CTX_free(ctx[j]); /* clears key schedules */
    free(ctx);
    return st;
}

fl_status fl_stream_add_u32_many(fl_stream *const *s, const int *sign, size_t k, uint32_t *acc,
                                 size_t n, fl_err *err) {
    if (n > UINT64_MAX / 4) return fl_fail(err, FL_EINVAL, "%zu words is too many", n);
    for (size_t j = 0; j < k; j++) {
        if (sign[j] != 1 && sign[j] != -1)
            return fl_fail(err, FL_EINVAL, "keystream %zu has sign %d; only +1 and -1 exist", j,
                           sign[j]);
        fl_status st = check_range(s[j], s[j]->pos, 4 * (uint64_t)n, err);
        if (st != FL_OK) return st;
    }
    if (k == 0 || n == 0) return FL_OK;

    fl_status st = FL_OK;
    fl_err first = {{0}};
    int threads = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
    {
        /* Contiguous shares on 16-word (64-byte) boundaries: whole blocks of either cipher. */
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t share = ((n + nt - 1) / nt + 15) & ~(size_t)15;
        size_t lo = t * share < n ? t * share : n, hi = n - lo < share ? n : lo + share;
        fl_err mine = {{0}};
        fl_status ms = lo < hi ? add_range(s, sign, k, acc, lo, hi, &mine) : FL_OK;
        if (ms != FL_OK) {
#pragma omp critical(fl_stream_error)
            if (st == FL_OK) {
                st = ms;
                first = mine;
            }
        }
    }
    if (st != FL_OK) return fl_fail(err, st, "%s", first.msg);
    for (size_t j = 0; j < k; j++) {
        drop_ctx(s[j]);
        s[j]->pos += 4 * (uint64_t)n;
    }
    return FL_OK;
}

fl_status fl_stream_add_u32(fl_stream *s, uint32_t *acc, size_t n, int sign, fl_err *err) {
    return fl_stream_add_u32_many(&s, &sign, 1, acc, n, err);
}

void fl_stream_destroy(fl_stream *s) {
    drop_ctx(s);
    EVP_CIPHER_free(s->evp);
    fl_wipe(s, sizeof *s);
}
