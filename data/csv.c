/* csv.c - the CSV/TSV reader: the file is read whole, records are parsed on demand into one
 * scratch buffer (quotes removed, fields NUL-terminated) and rewinding just resets the cursor.
 * Not a streaming parser: a table is expected to fit in memory next to what is built from it. */
#include "csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fl_csv {
    char *path;
    char *file;      /* the file as read */
    const char *buf; /* the file after its byte order mark, n bytes */
    size_t n;
    char delim;
    size_t pos, data_pos; /* cursor; the first byte after the header */
    long line, data_line; /* line of the cursor; the line after the header */
    /* scratch of the current record: field i is text + off[i] */
    char *text;
    size_t text_len, text_cap;
    size_t *off;
    char **field;
    int nf, cap;
    fl_csv_record header; /* owns its fields: one block, header.field[0] */
};

static int text_put(fl_csv *r, char c) {
    if (r->text_len == r->text_cap) {
        size_t cap = r->text_cap ? 2 * r->text_cap : 256;
        char *t = realloc(r->text, cap);
        if (!t) return -1;
        r->text = t;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return 0;
}

static int field_start(fl_csv *r) {
    if (r->nf == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        size_t *off = realloc(r->off, (size_t)cap * sizeof *off);
        if (off) r->off = off;
        char **field = off ? realloc(r->field, (size_t)cap * sizeof *field) : NULL;
        if (!field) return -1;
        r->field = field;
        r->cap = cap;
    }
    r->off[r->nf++] = r->text_len;
    return 0;
}

static fl_status nomem(const fl_csv *r, fl_err *err) {
    return fl_fail(err, FL_ENOMEM, "%s:%ld: out of memory reading a record", r->path, r->line);
}

static fl_status nul_byte(const fl_csv *r, fl_err *err) {
    return fl_fail(err, FL_EFORMAT, "%s:%ld: a NUL byte; this is a binary file, not a text table",
                   r->path, r->line);
}

/* Parses the record at the cursor (which is before the end) into the scratch fields. *blank
 * says whether it held nothing but spaces, tabs and delimiters (no quoted field). Returns FL_OK
 * or a failure naming the line. */
static fl_status parse_record(fl_csv *r, int *blank, fl_err *err) {
    const char *b = r->buf;
    const size_t n = r->n;
    const char d = r->delim;
    r->nf = 0;
    r->text_len = 0;
    *blank = 1;
    for (;;) {
        if (field_start(r) < 0) return nomem(r, err);
        if (r->pos < n && b[r->pos] == '"') {
            long opened = r->line;
            *blank = 0;
            r->pos++;
            for (;;) {
                if (r->pos >= n)
                    return fl_fail(err, FL_EFORMAT,
                                   "%s:%ld: field %d opens a quote that is never closed", r->path,
                                   opened, r->nf);
                char c = b[r->pos++];
                if (c == '"') {
                    if (r->pos < n && b[r->pos] == '"')
                        r->pos++; /* "" is one quote */
                    else
                        break;
                } else if (c == '\0') {
                    return nul_byte(r, err);
                } else if (c == '\n') {
                    r->line++;
                }
                if (text_put(r, c) < 0) return nomem(r, err);
            }
            if (r->pos < n && b[r->pos] == '\r' && (r->pos + 1 == n || b[r->pos + 1] == '\n'))
                r->pos++;
            if (r->pos < n && b[r->pos] != d && b[r->pos] != '\n')
                return fl_fail(err, FL_EFORMAT,
                               "%s:%ld: field %d has text after its closing quote (a quote inside "
                               "a quoted field is written \"\")",
                               r->path, r->line, r->nf);
        } else {
            while (r->pos < n) {
                char c = b[r->pos];
                if (c == d || c == '\n') break;
                r->pos++;
                if (c == '\0') return nul_byte(r, err);
                if (c == '\r' && (r->pos == n || b[r->pos] == '\n')) continue; /* CRLF */
                if (c != ' ' && c != '\t') *blank = 0;
                if (text_put(r, c) < 0) return nomem(r, err);
            }
        }
        if (text_put(r, '\0') < 0) return nomem(r, err);
        if (r->pos >= n) break;
        if (b[r->pos++] == '\n') {
            r->line++;
            break;
        }
        /* a delimiter: another field follows, empty if the file ends here */
    }
    for (int i = 0; i < r->nf; i++) r->field[i] = r->text + r->off[i];
    return FL_OK;
}

static fl_status read_file(const char *path, char **buf, size_t *n, fl_err *err) {
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *n = 0;
    if (!f)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    fl_status s = FL_OK;
    while (b) {
        if (len == cap) {
            char *t = cap < ((size_t)-1) / 2 ? realloc(b, cap * 2) : NULL;
            if (!t) {
                free(b);
                b = NULL;
                break;
            }
            b = t;
            cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!b)
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory reading the file", path);
    else if (ferror(f))
        s = fl_fail(err, FL_EIO, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
    fclose(f);
    if (s) {
        free(b);
        return s;
    }
    *buf = b;
    *n = len;
    return FL_OK;
}

fl_status fl_csv_open(fl_csv **out, const char *path, char delim, fl_err *err) {
    fl_status s;
    int blank;
    *out = NULL;
    if (delim != 0 && delim != ',' && delim != '\t')
        return fl_fail(err, FL_EINVAL, "%s: the delimiter must be a comma or a tab", path);
    fl_csv *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    char *file;
    size_t n;
    if ((s = read_file(path, &file, &n, err))) goto fail;
    r->file = file;
    r->buf = file;
    r->n = n;
    if (n >= 3 && memcmp(file, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 byte order mark */
        r->buf += 3;
        r->n -= 3;
    }
    const char *nul = memchr(r->buf, '\0', r->n); /* a binary file: say so before parsing */
    if (nul) {
        r->line = 1;
        for (const char *q = r->buf; q < nul; q++) r->line += *q == '\n';
        s = nul_byte(r, err);
        goto fail;
    }
    size_t i = 0;
    while (i < r->n && strchr(" \t\r\n", r->buf[i])) i++;
    if (i == r->n) {
        s = fl_fail(err, FL_EFORMAT, "%s: the file is empty", path);
        goto fail;
    }
    if (delim == 0) {
        const char *nl = memchr(r->buf, '\n', r->n);
        size_t hl = nl ? (size_t)(nl - r->buf) : r->n;
        delim = memchr(r->buf, '\t', hl) ? '\t' : ',';
    }
    r->delim = delim;
    r->line = 1;
    if ((s = parse_record(r, &blank, err))) goto fail;
    if (blank) {
        s = fl_fail(err, FL_EFORMAT, "%s:1: the first line is empty (it must be the header)", path);
        goto fail;
    }
    /* Keep the header in a block of its own: n pointers followed by the text. */
    size_t ptrs = (size_t)r->nf * sizeof(char *);
    char **hf = malloc(ptrs + r->text_len);
    if (!hf) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy((char *)hf + ptrs, r->text, r->text_len);
    for (int k = 0; k < r->nf; k++) hf[k] = (char *)hf + ptrs + r->off[k];
    r->header = (fl_csv_record){r->nf, hf, 1};
    r->data_pos = r->pos;
    r->data_line = r->line;
    *out = r;
    return FL_OK;
fail:
    fl_csv_free(r);
    return s;
}

int fl_csv_next(fl_csv *r, fl_csv_record *rec, fl_err *err) {
    long first_blank = 0;
    while (r->pos < r->n) {
        long line = r->line;
        int blank;
        fl_status s = parse_record(r, &blank, err);
        if (s) return s;
        if (blank) {
            if (!first_blank) first_blank = line;
            continue;
        }
        if (first_blank)
            return fl_fail(err, FL_EFORMAT,
                           "%s:%ld: an empty row inside the table (empty rows may only end the "
                           "file)",
                           r->path, first_blank);
        if (r->nf != r->header.n)
            return fl_fail(err, FL_EFORMAT, "%s:%ld: %d field%s, the header has %d", r->path, line,
                           r->nf, r->nf == 1 ? "" : "s", r->header.n);
        *rec = (fl_csv_record){r->nf, r->field, line};
        return 1;
    }
    return 0;
}

void fl_csv_rewind(fl_csv *r) {
    r->pos = r->data_pos;
    r->line = r->data_line;
}

const fl_csv_record *fl_csv_header(const fl_csv *r) {
    return &r->header;
}

char fl_csv_delim(const fl_csv *r) {
    return r->delim;
}

const char *fl_csv_path(const fl_csv *r) {
    return r->path;
}

void fl_csv_free(fl_csv *r) {
    if (!r) return;
    free(r->file);
    free(r->path);
    free(r->text);
    free(r->off);
    free(r->field);
    free(r->header.field);
    free(r);
}
