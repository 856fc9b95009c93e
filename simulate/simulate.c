/* simulate.c - `fedlung simulate` from start to end: the options' defaults and checks, then
 * setup (setup.c), the federation's processes (procs.c) and the report (report.c). */
#include <stdio.h>
#include <string.h>

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
    return FL_OK;
}

fl_status fl_simulate(const fl_sim_options *o, fl_err *err) {
    double t0 = fl_sim_now();
    fl_status s = fl_sim_options_check(o, err);
    fl_sim_layout L;
    if (s == FL_OK) s = fl_sim_setup(o, &L, err);
    int printed = 0;
    if (s == FL_OK) s = fl_sim_run(o, &L, &printed, err);
    if (s == FL_OK) s = fl_sim_finish(&L, &printed, t0, err);
    return s;
}
