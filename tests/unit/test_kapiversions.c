/*
 * test_kapiversions.c - unit tests for kapiversions.c: ApiVersions response
 * build/parse round trips (v0-v3), the intersection with eosproxy's table,
 * UNSUPPORTED_VERSION answers, truncation, golden responses from real
 * clients' sessions, and the ApiVersions/Metadata requests eosproxy sends
 * (checked byte for byte and against kproto's request validator).
 */
#include "kbuf.h"
#include "kproto.h"
#include "unit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_DIR "tests/unit/golden"

static void ranges_absent(kver_range_t r[KAPI_MAX])
{
    for (int i = 0; i < KAPI_MAX; i++) {
        r[i].min_ver = 1;
        r[i].max_ver = 0;
    }
}

/* A broker-like set of ranges. */
static void sample_ranges(kver_range_t r[KAPI_MAX])
{
    ranges_absent(r);
    r[KAPI_Produce] = (kver_range_t){0, 9};
    r[KAPI_Fetch] = (kver_range_t){0, 13};
    r[KAPI_Metadata] = (kver_range_t){0, 12};
    r[KAPI_FindCoordinator] = (kver_range_t){0, 4};
    r[KAPI_ApiVersions] = (kver_range_t){0, 3};
    r[KAPI_DescribeCluster] = (kver_range_t){0, 1};
    r[KAPI_MAX - 1] = (kver_range_t){0, 0};
}

static int ranges_equal(const kver_range_t *a, const kver_range_t *b)
{
    for (int i = 0; i < KAPI_MAX; i++) {
        int pa = a[i].min_ver <= a[i].max_ver, pb = b[i].min_ver <= b[i].max_ver;
        if (pa != pb || (pa && (a[i].min_ver != b[i].min_ver || a[i].max_ver != b[i].max_ver)))
            return 0;
    }
    return 1;
}

static void test_roundtrip(void)
{
    kver_range_t in[KAPI_MAX], got[KAPI_MAX];
    sample_ranges(in);
    for (int16_t ver = 0; ver <= 3; ver++) {
        kwriter_t w;
        kw_init(&w, 0);
        CHECK_EQ(kproto_apiversions_build(&w, ver, 77, 0, in), 0);
        CHECK_EQ(kbe32(w.buf), (int64_t)w.len - 4);
        CHECK_EQ(kbe32(w.buf + 4), 77);
        CHECK_EQ(kproto_apiversions_parse(ver, w.buf + 4, w.len - 4, got), 0);
        CHECK(ranges_equal(in, got));

        /* every strict prefix is malformed; ASan checks the reads */
        int bad = 0;
        for (size_t cut = 0; cut < w.len - 4; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, w.buf + 4, cut);
            if (kproto_apiversions_parse(ver, copy, cut, got) != -1)
                bad++;
            free(copy);
        }
        CHECK_EQ(bad, 0);
        kw_free(&w);
    }
}

/* Exact bytes of a small v3 and v0 response. */
static void test_build_bytes(void)
{
    kver_range_t r[KAPI_MAX];
    kwriter_t w;
    ranges_absent(r);
    r[KAPI_ApiVersions] = (kver_range_t){0, 3};

    static const uint8_t v3[] = {0,  0, 0, 19, 0, 0, 0, 5, 0, 0, 2, 0,
                                 18, 0, 0, 0,  3, 0, 0, 0, 0, 0, 0};
    kw_init(&w, 0);
    CHECK_EQ(kproto_apiversions_build(&w, 3, 5, 0, r), 0);
    CHECK(w.len == sizeof(v3) && memcmp(w.buf, v3, sizeof(v3)) == 0);
    kw_free(&w);

    static const uint8_t v0[] = {0, 0, 0, 16, 0, 0, 0, 5, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 3};
    kw_init(&w, 0);
    CHECK_EQ(kproto_apiversions_build(&w, 0, 5, 35, r), 0);
    CHECK(w.len == sizeof(v0) && memcmp(w.buf, v0, sizeof(v0)) == 0);
    kw_free(&w);

    kw_init(&w, 0);
    CHECK_EQ(kproto_apiversions_build(&w, 4, 5, 0, r), -1);
    CHECK_EQ(kproto_apiversions_build(&w, 1, 5, 0, NULL), 0); /* no ranges: empty array */
    kw_free(&w);
}

/* UNSUPPORTED_VERSION answers use v0 whatever was asked. */
static void test_unsupported(void)
{
    kver_range_t r[KAPI_MAX], got[KAPI_MAX];
    kwriter_t w;
    ranges_absent(r);
    r[KAPI_ApiVersions] = (kver_range_t){0, 2};
    kw_init(&w, 0);
    CHECK_EQ(kproto_apiversions_build(&w, 0, 9, 35, r), 0);
    for (int16_t ver = 0; ver <= 3; ver++) {
        CHECK_EQ(kproto_apiversions_parse(ver, w.buf + 4, w.len - 4, got), 35);
        CHECK_EQ(got[KAPI_ApiVersions].max_ver, 2);
    }
    /* librdkafka 2.0.2's mock answers v3 with a compact count and no tags:
     * the error still comes through, the ranges stay absent */
    static const uint8_t mock[] = {0, 0, 0, 1, 0, 0x23, 1, 0, 0x12, 0, 0, 0, 2, 0, 0, 0, 0};
    CHECK_EQ(kproto_apiversions_parse(3, mock, sizeof(mock), got), 35);
    CHECK(got[KAPI_ApiVersions].min_ver > got[KAPI_ApiVersions].max_ver);
    /* other errors keep the asked layout */
    kw_reset(&w);
    CHECK_EQ(kproto_apiversions_build(&w, 3, 9, 33, r), 0);
    CHECK_EQ(kproto_apiversions_parse(3, w.buf + 4, w.len - 4, got), 33);
    kw_free(&w);
    /* malformed: too short, bad version, null array */
    CHECK_EQ(kproto_apiversions_parse(0, mock, 5, got), -1);
    CHECK_EQ(kproto_apiversions_parse(4, mock, sizeof(mock), got), -1);
    static const uint8_t nullarr[] = {0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(kproto_apiversions_parse(0, nullarr, sizeof(nullarr), got), -1);
}

/* Tagged fields (SupportedFeatures...) and unknown keys are skipped. */
static void test_parse_tags(void)
{
    kwriter_t w;
    kver_range_t got[KAPI_MAX];
    kw_init(&w, 0);
    kw_i32(&w, 1);
    kw_i16(&w, 0);
    kw_array(&w, 1, 3);
    kw_i16(&w, KAPI_Produce);
    kw_i16(&w, 3);
    kw_i16(&w, 9);
    kw_uvarint(&w, 1); /* one entry tag */
    kw_uvarint(&w, 5);
    kw_uvarint(&w, 1);
    kw_i8(&w, 0);
    kw_i16(&w, 1000); /* key beyond the table */
    kw_i16(&w, 0);
    kw_i16(&w, 1);
    kw_tags_empty(&w);
    kw_i16(&w, -3); /* negative key */
    kw_i16(&w, 0);
    kw_i16(&w, 1);
    kw_tags_empty(&w);
    kw_i32(&w, 0);
    kw_uvarint(&w, 1); /* SupportedFeatures (tag 0) */
    kw_uvarint(&w, 0);
    kw_uvarint(&w, 3);
    kw_raw(&w, "\x01\x00\x00", 3);
    CHECK_EQ(kproto_apiversions_parse(3, w.buf, w.len, got), 0);
    CHECK_EQ(got[KAPI_Produce].min_ver, 3);
    CHECK_EQ(got[KAPI_Produce].max_ver, 9);
    CHECK(got[KAPI_Fetch].min_ver > got[KAPI_Fetch].max_ver);
    kw_free(&w);
}

static void test_intersect(void)
{
    kver_range_t up[KAPI_MAX], out[KAPI_MAX];
    sample_ranges(up);
    up[KAPI_Fetch] = (kver_range_t){5, 6};
    up[KAPI_Metadata] = (kver_range_t){0, 1};
    kproto_apiversions_intersect(up, out);
    for (int16_t k = 0; k < KAPI_MAX; k++) {
        const kapi_info_t *a = kproto_api(k);
        int present = out[k].min_ver <= out[k].max_ver;
        if (!a || up[k].min_ver > up[k].max_ver) {
            CHECK(!present);
            continue;
        }
        int16_t lo = a->min_ver > up[k].min_ver ? a->min_ver : up[k].min_ver;
        int16_t hi = a->max_ver < up[k].max_ver ? a->max_ver : up[k].max_ver;
        if (lo > hi) {
            CHECK(!present);
        } else {
            CHECK_EQ(out[k].min_ver, lo);
            CHECK_EQ(out[k].max_ver, hi);
        }
    }
    CHECK(out[KAPI_Metadata].max_ver == 1);
    CHECK(out[KAPI_MAX - 1].min_ver > out[KAPI_MAX - 1].max_ver); /* unknown to eosproxy */
    CHECK(out[KAPI_OffsetCommit].min_ver > out[KAPI_OffsetCommit].max_ver); /* absent upstream */
    /* a disjoint range is absent */
    up[KAPI_Produce] = (kver_range_t){100, 200};
    kproto_apiversions_intersect(up, out);
    CHECK(out[KAPI_Produce].min_ver > out[KAPI_Produce].max_ver);
}

/* Parses and validates a request frame built by kapiversions.c. */
static void check_request(kwriter_t *w, int16_t api, int16_t ver, int32_t corr)
{
    kreq_hdr_t h;
    const char *err = NULL;
    size_t err_off = 0;
    CHECK_EQ(kbe32(w->buf), (int64_t)w->len - 4);
    CHECK_EQ(kproto_parse_request_header(w->buf + 4, w->len - 4, &h, &err), 0);
    CHECK_EQ(h.api_key, api);
    CHECK_EQ(h.api_version, ver);
    CHECK_EQ(h.correlation_id, corr);
    CHECK(h.client_id.len == 8 && memcmp(h.client_id.ptr, "eosproxy", 8) == 0);
    int rc = kproto_validate_request(&h, w->buf + 4, w->len - 4, &err_off, &err);
    CHECK_EQ(rc, 0);
    if (rc)
        fprintf(stderr, "  api %d v%d: %s at %zu\n", api, ver, err, err_off);
}

static void test_requests(void)
{
    kwriter_t w;
    kw_init(&w, 0);
    for (int16_t ver = 0; ver <= 3; ver++) {
        kw_reset(&w);
        CHECK_EQ(kproto_apiversions_request(&w, ver, 100 + ver, "eosproxy"), 0);
        check_request(&w, KAPI_ApiVersions, ver, 100 + ver);
    }
    /* v0-v2: header v1 and an empty body */
    kw_reset(&w);
    kproto_apiversions_request(&w, 2, 1, "eosproxy");
    static const uint8_t av2[] = {0, 0, 0, 18,  0,   18,  0,   2,   0,   0,   0,
                                  1, 0, 8, 'e', 'o', 's', 'p', 'r', 'o', 'x', 'y'};
    CHECK(w.len == sizeof(av2) && memcmp(w.buf, av2, sizeof(av2)) == 0);
    /* v3: header v2 (tags), then "eosproxy" and the version, compact */
    kw_reset(&w);
    kproto_apiversions_request(&w, 3, 1, "eosproxy");
    size_t body = 4 + 2 + 2 + 4 + 2 + 8 + 1;
    CHECK(w.len > body + 10);
    CHECK_EQ(w.buf[body - 1], 0); /* header tags */
    CHECK_EQ(w.buf[body], 9);     /* compact length of "eosproxy" */
    CHECK(memcmp(w.buf + body + 1, "eosproxy", 8) == 0);
    size_t vlen = (size_t)w.buf[body + 9] - 1;
    CHECK_EQ(body + 10 + vlen + 1, w.len);
    CHECK_EQ(w.buf[w.len - 1], 0);
    CHECK_EQ(kproto_apiversions_request(&w, 4, 1, "eosproxy"), -1);
    CHECK_EQ(kproto_apiversions_request(&w, -1, 1, "eosproxy"), -1);

    for (int16_t ver = 1; ver <= 12; ver++) {
        kw_reset(&w);
        CHECK_EQ(kproto_metadata_request(&w, ver, 200 + ver, "eosproxy"), 0);
        check_request(&w, KAPI_Metadata, ver, 200 + ver);
    }
    /* exact bodies: v1 [] ; v4 [] false ; v8 [] false false false ;
     * v9 compact [] false false false tags ; v12 compact [] false false tags */
    static const struct {
        int16_t ver;
        uint8_t body[8];
        size_t n;
    } bodies[] = {
        {1, {0, 0, 0, 0}, 4},    {4, {0, 0, 0, 0, 0}, 5}, {8, {0, 0, 0, 0, 0, 0, 0}, 7},
        {9, {1, 0, 0, 0, 0}, 5}, {11, {1, 0, 0, 0}, 4},   {12, {1, 0, 0, 0}, 4},
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        kw_reset(&w);
        kproto_metadata_request(&w, bodies[i].ver, 1, "eosproxy");
        size_t hdr = 4 + 2 + 2 + 4 + 2 + 8 + (bodies[i].ver >= 9);
        CHECK_EQ(w.len - hdr, bodies[i].n);
        CHECK(w.len - hdr == bodies[i].n && memcmp(w.buf + hdr, bodies[i].body, bodies[i].n) == 0);
    }
    CHECK_EQ(kproto_metadata_request(&w, 0, 1, "eosproxy"), -1);
    CHECK_EQ(kproto_metadata_request(&w, 13, 1, "eosproxy"), -1);
    /* a null client id */
    kw_reset(&w);
    CHECK_EQ(kproto_metadata_request(&w, 1, 1, NULL), 0);
    CHECK_EQ(kbe16(w.buf + 12), -1);
    kw_free(&w);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* ApiVersions responses recorded from the mock (see golden/README.md). */
static void test_golden(void)
{
    static const struct {
        const char *file;
        int16_t ver;
        int want;
    } g[] = {
        {"librdkafka-ApiVersions-v0-resp.bin", 0, 0},
        {"librdkafka-ApiVersions-v3-resp.bin", 3, 35},
        {"confluentkafka-ApiVersions-v0-resp.bin", 0, 0},
        {"confluentkafka-ApiVersions-v3-resp.bin", 3, 35},
        {"kafkapython-ApiVersions-v0-resp.bin", 0, 0},
        {"kafkajs-ApiVersions-v2-resp.bin", 2, 0},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        char path[256];
        size_t len;
        kver_range_t r[KAPI_MAX];
        snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, g[i].file);
        uint8_t *p = read_file(path, &len);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK_EQ(kproto_apiversions_parse(g[i].ver, p, len, r), g[i].want);
        if (g[i].want == 0) {
            /* the 2.0.2 mock's advertised maxima (TESTBED.md) */
            CHECK_EQ(r[KAPI_Produce].max_ver, 7);
            CHECK_EQ(r[KAPI_Fetch].max_ver, 11);
            CHECK_EQ(r[KAPI_Metadata].max_ver, 2);
            CHECK_EQ(r[KAPI_ApiVersions].max_ver, 2);
            CHECK_EQ(r[KAPI_FindCoordinator].max_ver, 2);
            CHECK(r[KAPI_DescribeCluster].min_ver > r[KAPI_DescribeCluster].max_ver);
            /* build from the parse and parse again: same ranges */
            kwriter_t w;
            kver_range_t again[KAPI_MAX];
            kw_init(&w, 0);
            kproto_apiversions_build(&w, g[i].ver, 1, 0, r);
            CHECK_EQ(kproto_apiversions_parse(g[i].ver, w.buf + 4, w.len - 4, again), 0);
            CHECK(ranges_equal(r, again));
            kw_free(&w);
        }
        free(p);
    }
}

int main(void)
{
    test_roundtrip();
    test_build_bytes();
    test_unsupported();
    test_parse_tags();
    test_intersect();
    test_requests();
    test_golden();
    return unit_done("kapiversions");
}
