/*
 * test_dlqprod.c - unit tests for the pure parts of producer-path
 * dead-letter routing (proxy/engines/dlqprod.c): the verdict on a record
 * (eventId, no eventId, not JSON), the batch re-encoded for a
 * ProduceRequest without some records (offset deltas renumbered, count
 * and lastOffsetDelta consistent, so a broker and kproduce_check_records
 * accept it, for every codec), the refusal codes, and the ProduceResponse
 * with eosproxy's partition answers merged in.
 */
#include "dlqprod.h"
#include "kerror.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* ---- verdicts ---- */

static krec_t rec_value(const char *v)
{
    krec_t r;
    memset(&r, 0, sizeof(r));
    r.key.len = -1;
    r.value.ptr = (const uint8_t *)v;
    r.value.len = v ? (int32_t)strlen(v) : -1;
    return r;
}

static void test_classify(void)
{
    krec_t r = rec_value("{\"orderId\":\"o1\"}");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_OK);
    r = rec_value("{\"orderId\": 42, \"x\": [1, {\"y\": null}]}");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_OK);
    r = rec_value("{\"other\":1}");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NO_EVENT_ID);
    r = rec_value("[1,2,3]"); /* JSON, not an object */
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NO_EVENT_ID);
    r = rec_value("{\"orderId\":\"\"}"); /* empty id */
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NO_EVENT_ID);
    r = rec_value("not json {");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NOT_JSON);
    r = rec_value("{\"orderId\":\"o1\""); /* truncated */
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NOT_JSON);
    r = rec_value("{\"orderId\":\"o1\"} trailing");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NOT_JSON);
    r = rec_value(NULL); /* null value: no JSON at all */
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NOT_JSON);
    r = rec_value("");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_JSON, "orderId"), DLQPROD_NOT_JSON);

    /* key and header sources never say "not JSON" */
    r = rec_value("not json");
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_KEY, NULL), DLQPROD_NO_EVENT_ID);
    r.key.ptr = (const uint8_t *)"k";
    r.key.len = 1;
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_KEY, NULL), DLQPROD_OK);
    krec_header_t h = {{"event-id", 8}, {(const uint8_t *)"e1", 2}};
    r.headers = &h;
    r.nheaders = 1;
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_HEADER, "event-id"), DLQPROD_OK);
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_HEADER, "other"), DLQPROD_NO_EVENT_ID);
    h.value.len = -1; /* null header value */
    CHECK_EQ(dlqprod_classify(&r, KRECORDS_ID_HEADER, "event-id"), DLQPROD_NO_EVENT_ID);
}

static void test_refusals(void)
{
    CHECK(dlqprod_is_refusal(KERR_MESSAGE_TOO_LARGE));
    CHECK(dlqprod_is_refusal(KERR_INVALID_RECORD));
    CHECK(dlqprod_is_refusal(KERR_CORRUPT_MESSAGE));
    CHECK(dlqprod_is_refusal(KERR_POLICY_VIOLATION));
    CHECK(!dlqprod_is_refusal(KERR_NONE));
    CHECK(!dlqprod_is_refusal(KERR_NOT_LEADER_OR_FOLLOWER));
    CHECK(!dlqprod_is_refusal(KERR_REQUEST_TIMED_OUT));
    CHECK(!dlqprod_is_refusal(KERR_RECORD_LIST_TOO_LARGE));
    CHECK_STR(dlqprod_error_name(KERR_MESSAGE_TOO_LARGE), "MESSAGE_TOO_LARGE");
    CHECK_STR(dlqprod_error_name(KERR_POLICY_VIOLATION), "POLICY_VIOLATION");
    CHECK_STR(dlqprod_error_name(7), "ERROR");
}

/* ---- rebatch ---- */

#define NREC 5

/* Record i as a producer writes it: offsetDelta i, timestampDelta 10*i,
 * key "k<i>", value "v<i>", one header "h" = "<i>". */
static void put_record(kwriter_t *w, int i)
{
    char key[8], val[8], hv[8];
    int kl = snprintf(key, sizeof(key), "k%d", i);
    int vl = snprintf(val, sizeof(val), "v%d", i);
    int hl = snprintf(hv, sizeof(hv), "%d", i);
    kwriter_t r;
    kw_init(&r, 64);
    kw_i8(&r, 0);
    kw_varlong(&r, 10 * i);
    kw_varint(&r, i);
    kw_varint(&r, kl);
    kw_raw(&r, key, (size_t)kl);
    kw_varint(&r, vl);
    kw_raw(&r, val, (size_t)vl);
    kw_varint(&r, 1);
    kw_varint(&r, 1);
    kw_raw(&r, "h", 1);
    kw_varint(&r, hl);
    kw_raw(&r, hv, (size_t)hl);
    kw_varint(w, (int32_t)r.len);
    kw_raw(w, r.buf, r.len);
    kw_free(&r);
}

/* A producer's batch of NREC records with codec. */
static void build_batch(kwriter_t *out, int codec)
{
    kwriter_t recs;
    kw_init(&recs, 256);
    for (int i = 0; i < NREC; i++)
        put_record(&recs, i);
    krecord_batch_t h;
    memset(&h, 0, sizeof(h));
    h.partition_leader_epoch = -1;
    h.last_offset_delta = NREC - 1;
    h.base_timestamp = 1700000000000;
    h.max_timestamp = 1700000000000 + 10 * (NREC - 1);
    h.producer_id = -1;
    h.producer_epoch = -1;
    h.base_sequence = -1;
    CHECK_EQ(krecords_write_batch(out, &h, (int16_t)codec, NREC, recs.buf, recs.len), 0);
    kw_free(&recs);
}

static void test_rebatch_codec(int codec)
{
    kwriter_t in, out;
    kw_init(&in, 256);
    kw_init(&out, 256);
    build_batch(&in, codec);
    krecords_batch_t b, c;
    const char *err = NULL;
    CHECK_EQ(krecords_decode(in.buf, in.len, &b, &err), 0);
    uint8_t keep[NREC] = {1, 0, 1, 1, 0}; /* the last record goes */
    CHECK_EQ(dlqprod_rebatch(&out, &b, keep), 0);
    CHECK_EQ(krecords_decode(out.buf, out.len, &c, &err), 0); /* CRC checked */
    CHECK_EQ(c.nrecords, 3);
    CHECK_EQ(c.hdr.record_count, 3);
    CHECK_EQ(c.hdr.last_offset_delta, 2);
    CHECK_EQ(c.hdr.attributes, codec);
    CHECK_EQ(c.hdr.base_timestamp, 1700000000000);
    CHECK_EQ(c.hdr.max_timestamp, 1700000000000 + 30);
    CHECK_EQ(c.hdr.producer_id, -1);
    const int want[3] = {0, 2, 3};
    for (int i = 0; i < 3 && i < c.nrecords; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", want[i]);
        CHECK_EQ(c.records[i].offset_delta, i);
        CHECK_EQ(c.records[i].timestamp_delta, 10 * want[i]);
        CHECK_EQ(c.records[i].value.len, (int32_t)strlen(v));
        CHECK(memcmp(c.records[i].value.ptr, v, strlen(v)) == 0);
        CHECK_EQ(c.records[i].nheaders, 1);
    }
    /* a broker's checks: one batch, count == lastOffsetDelta + 1, CRC */
    krecord_batch_t chk;
    kbytes_t rec = {out.buf, (int32_t)out.len};
    CHECK_EQ(kproduce_check_records(7, rec, &chk, 1), KREC_OK);
    krecords_batch_free(&c);

    /* nothing kept: refused, the writer untouched */
    uint8_t none[NREC] = {0};
    size_t before = out.len;
    CHECK_EQ(dlqprod_rebatch(&out, &b, none), -1);
    CHECK_EQ(out.len, before);
    krecords_batch_free(&b);
    kw_free(&in);
    kw_free(&out);
}

static void test_rebatch(void)
{
    for (int codec = 0; codec <= 4; codec++)
        test_rebatch_codec(codec);
}

/* ---- response merge ---- */

static void test_resp_write(void)
{
    kproduce_presp_t bp[2] = {
        {.index = 0,
         .error_code = KERR_MESSAGE_TOO_LARGE,
         .base_offset = -1,
         .log_append_time_ms = -1,
         .log_start_offset = 5,
         .error_message = {"too big", 7}},
        {.index = 1,
         .error_code = 0,
         .base_offset = 42,
         .log_append_time_ms = -1,
         .log_start_offset = 0,
         .error_message = {NULL, -1}},
    };
    kproduce_tresp_t bt = {.name = {"t", 1}, .npartitions = 2, .partitions = bp};
    kproduce_resp_t base = {
        .correlation_id = 77, .ntopics = 1, .topics = &bt, .throttle_time_ms = 3};
    dlqprod_answer_t ans[3] = {
        {"t", 1, 0, 0, -1},                   /* replaces the refusal */
        {"t", 1, 3, KERR_INVALID_RECORD, -1}, /* added to t */
        {"u", 1, 1, 0, -1},                   /* a new topic */
    };
    for (int16_t ver = 3; ver <= 9; ver++) {
        kwriter_t w;
        kw_init(&w, 256);
        CHECK_EQ(dlqprod_resp_write(&w, ver, &base, 0, ans, 3), 0);
        kproduce_resp_t r;
        CHECK_EQ(kproduce_resp_parse(ver, w.buf + 4, w.len - 4, &r, NULL), 0);
        CHECK_EQ(r.correlation_id, 77);
        CHECK_EQ(r.ntopics, 2);
        kproduce_resp_pos_t pos = {0, 0};
        const kproduce_presp_t *p = kproduce_resp_find(&r, &pos, "t", 1, 0);
        CHECK(p && p->error_code == 0 && p->base_offset == -1 && p->error_message.len <= 0);
        pos = (kproduce_resp_pos_t){0, 0};
        p = kproduce_resp_find(&r, &pos, "t", 1, 1);
        CHECK(p && p->error_code == 0 && p->base_offset == 42);
        pos = (kproduce_resp_pos_t){0, 0};
        p = kproduce_resp_find(&r, &pos, "t", 1, 3);
        CHECK(p && p->error_code == KERR_INVALID_RECORD);
        pos = (kproduce_resp_pos_t){0, 0};
        p = kproduce_resp_find(&r, &pos, "u", 1, 1);
        CHECK(p && p->error_code == 0 && p->base_offset == -1);
        kproduce_resp_free(&r);
        kw_free(&w);
    }
    /* no broker response: eosproxy's answers alone */
    kwriter_t w;
    kw_init(&w, 256);
    CHECK_EQ(dlqprod_resp_write(&w, 7, NULL, 9, ans + 1, 2), 0);
    kproduce_resp_t r;
    CHECK_EQ(kproduce_resp_parse(7, w.buf + 4, w.len - 4, &r, NULL), 0);
    CHECK_EQ(r.correlation_id, 9);
    CHECK_EQ(r.ntopics, 2);
    kproduce_resp_free(&r);
    kw_free(&w);
}

int main(void)
{
    test_classify();
    test_refusals();
    test_rebatch();
    test_resp_write();
    return unit_done("test_dlqprod");
}
