/* secagg_server.c - the secure-aggregation server (secagg.h): it collects adverts, routes the
 * sealed shares, adds masked inputs into one running sum chunk by chunk, and at the end rebuilds
 * from t shares the self-mask seed of each survivor and the mask key of each dropped client to
 * take their masks out of the sum. It holds no client's vector: the only input of step 2 is
 * fl_secagg_masked, added into the sum at once. Not a network server: it only takes structs. */
#include "secagg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L FL_SECAGG_KEY_LEN

enum { S_ADVERTS, S_SHARES, S_MASKED, S_UNMASK, S_DONE, S_ABORTED };
static const char *const step_name[] = {"AdvertiseKeys", "ShareKeys", "MaskedInput",
                                        "Unmask",        "the end",   "an abort"};

struct fl_secagg_server {
    fl__secagg_round r;
    fl_secagg_hooks hooks; /* zero when none: no advert verification */
    int state;
    char why[FL_ERR_LEN]; /* the reason of an abort */
    size_t stride;        /* n + 1: tables below are indexed [client * stride + client] */
    /* membership by index 1..n: advertised (U1), shared (U2), whole masked input (U3),
     * answered the unmask request (U5) */
    uint8_t in_u1[FL_SECAGG_MAX_CLIENTS + 1], in_u2[FL_SECAGG_MAX_CLIENTS + 1];
    uint8_t in_u3[FL_SECAGG_MAX_CLIENTS + 1], in_u5[FL_SECAGG_MAX_CLIENTS + 1];
    size_t n_u1, n_u2, n_u5;
    fl_secagg_advert *advert;  /* [index], n + 1 */
    fl_secagg_advert *u1_list; /* U1 in index order, n_u1 */
    fl_secagg_share_ct *cts;   /* [from * stride + to] */
    size_t *received;          /* [index]: words of its masked input added */
    fl_secagg_unmask_request req;
    uint8_t (*b_share)[L];  /* [peer * stride + from]: secret */
    uint8_t (*sk_share)[L]; /* likewise */
    uint32_t *sum;          /* dim words: the running sum mod 2^32 */
};

static void wipe_secrets(fl_secagg_server *s) {
    size_t cells = s->stride * s->stride;
    if (s->b_share) fl_wipe(s->b_share, cells * L);
    if (s->sk_share) fl_wipe(s->sk_share, cells * L);
    if (s->cts) fl_wipe(s->cts, cells * sizeof *s->cts);
}

/* Ends a step that aborts the round on failure: everything held is wiped. */
static fl_status end_step(fl_secagg_server *s, fl_status st, const fl_err *e, fl_err *err) {
    if (st == FL_OK) return FL_OK;
    if (s->state != S_ABORTED) {
        wipe_secrets(s);
        if (s->sum) fl_wipe(s->sum, s->r.dim * sizeof *s->sum);
        s->state = S_ABORTED;
        snprintf(s->why, sizeof s->why, "%s", e->msg);
    }
    return fl_fail(err, st, "%s", e->msg);
}

static fl_status expect(const fl_secagg_server *s, int state, const char *what, fl_err *e) {
    if (s->state == S_ABORTED)
        return fl_fail(e, FL_EINVAL, "secure aggregation server: the round was aborted: %s",
                       s->why);
    if (s->state != state)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation server: %s is out of order (the round is at %s)", what,
                       step_name[s->state]);
    return FL_OK;
}

/* FL_OK when v is a client number 1..n. */
static fl_status check_index(const fl_secagg_server *s, uint32_t v, const char *what, fl_err *e) {
    if (v < 1 || v > s->r.n)
        return fl_fail(e, FL_EINVAL, "secure aggregation server: %s from client %u (of 1..%u)",
                       what, v, s->r.n);
    return FL_OK;
}

/* ---- new, free ---- */

fl_status fl_secagg_server_new(const fl_secagg_params *p, const fl_secagg_hooks *hooks,
                               fl_secagg_server **out, fl_err *err) {
    *out = NULL;
    fl__secagg_round r;
    fl_status st = fl__secagg_round_init(&r, p, err);
    if (st != FL_OK) return st;
    fl_secagg_server *s = calloc(1, sizeof *s);
    if (!s) return fl_fail(err, FL_ENOMEM, "secure aggregation: out of memory for the server");
    s->r = r;
    if (hooks) s->hooks = *hooks;
    s->stride = (size_t)r.n + 1;
    size_t cells = s->stride * s->stride;
    s->advert = calloc(s->stride, sizeof *s->advert);
    s->cts = calloc(cells, sizeof *s->cts);
    s->received = calloc(s->stride, sizeof *s->received);
    s->b_share = calloc(cells, L);
    s->sk_share = calloc(cells, L);
    s->sum = calloc(r.dim, sizeof *s->sum);
    if (!s->advert || !s->cts || !s->received || !s->b_share || !s->sk_share || !s->sum) {
        fl_secagg_server_free(s);
        return fl_fail(err, FL_ENOMEM, "secure aggregation: out of memory for a sum of %zu words",
                       r.dim);
    }
    *out = s;
    return FL_OK;
}

void fl_secagg_server_free(fl_secagg_server *s) {
    if (!s) return;
    wipe_secrets(s);
    if (s->sum) fl_wipe(s->sum, s->r.dim * sizeof *s->sum);
    free(s->advert), free(s->u1_list), free(s->cts), free(s->received);
    free(s->b_share), free(s->sk_share), free(s->sum);
    fl_wipe(s, sizeof *s);
    free(s);
}

/* ---- step 0 ---- */

fl_status fl_secagg_server_add_advert(fl_secagg_server *s, const fl_secagg_advert *a, fl_err *e) {
    fl_status st = expect(s, S_ADVERTS, "an advert", e);
    if (st != FL_OK || (st = check_index(s, a->index, "an advert", e)) != FL_OK) return st;
    uint32_t v = a->index;
    uint8_t msg[FL_SECAGG_ADVERT_BYTES_MAX];
    size_t n = fl_secagg_advert_bytes(s->r.study, s->r.round, a, msg);
    if (s->in_u1[v] || !n || a->sig_len < 1 || a->sig_len > FL_SECAGG_SIG_MAX)
        return fl_fail(e, FL_EINVAL,
                       "secure aggregation server: the advert of client %u is a repeat, or its "
                       "id or signature is malformed",
                       v);
    for (uint32_t w = 1; w <= s->r.n; w++)
        if (s->in_u1[w] && !strcmp(s->advert[w].id, a->id))
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation server: clients %u and %u both claim id %s", w, v,
                           a->id);
    if (s->hooks.verify && s->hooks.verify(s->hooks.ctx, v, a->id, msg, n, a->sig, a->sig_len) != 1)
        return fl_fail(e, FL_EFORMAT,
                       "secure aggregation server: the advert of client %u (%s) has no valid "
                       "signature",
                       v, a->id);
    s->advert[v] = *a;
    s->in_u1[v] = 1;
    s->n_u1++;
    return FL_OK;
}

static fl_status close_adverts(fl_secagg_server *s, const fl_secagg_advert **list, size_t *count,
                               fl_err *e) {
    fl_status st = expect(s, S_ADVERTS, "closing AdvertiseKeys", e);
    if (st != FL_OK) return st;
    if (s->n_u1 < s->r.t) return fl__secagg_too_few(e, &s->r, s->n_u1, "AdvertiseKeys");
    s->u1_list = calloc(s->n_u1, sizeof *s->u1_list);
    if (!s->u1_list) return fl_fail(e, FL_ENOMEM, "secure aggregation: out of memory");
    size_t k = 0;
    for (uint32_t v = 1; v <= s->r.n; v++)
        if (s->in_u1[v]) s->u1_list[k++] = s->advert[v];
    *list = s->u1_list;
    *count = k;
    s->state = S_SHARES;
    return FL_OK;
}

fl_status fl_secagg_server_close_adverts(fl_secagg_server *s, const fl_secagg_advert **list,
                                         size_t *count, fl_err *err) {
    fl_err e = {{0}};
    *list = NULL;
    *count = 0;
    return end_step(s, close_adverts(s, list, count, &e), &e, err);
}

/* ---- step 1 ---- */

fl_status fl_secagg_server_add_shares(fl_secagg_server *s, uint32_t from,
                                      const fl_secagg_share_ct *cts, size_t count, fl_err *err) {
    fl_status st = expect(s, S_SHARES, "a client's shares", err);
    if (st != FL_OK || (st = check_index(s, from, "shares", err)) != FL_OK) return st;
    if (!s->in_u1[from] || s->in_u2[from] || count != s->n_u1 - 1)
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation server: %zu share ciphertexts from client %u, which "
                       "is outside U1, a repeat, or owes %zu",
                       count, from, s->n_u1 - 1);
    uint8_t seen[FL_SECAGG_MAX_CLIENTS + 1] = {0};
    for (size_t i = 0; i < count; i++) {
        uint32_t to = cts[i].to;
        if (cts[i].from != from || to < 1 || to > s->r.n || to == from || !s->in_u1[to] ||
            seen[to]++)
            return fl_fail(err, FL_EINVAL,
                           "secure aggregation server: client %u's share ciphertext %zu goes "
                           "from %u to %u",
                           from, i, cts[i].from, to);
    }
    for (size_t i = 0; i < count; i++) s->cts[from * s->stride + cts[i].to] = cts[i];
    s->in_u2[from] = 1;
    s->n_u2++;
    return FL_OK;
}

fl_status fl_secagg_server_close_shares(fl_secagg_server *s, fl_err *err) {
    fl_err e = {{0}};
    fl_status st = expect(s, S_SHARES, "closing ShareKeys", &e);
    if (st == FL_OK && s->n_u2 < s->r.t) st = fl__secagg_too_few(&e, &s->r, s->n_u2, "ShareKeys");
    if (st == FL_OK) s->state = S_MASKED;
    return end_step(s, st, &e, err);
}

fl_status fl_secagg_server_shares_for(const fl_secagg_server *s, uint32_t to,
                                      fl_secagg_share_ct *out, size_t cap, size_t *n_out,
                                      fl_err *err) {
    *n_out = 0;
    fl_status st = expect(s, S_MASKED, "routing shares", err);
    if (st != FL_OK || (st = check_index(s, to, "a request for shares", err)) != FL_OK) return st;
    if (!s->in_u2[to] || cap < s->n_u2 - 1)
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation server: shares for client %u, which is outside U2, "
                       "or room for %zu of %zu",
                       to, cap, s->n_u2 - 1);
    for (uint32_t u = 1; u <= s->r.n; u++)
        if (s->in_u2[u] && u != to) out[(*n_out)++] = s->cts[u * s->stride + to];
    return FL_OK;
}

/* ---- step 2 ---- */

fl_status fl_secagg_server_add_masked(fl_secagg_server *s, const fl_secagg_masked *m, fl_err *err) {
    fl_status st = expect(s, S_MASKED, "a masked input", err);
    if (st != FL_OK || (st = check_index(s, m->from, "a masked input", err)) != FL_OK) return st;
    uint32_t u = m->from;
    size_t have = s->received[u];
    if (!s->in_u2[u] || m->offset != have || m->count > s->r.dim - have || (m->count && !m->data))
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation server: masked words [%zu, %zu) of client %u, which "
                       "is outside U2 or has sent %zu of %zu (chunks go in order)",
                       m->offset, m->offset + m->count, u, have, s->r.dim);
    const uint8_t *d = m->data;
    uint32_t *acc = s->sum + m->offset;
    ptrdiff_t count = (ptrdiff_t)m->count;
#pragma omp parallel for simd if (count >= (1 << 18)) schedule(static)
    for (ptrdiff_t i = 0; i < count; i++) {
        uint32_t w;
        memcpy(&w, d + 4 * i, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap32(w);
#endif
        acc[i] += w;
    }
    s->received[u] = have + m->count;
    return FL_OK;
}

size_t fl_secagg_server_received(const fl_secagg_server *s, uint32_t index) {
    return index >= 1 && index <= s->r.n ? s->received[index] : 0;
}

static fl_status close_masked(fl_secagg_server *s, fl_secagg_unmask_request *req, fl_err *e) {
    fl_status st = expect(s, S_MASKED, "closing MaskedInput", e);
    if (st != FL_OK) return st;
    fl_secagg_unmask_request *q = &s->req;
    memset(q, 0, sizeof *q);
    for (uint32_t u = 1; u <= s->r.n; u++) {
        if (!s->in_u2[u]) continue;
        size_t got = s->received[u];
        if (got && got < s->r.dim)
            return fl_fail(e, FL_EINVAL,
                           "secure aggregation server: client %u (%s) sent %zu of %zu words of "
                           "its masked input, which are in the sum and cannot be taken out; the "
                           "round is aborted",
                           u, s->advert[u].id, got, s->r.dim);
        s->in_u3[u] = got == s->r.dim;
        if (s->in_u3[u])
            q->survivors[q->n_survivors++] = u;
        else
            q->dropped[q->n_dropped++] = u;
    }
    if (q->n_survivors < s->r.t) return fl__secagg_too_few(e, &s->r, q->n_survivors, "MaskedInput");
    *req = *q;
    s->state = S_UNMASK;
    return FL_OK;
}

fl_status fl_secagg_server_close_masked(fl_secagg_server *s, fl_secagg_unmask_request *req,
                                        fl_err *err) {
    fl_err e = {{0}};
    memset(req, 0, sizeof *req);
    return end_step(s, close_masked(s, req, &e), &e, err);
}

/* ---- step 3 ---- */

fl_status fl_secagg_server_add_unmask(fl_secagg_server *s, const fl_secagg_unmask_reply *r,
                                      fl_err *err) {
    fl_status st = expect(s, S_UNMASK, "an unmask answer", err);
    if (st != FL_OK || (st = check_index(s, r->from, "an unmask answer", err)) != FL_OK) return st;
    const fl_secagg_unmask_request *q = &s->req;
    uint32_t u = r->from;
    int same = r->n_b == q->n_survivors && r->n_sk == q->n_dropped;
    for (uint32_t i = 0; same && i < q->n_survivors; i++) same = r->b_peer[i] == q->survivors[i];
    for (uint32_t i = 0; same && i < q->n_dropped; i++) same = r->sk_peer[i] == q->dropped[i];
    if (!s->in_u3[u] || s->in_u5[u] || !same)
        return fl_fail(err, FL_EINVAL,
                       "secure aggregation server: an unmask answer from client %u, which is "
                       "not a survivor, a repeat, or does not answer the request",
                       u);
    for (uint32_t i = 0; i < q->n_survivors; i++)
        memcpy(s->b_share[q->survivors[i] * s->stride + u], r->b_share[i], L);
    for (uint32_t i = 0; i < q->n_dropped; i++)
        memcpy(s->sk_share[q->dropped[i] * s->stride + u], r->sk_share[i], L);
    s->in_u5[u] = 1;
    s->n_u5++;
    return FL_OK;
}

/* Rebuilds client v's secret from the shares of every member of U5 in table. */
static fl_status rebuild(const fl_secagg_server *s, uint8_t (*table)[L], uint32_t v,
                         uint8_t secret[L], fl_err *e) {
    uint8_t shares[FL_SECAGG_MAX_CLIENTS][L];
    uint32_t xs[FL_SECAGG_MAX_CLIENTS];
    size_t k = 0;
    for (uint32_t u = 1; u <= s->r.n; u++) {
        if (!s->in_u5[u]) continue;
        memcpy(shares[k], table[v * s->stride + u], L);
        xs[k++] = u;
    }
    fl_status st = fl_shamir_combine((const uint8_t(*)[L])shares, xs, k, secret, e);
    fl_wipe(shares, k * L);
    return st;
}

/* The streams that take the survivors' self masks and the pair masks of dropped clients out of
 * the sum: *ms (k of them, owned by the caller) with their signs. */
static fl_status unmask_streams(fl_secagg_server *s, fl_stream *ms, int *sign, size_t *k,
                                fl_err *e) {
    const fl_secagg_unmask_request *q = &s->req;
    uint8_t secret[L], shared[FL_X25519_LEN], key[L], pk[FL_X25519_LEN];
    fl_status st = FL_OK;
    for (uint32_t i = 0; st == FL_OK && i < q->n_survivors; i++) {
        uint32_t v = q->survivors[i];
        st = rebuild(s, s->b_share, v, secret, e);
        if (st == FL_OK)
            st = fl_secagg_derive_key(FL_SECAGG_KEY_SELF, secret, s->r.study, s->r.round,
                                      s->advert[v].id, NULL, key, e);
        if (st == FL_OK && (st = fl__secagg_stream(&ms[*k], &s->r, key, e)) == FL_OK)
            sign[(*k)++] = -1;
    }
    for (uint32_t i = 0; st == FL_OK && i < q->n_dropped; i++) {
        uint32_t v = q->dropped[i];
        st = rebuild(s, s->sk_share, v, secret, e);
        if (st == FL_OK) st = fl_x25519_public(secret, pk, e);
        if (st == FL_OK && memcmp(pk, s->advert[v].s_pk, FL_X25519_LEN))
            st = fl_fail(e, FL_EFORMAT,
                         "secure aggregation server: the mask key of dropped client %u (%s) "
                         "rebuilt from %zu shares does not match its advert (a share is wrong); "
                         "the round is aborted",
                         v, s->advert[v].id, s->n_u5);
        for (uint32_t j = 0; st == FL_OK && j < q->n_survivors; j++) {
            uint32_t u = q->survivors[j];
            st = fl_x25519_shared(secret, s->advert[u].s_pk, shared, e);
            if (st == FL_OK)
                st = fl_secagg_derive_key(FL_SECAGG_KEY_MASK, shared, s->r.study, s->r.round,
                                          s->advert[u].id, s->advert[v].id, key, e);
            if (st == FL_OK && (st = fl__secagg_stream(&ms[*k], &s->r, key, e)) == FL_OK)
                sign[(*k)++] = -fl__secagg_pair_sign(u, v); /* u added the opposite */
        }
    }
    fl_wipe(secret, sizeof secret);
    fl_wipe(shared, sizeof shared);
    fl_wipe(key, sizeof key);
    return st;
}

static fl_status finish(fl_secagg_server *s, fl_err *e) {
    fl_status st = expect(s, S_UNMASK, "finishing", e);
    if (st != FL_OK) return st;
    if (s->n_u5 < s->r.t) return fl__secagg_too_few(e, &s->r, s->n_u5, "Unmask");
    const fl_secagg_unmask_request *q = &s->req;
    size_t max = (size_t)q->n_survivors * (1 + q->n_dropped), k = 0;
    fl_stream *ms = calloc(max, sizeof *ms);
    fl_stream **ptr = calloc(max, sizeof *ptr);
    int *sign = calloc(max, sizeof *sign);
    if (!ms || !ptr || !sign)
        st = fl_fail(e, FL_ENOMEM, "secure aggregation: out of memory for %zu masks", max);
    if (st == FL_OK) st = unmask_streams(s, ms, sign, &k, e);
    for (size_t j = 0; st == FL_OK && j < k; j++) ptr[j] = &ms[j];
    if (st == FL_OK) st = fl_stream_add_u32_many(ptr, sign, k, s->sum, s->r.dim, e);
    for (size_t j = 0; ms && j < k; j++) fl_stream_destroy(&ms[j]);
    free(ms), free(ptr), free(sign);
    if (st != FL_OK) return st;
    wipe_secrets(s);
    s->state = S_DONE;
    return FL_OK;
}

fl_status fl_secagg_server_finish(fl_secagg_server *s, const uint32_t **sum, fl_err *err) {
    fl_err e = {{0}};
    *sum = NULL;
    fl_status st = s->state == S_DONE ? FL_OK : end_step(s, finish(s, &e), &e, err);
    if (st == FL_OK) *sum = s->sum;
    return st;
}
