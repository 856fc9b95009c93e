/* image_scores.c - an image model over a cohort's patients: per-patient mean probabilities and
 * mean embeddings (RNet's patient score, and MMLM's image features). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/progress.h"
#include "internal.h"
#include "tiles.h"

fl_status fl_tile_ranges(const fl_cohort *c, int64_t **first, int64_t **count, fl_err *err) {
    *first = calloc((size_t)c->P + 1, sizeof(int64_t));
    *count = calloc((size_t)c->P + 1, sizeof(int64_t));
    if (!*first || !*count) {
        free(*first);
        free(*count);
        return fl_fail(err, FL_ENOMEM, "out of memory for %d patients", c->P);
    }
    for (int64_t t = c->n_tiles - 1; t >= 0; t--) {
        int p = c->tile_patient[t];
        (*first)[p] = t;
        (*count)[p]++;
    }
    return FL_OK;
}

int fl_split_mask(const fl_cohort *c, fl_split s, uint8_t *want) {
    int n = 0;
    for (int p = 0; p < c->P; p++) n += (want[p] = c->split[p] == s);
    return n;
}

void fl_softmax_rows(float *x, int n, int K) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * K, mx = r[0];
        double sum = 0;
        for (int k = 1; k < K; k++) mx = r[k] > mx ? r[k] : mx;
        for (int k = 0; k < K; k++) sum += (r[k] = expf(r[k] - mx));
        for (int k = 0; k < K; k++) r[k] = (float)(r[k] / sum);
    }
}

/* Adds the first `used` rows of a batch's outputs to their patients' sums. */
static void accumulate(const float *rows, int used, int width, const int *owner, double *sums) {
    for (int i = 0; i < used; i++)
        for (int k = 0; k < width; k++)
            sums[(size_t)owner[i] * width + k] += rows[(size_t)i * width + k];
}

fl_status fl_image_patient_outputs(fl_model *m, fl_cohort_file *f, const fl_cohort *c,
                                   const uint8_t *want, float *probs, float *emb,
                                   uint8_t *has_tiles, int quiet, fl_err *err) {
    const fl_graph *g = fl_model_graph(m);
    int B = fl_model_batch(m), T = c->tile;
    int o_logits = fl_graph_find_output(g, "logits"), o_emb = fl_graph_find_output(g, "embedding");
    int K = g->values[g->outputs[o_logits]].shape[0], E = g->values[g->outputs[o_emb]].shape[0];
    int64_t *first = NULL, *count = NULL;
    fl_status s = fl_tile_ranges(c, &first, &count, err);
    if (s != FL_OK) return s;
    size_t tile_bytes = (size_t)T * T * 3, in_floats = (size_t)3 * T * T;
    uint8_t *raw = malloc((size_t)B * tile_bytes);
    float *x = calloc((size_t)B * in_floats, sizeof(float));
    float *lo = malloc((size_t)B * K * sizeof(float)), *eo = malloc((size_t)B * E * sizeof(float));
    double *psum = calloc((size_t)c->P * K, sizeof(double)),
           *esum = calloc((size_t)c->P * E, sizeof(double));
    int *owner = malloc((size_t)B * sizeof(int));
    if (!raw || !x || !lo || !eo || !psum || !esum || !owner) {
        s = fl_fail(err, FL_ENOMEM, "out of memory scoring tiles");
        goto done;
    }
    int64_t total = 0, seen = 0;
    for (int p = 0; p < c->P; p++)
        if (want[p]) total += count[p];
    fl_progress prog;
    fl_progress_begin(&prog, "scoring tiles", total, quiet);
    int used = 0;
    for (int p = 0; p <= c->P; p++) {
        /* p == P flushes the last partial batch. */
        int64_t left = p < c->P && want[p] ? count[p] : 0, at = p < c->P ? first[p] : 0;
        while (left > 0 || (p == c->P && used > 0)) {
            int64_t take = left < B - used ? left : B - used;
            if (take > 0) {
                if ((s = fl_cohort_read_tiles(f, at, take, raw, err)) != FL_OK) goto done;
                for (int64_t i = 0; i < take; i++) {
                    fl_tile_to_input(raw + i * tile_bytes, T, x + (size_t)(used + i) * in_floats,
                                     NULL, 0);
                    owner[used + i] = p;
                }
                used += (int)take;
                at += take;
                left -= take;
            }
            if (used == B || (p == c->P && used > 0)) {
                if ((s = fl_model_set_input(m, 0, x, err)) != FL_OK ||
                    (s = fl_model_forward(m, 0, err)) != FL_OK ||
                    (s = fl_model_get_output(m, o_logits, lo, err)) != FL_OK ||
                    (s = fl_model_get_output(m, o_emb, eo, err)) != FL_OK)
                    goto done;
                fl_softmax_rows(lo, used, K);
                accumulate(lo, used, K, owner, psum);
                accumulate(eo, used, E, owner, esum);
                seen += used;
                fl_progress_update(&prog, seen);
                used = 0;
            }
        }
    }
    fl_progress_end(&prog, "%lld tiles", (long long)seen);
    for (int p = 0; p < c->P; p++) {
        if (!want[p]) continue;
        double n = (double)count[p];
        if (has_tiles) has_tiles[p] = count[p] > 0;
        for (int k = 0; probs && k < K; k++)
            probs[(size_t)p * K + k] = n > 0 ? (float)(psum[(size_t)p * K + k] / n) : 1.0f / K;
        for (int k = 0; emb && k < E; k++)
            emb[(size_t)p * E + k] = n > 0 ? (float)(esum[(size_t)p * E + k] / n) : 0.0f;
    }
done:
    free(first);
    free(count);
    free(raw);
    free(x);
    free(lo);
    free(eo);
    free(psum);
    free(esum);
    free(owner);
    return s;
}
