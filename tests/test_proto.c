/* test_proto.c - proto/: every message of fedlung.proto through protobuf-c and through
 * grpc_byte_buffer and back; the method table against the service descriptor; validation's
 * refusals and their sentences; malformed input (random bytes, truncations, huge length
 * prefixes, messages over the limit) refused cleanly; zero-copy chunks; the buffer pool; the
 * status mapping; and a deterministic mutation fuzz loop over the decoders
 * (tests/fuzz/fuzz_decode.c) of about a second.
 * Other modes: --print-methods, --write-samples DIR and --read-samples DIR for
 * tests/check_proto_python.sh, --write-corpus DIR for the libFuzzer target. */
#include <grpc/grpc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "proto/rpc.h"

#define FUZZ_CHECK(cond) CHECK(cond)
#include "fuzz/fuzz_decode.c"

/* ------------------------------------------------------------------------------------------ */
/* one filled-in instance of every message                                                     */

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
} samples;

static samples S;

#define BIN(p, n) ((ProtobufCBinaryData){(n), (uint8_t *)(p)})

static void samples_init(samples *s) {
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

/* Every top-level message of the samples (the nested ones ride along). */
static int sample_list(samples *s, const ProtobufCMessage **m) {
    int n = 0;
    m[n++] = &s->join_req.base, m[n++] = &s->join_reply.base, m[n++] = &s->task_req.base;
    m[n++] = &s->task.base, m[n++] = &s->model_req.base, m[n++] = &s->model_hdr.base;
    m[n++] = &s->model_chunk.base, m[n++] = &s->update_hdr.base, m[n++] = &s->data_chunk.base;
    m[n++] = &s->update_chunk_hdr.base, m[n++] = &s->update_chunk_data.base;
    m[n++] = &s->receipt.base, m[n++] = &s->eval.base, m[n++] = &s->status_req.base;
    m[n++] = &s->status_reply.base;
    return n;
}

/* protobuf-c's bytes of m, malloc'd. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *n) {
    return fuzz_pack(m, n);
}

/* A byte buffer holding data split into k slices of about equal size. */
static grpc_byte_buffer *split_bb(const uint8_t *data, size_t n, int k) {
    grpc_slice s[8];
    for (int i = 0; i < k; i++) {
        size_t a = n * (size_t)i / (size_t)k, b = n * (size_t)(i + 1) / (size_t)k;
        s[i] = grpc_slice_from_copied_buffer((const char *)data + a, b - a);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, (size_t)k);
    for (int i = 0; i < k; i++) grpc_slice_unref(s[i]);
    return bb;
}

/* ------------------------------------------------------------------------------------------ */

static void test_methods(void) {
    fl_err err = {{0}};
    CHECK_OK(fl_rpc_check_methods(&err), &err);
    for (int i = 0; i < FL_RPC_N_METHODS; i++) {
        CHECK_EQ_INT(fl_rpc_method_find(grpc_slice_from_static_string(fl_rpc_methods[i].path)),
                     i);
        CHECK(strncmp(fl_rpc_methods[i].path, "/fedlung.v1.Federation/", 23) == 0);
    }
    CHECK_EQ_INT(fl_rpc_method_find(grpc_slice_from_static_string("/fedlung.v1.Federation/Nope")),
                 -1);
    CHECK_EQ_INT(fl_rpc_method_find(grpc_slice_from_static_string("/fedlung.v1.Federation/Join2")),
                 -1);
    CHECK_EQ_INT(fl_rpc_method_find(grpc_slice_from_static_string("")), -1);
    CHECK(strcmp(fl_rpc_methods[FL_RPC_PUT_UPDATE].path, "/fedlung.v1.Federation/PutUpdate") == 0);
    CHECK_EQ_INT(fl_rpc_methods[FL_RPC_GET_MODEL].kind, FL_RPC_SERVER_STREAM);
    CHECK_EQ_INT(fl_rpc_methods[FL_RPC_PUT_UPDATE].kind, FL_RPC_CLIENT_STREAM);
}

/* Every message: protobuf-c bytes -> fl_rpc_unpack_mem -> the same bytes; fl_rpc_pack -> byte
 * buffer -> fl_rpc_unpack -> the same bytes; a 3-slice byte buffer flattens into a pool buffer. */
static void test_round_trips(void) {
    const ProtobufCMessage *msgs[32];
    int n_msgs = sample_list(&S, msgs);
    fl_rpc_pool *pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 2);
    fl_err err = {{0}};
    for (int i = 0; i < n_msgs; i++) {
        const ProtobufCMessage *m = msgs[i];
        const char *name = m->descriptor->short_name;
        size_t n1, n2, n3;
        uint8_t *b1 = pack(m, &n1);
        ProtobufCMessage *u = NULL;
        CHECK_OK(fl_rpc_unpack_mem(m->descriptor, b1, n1, FL_RPC_MAX_MESSAGE, &u, &err), &err);
        if (!u) {
            fprintf(stderr, "  (message %s)\n", name);
            free(b1);
            continue;
        }
        uint8_t *b2 = pack(u, &n2);
        if (!fuzz_same(b1, n1, b2, n2)) fl_test_fail_at(__FILE__, __LINE__, "%s: repack differs", name);
        protobuf_c_message_free_unpacked(u, NULL);
        free(b2);

        grpc_byte_buffer *bb = NULL;
        CHECK_OK(fl_rpc_pack(m, &bb, &err), &err);
        CHECK_EQ_INT(grpc_byte_buffer_length(bb), n1);
        CHECK_OK(fl_rpc_unpack(m->descriptor, bb, FL_RPC_MAX_MESSAGE, &u, &err), &err);
        grpc_byte_buffer_destroy(bb);
        if (u) {
            uint8_t *b3 = pack(u, &n3);
            if (!fuzz_same(b1, n1, b3, n3))
                fl_test_fail_at(__FILE__, __LINE__, "%s: through a byte buffer differs", name);
            free(b3);
            protobuf_c_message_free_unpacked(u, NULL);
        }

        bb = split_bb(b1, n1, 3);
        fl_rpc_flat f;
        CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
        grpc_byte_buffer_destroy(bb); /* the flat copy does not depend on bb */
        CHECK(fuzz_same(f.data, f.len, b1, n1));
        /* Several slices are copied into a pool buffer (gRPC merges tiny ones into one). */
        CHECK(f.buf != NULL || (f.has_slice && n1 < 64));
        CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, f.buf != NULL);
        fl_rpc_flat_release(&f);
        free(b1);
    }
    /* A few values after the trip, so equal bytes are not trivially equal. */
    size_t n;
    uint8_t *b = pack(&S.eval.base, &n);
    ProtobufCMessage *u;
    CHECK_OK(fl_rpc_unpack_mem(&fedlung__v1__eval_report__descriptor, b, n, n, &u, &err), &err);
    if (u) {
        Fedlung__V1__EvalReport *e = (Fedlung__V1__EvalReport *)u;
        CHECK(strcmp(e->study_id, "lung-2025") == 0);
        CHECK_EQ_INT(e->n_histogram, 24);
        CHECK_EQ_INT(e->histogram[5], 25 + (1u << 31));
        CHECK_CLOSE(e->loss_sum, 41.25, 0, 0);
        protobuf_c_message_free_unpacked(u, NULL);
    }
    free(b);
    /* A single-slice buffer is viewed, not copied. */
    grpc_byte_buffer *bb;
    fl_rpc_flat f;
    CHECK_OK(fl_rpc_pack(&S.join_req.base, &bb, &err), &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
    CHECK(f.has_slice && !f.buf && !f.heap);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);
    /* An empty message is every field at its default (and fails validation: no study). */
    bb = grpc_raw_byte_buffer_create(NULL, 0);
    CHECK_OK(fl_rpc_flatten(bb, 10, pool, &f, &err), &err);
    CHECK_EQ_INT(f.len, 0);
    fl_rpc_flat_release(&f);
    CHECK(fl_rpc_unpack(&fedlung__v1__task_request__descriptor, bb, 10, &u, &err) == FL_EFORMAT);
    CHECK_MSG(err, "TaskRequest.study_id is empty");
    grpc_byte_buffer_destroy(bb);
    CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, 0);
    fl_rpc_pool_free(pool);
}

/* fl_rpc_validate refuses m with a sentence containing text; S is restored after. */
static void expect_invalid(const ProtobufCMessage *m, const char *text, int line) {
    fl_err err = {{0}};
    fl_test_checks++;
    fl_status st = fl_rpc_validate(m, &err);
    if (st != FL_EFORMAT)
        fl_test_fail_at(__FILE__, line, "validate gave %s, not FL_EFORMAT (want \"%s\")",
                        fl_status_str(st), text);
    else if (!strstr(err.msg, text))
        fl_test_fail_at(__FILE__, line, "message lacks \"%s\": %s", text, err.msg);
    samples_init(&S);
}
#define INVALID(msg, text) expect_invalid(&(msg).base, text, __LINE__)

static void test_validation(void) {
    fl_err err = {{0}};
    const ProtobufCMessage *msgs[32];
    int n_msgs = sample_list(&S, msgs);
    for (int i = 0; i < n_msgs; i++) CHECK_OK(fl_rpc_validate(msgs[i], &err), &err);
    CHECK(fl_rpc_validate(NULL, &err) == FL_EINVAL);
    CHECK_OK(fl_rpc_validate(&S.hyper.base, &err), &err); /* nested types pass alone */

    S.join_req.study_id = "";
    INVALID(S.join_req, "JoinRequest.study_id is empty");
    S.join_req.study_id = "a/b";
    INVALID(S.join_req, "JoinRequest.study_id has the byte 0x2f at 1");
    S.join_req.study_id = "x234567890123456789012345678901234567890123456789012345678901234X";
    INVALID(S.join_req, "study_id has 65 bytes, more than 64");
    S.plan_hashes[1].len = 31;
    INVALID(S.join_req, "JoinRequest.approved_plan_hashes has 31 bytes, not 32");
    S.summary.n_patients_per_class = 2;
    INVALID(S.join_req, "has 2 patient counts for 3 classes");
    S.mods[1].modality = 99;
    INVALID(S.join_req, "modalities.modality is 99, not a Modality");
    S.budget.delta = NAN;
    INVALID(S.join_req, "JoinRequest.budget.delta is nan");
    S.class_names[0] = "LU\nAD";
    INVALID(S.join_req, "class_names has the control character 0x0a at 2");
    S.join_reply.plan_hash.len = 0;
    INVALID(S.join_reply, "JoinReply.plan_hash has 0 bytes, not 32");
    S.task_req.study_id = "";
    INVALID(S.task_req, "TaskRequest.study_id is empty");
    S.task.kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_UNSPECIFIED;
    INVALID(S.task, "Task.kind is unspecified");
    S.task.model_sha256.len = 0;
    INVALID(S.task, "Task.model_sha256 has 0 bytes");
    S.task.model_sha256.len = 0, S.task.kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_WAIT;
    CHECK_OK(fl_rpc_validate(&S.task.base, &err), &err); /* WAIT names no model */
    S.hyper.lr = -1;
    INVALID(S.task, "Task.hyper.lr is -1");
    S.privacy.sample_rate = 2;
    INVALID(S.task, "Task.privacy.sample_rate is 2, outside [0, 1]");
    S.model_hdr.total_length += 4;
    INVALID(S.model_hdr, "ModelHeader announces 46796452 bytes for 11689512 parameters");
    S.model_hdr.n_params = UINT64_MAX;
    INVALID(S.model_hdr, "ModelHeader is larger than the limit");
    S.model_hdr.sha256.len = 0;
    INVALID(S.model_chunk, "ModelHeader.sha256 has 0 bytes"); /* checked through the chunk */
    S.update_hdr.fixed_scale = 0;
    INVALID(S.update_hdr, "UpdateHeader.fixed_scale is 0");
    S.update_hdr.encoding = FEDLUNG__V1__ENCODING__ENCODING_UNSPECIFIED;
    INVALID(S.update_chunk_hdr, "UpdateHeader.encoding is unspecified");
    S.update_hdr.count_kind = FEDLUNG__V1__COUNT_KIND__COUNT_KIND_EXACT;
    S.update_hdr.example_count = -1;
    INVALID(S.update_hdr, "UpdateHeader.example_count is -1");
    S.update_hdr.example_count = -3; /* a noised count may be negative */
    CHECK_OK(fl_rpc_validate(&S.update_hdr.base, &err), &err);
    S.update_hdr.noise_multiplier = INFINITY;
    INVALID(S.update_hdr, "UpdateHeader.noise_multiplier is inf");
    S.update_chunk_data.part_case = FEDLUNG__V1__UPDATE_CHUNK__PART__NOT_SET;
    INVALID(S.update_chunk_data, "UpdateChunk carries neither header nor data");
    S.data_chunk.data.len = FL_RPC_CHUNK_MAX + 1;
    INVALID(S.update_chunk_data, "DataChunk of 4194305 bytes exceeds the chunk limit of 4194304");
    S.data_chunk.offset = FL_RPC_MAX_MODEL;
    INVALID(S.data_chunk, "DataChunk at offset 17179869184 lies beyond the largest model");
    S.model_chunk.data.len = FL_RPC_CHUNK_MAX + 1;
    INVALID(S.model_chunk, "ModelChunk of 4194305 bytes exceeds the chunk limit");
    S.receipt.sha256.len = 5;
    INVALID(S.receipt, "Receipt.sha256 has 5 bytes, not 32");
    S.eval.n_histogram = 23;
    INVALID(S.eval, "EvalReport.histogram has 23 counts, not n_classes * 2 * bins = 24");
    S.eval.bins = 0;
    INVALID(S.eval, "EvalReport.bins is 0");
    S.eval.n_classes = FL_RPC_MAX_CLASSES + 1;
    INVALID(S.eval, "EvalReport.n_classes is 65");
    S.eval.n_patients_per_class = 2;
    INVALID(S.eval, "EvalReport.patients_per_class has 2 counts for 3 classes");
    S.status_reply.progress = 1.5;
    INVALID(S.status_reply, "StatusReply.progress is 1.5");
    S.parts[1].state = 9;
    INVALID(S.status_reply, "StatusReply.participants.state is 9, not a ParticipantState");
    S.status_req.study_id = "lung 2025";
    INVALID(S.status_req, "StatusRequest.study_id has the byte 0x20 at 4");

    /* fl_rpc_unpack_mem validates: well-formed bytes of an invalid message are refused. */
    S.eval.n_histogram = 20;
    size_t n;
    uint8_t *b = pack(&S.eval.base, &n);
    ProtobufCMessage *u = (ProtobufCMessage *)1;
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__eval_report__descriptor, b, n, n, &u, &err) ==
          FL_EFORMAT);
    CHECK(u == NULL);
    CHECK_MSG(err, "EvalReport.histogram has 20 counts");
    free(b);
    samples_init(&S);
}

/* Bytes no decoder may accept, bytes it may take or leave, and messages over the limit. */
static void test_malformed(void) {
    fl_err err = {{0}};
    ProtobufCMessage *u;
    fl_rpc_chunk c;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    int refused = 0, tried = 0;
    /* Random bytes: refused or (rarely) a valid message; never a crash. */
    for (int t = 0; t < FUZZ_N_TYPES; t++) {
        for (int k = 0; k < 100; k++) {
            uint8_t buf[300];
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t n = rng % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                buf[i] = (uint8_t)rng;
            }
            fl_status st = fl_rpc_unpack_mem(fuzz_types[t], buf, n, sizeof buf, &u, &err);
            CHECK(st == FL_OK || st == FL_EFORMAT);
            if (st == FL_OK) protobuf_c_message_free_unpacked(u, NULL);
            refused += st != FL_OK, tried++;
        }
    }
    CHECK(refused > tried * 9 / 10);

    /* Every truncation of every sample: refused or valid, never a crash; cutting inside the
     * last field is always refused. */
    const ProtobufCMessage *msgs[32];
    int n_msgs = sample_list(&S, msgs);
    for (int i = 0; i < n_msgs; i++) {
        size_t n;
        uint8_t *b = pack(msgs[i], &n);
        for (size_t k = 0; k < n; k++) {
            uint8_t *cut = malloc(k ? k : 1); /* exact size, so ASan sees any over-read */
            memcpy(cut, b, k);
            fl_status st = fl_rpc_unpack_mem(msgs[i]->descriptor, cut, k, n, &u, &err);
            CHECK(st == FL_OK || st == FL_EFORMAT);
            if (st == FL_OK) protobuf_c_message_free_unpacked(u, NULL);
            if (k == n - 1) CHECK_EQ_INT(st, FL_EFORMAT);
            free(cut);
        }
        free(b);
    }
    /* Length prefixes far beyond the message. */
    static const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'l', 'u'};
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__join_request__descriptor, huge_len, sizeof huge_len, 64,
                            &u, &err) == FL_EFORMAT);
    CHECK_MSG(err, "malformed JoinRequest (8 bytes)");
    static const uint8_t huge_data[] = {0x08, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2};
    CHECK(fl_rpc_model_chunk_parse(huge_data, sizeof huge_data, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "malformed ModelChunk at byte");
    static const uint8_t huge_part[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0x01, 0};
    CHECK(fl_rpc_update_chunk_parse(huge_part, sizeof huge_part, &c, &err) == FL_EFORMAT);
    static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x02};
    CHECK(fl_rpc_model_chunk_parse(long_varint, sizeof long_varint, &c, &err) == FL_EFORMAT);
    /* What the hand parsers refuse and protobuf-c might not. */
    static const uint8_t group[] = {0x0b, 0x0c};
    CHECK(fl_rpc_model_chunk_parse(group, sizeof group, &c, &err) == FL_EFORMAT);
    static const uint8_t field0[] = {0x00, 0x00};
    CHECK(fl_rpc_model_chunk_parse(field0, sizeof field0, &c, &err) == FL_EFORMAT);
    static const uint8_t twice[] = {0x08, 0x01, 0x08, 0x02};
    CHECK(fl_rpc_model_chunk_parse(twice, sizeof twice, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk field 1 appears twice");
    static const uint8_t wrong_wt[] = {0x0a, 0x00};
    CHECK(fl_rpc_model_chunk_parse(wrong_wt, sizeof wrong_wt, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk field 1 has wire type 2, not 0");
    CHECK(fl_rpc_update_chunk_parse((const uint8_t *)"", 0, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateChunk carries neither header nor data");
    static const uint8_t both[] = {0x0a, 0x00, 0x12, 0x00};
    CHECK(fl_rpc_update_chunk_parse(both, sizeof both, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateChunk carries more than one part");
    static const uint8_t bad_header[] = {0x0a, 0x02, 0x10, 0x01}; /* a header without study */
    CHECK(fl_rpc_update_chunk_parse(bad_header, sizeof bad_header, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "UpdateHeader.study_id is empty");
    static const uint8_t tag0[] = {0x80, 0x00, 0x03}; /* tag 0 as an over-long varint */
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__data_chunk__descriptor, tag0, sizeof tag0, 64, &u, &err) ==
          FL_EFORMAT);
    CHECK_MSG(err, "DataChunk has a field numbered 0");
    CHECK(fl_rpc_model_chunk_parse(tag0, sizeof tag0, &c, &err) == FL_EFORMAT);
    static const uint8_t long_tag[] = {0x88, 0xe4, 0xa4, 0xe1, 0x8a, 0x00, 0xbc, 0xb1, 0xcb, 0x5c};
    CHECK(fl_rpc_model_chunk_parse(long_tag, sizeof long_tag, &c, &err) == FL_EFORMAT); /* 6 bytes */
    static const uint8_t unknown[] = {0x08, 0x05, 0x7a, 0x01, 'x', 0x12, 0x01, 'y', 0x25, 1, 2, 3, 4};
    CHECK_OK(fl_rpc_model_chunk_parse(unknown, sizeof unknown, &c, &err), &err); /* field 15, 4 */
    CHECK_EQ_INT(c.offset, 5);
    CHECK(c.len == 1 && c.data == unknown + 7);
    fl_rpc_chunk_clear(&c);
    /* A chunk one byte over the limit, well-formed otherwise. */
    size_t big = FL_RPC_CHUNK_MAX + 1, h = 1;
    uint8_t *m = calloc(1, big + 16);
    m[0] = 0x12;
    for (size_t v = big; v; v >>= 7) m[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    CHECK(fl_rpc_model_chunk_parse(m, h + big, &c, &err) == FL_EFORMAT);
    CHECK_MSG(err, "ModelChunk of 4194305 bytes exceeds the chunk limit of 4194304");
    free(m);

    /* Over the limit: before any decoding; RESOURCE_EXHAUSTED when answered. */
    size_t n;
    uint8_t *b = pack(&S.join_req.base, &n);
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__join_request__descriptor, b, n, n - 1, &u, &err) ==
          FL_ENOMEM);
    CHECK_MSG(err, "exceeds the limit of");
    grpc_byte_buffer *bb = split_bb(b, n, 2);
    fl_rpc_flat f;
    CHECK(fl_rpc_flatten(bb, n - 1, NULL, &f, &err) == FL_ENOMEM);
    CHECK(f.data == NULL && f.len == 0);
    char want[80];
    snprintf(want, sizeof want, "message of %zu bytes exceeds the limit of %zu", n, n - 1);
    CHECK_MSG(err, want);
    CHECK(fl_rpc_unpack(&fedlung__v1__join_request__descriptor, bb, n - 1, &u, &err) == FL_ENOMEM);
    fl_rpc_status rs;
    CHECK_EQ_INT(fl_rpc_status_from(&rs, FL_ENOMEM, &err), GRPC_STATUS_RESOURCE_EXHAUSTED);
    CHECK(strstr(rs.msg, "exceeds the limit") != NULL);
    grpc_byte_buffer_destroy(bb);
    CHECK(fl_rpc_unpack(&fedlung__v1__join_request__descriptor, NULL, n, &u, &err) == FL_EINVAL);
    free(b);
}

static void count_release(void *user) {
    ++*(int *)user;
}

static void test_chunks(void) {
    fl_err err = {{0}};
    fl_rpc_pool *pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 2);
    /* A model chunk straight from a pool buffer: the same bytes as protobuf-c's, the payload a
     * view after parsing, and the buffer back in the pool once gRPC drops the slice. */
    fl_rpc_buf *buf = fl_rpc_buf_get(pool);
    memcpy(buf->data, S.payload, PAYLOAD);
    grpc_byte_buffer *bb;
    CHECK_OK(fl_rpc_model_chunk_bb(&S.model_hdr, 8192, buf->data, PAYLOAD, fl_rpc_buf_release, buf,
                                   &bb, &err),
             &err);
    CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, 1);
    fl_rpc_flat f;
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    grpc_byte_buffer_destroy(bb);
    CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, 0);
    size_t n;
    uint8_t *want = pack(&S.model_chunk.base, &n);
    CHECK(fuzz_same(f.data, f.len, want, n));
    free(want);
    fl_rpc_chunk c;
    CHECK_OK(fl_rpc_model_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK_EQ_INT(c.offset, 8192);
    CHECK_EQ_INT(c.len, PAYLOAD);
    CHECK(c.data > f.data && c.data + c.len <= f.data + f.len); /* not copied */
    CHECK(c.len == PAYLOAD && memcmp(c.data, S.payload, PAYLOAD) == 0);
    CHECK(c.model_header && c.model_header->total_length == S.model_hdr.total_length);
    CHECK(c.update_header == NULL);
    fl_rpc_chunk_clear(&c);
    fl_rpc_flat_release(&f);

    /* A later model chunk: no header, copied data (release NULL). */
    CHECK_OK(fl_rpc_model_chunk_bb(NULL, 0, S.payload, 10, NULL, NULL, &bb, &err), &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_model_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 0 && c.len == 10 && !c.model_header);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);

    /* Update data chunks: protobuf-c's bytes; release runs once, also for empty data and on
     * refusal. */
    int released = 0;
    CHECK_OK(fl_rpc_update_data_bb(1 << 20, S.payload, PAYLOAD, count_release, &released, &bb,
                                   &err),
             &err);
    CHECK_EQ_INT(released, 0);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
    grpc_byte_buffer_destroy(bb);
    CHECK_EQ_INT(released, 1);
    want = pack(&S.update_chunk_data.base, &n);
    CHECK(fuzz_same(f.data, f.len, want, n));
    free(want);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 1 << 20 && c.len == PAYLOAD && !c.update_header);
    CHECK(c.data > f.data && memcmp(c.data, S.payload, PAYLOAD) == 0);
    fl_rpc_flat_release(&f);
    released = 0;
    CHECK_OK(fl_rpc_update_data_bb(77, NULL, 0, count_release, &released, &bb, &err), &err);
    CHECK_EQ_INT(released, 1);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == 77 && c.len == 0 && !c.update_header);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);
    released = 0;
    CHECK(fl_rpc_update_data_bb(0, S.payload, FL_RPC_CHUNK_MAX + 1, count_release, &released, &bb,
                                &err) == FL_EINVAL);
    CHECK_MSG(err, "exceeds the chunk limit");
    CHECK(released == 1 && bb == NULL);
    released = 0;
    CHECK(fl_rpc_model_chunk_bb(NULL, 0, NULL, 5, count_release, &released, &bb, &err) ==
          FL_EINVAL);
    CHECK_EQ_INT(released, 1);

    /* The header message of an update. */
    CHECK_OK(fl_rpc_pack(&S.update_chunk_hdr.base, &bb, &err), &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, NULL, &f, &err), &err);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.update_header != NULL && c.len == 0);
    if (c.update_header) {
        CHECK(strcmp(c.update_header->study_id, "lung-2025") == 0);
        CHECK_EQ_INT(c.update_header->length, S.update_hdr.length);
        CHECK_EQ_INT(c.update_header->encoding, FEDLUNG__V1__ENCODING__ENCODING_FIXED32);
        CHECK(c.update_header->sha256.len == 32 &&
              memcmp(c.update_header->sha256.data, S.hash, 32) == 0);
    }
    fl_rpc_chunk_clear(&c);
    fl_rpc_flat_release(&f);
    grpc_byte_buffer_destroy(bb);

    /* A full 4 MiB chunk from a pool buffer, over several slices on receipt. */
    buf = fl_rpc_buf_get(pool);
    for (size_t i = 0; i < FL_RPC_CHUNK_MAX; i++) buf->data[i] = (uint8_t)(i * 31);
    CHECK_OK(fl_rpc_update_data_bb((uint64_t)3 << 22, buf->data, FL_RPC_CHUNK_MAX,
                                   fl_rpc_buf_release, buf, &bb, &err),
             &err);
    CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
    CHECK(f.buf != NULL); /* copied into the other pool buffer */
    grpc_byte_buffer_destroy(bb);
    CHECK_OK(fl_rpc_update_chunk_parse(f.data, f.len, &c, &err), &err);
    CHECK(c.offset == (uint64_t)3 << 22 && c.len == FL_RPC_CHUNK_MAX);
    CHECK(c.len == FL_RPC_CHUNK_MAX && c.data[12345] == (uint8_t)(12345 * 31));
    fl_rpc_flat_release(&f);
    fl_rpc_pool_stats ps = fl_rpc_pool_get_stats(pool);
    CHECK_EQ_INT(ps.out, 0);
    CHECK_EQ_INT(ps.allocs, 2);
    fl_rpc_pool_free(pool);
}

typedef struct {
    fl_rpc_pool *pool;
    int bad;
} pool_worker;

static void *pool_churn(void *arg) {
    pool_worker *w = arg;
    for (int i = 0; i < 2000; i++) {
        fl_rpc_buf *a = fl_rpc_buf_get(w->pool), *b = fl_rpc_buf_get(w->pool);
        if (!a || !b || a == b || a->cap != 4096) w->bad++;
        if (a) a->data[0] = 1, a->data[4095] = 2;
        fl_rpc_buf_put(b);
        fl_rpc_buf_release(a);
    }
    return NULL;
}

static void test_pool(void) {
    fl_rpc_pool *p = fl_rpc_pool_new(4096, 2);
    CHECK(p != NULL);
    fl_rpc_buf *a = fl_rpc_buf_get(p), *b = fl_rpc_buf_get(p), *c = fl_rpc_buf_get(p);
    CHECK(a && b && c);
    CHECK(((uintptr_t)a->data & 63) == 0);
    fl_rpc_pool_stats s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 3 && s.free == 0 && s.allocs == 3 && s.cap == 4096);
    fl_rpc_buf_put(a);
    fl_rpc_buf_put(b);
    fl_rpc_buf_put(c); /* the free list keeps two; the third is freed */
    s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 0 && s.free == 2);
    for (int i = 0; i < 100; i++) {
        fl_rpc_buf *x = fl_rpc_buf_get(p), *y = fl_rpc_buf_get(p);
        fl_rpc_buf_put(x);
        fl_rpc_buf_put(y);
    }
    CHECK_EQ_INT(fl_rpc_pool_get_stats(p).allocs, 3); /* no allocation per chunk */
    fl_rpc_buf_put(NULL);
    /* Threads, as when gRPC releases sent slices on its own threads. */
    pthread_t th[4];
    pool_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (pool_worker){p, 0};
        pthread_create(&th[i], NULL, pool_churn, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].bad, 0);
    }
    s = fl_rpc_pool_get_stats(p);
    CHECK(s.out == 0 && s.free <= 2);
    /* Freed while a buffer is out: the pool goes when the buffer comes back (ASan: no leak). */
    fl_rpc_buf *late = fl_rpc_buf_get(p);
    fl_rpc_pool_free(p);
    late->data[0] = 7;
    fl_rpc_buf_put(late);
    fl_rpc_pool_free(NULL);
}

static void test_status(void) {
    CHECK_EQ_INT(fl_rpc_code(FL_OK), GRPC_STATUS_OK);
    CHECK_EQ_INT(fl_rpc_code(FL_EFORMAT), GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_EQ_INT(fl_rpc_code(FL_EINVAL), GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_EQ_INT(fl_rpc_code(FL_ESHAPE), GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_EQ_INT(fl_rpc_code(FL_ENOMEM), GRPC_STATUS_RESOURCE_EXHAUSTED);
    CHECK_EQ_INT(fl_rpc_code(FL_ENOTFOUND), GRPC_STATUS_NOT_FOUND);
    CHECK_EQ_INT(fl_rpc_code(FL_EUNSUPPORTED), GRPC_STATUS_UNIMPLEMENTED);
    CHECK_EQ_INT(fl_rpc_code(FL_EIO), GRPC_STATUS_INTERNAL);
    CHECK_EQ_INT(fl_rpc_code(FL_EBACKEND), GRPC_STATUS_INTERNAL);
    CHECK_EQ_INT(fl_rpc_status_to_fl(GRPC_STATUS_FAILED_PRECONDITION), FL_EINVAL);
    CHECK_EQ_INT(fl_rpc_status_to_fl(GRPC_STATUS_RESOURCE_EXHAUSTED), FL_ENOMEM);
    CHECK_EQ_INT(fl_rpc_status_to_fl(GRPC_STATUS_UNAVAILABLE), FL_EIO);
    CHECK_EQ_INT(fl_rpc_status_to_fl(GRPC_STATUS_UNAUTHENTICATED), FL_EIO);
    CHECK_EQ_INT(fl_rpc_status_to_fl(GRPC_STATUS_OK), FL_OK);
    CHECK(strcmp(fl_rpc_code_name(GRPC_STATUS_FAILED_PRECONDITION), "FAILED_PRECONDITION") == 0);
    CHECK(strcmp(fl_rpc_code_name(GRPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED") == 0);
    CHECK(strcmp(fl_rpc_code_name(GRPC_STATUS_PERMISSION_DENIED), "PERMISSION_DENIED") == 0);
    CHECK(strcmp(fl_rpc_code_name((grpc_status_code)99), "UNKNOWN_CODE") == 0);

    fl_rpc_status st;
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", 5, "lung-2025", 5), GRPC_STATUS_OK);
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", FL_RPC_ANY_ROUND, "lung-2025", 2),
                 GRPC_STATUS_OK);
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", 5, "other", 5),
                 GRPC_STATUS_FAILED_PRECONDITION);
    CHECK(strcmp(st.msg, "request for study 'other', this server runs 'lung-2025'") == 0);
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", 5, "lung-2025", 3),
                 GRPC_STATUS_FAILED_PRECONDITION);
    CHECK(strcmp(st.msg, "request for round 3, study 'lung-2025' is at round 5 (stale)") == 0);
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", 5, "lung-2025", 6),
                 GRPC_STATUS_FAILED_PRECONDITION);
    CHECK(strstr(st.msg, "ahead of the server") != NULL);
    CHECK_EQ_INT(fl_rpc_check_scope(&st, "lung-2025", 5, NULL, 5), GRPC_STATUS_FAILED_PRECONDITION);

    fl_err err = {{0}};
    fl_fail(&err, FL_EFORMAT, "UpdateHeader.sha256 has 31 bytes, not 32");
    CHECK_EQ_INT(fl_rpc_status_from(&st, FL_EFORMAT, &err), GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(st.msg, err.msg) == 0);
    CHECK_EQ_INT(fl_rpc_status_set(&st, GRPC_STATUS_PERMISSION_DENIED, "client %s is not allowed",
                                   "x"),
                 GRPC_STATUS_PERMISSION_DENIED);
    CHECK(strcmp(st.msg, "client x is not allowed") == 0);

    grpc_slice d = grpc_slice_from_static_string("request for round 3, study is at round 5");
    CHECK_EQ_INT(fl_rpc_fail_status(&err, FL_RPC_NEXT_TASK, GRPC_STATUS_FAILED_PRECONDITION, d),
                 FL_EINVAL);
    CHECK(strcmp(err.msg,
                 "NextTask: FAILED_PRECONDITION: request for round 3, study is at round 5") == 0);
    CHECK_EQ_INT(fl_rpc_fail_status(&err, FL_RPC_JOIN, GRPC_STATUS_OK, d), FL_OK);
    CHECK_EQ_INT(fl_rpc_fail_status(&err, FL_RPC_JOIN, GRPC_STATUS_UNAVAILABLE, grpc_empty_slice()),
                 FL_EIO);
    CHECK(strcmp(err.msg, "Join: UNAVAILABLE: ") == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* the deterministic mutation fuzz loop                                                        */

typedef struct {
    uint8_t *b;
    size_t n;
} seed;

/* The valid encodings the fuzz loop (and the libFuzzer corpus) starts from, each with its
 * selector byte in front. Returns the count; each seed's bytes are malloc'd. */
static int fuzz_seeds(seed *out, int cap) {
    const ProtobufCMessage *msgs[32];
    int n_msgs = sample_list(&S, msgs), k = 0;
    for (int i = 0; i < n_msgs && k < cap; i++) {
        for (int sel = 0; sel < FUZZ_N_SEL && k < cap; sel++) {
            int match = sel < FUZZ_N_TYPES ? fuzz_types[sel] == msgs[i]->descriptor
                        : sel == FUZZ_SEL_MODEL_CHUNK
                            ? msgs[i]->descriptor == &fedlung__v1__model_chunk__descriptor
                        : sel == FUZZ_SEL_UPDATE_CHUNK
                            ? msgs[i]->descriptor == &fedlung__v1__update_chunk__descriptor
                            : msgs[i]->descriptor == &fedlung__v1__join_request__descriptor;
            if (!match) continue;
            size_t n;
            uint8_t *b = pack(msgs[i], &n);
            int extra = sel == FUZZ_SEL_FLATTEN ? 2 : 0; /* the two cut points */
            out[k].b = malloc(n + 1 + extra);
            out[k].b[0] = (uint8_t)sel;
            if (extra) out[k].b[1] = 17, out[k].b[2] = 101;
            memcpy(out[k].b + 1 + extra, b, n);
            out[k].n = n + 1 + extra;
            free(b);
            k++;
        }
    }
    return k;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Applies 1-4 mutations to b (n bytes, capacity cap) and returns the new length. Byte 0 (the
 * selector) is left alone. */
static size_t mutate(uint8_t *b, size_t n, size_t cap, uint64_t *rng) {
    int k = 1 + (int)(xorshift(rng) % 4);
    for (int i = 0; i < k; i++) {
        size_t at = n > 1 ? 1 + xorshift(rng) % (n - 1) : 1;
        switch (xorshift(rng) % 7) {
        case 0: /* flip a bit */
            if (at < n) b[at] ^= (uint8_t)(1u << (xorshift(rng) % 8));
            break;
        case 1: /* a random byte */
            if (at < n) b[at] = (uint8_t)xorshift(rng);
            break;
        case 2: /* insert a byte */
            if (n < cap && at <= n) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = (uint8_t)xorshift(rng);
                n++;
            }
            break;
        case 3: /* delete a byte */
            if (at < n) {
                memmove(b + at, b + at + 1, n - at - 1);
                n--;
            }
            break;
        case 4: /* truncate */
            if (at < n) n = at;
            break;
        case 5: /* a huge varint (a length prefix or a value) */
            if (at + 5 <= n) memcpy(b + at, "\xff\xff\xff\xff\x0f", 5);
            break;
        case 6: /* duplicate a span (a repeated field) */
            if (n > 1 && at < n) {
                size_t len = 1 + xorshift(rng) % (n - at);
                if (n + len <= cap) {
                    memmove(b + at + len, b + at, n - at);
                    n += len;
                }
            }
            break;
        }
    }
    return n;
}

static void test_fuzz_loop(void) {
    seed seeds[64];
    int n_seeds = fuzz_seeds(seeds, 64);
    CHECK(n_seeds >= FUZZ_N_SEL);
    uint64_t rng = 0x5eedf00dcafe1234u;
    int before = fl_test_failures, iters = 100000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int i;
    for (i = 0; i < iters && fl_test_failures == before; i++) {
        const seed *s = &seeds[i < n_seeds ? i : (int)(xorshift(&rng) % (uint64_t)n_seeds)];
        size_t cap = s->n * 2 + 16;
        uint8_t *b = malloc(cap);
        memcpy(b, s->b, s->n);
        size_t n = i < n_seeds ? s->n : mutate(b, s->n, cap, &rng);
        uint8_t *exact = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(exact, b, n);
        fl_fuzz_decode(exact, n);
        free(exact);
        free(b);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("fuzz loop: %d inputs from %d seeds, %ld decoded, in %.2f s\n", i, n_seeds,
           fuzz_accepted, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    CHECK(fuzz_accepted > i / 20); /* the mutants are not all trivially refused */
    for (int i = 0; i < n_seeds; i++) free(seeds[i].b);
    fl_fuzz_cleanup();
}

/* ------------------------------------------------------------------------------------------ */
/* modes for tests/check_proto_python.sh and the libFuzzer corpus                              */

static char *join_path(const char *dir, const char *name) {
    static char path[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_msg(const char *dir, const char *name, const ProtobufCMessage *m) {
    size_t n;
    uint8_t *b = pack(m, &n);
    fl_test_write_file(join_path(dir, name), b, n);
    free(b);
}

static void write_bb(const char *dir, const char *name, grpc_byte_buffer *bb) {
    size_t n;
    uint8_t *b = fuzz_bb_bytes(bb, &n);
    fl_test_write_file(join_path(dir, name), b, n);
    free(b);
}

/* C's encodings for Python to decode; the chunks come from the zero-copy encoders. */
static int write_samples(const char *dir) {
    fl_err err = {{0}};
    grpc_byte_buffer *bb;
    write_msg(dir, "join_request.bin", &S.join_req.base);
    write_msg(dir, "task.bin", &S.task.base);
    write_msg(dir, "eval_report.bin", &S.eval.base);
    write_msg(dir, "status_reply.bin", &S.status_reply.base);
    write_msg(dir, "update_header.bin", &S.update_chunk_hdr.base);
    CHECK_OK(fl_rpc_model_chunk_bb(&S.model_hdr, 8192, S.payload, PAYLOAD, NULL, NULL, &bb, &err),
             &err);
    write_bb(dir, "model_chunk.bin", bb);
    CHECK_OK(fl_rpc_update_data_bb(1 << 20, S.payload, PAYLOAD, NULL, NULL, &bb, &err), &err);
    write_bb(dir, "update_data.bin", bb);
    return fl_test_summary("test_proto --write-samples");
}

/* Python's encodings (tests/check_proto_python.sh writes them with these values). */
static int read_samples(const char *dir) {
    fl_err err = {{0}};
    fl_rpc_chunk c;
    size_t n;
    uint8_t *b = (uint8_t *)fl_test_read_file(join_path(dir, "py_model_chunk.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_model_chunk_parse(b, n, &c, &err), &err);
        CHECK_EQ_INT(c.offset, 1048576);
        CHECK_EQ_INT(c.len, 1000);
        for (size_t i = 0; i < c.len; i++)
            if (c.data[i] != (uint8_t)(i * 7)) {
                fl_test_fail_at(__FILE__, __LINE__, "py_model_chunk byte %zu", i);
                break;
            }
        CHECK(c.model_header && strcmp(c.model_header->study_id, "py-study") == 0);
        CHECK(c.model_header && c.model_header->n_params == 250 && c.model_header->n_buffers == 6);
        fl_rpc_chunk_clear(&c);
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_update_data.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_update_chunk_parse(b, n, &c, &err), &err);
        CHECK(c.offset == 4096 && c.len == 1000 && c.data && c.data[999] == (uint8_t)(999 * 7));
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_update_header.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        CHECK_OK(fl_rpc_update_chunk_parse(b, n, &c, &err), &err);
        CHECK(c.update_header && c.update_header->length == 1024);
        CHECK(c.update_header &&
              c.update_header->encoding == FEDLUNG__V1__ENCODING__ENCODING_FLOAT32);
        fl_rpc_chunk_clear(&c);
        free(b);
    }
    b = (uint8_t *)fl_test_read_file(join_path(dir, "py_join_request.bin"), &n);
    CHECK(b != NULL);
    if (b) {
        ProtobufCMessage *u;
        CHECK_OK(fl_rpc_unpack_mem(&fedlung__v1__join_request__descriptor, b, n,
                                   FL_RPC_MAX_MESSAGE, &u, &err),
                 &err);
        Fedlung__V1__JoinRequest *j = (Fedlung__V1__JoinRequest *)u;
        CHECK(j && strcmp(j->study_id, "py-study") == 0 && j->data &&
              j->data->n_class_names == 3 && j->data->patients_per_class[2] == 31);
        if (u) protobuf_c_message_free_unpacked(u, NULL);
        free(b);
    }
    return fl_test_summary("test_proto --read-samples");
}

static int write_corpus(const char *dir) {
    seed seeds[64];
    int n = fuzz_seeds(seeds, 64);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "seed-%02d", i);
        fl_test_write_file(join_path(dir, name), seeds[i].b, seeds[i].n);
        free(seeds[i].b);
    }
    printf("%d seeds in %s\n", n, dir);
    return fl_test_summary("test_proto --write-corpus");
}

int main(int argc, char **argv) {
    samples_init(&S);
    if (argc == 2 && strcmp(argv[1], "--print-methods") == 0) {
        for (int i = 0; i < FL_RPC_N_METHODS; i++) printf("%s\n", fl_rpc_methods[i].path);
        return 0;
    }
    grpc_init();
    int rc = -1;
    if (argc == 3 && strcmp(argv[1], "--write-samples") == 0) rc = write_samples(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--read-samples") == 0) rc = read_samples(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) rc = write_corpus(argv[2]);
    if (argc == 1) {
        test_methods();
        test_round_trips();
        test_validation();
        test_malformed();
        test_chunks();
        test_pool();
        test_status();
        test_fuzz_loop();
        rc = fl_test_summary("test_proto");
    }
    grpc_shutdown();
    if (rc < 0) {
        fprintf(stderr, "usage: test_proto [--print-methods | --write-samples DIR | "
                        "--read-samples DIR | --write-corpus DIR]\n");
        return 2;
    }
    return rc;
}
