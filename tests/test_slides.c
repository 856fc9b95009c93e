/* test_slides.c - whole-slide tiling through OpenSlide and the tile-folder reader. The slide
 * fixture is written at test time by slides/make_slide.py (an Aperio-style tiled pyramid whose
 * layout and pixels this file recomputes): the tile count, grid and tissue fractions, exact
 * pixels at three resolutions (level 0 as is, level 0 halved, level 1 and level 2 as is), box
 * resampling at 1.5x, magnification vs mpp, the max_tiles spread, missing resolution, a missing
 * file and a non-slide. The PNG and JPEG tiles are written here through libpng / libjpeg. */
#include <math.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "data/slides.h"
#include "harness.h"

/* ---- the fixture's layout and pixels (as in slides/make_slide.py) ---- */

enum { W0 = 3072, H0 = 2048, N_TISSUE = 4 };
static const int TISSUE[N_TISSUE][4] = {/* x0, x1, y0, y1 in level-0 px */
                                        {256, 1024, 256, 1024},
                                        {1792, 2816, 256, 768},
                                        {512, 1536, 1280, 1792},
                                        {2304, 2496, 1280, 1536}};
static const int DARK[4] = {1792, 2048, 1280, 1792};
static const int PINK[3] = {232, 150, 196}, PURPLE[3] = {110, 62, 158};
static const int GLASS[3][3] = {{243, 243, 243}, {246, 246, 246}, {249, 249, 249}};
static const int INK[3][3] = {{12, 0, 9}, {0, 11, 14}, {10, 15, 0}};

static int in_rect(const int *r, double x, double y) {
    return x >= r[0] && x < r[1] && y >= r[2] && y < r[3];
}

/* The tissue region holding (x, y), or -1. */
static int region_at(double x, double y) {
    for (int k = 0; k < N_TISSUE; k++)
        if (in_rect(TISSUE[k], x, y)) return k;
    return -1;
}

static const int *pixel(int x, int y) {
    if (in_rect(DARK, x, y)) return INK[((x >> 2) + (y >> 2)) % 3];
    if (region_at(x, y) >= 0) return ((x >> 3) * 7 + (y >> 3) * 13) % 5 == 0 ? PURPLE : PINK;
    return GLASS[((x >> 2) + 2 * (y >> 2)) % 3];
}

/* Level 2 (downsample 16): the mean of the sixteen 4 x 4 blocks, rounded half up. */
static int level2(int u, int v, int k) {
    int s = 0;
    for (int b = 0; b < 4; b++)
        for (int a = 0; a < 4; a++) s += pixel(u * 16 + 4 * a, v * 16 + 4 * b)[k];
    return (s + 8) / 16;
}

/* The share of the square [x, x+s)^2 covered by tissue. */
static double tissue_share(double x, double y, double s) {
    double in = 0;
    for (int k = 0; k < N_TISSUE; k++) {
        double w = fmin(x + s, TISSUE[k][1]) - fmax(x, TISSUE[k][0]);
        double h = fmin(y + s, TISSUE[k][3]) - fmax(y, TISSUE[k][2]);
        if (w > 0 && h > 0) in += w * h;
    }
    return in / (s * s);
}

/* ---- helpers ---- */

static char slide[512], generic[512], bare[512];

static int make_fixture(const char *out, const char *flag) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 slides/make_slide.py %s '%s'", flag, out);
    int rc = system(cmd);
    if (rc != 0) fl_test_fail_at(__FILE__, __LINE__, "%s exited with %d", cmd, rc);
    return rc == 0;
}

typedef struct {
    uint8_t *px;
    fl_tile_coord *c;
    int n;
} tiles;

static void tiles_free(tiles *t) {
    free(t->px);
    free(t->c);
    memset(t, 0, sizeof *t);
}

static fl_slide_options opts(int tile, double mpp, double mag, int max_tiles, double min_tissue) {
    fl_slide_options o;
    fl_slide_options_default(&o);
    o.tile = tile, o.mpp = mpp, o.magnification = mag, o.max_tiles = max_tiles;
    o.min_tissue = min_tissue, o.quiet = 1;
    return o;
}

static tiles run(const char *path, fl_slide_options o) {
    tiles t = {0};
    fl_err err = {{0}};
    CHECK_OK(fl_slide_tile(path, &o, &t.px, &t.c, &t.n, &err), &err);
    return t;
}

/* Same tiles, coordinates and fractions (field by field: the struct has padding). */
static int same_tiles(const tiles *a, const tiles *b, int tile) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->c[i].x != b->c[i].x || a->c[i].y != b->c[i].y || a->c[i].tissue != b->c[i].tissue)
            return 0;
    return memcmp(a->px, b->px, (size_t)a->n * tile * tile * 3) == 0;
}

/* The grid cells of edge s (level-0 px) whose tissue share is >= min, row-major. */
static int expected_cells(double s, double min, fl_tile_coord *out) {
    int n = 0;
    for (int j = 0; (j + 1) * s <= H0; j++)
        for (int i = 0; (i + 1) * s <= W0; i++) {
            double f = tissue_share(i * s, j * s, s);
            if (f >= min) out[n++] = (fl_tile_coord){(int64_t)(i * s), (int64_t)(j * s), (float)f};
        }
    return n;
}

/* t's coordinates equal the grid cells of edge s with share >= min, with matching fractions. */
static void check_cells(const tiles *t, double s, double min) {
    fl_tile_coord want[256];
    int n = expected_cells(s, min, want);
    CHECK_EQ_INT(t->n, n);
    for (int i = 0; i < t->n && i < n; i++) {
        CHECK_EQ_INT(t->c[i].x, want[i].x);
        CHECK_EQ_INT(t->c[i].y, want[i].y);
        CHECK_CLOSE(t->c[i].tissue, want[i].tissue, 0, 0.02);
        CHECK(t->c[i].tissue >= min);
        CHECK(!in_rect(DARK, (double)t->c[i].x + s / 2, (double)t->c[i].y + s / 2));
    }
}

/* Largest |tile pixel - expected| where tile pixel (i, j) is the fixture at level-0
 * (x + step i, y + step j) (step 1/2, 1, 2, 4: step = num / den) or at level 2 (step 16). */
static int pixel_error(const tiles *t, int tile, int num, int den) {
    int worst = 0;
    for (int k = 0; k < t->n; k++)
        for (int j = 0; j < tile; j++)
            for (int i = 0; i < tile; i++)
                for (int ch = 0; ch < 3; ch++) {
                    int x = (int)t->c[k].x + num * i / den, y = (int)t->c[k].y + num * j / den;
                    int want = num == 16 ? level2(x / 16, y / 16, ch) : pixel(x, y)[ch];
                    int got = t->px[(((size_t)k * tile + j) * tile + i) * 3 + ch];
                    if (abs(got - want) > worst) worst = abs(got - want);
                }
    return worst;
}

/* ---- slides ---- */

static void test_grid_and_pixels(void) {
    /* 0.5 um/px is level 0: 3 x 3 + 4 x 2 + 4 x 2 full cells and D's cell at 3/4 */
    tiles t = run(slide, opts(256, 0.5, 0, 0, 0.5));
    CHECK_EQ_INT(t.n, 26);
    check_cells(&t, 256, 0.5);
    for (int i = 0; i < t.n; i++) CHECK(region_at((double)t.c[i].x, (double)t.c[i].y) >= 0);
    CHECK_EQ_INT(pixel_error(&t, 256, 1, 1), 0);
    tiles_free(&t);

    /* a stricter threshold drops D's partial cell */
    t = run(slide, opts(256, 0.5, 0, 0, 0.9));
    CHECK_EQ_INT(t.n, 25);
    check_cells(&t, 256, 0.9);
    tiles_free(&t);
    t = run(slide, opts(256, 0.5, 0, 0, 0.7));
    CHECK_EQ_INT(t.n, 26);
    tiles_free(&t);

    /* min_tissue 0 keeps the whole grid, glass and ink included */
    t = run(slide, opts(256, 0.5, 0, 0, 0));
    CHECK_EQ_INT(t.n, 12 * 8);
    tiles_free(&t);

    /* 1 um/px: level 0 halved by 2 x 2 box means (the fixture is constant on 4 x 4 blocks) */
    tiles a = run(slide, opts(128, 1.0, 0, 0, 0.5));
    check_cells(&a, 256, 0.5);
    CHECK_EQ_INT(pixel_error(&a, 128, 2, 1), 0);
    /* 10x on a 20x scan is the same resolution */
    tiles b = run(slide, opts(128, 0, 10, 0, 0.5));
    CHECK_EQ_INT(b.n, a.n);
    CHECK(same_tiles(&a, &b, 128));
    tiles_free(&a);
    tiles_free(&b);

    /* 2 um/px is level 1 (downsample 4) as is; 8 um/px is level 2 (downsample 16) as is */
    t = run(slide, opts(64, 2.0, 0, 0, 0.5));
    check_cells(&t, 256, 0.5);
    CHECK_EQ_INT(pixel_error(&t, 64, 4, 1), 0);
    tiles_free(&t);
    t = run(slide, opts(16, 8.0, 0, 0, 0.5));
    check_cells(&t, 256, 0.5);
    CHECK_EQ_INT(pixel_error(&t, 16, 16, 1), 0);
    tiles_free(&t);

    /* 0.25 um/px is finer than the scan: level 0 upsampled, each source pixel doubled; a
     * 128-px grid (D's second cell is exactly half tissue, and kept) */
    t = run(slide, opts(256, 0.25, 0, 0, 0.5));
    CHECK_EQ_INT(t.n, 6 * 6 + 8 * 4 + 8 * 4 + 2 * 2);
    check_cells(&t, 128, 0.5);
    CHECK_EQ_INT(pixel_error(&t, 256, 1, 2), 0);
    tiles_free(&t);
}

/* 0.75 um/px: a 384-px grid, each tile the box mean of 1.5 x 1.5 px of level 0. */
static void test_fractional_resample(void) {
    tiles t = run(slide, opts(256, 0.75, 0, 0, 0.5));
    CHECK(t.n > 0);
    fl_tile_coord want[256];
    int n = expected_cells(384, 0.0, want), seen = 0;
    for (int i = 0; i < n; i++) {
        double f = want[i].tissue;
        int found = -1;
        for (int k = 0; k < t.n; k++)
            if (t.c[k].x == want[i].x && t.c[k].y == want[i].y) found = k;
        /* the mask is 4-px coarse: only shares clear of the threshold are certain */
        if (f >= 0.55) CHECK(found >= 0);
        if (f < 0.45) CHECK(found < 0);
        if (found < 0) continue;
        seen++;
        CHECK_CLOSE(t.c[found].tissue, f, 0, 0.03);
        /* the tile's mean colour is the mean over its 384 x 384 source square */
        double mean[3] = {0}, got[3] = {0};
        for (int y = 0; y < 384; y++)
            for (int x = 0; x < 384; x++)
                for (int ch = 0; ch < 3; ch++)
                    mean[ch] += pixel((int)want[i].x + x, (int)want[i].y + y)[ch];
        for (size_t p = 0; p < 256 * 256; p++)
            for (int ch = 0; ch < 3; ch++)
                got[ch] += t.px[((size_t)found * 256 * 256 + p) * 3 + ch];
        for (int ch = 0; ch < 3; ch++) CHECK_CLOSE(got[ch] / 65536, mean[ch] / (384 * 384), 0, 0.6);
    }
    CHECK_EQ_INT(seen, t.n);
    tiles_free(&t);
}

/* max_tiles: a deterministic subset of the candidates, spread over several regions, in
 * row-major order; 1 tile is the one nearest the centroid. */
static void test_max_tiles(void) {
    tiles all = run(slide, opts(256, 0.5, 0, 0, 0.5));
    tiles t = run(slide, opts(256, 0.5, 0, 6, 0.5));
    tiles u = run(slide, opts(256, 0.5, 0, 6, 0.5));
    CHECK_EQ_INT(t.n, 6);
    CHECK(same_tiles(&t, &u, 256));
    int regions[N_TISSUE] = {0}, distinct = 0;
    for (int i = 0; i < t.n; i++) {
        int k = region_at((double)t.c[i].x, (double)t.c[i].y), found = -1;
        CHECK(k >= 0);
        if (k >= 0 && !regions[k]++) distinct++;
        for (int j = 0; j < all.n; j++)
            if (all.c[j].x == t.c[i].x && all.c[j].y == t.c[i].y) found = j;
        CHECK(found >= 0);
        if (found >= 0)
            CHECK(memcmp(t.px + (size_t)i * 256 * 256 * 3, all.px + (size_t)found * 256 * 256 * 3,
                         256 * 256 * 3) == 0);
        if (i > 0)
            CHECK(t.c[i].y > t.c[i - 1].y || (t.c[i].y == t.c[i - 1].y && t.c[i].x > t.c[i - 1].x));
    }
    if (distinct < 3) fl_test_fail_at(__FILE__, __LINE__, "6 tiles from %d regions", distinct);
    tiles_free(&u);

    /* one tile: the candidate nearest the centroid of all candidates */
    u = run(slide, opts(256, 0.5, 0, 1, 0.5));
    double cx = 0, cy = 0, best = INFINITY;
    int64_t bx = -1, by = -1;
    for (int i = 0; i < all.n; i++)
        cx += (double)all.c[i].x / all.n, cy += (double)all.c[i].y / all.n;
    for (int i = 0; i < all.n; i++) {
        double d = pow((double)all.c[i].x - cx, 2) + pow((double)all.c[i].y - cy, 2);
        if (d < best) best = d, bx = all.c[i].x, by = all.c[i].y;
    }
    CHECK_EQ_INT(u.n, 1);
    if (u.n == 1) {
        CHECK_EQ_INT(u.c[0].x, bx);
        CHECK_EQ_INT(u.c[0].y, by);
    }
    /* a cap above the count keeps everything */
    tiles v = run(slide, opts(256, 0.5, 0, 1000, 0.5));
    CHECK_EQ_INT(v.n, all.n);
    tiles_free(&v);
    tiles_free(&u);
    tiles_free(&t);
    tiles_free(&all);
}

/* A generic tiled TIFF: resolution from its centimetre tags; no objective power. One with no
 * resolution at all tiles only at level 0 as is. */
static void test_resolution_sources(void) {
    tiles a = run(slide, opts(128, 1.0, 0, 0, 0.5));
    tiles g = run(generic, opts(128, 1.0, 0, 0, 0.5));
    CHECK(same_tiles(&a, &g, 128));
    tiles_free(&a);
    tiles_free(&g);

    fl_err err = {{0}};
    fl_slide_options o = opts(128, 0, 10, 0, 0.5);
    uint8_t *px = NULL;
    fl_tile_coord *c = NULL;
    int n = -1;
    CHECK_FAILS(fl_slide_tile(generic, &o, &px, &c, &n, &err), err, generic);
    CHECK_MSG(err, "openslide.objective-power");
    CHECK(px == NULL && c == NULL && n == 0);
    o = opts(128, 1.0, 0, 0, 0.5);
    CHECK_FAILS(fl_slide_tile(bare, &o, &px, &c, &n, &err), err, bare);
    CHECK_MSG(err, "openslide.mpp-x");

    tiles b = run(bare, opts(256, 0, 0, 0, 0.5));
    check_cells(&b, 256, 0.5);
    tiles_free(&b);
}

static void test_bad_slides(void) {
    fl_err err = {{0}};
    fl_slide_options o = opts(256, 0.5, 0, 0, 0.5);
    uint8_t *px = NULL;
    fl_tile_coord *c = NULL;
    int n = 0;
    const char *missing = fl_test_path("no-such-slide.svs");
    fl_status s = fl_slide_tile(missing, &o, &px, &c, &n, &err);
    CHECK_EQ_INT(s, FL_ENOTFOUND);
    CHECK(strstr(err.msg, missing) != NULL);

    const char *text = fl_test_path("notes.svs");
    fl_test_write_file(text, "not a slide\n", 12);
    CHECK_FAILS(fl_slide_tile(text, &o, &px, &c, &n, &err), err, text);

    o.tile = 0;
    CHECK_FAILS(fl_slide_tile(slide, &o, &px, &c, &n, &err), err, slide);
    o = opts(256, 0.5, 0, 0, 1.5);
    CHECK_FAILS(fl_slide_tile(slide, &o, &px, &c, &n, &err), err, slide);
    o = opts(256, -1, 0, 0, 0.5);
    CHECK_FAILS(fl_slide_tile(slide, &o, &px, &c, &n, &err), err, slide);
    CHECK(px == NULL && c == NULL);

    fl_slide_options_default(&o);
    CHECK_EQ_INT(o.tile, 256);
    CHECK_EQ_INT(o.max_tiles, 64);
    CHECK_CLOSE(o.min_tissue, 0.5, 0, 0);
    CHECK(o.mpp == 0 && o.magnification == 0 && o.quiet == 0);
}

/* ---- tile folders ---- */

enum { T = 24 };

/* A smooth test image: tile k's pixel (x, y, c). */
static uint8_t img(int k, int x, int y, int c) {
    return (uint8_t)(20 + 4 * k + 3 * x + 2 * y + 30 * c); /* <= 223: no wrap for k <= 7 */
}

static void write_png(const char *name, int k, png_uint_32 format) {
    uint8_t buf[T * T * 4], map[256 * 3];
    int ch = PNG_IMAGE_SAMPLE_CHANNELS(format);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = im.height = T;
    im.format = format;
    if (format & PNG_FORMAT_FLAG_COLORMAP) { /* palette: entry i = tile pixel i (<= 256) */
        im.colormap_entries = 256;
        memset(map, 0, sizeof map);
        for (int i = 0; i < T * T; i++) {
            int idx = i % 256;
            for (int c = 0; c < 3; c++) map[idx * 3 + c] = img(k, idx % T, idx / T, c);
            buf[i] = (uint8_t)idx;
        }
    } else {
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++)
                for (int c = 0; c < ch; c++)
                    buf[(y * T + x) * ch + c] = c == 3 ? (uint8_t)(x * 10) : img(k, x, y, c);
    }
    int ok = png_image_write_to_file(&im, fl_test_path(name), 0, buf, 0,
                                     format & PNG_FORMAT_FLAG_COLORMAP ? map : NULL);
    if (!ok) fl_test_fail_at(__FILE__, __LINE__, "writing %s: %s", name, im.message);
}

static void write_jpeg(const char *name, int k, int grey, int size) {
    FILE *f = fopen(fl_test_path(name), "wb");
    if (!f) {
        fl_test_fail_at(__FILE__, __LINE__, "cannot write %s", name);
        return;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = c.image_height = (JDIMENSION)size;
    c.input_components = grey ? 1 : 3;
    c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 98, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c.input_components; ch++)
                row[x * c.input_components + ch] = img(k, x, y, ch);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* Largest |got - want| over tile k's pixels; want from img(), grey as channel 0 everywhere, alpha
 * (x * 10) composited onto white, palette from the colour map. */
static int folder_error(const uint8_t *px, int k, const char *kind) {
    int worst = 0;
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++)
            for (int c = 0; c < 3; c++) {
                int want = img(k, x, y, strcmp(kind, "grey") == 0 ? 0 : c);
                if (strcmp(kind, "rgba") == 0) {
                    int a = x * 10;
                    want = (want * a + 255 * (255 - a) + 127) / 255;
                } else if (strcmp(kind, "palette") == 0) {
                    int idx = (y * T + x) % 256;
                    want = img(k, idx % T, idx / T, c);
                }
                int d = abs(px[((size_t)k * T * T + (size_t)y * T + x) * 3 + c] - want);
                if (d > worst) worst = d;
            }
    return worst;
}

static void test_tile_folder(void) {
    fl_err err = {{0}};
    char dir[512], big[512]; /* fl_test_path's buffers rotate */
    snprintf(dir, sizeof dir, "%s", fl_test_path("tiles"));
    CHECK(mkdir(dir, 0755) == 0);
    /* written out of order: the reader sorts by name */
    write_jpeg("tiles/t4.jpeg", 4, 1, T);
    write_png("tiles/t0.png", 0, PNG_FORMAT_RGB);
    write_png("tiles/t2.PNG", 2, PNG_FORMAT_RGBA);
    write_jpeg("tiles/t3.jpg", 3, 0, T);
    write_png("tiles/t1.png", 1, PNG_FORMAT_GRAY);
    write_png("tiles/t5.png", 5, PNG_FORMAT_RGB_COLORMAP);
    fl_test_write_file(fl_test_path("tiles/readme.txt"), "ignored\n", 8);
    CHECK(mkdir(fl_test_path("tiles/sub.png"), 0755) == 0); /* a folder is skipped */

    uint8_t *px = NULL;
    int n = 0;
    CHECK_OK(fl_tile_folder_read(dir, T, &px, &n, &err), &err);
    CHECK_EQ_INT(n, 6);
    if (n == 6) {
        CHECK_EQ_INT(folder_error(px, 0, "rgb"), 0);
        CHECK_EQ_INT(folder_error(px, 1, "grey"), 0);
        CHECK_EQ_INT(folder_error(px, 2, "rgba"), 0);
        CHECK(folder_error(px, 3, "rgb") <= 3); /* JPEG at quality 98 */
        CHECK_EQ_INT(folder_error(px, 4, "grey"), 0);
        CHECK_EQ_INT(folder_error(px, 5, "palette"), 0);
    }
    free(px);

    /* a tile of another size, then a truncated JPEG: errors naming the file */
    write_png("tiles/t6.png", 6, PNG_FORMAT_RGB);
    write_jpeg("tiles/t7.jpg", 7, 0, 32);
    snprintf(big, sizeof big, "%s", fl_test_path("tiles/t7.jpg"));
    CHECK_FAILS(fl_tile_folder_read(dir, T, &px, &n, &err), err, big);
    CHECK_MSG(err, "32x32");
    CHECK(px == NULL && n == 0);
    size_t len = 0;
    char *data = fl_test_read_file(fl_test_path("tiles/t3.jpg"), &len);
    fl_test_write_file(big, data, len / 2);
    free(data);
    CHECK_FAILS(fl_tile_folder_read(dir, T, &px, &n, &err), err, big);
    const char *pngpath = fl_test_path("tiles/t6.png");
    fl_test_write_file(pngpath, "\x89PNG\r\n\x1a\n junk", 13);
    CHECK_FAILS(fl_tile_folder_read(dir, T, &px, &n, &err), err, pngpath);
    CHECK_FAILS(fl_tile_folder_read(dir, 16, &px, &n, &err), err, fl_test_path("tiles/t0.png"));

    /* an empty folder has no tiles; a missing one is an error naming it */
    const char *empty = fl_test_path("empty");
    CHECK(mkdir(empty, 0755) == 0);
    CHECK_OK(fl_tile_folder_read(empty, T, &px, &n, &err), &err);
    CHECK_EQ_INT(n, 0);
    free(px);
    const char *missing = fl_test_path("no-such-folder");
    CHECK_FAILS(fl_tile_folder_read(missing, T, &px, &n, &err), err, missing);
}

int main(void) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "test_slides: /usr/bin/python3 is needed to write the slide fixture "
                        "(slides/make_slide.py)\n");
        return 1;
    }
    if (!fl_test_mkdtemp("fl_slides_")) return 1;
    snprintf(slide, sizeof slide, "%s", fl_test_path("fixture.svs"));
    snprintf(generic, sizeof generic, "%s", fl_test_path("generic.tif"));
    snprintf(bare, sizeof bare, "%s", fl_test_path("bare.tif"));
    if (make_fixture(slide, "") && make_fixture(generic, "--generic") &&
        make_fixture(bare, "--bare")) {
        test_grid_and_pixels();
        test_fractional_resample();
        test_max_tiles();
        test_resolution_sources();
        test_bad_slides();
    }
    test_tile_folder();
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_slides");
}
