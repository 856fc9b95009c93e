/* secagg_client.c - a secure-aggregation client (secagg.h): its keys, the sealed Shamir shares
 * of its secrets, the masking of its input chunk by chunk, and its answer to the unmask
 * request. Each public step runs an inner function and, if that fails, aborts the client (every
 * secret wiped, the reason kept for later calls). Not a network peer: it only fills structs. */
#include "secagg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixedpoint.h"

#define SHARE_LABEL "fedlung-secagg-v1 share"
/* label and NUL, study and NUL, round, from, to */
#define AAD_MAX (sizeof SHARE_LABEL + FL_SECAGG_ID_MAX + 1 + 8 + 8)
#define L FL_SECAGG_KEY_LEN

enum { C_NEW, C_ADVERTISED, C_SHARED, C_MASKING, C_MASKED, C_DONE, C_ABORTED };
static const char *const step_name[] = {"AdvertiseKeys", "ShareKeys", "MaskedInput",
                                        "MaskedInput",   "Unmask",    "the end of the round",
                                        "an abort"};

/* What this client knows of client i of the round (i = its own index too: its own shares). */
typedef struct {
    uint8_t in_u1, in_u2; /* advertised (U1) / shared keys with this client (U2) */
    char id[FL_SECAGG_ID_MAX + 1];
    uint8_t c_pk[FL_X25519_LEN], s_pk[FL_X25519_LEN];
    uint8_t share_sk[L], share_b[L]; /* secret: this client's shares of i's s_sk and b */
} peer_info;

struct fl_secagg_client {
    fl__secagg_round r;
    uint32_t index;
    char id[FL_SECAGG_ID_MAX + 1];
    fl_secagg_hooks hooks;
    int state;
    char why[FL_ERR_LEN]; /* the reason of an abort */
    /* secret until step 2 wipes them */
    uint8_t c_sk[FL_X25519_LEN], s_sk[FL_X25519_LEN], b[L];
    uint8_t c_pk[FL_X25519_LEN], s_pk[FL_X25519_LEN];
    peer_info peer[FL_SECAGG_MAX_CLIENTS + 1];
    /* step 2: the self mask and one pair mask per peer of U2, in one fl_stream_add_u32_many */
    size_t n_masks;
    fl_stream masks[FL_SECAGG_MAX_CLIENTS];
    fl_stream *mask_ptr[FL_SECAGG_MAX_CLIENTS];
    int sign[FL_SECAGG_MAX_CLIENTS];
    size_t masked; /* words masked so far */
    /* step 1's scratch: the n shares of s_sk and of b, wiped as soon as they are sealed */
    uint8_t split_sk[FL_SHAMIR_MAX_SHARES][L], split_b[FL_SHAMIR_MAX_SHARES][L];
};

/* ---- state ---- */

static void destroy_masks(fl_secagg_client *c) {
    for (size_t j = 0; j < c->n_masks; j++) fl_stream_destroy(&c->masks[j]);
    c->n_masks = 0;
}

static void wipe_shares(fl_secagg_client *c) {
    for (uint32_t i = 0; i <= c->r.n; i++) {
        fl_wipe(c->peer[i].share_sk, L);
        fl_wipe(c->peer[i].share_b, L);
    }
}

static void wipe_keys(fl_secagg_client *c) {
    fl_wipe(c->c_sk, sizeof c->c_sk);
    fl_wipe(c->s_sk, sizeof c->s_sk);
    fl_wipe(c->b, sizeof c->b);
}

/* Ends a public step: on failure the client aborts (once) and err gets the sentence. */
static fl_status end_step(fl_secagg_client *c, fl_status st, const fl_err *e, fl_err *err) {
    if (st == FL_OK) return FL_OK;
    if (c->state != C_ABORTED) {
        destroy_masks(c);
        wipe_shares(c);
        wipe_keys(c);
        c->state = C_ABORTED;
        snprintf(c->why, sizeof c->why, "%s", e->msg);
    }
    return fl_fail(err, st, "%s", e->msg);
}

/* FL_OK when c is at state (a step's precondition). */
static fl_status expect(const fl_secagg_client *c, int state, const char *what, fl_err *e) {
    if (c->state == C_ABORTED)
        return fl_fail(e, FL_EINVAL, "secure aggregation client %u was aborted: %s", c->index,
                       c->why);
    if (c->state != state)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: %s is out of order (the client expects %s)",
                       c->index, what, step_name[c->state]);
    return FL_OK;
}

/* ---- new, free ---- */

fl_status fl_secagg_client_new(const fl_secagg_params *p, uint32_t index, const char *id,
                               const fl_secagg_hooks *hooks, fl_secagg_client **out, fl_err *err) {
    *out = NULL;
    fl__secagg_round r;
    fl_status st = fl__secagg_round_init(&r, p, err);
    if (st != FL_OK) return st;
    size_t len = fl__secagg_id_len(id);
    if (index < 1 || index > r.n)
        return fl_fail(err, FL_EINVAL, "secure aggregation: client index %u outside 1..%u", index,
                       r.n);
    if (!len)
        return fl_fail(err, FL_EINVAL, "secure aggregation: client %u's id must have 1 to %d bytes",
                       index, FL_SECAGG_ID_MAX);
    if (!hooks || !hooks->sign || !hooks->verify)
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation: client %u needs sign and verify callbacks", index);
    fl_secagg_client *c = calloc(1, sizeof *c);
    if (!c) return fl_fail(err, FL_ENOMEM, "secure aggregation: out of memory for a client");
    c->r = r;
    c->index = index;
    memcpy(c->id, id, len + 1);
    c->hooks = *hooks;
    if (!c->hooks.rand) c->hooks.rand = fl_rand_source;
    uint8_t draw[3 * L]; /* c_sk, s_sk, b */
    if ((st = c->hooks.rand(c->hooks.rand_ctx, draw, sizeof draw)) != FL_OK)
        fl_fail(err, st, "secure aggregation: client %u's random source failed", index);
    memcpy(c->c_sk, draw, L), memcpy(c->s_sk, draw + L, L), memcpy(c->b, draw + 2 * L, L);
    fl_wipe(draw, sizeof draw);
    if (st == FL_OK && (st = fl_x25519_public(c->c_sk, c->c_pk, err)) == FL_OK)
        st = fl_x25519_public(c->s_sk, c->s_pk, err);
    if (st == FL_OK)
        *out = c;
    else
        fl_secagg_client_free(c);
    return st;
}

void fl_secagg_client_free(fl_secagg_client *c) {
    if (!c) return;
    destroy_masks(c);
    fl_wipe(c, sizeof *c);
    free(c);
}

/* ---- step 0 ---- */

static void own_advert(const fl_secagg_client *c, fl_secagg_advert *a) {
    memset(a, 0, sizeof *a);
    a->index = c->index;
    memcpy(a->id, c->id, sizeof a->id);
    memcpy(a->c_pk, c->c_pk, FL_X25519_LEN);
    memcpy(a->s_pk, c->s_pk, FL_X25519_LEN);
}

static fl_status advertise(fl_secagg_client *c, fl_secagg_advert *out, fl_err *e) {
    if (c->state == C_ADVERTISED) c->state = C_NEW; /* a repeat before step 1 */
    fl_status st = expect(c, C_NEW, "AdvertiseKeys", e);
    if (st != FL_OK) return st;
    uint8_t msg[FL_SECAGG_ADVERT_BYTES_MAX];
    own_advert(c, out);
    size_t n = fl_secagg_advert_bytes(c->r.study, c->r.round, out, msg), sig_len = sizeof out->sig;
    if ((st = c->hooks.sign(c->hooks.ctx, msg, n, out->sig, &sig_len, e)) != FL_OK) return st;
    if (sig_len < 1 || sig_len > sizeof out->sig)
        return fl_fail(e, FL_EINVAL, "secure aggregation client %u: a signature of %zu bytes",
                       c->index, sig_len);
    out->sig_len = sig_len;
    c->state = C_ADVERTISED;
    return FL_OK;
}

fl_status fl_secagg_client_advertise(fl_secagg_client *c, fl_secagg_advert *out, fl_err *err) {
    fl_err e = {{0}};
    return end_step(c, advertise(c, out, &e), &e, err);
}

/* ---- step 1 ---- */

/* The nonce and associated data of the share ciphertext from -> to (secagg.h). */
static size_t share_context(const fl_secagg_client *c, uint32_t from, uint32_t to,
                            uint8_t nonce[FL_AEAD_NONCE_LEN], uint8_t *aad) {
    uint32_t ft[2] = {from, to};
    memset(nonce, 0, FL_AEAD_NONCE_LEN);
    for (int i = 0; i < 8; i++) nonce[i] = (uint8_t)(ft[i / 4] >> (8 * (3 - i % 4)));
    size_t ls = strlen(c->r.study);
    uint8_t *p = aad;
    memcpy(p, SHARE_LABEL, sizeof SHARE_LABEL), p += sizeof SHARE_LABEL;
    memcpy(p, c->r.study, ls + 1), p += ls + 1;
    for (int i = 7; i >= 0; i--) *p++ = (uint8_t)(c->r.round >> (8 * i));
    memcpy(p, nonce, 8), p += 8;
    return (size_t)(p - aad);
}

/* The share-encryption key of this client and peer v. */
static fl_status enc_key(const fl_secagg_client *c, uint32_t v, uint8_t key[L], fl_err *e) {
    uint8_t shared[FL_X25519_LEN];
    fl_status st = fl_x25519_shared(c->c_sk, c->peer[v].c_pk, shared, e);
    if (st == FL_OK)
        st = fl_secagg_derive_key(FL_SECAGG_KEY_ENC, shared, c->r.study, c->r.round, c->id,
                                  c->peer[v].id, key, e);
    else
        fl_fail(e, st, "secure aggregation client %u: no shared key with client %u (%s)", c->index,
                v, c->peer[v].id);
    fl_wipe(shared, sizeof shared);
    return st;
}

/* Checks U1 and records the peers' public keys. */
static fl_status take_adverts(fl_secagg_client *c, const fl_secagg_advert *a, size_t count,
                              fl_err *e) {
    if (count > c->r.n)
        return fl_fail(e, FL_EINVAL, "secure aggregation client %u: %zu adverts for %u clients",
                       c->index, count, c->r.n);
    if (count < c->r.t) return fl__secagg_too_few(e, &c->r, count, "AdvertiseKeys");
    for (size_t i = 0; i < count; i++) {
        uint32_t v = a[i].index;
        uint8_t msg[FL_SECAGG_ADVERT_BYTES_MAX];
        size_t n = fl_secagg_advert_bytes(c->r.study, c->r.round, &a[i], msg);
        if (v < 1 || v > c->r.n || c->peer[v].in_u1 || !n)
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation client %u: advert %zu has index %u (of 1..%u), "
                           "seen before or with a malformed id",
                           c->index, i, v, c->r.n);
        for (uint32_t w = 1; w <= c->r.n; w++)
            if (c->peer[w].in_u1 && !strcmp(c->peer[w].id, a[i].id))
                return fl_fail(e, FL_EINVAL,
                               "secure aggregation client %u: clients %u and %u both claim id %s",
                               c->index, w, v, a[i].id);
        if (v == c->index) {
            if (strcmp(a[i].id, c->id) || memcmp(a[i].c_pk, c->c_pk, FL_X25519_LEN) ||
                memcmp(a[i].s_pk, c->s_pk, FL_X25519_LEN))
                return fl_fail(e, FL_EINVAL,
                               "secure aggregation client %u: the advert under its index is not "
                               "its own",
                               c->index);
        } else if (a[i].sig_len < 1 || a[i].sig_len > FL_SECAGG_SIG_MAX ||
                   c->hooks.verify(c->hooks.ctx, v, a[i].id, msg, n, a[i].sig, a[i].sig_len) != 1) {
            return fl_fail(e, FL_EFORMAT,
                           "secure aggregation client %u: the advert of client %u (%s) has no "
                           "valid signature",
                           c->index, v, a[i].id);
        }
        peer_info *p = &c->peer[v];
        p->in_u1 = 1;
        memcpy(p->id, a[i].id, sizeof p->id);
        memcpy(p->c_pk, a[i].c_pk, FL_X25519_LEN);
        memcpy(p->s_pk, a[i].s_pk, FL_X25519_LEN);
    }
    if (!c->peer[c->index].in_u1)
        return fl_fail(e, FL_EINVAL, "secure aggregation client %u: its own advert is missing",
                       c->index);
    return FL_OK;
}

static fl_status share_keys(fl_secagg_client *c, const fl_secagg_advert *a, size_t count,
                            fl_secagg_share_ct *out, size_t cap, size_t *n_out, fl_err *e) {
    *n_out = 0;
    fl_status st = expect(c, C_ADVERTISED, "ShareKeys", e);
    if (st != FL_OK || (st = take_adverts(c, a, count, e)) != FL_OK) return st;
    if (cap < count - 1)
        return fl_fail(e, FL_EINVAL, "secure aggregation client %u: room for %zu of %zu shares",
                       c->index, cap, count - 1);
    /* Share x = index of each secret, t-of-n; this client keeps its own shares. */
    uint8_t(*sk_sh)[L] = c->split_sk, (*b_sh)[L] = c->split_b;
    uint8_t key[L], pt[FL_SECAGG_SHARE_PT_LEN], nonce[FL_AEAD_NONCE_LEN], aad[AAD_MAX];
    size_t n = c->r.n;
    if ((st = fl_shamir_split(c->s_sk, c->r.t, c->r.n, c->hooks.rand, c->hooks.rand_ctx, sk_sh,
                              e)) != FL_OK ||
        (st = fl_shamir_split(c->b, c->r.t, c->r.n, c->hooks.rand, c->hooks.rand_ctx, b_sh, e)) !=
            FL_OK)
        goto done;
    memcpy(c->peer[c->index].share_sk, sk_sh[c->index - 1], L);
    memcpy(c->peer[c->index].share_b, b_sh[c->index - 1], L);
    for (size_t i = 0; i < count; i++) {
        uint32_t v = a[i].index;
        if (v == c->index) continue;
        fl_secagg_share_ct *o = &out[(*n_out)++];
        o->from = c->index, o->to = v;
        size_t aad_len = share_context(c, c->index, v, nonce, aad);
        memcpy(pt, nonce, 8); /* from, to */
        memcpy(pt + 8, sk_sh[v - 1], L);
        memcpy(pt + 8 + L, b_sh[v - 1], L);
        if ((st = enc_key(c, v, key, e)) != FL_OK ||
            (st = fl_aead_seal(key, nonce, aad, aad_len, pt, sizeof pt, o->ct,
                               o->ct + FL_SECAGG_SHARE_PT_LEN, e)) != FL_OK)
            goto done;
    }
    c->state = C_SHARED;
done:
    fl_wipe(c->split_sk, n * L);
    fl_wipe(c->split_b, n * L);
    fl_wipe(key, sizeof key);
    fl_wipe(pt, sizeof pt);
    if (st != FL_OK) {
        memset(out, 0, *n_out * sizeof *out);
        *n_out = 0;
    }
    return st;
}

fl_status fl_secagg_client_share_keys(fl_secagg_client *c, const fl_secagg_advert *adverts,
                                      size_t count, fl_secagg_share_ct *out, size_t cap,
                                      size_t *n_out, fl_err *err) {
    fl_err e = {{0}};
    return end_step(c, share_keys(c, adverts, count, out, cap, n_out, &e), &e, err);
}

/* ---- step 2 ---- */

/* Opens the share ciphertext ct (from a member of U1) into the peer's record. */
static fl_status open_share(fl_secagg_client *c, const fl_secagg_share_ct *ct, fl_err *e) {
    uint32_t u = ct->from;
    if (ct->to != c->index || u < 1 || u > c->r.n || u == c->index || !c->peer[u].in_u1 ||
        c->peer[u].in_u2)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: a share ciphertext from %u to %u is not "
                       "for it, from outside U1 or a repeat",
                       c->index, u, ct->to);
    uint8_t key[L], pt[FL_SECAGG_SHARE_PT_LEN], nonce[FL_AEAD_NONCE_LEN], aad[AAD_MAX];
    size_t aad_len = share_context(c, u, c->index, nonce, aad);
    fl_status st = enc_key(c, u, key, e);
    if (st == FL_OK && fl_aead_open(key, nonce, aad, aad_len, ct->ct, FL_SECAGG_SHARE_PT_LEN,
                                    ct->ct + FL_SECAGG_SHARE_PT_LEN, pt, e) != FL_OK)
        st = fl_fail(e, FL_EFORMAT,
                     "secure aggregation client %u: the shares from client %u (%s) do not "
                     "authenticate (AES-256-GCM tag)",
                     c->index, u, c->peer[u].id);
    if (st == FL_OK && memcmp(pt, nonce, 8))
        st = fl_fail(e, FL_EFORMAT,
                     "secure aggregation client %u: the shares from client %u name other clients",
                     c->index, u);
    if (st == FL_OK) {
        memcpy(c->peer[u].share_sk, pt + 8, L);
        memcpy(c->peer[u].share_b, pt + 8 + L, L);
        c->peer[u].in_u2 = 1;
    }
    fl_wipe(key, sizeof key);
    fl_wipe(pt, sizeof pt);
    return st;
}

/* Adds the keystream of key (derived from ikm as kind) to the masks with sign. */
static fl_status add_mask(fl_secagg_client *c, fl_secagg_key_kind kind, const uint8_t ikm[L],
                          const char *id_v, int sign, fl_err *e) {
    uint8_t key[L];
    fl_status st = fl_secagg_derive_key(kind, ikm, c->r.study, c->r.round, c->id, id_v, key, e);
    if (st == FL_OK) st = fl__secagg_stream(&c->masks[c->n_masks], &c->r, key, e);
    fl_wipe(key, sizeof key);
    if (st != FL_OK) return st;
    c->mask_ptr[c->n_masks] = &c->masks[c->n_masks];
    c->sign[c->n_masks++] = sign;
    return FL_OK;
}

static fl_status receive_shares(fl_secagg_client *c, const fl_secagg_share_ct *cts, size_t count,
                                fl_err *e) {
    fl_status st = expect(c, C_SHARED, "receiving the shares", e);
    if (st != FL_OK) return st;
    if (count >= c->r.n)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: %zu share ciphertexts for %u clients",
                       c->index, count, c->r.n);
    if (count + 1 < c->r.t) return fl__secagg_too_few(e, &c->r, count + 1, "ShareKeys");
    for (size_t i = 0; i < count; i++)
        if ((st = open_share(c, &cts[i], e)) != FL_OK) return st;
    c->peer[c->index].in_u2 = 1;
    if ((st = add_mask(c, FL_SECAGG_KEY_SELF, c->b, NULL, 1, e)) != FL_OK) return st;
    uint8_t shared[FL_X25519_LEN];
    for (uint32_t v = 1; v <= c->r.n && st == FL_OK; v++) {
        if (v == c->index || !c->peer[v].in_u2) continue;
        st = fl_x25519_shared(c->s_sk, c->peer[v].s_pk, shared, e);
        if (st == FL_OK)
            st = add_mask(c, FL_SECAGG_KEY_MASK, shared, c->peer[v].id,
                          fl__secagg_pair_sign(c->index, v), e);
    }
    fl_wipe(shared, sizeof shared);
    if (st != FL_OK) return st;
    wipe_keys(c); /* the masks hold what is left of s_sk and b; the shares hold the rest */
    c->state = C_MASKING;
    return FL_OK;
}

fl_status fl_secagg_client_receive_shares(fl_secagg_client *c, const fl_secagg_share_ct *cts,
                                          size_t count, fl_err *err) {
    fl_err e = {{0}};
    return end_step(c, receive_shares(c, cts, count, &e), &e, err);
}

static fl_status check_chunk(const fl_secagg_client *c, size_t offset, size_t count, fl_err *e) {
    fl_status st = expect(c, C_MASKING, "masking", e);
    if (st != FL_OK) return st;
    if (offset != c->masked || count > c->r.dim - offset)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: words [%zu, %zu) asked, but %zu of %zu are "
                       "masked (chunks go in order, each word once)",
                       c->index, offset, offset + count, c->masked, c->r.dim);
    return FL_OK;
}

static fl_status mask(fl_secagg_client *c, size_t offset, uint32_t *words, size_t count,
                      fl_secagg_masked *out, fl_err *e) {
    memset(out, 0, sizeof *out);
    fl_status st = check_chunk(c, offset, count, e);
    if (st != FL_OK ||
        (st = fl_stream_add_u32_many(c->mask_ptr, c->sign, c->n_masks, words, count, e)) != FL_OK)
        return st;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < count; i++) words[i] = __builtin_bswap32(words[i]);
#endif
    c->masked += count;
    *out = (fl_secagg_masked){.from = c->index, .offset = offset, .count = count, .data = words};
    if (c->masked == c->r.dim) {
        destroy_masks(c);
        c->state = C_MASKED;
    }
    return FL_OK;
}

fl_status fl_secagg_client_mask(fl_secagg_client *c, size_t offset, uint32_t *words, size_t count,
                                fl_secagg_masked *out, fl_err *err) {
    fl_err e = {{0}};
    return end_step(c, mask(c, offset, words, count, out, &e), &e, err);
}

fl_status fl_secagg_client_mask_floats(fl_secagg_client *c, size_t offset, const float *x,
                                       size_t count, double scale, uint32_t *words,
                                       fl_secagg_masked *out, fl_err *err) {
    fl_err e = {{0}};
    memset(out, 0, sizeof *out);
    fl_status st = check_chunk(c, offset, count, &e);
    if (st == FL_OK) st = fl_fixed_encode(x, count, scale, words, &e);
    if (st == FL_OK) st = mask(c, offset, words, count, out, &e);
    return end_step(c, st, &e, err);
}

/* ---- step 3 ---- */

static fl_status unmask(fl_secagg_client *c, const fl_secagg_unmask_request *req,
                        fl_secagg_unmask_reply *out, fl_err *e) {
    memset(out, 0, sizeof *out);
    fl_status st = expect(c, C_MASKED, "Unmask", e);
    if (st != FL_OK) return st;
    uint32_t n = c->r.n, u = c->index;
    if (req->n_survivors > n || req->n_dropped > n)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: an unmask request for %u + %u "
                       "of %u clients",
                       u, req->n_survivors, req->n_dropped, n);
    uint8_t asked[FL_SECAGG_MAX_CLIENTS + 1] = {0}; /* 1: its b, 2: its s_sk */
    for (uint32_t i = 0; i < req->n_survivors + req->n_dropped; i++) {
        int kind = i < req->n_survivors ? 1 : 2;
        uint32_t v = kind == 1 ? req->survivors[i] : req->dropped[i - req->n_survivors];
        if (v < 1 || v > n || !c->peer[v].in_u2)
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation client %u: the unmask request names client %u, "
                           "which did not share keys with it",
                           u, v);
        if (asked[v] && asked[v] != kind)
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation client %u: the unmask request asks for both shares "
                           "of client %u (its self-mask seed and its mask key), which would "
                           "reveal its input; refused",
                           u, v);
        if (asked[v])
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation client %u: the unmask request lists client %u twice",
                           u, v);
        asked[v] = (uint8_t)kind;
    }
    for (uint32_t v = 1; v <= n; v++)
        if (c->peer[v].in_u2 && !asked[v])
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation client %u: the unmask request leaves out client %u",
                           u, v);
    if (asked[u] != 1)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation client %u: the unmask request lists it as dropped", u);
    if (req->n_survivors < c->r.t)
        return fl__secagg_too_few(e, &c->r, req->n_survivors, "MaskedInput");
    out->from = u;
    out->n_b = req->n_survivors, out->n_sk = req->n_dropped;
    for (uint32_t i = 0; i < req->n_survivors; i++) {
        out->b_peer[i] = req->survivors[i];
        memcpy(out->b_share[i], c->peer[req->survivors[i]].share_b, L);
    }
    for (uint32_t i = 0; i < req->n_dropped; i++) {
        out->sk_peer[i] = req->dropped[i];
        memcpy(out->sk_share[i], c->peer[req->dropped[i]].share_sk, L);
    }
    wipe_shares(c);
    c->state = C_DONE;
    return FL_OK;
}

fl_status fl_secagg_client_unmask(fl_secagg_client *c, const fl_secagg_unmask_request *req,
                                  fl_secagg_unmask_reply *out, fl_err *err) {
    fl_err e = {{0}};
    fl_status st = unmask(c, req, out, &e);
    if (st != FL_OK) fl_wipe(out, sizeof *out);
    return end_step(c, st, &e, err);
}
