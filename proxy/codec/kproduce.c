/*
 * kproduce.c - ProduceRequest / ProduceResponse v3..v9 decoders and
 * encoders, and the broker's per-partition records check.
 * Field layouts follow Kafka's ProduceRequest.json and ProduceResponse.json
 * (clients/src/main/resources/common/message/). See kproduce.h.
 */
#include "kproduce.h"

#include "kproto.h"

#include <stdlib.h>
#include <string.h>

/* Smallest encodings, used to bound array counts by the bytes left. */
#define MIN_TOPIC(flex) ((flex) ? 3u : 6u)     /* name, array (, tags) */
#define MIN_PARTITION(flex) ((flex) ? 6u : 8u) /* index, records (, tags) */
#define MIN_RECORD_ERROR(flex) 6u              /* index, message (, tags) */

static int version_ok(int16_t ver)
{
    return ver >= KPRODUCE_MIN_VERSION && ver <= KPRODUCE_MAX_VERSION;
}

static int is_flex(int16_t ver)
{
    return ver >= KPRODUCE_FLEX_VERSION;
}

/* ---- ProduceRequest: parse ---- */

/* PartitionProduceData: Index INT32, Records NULLABLE_BYTES (RECORDS). */
static void parse_partition(kreader_t *r, int flex, kproduce_partition_t *p)
{
    p->index = kr_i32(r);
    p->records = kr_bytes(r, flex);
    kr_tags_if(r, flex);
}

/* TopicProduceData: Name STRING, PartitionData [PartitionProduceData]. */
static void parse_topic(kreader_t *r, int flex, kproduce_topic_t *t)
{
    void *arr;
    t->name = kr_str_nn(r, flex);
    t->npartitions =
        kr_array_alloc(r, flex, 0, MIN_PARTITION(flex), sizeof(kproduce_partition_t), &arr);
    t->partitions = arr;
    for (int32_t i = 0; i < t->npartitions && kr_ok(r); i++)
        parse_partition(r, flex, &t->partitions[i]);
    kr_tags_if(r, flex);
}

/*
 * ProduceRequest v3..v9 body (v9 is flexible: COMPACT_ lengths and a
 * TAGGED_FIELDS section closing every struct and the body):
 *
 *   TransactionalId NULLABLE_STRING (v3+)
 *   Acks INT16
 *   TimeoutMs INT32
 *   TopicData [ Name STRING
 *               PartitionData [ Index INT32
 *                               Records NULLABLE RECORDS ] ]
 */
int kproduce_req_parse(int16_t ver, const uint8_t *body, size_t len, kproduce_req_t *req,
                       size_t *err_off)
{
    kreader_t r;
    void *arr;
    memset(req, 0, sizeof(*req));
    kr_init(&r, body, len);
    if (!version_ok(ver))
        kr_fail(&r, KR_EINVALID);
    int flex = is_flex(ver);
    req->transactional_id = kr_str(&r, flex);
    req->acks = kr_i16(&r);
    req->timeout_ms = kr_i32(&r);
    req->ntopics = kr_array_alloc(&r, flex, 0, MIN_TOPIC(flex), sizeof(kproduce_topic_t), &arr);
    req->topics = arr;
    for (int32_t i = 0; i < req->ntopics && kr_ok(&r); i++)
        parse_topic(&r, flex, &req->topics[i]);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    int rc = kr_result(&r, err_off);
    if (rc)
        kproduce_req_free(req);
    return rc;
}

void kproduce_req_free(kproduce_req_t *req)
{
    if (!req)
        return;
    for (int32_t i = 0; i < req->ntopics && req->topics; i++)
        free(req->topics[i].partitions);
    free(req->topics);
    memset(req, 0, sizeof(*req));
}

/* ---- ProduceRequest: write ---- */

static int str_ok(kstr_t s, int nullable)
{
    return (s.len >= 0 && s.len <= INT16_MAX && (s.ptr || s.len == 0)) || (nullable && s.len == -1);
}

static int bytes_ok(kbytes_t b)
{
    return b.len == -1 || (b.len >= 0 && (b.ptr || b.len == 0));
}

/* Everything the encoder needs from req is in range (nothing written yet). */
static int req_ok(const kproduce_req_t *req)
{
    if (!str_ok(req->transactional_id, 1) || req->ntopics < 0 || (req->ntopics && !req->topics))
        return 0;
    for (int32_t i = 0; i < req->ntopics; i++) {
        const kproduce_topic_t *t = &req->topics[i];
        if (!str_ok(t->name, 0) || t->npartitions < 0 || (t->npartitions && !t->partitions))
            return 0;
        for (int32_t j = 0; j < t->npartitions; j++)
            if (!bytes_ok(t->partitions[j].records))
                return 0;
    }
    return 1;
}

static void wtags(kwriter_t *w, int flex)
{
    if (flex)
        kw_tags_empty(w);
}

/*
 * Appends the request to w. With cuts NULL, every partition's records are
 * written; else they are left out, cuts[k] gets the offset in w where the
 * k-th partition's records belong, and the size prefix counts them.
 */
static int write_req(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                     const kproduce_req_t *req, size_t *cuts, size_t ncuts)
{
    if (!version_ok(ver) || !req_ok(req) || !str_ok(client_id, 1))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len, k = 0;
    uint64_t left_out = 0;
    kw_i32(w, 0); /* size, patched below */
    kproto_write_request_header(w, KAPI_Produce, ver, correlation_id, client_id);
    kw_kstr(w, flex, req->transactional_id);
    kw_i16(w, req->acks);
    kw_i32(w, req->timeout_ms);
    kw_array(w, flex, req->ntopics);
    for (int32_t i = 0; i < req->ntopics; i++) {
        const kproduce_topic_t *t = &req->topics[i];
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++) {
            const kproduce_partition_t *p = &t->partitions[j];
            kw_i32(w, p->index);
            if (!cuts) {
                kw_bytes(w, flex, p->records.ptr, p->records.len);
            } else if (k == ncuts || p->records.len < 0) {
                w->len = start;
                return -1;
            } else {
                if (flex)
                    kw_uvarint(w, (uint32_t)p->records.len + 1);
                else
                    kw_i32(w, p->records.len);
                cuts[k++] = w->len;
                left_out += (uint64_t)p->records.len;
            }
            wtags(w, flex);
        }
        wtags(w, flex);
    }
    wtags(w, flex);
    if (!cuts)
        return kw_finish_frame(w, start);
    if (w->err || w->len - start - 4 + left_out > (uint64_t)INT32_MAX) {
        if (!w->err)
            w->len = start;
        return -1;
    }
    kw_patch_i32(w, start, (int32_t)(w->len - start - 4 + left_out));
    return w->err ? -1 : 0;
}

int kproduce_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                       const kproduce_req_t *req)
{
    return write_req(w, ver, correlation_id, client_id, req, NULL, 0);
}

int kproduce_req_write_cut(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                           const kproduce_req_t *req, size_t *cuts, size_t ncuts)
{
    return write_req(w, ver, correlation_id, client_id, req, cuts, ncuts);
}

/* ---- records check ---- */

int kproduce_check_records(int16_t ver, kbytes_t records, krecord_batch_t *batch, int verify_crc)
{
    memset(batch, 0, sizeof(*batch));
    if (records.len <= 0 || !records.ptr)
        return KREC_ENOBATCH;
    size_t len = (size_t)records.len;
    int err = krecord_batch_parse(records.ptr, len, batch, 0);
    if (err != KREC_OK)
        return err;
    if (ver < 7 && krecord_attrs(batch->attributes).codec == KRECORD_ZSTD)
        return KREC_EZSTD;
    if (batch->size != len)
        return KREC_EMULTI;
    if (verify_crc && krecord_batch_crc(records.ptr, len) != batch->crc)
        return KREC_ECRC;
    return KREC_OK;
}

/* ---- ProduceResponse: parse ---- */

/* BatchIndexAndErrorMessage: BatchIndex INT32, BatchIndexErrorMessage
 * NULLABLE_STRING. */
static void parse_record_error(kreader_t *r, int flex, kproduce_record_error_t *e)
{
    e->batch_index = kr_i32(r);
    e->message = kr_str(r, flex);
    kr_tags_if(r, flex);
}

/* PartitionProduceResponse; see kproduce_resp_parse for the layout. */
static void parse_presp(kreader_t *r, int16_t ver, kproduce_presp_t *p)
{
    int flex = is_flex(ver);
    void *arr;
    p->index = kr_i32(r);
    p->error_code = kr_i16(r);
    p->base_offset = kr_i64(r);
    p->log_append_time_ms = kr_i64(r); /* v2+: every version here */
    p->log_start_offset = ver >= 5 ? kr_i64(r) : -1;
    p->error_message.len = -1;
    if (ver >= 8) {
        p->nrecord_errors = kr_array_alloc(r, flex, 0, MIN_RECORD_ERROR(flex),
                                           sizeof(kproduce_record_error_t), &arr);
        p->record_errors = arr;
        for (int32_t i = 0; i < p->nrecord_errors && kr_ok(r); i++)
            parse_record_error(r, flex, &p->record_errors[i]);
        p->error_message = kr_str(r, flex);
    }
    kr_tags_if(r, flex);
}

/* Smallest PartitionProduceResponse of ver. */
static size_t min_presp(int16_t ver)
{
    size_t n = 4 + 2 + 8 + 8; /* index, error, base offset, append time */
    if (ver >= 5)
        n += 8;
    if (ver >= 8)
        n += is_flex(ver) ? 1 + 1 : 4 + 2;
    if (is_flex(ver))
        n += 1;
    return n;
}

/* TopicProduceResponse: Name STRING, PartitionResponses [...]. */
static void parse_tresp(kreader_t *r, int16_t ver, kproduce_tresp_t *t)
{
    int flex = is_flex(ver);
    void *arr;
    t->name = kr_str_nn(r, flex);
    t->npartitions = kr_array_alloc(r, flex, 0, min_presp(ver), sizeof(kproduce_presp_t), &arr);
    t->partitions = arr;
    for (int32_t i = 0; i < t->npartitions && kr_ok(r); i++)
        parse_presp(r, ver, &t->partitions[i]);
    kr_tags_if(r, flex);
}

/*
 * ProduceResponse v3..v9, after the response header (v0: CorrelationId
 * INT32; v1 for v9 adds TAGGED_FIELDS). v9 is flexible: COMPACT_ lengths
 * and TAGGED_FIELDS closing every struct and the body.
 *
 *   Responses [ Name STRING
 *               PartitionResponses [ Index INT32
 *                                    ErrorCode INT16
 *                                    BaseOffset INT64
 *                                    LogAppendTimeMs INT64 (v2+)
 *                                    LogStartOffset INT64 (v5+)
 *                                    RecordErrors [ BatchIndex INT32
 *                                                   BatchIndexErrorMessage
 *                                                     NULLABLE_STRING ] (v8+)
 *                                    ErrorMessage NULLABLE_STRING (v8+) ] ]
 *   ThrottleTimeMs INT32 (v1+)
 */
int kproduce_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kproduce_resp_t *resp,
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
    kr_tags_if(&r, flex); /* response header v1 */
    resp->ntopics = kr_array_alloc(&r, flex, 0, MIN_TOPIC(flex), sizeof(kproduce_tresp_t), &arr);
    resp->topics = arr;
    for (int32_t i = 0; i < resp->ntopics && kr_ok(&r); i++)
        parse_tresp(&r, ver, &resp->topics[i]);
    resp->throttle_time_ms = kr_i32(&r);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    int rc = kr_result(&r, err_off);
    if (rc)
        kproduce_resp_free(resp);
    return rc;
}

void kproduce_resp_free(kproduce_resp_t *resp)
{
    if (!resp)
        return;
    for (int32_t i = 0; i < resp->ntopics && resp->topics; i++) {
        kproduce_tresp_t *t = &resp->topics[i];
        for (int32_t j = 0; j < t->npartitions && t->partitions; j++)
            free(t->partitions[j].record_errors);
        free(t->partitions);
    }
    free(resp->topics);
    memset(resp, 0, sizeof(*resp));
}

/* ---- ProduceResponse: write ---- */

static int presp_ok(const kproduce_presp_t *p)
{
    if (!str_ok(p->error_message, 1) || p->nrecord_errors < 0 ||
        (p->nrecord_errors && !p->record_errors))
        return 0;
    for (int32_t k = 0; k < p->nrecord_errors; k++)
        if (!str_ok(p->record_errors[k].message, 1))
            return 0;
    return 1;
}

static int resp_ok(const kproduce_resp_t *resp)
{
    if (resp->ntopics < 0 || (resp->ntopics && !resp->topics))
        return 0;
    for (int32_t i = 0; i < resp->ntopics; i++) {
        const kproduce_tresp_t *t = &resp->topics[i];
        if (!str_ok(t->name, 0) || t->npartitions < 0 || (t->npartitions && !t->partitions))
            return 0;
        for (int32_t j = 0; j < t->npartitions; j++)
            if (!presp_ok(&t->partitions[j]))
                return 0;
    }
    return 1;
}

static void write_presp(kwriter_t *w, int16_t ver, const kproduce_presp_t *p)
{
    int flex = is_flex(ver);
    kw_i32(w, p->index);
    kw_i16(w, p->error_code);
    kw_i64(w, p->base_offset);
    kw_i64(w, p->log_append_time_ms);
    if (ver >= 5)
        kw_i64(w, p->log_start_offset);
    if (ver >= 8) {
        kw_array(w, flex, p->nrecord_errors);
        for (int32_t k = 0; k < p->nrecord_errors; k++) {
            kw_i32(w, p->record_errors[k].batch_index);
            kw_kstr(w, flex, p->record_errors[k].message);
            wtags(w, flex);
        }
        kw_kstr(w, flex, p->error_message);
    }
    wtags(w, flex);
}

int kproduce_resp_write(kwriter_t *w, int16_t ver, const kproduce_resp_t *resp)
{
    if (!version_ok(ver) || !resp_ok(resp))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0); /* size, patched below */
    kw_i32(w, resp->correlation_id);
    wtags(w, flex); /* response header v1 */
    kw_array(w, flex, resp->ntopics);
    for (int32_t i = 0; i < resp->ntopics; i++) {
        const kproduce_tresp_t *t = &resp->topics[i];
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++)
            write_presp(w, ver, &t->partitions[j]);
        wtags(w, flex);
    }
    kw_i32(w, resp->throttle_time_ms);
    wtags(w, flex);
    return kw_finish_frame(w, start);
}

int kproduce_resp_write_uniform(kwriter_t *w, int16_t ver, int32_t correlation_id,
                                const kproduce_req_t *req, int16_t error_code, int64_t base_offset)
{
    if (!version_ok(ver) || req->ntopics < 0 || (req->ntopics && !req->topics))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, correlation_id);
    wtags(w, flex);
    kw_array(w, flex, req->ntopics);
    for (int32_t i = 0; i < req->ntopics; i++) {
        const kproduce_topic_t *t = &req->topics[i];
        if (!str_ok(t->name, 0) || t->npartitions < 0 || (t->npartitions && !t->partitions)) {
            w->len = w->err ? w->len : start;
            return -1;
        }
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++) {
            kproduce_presp_t p = {.index = t->partitions[j].index,
                                  .error_code = error_code,
                                  .base_offset = base_offset,
                                  .log_append_time_ms = -1,
                                  .log_start_offset = -1,
                                  .error_message = {NULL, -1}};
            write_presp(w, ver, &p);
        }
        wtags(w, flex);
    }
    kw_i32(w, 0); /* ThrottleTimeMs */
    wtags(w, flex);
    return kw_finish_frame(w, start);
}

/* ---- ProduceResponse: answers eosproxy builds ---- */

int kproduce_resp_shape(const kproduce_req_t *req, kproduce_resp_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->topics = calloc(req->ntopics > 0 ? (size_t)req->ntopics : 1, sizeof(*resp->topics));
    if (!resp->topics)
        return -1;
    resp->ntopics = req->ntopics;
    for (int32_t i = 0; i < req->ntopics; i++) {
        const kproduce_topic_t *q = &req->topics[i];
        kproduce_tresp_t *t = &resp->topics[i];
        t->name = q->name;
        t->partitions =
            calloc(q->npartitions > 0 ? (size_t)q->npartitions : 1, sizeof(*t->partitions));
        if (!t->partitions) {
            kproduce_resp_free(resp);
            return -1;
        }
        t->npartitions = q->npartitions;
        for (int32_t j = 0; j < t->npartitions; j++) {
            kproduce_presp_t *p = &t->partitions[j];
            p->index = q->partitions[j].index;
            p->base_offset = p->log_append_time_ms = p->log_start_offset = -1;
            p->error_message = (kstr_t){NULL, -1};
        }
    }
    return 0;
}

static int presp_at(const kproduce_resp_t *resp, kproduce_resp_pos_t at, const char *topic,
                    size_t topic_len, int32_t partition)
{
    const kproduce_tresp_t *t = &resp->topics[at.t];
    return t->partitions[at.p].index == partition && (size_t)t->name.len == topic_len &&
           (!topic_len || !memcmp(t->name.ptr, topic, topic_len));
}

const kproduce_presp_t *kproduce_resp_find(const kproduce_resp_t *resp, kproduce_resp_pos_t *next,
                                           const char *topic, size_t topic_len, int32_t partition)
{
    while (next->t < resp->ntopics && next->p >= resp->topics[next->t].npartitions)
        *next = (kproduce_resp_pos_t){next->t + 1, 0};
    kproduce_resp_pos_t at = *next;
    if (at.t >= resp->ntopics || !presp_at(resp, at, topic, topic_len, partition)) {
        for (at.t = 0; at.t < resp->ntopics; at.t++)
            for (at.p = 0; at.p < resp->topics[at.t].npartitions; at.p++)
                if (presp_at(resp, at, topic, topic_len, partition))
                    goto found;
        return NULL;
    }
found:
    *next = (kproduce_resp_pos_t){at.t, at.p + 1};
    return &resp->topics[at.t].partitions[at.p];
}
