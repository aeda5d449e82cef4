/*
 * test_kaborted.c - aborted transactional batches taken out of a Fetch
 * response (kaborted.h): hand-built responses with transactional and plain
 * batches, ABORT and COMMIT markers and the AbortedTransactions list, as a
 * broker sends them to a read_committed fetch; what Kafka's consumer
 * would drop is dropped (in its empty form), everything else stays byte
 * for byte, and a response with nothing aborted is left alone.
 */
#include "kaborted.h"
#include "kfetch.h"
#include "krecord.h"
#include "krecords.h"
#include "unit.h"

#include <stdlib.h>

/* One record: offsetDelta d, value v (a control key/value when ctl >= 0). */
static void record(kwriter_t *w, int32_t d, const char *v, int ctl)
{
    kwriter_t r;
    kw_init(&r, 32);
    kw_i8(&r, 0);
    kw_varlong(&r, 0);
    kw_varint(&r, d);
    if (ctl >= 0) {
        static const uint8_t val[6] = {0};
        uint8_t key[4] = {0, 0, 0, (uint8_t)ctl};
        kw_varint(&r, 4);
        kw_raw(&r, key, 4);
        kw_varint(&r, 6);
        kw_raw(&r, val, 6);
    } else {
        kw_varint(&r, -1);
        kw_varint(&r, (int32_t)strlen(v));
        kw_raw(&r, v, strlen(v));
    }
    kw_varint(&r, 0);
    kw_varint(w, (int32_t)r.len);
    kw_raw(w, r.buf, r.len);
    kw_free(&r);
}

/* A batch at base of n records of producer pid (-1: none); ctl: -1 data,
 * 0 ABORT marker, 1 COMMIT marker. Returns its offset in w. */
static size_t batch(kwriter_t *w, int64_t base, int n, int64_t pid, int txn, int ctl)
{
    kwriter_t recs;
    kw_init(&recs, 64);
    for (int i = 0; i < n; i++)
        record(&recs, i, "v", ctl);
    krecord_batch_t h = {0};
    h.base_offset = base;
    h.last_offset_delta = n - 1;
    h.producer_id = pid;
    h.producer_epoch = pid >= 0 ? 0 : -1;
    h.base_sequence = pid >= 0 ? 0 : -1;
    int16_t attrs =
        (int16_t)((txn ? KRECORD_ATTR_TRANSACTIONAL : 0) | (ctl >= 0 ? KRECORD_ATTR_CONTROL : 0));
    size_t at = w->len;
    CHECK_EQ(krecords_write_batch(w, &h, attrs, n, recs.buf, recs.len), 0);
    kw_free(&recs);
    return at;
}

/* The batches of a records blob: base offsets, attributes, sizes. */
static size_t walk(const uint8_t *p, size_t len, krecord_batch_t *out, size_t max)
{
    size_t n = 0, off = 0;
    while (n < max && len - off >= KRECORD_HEADER_SIZE) {
        krecord_read_header(p + off, &out[n]);
        out[n].size = 12 + (size_t)out[n].batch_length;
        out[n].offset = off;
        if (out[n].size > len - off)
            break;
        off += out[n++].size;
    }
    return n;
}

/* A response of two partitions, frame after the size prefix in *frame. */
static void response(int16_t ver, kbytes_t recs0, kfetch_aborted_t *ab, int32_t nab, kbytes_t recs1,
                     kwriter_t *frame)
{
    kfetch_partition_t parts[2] = {{0}, {0}};
    parts[0] = (kfetch_partition_t){.index = 0,
                                    .high_watermark = 100,
                                    .last_stable_offset = 100,
                                    .log_start_offset = 0,
                                    .naborted = nab,
                                    .aborted = ab,
                                    .preferred_read_replica = -1,
                                    .records = recs0};
    parts[1] = (kfetch_partition_t){.index = 1,
                                    .high_watermark = 100,
                                    .last_stable_offset = 100,
                                    .log_start_offset = 0,
                                    .naborted = -1,
                                    .preferred_read_replica = -1,
                                    .records = recs1};
    kfetch_topic_t topic = {{"t", 1}, 2, parts, {NULL, 0}};
    kfetch_resp_t r = {.correlation_id = 9, .ntopics = 1, .topics = &topic};
    CHECK_EQ(kfetch_resp_write(frame, ver, &r), 0);
}

/* With KFETCH_SEED_DIR set, the response goes there as a fuzz_fetch seed
 * (selector byte, then the frame without its size prefix). */
static void write_seed(int16_t ver, const kwriter_t *f)
{
    const char *dir = getenv("KFETCH_SEED_DIR");
    char path[512];
    if (!dir || ver != 11)
        return;
    snprintf(path, sizeof(path), "%s/fetch-aborted-v%d.bin", dir, ver);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return;
    uint8_t sel = (uint8_t)(ver - KFETCH_MIN_VERSION);
    fwrite(&sel, 1, 1, fp);
    fwrite(f->buf + 4, 1, f->len - 4, fp);
    fclose(fp);
}

static void test_drops_what_a_consumer_drops(int16_t ver)
{
    kwriter_t p0, p1;
    kw_init(&p0, 512);
    kw_init(&p1, 128);
    size_t a = batch(&p0, 0, 2, 5, 1, -1); /* 0-1: producer 5, aborted */
    size_t x = batch(&p0, 2, 1, 7, 1, -1); /* 2: producer 7, committed */
    size_t am = batch(&p0, 3, 1, 5, 1, 0); /* 3: ABORT marker of 5 */
    size_t b = batch(&p0, 4, 2, 5, 1, -1); /* 4-5: producer 5 again, committed */
    size_t cm = batch(&p0, 6, 1, 5, 1, 1); /* 6: COMMIT marker of 5 */
    size_t plain = batch(&p0, 7, 1, -1, 0, -1);
    size_t c = batch(&p0, 8, 1, 7, 1, -1); /* 8: producer 7, aborted (listed at 8) */
    size_t whole = p0.len;
    uint8_t part[20];
    memcpy(part, p0.buf, sizeof(part));
    kw_raw(&p0, part, sizeof(part)); /* a partial batch at the end */
    batch(&p1, 0, 1, 5, 1, -1);      /* no AbortedTransactions: untouched */
    kfetch_aborted_t ab[2] = {{7, 8, {NULL, 0}}, {5, 0, {NULL, 0}}}; /* unsorted */
    kwriter_t f, out;
    kw_init(&f, 1024);
    kw_init(&out, 1024);
    response(ver, (kbytes_t){p0.buf, (int32_t)p0.len}, ab, 2, (kbytes_t){p1.buf, (int32_t)p1.len},
             &f);
    write_seed(ver, &f);
    size_t dropped = 0;
    CHECK_EQ(kaborted_filter(ver, f.buf + 4, f.len - 4, &out, &dropped), 1);
    CHECK_EQ(dropped, 2);
    kfetch_resp_t r;
    CHECK_EQ(kfetch_resp_parse(ver, out.buf + 4, out.len - 4, &r, NULL), 0);
    if (r.ntopics == 1 && r.topics[0].npartitions == 2) {
        const kfetch_partition_t *q = &r.topics[0].partitions[0];
        krecord_batch_t hs[16];
        size_t n = walk(q->records.ptr, (size_t)q->records.len, hs, 16);
        CHECK_EQ(n, 7);
        /* The aborted batches: empty forms at the same offsets. */
        CHECK_EQ(hs[0].base_offset, 0);
        CHECK_EQ(hs[0].last_offset_delta, 1);
        CHECK(hs[0].size != am - a); /* rewritten */
        if (ver >= 5)
            CHECK(hs[0].attributes & KRECORD_ATTR_CONTROL);
        CHECK_EQ(hs[6].base_offset, 8);
        CHECK(ver < 5 || (hs[6].attributes & KRECORD_ATTR_CONTROL));
        /* Everything else byte for byte. */
        const uint8_t *o = q->records.ptr;
        size_t kept[][3] = {{1, x, am - x},
                            {2, am, b - am},
                            {3, b, cm - b},
                            {4, cm, plain - cm},
                            {5, plain, c - plain}};
        for (size_t i = 0; i < 5; i++)
            CHECK(hs[kept[i][0]].size == kept[i][2] &&
                  memcmp(o + hs[kept[i][0]].offset, p0.buf + kept[i][1], kept[i][2]) == 0);
        size_t end = hs[6].offset + hs[6].size;
        CHECK((size_t)q->records.len - end == 20 && memcmp(o + end, p0.buf + whole, 20) == 0);
        const kfetch_partition_t *q1 = &r.topics[0].partitions[1];
        CHECK(q1->records.len == (int32_t)p1.len && memcmp(q1->records.ptr, p1.buf, p1.len) == 0);
    } else {
        CHECK(0);
    }
    kfetch_resp_free(&r);
    kw_free(&f);
    kw_free(&out);
    kw_free(&p0);
    kw_free(&p1);
}

static void test_nothing_aborted(void)
{
    kwriter_t p0, f, out;
    kw_init(&p0, 256);
    kw_init(&f, 512);
    kw_init(&out, 64);
    batch(&p0, 0, 2, 5, 1, -1);
    batch(&p0, 2, 1, 5, 1, 1); /* committed */
    /* Listed aborted from offset 10, past every batch here. */
    kfetch_aborted_t ab[1] = {{5, 10, {NULL, 0}}};
    response(11, (kbytes_t){p0.buf, (int32_t)p0.len}, ab, 1, (kbytes_t){NULL, -1}, &f);
    CHECK_EQ(kaborted_filter(11, f.buf + 4, f.len - 4, &out, NULL), 0);
    CHECK_EQ(out.len, 0);
    /* Malformed: cut short. */
    CHECK_EQ(kaborted_filter(11, f.buf + 4, f.len - 10, &out, NULL), -1);
    CHECK_EQ(kaborted_filter(3, f.buf + 4, f.len - 4, &out, NULL), -1);
    kw_free(&p0);
    kw_free(&f);
    kw_free(&out);
}

int main(void)
{
    for (int16_t ver = KFETCH_MIN_VERSION; ver <= KFETCH_MAX_VERSION; ver++)
        test_drops_what_a_consumer_drops(ver);
    test_nothing_aborted();
    return unit_done("test_kaborted");
}
