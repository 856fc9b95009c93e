/* aead.h - AES-256-GCM authenticated encryption with associated data over OpenSSL 3's EVP: seal
 * (encrypt and tag) and open (check the tag, then release the plaintext). 96-bit nonces only.
 * Not a nonce manager: a (key, nonce) pair must never seal twice; draw nonces with fl_rand_bytes
 * or count them. */
#ifndef FL_AEAD_H
#define FL_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

#define FL_AEAD_KEY_LEN 32   /* AES-256 */
#define FL_AEAD_NONCE_LEN 12 /* the 96-bit GCM IV of NIST SP 800-38D §8.2 */
#define FL_AEAD_TAG_LEN 16   /* full-length tag; shorter tags are not offered */

/* Encrypts pt[0..n) into ct[0..n) (ct may equal pt) and authenticates it together with
 * aad[0..aad_len), writing the tag. pt, ct and aad may be NULL when their length is 0. Returns
 * FL_OK, or FL_EBACKEND with OpenSSL's reason (ct and tag are then zero). */
fl_status fl_aead_seal(const uint8_t key[FL_AEAD_KEY_LEN], const uint8_t nonce[FL_AEAD_NONCE_LEN],
                       const void *aad, size_t aad_len, const void *pt, size_t n, void *ct,
                       uint8_t tag[FL_AEAD_TAG_LEN], fl_err *err);
/* Decrypts ct[0..n) into pt[0..n) (pt may equal ct) and checks tag over aad and ct. Returns
 * FL_OK only when the tag matches; FL_EFORMAT when it does not (a wrong key, nonce or associated
 * data, or an altered ciphertext or tag), and then pt is all zero: no unauthenticated byte is
 * ever released. FL_EBACKEND with OpenSSL's reason for anything else (pt also zero). */
fl_status fl_aead_open(const uint8_t key[FL_AEAD_KEY_LEN], const uint8_t nonce[FL_AEAD_NONCE_LEN],
                       const void *aad, size_t aad_len, const void *ct, size_t n,
                       const uint8_t tag[FL_AEAD_TAG_LEN], void *pt, fl_err *err);

#endif
