/* sign.h - Ed25519 signing keys over OpenSSL 3's EVP: generation, signing and verification,
 * PEM files (PKCS#8 private keys written 0600 and atomically, SubjectPublicKeyInfo public keys)
 * and the raw 32-byte public key with its hex and key id. Not a certificate or TLS layer. */
#ifndef FL_SIGN_H
#define FL_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "hash.h"

#define FL_ED25519_PUB_LEN 32  /* raw public key bytes (RFC 8032) */
#define FL_ED25519_SEED_LEN 32 /* raw private key (the seed) bytes */
#define FL_ED25519_SIG_LEN 64  /* signature bytes */

/* An Ed25519 key: a private key (which can sign and verify) or a public one (verify only). */
typedef struct fl_sign_key fl_sign_key;

/* A fresh private key from OpenSSL's CSPRNG into *out (the caller frees it). Returns FL_OK, or
 * FL_ENOMEM / FL_EBACKEND with OpenSSL's reason in err. */
fl_status fl_sign_key_generate(fl_sign_key **out, fl_err *err);
/* The private key whose RFC 8032 secret is seed (tests and known-answer checks). */
fl_status fl_sign_key_from_seed(const uint8_t seed[FL_ED25519_SEED_LEN], fl_sign_key **out,
                                fl_err *err);
/* The public key with raw bytes pub; FL_EFORMAT if OpenSSL refuses them. */
fl_status fl_sign_key_from_public(const uint8_t pub[FL_ED25519_PUB_LEN], fl_sign_key **out,
                                  fl_err *err);
/* Releases k; NULL is a no-op. */
void fl_sign_key_free(fl_sign_key *k);

/* Whether k holds the private half (can sign). */
int fl_sign_key_is_private(const fl_sign_key *k);
/* k's raw public key (either kind of key). */
void fl_sign_key_public(const fl_sign_key *k, uint8_t pub[FL_ED25519_PUB_LEN]);
/* k's key id: the SHA-256 of its raw public key, as 64 hex digits and a NUL. */
void fl_sign_key_id(const fl_sign_key *k, char id[FL_SHA256_HEX]);

/* Signs msg[0..n) (pure Ed25519, no pre-hash) into sig. FL_EINVAL if k is public only,
 * FL_EBACKEND with OpenSSL's reason otherwise. */
fl_status fl_sign(const fl_sign_key *k, const void *msg, size_t n, uint8_t sig[FL_ED25519_SIG_LEN],
                  fl_err *err);
/* Returns 1 if sig is k's valid signature of msg[0..n), 0 otherwise (a wrong key, an altered
 * message or signature, a non-canonical S, or OpenSSL failing: all are "not verified"). */
int fl_sign_verify(const fl_sign_key *k, const void *msg, size_t n,
                   const uint8_t sig[FL_ED25519_SIG_LEN]);

/* ---- files ---- */

/* Writes k's private key as unencrypted PKCS#8 PEM to path, mode 0600, atomically (a reader sees
 * the old file or the whole new one). FL_EINVAL for a public key, FL_EIO naming path. */
fl_status fl_sign_key_save_private(const fl_sign_key *k, const char *path, fl_err *err);
/* Writes k's public key as a "PUBLIC KEY" PEM to path, atomically, mode 0666 less the umask. */
fl_status fl_sign_key_save_public(const fl_sign_key *k, const char *path, fl_err *err);
/* Reads an unencrypted private key PEM. FL_ENOTFOUND / FL_EIO when path cannot be read,
 * FL_EFORMAT when it holds no PEM private key or one that is not Ed25519 (the sentence names
 * path and gives OpenSSL's reason). */
fl_status fl_sign_key_load_private(const char *path, fl_sign_key **out, fl_err *err);
/* Reads a "PUBLIC KEY" PEM (or, for convenience, a private key PEM, keeping only its public
 * half). Errors as for fl_sign_key_load_private. */
fl_status fl_sign_key_load_public(const char *path, fl_sign_key **out, fl_err *err);

#endif
