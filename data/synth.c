/* synth.c - the synthetic cohort's patients: sites and their sizes, label skew, TCGA-style
 * cases with paired normals, clinical data, stage, latent variables and splits; and the writer
 * loop that streams rendered tiles to the cohort file. Omics are in synth_omics.c, tiles in
 * synth_tiles.c. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_impl.h"

static const char *const class_names[FL_SYNTH_CLASSES] = {"LUAD", "LUSC", "NORMAL"};
static const double pi_global[FL_SYNTH_CLASSES] = {0.48, 0.40, 0.12};
/* Tissue source sites of TCGA's lung projects, in the order sites are created. */
static const char *const tss_codes[FL_SYNTH_MAX_SITES] = {
    "05", "18", "44", "55", "38", "21", "49", "22", "50", "33", "64", "34", "67", "39", "73", "43"};
/* Class means of the image latent (gland, nest, alveolus), scaled by kappa. LUAD and LUSC are
 * the closer pair, as in Lin 2025 where LUSC was the hardest class for images; these give an
 * ideal observer of the patient latent a macro AUC of about 0.83 at kappa = 1. */
static const float morph_mu[FL_SYNTH_CLASSES][3] = {
    {1.2f, 0.2f, 0.0f}, {0.2f, 1.2f, 0.0f}, {0.0f, 0.0f, 1.4f}};
/* Stage cut points on w = z + N(0, 0.8^2) (SD 1.2806) giving stage I/II/III/IV marginals of
 * about 54/24/16/5 % (LUAD) and 49/32/17/2 % (LUSC). */
static const float stage_cut[2][3] = {{0.145f, 1.024f, 2.094f}, {-0.032f, 1.124f, 2.630f}};

void fl_synth_config_default(fl_synth_config *c) {
    memset(c, 0, sizeof *c);
    c->patients = 300;
    c->sites = 4;
    c->tile = 64;
    c->tiles_per_patient = 16;
    c->genes = 1000;
    c->probes = 2000;
    c->label_skew = 10.0f;
    c->seed = 1;
    c->kappa = 1.0f;
    c->no_methylation_site = 2;
    c->no_smoking_site = 3;
}

fl_status fl_synth_config_check(const fl_synth_config *c, fl_err *err) {
    if (c->sites < 1 || c->sites > FL_SYNTH_MAX_SITES)
        return fl_fail(err, FL_EINVAL, "synthetic cohort: sites must be 1..%d, not %d",
                       FL_SYNTH_MAX_SITES, c->sites);
    if (c->patients < c->sites || c->patients > 100000)
        return fl_fail(err, FL_EINVAL,
                       "synthetic cohort: patients must be between the number of sites (%d) "
                       "and 100000, not %d",
                       c->sites, c->patients);
    if (c->tile != 0 && (c->tile < 16 || c->tile > 1024))
        return fl_fail(err, FL_EINVAL, "synthetic cohort: tile must be 0 or 16..1024 px, not %d",
                       c->tile);
    if (c->tiles_per_patient < 0 || c->tiles_per_patient > 10000)
        return fl_fail(err, FL_EINVAL,
                       "synthetic cohort: tiles per patient must be 0..10000, not %d",
                       c->tiles_per_patient);
    if (c->genes < 64 || c->genes > 100000)
        return fl_fail(err, FL_EINVAL, "synthetic cohort: genes must be 64..100000, not %d",
                       c->genes);
    if (c->probes < 64 || c->probes > 1000000)
        return fl_fail(err, FL_EINVAL, "synthetic cohort: probes must be 64..1000000, not %d",
                       c->probes);
    if (!(c->label_skew >= 0 && c->label_skew <= 1e6))
        return fl_fail(err, FL_EINVAL, "synthetic cohort: label skew must be 0..1e6, not %g",
                       (double)c->label_skew);
    if (!(c->kappa >= 0 && c->kappa <= 100))
        return fl_fail(err, FL_EINVAL, "synthetic cohort: kappa must be 0..100, not %g",
                       (double)c->kappa);
    return FL_OK;
}

/* ---- random variates ---- */

double fl_synth__gamma(fl_rng *r, double shape) {
    if (shape <= 0) return 0;
    if (shape < 1) { /* boost: G(a) = G(a + 1) * U^(1/a) */
        double u = fl_rng_uniform(r);
        return fl_synth__gamma(r, shape + 1) * pow(u > 0 ? u : 1e-300, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = fl_rng_normal(r), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = fl_rng_uniform(r);
        if (u < 1 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
    }
}

double fl_synth__beta(fl_rng *r, double a, double b) {
    double x = fl_synth__gamma(r, a), y = fl_synth__gamma(r, b);
    return x + y > 0 ? x / (x + y) : 0.5;
}

static int bernoulli(fl_rng *r, double p) {
    return fl_rng_uniform(r) < p;
}

static int below(fl_rng *r, int n) { /* uniform in 0..n-1 */
    return (int)(fl_rng_uniform(r) * n);
}

/* ---- cases and samples ---- */

typedef struct {
    int site, tumour;           /* subtype of the case's tumour */
    int has_tumour, has_normal; /* which of its samples are in the cohort */
    unsigned code;              /* 4-character base-36 case number */
    float z, age, male, never, packs;
    int stage, split;
    fl_synth_sample ts, ns; /* latents of the tumour and the normal sample */
} synth_case;

/* Sizes of the sites: weights 1/k^0.8 (about 43/25/18/14 % for four), largest remainder, at
 * least one sample each. */
static void site_sizes(int P, int S, int *n) {
    double w[FL_SYNTH_MAX_SITES], sum = 0, rem[FL_SYNTH_MAX_SITES];
    for (int s = 0; s < S; s++) sum += w[s] = pow(s + 1, -0.8);
    int left = P - S;
    for (int s = 0; s < S; s++) {
        double exact = left * w[s] / sum;
        n[s] = 1 + (int)exact;
        rem[s] = exact - floor(exact);
    }
    int total = 0;
    for (int s = 0; s < S; s++) total += n[s];
    while (total < P) {
        int best = 0;
        for (int s = 1; s < S; s++)
            if (rem[s] > rem[best]) best = s;
        n[best]++;
        rem[best] = -1;
        total++;
    }
}

static void sample_latents(fl_rng *r, fl_synth_sample *x, int label, int tumour, float z,
                           float kappa) {
    x->tumour = tumour;
    if (label == FL_SYNTH_LUAD)
        x->purity = (float)fl_synth__beta(r, 8.1, 4.7);
    else if (label == FL_SYNTH_LUSC)
        x->purity = (float)fl_synth__beta(r, 5.9, 2.8);
    else
        x->purity = (float)fl_synth__beta(r, 1.0, 20.0);
    x->z = label == FL_SYNTH_NORMAL ? 0.0f : z;
    for (int k = 0; k < 3; k++) x->morph[k] = kappa * morph_mu[label][k] + (float)fl_rng_normal(r);
    x->diag_frac = (float)(0.3 + 0.3 * fl_rng_uniform(r));
    for (int k = 0; k < 2; k++) x->stain_jit[k] = (float)exp(0.05 * fl_rng_normal(r));
    x->seed = fl_rng_u64(r);
}

/* Class counts of every site. Each site's mix pi_s ~ Dir(alpha pi_global) is drawn from the
 * site's own stream; the matrix n_s pi_s is then scaled (iterative proportional fitting) so the
 * cohort-wide mix is pi_global, keeping each site's skew, and rounded by largest remainder. So
 * a small cohort still has its ~12 % NORMAL, which the evaluation needs. */
static void class_counts(const fl_synth_config *cfg, const int *sizes, int n[][FL_SYNTH_CLASSES]) {
    int S = cfg->sites;
    double m[FL_SYNTH_MAX_SITES][FL_SYNTH_CLASSES];
    for (int s = 0; s < S; s++) {
        fl_rng r;
        fl_rng_seed(&r, fl_mix64(cfg->seed, FL_SYNTH_TAG_SITE + (uint64_t)s));
        double sum = 0;
        for (int k = 0; k < FL_SYNTH_CLASSES; k++) {
            m[s][k] = cfg->label_skew > 0 ? fl_synth__gamma(&r, cfg->label_skew * pi_global[k])
                                          : pi_global[k];
            sum += m[s][k];
        }
        for (int k = 0; k < FL_SYNTH_CLASSES; k++)
            m[s][k] = sizes[s] * (sum > 0 ? m[s][k] / sum : pi_global[k]);
    }
    for (int it = 0; it < 50; it++) {
        for (int k = 0; k < FL_SYNTH_CLASSES; k++) { /* columns to P pi_global */
            double col = 0;
            for (int s = 0; s < S; s++) col += m[s][k];
            if (col > 0)
                for (int s = 0; s < S; s++) m[s][k] *= cfg->patients * pi_global[k] / col;
        }
        for (int s = 0; s < S; s++) { /* rows to the site sizes */
            double row = 0;
            for (int k = 0; k < FL_SYNTH_CLASSES; k++) row += m[s][k];
            for (int k = 0; k < FL_SYNTH_CLASSES; k++)
                m[s][k] = row > 0 ? m[s][k] * sizes[s] / row : sizes[s] * pi_global[k];
        }
    }
    for (int s = 0; s < S; s++) {
        int total = 0;
        double rem[FL_SYNTH_CLASSES];
        for (int k = 0; k < FL_SYNTH_CLASSES; k++) {
            n[s][k] = (int)floor(m[s][k]);
            rem[k] = m[s][k] - n[s][k];
            total += n[s][k];
        }
        while (total < sizes[s]) {
            int best = 0;
            for (int k = 1; k < FL_SYNTH_CLASSES; k++)
                if (rem[k] > rem[best]) best = k;
            n[s][best]++;
            rem[best] = -1;
            total++;
        }
    }
}

/* Draws one site's cases from its class counts: one case per tumour sample, normals paired
 * with distinct tumour cases (the rest become cases whose tumour sample is not in the cohort,
 * subtype drawn in proportion), clinical data and latents. Appends to cases; returns the
 * number of cases added, -1 on allocation failure. */
static int draw_site(const fl_synth_config *cfg, int s, const int n_class[FL_SYNTH_CLASSES],
                     synth_case *cases) {
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(cfg->seed, FL_SYNTH_TAG_CASES + (uint64_t)s));
    int n_tum = n_class[0] + n_class[1], n_norm = n_class[2];
    int n_cases = n_tum + (n_norm > n_tum ? n_norm - n_tum : 0);
    int *order = malloc(sizeof(int) * (size_t)(n_cases > 0 ? n_cases : 1));
    if (!order) return -1;
    for (int i = 0; i < n_cases; i++) {
        synth_case *c = &cases[i];
        memset(c, 0, sizeof *c);
        c->site = s;
        c->has_tumour = i < n_tum;
        c->tumour = i < n_class[0]                        ? FL_SYNTH_LUAD
                    : i < n_tum                           ? FL_SYNTH_LUSC
                    : bernoulli(&r, 0.48 / (0.48 + 0.40)) ? FL_SYNTH_LUAD
                                                          : FL_SYNTH_LUSC;
        order[i] = i;
    }
    /* Pair the normals: a random subset of the tumour cases, then the normal-only cases. */
    for (int i = n_tum - 1; i > 0; i--) {
        int j = below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < n_norm; i++) cases[i < n_tum ? order[i] : i].has_normal = 1;
    /* Shuffle the cases themselves so subtypes are mixed in the file, then number them. */
    for (int i = n_cases - 1; i > 0; i--) {
        int j = below(&r, i + 1);
        synth_case t = cases[i];
        cases[i] = cases[j];
        cases[j] = t;
    }
    free(order);
    unsigned code = 46656u + (unsigned)below(&r, 200000);
    double age_shift = -3 + 6 * fl_rng_uniform(&r), miss = 0.3 * fl_rng_uniform(&r);
    int no_smoking = s == cfg->no_smoking_site;
    for (int i = 0; i < n_cases; i++) {
        synth_case *c = &cases[i];
        int luad = c->tumour == FL_SYNTH_LUAD;
        c->code = code;
        code += 1 + (unsigned)below(&r, 9);
        c->z = (float)fl_rng_normal(&r);
        c->age = (float)(luad ? 65 + 10 * fl_rng_normal(&r) : 67 + 9 * fl_rng_normal(&r));
        c->age = fminf(fmaxf(c->age + (float)age_shift, 30.0f), 90.0f);
        c->male = (float)bernoulli(&r, luad ? 0.46 : 0.74);
        c->never = (float)bernoulli(&r, luad ? 0.15 : 0.03);
        double packs = exp(log(luad ? 40.0 : 50.0) + 0.55 * fl_rng_normal(&r));
        c->packs = c->never > 0 ? 0.0f : (float)packs;
        if (no_smoking || bernoulli(&r, miss / 2)) c->never = NAN;
        if (no_smoking || bernoulli(&r, miss)) c->packs = NAN;
        float w = c->z + 0.8f * (float)fl_rng_normal(&r);
        const float *cut = stage_cut[luad ? 0 : 1];
        c->stage = w < cut[0] ? 0 : w < cut[1] ? 1 : w < cut[2] ? 2 : 3;
        sample_latents(&r, &c->ts, c->tumour, c->tumour, c->z, cfg->kappa);
        sample_latents(&r, &c->ns, FL_SYNTH_NORMAL, c->tumour, c->z, cfg->kappa);
    }
    return n_cases;
}

/* Splits 70/15/15 by case, stratified by (tumour subtype, tumour sample present, normal
 * present) within each site: a site's cases, ordered by stratum and shuffled inside it, walk a
 * 20-slot cycle in steps of 7 from a random start (slots 0-13 train, 14-16 val, 17-19 test),
 * so any 20 consecutive cases split exactly 14/3/3 and every stratum is spread over the cycle. */
typedef struct {
    double key;
    int index;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int assign_splits(const fl_synth_config *cfg, synth_case *cases, int n_cases) {
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(cfg->seed, FL_SYNTH_TAG_SPLIT));
    keyed *k = malloc(sizeof(keyed) * (size_t)(n_cases > 0 ? n_cases : 1));
    if (!k) return -1;
    for (int s = 0; s < cfg->sites; s++) {
        int m = 0;
        for (int i = 0; i < n_cases; i++) {
            if (cases[i].site != s) continue;
            int stratum = cases[i].tumour * 4 + cases[i].has_tumour * 2 + cases[i].has_normal;
            k[m++] = (keyed){stratum + fl_rng_uniform(&r), i};
        }
        qsort(k, (size_t)m, sizeof *k, keyed_cmp);
        int slot = below(&r, 20);
        for (int a = 0; a < m; a++, slot = (slot + 7) % 20)
            cases[k[a].index].split = slot < 14   ? FL_SPLIT_TRAIN
                                      : slot < 17 ? FL_SPLIT_VAL
                                                  : FL_SPLIT_TEST;
    }
    free(k);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void case_name(char out[32], int site, unsigned code) {
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char c4[5];
    for (int k = 3; k >= 0; k--, code /= 36) c4[k] = digits[code % 36];
    c4[4] = 0;
    snprintf(out, 32, "TCGA-%s-%s", tss_codes[site], c4);
}

static const char clinical_encoding[] =
    "{\"age\": \"years at diagnosis\", \"male\": \"1 male, 0 female\", \"never_smoker\": \"1 "
    "lifelong non-smoker, 0 current or former smoker\", \"pack_years\": \"pack-years, 0 for "
    "never smokers\", \"missing\": \"NaN\", \"shared_by_case\": true}";

/* Fills the cohort's sample columns, names and clinical matrix from the cases, and the plan's
 * per-sample latents. Tumour sample before its normal, cases in site order. */
static fl_status fill_samples(const fl_synth_config *cfg, const synth_case *cases, int n_cases,
                              fl_cohort *c, fl_synth_plan *plan, fl_err *err) {
    int P = cfg->patients;
    c->P = P;
    c->id = calloc((size_t)P, sizeof(char *));
    c->case_id = calloc((size_t)P, sizeof(char *));
    c->site = malloc(sizeof(int32_t) * (size_t)P);
    c->label = malloc(sizeof(int32_t) * (size_t)P);
    c->stage = malloc(sizeof(int32_t) * (size_t)P);
    c->split = malloc((size_t)P);
    plan->site = malloc(sizeof(int32_t) * (size_t)P);
    plan->s = malloc(sizeof(fl_synth_sample) * (size_t)P);
    fl_omics_matrix *cl = &c->omics[FL_MOD_CLINICAL];
    static const char *const cols[4] = {"age", "male", "never_smoker", "pack_years"};
    cl->F = 4;
    cl->features = calloc(4, sizeof(char *));
    cl->values = malloc(sizeof(float) * 4 * (size_t)P);
    cl->present = malloc((size_t)P);
    cl->encoding = dup_str(clinical_encoding);
    if (!c->id || !c->case_id || !c->site || !c->label || !c->stage || !c->split || !plan->site ||
        !plan->s || !cl->features || !cl->values || !cl->present || !cl->encoding)
        goto nomem;
    for (int k = 0; k < 4; k++)
        if (!(cl->features[k] = dup_str(cols[k]))) goto nomem;
    int p = 0;
    for (int i = 0; i < n_cases; i++) {
        const synth_case *cs = &cases[i];
        char name[32], sample[40];
        case_name(name, cs->site, cs->code);
        for (int normal = 0; normal < 2; normal++) {
            if (!(normal ? cs->has_normal : cs->has_tumour)) continue;
            snprintf(sample, sizeof sample, "%s-%s", name, normal ? "11A" : "01A");
            if (!(c->id[p] = dup_str(sample)) || !(c->case_id[p] = dup_str(name))) goto nomem;
            c->site[p] = plan->site[p] = cs->site;
            c->label[p] = normal ? FL_SYNTH_NORMAL : cs->tumour;
            c->stage[p] = normal ? -1 : cs->stage;
            c->split[p] = (uint8_t)cs->split;
            plan->s[p] = normal ? cs->ns : cs->ts;
            float *row = cl->values + 4 * (size_t)p;
            row[0] = cs->age;
            row[1] = cs->male;
            row[2] = cs->never;
            row[3] = cs->packs;
            cl->present[p] = 1;
            p++;
        }
    }
    if (p != P) return fl_fail(err, FL_EINVAL, "synthetic cohort: made %d samples, not %d", p, P);
    c->n_classes = FL_SYNTH_CLASSES;
    c->class_names = calloc(FL_SYNTH_CLASSES, sizeof(char *));
    c->n_sites = cfg->sites;
    c->site_names = calloc((size_t)cfg->sites, sizeof(char *));
    if (!c->class_names || !c->site_names) goto nomem;
    for (int k = 0; k < FL_SYNTH_CLASSES; k++)
        if (!(c->class_names[k] = dup_str(class_names[k]))) goto nomem;
    for (int s = 0; s < cfg->sites; s++)
        if (!(c->site_names[s] = dup_str(tss_codes[s]))) goto nomem;
    return FL_OK;
nomem:
    return fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for %d samples", P);
}

static fl_status fill_tiles_and_provenance(const fl_synth_config *cfg, fl_cohort *c, fl_err *err) {
    if (cfg->tile > 0 && cfg->tiles_per_patient > 0) {
        c->tile = cfg->tile;
        c->n_tiles = (int64_t)c->P * cfg->tiles_per_patient;
        c->tile_patient = malloc(sizeof(int32_t) * (size_t)c->n_tiles);
        if (!c->tile_patient)
            return fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for %lld tiles",
                           (long long)c->n_tiles);
        for (int64_t t = 0; t < c->n_tiles; t++)
            c->tile_patient[t] = (int32_t)(t / cfg->tiles_per_patient);
    }
    char buf[560], miss[96] = "none", features[48] = "";
    int ms = cfg->no_methylation_site, ss = cfg->no_smoking_site;
    int has_m = ms >= 0 && ms < cfg->sites, has_s = ss >= 0 && ss < cfg->sites;
    if (has_m || has_s)
        snprintf(miss, sizeof miss, "%s%s%s%s%s", has_m ? "methylation@" : "",
                 has_m ? tss_codes[ms] : "", has_m && has_s ? "," : "", has_s ? "smoking@" : "",
                 has_s ? tss_codes[ss] : "");
    if (cfg->own_features) /* only then, so that other cohorts keep their provenance */
        snprintf(features, sizeof features, " feature_seed=%llu",
                 (unsigned long long)cfg->feature_seed);
    snprintf(buf, sizeof buf,
             "fedlung synthetic lung cohort v1: patients=%d sites=%d tile=%d "
             "tiles_per_patient=%d genes=%d probes=%d label_skew=%g seed=%llu%s kappa=%g "
             "missing=%s",
             cfg->patients, cfg->sites, cfg->tile, cfg->tiles_per_patient, cfg->genes, cfg->probes,
             (double)cfg->label_skew, (unsigned long long)cfg->seed, features, (double)cfg->kappa,
             miss);
    if (!(c->provenance = dup_str(buf)))
        return fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory");
    return FL_OK;
}

fl_status fl_synth_build(const fl_synth_config *cfg, fl_cohort *out, fl_synth_plan **plan_out,
                         fl_err *err) {
    memset(out, 0, sizeof *out);
    if (plan_out) *plan_out = NULL;
    fl_status st = fl_synth_config_check(cfg, err);
    if (st != FL_OK) return st;
    fl_synth_plan *plan = calloc(1, sizeof *plan);
    /* A site makes at most one case per sample. */
    synth_case *cases = malloc(sizeof(synth_case) * (size_t)cfg->patients);
    if (!plan || !cases) {
        st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory");
        goto fail;
    }
    plan->cfg = *cfg;
    plan->P = cfg->patients;
    int sizes[FL_SYNTH_MAX_SITES], counts[FL_SYNTH_MAX_SITES][FL_SYNTH_CLASSES], n_cases = 0;
    site_sizes(cfg->patients, cfg->sites, sizes);
    class_counts(cfg, sizes, counts);
    for (int s = 0; s < cfg->sites; s++) {
        int k = draw_site(cfg, s, counts[s], cases + n_cases);
        if (k < 0) {
            st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory");
            goto fail;
        }
        n_cases += k;
    }
    if (assign_splits(cfg, cases, n_cases) != 0) {
        st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory");
        goto fail;
    }
    if ((st = fill_samples(cfg, cases, n_cases, out, plan, err)) != FL_OK) goto fail;
    if ((st = fl_synth__rna(plan, out, err)) != FL_OK) goto fail;
    if ((st = fl_synth__methylation(plan, out, err)) != FL_OK) goto fail;
    if ((st = fill_tiles_and_provenance(cfg, out, err)) != FL_OK) goto fail;
    fl_synth__stains(plan);
    free(cases);
    if (plan_out)
        *plan_out = plan;
    else
        fl_synth_plan_free(plan);
    return FL_OK;
fail:
    free(cases);
    fl_synth_plan_free(plan);
    fl_cohort_destroy(out);
    return st;
}

void fl_synth_plan_free(fl_synth_plan *plan) {
    if (!plan) return;
    free(plan->site);
    free(plan->s);
    free(plan);
}

fl_status fl_synth_write(const fl_synth_config *cfg, const char *path, fl_err *err) {
    fl_cohort c;
    fl_synth_plan *plan = NULL;
    fl_cohort_writer *w = NULL;
    uint8_t *buf = NULL;
    fl_status st = fl_synth_build(cfg, &c, &plan, err);
    if (st != FL_OK) return st;
    if ((st = fl_cohort_writer_begin(&w, &c, path, err)) != FL_OK) goto fail;
    if (c.n_tiles > 0) {
        /* Batches of whole patients, about 4 MiB, rendered in parallel. */
        size_t per_patient = (size_t)cfg->tiles_per_patient * (size_t)cfg->tile * cfg->tile * 3;
        int batch = (int)((4u << 20) / per_patient);
        if (batch < 1) batch = 1;
        if (batch > c.P) batch = c.P;
        if (!(buf = malloc(per_patient * (size_t)batch))) {
            st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for a tile batch");
            goto fail;
        }
        for (int p0 = 0; p0 < c.P; p0 += batch) {
            int n = c.P - p0 < batch ? c.P - p0 : batch, failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
            for (int i = 0; i < n; i++)
                failed |= fl_synth_render_tiles(plan, p0 + i, buf + per_patient * i) != FL_OK;
            if (failed) {
                st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory rendering tiles");
                goto fail;
            }
            int64_t count = (int64_t)n * cfg->tiles_per_patient;
            if ((st = fl_cohort_write_tiles(w, buf, count, err)) != FL_OK) goto fail;
            if (cfg->progress)
                cfg->progress(cfg->progress_ctx, (int64_t)(p0 + n) * cfg->tiles_per_patient,
                              c.n_tiles);
        }
    }
    st = fl_cohort_writer_commit(w, err);
    w = NULL;
fail:
    fl_cohort_writer_abort(w);
    free(buf);
    fl_synth_plan_free(plan);
    fl_cohort_destroy(&c);
    return st;
}
