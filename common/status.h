/* status.h - fedlung's status codes and the caller-owned error buffer.
 * Every library function returns fl_status (0 = OK) and, on failure, writes one sentence
 * into an fl_err the caller owns. It is not a logging facility. */
#ifndef FL_STATUS_H
#define FL_STATUS_H

#include <stddef.h>

/* X-macro: name, value, message. Negative values only; FL_OK is 0. */
#define FL_STATUS_TABLE(X)                  \
    X(FL_OK, 0, "ok")                       \
    X(FL_EINVAL, -1, "invalid argument")    \
    X(FL_ENOMEM, -2, "out of memory")       \
    X(FL_EIO, -3, "input/output error")     \
    X(FL_EFORMAT, -4, "malformed file")     \
    X(FL_ESHAPE, -5, "shape mismatch")      \
    X(FL_ENOTFOUND, -6, "not found")        \
    X(FL_EUNSUPPORTED, -7, "not supported") \
    X(FL_EBACKEND, -8, "backend failure")

typedef enum {
#define FL_STATUS_ENUM(name, value, msg) name = value,
    FL_STATUS_TABLE(FL_STATUS_ENUM)
#undef FL_STATUS_ENUM
} fl_status;

/* Returns a static string describing s; never NULL. */
const char *fl_status_str(fl_status s);

/* A caller-owned buffer for the one-sentence description of the last failure. */
#define FL_ERR_LEN 512
typedef struct {
    char msg[FL_ERR_LEN];
} fl_err;

/* Formats into err (if non-NULL) and returns s, so callers can `return fl_fail(...)`. */
fl_status fl_fail(fl_err *err, fl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
