/* cli.h - the fedlung command line: each subcommand group is one function taking the
 * arguments after its name. Exit codes: 0 success, 1 failure (one sentence on stderr),
 * 2 bad usage (the usage line on stderr). */
#ifndef FL_CLI_H
#define FL_CLI_H

#include "../common/status.h"
#include "../nn/backend.h"

/* 3: `fedlung server` ran a study that stopped before it was complete (too few hospitals). */
enum { FL_EXIT_OK = 0, FL_EXIT_FAIL = 1, FL_EXIT_USAGE = 2, FL_EXIT_STUDY_STOPPED = 3 };

int fl_cmd_model(int argc, char **argv);
/* `fedlung model opcheck` (model_opcheck.c) and `fedlung model step` (model_step.c); argv[0] is
 * the subcommand's name, as for every subcommand function. */
int fl_cmd_model_opcheck(int argc, char **argv);
int fl_cmd_model_step(int argc, char **argv);
int fl_cmd_demo(int argc, char **argv);
int fl_cmd_train(int argc, char **argv);
int fl_cmd_eval(int argc, char **argv);
int fl_cmd_cohort(int argc, char **argv);
int fl_cmd_explain(int argc, char **argv);
int fl_cmd_pki(int argc, char **argv);
int fl_cmd_audit(int argc, char **argv);
int fl_cmd_privacy(int argc, char **argv);
/* `fedlung plan features` (plan_cmd.c). */
int fl_cmd_plan(int argc, char **argv);
int fl_cmd_server(int argc, char **argv);
int fl_cmd_client(int argc, char **argv);
int fl_cmd_simulate(int argc, char **argv);

/* Prints "fedlung: <msg>" to stderr and returns FL_EXIT_FAIL. */
int fl_cli_fail(const fl_err *err);
/* Prints the usage text to stderr and returns FL_EXIT_USAGE. */
int fl_cli_usage(const char *usage);
/* Strict number parsing for option values; 0 on success, -1 if value is not a number in range. */
int fl_parse_int(const char *value, int lo, int hi, int *out);
int fl_parse_float(const char *value, double lo, double hi, float *out);

/* --device and --precision, shared by every command that trains or runs the model. The default
 * device is "cpu", or "cuda" in the engine-only build (FL_ENGINE_ONLY), which has no CPU
 * backend. */
#ifdef FL_ENGINE_ONLY
#define FL_CLI_DEFAULT_DEVICE "cuda"
#else
#define FL_CLI_DEFAULT_DEVICE "cpu"
#endif
/* 0 if value names a device ("cpu", "cuda" or "cuda:N", N a device ordinal < 1024), setting
 * *out to value (borrowed); -1 otherwise. Whether that device can start is fl_backend_new's to
 * say. */
int fl_cli_parse_device(const char *value, const char **out);
/* 0 if value is "fp32", "tf32" or "bf16", setting *out; -1 otherwise. */
int fl_cli_parse_precision(const char *value, fl_precision *out);
/* "fp32", "tf32" or "bf16". */
const char *fl_cli_precision_name(fl_precision p);
/* 0 if precision p can run on device; otherwise prints "fedlung <cmd>: --precision tf32 needs
 * --device cuda (...)" to stderr and returns -1 (the caller then shows its usage). */
int fl_cli_check_device(const char *cmd, const char *device, fl_precision p);
/* Seconds on a monotonic clock. */
double fl_now(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
long long fl_peak_rss_bytes(void);

#endif
