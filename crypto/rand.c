/* rand.c - CSPRNG bytes and integers over RAND_bytes, wiping over OPENSSL_cleanse, and the shared
 * OpenSSL error translation (see rand.h). Nothing here prints. */
#include "rand.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>

fl_status fl_crypto_fail(fl_err *err, fl_status s, const char *fmt, ...) {
    char what[FL_ERR_LEN / 2], why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "unknown OpenSSL error");
    ERR_clear_error();
    return fl_fail(err, s, "%s: %s", what, why);
}

fl_status fl_rand_bytes(void *buf, size_t n, fl_err *err) {
    unsigned char *p = buf;
    /* RAND_bytes takes an int: large requests go in pieces. */
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < (size_t)INT_MAX ? n - done : (size_t)INT_MAX;
        if (RAND_bytes(p + done, (int)piece) != 1) {
            fl_wipe(buf, n);
            return fl_crypto_fail(err, FL_EBACKEND, "the CSPRNG failed to give %zu bytes", n);
        }
        done += piece;
    }
    return FL_OK;
}

fl_status fl_rand_u64(uint64_t *out, fl_err *err) {
    return fl_rand_bytes(out, sizeof *out, err);
}

fl_status fl_rand_below(uint64_t bound, uint64_t *out, fl_err *err) {
    *out = 0;
    if (bound == 0) return fl_fail(err, FL_EINVAL, "a uniform integer below 0 does not exist");
    /* Values below 2^64 mod bound would make the low residues likelier: draw again. The loop
     * runs more than once with probability < 1/2 for any bound. */
    uint64_t reject_below = (0 - bound) % bound, x;
    do {
        fl_status s = fl_rand_u64(&x, err);
        if (s != FL_OK) return s;
    } while (x < reject_below);
    *out = x % bound;
    return FL_OK;
}

void fl_wipe(void *p, size_t n) {
    if (p && n) OPENSSL_cleanse(p, n);
}

fl_status fl_rand_source(void *ctx, uint8_t *out, size_t n) {
    (void)ctx;
    fl_err err;
    return fl_rand_bytes(out, n, &err);
}
