/*
 * kcommit.c - OffsetCommit / TxnOffsetCommit request and response parsing.
 * See kcommit.h for the grammars (Kafka's JSON message specs,
 * clients/src/main/resources/common/message/{Txn,}OffsetCommit*.json).
 *
 * One reader with a sticky error walks the body; every field of the
 * version is read in order under its version check, and the caller checks
 * the reader once at the end.
 */
#include "kcommit.h"

#include <stdlib.h>
#include <string.h>

#define API_OFFSET_COMMIT 8
#define API_TXN_OFFSET_COMMIT 28

/* Smallest encodings, bounding hostile array counts (kr_array). */
#define MIN_TOPIC(flex) ((flex) ? 3u : 6u) /* name, array (, tags) */
#define MIN_REQ_PARTITION 14u              /* index, offset, metadata */
#define MIN_RESP_PARTITION 6u              /* index, error */

/* Which API and version a body is: decides every optional field. */
struct shape {
    int txn; /* TxnOffsetCommit */
    int16_t ver;
    int flex;
};

/* Fills *s; -1 if (api_key, ver) is not one this codec knows. */
static int shape_of(int16_t api_key, int16_t ver, struct shape *s)
{
    if (api_key == API_OFFSET_COMMIT && ver >= 0 && ver <= KCOMMIT_OFFSET_MAX_VERSION) {
        *s = (struct shape){0, ver, ver >= KCOMMIT_OFFSET_FLEX_VERSION};
        return 0;
    }
    if (api_key == API_TXN_OFFSET_COMMIT && ver >= 0 && ver <= KCOMMIT_TXN_MAX_VERSION) {
        *s = (struct shape){1, ver, ver >= KCOMMIT_TXN_FLEX_VERSION};
        return 0;
    }
    return -1;
}

/* PartitionIndex CommittedOffset CommittedLeaderEpoch? CommitTimestamp?
 * CommittedMetadata (tags) */
static void req_partition(kreader_t *r, const struct shape *s, kcommit_partition_t *p)
{
    p->index = kr_i32(r);
    p->committed_offset = kr_i64(r);
    p->committed_leader_epoch = s->ver >= (s->txn ? 2 : 6) ? kr_i32(r) : -1;
    if (!s->txn && s->ver == 1)
        (void)kr_i64(r); /* CommitTimestamp */
    p->committed_metadata = kr_str(r, s->flex);
    kr_tags_if(r, s->flex);
}

/* PartitionIndex ErrorCode (tags) */
static void resp_partition(kreader_t *r, const struct shape *s, kcommit_partition_t *p)
{
    p->index = kr_i32(r);
    p->committed_offset = -1;
    p->committed_leader_epoch = -1;
    p->committed_metadata = (kstr_t){NULL, -1};
    p->error_code = kr_i16(r);
    kr_tags_if(r, s->flex);
}

/* Name [Partitions] (tags), for a request (is_req) or a response. */
static void topic(kreader_t *r, const struct shape *s, int is_req, kcommit_topic_t *t)
{
    t->name = kr_str_nn(r, s->flex);
    void *arr;
    t->npartitions = kr_array_alloc(r, s->flex, 0, is_req ? MIN_REQ_PARTITION : MIN_RESP_PARTITION,
                                    sizeof(kcommit_partition_t), &arr);
    t->partitions = arr;
    for (int32_t i = 0; i < t->npartitions && kr_ok(r); i++) {
        if (is_req)
            req_partition(r, s, &t->partitions[i]);
        else
            resp_partition(r, s, &t->partitions[i]);
    }
    kr_tags_if(r, s->flex);
}

/* [Topics] (tags), then the end of the body. */
static void topics(kreader_t *r, const struct shape *s, int is_req, kcommit_t *out)
{
    void *arr;
    out->ntopics = kr_array_alloc(r, s->flex, 0, MIN_TOPIC(s->flex), sizeof(kcommit_topic_t), &arr);
    out->topics = arr;
    for (int32_t i = 0; i < out->ntopics && kr_ok(r); i++)
        topic(r, s, is_req, &out->topics[i]);
    kr_tags_if(r, s->flex);
    if (kr_ok(r) && kr_remaining(r) != 0)
        kr_fail(r, KR_EINVALID); /* trailing bytes */
}

/* Common ending: on error frees out and reports where. */
static int finish(kreader_t *r, kcommit_t *out, size_t *err_off)
{
    int rc = kr_result(r, err_off);
    if (rc)
        kcommit_free(out);
    return rc;
}

int kcommit_req_parse(int16_t api_key, int16_t ver, const uint8_t *body, size_t len, kcommit_t *out,
                      size_t *err_off)
{
    memset(out, 0, sizeof(*out));
    out->throttle_time_ms = -1;
    struct shape s;
    if (shape_of(api_key, ver, &s)) {
        if (err_off)
            *err_off = 0;
        return KR_EINVALID;
    }
    kreader_t r;
    kr_init(&r, body, len);
    out->transactional_id = (kstr_t){NULL, -1};
    out->generation_id = -1;
    out->member_id = (kstr_t){"", 0};
    out->group_instance_id = (kstr_t){NULL, -1};
    if (s.txn) {
        out->transactional_id = kr_str_nn(&r, s.flex);
        out->group_id = kr_str_nn(&r, s.flex);
        (void)kr_i64(&r); /* ProducerId */
        (void)kr_i16(&r); /* ProducerEpoch */
        if (ver >= 3) {
            out->generation_id = kr_i32(&r);
            out->member_id = kr_str_nn(&r, s.flex);
            out->group_instance_id = kr_str(&r, s.flex);
        }
    } else {
        out->group_id = kr_str_nn(&r, s.flex);
        if (ver >= 1) {
            out->generation_id = kr_i32(&r);
            out->member_id = kr_str_nn(&r, s.flex);
        }
        if (ver >= 7)
            out->group_instance_id = kr_str(&r, s.flex);
        if (ver >= 2 && ver <= 4)
            (void)kr_i64(&r); /* RetentionTimeMs */
    }
    topics(&r, &s, 1, out);
    return finish(&r, out, err_off);
}

int kcommit_resp_parse(int16_t api_key, int16_t ver, const uint8_t *body, size_t len,
                       kcommit_t *out, size_t *err_off)
{
    memset(out, 0, sizeof(*out));
    out->group_id = (kstr_t){NULL, -1};
    out->throttle_time_ms = -1;
    struct shape s;
    if (shape_of(api_key, ver, &s)) {
        if (err_off)
            *err_off = 0;
        return KR_EINVALID;
    }
    kreader_t r;
    kr_init(&r, body, len);
    if (s.txn || ver >= 3)
        out->throttle_time_ms = kr_i32(&r);
    topics(&r, &s, 0, out);
    return finish(&r, out, err_off);
}

int kcommit_resp_write(kwriter_t *w, int16_t ver, int32_t correlation_id, const kcommit_t *c,
                       int16_t error_code)
{
    if (ver < 0 || ver > KCOMMIT_OFFSET_MAX_VERSION)
        return -1;
    int flex = ver >= KCOMMIT_OFFSET_FLEX_VERSION;
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, correlation_id);
    if (flex)
        kw_tags_empty(w);
    if (ver >= 3)
        kw_i32(w, 0); /* ThrottleTimeMs */
    kw_array(w, flex, c->ntopics);
    for (int32_t i = 0; i < c->ntopics; i++) {
        const kcommit_topic_t *t = &c->topics[i];
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++) {
            kw_i32(w, t->partitions[j].index);
            kw_i16(w, error_code);
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
    }
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

void kcommit_free(kcommit_t *c)
{
    if (!c)
        return;
    for (int32_t i = 0; c->topics && i < c->ntopics; i++)
        free(c->topics[i].partitions);
    free(c->topics);
    c->topics = NULL;
    c->ntopics = 0;
}

int kcommit_endtxn_req_parse(int16_t ver, const uint8_t *body, size_t len, kstr_t *txn_id,
                             int *committed)
{
    if (ver < 0 || ver > 5)
        return KR_EINVALID;
    int flex = ver >= 3;
    kreader_t r;
    kr_init(&r, body, len);
    *txn_id = kr_str_nn(&r, flex);
    (void)kr_i64(&r); /* ProducerId */
    (void)kr_i16(&r); /* ProducerEpoch */
    *committed = kr_i8(&r) != 0;
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    return r.err;
}

int kcommit_endtxn_resp_error(int16_t ver, const uint8_t *body, size_t len)
{
    (void)ver; /* ThrottleTimeMs then ErrorCode in every version */
    kreader_t r;
    kr_init(&r, body, len);
    (void)kr_i32(&r);
    int16_t e = kr_i16(&r);
    return kr_ok(&r) ? e : -1;
}
