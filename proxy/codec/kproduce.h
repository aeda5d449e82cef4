/*
 * kproduce.h - ProduceRequest and ProduceResponse, versions 3..9.
 *
 * For topics whose policy is "idempotent" eosproxy takes a client's
 * ProduceRequest apart, rewrites each partition's RecordBatch (krecord.h),
 * sends the batches upstream in requests it encodes itself and answers the
 * client from the upstream results; for "at-most-once" topics it forwards
 * with acks=0 and answers the client at once. This is the codec for that:
 * parse and encode both the request and the response. Version 9 is the
 * first flexible version (request header v2, response header v1).
 *
 * Ownership: a parsed struct owns its arrays (freed by the matching
 * _free()); every kstr_t/kbytes_t in it is a view into the frame that was
 * parsed and lives as long as that frame. Structs given to the encoders
 * are only read; the caller owns them and what they point to.
 *
 * Pure codec: no libevent.
 */
#ifndef EOSPROXY_KPRODUCE_H
#define EOSPROXY_KPRODUCE_H

#include "kbuf.h"
#include "krecord.h"

#include <stdint.h>

/* Versions this codec handles (message format v2 starts at Produce v3). */
#define KPRODUCE_MIN_VERSION 3
#define KPRODUCE_MAX_VERSION 9
#define KPRODUCE_FLEX_VERSION 9

/* PartitionProduceData. records: null is len -1. */
typedef struct kproduce_partition {
    int32_t index;
    kbytes_t records;
} kproduce_partition_t;

/* TopicProduceData. */
typedef struct kproduce_topic {
    kstr_t name;
    int32_t npartitions;
    kproduce_partition_t *partitions;
} kproduce_topic_t;

/* ProduceRequest body. */
typedef struct kproduce_req {
    kstr_t transactional_id; /* nullable */
    int16_t acks;            /* as sent; -1, 0 and 1 are Kafka's values */
    int32_t timeout_ms;
    int32_t ntopics;
    kproduce_topic_t *topics;
} kproduce_req_t;

/*
 * Parses a ProduceRequest body (the bytes after the request header, e.g.
 * frame + kreq_hdr_t.body_off) of version ver into *req, which is zeroed
 * first. Array sizes are bounded by the body's length. Trailing bytes are
 * an error (KR_EINVALID), as is a version outside 3..9. Acks is returned
 * as sent: its domain is the caller's check (kproto_produce_acks). Returns
 * 0, or an enum kr_err (> 0) with *err_off (if not NULL) the body offset
 * at which the error was raised; on error req holds nothing to free (it is
 * freed and zeroed).
 */
int kproduce_req_parse(int16_t ver, const uint8_t *body, size_t len, kproduce_req_t *req,
                       size_t *err_off);

/* Frees what kproduce_req_parse allocated and zeroes *req; NULL is safe. */
void kproduce_req_free(kproduce_req_t *req);

/*
 * Appends a complete ProduceRequest frame to w: 4-byte size prefix,
 * request header (v1 for ver 3..8, v2 with empty tags for ver 9; client_id
 * is always an INT16-length nullable string) and the body from req. Each
 * partition's records are written from its (ptr, len) view, so the caller
 * can point them at rewritten batches. Returns 0, or -1 if ver is outside
 * 3..9, a topic name is null, or the writer failed.
 */
int kproduce_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                       const kproduce_req_t *req);

/*
 * As kproduce_req_write, but the partitions' records are left out: for
 * the k-th partition in request order, cuts[k] gets the offset in w at
 * which its records.len bytes belong, and the size prefix counts them.
 * So the frame is whole once each partition's records are put in at its
 * cut, which lets a caller send them from where they are (by reference)
 * instead of copying them into w. Returns 0, or -1 as kproduce_req_write,
 * or when the request has more than ncuts partitions or a null records
 * (w is then left as it was).
 */
int kproduce_req_write_cut(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                           const kproduce_req_t *req, size_t *cuts, size_t ncuts);

/*
 * Checks one partition's records as a broker does for Produce v3+
 * (ProduceRequest.validateRecords and LogValidator): exactly one v2 batch,
 * no zstd below v7, a consistent record count, and the CRC when
 * verify_crc. On KREC_OK *batch describes the batch (offset 0). Map an
 * error to the partition's ErrorCode with krecord_kafka_error().
 */
int kproduce_check_records(int16_t ver, kbytes_t records, krecord_batch_t *batch, int verify_crc);

/* BatchIndexAndErrorMessage (v8+). */
typedef struct kproduce_record_error {
    int32_t batch_index;
    kstr_t message; /* nullable */
} kproduce_record_error_t;

/* PartitionProduceResponse. Fields absent in a version hold their
 * defaults: log_append_time_ms -1, log_start_offset -1, no record errors,
 * error_message null. */
typedef struct kproduce_presp {
    int32_t index;
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms;
    int64_t log_start_offset;
    int32_t nrecord_errors;
    kproduce_record_error_t *record_errors;
    kstr_t error_message; /* nullable */
} kproduce_presp_t;

/* TopicProduceResponse. */
typedef struct kproduce_tresp {
    kstr_t name;
    int32_t npartitions;
    kproduce_presp_t *partitions;
} kproduce_tresp_t;

/* ProduceResponse. */
typedef struct kproduce_resp {
    int32_t correlation_id;
    int32_t ntopics;
    kproduce_tresp_t *topics;
    int32_t throttle_time_ms;
} kproduce_resp_t;

/*
 * Parses a ProduceResponse frame (the bytes after the size prefix,
 * starting with the response header: correlation id, plus tags for v9) of
 * version ver into *resp (zeroed first). Returns 0, or an enum kr_err with
 * *err_off (if not NULL) the frame offset at which the error was raised;
 * on error resp holds nothing to free.
 */
int kproduce_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kproduce_resp_t *resp,
                        size_t *err_off);

/* Frees what kproduce_resp_parse allocated and zeroes *resp; NULL safe. */
void kproduce_resp_free(kproduce_resp_t *resp);

/*
 * Appends a complete ProduceResponse frame (size prefix, response header
 * v0, or v1 with empty tags for ver 9, then the body) answering
 * resp->correlation_id at version ver. Fields the version lacks are left
 * out. Returns 0, or -1 if ver is outside 3..9, a name is null or the
 * writer failed.
 */
int kproduce_resp_write(kwriter_t *w, int16_t ver, const kproduce_resp_t *resp);

/*
 * Appends a ProduceResponse answering every partition of req with the same
 * ErrorCode and BaseOffset (LogAppendTime and LogStartOffset -1, no error
 * message): how eosproxy answers a client locally, e.g. for at-most-once
 * topics (error 0, base_offset -1). Returns 0 or -1 like the above.
 */
int kproduce_resp_write_uniform(kwriter_t *w, int16_t ver, int32_t correlation_id,
                                const kproduce_req_t *req, int16_t error_code, int64_t base_offset);

/*
 * Shapes *resp like req for an answer eosproxy builds itself: the same
 * topics (names are views into req's frame) and partitions in the same
 * order, each with ErrorCode 0, offsets -1 and no error message. resp is
 * zeroed first; free it with kproduce_resp_free (record_errors stay NULL).
 * Returns 0, or -1 on OOM (resp then holds nothing to free).
 */
int kproduce_resp_shape(const kproduce_req_t *req, kproduce_resp_t *resp);

/* Where kproduce_resp_find looks first: topic t, partition p. Start at {0, 0}. */
typedef struct kproduce_resp_pos {
    int32_t t, p;
} kproduce_resp_pos_t;

/*
 * The outcome of (topic, partition) in a parsed response, or NULL. A
 * broker answers in the request's order, so it is normally at *next;
 * otherwise the whole response is searched. *next moves past where it was
 * found, so looking up a request's partitions in order costs O(partitions).
 */
const kproduce_presp_t *kproduce_resp_find(const kproduce_resp_t *resp, kproduce_resp_pos_t *next,
                                           const char *topic, size_t topic_len, int32_t partition);

#endif
