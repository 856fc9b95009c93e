/* test_crypto_basic.c - known answers for crypto/hash (SHA-256: FIPS 180-2 examples, RFC 6962
 * leaf hashes) and crypto/sign (Ed25519: RFC 8032 §7.1 TESTs 1, 2, 3, 1024 and SHA(abc); the
 * negative cases of OpenSSL's evppkey_ecx.txt), hex encoding, and the key files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../crypto/hash.h"
#include "../crypto/sign.h"
#include "harness.h"

/* Decodes hex (any even length) into a malloc'd buffer of *n bytes. */
static uint8_t *unhex(const char *hex, size_t *n) {
    *n = strlen(hex) / 2;
    uint8_t *b = malloc(*n + 1);
    if (!b || fl_hex_decode(hex, b, *n) != FL_OK) {
        fprintf(stderr, "bad hex in the test: %.40s\n", hex);
        exit(1);
    }
    return b;
}

#define CHECK_HEX(got, want)                                                                       \
    do {                                                                                           \
        fl_test_checks++;                                                                          \
        if (strcmp((got), (want)) != 0)                                                            \
            fl_test_fail_at(__FILE__, __LINE__, "%s:\n  got  %s\n  want %s", #got, (got), (want)); \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* SHA-256 and hex                                                                             */

static void test_sha256(void) {
    static const struct {
        const char *msg, *hex;
    } kat[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[FL_SHA256_HEX];
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        CHECK(fl_sha256_hex(kat[i].msg, strlen(kat[i].msg), hex) == FL_OK);
        CHECK_HEX(hex, kat[i].hex);
    }
    /* RFC 6962 leaves: SHA-256(0x00 || d), from crypto-vectors.md. */
    const uint8_t leaf_empty[1] = {0};
    CHECK(fl_sha256_hex(leaf_empty, 1, hex) == FL_OK);
    CHECK_HEX(hex, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    const uint8_t leaf_l[] = "\0L123456";
    CHECK(fl_sha256_hex(leaf_l, sizeof leaf_l - 1, hex) == FL_OK);
    CHECK_HEX(hex, "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56");

    /* One million 'a' fed in uneven pieces equals the FIPS 180-2 answer. */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    fl_sha256_ctx h;
    uint8_t md[FL_SHA256_LEN];
    CHECK(fl_sha256_init(&h) == FL_OK);
    size_t off = 0, piece = 1;
    while (off < 1000000) {
        size_t n = 1000000 - off < piece ? 1000000 - off : piece;
        CHECK(fl_sha256_update(&h, a + off, n) == FL_OK);
        off += n;
        piece = piece * 3 + 1;
    }
    CHECK(fl_sha256_final(&h, md) == FL_OK);
    CHECK(h.ctx == NULL);
    fl_sha256_destroy(&h); /* a no-op after final */
    fl_hex_encode(md, sizeof md, hex);
    CHECK_HEX(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(fl_sha256_update(&h, "x", 1) == FL_EINVAL); /* released */
    free(a);

    /* An abandoned context is released by destroy. */
    CHECK(fl_sha256_init(&h) == FL_OK);
    CHECK(fl_sha256_update(&h, "abc", 3) == FL_OK);
    fl_sha256_destroy(&h);
    CHECK(h.ctx == NULL);
}

static void test_hex(void) {
    const uint8_t b[4] = {0x00, 0x9f, 0xa0, 0xff};
    char hex[9];
    fl_hex_encode(b, 4, hex);
    CHECK_HEX(hex, "009fa0ff");
    uint8_t back[4];
    CHECK(fl_hex_decode("009FA0ff", back, 4) == FL_OK);
    CHECK(memcmp(back, b, 4) == 0);
    CHECK(fl_hex_decode("009fa0f", back, 4) == FL_EFORMAT);   /* short */
    CHECK(fl_hex_decode("009fa0ff0", back, 4) == FL_EFORMAT); /* long */
    CHECK(fl_hex_decode("009fa0fg", back, 4) == FL_EFORMAT);  /* not hex */
    CHECK(fl_hex_decode("", back, 0) == FL_OK);
}

/* ------------------------------------------------------------------------------------------ */
/* Ed25519                                                                                     */

static const char msg1024[] =
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f5"
    "4e9f77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37"
    "c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efc"
    "b8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b"
    "3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573c"
    "b116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204"
    "ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958"
    "d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c6"
    "5adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2"
    "cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a"
    "71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9"
    "b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb"
    "038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f672451"
    "7b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e"
    "2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d"
    "5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6aed3fb0"
    "f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041"
    "e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa9"
    "33a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185"
    "c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c"
    "15fc910840b94c00a0b9d0";

static const struct {
    const char *name, *sk, *pk, *msg, *sig;
} rfc8032[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", msg1024,
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
     "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

static void test_ed25519_vectors(void) {
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof rfc8032 / sizeof *rfc8032; i++) {
        size_t n_sk, n_msg, n_sig, n_pk;
        uint8_t *sk = unhex(rfc8032[i].sk, &n_sk), *msg = unhex(rfc8032[i].msg, &n_msg);
        uint8_t *want_sig = unhex(rfc8032[i].sig, &n_sig), *want_pk = unhex(rfc8032[i].pk, &n_pk);
        fl_sign_key *k = NULL, *pub = NULL;
        CHECK_OK(fl_sign_key_from_seed(sk, &k, &err), &err);
        CHECK_OK(fl_sign_key_from_public(want_pk, &pub, &err), &err);
        if (!k || !pub) goto next;
        CHECK(fl_sign_key_is_private(k) && !fl_sign_key_is_private(pub));
        uint8_t pk[FL_ED25519_PUB_LEN], sig[FL_ED25519_SIG_LEN];
        char hex[2 * FL_ED25519_SIG_LEN + 1];
        fl_sign_key_public(k, pk);
        fl_hex_encode(pk, sizeof pk, hex);
        CHECK_HEX(hex, rfc8032[i].pk);
        CHECK_OK(fl_sign(k, msg, n_msg, sig, &err), &err);
        fl_hex_encode(sig, sizeof sig, hex);
        CHECK_HEX(hex, rfc8032[i].sig);
        CHECK(fl_sign_verify(pub, msg, n_msg, want_sig));
        CHECK(fl_sign_verify(k, msg, n_msg, want_sig));
        /* An altered message or signature, or another key, does not verify. */
        want_sig[n_sig - 1] ^= 1;
        CHECK(!fl_sign_verify(pub, msg, n_msg, want_sig));
        want_sig[n_sig - 1] ^= 1;
        want_sig[3] ^= 0x40;
        CHECK(!fl_sign_verify(pub, msg, n_msg, want_sig));
        want_sig[3] ^= 0x40;
        if (n_msg > 0) {
            msg[0] ^= 1;
            CHECK(!fl_sign_verify(pub, msg, n_msg, want_sig));
            msg[0] ^= 1;
        }
        CHECK(!fl_sign_verify(pub, msg, n_msg + 1, want_sig)); /* one byte more */
        fl_sign_key *other = NULL;
        size_t j = (i + 1) % (sizeof rfc8032 / sizeof *rfc8032), n_other;
        uint8_t *other_pk = unhex(rfc8032[j].pk, &n_other);
        CHECK_OK(fl_sign_key_from_public(other_pk, &other, &err), &err);
        if (other) CHECK(!fl_sign_verify(other, msg, n_msg, want_sig));
        fl_sign_key_free(other);
        free(other_pk);
    next:
        fl_sign_key_free(k);
        fl_sign_key_free(pub);
        free(sk), free(msg), free(want_sig), free(want_pk);
    }

    /* OpenSSL's negative cases on TEST 1: the last byte flipped (…7a100c) and the malleable
     * signature with S + L (…7a101b) must both fail. */
    static const char *const bad[] = {
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100c",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "4c8c7872aa064e049dbb3013fbf29380d25bf5f0595bbe24655141438e7a101b",
    };
    size_t n;
    uint8_t *pk = unhex(rfc8032[0].pk, &n);
    fl_sign_key *pub = NULL;
    CHECK_OK(fl_sign_key_from_public(pk, &pub, &err), &err);
    for (size_t i = 0; pub && i < 2; i++) {
        uint8_t *sig = unhex(bad[i], &n);
        CHECK(!fl_sign_verify(pub, "", 0, sig));
        free(sig);
    }
    uint8_t sig[FL_ED25519_SIG_LEN];
    if (pub) CHECK(fl_sign(pub, "x", 1, sig, &err) == FL_EINVAL); /* public keys do not sign */
    fl_sign_key_free(pub);
    free(pk);
}

/* ------------------------------------------------------------------------------------------ */
/* keys and key files                                                                          */

static void test_key_files(void) {
    fl_err err = {{0}};
    fl_sign_key *k = NULL, *k2 = NULL, *priv = NULL, *pub = NULL, *pub2 = NULL, *x = NULL;
    CHECK_OK(fl_sign_key_generate(&k, &err), &err);
    CHECK_OK(fl_sign_key_generate(&k2, &err), &err);
    if (!k || !k2) goto done;
    uint8_t a[FL_ED25519_PUB_LEN], b[FL_ED25519_PUB_LEN];
    fl_sign_key_public(k, a);
    fl_sign_key_public(k2, b);
    CHECK(memcmp(a, b, sizeof a) != 0); /* two fresh keys differ */

    /* The key id is the SHA-256 of the raw public key. */
    char id[FL_SHA256_HEX], want[FL_SHA256_HEX];
    fl_sign_key_id(k, id);
    CHECK(fl_sha256_hex(a, sizeof a, want) == FL_OK);
    CHECK_HEX(id, want);

    const char *key = fl_test_path("server.key"), *pubf = fl_test_path("server.pub");
    CHECK_OK(fl_sign_key_save_private(k, key, &err), &err);
    CHECK_OK(fl_sign_key_save_public(k, pubf, &err), &err);
    struct stat st;
    CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(fl_test_count_tmp() == 0);
    char *text = fl_test_read_file(key, NULL);
    CHECK(text && strstr(text, "-----BEGIN PRIVATE KEY-----"));
    free(text);
    text = fl_test_read_file(pubf, NULL);
    CHECK(text && strstr(text, "-----BEGIN PUBLIC KEY-----"));
    free(text);
    /* Saving a private key over an existing file keeps 0600 (a fresh temporary file). */
    CHECK_OK(fl_sign_key_save_private(k, key, &err), &err);
    CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);

    CHECK_OK(fl_sign_key_load_private(key, &priv, &err), &err);
    CHECK_OK(fl_sign_key_load_public(pubf, &pub, &err), &err);
    CHECK_OK(fl_sign_key_load_public(key, &pub2, &err), &err); /* its public half */
    if (!priv || !pub || !pub2) goto done;
    CHECK(fl_sign_key_is_private(priv) && !fl_sign_key_is_private(pub));
    CHECK(!fl_sign_key_is_private(pub2));
    uint8_t c[FL_ED25519_PUB_LEN], sig[FL_ED25519_SIG_LEN];
    fl_sign_key_public(pub, c);
    CHECK(memcmp(a, c, sizeof a) == 0);
    fl_sign_key_public(pub2, c);
    CHECK(memcmp(a, c, sizeof a) == 0);
    CHECK_OK(fl_sign(priv, "round 3", 7, sig, &err), &err);
    CHECK(fl_sign_verify(pub, "round 3", 7, sig));
    CHECK(!fl_sign_verify(pub, "round 4", 7, sig));

    /* Refusals name the file. */
    CHECK_FAILS(fl_sign_key_load_private(pubf, &x, &err), err, "server.pub");
    CHECK(fl_sign_key_load_private(pubf, &x, &err) == FL_EFORMAT && !x);
    CHECK_FAILS(fl_sign_key_save_private(pub, fl_test_path("p.key"), &err), err, "p.key");
    CHECK(!fl_test_file_exists(fl_test_path("p.key")));
    const char *missing = fl_test_path("missing.pub");
    CHECK(fl_sign_key_load_public(missing, &x, &err) == FL_ENOTFOUND && !x);
    CHECK_MSG(err, "missing.pub");
    const char *junk = fl_test_path("junk.pub");
    fl_test_write_file(junk, "not a key\n", 10);
    CHECK(fl_sign_key_load_public(junk, &x, &err) == FL_EFORMAT && !x);
    CHECK_MSG(err, "junk.pub");
    /* A key of another type (P-256) is refused. */
    const char *ec_pem = fl_test_path("ec.pem");
    static const char ec_key[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPZWEksmYpFQ3qntLCDCmD3HCM1wK\n"
        "n+hjVaWCpU8Wma1i0KtTUeAgafcCqhtAoQG6hb2H6t9aIT13ilXiscaY4A==\n"
        "-----END PUBLIC KEY-----\n";
    fl_test_write_file(ec_pem, ec_key, sizeof ec_key - 1);
    fl_status s = fl_sign_key_load_public(ec_pem, &x, &err);
    CHECK(s == FL_EFORMAT && !x);
    CHECK_MSG(err, "ec.pem");
    CHECK(fl_test_count_tmp() == 0);
done:
    fl_sign_key_free(k), fl_sign_key_free(k2), fl_sign_key_free(priv);
    fl_sign_key_free(pub), fl_sign_key_free(pub2), fl_sign_key_free(x);
    fl_sign_key_free(NULL);
}

int main(void) {
    if (!fl_test_mkdtemp("fl_crypto_")) return 1;
    test_sha256();
    test_hex();
    test_ed25519_vectors();
    test_key_files();
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_crypto_basic");
}
