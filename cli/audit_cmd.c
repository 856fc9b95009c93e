/* audit_cmd.c - `fedlung audit keygen|verify|show|report`: signing keys for audit logs,
 * verification of a log against a public key (and of a hospital's records in the server's log),
 * and a readable table of its records; `report` is cli/audit_report.c. Parsing and printing
 * only; crypto/audit*.c does the work. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../crypto/audit_report.h"
#include "audit_cmds.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung audit keygen --out DIR [--name NAME] [--force]\n"
    "       fedlung audit verify LOG --key KEY.pub [--strict]\n"
    "                            [--inclusion OUTBOX.log --outbox-key OUTBOX.pub]...\n"
    "       fedlung audit show   LOG [--kind K] [--round R]\n"
    "       fedlung audit report LOG --key KEY.pub --out FILE.html\n"
    "                            [--outbox OUTBOX.log --outbox-key OUTBOX.pub]...\n"
    "\n"
    "keygen: an Ed25519 signing key for an audit log: DIR/NAME.key (0600, for the server or\n"
    "  the hospital that writes the log) and DIR/NAME.pub (for whoever verifies it). NAME is\n"
    "  \"server\" by default, 1-64 of A-Z a-z 0-9 . _ -. Refuses to replace a key without "
    "--force.\n"
    "verify: checks every record's hash chain, form and sequence and every checkpoint's\n"
    "  signature with KEY.pub; prints one line. Exit 0 if intact, 1 with the first broken or\n"
    "  altered line. Records after the last checkpoint are reported as not yet signed; with\n"
    "  --strict they make verification fail. --inclusion: LOG is the server's; OUTBOX.log, a\n"
    "  hospital's outbox log, is verified with OUTBOX.pub and each record of it that the server\n"
    "  should have logged (updates by SHA-256, evaluations, refusals) is looked up in LOG and its\n"
    "  RFC 6962 inclusion proof checked under the signed checkpoint; one line per record. Exit 1\n"
    "  also when one is missing or not signed yet.\n"
    "show: the records as a table (seq, time, round, kind, actor, data), optionally only those\n"
    "  of kind K or round R. It does not verify: use `fedlung audit verify` for that.\n"
    "report: verifies LOG (the server's) and each OUTBOX.log, and writes one self-contained HTML\n"
    "  page for privacy officers: the study, rounds, participants, the epsilon each hospital\n"
    "  spent (a chart and a table), refusals and what verification found. Only records a\n"
    "  verified checkpoint signs are shown. Exit 1 also when a log fails verification or an\n"
    "  outbox record is not in LOG (the page is written anyway and says so).\n";

enum {
    O_OUT = 256,
    O_NAME,
    O_FORCE,
    O_KEY,
    O_STRICT,
    O_KIND,
    O_ROUND,
    O_OUTBOX,
    O_INCLUSION,
    O_OUTBOX_KEY,
    O_HELP
};

typedef fl_audit_opts audit_opts;

/* Appends v to list (n entries so far); -1 after saying so when it is full. */
static int push_opt(const char **list, int *n, const char *v) {
    if (*n == FL_AUDIT_MAX_OUTBOX) {
        fprintf(stderr, "fedlung audit: at most %d outbox logs\n", FL_AUDIT_MAX_OUTBOX);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
}

/* Parses the options after the subcommand; the one positional argument goes to o->log.
 * Returns 0, 1 for --help, or -1 after saying what is wrong. */
static int parse(int argc, char **argv, audit_opts *o) {
    static const struct option longopts[] = {{"out", required_argument, 0, O_OUT},
                                             {"name", required_argument, 0, O_NAME},
                                             {"force", no_argument, 0, O_FORCE},
                                             {"key", required_argument, 0, O_KEY},
                                             {"strict", no_argument, 0, O_STRICT},
                                             {"kind", required_argument, 0, O_KIND},
                                             {"round", required_argument, 0, O_ROUND},
                                             {"outbox", required_argument, 0, O_OUTBOX},
                                             {"inclusion", required_argument, 0, O_INCLUSION},
                                             {"outbox-key", required_argument, 0, O_OUTBOX_KEY},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->name = "server";
    optind = 1;
    opterr = 0;
    for (;;) {
        if (optind < argc && argv[optind][0] != '-') { /* the positional argument */
            if (o->log) break;
            o->log = argv[optind++];
            continue;
        }
        int c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1) break;
        switch (c) {
        case O_OUT:
            o->out = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_FORCE:
            o->force = 1;
            break;
        case O_KEY:
            o->key = optarg;
            break;
        case O_STRICT:
            o->strict = 1;
            break;
        case O_KIND:
            o->kind = optarg;
            break;
        case O_ROUND:
            if (fl_parse_int(optarg, -1, 1 << 30, &o->round) != 0) {
                fprintf(stderr, "fedlung audit: --round must be an integer >= -1\n");
                return -1;
            }
            o->has_round = 1;
            break;
        case O_INCLUSION:
            o->inclusion++;
            /* fall through */
        case O_OUTBOX:
            if (push_opt(o->outbox, &o->n_outbox, optarg) != 0) return -1;
            break;
        case O_OUTBOX_KEY:
            if (push_opt(o->outbox_key, &o->n_outbox_key, optarg) != 0) return -1;
            break;
        case 'h':
        case O_HELP:
            return 1;
        default:
            fprintf(stderr, "fedlung audit: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc && !o->log) o->log = argv[optind++]; /* after "--" */
    if (optind < argc) {
        fprintf(stderr, "fedlung audit: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static int name_valid(const char *name) {
    size_t n = strlen(name);
    return n >= 1 && n <= 64 && name[0] != '.' && name[0] != '-' &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Whether o has an option that only verify and report take. */
static int has_outbox(const audit_opts *o) {
    return o->n_outbox || o->n_outbox_key;
}

static int cmd_keygen(const audit_opts *o) {
    if (!o->out || o->log || !name_valid(o->name) || has_outbox(o)) return fl_cli_usage(usage);
    fl_err err = {{0}};
    if (mkdir(o->out, 0700) != 0 && errno != EEXIST) {
        fl_fail(&err, FL_EIO, "%s: cannot create the folder: %s", o->out, strerror(errno));
        return fl_cli_fail(&err);
    }
    char key_path[4096], pub_path[4096];
    snprintf(key_path, sizeof key_path, "%s/%s.key", o->out, o->name);
    snprintf(pub_path, sizeof pub_path, "%s/%s.pub", o->out, o->name);
    struct stat st;
    if (!o->force && (stat(key_path, &st) == 0 || stat(pub_path, &st) == 0)) {
        fl_fail(&err, FL_EINVAL,
                "%s: a key is already there; a log signed with it could no longer be extended "
                "(use --force to replace it anyway)",
                stat(key_path, &st) == 0 ? key_path : pub_path);
        return fl_cli_fail(&err);
    }
    fl_sign_key *k = NULL;
    fl_status s = fl_sign_key_generate(&k, &err);
    if (s == FL_OK) s = fl_sign_key_save_private(k, key_path, &err);
    if (s == FL_OK) s = fl_sign_key_save_public(k, pub_path, &err);
    char id[FL_SHA256_HEX] = "";
    if (s == FL_OK) fl_sign_key_id(k, id);
    fl_sign_key_free(k);
    if (s != FL_OK) return fl_cli_fail(&err);
    printf("%s (private, 0600) and %s; key id %s\n", key_path, pub_path, id);
    return FL_EXIT_OK;
}

/* Copies s into out (cap bytes) for a table cell: control characters as '?', cut at cap - 1
 * bytes without splitting a UTF-8 sequence. */
static const char *cell(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++) {
        unsigned char c = (unsigned char)s[n];
        out[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (s[n])
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80) n--; /* a continuation byte */
    out[n] = '\0';
    return out;
}

/* Prints verify's one line about the log at path; returns whether it is intact. */
static int print_verdict(const char *path, const fl_audit_report *r, const char *key_id) {
    if (r->bad_line) {
        printf("%s: BROKEN at line %" PRId64 ": %s (%" PRId64 " records and %" PRId64
               " checkpoints verified before it)\n",
               path, r->bad_line, r->problem, r->records, r->checkpoints);
        return 0;
    }
    printf("%s: intact: %" PRId64 " record%s, %" PRId64 " signed checkpoint%s (key %.16s...)", path,
           r->records, r->records == 1 ? "" : "s", r->checkpoints, r->checkpoints == 1 ? "" : "s",
           key_id);
    if (r->last_checkpoint_seq)
        printf("; last checkpoint line %" PRId64 " sha256 %s", r->last_checkpoint_seq,
               r->last_checkpoint);
    if (r->unsigned_records == 1)
        printf("; WARNING: line %" PRId64 " is not signed yet", r->records);
    else if (r->unsigned_records > 1)
        printf("; WARNING: lines %" PRId64 "-%" PRId64 " are not signed yet",
               r->last_checkpoint_seq + 1, r->records);
    printf("\n");
    return 1;
}

typedef struct {
    const char *server_log;
    int64_t checked, included;
} inclusion_ctx;

/* One line per outbox record the server should have logged. */
static int print_inclusion(const fl_audit_inclusion *inc, void *arg) {
    inclusion_ctx *c = arg;
    const fl_audit_record *r = inc->sent;
    const fl_audit_proof *p = inc->proof;
    char root[17] = "", actor[41], expect[sizeof inc->expect], note[sizeof inc->note];
    c->checked++;
    c->included += inc->status == FL_AUDIT_INCLUDED;
    if (p) fl_hex_encode(p->root, 8, root);
    printf("  line %" PRId64 " %s round %" PRId64 " (%s): %s", r->line, r->kind, r->round,
           cell(r->actor, actor, sizeof actor), fl_audit_inclusion_status_str(inc->status));
    if (inc->status == FL_AUDIT_MISSING)
        printf(": %s has no %s%s%s\n", c->server_log, cell(inc->expect, expect, sizeof expect),
               inc->note[0] ? "; " : "", cell(inc->note, note, sizeof note));
    else if (inc->status == FL_AUDIT_UNSIGNED)
        printf(": %s line %" PRId64 ", after its last checkpoint\n", c->server_log,
               inc->server_line);
    else
        printf(": %s line %" PRId64 ", leaf %" PRIu64 " of %" PRIu64 " under the checkpoint at "
               "line %" PRId64 " (merkle_root %s...), proof of %zu hash%s %s\n",
               c->server_log, inc->server_line, p->index, p->size, p->checkpoint, root, p->path_len,
               p->path_len == 1 ? "" : "es",
               inc->status == FL_AUDIT_INCLUDED ? "verified" : "does NOT verify");
    return 0;
}

/* verify --inclusion: the outbox logs' records in the server's log o->log (key pub). Returns
 * whether every log is intact and every record included; -1 on an error, said in err. */
static int check_outboxes(const audit_opts *o, const fl_sign_key *pub, fl_err *err) {
    int all = 1;
    for (int i = 0; i < o->n_outbox; i++) {
        fl_sign_key *okey = NULL;
        if (fl_sign_key_load_public(o->outbox_key[i], &okey, err) != FL_OK) return -1;
        fl_audit_report sr, orep;
        inclusion_ctx c = {o->log, 0, 0};
        char id[FL_SHA256_HEX];
        fl_sign_key_id(okey, id);
        /* the outbox log's verdict comes first: the lines below are about its records */
        fl_status s = fl_audit_verify(o->outbox[i], okey, &orep, err);
        if (s == FL_OK)
            all &= print_verdict(o->outbox[i], &orep, id) && !(o->strict && orep.unsigned_records);
        if (s == FL_OK)
            s = fl_audit_check_inclusion(o->log, pub, o->outbox[i], okey, print_inclusion, &c, &sr,
                                         &orep, err);
        fl_sign_key_free(okey);
        if (s != FL_OK) return -1;
        printf("%s: %" PRId64 " of %" PRId64 " records the server should have logged are "
               "included in %s under a signed checkpoint\n",
               o->outbox[i], c.included, c.checked, o->log);
        all &= c.included == c.checked;
    }
    return all;
}

static int cmd_verify(const audit_opts *o) {
    if (!o->log || !o->key || o->out || o->kind || o->has_round || o->force ||
        o->n_outbox != o->inclusion || o->n_outbox_key != o->n_outbox)
        return fl_cli_usage(usage);
    fl_err err = {{0}};
    fl_sign_key *pub = NULL;
    if (fl_sign_key_load_public(o->key, &pub, &err) != FL_OK) return fl_cli_fail(&err);
    fl_audit_report r;
    char id[FL_SHA256_HEX];
    fl_sign_key_id(pub, id);
    fl_status s = fl_audit_verify(o->log, pub, &r, &err);
    int ok = s == FL_OK && print_verdict(o->log, &r, id) && !(o->strict && r.unsigned_records);
    int included = s == FL_OK ? check_outboxes(o, pub, &err) : 1;
    fl_sign_key_free(pub);
    if (s != FL_OK || included < 0) return fl_cli_fail(&err);
    return ok && included ? FL_EXIT_OK : FL_EXIT_FAIL;
}

typedef struct {
    const audit_opts *o;
    int64_t shown, unparseable;
} show_ctx;

static int show_row(const fl_audit_record *r, const char *problem, void *arg) {
    show_ctx *c = arg;
    if (problem) {
        printf("%5s  line %" PRId64 " does not parse: %s\n", "?", r->line, problem);
        c->unparseable++;
        return 0;
    }
    if (c->o->kind && strcmp(r->kind, c->o->kind) != 0) return 0;
    if (c->o->has_round && r->round != c->o->round) return 0;
    char round[24], actor[17], data[96];
    if (r->round < 0)
        snprintf(round, sizeof round, "-");
    else
        snprintf(round, sizeof round, "%" PRId64, r->round);
    fl_audit_data_summary(r->data, data, sizeof data);
    printf("%5" PRId64 "  %-20s  %5s  %-16s  %-16s  %s\n", r->seq, r->time, round, r->kind,
           cell(r->actor, actor, sizeof actor), data);
    c->shown++;
    return 0;
}

static int cmd_show(const audit_opts *o) {
    if (!o->log || o->key || o->out || o->force || o->strict || has_outbox(o))
        return fl_cli_usage(usage);
    show_ctx c = {o, 0, 0};
    printf("%5s  %-20s  %5s  %-16s  %-16s  %s\n", "seq", "time (UTC)", "round", "kind", "actor",
           "data");
    fl_err err = {{0}};
    if (fl_audit_foreach(o->log, show_row, &c, &err) != FL_OK) return fl_cli_fail(&err);
    if (c.unparseable) {
        fprintf(stderr, "fedlung: %s: %" PRId64 " line%s do%s not parse\n", o->log, c.unparseable,
                c.unparseable == 1 ? "" : "s", c.unparseable == 1 ? "es" : "");
        return FL_EXIT_FAIL;
    }
    return FL_EXIT_OK;
}

static int cmd_report(const audit_opts *o) {
    if (!o->log || !o->key || !o->out || o->inclusion || o->n_outbox != o->n_outbox_key ||
        o->kind || o->has_round || o->force || o->strict)
        return fl_cli_usage(usage);
    return fl_cmd_audit_report(o);
}

int fl_cmd_audit(int argc, char **argv) {
    if (argc < 2) return fl_cli_usage(usage);
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    audit_opts o;
    int p = parse(argc - 1, argv + 1, &o);
    if (p == 1) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    if (p < 0) return fl_cli_usage(usage);
    if (!strcmp(sub, "keygen")) return cmd_keygen(&o);
    if (!strcmp(sub, "verify")) return cmd_verify(&o);
    if (!strcmp(sub, "show")) return cmd_show(&o);
    if (!strcmp(sub, "report")) return cmd_report(&o);
    fprintf(stderr, "fedlung audit: unknown subcommand '%s'\n", sub);
    return fl_cli_usage(usage);
}
