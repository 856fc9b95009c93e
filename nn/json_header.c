/* json_header.c - the JSON subset of safetensors headers (see json_header.h): a bounded parser
 * for objects, arrays, strings with escapes and integers, and a growing buffer to build one.
 * Not a JSON library: floats, true/false/null are accepted only where they are skipped. */
#include "json_header.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

/* ------------------------------------------------------------------------------------------ */
/* parsing                                                                                     */

int fl__json_fail(fl__json *j, const char *what) {
    if (!j->what) j->what = what;
    return 0;
}

void fl__json_ws(fl__json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

int fl__json_eat(fl__json *j, char c) {
    fl__json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int hex4(fl__json *j, unsigned *v) {
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
int fl__json_string(fl__json *j, char **out) {
    if (out) *out = NULL;
    if (!fl__json_eat(j, '"')) return fl__json_fail(j, "expected a string");
    /* The decoded string is never longer than the encoded one. */
    const char *q = j->p;
    while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end) return fl__json_fail(j, "unterminated string");
    char *s = out ? malloc((size_t)(q - j->p) + 1) : NULL;
    if (out && !s) return fl__json_fail(j, "out of memory");
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
    return fl__json_fail(j, "invalid string or escape");
}

/* An integer: -?(0|[1-9][0-9]*), no fraction or exponent, within int64. */
int fl__json_int(fl__json *j, int64_t *v) {
    fl__json_ws(j);
    int neg = 0;
    if (j->p < j->end && *j->p == '-') neg = 1, j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return fl__json_fail(j, "expected an integer");
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return fl__json_fail(j, "integer with a leading zero");
    uint64_t u = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (u > (UINT64_MAX - d) / 10) return fl__json_fail(j, "integer out of range");
        u = u * 10 + d;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return fl__json_fail(j, "expected an integer, found a fraction");
    if (u > (uint64_t)INT64_MAX + (uint64_t)neg) return fl__json_fail(j, "integer out of range");
    *v = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 1;
}

/* Skips any value (objects, arrays, strings, numbers, true/false/null) up to a nesting depth. */
int fl__json_skip(fl__json *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return fl__json_fail(j, "nested too deeply");
    fl__json_ws(j);
    if (j->p >= j->end) return fl__json_fail(j, "unexpected end");
    char c = *j->p;
    if (c == '"') return fl__json_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (fl__json_eat(j, close)) return 1;
        do {
            if (c == '{' && (!fl__json_string(j, NULL) || !fl__json_eat(j, ':')))
                return fl__json_fail(j, "expected \"key\":");
            if (!fl__json_skip(j, depth + 1)) return 0;
        } while (fl__json_eat(j, ','));
        return fl__json_eat(j, close) ? 1 : fl__json_fail(j, "expected ',' or a closing bracket");
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
    return fl__json_fail(j, "unexpected character");
}

/* ------------------------------------------------------------------------------------------ */
/* building                                                                                    */

void fl__json_put(fl__json_buf *b, const char *fmt, ...) {
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
void fl__json_put_str(fl__json_buf *b, const char *s) {
    fl__json_put(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fl__json_put(b, "\\%c", c);
        else if (c < 0x20)
            fl__json_put(b, "\\u%04x", c);
        else
            fl__json_put(b, "%c", c);
    }
    fl__json_put(b, "\"");
}
