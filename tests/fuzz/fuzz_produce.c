/*
 * fuzz_produce.c - libFuzzer target for the Produce codec (kproduce.c,
 * krecord.c): what eosproxy does with a client's ProduceRequest on the
 * idempotent path and with the broker's ProduceResponse.
 *
 * Input: one selector byte, then a frame (no size prefix).
 *   selector bit 0 = 0: a request frame. Its header is parsed; if it is not
 *     a Produce v3..v9 header the bytes after the selector are parsed as a
 *     Produce body of version 3 + (selector >> 1) % 7 instead.
 *   selector bit 0 = 1: a ProduceResponse frame of version
 *     3 + (selector >> 1) % 7.
 * Seeds: tests/fuzz/seeds/produce-* (written by test_kproduce with
 * KPRODUCE_SEED_DIR set).
 *
 * Invariants (abort on violation, so the fuzzer reports them):
 *  - a parsed request re-encodes; the re-encoding parses to the same
 *    struct, and for non-flexible versions is byte-identical;
 *  - every partition's batches walk within the records; a batch that
 *    passes the check, rewritten on a copy with new producer fields,
 *    passes it again with CRC verification, shows the new fields and
 *    keeps its fingerprint;
 *  - the local answer to a parsed request parses as a response;
 *  - a parsed response re-encodes to the same struct (byte-identical for
 *    non-flexible versions).
 */
#include "kproduce.h"
#include "kproto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int kstr_eq(kstr_t a, kstr_t b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

static int kbytes_eq(kbytes_t a, kbytes_t b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

static int req_eq(const kproduce_req_t *a, const kproduce_req_t *b)
{
    if (!kstr_eq(a->transactional_id, b->transactional_id) || a->acks != b->acks ||
        a->timeout_ms != b->timeout_ms || a->ntopics != b->ntopics)
        return 0;
    for (int32_t i = 0; i < a->ntopics; i++) {
        const kproduce_topic_t *x = &a->topics[i], *y = &b->topics[i];
        if (!kstr_eq(x->name, y->name) || x->npartitions != y->npartitions)
            return 0;
        for (int32_t j = 0; j < x->npartitions; j++)
            if (x->partitions[j].index != y->partitions[j].index ||
                !kbytes_eq(x->partitions[j].records, y->partitions[j].records))
                return 0;
    }
    return 1;
}

static int presp_eq(const kproduce_presp_t *x, const kproduce_presp_t *y)
{
    if (x->index != y->index || x->error_code != y->error_code ||
        x->base_offset != y->base_offset || x->log_append_time_ms != y->log_append_time_ms ||
        x->log_start_offset != y->log_start_offset || x->nrecord_errors != y->nrecord_errors ||
        !kstr_eq(x->error_message, y->error_message))
        return 0;
    for (int32_t k = 0; k < x->nrecord_errors; k++)
        if (x->record_errors[k].batch_index != y->record_errors[k].batch_index ||
            !kstr_eq(x->record_errors[k].message, y->record_errors[k].message))
            return 0;
    return 1;
}

static int resp_eq(const kproduce_resp_t *a, const kproduce_resp_t *b)
{
    if (a->correlation_id != b->correlation_id || a->ntopics != b->ntopics ||
        a->throttle_time_ms != b->throttle_time_ms)
        return 0;
    for (int32_t i = 0; i < a->ntopics; i++) {
        const kproduce_tresp_t *x = &a->topics[i], *y = &b->topics[i];
        if (!kstr_eq(x->name, y->name) || x->npartitions != y->npartitions)
            return 0;
        for (int32_t j = 0; j < x->npartitions; j++)
            if (!presp_eq(&x->partitions[j], &y->partitions[j]))
                return 0;
    }
    return 1;
}

/* Walks, checks and rewrites (on a copy) one partition's records. */
static void fuzz_records(int16_t ver, kbytes_t records)
{
    krecord_batch_t batches[4], b, b2;
    size_t n = 0;
    if (records.len > 0) {
        int err = krecord_batches(records.ptr, (size_t)records.len, batches, 4, &n, 1);
        if (n > 4)
            abort();
        for (size_t i = 0; i < n; i++)
            if (batches[i].offset + batches[i].size > (size_t)records.len ||
                batches[i].size < KRECORD_HEADER_SIZE)
                abort();
        if (err == KREC_OK && n == 0)
            abort();
    }
    if (kproduce_check_records(ver, records, &b, 0) != KREC_OK)
        return;
    if (b.size != (size_t)records.len)
        abort();
    uint64_t fp = krecord_fingerprint(records.ptr, b.size);
    uint8_t *copy = malloc(b.size);
    if (!copy)
        return;
    memcpy(copy, records.ptr, b.size);
    /* The CRC is patched, never recomputed: valid stays valid, a corrupt
     * batch stays corrupt (never re-signed). */
    int crc_ok = krecord_batch_crc(records.ptr, b.size) == b.crc;
    if (krecord_set_producer(copy, b.size, 0x1122334455667788LL, 9, 12345, 1) != 0)
        abort();
    kbytes_t rewritten = {copy, (int32_t)b.size};
    if (kproduce_check_records(ver, rewritten, &b2, crc_ok) != KREC_OK)
        abort();
    if (!crc_ok && krecord_batch_crc(copy, b.size) == b2.crc)
        abort();
    if (b2.producer_id != 0x1122334455667788LL || b2.producer_epoch != 9 ||
        b2.base_sequence != 12345 || !krecord_attrs(b2.attributes).transactional ||
        b2.record_count != b.record_count || krecord_fingerprint(copy, b.size) != fp)
        abort();
    free(copy);
}

/*
 * kproduce_req_write_cut with the records put back at the cuts gives the
 * frame kproduce_req_write gave (whole, len); refused only for a null
 * records or too many partitions.
 */
static void check_cut(int16_t ver, const kproduce_req_t *req, kstr_t client_id,
                      const uint8_t *whole, size_t len)
{
    size_t cuts[64], n = 0, at = 0, from = 0;
    int has_null = 0, parts = 0;
    for (int32_t i = 0; i < req->ntopics; i++)
        for (int32_t j = 0; j < req->topics[i].npartitions; j++, parts++)
            has_null |= req->topics[i].partitions[j].records.len < 0;
    kwriter_t w;
    kw_init(&w, 0);
    int rc = kproduce_req_write_cut(&w, ver, 7, client_id, req, cuts, 64);
    if (rc != 0) {
        if (!has_null && parts <= 64)
            abort();
        kw_free(&w);
        return;
    }
    if (has_null || parts > 64 || kbe32(w.buf) != kbe32(whole))
        abort();
    for (int32_t i = 0; i < req->ntopics; i++)
        for (int32_t j = 0; j < req->topics[i].npartitions; j++, n++) {
            kbytes_t r = req->topics[i].partitions[j].records;
            if (cuts[n] < from || at + (cuts[n] - from) + (size_t)r.len > len ||
                memcmp(whole + at, w.buf + from, cuts[n] - from) != 0)
                abort();
            at += cuts[n] - from;
            from = cuts[n];
            if (memcmp(whole + at, r.ptr, (size_t)r.len) != 0)
                abort();
            at += (size_t)r.len;
        }
    if (at + (w.len - from) != len || memcmp(whole + at, w.buf + from, w.len - from) != 0)
        abort();
    kw_free(&w);
}

/* A parsed request: records, re-encode, local answer. */
static void fuzz_request(int16_t ver, const uint8_t *body, size_t body_len, kstr_t client_id)
{
    kproduce_req_t req, again;
    if (kproduce_req_parse(ver, body, body_len, &req, NULL) != 0)
        return;
    for (int32_t i = 0; i < req.ntopics; i++)
        for (int32_t j = 0; j < req.topics[i].npartitions; j++)
            fuzz_records(ver, req.topics[i].partitions[j].records);

    kwriter_t w;
    kw_init(&w, 0);
    if (kproduce_req_write(&w, ver, 7, client_id, &req) != 0)
        abort();
    kreq_hdr_t h;
    const char *err;
    if (kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err) != 0)
        abort();
    const uint8_t *nb = w.buf + 4 + h.body_off;
    size_t nlen = w.len - 4 - h.body_off;
    if (kproduce_req_parse(ver, nb, nlen, &again, NULL) != 0 || !req_eq(&req, &again))
        abort();
    if (ver < KPRODUCE_FLEX_VERSION && (nlen != body_len || memcmp(nb, body, nlen) != 0))
        abort();
    kproduce_req_free(&again);
    check_cut(ver, &req, client_id, w.buf, w.len);

    kproduce_resp_t r;
    kw_reset(&w);
    if (kproduce_resp_write_uniform(&w, ver, 7, &req, 0, -1) != 0 ||
        kproduce_resp_parse(ver, w.buf + 4, w.len - 4, &r, NULL) != 0 || r.ntopics != req.ntopics)
        abort();
    kproduce_resp_free(&r);
    kw_free(&w);
    kproduce_req_free(&req);
}

static void fuzz_response(int16_t ver, const uint8_t *frame, size_t len)
{
    kproduce_resp_t r, again;
    if (kproduce_resp_parse(ver, frame, len, &r, NULL) != 0)
        return;
    kwriter_t w;
    kw_init(&w, 0);
    if (kproduce_resp_write(&w, ver, &r) != 0)
        abort();
    if (kproduce_resp_parse(ver, w.buf + 4, w.len - 4, &again, NULL) != 0 || !resp_eq(&r, &again))
        abort();
    if (ver < KPRODUCE_FLEX_VERSION && (w.len - 4 != len || memcmp(w.buf + 4, frame, len) != 0))
        abort();
    kproduce_resp_free(&again);
    kproduce_resp_free(&r);
    kw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    int16_t ver = (int16_t)(KPRODUCE_MIN_VERSION + (sel >> 1) % 7);
    const uint8_t *frame = data + 1;
    size_t len = size - 1;
    if (sel & 1) {
        fuzz_response(ver, frame, len);
        return 0;
    }
    kreq_hdr_t h;
    const char *err;
    if (kproto_parse_request_header(frame, len, &h, &err) == 0 && h.api_key == KAPI_Produce &&
        h.api_version >= KPRODUCE_MIN_VERSION && h.api_version <= KPRODUCE_MAX_VERSION) {
        fuzz_request(h.api_version, frame + h.body_off, len - h.body_off, h.client_id);
        return 0;
    }
    fuzz_request(ver, frame, len, (kstr_t){"fuzz", 4});
    return 0;
}
