/* audit_cmds.h - what the `fedlung audit` dispatcher (cli/audit_cmd.c) shares with the
 * subcommand that lives beside it: the parsed options and `report` (cli/audit_report.c). */
#ifndef FL_AUDIT_CMDS_H
#define FL_AUDIT_CMDS_H

#define FL_AUDIT_MAX_OUTBOX 64 /* --outbox / --inclusion logs in one command */

/* The options of every audit subcommand; each checks that it got only its own. */
typedef struct {
    const char *out, *name, *key, *kind, *log;
    int force, strict, has_round;
    int round;
    const char *outbox[FL_AUDIT_MAX_OUTBOX];     /* --outbox (report) or --inclusion (verify) */
    const char *outbox_key[FL_AUDIT_MAX_OUTBOX]; /* --outbox-key, the i-th for the i-th log */
    int n_outbox, n_outbox_key;
    int inclusion; /* how many of outbox[] came as --inclusion */
} fl_audit_opts;

/* `fedlung audit report LOG --key KEY.pub --out FILE.html [--outbox H.log --outbox-key H.pub]...`
 * with its options checked (o->log, o->key, o->out set; as many outbox keys as logs): an exit
 * code of cli.h, 1 also when a log fails verification or an outbox record is missing from the
 * server log (the page is written anyway and says so). */
int fl_cmd_audit_report(const fl_audit_opts *o);

#endif
