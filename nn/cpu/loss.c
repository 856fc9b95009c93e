/* loss.c - softmax and softmax cross-entropy on the CPU with PyTorch's CrossEntropyLoss
 * semantics (class weights, weighted mean, ignored rows), stable through log-sum-exp.
 * Not label smoothing nor soft targets. */
#include "cpu_impl.h"

#include <math.h>

/* Rows are summed in at most LOSS_CHUNKS chunks fixed by M alone and combined in order, so the
 * loss does not depend on the thread count. */
#define LOSS_CHUNKS 64

/* probs (K) = softmax(l (K)); returns log(sum exp(l)), computed in double. */
static double softmax_row(const float *l, float *probs, int K) {
    float mx = -INFINITY;
    for (int k = 0; k < K; k++) mx = l[k] > mx ? l[k] : mx;
    if (!isfinite(mx)) mx = 0.0f; /* all -inf (or a NaN): let the NaN/inf flow through */
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)l[k] - mx);
    double lse = mx + log(s);
    if (probs)
        for (int k = 0; k < K; k++) probs[k] = (float)exp((double)l[k] - lse);
    return lse;
}

void fl_cpu_softmax(fl_backend *be, const float *logits, float *probs, int M, int K) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) softmax_row(logits + (size_t)i * K, probs + (size_t)i * K, K);
}

float fl_cpu_softmax_ce(fl_backend *be, const float *logits, const int32_t *labels,
                        const float *class_w, int M, int K, float *dlogits, float *probs) {
    be->transfers++; /* the loss is "read back", as the GPU's is */
    /* The weighted count first (cheap, serial): dlogits need it as a divisor. A label outside
     * [-1, K) is a caller bug; it makes the loss NaN rather than reading out of bounds. */
    double wsum = 0;
    int bad = 0;
    for (int i = 0; i < M; i++) {
        int y = labels[i];
        if (y == -1) continue;
        if (y < 0 || y >= K) {
            bad = 1;
            continue;
        }
        wsum += class_w ? class_w[y] : 1.0;
    }
    double inv = wsum != 0 ? 1.0 / wsum : 0.0;
    int nc = M < LOSS_CHUNKS ? (M > 0 ? M : 1) : LOSS_CHUNKS;
    double part[LOSS_CHUNKS];
#pragma omp parallel for schedule(static)
    for (int j = 0; j < nc; j++) {
        int i0 = (int)((long long)M * j / nc), i1 = (int)((long long)M * (j + 1) / nc);
        double acc = 0;
        for (int i = i0; i < i1; i++) {
            const float *l = logits + (size_t)i * K;
            float *d = dlogits + (size_t)i * K;
            int y = labels[i];
            int use = y >= 0 && y < K && wsum != 0;
            /* dlogits doubles as the probability row when probs is not wanted. */
            float *p = probs ? probs + (size_t)i * K : d;
            double lse = softmax_row(l, p, K);
            if (!use) {
                for (int k = 0; k < K; k++) d[k] = 0.0f;
                continue;
            }
            double w = class_w ? class_w[y] : 1.0;
            acc += w * (lse - (double)l[y]);
            double py = p[y];
            float sc = (float)(w * inv);
            for (int k = 0; k < K; k++) d[k] = p[k] * sc;
            d[y] = (float)((py - 1.0) * w * inv);
        }
        part[j] = acc;
    }
    if (bad) return NAN;
    double total = 0;
    for (int j = 0; j < nc; j++) total += part[j];
    return (float)(total * inv);
}
