/* test_proto.c - proto/'s messages: every message of fedlung.proto through protobuf-c and
 * through grpc_byte_buffer (one slice and several) and back to the same bytes; the method table
 * against the service descriptor; validation's refusals and their sentences; malformed input
 * (random bytes, every truncation, huge length prefixes, messages over the limit) refused
 * cleanly; the status mapping. The hand-written chunk code, the pool and the fuzz loop are in
 * test_proto_chunks.c. `test_proto --print-methods` prints the method table for
 * tests/check_proto_python.sh. */
#include <grpc/grpc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proto/rpc.h"
#include "proto_test.h"
#include "server/study.h"

static proto_samples S;

static void test_methods(void) {
    fl_err err = {{0}};
    CHECK_OK(fl_rpc_check_methods(&err), &err);
    for (int i = 0; i < FL_RPC_N_METHODS; i++) {
        CHECK_EQ_INT(fl_rpc_method_find(grpc_slice_from_static_string(fl_rpc_methods[i].path)), i);
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
    int n_msgs = proto_sample_list(&S, msgs);
    fl_rpc_pool *pool = fl_rpc_pool_new(FL_RPC_MAX_MESSAGE, 2);
    fl_err err = {{0}};
    for (int i = 0; i < n_msgs; i++) {
        const ProtobufCMessage *m = msgs[i];
        const char *name = m->descriptor->short_name;
        size_t n1, n2, n3;
        uint8_t *b1 = proto_pack(m, &n1);
        ProtobufCMessage *u = NULL;
        CHECK_OK(fl_rpc_unpack_mem(m->descriptor, b1, n1, FL_RPC_MAX_MESSAGE, &u, &err), &err);
        if (!u) {
            fprintf(stderr, "  (message %s)\n", name);
            free(b1);
            continue;
        }
        uint8_t *b2 = proto_pack(u, &n2);
        if (!proto_same(b1, n1, b2, n2))
            fl_test_fail_at(__FILE__, __LINE__, "%s: repack differs", name);
        protobuf_c_message_free_unpacked(u, NULL);
        free(b2);

        grpc_byte_buffer *bb = NULL;
        CHECK_OK(fl_rpc_pack(m, &bb, &err), &err);
        CHECK_EQ_INT(grpc_byte_buffer_length(bb), n1);
        CHECK_OK(fl_rpc_unpack(m->descriptor, bb, FL_RPC_MAX_MESSAGE, &u, &err), &err);
        grpc_byte_buffer_destroy(bb);
        if (u) {
            uint8_t *b3 = proto_pack(u, &n3);
            if (!proto_same(b1, n1, b3, n3))
                fl_test_fail_at(__FILE__, __LINE__, "%s: through a byte buffer differs", name);
            free(b3);
            protobuf_c_message_free_unpacked(u, NULL);
        }

        bb = proto_split_bb(b1, n1, 3);
        fl_rpc_flat f;
        CHECK_OK(fl_rpc_flatten(bb, FL_RPC_MAX_MESSAGE, pool, &f, &err), &err);
        grpc_byte_buffer_destroy(bb); /* the flat copy does not depend on bb */
        CHECK(proto_same(f.data, f.len, b1, n1));
        /* Several slices are copied into a pool buffer (gRPC merges tiny ones into one). */
        CHECK(f.buf != NULL || (f.has_slice && n1 < 64));
        CHECK_EQ_INT(fl_rpc_pool_get_stats(pool).out, f.buf != NULL);
        fl_rpc_flat_release(&f);
        free(b1);
    }
    /* A few values after the trip, so equal bytes are not trivially equal. */
    size_t n;
    uint8_t *b = proto_pack(&S.eval.base, &n);
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
    proto_samples_init(&S);
}
#define INVALID(msg, text) expect_invalid(&(msg).base, text, __LINE__)

/* S.eval in its noised form (DP, eval_noise_multiplier 4): real counts, some negative. */
static double noised_hist[24], noised_pc[3];
static void noised_eval(void) {
    for (int i = 0; i < 24; i++) noised_hist[i] = i - 3.5;
    for (int k = 0; k < 3; k++) noised_pc[k] = 10.25 - 7 * k;
    Fedlung__V1__EvalReport *e = &S.eval;
    e->n_histogram = e->n_patients_per_class = 0;
    e->histogram = e->patients_per_class = NULL;
    e->patients = 0;
    e->n_noised_histogram = 24;
    e->noised_histogram = noised_hist;
    e->n_noised_patients_per_class = 3;
    e->noised_patients_per_class = noised_pc;
    e->noised_patients = -1.5;
    e->loss_sum = -3.25; /* noised: may be negative */
    e->noise_multiplier = 4;
}

/* EvalReport: one form or the other, exact or noised (docs/protocol.md, fields 20-23). */
static void test_eval_forms(void) {
    fl_err err = {{0}};
    noised_eval();
    CHECK_OK(fl_rpc_validate(&S.eval.base, &err), &err);
    size_t n;
    uint8_t *b = proto_pack(&S.eval.base, &n);
    ProtobufCMessage *u = NULL;
    CHECK_OK(fl_rpc_unpack_mem(&fedlung__v1__eval_report__descriptor, b, n, n, &u, &err), &err);
    if (u) {
        Fedlung__V1__EvalReport *e = (Fedlung__V1__EvalReport *)u;
        CHECK_EQ_INT(e->n_histogram, 0);
        CHECK_EQ_INT(e->n_noised_histogram, 24);
        CHECK_CLOSE(e->noised_histogram[1], -2.5, 0, 0);
        CHECK_CLOSE(e->noised_patients_per_class[2], -3.75, 0, 0);
        CHECK_CLOSE(e->noised_patients, -1.5, 0, 0);
        CHECK_CLOSE(e->noise_multiplier, 4, 0, 0);
        CHECK_CLOSE(e->loss_sum, -3.25, 0, 0);
        protobuf_c_message_free_unpacked(u, NULL);
    }
    free(b);
    noised_eval();
    S.eval.patients = 3;
    INVALID(S.eval, "EvalReport has both the exact counts and the noised ones");
    noised_eval();
    S.eval.n_noised_histogram = 23;
    INVALID(S.eval, "EvalReport.noised_histogram has 23 counts, not n_classes * 2 * bins = 24");
    noised_eval();
    S.eval.noise_multiplier = 0;
    INVALID(S.eval, "a noised report needs a noise_multiplier > 0");
    noised_eval();
    noised_hist[7] = NAN;
    INVALID(S.eval, "EvalReport.noised_histogram[7] is not finite");
    noised_eval();
    S.eval.loss_sum = INFINITY;
    INVALID(S.eval, "finite loss_sum");
    noised_eval();
    S.eval.n_noised_patients_per_class = 2;
    INVALID(S.eval, "EvalReport.noised_patients_per_class has 2 counts for 3 classes");
    /* the exact form carries no noised field */
    S.eval.noise_multiplier = 4;
    INVALID(S.eval, "has noised counts or a noise_multiplier but no noised_histogram");
    S.eval.noised_patients = 2;
    INVALID(S.eval, "has noised counts or a noise_multiplier but no noised_histogram");
    S.eval.loss_sum = -1;
    INVALID(S.eval, "EvalReport.loss_sum is -1");
}

/* The server takes the form its plan asks for (server/study.h fl_study_eval_form_ok). */
static void test_eval_plan_form(void) {
    static const char *const plans[3] = {
        "", /* no DP: exact reports */
        "[privacy]\nmechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\n"
        "sample_rate = 0.1\n", /* DP: noised at the default z_e 4 */
        "[privacy]\nmechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\n"
        "dp_clients = 3\neval_noise_multiplier = 0\n", /* DP, exact reports */
    };
    fl_err err = {{0}};
    char text[512], why[192];
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof text,
                 "[study]\nid = lung-2025\nclasses = A,B,C\nphases = fusion\n"
                 "[fusion]\nmodalities = rna\nstandardize = site\nrna_names = G1\n%s",
                 plans[i]);
        fl_plan p;
        CHECK_OK(fl_plan_parse(text, strlen(text), "p", &p, &err), &err);
        if (fl_test_failures) return;
        int want_noised = i == 1;
        proto_samples_init(&S); /* exact */
        why[0] = 0;
        CHECK_EQ_INT(fl_study_eval_form_ok(&p, &S.eval, why, sizeof why), !want_noised);
        if (want_noised)
            CHECK(strstr(why, "an un-noised report under a plan that asks for noised"));
        noised_eval(); /* z 4 */
        why[0] = 0;
        CHECK_EQ_INT(fl_study_eval_form_ok(&p, &S.eval, why, sizeof why), want_noised);
        if (!want_noised) CHECK(strstr(why, "a noised report under a plan that has exact ones"));
        S.eval.noise_multiplier = 3;
        CHECK_EQ_INT(fl_study_eval_form_ok(&p, &S.eval, why, sizeof why), 0);
        if (want_noised)
            CHECK(strstr(why, "noise multiplier 3, the plan's eval_noise_multiplier is 4"));
        fl_plan_destroy(&p);
    }
    proto_samples_init(&S);
}

/* The secure-aggregation messages: key, signature and ciphertext lengths, indices, lists. */
static void test_secagg_validation(void) {
    fl_err err = {{0}};
    uint8_t k[32] = {1}, sig[64] = {2}, ct[88] = {3}, cert[4097] = {4};
    Fedlung__V1__SecAggAdvert a = FEDLUNG__V1__SEC_AGG_ADVERT__INIT;
    a.study_id = "s";
    a.round = 2;
    a.index = 1;
    a.client_id = "";
    a.c_pk = (ProtobufCBinaryData){32, k};
    a.s_pk = (ProtobufCBinaryData){32, k};
    a.signature = (ProtobufCBinaryData){64, sig};
    a.certificate = (ProtobufCBinaryData){600, cert};
    CHECK_OK(fl_rpc_validate(&a.base, &err), &err);
    a.certificate.len = 0; /* no certificate: no identity to check the signature with */
    CHECK(fl_rpc_validate(&a.base, &err) == FL_EFORMAT);
    CHECK_MSG(err, "certificate");
    a.certificate.len = 4097;
    CHECK(fl_rpc_validate(&a.base, &err) == FL_EFORMAT);
    a.certificate.len = 4096;
    CHECK_OK(fl_rpc_validate(&a.base, &err), &err);
    a.c_pk.len = 31;
    CHECK(fl_rpc_validate(&a.base, &err) == FL_EFORMAT);
    a.c_pk.len = 32;
    a.index = 0;
    CHECK(fl_rpc_validate(&a.base, &err) == FL_EFORMAT);
    a.index = 1;
    a.signature.len = 0;
    CHECK(fl_rpc_validate(&a.base, &err) == FL_EFORMAT);
    a.signature.len = 64;

    Fedlung__V1__SecAggShare sh = FEDLUNG__V1__SEC_AGG_SHARE__INIT, *shp = &sh;
    sh.from = 1;
    sh.to = 2;
    sh.ciphertext = (ProtobufCBinaryData){88, ct};
    Fedlung__V1__SecAggShares ss = FEDLUNG__V1__SEC_AGG_SHARES__INIT;
    ss.study_id = "s";
    ss.n_shares = 1;
    ss.shares = &shp;
    CHECK_OK(fl_rpc_validate(&ss.base, &err), &err);
    sh.to = 1; /* a share for oneself */
    CHECK(fl_rpc_validate(&ss.base, &err) == FL_EFORMAT);
    sh.to = 2;
    sh.ciphertext.len = 87;
    CHECK(fl_rpc_validate(&ss.base, &err) == FL_EFORMAT);
    sh.ciphertext.len = 88;

    Fedlung__V1__SecAggUnmaskReply u = FEDLUNG__V1__SEC_AGG_UNMASK_REPLY__INIT;
    uint32_t peers[2] = {1, 3}, unsorted[2] = {3, 1};
    ProtobufCBinaryData shares[2] = {{32, k}, {32, k}};
    u.study_id = "s";
    u.index = 2;
    u.n_b_peer = 2;
    u.b_peer = peers;
    u.n_b_share = 2;
    u.b_share = shares;
    CHECK_OK(fl_rpc_validate(&u.base, &err), &err);
    u.b_peer = unsorted;
    CHECK(fl_rpc_validate(&u.base, &err) == FL_EFORMAT);
    u.b_peer = peers;
    u.n_b_share = 1;
    CHECK(fl_rpc_validate(&u.base, &err) == FL_EFORMAT);
    u.n_b_share = 2;
    shares[1].len = 31;
    CHECK(fl_rpc_validate(&u.base, &err) == FL_EFORMAT);

    Fedlung__V1__Task t = FEDLUNG__V1__TASK__INIT;
    Fedlung__V1__SecAggParams p = FEDLUNG__V1__SEC_AGG_PARAMS__INIT;
    t.study_id = "s";
    t.kind = FEDLUNG__V1__TASK_KIND__TASK_KIND_SECAGG_ADVERTISE;
    t.reason = "";
    p.index = 1;
    p.n = 4;
    p.threshold = 3;
    p.dim = 10;
    p.fixed_scale = 1024;
    t.secagg = &p;
    CHECK_OK(fl_rpc_validate(&t.base, &err), &err);
    p.threshold = 2; /* t must exceed n / 2 */
    CHECK(fl_rpc_validate(&t.base, &err) == FL_EFORMAT);
    p.threshold = 3;
    p.index = 5;
    CHECK(fl_rpc_validate(&t.base, &err) == FL_EFORMAT);

    Fedlung__V1__TaskRequest r = FEDLUNG__V1__TASK_REQUEST__INIT;
    r.study_id = "s";
    r.refused_reason = "refused: over budget";
    CHECK(fl_rpc_validate(&r.base, &err) == FL_EFORMAT); /* a reason without a round */
    r.refused_round = 3;
    CHECK_OK(fl_rpc_validate(&r.base, &err), &err);
}

static void test_validation(void) {
    fl_err err = {{0}};
    const ProtobufCMessage *msgs[32];
    int n_msgs = proto_sample_list(&S, msgs);
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
    S.join_reply.plan_hash.len = 31;
    INVALID(S.join_reply, "JoinReply.plan_hash has 31 bytes, not 32");
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
    S.update_hdr.clip_bit = -2.5; /* a noised bit may be anything finite */
    CHECK_OK(fl_rpc_validate(&S.update_hdr.base, &err), &err);
    S.update_hdr.clip_bit = NAN;
    INVALID(S.update_hdr, "UpdateHeader.clip_bit is nan");
    S.update_hdr.clip_bit = 0;
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
    uint8_t *b = proto_pack(&S.eval.base, &n);
    ProtobufCMessage *u = (ProtobufCMessage *)1;
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__eval_report__descriptor, b, n, n, &u, &err) ==
          FL_EFORMAT);
    CHECK(u == NULL);
    CHECK_MSG(err, "EvalReport.histogram has 20 counts");
    free(b);
    proto_samples_init(&S);
}

/* Bytes no decoder may accept, bytes it may take or leave, and messages over the limit. */
static void test_malformed(void) {
    fl_err err = {{0}};
    ProtobufCMessage *u;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    int refused = 0, tried = 0;
    /* Random bytes: refused or (rarely) a valid message; never a crash. */
    const ProtobufCMessage *types[32];
    int n_types = proto_sample_list(&S, types);
    for (int t = 0; t < n_types; t++) {
        for (int k = 0; k < 100; k++) {
            uint8_t buf[300];
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t n = rng % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                buf[i] = (uint8_t)rng;
            }
            fl_status st = fl_rpc_unpack_mem(types[t]->descriptor, buf, n, sizeof buf, &u, &err);
            CHECK(st == FL_OK || st == FL_EFORMAT);
            if (st == FL_OK) protobuf_c_message_free_unpacked(u, NULL);
            refused += st != FL_OK, tried++;
        }
    }
    CHECK(refused > tried * 9 / 10);

    /* Every truncation of every sample: refused or valid, never a crash; cutting inside the
     * last field is always refused. */
    const ProtobufCMessage *msgs[32];
    int n_msgs = proto_sample_list(&S, msgs);
    for (int i = 0; i < n_msgs; i++) {
        size_t n;
        uint8_t *b = proto_pack(msgs[i], &n);
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
    static const uint8_t tag0[] = {0x80, 0x00, 0x03}; /* tag 0 as an over-long varint */
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__data_chunk__descriptor, tag0, sizeof tag0, 64, &u,
                            &err) == FL_EFORMAT);
    CHECK_MSG(err, "DataChunk has a field numbered 0");

    /* Over the limit: before any decoding; RESOURCE_EXHAUSTED when answered. */
    size_t n;
    uint8_t *b = proto_pack(&S.join_req.base, &n);
    CHECK(fl_rpc_unpack_mem(&fedlung__v1__join_request__descriptor, b, n, n - 1, &u, &err) ==
          FL_ENOMEM);
    CHECK_MSG(err, "exceeds the limit of");
    grpc_byte_buffer *bb = proto_split_bb(b, n, 2);
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
    CHECK_EQ_INT(
        fl_rpc_status_set(&st, GRPC_STATUS_PERMISSION_DENIED, "client %s is not allowed", "x"),
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

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--print-methods") == 0) {
        static const char *const kinds[] = {"unary", "server-stream", "client-stream"};
        for (int i = 0; i < FL_RPC_N_METHODS; i++)
            printf("%s\t%s\n", fl_rpc_methods[i].path, kinds[fl_rpc_methods[i].kind]);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_proto [--print-methods]\n");
        return 2;
    }
    proto_samples_init(&S);
    grpc_init();
    test_methods();
    test_round_trips();
    test_validation();
    test_secagg_validation();
    test_eval_forms();
    test_eval_plan_form();
    test_malformed();
    test_status();
    grpc_shutdown();
    return fl_test_summary("test_proto");
}
