/* explain_cmds.h - the `fedlung explain` subcommands (argv[0] is the subcommand's name). */
#ifndef FL_EXPLAIN_CMDS_H
#define FL_EXPLAIN_CMDS_H

#endif
