/* hash.c - SHA-256 over OpenSSL's EVP and hex encoding (see hash.h). OpenSSL failures become
 * FL_EBACKEND with its error queue cleared; nothing here prints. */
#include "hash.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

fl_status fl_sha256(const void *data, size_t n, uint8_t out[FL_SHA256_LEN]) {
    fl_sha256_ctx h;
    fl_status s = fl_sha256_init(&h);
    if (s == FL_OK) s = fl_sha256_update(&h, data, n);
    if (s == FL_OK) s = fl_sha256_final(&h, out);
    fl_sha256_destroy(&h);
    return s;
}

fl_status fl_sha256_hex(const void *data, size_t n, char hex[FL_SHA256_HEX]) {
    uint8_t md[FL_SHA256_LEN];
    hex[0] = '\0';
    fl_status s = fl_sha256(data, n, md);
    if (s == FL_OK) fl_hex_encode(md, sizeof md, hex);
    return s;
}

static fl_status backend_failure(fl_sha256_ctx *h) {
    ERR_clear_error();
    fl_sha256_destroy(h);
    return FL_EBACKEND;
}

fl_status fl_sha256_init(fl_sha256_ctx *h) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    h->ctx = ctx;
    if (!ctx) {
        ERR_clear_error();
        return FL_ENOMEM;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) return backend_failure(h);
    return FL_OK;
}

fl_status fl_sha256_update(fl_sha256_ctx *h, const void *data, size_t n) {
    if (!h->ctx) return FL_EINVAL;
    if (n == 0) return FL_OK;
    if (EVP_DigestUpdate(h->ctx, data, n) != 1) return backend_failure(h);
    return FL_OK;
}

fl_status fl_sha256_final(fl_sha256_ctx *h, uint8_t out[FL_SHA256_LEN]) {
    if (!h->ctx) return FL_EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != FL_SHA256_LEN)
        return backend_failure(h);
    memcpy(out, md, FL_SHA256_LEN);
    fl_sha256_destroy(h);
    return FL_OK;
}

void fl_sha256_destroy(fl_sha256_ctx *h) {
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void fl_hex_encode(const uint8_t *bytes, size_t n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n] = '\0';
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

fl_status fl_hex_decode(const char *hex, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]);
        if (hi < 0) return FL_EFORMAT;
        int lo = hex_digit(hex[2 * i + 1]);
        if (lo < 0) return FL_EFORMAT;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * n] == '\0' ? FL_OK : FL_EFORMAT;
}
