/*
 * dlqw.h - the dead-letter writer: an idempotent librdkafka producer
 * (acks=all) whose delivery reports are handed into eosproxy's event loop.
 *
 * librdkafka runs its own threads; its main queue signals a pipe
 * (rd_kafka_queue_io_event_enable) that a libevent read event watches,
 * and the loop then serves the queue, so every callback of this module
 * runs on the loop's thread. It reaches the cluster with the upstream.*
 * security settings (rdkconf.h).
 */
#ifndef EOSPROXY_DLQW_H
#define EOSPROXY_DLQW_H

#include "config.h"
#include "kdlt.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct dlqw;

/* How long one dead-letter write may take before it counts as failed
 * (a Fetch response waits for it, so well under clients' request timeouts). */
#define DLQW_TIMEOUT_MS 10000u

/* Writes in flight at once; dlqw_send refuses more (returns 0). */
#define DLQW_MAX_INFLIGHT 10000u
/* Bytes of record data in flight at once (key + value + headers). */
#define DLQW_MAX_BYTES (64u << 20)

/* One header of a record to write (views; copied by dlqw_send). */
typedef struct dlqw_header {
    const char *name;
    size_t name_len;
    const uint8_t *value; /* NULL: a null header value */
    size_t len;
} dlqw_header_t;

/* A record to write. Everything is copied by dlqw_send. */
typedef struct dlqw_record {
    const char *topic;  /* NUL-terminated */
    int32_t partition;  /* -1: librdkafka's partitioner (by key) */
    const uint8_t *key; /* NULL: null key */
    size_t key_len;
    const uint8_t *value; /* NULL: null value */
    size_t value_len;
    int64_t timestamp;            /* ms; 0: now */
    const dlqw_header_t *headers; /* the original record's headers */
    size_t nheaders;
    const kdlt_headers_t *dlt; /* appended after headers; NULL: none */
} dlqw_record_t;

/*
 * Called once per accepted write, from the loop: err 0 when the broker
 * acknowledged it (offset is where it landed), else a librdkafka error
 * code (rd_kafka_resp_err_t) and its name in errstr.
 */
typedef void (*dlqw_done_fn)(void *arg, uint64_t id, int err, const char *errstr, int64_t offset);

/*
 * A writer on base for the cluster at bootstrap. timeout_ms bounds one
 * write (librdkafka's message.timeout.ms): a write not acknowledged by
 * then completes with an error. NULL (logged) on error.
 */
struct dlqw *dlqw_new(struct event_base *base, const config_t *cfg, const char *bootstrap,
                      uint64_t timeout_ms);

/*
 * dlqw_new_flags flag: a writer that puts each record in a batch (and a
 * request) of its own, so a broker judges every record alone: librdkafka's
 * batch.num.messages 1, linger.ms 0, max.in.flight 1 (a partition's
 * records land in the order sent, retries included), message.max.bytes
 * DLQW_ONE_BY_ONE_MAX_BYTES (the broker decides what is too large), and
 * not idempotent: a record the broker refuses for good would otherwise
 * make librdkafka drain and bump its producer epoch. So a write whose
 * answer is lost and that is retried may land twice (acks=all).
 */
#define DLQW_ONE_BY_ONE 1u
#define DLQW_ONE_BY_ONE_MAX_BYTES (32u << 20)

/* dlqw_new with flags (0: dlqw_new's writer). dlqw_send's contract is the same. */
struct dlqw *dlqw_new_flags(struct event_base *base, const config_t *cfg, const char *bootstrap,
                            uint64_t timeout_ms, unsigned flags);

/* Purges what is in flight (no callback runs) and stops. NULL is safe. */
void dlqw_free(struct dlqw *w);

/*
 * Queues a write. Returns its id (> 0): cb(arg, id, ...) runs exactly once
 * later, from the loop, unless dlqw_cancel(id) runs first. Returns 0 when
 * refused (DLQW_MAX_INFLIGHT or DLQW_MAX_BYTES reached, or librdkafka
 * refused it: *why, if not NULL, says why); cb never runs then.
 */
uint64_t dlqw_send(struct dlqw *w, const dlqw_record_t *r, dlqw_done_fn cb, void *arg,
                   const char **why);

/* The callback of write id will not run (the write itself goes on). */
void dlqw_cancel(struct dlqw *w, uint64_t id);

/* Writes accepted and not yet completed. */
size_t dlqw_inflight(const struct dlqw *w);

#endif
