/* rpc_chunk.c - ModelChunk and UpdateChunk written and read by hand so the tensor bytes are
 * never copied: the encoders write only field headers around a slice that references the
 * caller's memory; the parsers return a view of the payload inside the received bytes. Not a
 * general protobuf codec: only these two messages, whose layout fedlung.proto pins down
 * (ModelChunk {1 offset, 2 data, 3 header}, UpdateChunk {1 header | 2 DataChunk {1 offset,
 * 2 data}}). Everything else goes through protobuf-c. */
#include "rpc_impl.h"

#include <string.h>

/* Wire types and the tags used here: (field << 3) | wire type. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
#define TAG(field, wt) ((uint8_t)(((field) << 3) | (wt)))

/* ---- writing ---- */

static size_t varint_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Checks the arguments of an encoder; on failure runs release(user), as promised. */
static fl_status check_args(const char *what, uint64_t offset, const void *data, size_t len,
                            void (*release)(void *), void *user, grpc_byte_buffer **out,
                            fl_err *err) {
    *out = NULL;
    fl_status st = FL_OK;
    if (len && !data)
        st = fl_fail(err, FL_EINVAL, "%s: no data for %zu bytes", what, len);
    else if (fl_rpc__check_chunk(what, offset, len, err) != FL_OK)
        st = FL_EINVAL;
    if (st != FL_OK && release) release(user);
    return st;
}

/* The data slice: referenced (release non-NULL) or copied. len > 0. */
static grpc_slice data_slice(const void *data, size_t len, void (*release)(void *), void *user) {
    if (release) return grpc_slice_new_with_user_data((void *)data, len, release, user);
    return grpc_slice_from_copied_buffer(data, len);
}

/* A byte buffer of n slices, dropping our references. */
static grpc_byte_buffer *buffer_of(grpc_slice *s, size_t n) {
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, n);
    for (size_t i = 0; i < n; i++) grpc_slice_unref(s[i]);
    return bb;
}

fl_status fl_rpc_model_chunk_bb(const Fedlung__V1__ModelHeader *header, uint64_t offset,
                                const void *data, size_t len, void (*release)(void *), void *user,
                                grpc_byte_buffer **out, fl_err *err) {
    fl_status st = check_args("ModelChunk", offset, data, len, release, user, out, err);
    if (st != FL_OK) return st;
    /* protobuf-c's order: offset (omitted when 0), data (omitted when empty), header. */
    grpc_slice s[3];
    size_t n = 0;
    uint8_t pre[24], *p = pre;
    if (offset) {
        *p++ = TAG(1, WT_VARINT);
        p += varint_put(p, offset);
    }
    if (len) {
        *p++ = TAG(2, WT_LEN);
        p += varint_put(p, len);
    }
    if (p > pre) s[n++] = grpc_slice_from_copied_buffer((const char *)pre, (size_t)(p - pre));
    if (len)
        s[n++] = data_slice(data, len, release, user);
    else if (release)
        release(user);
    if (header) {
        size_t hn = protobuf_c_message_get_packed_size(&header->base);
        grpc_slice h = grpc_slice_malloc(1 + varint_size(hn) + hn);
        uint8_t *q = GRPC_SLICE_START_PTR(h);
        *q++ = TAG(3, WT_LEN);
        q += varint_put(q, hn);
        protobuf_c_message_pack(&header->base, q);
        s[n++] = h;
    }
    *out = buffer_of(s, n);
    return FL_OK;
}

fl_status fl_rpc_update_data_bb(uint64_t offset, const void *data, size_t len,
                                void (*release)(void *), void *user, grpc_byte_buffer **out,
                                fl_err *err) {
    fl_status st = check_args("DataChunk", offset, data, len, release, user, out, err);
    if (st != FL_OK) return st;
    /* UpdateChunk field 2 (the oneof's data) holds DataChunk {1 offset, 2 data}. */
    size_t inner = (offset ? 1 + varint_size(offset) : 0) + (len ? 1 + varint_size(len) + len : 0);
    uint8_t pre[40], *p = pre;
    *p++ = TAG(2, WT_LEN);
    p += varint_put(p, inner);
    if (offset) {
        *p++ = TAG(1, WT_VARINT);
        p += varint_put(p, offset);
    }
    if (len) {
        *p++ = TAG(2, WT_LEN);
        p += varint_put(p, len);
    }
    grpc_slice s[2];
    size_t n = 0;
    s[n++] = grpc_slice_from_copied_buffer((const char *)pre, (size_t)(p - pre));
    if (len)
        s[n++] = data_slice(data, len, release, user);
    else if (release)
        release(user);
    *out = buffer_of(s, n);
    return FL_OK;
}

/* ---- reading ---- */

typedef struct {
    const uint8_t *p, *end;
} reader;

/* A varint of at most max_bytes (10 for a 64-bit value, 5 for a tag, as protobuf-c reads them)
 * that fits 64 bits. Returns 0 on truncation, overflow or a longer encoding. */
static int read_varint_n(reader *r, uint64_t *v, int max_bytes) {
    uint64_t x = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (r->p >= r->end) return 0;
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) return 0;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int read_varint(reader *r, uint64_t *v) {
    return read_varint_n(r, v, 10);
}

/* One field: its number and wire type, and for WT_VARINT the value, for WT_LEN the bytes.
 * Fixed-size fields are skipped over. Returns 0 on malformed input (a truncated field, field
 * number 0, a group). */
typedef struct {
    uint32_t field;
    int wt;
    uint64_t v;
    const uint8_t *bytes;
    size_t len;
} wire_field;

static int read_field(reader *r, wire_field *f) {
    uint64_t tag;
    if (!read_varint_n(r, &tag, 5) || tag >> 32 || (tag >> 3) == 0) return 0;
    f->field = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    size_t left = (size_t)(r->end - r->p);
    switch (f->wt) {
    case WT_VARINT:
        return read_varint(r, &f->v);
    case WT_I64:
    case WT_I32: {
        size_t k = f->wt == WT_I64 ? 8 : 4;
        if (left < k) return 0;
        r->p += k;
        return 1;
    }
    case WT_LEN:
        if (!read_varint(r, &f->v) || f->v > (uint64_t)(r->end - r->p)) return 0;
        f->bytes = r->p;
        f->len = (size_t)f->v;
        r->p += f->len;
        return 1;
    default: /* groups (3, 4) and the unused 6, 7 */
        return 0;
    }
}

/* Reads {1 offset, 2 data} and, if header_field is non-zero, a length-delimited field of that
 * number into *hdr (ptr and length). Unknown fields are skipped; a known field repeated or of
 * the wrong wire type is refused. */
static fl_status read_offset_data(const char *what, const uint8_t *msg, size_t n, int header_field,
                                  fl_rpc_chunk *c, const uint8_t **hdr, size_t *hdr_len,
                                  fl_err *err) {
    reader r = {msg, msg + n};
    unsigned seen = 0;
    while (r.p < r.end) {
        wire_field f;
        if (!read_field(&r, &f))
            return fl_fail(err, FL_EFORMAT, "malformed %s at byte %zu of %zu", what,
                           (size_t)(r.p - msg), n);
        int known =
            f.field == 1 || f.field == 2 || (header_field && f.field == (uint32_t)header_field);
        if (!known) continue;
        int want = f.field == 1 ? WT_VARINT : WT_LEN;
        if (f.wt != want)
            return fl_fail(err, FL_EFORMAT, "%s field %u has wire type %d, not %d", what, f.field,
                           f.wt, want);
        if (seen & (1u << f.field))
            return fl_fail(err, FL_EFORMAT, "%s field %u appears twice", what, f.field);
        seen |= 1u << f.field;
        if (f.field == 1) {
            c->offset = f.v;
        } else if (f.field == 2) {
            c->data = f.bytes;
            c->len = f.len;
        } else {
            *hdr = f.bytes;
            *hdr_len = f.len;
        }
    }
    return fl_rpc__check_chunk(what, c->offset, c->len, err);
}

fl_status fl_rpc_model_chunk_parse(const uint8_t *msg, size_t n, fl_rpc_chunk *c, fl_err *err) {
    memset(c, 0, sizeof *c);
    const uint8_t *hdr = NULL;
    size_t hn = 0;
    fl_status st = read_offset_data("ModelChunk", msg, n, 3, c, &hdr, &hn, err);
    if (st == FL_OK && hdr) {
        ProtobufCMessage *m;
        st = fl_rpc_unpack_mem(&fedlung__v1__model_header__descriptor, hdr, hn, n, &m, err);
        c->model_header = (Fedlung__V1__ModelHeader *)m;
    }
    if (st != FL_OK) fl_rpc_chunk_clear(c);
    return st;
}

fl_status fl_rpc_update_chunk_parse(const uint8_t *msg, size_t n, fl_rpc_chunk *c, fl_err *err) {
    memset(c, 0, sizeof *c);
    reader r = {msg, msg + n};
    const uint8_t *part = NULL;
    size_t part_len = 0;
    uint32_t part_field = 0;
    while (r.p < r.end) {
        wire_field f;
        if (!read_field(&r, &f))
            return fl_fail(err, FL_EFORMAT, "malformed UpdateChunk at byte %zu of %zu",
                           (size_t)(r.p - msg), n);
        if (f.field != 1 && f.field != 2) continue;
        if (f.wt != WT_LEN)
            return fl_fail(err, FL_EFORMAT, "UpdateChunk field %u has wire type %d, not 2", f.field,
                           f.wt);
        if (part) return fl_fail(err, FL_EFORMAT, "UpdateChunk carries more than one part");
        part = f.bytes;
        part_len = f.len;
        part_field = f.field;
    }
    if (!part) return fl_fail(err, FL_EFORMAT, "UpdateChunk carries neither header nor data");
    fl_status st;
    if (part_field == 1) {
        ProtobufCMessage *m;
        st = fl_rpc_unpack_mem(&fedlung__v1__update_header__descriptor, part, part_len, n, &m, err);
        c->update_header = (Fedlung__V1__UpdateHeader *)m;
    } else {
        st = read_offset_data("DataChunk", part, part_len, 0, c, NULL, NULL, err);
    }
    if (st != FL_OK) fl_rpc_chunk_clear(c);
    return st;
}

void fl_rpc_chunk_clear(fl_rpc_chunk *c) {
    if (c->model_header) protobuf_c_message_free_unpacked(&c->model_header->base, NULL);
    if (c->update_header) protobuf_c_message_free_unpacked(&c->update_header->base, NULL);
    memset(c, 0, sizeof *c);
}
