/* proto_test.h - what the tests of proto/ and its fuzz target share: protobuf-c's bytes of a
 * message, a byte comparison, a byte buffer split into slices, and one filled-in instance of
 * every message of fedlung.proto. All static inline, so each includer uses what it needs. */
#ifndef FL_PROTO_TEST_H
#define FL_PROTO_TEST_H

#include <grpc/grpc.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpc.h"

/* protobuf-c's bytes of m, malloc'd (*n bytes); aborts when out of memory. */
static inline uint8_t *proto_pack(const ProtobufCMessage *m, size_t *n) {
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*n ? *n : 1);
    if (!b || protobuf_c_message_pack(m, b) != *n) abort();
    return b;
}

static inline int proto_same(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

/* A byte buffer holding data split into k <= 8 slices of about equal size (gRPC merges tiny
 * ones). The caller destroys it. */
static inline grpc_byte_buffer *proto_split_bb(const uint8_t *data, size_t n, int k) {
    grpc_slice s[8];
    for (int i = 0; i < k; i++) {
        size_t a = n * (size_t)i / (size_t)k, b = n * (size_t)(i + 1) / (size_t)k;
        s[i] = grpc_slice_from_copied_buffer((const char *)data + a, b - a);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, (size_t)k);
    for (int i = 0; i < k; i++) grpc_slice_unref(s[i]);
    return bb;
}

/* ---- one filled-in instance of every message ---- */

#define PAYLOAD 256

typedef struct {
    uint8_t hash[32], hash2[32], payload[PAYLOAD];
    ProtobufCBinaryData plan_hashes[2];
    char *class_names[3];
    uint64_t patients_per_class[3];
    Fedlung__V1__ModalityCount mods[2], *modp[2];
    Fedlung__V1__DataSummary summary;
    Fedlung__V1__PrivacyBudget budget;
    Fedlung__V1__JoinRequest join_req;
    Fedlung__V1__JoinReply join_reply;
    Fedlung__V1__TaskRequest task_req;
    Fedlung__V1__HyperParameters hyper;
    Fedlung__V1__PrivacyParams privacy;
    Fedlung__V1__UpdateSpec spec;
    Fedlung__V1__Task task;
    Fedlung__V1__ModelRequest model_req;
    Fedlung__V1__ModelHeader model_hdr;
    Fedlung__V1__ModelChunk model_chunk;
    Fedlung__V1__UpdateHeader update_hdr;
    Fedlung__V1__DataChunk data_chunk;
    Fedlung__V1__UpdateChunk update_chunk_hdr, update_chunk_data;
    Fedlung__V1__Receipt receipt;
    uint64_t hist[3 * 2 * 4];
    Fedlung__V1__EvalReport eval;
    Fedlung__V1__StatusRequest status_req;
    Fedlung__V1__Participant parts[2], *partp[2];
    Fedlung__V1__StatusReply status_reply;
} proto_samples;

#define BIN(p, n) ((ProtobufCBinaryData){(n), (uint8_t *)(p)})

static inline void proto_samples_init(proto_samples *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 32; i++) s->hash[i] = (uint8_t)(i * 7 + 1), s->hash2[i] = (uint8_t)~i;
    for (int i = 0; i < PAYLOAD; i++) s->payload[i] = (uint8_t)(i * 13 + 5);
    s->plan_hashes[0] = BIN(s->hash, 32);
    s->plan_hashes[1] = BIN(s->hash2, 32);
    s->class_names[0] = "LUAD", s->class_names[1] = "LUSC", s->class_names[2] = "NORMAL";
    s->patients_per_class[0] = 120, s->patients_per_class[1] = 98, s->patients_per_class[2] = 31;
    for (int i = 0; i < 2; i++) {
        s->mods[i] = (Fedlung__V1__ModalityCount)FEDLUNG__V1__MODALITY_COUNT__INIT;
        s->modp[i] = &s->mods[i];
    }
    s->mods[0].modality = FEDLUNG__V1__MODALITY__MODALITY_IMAGE, s->mods[0].patients = 249;
    s->mods[1].modality = FEDLUNG__V1__MODALITY__MODALITY_RNA, s->mods[1].patients = 201;

    s->summary = (Fedlung__V1__DataSummary)FEDLUNG__V1__DATA_SUMMARY__INIT;
    s->summary.n_class_names = 3, s->summary.class_names = s->class_names;
    s->summary.n_patients_per_class = 3, s->summary.patients_per_class = s->patients_per_class;
    s->summary.n_modalities = 2, s->summary.modalities = s->modp;
    s->summary.patients = 249;
    s->budget = (Fedlung__V1__PrivacyBudget)FEDLUNG__V1__PRIVACY_BUDGET__INIT;
    s->budget.epsilon_max = 8, s->budget.epsilon_spent = 1.25, s->budget.delta = 1e-5;
    Fedlung__V1__JoinRequest *j = &s->join_req;
    *j = (Fedlung__V1__JoinRequest)FEDLUNG__V1__JOIN_REQUEST__INIT;
    j->study_id = "lung-2025", j->round = 0, j->software_version = "0.1.0";
    j->n_approved_plan_hashes = 2, j->approved_plan_hashes = s->plan_hashes;
    j->data = &s->summary, j->budget = &s->budget, j->protocol_version = FL_RPC_PROTOCOL_VERSION;

    Fedlung__V1__JoinReply *jr = &s->join_reply;
    *jr = (Fedlung__V1__JoinReply)FEDLUNG__V1__JOIN_REPLY__INIT;
    jr->study_id = "lung-2025", jr->round = 3, jr->client_id = "client-0001";
    jr->plan_hash = BIN(s->hash, 32), jr->plan = BIN("plan: {rounds: 10}", 18);
    jr->phase = FEDLUNG__V1__PHASE__PHASE_IMAGE, jr->protocol_version = 1;
    jr->server_version = "0.1.0", jr->max_message_bytes = FL_RPC_MAX_MESSAGE;
    jr->max_chunk_bytes = FL_RPC_CHUNK_MAX;

    s->task_req = (Fedlung__V1__TaskRequest)FEDLUNG__V1__TASK_REQUEST__INIT;
    s->task_req.study_id = "lung-2025", s->task_req.round = 3, s->task_req.wait_ms = 30000;

    s->hyper = (Fedlung__V1__HyperParameters)FEDLUNG__V1__HYPER_PARAMETERS__INIT;
    s->hyper.lr = 0.01, s->hyper.epochs = 1, s->hyper.batch_size = 32, s->hyper.local_steps = 50;
    s->hyper.fedprox_mu = 0.001, s->hyper.optimizer = FEDLUNG__V1__OPTIMIZER__OPTIMIZER_SGD;
    s->hyper.momentum = 0.9, s->hyper.weight_decay = 1e-4;
    s->privacy = (Fedlung__V1__PrivacyParams)FEDLUNG__V1__PRIVACY_PARAMS__INIT;
    s->privacy.mechanism = FEDLUNG__V1__DP_MECHANISM__DP_MECHANISM_DP_SGD;
    s->privacy.clip_norm = 1, s->privacy.noise_multiplier = 1.1, s->privacy.sample_rate = 0.05;
    s->privacy.delta = 1e-5;
    s->spec = (Fedlung__V1__UpdateSpec)FEDLUNG__V1__UPDATE_SPEC__INIT;
    s->spec.encoding = FEDLUNG__V1__ENCODING__ENCODING_FIXED32, s->spec.fixed_scale = 65536;
    s->spec.send_buffers = 1;
    Fedlung__V1__Task *t = &s->task;
    *t = (Fedlung__V1__Task)FEDLUNG__V1__TASK__INIT;
    t->study_id = "lung-2025", t->round = 3, t->kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN;
    t->reason = "", t->phase = FEDLUNG__V1__PHASE__PHASE_IMAGE, t->model_version = 7;
    t->model_sha256 = BIN(s->hash2, 32), t->hyper = &s->hyper;
    t->deadline_unix_ms = 1767225600000, t->retry_after_ms = 0, t->plan_hash = BIN(s->hash, 32);
    t->privacy = &s->privacy, t->update = &s->spec;

    s->model_req = (Fedlung__V1__ModelRequest)FEDLUNG__V1__MODEL_REQUEST__INIT;
    s->model_req.study_id = "lung-2025", s->model_req.round = 3, s->model_req.model_version = 7;
    s->model_req.offset = 0, s->model_req.chunk_bytes = FL_RPC_CHUNK_DEFAULT;

    Fedlung__V1__ModelHeader *mh = &s->model_hdr;
    *mh = (Fedlung__V1__ModelHeader)FEDLUNG__V1__MODEL_HEADER__INIT;
    mh->study_id = "lung-2025", mh->round = 3, mh->model_version = 7;
    mh->n_params = 11689512, mh->n_buffers = 9600, mh->total_length = 4 * (11689512 + 9600);
    mh->sha256 = BIN(s->hash2, 32), mh->phase = FEDLUNG__V1__PHASE__PHASE_IMAGE;
    s->model_chunk = (Fedlung__V1__ModelChunk)FEDLUNG__V1__MODEL_CHUNK__INIT;
    s->model_chunk.offset = 8192, s->model_chunk.data = BIN(s->payload, PAYLOAD);
    s->model_chunk.header = mh;

    Fedlung__V1__UpdateHeader *uh = &s->update_hdr;
    *uh = (Fedlung__V1__UpdateHeader)FEDLUNG__V1__UPDATE_HEADER__INIT;
    uh->study_id = "lung-2025", uh->round = 3, uh->model_version = 7;
    uh->encoding = FEDLUNG__V1__ENCODING__ENCODING_FIXED32, uh->fixed_scale = 65536;
    uh->n_params = 11689512, uh->n_buffers = 9600, uh->length = 4 * (11689512 + 9600);
    uh->sha256 = BIN(s->hash, 32), uh->count_kind = FEDLUNG__V1__COUNT_KIND__COUNT_KIND_NOISED;
    uh->example_count = 117.5, uh->clip_norm = 1, uh->noise_multiplier = 1.1;
    uh->mechanism = FEDLUNG__V1__DP_MECHANISM__DP_MECHANISM_DP_SGD;
    s->data_chunk = (Fedlung__V1__DataChunk)FEDLUNG__V1__DATA_CHUNK__INIT;
    s->data_chunk.offset = 1 << 20, s->data_chunk.data = BIN(s->payload, PAYLOAD);
    s->update_chunk_hdr = (Fedlung__V1__UpdateChunk)FEDLUNG__V1__UPDATE_CHUNK__INIT;
    s->update_chunk_hdr.part_case = FEDLUNG__V1__UPDATE_CHUNK__PART_HEADER;
    s->update_chunk_hdr.header = uh;
    s->update_chunk_data = (Fedlung__V1__UpdateChunk)FEDLUNG__V1__UPDATE_CHUNK__INIT;
    s->update_chunk_data.part_case = FEDLUNG__V1__UPDATE_CHUNK__PART_DATA;
    s->update_chunk_data.data = &s->data_chunk;

    s->receipt = (Fedlung__V1__Receipt)FEDLUNG__V1__RECEIPT__INIT;
    s->receipt.study_id = "lung-2025", s->receipt.round = 3, s->receipt.length = uh->length;
    s->receipt.sha256 = BIN(s->hash, 32), s->receipt.audit_hash = BIN(s->hash2, 32);

    for (int i = 0; i < 24; i++) s->hist[i] = (uint64_t)(i * i) + (i == 5 ? 1u << 31 : 0);
    Fedlung__V1__EvalReport *e = &s->eval;
    *e = (Fedlung__V1__EvalReport)FEDLUNG__V1__EVAL_REPORT__INIT;
    e->study_id = "lung-2025", e->round = 3, e->model_version = 7, e->n_classes = 3, e->bins = 4;
    e->n_histogram = 24, e->histogram = s->hist, e->loss_sum = 41.25, e->patients = 60;
    e->n_patients_per_class = 3, e->patients_per_class = s->patients_per_class;

    s->status_req = (Fedlung__V1__StatusRequest)FEDLUNG__V1__STATUS_REQUEST__INIT;
    s->status_req.study_id = "lung-2025";
    for (int i = 0; i < 2; i++) {
        s->parts[i] = (Fedlung__V1__Participant)FEDLUNG__V1__PARTICIPANT__INIT;
        s->partp[i] = &s->parts[i];
    }
    s->parts[0].client_id = "client-0001", s->parts[0].last_round = 3;
    s->parts[0].state = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_WORKING;
    s->parts[0].last_seen_unix_ms = 1767225600000;
    s->parts[1].client_id = "client-0002", s->parts[1].last_round = 2;
    s->parts[1].state = FEDLUNG__V1__PARTICIPANT_STATE__PARTICIPANT_STATE_DROPPED;
    Fedlung__V1__StatusReply *r = &s->status_reply;
    *r = (Fedlung__V1__StatusReply)FEDLUNG__V1__STATUS_REPLY__INIT;
    r->study_id = "lung-2025", r->round = 3, r->phase = FEDLUNG__V1__PHASE__PHASE_IMAGE;
    r->rounds_total = 10, r->model_version = 7, r->participants_joined = 2;
    r->updates_received = 1, r->updates_needed = 2, r->progress = 0.3, r->done = 0;
    r->n_participants = 2, r->participants = s->partp;
}

/* Every top-level message of the samples (the nested ones ride along) into m[0..14]. */
static inline int proto_sample_list(proto_samples *s, const ProtobufCMessage **m) {
    int n = 0;
    m[n++] = &s->join_req.base, m[n++] = &s->join_reply.base, m[n++] = &s->task_req.base;
    m[n++] = &s->task.base, m[n++] = &s->model_req.base, m[n++] = &s->model_hdr.base;
    m[n++] = &s->model_chunk.base, m[n++] = &s->update_hdr.base, m[n++] = &s->data_chunk.base;
    m[n++] = &s->update_chunk_hdr.base, m[n++] = &s->update_chunk_data.base;
    m[n++] = &s->receipt.base, m[n++] = &s->eval.base, m[n++] = &s->status_req.base;
    m[n++] = &s->status_reply.base;
    return n;
}

#endif
