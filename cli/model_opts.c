/* model_opts.c - the getopt_long loop of the model commands: the shared options and the error
 * messages for every option. What each option means is in the commands' usage texts. */
#include <stdio.h>
#include <string.h>

#include "model_opts.h"

/* Stores shared option code's value into m; -1 if the value is bad. */
static int set_shared(fl_cli_model_opts *m, int code, const char *value) {
    int stem;
    switch (code) {
    case FL_MOPT_ARCH:
        return (m->net.depth = fl_resnet_depth_from_name(value)) ? 0 : -1;
    case FL_MOPT_TILE:
        return fl_parse_int(value, 32, 8192, &m->net.tile);
    case FL_MOPT_STEM:
        stem = fl_stem_from_name(value);
        m->net.stem = (fl_stem)stem;
        return stem < 0 ? -1 : 0;
    case FL_MOPT_CLASSES:
        return fl_parse_int(value, 1, 100000, &m->net.classes);
    case FL_MOPT_WIDTH:
        return fl_parse_float(value, 1e-3, 64, &m->net.width);
    case FL_MOPT_BATCH:
        return fl_parse_int(value, 1, 1 << 20, &m->batch);
    case FL_MOPT_THREADS:
        return fl_parse_int(value, 1, 1024, &m->threads);
    case FL_MOPT_DEVICE:
        return fl_cli_parse_device(value, &m->device);
    case FL_MOPT_PRECISION:
        return fl_cli_parse_precision(value, &m->precision);
    }
    return -1;
}

int fl_cli_model_opts_parse(int argc, char **argv, const char *cmd, const struct option *longopts,
                            fl_cli_model_opts *m,
                            int (*own)(int code, const char *value, void *ctx), void *ctx) {
    memset(m, 0, sizeof *m);
    fl_resnet_config_default(&m->net);
    m->device = FL_CLI_DEFAULT_DEVICE;
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (c == FL_MOPT_HELP) return 1;
        if (c < FL_MOPT_ARCH) { /* '?': an option not in longopts, or one without its value */
            fprintf(stderr, "fedlung %s: unknown option or missing value: %s\n", cmd,
                    argv[optind - 1]);
            return -1;
        }
        int bad = c >= FL_MOPT_OWN ? own(c, optarg, ctx) : set_shared(m, c, optarg);
        if (bad) {
            fprintf(stderr, "fedlung %s: bad value '%s' for --%s\n", cmd, optarg,
                    longopts[idx].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedlung %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return -1;
    }
    return 0;
}
