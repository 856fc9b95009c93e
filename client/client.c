/* client.c - the gRPC C-core client of `fedlung client`: TLS credentials made once, a fresh
 * channel per call, calls on a pluck completion queue, and Join + Status with exponential
 * back-off. It is not the task loop (client/task.c) nor the model transfers (client/transfer.c). */
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
#include "crypto/hash.h"
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
    uint64_t mod_patients[4]; /* by fl_modality - 1 */
    uint32_t features[4];
    uint8_t features_sha256[4][FL_SHA256_LEN];
    int has_summary;
    Fedlung__V1__PrivacyBudget budget; /* sent with Join once set (a DP plan) */
    int has_budget;
    ProtobufCBinaryData approved[FL_CLIENT_MAX_APPROVE]; /* views of cfg->approve */
};

fl_client_retry fl_client_retry_default(void) {
    return (fl_client_retry){
        .max_attempts = 0, .first_s = 1.0, .max_s = 30.0, .seed = 0, .call_timeout_s = 20.0};
}

void fl_client_backoff_init(fl_client_backoff *b, const fl_client_retry *r) {
    b->r = r;
    fl_rng_seed(&b->rng, r->seed);
    b->wait = r->first_s;
}

double fl_client_backoff_next(fl_client_backoff *b) {
    double s = b->wait * (0.8 + 0.4 * fl_rng_uniform(&b->rng));
    b->wait = b->wait * 2 > b->r->max_s ? b->r->max_s : b->wait * 2;
    return s;
}

void fl_client_sleep(double s) {
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void fl_client_log(const char *fmt, ...) {
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

/* Counts per class and per modality, feature counts and the SHA-256 of the feature names (each
 * followed by '\n', as fl_site_summarize hashes them) from the cohort file; the cohort itself is
 * dropped. */
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
    if (co.tile > 0 && co.n_tiles > 0) /* tiles are grouped by patient */
        for (int64_t t = 0; t < co.n_tiles; t++)
            c->mod_patients[0] += t == 0 || co.tile_patient[t] != co.tile_patient[t - 1];
    static const fl_modality mod[FL_N_OMICS] = {[FL_MOD_RNA] = FL_MODALITY_RNA,
                                                [FL_MOD_METHYLATION] = FL_MODALITY_METHYLATION,
                                                [FL_MOD_CLINICAL] = FL_MODALITY_CLINICAL};
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *om = &co.omics[m];
        int i = mod[m] - 1;
        if (om->F == 0) continue;
        for (int p = 0; p < co.P; p++) c->mod_patients[i] += om->present[p] != 0;
        c->features[i] = (uint32_t)om->F;
        fl_sha256_ctx h = {0};
        st = fl_sha256_init(&h);
        for (int f = 0; f < om->F && st == FL_OK; f++) {
            st = fl_sha256_update(&h, om->features[f], strlen(om->features[f]));
            if (st == FL_OK) st = fl_sha256_update(&h, "\n", 1);
        }
        if (st == FL_OK) st = fl_sha256_final(&h, c->features_sha256[i]);
        fl_sha256_destroy(&h);
        if (st != FL_OK) goto done;
    }
    c->has_summary = 1;
    st = FL_OK;
done:
    if (st != FL_OK)
        fl_fail(err, st, "%s: could not make the data summary (%s)", path, fl_status_str(st));
    fl_cohort_destroy(&co);
    return st;
}

void fl_client_set_budget(fl_client *c, double epsilon_max, double epsilon_spent, double delta) {
    fedlung__v1__privacy_budget__init(&c->budget);
    c->budget.epsilon_max = epsilon_max;
    c->budget.epsilon_spent = epsilon_spent;
    c->budget.delta = delta;
    c->has_budget = 1;
}

int fl_client_set_summary(fl_client *c, const fl_site_summary *s) {
    int changed = !c->has_summary || c->patients != s->patients || c->n_classes != s->n_classes;
    for (int k = 0; k < s->n_classes && k < FL_PLAN_MAX_CLASSES; k++) {
        changed |= c->per_class[k] != s->per_class[k];
        c->per_class[k] = s->per_class[k];
    }
    for (int i = 0; i < 4; i++) {
        changed |= c->mod_patients[i] != s->modality_patients[i] ||
                   c->features[i] != s->features[i] ||
                   (s->features[i] &&
                    memcmp(c->features_sha256[i], s->features_sha256[i], FL_SHA256_LEN) != 0);
        c->mod_patients[i] = s->modality_patients[i];
        c->features[i] = s->features[i];
        memcpy(c->features_sha256[i], s->features_sha256[i], FL_SHA256_LEN);
        if (!s->features[i]) memset(c->features_sha256[i], 0, FL_SHA256_LEN); /* none sent */
    }
    c->patients = s->patients;
    c->has_summary = c->n_classes == s->n_classes; /* the names are the cohort's */
    return changed;
}

fl_status fl_client_new(const fl_client_config *cfg, fl_client **out, fl_err *err) {
    *out = NULL;
    fl_status st = fl_rpc_check_methods(err);
    if (st != FL_OK) return st;
    fl_client *c = calloc(1, sizeof *c);
    if (!c) return fl_fail(err, FL_ENOMEM, "out of memory");
    c->cfg = cfg;
    for (int i = 0; i < cfg->n_approve; i++)
        c->approved[i] = (ProtobufCBinaryData){32, (uint8_t *)cfg->approve[i]};
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

void fl_client_rpc_open(fl_client *c, fl_rpc_method m, double timeout_s, fl_client_rpc *r) {
    memset(r, 0, sizeof *r);
    grpc_arg a[] = {
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = FL_RPC_MAX_MESSAGE}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = FL_RPC_MAX_MESSAGE}},
    };
    grpc_channel_args args = {sizeof a / sizeof a[0], a};
    r->channel = grpc_channel_create(c->cfg->server, c->creds, &args);
    r->cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)(timeout_s * 1000), GPR_TIMESPAN));
    r->call = grpc_channel_create_call(r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq,
                                       grpc_slice_from_static_string(fl_rpc_methods[m].path), NULL,
                                       deadline, NULL);
    /* with TLS the certificate names us; the server ignores this key */
    r->md.key = grpc_slice_from_static_string(FL_RPC_MD_CLIENT_ID);
    r->md.value = grpc_slice_from_static_string(c->cfg->name);
    r->n_md = c->cfg->tls.insecure ? 1 : 0;
    grpc_metadata_array_init(&r->init_md);
    grpc_metadata_array_init(&r->trailing_md);
    r->code = GRPC_STATUS_UNKNOWN;
    r->details = grpc_empty_slice();
}

grpc_op fl_client_rpc_send_md(fl_client_rpc *r) {
    grpc_op op = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    op.data.send_initial_metadata.count = (size_t)r->n_md;
    op.data.send_initial_metadata.metadata = r->n_md ? &r->md : NULL;
    return op;
}

grpc_op fl_client_rpc_recv_md(fl_client_rpc *r) {
    grpc_op op = {.op = GRPC_OP_RECV_INITIAL_METADATA};
    op.data.recv_initial_metadata.recv_initial_metadata = &r->init_md;
    return op;
}

grpc_op fl_client_rpc_recv_status(fl_client_rpc *r) {
    grpc_op op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    op.data.recv_status_on_client.trailing_metadata = &r->trailing_md;
    op.data.recv_status_on_client.status = &r->code;
    op.data.recv_status_on_client.status_details = &r->details;
    op.data.recv_status_on_client.error_string = &r->error_string;
    return op;
}

int fl_client_rpc_run(fl_client_rpc *r, const grpc_op *ops, size_t n) {
    if (grpc_call_start_batch(r->call, ops, n, r, NULL) != GRPC_CALL_OK) return -1;
    /* a batch ends at the call's deadline at the latest */
    grpc_event ev = grpc_completion_queue_pluck(r->cq, r, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) return -1;
    return ev.success ? 1 : 0;
}

fl_status fl_client_rpc_result(const fl_client_rpc *r, fl_rpc_method m, fl_err *err) {
    return fl_rpc_fail_status(err, m, r->code, r->details);
}

void fl_client_rpc_close(fl_client_rpc *r) {
    grpc_slice_unref(r->details);
    gpr_free((void *)r->error_string);
    grpc_metadata_array_destroy(&r->init_md);
    grpc_metadata_array_destroy(&r->trailing_md);
    grpc_call_unref(r->call);
    grpc_channel_destroy(r->channel);
    grpc_completion_queue_shutdown(r->cq);
    while (
        grpc_completion_queue_pluck(r->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
        GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(r->cq);
    memset(r, 0, sizeof *r);
}

fl_status fl_client_call(fl_client *c, fl_rpc_method m, const ProtobufCMessage *rq,
                         double timeout_s, grpc_status_code *code, ProtobufCMessage **reply,
                         fl_err *err) {
    *reply = NULL;
    *code = GRPC_STATUS_UNKNOWN;
    grpc_byte_buffer *send = NULL, *recv = NULL;
    fl_status st = fl_rpc_pack(rq, &send, err);
    if (st != FL_OK) return st;
    fl_client_rpc r;
    fl_client_rpc_open(c, m, timeout_s, &r);
    grpc_op ops[6] = {fl_client_rpc_send_md(&r),
                      {.op = GRPC_OP_SEND_MESSAGE},
                      {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
                      fl_client_rpc_recv_md(&r),
                      {.op = GRPC_OP_RECV_MESSAGE},
                      fl_client_rpc_recv_status(&r)};
    ops[1].data.send_message.send_message = send;
    ops[4].data.recv_message.recv_message = &recv;
    if (fl_client_rpc_run(&r, ops, 6) < 0) {
        st = fl_fail(err, FL_EIO, "%s: gRPC refused the call's batch", fl_rpc_methods[m].name);
    } else {
        *code = r.code;
        if (r.code != GRPC_STATUS_OK)
            st = fl_client_rpc_result(&r, m, err);
        else if (!recv)
            st = fl_fail(err, FL_EFORMAT, "%s: OK without a reply message", fl_rpc_methods[m].name);
        else
            st = fl_rpc_unpack(fl_rpc_methods[m].reply, recv, FL_RPC_MAX_MESSAGE, reply, err);
    }
    grpc_byte_buffer_destroy(send);
    if (recv) grpc_byte_buffer_destroy(recv);
    fl_client_rpc_close(&r);
    return st;
}

/* One attempt: Join, then Status (unless status is NULL). */
static fl_status join_once(fl_client *c, const fl_client_retry *r, Fedlung__V1__JoinReply **joined,
                           Fedlung__V1__StatusReply **status, grpc_status_code *code, fl_err *err) {
    Fedlung__V1__DataSummary ds = FEDLUNG__V1__DATA_SUMMARY__INIT;
    Fedlung__V1__JoinRequest jq = FEDLUNG__V1__JOIN_REQUEST__INIT;
    Fedlung__V1__ModalityCount mods[4], *mod_ptrs[4];
    jq.study_id = (char *)c->cfg->study;
    jq.software_version = VERSION;
    jq.protocol_version = FL_RPC_PROTOCOL_VERSION;
    jq.n_approved_plan_hashes = (size_t)c->cfg->n_approve;
    jq.approved_plan_hashes = c->approved;
    if (c->has_budget) jq.budget = &c->budget;
    /* A hospital with a privacy budget (its config's epsilon_max) sends no patient count
     * (un-noised numbers about its patients), from its first Join on: classes, modalities and
     * feature lists only. */
    int counts = !c->has_budget && !(c->cfg->epsilon_max > 0);
    if (c->has_summary) {
        ds.n_class_names = (size_t)c->n_classes;
        ds.class_names = c->class_names;
        ds.n_patients_per_class = counts ? (size_t)c->n_classes : 0;
        ds.patients_per_class = c->per_class;
        ds.modalities = mod_ptrs;
        for (int i = 0; i < 4; i++) {
            if (!c->mod_patients[i] && !c->features[i]) continue;
            Fedlung__V1__ModalityCount *mc = &mods[ds.n_modalities];
            fedlung__v1__modality_count__init(mc);
            mc->modality = (Fedlung__V1__Modality)(i + 1); /* fl_modality = the wire's values */
            mc->patients = counts ? c->mod_patients[i] : 0;
            mc->features = c->features[i];
            if (c->features[i])
                mc->features_sha256 = (ProtobufCBinaryData){FL_SHA256_LEN, c->features_sha256[i]};
            mod_ptrs[ds.n_modalities++] = mc;
        }
        ds.patients = counts ? c->patients : 0;
        jq.data = &ds;
    }
    ProtobufCMessage *rep = NULL;
    fl_status st = fl_client_call(c, FL_RPC_JOIN, &jq.base, r->call_timeout_s, code, &rep, err);
    if (st != FL_OK) return st;
    Fedlung__V1__JoinReply *jr = (Fedlung__V1__JoinReply *)rep;
    fl_client_log("Join %s: OK: joined study %s as %s (round %llu, server %s)", c->cfg->server,
                  jr->study_id, jr->client_id, (unsigned long long)jr->round, jr->server_version);
    if (joined)
        *joined = jr;
    else
        protobuf_c_message_free_unpacked(rep, NULL);
    if (!status) return FL_OK;
    Fedlung__V1__StatusRequest sq = FEDLUNG__V1__STATUS_REQUEST__INIT;
    sq.study_id = (char *)c->cfg->study;
    st = fl_client_call(c, FL_RPC_STATUS, &sq.base, r->call_timeout_s, code, &rep, err);
    if (st != FL_OK) {
        if (joined) {
            protobuf_c_message_free_unpacked(&(*joined)->base, NULL);
            *joined = NULL;
        }
        return st;
    }
    *status = (Fedlung__V1__StatusReply *)rep;
    fl_client_log("Status %s: OK: %u joined", c->cfg->server, (*status)->participants_joined);
    return FL_OK;
}

fl_status fl_client_join(fl_client *c, const fl_client_retry *r, Fedlung__V1__JoinReply **joined,
                         Fedlung__V1__StatusReply **status, grpc_status_code *final_code,
                         fl_err *err) {
    if (joined) *joined = NULL;
    if (status) *status = NULL;
    fl_client_backoff b;
    fl_client_backoff_init(&b, r);
    for (int attempt = 1;; attempt++) {
        fl_status st = join_once(c, r, joined, status, final_code, err);
        if (st == FL_OK) return FL_OK;
        int retry =
            *final_code == GRPC_STATUS_UNAVAILABLE || *final_code == GRPC_STATUS_DEADLINE_EXCEEDED;
        int last = r->max_attempts > 0 && attempt >= r->max_attempts;
        if (!retry || last) {
            fl_client_log("attempt %d: %s (%s)", attempt, err->msg,
                          retry ? "no attempts left" : "final");
            return st;
        }
        double s = fl_client_backoff_next(&b);
        fl_client_log("attempt %d: %s; retrying in %.1f s", attempt, err->msg, s);
        fl_client_sleep(s);
    }
}
