/*
 * test_dedup.c - the dedup engine (dedup.c) end to end through
 * dedup_fetch_response on a real event loop. Redis is played by the dedup
 * fuzz target's in-process stand-in (tests/fuzz/fake_redisc.c, linked in
 * place of redisc.c; see the Makefile): the bounds cases leave it down,
 * which they never notice (records without an eventId ask Redis nothing,
 * so every response is answered at the next loop turn); the dead-letter
 * cases bring it up and answer its pipelines by hand. Answers, the clock,
 * the dead-letter writer and the bounds come through the engine's test
 * hooks.
 *
 * Pins: a response past its record budget is cut after the last batch
 * taken (no partial tail) and later dedup partitions come back without
 * records, error 0, counted; the first batch is always taken; a batch of
 * more records than the budget passes unchecked; the decompressed-bytes
 * budget cuts likewise; the held-bytes bound answers error 6 under
 * `block` and passes the response (counted) under `pass`. Dead-letter
 * routing: of records delivered max_deliveries times at the same
 * position, only the partition's first goes to "<topic>.DLT" (the
 * original key, value and headers, Spring's kafka_dlt-* headers); the
 * response waits for the write; acked, the record is left out and marked
 * "x" in Redis; failed, refused or given up (DD_DLQ_WAIT_MS), every
 * record is delivered. After a dead-letter, a due first record without
 * commit evidence starts counting again, whichever response it comes in.
 */
#include "config.h"
#include "dedup.h"
#include "dlqw.h"
#include "kdlt.h"
#include "kfetch.h"
#include "kproto.h"
#include "krecords.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "redisc.h"
#include "unit.h"
#include "../fuzz/fake_redisc.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>

static const char yaml[] = "upstream:\n  mock_brokers: 1\n"
                           "redis:\n  url: redis://127.0.0.1:1\n  on_unavailable: %s\n"
                           "topics:\n"
                           "  - {match: \"d.*\", delivery: at-least-once,"
                           " dedup: {event_id: \"header:eid\"}}\n";

/* The last answer the engine gave. */
static struct {
    int n;
    uint64_t token;
    uint8_t *buf;
    size_t len;
} got;

static void on_answer(void *arg, uint64_t client_id, uint64_t token, struct evbuffer *resp)
{
    (void)arg;
    (void)client_id;
    got.n++;
    got.token = token;
    free(got.buf);
    got.len = evbuffer_get_length(resp);
    got.buf = malloc(got.len);
    evbuffer_remove(resp, got.buf, got.len);
    evbuffer_free(resp);
}

/* One batch at base of n records without eventId, values of vlen 'v'. */
static void put_batch(kwriter_t *w, int64_t base, int32_t n, int codec, size_t vlen)
{
    kwriter_t p, r;
    kw_init(&p, 256);
    kw_init(&r, 64);
    char *val = malloc(vlen + 1);
    memset(val, 'v', vlen);
    for (int32_t i = 0; i < n; i++) {
        kw_reset(&r);
        kw_i8(&r, 0);
        kw_varlong(&r, 0);
        kw_varint(&r, i);
        kw_varint(&r, -1);
        kw_varint(&r, (int32_t)vlen);
        kw_raw(&r, val, vlen);
        kw_varint(&r, 0);
        kw_varint(&p, (int32_t)r.len);
        kw_raw(&p, r.buf, r.len);
    }
    krecord_batch_t h = {0};
    h.base_offset = base;
    h.last_offset_delta = n ? n - 1 : 0;
    h.producer_id = -1;
    h.producer_epoch = -1;
    h.base_sequence = -1;
    CHECK(krecords_write_batch(w, &h, (int16_t)codec, n, p.buf, p.len) == 0);
    free(val);
    kw_free(&p);
    kw_free(&r);
}

/* A Fetch v11 response: d.a partitions 0 (recs0) and 1 (recs1), and the
 * plain topic p.a partition 0 (recs1 again). */
static uint8_t *response(kwriter_t *recs0, kwriter_t *recs1, size_t *len)
{
    kfetch_partition_t dparts[2] = {{0}, {0}}, pparts[1] = {{0}};
    kwriter_t *recs[2] = {recs0, recs1};
    for (int i = 0; i < 2; i++) {
        dparts[i].index = i;
        dparts[i].high_watermark = 100;
        dparts[i].last_stable_offset = 100;
        dparts[i].naborted = -1;
        dparts[i].preferred_read_replica = -1;
        dparts[i].records = (kbytes_t){recs[i]->buf, (int32_t)recs[i]->len};
    }
    pparts[0] = dparts[1];
    kfetch_topic_t topics[2] = {{{"d.a", 3}, 2, dparts, {NULL, 0}},
                                {{"p.a", 3}, 1, pparts, {NULL, 0}}};
    kfetch_resp_t resp = {0};
    resp.correlation_id = 7;
    resp.ntopics = 2;
    resp.topics = topics;
    kwriter_t w;
    kw_init(&w, 256);
    CHECK(kfetch_resp_write(&w, 11, &resp) == 0);
    *len = w.len - 4;
    uint8_t *frame = malloc(*len);
    memcpy(frame, w.buf + 4, *len);
    kw_free(&w);
    return frame;
}

struct env {
    struct event_base *base;
    config_t *cfg;
    struct proxy px;
    struct dedup *d;
};

/* The engine for config y, with hooks (answers go to on_answer). */
static void env_open_yaml(struct env *e, const char *y, const dedup_test_hooks_t *hooks)
{
    char err[256];
    memset(e, 0, sizeof(*e));
    e->base = event_base_new();
    e->cfg = config_load_string("t.yaml", y, strlen(y), err, sizeof(err));
    CHECK(e->cfg != NULL);
    e->px.cfg = e->cfg;
    e->px.base = e->base;
    e->d = dedup_new(&e->px);
    CHECK(e->d != NULL);
    dedup_test_hooks_t h = *hooks;
    h.answer = on_answer;
    dedup_set_test_hooks(e->d, &h);
    got.n = 0;
}

static void env_open(struct env *e, const char *outage, const dedup_test_hooks_t *limits)
{
    char y[512];
    snprintf(y, sizeof(y), yaml, outage);
    env_open_yaml(e, y, limits);
}

static void env_close(struct env *e)
{
    dedup_free(e->d);
    config_free(e->cfg);
    event_base_free(e->base);
}

/* Takes frame and runs the loop once; the answer's parse in *a. */
static int take(struct env *e, const uint8_t *frame, size_t len, kfetch_resp_t *a)
{
    int rc = dedup_fetch_response(e->d, 11, frame, len, 1, 42);
    CHECK_EQ(got.n, 0); /* never inside dedup_fetch_response */
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    if (rc != 1)
        return rc;
    CHECK_EQ(got.n, 1);
    CHECK(got.token == 42);
    CHECK(got.n == 1 && kfetch_resp_parse(11, got.buf + 4, got.len - 4, a, NULL) == 0);
    return rc;
}

static int bytes_eq(kbytes_t b, const kwriter_t *w, size_t len)
{
    return b.len >= 0 && (size_t)b.len == len && memcmp(b.ptr, w->buf, len) == 0;
}

/* Three batches of 4 records and a partial one; a budget of 10 records. */
static void test_record_budget(void)
{
    kwriter_t r0, r1;
    kw_init(&r0, 256);
    kw_init(&r1, 256);
    put_batch(&r0, 0, 4, 0, 8);
    put_batch(&r0, 4, 4, 4, 8); /* zstd */
    size_t two = r0.len;
    put_batch(&r0, 8, 4, 1, 8);
    uint8_t partial[20];
    memcpy(partial, r0.buf, sizeof(partial));
    kw_raw(&r0, partial, sizeof(partial)); /* a partial batch at the end */
    put_batch(&r1, 0, 2, 0, 8);
    size_t len;
    uint8_t *frame = response(&r0, &r1, &len);
    struct env e;
    env_open(&e, "block", &(dedup_test_hooks_t){.job_max_records = 10});
    uint64_t cuts = g_metrics.dedup_responses_cut;
    kfetch_resp_t a;
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        const kfetch_partition_t *p0 = &a.topics[0].partitions[0], *p1 = &a.topics[0].partitions[1];
        CHECK(bytes_eq(p0->records, &r0, two)); /* 8 records: the third batch would pass 10 */
        CHECK_EQ(p0->error_code, 0);
        CHECK_EQ(p1->records.len, 0); /* later dedup partitions: no records */
        CHECK_EQ(p1->error_code, 0);
        CHECK(bytes_eq(a.topics[1].partitions[0].records, &r1, r1.len)); /* other topics: as is */
        CHECK_EQ(g_metrics.dedup_responses_cut, cuts + 1);
        kfetch_resp_free(&a);
    }
    env_close(&e);
    free(frame);

    /* A budget of 1: the first batch (4 records, more than a response may
     * hold) passes unchecked and is taken; the next one is cut. */
    env_open(&e, "block", &(dedup_test_hooks_t){.job_max_records = 1});
    frame = response(&r0, &r1, &len);
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        kwriter_t first;
        kw_init(&first, 256);
        put_batch(&first, 0, 4, 0, 8);
        CHECK(bytes_eq(a.topics[0].partitions[0].records, &first, first.len));
        CHECK_EQ(a.topics[0].partitions[1].records.len, 0);
        kw_free(&first);
        kfetch_resp_free(&a);
    }
    env_close(&e);
    free(frame);
    kw_free(&r0);
    kw_free(&r1);
}

/* gzip batches of 40 x 100 bytes (4 KB inflated each), a 5000-byte budget. */
static void test_inflated_budget(void)
{
    kwriter_t r0, r1;
    kw_init(&r0, 256);
    kw_init(&r1, 256);
    put_batch(&r0, 0, 40, 1, 100);
    size_t one = r0.len;
    put_batch(&r0, 40, 40, 1, 100);
    put_batch(&r1, 0, 1, 0, 8);
    size_t len;
    uint8_t *frame = response(&r0, &r1, &len);
    struct env e;
    env_open(&e, "pass", &(dedup_test_hooks_t){.job_max_inflated = 5000});
    kfetch_resp_t a;
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        CHECK(bytes_eq(a.topics[0].partitions[0].records, &r0, one));
        CHECK_EQ(a.topics[0].partitions[1].records.len, 0);
        kfetch_resp_free(&a);
    }
    env_close(&e);

    /* 1000 bytes: the first batch alone passes it, and is taken. */
    env_open(&e, "block", &(dedup_test_hooks_t){.job_max_inflated = 1000});
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        CHECK(bytes_eq(a.topics[0].partitions[0].records, &r0, one));
        kfetch_resp_free(&a);
    }
    env_close(&e);
    free(frame);
    kw_free(&r0);
    kw_free(&r1);
}

/* Held bytes at their bound: block answers error 6, pass passes. */
static void test_held_bound(void)
{
    kwriter_t r0, r1;
    kw_init(&r0, 256);
    kw_init(&r1, 256);
    put_batch(&r0, 0, 3, 0, 8);
    put_batch(&r1, 0, 2, 0, 8);
    size_t len;
    uint8_t *frame = response(&r0, &r1, &len);
    struct env e;
    env_open(&e, "block", &(dedup_test_hooks_t){.max_held_bytes = 100});
    uint64_t errs = g_metrics.dedup_error_partitions;
    kfetch_resp_t a;
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(a.topics[0].partitions[i].error_code, 6);
            CHECK_EQ(a.topics[0].partitions[i].records.len, 0);
        }
        CHECK_EQ(a.topics[1].partitions[0].error_code, 0);
        CHECK(bytes_eq(a.topics[1].partitions[0].records, &r1, r1.len));
        CHECK_EQ(g_metrics.dedup_error_partitions, errs + 2);
        kfetch_resp_free(&a);
    }
    env_close(&e);

    /* The frame fits, its decoded batch does not: the same. */
    env_open(&e, "block", &(dedup_test_hooks_t){.max_held_bytes = len + 50});
    CHECK_EQ(take(&e, frame, len, &a), 1);
    if (got.n == 1) {
        CHECK_EQ(a.topics[0].partitions[0].error_code, 6);
        kfetch_resp_free(&a);
    }
    env_close(&e);

    env_open(&e, "pass", &(dedup_test_hooks_t){.max_held_bytes = 100});
    uint64_t unchecked = g_metrics.dedup_resp_unchecked;
    CHECK_EQ(take(&e, frame, len, &a), 0);
    CHECK_EQ(got.n, 0);
    CHECK_EQ(g_metrics.dedup_resp_unchecked, unchecked + 1);
    env_close(&e);
    free(frame);
    kw_free(&r0);
    kw_free(&r1);
}

/* ---------------------------------------------------------------- dlq */

static const char dlq_yaml[] = "service: svc\n"
                               "upstream:\n  mock_brokers: 1\n"
                               "redis:\n  url: redis://127.0.0.1:1\n"
                               "topics:\n"
                               "  - {match: \"q.*\", delivery: at-least-once,"
                               " dlq: {max_deliveries: 3}}\n";

#define DLQ_TS 1700000000000ll

/* What the dead-letter writer (the dlq_send hook) was given, copied. */
static struct {
    int sends, cancels, refuse;
    uint64_t id, cancelled;
    void (*cb)(void *cbarg, uint64_t id, int err, const char *errstr, int64_t offset);
    void *cbarg;
    char topic[64], key[16], value[16], hname[16], hvalue[16];
    int32_t partition;
    size_t key_len, value_len, nheaders, hvalue_len;
    int64_t timestamp;
    /* the kafka_dlt-* headers, decoded */
    int dlt_bad;
    char otopic[64], otype[16], reason[96], fqcn[32];
    int32_t opartition;
    int64_t ooffset, otimestamp;
} dq;

static uint64_t clock_ms;

static uint64_t on_clock(void *arg)
{
    (void)arg;
    return clock_ms;
}

/* Copies v[0..n) as a C string into out (cap bytes). */
static void cstr(char *out, size_t cap, const void *v, size_t n)
{
    n = n < cap - 1 ? n : cap - 1;
    if (v)
        memcpy(out, v, n);
    out[v ? n : 0] = 0;
}

static uint64_t on_dlq_send(void *arg, const dlqw_record_t *r,
                            void (*cb)(void *cbarg, uint64_t id, int err, const char *errstr,
                                       int64_t offset),
                            void *cbarg)
{
    (void)arg;
    dq.sends++;
    cstr(dq.topic, sizeof(dq.topic), r->topic, strlen(r->topic));
    dq.partition = r->partition;
    cstr(dq.key, sizeof(dq.key), r->key, r->key_len);
    dq.key_len = r->key_len;
    cstr(dq.value, sizeof(dq.value), r->value, r->value_len);
    dq.value_len = r->value_len;
    dq.timestamp = r->timestamp;
    dq.nheaders = r->nheaders;
    if (r->nheaders > 0) {
        cstr(dq.hname, sizeof(dq.hname), r->headers[0].name, r->headers[0].name_len);
        cstr(dq.hvalue, sizeof(dq.hvalue), r->headers[0].value, r->headers[0].len);
        dq.hvalue_len = r->headers[0].len;
    }
    kdlt_origin_t o;
    memset(&o, 0, sizeof(o));
    dq.dlt_bad = !r->dlt;
    for (size_t i = 0; r->dlt && i < r->dlt->n; i++) {
        const kdlt_header_t *h = &r->dlt->h[i];
        if (kdlt_header_parse(h->name, strlen(h->name), h->value, h->len, &o) != 1)
            dq.dlt_bad = 1;
        if (strcmp(h->name, KDLT_EXCEPTION_FQCN) == 0)
            cstr(dq.fqcn, sizeof(dq.fqcn), h->value, h->len);
        if (strcmp(h->name, KDLT_ORIGINAL_TIMESTAMP_TYPE) == 0)
            cstr(dq.otype, sizeof(dq.otype), h->value, h->len);
    }
    cstr(dq.otopic, sizeof(dq.otopic), o.topic, o.topic_len);
    cstr(dq.reason, sizeof(dq.reason), o.reason, o.reason_len);
    dq.opartition = o.partition;
    dq.ooffset = o.offset;
    dq.otimestamp = o.timestamp;
    dq.cb = cb;
    dq.cbarg = cbarg;
    return dq.id = dq.refuse ? 0 : 1000 + (uint64_t)dq.sends;
}

static void on_dlq_cancel(void *arg, uint64_t id)
{
    (void)arg;
    dq.cancels++;
    dq.cancelled = id;
}

/* One batch at offset 0 of n records: key "k<i>", value "v<i>", header
 * "h" = "x<i>", CreateTime DLQ_TS + 10 * i. */
static void put_kv_batch(kwriter_t *w, int32_t n)
{
    kwriter_t p, r;
    kw_init(&p, 256);
    kw_init(&r, 64);
    for (int32_t i = 0; i < n; i++) {
        char k[16], v[16], x[16];
        snprintf(k, sizeof(k), "k%d", (int)i);
        snprintf(v, sizeof(v), "v%d", (int)i);
        snprintf(x, sizeof(x), "x%d", (int)i);
        kw_reset(&r);
        kw_i8(&r, 0);
        kw_varlong(&r, 10 * i);
        kw_varint(&r, i);
        kw_varint(&r, (int32_t)strlen(k));
        kw_raw(&r, k, strlen(k));
        kw_varint(&r, (int32_t)strlen(v));
        kw_raw(&r, v, strlen(v));
        kw_varint(&r, 1);
        kw_varint(&r, 1);
        kw_raw(&r, "h", 1);
        kw_varint(&r, (int32_t)strlen(x));
        kw_raw(&r, x, strlen(x));
        kw_varint(&p, (int32_t)r.len);
        kw_raw(&p, r.buf, r.len);
    }
    krecord_batch_t h = {0};
    h.last_offset_delta = n - 1;
    h.base_timestamp = DLQ_TS;
    h.max_timestamp = DLQ_TS + 10 * (n - 1);
    h.producer_id = -1;
    h.producer_epoch = -1;
    h.base_sequence = -1;
    CHECK(krecords_write_batch(w, &h, 0, n, p.buf, p.len) == 0);
    kw_free(&p);
    kw_free(&r);
}

/* A Fetch v11 response of q.a partition `partition` holding recs. */
static uint8_t *dlq_response_of(const kwriter_t *recs, int32_t partition, size_t *len)
{
    kfetch_partition_t part = {0};
    part.index = partition;
    part.high_watermark = 100;
    part.last_stable_offset = 100;
    part.naborted = -1;
    part.preferred_read_replica = -1;
    part.records = (kbytes_t){recs->buf, (int32_t)recs->len};
    kfetch_topic_t topic = {{"q.a", 3}, 1, &part, {NULL, 0}};
    kfetch_resp_t resp = {0};
    resp.correlation_id = 9;
    resp.ntopics = 1;
    resp.topics = &topic;
    kwriter_t w;
    kw_init(&w, 256);
    CHECK(kfetch_resp_write(&w, 11, &resp) == 0);
    *len = w.len - 4;
    uint8_t *frame = malloc(*len);
    memcpy(frame, w.buf + 4, *len);
    kw_free(&w);
    return frame;
}

static uint8_t *dlq_response(const kwriter_t *recs, size_t *len)
{
    return dlq_response_of(recs, 0, len);
}

/* 1 if b is a response's pipeline of questions (SET ... NX GET). */
static int is_claim(const redisc_batch_t *b)
{
    const char *const *argv;
    const size_t *lens;
    return redisc_batch_count(b) > 0 && fake_redisc_cmd(b, 0, &argv, &lens) == 7 &&
           strcmp(argv[0], "SET") == 0 && strcmp(argv[3], "NX") == 0 && strcmp(argv[4], "GET") == 0;
}

/* Answers the newest pipeline of questions in flight, of 5 records of q.a partition
 * `partition`: "p:q.a:<partition>:<offset>:<n>" (pending here, delivered n
 * times), n = head for offset 0, times for the others; checks its keys
 * are by position. */
static void answer_delivered_of(int32_t partition, int head, int times)
{
    size_t i = fake_redisc_unanswered();
    while (i > 0 && !is_claim(fake_redisc_unanswered_batch(i - 1, NULL)))
        i--;
    CHECK(i > 0);
    if (i-- == 0)
        return;
    const redisc_batch_t *b = fake_redisc_unanswered_batch(i, NULL);
    size_t n = redisc_batch_count(b);
    CHECK_EQ(n, 5);
    redisc_reply_t rep[5];
    char vals[5][64];
    memset(rep, 0, sizeof(rep));
    for (size_t k = 0; k < n && k < 5; k++) {
        const char *const *argv;
        const size_t *lens;
        CHECK_EQ(fake_redisc_cmd(b, k, &argv, &lens), 7);
        char key[64], val[64];
        snprintf(key, sizeof(key), "eosproxy:svc:@pos q.a/%d/%zu", (int)partition, k);
        snprintf(val, sizeof(val), "p:q.a:%d:%zu:1", (int)partition, k);
        CHECK_STR(argv[0], "SET");
        CHECK_STR(argv[1], key);
        CHECK_STR(argv[2], val);
        snprintf(vals[k], sizeof(vals[k]), "p:q.a:%d:%zu:%d", (int)partition, k, k ? times : head);
        rep[k] =
            (redisc_reply_t){.type = REDISC_REPLY_STRING, .str = vals[k], .len = strlen(vals[k])};
    }
    fake_redisc_answer(i, REDISC_OK, rep, n);
}

static void answer_delivered(int times)
{
    answer_delivered_of(0, times, times);
}

/* 1 if a pipeline in flight holds "SET key x PX <7 days>". */
static int dead_mark_sent(const char *key)
{
    for (size_t i = 0; i < fake_redisc_unanswered(); i++) {
        const redisc_batch_t *b = fake_redisc_unanswered_batch(i, NULL);
        for (size_t k = 0; k < redisc_batch_count(b); k++) {
            const char *const *argv;
            const size_t *lens;
            if (fake_redisc_cmd(b, k, &argv, &lens) == 5 && strcmp(argv[0], "SET") == 0 &&
                strcmp(argv[1], key) == 0 && strcmp(argv[2], "x") == 0 &&
                strcmp(argv[4], "604800000") == 0)
                return 1;
        }
    }
    return 0;
}

/* The delivery count the newest redelivery compare-and-set (EVAL) in
 * flight writes for offset k of q.a partition `partition`, or -1 when
 * none is sent for it. */
static int redelivery_count_of(int32_t partition, size_t k)
{
    char key[64], want[64];
    snprintf(key, sizeof(key), "eosproxy:svc:@pos q.a/%d/%zu", (int)partition, k);
    int n = snprintf(want, sizeof(want), "p:q.a:%d:%zu:", (int)partition, k);
    for (size_t i = fake_redisc_unanswered(); i-- > 0;) {
        const redisc_batch_t *b = fake_redisc_unanswered_batch(i, NULL);
        for (size_t c = 0; c < redisc_batch_count(b); c++) {
            const char *const *argv;
            const size_t *lens;
            if (fake_redisc_cmd(b, c, &argv, &lens) == 7 && strcmp(argv[0], "EVAL") == 0 &&
                strcmp(argv[3], key) == 0 && strncmp(argv[5], want, (size_t)n) == 0)
                return atoi(argv[5] + n);
        }
    }
    return -1;
}

static int redelivery_count(size_t k)
{
    return redelivery_count_of(0, k);
}

/* The write dlq_send got is offset 0 of q.a as Spring would write it. */
static void check_dlq_copy(void)
{
    CHECK_STR(dq.topic, "q.a.DLT");
    CHECK_EQ(dq.partition, -1);
    CHECK(dq.key_len == 2 && strcmp(dq.key, "k0") == 0);
    CHECK(dq.value_len == 2 && strcmp(dq.value, "v0") == 0);
    CHECK_EQ(dq.nheaders, 1);
    CHECK(strcmp(dq.hname, "h") == 0 && dq.hvalue_len == 2 && strcmp(dq.hvalue, "x0") == 0);
    CHECK_EQ(dq.timestamp, DLQ_TS);
    CHECK(!dq.dlt_bad);
    CHECK_STR(dq.otopic, "q.a");
    CHECK_EQ(dq.opartition, 0);
    CHECK_EQ(dq.ooffset, 0);
    CHECK_EQ(dq.otimestamp, DLQ_TS);
    CHECK_STR(dq.otype, "CreateTime");
    CHECK_STR(dq.fqcn, KDLT_FQCN_VALUE);
    CHECK_STR(dq.reason, "delivered 3 times without a commit past it");
}

enum dlq_outcome { DLQ_ACK, DLQ_FAIL, DLQ_REFUSE, DLQ_GIVE_UP, DLQ_BELOW };

/*
 * Records at offsets 0..4 of q.a (dlq, max_deliveries 3, no dedup), each
 * delivered 3 times at its position already: only offset 0 goes to the
 * DLQ; the answer waits for the write, then lacks offset 0 if it was
 * acked, and holds all five otherwise. DLQ_BELOW: delivered twice, no
 * write.
 */
static void test_dlq_poison(enum dlq_outcome how)
{
    kwriter_t recs;
    kw_init(&recs, 256);
    put_kv_batch(&recs, 5);
    size_t len;
    uint8_t *frame = dlq_response(&recs, &len);
    struct env e;
    memset(&dq, 0, sizeof(dq));
    dq.refuse = how == DLQ_REFUSE;
    clock_ms = 1000;
    int64_t inflight = g_metrics.dlq_inflight;
    uint64_t skipped = g_metrics.dlq_skipped, failures = g_metrics.dlq_write_failures,
             refused = g_metrics.dlq_refused;
    env_open_yaml(&e, dlq_yaml,
                  &(dedup_test_hooks_t){
                      .dlq_send = on_dlq_send, .dlq_cancel = on_dlq_cancel, .now_ms = on_clock});
    fake_redisc_set_up(1);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(dedup_fetch_response(e.d, 11, frame, len, 1, 42), 1);
    answer_delivered(how == DLQ_BELOW ? 2 : 3);
    event_base_loop(e.base, EVLOOP_NONBLOCK); /* the replies: offset 0 is poison */
    CHECK_EQ(dq.sends, how != DLQ_BELOW);     /* of offset 0 only */
    /* Only the partition's first record counts a delivery; the others keep
     * their counts (a consumer failing on offset 0 never reached them). */
    CHECK_EQ(redelivery_count(0),
             how == DLQ_BELOW ? 3 : -1); /* poison: no count, the write decides */
    for (size_t k = 1; k < 5; k++)
        CHECK_EQ(redelivery_count(k), how == DLQ_BELOW ? 2 : 3);
    if (dq.sends == 1)
        check_dlq_copy();
    if (how == DLQ_REFUSE) {
        CHECK_EQ(g_metrics.dlq_refused, refused + 1);
    } else if (how != DLQ_BELOW) {
        CHECK_EQ(got.n, 0); /* held until the write is answered */
        CHECK_EQ(g_metrics.dlq_inflight, inflight + 1);
        if (how == DLQ_ACK)
            dq.cb(dq.cbarg, dq.id, 0, NULL, 77);
        else if (how == DLQ_FAIL)
            dq.cb(dq.cbarg, dq.id, -192, "Local: Message timed out", -1);
        event_base_loop(e.base, EVLOOP_NONBLOCK);
        if (how == DLQ_GIVE_UP) {
            clock_ms += DLQW_TIMEOUT_MS + 5000 - 1;
            dedup_test_tick(e.d);
            event_base_loop(e.base, EVLOOP_NONBLOCK);
            CHECK_EQ(got.n, 0); /* not yet */
            clock_ms += 1;
            dedup_test_tick(e.d);
            CHECK(dq.cancels == 1 && dq.cancelled == dq.id);
            event_base_loop(e.base, EVLOOP_NONBLOCK);
        }
    }
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(g_metrics.dlq_inflight, inflight);

    /* The answer: offsets 1..4 after an ack, 0..4 otherwise. */
    CHECK_EQ(got.n, 1);
    kfetch_resp_t a;
    if (got.n == 1 && kfetch_resp_parse(11, got.buf + 4, got.len - 4, &a, NULL) == 0) {
        const kfetch_partition_t *p = &a.topics[0].partitions[0];
        krecords_batch_t b;
        CHECK_EQ(p->error_code, 0);
        int decoded = krecords_decode(p->records.ptr, (size_t)p->records.len, &b, NULL) == 0;
        int32_t first = how == DLQ_ACK ? 1 : 0;
        CHECK(decoded && b.nrecords == 5 - first);
        for (int32_t i = 0; decoded && i < b.nrecords && i < 5; i++) {
            char v[16];
            snprintf(v, sizeof(v), "v%d", (int)(first + i));
            CHECK_EQ(b.hdr.base_offset + b.records[i].offset_delta, first + i);
            CHECK(b.records[i].value.len == 2 && memcmp(b.records[i].value.ptr, v, 2) == 0);
        }
        if (decoded)
            krecords_batch_free(&b);
        kfetch_resp_free(&a);
    }
    if (how == DLQ_ACK) {
        CHECK(dead_mark_sent("eosproxy:svc:@pos q.a/0/0")); /* dead-lettered: "x" */
        CHECK_EQ(g_metrics.dlq_skipped, skipped + 1);
    } else {
        CHECK(!dead_mark_sent("eosproxy:svc:@pos q.a/0/0"));
        CHECK_EQ(g_metrics.dlq_skipped, skipped);
    }
    if (how == DLQ_FAIL || how == DLQ_GIVE_UP)
        CHECK_EQ(g_metrics.dlq_write_failures, failures + 1);
    CHECK_EQ(dq.cancels, how == DLQ_GIVE_UP);
    env_close(&e);
    free(frame);
    kw_free(&recs);
}

/* An OffsetCommit v2 of q.a partition `partition` at offset, and its
 * answer without error, as the proxy passes them to the engine. */
static void commit_at(struct env *e, int32_t partition, int64_t offset, int32_t corr)
{
    kwriter_t w;
    kw_init(&w, 128);
    kproto_write_request_header(&w, KAPI_OffsetCommit, 2, corr, (kstr_t){"t", 1});
    kw_str(&w, 0, "g", 1);
    kw_i32(&w, 1);         /* GenerationId */
    kw_str(&w, 0, "m", 1); /* MemberId */
    kw_i64(&w, -1);        /* RetentionTimeMs */
    kw_i32(&w, 1);
    kw_str(&w, 0, "q.a", 3);
    kw_i32(&w, 1);
    kw_i32(&w, partition);
    kw_i64(&w, offset);
    kw_str(&w, 0, "", 0);
    CHECK(!w.err);
    dedup_commit_request(e->d, KAPI_OffsetCommit, 2, w.buf, w.len, 1, corr);
    kw_reset(&w);
    kw_i32(&w, corr);
    kw_i32(&w, 1);
    kw_str(&w, 0, "q.a", 3);
    kw_i32(&w, 1);
    kw_i32(&w, partition);
    kw_i16(&w, 0);
    CHECK(!w.err);
    dedup_commit_response(e->d, KAPI_OffsetCommit, 2, w.buf, w.len, 1, corr);
    kw_free(&w);
}

/* Takes the response frame of partition `partition`, its first record
 * delivered `head` times and the others 3 times; runs the loop. */
static void deliver(struct env *e, const uint8_t *frame, size_t len, int32_t partition, int head)
{
    got.n = 0;
    CHECK_EQ(dedup_fetch_response(e->d, 11, frame, len, 1, 42), 1);
    answer_delivered_of(partition, head, 3);
    event_base_loop(e->base, EVLOOP_NONBLOCK);
}

/*
 * A consumer fails on offset 0 of partition 0; partition 1, which it
 * never reached, comes in responses of its own (the Java client fetches a
 * partition without a committed offset apart), its first record delivered
 * as often. Offset 0 of partition 0 is moved; partition 1's first record
 * then starts counting again, although the consumer committed on the
 * topic meanwhile, and is moved only after max_deliveries more deliveries
 * (the consumer fails on it too).
 */
static void test_dlq_restart_after_dead_letter(void)
{
    kwriter_t recs;
    kw_init(&recs, 256);
    put_kv_batch(&recs, 5);
    size_t l0, l1;
    uint8_t *f0 = dlq_response_of(&recs, 0, &l0), *f1 = dlq_response_of(&recs, 1, &l1);
    struct env e;
    memset(&dq, 0, sizeof(dq));
    clock_ms = 1000;
    env_open_yaml(&e, dlq_yaml,
                  &(dedup_test_hooks_t){
                      .dlq_send = on_dlq_send, .dlq_cancel = on_dlq_cancel, .now_ms = on_clock});
    fake_redisc_set_up(1);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    deliver(&e, f0, l0, 0, 3);
    CHECK(dq.sends == 1 && dq.opartition == 0 && dq.ooffset == 0);
    dq.cb(dq.cbarg, dq.id, 0, NULL, 0);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(got.n, 1);
    commit_at(&e, 0, 5, 7); /* the consumer moved on past partition 0 */
    clock_ms += 100;
    uint64_t restarts = g_metrics.dlq_restarts;
    deliver(&e, f1, l1, 1, 3); /* due since before the dead-letter */
    CHECK_EQ(g_metrics.dlq_restarts, restarts + 1);
    CHECK_EQ(dq.sends, 1);
    CHECK_EQ(got.n, 1);
    CHECK_EQ(redelivery_count_of(1, 0), 1); /* counting again */
    CHECK_EQ(redelivery_count_of(1, 1), 3);
    deliver(&e, f1, l1, 1, 1);
    deliver(&e, f1, l1, 1, 2);
    CHECK_EQ(redelivery_count_of(1, 0), 3);
    CHECK_EQ(dq.sends, 1);
    deliver(&e, f1, l1, 1, 3); /* failed on max_deliveries times more: moved */
    CHECK(dq.sends == 2 && dq.opartition == 1 && dq.ooffset == 0);
    CHECK_EQ(g_metrics.dlq_restarts, restarts + 1); /* once per dead-letter */
    dq.cb(dq.cbarg, dq.id, 0, NULL, 1);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(got.n, 1);
    env_close(&e);
    free(f0);
    free(f1);
    kw_free(&recs);
}

/* The engine freed while a write is out: the write is cancelled, no
 * answer comes, the gauge returns. */
static void test_dlq_free_waiting(void)
{
    kwriter_t recs;
    kw_init(&recs, 256);
    put_kv_batch(&recs, 5);
    size_t len;
    uint8_t *frame = dlq_response(&recs, &len);
    struct env e;
    memset(&dq, 0, sizeof(dq));
    int64_t inflight = g_metrics.dlq_inflight;
    env_open_yaml(&e, dlq_yaml,
                  &(dedup_test_hooks_t){.dlq_send = on_dlq_send, .dlq_cancel = on_dlq_cancel});
    fake_redisc_set_up(1);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(dedup_fetch_response(e.d, 11, frame, len, 1, 42), 1);
    answer_delivered(3);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    CHECK_EQ(dq.sends, 1);
    env_close(&e);
    CHECK(dq.cancels == 1 && dq.cancelled == dq.id);
    CHECK_EQ(got.n, 0);
    CHECK_EQ(g_metrics.dlq_inflight, inflight);
    free(frame);
    kw_free(&recs);
}

int main(void)
{
    log_setup(LOG_ERROR, 0); /* Redis down, writes failing: on purpose */
    test_record_budget();
    test_inflated_budget();
    test_held_bound();
    test_dlq_poison(DLQ_ACK);
    test_dlq_poison(DLQ_FAIL);
    test_dlq_poison(DLQ_REFUSE);
    test_dlq_poison(DLQ_GIVE_UP);
    test_dlq_poison(DLQ_BELOW);
    test_dlq_restart_after_dead_letter();
    test_dlq_free_waiting();
    free(got.buf);
    return unit_done("dedup");
}
