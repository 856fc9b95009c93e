/* partition.c - site, IID and Dirichlet partitions of a cohort over its cases. Everything is
 * computed on cases (groups of samples sharing c->case_id, numbered by first appearance) and then
 * copied to their samples. Not random beyond the seed: the same inputs give the same parts. */
#include "partition.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort_impl.h"

#define REDRAWS 100

/* Seed tags, so the modes draw from unrelated streams. */
enum { TAG_IID = 0x11D, TAG_DIRICHLET = 0xD1A };

fl_status fl_partition_parse(const char *text, fl_partition_spec *spec, fl_err *err) {
    if (strcmp(text, "site") == 0) {
        spec->mode = FL_PARTITION_SITE;
        return FL_OK;
    }
    if (strcmp(text, "iid") == 0) {
        spec->mode = FL_PARTITION_IID;
        return FL_OK;
    }
    if (strncmp(text, "dirichlet:", 10) == 0) {
        char *end;
        double a = strtod(text + 10, &end);
        if (end != text + 10 && !*end && isfinite(a) && a > 0 && a <= 1e6) {
            spec->mode = FL_PARTITION_DIRICHLET;
            spec->alpha = a;
            return FL_OK;
        }
    }
    return fl_fail(err, FL_EINVAL,
                   "--partition \"%.60s\": expected site, iid or dirichlet:ALPHA with 0 < ALPHA "
                   "<= 1e6",
                   text);
}

/* ------------------------------------------------------------------------------------------ */
/* random draws                                                                                */

/* log of one Gamma(a, 1) draw (Marsaglia and Tsang 2000; a < 1 boosted via U^(1/a)). */
static double log_gamma_draw(fl_rng *r, double a) {
    double boost = 0;
    if (a < 1) {
        double u;
        do u = fl_rng_uniform(r);
        while (u <= 0);
        boost = log(u) / a;
        a += 1;
    }
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = fl_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = fl_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return log(d * v) + boost;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return log(d * v) + boost;
    }
}

void fl_dirichlet_sample(fl_rng *rng, double alpha, int K, double *q) {
    double top = -INFINITY, sum = 0;
    for (int k = 0; k < K; k++) {
        q[k] = log_gamma_draw(rng, alpha);
        if (q[k] > top) top = q[k];
    }
    for (int k = 0; k < K; k++) sum += (q[k] = exp(q[k] - top));
    for (int k = 0; k < K; k++) q[k] /= sum;
}

static void shuffle(fl_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(fl_rng_u64(r) % (uint64_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* cases                                                                                       */

typedef struct {
    int n;      /* cases */
    int *of;    /* P: the case of each sample */
    int *first; /* n: the first sample of each case (cases numbered by it) */
} case_map;

static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int case_map_build(const fl_cohort *c, case_map *m) {
    const int P = c->P;
    size_t np = P ? (size_t)P : 1;
    fl__keyed *k = malloc(np * sizeof *k);
    m->of = malloc(np * sizeof *m->of);
    m->first = malloc(np * sizeof *m->first);
    m->n = 0;
    if (!k || !m->of || !m->first) {
        free(k);
        return -1;
    }
    fl__sort_keyed(k, c->case_id, P);
    for (int i = 0; i < P; i++) /* the first sample of every run of equal case ids */
        if (i == 0 || strcmp(k[i - 1].s, k[i].s) != 0) m->first[m->n++] = k[i].i;
    qsort(m->first, (size_t)m->n, sizeof *m->first, int_cmp);
    /* Each run's first sample now has its case number; give it to the whole run. */
    int *num = malloc(np * sizeof *num);
    if (!num) {
        free(k);
        return -1;
    }
    for (int p = 0; p < P; p++) num[p] = -1;
    for (int q = 0; q < m->n; q++) num[m->first[q]] = q;
    int cur = -1;
    for (int i = 0; i < P; i++) {
        if (i == 0 || strcmp(k[i - 1].s, k[i].s) != 0) cur = num[k[i].i];
        m->of[k[i].i] = cur;
    }
    free(num);
    free(k);
    return 0;
}

static void case_map_free(case_map *m) {
    free(m->of);
    free(m->first);
}

/* ------------------------------------------------------------------------------------------ */
/* modes: each fills part_of_case[n cases]                                                     */

static fl_status by_site(const fl_cohort *c, const case_map *m, int want, int *pc, int *n_parts,
                         fl_err *err) {
    int *site_part = malloc((c->n_sites ? (size_t)c->n_sites : 1) * sizeof *site_part);
    if (!site_part) return fl_fail(err, FL_ENOMEM, "out of memory partitioning by site");
    for (int s = 0; s < c->n_sites; s++) site_part[s] = -1;
    for (int p = 0; p < c->P; p++) site_part[c->site[p]] = 0;
    int n = 0;
    for (int s = 0; s < c->n_sites; s++)
        if (site_part[s] == 0) site_part[s] = n++;
    fl_status st = FL_OK;
    if (want != 0 && want != n)
        st = fl_fail(err, FL_EINVAL,
                     "--parts %d: the cohort has %d site%s with patients and --partition site "
                     "makes one part per site",
                     want, n, n == 1 ? "" : "s");
    for (int p = 0; p < c->P && st == FL_OK; p++) {
        int q = m->of[p], f = m->first[q];
        if (c->site[p] != c->site[f])
            st = fl_fail(err, FL_EINVAL,
                         "case \"%s\" has samples at sites \"%s\" (\"%s\") and \"%s\" (\"%s\"); "
                         "--partition site cannot keep it whole",
                         c->case_id[p], c->site_names[c->site[f]], c->id[f],
                         c->site_names[c->site[p]], c->id[p]);
        pc[q] = site_part[c->site[f]];
    }
    free(site_part);
    *n_parts = n;
    return st;
}

/* Shuffled cases, each to the part with the fewest patients so far (ties: lowest index). */
static fl_status by_iid(const fl_cohort *c, const case_map *m, int N, uint64_t seed, int *pc,
                        fl_err *err) {
    int *order = malloc((size_t)m->n * sizeof *order), *size = calloc((size_t)m->n, sizeof *size);
    long *load = calloc((size_t)N, sizeof *load);
    if (!order || !size || !load) {
        free(order);
        free(size);
        free(load);
        return fl_fail(err, FL_ENOMEM, "out of memory partitioning %d cases", m->n);
    }
    for (int p = 0; p < c->P; p++) size[m->of[p]]++;
    for (int q = 0; q < m->n; q++) order[q] = q;
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(seed, TAG_IID));
    shuffle(&r, order, m->n);
    for (int i = 0; i < m->n; i++) {
        int best = 0;
        for (int k = 1; k < N; k++)
            if (load[k] < load[best]) best = k;
        pc[order[i]] = best;
        load[best] += size[order[i]];
    }
    free(order);
    free(size);
    free(load);
    return FL_OK;
}

/* One Dirichlet draw for every class: cases of class k (in case order) shuffled and cut. */
static void dirichlet_draw(const fl_cohort *c, const case_map *m, int N, double alpha, fl_rng *r,
                           int *pc, int *members, double *q, long *cnt) {
    for (int k = 0; k < c->n_classes; k++) {
        int n = 0;
        for (int i = 0; i < m->n; i++)
            if (c->label[m->first[i]] == k) members[n++] = i;
        if (n == 0) continue;
        shuffle(r, members, n);
        fl_dirichlet_sample(r, alpha, N, q);
        long left = n;
        for (int j = 0; j < N; j++) {
            cnt[j] = (long)floor((double)n * q[j]);
            left -= cnt[j];
        }
        while (left > 0) { /* largest remainders, ties to the lower part */
            int best = 0;
            double br = -1;
            for (int j = 0; j < N; j++) {
                double rem = (double)n * q[j] - (double)cnt[j];
                if (rem > br) br = rem, best = j;
            }
            cnt[best]++;
            q[best] = (double)cnt[best] / n; /* its remainder is now spent */
            left--;
        }
        for (int j = 0, i = 0; j < N; j++)
            for (long t = 0; t < cnt[j] && i < n; t++) pc[members[i++]] = j;
    }
}

static fl_status by_dirichlet(const fl_cohort *c, const case_map *m, int N, double alpha,
                              uint64_t seed, int *pc, fl_err *err) {
    int *members = malloc((size_t)m->n * sizeof *members);
    int *ncase = malloc((size_t)N * sizeof *ncase);
    double *q = malloc((size_t)N * sizeof *q);
    long *cnt = malloc((size_t)N * sizeof *cnt);
    fl_status s = FL_OK;
    if (!members || !ncase || !q || !cnt) {
        s = fl_fail(err, FL_ENOMEM, "out of memory partitioning %d cases", m->n);
        goto done;
    }
    fl_rng r;
    fl_rng_seed(&r, fl_mix64(seed, TAG_DIRICHLET));
    int empty = 0;
    for (int attempt = 0; attempt < REDRAWS; attempt++) {
        dirichlet_draw(c, m, N, alpha, &r, pc, members, q, cnt);
        memset(ncase, 0, (size_t)N * sizeof *ncase);
        for (int i = 0; i < m->n; i++) ncase[pc[i]]++;
        empty = 0;
        for (int j = 0; j < N; j++) empty += ncase[j] == 0;
        if (!empty) break;
    }
    /* Still empty parts (alpha far below 1 with more parts than classes): each takes the
     * highest-numbered case of the part that has most cases (ties: the lowest part). */
    for (int e = 0; e < N && empty; e++) {
        if (ncase[e]) continue;
        int from = 0;
        for (int j = 1; j < N; j++)
            if (ncase[j] > ncase[from]) from = j;
        int mv = -1;
        for (int i = m->n - 1; i >= 0 && mv < 0; i--)
            if (pc[i] == from) mv = i;
        pc[mv] = e;
        ncase[from]--;
        ncase[e]++;
        empty--;
    }
done:
    free(members);
    free(ncase);
    free(q);
    free(cnt);
    return s;
}

fl_status fl_partition(const fl_cohort *c, const fl_partition_spec *spec, int32_t *part,
                       int *n_parts, fl_err *err) {
    case_map m = {0};
    fl_status s;
    int N = spec->parts;
    *n_parts = 0;
    if (spec->mode != FL_PARTITION_SITE && N < 1)
        return fl_fail(err, FL_EINVAL, "--parts %d: at least one part is needed", N);
    if (spec->mode == FL_PARTITION_DIRICHLET && !(spec->alpha > 0 && isfinite(spec->alpha)))
        return fl_fail(err, FL_EINVAL, "dirichlet:%g: alpha must be positive", spec->alpha);
    if (c->P == 0) return fl_fail(err, FL_EINVAL, "the cohort has no patients to partition");
    if (case_map_build(c, &m) < 0) {
        case_map_free(&m);
        return fl_fail(err, FL_ENOMEM, "out of memory grouping %d patients by case", c->P);
    }
    int *pc = malloc((size_t)m.n * sizeof *pc);
    if (!pc) {
        s = fl_fail(err, FL_ENOMEM, "out of memory partitioning %d cases", m.n);
        goto done;
    }
    if (spec->mode != FL_PARTITION_SITE && N > m.n) {
        s = fl_fail(err, FL_EINVAL,
                    "--parts %d: the cohort has only %d case%s, so a part would "
                    "be empty",
                    N, m.n, m.n == 1 ? "" : "s");
        goto done;
    }
    switch (spec->mode) {
    case FL_PARTITION_SITE:
        s = by_site(c, &m, N, pc, &N, err);
        break;
    case FL_PARTITION_IID:
        s = by_iid(c, &m, N, spec->seed, pc, err);
        break;
    case FL_PARTITION_DIRICHLET:
        s = by_dirichlet(c, &m, N, spec->alpha, spec->seed, pc, err);
        break;
    default:
        s = fl_fail(err, FL_EINVAL, "unknown partition mode %d", (int)spec->mode);
    }
    if (s == FL_OK) {
        for (int p = 0; p < c->P; p++) part[p] = pc[m.of[p]];
        *n_parts = N;
    }
done:
    free(pc);
    case_map_free(&m);
    return s;
}
