/* safetensors.c - a memory-mapped safetensors reader with its own bounded JSON parser (objects,
 * arrays, strings with escapes, integers: the subset the format uses), model load and save.
 * Not a JSON library: floats, true/false/null are accepted only where they are skipped. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JSON_MAX_DEPTH 32

struct fl_safetensors {
    char *path;
    void *map;
    size_t map_len;
    const unsigned char *data; /* first byte after the header */
    size_t data_len;
    fl_st_tensor *tensors;
    int n, cap;
    const fl_st_tensor **sorted; /* ordered by name, for bsearch */
    char **meta;                 /* key0, value0, key1, value1, ... */
    int n_meta;                  /* pairs */
};

/* ------------------------------------------------------------------------------------------ */
/* dtypes                                                                                      */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [FL_ST_BOOL] = {"BOOL", 1}, [FL_ST_U8] = {"U8", 1},           [FL_ST_I8] = {"I8", 1},
    [FL_ST_U16] = {"U16", 2},   [FL_ST_I16] = {"I16", 2},         [FL_ST_U32] = {"U32", 4},
    [FL_ST_I32] = {"I32", 4},   [FL_ST_U64] = {"U64", 8},         [FL_ST_I64] = {"I64", 8},
    [FL_ST_F16] = {"F16", 2},   [FL_ST_BF16] = {"BF16", 2},       [FL_ST_F32] = {"F32", 4},
    [FL_ST_F64] = {"F64", 8},   [FL_ST_F8_E4M3] = {"F8_E4M3", 1}, [FL_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *fl_st_dtype_name(fl_st_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? dtypes[t].name : "?";
}

size_t fl_st_dtype_size(fl_st_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? dtypes[t].size : 0;
}

int fl_st_dtype_is_float(fl_st_dtype t) {
    return t == FL_ST_F16 || t == FL_ST_BF16 || t == FL_ST_F32 || t == FL_ST_F64;
}

static int is_integer(fl_st_dtype t) {
    return t <= FL_ST_I64; /* BOOL .. I64 */
}

/* ------------------------------------------------------------------------------------------ */
/* JSON subset                                                                                 */

typedef struct {
    const char *start, *p, *end;
    const char *what; /* the first error, for the message */
} json;

static int js_fail(json *j, const char *what) {
    if (!j->what) j->what = what;
    return 0;
}

static void js_ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int js_eat(json *j, char c) {
    js_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15) return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* Writes cp as UTF-8 into u (if non-NULL); returns the byte count. */
static size_t utf8_put(unsigned cp, unsigned char *u) {
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (u) memcpy(u, b, k);
    return k;
}

/* Parses a string into a malloc'd NUL-terminated UTF-8 copy (*out; NULL to only skip).
 * Rejects raw control characters, bad escapes, lone surrogates and "\u0000". */
static int js_string(json *j, char **out) {
    if (out) *out = NULL;
    if (!js_eat(j, '"')) return js_fail(j, "expected a string");
    /* The decoded string is never longer than the encoded one. */
    const char *q = j->p;
    while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end) return js_fail(j, "unterminated string");
    char *s = out ? malloc((size_t)(q - j->p) + 1) : NULL;
    if (out && !s) return js_fail(j, "out of memory");
    size_t n = 0;
    while (*j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) goto bad;
        if (c != '\\') {
            if (s) s[n] = (char)c;
            n++;
            continue;
        }
        char e = *j->p++; /* in bounds: the scan above saw the closing quote after it */
        unsigned cp;
        switch (e) {
        case '"':
            cp = '"';
            break;
        case '\\':
            cp = '\\';
            break;
        case '/':
            cp = '/';
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (!hex4(j, &cp)) goto bad;
            if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') goto bad;
                j->p += 2;
                if (!hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) goto bad;
            break;
        default:
            goto bad;
        }
        /* UTF-8 of cp is never longer than its escape (2 bytes for "\x", 6 or 12 for u). */
        n += utf8_put(cp, s ? (unsigned char *)s + n : NULL);
    }
    j->p++; /* closing quote */
    if (s) {
        s[n] = '\0';
        *out = s;
    }
    return 1;
bad:
    free(s);
    return js_fail(j, "invalid string or escape");
}

/* An integer: -?(0|[1-9][0-9]*), no fraction or exponent, within int64. */
static int js_int(json *j, int64_t *v) {
    js_ws(j);
    int neg = 0;
    if (j->p < j->end && *j->p == '-') neg = 1, j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return js_fail(j, "expected an integer");
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return js_fail(j, "integer with a leading zero");
    uint64_t u = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (u > (UINT64_MAX - d) / 10) return js_fail(j, "integer out of range");
        u = u * 10 + d;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return js_fail(j, "expected an integer, found a fraction");
    if (u > (uint64_t)INT64_MAX + (uint64_t)neg) return js_fail(j, "integer out of range");
    *v = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 1;
}

/* Skips any value (objects, arrays, strings, numbers, true/false/null) up to a nesting depth. */
static int js_skip(json *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return js_fail(j, "nested too deeply");
    js_ws(j);
    if (j->p >= j->end) return js_fail(j, "unexpected end");
    char c = *j->p;
    if (c == '"') return js_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (js_eat(j, close)) return 1;
        do {
            if (c == '{' && (!js_string(j, NULL) || !js_eat(j, ':')))
                return js_fail(j, "expected \"key\":");
            if (!js_skip(j, depth + 1)) return 0;
        } while (js_eat(j, ','));
        return js_eat(j, close) ? 1 : js_fail(j, "expected ',' or a closing bracket");
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
            j->p += n;
            return 1;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* A number we do not interpret: digits, sign, fraction, exponent. */
        while (j->p < j->end && strchr("+-0123456789.eE", *j->p) && *j->p) j->p++;
        return 1;
    }
    return js_fail(j, "unexpected character");
}

/* ------------------------------------------------------------------------------------------ */
/* header                                                                                      */

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* One tensor's {"dtype":..,"shape":[..],"data_offsets":[b,e]}; fills t (name set by caller). */
static int parse_entry(json *j, fl_st_tensor *t, int64_t off[2]) {
    int have = 0; /* bits: dtype 1, shape 2, offsets 4 */
    if (!js_eat(j, '{')) return js_fail(j, "a tensor entry is not an object");
    if (js_eat(j, '}')) return js_fail(j, "a tensor entry is empty");
    do {
        char *key;
        if (!js_string(j, &key)) return 0;
        int ok = js_eat(j, ':');
        if (ok && strcmp(key, "dtype") == 0) {
            char *d;
            ok = js_string(j, &d);
            if (ok) {
                int found = 0;
                for (int i = 0; i < N_DTYPES; i++) {
                    if (strcmp(d, dtypes[i].name) == 0) t->dtype = (fl_st_dtype)i, found = 1;
                }
                free(d);
                if (!found) ok = js_fail(j, "unknown dtype");
            }
            have |= 1;
        } else if (ok && strcmp(key, "shape") == 0) {
            ok = js_eat(j, '[') || js_fail(j, "shape is not an array");
            t->ndim = 0;
            if (ok && !js_eat(j, ']')) {
                do {
                    if (t->ndim == FL_ST_MAX_DIMS) {
                        ok = js_fail(j, "shape has too many dims");
                        break;
                    }
                    ok = js_int(j, &t->shape[t->ndim]);
                    if (ok && t->shape[t->ndim] < 0) ok = js_fail(j, "negative dimension");
                    t->ndim++;
                } while (ok && js_eat(j, ','));
                if (ok && !js_eat(j, ']')) ok = js_fail(j, "expected ']' after the shape");
            }
            have |= 2;
        } else if (ok && strcmp(key, "data_offsets") == 0) {
            ok = (js_eat(j, '[') || js_fail(j, "data_offsets is not an array")) &&
                 js_int(j, &off[0]) &&
                 (js_eat(j, ',') || js_fail(j, "data_offsets is not [begin, end]")) &&
                 js_int(j, &off[1]) &&
                 (js_eat(j, ']') || js_fail(j, "data_offsets is not [begin, end]"));
            have |= 4;
        } else if (ok) {
            ok = js_skip(j, 2);
        } else {
            js_fail(j, "expected ':'");
        }
        free(key);
        if (!ok) return 0;
    } while (js_eat(j, ','));
    if (!js_eat(j, '}')) return js_fail(j, "expected ',' or '}' in a tensor entry");
    if (have != 7) return js_fail(j, "a tensor entry lacks dtype, shape or data_offsets");
    return 1;
}

static int parse_metadata(json *j, fl_safetensors *st) {
    if (!js_eat(j, '{')) return js_fail(j, "__metadata__ is not an object");
    if (js_eat(j, '}')) return 1;
    do {
        char *k = NULL, *v = NULL;
        if (!js_string(j, &k) || !js_eat(j, ':') || !js_string(j, &v)) {
            free(k);
            free(v);
            return js_fail(j, "__metadata__ must map strings to strings");
        }
        char **grown = realloc(st->meta, (size_t)(st->n_meta + 1) * 2 * sizeof *grown);
        if (!grown) {
            free(k);
            free(v);
            return js_fail(j, "out of memory");
        }
        st->meta = grown;
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
    } while (js_eat(j, ','));
    return js_eat(j, '}') || js_fail(j, "expected ',' or '}' in __metadata__");
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const fl_st_tensor *const *)a)->name, (*(const fl_st_tensor *const *)b)->name);
}

/* Parses and validates the whole header; on failure err says what and where. */
static fl_status parse_header(fl_safetensors *st, const char *text, size_t len, fl_err *err) {
    json j = {text, text, text + len, NULL};
    char *name = NULL;
    if (!js_eat(&j, '{')) {
        js_fail(&j, "the header is not a JSON object");
        goto bad;
    }
    if (!js_eat(&j, '}')) {
        do {
            if (!js_string(&j, &name)) goto bad;
            if (!js_eat(&j, ':')) {
                js_fail(&j, "expected ':'");
                goto bad;
            }
            if (strcmp(name, "__metadata__") == 0) {
                if (!parse_metadata(&j, st)) goto bad;
                free(name);
                name = NULL;
                continue;
            }
            if (st->n == st->cap) {
                int cap = st->cap ? 2 * st->cap : 64;
                fl_st_tensor *grown = realloc(st->tensors, (size_t)cap * sizeof *grown);
                if (!grown) return fl_fail(err, FL_ENOMEM, "%s: out of memory", st->path);
                st->tensors = grown;
                st->cap = cap;
            }
            fl_st_tensor *t = &st->tensors[st->n];
            memset(t, 0, sizeof *t);
            int64_t off[2];
            if (!parse_entry(&j, t, off)) goto bad;
            t->name = name; /* owned by st from here */
            name = NULL;
            st->n++;

            size_t numel = 1, bytes;
            for (int i = 0; i < t->ndim; i++) {
                if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel)) goto big;
            }
            if (__builtin_mul_overflow(numel, dtypes[t->dtype].size, &bytes)) goto big;
            t->numel = numel;
            t->nbytes = bytes;
            if (off[0] < 0 || off[1] < off[0] || (uint64_t)off[1] > st->data_len) {
                return fl_fail(err, FL_EFORMAT,
                               "%s: tensor '%s' has data_offsets [%" PRId64 ", %" PRId64
                               "], reversed or past the %zu data bytes",
                               st->path, t->name, off[0], off[1], st->data_len);
            }
            if ((uint64_t)(off[1] - off[0]) != bytes) {
                char sh[160];
                fmt_shape(sh, sizeof sh, t->ndim, t->shape);
                return fl_fail(err, FL_EFORMAT,
                               "%s: tensor '%s' is %s %s (%zu bytes) but its data_offsets span "
                               "%" PRId64 " bytes",
                               st->path, t->name, dtypes[t->dtype].name, sh, bytes,
                               off[1] - off[0]);
            }
            t->data = st->data + off[0];
            continue;
        big:
            return fl_fail(err, FL_EFORMAT, "%s: tensor '%s' has a shape too large to address",
                           st->path, t->name);
        } while (js_eat(&j, ','));
        if (!js_eat(&j, '}')) {
            js_fail(&j, "expected ',' or '}'");
            goto bad;
        }
    }
    js_ws(&j);
    if (j.p != j.end) {
        js_fail(&j, "text after the header object");
        goto bad;
    }

    st->sorted = malloc((size_t)(st->n ? st->n : 1) * sizeof *st->sorted);
    if (!st->sorted) return fl_fail(err, FL_ENOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->n; i++) st->sorted[i] = &st->tensors[i];
    qsort(st->sorted, (size_t)st->n, sizeof *st->sorted, by_name);
    for (int i = 1; i < st->n; i++) {
        const char *a = st->sorted[i - 1]->name, *b = st->sorted[i]->name;
        if (strcmp(a, b) == 0)
            return fl_fail(err, FL_EFORMAT, "%s: tensor '%s' appears twice in the header", st->path,
                           a);
    }
    return FL_OK;
bad:
    free(name);
    return fl_fail(err, FL_EFORMAT, "%s: bad JSON header (at header byte %zu): %s", st->path,
                   (size_t)(j.p - j.start), j.what ? j.what : "syntax error");
}

/* ------------------------------------------------------------------------------------------ */
/* open, look up, convert                                                                      */

void fl_safetensors_close(fl_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    if (st->map) munmap(st->map, st->map_len);
    free(st->tensors);
    free(st->sorted);
    free(st->meta);
    free(st->path);
    free(st);
}

fl_status fl_safetensors_open(fl_safetensors **out, const char *path, fl_err *err) {
    fl_status s = FL_OK;
    int fd = -1;
    *out = NULL;
    fl_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s = fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                    strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = fl_fail(err, FL_EIO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 8) {
        s = fl_fail(err, FL_EFORMAT, "%s: too short for a safetensors file (%lld bytes)", path,
                    (long long)sb.st_size);
        goto fail;
    }
    st->map_len = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        s = fl_fail(err, FL_EIO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;

    const unsigned char *b = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > st->map_len - 8) {
        s = fl_fail(err, FL_EFORMAT,
                    "%s: the header length %llu runs past the end of the file (%zu bytes)", path,
                    (unsigned long long)hlen, st->map_len);
        goto fail;
    }
    st->data = b + 8 + hlen;
    st->data_len = st->map_len - 8 - (size_t)hlen;
    s = parse_header(st, (const char *)b + 8, (size_t)hlen, err);
    if (s != FL_OK) goto fail;
    *out = st;
    return FL_OK;
fail:
    if (fd >= 0) close(fd);
    fl_safetensors_close(st);
    return s;
}

int fl_safetensors_count(const fl_safetensors *st) {
    return st->n;
}

const fl_st_tensor *fl_safetensors_tensor(const fl_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

static int name_vs_tensor(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const fl_st_tensor *const *)elem)->name);
}

const fl_st_tensor *fl_safetensors_find(const fl_safetensors *st, const char *name) {
    if (st->n == 0) return NULL;
    const fl_st_tensor *const *hit =
        bsearch(name, st->sorted, (size_t)st->n, sizeof *st->sorted, name_vs_tensor);
    return hit ? *hit : NULL;
}

const char *fl_safetensors_metadata(const fl_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

/* IEEE half to float, subnormals and infinities included. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = h >> 10 & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13;
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3FF) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

fl_status fl_safetensors_read_f32(const fl_safetensors *st, const fl_st_tensor *t, float *out,
                                  fl_err *err) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case FL_ST_F32:
        memcpy(out, p, t->numel * 4);
        return FL_OK;
    case FL_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return FL_OK;
    case FL_ST_F16:
    case FL_ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (t->dtype == FL_ST_F16) {
                out[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&out[i], &bits, 4);
            }
        }
        return FL_OK;
    default:
        return fl_fail(err, FL_EUNSUPPORTED, "%s: tensor '%s' has dtype %s, not a float type",
                       st->path, t->name, fl_st_dtype_name(t->dtype));
    }
}

fl_status fl_safetensors_read_i64(const fl_safetensors *st, const fl_st_tensor *t, int64_t *out,
                                  fl_err *err) {
    if (!is_integer(t->dtype))
        return fl_fail(err, FL_EUNSUPPORTED, "%s: tensor '%s' has dtype %s, not an integer type",
                       st->path, t->name, fl_st_dtype_name(t->dtype));
    size_t sz = dtypes[t->dtype].size;
    int is_signed = t->dtype == FL_ST_I8 || t->dtype == FL_ST_I16 || t->dtype == FL_ST_I32 ||
                    t->dtype == FL_ST_I64;
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        uint64_t u = 0;
        memcpy(&u, p + i * sz, sz); /* little-endian host: low bytes first */
        if (is_signed && sz < 8 && (u >> (8 * sz - 1) & 1)) u |= ~0ull << (8 * sz);
        if (t->dtype == FL_ST_BOOL) u = u != 0;
        if (t->dtype == FL_ST_U64 && u > (uint64_t)INT64_MAX)
            return fl_fail(err, FL_EFORMAT, "%s: tensor '%s' element %zu does not fit in int64",
                           st->path, t->name, i);
        out[i] = (int64_t)u;
    }
    return FL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* model load                                                                                  */

static int skipped(const char *name, const char *const *skip) {
    for (; skip && *skip; skip++)
        if (strncmp(name, *skip, strlen(*skip)) == 0) return 1;
    return 0;
}

fl_status fl_safetensors_load_model_skip(fl_model *m, const char *path, const char *const *skip,
                                         fl_err *err) {
    fl_safetensors *st = NULL;
    float *buf = NULL;
    const fl_st_tensor **found = NULL;
    const fl_graph *g = fl_model_graph(m);
    fl_status s = fl_safetensors_open(&st, path, err);
    if (s != FL_OK) return s;
    found = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof *found);
    if (!found) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }

    /* Check everything before touching the model, so a bad file leaves it unchanged. */
    size_t most = 1;
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *p = &g->params[i];
        if (skipped(p->name, skip)) continue;
        const fl_st_tensor *t = fl_safetensors_find(st, p->name);
        char want[160], have[160];
        fmt_shape(want, sizeof want, p->ndim, p->shape);
        if (!t) {
            s = fl_fail(err, FL_ENOTFOUND, "%s: tensor '%s' %s is missing", path, p->name, want);
            goto fail;
        }
        if (!fl_st_dtype_is_float(t->dtype)) {
            s = fl_fail(err, FL_EFORMAT, "%s: tensor '%s' has dtype %s; the model needs floats",
                        path, p->name, fl_st_dtype_name(t->dtype));
            goto fail;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            fmt_shape(have, sizeof have, t->ndim, t->shape);
            s = fl_fail(err, FL_ESHAPE, "%s: tensor '%s' has shape %s but the model needs %s", path,
                        p->name, have, want);
            goto fail;
        }
        found[i] = t;
        if (t->numel > most) most = t->numel;
    }
    for (int i = 0; i < st->n; i++) {
        const fl_st_tensor *t = &st->tensors[i];
        if (is_integer(t->dtype) || skipped(t->name, skip)) continue;
        if (fl_graph_find_param(g, t->name) < 0) {
            char have[160];
            fmt_shape(have, sizeof have, t->ndim, t->shape);
            s = fl_fail(err, FL_EFORMAT, "%s: tensor '%s' %s %s is not a parameter of the model",
                        path, t->name, fl_st_dtype_name(t->dtype), have);
            goto fail;
        }
    }

    buf = malloc(most * sizeof *buf);
    if (!buf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, most);
        goto fail;
    }
    for (int i = 0; i < g->n_params; i++) {
        if (!found[i]) continue;
        s = fl_safetensors_read_f32(st, found[i], buf, err);
        if (s != FL_OK) goto fail;
        s = fl_model_set_tensor(m, i, buf);
        if (s != FL_OK) {
            fl_fail(err, s, "%s: cannot copy tensor '%s' into the model", path, found[i]->name);
            goto fail;
        }
    }
fail:
    free(buf);
    free(found);
    fl_safetensors_close(st);
    return s;
}

fl_status fl_safetensors_load_model(fl_model *m, const char *path, fl_err *err) {
    return fl_safetensors_load_model_skip(m, path, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* model save                                                                                  */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_put(strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    if (!b->s) {
        b->s = malloc(256);
        if (!b->s) {
            b->oom = 1;
            return;
        }
        b->cap = 256;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * b->cap + (size_t)n + 64;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
}

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void sb_json_str(strbuf *b, const char *s) {
    sb_put(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_put(b, "\\%c", c);
        else if (c < 0x20)
            sb_put(b, "\\u%04x", c);
        else
            sb_put(b, "%c", c);
    }
    sb_put(b, "\"");
}

/* Creates "<path>.tmp.XXXXXX" with O_EXCL (mode 0666 less the umask, like any new file). */
static fl_status tmp_create(const char *path, char **tmp, FILE **f, fl_err *err) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(path) + 12;
    *f = NULL;
    *tmp = malloc(n);
    if (!*tmp) return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                 (uint64_t)(uintptr_t)*tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        char suf[7];
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            suf[i] = abc[(x >> 33) % (sizeof abc - 1)];
        }
        suf[6] = '\0';
        snprintf(*tmp, n, "%s.tmp.%s", path, suf);
        int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) break;
        *f = fdopen(fd, "wb");
        if (!*f) {
            close(fd);
            unlink(*tmp);
            break;
        }
        return FL_OK;
    }
    fl_status st = fl_fail(err, FL_EIO, "%s: cannot create a temporary file next to it: %s", path,
                           strerror(errno));
    free(*tmp);
    *tmp = NULL;
    return st;
}

/* Flushes, fsyncs and renames tmp over path; on failure removes tmp. Frees tmp either way. */
static fl_status tmp_commit(const char *path, char *tmp, FILE *f, fl_err *err) {
    int e = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) e = errno;
    if (fclose(f) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    char *dir = strdup(path); /* make the rename durable; failing here loses nothing */
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        free(dir);
    }
    return FL_OK;
}

fl_status fl_safetensors_save_model(fl_model *m, const char *path, const char *const *metadata,
                                    fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    strbuf h = {0};
    float *buf = NULL;
    char *tmp = NULL;
    FILE *f = NULL;
    fl_status s = FL_OK;

    /* Header: {"__metadata__":{...},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},..}
     * with tensors back to back in graph order. */
    size_t off = 0, most = 1;
    sb_put(&h, "{");
    if (metadata && metadata[0]) {
        sb_put(&h, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                s = fl_fail(err, FL_EINVAL, "%s: metadata key '%s' has no value", path,
                            metadata[i]);
                goto fail;
            }
            sb_put(&h, "%s", i ? "," : "");
            sb_json_str(&h, metadata[i]);
            sb_put(&h, ":");
            sb_json_str(&h, metadata[i + 1]);
        }
        sb_put(&h, "}%s", g->n_params ? "," : "");
    }
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *p = &g->params[i];
        sb_put(&h, "%s", i ? "," : "");
        sb_json_str(&h, p->name);
        sb_put(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < p->ndim; d++) sb_put(&h, "%s%" PRId64, d ? "," : "", p->shape[d]);
        sb_put(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + p->numel * sizeof(float));
        off += p->numel * sizeof(float);
        if (p->numel > most) most = p->numel;
    }
    sb_put(&h, "}");
    while (!h.oom && h.len % 8 != 0) sb_put(&h, " "); /* data starts 8-byte aligned */
    if (h.oom) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    buf = malloc(most * sizeof *buf);
    if (!buf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, most);
        goto fail;
    }

    s = tmp_create(path, &tmp, &f, err);
    if (s != FL_OK) goto fail;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.s, 1, h.len, f) != h.len) goto io;
    for (int i = 0; i < g->n_params; i++) {
        s = fl_model_get_tensor(m, i, buf);
        if (s != FL_OK) {
            fl_fail(err, s, "%s: cannot copy tensor '%s' out of the model", path,
                    g->params[i].name);
            goto fail;
        }
        if (fwrite(buf, sizeof *buf, g->params[i].numel, f) != g->params[i].numel) goto io;
    }
    s = tmp_commit(path, tmp, f, err);
    tmp = NULL;
    f = NULL;
    goto fail; /* shared cleanup; s says how it went */
io:
    s = fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(errno));
fail:
    if (f) fclose(f);
    if (tmp) unlink(tmp);
    free(tmp);
    free(buf);
    free(h.s);
    return s;
}
