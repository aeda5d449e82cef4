/*
 * upgrade.h - the idempotent upgrade of non-idempotent producers.
 *
 * For topics whose policy is `idempotent`, a client's ProduceRequest whose
 * batches carry no producer id (-1) is not forwarded as is. The upgrade
 * engine owns a producer id and epoch per upstream cluster
 * (InitProducerId), keeps a sequence per partition, rewrites each batch
 * header with its own producerId/epoch/baseSequence (new CRC-32C), sends
 * the batches on eosproxy-owned connections to the leader ("produce lanes",
 * one per broker) with acks=all, retries retriable failures itself with the
 * same sequence (to the partition's current leader, which it asks the
 * cluster for with Metadata requests of its own on a lane when a broker
 * answers that it does not lead a partition or a lane fails), and
 * recognizes a client's own retry of a batch it already has in flight or
 * completed recently (fingerprint of topic, partition and batch content),
 * answering it with the original result. The client gets
 * one ProduceResponse per request, built here, in its own version.
 *
 * Completion is by id, not pointer: the engine calls
 * px->done.slot_done(px, client_id, token, resp) (engine.h) once per accepted
 * request, even if the client has gone (then the response is dropped).
 */
#ifndef EOSPROXY_UPGRADE_H
#define EOSPROXY_UPGRADE_H

#include "kproto.h"

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct broker;
struct evbuffer;
struct upgrade;

/*
 * The engine's bounds and timers, and hooks for tests. A member left 0 or
 * NULL takes eosproxy's default (the values README.md documents, and
 * px->done's slot_done and resume (engine.h) / CLOCK_MONOTONIC).
 * Only tests set these: tests/fuzz/fuzz_upgrade.c shrinks the bounds so a
 * small input reaches each of them, and plays the clock.
 */
struct upgrade_opts {
    size_t max_requests;          /* client requests held; beyond: REQUEST_TIMED_OUT */
    size_t max_bytes;             /* bytes held (request copies + batches); likewise */
    size_t high_bytes;            /* upgrade_busy() above this ... */
    size_t low_bytes;             /* ... until drained to this */
    size_t max_partitions;        /* partitions with sequence state (idle ones evicted) */
    size_t fpc_entries;           /* fingerprint cache entries */
    size_t lane_max_bytes;        /* pending bytes per lane */
    size_t flight_bytes;          /* batches per upstream ProduceRequest (at least one) */
    uint64_t fpc_ttl_ms;          /* how long a completed batch answers client retries */
    uint64_t delivery_timeout_ms; /* from submit to REQUEST_TIMED_OUT */
    uint64_t (*now_ms)(void);     /* monotonic clock, ms */
    void (*slot_done)(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp);
    void (*resume)(struct proxy *px);
};

/* Creates the engine; it starts its InitProducerId lazily. NULL on OOM. */
struct upgrade *upgrade_new(struct proxy *px);
/* The same with opts (NULL: upgrade_new); opts is copied. */
struct upgrade *upgrade_new_opts(struct proxy *px, const struct upgrade_opts *opts);
/* Closes lanes, drops pending work; upgrade_free(NULL) is safe. */
void upgrade_free(struct upgrade *u);

/*
 * Takes a client's validated ProduceRequest (frame = bytes after the size
 * prefix, h its parsed header, b the broker whose listener it arrived on,
 * i.e. the leader according to the client). The engine copies what it
 * keeps; frame may be freed on return. acks_zero: the client sent acks=0
 * and expects no response (the engine still writes with acks=all and
 * calls done with resp NULL). Returns 0 when accepted (done will follow),
 * or a Kafka ErrorCode (> 0) the caller answers every partition with
 * (e.g. UNSUPPORTED_FOR_MESSAGE_FORMAT for message format < 2).
 */
int upgrade_submit(struct upgrade *u, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
                   size_t len, int acks_zero, uint64_t client_id, uint64_t token);

/*
 * As upgrade_submit, but frame lies in *buf, a malloc'd buffer the caller
 * owns: when the request is accepted, the engine takes *buf (sets it to
 * NULL; it frees it later) instead of copying frame, and rewrites batch
 * headers in it. When refused (a nonzero return), *buf stays the
 * caller's, unchanged. buf NULL or *buf NULL: as upgrade_submit.
 */
int upgrade_submit_take(struct upgrade *u, struct broker *b, const kreq_hdr_t *h, uint8_t *frame,
                        size_t len, uint8_t **buf, int acks_zero, uint64_t client_id,
                        uint64_t token);

/*
 * Backpressure: 1 while the engine holds more than its high watermark of
 * bytes. The caller then stops reading from the client that just submitted
 * (instead of the engine refusing requests, which makes clients retry);
 * the engine calls px->done.resume(px) once it has drained to
 * the low watermark.
 */
int upgrade_busy(const struct upgrade *u);

#endif
