/*
 * test_kinitpid.c - InitProducerId codec: hand-built frames for every
 * version 0..4 (flexible from v2), round trips, truncation and trailing
 * bytes, and the v3 epoch-bump fields.
 */
#include "kinitpid.h"
#include "kproto.h"
#include "unit.h"

#include <stdlib.h>

static const kstr_t CID = {"eosproxy", 8};

/* Request v1: header v1, null transactional id, timeout 60000. */
static void test_request_v1_bytes(void)
{
    kwriter_t w;
    kw_init(&w, 64);
    kinitpid_req_t req = {{NULL, -1}, 60000, -1, -1};
    CHECK_EQ(kinitpid_req_write(&w, 1, 7, CID, &req), 0);
    static const uint8_t want[] = {
        0, 0,  0,    24,                                             /* size */
        0, 22, 0,    1,    0,   0,   0,   7,                         /* api 22 v1, correlation 7 */
        0, 8,  'e',  'o',  's', 'p', 'r', 'o', 'x', 'y', 0xff, 0xff, /* TransactionalId null */
        0, 0,  0xea, 0x60,                                           /* 60000 */
    };
    CHECK_EQ(w.len, sizeof(want));
    CHECK(w.len == sizeof(want) && memcmp(w.buf, want, sizeof(want)) == 0);
    kw_free(&w);
}

/* Request v4: header v2 (tags), compact null string, pid/epoch, tags. */
static void test_request_v4_bytes(void)
{
    kwriter_t w;
    kw_init(&w, 64);
    kinitpid_req_t req = {{NULL, -1}, 60000, 0x0102030405060708ll, 9};
    CHECK_EQ(kinitpid_req_write(&w, 4, 1, CID, &req), 0);
    static const uint8_t want[] = {
        0,   0,   0,    35,   0,   22,  0,   4, 0, 0, 0, 1, 0, 8, 'e',
        'o', 's', 'p',  'r',  'o', 'x', 'y', 0,                      /* header tags */
        0,                                                           /* compact null */
        0,   0,   0xea, 0x60, 1,   2,   3,   4, 5, 6, 7, 8, 0, 9, 0, /* body tags */
    };
    CHECK_EQ(w.len, sizeof(want));
    CHECK(w.len == sizeof(want) && memcmp(w.buf, want, sizeof(want)) == 0);
    /* The header parses with eosproxy's own table and the body validates. */
    kreq_hdr_t h;
    const char *err = NULL;
    CHECK_EQ(kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err), 0);
    CHECK_EQ(h.api_key, KAPI_InitProducerId);
    CHECK_EQ(h.api_version, 4);
    size_t eoff = 0;
    CHECK_EQ(kproto_validate_request(&h, w.buf + 4, w.len - 4, &eoff, &err), 0);
    kinitpid_req_t back;
    CHECK_EQ(kinitpid_req_parse(4, w.buf + 4 + h.body_off, w.len - 4 - h.body_off, &back), 0);
    CHECK_EQ(back.transactional_id.len, -1);
    CHECK_EQ(back.transaction_timeout_ms, 60000);
    CHECK_EQ(back.producer_id, 0x0102030405060708ll);
    CHECK_EQ(back.producer_epoch, 9);
    kw_free(&w);
}

/* Every version round-trips through the header parser and body parser. */
static void test_request_roundtrip_all(void)
{
    for (int16_t v = 0; v <= 4; v++) {
        kwriter_t w;
        kw_init(&w, 64);
        kinitpid_req_t req = {{"txn-1", 5}, 1234, v >= 3 ? 42 : -1, v >= 3 ? 3 : -1};
        CHECK_EQ(kinitpid_req_write(&w, v, 100 + v, CID, &req), 0);
        kreq_hdr_t h;
        const char *err = NULL;
        CHECK_EQ(kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err), 0);
        CHECK_EQ(h.correlation_id, 100 + v);
        size_t eoff = 0;
        CHECK_EQ(kproto_validate_request(&h, w.buf + 4, w.len - 4, &eoff, &err), 0);
        kinitpid_req_t back;
        const uint8_t *body = w.buf + 4 + h.body_off;
        size_t blen = w.len - 4 - h.body_off;
        CHECK_EQ(kinitpid_req_parse(v, body, blen, &back), 0);
        CHECK_EQ(back.transactional_id.len, 5);
        CHECK(back.transactional_id.len == 5 && !memcmp(back.transactional_id.ptr, "txn-1", 5));
        CHECK_EQ(back.transaction_timeout_ms, 1234);
        CHECK_EQ(back.producer_id, v >= 3 ? 42 : -1);
        CHECK_EQ(back.producer_epoch, v >= 3 ? 3 : -1);
        /* Truncated bodies and a trailing byte are refused. */
        for (size_t cut = 0; cut < blen; cut++)
            CHECK(kinitpid_req_parse(v, body, cut, &back) != 0);
        uint8_t *longer = malloc(blen + 1);
        memcpy(longer, body, blen);
        longer[blen] = 0;
        CHECK_EQ(kinitpid_req_parse(v, longer, blen + 1, &back), KR_EINVALID);
        free(longer);
        kw_free(&w);
    }
}

/* A bump (pid/epoch) cannot be expressed below v3; bad versions fail. */
static void test_request_refusals(void)
{
    kwriter_t w;
    kw_init(&w, 64);
    kinitpid_req_t bump = {{NULL, -1}, 60000, 5, 1};
    CHECK_EQ(kinitpid_req_write(&w, 2, 1, CID, &bump), -1);
    CHECK_EQ(kinitpid_req_write(&w, 5, 1, CID, &bump), -1);
    CHECK_EQ(kinitpid_req_write(&w, -1, 1, CID, &bump), -1);
    CHECK_EQ(kinitpid_req_write(&w, 3, 1, CID, &bump), 0);
    kinitpid_req_t r;
    CHECK_EQ(kinitpid_req_parse(5, w.buf, w.len, &r), KR_EINVALID);
    kw_free(&w);
}

/* Response v0 (header v0) and v2 (header v1 with tags), hand-built. */
static void test_response_bytes(void)
{
    static const uint8_t v0[] = {
        0, 0, 0, 9,                   /* correlation */
        0, 0, 0, 0,                   /* throttle */
        0, 0,                         /* error */
        0, 0, 0, 0, 0, 0, 0x10, 0x01, /* pid 4097 */
        0, 2,                         /* epoch */
    };
    kinitpid_resp_t r;
    CHECK_EQ(kinitpid_resp_parse(0, v0, sizeof(v0), &r), 0);
    CHECK_EQ(r.correlation_id, 9);
    CHECK_EQ(r.error_code, 0);
    CHECK_EQ(r.producer_id, 4097);
    CHECK_EQ(r.producer_epoch, 2);
    CHECK(kinitpid_resp_parse(0, v0, sizeof(v0) - 1, &r) != 0);
    /* The same body is not a valid v2 (needs both tag sections). */
    CHECK(kinitpid_resp_parse(2, v0, sizeof(v0), &r) != 0);
    static const uint8_t v2[] = {
        0,    0,    0,    9,    0,                      /* correlation, header tags */
        0,    0,    0,    5,                            /* throttle 5 */
        0,    47,                                       /* INVALID_PRODUCER_EPOCH */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* -1 */
        0xff, 0xff,                                     /* -1 */
        1,    3,    2,    0xaa, 0xbb, /* one unknown tagged field (tag 3, 2 bytes) */
    };
    CHECK_EQ(kinitpid_resp_parse(2, v2, sizeof(v2), &r), 0);
    CHECK_EQ(r.throttle_time_ms, 5);
    CHECK_EQ(r.error_code, 47);
    CHECK_EQ(r.producer_id, -1);
    CHECK_EQ(r.producer_epoch, -1);
    CHECK(kinitpid_resp_parse(2, v2, sizeof(v2) - 1, &r) != 0);
}

static void test_response_roundtrip_all(void)
{
    for (int16_t v = 0; v <= 4; v++) {
        kwriter_t w;
        kw_init(&w, 64);
        kinitpid_resp_t in = {77, 1, 0, 123456789012ll, 32766};
        CHECK_EQ(kinitpid_resp_write(&w, v, &in), 0);
        CHECK_EQ(kbe32(w.buf), (int32_t)(w.len - 4));
        kinitpid_resp_t out;
        CHECK_EQ(kinitpid_resp_parse(v, w.buf + 4, w.len - 4, &out), 0);
        CHECK_EQ(out.correlation_id, 77);
        CHECK_EQ(out.throttle_time_ms, 1);
        CHECK_EQ(out.producer_id, 123456789012ll);
        CHECK_EQ(out.producer_epoch, 32766);
        /* The response header parser agrees on where the body starts. */
        int32_t corr = 0;
        size_t body = 0;
        CHECK_EQ(kproto_parse_response_header(KAPI_InitProducerId, v, w.buf + 4, w.len - 4, &corr,
                                              &body),
                 0);
        CHECK_EQ(corr, 77);
        CHECK_EQ(body, v >= 2 ? 5u : 4u);
        kw_free(&w);
    }
}

int main(void)
{
    test_request_v1_bytes();
    test_request_v4_bytes();
    test_request_roundtrip_all();
    test_request_refusals();
    test_response_bytes();
    test_response_roundtrip_all();
    return unit_done("test_kinitpid");
}
