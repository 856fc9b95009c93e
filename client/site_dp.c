/* site_dp.c - a site's differential privacy (DESIGN.md §5): the DP-SGD steps of fl_site_train
 * (Poisson sampling of patients, each patient's gradient clipped, Gaussian noise on the sum),
 * the CSPRNG as the source of that randomness, and the ledger of what the site spent
 * (state_dir/privacy.state). Not the accountant's mathematics (crypto/dp_accountant.h) nor the
 * decision to take part in a round (client/task_privacy.c). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/atomic.h"
#include "../crypto/dp_accountant.h"
#include "../crypto/rand.h"
#include "../pipeline/tiles.h"
#include "site_impl.h"

#define JITTER 0.1f /* the training augmentation's colour jitter, as fl_image_train_grad's */

int fl_site_dp_on(const fl_site *s) {
    return s->p->privacy.mechanism == FL_DP_SGD;
}

void fl_site_set_dp_source(fl_site *s, const fl_dp_source *src) {
    s->dp_src = *src;
    s->has_dp_src = src->noise && src->sample;
}

const fl_site_dp_round *fl_site_dp_last(const fl_site *s) {
    return &s->dp_last;
}

/* ---- the population: who is sampled ---- */

/* The patients a round of phase ph samples from: the training patients (image: those with
 * tiles; first/count give their tiles in the cohort). rows, first and count (P each) may be
 * NULL; *most gets the most tiles of one (1 for fusion). Returns how many, or -1 on FL_ENOMEM. */
static int population(const fl_site *s, int image, int *rows, int64_t *first, int64_t *count,
                      int64_t *most, fl_err *err) {
    int64_t *f = NULL, *c = NULL;
    int n = 0;
    *most = 1;
    if (image && fl_tile_ranges(&s->c, &f, &c, err) != FL_OK) return -1;
    for (int i = 0; i < s->n_train; i++) {
        int p = s->train_rows[i];
        if (image && c[p] == 0) continue;
        if (rows) rows[n] = p;
        if (image) {
            if (first) first[n] = f[p];
            if (count) count[n] = c[p];
            if (c[p] > *most) *most = c[p];
        }
        n++;
    }
    free(f);
    free(c);
    return n;
}

fl_status fl_site_dp_plan(fl_site *s, fl_phase ph, const fl_plan_training *h, fl_site_dp_round *out,
                          fl_err *err) {
    const fl_plan_privacy *pv = &s->p->privacy;
    memset(out, 0, sizeof *out);
    if (pv->mechanism != FL_DP_SGD)
        return fl_fail(err, FL_EINVAL, "the plan does not train with DP-SGD");
    if (ph != FL_PHASE_IMAGE && ph != FL_PHASE_FUSION)
        return fl_fail(err, FL_EINVAL, "the %s phase does not train", fl_phase_name(ph));
    int image = ph == FL_PHASE_IMAGE;
    int64_t most;
    int n = population(s, image, NULL, NULL, NULL, &most, err);
    if (n < 0) return FL_ENOMEM;
    if (n == 0)
        return fl_fail(err, FL_EINVAL, "%s: no training patients%s to sample", s->path,
                       image ? " with tiles" : "");
    if (h->batch < 1) return fl_fail(err, FL_EINVAL, "the batch size must be >= 1");
    out->q = pv->sample_rate;
    out->sigma = pv->noise_multiplier;
    out->clip = pv->clip_norm;
    /* epochs / q expected passes over the patients, rounded up (1e-9 absorbs 3 / 0.1 = 30.0..04) */
    out->steps = h->local_steps > 0 ? h->local_steps
                                    : (int64_t)ceil((double)h->epochs / out->q * (1 - 1e-9));
    if (out->steps < 1)
        return fl_fail(err, FL_EINVAL, "no local steps (local_steps and epochs are 0)");
    out->batch = image ? (int)(h->batch < most ? h->batch : most) : 1;
    out->n_patients = n;
    return FL_OK;
}

/* ---- one round ---- */

struct fl_site_dp {
    fl_site *s;
    fl_model *m;
    fl_backend *be;
    int image;
    fl_site_dp_round r;
    int *rows;              /* r.n_patients: cohort rows */
    int64_t *first, *count; /* image: each patient's tiles in the cohort */
    int64_t *pick;          /* image: scratch of the most tiles of a patient */
    uint8_t *mask;          /* r.n_patients: this step's draw */
    size_t np;              /* the parameter slab's floats */
    float *sum;             /* device, np: the clipped gradients' sum */
    float *noise;           /* host, np: the noise, laid out like the slab (gaps stay 0) */
    fl_image_batch batch;   /* image: r.batch tiles */
    int32_t y[1], ys[1];    /* fusion: the one row's labels */
    double loss_sum, drawn;
    struct timespec t0;
};

void fl_site_dp_free(fl_site_dp *d) {
    if (!d) return;
    if (d->be) d->be->free(d->be, d->sum);
    if (d->noise) fl_wipe(d->noise, d->np * sizeof(float));
    free(d->noise);
    free(d->rows);
    free(d->first);
    free(d->count);
    free(d->pick);
    free(d->mask);
    fl_image_batch_destroy(&d->batch);
    free(d);
}

fl_status fl_site_dp_new(fl_site_dp **out, fl_site *s, fl_phase ph, fl_model *m,
                         const fl_site_dp_round *r, fl_err *err) {
    *out = NULL;
    if (!s->has_dp_src)
        return fl_fail(err, FL_EINVAL,
                       "DP-SGD needs a source of noise and sampling (fl_site_set_dp_source)");
    fl_site_dp *d = calloc(1, sizeof *d);
    if (!d) return fl_fail(err, FL_ENOMEM, "out of memory");
    d->s = s;
    d->m = m;
    d->be = fl_model_backend(m);
    d->image = ph == FL_PHASE_IMAGE;
    d->r = *r;
    d->np = fl_model_graph(m)->n_trainable;
    size_t P = (size_t)s->c.P + 1;
    int64_t most;
    fl_status st = FL_OK;
    d->rows = malloc(P * sizeof(int));
    d->mask = malloc(P);
    d->noise = calloc(d->np + 1, sizeof(float));
    d->sum = d->be->alloc(d->be, (d->np + 1) * sizeof(float));
    if (d->image) {
        d->first = malloc(P * sizeof(int64_t));
        d->count = malloc(P * sizeof(int64_t));
    }
    if (!d->rows || !d->mask || !d->noise || !d->sum || (d->image && (!d->first || !d->count))) {
        st = fl_fail(err, FL_ENOMEM, "out of memory for DP-SGD");
        goto fail;
    }
    int n = population(s, d->image, d->rows, d->first, d->count, &most, err);
    if (n < 0) {
        st = FL_ENOMEM;
        goto fail;
    }
    if (n != r->n_patients || fl_model_batch(m) != r->batch) {
        st = fl_fail(err, FL_EINVAL,
                     "%s: the round's plan is for %d patients in batches of %d, not %d in %d",
                     s->path, r->n_patients, r->batch, n, fl_model_batch(m));
        goto fail;
    }
    if (d->image) {
        if (!(d->pick = malloc((size_t)most * sizeof(int64_t)))) {
            st = fl_fail(err, FL_ENOMEM, "out of memory for DP-SGD");
            goto fail;
        }
        if ((st = fl_image_batch_init(&d->batch, r->batch, s->c.tile, err)) != FL_OK) goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &d->t0);
    *out = d;
    return FL_OK;
fail:
    fl_site_dp_free(d);
    return st;
}

/* Patient i's tiles for this step into d->pick: all of them, or batch of them at random. */
static int pick_tiles(fl_site_dp *d, int i, fl_rng *r) {
    int64_t n = d->count[i];
    for (int64_t t = 0; t < n; t++) d->pick[t] = d->first[i] + t;
    if (n <= d->r.batch) return (int)n;
    for (int k = 0; k < d->r.batch; k++) { /* a partial Fisher-Yates shuffle */
        int64_t j = k + (int64_t)(fl_rng_u64(r) % (uint64_t)(n - k)), t = d->pick[k];
        d->pick[k] = d->pick[j];
        d->pick[j] = t;
    }
    return d->r.batch;
}

/* The image: patient i's tiles (augmented as in training) in rows 0..k-1 of the batch, zeros
 * and the ignored label -1 in the rest. */
static fl_status patient_image_grad(fl_site_dp *d, int i, fl_rng *r, float *loss, fl_err *err) {
    const fl_cohort *c = &d->s->c;
    fl_image_batch *b = &d->batch;
    size_t in = (size_t)3 * b->T * b->T;
    int k = pick_tiles(d, i, r);
    fl_status st;
    for (int j = 0; j < b->B; j++) {
        if (j >= k) {
            memset(b->x + j * in, 0, in * sizeof(float));
            b->y[j] = -1;
            continue;
        }
        if ((st = fl_cohort_read_tiles(d->s->f, d->pick[j], 1, b->raw, err)) != FL_OK) return st;
        fl_tile_to_input(b->raw, b->T, b->x + j * in, r, JITTER);
        b->y[j] = c->label[d->rows[i]];
    }
    if ((st = fl_model_set_input(d->m, 0, b->x, err)) != FL_OK ||
        (st = fl_model_forward(d->m, 1, err)) != FL_OK ||
        (st = fl_model_loss_ce(d->m, 0, b->y, NULL, loss, err)) != FL_OK ||
        (st = fl_model_backward(d->m, err)) != FL_OK)
        return st;
    /* the loss is the mean over the k tiles: k times its gradient is their sum */
    if (k > 1) d->be->scale(d->be, fl_model_grads(d->m), (float)k, d->np);
    return FL_OK;
}

fl_status fl_site_dp_patient_grad(fl_site_dp *d, int i, fl_rng *r, float *loss, fl_err *err) {
    if (d->image) return patient_image_grad(d, i, r, loss, err);
    return fl_fusion_train_grad(d->m, &d->s->in, &d->s->c, &d->rows[i], 1, 0, d->y, d->ys, loss,
                                err);
}

/* noise = N(0, (sigma C)^2) on every element of the trainable tensors (the slab's alignment
 * gaps stay 0, as in every update), checked: a failed source wrote NaN. */
static fl_status draw_noise(fl_site_dp *d, fl_err *err) {
    const fl_graph *g = fl_model_graph(d->m);
    const fl_dp_source *src = &d->s->dp_src;
    double std = d->r.sigma * d->r.clip;
    for (int k = 0; k < g->n_params; k++) {
        const fl_param *p = &g->params[k];
        if (p->trainable) src->noise(src->user, d->noise + p->offset, p->numel, std);
    }
    for (size_t j = 0; j < d->np; j++)
        if (!isfinite(d->noise[j]))
            return fl_fail(err, FL_EINVAL, "the DP noise source failed (a value is not finite)");
    return FL_OK;
}

fl_status fl_site_dp_step(fl_site_dp *d, fl_rng *r, float *loss, fl_err *err) {
    fl_backend *be = d->be;
    const fl_dp_source *src = &d->s->dp_src;
    float *g = fl_model_grads(d->m);
    int n = d->r.n_patients, drawn = 0;
    double loss_sum = 0, C = d->r.clip;
    fl_status st;
    src->sample(src->user, d->mask, (size_t)n, d->r.q);
    be->zero(be, d->sum, d->np * sizeof(float));
    for (int i = 0; i < n; i++) {
        if (d->mask[i] > 1)
            return fl_fail(err, FL_EINVAL, "the DP sampling source failed (mask value %d)",
                           d->mask[i]);
        if (!d->mask[i]) continue;
        float l;
        if ((st = fl_site_dp_patient_grad(d, i, r, &l, err)) != FL_OK) return st;
        double norm = sqrt(be->sumsq(be, g, d->np));
        if (!isfinite(norm) || !isfinite(l))
            return fl_fail(err, FL_EINVAL,
                           "%s: local training diverged (a patient's loss %g, "
                           "gradient norm %g)",
                           d->s->path, (double)l, norm);
        if (norm > C) be->scale(be, g, (float)(C / norm), d->np);
        be->accumulate(be, d->sum, g, 1.0f, d->np);
        loss_sum += l;
        drawn++;
    }
    /* the noisy sum over the expected batch q n (Opacus' convention: the divisor does not
     * depend on how many were drawn, which would leak it) */
    if (d->r.sigma > 0) {
        if ((st = draw_noise(d, err)) != FL_OK) return st;
        be->upload(be, g, d->noise, d->np * sizeof(float));
        be->accumulate(be, g, d->sum, 1.0f, d->np);
    } else {
        be->copy(be, g, d->sum, d->np * sizeof(float));
    }
    be->scale(be, g, (float)(1.0 / (d->r.q * n)), d->np);
    d->loss_sum += loss_sum;
    d->drawn += drawn;
    *loss = drawn ? (float)(loss_sum / drawn) : 0.0f;
    return FL_OK;
}

double fl_site_dp_finish(fl_site_dp *d) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fl_site_dp_round *last = &d->s->dp_last;
    *last = d->r;
    last->sampled = d->drawn;
    last->seconds =
        (double)(t1.tv_sec - d->t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - d->t0.tv_nsec);
    double loss = d->drawn > 0 ? d->loss_sum / d->drawn : 0;
    fl_site_dp_free(d);
    return loss;
}

/* ---- the CSPRNG source ---- */

void fl_dp_csprng_init(fl_dp_csprng *c) {
    memset(c, 0, sizeof *c);
}

void fl_dp_csprng_destroy(fl_dp_csprng *c) {
    fl_wipe(c, sizeof *c);
}

/* The next random word into *w; 0 once the CSPRNG failed. */
static int csprng_word(fl_dp_csprng *c, uint64_t *w) {
    if (c->at == c->n) {
        if (c->st != FL_OK) return 0;
        c->at = c->n = 0;
        if ((c->st = fl_rand_bytes(c->buf, sizeof c->buf, &c->err)) != FL_OK) return 0;
        c->n = sizeof c->buf / sizeof c->buf[0];
    }
    *w = c->buf[c->at];
    c->buf[c->at++] = 0;
    return 1;
}

/* Box-Muller: u1 in (0, 1] and u2 in [0, 1) of 53 bits each give two N(0, 1). */
static void csprng_noise(void *user, float *out, size_t n, double std) {
    fl_dp_csprng *c = user;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t a, b;
        if (!csprng_word(c, &a) || !csprng_word(c, &b)) {
            for (; i < n; i++) out[i] = NAN;
            return;
        }
        double u1 = (double)((a >> 11) + 1) * 0x1p-53, u2 = (double)(b >> 11) * 0x1p-53;
        double rad = std * sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
}

static void csprng_sample(void *user, uint8_t *mask, size_t n, double q) {
    fl_dp_csprng *c = user;
    for (size_t i = 0; i < n; i++) {
        uint64_t a;
        if (!csprng_word(c, &a)) {
            memset(mask + i, 0xff, n - i);
            return;
        }
        mask[i] = (double)(a >> 11) * 0x1p-53 < q;
    }
}

fl_dp_source fl_dp_csprng_source(fl_dp_csprng *c) {
    return (fl_dp_source){.noise = csprng_noise, .sample = csprng_sample, .user = c};
}

/* ---- the ledger ---- */

typedef struct {
    int64_t round;
    fl_phase phase;
    double q, sigma, clip;
    int64_t steps;
    int eval; /* 1: a noised evaluation report (q 1, 1 step) */
} spent;

struct fl_dp_ledger {
    char *path;
    fl_accountant *acc;
    spent *e;
    int n, cap;
};

#define LEDGER_HEADER                                                                         \
    "# fedlung privacy.state 1: the DP rounds whose updates, and the noised evaluation "      \
    "reports (eval),\n# this site released, written before each upload; the client composes " \
    "all of them (RDP)\n# into the epsilon it checks against epsilon_max. Do not edit.\n"

static fl_status ledger_push(fl_dp_ledger *l, const spent *x, fl_err *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        spent *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e) return fl_fail(err, FL_ENOMEM, "out of memory for the privacy ledger");
        l->e = e;
        l->cap = cap;
    }
    l->e[l->n++] = *x;
    return FL_OK;
}

/* One line of the file into *x; 0 when it is not a round. */
static int parse_line(const char *line, spent *x) {
    char phase[16];
    int used = 0;
    if (sscanf(line, "round=%" SCNd64 " phase=%15s q=%lf sigma=%lf clip=%lf steps=%" SCNd64 "%n",
               &x->round, phase, &x->q, &x->sigma, &x->clip, &x->steps, &used) != 6)
        return 0;
    x->phase = strcmp(phase, "image") == 0    ? FL_PHASE_IMAGE
               : strcmp(phase, "fusion") == 0 ? FL_PHASE_FUSION
                                              : FL_PHASE_NONE;
    const char *rest = line + used;
    x->eval = strncmp(rest, " eval", 5) == 0; /* a noised evaluation report: q 1, 1 step */
    if (x->eval && (x->q != 1 || x->steps != 1)) return 0;
    if (x->eval) rest += 5;
    return rest[strspn(rest, " \r\n")] == 0 && x->phase != FL_PHASE_NONE && x->round >= 0 &&
           x->q > 0 && x->q <= 1 && x->sigma >= 0 && x->clip > 0 && x->steps >= 0 &&
           isfinite(x->sigma) && isfinite(x->clip);
}

static fl_status ledger_read(fl_dp_ledger *l, FILE *f, fl_err *err) {
    char line[512];
    for (int no = 1; fgets(line, sizeof line, f); no++) {
        if (line[0] == '#' || line[strspn(line, " \r\n")] == 0) continue;
        spent x;
        fl_status st;
        if (!strchr(line, '\n') && !feof(f))
            return fl_fail(err, FL_EFORMAT, "%s:%d: the line is too long", l->path, no);
        if (!parse_line(line, &x))
            return fl_fail(
                err, FL_EFORMAT,
                "%s:%d: not a round (round=R phase=P q=Q sigma=S clip=C steps=T[ eval]); "
                "the ledger was edited or damaged",
                l->path, no);
        if ((st = fl_accountant_add(l->acc, x.q, x.sigma, x.steps, err)) != FL_OK ||
            (st = ledger_push(l, &x, err)) != FL_OK)
            return st;
    }
    if (ferror(f)) return fl_fail(err, FL_EIO, "%s: read error", l->path);
    return FL_OK;
}

fl_status fl_dp_ledger_open(const char *path, fl_dp_ledger **out, fl_err *err) {
    *out = NULL;
    fl_dp_ledger *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return fl_fail(err, FL_ENOMEM, "out of memory for the privacy ledger");
    }
    fl_status st = fl_accountant_new(NULL, 0, &l->acc, err);
    FILE *f = st == FL_OK ? fopen(path, "r") : NULL;
    if (st == FL_OK && f) {
        st = ledger_read(l, f, err);
        fclose(f);
    }
    if (st != FL_OK) {
        fl_dp_ledger_free(l);
        return st;
    }
    *out = l;
    return FL_OK;
}

void fl_dp_ledger_free(fl_dp_ledger *l) {
    if (!l) return;
    fl_accountant_free(l->acc);
    free(l->e);
    free(l->path);
    free(l);
}

int fl_dp_ledger_rounds(const fl_dp_ledger *l) {
    int n = 0;
    for (int i = 0; i < l->n; i++) n += !l->e[i].eval;
    return n;
}

int fl_dp_ledger_evaluations(const fl_dp_ledger *l) {
    return l->n - fl_dp_ledger_rounds(l);
}

fl_status fl_dp_ledger_epsilon(const fl_dp_ledger *l, const fl_site_dp_round *next, double delta,
                               double *eps, fl_err *err) {
    /* nothing spent is 0, not the conversion's floor at the largest order */
    if (!next && l->n == 0) {
        *eps = 0;
        return FL_OK;
    }
    if (!next) return fl_accountant_epsilon(l->acc, delta, FL_DP_CONVERSION_BALLE, eps, NULL, err);
    return fl_accountant_epsilon_with(l->acc, next->q, next->sigma, next->steps, delta,
                                      FL_DP_CONVERSION_BALLE, eps, NULL, err);
}

static fl_status ledger_write(const fl_dp_ledger *l, fl_err *err) {
    fl_atomic_file af;
    fl_status st = fl_atomic_open(&af, l->path, err);
    if (st != FL_OK) return st;
    fputs(LEDGER_HEADER, af.f);
    for (int i = 0; i < l->n; i++) {
        const spent *x = &l->e[i];
        fprintf(af.f,
                "round=%" PRId64 " phase=%s q=%.17g sigma=%.17g clip=%.17g steps=%" PRId64 "%s\n",
                x->round, fl_phase_name(x->phase), x->q, x->sigma, x->clip, x->steps,
                x->eval ? " eval" : "");
    }
    return fl_atomic_commit(&af, err);
}

/* Records x: the accountant's checks first (so that what the file says it can also compose),
 * the file, then the accountant. */
static fl_status ledger_spend(fl_dp_ledger *l, const spent *x, fl_err *err) {
    double eps;
    fl_status st = fl_accountant_epsilon_with(l->acc, x->q, x->sigma, x->steps, 1e-5,
                                              FL_DP_CONVERSION_BALLE, &eps, NULL, err);
    if (st != FL_OK) return st;
    if (x->phase != FL_PHASE_IMAGE && x->phase != FL_PHASE_FUSION)
        return fl_fail(err, FL_EINVAL, "the %s phase spends no privacy", fl_phase_name(x->phase));
    if ((st = ledger_push(l, x, err)) != FL_OK) return st;
    if ((st = ledger_write(l, err)) != FL_OK) {
        l->n--;
        return st;
    }
    return fl_accountant_add(l->acc, x->q, x->sigma, x->steps, err);
}

fl_status fl_dp_ledger_spend(fl_dp_ledger *l, int64_t round, fl_phase ph, const fl_site_dp_round *r,
                             fl_err *err) {
    spent x = {round, ph, r->q, r->sigma, r->clip, r->steps, 0};
    return ledger_spend(l, &x, err);
}

fl_status fl_dp_ledger_spend_eval(fl_dp_ledger *l, int64_t round, fl_phase ph, double sigma,
                                  fl_err *err) {
    spent x = {round, ph, 1, sigma, 1, 1, 1}; /* clip 1: the counts' normalized units */
    return ledger_spend(l, &x, err);
}

/* ---- noised evaluation ---- */

fl_status fl_dp_eval_noise(const fl_dp_source *src, double count_std, double loss_std,
                           const uint64_t *hist, size_t n_hist, uint64_t patients,
                           const uint64_t *per_class, size_t K, double loss_sum,
                           double *noised_hist, double *noised_patients, double *noised_per_class,
                           double *noised_loss, fl_err *err) {
    size_t n = n_hist + K + 2;
    float *z = malloc(n * sizeof *z); /* N(0, 1) draws, scaled in double below */
    if (!z) return fl_fail(err, FL_ENOMEM, "out of memory for the evaluation noise");
    src->noise(src->user, z, n, 1.0);
    fl_status st = FL_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(z[i]))
            st = fl_fail(err, FL_EBACKEND,
                         "the noise source failed: the evaluation report is not sent");
    if (st == FL_OK) {
        for (size_t i = 0; i < n_hist; i++) noised_hist[i] = (double)hist[i] + count_std * z[i];
        for (size_t k = 0; k < K; k++)
            noised_per_class[k] = (double)per_class[k] + count_std * z[n_hist + k];
        *noised_patients = (double)patients + count_std * z[n_hist + K];
        *noised_loss = loss_sum + loss_std * z[n_hist + K + 1];
    }
    memset(z, 0, n * sizeof *z); /* the noise, like the CSPRNG's words, is not kept */
    free(z);
    return st;
}
