/*
 * kdlt.h - the headers of a dead-letter record, under Spring Kafka's
 * names and in its binary encodings (DeadLetterPublishingRecoverer), so
 * tooling written for Spring's dead-letter topics reads eosproxy's.
 *
 *   kafka_dlt-original-topic            UTF-8 topic name
 *   kafka_dlt-original-partition        4-byte big-endian int
 *   kafka_dlt-original-offset           8-byte big-endian long
 *   kafka_dlt-original-timestamp        8-byte big-endian long (ms)
 *   kafka_dlt-original-timestamp-type   "CreateTime" or "LogAppendTime"
 *   kafka_dlt-original-consumer-group   UTF-8 group id (when known)
 *   kafka_dlt-exception-fqcn            "eosproxy.DeadLetter"
 *   kafka_dlt-exception-message         eosproxy's reason, UTF-8
 *
 * A record written back by `eosproxy dlq replay` carries KDLT_REPLAYED:
 * "<dlq topic>/<partition>/<offset>" of the dead-letter copy.
 *
 * Pure codec: no libevent, no allocation.
 */
#ifndef EOSPROXY_KDLT_H
#define EOSPROXY_KDLT_H

#include <stddef.h>
#include <stdint.h>

#define KDLT_ORIGINAL_TOPIC "kafka_dlt-original-topic"
#define KDLT_ORIGINAL_PARTITION "kafka_dlt-original-partition"
#define KDLT_ORIGINAL_OFFSET "kafka_dlt-original-offset"
#define KDLT_ORIGINAL_TIMESTAMP "kafka_dlt-original-timestamp"
#define KDLT_ORIGINAL_TIMESTAMP_TYPE "kafka_dlt-original-timestamp-type"
#define KDLT_ORIGINAL_CONSUMER_GROUP "kafka_dlt-original-consumer-group"
#define KDLT_EXCEPTION_FQCN "kafka_dlt-exception-fqcn"
#define KDLT_EXCEPTION_MESSAGE "kafka_dlt-exception-message"
#define KDLT_REPLAYED "eosproxy-replayed-from"
#define KDLT_FQCN_VALUE "eosproxy.DeadLetter"

/* Where a dead-lettered record came from and why. Strings are views (not
 * NUL-terminated); group.ptr NULL means unknown (the header is left out). */
typedef struct kdlt_origin {
    const char *topic;
    size_t topic_len;
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    int timestamp_type; /* 0 CreateTime, 1 LogAppendTime (batch attribute bit 3) */
    const char *group;
    size_t group_len;
    const char *reason;
    size_t reason_len;
} kdlt_origin_t;

typedef struct kdlt_header {
    const char *name; /* NUL-terminated, static */
    const uint8_t *value;
    size_t len;
} kdlt_header_t;

#define KDLT_MAX_HEADERS 8

/* The DLT headers of one record: values point into the origin's strings
 * and into scratch, so the struct must outlive the use of h[]. */
typedef struct kdlt_headers {
    kdlt_header_t h[KDLT_MAX_HEADERS];
    size_t n;
    uint8_t scratch[4 + 8 + 8];
} kdlt_headers_t;

/* Fills out with the headers for o, in the order of the table above. */
void kdlt_headers_build(const kdlt_origin_t *o, kdlt_headers_t *out);

/* 1 if name[0..len) is one of the headers kdlt_headers_build writes. */
int kdlt_is_dlt_header(const char *name, size_t len);

/*
 * Reads one header into o (fields the header names). Returns 1 if it is a
 * DLT header and decoded, 0 if it is not a DLT header, -1 if it is one but
 * its value has the wrong size (o unchanged). String fields become views
 * into value.
 */
int kdlt_header_parse(const char *name, size_t nlen, const uint8_t *value, size_t vlen,
                      kdlt_origin_t *o);

/* "CreateTime" / "LogAppendTime" for timestamp_type 0 / 1. */
const char *kdlt_timestamp_type_name(int timestamp_type);

/* Big-endian helpers of the encodings above. */
void kdlt_put_be32(uint8_t *p, int32_t v);
void kdlt_put_be64(uint8_t *p, int64_t v);
int32_t kdlt_get_be32(const uint8_t *p);
int64_t kdlt_get_be64(const uint8_t *p);

#endif
