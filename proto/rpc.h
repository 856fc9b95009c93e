/* rpc.h - the glue between fedlung's wire contract (proto/fedlung.proto, compiled by protoc-c)
 * and gRPC's C core: the method table, checked against the service descriptor at start-up;
 * protobuf-c messages to and from grpc_byte_buffer under a size limit, with validation; chunk
 * messages encoded and decoded without copying the tensor bytes; a pool of chunk buffers; and
 * fl_status <-> grpc_status_code. It is not a server or a client: no completion queue, channel
 * or call lives here (docs/protocol.md describes the protocol itself). */
#ifndef FL_RPC_H
#define FL_RPC_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "proto/fedlung.pb-c.h"

/* ---- limits ---- */

#define FL_RPC_PROTOCOL_VERSION 1u
/* Chunk payloads of GetModel and PutUpdate: 1-4 MiB, 1 MiB unless configured. */
#define FL_RPC_CHUNK_MIN (1u << 20)
#define FL_RPC_CHUNK_MAX (4u << 20)
#define FL_RPC_CHUNK_DEFAULT (1u << 20)
/* The largest message either side accepts: a full chunk plus room for its other fields. Set it
 * as GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH on the server and the client's channel, and pass it as
 * the limit of fl_rpc_unpack / fl_rpc_flatten. Also the size of a pool buffer. */
#define FL_RPC_MAX_MESSAGE (FL_RPC_CHUNK_MAX + (64u << 10))
/* Validation bounds (fl_rpc_validate). */
#define FL_RPC_MAX_ID 64                      /* study_id, client_id: bytes */
#define FL_RPC_MAX_TEXT 1024                  /* versions, reasons, class names: bytes */
#define FL_RPC_MAX_CLASSES 64                 /* classes of a summary or an evaluation */
#define FL_RPC_MAX_BINS 100000                /* histogram bins of an evaluation */
#define FL_RPC_MAX_LIST 4096                  /* hashes, participants and other lists */
#define FL_RPC_MAX_PLAN (1u << 20)            /* bytes of a study plan in JoinReply */
#define FL_RPC_MAX_MODEL ((uint64_t)16 << 30) /* bytes of a model or an update */
/* Secure aggregation (crypto/secagg.h's sizes, repeated here so that proto/ builds alone;
 * server/study_secagg.c checks that they agree). */
#define FL_RPC_SECAGG_MAX_CLIENTS 255 /* sites of a round, and entries of its lists */
#define FL_RPC_SECAGG_KEY_LEN 32      /* X25519 keys and shares */
#define FL_RPC_SECAGG_SIG_MAX 512     /* bytes of an advert's signature */
#define FL_RPC_SECAGG_CERT_MAX 4096   /* bytes of an advert's DER certificate */
#define FL_RPC_SECAGG_SHARE_CT_LEN 88 /* a sealed share: 8 + 2 * 32 bytes, then the 16-byte tag */
/* Request metadata naming the client when the server runs --insecure (local experiments
 * only); with TLS the identity is the certificate's CN and this key is ignored. */
#define FL_RPC_MD_CLIENT_ID "fedlung-client-id"

/* ---- methods ---- */

typedef enum {
    FL_RPC_JOIN,
    FL_RPC_NEXT_TASK,
    FL_RPC_GET_MODEL,
    FL_RPC_PUT_UPDATE,
    FL_RPC_PUT_EVAL,
    FL_RPC_STATUS,
    FL_RPC_ADVERTISE_KEYS, /* secure aggregation, step 0 */
    FL_RPC_SHARE_KEYS,     /* step 1 */
    FL_RPC_UNMASK,         /* step 3 */
    FL_RPC_N_METHODS
} fl_rpc_method;

typedef enum {
    FL_RPC_UNARY,         /* one request, one reply */
    FL_RPC_SERVER_STREAM, /* one request, replies until the status */
    FL_RPC_CLIENT_STREAM, /* requests until the client half-closes, one reply */
} fl_rpc_kind;

typedef struct {
    const char *path; /* "/fedlung.v1.Federation/Join": static, for grpc_slice_from_static_string */
    const char *name; /* "Join", as in the .proto */
    fl_rpc_kind kind;
    const ProtobufCMessageDescriptor *request; /* of one message of a stream */
    const ProtobufCMessageDescriptor *reply;
} fl_rpc_method_info;

/* The method table, indexed by fl_rpc_method. */
extern const fl_rpc_method_info fl_rpc_methods[FL_RPC_N_METHODS];

/* Checks the table against fedlung__v1__federation__descriptor: the same methods, in the same
 * order, with the same paths and message types. Call once at start-up (server and client).
 * Returns FL_OK, or FL_EFORMAT naming the first disagreement (a .proto edited without the
 * table, or the reverse). */
fl_status fl_rpc_check_methods(fl_err *err);

/* The method whose path is `path` (a call's grpc_call_details.method), or -1 if none. */
int fl_rpc_method_find(grpc_slice path);

/* ---- a pool of chunk buffers ---- */

/* Buffers of one size handed out and taken back without malloc/free per chunk: the receive side
 * copies a multi-slice message into one, the send side fills one and lets gRPC release it.
 * Thread-safe: gRPC releases a sent slice on its own threads. */
typedef struct fl_rpc_pool fl_rpc_pool;

typedef struct fl_rpc_buf {
    fl_rpc_pool *pool;       /* where fl_rpc_buf_put returns it */
    struct fl_rpc_buf *next; /* free-list link while in the pool */
    size_t cap;              /* bytes at data */
    size_t len;              /* bytes in use, the caller's to set */
    _Alignas(64) unsigned char data[];
} fl_rpc_buf;

/* A pool of buffers of cap bytes (FL_RPC_MAX_MESSAGE for chunks) that keeps up to `keep` free
 * buffers for reuse (more may be out at once; the extra ones are freed when returned). Returns
 * NULL when out of memory. */
fl_rpc_pool *fl_rpc_pool_new(size_t cap, int keep);
/* Frees the free buffers now and the pool itself when the last buffer still out comes back
 * (a slice gRPC has not released yet). NULL is a no-op. */
void fl_rpc_pool_free(fl_rpc_pool *p);
/* A buffer of p->cap bytes with len 0: from the free list, else newly allocated. NULL when out
 * of memory. */
fl_rpc_buf *fl_rpc_buf_get(fl_rpc_pool *p);
/* Returns b to its pool (freed if the free list is full). NULL is a no-op. */
void fl_rpc_buf_put(fl_rpc_buf *b);
/* fl_rpc_buf_put with the signature of a slice's release callback: pass (fl_rpc_buf_release, b)
 * to the chunk encoders below to send b->data without copying it. */
void fl_rpc_buf_release(void *b);

typedef struct {
    size_t cap;    /* bytes per buffer */
    size_t free;   /* buffers in the free list */
    size_t out;    /* buffers handed out and not yet returned */
    size_t allocs; /* buffers ever allocated (flat after warm-up when reuse works) */
} fl_rpc_pool_stats;
fl_rpc_pool_stats fl_rpc_pool_get_stats(fl_rpc_pool *p);

/* ---- messages <-> byte buffers ---- */

/* Packs m into a new byte buffer of one slice (protobuf-c writes straight into the slice; no
 * other copy). The caller destroys *out (grpc_byte_buffer_destroy), also after a SEND_MESSAGE
 * op completes. Returns FL_OK, or FL_EINVAL for an invalid m (NULL). */
fl_status fl_rpc_pack(const ProtobufCMessage *m, grpc_byte_buffer **out, fl_err *err);

/* A received message as contiguous bytes: a view of the byte buffer's only slice, or a copy of
 * its slices in a pool buffer (or the heap when it is larger than the pool's buffers). */
typedef struct {
    const uint8_t *data;
    size_t len;
    grpc_slice slice; /* a reference to the viewed slice, if any */
    fl_rpc_buf *buf;  /* the pool buffer holding the copy, if any */
    void *heap;       /* the heap copy, if any */
    int has_slice;
} fl_rpc_flat;

/* Makes bb's bytes contiguous in *f (released with fl_rpc_flat_release; bb is not consumed and
 * may be destroyed at once). pool may be NULL (copies go to the heap). Returns FL_OK;
 * FL_ENOMEM when bb holds more than limit bytes ("message of N bytes exceeds the limit of M":
 * answer RESOURCE_EXHAUSTED) or memory runs out; FL_EFORMAT when a compressed buffer cannot be
 * decompressed; FL_EINVAL for a NULL bb. On failure *f holds nothing. */
fl_status fl_rpc_flatten(grpc_byte_buffer *bb, size_t limit, fl_rpc_pool *pool, fl_rpc_flat *f,
                         fl_err *err);
/* Releases what f holds; a zeroed or released f is fine. */
void fl_rpc_flat_release(fl_rpc_flat *f);

/* Unpacks a message of type d from n bytes and validates it (fl_rpc_validate). Returns FL_OK
 * with *out owned by the caller (protobuf_c_message_free_unpacked(*out, NULL)); FL_ENOMEM when n
 * exceeds limit; FL_EFORMAT "malformed <Type> (<n> bytes)" or the validation's sentence. Never
 * crashes on any input. On failure *out is NULL. */
fl_status fl_rpc_unpack_mem(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t n,
                            size_t limit, ProtobufCMessage **out, fl_err *err);
/* The same from a received byte buffer (not consumed). */
fl_status fl_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb, size_t limit,
                        ProtobufCMessage **out, fl_err *err);

/* Checks what the wire format cannot: identifiers (1..FL_RPC_MAX_ID bytes of [A-Za-z0-9._-]),
 * text without control characters, hashes of 32 bytes, enum values this build knows, finite
 * numbers in range, lengths that agree (a model of 4 * (n_params + n_buffers) bytes, an
 * evaluation of n_classes * 2 * bins counts), chunks within FL_RPC_CHUNK_MAX without offset
 * overflow, no unknown field numbered 0 (protobuf-c lets one through). Knows every message of
 * fedlung.proto; others get the unknown-field check only. Returns FL_OK or FL_EFORMAT with
 * a sentence naming the message and field ("UpdateHeader.sha256 has 31 bytes, not 32"). */
fl_status fl_rpc_validate(const ProtobufCMessage *m, fl_err *err);

/* ---- chunks without copies ---- */

/* A ModelChunk {offset, data, header} as a byte buffer whose data slice references `data`
 * instead of copying it: only the field headers (and the header message, if any) are written.
 * The bytes equal protobuf-c's packing of the same message. With release non-NULL,
 * release(user) runs exactly once when gRPC drops the data (possibly on another thread, after
 * the send completed), or before the return on failure; data must stay valid until then. With
 * release NULL the data is copied. len <= FL_RPC_CHUNK_MAX. Returns FL_OK or FL_EINVAL. */
fl_status fl_rpc_model_chunk_bb(const Fedlung__V1__ModelHeader *header, uint64_t offset,
                                const void *data, size_t len, void (*release)(void *), void *user,
                                grpc_byte_buffer **out, fl_err *err);
/* The same for an UpdateChunk carrying DataChunk {offset, data}. */
fl_status fl_rpc_update_data_bb(uint64_t offset, const void *data, size_t len,
                                void (*release)(void *), void *user, grpc_byte_buffer **out,
                                fl_err *err);

/* One decoded chunk: the payload is a view into the bytes parsed (a fl_rpc_flat), valid while
 * those are held; the header, if the message carried one, is unpacked, validated and owned
 * (fl_rpc_chunk_clear frees it). */
typedef struct {
    uint64_t offset;
    const uint8_t *data;
    size_t len;
    Fedlung__V1__ModelHeader *model_header;   /* ModelChunk: the first chunk's header */
    Fedlung__V1__UpdateHeader *update_header; /* UpdateChunk: the header message */
} fl_rpc_chunk;

/* Parses a ModelChunk / an UpdateChunk from n bytes without copying the payload. Stricter than
 * protobuf-c (a field repeated, or an UpdateChunk with both or neither part, is refused) but
 * skips unknown fields like it. Returns FL_OK, or FL_EFORMAT with a sentence ("DataChunk of
 * 5000000 bytes exceeds the chunk limit of 4194304"); on failure *c holds nothing. */
fl_status fl_rpc_model_chunk_parse(const uint8_t *msg, size_t n, fl_rpc_chunk *c, fl_err *err);
fl_status fl_rpc_update_chunk_parse(const uint8_t *msg, size_t n, fl_rpc_chunk *c, fl_err *err);
/* Frees c's header, if any, and zeroes c. */
void fl_rpc_chunk_clear(fl_rpc_chunk *c);

/* ---- statuses ---- */

/* The gRPC status to answer a failure s with: OK, INVALID_ARGUMENT (EINVAL, EFORMAT, ESHAPE),
 * RESOURCE_EXHAUSTED (ENOMEM), NOT_FOUND, UNIMPLEMENTED (EUNSUPPORTED), INTERNAL (EIO,
 * EBACKEND). FAILED_PRECONDITION, UNAUTHENTICATED and PERMISSION_DENIED have no fl_status: set
 * them with fl_rpc_status_set. */
grpc_status_code fl_rpc_code(fl_status s);
/* The reverse, for a client that got code: OK; FL_EINVAL (INVALID_ARGUMENT,
 * FAILED_PRECONDITION, OUT_OF_RANGE); FL_ENOMEM (RESOURCE_EXHAUSTED); FL_ENOTFOUND;
 * FL_EUNSUPPORTED (UNIMPLEMENTED); FL_EIO for the rest (the network, the deadline, identity). */
fl_status fl_rpc_status_to_fl(grpc_status_code code);
/* "FAILED_PRECONDITION" and so on; "UNKNOWN_CODE" for a value outside gRPC's list. */
const char *fl_rpc_code_name(grpc_status_code code);

/* A status to answer a call with: the code and its one-sentence details. */
typedef struct {
    grpc_status_code code;
    char msg[FL_ERR_LEN];
} fl_rpc_status;

/* Sets st to code with a printf-style message; returns code (0 = OK). */
grpc_status_code fl_rpc_status_set(fl_rpc_status *st, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets st from a failed library call: fl_rpc_code(s) with err's sentence. */
grpc_status_code fl_rpc_status_from(fl_rpc_status *st, fl_status s, const fl_err *err);

/* Checks that a request names the study the server runs and its current round: OK, or
 * FAILED_PRECONDITION with the reason ("request for study 'a', this server runs 'b'",
 * "request for round 3, the study is at round 5"). round FL_RPC_ANY_ROUND skips the round
 * (Join, Status). Returns st->code. */
#define FL_RPC_ANY_ROUND UINT64_MAX
grpc_status_code fl_rpc_check_scope(fl_rpc_status *st, const char *study, uint64_t round,
                                    const char *got_study, uint64_t got_round);

/* Client side: turns a call's final status into fl_status with the sentence "<method>: <CODE>:
 * <details>" in err (details may be an empty slice). Returns FL_OK for GRPC_STATUS_OK. */
fl_status fl_rpc_fail_status(fl_err *err, fl_rpc_method m, grpc_status_code code,
                             grpc_slice details);

#endif
