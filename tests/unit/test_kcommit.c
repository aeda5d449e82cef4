/*
 * test_kcommit.c - OffsetCommit (v0..v8) and TxnOffsetCommit (v0..v3)
 * parsing: bodies hand-built field by field from Kafka's JSON specs for
 * every version, both flexible encodings, and refusals (truncation at
 * every length, trailing bytes, null arrays, hostile counts, unknown
 * versions); the group fields a bound commit forwards (generation, member,
 * instance id, leader epoch, metadata); the OffsetCommitResponse writer,
 * read back by the parser for every version and byte for byte at v8.
 */
#include "kcommit.h"
#include "unit.h"

#include <stdlib.h>

#define OC 8
#define TOC 28

/* Two topics: "orders" [0 -> 42, 3 -> 7], "a" [1 -> 0]. */
static const struct {
    const char *name;
    int32_t n;
    int32_t idx[2];
    int64_t off[2];
} TOPICS[] = {{"orders", 2, {0, 3}, {42, 7}}, {"a", 1, {1, 0}, {0, 0}}};

static int flex_of(int api, int ver)
{
    return api == OC ? ver >= 8 : ver >= 3;
}

/* A request body of (api, ver) as the spec lays it out. */
static void build_req(kwriter_t *w, int api, int ver)
{
    int flex = flex_of(api, ver);
    if (api == TOC) {
        kw_str(w, flex, "txn-1", 5);
        kw_str(w, flex, "group-1", 7);
        kw_i64(w, 1234);
        kw_i16(w, 5);
        if (ver >= 3) {
            kw_i32(w, 9);
            kw_str(w, flex, "member", 6);
            kw_str(w, flex, NULL, -1);
        }
    } else {
        kw_str(w, flex, "group-1", 7);
        if (ver >= 1) {
            kw_i32(w, 9);
            kw_str(w, flex, "member", 6);
        }
        if (ver >= 7)
            kw_str(w, flex, "inst", 4);
        if (ver >= 2 && ver <= 4)
            kw_i64(w, -1);
    }
    kw_array(w, flex, 2);
    for (int t = 0; t < 2; t++) {
        kw_str(w, flex, TOPICS[t].name, (int32_t)strlen(TOPICS[t].name));
        kw_array(w, flex, TOPICS[t].n);
        for (int p = 0; p < TOPICS[t].n; p++) {
            kw_i32(w, TOPICS[t].idx[p]);
            kw_i64(w, TOPICS[t].off[p]);
            if (ver >= (api == TOC ? 2 : 6))
                kw_i32(w, 17);
            if (api == OC && ver == 1)
                kw_i64(w, 1700000000000ll);
            if (p == 0)
                kw_str(w, flex, "meta", 4);
            else
                kw_str(w, flex, NULL, -1);
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
    }
    if (flex)
        kw_tags_empty(w);
}

/* A response body: "orders" [0 ok, 3 error 25], "a" [1 ok]. */
static void build_resp(kwriter_t *w, int api, int ver)
{
    int flex = flex_of(api, ver);
    if (api == TOC || ver >= 3)
        kw_i32(w, 11);
    kw_array(w, flex, 2);
    for (int t = 0; t < 2; t++) {
        kw_str(w, flex, TOPICS[t].name, (int32_t)strlen(TOPICS[t].name));
        kw_array(w, flex, TOPICS[t].n);
        for (int p = 0; p < TOPICS[t].n; p++) {
            kw_i32(w, TOPICS[t].idx[p]);
            kw_i16(w, (t == 0 && p == 1) ? 25 : 0);
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
    }
    if (flex)
        kw_tags_empty(w);
}

static void check_topics(const kcommit_t *c, int is_req)
{
    CHECK_EQ(c->ntopics, 2);
    if (c->ntopics != 2)
        return;
    for (int t = 0; t < 2; t++) {
        CHECK_EQ(c->topics[t].name.len, (int32_t)strlen(TOPICS[t].name));
        CHECK(memcmp(c->topics[t].name.ptr, TOPICS[t].name, strlen(TOPICS[t].name)) == 0);
        CHECK_EQ(c->topics[t].npartitions, TOPICS[t].n);
        for (int p = 0; p < TOPICS[t].n && p < c->topics[t].npartitions; p++) {
            CHECK_EQ(c->topics[t].partitions[p].index, TOPICS[t].idx[p]);
            if (is_req) {
                CHECK_EQ(c->topics[t].partitions[p].committed_offset, TOPICS[t].off[p]);
                CHECK_EQ(c->topics[t].partitions[p].error_code, 0);
            } else {
                CHECK_EQ(c->topics[t].partitions[p].committed_offset, -1);
                CHECK_EQ(c->topics[t].partitions[p].error_code, (t == 0 && p == 1) ? 25 : 0);
            }
        }
    }
}

/* The member fields and the first partition's epoch and metadata, as
 * build_req wrote them (or their defaults where the version has none). */
static void check_group_fields(const kcommit_t *c, int api, int ver)
{
    int has_member = api == OC ? ver >= 1 : ver >= 3;
    CHECK_EQ(c->generation_id, has_member ? 9 : -1);
    CHECK_EQ(c->member_id.len, has_member ? 6 : 0);
    int has_inst = api == OC ? ver >= 7 : 0;
    CHECK_EQ(c->group_instance_id.len, has_inst ? 4 : -1);
    if (c->ntopics < 1 || c->topics[0].npartitions < 2)
        return;
    const kcommit_partition_t *p = c->topics[0].partitions;
    CHECK_EQ(p[0].committed_leader_epoch, ver >= (api == TOC ? 2 : 6) ? 17 : -1);
    CHECK_EQ(p[0].committed_metadata.len, 4);
    CHECK_EQ(p[1].committed_metadata.len, -1);
}

/* Every prefix of a valid body fails; the whole body plus a byte fails. */
static void check_truncations(int api, int ver, int is_req, const kwriter_t *w)
{
    int bad = 0;
    for (size_t n = 0; n < w->len; n++) {
        kcommit_t c;
        int rc = is_req ? kcommit_req_parse((int16_t)api, (int16_t)ver, w->buf, n, &c, NULL)
                        : kcommit_resp_parse((int16_t)api, (int16_t)ver, w->buf, n, &c, NULL);
        if (rc == 0) {
            bad++;
            kcommit_free(&c);
        }
    }
    CHECK_EQ(bad, 0);
    uint8_t *longer = malloc(w->len + 1);
    memcpy(longer, w->buf, w->len);
    longer[w->len] = 0;
    kcommit_t c;
    size_t off = 0;
    int rc = is_req ? kcommit_req_parse((int16_t)api, (int16_t)ver, longer, w->len + 1, &c, &off)
                    : kcommit_resp_parse((int16_t)api, (int16_t)ver, longer, w->len + 1, &c, &off);
    CHECK_EQ(rc, KR_EINVALID);
    CHECK_EQ(off, w->len);
    free(longer);
}

static void test_versions(int api, int maxver)
{
    for (int ver = 0; ver <= maxver; ver++) {
        kwriter_t w;
        kw_init(&w, 128);
        build_req(&w, api, ver);
        kcommit_t c;
        CHECK_EQ(kcommit_req_parse((int16_t)api, (int16_t)ver, w.buf, w.len, &c, NULL), 0);
        CHECK_EQ(c.group_id.len, 7);
        CHECK(c.group_id.len == 7 && memcmp(c.group_id.ptr, "group-1", 7) == 0);
        check_topics(&c, 1);
        check_group_fields(&c, api, ver);
        kcommit_free(&c);
        check_truncations(api, ver, 1, &w);
        kw_free(&w);

        kw_init(&w, 64);
        build_resp(&w, api, ver);
        CHECK_EQ(kcommit_resp_parse((int16_t)api, (int16_t)ver, w.buf, w.len, &c, NULL), 0);
        CHECK_EQ(c.throttle_time_ms, (api == TOC || ver >= 3) ? 11 : -1);
        CHECK_EQ(c.group_id.len, -1);
        check_topics(&c, 0);
        kcommit_free(&c);
        check_truncations(api, ver, 0, &w);
        kw_free(&w);
    }
}

/* The v8 request bytes written out by hand (compact lengths N+1). */
static void test_offset_commit_v8_bytes(void)
{
    static const uint8_t body[] = {
        2,    'g',  0,    0,    0, 1,       /* GroupId "g", GenerationId 1 */
        1,                                  /* MemberId "" */
        0,                                  /* GroupInstanceId null */
        2,                                  /* 1 topic */
        2,    't',                          /* Name "t" */
        2,                                  /* 1 partition */
        0,    0,    0,    5,                /* PartitionIndex 5 */
        0,    0,    0,    0,    0, 0, 1, 0, /* CommittedOffset 256 */
        0xff, 0xff, 0xff, 0xff,             /* CommittedLeaderEpoch -1 */
        0,                                  /* CommittedMetadata null */
        0,    0,    0,                      /* tags: partition, topic, body */
    };
    kcommit_t c;
    CHECK_EQ(kcommit_req_parse(OC, 8, body, sizeof(body), &c, NULL), 0);
    CHECK_EQ(c.ntopics, 1);
    if (c.ntopics == 1) {
        CHECK_EQ(c.topics[0].name.len, 1);
        CHECK_EQ(c.topics[0].npartitions, 1);
        CHECK_EQ(c.topics[0].partitions[0].index, 5);
        CHECK_EQ(c.topics[0].partitions[0].committed_offset, 256);
    }
    kcommit_free(&c);
    /* A tagged field on the partition is skipped. */
    static const uint8_t tagged[] = {
        2, 'g', 0, 0, 0, 1, 1,    0,    2,    2,    't', 2, 0, 0, 0,    5,    0, 0,
        0, 0,   0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0,   1, 7, 2, 0xaa, 0xbb, 0, 0,
    };
    CHECK_EQ(kcommit_req_parse(OC, 8, tagged, sizeof(tagged), &c, NULL), 0);
    CHECK_EQ(c.ntopics == 1 ? c.topics[0].partitions[0].committed_offset : -2, 256);
    kcommit_free(&c);
}

/* The response writer, read back by the parser: every version, the one
 * error in every partition. */
static void test_resp_write(void)
{
    for (int ver = 0; ver <= KCOMMIT_OFFSET_MAX_VERSION; ver++) {
        kwriter_t w;
        kw_init(&w, 128);
        build_req(&w, OC, ver);
        kcommit_t req, resp;
        CHECK_EQ(kcommit_req_parse(OC, (int16_t)ver, w.buf, w.len, &req, NULL), 0);
        kwriter_t out;
        kw_init(&out, 64);
        CHECK_EQ(kcommit_resp_write(&out, (int16_t)ver, 77, &req, 22), 0);
        CHECK_EQ((int32_t)kbe32(out.buf), (int32_t)out.len - 4);
        CHECK_EQ((int32_t)kbe32(out.buf + 4), 77);
        size_t hdr = ver >= 8 ? 9 : 8; /* size, CorrelationId (, tags) */
        CHECK_EQ(kcommit_resp_parse(OC, (int16_t)ver, out.buf + hdr, out.len - hdr, &resp, NULL),
                 0);
        CHECK_EQ(resp.throttle_time_ms, ver >= 3 ? 0 : -1);
        CHECK_EQ(resp.ntopics, 2);
        for (int t = 0; t < resp.ntopics && t < 2; t++) {
            CHECK_EQ(resp.topics[t].npartitions, req.topics[t].npartitions);
            for (int q = 0; q < resp.topics[t].npartitions; q++) {
                CHECK_EQ(resp.topics[t].partitions[q].index, req.topics[t].partitions[q].index);
                CHECK_EQ(resp.topics[t].partitions[q].error_code, 22);
            }
        }
        kcommit_free(&resp);
        kw_free(&out);
        kcommit_free(&req);
        kw_free(&w);
    }
    kwriter_t w;
    kw_init(&w, 16);
    kcommit_t none = {0};
    CHECK_EQ(kcommit_resp_write(&w, 9, 1, &none, 0), -1);
    kw_free(&w);
}

/* An OffsetCommitResponse v8 for one partition, byte for byte. */
static void test_resp_v8_bytes(void)
{
    kcommit_partition_t part = {.index = 5, .error_code = 22};
    kcommit_topic_t topic = {{"t", 1}, 1, &part};
    kcommit_t c = {.ntopics = 1, .topics = &topic};
    static const uint8_t want[] = {
        0, 0, 0,   22,       /* size */
        0, 0, 0,   3,        /* CorrelationId */
        0,                   /* header tags */
        0, 0, 0,   0,        /* ThrottleTimeMs */
        2, 2, 't', 2,        /* 1 topic "t", 1 partition */
        0, 0, 0,   5,  0, 7, /* PartitionIndex 5, ErrorCode 7 */
        0, 0, 0,             /* tags: partition, topic, body */
    };
    kwriter_t w;
    kw_init(&w, 32);
    CHECK_EQ(kcommit_resp_write(&w, 8, 3, &c, 7), 0);
    CHECK_EQ(w.len, sizeof(want));
    CHECK(w.len == sizeof(want) && memcmp(w.buf, want, sizeof(want)) == 0);
    kw_free(&w);
}

static void test_refusals(void)
{
    kcommit_t c;
    uint8_t empty[1] = {0};
    CHECK_EQ(kcommit_req_parse(OC, 9, empty, 0, &c, NULL), KR_EINVALID);
    CHECK_EQ(kcommit_req_parse(TOC, 4, empty, 0, &c, NULL), KR_EINVALID);
    CHECK_EQ(kcommit_resp_parse(1, 4, empty, 0, &c, NULL), KR_EINVALID);
    CHECK_EQ(kcommit_req_parse(OC, -1, empty, 0, &c, NULL), KR_EINVALID);
    /* A null topics array (v2: int32 -1). */
    static const uint8_t null_topics[] = {0,    1,    'g',  0,    0,    0,    1,
                                          0,    0,    0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(kcommit_req_parse(OC, 2, null_topics, sizeof(null_topics), &c, NULL) != 0);
    /* A hostile count: 2^31-1 topics in a few bytes. */
    static const uint8_t huge[] = {0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0};
    size_t off = 99;
    CHECK_EQ(kcommit_resp_parse(OC, 3, huge, sizeof(huge), &c, &off), KR_ECOUNT);
    CHECK_EQ(off, 8); /* raised after the count was read */
    /* A null topic name. */
    static const uint8_t null_name[] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0};
    CHECK_EQ(kcommit_resp_parse(OC, 3, null_name, sizeof(null_name), &c, NULL), KR_ENULL);
    kcommit_free(&c); /* zeroed after an error: safe */
}

int main(void)
{
    test_versions(OC, KCOMMIT_OFFSET_MAX_VERSION);
    test_versions(TOC, KCOMMIT_TXN_MAX_VERSION);
    test_offset_commit_v8_bytes();
    test_resp_write();
    test_resp_v8_bytes();
    test_refusals();
    return unit_done("test_kcommit");
}
