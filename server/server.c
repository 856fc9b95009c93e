/* server.c - the gRPC C-core server of `fedlung server`: one completion queue of the `next`
 * kind, one state machine per call (new -> request received -> answered), client identity from
 * the TLS certificate's CN checked against the allow-list, and the Join and Status handlers.
 * It is not the round state machine: no tasks, models or updates yet. */
#include "server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/conf.h"
#include "crypto/pki.h"
#include "proto/rpc.h"

#define VERSION "0.1.0"

/* A client that joined. */
typedef struct {
    char id[FL_CONFIG_MAX_ID + 1];
    int64_t joined_ms, last_seen_ms;
    uint64_t patients;
} participant;

struct fl_server {
    const fl_server_config *cfg;
    fl_server_sink sink;
    void *user;
    grpc_server *srv;
    grpc_completion_queue *cq;
    int port;
    int stopping;       /* shutdown begun: no new request_call */
    char broken[128];   /* why no call can be accepted any more (fl_server_run fails), or "" */
    int shutdown_tag;   /* its address tags grpc_server_shutdown_and_notify */
    participant *parts; /* cfg->n_allow slots, n_parts used, in order of first join */
    size_t n_parts;
};

/* One call, from grpc_server_request_call to its final status. */
typedef enum { CALL_NEW, CALL_RECEIVED, CALL_ANSWERED } call_state;
typedef struct {
    call_state state;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array req_md;
    grpc_byte_buffer *recv;  /* the request, NULL if none arrived */
    grpc_byte_buffer *reply; /* the reply sent, NULL on a refusal */
    grpc_slice status_details;
    int has_status_details;
    int cancelled; /* RECV_CLOSE_ON_SERVER's verdict */
} call_ctx;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(fl_server *s, fl_server_event_kind kind, const char *client, const char *method,
                 grpc_status_code code, const char *detail) {
    fl_server_event ev = {kind, now_ms(), client, method, code, detail};
    s->sink(s->user, &ev);
}

void fl_server_log_event(void *user, const fl_server_event *ev) {
    static const char *const kinds[] = {"START", "WARNING", "JOIN", "REFUSED", "STOP"};
    time_t t = (time_t)(ev->unix_ms / 1000);
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ev->kind == FL_SERVER_EV_REFUSED)
        fprintf(stderr, "%s.%03dZ fedlung server: REFUSED %s %s %s: %s\n", when,
                (int)(ev->unix_ms % 1000), ev->client[0] ? ev->client : "(unknown)", ev->method,
                fl_rpc_code_name(ev->code), ev->detail);
    else
        fprintf(stderr, "%s.%03dZ fedlung server: %s%s%s %s\n", when, (int)(ev->unix_ms % 1000),
                kinds[ev->kind], ev->client[0] ? " " : "", ev->client, ev->detail);
}

/* ---- start-up ---- */

static grpc_server_credentials *make_credentials(const fl_server_config *cfg, fl_err *err) {
    if (cfg->tls.insecure) return grpc_insecure_server_credentials_create();
    grpc_server_credentials *creds = NULL;
    /* gRPC only logs why it refuses credentials; say it in one sentence first. */
    if (fl_pki_verify(cfg->tls.ca, cfg->tls.cert, FL_PKI_SERVER, err) != FL_OK) return NULL;
    char *pem[3];
    if (!fl_conf_read_pems(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, pem, err)) return NULL;
    grpc_ssl_pem_key_cert_pair kp = {pem[2], pem[1]};
    /* Deprecated for ..._with_options in later releases; 1.51's is this one. */
    creds = grpc_ssl_server_credentials_create_ex(
        pem[0], &kp, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    if (!creds)
        fl_fail(err, FL_EIO, "%s, %s, %s: gRPC refused these as TLS credentials", cfg->tls.ca,
                cfg->tls.cert, cfg->tls.key);
    fl_conf_free_pems(pem); /* gRPC keeps its own copy */
    return creds;
}

static void arm(fl_server *s);

fl_status fl_server_new(const fl_server_config *cfg, fl_server_sink sink, void *user,
                        fl_server **out, fl_err *err) {
    *out = NULL;
    fl_status st = fl_rpc_check_methods(err);
    if (st != FL_OK) return st;
    fl_server *s = calloc(1, sizeof *s);
    if (!s || !(s->parts = calloc(cfg->n_allow ? cfg->n_allow : 1, sizeof *s->parts))) {
        free(s);
        return fl_fail(err, FL_ENOMEM, "out of memory for the server");
    }
    s->cfg = cfg;
    s->sink = sink ? sink : fl_server_log_event;
    s->user = user;
    grpc_init();
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)FL_SERVER_MAX_RECV}},
        /* On by default: a second server on the same port would silently share its clients. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
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
        if (cfg->tls.insecure)
            st = fl_fail(err, FL_EIO,
                         "%s: cannot listen on %s (address in use, or not a local host:port)",
                         cfg->path, cfg->listen);
        else
            st = fl_fail(err, FL_EIO,
                         "%s: cannot listen on %s (address in use, not a local host:port, or %s "
                         "is not the key of %s)",
                         cfg->path, cfg->listen, cfg->tls.key, cfg->tls.cert);
        goto fail;
    }
    grpc_server_start(s->srv);
    arm(s);
    if (s->broken[0]) {
        st = fl_fail(err, FL_ENOMEM, "%s", s->broken);
        fl_server_free(s); /* started: the full shutdown */
        return st;
    }
    char detail[FL_ERR_LEN];
    snprintf(detail, sizeof detail, "study %s on %s (port %d) with %s, %zu clients allowed",
             cfg->study, cfg->listen, s->port, cfg->tls.insecure ? "NO TLS" : "mutual TLS",
             cfg->n_allow);
    if (cfg->tls.insecure)
        emit(s, FL_SERVER_EV_WARNING, "", "", GRPC_STATUS_OK,
             "insecure = true: no TLS, traffic in clear text, and a client names itself "
             "(metadata " FL_RPC_MD_CLIENT_ID "); use only for local experiments");
    emit(s, FL_SERVER_EV_START, "", "", GRPC_STATUS_OK, detail);
    *out = s;
    return FL_OK;
fail:
    /* Not started, so no shutdown is needed (nor allowed to wait for anything). */
    grpc_server_destroy(s->srv);
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
    if (c->reply) grpc_byte_buffer_destroy(c->reply);
    if (c->has_status_details) grpc_slice_unref(c->status_details);
    free(c);
}

/* Asks gRPC for the next incoming call. Without one armed no call can arrive, so a failure
 * is recorded in s->broken and ends fl_server_run. */
static void arm(fl_server *s) {
    if (s->stopping) return;
    call_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(s->broken, sizeof s->broken, "out of memory for a new call");
        return;
    }
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->req_md);
    grpc_call_error e =
        grpc_server_request_call(s->srv, &c->call, &c->details, &c->req_md, s->cq, s->cq, c);
    if (e != GRPC_CALL_OK) {
        snprintf(s->broken, sizeof s->broken, "grpc_server_request_call failed (error %d)", (int)e);
        call_free(c);
    }
}

/* Copies n bytes of a peer-supplied name into id for the log and the allow-list: bytes outside
 * printable ASCII become '?' (such a name is on no allow-list, and must not forge log lines). */
static void copy_name(char *id, const char *v, size_t n) {
    for (size_t i = 0; i < n; i++) id[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    id[n] = 0;
}

/* The caller's identity into id (cap bytes): the certificate's CN with TLS, the
 * FL_RPC_MD_CLIENT_ID metadata without. Returns 1, or 0 if there is none (or it is too long). */
static int identity(const fl_server *s, const call_ctx *c, char *id, size_t cap) {
    id[0] = 0;
    if (s->cfg->tls.insecure) {
        for (size_t i = 0; i < c->req_md.count; i++) {
            const grpc_metadata *m = &c->req_md.metadata[i];
            size_t n = GRPC_SLICE_LENGTH(m->value);
            if (grpc_slice_str_cmp(m->key, FL_RPC_MD_CLIENT_ID) != 0 || n == 0 || n >= cap)
                continue;
            copy_name(id, (const char *)GRPC_SLICE_START_PTR(m->value), n);
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
        /* value_length rules: the NUL the header promises is not relied upon */
        if (p && p->value_length > 0 && p->value_length < cap) {
            copy_name(id, p->value, p->value_length);
            ok = 1;
        }
    }
    if (ac) grpc_auth_context_release(ac);
    return ok;
}

static participant *find_participant(fl_server *s, const char *id) {
    for (size_t i = 0; i < s->n_parts; i++)
        if (strcmp(s->parts[i].id, id) == 0) return &s->parts[i];
    return NULL;
}

/* Join: records the client and answers with the study. */
static grpc_status_code on_join(fl_server *s, const char *id, const Fedlung__V1__JoinRequest *rq,
                                fl_rpc_status *st, grpc_byte_buffer **reply) {
    participant *p = find_participant(s, id);
    int again = p != NULL;
    if (!p) { /* room for every allowed name was made at start-up */
        p = &s->parts[s->n_parts++];
        snprintf(p->id, sizeof p->id, "%s", id);
        p->joined_ms = now_ms();
    }
    p->last_seen_ms = now_ms();
    p->patients = rq->data ? rq->data->patients : 0;
    char detail[FL_ERR_LEN];
    snprintf(detail, sizeof detail,
             "%s: software %.64s, protocol %u, %llu patients in %zu classes, %zu approved plans",
             again ? "joined again" : "joined", rq->software_version, rq->protocol_version,
             (unsigned long long)p->patients, rq->data ? rq->data->n_class_names : (size_t)0,
             rq->n_approved_plan_hashes);
    emit(s, FL_SERVER_EV_JOIN, id, "Join", GRPC_STATUS_OK, detail);

    Fedlung__V1__JoinReply r = FEDLUNG__V1__JOIN_REPLY__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = 0;
    r.client_id = (char *)id;
    r.phase = FEDLUNG__V1__PHASE__PHASE_UNSPECIFIED; /* waiting for min_clients */
    r.protocol_version = FL_RPC_PROTOCOL_VERSION;
    r.server_version = VERSION;
    r.max_message_bytes = FL_SERVER_MAX_RECV;
    r.max_chunk_bytes = FL_RPC_CHUNK_MAX;
    fl_err err;
    fl_status fs = fl_rpc_pack(&r.base, reply, &err);
    if (fs != FL_OK) return fl_rpc_status_from(st, fs, &err);
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "joined");
}

/* Status: where the study stands, with the joined participants. */
static grpc_status_code on_status(fl_server *s, fl_rpc_status *st, grpc_byte_buffer **reply) {
    Fedlung__V1__Participant *parts = calloc(s->n_parts ? s->n_parts : 1, sizeof *parts);
    Fedlung__V1__Participant **ptrs = calloc(s->n_parts ? s->n_parts : 1, sizeof *ptrs);
    if (!parts || !ptrs) {
        free(parts);
        free(ptrs);
        return fl_rpc_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        fedlung__v1__participant__init(&parts[i]);
        parts[i].client_id = s->parts[i].id;
        parts[i].state = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_JOINED;
        parts[i].last_seen_unix_ms = s->parts[i].last_seen_ms;
        ptrs[i] = &parts[i];
    }
    Fedlung__V1__StatusReply r = FEDLUNG__V1__STATUS_REPLY__INIT;
    r.study_id = (char *)s->cfg->study;
    r.round = 0;
    r.phase = FEDLUNG__V1__PHASE__PHASE_UNSPECIFIED; /* waiting: no phase has started */
    r.participants_joined = (uint32_t)s->n_parts;
    r.updates_needed = (uint32_t)s->cfg->min_clients; /* before round 1: the joins it waits for */
    r.n_participants = s->n_parts;
    r.participants = ptrs;
    fl_err err;
    fl_status fs = fl_rpc_pack(&r.base, reply, &err);
    free(parts);
    free(ptrs);
    if (fs != FL_OK) return fl_rpc_status_from(st, fs, &err);
    return fl_rpc_status_set(st, GRPC_STATUS_OK, "ok");
}

/* Decides the answer to a received call: the status in st, the reply (if OK) in *reply. */
static void handle(fl_server *s, call_ctx *c, fl_rpc_status *st, grpc_byte_buffer **reply) {
    char id[FL_CONFIG_MAX_ID + 1];
    char method[64];
    int m = fl_rpc_method_find(c->details.method);
    snprintf(method, sizeof method, "%s", m >= 0 ? fl_rpc_methods[m].name : "(unknown method)");
    ProtobufCMessage *rq = NULL;
    if (!identity(s, c, id, sizeof id)) {
        fl_rpc_status_set(st, GRPC_STATUS_UNAUTHENTICATED,
                          s->cfg->tls.insecure
                              ? "no " FL_RPC_MD_CLIENT_ID " metadata names the client"
                              : "the client certificate has no usable common name");
    } else if (!fl_server_config_allows(s->cfg, id, strlen(id))) {
        fl_rpc_status_set(st, GRPC_STATUS_PERMISSION_DENIED,
                          "client '%s' is not on this server's allow-list (%s)", id, s->cfg->path);
    } else if (m != FL_RPC_JOIN && m != FL_RPC_STATUS) {
        fl_rpc_status_set(st, GRPC_STATUS_UNIMPLEMENTED, "%s is not served yet", method);
    } else if (!c->recv) {
        fl_rpc_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s: no request message", method);
    } else {
        fl_err err;
        fl_status fs =
            fl_rpc_unpack(fl_rpc_methods[m].request, c->recv, FL_SERVER_MAX_RECV, &rq, &err);
        if (fs != FL_OK) {
            fl_rpc_status_from(st, fs, &err);
        } else if (m == FL_RPC_JOIN) {
            Fedlung__V1__JoinRequest *j = (Fedlung__V1__JoinRequest *)rq;
            if (fl_rpc_check_scope(st, s->cfg->study, FL_RPC_ANY_ROUND, j->study_id, 0) ==
                GRPC_STATUS_OK)
                on_join(s, id, j, st, reply);
        } else {
            Fedlung__V1__StatusRequest *q = (Fedlung__V1__StatusRequest *)rq;
            if (fl_rpc_check_scope(st, s->cfg->study, FL_RPC_ANY_ROUND, q->study_id, 0) ==
                GRPC_STATUS_OK)
                on_status(s, st, reply);
        }
    }
    if (rq) protobuf_c_message_free_unpacked(rq, NULL);
    if (st->code != GRPC_STATUS_OK) emit(s, FL_SERVER_EV_REFUSED, id, method, st->code, st->msg);
}

/* A new call: receive its request (every method here takes one first message). */
static int on_new_call(fl_server *s, call_ctx *c) {
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &c->recv;
    c->state = CALL_RECEIVED;
    return grpc_call_start_batch(c->call, ops, 2, c, NULL) == GRPC_CALL_OK;
}

/* The request is in: answer it with a message (if OK) and the status. */
static int on_received(fl_server *s, call_ctx *c) {
    fl_rpc_status st = {GRPC_STATUS_OK, ""};
    handle(s, c, &st, &c->reply);
    c->status_details = grpc_slice_from_copied_string(st.msg);
    c->has_status_details = 1;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (st.code == GRPC_STATUS_OK && c->reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->reply;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = st.code;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->state = CALL_ANSWERED;
    return grpc_call_start_batch(c->call, ops, n, c, NULL) == GRPC_CALL_OK;
}

/* One completion for call c. */
static void on_event(fl_server *s, call_ctx *c, int success) {
    int keep = 0;
    switch (c->state) {
    case CALL_NEW:
        if (!success || s->stopping) break; /* shutdown: the pending request comes back */
        arm(s);                             /* the next call, before serving this one */
        keep = on_new_call(s, c);
        break;
    case CALL_RECEIVED:
        /* success == 0: the client went away (cancelled, deadline) before its message */
        keep = success && !s->stopping && on_received(s, c);
        break;
    case CALL_ANSWERED:
        break;
    }
    if (!keep) call_free(c);
}

fl_status fl_server_run(fl_server *s, volatile sig_atomic_t *stop, fl_err *err) {
    while (!*stop && !s->broken[0]) {
        gpr_timespec until =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, until, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) continue;
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return fl_fail(err, FL_EIO, "the completion queue shut down unexpectedly");
        on_event(s, ev.tag, ev.success);
    }
    if (s->broken[0])
        return fl_fail(err, FL_ENOMEM, "the server stopped accepting calls: %s", s->broken);
    return FL_OK;
}

void fl_server_free(fl_server *s) {
    if (!s) return;
    if (s->srv) {
        if (!s->stopping) emit(s, FL_SERVER_EV_STOP, "", "", GRPC_STATUS_OK, "shutting down");
        s->stopping = 1;
        /* 1. stop accepting and cancel what is in flight */
        grpc_server_shutdown_and_notify(s->srv, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->srv);
        /* 2. every pending request_call and batch comes back (success = 0): free its call */
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type != GRPC_OP_COMPLETE || ev.tag == &s->shutdown_tag) break;
            on_event(s, ev.tag, ev.success);
        }
        /* 3. */
        grpc_server_destroy(s->srv);
    }
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        /* 4. */
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
            if (ev.type == GRPC_OP_COMPLETE && ev.tag != &s->shutdown_tag) on_event(s, ev.tag, 0);
        }
        grpc_completion_queue_destroy(s->cq);
        grpc_shutdown();
    }
    free(s->parts);
    free(s);
}
