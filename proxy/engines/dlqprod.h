/*
 * dlqprod.h - producer-path dead-letter routing (issue 11, item 4).
 *
 * Two jobs on ProduceRequests (v3+, RecordBatch v2), for topics whose
 * rule asks for them:
 *
 * 1. The rule's own checks, before anything is forwarded. A topic whose
 *    rule has dedup.require_event_id needs an eventId (dedup.event_id) in
 *    every record. A partition with records that have none is
 *      - with dlq.on_produce_error reject (or no dlq section), or a batch
 *        that carries a producer id (the client's own sequences must not
 *        change): taken out of the request and answered INVALID_RECORD
 *        (87), as a broker answers a batch it cannot accept; the other
 *        partitions go on;
 *      - with on_produce_error dlq: its failing records are written to the
 *        DLQ topic first (the dead-letter writer, acks=all); once every
 *        write is acknowledged the request goes on without them: the batch
 *        re-encoded with the records kept (offset deltas renumbered
 *        0..n-1, recordCount and lastOffsetDelta to match, as a broker
 *        requires of a produced batch), or the partition answered
 *        ErrorCode 0, base offset -1, when none is left. A DLQ write that
 *        fails makes the partition INVALID_RECORD, as with reject.
 *    While a request waits for its DLQ writes, its client's later requests
 *    wait too (the caller stops reading them), so a client's order on the
 *    wire is kept.
 *
 * 2. Broker refusals for good (ErrorCode 2 CORRUPT_MESSAGE, 10
 *    MESSAGE_TOO_LARGE, 44 POLICY_VIOLATION, 87 INVALID_RECORD) for topics
 *    with on_produce_error dlq, on the pass-through and idempotent-upgrade
 *    routes: the batches of those partitions are kept (copied) until the
 *    response; a refused batch's records are written again one by one to
 *    the same topic and partition (a writer with one record per batch), and
 *    the records refused again for good go to the DLQ. When every record
 *    is written or dead-lettered, the partition's ErrorCode becomes 0
 *    (base offset -1: the records have offsets of their own, not one
 *    range). If a write fails otherwise, the client gets the broker's
 *    original error for that partition (records rewritten before the
 *    failure stay written).
 *
 * Dead-letter records carry the original key, value, headers and
 * timestamp and Spring's DLT headers (kdlt.h) with offset -1: the record
 * never had an offset in its topic.
 *
 * Not handled (the client gets what the broker said): acks=0 requests
 * (no answer to act on), batches with a producer id (the client's own
 * idempotent or transactional producer), the transactional route, and
 * batches that cannot be decoded.
 *
 * Bounds: batches kept for part 2, DLQPROD_MAX_KEPT_BYTES in all; a
 * request that would exceed it is refused with REQUEST_TIMED_OUT (the
 * client retries), logged and counted in eosproxy_dlq_writes_refused_total.
 * Part 1 holds at most one request per client (the client is paused), as a
 * plan of owned copies, no larger than the request.
 *
 * Everything runs on the loop's thread. Completion is by id (client id,
 * FIFO token) through the hooks the caller registers.
 */
#ifndef EOSPROXY_DLQPROD_H
#define EOSPROXY_DLQPROD_H

#include "kbuf.h"
#include "kproduce.h"
#include "kproto.h"
#include "krecords.h"

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct evbuffer;
struct policy;
struct policy_rule;
struct dlqprod;
struct dlqprod_req;

/* Bytes of batches kept until their response, across all clients. */
#define DLQPROD_MAX_KEPT_BYTES (256u << 20)

/* ---- pure parts (unit-tested) ---- */

/* Why a record fails the rule's checks. */
enum dlqprod_verdict {
    DLQPROD_OK = 0,          /* it has an eventId */
    DLQPROD_NO_EVENT_ID = 1, /* no eventId (missing, null, empty, JSON without the field) */
    DLQPROD_NOT_JSON = 2,    /* json:FIELD and the value is not well-formed JSON */
};

/*
 * The verdict on record r for an eventId from (src, name) (enum
 * krecords_id_src; name NULL for the key). A value that is JSON but not an
 * object, or an object without a usable field, has no eventId.
 */
int dlqprod_classify(const krec_t *r, int src, const char *name);

/* 1 for the ErrorCodes a broker gives a batch it refuses for good. */
int dlqprod_is_refusal(int16_t error_code);

/* "MESSAGE_TOO_LARGE" ... for the codes above, else "ERROR". */
const char *dlqprod_error_name(int16_t error_code);

/*
 * Appends to w a batch for ProduceRequest made of b's records whose keep[i]
 * is non-zero (at least one): same baseOffset, producer fields, attributes
 * and codec; kept records byte for byte except their offsetDelta, which
 * becomes 0..kept-1; recordCount = kept, lastOffsetDelta = kept-1,
 * maxTimestamp the largest kept timestamp (CreateTime); new CRC-32C.
 * Returns 0, or -1 (w->len restored unless w->err).
 */
int dlqprod_rebatch(kwriter_t *w, const krecords_batch_t *b, const uint8_t *keep);

/* One partition answer eosproxy sets in a ProduceResponse (views). */
typedef struct dlqprod_answer {
    const char *topic;
    size_t topic_len;
    int32_t partition;
    int16_t error_code;
    int64_t base_offset;
} dlqprod_answer_t;

/*
 * Appends a complete ProduceResponse frame (size prefix included) of
 * version ver: base's topics and partitions (NULL: none; correlation id
 * corr then, throttle 0), where each answer replaces the partition it
 * names (ErrorCode, BaseOffset; LogAppendTime -1, no record errors, no
 * error message) or is added (to its topic, or as a new topic). Returns 0,
 * or -1 (OOM, or the writer failed).
 */
int dlqprod_resp_write(kwriter_t *w, int16_t ver, const kproduce_resp_t *base, int32_t corr,
                       const dlqprod_answer_t *ans, size_t n);

/* ---- the engine ---- */

/*
 * How the engine reports: slot_done answers FIFO slot (client_id, token)
 * with a complete ProduceResponse (ownership taken; see engine.h);
 * hold_done hands back a request held for its DLQ writes (check result
 * DLQPROD_HOLD), whose client may have gone: the callee owns req then.
 */
struct dlqprod_hooks {
    void (*slot_done)(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp);
    void (*hold_done)(struct proxy *px, uint64_t client_id, struct dlqprod_req *req);
};

/*
 * A new engine for px with hooks (copied); px owns it (px->dlqprod). NULL
 * when out of memory (logged). Needs px->dlqw for dead letters; without it
 * (no rule has dlq) the checks still refuse.
 */
struct dlqprod *dlqprod_new(struct proxy *px, const struct dlqprod_hooks *hooks);

/* Stops the engine: writes in flight are abandoned (their requests freed,
 * no hook runs). Call before px->dlqw is freed. dlqprod_free(NULL) is safe. */
void dlqprod_free(struct dlqprod *dp);

/* 1 if some rule of p needs this module on the producer path. */
int dlqprod_policy_active(const struct policy *p);

/* Results of dlqprod_check. */
enum {
    DLQPROD_PASS = 0,    /* nothing to change: go on with the frame as it is */
    DLQPROD_REWRITE = 1, /* go on with dlqprod_req_frame's frame; merge answers later */
    DLQPROD_HOLD = 2,    /* DLQ writes started; hold_done brings the request back */
};

/*
 * Runs the rule's checks on a validated ProduceRequest (frame after the
 * size prefix, h its header; acks as kproto_produce_acks said). For
 * REWRITE *out is the request's plan (the caller owns it); for HOLD the
 * engine owns it until hold_done. Out of memory or an undecodable batch
 * gives PASS for what it touches (the broker then judges).
 */
int dlqprod_check(struct dlqprod *dp, const struct policy *pol, const kreq_hdr_t *h,
                  const uint8_t *frame, size_t size, int acks, uint64_t client_id,
                  struct dlqprod_req **out);

/*
 * The request to go on with, from a plan: appends a complete frame (size
 * prefix, header, body with the partitions left) to w and returns the
 * number of partitions in it (0: nothing to forward; answer with
 * dlqprod_req_answer). -1 on a writer failure.
 */
int dlqprod_req_frame(const struct dlqprod_req *req, kwriter_t *w);

/* The version, correlation id and acks of the request a plan came from. */
void dlqprod_req_info(const struct dlqprod_req *req, int16_t *ver, int32_t *corr, int *acks);

/*
 * Keeps copies of the batches of partitions whose rule has
 * on_produce_error dlq (and no producer id), for the response. *req is
 * created if NULL and nothing is kept when there is nothing to keep.
 * Returns 0, or -1 when DLQPROD_MAX_KEPT_BYTES would be exceeded or memory
 * is short (logged at most every 10 s, counted; nothing kept): the caller
 * refuses the request with REQUEST_TIMED_OUT.
 */
int dlqprod_keep(struct dlqprod *dp, const struct policy *pol, const kproduce_req_t *preq,
                 struct dlqprod_req **req);

/* 1 if req keeps batches that a response may send back for rewriting. */
int dlqprod_req_keeps(const struct dlqprod_req *req);

/*
 * The response to req's request (frame after the size prefix, version
 * ver). Returns 1 when refused batches are being written again: the engine
 * took req and will answer slot (client_id, token) through slot_done; 0
 * when nothing was refused (req stays the caller's, for
 * dlqprod_req_merge).
 */
int dlqprod_response(struct dlqprod *dp, struct dlqprod_req *req, int16_t ver, const uint8_t *frame,
                     size_t len, uint64_t client_id, uint64_t token);

/*
 * Appends to w the response frame (size prefix included) made of the
 * broker's (frame after its size prefix; NULL for none, e.g. every
 * partition was taken out) with req's own partition answers merged in.
 * Returns 0, or -1 (a malformed response: nothing written).
 */
int dlqprod_req_merge(const struct dlqprod_req *req, int16_t ver, int32_t corr,
                      const uint8_t *frame, size_t len, kwriter_t *w);

/* 1 if req has partition answers of its own to merge. */
int dlqprod_req_answers(const struct dlqprod_req *req);

/* Frees a request the caller owns; NULL is safe. */
void dlqprod_req_free(struct dlqprod_req *req);

#endif
