/* aead.c - AES-256-GCM over OpenSSL 3's EVP_Cipher* (see aead.h). Seal and open share one pass;
 * open zeroes its output unless the tag matched. */
#include "aead.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

#include "rand.h"

#define PIECE (1 << 30) /* EVP takes int lengths: feed larger buffers in pieces */

/* One GCM pass: enc = 1 seals in into out and writes tag, enc = 0 opens in into out and checks
 * tag. Returns FL_OK, FL_EFORMAT (open: the tag does not match) or FL_EBACKEND. */
static fl_status gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                     size_t aad_len, const uint8_t *in, size_t n, uint8_t *out, uint8_t *tag,
                     fl_err *err) {
    const char *what = enc ? "AES-256-GCM seal" : "AES-256-GCM open";
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    fl_status s = FL_OK;
    uint8_t none[16];
    int len;
    if (!ctx || EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, enc, NULL) != 1) {
        s = fl_crypto_fail(err, FL_EBACKEND, "%s: cannot set up the cipher", what);
        goto done;
    }
    for (size_t off = 0; off < aad_len; off += PIECE) {
        int piece = aad_len - off < PIECE ? (int)(aad_len - off) : PIECE;
        if (EVP_CipherUpdate(ctx, NULL, &len, aad + off, piece) != 1) {
            s = fl_crypto_fail(err, FL_EBACKEND, "%s: associated data refused", what);
            goto done;
        }
    }
    for (size_t off = 0; off < n; off += PIECE) {
        int piece = n - off < PIECE ? (int)(n - off) : PIECE;
        if (EVP_CipherUpdate(ctx, out + off, &len, in + off, piece) != 1 || len != piece) {
            s = fl_crypto_fail(err, FL_EBACKEND, "%s: %zu bytes refused", what, n);
            goto done;
        }
    }
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, FL_AEAD_TAG_LEN, tag) != 1) {
        s = fl_crypto_fail(err, FL_EBACKEND, "%s: cannot set the tag", what);
        goto done;
    }
    /* GCM has no padding: final writes nothing, but for open it is where the tag is checked. */
    if (EVP_CipherFinal_ex(ctx, none, &len) != 1) {
        if (enc) {
            s = fl_crypto_fail(err, FL_EBACKEND, "%s: cannot finish", what);
        } else {
            ERR_clear_error();
            s = fl_fail(err, FL_EFORMAT,
                        "%s: the tag does not match (wrong key, nonce or associated data, or an "
                        "altered ciphertext or tag)",
                        what);
        }
        goto done;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, FL_AEAD_TAG_LEN, tag) != 1)
        s = fl_crypto_fail(err, FL_EBACKEND, "%s: cannot read the tag", what);
done:
    if (s != FL_OK) {
        /* Never release unauthenticated plaintext, nor a ciphertext without its tag. */
        if (n) fl_wipe(out, n);
        if (enc) memset(tag, 0, FL_AEAD_TAG_LEN);
    }
    EVP_CIPHER_CTX_free(ctx); /* clears the key schedule */
    return s;
}

fl_status fl_aead_seal(const uint8_t key[FL_AEAD_KEY_LEN], const uint8_t nonce[FL_AEAD_NONCE_LEN],
                       const void *aad, size_t aad_len, const void *pt, size_t n, void *ct,
                       uint8_t tag[FL_AEAD_TAG_LEN], fl_err *err) {
    return gcm(1, key, nonce, aad, aad_len, pt, n, ct, tag, err);
}

fl_status fl_aead_open(const uint8_t key[FL_AEAD_KEY_LEN], const uint8_t nonce[FL_AEAD_NONCE_LEN],
                       const void *aad, size_t aad_len, const void *ct, size_t n,
                       const uint8_t tag[FL_AEAD_TAG_LEN], void *pt, fl_err *err) {
    uint8_t want[FL_AEAD_TAG_LEN];
    memcpy(want, tag, sizeof want); /* EVP's set-tag control takes a non-const pointer */
    return gcm(0, key, nonce, aad, aad_len, ct, n, pt, want, err);
}
