/* test_proto_chunks.c - proto/'s hand-written wire code: the zero-copy chunk encoders against
 * protobuf-c's bytes and their release callbacks, the chunk parsers (payload views, refusals),
 * the buffer pool (reuse, threads, freeing with buffers out), and a deterministic mutation fuzz
 * loop over all decoders (tests/fuzz/fuzz_decode.c) of a fraction of a second, under ASan in
 * the sanitizer build. Other modes: --write-samples DIR and --read-samples DIR for
 * tests/check_proto_python.sh, --write-corpus DIR for the libFuzzer target. */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "proto/rpc.h"
#include "proto_test.h"

#define FUZZ_CHECK(cond) CHECK(cond)
#include "fuzz/fuzz_decode.c"

static proto_samples S;

static void count_release(void *user) {
    ++*(int *)user;
}

static void test_chunks(void) {
    fl_err err = {{0}};
    fl_rpc_pool *pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 2);
    /* A model chunk straight from a pool buffer: the same bytes as protobuf-c's, the payload a
     * view after parsing, and the buffer back in the pool once gRPC drops the slice. */
    fl_rpc_buf *buf = fl_rpc_buf_get(pool);
    memcpy(buf->data, S.payload, PAYLOAD);
    grpc_byte_buffer *bb;
    CHECK_OK(fl_rpc_model_chunk_bb(&S.model_hdr, 8192, buf->data, PAYLOAD, fl_rpc_buf_release, buf,
                                   &bb, &err),
             &err);
    CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, 1);
    fl_rpc_flat f;
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    grpc_byte_buffer_destroy(bb);
    CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, 0);
    size_t n;
    uint8_t *want = proto_pack(&S.model_chunk.base, &n);
    CHECK(proto_same(f.data, f.len, want, n));
    free(want);
    fl_rpc_chunk c;
    CHECK_OK(fl_rpc_model_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK_EQ_INT(c.offset, 8192);
    CHECK_EQ_INT(c.len, PAYLOAD);
    CHECK(c.data > f.data && c.data + c.len <= f.data + f.len); /* not copied */
    CHECK(c.len == PAYLOAD && memcmp(c.data, S.payload, PAYLOAD) == 0);
    CHECK(c.model_header && c.model_header->total_length == S.model_hdr.total_length);
    CHECK(c.update_header == NULL);
    fl_rpc_chunk_clear(&c);
    fl_rpc_flat_release(&f);

    /* A later model chunk: no header, copied data (release NULL). */
    CHECK_OK(fl_rpc_model_chunk_bb(NULL, 0, S.payload, 10, NULL, NULL, &bb, &err), &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_model_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 0 && c.len == 10 && !c.model_header);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);

    /* Update data chunks: protobuf-c's bytes; release runs once, also for empty data and on
     * refusal. */
    int released = 0;
    CHECK_OK(
        fl_rpc_update_data_bb(1 << 20, S.payload, PAYLOAD, count_release, &released, &bb, &err),
        &err);
    CHECK_EQ_INT(released, 0);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
    grpc_byte_buffer_destroy(bb);
    CHECK_EQ_INT(released, 1);
    want = proto_pack(&S.update_chunk_data.base, &n);
    CHECK(proto_same(f.data, f.len, want, n));
    free(want);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 1 << 20 && c.len == PAYLOAD && !c.update_header);
    CHECK(c.data > f.data && memcmp(c.data, S.payload, PAYLOAD) == 0);
    fl_rpc_flat_release(&f);
    released = 0;
    CHECK_OK(fl_rpc_update_data_bb(77, NULL, 0, count_release, &released, &bb, &err), &err);
    CHECK_EQ_INT(released, 1);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 77 && c.len == 0 && !c.update_header);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);
    released = 0;
    CHECK(fl_rpc_update_data_bb(0, S.payload, FL_RPC_CHUNK_MAX + 1, count_release, &released, &bb,
                                &err) == FL_EINVAL);
    CHECK_MSG(err, "exceeds the chunk limit");
    CHECK(released == 1 && bb == NULL);
    released = 0;
    CHECK(fl_rpc_model_chunk_bb(NULL, 0, NULL, 5, count_release, &released, &bb, &err) ==
          FL_EINVAL);
    CHECK_EQ_INT(released, 1);

    /* The header message of an update. */
    CHECK_OK(fl_rpc_pack(&S.update_chunk_hdr.base, &bb, &err), &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.update_header != NULL && c.len == 0);
    if (c.update_header) {
        CHECK(strcmp(c.update_header->study_id, "lung-2025") == 0);
        CHECK_EQ_INT(c.update_header->length, S.update_hdr.length);
        CHECK_EQ_INT(c.update_header->encoding, FEDLUNG__V1__ENCODING__ENCODING_FIXED32);
        CHECK(c.update_header->sha256.len == 32 &&
              memcmp(c.update_header->sha256.data, S.hash, 32) == 0);
    }
    fl_rpc_chunk_clear(&c);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);

    /* A full 4 MiB chunk from a pool buffer, over several slices on receipt. */
    buf = fl_rpc_buf_get(pool);
    for (size_t i = 0; i < FL_RPC_CHUNK_MAX; i++) buf->data[i] = (uint8_t)(i * 31);
    CHECK_OK(fl_rpc_update_data_bb((uint64_t)3 << 22, buf->data, FL_RPC_CHUNK_MAX,
                                   fl_rpc_buf_release, buf, &bb, &err),
             &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
    CHECK(f.buf != NULL); /* copied into the other pool buffer */
    grpc_byte_buffer_destroy(bb);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == (uint64_t)3 << 22 && c.len == FL_RPC_CHUNK_MAX);
    CHECK(c.len == FL_RPC_CHUNK_MAX && c.data[12345] == (uint8_t)(12345 * 31));
    fl_rpc_flat_release(&f);
    fl_rpc_pool_stats ps = fl_rpc_pool_get_stats(pool);
    CHECK_EQ_INT(ps.out, 0);
    CHECK_EQ_INT(ps.allocs, 2);
    fl_rpc_pool_free(pool);
}

/* What the hand-written chunk parsers must refuse, some of which protobuf-c takes. */
static void test_chunk_malformed(void) {
    fl_err err = {{0}};
    fl_rpc_chunk c;
    static const uint8_t huge_data[] = {0x08, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2};
    CHECK(fl_rpc_model_chunk_parse(huge_data, sizeof huge_data, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "malformed ModelChunk at byte");
    static const uint8_t huge_part[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0x01, 0};
    CHECK(fl_rpc_update_chunk_parse(huge_part, sizeof huge_part, &c, &err) == FL_EFORMAT);
    static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x02};
    CHECK(fl_rpc_model_chunk_parse(long_varint, sizeof long_varint, &c, &err) == FL_EFORMAT);
    /* What protobuf-c might take. */
    static const uint8_t group[] = {0x0b, 0x0c};
    CHECK(fl_rpc_model_chunk_parse(group, sizeof group, &c, &err) == FL_EFORMAT);
    static const uint8_t field0[] = {0x00, 0x00};
    CHECK(fl_rpc_model_chunk_parse(field0, sizeof field0, &c, &err) == FL_EFORMAT);
    static const uint8_t twice[] = {0x08, 0x01, 0x08, 0x02};
    CHECK(fl_rpc_model_chunk_parse(twice, sizeof twice, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk field 1 appears twice");
    static const uint8_t wrong_wt[] = {0x0a, 0x00};
    CHECK(fl_rpc_model_chunk_parse(wrong_wt, sizeof wrong_wt, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk field 1 has wire type 2, not 0");
    CHECK(fl_rpc_update_chunk_parse((const uint8_t *)"", 0, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateChunk carries neither header nor data");
    static const uint8_t both[] = {0x0a, 0x00, 0x12, 0x00};
    CHECK(fl_rpc_update_chunk_parse(both, sizeof both, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateChunk carries more than one part");
    static const uint8_t bad_header[] = {0x0a, 0x02, 0x10, 0x01}; /* a header without study */
    CHECK(fl_rpc_update_chunk_parse(bad_header, sizeof bad_header, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateHeader.study_id is empty");
    static const uint8_t tag0[] = {0x80, 0x00, 0x03}; /* tag 0 as an over-long varint */
    CHECK(fl_rpc_model_chunk_parse(tag0, sizeof tag0, &c, &err) == FL_EFORMAT);
    static const uint8_t long_tag[] = {0x88, 0xe4, 0xa4, 0xe1, 0x8a, 0x00, 0xbc, 0xb1, 0xcb, 0x5c};
    CHECK(fl_rpc_model_chunk_parse(long_tag, sizeof long_tag, &c, &err) ==
          FL_EFORMAT); /* 6 bytes */
    static const uint8_t unknown[] = {0x08, 0x05, 0x7a, 0x01, 'x', 0x12, 0x01,
                                      'y',  0x25, 1,    2,    3,   4};
    CHECK_OK(fl_rpc_model_chunk_parse(unknown, sizeof unknown, &c, &err), &err); /* field 15, 4 */
    CHECK_EQ_INT(c.offset, 5);
    CHECK(c.len == 1 && c.data == unknown + 7);
    fl_rpc_chunk_clear(&c);
    /* A chunk one byte over the limit, well-formed otherwise. */
    size_t big = FL_RPC_CHUNK_MAX + 1, h = 1;
    uint8_t *m = calloc(1, big + 16);
    m[0] = 0x12;
    for (size_t v = big; v; v >>= 7) m[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    CHECK(fl_rpc_model_chunk_parse(m, h + big, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk of 4194305 bytes exceeds the chunk limit of 4194304");
    free(m);
}

typedef struct {
    fl_rpc_pool *pool;
    int bad;
} pool_worker;

static void *pool_churn(void *arg) {
    pool_worker *w = arg;
    for (int i = 0; i < 2000; i++) {
        fl_rpc_buf *a = fl_rpc_buf_get(w->pool), *b = fl_rpc_buf_get(w->pool);
        if (!a || !b || a == b || a->cap != 4096) w->bad++;
        if (a) a->data[0] = 1, a->data[4095] = 2;
        fl_rpc_buf_put(b);
        fl_rpc_buf_release(a);
    }
    return NULL;
}

static void test_pool(void) {
    fl_rpc_pool *p = fl_rpc_pool_new(4096, 2);
    CHECK(p != NULL);
    fl_rpc_buf *a = fl_rpc_buf_get(p), *b = fl_rpc_buf_get(p), *c = fl_rpc_buf_get(p);
    CHECK(a && b && c);
    CHECK(((uintptr_t)a->data & 63) == 0);
    fl_rpc_pool_stats s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 3 && s.free == 0 && s.allocs == 3 && s.cap == 4096);
    fl_rpc_buf_put(a);
    fl_rpc_buf_put(b);
    fl_rpc_buf_put(c); /* the free list keeps two; the third is freed */
    s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 0 && s.free == 2);
    for (int i = 0; i < 100; i++) {
        fl_rpc_buf *x = fl_rpc_buf_get(p), *y = fl_rpc_buf_get(p);
        fl_rpc_buf_put(x);
        fl_rpc_buf_put(y);
    }
    CHECK_EQ_INT(fl_rpc_pool_get_stats(p).allocs, 3); /* no allocation per chunk */
    fl_rpc_buf_put(NULL);
    /* Threads, as when gRPC releases sent slices on its own threads. */
    pthread_t th[4];
    pool_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (pool_worker){p, 0};
        pthread_create(&th[i], NULL, pool_churn, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].bad, 0);
    }
    s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 0 && s.free <= 2);
    /* Freed while a buffer is out: the pool goes when the buffer comes back (ASan: no leak). */
    fl_rpc_buf *late = fl_rpc_buf_get(p);
    fl_rpc_pool_free(p);
    late->data[0] = 7;
    fl_rpc_buf_put(late);
    fl_rpc_pool_free(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* the deterministic mutation fuzz loop                                                        */

typedef struct {
    uint8_t *b;
    size_t n;
} seed;

/* The valid encodings the fuzz loop (and the libFuzzer corpus) starts from, each with its
 * selector byte in front. Returns the count; each seed's bytes are malloc'd. */
static int fuzz_seeds(seed *out, int cap) {
    const ProtobufCMessage *msgs[32];
    int n_msgs = proto_sample_list(&S, msgs), k = 0;
    for (int i = 0; i < n_msgs && k < cap; i++) {
        for (int sel = 0; sel < FUZZ_N_SEL && k < cap; sel++) {
            int match = sel < FUZZ_N_TYPES ? fuzz_types[sel] == msgs[i]->descriptor
                        : sel == FUZZ_SEL_MODEL_CHUNK
                            ? msgs[i]->descriptor == &fedlung__v1__model_chunk__descriptor
                        : sel == FUZZ_SEL_UPDATE_CHUNK
                            ? msgs[i]->descriptor == &fedlung__v1__update_chunk__descriptor
                            : msgs[i]->descriptor == &fedlung__v1__join_request__descriptor;
            if (!match) continue;
            size_t n;
            uint8_t *b = proto_pack(msgs[i], &n);
            int extra = sel == FUZZ_SEL_FLATTEN ? 2 : 0; /* the two cut points */
            out[k].b = malloc(n + 1 + extra);
            out[k].b[0] = (uint8_t)sel;
            if (extra) out[k].b[1] = 17, out[k].b[2] = 101;
            memcpy(out[k].b + 1 + extra, b, n);
            out[k].n = n + 1 + extra;
            free(b);
            k++;
        }
    }
    return k;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Applies 1-4 mutations to b (n bytes, capacity cap) and returns the new length. Byte 0 (the
 * selector) is left alone. */
static size_t mutate(uint8_t *b, size_t n, size_t cap, uint64_t *rng) {
    int k = 1 + (int)(xorshift(rng) % 4);
    for (int i = 0; i < k; i++) {
        size_t at = n > 1 ? 1 + xorshift(rng) % (n - 1) : 1;
        switch (xorshift(rng) % 7) {
        case 0: /* flip a bit */
            if (at < n) b[at] ^= (uint8_t)(1u << (xorshift(rng) % 8));
            break;
        case 1: /* a random byte */
            if (at < n) b[at] = (uint8_t)xorshift(rng);
            break;
        case 2: /* insert a byte */
            if (n < cap && at <= n) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = (uint8_t)xorshift(rng);
                n++;
            }
            break;
        case 3: /* delete a byte */
            if (at < n) {
                memmove(b + at, b + at + 1, n - at - 1);
                n--;
            }
            break;
        case 4: /* truncate */
            if (at < n) n = at;
            break;
        case 5: /* a huge varint (a length prefix or a value) */
            if (at + 5 <= n) memcpy(b + at, "\xff\xff\xff\xff\x0f", 5);
            break;
        case 6: /* duplicate a span (a repeated field) */
            if (n > 1 && at < n) {
                size_t len = 1 + xorshift(rng) % (n - at);
                if (n + len <= cap) {
                    memmove(b + at + len, b + at, n - at);
                    n += len;
                }
            }
            break;
        }
    }
    return n;
}

static void test_fuzz_loop(void) {
    seed seeds[64];
    int n_seeds = fuzz_seeds(seeds, 64);
    CHECK(n_seeds >= FUZZ_N_SEL);
    uint64_t rng = 0x5eedf00dcafe1234u;
    int before = fl_test_failures, iters = 100000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int i;
    for (i = 0; i < iters && fl_test_failures == before; i++) {
        const seed *s = &seeds[i < n_seeds ? i : (int)(xorshift(&rng) % (uint64_t)n_seeds)];
        size_t cap = s->n * 2 + 16;
        uint8_t *b = malloc(cap);
        memcpy(b, s->b, s->n);
        size_t n = i < n_seeds ? s->n : mutate(b, s->n, cap, &rng);
        uint8_t *exact = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(exact, b, n);
        fl_fuzz_decode(exact, n);
        free(exact);
        free(b);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("fuzz loop: %d inputs from %d seeds, %ld decoded, in %.2f s\n", i, n_seeds,
           fuzz_accepted,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    CHECK(fuzz_accepted > i / 20); /* the mutants are not all trivially refused */
    for (int i = 0; i < n_seeds; i++) free(seeds[i].b);
    fl_fuzz_cleanup();
}

/* ------------------------------------------------------------------------------------------ */
/* modes for tests/check_proto_python.sh and the libFuzzer corpus                              */

static char *join_path(const char *dir, const char *name) {
    static char path[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_msg(const char *dir, const char *name, const ProtobufCMessage *m) {
    size_t n;
    uint8_t *b = proto_pack(m, &n);
    fl_test_write_file(join_path(dir, name), b, n);
    free(b);
}

static void write_bb(const char *dir, const char *name, grpc_byte_buffer *bb) {
    size_t n;
    uint8_t *b = fuzz_bb_bytes(bb, &n);
    fl_test_write_file(join_path(dir, name), b, n);
    free(b);
}

/* C's encodings for Python to decode; the chunks come from the zero-copy encoders. */
static int write_samples(const char *dir) {
    fl_err err = {{0}};
    grpc_byte_buffer *bb;
    write_msg(dir, "join_request.bin", &S.join_req.base);
    write_msg(dir, "task.bin", &S.task.base);
    write_msg(dir, "eval_report.bin", &S.eval.base);
    write_msg(dir, "status_reply.bin", &S.status_reply.base);
    write_msg(dir, "update_header.bin", &S.update_chunk_hdr.base);
    CHECK_OK(fl_rpc_model_chunk_bb(&S.model_hdr, 8192, S.payload, PAYLOAD, NULL, NULL, &bb, &err),
             &err);
    write_bb(dir, "model_chunk.bin", bb);
    CHECK_OK(fl_rpc_update_data_bb(1 << 20, S.payload, PAYLOAD, NULL, NULL, &bb, &err), &err);
    write_bb(dir, "update_data.bin", bb);
    return fl_test_summary("test_proto_chunks --write-samples");
}

/* Python's encodings (tests/check_proto_python.sh writes them with these values). */
static int read_samples(const char *dir) {
    fl_err err = {{0}};
    fl_rpc_chunk c;
    size_t n;
    uint8_t *b = (uint8_t *)fl_test_read_file(join_path(dir, "py_model_chunk.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_model_chunk_parse(b, n, &c, &err), &err);
        CHECK_EQ_INT(c.offset, 1048576);
        CHECK_EQ_INT(c.len, 1000);
        for (size_t i = 0; i < c.len; i++)
            if (c.data[i] != (uint8_t)(i * 7)) {
                fl_test_fail_at(__FILE__, __LINE__, "py_model_chunk byte %zu", i);
                break;
            }
        CHECK(c.model_header && strcmp(c.model_header->study_id, "py-study") == 0);
        CHECK(c.model_header && c.model_header->n_params == 250 && c.model_header->n_buffers == 6);
        fl_rpc_chunk_clear(&c);
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_update_data.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_update_chunk_parse(b, n, &c, &err), &err);
        CHECK(c.offset == 4096 && c.len == 1000 && c.data && c.data[999] == (uint8_t)(999 * 7));
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_update_header.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_update_chunk_parse(b, n, &c, &err), &err);
        CHECK(c.update_header && c.update_header->length == 1024);
        CHECK(c.update_header &&
              c.update_header->encoding == FEDLUNG__V1__ENCODING__ENCODING_FLOAT32);
        fl_rpc_chunk_clear(&c);
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_join_request.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        ProtobufCMessage *u;
        CHECK_OK(fl_rpc_unpack_mem(&fedlung__v1__join_request__descriptor, b, n, FL_RPC_MAX_MESSAGE,
                                   &u, &err),
                 &err);
        Fedlung__V1__JoinRequest *j = (Fedlung__V1__JoinRequest *)u;
        CHECK(j && strcmp(j->study_id, "py-study") == 0 && j->data && j->data->n_class_names == 3 &&
              j->data->patients_per_class[2] == 31);
        if (u) protobuf_c_message_free_unpacked(u, NULL);
        free(b);
    }
    return fl_test_summary("test_proto_chunks --read-samples");
}

static int write_corpus(const char *dir) {
    seed seeds[64];
    int n = fuzz_seeds(seeds, 64);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "seed-%02d", i);
        fl_test_write_file(join_path(dir, name), seeds[i].b, seeds[i].n);
        free(seeds[i].b);
    }
    printf("%d seeds in %s\n", n, dir);
    return fl_test_summary("test_proto_chunks --write-corpus");
}

int main(int argc, char **argv) {
    proto_samples_init(&S);
    grpc_init();
    int rc = -1;
    if (argc == 3 && strcmp(argv[1], "--write-samples") == 0) rc = write_samples(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--read-samples") == 0) rc = read_samples(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) rc = write_corpus(argv[2]);
    if (argc == 1) {
        test_chunks();
        test_chunk_malformed();
        test_pool();
        test_fuzz_loop();
        rc = fl_test_summary("test_proto_chunks");
    }
    grpc_shutdown();
    if (rc < 0) {
        fprintf(stderr, "usage: test_proto_chunks [--write-samples DIR | --read-samples DIR | "
                        "--write-corpus DIR]\n");
        return 2;
    }
    return rc;
}
