/* rpc_validate.c - what a decoded message must satisfy beyond the wire format: identifiers and
 * text, hash lengths, known enum values, finite numbers in range, sizes that agree. Every
 * message the server or the client unpacks passes here before any logic sees it, so handlers
 * can trust, say, that an EvalReport's histogram has n_classes * 2 * bins counts. Not the
 * protocol's state checks (study, round, deadlines): those are the server's. */
#include "rpc_impl.h"

#include <math.h>
#include <string.h>

#define TRY(x)                      \
    do {                            \
        fl_status s_ = (x);         \
        if (s_ != FL_OK) return s_; \
    } while (0)

/* ---- field checks; `msg` is the message's short name, `field` the field's ---- */

static fl_status check_id(const char *msg, const char *field, const char *s, fl_err *err) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0) return fl_fail(err, FL_EFORMAT, "%s.%s is empty", msg, field);
    if (n > FL_RPC_MAX_ID)
        return fl_fail(err, FL_EFORMAT, "%s.%s has %zu bytes, more than %d", msg, field, n,
                       FL_RPC_MAX_ID);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return fl_fail(err, FL_EFORMAT,
                           "%s.%s has the byte 0x%02x at %zu (allowed: "
                           "A-Z a-z 0-9 . _ -)",
                           msg, field, c, i);
    }
    return FL_OK;
}

/* Text that ends up in logs: at most max bytes, no control characters (no forged log lines). */
static fl_status check_text(const char *msg, const char *field, const char *s, size_t max,
                            fl_err *err) {
    size_t n = s ? strlen(s) : 0;
    if (n > max)
        return fl_fail(err, FL_EFORMAT, "%s.%s has %zu bytes, more than %zu", msg, field, n, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return fl_fail(err, FL_EFORMAT, "%s.%s has the control character 0x%02x at %zu", msg,
                           field, (unsigned char)s[i], i);
    return FL_OK;
}

static fl_status check_hash(const char *msg, const char *field, ProtobufCBinaryData h, int required,
                            fl_err *err) {
    if (h.len == 32 || (h.len == 0 && !required)) return FL_OK;
    return fl_fail(err, FL_EFORMAT, "%s.%s has %zu bytes, not 32", msg, field, h.len);
}

/* A value the enum declares; UNSPECIFIED (0) too unless `specified`. */
static fl_status check_enum(const char *msg, const char *field, int v,
                            const ProtobufCEnumDescriptor *d, int specified, fl_err *err) {
    if (!protobuf_c_enum_descriptor_get_value(d, v))
        return fl_fail(err, FL_EFORMAT, "%s.%s is %d, not a %s", msg, field, v, d->short_name);
    if (specified && v == 0) return fl_fail(err, FL_EFORMAT, "%s.%s is unspecified", msg, field);
    return FL_OK;
}

static fl_status check_range(const char *msg, const char *field, double v, double lo, double hi,
                             fl_err *err) {
    if (isfinite(v) && v >= lo && v <= hi) return FL_OK;
    return fl_fail(err, FL_EFORMAT, "%s.%s is %g, outside [%g, %g]", msg, field, v, lo, hi);
}

static fl_status check_count(const char *msg, const char *field, size_t n, size_t max,
                             fl_err *err) {
    if (n <= max) return FL_OK;
    return fl_fail(err, FL_EFORMAT, "%s.%s has %zu entries, more than %zu", msg, field, n, max);
}

/* A model or update of `length` bytes = 4 * (n_params + n_buffers) float32 or uint32 values. */
static fl_status check_slabs(const char *msg, uint64_t length, uint64_t n_params,
                             uint64_t n_buffers, fl_err *err) {
    uint64_t max = FL_RPC_MAX_MODEL / 4;
    if (n_params > max || n_buffers > max - n_params || length > FL_RPC_MAX_MODEL)
        return fl_fail(err, FL_EFORMAT, "%s is larger than the limit of %llu bytes", msg,
                       (unsigned long long)FL_RPC_MAX_MODEL);
    if (length != 4 * (n_params + n_buffers))
        return fl_fail(err, FL_EFORMAT,
                       "%s announces %llu bytes for %llu parameters and %llu buffers (4 bytes "
                       "each)",
                       msg, (unsigned long long)length, (unsigned long long)n_params,
                       (unsigned long long)n_buffers);
    return FL_OK;
}

fl_status fl_rpc__check_chunk(const char *what, uint64_t offset, size_t len, fl_err *err) {
    if (len > FL_RPC_CHUNK_MAX)
        return fl_fail(err, FL_EFORMAT, "%s of %zu bytes exceeds the chunk limit of %u", what, len,
                       FL_RPC_CHUNK_MAX);
    if (offset > FL_RPC_MAX_MODEL - len)
        return fl_fail(err, FL_EFORMAT, "%s at offset %llu lies beyond the largest model", what,
                       (unsigned long long)offset);
    return FL_OK;
}

/* Unknown fields are kept for forward compatibility, but not one numbered 0: protobuf-c takes a
 * zero tag in an over-long varint, and re-encoding it would give bytes it refuses. Walks the
 * nested messages too. */
static fl_status check_unknown(const ProtobufCMessage *m, fl_err *err) {
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return fl_fail(err, FL_EFORMAT, "%s has a field numbered 0", m->descriptor->short_name);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        size_t n = 1;
        ProtobufCMessage *const *sub = (ProtobufCMessage *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            sub = *(ProtobufCMessage *const *const *)sub;
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
            continue; /* the union holds another member of the oneof */
        }
        for (size_t j = 0; j < n; j++)
            if (sub[j]) TRY(check_unknown(sub[j], err));
    }
    return FL_OK;
}

/* ---- messages ---- */

static fl_status join_request(const Fedlung__V1__JoinRequest *m, fl_err *err) {
    const char *n = "JoinRequest";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_text(n, "software_version", m->software_version, FL_RPC_MAX_TEXT, err));
    TRY(check_count(n, "approved_plan_hashes", m->n_approved_plan_hashes, FL_RPC_MAX_LIST, err));
    for (size_t i = 0; i < m->n_approved_plan_hashes; i++)
        TRY(check_hash(n, "approved_plan_hashes", m->approved_plan_hashes[i], 1, err));
    const Fedlung__V1__DataSummary *d = m->data;
    if (d) {
        n = "JoinRequest.data";
        TRY(check_count(n, "class_names", d->n_class_names, FL_RPC_MAX_CLASSES, err));
        for (size_t i = 0; i < d->n_class_names; i++)
            TRY(check_text(n, "class_names", d->class_names[i], FL_RPC_MAX_TEXT, err));
        /* none: a hospital with a privacy budget withholds its counts */
        if (d->n_patients_per_class && d->n_patients_per_class != d->n_class_names)
            return fl_fail(err, FL_EFORMAT, "%s has %zu patient counts for %zu classes", n,
                           d->n_patients_per_class, d->n_class_names);
        TRY(check_count(n, "modalities", d->n_modalities, FL_RPC_MAX_LIST, err));
        for (size_t i = 0; i < d->n_modalities; i++)
            if (d->modalities[i]) {
                TRY(check_enum(n, "modalities.modality", d->modalities[i]->modality,
                               &fedlung__v1__modality__descriptor, 1, err));
                TRY(check_hash(n, "modalities.features_sha256",
                               d->modalities[i]->features_sha256, 0, err));
            }
    }
    const Fedlung__V1__PrivacyBudget *b = m->budget;
    if (b) {
        n = "JoinRequest.budget";
        TRY(check_range(n, "epsilon_max", b->epsilon_max, 0, INFINITY, err));
        TRY(check_range(n, "epsilon_spent", b->epsilon_spent, 0, INFINITY, err));
        TRY(check_range(n, "delta", b->delta, 0, 1, err));
    }
    return FL_OK;
}

static fl_status join_reply(const Fedlung__V1__JoinReply *m, fl_err *err) {
    const char *n = "JoinReply";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_text(n, "client_id", m->client_id, FL_RPC_MAX_TEXT, err));
    /* empty while the server runs no plan yet (Join and Status only); a client trains on no
     * task whose plan it has not approved, so an empty hash approves nothing */
    TRY(check_hash(n, "plan_hash", m->plan_hash, 0, err));
    if (m->plan.len > FL_RPC_MAX_PLAN)
        return fl_fail(err, FL_EFORMAT, "%s.plan has %zu bytes, more than %u", n, m->plan.len,
                       FL_RPC_MAX_PLAN);
    TRY(check_enum(n, "phase", m->phase, &fedlung__v1__phase__descriptor, 0, err));
    return check_text(n, "server_version", m->server_version, FL_RPC_MAX_TEXT, err);
}

static fl_status task_secagg(const Fedlung__V1__Task *m, fl_err *err);

static fl_status task(const Fedlung__V1__Task *m, fl_err *err) {
    const char *n = "Task";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_enum(n, "kind", m->kind, &fedlung__v1__task_kind__descriptor, 1, err));
    TRY(check_text(n, "reason", m->reason, FL_RPC_MAX_TEXT, err));
    TRY(check_enum(n, "phase", m->phase, &fedlung__v1__phase__descriptor, 0, err));
    /* Every task but the statistics phase's works on a global model. */
    int work = (m->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_TRAIN ||
                m->kind == FEDLUNG__V1__TASK_KIND__TASK_KIND_EVAL) &&
               m->phase != FEDLUNG__V1__PHASE__PHASE_STATISTICS;
    TRY(check_hash(n, "model_sha256", m->model_sha256, work, err));
    TRY(check_hash(n, "plan_hash", m->plan_hash, 0, err));
    const Fedlung__V1__HyperParameters *h = m->hyper;
    if (h) {
        n = "Task.hyper";
        TRY(check_range(n, "lr", h->lr, 0, INFINITY, err));
        TRY(check_range(n, "fedprox_mu", h->fedprox_mu, 0, INFINITY, err));
        TRY(check_enum(n, "optimizer", h->optimizer, &fedlung__v1__optimizer__descriptor, 0, err));
        TRY(check_range(n, "momentum", h->momentum, 0, 1, err));
        TRY(check_range(n, "weight_decay", h->weight_decay, 0, INFINITY, err));
    }
    const Fedlung__V1__PrivacyParams *p = m->privacy;
    if (p) {
        n = "Task.privacy";
        TRY(check_enum(n, "mechanism", p->mechanism, &fedlung__v1__dp_mechanism__descriptor, 0,
                       err));
        TRY(check_range(n, "clip_norm", p->clip_norm, 0, INFINITY, err));
        TRY(check_range(n, "noise_multiplier", p->noise_multiplier, 0, INFINITY, err));
        TRY(check_range(n, "sample_rate", p->sample_rate, 0, 1, err));
        TRY(check_range(n, "delta", p->delta, 0, 1, err));
    }
    const Fedlung__V1__UpdateSpec *u = m->update;
    if (u) {
        n = "Task.update";
        TRY(check_enum(n, "encoding", u->encoding, &fedlung__v1__encoding__descriptor, 0, err));
        TRY(check_range(n, "fixed_scale", u->fixed_scale, 0, INFINITY, err));
    }
    TRY(check_count("Task", "standardization", m->n_standardization, 4, err));
    for (size_t i = 0; i < m->n_standardization; i++) {
        const Fedlung__V1__FeatureStats *f = m->standardization[i];
        n = "Task.standardization";
        if (!f) continue;
        TRY(check_enum(n, "modality", f->modality, &fedlung__v1__modality__descriptor, 1, err));
        if (f->n_mean != f->n_index || f->n_std != f->n_index)
            return fl_fail(err, FL_EFORMAT, "%s has %zu indices, %zu means and %zu deviations", n,
                           f->n_index, f->n_mean, f->n_std);
        for (size_t j = 0; j < f->n_index; j++) {
            TRY(check_range(n, "mean", f->mean[j], -INFINITY, INFINITY, err));
            if (!(f->std[j] > 0) || !isfinite(f->std[j]))
                return fl_fail(err, FL_EFORMAT, "%s.std[%zu] is %g, not a positive number", n, j,
                               (double)f->std[j]);
        }
    }
    return task_secagg(m, err);
}

static fl_status task_request(const Fedlung__V1__TaskRequest *m, fl_err *err) {
    const char *n = "TaskRequest";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_text(n, "refused_reason", m->refused_reason, FL_RPC_MAX_TEXT, err));
    if (m->refused_round == 0 && m->refused_reason && m->refused_reason[0])
        return fl_fail(err, FL_EFORMAT, "%s.refused_reason is set but refused_round is 0", n);
    return FL_OK;
}

static fl_status model_header(const Fedlung__V1__ModelHeader *m, fl_err *err) {
    const char *n = "ModelHeader";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_slabs(n, m->total_length, m->n_params, m->n_buffers, err));
    TRY(check_hash(n, "sha256", m->sha256, 1, err));
    return check_enum(n, "phase", m->phase, &fedlung__v1__phase__descriptor, 0, err);
}

static fl_status update_header(const Fedlung__V1__UpdateHeader *m, fl_err *err) {
    const char *n = "UpdateHeader";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_enum(n, "encoding", m->encoding, &fedlung__v1__encoding__descriptor, 1, err));
    if (m->encoding == FEDLUNG__V1__ENCODING__ENCODING_FIXED32)
        TRY(check_range(n, "fixed_scale", m->fixed_scale, 0x1p-60, 0x1p60, err));
    TRY(check_slabs(n, m->length, m->n_params, m->n_buffers, err));
    TRY(check_hash(n, "sha256", m->sha256, 1, err));
    TRY(check_enum(n, "count_kind", m->count_kind, &fedlung__v1__count_kind__descriptor, 0, err));
    /* A noised count may come out negative; an exact one may not. */
    double lo = m->count_kind == FEDLUNG__V1__COUNT_KIND__COUNT_KIND_EXACT ? 0 : -INFINITY;
    TRY(check_range(n, "example_count", m->example_count, lo, INFINITY, err));
    TRY(check_range(n, "clip_norm", m->clip_norm, 0, INFINITY, err));
    TRY(check_range(n, "noise_multiplier", m->noise_multiplier, 0, INFINITY, err));
    TRY(check_range(n, "clip_bit", m->clip_bit, -INFINITY, INFINITY, err)); /* noised: finite */
    return check_enum(n, "mechanism", m->mechanism, &fedlung__v1__dp_mechanism__descriptor, 0, err);
}

static fl_status update_chunk(const Fedlung__V1__UpdateChunk *m, fl_err *err) {
    switch (m->part_case) {
    case FEDLUNG__V1__UPDATE_CHUNK__PART_HEADER:
        if (!m->header) break;
        return update_header(m->header, err);
    case FEDLUNG__V1__UPDATE_CHUNK__PART_DATA:
        if (!m->data) break;
        return fl_rpc__check_chunk("DataChunk", m->data->offset, m->data->data.len, err);
    default:
        break;
    }
    return fl_fail(err, FL_EFORMAT, "UpdateChunk carries neither header nor data");
}

static fl_status receipt(const Fedlung__V1__Receipt *m, fl_err *err) {
    const char *n = "Receipt";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_hash(n, "sha256", m->sha256, 0, err));
    return check_hash(n, "audit_hash", m->audit_hash, 0, err);
}

static fl_status eval_report(const Fedlung__V1__EvalReport *m, fl_err *err) {
    const char *n = "EvalReport";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_range(n, "n_classes", m->n_classes, 1, FL_RPC_MAX_CLASSES, err));
    TRY(check_range(n, "bins", m->bins, 1, FL_RPC_MAX_BINS, err));
    size_t want = (size_t)m->n_classes * 2 * m->bins; /* <= 64 * 2 * 1e5: no overflow */
    /* one form or the other: the exact counts, or the noised ones (docs/privacy.md) */
    int noised = m->n_noised_histogram != 0;
    size_t got = noised ? m->n_noised_histogram : m->n_histogram;
    if (noised && (m->n_histogram || m->patients || m->n_patients_per_class))
        return fl_fail(err, FL_EFORMAT,
                       "%s has both the exact counts and the noised ones (one form only)", n);
    if (got != want)
        return fl_fail(err, FL_EFORMAT,
                       "%s.%shistogram has %zu counts, not n_classes * 2 * "
                       "bins = %zu",
                       n, noised ? "noised_" : "", got, want);
    if (!noised &&
        (m->noised_patients != 0 || m->n_noised_patients_per_class || m->noise_multiplier != 0))
        return fl_fail(err, FL_EFORMAT,
                       "%s has noised counts or a noise_multiplier but no noised_histogram", n);
    if (!noised) {
        TRY(check_range(n, "loss_sum", m->loss_sum, 0, INFINITY, err));
        if (m->n_patients_per_class != 0 && m->n_patients_per_class != m->n_classes)
            return fl_fail(err, FL_EFORMAT, "%s.patients_per_class has %zu counts for %u classes",
                           n, m->n_patients_per_class, m->n_classes);
        return FL_OK;
    }
    /* noised: any finite number (a noised count may be negative) */
    TRY(check_range(n, "noise_multiplier", m->noise_multiplier, 0, INFINITY, err));
    if (!(m->noise_multiplier > 0) || !isfinite(m->loss_sum) || !isfinite(m->noised_patients))
        return fl_fail(err, FL_EFORMAT,
                       "%s: a noised report needs a noise_multiplier > 0 and finite loss_sum "
                       "and noised_patients",
                       n);
    for (size_t i = 0; i < m->n_noised_histogram; i++)
        if (!isfinite(m->noised_histogram[i]))
            return fl_fail(err, FL_EFORMAT, "%s.noised_histogram[%zu] is not finite", n, i);
    if (m->n_noised_patients_per_class != 0 && m->n_noised_patients_per_class != m->n_classes)
        return fl_fail(err, FL_EFORMAT,
                       "%s.noised_patients_per_class has %zu counts for %u classes", n,
                       m->n_noised_patients_per_class, m->n_classes);
    for (size_t i = 0; i < m->n_noised_patients_per_class; i++)
        if (!isfinite(m->noised_patients_per_class[i]))
            return fl_fail(err, FL_EFORMAT, "%s.noised_patients_per_class[%zu] is not finite", n,
                           i);
    return FL_OK;
}

static fl_status status_reply(const Fedlung__V1__StatusReply *m, fl_err *err) {
    const char *n = "StatusReply";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_enum(n, "phase", m->phase, &fedlung__v1__phase__descriptor, 0, err));
    TRY(check_range(n, "progress", m->progress, 0, 1, err));
    TRY(check_count(n, "participants", m->n_participants, FL_RPC_MAX_LIST, err));
    for (size_t i = 0; i < m->n_participants; i++) {
        const Fedlung__V1__Participant *p = m->participants[i];
        TRY(check_text("StatusReply.participants", "client_id", p->client_id, FL_RPC_MAX_TEXT,
                       err));
        TRY(check_enum("StatusReply.participants", "state", p->state,
                       &fedlung__v1__participant_state__descriptor, 0, err));
    }
    return FL_OK;
}

/* ---- secure aggregation (crypto/secagg.h's structs) ---- */

static fl_status check_index(const char *msg, const char *field, uint32_t v, fl_err *err) {
    if (v >= 1 && v <= FL_RPC_SECAGG_MAX_CLIENTS) return FL_OK;
    return fl_fail(err, FL_EFORMAT, "%s.%s is %u, not a site number from 1 to %d", msg, field, v,
                   FL_RPC_SECAGG_MAX_CLIENTS);
}

static fl_status check_bytes(const char *msg, const char *field, ProtobufCBinaryData b, size_t want,
                             fl_err *err) {
    if (b.len == want) return FL_OK;
    return fl_fail(err, FL_EFORMAT, "%s.%s has %zu bytes, not %zu", msg, field, b.len, want);
}

/* A list of site numbers, each 1..255, strictly ascending (so no site twice). */
static fl_status check_indices(const char *msg, const char *field, const uint32_t *v, size_t n,
                               fl_err *err) {
    TRY(check_count(msg, field, n, FL_RPC_SECAGG_MAX_CLIENTS, err));
    for (size_t i = 0; i < n; i++) {
        TRY(check_index(msg, field, v[i], err));
        if (i && v[i] <= v[i - 1])
            return fl_fail(err, FL_EFORMAT, "%s.%s is not strictly ascending at %zu (%u after %u)",
                           msg, field, i, v[i], v[i - 1]);
    }
    return FL_OK;
}

/* The client sends its advert without client_id (the server takes it from the TLS identity);
 * in a Task's list every advert names its site. */
static fl_status secagg_advert(const char *n, const Fedlung__V1__SecAggAdvert *m, int named,
                               fl_err *err) {
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_index(n, "index", m->index, err));
    if (named && (!m->client_id || !m->client_id[0]))
        return fl_fail(err, FL_EFORMAT, "%s.client_id is empty", n);
    TRY(check_text(n, "client_id", m->client_id, FL_RPC_MAX_ID, err));
    TRY(check_bytes(n, "c_pk", m->c_pk, FL_RPC_SECAGG_KEY_LEN, err));
    TRY(check_bytes(n, "s_pk", m->s_pk, FL_RPC_SECAGG_KEY_LEN, err));
    if (m->signature.len == 0 || m->signature.len > FL_RPC_SECAGG_SIG_MAX)
        return fl_fail(err, FL_EFORMAT, "%s.signature has %zu bytes, not 1 to %d", n,
                       m->signature.len, FL_RPC_SECAGG_SIG_MAX);
    if (m->certificate.len == 0 || m->certificate.len > FL_RPC_SECAGG_CERT_MAX)
        return fl_fail(err, FL_EFORMAT, "%s.certificate has %zu bytes, not 1 to %d", n,
                       m->certificate.len, FL_RPC_SECAGG_CERT_MAX);
    return FL_OK;
}

static fl_status secagg_share(const char *n, const Fedlung__V1__SecAggShare *m, fl_err *err) {
    if (!m) return fl_fail(err, FL_EFORMAT, "%s is missing", n);
    TRY(check_index(n, "from", m->from, err));
    TRY(check_index(n, "to", m->to, err));
    if (m->from == m->to) return fl_fail(err, FL_EFORMAT, "%s is from site %u to itself", n, m->to);
    return check_bytes(n, "ciphertext", m->ciphertext, FL_RPC_SECAGG_SHARE_CT_LEN, err);
}

static fl_status secagg_shares(const Fedlung__V1__SecAggShares *m, fl_err *err) {
    const char *n = "SecAggShares";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_count(n, "shares", m->n_shares, FL_RPC_SECAGG_MAX_CLIENTS - 1, err));
    for (size_t i = 0; i < m->n_shares; i++)
        TRY(secagg_share("SecAggShares.shares", m->shares[i], err));
    return FL_OK;
}

static fl_status secagg_unmask_reply(const Fedlung__V1__SecAggUnmaskReply *m, fl_err *err) {
    const char *n = "SecAggUnmaskReply";
    TRY(check_id(n, "study_id", m->study_id, err));
    TRY(check_index(n, "index", m->index, err));
    if (m->n_b_peer != m->n_b_share || m->n_sk_peer != m->n_sk_share)
        return fl_fail(err, FL_EFORMAT,
                       "%s has %zu b_peer and %zu b_share, %zu sk_peer and %zu sk_share", n,
                       m->n_b_peer, m->n_b_share, m->n_sk_peer, m->n_sk_share);
    TRY(check_indices(n, "b_peer", m->b_peer, m->n_b_peer, err));
    TRY(check_indices(n, "sk_peer", m->sk_peer, m->n_sk_peer, err));
    for (size_t i = 0; i < m->n_b_share; i++)
        TRY(check_bytes(n, "b_share", m->b_share[i], FL_RPC_SECAGG_KEY_LEN, err));
    for (size_t i = 0; i < m->n_sk_share; i++)
        TRY(check_bytes(n, "sk_share", m->sk_share[i], FL_RPC_SECAGG_KEY_LEN, err));
    return FL_OK;
}

/* Task fields 20-24. */
static fl_status task_secagg(const Fedlung__V1__Task *m, fl_err *err) {
    const Fedlung__V1__SecAggParams *p = m->secagg;
    const char *n = "Task.secagg";
    if (p) {
        if (p->n < 2 || p->n > FL_RPC_SECAGG_MAX_CLIENTS)
            return fl_fail(err, FL_EFORMAT, "%s.n is %u, not 2 to %d", n, p->n,
                           FL_RPC_SECAGG_MAX_CLIENTS);
        if (p->index < 1 || p->index > p->n)
            return fl_fail(err, FL_EFORMAT, "%s.index is %u, not 1 to n = %u", n, p->index, p->n);
        if (p->threshold * 2 <= p->n || p->threshold > p->n)
            return fl_fail(err, FL_EFORMAT, "%s.threshold is %u: n/2 < t <= n does not hold (n %u)",
                           n, p->threshold, p->n);
        if (p->dim < 1 || p->dim > FL_RPC_MAX_MODEL / 4)
            return fl_fail(err, FL_EFORMAT, "%s.dim is %llu, not 1 to %llu", n,
                           (unsigned long long)p->dim, (unsigned long long)(FL_RPC_MAX_MODEL / 4));
        TRY(check_enum(n, "cipher", p->cipher, &fedlung__v1__sec_agg_cipher__descriptor, 0, err));
        TRY(check_range(n, "fixed_scale", p->fixed_scale, 0x1p-60, 0x1p60, err));
    }
    TRY(check_count("Task", "secagg_adverts", m->n_secagg_adverts, FL_RPC_SECAGG_MAX_CLIENTS, err));
    for (size_t i = 0; i < m->n_secagg_adverts; i++) {
        if (!m->secagg_adverts[i]) return fl_fail(err, FL_EFORMAT, "Task.secagg_adverts is empty");
        TRY(secagg_advert("Task.secagg_adverts", m->secagg_adverts[i], 1, err));
        if (i && m->secagg_adverts[i]->index <= m->secagg_adverts[i - 1]->index)
            return fl_fail(err, FL_EFORMAT, "Task.secagg_adverts is not in index order at %zu", i);
    }
    TRY(check_count("Task", "secagg_shares", m->n_secagg_shares, FL_RPC_SECAGG_MAX_CLIENTS - 1,
                    err));
    for (size_t i = 0; i < m->n_secagg_shares; i++)
        TRY(secagg_share("Task.secagg_shares", m->secagg_shares[i], err));
    TRY(check_indices("Task", "secagg_u2", m->secagg_u2, m->n_secagg_u2, err));
    const Fedlung__V1__SecAggUnmaskRequest *u = m->secagg_unmask;
    if (u) {
        TRY(check_indices("Task.secagg_unmask", "survivors", u->survivors, u->n_survivors, err));
        TRY(check_indices("Task.secagg_unmask", "dropped", u->dropped, u->n_dropped, err));
    }
    return FL_OK;
}

fl_status fl_rpc_validate(const ProtobufCMessage *m, fl_err *err) {
    if (!m) return fl_fail(err, FL_EINVAL, "no message to validate");
    TRY(check_unknown(m, err));
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &fedlung__v1__join_request__descriptor)
        return join_request((const Fedlung__V1__JoinRequest *)m, err);
    if (d == &fedlung__v1__join_reply__descriptor)
        return join_reply((const Fedlung__V1__JoinReply *)m, err);
    if (d == &fedlung__v1__task_request__descriptor)
        return task_request((const Fedlung__V1__TaskRequest *)m, err);
    if (d == &fedlung__v1__task__descriptor) return task((const Fedlung__V1__Task *)m, err);
    if (d == &fedlung__v1__model_request__descriptor)
        return check_id("ModelRequest", "study_id",
                        ((const Fedlung__V1__ModelRequest *)m)->study_id, err);
    if (d == &fedlung__v1__model_header__descriptor)
        return model_header((const Fedlung__V1__ModelHeader *)m, err);
    if (d == &fedlung__v1__model_chunk__descriptor) {
        const Fedlung__V1__ModelChunk *c = (const Fedlung__V1__ModelChunk *)m;
        TRY(fl_rpc__check_chunk("ModelChunk", c->offset, c->data.len, err));
        return c->header ? model_header(c->header, err) : FL_OK;
    }
    if (d == &fedlung__v1__update_header__descriptor)
        return update_header((const Fedlung__V1__UpdateHeader *)m, err);
    if (d == &fedlung__v1__data_chunk__descriptor) {
        const Fedlung__V1__DataChunk *c = (const Fedlung__V1__DataChunk *)m;
        return fl_rpc__check_chunk("DataChunk", c->offset, c->data.len, err);
    }
    if (d == &fedlung__v1__update_chunk__descriptor)
        return update_chunk((const Fedlung__V1__UpdateChunk *)m, err);
    if (d == &fedlung__v1__receipt__descriptor)
        return receipt((const Fedlung__V1__Receipt *)m, err);
    if (d == &fedlung__v1__eval_report__descriptor)
        return eval_report((const Fedlung__V1__EvalReport *)m, err);
    if (d == &fedlung__v1__status_request__descriptor)
        return check_id("StatusRequest", "study_id",
                        ((const Fedlung__V1__StatusRequest *)m)->study_id, err);
    if (d == &fedlung__v1__status_reply__descriptor)
        return status_reply((const Fedlung__V1__StatusReply *)m, err);
    if (d == &fedlung__v1__sec_agg_advert__descriptor)
        return secagg_advert("SecAggAdvert", (const Fedlung__V1__SecAggAdvert *)m, 0, err);
    if (d == &fedlung__v1__sec_agg_shares__descriptor)
        return secagg_shares((const Fedlung__V1__SecAggShares *)m, err);
    if (d == &fedlung__v1__sec_agg_unmask_reply__descriptor)
        return secagg_unmask_reply((const Fedlung__V1__SecAggUnmaskReply *)m, err);
    return FL_OK;
}
