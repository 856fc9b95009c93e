/* kex.h - X25519 key agreement (RFC 7748) over OpenSSL 3 on raw 32-byte keys: a fresh key pair,
 * the public key of a private one, and the shared secret, which is refused when it is all zero
 * (a low-order peer key). Not a protocol: signing the public keys and deriving keys from the
 * secret (kdf.h) are the caller's steps. */
#ifndef FL_KEX_H
#define FL_KEX_H

#include <stdint.h>

#include "../common/status.h"

#define FL_X25519_LEN 32 /* bytes of a private key, a public key and a shared secret */

/* A fresh key pair from OpenSSL's CSPRNG. The caller owns priv and wipes it (fl_wipe) when done.
 * Returns FL_OK, or FL_EBACKEND with OpenSSL's reason (priv and pub are then zero). */
fl_status fl_x25519_keygen(uint8_t priv[FL_X25519_LEN], uint8_t pub[FL_X25519_LEN], fl_err *err);
/* The public key X25519(priv, 9) of priv (any 32 bytes: clamping is part of X25519). Errors as
 * for fl_x25519_keygen. */
fl_status fl_x25519_public(const uint8_t priv[FL_X25519_LEN], uint8_t pub[FL_X25519_LEN],
                           fl_err *err);
/* The shared secret X25519(priv, peer) (the top bit of peer is ignored, RFC 7748 §5). Returns
 * FL_OK; FL_EINVAL when the result would be all zero (peer is a low-order point, so the
 * "secret" would be known to anyone: RFC 7748 §6.1); FL_EBACKEND with OpenSSL's reason. On any
 * failure shared is zero. The caller wipes shared when done. */
fl_status fl_x25519_shared(const uint8_t priv[FL_X25519_LEN], const uint8_t peer[FL_X25519_LEN],
                           uint8_t shared[FL_X25519_LEN], fl_err *err);

#endif
