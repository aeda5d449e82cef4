/*
 * test_krecord.c - unit tests for RecordBatch v2 headers, the producer
 * rewrite, the fingerprint and CRC-32C (proxy/codec/krecord.c).
 *
 * Batches are built here field by field (header + records with varint
 * fields, as Kafka's DefaultRecord writes them), independently of the
 * decoder. CRC-32C is checked against the RFC 3720 / iSCSI vectors on both
 * the SSE4.2 and the table path, and the two paths against each other on
 * random buffers of every length and alignment. XXH64 vectors come from
 * the reference libxxhash 0.8.1.
 */
#include "krecord.h"
#include "unit.h"

#include "kbuf.h"

#include <stdlib.h>

/* ---- batch builder ---- */

/* Producer fields and attributes of a built batch. */
typedef struct spec {
    int16_t attributes;
    int64_t producer_id;
    int16_t epoch;
    int32_t base_sequence;
    int64_t base_timestamp;
    int nrecords;
} spec_t;

static const spec_t DEFAULT_SPEC = {0, -1, -1, -1, 1700000000000LL, 2};

/* One record: length varint, attributes, timestampDelta varlong,
 * offsetDelta varint, key, value, headers (one header on odd records). */
static void build_record(kwriter_t *w, int i)
{
    kwriter_t r;
    char value[32];
    int vlen = snprintf(value, sizeof(value), "value-%d", i);
    kw_init(&r, 64);
    kw_i8(&r, 0);
    kw_varlong(&r, i * 3);
    kw_varint(&r, i);
    if (i % 2) {
        kw_varint(&r, 3);
        kw_raw(&r, "key", 3);
    } else {
        kw_varint(&r, -1); /* null key */
    }
    kw_varint(&r, vlen);
    kw_raw(&r, value, (size_t)vlen);
    kw_varint(&r, i % 2);
    if (i % 2) {
        kw_varint(&r, 1);
        kw_raw(&r, "h", 1);
        kw_varint(&r, 2);
        kw_raw(&r, "hv", 2);
    }
    kw_varint(w, (int32_t)r.len);
    kw_raw(w, r.buf, r.len);
    kw_free(&r);
}

/* Appends one v2 batch per spec to w, with a correct CRC. */
static void build_batch(kwriter_t *w, const spec_t *s)
{
    size_t start = w->len;
    kw_i64(w, 0);  /* baseOffset */
    kw_i32(w, 0);  /* batchLength, patched */
    kw_i32(w, -1); /* partitionLeaderEpoch */
    kw_i8(w, 2);   /* magic */
    kw_i32(w, 0);  /* crc, patched */
    kw_i16(w, s->attributes);
    kw_i32(w, s->nrecords - 1);
    kw_i64(w, s->base_timestamp);
    kw_i64(w, s->base_timestamp + 3 * (s->nrecords - 1));
    kw_i64(w, s->producer_id);
    kw_i16(w, s->epoch);
    kw_i32(w, s->base_sequence);
    kw_i32(w, s->nrecords);
    for (int i = 0; i < s->nrecords; i++)
        build_record(w, i);
    kw_patch_i32(w, start + 8, (int32_t)(w->len - start - 12));
    uint32_t crc = krecord_crc32c(0, w->buf + start + 21, w->len - start - 21);
    kw_patch_i32(w, start + 17, (int32_t)crc);
}

/* A heap copy of exactly len bytes, so ASan catches any over-read. */
static uint8_t *dup_exact(const uint8_t *p, size_t len)
{
    uint8_t *q = malloc(len ? len : 1);
    if (len)
        memcpy(q, p, len);
    return q;
}

/* ---- CRC-32C ---- */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void crc_vectors(crc_fn f)
{
    uint8_t b[32];
    CHECK_EQ(f(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(f(0, "", 0), 0);
    memset(b, 0, sizeof(b));
    CHECK_EQ(f(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    CHECK_EQ(f(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    CHECK_EQ(f(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    CHECK_EQ(f(0, b, 32), 0x113FDB5Cu);
    /* chaining: any split gives the whole */
    static const char digits[] = "123456789";
    int chain_ok = 1;
    for (size_t k = 0; k <= 9; k++)
        chain_ok &= f(f(0, digits, k), digits + k, 9 - k) == 0xE3069283u;
    CHECK(chain_ok);
}

static void test_crc(void)
{
    crc_vectors(krecord_crc32c_sw);
    crc_vectors(krecord_crc32c);
    if (krecord_crc32c_hw_available())
        crc_vectors(krecord_crc32c_hw);
    else
        printf("krecord: no SSE4.2 on this CPU, hardware path not tested\n");

    /* both paths agree on random data, every length 0..300, 8 alignments,
     * and on a big buffer */
    size_t big = (1 << 20) + 13;
    uint8_t *buf = malloc(big);
    srand(42);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)rand();
    int agree = 1;
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++) {
            uint32_t seed = (uint32_t)rand();
            uint32_t sw = krecord_crc32c_sw(seed, buf + off, n);
            agree &= sw == krecord_crc32c(seed, buf + off, n);
            if (krecord_crc32c_hw_available())
                agree &= sw == krecord_crc32c_hw(seed, buf + off, n);
        }
    CHECK(agree);
    /* the hardware path's three-lane loop (lanes of 4096 bytes): lengths
     * around its multiples of 12288, several seeds and alignments */
    int lanes_agree = 1;
    const size_t lens[] = {12287, 12288, 12289, 12295, 24576, 24583, 36863, 36864 + 7, 100000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t off = 0; off < 3; off++) {
            uint32_t seed = (uint32_t)rand();
            uint32_t sw = krecord_crc32c_sw(seed, buf + off, lens[i]);
            lanes_agree &= sw == krecord_crc32c(seed, buf + off, lens[i]);
            if (krecord_crc32c_hw_available())
                lanes_agree &= sw == krecord_crc32c_hw(seed, buf + off, lens[i]);
        }
    CHECK(lanes_agree);
    CHECK_EQ(krecord_crc32c(0, buf + 3, big - 3), krecord_crc32c_sw(0, buf + 3, big - 3));
    free(buf);
}

static void test_xxh64(void)
{
    const char *fox = "The quick brown fox jumps over the lazy dog";
    uint8_t seq[100];
    for (int i = 0; i < 100; i++)
        seq[i] = (uint8_t)i;
    CHECK(krecord_xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(krecord_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
    CHECK(krecord_xxh64(fox, strlen(fox), 0) == 0x0B242D361FDA71BCull);
    CHECK(krecord_xxh64(fox, strlen(fox), 1) == 0xDF5091B6DAD2C6DBull);
    CHECK(krecord_xxh64(seq, 100, 0) == 0x6AC1E58032166597ull);
}

/* ---- batches ---- */

static void test_parse_one(void)
{
    kwriter_t w;
    krecord_batch_t b;
    spec_t s = DEFAULT_SPEC;
    s.nrecords = 3;
    s.attributes = KRECORD_LZ4 | KRECORD_ATTR_TIMESTAMP_TYPE;
    kw_init(&w, 256);
    build_batch(&w, &s);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_OK);
    CHECK_EQ(b.offset, 0);
    CHECK_EQ(b.size, w.len);
    CHECK_EQ(b.batch_length, (int64_t)w.len - 12);
    CHECK_EQ(b.magic, 2);
    CHECK_EQ(b.partition_leader_epoch, -1);
    CHECK_EQ(b.last_offset_delta, 2);
    CHECK_EQ(b.record_count, 3);
    CHECK_EQ(b.base_timestamp, 1700000000000LL);
    CHECK_EQ(b.max_timestamp, 1700000000006LL);
    CHECK_EQ(b.producer_id, -1);
    CHECK_EQ(b.producer_epoch, -1);
    CHECK_EQ(b.base_sequence, -1);
    CHECK_EQ(b.crc, krecord_batch_crc(w.buf, w.len));
    krecord_attrs_t a = krecord_attrs(b.attributes);
    CHECK_EQ(a.codec, KRECORD_LZ4);
    CHECK_EQ(a.log_append_time, 1);
    CHECK_EQ(a.transactional, 0);
    CHECK_EQ(a.control, 0);
    a = krecord_attrs(KRECORD_ATTR_TRANSACTIONAL | KRECORD_ATTR_CONTROL | KRECORD_ZSTD);
    CHECK_EQ(a.codec, KRECORD_ZSTD);
    CHECK_EQ(a.transactional, 1);
    CHECK_EQ(a.control, 1);
    CHECK_EQ(a.log_append_time, 0);
    CHECK_EQ(krecord_attrs(KRECORD_ATTR_DELETE_HORIZON).delete_horizon, 1);

    /* bad CRC: refused only when asked to verify */
    w.buf[w.len - 1] ^= 1;
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_ECRC);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_OK);
    w.buf[w.len - 1] ^= 1;
    w.buf[KREC_OFF_CRC] ^= 0x80;
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_ECRC);
    kw_free(&w);
}

/* Every strict prefix of a valid batch is refused, without over-reads. */
static void test_truncation(void)
{
    kwriter_t w;
    krecord_batch_t b;
    size_t n;
    kw_init(&w, 256);
    build_batch(&w, &DEFAULT_SPEC);
    int all_refused = 1;
    for (size_t len = 0; len < w.len; len++) {
        uint8_t *p = dup_exact(w.buf, len);
        int err = krecord_batch_parse(p, len, &b, 1);
        all_refused &= err == KREC_ESHORT;
        err = krecord_batches(p, len, &b, 1, &n, 1);
        all_refused &= len == 0 ? (err == KREC_OK && n == 0) : err == KREC_ESHORT;
        free(p);
    }
    CHECK(all_refused);
    kw_free(&w);
}

static void test_magic(void)
{
    /* a legacy (magic 1) message: offset, size, crc, magic, attributes,
     * timestamp, key, value */
    kwriter_t w;
    krecord_batch_t b;
    size_t n;
    kw_init(&w, 64);
    kw_i64(&w, 0);
    kw_i32(&w, 4 + 1 + 1 + 8 + 4 + 4 + 5);
    kw_i32(&w, 0x12345678);
    kw_i8(&w, 1);
    kw_i8(&w, 0);
    kw_i64(&w, 1700000000000LL);
    kw_i32(&w, -1);
    kw_i32(&w, 5);
    kw_raw(&w, "hello", 5);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_EMAGIC);
    CHECK_EQ(krecord_batches(w.buf, w.len, &b, 1, &n, 0), KREC_EMAGIC);
    CHECK_EQ(n, 0);
    w.buf[KREC_OFF_MAGIC] = 0; /* magic 0 */
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_EMAGIC);
    /* a short magic-0 message is still "wrong magic", not "short" */
    CHECK_EQ(krecord_batch_parse(w.buf, 17, &b, 0), KREC_EMAGIC);
    CHECK_EQ(krecord_batch_parse(w.buf, 16, &b, 0), KREC_ESHORT);
    /* a v2 batch after a good one with magic 3 */
    kw_reset(&w);
    build_batch(&w, &DEFAULT_SPEC);
    size_t first = w.len;
    build_batch(&w, &DEFAULT_SPEC);
    w.buf[first + KREC_OFF_MAGIC] = 3;
    krecord_batch_t out[2];
    CHECK_EQ(krecord_batches(w.buf, w.len, out, 2, &n, 0), KREC_EMAGIC);
    CHECK_EQ(n, 1);
    CHECK_STR(krecord_strerror(KREC_EMAGIC), "record batch magic is not 2 (message format < 2)");
    CHECK_EQ(krecord_kafka_error(KREC_EMAGIC), 87);
    CHECK_EQ(krecord_kafka_error(KREC_ECRC), 2);
    CHECK_EQ(krecord_kafka_error(KREC_EZSTD), 76);
    CHECK_EQ(krecord_kafka_error(KREC_OK), 0);
    kw_free(&w);
}

static void test_lengths_and_counts(void)
{
    kwriter_t w;
    krecord_batch_t b;
    kw_init(&w, 256);
    build_batch(&w, &DEFAULT_SPEC);
    /* batchLength below the header, negative, or past the blob */
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, KRECORD_MIN_BATCH_LENGTH - 1);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ELENGTH);
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, -5);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ELENGTH);
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, INT32_MAX);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ESHORT);
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, (int32_t)w.len - 11);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ESHORT);
    /* a header-only batch (batchLength 49) is well-formed as a header */
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, KRECORD_MIN_BATCH_LENGTH);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_OK);
    CHECK_EQ(b.size, KRECORD_HEADER_SIZE);
    kw_patch_i32(&w, KREC_OFF_BATCH_LENGTH, (int32_t)w.len - 12);

    /* recordCount must be > 0 and lastOffsetDelta + 1, as brokers check */
    kw_patch_i32(&w, KREC_OFF_RECORD_COUNT, 3);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ECOUNT);
    kw_patch_i32(&w, KREC_OFF_RECORD_COUNT, 0);
    kw_patch_i32(&w, KREC_OFF_LAST_OFFSET_DELTA, -1);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ECOUNT);
    kw_patch_i32(&w, KREC_OFF_RECORD_COUNT, -1);
    kw_patch_i32(&w, KREC_OFF_LAST_OFFSET_DELTA, -2);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ECOUNT);
    kw_patch_i32(&w, KREC_OFF_RECORD_COUNT, INT32_MIN);
    kw_patch_i32(&w, KREC_OFF_LAST_OFFSET_DELTA, INT32_MAX);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 0), KREC_ECOUNT);
    kw_free(&w);
}

static void test_many_batches(void)
{
    kwriter_t w;
    krecord_batch_t out[8];
    size_t n, offs[5];
    kw_init(&w, 1024);
    for (int i = 0; i < 5; i++) {
        spec_t s = DEFAULT_SPEC;
        s.nrecords = i + 1;
        offs[i] = w.len;
        build_batch(&w, &s);
    }
    CHECK_EQ(krecord_batches(w.buf, w.len, out, 8, &n, 1), KREC_OK);
    CHECK_EQ(n, 5);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= out[i].offset == offs[i] && out[i].record_count == (int32_t)i + 1 &&
              out[i].offset + out[i].size == (i + 1 < 5 ? offs[i + 1] : w.len);
    CHECK(ok);
    /* bounded by the caller's array */
    CHECK_EQ(krecord_batches(w.buf, w.len, out, 3, &n, 1), KREC_ETOOMANY);
    CHECK_EQ(n, 3);
    CHECK_EQ(krecord_batches(w.buf, w.len, out, 0, &n, 1), KREC_ETOOMANY);
    CHECK_EQ(n, 0);
    CHECK_EQ(krecord_batches(w.buf, w.len, NULL, 0, &n, 1), KREC_OK); /* count only */
    CHECK_EQ(n, 5);
    /* a stray trailing byte is a short batch */
    kw_i8(&w, 0);
    CHECK_EQ(krecord_batches(w.buf, w.len, out, 8, &n, 1), KREC_ESHORT);
    CHECK_EQ(n, 5);
    CHECK_EQ(krecord_batches(w.buf, 0, out, 8, &n, 1), KREC_OK);
    CHECK_EQ(n, 0);
    kw_free(&w);
}

static void test_set_producer(void)
{
    kwriter_t w;
    krecord_batch_t b;
    kw_init(&w, 256);
    build_batch(&w, &DEFAULT_SPEC);
    uint8_t *orig = dup_exact(w.buf, w.len);
    uint64_t fp = krecord_fingerprint(w.buf, w.len);

    CHECK_EQ(krecord_set_producer(w.buf, w.len, 0x0102030405060708LL, 7, 1000, 1), 0);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_OK);
    CHECK_EQ(b.producer_id, 0x0102030405060708LL);
    CHECK_EQ(b.producer_epoch, 7);
    CHECK_EQ(b.base_sequence, 1000);
    CHECK_EQ(krecord_attrs(b.attributes).transactional, 1);
    CHECK(krecord_fingerprint(w.buf, w.len) == fp);
    /* only the producer fields, the attributes and the crc changed */
    int same = memcmp(w.buf, orig, KREC_OFF_CRC) == 0 &&
               memcmp(w.buf + 23, orig + 23, KREC_OFF_PRODUCER_ID - 23) == 0 &&
               memcmp(w.buf + KREC_OFF_RECORD_COUNT, orig + KREC_OFF_RECORD_COUNT,
                      w.len - KREC_OFF_RECORD_COUNT) == 0;
    CHECK(same);

    /* clear the transactional bit; -1 leaves it */
    CHECK_EQ(krecord_set_producer(w.buf, w.len, 5, 0, INT32_MAX, 0), 0);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_OK);
    CHECK_EQ(krecord_attrs(b.attributes).transactional, 0);
    CHECK_EQ(b.base_sequence, INT32_MAX);
    CHECK_EQ(krecord_set_producer(w.buf, w.len, 5, 0, 0, -1), 0);
    CHECK_EQ(krecord_batch_parse(w.buf, w.len, &b, 1), KREC_OK);
    CHECK_EQ(krecord_attrs(b.attributes).transactional, 0);
    /* back to the client's values: the original bytes again */
    CHECK_EQ(krecord_set_producer(w.buf, w.len, -1, -1, -1, -1), 0);
    CHECK(memcmp(w.buf, orig, w.len) == 0);
    CHECK_EQ(krecord_set_producer(w.buf, KRECORD_HEADER_SIZE - 1, 1, 1, 1, 1), -1);
    CHECK(memcmp(w.buf, orig, w.len) == 0);
    free(orig);
    kw_free(&w);
}

static void test_fingerprint(void)
{
    kwriter_t a, b;
    spec_t s = DEFAULT_SPEC;
    kw_init(&a, 256);
    kw_init(&b, 256);
    build_batch(&a, &s);
    build_batch(&b, &s);
    uint64_t fa = krecord_fingerprint(a.buf, a.len);
    CHECK(fa == krecord_fingerprint(b.buf, b.len));
    CHECK(fa != 0);

    /* fields outside the fingerprint: baseOffset, leader epoch, crc */
    kw_patch_i32(&b, 4, 77);
    kw_patch_i32(&b, KREC_OFF_LEADER_EPOCH, 12);
    kw_patch_i32(&b, KREC_OFF_CRC, 0);
    CHECK(fa == krecord_fingerprint(b.buf, b.len));

    /* every byte inside it changes the fingerprint */
    static const size_t inside[] = {KREC_OFF_ATTRIBUTES + 1, KREC_OFF_LAST_OFFSET_DELTA + 3,
                                    KREC_OFF_BASE_TIMESTAMP + 7, KREC_OFF_MAX_TIMESTAMP,
                                    KREC_OFF_RECORD_COUNT + 3};
    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
        a.buf[inside[i]] ^= 1;
        CHECK(krecord_fingerprint(a.buf, a.len) != fa);
        a.buf[inside[i]] ^= 1;
    }
    int all_differ = 1;
    for (size_t off = KRECORD_HEADER_SIZE; off < a.len; off++) {
        a.buf[off] ^= 0x40;
        all_differ &= krecord_fingerprint(a.buf, a.len) != fa;
        a.buf[off] ^= 0x40;
    }
    CHECK(all_differ);
    /* a different value in the records */
    kw_reset(&b);
    s.base_timestamp++;
    build_batch(&b, &s);
    CHECK(krecord_fingerprint(b.buf, b.len) != fa);
    CHECK(krecord_fingerprint(a.buf, KRECORD_HEADER_SIZE - 1) == 0);
    kw_free(&a);
    kw_free(&b);
}

/* krecord_crc32c_patch equals a full recomputation, for changes of every
 * length (across its 64-byte chunks) at every place, tails of 0 to 1 MiB;
 * and krecord_set_producer keeps a valid batch valid. */
static void test_crc_patch(void)
{
    static uint8_t buf[(1u << 20) + 300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    static const size_t lens[] = {0, 1, 36, 63, 64, 65, 200};
    static const size_t tails[] = {0, 1, 7, 64, 1000, 65536, 1u << 20};
    for (size_t a = 0; a < sizeof(lens) / sizeof(lens[0]); a++) {
        for (size_t b = 0; b < sizeof(tails) / sizeof(tails[0]); b++) {
            size_t head = 5, n = lens[a], tail = tails[b], total = head + n + tail;
            uint8_t old[200];
            memcpy(old, buf + head, n);
            uint32_t before = krecord_crc32c(0, buf, total);
            for (size_t i = 0; i < n; i++)
                buf[head + i] ^= (uint8_t)(i * 37 + 1);
            uint32_t want = krecord_crc32c(0, buf, total);
            CHECK_EQ(krecord_crc32c_patch(before, old, buf + head, n, tail), want);
            memcpy(buf + head, old, n); /* back as it was */
        }
    }
    /* A batch of random records: set_producer keeps its CRC right. */
    size_t size = 61 + 4000;
    uint8_t *batch = malloc(size);
    memcpy(batch, buf, size);
    batch[KREC_OFF_MAGIC] = 2;
    uint32_t crc = krecord_batch_crc(batch, size);
    batch[KREC_OFF_CRC] = (uint8_t)(crc >> 24);
    batch[KREC_OFF_CRC + 1] = (uint8_t)(crc >> 16);
    batch[KREC_OFF_CRC + 2] = (uint8_t)(crc >> 8);
    batch[KREC_OFF_CRC + 3] = (uint8_t)crc;
    for (int t = -1; t <= 1; t++) {
        CHECK_EQ(krecord_set_producer(batch, size, 0x1122334455667788ll + t, (int16_t)t, 99 + t, t),
                 0);
        CHECK_EQ((uint32_t)kbe32(batch + KREC_OFF_CRC), krecord_batch_crc(batch, size));
    }
    /* A corrupt batch stays corrupt: never re-signed. */
    batch[size - 1] ^= 1;
    CHECK_EQ(krecord_set_producer(batch, size, 7, 1, 2, 0), 0);
    CHECK((uint32_t)kbe32(batch + KREC_OFF_CRC) != krecord_batch_crc(batch, size));
    free(batch);
}

int main(void)
{
    test_crc();
    test_crc_patch();
    test_xxh64();
    test_parse_one();
    test_truncation();
    test_magic();
    test_lengths_and_counts();
    test_many_batches();
    test_set_producer();
    test_fingerprint();
    return unit_done("krecord");
}
