/* rng.c - splitmix64 and a Box-Muller normal. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fl_rng_seed(fl_rng *r, uint64_t seed) {
    r->state = seed;
    r->has_spare = 0;
}

uint64_t fl_rng_u64(fl_rng *r) {
    return splitmix64(&r->state);
}

double fl_rng_uniform(fl_rng *r) {
    return (double)(fl_rng_u64(r) >> 11) * 0x1.0p-53;
}

double fl_rng_normal(fl_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do u1 = fl_rng_uniform(r);
    while (u1 <= 0.0);
    u2 = fl_rng_uniform(r);
    double radius = sqrt(-2.0 * log(u1)), angle = 2.0 * M_PI * u2;
    r->spare = radius * sin(angle);
    r->has_spare = 1;
    return radius * cos(angle);
}

uint64_t fl_mix64(uint64_t a, uint64_t b) {
    uint64_t s = a ^ (b * 0xD1B54A32D192ED03ull);
    return splitmix64(&s);
}
