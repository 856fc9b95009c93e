/* sign.c - Ed25519 keys over OpenSSL 3's EVP (see sign.h). OpenSSL's errors are translated
 * here into one sentence that keeps OpenSSL's own reason; its error queue is always cleared. */
#include "sign.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/atomic.h"

struct fl_sign_key {
    EVP_PKEY *pkey;
    int is_private;
    uint8_t pub[FL_ED25519_PUB_LEN];
};

/* OpenSSL's most recent reason into buf ("unknown OpenSSL error" when its queue is empty); the
 * queue is then cleared. Returns buf. */
static const char *openssl_reason(char *buf, size_t cap) {
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

static fl_status openssl_fail(fl_err *err, fl_status s, const char *what) {
    char why[200];
    openssl_reason(why, sizeof why);
    return fl_fail(err, s, "%s: %s", what, why);
}

/* Wraps pkey (taking it) into *out, after checking that it is Ed25519. */
static fl_status wrap(EVP_PKEY *pkey, int is_private, fl_sign_key **out, const char *what,
                      fl_err *err) {
    *out = NULL;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return fl_fail(err, FL_EFORMAT, "%s: not an Ed25519 key", what);
    }
    fl_sign_key *k = calloc(1, sizeof *k);
    size_t len = sizeof k->pub;
    if (!k) {
        EVP_PKEY_free(pkey);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", what);
    }
    k->pkey = pkey;
    k->is_private = is_private;
    if (EVP_PKEY_get_raw_public_key(pkey, k->pub, &len) != 1 || len != sizeof k->pub) {
        fl_sign_key_free(k);
        return openssl_fail(err, FL_EBACKEND, what);
    }
    *out = k;
    return FL_OK;
}

fl_status fl_sign_key_generate(fl_sign_key **out, fl_err *err) {
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) return openssl_fail(err, FL_EBACKEND, "cannot generate an Ed25519 key");
    return wrap(pkey, 1, out, "Ed25519 key generation", err);
}

fl_status fl_sign_key_from_seed(const uint8_t seed[FL_ED25519_SEED_LEN], fl_sign_key **out,
                                fl_err *err) {
    *out = NULL;
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, FL_ED25519_SEED_LEN);
    if (!pkey) return openssl_fail(err, FL_EBACKEND, "cannot make an Ed25519 key from a seed");
    return wrap(pkey, 1, out, "Ed25519 key from a seed", err);
}

fl_status fl_sign_key_from_public(const uint8_t pub[FL_ED25519_PUB_LEN], fl_sign_key **out,
                                  fl_err *err) {
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, FL_ED25519_PUB_LEN);
    if (!pkey) return openssl_fail(err, FL_EFORMAT, "not a valid Ed25519 public key");
    return wrap(pkey, 0, out, "Ed25519 public key", err);
}

void fl_sign_key_free(fl_sign_key *k) {
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

int fl_sign_key_is_private(const fl_sign_key *k) {
    return k->is_private;
}

void fl_sign_key_public(const fl_sign_key *k, uint8_t pub[FL_ED25519_PUB_LEN]) {
    memcpy(pub, k->pub, FL_ED25519_PUB_LEN);
}

void fl_sign_key_id(const fl_sign_key *k, char id[FL_SHA256_HEX]) {
    if (fl_sha256_hex(k->pub, sizeof k->pub, id) != FL_OK) id[0] = '\0';
}

fl_status fl_sign(const fl_sign_key *k, const void *msg, size_t n, uint8_t sig[FL_ED25519_SIG_LEN],
                  fl_err *err) {
    if (!k->is_private) return fl_fail(err, FL_EINVAL, "cannot sign with a public key");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = FL_ED25519_SIG_LEN;
    fl_status s = FL_OK;
    /* Ed25519 signs in one pass: no digest (NULL) and EVP_DigestSign, not Update/Final. */
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &len, msg, n) != 1 || len != FL_ED25519_SIG_LEN)
        s = openssl_fail(err, FL_EBACKEND, "Ed25519 signing failed");
    EVP_MD_CTX_free(ctx);
    return s;
}

int fl_sign_verify(const fl_sign_key *k, const void *msg, size_t n,
                   const uint8_t sig[FL_ED25519_SIG_LEN]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, FL_ED25519_SIG_LEN, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* files                                                                                       */

/* Writes k as PEM (private PKCS#8 with mode 0600, or public) to path through a temporary file. */
static fl_status save_pem(const fl_sign_key *k, const char *path, int private_half, fl_err *err) {
    if (private_half && !k->is_private)
        return fl_fail(err, FL_EINVAL, "%s: a public key has no private half to save", path);
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    /* Restrict before a byte of the key is written. */
    if (private_half && fchmod(fileno(af.f), 0600) != 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot restrict to mode 0600: %s", path, strerror(errno));
        fl_atomic_abort(&af);
        return s;
    }
    int wrote = private_half ? PEM_write_PrivateKey(af.f, k->pkey, NULL, NULL, 0, NULL, NULL)
                             : PEM_write_PUBKEY(af.f, k->pkey);
    if (wrote != 1) {
        s = openssl_fail(err, FL_EIO, path);
        fl_atomic_abort(&af);
        return s;
    }
    return fl_atomic_commit(&af, err);
}

fl_status fl_sign_key_save_private(const fl_sign_key *k, const char *path, fl_err *err) {
    return save_pem(k, path, 1, err);
}

fl_status fl_sign_key_save_public(const fl_sign_key *k, const char *path, fl_err *err) {
    return save_pem(k, path, 0, err);
}

/* Never prompts for a passphrase: an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* Reads the first PEM key of path: a public key if want_public and the file has one, otherwise
 * a private key (reduced to its public half if want_public). */
static fl_status load_pem(const char *path, int want_public, fl_sign_key **out, fl_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    EVP_PKEY *pkey = want_public ? PEM_read_PUBKEY(f, NULL, no_passphrase, NULL) : NULL;
    int is_private = 0;
    if (!pkey) {
        ERR_clear_error();
        rewind(f);
        pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
        is_private = pkey != NULL;
    }
    fclose(f);
    if (!pkey) {
        char what[FL_ERR_LEN / 2];
        snprintf(what, sizeof what, "%s: no unencrypted %s key PEM", path,
                 want_public ? "public" : "private");
        return openssl_fail(err, FL_EFORMAT, what);
    }
    fl_sign_key *k;
    fl_status s = wrap(pkey, is_private, &k, path, err);
    if (s != FL_OK || !want_public || !k->is_private) {
        *out = k;
        return s;
    }
    /* A private key file read for its public half: keep only the public key. */
    s = fl_sign_key_from_public(k->pub, out, err);
    fl_sign_key_free(k);
    return s;
}

fl_status fl_sign_key_load_private(const char *path, fl_sign_key **out, fl_err *err) {
    return load_pem(path, 0, out, err);
}

fl_status fl_sign_key_load_public(const char *path, fl_sign_key **out, fl_err *err) {
    return load_pem(path, 1, out, err);
}
