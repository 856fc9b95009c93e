/* test_cert_sign.c - crypto/cert_sign.h: a hospital's ECDSA signature with its TLS key verifies
 * under the consortium CA, and each thing that must not verify is refused with its reason: a
 * certificate of another CA, an expired or not yet valid one, a serverAuth-only one, one without
 * extendedKeyUsage, another hospital's (CN mismatch), one with two CNs, a tampered message or
 * signature; the signer's loading refusals; fl_cert_match_pem against a connection's PEM.
 * Signatures are cross-checked with OpenSSL's EVP directly. The certificates are pki.h's, made
 * at test time (plus two built here by hand that pki.h never issues). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../crypto/cert_sign.h"
#include "../crypto/pki.h"
#include "../crypto/sign.h"
#include "harness.h"

static const char MSG[] = "fedlung-secagg-v1 advert\0study\0...the bytes an advert signs";

/* fl_test_dir/dir/name.ext into buf (512 bytes). */
static const char *file_of(char *buf, const char *dir, const char *name, const char *ext) {
    snprintf(buf, 512, "%s/%s/%s.%s", fl_test_dir, dir, name, ext);
    return buf;
}

/* The signer of dir/name.key and dir/name.crt (NULL, failing the test, if it cannot load). */
static fl_cert_signer *signer_of(const char *dir, const char *name) {
    char k[512], c[512];
    fl_err err = {{0}};
    fl_cert_signer *s = NULL;
    CHECK_OK(
        fl_cert_signer_load(file_of(k, dir, name, "key"), file_of(c, dir, name, "crt"), &s, &err),
        &err);
    return s;
}

/* Signs MSG with s and verifies it under ca as cn: the status, err holding the sentence. */
static fl_status sign_verify(const fl_cert_signer *s, const char *ca, const char *cn, fl_err *err) {
    uint8_t sig[FL_CERT_SIG_MAX];
    size_t sig_len = sizeof sig, der_len;
    fl_status st = fl_cert_sign(s, MSG, sizeof MSG, sig, &sig_len, err);
    if (st != FL_OK) return st;
    const uint8_t *der = fl_cert_signer_der(s, &der_len);
    return fl_cert_verify(ca, der, der_len, cn, MSG, sizeof MSG, sig, sig_len, "its certificate",
                          err);
}

/* A certificate pki.h never issues, signed by the test's CA: CN cn (twice when two_cns),
 * extendedKeyUsage clientAuth only when eku; key and certificate written as certs/name.key,
 * certs/name.crt. */
static void make_odd_cert(const char *name, const char *cn, int two_cns, int eku) {
    char b[512];
    FILE *f = fopen(file_of(b, "ca", "ca", "key"), "rb");
    EVP_PKEY *ca_key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    f = fopen(file_of(b, "ca", "ca", "crt"), "rb");
    X509 *ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    CHECK(ca_key && ca && key && x);
    if (!ca_key || !ca || !key || !x) goto done;
    X509_NAME *nm = X509_get_subject_name(x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    for (int i = 0; i <= two_cns; i++)
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    if (eku) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, NID_ext_key_usage, "clientAuth");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    CHECK(X509_sign(x, ca_key, EVP_sha256()) > 0);
    if ((f = fopen(file_of(b, "certs", name, "key"), "wb"))) {
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
    if ((f = fopen(file_of(b, "certs", name, "crt"), "wb"))) {
        PEM_write_X509(f, x);
        fclose(f);
    }
done:
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

/* The signer's certificate and signature, checked by OpenSSL alone (ECDSA, SHA-256), and an
 * OpenSSL signature checked by fl_cert_verify: the format is the standard one both ways. */
static void test_cross_check(const fl_cert_signer *s, const char *ca, const char *key_path) {
    fl_err err = {{0}};
    uint8_t sig[FL_CERT_SIG_MAX];
    size_t sig_len = sizeof sig, der_len;
    CHECK_OK(fl_cert_sign(s, MSG, sizeof MSG, sig, &sig_len, &err), &err);
    CHECK(sig_len >= 8 && sig_len <= 72); /* DER ECDSA P-256 */
    const uint8_t *der = fl_cert_signer_der(s, &der_len), *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)der_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(x && ctx);
    if (!x || !ctx) goto done;
    CHECK_EQ_INT(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)), 1);
    CHECK_EQ_INT(EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)MSG, sizeof MSG), 1);
    EVP_MD_CTX_free(ctx);
    /* OpenSSL signs with the key file; fl_cert_verify accepts it */
    FILE *f = fopen(key_path, "rb");
    EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    ctx = EVP_MD_CTX_new();
    sig_len = sizeof sig;
    CHECK(key && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
          EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)MSG, sizeof MSG) == 1);
    CHECK_OK(
        fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig, sig_len, NULL, &err),
        &err);
    EVP_PKEY_free(key);
done:
    EVP_MD_CTX_free(ctx);
    X509_free(x);
}

static void test_valid_and_tampered(const char *ca) {
    fl_err err = {{0}};
    char b[512];
    fl_cert_signer *s = signer_of("certs", "hospital-1");
    if (!s) return;
    CHECK(strcmp(fl_cert_signer_cn(s), "hospital-1") == 0);
    /* the DER carried is the PEM file's certificate */
    size_t der_len;
    const uint8_t *der = fl_cert_signer_der(s, &der_len);
    FILE *f = fopen(file_of(b, "certs", "hospital-1", "crt"), "rb");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    uint8_t *mine = NULL;
    int n = x ? i2d_X509(x, &mine) : -1;
    CHECK(n > 0 && (size_t)n == der_len && memcmp(mine, der, der_len) == 0);
    OPENSSL_free(mine);
    X509_free(x);

    CHECK_OK(sign_verify(s, ca, "hospital-1", &err), &err);
    test_cross_check(s, ca, file_of(b, "certs", "hospital-1", "key"));

    uint8_t sig[FL_CERT_SIG_MAX], msg[sizeof MSG];
    size_t sig_len = sizeof sig;
    CHECK_OK(fl_cert_sign(s, MSG, sizeof MSG, sig, &sig_len, &err), &err);
    /* a changed byte anywhere in the message, a flipped bit in the signature, a cut one */
    for (size_t i = 0; i < sizeof MSG; i += 7) {
        memcpy(msg, MSG, sizeof MSG);
        msg[i] ^= 0x20;
        CHECK_FAILS(fl_cert_verify(ca, der, der_len, "hospital-1", msg, sizeof msg, sig, sig_len,
                                   "its certificate", &err),
                    err, "its certificate");
        CHECK_MSG(err, "signature does not verify");
    }
    for (size_t i = 0; i < sig_len; i += 5) {
        sig[i] ^= 0x01;
        CHECK_FAILS(fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig, sig_len,
                                   NULL, &err),
                    err, "the certificate");
        sig[i] ^= 0x01;
    }
    CHECK_FAILS(fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig, sig_len - 1,
                               NULL, &err),
                err, "signature");
    CHECK_FAILS(fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig, 0, NULL, &err),
                err, "signature");
    CHECK_OK(
        fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig, sig_len, NULL, &err),
        &err);
    /* a signature of hospital-2's key with hospital-1's certificate */
    fl_cert_signer *s2 = signer_of("certs", "hospital-2");
    uint8_t sig2[FL_CERT_SIG_MAX];
    size_t sig2_len = sizeof sig2;
    if (s2) CHECK_OK(fl_cert_sign(s2, MSG, sizeof MSG, sig2, &sig2_len, &err), &err);
    CHECK_FAILS(
        fl_cert_verify(ca, der, der_len, "hospital-1", MSG, sizeof MSG, sig2, sig2_len, NULL, &err),
        err, "signature does not verify");
    fl_cert_signer_free(s2);

    /* not a certificate: junk, trailing bytes, too long, nothing */
    uint8_t junk[2 * FL_CERT_DER_MAX];
    memset(junk, 0x30, sizeof junk);
    CHECK_EQ_INT(
        fl_cert_verify(ca, junk, 100, "hospital-1", MSG, sizeof MSG, sig, sig_len, NULL, &err),
        FL_EFORMAT);
    memcpy(junk, der, der_len);
    CHECK_EQ_INT(fl_cert_verify(ca, junk, der_len + 1, "hospital-1", MSG, sizeof MSG, sig, sig_len,
                                NULL, &err),
                 FL_EFORMAT);
    CHECK_EQ_INT(fl_cert_verify(ca, junk, sizeof junk, "hospital-1", MSG, sizeof MSG, sig, sig_len,
                                NULL, &err),
                 FL_EFORMAT);
    CHECK_EQ_INT(
        fl_cert_verify(ca, NULL, 0, "hospital-1", MSG, sizeof MSG, sig, sig_len, NULL, &err),
        FL_EFORMAT);
    /* no CA file */
    CHECK_EQ_INT(fl_cert_verify(fl_test_path("nowhere.crt"), der, der_len, "hospital-1", MSG,
                                sizeof MSG, sig, sig_len, NULL, &err),
                 FL_ENOTFOUND);
    CHECK_MSG(err, "nowhere.crt");
    /* no room for the signature */
    sig_len = 10;
    CHECK_FAILS(fl_cert_sign(s, MSG, sizeof MSG, sig, &sig_len, &err), err, "room");
    fl_cert_signer_free(s);
}

/* Each certificate that is not hospital-1's consortium identity, refused with its reason. */
static void test_refused(const char *ca_dir, const char *ca) {
    fl_err err = {{0}};
    long long now = (long long)time(NULL);
    fl_pki_issue_opts o = {.out_dir = fl_test_path("certs")};

    /* another hospital's certificate, presented as hospital-1's */
    fl_cert_signer *s = signer_of("certs", "hospital-2");
    if (s) CHECK_FAILS(sign_verify(s, ca, "hospital-1", &err), err, "its certificate");
    CHECK_MSG(err, "its CN is hospital-2, not hospital-1");
    fl_cert_signer_free(s);

    /* a rogue CA's certificate for hospital-1 (a server making its own keys) */
    fl_pki_issue_opts ro = {.out_dir = fl_test_path("rogue")};
    CHECK_OK(fl_pki_init(fl_test_path("rogue"), NULL, &err), &err);
    CHECK_OK(fl_pki_issue(fl_test_path("rogue"), "hospital-1", FL_PKI_CLIENT, &ro, &err), &err);
    if ((s = signer_of("rogue", "hospital-1"))) {
        CHECK_FAILS(sign_verify(s, ca, "hospital-1", &err), err, "its certificate");
        CHECK_MSG(err, "not issued by the CA");
        char rca[512];
        CHECK_OK(sign_verify(s, file_of(rca, "rogue", "ca", "crt"), "hospital-1", &err), &err);
    }
    fl_cert_signer_free(s);

    /* expired, not yet valid, serverAuth only (the server's own certificate cannot pose as a
     * hospital), no extendedKeyUsage at all (which OpenSSL's client purpose lets through), two
     * CNs; each with its own CN, so that only the defect named is wrong */
    fl_pki_issue_opts old = o, later = o;
    old.not_before = now - 20 * 86400LL, old.not_after = now - 86400;
    later.not_before = now + 86400, later.not_after = now + 2 * 86400LL;
    CHECK_OK(fl_pki_issue(ca_dir, "expired", FL_PKI_CLIENT, &old, &err), &err);
    CHECK_OK(fl_pki_issue(ca_dir, "later", FL_PKI_CLIENT, &later, &err), &err);
    CHECK_OK(fl_pki_issue(ca_dir, "fl-server", FL_PKI_SERVER, &o, &err), &err);
    make_odd_cert("no-eku", "no-eku", 0, 0);
    make_odd_cert("two-cns", "two-cns", 1, 1);
    make_odd_cert("odd-ok", "odd-ok", 0, 1); /* the control: built the same way */
    static const struct {
        const char *name, *why;
    } bad[] = {{"expired", "expired"},
               {"later", "not yet valid"},
               {"fl-server", "serverAuth"},
               {"no-eku", "no extendedKeyUsage"},
               {"two-cns", "several CNs"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if ((s = signer_of("certs", bad[i].name)))
            CHECK_FAILS(sign_verify(s, ca, bad[i].name, &err), err, bad[i].why);
        fl_cert_signer_free(s);
    }
    if ((s = signer_of("certs", "odd-ok"))) CHECK_OK(sign_verify(s, ca, "odd-ok", &err), &err);
    fl_cert_signer_free(s);

    /* the CA's own certificate and key */
    char k[512], c[512];
    CHECK_OK(
        fl_cert_signer_load(file_of(k, "ca", "ca", "key"), file_of(c, "ca", "ca", "crt"), &s, &err),
        &err);
    if (s) CHECK_FAILS(sign_verify(s, ca, fl_cert_signer_cn(s), &err), err, "extendedKeyUsage");
    fl_cert_signer_free(s);
    s = signer_of("certs", "hospital-1");
    if (s) CHECK_FAILS(sign_verify(s, ca, "", &err), err, "no identity");
    fl_cert_signer_free(s);
}

static void test_load_refusals(void) {
    fl_err err = {{0}};
    char k[512], c[512];
    fl_cert_signer *s = (fl_cert_signer *)&err; /* set to NULL on failure */
    /* hospital-2's key with hospital-1's certificate */
    CHECK_FAILS(fl_cert_signer_load(file_of(k, "certs", "hospital-2", "key"),
                                    file_of(c, "certs", "hospital-1", "crt"), &s, &err),
                err, "hospital-2.key");
    CHECK_MSG(err, "does not belong");
    CHECK(s == NULL);
    /* an Ed25519 key (the outbox's kind) */
    fl_sign_key *ed = NULL;
    CHECK_OK(fl_sign_key_generate(&ed, &err), &err);
    if (ed) CHECK_OK(fl_sign_key_save_private(ed, fl_test_path("ed.key"), &err), &err);
    fl_sign_key_free(ed);
    CHECK_FAILS(fl_cert_signer_load(fl_test_path("ed.key"), c, &s, &err), err, "ed.key");
    CHECK_MSG(err, "elliptic-curve");
    CHECK_EQ_INT(fl_cert_signer_load(fl_test_path("none.key"), c, &s, &err), FL_ENOTFOUND);
    CHECK_EQ_INT(fl_cert_signer_load(k, fl_test_path("none.crt"), &s, &err), FL_ENOTFOUND);
    fl_test_write_file(fl_test_path("junk.crt"), "junk\n", 5);
    CHECK_EQ_INT(fl_cert_signer_load(k, fl_test_path("junk.crt"), &s, &err), FL_EFORMAT);
    CHECK_MSG(err, "junk.crt");
    fl_cert_signer_free(NULL);
}

/* fl_cert_match_pem: the advert's certificate against the connection's. */
static void test_match_pem(const char *ca_dir) {
    fl_err err = {{0}};
    char c[512];
    size_t der_len, len1, len2;
    char *pem1 = fl_test_read_file(file_of(c, "certs", "hospital-1", "crt"), &len1);
    char *pem2 = fl_test_read_file(file_of(c, "certs", "hospital-2", "crt"), &len2);
    fl_cert_signer *s = signer_of("certs", "hospital-1");
    if (!pem1 || !pem2 || !s) goto done;
    const uint8_t *der = fl_cert_signer_der(s, &der_len);
    CHECK_OK(fl_cert_match_pem(der, der_len, pem1, len1, "its certificate", &err), &err);
    CHECK_FAILS(fl_cert_match_pem(der, der_len, pem2, len2, "its certificate", &err), err,
                "its certificate");
    CHECK_MSG(err, "its CN is hospital-1, the connection's certificate says hospital-2");
    CHECK_EQ_INT(fl_cert_match_pem(der, der_len, "junk", 4, NULL, &err), FL_EFORMAT);
    CHECK_EQ_INT(fl_cert_match_pem(der, 10, pem1, len1, NULL, &err), FL_EFORMAT);
    /* the same CN with another key (a second certificate issued for hospital-1) */
    fl_pki_issue_opts o = {.out_dir = fl_test_path("again")};
    CHECK_OK(fl_pki_issue(ca_dir, "hospital-1", FL_PKI_CLIENT, &o, &err), &err);
    fl_cert_signer *again = signer_of("again", "hospital-1");
    if (again) {
        const uint8_t *d2 = fl_cert_signer_der(again, &der_len);
        CHECK_FAILS(fl_cert_match_pem(d2, der_len, pem1, len1, NULL, &err), err, "public key");
        fl_cert_signer_free(again);
    }
done:
    fl_cert_signer_free(s);
    free(pem1);
    free(pem2);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_cert_sign_")) return 1;
    fl_err err = {{0}};
    char ca_dir[512], ca[512];
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", fl_test_dir);
    file_of(ca, "ca", "ca", "crt");
    fl_pki_init_opts io = {.name = "Test consortium CA", .days = 30};
    fl_pki_issue_opts o = {.out_dir = fl_test_path("certs")};
    CHECK_OK(fl_pki_init(ca_dir, &io, &err), &err);
    CHECK_OK(fl_pki_issue(ca_dir, "hospital-1", FL_PKI_CLIENT, &o, &err), &err);
    CHECK_OK(fl_pki_issue(ca_dir, "hospital-2", FL_PKI_CLIENT, &o, &err), &err);
    if (fl_test_failures == 0) {
        test_valid_and_tampered(ca);
        test_refused(ca_dir, ca);
        test_load_refusals();
        test_match_pem(ca_dir);
    }
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_cert_sign");
}
