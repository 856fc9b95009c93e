/* synth_tiles.c - H&E-like tiles for the synthetic cohort: haematoxylin, eosin and pigment
 * concentration maps drawn from procedural geometry (glands, solid nests with keratin pearls,
 * alveolar septa, stroma, necrosis, lymphocytes, blood), rendered with Beer-Lambert through the
 * site's stain vectors, then blurred and noised. Cheap by design (a 64-px tile in ~0.1 ms), and
 * not a histology simulator: the geometry only has to carry a weak, controlled class signal.
 *
 * Where the class signal lives: a tile is "diagnostic" with the sample's probability diag_frac
 * (0.3-0.6); a diagnostic tile has a latent t = morph + N(0, I), morph being the sample's
 * latent (kappa * class mean + N(0, I)), and t picks the pattern (softmax of 1.5 t over gland,
 * nest, alveolus) and its nuclear density, size, pleomorphism and septal thickness. The other
 * tiles show stroma, necrosis (more with the aggressiveness z), inflammation or blood with
 * class-independent statistics. So everything a model can learn about the class from the tiles
 * passes through the patient's morph, whose class means are kappa * morph_mu (synth.c). Purity
 * deliberately does not reach the tiles: it would give NORMAL away. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_impl.h"

typedef struct {
    int T;
    float *H, *E, *K; /* T x T concentrations: haematoxylin, eosin, black pigment */
    float *I;         /* 3 x T x T intensities (planar), then blurred */
    float *tmp;       /* T x T */
    float *grid;      /* scratch for value noise and Voronoi seeds: (T / 2 + 4)^2 floats */
    fl_rng *r;
} canvas;

static double U(fl_rng *r) {
    return fl_rng_uniform(r);
}

static double N(fl_rng *r) {
    return fl_rng_normal(r);
}

static float clampf(float x, float lo, float hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

enum { ADD, CLEAR };

/* Adds amp (ADD) or multiplies by 1 - amp (CLEAR) inside an ellipse centred at (cx, cy) with
 * semi-axes rx, ry rotated by ang, with an edge about one pixel soft. */
static void ellipse(const canvas *cv, float *f, float cx, float cy, float rx, float ry, float ang,
                    float amp, int mode) {
    int T = cv->T;
    float rmax = (rx > ry ? rx : ry) + 1.5f, rmin = rx < ry ? rx : ry;
    int x0 = (int)floorf(cx - rmax), x1 = (int)ceilf(cx + rmax);
    int y0 = (int)floorf(cy - rmax), y1 = (int)ceilf(cy + rmax);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > T - 1) x1 = T - 1;
    if (y1 > T - 1) y1 = T - 1;
    float c = cosf(ang), s = sinf(ang);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
            float u = (c * dx + s * dy) / rx, v = (-s * dx + c * dy) / ry;
            float q = sqrtf(u * u + v * v);
            float w = clampf((1 - q) * rmin + 0.5f, 0, 1);
            if (w <= 0) continue;
            float *px = &f[y * T + x];
            *px = mode == ADD ? *px + amp * w : *px * (1 - amp * w);
        }
}

static void disc(const canvas *cv, float *f, float cx, float cy, float rad, float amp, int mode) {
    ellipse(cv, f, cx, cy, rad, rad, 0, amp, mode);
}

/* Adds amp on the annulus r0 <= |p - c| <= r1, soft edges. */
static void ring(const canvas *cv, float *f, float cx, float cy, float r0, float r1, float amp) {
    int T = cv->T;
    int x0 = (int)(cx - r1 - 2), x1 = (int)(cx + r1 + 2), y0 = (int)(cy - r1 - 2),
        y1 = (int)(cy + r1 + 2);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > T - 1) x1 = T - 1;
    if (y1 > T - 1) y1 = T - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float d = hypotf(x + 0.5f - cx, y + 0.5f - cy);
            float w = clampf(fminf(d - r0, r1 - d) + 0.5f, 0, 1);
            f[y * T + x] += amp * w;
        }
}

/* Adds lo + (hi - lo) * smooth random field with features about cell px wide. */
static void texture(const canvas *cv, float *f, float cell, float lo, float hi) {
    int T = cv->T;
    if (cell < 2) cell = 2;
    int g = (int)(T / cell) + 3;
    for (int i = 0; i < g * g; i++) cv->grid[i] = (float)U(cv->r);
    for (int y = 0; y < T; y++) {
        float gy = y / cell;
        int iy = (int)gy;
        float fy = gy - iy;
        for (int x = 0; x < T; x++) {
            float gx = x / cell;
            int ix = (int)gx;
            float fx = gx - ix;
            const float *a = &cv->grid[iy * g + ix];
            float v =
                (a[0] * (1 - fx) + a[1] * fx) * (1 - fy) + (a[g] * (1 - fx) + a[g + 1] * fx) * fy;
            f[y * T + x] += lo + (hi - lo) * v;
        }
    }
}

static void fill(const canvas *cv, float *f, float v) {
    for (int i = 0; i < cv->T * cv->T; i++) f[i] = v;
}

/* One nucleus of mean radius rad: size and shape vary with pleo, stain with chromatin. */
static void nucleus(const canvas *cv, float cx, float cy, float rad, float pleo, float elong,
                    float amp) {
    fl_rng *r = cv->r;
    float rr = rad * clampf(1 + pleo * (float)N(r), 0.5f, 2.0f);
    float e = clampf(elong + pleo * (float)fabs(N(r)), 0, 0.8f);
    float a = amp * (float)(0.8 + 0.4 * U(r));
    ellipse(cv, cv->H, cx, cy, rr * (1 + e), rr * (1 - e * 0.6f), (float)(M_PI * U(r)), a, ADD);
}

/* ---- patterns; t = (gland, nest, alveolus) tile latent; A = tile area / 64^2 ---- */

typedef struct {
    float dens, nr, pleo, hem;
} nuclear;

static nuclear nuclear_params(const float t[3]) {
    nuclear n;
    n.dens = clampf(1 + 0.25f * t[1] - 0.2f * t[2] + 0.1f * t[0], 0.4f, 2.0f);
    n.nr = clampf(2.1f + 0.3f * t[1] + 0.1f * t[0] - 0.1f * t[2], 1.3f, 3.6f);
    n.pleo = clampf(0.12f + 0.06f * t[1], 0.03f, 0.35f);
    n.hem = clampf(1 + 0.1f * t[1], 0.7f, 1.4f);
    return n;
}

static void stroma_background(const canvas *cv, float level) {
    fill(cv, cv->E, 0);
    texture(cv, cv->E, 8, level - 0.1f, level + 0.1f);
    int spindles = (int)(cv->T * cv->T / 4096.0 * 5);
    for (int i = 0; i < spindles; i++)
        ellipse(cv, cv->H, (float)(U(cv->r) * cv->T), (float)(U(cv->r) * cv->T), 3.2f, 0.9f,
                (float)(M_PI * U(cv->r)), 0.9f, ADD);
}

static void gland_tile(const canvas *cv, const float t[3], float A) {
    fl_rng *r = cv->r;
    nuclear n = nuclear_params(t);
    stroma_background(cv, 0.35f);
    int glands = (int)(A * clampf(1.5f + 0.5f * t[0], 0.5f, 4) + U(r));
    if (glands < 1) glands = 1;
    for (int g = 0; g < glands; g++) {
        float cx = (float)(U(r) * cv->T), cy = (float)(U(r) * cv->T);
        float R = clampf((float)(3.5 + 4.5 * U(r)) * (1 + 0.1f * t[0]), 2.5f, 12);
        float w = 2.2f * n.nr + 1;
        disc(cv, cv->E, cx, cy, R + w + 0.8f, 1, CLEAR);
        disc(cv, cv->H, cx, cy, R + w + 0.8f, 1, CLEAR);
        ring(cv, cv->E, cx, cy, R, R + w, 0.55f);
        float rc = R + 0.55f * w;
        int k = (int)(2 * M_PI * rc / (2.3f * n.nr) * fminf(1, n.dens));
        for (int i = 0; i < k; i++) {
            float a = (float)(2 * M_PI * (i + 0.3 * U(r)) / k);
            nucleus(cv, cx + rc * cosf(a), cy + rc * sinf(a), n.nr, n.pleo, 0.15f, n.hem);
        }
        if (U(r) < clampf(0.25f + 0.1f * t[0], 0.05f, 0.6f)) { /* pale mucin in the lumen */
            float m = R * (float)(0.4 + 0.4 * U(r));
            disc(cv, cv->H, cx, cy, m, 0.12f, ADD);
            disc(cv, cv->E, cx, cy, m, 0.08f, ADD);
        }
    }
}

static void nest_tile(const canvas *cv, const float t[3], float A) {
    fl_rng *r = cv->r;
    nuclear n = nuclear_params(t);
    stroma_background(cv, 0.35f);
    int nests = (int)(A * clampf(1 + 0.3f * t[1], 0.5f, 3) + U(r));
    if (nests < 1) nests = 1;
    enum { MAXB = 3 };
    for (int k = 0; k < nests; k++) {
        float bx[MAXB], by[MAXB], br[MAXB];
        float cx = (float)(U(r) * cv->T), cy = (float)(U(r) * cv->T);
        float Rn = (float)(10 + 12 * U(r));
        for (int b = 0; b < MAXB; b++) {
            br[b] = Rn * (float)(0.5 + 0.3 * U(r));
            bx[b] = cx + Rn * 0.5f * (float)N(r);
            by[b] = cy + Rn * 0.5f * (float)N(r);
            disc(cv, cv->E, bx[b], by[b], br[b] + 1.5f, 1, CLEAR); /* retraction cleft */
            disc(cv, cv->H, bx[b], by[b], br[b] + 1.5f, 1, CLEAR);
        }
        for (int b = 0; b < MAXB; b++) disc(cv, cv->E, bx[b], by[b], br[b], 0.3f, ADD);
        float sp = 2.6f * n.nr / sqrtf(n.dens);
        float x0 = cx - 2 * Rn, y0 = cy - 2 * Rn;
        for (float y = y0; y < cy + 2 * Rn; y += sp)
            for (float x = x0; x < cx + 2 * Rn; x += sp) {
                float px = x + sp * 0.35f * (float)N(r), py = y + sp * 0.35f * (float)N(r);
                int inside = 0;
                for (int b = 0; b < MAXB; b++)
                    inside |= hypotf(px - bx[b], py - by[b]) < br[b] - 0.5f * n.nr;
                if (inside) nucleus(cv, px, py, 1.15f * n.nr, n.pleo, 0.1f, n.hem);
            }
        if (U(r) < clampf(0.3f + 0.15f * t[1], 0.05f, 0.7f)) { /* keratin pearl */
            float rk = fminf((float)(4 + 4 * U(r)), br[0]);
            disc(cv, cv->H, bx[0], by[0], rk, 0.9f, CLEAR);
            disc(cv, cv->E, bx[0], by[0], rk * 0.4f, 0.45f, ADD);
            for (float q = rk * 0.4f; q < rk; q += 1.6f)
                ring(cv, cv->E, bx[0], by[0], q, q + 0.8f, 0.35f);
        }
    }
}

static void alveolar_tile(const canvas *cv, const float t[3], float A) {
    fl_rng *r = cv->r;
    nuclear n = nuclear_params(t);
    int T = cv->T;
    float sp = clampf(17 + 2 * t[2], 12, 26);
    float th = clampf(1.0f - 0.2f * t[2] + 0.25f * t[1] + 0.1f * t[0], 0.5f, 3.0f);
    int g = (int)(T / sp) + 4; /* seeds on a jittered grid from -sp to T + 2 sp */
    float *sx = cv->grid, *sy = cv->grid + g * g;
    for (int j = 0; j < g; j++)
        for (int i = 0; i < g; i++) {
            sx[j * g + i] = (float)((i - 1 + 0.5 + 0.8 * (U(r) - 0.5)) * sp);
            sy[j * g + i] = (float)((j - 1 + 0.5 + 0.8 * (U(r) - 0.5)) * sp);
        }
    fill(cv, cv->E, 0);
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++) {
            int ci = (int)((x + 0.5f) / sp) + 1, cj = (int)((y + 0.5f) / sp) + 1;
            float d1 = 1e9f, d2 = 1e9f;
            for (int dj = -1; dj <= 1; dj++)
                for (int di = -1; di <= 1; di++) {
                    int i = ci + di, j = cj + dj;
                    if (i < 0 || j < 0 || i >= g || j >= g) continue;
                    float d = hypotf(x + 0.5f - sx[j * g + i], y + 0.5f - sy[j * g + i]);
                    if (d < d1)
                        d2 = d1, d1 = d;
                    else if (d < d2)
                        d2 = d;
                }
            float w = clampf(th - (d2 - d1) * 0.5f + 0.5f, 0, 1);
            cv->E[y * T + x] = 0.5f * w;
            cv->H[y * T + x] = 0.05f * w;
        }
    int want = (int)(A * 10 * n.dens), got = 0;
    for (int tries = 0; tries < want * 10 && got < want; tries++) {
        float x = (float)(U(r) * T), y = (float)(U(r) * T);
        if (cv->E[(int)y * T + (int)x] < 0.3f) continue;
        nucleus(cv, x, y, 0.8f * n.nr, n.pleo, 0.45f, n.hem);
        got++;
    }
    if (U(r) < 0.4) { /* alveolar macrophages */
        int k = 1 + (int)(2 * U(r) * A);
        for (int i = 0; i < k; i++) {
            float x = (float)(U(r) * T), y = (float)(U(r) * T);
            disc(cv, cv->E, x, y, 3.5f, 0.4f, ADD);
            disc(cv, cv->H, x + 0.8f, y, 1.4f, 0.8f, ADD);
        }
    }
    if (U(r) < 0.3) { /* anthracotic pigment */
        float x = (float)(U(r) * T), y = (float)(U(r) * T);
        int k = 3 + (int)(6 * U(r));
        for (int i = 0; i < k; i++)
            disc(cv, cv->K, x + 4 * (float)N(r), y + 4 * (float)N(r), (float)(0.8 + U(r)), 1.2f,
                 ADD);
    }
}

enum { ND_STROMA, ND_NECROSIS, ND_INFLAMMATION, ND_BLOOD };

static void plain_tile(const canvas *cv, int kind, float A) {
    fl_rng *r = cv->r;
    int T = cv->T;
    if (kind == ND_STROMA) {
        float phi = (float)(M_PI * U(r)), lambda = (float)(4 + 4 * U(r));
        texture(cv, cv->tmp, 10, 0, 6); /* wavy collagen: a warped stripe pattern */
        texture(cv, cv->E, 5, 0.3f, 0.5f);
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++) {
                float u = (x * cosf(phi) + y * sinf(phi)) * 2 * (float)M_PI / lambda;
                cv->E[y * T + x] += 0.15f * sinf(u + cv->tmp[y * T + x]) - 0.05f;
            }
        int k = (int)(8 * A);
        for (int i = 0; i < k; i++)
            ellipse(cv, cv->H, (float)(U(r) * T), (float)(U(r) * T), 3.5f, 0.9f,
                    phi + (float)(0.2 * N(r)), 0.9f, ADD);
    } else if (kind == ND_NECROSIS) {
        texture(cv, cv->E, 4, 0.13f, 0.43f);
        int k = (int)(40 * A);
        for (int i = 0; i < k; i++)
            disc(cv, cv->H, (float)(U(r) * T), (float)(U(r) * T), (float)(0.5 + 0.6 * U(r)), 0.8f,
                 ADD);
        k = (int)(3 * A);
        for (int i = 0; i < k; i++) {
            float rr = (float)(3 + 2 * U(r));
            ring(cv, cv->E, (float)(U(r) * T), (float)(U(r) * T), rr, rr + 0.8f, 0.15f);
        }
    } else if (kind == ND_INFLAMMATION) {
        texture(cv, cv->E, 8, 0.2f, 0.4f);
        int k = (int)(60 * A);
        for (int i = 0; i < k; i++)
            disc(cv, cv->H, (float)(U(r) * T), (float)(U(r) * T), (float)(1.4 + 0.3 * U(r)), 1.3f,
                 ADD);
    } else {
        fill(cv, cv->E, 0.1f);
        int k = (int)(70 * A);
        for (int i = 0; i < k; i++) {
            float x = (float)(U(r) * T), y = (float)(U(r) * T), rr = (float)(2.2 + 0.6 * U(r));
            disc(cv, cv->E, x, y, rr, 0.75f, ADD);
            disc(cv, cv->E, x, y, rr * 0.4f, 0.3f, CLEAR);
        }
        if (U(r) < 0.5) nucleus(cv, (float)(U(r) * T), (float)(U(r) * T), 2.0f, 0.2f, 0.3f, 1.0f);
    }
}

/* ---- stains and composition ---- */

static void normalize3(float *v) {
    float n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int k = 0; k < 3; k++) v[k] /= n;
}

/* Rotates unit v by theta about a random axis perpendicular to it (Rodrigues). */
static void rotate(fl_rng *r, float *v, double theta) {
    float a[3] = {(float)N(r), (float)N(r), (float)N(r)};
    float d = a[0] * v[0] + a[1] * v[1] + a[2] * v[2];
    for (int k = 0; k < 3; k++) a[k] -= d * v[k];
    normalize3(a);
    float x[3] = {a[1] * v[2] - a[2] * v[1], a[2] * v[0] - a[0] * v[2], a[0] * v[1] - a[1] * v[0]};
    for (int k = 0; k < 3; k++)
        v[k] = fmaxf(v[k] * (float)cos(theta) + x[k] * (float)sin(theta), 0.01f);
    normalize3(v);
}

void fl_synth__stains(fl_synth_plan *plan) {
    for (int s = 0; s < plan->cfg.sites; s++) {
        fl_rng r;
        fl_rng_seed(&r, fl_mix64(plan->cfg.seed, FL_SYNTH_TAG_STAIN + (uint64_t)s));
        fl_synth_stain *st = &plan->stain[s];
        float h[3] = {0.65f, 0.70f, 0.29f}, e[3] = {0.07f, 0.99f, 0.11f};
        normalize3(h);
        normalize3(e);
        rotate(&r, h, 6 * M_PI / 180 * N(&r));
        rotate(&r, e, 6 * M_PI / 180 * N(&r));
        memcpy(st->h, h, sizeof h);
        memcpy(st->e, e, sizeof e);
        for (int k = 0; k < 2; k++) st->scale[k] = (float)exp(0.15 * N(&r));
        for (int k = 0; k < 3; k++) st->tint[k] = (float)(0.06 * U(&r));
        st->blur = (float)(0.3 + 0.7 * U(&r));
        st->noise = (float)(1 + 2 * U(&r));
    }
}

/* Separable Gaussian blur of one T x T plane, clamped at the edges. */
static void blur_plane(float *p, float *tmp, int T, float sigma) {
    enum { MAXR = 8 };
    int R = (int)ceilf(2.5f * sigma);
    if (R < 1) return;
    if (R > MAXR) R = MAXR;
    float k[MAXR + 1], sum = 0;
    for (int i = 0; i <= R; i++)
        sum += (k[i] = expf(-0.5f * i * i / (sigma * sigma))) * (i ? 2 : 1);
    for (int i = 0; i <= R; i++) k[i] /= sum;
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++) {
            float a = k[0] * p[y * T + x];
            for (int i = 1; i <= R; i++) {
                int xl = x - i < 0 ? 0 : x - i, xr = x + i >= T ? T - 1 : x + i;
                a += k[i] * (p[y * T + xl] + p[y * T + xr]);
            }
            tmp[y * T + x] = a;
        }
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++) {
            float a = k[0] * tmp[y * T + x];
            for (int i = 1; i <= R; i++) {
                int yu = y - i < 0 ? 0 : y - i, yd = y + i >= T ? T - 1 : y + i;
                a += k[i] * (tmp[yu * T + x] + tmp[yd * T + x]);
            }
            p[y * T + x] = a;
        }
}

static void compose(const canvas *cv, const fl_synth_stain *st, const fl_synth_sample *x,
                    uint8_t *out) {
    int T = cv->T, n = T * T;
    float sh = st->scale[0] * x->stain_jit[0], se = st->scale[1] * x->stain_jit[1];
    for (int c = 0; c < 3; c++) {
        float *I = cv->I + (size_t)c * n;
        for (int i = 0; i < n; i++) {
            float od = sh * cv->H[i] * st->h[c] + se * cv->E[i] * st->e[c] + 0.58f * cv->K[i] +
                       st->tint[c];
            I[i] = 255 * expf(-od);
        }
        blur_plane(I, cv->tmp, T, st->blur);
    }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float v = cv->I[(size_t)c * n + i] + st->noise * (float)N(cv->r);
            out[3 * i + c] = (uint8_t)clampf(roundf(v), 0, 255);
        }
}

static void render_tile(canvas *cv, const fl_synth_sample *x, const fl_synth_stain *st,
                        uint8_t *out) {
    fl_rng *r = cv->r;
    int T = cv->T;
    float A = (float)T * T / 4096.0f;
    memset(cv->H, 0, sizeof(float) * T * T);
    memset(cv->E, 0, sizeof(float) * T * T);
    memset(cv->K, 0, sizeof(float) * T * T);
    memset(cv->tmp, 0, sizeof(float) * T * T);
    if (U(r) < x->diag_frac) {
        float t[3], l[3], mx = -1e30f, sum = 0;
        for (int k = 0; k < 3; k++) {
            t[k] = x->morph[k] + (float)N(r);
            l[k] = 1.5f * t[k];
            mx = fmaxf(mx, l[k]);
        }
        for (int k = 0; k < 3; k++) sum += l[k] = expf(l[k] - mx);
        double u = U(r) * sum;
        if (u < l[0])
            gland_tile(cv, t, A);
        else if (u < l[0] + l[1])
            nest_tile(cv, t, A);
        else
            alveolar_tile(cv, t, A);
    } else {
        double necrosis = fmin(fmax(0.2 + 0.1 * x->z, 0.05), 0.6), u = U(r);
        int kind = u < necrosis                          ? ND_NECROSIS
                   : u < necrosis + 0.4 * (1 - necrosis) ? ND_STROMA
                   : u < necrosis + 0.7 * (1 - necrosis) ? ND_INFLAMMATION
                                                         : ND_BLOOD;
        plain_tile(cv, kind, A);
    }
    if (U(r) < 0.08) { /* tissue edge: white beyond a line */
        float px = (float)((0.25 + 0.5 * U(r)) * T), py = (float)((0.25 + 0.5 * U(r)) * T);
        float a = (float)(2 * M_PI * U(r));
        float nx = cosf(a), ny = sinf(a);
        for (int y = 0; y < T; y++)
            for (int x2 = 0; x2 < T; x2++) {
                float d = (x2 - px) * nx + (y - py) * ny;
                float w = clampf(d + 0.5f, 0, 1);
                int i = y * T + x2;
                cv->H[i] *= 1 - w;
                cv->E[i] *= 1 - w;
                cv->K[i] *= 1 - w;
            }
    }
    compose(cv, st, x, out);
}

fl_status fl_synth_render_tiles(const fl_synth_plan *plan, int p, uint8_t *pixels) {
    int T = plan->cfg.tile, n = plan->cfg.tiles_per_patient;
    if (T <= 0 || n <= 0) return FL_OK;
    size_t TT = (size_t)T * T, g = (size_t)(T / 2 + 4) * (T / 2 + 4);
    float *mem = malloc(sizeof(float) * (7 * TT + g));
    if (!mem) return FL_ENOMEM;
    fl_rng r;
    canvas cv = {T, mem, mem + TT, mem + 2 * TT, mem + 3 * TT, mem + 6 * TT, mem + 7 * TT, &r};
    const fl_synth_sample *x = &plan->s[p];
    const fl_synth_stain *st = &plan->stain[plan->site[p]];
    for (int k = 0; k < n; k++) {
        uint8_t *out = pixels + (size_t)k * TT * 3;
        fl_rng_seed(&r, fl_mix64(x->seed, 0x74696c65ull + (uint64_t)k)); /* "tile" */
        render_tile(&cv, x, st, out);
    }
    free(mem);
    return FL_OK;
}
