/*
 * txn.h - transactional delivery for clients that know nothing of
 * transactions.
 *
 * A ProduceRequest from a non-transactional, non-idempotent client that
 * touches a `delivery: transactional` topic is written inside a Kafka
 * transaction eosproxy owns under its transactional id
 * (transactions.id): FindCoordinator(TRANSACTION), InitProducerId with
 * that id, AddPartitionsToTxn, the batches rewritten with eosproxy's
 * producer id, epoch, sequences and the isTransactional bit, then
 * EndTxn(COMMIT). The client gets its ProduceResponse only after the
 * commit was acknowledged: an acknowledged record is committed. When a
 * transaction fails, every client request in it gets an error (retriable
 * unless its own partition was refused for good) and the transaction is
 * aborted, so nothing of it is ever visible to read_committed consumers.
 *
 * Group commit: requests from every client of the sidecar share the open
 * transaction, closed after transactions.linger (only when the engine is
 * idle), at transactions.max_bytes, or when a partition has
 * TXN_PART_BATCHES batches in it. One transaction is under way at a time
 * (Kafka allows one per transactional id); up to transactions.max_inflight
 * closed ones wait behind it, beyond which clients are paused.
 *
 * Completion is by id, as in upgrade.h: client_slot_done(px, client_id,
 * token, resp) once per accepted request, later, from the event loop.
 */
#ifndef EOSPROXY_TXN_H
#define EOSPROXY_TXN_H

#include "kproto.h"

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct broker;
struct evbuffer;
struct txn;

/*
 * Batches of one partition in one transaction. They go in order on one
 * connection, one per ProduceRequest (a request carries one batch per
 * partition), so the bound is the requests a transaction may need per
 * broker, not Kafka's five in flight for retries: eosproxy never retries a
 * batch inside a transaction (a failure aborts it).
 */
#define TXN_PART_BATCHES 64

/*
 * The engine's bounds and hooks for tests, as upgrade.h's struct
 * upgrade_opts. A member left 0 or NULL takes eosproxy's default (the
 * bounds txn.c documents, and client_slot_done /
 * client_resume_upgrade_paused / client_slot_waiting / CLOCK_MONOTONIC).
 * Only tests set these: tests/fuzz/fuzz_txn.c shrinks the bounds so a small
 * input reaches each of them, plays the clock and the clients.
 */
struct txn_opts {
    size_t max_requests;      /* client requests held; beyond: REQUEST_TIMED_OUT */
    size_t max_bytes;         /* bytes held; beyond: REQUEST_TIMED_OUT, busy above half */
    size_t max_partitions;    /* partitions with sequences (unused ones forgotten) */
    uint64_t (*now_ms)(void); /* monotonic clock, ms */
    void (*slot_done)(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp);
    void (*resume)(struct proxy *px);
    int (*slot_waiting)(struct proxy *px, uint64_t client_id, uint64_t token);
};

/* Creates the engine; it finds its coordinator lazily. NULL on OOM. */
struct txn *txn_new(struct proxy *px);
/* The same with opts (NULL: txn_new); opts is copied. */
struct txn *txn_new_opts(struct proxy *px, const struct txn_opts *opts);
/* Fails what is pending (clients' slots are dropped), closes; NULL safe. */
void txn_free(struct txn *t);

/*
 * Takes a client's validated ProduceRequest (as upgrade_submit: frame is
 * the bytes after the size prefix, h its header, b the broker it arrived
 * for). The engine copies what it keeps. acks_zero: no response is
 * expected (done is called with resp NULL). Returns 0 when accepted, or a
 * Kafka ErrorCode for every partition: PRODUCER_FENCED while another
 * instance holds the transactional id, REQUEST_TIMED_OUT at a bound,
 * INVALID_REQUEST for a version the engine does not handle.
 */
int txn_submit(struct txn *t, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
               size_t len, int acks_zero, uint64_t client_id, uint64_t token);

/* 1 while the engine holds more than it should take (the caller pauses the
 * client; client_resume_upgrade_paused follows once it has drained). */
int txn_busy(const struct txn *t);

/* The transactional id in use (for logs and tests). */
const char *txn_id(const struct txn *t);

#endif
