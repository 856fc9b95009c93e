/* npy.c - the .npy reader and writer: a bounded parser for the header's Python dict literal,
 * dtype conversion to float32/int32, and atomic writes (common/atomic.h).
 * Not memory-mapped: arrays given on the command line are small next to the model. */
#include "npy.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/atomic.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1u << 20) /* numpy itself refuses headers above ~10 kB */

/* ------------------------------------------------------------------------------------------ */
/* dtypes                                                                                      */

typedef enum { K_FLOAT, K_INT, K_UINT, K_BOOL } npy_kind;

typedef struct {
    npy_kind kind;
    int size; /* bytes per element */
} npy_dtype;

/* Parses a descr such as "<f4" or "|u1"; returns 0 when it is not one we read. */
static int parse_descr(const char *d, npy_dtype *out) {
    char order = d[0], kind = d[1];
    if (order == '\0' || kind == '\0') return 0;
    if (!(d[2] >= '1' && d[2] <= '8') || d[3] != '\0') return 0;
    int size = d[2] - '0';
    switch (kind) {
    case 'f':
        out->kind = K_FLOAT;
        break;
    case 'i':
        out->kind = K_INT;
        break;
    case 'u':
        out->kind = K_UINT;
        break;
    case 'b':
        out->kind = K_BOOL;
        break;
    default:
        return 0;
    }
    out->size = size;
    /* Byte order: '<' little, '|' not applicable (1 byte), '=' native (we run little-endian);
     * '>' only makes sense for 1-byte types. */
    if (order == '>' && size != 1) return 0;
    if (order != '<' && order != '|' && order != '=' && order != '>') return 0;
    if (out->kind == K_FLOAT) return size == 4 || size == 8;
    if (out->kind == K_BOOL) return size == 1;
    return size == 1 || size == 2 || size == 4 || size == 8;
}

/* Integer element at p of `size` bytes (1, 2, 4 or 8, little-endian), zero-extended. */
static uint64_t load_unsigned(const unsigned char *p, int size) {
    uint64_t v = 0;
    memcpy(&v, p, (size_t)size); /* little-endian host: the low bytes first */
    return v;
}

/* The same, sign-extended. */
static int64_t load_signed(const unsigned char *p, int size) {
    uint64_t v = load_unsigned(p, size);
    if (size < 8 && (v >> (8 * size - 1) & 1)) v |= ~0ull << (8 * size);
    return (int64_t)v;
}

/* Element i of raw (little-endian) as double. */
static double elem_f64(const unsigned char *raw, size_t i, npy_dtype t) {
    const unsigned char *p = raw + i * (size_t)t.size;
    float f;
    double d;
    switch (t.kind) {
    case K_FLOAT:
        if (t.size == 4) {
            memcpy(&f, p, 4);
            return f;
        }
        memcpy(&d, p, 8);
        return d;
    case K_BOOL:
        return p[0] ? 1.0 : 0.0;
    case K_INT:
        return (double)load_signed(p, t.size);
    case K_UINT:
        return (double)load_unsigned(p, t.size);
    }
    return 0;
}

/* Element i of an integer or boolean array as int64; returns 0 when it does not fit. */
static int elem_i64(const unsigned char *raw, size_t i, npy_dtype t, int64_t *v) {
    const unsigned char *p = raw + i * (size_t)t.size;
    uint64_t u;
    switch (t.kind) {
    case K_BOOL:
        *v = p[0] != 0;
        return 1;
    case K_INT:
        *v = load_signed(p, t.size);
        return 1;
    case K_UINT:
        u = load_unsigned(p, t.size);
        if (u > (uint64_t)INT64_MAX) return 0;
        *v = (int64_t)u;
        return 1;
    case K_FLOAT:
        return 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* header: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"                     */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes, copied into out (cap bytes with the NUL). */
static int parse_pystr(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(cursor *c, const char *w) {
    size_t n = strlen(w);
    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* "(3, 4)", "(3,)" or "()"; dims must be >= 0 (an 'L' suffix from Python 2 is accepted). */
static int parse_shape(cursor *c, int *ndim, int64_t shape[FL_NPY_MAX_DIMS], int *too_many) {
    *ndim = 0;
    if (!eat(c, '(')) return 0;
    for (;;) {
        if (eat(c, ')')) return 1;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return 0;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        if (*ndim == FL_NPY_MAX_DIMS) {
            *too_many = 1;
            return 0;
        }
        shape[(*ndim)++] = v;
        if (!eat(c, ',')) return eat(c, ')');
    }
}

typedef struct {
    npy_dtype dtype;
    char descr[16];
    int fortran;
    int ndim;
    int64_t shape[FL_NPY_MAX_DIMS];
} npy_header;

static fl_status parse_header(const char *path, const char *text, size_t len, npy_header *h,
                              fl_err *err) {
    cursor c = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0, too_many = 0;
    if (!eat(&c, '{')) goto bad;
    while (!eat(&c, '}')) {
        char key[32];
        if (!parse_pystr(&c, key, sizeof key) || !eat(&c, ':')) goto bad;
        if (strcmp(key, "descr") == 0) {
            if (!parse_pystr(&c, h->descr, sizeof h->descr)) {
                return fl_fail(err, FL_EUNSUPPORTED,
                               "%s: the dtype is not a plain numeric type (structured arrays "
                               "are not supported)",
                               path);
            }
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "True"))
                h->fortran = 1;
            else if (parse_word(&c, "False"))
                h->fortran = 0;
            else
                goto bad;
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (!parse_shape(&c, &h->ndim, h->shape, &too_many)) {
                if (too_many)
                    return fl_fail(err, FL_EUNSUPPORTED, "%s: the array has more than %d dims",
                                   path, FL_NPY_MAX_DIMS);
                goto bad;
            }
            have_shape = 1;
        } else {
            goto bad;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) goto bad;
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape) goto bad;
    if (h->fortran)
        return fl_fail(err, FL_EUNSUPPORTED,
                       "%s: the array is in Fortran order; save it with "
                       "numpy.ascontiguousarray first",
                       path);
    if (!parse_descr(h->descr, &h->dtype))
        return fl_fail(err, FL_EUNSUPPORTED,
                       "%s: dtype '%s' is not supported (use float32, float64, an integer or bool)",
                       path, h->descr);
    return FL_OK;
bad:
    return fl_fail(err, FL_EFORMAT, "%s: the .npy header is not a valid descr/order/shape dict",
                   path);
}

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */

/* Reads the header and the raw element bytes; *raw is malloc'd (NULL for an empty array). */
static fl_status read_raw(const char *path, npy_header *h, unsigned char **raw, size_t *numel,
                          fl_err *err) {
    fl_status st = FL_OK;
    char *text = NULL;
    FILE *f = NULL;
    *raw = NULL;
    *numel = 0;
    memset(h, 0, sizeof *h);

    f = fopen(path, "rb");
    if (!f) {
        st = fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = fl_fail(err, FL_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = fl_fail(err, FL_EIO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t fsize = (uint64_t)sb.st_size;

    unsigned char pre[12];
    if (fsize < 10 || fread(pre, 1, 10, f) != 10 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        st = fl_fail(err, FL_EFORMAT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    int major = pre[6];
    uint64_t hlen, off;
    if (major == 1) {
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (fsize < 12 || fread(pre + 10, 1, 2, f) != 2) {
            st = fl_fail(err, FL_EFORMAT, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
               (uint64_t)pre[11] << 24;
        off = 12;
    } else {
        st = fl_fail(err, FL_EUNSUPPORTED, "%s: .npy format version %d.%d is not supported", path,
                     pre[6], pre[7]);
        goto fail;
    }
    if (hlen > NPY_MAX_HEADER || off + hlen > fsize) {
        st = fl_fail(err, FL_EFORMAT,
                     "%s: the .npy header length %llu runs past the file (%llu bytes)", path,
                     (unsigned long long)hlen, (unsigned long long)fsize);
        goto fail;
    }
    text = malloc(hlen + 1);
    if (!text) {
        st = fl_fail(err, FL_ENOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    if (fread(text, 1, hlen, f) != hlen) {
        st = fl_fail(err, FL_EIO, "%s: cannot read the .npy header", path);
        goto fail;
    }
    text[hlen] = '\0';
    st = parse_header(path, text, hlen, h, err);
    if (st != FL_OK) goto fail;

    size_t n = 1, bytes;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] < 0 || (uint64_t)h->shape[i] > SIZE_MAX ||
            __builtin_mul_overflow(n, (size_t)h->shape[i], &n))
            goto too_big;
    }
    if (__builtin_mul_overflow(n, (size_t)h->dtype.size, &bytes)) goto too_big;
    if ((uint64_t)bytes != fsize - off - hlen) {
        st = fl_fail(err, FL_EFORMAT, "%s: the shape needs %zu data bytes but the file has %llu",
                     path, bytes, (unsigned long long)(fsize - off - hlen));
        goto fail;
    }
    if (bytes > 0) {
        *raw = malloc(bytes);
        if (!*raw) {
            st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu bytes", path, bytes);
            goto fail;
        }
        if (fread(*raw, 1, bytes, f) != bytes) {
            st = fl_fail(err, FL_EIO, "%s: cannot read the array data", path);
            goto fail;
        }
    }
    *numel = n;
    free(text);
    fclose(f);
    return FL_OK;
too_big:
    st = fl_fail(err, FL_EFORMAT, "%s: the array shape is too large", path);
fail:
    free(*raw);
    *raw = NULL;
    free(text);
    if (f) fclose(f);
    return st;
}

static void export_shape(const npy_header *h, int *ndim, int64_t shape[4]) {
    *ndim = h->ndim;
    for (int i = 0; i < FL_NPY_MAX_DIMS; i++) shape[i] = i < h->ndim ? h->shape[i] : 1;
}

fl_status fl_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[4],
                          fl_err *err) {
    npy_header h;
    unsigned char *raw = NULL;
    size_t n;
    *data = NULL;
    fl_status st = read_raw(path, &h, &raw, &n, err);
    if (st != FL_OK) return st;
    float *out;
    if (h.dtype.kind == K_FLOAT && h.dtype.size == 4 && n > 0) {
        out = (float *)raw; /* already float32: malloc'd, so suitably aligned */
    } else {
        out = malloc(n ? n * sizeof(float) : 1);
        if (!out) {
            free(raw);
            return fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, n);
        }
        for (size_t i = 0; i < n; i++) out[i] = (float)elem_f64(raw, i, h.dtype);
        free(raw);
    }
    *data = out;
    export_shape(&h, ndim, shape);
    return FL_OK;
}

fl_status fl_npy_read_i32(const char *path, int32_t **data, int *ndim, int64_t shape[4],
                          fl_err *err) {
    npy_header h;
    unsigned char *raw = NULL;
    size_t n;
    *data = NULL;
    fl_status st = read_raw(path, &h, &raw, &n, err);
    if (st != FL_OK) return st;
    int32_t *out = NULL;
    if (h.dtype.kind == K_FLOAT) {
        st = fl_fail(err, FL_EUNSUPPORTED, "%s: dtype '%s' is floating; integer labels expected",
                     path, h.descr);
        goto fail;
    }
    out = malloc(n ? n * sizeof(int32_t) : 1);
    if (!out) {
        st = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu ints", path, n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (!elem_i64(raw, i, h.dtype, &v) || v < INT32_MIN || v > INT32_MAX) {
            st = fl_fail(err, FL_EFORMAT, "%s: element %zu does not fit in int32", path, i);
            goto fail;
        }
        out[i] = (int32_t)v;
    }
    free(raw);
    *data = out;
    export_shape(&h, ndim, shape);
    return FL_OK;
fail:
    free(raw);
    free(out);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                     */

static fl_status write_npy(const char *path, const void *data, const char *descr, int ndim,
                           const int64_t *shape, fl_err *err) {
    if (ndim < 0 || ndim > FL_NPY_MAX_DIMS || (ndim > 0 && !shape))
        return fl_fail(err, FL_EINVAL, "%s: cannot write an array of %d dims", path, ndim);
    size_t n = 1;
    char dims[128] = "";
    size_t len = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, (size_t)shape[i], &n))
            return fl_fail(err, FL_EINVAL, "%s: dimension %d (%lld) is invalid", path, i,
                           (long long)shape[i]);
        len += (size_t)snprintf(dims + len, sizeof dims - len, "%lld%s", (long long)shape[i],
                                ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    if (n > 0 && !data) return fl_fail(err, FL_EINVAL, "%s: no data to write", path);

    /* Header padded with spaces and ended by '\n' so the data starts at a multiple of 64. */
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, dims);
    size_t total = 10 + (size_t)hl + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    memset(hdr + hl, ' ', hlen - (size_t)hl - 1);
    hdr[hlen - 1] = '\n';
    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);

    fl_atomic_file af;
    fl_status st = fl_atomic_open(&af, path, err);
    if (st != FL_OK) return st;
    if (fwrite(pre, 1, 10, af.f) != 10 || fwrite(hdr, 1, hlen, af.f) != hlen ||
        (n > 0 && fwrite(data, 4, n, af.f) != n)) {
        st = fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(errno));
        fl_atomic_abort(&af);
        return st;
    }
    return fl_atomic_commit(&af, err);
}

fl_status fl_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                           fl_err *err) {
    return write_npy(path, data, "<f4", ndim, shape, err);
}

fl_status fl_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape,
                           fl_err *err) {
    return write_npy(path, data, "<i4", ndim, shape, err);
}
