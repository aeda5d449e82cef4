/*
 * krecords.h - the records inside a RecordBatch v2: decompression,
 * record decode, eventId extraction, and re-encoding a batch that keeps
 * only some of its records.
 *
 * Used by consumer dedup. A batch is decompressed (none, gzip, snappy,
 * lz4, zstd: Kafka's framings, including xerial-framed snappy as the Java
 * client writes it), its records decoded into views, and a filtered batch
 * written back: same baseOffset, same lastOffsetDelta (so the consumer's
 * next fetch offset is unchanged), each kept record with its own offset
 * delta, recordCount updated, recompressed with the same codec, new
 * CRC-32C. Pure codec: no libevent; bounded decompressed size.
 */
#ifndef EOSPROXY_KRECORDS_H
#define EOSPROXY_KRECORDS_H

#include "kbuf.h"
#include "krecord.h"

#include <stddef.h>
#include <stdint.h>

/* Largest decompressed batch accepted (a bigger one is an error). */
#define KRECORDS_MAX_INFLATED (64u << 20)

typedef struct krec_header {
    kstr_t key;     /* header keys are strings (varint length) */
    kbytes_t value; /* nullable */
} krec_header_t;

/* One record: views into the (decompressed) records bytes. */
typedef struct krec {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    kbytes_t key;   /* nullable */
    kbytes_t value; /* nullable */
    int32_t nheaders;
    krec_header_t *headers; /* into the decoded batch's header pool */
    const uint8_t *raw;     /* the record's encoded bytes (length prefix excluded) */
    size_t raw_len;
} krec_t;

/* A decoded batch. Owns its buffers; free with krecords_batch_free. */
typedef struct krecords_batch {
    krecord_batch_t hdr; /* the v2 header, as krecord_batch_parse gave it */
    uint8_t *inflated;   /* decompressed records (NULL if uncompressed) */
    size_t inflated_len;
    int32_t nrecords;
    krec_t *records;
    krec_header_t *header_pool;
} krecords_batch_t;

/*
 * Decodes the batch at batch[0..size) (a whole v2 batch as found in a
 * Fetch response's records; size is 12 + batchLength). Unlike
 * krecord_batch_parse it accepts what brokers serve: recordCount 0 or
 * below lastOffsetDelta + 1 (compaction), control batches. It checks the
 * CRC (a corrupt batch must reach the client as it is, never be
 * re-signed), decompresses, and requires the records to fill the
 * payload exactly. Returns 0, or -1 with *err a static message (out then
 * holds nothing to free). Views in *out point into batch or
 * out->inflated: batch must outlive out.
 */
int krecords_decode(const uint8_t *batch, size_t size, krecords_batch_t *out, const char **err);
void krecords_batch_free(krecords_batch_t *b);

/*
 * What a batch whose every record is filtered out becomes. No single
 * representation is stepped past by every client; krecords.c explains
 * each client's fetch path. In short:
 *   ZERO_RECORDS  Java, librdkafka (which counts it as "no message" and
 *                 grows its fetch size); kafka-python 2.0.2 only when
 *                 another batch of the same partition chunk yields a
 *                 record (else IndexError out of poll()); kafkajs stalls.
 *   CONTROL       Java, librdkafka, kafkajs step past it; kafka-python
 *                 2.0.2 hands the control record to the application.
 *   BEHIND        for kafka-python 2.0.2: one plain record at offset
 *                 baseOffset - 1 (offsetDelta -1), which it unpacks, drops
 *                 as older than its position, and then moves its position
 *                 to lastOffset + 1. Only valid when baseOffset <= the
 *                 partition's fetch offset (the chunk's first batch).
 * All three keep baseOffset, lastOffsetDelta and both timestamps, and
 * are written uncompressed (codec bits cleared).
 */
enum krecords_empty_mode {
    KRECORDS_EMPTY_ZERO_RECORDS = 0, /* a batch with recordCount 0 */
    KRECORDS_EMPTY_CONTROL = 1,      /* a control batch, COMMIT marker at lastOffsetDelta */
    KRECORDS_EMPTY_BEHIND = 2,       /* one record at offsetDelta -1 (kafka-python) */
};

/*
 * Writes to w a new batch from b keeping the records whose keep[i] is
 * non-zero (b->nrecords entries): same baseOffset, partitionLeaderEpoch,
 * attributes, lastOffsetDelta, timestamps and producer fields; each kept
 * record byte-for-byte (so its offset and timestamp deltas); recordCount
 * = kept; recompressed with the batch's codec; batchLength and CRC-32C
 * recomputed. When every record is kept (a batch that had none
 * included), orig[0..orig_size) (the batch as received, b->hdr.size
 * bytes) is copied unchanged; with orig NULL it is re-encoded. When
 * records existed and none is kept, empty_mode
 * (enum krecords_empty_mode) decides. Returns 0, or -1 (w's error set or
 * an unknown codec/mode; w->len is restored).
 */
int krecords_filter(kwriter_t *w, const krecords_batch_t *b, const uint8_t *orig, size_t orig_size,
                    const uint8_t *keep, int empty_mode);

/*
 * Writes the empty form (enum krecords_empty_mode) of the batch whose
 * header is h, without its records: what krecords_filter writes when it
 * keeps none. Returns 0, or -1 (w's error set or an unknown mode).
 */
int krecords_write_empty(kwriter_t *w, const krecord_batch_t *h, int empty_mode);

/*
 * The empty mode to use for a fully filtered batch in a Fetch response of
 * version fetch_version, for the partition chunk's first batch (first) or
 * a later one. kafka-python 2.0.2 is the only client of the test matrix
 * that caps Fetch at v4 (kafkajs 2.2.4 and librdkafka send v11, Java 12+):
 * v4 gets BEHIND for the first batch and ZERO_RECORDS after it, v5+ gets
 * CONTROL.
 */
int krecords_empty_mode_for_fetch(int16_t fetch_version, int first);

/* Writes a complete batch from b's header with records payload (already
 * encoded, uncompressed) re-compressed with codec, nrecords records;
 * used by krecords_filter, exposed for tests. Returns 0 or -1. */
int krecords_write_batch(kwriter_t *w, const krecord_batch_t *hdr, int16_t attributes,
                         int32_t nrecords, const uint8_t *records, size_t records_len);

/* Decompresses a records payload of codec (1..4) into a malloc'ed buffer
 * (*out, *out_len; *out NULL for an empty result), refusing more than
 * KRECORDS_MAX_INFLATED bytes. Returns NULL or a static error message. */
const char *krecords_inflate(int codec, const uint8_t *in, size_t in_len, uint8_t **out,
                             size_t *out_len);

/* Compresses in[0..in_len) with codec (0..4; 0 copies) in Kafka's framing
 * for that codec (gzip member, xerial snappy, LZ4 frame, zstd frame with
 * content size), appending to w. Returns 0 or -1. */
int krecords_deflate(int codec, const uint8_t *in, size_t in_len, kwriter_t *w);

/* eventId sources, as in policy.h. */
enum krecords_id_src {
    KRECORDS_ID_HEADER = 1,
    KRECORDS_ID_KEY = 2,
    KRECORDS_ID_JSON = 3,
};

/* 1 if p[0..len) is one well-formed JSON value (whitespace around it
 * allowed), with the same scanner and nesting bound json:FIELD uses. */
int krecords_json_valid(const uint8_t *p, size_t len);

/*
 * Extracts the eventId of r per (src, name): the value of the first header
 * whose key is name, the key, or the top-level JSON string/number field
 * `name` of the value (a number as its text). Returns 1 and sets *id (a
 * view into the record; for a JSON string with escapes the unescaped
 * UTF-8 is written to scratch[0..scratch_len) and *id points there), 0
 * when the record has none: missing, null or empty, a JSON field of
 * another type, malformed JSON (the whole value is checked, nesting is
 * bounded to 64 levels), or an unescaped id longer than scratch_len.
 */
int krecords_event_id(const krec_t *r, int src, const char *name, kbytes_t *id, uint8_t *scratch,
                      size_t scratch_len);

#endif
