/* client.c - the gRPC C-core client of `fedlung client`: TLS credentials made once, a fresh
 * channel per attempt, unary calls on a pluck completion queue, and Join + Status with
 * exponential back-off. It is not the task loop: nothing after Status yet. */
#include "client.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/conf.h"
#include "common/rng.h"
#include "crypto/pki.h"
#include "data/cohort.h"

#define VERSION "0.1.0"

struct fl_client {
    const fl_client_config *cfg;
    grpc_channel_credentials *creds;
    /* the data summary: counts only */
    int n_classes;
    char **class_names; /* n_classes, heap */
    uint64_t per_class[FL_MAX_CLASSES];
    uint64_t patients;
    Fedlung__V1__ModalityCount mods[1 + FL_N_OMICS];
    Fedlung__V1__ModalityCount *mod_ptrs[1 + FL_N_OMICS];
    size_t n_mods;
    int has_summary;
};

fl_client_retry fl_client_retry_default(void) {
    return (fl_client_retry){
        .max_attempts = 0, .first_s = 1.0, .max_s = 30.0, .seed = 0, .call_timeout_s = 20.0};
}

/* One line on stderr: "<UTC time> fedlung client: <what>". */
__attribute__((format(printf, 1, 2))) static void log_line(const char *fmt, ...) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    char when[32];
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[2 * FL_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03dZ fedlung client: %s\n", when, (int)(ts.tv_nsec / 1000000), msg);
}

static grpc_channel_credentials *make_credentials(const fl_client_config *cfg, fl_err *err) {
    if (cfg->tls.insecure) return grpc_insecure_credentials_create();
    /* gRPC only logs why it refuses credentials; say it in one sentence first. */
    if (fl_pki_verify(cfg->tls.ca, cfg->tls.cert, FL_PKI_CLIENT, err) != FL_OK) return NULL;
    grpc_channel_credentials *creds = NULL;
    char *pem[3];
    if (!fl_conf_read_pems(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, pem, err)) return NULL;
    grpc_ssl_pem_key_cert_pair kp = {pem[2], pem[1]};
    /* the CA as the only root: the system's roots are not consulted */
    creds = grpc_ssl_credentials_create_ex(pem[0], &kp, NULL, NULL);
    if (!creds)
        fl_fail(err, FL_EIO, "%s, %s, %s: gRPC refused these as TLS credentials", cfg->tls.ca,
                cfg->tls.cert, cfg->tls.key);
    fl_conf_free_pems(pem); /* gRPC keeps its own copy */
    return creds;
}

/* Counts per class and per modality from the cohort file; the cohort itself is dropped. */
static fl_status load_summary(fl_client *c, const char *path, fl_err *err) {
    fl_cohort co;
    memset(&co, 0, sizeof co);
    fl_status st = fl_cohort_load(&co, path, err);
    if (st != FL_OK) return st;
    st = FL_ENOMEM;
    c->class_names = calloc((size_t)co.n_classes + 1, sizeof *c->class_names);
    if (!c->class_names) goto done;
    for (int k = 0; k < co.n_classes; k++) {
        if (!(c->class_names[k] = strdup(co.class_names[k]))) goto done;
        c->n_classes = k + 1;
    }
    for (int p = 0; p < co.P; p++) c->per_class[co.label[p]]++;
    c->patients = (uint64_t)co.P;
    if (co.tile > 0 && co.n_tiles > 0) { /* tiles are grouped by patient */
        uint64_t n = 0;
        for (int64_t t = 0; t < co.n_tiles; t++)
            n += t == 0 || co.tile_patient[t] != co.tile_patient[t - 1];
        fedlung__v1__modality_count__init(&c->mods[c->n_mods]);
        c->mods[c->n_mods].modality = FEDLUNG__V1__MODALITY__MODALITY_IMAGE;
        c->mods[c->n_mods++].patients = n;
    }
    static const Fedlung__V1__Modality wire[FL_N_OMICS] = {
        [FL_MOD_RNA] = FEDLUNG__V1__MODALITY__MODALITY_RNA,
        [FL_MOD_METHYLATION] = FEDLUNG__V1__MODALITY__MODALITY_METHYLATION,
        [FL_MOD_CLINICAL] = FEDLUNG__V1__MODALITY__MODALITY_CLINICAL};
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *om = &co.omics[m];
        if (om->F == 0) continue;
        uint64_t n = 0;
        for (int p = 0; p < co.P; p++) n += om->present[p] != 0;
        fedlung__v1__modality_count__init(&c->mods[c->n_mods]);
        c->mods[c->n_mods].modality = wire[m];
        c->mods[c->n_mods++].patients = n;
    }
    for (size_t i = 0; i < c->n_mods; i++) c->mod_ptrs[i] = &c->mods[i];
    c->has_summary = 1;
    st = FL_OK;
done:
    if (st != FL_OK) fl_fail(err, st, "%s: out of memory for the data summary", path);
    fl_cohort_destroy(&co);
    return st;
}

fl_status fl_client_new(const fl_client_config *cfg, fl_client **out, fl_err *err) {
    *out = NULL;
    fl_status st = fl_rpc_check_methods(err);
    if (st != FL_OK) return st;
    fl_client *c = calloc(1, sizeof *c);
    if (!c) return fl_fail(err, FL_ENOMEM, "out of memory");
    c->cfg = cfg;
    grpc_init();
    if (cfg->cohort[0] && (st = load_summary(c, cfg->cohort, err)) != FL_OK) goto fail;
    if (!(c->creds = make_credentials(cfg, err))) {
        st = FL_EIO;
        goto fail;
    }
    *out = c;
    return FL_OK;
fail:
    fl_client_free(c);
    return st;
}

void fl_client_free(fl_client *c) {
    if (!c) return;
    if (c->creds) grpc_channel_credentials_release(c->creds);
    for (int k = 0; k < c->n_classes; k++) free(c->class_names[k]);
    free(c->class_names);
    free(c);
    grpc_shutdown();
}

static grpc_channel *open_channel(fl_client *c) {
    grpc_arg a[] = {
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = FL_RPC_MAX_MESSAGE}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = FL_RPC_MAX_MESSAGE}},
    };
    grpc_channel_args args = {sizeof a / sizeof a[0], a};
    return grpc_channel_create(c->cfg->server, c->creds, &args);
}

fl_status fl_client_call(fl_client *c, fl_rpc_method m, const ProtobufCMessage *rq,
                         double timeout_s, grpc_status_code *code, ProtobufCMessage **reply,
                         fl_err *err) {
    *reply = NULL;
    *code = GRPC_STATUS_UNKNOWN;
    grpc_byte_buffer *send = NULL, *recv = NULL;
    fl_status st = fl_rpc_pack(rq, &send, err);
    if (st != FL_OK) return st;
    grpc_channel *ch = open_channel(c);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)(timeout_s * 1000), GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string(fl_rpc_methods[m].path), NULL, deadline, NULL);
    grpc_metadata md;
    memset(&md, 0, sizeof md);
    md.key = grpc_slice_from_static_string(FL_RPC_MD_CLIENT_ID);
    md.value = grpc_slice_from_copied_string(c->cfg->name);
    grpc_metadata_array init_md, trailing_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->cfg->tls.insecure) { /* with TLS the certificate names us; the server ignores this key */
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;
    if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
        st = fl_fail(err, FL_EIO, "%s: gRPC refused the call's batch", fl_rpc_methods[m].name);
    } else {
        /* the batch ends when the status is in: at the deadline at the latest */
        grpc_event ev =
            grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            st = fl_fail(err, FL_EIO, "%s: the completion queue failed", fl_rpc_methods[m].name);
        else if (*code != GRPC_STATUS_OK)
            st = fl_rpc_fail_status(err, m, *code, details);
        else if (!recv)
            st = fl_fail(err, FL_EFORMAT, "%s: OK without a reply message", fl_rpc_methods[m].name);
        else
            st = fl_rpc_unpack(fl_rpc_methods[m].reply, recv, FL_RPC_MAX_MESSAGE, reply, err);
    }
    grpc_slice_unref(details);
    grpc_slice_unref(md.value);
    gpr_free((void *)error_string);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(send);
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_call_unref(call);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return st;
}

/* One attempt: Join, then Status. */
static fl_status join_once(fl_client *c, const fl_client_retry *r,
                           Fedlung__V1__StatusReply **status, grpc_status_code *code, fl_err *err) {
    Fedlung__V1__DataSummary ds = FEDLUNG__V1__DATA_SUMMARY__INIT;
    Fedlung__V1__JoinRequest jq = FEDLUNG__V1__JOIN_REQUEST__INIT;
    jq.study_id = (char *)c->cfg->study;
    jq.software_version = VERSION;
    jq.protocol_version = FL_RPC_PROTOCOL_VERSION;
    if (c->has_summary) {
        ds.n_class_names = (size_t)c->n_classes;
        ds.class_names = c->class_names;
        ds.n_patients_per_class = (size_t)c->n_classes;
        ds.patients_per_class = c->per_class;
        ds.n_modalities = c->n_mods;
        ds.modalities = c->mod_ptrs;
        ds.patients = c->patients;
        jq.data = &ds;
    }
    ProtobufCMessage *rep = NULL;
    fl_status st = fl_client_call(c, FL_RPC_JOIN, &jq.base, r->call_timeout_s, code, &rep, err);
    if (st != FL_OK) return st;
    Fedlung__V1__JoinReply *jr = (Fedlung__V1__JoinReply *)rep;
    log_line("Join %s: OK: joined study %s as %s (round %llu, server %s)", c->cfg->server,
             jr->study_id, jr->client_id, (unsigned long long)jr->round, jr->server_version);
    protobuf_c_message_free_unpacked(rep, NULL);
    Fedlung__V1__StatusRequest sq = FEDLUNG__V1__STATUS_REQUEST__INIT;
    sq.study_id = (char *)c->cfg->study;
    st = fl_client_call(c, FL_RPC_STATUS, &sq.base, r->call_timeout_s, code, &rep, err);
    if (st != FL_OK) return st;
    *status = (Fedlung__V1__StatusReply *)rep;
    log_line("Status %s: OK: %u joined", c->cfg->server, (*status)->participants_joined);
    return FL_OK;
}

fl_status fl_client_join(fl_client *c, const fl_client_retry *r, Fedlung__V1__StatusReply **status,
                         grpc_status_code *final_code, fl_err *err) {
    *status = NULL;
    fl_rng rng;
    fl_rng_seed(&rng, r->seed);
    double wait = r->first_s;
    for (int attempt = 1;; attempt++) {
        fl_status st = join_once(c, r, status, final_code, err);
        if (st == FL_OK) return FL_OK;
        int retry =
            *final_code == GRPC_STATUS_UNAVAILABLE || *final_code == GRPC_STATUS_DEADLINE_EXCEEDED;
        int last = r->max_attempts > 0 && attempt >= r->max_attempts;
        if (!retry || last) {
            log_line("attempt %d: %s (%s)", attempt, err->msg,
                     retry ? "no attempts left" : "final");
            return st;
        }
        double s = wait * (0.8 + 0.4 * fl_rng_uniform(&rng));
        log_line("attempt %d: %s; retrying in %.1f s", attempt, err->msg, s);
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) != 0) {
        }
        wait = wait * 2 > r->max_s ? r->max_s : wait * 2;
    }
}
