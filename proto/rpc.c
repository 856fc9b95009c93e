/* rpc.c - the method table and its start-up check, protobuf-c messages to and from gRPC byte
 * buffers, and the status mapping. Chunks are in rpc_chunk.c, the buffer pool in rpc_pool.c,
 * validation in rpc_validate.c. */
#include "rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- methods ---- */

#define FL_RPC_SERVICE "fedlung.v1.Federation"
#define FL_RPC_PATH(name) "/" FL_RPC_SERVICE "/" name

const fl_rpc_method_info fl_rpc_methods[FL_RPC_N_METHODS] = {
    [FL_RPC_JOIN] = {FL_RPC_PATH("Join"), "Join", FL_RPC_UNARY,
                     &fedlung__v1__join_request__descriptor, &fedlung__v1__join_reply__descriptor},
    [FL_RPC_NEXT_TASK] = {FL_RPC_PATH("NextTask"), "NextTask", FL_RPC_UNARY,
                          &fedlung__v1__task_request__descriptor, &fedlung__v1__task__descriptor},
    [FL_RPC_GET_MODEL] = {FL_RPC_PATH("GetModel"), "GetModel", FL_RPC_SERVER_STREAM,
                          &fedlung__v1__model_request__descriptor,
                          &fedlung__v1__model_chunk__descriptor},
    [FL_RPC_PUT_UPDATE] = {FL_RPC_PATH("PutUpdate"), "PutUpdate", FL_RPC_CLIENT_STREAM,
                           &fedlung__v1__update_chunk__descriptor,
                           &fedlung__v1__receipt__descriptor},
    [FL_RPC_PUT_EVAL] = {FL_RPC_PATH("PutEval"), "PutEval", FL_RPC_UNARY,
                         &fedlung__v1__eval_report__descriptor, &fedlung__v1__receipt__descriptor},
    [FL_RPC_STATUS] = {FL_RPC_PATH("Status"), "Status", FL_RPC_UNARY,
                       &fedlung__v1__status_request__descriptor,
                       &fedlung__v1__status_reply__descriptor},
    [FL_RPC_ADVERTISE_KEYS] = {FL_RPC_PATH("AdvertiseKeys"), "AdvertiseKeys", FL_RPC_UNARY,
                               &fedlung__v1__sec_agg_advert__descriptor,
                               &fedlung__v1__receipt__descriptor},
    [FL_RPC_SHARE_KEYS] = {FL_RPC_PATH("ShareKeys"), "ShareKeys", FL_RPC_UNARY,
                           &fedlung__v1__sec_agg_shares__descriptor,
                           &fedlung__v1__receipt__descriptor},
    [FL_RPC_UNMASK] = {FL_RPC_PATH("Unmask"), "Unmask", FL_RPC_UNARY,
                       &fedlung__v1__sec_agg_unmask_reply__descriptor,
                       &fedlung__v1__receipt__descriptor},
};

fl_status fl_rpc_check_methods(fl_err *err) {
    const ProtobufCServiceDescriptor *sd = &fedlung__v1__federation__descriptor;
    if (sd->n_methods != FL_RPC_N_METHODS)
        return fl_fail(err, FL_EFORMAT,
                       "fedlung.proto's service %s has %u methods, proto/rpc.c's table %d",
                       sd->name, sd->n_methods, (int)FL_RPC_N_METHODS);
    for (int i = 0; i < FL_RPC_N_METHODS; i++) {
        const ProtobufCMethodDescriptor *md = &sd->methods[i];
        const fl_rpc_method_info *t = &fl_rpc_methods[i];
        char path[256];
        snprintf(path, sizeof path, "/%s/%s", sd->name, md->name);
        if (strcmp(path, t->path) != 0 || strcmp(md->name, t->name) != 0)
            return fl_fail(err, FL_EFORMAT,
                           "method %d is %s in fedlung.proto but %s in proto/rpc.c's table", i,
                           path, t->path);
        if (md->input != t->request || md->output != t->reply)
            return fl_fail(err, FL_EFORMAT,
                           "method %s takes %s and returns %s in fedlung.proto, not %s and %s",
                           t->name, md->input->name, md->output->name, t->request->name,
                           t->reply->name);
    }
    return FL_OK;
}

int fl_rpc_method_find(grpc_slice path) {
    for (int i = 0; i < FL_RPC_N_METHODS; i++)
        if (grpc_slice_str_cmp(path, fl_rpc_methods[i].path) == 0) return i;
    return -1;
}

/* ---- messages <-> byte buffers ---- */

fl_status fl_rpc_pack(const ProtobufCMessage *m, grpc_byte_buffer **out, fl_err *err) {
    *out = NULL;
    if (!m) return fl_fail(err, FL_EINVAL, "no message to pack");
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n); /* aborts rather than returning NULL */
    size_t w = protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    if (w != n) {
        grpc_slice_unref(s);
        return fl_fail(err, FL_EINVAL, "%s packed to %zu bytes, not the %zu announced",
                       m->descriptor->name, w, n);
    }
    *out = grpc_raw_byte_buffer_create(&s, 1); /* takes its own reference */
    grpc_slice_unref(s);
    return FL_OK;
}

/* Copies the reader's slices into dst (cap bytes, which the caller sized to the whole). */
static size_t copy_slices(grpc_byte_buffer_reader *r, uint8_t *dst, size_t cap) {
    size_t at = 0;
    grpc_slice s;
    while (grpc_byte_buffer_reader_next(r, &s)) {
        size_t k = GRPC_SLICE_LENGTH(s);
        if (k > cap - at) k = cap - at; /* cannot happen: the length was measured */
        memcpy(dst + at, GRPC_SLICE_START_PTR(s), k);
        at += k;
        grpc_slice_unref(s);
    }
    return at;
}

fl_status fl_rpc_flatten(grpc_byte_buffer *bb, size_t limit, fl_rpc_pool *pool, fl_rpc_flat *f,
                         fl_err *err) {
    memset(f, 0, sizeof *f);
    if (!bb) return fl_fail(err, FL_EINVAL, "no message received");
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) /* decompresses a compressed buffer */
        return fl_fail(err, FL_EFORMAT, "message cannot be read (bad compression)");
    fl_status st = FL_OK;
    if (bb->data.raw.compression != GRPC_COMPRESS_NONE) {
        /* gRPC's own filter decompresses incoming messages, so this is rare: take one slice. */
        f->slice = grpc_byte_buffer_reader_readall(&r);
        f->has_slice = 1;
        f->data = GRPC_SLICE_START_PTR(f->slice);
        f->len = GRPC_SLICE_LENGTH(f->slice);
        if (f->len > limit) goto too_big;
        goto done;
    }
    f->len = grpc_byte_buffer_length(bb);
    if (f->len > limit) goto too_big;
    if (f->len == 0) { /* an empty message: every field at its default */
        f->data = (const uint8_t *)"";
        goto done;
    }
    if (bb->data.raw.slice_buffer.count == 1) { /* the common small message: a view, no copy */
        grpc_byte_buffer_reader_next(&r, &f->slice);
        f->has_slice = 1;
        f->data = GRPC_SLICE_START_PTR(f->slice);
        goto done;
    }
    uint8_t *dst;
    if (pool && f->len <= fl_rpc_pool_get_stats(pool).cap && (f->buf = fl_rpc_buf_get(pool))) {
        dst = f->buf->data;
        f->buf->len = f->len;
    } else if ((f->heap = malloc(f->len ? f->len : 1))) {
        dst = f->heap;
    } else {
        st = fl_fail(err, FL_ENOMEM, "out of memory for a message of %zu bytes", f->len);
        goto fail;
    }
    copy_slices(&r, dst, f->len);
    f->data = dst;
done:
    grpc_byte_buffer_reader_destroy(&r);
    return FL_OK;
too_big:
    st = fl_fail(err, FL_ENOMEM, "message of %zu bytes exceeds the limit of %zu", f->len, limit);
fail:
    grpc_byte_buffer_reader_destroy(&r);
    fl_rpc_flat_release(f);
    return st;
}

void fl_rpc_flat_release(fl_rpc_flat *f) {
    if (f->has_slice) grpc_slice_unref(f->slice);
    fl_rpc_buf_put(f->buf);
    free(f->heap);
    memset(f, 0, sizeof *f);
}

fl_status fl_rpc_unpack_mem(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t n,
                            size_t limit, ProtobufCMessage **out, fl_err *err) {
    *out = NULL;
    if (n > limit)
        return fl_fail(err, FL_ENOMEM, "%s of %zu bytes exceeds the limit of %zu", d->short_name, n,
                       limit);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, data);
    if (!m) return fl_fail(err, FL_EFORMAT, "malformed %s (%zu bytes)", d->short_name, n);
    fl_status st = fl_rpc_validate(m, err);
    if (st != FL_OK) {
        protobuf_c_message_free_unpacked(m, NULL);
        return st;
    }
    *out = m;
    return FL_OK;
}

fl_status fl_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb, size_t limit,
                        ProtobufCMessage **out, fl_err *err) {
    fl_rpc_flat f;
    *out = NULL;
    fl_status st = fl_rpc_flatten(bb, limit, NULL, &f, err);
    if (st != FL_OK) return st;
    st = fl_rpc_unpack_mem(d, f.data, f.len, limit, out, err);
    fl_rpc_flat_release(&f);
    return st;
}

/* ---- statuses ---- */

grpc_status_code fl_rpc_code(fl_status s) {
    switch (s) {
    case FL_OK:
        return GRPC_STATUS_OK;
    case FL_EINVAL:
    case FL_EFORMAT:
    case FL_ESHAPE:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case FL_ENOMEM:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case FL_ENOTFOUND:
        return GRPC_STATUS_NOT_FOUND;
    case FL_EUNSUPPORTED:
        return GRPC_STATUS_UNIMPLEMENTED;
    case FL_EIO:
    case FL_EBACKEND:
        return GRPC_STATUS_INTERNAL;
    }
    return GRPC_STATUS_UNKNOWN;
}

fl_status fl_rpc_status_to_fl(grpc_status_code code) {
    switch (code) {
    case GRPC_STATUS_OK:
        return FL_OK;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_OUT_OF_RANGE:
        return FL_EINVAL;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return FL_ENOMEM;
    case GRPC_STATUS_NOT_FOUND:
        return FL_ENOTFOUND;
    case GRPC_STATUS_UNIMPLEMENTED:
        return FL_EUNSUPPORTED;
    default:
        return FL_EIO;
    }
}

const char *fl_rpc_code_name(grpc_status_code code) {
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)code < sizeof names / sizeof names[0]) return names[code];
    return "UNKNOWN_CODE";
}

grpc_status_code fl_rpc_status_set(fl_rpc_status *st, grpc_status_code code, const char *fmt, ...) {
    va_list ap;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    return code;
}

grpc_status_code fl_rpc_status_from(fl_rpc_status *st, fl_status s, const fl_err *err) {
    return fl_rpc_status_set(st, fl_rpc_code(s), "%s",
                             err && err->msg[0] ? err->msg : fl_status_str(s));
}

grpc_status_code fl_rpc_check_scope(fl_rpc_status *st, const char *study, uint64_t round,
                                    const char *got_study, uint64_t got_round) {
    if (!got_study || strcmp(study, got_study) != 0)
        return fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                                 "request for study '%.64s', this server runs '%s'",
                                 got_study ? got_study : "", study);
    if (round != FL_RPC_ANY_ROUND && got_round != round)
        return fl_rpc_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                                 "request for round %llu, study '%s' is at round %llu (%s)",
                                 (unsigned long long)got_round, study, (unsigned long long)round,
                                 got_round < round ? "stale" : "ahead of the server");
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

fl_status fl_rpc_fail_status(fl_err *err, fl_rpc_method m, grpc_status_code code,
                             grpc_slice details) {
    if (code == GRPC_STATUS_OK) return FL_OK;
    int n = (int)GRPC_SLICE_LENGTH(details);
    if (n > FL_ERR_LEN) n = FL_ERR_LEN;
    const char *name = (unsigned)m < FL_RPC_N_METHODS ? fl_rpc_methods[m].name : "call";
    return fl_fail(err, fl_rpc_status_to_fl(code), "%s: %s: %.*s", name, fl_rpc_code_name(code), n,
                   (const char *)GRPC_SLICE_START_PTR(details));
}
