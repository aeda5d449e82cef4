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
 * idle) or transactions.quiet without a request, at
 * transactions.max_bytes, or when a partition has TXN_PART_BATCHES
 * batches in it. One transaction is under way at a time per transactional
 * id (Kafka allows one); up to transactions.max_inflight closed ones wait
 * behind it, beyond which clients are paused.
 *
 * Pool (transactions.pool > 1, the unbound route only): the engine
 * txn_new returns owns that many engines, one per id (transactions.id,
 * then "<id>.1", "<id>.2"...), so that one id commits while the next
 * transaction is written. txn_submit hands each request to one of them
 * (txn.c pick); a transaction sends its batches only after every earlier
 * one of the pool had its batches answered, so a partition's records keep
 * their arrival order. Every id is initialized before the first
 * transaction begins.
 *
 * Bound mode (a rule's transactional.bind_group): one engine per consumer
 * group, under "<transactions.id>-<group>". Its Kafka transaction stays
 * open across many client requests, each acknowledged as soon as its
 * batches are written (uncommitted); the group's next OffsetCommit through
 * eosproxy becomes AddOffsetsToTxn + TxnOffsetCommit (with the member's
 * generation) + EndTxn(COMMIT), and is answered after it. Output whose
 * acknowledged records were aborted (a failed write, a client gone,
 * transactions.timeout) dooms the transaction: the group's next commit is
 * refused with ILLEGAL_GENERATION, on which the consumer reads again from
 * its committed offsets. A rebalance (JoinGroup, LeaveGroup) aborts output
 * not covered by a commit yet.
 *
 * Completion is by id, as in upgrade.h: px->done.slot_done(px, client_id,
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
 * bounds txn.c documents, and px->done's slot_done, resume and
 * slot_waiting (engine.h) / CLOCK_MONOTONIC).
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
/* The same with opts (NULL: the defaults; copied), bound to consumer
 * group `group` when not NULL (copied). */
struct txn *txn_new_opts(struct proxy *px, const char *group, const struct txn_opts *opts);
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
 * client; px->done.resume follows once it has drained). */
int txn_busy(const struct txn *t);

/* The transactional id in use (for logs and tests). */
const char *txn_id(const struct txn *t);
/* The bound group, or NULL for the unbound engine. */
const char *txn_group(const struct txn *t);

enum {
    TXN_COMMIT_PASS = 0,  /* not taken: forward the OffsetCommit unchanged */
    TXN_COMMIT_TAKEN = 1, /* answered later through slot_done */
    TXN_COMMIT_BUSY = 2,  /* at a bound: answer COORDINATOR_LOAD_IN_PROGRESS (retriable) */
};

/*
 * Takes a client's validated OffsetCommit (frame: the bytes after the size
 * prefix, h its header) for the bound group. With no output of the group
 * pending, nothing needs binding: TXN_COMMIT_PASS. Otherwise the commit
 * queues behind the group's output (TXN_COMMIT_TAKEN) and is answered
 * once the transaction committed, or with an error (see txn.c).
 */
int txn_commit_submit(struct txn *t, const kreq_hdr_t *h, const uint8_t *frame, size_t len,
                      uint64_t client_id, uint64_t token);

/*
 * The bound group rebalances (a JoinGroup or LeaveGroup of it went
 * through eosproxy; why names it for the log). What is queued now is
 * written, then the Kafka transaction is aborted: output of input the
 * member reads again, or may keep (cooperative, static membership). If
 * some of it was acknowledged, the group's next commit is refused too,
 * unless a refusal came since the last commit that went through: a
 * refused consumer rejoins with its partitions lost and reads them again.
 */
void txn_group_rebalance(struct txn *t, const char *why);

#endif
