/*
 * kfetch.h - FetchResponse (v4..v12) decode and re-encode, for consumer
 * dedup: eosproxy takes a Fetch response for dedup topics apart, filters
 * records out of its batches and writes the response back with the new
 * records. Versions 13+ name topics by id and are not offered to clients
 * while dedup rules exist (see client.c); v12 is the first flexible one.
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

#endif
