/* transfer.h - the streaming calls of a hospital client: GetModel (server streaming; the chunks
 * are copied straight into the model vector and the SHA-256 checked against the header and the
 * task; a damaged or truncated download is fetched again) with a cache of the last model, and
 * PutUpdate (client streaming; 1 MiB DataChunks that reference the update in place; the
 * receipt is checked). Not the task loop: which task needs which model is client/task.c's. */
#ifndef FL_TRANSFER_H
#define FL_TRANSFER_H

#include <grpc/status.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "common/status.h"
#include "crypto/hash.h"

/* How often GetModel runs for one model: the first download and up to 3 more after a download
 * whose length or SHA-256 is wrong. */
#define FL_TRANSFER_MODEL_TRIES 4

/* A global model as downloaded: float32 parameters, then buffers, little-endian. */
typedef struct {
    const float *w; /* n_params + n_buffers floats */
    uint64_t n_params, n_buffers;
    uint64_t version;
    uint8_t sha256[FL_SHA256_LEN];
} fl_transfer_model;

typedef struct fl_transfer fl_transfer;

/* The transfers of client c (borrowed: it must outlive them), with a pool of receive buffers
 * and an empty model cache. Returns FL_OK with *out (fl_transfer_free), or FL_ENOMEM. */
fl_status fl_transfer_new(fl_client *c, fl_transfer **out, fl_err *err);
void fl_transfer_free(fl_transfer *t);

/* Testing aid: damages one byte of each of the next n downloads after it arrived, as a faulty
 * link would, so that the SHA-256 check fails and the model is fetched again. */
void fl_transfer_corrupt_downloads(fl_transfer *t, int n);

/* The global model `version` of study's round whose SHA-256 must be sha256 (the task's): from
 * the cache when it holds that version with that hash, else by GetModel, checked (the header's
 * study, version, lengths, n_floats when non-zero, contiguous chunks, the SHA-256 of all bytes
 * equal to the header's and the task's) and cached. A download that fails the checks or ends
 * short is discarded and fetched again, FL_TRANSFER_MODEL_TRIES times in all. Returns FL_OK with
 * *out pointing at the cache (valid until the next call or fl_transfer_free); otherwise the
 * call's final gRPC status in *code (FAILED_PRECONDITION when the round moved on, UNAVAILABLE,
 * DEADLINE_EXCEEDED, ...) with "GetModel: <CODE>: <details>" in err, or GRPC_STATUS_DATA_LOSS
 * with the last check's sentence when every download was damaged, or FL_ENOMEM. */
fl_status fl_transfer_get_model(fl_transfer *t, const char *study, uint64_t round, uint64_t version,
                                const uint8_t sha256[FL_SHA256_LEN], size_t n_floats,
                                const fl_transfer_model **out, grpc_status_code *code, fl_err *err);

/* The model in the cache (the last one fetched and checked), or NULL. */
const fl_transfer_model *fl_transfer_cached(const fl_transfer *t);

/* PutUpdate of h->length bytes at data: the caller fills h except length and sha256, which
 * this sets (sha256 pointing at sha, which must outlive the call). Sends UpdateChunk{header},
 * then DataChunks of 1 MiB that reference data in place (it must not change until this returns;
 * this returns only after gRPC released every chunk), half-closes and receives the Receipt,
 * whose study, round, length and SHA-256 must equal ours. The call's deadline is timeout_s.
 * Returns FL_OK (the receipt's audit hash, 64 hex digits or "", in audit_hex); otherwise *code
 * is the final gRPC status (GRPC_STATUS_DATA_LOSS for a receipt that names other bytes) with
 * one sentence in err. */
fl_status fl_transfer_put_update(fl_transfer *t, Fedlung__V1__UpdateHeader *h, size_t length,
                                 const void *data, uint8_t sha[FL_SHA256_LEN], double timeout_s,
                                 char audit_hex[FL_SHA256_HEX], grpc_status_code *code,
                                 fl_err *err);

#endif
