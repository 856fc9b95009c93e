/* json_header.h - the JSON subset a safetensors header uses (objects, arrays, strings with
 * escapes, integers), read by a bounded cursor parser and built in a growing buffer. Internal to
 * nn/safetensors.c and crypto/audit*.c (audit log lines); not a JSON library: floats,
 * true/false/null are only ever skipped. */
#ifndef FL_JSON_HEADER_H
#define FL_JSON_HEADER_H

#include <stddef.h>
#include <stdint.h>

/* A cursor over text [start, end). Every parser function returns 1 on success and 0 on failure,
 * having recorded what went wrong in `what` (the first failure wins) with p near the spot. */
typedef struct {
    const char *start, *p, *end;
    const char *what; /* the first error, for the message; NULL while all is well */
} fl__json;

/* Records what (unless an earlier failure was recorded) and returns 0. */
int fl__json_fail(fl__json *j, const char *what);
/* Skips white space (space, tab, CR, LF). */
void fl__json_ws(fl__json *j);
/* Skips white space, then consumes c if it is next; returns whether it did (never records). */
int fl__json_eat(fl__json *j, char c);
/* Parses a string into a malloc'd NUL-terminated UTF-8 copy (*out, the caller frees it; out NULL
 * only skips). Rejects raw control characters, bad escapes, lone surrogates and "\u0000". */
int fl__json_string(fl__json *j, char **out);
/* An integer: -?(0|[1-9][0-9]*), no fraction or exponent, within int64. */
int fl__json_int(fl__json *j, int64_t *v);
/* Skips any value (objects, arrays, strings, numbers, true/false/null); depth is the nesting so
 * far, and more than 32 levels is refused. */
int fl__json_skip(fl__json *j, int depth);

/* A growing text buffer; zero-initialise it, free s when done. After a failed allocation oom is
 * set, later appends do nothing, and the caller must check oom before using s. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} fl__json_buf;

/* Appends printf-formatted text. */
void fl__json_put(fl__json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal: quotes, backslashes and control characters escaped. */
void fl__json_put_str(fl__json_buf *b, const char *s);

#endif
