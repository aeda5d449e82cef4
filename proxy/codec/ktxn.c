/*
 * ktxn.c - FindCoordinator, AddPartitionsToTxn, EndTxn and TxnOffsetCommit
 * codecs for eosproxy's own transactions. See ktxn.h for the wire layouts.
 *
 * Responses with per-partition results are parsed twice over the same
 * bytes: a first pass validates the whole frame and counts the results,
 * a second fills an array of exactly that size. The count is bounded by
 * the frame length (each result takes at least 6 bytes), so a hostile
 * frame cannot make the parser allocate more than the frame implies.
 */
#include "ktxn.h"

#include "kproto.h"

#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ---- */

static int flex_of(int16_t ver)
{
    /* All five APIs turn flexible at version 3. */
    return ver >= 3;
}

/* A string the schema allows: not null unless nullable, at most 32767
 * bytes (Kafka's STRING bound, compact ones included), data present. */
static int str_ok(kstr_t s, int nullable)
{
    if (s.len < 0)
        return nullable && s.len == -1;
    return s.len <= INT16_MAX && (s.len == 0 || s.ptr != NULL);
}

static int kstr_eq(kstr_t a, kstr_t b)
{
    if (a.len < 0 || b.len < 0)
        return a.len < 0 && b.len < 0;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

static const kstr_t KSTR_NULL = {NULL, -1};

/* Starts a request frame: the size prefix (patched by kw_finish_frame) and
 * the request header. Returns the frame's start offset. */
static size_t begin_request(kwriter_t *w, int16_t api, int16_t ver, int32_t correlation_id,
                            kstr_t client_id)
{
    size_t start = w->len;
    kw_i32(w, 0);
    kproto_write_request_header(w, api, ver, correlation_id, client_id);
    return start;
}

/* Starts a response frame: size prefix, CorrelationId, and the header's
 * empty tags when flexible (response header v1). */
static size_t begin_response(kwriter_t *w, int flex, int32_t correlation_id)
{
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, correlation_id);
    if (flex)
        kw_tags_empty(w);
    return start;
}

/* The end of a response parse: the tags, then nothing after them. */
static int end_response(kreader_t *r, int flex)
{
    kr_tags_if(r, flex);
    kr_expect_end(r);
    return kr_result(r, NULL);
}

/* Where per-partition results go: dst NULL counts only. */
typedef struct result_sink {
    ktxn_part_result_t *dst;
    int64_t n;
} result_sink_t;

/*
 * Reads [Name [PartitionIndex ErrorCode TAG_BUFFER@flex] TAG_BUFFER@flex]
 * (AddPartitionsToTxnTopicResult and TxnOffsetCommitResponseTopic alike)
 * into the sink. Null arrays and null names are errors.
 */
static void read_topic_results(kreader_t *r, int flex, result_sink_t *sink)
{
    int32_t nt = kr_array(r, flex, flex ? 3 : 6);
    if (nt < 0 && kr_ok(r))
        kr_fail(r, KR_ENULL);
    for (int32_t t = 0; t < nt && kr_ok(r); t++) {
        kstr_t name = kr_str_nn(r, flex);
        int32_t np = kr_array(r, flex, flex ? 7 : 6);
        if (np < 0 && kr_ok(r))
            kr_fail(r, KR_ENULL);
        for (int32_t p = 0; p < np && kr_ok(r); p++) {
            int32_t index = kr_i32(r);
            int16_t error_code = kr_i16(r);
            kr_tags_if(r, flex);
            if (!kr_ok(r))
                break;
            if (sink->n >= INT32_MAX) {
                kr_fail(r, KR_ECOUNT);
                break;
            }
            if (sink->dst)
                sink->dst[sink->n] = (ktxn_part_result_t){name, index, error_code};
            sink->n++;
        }
        kr_tags_if(r, flex);
    }
}

/* Results well-formed for writing: names valid, n >= 0. */
static int results_ok(const ktxn_part_result_t *res, int32_t n)
{
    if (n < 0 || (n > 0 && res == NULL))
        return 0;
    for (int32_t i = 0; i < n; i++)
        if (!str_ok(res[i].topic, 0))
            return 0;
    return 1;
}

/* Writes results as topic entries, one per run of equal topic names. */
static void write_topic_results(kwriter_t *w, int flex, const ktxn_part_result_t *res, int32_t n)
{
    int32_t ntopics = 0;
    for (int32_t i = 0; i < n; i++)
        if (i == 0 || !kstr_eq(res[i].topic, res[i - 1].topic))
            ntopics++;
    kw_array(w, flex, ntopics);
    for (int32_t i = 0; i < n;) {
        int32_t j = i;
        while (j < n && kstr_eq(res[j].topic, res[i].topic))
            j++;
        kw_kstr(w, flex, res[i].topic);
        kw_array(w, flex, j - i);
        for (int32_t k = i; k < j; k++) {
            kw_i32(w, res[k].partition);
            kw_i16(w, res[k].error_code);
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
        i = j;
    }
}

/*
 * Runs parse twice over the frame (count, then fill) and hands back the
 * results. parse fills the fixed fields of its out struct (out_size bytes)
 * and the sink; *results / *nresults (members of out) receive the array.
 * Returns 0, or an enum kr_err with out zeroed (nothing to free).
 */
typedef int (*results_parse_fn)(int16_t ver, const uint8_t *frame, size_t len, void *out,
                                result_sink_t *sink);

static int parse_with_results(results_parse_fn parse, int16_t ver, const uint8_t *frame, size_t len,
                              void *out, size_t out_size, int32_t *nresults,
                              ktxn_part_result_t **results)
{
    result_sink_t sink = {NULL, 0};
    int rc = parse(ver, frame, len, out, &sink);
    if (rc != 0 || sink.n == 0)
        goto done;
    ktxn_part_result_t *arr = calloc((size_t)sink.n, sizeof(*arr));
    if (!arr) {
        rc = KR_ECOUNT;
        goto done;
    }
    int64_t counted = sink.n;
    sink = (result_sink_t){arr, 0};
    rc = parse(ver, frame, len, out, &sink);
    if (rc != 0 || sink.n != counted) { /* cannot happen: same bytes */
        free(arr);
        rc = rc ? rc : KR_EINVALID;
        goto done;
    }
    *nresults = (int32_t)counted;
    *results = arr;
done:
    if (rc != 0)
        memset(out, 0, out_size);
    return rc;
}

/* ---- FindCoordinator ---- */

static int findcoord_ver_ok(int16_t ver)
{
    return ver >= 0 && ver <= KTXN_FINDCOORD_MAX_VERSION;
}

int ktxn_findcoord_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                             int8_t key_type, kstr_t key)
{
    if (!findcoord_ver_ok(ver) || !str_ok(client_id, 1) || !str_ok(key, 0))
        return -1;
    if (ver == 0 && key_type != KTXN_KEY_GROUP)
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_request(w, KAPI_FindCoordinator, ver, correlation_id, client_id);
    if (ver < KTXN_FINDCOORD_BATCH_VERSION)
        kw_kstr(w, flex, key); /* Key */
    if (ver >= 1)
        kw_i8(w, key_type); /* KeyType */
    if (ver >= KTXN_FINDCOORD_BATCH_VERSION) {
        kw_array(w, flex, 1); /* CoordinatorKeys */
        kw_kstr(w, flex, key);
    }
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

static void coord_reset(ktxn_coord_t *c)
{
    *c = (ktxn_coord_t){0, -1, KSTR_NULL, -1, KSTR_NULL};
}

int ktxn_findcoord_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kstr_t key,
                              ktxn_coord_t *out)
{
    coord_reset(out);
    if (!findcoord_ver_ok(ver))
        return KR_EINVALID;
    int flex = flex_of(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    (void)kr_i32(&r); /* CorrelationId */
    kr_tags_if(&r, flex);
    if (ver >= 1)
        (void)kr_i32(&r); /* ThrottleTimeMs */
    ktxn_coord_t c;
    coord_reset(&c);
    int found = 0;
    if (ver < KTXN_FINDCOORD_BATCH_VERSION) {
        c.error_code = kr_i16(&r);
        if (ver >= 1)
            c.error_message = kr_str(&r, flex);
        c.node_id = kr_i32(&r);
        c.host = kr_str_nn(&r, flex);
        c.port = kr_i32(&r);
        found = 1;
    } else {
        /* Key(1) NodeId(4) Host(1) Port(4) ErrorCode(2) ErrorMessage(1) tags(1) */
        int32_t n = kr_array(&r, flex, 14);
        if (n < 0 && kr_ok(&r))
            kr_fail(&r, KR_ENULL);
        for (int32_t i = 0; i < n && kr_ok(&r); i++) {
            ktxn_coord_t e;
            kstr_t k = kr_str_nn(&r, flex);
            e.node_id = kr_i32(&r);
            e.host = kr_str_nn(&r, flex);
            e.port = kr_i32(&r);
            e.error_code = kr_i16(&r);
            e.error_message = kr_str(&r, flex);
            kr_tags(&r);
            if (!found && kr_ok(&r) && kstr_eq(k, key)) {
                c = e;
                found = 1;
            }
        }
    }
    int rc = end_response(&r, flex);
    if (rc == 0 && !found)
        rc = KR_EINVALID;
    if (rc == 0)
        *out = c;
    return rc;
}

int ktxn_findcoord_resp_write(kwriter_t *w, int16_t ver, int32_t correlation_id,
                              int32_t throttle_time_ms, const kstr_t *keys,
                              const ktxn_coord_t *coords, int32_t n)
{
    if (!findcoord_ver_ok(ver) || n < 0 || (n > 0 && coords == NULL))
        return -1;
    int batch = ver >= KTXN_FINDCOORD_BATCH_VERSION;
    if (!batch && n != 1)
        return -1;
    if (batch && n > 0 && keys == NULL)
        return -1;
    for (int32_t i = 0; i < n; i++)
        if ((batch && !str_ok(keys[i], 0)) || !str_ok(coords[i].host, 0) ||
            !str_ok(coords[i].error_message, 1))
            return -1;
    int flex = flex_of(ver);
    size_t start = begin_response(w, flex, correlation_id);
    if (ver >= 1)
        kw_i32(w, throttle_time_ms);
    if (!batch) {
        kw_i16(w, coords[0].error_code);
        if (ver >= 1)
            kw_kstr(w, flex, coords[0].error_message);
        kw_i32(w, coords[0].node_id);
        kw_kstr(w, flex, coords[0].host);
        kw_i32(w, coords[0].port);
    } else {
        kw_array(w, flex, n);
        for (int32_t i = 0; i < n; i++) {
            kw_kstr(w, flex, keys[i]);
            kw_i32(w, coords[i].node_id);
            kw_kstr(w, flex, coords[i].host);
            kw_i32(w, coords[i].port);
            kw_i16(w, coords[i].error_code);
            kw_kstr(w, flex, coords[i].error_message);
            kw_tags_empty(w);
        }
    }
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

/* ---- AddPartitionsToTxn ---- */

static int addparts_ver_ok(int16_t ver)
{
    return ver >= 0 && ver <= KTXN_ADDPARTS_MAX_VERSION;
}

int ktxn_addparts_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                            kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                            const ktxn_topic_t *topics, int32_t ntopics)
{
    if (!addparts_ver_ok(ver) || !str_ok(client_id, 1) || !str_ok(transactional_id, 0))
        return -1;
    if (ntopics < 0 || (ntopics > 0 && topics == NULL))
        return -1;
    for (int32_t i = 0; i < ntopics; i++)
        if (!str_ok(topics[i].name, 0) || topics[i].npartitions < 0 ||
            (topics[i].npartitions > 0 && topics[i].partitions == NULL))
            return -1;
    int flex = flex_of(ver);
    int batch = ver >= KTXN_ADDPARTS_BATCH_VERSION;
    size_t start = begin_request(w, KAPI_AddPartitionsToTxn, ver, correlation_id, client_id);
    if (batch)
        kw_array(w, flex, 1); /* Transactions */
    kw_kstr(w, flex, transactional_id);
    kw_i64(w, producer_id);
    kw_i16(w, producer_epoch);
    if (batch)
        kw_i8(w, 0); /* VerifyOnly */
    kw_array(w, flex, ntopics);
    for (int32_t i = 0; i < ntopics; i++) {
        kw_kstr(w, flex, topics[i].name);
        kw_array(w, flex, topics[i].npartitions);
        for (int32_t p = 0; p < topics[i].npartitions; p++)
            kw_i32(w, topics[i].partitions[p]);
        if (flex)
            kw_tags_empty(w);
    }
    if (batch)
        kw_tags_empty(w); /* end of the transaction entry */
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

static int addparts_parse(int16_t ver, const uint8_t *frame, size_t len, void *vout,
                          result_sink_t *sink)
{
    ktxn_addparts_resp_t *out = vout;
    int flex = flex_of(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    out->correlation_id = kr_i32(&r);
    kr_tags_if(&r, flex);
    out->throttle_time_ms = kr_i32(&r);
    if (ver >= KTXN_ADDPARTS_BATCH_VERSION) {
        out->error_code = kr_i16(&r);
        /* TransactionalId(1) TopicResults(1) tags(1) */
        int32_t n = kr_array(&r, flex, 3);
        if (n < 0 && kr_ok(&r))
            kr_fail(&r, KR_ENULL);
        for (int32_t i = 0; i < n && kr_ok(&r); i++) {
            (void)kr_str_nn(&r, flex); /* TransactionalId */
            read_topic_results(&r, flex, sink);
            kr_tags(&r);
        }
    } else {
        read_topic_results(&r, flex, sink);
    }
    return end_response(&r, flex);
}

int ktxn_addparts_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                             ktxn_addparts_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!addparts_ver_ok(ver))
        return KR_EINVALID;
    return parse_with_results(addparts_parse, ver, frame, len, out, sizeof(*out), &out->nresults,
                              &out->results);
}

void ktxn_addparts_resp_free(ktxn_addparts_resp_t *r)
{
    if (!r)
        return;
    free(r->results);
    memset(r, 0, sizeof(*r));
}

int ktxn_addparts_resp_write(kwriter_t *w, int16_t ver, kstr_t transactional_id,
                             const ktxn_addparts_resp_t *r)
{
    if (!addparts_ver_ok(ver) || !results_ok(r->results, r->nresults))
        return -1;
    int batch = ver >= KTXN_ADDPARTS_BATCH_VERSION;
    if (batch && !str_ok(transactional_id, 0))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_response(w, flex, r->correlation_id);
    kw_i32(w, r->throttle_time_ms);
    if (batch) {
        kw_i16(w, r->error_code);
        kw_array(w, flex, 1); /* ResultsByTransaction */
        kw_kstr(w, flex, transactional_id);
    }
    write_topic_results(w, flex, r->results, r->nresults);
    if (batch)
        kw_tags_empty(w);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

/* ---- EndTxn ---- */

/* ---- AddOffsetsToTxn ---- */

static int addoffsets_ver_ok(int16_t ver)
{
    return ver >= 0 && ver <= KTXN_ADDOFFSETS_MAX_VERSION;
}

int ktxn_addoffsets_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                              kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                              kstr_t group_id)
{
    if (!addoffsets_ver_ok(ver) || !str_ok(client_id, 1) || !str_ok(transactional_id, 0) ||
        !str_ok(group_id, 0))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_request(w, KAPI_AddOffsetsToTxn, ver, correlation_id, client_id);
    kw_kstr(w, flex, transactional_id);
    kw_i64(w, producer_id);
    kw_i16(w, producer_epoch);
    kw_kstr(w, flex, group_id);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

int ktxn_addoffsets_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                               ktxn_addoffsets_resp_t *out)
{
    *out = (ktxn_addoffsets_resp_t){0, 0, 0};
    if (!addoffsets_ver_ok(ver))
        return KR_EINVALID;
    int flex = flex_of(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    ktxn_addoffsets_resp_t v;
    v.correlation_id = kr_i32(&r);
    kr_tags_if(&r, flex);
    v.throttle_time_ms = kr_i32(&r);
    v.error_code = kr_i16(&r);
    int rc = end_response(&r, flex);
    if (rc == 0)
        *out = v;
    return rc;
}

int ktxn_addoffsets_resp_write(kwriter_t *w, int16_t ver, const ktxn_addoffsets_resp_t *r)
{
    if (!addoffsets_ver_ok(ver))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_response(w, flex, r->correlation_id);
    kw_i32(w, r->throttle_time_ms);
    kw_i16(w, r->error_code);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

static int endtxn_ver_ok(int16_t ver)
{
    return ver >= 0 && ver <= KTXN_ENDTXN_MAX_VERSION;
}

int ktxn_endtxn_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                          kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                          int committed)
{
    if (!endtxn_ver_ok(ver) || !str_ok(client_id, 1) || !str_ok(transactional_id, 0))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_request(w, KAPI_EndTxn, ver, correlation_id, client_id);
    kw_kstr(w, flex, transactional_id);
    kw_i64(w, producer_id);
    kw_i16(w, producer_epoch);
    kw_i8(w, committed ? 1 : 0); /* Committed */
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

int ktxn_endtxn_resp_parse(int16_t ver, const uint8_t *frame, size_t len, ktxn_endtxn_resp_t *out)
{
    *out = (ktxn_endtxn_resp_t){0, 0, 0, -1, -1};
    if (!endtxn_ver_ok(ver))
        return KR_EINVALID;
    int flex = flex_of(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    ktxn_endtxn_resp_t v = {0, 0, 0, -1, -1};
    v.correlation_id = kr_i32(&r);
    kr_tags_if(&r, flex);
    v.throttle_time_ms = kr_i32(&r);
    v.error_code = kr_i16(&r);
    if (ver >= KTXN_ENDTXN_PID_VERSION) {
        v.producer_id = kr_i64(&r);
        v.producer_epoch = kr_i16(&r);
    }
    int rc = end_response(&r, flex);
    if (rc == 0)
        *out = v;
    return rc;
}

int ktxn_endtxn_resp_write(kwriter_t *w, int16_t ver, const ktxn_endtxn_resp_t *r)
{
    if (!endtxn_ver_ok(ver))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_response(w, flex, r->correlation_id);
    kw_i32(w, r->throttle_time_ms);
    kw_i16(w, r->error_code);
    if (ver >= KTXN_ENDTXN_PID_VERSION) {
        kw_i64(w, r->producer_id);
        kw_i16(w, r->producer_epoch);
    }
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

/* ---- TxnOffsetCommit ---- */

static int txnoffset_ver_ok(int16_t ver)
{
    return ver >= 0 && ver <= KTXN_TXNOFFSET_MAX_VERSION;
}

static int txnoffset_req_ok(int16_t ver, const ktxn_txnoffset_req_t *q)
{
    if (!str_ok(q->transactional_id, 0) || !str_ok(q->group_id, 0) || !str_ok(q->member_id, 1) ||
        !str_ok(q->group_instance_id, 1))
        return 0;
    /* Group metadata first exists in v3: it cannot be dropped silently. */
    if (ver < KTXN_TXNOFFSET_MEMBER_VERSION &&
        (q->generation_id != -1 || q->member_id.len > 0 || q->group_instance_id.len >= 0))
        return 0;
    if (q->ntopics < 0 || (q->ntopics > 0 && q->topics == NULL))
        return 0;
    for (int32_t i = 0; i < q->ntopics; i++) {
        const ktxn_offset_topic_t *t = &q->topics[i];
        if (!str_ok(t->name, 0) || t->npartitions < 0 ||
            (t->npartitions > 0 && t->partitions == NULL))
            return 0;
        for (int32_t p = 0; p < t->npartitions; p++)
            if (!str_ok(t->partitions[p].committed_metadata, 1))
                return 0;
    }
    return 1;
}

int ktxn_txnoffset_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                             const ktxn_txnoffset_req_t *req)
{
    if (!txnoffset_ver_ok(ver) || !str_ok(client_id, 1) || !txnoffset_req_ok(ver, req))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_request(w, KAPI_TxnOffsetCommit, ver, correlation_id, client_id);
    kw_kstr(w, flex, req->transactional_id);
    kw_kstr(w, flex, req->group_id);
    kw_i64(w, req->producer_id);
    kw_i16(w, req->producer_epoch);
    if (ver >= KTXN_TXNOFFSET_MEMBER_VERSION) {
        kw_i32(w, req->generation_id);
        kw_kstr(w, flex, req->member_id.len < 0 ? (kstr_t){"", 0} : req->member_id);
        kw_kstr(w, flex, req->group_instance_id);
    }
    kw_array(w, flex, req->ntopics);
    for (int32_t i = 0; i < req->ntopics; i++) {
        const ktxn_offset_topic_t *t = &req->topics[i];
        kw_kstr(w, flex, t->name);
        kw_array(w, flex, t->npartitions);
        for (int32_t p = 0; p < t->npartitions; p++) {
            const ktxn_offset_part_t *part = &t->partitions[p];
            kw_i32(w, part->partition_index);
            kw_i64(w, part->committed_offset);
            if (ver >= KTXN_TXNOFFSET_EPOCH_VERSION)
                kw_i32(w, part->committed_leader_epoch);
            kw_kstr(w, flex, part->committed_metadata);
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

static int txnoffset_parse(int16_t ver, const uint8_t *frame, size_t len, void *vout,
                           result_sink_t *sink)
{
    ktxn_txnoffset_resp_t *out = vout;
    int flex = flex_of(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    out->correlation_id = kr_i32(&r);
    kr_tags_if(&r, flex);
    out->throttle_time_ms = kr_i32(&r);
    read_topic_results(&r, flex, sink);
    return end_response(&r, flex);
}

int ktxn_txnoffset_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                              ktxn_txnoffset_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!txnoffset_ver_ok(ver))
        return KR_EINVALID;
    return parse_with_results(txnoffset_parse, ver, frame, len, out, sizeof(*out), &out->nresults,
                              &out->results);
}

void ktxn_txnoffset_resp_free(ktxn_txnoffset_resp_t *r)
{
    if (!r)
        return;
    free(r->results);
    memset(r, 0, sizeof(*r));
}

int ktxn_txnoffset_resp_write(kwriter_t *w, int16_t ver, const ktxn_txnoffset_resp_t *r)
{
    if (!txnoffset_ver_ok(ver) || !results_ok(r->results, r->nresults))
        return -1;
    int flex = flex_of(ver);
    size_t start = begin_response(w, flex, r->correlation_id);
    kw_i32(w, r->throttle_time_ms);
    write_topic_results(w, flex, r->results, r->nresults);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}
