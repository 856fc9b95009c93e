/* merkle.h - RFC 6962 (= RFC 9162) Merkle tree hashing over SHA-256: leaf and node hashes with
 * their 0x00 / 0x01 domain prefixes and the tree head of n leaves, used by the audit log's
 * per-round roots. Not yet the proofs: inclusion and consistency paths come with their verifier.
 * Never Bitcoin's "duplicate the last node" (CVE-2012-2459). */
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

#endif
