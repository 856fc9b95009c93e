/* audit_report.h - the two audit logs read together: whether what a hospital's outbox log says
 * left the hospital is in the server's log, each match shown by its RFC 6962 inclusion proof
 * under a signed checkpoint (`fedlung audit verify --inclusion`, `fedlung audit report`). Not
 * the verification of one log (audit.h) and not a renderer (cli/audit_report.c). */
#ifndef FL_AUDIT_REPORT_H
#define FL_AUDIT_REPORT_H

#include "audit.h"

typedef enum {
    FL_AUDIT_INCLUDED,  /* in the server log, and its proof verifies under a signed checkpoint */
    FL_AUDIT_UNSIGNED,  /* in the server log after its last good checkpoint: nothing signs it */
    FL_AUDIT_MISSING,   /* not in the verified part of the server log */
    FL_AUDIT_BAD_PROOF, /* found, but its inclusion proof does not verify (never expected) */
} fl_audit_inclusion_status;

/* Returns "included", "not signed", "MISSING" or "BAD PROOF". */
const char *fl_audit_inclusion_status_str(fl_audit_inclusion_status s);

/* One outbox record that the server should have logged, and what was found. Valid during the
 * callback that receives it. */
typedef struct {
    const fl_audit_record *sent; /* the outbox record */
    char expect[400];            /* what the server should have logged, as a phrase */
    fl_audit_inclusion_status status;
    int64_t server_line;         /* the server's record, 0 when MISSING */
    const fl_audit_proof *proof; /* its place under the checkpoint (checkpoint 0: unsigned) */
    char note[400];              /* for MISSING: what the server logged instead, or "" */
} fl_audit_inclusion;

/* Verifies the server log (server_pub) and the outbox log (outbox_pub) as fl_audit_walk does
 * into *server_report and *outbox_report, then calls fn for every verified outbox record that
 * has a counterpart the server logs, in order:
 *   - one with a "sha256" in its data (an update, statistics): the server's "update_accepted"
 *     record of the same actor with the same sha256;
 *   - "eval": the server's "evaluation" record of the same actor and round (the server logs no
 *     hash of an evaluation, so this match is by round only);
 *   - "refused": the server's "refused" record of the same actor whose refused_round is the
 *     record's round.
 * A found record's inclusion proof is checked with fl_merkle_inclusion_verify against its
 * checkpoint's merkle_root. Only the verified part of the server log is searched. fn returns 0,
 * or -1 to stop (FL_ENOMEM). Returns FL_OK whenever both files could be read (see the reports'
 * bad_line), FL_ENOTFOUND / FL_EIO, FL_ENOMEM. */
fl_status fl_audit_check_inclusion(const char *server_log, const fl_sign_key *server_pub,
                                   const char *outbox_log, const fl_sign_key *outbox_pub,
                                   int (*fn)(const fl_audit_inclusion *inc, void *ctx), void *ctx,
                                   fl_audit_report *server_report, fl_audit_report *outbox_report,
                                   fl_err *err);

#endif
