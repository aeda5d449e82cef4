/*
 * dedup.h - consumer dedup by eventId, kept in Redis.
 *
 * For topics whose rule has `dedup`, eosproxy holds each Fetch response,
 * extracts the eventIds of its records, asks Redis about all of them in one
 * pipelined round trip, drops duplicates, and releases the re-encoded
 * response to the client. A record is *pending* when first handed to a
 * consumer of the scope and *done* when that consumer commits an offset
 * past it (OffsetCommit / TxnOffsetCommit through eosproxy, on a successful
 * response). Semantics, Redis keys and the outage policy are documented in
 * dedup.c and README.md ("Consumer dedup").
 *
 * Completion is by id (px->done.slot_done, engine.h), as for the upgrade engine: the
 * engine's callbacks may outlive the client.
 */
#ifndef EOSPROXY_DEDUP_H
#define EOSPROXY_DEDUP_H

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct dedup;

/*
 * Bounds of the held Fetch responses. A response's dedup partitions are
 * scanned batch by batch; once the next batch would take the response past
 * DEDUP_JOB_MAX_RECORDS records (a batch counts as one at least) or
 * DEDUP_JOB_MAX_INFLATED decompressed bytes, that partition is cut before
 * it and every later dedup partition is answered without records: the
 * client fetches them again. The first batch is always taken, so a
 * partition always moves on; a batch of more than DEDUP_JOB_MAX_RECORDS
 * records alone is passed unchecked. The frames held, their decompressed
 * bytes and an estimate of their decoded records stay within
 * DEDUP_MAX_HELD_BYTES in all; a response that does not fit follows
 * redis.on_unavailable (block: error 6 for its dedup partitions at once;
 * pass: delivered unchecked).
 */
#define DEDUP_JOB_MAX_RECORDS 200000u
#define DEDUP_JOB_MAX_INFLATED (128u << 20)
#define DEDUP_MAX_HELD_BYTES (512u << 20)

/* Creates the engine and starts connecting to redis.url. NULL on error. */
struct dedup *dedup_new(struct proxy *px);
/* dedup_free(NULL) is safe; pending callbacks are cancelled. */
void dedup_free(struct dedup *d);

/*
 * A Fetch response (frame: bytes after the size prefix) of version ver for
 * the client's request (client_id, token). Returns 1 if the engine took it
 * (it will call px->done.slot_done(px, client_id, token, resp) exactly once),
 * 0 if no partition of it is a dedup topic (the caller forwards the frame
 * unchanged), -1 if the frame is malformed (the caller closes).
 */
int dedup_fetch_response(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                         uint64_t client_id, uint64_t token);

/*
 * OffsetCommit (api 8) or TxnOffsetCommit (api 28) request of version ver,
 * seen before it is forwarded: the engine remembers its offsets under
 * (client_id, correlation_id). The matching response (frame) is passed to
 * dedup_commit_response; partitions committed without error turn the
 * eventIds this scope delivered below the committed offset into done.
 */
void dedup_commit_request(struct dedup *d, int16_t api_key, int16_t ver, const uint8_t *frame,
                          size_t len, uint64_t client_id, int32_t correlation_id);
void dedup_commit_response(struct dedup *d, int16_t api_key, int16_t ver, const uint8_t *frame,
                           size_t len, uint64_t client_id, int32_t correlation_id);

/*
 * EndTxn (api 26) request and response: offsets a TxnOffsetCommit carried
 * become done only when the transaction they belong to commits; an abort
 * leaves the records pending (delivered again at the same position).
 */
void dedup_endtxn_request(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                          uint64_t client_id, int32_t correlation_id);
void dedup_endtxn_response(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                           uint64_t client_id, int32_t correlation_id);

/* A client connection closed: forget its commit bookkeeping. */
void dedup_client_gone(struct dedup *d, uint64_t client_id);

/*
 * Test hooks, for tests only (tests/fuzz/fuzz_dedup.c, tests/unit/test_dedup.c).
 * answer: where answers go instead of px->done.slot_done (same contract:
 *   once per taken response, from the loop; resp is the callee's).
 * now_ms: the engine's clock; when set, the 100 ms tick no longer runs by
 *   itself and dedup_test_tick() runs it once.
 * job_max_records, job_max_inflated, max_held_bytes: smaller bounds than
 *   DEDUP_JOB_MAX_RECORDS, DEDUP_JOB_MAX_INFLATED, DEDUP_MAX_HELD_BYTES.
 * Zero / NULL members keep the defaults.
 */
struct evbuffer;
struct dlqw_record;
typedef struct dedup_test_hooks {
    void (*answer)(void *arg, uint64_t client_id, uint64_t token, struct evbuffer *resp);
    /* dead-letter writes go here instead of the writer (dlqw_send's
     * contract: an id > 0, then cb exactly once unless dlq_cancel(id);
     * 0 = refused, cb never runs) */
    uint64_t (*dlq_send)(void *arg, const struct dlqw_record *r,
                         void (*cb)(void *cbarg, uint64_t id, int err, const char *errstr,
                                    int64_t offset),
                         void *cbarg);
    void (*dlq_cancel)(void *arg, uint64_t id);
    uint64_t (*now_ms)(void *arg);
    void *arg;
    size_t job_max_records;
    size_t job_max_inflated;
    size_t max_held_bytes;
} dedup_test_hooks_t;
void dedup_set_test_hooks(struct dedup *d, const dedup_test_hooks_t *hooks);
void dedup_test_tick(struct dedup *d);

#endif
