/*
 * upgrade.c - the idempotent upgrade engine. See upgrade.h.
 *
 * A client ProduceRequest is copied once (a reqbuf) and parsed; each
 * partition's batch is fingerprinted (topic, partition,
 * krecord_fingerprint). A batch already in flight or completed recently
 * answers from there (a client retry absorbed); otherwise it becomes a
 * "ubatch", which points into the request's copy, and is queued on its
 * partition. Up to UPG_PART_INFLIGHT batches of a partition are on the
 * wire at once, in queue order, all to one broker (the partition's leader:
 * the broker the client sent it to, until a broker answers that it does
 * not lead the partition or the lane to it fails; then nothing of the
 * partition is sent until the engine's own Metadata request, on a lane,
 * names the leader); a batch gets eosproxy's
 * producer id, epoch and the partition's next sequence when first sent
 * under a producer generation, and keeps them for every retry. Nothing of
 * a partition is sent past a batch that waits for its backoff, or past an
 * attempt still on the wire under an older generation (if the broker
 * rejects it, it is resent under the new one and must keep its place).
 * Batches for the same broker travel together in one ProduceRequest on
 * that broker's lane (lane.h), one batch per partition each; the header
 * is rewritten in place and its CRC patched (krecord_set_producer), and
 * the lane writes the batch from the request's copy (engine_produce_frame), so
 * the records are copied once in all.
 * When every partition of a client request has an outcome, the
 * ProduceResponse is built in the client's version and handed to
 * px->done.slot_done (engine.h; later, from the event loop, never inside
 * submit).
 *
 * Error table (upstream partition ErrorCode -> what eosproxy does):
 *
 *   0 NONE                          success: client gets the base offset;
 *                                   the result is cached for client retries
 *   46 DUPLICATE_SEQUENCE_NUMBER    success (the broker already holds the
 *                                   batch); base offset from the broker's
 *                                   answer, -1 if it gives none
 *   7 REQUEST_TIMED_OUT,            "may or may not be written": retried by
 *   13 NETWORK_EXCEPTION,           eosproxy with the SAME producer id,
 *   19 NOT_ENOUGH_REPLICAS,         epoch and sequence, backoff 100 ms
 *   20 NOT_ENOUGH_REPLICAS_AFTER_   doubling to 1 s, until success or the
 *      APPEND, lane disconnects,    delivery timeout (120 s from submit);
 *      overdue or malformed         then the client gets REQUEST_TIMED_OUT
 *      responses                    and the producer epoch is bumped so the
 *                                   old attempt can never be written later.
 *                                   13 and lost answers also put the
 *                                   partition's leader in doubt (below)
 *   6 NOT_LEADER_OR_FOLLOWER,       "this broker wrote nothing", but an
 *   3 UNKNOWN_TOPIC_OR_PARTITION,   earlier attempt (to a leader since
 *   5 LEADER_NOT_AVAILABLE,         gone) may have been written and
 *   74 FENCED_LEADER_EPOCH,         replicated: the sequence is kept, the
 *   75 UNKNOWN_LEADER_EPOCH,        partition waits for the leader a
 *   56 KAFKA_STORAGE_ERROR          Metadata request of the engine's own
 *                                   names, and the SAME batch goes there
 *                                   with the same ids (a write that did
 *                                   land answers 46 or 0 with its offset);
 *                                   backoff and delivery timeout as above
 *   45 OUT_OF_ORDER_SEQUENCE_NUMBER, safe reset: eosproxy renews its
 *   47 INVALID_PRODUCER_EPOCH,      producer (KIP-360 epoch bump with
 *   59 UNKNOWN_PRODUCER_ID,         InitProducerId v3+; once a broker
 *                                   refuses a bump, e.g. 49 for a null
 *                                   transactional id, a fresh id);
 *   90 PRODUCER_FENCED              sequences restart at 0 on every
 *                                   partition and the rejected batch is
 *                                   resent under the new epoch; the client
 *                                   sees only the final outcome
 *   2 CORRUPT_MESSAGE, 10 MESSAGE_  non-retriable: returned to the client
 *   TOO_LARGE, 18 RECORD_LIST_TOO_  as is, sequence rolled back (the broker
 *   LARGE, 21 INVALID_REQUIRED_     validated before appending) unless an
 *   ACKS, 29 TOPIC_AUTHORIZATION_   earlier attempt may have been written
 *   FAILED, 87 INVALID_RECORD,      (then the epoch is bumped instead)
 *   76 UNSUPPORTED_COMPRESSION_
 *   TYPE, 43 UNSUPPORTED_FOR_
 *   MESSAGE_FORMAT, any other
 *
 * Answers eosproxy makes itself: a batch that fails the broker's own
 * checks (kproduce_check_records: CRC, count, more than one batch) gets
 * CORRUPT_MESSAGE / INVALID_RECORD without going upstream; a batch that
 * already carries a producer id gets INVALID_RECORD (the caller routes
 * those around the engine); a request that would exceed the engine's
 * bounds (requests, bytes, partitions, cache of in-flight batches) gets
 * REQUEST_TIMED_OUT, which clients retry; Produce v0..v2 (message format
 * < 2) get UNSUPPORTED_FOR_MESSAGE_FORMAT from upgrade_submit.
 *
 * Bounds (struct upgrade_opts; defaults below), and what each does when
 * reached. Every loop over them is bounded by what they hold:
 *   client requests held (100,000) and bytes held (256 MiB: the requests'
 *     copies, each counted until its last batch is done): the request
 *     that does not fit gets REQUEST_TIMED_OUT,
 *     with a log line per bound every 10 s (log_refused) and
 *     eosproxy_upgrade_refused_total; backpressure (48/16 MiB) normally
 *     keeps the engine far below;
 *   partitions with sequence state (65,536): the table grows to it; when
 *     full, every idle partition is forgotten (and the producer renewed if
 *     one had sequences under it); if none is idle, REQUEST_TIMED_OUT;
 *   fingerprint cache (100,000 batches, 10 min): grows to it; done entries
 *     are evicted oldest first; when every entry is a batch in flight, the
 *     new batch gets REQUEST_TIMED_OUT;
 *   bytes per lane (64 MiB): a flight the lane refuses waits a backoff;
 *   one upstream ProduceRequest: 1 MiB of batches (at least one);
 *   leader look-ups: one Metadata request in flight, for at most 64
 *     topics, at least 100 ms apart (doubling to 1 s while answers bring
 *     no leader); a partition waits for its leader no longer than the
 *     delivery timeout.
 * The per-flight and per-tick work is O(partitions in it) or O(active
 * partitions), never O(partitions squared) or O(queued batches).
 *
 * Known limits: equal batches (same records, same timestamps) in a
 * partition are told apart by timing only (is_client_retry); a batch
 * whose retries straddle a producer renewal is resent under the new epoch
 * (the broker cannot dedup across epochs).
 */
#include "upgrade.h"

#include "clock.h"
#include "config.h"
#include "kerror.h"
#include "kinitpid.h"
#include "kproduce.h"
#include "krecord.h"
#include "lane.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "reqbuf.h"
#include "seqstate.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define UPG_CLIENT_ID "eosproxy"
#define UPG_TXN_TIMEOUT_MS 60000
#define UPG_DELIVERY_TIMEOUT_MS 120000u
#define UPG_RETRY_BACKOFF_MS 100u
#define UPG_RETRY_BACKOFF_MAX_MS 1000u
#define UPG_PID_BACKOFF_MAX_MS 5000u
#define UPG_TICK_MS 50
#define UPG_MAX_REQUESTS 100000u
#define UPG_MAX_BYTES (256u << 20)
/* Backpressure watermarks on held bytes (see upgrade_busy). */
#define UPG_HIGH_BYTES (48u << 20)
#define UPG_LOW_BYTES (16u << 20)
#define UPG_LANE_MAX_BYTES (64u << 20)
#define UPG_FLIGHT_MAX_BYTES (1u << 20)
#define UPG_MAX_PARTITIONS 65536u
/* Batches of one partition on the wire at once (Kafka allows 5). */
#define UPG_PART_INFLIGHT 5
#define UPG_FPC_MAX 100000u
#define UPG_FPC_TTL_MS 600000u
/* At most one log line per bound this often (refusals come in bursts). */
#define UPG_LOG_EVERY_MS 10000u
/* Floor of the "in flight this long" test in is_client_retry. */
#define UPG_RETRY_MIN_GAP_MS 50u
/* The engine's own Metadata requests (leaders of partitions that lost
 * theirs): at most one in flight, at least this far apart, doubling while
 * answers bring no leader. */
#define UPG_MD_BACKOFF_MS 100u
#define UPG_MD_BACKOFF_MAX_MS 1000u
/* Topics in one such request (the rest wait for the next). */
#define UPG_MD_MAX_TOPICS 64
/* An unanswered one is given up this long after it was sent, and the next
 * goes to another broker. */
#define UPG_MD_TIMEOUT_MS 10000u
/* Pending bytes on the Metadata lane (one small request at a time). */
#define UPG_MD_LANE_MAX_BYTES (1u << 20)
/* Metadata versions the engine writes and parses (v1..v12). */
#define UPG_MD_MIN_VERSION 1
#define UPG_MD_MAX_VERSION 12
#define UPG_MD_FLEX_VERSION 9

enum pid_state { PID_NONE, PID_REQUESTING, PID_READY };

struct ready_key;

/* flush's arrays, UPG_PART_INFLIGHT per active partition; they only grow,
 * so a kick does not allocate (and zero) them again. */
struct flush_scratch {
    struct ubatch **ready, **group;
    struct ready_key *keys;
    size_t cap;
};

/* Refusals since the last log line, per bound; one line per UPG_LOG_EVERY_MS. */
struct refusals {
    uint64_t count[UPG_BOUNDS];
    uint64_t last_log_ms[UPG_BOUNDS];
};

struct ureq;

/* One partition slot of a client request waiting on a batch. */
struct waiter {
    struct ureq *r;
    kproduce_presp_t *slot;
    struct waiter *next;
};

/* A batch eosproxy writes upstream, shared by every request it answers. */
struct ubatch {
    struct upart *part;
    struct fpc_entry *fpe; /* its fingerprint, FPC_INFLIGHT */
    struct reqbuf *buf;    /* holds data */
    uint8_t *data;         /* the batch, in buf; rewritten in place */
    size_t size;
    int32_t record_count;
    int32_t node_id;    /* the broker of its latest attempt (upart.leader then) */
    int32_t timeout_ms; /* the client's ProduceRequest timeout */
    uint64_t gen;       /* producer generation of pid/epoch/seq; 0: none */
    int32_t seq;
    int on_wire;
    int ambiguous; /* an attempt under gen may have been written */
    uint64_t created_ms, not_before_ms, backoff_ms;
    struct waiter *waiters;
    TAILQ_ENTRY(ubatch) link;
};
TAILQ_HEAD(ubatch_q, ubatch);

/* Per (topic, partition): sequence state and the queue of batches. */
struct upart {
    struct seqpart sp; /* first: the seqtab entry */
    struct ubatch_q q;
    int active;
    /* Where its batches go: the broker the client sent the first queued
     * one to, then what the engine's own Metadata request says once a
     * broker answered "not the leader" or the lane to it failed. */
    int32_t leader;
    int stale;         /* waiting for a Metadata answer: nothing is sent */
    uint64_t in_group; /* flush: the group it has a batch in (u->stamp) */
    uint64_t held;     /* flush: the pass in which a batch of it could not go */
    TAILQ_ENTRY(upart) alink;
    TAILQ_ENTRY(upart) slink; /* on u->stale */
};
TAILQ_HEAD(upart_q, upart);

/* A client ProduceRequest being answered. */
struct ureq {
    uint64_t client_id, token;
    int16_t ver;
    int32_t corr;
    int acks_zero;
    struct reqbuf *buf; /* the frame (one holder); req and resp views point into it */
    kproduce_req_t req;
    kproduce_resp_t resp;   /* shaped like req */
    struct waiter *waiters; /* one per partition slot */
    int32_t nleft;
    int ready; /* on the done list */
    LIST_ENTRY(ureq) link;
    TAILQ_ENTRY(ureq) dlink;
};
LIST_HEAD(ureq_list, ureq);
TAILQ_HEAD(ureq_q, ureq);

/* One upstream ProduceRequest in flight on a lane. */
struct flight {
    struct upgrade *u;
    int16_t ver;
    int32_t n;
    LIST_ENTRY(flight) link;
    struct ubatch *b[];
};
LIST_HEAD(flight_list, flight);

/* An InitProducerId in flight. */
struct pidreq {
    struct upgrade *u;
    int16_t ver;
    int bump;
};

/* One of the engine's Metadata requests in flight. */
struct mdreq {
    struct upgrade *u;
    int16_t ver;
    int32_t node_id;
    uint64_t sent_ms;
};

struct upgrade {
    struct proxy *px;
    struct lane **lanes;
    size_t nlanes;
    enum pid_state pid_state;
    int64_t pid;
    int16_t epoch;
    uint64_t gen; /* bumped with every new pid/epoch; 0 = none yet */
    uint64_t pid_not_before_ms, pid_backoff_ms;
    size_t pid_rr;
    int bump_refused; /* a broker refused a KIP-360 bump: take fresh ids */
    struct pidreq *pidreq;
    struct seqtab parts;
    struct fpcache fpc;
    struct upart_q active;
    struct upart_q stale; /* partitions waiting for a leader */
    size_t nstale;
    struct mdreq *mdreq; /* the Metadata request in flight, if any */
    /* Its own lane (to one broker at a time): a broker answers a
     * connection's requests in order, and on a produce lane a Metadata
     * request would wait behind acks=all writes that wait for the replica
     * that just died. */
    struct lane *md_lane;
    uint64_t md_not_before_ms, md_backoff_ms;
    size_t md_rr; /* the broker asked next (index into px->brokers) */
    struct ureq_list reqs;
    struct ureq_q done;
    struct flight_list flights;
    size_t nreqs, bytes;
    struct event *kick, *tick;
    int closing;
    int busy;       /* over o.high_bytes: clients were paused */
    uint64_t stamp; /* flush passes and groups (upart.in_group, .held) */
    size_t nqueued; /* partitions with batches queued (the rest are idle) */
    size_t nactive; /* partitions on the active list */
    struct flush_scratch scratch;
    int forgot_current; /* part_idle dropped sequences of the current producer */
    struct refusals refused;
    struct upgrade_opts o; /* bounds and hooks, defaults filled in */
};

/* Runs kick_cb soon from the loop (coalesces many submits/responses). */
static void kick(struct upgrade *u)
{
    if (!u->closing && !event_pending(u->kick, EV_TIMEOUT, NULL))
        event_active(u->kick, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- classes */

enum err_class { EC_SUCCESS, EC_RETRY, EC_LEADER, EC_RESET, EC_FAIL };

/* Which row of the error table an upstream partition ErrorCode is in. */
static enum err_class classify(int16_t e)
{
    switch (e) {
    case KERR_NONE:
    case KERR_DUPLICATE_SEQUENCE_NUMBER:
        return EC_SUCCESS;
    case KERR_REQUEST_TIMED_OUT:
    case KERR_NETWORK_EXCEPTION:
    case KERR_NOT_ENOUGH_REPLICAS:
    case KERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return EC_RETRY;
    case KERR_UNKNOWN_TOPIC_OR_PARTITION:
    case KERR_LEADER_NOT_AVAILABLE:
    case KERR_NOT_LEADER_OR_FOLLOWER:
    case KERR_KAFKA_STORAGE_ERROR:
    case KERR_FENCED_LEADER_EPOCH:
    case KERR_UNKNOWN_LEADER_EPOCH:
        return EC_LEADER;
    case KERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case KERR_INVALID_PRODUCER_EPOCH:
    case KERR_UNKNOWN_PRODUCER_ID:
    case KERR_PRODUCER_FENCED:
        return EC_RESET;
    default:
        return EC_FAIL;
    }
}

/* ---------------------------------------------------------------- requests */

static void ureq_free(struct upgrade *u, struct ureq *r)
{
    if (r->resp.topics) {
        for (int32_t i = 0; i < r->resp.ntopics; i++)
            free(r->resp.topics[i].partitions);
        free(r->resp.topics);
    }
    kproduce_req_free(&r->req);
    free(r->waiters);
    if (r->buf)
        u->bytes -= reqbuf_release(r->buf);
    u->nreqs--;
    free(r);
}

/* Queues r for completion from the loop (never inside upgrade_submit). */
static void ureq_ready(struct upgrade *u, struct ureq *r)
{
    if (r->ready)
        return;
    r->ready = 1;
    TAILQ_INSERT_TAIL(&u->done, r, dlink);
    kick(u);
}

/* Builds r's ProduceResponse; NULL if acks=0 or out of memory (logged). */
static struct evbuffer *build_response(struct ureq *r)
{
    if (r->acks_zero)
        return NULL;
    r->resp.correlation_id = r->corr;
    return engine_produce_response(r->ver, &r->resp, r->client_id);
}

static void ureq_finish(struct upgrade *u, struct ureq *r)
{
    struct evbuffer *resp = build_response(r);
    LIST_REMOVE(r, link);
    u->o.slot_done(u->px, r->client_id, r->token, resp); /* takes resp */
    ureq_free(u, r);
}

static void set_slot(kproduce_presp_t *s, const struct fpc_result *res)
{
    s->error_code = res->error_code;
    s->base_offset = res->base_offset;
    s->log_append_time_ms = res->log_append_time_ms;
    s->log_start_offset = res->log_start_offset;
}

/* Gives every request waiting on b its outcome. */
static void answer_waiters(struct upgrade *u, struct ubatch *b, const struct fpc_result *res)
{
    struct waiter *w = b->waiters;
    b->waiters = NULL;
    for (; w; w = w->next) {
        set_slot(w->slot, res);
        if (--w->r->nleft == 0)
            ureq_ready(u, w->r);
    }
}

/* ---------------------------------------------------------------- batches */

static void part_activate(struct upgrade *u, struct upart *p)
{
    if (!p->active) {
        p->active = 1;
        u->nactive++;
        TAILQ_INSERT_TAIL(&u->active, p, alink);
    }
}

static void part_deactivate(struct upgrade *u, struct upart *p)
{
    if (p->active) {
        p->active = 0;
        u->nactive--;
        TAILQ_REMOVE(&u->active, p, alink);
    }
}

/*
 * p's leader is in doubt (a broker answered that it does not lead p, or
 * the lane to it failed): nothing of p is sent until the engine's own
 * Metadata request names the leader (start_metadata, md_done).
 */
static void part_stale(struct upgrade *u, struct upart *p)
{
    if (!p->stale) {
        p->stale = 1;
        u->nstale++;
        TAILQ_INSERT_TAIL(&u->stale, p, slink);
    }
}

static void part_unstale(struct upgrade *u, struct upart *p)
{
    if (p->stale) {
        p->stale = 0;
        u->nstale--;
        TAILQ_REMOVE(&u->stale, p, slink);
    }
}

static void ubatch_free(struct upgrade *u, struct ubatch *b)
{
    TAILQ_REMOVE(&b->part->q, b, link);
    if (TAILQ_EMPTY(&b->part->q)) {
        u->nqueued--;
        /* Nothing waits for a leader now; the next batch brings the
         * client's idea of it (new_batch). */
        part_unstale(u, b->part);
    }
    u->bytes -= reqbuf_release(b->buf);
    free(b);
}

static void batch_succeeded(struct upgrade *u, struct ubatch *b, const struct fpc_result *res)
{
    g_metrics.upgraded_batches++;
    g_metrics.upgraded_records += (uint64_t)b->record_count;
    fpc_complete(&u->fpc, b->fpe, res, u->o.now_ms());
    answer_waiters(u, b, res);
    ubatch_free(u, b);
}

static void renew_producer(struct upgrade *u, const char *why);

/*
 * Fails b with ErrorCode e to its waiters. The fingerprint is dropped (the
 * client's retry is a new write). When no attempt under the current
 * producer may have been written, the sequence is given back. When one
 * may have been (a lost answer or a retriable error, whatever this last
 * attempt got), the sequence can never go to other content: a broker that
 * holds the first would take the other for a duplicate and drop it. The
 * epoch is bumped instead, fencing that attempt.
 */
static void batch_failed(struct upgrade *u, struct ubatch *b, int16_t e)
{
    if (b->gen && b->gen == u->gen) {
        if (b->ambiguous) {
            g_metrics.sequence_resets++;
            renew_producer(u, "a batch failed after an attempt that may have been written");
        } else if (!seq_rollback(&b->part->sp, b->gen, b->seq, b->record_count)) {
            /* Later batches hold later sequences: restart them all. */
            g_metrics.sequence_resets++;
            renew_producer(u, "a failed batch left a gap in the sequences");
        }
    }
    struct fpc_result res = {e, -1, -1, -1};
    /* Kept as a tombstone: an equal batch that comes later may be the
     * client's retry of this one or a distinct twin, so it is written and
     * never absorbed (see submit_partition). */
    b->fpe->failed = 1;
    fpc_complete(&u->fpc, b->fpe, &res, u->o.now_ms());
    answer_waiters(u, b, &res);
    ubatch_free(u, b);
}

/*
 * Retries b with the same ids after a backoff. maybe_written: the attempt
 * may have been written ("may or may not be written"), so its sequence
 * can never go to other content (batch_failed); else the broker answered
 * that it wrote nothing (it does not lead the partition), which says
 * nothing about earlier attempts, so b keeps what it was.
 */
static void batch_retry(struct upgrade *u, struct ubatch *b, int maybe_written, uint64_t now)
{
    if (maybe_written)
        b->ambiguous = 1;
    if (now - b->created_ms >= u->o.delivery_timeout_ms) {
        log_warn("upgrade: %s-%d: delivery timeout; answering REQUEST_TIMED_OUT", b->part->sp.topic,
                 (int)b->part->sp.partition);
        batch_failed(u, b, KERR_REQUEST_TIMED_OUT);
        return;
    }
    g_metrics.upstream_retries++;
    b->not_before_ms = now + b->backoff_ms;
    b->backoff_ms *= 2;
    if (b->backoff_ms > UPG_RETRY_BACKOFF_MAX_MS)
        b->backoff_ms = UPG_RETRY_BACKOFF_MAX_MS;
}

/* Applies one upstream partition outcome to b. */
static void batch_outcome(struct upgrade *u, struct ubatch *b, const kproduce_presp_t *p,
                          uint64_t now)
{
    int16_t e = p ? p->error_code : KERR_NETWORK_EXCEPTION;
    switch (classify(e)) {
    case EC_SUCCESS: {
        struct fpc_result res = {0, e == KERR_NONE ? p->base_offset : -1, p->log_append_time_ms,
                                 p->log_start_offset};
        batch_succeeded(u, b, &res);
        break;
    }
    case EC_RETRY:
        /* A lost answer (p NULL: lane failure, malformed or missing) or a
         * network error: the broker may be gone, so its leadership is in
         * doubt too. */
        if (!p || e == KERR_NETWORK_EXCEPTION)
            part_stale(u, b->part);
        batch_retry(u, b, 1, now);
        break;
    case EC_LEADER:
        /*
         * This broker wrote nothing, but an earlier attempt (to a leader
         * that died, say) may have been written and replicated: the
         * sequence is not given back. The same batch goes to the leader
         * the cluster names now, with the same ids, where a write that
         * did land answers as a duplicate (Kafka's producer does the same).
         */
        part_stale(u, b->part);
        batch_retry(u, b, 0, now);
        break;
    case EC_RESET:
        if (e == KERR_OUT_OF_ORDER_SEQUENCE_NUMBER && TAILQ_FIRST(&b->part->q) != b) {
            /* An earlier batch of the partition is being retried, so the
             * broker saw a gap: this one goes again after it, same ids. */
            b->not_before_ms = now;
            break;
        }
        log_warn("upgrade: %s-%d: ErrorCode %d for producer id %lld epoch %d; renewing",
                 b->part->sp.topic, (int)b->part->sp.partition, (int)e, (long long)u->pid,
                 (int)u->epoch);
        if (b->gen == u->gen) {
            g_metrics.sequence_resets++;
            renew_producer(u, "the broker rejected the producer state");
        }
        b->gen = 0; /* resent with the new producer's ids */
        b->ambiguous = 0;
        break;
    default:
        batch_failed(u, b, e);
        break;
    }
}

/* ---------------------------------------------------------------- lanes */

static struct lane *lane_for(struct upgrade *u, int32_t node_id)
{
    for (size_t i = 0; i < u->nlanes; i++)
        if (lane_node_id(u->lanes[i]) == node_id)
            return u->lanes[i];
    struct lane **nl = realloc(u->lanes, (u->nlanes + 1) * sizeof(*nl));
    if (!nl)
        return NULL;
    u->lanes = nl;
    struct lane *l = lane_new(u->px, node_id, u->o.lane_max_bytes);
    if (!l)
        return NULL;
    u->lanes[u->nlanes++] = l;
    return l;
}

static int16_t produce_version(const struct upgrade *u)
{
    int16_t v = u->px->versions[KAPI_Produce].max_ver;
    if (v > KPRODUCE_MAX_VERSION)
        v = KPRODUCE_MAX_VERSION;
    return v < KPRODUCE_MIN_VERSION ? KPRODUCE_MIN_VERSION : v;
}

/* Where a batch's outcome is in a ProduceResponse: topic t, partition p. */
struct presp_pos {
    int32_t t, p;
};

static int presp_is(const kproduce_resp_t *resp, struct presp_pos at, const struct seqpart *sp)
{
    const kproduce_tresp_t *t = &resp->topics[at.t];
    return t->partitions[at.p].index == sp->partition && (size_t)t->name.len == sp->topic_len &&
           !memcmp(t->name.ptr, sp->topic, sp->topic_len);
}

/*
 * The outcome of (topic, partition) in an upstream response, or NULL. A
 * broker answers in the request's order, so it is normally at *next (then
 * one step); otherwise the whole response is searched and *next moves
 * past where it was found. Either way an ordinary flight costs
 * O(partitions), not O(partitions^2).
 */
static const kproduce_presp_t *find_presp(const kproduce_resp_t *resp, struct presp_pos *next,
                                          const struct seqpart *sp)
{
    while (next->t < resp->ntopics && next->p >= resp->topics[next->t].npartitions)
        *next = (struct presp_pos){next->t + 1, 0};
    struct presp_pos at = *next;
    if (at.t >= resp->ntopics || !presp_is(resp, at, sp)) {
        for (at.t = 0; at.t < resp->ntopics; at.t++)
            for (at.p = 0; at.p < resp->topics[at.t].npartitions; at.p++)
                if (presp_is(resp, at, sp))
                    goto found;
        return NULL;
    }
found:
    *next = (struct presp_pos){at.t, at.p + 1};
    return &resp->topics[at.t].partitions[at.p];
}

static void flight_done(void *arg, const uint8_t *frame, size_t len)
{
    struct flight *f = arg;
    struct upgrade *u = f->u;
    LIST_REMOVE(f, link);
    if (u->closing) {
        free(f);
        return;
    }
    kproduce_resp_t resp;
    int parsed = frame && kproduce_resp_parse(f->ver, frame, len, &resp, NULL) == 0;
    if (frame && !parsed)
        log_warn("upgrade: malformed ProduceResponse; retrying its %d batches", (int)f->n);
    uint64_t now = u->o.now_ms();
    struct presp_pos next = {0, 0};
    for (int32_t i = 0; i < f->n; i++) {
        struct ubatch *b = f->b[i];
        b->on_wire = 0;
        batch_outcome(u, b, parsed ? find_presp(&resp, &next, &b->part->sp) : NULL, now);
    }
    if (parsed)
        kproduce_resp_free(&resp);
    free(f);
    kick(u);
}

/* Hands the frame built in w to lane l (w is left empty). As lane_send. */
static int send_writer(struct lane *l, kwriter_t *w, uint64_t timeout_ms, lane_cb cb, void *arg)
{
    size_t n;
    uint8_t *buf = kw_detach(w, &n);
    return lane_send(l, buf, n, timeout_ms, cb, arg);
}

/* Gives b eosproxy's ids under the current generation, once per generation. */
static void batch_stamp(struct upgrade *u, struct ubatch *b)
{
    if (b->gen == u->gen)
        return;
    b->seq = seq_assign(&b->part->sp, u->gen, b->record_count);
    b->gen = u->gen;
    b->ambiguous = 0;
    krecord_set_producer(b->data, b->size, u->pid, u->epoch, b->seq, 0);
}

/* The timeout a broker gets to wait for the replicas: the client's, but
 * never past the delivery timeout (a client may send INT32_MAX, and a
 * batch on the wire is not expired). */
static int32_t upstream_timeout(const struct upgrade *u, int32_t client_ms)
{
    uint64_t cap = u->o.delivery_timeout_ms < INT32_MAX ? u->o.delivery_timeout_ms : INT32_MAX;
    return client_ms > 0 && (uint64_t)client_ms > cap ? (int32_t)cap : client_ms;
}

/* Orders batches by topic name, so each topic's partitions are adjacent. */
static int by_topic(const void *x, const void *y)
{
    const struct seqpart *a = &(*(struct ubatch *const *)x)->part->sp;
    const struct seqpart *b = &(*(struct ubatch *const *)y)->part->sp;
    if (a->topic_len != b->topic_len)
        return a->topic_len < b->topic_len ? -1 : 1;
    return memcmp(a->topic, b->topic, a->topic_len);
}

/*
 * Encodes b[0..n) (all for one broker, distinct partitions) as one
 * ProduceRequest (acks=-1) and sends it on lane l; b is reordered. The
 * batches' bytes are not copied (engine_produce_frame). Returns 0, or -1 when the
 * lane refused it (full, out of memory): the batches then wait a backoff
 * and go again, with the ids they were given.
 */
static int send_flight(struct upgrade *u, struct lane *l, struct ubatch **b, int32_t n)
{
    kproduce_topic_t *topics = calloc((size_t)n, sizeof(*topics));
    kproduce_partition_t *parts = calloc((size_t)n, sizeof(*parts));
    struct reqbuf **bufs = calloc((size_t)n, sizeof(*bufs));
    struct flight *f = calloc(1, sizeof(*f) + (size_t)n * sizeof(f->b[0]));
    kproduce_req_t req = {{NULL, -1}, -1, 0, 0, topics};
    int ok = topics && parts && bufs && f;
    if (ok) {
        qsort(b, (size_t)n, sizeof(*b), by_topic);
        for (int32_t i = 0; i < n; i++) {
            const struct seqpart *sp = &b[i]->part->sp;
            if (!i || by_topic(&b[i - 1], &b[i])) {
                kproduce_topic_t *t = &topics[req.ntopics++];
                t->name = (kstr_t){sp->topic, (int32_t)sp->topic_len};
                t->partitions = &parts[i];
            }
            batch_stamp(u, b[i]);
            int32_t tmo = upstream_timeout(u, b[i]->timeout_ms);
            if (tmo > req.timeout_ms)
                req.timeout_ms = tmo;
            parts[i] = (kproduce_partition_t){sp->partition, {b[i]->data, (int32_t)b[i]->size}};
            bufs[i] = b[i]->buf;
            topics[req.ntopics - 1].npartitions++;
            f->b[f->n++] = b[i];
        }
        f->u = u;
        f->ver = produce_version(u);
    }
    struct evbuffer *frame =
        ok ? engine_produce_frame(f->ver, lane_next_correlation(l),
                                  (kstr_t){UPG_CLIENT_ID, (int32_t)strlen(UPG_CLIENT_ID)}, &req,
                                  bufs)
           : NULL;
    ok = frame && lane_send_buffer(l, frame, (uint64_t)req.timeout_ms, flight_done, f) == 0;
    free(bufs);
    free(topics);
    free(parts);
    if (!ok) {
        log_warn("upgrade: cannot send to broker %d now (lane full or out of memory)",
                 (int)lane_node_id(l));
        uint64_t now = u->o.now_ms();
        for (int32_t i = 0; i < n; i++)
            b[i]->not_before_ms = now + UPG_RETRY_BACKOFF_MS;
        free(f);
        return -1;
    }
    LIST_INSERT_HEAD(&u->flights, f, link);
    for (int32_t i = 0; i < f->n; i++)
        f->b[i]->on_wire = 1;
    return 0;
}

/* ---------------------------------------------------------------- flush */

/*
 * The batches of p that may go now, in order, into out (each with node_id
 * set to p's leader): none while p waits for a leader; up to
 * UPG_PART_INFLIGHT on the wire per partition, all to one broker (so
 * nothing goes to a new leader while an attempt is still on the wire to
 * the old one); nothing past a batch that waits for its backoff (so
 * sequences reach the broker in order), and nothing past an attempt still
 * on the wire under an older producer generation: if the broker rejects
 * it, it is resent under the new one, and must keep its place. Returns how
 * many (at most UPG_PART_INFLIGHT).
 */
static size_t ready_batches(const struct upgrade *u, struct upart *p, uint64_t now,
                            struct ubatch **out)
{
    size_t n = 0, busy = 0;
    struct ubatch *b;
    if (p->stale)
        return 0;
    TAILQ_FOREACH(b, &p->q, link)
    {
        if (busy + n >= UPG_PART_INFLIGHT)
            break;
        if (b->on_wire) {
            if (b->gen != u->gen || b->node_id != p->leader)
                break;
            busy++;
            continue;
        }
        if (b->not_before_ms > now)
            break;
        b->node_id = p->leader;
        out[n++] = b;
    }
    return n;
}

/* A ready batch's broker and place, to sort by broker keeping order. */
struct ready_key {
    int32_t node_id;
    uint32_t i;
};

static int by_node(const void *x, const void *y)
{
    const struct ready_key *a = x, *b = y;
    if (a->node_id != b->node_id)
        return a->node_id < b->node_id ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/*
 * Sends ready[0..n) (one broker's, each partition's batches in order) as
 * ProduceRequests of at most o.flight_bytes (but at least one batch), one
 * batch per partition each. A partition whose batch could not go sends
 * nothing after it in this pass (pass), so no sequence is skipped.
 */
static void send_node(struct upgrade *u, struct ubatch **ready, size_t n, struct ubatch **group,
                      uint64_t pass)
{
    struct lane *l = lane_for(u, ready[0]->node_id);
    size_t first = 0;
    for (;;) {
        while (first < n && !ready[first])
            first++;
        if (first == n)
            return;
        uint64_t gid = ++u->stamp;
        int32_t g = 0;
        size_t bytes = 0;
        for (size_t j = first; j < n; j++) {
            struct ubatch *b = ready[j];
            if (!b || b->part->in_group == gid)
                continue;
            if (b->part->held == pass) {
                ready[j] = NULL;
                continue;
            }
            if (g && bytes + b->size > u->o.flight_bytes)
                break;
            bytes += b->size;
            b->part->in_group = gid;
            group[g++] = b;
            ready[j] = NULL;
        }
        if (g && (!l || send_flight(u, l, group, g)))
            for (int32_t i = 0; i < g; i++)
                group[i]->part->held = pass;
    }
}

/* Room in u->scratch for n ready batches; 0, or -1 on OOM. */
static int scratch_reserve(struct upgrade *u, size_t n)
{
    struct flush_scratch *f = &u->scratch;
    if (n <= f->cap)
        return 0;
    size_t cap = f->cap ? f->cap : 64;
    while (cap < n)
        cap *= 2;
    free(f->ready);
    free(f->group);
    free(f->keys);
    f->ready = malloc(cap * sizeof(*f->ready));
    f->group = malloc(cap * sizeof(*f->group));
    f->keys = malloc(cap * sizeof(*f->keys));
    f->cap = f->ready && f->group && f->keys ? cap : 0;
    return f->cap ? 0 : -1;
}

/* Sends every partition's batches that may go, grouped by broker. */
static void flush(struct upgrade *u)
{
    if (u->pid_state != PID_READY || !u->nactive)
        return;
    if (scratch_reserve(u, u->nactive * UPG_PART_INFLIGHT))
        return; /* retried on the next tick */
    struct ubatch **ready = u->scratch.ready, **group = u->scratch.group;
    struct ready_key *keys = u->scratch.keys;
    uint64_t now = u->o.now_ms();
    size_t n = 0;
    struct upart *p, *tmp;
    for (p = TAILQ_FIRST(&u->active); p; p = tmp) {
        tmp = TAILQ_NEXT(p, alink);
        if (TAILQ_EMPTY(&p->q)) {
            part_deactivate(u, p);
            continue;
        }
        n += ready_batches(u, p, now, ready + n);
    }
    /* By broker (few), each partition's batches still in order. */
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct ready_key){ready[i]->node_id, (uint32_t)i};
    qsort(keys, n, sizeof(*keys), by_node);
    for (size_t i = 0; i < n; i++)
        group[i] = ready[keys[i].i];
    memcpy(ready, group, n * sizeof(*ready));
    uint64_t pass = ++u->stamp;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && ready[j]->node_id == ready[i]->node_id; j++)
            ;
        send_node(u, ready + i, j - i, group, pass);
    }
}

/*
 * Fails batches that waited beyond the delivery timeout without a send.
 * A partition's batches are queued in the order they came, so each queue
 * is walked only past the expired ones (and those on the wire, at most
 * UPG_PART_INFLIGHT): a tick costs O(active partitions), not O(batches).
 */
static void expire_batches(struct upgrade *u, uint64_t now)
{
    struct upart *p, *ptmp;
    for (p = TAILQ_FIRST(&u->active); p; p = ptmp) {
        ptmp = TAILQ_NEXT(p, alink);
        struct ubatch *b, *btmp;
        for (b = TAILQ_FIRST(&p->q); b; b = btmp) {
            btmp = TAILQ_NEXT(b, link);
            if (now - b->created_ms < u->o.delivery_timeout_ms)
                break;
            if (!b->on_wire)
                batch_failed(u, b, KERR_REQUEST_TIMED_OUT);
        }
        if (TAILQ_EMPTY(&p->q))
            part_deactivate(u, p);
    }
}

/* ---------------------------------------------------------------- producer id */

static void start_pid(struct upgrade *u);

static void pid_backoff(struct upgrade *u)
{
    u->pid_state = PID_NONE;
    u->pid_not_before_ms = u->o.now_ms() + u->pid_backoff_ms;
    u->pid_backoff_ms *= 2;
    if (u->pid_backoff_ms > UPG_PID_BACKOFF_MAX_MS)
        u->pid_backoff_ms = UPG_PID_BACKOFF_MAX_MS;
}

static void pid_done(void *arg, const uint8_t *frame, size_t len)
{
    struct pidreq *pr = arg;
    struct upgrade *u = pr->u;
    if (u->pidreq == pr)
        u->pidreq = NULL;
    if (u->closing) {
        free(pr);
        return;
    }
    kinitpid_resp_t resp;
    if (!frame || kinitpid_resp_parse(pr->ver, frame, len, &resp)) {
        log_warn("upgrade: InitProducerId %s; retrying", frame ? "malformed" : "failed");
        pid_backoff(u);
    } else if (resp.error_code != KERR_NONE || resp.producer_id < 0 || resp.producer_epoch < 0) {
        log_warn("upgrade: InitProducerId answered ErrorCode %d%s; retrying", (int)resp.error_code,
                 pr->bump ? " to an epoch bump (next: a new id)" : "");
        if (pr->bump)
            u->bump_refused = 1; /* e.g. 49 INVALID_PRODUCER_ID_MAPPING: fresh ids */
        pid_backoff(u);
    } else {
        if (u->gen)
            g_metrics.producer_id_renewals++;
        u->pid = resp.producer_id;
        u->epoch = resp.producer_epoch;
        u->gen++;
        u->pid_state = PID_READY;
        u->pid_backoff_ms = UPG_RETRY_BACKOFF_MS;
        log_info("upgrade: producer id %lld epoch %d (InitProducerId v%d)", (long long)u->pid,
                 (int)u->epoch, (int)pr->ver);
    }
    free(pr);
    kick(u);
}

/* Asks any known broker for a producer id, or for an epoch bump of ours. */
static void start_pid(struct upgrade *u)
{
    struct proxy *px = u->px;
    if (u->pid_state != PID_NONE || u->o.now_ms() < u->pid_not_before_ms)
        return;
    if (px->nbrokers == 0) {
        pid_backoff(u);
        return;
    }
    struct broker *b = px->brokers[u->pid_rr++ % px->nbrokers];
    struct lane *l = lane_for(u, b->node_id);
    struct pidreq *pr = calloc(1, sizeof(*pr));
    if (!l || !pr) {
        free(pr);
        pid_backoff(u);
        return;
    }
    const kver_range_t *vr = &px->versions[KAPI_InitProducerId];
    int16_t ver = vr->min_ver <= vr->max_ver ? vr->max_ver : 0;
    if (ver > KINITPID_MAX_VERSION)
        ver = KINITPID_MAX_VERSION;
    kinitpid_req_t req = {{NULL, -1}, UPG_TXN_TIMEOUT_MS, -1, -1};
    /* KIP-360: bump our epoch while it has room, else take a new id. */
    if (u->pid >= 0 && !u->bump_refused && ver >= KINITPID_BUMP_VERSION &&
        u->epoch < INT16_MAX - 1) {
        req.producer_id = u->pid;
        req.producer_epoch = u->epoch;
        pr->bump = 1;
    }
    pr->u = u;
    pr->ver = ver;
    kwriter_t w;
    kw_init(&w, 64);
    int rc = kinitpid_req_write(&w, ver, lane_next_correlation(l),
                                (kstr_t){UPG_CLIENT_ID, (int32_t)strlen(UPG_CLIENT_ID)}, &req);
    if (rc == 0)
        rc = send_writer(l, &w, 0, pid_done, pr);
    kw_free(&w);
    if (rc) {
        free(pr);
        pid_backoff(u);
        return;
    }
    u->pidreq = pr;
    u->pid_state = PID_REQUESTING;
}

/* Starts a renewal unless one is under way (sequences restart with it). */
static void renew_producer(struct upgrade *u, const char *why)
{
    if (u->pid_state != PID_READY)
        return;
    log_warn("upgrade: renewing producer id %lld epoch %d: %s", (long long)u->pid, (int)u->epoch,
             why);
    u->pid_state = PID_NONE;
    u->pid_not_before_ms = 0;
    start_pid(u);
}

/* ---------------------------------------------------------------- leaders */

/*
 * The version of the engine's Metadata requests: the highest both sides
 * speak, within what it writes and parses (v1..v12); -1 if none.
 */
static int16_t metadata_version(const struct upgrade *u)
{
    const kver_range_t *vr = &u->px->versions[KAPI_Metadata];
    int16_t v = vr->max_ver > UPG_MD_MAX_VERSION ? UPG_MD_MAX_VERSION : vr->max_ver;
    return vr->min_ver <= v && v >= UPG_MD_MIN_VERSION ? v : -1;
}

static void md_backoff(struct upgrade *u, uint64_t now, int grow)
{
    u->md_not_before_ms = now + u->md_backoff_ms;
    if (!grow) {
        u->md_backoff_ms = UPG_MD_BACKOFF_MS;
        return;
    }
    u->md_backoff_ms *= 2;
    if (u->md_backoff_ms > UPG_MD_BACKOFF_MAX_MS)
        u->md_backoff_ms = UPG_MD_BACKOFF_MAX_MS;
}

/* Skips an INT32 array (replica lists). */
static void md_skip_i32s(kreader_t *r, int flex)
{
    int32_t n = kr_array(r, flex, 4);
    if (n > 0)
        (void)kr_skip(r, (size_t)n * 4);
}

/*
 * Reads a MetadataResponse of version ver (frame: after the size prefix)
 * and gives each waiting partition it names the leader it names (one
 * with a partition ErrorCode other than 0 or 9 REPLICA_NOT_AVAILABLE, or
 * no leader, keeps waiting). The brokers it lists are learned as the
 * control connection learns them (proxy_broker_learn), so a leader eosproxy
 * has not seen yet can be reached. Returns how many partitions got a
 * leader (*moved: how many of them a new one), or -1 when the response is
 * malformed (what was read before the fault stands). One pass:
 * O(brokers + partitions in it).
 */
static int md_apply(struct upgrade *u, int16_t ver, const uint8_t *frame, size_t len, int *moved)
{
    int flex = ver >= UPG_MD_FLEX_VERSION;
    int32_t corr;
    size_t off;
    if (kproto_parse_response_header(KAPI_Metadata, ver, frame, len, &corr, &off))
        return -1;
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = off;
    if (ver >= 3)
        (void)kr_i32(&r); /* ThrottleTimeMs */
    int32_t nb = kr_array(&r, flex, 10);
    for (int32_t i = 0; i < nb && kr_ok(&r); i++) {
        int32_t node = kr_i32(&r);
        kstr_t host = kr_str_nn(&r, flex);
        int32_t port = kr_i32(&r);
        (void)kr_str(&r, flex); /* Rack */
        kr_tags_if(&r, flex);
        if (kr_ok(&r) && host.len > 0 && port > 0 && port <= 65535)
            proxy_broker_learn(u->px, node, host.ptr, (size_t)host.len, port);
    }
    if (ver >= 2)
        (void)kr_str(&r, flex); /* ClusterId */
    (void)kr_i32(&r);           /* ControllerId */
    int resolved = 0;
    int32_t nt = kr_array(&r, flex, 4);
    for (int32_t i = 0; i < nt && kr_ok(&r); i++) {
        int16_t terr = kr_i16(&r);
        kstr_t name = kr_str(&r, flex);
        if (ver >= 10)
            (void)kr_skip(&r, 16); /* TopicId */
        (void)kr_i8(&r);           /* IsInternal */
        int32_t np = kr_array(&r, flex, 14);
        for (int32_t j = 0; j < np && kr_ok(&r); j++) {
            int16_t perr = kr_i16(&r);
            int32_t index = kr_i32(&r);
            int32_t leader = kr_i32(&r);
            if (ver >= 7)
                (void)kr_i32(&r);   /* LeaderEpoch */
            md_skip_i32s(&r, flex); /* ReplicaNodes */
            md_skip_i32s(&r, flex); /* IsrNodes */
            if (ver >= 5)
                md_skip_i32s(&r, flex); /* OfflineReplicas */
            kr_tags_if(&r, flex);
            if (!kr_ok(&r) || terr != KERR_NONE || name.len < 0 || leader < 0 ||
                (perr != KERR_NONE && perr != KERR_REPLICA_NOT_AVAILABLE))
                continue;
            struct upart *p =
                (struct upart *)seqtab_find(&u->parts, name.ptr, (size_t)name.len, index);
            if (!p || !p->stale)
                continue;
            if (p->leader != leader) {
                log_debug("upgrade: %s-%d: leader %d (was %d)", p->sp.topic, (int)index,
                          (int)leader, (int)p->leader);
                (*moved)++;
            }
            p->leader = leader;
            part_unstale(u, p);
            resolved++;
        }
        if (ver >= 8)
            (void)kr_i32(&r); /* TopicAuthorizedOperations */
        kr_tags_if(&r, flex);
    }
    if (ver >= 8 && ver <= 10)
        (void)kr_i32(&r); /* ClusterAuthorizedOperations */
    kr_tags_if(&r, flex);
    return kr_ok(&r) ? resolved : -1;
}

static void md_done(void *arg, const uint8_t *frame, size_t len)
{
    struct mdreq *mr = arg;
    struct upgrade *u = mr->u;
    if (u->mdreq == mr)
        u->mdreq = NULL;
    if (u->closing) {
        free(mr);
        return;
    }
    int moved = 0;
    int resolved = frame ? md_apply(u, mr->ver, frame, len, &moved) : -1;
    if (resolved < 0) {
        log_warn("upgrade: Metadata from broker %d %s; asking another", (int)mr->node_id,
                 frame ? "malformed" : "failed");
        u->md_rr++;
    } else if (moved) {
        log_info("upgrade: Metadata from broker %d: %d partition(s) have a new leader (resent "
                 "there with the same sequences), %zu still wait for one",
                 (int)mr->node_id, moved, u->nstale);
    } else {
        log_debug("upgrade: Metadata from broker %d: %d partition(s) have their leader back, %zu "
                  "still wait for one",
                  (int)mr->node_id, resolved, u->nstale);
    }
    md_backoff(u, u->o.now_ms(), resolved <= 0);
    free(mr);
    kick(u);
}

/*
 * The broker to ask: round robin over the known brokers from md_rr, but
 * not the one the first waiting partition lost (likely down) while there
 * is another. NULL when none is known.
 */
static struct broker *md_broker(struct upgrade *u)
{
    struct proxy *px = u->px;
    if (px->nbrokers == 0)
        return NULL;
    int32_t lost = TAILQ_FIRST(&u->stale)->leader;
    struct broker *b = NULL;
    for (size_t k = 0; k < px->nbrokers; k++) {
        b = px->brokers[(u->md_rr + k) % px->nbrokers];
        if (b->node_id != lost)
            break;
    }
    return b;
}

/*
 * Asks one broker, on the Metadata lane, for the leaders of the topics of the
 * partitions that wait for one (at most UPG_MD_MAX_TOPICS topics; the
 * rest go in the next request): one request in flight, no sooner than
 * md_not_before_ms. Without a Metadata version both sides speak, the
 * partitions go back to the leader they had.
 */
static void start_metadata(struct upgrade *u)
{
    uint64_t now = u->o.now_ms();
    if (!u->nstale || u->mdreq || now < u->md_not_before_ms)
        return;
    int16_t ver = metadata_version(u);
    if (ver < 0) {
        log_warn("upgrade: no Metadata version to ask for leaders; %zu partition(s) keep theirs",
                 u->nstale);
        while (!TAILQ_EMPTY(&u->stale))
            part_unstale(u, TAILQ_FIRST(&u->stale));
        return;
    }
    struct broker *b = md_broker(u);
    if (b && u->md_lane && lane_node_id(u->md_lane) != b->node_id) {
        lane_free(u->md_lane); /* idle: nothing is in flight on it */
        u->md_lane = NULL;
    }
    if (b && !u->md_lane)
        u->md_lane = lane_new(u->px, b->node_id, UPG_MD_LANE_MAX_BYTES);
    struct lane *l = u->md_lane;
    struct mdreq *mr = b && l ? calloc(1, sizeof(*mr)) : NULL;
    if (!mr) {
        md_backoff(u, now, 1);
        return;
    }
    /* Distinct topic names, views of the partitions' own; stop: the first
     * partition whose topic did not fit (NULL: all did). */
    kstr_t topics[UPG_MD_MAX_TOPICS];
    int32_t n = 0;
    struct upart *p;
    TAILQ_FOREACH(p, &u->stale, slink)
    {
        int32_t i = n;
        while (i > 0 && ((size_t)topics[i - 1].len != p->sp.topic_len ||
                         memcmp(topics[i - 1].ptr, p->sp.topic, p->sp.topic_len)))
            i--;
        if (i > 0)
            continue;
        if (n == UPG_MD_MAX_TOPICS)
            break;
        topics[n++] = (kstr_t){p->sp.topic, (int32_t)p->sp.topic_len};
    }
    struct upart *stop = p;
    int flex = ver >= UPG_MD_FLEX_VERSION;
    static const uint8_t no_topic_id[16];
    kwriter_t w;
    kw_init(&w, 128);
    size_t start = w.len;
    kw_i32(&w, 0);
    kproto_write_request_header(&w, KAPI_Metadata, ver, lane_next_correlation(l),
                                (kstr_t){UPG_CLIENT_ID, (int32_t)strlen(UPG_CLIENT_ID)});
    kw_array(&w, flex, n);
    for (int32_t i = 0; i < n; i++) {
        if (ver >= 10)
            kw_raw(&w, no_topic_id, sizeof(no_topic_id));
        kw_kstr(&w, flex, topics[i]);
        if (flex)
            kw_tags_empty(&w);
    }
    if (ver >= 4)
        kw_i8(&w, 0); /* AllowAutoTopicCreation */
    if (ver >= 8 && ver <= 10)
        kw_i8(&w, 0); /* IncludeClusterAuthorizedOperations */
    if (ver >= 8)
        kw_i8(&w, 0); /* IncludeTopicAuthorizedOperations */
    if (flex)
        kw_tags_empty(&w);
    int rc = kw_finish_frame(&w, start);
    /* Those asked for now go to the back, so the next request (if this
     * one leaves them waiting) asks for the others first. */
    while (stop && TAILQ_FIRST(&u->stale) != stop) {
        struct upart *q = TAILQ_FIRST(&u->stale);
        TAILQ_REMOVE(&u->stale, q, slink);
        TAILQ_INSERT_TAIL(&u->stale, q, slink);
    }
    mr->u = u;
    mr->ver = ver;
    mr->node_id = b->node_id;
    mr->sent_ms = now;
    if (rc == 0)
        rc = send_writer(l, &w, 0, md_done, mr);
    kw_free(&w);
    if (rc) {
        free(mr);
        md_backoff(u, now, 1);
        return;
    }
    log_debug("upgrade: %zu partition(s) wait for a leader; asking broker %d (Metadata v%d, %d "
              "topic(s))",
              u->nstale, (int)b->node_id, (int)ver, (int)n);
    u->mdreq = mr;
}

/* Gives up a Metadata request unanswered for UPG_MD_TIMEOUT_MS: its lane is
 * closed (md_done runs, and the next request goes to another broker). */
static void expire_metadata(struct upgrade *u, uint64_t now)
{
    if (!u->mdreq || now - u->mdreq->sent_ms < UPG_MD_TIMEOUT_MS)
        return;
    struct lane *l = u->md_lane;
    u->md_lane = NULL;
    lane_free(l);
}

/* ---------------------------------------------------------------- loop */

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upgrade *u = arg;
    (void)fd;
    (void)what;
    struct ureq *r;
    while ((r = TAILQ_FIRST(&u->done))) {
        TAILQ_REMOVE(&u->done, r, dlink);
        ureq_finish(u, r);
    }
    if (u->pid_state == PID_NONE && !TAILQ_EMPTY(&u->active))
        start_pid(u);
    start_metadata(u);
    flush(u);
    if (u->busy && u->bytes <= u->o.low_bytes) {
        u->busy = 0;
        u->o.resume(u->px);
    }
}

int upgrade_busy(const struct upgrade *u)
{
    if (u->bytes > u->o.high_bytes)
        ((struct upgrade *)u)->busy = 1;
    return u->busy;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upgrade *u = arg;
    (void)fd;
    (void)what;
    if (TAILQ_EMPTY(&u->active))
        return;
    uint64_t now = u->o.now_ms();
    expire_metadata(u, now);
    expire_batches(u, now);
    kick_cb(fd, what, arg);
}

/* ---------------------------------------------------------------- submit */

/*
 * Counts a refusal by bound b (the request, or one partition of it, gets
 * REQUEST_TIMED_OUT, which clients retry) and logs it, at most once per
 * UPG_LOG_EVERY_MS per bound, with how many were refused since.
 */
static void log_refused(struct upgrade *u, enum upgrade_bound b)
{
    static const char *const what[UPG_BOUNDS] = {
        "client requests held",
        "bytes held",
        "partitions with sequences, none idle",
        "batches in flight (fingerprint cache)",
    };
    const size_t limit[UPG_BOUNDS] = {u->o.max_requests, u->o.max_bytes, u->o.max_partitions,
                                      u->o.fpc_entries};
    uint64_t now = u->o.now_ms();
    struct refusals *r = &u->refused;
    g_metrics.upgrade_refused[b]++;
    r->count[b]++;
    if (r->last_log_ms[b] && now - r->last_log_ms[b] < UPG_LOG_EVERY_MS)
        return;
    log_warn("upgrade: at its bound of %zu %s: %llu request(s) or partition(s) answered "
             "REQUEST_TIMED_OUT since the last such line",
             limit[b], what[b], (unsigned long long)r->count[b]);
    r->count[b] = 0;
    r->last_log_ms[b] = now ? now : 1;
}

/* seqtab_sweep's test: drops a partition with nothing queued. */
static int part_idle(struct seqpart *sp, void *arg)
{
    struct upgrade *u = arg;
    struct upart *p = (struct upart *)sp;
    if (p->q.tqh_last && !TAILQ_EMPTY(&p->q))
        return 0;
    part_deactivate(u, p);
    part_unstale(u, p);
    if (u->gen && sp->gen == u->gen)
        u->forgot_current = 1;
    return 1;
}

/*
 * The entry of (topic, partition), created if need be. When the table is
 * at o.max_partitions, every idle partition (nothing queued) is forgotten
 * first. Their sequences go with them, and under the same producer id and
 * epoch a forgotten partition could not start over at 0 (the broker would
 * take its batch for an old one). So if any had sequences under the
 * current producer, it is renewed before anything else is sent. NULL when
 * every partition has batches queued (bounded by o.max_bytes): the slot
 * gets REQUEST_TIMED_OUT.
 */
static struct upart *part_get(struct upgrade *u, kstr_t topic, int32_t partition)
{
    struct seqtab *t = &u->parts;
    struct upart *p = (struct upart *)seqtab_get(t, topic.ptr, (size_t)topic.len, partition);
    if (!p && t->n >= t->max && u->nqueued < t->n) {
        u->forgot_current = 0;
        size_t n = seqtab_sweep(t, part_idle, u);
        log_warn("upgrade: %zu partitions have sequence state (the most it keeps); forgot the %zu "
                 "idle ones%s",
                 t->max, n, u->forgot_current ? " and renews its producer" : "");
        if (u->forgot_current) {
            g_metrics.sequence_resets++;
            renew_producer(u, "idle partitions were forgotten");
        }
        p = (struct upart *)seqtab_get(t, topic.ptr, (size_t)topic.len, partition);
    }
    if (!p) {
        log_refused(u, UPG_BOUND_PARTITIONS);
        return NULL;
    }
    if (!p->q.tqh_last)
        TAILQ_INIT(&p->q);
    return p;
}

/* Mirrors req's topics and partitions in r->resp (names are views). */
static int shape_response(struct ureq *r)
{
    const kproduce_req_t *q = &r->req;
    r->resp.ntopics = q->ntopics;
    r->resp.topics = calloc(q->ntopics ? (size_t)q->ntopics : 1, sizeof(*r->resp.topics));
    if (!r->resp.topics)
        return -1;
    int32_t nslots = 0;
    for (int32_t i = 0; i < q->ntopics; i++) {
        kproduce_tresp_t *t = &r->resp.topics[i];
        t->name = q->topics[i].name;
        t->npartitions = q->topics[i].npartitions;
        t->partitions = calloc(t->npartitions ? (size_t)t->npartitions : 1, sizeof(*t->partitions));
        if (!t->partitions)
            return -1;
        for (int32_t j = 0; j < t->npartitions; j++) {
            kproduce_presp_t *p = &t->partitions[j];
            p->index = q->topics[i].partitions[j].index;
            p->base_offset = p->log_append_time_ms = p->log_start_offset = -1;
            p->error_message = (kstr_t){NULL, -1};
        }
        nslots += t->npartitions;
    }
    r->waiters = calloc(nslots ? (size_t)nslots : 1, sizeof(*r->waiters));
    return r->waiters ? 0 : -1;
}

static void attach(struct ureq *r, struct waiter *w, kproduce_presp_t *slot, struct ubatch *b)
{
    w->r = r;
    w->slot = slot;
    w->next = b->waiters;
    b->waiters = w;
    r->nleft++;
}

/* A new ubatch for one client batch (at batch, in r's buffer: not
 * copied), queued on its partition; NULL on exhaustion (the slot then
 * answers REQUEST_TIMED_OUT). Its bytes were counted with the request. */
static struct ubatch *new_batch(struct upgrade *u, struct upart *p, struct ureq *r,
                                const uint8_t *batch, const krecord_batch_t *hdr, uint64_t key,
                                int32_t node_id)
{
    struct ubatch *b = calloc(1, sizeof(*b));
    struct fpc_entry *e = b ? fpc_add_inflight(&u->fpc, key, b, u->o.now_ms()) : NULL;
    if (!e) {
        if (b)
            log_refused(u, UPG_BOUND_BATCHES);
        free(b);
        return NULL;
    }
    reqbuf_hold(r->buf);
    b->part = p;
    b->fpe = e;
    b->buf = r->buf;
    b->data = r->buf->data + (batch - r->buf->data);
    b->size = hdr->size;
    b->record_count = hdr->record_count;
    b->node_id = node_id;
    b->timeout_ms = r->req.timeout_ms;
    b->created_ms = u->o.now_ms();
    b->backoff_ms = UPG_RETRY_BACKOFF_MS;
    if (TAILQ_EMPTY(&p->q)) {
        /* Idle until now: the client's idea of the leader is the freshest
         * (none when the request came in on the bootstrap listener). */
        u->nqueued++;
        p->leader = node_id;
        if (node_id < 0)
            part_stale(u, p);
    }
    TAILQ_INSERT_TAIL(&p->q, b, link);
    part_activate(u, p);
    return b;
}

/*
 * Whether a batch equal to e's (same topic, partition and content) is the
 * client's retry of it. Content alone cannot tell a retry from a distinct
 * batch with the same records and timestamps, so timing decides: a client
 * resends a batch only after an error (then e failed, and the retry is
 * written), or after its request timed out. So it is a retry when e has
 * been in flight for at least half the request's timeout, or was answered
 * that late. Anything else is a twin, written too.
 */
static int is_client_retry(const struct fpc_entry *e, uint64_t now)
{
    uint64_t half =
        e->timeout_ms / 2 > UPG_RETRY_MIN_GAP_MS ? e->timeout_ms / 2 : UPG_RETRY_MIN_GAP_MS;
    if (e->failed || e->twin)
        return 0;
    if (e->state == FPC_INFLIGHT)
        return now - e->first_ms >= half;
    return e->done_ms - e->first_ms >= half;
}

/* A batch refused for lack of room leaves a tombstone, as a failed one does. */
static void refused_tombstone(struct upgrade *u, uint64_t key, uint64_t now)
{
    struct fpc_entry *t = fpc_add_inflight(&u->fpc, key, NULL, now);
    if (!t)
        return;
    struct fpc_result res = {KERR_REQUEST_TIMED_OUT, -1, -1, -1};
    t->failed = 1;
    fpc_complete(&u->fpc, t, &res, now);
}

/* Routes one partition of a client request; sets the slot or attaches. */
static void submit_partition(struct upgrade *u, struct ureq *r, kstr_t topic,
                             const kproduce_partition_t *pp, kproduce_presp_t *slot,
                             struct waiter *w, int32_t node_id)
{
    krecord_batch_t hdr;
    int rc = kproduce_check_records(r->ver, pp->records, &hdr, 1);
    if (rc != KREC_OK) {
        slot->error_code = krecord_kafka_error(rc);
        return;
    }
    if (hdr.producer_id != -1) {
        slot->error_code = KERR_INVALID_RECORD;
        return;
    }
    const uint8_t *batch = pp->records.ptr + hdr.offset;
    uint64_t key =
        fpc_key(topic.ptr, (size_t)topic.len, pp->index, krecord_fingerprint(batch, hdr.size));
    uint64_t now = u->o.now_ms();
    struct fpc_entry *e = fpc_find(&u->fpc, key, now);
    int twin = 0;
    if (e && !is_client_retry(e, now)) {
        /*
         * Equal content, but not provably a retry: a distinct batch made in
         * the same millisecond (librdkafka's clock is coarse, and payloads
         * may repeat), or one equal to a batch that failed or was refused.
         * From now on a retry of either cannot be told apart, so none is
         * absorbed: writing a retry twice is better than losing a batch.
         */
        if (!e->failed)
            e->twin = 1;
        twin = 1;
        g_metrics.twin_batches++;
        e = NULL;
    }
    if (e && e->state == FPC_DONE) {
        g_metrics.client_retries_absorbed++;
        set_slot(slot, &e->result);
        return;
    }
    if (e) {
        g_metrics.client_retries_absorbed++;
        attach(r, w, slot, e->batch);
        return;
    }
    struct upart *p = part_get(u, topic, pp->index);
    struct ubatch *b = p ? new_batch(u, p, r, batch, &hdr, key, node_id) : NULL;
    if (!b) {
        refused_tombstone(u, key, now);
        slot->error_code = KERR_REQUEST_TIMED_OUT;
        return;
    }
    b->fpe->twin = twin;
    b->fpe->timeout_ms = r->req.timeout_ms > 0 ? (uint32_t)r->req.timeout_ms : 0;
    attach(r, w, slot, b);
}

/* upgrade_submit and upgrade_submit_take; take NULL: frame is copied. */
static int submit(struct upgrade *u, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
                  size_t len, uint8_t **take, int acks_zero, uint64_t client_id, uint64_t token)
{
    if (h->api_version < KPRODUCE_MIN_VERSION)
        return KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    if (h->api_version > KPRODUCE_MAX_VERSION || h->body_off > len)
        return KERR_INVALID_REQUEST;
    if (u->closing)
        return KERR_REQUEST_TIMED_OUT;
    if (u->nreqs >= u->o.max_requests || u->bytes + len > u->o.max_bytes) {
        log_refused(u, u->nreqs >= u->o.max_requests ? UPG_BOUND_REQUESTS : UPG_BOUND_BYTES);
        return KERR_REQUEST_TIMED_OUT;
    }
    /* A copy is made first, and parsed; a buffer to take is parsed where
     * it is and taken last, so that a refusal leaves it to the caller. */
    struct ureq *r = calloc(1, sizeof(*r));
    if (r && !take && !(r->buf = reqbuf_new(frame, len, NULL))) {
        free(r);
        r = NULL;
    }
    if (!r)
        return KERR_REQUEST_TIMED_OUT;
    u->bytes += r->buf ? len : 0;
    r->client_id = client_id;
    r->token = token;
    r->ver = h->api_version;
    r->corr = h->correlation_id;
    r->acks_zero = acks_zero;
    u->nreqs++;
    const uint8_t *data = r->buf ? r->buf->data : frame;
    if (kproduce_req_parse(r->ver, data + h->body_off, len - h->body_off, &r->req, NULL)) {
        ureq_free(u, r);
        return KERR_INVALID_REQUEST;
    }
    if (shape_response(r) || (take && !(r->buf = reqbuf_new(frame, len, take)))) {
        ureq_free(u, r);
        return KERR_REQUEST_TIMED_OUT;
    }
    u->bytes += take ? len : 0;
    LIST_INSERT_HEAD(&u->reqs, r, link);
    int32_t k = 0;
    for (int32_t i = 0; i < r->req.ntopics; i++) {
        const kproduce_topic_t *t = &r->req.topics[i];
        for (int32_t j = 0; j < t->npartitions; j++, k++)
            submit_partition(u, r, t->name, &t->partitions[j], &r->resp.topics[i].partitions[j],
                             &r->waiters[k], b ? b->node_id : -1);
    }
    if (r->nleft == 0)
        ureq_ready(u, r);
    if (u->pid_state == PID_NONE)
        start_pid(u);
    kick(u);
    return 0;
}

int upgrade_submit(struct upgrade *u, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
                   size_t len, int acks_zero, uint64_t client_id, uint64_t token)
{
    return submit(u, b, h, frame, len, NULL, acks_zero, client_id, token);
}

int upgrade_submit_take(struct upgrade *u, struct broker *b, const kreq_hdr_t *h, uint8_t *frame,
                        size_t len, uint8_t **buf, int acks_zero, uint64_t client_id,
                        uint64_t token)
{
    return submit(u, b, h, frame, len, buf && *buf ? buf : NULL, acks_zero, client_id, token);
}

/* ---------------------------------------------------------------- life */

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

/* opts with every member left 0 or NULL set to eosproxy's default (the
 * hooks: px->done). */
static struct upgrade_opts fill_opts(const struct proxy *px, const struct upgrade_opts *opts)
{
    struct upgrade_opts o = {0};
    if (opts)
        o = *opts;
    o.max_requests = or_default(o.max_requests, UPG_MAX_REQUESTS);
    o.max_bytes = or_default(o.max_bytes, UPG_MAX_BYTES);
    o.high_bytes = or_default(o.high_bytes, UPG_HIGH_BYTES);
    o.low_bytes = or_default(o.low_bytes, UPG_LOW_BYTES);
    o.max_partitions = or_default(o.max_partitions, UPG_MAX_PARTITIONS);
    o.fpc_entries = or_default(o.fpc_entries, UPG_FPC_MAX);
    o.lane_max_bytes = or_default(o.lane_max_bytes, UPG_LANE_MAX_BYTES);
    o.flight_bytes = or_default(o.flight_bytes, UPG_FLIGHT_MAX_BYTES);
    o.fpc_ttl_ms = or_default(o.fpc_ttl_ms, UPG_FPC_TTL_MS);
    o.delivery_timeout_ms = or_default(o.delivery_timeout_ms, UPG_DELIVERY_TIMEOUT_MS);
    o.now_ms = o.now_ms ? o.now_ms : clock_ms;
    o.slot_done = o.slot_done ? o.slot_done : px->done.slot_done;
    o.resume = o.resume ? o.resume : px->done.resume;
    return o;
}

struct upgrade *upgrade_new(struct proxy *px)
{
    return upgrade_new_opts(px, NULL);
}

struct upgrade *upgrade_new_opts(struct proxy *px, const struct upgrade_opts *opts)
{
    struct upgrade *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->px = px;
    u->o = fill_opts(px, opts);
    u->pid = -1;
    u->epoch = -1;
    u->pid_backoff_ms = UPG_RETRY_BACKOFF_MS;
    TAILQ_INIT(&u->active);
    TAILQ_INIT(&u->stale);
    u->md_backoff_ms = UPG_MD_BACKOFF_MS;
    TAILQ_INIT(&u->done);
    LIST_INIT(&u->reqs);
    LIST_INIT(&u->flights);
    u->kick = event_new(px->base, -1, 0, kick_cb, u);
    u->tick = event_new(px->base, -1, EV_PERSIST, tick_cb, u);
    if (!u->kick || !u->tick || seqtab_init(&u->parts, u->o.max_partitions, sizeof(struct upart)) ||
        fpc_init(&u->fpc, u->o.fpc_entries, u->o.fpc_ttl_ms)) {
        upgrade_free(u);
        return NULL;
    }
    struct timeval tv = {0, UPG_TICK_MS * 1000};
    event_add(u->tick, &tv);
    return u;
}

/* Frees every queued batch of every partition. */
static void free_batches(struct upgrade *u)
{
    for (size_t i = 0; u->parts.buckets && i < u->parts.nbuckets; i++) {
        for (struct seqpart *sp = u->parts.buckets[i]; sp; sp = sp->hnext) {
            struct upart *p = (struct upart *)sp;
            struct ubatch *b;
            while (p->q.tqh_last && (b = TAILQ_FIRST(&p->q)))
                ubatch_free(u, b);
        }
    }
}

void upgrade_free(struct upgrade *u)
{
    if (!u)
        return;
    u->closing = 1;
    /* Lanes fail their pending requests: flight_done/pid_done/md_done free their
     * contexts and touch nothing else while closing. */
    for (size_t i = 0; i < u->nlanes; i++)
        lane_free(u->lanes[i]);
    free(u->lanes);
    lane_free(u->md_lane);
    struct ureq *r;
    while ((r = LIST_FIRST(&u->reqs))) {
        LIST_REMOVE(r, link);
        ureq_free(u, r);
    }
    free_batches(u);
    seqtab_free(&u->parts);
    fpc_free(&u->fpc);
    free(u->scratch.ready);
    free(u->scratch.group);
    free(u->scratch.keys);
    if (u->kick)
        event_free(u->kick);
    if (u->tick)
        event_free(u->tick);
    free(u);
}
