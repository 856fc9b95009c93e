/* synth_impl.h - internals shared by the synthetic cohort's files (synth.c builds the patients,
 * synth_omics.c their RNA and methylation, synth_tiles.c their H&E tiles). Not public. */
#ifndef FL_SYNTH_IMPL_H
#define FL_SYNTH_IMPL_H

#include <stdint.h>

#include "../common/rng.h"
#include "synth.h"

enum { FL_SYNTH_LUAD = 0, FL_SYNTH_LUSC = 1, FL_SYNTH_NORMAL = 2, FL_SYNTH_CLASSES = 3 };

/* Seed tags: every purpose draws from its own stream fl_mix64(seed, tag [+ index]) so adding
 * draws to one part never changes another. */
enum {
    FL_SYNTH_TAG_SITE = 100,  /* + site: the site's class mix */
    FL_SYNTH_TAG_CASES = 150, /* + site: cases, clinical, purity, latents of a site */
    FL_SYNTH_TAG_GENES = 200,
    FL_SYNTH_TAG_PROBES = 201,
    FL_SYNTH_TAG_SPLIT = 202,
    FL_SYNTH_TAG_RNA = 300,  /* + site: batch effects; per sample: fl_mix64(seed_rna, p) */
    FL_SYNTH_TAG_METH = 400, /* + site */
    FL_SYNTH_TAG_STAIN = 500 /* + site */
};

/* The seed of the genes' and probes' names and parameters (synth.h, own_features). */
static inline uint64_t fl_synth__feature_seed(const fl_synth_config *c) {
    return c->own_features ? c->feature_seed : c->seed;
}

/* What the generator knows about a sample beyond the cohort's columns. */
typedef struct {
    int tumour;         /* the case's tumour subtype, FL_SYNTH_LUAD or _LUSC (also for NORMAL) */
    float purity;       /* tumour cell fraction rho: Beta by subtype; NORMAL ~ Beta(1, 20) */
    float z;            /* the case's aggressiveness; 0 in NORMAL samples' tissue */
    float morph[3];     /* image latent (gland, nest, alveolus tendency) ~ kappa * mu_y + N(0, I) */
    float diag_frac;    /* fraction of the sample's tiles that show class morphology, U(0.3, 0.6) */
    float stain_jit[2]; /* per-slide H and E concentration factors around the site's */
    uint64_t seed;      /* the sample's own stream (tiles, omics noise) */
} fl_synth_sample;

typedef struct {
    float h[3], e[3]; /* the site's unit OD vectors of haematoxylin and eosin (rotated) */
    float scale[2];   /* H and E concentration scale, LogNormal(0, 0.15) */
    float tint[3];    /* background OD added everywhere */
    float blur;       /* Gaussian blur sigma in px */
    float noise;      /* sensor noise SD in 0..255 units */
} fl_synth_stain;

struct fl_synth_plan {
    fl_synth_config cfg;
    int P;
    int32_t *site; /* P: copy of the cohort's */
    fl_synth_sample *s;
    fl_synth_stain stain[FL_SYNTH_MAX_SITES];
};

/* Random variates for the generator (Marsaglia-Tsang gamma, ratios of gammas for beta). */
double fl_synth__gamma(fl_rng *r, double shape);
double fl_synth__beta(fl_rng *r, double a, double b);

/* Fills the RNA and methylation matrices of c (P rows, from the plan's samples and the cohort's
 * labels and sites; memory allocated here and owned by c). */
fl_status fl_synth__rna(const fl_synth_plan *plan, fl_cohort *c, fl_err *err);
fl_status fl_synth__methylation(const fl_synth_plan *plan, fl_cohort *c, fl_err *err);
/* Draws every site's stain parameters into plan->stain. */
void fl_synth__stains(fl_synth_plan *plan);

#endif
