/* synth_omics.c - RNA (log2 TPM+1) and methylation (beta) of the synthetic cohort: a normal
 * lung profile, subtype and tumour effects mixed by purity, patient heterogeneity, site batch
 * effects and masking. The numbers follow the spec's sections 5.2 and 5.3; the heterogeneity
 * (which tumours methylate which promoter) is what keeps methylation below perfect. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_impl.h"

/* ---- named genes and probes ---- */

typedef enum {
    G_LUAD_UP,  /* +2..+3 in LUAD */
    G_LUSC_UP,  /* +4..+6 in LUSC: squamous markers, the strongest separators */
    G_NORMAL,   /* normal-lung genes, -2..-4 in tumour */
    G_TUMOUR,   /* +1.5..+3 in tumour, plus 0.3 z (invasion) */
    G_PROLIF,   /* the same, proliferation */
    G_SILENCED, /* promoter hypermethylated in some tumours: -1 where it is */
    G_HNF1B     /* +1 in LUAD */
} gene_kind;

typedef struct {
    const char *name;
    gene_kind kind;
} named_gene;

static const named_gene genes[] = {
    {"NKX2-1", G_LUAD_UP}, {"NAPSA", G_LUAD_UP},   {"SFTA2", G_LUAD_UP},   {"SFTA3", G_LUAD_UP},
    {"TMC5", G_LUAD_UP},   {"CEACAM6", G_LUAD_UP}, {"KRT7", G_LUAD_UP},    {"MUC1", G_LUAD_UP},
    {"KRT5", G_LUSC_UP},   {"KRT6A", G_LUSC_UP},   {"KRT6B", G_LUSC_UP},   {"TP63", G_LUSC_UP},
    {"SOX2", G_LUSC_UP},   {"DSG3", G_LUSC_UP},    {"CALML3", G_LUSC_UP},  {"PKP1", G_LUSC_UP},
    {"CLCA2", G_LUSC_UP},  {"SPRR1B", G_LUSC_UP},  {"KRT14", G_LUSC_UP},   {"S100A2", G_LUSC_UP},
    {"AGER", G_NORMAL},    {"SFTPC", G_NORMAL},    {"CLDN18", G_NORMAL},   {"FABP4", G_NORMAL},
    {"CA4", G_NORMAL},     {"TNNC1", G_NORMAL},    {"MKI67", G_PROLIF},    {"TOP2A", G_PROLIF},
    {"SPP1", G_TUMOUR},    {"MMP1", G_TUMOUR},     {"MMP11", G_TUMOUR},    {"COL11A1", G_TUMOUR},
    {"SHOX2", G_SILENCED}, {"RASSF1", G_SILENCED}, {"CDKN2A", G_SILENCED}, {"HOXA9", G_SILENCED},
    {"SOX17", G_SILENCED}, {"TAC1", G_SILENCED},   {"PTGER4", G_SILENCED}, {"CDO1", G_SILENCED},
    {"HNF1B", G_HNF1B}};
enum { N_NAMED_GENES = sizeof genes / sizeof genes[0] };

/* Promoters hypermethylated in tumours (the G_SILENCED genes, in that order). */
enum { N_HYPER = 8 };
static const char *const hyper_genes[N_HYPER] = {"SHOX2", "RASSF1", "CDKN2A", "HOXA9",
                                                 "SOX17", "TAC1",   "PTGER4", "CDO1"};
/* Subtype promoters hypomethylated where the gene is expressed. */
static const char *const lusc_hypo[3] = {"TP63", "SOX2", "KRT5"};
static const char *const luad_hypo[3] = {"NKX2-1", "NAPSA", "SFTA3"};

typedef enum { P_LOW, P_HIGH, P_MID, P_HYPER, P_LUSC_HYPO, P_LUAD_HYPO, P_HNF1B } probe_kind;

typedef struct {
    const char *gene;
    probe_kind kind;
    int which; /* index within its group (hyper gene, subtype gene) */
} named_probe;

/* 3 probes per hypermethylated promoter, 2 per subtype promoter, 2 for HNF1B: 38. */
enum { N_NAMED_PROBES = N_HYPER * 3 + 6 * 2 + 2 };

static void named_probe_table(named_probe *t) {
    int k = 0;
    for (int g = 0; g < N_HYPER; g++)
        for (int i = 0; i < 3; i++) t[k++] = (named_probe){hyper_genes[g], P_HYPER, g};
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 2; i++) t[k++] = (named_probe){lusc_hypo[g], P_LUSC_HYPO, g};
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 2; i++) t[k++] = (named_probe){luad_hypo[g], P_LUAD_HYPO, g};
    for (int i = 0; i < 2; i++) t[k++] = (named_probe){"HNF1B", P_HNF1B, 0};
}

/* ---- per-sample tumour programme, shared by RNA and methylation ---- */

typedef struct {
    float hyper[N_HYPER];  /* beta gain of each hypermethylated promoter in the tumour, or 0 */
    float subtype_hypo[3]; /* beta loss at the subtype's own promoters, or 0 */
    float hnf1b;           /* beta gain at HNF1B (LUSC), or 0 */
    float global_hypo;     /* beta loss at open-sea (high) probes */
    float programme;       /* strength of the subtype's marker expression, U(0.6, 1.2) */
} tumour_programme;

static void draw_programme(const fl_synth_sample *s, tumour_programme *t) {
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(s->seed, 0x70726f67)); /* "prog" */
    for (int g = 0; g < N_HYPER; g++) {
        int hit = fl_rng_uniform(&r) < 0.5;
        float a = (float)(0.3 + 0.2 * fl_rng_uniform(&r));
        t->hyper[g] = hit ? a : 0;
    }
    for (int g = 0; g < 3; g++) {
        int hit = fl_rng_uniform(&r) < 0.7;
        float a = (float)(0.3 + 0.2 * fl_rng_uniform(&r));
        t->subtype_hypo[g] = hit ? a : 0;
    }
    int hit = fl_rng_uniform(&r) < 0.6;
    float a = (float)(0.2 + 0.15 * fl_rng_uniform(&r));
    t->hnf1b = s->tumour == FL_SYNTH_LUSC && hit ? a : 0;
    double h = 0.10 + 0.03 * s->z + 0.05 * fl_rng_normal(&r);
    t->global_hypo = (float)(h > 0 ? h : 0);
    t->programme = (float)(0.6 + 0.6 * fl_rng_uniform(&r));
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static fl_status alloc_matrix(fl_omics_matrix *m, int P, int F, fl_err *err) {
    m->F = F;
    m->features = calloc((size_t)F, sizeof(char *));
    m->values = malloc(sizeof(float) * (size_t)P * (size_t)F);
    m->present = malloc((size_t)P);
    if (!m->features || !m->values || !m->present)
        return fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for a %d x %d matrix", P,
                       F);
    return FL_OK;
}

/* ---- RNA ---- */

typedef struct {
    float base, sigma; /* normal profile N_g ~ N(4, 2^2), noise SD ~ U(0.3, 0.8) */
    float delta[2];    /* tumour effect by subtype (log2) */
    int kind;          /* gene_kind, or -1 for background */
    int which;         /* index of a silenced gene */
} gene_param;

fl_status fl_synth__rna(const fl_synth_plan *plan, fl_cohort *c, fl_err *err) {
    const fl_synth_config *cfg = &plan->cfg;
    int P = plan->P, G = cfg->genes, S = cfg->sites;
    fl_omics_matrix *m = &c->omics[FL_MOD_RNA];
    fl_status st = alloc_matrix(m, P, G, err);
    if (st != FL_OK) return st;
    gene_param *gp = malloc(sizeof(gene_param) * (size_t)G);
    float *batch = malloc(sizeof(float) * (size_t)G * (size_t)S);
    if (!gp || !batch) {
        st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for %d genes", G);
        goto done;
    }
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(fl_synth__feature_seed(cfg), FL_SYNTH_TAG_GENES));
    /* Named genes sit at spread-out positions among the background. */
    int silenced = 0;
    for (int g = 0, k = 0; g < G; g++) {
        gene_param *q = &gp[g];
        q->base = (float)(4 + 2 * fl_rng_normal(&r));
        q->sigma = (float)(0.3 + 0.5 * fl_rng_uniform(&r));
        q->kind = -1;
        q->which = 0;
        q->delta[0] = q->delta[1] = 0;
        double u = fl_rng_uniform(&r), v = fl_rng_uniform(&r);
        int named = k < N_NAMED_GENES && g == (int)((k + 0.5) * G / N_NAMED_GENES);
        char name[32];
        if (named) {
            const named_gene *ng = &genes[k++];
            q->kind = (int)ng->kind;
            snprintf(name, sizeof name, "%s", ng->name);
            /* Realistic normal-lung levels: alveolar genes among the highest, squamous
             * markers low, the rest moderate (the background draw is replaced). */
            static const float base_lo[] = {4, 1.5f, 8, 3, 3, 4, 3};
            q->base = base_lo[ng->kind] + 2 * (float)v;
            switch (ng->kind) {
            case G_LUAD_UP:
                q->delta[0] = (float)(2 + u);
                break;
            case G_LUSC_UP:
                q->delta[1] = (float)(4 + 2 * u);
                break;
            case G_NORMAL:
                q->delta[0] = q->delta[1] = (float)-(2 + 2 * u);
                break;
            case G_TUMOUR:
            case G_PROLIF:
                q->delta[0] = q->delta[1] = (float)(1.5 + 1.5 * u);
                break;
            case G_SILENCED:
                q->which = silenced++;
                break;
            case G_HNF1B:
                q->delta[0] = 1;
                break;
            }
        } else {
            snprintf(name, sizeof name, "GENE%04d", g + 1 - k);
            if (v < 0.05) { /* weakly differentially expressed background */
                q->delta[0] = (float)(0.6 * fl_rng_normal(&r));
                q->delta[1] = (float)(0.6 * fl_rng_normal(&r));
            }
        }
        if (!(m->features[g] = dup_str(name))) {
            st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for gene names");
            goto done;
        }
    }
    /* Site batch effects: N(0, 0.3^2) per gene, 5 % of genes shifted by about +-1. */
    float quality[FL_SYNTH_MAX_SITES];
    for (int s = 0; s < S; s++) {
        fl_rng_seed(&r, fl_mix64(cfg->seed, FL_SYNTH_TAG_RNA + (uint64_t)s));
        quality[s] = (float)(1 + 0.3 * fl_rng_uniform(&r));
        for (int g = 0; g < G; g++) {
            double b = 0.3 * fl_rng_normal(&r);
            if (fl_rng_uniform(&r) < 0.05) b += fl_rng_uniform(&r) < 0.5 ? -1 : 1;
            batch[(size_t)s * G + g] = (float)b;
        }
    }
    for (int p = 0; p < P; p++) {
        const fl_synth_sample *x = &plan->s[p];
        tumour_programme tp;
        draw_programme(x, &tp);
        fl_rng_seed(&r, fl_mix64(x->seed, FL_SYNTH_TAG_RNA));
        int s = plan->site[p], ty = x->tumour;
        double rho = x->purity;
        float *row = m->values + (size_t)p * G;
        for (int g = 0; g < G; g++) {
            const gene_param *q = &gp[g];
            double d = q->delta[ty];
            if (q->kind == G_LUAD_UP || q->kind == G_LUSC_UP) d *= tp.programme;
            if (q->kind == G_PROLIF || q->kind == G_TUMOUR) d += 0.3 * x->z; /* staging */
            if (q->kind == G_SILENCED && tp.hyper[q->which] > 0) d -= 1.0;
            double t = q->base + d, n = q->base;
            double mix = log2(rho * exp2(t) + (1 - rho) * exp2(n));
            double val = mix + batch[(size_t)s * G + g] + q->sigma * quality[s] * fl_rng_normal(&r);
            row[g] = (float)(val > 0 ? val : 0);
        }
        m->present[p] = 1;
    }
done:
    free(gp);
    free(batch);
    return st;
}

/* ---- methylation ---- */

static double sig2(double M) { /* beta from M value */
    return 1.0 / (1.0 + exp2(-M));
}

static double logit2(double b) {
    if (b < 1e-4) b = 1e-4;
    if (b > 1 - 1e-4) b = 1 - 1e-4;
    return log2(b / (1 - b));
}

typedef struct {
    float m0; /* normal-tissue M value */
    uint8_t kind, which, type1;
} probe_param;

fl_status fl_synth__methylation(const fl_synth_plan *plan, fl_cohort *c, fl_err *err) {
    const fl_synth_config *cfg = &plan->cfg;
    int P = plan->P, M = cfg->probes, S = cfg->sites;
    fl_omics_matrix *m = &c->omics[FL_MOD_METHYLATION];
    fl_status st = alloc_matrix(m, P, M, err);
    if (st != FL_OK) return st;
    probe_param *pp = malloc(sizeof(probe_param) * (size_t)M);
    float *dev = malloc(sizeof(float) * (size_t)M * (size_t)S);
    if (!pp || !dev) {
        st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for %d probes", M);
        goto done;
    }
    named_probe named[N_NAMED_PROBES];
    named_probe_table(named);
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(fl_synth__feature_seed(cfg), FL_SYNTH_TAG_PROBES));
    unsigned id = 10000 + (unsigned)(fl_rng_uniform(&r) * 10000);
    for (int j = 0, k = 0; j < M; j++) {
        probe_param *q = &pp[j];
        double u = fl_rng_uniform(&r), e = fl_rng_normal(&r);
        q->type1 = fl_rng_uniform(&r) < 0.3;
        q->which = 0;
        id += 1 + (unsigned)(fl_rng_uniform(&r) * 40); /* sparse, increasing, like HM450 ids */
        char name[48];
        if (k < N_NAMED_PROBES && j == (int)((k + 0.5) * M / N_NAMED_PROBES)) {
            const named_probe *np = &named[k++];
            q->kind = (uint8_t)np->kind;
            q->which = (uint8_t)np->which;
            q->m0 = (float)(np->kind == P_HYPER   ? -3 + 0.3 * e
                            : np->kind == P_HNF1B ? -0.5 + 0.3 * e
                                                  : 1.5 + 0.3 * e);
            snprintf(name, sizeof name, "cg%08u_%s", id, np->gene);
        } else {
            q->kind = u < 0.45 ? P_LOW : u < 0.85 ? P_HIGH : P_MID;
            q->m0 = (float)(q->kind == P_LOW    ? -3 + 0.5 * e
                            : q->kind == P_HIGH ? 2.5 + 0.5 * e
                                                : -1 + 2 * fl_rng_uniform(&r));
            snprintf(name, sizeof name, "cg%08u", id);
        }
        if (!(m->features[j] = dup_str(name))) {
            st = fl_fail(err, FL_ENOMEM, "synthetic cohort: out of memory for probe names");
            goto done;
        }
    }
    /* Per site: a shift in M of N(0, 0.2^2) plus 0.1 SD per probe, an Infinium I bias, and a
     * pOOBAH-like masking rate of 0.5-1 %. */
    float shift[FL_SYNTH_MAX_SITES], bias1[FL_SYNTH_MAX_SITES], na[FL_SYNTH_MAX_SITES];
    for (int s = 0; s < S; s++) {
        fl_rng_seed(&r, fl_mix64(cfg->seed, FL_SYNTH_TAG_METH + (uint64_t)s));
        shift[s] = (float)(0.2 * fl_rng_normal(&r));
        bias1[s] = (float)(0.3 * fl_rng_normal(&r));
        na[s] = (float)(0.005 + 0.005 * fl_rng_uniform(&r));
        for (int j = 0; j < M; j++) dev[(size_t)s * M + j] = (float)(0.1 * fl_rng_normal(&r));
    }
    for (int p = 0; p < P; p++) {
        float *row = m->values + (size_t)p * M;
        int s = plan->site[p];
        if (s == cfg->no_methylation_site) {
            for (int j = 0; j < M; j++) row[j] = NAN;
            m->present[p] = 0;
            continue;
        }
        const fl_synth_sample *x = &plan->s[p];
        tumour_programme tp;
        draw_programme(x, &tp);
        fl_rng_seed(&r, fl_mix64(x->seed, FL_SYNTH_TAG_METH));
        double rho = x->purity;
        for (int j = 0; j < M; j++) {
            const probe_param *q = &pp[j];
            double bn = sig2(q->m0 + 0.25 * fl_rng_normal(&r)), d = 0;
            switch ((probe_kind)q->kind) {
            case P_HIGH:
                d = -tp.global_hypo;
                break;
            case P_HYPER:
                d = tp.hyper[q->which];
                break;
            case P_LUSC_HYPO:
                if (x->tumour == FL_SYNTH_LUSC) d = -tp.subtype_hypo[q->which];
                break;
            case P_LUAD_HYPO:
                if (x->tumour == FL_SYNTH_LUAD) d = -tp.subtype_hypo[q->which];
                break;
            case P_HNF1B:
                d = tp.hnf1b;
                break;
            default:
                break;
            }
            double bt = fmin(fmax(bn + d, 0.005), 0.995);
            double b = rho * bt + (1 - rho) * bn;
            double mv = logit2(b) + shift[s] + dev[(size_t)s * M + j] + (q->type1 ? bias1[s] : 0) +
                        0.3 * fl_rng_normal(&r);
            double u = fl_rng_uniform(&r);
            row[j] = u < na[s] ? NAN : (float)sig2(mv);
        }
        m->present[p] = 1;
    }
done:
    free(pp);
    free(dev);
    return st;
}
