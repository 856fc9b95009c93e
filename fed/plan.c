/* plan.c - reads and checks the study plan (fed/plan.h): the schema of its [study], [image],
 * [fusion] and [privacy] keys over common/conf.h (the key indices are fed/plan_keys.h's), the
 * consistency of phases, modalities and training, the hash of its bytes, and the two global
 * model graphs it describes; the [privacy] section's own checks are fed/plan_privacy.c's. It
 * runs nothing and opens no model. */
#include "plan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/hash.h"
#include "fed/plan_keys.h"
#include "nn/fusion.h"

static const char *const training_names[N_TRAINING] = {
    "rounds",   "local_steps",  "epochs",     "batch",    "optimizer", "lr",
    "momentum", "weight_decay", "fedprox_mu", "strategy", "server_lr", "beta1",
    "beta2",    "tau",          "fedbn",      "weighted", "eval_every"};
static const char *const study_names[] = {"id", "classes", "phases", "seed", "bins"};
static const char *const image_names[] = {"arch", "stem", "tile", "width", "model"};
static const char *const fusion_names[] = {
    "modalities", "rna_features", "meth_features", "mvalue",     "enc_dim",       "hidden",
    "dropout",    "standardize",  "rna_names",     "meth_names", "clinical_names"};
const char *const fl_plan_privacy_names[] = {
    "mechanism",     "clip_norm",      "noise_multiplier", "sample_rate",
    "delta",         "secagg",         "secagg_threshold", "secagg_cipher",
    "dp_clients",    "dp_dropouts",    "adaptive_clip",    "target_quantile",
    "clip_lr",       "clip_bit_noise", "update_clip",      "eval_noise_multiplier",
    "eval_loss_clip"};

static const char *const phase_names[] = {"none", "statistics", "image", "features", "fusion"};
static const char *const modality_names[] = {"image", "rna", "methylation", "clinical"};

const char *fl_phase_name(fl_phase ph) {
    return ph >= FL_PHASE_STATISTICS && ph <= FL_PHASE_FUSION ? phase_names[ph] : "none";
}

const char *fl_modality_name(fl_modality m) {
    return m >= FL_MODALITY_IMAGE && m <= FL_MODALITY_CLINICAL ? modality_names[m - 1] : "none";
}

/* ---- values ---- */

/* A whole number in [lo, hi] into *out, or a complaint. */
static int set_int(char *msg, const char *name, const char *value, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi) {
        if (hi == INT_MAX)
            return fl_conf_complain(msg, "%s '%s' is not a whole number >= %ld", name, value, lo);
        return fl_conf_complain(msg, "%s '%s' is not a whole number from %ld to %ld", name, value,
                                lo, hi);
    }
    *out = (int)v;
    return 1;
}

/* A finite number with lo < v (lo <= v when lo_closed) and v < hi (v <= hi when hi is INFINITY:
 * no upper bound), into *out; range says which in the complaint ("> 0", "in [0, 1)"). */
static int set_double(char *msg, const char *name, const char *value, double lo, int lo_closed,
                      double hi, const char *range, double *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || (lo_closed ? v < lo : v <= lo) ||
        !(v < hi))
        return fl_conf_complain(msg, "%s '%s' is not a number %s", name, value, range);
    *out = v;
    return 1;
}

/* The same into a float. */
static int set_float(char *msg, const char *name, const char *value, double lo, int lo_closed,
                     double hi, const char *range, float *out) {
    double v = 0;
    if (!set_double(msg, name, value, lo, lo_closed, hi, range, &v)) return 0;
    *out = (float)v;
    return 1;
}

/* The index of value among names[0..n), or -1 after a complaint listing them as choices. */
static int choice(char *msg, const char *name, const char *value, const char *const *names, int n,
                  const char *choices) {
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0) return i;
    fl_conf_complain(msg, "%s '%s' is not one of %s", name, value, choices);
    return -1;
}

int fl_plan_each_item(char *msg, const char *name, const char *value,
                      int (*item)(void *user, const char *s, char *msg), void *user) {
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, ","), end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t')) end--;
        if (end == 0) return fl_conf_complain(msg, "%s has an empty item", name);
        char s[FL_ERR_LEN / 4];
        if (end >= sizeof s) return fl_conf_complain(msg, "%s has an item that is too long", name);
        memcpy(s, p, end);
        s[end] = 0;
        if (!item(user, s, msg)) return 0;
        if (p[n] != ',') return 1;
        p += n + 1;
    }
}

static int add_class(void *user, const char *s, char *msg) {
    fl_plan *p = user;
    if (strlen(s) >= sizeof p->class_names[0])
        return fl_conf_complain(msg, "classes: '%s' is longer than 63 characters", s);
    for (int k = 0; k < p->n_classes; k++)
        if (strcmp(p->class_names[k], s) == 0)
            return fl_conf_complain(msg, "classes names '%s' twice", s);
    if (p->n_classes == FL_PLAN_MAX_CLASSES)
        return fl_conf_complain(msg, "classes names more than %d classes", FL_PLAN_MAX_CLASSES);
    memcpy(p->class_names[p->n_classes++], s, strlen(s) + 1);
    return 1;
}

static int add_phase(void *user, const char *s, char *msg) {
    unsigned *phases = user;
    int ph = FL_PHASE_STATISTICS +
             choice(msg, "phases", s, phase_names + 1, 4, "statistics, image, features, fusion");
    if (ph < FL_PHASE_STATISTICS) return 0;
    if (*phases >= PHASE_BIT(ph))
        return fl_conf_complain(msg,
                                "phases: '%s' is out of order or named twice (the order is "
                                "statistics, image, features, fusion)",
                                s);
    *phases |= PHASE_BIT(ph);
    return 1;
}

static int add_modality(void *user, const char *s, char *msg) {
    unsigned *modalities = user;
    int m = FL_MODALITY_IMAGE +
            choice(msg, "modalities", s, modality_names, 4, "image, rna, methylation, clinical");
    if (m < FL_MODALITY_IMAGE) return 0;
    if (*modalities & FL_MODALITY_BIT(m))
        return fl_conf_complain(msg, "modalities names '%s' twice", s);
    *modalities |= FL_MODALITY_BIT(m);
    return 1;
}

/* ---- the schema ---- */

static int set_training(fl_plan_training *t, int i, const char *name, const char *value,
                        char *msg) {
    static const char *const optimizers[] = {"sgd", "adam", "adamw"};
    static const char *const strategies[] = {"fedavg", "fedadam", "fedyogi"};
    int v;
    switch (i) {
    case T_ROUNDS:
        return set_int(msg, name, value, 1, 100000, &t->rounds);
    case T_LOCAL_STEPS:
        return set_int(msg, name, value, 0, INT_MAX, &t->local_steps);
    case T_EPOCHS:
        return set_int(msg, name, value, 0, 10000, &t->epochs);
    case T_BATCH:
        return set_int(msg, name, value, 1, 65536, &t->batch);
    case T_OPTIMIZER:
        v = choice(msg, name, value, optimizers, 3, "sgd, adam, adamw");
        t->optimizer = (fl_local_optimizer)(FL_LOCAL_SGD + v);
        return v >= 0;
    case T_LR:
        return set_float(msg, name, value, 0, 0, INFINITY, "> 0", &t->lr);
    case T_MOMENTUM:
        return set_float(msg, name, value, 0, 1, 1, "in [0, 1)", &t->momentum);
    case T_WEIGHT_DECAY:
        return set_float(msg, name, value, 0, 1, INFINITY, ">= 0", &t->weight_decay);
    case T_FEDPROX_MU:
        return set_float(msg, name, value, 0, 1, INFINITY, ">= 0", &t->fedprox_mu);
    case T_STRATEGY:
        v = choice(msg, name, value, strategies, 3, "fedavg, fedadam, fedyogi");
        t->strategy = (fl_strategy)(FL_STRATEGY_FEDAVG + v);
        return v >= 0;
    case T_SERVER_LR:
        return set_float(msg, name, value, 0, 0, INFINITY, "> 0", &t->server_lr);
    case T_BETA1:
        return set_float(msg, name, value, 0, 1, 1, "in [0, 1)", &t->beta1);
    case T_BETA2:
        return set_float(msg, name, value, 0, 1, 1, "in [0, 1)", &t->beta2);
    case T_TAU:
        return set_float(msg, name, value, 0, 0, INFINITY, "> 0", &t->tau);
    case T_FEDBN:
        return fl_conf_set_bool(msg, name, &t->fedbn, value);
    case T_WEIGHTED:
        return fl_conf_set_bool(msg, name, &t->weighted, value);
    default:
        return set_int(msg, name, value, 0, 100000, &t->eval_every);
    }
}

static int set_key(void *user, int k, const char *name, const char *value, char *msg) {
    fl_plan *p = user;
    int v = 0;
    switch (k) {
    case K_ID:
        if (!fl_conf_id_valid(value))
            return fl_conf_complain(msg, "id '%s' is not an id (1-64 of A-Z a-z 0-9 . _ -)", value);
        return fl_conf_set_str(msg, name, p->id, sizeof p->id, value);
    case K_CLASSES:
        if (!fl_plan_each_item(msg, name, value, add_class, p)) return 0;
        if (p->n_classes < 2) return fl_conf_complain(msg, "classes names fewer than 2 classes");
        return 1;
    case K_PHASES:
        p->phases = 0;
        return fl_plan_each_item(msg, name, value, add_phase, &p->phases);
    case K_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[strspn(value, " \t")] == '-')
            return fl_conf_complain(msg, "seed '%s' is not a whole number >= 0", value);
        p->seed = s;
        return 1;
    }
    case K_BINS:
        return set_int(msg, name, value, 2, 100000, &p->bins);
    case I_ARCH:
        if (!(p->net.depth = fl_resnet_depth_from_name(value)))
            return fl_conf_complain(
                msg, "arch '%s' is not one of resnet18, resnet34, resnet50, resnet101, resnet152",
                value);
        return 1;
    case I_STEM:
        if ((v = fl_stem_from_name(value)) < 0)
            return fl_conf_complain(msg, "stem '%s' is not one of imagenet, small", value);
        p->net.stem = (fl_stem)v;
        return 1;
    case I_TILE:
        return set_int(msg, name, value, 32, 4096, &p->net.tile);
    case I_WIDTH:
        return set_float(msg, name, value, 0, 0, 64, "in (0, 64)", &p->net.width);
    case I_MODEL:
        /* "model =" (empty) is the documented way to say "none" */
        return !value[0] ||
               fl_conf_set_str(msg, name, p->image_model, sizeof p->image_model, value);
    case F_MODALITIES:
        p->modalities = 0;
        return fl_plan_each_item(msg, name, value, add_modality, &p->modalities);
    case F_RNA:
        return set_int(msg, name, value, 0, INT_MAX, &p->rna_features);
    case F_METH:
        return set_int(msg, name, value, 0, INT_MAX, &p->meth_features);
    case F_MVALUE:
        return fl_conf_set_bool(msg, name, &p->mvalue, value);
    case F_ENC_DIM:
        return set_int(msg, name, value, 1, 65536, &p->enc_dim);
    case F_HIDDEN:
        return set_int(msg, name, value, 1, 65536, &p->hidden);
    case F_DROPOUT:
        return set_float(msg, name, value, 0, 1, 1, "in [0, 1)", &p->dropout);
    case F_STANDARDIZE: {
        static const char *const modes[] = {"federated", "site"};
        v = choice(msg, name, value, modes, 2, "federated, site");
        p->standardize = (fl_standardize)v;
        return v >= 0;
    }
    case F_RNA_NAMES:
    case F_METH_NAMES:
    case F_CLINICAL_NAMES:
        return fl_plan_add_names(p, k, value, msg);
    case P_MECHANISM: {
        static const char *const mechanisms[] = {"none", "dp-sgd", "dp-fedavg"};
        v = choice(msg, name, value, mechanisms, 3, "none, dp-sgd, dp-fedavg");
        p->privacy.mechanism = (fl_dp_mechanism)v;
        return v >= 0;
    }
    case P_CLIP_NORM:
        return set_double(msg, name, value, 0, 0, INFINITY, "> 0", &p->privacy.clip_norm);
    case P_NOISE:
        return set_double(msg, name, value, 0, 1, INFINITY, ">= 0", &p->privacy.noise_multiplier);
    case P_SAMPLE_RATE:
        /* 1 is allowed: every patient at every step */
        return set_double(msg, name, value, 0, 0, nextafter(1.0, 2.0), "in (0, 1]",
                          &p->privacy.sample_rate);
    case P_DELTA:
        return set_double(msg, name, value, 0, 0, 1, "in (0, 1)", &p->privacy.delta);
    case P_SECAGG:
        return fl_conf_set_bool(msg, name, &p->privacy.secagg, value);
    case P_SECAGG_THRESHOLD:
        if (set_int(msg, name, value, 0, 255, &v) <= 0) return 0;
        p->privacy.secagg_threshold = (uint32_t)v;
        return 1;
    case P_SECAGG_CIPHER: {
        static const char *const ciphers[] = {"aes-ctr", "chacha20"};
        v = choice(msg, name, value, ciphers, 2, "aes-ctr, chacha20");
        p->privacy.secagg_cipher = v;
        return v >= 0;
    }
    case P_DP_CLIENTS:
        return set_int(msg, name, value, 1, 1 << 20, &p->privacy.dp_clients);
    case P_DP_DROPOUTS:
        return set_int(msg, name, value, 0, 1 << 20, &p->privacy.dp_dropouts);
    case P_ADAPTIVE_CLIP:
        return fl_conf_set_bool(msg, name, &p->privacy.adaptive_clip, value);
    case P_TARGET_QUANTILE:
        return set_double(msg, name, value, 0, 0, 1, "in (0, 1)", &p->privacy.target_quantile);
    case P_CLIP_LR:
        return set_double(msg, name, value, 0, 0, INFINITY, "> 0", &p->privacy.clip_lr);
    case P_CLIP_BIT_NOISE:
        return set_double(msg, name, value, 0, 0, INFINITY, "> 0", &p->privacy.clip_bit_noise);
    case P_UPDATE_CLIP:
        return set_double(msg, name, value, 0, 0, INFINITY, "> 0", &p->privacy.update_clip);
    case P_EVAL_NOISE:
        return set_double(msg, name, value, 0, 1, INFINITY, ">= 0",
                          &p->privacy.eval_noise_multiplier);
    case P_EVAL_LOSS_CLIP:
        return set_double(msg, name, value, 0, 0, INFINITY, "> 0", &p->privacy.eval_loss_clip);
    default:
        if (k >= F_TRAINING) return set_training(&p->fusion, k - F_TRAINING, name, value, msg);
        return set_training(&p->image, k - I_TRAINING, name, value, msg);
    }
}

static void build_keys(fl_conf_key keys[N_KEYS]) {
    for (int i = 0; i < N_STUDY; i++) keys[K_ID + i] = (fl_conf_key){"study", study_names[i]};
    for (int i = 0; i < I_TRAINING - I_ARCH; i++)
        keys[I_ARCH + i] = (fl_conf_key){"image", image_names[i]};
    for (int i = 0; i < F_TRAINING - F_MODALITIES; i++)
        keys[F_MODALITIES + i] = (fl_conf_key){"fusion", fusion_names[i]};
    for (int i = 0; i < N_TRAINING; i++) {
        keys[I_TRAINING + i] = (fl_conf_key){"image", training_names[i]};
        keys[F_TRAINING + i] = (fl_conf_key){"fusion", training_names[i]};
    }
    for (int i = 0; i < N_KEYS - P_MECHANISM; i++)
        keys[P_MECHANISM + i] = (fl_conf_key){"privacy", fl_plan_privacy_names[i]};
}

static void training_defaults(fl_plan_training *t, int rounds, int local_steps, int epochs,
                              fl_local_optimizer opt, float lr, float weight_decay) {
    *t = (fl_plan_training){.rounds = rounds,
                            .local_steps = local_steps,
                            .epochs = epochs,
                            .batch = 32,
                            .optimizer = opt,
                            .lr = lr,
                            .momentum = 0.9f,
                            .weight_decay = weight_decay,
                            .strategy = FL_STRATEGY_FEDAVG,
                            .server_lr = 1,
                            .beta1 = 0.9f,
                            .beta2 = 0.99f,
                            .tau = 1e-3f,
                            .weighted = 1,
                            .eval_every = 1};
}

static void plan_defaults(fl_plan *p) {
    memset(p, 0, sizeof *p);
    p->phases = ALL_PHASES;
    p->seed = 1;
    p->bins = 1000;
    fl_resnet_config_default(&p->net);
    training_defaults(&p->image, 3, 10, 0, FL_LOCAL_SGD, 0.05f, 1e-4f);
    p->modalities = ALL_MODALITIES;
    p->rna_features = p->meth_features = 256;
    p->mvalue = 1;
    p->enc_dim = p->hidden = 32;
    p->dropout = 0.2f;
    training_defaults(&p->fusion, 10, 0, 2, FL_LOCAL_ADAMW, 3e-3f, 1e-2f);
    p->privacy.delta = 1e-5;
}

/* ---- consistency ---- */

/* Setting one of local_steps / epochs alone turns the other's default off; then exactly one of
 * them must be > 0 when the phase runs. */
static fl_status check_training(const char *name, fl_plan *p, fl_phase ph, const uint64_t *seen,
                                int base, fl_err *err) {
    fl_plan_training *t = ph == FL_PHASE_IMAGE ? &p->image : &p->fusion;
    int steps = SEEN(seen, base + T_LOCAL_STEPS), epochs = SEEN(seen, base + T_EPOCHS);
    if (steps && !epochs) t->epochs = 0;
    if (epochs && !steps) t->local_steps = 0;
    if (!(p->phases & PHASE_BIT(ph)) || (t->local_steps > 0) != (t->epochs > 0)) return FL_OK;
    return fl_fail(err, FL_EFORMAT,
                   "%s: [%s] needs exactly one of local_steps and epochs > 0 (it has %d and %d)",
                   name, fl_phase_name(ph), t->local_steps, t->epochs);
}

static fl_status check_plan(const char *name, fl_plan *p, const uint64_t *seen, fl_err *err) {
    fl_status st;
    if ((st = check_training(name, p, FL_PHASE_IMAGE, seen, I_TRAINING, err)) != FL_OK ||
        (st = check_training(name, p, FL_PHASE_FUSION, seen, F_TRAINING, err)) != FL_OK ||
        (st = fl_plan_check_privacy(name, p, seen, err)) != FL_OK)
        return st;
    unsigned ph = p->phases;
    if ((ph & PHASE_BIT(FL_PHASE_IMAGE)) && p->image_model[0])
        return fl_fail(err, FL_EFORMAT,
                       "%s: [image] model is only for a plan without an image phase (the image "
                       "phase trains the RNet the features phase uses)",
                       name);
    if ((ph & PHASE_BIT(FL_PHASE_FEATURES)) && !(ph & PHASE_BIT(FL_PHASE_IMAGE)) &&
        !p->image_model[0])
        return fl_fail(err, FL_EFORMAT,
                       "%s: the features phase needs the image phase or an [image] model", name);
    if (!(ph & PHASE_BIT(FL_PHASE_FUSION))) return FL_OK;
    if (p->standardize == FL_STD_FEDERATED && (p->modalities & OMICS_MODALITIES) &&
        !(ph & PHASE_BIT(FL_PHASE_STATISTICS)))
        return fl_fail(err, FL_EFORMAT,
                       "%s: fusion uses omics modalities but the plan has no statistics phase",
                       name);
    if ((p->modalities & FL_MODALITY_BIT(FL_MODALITY_IMAGE)) &&
        !(ph & PHASE_BIT(FL_PHASE_FEATURES)))
        return fl_fail(err, FL_EFORMAT,
                       "%s: fusion uses the image modality but the plan has no features phase",
                       name);
    return FL_OK;
}

/* Parses text (n bytes, heap, NUL-terminated; owned by p from here on, also on failure). */
static fl_status parse_owned(char *text, size_t n, const char *name, fl_plan *p, fl_err *err) {
    plan_defaults(p);
    p->text = text;
    p->text_len = n;
    fl_conf_key keys[N_KEYS];
    build_keys(keys);
    uint64_t lists = ((uint64_t)1 << F_RNA_NAMES) | ((uint64_t)1 << F_METH_NAMES) |
                     ((uint64_t)1 << F_CLINICAL_NAMES);
    fl_conf_schema schema = {keys, N_KEYS, lists, set_key, p};
    static const int required[] = {K_ID, K_CLASSES};
    uint64_t seen[FL_CONF_SEEN_WORDS] = {0};
    fl_status st = fl_conf_parse_text(text, name, &schema, seen, err);
    if (st == FL_OK) st = fl_conf_require(name, &schema, (unsigned)seen[0], required, 2, 0, err);
    if (st == FL_OK) st = fl_plan_check_standardize(name, p, seen, err);
    if (st == FL_OK) st = check_plan(name, p, seen, err);
    if (st == FL_OK) st = fl_plan_check_adaptive(name, p, seen, err);
    if (st == FL_OK) st = fl_plan_check_secagg(name, p, seen, err);
    if (st == FL_OK) st = fl_plan_check_eval_noise(name, p, seen, err);
    if (st == FL_OK) {
        p->net.classes = p->n_classes;
        st = fl_sha256(text, n, p->sha256);
        if (st != FL_OK) fl_fail(err, st, "%s: cannot compute its SHA-256", name);
    }
    return st;
}

fl_status fl_plan_parse(const char *text, size_t n, const char *name, fl_plan *p, fl_err *err) {
    memset(p, 0, sizeof *p);
    if (n > FL_PLAN_MAX_TEXT)
        return fl_fail(err, FL_EFORMAT, "%s: %zu bytes, more than a plan's limit of %d", name, n,
                       FL_PLAN_MAX_TEXT);
    if (n && memchr(text, 0, n)) return fl_fail(err, FL_EFORMAT, "%s: not text (a NUL byte)", name);
    char *copy = malloc(n + 1);
    if (!copy) return fl_fail(err, FL_ENOMEM, "%s: out of memory", name);
    if (n) memcpy(copy, text, n);
    copy[n] = 0;
    fl_status st = parse_owned(copy, n, name, p, err);
    if (st != FL_OK) fl_plan_destroy(p);
    return st;
}

fl_status fl_plan_load(const char *path, fl_plan *p, fl_err *err) {
    memset(p, 0, sizeof *p);
    if (strlen(path) >= sizeof p->path) return fl_fail(err, FL_EINVAL, "plan path too long");
    char *text = fl_config_read_text(path, FL_PLAN_MAX_TEXT, err);
    if (!text) return FL_EIO;
    fl_status st = parse_owned(text, strlen(text), path, p, err);
    if (st == FL_OK && !fl_conf_resolve(path, p->image_model, sizeof p->image_model))
        st = fl_fail(err, FL_EFORMAT,
                     "%s: [image] model is too long once made relative to the file", path);
    if (st != FL_OK) {
        fl_plan_destroy(p);
        return st;
    }
    memcpy(p->path, path, strlen(path) + 1);
    return FL_OK;
}

void fl_plan_destroy(fl_plan *p) {
    free(p->text);
    fl_plan_free_names(p);
    memset(p, 0, sizeof *p);
}

/* ---- questions about a plan ---- */

fl_phase fl_plan_next_phase(const fl_plan *p, fl_phase ph) {
    for (int next = (int)ph + 1; next <= FL_PHASE_FUSION; next++)
        if (p->phases & PHASE_BIT(next)) return (fl_phase)next;
    return FL_PHASE_NONE;
}

const fl_plan_training *fl_plan_training_of(const fl_plan *p, fl_phase ph) {
    return ph == FL_PHASE_IMAGE ? &p->image : ph == FL_PHASE_FUSION ? &p->fusion : NULL;
}

void fl_plan_hash_hex(const fl_plan *p, char hex[65]) {
    fl_hex_encode(p->sha256, sizeof p->sha256, hex);
}

fl_status fl_plan_image_graph(const fl_plan *p, fl_graph **g, fl_err *err) {
    fl_resnet_config c = p->net;
    c.classes = p->n_classes;
    return fl_resnet_build(g, &c, err);
}

fl_status fl_plan_fusion_graph(const fl_plan *p, const int in_dim[4], fl_graph **g, fl_err *err) {
    *g = NULL;
    fl_fusion_config c;
    fl_fusion_config_default(&c);
    c.n_modalities = 0;
    for (int m = FL_MODALITY_IMAGE; m <= FL_MODALITY_CLINICAL; m++) {
        if (!(p->modalities & FL_MODALITY_BIT(m))) continue;
        if (in_dim[m - 1] < 1)
            return fl_fail(err, FL_EINVAL, "the %s modality has %d input features",
                           modality_names[m - 1], in_dim[m - 1]);
        snprintf(c.names[c.n_modalities], sizeof c.names[0], "%s", modality_names[m - 1]);
        c.in_dim[c.n_modalities++] = in_dim[m - 1];
    }
    if (c.n_modalities == 0) return fl_fail(err, FL_EINVAL, "the plan has no fusion modality");
    c.enc_dim = p->enc_dim;
    c.hidden = p->hidden;
    c.dropout = p->dropout;
    c.classes = p->n_classes;
    c.stages = 0;
    return fl_fusion_build(g, &c, err);
}
