/* test_crypto_kat.c - known answers for the primitives of crypto/: X25519 (kex), HKDF-SHA256
 * (kdf), ChaCha20 and AES-256-CTR keystreams and their mask adders (stream), AES-256-GCM (aead),
 * the CSPRNG (rand) and RFC 6962 Merkle hashes, roots and proofs (merkle); each vector is copied
 * here with its RFC and section, and every refusal is checked. Ed25519 and SHA-256 vectors are
 * in test_crypto_basic.c. `test_crypto_kat --bench` times mask expansion instead (see
 * bench/mask-expand); it is not part of ctest. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../crypto/aead.h"
#include "../crypto/hash.h"
#include "../crypto/kdf.h"
#include "../crypto/kex.h"
#include "../crypto/merkle.h"
#include "../crypto/rand.h"
#include "../crypto/stream.h"
#include "harness.h"

static int kat_count; /* published vectors checked (each counts once, however many checks) */

/* Reads hex (even length, at most 2 * cap digits) into out; returns the byte count. */
static size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap || fl_hex_decode(hex, out, n) != FL_OK) {
        fprintf(stderr, "bad hex in the test (or longer than %zu bytes): %.40s\n", cap, hex);
        exit(1);
    }
    return n;
}

/* got[0..n) must equal the hex string want; a mismatch prints both. */
static void expect_hex(const char *what, const void *got, size_t n, const char *want, int line) {
    char *hex = malloc(2 * n + 1);
    fl_test_checks++;
    fl_hex_encode(got, n, hex);
    if (strcmp(hex, want) != 0)
        fl_test_fail_at(__FILE__, line, "%s:\n  got  %s\n  want %s", what, hex, want);
    free(hex);
}
#define EXPECT_HEX(what, got, n, want) expect_hex(what, got, n, want, __LINE__)

static int all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* X25519: RFC 7748                                                                            */

static void test_x25519(void) {
    fl_err err = {{0}};
    uint8_t k[32], u[32], out[32];
    /* RFC 7748 §5.2, the two single-call test vectors (the second u has its top bit set, which
     * X25519 must ignore). */
    static const struct {
        const char *k, *u, *out;
    } v52[] = {
        {"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
        {"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
    };
    for (size_t i = 0; i < 2; i++) {
        from_hex(v52[i].k, k, 32);
        from_hex(v52[i].u, u, 32);
        CHECK_OK(fl_x25519_shared(k, u, out, &err), &err);
        EXPECT_HEX("RFC 7748 §5.2 X25519(k, u)", out, 32, v52[i].out);
        kat_count++;
    }

    /* RFC 7748 §5.2, iterated from k = u = 9: k <- X25519(k, u), u <- the old k. */
    memset(k, 0, 32), memset(u, 0, 32);
    k[0] = u[0] = 9;
    for (int i = 1; i <= 1000; i++) {
        if (fl_x25519_shared(k, u, out, &err) != FL_OK) {
            fl_test_fail_at(__FILE__, __LINE__, "iteration %d: %s", i, err.msg);
            break;
        }
        memcpy(u, k, 32);
        memcpy(k, out, 32);
        if (i == 1) {
            EXPECT_HEX("RFC 7748 §5.2 after 1 iteration", k, 32,
                       "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
            kat_count++;
        }
    }
    EXPECT_HEX("RFC 7748 §5.2 after 1000 iterations", k, 32,
               "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
    kat_count++;

    /* RFC 7748 §6.1: Alice and Bob's keys and their shared secret K, both ways. */
    uint8_t a[32], b[32], apub[32], bpub[32], k1[32], k2[32];
    from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
    from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
    CHECK_OK(fl_x25519_public(a, apub, &err), &err);
    CHECK_OK(fl_x25519_public(b, bpub, &err), &err);
    EXPECT_HEX("RFC 7748 §6.1 Alice's public key", apub, 32,
               "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    EXPECT_HEX("RFC 7748 §6.1 Bob's public key", bpub, 32,
               "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    CHECK_OK(fl_x25519_shared(a, bpub, k1, &err), &err);
    CHECK_OK(fl_x25519_shared(b, apub, k2, &err), &err);
    static const char K[] = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    EXPECT_HEX("RFC 7748 §6.1 K (Alice)", k1, 32, K);
    EXPECT_HEX("RFC 7748 §6.1 K (Bob)", k2, 32, K);
    kat_count += 3;

    /* Low-order public keys make an all-zero secret that anyone knows: refused (0, 1, the two
     * points of order 8, p - 1, p, p + 1, as little-endian u-coordinates). */
    static const char *const low_order[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    };
    for (size_t i = 0; i < sizeof low_order / sizeof *low_order; i++) {
        from_hex(low_order[i], u, 32);
        memset(out, 0xaa, 32);
        err.msg[0] = '\0';
        CHECK_EQ_INT(fl_x25519_shared(a, u, out, &err), FL_EINVAL);
        CHECK(all_zero(out, 32));
        CHECK_MSG(err, "all-zero");
    }

    /* Fresh key pairs agree with each other and with fl_x25519_public. */
    uint8_t p1[32], q1[32], p2[32], q2[32], q[32];
    CHECK_OK(fl_x25519_keygen(p1, q1, &err), &err);
    CHECK_OK(fl_x25519_keygen(p2, q2, &err), &err);
    CHECK(memcmp(p1, p2, 32) != 0 && memcmp(q1, q2, 32) != 0);
    CHECK_OK(fl_x25519_public(p1, q, &err), &err);
    CHECK(memcmp(q, q1, 32) == 0);
    CHECK_OK(fl_x25519_shared(p1, q2, k1, &err), &err);
    CHECK_OK(fl_x25519_shared(p2, q1, k2, &err), &err);
    CHECK(memcmp(k1, k2, 32) == 0 && !all_zero(k1, 32));
    fl_wipe(p1, 32), fl_wipe(p2, 32), fl_wipe(k1, 32), fl_wipe(k2, 32);
    CHECK(all_zero(p1, 32) && all_zero(k2, 32));
}

/* ------------------------------------------------------------------------------------------ */
/* HKDF-SHA256: RFC 5869 Appendix A                                                            */

static void test_hkdf(void) {
    fl_err err = {{0}};
    uint8_t ikm[80], salt[80], info[80], prk[32], okm[82], okm2[82];
    /* A.2's inputs are the byte ranges 00..4f, 60..af and b0..ff. */
    uint8_t ikm2[80], salt2[80], info2[80];
    for (int i = 0; i < 80; i++) ikm2[i] = (uint8_t)i, salt2[i] = (uint8_t)(0x60 + i);
    for (int i = 0; i < 80; i++) info2[i] = (uint8_t)(0xb0 + i);
    static const struct {
        const char *name, *ikm, *salt, *info; /* hex; NULL for A.2's ranges */
        size_t L;
        const char *prk, *okm;
    } v[] = {
        {"RFC 5869 A.1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
         "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
         "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
        {"RFC 5869 A.2", NULL, NULL, NULL, 82,
         "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c6"
         "5e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
        {"RFC 5869 A.3 (no salt, no info)", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
         42, "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        const uint8_t *I = ikm2, *S = salt2, *N = info2;
        size_t ni = 80, ns = 80, nn = 80;
        if (v[i].ikm) {
            ni = from_hex(v[i].ikm, ikm, sizeof ikm), I = ikm;
            ns = from_hex(v[i].salt, salt, sizeof salt), S = ns ? salt : NULL;
            nn = from_hex(v[i].info, info, sizeof info), N = nn ? info : NULL;
        }
        CHECK_OK(fl_hkdf_extract(S, ns, I, ni, prk, &err), &err);
        EXPECT_HEX(v[i].name, prk, 32, v[i].prk);
        CHECK_OK(fl_hkdf_expand(prk, N, nn, okm, v[i].L, &err), &err);
        EXPECT_HEX(v[i].name, okm, v[i].L, v[i].okm);
        CHECK_OK(fl_hkdf(S, ns, I, ni, N, nn, okm2, v[i].L, &err), &err);
        CHECK(memcmp(okm, okm2, v[i].L) == 0);
        kat_count++;
    }
    /* An empty salt given as a pointer equals no salt (RFC 5869 §2.2: HashLen zeros). */
    uint8_t prk0[32];
    CHECK_OK(fl_hkdf_extract(salt, 0, ikm, 22, prk0, &err), &err);
    CHECK_OK(fl_hkdf_extract((const uint8_t[32]){0}, 32, ikm, 22, prk, &err), &err);
    CHECK(memcmp(prk, prk0, 32) == 0);

    /* Lengths: 1..255*32 bytes of output, info up to FL_HKDF_MAX_INFO. */
    static uint8_t big[FL_HKDF_MAX_OKM + 1], long_info[FL_HKDF_MAX_INFO + 1];
    CHECK_OK(fl_hkdf_expand(prk, NULL, 0, big, FL_HKDF_MAX_OKM, &err), &err);
    CHECK_EQ_INT(fl_hkdf_expand(prk, NULL, 0, big, FL_HKDF_MAX_OKM + 1, &err), FL_EINVAL);
    CHECK(all_zero(big, sizeof big));
    CHECK_MSG(err, "RFC 5869");
    CHECK_EQ_INT(fl_hkdf_expand(prk, NULL, 0, okm, 0, &err), FL_EINVAL);
    CHECK_OK(fl_hkdf_expand(prk, long_info, FL_HKDF_MAX_INFO, okm, 32, &err), &err);
    CHECK_EQ_INT(fl_hkdf_expand(prk, long_info, FL_HKDF_MAX_INFO + 1, okm, 32, &err), FL_EINVAL);
    CHECK(all_zero(okm, 32));
    CHECK_EQ_INT(fl_hkdf(NULL, 0, ikm, 22, NULL, 0, okm, 0, &err), FL_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* keystreams: ChaCha20 (RFC 8439) and AES-256-CTR                                             */

static const uint8_t zero_key[32], zero_iv[16];

static void test_chacha20(void) {
    fl_err err = {{0}};
    fl_stream s;
    uint8_t ks[128], iv[16] = {1}; /* counter 1, nonce 0 */
    /* RFC 8439 A.1 test vectors #1 (counter 0) and #2 (counter 1), key and nonce all zero. */
    static const char a1_1[] = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
                               "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";
    static const char a1_2[] = "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
                               "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f";
    CHECK_OK(fl_stream_init(&s, FL_STREAM_CHACHA20, zero_key, zero_iv, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 128, &err), &err);
    EXPECT_HEX("RFC 8439 A.1 #1", ks, 64, a1_1);
    EXPECT_HEX("RFC 8439 A.1 #2 (block 1 of the same stream)", ks + 64, 64, a1_2);
    fl_stream_destroy(&s);
    CHECK(all_zero(&s, sizeof s));
    CHECK_OK(fl_stream_init(&s, FL_STREAM_CHACHA20, zero_key, iv, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 64, &err), &err);
    EXPECT_HEX("RFC 8439 A.1 #2 (initial counter 1)", ks, 64, a1_2);
    fl_stream_destroy(&s);
    kat_count += 2;

    /* RFC 8439 §2.4.2: the "sunscreen" plaintext under key 00..1f, nonce 00000000 0000004a
     * 00000000, initial counter 1; read in uneven pieces. */
    static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
                             "one tip for the future, sunscreen would be it.";
    uint8_t key[32], ct[sizeof pt - 1];
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
    from_hex("01000000000000000000004a00000000", iv, 16);
    CHECK_OK(fl_stream_init(&s, FL_STREAM_CHACHA20, key, iv, &err), &err);
    for (size_t off = 0, piece = 1; off < sizeof ct; off += piece, piece = piece * 2 + 1) {
        if (piece > sizeof ct - off) piece = sizeof ct - off;
        CHECK_OK(fl_stream_bytes(&s, ct + off, piece, &err), &err);
    }
    for (size_t i = 0; i < sizeof ct; i++) ct[i] ^= (uint8_t)pt[i];
    EXPECT_HEX("RFC 8439 §2.4.2 ciphertext", ct, sizeof ct,
               "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f"
               "593dabcd62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc"
               "514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d");
    /* Seeking back to any byte gives the same keystream. */
    CHECK_OK(fl_stream_seek(&s, 37, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 50, &err), &err);
    for (size_t i = 0; i < 50; i++) ks[i] ^= (uint8_t)pt[37 + i];
    CHECK(memcmp(ks, ct + 37, 50) == 0);
    fl_stream_destroy(&s);
    kat_count++;

    /* The stream ends where the 32-bit block counter would wrap. */
    memset(iv, 0, 16);
    memset(iv, 0xff, 4); /* counter 2^32 - 1: one block left */
    CHECK_OK(fl_stream_init(&s, FL_STREAM_CHACHA20, zero_key, iv, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 60, &err), &err);
    CHECK_EQ_INT(fl_stream_bytes(&s, ks, 5, &err), FL_EINVAL);
    CHECK_MSG(err, "wrap");
    CHECK(all_zero(ks, 5));
    CHECK_OK(fl_stream_bytes(&s, ks, 4, &err), &err);
    CHECK_EQ_INT(fl_stream_seek(&s, 65, &err), FL_EINVAL);
    fl_stream_destroy(&s);
    CHECK_EQ_INT(fl_stream_init(&s, (fl_stream_cipher)7, zero_key, zero_iv, &err), FL_EINVAL);
    fl_stream_destroy(&s);
}

static void test_aes_ctr(void) {
    fl_err err = {{0}};
    fl_stream s;
    uint8_t ks[32], ones[16];
    /* AES-256-CTR under the zero key from the zero counter block: the first keystream block is
     * AES-256 of the zero block (FIPS 197 with the zero key). */
    static const char first[] = "dc95c078a2408989ad48a21492842087";
    CHECK_OK(fl_stream_init(&s, FL_STREAM_AES256_CTR, zero_key, zero_iv, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 16, &err), &err);
    EXPECT_HEX("AES-256-CTR first block", ks, 16, first);
    fl_stream_destroy(&s);
    kat_count++;
    /* The counter is all 128 bits: from ff..ff the second block is the zero block's, whether
     * OpenSSL increments it (reading on) or fl_stream_seek computes it. */
    memset(ones, 0xff, 16);
    CHECK_OK(fl_stream_init(&s, FL_STREAM_AES256_CTR, zero_key, ones, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 32, &err), &err);
    EXPECT_HEX("AES-256-CTR after the counter wraps", ks + 16, 16, first);
    CHECK_OK(fl_stream_seek(&s, 19, &err), &err);
    CHECK_OK(fl_stream_bytes(&s, ks, 13, &err), &err);
    CHECK(memcmp(ks,
                 (const uint8_t[16]){0xdc, 0x95, 0xc0, 0x78, 0xa2, 0x40, 0x89, 0x89, 0xad, 0x48,
                                     0xa2, 0x14, 0x92, 0x84, 0x20, 0x87} +
                     3,
                 13) == 0);
    fl_stream_destroy(&s);
}

/* The little-endian words of keystream bytes b[0..4n), the reference for the adders. */
static void words_of(const uint8_t *b, uint32_t *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        w[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
               (uint32_t)b[4 * i + 3] << 24;
}

/* fl_stream_add_u32 and _many against fl_stream_bytes, from an unaligned position, over a vector
 * long enough to be split between threads (and with a thread count that leaves a ragged end). */
static void test_stream_add(fl_stream_cipher cipher) {
    enum { K = 3 };
    const size_t n = 300007;
    const uint64_t start = 5;
    fl_err err = {{0}};
    fl_stream s[K], ref;
    uint8_t key[K][32], iv[16] = {0};
    uint32_t *acc = malloc(n * 4), *orig = malloc(n * 4), *want = malloc(n * 4);
    uint32_t *w = malloc(n * 4);
    uint8_t *bytes = malloc(n * 4 + 16);
    if (!acc || !orig || !want || !w || !bytes) {
        fl_test_fail_at(__FILE__, __LINE__, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) orig[i] = (uint32_t)(i * 2654435761u);
    iv[15] = 3; /* any counter block (AES) or nonce (ChaCha20) */
    for (int j = 0; j < K; j++) {
        memset(key[j], 0x11 * (j + 1), 32);
        CHECK_OK(fl_stream_init(&s[j], cipher, key[j], iv, &err), &err);
        CHECK_OK(fl_stream_seek(&s[j], start, &err), &err);
    }
    /* The reference: sum_j sign_j * w_j from each stream's bytes. */
    const int sign[K] = {1, -1, 1};
    memcpy(want, orig, n * 4);
    for (int j = 0; j < K; j++) {
        CHECK_OK(fl_stream_init(&ref, cipher, key[j], iv, &err), &err);
        CHECK_OK(fl_stream_seek(&ref, start, &err), &err);
        CHECK_OK(fl_stream_bytes(&ref, bytes, n * 4 + 16, &err), &err);
        fl_stream_destroy(&ref);
        words_of(bytes, w, n);
        for (size_t i = 0; i < n; i++) want[i] += sign[j] > 0 ? w[i] : (uint32_t)-w[i];
    }

    /* One stream at a time on 3 threads, then all at once on the default count. */
    memcpy(acc, orig, n * 4);
    omp_set_num_threads(3);
    for (int j = 0; j < K; j++) CHECK_OK(fl_stream_add_u32(&s[j], acc, n, sign[j], &err), &err);
    omp_set_num_threads(2);
    CHECK(memcmp(acc, want, n * 4) == 0);
    /* The streams moved on by 4n bytes: what follows is the reference's next 16 bytes. */
    uint8_t next[16];
    CHECK_OK(fl_stream_bytes(&s[K - 1], next, 16, &err), &err);
    CHECK(memcmp(next, bytes + n * 4, 16) == 0);

    fl_stream *ps[K] = {&s[0], &s[1], &s[2]};
    for (int j = 0; j < K; j++) CHECK_OK(fl_stream_seek(&s[j], start, &err), &err);
    memcpy(acc, orig, n * 4);
    CHECK_OK(fl_stream_add_u32_many(ps, sign, K, acc, n, &err), &err);
    CHECK(memcmp(acc, want, n * 4) == 0);
    /* Unmasking with the opposite signs gives the vector back, also on a short (1-thread) tail
     * of it after a seek. */
    const int minus[K] = {-1, 1, -1};
    for (int j = 0; j < K; j++) CHECK_OK(fl_stream_seek(&s[j], start, &err), &err);
    CHECK_OK(fl_stream_add_u32_many(ps, minus, K, acc, n, &err), &err);
    CHECK(memcmp(acc, orig, n * 4) == 0);
    for (int j = 0; j < K; j++) CHECK_OK(fl_stream_seek(&s[j], start + 4 * (n - 17), &err), &err);
    CHECK_OK(fl_stream_add_u32_many(ps, sign, K, acc + n - 17, 17, &err), &err);
    CHECK(memcmp(acc + n - 17, want + n - 17, 17 * 4) == 0);

    /* Refusals leave acc alone. */
    memcpy(acc, orig, n * 4);
    CHECK_EQ_INT(fl_stream_add_u32(&s[0], acc, n, 0, &err), FL_EINVAL);
    CHECK_EQ_INT(fl_stream_add_u32(&s[0], acc, n, 2, &err), FL_EINVAL);
    CHECK_MSG(err, "sign");
    CHECK(memcmp(acc, orig, n * 4) == 0);
    CHECK_OK(fl_stream_add_u32(&s[0], acc, 0, 1, &err), &err);
    if (cipher == FL_STREAM_CHACHA20) {
        CHECK_OK(fl_stream_seek(&s[0], (UINT64_C(1) << 38) - 4 * (n - 1), &err), &err);
        CHECK_EQ_INT(fl_stream_add_u32(&s[0], acc, n, 1, &err), FL_EINVAL);
        CHECK(memcmp(acc, orig, n * 4) == 0);
    }
done:
    for (int j = 0; j < K; j++) fl_stream_destroy(&s[j]);
    free(acc), free(orig), free(want), free(w), free(bytes);
}

/* ------------------------------------------------------------------------------------------ */
/* AES-256-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16       */

static void test_aead(void) {
    fl_err err = {{0}};
    static const char K15[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    static const char P15[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                              "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    static const char C15[] = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                              "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
    static const struct {
        const char *name, *key, *iv, *aad, *pt, *ct, *tag;
        size_t n; /* bytes of pt (TC16 uses the first 60 of TC15's) */
    } v[] = {
        {"GCM TC13", "", "", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b", 0},
        {"GCM TC14", "", "", "", "", "cea7403d4d606b6e074ec5d3baf39d18",
         "d0d1c8a799996bf0265b98b5d48ab919", 16},
        {"GCM TC15", K15, "cafebabefacedbaddecaf888", "", P15, C15,
         "b094dac5d93471bdec1a502270e3cc6c", 64},
        {"GCM TC16", K15, "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         P15, C15, "76fc6ece0f4e1768cddf8853bb2d551b", 60},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        uint8_t key[32] = {0}, iv[12] = {0}, aad[20], pt[64] = {0}, ct[64], back[64], tag[16];
        uint8_t want_ct[64];
        from_hex(v[i].key, key, 32); /* "" leaves the zero key, IV and plaintext of TC13/14 */
        from_hex(v[i].iv, iv, 12);
        size_t na = from_hex(v[i].aad, aad, sizeof aad), n = v[i].n;
        from_hex(v[i].pt, pt, sizeof pt);
        from_hex(v[i].ct, want_ct, sizeof want_ct);
        CHECK_OK(fl_aead_seal(key, iv, na ? aad : NULL, na, pt, n, ct, tag, &err), &err);
        char *want = strndup(v[i].ct, 2 * n);
        EXPECT_HEX(v[i].name, ct, n, want);
        free(want);
        EXPECT_HEX(v[i].name, tag, 16, v[i].tag);
        CHECK_OK(fl_aead_open(key, iv, aad, na, ct, n, tag, back, &err), &err);
        CHECK(memcmp(back, pt, n) == 0);
        kat_count++;

        /* Any change fails cleanly: a bit of the tag, the ciphertext, the associated data, the
         * nonce or the key. The output is then all zero. */
        for (int what = 0; what < 5; what++) {
            uint8_t *b = what == 0 ? tag : what == 1 ? ct : what == 2 ? aad : what == 3 ? iv : key;
            size_t len = what == 0 ? 16 : what == 1 ? n : what == 2 ? na : what == 3 ? 12 : 32;
            if (len == 0) continue;
            b[len / 2] ^= 0x04;
            memset(back, 0x5a, sizeof back);
            err.msg[0] = '\0';
            CHECK_EQ_INT(fl_aead_open(key, iv, aad, na, ct, n, tag, back, &err), FL_EFORMAT);
            CHECK(all_zero(back, n));
            CHECK_MSG(err, "tag does not match");
            b[len / 2] ^= 0x04;
        }
        /* A missing associated data byte fails too. */
        if (na)
            CHECK_EQ_INT(fl_aead_open(key, iv, aad, na - 1, ct, n, tag, back, &err), FL_EFORMAT);
        /* In place: seal pt over itself and open it back. */
        memcpy(back, pt, n);
        CHECK_OK(fl_aead_seal(key, iv, aad, na, back, n, back, tag, &err), &err);
        CHECK(memcmp(back, want_ct, n) == 0);
        CHECK_OK(fl_aead_open(key, iv, aad, na, back, n, tag, back, &err), &err);
        CHECK(memcmp(back, pt, n) == 0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* CSPRNG and wiping                                                                           */

static void test_rand(void) {
    fl_err err = {{0}};
    uint8_t a[64], b[64];
    CHECK_OK(fl_rand_bytes(a, sizeof a, &err), &err);
    CHECK_OK(fl_rand_bytes(b, sizeof b, &err), &err);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK_OK(fl_rand_bytes(NULL, 0, &err), &err);
    uint64_t x = 1, y = 1;
    CHECK_OK(fl_rand_u64(&x, &err), &err);
    CHECK_OK(fl_rand_u64(&y, &err), &err);
    CHECK(x != y);
    CHECK_EQ_INT(fl_rand_below(0, &x, &err), FL_EINVAL);
    CHECK_OK(fl_rand_below(1, &x, &err), &err);
    CHECK_EQ_INT(x, 0);
    /* Six faces, 60000 throws: each count within 6 standard deviations (~ 550) of 10000. */
    int count[6] = {0};
    for (int i = 0; i < 60000; i++) {
        if (fl_rand_below(6, &x, &err) != FL_OK || x >= 6) {
            fl_test_fail_at(__FILE__, __LINE__, "fl_rand_below(6) gave %llu: %s",
                            (unsigned long long)x, err.msg);
            break;
        }
        count[x]++;
    }
    for (int f = 0; f < 6; f++) CHECK(count[f] > 10000 - 550 && count[f] < 10000 + 550);
    /* Bounds just above 2^63 reject almost half of the draws and still land below them. */
    const uint64_t big = (UINT64_C(1) << 63) + 12345;
    for (int i = 0; i < 64; i++) {
        CHECK_OK(fl_rand_below(big, &x, &err), &err);
        CHECK(x < big);
    }
    fl_wipe(a, sizeof a);
    CHECK(all_zero(a, sizeof a));
    fl_wipe(NULL, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* RFC 6962 Merkle trees (vectors: transparency-dev/merkle testonly/constants.go and
 * proof/verify_test.go, whose 1-based leaf numbers are 0-based here)                          */

typedef uint8_t hash_t[FL_SHA256_LEN];

/* The test's own RFC 6962 §2.1.2 SUBPROOF(m, D[0..n), b), appended to out[*len..): the
 * reference for the published consistency proofs (crypto/merkle has no consistency proofs). */
static void subproof(const hash_t *leaves, size_t m, size_t n, int b, hash_t *out, size_t *len) {
    if (m == n) {
        if (!b) CHECK(fl_merkle_root(leaves, n, out[(*len)++]) == FL_OK);
        return;
    }
    size_t k = 1;
    while (k * 2 < n) k *= 2;
    if (m <= k) {
        subproof(leaves, m, k, b, out, len);
        CHECK(fl_merkle_root(leaves + k, n - k, out[(*len)++]) == FL_OK);
    } else {
        subproof(leaves + k, m - k, n - k, 0, out, len);
        CHECK(fl_merkle_root(leaves, k, out[(*len)++]) == FL_OK);
    }
}

/* Hex list of 64-digit hashes separated by spaces into out; returns how many. */
static size_t hash_list(const char *hex, hash_t *out) {
    size_t n = 0;
    char one[65];
    while (*hex) {
        memcpy(one, hex, 64);
        one[64] = '\0';
        from_hex(one, out[n++], 32);
        hex += 64;
        while (*hex == ' ') hex++;
    }
    return n;
}

static void test_merkle_hashes(hash_t leaves[8]) {
    hash_t h;
    char hex[FL_SHA256_HEX];
    /* The hasher checks of RFC 6962 (transparency-dev rfc6962/rfc6962_test.go). */
    CHECK(fl_merkle_root(NULL, 0, h) == FL_OK);
    EXPECT_HEX("MTH({})", h, 32,
               "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(fl_merkle_leaf_hash("", 0, h) == FL_OK);
    EXPECT_HEX("leaf \"\"", h, 32,
               "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    CHECK(fl_merkle_leaf_hash("L123456", 7, h) == FL_OK);
    EXPECT_HEX("leaf \"L123456\"", h, 32,
               "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56");
    /* node("N123", "N456") hashes the raw children: 0x01 || "N123" || "N456". */
    CHECK(fl_sha256("\001N123N456", 9, h) == FL_OK);
    EXPECT_HEX("node(\"N123\", \"N456\")", h, 32,
               "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb");
    kat_count += 4;

    /* Each leaf input, its leaf hash (level 0) and the root of the tree ending with it. */
    static const struct {
        const char *input, *leaf, *root;
    } v[8] = {
        {"", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
        {"00", "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
        {"10", "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"},
        {"2021", "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
        {"3031", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"},
        {"40414243", "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"},
        {"5051525354555657", "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"},
        {"606162636465666768696a6b6c6d6e6f",
         "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"},
    };
    for (size_t i = 0; i < 8; i++) {
        uint8_t d[16];
        size_t n = from_hex(v[i].input, d, sizeof d);
        CHECK(fl_merkle_leaf_hash(d, n, leaves[i]) == FL_OK);
        EXPECT_HEX("level-0 hash", leaves[i], 32, v[i].leaf);
        CHECK(fl_merkle_root((const hash_t *)leaves, i + 1, h) == FL_OK);
        fl_hex_encode(h, 32, hex);
        if (strcmp(hex, v[i].root) != 0)
            fl_test_fail_at(__FILE__, __LINE__, "root of %zu leaves: %s, want %s", i + 1, hex,
                            v[i].root);
        kat_count += 2;
    }
    /* Levels 1 and 2: the complete subtrees of 2 and 4 leaves. */
    static const char *const level1[4] = {
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    };
    static const char *const level2[2] = {
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    };
    for (size_t i = 0; i < 4; i++) {
        CHECK(fl_merkle_node_hash(leaves[2 * i], leaves[2 * i + 1], h) == FL_OK);
        EXPECT_HEX("level-1 hash", h, 32, level1[i]);
        kat_count++;
    }
    for (size_t i = 0; i < 2; i++) {
        CHECK(fl_merkle_root((const hash_t *)leaves + 4 * i, 4, h) == FL_OK);
        EXPECT_HEX("level-2 hash", h, 32, level2[i]);
        kat_count++;
    }
}

/* Verifies path for leaf m of n against the tree of leaves; want is FL_OK or FL_EFORMAT. */
static void expect_verify(const uint8_t *leaf, uint64_t m, uint64_t n, const hash_t *path,
                          size_t len, const uint8_t *root, fl_status want, const char *desc,
                          int line) {
    fl_err err = {{0}};
    fl_status s = fl_merkle_inclusion_verify(leaf, m, n, path, len, root, &err);
    fl_test_checks++;
    if (s != want)
        fl_test_fail_at(__FILE__, line, "inclusion leaf %llu of %llu, %s: %s (%s), want %s", //
                        (unsigned long long)m, (unsigned long long)n, desc, fl_status_str(s),
                        err.msg, fl_status_str(want));
}

/* Published proofs: for leaf m of a tree of n leaves (inclusion, RFC 6962 §2.1.1 PATH(m, D[n]))
 * or from size m to size n (consistency, §2.1.2 PROOF(m, D[n])), as space-separated hashes. */
typedef struct {
    size_t m, n;
    const char *hashes;
} proof_vector;

static const proof_vector inclusion_vectors[] = {
    {0, 8,
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7 "
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
    {5, 8,
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b "
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0 "
     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
    {2, 3, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
    {1, 5,
     "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d "
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
};

static const proof_vector consistency_vectors[] = {
    {1, 8,
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7 "
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
    {6, 8,
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a "
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0 "
     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
    {2, 5,
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
    {6, 7,
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a "
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f "
     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
    {1, 1, ""},
};

static void test_merkle_proofs(const hash_t leaves[8]) {
    fl_err err = {{0}};
    hash_t path[FL_MERKLE_MAX_PATH + 2], want[8], root;
    size_t len;
    for (size_t i = 0; i < sizeof inclusion_vectors / sizeof *inclusion_vectors; i++) {
        const proof_vector *v = &inclusion_vectors[i];
        size_t m = v->m, n = v->n, nw = hash_list(v->hashes, want);
        CHECK_OK(fl_merkle_inclusion_proof(leaves, n, m, path, FL_MERKLE_MAX_PATH, &len, &err),
                 &err);
        CHECK_EQ_INT(len, nw);
        for (size_t j = 0; j < nw && j < len; j++) {
            char what[64];
            snprintf(what, sizeof what, "inclusion proof of leaf %zu of %zu, hash %zu", m, n, j);
            char wh[FL_SHA256_HEX];
            fl_hex_encode(want[j], 32, wh);
            EXPECT_HEX(what, path[j], 32, wh);
        }
        CHECK(fl_merkle_root(leaves, n, root) == FL_OK);
        expect_verify(leaves[m], m, n, want, nw, root, FL_OK, "published", __LINE__);
        kat_count++;
    }

    /* Every leaf of every tree up to 8: the generated proof verifies, and each corruption of
     * transparency-dev's proofgen fails. */
    static const hash_t some = {0xab, 0xac, 0xab, 0xa0}; /* "abacaba000..." */
    for (size_t n = 1; n <= 8; n++) {
        CHECK(fl_merkle_root(leaves, n, root) == FL_OK);
        for (size_t m = 0; m < n; m++) {
            CHECK_OK(fl_merkle_inclusion_proof(leaves, n, m, path, FL_MERKLE_MAX_PATH, &len, &err),
                     &err);
            const uint8_t *lf = leaves[m];
            expect_verify(lf, m, n, path, len, root, FL_OK, "happy path", __LINE__);
            if (m > 0) expect_verify(lf, m - 1, n, path, len, root, FL_EFORMAT, "m-1", __LINE__);
            expect_verify(lf, m + 1, n, path, len, root, FL_EFORMAT, "m+1", __LINE__);
            if ((m ^ 2) < n)
                expect_verify(lf, m ^ 2, n, path, len, root, FL_EFORMAT, "m^2", __LINE__);
            expect_verify(lf, m, 2 * n, path, len, root, FL_EFORMAT, "n*2", __LINE__);
            if (n > 1) expect_verify(lf, m, n / 2, path, len, root, FL_EFORMAT, "n/2", __LINE__);
            expect_verify(some, m, n, path, len, root, FL_EFORMAT, "wrong leaf", __LINE__);
            expect_verify(lf, m, n, path, len, some, FL_EFORMAT, "random root", __LINE__);
            memcpy(path[len], root, 32);
            expect_verify(lf, m, n, path, len + 1, root, FL_EFORMAT, "trailing root", __LINE__);
            memmove(path + 1, path, len * sizeof *path);
            memcpy(path[0], root, 32);
            expect_verify(lf, m, n, path, len + 1, root, FL_EFORMAT, "preceding root", __LINE__);
            memmove(path, path + 1, len * sizeof *path);
            for (size_t j = 0; j < len; j++) {
                path[j][0] ^= 8;
                expect_verify(lf, m, n, path, len, root, FL_EFORMAT, "bit flipped", __LINE__);
                path[j][0] ^= 8;
            }
            if (len > 0)
                expect_verify(lf, m, n, path, len - 1, root, FL_EFORMAT, "removed component",
                              __LINE__);
        }
    }
    /* Refusals of the generator. */
    CHECK_EQ_INT(fl_merkle_inclusion_proof(leaves, 8, 8, path, FL_MERKLE_MAX_PATH, &len, &err),
                 FL_EINVAL);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(fl_merkle_inclusion_proof(leaves, 8, 0, path, 2, &len, &err), FL_EINVAL);
    CHECK_MSG(err, "3 hashes");
    CHECK_OK(fl_merkle_inclusion_proof(leaves, 1, 0, path, 0, &len, &err), &err);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(fl_merkle_inclusion_verify(leaves[0], 0, 0, path, 0, root, &err), FL_EFORMAT);

    /* The published consistency proofs, against the test's own SUBPROOF over the library's
     * tree hashes. */
    for (size_t i = 0; i < sizeof consistency_vectors / sizeof *consistency_vectors; i++) {
        const proof_vector *v = &consistency_vectors[i];
        size_t nw = hash_list(v->hashes, want);
        len = 0;
        subproof(leaves, v->m, v->n, 1, path, &len);
        CHECK_EQ_INT(len, nw);
        if (len == nw && memcmp(path, want, nw * sizeof *want) != 0)
            fl_test_fail_at(__FILE__, __LINE__, "consistency proof %zu -> %zu differs", v->m, v->n);
        kat_count++;
    }
}

static void test_merkle(void) {
    hash_t leaves[8];
    test_merkle_hashes(leaves);
    test_merkle_proofs((const hash_t *)leaves);
}

/* ------------------------------------------------------------------------------------------ */
/* --bench: mask expansion against memcpy on this machine                                      */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Each thread copies its share of src into dst, the way the adders split a vector. */
static void parallel_copy(uint8_t *dst, const uint8_t *src, size_t n) {
#pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t share = (n + nt - 1) / nt, lo = t * share < n ? t * share : n;
        size_t hi = n - lo < share ? n : lo + share;
        memcpy(dst + lo, src + lo, hi - lo);
    }
}

/* Seconds for masks streams over acc[0..n), each from byte 0: one fl_stream_add_u32 call per
 * stream (fused = 0) or one fl_stream_add_u32_many (fused = 1); -1 on failure. With small > 0
 * the same amount of keystream goes into acc[0..small) again and again instead, a slice that
 * stays in the last-level cache: the cost of the keystream with little memory traffic. */
static double time_masks(fl_stream **ps, const int *sign, int masks, uint32_t *acc, size_t n,
                         int fused, size_t small, fl_err *err) {
    for (int j = 0; j < masks; j++) fl_stream_seek(ps[j], 0, err);
    size_t step = small ? small : n;
    double t0 = now();
    for (size_t done = 0; done < n; done += step) {
        size_t m = n - done < step ? n - done : step;
        if (fused && fl_stream_add_u32_many(ps, sign, (size_t)masks, acc, m, err) != FL_OK)
            return -1;
        for (int j = 0; !fused && j < masks; j++)
            if (fl_stream_add_u32(ps[j], acc, m, sign[j], err) != FL_OK) return -1;
    }
    return now() - t0;
}

static int bench(int argc, char **argv) {
    int threads = 2, masks = 9, repeats = 3, bad = (argc - 2) % 2;
    double mb = 240;
    for (int i = 2; !bad && i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (!strcmp(opt, "--threads"))
            threads = atoi(val);
        else if (!strcmp(opt, "--masks"))
            masks = atoi(val);
        else if (!strcmp(opt, "--mb"))
            mb = atof(val);
        else if (!strcmp(opt, "--repeats"))
            repeats = atoi(val);
        else
            bad = 1;
    }
    if (bad || threads < 1 || masks < 1 || repeats < 1 || mb <= 0) {
        fprintf(stderr, "usage: %s --bench [--threads T] [--masks K] [--mb MB] [--repeats R]\n",
                argv[0]);
        return 2;
    }
    omp_set_num_threads(threads);
    size_t n = (size_t)(mb * 1e6 / 4), bytes = 4 * n, small = (size_t)1 << 21; /* 8 MiB */
    uint32_t *acc = malloc(bytes), *dst = malloc(bytes);
    fl_stream *s = calloc((size_t)masks, sizeof *s);
    fl_stream **ps = calloc((size_t)masks, sizeof *ps);
    int *sign = calloc((size_t)masks, sizeof *sign);
    if (!acc || !dst || !s || !ps || !sign) {
        fprintf(stderr, "mask-expand: out of memory for 2 x %.0f MB\n", mb);
        return 1;
    }
    memset(acc, 1, bytes); /* every page faulted in before anything is timed */
    memset(dst, 0, bytes);
    printf("vector %.0f MB (%zu uint32), %d masks, %d threads, best of %d runs\n", bytes / 1e6, n,
           masks, threads, repeats);
    double copy = 1e9;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        parallel_copy((uint8_t *)dst, (const uint8_t *)acc, bytes);
        double t = now() - t0;
        copy = t < copy ? t : copy;
    }
    printf("%-36s %7.3f s  %6.2f GB/s copied (%.2f GB/s read + write)\n", "memcpy of the vector",
           copy, bytes / copy / 1e9, 2 * bytes / copy / 1e9);

    fl_err err = {{0}};
    int failed = 0;
    double gb = (double)masks * bytes / 1e9, best = 1e9;
    for (int c = 0; c < 2 && !failed; c++) {
        fl_stream_cipher cipher = c == 0 ? FL_STREAM_AES256_CTR : FL_STREAM_CHACHA20;
        const char *name = c == 0 ? "AES-256-CTR" : "ChaCha20";
        for (int j = 0; j < masks; j++) {
            uint8_t key[32], iv[16] = {0};
            if (fl_rand_bytes(key, 32, &err) != FL_OK ||
                fl_stream_init(&s[j], cipher, key, iv, &err) != FL_OK)
                failed = 1;
            fl_wipe(key, sizeof key);
            ps[j] = &s[j];
            sign[j] = j % 2 ? -1 : 1;
        }
        double t[3] = {1e9, 1e9, 1e9}; /* one call per mask, fused, keystream only */
        for (int r = 0; r < repeats && !failed; r++) {
            for (int m = 0; m < 3 && !failed; m++) {
                double x = time_masks(ps, sign, masks, acc, n, m > 0, m == 2 ? small : 0, &err);
                failed = x < 0;
                t[m] = x < t[m] ? x : t[m];
            }
        }
        for (int j = 0; j < masks; j++) fl_stream_destroy(&s[j]);
        if (failed) break;
        char what[3][48];
        snprintf(what[0], sizeof what[0], "%s, %d x add_u32", name, masks);
        snprintf(what[1], sizeof what[1], "%s, add_u32_many(%d)", name, masks);
        snprintf(what[2], sizeof what[2], "%s, keystream only (8 MiB)", name);
        printf("%-36s %7.3f s  %6.2f GB/s of mask  = %4.1f memcpy times\n", what[0], t[0],
               gb / t[0], t[0] / copy);
        printf("%-36s %7.3f s  %6.2f GB/s of mask  = %4.1f memcpy times\n", what[1], t[1],
               gb / t[1], t[1] / copy);
        printf("%-36s %7.3f s  %6.2f GB/s of mask\n", what[2], t[2], gb / t[2]);
        best = t[1] < best ? t[1] : best;
        best = t[0] < best ? t[0] : best;
    }
    if (failed)
        fprintf(stderr, "mask-expand: %s\n", err.msg);
    else
        printf("best: %d masks over %.0f MB in %.3f s on %d threads\n", masks, bytes / 1e6, best,
               threads);
    free(acc), free(dst), free(s), free(ps), free(sign);
    return failed;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) return bench(argc, argv);
    test_x25519();
    test_hkdf();
    test_chacha20();
    test_aes_ctr();
    test_stream_add(FL_STREAM_AES256_CTR);
    test_stream_add(FL_STREAM_CHACHA20);
    test_aead();
    test_rand();
    test_merkle();
    printf("test_crypto_kat: %d published vectors checked\n", kat_count);
    return fl_test_summary("test_crypto_kat");
}
