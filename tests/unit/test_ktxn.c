/*
 * test_ktxn.c - transaction coordinator codecs (ktxn.h): FindCoordinator
 * v0..v6, AddPartitionsToTxn v0..v5, EndTxn v0..v5, TxnOffsetCommit v0..v5.
 *
 * Hand-built frames (requests and responses) for at least two versions of
 * each API, written field by field from Kafka's message JSON; every other
 * version round-trips. Requests are also checked against eosproxy's own
 * header parser and schema validator (kproto) and, where one exists, the
 * request parser of kcommit.h. Responses: truncation at every byte, a
 * trailing byte, unknown tagged fields, hostile array counts, error codes
 * and the v4+ FindCoordinator key lookup.
 */
#include "kcommit.h"
#include "kproto.h"
#include "ktxn.h"
#include "unit.h"

#include <stdlib.h>

static const kstr_t CID = {"eosproxy", 8};
static const kstr_t TXN = {"txn-a", 5};
static const kstr_t T1 = {"t1", 2};

#define KS(s) ((kstr_t){(s), (int32_t)(sizeof(s) - 1)})

static int kstr_is(kstr_t s, const char *want)
{
    size_t n = strlen(want);
    return s.len >= 0 && (size_t)s.len == n && memcmp(s.ptr, want, n) == 0;
}

static int bytes_eq(const kwriter_t *w, const uint8_t *want, size_t n)
{
    return w->len == n && memcmp(w->buf, want, n) == 0;
}

/*
 * The request frame in w parses with eosproxy's header parser as
 * (api, ver, corr) and its body validates against kproto's schema. kproto's
 * table may stop below ver (FindCoordinator 4, TxnOffsetCommit 3): the
 * frame is then checked as version `as_ver`, which has the same wire body.
 * Returns the body offset in the frame (after the size prefix).
 */
static size_t check_request(const kwriter_t *w, int16_t api, int16_t ver, int16_t as_ver,
                            int32_t corr)
{
    CHECK(w->len > 4);
    CHECK_EQ(kbe32(w->buf), (int32_t)(w->len - 4));
    CHECK_EQ(kbe16(w->buf + 4), api);
    CHECK_EQ(kbe16(w->buf + 6), ver);
    uint8_t *f = malloc(w->len - 4);
    memcpy(f, w->buf + 4, w->len - 4);
    f[2] = (uint8_t)((uint16_t)as_ver >> 8);
    f[3] = (uint8_t)as_ver;
    kreq_hdr_t h;
    const char *err = NULL;
    size_t eoff = 0;
    CHECK_EQ(kproto_parse_request_header(f, w->len - 4, &h, &err), 0);
    CHECK_EQ(h.correlation_id, corr);
    CHECK(kstr_is(h.client_id, "eosproxy"));
    CHECK_EQ(kproto_validate_request(&h, f, w->len - 4, &eoff, &err), 0);
    free(f);
    return h.body_off;
}

/* Parses frame as API api's response at ver (key "txn-a" for
 * FindCoordinator), frees, and returns the parser's result. */
static int parse_any(int16_t api, int16_t ver, const uint8_t *frame, size_t len)
{
    int rc = -1;
    if (api == KAPI_FindCoordinator) {
        ktxn_coord_t c;
        rc = ktxn_findcoord_resp_parse(ver, frame, len, TXN, &c);
    } else if (api == KAPI_AddPartitionsToTxn) {
        ktxn_addparts_resp_t r;
        rc = ktxn_addparts_resp_parse(ver, frame, len, &r);
        if (rc != 0)
            CHECK(r.results == NULL && r.nresults == 0);
        ktxn_addparts_resp_free(&r);
    } else if (api == KAPI_EndTxn) {
        ktxn_endtxn_resp_t r;
        rc = ktxn_endtxn_resp_parse(ver, frame, len, &r);
    } else if (api == KAPI_AddOffsetsToTxn) {
        ktxn_addoffsets_resp_t r;
        rc = ktxn_addoffsets_resp_parse(ver, frame, len, &r);
    } else if (api == KAPI_TxnOffsetCommit) {
        ktxn_txnoffset_resp_t r;
        rc = ktxn_txnoffset_resp_parse(ver, frame, len, &r);
        if (rc != 0)
            CHECK(r.results == NULL && r.nresults == 0);
        ktxn_txnoffset_resp_free(&r);
    }
    return rc;
}

/* A valid response frame fails at every truncation and with a trailing
 * byte; the response header parser agrees on the header. */
static void check_edges(int16_t api, int16_t ver, const uint8_t *frame, size_t len)
{
    CHECK_EQ(parse_any(api, ver, frame, len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *t = malloc(cut ? cut : 1); /* exact size: ASan catches overreads */
        memcpy(t, frame, cut);
        int rc = parse_any(api, ver, t, cut);
        CHECK(rc == KR_ESHORT || rc == KR_ECOUNT);
        free(t);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0;
    CHECK_EQ(parse_any(api, ver, longer, len + 1), KR_EINVALID);
    free(longer);
    int32_t corr = 0;
    size_t body = 0;
    CHECK_EQ(kproto_parse_response_header(api, ver, frame, len, &corr, &body), 0);
    CHECK_EQ(body, ver >= 3 ? 5u : 4u);
}

/* ================= FindCoordinator ================= */

static void test_findcoord_req_bytes(void)
{
    kwriter_t w;
    kw_init(&w, 64);
    /* v0: header v1, Key STRING; no KeyType (group only). */
    CHECK_EQ(ktxn_findcoord_req_write(&w, 0, 1, CID, KTXN_KEY_GROUP, KS("grp")), 0);
    static const uint8_t v0[] = {
        0, 0,  0,   23,                                /* size */
        0, 10, 0,   0,   0,   0,   0,   1,             /* api 10 v0, correlation 1 */
        0, 8,  'e', 'o', 's', 'p', 'r', 'o', 'x', 'y', /* ClientId */
        0, 3,  'g', 'r', 'p',                          /* Key */
    };
    CHECK(bytes_eq(&w, v0, sizeof(v0)));
    check_request(&w, KAPI_FindCoordinator, 0, 0, 1);
    kw_reset(&w);

    /* v4: header v2, KeyType 1, CoordinatorKeys compact [ "txn-a" ], tags. */
    CHECK_EQ(ktxn_findcoord_req_write(&w, 4, 2, CID, KTXN_KEY_TRANSACTION, TXN), 0);
    static const uint8_t v4[] = {
        0, 0,  0,   28,                                   /* size */
        0, 10, 0,   4,   0,   0,   0,   2,                /* api 10 v4, correlation 2 */
        0, 8,  'e', 'o', 's', 'p', 'r', 'o', 'x', 'y', 0, /* ClientId, header tags */
        1,                                                /* KeyType transaction */
        2, 6,  't', 'x', 'n', '-', 'a',                   /* CoordinatorKeys */
        0,                                                /* tags */
    };
    CHECK(bytes_eq(&w, v4, sizeof(v4)));
    check_request(&w, KAPI_FindCoordinator, 4, 4, 2);
    kw_free(&w);
}

static void test_findcoord_req_all(void)
{
    kwriter_t v4;
    kw_init(&v4, 64);
    CHECK_EQ(ktxn_findcoord_req_write(&v4, 4, 9, CID, KTXN_KEY_TRANSACTION, TXN), 0);
    for (int16_t v = 0; v <= KTXN_FINDCOORD_MAX_VERSION; v++) {
        kwriter_t w;
        kw_init(&w, 64);
        int8_t type = v == 0 ? KTXN_KEY_GROUP : KTXN_KEY_TRANSACTION;
        CHECK_EQ(ktxn_findcoord_req_write(&w, v, 9, CID, type, TXN), 0);
        size_t body = check_request(&w, KAPI_FindCoordinator, v, v > 4 ? 4 : v, 9);
        const uint8_t *b = w.buf + 4 + body;
        if (v >= 1 && v <= 3) { /* Key then KeyType */
            size_t klen = v == 3 ? 1 + 5 : 2 + 5;
            CHECK_EQ(b[klen], KTXN_KEY_TRANSACTION);
        }
        if (v >= 4) { /* v5, v6: v4's bytes with another version */
            CHECK_EQ(w.len, v4.len);
            CHECK(w.len == v4.len && memcmp(w.buf + 8, v4.buf + 8, w.len - 8) == 0);
        }
        kw_free(&w);
    }
    kw_free(&v4);

    /* Refusals: a transaction key at v0, a null key, bad versions. */
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ktxn_findcoord_req_write(&w, 0, 1, CID, KTXN_KEY_TRANSACTION, TXN), -1);
    CHECK_EQ(ktxn_findcoord_req_write(&w, 3, 1, CID, KTXN_KEY_GROUP, (kstr_t){NULL, -1}), -1);
    CHECK_EQ(ktxn_findcoord_req_write(&w, 7, 1, CID, KTXN_KEY_GROUP, TXN), -1);
    CHECK_EQ(ktxn_findcoord_req_write(&w, -1, 1, CID, KTXN_KEY_GROUP, TXN), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

static void test_findcoord_resp_bytes(void)
{
    ktxn_coord_t c;
    /* v0: ErrorCode NodeId Host Port. */
    static const uint8_t v0[] = {
        0, 0, 0,    5,    /* correlation */
        0, 0,             /* ErrorCode */
        0, 0, 0,    2,    /* NodeId */
        0, 2, 'b',  '2',  /* Host */
        0, 0, 0x23, 0x84, /* Port 9092 */
    };
    CHECK_EQ(ktxn_findcoord_resp_parse(0, v0, sizeof(v0), TXN, &c), 0);
    CHECK_EQ(c.error_code, 0);
    CHECK_EQ(c.node_id, 2);
    CHECK(kstr_is(c.host, "b2"));
    CHECK_EQ(c.port, 9092);
    CHECK_EQ(c.error_message.len, -1);
    check_edges(KAPI_FindCoordinator, 0, v0, sizeof(v0));

    /* v3: header tags, ThrottleTimeMs, ErrorCode 15 with a message, and an
     * unknown tagged field at the end. */
    static const uint8_t v3[] = {
        0,    0,    0,    6,    0,   /* correlation, header tags */
        0,    0,    0,    0,         /* ThrottleTimeMs */
        0,    15,                    /* COORDINATOR_NOT_AVAILABLE */
        5,    'b',  'u',  's',  'y', /* ErrorMessage */
        0xff, 0xff, 0xff, 0xff,      /* NodeId -1 */
        1,                           /* Host "" */
        0xff, 0xff, 0xff, 0xff,      /* Port -1 */
        1,    0,    1,    0x7f,      /* tags: tag 0, 1 byte */
    };
    CHECK_EQ(ktxn_findcoord_resp_parse(3, v3, sizeof(v3), TXN, &c), 0);
    CHECK_EQ(c.error_code, 15);
    CHECK(kstr_is(c.error_message, "busy"));
    CHECK_EQ(c.node_id, -1);
    CHECK(kstr_is(c.host, ""));
    CHECK_EQ(c.port, -1);
    check_edges(KAPI_FindCoordinator, 3, v3, sizeof(v3));
    /* The v0 bytes are not a v3 frame and vice versa. */
    CHECK(ktxn_findcoord_resp_parse(3, v0, sizeof(v0), TXN, &c) != 0);
    CHECK(ktxn_findcoord_resp_parse(0, v3, sizeof(v3), TXN, &c) != 0);
}

/* v4+: Coordinators, looked up by Key. */
static void test_findcoord_resp_lookup(void)
{
    static const uint8_t v4[] = {
        0,    0,    0,    7,    0,        /* correlation, header tags */
        0,    0,    0,    10,             /* ThrottleTimeMs */
        3,                                /* Coordinators: 2 */
        2,    'g',                        /* Key "g" */
        0xff, 0xff, 0xff, 0xff,           /* NodeId -1 */
        1,                                /* Host "" */
        0xff, 0xff, 0xff, 0xff,           /* Port -1 */
        0,    14,                         /* COORDINATOR_LOAD_IN_PROGRESS */
        5,    'l',  'o',  'a',  'd',      /* ErrorMessage */
        0,                                /* tags */
        6,    't',  'x',  'n',  '-', 'a', /* Key "txn-a" */
        0,    0,    0,    3,              /* NodeId 3 */
        3,    'h',  '3',                  /* Host */
        0,    0,    0x23, 0x85,           /* Port 9093 */
        0,    0,                          /* ErrorCode */
        0,                                /* ErrorMessage null */
        0,                                /* tags */
        0,                                /* tags */
    };
    ktxn_coord_t c;
    for (int16_t v = 4; v <= KTXN_FINDCOORD_MAX_VERSION; v++) {
        CHECK_EQ(ktxn_findcoord_resp_parse(v, v4, sizeof(v4), TXN, &c), 0);
        CHECK_EQ(c.error_code, 0);
        CHECK_EQ(c.node_id, 3);
        CHECK(kstr_is(c.host, "h3"));
        CHECK_EQ(c.port, 9093);
        CHECK_EQ(c.error_message.len, -1);
        CHECK_EQ(ktxn_findcoord_resp_parse(v, v4, sizeof(v4), KS("g"), &c), 0);
        CHECK_EQ(c.error_code, 14);
        CHECK(kstr_is(c.error_message, "load"));
        CHECK_EQ(c.node_id, -1);
        /* Absent keys, prefixes and a null key find nothing. */
        CHECK_EQ(ktxn_findcoord_resp_parse(v, v4, sizeof(v4), KS("txn-"), &c), KR_EINVALID);
        CHECK_EQ(c.node_id, -1);
        CHECK_EQ(c.host.len, -1);
        CHECK_EQ(ktxn_findcoord_resp_parse(v, v4, sizeof(v4), KS("txn-ab"), &c), KR_EINVALID);
        CHECK_EQ(ktxn_findcoord_resp_parse(v, v4, sizeof(v4), (kstr_t){NULL, -1}, &c), KR_EINVALID);
        check_edges(KAPI_FindCoordinator, v, v4, sizeof(v4));
    }
    /* A malformed frame is an error even when the key came first. */
    uint8_t bad[sizeof(v4)];
    memcpy(bad, v4, sizeof(v4));
    bad[sizeof(v4) - 3] = 0x20; /* the 2nd entry's ErrorMessage: 31 bytes, past the end */
    CHECK_EQ(ktxn_findcoord_resp_parse(4, bad, sizeof(bad), KS("g"), &c), KR_ESHORT);
    /* Empty and null Coordinators, a hostile count, a null Key. */
    static const uint8_t empty[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0};
    CHECK_EQ(ktxn_findcoord_resp_parse(4, empty, sizeof(empty), TXN, &c), KR_EINVALID);
    static const uint8_t null_arr[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(ktxn_findcoord_resp_parse(4, null_arr, sizeof(null_arr), TXN, &c), KR_ENULL);
    static const uint8_t huge[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0};
    CHECK_EQ(ktxn_findcoord_resp_parse(4, huge, sizeof(huge), TXN, &c), KR_ECOUNT);
    /* 10 entries need at least 140 bytes; 20 are left. */
    uint8_t ten[30] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 11};
    CHECK_EQ(ktxn_findcoord_resp_parse(4, ten, sizeof(ten), TXN, &c), KR_ECOUNT);
    static const uint8_t null_key[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 2, 0, /* Key null */
                                       0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    CHECK_EQ(ktxn_findcoord_resp_parse(4, null_key, sizeof(null_key), TXN, &c), KR_ENULL);
    CHECK_EQ(ktxn_findcoord_resp_parse(7, null_key, sizeof(null_key), TXN, &c), KR_EINVALID);
}

static void test_findcoord_resp_roundtrip(void)
{
    for (int16_t v = 0; v <= KTXN_FINDCOORD_MAX_VERSION; v++) {
        kstr_t keys[3] = {KS("g1"), TXN, KS("g2")};
        ktxn_coord_t in[3] = {
            {0, 1, KS("h1"), 9092, {NULL, -1}},
            {16, 2, KS("broker-2.example"), 19092, KS("not coordinator")},
            {0, 3, KS("h3"), 9094, {NULL, -1}},
        };
        int32_t n = v >= 4 ? 3 : 1;
        const ktxn_coord_t *want = v >= 4 ? &in[1] : &in[0];
        kwriter_t w;
        kw_init(&w, 64);
        CHECK_EQ(ktxn_findcoord_resp_write(&w, v, 40 + v, 5, keys, in, n), 0);
        CHECK_EQ(kbe32(w.buf), (int32_t)(w.len - 4));
        CHECK_EQ(kbe32(w.buf + 4), 40 + v);
        ktxn_coord_t c;
        CHECK_EQ(ktxn_findcoord_resp_parse(v, w.buf + 4, w.len - 4, TXN, &c), 0);
        CHECK_EQ(c.error_code, want->error_code);
        CHECK_EQ(c.node_id, want->node_id);
        CHECK(c.host.len == want->host.len && !memcmp(c.host.ptr, want->host.ptr, c.host.len));
        CHECK_EQ(c.port, want->port);
        if (v == 0 || want->error_message.len < 0)
            CHECK_EQ(c.error_message.len, -1);
        else
            CHECK(kstr_is(c.error_message, "not coordinator"));
        check_edges(KAPI_FindCoordinator, v, w.buf + 4, w.len - 4);
        kw_free(&w);
    }
    /* v0..v3 hold exactly one coordinator. */
    kwriter_t w;
    kw_init(&w, 64);
    ktxn_coord_t two[2] = {{0, 1, KS("h"), 1, {NULL, -1}}, {0, 1, KS("h"), 1, {NULL, -1}}};
    CHECK_EQ(ktxn_findcoord_resp_write(&w, 3, 1, 0, NULL, two, 2), -1);
    CHECK_EQ(ktxn_findcoord_resp_write(&w, 4, 1, 0, NULL, two, 2), -1); /* keys needed */
    /* A key listed twice: the first entry wins. */
    kstr_t dup[2] = {TXN, TXN};
    two[1].node_id = 2;
    CHECK_EQ(ktxn_findcoord_resp_write(&w, 4, 1, 0, dup, two, 2), 0);
    ktxn_coord_t c;
    CHECK_EQ(ktxn_findcoord_resp_parse(4, w.buf + 4, w.len - 4, TXN, &c), 0);
    CHECK_EQ(c.node_id, 1);
    kw_reset(&w);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

/* ================= AddPartitionsToTxn ================= */

static const int32_t PARTS[] = {0, 5};

static void test_addparts_req_bytes(void)
{
    ktxn_topic_t topics[1] = {{KS("tp"), 2, PARTS}};
    kwriter_t w;
    kw_init(&w, 64);
    /* v0: the client form. */
    CHECK_EQ(ktxn_addparts_req_write(&w, 0, 3, CID, T1, 0x10, 2, topics, 1), 0);
    static const uint8_t v0[] = {
        0, 0,  0,   52,                                       /* size */
        0, 24, 0,   0,   0,   0,   0,   3,                    /* api 24 v0, correlation 3 */
        0, 8,  'e', 'o', 's', 'p', 'r', 'o',  'x', 'y',       /* ClientId */
        0, 2,  't', '1',                                      /* V3AndBelowTransactionalId */
        0, 0,  0,   0,   0,   0,   0,   0x10,                 /* V3AndBelowProducerId */
        0, 2,                                                 /* V3AndBelowProducerEpoch */
        0, 0,  0,   1,                                        /* V3AndBelowTopics: 1 */
        0, 2,  't', 'p',                                      /* Name */
        0, 0,  0,   2,   0,   0,   0,   0,    0,   0,   0, 5, /* Partitions [0, 5] */
    };
    CHECK(bytes_eq(&w, v0, sizeof(v0)));
    check_request(&w, KAPI_AddPartitionsToTxn, 0, 0, 3);
    kw_reset(&w);

    /* v4: Transactions with one entry, VerifyOnly false. */
    CHECK_EQ(ktxn_addparts_req_write(&w, 4, 4, CID, T1, 0x10, 2, topics, 1), 0);
    static const uint8_t v4[] = {
        0, 0,   0,   50,                                    /* size */
        0, 24,  0,   4,   0,   0,   0,   4,                 /* api 24 v4, correlation 4 */
        0, 8,   'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', 0, /* ClientId, header tags */
        2,                                                  /* Transactions: 1 */
        3, 't', '1',                                        /* TransactionalId */
        0, 0,   0,   0,   0,   0,   0,   0x10,              /* ProducerId */
        0, 2,                                               /* ProducerEpoch */
        0,                                                  /* VerifyOnly */
        2,                                                  /* Topics: 1 */
        3, 't', 'p',                                        /* Name */
        3, 0,   0,   0,   0,   0,   0,   0,    5,           /* Partitions [0, 5] */
        0,                                                  /* topic tags */
        0,                                                  /* transaction tags */
        0,                                                  /* tags */
    };
    CHECK(bytes_eq(&w, v4, sizeof(v4)));
    check_request(&w, KAPI_AddPartitionsToTxn, 4, 4, 4);
    kw_free(&w);
}

static void test_addparts_req_all(void)
{
    int32_t many[3] = {1, 2, 3};
    ktxn_topic_t topics[3] = {{KS("a"), 3, many}, {KS("bb"), 0, NULL}, {KS("c"), 1, PARTS + 1}};
    for (int16_t v = 0; v <= KTXN_ADDPARTS_MAX_VERSION; v++) {
        kwriter_t w;
        kw_init(&w, 64);
        CHECK_EQ(ktxn_addparts_req_write(&w, v, 100 + v, CID, TXN, 77, 1, topics, 3), 0);
        check_request(&w, KAPI_AddPartitionsToTxn, v, v, 100 + v);
        kw_reset(&w);
        CHECK_EQ(ktxn_addparts_req_write(&w, v, 1, (kstr_t){NULL, -1}, TXN, 77, 1, NULL, 0), 0);
        CHECK_EQ(kbe16(w.buf + 12), -1); /* null ClientId */
        kw_free(&w);
    }
    kwriter_t w;
    kw_init(&w, 64);
    ktxn_topic_t null_name[1] = {{{NULL, -1}, 1, PARTS}};
    ktxn_topic_t no_parts[1] = {{KS("a"), 2, NULL}};
    CHECK_EQ(ktxn_addparts_req_write(&w, 3, 1, CID, TXN, 1, 1, null_name, 1), -1);
    CHECK_EQ(ktxn_addparts_req_write(&w, 3, 1, CID, TXN, 1, 1, no_parts, 1), -1);
    CHECK_EQ(ktxn_addparts_req_write(&w, 3, 1, CID, TXN, 1, 1, NULL, 1), -1);
    CHECK_EQ(ktxn_addparts_req_write(&w, 3, 1, CID, TXN, 1, 1, topics, -1), -1);
    CHECK_EQ(ktxn_addparts_req_write(&w, 3, 1, CID, (kstr_t){NULL, -1}, 1, 1, topics, 1), -1);
    CHECK_EQ(ktxn_addparts_req_write(&w, 6, 1, CID, TXN, 1, 1, topics, 1), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

static void test_addparts_resp_bytes(void)
{
    ktxn_addparts_resp_t r;
    /* v0: ThrottleTimeMs ResultsByTopicV3AndBelow. */
    static const uint8_t v0[] = {
        0, 0, 0,   8,          /* correlation */
        0, 0, 0,   0,          /* ThrottleTimeMs */
        0, 0, 0,   1,          /* ResultsByTopicV3AndBelow: 1 */
        0, 2, 't', 'p',        /* Name */
        0, 0, 0,   2,          /* ResultsByPartition: 2 */
        0, 0, 0,   0,   0, 0,  /* 0: none */
        0, 0, 0,   5,   0, 48, /* 5: INVALID_TXN_STATE */
    };
    CHECK_EQ(ktxn_addparts_resp_parse(0, v0, sizeof(v0), &r), 0);
    CHECK_EQ(r.correlation_id, 8);
    CHECK_EQ(r.error_code, 0);
    CHECK_EQ(r.nresults, 2);
    CHECK(r.nresults == 2 && kstr_is(r.results[0].topic, "tp") &&
          kstr_is(r.results[1].topic, "tp"));
    CHECK(r.nresults == 2 && r.results[0].partition == 0 && r.results[0].error_code == 0);
    CHECK(r.nresults == 2 && r.results[1].partition == 5 && r.results[1].error_code == 48);
    ktxn_addparts_resp_free(&r);
    CHECK(r.results == NULL && r.nresults == 0);
    ktxn_addparts_resp_free(&r); /* twice is fine */
    ktxn_addparts_resp_free(NULL);
    for (int16_t v = 0; v <= 2; v++)
        check_edges(KAPI_AddPartitionsToTxn, v, v0, sizeof(v0));

    /* v4: top-level ErrorCode, ResultsByTransaction (two transactions). */
    static const uint8_t v4[] = {
        0, 0,   0,   9, 0,          /* correlation, header tags */
        0, 0,   0,   1,             /* ThrottleTimeMs */
        0, 0,                       /* ErrorCode */
        3,                          /* ResultsByTransaction: 2 */
        3, 't', '1',                /* TransactionalId */
        3,                          /* TopicResults: 2 */
        2, 'a',                     /* Name */
        2, 0,   0,   0, 0, 0, 0, 0, /* [0: none, tags] */
        0,                          /* topic tags */
        2, 'b',                     /* Name */
        2, 0,   0,   0, 2, 0, 3, 0, /* [2: UNKNOWN_TOPIC_OR_PARTITION] */
        0,                          /* topic tags */
        0,                          /* transaction tags */
        3, 't', '2',                /* TransactionalId */
        1,                          /* TopicResults: none */
        1, 0,   0,                  /* transaction tags: tag 0, 0 bytes */
        0,                          /* tags */
    };
    for (int16_t v = 4; v <= KTXN_ADDPARTS_MAX_VERSION; v++) {
        CHECK_EQ(ktxn_addparts_resp_parse(v, v4, sizeof(v4), &r), 0);
        CHECK_EQ(r.correlation_id, 9);
        CHECK_EQ(r.throttle_time_ms, 1);
        CHECK_EQ(r.nresults, 2);
        CHECK(r.nresults == 2 && kstr_is(r.results[0].topic, "a") && r.results[0].partition == 0);
        CHECK(r.nresults == 2 && kstr_is(r.results[1].topic, "b") && r.results[1].partition == 2 &&
              r.results[1].error_code == 3);
        ktxn_addparts_resp_free(&r);
        check_edges(KAPI_AddPartitionsToTxn, v, v4, sizeof(v4));
    }
    /* A top-level error with no results (v4+). */
    static const uint8_t v5err[] = {0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 51, 1, 0}; /* CONCURRENT_TXNS */
    CHECK_EQ(ktxn_addparts_resp_parse(5, v5err, sizeof(v5err), &r), 0);
    CHECK_EQ(r.error_code, 51);
    CHECK_EQ(r.nresults, 0);
    CHECK(r.results == NULL);
    ktxn_addparts_resp_free(&r);
    /* Hostile and null counts. */
    static const uint8_t huge[] = {0, 0, 0, 8, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0};
    CHECK_EQ(ktxn_addparts_resp_parse(0, huge, sizeof(huge), &r), KR_ECOUNT);
    static const uint8_t huge_parts[] = {0, 0,   0,    8, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                                         1, 'x', 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(ktxn_addparts_resp_parse(2, huge_parts, sizeof(huge_parts), &r), KR_ECOUNT);
    static const uint8_t null_topics[] = {0, 0, 0, 8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(ktxn_addparts_resp_parse(1, null_topics, sizeof(null_topics), &r), KR_ENULL);
    CHECK(r.results == NULL);
    CHECK_EQ(ktxn_addparts_resp_parse(6, v0, sizeof(v0), &r), KR_EINVALID);
    CHECK_EQ(ktxn_addparts_resp_parse(-1, v0, sizeof(v0), &r), KR_EINVALID);
}

static void test_addparts_resp_roundtrip(void)
{
    ktxn_part_result_t res[4] = {
        {KS("a"), 0, 0}, {KS("a"), 1, 90 /* PRODUCER_FENCED */}, {KS("b"), 7, 0}, {KS("a"), 2, 0}};
    for (int16_t v = 0; v <= KTXN_ADDPARTS_MAX_VERSION; v++) {
        ktxn_addparts_resp_t in = {60 + v, 3, v >= 4 ? 120 : 0, 4, res};
        kwriter_t w;
        kw_init(&w, 64);
        CHECK_EQ(ktxn_addparts_resp_write(&w, v, TXN, &in), 0);
        ktxn_addparts_resp_t out;
        CHECK_EQ(ktxn_addparts_resp_parse(v, w.buf + 4, w.len - 4, &out), 0);
        CHECK_EQ(out.correlation_id, 60 + v);
        CHECK_EQ(out.throttle_time_ms, 3);
        CHECK_EQ(out.error_code, v >= 4 ? 120 : 0);
        CHECK_EQ(out.nresults, 4);
        for (int i = 0; i < 4 && out.nresults == 4; i++) {
            CHECK(out.results[i].topic.len == res[i].topic.len &&
                  !memcmp(out.results[i].topic.ptr, res[i].topic.ptr, res[i].topic.len));
            CHECK_EQ(out.results[i].partition, res[i].partition);
            CHECK_EQ(out.results[i].error_code, res[i].error_code);
        }
        ktxn_addparts_resp_free(&out);
        check_edges(KAPI_AddPartitionsToTxn, v, w.buf + 4, w.len - 4);
        kw_free(&w);
    }
}

/* ================= AddOffsetsToTxn ================= */

static void test_addoffsets_req(void)
{
    static const kstr_t G = {"g1", 2};
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 0, 10, CID, T1, 0x10, 2, G), 0);
    static const uint8_t v0[] = {
        0, 0,  0,   36,                                 /* size */
        0, 25, 0,   0,   0,   0,   0,   10,             /* api 25 v0, correlation 10 */
        0, 8,  'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', /* ClientId */
        0, 2,  't', '1',                                /* TransactionalId */
        0, 0,  0,   0,   0,   0,   0,   0x10,           /* ProducerId */
        0, 2,                                           /* ProducerEpoch */
        0, 2,  'g', '1',                                /* GroupId */
    };
    CHECK(bytes_eq(&w, v0, sizeof(v0)));
    kw_reset(&w);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 3, 10, CID, T1, 0x10, 2, G), 0);
    static const uint8_t v3[] = {
        0, 0,   0,   36,                                    /* size */
        0, 25,  0,   3,   0,   0,   0,   10,                /* api 25 v3, correlation 10 */
        0, 8,   'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', 0, /* ClientId, header tags */
        3, 't', '1',                                        /* TransactionalId */
        0, 0,   0,   0,   0,   0,   0,   0x10,              /* ProducerId */
        0, 2,                                               /* ProducerEpoch */
        3, 'g', '1',                                        /* GroupId */
        0,                                                  /* tags */
    };
    CHECK(bytes_eq(&w, v3, sizeof(v3)));
    kw_free(&w);
    for (int16_t v = 0; v <= KTXN_ADDOFFSETS_MAX_VERSION; v++) {
        kw_init(&w, 64);
        CHECK_EQ(ktxn_addoffsets_req_write(&w, v, 5, CID, TXN, 1234, 7, G), 0);
        check_request(&w, KAPI_AddOffsetsToTxn, v, v, 5); /* kproto's schema accepts it */
        kw_free(&w);
    }
    kw_init(&w, 64);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 5, 1, CID, TXN, 1, 1, G), -1);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, -1, 1, CID, TXN, 1, 1, G), -1);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 2, 1, CID, TXN, 1, 1, (kstr_t){NULL, -1}), -1);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 2, 1, CID, (kstr_t){NULL, -1}, 1, 1, G), -1);
    CHECK_EQ(ktxn_addoffsets_req_write(&w, 2, 1, CID, TXN, 1, 1, (kstr_t){"x", 40000}), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

static void test_addoffsets_resp(void)
{
    ktxn_addoffsets_resp_t r;
    static const uint8_t v0[] = {
        0, 0,  0, 11, /* correlation */
        0, 0,  0, 3,  /* ThrottleTimeMs */
        0, 51,        /* CONCURRENT_TRANSACTIONS */
    };
    for (int16_t v = 0; v <= 2; v++) {
        CHECK_EQ(ktxn_addoffsets_resp_parse(v, v0, sizeof(v0), &r), 0);
        CHECK_EQ(r.correlation_id, 11);
        CHECK_EQ(r.throttle_time_ms, 3);
        CHECK_EQ(r.error_code, 51);
        check_edges(KAPI_AddOffsetsToTxn, v, v0, sizeof(v0));
    }
    static const uint8_t v3[] = {
        0, 0, 0, 11,   0, /* correlation, header tags */
        0, 0, 0, 0,       /* ThrottleTimeMs */
        0, 0,             /* ErrorCode */
        1, 5, 1, 0xaa,    /* tags: tag 5 (1 byte) */
    };
    CHECK_EQ(ktxn_addoffsets_resp_parse(3, v3, sizeof(v3), &r), 0);
    CHECK_EQ(r.error_code, 0);
    check_edges(KAPI_AddOffsetsToTxn, 3, v3, sizeof(v3));
    CHECK(ktxn_addoffsets_resp_parse(3, v0, sizeof(v0), &r) != 0);
    CHECK_EQ(r.error_code, 0);
    CHECK(ktxn_addoffsets_resp_parse(2, v3, sizeof(v3), &r) != 0);
    CHECK_EQ(ktxn_addoffsets_resp_parse(5, v3, sizeof(v3), &r), KR_EINVALID);
    for (int16_t v = 0; v <= KTXN_ADDOFFSETS_MAX_VERSION; v++) {
        ktxn_addoffsets_resp_t in = {70 + v, 9, 90 /* PRODUCER_FENCED */};
        kwriter_t w;
        kw_init(&w, 32);
        CHECK_EQ(ktxn_addoffsets_resp_write(&w, v, &in), 0);
        CHECK_EQ(ktxn_addoffsets_resp_parse(v, w.buf + 4, w.len - 4, &r), 0);
        CHECK_EQ(r.correlation_id, 70 + v);
        CHECK_EQ(r.throttle_time_ms, 9);
        CHECK_EQ(r.error_code, 90);
        kw_free(&w);
    }
}

/* ================= EndTxn ================= */

static void test_endtxn_req(void)
{
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ktxn_endtxn_req_write(&w, 0, 10, CID, T1, 0x10, 2, 1), 0);
    static const uint8_t v0[] = {
        0, 0,  0,   33,                                 /* size */
        0, 26, 0,   0,   0,   0,   0,   10,             /* api 26 v0, correlation 10 */
        0, 8,  'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', /* ClientId */
        0, 2,  't', '1',                                /* TransactionalId */
        0, 0,  0,   0,   0,   0,   0,   0x10,           /* ProducerId */
        0, 2,                                           /* ProducerEpoch */
        1,                                              /* Committed */
    };
    CHECK(bytes_eq(&w, v0, sizeof(v0)));
    kw_reset(&w);
    CHECK_EQ(ktxn_endtxn_req_write(&w, 3, 10, CID, T1, 0x10, 2, 0), 0);
    static const uint8_t v3[] = {
        0, 0,   0,   34,                                    /* size */
        0, 26,  0,   3,   0,   0,   0,   10,                /* api 26 v3, correlation 10 */
        0, 8,   'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', 0, /* ClientId, header tags */
        3, 't', '1',                                        /* TransactionalId */
        0, 0,   0,   0,   0,   0,   0,   0x10,              /* ProducerId */
        0, 2,                                               /* ProducerEpoch */
        0,                                                  /* Committed: abort */
        0,                                                  /* tags */
    };
    CHECK(bytes_eq(&w, v3, sizeof(v3)));
    kw_free(&w);

    for (int16_t v = 0; v <= KTXN_ENDTXN_MAX_VERSION; v++) {
        for (int committed = 0; committed <= 2; committed++) {
            kw_init(&w, 64);
            CHECK_EQ(ktxn_endtxn_req_write(&w, v, 5, CID, TXN, 1234, 7, committed), 0);
            size_t body = check_request(&w, KAPI_EndTxn, v, v, 5);
            /* kcommit's EndTxn parser (consumer dedup) reads it back. */
            kstr_t id;
            int got = -1;
            CHECK_EQ(kcommit_endtxn_req_parse(v, w.buf + 4 + body, w.len - 4 - body, &id, &got), 0);
            CHECK(kstr_is(id, "txn-a"));
            CHECK_EQ(got, committed ? 1 : 0);
            kw_free(&w);
        }
    }
    kw_init(&w, 64);
    CHECK_EQ(ktxn_endtxn_req_write(&w, 6, 1, CID, TXN, 1, 1, 1), -1);
    CHECK_EQ(ktxn_endtxn_req_write(&w, 2, 1, CID, (kstr_t){NULL, -1}, 1, 1, 1), -1);
    CHECK_EQ(ktxn_endtxn_req_write(&w, 2, 1, CID, (kstr_t){"x", 40000}, 1, 1, 1), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

static void test_endtxn_resp(void)
{
    ktxn_endtxn_resp_t r;
    static const uint8_t v0[] = {
        0, 0,  0, 11, /* correlation */
        0, 0,  0, 0,  /* ThrottleTimeMs */
        0, 90,        /* PRODUCER_FENCED */
    };
    for (int16_t v = 0; v <= 2; v++) {
        CHECK_EQ(ktxn_endtxn_resp_parse(v, v0, sizeof(v0), &r), 0);
        CHECK_EQ(r.correlation_id, 11);
        CHECK_EQ(r.error_code, 90);
        CHECK_EQ(r.producer_id, -1);
        CHECK_EQ(r.producer_epoch, -1);
        check_edges(KAPI_EndTxn, v, v0, sizeof(v0));
    }
    /* v5 (KIP-890): ProducerId and ProducerEpoch after ErrorCode. */
    static const uint8_t v5[] = {
        0, 0, 0, 11,   0,             /* correlation, header tags */
        0, 0, 0, 2,                   /* ThrottleTimeMs */
        0, 0,                         /* ErrorCode */
        0, 0, 0, 0,    0, 0, 0, 0x10, /* ProducerId */
        0, 3,                         /* ProducerEpoch (bumped) */
        2, 0, 1, 0xaa, 7, 0,          /* tags: tag 0 (1 byte), tag 7 (0 bytes) */
    };
    CHECK_EQ(ktxn_endtxn_resp_parse(5, v5, sizeof(v5), &r), 0);
    CHECK_EQ(r.throttle_time_ms, 2);
    CHECK_EQ(r.error_code, 0);
    CHECK_EQ(r.producer_id, 0x10);
    CHECK_EQ(r.producer_epoch, 3);
    check_edges(KAPI_EndTxn, 5, v5, sizeof(v5));
    /* v5 bytes are not a v4 frame (trailing bytes), v0 bytes not a v5. */
    CHECK(ktxn_endtxn_resp_parse(4, v5, sizeof(v5), &r) != 0);
    CHECK_EQ(r.producer_id, -1);
    CHECK(ktxn_endtxn_resp_parse(5, v0, sizeof(v0), &r) != 0);
    CHECK_EQ(ktxn_endtxn_resp_parse(6, v5, sizeof(v5), &r), KR_EINVALID);

    for (int16_t v = 0; v <= KTXN_ENDTXN_MAX_VERSION; v++) {
        ktxn_endtxn_resp_t in = {80 + v, 4, 47 /* INVALID_PRODUCER_EPOCH */, 99999999999ll, 12};
        kwriter_t w;
        kw_init(&w, 32);
        CHECK_EQ(ktxn_endtxn_resp_write(&w, v, &in), 0);
        CHECK_EQ(ktxn_endtxn_resp_parse(v, w.buf + 4, w.len - 4, &r), 0);
        CHECK_EQ(r.correlation_id, 80 + v);
        CHECK_EQ(r.throttle_time_ms, 4);
        CHECK_EQ(r.error_code, 47);
        CHECK_EQ(r.producer_id, v >= 5 ? 99999999999ll : -1);
        CHECK_EQ(r.producer_epoch, v >= 5 ? 12 : -1);
        check_edges(KAPI_EndTxn, v, w.buf + 4, w.len - 4);
        kw_free(&w);
    }
}

/* ================= TxnOffsetCommit ================= */

static void test_txnoffset_req_bytes(void)
{
    ktxn_offset_part_t parts[1] = {{0, 100, 4, {NULL, -1}}};
    ktxn_offset_topic_t topics[1] = {{KS("tp"), 1, parts}};
    ktxn_txnoffset_req_t req = {T1, KS("g"), 0x10, 2, 7, KS("m"), {NULL, -1}, 1, topics};
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 3, 12, CID, &req), 0);
    static const uint8_t v3[] = {
        0, 0,   0,   66,                                    /* size */
        0, 28,  0,   3,   0,   0,   0,   12,                /* api 28 v3, correlation 12 */
        0, 8,   'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', 0, /* ClientId, header tags */
        3, 't', '1',                                        /* TransactionalId */
        2, 'g',                                             /* GroupId */
        0, 0,   0,   0,   0,   0,   0,   0x10,              /* ProducerId */
        0, 2,                                               /* ProducerEpoch */
        0, 0,   0,   7,                                     /* GenerationId */
        2, 'm',                                             /* MemberId */
        0,                                                  /* GroupInstanceId null */
        2,                                                  /* Topics: 1 */
        3, 't', 'p',                                        /* Name */
        2,                                                  /* Partitions: 1 */
        0, 0,   0,   0,                                     /* PartitionIndex */
        0, 0,   0,   0,   0,   0,   0,   100,               /* CommittedOffset */
        0, 0,   0,   4,                                     /* CommittedLeaderEpoch */
        0,                                                  /* CommittedMetadata null */
        0,                                                  /* partition tags */
        0,                                                  /* topic tags */
        0,                                                  /* tags */
    };
    CHECK(bytes_eq(&w, v3, sizeof(v3)));
    check_request(&w, KAPI_TxnOffsetCommit, 3, 3, 12);
    kw_reset(&w);

    /* v0: no group metadata, no CommittedLeaderEpoch (dropped). */
    ktxn_txnoffset_req_t req0 = {T1, KS("g"), 0x10, 2, -1, KS(""), {NULL, -1}, 1, topics};
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 0, 13, CID, &req0), 0);
    static const uint8_t v0[] = {
        0,    0,    0,   61,                                 /* size */
        0,    28,   0,   0,   0,   0,   0,   13,             /* api 28 v0, correlation 13 */
        0,    8,    'e', 'o', 's', 'p', 'r', 'o',  'x', 'y', /* ClientId */
        0,    2,    't', '1',                                /* TransactionalId */
        0,    1,    'g',                                     /* GroupId */
        0,    0,    0,   0,   0,   0,   0,   0x10,           /* ProducerId */
        0,    2,                                             /* ProducerEpoch */
        0,    0,    0,   1,                                  /* Topics: 1 */
        0,    2,    't', 'p',                                /* Name */
        0,    0,    0,   1,                                  /* Partitions: 1 */
        0,    0,    0,   0,                                  /* PartitionIndex */
        0,    0,    0,   0,   0,   0,   0,   100,            /* CommittedOffset */
        0xff, 0xff,                                          /* CommittedMetadata null */
    };
    CHECK(bytes_eq(&w, v0, sizeof(v0)));
    check_request(&w, KAPI_TxnOffsetCommit, 0, 0, 13);
    kw_free(&w);
}

static void test_txnoffset_req_all(void)
{
    ktxn_offset_part_t pa[2] = {{0, 10, 3, KS("meta")}, {4, 1ll << 40, -1, {NULL, -1}}};
    ktxn_offset_part_t pb[1] = {{9, 0, 0, KS("")}};
    ktxn_offset_topic_t topics[3] = {{KS("a"), 2, pa}, {KS("b"), 1, pb}, {KS("empty"), 0, NULL}};
    kwriter_t v3;
    kw_init(&v3, 128);
    for (int16_t v = 0; v <= KTXN_TXNOFFSET_MAX_VERSION; v++) {
        int member = v >= 3;
        kstr_t none = {NULL, -1};
        ktxn_txnoffset_req_t req = {.transactional_id = TXN,
                                    .group_id = KS("grp"),
                                    .producer_id = 555,
                                    .producer_epoch = 6,
                                    .generation_id = member ? 12 : -1,
                                    .member_id = member ? KS("member-1") : none,
                                    .group_instance_id = member ? KS("inst") : none,
                                    .ntopics = 3,
                                    .topics = topics};
        kwriter_t w;
        kw_init(&w, 128);
        CHECK_EQ(ktxn_txnoffset_req_write(&w, v, 20, CID, &req), 0);
        size_t body = check_request(&w, KAPI_TxnOffsetCommit, v, v > 3 ? 3 : v, 20);
        if (v == 3)
            kw_raw(&v3, w.buf, w.len);
        if (v > 3) { /* v4, v5: v3's bytes with another version */
            CHECK(w.len == v3.len && memcmp(w.buf + 8, v3.buf + 8, w.len - 8) == 0);
        } else {
            /* kcommit's TxnOffsetCommit parser (consumer dedup) agrees. */
            kcommit_t c;
            CHECK_EQ(kcommit_req_parse(KAPI_TxnOffsetCommit, v, w.buf + 4 + body, w.len - 4 - body,
                                       &c, NULL),
                     0);
            CHECK(kstr_is(c.group_id, "grp"));
            CHECK(kstr_is(c.transactional_id, "txn-a"));
            CHECK_EQ(c.ntopics, 3);
            if (c.ntopics == 3) {
                CHECK(kstr_is(c.topics[0].name, "a"));
                CHECK_EQ(c.topics[0].npartitions, 2);
                CHECK_EQ(c.topics[0].partitions[1].index, 4);
                CHECK_EQ(c.topics[0].partitions[1].committed_offset, 1ll << 40);
                CHECK_EQ(c.topics[1].partitions[0].index, 9);
                CHECK_EQ(c.topics[2].npartitions, 0);
            }
            kcommit_free(&c);
        }
        kw_free(&w);
    }
    kw_free(&v3);

    /* Group metadata below v3, null required strings, bad versions. */
    kwriter_t w;
    kw_init(&w, 64);
    ktxn_txnoffset_req_t q = {TXN, KS("g"), 1, 1, -1, KS(""), {NULL, -1}, 3, topics};
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 2, 1, CID, &q), 0);
    kw_reset(&w);
    q.generation_id = 3;
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 2, 1, CID, &q), -1);
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 3, 1, CID, &q), 0);
    kw_reset(&w);
    q.generation_id = -1;
    q.member_id = KS("m");
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 1, 1, CID, &q), -1);
    q.member_id = (kstr_t){NULL, -1};
    q.group_instance_id = KS("i");
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 0, 1, CID, &q), -1);
    q.group_instance_id = (kstr_t){NULL, -1};
    /* A null MemberId is written as "" from v3. */
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 3, 1, CID, &q), 0);
    check_request(&w, KAPI_TxnOffsetCommit, 3, 3, 1);
    kw_reset(&w);
    q.group_id = (kstr_t){NULL, -1};
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 3, 1, CID, &q), -1);
    q.group_id = KS("g");
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 6, 1, CID, &q), -1);
    ktxn_offset_part_t badmeta[1] = {{0, 0, -1, {NULL, -2}}};
    ktxn_offset_topic_t badt[1] = {{KS("a"), 1, badmeta}};
    q.topics = badt;
    q.ntopics = 1;
    CHECK_EQ(ktxn_txnoffset_req_write(&w, 3, 1, CID, &q), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

static void test_txnoffset_resp(void)
{
    ktxn_txnoffset_resp_t r;
    static const uint8_t v3[] = {
        0, 0,   0,   14, 0,        /* correlation, header tags */
        0, 0,   0,   0,            /* ThrottleTimeMs */
        2,                         /* Topics: 1 */
        3, 't', 'p',               /* Name */
        3,                         /* Partitions: 2 */
        0, 0,   0,   0,  0, 0,  0, /* 0: none, tags */
        0, 0,   0,   1,  0, 22, 0, /* 1: ILLEGAL_GENERATION, tags */
        0,                         /* topic tags */
        0,                         /* tags */
    };
    for (int16_t v = 3; v <= KTXN_TXNOFFSET_MAX_VERSION; v++) {
        CHECK_EQ(ktxn_txnoffset_resp_parse(v, v3, sizeof(v3), &r), 0);
        CHECK_EQ(r.correlation_id, 14);
        CHECK_EQ(r.nresults, 2);
        CHECK(r.nresults == 2 && kstr_is(r.results[1].topic, "tp") && r.results[1].partition == 1 &&
              r.results[1].error_code == 22);
        ktxn_txnoffset_resp_free(&r);
        check_edges(KAPI_TxnOffsetCommit, v, v3, sizeof(v3));
    }
    static const uint8_t v0[] = {
        0, 0, 0,   14,         /* correlation */
        0, 0, 0,   0,          /* ThrottleTimeMs */
        0, 0, 0,   1,          /* Topics: 1 */
        0, 2, 't', 'p',        /* Name */
        0, 0, 0,   1,          /* Partitions: 1 */
        0, 0, 0,   0,   0, 51, /* 0: CONCURRENT_TRANSACTIONS */
    };
    for (int16_t v = 0; v <= 2; v++) {
        CHECK_EQ(ktxn_txnoffset_resp_parse(v, v0, sizeof(v0), &r), 0);
        CHECK_EQ(r.nresults, 1);
        CHECK(r.nresults == 1 && r.results[0].error_code == 51);
        ktxn_txnoffset_resp_free(&r);
        check_edges(KAPI_TxnOffsetCommit, v, v0, sizeof(v0));
    }
    CHECK(ktxn_txnoffset_resp_parse(3, v0, sizeof(v0), &r) != 0);
    CHECK_EQ(ktxn_txnoffset_resp_parse(6, v0, sizeof(v0), &r), KR_EINVALID);
    static const uint8_t null_name[] = {0, 0, 0, 14,   0,    0, 0, 0, 0,
                                        0, 0, 1, 0xff, 0xff, 0, 0, 0, 0};
    CHECK_EQ(ktxn_txnoffset_resp_parse(0, null_name, sizeof(null_name), &r), KR_ENULL);
    ktxn_txnoffset_resp_free(NULL);

    ktxn_part_result_t res[3] = {{KS("x"), 0, 0}, {KS("y"), 3, 120}, {KS("y"), 4, 82}};
    for (int16_t v = 0; v <= KTXN_TXNOFFSET_MAX_VERSION; v++) {
        ktxn_txnoffset_resp_t in = {90 + v, 6, 3, res};
        kwriter_t w;
        kw_init(&w, 64);
        CHECK_EQ(ktxn_txnoffset_resp_write(&w, v, &in), 0);
        CHECK_EQ(ktxn_txnoffset_resp_parse(v, w.buf + 4, w.len - 4, &r), 0);
        CHECK_EQ(r.correlation_id, 90 + v);
        CHECK_EQ(r.throttle_time_ms, 6);
        CHECK_EQ(r.nresults, 3);
        for (int i = 0; i < 3 && r.nresults == 3; i++) {
            CHECK(r.results[i].topic.len == 1 && r.results[i].topic.ptr[0] == res[i].topic.ptr[0]);
            CHECK_EQ(r.results[i].partition, res[i].partition);
            CHECK_EQ(r.results[i].error_code, res[i].error_code);
        }
        ktxn_txnoffset_resp_free(&r);
        check_edges(KAPI_TxnOffsetCommit, v, w.buf + 4, w.len - 4);
        kw_free(&w);
    }
}

int main(void)
{
    test_findcoord_req_bytes();
    test_findcoord_req_all();
    test_findcoord_resp_bytes();
    test_findcoord_resp_lookup();
    test_findcoord_resp_roundtrip();
    test_addparts_req_bytes();
    test_addparts_req_all();
    test_addparts_resp_bytes();
    test_addparts_resp_roundtrip();
    test_addoffsets_req();
    test_addoffsets_resp();
    test_endtxn_req();
    test_endtxn_resp();
    test_txnoffset_req_bytes();
    test_txnoffset_req_all();
    test_txnoffset_resp();
    return unit_done("test_ktxn");
}
