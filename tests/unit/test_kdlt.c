/*
 * test_kdlt.c - unit tests for proxy/codec/kdlt.c: Spring Kafka's dead-letter
 * headers built from an origin and parsed back, their binary encodings,
 * and the refusal of values with the wrong size.
 */
#include "kdlt.h"
#include "unit.h"

#include <stdint.h>

/* Parses every header of h into o; returns how many were DLT headers. */
static int parse_all(const kdlt_headers_t *h, kdlt_origin_t *o)
{
    int n = 0;
    for (size_t i = 0; i < h->n; i++) {
        int r =
            kdlt_header_parse(h->h[i].name, strlen(h->h[i].name), h->h[i].value, h->h[i].len, o);
        CHECK_EQ(r, 1);
        n += r == 1;
    }
    return n;
}

static int view_is(const char *p, size_t len, const char *want)
{
    return p && len == strlen(want) && memcmp(p, want, len) == 0;
}

static kdlt_origin_t sample_origin(void)
{
    kdlt_origin_t o;
    memset(&o, 0, sizeof(o));
    o.topic = "orders";
    o.topic_len = 6;
    o.partition = 7;
    o.offset = 1234567890123LL;
    o.timestamp = 1765000000123LL;
    o.timestamp_type = 1;
    o.group = "billing";
    o.group_len = 7;
    o.reason = "max deliveries (5) reached";
    o.reason_len = strlen(o.reason);
    return o;
}

static void test_be(void)
{
    uint8_t b[8];
    kdlt_put_be32(b, 0x01020304);
    CHECK(b[0] == 1 && b[1] == 2 && b[2] == 3 && b[3] == 4);
    CHECK_EQ(kdlt_get_be32(b), 0x01020304);
    kdlt_put_be32(b, -1);
    CHECK(b[0] == 0xff && b[3] == 0xff);
    CHECK_EQ(kdlt_get_be32(b), -1);
    kdlt_put_be32(b, INT32_MIN);
    CHECK_EQ(kdlt_get_be32(b), INT32_MIN);
    kdlt_put_be64(b, 0x0102030405060708LL);
    CHECK(b[0] == 1 && b[7] == 8);
    CHECK_EQ(kdlt_get_be64(b), 0x0102030405060708LL);
    kdlt_put_be64(b, INT64_MIN);
    CHECK_EQ(kdlt_get_be64(b), INT64_MIN);
    kdlt_put_be64(b, -2);
    CHECK_EQ(kdlt_get_be64(b), -2);
}

static void test_build_order_and_encodings(void)
{
    kdlt_origin_t o = sample_origin();
    kdlt_headers_t h;
    kdlt_headers_build(&o, &h);
    CHECK_EQ(h.n, 8);
    const char *names[] = {KDLT_ORIGINAL_TOPIC,          KDLT_ORIGINAL_PARTITION,
                           KDLT_ORIGINAL_OFFSET,         KDLT_ORIGINAL_TIMESTAMP,
                           KDLT_ORIGINAL_TIMESTAMP_TYPE, KDLT_ORIGINAL_CONSUMER_GROUP,
                           KDLT_EXCEPTION_FQCN,          KDLT_EXCEPTION_MESSAGE};
    for (size_t i = 0; i < h.n && i < 8; i++)
        CHECK_STR(h.h[i].name, names[i]);
    CHECK(view_is((const char *)h.h[0].value, h.h[0].len, "orders"));
    static const uint8_t part[4] = {0, 0, 0, 7};
    CHECK(h.h[1].len == 4 && memcmp(h.h[1].value, part, 4) == 0);
    CHECK_EQ(h.h[2].len, 8);
    CHECK_EQ(kdlt_get_be64(h.h[2].value), 1234567890123LL);
    CHECK_EQ(kdlt_get_be64(h.h[3].value), 1765000000123LL);
    CHECK(view_is((const char *)h.h[4].value, h.h[4].len, "LogAppendTime"));
    CHECK(view_is((const char *)h.h[5].value, h.h[5].len, "billing"));
    CHECK(view_is((const char *)h.h[6].value, h.h[6].len, "eosproxy.DeadLetter"));
    CHECK(view_is((const char *)h.h[7].value, h.h[7].len, "max deliveries (5) reached"));
    for (size_t i = 0; i < h.n; i++)
        CHECK(kdlt_is_dlt_header(h.h[i].name, strlen(h.h[i].name)));
}

static void test_roundtrip(void)
{
    kdlt_origin_t o = sample_origin(), back;
    kdlt_headers_t h;
    kdlt_headers_build(&o, &h);
    memset(&back, 0, sizeof(back));
    CHECK_EQ(parse_all(&h, &back), 8);
    CHECK(view_is(back.topic, back.topic_len, "orders"));
    CHECK_EQ(back.partition, 7);
    CHECK_EQ(back.offset, 1234567890123LL);
    CHECK_EQ(back.timestamp, 1765000000123LL);
    CHECK_EQ(back.timestamp_type, 1);
    CHECK(view_is(back.group, back.group_len, "billing"));
    CHECK(view_is(back.reason, back.reason_len, "max deliveries (5) reached"));
}

/* No group: the header is left out; no reason: an empty message. */
static void test_optional_fields(void)
{
    kdlt_origin_t o = sample_origin(), back;
    kdlt_headers_t h;
    o.group = NULL;
    o.group_len = 0;
    o.reason = NULL;
    o.timestamp_type = 0;
    o.partition = -1;
    kdlt_headers_build(&o, &h);
    CHECK_EQ(h.n, 7);
    for (size_t i = 0; i < h.n; i++)
        CHECK(strcmp(h.h[i].name, KDLT_ORIGINAL_CONSUMER_GROUP) != 0);
    CHECK_STR(h.h[h.n - 1].name, KDLT_EXCEPTION_MESSAGE);
    CHECK_EQ(h.h[h.n - 1].len, 0);
    memset(&back, 0, sizeof(back));
    back.timestamp_type = 1;
    CHECK_EQ(parse_all(&h, &back), 7);
    CHECK(back.group == NULL);
    CHECK_EQ(back.reason_len, 0);
    CHECK_EQ(back.timestamp_type, 0);
    CHECK_EQ(back.partition, -1);
    CHECK(view_is((const char *)h.h[4].value, h.h[4].len, "CreateTime"));
}

/* A value of the wrong size is refused and leaves the origin unchanged. */
static void test_bad_sizes(void)
{
    kdlt_origin_t o = sample_origin();
    const uint8_t eight[8] = {0, 0, 0, 0, 0, 0, 0, 9}, four[4] = {0, 0, 0, 9};
#define PARSE(name, v, len) kdlt_header_parse(name, strlen(name), v, len, &o)
    CHECK_EQ(PARSE(KDLT_ORIGINAL_PARTITION, eight, 8), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_PARTITION, four, 3), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_OFFSET, four, 4), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_TIMESTAMP, eight, 7), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_TIMESTAMP_TYPE, (const uint8_t *)"Create", 6), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_TIMESTAMP_TYPE, (const uint8_t *)"createtime", 10), -1);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_TOPIC, NULL, 3), -1);
    CHECK_EQ(o.partition, 7);
    CHECK_EQ(o.offset, 1234567890123LL);
    CHECK_EQ(o.timestamp, 1765000000123LL);
    CHECK_EQ(o.timestamp_type, 1);
    CHECK(view_is(o.topic, o.topic_len, "orders"));
    /* The right sizes are taken. */
    CHECK_EQ(PARSE(KDLT_ORIGINAL_PARTITION, four, 4), 1);
    CHECK_EQ(o.partition, 9);
    CHECK_EQ(PARSE(KDLT_ORIGINAL_OFFSET, eight, 8), 1);
    CHECK_EQ(o.offset, 9);
    /* An empty topic (NULL value, length 0) is a view of nothing, not an error. */
    CHECK_EQ(PARSE(KDLT_ORIGINAL_TOPIC, NULL, 0), 1);
    CHECK_EQ(o.topic_len, 0);
#undef PARSE
}

/* Names are compared whole and case-sensitively; other headers are not ours. */
static void test_names(void)
{
    kdlt_origin_t o = sample_origin();
    CHECK_EQ(kdlt_header_parse("eventId", 7, (const uint8_t *)"e1", 2, &o), 0);
    CHECK_EQ(
        kdlt_header_parse(KDLT_REPLAYED, strlen(KDLT_REPLAYED), (const uint8_t *)"a/0/1", 5, &o),
        0);
    CHECK(!kdlt_is_dlt_header(KDLT_REPLAYED, strlen(KDLT_REPLAYED)));
    CHECK(!kdlt_is_dlt_header("kafka_dlt-original-topi", 23));
    CHECK(!kdlt_is_dlt_header("kafka_dlt-original-topicX", 25));
    CHECK(!kdlt_is_dlt_header("KAFKA_DLT-ORIGINAL-TOPIC", 24));
    CHECK(!kdlt_is_dlt_header("kafka_dlt-exception-stacktrace", 30));
    CHECK(kdlt_is_dlt_header("kafka_dlt-original-topicX", 24)); /* the length bounds the name */
    CHECK_EQ(kdlt_header_parse("kafka_dlt-original-topicX", 24, (const uint8_t *)"x", 1, &o), 1);
    CHECK(view_is(o.topic, o.topic_len, "x"));
    /* The fqcn is recognised and nothing of it is kept. */
    CHECK_EQ(kdlt_header_parse(KDLT_EXCEPTION_FQCN, strlen(KDLT_EXCEPTION_FQCN),
                               (const uint8_t *)"java.lang.RuntimeException", 26, &o),
             1);
    CHECK(view_is(o.topic, o.topic_len, "x"));
    CHECK(view_is(o.reason, o.reason_len, "max deliveries (5) reached"));
    CHECK(view_is(o.group, o.group_len, "billing"));
    CHECK_EQ(o.partition, 7);
    CHECK_STR(kdlt_timestamp_type_name(0), "CreateTime");
    CHECK_STR(kdlt_timestamp_type_name(1), "LogAppendTime");
}

/* Values are views into the origin's strings: a topic with any bytes survives. */
static void test_binary_views(void)
{
    static const char topic[] = {'a', '\0', 'b'};
    kdlt_origin_t o = sample_origin(), back;
    kdlt_headers_t h;
    o.topic = topic;
    o.topic_len = 3;
    kdlt_headers_build(&o, &h);
    CHECK(h.h[0].value == (const uint8_t *)topic);
    memset(&back, 0, sizeof(back));
    parse_all(&h, &back);
    CHECK(back.topic == topic && back.topic_len == 3);
}

int main(void)
{
    test_be();
    test_build_order_and_encodings();
    test_roundtrip();
    test_optional_fields();
    test_bad_sizes();
    test_names();
    test_binary_views();
    return unit_done("kdlt");
}
