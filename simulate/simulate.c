/* simulate.c - `fedlung simulate` from start to end: the options' defaults and checks, then
 * setup (setup.c), the federation's processes (procs.c) and the report (report.c). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../fed/plan.h"
#include "../nn/backend.h"
#include "sim_impl.h"

void fl_sim_options_default(fl_sim_options *o) {
    memset(o, 0, sizeof *o);
    o->out_dir = FL_SIM_DEFAULT_OUT;
    o->hospitals = FL_SIM_DEFAULT_HOSPITALS;
    o->rounds = FL_SIM_DEFAULT_ROUNDS;
    o->partition = (fl_partition_spec){FL_PARTITION_SITE, 0, 0, 1};
    o->partition_text = "site";
    fl_synth_config_default(&o->synth);
    o->round_timeout_s = FL_SIM_DEFAULT_ROUND_TIMEOUT;
    o->clip_norm = FL_SIM_DEFAULT_CLIP_NORM;
    o->noise_multiplier = FL_SIM_DEFAULT_NOISE;
    o->sample_rate = FL_SIM_DEFAULT_SAMPLE_RATE;
    o->update_clip = FL_SIM_DEFAULT_UPDATE_CLIP;
    o->eval_noise = -1;
}

void fl_sim_privacy_section(const fl_sim_options *o, char *out, size_t cap) {
    static const char *const mechanism[] = {"none", "dp-sgd", "dp-fedavg"};
    int used = 0;
    out[0] = '\0';
    if (o->dp == FL_SIM_DP_NONE && !o->secagg) return;
    used =
        snprintf(out, cap, "\n[privacy]\n# written by `fedlung simulate`%s%s\nclip_norm = %.15g\n",
                 o->dp == FL_SIM_DP_PATIENT  ? " --dp patient"
                 : o->dp == FL_SIM_DP_CLIENT ? " --dp client"
                                             : "",
                 o->secagg ? " --secagg" : "", o->clip_norm);
    if (used > 0 && (size_t)used < cap && o->dp == FL_SIM_DP_PATIENT)
        used += snprintf(out + used, cap - (size_t)used,
                         "mechanism = %s\nnoise_multiplier = %.15g\nsample_rate = %.15g\n"
                         "delta = %g\n",
                         mechanism[o->dp], o->noise_multiplier, o->sample_rate, FL_SIM_DELTA);
    else if (used > 0 && (size_t)used < cap && o->dp == FL_SIM_DP_CLIENT)
        /* the noise is shared out over the hospitals expected in every round */
        used += snprintf(out + used, cap - (size_t)used,
                         "mechanism = %s\nnoise_multiplier = %.15g\ndp_clients = %d\n"
                         "dp_dropouts = %d\ndelta = %g\n%s",
                         mechanism[o->dp], o->noise_multiplier, o->hospitals, o->n_drops,
                         FL_SIM_DELTA, o->adaptive_clip ? "adaptive_clip = true\n" : "");
    if (used > 0 && (size_t)used < cap && o->dp == FL_SIM_DP_CLIENT && o->adaptive_clip &&
        o->clip_bit_noise > 0)
        used += snprintf(out + used, cap - (size_t)used, "clip_bit_noise = %.15g\n",
                         o->clip_bit_noise);
    if (used > 0 && (size_t)used < cap && o->dp != FL_SIM_DP_NONE && o->eval_noise >= 0)
        used += snprintf(out + used, cap - (size_t)used, "eval_noise_multiplier = %.15g\n",
                         o->eval_noise);
    if (used > 0 && (size_t)used < cap && o->secagg)
        used += snprintf(out + used, cap - (size_t)used, "secagg = true\n");
    /* DP-SGD bounds a patient's gradient; the masked sum needs a bound on the update */
    if (used > 0 && (size_t)used < cap && o->secagg && o->dp == FL_SIM_DP_PATIENT)
        snprintf(out + used, cap - (size_t)used, "update_clip = %.15g\n", o->update_clip);
}

int fl_sim_site_standardized(const fl_sim_options *o) {
    return o->standardize == FL_SIM_STD_SITE ||
           (o->standardize == FL_SIM_STD_AUTO && o->dp != FL_SIM_DP_NONE);
}

/* FL_EINVAL unless the study plan's rules accept the [privacy] section of o: the section
 * under a minimal plan (standardized as o asks), and the plan parser's own sentence (without
 * its file and line) when it refuses it. */
static fl_status check_privacy(const fl_sim_options *o, fl_err *err) {
    static const char probe_name[] = "simulate";
    char text[1024];
    int n = snprintf(text, sizeof text,
                     fl_sim_site_standardized(o)
                         ? "[study]\nid = probe\nclasses = A,B\nphases = fusion\n[fusion]\n"
                           "modalities = rna\nstandardize = site\nrna_names = g\nrounds = 1\n"
                           "epochs = 1\n"
                         : "[study]\nid = probe\nclasses = A,B\nphases = statistics,fusion\n"
                           "[fusion]\nmodalities = rna\nrounds = 1\nepochs = 1\n");
    fl_sim_privacy_section(o, text + n, sizeof text - (size_t)n);
    if (n <= 0 || text[n] == '\0') return FL_OK;
    fl_plan plan;
    fl_err inner;
    if (fl_plan_parse(text, strlen(text), probe_name, &plan, &inner) == FL_OK) {
        fl_plan_destroy(&plan);
        return FL_OK;
    }
    /* "simulate:12: what" or "simulate: what" -> "what" */
    const char *why = inner.msg;
    if (strncmp(why, probe_name, sizeof probe_name - 1) == 0) {
        why += sizeof probe_name - 1;
        if (*why == ':') why++;
        while (isdigit((unsigned char)*why)) why++;
        if (*why == ':') why++;
        while (*why == ' ') why++;
    }
    const char *what = o->dp == FL_SIM_DP_CLIENT && o->adaptive_clip
                           ? "--dp client --adaptive-clip (DP-FedAvg)"
                       : o->dp == FL_SIM_DP_CLIENT ? "--dp client (DP-FedAvg)"
                       : o->dp && o->secagg      ? "--dp patient with --secagg"
                       : o->secagg               ? "--secagg"
                                                 : "--dp patient";
    return fl_fail(err, FL_EINVAL, "%s: the study plan refuses it: %s", what, why);
}

/* FL_EINVAL when --plan FILE has a [privacy] section of its own and --dp or --secagg would
 * append a second one (its keys would be set twice): said before any work starts. */
static fl_status check_plan_privacy(const fl_sim_options *o, fl_err *err) {
    if (!o->plan || (o->dp == FL_SIM_DP_NONE && !o->secagg)) return FL_OK;
    FILE *f = fopen(o->plan, "r");
    if (!f) return fl_fail(err, FL_EIO, "--plan %s: cannot read it", o->plan);
    char line[512];
    int at = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        at++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        found = strncmp(p, "[privacy]", 9) == 0;
    }
    fclose(f);
    if (!found) return FL_OK;
    return fl_fail(err, FL_EINVAL,
                   "--plan %s:%d has a [privacy] section of its own: set DP and secure "
                   "aggregation there, or remove the section to use --dp/--secagg",
                   o->plan, at);
}

/* FL_EINVAL unless every fault names a hospital in 1..n. */
static fl_status check_faults(const fl_sim_fault *f, int n_faults, int n, const char *option,
                              fl_err *err) {
    for (int i = 0; i < n_faults; i++)
        if (f[i].hospital < 1 || f[i].hospital > n)
            return fl_fail(err, FL_EINVAL, "%s: hospital %d is not one of 1..%d", option,
                           f[i].hospital, n);
    return FL_OK;
}

fl_status fl_sim_options_check(const fl_sim_options *o, fl_err *err) {
    if (o->hospitals < 1 || o->hospitals > FL_SIM_MAX_HOSPITALS)
        return fl_fail(err, FL_EINVAL, "--hospitals must be 1..%d", FL_SIM_MAX_HOSPITALS);
    if (o->rounds < 1) return fl_fail(err, FL_EINVAL, "--rounds must be at least 1");
    fl_status s = check_faults(o->drops, o->n_drops, o->hospitals, "--drop-client", err);
    if (s == FL_OK)
        s = check_faults(o->stragglers, o->n_stragglers, o->hospitals, "--straggler", err);
    if (s != FL_OK) return s;
    for (int i = 0; i < o->n_drops; i++)
        for (int j = 0; j < i; j++)
            if (o->drops[i].hospital == o->drops[j].hospital)
                return fl_fail(err, FL_EINVAL, "--drop-client: hospital %d is dropped twice",
                               o->drops[i].hospital);
    for (int i = 0; i < o->n_stragglers; i++)
        for (int j = 0; j < i; j++)
            if (o->stragglers[i].hospital == o->stragglers[j].hospital)
                return fl_fail(err, FL_EINVAL, "--straggler: hospital %d is named twice",
                               o->stragglers[i].hospital);
    if (o->n_drops >= o->hospitals)
        return fl_fail(err, FL_EINVAL, "--drop-client: at least one hospital must remain");
    if ((o->adaptive_clip || o->clip_bit_noise > 0) && o->dp != FL_SIM_DP_CLIENT)
        return fl_fail(err, FL_EINVAL, "--adaptive-clip and --clip-bit-noise need --dp client");
    if (o->clip_bit_noise > 0 && !o->adaptive_clip)
        return fl_fail(err, FL_EINVAL, "--clip-bit-noise needs --adaptive-clip");
    if (o->eval_noise >= 0 && o->dp == FL_SIM_DP_NONE)
        return fl_fail(err, FL_EINVAL, "--eval-noise needs --dp");
    if (o->standardize == FL_SIM_STD_FEDERATED && o->dp != FL_SIM_DP_NONE)
        return fl_fail(err, FL_EINVAL,
                       "--standardize federated is refused with --dp: the statistics phase's "
                       "sums would leave every hospital un-noised");
    if (fl_sim_site_standardized(o) && o->cohort && !o->plan)
        return fl_fail(err, FL_EINVAL,
                       "--cohort with site standardization (the default under --dp) needs "
                       "--plan FILE naming the features: rank them on public data with "
                       "`fedlung plan features`");
    if ((s = check_plan_privacy(o, err)) != FL_OK || (s = check_privacy(o, err)) != FL_OK)
        return s;
    if (o->dp != FL_SIM_DP_NONE && !(o->epsilon_max > 0))
        return fl_fail(err, FL_EINVAL,
                       "--dp %s needs --epsilon-max E (each hospital's budget; a hospital "
                       "takes no part in a DP study without one)",
                       o->dp == FL_SIM_DP_CLIENT ? "client" : "patient");
    return FL_OK;
}

/* Starts the hospitals' device once: a GPU that cannot start fails the simulation now, with
 * the backend's sentence, not each hospital at its first training round. */
static fl_status check_device(const fl_sim_options *o, fl_err *err) {
    fl_precision p = FL_PREC_FP32;
    if (!o->device || strcmp(o->device, "cpu") == 0) return FL_OK;
    fl_status s = o->precision ? fl_precision_parse(o->precision, &p, err) : FL_OK;
    if (s != FL_OK) return s;
    fl_backend *be = fl_backend_new(o->device, 1, p, err);
    if (!be) return FL_EBACKEND;
    be->destroy(be);
    return FL_OK;
}

fl_status fl_simulate(const fl_sim_options *o, fl_err *err) {
    double t0 = fl_sim_now();
    fl_status s = fl_sim_options_check(o, err);
    if (s == FL_OK) s = check_device(o, err);
    fl_sim_layout L;
    if (s == FL_OK) s = fl_sim_setup(o, &L, err);
    int printed = 0;
    if (s == FL_OK) s = fl_sim_run(o, &L, &printed, err);
    if (s == FL_OK) s = fl_sim_finish(&L, &printed, t0, err);
    return s;
}
