/* explain_cmds.h - the `fedlung explain` subcommands (argv[0] is the subcommand's name). */
#ifndef FL_EXPLAIN_CMDS_H
#define FL_EXPLAIN_CMDS_H

int fl_cmd_explain_cam(int argc, char **argv);
int fl_cmd_explain_umap(int argc, char **argv);

#endif
