/*
 * kfetch.c - FetchResponse v4..v12 decoder and encoder for consumer dedup.
 * Field layout from Kafka's FetchResponse.json
 * (clients/src/main/resources/common/message/). See kfetch.h.
 */
#include "kfetch.h"

#include <stdlib.h>
#include <string.h>

#define KFETCH_FLEX_VERSION 12

/* Smallest encodings, used to bound array counts by the bytes left. */
#define MIN_TOPIC(flex) ((flex) ? 3u : 6u)     /* name, partitions (, tags) */
#define MIN_ABORTED(flex) ((flex) ? 17u : 16u) /* producer id, first offset (, tags) */
/* index, error, high watermark, LSO, aborted, records (, tags) */
#define MIN_PARTITION(flex) ((flex) ? 25u : 30u)

static int version_ok(int16_t ver)
{
    return ver >= KFETCH_MIN_VERSION && ver <= KFETCH_MAX_VERSION;
}

static int is_flex(int16_t ver)
{
    return ver >= KFETCH_FLEX_VERSION;
}

/* A TAGGED_FIELDS section, kept as its raw bytes (flex only). */
static kbytes_t read_tags(kreader_t *r, int flex)
{
    kbytes_t t = {NULL, -1};
    if (!flex || !kr_ok(r))
        return t;
    size_t start = r->off;
    kr_tags(r);
    if (kr_ok(r)) {
        t.ptr = r->buf + start;
        t.len = (int32_t)(r->off - start);
    }
    return t;
}

/* AbortedTransaction: ProducerId INT64, FirstOffset INT64. */
static void parse_aborted(kreader_t *r, int flex, kfetch_aborted_t *a)
{
    a->producer_id = kr_i64(r);
    a->first_offset = kr_i64(r);
    a->tags = read_tags(r, flex);
}

/*
 * FetchablePartitionResponse (PartitionData):
 *
 *   Partition INT32
 *   ErrorCode INT16
 *   HighWatermark INT64
 *   LastStableOffset INT64                   (v4+)
 *   LogStartOffset INT64                     (v5+)
 *   AbortedTransactions NULLABLE [ProducerId INT64, FirstOffset INT64] (v4+)
 *   PreferredReadReplica INT32               (v11+)
 *   RecordSet NULLABLE RECORDS
 *   TAGGED_FIELDS (v12+: DivergingEpoch 0, CurrentLeader 1, SnapshotId 2)
 */
static void parse_partition(kreader_t *r, int16_t ver, kfetch_partition_t *p)
{
    int flex = is_flex(ver);
    void *arr;
    p->index = kr_i32(r);
    p->error_code = kr_i16(r);
    p->high_watermark = kr_i64(r);
    p->last_stable_offset = kr_i64(r);
    p->log_start_offset = ver >= 5 ? kr_i64(r) : -1;
    p->naborted = kr_array_alloc(r, flex, 1, MIN_ABORTED(flex), sizeof(kfetch_aborted_t), &arr);
    p->aborted = arr;
    for (int32_t i = 0; i < p->naborted && kr_ok(r); i++)
        parse_aborted(r, flex, &p->aborted[i]);
    p->preferred_read_replica = ver >= 11 ? kr_i32(r) : -1;
    p->records = kr_bytes(r, flex);
    p->new_records.ptr = NULL;
    p->new_records.len = -1;
    p->tags = read_tags(r, flex);
}

/* FetchableTopicResponse: Topic STRING, PartitionResponses [...]. */
static void parse_topic(kreader_t *r, int16_t ver, kfetch_topic_t *t)
{
    int flex = is_flex(ver);
    void *arr;
    t->name = kr_str_nn(r, flex);
    t->npartitions =
        kr_array_alloc(r, flex, 0, MIN_PARTITION(flex), sizeof(kfetch_partition_t), &arr);
    t->partitions = arr;
    for (int32_t i = 0; i < t->npartitions && kr_ok(r); i++)
        parse_partition(r, ver, &t->partitions[i]);
    t->tags = read_tags(r, flex);
}

/*
 * FetchResponse v4..v12 (v12 is flexible: COMPACT_ lengths and a
 * TAGGED_FIELDS section closing every struct, the body and the header):
 *
 *   Response header: CorrelationId INT32 (v12: + TAGGED_FIELDS)
 *   ThrottleTimeMs INT32
 *   ErrorCode INT16                          (v7+)
 *   SessionId INT32                          (v7+)
 *   Responses [ Topic STRING
 *               PartitionResponses [FetchablePartitionResponse] ]
 */
int kfetch_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kfetch_resp_t *resp,
                      size_t *err_off)
{
    kreader_t r;
    void *arr;
    memset(resp, 0, sizeof(*resp));
    kr_init(&r, frame, len);
    if (!version_ok(ver))
        kr_fail(&r, KR_EINVALID);
    int flex = is_flex(ver);
    resp->correlation_id = kr_i32(&r);
    resp->header_tags = read_tags(&r, flex);
    resp->throttle_time_ms = kr_i32(&r);
    if (ver >= 7) {
        resp->error_code = kr_i16(&r);
        resp->session_id = kr_i32(&r);
    }
    resp->ntopics = kr_array_alloc(&r, flex, 0, MIN_TOPIC(flex), sizeof(kfetch_topic_t), &arr);
    resp->topics = arr;
    for (int32_t i = 0; i < resp->ntopics && kr_ok(&r); i++)
        parse_topic(&r, ver, &resp->topics[i]);
    resp->tags = read_tags(&r, flex);
    kr_expect_end(&r);
    int rc = kr_result(&r, err_off);
    if (rc)
        kfetch_resp_free(resp);
    return rc;
}

void kfetch_resp_free(kfetch_resp_t *resp)
{
    if (!resp)
        return;
    for (int32_t i = 0; i < resp->ntopics && resp->topics; i++) {
        kfetch_topic_t *t = &resp->topics[i];
        for (int32_t j = 0; j < t->npartitions && t->partitions; j++)
            free(t->partitions[j].aborted);
        free(t->partitions);
    }
    free(resp->topics);
    memset(resp, 0, sizeof(*resp));
}

/* ---- write ---- */

static int bytes_ok(kbytes_t b)
{
    return b.len == -1 || (b.len >= 0 && (b.ptr || b.len == 0));
}

static int partition_ok(const kfetch_partition_t *p)
{
    if (p->naborted < -1 || (p->naborted > 0 && !p->aborted))
        return 0;
    if (p->new_records.ptr && p->new_records.len < 0)
        return 0;
    return bytes_ok(p->records);
}

/* Everything the encoder needs from resp is in range (nothing written yet). */
static int resp_ok(const kfetch_resp_t *resp)
{
    if (resp->ntopics < 0 || (resp->ntopics && !resp->topics))
        return 0;
    for (int32_t i = 0; i < resp->ntopics; i++) {
        const kfetch_topic_t *t = &resp->topics[i];
        if (t->name.len < 0 || t->name.len > INT16_MAX || (t->name.len && !t->name.ptr) ||
            t->npartitions < 0 || (t->npartitions && !t->partitions))
            return 0;
        for (int32_t j = 0; j < t->npartitions; j++)
            if (!partition_ok(&t->partitions[j]))
                return 0;
    }
    return 1;
}

/* Raw tags when kept (and well-formed enough to be non-empty), else an
 * empty section; nothing below v12. */
static void write_tags(kwriter_t *w, int flex, kbytes_t tags)
{
    if (!flex)
        return;
    if (tags.ptr && tags.len > 0)
        kw_raw(w, tags.ptr, (size_t)tags.len);
    else
        kw_tags_empty(w);
}

static void write_partition(kwriter_t *w, int16_t ver, const kfetch_partition_t *p)
{
    int flex = is_flex(ver);
    kw_i32(w, p->index);
    kw_i16(w, p->error_code);
    kw_i64(w, p->high_watermark);
    kw_i64(w, p->last_stable_offset);
    if (ver >= 5)
        kw_i64(w, p->log_start_offset);
    kw_array(w, flex, p->naborted);
    for (int32_t k = 0; k < p->naborted; k++) {
        kw_i64(w, p->aborted[k].producer_id);
        kw_i64(w, p->aborted[k].first_offset);
        write_tags(w, flex, p->aborted[k].tags);
    }
    if (ver >= 11)
        kw_i32(w, p->preferred_read_replica);
    kbytes_t rec = p->new_records.ptr ? p->new_records : p->records;
    kw_bytes(w, flex, rec.ptr, rec.len);
    write_tags(w, flex, p->tags);
}

int kfetch_resp_write(kwriter_t *w, int16_t ver, const kfetch_resp_t *resp)
{
    if (!version_ok(ver) || !resp_ok(resp))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0); /* size, patched below */
    kw_i32(w, resp->correlation_id);
    write_tags(w, flex, resp->header_tags);
    kw_i32(w, resp->throttle_time_ms);
    if (ver >= 7) {
        kw_i16(w, resp->error_code);
        kw_i32(w, resp->session_id);
    }
    kw_array(w, flex, resp->ntopics);
    for (int32_t i = 0; i < resp->ntopics; i++) {
        const kfetch_topic_t *t = &resp->topics[i];
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++)
            write_partition(w, ver, &t->partitions[j]);
        write_tags(w, flex, t->tags);
    }
    write_tags(w, flex, resp->tags);
    return kw_finish_frame(w, start);
}

/* ---- FetchRequest: parse ---- */

/* Smallest request encodings, to bound array counts by the bytes left. */
#define MIN_REQ_TOPIC(flex)                                                                        \
    ((flex) ? 3u : 6u) /* topic, partitions (, tags)                                               \
                        */
#define MIN_FORGOTTEN(flex)                                                                        \
    ((flex) ? 3u : 6u) /* topic, partitions (, tags)                                               \
                        */

/* Smallest FetchPartition of ver: partition, current leader epoch (9+),
 * fetch offset, last fetched epoch (12+), log start offset (5+), max
 * bytes, tags (12+). */
static size_t min_req_partition(int16_t ver)
{
    size_t n = 4 + 8 + 4;
    if (ver >= 9)
        n += 4;
    if (ver >= 12)
        n += 4 + 1;
    if (ver >= 5)
        n += 8;
    return n;
}

static void parse_req_partition(kreader_t *r, int16_t ver, kfetch_req_partition_t *p)
{
    p->partition = kr_i32(r);
    p->current_leader_epoch = ver >= 9 ? kr_i32(r) : -1;
    p->fetch_offset = kr_i64(r);
    p->last_fetched_epoch = ver >= 12 ? kr_i32(r) : -1;
    p->log_start_offset = ver >= 5 ? kr_i64(r) : -1;
    p->partition_max_bytes = kr_i32(r);
    p->tags = read_tags(r, is_flex(ver));
}

/* FetchTopic: Topic STRING, Partitions [FetchPartition]. */
static void parse_req_topic(kreader_t *r, int16_t ver, kfetch_req_topic_t *t)
{
    int flex = is_flex(ver);
    void *arr;
    t->topic = kr_str_nn(r, flex);
    t->npartitions =
        kr_array_alloc(r, flex, 0, min_req_partition(ver), sizeof(kfetch_req_partition_t), &arr);
    t->partitions = arr;
    for (int32_t i = 0; i < t->npartitions && kr_ok(r); i++)
        parse_req_partition(r, ver, &t->partitions[i]);
    t->tags = read_tags(r, flex);
}

/* ForgottenTopic: Topic STRING, Partitions [INT32]. */
static void parse_forgotten(kreader_t *r, int flex, kfetch_forgotten_t *f)
{
    void *arr;
    f->topic = kr_str_nn(r, flex);
    f->npartitions = kr_array_alloc(r, flex, 0, 4, sizeof(int32_t), &arr);
    f->partitions = arr;
    for (int32_t i = 0; i < f->npartitions && kr_ok(r); i++)
        f->partitions[i] = kr_i32(r);
    f->tags = read_tags(r, flex);
}

/*
 * FetchRequest v4..v12 body (v12 is flexible: COMPACT_ lengths and a
 * TAGGED_FIELDS section closing every struct and the body; the body's
 * ClusterId is tag 0):
 *
 *   ReplicaId INT32
 *   MaxWaitMs INT32
 *   MinBytes INT32
 *   MaxBytes INT32                           (v3+)
 *   IsolationLevel INT8                      (v4+)
 *   SessionId INT32                          (v7+)
 *   SessionEpoch INT32                       (v7+)
 *   Topics [ Topic STRING
 *            Partitions [ Partition INT32
 *                         CurrentLeaderEpoch INT32 (v9+)
 *                         FetchOffset INT64
 *                         LastFetchedEpoch INT32   (v12+)
 *                         LogStartOffset INT64     (v5+)
 *                         PartitionMaxBytes INT32 ] ]
 *   ForgottenTopicsData [ Topic STRING, Partitions [INT32] ] (v7+)
 *   RackId STRING                            (v11+)
 */
int kfetch_req_parse(int16_t ver, const uint8_t *body, size_t len, kfetch_req_t *req,
                     size_t *err_off)
{
    kreader_t r;
    void *arr;
    memset(req, 0, sizeof(*req));
    req->rack_id.len = -1;
    kr_init(&r, body, len);
    if (!version_ok(ver))
        kr_fail(&r, KR_EINVALID);
    int flex = is_flex(ver);
    req->replica_id = kr_i32(&r);
    req->max_wait_ms = kr_i32(&r);
    req->min_bytes = kr_i32(&r);
    req->max_bytes = kr_i32(&r);
    req->isolation_level = kr_i8(&r);
    if (ver >= 7) {
        req->session_id = kr_i32(&r);
        req->session_epoch = kr_i32(&r);
    }
    req->ntopics =
        kr_array_alloc(&r, flex, 0, MIN_REQ_TOPIC(flex), sizeof(kfetch_req_topic_t), &arr);
    req->topics = arr;
    for (int32_t i = 0; i < req->ntopics && kr_ok(&r); i++)
        parse_req_topic(&r, ver, &req->topics[i]);
    if (ver >= 7) {
        req->nforgotten =
            kr_array_alloc(&r, flex, 0, MIN_FORGOTTEN(flex), sizeof(kfetch_forgotten_t), &arr);
        req->forgotten = arr;
        for (int32_t i = 0; i < req->nforgotten && kr_ok(&r); i++)
            parse_forgotten(&r, flex, &req->forgotten[i]);
    }
    if (ver >= 11)
        req->rack_id = kr_str_nn(&r, flex);
    req->tags = read_tags(&r, flex);
    kr_expect_end(&r);
    int rc = kr_result(&r, err_off);
    if (rc)
        kfetch_req_free(req);
    return rc;
}

void kfetch_req_free(kfetch_req_t *req)
{
    if (!req)
        return;
    for (int32_t i = 0; i < req->ntopics && req->topics; i++)
        free(req->topics[i].partitions);
    free(req->topics);
    for (int32_t i = 0; i < req->nforgotten && req->forgotten; i++)
        free(req->forgotten[i].partitions);
    free(req->forgotten);
    memset(req, 0, sizeof(*req));
}

/* ---- FetchRequest: write ---- */

static int name_ok(kstr_t s)
{
    return s.len >= 0 && s.len <= INT16_MAX && (s.ptr || s.len == 0);
}

/* Everything the body encoder needs from req is in range. */
static int req_ok(int16_t ver, const kfetch_req_t *req)
{
    if (req->ntopics < 0 || (req->ntopics && !req->topics))
        return 0;
    if (ver >= 7 && (req->nforgotten < 0 || (req->nforgotten && !req->forgotten)))
        return 0;
    if (ver >= 11 && !name_ok(req->rack_id))
        return 0;
    for (int32_t i = 0; i < req->ntopics; i++) {
        const kfetch_req_topic_t *t = &req->topics[i];
        if (!name_ok(t->topic) || t->npartitions < 0 || (t->npartitions && !t->partitions))
            return 0;
    }
    for (int32_t i = 0; ver >= 7 && i < req->nforgotten; i++) {
        const kfetch_forgotten_t *f = &req->forgotten[i];
        if (!name_ok(f->topic) || f->npartitions < 0 || (f->npartitions && !f->partitions))
            return 0;
    }
    return 1;
}

static void write_req_topic(kwriter_t *w, int16_t ver, const kfetch_req_topic_t *t)
{
    int flex = is_flex(ver);
    kw_kstr(w, flex, t->topic);
    kw_array(w, flex, t->npartitions);
    for (int32_t j = 0; j < t->npartitions; j++) {
        const kfetch_req_partition_t *p = &t->partitions[j];
        kw_i32(w, p->partition);
        if (ver >= 9)
            kw_i32(w, p->current_leader_epoch);
        kw_i64(w, p->fetch_offset);
        if (ver >= 12)
            kw_i32(w, p->last_fetched_epoch);
        if (ver >= 5)
            kw_i64(w, p->log_start_offset);
        kw_i32(w, p->partition_max_bytes);
        write_tags(w, flex, p->tags);
    }
    write_tags(w, flex, t->tags);
}

static void write_forgotten(kwriter_t *w, int flex, const kfetch_forgotten_t *f)
{
    kw_kstr(w, flex, f->topic);
    kw_array(w, flex, f->npartitions);
    for (int32_t j = 0; j < f->npartitions; j++)
        kw_i32(w, f->partitions[j]);
    write_tags(w, flex, f->tags);
}

int kfetch_req_write_body(kwriter_t *w, int16_t ver, const kfetch_req_t *req)
{
    if (!version_ok(ver) || !req_ok(ver, req))
        return -1;
    int flex = is_flex(ver);
    kw_i32(w, req->replica_id);
    kw_i32(w, req->max_wait_ms);
    kw_i32(w, req->min_bytes);
    kw_i32(w, req->max_bytes);
    kw_i8(w, req->isolation_level);
    if (ver >= 7) {
        kw_i32(w, req->session_id);
        kw_i32(w, req->session_epoch);
    }
    kw_array(w, flex, req->ntopics);
    for (int32_t i = 0; i < req->ntopics; i++)
        write_req_topic(w, ver, &req->topics[i]);
    if (ver >= 7) {
        kw_array(w, flex, req->nforgotten);
        for (int32_t i = 0; i < req->nforgotten; i++)
            write_forgotten(w, flex, &req->forgotten[i]);
    }
    if (ver >= 11)
        kw_kstr(w, flex, req->rack_id);
    write_tags(w, flex, req->tags);
    return w->err ? -1 : 0;
}
