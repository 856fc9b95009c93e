/* server.c - the gRPC C-core side of `fedlung server`: one completion queue of the `next` kind,
 * one state machine per call, client identity from the TLS certificate's CN checked against the
 * allow-list. Every call gets its RECV_CLOSE_ON_SERVER op early, in a batch of its own, so a
 * cancelled upload or a vanished long poll is noticed at once. The study's logic is in
 * study.c; nothing here decides a round. */
#include "server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "crypto/hash.h"
#include "crypto/pki.h"
#include "crypto/sign.h"
#include "proto/rpc.h"

#define HOLD_MAX_MS 30000   /* the longest NextTask long poll */
#define DONE_GRACE_MS 20000 /* after DONE, how long to wait for every site to hear it */
#define DONE_LINGER_MS 1500 /* and then for a last download of the final model */

typedef enum {
    CALL_NEW,       /* waiting for grpc_server_request_call */
    CALL_RECEIVING, /* first message (or the next update chunk) being received */
    CALL_HELD,      /* NextTask long poll, or an upload waiting for the aggregator */
    CALL_SENDING,   /* GetModel chunks */
    CALL_FINISHING, /* the status is being sent */
} call_state;

typedef struct call_ctx call_ctx;
typedef struct {
    call_ctx *c;
    int close; /* 1: the early RECV_CLOSE_ON_SERVER batch */
} call_tag;

struct call_ctx {
    call_state state;
    call_tag op_tag, close_tag;
    int outstanding; /* batches started and not completed */
    int closed;      /* RECV_CLOSE_ON_SERVER completed */
    int cancelled;   /* its verdict */
    int dead;        /* no further op: free once outstanding is 0 */
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array req_md;
    int method;
    char id[FL_CONFIG_MAX_ID + 1];
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    grpc_slice status_details;
    int has_status_details;
    /* NextTask */
    Fedlung__V1__TaskRequest *task_rq;
    int64_t hold_until_ms;
    /* GetModel */
    fl_snapshot *snap;
    uint64_t offset, total;
    uint32_t chunk;
    uint64_t round;
    int header_sent;
    /* PutUpdate */
    Fedlung__V1__UpdateHeader *up_header; /* while waiting for the aggregator */
    int staged;
    call_ctx *next_held; /* in the server's held list */
};

struct fl_server {
    const fl_server_config *cfg;
    fl_plan plan;
    fl_sign_key *key;
    fl_slog log;
    fl_study *study;
    grpc_server *srv;
    grpc_completion_queue *cq;
    int port;
    int stopping;
    char broken[128];
    int shutdown_tag;
    call_ctx *held; /* held calls: long polls and queued uploads, oldest first */
    fl_rpc_pool *pool; /* receive buffers for chunks that arrive in several slices */
    uint64_t seen_epoch;
    int64_t done_since_ms, told_since_ms;
};

/* ---- start-up ---- */

static grpc_server_credentials *make_credentials(const fl_server_config *cfg, fl_err *err) {
    if (cfg->tls.insecure) return grpc_insecure_server_credentials_create();
    if (fl_pki_verify(cfg->tls.ca, cfg->tls.cert, FL_PKI_SERVER, err) != FL_OK) return NULL;
    char *pem[3];
    if (!fl_conf_read_pems(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, pem, err)) return NULL;
    grpc_ssl_pem_key_cert_pair kp = {pem[2], pem[1]};
    /* Deprecated for ..._with_options in later releases; 1.51's is this one. */
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        pem[0], &kp, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    if (!creds)
        fl_fail(err, FL_EIO, "%s, %s, %s: gRPC refused these as TLS credentials", cfg->tls.ca,
                cfg->tls.cert, cfg->tls.key);
    fl_conf_free_pems(pem); /* gRPC keeps its own copy */
    return creds;
}

static void arm(fl_server *s);

/* gRPC's own log, for the running server: a refused TLS handshake (unknown CA, no certificate,
 * an expired one) never becomes a call, so gRPC's error line is the only trace of it; it is
 * recorded as a "handshake_refused" event. Other lines go to stderr as gRPC would print them.
 * gRPC calls this on its own threads (the audit log is thread-safe); one server per process. */
static fl_slog *grpc_log_target;

static void on_grpc_log(gpr_log_func_args *a) {
    const char *m = a->message ? a->message : "";
    const char *hs = strstr(m, "Handshake failed");
    if (hs && grpc_log_target) {
        char data[FL_ERR_LEN], esc[FL_ERR_LEN - 32];
        fl_slog_json_str(hs, esc, sizeof esc);
        snprintf(data, sizeof data, "{\"reason\":\"%s\"}", esc);
        fl_slog_event(grpc_log_target, "handshake_refused", -1, "", data,
                      "a TLS handshake was refused: %s", hs);
        return;
    }
    const char *sev = a->severity == GPR_LOG_SEVERITY_ERROR  ? "E"
                      : a->severity == GPR_LOG_SEVERITY_INFO ? "I"
                                                             : "D";
    fprintf(stderr, "fedlung server: grpc %s %s:%d: %s\n", sev, a->file, a->line, m);
}

/* The plan, the audit log and the study, before any network. */
static fl_status open_study(fl_server *s, int quiet, fl_err *err) {
    const fl_server_config *cfg = s->cfg;
    fl_status st = fl_plan_load(cfg->plan, &s->plan, err);
    if (st != FL_OK) return st;
    if (strcmp(s->plan.id, cfg->study) != 0)
        return fl_fail(err, FL_EFORMAT, "%s: the plan is for study '%s', %s runs '%s'", cfg->plan,
                       s->plan.id, cfg->path, cfg->study);
    s->log.quiet = quiet;
    if (cfg->audit_key[0]) {
        if ((st = fl_sign_key_load_private(cfg->audit_key, &s->key, err)) != FL_OK) return st;
        char path[FL_CONFIG_MAX_PATH + 16];
        snprintf(path, sizeof path, "%s/audit.log", cfg->state_dir);
        if ((st = fl_audit_open(path, s->key, &s->log.audit, err)) != FL_OK) return st;
    }
    return fl_study_open(&s->study, cfg, &s->plan, &s->log, err);
}

fl_status fl_server_new(const fl_server_config *cfg, int quiet, fl_server **out, fl_err *err) {
    *out = NULL;
    fl_status st = fl_rpc_check_methods(err);
    if (st != FL_OK) return st;
    fl_server *s = calloc(1, sizeof *s);
    if (!s) return fl_fail(err, FL_ENOMEM, "out of memory for the server");
    s->cfg = cfg;
    /* one upload is staged at a time: a few buffers cover it without malloc per chunk */
    if (!(s->pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 4))) {
        free(s);
        return fl_fail(err, FL_ENOMEM, "out of memory for the receive buffers");
    }
    if ((st = open_study(s, quiet, err)) != FL_OK) {
        fl_server_free(s);
        return st;
    }
    grpc_log_target = &s->log;
    gpr_set_log_function(on_grpc_log);
    grpc_init();
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)FL_SERVER_MAX_RECV}},
        /* On by default: a second server on the same port would silently share its clients. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        /* Bandwidth-delay probing grows each connection's buffers with the transfers in
         * flight: server memory then grew ~10-20 MB per hospital downloading at once (measured
         * by tests/check_server_memory.sh). A fixed 4 MiB window instead. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, {.integer = 4 << 20}},
    };
    grpc_channel_args cargs = {sizeof args / sizeof args[0], args};
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->srv = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(s->srv, s->cq, NULL);
    grpc_server_credentials *creds = make_credentials(cfg, err);
    if (!creds) {
        st = FL_EIO;
        goto fail;
    }
    s->port = grpc_server_add_http2_port(s->srv, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        st = fl_fail(err, FL_EIO,
                     "%s: cannot listen on %s (address in use, not a local host:port%s)", cfg->path,
                     cfg->listen,
                     cfg->tls.insecure ? "" : ", or the key does not match the certificate");
        goto fail;
    }
    grpc_server_start(s->srv);
    arm(s);
    if (s->broken[0]) {
        st = fl_fail(err, FL_ENOMEM, "%s", s->broken);
        fl_server_free(s);
        return st;
    }
    char hex[65];
    fl_plan_hash_hex(&s->plan, hex);
    if (cfg->tls.insecure)
        fl_slog_event(&s->log, "warning", -1, "", NULL,
                      "insecure = true: no TLS, traffic in clear text, and a client names itself "
                      "(metadata " FL_RPC_MD_CLIENT_ID "); use only for local experiments");
    char data[256];
    snprintf(data, sizeof data,
             "{\"listen\":\"%.64s\",\"port\":%d,\"tls\":%s,\"plan_sha256\":\"%s\"}", cfg->listen,
             s->port, cfg->tls.insecure ? "false" : "true", hex);
    fl_slog_event(&s->log, "server_start", -1, "", data,
                  "study %s on %s (port %d) with %s, plan %.16s…, %zu clients allowed", cfg->study,
                  cfg->listen, s->port, cfg->tls.insecure ? "NO TLS" : "mutual TLS", hex,
                  cfg->n_allow);
    *out = s;
    return FL_OK;
fail:
    grpc_server_destroy(s->srv); /* not started: no shutdown needed */
    s->srv = NULL;
    fl_server_free(s);
    return st;
}

int fl_server_port(const fl_server *s) {
    return s->port;
}

/* ---- calls ---- */

static void call_free(call_ctx *c) {
    if (c->call) grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->req_md);
    if (c->recv) grpc_byte_buffer_destroy(c->recv);
    if (c->send) grpc_byte_buffer_destroy(c->send);
    if (c->has_status_details) grpc_slice_unref(c->status_details);
    if (c->task_rq) protobuf_c_message_free_unpacked(&c->task_rq->base, NULL);
    if (c->up_header) protobuf_c_message_free_unpacked(&c->up_header->base, NULL);
    fl_snapshot_unref(c->snap);
    free(c);
}

/* Starts a batch on c; on failure the call is dead. */
static int start(call_ctx *c, grpc_op *ops, size_t n, int close) {
    if (grpc_call_start_batch(c->call, ops, n, close ? &c->close_tag : &c->op_tag, NULL) !=
        GRPC_CALL_OK) {
        c->dead = 1;
        return 0;
    }
    c->outstanding++;
    return 1;
}

static void arm(fl_server *s) {
    if (s->stopping) return;
    call_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(s->broken, sizeof s->broken, "out of memory for a new call");
        return;
    }
    c->op_tag = (call_tag){c, 0};
    c->close_tag = (call_tag){c, 1};
    c->method = -1;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->req_md);
    grpc_call_error e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->req_md, s->cq,
                                                 s->cq, &c->op_tag);
    if (e != GRPC_CALL_OK) {
        snprintf(s->broken, sizeof s->broken, "grpc_server_request_call failed (error %d)", (int)e);
        call_free(c);
        return;
    }
    c->outstanding = 1;
}

/* Ends the call with status st (and the message c->send, if set). */
static void finish(fl_server *s, call_ctx *c, const fl_rpc_status *st) {
    if (st->code != GRPC_STATUS_OK) {
        char data[FL_ERR_LEN + 64], esc[FL_ERR_LEN - 96];
        fl_slog_json_str(st->msg, esc, sizeof esc);
        snprintf(data, sizeof data, "{\"method\":\"%s\",\"code\":\"%s\",\"reason\":\"%s\"}",
                 c->method >= 0 ? fl_rpc_methods[c->method].name : "?", fl_rpc_code_name(st->code),
                 esc);
        fl_slog_event(&s->log, "refused", -1, c->id, data, "%s %s: %s",
                      c->method >= 0 ? fl_rpc_methods[c->method].name : "(unknown method)",
                      fl_rpc_code_name(st->code), st->msg);
        if (c->send) grpc_byte_buffer_destroy(c->send);
        c->send = NULL;
    }
    c->status_details = grpc_slice_from_copied_string(st->msg);
    c->has_status_details = 1;
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (c->send) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->send;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = st->code;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    c->state = CALL_FINISHING;
    start(c, ops, n, 0);
}

static void recv_next(call_ctx *c) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    c->state = CALL_RECEIVING;
    start(c, &op, 1, 0);
}

/* Copies n bytes of a peer-supplied name into id: bytes outside printable ASCII become '?'. */
static void copy_name(char *id, const char *v, size_t n) {
    for (size_t i = 0; i < n; i++) id[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    id[n] = 0;
}

/* The caller's identity into c->id: the certificate's CN with TLS, the FL_RPC_MD_CLIENT_ID
 * metadata without. Returns 1, or 0 if there is none (or it is too long). */
static int identity(const fl_server *s, call_ctx *c) {
    size_t cap = sizeof c->id;
    c->id[0] = 0;
    if (s->cfg->tls.insecure) {
        for (size_t i = 0; i < c->req_md.count; i++) {
            const grpc_metadata *m = &c->req_md.metadata[i];
            size_t n = GRPC_SLICE_LENGTH(m->value);
            if (grpc_slice_str_cmp(m->key, FL_RPC_MD_CLIENT_ID) != 0 || n == 0 || n >= cap)
                continue;
            copy_name(c->id, (const char *)GRPC_SLICE_START_PTR(m->value), n);
            return 1;
        }
        return 0;
    }
    grpc_auth_context *ac = grpc_call_auth_context(c->call);
    int ok = 0;
    if (ac && grpc_auth_context_peer_is_authenticated(ac)) {
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(ac, GRPC_X509_CN_PROPERTY_NAME);
        const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
        if (p && p->value_length > 0 && p->value_length < cap) {
            copy_name(c->id, p->value, p->value_length);
            ok = 1;
        }
    }
    if (ac) grpc_auth_context_release(ac);
    return ok;
}

static void hold(fl_server *s, call_ctx *c) {
    c->state = CALL_HELD;
    c->next_held = NULL;
    call_ctx **at = &s->held;
    while (*at) at = &(*at)->next_held;
    *at = c;
}

static void unhold(fl_server *s, call_ctx *c) {
    for (call_ctx **at = &s->held; *at; at = &(*at)->next_held)
        if (*at == c) {
            *at = c->next_held;
            return;
        }
}

/* NextTask: answer now, or hold the call until the study changes or its wait ends. */
static void serve_task(fl_server *s, call_ctx *c, int expired) {
    fl_rpc_status st = {GRPC_STATUS_OK, ""};
    if (fl_study_next_task(s->study, c->id, c->task_rq, expired, &c->send, &st)) {
        if (c->state == CALL_HELD) unhold(s, c);
        finish(s, c, &st);
    } else if (c->state != CALL_HELD)
        hold(s, c);
}

/* GetModel: the next chunk (the first with the header), or the status after the last. */
static void send_chunk(fl_server *s, call_ctx *c) {
    fl_rpc_status st = {GRPC_STATUS_OK, "ok"};
    if (c->offset >= c->total && c->header_sent) return finish(s, c, &st);
    Fedlung__V1__ModelHeader h = FEDLUNG__V1__MODEL_HEADER__INIT, *hp = NULL;
    if (!c->header_sent) {
        h.study_id = (char *)s->cfg->study;
        h.round = c->round;
        h.model_version = c->snap->version;
        h.total_length = c->total;
        h.sha256 = (ProtobufCBinaryData){32, c->snap->sha256};
        h.n_params = c->snap->n_params;
        h.n_buffers = c->snap->n_buffers;
        h.phase = (Fedlung__V1__Phase)c->snap->phase;
        hp = &h;
        c->header_sent = 1;
    }
    size_t len = c->total - c->offset < c->chunk ? (size_t)(c->total - c->offset) : c->chunk;
    fl_snapshot_ref(c->snap); /* the slice's reference */
    fl_err err;
    if (fl_rpc_model_chunk_bb(hp, c->offset, (const uint8_t *)c->snap->data + c->offset, len,
                              fl_snapshot_release, c->snap, &c->send, &err) != FL_OK) {
        fl_rpc_status_from(&st, FL_EINVAL, &err);
        return finish(s, c, &st);
    }
    c->offset += len;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send;
    c->state = CALL_SENDING;
    start(c, &op, 1, 0);
}

/* PutUpdate: stage the upload held in c (the aggregator is free), then receive its chunks. */
static void begin_upload(fl_server *s, call_ctx *c) {
    fl_rpc_status st = {GRPC_STATUS_OK, ""};
    if (fl_study_update_begin(s->study, c->id, c->up_header, &st) != GRPC_STATUS_OK)
        return finish(s, c, &st);
    c->staged = 1;
    recv_next(c);
}

/* Starts the oldest held upload if the aggregator is free. */
static void pump_uploads(fl_server *s) {
    if (fl_study_update_busy(s->study)) return;
    for (call_ctx *c = s->held; c; c = c->next_held)
        if (c->method == FL_RPC_PUT_UPDATE) {
            unhold(s, c);
            return begin_upload(s, c);
        }
}

/* An update chunk arrived (or the end of the stream). */
static void on_update_message(fl_server *s, call_ctx *c) {
    fl_rpc_status st = {GRPC_STATUS_OK, ""};
    fl_err err;
    if (!c->recv) { /* the client half-closed */
        c->staged = 0;
        fl_study_update_end(s->study, c->id, c->closed && c->cancelled, &c->send, &st);
        return finish(s, c, &st);
    }
    fl_rpc_flat f = {0};
    fl_rpc_chunk ch = {0};
    fl_status fs = fl_rpc_flatten(c->recv, FL_SERVER_MAX_RECV, s->pool, &f, &err);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (fs == FL_OK) fs = fl_rpc_update_chunk_parse(f.data, f.len, &ch, &err);
    if (fs == FL_OK && ch.update_header)
        fs = fl_fail(&err, FL_EFORMAT, "PutUpdate: a second UpdateHeader");
    if (fs != FL_OK) {
        fl_rpc_status_from(&st, fs, &err);
        fl_study_update_abort(s->study, c->id, st.msg);
    } else
        fl_study_update_chunk(s->study, c->id, ch.offset, ch.data, ch.len, &st);
    fl_rpc_chunk_clear(&ch);
    fl_rpc_flat_release(&f);
    if (st.code != GRPC_STATUS_OK) {
        c->staged = 0;
        return finish(s, c, &st);
    }
    recv_next(c);
}

/* The first message of a call is in: check the caller, then serve it. */
static void on_first_message(fl_server *s, call_ctx *c) {
    fl_rpc_status st = {GRPC_STATUS_OK, ""};
    fl_err err;
    int m = c->method;
    const char *name = m >= 0 ? fl_rpc_methods[m].name : "(unknown method)";
    if (!identity(s, c))
        fl_rpc_status_set(&st, GRPC_STATUS_UNAUTHENTICATED,
                          s->cfg->tls.insecure
                              ? "no " FL_RPC_MD_CLIENT_ID " metadata names the client"
                              : "the client certificate has no usable common name");
    else if (!fl_server_config_allows(s->cfg, c->id, strlen(c->id)))
        fl_rpc_status_set(&st, GRPC_STATUS_PERMISSION_DENIED,
                          "client '%s' is not on this server's allow-list (%s)", c->id,
                          s->cfg->path);
    else if (m < 0)
        fl_rpc_status_set(&st, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    else if (!c->recv)
        fl_rpc_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT, "%s: no request message", name);
    if (st.code != GRPC_STATUS_OK) return finish(s, c, &st);

    if (m == FL_RPC_PUT_UPDATE) {
        fl_rpc_flat f = {0};
        fl_rpc_chunk ch = {0};
        fl_status fs = fl_rpc_flatten(c->recv, FL_SERVER_MAX_RECV, s->pool, &f, &err);
        grpc_byte_buffer_destroy(c->recv);
        c->recv = NULL;
        if (fs == FL_OK) fs = fl_rpc_update_chunk_parse(f.data, f.len, &ch, &err);
        if (fs == FL_OK && !ch.update_header)
            fs = fl_fail(&err, FL_EFORMAT, "PutUpdate: the first message must be the header");
        if (fs == FL_OK) {
            c->up_header = ch.update_header;
            ch.update_header = NULL;
        }
        fl_rpc_chunk_clear(&ch);
        fl_rpc_flat_release(&f);
        if (fs != FL_OK) {
            fl_rpc_status_from(&st, fs, &err);
            return finish(s, c, &st);
        }
        hold(s, c); /* until the aggregator is free (now, unless another upload is staged) */
        return pump_uploads(s);
    }

    /* PutEval and the secure-aggregation messages: the SHA-256 of the request's bytes, for the
     * audit record and the receipt (the hospital's outbox records the same hash) */
    uint8_t msg_sha[32] = {0};
    uint64_t msg_len = 0;
    if (m == FL_RPC_PUT_EVAL || m == FL_RPC_ADVERTISE_KEYS || m == FL_RPC_SHARE_KEYS ||
        m == FL_RPC_UNMASK) {
        fl_rpc_flat f = {0};
        if (fl_rpc_flatten(c->recv, FL_SERVER_MAX_RECV, s->pool, &f, &err) == FL_OK) {
            msg_len = f.len;
            fl_sha256(f.data, f.len, msg_sha);
        }
        fl_rpc_flat_release(&f);
    }
    ProtobufCMessage *rq = NULL;
    fl_status fs = fl_rpc_unpack(fl_rpc_methods[m].request, c->recv, FL_SERVER_MAX_RECV, &rq, &err);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (fs != FL_OK) {
        fl_rpc_status_from(&st, fs, &err);
        return finish(s, c, &st);
    }
    /* every request names the study in field 1 (a string: the method check ensures it) */
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(fl_rpc_methods[m].request, 1);
    const char *study = fd && fd->type == PROTOBUF_C_TYPE_STRING
                            ? *(char *const *)((const char *)rq + fd->offset)
                            : "";
    if (fl_rpc_check_scope(&st, s->cfg->study, FL_RPC_ANY_ROUND, study, 0) != GRPC_STATUS_OK) {
        protobuf_c_message_free_unpacked(rq, NULL);
        return finish(s, c, &st);
    }
    switch (m) {
    case FL_RPC_JOIN:
        fl_study_join(s->study, c->id, (Fedlung__V1__JoinRequest *)rq, &c->send, &st);
        break;
    case FL_RPC_STATUS:
        fl_study_status(s->study, &c->send, &st);
        break;
    case FL_RPC_PUT_EVAL:
        fl_study_put_eval(s->study, c->id, (Fedlung__V1__EvalReport *)rq, msg_len, msg_sha,
                          &c->send, &st);
        break;
    case FL_RPC_NEXT_TASK: {
        c->task_rq = (Fedlung__V1__TaskRequest *)rq;
        uint32_t wait = c->task_rq->wait_ms < HOLD_MAX_MS ? c->task_rq->wait_ms : HOLD_MAX_MS;
        c->hold_until_ms = fl_now_ms() + wait;
        serve_task(s, c, wait == 0);
        return;
    }
    case FL_RPC_GET_MODEL: {
        Fedlung__V1__ModelRequest *q = (Fedlung__V1__ModelRequest *)rq;
        if (fl_study_get_model(s->study, c->id, q, &c->snap, &st) == GRPC_STATUS_OK) {
            c->total = (uint64_t)(c->snap->n_params + c->snap->n_buffers) * 4;
            c->offset = q->offset;
            c->round = q->round;
            uint32_t want = q->chunk_bytes ? q->chunk_bytes : FL_RPC_CHUNK_DEFAULT;
            c->chunk = want < FL_RPC_CHUNK_MIN   ? FL_RPC_CHUNK_MIN
                       : want > FL_RPC_CHUNK_MAX ? FL_RPC_CHUNK_MAX
                                                 : want;
            protobuf_c_message_free_unpacked(rq, NULL);
            return send_chunk(s, c);
        }
        break;
    }
    case FL_RPC_ADVERTISE_KEYS: {
        /* the TLS peer's certificate, which the advert's must be */
        grpc_auth_context *ac = s->cfg->tls.insecure ? NULL : grpc_call_auth_context(c->call);
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(ac, GRPC_X509_PEM_CERT_PROPERTY_NAME);
        const grpc_auth_property *pem = ac ? grpc_auth_property_iterator_next(&it) : NULL;
        fl_study_advertise_keys(s->study, c->id, pem ? pem->value : NULL,
                                pem ? pem->value_length : 0, (Fedlung__V1__SecAggAdvert *)rq,
                                msg_len, msg_sha, &c->send, &st);
        if (ac) grpc_auth_context_release(ac);
        break;
    }
    case FL_RPC_SHARE_KEYS:
        fl_study_share_keys(s->study, c->id, (Fedlung__V1__SecAggShares *)rq, msg_len, msg_sha,
                            &c->send, &st);
        break;
    case FL_RPC_UNMASK:
        fl_study_unmask(s->study, c->id, (Fedlung__V1__SecAggUnmaskReply *)rq, msg_len, msg_sha,
                        &c->send, &st);
        break;
    default:
        fl_rpc_status_set(&st, GRPC_STATUS_UNIMPLEMENTED, "%s is not served", name);
    }
    protobuf_c_message_free_unpacked(rq, NULL);
    finish(s, c, &st);
}

/* A new call: its first message, and RECV_CLOSE_ON_SERVER on its own. */
static void on_new_call(fl_server *s, call_ctx *c) {
    c->method = fl_rpc_method_find(c->details.method);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
    if (!start(c, ops, 1, 1)) return;
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &c->recv;
    c->state = CALL_RECEIVING;
    start(c, ops, 2, 0);
    (void)s;
}

/* One completion for a call. */
static void on_event(fl_server *s, call_tag *tag, int success) {
    call_ctx *c = tag->c;
    c->outstanding--;
    if (tag->close) {
        c->closed = 1;
        if (c->cancelled) {
            c->dead = 1;
            if (c->state == CALL_HELD) unhold(s, c);
            if (c->staged) {
                c->staged = 0;
                fl_study_update_abort(s->study, c->id, "the upload was cancelled");
                pump_uploads(s);
            }
        }
    } else if (!success || c->dead || s->stopping) {
        if (c->state == CALL_NEW && success && !s->stopping) arm(s);
        if (c->staged) {
            c->staged = 0;
            fl_study_update_abort(s->study, c->id, "the upload stream failed");
            pump_uploads(s);
        }
        c->dead = 1;
    } else {
        switch (c->state) {
        case CALL_NEW:
            arm(s); /* the next call, before serving this one */
            on_new_call(s, c);
            break;
        case CALL_RECEIVING:
            if (c->staged)
                on_update_message(s, c);
            else
                on_first_message(s, c);
            if (c->method == FL_RPC_PUT_UPDATE && !c->staged) pump_uploads(s);
            break;
        case CALL_SENDING:
            grpc_byte_buffer_destroy(c->send);
            c->send = NULL;
            send_chunk(s, c);
            break;
        case CALL_FINISHING:
        case CALL_HELD:
            c->dead = 1; /* the status went out */
            break;
        }
    }
    if ((c->dead || c->state == CALL_FINISHING) && c->outstanding == 0) {
        if (c->state == CALL_HELD) unhold(s, c);
        call_free(c);
    }
}

/* Held long polls: answer those the study can now serve, and those whose wait is over. */
static void serve_held(fl_server *s, int64_t now) {
    uint64_t epoch = fl_study_epoch(s->study);
    int changed = epoch != s->seen_epoch;
    s->seen_epoch = epoch;
    call_ctx *c = s->held;
    while (c) {
        call_ctx *next = c->next_held;
        if (c->method == FL_RPC_NEXT_TASK && (changed || now >= c->hold_until_ms))
            serve_task(s, c, now >= c->hold_until_ms);
        c = next;
    }
    pump_uploads(s);
}

fl_status fl_server_run(fl_server *s, volatile sig_atomic_t *stop, fl_study_state *end,
                        fl_err *err) {
    *end = FL_STUDY_RUNNING;
    while (!*stop && !s->broken[0]) {
        int64_t now = fl_now_ms();
        fl_study_state state = fl_study_tick(s->study, now);
        serve_held(s, now);
        if (state != FL_STUDY_RUNNING) {
            if (!s->done_since_ms) s->done_since_ms = now;
            /* once every site heard DONE, a little longer for a last model download */
            if (!fl_study_all_told(s->study) || s->held)
                s->told_since_ms = 0;
            else if (!s->told_since_ms)
                s->told_since_ms = now;
            if (state == FL_STUDY_FAILED ||
                (s->told_since_ms && now - s->told_since_ms > DONE_LINGER_MS) ||
                now - s->done_since_ms > DONE_GRACE_MS) {
                *end = state;
                break;
            }
        }
        gpr_timespec until =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(100, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, until, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) continue;
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return fl_fail(err, FL_EIO, "the completion queue shut down unexpectedly");
        on_event(s, ev.tag, ev.success);
    }
    if (s->broken[0])
        return fl_fail(err, FL_ENOMEM, "the server stopped accepting calls: %s", s->broken);
    if (*end == FL_STUDY_FAILED) return fl_fail(err, FL_EIO, "%s", fl_study_reason(s->study));
    return FL_OK;
}

void fl_server_free(fl_server *s) {
    if (!s) return;
    if (s->srv) {
        if (!s->stopping) fl_slog_event(&s->log, "server_stop", -1, "", NULL, "shutting down");
        s->stopping = 1;
        /* 1. stop accepting and cancel what is in flight */
        grpc_server_shutdown_and_notify(s->srv, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->srv);
        /* 2. every pending request_call and batch comes back: free its call */
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type != GRPC_OP_COMPLETE || ev.tag == &s->shutdown_tag) break;
            on_event(s, ev.tag, 0);
        }
        grpc_server_destroy(s->srv);
    }
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
            if (ev.type == GRPC_OP_COMPLETE && ev.tag != &s->shutdown_tag) on_event(s, ev.tag, 0);
        }
        grpc_completion_queue_destroy(s->cq);
        grpc_shutdown();
    }
    if (grpc_log_target == &s->log) grpc_log_target = NULL;
    fl_study_free(s->study);
    if (s->log.audit) {
        fl_err err;
        fl_audit_checkpoint(s->log.audit, -1, &err);
        fl_audit_close(s->log.audit);
    }
    fl_sign_key_free(s->key);
    fl_plan_destroy(&s->plan);
    fl_rpc_pool_free(s->pool);
    free(s);
}
