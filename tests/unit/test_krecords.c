/*
 * test_krecords.c - unit tests for record decode, decompression, filtered
 * re-encode and eventId extraction (proxy/codec/krecords.c).
 *
 * Batches are built here for all five codecs, compressed directly with
 * zlib, libsnappy (raw and xerial-framed), liblz4's frame API and zstd's
 * streaming API (no content size), independently of the codec under
 * test. Each is decoded, filtered (every other record, none, all) and
 * decoded again: CRC valid, offsets and timestamps preserved, control
 * and empty batches well-formed. Every truncation fails cleanly;
 * decompression bombs are refused.
 *
 * With KFETCH_SEED_DIR set, the built batches are written there as fuzz
 * seeds fetch-batch-*.bin for tests/fuzz/fuzz_fetch.c (selector 0x80).
 */
#include "krecords.h"
#include "unit.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#define NREC 20

/* ---- building ---- */

/* Record i: key "k<i>", value "{\"id\":\"e<i>\"}", header "eid" = "h<i>"
 * (none on odd records), offsetDelta 2*i (a compacted-looking batch),
 * timestampDelta 10*i. */
static void put_record(kwriter_t *w, int i)
{
    char key[16], val[64], hv[16];
    int kl = snprintf(key, sizeof(key), "k%d", i);
    int vl = snprintf(val, sizeof(val), "{\"n\":[1,{\"id\":2}],\"id\":\"e%d\"}", i);
    int hl = snprintf(hv, sizeof(hv), "h%d", i);
    kwriter_t r;
    kw_init(&r, 128);
    kw_i8(&r, 0);
    kw_varlong(&r, 10 * i);
    kw_varint(&r, 2 * i);
    kw_varint(&r, kl);
    kw_raw(&r, key, (size_t)kl);
    kw_varint(&r, vl);
    kw_raw(&r, val, (size_t)vl);
    if (i % 2 == 0) {
        kw_varint(&r, 2);
        kw_varint(&r, 3);
        kw_raw(&r, "eid", 3);
        kw_varint(&r, hl);
        kw_raw(&r, hv, (size_t)hl);
        kw_varint(&r, 1);
        kw_raw(&r, "x", 1);
        kw_varint(&r, -1);
    } else {
        kw_varint(&r, 0);
    }
    kw_varint(w, (int32_t)r.len);
    kw_raw(w, r.buf, r.len);
    kw_free(&r);
}

static void gzip_it(const uint8_t *in, size_t n, kwriter_t *w)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    uint8_t out[65536];
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = sizeof(out);
    deflate(&zs, Z_FINISH);
    kw_raw(w, out, zs.total_out);
    deflateEnd(&zs);
}

static void snappy_raw(const uint8_t *in, size_t n, kwriter_t *w)
{
    size_t cl = snappy_max_compressed_length(n);
    char *out = malloc(cl);
    snappy_compress((const char *)in, n, out, &cl);
    kw_raw(w, out, cl);
    free(out);
}

/* Xerial framing with tiny 100-byte blocks, to exercise several blocks. */
static void snappy_xerial(const uint8_t *in, size_t n, kwriter_t *w)
{
    static const uint8_t hdr[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    kw_raw(w, hdr, 16);
    for (size_t off = 0; off < n; off += 100) {
        size_t chunk = n - off < 100 ? n - off : 100;
        size_t cl = snappy_max_compressed_length(chunk);
        char *out = malloc(cl);
        snappy_compress((const char *)in + off, chunk, out, &cl);
        kw_i32(w, (int32_t)cl);
        kw_raw(w, out, cl);
        free(out);
    }
}

/* LZ4 frame with content size and checksums on (what lz4 CLI writes). */
static void lz4_it(const uint8_t *in, size_t n, kwriter_t *w)
{
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof(p));
    p.frameInfo.contentSize = n;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    size_t cap = LZ4F_compressFrameBound(n, &p);
    uint8_t *out = malloc(cap);
    size_t got = LZ4F_compressFrame(out, cap, in, n, &p);
    kw_raw(w, out, got);
    free(out);
}

/* zstd streaming: the frame has no content size. */
static void zstd_it(const uint8_t *in, size_t n, kwriter_t *w)
{
    ZSTD_CStream *cs = ZSTD_createCStream();
    ZSTD_initCStream(cs, 3);
    size_t cap = ZSTD_compressBound(n) + 64;
    uint8_t *out = malloc(cap);
    ZSTD_outBuffer ob = {out, cap, 0};
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_compressStream(cs, &ob, &ib);
    ZSTD_endStream(cs, &ob);
    kw_raw(w, out, ob.pos);
    free(out);
    ZSTD_freeCStream(cs);
}

enum { SNAPPY_XERIAL = 5 };

/* A batch of NREC records at base 100 with codec (SNAPPY_XERIAL selects
 * snappy with xerial framing) and extra attribute bits. */
static void build_batch(kwriter_t *w, int codec, int16_t extra_attrs)
{
    kwriter_t recs;
    kw_init(&recs, 1024);
    for (int i = 0; i < NREC; i++)
        put_record(&recs, i);
    int attr_codec = codec == SNAPPY_XERIAL ? KRECORD_SNAPPY : codec;
    size_t start = w->len;
    kw_i64(w, 100);
    kw_i32(w, 0);
    kw_i32(w, 7);
    kw_i8(w, 2);
    kw_i32(w, 0);
    kw_i16(w, (int16_t)(attr_codec | extra_attrs));
    kw_i32(w, 2 * (NREC - 1));
    kw_i64(w, 1700000000000LL);
    kw_i64(w, 1700000000000LL + 10 * (NREC - 1));
    kw_i64(w, 4711);
    kw_i16(w, 3);
    kw_i32(w, 50);
    kw_i32(w, NREC);
    switch (codec) {
    case KRECORD_NONE:
        kw_raw(w, recs.buf, recs.len);
        break;
    case KRECORD_GZIP:
        gzip_it(recs.buf, recs.len, w);
        break;
    case KRECORD_SNAPPY:
        snappy_raw(recs.buf, recs.len, w);
        break;
    case SNAPPY_XERIAL:
        snappy_xerial(recs.buf, recs.len, w);
        break;
    case KRECORD_LZ4:
        lz4_it(recs.buf, recs.len, w);
        break;
    case KRECORD_ZSTD:
        zstd_it(recs.buf, recs.len, w);
        break;
    }
    kw_patch_i32(w, start + 8, (int32_t)(w->len - start - 12));
    kw_patch_i32(w, start + 17, (int32_t)krecord_batch_crc(w->buf + start, w->len - start));
    kw_free(&recs);
}

static void write_seed(int codec, const uint8_t *p, size_t n)
{
    const char *dir = getenv("KFETCH_SEED_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/fetch-batch-%d.bin", dir, codec);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fputc(0x80, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

/* CRC of the batch at p verifies and its header says what it should. */
static int crc_ok(const uint8_t *p, size_t n)
{
    return n >= 61 && (uint32_t)kbe32(p + KREC_OFF_CRC) == krecord_batch_crc(p, n) &&
           (size_t)kbe32(p + KREC_OFF_BATCH_LENGTH) == n - 12;
}

/* ---- decode / filter ---- */

static void check_decoded(const krecords_batch_t *b)
{
    CHECK_EQ(b->nrecords, NREC);
    for (int i = 0; i < b->nrecords; i++) {
        const krec_t *r = &b->records[i];
        char key[16];
        int kl = snprintf(key, sizeof(key), "k%d", i);
        CHECK_EQ(r->offset_delta, 2 * i);
        CHECK_EQ(r->timestamp_delta, 10 * i);
        CHECK(r->key.len == kl && memcmp(r->key.ptr, key, (size_t)kl) == 0);
        CHECK_EQ(r->nheaders, i % 2 == 0 ? 2 : 0);
        if (i % 2 == 0 && r->nheaders == 2) {
            CHECK(r->headers[0].key.len == 3 && memcmp(r->headers[0].key.ptr, "eid", 3) == 0);
            CHECK_EQ(r->headers[1].value.len, -1);
        }
    }
}

static void test_codec(int codec)
{
    kwriter_t w;
    kw_init(&w, 2048);
    build_batch(&w, codec, 0);
    write_seed(codec, w.buf, w.len);
    int attr_codec = codec == SNAPPY_XERIAL ? KRECORD_SNAPPY : codec;
    krecords_batch_t b;
    const char *err = NULL;
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), 0);
    if (err)
        fprintf(stderr, "  codec %d: %s\n", codec, err);
    check_decoded(&b);
    CHECK_EQ(b.hdr.base_offset, 100);

    /* keep every other record (odd ones) */
    uint8_t keep[NREC];
    for (int i = 0; i < NREC; i++)
        keep[i] = (uint8_t)(i % 2);
    kwriter_t o;
    kw_init(&o, 2048);
    CHECK_EQ(krecords_filter(&o, &b, w.buf, w.len, keep, KRECORDS_EMPTY_CONTROL), 0);
    CHECK(crc_ok(o.buf, o.len));
    krecord_batch_t h;
    CHECK_EQ(krecord_batch_parse(o.buf, o.len, &h, 1), KREC_ECOUNT); /* count != delta+1 */
    krecords_batch_t f;
    CHECK_EQ(krecords_decode(o.buf, o.len, &f, &err), 0);
    CHECK_EQ(f.nrecords, NREC / 2);
    CHECK_EQ(f.hdr.base_offset, 100);
    CHECK_EQ(f.hdr.last_offset_delta, 2 * (NREC - 1));
    CHECK_EQ(f.hdr.attributes, attr_codec);
    CHECK_EQ(f.hdr.producer_id, 4711);
    CHECK_EQ(f.hdr.producer_epoch, 3);
    CHECK_EQ(f.hdr.base_sequence, 50);
    CHECK_EQ(f.hdr.partition_leader_epoch, 7);
    CHECK_EQ(f.hdr.base_timestamp, 1700000000000LL);
    CHECK_EQ(f.hdr.max_timestamp, 1700000000000LL + 10 * (NREC - 1));
    for (int i = 0; i < f.nrecords; i++) {
        CHECK_EQ(f.records[i].offset_delta, 2 * (2 * i + 1));
        CHECK_EQ(f.records[i].timestamp_delta, 10 * (2 * i + 1));
        CHECK(f.records[i].raw_len == b.records[2 * i + 1].raw_len &&
              memcmp(f.records[i].raw, b.records[2 * i + 1].raw, f.records[i].raw_len) == 0);
    }
    /* the re-encoded snappy is xerial-framed */
    if (attr_codec == KRECORD_SNAPPY)
        CHECK(memcmp(o.buf + 61, "\x82SNAPPY", 7) == 0);
    krecords_batch_free(&f);

    /* keep all: the original bytes */
    memset(keep, 1, sizeof(keep));
    kw_reset(&o);
    CHECK_EQ(krecords_filter(&o, &b, w.buf, w.len, keep, KRECORDS_EMPTY_CONTROL), 0);
    CHECK(o.len == w.len && memcmp(o.buf, w.buf, w.len) == 0);

    /* keep none: each empty mode */
    memset(keep, 0, sizeof(keep));
    for (int mode = 0; mode < 3; mode++) {
        kw_reset(&o);
        CHECK_EQ(krecords_filter(&o, &b, w.buf, w.len, keep, mode), 0);
        CHECK(crc_ok(o.buf, o.len));
        CHECK_EQ(krecords_decode(o.buf, o.len, &f, &err), 0);
        CHECK_EQ(f.hdr.base_offset, 100);
        CHECK_EQ(f.hdr.last_offset_delta, 2 * (NREC - 1));
        CHECK_EQ(f.hdr.attributes & KRECORD_ATTR_COMPRESSION_MASK, 0);
        if (mode == KRECORDS_EMPTY_ZERO_RECORDS) {
            CHECK_EQ(f.nrecords, 0);
            CHECK_EQ(o.len, 61);
        } else if (mode == KRECORDS_EMPTY_CONTROL) {
            CHECK_EQ(f.nrecords, 1);
            CHECK(f.hdr.attributes & KRECORD_ATTR_CONTROL);
            CHECK(f.hdr.attributes & KRECORD_ATTR_TRANSACTIONAL);
            CHECK_EQ(f.hdr.producer_id, -1);
            CHECK_EQ(f.hdr.producer_epoch, -1);
            CHECK_EQ(f.hdr.base_sequence, -1);
            if (f.nrecords == 1) {
                CHECK_EQ(f.records[0].offset_delta, 2 * (NREC - 1));
                CHECK(f.records[0].key.len == 4 &&
                      memcmp(f.records[0].key.ptr, "\0\0\0\1", 4) == 0);
                CHECK_EQ(f.records[0].value.len, 6);
            }
        } else {
            CHECK_EQ(f.nrecords, 1);
            CHECK_EQ(f.hdr.attributes & KRECORD_ATTR_CONTROL, 0);
            CHECK_EQ(f.hdr.producer_id, 4711);
            if (f.nrecords == 1) {
                CHECK_EQ(f.records[0].offset_delta, -1);
                CHECK_EQ(f.records[0].key.len, -1);
                CHECK_EQ(f.records[0].value.len, -1);
            }
        }
        krecords_batch_free(&f);
    }

    /* every truncation of the batch, and every truncation of its payload
     * with header fields patched to match, fails cleanly */
    int all_failed = 1;
    for (size_t n = 0; n < w.len; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, w.buf, n);
        if (krecords_decode(c, n, &f, NULL) == 0) {
            all_failed = 0;
            krecords_batch_free(&f);
        }
        if (n >= 61) {
            uint32_t bl = (uint32_t)(n - 12);
            c[8] = (uint8_t)(bl >> 24);
            c[9] = (uint8_t)(bl >> 16);
            c[10] = (uint8_t)(bl >> 8);
            c[11] = (uint8_t)bl;
            uint32_t crc = krecord_batch_crc(c, n);
            c[17] = (uint8_t)(crc >> 24);
            c[18] = (uint8_t)(crc >> 16);
            c[19] = (uint8_t)(crc >> 8);
            c[20] = (uint8_t)crc;
            if (krecords_decode(c, n, &f, NULL) == 0) {
                all_failed = 0;
                krecords_batch_free(&f);
            }
        }
        free(c);
    }
    CHECK(all_failed);

    /* a flipped payload byte is a CRC error */
    w.buf[w.len - 1] ^= 1;
    CHECK_EQ(krecords_decode(w.buf, w.len, &f, &err), -1);
    CHECK(err && strstr(err, "CRC"));

    krecords_batch_free(&b);
    kw_free(&o);
    kw_free(&w);
}

/* Compressed then inflated by krecords, for each codec and sizes around
 * block boundaries. */
static void test_deflate_roundtrip(void)
{
    static const size_t sizes[] = {0, 1, 100, 32768, 32769, 70000, 300000};
    for (int codec = 1; codec <= 4; codec++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            uint8_t *in = malloc(n ? n : 1);
            for (size_t i = 0; i < n; i++)
                in[i] = (uint8_t)((i * 7) ^ (i >> 5));
            kwriter_t w;
            kw_init(&w, 64);
            CHECK_EQ(krecords_deflate(codec, in, n, &w), 0);
            uint8_t *out = NULL;
            size_t olen = 0;
            const char *e = krecords_inflate(codec, w.buf, w.len, &out, &olen);
            CHECK(e == NULL);
            CHECK(olen == n && (n == 0 || memcmp(out, in, n) == 0));
            free(out);
            kw_free(&w);
            free(in);
        }
    }
    uint8_t *out = NULL;
    size_t olen;
    CHECK(krecords_inflate(9, (const uint8_t *)"x", 1, &out, &olen) != NULL);
    CHECK(krecords_inflate(KRECORD_GZIP, (const uint8_t *)"", 0, &out, &olen) != NULL);
    CHECK(krecords_inflate(KRECORD_ZSTD, (const uint8_t *)"", 0, &out, &olen) != NULL);
    CHECK(krecords_inflate(KRECORD_LZ4, (const uint8_t *)"", 0, &out, &olen) != NULL);
    CHECK(krecords_inflate(KRECORD_SNAPPY, (const uint8_t *)"", 0, &out, &olen) != NULL);
}

/* More than KRECORDS_MAX_INFLATED of zeros, compressed by each codec,
 * is refused without growing past the bound. */
static void test_bombs(void)
{
    size_t n = KRECORDS_MAX_INFLATED + 4096;
    uint8_t *zeros = calloc(n, 1);
    for (int codec = 1; codec <= 4; codec++) {
        kwriter_t w;
        kw_init(&w, 1024);
        if (codec == KRECORD_SNAPPY) {
            /* xerial blocks of 1 MiB each (a raw block is bounded alike) */
            kw_raw(&w, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
            for (size_t off = 0; off < n; off += 1 << 20) {
                size_t chunk = n - off < (1u << 20) ? n - off : (1u << 20);
                size_t cl = snappy_max_compressed_length(chunk);
                char *c = malloc(cl);
                snappy_compress((const char *)zeros, chunk, c, &cl);
                kw_i32(&w, (int32_t)cl);
                kw_raw(&w, c, cl);
                free(c);
            }
        } else if (codec == KRECORD_ZSTD) {
            zstd_it(zeros, n, &w);
        } else {
            CHECK_EQ(krecords_deflate(codec, zeros, n, &w), 0);
        }
        uint8_t *out = NULL;
        size_t olen = 0;
        const char *e = krecords_inflate(codec, w.buf, w.len, &out, &olen);
        CHECK(e != NULL && strstr(e, "KRECORDS_MAX_INFLATED"));
        CHECK(out == NULL);
        kw_free(&w);
    }
    /* a raw snappy block declaring 1 GiB */
    uint8_t big[8] = {0x80, 0x80, 0x80, 0x80, 0x04, 0, 0, 0};
    uint8_t *out = NULL;
    size_t olen;
    CHECK(krecords_inflate(KRECORD_SNAPPY, big, sizeof(big), &out, &olen) != NULL);
    free(zeros);
}

/* Malformed records inside a well-framed batch. */
static void test_bad_records(void)
{
    kwriter_t w;
    kw_init(&w, 512);
    /* header claiming 3 records, body with one record then junk */
    kw_i64(&w, 0);
    kw_i32(&w, 0);
    kw_i32(&w, 0);
    kw_i8(&w, 2);
    kw_i32(&w, 0);
    kw_i16(&w, 0);
    kw_i32(&w, 2);
    kw_i64(&w, 0);
    kw_i64(&w, 0);
    kw_i64(&w, -1);
    kw_i16(&w, -1);
    kw_i32(&w, -1);
    kw_i32(&w, 3);
    put_record(&w, 0);
    kw_raw(&w, "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", 14);
    kw_patch_i32(&w, 8, (int32_t)(w.len - 12));
    kw_patch_i32(&w, 17, (int32_t)krecord_batch_crc(w.buf, w.len));
    krecords_batch_t b;
    const char *err = NULL;
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), -1);
    CHECK(err != NULL);
    /* magic 1 */
    w.buf[16] = 1;
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), -1);
    /* negative recordCount */
    w.buf[16] = 2;
    kw_patch_i32(&w, 57, -5);
    kw_patch_i32(&w, 17, (int32_t)krecord_batch_crc(w.buf, w.len));
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), -1);
    /* a huge recordCount is bounded by the bytes */
    kw_patch_i32(&w, 57, 0x7fffffff);
    kw_patch_i32(&w, 17, (int32_t)krecord_batch_crc(w.buf, w.len));
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), -1);
    /* one record exactly, plus a stray byte */
    kw_reset(&w);
    build_batch(&w, KRECORD_NONE, 0);
    kw_i8(&w, 0);
    kw_patch_i32(&w, 8, (int32_t)(w.len - 12));
    kw_patch_i32(&w, 17, (int32_t)krecord_batch_crc(w.buf, w.len));
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, &err), -1);
    kw_free(&w);
}

/* A broker's control batch and a compacted batch decode. */
static void test_control_input(void)
{
    kwriter_t w;
    kw_init(&w, 512);
    build_batch(&w, KRECORD_NONE, KRECORD_ATTR_CONTROL | KRECORD_ATTR_TRANSACTIONAL);
    krecords_batch_t b;
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, NULL), 0);
    CHECK(b.hdr.attributes & KRECORD_ATTR_CONTROL);
    krecords_batch_free(&b);
    /* a batch the broker sent with no records stays as it is */
    kw_reset(&w);
    kw_i64(&w, 5);
    kw_i32(&w, 49);
    kw_i32(&w, 0);
    kw_i8(&w, 2);
    kw_i32(&w, 0);
    kw_i16(&w, 0);
    kw_i32(&w, 3);
    kw_i64(&w, 0);
    kw_i64(&w, 0);
    kw_i64(&w, -1);
    kw_i16(&w, -1);
    kw_i32(&w, -1);
    kw_i32(&w, 0);
    kw_patch_i32(&w, 17, (int32_t)krecord_batch_crc(w.buf, w.len));
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, NULL), 0);
    CHECK_EQ(b.nrecords, 0);
    kwriter_t o;
    kw_init(&o, 64);
    CHECK_EQ(krecords_filter(&o, &b, w.buf, w.len, NULL, KRECORDS_EMPTY_CONTROL), 0);
    CHECK(o.len == w.len && memcmp(o.buf, w.buf, w.len) == 0);
    kw_free(&o);
    krecords_batch_free(&b);
    kw_free(&w);
    CHECK_EQ(krecords_empty_mode_for_fetch(11, 1), KRECORDS_EMPTY_CONTROL);
    CHECK_EQ(krecords_empty_mode_for_fetch(12, 0), KRECORDS_EMPTY_CONTROL);
    CHECK_EQ(krecords_empty_mode_for_fetch(4, 1), KRECORDS_EMPTY_BEHIND);
    CHECK_EQ(krecords_empty_mode_for_fetch(4, 0), KRECORDS_EMPTY_ZERO_RECORDS);
}

/* ---- eventId ---- */

static krec_t json_rec(const char *json)
{
    krec_t r;
    memset(&r, 0, sizeof(r));
    r.key.len = -1;
    r.value.ptr = (const uint8_t *)json;
    r.value.len = (int32_t)strlen(json);
    return r;
}

/* eventId of json via json:field; NULL expected = no id. */
static void check_json(const char *json, const char *field, const char *want)
{
    krec_t r = json_rec(json);
    kbytes_t id;
    uint8_t scratch[64];
    int got = krecords_event_id(&r, KRECORDS_ID_JSON, field, &id, scratch, sizeof(scratch));
    if (!want) {
        CHECK_EQ(got, 0);
        if (got)
            fprintf(stderr, "  json %s: unexpected id\n", json);
        return;
    }
    CHECK_EQ(got, 1);
    int ok = got && id.len == (int32_t)strlen(want) && memcmp(id.ptr, want, strlen(want)) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  json %s: got '%.*s'\n", json, got ? id.len : 0,
                got ? (const char *)id.ptr : "");
}

static void test_event_id(void)
{
    kwriter_t w;
    kw_init(&w, 2048);
    build_batch(&w, KRECORD_NONE, 0);
    krecords_batch_t b;
    CHECK_EQ(krecords_decode(w.buf, w.len, &b, NULL), 0);
    kbytes_t id;
    uint8_t scratch[64];
    /* header:eid on even records only; first header wins */
    CHECK_EQ(krecords_event_id(&b.records[0], KRECORDS_ID_HEADER, "eid", &id, scratch, 64), 1);
    CHECK(id.len == 2 && memcmp(id.ptr, "h0", 2) == 0);
    CHECK_EQ(krecords_event_id(&b.records[1], KRECORDS_ID_HEADER, "eid", &id, scratch, 64), 0);
    CHECK_EQ(krecords_event_id(&b.records[0], KRECORDS_ID_HEADER, "x", &id, scratch, 64), 0);
    CHECK_EQ(krecords_event_id(&b.records[0], KRECORDS_ID_HEADER, "ei", &id, scratch, 64), 0);
    /* key */
    CHECK_EQ(krecords_event_id(&b.records[3], KRECORDS_ID_KEY, NULL, &id, scratch, 64), 1);
    CHECK(id.len == 2 && memcmp(id.ptr, "k3", 2) == 0);
    /* json: the nested "id" is skipped, the top-level one found */
    CHECK_EQ(krecords_event_id(&b.records[5], KRECORDS_ID_JSON, "id", &id, scratch, 64), 1);
    CHECK(id.len == 2 && memcmp(id.ptr, "e5", 2) == 0);
    CHECK_EQ(krecords_event_id(&b.records[5], 99, "id", &id, scratch, 64), 0);
    krecords_batch_free(&b);
    kw_free(&w);

    krec_t nk = json_rec("{}");
    CHECK_EQ(krecords_event_id(&nk, KRECORDS_ID_KEY, NULL, &id, scratch, 64), 0); /* null key */

    check_json("{\"id\":\"abc\"}", "id", "abc");
    check_json(" { \"a\" : 1 , \"id\" : \"x y\" } ", "id", "x y");
    check_json("{\"id\":12345}", "id", "12345");
    check_json("{\"id\":-1.5e+3,\"z\":0}", "id", "-1.5e+3");
    check_json("{\"id\":\"a\\\"b\\\\c\\/d\\n\"}", "id", "a\"b\\c/d\n");
    check_json("{\"id\":\"\\u00e9\\u20ac\"}", "id", "\xc3\xa9\xe2\x82\xac");
    check_json("{\"id\":\"\\ud83d\\ude00\"}", "id", "\xf0\x9f\x98\x80");
    check_json("{\"id\":\"\xc3\xa9t\xc3\xa9\"}", "id", "\xc3\xa9t\xc3\xa9"); /* raw UTF-8 */
    check_json("{\"i\\u0064\":\"esc-key\"}", "id", "esc-key");
    check_json("{\"a\":{\"id\":\"inner\"},\"b\":[{\"id\":1},[[]],\"]}\"],\"id\":\"outer\"}", "id",
               "outer");
    check_json("{\"id\":\"first\",\"id\":\"second\"}", "id", "first");
    check_json("{\"a\":true,\"b\":false,\"c\":null,\"id\":\"t\"}", "id", "t");
    /* no id */
    check_json("{\"id\":null}", "id", NULL);
    check_json("{\"id\":{\"x\":1}}", "id", NULL);
    check_json("{\"id\":[1]}", "id", NULL);
    check_json("{\"id\":true}", "id", NULL);
    check_json("{\"id\":\"\"}", "id", NULL);
    check_json("{\"other\":\"x\"}", "id", NULL);
    check_json("[\"id\",\"x\"]", "id", NULL);
    check_json("\"id\"", "id", NULL);
    check_json("", "id", NULL);
    /* malformed */
    check_json("{\"id\":\"abc\"", "id", NULL);
    check_json("{\"id\":\"abc\",}", "id", NULL);
    check_json("{\"id\":\"abc\"} x", "id", NULL);
    check_json("{\"id\":\"abc\",\"b\":[1,2}", "id", NULL);
    check_json("{\"id\":\"a\\qb\"}", "id", NULL);
    check_json("{\"id\":\"\\ud83d\"}", "id", NULL);
    check_json("{\"id\":\"\\ude00\"}", "id", NULL);
    check_json("{\"id\":\"\\u12G4\"}", "id", NULL);
    check_json("{\"id\":\"a\tb\"}", "id", NULL);
    check_json("{\"id\":01}", "id", NULL);
    check_json("{\"id\":1.}", "id", NULL);
    check_json("{\"id\":-}", "id", NULL);
    check_json("{\"id\":1e}", "id", NULL);
    check_json("{\"id\":\"x\",\"b\":tru}", "id", NULL);
    check_json("{id:\"x\"}", "id", NULL);
    check_json("{\"id\" \"x\"}", "id", NULL);
    /* nesting beyond the bound is refused, within it is fine */
    char deep[400];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
    for (int i = 0; i < 70; i++)
        deep[n++] = '[';
    for (int i = 0; i < 70; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, ",\"id\":\"d\"}");
    check_json(deep, "id", NULL);
    n = (size_t)snprintf(deep, sizeof(deep), "{\"a\":");
    for (int i = 0; i < 30; i++)
        deep[n++] = '[';
    for (int i = 0; i < 30; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, ",\"id\":\"d\"}");
    check_json(deep, "id", "d");
    /* an escaped id longer than scratch: no id */
    char longid[200];
    n = (size_t)snprintf(longid, sizeof(longid), "{\"id\":\"\\n");
    for (int i = 0; i < 100; i++)
        longid[n++] = 'x';
    snprintf(longid + n, sizeof(longid) - n, "\"}");
    check_json(longid, "id", NULL);
}

/* The batches of tests/unit/golden/dedup, which real clients read (see
 * its README): all decode with their CRCs, with the expected offsets. */
static void test_golden(void)
{
    static const char *names[] = {"orig-0",   "orig-1",   "orig-2",  "orig-3", "orig-4",
                                  "filt-0",   "filt-1",   "filt-2",  "filt-3", "filt-4",
                                  "empty0-0", "empty1-0", "empty2-0"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "tests/unit/golden/dedup/%s.bin", names[i]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f)
            continue;
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        krecords_batch_t b;
        CHECK_EQ(krecords_decode(buf, n, &b, NULL), 0);
        CHECK_EQ(b.hdr.base_offset, 1000);
        CHECK_EQ(b.hdr.last_offset_delta, 9);
        int32_t want = names[i][0] == 'o'   ? 10
                       : names[i][0] == 'f' ? 4
                       : names[i][5] == '0' ? 0
                                            : 1;
        CHECK_EQ(b.nrecords, want);
        if (names[i][0] == 'f' && b.nrecords == 4)
            CHECK_EQ(b.records[3].offset_delta, 9);
        krecords_batch_free(&b);
    }
}

/* The JSON validity check dlq's "not JSON" reason rests on. */
static void test_json_valid(void)
{
    static const char *const good[] = {"{}",    " {\"a\": [1, 2.5e3, -0, true, null]} ",
                                       "\"x\"", "17",
                                       "[]",    "{\"k\":{\"n\":\"\\u00e9\"}}"};
    static const char *const bad[] = {"",       " ",     "{",  "{\"a\":}",  "[1,]", "nul",
                                      "\"open", "{} {}", "01", "{\"a\" 1}", "tru"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(krecords_json_valid((const uint8_t *)good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!krecords_json_valid((const uint8_t *)bad[i], strlen(bad[i])));
    char deep[300];
    memset(deep, '[', sizeof(deep)); /* past the nesting bound: refused, no recursion blow-up */
    CHECK(!krecords_json_valid((const uint8_t *)deep, sizeof(deep)));
}

int main(void)
{
    test_json_valid();
    for (int codec = 0; codec <= SNAPPY_XERIAL; codec++)
        test_codec(codec);
    test_deflate_roundtrip();
    test_bombs();
    test_bad_records();
    test_control_input();
    test_event_id();
    test_golden();
    return unit_done("krecords");
}
