/*
 * test_ksasl.c - SaslHandshake / SaslAuthenticate codec and SASL/PLAIN:
 * hand-built frames checked byte by byte (the request frames are the ones
 * in tests/fuzz/seeds/req-Sasl*), round trips through eosproxy's own header
 * parser and request validator for every version, truncation at every byte,
 * trailing bytes, flexible v2 with and without tagged fields, and the PLAIN
 * edge cases of RFC 4616.
 */
#include "ksasl.h"
#include "kproto.h"
#include "unit.h"

#include <stdlib.h>

#define CHECK_BYTES(w, want)                                                                       \
    do {                                                                                           \
        CHECK_EQ((w).len, sizeof(want));                                                           \
        CHECK((w).len == sizeof(want) && memcmp((w).buf, (want), sizeof(want)) == 0);              \
    } while (0)

static int kstr_is(kstr_t s, const char *want)
{
    return s.len >= 0 && (size_t)s.len == strlen(want) && memcmp(s.ptr, want, (size_t)s.len) == 0;
}

static int kbytes_is(kbytes_t b, const void *want, size_t n)
{
    return b.len >= 0 && (size_t)b.len == n && (n == 0 || memcmp(b.ptr, want, n) == 0);
}

/* Copies len bytes to the heap so that ASan catches any read past them. */
static uint8_t *dup_bytes(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (len)
        memcpy(d, p, len);
    return d;
}

/* ---- SaslHandshake ---- */

static void test_handshake_req_parse(void)
{
    static const uint8_t body[] = {0, 5, 'P', 'L', 'A', 'I', 'N'};
    kstr_t m;
    CHECK_EQ(ksasl_handshake_req_parse(body, sizeof(body), &m), 0);
    CHECK(kstr_is(m, "PLAIN"));
    CHECK(m.ptr == (const char *)body + 2);
    /* Every truncation fails, and so does a trailing byte. */
    for (size_t n = 0; n < sizeof(body); n++) {
        uint8_t *d = dup_bytes(body, n);
        CHECK_EQ(ksasl_handshake_req_parse(d, n, &m), -1);
        CHECK_EQ(m.len, -1);
        free(d);
    }
    static const uint8_t trailing[] = {0, 5, 'P', 'L', 'A', 'I', 'N', 0};
    CHECK_EQ(ksasl_handshake_req_parse(trailing, sizeof(trailing), &m), -1);
    /* Null and negative lengths; the empty name parses (the caller refuses it). */
    static const uint8_t null_str[] = {0xff, 0xff};
    CHECK_EQ(ksasl_handshake_req_parse(null_str, sizeof(null_str), &m), -1);
    static const uint8_t neg[] = {0xff, 0xfe, 'a'};
    CHECK_EQ(ksasl_handshake_req_parse(neg, sizeof(neg), &m), -1);
    static const uint8_t empty[] = {0, 0};
    CHECK_EQ(ksasl_handshake_req_parse(empty, sizeof(empty), &m), 0);
    CHECK_EQ(m.len, 0);
    CHECK_EQ(ksasl_handshake_req_parse(NULL, 0, &m), -1);
}

static void test_handshake_req_write(void)
{
    /* The frame of tests/fuzz/seeds/req-SaslHandshake-v1.bin, with its size prefix. */
    static const uint8_t want[] = {
        0,   0, 0,  0x1c, 0,   17,  0,   1,   1,   2,   3,   4,   0,   3,   'c', 'l',
        'i', 0, 13, 'S',  'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6',
    };
    kwriter_t w;
    kw_init(&w, 16);
    CHECK_EQ(ksasl_handshake_req_write(&w, 1, 0x01020304, "cli", "SCRAM-SHA-256"), 0);
    CHECK_BYTES(w, want);
    for (int16_t v = 0; v <= 1; v++) {
        kw_reset(&w);
        CHECK_EQ(ksasl_handshake_req_write(&w, v, 77, v ? NULL : "eosproxy", "PLAIN"), 0);
        kreq_hdr_t h;
        const char *err = NULL;
        size_t eoff = 0;
        CHECK_EQ(kbe32(w.buf), (int32_t)w.len - 4);
        CHECK_EQ(kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err), 0);
        CHECK_EQ(h.api_key, KAPI_SaslHandshake);
        CHECK_EQ(h.api_version, v);
        CHECK_EQ(h.correlation_id, 77);
        CHECK(v ? h.client_id.len == -1 : kstr_is(h.client_id, "eosproxy"));
        CHECK_EQ(kproto_validate_request(&h, w.buf + 4, w.len - 4, &eoff, &err), 0);
        kstr_t m;
        CHECK_EQ(ksasl_handshake_req_parse(w.buf + 4 + h.body_off, w.len - 4 - h.body_off, &m), 0);
        CHECK(kstr_is(m, "PLAIN"));
    }
    /* Refusals write nothing. */
    kw_reset(&w);
    CHECK_EQ(ksasl_handshake_req_write(&w, 2, 1, "cli", "PLAIN"), -1);
    CHECK_EQ(ksasl_handshake_req_write(&w, -1, 1, "cli", "PLAIN"), -1);
    CHECK_EQ(ksasl_handshake_req_write(&w, 1, 1, "cli", NULL), -1);
    char *big = malloc(40000);
    memset(big, 'M', 39999);
    big[39999] = '\0';
    CHECK_EQ(ksasl_handshake_req_write(&w, 1, 1, "cli", big), -1);
    CHECK_EQ(w.len, 0);
    free(big);
    kw_free(&w);
}

static void test_handshake_resp(void)
{
    const char *mechs[] = {"PLAIN", "SCRAM-SHA-256", ""};
    kwriter_t w;
    kw_init(&w, 8);
    CHECK_EQ(ksasl_handshake_resp_write(&w, 9, 33, mechs, 3), 0);
    static const uint8_t full[] = {0,   0,   0,   34,  0,   0,   0,   9,   0,   33,  0,   0,   0,
                                   3,   0,   5,   'P', 'L', 'A', 'I', 'N', 0,   13,  'S', 'C', 'R',
                                   'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,   0};
    CHECK_BYTES(w, full);

    int32_t corr;
    int16_t ec;
    kstr_t got[4];
    size_t n;
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, got, 4, &n), 0);
    CHECK_EQ(corr, 9);
    CHECK_EQ(ec, 33);
    CHECK_EQ(n, 3);
    CHECK(kstr_is(got[0], "PLAIN") && kstr_is(got[1], "SCRAM-SHA-256") && kstr_is(got[2], ""));
    /* cap below the count: n still says 3, only 1 view written. */
    got[1] = (kstr_t){NULL, -7};
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, got, 1, &n), 0);
    CHECK_EQ(n, 3);
    CHECK(kstr_is(got[0], "PLAIN") && got[1].len == -7);
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, NULL, 0, &n), 0);
    CHECK_EQ(n, 3);
    /* Every truncation and a trailing byte fail. */
    for (size_t k = 0; k < w.len - 4; k++) {
        uint8_t *d = dup_bytes(w.buf + 4, k);
        CHECK_EQ(ksasl_handshake_resp_parse(d, k, &corr, &ec, got, 4, &n), -1);
        CHECK_EQ(n, 0);
        free(d);
    }
    kw_i8(&w, 0);
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, got, 4, &n), -1);

    /* No mechanisms (as a broker answers with SASL off). */
    kw_reset(&w);
    CHECK_EQ(ksasl_handshake_resp_write(&w, -1, 0, NULL, 0), 0);
    static const uint8_t none[] = {0, 0, 0, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0};
    CHECK_BYTES(w, none);
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, got, 4, &n), 0);
    CHECK_EQ(corr, -1);
    CHECK_EQ(n, 0);

    /* Null array, null name, a count that cannot fit. */
    static const uint8_t null_arr[] = {0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(ksasl_handshake_resp_parse(null_arr, sizeof(null_arr), &corr, &ec, got, 4, &n), -1);
    static const uint8_t null_name[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0xff, 0xff};
    CHECK_EQ(ksasl_handshake_resp_parse(null_name, sizeof(null_name), &corr, &ec, got, 4, &n), -1);
    static const uint8_t huge[] = {0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0};
    CHECK_EQ(ksasl_handshake_resp_parse(huge, sizeof(huge), &corr, &ec, got, 4, &n), -1);

    /* Writer refusals: too many names, a NULL name. */
    const char *many[KSASL_MAX_MECHANISMS + 1];
    for (size_t i = 0; i <= KSASL_MAX_MECHANISMS; i++)
        many[i] = "PLAIN";
    kw_reset(&w);
    CHECK_EQ(ksasl_handshake_resp_write(&w, 1, 0, many, KSASL_MAX_MECHANISMS + 1), -1);
    CHECK_EQ(ksasl_handshake_resp_write(&w, 1, 0, NULL, 1), -1);
    const char *with_null[] = {"PLAIN", NULL};
    CHECK_EQ(ksasl_handshake_resp_write(&w, 1, 0, with_null, 2), -1);
    CHECK_EQ(w.len, 0);
    CHECK_EQ(ksasl_handshake_resp_write(&w, 1, 0, many, KSASL_MAX_MECHANISMS), 0);
    CHECK_EQ(ksasl_handshake_resp_parse(w.buf + 4, w.len - 4, &corr, &ec, got, 4, &n), 0);
    CHECK_EQ(n, KSASL_MAX_MECHANISMS);
    kw_free(&w);
}

/* ---- SaslAuthenticate requests ---- */

static void test_authenticate_req_parse(void)
{
    kbytes_t b;
    static const uint8_t v0[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    static const uint8_t v2[] = {4, 'a', 'b', 'c', 0};
    static const uint8_t v2_tags[] = {4, 'a', 'b', 'c', 2, 0, 2, 'x', 'y', 5, 0};
    for (int16_t v = 0; v <= 1; v++) {
        CHECK_EQ(ksasl_authenticate_req_parse(v, v0, sizeof(v0), &b), 0);
        CHECK(kbytes_is(b, "abc", 3) && b.ptr == v0 + 4);
        CHECK_EQ(ksasl_authenticate_req_parse(v, v2, sizeof(v2), &b), -1);
    }
    CHECK_EQ(ksasl_authenticate_req_parse(2, v2, sizeof(v2), &b), 0);
    CHECK(kbytes_is(b, "abc", 3) && b.ptr == v2 + 1);
    CHECK_EQ(ksasl_authenticate_req_parse(2, v2_tags, sizeof(v2_tags), &b), 0);
    CHECK(kbytes_is(b, "abc", 3));
    CHECK_EQ(ksasl_authenticate_req_parse(2, v0, sizeof(v0), &b), -1);
    /* v2 without its tag section is truncated. */
    CHECK_EQ(ksasl_authenticate_req_parse(2, v2, sizeof(v2) - 1, &b), -1);

    /* Truncation at every byte, each version. */
    struct {
        int16_t v;
        const uint8_t *p;
        size_t n;
    } cases[] = {{0, v0, sizeof(v0)},
                 {1, v0, sizeof(v0)},
                 {2, v2, sizeof(v2)},
                 {2, v2_tags, sizeof(v2_tags)}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t k = 0; k < cases[c].n; k++) {
            uint8_t *d = dup_bytes(cases[c].p, k);
            CHECK_EQ(ksasl_authenticate_req_parse(cases[c].v, d, k, &b), -1);
            CHECK_EQ(b.len, -1);
            free(d);
        }
        uint8_t *d = malloc(cases[c].n + 1);
        memcpy(d, cases[c].p, cases[c].n);
        d[cases[c].n] = 0;
        CHECK_EQ(ksasl_authenticate_req_parse(cases[c].v, d, cases[c].n + 1, &b), -1);
        free(d);
    }

    /* Null bytes are malformed; empty bytes are fine. */
    static const uint8_t null0[] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t null2[] = {0, 0};
    static const uint8_t empty0[] = {0, 0, 0, 0};
    static const uint8_t empty2[] = {1, 0};
    static const uint8_t neg0[] = {0xff, 0xff, 0xff, 0xfe};
    CHECK_EQ(ksasl_authenticate_req_parse(0, null0, sizeof(null0), &b), -1);
    CHECK_EQ(ksasl_authenticate_req_parse(2, null2, sizeof(null2), &b), -1);
    CHECK_EQ(ksasl_authenticate_req_parse(0, neg0, sizeof(neg0), &b), -1);
    CHECK_EQ(ksasl_authenticate_req_parse(1, empty0, sizeof(empty0), &b), 0);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(ksasl_authenticate_req_parse(2, empty2, sizeof(empty2), &b), 0);
    CHECK_EQ(b.len, 0);
    /* A varint length past the frame; bad tags. */
    static const uint8_t long2[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0};
    CHECK_EQ(ksasl_authenticate_req_parse(2, long2, sizeof(long2), &b), -1);
    static const uint8_t badtag[] = {4, 'a', 'b', 'c', 1, 0, 9, 'x'};
    CHECK_EQ(ksasl_authenticate_req_parse(2, badtag, sizeof(badtag), &b), -1);
    /* Versions outside 0..2. */
    CHECK_EQ(ksasl_authenticate_req_parse(3, v2, sizeof(v2), &b), -1);
    CHECK_EQ(ksasl_authenticate_req_parse(-1, v0, sizeof(v0), &b), -1);
}

static void test_authenticate_req_write(void)
{
    /* tests/fuzz/seeds/req-SaslAuthenticate-v0.bin and -v2.bin, with their size prefixes. */
    static const uint8_t want0[] = {0,   0,   0,   0x1b, 0,   36,  0,   0,   1,  2,  3,
                                    4,   0,   3,   'c',  'l', 'i', 0,   0,   0,  10, 0,
                                    'u', 's', 'e', 'r',  0,   'p', 'a', 's', 's'};
    static const uint8_t want2[] = {0,   0,   0,   0x1a, 0,   36,  0,   2,   1,   2,
                                    3,   4,   0,   3,    'c', 'l', 'i', 0,   11,  0,
                                    'u', 's', 'e', 'r',  0,   'p', 'a', 's', 's', 0};
    kwriter_t w;
    kw_init(&w, 8);
    CHECK_EQ(
        ksasl_authenticate_req_write(&w, 0, 0x01020304, "cli", (const uint8_t *)"\0user\0pass", 10),
        0);
    CHECK_BYTES(w, want0);
    kw_reset(&w);
    CHECK_EQ(
        ksasl_authenticate_req_write(&w, 2, 0x01020304, "cli", (const uint8_t *)"\0user\0pass", 10),
        0);
    CHECK_BYTES(w, want2);

    /* Every version through the header parser, the validator and the body parser. */
    for (int16_t v = 0; v <= 2; v++) {
        for (int empty = 0; empty <= 1; empty++) {
            kw_reset(&w);
            const uint8_t *auth = empty ? NULL : (const uint8_t *)"n,,n=u,r=abc";
            size_t alen = empty ? 0 : 12;
            CHECK_EQ(ksasl_authenticate_req_write(&w, v, 1000 + v, NULL, auth, alen), 0);
            kreq_hdr_t h;
            const char *err = NULL;
            size_t eoff = 0;
            CHECK_EQ(kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err), 0);
            CHECK_EQ(h.api_key, KAPI_SaslAuthenticate);
            CHECK_EQ(h.api_version, v);
            CHECK_EQ(h.correlation_id, 1000 + v);
            CHECK_EQ(h.client_id.len, -1);
            CHECK_EQ(kproto_validate_request(&h, w.buf + 4, w.len - 4, &eoff, &err), 0);
            kbytes_t b;
            CHECK_EQ(
                ksasl_authenticate_req_parse(v, w.buf + 4 + h.body_off, w.len - 4 - h.body_off, &b),
                0);
            CHECK(kbytes_is(b, auth, alen));
        }
    }
    kw_reset(&w);
    CHECK_EQ(ksasl_authenticate_req_write(&w, 3, 1, "cli", (const uint8_t *)"x", 1), -1);
    CHECK_EQ(ksasl_authenticate_req_write(&w, 0, 1, "cli", NULL, 1), -1);
    CHECK_EQ(
        ksasl_authenticate_req_write(&w, 0, 1, "cli", (const uint8_t *)"x", (size_t)INT32_MAX + 1),
        -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

/* ---- SaslAuthenticate responses ---- */

static void test_authenticate_resp_bytes(void)
{
    kwriter_t w;
    kw_init(&w, 8);
    /* v0: no lifetime; null message. */
    static const uint8_t want0[] = {0,    0,    0, 15, 0, 0, 0,   5,   0,  0,
                                    0xff, 0xff, 0, 0,  0, 3, 'v', '=', 'x'};
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 0, 5, 0, NULL, (const uint8_t *)"v=x", 3, 99), 0);
    CHECK_BYTES(w, want0);
    /* v1: message, empty bytes, lifetime. */
    kw_reset(&w);
    static const uint8_t want1[] = {0,   0, 0, 23, 0, 0, 0, 6, 0, 58, 0, 3,    'b', 'a',
                                    'd', 0, 0, 0,  0, 0, 0, 0, 0, 0,  0, 0x0e, 0x10};
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 1, 6, 58, "bad", NULL, 0, 3600), 0);
    CHECK_BYTES(w, want1);
    /* v2: header tags, compact string and bytes, lifetime, body tags. */
    kw_reset(&w);
    static const uint8_t want2[] = {0, 0,   0,   21,  0, 0, 0, 7,  0, /* header tags */
                                    0, 0,   0,                        /* error 0, null message */
                                    4, 'v', '=', 'x',                 /* auth */
                                    0, 0,   0,   0,   0, 0, 0, 60,    /* lifetime */
                                    0};
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 2, 7, 0, NULL, (const uint8_t *)"v=x", 3, 60), 0);
    CHECK_BYTES(w, want2);
    kw_reset(&w);
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 2, 8, 58, "no", NULL, 0, 0), 0);
    static const uint8_t want2m[] = {0, 0,  0, 20,                /* size */
                                     0, 0,  0, 8,   0,            /* corr, header tags */
                                     0, 58, 3, 'n', 'o',          /* error, message "no" */
                                     1,                           /* empty auth */
                                     0, 0,  0, 0,   0,   0, 0, 0, /* lifetime */
                                     0};
    CHECK_BYTES(w, want2m);

    /* Refusals. */
    kw_reset(&w);
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 3, 1, 0, NULL, NULL, 0, 0), -1);
    CHECK_EQ(ksasl_authenticate_resp_write(&w, -1, 1, 0, NULL, NULL, 0, 0), -1);
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 1, 1, 0, NULL, NULL, 1, 0), -1);
    char *big = malloc(40000);
    memset(big, 'e', 39999);
    big[39999] = '\0';
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 2, 1, 58, big, NULL, 0, 0), -1);
    CHECK_EQ(w.len, 0);
    big[32767] = '\0'; /* the longest a message may be */
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 1, 1, 58, big, NULL, 0, 0), 0);
    int32_t corr;
    int16_t ec;
    kstr_t msg;
    kbytes_t b;
    int64_t life;
    CHECK_EQ(ksasl_authenticate_resp_parse(1, w.buf + 4, w.len - 4, &corr, &ec, &msg, &b, &life),
             0);
    CHECK_EQ(msg.len, 32767);
    free(big);
    kw_free(&w);
}

static void test_authenticate_resp_roundtrip(void)
{
    const char *msgs[] = {NULL, "", "Authentication failed: Invalid username or password"};
    for (int16_t v = 0; v <= 2; v++) {
        for (size_t m = 0; m < 3; m++) {
            kwriter_t w;
            kw_init(&w, 8);
            const char *auth = m == 1 ? "" : "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
            CHECK_EQ(ksasl_authenticate_resp_write(&w, v, 100 + v, m ? 58 : 0, msgs[m],
                                                   (const uint8_t *)auth, strlen(auth),
                                                   0x0102030405060708ll),
                     0);
            CHECK_EQ(kbe32(w.buf), (int32_t)w.len - 4);
            int32_t corr;
            int16_t ec;
            kstr_t msg;
            kbytes_t b;
            int64_t life;
            CHECK_EQ(
                ksasl_authenticate_resp_parse(v, w.buf + 4, w.len - 4, &corr, &ec, &msg, &b, &life),
                0);
            CHECK_EQ(corr, 100 + v);
            CHECK_EQ(ec, m ? 58 : 0);
            CHECK(msgs[m] ? kstr_is(msg, msgs[m]) : msg.len == -1);
            CHECK(kbytes_is(b, auth, strlen(auth)));
            CHECK_EQ(life, v >= 1 ? 0x0102030405060708ll : 0);
            /* Every truncation fails; a trailing byte fails; other versions fail. */
            for (size_t k = 0; k < w.len - 4; k++) {
                uint8_t *d = dup_bytes(w.buf + 4, k);
                CHECK_EQ(ksasl_authenticate_resp_parse(v, d, k, &corr, &ec, &msg, &b, &life), -1);
                CHECK(corr == 0 && ec == 0 && msg.len == -1 && b.len == -1 && life == 0);
                free(d);
            }
            size_t n = w.len - 4;
            kw_i8(&w, 0);
            CHECK_EQ(
                ksasl_authenticate_resp_parse(v, w.buf + 4, n + 1, &corr, &ec, &msg, &b, &life),
                -1);
            for (int16_t o = 0; o <= 2; o++)
                if (o != v && !(m == 1 && ((o == 0 && v == 1) || (o == 1 && v == 0))))
                    CHECK_EQ(
                        ksasl_authenticate_resp_parse(o, w.buf + 4, n, &corr, &ec, &msg, &b, &life),
                        -1);
            CHECK_EQ(ksasl_authenticate_resp_parse(3, w.buf + 4, n, &corr, &ec, &msg, &b, &life),
                     -1);
            kw_free(&w);
        }
    }
}

/* v2 responses with tagged fields present in the header and in the body. */
static void test_authenticate_resp_tags(void)
{
    static const uint8_t frame[] = {
        0, 0,   0, 7,                   /* corr */
        1, 5,   2, 'h', 'i',            /* header: one tag (5, "hi") */
        0, 0,                           /* error */
        0,                              /* null message */
        2, 'z',                         /* auth "z" */
        0, 0,   0, 0,   0,   0,   1, 0, /* lifetime 256 */
        2, 0,   0, 1,   1,   'x',       /* body: two tags */
    };
    int32_t corr;
    int16_t ec;
    kstr_t msg;
    kbytes_t b;
    int64_t life;
    CHECK_EQ(ksasl_authenticate_resp_parse(2, frame, sizeof(frame), &corr, &ec, &msg, &b, &life),
             0);
    CHECK_EQ(corr, 7);
    CHECK(kbytes_is(b, "z", 1));
    CHECK_EQ(life, 256);
    CHECK_EQ(msg.len, -1);
    for (size_t k = 0; k < sizeof(frame); k++) {
        uint8_t *d = dup_bytes(frame, k);
        CHECK_EQ(ksasl_authenticate_resp_parse(2, d, k, &corr, &ec, &msg, &b, &life), -1);
        free(d);
    }
    /* Null auth bytes are malformed. */
    static const uint8_t null_auth[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(
        ksasl_authenticate_resp_parse(2, null_auth, sizeof(null_auth), &corr, &ec, &msg, &b, &life),
        -1);
    static const uint8_t null_auth0[] = {0, 0, 0, 7, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(ksasl_authenticate_resp_parse(0, null_auth0, sizeof(null_auth0), &corr, &ec, &msg, &b,
                                           &life),
             -1);
}

/* ---- SASL/PLAIN ---- */

static void test_plain(void)
{
    kstr_t z, u, p;
    const uint8_t *t = (const uint8_t *)"\0alice\0s3cret";
    CHECK_EQ(ksasl_plain_parse(t, 13, &z, &u, &p), 0);
    CHECK(z.len == 0 && kstr_is(u, "alice") && kstr_is(p, "s3cret"));
    CHECK(u.ptr == (const char *)t + 1 && p.ptr == (const char *)t + 7);
    t = (const uint8_t *)"alice\0alice\0s3cret";
    CHECK_EQ(ksasl_plain_parse(t, 18, &z, &u, &p), 0);
    CHECK(kstr_is(z, "alice") && kstr_is(u, "alice") && kstr_is(p, "s3cret"));
    /* A password may hold any byte but NUL, including spaces and UTF-8. */
    t = (const uint8_t *)"\0a\0 p\xc3\xa9 ";
    CHECK_EQ(ksasl_plain_parse(t, 8, &z, &u, &p), 0);
    CHECK(kstr_is(p, " p\xc3\xa9 "));

    struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"", 0},
        {"alice", 5},
        {"\0alice", 6},    /* one NUL */
        {"\0alice\0", 7},  /* empty password */
        {"\0\0s3cret", 8}, /* empty user */
        {"\0\0", 2},
        {"bob\0alice\0s3cret", 16},    /* authzid is someone else */
        {"alic\0alice\0s3cret", 17},   /* a prefix */
        {"alicex\0alice\0s3cret", 19}, /* longer */
        {"\0alice\0s3\0cret", 14},     /* three NULs */
        {"\0alice\0s3cret\0", 14},     /* trailing NUL */
        {"\0\0\0", 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *d = dup_bytes(bad[i].s, bad[i].n);
        int rc = ksasl_plain_parse(d, bad[i].n, &z, &u, &p);
        if (rc != -1)
            fprintf(stderr, "  plain case %zu accepted\n", i);
        CHECK_EQ(rc, -1);
        CHECK(z.len == -1 && u.len == -1 && p.len == -1);
        free(d);
    }
    CHECK_EQ(ksasl_plain_parse(NULL, 0, &z, &u, &p), -1);

    /* Writer: bytes and round trip. */
    kwriter_t w;
    kw_init(&w, 4);
    CHECK_EQ(ksasl_plain_write(&w, "eosproxy", "pw"), 0);
    static const uint8_t want[] = {0, 'e', 'o', 's', 'p', 'r', 'o', 'x', 'y', 0, 'p', 'w'};
    CHECK_BYTES(w, want);
    CHECK_EQ(ksasl_plain_parse(w.buf, w.len, &z, &u, &p), 0);
    CHECK(z.len == 0 && kstr_is(u, "eosproxy") && kstr_is(p, "pw"));
    kw_reset(&w);
    CHECK_EQ(ksasl_plain_write(&w, "", "pw"), -1);
    CHECK_EQ(ksasl_plain_write(&w, "u", ""), -1);
    CHECK_EQ(ksasl_plain_write(&w, NULL, "pw"), -1);
    CHECK_EQ(ksasl_plain_write(&w, "u", NULL), -1);
    CHECK_EQ(w.len, 0);
    /* A writer at its cap fails cleanly. */
    w.max = 5;
    CHECK_EQ(ksasl_plain_write(&w, "user", "password"), -1);
    kw_free(&w);
}

/* A frame written with a writer at its cap fails, for every writer. */
static void test_writer_cap(void)
{
    kwriter_t w;
    kw_init(&w, 4);
    w.max = 10;
    const char *mechs[] = {"SCRAM-SHA-512"};
    CHECK_EQ(ksasl_handshake_resp_write(&w, 1, 0, mechs, 1), -1);
    kw_free(&w);
    kw_init(&w, 4);
    w.max = 10;
    CHECK_EQ(ksasl_handshake_req_write(&w, 1, 1, "cli", "SCRAM-SHA-512"), -1);
    kw_free(&w);
    kw_init(&w, 4);
    w.max = 10;
    CHECK_EQ(ksasl_authenticate_req_write(&w, 2, 1, "cli", (const uint8_t *)"abc", 3), -1);
    kw_free(&w);
    kw_init(&w, 4);
    w.max = 10;
    CHECK_EQ(ksasl_authenticate_resp_write(&w, 2, 1, 0, "x", (const uint8_t *)"abc", 3, 0), -1);
    kw_free(&w);
}

int main(void)
{
    test_handshake_req_parse();
    test_handshake_req_write();
    test_handshake_resp();
    test_authenticate_req_parse();
    test_authenticate_req_write();
    test_authenticate_resp_bytes();
    test_authenticate_resp_roundtrip();
    test_authenticate_resp_tags();
    test_plain();
    test_writer_cap();
    return unit_done("ksasl");
}
