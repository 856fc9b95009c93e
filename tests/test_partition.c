/* test_partition.c - data/partition: IID balance, Dirichlet skew growing as alpha shrinks, no
 * empty part even for tiny alpha, cases never divided, one part per site, determinism, the
 * Dirichlet sampler's moments and the option parser. Cohorts are built in memory (no files). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/cohort.h"
#include "data/partition.h"
#include "harness.h"

/* P samples of K classes over S sites; every third sample is the paired normal of the sample
 * before it (same case, same site). Labels are skewed by class index (class k ~ 1/(k+1)). */
static void make_cohort(fl_cohort *c, int P, int K, int S, uint64_t seed) {
    fl_rng r;
    fl_rng_seed(&r, seed);
    memset(c, 0, sizeof *c);
    c->P = P;
    c->n_classes = K;
    c->n_sites = S;
    c->id = calloc((size_t)P, sizeof(char *));
    c->case_id = calloc((size_t)P, sizeof(char *));
    c->site = calloc((size_t)P, sizeof(int32_t));
    c->label = calloc((size_t)P, sizeof(int32_t));
    c->stage = calloc((size_t)P, sizeof(int32_t));
    c->split = calloc((size_t)P, 1);
    c->class_names = calloc((size_t)K, sizeof(char *));
    c->site_names = calloc((size_t)S, sizeof(char *));
    char buf[32];
    for (int k = 0; k < K; k++) {
        snprintf(buf, sizeof buf, "class%d", k);
        c->class_names[k] = strdup(buf);
    }
    for (int s = 0; s < S; s++) {
        snprintf(buf, sizeof buf, "site%d", s);
        c->site_names[s] = strdup(buf);
    }
    double wsum = 0;
    for (int k = 0; k < K; k++) wsum += 1.0 / (k + 1);
    for (int p = 0; p < P; p++) {
        snprintf(buf, sizeof buf, "s%d", p);
        c->id[p] = strdup(buf);
        int paired = p % 3 == 2;
        snprintf(buf, sizeof buf, "case%d", paired ? p - 1 : p);
        c->case_id[p] = strdup(buf);
        if (paired) {
            c->site[p] = c->site[p - 1];
            c->label[p] = K - 1; /* the normal sample of the case */
            continue;
        }
        c->site[p] = (int32_t)(fl_rng_u64(&r) % (uint64_t)S);
        double u = fl_rng_uniform(&r) * wsum;
        int k = 0;
        while (k < K - 1 && (u -= 1.0 / (k + 1)) > 0) k++;
        c->label[p] = k;
    }
}

/* Checks every sample of a case shares its part, every part is in range and non-empty. */
static void check_parts(const fl_cohort *c, const int32_t *part, int N, const char *what) {
    int *count = calloc((size_t)N, sizeof *count);
    for (int p = 0; p < c->P; p++) {
        if (part[p] < 0 || part[p] >= N) {
            fl_test_fail_at(__FILE__, __LINE__, "%s: part[%d] = %d outside [0, %d)", what, p,
                            (int)part[p], N);
            free(count);
            return;
        }
        count[part[p]]++;
        for (int q = p + 1; q < c->P && q < p + 3; q++)
            if (strcmp(c->case_id[p], c->case_id[q]) == 0 && part[p] != part[q])
                fl_test_fail_at(__FILE__, __LINE__, "%s: case %s split over parts %d and %d", what,
                                c->case_id[p], (int)part[p], (int)part[q]);
    }
    fl_test_checks++;
    for (int j = 0; j < N; j++)
        if (count[j] == 0) fl_test_fail_at(__FILE__, __LINE__, "%s: part %d is empty", what, j);
    free(count);
}

/* Mean over parts of the total variation distance between the part's and the cohort's class
 * mix: 0 for identical mixes, near 1 - 1/K for one class per part. */
static double label_skew(const fl_cohort *c, const int32_t *part, int N) {
    const int K = c->n_classes;
    double *n = calloc((size_t)(N + 1) * (size_t)K, sizeof *n), tv = 0;
    double *tot = calloc((size_t)N + 1, sizeof *tot);
    for (int p = 0; p < c->P; p++) {
        n[part[p] * K + c->label[p]]++;
        n[N * K + c->label[p]]++;
        tot[part[p]]++;
        tot[N]++;
    }
    for (int j = 0; j < N; j++) {
        double d = 0;
        for (int k = 0; k < K; k++) d += fabs(n[j * K + k] / tot[j] - n[N * K + k] / tot[N]);
        tv += 0.5 * d / N;
    }
    free(n);
    free(tot);
    return tv;
}

static void test_iid(void) {
    fl_err err = {{0}};
    fl_cohort c;
    make_cohort(&c, 301, 3, 4, 7);
    int32_t *a = malloc(301 * sizeof *a), *b = malloc(301 * sizeof *b);
    fl_partition_spec spec = {FL_PARTITION_IID, 0, 4, 11};
    int N = 0;
    CHECK_OK(fl_partition(&c, &spec, a, &N, &err), &err);
    CHECK_EQ_INT(N, 4);
    check_parts(&c, a, 4, "iid");
    int count[4] = {0};
    for (int p = 0; p < c.P; p++) count[a[p]]++;
    int lo = c.P, hi = 0;
    for (int j = 0; j < 4; j++) {
        lo = count[j] < lo ? count[j] : lo;
        hi = count[j] > hi ? count[j] : hi;
    }
    CHECK(hi - lo <= 2); /* greedy by patients: within the largest case (2 samples) */
    CHECK(label_skew(&c, a, 4) < 0.1);
    /* determinism, and a different seed gives a different partition */
    CHECK_OK(fl_partition(&c, &spec, b, &N, &err), &err);
    CHECK(memcmp(a, b, 301 * sizeof *a) == 0);
    spec.seed = 12;
    CHECK_OK(fl_partition(&c, &spec, b, &N, &err), &err);
    CHECK(memcmp(a, b, 301 * sizeof *a) != 0);
    /* as many parts as cases; one more is refused */
    int cases = 301 - 301 / 3;
    spec.parts = cases;
    CHECK_OK(fl_partition(&c, &spec, b, &N, &err), &err);
    check_parts(&c, b, cases, "iid, one case per part");
    spec.parts = cases + 1;
    CHECK(fl_partition(&c, &spec, b, &N, &err) == FL_EINVAL);
    CHECK(strstr(err.msg, "only 201 cases") != NULL);
    spec.parts = 0;
    CHECK(fl_partition(&c, &spec, b, &N, &err) == FL_EINVAL);
    free(a);
    free(b);
    fl_cohort_destroy(&c);
}

static void test_dirichlet(void) {
    fl_err err = {{0}};
    fl_cohort c;
    make_cohort(&c, 900, 3, 2, 3);
    int32_t *a = malloc(900 * sizeof *a), *b = malloc(900 * sizeof *b);
    const double alphas[] = {1000, 10, 1, 0.1};
    double skew[4] = {0};
    int N = 0;
    for (int i = 0; i < 4; i++) {
        for (uint64_t seed = 1; seed <= 10; seed++) {
            fl_partition_spec spec = {FL_PARTITION_DIRICHLET, alphas[i], 5, seed};
            CHECK_OK(fl_partition(&c, &spec, a, &N, &err), &err);
            CHECK_EQ_INT(N, 5);
            check_parts(&c, a, 5, "dirichlet");
            skew[i] += label_skew(&c, a, 5) / 10;
            CHECK_OK(fl_partition(&c, &spec, b, &N, &err), &err);
            CHECK(memcmp(a, b, 900 * sizeof *a) == 0);
        }
        printf("dirichlet alpha %-6g: mean label skew (TV) %.3f\n", alphas[i], skew[i]);
    }
    for (int i = 1; i < 4; i++)
        if (!(skew[i] > skew[i - 1]))
            fl_test_fail_at(__FILE__, __LINE__, "skew %.3f at alpha %g is not above %.3f at %g",
                            skew[i], alphas[i], skew[i - 1], alphas[i - 1]);
    CHECK(skew[0] < 0.05);
    CHECK(skew[3] > 0.25);
    /* Tiny alpha with more parts than classes: still no empty part (resampled or moved). */
    for (uint64_t seed = 1; seed <= 5; seed++) {
        fl_partition_spec spec = {FL_PARTITION_DIRICHLET, 0.001, 12, seed};
        CHECK_OK(fl_partition(&c, &spec, a, &N, &err), &err);
        check_parts(&c, a, 12, "dirichlet 0.001");
    }
    free(a);
    free(b);
    fl_cohort_destroy(&c);
}

static void test_site(void) {
    fl_err err = {{0}};
    fl_cohort c;
    make_cohort(&c, 120, 3, 4, 5);
    /* Empty the last site: its part disappears. */
    for (int p = 0; p < c.P; p++)
        if (c.site[p] == 3) c.site[p] = 1;
    int32_t part[120];
    fl_partition_spec spec = {FL_PARTITION_SITE, 0, 0, 1};
    int N = 0;
    CHECK_OK(fl_partition(&c, &spec, part, &N, &err), &err);
    CHECK_EQ_INT(N, 3);
    check_parts(&c, part, 3, "site");
    for (int p = 0; p < c.P; p++) CHECK_EQ_INT(part[p], c.site[p]);
    spec.parts = 3;
    CHECK_OK(fl_partition(&c, &spec, part, &N, &err), &err);
    spec.parts = 4;
    CHECK(fl_partition(&c, &spec, part, &N, &err) == FL_EINVAL);
    CHECK(strstr(err.msg, "3 sites with patients") != NULL);
    /* A case at two sites cannot be kept whole. */
    spec.parts = 0;
    c.site[2] = (c.site[1] + 1) % 3;
    CHECK(fl_partition(&c, &spec, part, &N, &err) == FL_EINVAL);
    CHECK(strstr(err.msg, "case \"case1\"") != NULL);
    fl_cohort_destroy(&c);
}

static void test_sampler_and_parse(void) {
    fl_rng r;
    fl_rng_seed(&r, 9);
    double q[4], mean[4] = {0}, sq0 = 0;
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
        fl_dirichlet_sample(&r, 2.0, 4, q);
        double s = 0;
        for (int k = 0; k < 4; k++) {
            s += q[k];
            mean[k] += q[k] / draws;
        }
        sq0 += q[0] * q[0] / draws;
        if (fabs(s - 1) > 1e-9) {
            fl_test_fail_at(__FILE__, __LINE__, "draw %d sums to %.12f", i, s);
            break;
        }
    }
    /* Dir(2,2,2,2): mean 1/4, variance a(A-a)/(A^2(A+1)) = 2*6/(64*9) = 1/48 */
    for (int k = 0; k < 4; k++) CHECK_CLOSE(mean[k], 0.25, 0, 0.01);
    CHECK_CLOSE(sq0 - mean[0] * mean[0], 1.0 / 48, 0.05, 0);
    for (int i = 0; i < 100; i++) { /* tiny alpha: no 0/0 */
        fl_dirichlet_sample(&r, 1e-4, 3, q);
        CHECK(isfinite(q[0]) && isfinite(q[1]) && isfinite(q[2]));
    }
    fl_err err = {{0}};
    fl_partition_spec spec = {0};
    CHECK_OK(fl_partition_parse("site", &spec, &err), &err);
    CHECK_EQ_INT(spec.mode, FL_PARTITION_SITE);
    CHECK_OK(fl_partition_parse("iid", &spec, &err), &err);
    CHECK_EQ_INT(spec.mode, FL_PARTITION_IID);
    CHECK_OK(fl_partition_parse("dirichlet:0.5", &spec, &err), &err);
    CHECK_EQ_INT(spec.mode, FL_PARTITION_DIRICHLET);
    CHECK_CLOSE(spec.alpha, 0.5, 0, 0);
    const char *bad[] = {"",
                         "dirichlet",
                         "dirichlet:",
                         "dirichlet:0",
                         "dirichlet:-1",
                         "dirichlet:x",
                         "dirichlet:1e9",
                         "dirichlet:nan",
                         "IID",
                         "sites"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(fl_partition_parse(bad[i], &spec, &err) == FL_EINVAL);
}

int main(void) {
    test_iid();
    test_dirichlet();
    test_site();
    test_sampler_and_parse();
    return fl_test_summary("test_partition");
}
