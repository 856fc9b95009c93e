/* model_opcheck.c - `fedlung model opcheck`: runs every op case of nn/opcheck.h on one backend
 * and compares the outputs with reference .npy files recorded by the CPU backend (--write makes
 * them), one line per case; --out keeps this device's outputs for tests/gpu/torch_parity.py.
 * Not a benchmark, and not a whole-model check (that is `model step`). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/atomic.h"
#include "../nn/npy.h"
#include "../nn/opcheck.h"
#include "cli.h"
#include "model_opts.h"

static const char usage[] =
    "usage: fedlung model opcheck --ref DIR [--write] [--out DIR] [--device D] [--precision P]\n"
    "                             [--tol T] [--seed S] [--case SUBSTRING] [--threads N]\n"
    "\n"
    "Runs a fixed list of small cases that call every op of the backend, forward and backward,\n"
    "and compares each output with DIR/CASE.NAME.npy (inputs come from DIR too). One line per\n"
    "case: the worst normalized error max|got - ref| / max(1, max|ref|) over its outputs, the\n"
    "bound, ok or FAIL. Exit status 1 if any case fails.\n"
    "\n"
    "  --ref DIR      the references (tests/gpu_ref, recorded by the CPU backend)\n"
    "  --write        record references into DIR instead (inputs drawn from --seed, every input\n"
    "                 and output written, with DIR/manifest.json); meant for --device cpu\n"
    "  --out DIR      also write this device's arrays and a manifest.json into DIR\n"
    "  --device       cpu, cuda or cuda:N (default " FL_CLI_DEFAULT_DEVICE ")\n"
    "  --precision    fp32 (default), tf32 or bf16: looser bounds for the outputs of\n"
    "                 convolutions and linear layers (see the table in model_opcheck.c)\n"
    "  --tol T        use T as every bound instead\n"
    "  --seed S       seed of the inputs with --write (default 7)\n"
    "  --case S       only the cases whose names contain S (not with --write)\n"
    "  --threads N    CPU threads\n";

typedef struct {
    fl_cli_model_opts m; /* --device --precision --threads (model_opts.h) */
    const char *ref, *out, *only;
    int write;
    double tol; /* 0: the table */
    uint64_t seed;
} opcheck_opts;

/* ---- bounds ----
 * On the normalized error e = max|got - ref| / max(1, max|ref|). FP32: 1e-5, for every output
 * (the CPU and a GPU differ only in summation order). TF32 and BF16 change only convolutions and
 * linear layers: each product's two factors are rounded to 10 or 7 fraction bits (unit roundoff
 * u = 2^-11 or 2^-8), so a product is off by up to 2u of itself; K products summed into one
 * output element err by at most 2u*K*|p| if every error has the same sign, while the outputs
 * themselves are of size sqrt(K)*|p| (sums of K terms of random sign). Hence the bound
 * 2u*sqrt(K), K = the array's `reduction`:
 *
 *   precision | other outputs | conv / linear outputs, K products summed
 *   fp32      | 1e-5          | 1e-5
 *   tf32      | 1e-5          | max(1e-5, 2^-10 * sqrt(K))   (K = 72: 8.3e-3, K = 576: 2.3e-2)
 *   bf16      | 1e-5          | max(1e-5, 2^-7  * sqrt(K))   (K = 72: 6.6e-2, K = 576: 0.19)
 *
 * Derived, not yet measured: to be confirmed on the GPU (bench/gpu-check prints the errors). */
static double bound_for(fl_precision p, int reduction) {
    if (reduction <= 0 || p == FL_PREC_FP32) return 1e-5;
    double two_u = p == FL_PREC_TF32 ? 0x1p-10 : 0x1p-7;
    double b = two_u * sqrt((double)reduction);
    return b > 1e-5 ? b : 1e-5;
}

/* ---- options ---- */

enum { OPT_REF = FL_MOPT_OWN, OPT_WRITE, OPT_OUT, OPT_TOL, OPT_SEED, OPT_CASE };

/* Stores the value of own option code into the opcheck_opts at ctx; -1 if it is bad. */
static int own_option(int code, const char *value, void *ctx) {
    opcheck_opts *o = ctx;
    float f;
    int v;
    switch (code) {
    case OPT_REF:
        o->ref = value;
        break;
    case OPT_WRITE:
        o->write = 1;
        break;
    case OPT_OUT:
        o->out = value;
        break;
    case OPT_TOL:
        if (fl_parse_float(value, 0, 1e6, &f)) return -1;
        o->tol = f;
        break;
    case OPT_SEED:
        if (fl_parse_int(value, 0, 2147483647, &v)) return -1;
        o->seed = (uint64_t)v;
        break;
    case OPT_CASE:
        o->only = value;
        break;
    }
    return 0;
}

/* 0: run; 1: --help; -1: bad usage (already said). */
static int parse(int argc, char **argv, opcheck_opts *o) {
    static const struct option longopts[] = {{"ref", required_argument, 0, OPT_REF},
                                             {"write", no_argument, 0, OPT_WRITE},
                                             {"out", required_argument, 0, OPT_OUT},
                                             {"tol", required_argument, 0, OPT_TOL},
                                             {"seed", required_argument, 0, OPT_SEED},
                                             {"case", required_argument, 0, OPT_CASE},
                                             FL_MOPT_RUN_ENTRIES,
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->seed = 7;
    int p = fl_cli_model_opts_parse(argc, argv, "model opcheck", longopts, &o->m, own_option, o);
    if (p) return p;
    if (!o->ref) {
        fprintf(stderr, "fedlung model opcheck: --ref DIR is required\n");
        return -1;
    }
    if (o->write && o->only) {
        fprintf(stderr, "fedlung model opcheck: --case cannot be used with --write\n");
        return -1;
    }
    return fl_cli_check_device("model opcheck", o->m.device, o->m.precision);
}

/* ---- files ---- */

static fl_status make_dir(const char *dir, fl_err *err) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) return FL_OK;
    return fl_fail(err, FL_EIO, "%s: cannot create the folder: %s", dir, strerror(errno));
}

static void array_path(char *buf, size_t cap, const char *dir, const fl_opcheck_case *c,
                       const fl_opcheck_array *a) {
    snprintf(buf, cap, "%s/%s.%s.npy", dir, c->name, a->name);
}

static fl_status write_arrays(const char *dir, const fl_opcheck_case *c, fl_err *err) {
    char path[4096];
    for (int k = 0; k < c->n; k++) {
        const fl_opcheck_array *a = &c->a[k];
        array_path(path, sizeof path, dir, c, a);
        fl_status s = a->is_int ? fl_npy_write_i32(path, a->i, a->ndim, a->shape, err)
                                : fl_npy_write_f32(path, a->f, a->ndim, a->shape, err);
        if (s != FL_OK) return s;
    }
    return FL_OK;
}

static const char *precision_name(fl_precision p) {
    return p == FL_PREC_TF32 ? "tf32" : p == FL_PREC_BF16 ? "bf16" : "fp32";
}

/* One case's entry of manifest.json: its op, parameters and arrays, with each output's bound
 * for every precision (so tests/gpu/torch_parity.py applies the same table). */
static void manifest_case(FILE *f, const fl_opcheck_case *c, int first) {
    fprintf(f, "%s\n  {\"name\": \"%s\", \"op\": \"%s\", \"params\": %s,\n   \"arrays\": [",
            first ? "" : ",", c->name, c->op, c->params[0] ? c->params : "{}");
    for (int k = 0; k < c->n; k++) {
        const fl_opcheck_array *a = &c->a[k];
        fprintf(f, "%s\n    {\"name\": \"%s\", \"role\": \"%s\", \"dtype\": \"%s\", \"shape\": [",
                k ? "," : "", a->name, a->role == FL_OPCHECK_IN ? "in" : "out",
                a->is_int ? "i32" : "f32");
        for (int d = 0; d < a->ndim; d++) fprintf(f, "%s%" PRId64, d ? ", " : "", a->shape[d]);
        fprintf(f, "], \"reduction\": %d", a->reduction);
        if (a->role == FL_OPCHECK_OUT)
            fprintf(f, ", \"bound\": {\"fp32\": %.3g, \"tf32\": %.3g, \"bf16\": %.3g}",
                    bound_for(FL_PREC_FP32, a->reduction), bound_for(FL_PREC_TF32, a->reduction),
                    bound_for(FL_PREC_BF16, a->reduction));
        fputs("}", f);
    }
    fputs("]}", f);
}

/* ---- comparison ---- */

/* max|got - ref| / max(1, max|ref|); +inf when a NaN or an infinity appears in either. */
static double normalized_error(const fl_opcheck_array *a, const float *ref_f,
                               const int32_t *ref_i) {
    double diff = 0, scale = 1;
    for (size_t k = 0; k < a->numel; k++) {
        double g = a->is_int ? a->i[k] : a->f[k], r = a->is_int ? ref_i[k] : ref_f[k];
        if (!isfinite(g) || !isfinite(r)) return INFINITY;
        if (fabs(g - r) > diff) diff = fabs(g - r);
        if (fabs(r) > scale) scale = fabs(r);
    }
    return diff / scale;
}

/* Reads DIR/CASE.NAME.npy into *f or *i (malloc'd) after checking its shape against a. */
static fl_status read_ref(const char *dir, const fl_opcheck_case *c, const fl_opcheck_array *a,
                          float **f, int32_t **i, fl_err *err) {
    char path[4096];
    int ndim;
    int64_t shape[4];
    array_path(path, sizeof path, dir, c, a);
    *f = NULL;
    *i = NULL;
    fl_status s = a->is_int ? fl_npy_read_i32(path, i, &ndim, shape, err)
                            : fl_npy_read_f32(path, f, &ndim, shape, err);
    if (s != FL_OK) return s;
    int same = ndim == a->ndim;
    for (int d = 0; same && d < ndim; d++) same = shape[d] == a->shape[d];
    if (!same) {
        free(*f);
        free(*i);
        *f = NULL;
        *i = NULL;
        return fl_fail(err, FL_ESHAPE, "%s: shape differs from the case's (%d-D, expected %d-D)",
                       path, ndim, a->ndim);
    }
    return FL_OK;
}

/* Replaces c's inputs with DIR's (the references were computed from those). */
static fl_status load_inputs(const char *dir, fl_opcheck_case *c, fl_err *err) {
    for (int k = 0; k < c->n; k++) {
        fl_opcheck_array *a = &c->a[k];
        if (a->role != FL_OPCHECK_IN) continue;
        float *f;
        int32_t *i;
        fl_status s = read_ref(dir, c, a, &f, &i, err);
        if (s != FL_OK) return s;
        if (a->is_int)
            memcpy(a->i, i, a->numel * sizeof *i);
        else
            memcpy(a->f, f, a->numel * sizeof *f);
        free(f);
        free(i);
    }
    return FL_OK;
}

/* Compares c's outputs with DIR's; prints the case's line; returns 1 if it passes. */
static int compare_case(const opcheck_opts *o, const fl_opcheck_case *c) {
    double worst_err = 0, worst_bound = 1e-5, worst_ratio = -1;
    const char *worst = "-";
    for (int k = 0; k < c->n; k++) {
        const fl_opcheck_array *a = &c->a[k];
        if (a->role != FL_OPCHECK_OUT) continue;
        float *f;
        int32_t *i;
        fl_err err = {{0}};
        if (read_ref(o->ref, c, a, &f, &i, &err) != FL_OK) {
            printf("%-26s %-13s %s  FAIL\n", c->name, a->name, err.msg);
            return 0;
        }
        double e = normalized_error(a, f, i);
        double b = o->tol > 0 ? o->tol : bound_for(o->m.precision, a->reduction);
        double ratio = isfinite(e) ? e / b : INFINITY;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst_err = e;
            worst_bound = b;
            worst = a->name;
        }
        free(f);
        free(i);
    }
    int ok = worst_ratio <= 1.0;
    printf("%-26s %-13s err %.2e  bound %.2e  %s\n", c->name, worst, worst_err, worst_bound,
           ok ? "ok" : "FAIL");
    return ok;
}

/* ---- the command ---- */

static fl_status open_manifest(fl_atomic_file *af, const char *dir, const opcheck_opts *o,
                               fl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    fl_status s = fl_atomic_open(af, path, err);
    if (s != FL_OK) return s;
    fprintf(af->f,
            "{\"format\": \"fedlung-opcheck 1\", \"device\": \"%s\", \"precision\": \"%s\", "
            "\"seed\": %" PRIu64 ",\n \"cases\": [",
            o->m.device, precision_name(o->m.precision), o->seed);
    return FL_OK;
}

static fl_status close_manifest(fl_atomic_file *af, fl_err *err) {
    fputs("\n]}\n", af->f);
    if (ferror(af->f)) {
        fl_atomic_abort(af);
        return fl_fail(err, FL_EIO, "cannot write manifest.json");
    }
    return fl_atomic_commit(af, err);
}

int fl_cmd_model_opcheck(int argc, char **argv) {
    opcheck_opts o;
    int p = parse(argc, argv, &o);
    if (p > 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);

    fl_err err = {{0}};
    fl_atomic_file ref_manifest = {0}, out_manifest = {0};
    fl_opcheck_case c = {0};
    int rc = FL_EXIT_FAIL, failed = 0, ran = 0;
    const char *wdir = o.write ? o.ref : NULL;
    fl_backend *be = fl_backend_new(o.m.device, o.m.threads, o.m.precision, &err);
    if (!be) goto done;
    if ((wdir && (make_dir(wdir, &err) != FL_OK || open_manifest(&ref_manifest, wdir, &o, &err))) ||
        (o.out &&
         (make_dir(o.out, &err) != FL_OK || open_manifest(&out_manifest, o.out, &o, &err))))
        goto done;
    printf("opcheck: %s (%s) %s %s\n", be->name, precision_name(o.m.precision),
           o.write ? "writing references to" : "against", o.ref);
    for (int i = 0; i < fl_opcheck_count(); i++) {
        if (o.only && !strstr(fl_opcheck_name(i), o.only)) continue;
        if (fl_opcheck_case_init(&c, i, o.seed, &err) != FL_OK) goto done;
        if (!o.write && load_inputs(o.ref, &c, &err) != FL_OK) goto done;
        if (fl_opcheck_case_run(&c, be, &err) != FL_OK) {
            if (o.write) goto done; /* never record a reference from a failed run */
            printf("%-26s %-13s %s  FAIL\n", c.name, "-", err.msg);
            failed++;
        } else if (o.write) {
            if (write_arrays(wdir, &c, &err) != FL_OK) goto done;
            printf("%-26s wrote %d arrays\n", c.name, c.n);
        } else if (!compare_case(&o, &c)) {
            failed++;
        }
        if (o.write) manifest_case(ref_manifest.f, &c, ran == 0);
        if (o.out) {
            if (write_arrays(o.out, &c, &err) != FL_OK) goto done;
            manifest_case(out_manifest.f, &c, ran == 0);
        }
        ran++;
        fl_opcheck_case_destroy(&c);
        fflush(stdout);
    }
    if ((wdir && close_manifest(&ref_manifest, &err) != FL_OK) ||
        (o.out && close_manifest(&out_manifest, &err) != FL_OK))
        goto done;
    if (o.only && ran == 0) {
        fl_fail(&err, FL_EINVAL, "no case name contains '%s'", o.only);
        goto done;
    }
    printf("opcheck: %d cases, %d failed (%s, %s)\n", ran, failed, be->name,
           precision_name(o.m.precision));
    rc = failed ? FL_EXIT_FAIL : FL_EXIT_OK;
done:
    if (rc != FL_EXIT_OK && err.msg[0]) fl_cli_fail(&err);
    fl_opcheck_case_destroy(&c);
    fl_atomic_abort(&ref_manifest);
    fl_atomic_abort(&out_manifest);
    if (be) be->destroy(be);
    return rc;
}
