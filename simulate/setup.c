/* setup.c - everything `fedlung simulate` prepares before a process starts: DIR and a clean
 * run state, the cohort (the synthetic one, reused when its settings match) split among the
 * hospitals, a throw-away PKI, the server's audit key, the study plan, a free port and the
 * configs of the server and of each hospital. Not a launcher: procs.c starts the processes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/atomic.h"
#include "../common/progress.h"
#include "../crypto/pki.h"
#include "../crypto/sign.h"
#include "../data/cohort.h"
#include "../fed/plan.h"
#include "../fed/plan_features.h"
#include "sim_impl.h"

void fl_sim_path(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, FL_SIM_PATH, fmt, ap);
    va_end(ap);
}

fl_status fl_sim_copy_file(const char *src, const char *dst, fl_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", src,
                       strerror(errno));
    fl_atomic_file af = {0};
    fl_status s = fl_atomic_open(&af, dst, err);
    char buf[1 << 14];
    size_t n;
    while (s == FL_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, af.f) != n) s = fl_fail(err, FL_EIO, "%s: write failed", dst);
    if (s == FL_OK && ferror(in)) s = fl_fail(err, FL_EIO, "%s: read failed", src);
    fclose(in);
    if (s == FL_OK) return fl_atomic_commit(&af, err);
    fl_atomic_abort(&af);
    return s;
}

/* ---- folders ---- */

/* Creates path and its missing parents (mode 0777 less the umask). FL_EIO naming path. */
static fl_status mkdirs(const char *path, fl_err *err) {
    char buf[FL_SIM_PATH];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return fl_fail(err, FL_EINVAL, "'%s': not a usable folder", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return fl_fail(err, FL_EIO, "%s: cannot create the folder: %s", buf, strerror(errno));
        buf[i] = path[i];
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fl_fail(err, FL_EIO, "%s: not a folder", path);
    return FL_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes the tree at path (nothing when it is not there). FL_EIO naming path. */
static fl_status remove_tree(const char *path, fl_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return FL_OK;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return fl_fail(err, FL_EIO, "%s: cannot remove the previous run's state: %s", path,
                       strerror(errno));
    return FL_OK;
}

/* A run starts afresh: the previous run's server and hospital state and results go. The cohort,
 * the hospitals' cohort files and anything else in DIR stay. */
static fl_status clear_previous_run(const fl_sim_layout *L, fl_err *err) {
    static const char *const results[] = {"rounds.csv", "audit.log",   "server.pub",
                                          "model.h5",   "rnet.h5",     "auc.png",
                                          "loss.png",   "privacy.csv", "epsilon.png"};
    char p[FL_SIM_PATH];
    fl_sim_path(p, "%s/server/state", L->dir);
    fl_status s = remove_tree(p, err);
    for (int k = 1; k <= FL_SIM_MAX_HOSPITALS && s == FL_OK; k++) {
        fl_sim_path(p, "%s/hospitals/hospital-%d/state", L->dir, k);
        s = remove_tree(p, err);
    }
    for (size_t i = 0; i < sizeof results / sizeof *results && s == FL_OK; i++) {
        fl_sim_path(p, "%s/%s", L->dir, results[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            s = fl_fail(err, FL_EIO, "%s: cannot remove: %s", p, strerror(errno));
    }
    return s;
}

/* ---- the cohort ---- */

/* Opens the synthetic cohort at path when its provenance says it was made with c's settings.
 * Returns 1 with *f and *co open, else 0 (and nothing open). */
static int reuse_synthetic(const fl_synth_config *c, const char *path, fl_cohort_file **f,
                           fl_cohort *co) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    fl_err ignored;
    fl_cohort want;
    if (fl_synth_build(c, &want, NULL, &ignored) != FL_OK) return 0;
    int same = 0;
    if (fl_cohort_open(f, co, path, &ignored) == FL_OK) {
        same = co->provenance && want.provenance && strcmp(co->provenance, want.provenance) == 0;
        if (!same) {
            fl_cohort_close(*f);
            fl_cohort_destroy(co);
            *f = NULL;
        }
    }
    fl_cohort_destroy(&want);
    return same;
}

static void on_synth_progress(void *ctx, int64_t done, int64_t total) {
    (void)total;
    fl_progress_update(ctx, done);
}

/* Opens the cohort to split: o->cohort, or DIR/cohort.h5 (written unless it is there with the
 * same settings). */
static fl_status open_cohort(const fl_sim_options *o, const fl_sim_layout *L, char *path,
                             fl_cohort_file **f, fl_cohort *co, fl_err *err) {
    if (o->cohort) {
        snprintf(path, FL_SIM_PATH, "%s", o->cohort);
        return fl_cohort_open(f, co, path, err);
    }
    fl_sim_path(path, "%s/cohort.h5", L->dir);
    if (reuse_synthetic(&o->synth, path, f, co)) {
        fprintf(stderr, "fedlung simulate: reusing the synthetic cohort %s\n", path);
        return FL_OK;
    }
    fprintf(stderr, "fedlung simulate: writing the synthetic cohort %s (%d patients, %d sites)\n",
            path, o->synth.patients, o->synth.sites);
    fl_synth_config c = o->synth;
    fl_progress bar;
    int64_t tiles = c.tile > 0 ? (int64_t)c.patients * c.tiles_per_patient : 0;
    fl_progress_begin(&bar, "fedlung simulate: tiles", tiles, tiles == 0);
    c.progress = on_synth_progress;
    c.progress_ctx = &bar;
    fl_status s = fl_synth_write(&c, path, err);
    fl_progress_end(&bar, "%s", s == FL_OK ? "written" : "failed");
    return s != FL_OK ? s : fl_cohort_open(f, co, path, err);
}

/* The hospital (0-based) of each patient: the partition's parts, sites dealt round-robin. */
static fl_status assign_hospitals(const fl_sim_options *o, const char *path, const fl_cohort *co,
                                  int32_t *hospital, fl_err *err) {
    fl_partition_spec spec = o->partition;
    spec.parts = spec.mode == FL_PARTITION_SITE ? 0 : o->hospitals;
    int parts = 0;
    fl_err inner;
    if (fl_partition(co, &spec, hospital, &parts, &inner) != FL_OK)
        return fl_fail(err, FL_EINVAL, "%s: --partition %s: %s", path, o->partition_text,
                       inner.msg);
    if (parts < o->hospitals)
        return fl_fail(err, FL_EINVAL,
                       "%s has patients at %d site%s, fewer than the %d hospitals: use "
                       "--partition iid or dirichlet:ALPHA, or fewer --hospitals",
                       path, parts, parts == 1 ? "" : "s", o->hospitals);
    for (int p = 0; p < co->P; p++) hospital[p] %= o->hospitals;
    return FL_OK;
}

/* Writes DIR/hospitals/hospital-K/cohort.h5 for every hospital, with a line each on stderr. */
static fl_status write_partitions(const fl_sim_options *o, const fl_sim_layout *L, const char *path,
                                  fl_cohort_file *f, fl_cohort *co, fl_err *err) {
    int32_t *hospital = malloc(sizeof *hospital * (size_t)(co->P ? co->P : 1));
    uint8_t *keep = malloc((size_t)(co->P ? co->P : 1));
    char *orig = co->provenance, *prov = NULL;
    fl_status s = FL_OK;
    if (!hospital || !keep) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((s = assign_hospitals(o, path, co, hospital, err)) != FL_OK) goto done;
    size_t plen = (orig ? strlen(orig) : 0) + strlen(path) + strlen(o->partition_text) + 160;
    if (!(prov = malloc(plen))) {
        s = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int k = 0; k < o->hospitals && s == FL_OK; k++) {
        char dir[FL_SIM_PATH], dst[FL_SIM_PATH], line[512];
        fl_sim_path(dir, "%s/hospitals/hospital-%d", L->dir, k + 1);
        fl_sim_path(dst, "%s/cohort.h5", dir);
        if ((s = mkdirs(dir, err)) != FL_OK) break;
        int n = 0, used = 0;
        for (int p = 0; p < co->P; p++) n += keep[p] = hospital[p] == k;
        snprintf(prov, plen, "%s%sfedlung simulate: hospital %d of %d of %s (--partition %s)",
                 orig ? orig : "", orig ? "\n" : "", k + 1, o->hospitals, path, o->partition_text);
        co->provenance = prov;
        s = fl_cohort_save_subset(co, f, keep, dst, err);
        co->provenance = orig;
        used = snprintf(line, sizeof line, "hospital-%d: %d patients (", k + 1, n);
        for (int c = 0; c < co->n_classes && used < (int)sizeof line; c++) {
            int m = 0;
            for (int p = 0; p < co->P; p++) m += keep[p] && co->label[p] == c;
            used += snprintf(line + used, sizeof line - (size_t)used, "%s%s %d", c ? ", " : "",
                             co->class_names[c], m);
        }
        if (s == FL_OK) fprintf(stderr, "fedlung simulate: %s)\n", line);
    }
done:
    free(prov);
    free(keep);
    free(hospital);
    return s;
}

/* ---- the PKI, the audit key ---- */

static fl_status make_pki(const fl_sim_layout *L, fl_err *err) {
    char ca[FL_SIM_PATH];
    fl_sim_path(ca, "%s/pki", L->dir);
    /* The certificates' default validity stops where the CA's does. */
    fl_pki_init_opts io = {.name = "fedlung simulate CA (throw-away)", .days = 30, .force = 1};
    fl_pki_issue_opts is = {.force = 1};
    fl_status s = fl_pki_init(ca, &io, err);
    if (s == FL_OK) s = fl_pki_issue(ca, "server", FL_PKI_SERVER, &is, err);
    for (int k = 1; k <= L->n && s == FL_OK; k++) {
        char name[32];
        snprintf(name, sizeof name, "hospital-%d", k);
        s = fl_pki_issue(ca, name, FL_PKI_CLIENT, &is, err);
    }
    return s;
}

/* DIR/server/audit.key signs the server's audit log; its public half goes to
 * DIR/server/audit.pub and DIR/server.pub. */
static fl_status make_audit_key(const fl_sim_layout *L, fl_err *err) {
    char key[FL_SIM_PATH], pub[FL_SIM_PATH], pub2[FL_SIM_PATH];
    fl_sim_path(key, "%s/server/audit.key", L->dir);
    fl_sim_path(pub, "%s/server/audit.pub", L->dir);
    fl_sim_path(pub2, "%s/server.pub", L->dir);
    fl_sign_key *k = NULL;
    fl_status s = fl_sign_key_generate(&k, err);
    if (s == FL_OK) s = fl_sign_key_save_private(k, key, err);
    if (s == FL_OK) s = fl_sign_key_save_public(k, pub, err);
    if (s == FL_OK) s = fl_sign_key_save_public(k, pub2, err);
    fl_sign_key_free(k);
    return s;
}

/* ---- the files it writes ---- */

/* What the writers of the plan and the configs need. */
typedef struct {
    const fl_sim_options *o;
    const fl_sim_layout *L;
    const fl_cohort *co;
    int k;                         /* the hospital of a client config */
    const fl_plan_features *lists; /* site standardization's feature lists, or NULL */
} conf_ctx;

/* Writes the file at path atomically with fill(f, ctx). */
static fl_status write_file(const char *path, void (*fill)(FILE *f, const conf_ctx *ctx),
                            const conf_ctx *ctx, fl_err *err) {
    fl_atomic_file af;
    fl_status s = fl_atomic_open(&af, path, err);
    if (s != FL_OK) return s;
    fill(af.f, ctx);
    return fl_atomic_commit(&af, err);
}

/* ---- the plan ---- */

/* Writes the demo's plan for cohort co: every phase the cohort allows (no image phases without
 * tiles; no statistics phase under site standardization, whose feature lists go into
 * [fusion]), o->rounds rounds of each trained phase. */
static void write_demo_plan(FILE *f, const conf_ctx *ctx) {
    const fl_sim_options *o = ctx->o;
    const fl_cohort *co = ctx->co;
    int tiles = co->tile >= 32 && co->n_tiles > 0;
    static const char *const omics[FL_N_OMICS] = {"rna", "methylation", "clinical"};
    fprintf(f, "# study.plan - written by `fedlung simulate`; its SHA-256 is the plan hash that\n"
               "# every hospital approves (client.conf approve)\n"
               "[study]\nid = fedlung-simulation\nclasses = ");
    for (int c = 0; c < co->n_classes; c++) fprintf(f, "%s%s", c ? "," : "", co->class_names[c]);
    int n_omics = 0;
    for (int m = 0; m < FL_N_OMICS; m++) n_omics += co->omics[m].F > 0;
    fprintf(f, "\nphases = %s%s%s\nseed = 1\n", n_omics && !ctx->lists ? "statistics," : "",
            tiles ? "image,features," : "", "fusion");
    /* Under DP-SGD the image batch is the tiles of each sampled patient per step (each patient's
     * gradient is its own pass): 4 keeps a round's work near the plain demo's 20 x 32 tiles. */
    if (tiles)
        fprintf(f,
                "\n[image]\narch = resnet18\nstem = small\ntile = %d\nwidth = 1\nrounds = %d\n"
                "local_steps = 20\n%sbatch = %d\noptimizer = sgd\nlr = 0.05\nmomentum = 0.9\n"
                "weight_decay = 1e-4\nstrategy = fedavg\n",
                co->tile, o->rounds,
                o->dp == FL_SIM_DP_PATIENT ? "# DP-SGD: tiles of each sampled patient per step\n"
                                           : "",
                o->dp == FL_SIM_DP_PATIENT ? FL_SIM_DP_IMAGE_BATCH : 32);
    fprintf(f, "\n[fusion]\nmodalities = ");
    int first = 1;
    if (tiles) fprintf(f, "image"), first = 0;
    for (int m = 0; m < FL_N_OMICS; m++)
        if (co->omics[m].F > 0) fprintf(f, "%s%s", first ? "" : ",", omics[m]), first = 0;
    fprintf(f,
            "\nrounds = %d\nepochs = 10\nbatch = 32\noptimizer = adamw\nlr = 3e-3\n"
            "weight_decay = 1e-2\nstrategy = fedavg\n",
            o->rounds);
    if (ctx->lists) fl_plan_features_write(ctx->lists, f);
}

/* Site standardization's feature lists for the demo plan, ranked as `fedlung plan features`
 * ranks them (every patient, the plan's defaults: 256 genes, 256 probes as M-values, every
 * clinical column) on DIR/public.h5: a public reference cohort from the same generator, with
 * the hospitals' genes and probes (their feature seed) but other patients (another seed), 1
 * site, FL_SIM_PUBLIC_PATIENTS, no tiles. */
static fl_status public_lists(const fl_sim_options *o, const fl_sim_layout *L,
                              fl_plan_features *lists, fl_err *err) {
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/public.h5", L->dir);
    fl_synth_config c = o->synth;
    c.feature_seed = o->synth.own_features ? o->synth.feature_seed : o->synth.seed;
    c.own_features = 1;
    c.seed = o->synth.seed + FL_SIM_PUBLIC_SEED_OFFSET;
    c.sites = 1;
    c.patients = FL_SIM_PUBLIC_PATIENTS;
    c.tile = c.tiles_per_patient = 0;
    c.progress = NULL;
    fprintf(stderr,
            "fedlung simulate: site standardization: the plan's features ranked on a "
            "public reference cohort %s (%d patients, seed %llu)\n",
            path, c.patients, (unsigned long long)c.seed);
    fl_plan_features_opts opts;
    fl_plan_features_opts_default(&opts);
    fl_cohort pub;
    fl_status s = fl_synth_write(&c, path, err);
    if (s == FL_OK && (s = fl_cohort_load(&pub, path, err)) == FL_OK) {
        s = fl_plan_features_rank(&pub, path, &opts, lists, err);
        fl_cohort_destroy(&pub);
    }
    return s;
}

/* A copy of the plan o->plan followed by the [privacy] section of --dp and --secagg. */
static fl_status copy_plan(const fl_sim_options *o, const char *path, fl_err *err) {
    char section[1024];
    fl_sim_privacy_section(o, section, sizeof section);
    fl_status s = fl_sim_copy_file(o->plan, path, err);
    if (s != FL_OK || !section[0]) return s;
    FILE *f = fopen(path, "a");
    if (!f || fputs(section, f) == EOF) s = fl_fail(err, FL_EIO, "%s: cannot write", path);
    if (f && fclose(f) != 0 && s == FL_OK) s = fl_fail(err, FL_EIO, "%s: cannot write", path);
    return s;
}

/* The demo's plan with the [privacy] section of --dp and --secagg. */
static void write_plan(FILE *f, const conf_ctx *ctx) {
    char section[1024];
    write_demo_plan(f, ctx);
    fl_sim_privacy_section(ctx->o, section, sizeof section);
    fputs(section, f);
}

/* DIR/study.plan (the demo's, or a copy of o->plan; either with the [privacy] section of --dp
 * and --secagg), checked by fl_plan_load; its id, hash, phases and DP go to L. */
static fl_status make_plan(const fl_sim_options *o, fl_sim_layout *L, const fl_cohort *co,
                           fl_err *err) {
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/study.plan", L->dir);
    fl_plan_features lists = {0};
    conf_ctx ctx = {o, L, co, 0, NULL};
    fl_status s = FL_OK;
    if (!o->plan && fl_sim_site_standardized(o) && (s = public_lists(o, L, &lists, err)) == FL_OK)
        ctx.lists = &lists;
    if (s == FL_OK) s = o->plan ? copy_plan(o, path, err) : write_file(path, write_plan, &ctx, err);
    fl_plan_features_destroy(&lists);
    if (s != FL_OK) return s;
    fl_plan plan;
    if ((s = fl_plan_load(path, &plan, err)) != FL_OK) return s;
    for (int c = 0; c < plan.n_classes && s == FL_OK; c++)
        if (plan.n_classes != co->n_classes || strcmp(plan.class_names[c], co->class_names[c]))
            s = fl_fail(err, FL_EINVAL, "%s: its classes differ from the cohort's", path);
    int site = plan.standardize == FL_STD_SITE;
    if (s == FL_OK && o->standardize != FL_SIM_STD_AUTO && site != fl_sim_site_standardized(o))
        s = fl_fail(err, FL_EINVAL,
                    "--standardize %s, but %s standardizes %s ([fusion] standardize)",
                    site ? "federated" : "site", o->plan ? o->plan : path,
                    site ? "at each site" : "federated");
    snprintf(L->study, sizeof L->study, "%s", plan.id);
    fl_plan_hash_hex(&plan, L->plan_hash);
    L->phases = plan.phases;
    L->dp = plan.privacy.mechanism != FL_DP_NONE;
    if (s == FL_OK && L->dp && !(o->epsilon_max > 0))
        s = fl_fail(err, FL_EINVAL,
                    "%s trains with differential privacy: give --epsilon-max E (each "
                    "hospital's budget; a hospital takes no part in a DP study without one)",
                    path);
    fl_plan_destroy(&plan);
    return s;
}

/* ---- the port, the threads, the configs ---- */

/* A TCP port free on 127.0.0.1 now: the kernel's choice for port 0. */
static fl_status pick_port(int *port, fl_err *err) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    if (!ok) return fl_fail(err, FL_EIO, "cannot find a free port on 127.0.0.1: %s", strerror(e));
    *port = ntohs(a.sin_port);
    return FL_OK;
}

static int online_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void write_server_conf(FILE *f, const conf_ctx *ctx) {
    const fl_sim_layout *L = ctx->L;
    fprintf(f,
            "# server.conf - written by `fedlung simulate`; paths are relative to this folder\n"
            "[server]\nlisten = 127.0.0.1:%d\nstudy = %s\nstate_dir = state\nmin_clients = %d\n"
            "plan = ../study.plan\naudit_key = audit.key\nround_timeout_s = %d\n"
            "join_timeout_s = 0\nretries = 2\n\n"
            "[tls]\nca = ../pki/ca.crt\ncert = ../pki/server.crt\nkey = ../pki/server.key\n\n"
            "[clients]\n",
            L->port, L->study, L->min_clients, ctx->o->round_timeout_s);
    for (int k = 1; k <= L->n; k++) fprintf(f, "allow = hospital-%d\n", k);
}

static void write_client_conf(FILE *f, const conf_ctx *ctx) {
    const fl_sim_layout *L = ctx->L;
    int k = ctx->k;
    fprintf(f,
            "# client.conf - written by `fedlung simulate`; paths are relative to this folder\n"
            "[client]\nserver = 127.0.0.1:%d\nstudy = %s\nname = hospital-%d\nstate_dir = state\n"
            "approve = %s\nthreads = %d\ndevice = %s\nprecision = %s\n\n"
            "[tls]\nca = ../../pki/ca.crt\ncert = ../../pki/hospital-%d.crt\n"
            "key = ../../pki/hospital-%d.key\n\n"
            "[data]\ncohort = cohort.h5\n",
            L->port, L->study, k, L->plan_hash, L->client_threads,
            ctx->o->device ? ctx->o->device : "cpu", ctx->o->precision ? ctx->o->precision : "fp32",
            k, k);
    if (ctx->o->epsilon_max > 0)
        fprintf(f, "\n[privacy]\nepsilon_max = %.15g\ndelta = %g\n", ctx->o->epsilon_max,
                FL_SIM_DELTA);
}

/* The PKI, the audit key, the port, the threads and the configs of the server and of each
 * hospital. */
static fl_status make_federation(const fl_sim_options *o, fl_sim_layout *L, fl_err *err) {
    fprintf(stderr, "fedlung simulate: a throw-away PKI in %s/pki, an audit key, the configs\n",
            L->dir);
    int cores = o->threads > 0 ? o->threads : online_cores();
    /* The server's own work (aggregation) is light: its one thread shares a core. */
    L->server_threads = 1;
    L->client_threads = cores / L->n > 1 ? cores / L->n : 1;
    L->min_clients = L->n - o->n_drops > 1 ? L->n - o->n_drops : 1;
    char path[FL_SIM_PATH];
    conf_ctx ctx = {o, L, NULL, 0, NULL};
    fl_sim_path(path, "%s/server/server.conf", L->dir);
    fl_status s;
    if ((s = make_pki(L, err)) != FL_OK || (s = make_audit_key(L, err)) != FL_OK ||
        (s = pick_port(&L->port, err)) != FL_OK ||
        (s = write_file(path, write_server_conf, &ctx, err)) != FL_OK)
        return s;
    for (ctx.k = 1; ctx.k <= L->n && s == FL_OK; ctx.k++) {
        fl_sim_path(path, "%s/hospitals/hospital-%d/client.conf", L->dir, ctx.k);
        s = write_file(path, write_client_conf, &ctx, err);
    }
    return s;
}

/* ---- all of it ---- */

fl_status fl_sim_setup(const fl_sim_options *o, fl_sim_layout *L, fl_err *err) {
    memset(L, 0, sizeof *L);
    L->n = o->hospitals;
    fl_status s = mkdirs(o->out_dir, err);
    if (s != FL_OK) return s;
    char real[PATH_MAX];
    if (!realpath(o->out_dir, real))
        return fl_fail(err, FL_EIO, "%s: %s", o->out_dir, strerror(errno));
    if (strlen(real) > FL_SIM_DIR_MAX)
        return fl_fail(err, FL_EINVAL, "%s: the folder's path is too long", o->out_dir);
    snprintf(L->dir, sizeof L->dir, "%s", real);
    char server_dir[FL_SIM_PATH];
    fl_sim_path(server_dir, "%s/server", L->dir);
    if ((s = clear_previous_run(L, err)) != FL_OK || (s = mkdirs(server_dir, err)) != FL_OK)
        return s;

    char path[FL_SIM_PATH];
    fl_cohort co;
    fl_cohort_file *f = NULL;
    if ((s = open_cohort(o, L, path, &f, &co, err)) != FL_OK) return s;
    s = write_partitions(o, L, path, f, &co, err);
    if (s == FL_OK) s = make_plan(o, L, &co, err);
    fl_cohort_close(f);
    fl_cohort_destroy(&co);
    if (s != FL_OK) return s;

    return make_federation(o, L, err);
}
