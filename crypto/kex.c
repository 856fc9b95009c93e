/* kex.c - X25519 over OpenSSL 3's EVP_PKEY on raw keys (see kex.h). OpenSSL keeps its copy of a
 * private key in secure-cleared memory and wipes it on free; our own copies are wiped here. */
#include "kex.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "rand.h"

fl_status fl_x25519_keygen(uint8_t priv[FL_X25519_LEN], uint8_t pub[FL_X25519_LEN], fl_err *err) {
    uint8_t seed[FL_X25519_LEN];
    /* RFC 7748 §6.1: a private key is 32 random bytes; X25519 clamps them itself. */
    fl_status s = fl_rand_bytes(seed, sizeof seed, err);
    if (s == FL_OK) s = fl_x25519_public(seed, pub, err);
    if (s == FL_OK)
        memcpy(priv, seed, FL_X25519_LEN);
    else {
        fl_wipe(priv, FL_X25519_LEN);
        memset(pub, 0, FL_X25519_LEN);
    }
    fl_wipe(seed, sizeof seed);
    return s;
}

fl_status fl_x25519_public(const uint8_t priv[FL_X25519_LEN], uint8_t pub[FL_X25519_LEN],
                           fl_err *err) {
    memset(pub, 0, FL_X25519_LEN);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, FL_X25519_LEN);
    size_t len = FL_X25519_LEN;
    fl_status s = FL_OK;
    if (!k || EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != FL_X25519_LEN) {
        memset(pub, 0, FL_X25519_LEN);
        s = fl_crypto_fail(err, FL_EBACKEND, "cannot compute an X25519 public key");
    }
    EVP_PKEY_free(k);
    return s;
}

fl_status fl_x25519_shared(const uint8_t priv[FL_X25519_LEN], const uint8_t peer[FL_X25519_LEN],
                           uint8_t shared[FL_X25519_LEN], fl_err *err) {
    static const uint8_t zero[FL_X25519_LEN];
    memset(shared, 0, FL_X25519_LEN);
    EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, FL_X25519_LEN);
    EVP_PKEY *theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, FL_X25519_LEN);
    EVP_PKEY_CTX *ctx = mine ? EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL) : NULL;
    size_t len = FL_X25519_LEN;
    fl_status s = FL_OK;
    if (!mine || !theirs || !ctx || EVP_PKEY_derive_init(ctx) != 1) {
        s = fl_crypto_fail(err, FL_EBACKEND, "cannot set up X25519");
    } else if (EVP_PKEY_derive_set_peer(ctx, theirs) != 1) {
        s = fl_crypto_fail(err, FL_EINVAL, "X25519 refuses the peer's public key");
    } else if (EVP_PKEY_derive(ctx, shared, &len) != 1 || len != FL_X25519_LEN) {
        /* OpenSSL itself fails the derivation when the result is all zero (RFC 7748 §6.1), and
         * nothing else makes it fail once the keys are set: report the likely cause. */
        s = fl_crypto_fail(err, FL_EINVAL,
                           "X25519 with the peer's public key failed (a low-order point, which "
                           "gives an all-zero shared secret, is refused)");
    } else if (CRYPTO_memcmp(shared, zero, FL_X25519_LEN) == 0) {
        /* A second, constant-time check that does not rely on the provider. */
        s = fl_fail(err, FL_EINVAL,
                    "X25519 with the peer's public key gives an all-zero shared secret (a "
                    "low-order point): refused");
    }
    if (s != FL_OK) fl_wipe(shared, FL_X25519_LEN);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(theirs);
    EVP_PKEY_free(mine);
    return s;
}
