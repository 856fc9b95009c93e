/* transfer.c - GetModel and PutUpdate for the hospital client, on the call helpers of
 * client.c: chunks are parsed in place (proto/rpc.h) and copied once into the model vector;
 * updates go out as slices that reference the caller's vector. It decides nothing about tasks
 * and keeps only the last model downloaded. */
#include "transfer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct fl_transfer {
    fl_client *client;
    fl_rpc_pool *pool; /* receive buffers for chunks that arrive in several slices */
    int corrupt;       /* downloads still to damage (testing aid) */
    /* the cache: the last model that passed its checks */
    int valid;
    fl_transfer_model model;
    float *w;   /* cap floats, heap */
    size_t cap; /* floats */
};

fl_status fl_transfer_new(fl_client *c, fl_transfer **out, fl_err *err) {
    fl_transfer *t = calloc(1, sizeof *t);
    if (t) t->pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 2);
    if (!t || !t->pool) {
        free(t);
        *out = NULL;
        return fl_fail(err, FL_ENOMEM, "out of memory for the transfer buffers");
    }
    t->client = c;
    *out = t;
    return FL_OK;
}

void fl_transfer_free(fl_transfer *t) {
    if (!t) return;
    fl_rpc_pool_free(t->pool);
    free(t->w);
    free(t);
}

void fl_transfer_corrupt_downloads(fl_transfer *t, int n) {
    t->corrupt = n;
}

/* ---- GetModel ---- */

/* One download in progress into t->w. */
typedef struct {
    fl_transfer *t;
    const char *study;
    uint64_t version;
    const uint8_t *want_sha; /* the task's */
    size_t n_floats;         /* what the site expects, or 0 */
    Fedlung__V1__ModelHeader *header;
    uint64_t total, got; /* bytes announced, bytes received */
    fl_sha256_ctx h;
    int damage; /* damage this download (testing aid) */
    int chunks; /* received */
} download;

/* Checks the first chunk's header and makes room for the model. FL_EFORMAT says why a header
 * is refused; FL_ENOMEM. */
static fl_status take_header(download *d, Fedlung__V1__ModelHeader *mh, fl_err *err) {
    d->header = mh;
    if (strcmp(mh->study_id, d->study) != 0 || mh->model_version != d->version)
        return fl_fail(err, FL_EFORMAT, "GetModel sent model %llu of study '%s', not %llu of '%s'",
                       (unsigned long long)mh->model_version, mh->study_id,
                       (unsigned long long)d->version, d->study);
    /* validation checked total_length == 4 * (n_params + n_buffers) without overflow */
    uint64_t n = mh->n_params + mh->n_buffers;
    if (mh->total_length > FL_RPC_MAX_MODEL || n > SIZE_MAX / sizeof(float))
        return fl_fail(err, FL_EFORMAT, "GetModel announced %llu bytes, over the limit",
                       (unsigned long long)mh->total_length);
    if (d->n_floats && n != d->n_floats)
        return fl_fail(err, FL_EFORMAT,
                       "GetModel announced %llu floats, this site's model of the phase has %zu",
                       (unsigned long long)n, d->n_floats);
    if (memcmp(mh->sha256.data, d->want_sha, FL_SHA256_LEN) != 0)
        return fl_fail(err, FL_EFORMAT, "GetModel's header names another SHA-256 than the task");
    fl_transfer *t = d->t;
    t->valid = 0; /* the buffer is overwritten from here on */
    if (n > t->cap) {
        free(t->w);
        t->cap = 0;
        if (!(t->w = malloc(n ? n * sizeof(float) : 1)))
            return fl_fail(err, FL_ENOMEM, "out of memory for a model of %llu bytes",
                           (unsigned long long)mh->total_length);
        t->cap = n;
    }
    d->total = mh->total_length;
    return fl_sha256_init(&d->h) == FL_OK ? FL_OK
                                          : fl_fail(err, FL_EBACKEND, "SHA-256 failed to start");
}

/* One received ModelChunk: header first, then payloads in order, copied into t->w and hashed
 * there (so the hash covers exactly the bytes the site will use). */
static fl_status take_chunk(download *d, grpc_byte_buffer *bb, fl_err *err) {
    fl_rpc_flat f;
    fl_rpc_chunk ch;
    memset(&ch, 0, sizeof ch);
    fl_status st = fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, d->t->pool, &f, err);
    if (st != FL_OK) return st;
    if ((st = fl_rpc_model_chunk_parse(f.data, f.len, &ch, err)) != FL_OK) goto done;
    if (!d->header != !!ch.model_header) {
        st = fl_fail(err, FL_EFORMAT, "GetModel: %s",
                     d->header ? "a second ModelHeader" : "no ModelHeader in chunk 1");
        goto done;
    }
    if (ch.model_header) {
        st = take_header(d, ch.model_header, err);
        ch.model_header = NULL; /* d owns it now */
        if (st != FL_OK) goto done;
    }
    if (ch.offset != d->got || ch.len > d->total - d->got) {
        st = fl_fail(err, FL_EFORMAT,
                     "GetModel: chunk at offset %llu of %zu bytes, expected offset %llu of %llu",
                     (unsigned long long)ch.offset, ch.len, (unsigned long long)d->got,
                     (unsigned long long)d->total);
        goto done;
    }
    unsigned char *dst = (unsigned char *)d->t->w + d->got;
    memcpy(dst, ch.data, ch.len);
    if (d->damage && ch.len) {
        dst[ch.len / 2] ^= 0x10;
        d->damage = 0;
    }
    d->got += ch.len;
    d->chunks++;
    if (fl_sha256_update(&d->h, dst, ch.len) != FL_OK)
        st = fl_fail(err, FL_EBACKEND, "SHA-256 failed");
done:
    fl_rpc_chunk_clear(&ch);
    fl_rpc_flat_release(&f);
    return st;
}

/* One GetModel call. FL_OK: t->w holds the checked model. FL_EFORMAT: the download was damaged
 * (err says how; *code OK). Otherwise the call failed with *code. */
static fl_status download_once(download *d, uint64_t round, grpc_status_code *code, fl_err *err) {
    fl_transfer *t = d->t;
    Fedlung__V1__ModelRequest rq = FEDLUNG__V1__MODEL_REQUEST__INIT;
    rq.study_id = (char *)d->study;
    rq.round = round;
    rq.model_version = d->version;
    rq.chunk_bytes = FL_RPC_CHUNK_DEFAULT;
    grpc_byte_buffer *send = NULL, *recv = NULL;
    *code = GRPC_STATUS_OK;
    fl_status st = fl_rpc_pack(&rq.base, &send, err);
    if (st != FL_OK) return st;
    /* 1 MB/s at the least, for the size the site expects (a minute without one) */
    double timeout_s = 60.0 + (double)d->n_floats * sizeof(float) / 1e6;
    fl_client_rpc r;
    fl_client_rpc_open(t->client, FL_RPC_GET_MODEL, timeout_s, &r);
    grpc_op ops[4] = {fl_client_rpc_send_md(&r),
                      {.op = GRPC_OP_SEND_MESSAGE},
                      {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
                      fl_client_rpc_recv_md(&r)};
    ops[1].data.send_message.send_message = send;
    int ok = fl_client_rpc_run(&r, ops, 4);
    grpc_byte_buffer_destroy(send);
    st = FL_OK;
    while (ok == 1 && st == FL_OK) {
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &recv;
        ok = fl_client_rpc_run(&r, &op, 1);
        if (ok != 1 || !recv) break; /* the end of the stream */
        st = take_chunk(d, recv, err);
        grpc_byte_buffer_destroy(recv);
        recv = NULL;
    }
    if (st != FL_OK) grpc_call_cancel(r.call, NULL); /* we stop reading: end the call */
    grpc_op fin = fl_client_rpc_recv_status(&r);
    if (ok < 0 || fl_client_rpc_run(&r, &fin, 1) < 0) {
        *code = GRPC_STATUS_UNKNOWN;
        if (st == FL_OK) st = fl_fail(err, FL_EIO, "GetModel: gRPC refused a batch");
    } else if (st == FL_OK) {
        *code = r.code;
        if (r.code != GRPC_STATUS_OK)
            st = fl_client_rpc_result(&r, FL_RPC_GET_MODEL, err);
        else if (!d->header || d->got != d->total)
            st = fl_fail(err, FL_EFORMAT, "GetModel ended after %llu of %llu bytes",
                         (unsigned long long)d->got, (unsigned long long)d->total);
    }
    fl_client_rpc_close(&r);
    uint8_t sha[FL_SHA256_LEN];
    if (st == FL_OK && fl_sha256_final(&d->h, sha) != FL_OK)
        st = fl_fail(err, FL_EBACKEND, "SHA-256 failed");
    if (st == FL_OK && memcmp(sha, d->want_sha, FL_SHA256_LEN) != 0) {
        char hex[FL_SHA256_HEX];
        fl_hex_encode(sha, FL_SHA256_LEN, hex);
        st = fl_fail(err, FL_EFORMAT,
                     "GetModel: the model's bytes hash to %.16s.., not the "
                     "header's and the task's",
                     hex);
    }
    fl_sha256_destroy(&d->h);
    return st;
}

fl_status fl_transfer_get_model(fl_transfer *t, const char *study, uint64_t round, uint64_t version,
                                const uint8_t sha256[FL_SHA256_LEN], size_t n_floats,
                                const fl_transfer_model **out, grpc_status_code *code,
                                fl_err *err) {
    *out = NULL;
    *code = GRPC_STATUS_OK;
    if (t->valid && t->model.version == version &&
        memcmp(t->model.sha256, sha256, FL_SHA256_LEN) == 0 &&
        (!n_floats || n_floats == t->model.n_params + t->model.n_buffers)) {
        *out = &t->model;
        return FL_OK;
    }
    fl_status st = FL_OK;
    for (int attempt = 1; attempt <= FL_TRANSFER_MODEL_TRIES; attempt++) {
        download d = {.t = t,
                      .study = study,
                      .version = version,
                      .want_sha = sha256,
                      .n_floats = n_floats,
                      .damage = t->corrupt > 0};
        if (d.damage) t->corrupt--;
        st = download_once(&d, round, code, err);
        if (st == FL_OK) {
            t->model = (fl_transfer_model){.w = t->w,
                                           .n_params = d.header->n_params,
                                           .n_buffers = d.header->n_buffers,
                                           .version = version};
            memcpy(t->model.sha256, sha256, FL_SHA256_LEN);
            t->valid = 1;
            fl_client_log("model %llu: fetched %llu bytes in %d chunk%s, sha256 checked",
                          (unsigned long long)version, (unsigned long long)d.total, d.chunks,
                          d.chunks == 1 ? "" : "s");
        }
        if (d.header) protobuf_c_message_free_unpacked(&d.header->base, NULL);
        if (st == FL_OK) {
            *out = &t->model;
            return FL_OK;
        }
        if (*code != GRPC_STATUS_OK || st != FL_EFORMAT) return st; /* not a damaged download */
        fl_client_log("model %llu, download %d of %d: %s; discarded", (unsigned long long)version,
                      attempt, FL_TRANSFER_MODEL_TRIES, err->msg);
    }
    *code = GRPC_STATUS_DATA_LOSS;
    return st;
}

const fl_transfer_model *fl_transfer_cached(const fl_transfer *t) {
    return t->valid ? &t->model : NULL;
}

/* ---- PutUpdate ---- */

/* Chunks gRPC still holds: the caller's vector must outlive them. */
typedef struct {
    atomic_int held;
} lease;

static void release_chunk(void *user) {
    atomic_fetch_sub(&((lease *)user)->held, 1);
}

/* Sends UpdateChunk{header} and the DataChunks; returns 1 when all went out, 0 when the call
 * died on the way (its status says why), -1 when a batch could not start or a chunk could not
 * be made (err says why). */
static int send_update(fl_client_rpc *r, const Fedlung__V1__UpdateHeader *h, const uint8_t *data,
                       size_t length, lease *l, fl_err *err) {
    Fedlung__V1__UpdateChunk first = FEDLUNG__V1__UPDATE_CHUNK__INIT;
    first.part_case = FEDLUNG__V1__UPDATE_CHUNK__PART_HEADER;
    first.header = (Fedlung__V1__UpdateHeader *)h;
    grpc_byte_buffer *bb = NULL;
    if (fl_rpc_pack(&first.base, &bb, err) != FL_OK) return -1;
    grpc_op ops[2] = {fl_client_rpc_send_md(r), {.op = GRPC_OP_SEND_MESSAGE}};
    ops[1].data.send_message.send_message = bb;
    int ok = fl_client_rpc_run(r, ops, 2);
    grpc_byte_buffer_destroy(bb);
    for (size_t off = 0; ok == 1 && off < length; off += FL_RPC_CHUNK_DEFAULT) {
        size_t n = length - off < FL_RPC_CHUNK_DEFAULT ? length - off : FL_RPC_CHUNK_DEFAULT;
        atomic_fetch_add(&l->held, 1); /* released by gRPC, or at once on failure */
        if (fl_rpc_update_data_bb(off, data + off, n, release_chunk, l, &bb, err) != FL_OK)
            return -1;
        grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
        op.data.send_message.send_message = bb;
        ok = fl_client_rpc_run(r, &op, 1);
        grpc_byte_buffer_destroy(bb);
    }
    if (ok < 0) fl_fail(err, FL_EIO, "PutUpdate: gRPC refused a batch");
    return ok;
}

/* Whether the receipt names what we sent. */
static fl_status check_receipt(const Fedlung__V1__Receipt *rc, const Fedlung__V1__UpdateHeader *h,
                               char audit_hex[FL_SHA256_HEX], fl_err *err) {
    if (strcmp(rc->study_id, h->study_id) != 0 || rc->round != h->round ||
        rc->length != h->length || rc->sha256.len != FL_SHA256_LEN ||
        memcmp(rc->sha256.data, h->sha256.data, FL_SHA256_LEN) != 0)
        return fl_fail(err, FL_EFORMAT,
                       "PutUpdate: the receipt names %llu bytes of round %llu, we sent %llu bytes "
                       "of round %llu, or another SHA-256",
                       (unsigned long long)rc->length, (unsigned long long)rc->round,
                       (unsigned long long)h->length, (unsigned long long)h->round);
    audit_hex[0] = 0;
    if (rc->audit_hash.len == FL_SHA256_LEN)
        fl_hex_encode(rc->audit_hash.data, FL_SHA256_LEN, audit_hex);
    return FL_OK;
}

fl_status fl_transfer_put_update(fl_transfer *t, Fedlung__V1__UpdateHeader *h, size_t length,
                                 const void *data, uint8_t sha[FL_SHA256_LEN], double timeout_s,
                                 char audit_hex[FL_SHA256_HEX], grpc_status_code *code,
                                 fl_err *err) {
    *code = GRPC_STATUS_UNKNOWN;
    audit_hex[0] = 0;
    if (fl_sha256(data, length, sha) != FL_OK) return fl_fail(err, FL_EBACKEND, "SHA-256 failed");
    h->length = length;
    h->sha256 = (ProtobufCBinaryData){FL_SHA256_LEN, sha};
    lease l;
    atomic_init(&l.held, 0);
    fl_client_rpc r;
    fl_client_rpc_open(t->client, FL_RPC_PUT_UPDATE, timeout_s, &r);
    int ok = send_update(&r, h, data, length, &l, err);
    fl_status st = ok < 0 ? FL_EIO : FL_OK;
    grpc_byte_buffer *recv = NULL;
    if (ok < 0) grpc_call_cancel(r.call, NULL);
    /* half-close only after every send went through (a dead call refuses it) */
    grpc_op fin[4] = {{.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
                      fl_client_rpc_recv_md(&r),
                      {.op = GRPC_OP_RECV_MESSAGE},
                      fl_client_rpc_recv_status(&r)};
    fin[2].data.recv_message.recv_message = &recv;
    int first = ok == 1 ? 0 : 1;
    if (fl_client_rpc_run(&r, fin + first, 4 - (size_t)first) < 0) {
        if (st == FL_OK) st = fl_fail(err, FL_EIO, "PutUpdate: gRPC refused the last batch");
    } else if (st == FL_OK) {
        *code = r.code;
        ProtobufCMessage *rc = NULL;
        if (r.code != GRPC_STATUS_OK)
            st = fl_client_rpc_result(&r, FL_RPC_PUT_UPDATE, err);
        else if (!recv)
            st = fl_fail(err, FL_EFORMAT, "PutUpdate: OK without a Receipt");
        else if ((st = fl_rpc_unpack(&fedlung__v1__receipt__descriptor, recv, FL_RPC_MAX_MESSAGE,
                                     &rc, err)) == FL_OK &&
                 (st = check_receipt((Fedlung__V1__Receipt *)rc, h, audit_hex, err)) != FL_OK)
            *code = GRPC_STATUS_DATA_LOSS;
        if (rc) protobuf_c_message_free_unpacked(rc, NULL);
    }
    if (recv) grpc_byte_buffer_destroy(recv);
    fl_client_rpc_close(&r);
    /* gRPC drops the last slices on its own threads, soon after the call is gone */
    for (int i = 0; atomic_load(&l.held) > 0; i++) {
        if (i == 10000) fl_client_log("PutUpdate: waiting for gRPC to release the update's chunks");
        fl_client_sleep(0.001);
    }
    return st;
}
