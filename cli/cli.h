/* cli.h - the fedlung command line: each subcommand group is one function taking the
 * arguments after its name. Exit codes: 0 success, 1 failure (one sentence on stderr),
 * 2 bad usage (the usage line on stderr). */
#ifndef FL_CLI_H
#define FL_CLI_H

#include "../common/status.h"

/* 3: `fedlung server` ran a study that stopped before it was complete (too few hospitals). */
enum { FL_EXIT_OK = 0, FL_EXIT_FAIL = 1, FL_EXIT_USAGE = 2, FL_EXIT_STUDY_STOPPED = 3 };

int fl_cmd_model(int argc, char **argv);
int fl_cmd_demo(int argc, char **argv);
int fl_cmd_train(int argc, char **argv);
int fl_cmd_eval(int argc, char **argv);
int fl_cmd_cohort(int argc, char **argv);
int fl_cmd_explain(int argc, char **argv);
int fl_cmd_pki(int argc, char **argv);
int fl_cmd_audit(int argc, char **argv);
int fl_cmd_privacy(int argc, char **argv);
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
/* Seconds on a monotonic clock. */
double fl_now(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
long long fl_peak_rss_bytes(void);

#endif
