/* model_opts.h - the options that `fedlung model info|forward|bench`, `model opcheck` and
 * `model step` share, and the getopt_long loop that parses them with the same error messages.
 * Not the usage texts, the commands' own options or their checks after parsing: each command
 * keeps those. */
#ifndef FL_CLI_MODEL_OPTS_H
#define FL_CLI_MODEL_OPTS_H

#include <getopt.h>

#include "../nn/resnet.h"
#include "cli.h"

/* getopt_long codes of the shared options; a command numbers its own from FL_MOPT_OWN. */
enum {
    FL_MOPT_ARCH = 256,
    FL_MOPT_TILE,
    FL_MOPT_STEM,
    FL_MOPT_CLASSES,
    FL_MOPT_WIDTH,
    FL_MOPT_BATCH,
    FL_MOPT_THREADS,
    FL_MOPT_DEVICE,
    FL_MOPT_PRECISION,
    FL_MOPT_HELP,
    FL_MOPT_OWN
};

/* Entries of a command's getopt_long table: the model (--arch --tile --stem --classes --width),
 * --batch, and how it runs (--device --precision --threads) with --help. */
/* clang-format off */
#define FL_MOPT_MODEL_ENTRIES                                                                      \
    {"arch", required_argument, 0, FL_MOPT_ARCH},                                                  \
    {"tile", required_argument, 0, FL_MOPT_TILE},                                                  \
    {"stem", required_argument, 0, FL_MOPT_STEM},                                                  \
    {"classes", required_argument, 0, FL_MOPT_CLASSES},                                            \
    {"width", required_argument, 0, FL_MOPT_WIDTH}
#define FL_MOPT_BATCH_ENTRY {"batch", required_argument, 0, FL_MOPT_BATCH}
#define FL_MOPT_RUN_ENTRIES                                                                        \
    {"device", required_argument, 0, FL_MOPT_DEVICE},                                              \
    {"precision", required_argument, 0, FL_MOPT_PRECISION},                                        \
    {"threads", required_argument, 0, FL_MOPT_THREADS},                                            \
    {"help", no_argument, 0, FL_MOPT_HELP}
/* clang-format on */

/* The shared options as parsed; a command reads those its table has. */
typedef struct {
    fl_resnet_config net;   /* --arch --tile --stem --classes --width */
    int batch;              /* --batch; 0 when not given */
    int threads;            /* --threads; 0 when not given (the backend's default) */
    const char *device;     /* --device: "cpu", "cuda" or "cuda:N", borrowed from argv */
    fl_precision precision; /* --precision */
} fl_cli_model_opts;

/* Parses argv[1..argc-1] (argv[0] is the subcommand's name) with getopt_long over longopts:
 * *m is set to the defaults (fl_resnet_config_default, FL_CLI_DEFAULT_DEVICE, fp32, the rest 0),
 * then each shared option is stored into *m, and each of the command's own (a code >=
 * FL_MOPT_OWN) goes to own(code, value, ctx), which stores it and returns 0, or -1 if the value
 * is bad. Returns 0 to run, 1 at --help, or -1 for bad usage, said on stderr as "fedlung <cmd>: "
 * and "unknown option or missing value: ARG", "bad value 'V' for --NAME" or "unexpected argument
 * 'ARG'". */
int fl_cli_model_opts_parse(int argc, char **argv, const char *cmd, const struct option *longopts,
                            fl_cli_model_opts *m,
                            int (*own)(int code, const char *value, void *ctx), void *ctx);

#endif
