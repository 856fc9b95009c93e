/* status.c - status strings and error formatting. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *fl_status_str(fl_status s) {
    switch (s) {
#define FL_STATUS_CASE(name, value, msg) \
    case name:                           \
        return msg;
        FL_STATUS_TABLE(FL_STATUS_CASE)
#undef FL_STATUS_CASE
    }
    return "unknown status";
}

fl_status fl_fail(fl_err *err, fl_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}
