/*
 * krecord.h - Kafka RecordBatch v2 (message format 2) headers and CRC-32C.
 *
 * eosproxy never decodes or recompresses the records inside a batch. It
 * reads the 61-byte batch header, rewrites the producer fields (producerId,
 * producerEpoch, baseSequence, the isTransactional bit) in place and
 * recomputes the CRC-32C, which covers attributes..end of the batch.
 *
 * Pure codec: no libevent, no I/O. Batches are views into the caller's
 * buffer (offsets into the records blob); nothing here allocates.
 */
#ifndef EOSPROXY_KRECORD_H
#define EOSPROXY_KRECORD_H

#include <stddef.h>
#include <stdint.h>

/* Size of the v2 batch header up to and including recordCount. */
#define KRECORD_HEADER_SIZE 61
/* batchLength counts the bytes after itself: at least the header minus 12. */
#define KRECORD_MIN_BATCH_LENGTH (KRECORD_HEADER_SIZE - 12)
/* The CRC covers [KRECORD_CRC_START, end of batch). */
#define KRECORD_CRC_START 21

/* Byte offsets of the fields in a v2 batch. */
enum krecord_off {
    KREC_OFF_BASE_OFFSET = 0,
    KREC_OFF_BATCH_LENGTH = 8,
    KREC_OFF_LEADER_EPOCH = 12,
    KREC_OFF_MAGIC = 16, /* same place as a legacy message's magic */
    KREC_OFF_CRC = 17,
    KREC_OFF_ATTRIBUTES = 21,
    KREC_OFF_LAST_OFFSET_DELTA = 23,
    KREC_OFF_BASE_TIMESTAMP = 27,
    KREC_OFF_MAX_TIMESTAMP = 35,
    KREC_OFF_PRODUCER_ID = 43,
    KREC_OFF_PRODUCER_EPOCH = 51,
    KREC_OFF_BASE_SEQUENCE = 53,
    KREC_OFF_RECORD_COUNT = 57,
};

/* Attribute bits (Kafka's DefaultRecordBatch). */
#define KRECORD_ATTR_COMPRESSION_MASK 0x07
#define KRECORD_ATTR_TIMESTAMP_TYPE 0x08 /* 1 = LogAppendTime */
#define KRECORD_ATTR_TRANSACTIONAL 0x10
#define KRECORD_ATTR_CONTROL 0x20
#define KRECORD_ATTR_DELETE_HORIZON 0x40

/* Compression codecs (Kafka's CompressionType ids). */
enum krecord_codec {
    KRECORD_NONE = 0,
    KRECORD_GZIP = 1,
    KRECORD_SNAPPY = 2,
    KRECORD_LZ4 = 3,
    KRECORD_ZSTD = 4,
};

/* Why a records blob was refused. KREC_OK is 0. */
enum krecord_err {
    KREC_OK = 0,
    KREC_ESHORT,   /* the blob ends inside a batch header or batch */
    KREC_EMAGIC,   /* magic != 2: message format v0/v1 (or garbage) */
    KREC_ELENGTH,  /* batchLength < 49 */
    KREC_ECOUNT,   /* recordCount <= 0 or != lastOffsetDelta + 1 */
    KREC_ECRC,     /* stored CRC does not match the bytes */
    KREC_ETOOMANY, /* more batches than the caller's array holds */
    KREC_ENOBATCH, /* empty or null blob (Produce needs a batch) */
    KREC_EMULTI,   /* Produce v3+ allows exactly one batch per partition */
    KREC_EZSTD,    /* zstd in a Produce request below v7 */
};

/* Static description of a krecord_err. Never NULL. */
const char *krecord_strerror(int err);

/*
 * Kafka ErrorCode a broker answers for a partition whose records fail with
 * err: CORRUPT_MESSAGE (2) for KREC_ECRC, UNSUPPORTED_COMPRESSION_TYPE (76)
 * for KREC_EZSTD, INVALID_RECORD (87) for everything else, 0 for KREC_OK.
 */
int16_t krecord_kafka_error(int err);

/* Decoded attribute bits. */
typedef struct krecord_attrs {
    int codec;           /* 0..7; only 0..4 are Kafka codecs */
    int log_append_time; /* timestamp type: 0 CreateTime, 1 LogAppendTime */
    int transactional;
    int control;
    int delete_horizon;
} krecord_attrs_t;

krecord_attrs_t krecord_attrs(int16_t attributes);

/*
 * One decoded v2 batch header. offset/size locate the whole batch in the
 * blob it came from (size = 12 + batch_length); the other members are the
 * header fields under Kafka's names.
 */
typedef struct krecord_batch {
    size_t offset;
    size_t size;
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} krecord_batch_t;

/*
 * Reads the header fields at p (KRECORD_HEADER_SIZE bytes readable) into
 * b, without any check; b->offset and b->size are left as they are.
 */
void krecord_read_header(const uint8_t *p, krecord_batch_t *b);

/*
 * Decodes the batch starting at p[0] (len bytes available; the batch may be
 * followed by more). Checks magic, batchLength, recordCount and, when
 * verify_crc, the CRC. b->offset is set to 0. Returns KREC_OK or an error;
 * b is filled as far as it could be read.
 */
int krecord_batch_parse(const uint8_t *p, size_t len, krecord_batch_t *b, int verify_crc);

/*
 * Walks a records blob (Produce's RECORDS field) batch by batch. Up to max
 * headers go to out, with offset set; *n is the number of batches that
 * decoded (and were stored). With out NULL, max is ignored and the batches
 * are only validated and counted. Returns KREC_OK when the whole blob is
 * batches, else the first error (KREC_ETOOMANY when a batch beyond max
 * decodes). An empty blob is KREC_OK with *n == 0.
 */
int krecord_batches(const uint8_t *blob, size_t len, krecord_batch_t *out, size_t max, size_t *n,
                    int verify_crc);

/*
 * Rewrites a batch in place (batch points at its baseOffset; size is the
 * whole batch, 12 + batchLength): producerId, producerEpoch, baseSequence,
 * and the isTransactional attribute bit set when transactional is 1,
 * cleared when 0, untouched when -1; then patches the stored CRC for the
 * changed header bytes (krecord_crc32c_patch: no pass over the records).
 * The caller has checked the stored CRC (krecord_batch_parse with
 * verify_crc): a batch that arrived corrupt stays corrupt, it is never
 * re-signed. Returns 0, or -1 if size is below the header size (nothing
 * written).
 */
int krecord_set_producer(uint8_t *batch, size_t size, int64_t producer_id, int16_t epoch,
                         int32_t base_sequence, int transactional);

/*
 * The CRC-32C of a message after bytes old_bytes[0..n) in it became
 * new_bytes[0..n), followed by tail unchanged bytes to its end, from its
 * CRC before (crc): CRC-32C is linear, so only the changed bytes and the
 * tail's length count (O(n + log tail)), as zlib's crc32_combine.
 */
uint32_t krecord_crc32c_patch(uint32_t crc, const uint8_t *old_bytes, const uint8_t *new_bytes,
                              size_t n, size_t tail);

/* CRC-32C of batch[21..size) as stored in the crc field; 0 if size < 61. */
uint32_t krecord_batch_crc(const uint8_t *batch, size_t size);

/*
 * 64-bit fingerprint of a client batch's content, independent of every
 * field eosproxy or the path may change: baseOffset, batchLength (implied
 * by the content), partitionLeaderEpoch, crc, producerId, producerEpoch,
 * baseSequence and the isTransactional bit. Covers the other attribute
 * bits, lastOffsetDelta, both timestamps, recordCount and the records
 * bytes, so a client's retry of the same batch gets the same fingerprint.
 * See krecord.c for the hash and its collision reasoning. 0 if size < 61.
 */
uint64_t krecord_fingerprint(const uint8_t *batch, size_t size);

/*
 * CRC-32C (Castagnoli, reflected, as Kafka's Crc32C): crc is the running
 * value (0 to start), so crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 * Uses the SSE4.2 crc32 instruction when the CPU has it.
 */
uint32_t krecord_crc32c(uint32_t crc, const void *p, size_t n);
/* The table-driven (slicing-by-8) path, always available. */
uint32_t krecord_crc32c_sw(uint32_t crc, const void *p, size_t n);
/* The SSE4.2 path; only call it when krecord_crc32c_hw_available(). */
uint32_t krecord_crc32c_hw(uint32_t crc, const void *p, size_t n);
/* 1 if this CPU (and build) has the SSE4.2 path. */
int krecord_crc32c_hw_available(void);

/* XXH64 (Yann Collet's algorithm) over p[0..n) with seed, for tests too. */
uint64_t krecord_xxh64(const void *p, size_t n, uint64_t seed);

#endif
