/*
 * test_kfetch.c - unit tests for the FetchResponse codec, v4..v12
 * (proxy/codec/kfetch.c).
 *
 * Frames are built here with kwriter field by field from Kafka's
 * FetchResponse.json, independently of the codec: every version parses,
 * re-encodes byte for byte, and fails cleanly at every truncation (each
 * prefix in a buffer of exactly that size, so ASan sees any over-read).
 * v12 carries partition tags (CurrentLeader) that must survive. Golden
 * Fetch responses recorded from real clients (tests/unit/golden) must
 * round-trip byte for byte, and again after their batches are filtered
 * through krecords (records substituted).
 *
 * With KFETCH_SEED_DIR set, the frames are written there as fuzz seeds
 * fetch-*.bin in the input format of tests/fuzz/fuzz_fetch.c (one
 * selector byte, version - 4, then the frame).
 */
#include "kfetch.h"
#include "krecords.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#define GOLDEN_DIR "tests/unit/golden"

/* ---- building ---- */

/* One small uncompressed batch of nrec records at base, correct CRC. */
static void build_batch(kwriter_t *w, int64_t base, int nrec)
{
    size_t start = w->len;
    kw_i64(w, base);
    kw_i32(w, 0);
    kw_i32(w, 3);
    kw_i8(w, 2);
    kw_i32(w, 0);
    kw_i16(w, 0);
    kw_i32(w, nrec - 1);
    kw_i64(w, 1700000000000LL);
    kw_i64(w, 1700000000000LL + nrec - 1);
    kw_i64(w, -1);
    kw_i16(w, -1);
    kw_i32(w, -1);
    kw_i32(w, nrec);
    for (int i = 0; i < nrec; i++) {
        kw_varint(w, 8);
        kw_i8(w, 0);
        kw_varlong(w, i);
        kw_varint(w, i);
        kw_varint(w, -1);
        kw_varint(w, 2);
        kw_i8(w, 'v');
        kw_i8(w, (int8_t)('0' + i % 10));
        kw_varint(w, 0);
    }
    kw_patch_i32(w, start + 8, (int32_t)(w->len - start - 12));
    kw_patch_i32(w, start + 17, (int32_t)krecord_batch_crc(w->buf + start, w->len - start));
}

/* A tagged section with one CurrentLeader (tag 1: LeaderId, LeaderEpoch). */
static void put_leader_tag(kwriter_t *w)
{
    kw_uvarint(w, 1);
    kw_uvarint(w, 1);
    kw_uvarint(w, 8);
    kw_i32(w, 2);
    kw_i32(w, 7);
}

/*
 * A FetchResponse frame of ver (no size prefix): two topics, the first
 * with two partitions (one with records and an aborted transaction, one
 * with null records), the second with one empty-records partition.
 */
static void build_frame(kwriter_t *w, int16_t ver)
{
    int flex = ver >= 12;
    kw_i32(w, 4242);
    if (flex)
        kw_tags_empty(w);
    kw_i32(w, 5); /* throttle */
    if (ver >= 7) {
        kw_i16(w, 0);
        kw_i32(w, 99);
    }
    kw_array(w, flex, 2);
    /* topic "t1" */
    kw_str(w, flex, "t1", 2);
    kw_array(w, flex, 2);
    for (int p = 0; p < 2; p++) {
        kw_i32(w, p);
        kw_i16(w, 0);
        kw_i64(w, 10);
        kw_i64(w, 10);
        if (ver >= 5)
            kw_i64(w, 0);
        if (p == 0) {
            kw_array(w, flex, 1);
            kw_i64(w, 1234);
            kw_i64(w, 3);
            if (flex)
                kw_tags_empty(w);
        } else {
            kw_array(w, flex, -1);
        }
        if (ver >= 11)
            kw_i32(w, -1);
        if (p == 0) {
            kwriter_t b;
            kw_init(&b, 256);
            build_batch(&b, 0, 3);
            build_batch(&b, 3, 2);
            kw_bytes(w, flex, b.buf, (int32_t)b.len);
            kw_free(&b);
        } else {
            kw_bytes(w, flex, NULL, -1);
        }
        if (flex && p == 0)
            put_leader_tag(w);
        else if (flex)
            kw_tags_empty(w);
    }
    if (flex)
        kw_tags_empty(w);
    /* topic "other" */
    kw_str(w, flex, "other", 5);
    kw_array(w, flex, 1);
    kw_i32(w, 0);
    kw_i16(w, 1); /* OFFSET_OUT_OF_RANGE */
    kw_i64(w, -1);
    kw_i64(w, -1);
    if (ver >= 5)
        kw_i64(w, -1);
    kw_array(w, flex, 0);
    if (ver >= 11)
        kw_i32(w, 2);
    kw_bytes(w, flex, "", 0);
    if (flex)
        kw_tags_empty(w);
    if (flex)
        kw_tags_empty(w);
    if (flex)
        kw_tags_empty(w); /* body */
}

static void write_seed(const char *name, int16_t ver, const uint8_t *frame, size_t len)
{
    const char *dir = getenv("KFETCH_SEED_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/fetch-%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    uint8_t v = (uint8_t)(ver - KFETCH_MIN_VERSION); /* selector: 4 + v % 9 */
    fwrite(&v, 1, 1, f);
    fwrite(frame, 1, len, f);
    fclose(f);
}

/* Parses and re-encodes frame; the output must equal it byte for byte. */
static void check_roundtrip(int16_t ver, const uint8_t *frame, size_t len)
{
    kfetch_resp_t resp;
    size_t off = 0;
    int err = kfetch_resp_parse(ver, frame, len, &resp, &off);
    CHECK_EQ(err, 0);
    if (err) {
        fprintf(stderr, "  v%d parse error %d at %zu\n", ver, err, off);
        return;
    }
    kwriter_t w;
    kw_init(&w, 256);
    CHECK_EQ(kfetch_resp_write(&w, ver, &resp), 0);
    CHECK_EQ(w.len, len + 4);
    CHECK(w.len == len + 4 && memcmp(w.buf + 4, frame, len) == 0);
    CHECK_EQ(kbe32(w.buf), (int32_t)len);
    kw_free(&w);
    kfetch_resp_free(&resp);
}

/* Every strict prefix fails without reading past it; so does a trailing
 * byte. */
static void check_truncations(int16_t ver, const uint8_t *frame, size_t len)
{
    int all_failed = 1;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, frame, n);
        kfetch_resp_t resp;
        if (kfetch_resp_parse(ver, copy, n, &resp, NULL) == 0) {
            all_failed = 0;
            kfetch_resp_free(&resp);
        }
        free(copy);
    }
    CHECK(all_failed);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0;
    kfetch_resp_t resp;
    CHECK_EQ(kfetch_resp_parse(ver, longer, len + 1, &resp, NULL), KR_EINVALID);
    free(longer);
}

/* ---- tests ---- */

static void test_versions(void)
{
    for (int16_t ver = KFETCH_MIN_VERSION; ver <= KFETCH_MAX_VERSION; ver++) {
        kwriter_t w;
        kw_init(&w, 512);
        build_frame(&w, ver);
        char name[32];
        snprintf(name, sizeof(name), "v%d", ver);
        write_seed(name, ver, w.buf, w.len);

        kfetch_resp_t resp;
        CHECK_EQ(kfetch_resp_parse(ver, w.buf, w.len, &resp, NULL), 0);
        CHECK_EQ(resp.correlation_id, 4242);
        CHECK_EQ(resp.throttle_time_ms, 5);
        CHECK_EQ(resp.session_id, ver >= 7 ? 99 : 0);
        CHECK_EQ(resp.ntopics, 2);
        if (resp.ntopics == 2) {
            kfetch_topic_t *t = &resp.topics[0];
            CHECK(t->name.len == 2 && memcmp(t->name.ptr, "t1", 2) == 0);
            CHECK_EQ(t->npartitions, 2);
            CHECK_EQ(t->partitions[0].naborted, 1);
            CHECK_EQ(t->partitions[0].aborted[0].producer_id, 1234);
            CHECK_EQ(t->partitions[0].aborted[0].first_offset, 3);
            CHECK_EQ(t->partitions[1].naborted, -1);
            CHECK_EQ(t->partitions[1].records.len, -1);
            CHECK_EQ(t->partitions[0].log_start_offset, ver >= 5 ? 0 : -1);
            CHECK_EQ(resp.topics[1].partitions[0].preferred_read_replica, ver >= 11 ? 2 : -1);
            CHECK_EQ(resp.topics[1].partitions[0].records.len, 0);
            size_t n;
            kbytes_t rec = t->partitions[0].records;
            CHECK_EQ(krecord_batches(rec.ptr, (size_t)rec.len, NULL, 0, &n, 1), KREC_OK);
            CHECK_EQ(n, 2);
            /* v12: the CurrentLeader tag is kept as raw bytes */
            if (ver >= 12) {
                CHECK_EQ(t->partitions[0].tags.len, 11);
                CHECK_EQ(t->partitions[1].tags.len, 1);
            } else {
                CHECK_EQ(t->partitions[0].tags.len, -1);
            }
        }
        kfetch_resp_free(&resp);
        check_roundtrip(ver, w.buf, w.len);
        check_truncations(ver, w.buf, w.len);
        kw_free(&w);
    }
}

/* A frame of one version is refused as another where layouts differ,
 * and bad versions are refused. */
static void test_bad_input(void)
{
    kwriter_t w;
    kw_init(&w, 512);
    build_frame(&w, 11);
    kfetch_resp_t resp;
    CHECK(kfetch_resp_parse(12, w.buf, w.len, &resp, NULL) != 0);
    CHECK(kfetch_resp_parse(3, w.buf, w.len, &resp, NULL) == KR_EINVALID);
    CHECK(kfetch_resp_parse(13, w.buf, w.len, &resp, NULL) == KR_EINVALID);
    /* a huge topic count is bounded by the bytes left */
    kw_patch_i32(&w, 14, 0x7fffffff);
    CHECK_EQ(kfetch_resp_parse(11, w.buf, w.len, &resp, NULL), KR_ECOUNT);
    kw_free(&w);

    kfetch_resp_t bad;
    memset(&bad, 0, sizeof(bad));
    bad.ntopics = 1;
    kwriter_t o;
    kw_init(&o, 64);
    CHECK_EQ(kfetch_resp_write(&o, 11, &bad), -1); /* topics NULL */
    kfetch_topic_t t;
    memset(&t, 0, sizeof(t));
    t.name.len = -1;
    bad.topics = &t;
    CHECK_EQ(kfetch_resp_write(&o, 11, &bad), -1); /* null name */
    CHECK_EQ(kfetch_resp_write(&o, 3, &bad), -1);
    CHECK_EQ(o.len, 0);
    kw_free(&o);
}

/* Substituting records: the new records are written and parse back. */
static void test_substitute(void)
{
    for (int16_t ver = 4; ver <= 12; ver += 8) {
        kwriter_t w;
        kw_init(&w, 512);
        build_frame(&w, ver);
        kfetch_resp_t resp;
        CHECK_EQ(kfetch_resp_parse(ver, w.buf, w.len, &resp, NULL), 0);
        kwriter_t nb;
        kw_init(&nb, 128);
        build_batch(&nb, 0, 1);
        resp.topics[0].partitions[0].new_records.ptr = nb.buf;
        resp.topics[0].partitions[0].new_records.len = (int32_t)nb.len;
        resp.topics[0].partitions[1].new_records.ptr = nb.buf; /* null -> records */
        resp.topics[0].partitions[1].new_records.len = (int32_t)nb.len;
        kwriter_t o;
        kw_init(&o, 512);
        CHECK_EQ(kfetch_resp_write(&o, ver, &resp), 0);
        kfetch_resp_t back;
        CHECK_EQ(kfetch_resp_parse(ver, o.buf + 4, o.len - 4, &back, NULL), 0);
        kbytes_t r0 = back.topics[0].partitions[0].records;
        kbytes_t r1 = back.topics[0].partitions[1].records;
        CHECK(r0.len == (int32_t)nb.len && memcmp(r0.ptr, nb.buf, nb.len) == 0);
        CHECK(r1.len == (int32_t)nb.len && memcmp(r1.ptr, nb.buf, nb.len) == 0);
        if (ver >= 12) /* the CurrentLeader tag is still there */
            CHECK_EQ(back.topics[0].partitions[0].tags.len, 11);
        kfetch_resp_free(&back);
        kfetch_resp_free(&resp);
        kw_free(&o);
        kw_free(&nb);
        kw_free(&w);
    }
}

/* ---- golden frames ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = n > 0 && fread(buf, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return buf;
}

/*
 * Filters every batch of every partition keeping every other record,
 * substitutes the records and re-parses: the result is a valid response
 * whose batches all pass CRC checks.
 */
static void golden_filter(int16_t ver, kfetch_resp_t *resp)
{
    kwriter_t *outs = calloc(64, sizeof(kwriter_t));
    int nout = 0, batches = 0;
    for (int32_t i = 0; i < resp->ntopics; i++) {
        for (int32_t j = 0; j < resp->topics[i].npartitions && nout < 64; j++) {
            kfetch_partition_t *p = &resp->topics[i].partitions[j];
            if (p->records.len <= 0)
                continue;
            kwriter_t *o = &outs[nout++];
            kw_init(o, (size_t)p->records.len);
            size_t off = 0, len = (size_t)p->records.len;
            while (len - off >= 12) {
                int32_t bl = kbe32(p->records.ptr + off + 8);
                if (bl < 0 || (size_t)bl > len - off - 12)
                    break; /* a partial batch at the end stays as it is */
                size_t size = 12 + (size_t)bl;
                krecords_batch_t b;
                const char *e = NULL;
                CHECK_EQ(krecords_decode(p->records.ptr + off, size, &b, &e), 0);
                if (e)
                    fprintf(stderr, "  golden decode: %s\n", e);
                uint8_t keep[4096];
                for (int32_t k = 0; k < b.nrecords && k < 4096; k++)
                    keep[k] = (uint8_t)(k % 2 == 0);
                CHECK_EQ(krecords_filter(o, &b, p->records.ptr + off, size, keep,
                                         krecords_empty_mode_for_fetch(ver, off == 0)),
                         0);
                krecords_batch_free(&b);
                batches++;
                off += size;
            }
            kw_raw(o, p->records.ptr + off, len - off);
            p->new_records.ptr = o->buf;
            p->new_records.len = (int32_t)o->len;
        }
    }
    CHECK(batches > 0);
    kwriter_t w;
    kw_init(&w, 1024);
    CHECK_EQ(kfetch_resp_write(&w, ver, resp), 0);
    kfetch_resp_t back;
    CHECK_EQ(kfetch_resp_parse(ver, w.buf + 4, w.len - 4, &back, NULL), 0);
    for (int32_t i = 0; i < back.ntopics; i++)
        for (int32_t j = 0; j < back.topics[i].npartitions; j++) {
            kbytes_t r = back.topics[i].partitions[j].records;
            /* every batch decodes (CRC checked) */
            size_t off = 0;
            while (r.len > 0 && (size_t)r.len - off >= 12) {
                size_t size = 12 + (size_t)kbe32(r.ptr + off + 8);
                krecords_batch_t b;
                CHECK_EQ(krecords_decode(r.ptr + off, size, &b, NULL), 0);
                krecords_batch_free(&b);
                off += size;
            }
        }
    kfetch_resp_free(&back);
    kw_free(&w);
    for (int k = 0; k < nout; k++)
        kw_free(&outs[k]);
    free(outs);
}

static void test_golden(void)
{
    static const struct {
        const char *file;
        int16_t ver;
    } g[] = {
        {"librdkafka-Fetch-v11-resp.bin", 11},
        {"confluentkafka-Fetch-v11-resp.bin", 11},
        {"kafkajs-Fetch-v11-resp.bin", 11},
        {"kafkapython-Fetch-v4-resp.bin", 4},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, g[i].file);
        size_t len = 0;
        uint8_t *frame = read_file(path, &len);
        CHECK(frame != NULL && len > 0);
        if (!frame || !len) {
            free(frame);
            continue;
        }
        char name[64];
        snprintf(name, sizeof(name), "golden-%zu", i);
        write_seed(name, g[i].ver, frame, len);
        check_roundtrip(g[i].ver, frame, len);
        kfetch_resp_t resp;
        CHECK_EQ(kfetch_resp_parse(g[i].ver, frame, len, &resp, NULL), 0);
        if (resp.ntopics > 0)
            golden_filter(g[i].ver, &resp);
        kfetch_resp_free(&resp);
        free(frame);
    }
}

int main(void)
{
    test_versions();
    test_bad_input();
    test_substitute();
    test_golden();
    return unit_done("kfetch");
}
