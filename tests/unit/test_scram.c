/*
 * test_scram.c - unit tests for proxy/security/scram.c: the RFC 7677 SCRAM-SHA-256
 * example exchange byte for byte from both sides, a SCRAM-SHA-512 exchange
 * checked against values computed independently with Python's hashlib and
 * hmac, client <-> server round trips with random nonces, wrong passwords,
 * tampered and malformed messages, channel binding, iteration and salt
 * limits, truncation at every byte, the salt cache, and the order of calls.
 */
#include "scram.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#define M(s) (const uint8_t *)(s), strlen(s)

/* RFC 7677 section 3. */
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CFIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SFIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CFINAL                                                                                 \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/*
 * The same exchange (user "user", password "pencil", same nonces, salt and
 * iterations) with SHA-512. Not in any RFC: computed by hand with Python's
 * hashlib.pbkdf2_hmac("sha512", ...), hmac.new(..., "sha512") and
 * hashlib.sha512 following RFC 5802 section 3 (the generator first
 * reproduced the RFC 7677 SHA-256 values above, then printed these).
 */
#define S512_CFINAL                                                                                \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE                                                              \
    ",p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnz"                                  \
    "MlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
#define S512_SFINAL                                                                                \
    "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/"                                                                 \
    "AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw=="
#define S512_SALTED                                                                                \
    "f16efe1be67f1d09502ebd5ed9262fddffba5a377ab4f0b687e5ed5ba0f50686"                             \
    "b8a4ae166476da8ab3b951d2fa9238b63998f45461bc33a464814949cec9631d"
#define S512_STORED                                                                                \
    "e8002e6f7d3ae446119b216933644dc2a2be7869eb918b8459b5e7d7d2ec1260"                             \
    "6aceef106825cd735170a675fd3611f684affad1dce3f43a0ee43bd590e1dbbe"
#define S512_SERVER                                                                                \
    "8d91db6230b5687874fe129bc7206e1858c3ae08e02934f57ac03b6b05a229c4"                             \
    "59d28ff46f5c9611e6c179256490215ec1ff759cb0df285db89af0f99e613aac"

/* SHA-256 with gs2 "y,," and with authzid "n,a=user,", from the same Python
 * generator. */
#define Y_CFIRST "y,,n=user,r=" RFC_CNONCE
#define Y_CFINAL "c=eSws,r=" RFC_CNONCE RFC_SNONCE ",p=FoqiHTtQEDE8lz1CdaEe3tK4mS+iMDTl77SPyDS53DY="
#define Y_SFINAL "v=dI4KpiQJwBr1+V+K6U1dA6l6I4I9DUNXWND4pcpRU3U="
#define A_CFIRST "n,a=user,n=user,r=" RFC_CNONCE
#define A_CFINAL                                                                                   \
    "c=bixhPXVzZXIs,r=" RFC_CNONCE RFC_SNONCE ",p=t03aUuq4eobF+sIe9aMDq7lKPDwSPmgQxsHhaE9hQnc="
#define A_SFINAL "v=s/GjApLe1lkg2qcPV+thFIArK07tHFCZvdc4Y+q94sg="

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* The credential for password "pencil" with the RFC salt and 4096 iterations.
 */
static scram_cred_t pencil_cred(scram_mech_t m)
{
    uint8_t salt[SCRAM_MAX_SALT], sp[SCRAM_MAX_DIGEST];
    long sl = scram_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt));
    scram_cred_t c;
    memset(&c, 0, sizeof(c));
    CHECK_EQ(sl, 16);
    CHECK_EQ(scram_salted_password(m, "pencil", 6, salt, (size_t)sl, 4096, sp), 0);
    CHECK_EQ(scram_cred_from_salted(m, sp, scram_digest_len(m), salt, (size_t)sl, 4096, &c), 0);
    return c;
}

/* A server that has read cfirst and answered with the RFC server nonce. */
static scram_server_t *server_after_first(scram_mech_t m, const char *cfirst, char *sfirst,
                                          size_t cap)
{
    scram_server_t *s = scram_server_new(m);
    scram_server_set_nonce(s, RFC_SNONCE);
    const char *user = NULL;
    size_t ulen = 0;
    CHECK_EQ(scram_server_client_first(s, M(cfirst), &user, &ulen), 0);
    scram_cred_t c = pencil_cred(m);
    CHECK(scram_server_first_message(s, &c, sfirst, cap) > 0);
    return s;
}

static void test_mechs(void)
{
    CHECK_EQ(scram_mech_from_name("SCRAM-SHA-256", 13), SCRAM_SHA_256);
    CHECK_EQ(scram_mech_from_name("SCRAM-SHA-512", 13), SCRAM_SHA_512);
    CHECK_EQ(scram_mech_from_name("SCRAM-SHA-512x", 13), SCRAM_SHA_512); /* a view */
    CHECK_EQ(scram_mech_from_name("SCRAM-SHA-1", 11), -1);
    CHECK_EQ(scram_mech_from_name("scram-sha-256", 13), -1);
    CHECK_EQ(scram_mech_from_name("SCRAM-SHA-256", 12), -1);
    CHECK_EQ(scram_mech_from_name(NULL, 0), -1);
    CHECK_STR(scram_mech_name(SCRAM_SHA_256), "SCRAM-SHA-256");
    CHECK_STR(scram_mech_name(SCRAM_SHA_512), "SCRAM-SHA-512");
    CHECK_STR(scram_mech_name((scram_mech_t)7), "unknown");
    CHECK_EQ(scram_digest_len(SCRAM_SHA_256), 32);
    CHECK_EQ(scram_digest_len(SCRAM_SHA_512), 64);
    CHECK_EQ(scram_digest_len((scram_mech_t)7), 0);
    CHECK(scram_server_new((scram_mech_t)7) == NULL);
    CHECK(scram_client_new((scram_mech_t)7, "u", "p", NULL) == NULL);
}

static void test_b64(void)
{
    char out[16];
    uint8_t b[8];
    CHECK_EQ(scram_b64_encode((const uint8_t *)"n,,", 3, out), 4);
    CHECK_STR(out, "biws");
    CHECK_EQ(scram_b64_encode((const uint8_t *)"y,,", 3, out), 4);
    CHECK_STR(out, "eSws");
    CHECK_EQ(scram_b64_encode((const uint8_t *)"ab", 2, out), 4);
    CHECK_STR(out, "YWI=");
    CHECK_EQ(scram_b64_encode((const uint8_t *)"", 0, out), 0);
    CHECK_STR(out, "");
    CHECK_EQ(scram_b64_decode("YWI=", 4, b, sizeof(b)), 2);
    CHECK(memcmp(b, "ab", 2) == 0);
    CHECK_EQ(scram_b64_decode("YWJj", 4, b, 3), 3);
    CHECK_EQ(scram_b64_decode("YWJj", 4, b, 2), -1);         /* longer than max */
    CHECK_EQ(scram_b64_decode("YWJ=", 4, b, sizeof(b)), -1); /* unused bits set */
    CHECK_EQ(scram_b64_decode("YWI", 3, b, sizeof(b)), -1);
    CHECK_EQ(scram_b64_decode("", 0, b, sizeof(b)), -1);
    CHECK_EQ(scram_b64_decode("YW=I", 4, b, sizeof(b)), -1);
    CHECK_EQ(scram_b64_decode("YWI=YWI=", 8, b, sizeof(b)), -1); /* padding in the middle */
    CHECK_EQ(scram_b64_decode("YW-=", 4, b, sizeof(b)), -1);
}

static void test_derivation(void)
{
    uint8_t salt[SCRAM_MAX_SALT], sp[SCRAM_MAX_DIGEST];
    char h[2 * SCRAM_MAX_DIGEST + 1];
    long sl = scram_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt));
    CHECK_EQ(scram_salted_password(SCRAM_SHA_512, "pencil", 6, salt, (size_t)sl, 4096, sp), 0);
    hex(sp, 64, h);
    CHECK_STR(h, S512_SALTED);
    scram_cred_t c = pencil_cred(SCRAM_SHA_512);
    CHECK_EQ(c.mech, SCRAM_SHA_512);
    CHECK_EQ(c.iterations, 4096);
    CHECK_EQ(c.salt_len, 16);
    hex(c.stored_key, 64, h);
    CHECK_STR(h, S512_STORED);
    hex(c.server_key, 64, h);
    CHECK_STR(h, S512_SERVER);
    /* PBKDF2-HMAC-SHA256 of RFC 7914 section 11 (first 32 bytes). */
    CHECK_EQ(scram_salted_password(SCRAM_SHA_256, "passwd", 6, (const uint8_t *)"salt", 4, 1, sp),
             0);
    hex(sp, 32, h);
    CHECK_STR(h, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");

    /* Refusals. */
    CHECK_EQ(scram_salted_password(SCRAM_SHA_256, "p", 1, salt, 16, 0, sp), -1);
    CHECK_EQ(scram_salted_password(SCRAM_SHA_256, "p", 1, salt, 65, 4096, sp), -1);
    CHECK_EQ(scram_salted_password(SCRAM_SHA_256, "p", SCRAM_MAX_PASSWORD + 1, salt, 16, 1, sp),
             -1);
    CHECK_EQ(scram_salted_password(SCRAM_SHA_256, "p", 1, salt, 16, SCRAM_MAX_ITERATIONS + 1, sp),
             -1);
    scram_cred_t bad;
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 64, salt, 16, 4096, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_512, sp, 32, salt, 16, 4096, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 32, salt, 0, 4096, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 32, salt, 65, 4096, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 32, salt, 16, 4095, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 32, salt, 16, 10000001, &bad), -1);
    CHECK_EQ(scram_cred_from_salted(SCRAM_SHA_256, sp, 32, salt, 16, 10000000, &bad), 0);
}

/* The RFC 7677 exchange as eosproxy the client would run it. */
static void test_rfc7677_client(void)
{
    char out[SCRAM_MAX_MESSAGE];
    scram_client_t *c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    scram_client_set_nonce(c, RFC_CNONCE);
    CHECK_EQ(scram_client_first_message(c, out, sizeof(out)), strlen(RFC_CFIRST));
    CHECK_STR(out, RFC_CFIRST);
    CHECK_EQ(scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out)), strlen(RFC_CFINAL));
    CHECK_STR(out, RFC_CFINAL);
    CHECK_EQ(scram_client_verify_server_final(c, M(RFC_SFINAL)), 0);
    scram_client_free(c);

    /* The same with a wrong server signature, or an error, or a truncated one. */
    const char *bad[] = {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
                         "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                         "e=invalid-proof",
                         "e=other-error",
                         "v=",
                         "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,m=x",
                         RFC_SFINAL "x",
                         "w=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
        scram_client_set_nonce(c, RFC_CNONCE);
        scram_client_first_message(c, out, sizeof(out));
        CHECK(scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out)) > 0);
        CHECK_EQ(scram_client_verify_server_final(c, M(bad[i])), -1);
        scram_client_free(c);
    }
    /* An extension after v= is ignored. */
    c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out, sizeof(out));
    CHECK(scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out)) > 0);
    CHECK_EQ(scram_client_verify_server_final(c, M(RFC_SFINAL ",x=y")), 0);
    /* And the exchange is over: a second verify fails. */
    CHECK_EQ(scram_client_verify_server_final(c, M(RFC_SFINAL)), -1);
    scram_client_free(c);

    /* Every truncation of the server signature fails. */
    for (size_t n = 0; n < strlen(RFC_SFINAL); n++) {
        c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
        scram_client_set_nonce(c, RFC_CNONCE);
        scram_client_first_message(c, out, sizeof(out));
        scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out));
        CHECK_EQ(scram_client_verify_server_final(c, (const uint8_t *)RFC_SFINAL, n), -1);
        scram_client_free(c);
    }
}

/* The RFC 7677 exchange as eosproxy the server would run it. */
static void test_rfc7677_server(void)
{
    char out[SCRAM_MAX_MESSAGE];
    scram_server_t *s = scram_server_new(SCRAM_SHA_256);
    scram_server_set_nonce(s, RFC_SNONCE);
    const char *user = NULL;
    size_t ulen = 0;
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), &user, &ulen), 0);
    CHECK(user && strcmp(user, "user") == 0);
    CHECK_EQ(ulen, 4);
    scram_cred_t cred = pencil_cred(SCRAM_SHA_256);
    CHECK_EQ(scram_server_first_message(s, &cred, out, sizeof(out)), strlen(RFC_SFIRST));
    CHECK_STR(out, RFC_SFIRST);
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), out, sizeof(out)), 1);
    CHECK_STR(out, RFC_SFINAL);
    /* The exchange is over. */
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), out, sizeof(out)), -1);
    CHECK_STR(out, "");
    scram_server_free(s);
    scram_server_free(NULL);
}

/* gs2 'y' (with c=eSws) and an authzid equal to the user, and their mismatches.
 */
static void test_gs2_variants(void)
{
    struct {
        const char *cfirst, *cfinal, *sfinal;
        int want;
    } cases[] = {
        {Y_CFIRST, Y_CFINAL, Y_SFINAL, 1},
        {A_CFIRST, A_CFINAL, A_SFINAL, 1},
        {RFC_CFIRST, RFC_CFINAL, RFC_SFINAL, 1},
        /* The channel binding must be the gs2 header that was sent. */
        {Y_CFIRST, RFC_CFINAL, "", -1},
        {RFC_CFIRST, Y_CFINAL, "", -1},
        {A_CFIRST, RFC_CFINAL, "", -1},
        {RFC_CFIRST, A_CFINAL, "", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sfirst[SCRAM_MAX_MESSAGE], out[SCRAM_MAX_MESSAGE];
        scram_server_t *s = server_after_first(SCRAM_SHA_256, cases[i].cfirst, sfirst, 1024);
        CHECK_STR(sfirst, RFC_SFIRST);
        int rc = scram_server_client_final(s, M(cases[i].cfinal), out, sizeof(out));
        if (rc != cases[i].want)
            fprintf(stderr, "  gs2 case %zu: rc %d\n", i, rc);
        CHECK_EQ(rc, cases[i].want);
        CHECK_STR(out, cases[i].sfinal);
        scram_server_free(s);
    }
}

/* SHA-512 against the Python values, from both sides. */
static void test_sha512_vectors(void)
{
    char out[SCRAM_MAX_MESSAGE];
    scram_client_t *c = scram_client_new(SCRAM_SHA_512, "user", "pencil", NULL);
    scram_client_set_nonce(c, RFC_CNONCE);
    CHECK_EQ(scram_client_first_message(c, out, sizeof(out)), strlen(RFC_CFIRST));
    CHECK_STR(out, RFC_CFIRST);
    CHECK_EQ(scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out)), strlen(S512_CFINAL));
    CHECK_STR(out, S512_CFINAL);
    CHECK_EQ(scram_client_verify_server_final(c, M(S512_SFINAL)), 0);
    scram_client_free(c);

    char sfirst[SCRAM_MAX_MESSAGE];
    scram_server_t *s = server_after_first(SCRAM_SHA_512, RFC_CFIRST, sfirst, sizeof(sfirst));
    CHECK_STR(sfirst, RFC_SFIRST);
    CHECK_EQ(scram_server_client_final(s, M(S512_CFINAL), out, sizeof(out)), 1);
    CHECK_STR(out, S512_SFINAL);
    scram_server_free(s);

    /* A SHA-256 proof (32 bytes) to a SHA-512 server is malformed. */
    s = server_after_first(SCRAM_SHA_512, RFC_CFIRST, sfirst, sizeof(sfirst));
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), out, sizeof(out)), -1);
    scram_server_free(s);
    /* A SHA-256 credential for a SHA-512 server is refused. */
    s = scram_server_new(SCRAM_SHA_512);
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), NULL, NULL), 0);
    scram_cred_t c256 = pencil_cred(SCRAM_SHA_256);
    CHECK_EQ(scram_server_first_message(s, &c256, out, sizeof(out)), -1);
    scram_server_free(s);
}

/*
 * Runs client (password pw) against server (credential for "pencil") with
 * random nonces. Returns the server's verdict; *client_ok is the client's
 * check of the server-final (0 good).
 */
static int exchange(scram_mech_t m, const char *user, const char *pw, scram_salt_cache_t *cache,
                    int *client_ok)
{
    char a[SCRAM_MAX_MESSAGE], b[SCRAM_MAX_MESSAGE];
    scram_client_t *c = scram_client_new(m, user, pw, cache);
    scram_server_t *s = scram_server_new(m);
    const char *u = NULL;
    size_t ulen = 0;
    int n = scram_client_first_message(c, a, sizeof(a));
    CHECK(n > 0);
    CHECK_EQ(scram_server_client_first(s, (const uint8_t *)a, (size_t)n, &u, &ulen), 0);
    CHECK(u && ulen == strlen(user) && memcmp(u, user, ulen) == 0);
    scram_cred_t cred = pencil_cred(m);
    n = scram_server_first_message(s, &cred, b, sizeof(b));
    CHECK(n > 0);
    n = scram_client_final_message(c, (const uint8_t *)b, (size_t)n, a, sizeof(a));
    CHECK(n > 0);
    int rc = scram_server_client_final(s, (const uint8_t *)a, (size_t)n, b, sizeof(b));
    *client_ok = scram_client_verify_server_final(c, (const uint8_t *)b, strlen(b));
    if (rc == 0)
        CHECK_STR(b, "e=invalid-proof");
    scram_client_free(c);
    scram_server_free(s);
    return rc;
}

static void test_round_trips(void)
{
    int cok = 1;
    CHECK_EQ(exchange(SCRAM_SHA_512, "user", "pencil", NULL, &cok), 1);
    CHECK_EQ(cok, 0);
    CHECK_EQ(exchange(SCRAM_SHA_256, "user", "pencil", NULL, &cok), 1);
    CHECK_EQ(cok, 0);
    /* Names with ',' and '=' travel escaped and come back decoded. */
    CHECK_EQ(exchange(SCRAM_SHA_512, "a,b=c,,==", "pencil", NULL, &cok), 1);
    CHECK_EQ(cok, 0);
    /* Wrong passwords: the server says 0 and the client refuses
     * "e=invalid-proof". */
    CHECK_EQ(exchange(SCRAM_SHA_512, "user", "pencil ", NULL, &cok), 0);
    CHECK_EQ(cok, -1);
    CHECK_EQ(exchange(SCRAM_SHA_256, "user", "Pencil", NULL, &cok), 0);
    CHECK_EQ(cok, -1);

    /* Random nonces: 32 printable characters of the server's own, fresh each
     * time. */
    char f1[SCRAM_MAX_MESSAGE], f2[SCRAM_MAX_MESSAGE];
    scram_cred_t cred = pencil_cred(SCRAM_SHA_256);
    scram_server_t *s1 = scram_server_new(SCRAM_SHA_256), *s2 = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s1, M("n,,n=u,r=abc"), NULL, NULL), 0);
    CHECK_EQ(scram_server_client_first(s2, M("n,,n=u,r=abc"), NULL, NULL), 0);
    CHECK(scram_server_first_message(s1, &cred, f1, sizeof(f1)) > 0);
    CHECK(scram_server_first_message(s2, &cred, f2, sizeof(f2)) > 0);
    const char *comma1 = strchr(f1, ',');
    CHECK(strncmp(f1, "r=abc", 5) == 0 && comma1 && comma1 - f1 == 5 + 32);
    CHECK(strcmp(f1, f2) != 0);
    scram_server_free(s1);
    scram_server_free(s2);
    scram_client_t *c1 = scram_client_new(SCRAM_SHA_256, "u", "p", NULL);
    scram_client_t *c2 = scram_client_new(SCRAM_SHA_256, "u", "p", NULL);
    CHECK_EQ(scram_client_first_message(c1, f1, sizeof(f1)), 9 + 32);
    CHECK_EQ(scram_client_first_message(c2, f2, sizeof(f2)), 9 + 32);
    CHECK(strncmp(f1, "n,,n=u,r=", 9) == 0 && strcmp(f1, f2) != 0);
    scram_client_free(c1);
    scram_client_free(c2);
}

/* Tampered client-final messages: nonce and proof. */
static void test_tampered(void)
{
    const char *cases[] = {
        /* another server nonce */
        "c=biws,r=" RFC_CNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1"
        ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        /* the client's nonce alone */
        "c=biws,r=" RFC_CNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        /* one proof bit */
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVc=",
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        /* an all-zero proof */
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sfirst[SCRAM_MAX_MESSAGE], out[SCRAM_MAX_MESSAGE];
        scram_server_t *s = server_after_first(SCRAM_SHA_256, RFC_CFIRST, sfirst, sizeof(sfirst));
        CHECK_EQ(scram_server_client_final(s, M(cases[i]), out, sizeof(out)), 0);
        CHECK_STR(out, "e=invalid-proof");
        scram_server_free(s);
    }
}

static void test_client_first_malformed(void)
{
    char big[SCRAM_MAX_MESSAGE + 16], name[300];
    const char *bad[] = {
        "",
        "p=tls-unique,,n=user,r=abc", /* channel binding */
        "p,,n=user,r=abc",
        "x,,n=user,r=abc",
        "n,n=user,r=abc",
        "n,,",
        "n,,n=user",
        "n,,n=user,",
        "n,,n=user,r=",
        "n,,n=,r=abc",
        "n,,r=abc,n=user",
        "n,,n=user,r=abc,x=ext", /* extension */
        "n,,n=user,r=abc,",      /* empty extension */
        "n,,m=ext,n=user,r=abc", /* mandatory extension */
        "n,a=bob,n=user,r=abc",  /* authzid is not the user */
        "n,a=,n=user,r=abc",     /* empty authzid */
        "n,b=user,n=user,r=abc", /* not an authzid */
        "n,,n=us=2cer,r=abc",    /* lower-case escape */
        "n,,n=us=er,r=abc",      /* bare '=' */
        "n,,n=user=,r=abc",      /* '=' at the end */
        "n,,n=user=3,r=abc",     /* short escape */
        "n,,n=user,r=a\x7f"
        "b",               /* non-printable nonce */
        "n,,n=user,r=a b", /* space in the nonce */
        "n,,n=user,s=abc", /* not a nonce */
        " n,,n=user,r=abc",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        scram_server_t *s = scram_server_new(SCRAM_SHA_256);
        const char *u = "x";
        size_t ul = 9;
        int rc = scram_server_client_first(s, M(bad[i]), &u, &ul);
        if (rc != -1)
            fprintf(stderr, "  client-first case %zu accepted: %s\n", i, bad[i]);
        CHECK_EQ(rc, -1);
        CHECK(u == NULL && ul == 0);
        /* Nothing further works on a refused exchange. */
        scram_cred_t cred = pencil_cred(SCRAM_SHA_256);
        char out[256];
        CHECK_EQ(scram_server_first_message(s, &cred, out, sizeof(out)), -1);
        scram_server_free(s);
    }

    /* A NUL byte; a message over SCRAM_MAX_MESSAGE; a 256-byte user; a 257-char
     * nonce. */
    scram_server_t *s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, (const uint8_t *)"n,,n=us\0r,r=abc", 15, NULL, NULL), -1);
    scram_server_free(s);
    memset(big, 'a', sizeof(big));
    memcpy(big, "n,,n=user,r=", 12);
    s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, (const uint8_t *)big, SCRAM_MAX_MESSAGE + 1, NULL, NULL),
             -1);
    scram_server_free(s);
    memset(name, 'u', sizeof(name));
    snprintf(big, sizeof(big), "n,,n=%.*s,r=abc", 256, name);
    s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, M(big), NULL, NULL), -1);
    scram_server_free(s);
    snprintf(big, sizeof(big), "n,,n=%.*s,r=abc", 255, name);
    s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, M(big), NULL, NULL), 0);
    scram_server_free(s);
    memset(name, 'r', sizeof(name));
    snprintf(big, sizeof(big), "n,,n=u,r=%.*s", 257, name);
    s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, M(big), NULL, NULL), -1);
    scram_server_free(s);

    /* Escapes decode; an authzid equal to the (decoded) user is accepted. */
    const char *good[][2] = {
        {"n,,n=a=2Cb=3Dc,r=x", "a,b=c"},
        {"n,a=a=2Cb,n=a=2Cb,r=x", "a,b"},
        {"y,,n==3D,r=!~", "="},
    };
    for (size_t i = 0; i < 3; i++) {
        s = scram_server_new(SCRAM_SHA_256);
        const char *u = NULL;
        size_t ul = 0;
        CHECK_EQ(scram_server_client_first(s, M(good[i][0]), &u, &ul), 0);
        CHECK(u && strcmp(u, good[i][1]) == 0 && ul == strlen(good[i][1]));
        /* Only once. */
        CHECK_EQ(scram_server_client_first(s, M(good[i][0]), &u, &ul), -1);
        scram_server_free(s);
    }

    /* Every truncation that cuts before the nonce fails. */
    size_t cut = strlen("n,,n=user,r=");
    for (size_t n = 0; n <= cut; n++) {
        s = scram_server_new(SCRAM_SHA_256);
        CHECK_EQ(scram_server_client_first(s, (const uint8_t *)RFC_CFIRST, n, NULL, NULL), -1);
        scram_server_free(s);
    }
}

static void test_client_final_malformed(void)
{
    const char *bad[] = {
        "",
        "c=biws",
        "c=biws,r=" RFC_CNONCE RFC_SNONCE,
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=",
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "r=" RFC_CNONCE RFC_SNONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=cD10bHMtdW5pcXVlLCw=,r=" RFC_CNONCE RFC_SNONCE
        ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* p=tls-unique,, */
        "c=biw,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        /* a proof of 33 bytes */
        "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char sfirst[SCRAM_MAX_MESSAGE], out[SCRAM_MAX_MESSAGE];
        scram_server_t *s = server_after_first(SCRAM_SHA_256, RFC_CFIRST, sfirst, sizeof(sfirst));
        int rc = scram_server_client_final(s, M(bad[i]), out, sizeof(out));
        if (rc != -1)
            fprintf(stderr, "  client-final case %zu: rc %d\n", i, rc);
        CHECK_EQ(rc, -1);
        CHECK_STR(out, "");
        scram_server_free(s);
    }
    /* Every truncation of the real message fails without crediting the proof. */
    for (size_t n = 0; n < strlen(RFC_CFINAL); n++) {
        char sfirst[SCRAM_MAX_MESSAGE], out[SCRAM_MAX_MESSAGE];
        scram_server_t *s = server_after_first(SCRAM_SHA_256, RFC_CFIRST, sfirst, sizeof(sfirst));
        int rc = scram_server_client_final(s, (const uint8_t *)RFC_CFINAL, n, out, sizeof(out));
        CHECK(rc == -1 || rc == 0);
        scram_server_free(s);
    }
    /* An output buffer too small for the signature. */
    char sfirst[SCRAM_MAX_MESSAGE], small[32];
    scram_server_t *s = server_after_first(SCRAM_SHA_256, RFC_CFIRST, sfirst, sizeof(sfirst));
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), small, sizeof(small)), -1);
    scram_server_free(s);
    /* And too small for server-first. */
    s = scram_server_new(SCRAM_SHA_256);
    scram_server_set_nonce(s, RFC_SNONCE);
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), NULL, NULL), 0);
    scram_cred_t cred = pencil_cred(SCRAM_SHA_256);
    CHECK_EQ(scram_server_first_message(s, &cred, small, sizeof(small)), -1);
    scram_server_free(s);
}

/* A fresh RFC client that has sent client-first; runs client-final on sfirst.
 */
static int client_final_for(const char *sfirst, size_t len, char *out, size_t cap)
{
    char first[256];
    scram_client_t *c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, first, sizeof(first));
    int rc = scram_client_final_message(c, (const uint8_t *)sfirst, len, out, cap);
    scram_client_free(c);
    return rc;
}

static void test_server_first_malformed(void)
{
    char out[SCRAM_MAX_MESSAGE], s[512];
    const char *bad[] = {
        "",
        "r=" RFC_CNONCE ",s=" RFC_SALT ",i=4096",                     /* no server part */
        "r=rOprNGfwEbeRWgbNEkqX" RFC_SNONCE ",s=" RFC_SALT ",i=4096", /* not our nonce */
        "r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4095",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=10000001",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=04096",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096x",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=-4096",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT,
        "r=" RFC_CNONCE RFC_SNONCE ",s=,i=4096",
        "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096", /* unpadded */
        "r=" RFC_CNONCE RFC_SNONCE ",i=4096,s=" RFC_SALT,
        "m=x,r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096,m=x",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096,",
        "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096,1=x",
        "r=" RFC_CNONCE "a b,s=" RFC_SALT ",i=4096",
        "e=other-error",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = client_final_for(bad[i], strlen(bad[i]), out, sizeof(out));
        if (rc != -1)
            fprintf(stderr, "  server-first case %zu accepted: %s\n", i, bad[i]);
        CHECK_EQ(rc, -1);
        CHECK_STR(out, "");
    }
    /* Salt: 64 bytes is the limit. */
    uint8_t salt[65];
    char s64[120];
    memset(salt, 7, sizeof(salt));
    scram_b64_encode(salt, 65, s64);
    snprintf(s, sizeof(s), "r=" RFC_CNONCE "x,s=%s,i=4096", s64);
    CHECK_EQ(client_final_for(s, strlen(s), out, sizeof(out)), -1);
    scram_b64_encode(salt, 64, s64);
    snprintf(s, sizeof(s), "r=" RFC_CNONCE "x,s=%s,i=4096", s64);
    CHECK(client_final_for(s, strlen(s), out, sizeof(out)) > 0);
    /* Iterations: both ends of the range. */
    snprintf(s, sizeof(s), "r=" RFC_CNONCE "x,s=" RFC_SALT ",i=4096");
    CHECK(client_final_for(s, strlen(s), out, sizeof(out)) > 0);
    /* A server extension is ignored, but is part of the AuthMessage. */
    char plain[SCRAM_MAX_MESSAGE];
    CHECK(client_final_for(RFC_SFIRST, strlen(RFC_SFIRST), plain, sizeof(plain)) > 0);
    CHECK_STR(plain, RFC_CFINAL);
    CHECK(client_final_for(RFC_SFIRST ",x=1", strlen(RFC_SFIRST ",x=1"), out, sizeof(out)) > 0);
    CHECK(strncmp(out, plain, strlen(plain) - 44) == 0 && strcmp(out, plain) != 0);
    /* Every truncation fails. */
    for (size_t n = 0; n < strlen(RFC_SFIRST); n++)
        CHECK_EQ(client_final_for(RFC_SFIRST, n, out, sizeof(out)), -1);
    /* Output buffer one byte short. */
    CHECK_EQ(client_final_for(RFC_SFIRST, strlen(RFC_SFIRST), out, strlen(RFC_CFINAL)), -1);
    CHECK_EQ(client_final_for(RFC_SFIRST, strlen(RFC_SFIRST), out, strlen(RFC_CFINAL) + 1),
             strlen(RFC_CFINAL));
}

/* 10000000 iterations is accepted by the parser; not run here (too slow), so
 * via the cache. */
static void test_max_iterations_cached(void)
{
    scram_salt_cache_t cache;
    memset(&cache, 0, sizeof(cache));
    cache.valid = 1;
    cache.mech = SCRAM_SHA_256;
    cache.salt_len = (size_t)scram_b64_decode(RFC_SALT, strlen(RFC_SALT), cache.salt, 64);
    cache.iterations = 10000000;
    memset(cache.salted, 1, sizeof(cache.salted));
    scram_client_t *c = scram_client_new(SCRAM_SHA_256, "user", "pencil", &cache);
    char out[SCRAM_MAX_MESSAGE];
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out, sizeof(out));
    CHECK(scram_client_final_message(c, M("r=" RFC_CNONCE "x,s=" RFC_SALT ",i=10000000"), out,
                                     sizeof(out)) > 0);
    scram_client_free(c);
}

static void test_salt_cache(void)
{
    scram_salt_cache_t cache;
    memset(&cache, 0, sizeof(cache));
    char out1[SCRAM_MAX_MESSAGE], out2[SCRAM_MAX_MESSAGE], out3[SCRAM_MAX_MESSAGE], h[129];
    scram_client_t *c = scram_client_new(SCRAM_SHA_512, "user", "pencil", &cache);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out1, sizeof(out1));
    CHECK(scram_client_final_message(c, M(RFC_SFIRST), out1, sizeof(out1)) > 0);
    CHECK_STR(out1, S512_CFINAL);
    scram_client_free(c);
    CHECK_EQ(cache.valid, 1);
    CHECK_EQ(cache.mech, SCRAM_SHA_512);
    CHECK_EQ(cache.iterations, 4096);
    CHECK_EQ(cache.salt_len, 16);
    hex(cache.salted, 64, h);
    CHECK_STR(h, S512_SALTED);

    /* A hit gives the same output. A wrong password gives it too, which shows
     * PBKDF2 did not run: the cache belongs to one password. */
    c = scram_client_new(SCRAM_SHA_512, "user", "pencil", &cache);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out2, sizeof(out2));
    CHECK(scram_client_final_message(c, M(RFC_SFIRST), out2, sizeof(out2)) > 0);
    CHECK_STR(out2, S512_CFINAL);
    CHECK_EQ(scram_client_verify_server_final(c, M(S512_SFINAL)), 0);
    scram_client_free(c);
    c = scram_client_new(SCRAM_SHA_512, "user", "not pencil", &cache);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out3, sizeof(out3));
    CHECK(scram_client_final_message(c, M(RFC_SFIRST), out3, sizeof(out3)) > 0);
    CHECK_STR(out3, S512_CFINAL);
    scram_client_free(c);

    /* Another mechanism, salt or count misses and refills the cache. */
    c = scram_client_new(SCRAM_SHA_256, "user", "pencil", &cache);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out3, sizeof(out3));
    CHECK(scram_client_final_message(c, M(RFC_SFIRST), out3, sizeof(out3)) > 0);
    CHECK_STR(out3, RFC_CFINAL);
    scram_client_free(c);
    CHECK_EQ(cache.mech, SCRAM_SHA_256);
    c = scram_client_new(SCRAM_SHA_256, "user", "pencil", &cache);
    scram_client_set_nonce(c, RFC_CNONCE);
    scram_client_first_message(c, out3, sizeof(out3));
    CHECK(scram_client_final_message(c, M("r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4097"),
                                     out3, sizeof(out3)) > 0);
    CHECK(strcmp(out3, RFC_CFINAL) != 0);
    CHECK_EQ(cache.iterations, 4097);
    scram_client_free(c);
}

static void test_order_and_limits(void)
{
    char out[SCRAM_MAX_MESSAGE], name[SCRAM_MAX_PASSWORD + 2];
    scram_cred_t cred = pencil_cred(SCRAM_SHA_256);
    /* Server: server-first before client-first, client-final before server-first.
     */
    scram_server_t *s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_first_message(s, &cred, out, sizeof(out)), -1);
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), out, sizeof(out)), -1);
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), NULL, NULL), 0);
    CHECK_EQ(scram_server_client_final(s, M(RFC_CFINAL), out, sizeof(out)), -1);
    scram_server_free(s);
    /* A credential with too few iterations is not offered. */
    s = scram_server_new(SCRAM_SHA_256);
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), NULL, NULL), 0);
    scram_cred_t weak = cred;
    weak.iterations = 4095;
    CHECK_EQ(scram_server_first_message(s, &weak, out, sizeof(out)), -1);
    scram_server_free(s);
    /* Bad test nonces are ignored (a random one is used). */
    s = scram_server_new(SCRAM_SHA_256);
    scram_server_set_nonce(s, "a,b");
    CHECK_EQ(scram_server_client_first(s, M(RFC_CFIRST), NULL, NULL), 0);
    CHECK_EQ(scram_server_first_message(s, &cred, out, sizeof(out)),
             strlen(RFC_SFIRST) - strlen(RFC_SNONCE) + 32);
    scram_server_free(s);

    /* Client: final before first; first twice. */
    scram_client_t *c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    CHECK_EQ(scram_client_final_message(c, M(RFC_SFIRST), out, sizeof(out)), -1);
    scram_client_free(c);
    c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    CHECK(scram_client_first_message(c, out, sizeof(out)) > 0);
    CHECK_EQ(scram_client_first_message(c, out, sizeof(out)), -1);
    CHECK_EQ(scram_client_verify_server_final(c, M(RFC_SFINAL)), -1);
    scram_client_free(c);
    scram_client_free(NULL);
    c = scram_client_new(SCRAM_SHA_256, "user", "pencil", NULL);
    CHECK_EQ(scram_client_first_message(c, out, 10), -1);
    scram_client_free(c);

    /* User and password bounds. */
    memset(name, 'x', sizeof(name));
    name[SCRAM_MAX_USER] = '\0';
    c = scram_client_new(SCRAM_SHA_256, name, "p", NULL);
    CHECK(c != NULL);
    scram_client_free(c);
    name[SCRAM_MAX_USER] = 'x';
    name[SCRAM_MAX_USER + 1] = '\0';
    CHECK(scram_client_new(SCRAM_SHA_256, name, "p", NULL) == NULL);
    memset(name, 'x', sizeof(name));
    name[SCRAM_MAX_PASSWORD] = '\0';
    c = scram_client_new(SCRAM_SHA_256, "u", name, NULL);
    CHECK(c != NULL);
    scram_client_free(c);
    name[SCRAM_MAX_PASSWORD] = 'x';
    name[SCRAM_MAX_PASSWORD + 1] = '\0';
    CHECK(scram_client_new(SCRAM_SHA_256, "u", name, NULL) == NULL);
    CHECK(scram_client_new(SCRAM_SHA_256, "", "p", NULL) == NULL);
    CHECK(scram_client_new(SCRAM_SHA_256, "u", "", NULL) == NULL);
    CHECK(scram_client_new(SCRAM_SHA_256, NULL, "p", NULL) == NULL);
}

int main(void)
{
    test_mechs();
    test_b64();
    test_derivation();
    test_rfc7677_client();
    test_rfc7677_server();
    test_gs2_variants();
    test_sha512_vectors();
    test_round_trips();
    test_tampered();
    test_client_first_malformed();
    test_client_final_malformed();
    test_server_first_malformed();
    test_max_iterations_cached();
    test_salt_cache();
    test_order_and_limits();
    return unit_done("scram");
}
