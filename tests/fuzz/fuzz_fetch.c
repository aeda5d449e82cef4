/*
 * fuzz_fetch.c - libFuzzer target for the consumer-dedup codec: the
 * FetchResponse codec (kfetch.c) and the records codec (krecords.c:
 * decompression, record decode, filter, eventId).
 *
 * Input: one selector byte, then the data.
 *   selector bit 7 = 0: a FetchResponse frame (no size prefix) of version
 *     4 + selector % 9. Seeds: tests/fuzz/seeds/fetch-* (written by
 *     test_kfetch with KFETCH_SEED_DIR set).
 *   selector bit 7 = 1: one record batch; its batchLength and CRC are
 *     patched to match (so the fuzzer reaches decompression and record
 *     decode), then it goes through the same batch checks.
 * Build: clang -fsanitize=fuzzer,address,undefined with the sources of proxy/codec and
 * -lz -lsnappy -llz4 -lzstd.
 *
 * Invariants (abort on violation):
 *  - a parsed response re-encodes byte for byte for non-flexible
 *    versions; for every version the re-encoding parses and re-encodes
 *    to the same bytes;
 *  - every complete batch that decodes, filtered keeping every other
 *    record (and keeping none, in each empty mode), decodes again with
 *    its CRC checked, keeps baseOffset and lastOffsetDelta, holds the
 *    kept records byte for byte with their offset deltas (a batch with
 *    no records comes back unchanged);
 *  - eventId extraction never reads outside the record or the scratch;
 *  - the aborted-transaction filter (kaborted.c) on a parsed response
 *    either leaves it alone or writes a response that parses, with the
 *    same topics and partitions, whose filtered partitions keep their
 *    length within what the empty forms add, and that the filter then
 *    leaves alone or filters again without error.
 */
#include "kaborted.h"
#include "kfetch.h"
#include "krecords.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every eventId source on every record; ids must lie in the record's
 * value/key/headers or in scratch. */
static void fuzz_ids(const krecords_batch_t *b)
{
    uint8_t scratch[32];
    for (int32_t i = 0; i < b->nrecords; i++) {
        const krec_t *r = &b->records[i];
        for (int src = 1; src <= 3; src++) {
            kbytes_t id;
            if (!krecords_event_id(r, src, "id", &id, scratch, sizeof(scratch)))
                continue;
            int in_scratch = id.ptr >= scratch && id.ptr + id.len <= scratch + sizeof(scratch);
            int in_rec = id.ptr >= r->raw && id.ptr + id.len <= r->raw + r->raw_len;
            if (id.len <= 0 || (!in_scratch && !in_rec))
                abort();
        }
    }
}

/* Filters b with keep and checks the result. */
static void check_filter(const krecords_batch_t *b, const uint8_t *orig, size_t size,
                         const uint8_t *keep, int mode)
{
    kwriter_t w;
    kw_init(&w, 256);
    if (krecords_filter(&w, b, orig, size, keep, mode) != 0) {
        kw_free(&w);
        return; /* only allocation failure or an unknown codec (5..7) */
    }
    krecords_batch_t f;
    const char *err = NULL;
    if (krecords_decode(w.buf, w.len, &f, &err) != 0)
        abort();
    int32_t kept = 0;
    for (int32_t i = 0; i < b->nrecords; i++)
        kept += keep[i] != 0;
    if (f.hdr.base_offset != b->hdr.base_offset ||
        f.hdr.last_offset_delta != b->hdr.last_offset_delta)
        abort();
    if (kept > 0) {
        if (f.nrecords != kept)
            abort();
        int32_t k = 0;
        for (int32_t i = 0; i < b->nrecords; i++) {
            if (!keep[i])
                continue;
            const krec_t *x = &b->records[i], *y = &f.records[k++];
            if (x->raw_len != y->raw_len || memcmp(x->raw, y->raw, x->raw_len) != 0 ||
                x->offset_delta != y->offset_delta)
                abort();
        }
    } else if (b->nrecords == 0 ? (f.nrecords != 0 || w.len != size || memcmp(w.buf, orig, size))
                                : f.nrecords != (mode == KRECORDS_EMPTY_ZERO_RECORDS ? 0 : 1)) {
        abort();
    }
    krecords_batch_free(&f);
    kw_free(&w);
}

/* Decodes one complete batch and runs the filter checks on it. */
static void fuzz_batch(const uint8_t *p, size_t size)
{
    krecords_batch_t b;
    if (krecords_decode(p, size, &b, NULL) != 0)
        return;
    if (b.nrecords != b.hdr.record_count)
        abort();
    fuzz_ids(&b);
    uint8_t *keep = calloc((size_t)b.nrecords + 1, 1);
    if (keep) {
        for (int32_t i = 0; i < b.nrecords; i++)
            keep[i] = (uint8_t)(i % 2 == 0);
        check_filter(&b, p, size, keep, KRECORDS_EMPTY_CONTROL);
        memset(keep, 0, (size_t)b.nrecords + 1);
        for (int mode = 0; mode < 3; mode++)
            check_filter(&b, p, size, keep, mode);
        free(keep);
    }
    krecords_batch_free(&b);
}

/* Walks a partition's records batch by batch (a partial tail is left). */
static void fuzz_records(kbytes_t rec)
{
    size_t off = 0, len = rec.len > 0 ? (size_t)rec.len : 0;
    while (len - off >= 12) {
        int32_t bl = kbe32(rec.ptr + off + 8);
        if (bl < 0 || (size_t)bl > len - off - 12)
            return;
        fuzz_batch(rec.ptr + off, 12 + (size_t)bl);
        off += 12 + (size_t)bl;
    }
}

/* kaborted_filter on a response that parsed as resp. */
static void fuzz_aborted(int16_t ver, const uint8_t *frame, size_t len, const kfetch_resp_t *resp)
{
    kwriter_t w;
    kw_init(&w, len + 64);
    size_t dropped = 0;
    int rc = kaborted_filter(ver, frame, len, &w, &dropped);
    if (rc < 0 || (rc == 0 && w.len != 0) || (rc == 1 && dropped == 0))
        abort(); /* it parsed: only OOM may fail, and fuzzing has memory */
    if (rc == 1) {
        kfetch_resp_t f;
        if (kfetch_resp_parse(ver, w.buf + 4, w.len - 4, &f, NULL) != 0 ||
            f.ntopics != resp->ntopics)
            abort();
        for (int32_t i = 0; i < f.ntopics; i++) {
            if (f.topics[i].npartitions != resp->topics[i].npartitions)
                abort();
            for (int32_t j = 0; j < f.topics[i].npartitions; j++)
                if (f.topics[i].partitions[j].index != resp->topics[i].partitions[j].index ||
                    f.topics[i].partitions[j].naborted != resp->topics[i].partitions[j].naborted)
                    abort();
        }
        kfetch_resp_free(&f);
        kwriter_t w2;
        kw_init(&w2, w.len);
        if (kaborted_filter(ver, w.buf + 4, w.len - 4, &w2, NULL) < 0)
            abort();
        kw_free(&w2);
    }
    kw_free(&w);
}

static void fuzz_response(int16_t ver, const uint8_t *frame, size_t len)
{
    kfetch_resp_t resp, again;
    if (kfetch_resp_parse(ver, frame, len, &resp, NULL) != 0)
        return;
    kwriter_t w, w2;
    kw_init(&w, len + 16);
    kw_init(&w2, len + 16);
    if (kfetch_resp_write(&w, ver, &resp) != 0)
        abort();
    if (ver < 12 && (w.len != len + 4 || memcmp(w.buf + 4, frame, len) != 0))
        abort();
    if (kfetch_resp_parse(ver, w.buf + 4, w.len - 4, &again, NULL) != 0)
        abort();
    if (kfetch_resp_write(&w2, ver, &again) != 0 || w2.len != w.len ||
        memcmp(w2.buf, w.buf, w.len) != 0)
        abort();
    kfetch_resp_free(&again);
    fuzz_aborted(ver, frame, len, &resp);
    for (int32_t i = 0; i < resp.ntopics; i++)
        for (int32_t j = 0; j < resp.topics[i].npartitions; j++)
            fuzz_records(resp.topics[i].partitions[j].records);
    kw_free(&w);
    kw_free(&w2);
    kfetch_resp_free(&resp);
}

/* A single batch with batchLength and CRC made to match. */
static void fuzz_raw_batch(const uint8_t *data, size_t size)
{
    if (size < KRECORD_HEADER_SIZE || size > (1u << 20))
        return;
    uint8_t *c = malloc(size);
    if (!c)
        return;
    memcpy(c, data, size);
    uint32_t bl = (uint32_t)(size - 12), crc;
    c[8] = (uint8_t)(bl >> 24);
    c[9] = (uint8_t)(bl >> 16);
    c[10] = (uint8_t)(bl >> 8);
    c[11] = (uint8_t)bl;
    crc = krecord_batch_crc(c, size);
    c[17] = (uint8_t)(crc >> 24);
    c[18] = (uint8_t)(crc >> 16);
    c[19] = (uint8_t)(crc >> 8);
    c[20] = (uint8_t)crc;
    fuzz_batch(c, size);
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    if (sel & 0x80)
        fuzz_raw_batch(data + 1, size - 1);
    else
        fuzz_response((int16_t)(KFETCH_MIN_VERSION + sel % 9), data + 1, size - 1);
    return 0;
}
