/* test_pki.c - crypto/pki.h: a CA and its server and client certificates, checked with
 * OpenSSL's own X509_verify_cert and extension readers rather than with pki.c's, key modes,
 * names and SANs, refusals (existing files, bad names, bad SANs), and fl_pki_verify's verdicts
 * on expired, rogue-CA and wrong-role certificates. The TLS handshake itself is
 * tests/check_pki_openssl.sh's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../crypto/pki.h"
#include "harness.h"

/* fl_test_dir/a/b written into buf (512 bytes; fl_test_path's four rotate). */
static char *path2(char *buf, const char *a, const char *b) {
    snprintf(buf, 512, "%s/%s/%s", fl_test_dir, a, b);
    return buf;
}

/* The first PEM certificate (key 0, an X509 *) or private key (key 1, an EVP_PKEY *) of path;
 * failing to read it fails the test. */
static void *load_pem(const char *path, int key) {
    FILE *f = fopen(path, "rb");
    void *p = !f    ? NULL
              : key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
                    : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    if (f) fclose(f);
    if (!p) fl_test_fail_at(__FILE__, __LINE__, "cannot read %s", path);
    return p;
}
#define load_crt(path) ((X509 *)load_pem(path, 0))
#define load_key(path) ((EVP_PKEY *)load_pem(path, 1))

static int file_mode(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* OpenSSL's verdict on crt under ca for purpose (X509_PURPOSE_SSL_*): its error code, 0 if
 * it verifies. */
static int openssl_verify(X509 *ca, X509 *crt, int purpose) {
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_add_cert(st, ca);
    X509_STORE_CTX_init(ctx, st, crt, NULL);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx) == 1, e = ok ? 0 : X509_STORE_CTX_get_error(ctx);
    if (!ok && !e) e = -1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return e;
}

static int is_p256(EVP_PKEY *k) {
    char group[64] = "";
    size_t n = 0;
    return EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_group_name(k, group, sizeof group, &n) &&
           strcmp(group, "prime256v1") == 0;
}

static void test_ca(const char *ca_dir) {
    fl_err err = {{0}};
    char b[512];
    fl_pki_init_opts o = {.name = "Test consortium CA", .days = 30};
    CHECK_OK(fl_pki_init(ca_dir, &o, &err), &err);
    CHECK_EQ_INT(file_mode(path2(b, "ca", "ca.key")), 0600);
    CHECK_EQ_INT(file_mode(fl_test_path("ca")), 0700);
    X509 *ca = load_crt(path2(b, "ca", "ca.crt"));
    EVP_PKEY *key = load_key(path2(b, "ca", "ca.key"));
    if (!ca || !key) goto done;
    CHECK(is_p256(key));
    CHECK_EQ_INT(X509_check_private_key(ca, key), 1);
    CHECK_EQ_INT(X509_check_ca(ca), 1);
    int i = X509_get_ext_by_NID(ca, NID_basic_constraints, -1);
    CHECK(i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(ca, i)) == 1);
    CHECK_EQ_INT(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    CHECK(X509_get0_subject_key_id(ca) != NULL);
    CHECK_EQ_INT(X509_check_issued(ca, ca), X509_V_OK); /* self-signed */
    CHECK_EQ_INT(openssl_verify(ca, ca, X509_PURPOSE_ANY), 0);
    fl_pki_info in;
    CHECK_OK(fl_pki_cert_info(path2(b, "ca", "ca.crt"), &in, &err), &err);
    CHECK(strcmp(in.cn, "Test consortium CA") == 0);
    CHECK(strcmp(in.issuer_cn, "Test consortium CA") == 0);
    CHECK(in.is_ca);
    CHECK_CLOSE((double)(in.not_after - in.not_before), 30 * 86400.0 + 3600, 0, 2);
    CHECK(in.not_before <= (long long)time(NULL));

    /* A second init refuses; with force it makes a new CA. */
    char before[96];
    memcpy(before, in.fingerprint, sizeof before);
    CHECK_FAILS(fl_pki_init(ca_dir, &o, &err), err, ca_dir);
    CHECK_MSG(err, "force");
    fl_pki_init_opts bad = {.name = "line\nbreak"};
    CHECK_FAILS(fl_pki_init(fl_test_path("ca-bad"), &bad, &err), err, "CA name");
    CHECK(!fl_test_file_exists(fl_test_path("ca-bad")));
    o.force = 1;
    CHECK_OK(fl_pki_init(ca_dir, &o, &err), &err);
    CHECK_OK(fl_pki_cert_info(path2(b, "ca", "ca.crt"), &in, &err), &err);
    CHECK(strcmp(before, in.fingerprint) != 0);
done:
    X509_free(ca);
    EVP_PKEY_free(key);
}

/* Whether info lists san. */
static int has_san(const fl_pki_info *in, const char *san) {
    for (int i = 0; i < in->n_sans; i++)
        if (strcmp(in->sans[i], san) == 0) return 1;
    return 0;
}

static void test_issue(const char *ca_dir) {
    fl_err err = {{0}};
    char b[512], b2[512];
    const char *sans[] = {"fl.example.org", "IP:10.0.0.5", "DNS:LOCALHOST", "::1",
                          "*.hospital.example"};
    fl_pki_issue_opts so = {.sans = sans, .n_sans = 5, .out_dir = fl_test_dir};
    CHECK_OK(fl_pki_issue(ca_dir, "fl-server", FL_PKI_SERVER, &so, &err), &err);
    fl_pki_issue_opts co = {.days = 10, .out_dir = fl_test_dir};
    CHECK_OK(fl_pki_issue(ca_dir, "hospital_A.1", FL_PKI_CLIENT, &co, &err), &err);
    CHECK_EQ_INT(file_mode(fl_test_path("fl-server.key")), 0600);
    CHECK_EQ_INT(file_mode(fl_test_path("hospital_A.1.key")), 0600);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);

    X509 *ca = load_crt(path2(b, "ca", "ca.crt"));
    X509 *srv = load_crt(fl_test_path("fl-server.crt"));
    X509 *cli = load_crt(fl_test_path("hospital_A.1.crt"));
    EVP_PKEY *skey = load_key(fl_test_path("fl-server.key"));
    if (!ca || !srv || !cli || !skey) goto done;

    /* OpenSSL's own chain, validity and purpose checks. */
    CHECK_EQ_INT(openssl_verify(ca, srv, X509_PURPOSE_SSL_SERVER), 0);
    CHECK_EQ_INT(openssl_verify(ca, cli, X509_PURPOSE_SSL_CLIENT), 0);
    CHECK_EQ_INT(openssl_verify(ca, srv, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_INVALID_PURPOSE);
    CHECK_EQ_INT(openssl_verify(ca, cli, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
    CHECK(is_p256(skey));
    CHECK_EQ_INT(X509_check_private_key(srv, skey), 1);
    CHECK_EQ_INT(X509_check_ca(srv), 0);
    CHECK_EQ_INT(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
    CHECK_EQ_INT(X509_get_extended_key_usage(cli), XKU_SSL_CLIENT);
    CHECK_EQ_INT(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(srv);
    CHECK(aki && ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca)) == 0);
    CHECK_EQ_INT(X509_check_host(srv, "fl.example.org", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_host(srv, "ward.hospital.example", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
    CHECK_EQ_INT(X509_check_ip_asc(srv, "10.0.0.5", 0), 1);
    CHECK_EQ_INT(X509_check_ip_asc(srv, "::1", 0), 1);
    CHECK_EQ_INT(X509_check_host(cli, "localhost", 0, 0, NULL), 0);
    /* 128-bit random serials. */
    BIGNUM *s1 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(srv), NULL);
    BIGNUM *s2 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cli), NULL);
    CHECK(BN_num_bits(s1) <= 128 && BN_num_bits(s1) > 64);
    CHECK(BN_cmp(s1, s2) != 0);
    BN_free(s1);
    BN_free(s2);

    /* What fl_pki_cert_info reads. */
    fl_pki_info in;
    CHECK_OK(fl_pki_cert_info(fl_test_path("fl-server.crt"), &in, &err), &err);
    CHECK(strcmp(in.cn, "fl-server") == 0);
    CHECK(strcmp(in.issuer_cn, "Test consortium CA") == 0);
    CHECK(!in.is_ca && in.has_eku && in.eku == FL_PKI_SERVER);
    CHECK_EQ_INT(in.n_sans, 6); /* DNS:LOCALHOST duplicates DNS:localhost */
    CHECK(strcmp(in.sans[0], "DNS:localhost") == 0 && strcmp(in.sans[1], "IP:127.0.0.1") == 0);
    CHECK(has_san(&in, "DNS:fl.example.org") && has_san(&in, "IP:10.0.0.5"));
    CHECK(has_san(&in, "IP:::1") && has_san(&in, "DNS:*.hospital.example"));
    fl_pki_info ca_in; /* the CA has 30 days: the default 730 stop where the CA's do */
    CHECK_OK(fl_pki_cert_info(path2(b, "ca", "ca.crt"), &ca_in, &err), &err);
    CHECK_EQ_INT(in.not_after, ca_in.not_after);
    unsigned char md[32];
    unsigned int mdlen = 0;
    X509_digest(srv, EVP_sha256(), md, &mdlen);
    CHECK(mdlen == 32 && memcmp(md, in.sha256, 32) == 0);
    char hex[4];
    snprintf(hex, sizeof hex, "%02X:", md[0]);
    CHECK(strncmp(in.fingerprint, hex, 3) == 0 && strlen(in.fingerprint) == 95);
    char *pem = fl_test_read_file(fl_test_path("fl-server.crt"), NULL);
    fl_pki_info from_pem;
    CHECK_OK(fl_pki_cert_info_pem(pem, pem ? strlen(pem) : 0, "peer", &from_pem, &err), &err);
    CHECK(memcmp(&from_pem, &in, sizeof in) == 0);
    free(pem);
    CHECK_OK(fl_pki_cert_info(fl_test_path("hospital_A.1.crt"), &in, &err), &err);
    CHECK(strcmp(in.cn, "hospital_A.1") == 0 && in.eku == FL_PKI_CLIENT && in.n_sans == 0);
    CHECK_CLOSE((double)(in.not_after - in.not_before), 10 * 86400.0 + 3600, 0, 2);

    /* fl_pki_verify: the right roles pass, the wrong ones fail on the EKU. */
    const char *ca_crt = path2(b2, "ca", "ca.crt");
    CHECK_OK(fl_pki_verify(ca_crt, fl_test_path("fl-server.crt"), FL_PKI_SERVER, &err), &err);
    CHECK_OK(fl_pki_verify(ca_crt, fl_test_path("hospital_A.1.crt"), FL_PKI_CLIENT, &err), &err);
    CHECK_FAILS(fl_pki_verify(ca_crt, fl_test_path("fl-server.crt"), FL_PKI_CLIENT, &err), err,
                "fl-server.crt");
    CHECK_MSG(err, "serverAuth");
    CHECK_FAILS(fl_pki_verify(ca_crt, fl_test_path("hospital_A.1.crt"), FL_PKI_SERVER, &err), err,
                "clientAuth");
    CHECK_FAILS(fl_pki_verify(ca_crt, ca_crt, FL_PKI_CLIENT, &err), err, "ca.crt");

    /* Existing files are kept unless forced. */
    CHECK_FAILS(fl_pki_issue(ca_dir, "hospital_A.1", FL_PKI_CLIENT, &co, &err), err,
                "hospital_A.1.key");
    X509 *kept = load_crt(fl_test_path("hospital_A.1.crt"));
    CHECK(kept && X509_cmp(cli, kept) == 0);
    X509_free(kept);
    co.force = 1;
    CHECK_OK(fl_pki_issue(ca_dir, "hospital_A.1", FL_PKI_CLIENT, &co, &err), &err);
    CHECK_EQ_INT(file_mode(fl_test_path("hospital_A.1.key")), 0600);
done:
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(skey);
}

static void test_refusals(const char *ca_dir) {
    fl_err err = {{0}};
    char b[512];
    fl_pki_issue_opts o = {.out_dir = fl_test_dir};
    static const char *bad_names[] = {
        "",
        "../evil",
        "a/b",
        "with space",
        "-dash",
        ".hidden",
        "ca",
        "ünï",
        "semi;colon",
        "x\n",
        "a2345678901234567890123456789012345678901234567890123456789012345" /* 65 */};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        CHECK(!fl_pki_name_valid(bad_names[i]));
        CHECK_FAILS(fl_pki_issue(ca_dir, bad_names[i], FL_PKI_CLIENT, &o, &err), err, bad_names[i]);
    }
    CHECK(fl_pki_name_valid("a234567890123456789012345678901234567890123456789012345678901234"));
    CHECK(fl_pki_name_valid("Hospital-7.lung_unit"));
    CHECK(!fl_test_file_exists(fl_test_path("a/b.key")));
    CHECK(!fl_test_file_exists(fl_test_path(".key")));

    static const char *bad_sans[] = {"DNS:bad_host", "IP:300.1.1.1", "IP:example.org",
                                     "a..b",         "-a.org",       "x,DNS:evil.org"};
    for (size_t i = 0; i < sizeof bad_sans / sizeof bad_sans[0]; i++) {
        fl_pki_issue_opts so = {.sans = &bad_sans[i], .n_sans = 1, .out_dir = fl_test_dir};
        CHECK_FAILS(fl_pki_issue(ca_dir, "s", FL_PKI_SERVER, &so, &err), err, bad_sans[i]);
        CHECK(!fl_test_file_exists(fl_test_path("s.key")));
    }
    CHECK_FAILS(fl_pki_issue(ca_dir, "r", (fl_pki_role)3, &o, &err), err, "role");
    fl_pki_issue_opts longer = {.days = 31, .out_dir = fl_test_dir}; /* the CA has 30 */
    CHECK_FAILS(fl_pki_issue(ca_dir, "long", FL_PKI_CLIENT, &longer, &err), err, "ca.crt");
    fl_pki_issue_opts neg = {.days = -1, .out_dir = fl_test_dir};
    CHECK_FAILS(fl_pki_issue(ca_dir, "neg", FL_PKI_CLIENT, &neg, &err), err, "-1 days");
    CHECK_FAILS(fl_pki_issue(fl_test_path("no-ca"), "x", FL_PKI_CLIENT, &o, &err), err,
                "no-ca/ca.crt");
    CHECK(!fl_test_file_exists(fl_test_path("x.key")));

    /* A CA key that is not the CA certificate's. */
    CHECK_OK(fl_pki_init(fl_test_path("ca2"), NULL, &err), &err);
    char *other = fl_test_read_file(path2(b, "ca2", "ca.key"), NULL);
    char *mine = fl_test_read_file(path2(b, "ca", "ca.key"), NULL);
    if (other && mine) {
        fl_test_write_file(path2(b, "ca", "ca.key"), other, strlen(other));
        CHECK_FAILS(fl_pki_issue(ca_dir, "x", FL_PKI_CLIENT, &o, &err), err, "ca.key");
        CHECK_MSG(err, "does not belong");
        fl_test_write_file(path2(b, "ca", "ca.key"), mine, strlen(mine));
    }
    free(other);
    free(mine);

    /* Files that are not certificates. */
    fl_pki_info in;
    fl_test_write_file(fl_test_path("junk.crt"), "not a certificate\n", 18);
    fl_status s = fl_pki_cert_info(fl_test_path("junk.crt"), &in, &err);
    CHECK_EQ_INT(s, FL_EFORMAT);
    CHECK_MSG(err, "junk.crt");
    CHECK_EQ_INT(fl_pki_cert_info(fl_test_path("missing.crt"), &in, &err), FL_ENOTFOUND);
    CHECK_EQ_INT(fl_pki_cert_info_pem("junk", 4, "peer certificate", &in, &err), FL_EFORMAT);
    CHECK_MSG(err, "peer certificate");
}

/* Expired and not-yet-valid certificates, and a rogue CA's. */
static void test_verdicts(const char *ca_dir) {
    fl_err err = {{0}};
    char b[512], b2[512];
    const char *ca_crt = path2(b2, "ca", "ca.crt");
    long long now = (long long)time(NULL);
    fl_pki_issue_opts old = {
        .not_before = now - 20 * 86400LL, .not_after = now - 86400, .out_dir = fl_test_dir};
    CHECK_OK(fl_pki_issue(ca_dir, "expired", FL_PKI_CLIENT, &old, &err), &err);
    CHECK_FAILS(fl_pki_verify(ca_crt, fl_test_path("expired.crt"), FL_PKI_CLIENT, &err), err,
                "expired.crt");
    CHECK_MSG(err, "expired");
    X509 *ca = load_crt(ca_crt), *x = load_crt(fl_test_path("expired.crt"));
    if (ca && x)
        CHECK_EQ_INT(openssl_verify(ca, x, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_HAS_EXPIRED);
    X509_free(x);

    fl_pki_issue_opts later = {
        .not_before = now + 86400, .not_after = now + 2 * 86400, .out_dir = fl_test_dir};
    CHECK_OK(fl_pki_issue(ca_dir, "later", FL_PKI_CLIENT, &later, &err), &err);
    CHECK_FAILS(fl_pki_verify(ca_crt, fl_test_path("later.crt"), FL_PKI_CLIENT, &err), err,
                "later.crt");
    CHECK_MSG(err, "not yet valid");
    fl_pki_issue_opts backwards = {.not_before = now, .not_after = now - 1};
    CHECK_FAILS(fl_pki_issue(ca_dir, "bw", FL_PKI_CLIENT, &backwards, &err), err, "bw");

    /* A rogue CA issues a certificate with the same CN. */
    const char *rogue = fl_test_path("rogue");
    CHECK_OK(fl_pki_init(rogue, NULL, &err), &err);
    CHECK_OK(fl_pki_issue(rogue, "hospital_A.1", FL_PKI_CLIENT, NULL, &err), &err);
    const char *rcrt = path2(b, "rogue", "hospital_A.1.crt");
    CHECK_FAILS(fl_pki_verify(ca_crt, rcrt, FL_PKI_CLIENT, &err), err, rcrt);
    CHECK_MSG(err, "not issued by the CA");
    x = load_crt(rcrt);
    if (ca && x) CHECK(openssl_verify(ca, x, X509_PURPOSE_SSL_CLIENT) != 0);
    X509_free(x);
    X509_free(ca);
    CHECK_OK(fl_pki_verify(path2(b2, "rogue", "ca.crt"), rcrt, FL_PKI_CLIENT, &err), &err);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_pki_")) return 1;
    char ca_dir[512];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", fl_test_dir);
    test_ca(ca_dir);
    test_issue(ca_dir);
    test_refusals(ca_dir);
    test_verdicts(ca_dir);
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_pki");
}
