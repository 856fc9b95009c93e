/* merkle.c - RFC 6962 tree hashing and inclusion proofs (see merkle.h): the recursive
 * definitions of §2.1 and §2.1.1, depth log2(n), no allocation; RFC 9162's iterative verifier. */
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

/* The audit path of leaf m among leaves[0..n), appended to path[*len..) (RFC 6962 §2.1.1):
 * PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else PATH(m - k, D[k:n]) :
 * MTH(D[0:k]), with k the largest power of two below n. The caller checked the capacity. */
static fl_status audit_path(const uint8_t (*leaves)[FL_SHA256_LEN], size_t n, size_t m,
                            uint8_t (*path)[FL_SHA256_LEN], size_t *len) {
    if (n <= 1) return FL_OK;
    size_t k = 1;
    while (k * 2 < n) k *= 2;
    fl_status s = m < k ? audit_path(leaves, k, m, path, len)
                        : audit_path(leaves + k, n - k, m - k, path, len);
    if (s != FL_OK) return s;
    s = m < k ? fl_merkle_root(leaves + k, n - k, path[*len])
              : fl_merkle_root(leaves, k, path[*len]);
    if (s == FL_OK) (*len)++;
    return s;
}

fl_status fl_merkle_inclusion_proof(const uint8_t (*leaves)[FL_SHA256_LEN], size_t n, size_t m,
                                    uint8_t (*path)[FL_SHA256_LEN], size_t cap, size_t *len,
                                    fl_err *err) {
    *len = 0;
    if (m >= n) return fl_fail(err, FL_EINVAL, "no leaf %zu in a Merkle tree of %zu leaves", m, n);
    size_t depth = 0; /* ceil(log2 n): the path's length */
    while (depth < 64 && ((size_t)1 << depth) < n) depth++;
    if (cap < depth)
        return fl_fail(err, FL_EINVAL,
                       "an inclusion proof in a Merkle tree of %zu leaves has %zu hashes, "
                       "room was left for %zu",
                       n, depth, cap);
    fl_status s = audit_path(leaves, n, m, path, len);
    if (s != FL_OK) {
        *len = 0;
        return fl_fail(err, s, "inclusion proof of leaf %zu of %zu: SHA-256 failed", m, n);
    }
    return FL_OK;
}

fl_status fl_merkle_inclusion_verify(const uint8_t leaf[FL_SHA256_LEN], uint64_t m, uint64_t n,
                                     const uint8_t (*path)[FL_SHA256_LEN], size_t len,
                                     const uint8_t root[FL_SHA256_LEN], fl_err *err) {
    if (m >= n)
        return fl_fail(err, FL_EFORMAT, "no leaf %llu in a Merkle tree of %llu leaves",
                       (unsigned long long)m, (unsigned long long)n);
    /* RFC 9162 §2.1.3.2: fn walks up from the leaf, sn from the last leaf; where fn is a right
     * child or the last node of its level, the proof's hash goes to its left. */
    uint64_t fn = m, sn = n - 1;
    uint8_t r[FL_SHA256_LEN];
    memcpy(r, leaf, FL_SHA256_LEN);
    for (size_t i = 0; i < len; i++) {
        if (sn == 0)
            return fl_fail(err, FL_EFORMAT,
                           "inclusion proof of leaf %llu of %llu has %zu hashes, more than the "
                           "tree is deep",
                           (unsigned long long)m, (unsigned long long)n, len);
        fl_status s;
        if ((fn & 1) || fn == sn) {
            s = fl_merkle_node_hash(path[i], r, r);
            while (!(fn & 1) && fn != 0) fn >>= 1, sn >>= 1;
        } else {
            s = fl_merkle_node_hash(r, path[i], r);
        }
        if (s != FL_OK) return fl_fail(err, s, "inclusion proof: SHA-256 failed");
        fn >>= 1, sn >>= 1;
    }
    if (sn != 0)
        return fl_fail(err, FL_EFORMAT,
                       "inclusion proof of leaf %llu of %llu has %zu hashes, fewer than the tree "
                       "is deep",
                       (unsigned long long)m, (unsigned long long)n, len);
    if (memcmp(r, root, FL_SHA256_LEN) != 0)
        return fl_fail(err, FL_EFORMAT,
                       "inclusion proof of leaf %llu of %llu does not lead to the given root",
                       (unsigned long long)m, (unsigned long long)n);
    return FL_OK;
}
