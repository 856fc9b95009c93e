/* fuzz_decode.c - proto/'s decoders fed arbitrary bytes. Byte 0 picks a decoder, the rest is the
 * message. Beyond "no crash, no leak", it checks: a message that decodes re-encodes to bytes
 * that decode to the same bytes again; the hand-written chunk parsers never accept what
 * protobuf-c rejects and agree with it when both accept; the zero-copy chunk encoders produce
 * protobuf-c's exact bytes; a message split over several slices flattens to the same bytes, and
 * one over the limit is refused.
 * Built two ways: as a libFuzzer target (cmake -DFL_FUZZ=ON with clang; docs/protocol.md says
 * how to run it for longer), and #included by tests/test_proto.c, whose deterministic mutation
 * loop runs it for a second in every ctest, under ASan in the sanitizer build. */
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpc.h"

#ifndef FUZZ_CHECK /* test_proto.c counts failures instead */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_decode: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                               \
            abort();                                                                      \
        }                                                                                 \
    } while (0)
#endif

/* The messages the generic decoder is tried on, in the order byte 0 selects them. */
static const ProtobufCMessageDescriptor *const fuzz_types[] = {
    &fedlung__v1__join_request__descriptor,   &fedlung__v1__join_reply__descriptor,
    &fedlung__v1__task_request__descriptor,   &fedlung__v1__task__descriptor,
    &fedlung__v1__model_request__descriptor,  &fedlung__v1__model_header__descriptor,
    &fedlung__v1__model_chunk__descriptor,    &fedlung__v1__update_header__descriptor,
    &fedlung__v1__data_chunk__descriptor,     &fedlung__v1__update_chunk__descriptor,
    &fedlung__v1__receipt__descriptor,        &fedlung__v1__eval_report__descriptor,
    &fedlung__v1__status_request__descriptor, &fedlung__v1__status_reply__descriptor,
};
#define FUZZ_N_TYPES ((int)(sizeof fuzz_types / sizeof fuzz_types[0]))
/* Selectors after the generic ones. */
enum {
    FUZZ_SEL_MODEL_CHUNK = FUZZ_N_TYPES, /* fl_rpc_model_chunk_parse vs protobuf-c */
    FUZZ_SEL_UPDATE_CHUNK,               /* fl_rpc_update_chunk_parse vs protobuf-c */
    FUZZ_SEL_FLATTEN,                    /* fl_rpc_flatten over 1-3 slices */
    FUZZ_N_SEL
};

/* Inputs a decoder accepted (test_proto reports it: a loop that accepts nothing tests little). */
static long fuzz_accepted;

/* protobuf-c's packing of m, malloc'd (*n bytes). */
static uint8_t *fuzz_pack(const ProtobufCMessage *m, size_t *n) {
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*n ? *n : 1);
    FUZZ_CHECK(b != NULL);
    FUZZ_CHECK(protobuf_c_message_pack(m, b) == *n);
    return b;
}

/* The bytes of a byte buffer (destroyed here), malloc'd. */
static uint8_t *fuzz_bb_bytes(grpc_byte_buffer *bb, size_t *n) {
    fl_rpc_flat f;
    fl_err err;
    FUZZ_CHECK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err) == FL_OK);
    grpc_byte_buffer_destroy(bb);
    *n = f.len;
    uint8_t *b = malloc(f.len ? f.len : 1);
    FUZZ_CHECK(b != NULL);
    memcpy(b, f.data, f.len);
    fl_rpc_flat_release(&f);
    return b;
}

static int fuzz_same(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

/* Same packed bytes, or both absent. */
static int fuzz_same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b) {
    if (!a || !b) return !a && !b;
    size_t na, nb;
    uint8_t *pa = fuzz_pack(a, &na), *pb = fuzz_pack(b, &nb);
    int same = fuzz_same(pa, na, pb, nb);
    free(pa);
    free(pb);
    return same;
}

static void fuzz_count_release(void *user) {
    ++*(int *)user;
}

/* Any message: decodes to a valid message or fails cleanly; a decoded one re-encodes stably. */
static void fuzz_generic(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t n) {
    ProtobufCMessage *m, *m2;
    fl_err err;
    fl_status st = fl_rpc_unpack_mem(d, data, n, FL_RPC_MAX_MESSAGE, &m, &err);
    FUZZ_CHECK(st == FL_OK || st == FL_EFORMAT || (st == FL_ENOMEM && n > FL_RPC_MAX_MESSAGE));
    if (st != FL_OK) return;
    fuzz_accepted++;
    size_t n1, n2;
    uint8_t *b1 = fuzz_pack(m, &n1);
    FUZZ_CHECK(fl_rpc_unpack_mem(d, b1, n1, FL_RPC_MAX_MESSAGE, &m2, &err) == FL_OK);
    uint8_t *b2 = m2 ? fuzz_pack(m2, &n2) : NULL;
    FUZZ_CHECK(b2 && fuzz_same(b1, n1, b2, n2));
    free(b1);
    free(b2);
    protobuf_c_message_free_unpacked(m, NULL);
    if (m2) protobuf_c_message_free_unpacked(m2, NULL);
}

static void fuzz_model_chunk(const uint8_t *data, size_t n) {
    fl_rpc_chunk c;
    ProtobufCMessage *m;
    fl_err err;
    fl_status hand = fl_rpc_model_chunk_parse(data, n, &c, &err);
    fl_status pc = fl_rpc_unpack_mem(&fedlung__v1__model_chunk__descriptor, data, n,
                                     FL_RPC_MAX_MESSAGE, &m, &err);
    FUZZ_CHECK(hand == FL_OK || hand == FL_EFORMAT);
    FUZZ_CHECK(hand != FL_OK || pc == FL_OK); /* the hand parser is the stricter one */
    if (pc != FL_OK) return;
    fuzz_accepted++;
    const Fedlung__V1__ModelChunk *mc = (const Fedlung__V1__ModelChunk *)m;
    if (hand == FL_OK) {
        FUZZ_CHECK(c.offset == mc->offset);
        FUZZ_CHECK(fuzz_same(c.data, c.len, mc->data.data, mc->data.len));
        FUZZ_CHECK(fuzz_same_msg((ProtobufCMessage *)c.model_header, (ProtobufCMessage *)mc->header));
        FUZZ_CHECK(c.len == 0 || (c.data >= data && c.data + c.len <= data + n)); /* a view */
        fl_rpc_chunk_clear(&c);
    }
    /* The zero-copy encoder writes protobuf-c's bytes (unknown fields aside). */
    if (m->n_unknown_fields == 0 && (!mc->header || mc->header->base.n_unknown_fields == 0)) {
        grpc_byte_buffer *bb;
        int released = 0;
        FUZZ_CHECK(fl_rpc_model_chunk_bb(mc->header, mc->offset, mc->data.data, mc->data.len,
                                         fuzz_count_release, &released, &bb, &err) == FL_OK);
        size_t nz, np;
        uint8_t *z = fuzz_bb_bytes(bb, &nz), *p = fuzz_pack(m, &np);
        FUZZ_CHECK(fuzz_same(z, nz, p, np));
        FUZZ_CHECK(released == 1);
        FUZZ_CHECK(fl_rpc_model_chunk_parse(p, np, &c, &err) == FL_OK); /* canonical: accepted */
        fl_rpc_chunk_clear(&c);
        free(z);
        free(p);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void fuzz_update_chunk(const uint8_t *data, size_t n) {
    fl_rpc_chunk c;
    ProtobufCMessage *m;
    fl_err err;
    fl_status hand = fl_rpc_update_chunk_parse(data, n, &c, &err);
    fl_status pc = fl_rpc_unpack_mem(&fedlung__v1__update_chunk__descriptor, data, n,
                                     FL_RPC_MAX_MESSAGE, &m, &err);
    FUZZ_CHECK(hand == FL_OK || hand == FL_EFORMAT);
    FUZZ_CHECK(hand != FL_OK || pc == FL_OK);
    if (pc != FL_OK) return;
    fuzz_accepted++;
    const Fedlung__V1__UpdateChunk *uc = (const Fedlung__V1__UpdateChunk *)m;
    int is_data = uc->part_case == FEDLUNG__V1__UPDATE_CHUNK__PART_DATA;
    if (hand == FL_OK) {
        FUZZ_CHECK((c.update_header != NULL) == !is_data);
        if (is_data) {
            FUZZ_CHECK(c.offset == uc->data->offset);
            FUZZ_CHECK(fuzz_same(c.data, c.len, uc->data->data.data, uc->data->data.len));
        } else {
            FUZZ_CHECK(fuzz_same_msg((ProtobufCMessage *)c.update_header, (ProtobufCMessage *)uc->header));
        }
        fl_rpc_chunk_clear(&c);
    }
    if (is_data && m->n_unknown_fields == 0 && uc->data->base.n_unknown_fields == 0) {
        grpc_byte_buffer *bb;
        int released = 0;
        FUZZ_CHECK(fl_rpc_update_data_bb(uc->data->offset, uc->data->data.data, uc->data->data.len,
                                         fuzz_count_release, &released, &bb, &err) == FL_OK);
        size_t nz, np;
        uint8_t *z = fuzz_bb_bytes(bb, &nz), *p = fuzz_pack(m, &np);
        FUZZ_CHECK(fuzz_same(z, nz, p, np));
        FUZZ_CHECK(released == 1);
        FUZZ_CHECK(fl_rpc_update_chunk_parse(p, np, &c, &err) == FL_OK);
        fl_rpc_chunk_clear(&c);
        free(z);
        free(p);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Small buffers, so both the pool and the heap paths run; freed by fl_fuzz_cleanup. */
static fl_rpc_pool *fuzz_pool;

/* data[0] and data[1] choose two cut points and the limit; the rest is split into slices. */
static void fuzz_flatten(const uint8_t *data, size_t n) {
    if (!fuzz_pool) fuzz_pool = fl_rpc_pool_new(256, 2);
    fl_rpc_pool *pool = fuzz_pool;
    if (n < 2) return;
    size_t len = n - 2, a = len ? data[0] % (len + 1) : 0, b = len ? data[1] % (len + 1) : 0;
    if (a > b) {
        size_t t = a;
        a = b;
        b = t;
    }
    const uint8_t *p = data + 2;
    grpc_slice s[3] = {grpc_slice_from_copied_buffer((const char *)p, a),
                       grpc_slice_from_copied_buffer((const char *)p + a, b - a),
                       grpc_slice_from_copied_buffer((const char *)p + b, len - b)};
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, 3);
    for (int i = 0; i < 3; i++) grpc_slice_unref(s[i]);
    size_t limit = (data[0] & 1) && len ? len - 1 : len;
    fl_rpc_flat f;
    fl_err err;
    fl_status st = fl_rpc_flatten(bb, limit, pool, &f, &err);
    if (limit < len) {
        FUZZ_CHECK(st == FL_ENOMEM);
    } else {
        FUZZ_CHECK(st == FL_OK);
        FUZZ_CHECK(fuzz_same(f.data, f.len, p, len));
    }
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);
    FUZZ_CHECK(!pool || fl_rpc_pool_get_stats(pool).out == 0);
}

/* One input. */
static void fl_fuzz_decode(const uint8_t *data, size_t n) {
    if (n == 0) return;
    int sel = data[0] % FUZZ_N_SEL;
    data++, n--;
    if (sel < FUZZ_N_TYPES)
        fuzz_generic(fuzz_types[sel], data, n);
    else if (sel == FUZZ_SEL_MODEL_CHUNK)
        fuzz_model_chunk(data, n);
    else if (sel == FUZZ_SEL_UPDATE_CHUNK)
        fuzz_update_chunk(data, n);
    else
        fuzz_flatten(data, n);
}

static void fl_fuzz_cleanup(void) {
    fl_rpc_pool_free(fuzz_pool);
    fuzz_pool = NULL;
}

#ifdef FL_LIBFUZZER
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    grpc_init(); /* slices and byte buffers need it; never shut down */
    atexit(fl_fuzz_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    fl_fuzz_decode(data, n);
    return 0;
}
#endif
