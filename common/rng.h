/* rng.h - small deterministic random numbers for initialisation, synthetic data and shuffling
 * (splitmix64 + Box-Muller). Not for anything secret: privacy noise comes from crypto/. */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
    int has_spare;
    double spare;
} fl_rng;

void fl_rng_seed(fl_rng *r, uint64_t seed);
uint64_t fl_rng_u64(fl_rng *r);
double fl_rng_uniform(fl_rng *r); /* [0, 1) */
double fl_rng_normal(fl_rng *r);  /* mean 0, variance 1 */
/* A well-mixed 64-bit function of (a, b), for deriving independent seeds. */
uint64_t fl_mix64(uint64_t a, uint64_t b);

#endif
