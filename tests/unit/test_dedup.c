/*
 * test_dedup.c - the dedup engine's bounds on held Fetch responses
 * (dedup.c), end to end through dedup_fetch_response on a real event
 * loop. Redis is unreachable (redis.url points at a closed port), which
 * these cases never need: records without an eventId ask Redis nothing,
 * so every response is answered at the next loop turn. Answers and the
 * bounds come through the engine's test hooks.
 *
 * Pins: a response past its record budget is cut after the last batch
 * taken (no partial tail) and later dedup partitions come back without
 * records, error 0, counted; the first batch is always taken; a batch of
 * more records than the budget passes unchecked; the decompressed-bytes
 * budget cuts likewise; the held-bytes bound answers error 6 under
 * `block` and passes the response (counted) under `pass`.
 */
#include "config.h"
#include "dedup.h"
#include "kfetch.h"
#include "krecords.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "unit.h"

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

static void env_open(struct env *e, const char *outage, const dedup_test_hooks_t *limits)
{
    char y[512], err[256];
    snprintf(y, sizeof(y), yaml, outage);
    memset(e, 0, sizeof(*e));
    e->base = event_base_new();
    e->cfg = config_load_string("t.yaml", y, strlen(y), err, sizeof(err));
    CHECK(e->cfg != NULL);
    e->px.cfg = e->cfg;
    e->px.base = e->base;
    e->d = dedup_new(&e->px);
    CHECK(e->d != NULL);
    dedup_test_hooks_t h = *limits;
    h.answer = on_answer;
    dedup_set_test_hooks(e->d, &h);
    got.n = 0;
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

int main(void)
{
    log_setup(LOG_ERROR, 0); /* Redis is unreachable on purpose */
    test_record_budget();
    test_inflated_budget();
    test_held_bound();
    free(got.buf);
    return unit_done("dedup");
}
