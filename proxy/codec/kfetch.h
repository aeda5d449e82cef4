/*
 * kfetch.h - FetchResponse (v4..v12) decode and re-encode, for consumer
 * dedup: eosproxy takes a Fetch response for dedup topics apart, filters
 * records out of its batches and writes the response back with the new
 * records. Versions 13+ name topics by id and are not offered to clients
 * while dedup rules exist (see client.c); v12 is the first flexible one.
 * Also the FetchRequest body (v4..v12), parsed and written back byte for
 * byte, for per-topic ACLs (ksplit.h) and tests.
 *
 * Ownership as in kproduce.h: parsed structs own their arrays (freed by
 * kfetch_resp_free); kstr_t/kbytes_t members are views into the frame.
 * Pure codec: no libevent.
 */
#ifndef EOSPROXY_KFETCH_H
#define EOSPROXY_KFETCH_H

#include "kbuf.h"

#include <stdint.h>

#define KFETCH_MIN_VERSION 4
#define KFETCH_MAX_VERSION 12

/*
 * Tagged fields (v12+): every struct keeps the raw bytes of its
 * TAGGED_FIELDS section (count and fields, as received) in `tags`, and
 * the writer re-emits them as they are, so nothing a client needs is
 * lost: for partitions that is DivergingEpoch (tag 0), CurrentLeader (1)
 * and SnapshotId (2), which eosproxy never changes. A NULL tags.ptr
 * writes an empty section (one 0 byte). Below v12 tags are ignored.
 */

/* AbortedTransaction. */
typedef struct kfetch_aborted {
    int64_t producer_id;
    int64_t first_offset;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS */
} kfetch_aborted_t;

/* PartitionData of a FetchResponse. */
typedef struct kfetch_partition {
    int32_t index;
    int16_t error_code;
    int64_t high_watermark;
    int64_t last_stable_offset;
    int64_t log_start_offset; /* v5+, else -1 */
    int32_t naborted;         /* -1: null array */
    kfetch_aborted_t *aborted;
    int32_t preferred_read_replica; /* v11+, else -1 */
    kbytes_t records;               /* null is len -1 */
    /* Set by the caller before kfetch_resp_write to substitute records:
     * when new_records.ptr != NULL they are written instead of records. */
    kbytes_t new_records;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS (DivergingEpoch, CurrentLeader, SnapshotId) */
} kfetch_partition_t;

typedef struct kfetch_topic {
    kstr_t name;
    int32_t npartitions;
    kfetch_partition_t *partitions;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS */
} kfetch_topic_t;

typedef struct kfetch_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int16_t error_code; /* v7+ */
    int32_t session_id; /* v7+ */
    int32_t ntopics;
    kfetch_topic_t *topics;
    kbytes_t header_tags; /* v12+: response header v1 TAGGED_FIELDS */
    kbytes_t tags;        /* v12+: the body's TAGGED_FIELDS */
} kfetch_resp_t;

/*
 * Parses a FetchResponse frame (bytes after the size prefix, starting with
 * the response header: correlation id, plus tags for v12) of version ver
 * (4..12) into *resp (zeroed first). Array counts are bounded by the
 * bytes left; trailing bytes and a version outside 4..12 are KR_EINVALID.
 * Records are not looked into (a view, possibly ending in a partial batch
 * as brokers send). Returns 0, or an enum kr_err with *err_off (if not
 * NULL) at the bad field; on error resp holds nothing to free.
 */
int kfetch_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kfetch_resp_t *resp,
                      size_t *err_off);
void kfetch_resp_free(kfetch_resp_t *resp);

/*
 * Appends a complete FetchResponse frame (size prefix, header, body) of
 * version ver from resp, using new_records where set and each struct's
 * raw tags (v12). Fields absent in ver are left out. For a parsed
 * response with no records substituted the output is byte-identical to
 * the input frame. Returns 0, or -1 (ver outside 4..12, a null topic
 * name, a negative count with a non-null array missing, or the writer
 * failed; w->len is then restored unless w->err is set).
 */
int kfetch_resp_write(kwriter_t *w, int16_t ver, const kfetch_resp_t *resp);

/* ---- FetchRequest (v4..v12) ---- */

/* FetchPartition of a FetchRequest. Fields absent in a version hold -1. */
typedef struct kfetch_req_partition {
    int32_t partition;
    int32_t current_leader_epoch; /* v9+ */
    int64_t fetch_offset;
    int32_t last_fetched_epoch; /* v12+ */
    int64_t log_start_offset;   /* v5+ */
    int32_t partition_max_bytes;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS */
} kfetch_req_partition_t;

/* FetchTopic. */
typedef struct kfetch_req_topic {
    kstr_t topic;
    int32_t npartitions;
    kfetch_req_partition_t *partitions;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS */
} kfetch_req_topic_t;

/* ForgottenTopic (v7+): partitions leaving the fetch session. */
typedef struct kfetch_forgotten {
    kstr_t topic;
    int32_t npartitions;
    int32_t *partitions;
    kbytes_t tags; /* v12+ raw TAGGED_FIELDS */
} kfetch_forgotten_t;

/* FetchRequest body. Fields absent in a version hold 0 (rack_id: null
 * view, len -1); forgotten is empty below v7. */
typedef struct kfetch_req {
    int32_t replica_id;
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;      /* v3+: every version here */
    int8_t isolation_level; /* v4+ */
    int32_t session_id;     /* v7+ */
    int32_t session_epoch;  /* v7+ */
    int32_t ntopics;
    kfetch_req_topic_t *topics;
    int32_t nforgotten; /* v7+ */
    kfetch_forgotten_t *forgotten;
    kstr_t rack_id; /* v11+ */
    kbytes_t tags;  /* v12+: the body's TAGGED_FIELDS (ClusterId is tag 0) */
} kfetch_req_t;

/*
 * Parses a FetchRequest body (the bytes after the request header, e.g.
 * frame + kreq_hdr_t.body_off) of version ver (4..12) into *req, zeroed
 * first. Array counts are bounded by the bytes left; trailing bytes and a
 * version outside 4..12 are KR_EINVALID; null arrays and null topic
 * names (KR_ENULL) are malformed, as Kafka's schema says. Returns 0, or an
 * enum kr_err with *err_off (if not NULL) the body offset of the bad
 * field; on error req holds nothing to free. Views point into body.
 */
int kfetch_req_parse(int16_t ver, const uint8_t *body, size_t len, kfetch_req_t *req,
                     size_t *err_off);

/* Frees what kfetch_req_parse allocated and zeroes *req; NULL is safe. */
void kfetch_req_free(kfetch_req_t *req);

/*
 * Appends the FetchRequest body of version ver from req to w: no size
 * prefix, no request header (the caller writes those, e.g. with
 * kproto_write_request_header). Fields absent in ver are left out; v12
 * re-emits each struct's raw tags (a NULL tags.ptr writes an empty
 * section). For a parsed body the output is byte-identical to the input.
 * Returns 0, or -1 before writing anything (ver outside 4..12, a null or
 * over-long topic name, rack_id null at v11+, a negative count or a
 * missing array), or -1 with w->err set when the writer failed.
 */
int kfetch_req_write_body(kwriter_t *w, int16_t ver, const kfetch_req_t *req);

#endif
