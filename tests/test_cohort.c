/* test_cohort.c - the cohort file: a round trip of a small in-memory cohort (tiles byte-equal,
 * metadata and omics equal, NaNs included), subsets with and without tiles, every validation
 * failure made by editing a good file with the HDF5 API, and writers that leave nothing behind
 * on abort or failure. Files live in a mkdtemp folder, removed after. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/cohort.h"
#include "harness.h"

/* ------------------------------------------------------------------------------------------ */
/* the test cohort                                                                             */

enum { P7 = 7, TILE = 32, F_RNA = 5, F_METH = 1000, F_CLIN = 3 };
static const size_t TB = (size_t)TILE * TILE * 3;

static char **strs(int n, const char *fmt) {
    char **s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, fmt, i);
        s[i] = strdup(buf);
    }
    return s;
}

/* A distinct byte pattern per tile. */
static uint8_t pixel(int64_t t, int y, int x, int ch) {
    return (uint8_t)(t * 37 + y * 7 + x * 3 + ch * 11 + (x * y + (int)t) % 13);
}

static void fill_tiles(uint8_t *out, int64_t start, int64_t count) {
    for (int64_t t = 0; t < count; t++)
        for (int y = 0; y < TILE; y++)
            for (int x = 0; x < TILE; x++)
                for (int ch = 0; ch < 3; ch++)
                    out[(size_t)t * TB + ((size_t)y * TILE + x) * 3 + ch] =
                        pixel(start + t, y, x, ch);
}

/* 3 classes, 2 sites, 7 patients (S0 and S1 are samples of case C0), 2-3 tiles each, RNA with
 * S3 missing, methylation with S5 missing and scattered NaNs, clinical with an encoding. */
static void build(fl_cohort *c) {
    static const int32_t label[P7] = {0, 0, 1, 2, 1, 2, 0};
    static const int32_t stage[P7] = {0, 0, -1, 3, 2, 1, -1};
    static const uint8_t split[P7] = {0, 0, 1, 2, 0, 1, 2};
    static const char *cases[P7] = {"C0", "C0", "C1", "C2", "C3", "C4", "C5"};
    memset(c, 0, sizeof *c);
    c->P = P7;
    c->id = strs(P7, "S%d");
    c->case_id = calloc(P7, sizeof(char *));
    c->site = calloc(P7, sizeof(int32_t));
    c->label = calloc(P7, sizeof(int32_t));
    c->stage = calloc(P7, sizeof(int32_t));
    c->split = calloc(P7, 1);
    for (int p = 0; p < P7; p++) {
        c->case_id[p] = strdup(cases[p]);
        c->site[p] = p % 2;
        c->label[p] = label[p];
        c->stage[p] = stage[p];
        c->split[p] = split[p];
    }
    c->n_classes = 3;
    c->class_names = calloc(3, sizeof(char *));
    c->class_names[0] = strdup("LUAD");
    c->class_names[1] = strdup("LUSC");
    c->class_names[2] = strdup("normal");
    c->n_sites = 2;
    c->site_names = strs(2, "hospital-%d");
    const int F[FL_N_OMICS] = {F_RNA, F_METH, F_CLIN};
    const char *fmt[FL_N_OMICS] = {"ENSG%08d", "cg%08d", "clin_%d"};
    for (int m = 0; m < FL_N_OMICS; m++) {
        fl_omics_matrix *o = &c->omics[m];
        o->F = F[m];
        o->features = strs(F[m], fmt[m]);
        o->values = malloc(sizeof(float) * P7 * (size_t)F[m]);
        o->present = malloc(P7);
        for (int p = 0; p < P7; p++) {
            o->present[p] = !((m == FL_MOD_RNA && p == 3) || (m == FL_MOD_METHYLATION && p == 5));
            for (int j = 0; j < F[m]; j++) {
                float v = (float)(m + 1) * 0.5f + (float)p * 0.125f - (float)j * 0.01f;
                if (!o->present[p] || (m == FL_MOD_METHYLATION && (p * 31 + j) % 17 == 0)) v = NAN;
                o->values[(size_t)p * F[m] + j] = v;
            }
        }
    }
    c->omics[FL_MOD_CLINICAL].encoding = strdup("{\"age\": \"years/100\"}");
    c->tile = TILE;
    int64_t n = 0;
    for (int p = 0; p < P7; p++) n += 2 + p % 2;
    c->n_tiles = n;
    c->tile_patient = malloc(sizeof(int32_t) * (size_t)n);
    for (int p = 0, t = 0; p < P7; p++)
        for (int k = 0; k < 2 + p % 2; k++) c->tile_patient[t++] = p;
    c->provenance = strdup("test_cohort: built in memory");
}

/* Writes c with its synthetic tiles, in batches of `batch`. */
static fl_status write_cohort(const fl_cohort *c, const char *path, int64_t batch, fl_err *err) {
    fl_cohort_writer *w;
    fl_status s = fl_cohort_writer_begin(&w, c, path, err);
    if (s) return s;
    uint8_t *buf = malloc((size_t)batch * TB);
    for (int64_t t = 0; t < c->n_tiles && s == FL_OK; t += batch) {
        int64_t n = c->n_tiles - t < batch ? c->n_tiles - t : batch;
        fill_tiles(buf, t, n);
        s = fl_cohort_write_tiles(w, buf, n, err);
    }
    free(buf);
    if (s) {
        fl_cohort_writer_abort(w);
        return s;
    }
    return fl_cohort_writer_commit(w, err);
}

static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0; /* bitwise: NaN == NaN */
}

static int same_bytes(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int same = x && y, cx = 0, cy = 0;
    while (same && cx != EOF) {
        cx = fgetc(x);
        cy = fgetc(y);
        same = cx == cy;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return same;
}

/* Everything but the tiles of a equals row rows[i] of b (rows NULL: the identity). */
static void check_same(const fl_cohort *a, const fl_cohort *b, const int *rows, int line) {
    int before = fl_test_failures;
    CHECK_EQ_INT(a->n_classes, b->n_classes);
    CHECK_EQ_INT(a->n_sites, b->n_sites);
    for (int i = 0; i < a->n_classes && i < b->n_classes; i++)
        CHECK(strcmp(a->class_names[i], b->class_names[i]) == 0);
    for (int i = 0; i < a->n_sites && i < b->n_sites; i++)
        CHECK(strcmp(a->site_names[i], b->site_names[i]) == 0);
    CHECK((!a->provenance && !b->provenance) ||
          (a->provenance && b->provenance && !strcmp(a->provenance, b->provenance)));
    for (int p = 0; p < a->P; p++) {
        int q = rows ? rows[p] : p;
        CHECK(strcmp(a->id[p], b->id[q]) == 0);
        CHECK(strcmp(a->case_id[p], b->case_id[q]) == 0);
        CHECK_EQ_INT(a->site[p], b->site[q]);
        CHECK_EQ_INT(a->label[p], b->label[q]);
        CHECK_EQ_INT(a->stage[p], b->stage[q]);
        CHECK_EQ_INT(a->split[p], b->split[q]);
    }
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *x = &a->omics[m], *y = &b->omics[m];
        CHECK_EQ_INT(x->F, y->F);
        if (x->F != y->F || x->F == 0) continue;
        for (int j = 0; j < x->F; j++) CHECK(strcmp(x->features[j], y->features[j]) == 0);
        for (int p = 0; p < a->P; p++) {
            int q = rows ? rows[p] : p;
            CHECK_EQ_INT(x->present[p], y->present[q]);
            CHECK(same_floats(x->values + (size_t)p * x->F, y->values + (size_t)q * y->F,
                              (size_t)x->F));
        }
        CHECK((!x->encoding && !y->encoding) ||
              (x->encoding && y->encoding && !strcmp(x->encoding, y->encoding)));
    }
    if (fl_test_failures != before) fprintf(stderr, "  (compared at line %d)\n", line);
}

/* ------------------------------------------------------------------------------------------ */
/* round trips                                                                                 */

static void test_round_trip(void) {
    fl_cohort c, r;
    fl_cohort_file *f = NULL;
    fl_err err = {""};
    const char *path = fl_test_path("site.h5");
    build(&c);
    CHECK_OK(write_cohort(&c, path, 4, &err), &err);
    CHECK(fl_test_file_exists(path));
    CHECK_EQ_INT(fl_test_count_tmp(), 0);

    CHECK_OK(fl_cohort_open(&f, &r, path, &err), &err);
    if (!f) {
        fl_cohort_destroy(&c);
        return;
    }
    CHECK_EQ_INT(r.P, P7);
    check_same(&r, &c, NULL, __LINE__);
    CHECK_EQ_INT(r.tile, TILE);
    CHECK_EQ_INT(r.n_tiles, c.n_tiles);
    CHECK(memcmp(r.tile_patient, c.tile_patient, sizeof(int32_t) * (size_t)c.n_tiles) == 0);
    CHECK(isnan(r.omics[FL_MOD_RNA].values[3 * F_RNA]));
    CHECK_EQ_INT(r.omics[FL_MOD_METHYLATION].present[5], 0);

    /* All tiles at once, then odd windows: byte-equal to what was written. */
    size_t n = (size_t)c.n_tiles;
    uint8_t *want = malloc(n * TB), *got = malloc(n * TB);
    fill_tiles(want, 0, c.n_tiles);
    memset(got, 0, n * TB);
    CHECK_OK(fl_cohort_read_tiles(f, 0, c.n_tiles, got, &err), &err);
    CHECK(memcmp(got, want, n * TB) == 0);
    memset(got, 0, n * TB);
    CHECK_OK(fl_cohort_read_tiles(f, 5, 3, got, &err), &err);
    CHECK(memcmp(got, want + 5 * TB, 3 * TB) == 0);
    CHECK_OK(fl_cohort_read_tiles(f, c.n_tiles - 1, 1, got, &err), &err);
    CHECK(memcmp(got, want + (n - 1) * TB, TB) == 0);
    CHECK_OK(fl_cohort_read_tiles(f, c.n_tiles, 0, got, &err), &err);
    CHECK_FAILS(fl_cohort_read_tiles(f, c.n_tiles - 1, 2, got, &err), err, path);
    CHECK_FAILS(fl_cohort_read_tiles(f, -1, 1, got, &err), err, path);
    free(want);
    free(got);
    fl_cohort_close(f);
    fl_cohort_destroy(&r);
    CHECK(r.id == NULL && r.P == 0); /* destroy leaves it zeroed */

    /* The same cohort written again (other batches, other name) gives the same bytes. */
    const char *again = fl_test_path("again.h5");
    CHECK_OK(write_cohort(&c, again, 7, &err), &err);
    CHECK(same_bytes(path, again));

    /* fl_cohort_load gives the same metadata; rewriting replaces the file. */
    CHECK_OK(fl_cohort_load(&r, path, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    fl_cohort_destroy(&r);
    CHECK_OK(write_cohort(&c, path, 100, &err), &err);
    CHECK_OK(fl_cohort_load(&r, path, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    fl_cohort_destroy(&r);
    fl_cohort_destroy(&c);
    fl_cohort_destroy(NULL);
}

/* A cohort with only clinical data and no tiles, and no provenance: no groups for the rest. */
static void test_absent_modalities(void) {
    fl_cohort c, r;
    fl_err err = {""};
    const char *path = fl_test_path("clinical-only.h5");
    build(&c);
    for (int m = 0; m < FL_MOD_CLINICAL; m++) {
        fl_omics_matrix *o = &c.omics[m];
        for (int j = 0; j < o->F; j++) free(o->features[j]);
        free(o->features);
        free(o->values);
        free(o->present);
        memset(o, 0, sizeof *o);
    }
    free(c.tile_patient);
    c.tile_patient = NULL;
    c.n_tiles = 0;
    c.tile = 0;
    free(c.provenance);
    c.provenance = NULL;
    CHECK_OK(write_cohort(&c, path, 1, &err), &err);
    CHECK_OK(fl_cohort_load(&r, path, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    CHECK_EQ_INT(r.tile, 0);
    CHECK_EQ_INT(r.n_tiles, 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    CHECK(H5Lexists(f, "rna", H5P_DEFAULT) == 0);
    CHECK(H5Lexists(f, "methylation", H5P_DEFAULT) == 0);
    CHECK(H5Lexists(f, "tiles", H5P_DEFAULT) == 0);
    CHECK(H5Lexists(f, "clinical", H5P_DEFAULT) > 0);
    H5Fclose(f);
    fl_cohort_file *cf;
    fl_cohort r2;
    CHECK_OK(fl_cohort_open(&cf, &r2, path, &err), &err);
    uint8_t px[8];
    if (cf) CHECK_FAILS(fl_cohort_read_tiles(cf, 0, 1, px, &err), err, path);
    fl_cohort_close(cf);
    fl_cohort_destroy(&r2);
    fl_cohort_destroy(&r);
    fl_cohort_destroy(&c);
}

static void test_subset(void) {
    fl_cohort c, r;
    fl_cohort_file *f = NULL;
    fl_err err = {""};
    const char *src = fl_test_path("full.h5"), *sub = fl_test_path("subset.h5");
    build(&c);
    CHECK_OK(write_cohort(&c, src, 3, &err), &err);
    fl_cohort full;
    CHECK_OK(fl_cohort_open(&f, &full, src, &err), &err);
    if (!f) {
        fl_cohort_destroy(&c);
        return;
    }
    /* Keep S0, S1 (case C0), S4 and S6: tiles of kept patients only, indices remapped. */
    const uint8_t keep[P7] = {1, 1, 0, 0, 1, 0, 1};
    const int rows[4] = {0, 1, 4, 6};
    CHECK_OK(fl_cohort_save_subset(&full, f, keep, sub, &err), &err);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_cohort_file *g = NULL;
    CHECK_OK(fl_cohort_open(&g, &r, sub, &err), &err);
    if (g) {
        CHECK_EQ_INT(r.P, 4);
        check_same(&r, &c, rows, __LINE__);
        int64_t want_n = 0;
        for (int i = 0; i < 4; i++) want_n += 2 + rows[i] % 2;
        CHECK_EQ_INT(r.n_tiles, want_n);
        CHECK_EQ_INT(r.tile, TILE);
        uint8_t *got = malloc((size_t)want_n * TB), *want = malloc(TB);
        CHECK_OK(fl_cohort_read_tiles(g, 0, want_n, got, &err), &err);
        /* Walk the source tiles of kept patients in order: each must come out unchanged. */
        int64_t k = 0;
        for (int64_t t = 0; t < c.n_tiles; t++) {
            if (!keep[c.tile_patient[t]]) continue;
            int32_t q = r.tile_patient[k];
            CHECK_EQ_INT(rows[q], c.tile_patient[t]);
            fill_tiles(want, t, 1);
            CHECK(memcmp(got + (size_t)k * TB, want, TB) == 0);
            k++;
        }
        CHECK_EQ_INT(k, want_n);
        free(got);
        free(want);
        fl_cohort_close(g);
        fl_cohort_destroy(&r);
    }

    /* Without a source file: the same patients, no tiles. keep NULL: everything. */
    CHECK_OK(fl_cohort_save_subset(&full, NULL, keep, sub, &err), &err);
    CHECK_OK(fl_cohort_load(&r, sub, &err), &err);
    CHECK_EQ_INT(r.P, 4);
    CHECK_EQ_INT(r.n_tiles, 0);
    check_same(&r, &c, rows, __LINE__);
    fl_cohort_destroy(&r);
    CHECK_OK(fl_cohort_save_subset(&full, f, NULL, sub, &err), &err);
    CHECK_OK(fl_cohort_load(&r, sub, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    CHECK_EQ_INT(r.n_tiles, c.n_tiles);
    fl_cohort_destroy(&r);

    /* A subset that would split case C0 across... is impossible (splits are per patient), but
     * keeping nobody gives an empty, valid cohort. */
    const uint8_t none[P7] = {0};
    CHECK_OK(fl_cohort_save_subset(&full, f, none, sub, &err), &err);
    CHECK_OK(fl_cohort_load(&r, sub, &err), &err);
    CHECK_EQ_INT(r.P, 0);
    CHECK_EQ_INT(r.n_tiles, 0);
    CHECK_EQ_INT(r.n_classes, 3);
    fl_cohort_destroy(&r);

    /* A cohort that changed a split before saving (what `split` does) is written as given. */
    full.split[1] = FL_SPLIT_TEST; /* S1 now disagrees with S0 about case C0 */
    CHECK_FAILS(fl_cohort_save_subset(&full, f, keep, fl_test_path("straddle.h5"), &err), err,
                fl_test_path("straddle.h5"));
    CHECK_MSG(err, "C0");
    CHECK(!fl_test_file_exists(fl_test_path("straddle.h5")));
    full.split[0] = FL_SPLIT_TEST;
    CHECK_OK(fl_cohort_save_subset(&full, f, keep, sub, &err), &err);
    CHECK_OK(fl_cohort_load(&r, sub, &err), &err);
    CHECK_EQ_INT(r.split[0], FL_SPLIT_TEST);
    fl_cohort_destroy(&r);
    /* A source whose tiles are not the cohort's is refused. */
    full.n_tiles--;
    CHECK_FAILS(fl_cohort_save_subset(&full, f, keep, fl_test_path("mismatch.h5"), &err), err,
                fl_test_path("mismatch.h5"));
    full.n_tiles++;
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_cohort_close(f);
    fl_cohort_destroy(&full);
    fl_cohort_destroy(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* writers that fail leave nothing                                                             */

static void test_writer_cleanup(void) {
    fl_cohort c, r;
    fl_cohort_writer *w = NULL;
    fl_err err = {""};
    const char *path = fl_test_path("atomic.h5"), *fresh = fl_test_path("never.h5");
    uint8_t *buf = malloc(4 * TB);
    build(&c);
    fill_tiles(buf, 0, 4);

    /* abort after some tiles: no target, no temporary file. */
    CHECK_OK(fl_cohort_writer_begin(&w, &c, fresh, &err), &err);
    CHECK_EQ_INT(fl_test_count_tmp(), 1); /* while writing, the temporary file is there */
    CHECK_OK(fl_cohort_write_tiles(w, buf, 4, &err), &err);
    fl_cohort_writer_abort(w);
    fl_cohort_writer_abort(NULL);
    CHECK(!fl_test_file_exists(fresh));
    CHECK_EQ_INT(fl_test_count_tmp(), 0);

    /* An existing good file survives a failed rewrite. */
    CHECK_OK(write_cohort(&c, path, 5, &err), &err);
    CHECK_OK(fl_cohort_writer_begin(&w, &c, path, &err), &err);
    CHECK_OK(fl_cohort_write_tiles(w, buf, 2, &err), &err);
    CHECK_FAILS(fl_cohort_writer_commit(w, &err), err, path); /* too few tiles */
    CHECK_MSG(err, "/tiles/pixels");
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    CHECK_OK(fl_cohort_load(&r, path, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    fl_cohort_destroy(&r);

    /* Too many tiles: the write fails, the temporary file goes at once; abort frees. */
    CHECK_OK(fl_cohort_writer_begin(&w, &c, fresh, &err), &err);
    uint8_t *big = calloc((size_t)c.n_tiles + 1, TB);
    CHECK_FAILS(fl_cohort_write_tiles(w, big, c.n_tiles + 1, &err), err, fresh);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    CHECK_FAILS(fl_cohort_write_tiles(w, big, 1, &err), err, fresh);
    fl_cohort_writer_abort(w);
    free(big);
    /* ... and commit after a failure fails too. */
    CHECK_OK(fl_cohort_writer_begin(&w, &c, fresh, &err), &err);
    CHECK_FAILS(fl_cohort_write_tiles(w, buf, -1, &err), err, fresh);
    CHECK_FAILS(fl_cohort_writer_commit(w, &err), err, fresh);
    CHECK(!fl_test_file_exists(fresh));

    /* An invalid cohort is refused before any file is made. */
    c.label[2] = 3;
    CHECK_FAILS(fl_cohort_writer_begin(&w, &c, fresh, &err), err, fresh);
    CHECK_MSG(err, "/patients/label");
    CHECK(w == NULL);
    c.label[2] = 1;
    free(c.id[4]);
    c.id[4] = strdup("S2");
    CHECK_FAILS(fl_cohort_writer_begin(&w, &c, fresh, &err), err, fresh);
    CHECK_MSG(err, "\"S2\"");
    c.tile_patient[3] = 0;
    free(c.id[4]);
    c.id[4] = strdup("S4");
    CHECK_FAILS(fl_cohort_writer_begin(&w, &c, fresh, &err), err, fresh);
    CHECK_MSG(err, "/tiles/patient");

    /* A folder that does not exist: one sentence, nothing created. */
    const char *nodir = fl_test_path("no/such/dir.h5");
    c.tile_patient[3] = 1;
    CHECK_FAILS(fl_cohort_writer_begin(&w, &c, nodir, &err), err, nodir);
    CHECK(!fl_test_file_exists(fresh));
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    free(buf);
    fl_cohort_destroy(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* validation: good files edited with the HDF5 API                                             */

static char good_path[512];

/* A copy of the good file under a new name. */
static const char *copy_good(const char *name) {
    const char *p = fl_test_path(name);
    FILE *in = fopen(good_path, "rb"), *out = fopen(p, "wb");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
    return p;
}

/* Replaces (or creates) dataset name in file path with the given type, shape and data. */
static void put(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims,
                const void *buf) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (f < 0 || d < 0 || r < 0) fl_test_fail_at(__FILE__, __LINE__, "put %s in %s", name, path);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Fclose(f);
}

static void put_i32(const char *path, const char *name, const int32_t *v, hsize_t n) {
    put(path, name, H5T_NATIVE_INT32, 1, &n, v);
}

/* Variable-length strings, as h5py writes a list of str. */
static void put_strs(const char *path, const char *name, const char **v, hsize_t n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    put(path, name, t, 1, &n, v);
    H5Tclose(t);
}

static void drop(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (H5Ldelete(f, name, H5P_DEFAULT) < 0) fl_test_fail_at(__FILE__, __LINE__, "drop %s", name);
    H5Fclose(f);
}

static void set_attr_int(const char *path, const char *obj, const char *name, int v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(f, obj, name, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a =
        H5Acreate_by_name(f, obj, name, H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT, &v) < 0)
        fl_test_fail_at(__FILE__, __LINE__, "attribute %s", name);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static void set_attr_str(const char *path, const char *name, const char *v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &v) < 0) fl_test_fail_at(__FILE__, __LINE__, "attribute %s", name);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
}

/* Loading p fails, naming p and each of the texts; the cohort is left empty. */
#define CHECK_REJECTS(p, ...)                                                                   \
    do {                                                                                        \
        fl_cohort c_;                                                                           \
        fl_err e_ = {""};                                                                       \
        fl_cohort_file *f_ = (fl_cohort_file *)&c_;                                             \
        const char *texts_[] = {__VA_ARGS__};                                                   \
        CHECK_FAILS(fl_cohort_open(&f_, &c_, (p), &e_), e_, (p));                               \
        for (size_t i_ = 0; i_ < sizeof texts_ / sizeof texts_[0]; i_++)                        \
            CHECK_MSG(e_, texts_[i_]);                                                          \
        CHECK(f_ == NULL && c_.P == 0 && c_.id == NULL && c_.omics[0].values == NULL);          \
        if (strchr(e_.msg, '\n')) fl_test_fail_at(__FILE__, __LINE__, "two lines: %s", e_.msg); \
        if (getenv("FL_TEST_VERBOSE")) printf("  %s\n", e_.msg);                                \
    } while (0)

static void test_validation(void) {
    fl_cohort c;
    fl_err err = {""};
    const char *p;
    build(&c);
    snprintf(good_path, sizeof good_path, "%s", fl_test_path("good.h5"));
    CHECK_OK(write_cohort(&c, good_path, 8, &err), &err);

    /* Still good after an edit that changes nothing the reader checks (vlen class names). */
    p = copy_good("vlen.h5");
    const char *classes[3] = {"LUAD", "LUSC", "normal"};
    put_strs(p, "/meta/classes", classes, 3);
    fl_cohort r;
    CHECK_OK(fl_cohort_load(&r, p, &err), &err);
    check_same(&r, &c, NULL, __LINE__);
    fl_cohort_destroy(&r);

    /* Not a cohort at all. */
    p = fl_test_path("missing.h5");
    CHECK_REJECTS(p, "cannot open: No such file or directory");
    p = fl_test_path("random.h5");
    FILE *fp = fopen(p, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 7919 + 13) & 255, fp);
    fclose(fp);
    CHECK_REJECTS(p, "not a cohort file (not HDF5)");
    p = copy_good("format.h5");
    set_attr_str(p, "format", "fedlung-model");
    CHECK_REJECTS(p, "not a cohort file", "fedlung-model");
    p = copy_good("version.h5");
    set_attr_int(p, "/", "version", 2);
    CHECK_REJECTS(p, "version 2", "version 1");

    /* Shapes. */
    int32_t ints[16] = {0};
    p = copy_good("genes.h5");
    const char *genes[7] = {"a", "b", "c", "d", "e", "f", "g"};
    put_strs(p, "/rna/genes", genes, 7);
    CHECK_REJECTS(p, "/rna/values has 5 columns, /rna/genes has 7");
    p = copy_good("rows.h5");
    float vals[8 * F_RNA] = {0};
    hsize_t d2[2] = {8, F_RNA};
    put(p, "/rna/values", H5T_NATIVE_FLOAT, 2, d2, vals);
    CHECK_REJECTS(p, "/rna/values has 8 rows, /patients/id has 7");
    p = copy_good("rank.h5");
    put(p, "/methylation/values", H5T_NATIVE_FLOAT, 1, d2, vals);
    CHECK_REJECTS(p, "/methylation/values is 1-dimensional, expected 2");
    p = copy_good("present.h5");
    uint8_t u8[16] = {0};
    hsize_t n6 = 6;
    put(p, "/clinical/present", H5T_NATIVE_UINT8, 1, &n6, u8);
    CHECK_REJECTS(p, "/clinical/present has 6 entries, /patients/id has 7");
    p = copy_good("labels.h5");
    put_i32(p, "/patients/label", ints, 6);
    CHECK_REJECTS(p, "/patients/label has 6 entries, /patients/id has 7");
    p = copy_good("case.h5");
    put_strs(p, "/patients/case", genes, 5);
    CHECK_REJECTS(p, "/patients/case has 5 entries, /patients/id has 7");
    p = copy_good("floatlabel.h5");
    hsize_t n7 = 7;
    put(p, "/patients/label", H5T_NATIVE_FLOAT, 1, &n7, vals);
    CHECK_REJECTS(p, "/patients/label holds floating-point values, expected integer");
    p = copy_good("nosite.h5");
    drop(p, "/patients/site");
    CHECK_REJECTS(p, "/patients/site is missing");
    p = copy_good("nometa.h5");
    drop(p, "/meta");
    CHECK_REJECTS(p, "/meta/classes is missing");
    p = copy_good("tilepatient.h5");
    put_i32(p, "/tiles/patient", ints, 3);
    CHECK_REJECTS(p, "/tiles/patient has 3 entries, /tiles/pixels has 17");
    p = copy_good("tileattr.h5");
    set_attr_int(p, "/tiles", "tile", 64);
    CHECK_REJECTS(p, "/tiles/pixels", "(64, 64, 3)");

    /* Ranges. */
    int32_t v7[P7];
    memcpy(v7, c.label, sizeof v7);
    v7[4] = 3;
    p = copy_good("label.h5");
    put_i32(p, "/patients/label", v7, P7);
    CHECK_REJECTS(p, "/patients/label[4] = 3 is out of range", "/meta/classes has 3");
    v7[4] = -1;
    put_i32(p, "/patients/label", v7, P7);
    CHECK_REJECTS(p, "/patients/label[4] = -1");
    memcpy(v7, c.site, sizeof v7);
    v7[6] = 2;
    p = copy_good("siterange.h5");
    put_i32(p, "/patients/site", v7, P7);
    CHECK_REJECTS(p, "/patients/site[6] = 2 is out of range", "/meta/sites has 2");
    memcpy(v7, c.stage, sizeof v7);
    v7[0] = 4;
    p = copy_good("stage.h5");
    put_i32(p, "/patients/stage", v7, P7);
    CHECK_REJECTS(p, "/patients/stage[0] = 4");
    v7[0] = -2;
    put_i32(p, "/patients/stage", v7, P7);
    CHECK_REJECTS(p, "/patients/stage[0] = -2");
    uint8_t s7[P7];
    memcpy(s7, c.split, sizeof s7);
    s7[2] = 3;
    p = copy_good("split.h5");
    put(p, "/patients/split", H5T_NATIVE_UINT8, 1, &n7, s7);
    CHECK_REJECTS(p, "/patients/split[2] = 3");
    s7[2] = 1;
    s7[1] = 2; /* S1 in test, S0 (same case C0) in train */
    put(p, "/patients/split", H5T_NATIVE_UINT8, 1, &n7, s7);
    CHECK_REJECTS(p, "/patients/split", "case \"C0\"", "train", "test");
    p = copy_good("dup.h5");
    const char *ids[P7] = {"S0", "S1", "S2", "S3", "S1", "S5", "S6"};
    put_strs(p, "/patients/id", ids, P7);
    CHECK_REJECTS(p, "/patients/id has \"S1\" twice");
    p = copy_good("presentval.h5");
    memcpy(u8, c.omics[FL_MOD_RNA].present, P7);
    u8[0] = 2;
    put(p, "/rna/present", H5T_NATIVE_UINT8, 1, &n7, u8);
    CHECK_REJECTS(p, "/rna/present[0] = 2");

    /* Tiles out of order or out of range. */
    int32_t tp[17];
    memcpy(tp, c.tile_patient, sizeof tp);
    CHECK_EQ_INT(c.n_tiles, 17);
    tp[5] = 0;
    p = copy_good("order.h5");
    put_i32(p, "/tiles/patient", tp, 17);
    CHECK_REJECTS(p, "/tiles/patient[5] = 0 follows 1");
    memcpy(tp, c.tile_patient, sizeof tp);
    tp[16] = 7;
    put_i32(p, "/tiles/patient", tp, 17);
    CHECK_REJECTS(p, "/tiles/patient[16] = 7 is out of range");
    p = copy_good("noversion.h5");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "version");
    H5Fclose(f);
    CHECK_REJECTS(p, "\"version\" attribute is missing");
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_cohort_destroy(&c);
}

int main(void) {
    if (!fl_test_mkdtemp("fl-cohort-")) return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    CHECK(strcmp(fl_omics_name(FL_MOD_METHYLATION), "methylation") == 0);
    CHECK(strcmp(fl_split_name(FL_SPLIT_VAL), "val") == 0);
    test_round_trip();
    test_absent_modalities();
    test_subset();
    test_writer_cleanup();
    test_validation();
    if (fl_test_rmtree(fl_test_dir) != 0)
        fl_test_fail_at(__FILE__, __LINE__, "cannot remove %s", fl_test_dir);
    return fl_test_summary("test_cohort");
}
