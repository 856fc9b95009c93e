/* safetensors.c - a memory-mapped safetensors reader (its header parsed by json_header.c, the
 * subset of JSON the format uses), validation of every tensor's span, model load and save.
 * Not a converter: dtypes other than the float and integer ones are listed, never read. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/atomic.h"
#include "json_header.h"

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
/* header                                                                                      */

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* One tensor's {"dtype":..,"shape":[..],"data_offsets":[b,e]}; fills t (name set by caller). */
static int parse_entry(fl__json *j, fl_st_tensor *t, int64_t off[2]) {
    int have = 0; /* bits: dtype 1, shape 2, offsets 4 */
    if (!fl__json_eat(j, '{')) return fl__json_fail(j, "a tensor entry is not an object");
    if (fl__json_eat(j, '}')) return fl__json_fail(j, "a tensor entry is empty");
    do {
        char *key;
        if (!fl__json_string(j, &key)) return 0;
        int ok = fl__json_eat(j, ':');
        if (ok && strcmp(key, "dtype") == 0) {
            char *d;
            ok = fl__json_string(j, &d);
            if (ok) {
                int found = 0;
                for (int i = 0; i < N_DTYPES; i++) {
                    if (strcmp(d, dtypes[i].name) == 0) t->dtype = (fl_st_dtype)i, found = 1;
                }
                free(d);
                if (!found) ok = fl__json_fail(j, "unknown dtype");
            }
            have |= 1;
        } else if (ok && strcmp(key, "shape") == 0) {
            ok = fl__json_eat(j, '[') || fl__json_fail(j, "shape is not an array");
            t->ndim = 0;
            if (ok && !fl__json_eat(j, ']')) {
                do {
                    if (t->ndim == FL_ST_MAX_DIMS) {
                        ok = fl__json_fail(j, "shape has too many dims");
                        break;
                    }
                    ok = fl__json_int(j, &t->shape[t->ndim]);
                    if (ok && t->shape[t->ndim] < 0) ok = fl__json_fail(j, "negative dimension");
                    t->ndim++;
                } while (ok && fl__json_eat(j, ','));
                if (ok && !fl__json_eat(j, ']'))
                    ok = fl__json_fail(j, "expected ']' after the shape");
            }
            have |= 2;
        } else if (ok && strcmp(key, "data_offsets") == 0) {
            ok = (fl__json_eat(j, '[') || fl__json_fail(j, "data_offsets is not an array")) &&
                 fl__json_int(j, &off[0]) &&
                 (fl__json_eat(j, ',') || fl__json_fail(j, "data_offsets is not [begin, end]")) &&
                 fl__json_int(j, &off[1]) &&
                 (fl__json_eat(j, ']') || fl__json_fail(j, "data_offsets is not [begin, end]"));
            have |= 4;
        } else if (ok) {
            ok = fl__json_skip(j, 2);
        } else {
            fl__json_fail(j, "expected ':'");
        }
        free(key);
        if (!ok) return 0;
    } while (fl__json_eat(j, ','));
    if (!fl__json_eat(j, '}')) return fl__json_fail(j, "expected ',' or '}' in a tensor entry");
    if (have != 7) return fl__json_fail(j, "a tensor entry lacks dtype, shape or data_offsets");
    return 1;
}

static int parse_metadata(fl__json *j, fl_safetensors *st) {
    if (!fl__json_eat(j, '{')) return fl__json_fail(j, "__metadata__ is not an object");
    if (fl__json_eat(j, '}')) return 1;
    do {
        char *k = NULL, *v = NULL;
        if (!fl__json_string(j, &k) || !fl__json_eat(j, ':') || !fl__json_string(j, &v)) {
            free(k);
            free(v);
            return fl__json_fail(j, "__metadata__ must map strings to strings");
        }
        char **grown = realloc(st->meta, (size_t)(st->n_meta + 1) * 2 * sizeof *grown);
        if (!grown) {
            free(k);
            free(v);
            return fl__json_fail(j, "out of memory");
        }
        st->meta = grown;
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
    } while (fl__json_eat(j, ','));
    return fl__json_eat(j, '}') || fl__json_fail(j, "expected ',' or '}' in __metadata__");
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const fl_st_tensor *const *)a)->name, (*(const fl_st_tensor *const *)b)->name);
}

/* Parses and validates the whole header; on failure err says what and where. */
static fl_status parse_header(fl_safetensors *st, const char *text, size_t len, fl_err *err) {
    fl__json j = {text, text, text + len, NULL};
    char *name = NULL;
    if (!fl__json_eat(&j, '{')) {
        fl__json_fail(&j, "the header is not a JSON object");
        goto bad;
    }
    if (!fl__json_eat(&j, '}')) {
        do {
            if (!fl__json_string(&j, &name)) goto bad;
            if (!fl__json_eat(&j, ':')) {
                fl__json_fail(&j, "expected ':'");
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
        } while (fl__json_eat(&j, ','));
        if (!fl__json_eat(&j, '}')) {
            fl__json_fail(&j, "expected ',' or '}'");
            goto bad;
        }
    }
    fl__json_ws(&j);
    if (j.p != j.end) {
        fl__json_fail(&j, "text after the header object");
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

fl_status fl_safetensors_save_model(fl_model *m, const char *path, const char *const *metadata,
                                    fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    fl__json_buf h = {0};
    float *buf = NULL;
    fl_atomic_file af = {0};
    fl_status s = FL_OK;

    /* Header: {"__metadata__":{...},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},..}
     * with tensors back to back in graph order. */
    size_t off = 0, most = 1;
    fl__json_put(&h, "{");
    if (metadata && metadata[0]) {
        fl__json_put(&h, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                s = fl_fail(err, FL_EINVAL, "%s: metadata key '%s' has no value", path,
                            metadata[i]);
                goto fail;
            }
            fl__json_put(&h, "%s", i ? "," : "");
            fl__json_put_str(&h, metadata[i]);
            fl__json_put(&h, ":");
            fl__json_put_str(&h, metadata[i + 1]);
        }
        fl__json_put(&h, "}%s", g->n_params ? "," : "");
    }
    for (int i = 0; i < g->n_params; i++) {
        const fl_param *p = &g->params[i];
        fl__json_put(&h, "%s", i ? "," : "");
        fl__json_put_str(&h, p->name);
        fl__json_put(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < p->ndim; d++) fl__json_put(&h, "%s%" PRId64, d ? "," : "", p->shape[d]);
        fl__json_put(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + p->numel * sizeof(float));
        off += p->numel * sizeof(float);
        if (p->numel > most) most = p->numel;
    }
    fl__json_put(&h, "}");
    while (!h.oom && h.len % 8 != 0) fl__json_put(&h, " "); /* data starts 8-byte aligned */
    if (h.oom) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    buf = malloc(most * sizeof *buf);
    if (!buf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu floats", path, most);
        goto fail;
    }

    s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) goto fail;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    if (fwrite(len8, 1, 8, af.f) != 8 || fwrite(h.s, 1, h.len, af.f) != h.len) goto io;
    for (int i = 0; i < g->n_params; i++) {
        s = fl_model_get_tensor(m, i, buf);
        if (s != FL_OK) {
            fl_fail(err, s, "%s: cannot copy tensor '%s' out of the model", path,
                    g->params[i].name);
            goto fail;
        }
        if (fwrite(buf, sizeof *buf, g->params[i].numel, af.f) != g->params[i].numel) goto io;
    }
    s = fl_atomic_commit(&af, err); /* releases af either way */
    goto fail;                      /* shared cleanup; s says how it went */
io:
    s = fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(errno));
fail:
    fl_atomic_abort(&af);
    free(buf);
    free(h.s);
    return s;
}
