/*
 * dlqread.h - the bounded reader of a dead-letter topic for the `eosproxy
 * dlq` tools: a read_committed librdkafka consumer of the real cluster
 * (rdkconf: upstream.*), topic metadata, watermarks, the replay group's
 * committed offsets, reading offset ranges of partitions, and the kafka_dlt
 * headers of a record decoded (kdlt.h).
 *
 * Every call is bounded: a metadata, watermark or offset call waits at most
 * DLQ_TIMEOUT_MS, and a read ends at the end given when it starts, at the
 * end of the partition, or fails after DLQ_IDLE_MS without progress. Errors
 * come back as -1 with a message in err[0..errlen); nothing is printed.
 */
#ifndef EOSPROXY_DLQREAD_H
#define EOSPROXY_DLQREAD_H

#include "policy.h"
#include "config.h"
#include "kdlt.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define DLQ_TIMEOUT_MS 15000 /* one metadata, watermark, offset or transaction call */
#define DLQ_GROUP_PREFIX "eosproxy-dlq-replay-"
#define DLQ_NAME_MAX (sizeof(DLQ_GROUP_PREFIX) + POLICY_TOPIC_MAX + 1)

/* Offsets [start, end) of one partition to read. */
typedef struct dlqread_span {
    int32_t partition;
    int64_t start, end;
    int done;
} dlqread_span_t;

/* Called per record read: 0 to go on, 1 to stop reading (done), -1 to fail. */
typedef int (*dlqread_record_fn)(void *arg, const rd_kafka_message_t *m);
/* Called between polls: 0 to go on, -1 to fail. */
typedef int (*dlqread_tick_fn)(void *arg);

/* librdkafka's errors (syslog level 3 and below) on stderr; for every
 * client of the tools (rd_kafka_conf_set_log_cb). */
void dlqread_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* "eosproxy-dlq-replay-<topic>": the replay's group and transactional id,
 * into buf[0..cap) (DLQ_NAME_MAX fits every topic name). Returns buf. */
const char *dlqread_replay_id(const char *topic, char *buf, size_t cap);

/*
 * A consumer of the cluster in cfg, in group "eosproxy-dlq-replay-<topic>"
 * (so that `committed` reads the replay progress; it never joins or
 * commits) or "eosproxy-dlq-tool" when topic is NULL, reading read_committed.
 * NULL with err set on failure.
 */
rd_kafka_t *dlqread_consumer_new(const config_t *cfg, const char *topic, char *err, size_t errlen);

/* Closes and destroys a consumer of dlqread_consumer_new; NULL is a no-op. */
void dlqread_consumer_close(rd_kafka_t *rk);

/*
 * Partitions of topic: > 0, 0 if the cluster does not have it, -1 on error
 * (err). Asks a consumer, which never has a topic auto-created.
 */
int dlqread_partitions(rd_kafka_t *rk, const char *topic, char *err, size_t errlen);

/* Low and high watermark of one partition; 0, or -1 with err. */
int dlqread_watermarks(rd_kafka_t *rk, const char *topic, int32_t p, int64_t *lo, int64_t *hi,
                       char *err, size_t errlen);

/*
 * The committed offsets of the consumer's group for partitions [0, n) of
 * topic into out[] (-1 where none). 0, or -1 with err.
 */
int dlqread_committed(rd_kafka_t *rk, const char *topic, int n, int64_t *out, char *err,
                      size_t errlen);

/* The span of s[0..n) for partition, or NULL. */
dlqread_span_t *dlqread_span_of(dlqread_span_t *s, size_t n, int32_t partition);

/*
 * Reads spans s[0..n) of topic with the consumer rk, calling fn for every
 * record in them, in offset order per partition, and tick (if not NULL)
 * between polls, both with arg. Ends when every span is read (its end, or
 * the end of what the partition serves), when fn says stop, or fails when
 * DLQ_IDLE_MS pass without a record or the end of a span. Returns 0, or -1
 * with err.
 */
int dlqread_spans(rd_kafka_t *rk, const char *topic, dlqread_span_t *s, size_t n,
                  dlqread_record_fn fn, dlqread_tick_fn tick, void *arg, char *err, size_t errlen);

/* The DLT fields of a record's headers into o (views into the message;
 * -1 in the numbers that are absent). */
void dlqread_origin(const rd_kafka_message_t *m, kdlt_origin_t *o);

#endif
