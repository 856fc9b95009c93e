/* merkle.h - RFC 6962 (= RFC 9162) Merkle tree hashing over SHA-256: leaf and node hashes with
 * their 0x00 / 0x01 domain prefixes and the tree head of n leaves, used by the audit log's
 * per-round roots, and inclusion proofs (audit paths) with their verifier. Not yet consistency
 * proofs. Never Bitcoin's "duplicate the last node" (CVE-2012-2459). */
#ifndef FL_MERKLE_H
#define FL_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "hash.h"

/* MTH({d}) = SHA-256(0x00 || d[0..n)). Returns what fl_sha256 returns. */
fl_status fl_merkle_leaf_hash(const void *d, size_t n, uint8_t out[FL_SHA256_LEN]);
/* SHA-256(0x01 || left || right) for two 32-byte child hashes. */
fl_status fl_merkle_node_hash(const uint8_t left[FL_SHA256_LEN], const uint8_t right[FL_SHA256_LEN],
                              uint8_t out[FL_SHA256_LEN]);
/* The tree hash MTH(D[n]) of n leaves given by their leaf hashes: SHA-256("") for n = 0, the
 * leaf hash itself for n = 1, else node(MTH(D[0:k]), MTH(D[k:n])) with k the largest power of
 * two below n. Returns FL_OK or what fl_sha256 returns. */
fl_status fl_merkle_root(const uint8_t (*leaves)[FL_SHA256_LEN], size_t n,
                         uint8_t out[FL_SHA256_LEN]);

/* The most hashes an inclusion proof has: the depth of a tree of up to 2^64 leaves. */
#define FL_MERKLE_MAX_PATH 64

/* The inclusion proof (audit path) PATH(m, D[n]) of RFC 6962 §2.1.1 for leaf m (0-based) of the
 * tree of n leaves given by their leaf hashes: the sibling subtree hashes from the leaf up, into
 * path[0..*len), which holds cap hashes (FL_MERKLE_MAX_PATH is always enough; ceil(log2 n) is).
 * A tree of one leaf has the empty path. Returns FL_OK; FL_EINVAL when m >= n or cap is too
 * small (*len is then 0); or what fl_sha256 returns. */
fl_status fl_merkle_inclusion_proof(const uint8_t (*leaves)[FL_SHA256_LEN], size_t n, size_t m,
                                    uint8_t (*path)[FL_SHA256_LEN], size_t cap, size_t *len,
                                    fl_err *err);
/* Checks that path[0..len) proves that the leaf with hash leaf is entry m (0-based) of the tree
 * of n leaves whose root is root, by the algorithm of RFC 9162 §2.1.3.2. Returns FL_OK when it
 * does; FL_EFORMAT with the reason when it does not (m >= n, a path too long or too short for
 * the tree, or one that leads to another root); or what fl_sha256 returns. */
fl_status fl_merkle_inclusion_verify(const uint8_t leaf[FL_SHA256_LEN], uint64_t m, uint64_t n,
                                     const uint8_t (*path)[FL_SHA256_LEN], size_t len,
                                     const uint8_t root[FL_SHA256_LEN], fl_err *err);

#endif
