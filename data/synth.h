/* synth.h - the synthetic multimodal lung cohort (LUAD / LUSC / NORMAL): TCGA-shaped ids and
 * sites, Dirichlet label skew, purity, RNA, methylation, clinical data and H&E-like tiles, with
 * site effects and missing modalities, after the synthetic-cohort spec (shared/reference/
 * synthetic-cohort.md, sections 5.1-5.7). A calibrated stand-in for real data, not a model of
 * disease: every number is a knob. The same config (seed included) gives the same bytes.
 *
 * What a cohort holds. Rows are samples: a tumour sample "TCGA-05-4244-01A" per tumour case
 * and, for NORMAL, an adjacent-normal sample "TCGA-05-4244-11A" of a tumour case of the same
 * site (TCGA's pairing), sharing its case id, split and clinical row; when a site has more
 * normals than tumours, the rest come from cases whose tumour sample is not in the cohort.
 * Stage is 0..3 (I..IV) on tumour samples and -1 on NORMAL samples (a normal sample has no
 * tumour of its own; its case's stage is on the paired tumour row). Clinical columns: age,
 * male, never_smoker, pack_years (NaN = missing), present for every sample. Splits are
 * 70/15/15 by case, stratified within each site by subtype and pairing.
 *
 * Difficulty, measured on the default cohort (300 samples, seeds 1-6, 5-fold logistic
 * regression by case): RNA macro AUC 0.993-0.999, methylation 0.94-0.98, clinical 0.58-0.67
 * (LUAD vs LUSC 0.65-0.76, NORMAL ~0.5), all omics together >= 0.985 on every class. Tiles:
 * an ideal observer of the patients' latent morphology reaches macro AUC ~0.83 at kappa 1; a
 * small CNN trained on the train split's tiles reached 0.77 (val + test patients, mean tile
 * probability), NORMAL AP 0.41, the lowest of the three. */
#ifndef FL_SYNTH_H
#define FL_SYNTH_H

#include <stdint.h>

#include "../common/status.h"
#include "cohort.h"

#define FL_SYNTH_MAX_SITES 16

typedef struct {
    int patients;          /* samples (cohort rows), tumour and paired normal: default 300 */
    int sites;             /* 1..FL_SYNTH_MAX_SITES, Zipf-like sizes: default 4 */
    int tile;              /* tile edge in px, 16..1024 (0: no tiles): default 64 */
    int tiles_per_patient; /* default 16 (0: no tiles) */
    int genes;             /* RNA features, >= 64 (about 40 named markers): default 1000 */
    int probes;            /* methylation features, >= 64 (38 named probes): default 2000 */
    /* Dirichlet concentration alpha of the per-site class mix pi_s ~ Dir(alpha * pi_global):
     * 0 = no skew (every site draws from pi_global), 100 ~ IID, 10 = mild (default; a site's
     * NORMAL share varies by about +-0.1), 1 or less = strong (sites nearly one class). */
    float label_skew;
    uint64_t seed; /* default 1 */
    /* The features' own seed: with own_features set, the genes' and probes' names and biology
     * (levels, class effects, which probes silence which genes) come from feature_seed instead
     * of seed. A public reference cohort shares a federation's features but not its patients:
     * feature_seed = the federation's seed, another seed. Default 0: from seed. */
    int own_features;
    uint64_t feature_seed;
    /* Image difficulty: scales the class means of the patients' latent morphology (gland-,
     * nest- and alveolus-forming tendency), in units of the between-patient SD, which decides
     * how often a diagnostic tile shows glands, solid nests or alveoli and its nuclear density,
     * size and pleomorphism. 0 = tiles carry no class signal; 1 = calibrated default (ideal
     * observer macro AUC ~0.83, a small CNN ~0.77); 1.5 ~0.92 ideal; 2 = easy. Only 30-60 % of
     * a sample's tiles are diagnostic at any kappa. Omics are unaffected. */
    float kappa;
    /* Missing modalities, as site indices (-1 or >= sites: none). Default: site 2 (the third)
     * has no methylation (present = 0, NaN rows), site 3 (the fourth) no smoking fields
     * (never_smoker and pack_years NaN; the clinical modality stays present). Other sites miss
     * 0-30 % of their smoking fields at random. */
    int no_methylation_site;
    int no_smoking_site;
    /* Optional progress report while tiles are rendered and written (NULL: none). */
    void (*progress)(void *ctx, int64_t tiles_done, int64_t tiles_total);
    void *progress_ctx;
} fl_synth_config;

/* Fills c with the defaults above. */
void fl_synth_config_default(fl_synth_config *c);

/* Checks a config's ranges; FL_EINVAL with a sentence naming the field when out of range. */
fl_status fl_synth_config_check(const fl_synth_config *c, fl_err *err);

/* The generator's plan: per-sample latent variables and per-site stain parameters, enough to
 * render any tile on demand. Opaque; owned by the caller of fl_synth_build. */
typedef struct fl_synth_plan fl_synth_plan;

/* Builds the cohort's metadata and omics in memory: out is filled (the caller destroys it with
 * fl_cohort_destroy) and, when plan is non-NULL, *plan receives what fl_synth_render_tiles
 * needs (free with fl_synth_plan_free). Tiles are not rendered. On failure out is left empty
 * and *plan NULL. */
fl_status fl_synth_build(const fl_synth_config *c, fl_cohort *out, fl_synth_plan **plan,
                         fl_err *err);

/* Renders the tiles_per_patient tiles of sample p into pixels (tiles_per_patient x tile x tile
 * x 3 uint8, HWC, RGB). Deterministic and thread-safe: depends on the plan and p only. Returns
 * FL_ENOMEM (and leaves pixels undefined) when its scratch memory (7 tile planes) is not there. */
fl_status fl_synth_render_tiles(const fl_synth_plan *plan, int p, uint8_t *pixels);

void fl_synth_plan_free(fl_synth_plan *plan); /* NULL-safe */

/* Builds the cohort and writes it to path (HDF5, docs/formats.md), rendering tiles in batches
 * of a few MiB so memory stays bounded whatever the cohort's size. Writes nothing on failure
 * (the writer's temporary file is removed). */
fl_status fl_synth_write(const fl_synth_config *c, const char *path, fl_err *err);

#endif
