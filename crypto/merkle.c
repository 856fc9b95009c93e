/* merkle.c - RFC 6962 tree hashing (see merkle.h): the recursive definition of §2.1, depth
 * log2(n), no allocation. */
#include "merkle.h"

#include <string.h>

fl_status fl_merkle_leaf_hash(const void *d, size_t n, uint8_t out[FL_SHA256_LEN]) {
    static const uint8_t prefix = 0x00;
    fl_sha256_ctx h;
    fl_status s = fl_sha256_init(&h);
    if (s == FL_OK) s = fl_sha256_update(&h, &prefix, 1);
    if (s == FL_OK) s = fl_sha256_update(&h, d, n);
    if (s == FL_OK) s = fl_sha256_final(&h, out);
    fl_sha256_destroy(&h);
    return s;
}

fl_status fl_merkle_node_hash(const uint8_t left[FL_SHA256_LEN], const uint8_t right[FL_SHA256_LEN],
                              uint8_t out[FL_SHA256_LEN]) {
    uint8_t in[1 + 2 * FL_SHA256_LEN];
    in[0] = 0x01;
    memcpy(in + 1, left, FL_SHA256_LEN);
    memcpy(in + 1 + FL_SHA256_LEN, right, FL_SHA256_LEN);
    return fl_sha256(in, sizeof in, out);
}

fl_status fl_merkle_root(const uint8_t (*leaves)[FL_SHA256_LEN], size_t n,
                         uint8_t out[FL_SHA256_LEN]) {
    if (n == 0) return fl_sha256(NULL, 0, out);
    if (n == 1) {
        memcpy(out, leaves[0], FL_SHA256_LEN);
        return FL_OK;
    }
    size_t k = 1;
    while (k * 2 < n) k *= 2;
    uint8_t left[FL_SHA256_LEN], right[FL_SHA256_LEN];
    fl_status s = fl_merkle_root(leaves, k, left);
    if (s == FL_OK) s = fl_merkle_root(leaves + k, n - k, right);
    if (s == FL_OK) s = fl_merkle_node_hash(left, right, out);
    return s;
}
