/*
 * test_kproduce.c - unit tests for the ProduceRequest / ProduceResponse
 * codec, v3..v9 (proxy/codec/kproduce.c), and the per-partition records check.
 *
 * Frames are built here with kwriter, field by field from Kafka's
 * ProduceRequest.json / ProduceResponse.json, independently of the codec;
 * encoded frames must equal the hand-built ones byte for byte and pass
 * kproto_validate_request. Every valid frame is also parsed truncated at
 * every length (each prefix in a buffer of exactly that size, so ASan sees
 * any over-read) and with a trailing byte. Golden frames recorded from real
 * clients (tests/unit/golden) are taken apart, their batches rewritten and
 * re-verified.
 *
 * With KPRODUCE_SEED_DIR set, the valid frames are written there as fuzz
 * seeds produce-*.bin in the input format of tests/fuzz/fuzz_produce.c.
 */
#include "kproduce.h"
#include "kproto.h"
#include "unit.h"

#include <stdlib.h>

#define GOLDEN_DIR "tests/unit/golden"

/* ---- building ---- */

/* Appends one v2 batch with nrec small uncompressed records, correct CRC. */
static void build_batch(kwriter_t *w, int nrec, int16_t attributes)
{
    size_t start = w->len;
    kw_i64(w, 0);
    kw_i32(w, 0); /* batchLength, patched */
    kw_i32(w, -1);
    kw_i8(w, 2);
    kw_i32(w, 0); /* crc, patched */
    kw_i16(w, attributes);
    kw_i32(w, nrec - 1);
    kw_i64(w, 1700000000000LL);
    kw_i64(w, 1700000000000LL + nrec - 1);
    kw_i64(w, -1);
    kw_i16(w, -1);
    kw_i32(w, -1);
    kw_i32(w, nrec);
    for (int i = 0; i < nrec; i++) {
        /* length, attributes, timestampDelta, offsetDelta, key null,
         * value "vN", no headers */
        kw_varint(w, 1 + 1 + 1 + 1 + 1 + 2 + 1);
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
    kw_patch_i32(w, start + 17,
                 (int32_t)krecord_crc32c(0, w->buf + start + 21, w->len - start - 21));
}

static void str(kwriter_t *w, int flex, const char *s)
{
    kw_str(w, flex, s, s ? (int32_t)strlen(s) : -1);
}

static void tags(kwriter_t *w, int flex)
{
    if (flex)
        kw_tags_empty(w);
}

/* The batches used in requests: batch[i] has i+1 records. */
static kwriter_t batches[3];

static void make_batches(void)
{
    for (int i = 0; i < 3; i++) {
        kw_init(&batches[i], 256);
        build_batch(&batches[i], i + 1, 0);
    }
}

/*
 * Hand-built ProduceRequest frame (no size prefix) of ver: topics "t1"
 * (partitions 0 and 3) and "other" (partition 7, null records), acks -1,
 * timeout 30000, transactional id txn (may be NULL).
 */
static void build_request(kwriter_t *w, int16_t ver, const char *txn)
{
    int flex = ver >= 9;
    kw_init(w, 512);
    kw_i16(w, KAPI_Produce);
    kw_i16(w, ver);
    kw_i32(w, 0x01020304);
    str(w, 0, "client-1");
    tags(w, flex);
    str(w, flex, txn);
    kw_i16(w, -1);
    kw_i32(w, 30000);
    kw_array(w, flex, 2);
    str(w, flex, "t1");
    kw_array(w, flex, 2);
    for (int p = 0; p < 2; p++) {
        kw_i32(w, p * 3);
        kw_bytes(w, flex, batches[p].buf, (int32_t)batches[p].len);
        tags(w, flex);
    }
    tags(w, flex);
    str(w, flex, "other");
    kw_array(w, flex, 1);
    kw_i32(w, 7);
    kw_bytes(w, flex, NULL, -1);
    tags(w, flex);
    tags(w, flex);
    tags(w, flex);
}

/* Writes a fuzz seed: one selector byte, then the frame. */
static void write_seed(const char *what, uint8_t selector, const uint8_t *buf, size_t len)
{
    const char *dir = getenv("KPRODUCE_SEED_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/produce-%s.bin", dir, what);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(&selector, 1, 1, f);
    fwrite(buf, 1, len, f);
    fclose(f);
}

static uint8_t *dup_exact(const uint8_t *p, size_t len)
{
    uint8_t *q = malloc(len ? len : 1);
    if (len)
        memcpy(q, p, len);
    return q;
}

static int kstr_is(kstr_t s, const char *want)
{
    if (!want)
        return s.len == -1;
    return s.len == (int32_t)strlen(want) && memcmp(s.ptr, want, (size_t)s.len) == 0;
}

static int kbytes_eq(kbytes_t a, kbytes_t b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

static int req_equal(const kproduce_req_t *a, const kproduce_req_t *b)
{
    if (a->acks != b->acks || a->timeout_ms != b->timeout_ms || a->ntopics != b->ntopics ||
        a->transactional_id.len != b->transactional_id.len)
        return 0;
    if (a->transactional_id.len > 0 &&
        memcmp(a->transactional_id.ptr, b->transactional_id.ptr, a->transactional_id.len))
        return 0;
    for (int32_t i = 0; i < a->ntopics; i++) {
        const kproduce_topic_t *x = &a->topics[i], *y = &b->topics[i];
        if (x->name.len != y->name.len || memcmp(x->name.ptr, y->name.ptr, x->name.len) ||
            x->npartitions != y->npartitions)
            return 0;
        for (int32_t j = 0; j < x->npartitions; j++)
            if (x->partitions[j].index != y->partitions[j].index ||
                !kbytes_eq(x->partitions[j].records, y->partitions[j].records))
                return 0;
    }
    return 1;
}

/* Header + body parse of a request frame; 0 on success. */
static int parse_frame(const uint8_t *frame, size_t len, kreq_hdr_t *h, kproduce_req_t *req)
{
    const char *err;
    memset(req, 0, sizeof(*req));
    if (kproto_parse_request_header(frame, len, h, &err) != 0)
        return -1;
    return kproduce_req_parse(h->api_version, frame + h->body_off, len - h->body_off, req, NULL);
}

/* Every strict prefix of the body is refused; a trailing byte too. */
static int body_truncations_refused(int16_t ver, const uint8_t *body, size_t len)
{
    int ok = 1;
    kproduce_req_t req;
    for (size_t n = 0; n < len; n++) {
        uint8_t *p = dup_exact(body, n);
        size_t off = 0;
        ok &= kproduce_req_parse(ver, p, n, &req, &off) != 0 && req.topics == NULL && off <= n;
        free(p);
    }
    uint8_t *p = malloc(len + 1);
    memcpy(p, body, len);
    p[len] = 0;
    ok &= kproduce_req_parse(ver, p, len + 1, &req, NULL) == KR_EINVALID;
    free(p);
    return ok;
}

/* ---- requests ---- */

/*
 * 1 if kproduce_req_write_cut, with each partition's records put in at its
 * cut, gives the bytes kproduce_req_write gives.
 */
static int cut_matches_write(int16_t ver, const kproduce_req_t *req)
{
    kwriter_t whole, cut;
    size_t cuts[16], n = 0;
    kw_init(&whole, 0);
    kw_init(&cut, 0);
    int ok = kproduce_req_write(&whole, ver, 77, (kstr_t){"c", 1}, req) == 0 &&
             kproduce_req_write_cut(&cut, ver, 77, (kstr_t){"c", 1}, req, cuts, 16) == 0;
    uint8_t *spliced = ok ? malloc(whole.len) : NULL;
    size_t at = 0, from = 0;
    for (int32_t i = 0; spliced && i < req->ntopics; i++)
        for (int32_t j = 0; j < req->topics[i].npartitions; j++, n++) {
            kbytes_t r = req->topics[i].partitions[j].records;
            memcpy(spliced + at, cut.buf + from, cuts[n] - from);
            at += cuts[n] - from;
            from = cuts[n];
            memcpy(spliced + at, r.ptr, (size_t)r.len);
            at += (size_t)r.len;
        }
    if (spliced) {
        memcpy(spliced + at, cut.buf + from, cut.len - from);
        at += cut.len - from;
    }
    ok = spliced && at == whole.len && memcmp(spliced, whole.buf, at) == 0;
    free(spliced);
    kw_free(&whole);
    kw_free(&cut);
    return ok;
}

static void check_request(int16_t ver, const char *txn)
{
    kwriter_t w, out;
    kreq_hdr_t h;
    kproduce_req_t req, again;
    char name[64];
    build_request(&w, ver, txn);
    snprintf(name, sizeof(name), "req-v%d%s", ver, txn ? "-txn" : "");
    write_seed(name, 0, w.buf, w.len);

    CHECK_EQ(parse_frame(w.buf, w.len, &h, &req), 0);
    size_t body_off = h.body_off;
    CHECK(kstr_is(req.transactional_id, txn));
    CHECK_EQ(req.acks, -1);
    CHECK_EQ(req.timeout_ms, 30000);
    CHECK_EQ(req.ntopics, 2);
    if (req.ntopics != 2) {
        kproduce_req_free(&req);
        kw_free(&w);
        return;
    }
    CHECK(kstr_is(req.topics[0].name, "t1"));
    CHECK_EQ(req.topics[0].npartitions, 2);
    CHECK_EQ(req.topics[0].partitions[1].index, 3);
    CHECK_EQ(req.topics[0].partitions[1].records.len, (int32_t)batches[1].len);
    CHECK(kstr_is(req.topics[1].name, "other"));
    CHECK_EQ(req.topics[1].partitions[0].index, 7);
    CHECK_EQ(req.topics[1].partitions[0].records.len, -1);

    /* encode: byte-identical to the hand-built frame, valid per kproto */
    kw_init(&out, 0);
    CHECK_EQ(kproduce_req_write(&out, ver, 0x01020304, (kstr_t){"client-1", 8}, &req), 0);
    CHECK_EQ(out.len, w.len + 4);
    CHECK_EQ(kbe32(out.buf), (int32_t)w.len);
    CHECK(out.len == w.len + 4 && memcmp(out.buf + 4, w.buf, w.len) == 0);
    const char *err = NULL;
    size_t err_off = 0;
    CHECK_EQ(kproto_validate_request(&h, out.buf + 4, out.len - 4, &err_off, &err), 0);
    CHECK_EQ(parse_frame(out.buf + 4, out.len - 4, &h, &again), 0);
    CHECK(req_equal(&req, &again));
    kproduce_req_free(&again);

    /* substitute records and change acks: the caller's view wins */
    kproduce_partition_t parts[1] = {{5, {batches[2].buf, (int32_t)batches[2].len}}};
    kproduce_topic_t topics[1] = {{{"t1", 2}, 1, parts}};
    kproduce_req_t mine = {{NULL, -1}, 0, 1500, 1, topics};
    kw_reset(&out);
    CHECK_EQ(kproduce_req_write(&out, ver, 9, (kstr_t){NULL, -1}, &mine), 0);
    CHECK_EQ(parse_frame(out.buf + 4, out.len - 4, &h, &again), 0);
    CHECK_EQ(h.correlation_id, 9);
    CHECK_EQ(h.client_id.len, -1);
    CHECK(req_equal(&mine, &again));
    kproduce_req_free(&again);

    /* the records left out and put back at the cuts: the same frame */
    CHECK(cut_matches_write(ver, &mine));
    kproduce_partition_t two[3] = {{5, {batches[2].buf, (int32_t)batches[2].len}},
                                   {6, {batches[1].buf, (int32_t)batches[1].len}},
                                   {0, {batches[0].buf, (int32_t)batches[0].len}}};
    kproduce_topic_t ttwo[2] = {{{"t1", 2}, 2, two}, {{"other", 5}, 1, two + 2}};
    kproduce_req_t many = {{"txn", 3}, -1, 30000, 2, ttwo};
    CHECK(cut_matches_write(ver, &many));
    size_t cuts[16];
    kw_reset(&out);
    CHECK_EQ(kproduce_req_write_cut(&out, ver, 9, (kstr_t){NULL, -1}, &many, cuts, 2), -1);
    CHECK_EQ(out.len, 0); /* too few cuts: nothing written */
    CHECK_EQ(kproduce_req_write_cut(&out, ver, 9, (kstr_t){NULL, -1}, &req, cuts, 16), -1);
    CHECK_EQ(out.len, 0); /* req has null records: refused */

    CHECK(body_truncations_refused(ver, w.buf + body_off, w.len - body_off));
    kproduce_req_free(&req);
    kproduce_req_free(&req); /* idempotent */
    kw_free(&out);
    kw_free(&w);
}

static void test_requests(void)
{
    for (int16_t v = 3; v <= 9; v++)
        check_request(v, NULL);
    check_request(3, "txn-a");
    check_request(7, "txn-a");
    check_request(9, "txn-a");
    kproduce_req_free(NULL);
}

/* Hostile counts, nulls, bad versions and bad encoder input. */
static void test_request_errors(void)
{
    kproduce_req_t req;
    kwriter_t w;
    size_t off = 99;
    for (int flex = 0; flex <= 1; flex++) {
        int16_t ver = flex ? 9 : 7;
        /* topics count far beyond the frame */
        kw_init(&w, 64);
        str(&w, flex, NULL);
        kw_i16(&w, 1);
        kw_i32(&w, 100);
        if (flex)
            kw_uvarint(&w, 0x7fffffff);
        else
            kw_i32(&w, 0x7fffffff);
        kw_raw(&w, "0123456789", 10);
        CHECK_EQ(kproduce_req_parse(ver, w.buf, w.len, &req, &off), KR_ECOUNT);
        CHECK_EQ(off, 12);
        /* a null topics array */
        kw_reset(&w);
        str(&w, flex, NULL);
        kw_i16(&w, 1);
        kw_i32(&w, 100);
        kw_array(&w, flex, -1);
        tags(&w, flex);
        CHECK_EQ(kproduce_req_parse(ver, w.buf, w.len, &req, NULL), KR_ENULL);
        /* partitions count beyond the frame in the second topic */
        kw_reset(&w);
        str(&w, flex, NULL);
        kw_i16(&w, 1);
        kw_i32(&w, 100);
        kw_array(&w, flex, 2);
        str(&w, flex, "a");
        kw_array(&w, flex, 0);
        tags(&w, flex);
        str(&w, flex, "b");
        kw_array(&w, flex, 1000);
        kw_raw(&w, "0123456789abcdef", 16);
        CHECK_EQ(kproduce_req_parse(ver, w.buf, w.len, &req, NULL), KR_ECOUNT);
        CHECK(req.topics == NULL && req.ntopics == 0);
        kw_free(&w);
    }
    uint8_t body[16] = {0xff, 0xff, 0, 1, 0, 0, 0, 100, 0, 0, 0, 0};
    CHECK_EQ(kproduce_req_parse(7, body, 12, &req, NULL), 0);
    CHECK_EQ(req.ntopics, 0);
    CHECK_EQ(kproduce_req_parse(2, body, 12, &req, NULL), KR_EINVALID);
    CHECK_EQ(kproduce_req_parse(10, body, 12, &req, NULL), KR_EINVALID);

    /* the encoder refuses what it cannot write, leaving w as it was */
    kproduce_topic_t t = {{NULL, -1}, 0, NULL};
    kproduce_req_t bad = {{NULL, -1}, 1, 0, 1, &t};
    kw_init(&w, 0);
    kw_i8(&w, 42);
    CHECK_EQ(kproduce_req_write(&w, 7, 1, (kstr_t){NULL, -1}, &bad), -1);
    t.name = (kstr_t){"x", 1};
    CHECK_EQ(kproduce_req_write(&w, 2, 1, (kstr_t){NULL, -1}, &bad), -1);
    CHECK_EQ(kproduce_req_write(&w, 10, 1, (kstr_t){NULL, -1}, &bad), -1);
    kproduce_partition_t p = {0, {NULL, -2}};
    t.npartitions = 1;
    t.partitions = &p;
    CHECK_EQ(kproduce_req_write(&w, 7, 1, (kstr_t){NULL, -1}, &bad), -1);
    CHECK_EQ(w.len, 1);
    p.records.len = 0;
    CHECK_EQ(kproduce_req_write(&w, 7, 1, (kstr_t){NULL, -1}, &bad), 0);
    kw_free(&w);
}

/* ---- records check ---- */

static void test_check_records(void)
{
    kwriter_t w;
    krecord_batch_t b;
    kw_init(&w, 256);
    build_batch(&w, 2, 0);
    kbytes_t one = {w.buf, (int32_t)w.len};
    CHECK_EQ(kproduce_check_records(3, one, &b, 1), KREC_OK);
    CHECK_EQ(b.record_count, 2);
    CHECK_EQ(b.size, w.len);
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){NULL, -1}, &b, 1), KREC_ENOBATCH);
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){w.buf, 0}, &b, 1), KREC_ENOBATCH);
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){w.buf, 16}, &b, 1), KREC_ESHORT);
    size_t first = w.len;
    build_batch(&w, 1, 0);
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){w.buf, (int32_t)w.len}, &b, 1), KREC_EMULTI);
    CHECK_EQ(krecord_kafka_error(KREC_EMULTI), 87);
    w.buf[first - 1] ^= 1;
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){w.buf, (int32_t)first}, &b, 1), KREC_ECRC);
    CHECK_EQ(kproduce_check_records(7, (kbytes_t){w.buf, (int32_t)first}, &b, 0), KREC_OK);
    kw_reset(&w);
    build_batch(&w, 1, KRECORD_ZSTD);
    one = (kbytes_t){w.buf, (int32_t)w.len};
    CHECK_EQ(kproduce_check_records(6, one, &b, 1), KREC_EZSTD);
    CHECK_EQ(kproduce_check_records(7, one, &b, 1), KREC_OK);
    CHECK_EQ(kproduce_check_records(9, one, &b, 1), KREC_OK);
    w.buf[KREC_OFF_MAGIC] = 1;
    CHECK_EQ(kproduce_check_records(9, one, &b, 1), KREC_EMAGIC);
    kw_free(&w);
}

/* ---- responses ---- */

/*
 * Hand-built ProduceResponse frame (no size prefix) of ver: topic "t1"
 * with partitions 0 (ok, offset 1234) and 1 (error 87 with two record
 * errors and a message, where the version has them); throttle 5.
 */
static void build_response(kwriter_t *w, int16_t ver)
{
    int flex = ver >= 9;
    kw_init(w, 256);
    kw_i32(w, 77);
    tags(w, flex);
    kw_array(w, flex, 1);
    str(w, flex, "t1");
    kw_array(w, flex, 2);
    for (int p = 0; p < 2; p++) {
        kw_i32(w, p);
        kw_i16(w, p ? 87 : 0);
        kw_i64(w, p ? -1 : 1234);
        kw_i64(w, p ? -1 : 1700000000123LL);
        if (ver >= 5)
            kw_i64(w, p ? -1 : 10);
        if (ver >= 8) {
            kw_array(w, flex, p ? 2 : 0);
            for (int k = 0; p && k < 2; k++) {
                kw_i32(w, k * 4);
                str(w, flex, k ? NULL : "bad record");
                tags(w, flex);
            }
            str(w, flex, p ? "batch dropped" : NULL);
        }
        tags(w, flex);
    }
    tags(w, flex);
    kw_i32(w, 5);
    tags(w, flex);
}

static int resp_truncations_refused(int16_t ver, const uint8_t *frame, size_t len)
{
    int ok = 1;
    kproduce_resp_t r;
    for (size_t n = 0; n < len; n++) {
        uint8_t *p = dup_exact(frame, n);
        size_t off = 0;
        ok &= kproduce_resp_parse(ver, p, n, &r, &off) != 0 && r.topics == NULL && off <= n;
        free(p);
    }
    uint8_t *p = malloc(len + 1);
    memcpy(p, frame, len);
    p[len] = 0;
    ok &= kproduce_resp_parse(ver, p, len + 1, &r, NULL) == KR_EINVALID;
    free(p);
    return ok;
}

static void check_response(int16_t ver)
{
    kwriter_t w, out;
    kproduce_resp_t r;
    char name[64];
    build_response(&w, ver);
    snprintf(name, sizeof(name), "resp-v%d", ver);
    write_seed(name, (uint8_t)(1 | (ver - 3) << 1), w.buf, w.len);

    CHECK_EQ(kproduce_resp_parse(ver, w.buf, w.len, &r, NULL), 0);
    CHECK_EQ(r.correlation_id, 77);
    CHECK_EQ(r.throttle_time_ms, 5);
    CHECK_EQ(r.ntopics, 1);
    if (r.ntopics != 1 || r.topics[0].npartitions != 2) {
        CHECK(0);
        kproduce_resp_free(&r);
        kw_free(&w);
        return;
    }
    CHECK(kstr_is(r.topics[0].name, "t1"));
    const kproduce_presp_t *p0 = &r.topics[0].partitions[0], *p1 = &r.topics[0].partitions[1];
    CHECK_EQ(p0->error_code, 0);
    CHECK_EQ(p0->base_offset, 1234);
    CHECK_EQ(p0->log_append_time_ms, 1700000000123LL);
    CHECK_EQ(p0->log_start_offset, ver >= 5 ? 10 : -1);
    CHECK_EQ(p0->nrecord_errors, 0);
    CHECK_EQ(p0->error_message.len, -1);
    CHECK_EQ(p1->index, 1);
    CHECK_EQ(p1->error_code, 87);
    CHECK_EQ(p1->nrecord_errors, ver >= 8 ? 2 : 0);
    if (ver >= 8 && p1->nrecord_errors == 2) {
        CHECK_EQ(p1->record_errors[1].batch_index, 4);
        CHECK(kstr_is(p1->record_errors[0].message, "bad record"));
        CHECK(kstr_is(p1->record_errors[1].message, NULL));
        CHECK(kstr_is(p1->error_message, "batch dropped"));
    }

    /* encode from the parse: byte-identical */
    kw_init(&out, 0);
    CHECK_EQ(kproduce_resp_write(&out, ver, &r), 0);
    CHECK_EQ(kbe32(out.buf), (int32_t)w.len);
    CHECK(out.len == w.len + 4 && memcmp(out.buf + 4, w.buf, w.len) == 0);
    /* the response header is what kproto expects for Produce at ver */
    int32_t corr = 0;
    size_t body_off = 0;
    CHECK_EQ(
        kproto_parse_response_header(KAPI_Produce, ver, out.buf + 4, out.len - 4, &corr, &body_off),
        0);
    CHECK_EQ(corr, 77);
    CHECK_EQ(body_off, ver >= 9 ? 5 : 4);
    CHECK(resp_truncations_refused(ver, w.buf, w.len));
    kproduce_resp_free(&r);
    kproduce_resp_free(&r);
    kw_free(&out);
    kw_free(&w);
}

/* The local answer (at-most-once): every partition of the request. */
static void check_uniform(int16_t ver)
{
    kwriter_t w, out;
    kreq_hdr_t h;
    kproduce_req_t req;
    kproduce_resp_t r;
    build_request(&w, ver, NULL);
    CHECK_EQ(parse_frame(w.buf, w.len, &h, &req), 0);
    kw_init(&out, 0);
    CHECK_EQ(kproduce_resp_write_uniform(&out, ver, 42, &req, 0, -1), 0);
    CHECK_EQ(kproduce_resp_parse(ver, out.buf + 4, out.len - 4, &r, NULL), 0);
    CHECK_EQ(r.correlation_id, 42);
    CHECK_EQ(r.throttle_time_ms, 0);
    CHECK_EQ(r.ntopics, req.ntopics);
    int ok = r.ntopics == req.ntopics;
    for (int32_t i = 0; ok && i < r.ntopics; i++) {
        ok &= r.topics[i].npartitions == req.topics[i].npartitions &&
              r.topics[i].name.len == req.topics[i].name.len;
        for (int32_t j = 0; ok && j < r.topics[i].npartitions; j++) {
            const kproduce_presp_t *p = &r.topics[i].partitions[j];
            ok &= p->index == req.topics[i].partitions[j].index && p->error_code == 0 &&
                  p->base_offset == -1 && p->log_append_time_ms == -1 &&
                  p->log_start_offset == -1 && p->nrecord_errors == 0 && p->error_message.len == -1;
        }
    }
    CHECK(ok);
    kproduce_resp_free(&r);
    kw_reset(&out);
    CHECK_EQ(kproduce_resp_write_uniform(&out, 2, 42, &req, 0, -1), -1);
    CHECK_EQ(out.len, 0);
    kproduce_req_free(&req);
    kw_free(&out);
    kw_free(&w);
}

static void test_responses(void)
{
    for (int16_t v = 3; v <= 9; v++) {
        check_response(v);
        check_uniform(v);
    }
    kproduce_resp_free(NULL);

    /* hostile counts */
    kproduce_resp_t r;
    kwriter_t w;
    kw_init(&w, 64);
    kw_i32(&w, 1);
    kw_array(&w, 0, 1);
    str(&w, 0, "t");
    kw_array(&w, 0, 3); /* three partitions need 3 * 36 bytes at v8 */
    kw_raw(&w, "0123456789012345678901234567890123456789", 40);
    CHECK_EQ(kproduce_resp_parse(8, w.buf, w.len, &r, NULL), KR_ECOUNT);
    CHECK(r.topics == NULL);
    kw_reset(&w);
    kw_i32(&w, 1);
    kw_tags_empty(&w);
    kw_uvarint(&w, 0xfffffff0u);
    CHECK_EQ(kproduce_resp_parse(9, w.buf, w.len, &r, NULL), KR_ECOUNT);
    CHECK_EQ(kproduce_resp_parse(10, w.buf, w.len, &r, NULL), KR_EINVALID);
    /* the encoder refuses a null topic name */
    kproduce_tresp_t t = {{NULL, -1}, 0, NULL};
    kproduce_resp_t bad = {1, 1, &t, 0};
    kw_reset(&w);
    CHECK_EQ(kproduce_resp_write(&w, 7, &bad), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&w);
}

/* ---- golden frames from real clients ---- */

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

/* Rewrites every partition's batch of a parsed request in a copy, checks
 * the CRC and the fingerprint, and re-encodes with the rewritten records. */
static void golden_rewrite(const char *client, const kreq_hdr_t *h, kproduce_req_t *req)
{
    int64_t pid = 4000;
    for (int32_t i = 0; i < req->ntopics; i++)
        for (int32_t j = 0; j < req->topics[i].npartitions; j++) {
            kproduce_partition_t *p = &req->topics[i].partitions[j];
            krecord_batch_t b, b2;
            CHECK_EQ(kproduce_check_records(h->api_version, p->records, &b, 1), KREC_OK);
            CHECK_EQ(b.magic, 2);
            CHECK(b.record_count >= 1);
            uint64_t fp = krecord_fingerprint(p->records.ptr, b.size);
            uint8_t *copy = dup_exact(p->records.ptr, b.size);
            CHECK_EQ(krecord_set_producer(copy, b.size, pid, 3, 100 * j, 0), 0);
            CHECK_EQ(
                kproduce_check_records(h->api_version, (kbytes_t){copy, (int32_t)b.size}, &b2, 1),
                KREC_OK);
            CHECK_EQ(b2.producer_id, pid);
            CHECK_EQ(b2.producer_epoch, 3);
            CHECK_EQ(b2.base_sequence, 100 * j);
            CHECK_EQ(b2.record_count, b.record_count);
            CHECK(b2.crc != b.crc);
            CHECK(krecord_fingerprint(copy, b.size) == fp);
            p->records.ptr = copy; /* the struct now points at the rewrite */
        }
    kwriter_t w;
    kw_init(&w, 0);
    CHECK_EQ(kproduce_req_write(&w, h->api_version, h->correlation_id, h->client_id, req), 0);
    const char *err = NULL;
    size_t err_off = 0;
    kreq_hdr_t h2;
    CHECK_EQ(kproto_parse_request_header(w.buf + 4, w.len - 4, &h2, &err), 0);
    CHECK_EQ(kproto_validate_request(&h2, w.buf + 4, w.len - 4, &err_off, &err), 0);
    char name[64];
    snprintf(name, sizeof(name), "golden-%s-rewritten", client);
    write_seed(name, 0, w.buf + 4, w.len - 4);
    kw_free(&w);
    for (int32_t i = 0; i < req->ntopics; i++)
        for (int32_t j = 0; j < req->topics[i].npartitions; j++)
            free((void *)req->topics[i].partitions[j].records.ptr);
}

static void test_golden(void)
{
    static const char *clients[] = {"librdkafka", "confluentkafka", "kafkapython", "kafkajs"};
    for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++) {
        char path[256], name[64];
        size_t len;
        kreq_hdr_t h;
        kproduce_req_t req;
        snprintf(path, sizeof(path), "%s/%s-Produce-v7-req.bin", GOLDEN_DIR, clients[c]);
        uint8_t *p = read_file(path, &len);
        CHECK(p != NULL);
        if (!p)
            continue;
        snprintf(name, sizeof(name), "golden-%s-req", clients[c]);
        write_seed(name, 0, p, len);
        CHECK_EQ(parse_frame(p, len, &h, &req), 0);
        CHECK_EQ(h.api_version, 7);
        CHECK(req.ntopics >= 1);
        if (req.ntopics >= 1)
            CHECK(kstr_is(req.topics[0].name, "t1"));
        /* re-encoding the untouched parse gives the client's bytes */
        kwriter_t w;
        kw_init(&w, 0);
        CHECK_EQ(kproduce_req_write(&w, 7, h.correlation_id, h.client_id, &req), 0);
        CHECK(w.len == len + 4 && memcmp(w.buf + 4, p, len) == 0);
        kw_free(&w);
        golden_rewrite(clients[c], &h, &req);
        kproduce_req_free(&req);
        free(p);

        /* the response */
        kproduce_resp_t r;
        snprintf(path, sizeof(path), "%s/%s-Produce-v7-resp.bin", GOLDEN_DIR, clients[c]);
        p = read_file(path, &len);
        CHECK(p != NULL);
        if (!p)
            continue;
        snprintf(name, sizeof(name), "golden-%s-resp", clients[c]);
        write_seed(name, 1 | (7 - 3) << 1, p, len);
        CHECK_EQ(kproduce_resp_parse(7, p, len, &r, NULL), 0);
        CHECK_EQ(r.ntopics, 1);
        if (r.ntopics == 1) {
            CHECK(kstr_is(r.topics[0].name, "t1"));
            CHECK_EQ(r.topics[0].npartitions, 1);
            CHECK_EQ(r.topics[0].partitions[0].error_code, 0);
            CHECK(r.topics[0].partitions[0].base_offset >= 0);
        }
        kw_init(&w, 0);
        CHECK_EQ(kproduce_resp_write(&w, 7, &r), 0);
        CHECK(w.len == len + 4 && memcmp(w.buf + 4, p, len) == 0);
        kw_free(&w);
        kproduce_resp_free(&r);
        free(p);
    }
}

int main(void)
{
    make_batches();
    test_requests();
    test_request_errors();
    test_check_records();
    test_responses();
    test_golden();
    for (int i = 0; i < 3; i++)
        kw_free(&batches[i]);
    return unit_done("kproduce");
}
