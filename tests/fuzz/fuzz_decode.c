/* fuzz_decode.c - proto/'s decoders fed arbitrary bytes. Byte 0 picks a decoder, the rest is the
 * message. Beyond "no crash, no leak", it checks: a message that decodes re-encodes to bytes
 * that decode to the same bytes again; the hand-written chunk parsers never accept what
 * protobuf-c rejects and agree with it when both accept; the zero-copy chunk encoders produce
 * protobuf-c's exact bytes; a message split over several slices flattens to the same bytes, and
 * one over the limit is refused.
 * Built two ways: as a libFuzzer target (cmake -DFL_FUZZ=ON with clang; docs/protocol.md says
 * how to run it for longer), and #included by tests/test_proto_chunks.c, whose deterministic
 * mutation loop runs it for a second in every ctest, under ASan in the sanitizer build. */
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto_test.h"
#include "proto/rpc.h"

#ifndef FUZZ_CHECK /* test_proto.c counts failures instead */
#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_decode: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                              \
        }                                                                                         \
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

/* Same packed bytes, or both absent. */
static int fuzz_same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b) {
    if (!a || !b) return !a && !b;
    size_t na, nb;
    uint8_t *pa = proto_pack(a, &na), *pb = proto_pack(b, &nb);
    int same = proto_same(pa, na, pb, nb);
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
    uint8_t *b1 = proto_pack(m, &n1);
    FUZZ_CHECK(fl_rpc_unpack_mem(d, b1, n1, FL_RPC_MAX_MESSAGE, &m2, &err) == FL_OK);
    uint8_t *b2 = m2 ? proto_pack(m2, &n2) : NULL;
    FUZZ_CHECK(b2 && proto_same(b1, n1, b2, n2));
    free(b1);
    free(b2);
    protobuf_c_message_free_unpacked(m, NULL);
    if (m2) protobuf_c_message_free_unpacked(m2, NULL);
}

typedef fl_status (*fuzz_parser)(const uint8_t *msg, size_t n, fl_rpc_chunk *c, fl_err *err);

/* Both decoders of a chunk message on the same bytes: the hand parser never accepts what
 * protobuf-c refuses. Returns protobuf-c's message, or NULL where it refused; *c holds the
 * hand parser's chunk where *hand is FL_OK (and must then be cleared). */
static ProtobufCMessage *fuzz_both(fuzz_parser parse, const ProtobufCMessageDescriptor *d,
                                   const uint8_t *data, size_t n, fl_rpc_chunk *c,
                                   fl_status *hand) {
    ProtobufCMessage *m;
    fl_err err;
    *hand = parse(data, n, c, &err);
    fl_status pc = fl_rpc_unpack_mem(d, data, n, FL_RPC_MAX_MESSAGE, &m, &err);
    FUZZ_CHECK(*hand == FL_OK || *hand == FL_EFORMAT);
    FUZZ_CHECK(*hand != FL_OK || pc == FL_OK);
    if (pc == FL_OK) fuzz_accepted++;
    if (*hand == FL_OK) /* the payload is a view into the input */
        FUZZ_CHECK(c->len == 0 || (c->data >= data && c->data + c->len <= data + n));
    if (pc == FL_OK) return m;
    fl_rpc_chunk_clear(c); /* only after a failed check */
    return NULL;
}

/* A zero-copy encoder's output bb, made from m's values, holds protobuf-c's bytes of m, which
 * the hand parser accepts; the encoder has released the payload once bb is gone. */
static void fuzz_encoded(grpc_byte_buffer *bb, const int *released, const ProtobufCMessage *m,
                         fuzz_parser parse) {
    size_t nz, np;
    fl_rpc_chunk c;
    fl_err err;
    uint8_t *z = fuzz_bb_bytes(bb, &nz), *p = proto_pack(m, &np);
    FUZZ_CHECK(proto_same(z, nz, p, np));
    FUZZ_CHECK(*released == 1);
    FUZZ_CHECK(parse(p, np, &c, &err) == FL_OK);
    fl_rpc_chunk_clear(&c);
    free(z);
    free(p);
}

static void fuzz_model_chunk(const uint8_t *data, size_t n) {
    fl_rpc_chunk c;
    fl_status hand;
    fl_err err;
    ProtobufCMessage *m = fuzz_both(fl_rpc_model_chunk_parse, &fedlung__v1__model_chunk__descriptor,
                                    data, n, &c, &hand);
    if (!m) return;
    const Fedlung__V1__ModelChunk *mc = (const Fedlung__V1__ModelChunk *)m;
    if (hand == FL_OK) {
        FUZZ_CHECK(c.offset == mc->offset);
        FUZZ_CHECK(proto_same(c.data, c.len, mc->data.data, mc->data.len));
        FUZZ_CHECK(
            fuzz_same_msg((ProtobufCMessage *)c.model_header, (ProtobufCMessage *)mc->header));
        fl_rpc_chunk_clear(&c);
    }
    /* Unknown fields aside, the encoder writes protobuf-c's bytes. */
    if (m->n_unknown_fields == 0 && (!mc->header || mc->header->base.n_unknown_fields == 0)) {
        grpc_byte_buffer *bb;
        int released = 0;
        FUZZ_CHECK(fl_rpc_model_chunk_bb(mc->header, mc->offset, mc->data.data, mc->data.len,
                                         fuzz_count_release, &released, &bb, &err) == FL_OK);
        fuzz_encoded(bb, &released, m, fl_rpc_model_chunk_parse);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void fuzz_update_chunk(const uint8_t *data, size_t n) {
    fl_rpc_chunk c;
    fl_status hand;
    fl_err err;
    ProtobufCMessage *m = fuzz_both(fl_rpc_update_chunk_parse,
                                    &fedlung__v1__update_chunk__descriptor, data, n, &c, &hand);
    if (!m) return;
    const Fedlung__V1__UpdateChunk *uc = (const Fedlung__V1__UpdateChunk *)m;
    const Fedlung__V1__DataChunk *dc =
        uc->part_case == FEDLUNG__V1__UPDATE_CHUNK__PART_DATA ? uc->data : NULL;
    if (hand == FL_OK) {
        FUZZ_CHECK((c.update_header != NULL) == (dc == NULL));
        if (dc) {
            FUZZ_CHECK(c.offset == dc->offset);
            FUZZ_CHECK(proto_same(c.data, c.len, dc->data.data, dc->data.len));
        } else {
            FUZZ_CHECK(
                fuzz_same_msg((ProtobufCMessage *)c.update_header, (ProtobufCMessage *)uc->header));
        }
        fl_rpc_chunk_clear(&c);
    }
    if (dc && m->n_unknown_fields == 0 && dc->base.n_unknown_fields == 0) {
        grpc_byte_buffer *bb;
        int released = 0;
        FUZZ_CHECK(fl_rpc_update_data_bb(dc->offset, dc->data.data, dc->data.len,
                                         fuzz_count_release, &released, &bb, &err) == FL_OK);
        fuzz_encoded(bb, &released, m, fl_rpc_update_chunk_parse);
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
        FUZZ_CHECK(proto_same(f.data, f.len, p, len));
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
