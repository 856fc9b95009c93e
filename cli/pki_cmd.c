/* pki_cmd.c - `fedlung pki init|issue|show|verify`: the consortium's CA and certificates from
 * the command line, so that nobody needs openssl's. Parsing and printing only; crypto/pki.c
 * does the work. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../crypto/pki.h"
#include "cli.h"

static const char usage[] =
    "usage: fedlung pki init   --out DIR [--name CN] [--days N] [--force]\n"
    "       fedlung pki issue  --ca DIR --name NAME --server|--client [--san S]... [--days N]\n"
    "                          [--out DIR] [--force]\n"
    "       fedlung pki show   CERT\n"
    "       fedlung pki verify --ca DIR|CA.crt --server|--client CERT\n"
    "\n"
    "init: a consortium CA, DIR/ca.key (0600; keep it offline) and DIR/ca.crt (give it to\n"
    "  everyone). --name is its CN (default \"" FL_PKI_DEFAULT_CA_NAME "\"), --days its\n"
    "  validity (default 3650). Refuses to replace an existing CA without --force.\n"
    "issue: a key (0600) and certificate signed by the CA in --ca, written as OUT/NAME.key and\n"
    "  OUT/NAME.crt (--out defaults to the CA folder). NAME is the CN, the identity the server's\n"
    "  allow-list names: 1-64 of A-Z a-z 0-9 . _ -. --server certificates hold DNS:localhost\n"
    "  and IP:127.0.0.1 and every --san (DNS:host, IP:address, or a bare host or address);\n"
    "  --client certificates only the --san given. --days defaults to 730, or up to the CA's\n"
    "  expiry if that is sooner; a longer --days than the CA has left is refused.\n"
    "show: subject, issuer, validity, role, SANs and SHA-256 fingerprint of a certificate.\n"
    "verify: exit 0 if CERT chains to the CA, is valid now and may act as server or client.\n";

/* Options seen, as bits, so that each subcommand can refuse the ones it does not take. */
enum {
    S_OUT = 1 << 0,
    S_NAME = 1 << 1,
    S_DAYS = 1 << 2,
    S_FORCE = 1 << 3,
    S_CA = 1 << 4,
    S_ROLE = 1 << 5,
    S_SAN = 1 << 6
};

typedef struct {
    const char *out, *name, *ca;
    int days, force;
    fl_pki_role role; /* 0 when neither --server nor --client */
    const char *sans[FL_PKI_MAX_SANS];
    int n_sans;
    unsigned seen;
    const char *arg; /* the one positional argument (show, verify) */
} pki_opts;

enum { O_OUT = 256, O_NAME, O_DAYS, O_FORCE, O_CA, O_SERVER, O_CLIENT, O_SAN, O_HELP };

/* Returns 0, 1 for --help, or -1 after saying what is wrong. */
static int parse(int argc, char **argv, pki_opts *o) {
    static const struct option longopts[] = {
        {"out", required_argument, 0, O_OUT},   {"name", required_argument, 0, O_NAME},
        {"days", required_argument, 0, O_DAYS}, {"force", no_argument, 0, O_FORCE},
        {"ca", required_argument, 0, O_CA},     {"server", no_argument, 0, O_SERVER},
        {"client", no_argument, 0, O_CLIENT},   {"san", required_argument, 0, O_SAN},
        {"help", no_argument, 0, O_HELP},       {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case O_OUT:
            o->out = optarg, o->seen |= S_OUT;
            break;
        case O_NAME:
            o->name = optarg, o->seen |= S_NAME;
            break;
        case O_DAYS:
            bad = fl_parse_int(optarg, 1, FL_PKI_MAX_DAYS, &o->days);
            o->seen |= S_DAYS;
            break;
        case O_FORCE:
            o->force = 1, o->seen |= S_FORCE;
            break;
        case O_CA:
            o->ca = optarg, o->seen |= S_CA;
            break;
        case O_SERVER:
        case O_CLIENT: {
            fl_pki_role r = c == O_SERVER ? FL_PKI_SERVER : FL_PKI_CLIENT;
            if (o->role && o->role != r) {
                fprintf(stderr, "fedlung pki: --server and --client exclude each other\n");
                return -1;
            }
            o->role = r, o->seen |= S_ROLE;
            break;
        }
        case O_SAN:
            if (o->n_sans == FL_PKI_MAX_SANS - 2) {
                fprintf(stderr, "fedlung pki: at most %d --san\n", FL_PKI_MAX_SANS - 2);
                return -1;
            }
            o->sans[o->n_sans++] = optarg, o->seen |= S_SAN;
            break;
        case O_HELP:
            return 1;
        default:
            fprintf(stderr, "fedlung pki: unknown option or missing value: %s\n", argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "fedlung pki: bad value '%s' for --%s\n", optarg, longopts[idx].name);
            return -1;
        }
    }
    if (optind < argc) o->arg = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "fedlung pki: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Usage error unless every option seen is in allowed, every one in required was seen, and a
 * positional argument was given exactly when want_arg. */
static int check_opts(const pki_opts *o, const char *sub, unsigned allowed, unsigned required,
                      int want_arg) {
    static const char *names[] = {
        "--out", "--name", "--days", "--force", "--ca", "--server or --client", "--san"};
    for (int i = 0; i < 7; i++) {
        unsigned b = 1u << i;
        if ((o->seen & b) && !(allowed & b))
            fprintf(stderr, "fedlung pki %s: %s does not apply\n", sub, names[i]);
        else if ((required & b) && !(o->seen & b))
            fprintf(stderr, "fedlung pki %s: %s is required\n", sub, names[i]);
        else
            continue;
        return -1;
    }
    if (want_arg != (o->arg != NULL)) {
        if (o->arg)
            fprintf(stderr, "fedlung pki %s: unexpected argument '%s'\n", sub, o->arg);
        else
            fprintf(stderr, "fedlung pki %s: which certificate?\n", sub);
        return -1;
    }
    return 0;
}

static const char *role_name(unsigned eku, int has_eku) {
    if (!has_eku) return "any (no extendedKeyUsage)";
    return eku == (FL_PKI_SERVER | FL_PKI_CLIENT) ? "server and client (serverAuth, clientAuth)"
           : eku == FL_PKI_SERVER                 ? "server (serverAuth)"
           : eku == FL_PKI_CLIENT                 ? "client (clientAuth)"
                                                  : "neither server nor client";
}

/* Prints what path holds; FL_EXIT_OK or a failure. */
static int print_info(const char *path) {
    fl_err err = {{0}};
    fl_pki_info in;
    if (fl_pki_cert_info(path, &in, &err) != FL_OK) return fl_cli_fail(&err);
    char nb[32], na[32];
    printf("certificate  %s\n", path);
    printf("subject CN   %s\n", in.cn);
    printf("issuer CN    %s\n", in.issuer_cn);
    printf("serial       %s\n", in.serial);
    printf("valid        %s to %s\n", fl_pki_time_str(in.not_before, nb),
           fl_pki_time_str(in.not_after, na));
    printf("CA           %s\n", in.is_ca ? "yes" : "no");
    if (!in.is_ca) printf("role         %s\n", role_name(in.eku, in.has_eku));
    printf("SANs         ");
    for (int i = 0; i < in.n_sans; i++) printf("%s%s", i ? ", " : "", in.sans[i]);
    printf("%s\n", in.n_sans == 0 ? "none" : in.sans_truncated ? ", ..." : "");
    printf("SHA-256      %s\n", in.fingerprint);
    return FL_EXIT_OK;
}

static int cmd_init(const pki_opts *o) {
    if (check_opts(o, "init", S_OUT | S_NAME | S_DAYS | S_FORCE, S_OUT, 0)) return -1;
    fl_err err = {{0}};
    fl_pki_init_opts io = {.name = o->name, .days = o->days, .force = o->force};
    if (fl_pki_init(o->out, &io, &err) != FL_OK) return fl_cli_fail(&err);
    printf("made a consortium CA in %s:\n"
           "  %s/ca.key  its private key (0600): keep it offline, with the coordinator\n"
           "  %s/ca.crt  its certificate: the server and every hospital need a copy\n\n",
           o->out, o->out, o->out);
    char path[4096];
    snprintf(path, sizeof path, "%s/ca.crt", o->out);
    return print_info(path);
}

static int cmd_issue(const pki_opts *o) {
    if (check_opts(o, "issue", S_CA | S_NAME | S_ROLE | S_SAN | S_DAYS | S_OUT | S_FORCE,
                   S_CA | S_NAME | S_ROLE, 0))
        return -1;
    if (!fl_pki_name_valid(o->name)) {
        fprintf(stderr,
                "fedlung pki issue: bad value '%s' for --name: 1 to %d of A-Z a-z 0-9 . _ -, "
                "starting with a letter or digit, and not 'ca'\n",
                o->name, FL_PKI_NAME_MAX);
        return -1;
    }
    fl_err err = {{0}};
    fl_pki_issue_opts io = {.sans = o->sans,
                            .n_sans = o->n_sans,
                            .days = o->days,
                            .out_dir = o->out,
                            .force = o->force};
    if (fl_pki_issue(o->ca, o->name, o->role, &io, &err) != FL_OK) return fl_cli_fail(&err);
    const char *dir = o->out ? o->out : o->ca;
    printf("issued a %s certificate for %s:\n"
           "  %s/%s.key  its private key (0600): for %s alone\n"
           "  %s/%s.crt  its certificate, to go with %s/ca.crt\n\n",
           o->role == FL_PKI_SERVER ? "server" : "client", o->name, dir, o->name, o->name, dir,
           o->name, o->ca);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.crt", dir, o->name);
    return print_info(path);
}

static int cmd_verify(const pki_opts *o) {
    if (check_opts(o, "verify", S_CA | S_ROLE, S_CA | S_ROLE, 1)) return -1;
    char ca[4096];
    struct stat st;
    if (stat(o->ca, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(ca, sizeof ca, "%s/ca.crt", o->ca);
    else
        snprintf(ca, sizeof ca, "%s", o->ca);
    fl_err err = {{0}};
    if (fl_pki_verify(ca, o->arg, o->role, &err) != FL_OK) return fl_cli_fail(&err);
    printf("%s: ok, a %s certificate issued by %s\n", o->arg,
           o->role == FL_PKI_SERVER ? "server" : "client", ca);
    return FL_EXIT_OK;
}

int fl_cmd_pki(int argc, char **argv) {
    if (argc < 2) return fl_cli_usage(usage);
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    pki_opts o;
    int p = parse(argc - 1, argv + 1, &o);
    if (p == 1) {
        fputs(usage, stdout);
        return FL_EXIT_OK;
    }
    int rc = -1;
    if (p == 0) {
        if (strcmp(sub, "init") == 0)
            rc = cmd_init(&o);
        else if (strcmp(sub, "issue") == 0)
            rc = cmd_issue(&o);
        else if (strcmp(sub, "show") == 0)
            rc = check_opts(&o, "show", 0, 0, 1) ? -1 : print_info(o.arg);
        else if (strcmp(sub, "verify") == 0)
            rc = cmd_verify(&o);
        else
            fprintf(stderr, "fedlung pki: unknown subcommand '%s'\n", sub);
    }
    return rc < 0 ? fl_cli_usage(usage) : rc;
}
