/* test_io.c - the file formats: .npy round trips and damaged files, safetensors (hand-built
 * byte buffers, malformed headers, a mutation sweep, model round trips, torchvision's I64
 * num_batches_tracked), HDF5 checkpoints (round trip, tampering, missing and extra datasets),
 * and every ResNet depth through both formats. Files live in a mkdtemp folder, removed after. */
#include <hdf5.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/checkpoint.h"
#include "nn/model.h"
#include "nn/npy.h"
#include "nn/resnet.h"
#include "pipeline/internal.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

static fl_backend *be;

/* ------------------------------------------------------------------------------------------ */
/* npy                                                                                         */

/* A version-`major` .npy file with the given header dict and data. */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data,
                          size_t n) {
    unsigned char buf[4096];
    size_t hl = strlen(dict), off = major == 1 ? 10 : 12;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < off - 8; i++) buf[8 + i] = (unsigned char)((hl + 1) >> (8 * i));
    memcpy(buf + off, dict, hl);
    buf[off + hl] = '\n';
    memcpy(buf + off + hl + 1, data, n);
    fl_test_write_file(path, buf, off + hl + 1 + n);
}

static void test_npy_roundtrip(void) {
    static const int64_t shapes[][4] = {{0}, {5}, {2, 3}, {2, 3, 4}, {1, 2, 3, 4}, {0, 3}};
    static const int ndims[] = {0, 1, 2, 3, 4, 2};
    fl_err err = {{0}};
    for (size_t k = 0; k < sizeof ndims / sizeof ndims[0]; k++) {
        size_t n = 1;
        for (int d = 0; d < ndims[k]; d++) n *= (size_t)shapes[k][d];
        float x[64];
        int32_t y[64];
        for (size_t i = 0; i < n; i++) {
            x[i] = (float)i * 0.37f - 3.0f;
            y[i] = (int32_t)i * 1000003 - 7;
        }
        const char *pf = fl_test_path("a.npy"), *pi = fl_test_path("b.npy");
        CHECK_OK(fl_npy_write_f32(pf, x, ndims[k], shapes[k], &err), &err);
        CHECK_OK(fl_npy_write_i32(pi, y, ndims[k], shapes[k], &err), &err);
        float *rx = NULL;
        int32_t *ry = NULL;
        int nd = -1;
        int64_t sh[4];
        CHECK_OK(fl_npy_read_f32(pf, &rx, &nd, sh, &err), &err);
        CHECK_EQ_INT(nd, ndims[k]);
        for (int d = 0; d < 4; d++) CHECK_EQ_INT(sh[d], d < ndims[k] ? shapes[k][d] : 1);
        CHECK(rx && (n == 0 || memcmp(rx, x, n * sizeof *x) == 0));
        CHECK_OK(fl_npy_read_i32(pi, &ry, &nd, sh, &err), &err);
        CHECK_EQ_INT(nd, ndims[k]);
        CHECK(ry && (n == 0 || memcmp(ry, y, n * sizeof *y) == 0));
        /* float data read as labels is refused; int labels read as floats convert. */
        int32_t *bad = (int32_t *)1;
        CHECK_FAILS(fl_npy_read_i32(pf, &bad, &nd, sh, &err), err, pf);
        CHECK(bad == NULL);
        free(rx);
        free(ry);
        CHECK_OK(fl_npy_read_f32(pi, &rx, &nd, sh, &err), &err);
        for (size_t i = 0; i < n; i++) CHECK_CLOSE(rx[i], (double)y[i], 1e-7, 0);
        free(rx);
    }
    /* Headers are padded so the data starts at a multiple of 64. */
    FILE *f = fopen(fl_test_path("a.npy"), "rb");
    unsigned char pre[10] = {0};
    CHECK(f && fread(pre, 1, 10, f) == 10);
    if (f) fclose(f);
    CHECK_EQ_INT((10 + (pre[8] | pre[9] << 8)) % 64, 0);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
}

static void test_npy_dtypes(void) {
    fl_err err = {{0}};
    float *x = NULL;
    int32_t *y = NULL;
    int nd;
    int64_t sh[4];
    const char *p = fl_test_path("d.npy");

    double f8[3] = {1.5, -2.25, 1e30};
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8, sizeof f8);
    CHECK_OK(fl_npy_read_f32(p, &x, &nd, sh, &err), &err);
    CHECK(x && x[0] == 1.5f && x[1] == -2.25f && x[2] == 1e30f);
    free(x);

    /* Version 2.0, int64 labels, double quotes and no trailing comma. */
    int64_t i8[4] = {0, 2, -1, 1};
    write_npy_raw(p, 2, "{\"descr\": \"<i8\", \"shape\": (2, 2), \"fortran_order\": False}", i8,
                  sizeof i8);
    CHECK_OK(fl_npy_read_i32(p, &y, &nd, sh, &err), &err);
    CHECK_EQ_INT(nd, 2);
    CHECK(y && y[0] == 0 && y[1] == 2 && y[2] == -1 && y[3] == 1);
    free(y);

    /* Version 3.0 with uint8 and bool. */
    unsigned char u1[3] = {0, 200, 255};
    write_npy_raw(p, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", u1, 3);
    CHECK_OK(fl_npy_read_i32(p, &y, &nd, sh, &err), &err);
    CHECK(y && y[1] == 200 && y[2] == 255);
    free(y);
    write_npy_raw(p, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", u1, 3);
    CHECK_OK(fl_npy_read_f32(p, &x, &nd, sh, &err), &err);
    CHECK(x && x[0] == 0.0f && x[1] == 1.0f && x[2] == 1.0f);
    free(x);

    int64_t big[1] = {(int64_t)1 << 40};
    write_npy_raw(p, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", big, 8);
    CHECK_FAILS(fl_npy_read_i32(p, &y, &nd, sh, &err), err, p);
    CHECK_MSG(err, "int32");
}

static void test_npy_bad(void) {
    fl_err err = {{0}};
    float *x = (float *)1;
    int nd;
    int64_t sh[4];
    float data[6] = {0};
    const char *p = fl_test_path("bad.npy");

    const char *missing = fl_test_path("nope.npy");
    CHECK_FAILS(fl_npy_read_f32(missing, &x, &nd, sh, &err), err, missing);
    CHECK(x == NULL);
    CHECK_EQ_INT(fl_npy_read_f32(missing, &x, &nd, sh, &err), FL_ENOTFOUND);

    fl_test_write_file(p, "\x93NUMPX\x01\x00\x10\x00{}", 12);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    CHECK_MSG(err, "magic");
    fl_test_write_file(p, "\x93NUM", 4);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);

    const char *ok2x3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy_raw(p, 1, ok2x3, data, sizeof data - 4); /* truncated data */
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    write_npy_raw(p, 1, ok2x3, data, sizeof data);
    CHECK_OK(fl_npy_read_f32(p, &x, &nd, sh, &err), &err);
    free(x);
    { /* header length past the end of the file */
        unsigned char b[64];
        memcpy(b, "\x93NUMPY\x01\x00\xff\x7f{'descr'", 18);
        fl_test_write_file(p, b, 18);
        CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    }
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data,
                  sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    CHECK_MSG(err, "Fortran");
    write_npy_raw(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data,
                  sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,6), }", data,
                  sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }", data,
                  sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    write_npy_raw(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", data,
                  sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);
    write_npy_raw(p, 1, "{'descr': '<f4', 'shape': (99999999999999999999,), }", data, sizeof data);
    CHECK_FAILS(fl_npy_read_f32(p, &x, &nd, sh, &err), err, p);

    /* Mutation and truncation sweeps over a valid file: never a crash (run under ASan). */
    {
        int64_t s23[2] = {2, 3};
        CHECK_OK(fl_npy_write_f32(p, data, 2, s23, &err), &err);
        unsigned char img[256], mut[256];
        FILE *f = fopen(p, "rb");
        size_t total = f ? fread(img, 1, sizeof img, f) : 0;
        if (f) fclose(f);
        CHECK_EQ_INT(total, 128 + sizeof data); /* 10 + a dict padded to 128 bytes */
        static const unsigned char vals[] = {0, '\'', '(', ')', ',', '9', 'T', '}', 0xff};
        for (size_t at = 0; at < 128; at++) {
            for (size_t v = 0; v < sizeof vals; v++) {
                memcpy(mut, img, total);
                mut[at] = vals[v];
                fl_test_write_file(p, mut, total);
                int32_t *y = NULL;
                if (fl_npy_read_f32(p, &x, &nd, sh, &err) == FL_OK)
                    free(x);
                else if (!strstr(err.msg, p))
                    fl_test_fail_at(__FILE__, __LINE__, "mutation at %zu: no path: %s", at,
                                    err.msg);
                if (fl_npy_read_i32(p, &y, &nd, sh, &err) == FL_OK) free(y);
            }
        }
        for (size_t n = 0; n < total; n++) {
            fl_test_write_file(p, img, n);
            if (fl_npy_read_f32(p, &x, &nd, sh, &err) == FL_OK) {
                fl_test_fail_at(__FILE__, __LINE__, "truncated to %zu bytes but read", n);
                free(x);
            }
        }
    }

    /* A writer that cannot create its file leaves nothing and says why. */
    int64_t s1[1] = {6};
    const char *nodir = fl_test_path("no/such/dir/x.npy");
    CHECK_FAILS(fl_npy_write_f32(nodir, data, 1, s1, &err), err, nodir);
    CHECK_FAILS(fl_npy_write_f32(p, data, 5, s1, &err), err, p);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* safetensors from hand-built bytes                                                           */

/* Writes an 8-byte length (hlen_override if nonzero), header text, then n data bytes. */
static void write_st_raw(const char *path, const char *header, uint64_t hlen_override,
                         const void *data, size_t n) {
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + n + 1);
    uint64_t len = hlen_override ? hlen_override : hl;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, hl);
    if (n) memcpy(b + 8 + hl, data, n);
    fl_test_write_file(path, b, 8 + hl + n);
    free(b);
}

static void test_st_handmade(void) {
    fl_err err = {{0}};
    fl_safetensors *st = NULL;
    const char *p = fl_test_path("hand.safetensors");
    /* data: weight F32 (2,2) at [0,16), num_batches_tracked I64 () at [16,24), a F16 (3) at
     * [24,30), a BF16 (1) at [30,32), a F64 (1) at [32,40). Unsorted in the header. */
    unsigned char data[40];
    float w[4] = {1, -2, 3.5f, 1e-3f};
    int64_t nbt = 12345;
    uint16_t h[3] = {0x3C00, 0xC000, 0x0001}; /* 1, -2, smallest subnormal 2^-24 */
    uint16_t bf = 0x3FC0;                     /* 1.5 */
    double d = -0.25;
    memcpy(data, w, 16);
    memcpy(data + 16, &nbt, 8);
    memcpy(data + 24, h, 6);
    memcpy(data + 30, &bf, 2);
    memcpy(data + 32, &d, 8);
    const char *hdr =
        "{\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]},"
        " \"__metadata__\" : {\"format\":\"pt\", \"note\":\"tab\\there \\u00e9\\ud83d\\ude00\"},"
        "\"w\\\"q\":{\"shape\":[2,2],\"dtype\":\"F32\",\"data_offsets\":[0,16],\"x\":[1,{}]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[30,32]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[32,40]}}   ";
    write_st_raw(p, hdr, 0, data, sizeof data);
    CHECK_OK(fl_safetensors_open(&st, p, &err), &err);
    if (!st) return;
    CHECK_EQ_INT(fl_safetensors_count(st), 5);
    CHECK(fl_safetensors_metadata(st, "format") &&
          strcmp(fl_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(fl_safetensors_metadata(st, "note") &&
          strcmp(fl_safetensors_metadata(st, "note"), "tab\there \xc3\xa9\xf0\x9f\x98\x80") == 0);
    CHECK(fl_safetensors_metadata(st, "nothing") == NULL);
    CHECK(fl_safetensors_find(st, "nothing") == NULL);

    const fl_st_tensor *t = fl_safetensors_find(st, "w\"q");
    float f[4];
    CHECK(t && t->dtype == FL_ST_F32 && t->ndim == 2 && t->numel == 4);
    if (t) CHECK_OK(fl_safetensors_read_f32(st, t, f, &err), &err);
    CHECK(memcmp(f, w, 16) == 0);

    t = fl_safetensors_find(st, "bn1.num_batches_tracked");
    int64_t v = 0;
    CHECK(t && t->dtype == FL_ST_I64 && t->ndim == 0 && t->numel == 1);
    if (t) CHECK_OK(fl_safetensors_read_i64(st, t, &v, &err), &err);
    CHECK_EQ_INT(v, 12345);
    if (t) CHECK_FAILS(fl_safetensors_read_f32(st, t, f, &err), err, p);

    t = fl_safetensors_find(st, "h");
    if (t) CHECK_OK(fl_safetensors_read_f32(st, t, f, &err), &err);
    CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == 0x1p-24f);
    t = fl_safetensors_find(st, "b");
    if (t) CHECK_OK(fl_safetensors_read_f32(st, t, f, &err), &err);
    CHECK(f[0] == 1.5f);
    t = fl_safetensors_find(st, "d");
    if (t) CHECK_OK(fl_safetensors_read_f32(st, t, f, &err), &err);
    CHECK(f[0] == -0.25f);
    fl_safetensors_close(st);

    /* An empty header object is a valid, empty file. */
    write_st_raw(p, "{}", 0, NULL, 0);
    CHECK_OK(fl_safetensors_open(&st, p, &err), &err);
    if (st) CHECK_EQ_INT(fl_safetensors_count(st), 0);
    fl_safetensors_close(st);
}

static void test_st_malformed(void) {
    fl_err err = {{0}};
    fl_safetensors *st = (fl_safetensors *)1;
    const char *p = fl_test_path("mal.safetensors");
    unsigned char data[16] = {0};
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"a\"}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}",   /* no '}' */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", /* trailing , */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x",
        "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", /* size != span */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", /* past the end */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,8]}}",  /* begin > end */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", /* duplicate */
        "{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\n\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{\"k\":1}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":\"\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st_raw(p, bad[i], 0, data, sizeof data);
        fl_status s = fl_safetensors_open(&st, p, &err);
        fl_test_checks++;
        if (s == FL_OK || st != NULL) {
            fl_test_fail_at(__FILE__, __LINE__, "bad header %zu opened: %s", i, bad[i]);
            fl_safetensors_close(st);
        } else if (!strstr(err.msg, p)) {
            fl_test_fail_at(__FILE__, __LINE__, "bad header %zu: message lacks the path: %s", i,
                            err.msg);
        }
    }
    /* Header length beyond the file, and a file shorter than the length field. */
    write_st_raw(p, "{}", 1000, NULL, 0);
    CHECK_FAILS(fl_safetensors_open(&st, p, &err), err, p);
    write_st_raw(p, "{}", 0xFFFFFFFFFFFFFFFFull, NULL, 0);
    CHECK_FAILS(fl_safetensors_open(&st, p, &err), err, p);
    fl_test_write_file(p, "\x02\x00\x00", 3);
    CHECK_FAILS(fl_safetensors_open(&st, p, &err), err, p);
    const char *missing = fl_test_path("nope.safetensors");
    CHECK_FAILS(fl_safetensors_open(&st, missing, &err), err, missing);

    /* Mutation sweep: every byte of a valid file replaced by a few values must give either a
     * valid file or an error, never a crash or an out-of-bounds read (run under ASan). */
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"__metadata__\":{\"a\":\"b\\u00e9\"}}";
    size_t hl = strlen(good), total = 8 + hl + 16;
    unsigned char *img = malloc(total), *mut = malloc(total);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, good, hl);
    memset(img + 8 + hl, 0x3f, 16);
    static const unsigned char vals[] = {0, '"', '\\', '{', '}', '[', ']', ',', ':', '9', 0xff};
    int opened = 0, refused = 0;
    for (size_t at = 0; at < 8 + hl; at++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(mut, img, total);
            mut[at] = vals[v];
            fl_test_write_file(p, mut, total);
            err.msg[0] = '\0';
            if (fl_safetensors_open(&st, p, &err) == FL_OK) {
                for (int i = 0; i < fl_safetensors_count(st); i++) {
                    const fl_st_tensor *t = fl_safetensors_tensor(st, i);
                    volatile unsigned char sink = 0;
                    for (size_t b = 0; b < t->nbytes; b++)
                        sink ^= ((const unsigned char *)t->data)[b];
                    (void)sink;
                }
                fl_safetensors_close(st);
                opened++;
            } else {
                refused++;
                if (!strstr(err.msg, p))
                    fl_test_fail_at(__FILE__, __LINE__, "mutation at %zu: no path in: %s", at,
                                    err.msg);
            }
        }
    }
    /* Truncations at every length. */
    for (size_t n = 0; n < total; n++) {
        fl_test_write_file(p, img, n);
        if (fl_safetensors_open(&st, p, &err) == FL_OK) {
            fl_test_fail_at(__FILE__, __LINE__, "truncated to %zu bytes but opened", n);
            fl_safetensors_close(st);
        }
    }
    CHECK(opened > 0 && refused > 0);
    free(img);
    free(mut);
}

/* ------------------------------------------------------------------------------------------ */
/* models                                                                                      */

static fl_model *make_resnet(int depth, int classes, uint64_t seed) {
    fl_err err = {{0}};
    fl_resnet_config c;
    fl_resnet_config_default(&c);
    c.depth = depth;
    c.tile = 32;
    c.width = 0.125f;
    c.classes = classes;
    fl_graph *g = NULL;
    fl_model *m = NULL;
    CHECK_OK(fl_resnet_build(&g, &c, &err), &err);
    if (!g) return NULL;
    CHECK_OK(fl_model_new(&m, g, be, 1, seed, &err), &err);
    return m;
}

/* Overwrites every tensor (buffers included) with values drawn from seed. */
static void randomize(fl_model *m, uint64_t seed) {
    const fl_graph *g = fl_model_graph(m);
    uint64_t x = seed * 2654435761u + 1;
    for (int i = 0; i < g->n_params; i++) {
        float *v = malloc(g->params[i].numel * sizeof *v);
        for (size_t j = 0; j < g->params[i].numel; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            v[j] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        fl_model_set_tensor(m, i, v);
        free(v);
    }
}

/* 1 if every tensor of a and b is bitwise equal (same graph assumed). */
static int same_tensors(fl_model *a, fl_model *b, const char *what) {
    const fl_graph *g = fl_model_graph(a);
    int same = 1;
    for (int i = 0; i < g->n_params && same; i++) {
        size_t n = g->params[i].numel;
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        fl_model_get_tensor(a, i, x);
        fl_model_get_tensor(b, i, y);
        if (memcmp(x, y, n * sizeof *x) != 0) {
            fl_test_fail_at(__FILE__, __LINE__, "%s: tensor %s differs", what, g->params[i].name);
            same = 0;
        }
        free(x);
        free(y);
    }
    fl_test_checks++;
    return same;
}

/* Writes m's tensors as a torchvision-like safetensors file: F32 tensors plus an I64 0-d
 * "<bn>.num_batches_tracked" after each running_var; `drop` is left out, `rename_from` is
 * written as `rename_to`, and `extra` (if non-NULL) is added as a F32 (1) tensor. */
static void write_torchvision_like(fl_model *m, const char *path, const char *drop,
                                   const char *extra) {
    const fl_graph *g = fl_model_graph(m);
    size_t cap = 1 << 20, hl = 0, off = 0;
    char *h = malloc(cap);
    unsigned char *data = malloc(g->n_trainable * 4 + g->n_buffer * 4 + 8 * g->n_params + 64);
    hl += (size_t)snprintf(h + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *pa = &g->params[i];
        if (drop && strcmp(pa->name, drop) == 0) continue;
        hl +=
            (size_t)snprintf(h + hl, cap - hl, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", pa->name);
        for (int d = 0; d < pa->ndim; d++)
            hl += (size_t)snprintf(h + hl, cap - hl, "%s%" PRId64, d ? "," : "", pa->shape[d]);
        hl += (size_t)snprintf(h + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                               off + pa->numel * 4);
        fl_model_get_tensor(m, i, (float *)(data + off)); /* malloc'd: aligned */
        off += pa->numel * 4;
        size_t nl = strlen(pa->name);
        if (nl > 12 && strcmp(pa->name + nl - 12, ".running_var") == 0) {
            int64_t nbt = 7;
            hl += (size_t)snprintf(h + hl, cap - hl,
                                   ",\"%.*s.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   (int)(nl - 12), pa->name, off, off + 8);
            memcpy(data + off, &nbt, 8);
            off += 8;
        }
    }
    if (extra) {
        float one = 1;
        hl +=
            (size_t)snprintf(h + hl, cap - hl,
                             ",\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                             extra, off, off + 4);
        memcpy(data + off, &one, 4);
        off += 4;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    write_st_raw(path, h, 0, data, off);
    free(h);
    free(data);
}

static void test_st_model(void) {
    fl_err err = {{0}};
    fl_model *a = make_resnet(18, 3, 1), *b = make_resnet(18, 3, 2), *c = make_resnet(18, 5, 3);
    if (!a || !b || !c) goto done;
    randomize(a, 11);

    /* Our own writer, with metadata, then load into a differently-seeded model. */
    const char *p = fl_test_path("r18.safetensors");
    const char *meta[] = {"arch", "resnet18", "quote", "a\"b\\c\n", NULL};
    CHECK_OK(fl_safetensors_save_model(a, p, meta, &err), &err);
    fl_safetensors *st = NULL;
    CHECK_OK(fl_safetensors_open(&st, p, &err), &err);
    if (st) {
        CHECK(strcmp(fl_safetensors_metadata(st, "quote"), "a\"b\\c\n") == 0);
        CHECK_EQ_INT(fl_safetensors_count(st), fl_model_graph(a)->n_params);
        CHECK_EQ_INT((uintptr_t)fl_safetensors_tensor(st, 0)->data % 8, 0);
    }
    fl_safetensors_close(st);
    CHECK_OK(fl_safetensors_load_model(b, p, &err), &err);
    same_tensors(a, b, "safetensors round trip");

    /* torchvision-style: I64 num_batches_tracked tensors load fine. */
    const char *tv = fl_test_path("tv.safetensors");
    randomize(a, 12);
    write_torchvision_like(a, tv, NULL, NULL);
    CHECK_OK(fl_safetensors_load_model(b, tv, &err), &err);
    same_tensors(a, b, "torchvision-like load");

    /* A missing tensor, an extra F32 tensor, a wrong shape: errors naming file and tensor, and
     * the model is left as it was. */
    randomize(a, 13);
    write_torchvision_like(a, tv, "layer2.0.bn1.running_mean", NULL);
    CHECK_FAILS(fl_safetensors_load_model(b, tv, &err), err, tv);
    CHECK_MSG(err, "layer2.0.bn1.running_mean");
    CHECK_EQ_INT(fl_safetensors_load_model(b, tv, &err), FL_ENOTFOUND);
    write_torchvision_like(a, tv, NULL, "layer9.conv.weight");
    CHECK_FAILS(fl_safetensors_load_model(b, tv, &err), err, tv);
    CHECK_MSG(err, "layer9.conv.weight");
    randomize(a, 12);
    same_tensors(a, b, "model unchanged after failed loads");

    write_torchvision_like(c, tv, NULL, NULL); /* fc has 5 classes, b has 3 */
    CHECK_FAILS(fl_safetensors_load_model(b, tv, &err), err, tv);
    CHECK_MSG(err, "fc.weight");
    CHECK_MSG(err, "(5, 64)");
    CHECK_MSG(err, "(3, 64)");
    CHECK_EQ_INT(fl_safetensors_load_model(b, tv, &err), FL_ESHAPE);
    /* ... unless the classifier is skipped, as when fine-tuning for other classes. */
    const char *skip[] = {"fc.", NULL};
    CHECK_OK(fl_safetensors_load_model_skip(b, tv, skip, &err), &err);
    int i1 = fl_graph_find_param(fl_model_graph(b), "conv1.weight");
    size_t n1 = fl_model_graph(b)->params[i1].numel;
    float *w1 = malloc(n1 * sizeof *w1), *w2 = malloc(n1 * sizeof *w2);
    fl_model_get_tensor(b, i1, w1);
    fl_model_get_tensor(c, i1, w2);
    CHECK(memcmp(w1, w2, n1 * sizeof *w1) == 0);
    free(w2);

    /* An integer tensor where the model needs floats is an error. */
    write_st_raw(tv, "{\"conv1.weight\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                 0, w1, 8);
    CHECK_FAILS(fl_safetensors_load_model(b, tv, &err), err, tv);
    CHECK_MSG(err, "I64");
    free(w1);

    const char *nodir = fl_test_path("no/such/dir/x.safetensors");
    CHECK_FAILS(fl_safetensors_save_model(a, nodir, NULL, &err), err, nodir);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
done:
    fl_model_free(a);
    fl_model_free(b);
    fl_model_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* HDF5 checkpoints                                                                            */

static void meta_for(fl_model_meta *meta, const char *arch) {
    fl_model_meta_init(meta);
    snprintf(meta->arch, sizeof meta->arch, "%s", arch);
    snprintf(meta->stem, sizeof meta->stem, "imagenet");
    meta->tile = 32;
    meta->classes = 3;
    meta->width = 0.125f;
}

/* Opens path read-write and applies f to it; the HDF5 API directly, as an attacker would. */
static void h5_edit_value(const char *path, const char *dset, size_t n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, dset, H5P_DEFAULT) : -1;
    float *v = malloc(n * sizeof *v);
    CHECK(d >= 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    v[n / 2] += 1.0f;
    CHECK(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    free(v);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
}

static void h5_delete(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0 && H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    if (f >= 0) H5Fclose(f);
}

static void h5_add_dataset(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t one = 1;
    float v = 1;
    hid_t sp = H5Screate_simple(1, &one, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    if (f >= 0) H5Fclose(f);
}

/* The documented definition: SHA-256 over the trainable tensors, then the buffers, in graph
 * order, as fl_model_get_tensor returns them (no slab padding). Static result. */
static const char *tensor_sha256(fl_model *m) {
    static char hex[65];
    const fl_graph *g = fl_model_graph(m);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int pass = 1; pass >= 0; pass--) {
        for (int i = 0; i < g->n_params; i++) {
            if (g->params[i].trainable != pass) continue;
            float *v = malloc(g->params[i].numel * sizeof *v);
            fl_model_get_tensor(m, i, v);
            EVP_DigestUpdate(ctx, v, g->params[i].numel * sizeof *v);
            free(v);
        }
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return hex;
}

static void test_checkpoint(void) {
    fl_err err = {{0}};
    fl_model *a = make_resnet(18, 3, 1), *b = make_resnet(18, 3, 2), *c = make_resnet(18, 5, 3);
    if (!a || !b || !c) goto done;
    randomize(a, 21);
    const char *p = fl_test_path("ck.h5");
    fl_model_meta meta, got;
    meta_for(&meta, "resnet18");
    snprintf(meta.phase, sizeof meta.phase, "image");
    meta.round = 7;
    CHECK_OK(fl_checkpoint_save(a, &meta, p, &err), &err);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);

    CHECK_OK(fl_checkpoint_read_meta(p, &got, &err), &err);
    CHECK(strcmp(got.arch, "resnet18") == 0 && strcmp(got.stem, "imagenet") == 0);
    CHECK(got.tile == 32 && got.classes == 3 && got.width == 0.125f);
    CHECK(strcmp(got.phase, "image") == 0 && got.round == 7);
    char hex[65];
    CHECK_OK(fl_model_sha256(a, hex), &err);
    CHECK(strcmp(got.sha256, hex) == 0);
    CHECK_EQ_INT(strlen(hex), 64);
    CHECK(strcmp(hex, tensor_sha256(a)) == 0);

    CHECK_OK(fl_checkpoint_load(b, p, &err), &err);
    same_tensors(a, b, "checkpoint round trip");
    char hex_b[65];
    fl_model_sha256(b, hex_b);
    CHECK(strcmp(hex, hex_b) == 0);

    /* Optional attributes left out. */
    fl_model_meta plain;
    meta_for(&plain, "resnet18");
    CHECK_OK(fl_checkpoint_save(a, &plain, p, &err), &err);
    CHECK_OK(fl_checkpoint_read_meta(p, &got, &err), &err);
    CHECK(got.phase[0] == '\0' && got.round == -1 && got.groupnorm == 0);
    /* A GroupNorm ResNet (DP training): the group count travels with it, so the graph can be
     * rebuilt (a BatchNorm graph would miss its running statistics). */
    {
        fl_resnet_config rc;
        fl_resnet_config_default(&rc);
        rc.depth = 18;
        rc.tile = 32;
        rc.width = 0.125f;
        rc.groupnorm = 8;
        fl_graph *gg = NULL;
        fl_model *gn = NULL, *back = NULL;
        fl_backend *be2 = NULL;
        CHECK_OK(fl_resnet_build(&gg, &rc, &err), &err);
        if (gg) CHECK_OK(fl_model_new(&gn, gg, be, 1, 5, &err), &err);
        fl_model_meta gm;
        meta_for(&gm, "resnet18");
        gm.groupnorm = 8;
        if (gn) CHECK_OK(fl_checkpoint_save(gn, &gm, p, &err), &err);
        CHECK_OK(fl_checkpoint_read_meta(p, &got, &err), &err);
        CHECK_EQ_INT(got.groupnorm, 8);
        fl_model_meta lm;
        CHECK_OK(fl_load_image_model(p, 1, 1, &be2, &back, &lm, &err), &err);
        fl_model_free(back);
        if (be2) be2->destroy(be2);
        fl_model_free(gn);
    }
    /* A model without images: empty stem, tile 0. */
    fl_model_meta noimg;
    meta_for(&noimg, "fusion");
    noimg.stem[0] = '\0';
    noimg.tile = 0;
    CHECK_OK(fl_checkpoint_save(a, &noimg, p, &err), &err);
    CHECK_OK(fl_checkpoint_read_meta(p, &got, &err), &err);
    CHECK(strcmp(got.arch, "fusion") == 0 && got.stem[0] == '\0' && got.tile == 0);

    /* Tampering with one value is caught by the hash. */
    h5_edit_value(p, "/layer1.0.conv1.weight", 8 * 8 * 9);
    CHECK_FAILS(fl_checkpoint_load(b, p, &err), err, p);
    CHECK_MSG(err, "SHA-256");

    /* A missing dataset, an extra one, a wrong shape. */
    CHECK_OK(fl_checkpoint_save(a, &meta, p, &err), &err);
    h5_delete(p, "bn1.running_var");
    CHECK_FAILS(fl_checkpoint_load(b, p, &err), err, p);
    CHECK_MSG(err, "/bn1.running_var");
    CHECK_OK(fl_checkpoint_save(a, &meta, p, &err), &err);
    h5_add_dataset(p, "layer5.bias");
    CHECK_FAILS(fl_checkpoint_load(b, p, &err), err, p);
    CHECK_MSG(err, "layer5.bias");
    CHECK_OK(fl_checkpoint_save(c, &meta, p, &err), &err);
    CHECK_FAILS(fl_checkpoint_load(b, p, &err), err, p);
    CHECK_MSG(err, "fc.weight");
    CHECK_MSG(err, "(5, 64)");
    CHECK_EQ_INT(fl_checkpoint_load(b, p, &err), FL_ESHAPE);

    /* A checkpoint cut short (a copy that did not finish). */
    CHECK_OK(fl_checkpoint_save(a, &meta, p, &err), &err);
    {
        FILE *f = fopen(p, "rb");
        size_t cap = 1 << 24, n = 0;
        unsigned char *bytes = malloc(cap);
        if (f) n = fread(bytes, 1, cap, f);
        if (f) fclose(f);
        CHECK(n > 1000 && n < cap);
        const char *cut = fl_test_path("cut.h5");
        fl_test_write_file(cut, bytes, n / 2);
        CHECK_FAILS(fl_checkpoint_load(b, cut, &err), err, cut);
        free(bytes);
    }
    /* Not a checkpoint at all, or not there. */
    const char *junk = fl_test_path("junk.h5");
    fl_test_write_file(junk, "not hdf5", 8);
    CHECK_FAILS(fl_checkpoint_read_meta(junk, &got, &err), err, junk);
    CHECK_FAILS(fl_checkpoint_load(b, junk, &err), err, junk);
    const char *st = fl_test_path("r18.safetensors"); /* an HDF5 reader must refuse it politely */
    CHECK_FAILS(fl_checkpoint_load(b, st, &err), err, st);
    const char *missing = fl_test_path("nope.h5");
    CHECK_FAILS(fl_checkpoint_read_meta(missing, &got, &err), err, missing);
    CHECK_EQ_INT(fl_checkpoint_read_meta(missing, &got, &err), FL_ENOTFOUND);
    { /* an HDF5 file that is not ours */
        hid_t f = H5Fcreate(junk, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        H5Fclose(f);
        CHECK_FAILS(fl_checkpoint_read_meta(junk, &got, &err), err, junk);
        CHECK_MSG(err, "fedlung");
    }
    const char *nodir = fl_test_path("no/such/dir/ck.h5");
    CHECK_FAILS(fl_checkpoint_save(a, &meta, nodir, &err), err, nodir);
    fl_model_meta noarch;
    fl_model_meta_init(&noarch);
    CHECK_FAILS(fl_checkpoint_save(a, &noarch, p, &err), err, p);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
done:
    fl_model_free(a);
    fl_model_free(b);
    fl_model_free(c);
}

/* Every torchvision ResNet name set survives both formats. */
static void test_all_depths(void) {
    static const int depths[] = {18, 34, 50, 101, 152};
    fl_err err = {{0}};
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        fl_model *a = make_resnet(depths[k], 3, 5), *b = make_resnet(depths[k], 3, 6);
        char arch[16], what[64];
        snprintf(arch, sizeof arch, "resnet%d", depths[k]);
        if (a && b) {
            randomize(a, 100 + k);
            const char *ps = fl_test_path("net.safetensors"), *ph = fl_test_path("net.h5");
            CHECK_OK(fl_safetensors_save_model(a, ps, NULL, &err), &err);
            CHECK_OK(fl_safetensors_load_model(b, ps, &err), &err);
            snprintf(what, sizeof what, "%s safetensors", arch);
            same_tensors(a, b, what);
            randomize(b, 200 + k);
            fl_model_meta meta;
            meta_for(&meta, arch);
            CHECK_OK(fl_checkpoint_save(a, &meta, ph, &err), &err);
            CHECK_OK(fl_checkpoint_load(b, ph, &err), &err);
            snprintf(what, sizeof what, "%s checkpoint", arch);
            same_tensors(a, b, what);
            /* torchvision's keys: e.g. the last block of the last stage */
            const char *last = depths[k] == 18   ? "layer4.1.bn2.running_var"
                               : depths[k] == 34 ? "layer4.2.bn2.running_var"
                                                 : "layer4.2.bn3.running_var";
            CHECK(fl_graph_find_param(fl_model_graph(a), last) >= 0);
        }
        fl_model_free(a);
        fl_model_free(b);
    }
}

/* ------------------------------------------------------------------------------------------ */

int main(void) {
    fl_err err = {{0}};
    if (!fl_test_mkdtemp("fl_io_")) return 1;
    be = fl_backend_cpu_new(0, &err);
    if (!be) {
        fprintf(stderr, "test_io: %s\n", err.msg);
        fl_test_rmtree(fl_test_dir);
        return 1;
    }
    test_npy_roundtrip();
    test_npy_dtypes();
    test_npy_bad();
    test_st_handmade();
    test_st_malformed();
    test_st_model();
    test_checkpoint();
    test_all_depths();
    be->destroy(be);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_io");
}
