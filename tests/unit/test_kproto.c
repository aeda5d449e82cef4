/*
 * test_kproto.c - unit tests for the version table, the request/response
 * headers, request-body validation and Produce acks (proxy/codec/kproto.c).
 *
 * Frames are built by hand with kwriter, field by field from Kafka's JSON
 * message specs, independently of the schemas inside kproto.c, for
 * flexible and non-flexible versions. Every valid frame is also checked
 * truncated at every length (each prefix copied into a buffer of exactly
 * that size, so ASan sees any over-read) and with one trailing byte.
 *
 * With KPROTO_SEED_DIR set, the valid frames are also written there as
 * fuzz seeds named req-<Api>-v<ver>.bin (frames without the size prefix).
 */
#include "kproto.h"
#include "unit.h"

#include <stdlib.h>

static const uint8_t UUID1[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* ---- frame building ---- */

/* Request header for (api, ver): v1, or v2 (with empty tags) if flexible. */
static int begin(kwriter_t *w, int16_t api, int16_t ver, const char *client_id)
{
    kw_init(w, 64);
    kw_i16(w, api);
    kw_i16(w, ver);
    kw_i32(w, 0x01020304);
    kw_str(w, 0, client_id, client_id ? (int32_t)strlen(client_id) : -1);
    int flex = kproto_is_flexible(api, ver);
    if (flex)
        kw_tags_empty(w);
    return flex;
}

static void tags(kwriter_t *w, int flex)
{
    if (flex)
        kw_tags_empty(w);
}

static void str(kwriter_t *w, int flex, const char *s)
{
    kw_str(w, flex, s, s ? (int32_t)strlen(s) : -1);
}

/* ---- checking ---- */

/* 1 if the frame parses and validates. */
static int frame_ok(const uint8_t *buf, size_t len, const char **err, size_t *err_off)
{
    kreq_hdr_t h;
    *err = NULL;
    *err_off = 0;
    if (kproto_parse_request_header(buf, len, &h, err) != 0)
        return 0;
    return kproto_validate_request(&h, buf, len, err_off, err) == 0;
}

static void write_seed(const char *what, const uint8_t *buf, size_t len)
{
    const char *dir = getenv("KPROTO_SEED_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/req-%s.bin", dir, what);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(buf, 1, len, f);
    fclose(f);
}

/*
 * Checks a valid frame: accepted; every strict prefix rejected; a trailing
 * byte rejected at offset len. Frees the writer.
 */
static void check_frame(const char *what, kwriter_t *w)
{
    const char *err;
    size_t off;
    CHECK(w->err == 0);
    int ok = frame_ok(w->buf, w->len, &err, &off);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  %s rejected: %s at %zu\n", what, err ? err : "?", off);
    write_seed(what, w->buf, w->len);

    int accepted_prefixes = 0;
    for (size_t n = 0; n < w->len; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, w->buf, n);
        if (frame_ok(c, n, &err, &off)) {
            accepted_prefixes++;
            fprintf(stderr, "  %s: prefix of %zu bytes accepted\n", what, n);
        }
        free(c);
    }
    CHECK_EQ(accepted_prefixes, 0);

    uint8_t *t = malloc(w->len + 1);
    memcpy(t, w->buf, w->len);
    t[w->len] = 0;
    CHECK(!frame_ok(t, w->len + 1, &err, &off));
    CHECK_EQ(off, w->len);
    CHECK(err && strstr(err, "trailing") != NULL);
    free(t);
    kw_free(w);
}

/* Checks that a frame is rejected with an error containing want. */
static void check_bad(const char *what, kwriter_t *w, const char *want)
{
    const char *err;
    size_t off;
    CHECK(w->err == 0);
    uint8_t *c = malloc(w->len);
    memcpy(c, w->buf, w->len);
    int ok = frame_ok(c, w->len, &err, &off);
    CHECK(!ok);
    CHECK(ok || (err && strstr(err, want) != NULL));
    if (ok || !err || !strstr(err, want))
        fprintf(stderr, "  %s: want '%s', got '%s'\n", what, want, ok ? "accepted" : err);
    free(c);
    kw_free(w);
}

/* ---- per-API frames, written from the JSON specs ---- */

/* ApiVersions v0-2: empty body; v3+: ClientSoftwareName ClientSoftwareVersion. */
static void frame_apiversions(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_ApiVersions, v, "cli");
    if (v >= 3) {
        str(w, f, "librdkafka");
        str(w, f, "2.3.0");
    }
    tags(w, f);
}

/* Metadata: Topics(nullable v1+) [TopicId(10+) Name(nullable 10+)]
 * AllowAutoTopicCreation(4+) IncludeClusterAuthorizedOperations(8-10)
 * IncludeTopicAuthorizedOperations(8+) */
static void frame_metadata(kwriter_t *w, int16_t v, int null_topics)
{
    int f = begin(w, KAPI_Metadata, v, "cli");
    if (null_topics) {
        kw_array(w, f, -1);
    } else {
        kw_array(w, f, 2);
        if (v >= 10)
            kw_raw(w, UUID1, 16);
        str(w, f, "orders");
        tags(w, f);
        if (v >= 10)
            kw_raw(w, UUID1, 16);
        str(w, f, v >= 12 ? NULL : "payments");
        tags(w, f);
    }
    if (v >= 4)
        kw_i8(w, 1);
    if (v >= 8 && v <= 10)
        kw_i8(w, 0);
    if (v >= 8)
        kw_i8(w, 1);
    tags(w, f);
}

/* Produce: TransactionalId(3+) Acks TimeoutMs [Name [Index Records]] */
static void frame_produce(kwriter_t *w, int16_t v, const char *txn, int16_t acks)
{
    static const uint8_t batch[40] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 28, 0, 0, 0, 0, 2};
    int f = begin(w, KAPI_Produce, v, "producer-1");
    if (v >= 3)
        str(w, f, txn);
    kw_i16(w, acks);
    kw_i32(w, 30000);
    kw_array(w, f, 1);
    str(w, f, "orders");
    kw_array(w, f, 2);
    kw_i32(w, 0);
    kw_bytes(w, f, batch, sizeof(batch));
    tags(w, f);
    kw_i32(w, 1);
    kw_bytes(w, f, NULL, -1); /* Records is nullable */
    tags(w, f);
    tags(w, f);
    tags(w, f);
}

/* Fetch: see FetchRequest.json; v15 carries ReplicaState as tag 1. */
static void frame_fetch(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_Fetch, v, "consumer-1");
    if (v <= 14)
        kw_i32(w, -1); /* ReplicaId */
    kw_i32(w, 500);    /* MaxWaitMs */
    kw_i32(w, 1);      /* MinBytes */
    if (v >= 3)
        kw_i32(w, 52428800); /* MaxBytes */
    if (v >= 4)
        kw_i8(w, 1); /* IsolationLevel */
    if (v >= 7) {
        kw_i32(w, 0);  /* SessionId */
        kw_i32(w, -1); /* SessionEpoch */
    }
    kw_array(w, f, 1);
    if (v <= 12)
        str(w, f, "orders");
    else
        kw_raw(w, UUID1, 16);
    kw_array(w, f, 1);
    kw_i32(w, 3); /* Partition */
    if (v >= 9)
        kw_i32(w, 5); /* CurrentLeaderEpoch */
    kw_i64(w, 1234);  /* FetchOffset */
    if (v >= 12)
        kw_i32(w, 4); /* LastFetchedEpoch */
    if (v >= 5)
        kw_i64(w, -1);  /* LogStartOffset */
    kw_i32(w, 1048576); /* PartitionMaxBytes */
    tags(w, f);
    tags(w, f);
    if (v >= 7) {
        kw_array(w, f, 1);
        if (v <= 12)
            str(w, f, "old");
        else
            kw_raw(w, UUID1, 16);
        kw_array(w, f, 2);
        kw_i32(w, 0);
        kw_i32(w, 1);
        tags(w, f);
    }
    if (v >= 11)
        str(w, f, "rack-a");
    if (v >= 15) {
        /* TAGGED_FIELDS: 1 field, tag 1 (ReplicaState), 13 bytes. */
        kw_uvarint(w, 1);
        kw_uvarint(w, 1);
        kw_uvarint(w, 13);
        kw_i32(w, -1);
        kw_i64(w, -1);
        kw_tags_empty(w);
    } else {
        tags(w, f);
    }
}

/* FindCoordinator: Key(0-3) KeyType(1+) CoordinatorKeys(4+) */
static void frame_findcoordinator(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_FindCoordinator, v, "cli");
    if (v <= 3)
        str(w, f, "group-1");
    if (v >= 1)
        kw_i8(w, 0);
    if (v >= 4) {
        kw_array(w, f, 2);
        str(w, f, "group-1");
        str(w, f, "group-2");
    }
    tags(w, f);
}

/* OffsetCommit: GroupId GenerationId(1+) MemberId(1+) GroupInstanceId(7+)
 * RetentionTimeMs(2-4) [Name [PartitionIndex CommittedOffset
 * CommittedLeaderEpoch(6+) CommitTimestamp(1) CommittedMetadata]] */
static void frame_offsetcommit(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_OffsetCommit, v, "cli");
    str(w, f, "group-1");
    if (v >= 1) {
        kw_i32(w, 7);
        str(w, f, "member-1");
    }
    if (v >= 7)
        str(w, f, NULL);
    if (v >= 2 && v <= 4)
        kw_i64(w, -1);
    kw_array(w, f, 1);
    str(w, f, "orders");
    kw_array(w, f, 2);
    for (int p = 0; p < 2; p++) {
        kw_i32(w, p);
        kw_i64(w, 100 + p);
        if (v >= 6)
            kw_i32(w, 3);
        if (v == 1)
            kw_i64(w, -1);
        str(w, f, p ? NULL : "meta");
        tags(w, f);
    }
    tags(w, f);
    tags(w, f);
}

/* JoinGroup: GroupId SessionTimeoutMs RebalanceTimeoutMs(1+) MemberId
 * GroupInstanceId(5+) ProtocolType [Name Metadata] Reason(8+) */
static void frame_joingroup(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_JoinGroup, v, "cli");
    str(w, f, "group-1");
    kw_i32(w, 45000);
    if (v >= 1)
        kw_i32(w, 300000);
    str(w, f, "");
    if (v >= 5)
        str(w, f, "instance-1");
    str(w, f, "consumer");
    kw_array(w, f, 2);
    str(w, f, "range");
    kw_bytes(w, f, "\0\1\0\0\0\0", 6);
    tags(w, f);
    str(w, f, "cooperative-sticky");
    kw_bytes(w, f, "", 0);
    tags(w, f);
    if (v >= 8)
        str(w, f, NULL);
    tags(w, f);
}

/* SaslHandshake: Mechanism */
static void frame_saslhandshake(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_SaslHandshake, v, "cli");
    str(w, f, "SCRAM-SHA-256");
}

/* SaslAuthenticate: AuthBytes */
static void frame_saslauthenticate(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_SaslAuthenticate, v, "cli");
    kw_bytes(w, f, "\0user\0pass", 10);
    tags(w, f);
}

/* DescribeCluster: IncludeClusterAuthorizedOperations EndpointType(1+) */
static void frame_describecluster(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_DescribeCluster, v, NULL);
    kw_i8(w, 0);
    if (v >= 1)
        kw_i8(w, 1);
    tags(w, f);
}

/* OffsetFetch: GroupId(0-7) Topics(0-7, nullable 2-7) [Name PartitionIndexes]
 * Groups(8+) [GroupId Topics(nullable) [Name PartitionIndexes]] RequireStable(7+) */
static void frame_offsetfetch(kwriter_t *w, int16_t v)
{
    int f = begin(w, KAPI_OffsetFetch, v, "cli");
    if (v <= 7) {
        str(w, f, "group-1");
        kw_array(w, f, 1);
        str(w, f, "orders");
        kw_array(w, f, 1);
        kw_i32(w, 0);
        tags(w, f);
    } else {
        kw_array(w, f, 2);
        str(w, f, "group-1");
        kw_array(w, f, 1);
        str(w, f, "orders");
        kw_array(w, f, 2);
        kw_i32(w, 0);
        kw_i32(w, 1);
        tags(w, f);
        tags(w, f);
        str(w, f, "group-2");
        kw_array(w, f, -1);
        tags(w, f);
    }
    if (v >= 7)
        kw_i8(w, 1);
    tags(w, f);
}

/* ---- tests ---- */

static void test_table(void)
{
    const char *err = NULL;
    CHECK_EQ(kproto_schema_selfcheck(&err), 0);
    if (err)
        fprintf(stderr, "  selfcheck: %s\n", err);
    int rows = 0;
    for (int k = -2; k < KAPI_MAX + 3; k++) {
        const kapi_info_t *a = kproto_api((int16_t)k);
        if (!a) {
            CHECK_STR(kproto_api_name((int16_t)k), "Unknown");
            continue;
        }
        rows++;
        CHECK_EQ(a->api_key, k);
        CHECK(a->name != NULL && strcmp(a->name, "Unknown") != 0);
        CHECK_STR(kproto_api_name((int16_t)k), a->name);
        CHECK(a->min_ver >= 0 && a->min_ver <= a->max_ver);
        CHECK(a->flex_ver == -1 || (a->flex_ver >= a->min_ver && a->flex_ver <= a->max_ver));
    }
    CHECK_EQ(rows, 29);
    CHECK_EQ(kproto_api(KAPI_Produce)->max_ver, 9);
    CHECK_EQ(kproto_api(KAPI_Produce)->flex_ver, 9);
    CHECK_EQ(kproto_api(KAPI_Fetch)->max_ver, 15);
    CHECK_EQ(kproto_api(KAPI_Fetch)->flex_ver, 12);
    CHECK_EQ(kproto_api(KAPI_Metadata)->max_ver, 12);
    CHECK_EQ(kproto_api(KAPI_FindCoordinator)->max_ver, 4);
    CHECK_EQ(kproto_api(KAPI_DescribeCluster)->max_ver, 1);
    CHECK_EQ(kproto_api(KAPI_ApiVersions)->max_ver, 3);
    CHECK_EQ(kproto_api(KAPI_SaslHandshake)->flex_ver, -1);
    CHECK(kproto_api(4) == NULL); /* LeaderAndIsr: broker-internal */
    CHECK_STR(kproto_api_name(KAPI_Produce), "Produce");
    CHECK_STR(kproto_api_name(KAPI_OffsetForLeaderEpoch), "OffsetForLeaderEpoch");

    CHECK_EQ(kproto_is_flexible(KAPI_Produce, 8), 0);
    CHECK_EQ(kproto_is_flexible(KAPI_Produce, 9), 1);
    CHECK_EQ(kproto_is_flexible(KAPI_SaslHandshake, 1), 0);
    CHECK_EQ(kproto_is_flexible(999, 1), 0);
    CHECK_EQ(kproto_request_header_version(KAPI_Produce, 8), 1);
    CHECK_EQ(kproto_request_header_version(KAPI_Produce, 9), 2);
    CHECK_EQ(kproto_request_header_version(KAPI_ApiVersions, 3), 2);
    CHECK_EQ(kproto_request_header_version(KAPI_ApiVersions, 99), 2);
    CHECK_EQ(kproto_request_header_version(KAPI_DescribeCluster, 0), 2);
    CHECK_EQ(kproto_response_header_version(KAPI_ApiVersions, 3), 0);
    CHECK_EQ(kproto_response_header_version(KAPI_Metadata, 8), 0);
    CHECK_EQ(kproto_response_header_version(KAPI_Metadata, 9), 1);
    CHECK_EQ(kproto_response_header_version(KAPI_Fetch, 15), 1);
}

/* Every version of every API: the walker runs on an empty body and on a
 * body of zeros without crashing, and never accepts a body with a byte
 * left over. */
static void test_all_versions_sweep(void)
{
    int bad = 0;
    for (int k = 0; k < KAPI_MAX; k++) {
        const kapi_info_t *a = kproto_api((int16_t)k);
        if (!a)
            continue;
        for (int v = a->min_ver; v <= a->max_ver; v++) {
            for (size_t extra = 0; extra < 48; extra++) {
                kwriter_t w;
                begin(&w, (int16_t)k, (int16_t)v, "x");
                for (size_t i = 0; i < extra; i++)
                    kw_i8(&w, 0);
                const char *err;
                size_t off;
                uint8_t *c = malloc(w.len);
                memcpy(c, w.buf, w.len);
                if (frame_ok(c, w.len, &err, &off)) {
                    /* An all-zero body may be valid (empty arrays, empty
                     * strings): then one more zero must not be. */
                    uint8_t *d = malloc(w.len + 1);
                    memcpy(d, c, w.len);
                    d[w.len] = 0;
                    if (frame_ok(d, w.len + 1, &err, &off))
                        bad++;
                    free(d);
                } else if (err && strstr(err, "internal")) {
                    bad++;
                }
                free(c);
                kw_free(&w);
            }
        }
    }
    CHECK_EQ(bad, 0);
}

static void test_request_header(void)
{
    kwriter_t w;
    kreq_hdr_t h;
    const char *err = NULL;

    /* v1 header with a null client id */
    begin(&w, KAPI_Metadata, 1, NULL);
    kw_array(&w, 0, -1);
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(h.api_key, KAPI_Metadata);
    CHECK_EQ(h.api_version, 1);
    CHECK_EQ(h.correlation_id, 0x01020304);
    CHECK_EQ(h.client_id.len, -1);
    CHECK_EQ(h.body_off, 10);
    kw_free(&w);

    /* v2 header: client id stays INT16-length, then tags */
    begin(&w, KAPI_Metadata, 12, "abc");
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(h.client_id.len, 3);
    CHECK(memcmp(h.client_id.ptr, "abc", 3) == 0);
    CHECK_EQ(h.body_off, 8 + 2 + 3 + 1);
    kw_free(&w);

    /* v2 header with a non-empty tag section */
    kw_init(&w, 64);
    kw_i16(&w, KAPI_ApiVersions);
    kw_i16(&w, 3);
    kw_i32(&w, 9);
    kw_str(&w, 0, "c", 1);
    kw_uvarint(&w, 1);
    kw_uvarint(&w, 5);
    kw_uvarint(&w, 2);
    kw_i16(&w, 0x4142);
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(h.body_off, w.len);
    /* tag size running past the frame */
    w.buf[w.len - 3] = 9;
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), -1);
    CHECK_STR(err, "malformed request header");
    kw_free(&w);

    /* unknown api keys */
    int16_t unknown[] = {-1, 4, 7, 27, 59, 61, KAPI_MAX, 1000, INT16_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        begin(&w, unknown[i], 0, "c");
        err = NULL;
        CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), -1);
        CHECK(err && strcmp(err, "unknown api key") == 0);
        kw_free(&w);
    }

    /* out-of-range versions */
    struct {
        int16_t api, ver;
    } out[] = {{KAPI_Produce, 10},     {KAPI_Produce, -1},        {KAPI_Fetch, 16},
               {KAPI_Metadata, 13},    {KAPI_FindCoordinator, 5}, {KAPI_DescribeCluster, 2},
               {KAPI_ApiVersions, -1}, {KAPI_SaslHandshake, 2}};
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
        begin(&w, out[i].api, out[i].ver, "c");
        err = NULL;
        CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), -1);
        CHECK(err && strcmp(err, "unsupported version") == 0);
        kw_free(&w);
    }

    /* ApiVersions above the table: header v2 parsed, body not validated */
    begin(&w, KAPI_ApiVersions, 99, "future-client");
    str(&w, 1, "name");
    str(&w, 1, "1.0");
    kw_tags_empty(&w);
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(h.api_version, 99);
    CHECK_EQ(h.correlation_id, 0x01020304);
    CHECK_EQ(h.body_off, 8 + 2 + 13 + 1);
    size_t off;
    CHECK_EQ(kproto_validate_request(&h, w.buf, w.len, &off, &err), -1);
    CHECK_STR(err, "unsupported version");
    kw_free(&w);

    /* short headers */
    uint8_t hdr[10] = {0, 3, 0, 1, 0, 0, 0, 1, 0, 0};
    for (size_t n = 0; n < sizeof(hdr); n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, hdr, n);
        CHECK_EQ(kproto_parse_request_header(c, n, &h, &err), -1);
        free(c);
    }
    CHECK_EQ(kproto_parse_request_header(hdr, sizeof(hdr), &h, &err), 0);
    /* client id length -2 */
    hdr[8] = 0xff;
    hdr[9] = 0xfe;
    CHECK_EQ(kproto_parse_request_header(hdr, sizeof(hdr), &h, &err), -1);
}

static void test_response_header(void)
{
    int32_t corr = 0;
    size_t off = 0;
    uint8_t v0[] = {0, 0, 0, 42, 0xAA};
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 8, v0, sizeof(v0), &corr, &off), 0);
    CHECK_EQ(corr, 42);
    CHECK_EQ(off, 4);
    /* ApiVersions v3 keeps header v0: 0xAA is body, not tags */
    CHECK_EQ(kproto_parse_response_header(KAPI_ApiVersions, 3, v0, sizeof(v0), &corr, &off), 0);
    CHECK_EQ(off, 4);
    /* header v1: 0xAA is a bad tag count (varint continuation, then end) */
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 9, v0, sizeof(v0), &corr, &off), -1);
    uint8_t v1[] = {0, 0, 1, 0, 1, 3, 1, 0x7f, 0xEE};
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 9, v1, sizeof(v1), &corr, &off), 0);
    CHECK_EQ(corr, 256);
    CHECK_EQ(off, 8);
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 9, v1, 7, &corr, &off), -1);
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 9, v1, 4, &corr, &off), -1);
    CHECK_EQ(kproto_parse_response_header(KAPI_Metadata, 0, v1, 3, &corr, &off), -1);
}

static void test_valid_frames(void)
{
    kwriter_t w;
    char what[64];
    static const int16_t apiv[] = {0, 1, 2, 3};
    for (size_t i = 0; i < 4; i++) {
        frame_apiversions(&w, apiv[i]);
        snprintf(what, sizeof(what), "ApiVersions-v%d", apiv[i]);
        check_frame(what, &w);
    }
    static const int16_t md[] = {0, 1, 4, 8, 9, 10, 11, 12};
    for (size_t i = 0; i < sizeof(md) / sizeof(md[0]); i++) {
        frame_metadata(&w, md[i], 0);
        snprintf(what, sizeof(what), "Metadata-v%d", md[i]);
        check_frame(what, &w);
        if (md[i] >= 1) {
            frame_metadata(&w, md[i], 1);
            snprintf(what, sizeof(what), "Metadata-v%d-all", md[i]);
            check_frame(what, &w);
        }
    }
    for (int16_t v = 0; v <= 9; v++) {
        frame_produce(&w, v, v % 2 ? "txn-1" : NULL, -1);
        snprintf(what, sizeof(what), "Produce-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 15; v++) {
        frame_fetch(&w, v);
        snprintf(what, sizeof(what), "Fetch-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 4; v++) {
        frame_findcoordinator(&w, v);
        snprintf(what, sizeof(what), "FindCoordinator-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 8; v++) {
        frame_offsetcommit(&w, v);
        snprintf(what, sizeof(what), "OffsetCommit-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 8; v++) {
        frame_offsetfetch(&w, v);
        snprintf(what, sizeof(what), "OffsetFetch-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 9; v++) {
        frame_joingroup(&w, v);
        snprintf(what, sizeof(what), "JoinGroup-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 1; v++) {
        frame_saslhandshake(&w, v);
        snprintf(what, sizeof(what), "SaslHandshake-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 2; v++) {
        frame_saslauthenticate(&w, v);
        snprintf(what, sizeof(what), "SaslAuthenticate-v%d", v);
        check_frame(what, &w);
    }
    for (int16_t v = 0; v <= 1; v++) {
        frame_describecluster(&w, v);
        snprintf(what, sizeof(what), "DescribeCluster-v%d", v);
        check_frame(what, &w);
    }
}

static void test_invalid_frames(void)
{
    kwriter_t w;

    /* Metadata v0: Topics is not nullable */
    frame_metadata(&w, 0, 1);
    check_bad("Metadata-v0-null", &w, "null");

    /* Metadata v9: a null topic name only from v10 */
    {
        int f = begin(&w, KAPI_Metadata, 9, "c");
        kw_array(&w, f, 1);
        str(&w, f, NULL);
        tags(&w, f);
        kw_i8(&w, 1);
        kw_i8(&w, 0);
        kw_i8(&w, 0);
        tags(&w, f);
        check_bad("Metadata-v9-nullname", &w, "null");
    }

    /* huge array counts, non-flexible and compact */
    begin(&w, KAPI_Produce, 3, "c");
    str(&w, 0, NULL);
    kw_i16(&w, 1);
    kw_i32(&w, 1000);
    kw_i32(&w, INT32_MAX);
    check_bad("Produce-v3-huge", &w, "array count");

    begin(&w, KAPI_Produce, 9, "c");
    str(&w, 1, NULL);
    kw_i16(&w, 1);
    kw_i32(&w, 1000);
    kw_uvarint(&w, UINT32_MAX);
    check_bad("Produce-v9-huge", &w, "array count");

    begin(&w, KAPI_Produce, 7, "c");
    str(&w, 0, NULL);
    kw_i16(&w, 1);
    kw_i32(&w, 1000);
    kw_i32(&w, 1);
    str(&w, 0, "t");
    kw_i32(&w, 1000000); /* partitions */
    kw_i32(&w, 0);
    kw_bytes(&w, 0, NULL, -1);
    check_bad("Produce-v7-huge-partitions", &w, "array count");

    /* a negative array count other than -1 */
    begin(&w, KAPI_Fetch, 4, "c");
    kw_i32(&w, -1);
    kw_i32(&w, 1);
    kw_i32(&w, 1);
    kw_i32(&w, 1);
    kw_i8(&w, 0);
    kw_i32(&w, -2);
    check_bad("Fetch-v4-negcount", &w, "negative");

    /* Fetch v4: null Topics array */
    begin(&w, KAPI_Fetch, 4, "c");
    kw_i32(&w, -1);
    kw_i32(&w, 1);
    kw_i32(&w, 1);
    kw_i32(&w, 1);
    kw_i8(&w, 0);
    kw_i32(&w, -1);
    check_bad("Fetch-v4-nulltopics", &w, "null");

    /* string length past the end */
    begin(&w, KAPI_SaslHandshake, 1, "c");
    kw_i16(&w, 0x7fff);
    kw_raw(&w, "PLAIN", 5);
    check_bad("SaslHandshake-long", &w, "past end");

    /* SaslAuthenticate v2: AuthBytes not nullable */
    begin(&w, KAPI_SaslAuthenticate, 2, "c");
    kw_bytes(&w, 1, NULL, -1);
    kw_tags_empty(&w);
    check_bad("SaslAuthenticate-v2-null", &w, "null");

    /* FindCoordinator v3: Key is not nullable */
    begin(&w, KAPI_FindCoordinator, 3, "c");
    str(&w, 1, NULL);
    kw_i8(&w, 0);
    kw_tags_empty(&w);
    check_bad("FindCoordinator-v3-nullkey", &w, "null");

    /* DescribeCluster v0: missing top-level tag section */
    begin(&w, KAPI_DescribeCluster, 0, "c");
    kw_i8(&w, 1);
    check_bad("DescribeCluster-v0-notags", &w, "past end");

    /* a tag section claiming more fields than bytes */
    begin(&w, KAPI_DescribeCluster, 0, "c");
    kw_i8(&w, 1);
    kw_uvarint(&w, 100);
    kw_i8(&w, 0);
    check_bad("DescribeCluster-v0-tagcount", &w, "array count");

    /* an over-long varint (6 bytes) for a compact string length */
    begin(&w, KAPI_ApiVersions, 3, "c");
    kw_raw(&w, "\x81\x80\x80\x80\x80\x00", 6);
    check_bad("ApiVersions-v3-varint", &w, "varint");

    /* non-flexible body with compact encoding is rejected */
    begin(&w, KAPI_SaslAuthenticate, 1, "c");
    kw_bytes(&w, 1, "ab", 2);
    check_bad("SaslAuthenticate-v1-compact", &w, "past end");
}

static void test_produce_acks(void)
{
    kwriter_t w;
    kreq_hdr_t h;
    const char *err;
    struct {
        int16_t ver;
        const char *txn;
        int16_t acks;
    } cases[] = {{0, NULL, 1}, {2, NULL, 0},  {3, NULL, -1},  {3, "txn-1", 1},
                 {8, "t", 0},  {9, NULL, -1}, {9, "txn-2", 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame_produce(&w, cases[i].ver, cases[i].txn, cases[i].acks);
        CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
        CHECK_EQ(kproto_produce_acks(&h, w.buf, w.len), cases[i].acks);
        /* truncated in the acks field */
        size_t cut = w.len;
        for (size_t n = h.body_off; n < w.len; n++) {
            if (kproto_produce_acks(&h, w.buf, n) != -2) {
                cut = n;
                break;
            }
        }
        size_t acks_end = h.body_off + 2;
        if (cases[i].ver >= 3)
            acks_end += (cases[i].ver >= 9 ? 1 : 2) + (cases[i].txn ? strlen(cases[i].txn) : 0);
        CHECK_EQ(cut, acks_end);
        kw_free(&w);
    }
    frame_produce(&w, 5, NULL, 2);
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(kproto_produce_acks(&h, w.buf, w.len), -2);
    kw_free(&w);
    /* not a Produce request */
    frame_fetch(&w, 4);
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(kproto_produce_acks(&h, w.buf, w.len), -2);
    kw_free(&w);
}

static void test_err_offset(void)
{
    /* DescribeConfigs v4: the error offset points at the bad field */
    kwriter_t w;
    begin(&w, KAPI_DescribeConfigs, 4, "c");
    kw_array(&w, 1, 1);
    kw_i8(&w, 2);
    size_t bad_at = w.len;
    kw_uvarint(&w, 0); /* null ResourceName */
    kw_array(&w, 1, -1);
    kw_tags_empty(&w);
    kw_i8(&w, 0);
    kw_i8(&w, 0);
    kw_tags_empty(&w);
    kreq_hdr_t h;
    const char *err;
    size_t off = 0;
    CHECK_EQ(kproto_parse_request_header(w.buf, w.len, &h, &err), 0);
    CHECK_EQ(kproto_validate_request(&h, w.buf, w.len, &off, &err), -1);
    CHECK_STR(err, "unexpected null");
    CHECK(off >= bad_at && off <= bad_at + 1);
    /* the same frame with a name is valid (ConfigurationKeys null is fine) */
    w.len = bad_at;
    kw_str(&w, 1, "orders", 6);
    kw_array(&w, 1, -1);
    kw_tags_empty(&w);
    kw_i8(&w, 0);
    kw_i8(&w, 0);
    kw_tags_empty(&w);
    check_frame("DescribeConfigs-v4", &w);
}

int main(void)
{
    test_table();
    test_request_header();
    test_response_header();
    test_valid_frames();
    test_invalid_frames();
    test_produce_acks();
    test_err_offset();
    test_all_versions_sweep();
    return unit_done("kproto");
}
