/* secagg.c - the parts of secure aggregation (secagg.h) that client and server share: the
 * default threshold, the round's parameters, the advert's canonical bytes and the HKDF key
 * derivation bound to study, round and the two ids. The client's steps are secagg_client.c,
 * the server's secagg_server.c; nothing here holds state. */
#include "secagg_impl.h"

#include <string.h>

#include "kdf.h"

#define ADVERT_LABEL "fedlung-secagg-v1 advert"

uint32_t fl_secagg_default_t(uint32_t n) {
    uint32_t t = (uint32_t)(((uint64_t)2 * n + 2) / 3); /* ceil(2n / 3) */
    return t < 2 ? 2 : t;
}

size_t fl__secagg_id_len(const char *id) {
    if (!id) return 0;
    const char *end = memchr(id, '\0', FL_SECAGG_ID_MAX + 1);
    return end ? (size_t)(end - id) : 0;
}

fl_status fl__secagg_round_init(fl__secagg_round *r, const fl_secagg_params *p, fl_err *err) {
    memset(r, 0, sizeof *r);
    size_t len = fl__secagg_id_len(p ? p->study : NULL);
    if (!len)
        return fl_fail(err, FL_EINVAL, "secure aggregation: the study id must have 1 to %d bytes",
                       FL_SECAGG_ID_MAX);
    if (p->n < 2 || p->n > FL_SECAGG_MAX_CLIENTS)
        return fl_fail(err, FL_EINVAL, "secure aggregation: n = %u clients, need 2 to %d", p->n,
                       FL_SECAGG_MAX_CLIENTS);
    uint32_t t = p->t ? p->t : fl_secagg_default_t(p->n);
    /* t > n/2: a server that tells some clients that u dropped and others that u survived
     * cannot then gather t shares of both of u's secrets from honest clients (see privacy.md). */
    if (t > p->n || 2 * (uint64_t)t <= p->n)
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation: threshold t = %u for n = %u clients, need n/2 < t <= n",
                       t, p->n);
    if (p->dim == 0 || p->dim > SIZE_MAX / 4)
        return fl_fail(err, FL_EINVAL, "secure aggregation: dim = %zu words, need 1 or more",
                       p->dim);
    if (p->cipher != FL_STREAM_AES256_CTR && p->cipher != FL_STREAM_CHACHA20)
        return fl_fail(err, FL_EINVAL, "secure aggregation: unknown mask cipher %d",
                       (int)p->cipher);
    /* A ChaCha20 stream from counter 0 ends after 2^32 blocks of 16 words. */
    if (p->cipher == FL_STREAM_CHACHA20 && (uint64_t)p->dim > (UINT64_C(1) << 36))
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation: %zu words exceed one ChaCha20 keystream (2^36)",
                       p->dim);
    memcpy(r->study, p->study, len + 1);
    r->round = p->round, r->n = p->n, r->t = t, r->dim = p->dim, r->cipher = p->cipher;
    return FL_OK;
}

fl_status fl__secagg_too_few(fl_err *err, const fl__secagg_round *r, size_t remain,
                             const char *step) {
    return fl_fail(err, FL_EINVAL,
                   "secure aggregation needs t = %u of %u clients, %zu remain after %s; the round "
                   "is aborted",
                   r->t, r->n, remain, step);
}

fl_status fl__secagg_stream(fl_stream *s, const fl__secagg_round *r,
                            const uint8_t key[FL_SECAGG_KEY_LEN], fl_err *err) {
    static const uint8_t iv[FL_STREAM_IV_LEN];
    return fl_stream_init(s, r->cipher, key, iv, err);
}

static uint8_t *put(uint8_t *p, const void *src, size_t n) {
    memcpy(p, src, n);
    return p + n;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

size_t fl_secagg_advert_bytes(const char *study, uint64_t round, const fl_secagg_advert *a,
                              uint8_t buf[FL_SECAGG_ADVERT_BYTES_MAX]) {
    size_t ls = fl__secagg_id_len(study), li = fl__secagg_id_len(a->id);
    if (!ls || !li) return 0;
    uint8_t *p = buf;
    p = put(p, ADVERT_LABEL, sizeof ADVERT_LABEL); /* with its NUL */
    p = put(p, study, ls + 1);
    p = put_be(p, round, 8);
    p = put_be(p, a->index, 4);
    p = put(p, a->id, li + 1);
    p = put(p, a->c_pk, FL_X25519_LEN);
    p = put(p, a->s_pk, FL_X25519_LEN);
    return (size_t)(p - buf);
}

fl_status fl_secagg_derive_key(fl_secagg_key_kind kind, const uint8_t ikm[FL_SECAGG_KEY_LEN],
                               const char *study, uint64_t round, const char *id_u,
                               const char *id_v, uint8_t key[FL_SECAGG_KEY_LEN], fl_err *err) {
    static const char *const label[] = {"mask", "enc", "self"};
    memset(key, 0, FL_SECAGG_KEY_LEN);
    if ((unsigned)kind > FL_SECAGG_KEY_SELF)
        return fl_fail(err, FL_EINVAL, "secure aggregation: unknown key kind %d", (int)kind);
    int pair = kind != FL_SECAGG_KEY_SELF;
    size_t ls = fl__secagg_id_len(study), lu = fl__secagg_id_len(id_u);
    size_t lv = pair ? fl__secagg_id_len(id_v) : 0;
    if (!ls || !lu || (pair && !lv))
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation: the study and client ids must have 1 to %d bytes",
                       FL_SECAGG_ID_MAX);
    const char *lo = id_u, *hi = pair ? id_v : "";
    int order = pair ? strcmp(id_u, id_v) : -1;
    if (order == 0)
        return fl_fail(err, FL_EINVAL, "secure aggregation: a pair key for %s with itself", id_u);
    if (order > 0) lo = id_v, hi = id_u;
    /* label || 0 || study || 0 || round (8 BE) || id_lo || 0 || id_hi: 5 + 65 + 8 + 65 + 64 */
    uint8_t info[5 + 2 * (FL_SECAGG_ID_MAX + 1) + 8 + FL_SECAGG_ID_MAX], *p = info;
    p = put(p, label[kind], strlen(label[kind]) + 1);
    p = put(p, study, ls + 1);
    p = put_be(p, round, 8);
    p = put(p, lo, strlen(lo) + 1);
    p = put(p, hi, strlen(hi));
    return fl_hkdf((const uint8_t *)FL_SECAGG_SALT, strlen(FL_SECAGG_SALT), ikm, FL_SECAGG_KEY_LEN,
                   info, (size_t)(p - info), key, FL_SECAGG_KEY_LEN, err);
}
