/* cohort_write.c - writes a cohort file: everything but the pixels at once, then tiles appended
 * in batches, all into a temporary file beside path (common/atomic.h) which is renamed over path
 * only on commit (a failure or an abort removes it). Also the subset writer used by import and
 * split. Not an appender: an existing cohort file is replaced whole, never modified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atomic.h"
#include "cohort_impl.h"

struct fl_cohort_writer {
    hid_t file;
    hid_t pixels; /* /tiles/pixels (n_tiles, tile, tile, 3) uint8, or -1 without tiles */
    char *path, *tmp;
    int tile;
    int64_t n_tiles, written;
    int failed; /* the temporary file is gone; only abort (or commit, which fails) remains */
};

#define CHUNK_BYTES ((size_t)1 << 18) /* target chunk size of the 1-D and omics datasets */
#define SMALL_BYTES ((size_t)1 << 14) /* below this a dataset stays contiguous */
#define TILE_DEFLATE 1                /* fast: tiles are written far more often than tuned */
#define MATRIX_DEFLATE 1
#define COPY_BATCH_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------------------------------------ */
/* HDF5 helpers: each returns < 0 on failure, leaving HDF5's error stack for fl_h5_msg        */

/* Creation properties: no timestamps (the same cohort gives the same bytes); chunks of about
 * CHUNK_BYTES with shuffle + deflate for anything big, contiguous for small or empty ones. */
static hid_t make_dcpl(int rank, const hsize_t *dims, size_t esize, int deflate) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) goto fail;
    size_t total = esize;
    for (int i = 0; i < rank; i++) total *= (size_t)dims[i];
    if (total < SMALL_BYTES) return dcpl; /* also every empty dataset */
    hsize_t chunk[2];
    size_t per = CHUNK_BYTES / esize ? CHUNK_BYTES / esize : 1;
    if (rank == 1) {
        chunk[0] = dims[0] < per ? dims[0] : per;
    } else { /* (rows, cols): whole rows up to 64k columns, as many rows as fit */
        chunk[1] = dims[1] < 65536 ? dims[1] : 65536;
        hsize_t rows = per / chunk[1] ? per / chunk[1] : 1;
        chunk[0] = dims[0] < rows ? dims[0] : rows;
    }
    if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, deflate) < 0)
        goto fail;
    return dcpl;
fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    return -1;
}

/* Creates loc/name with file type ftype and writes all of buf (memory type mtype). */
static herr_t write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                            const hsize_t *dims, size_t esize, int deflate, const void *buf) {
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = -1, d = -1;
    herr_t r = -1;
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (space >= 0) dcpl = make_dcpl(rank, dims, esize, deflate);
    if (dcpl >= 0) d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d >= 0) r = n ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    if (d >= 0 && H5Dclose(d) < 0) r = -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return r;
}

/* n strings as fixed-length, NUL-terminated UTF-8 of the longest one's size (compact, and h5py
 * reads them as bytes). */
static herr_t write_strings(hid_t loc, const char *name, char *const *s, int n) {
    size_t size = 1;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(s[i]) + 1;
        if (len > size) size = len;
    }
    char *buf = calloc(n ? (size_t)n : 1, size);
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t r = -1;
    if (buf && t >= 0 && H5Tset_size(t, size) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0) {
        for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * size, s[i], strlen(s[i]));
        hsize_t dims[1] = {(hsize_t)n};
        r = write_dataset(loc, name, t, t, 1, dims, size, MATRIX_DEFLATE, buf);
    }
    if (t >= 0) H5Tclose(t);
    free(buf);
    return r;
}

/* A group without timestamps. */
static hid_t make_group(hid_t f, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    return g;
}

/* ------------------------------------------------------------------------------------------ */
/* sections; each names in *what the dataset it was writing when it fails                    */

static herr_t write_meta(hid_t f, const fl_cohort *c, const char **what) {
    int version = FL_COHORT_VERSION;
    *what = "the root attributes";
    if (fl_h5_attr_write_str(f, "format", FL__COHORT_FORMAT) < 0 ||
        fl_h5_attr_write(f, "version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) < 0 ||
        (c->provenance && fl_h5_attr_write_str(f, "provenance", c->provenance) < 0))
        return -1;
    *what = "/meta";
    hid_t g = make_group(f, "meta");
    herr_t r = g < 0 ? -1 : 0;
    if (r >= 0 && (r = write_strings(g, "classes", c->class_names, c->n_classes)) < 0)
        *what = "/meta/classes";
    if (r >= 0 && (r = write_strings(g, "sites", c->site_names, c->n_sites)) < 0)
        *what = "/meta/sites";
    if (g >= 0) H5Gclose(g);
    return r;
}

static herr_t write_patients(hid_t f, const fl_cohort *c, const char **what) {
    hsize_t dims[1] = {(hsize_t)c->P};
    hid_t g = make_group(f, "patients");
    herr_t r = g < 0 ? -1 : 0;
    *what = "/patients";
    if (r >= 0 && (r = write_strings(g, "id", c->id, c->P)) < 0) *what = "/patients/id";
    if (r >= 0 && (r = write_strings(g, "case", c->case_id, c->P)) < 0) *what = "/patients/case";
    struct {
        const char *name, *full;
        hid_t ftype, mtype;
        size_t esize;
        const void *v;
    } cols[] = {
        {"site", "/patients/site", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, c->site},
        {"label", "/patients/label", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, c->label},
        {"stage", "/patients/stage", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, c->stage},
        {"split", "/patients/split", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, c->split},
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0] && r >= 0; i++)
        if ((r = write_dataset(g, cols[i].name, cols[i].ftype, cols[i].mtype, 1, dims,
                               cols[i].esize, MATRIX_DEFLATE, cols[i].v)) < 0)
            *what = cols[i].full;
    if (g >= 0) H5Gclose(g);
    return r;
}

static herr_t write_omics(hid_t f, const fl_cohort *c, fl_omics m, char what[64]) {
    const fl_omics_matrix *o = &c->omics[m];
    const char *name = fl_omics_name(m);
    if (o->F == 0) return 0; /* absent: no group */
    hsize_t dims[2] = {(hsize_t)c->P, (hsize_t)o->F};
    hid_t g = make_group(f, name);
    herr_t r = g < 0 ? -1 : 0;
    snprintf(what, 64, "/%s", name);
    if (r >= 0 && (r = write_dataset(g, "values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims,
                                     sizeof(float), MATRIX_DEFLATE, o->values)) < 0)
        snprintf(what, 64, "/%s/values", name);
    if (r >= 0 && (r = write_strings(g, fl__omics_features[m], o->features, o->F)) < 0)
        snprintf(what, 64, "/%s/%s", name, fl__omics_features[m]);
    if (r >= 0 && (r = write_dataset(g, "present", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dims, 1,
                                     MATRIX_DEFLATE, o->present)) < 0)
        snprintf(what, 64, "/%s/present", name);
    if (r >= 0 && m == FL_MOD_CLINICAL && o->encoding &&
        (r = fl_h5_attr_write_str(g, "encoding", o->encoding)) < 0)
        snprintf(what, 64, "the \"encoding\" attribute of /%s", name);
    if (g >= 0) H5Gclose(g);
    return r;
}

/* Creates /tiles (attribute tile), /tiles/patient and an unwritten /tiles/pixels, one tile per
 * chunk so that reading any tile decompresses only that tile. */
static herr_t create_tiles(hid_t f, const fl_cohort *c, hid_t *pixels, const char **what) {
    hsize_t n[1] = {(hsize_t)c->n_tiles};
    hsize_t dims[4] = {(hsize_t)c->n_tiles, (hsize_t)c->tile, (hsize_t)c->tile, 3};
    hsize_t chunk[4] = {1, (hsize_t)c->tile, (hsize_t)c->tile, 3};
    hid_t g = make_group(f, "tiles"), space = -1, dcpl = -1;
    herr_t r = g < 0 ? -1 : 0;
    *what = "/tiles";
    if (r >= 0) r = fl_h5_attr_write(g, "tile", H5T_STD_I32LE, H5T_NATIVE_INT, &c->tile);
    if (r >= 0 && (r = write_dataset(g, "patient", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, n, 4,
                                     MATRIX_DEFLATE, c->tile_patient)) < 0)
        *what = "/tiles/patient";
    if (r >= 0) {
        *what = "/tiles/pixels";
        r = -1;
        space = H5Screate_simple(4, dims, NULL);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (space >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 &&
            H5Pset_chunk(dcpl, 4, chunk) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
            H5Pset_deflate(dcpl, TILE_DEFLATE) >= 0 &&
            H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0) {
            *pixels = H5Dcreate2(g, "pixels", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            r = *pixels < 0 ? -1 : 0;
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (g >= 0) H5Gclose(g);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* the temporary file                                                                          */

/* Closes the HDF5 file and removes the temporary one; w stays allocated (failed). */
static void writer_discard(fl_cohort_writer *w) {
    if (w->pixels >= 0) H5Dclose(w->pixels);
    if (w->file >= 0) H5Fclose(w->file);
    w->pixels = w->file = -1;
    fl_atomic_tmp_remove(w->tmp);
    H5Eclear2(H5E_DEFAULT);
    w->failed = 1;
}

static void writer_free(fl_cohort_writer *w) {
    free(w->path);
    free(w->tmp);
    free(w);
}

/* ------------------------------------------------------------------------------------------ */
/* public                                                                                      */

void fl_cohort_writer_abort(fl_cohort_writer *w) {
    if (!w) return;
    if (!w->failed) writer_discard(w);
    writer_free(w);
}

fl_status fl_cohort_writer_begin(fl_cohort_writer **out, const fl_cohort *c, const char *path,
                                 fl_err *err) {
    char msg[FL_H5_MSG_LEN], what[64] = "";
    const char *whatp = NULL;
    hid_t fapl = -1;
    fl_status s;
    *out = NULL;
    fl_h5_quiet();
    if ((s = fl__cohort_check(c, path, err))) return s;
    fl_cohort_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    w->file = w->pixels = -1;
    w->tile = c->tile;
    w->n_tiles = c->n_tiles;
    if ((s = fl_atomic_tmp_reserve(path, &w->tmp, NULL, err))) {
        writer_free(w);
        return s;
    }
    /* Strong close: closing the file also closes anything a failure path left open. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (w->file < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot create %s (%s)", path, w->tmp, fl_h5_msg(msg));
        goto fail;
    }
    if (write_meta(w->file, c, &whatp) < 0 || write_patients(w->file, c, &whatp) < 0) goto h5fail;
    whatp = what;
    for (int m = 0; m < FL_N_OMICS; m++)
        if (write_omics(w->file, c, (fl_omics)m, what) < 0) goto h5fail;
    if (c->n_tiles > 0 && create_tiles(w->file, c, &w->pixels, &whatp) < 0) goto h5fail;
    *out = w;
    return FL_OK;
h5fail:
    s = fl_fail(err, FL_EIO, "%s: cannot write %s (%s)", path, whatp, fl_h5_msg(msg));
fail:
    fl_cohort_writer_abort(w);
    return s;
}

fl_status fl_cohort_write_tiles(fl_cohort_writer *w, const uint8_t *pixels, int64_t count,
                                fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    fl_status s;
    if (w->failed) return fl_fail(err, FL_EINVAL, "%s: the cohort writer already failed", w->path);
    if (count < 0 || count > w->n_tiles - w->written) {
        s = fl_fail(err, FL_EINVAL,
                    "%s: /tiles/pixels: %lld more tiles after %lld exceed the %lld announced",
                    w->path, (long long)count, (long long)w->written, (long long)w->n_tiles);
        writer_discard(w);
        return s;
    }
    if (count == 0) return FL_OK;
    if (fl__tiles_io(w->pixels, w->written, count, w->tile, NULL, pixels) < 0) {
        s = fl_fail(err, FL_EIO, "%s: cannot write tiles [%lld, %lld) of /tiles/pixels (%s)",
                    w->path, (long long)w->written, (long long)(w->written + count),
                    fl_h5_msg(msg));
        writer_discard(w);
        return s;
    }
    w->written += count;
    return FL_OK;
}

fl_status fl_cohort_writer_commit(fl_cohort_writer *w, fl_err *err) {
    char msg[FL_H5_MSG_LEN];
    fl_status s = FL_OK;
    if (w->failed) {
        s = fl_fail(err, FL_EINVAL, "%s: the cohort writer already failed", w->path);
    } else if (w->written != w->n_tiles) {
        s = fl_fail(err, FL_EINVAL, "%s: /tiles/pixels: only %lld of %lld tiles were written",
                    w->path, (long long)w->written, (long long)w->n_tiles);
    } else {
        herr_t r = w->pixels >= 0 ? H5Dclose(w->pixels) : 0;
        w->pixels = -1;
        if (H5Fclose(w->file) < 0) r = -1;
        w->file = -1;
        if (r < 0)
            s = fl_fail(err, FL_EIO, "%s: cannot finish writing (%s)", w->path, fl_h5_msg(msg));
        else
            s = fl_atomic_tmp_commit(w->tmp, w->path, err);
    }
    if (s != FL_OK && !w->failed) writer_discard(w);
    writer_free(w);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* subsets                                                                                     */

/* v becomes the kept patients of c: new arrays for the per-patient data, borrowed strings. */
static int subset_view(const fl_cohort *c, const uint8_t *keep, int with_tiles, fl_cohort *v) {
    int P = 0;
    memset(v, 0, sizeof *v);
    for (int p = 0; p < c->P; p++) P += !keep || keep[p];
    size_t np = P ? (size_t)P : 1;
    v->P = P;
    v->n_classes = c->n_classes;
    v->class_names = c->class_names;
    v->n_sites = c->n_sites;
    v->site_names = c->site_names;
    v->provenance = c->provenance;
    v->id = malloc(np * sizeof *v->id);
    v->case_id = malloc(np * sizeof *v->case_id);
    v->site = malloc(np * sizeof *v->site);
    v->label = malloc(np * sizeof *v->label);
    v->stage = malloc(np * sizeof *v->stage);
    v->split = malloc(np);
    if (!v->id || !v->case_id || !v->site || !v->label || !v->stage || !v->split) return -1;
    for (int m = 0; m < FL_N_OMICS; m++) {
        const fl_omics_matrix *o = &c->omics[m];
        fl_omics_matrix *q = &v->omics[m];
        if (o->F == 0) continue;
        q->F = o->F;
        q->features = o->features;
        q->encoding = o->encoding;
        q->values = malloc(np * (size_t)o->F * sizeof(float));
        q->present = malloc(np);
        if (!q->values || !q->present) return -1;
    }
    int *map = malloc((c->P ? (size_t)c->P : 1) * sizeof *map);
    if (!map) return -1;
    for (int p = 0, k = 0; p < c->P; p++) {
        map[p] = -1;
        if (keep && !keep[p]) continue;
        map[p] = k;
        v->id[k] = c->id[p];
        v->case_id[k] = c->case_id[p];
        v->site[k] = c->site[p];
        v->label[k] = c->label[p];
        v->stage[k] = c->stage[p];
        v->split[k] = c->split[p];
        for (int m = 0; m < FL_N_OMICS; m++) {
            const fl_omics_matrix *o = &c->omics[m];
            if (o->F == 0) continue;
            memcpy(v->omics[m].values + (size_t)k * o->F, o->values + (size_t)p * o->F,
                   (size_t)o->F * sizeof(float));
            v->omics[m].present[k] = o->present[p];
        }
        k++;
    }
    if (with_tiles && c->n_tiles > 0) {
        int64_t n = 0;
        for (int64_t t = 0; t < c->n_tiles; t++) n += map[c->tile_patient[t]] >= 0;
        v->tile = c->tile;
        v->n_tiles = n;
        v->tile_patient = malloc((n ? (size_t)n : 1) * sizeof *v->tile_patient);
        if (!v->tile_patient) {
            free(map);
            return -1;
        }
        for (int64_t t = 0, k = 0; t < c->n_tiles; t++)
            if (map[c->tile_patient[t]] >= 0) v->tile_patient[k++] = map[c->tile_patient[t]];
    }
    free(map);
    return 0;
}

/* Frees what subset_view allocated (not the borrowed strings). */
static void subset_free(fl_cohort *v) {
    free(v->id);
    free(v->case_id);
    free(v->site);
    free(v->label);
    free(v->stage);
    free(v->split);
    for (int m = 0; m < FL_N_OMICS; m++) {
        free(v->omics[m].values);
        free(v->omics[m].present);
    }
    free(v->tile_patient);
    memset(v, 0, sizeof *v);
}

/* Copies the tiles of kept patients from src to w, in runs of consecutive kept tiles, at most
 * COPY_BATCH_BYTES at a time. */
static fl_status copy_tiles(const fl_cohort *c, const uint8_t *keep, fl_cohort_file *src,
                            fl_cohort_writer *w, fl_err *err) {
    size_t tb = (size_t)c->tile * (size_t)c->tile * 3;
    int64_t batch = (int64_t)(COPY_BATCH_BYTES / tb ? COPY_BATCH_BYTES / tb : 1);
    uint8_t *buf = NULL;
    fl_status s = FL_OK;
    for (int64_t t = 0; t < c->n_tiles && s == FL_OK;) {
        if (keep && !keep[c->tile_patient[t]]) {
            t++;
            continue;
        }
        int64_t n = 1;
        while (t + n < c->n_tiles && n < batch && (!keep || keep[c->tile_patient[t + n]])) n++;
        if (!buf && !(buf = malloc((size_t)batch * tb))) {
            s = fl_fail(err, FL_ENOMEM, "%s: out of memory copying tiles", w->path);
            break;
        }
        s = fl_cohort_read_tiles(src, t, n, buf, err);
        if (s == FL_OK) s = fl_cohort_write_tiles(w, buf, n, err);
        t += n;
    }
    free(buf);
    return s;
}

fl_status fl_cohort_save_subset(const fl_cohort *c, fl_cohort_file *src_file, const uint8_t *keep,
                                const char *path, fl_err *err) {
    fl_cohort v;
    fl_cohort_writer *w = NULL;
    fl_status s;
    if (src_file && c->n_tiles > 0) { /* the tiles must be the ones c describes */
        fl__cohort_file_dims(src_file, &v.tile, &v.n_tiles);
        if (v.tile != c->tile || v.n_tiles != c->n_tiles)
            return fl_fail(err, FL_EINVAL,
                           "%s: the source file has %lld tiles of %d px, the cohort describes "
                           "%lld of %d px",
                           path, (long long)v.n_tiles, v.tile, (long long)c->n_tiles, c->tile);
    }
    if (subset_view(c, keep, src_file != NULL, &v) < 0) {
        subset_free(&v);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory selecting patients", path);
    }
    s = fl_cohort_writer_begin(&w, &v, path, err);
    if (s == FL_OK && v.n_tiles > 0) s = copy_tiles(c, keep, src_file, w, err);
    if (s == FL_OK)
        s = fl_cohort_writer_commit(w, err);
    else
        fl_cohort_writer_abort(w);
    subset_free(&v);
    return s;
}
