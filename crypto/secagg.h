/* secagg.h - secure aggregation: the semi-honest protocol with dropout recovery of Bonawitz et
 * al. 2017 (CCS, "Practical Secure Aggregation for Privacy-Preserving Machine Learning", Fig. 4)
 * as pure logic. A client object and a server object exchange the plain structs below through
 * four steps (AdvertiseKeys, ShareKeys, MaskedInput, Unmask); the federation only moves them.
 * Not a network layer, not the malicious-server variant (there is no consistency-check round),
 * and not clipping or noise: the input arrives as ENCODING_FIXED32 words (crypto/fixedpoint.h).
 *
 * Guarantee (docs/privacy.md, "Secure aggregation"): an honest-but-curious server, even joined
 * by up to t - 1 honest-but-curious clients, learns nothing of the other clients' inputs beyond
 * their sum over the survivors, at least t of them (Bonawitz et al., §6). Up to n - t
 * clients may drop at any step and the round still ends with the exact sum of those whose
 * masked input arrived.
 *
 * The steps, for clients numbered 1..n (their index in the round, the x of their Shamir shares)
 * and named by id strings (their certificate's CN):
 *   0 AdvertiseKeys  client: fl_secagg_client_advertise -> advert (2 X25519 public keys, signed)
 *                    server: fl_secagg_server_add_advert each, fl_secagg_server_close_adverts
 *                            -> the list U1 for every client
 *   1 ShareKeys      client: fl_secagg_client_share_keys(U1) -> one share ciphertext per peer
 *                    server: fl_secagg_server_add_shares each, fl_secagg_server_close_shares,
 *                            fl_secagg_server_shares_for(v) -> the ciphertexts for client v
 *   2 MaskedInput    client: fl_secagg_client_receive_shares, then fl_secagg_client_mask chunk
 *                            by chunk -> fl_secagg_masked views (sent through PutUpdate)
 *                    server: fl_secagg_server_add_masked each chunk, fl_secagg_server_close_masked
 *                            -> the unmask request (survivors U3, dropped U2 \ U3)
 *   3 Unmask         client: fl_secagg_client_unmask(request) -> its shares
 *                    server: fl_secagg_server_add_unmask each, fl_secagg_server_finish -> the sum
 *
 * Keys. Each client draws two X25519 key pairs per round, c (encrypts shares) and s (masks),
 * and a 32-byte self-mask seed b. Every symmetric key is HKDF-SHA256 with salt
 * "fedlung-secagg-v1" and
 *     info = label || 0x00 || study || 0x00 || round (8 bytes BE) || id_lo || 0x00 || id_hi
 * where for a pair (u, v) id_lo, id_hi are the ids of u and v in byte order (strcmp), so both
 * sides derive the same key:
 *     label "mask": ikm = X25519(s_sk_u, s_pk_v) -> the pair mask's AES-256-CTR / ChaCha20 key
 *     label "enc":  ikm = X25519(c_sk_u, c_pk_v) -> the AES-256-GCM key of the shares u <-> v
 *     label "self": ikm = b_u, id_lo = id_u, id_hi empty -> the self mask's keystream key
 * Keystreams start at IV 0 (every key names one mask). Ids, the study and the label contain no
 * NUL byte, so info parses one way only.
 *
 * Masking. y_u = x_u + PRG(b_u) + sum over v in U2, v != u of (+PRG(s_uv) if u < v, else
 * -PRG(s_uv)), mod 2^32 word by word, where PRG is the keystream read as little-endian words
 * (crypto/stream.h). The pair masks cancel in the sum; the server removes PRG(b_u) of each
 * survivor and the pair masks that survivors share with dropped clients, from secrets it
 * rebuilds out of t shares, never both secrets of one client.
 *
 * Errors. Every function returns fl_status and writes one sentence into err. A client that
 * fails any step is aborted: its secrets are wiped and every later call fails with the first
 * reason. The server refuses a malformed message from one client without aborting (that client
 * then counts as dropped); it aborts, wiping what it holds, when fewer than t clients remain at
 * any step (FL_EINVAL, "secure aggregation needs t = 3 of 4 clients, 2 remain ...") or when a
 * client's masked input stopped partway. */
#ifndef FL_SECAGG_H
#define FL_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "aead.h"
#include "kex.h"
#include "rand.h"
#include "shamir.h"
#include "stream.h"

#define FL_SECAGG_MAX_CLIENTS 255 /* the x's of GF(2^8) Shamir shares */
#define FL_SECAGG_ID_MAX 64       /* bytes of a client id or the study id, without the NUL */
#define FL_SECAGG_SIG_MAX 512     /* bytes of an advert's signature (RSA-4096 fits) */
#define FL_SECAGG_KEY_LEN 32      /* every derived key, seed and share */
#define FL_SECAGG_SALT "fedlung-secagg-v1"
/* The plaintext of a share ciphertext: from (4 bytes BE), to (4 bytes BE), from's share of its
 * s_sk, then of its b (32 bytes each); the ciphertext is as long, then the 16-byte GCM tag. */
#define FL_SECAGG_SHARE_PT_LEN (8 + 2 * FL_SHAMIR_SECRET_LEN)
#define FL_SECAGG_SHARE_CT_LEN (FL_SECAGG_SHARE_PT_LEN + FL_AEAD_TAG_LEN)
/* The longest canonical advert encoding (fl_secagg_advert_bytes). */
#define FL_SECAGG_ADVERT_BYTES_MAX 256

/* The round, the same on the server and every client. */
typedef struct {
    const char *study;       /* the study id: 1..FL_SECAGG_ID_MAX bytes (copied) */
    uint64_t round;          /* the round number */
    uint32_t n;              /* clients invited, numbered 1..n: 2..FL_SECAGG_MAX_CLIENTS */
    uint32_t t;              /* threshold; 0 = fl_secagg_default_t(n); else n/2 < t <= n */
    size_t dim;              /* 32-bit words of every client's input, >= 1 */
    fl_stream_cipher cipher; /* mask expansion: FL_STREAM_AES256_CTR or FL_STREAM_CHACHA20 */
} fl_secagg_params;

/* Signs msg[0..n) with the client's identity key (its TLS key, an Ed25519 key, ...): writes at
 * most *sig_len bytes (FL_SECAGG_SIG_MAX on entry) into sig and sets *sig_len. Returns FL_OK or
 * a failure with its sentence in err. */
typedef fl_status (*fl_secagg_sign_fn)(void *ctx, const uint8_t *msg, size_t n, uint8_t *sig,
                                       size_t *sig_len, fl_err *err);
/* Returns 1 when sig[0..sig_len) is a valid signature of msg[0..n) by the client named id
 * (index is its number in the round), 0 otherwise (an unknown id included). */
typedef int (*fl_secagg_verify_fn)(void *ctx, uint32_t index, const char *id, const uint8_t *msg,
                                   size_t n, const uint8_t *sig, size_t sig_len);

/* What a party plugs in. The client needs sign and verify; the server's verify is optional (a
 * server that checks adverts refuses forged ones early; clients check them anyway). */
typedef struct {
    fl_secagg_sign_fn sign;
    fl_secagg_verify_fn verify;
    void *ctx;       /* passed to sign and verify */
    fl_rand_fn rand; /* key pairs, b and Shamir coefficients; NULL = fl_rand_source (CSPRNG) */
    void *rand_ctx;  /* passed to rand */
} fl_secagg_hooks;

/* Step 0: a client's public keys, signed over fl_secagg_advert_bytes. */
typedef struct {
    uint32_t index;                 /* 1..n */
    char id[FL_SECAGG_ID_MAX + 1];  /* NUL-terminated, not empty */
    uint8_t c_pk[FL_X25519_LEN];    /* encryption key (shares) */
    uint8_t s_pk[FL_X25519_LEN];    /* mask key (pair masks) */
    size_t sig_len;                 /* 1..FL_SECAGG_SIG_MAX */
    uint8_t sig[FL_SECAGG_SIG_MAX]; /* signature of the canonical bytes */
} fl_secagg_advert;

/* Step 1: client `from`'s shares for client `to`, sealed with AES-256-GCM. Key: HKDF "enc" of
 * X25519(c_sk_from, c_pk_to); nonce: from (4 bytes BE) || to (4 bytes BE) || 4 zero bytes (the
 * key serves exactly the two directions of one pair in one round); associated data:
 * "fedlung-secagg-v1 share" || 0x00 || study || 0x00 || round (8 BE) || from (4 BE) ||
 * to (4 BE). */
typedef struct {
    uint32_t from, to;
    uint8_t ct[FL_SECAGG_SHARE_CT_LEN]; /* ciphertext of FL_SECAGG_SHARE_PT_LEN bytes, then tag */
} fl_secagg_share_ct;

/* Step 2: what the server receives of a masked input, and the only thing its API accepts: a
 * view of count words of client `from`'s masked vector starting at word `offset`, as
 * ENCODING_FIXED32 bytes (little-endian uint32). The server adds it into its running sum and
 * keeps nothing else of it, so it never holds one client's vector, masked or not. */
typedef struct {
    uint32_t from;    /* the client's index */
    size_t offset;    /* the first word's position in the vector */
    size_t count;     /* words */
    const void *data; /* 4 * count bytes, any alignment; borrowed, not owned */
} fl_secagg_masked;

/* Step 3: the server's request, the same for every survivor: survivors (U3, whose masked input
 * arrived in full) and dropped (U2 \ U3, who shared keys but sent no masked input), each in
 * ascending index order. A client answers the share of b for each survivor and the share of
 * s_sk for each dropped client, and refuses a request that lists one client in both. */
typedef struct {
    uint32_t n_survivors, n_dropped;
    uint32_t survivors[FL_SECAGG_MAX_CLIENTS];
    uint32_t dropped[FL_SECAGG_MAX_CLIENTS];
} fl_secagg_unmask_request;

/* Step 3: a client's answer, in the request's order: b_share[i] is its share of the self-mask
 * seed of b_peer[i], sk_share[i] its share of the mask key of sk_peer[i]. */
typedef struct {
    uint32_t from;
    uint32_t n_b, n_sk;
    uint32_t b_peer[FL_SECAGG_MAX_CLIENTS];
    uint32_t sk_peer[FL_SECAGG_MAX_CLIENTS];
    uint8_t b_share[FL_SECAGG_MAX_CLIENTS][FL_SHAMIR_SECRET_LEN];
    uint8_t sk_share[FL_SECAGG_MAX_CLIENTS][FL_SHAMIR_SECRET_LEN];
} fl_secagg_unmask_reply;

/* ---- shared ---- */

/* The default threshold max(2, ceil(2n/3)) (n >= 1). */
uint32_t fl_secagg_default_t(uint32_t n);

/* Writes the canonical bytes that an advert's signature covers into buf (at least
 * FL_SECAGG_ADVERT_BYTES_MAX bytes) and returns their length:
 *   "fedlung-secagg-v1 advert" || 0x00 || study || 0x00 || round (8 bytes BE) || index (4 BE) ||
 *   id || 0x00 || c_pk (32) || s_pk (32)
 * Returns 0 (buf untouched) when study or a->id is empty, longer than FL_SECAGG_ID_MAX or not
 * NUL-terminated within a->id. The signature itself is not part of them. */
size_t fl_secagg_advert_bytes(const char *study, uint64_t round, const fl_secagg_advert *a,
                              uint8_t buf[FL_SECAGG_ADVERT_BYTES_MAX]);

typedef enum {
    FL_SECAGG_KEY_MASK = 0, /* label "mask": a pair mask's keystream key */
    FL_SECAGG_KEY_ENC = 1,  /* label "enc": a pair's share-encryption key */
    FL_SECAGG_KEY_SELF = 2, /* label "self": a self mask's keystream key (id_v unused) */
} fl_secagg_key_kind;

/* key = HKDF-SHA256(ikm, salt "fedlung-secagg-v1", info as above) for client id_u's key with
 * id_v (either order gives the same key; FL_SECAGG_KEY_SELF ignores id_v, which may be NULL).
 * Returns FL_OK; FL_EINVAL for an empty or too long study or id, or equal ids of a pair;
 * FL_EBACKEND from OpenSSL. On failure key is zero. The caller wipes key. */
fl_status fl_secagg_derive_key(fl_secagg_key_kind kind, const uint8_t ikm[FL_SECAGG_KEY_LEN],
                               const char *study, uint64_t round, const char *id_u,
                               const char *id_v, uint8_t key[FL_SECAGG_KEY_LEN], fl_err *err);

/* ---- client ---- */

typedef struct fl_secagg_client fl_secagg_client;

/* A client for the round p, numbered index (1..p->n) and named id, with fresh key pairs and
 * self-mask seed from hooks->rand. hooks is copied (its ctx must outlive the client); sign and
 * verify are required. Returns FL_OK and *out (free with fl_secagg_client_free); FL_EINVAL for a
 * bad parameter (the sentence names it); FL_ENOMEM; the random source's status. */
fl_status fl_secagg_client_new(const fl_secagg_params *p, uint32_t index, const char *id,
                               const fl_secagg_hooks *hooks, fl_secagg_client **out, fl_err *err);
/* Wipes every secret and frees c; NULL is a no-op. */
void fl_secagg_client_free(fl_secagg_client *c);

/* Step 0: fills *out with this client's advert, signed through hooks->sign. May be called again
 * until step 1 (the same keys; a new signature). */
fl_status fl_secagg_client_advertise(fl_secagg_client *c, fl_secagg_advert *out, fl_err *err);

/* Step 1, once: takes the server's list U1 of count adverts, checks that it holds at least t,
 * this client's own advert unchanged and otherwise distinct indices and ids with valid
 * signatures (hooks->verify), then Shamir-shares s_sk and b t-of-n and seals, for each peer v
 * in U1, (this index, v, share v of s_sk, share v of b) into out[0..count-1), in U1's order
 * (cap >= count - 1). *n_out = count - 1. Refuses (and aborts) otherwise: FL_EINVAL with the
 * threshold sentence, FL_EFORMAT for a signature that does not verify, FL_EINVAL for the rest. */
fl_status fl_secagg_client_share_keys(fl_secagg_client *c, const fl_secagg_advert *adverts,
                                      size_t count, fl_secagg_share_ct *out, size_t cap,
                                      size_t *n_out, fl_err *err);

/* Step 2 begins, once: the ciphertexts addressed to this client by the other members of U2
 * (fl_secagg_server_shares_for). Opens each (FL_EFORMAT when one does not authenticate, naming
 * its sender), keeps the shares, derives the pair keys with every peer of U2 and wipes the
 * private keys and b, which are no longer needed here. At least t - 1 ciphertexts (U2 has this
 * client too). */
fl_status fl_secagg_client_receive_shares(fl_secagg_client *c, const fl_secagg_share_ct *cts,
                                          size_t count, fl_err *err);

/* Step 2: masks words[0..count), this client's encoded input at positions [offset, offset +
 * count), in place, in one pass over them with all its masks (fl_stream_add_u32_many), so a
 * long vector is masked chunk by chunk without a copy. Chunks must come in order: offset is the
 * number of words masked so far (a word is never masked twice: two maskings of one position
 * would give the server the difference of two inputs). On return words holds the masked chunk
 * as ENCODING_FIXED32 bytes (little-endian) and *out views it for the server. After the last
 * word (offset + count = dim) the mask keys are wiped. Errors: FL_EINVAL (out of order, past
 * dim, wrong step), the stream's failure. */
fl_status fl_secagg_client_mask(fl_secagg_client *c, size_t offset, uint32_t *words, size_t count,
                                fl_secagg_masked *out, fl_err *err);
/* The same from floats: words[i] = fl_fixed_encode(x[i], scale), then masked. x is not
 * modified; words has count elements. */
fl_status fl_secagg_client_mask_floats(fl_secagg_client *c, size_t offset, const float *x,
                                       size_t count, double scale, uint32_t *words,
                                       fl_secagg_masked *out, fl_err *err);

/* Step 3, once, after the whole input was masked: answers req into *out and wipes every share
 * it held. Refuses (and aborts) a request that lists a client both as survivor and as dropped,
 * lists one twice, names a client that did not share keys with this one, leaves one of those
 * out, lists this client as dropped, or has fewer than t survivors. */
fl_status fl_secagg_client_unmask(fl_secagg_client *c, const fl_secagg_unmask_request *req,
                                  fl_secagg_unmask_reply *out, fl_err *err);

/* ---- server ---- */

typedef struct fl_secagg_server fl_secagg_server;

/* A server for the round p. hooks may be NULL (no advert verification, and nothing random is
 * needed); when given, hooks->verify (if set) checks each advert. Allocates the sum, dim words.
 * Returns FL_OK and *out (free with fl_secagg_server_free), FL_EINVAL, FL_ENOMEM. */
fl_status fl_secagg_server_new(const fl_secagg_params *p, const fl_secagg_hooks *hooks,
                               fl_secagg_server **out, fl_err *err);
/* Wipes the shares and the sum and frees s; NULL is a no-op. */
void fl_secagg_server_free(fl_secagg_server *s);

/* Step 0: records one client's advert. Refuses (without aborting) an index outside 1..n or seen
 * already, an id that is empty, too long or another client's, an empty signature, or one that
 * hooks->verify rejects. */
fl_status fl_secagg_server_add_advert(fl_secagg_server *s, const fl_secagg_advert *a, fl_err *err);
/* Ends step 0: U1 = the adverts recorded, in index order, at *list (owned by s, valid until it
 * is freed) and *count. Aborts with the threshold sentence when fewer than t. */
fl_status fl_secagg_server_close_adverts(fl_secagg_server *s, const fl_secagg_advert **list,
                                         size_t *count, fl_err *err);

/* Step 1: records the count ciphertexts of client `from` (the authenticated sender): one for
 * every other member of U1, each with this from. Refuses (without aborting) anything else. */
fl_status fl_secagg_server_add_shares(fl_secagg_server *s, uint32_t from,
                                      const fl_secagg_share_ct *cts, size_t count, fl_err *err);
/* Ends step 1: U2 = the clients whose ciphertexts arrived. Aborts when fewer than t. */
fl_status fl_secagg_server_close_shares(fl_secagg_server *s, fl_err *err);
/* Step 2: the ciphertexts for client `to` (in U2) from every other member of U2, in index
 * order, into out (cap >= |U2| - 1); *n_out their number. */
fl_status fl_secagg_server_shares_for(const fl_secagg_server *s, uint32_t to,
                                      fl_secagg_share_ct *out, size_t cap, size_t *n_out,
                                      fl_err *err);

/* Step 2: adds one chunk of a masked input into the sum mod 2^32. A client's chunks come in
 * order (m->offset = fl_secagg_server_received for it), so an interrupted upload can resume
 * where it stopped. Refuses (without aborting, nothing added) a sender outside U2, a chunk out
 * of order or past dim. */
fl_status fl_secagg_server_add_masked(fl_secagg_server *s, const fl_secagg_masked *m, fl_err *err);
/* Words of client index's masked input added so far (0 for an unknown index). */
size_t fl_secagg_server_received(const fl_secagg_server *s, uint32_t index);
/* Ends step 2: U3 = the clients whose whole masked input arrived; fills *req for them. Aborts
 * when fewer than t, or when a client's input stopped partway (its words are in the sum and
 * cannot be taken out). */
fl_status fl_secagg_server_close_masked(fl_secagg_server *s, fl_secagg_unmask_request *req,
                                        fl_err *err);

/* Step 3: records one survivor's answer. Refuses (without aborting) a sender outside U3 or seen
 * already, or an answer whose lists differ from the request. */
fl_status fl_secagg_server_add_unmask(fl_secagg_server *s, const fl_secagg_unmask_reply *r,
                                      fl_err *err);
/* Ends the round: with at least t answers, rebuilds b of every survivor and s_sk of every
 * dropped client (checked against its advertised s_pk), removes their masks from the sum in one
 * pass, and points *sum at the exact sum mod 2^32 of the survivors' inputs (dim words, owned by
 * s; decode with fl_fixed_decode_sum). The survivors are the request's. Aborts when fewer than t
 * answered or a rebuilt mask key does not match its public key (a wrong share). Calling it
 * again returns the same sum. */
fl_status fl_secagg_server_finish(fl_secagg_server *s, const uint32_t **sum, fl_err *err);

#endif
