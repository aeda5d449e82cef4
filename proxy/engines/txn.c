/*
 * txn.c - the transactional delivery engine. See txn.h.
 *
 * State. The engine has one transactional id, a coordinator (found with
 * FindCoordinator, looked up again when it moves) and a producer id and
 * epoch from InitProducerId on it. The unbound route may have a pool of
 * engines (struct tpool, see txn.h). Client requests are copied once
 * (reqbuf.h) and parsed, their batches checked as a broker would and
 * added to the open transaction ("tx") where they lie: stamped in place,
 * and sent from there by reference (engine_produce_frame). Transactions
 * form a queue: the head is under way, the rest are closed and waiting,
 * the tail may be open. The head goes through
 *   AddPartitionsToTxn -> Produce (every batch, on per-broker lanes) ->
 *   EndTxn(COMMIT) -> every client request in it answered.
 * Only one coordinator request is outstanding at a time (t->op).
 *
 * Failure and abort. When a transaction cannot commit (a batch refused, a
 * lost Produce answer, its deadline passed), every client request in it is
 * answered at once with an error and the transaction is abandoned. It is
 * never committed after that: eosproxy re-initializes its transactional id
 * (InitProducerId), on which the coordinator aborts the open transaction
 * and bumps the epoch, which also fences any of its writes still on the
 * wire. Sequences restart at 0 under the new epoch. A client's retry thus
 * goes into a later transaction, and the abandoned one is never visible.
 *
 * Error table (where the error comes from -> what eosproxy does):
 *
 *   Produce, per partition:
 *     0 NONE, 46 DUPLICATE_SEQUENCE     the batch is written (in the txn)
 *     anything else, or no answer       the transaction fails: that slot
 *                                       gets the broker's ErrorCode (13
 *                                       NETWORK_EXCEPTION when there was no
 *                                       answer), the others 7
 *                                       REQUEST_TIMED_OUT
 *   AddPartitionsToTxn, EndTxn, InitProducerId, from the coordinator:
 *     15 COORDINATOR_NOT_AVAILABLE,     the coordinator is looked up again
 *     16 NOT_COORDINATOR, no answer     and the request resent
 *     14 COORDINATOR_LOAD_IN_PROGRESS   resent after a backoff (20 ms,
 *                                       doubling to 1 s)
 *     51 CONCURRENT_TRANSACTIONS        resent every 2 ms five times, then
 *                                       doubling to 20 ms (the previous
 *                                       transaction's markers are being
 *                                       written)
 *     90 PRODUCER_FENCED, 47 INVALID_   fenced: another instance took the
 *     PRODUCER_EPOCH (current epoch)    id. Logged as an error, counted,
 *                                       eosproxy_txn_fenced = 1; every
 *                                       transactional write is refused
 *                                       with PRODUCER_FENCED until restart
 *     AddPartitionsToTxn, partition     the transaction fails (nothing was
 *     errors (3, 29, ...)               added): those slots get the error,
 *                                       the rest REQUEST_TIMED_OUT (also
 *                                       those answered 55 OPERATION_NOT_
 *                                       ATTEMPTED)
 *     EndTxn: 48 INVALID_TXN_STATE,     the transaction fails; the epoch
 *     any other                         is bumped (re-initialization)
 *     InitProducerId: 53 TRANSACTIONAL_ logged as an error; retried with
 *     ID_AUTHORIZATION_FAILED, 50       the backoff (a configuration or
 *     INVALID_TRANSACTION_TIMEOUT,      ACL problem an operator must fix)
 *     any other
 *
 *   Bound mode (a group's commit: AddOffsetsToTxn, FindCoordinator for
 *   the group, TxnOffsetCommit, EndTxn):
 *     AddOffsetsToTxn: as the other coordinator requests above; any other
 *     ErrorCode fails the commit
 *     TxnOffsetCommit 15, 16, no answer   the group's coordinator is looked
 *                                         up again, the request resent
 *     TxnOffsetCommit 14, 51, 3, 7        resent after the backoff
 *     TxnOffsetCommit other (22, 25, 82,  the commit fails (commit_fail):
 *     29, 30, ...)                        output aborted, the OffsetCommit
 *                                         answered commit_error(e)
 *
 * The window that remains: an EndTxn(COMMIT) was sent and its answer was
 * lost, and then the transaction's deadline passed (or the id was fenced)
 * before a resend was answered. The clients are told REQUEST_TIMED_OUT
 * though the commit may have happened; their retries then write the
 * records again. It is counted (eosproxy_txn_commit_unknown_total).
 *
 * Answered in time, never twice: each client request must be answered
 * within half its own timeout from its arrival (at least 1 s, at most half
 * of transactions.timeout), so the client never gives up on it and sends
 * it again; a transaction not committed by the earliest such deadline in
 * it fails, started or not. A transaction one of whose clients has gone
 * (its answer would be lost, and the client will send the records again)
 * is aborted instead of committed.
 *
 * Bounds: bytes held (256 MiB) and client requests held (100,000) answer
 * REQUEST_TIMED_OUT beyond; partitions with sequences (65,536): when full,
 * those not in a queued transaction are forgotten and the epoch bumped;
 * TXN_PART_BATCHES batches of a partition per transaction; closed
 * transactions waiting (transactions.max_inflight) pause the clients.
 */
#include "txn.h"

#include "clock.h"
#include "config.h"
#include "dedup.h"
#include "kcommit.h"
#include "kerror.h"
#include "kinitpid.h"
#include "kproduce.h"
#include "krecord.h"
#include "ktxn.h"
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
#include <unistd.h>

#define TXN_CLIENT_ID "eosproxy-txn"
#define TXN_BACKOFF_MS 20u
#define TXN_CONCURRENT_MIN_MS 2u
#define TXN_CONCURRENT_FAST 5u
#define TXN_BACKOFF_MAX_MS 1000u
#define TXN_MAX_REQUESTS 100000u
#define TXN_MAX_BYTES (256u << 20)
#define TXN_LANE_MAX_BYTES (64u << 20)
#define TXN_FLIGHT_BYTES (1u << 20)
#define TXN_MAX_PARTITIONS 65536u
#define TXN_MIN_DEADLINE_MS 1000u
#define TXN_TICK_MS 100
#define TXN_COMMIT_DEADLINE_MS 10000u /* a bound OffsetCommit's answer, at the latest */
#define TXN_MAX_ABORTS 8              /* rebalances waiting for their abort */

enum tstate { TS_READY, TS_FENCED };
/* TX_OFFSETS and TX_GROUP are a bound commit's (AddOffsetsToTxn sent,
 * then TxnOffsetCommit to send). */
enum txstate { TX_OPEN, TX_CLOSED, TX_ADD, TX_PRODUCE, TX_END, TX_OFFSETS, TX_GROUP };
enum opkind { OP_FIND, OP_INIT, OP_ADD, OP_END, OP_OFFSETS, OP_FINDGROUP, OP_TXNOFFSET };

struct tx;

/* Per (topic, partition): sequences under the current epoch. */
struct tpart {
    struct seqpart sp; /* first: the seqtab entry */
    uint64_t tx_id;    /* the transaction count/node below belong to */
    int count;         /* batches of it in transaction tx_id */
    int want;          /* open_for's scratch: batches of it in the request */
    int32_t node_id;   /* where they all go */
    size_t queued;     /* batches of it in any queued transaction */
    uint64_t added;    /* the Kafka transaction (t->ktx) it was added to, 0 none */
};

/* A client ProduceRequest; all its batches are in one transaction. */
struct treq {
    uint64_t client_id, token;
    int16_t ver;
    int32_t corr;
    int acks_zero;
    uint64_t arrived_ms;
    struct reqbuf *buf; /* the frame (one holder); req and resp views point into it */
    kproduce_req_t req;
    kproduce_resp_t resp; /* shaped like req; slots filled as batches land */
    TAILQ_ENTRY(treq) link;
};
TAILQ_HEAD(treq_q, treq);

/* A client's OffsetCommit for a bound group: a commit item's. */
struct tcommit {
    uint64_t client_id, token;
    int16_t ver;
    int32_t corr;
    uint8_t *frame; /* copy; c's views point into it */
    size_t len;
    kcommit_t c;
    int16_t answer; /* ErrorCode for every partition */
    TAILQ_ENTRY(tcommit) link;
};
TAILQ_HEAD(tcommit_q, tcommit);

/* One client batch, rewritten with eosproxy's ids when produced. */
struct tbatch {
    struct tpart *part;
    kproduce_presp_t *slot; /* in its request's resp */
    uint8_t *data;          /* in buf: the client's batch, stamped in place */
    size_t size;
    int32_t record_count;
    int round;          /* its place among the partition's batches in the tx */
    struct reqbuf *buf; /* its request's bytes (a holder) */
};

struct tx {
    uint64_t id;
    uint64_t order; /* its place among the pool's transactions (tx_new) */
    enum txstate st;
    struct treq_q reqs;
    struct tbatch **b;
    size_t nb, capb, bytes;
    uint64_t created_ms, started_ms, deadline_ms;
    uint64_t last_ms; /* when its latest request came */
    int32_t min_client_timeout_ms;
    int nflights;    /* Produce requests on the wire */
    size_t nwaiting; /* batches without an outcome */
    int failed;
    int end_sent;           /* an EndTxn(COMMIT) may have reached the coordinator */
    int dead;               /* answered and dequeued; freed when nflights is 0 */
    int stale;              /* bound commit: sent before a refusal that lost output */
    int turn_waited;        /* it waited for an earlier one (produce_turn) */
    struct tcommit *commit; /* bound: a commit item (no batches), else NULL */
    TAILQ_ENTRY(tx) link;
};
TAILQ_HEAD(tx_q, tx);

/* A coordinator request in flight. */
struct op {
    struct txn *t;
    enum opkind kind;
    int16_t ver;
    struct tx *tx; /* OP_ADD, OP_END */
    size_t nb;     /* OP_ADD: the partitions of tx->b[0..nb) were in it */
};

/* A Produce request of the head transaction in flight. */
struct flight {
    struct txn *t;
    struct tx *tx;
    int16_t ver;
    int32_t node_id;
    int32_t n;
    struct tbatch *b[];
};

struct txn {
    struct proxy *px;
    struct txn_opts o; /* every member set (txn_new_opts) */
    char *id;
    char *group; /* bound mode: the consumer group; NULL otherwise */
    kstr_t kgroup;
    int32_t gcoord; /* the group's coordinator, -1 unknown */
    /* The Kafka transaction under way (a bound one spans many tx): its
     * number, partitions added to it, client requests acknowledged from
     * it, when its first partition was added. Bumped by EndTxn and by a
     * new epoch. */
    uint64_t ktx;
    size_t ktx_parts, ktx_acked;
    uint64_t ktx_started_ms;
    int doomed;  /* bound: acknowledged output was aborted: refuse the next commit */
    int refused; /* bound: a commit was refused since the last one that went through */
    /* Bound: rebalances waiting for what was queued before them to be
     * written; then the Kafka transaction is aborted (doom: and the next
     * commit refused if output was acknowledged from it). By tx id. */
    struct {
        uint64_t upto;
        int doom;
    } aborts[TXN_MAX_ABORTS];
    size_t naborts;
    kstr_t kid;
    struct lane **lanes;
    size_t nlanes;
    enum tstate state;
    int32_t coord; /* coordinator node id, -1 unknown */
    int need_init; /* InitProducerId before the next transaction */
    int64_t pid;
    int16_t epoch;
    uint64_t gen; /* bumped with every pid/epoch */
    struct op *op;
    uint64_t not_before_ms, backoff_ms;
    uint64_t concurrent_ms;    /* CONCURRENT_TRANSACTIONS retry delay */
    unsigned concurrent_tries; /* ... and tries since the last success */
    size_t rr;
    struct seqtab parts;
    struct tx_q txs;
    struct tx_q dead;       /* given up, with Produce requests still on the wire */
    struct treq_q done;     /* answered, to hand to the clients from the loop */
    struct tcommit_q cdone; /* bound commits answered, likewise */
    uint64_t next_tx_id, last_finish_ms;
    size_t nreqs, bytes, nclosed;
    struct event *kick, *wake, *tick;
    uint64_t wake_at;
    int closing, busy;
    struct tpool *pool; /* the unbound engines (every one's), or NULL */
};

/*
 * The unbound route's engines (transactions.pool), each with its own
 * transactional id, so that one commits while the next is written. The
 * first engine (the one proxy.c holds) owns it and the others. Orders
 * are given to transactions as they open, pool-wide: a transaction sends
 * its batches only once every earlier one has its batches answered
 * (produce_turn), so a partition's records are written in the order
 * their requests arrived, though on different connections.
 */
struct tpool {
    struct txn **m;
    size_t n, rr;
    uint64_t next_order;
    int started; /* a request came: every engine initializes its id */
};

static void kick(struct txn *t)
{
    if (!t->closing && !event_pending(t->kick, EV_TIMEOUT, NULL))
        event_active(t->kick, EV_TIMEOUT, 0);
}

/* Runs the pool's other engines: a transaction of t got its batches
 * answered or left the queue, which may let one of theirs send
 * (produce_turn). */
static void kick_peers(struct txn *t)
{
    for (size_t i = 0; t->pool && i < t->pool->n; i++)
        if (t->pool->m[i] != t)
            kick(t->pool->m[i]);
}

/* Runs the engine again at now + ms (the earliest of the asked times). */
static void wake_in(struct txn *t, uint64_t ms)
{
    uint64_t at = t->o.now_ms() + ms;
    if (event_pending(t->wake, EV_TIMEOUT, NULL) && t->wake_at <= at)
        return;
    t->wake_at = at;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(t->wake, &tv);
}

static const config_t *cfg(const struct txn *t)
{
    return t->px->cfg;
}

/* The version to send of api: the highest both sides and our codec have. */
static int16_t version(const struct txn *t, int api, int16_t codec_max)
{
    const kver_range_t *vr = &t->px->versions[api];
    if (vr->min_ver > vr->max_ver)
        return -1;
    return vr->max_ver < codec_max ? vr->max_ver : codec_max;
}

/* ---------------------------------------------------------------- lanes */

static struct lane *lane_to(struct txn *t, int32_t node_id)
{
    for (size_t i = 0; i < t->nlanes; i++)
        if (lane_node_id(t->lanes[i]) == node_id)
            return t->lanes[i];
    struct lane *l = lane_new(t->px, node_id, TXN_LANE_MAX_BYTES);
    struct lane **nl = l ? realloc(t->lanes, (t->nlanes + 1) * sizeof(*nl)) : NULL;
    if (!nl) {
        lane_free(l);
        return NULL;
    }
    t->lanes = nl;
    t->lanes[t->nlanes++] = l;
    return l;
}

/* Sends the frame in w (left empty) on l; as lane_send. */
static int send_w(struct lane *l, kwriter_t *w, lane_cb cb, void *arg)
{
    size_t n;
    uint8_t *buf = kw_detach(w, &n);
    return lane_send(l, buf, n, 0, cb, arg);
}

/* ---------------------------------------------------------------- requests */

static void treq_free(struct txn *t, struct treq *r)
{
    kproduce_resp_free(&r->resp);
    kproduce_req_free(&r->req);
    if (r->buf)
        t->bytes -= reqbuf_release(r->buf);
    t->nreqs--;
    free(r);
}

static struct evbuffer *build_response(struct treq *r)
{
    if (r->acks_zero)
        return NULL;
    r->resp.correlation_id = r->corr;
    return engine_produce_response(r->ver, &r->resp, r->client_id);
}

static void tcommit_free(struct txn *t, struct tcommit *tc)
{
    if (!tc)
        return;
    kcommit_free(&tc->c);
    free(tc->frame);
    t->bytes -= tc->len;
    t->nreqs--;
    free(tc);
}

/* tc's OffsetCommitResponse (NULL on OOM: the client is closed). Dedup's
 * commit tracking sees it as if it came from the coordinator. */
static struct evbuffer *commit_response(struct txn *t, const struct tcommit *tc)
{
    kwriter_t w;
    kw_init(&w, 128);
    struct evbuffer *resp = NULL;
    if (kcommit_resp_write(&w, tc->ver, tc->corr, &tc->c, tc->answer) == 0 &&
        (resp = evbuffer_new()) && evbuffer_add(resp, w.buf, w.len)) {
        evbuffer_free(resp);
        resp = NULL;
    }
    if (resp && t->px->dedup)
        dedup_commit_response(t->px->dedup, KAPI_OffsetCommit, tc->ver, w.buf + 4, w.len - 4,
                              tc->client_id, tc->corr);
    kw_free(&w);
    return resp;
}

/* Hands every answered request to its client (from the loop only). */
static void deliver_done(struct txn *t)
{
    struct tcommit *tc;
    while ((tc = TAILQ_FIRST(&t->cdone))) {
        TAILQ_REMOVE(&t->cdone, tc, link);
        t->o.slot_done(t->px, tc->client_id, tc->token, commit_response(t, tc));
        tcommit_free(t, tc);
    }
    struct treq *r;
    while ((r = TAILQ_FIRST(&t->done))) {
        TAILQ_REMOVE(&t->done, r, link);
        log_debug("txn %s: answering client %llu request %llu after %llu ms", t->id,
                  (unsigned long long)r->client_id, (unsigned long long)r->token,
                  (unsigned long long)(t->o.now_ms() - r->arrived_ms));
        t->o.slot_done(t->px, r->client_id, r->token, build_response(r));
        treq_free(t, r);
    }
}

/* ---------------------------------------------------------------- transactions */

static void tx_free(struct txn *t, struct tx *x)
{
    for (size_t i = 0; i < x->nb; i++) {
        struct tbatch *b = x->b[i];
        b->part->queued--;
        t->bytes -= reqbuf_release(b->buf);
        free(b);
    }
    free(x->b);
    tcommit_free(t, x->commit);
    struct treq *r;
    while ((r = TAILQ_FIRST(&x->reqs))) {
        TAILQ_REMOVE(&x->reqs, r, link);
        treq_free(t, r);
    }
    free(x);
}

static struct tx *tx_new(struct txn *t)
{
    struct tx *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->id = ++t->next_tx_id;
    x->order = t->pool ? ++t->pool->next_order : x->id;
    x->st = TX_OPEN;
    x->created_ms = t->o.now_ms();
    x->min_client_timeout_ms = INT32_MAX;
    x->deadline_ms = UINT64_MAX;
    TAILQ_INIT(&x->reqs);
    TAILQ_INSERT_TAIL(&t->txs, x, link);
    wake_in(t, cfg(t)->transactions.linger_ms);
    return x;
}

static void tx_retire(struct txn *t, struct tx *x);

/* Closes the open transaction (if any): it is sent when its turn comes.
 * One that holds nothing (its requests were all refused) is dropped. */
static void close_open(struct txn *t)
{
    struct tx *x = TAILQ_LAST(&t->txs, tx_q);
    if (x && x->st == TX_OPEN && !x->nb && TAILQ_EMPTY(&x->reqs)) {
        tx_retire(t, x);
    } else if (x && x->st == TX_OPEN) {
        x->st = TX_CLOSED;
        t->nclosed++;
        kick(t);
    }
}

/* Dequeues x after its requests were moved to the done list. */
static void tx_retire(struct txn *t, struct tx *x)
{
    if (x->st != TX_OPEN && x->st != TX_CLOSED)
        t->last_finish_ms = t->o.now_ms();
    else if (x->st == TX_CLOSED)
        t->nclosed--;
    TAILQ_REMOVE(&t->txs, x, link);
    x->dead = 1;
    if (t->op && t->op->tx == x)
        t->op->tx = NULL; /* its answer finds nothing to do */
    if (x->nflights)
        TAILQ_INSERT_TAIL(&t->dead, x, link);
    else
        tx_free(t, x);
    kick(t);
    kick_peers(t);
}

static void answer_all(struct txn *t, struct tx *x)
{
    struct treq *r;
    while ((r = TAILQ_FIRST(&x->reqs))) {
        TAILQ_REMOVE(&x->reqs, r, link);
        TAILQ_INSERT_TAIL(&t->done, r, link);
    }
}

/*
 * What a failed bound commit answers: the group coordinator's own verdict
 * on the member (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) and authorization
 * errors as they are; anything else ILLEGAL_GENERATION, on which Kafka's
 * consumers (Java, librdkafka) count their partitions lost and read them
 * again from the committed offsets: the input of the aborted output is
 * processed again, whether or not the commit happened.
 */
static int16_t commit_error(int16_t e)
{
    switch (e) {
    case KERR_UNKNOWN_MEMBER_ID:
    case KERR_FENCED_INSTANCE_ID:
    case KERR_TOPIC_AUTHORIZATION_FAILED:
    case KERR_GROUP_AUTHORIZATION_FAILED:
        return e;
    default:
        return KERR_ILLEGAL_GENERATION;
    }
}

/* Answers x's commit with e for every partition and dequeues x. */
static void commit_answer(struct txn *t, struct tx *x, int16_t e)
{
    struct tcommit *tc = x->commit;
    x->commit = NULL;
    tc->answer = e;
    TAILQ_INSERT_TAIL(&t->cdone, tc, link);
    tx_retire(t, x);
}

/* Aborts the Kafka transaction under way (a new epoch, between
 * transactions). doom: output acknowledged from it is lost, so the
 * group's next commit is refused (init_done decides). */
static void abort_ktx(struct txn *t, int doom)
{
    if (!doom)
        t->ktx_acked = 0;
    if (t->ktx_parts)
        t->need_init = 1;
}

/* A rebalance's abort of the Kafka transaction (doom: refuse the next
 * commit if output was acknowledged from it). */
static void rebalance_abort(struct txn *t, int doom)
{
    if (t->ktx_parts)
        g_metrics.txn_aborted++;
    abort_ktx(t, doom);
}

/* Whether the client of commit item x still waits for its answer. */
static int commit_waiting(const struct txn *t, const struct tx *x)
{
    return t->o.slot_waiting(t->px, x->commit->client_id, x->commit->token);
}

/*
 * A bound commit failed: its output is aborted and the committing
 * consumer is answered with an error that makes it rejoin the group and
 * read its partitions again from the committed offsets (commit_error), so
 * nothing is lost and nothing is committed twice. That answer is the
 * refusal a doomed transaction waits for: no doom is left. What the
 * consumer produces before its rejoin is aborted at the rejoin
 * (txn_group_rebalance). Commits it sent before it saw this answer (queued
 * behind x) carry offsets past the lost output too: when output was lost,
 * they are stale and refused (drive_commit).
 * Unless its client has gone: nobody sees that answer, and the consumer
 * may commit again on another connection without reading again, so the
 * doom stays (as for any lost output).
 */
static void commit_fail(struct txn *t, struct tx *x, int16_t e, const char *why)
{
    int seen = commit_waiting(t, x);
    int lost = t->doomed || t->ktx_acked;
    log_warn("txn %s: the offset commit of group \"%s\" failed (%s); its output is aborted and "
             "the consumer reads again from its committed offsets",
             t->id, t->group, why);
    if (x->end_sent)
        g_metrics.txn_commit_unknown++;
    g_metrics.txn_aborted++;
    g_metrics.bind_refused++;
    if (seen) {
        t->doomed = 0;
        t->refused = 1;
        for (struct tx *y = TAILQ_FIRST(&t->txs); y; y = TAILQ_NEXT(y, link))
            if (y != x && y->commit && lost)
                y->stale = 1;
    }
    abort_ktx(t, !seen);
    commit_answer(t, x, commit_error(e));
}

/*
 * Gives up x: slots without an error of their own get e (their batch may
 * have been written, but the transaction is never committed), then every
 * request is answered. bump: re-initialize the id, which aborts the
 * transaction on the coordinator (needed once anything was added or sent).
 */
static void tx_fail(struct txn *t, struct tx *x, int16_t e, int bump, const char *why)
{
    if (x->dead)
        return;
    if (x->commit) {
        commit_fail(t, x, e, why);
        return;
    }
    log_warn("txn %s: transaction of %zu batch(es) failed (%s); answering its clients with "
             "errors%s",
             t->id, x->nb, why, bump ? " and aborting it" : "");
    for (size_t i = 0; i < x->nb; i++) {
        kproduce_presp_t *s = x->b[i]->slot;
        if (s->error_code == KERR_NONE)
            s->error_code = e;
        s->base_offset = s->log_append_time_ms = s->log_start_offset = -1;
    }
    if (x->end_sent)
        g_metrics.txn_commit_unknown++;
    g_metrics.txn_aborted++;
    answer_all(t, x);
    if (bump && ((x->st != TX_OPEN && x->st != TX_CLOSED) || t->ktx_parts))
        t->need_init = 1;
    tx_retire(t, x);
}

static void tx_committed(struct txn *t, struct tx *x)
{
    g_metrics.txn_committed++;
    if (x->commit) {
        g_metrics.bind_commits++;
        t->refused = 0;
        metrics_observe_txn_latency((t->o.now_ms() - x->started_ms) * 1000);
        commit_answer(t, x, KERR_NONE);
        return;
    }
    g_metrics.txn_batches += x->nb;
    struct treq *r;
    TAILQ_FOREACH(r, &x->reqs, link)
    g_metrics.txn_requests++;
    metrics_observe_txn_latency((t->o.now_ms() - x->started_ms) * 1000);
    answer_all(t, x);
    tx_retire(t, x);
}

/* The Kafka transaction ended (EndTxn answered, or a new epoch): the next
 * one adds its partitions again. */
static void ktx_next(struct txn *t)
{
    t->ktx++;
    t->ktx_parts = 0;
    t->ktx_acked = 0;
    t->ktx_started_ms = 0;
}

/* Fenced: every queued transaction fails, and so does every new request. */
static void fenced(struct txn *t, int16_t e, const char *where)
{
    if (t->state == TS_FENCED)
        return;
    log_error("txn %s: FENCED: %s answered ErrorCode %d: another eosproxy instance uses "
              "transactions.id \"%s\"; refusing transactional writes until restart (give every "
              "instance its own id)",
              t->id, where, (int)e, t->id);
    t->state = TS_FENCED;
    g_metrics.txn_fenced++;
    g_metrics.txn_fenced_now = 1;
    struct tx *x;
    while ((x = TAILQ_FIRST(&t->txs)))
        tx_fail(t, x, KERR_PRODUCER_FENCED, 0, "fenced");
}

/* ---------------------------------------------------------------- coordinator */

static void op_backoff(struct txn *t)
{
    t->not_before_ms = t->o.now_ms() + t->backoff_ms;
    wake_in(t, t->backoff_ms);
    t->backoff_ms *= 2;
    if (t->backoff_ms > TXN_BACKOFF_MAX_MS)
        t->backoff_ms = TXN_BACKOFF_MAX_MS;
}

/* The coordinator moved or is gone: find it again, after a backoff. */
static void lost_coordinator(struct txn *t, const char *why)
{
    log_info("txn %s: transaction coordinator %d %s; looking it up again", t->id, (int)t->coord,
             why);
    t->coord = -1;
    g_metrics.txn_coordinator_moves++;
    op_backoff(t);
}

/* Which way a coordinator ErrorCode goes: 1 handled (retry), 0 not. */
static int coordinator_retry(struct txn *t, int16_t e)
{
    switch (e) {
    case KERR_NOT_COORDINATOR:
    case KERR_COORDINATOR_NOT_AVAILABLE:
        lost_coordinator(t, e == KERR_NOT_COORDINATOR ? "is no longer it" : "is not available");
        return 1;
    case KERR_CONCURRENT_TRANSACTIONS: {
        /* The previous transaction's markers are still being written,
         * usually for 2-5 ms: retried every 2 ms for TXN_CONCURRENT_FAST
         * tries, then doubling to 20 ms (Kafka's producer waits a flat
         * 20 ms, which is most of a transaction here). */
        uint64_t d = ++t->concurrent_tries <= TXN_CONCURRENT_FAST ? TXN_CONCURRENT_MIN_MS
                                                                  : t->concurrent_ms * 2;
        t->concurrent_ms = d < TXN_BACKOFF_MS ? d : TXN_BACKOFF_MS;
        t->not_before_ms = t->o.now_ms() + t->concurrent_ms;
        wake_in(t, t->concurrent_ms);
        return 1;
    }
    case KERR_COORDINATOR_LOAD_IN_PROGRESS:
        op_backoff(t);
        return 1;
    default:
        return 0;
    }
}

static int is_fencing(int16_t e)
{
    return e == KERR_PRODUCER_FENCED || e == KERR_INVALID_PRODUCER_EPOCH;
}

/* Takes the op that completed; NULL if it is stale (engine closing). */
static struct op *op_take(void *arg)
{
    struct op *o = arg;
    struct txn *t = o->t;
    if (t->op == o)
        t->op = NULL;
    if (t->closing) {
        free(o);
        return NULL;
    }
    return o;
}

static void find_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    ktxn_coord_t c;
    if (!frame || ktxn_findcoord_resp_parse(o->ver, frame, len, t->kid, &c)) {
        log_warn("txn %s: FindCoordinator %s; retrying", t->id, frame ? "malformed" : "failed");
        op_backoff(t);
    } else if (c.error_code != KERR_NONE || c.node_id < 0) {
        log_warn("txn %s: FindCoordinator answered ErrorCode %d; retrying", t->id,
                 (int)c.error_code);
        op_backoff(t);
    } else {
        t->coord = c.node_id;
        t->backoff_ms = TXN_BACKOFF_MS;
        log_info("txn %s: transaction coordinator is broker %d", t->id, (int)c.node_id);
    }
    free(o);
    kick(t);
}

static void init_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    kinitpid_resp_t resp;
    if (!frame || kinitpid_resp_parse(o->ver, frame, len, &resp)) {
        lost_coordinator(t, frame ? "sent a malformed InitProducerId response" : "did not answer");
    } else if (resp.error_code == KERR_NONE && resp.producer_id >= 0 && resp.producer_epoch >= 0) {
        t->pid = resp.producer_id;
        t->epoch = resp.producer_epoch;
        t->gen++;
        if (t->group && t->ktx_acked) {
            log_warn("txn %s: output of group \"%s\" acknowledged to its producers was aborted; "
                     "its next offset commit is refused so the consumer reads that input again",
                     t->id, t->group);
            t->doomed = 1;
        }
        ktx_next(t);
        t->need_init = 0;
        t->backoff_ms = TXN_BACKOFF_MS;
        t->concurrent_tries = 0;
        if (t->gen > 1)
            g_metrics.producer_id_renewals++;
        log_info("txn %s: producer id %lld epoch %d", t->id, (long long)t->pid, (int)t->epoch);
        kick_peers(t);
    } else if (!coordinator_retry(t, resp.error_code)) {
        log_error("txn %s: InitProducerId answered ErrorCode %d (check transactions.timeout "
                  "against transaction.max.timeout.ms and the id's ACLs); retrying",
                  t->id, (int)resp.error_code);
        t->backoff_ms = TXN_BACKOFF_MAX_MS;
        op_backoff(t);
    }
    free(o);
    kick(t);
}

/* Sends the frame in w as op kind; returns 0, or -1 (backoff taken). */
static int op_send(struct txn *t, int32_t node, enum opkind kind, int16_t ver, struct tx *x,
                   kwriter_t *w, lane_cb cb)
{
    struct lane *l = lane_to(t, node);
    struct op *o = calloc(1, sizeof(*o));
    if (!l || !o || w->err) {
        free(o);
        kw_free(w);
        op_backoff(t);
        return -1;
    }
    *o = (struct op){t, kind, ver, x, x ? x->nb : 0};
    if (send_w(l, w, cb, o)) {
        free(o);
        kw_free(w);
        op_backoff(t);
        return -1;
    }
    t->op = o;
    return 0;
}

static kstr_t client_kid(void)
{
    return (kstr_t){TXN_CLIENT_ID, (int32_t)strlen(TXN_CLIENT_ID)};
}

/* FindCoordinator for key (key_type 1: a transactional id, 0: a group) on
 * the next broker in turn, as op kind answered by cb. */
static void start_find_key(struct txn *t, int8_t key_type, kstr_t key, enum opkind kind, lane_cb cb)
{
    struct proxy *px = t->px;
    int16_t ver = version(t, KAPI_FindCoordinator, KTXN_FINDCOORD_MAX_VERSION);
    if (!px->nbrokers || ver < 1) {
        if (px->nbrokers && ver < 1)
            log_error("txn %s: the cluster does not offer FindCoordinator v1+", t->id);
        op_backoff(t);
        return;
    }
    struct broker *b = px->brokers[t->rr++ % px->nbrokers];
    struct lane *l = lane_to(t, b->node_id);
    kwriter_t w;
    kw_init(&w, 64);
    if (!l ||
        ktxn_findcoord_req_write(&w, ver, lane_next_correlation(l), client_kid(), key_type, key)) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    op_send(t, b->node_id, kind, ver, NULL, &w, cb);
}

static void start_find(struct txn *t)
{
    start_find_key(t, 1, t->kid, OP_FIND, find_done);
}

static void start_init(struct txn *t)
{
    int16_t ver = version(t, KAPI_InitProducerId, KINITPID_MAX_VERSION);
    struct lane *l = lane_to(t, t->coord);
    kwriter_t w;
    kw_init(&w, 64);
    uint64_t tmo = cfg(t)->transactions.timeout_ms;
    kinitpid_req_t req = {t->kid, (int32_t)tmo, -1, -1};
    if (ver < 0 || !l ||
        kinitpid_req_write(&w, ver, lane_next_correlation(l), client_kid(), &req)) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    op_send(t, t->coord, OP_INIT, ver, NULL, &w, init_done);
}

/* ---------------------------------------------------------------- add partitions */

static int by_topic_name(const void *a, const void *b)
{
    const struct seqpart *x = *(struct seqpart *const *)a, *y = *(struct seqpart *const *)b;
    if (x->topic_len != y->topic_len)
        return x->topic_len < y->topic_len ? -1 : 1;
    int c = memcmp(x->topic, y->topic, x->topic_len);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The distinct partitions of x not yet in the Kafka transaction under way,
 * sorted by topic; *n of them. NULL on OOM. */
static struct seqpart **tx_partitions(const struct txn *t, const struct tx *x, size_t *n)
{
    struct seqpart **ps = malloc((x->nb ? x->nb : 1) * sizeof(*ps));
    if (!ps)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < x->nb; i++)
        if (x->b[i]->round == 0 && x->b[i]->part->added != t->ktx)
            ps[(*n)++] = &x->b[i]->part->sp;
    qsort(ps, *n, sizeof(*ps), by_topic_name);
    return ps;
}

/* Writes x's AddPartitionsToTxn into w. 0, or -1 on OOM. */
static int write_add(struct txn *t, struct tx *x, kwriter_t *w, int16_t ver, int32_t corr)
{
    size_t n = 0;
    struct seqpart **ps = tx_partitions(t, x, &n);
    ktxn_topic_t *topics = calloc(n ? n : 1, sizeof(*topics));
    int32_t *parts = malloc((n ? n : 1) * sizeof(*parts));
    int rc = -1;
    if (ps && topics && parts) {
        int32_t nt = 0;
        for (size_t i = 0; i < n; i++) {
            if (!i || ps[i - 1]->topic_len != ps[i]->topic_len ||
                memcmp(ps[i - 1]->topic, ps[i]->topic, ps[i]->topic_len))
                topics[nt++] =
                    (ktxn_topic_t){{ps[i]->topic, (int32_t)ps[i]->topic_len}, 0, &parts[i]};
            parts[i] = ps[i]->partition;
            topics[nt - 1].npartitions++;
        }
        rc = ktxn_addparts_req_write(w, ver, corr, client_kid(), t->kid, t->pid, t->epoch, topics,
                                     nt);
    }
    free(ps);
    free(topics);
    free(parts);
    return rc;
}

static void send_produce(struct txn *t, struct tx *x);
static void produce_when_turn(struct txn *t, struct tx *x);

/* The partitions of x->b[0..nb) are in the Kafka transaction now (the
 * first ones begin it). Batches after nb came after the request went. */
static void mark_added(struct txn *t, struct tx *x, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        struct tpart *p = x->b[i]->part;
        if (p->added == t->ktx)
            continue;
        p->added = t->ktx;
        if (!t->ktx_parts++) {
            t->ktx_started_ms = t->o.now_ms();
            g_metrics.txn_begun++;
        }
    }
}

/* Sets the partition errors of an AddPartitionsToTxn answer on x's slots.
 * OPERATION_NOT_ATTEMPTED only says another partition was refused: those
 * slots keep the retriable error tx_fail gives. */
static void add_errors(struct tx *x, const ktxn_addparts_resp_t *r)
{
    for (int32_t i = 0; i < r->nresults; i++) {
        const ktxn_part_result_t *p = &r->results[i];
        if (p->error_code == KERR_NONE || p->error_code == KERR_OPERATION_NOT_ATTEMPTED)
            continue;
        for (size_t j = 0; j < x->nb; j++) {
            const struct seqpart *sp = &x->b[j]->part->sp;
            if (sp->partition == p->partition && (size_t)p->topic.len == sp->topic_len &&
                !memcmp(p->topic.ptr, sp->topic, sp->topic_len))
                x->b[j]->slot->error_code = p->error_code;
        }
    }
}

/* The ErrorCode of an AddPartitionsToTxn answer, 0 if none: the first one
 * but OPERATION_NOT_ATTEMPTED (Kafka's mark on the partitions it skipped
 * because of another's error), which is returned only when alone. */
static int16_t add_error(const ktxn_addparts_resp_t *r)
{
    int16_t e = r->error_code;
    for (int32_t i = 0; i < r->nresults && (!e || e == KERR_OPERATION_NOT_ATTEMPTED); i++)
        if (r->results[i].error_code)
            e = r->results[i].error_code;
    return e;
}

static void add_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    struct tx *x = o->tx;
    ktxn_addparts_resp_t r;
    int parsed = frame && !ktxn_addparts_resp_parse(o->ver, frame, len, &r);
    int16_t e = parsed ? add_error(&r) : KERR_NETWORK_EXCEPTION;
    if (!x || t->state == TS_FENCED) {
        /* failed meanwhile (deadline); nothing to do */
    } else if (!parsed) {
        lost_coordinator(t, frame ? "sent a malformed AddPartitionsToTxn response"
                                  : "did not answer AddPartitionsToTxn");
    } else if (e == KERR_NONE) {
        t->backoff_ms = TXN_BACKOFF_MS;
        t->concurrent_ms = 0;
        t->concurrent_tries = 0;
        mark_added(t, x, o->nb);
        if (x->st == TX_ADD)
            produce_when_turn(t, x); /* else added early, during its linger */
    } else if (is_fencing(e)) {
        fenced(t, e, "AddPartitionsToTxn");
    } else if (!coordinator_retry(t, e)) {
        add_errors(x, &r);
        /* Partitions were not added (the request is all or nothing), but
         * an earlier attempt's answer may have been lost: bump anyway. */
        tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "AddPartitionsToTxn refused a partition");
    }
    if (parsed)
        ktxn_addparts_resp_free(&r);
    free(o);
    kick(t);
}

/* 1 if some partition of x is not in the Kafka transaction yet. */
static int has_new_partitions(const struct txn *t, const struct tx *x)
{
    for (size_t i = 0; i < x->nb; i++)
        if (x->b[i]->part->added != t->ktx)
            return 1;
    return 0;
}

/* x starts: closed -> under way (from the commit item too). */
static void tx_start(struct txn *t, struct tx *x, enum txstate st)
{
    if (x->st == TX_CLOSED) {
        x->started_ms = t->o.now_ms();
        t->nclosed--;
    }
    x->st = st;
}

/*
 * Adds the partitions of the open transaction x that are not in the Kafka
 * transaction yet, while x waits out its linger: when x closes, its
 * batches go at once, and the wait for the previous transaction's markers
 * (CONCURRENT_TRANSACTIONS) is spent inside the linger.
 */
static void start_early_add(struct txn *t, struct tx *x)
{
    int16_t ver = version(t, KAPI_AddPartitionsToTxn, 3);
    struct lane *l = lane_to(t, t->coord);
    kwriter_t w;
    kw_init(&w, 256);
    if (ver < 0 || !l || write_add(t, x, &w, ver, lane_next_correlation(l))) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    op_send(t, t->coord, OP_ADD, ver, x, &w, add_done);
}

/* Whether y, another engine's transaction, is past writing: its batches
 * all answered, or failed (then aborted: never visible). */
static int tx_written(const struct tx *y)
{
    return y->failed || y->st == TX_END || (y->st == TX_PRODUCE && !y->nwaiting);
}

/*
 * Whether x may send its batches: every transaction of the pool opened
 * before it is past writing. Queues are in order, so each engine's is
 * read up to the first later one (at most max_inflight + 2 entries). A
 * waiting x is run again by kick_peers (or the tick).
 */
static int produce_turn(const struct txn *t, const struct tx *x)
{
    for (size_t i = 0; t->pool && i < t->pool->n; i++) {
        const struct txn *m = t->pool->m[i];
        const struct tx *y;
        if (m == t)
            continue;
        TAILQ_FOREACH(y, &m->txs, link)
        {
            if (y->order > x->order)
                break;
            if (!tx_written(y))
                return 0;
        }
    }
    return 1;
}

/* Sends x's batches once its partitions are in the Kafka transaction
 * and its turn has come; until then x waits in TX_ADD. */
static void produce_when_turn(struct txn *t, struct tx *x)
{
    if (produce_turn(t, x)) {
        send_produce(t, x);
    } else if (!x->turn_waited) {
        x->turn_waited = 1;
        g_metrics.txn_turn_waits++;
    }
}

/* Starts x with AddPartitionsToTxn for the partitions not in the Kafka
 * transaction yet; when it has none (added early, or a bound
 * transaction's later requests), with its batches at once. */
static void start_add(struct txn *t, struct tx *x)
{
    if (!has_new_partitions(t, x)) {
        tx_start(t, x, TX_ADD);
        produce_when_turn(t, x);
        return;
    }
    int16_t ver = version(t, KAPI_AddPartitionsToTxn, 3);
    struct lane *l = lane_to(t, t->coord);
    kwriter_t w;
    kw_init(&w, 256);
    if (ver < 0 || !l || write_add(t, x, &w, ver, lane_next_correlation(l))) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    tx_start(t, x, TX_ADD);
    op_send(t, t->coord, OP_ADD, ver, x, &w, add_done);
}

/* ---------------------------------------------------------------- produce */

/* Gives x's batches sequences under the current epoch, in order. */
static void stamp_batches(struct txn *t, struct tx *x)
{
    for (size_t i = 0; i < x->nb; i++) {
        struct tbatch *b = x->b[i];
        int32_t seq = seq_assign(&b->part->sp, t->gen, b->record_count);
        krecord_set_producer(b->data, b->size, t->pid, t->epoch, seq, 1);
    }
}

static void flight_done(void *arg, const uint8_t *frame, size_t len)
{
    struct flight *f = arg;
    struct txn *t = f->t;
    struct tx *x = f->tx;
    x->nflights--;
    if (t->closing || x->dead) {
        if (x->dead && !x->nflights && !t->closing) {
            TAILQ_REMOVE(&t->dead, x, link);
            tx_free(t, x);
        }
        free(f);
        return;
    }
    kproduce_resp_t resp;
    int parsed = frame && kproduce_resp_parse(f->ver, frame, len, &resp, NULL) == 0;
    int32_t node_id = f->node_id;
    kproduce_resp_pos_t pos = {0, 0};
    int16_t first_err = KERR_NONE;
    for (int32_t i = 0; i < f->n; i++) {
        struct tbatch *b = f->b[i];
        const kproduce_presp_t *p =
            parsed ? kproduce_resp_find(&resp, &pos, b->part->sp.topic, b->part->sp.topic_len,
                                        b->part->sp.partition)
                   : NULL;
        int16_t e = p ? p->error_code : KERR_NETWORK_EXCEPTION;
        x->nwaiting--;
        if (e == KERR_NONE || e == KERR_DUPLICATE_SEQUENCE_NUMBER) {
            b->slot->base_offset = e == KERR_NONE ? p->base_offset : -1;
            b->slot->log_append_time_ms = p->log_append_time_ms;
            b->slot->log_start_offset = p->log_start_offset;
        } else {
            b->slot->error_code = e;
            if (!first_err)
                first_err = e;
        }
    }
    if (parsed)
        kproduce_resp_free(&resp);
    free(f);
    if (first_err) {
        x->failed = 1;
        char why[96];
        snprintf(why, sizeof(why), "broker %d answered ErrorCode %d", (int)node_id, (int)first_err);
        if (is_fencing(first_err))
            fenced(t, first_err, "Produce");
        else
            tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, frame ? why : "a Produce answer was lost");
    }
    kick(t);
    kick_peers(t);
}

/* Orders batches by broker, then round, keeping their order otherwise. */
static int by_node_round(const void *a, const void *b)
{
    const struct tbatch *x = *(struct tbatch *const *)a, *y = *(struct tbatch *const *)b;
    if (x->part->node_id != y->part->node_id)
        return x->part->node_id < y->part->node_id ? -1 : 1;
    if (x->round != y->round)
        return x->round < y->round ? -1 : 1;
    return (x > y) - (x < y);
}

/* Sends b[0..n) (one broker, one round: distinct partitions) as one
 * ProduceRequest. Returns 0 or -1. */
static int send_flight(struct txn *t, struct tx *x, struct tbatch **b, int32_t n)
{
    struct lane *l = lane_to(t, b[0]->part->node_id);
    struct flight *f = calloc(1, sizeof(*f) + (size_t)n * sizeof(f->b[0]));
    kproduce_topic_t *topics = calloc((size_t)n, sizeof(*topics));
    kproduce_partition_t *parts = calloc((size_t)n, sizeof(*parts));
    struct reqbuf **bufs = calloc((size_t)n, sizeof(*bufs));
    int16_t ver = version(t, KAPI_Produce, KPRODUCE_MAX_VERSION);
    int ok = l && f && topics && parts && bufs && ver >= KPRODUCE_MIN_VERSION;
    kproduce_req_t req = {t->kid, -1, 0, 0, topics};
    int32_t tmo = x->min_client_timeout_ms;
    req.timeout_ms = tmo > 0 && tmo < 30000 ? tmo : 30000;
    for (int32_t i = 0; ok && i < n; i++) {
        const struct seqpart *sp = &b[i]->part->sp;
        if (!i || b[i - 1]->part->sp.topic_len != sp->topic_len ||
            memcmp(b[i - 1]->part->sp.topic, sp->topic, sp->topic_len))
            topics[req.ntopics++] =
                (kproduce_topic_t){{sp->topic, (int32_t)sp->topic_len}, 0, &parts[i]};
        parts[i] = (kproduce_partition_t){sp->partition, {b[i]->data, (int32_t)b[i]->size}};
        bufs[i] = b[i]->buf;
        topics[req.ntopics - 1].npartitions++;
        f->b[f->n++] = b[i];
    }
    if (ok) {
        /* The batches go by reference (engine_produce_frame): stamped once,
         * before this, they do not change while the lane holds them. */
        *f = (struct flight){t, x, ver, b[0]->part->node_id, f->n};
        struct evbuffer *frame =
            engine_produce_frame(ver, lane_next_correlation(l), client_kid(), &req, bufs);
        ok = frame && lane_send_buffer(l, frame, 0, flight_done, f) == 0;
    }
    free(bufs);
    free(topics);
    free(parts);
    if (!ok) {
        free(f);
        return -1;
    }
    x->nflights++;
    return 0;
}

/* Orders the batches of one flight's worth by topic (adjacent names). */
static int by_part_topic(const void *a, const void *b)
{
    const struct tbatch *x = *(struct tbatch *const *)a, *y = *(struct tbatch *const *)b;
    const struct seqpart *p = &x->part->sp, *q = &y->part->sp;
    return by_topic_name(&p, &q);
}

/*
 * Sends every batch of x: per broker, round by round (a partition's k-th
 * batch in the k-th request to its broker, so its sequences arrive in
 * order on the lane), each request at most TXN_FLIGHT_BYTES (one batch at
 * least). Any failure to send fails x.
 */
static void send_produce(struct txn *t, struct tx *x)
{
    x->st = TX_PRODUCE;
    stamp_batches(t, x);
    struct tbatch **order = malloc((x->nb ? x->nb : 1) * sizeof(*order));
    if (!order) {
        tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "out of memory");
        return;
    }
    memcpy(order, x->b, x->nb * sizeof(*order));
    qsort(order, x->nb, sizeof(*order), by_node_round);
    x->nwaiting = x->nb;
    for (size_t i = 0, j; i < x->nb; i = j) {
        size_t bytes = order[i]->size;
        for (j = i + 1;
             j < x->nb && order[j]->part->node_id == order[i]->part->node_id &&
             order[j]->round == order[i]->round && bytes + order[j]->size <= TXN_FLIGHT_BYTES;
             j++)
            bytes += order[j]->size;
        qsort(order + i, j - i, sizeof(*order), by_part_topic);
        if (send_flight(t, x, order + i, (int32_t)(j - i))) {
            x->nwaiting -= x->nb - i;
            free(order);
            tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "cannot send to a broker (lane full)");
            return;
        }
    }
    free(order);
}

/* ---------------------------------------------------------------- end */

static void end_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    struct tx *x = o->tx;
    ktxn_endtxn_resp_t r;
    int parsed = frame && !ktxn_endtxn_resp_parse(o->ver, frame, len, &r);
    if (!x || t->state == TS_FENCED) {
        /* failed meanwhile (deadline) */
    } else if (!parsed) {
        lost_coordinator(t, frame ? "sent a malformed EndTxn response" : "did not answer EndTxn");
    } else if (r.error_code == KERR_NONE) {
        t->backoff_ms = TXN_BACKOFF_MS;
        ktx_next(t);
        tx_committed(t, x);
    } else if (is_fencing(r.error_code)) {
        fenced(t, r.error_code, "EndTxn");
    } else if (!coordinator_retry(t, r.error_code)) {
        char why[64];
        snprintf(why, sizeof(why), "EndTxn answered ErrorCode %d", (int)r.error_code);
        x->end_sent = 0; /* a definite answer: not committed */
        tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, why);
    }
    free(o);
    kick(t);
}

static void start_end(struct txn *t, struct tx *x)
{
    int16_t ver = version(t, KAPI_EndTxn, 4); /* v5 is transaction version 2 */
    struct lane *l = lane_to(t, t->coord);
    kwriter_t w;
    kw_init(&w, 64);
    if (ver < 0 || !l ||
        ktxn_endtxn_req_write(&w, ver, lane_next_correlation(l), client_kid(), t->kid, t->pid,
                              t->epoch, 1)) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    x->st = TX_END;
    if (op_send(t, t->coord, OP_END, ver, x, &w, end_done) == 0)
        x->end_sent = 1;
}

/*
 * Whether every client of x can still be answered. One that has gone
 * (its connection closed while x was under way) will send its records
 * again, so x must not commit: its records would be written twice. x is
 * then aborted, and every other client retries too. acks=0 requests have
 * no answer and do not count.
 */
static int clients_waiting(const struct txn *t, const struct tx *x)
{
    const struct treq *r;
    TAILQ_FOREACH(r, &x->reqs, link)
    {
        if (!r->acks_zero && !t->o.slot_waiting(t->px, r->client_id, r->token))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- bound commits */

/* The group's coordinator answered FindCoordinator(GROUP). */
static void find_group_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    ktxn_coord_t c;
    if (!frame || ktxn_findcoord_resp_parse(o->ver, frame, len, t->kgroup, &c) ||
        c.error_code != KERR_NONE || c.node_id < 0) {
        log_warn("txn %s: FindCoordinator for group \"%s\" failed; retrying", t->id, t->group);
        op_backoff(t);
    } else {
        t->gcoord = c.node_id;
        t->backoff_ms = TXN_BACKOFF_MS;
    }
    free(o);
    kick(t);
}

static void start_find_group(struct txn *t)
{
    start_find_key(t, 0, t->kgroup, OP_FINDGROUP, find_group_done);
}

static void offsets_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    struct tx *x = o->tx;
    ktxn_addoffsets_resp_t r;
    int parsed = frame && !ktxn_addoffsets_resp_parse(o->ver, frame, len, &r);
    if (!x || t->state == TS_FENCED) {
        /* failed meanwhile (deadline) */
    } else if (!parsed) {
        lost_coordinator(t, frame ? "sent a malformed AddOffsetsToTxn response"
                                  : "did not answer AddOffsetsToTxn");
    } else if (r.error_code == KERR_NONE) {
        t->backoff_ms = TXN_BACKOFF_MS;
        x->st = TX_GROUP;
        if (!t->ktx_parts++)
            t->ktx_started_ms = t->o.now_ms();
    } else if (is_fencing(r.error_code)) {
        fenced(t, r.error_code, "AddOffsetsToTxn");
    } else if (!coordinator_retry(t, r.error_code)) {
        char why[64];
        snprintf(why, sizeof(why), "AddOffsetsToTxn answered ErrorCode %d", (int)r.error_code);
        tx_fail(t, x, r.error_code, 1, why);
    }
    free(o);
    kick(t);
}

static void start_offsets(struct txn *t, struct tx *x)
{
    int16_t ver = version(t, KAPI_AddOffsetsToTxn, 3); /* v4 is transaction version 2 */
    struct lane *l = lane_to(t, t->coord);
    kwriter_t w;
    kw_init(&w, 128);
    if (ver < 0 || !l ||
        ktxn_addoffsets_req_write(&w, ver, lane_next_correlation(l), client_kid(), t->kid, t->pid,
                                  t->epoch, t->kgroup)) {
        kw_free(&w);
        op_backoff(t);
        return;
    }
    op_send(t, t->coord, OP_OFFSETS, ver, x, &w, offsets_done);
}

/* The first ErrorCode of a TxnOffsetCommit answer, 0 if none. */
static int16_t txnoffset_error(const ktxn_txnoffset_resp_t *r)
{
    for (int32_t i = 0; i < r->nresults; i++)
        if (r->results[i].error_code)
            return r->results[i].error_code;
    return KERR_NONE;
}

/*
 * TxnOffsetCommit's errors, as Kafka's producer takes them: the group
 * coordinator moved or is loading, or the partition is not known yet:
 * resent (after looking the coordinator up again, or a backoff). Fencing
 * of the producer: fenced. Anything else (ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, authorization...): the commit
 * fails (commit_fail).
 */
static void txnoffset_done(void *arg, const uint8_t *frame, size_t len)
{
    struct op *o = op_take(arg);
    if (!o)
        return;
    struct txn *t = o->t;
    struct tx *x = o->tx;
    ktxn_txnoffset_resp_t r;
    int parsed = frame && !ktxn_txnoffset_resp_parse(o->ver, frame, len, &r);
    int16_t e = parsed ? txnoffset_error(&r) : KERR_NETWORK_EXCEPTION;
    if (!x || t->state == TS_FENCED) {
        /* failed meanwhile (deadline) */
    } else if (e == KERR_NONE) {
        t->backoff_ms = TXN_BACKOFF_MS;
        x->st = TX_END;
    } else if (!parsed || e == KERR_NOT_COORDINATOR || e == KERR_COORDINATOR_NOT_AVAILABLE) {
        log_info("txn %s: group \"%s\"'s coordinator %d %s; looking it up again", t->id, t->group,
                 (int)t->gcoord, parsed ? "moved" : "did not answer");
        t->gcoord = -1;
        op_backoff(t);
    } else if (e == KERR_COORDINATOR_LOAD_IN_PROGRESS || e == KERR_CONCURRENT_TRANSACTIONS ||
               e == KERR_UNKNOWN_TOPIC_OR_PARTITION || e == KERR_REQUEST_TIMED_OUT) {
        op_backoff(t);
    } else if (is_fencing(e)) {
        fenced(t, e, "TxnOffsetCommit");
    } else {
        char why[64];
        snprintf(why, sizeof(why), "TxnOffsetCommit answered ErrorCode %d", (int)e);
        tx_fail(t, x, e, 1, why);
    }
    if (parsed)
        ktxn_txnoffset_resp_free(&r);
    free(o);
    kick(t);
}

/* tc's offsets as TxnOffsetCommit wants them: *topics (with one parts
 * array behind them, freed with it). 0, or -1 on OOM. */
static int offset_topics(const struct tcommit *tc, ktxn_offset_topic_t **topics)
{
    size_t np = 0;
    for (int32_t i = 0; i < tc->c.ntopics; i++)
        np += (size_t)tc->c.topics[i].npartitions;
    size_t tsz = (size_t)(tc->c.ntopics ? tc->c.ntopics : 1) * sizeof(ktxn_offset_topic_t);
    ktxn_offset_topic_t *ts = malloc(tsz + (np ? np : 1) * sizeof(ktxn_offset_part_t));
    if (!ts)
        return -1;
    ktxn_offset_part_t *ps = (ktxn_offset_part_t *)((uint8_t *)ts + tsz);
    for (int32_t i = 0; i < tc->c.ntopics; i++) {
        const kcommit_topic_t *ct = &tc->c.topics[i];
        ts[i] = (ktxn_offset_topic_t){ct->name, ct->npartitions, ps};
        for (int32_t j = 0; j < ct->npartitions; j++) {
            const kcommit_partition_t *cp = &ct->partitions[j];
            *ps++ = (ktxn_offset_part_t){cp->index, cp->committed_offset,
                                         cp->committed_leader_epoch, cp->committed_metadata};
        }
    }
    *topics = ts;
    return 0;
}

static void start_txnoffset(struct txn *t, struct tx *x)
{
    const struct tcommit *tc = x->commit;
    int16_t ver = version(t, KAPI_TxnOffsetCommit, KCOMMIT_TXN_MAX_VERSION);
    struct lane *l = lane_to(t, t->gcoord);
    ktxn_offset_topic_t *topics = NULL;
    ktxn_txnoffset_req_t req = {t->kid,  t->kgroup,  t->pid,        t->epoch, -1,
                                {"", 0}, {NULL, -1}, tc->c.ntopics, NULL};
    if (ver >= KTXN_TXNOFFSET_MEMBER_VERSION) {
        /* The member's generation lets the coordinator refuse a zombie's
         * commit, as it refuses its plain OffsetCommit. */
        req.generation_id = tc->c.generation_id;
        req.member_id = tc->c.member_id;
        req.group_instance_id = tc->c.group_instance_id;
    }
    kwriter_t w;
    kw_init(&w, 256);
    if (ver < 0 || !l || offset_topics(tc, &topics) ||
        (req.topics = topics,
         ktxn_txnoffset_req_write(&w, ver, lane_next_correlation(l), client_kid(), &req))) {
        free(topics);
        kw_free(&w);
        op_backoff(t);
        return;
    }
    free(topics);
    op_send(t, t->gcoord, OP_TXNOFFSET, ver, x, &w, txnoffset_done);
}

/*
 * One step of a commit item at the head: refused when the transaction's
 * output was lost (doomed); else AddOffsetsToTxn -> FindCoordinator(GROUP)
 * when unknown -> TxnOffsetCommit -> EndTxn(COMMIT) -> the answer. A
 * committing client that has gone before the EndTxn went out aborts the
 * transaction instead (the application died before its commit).
 */
static void drive_commit(struct txn *t, struct tx *x)
{
    if (x->st == TX_CLOSED && (t->doomed || x->stale)) {
        commit_fail(t, x, KERR_ILLEGAL_GENERATION, "output it covers was aborted before");
        return;
    }
    if (!x->end_sent && !commit_waiting(t, x)) {
        log_info("txn %s: the client committing for group \"%s\" has gone; aborting the "
                 "group's output",
                 t->id, t->group);
        g_metrics.txn_aborted++;
        abort_ktx(t, 1); /* or the consumer commits again on another connection */
        commit_answer(t, x, KERR_ILLEGAL_GENERATION);
        return;
    }
    switch (x->st) {
    case TX_CLOSED:
        tx_start(t, x, TX_OFFSETS);
        /* fall through */
    case TX_OFFSETS:
        start_offsets(t, x);
        break;
    case TX_GROUP:
        if (t->gcoord < 0)
            start_find_group(t);
        else
            start_txnoffset(t, x);
        break;
    default:
        start_end(t, x);
        break;
    }
}

/*
 * A bound step x was written: its clients get their acknowledgement now,
 * while the Kafka transaction stays open for the group's commit. A client
 * that has gone will send its records again: x fails instead (the
 * transaction is aborted, and the group's next commit refused if output
 * was acknowledged from it).
 */
static void step_written(struct txn *t, struct tx *x)
{
    if (!clients_waiting(t, x)) {
        tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "a client disconnected before its answer");
        return;
    }
    struct treq *r;
    TAILQ_FOREACH(r, &x->reqs, link)
    {
        t->ktx_acked++;
        g_metrics.txn_requests++;
    }
    g_metrics.txn_batches += x->nb;
    answer_all(t, x);
    tx_retire(t, x);
}

/*
 * A bound transaction open longer than 9/10 of transactions.timeout
 * without a commit of its group is aborted before the coordinator does it
 * (which would fence eosproxy's epoch): its output is lost, so the
 * group's next commit is refused.
 */
static void bound_expire(struct txn *t, uint64_t now)
{
    uint64_t limit = cfg(t)->transactions.timeout_ms / 10 * 9;
    const struct tx *x = TAILQ_FIRST(&t->txs);
    if (!t->group || t->need_init || !t->ktx_started_ms || now - t->ktx_started_ms < limit ||
        (x && x->commit && x->st != TX_CLOSED))
        return;
    log_warn("txn %s: group \"%s\" has not committed its offsets for %llu ms; aborting its "
             "output (transactions.timeout)",
             t->id, t->group, (unsigned long long)(now - t->ktx_started_ms));
    g_metrics.bind_expired++;
    g_metrics.txn_aborted++;
    abort_ktx(t, 1);
}

/* ---------------------------------------------------------------- driver */

/* When the open transaction x closes by time: its linger passed, or no
 * request came for transactions.quiet (its clients wait for their
 * answers: waiting longer only delays them). */
static uint64_t close_at(const struct txn *t, const struct tx *x)
{
    uint64_t at = x->created_ms + cfg(t)->transactions.linger_ms;
    uint64_t quiet = cfg(t)->transactions.quiet_ms;
    if (quiet && x->last_ms + quiet < at)
        at = x->last_ms + quiet;
    return at;
}

/* Whether the head transaction may start: closed, or open past
 * close_at (or it had to wait behind another one: no reason to wait
 * more). */
static int may_start(const struct txn *t, const struct tx *x, uint64_t now)
{
    if (x->st != TX_OPEN)
        return 1;
    return x->nb && (now >= close_at(t, x) || x->created_ms <= t->last_finish_ms);
}

/* Fails every queued transaction past its deadline (at most
 * max_inflight + 2 of them), started or not. */
static void expire(struct txn *t, uint64_t now)
{
    struct tx *x, *next;
    for (x = TAILQ_FIRST(&t->txs); x; x = next) {
        next = TAILQ_NEXT(x, link);
        if (now >= x->deadline_ms)
            tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "its deadline passed");
    }
}

/* Whether t belongs to a pool that took its first request and has not
 * initialized its id yet: it does so at once, with no transaction
 * queued (pool_ready waits for it). */
static int first_init_due(const struct txn *t)
{
    return t->pool && t->pool->started && t->pid < 0;
}

/*
 * Whether every engine of t's pool has initialized its id (or was
 * fenced). None begins a transaction before: a second instance with the
 * same transactions.id then fences this one on every id it uses, and
 * this one cannot fence it back on an id it had not taken yet.
 */
static int pool_ready(const struct txn *t)
{
    for (size_t i = 0; t->pool && i < t->pool->n; i++) {
        const struct txn *m = t->pool->m[i];
        if (m->pid < 0 && m->state != TS_FENCED)
            return 0;
    }
    return 1;
}

/* One step of the state machine; called from the loop after any event. */
static void drive(struct txn *t)
{
    uint64_t now = t->o.now_ms();
    expire(t, now);
    bound_expire(t, now);
    struct tx *x = TAILQ_FIRST(&t->txs);
    if (t->state == TS_FENCED || t->op)
        return;
    if (now < t->not_before_ms) {
        /* A backoff: the wake may fire a little early by this clock. */
        wake_in(t, t->not_before_ms - now);
        return;
    }
    /* A rebalance whose queued txs are all done aborts the Kafka
     * transaction they were written in. */
    while (t->naborts && (!x || x->id > t->aborts[0].upto)) {
        rebalance_abort(t, t->aborts[0].doom);
        memmove(t->aborts, t->aborts + 1, --t->naborts * sizeof(t->aborts[0]));
    }
    /* An abandoned transaction is aborted at once, not when the next one
     * starts: it holds back read_committed consumers until then. So is a
     * pool's first initialization (pool_ready). */
    int abort_now = t->need_init && (t->ktx_parts || first_init_due(t)) && (!x || x->st == TX_OPEN);
    if (!abort_now && (!x || !may_start(t, x, now))) {
        if (x && x->nb) {
            wake_in(t, close_at(t, x) - now);
            if (t->coord >= 0 && !t->need_init && has_new_partitions(t, x))
                start_early_add(t, x);
        }
        return;
    }
    if (x && !x->nb && !x->commit && x->st == TX_CLOSED) {
        tx_retire(t, x); /* every slot was answered at submit */
        return;
    }
    if (t->coord < 0) {
        start_find(t);
        return;
    }
    /* A new epoch only between transactions: InitProducerId aborts the
     * one under way. */
    if (t->need_init && (!x || x->st == TX_OPEN || x->st == TX_CLOSED)) {
        start_init(t);
        return;
    }
    if (!x || !pool_ready(t))
        return; /* kicked by the last engine's init_done */
    if (x->commit) {
        drive_commit(t, x);
        return;
    }
    switch (x->st) {
    case TX_OPEN:
        close_open(t);
        start_add(t, x);
        break;
    case TX_CLOSED:
    case TX_ADD:
        start_add(t, x);
        break;
    case TX_PRODUCE:
        if (x->nwaiting || x->failed)
            break;
        if (t->group) {
            step_written(t, x);
            break;
        }
        /* fall through */
    case TX_END:
        /* Once an EndTxn(COMMIT) may have reached the coordinator, it is
         * seen through; until then a client that has gone aborts it. */
        if (!x->end_sent && !clients_waiting(t, x))
            tx_fail(t, x, KERR_REQUEST_TIMED_OUT, 1, "a client disconnected before the commit");
        else
            start_end(t, x);
        break;
    default: /* a commit item's (drive_commit) */
        break;
    }
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct txn *t = arg;
    (void)fd;
    (void)what;
    deliver_done(t);
    drive(t);
    deliver_done(t);
    if (t->busy && !txn_busy(t)) {
        t->busy = 0;
        t->o.resume(t->px);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct txn *t = arg;
    if (!TAILQ_EMPTY(&t->txs) || t->ktx_parts || first_init_due(t))
        kick_cb(fd, what, arg);
}

/* ---------------------------------------------------------------- submit */

/* seqtab_sweep's test: a partition with nothing queued. */
static int part_unused(struct seqpart *sp, void *arg)
{
    (void)arg;
    return ((struct tpart *)sp)->queued == 0;
}

/* The partition's entry; when the table is full, the unused ones are
 * forgotten and the epoch bumped (their sequences cannot restart at 0
 * under the same epoch). NULL when every partition is in use. */
static struct tpart *part_get(struct txn *t, kstr_t topic, int32_t partition)
{
    struct tpart *p =
        (struct tpart *)seqtab_get(&t->parts, topic.ptr, (size_t)topic.len, partition);
    if (!p && t->parts.n >= t->parts.max && seqtab_sweep(&t->parts, part_unused, NULL)) {
        log_warn("txn %s: %zu partitions have sequences (the most it keeps); forgot the unused "
                 "ones and bumps its epoch",
                 t->id, t->parts.max);
        t->need_init = 1;
        p = (struct tpart *)seqtab_get(&t->parts, topic.ptr, (size_t)topic.len, partition);
    }
    return p;
}

/* The open transaction that can take every batch of r (a new one when the
 * tail is closed, full, or would pass a partition's limit with r's batches
 * of it: only a request that names a partition more than TXN_PART_BATCHES
 * times itself gets INVALID_REQUEST). */
static struct tx *open_for(struct txn *t, const struct treq *r)
{
    struct tx *x = TAILQ_LAST(&t->txs, tx_q);
    int full = !x || x->st != TX_OPEN || x->bytes >= cfg(t)->transactions.max_bytes;
    for (int pass = 0; !full && pass < 2; pass++) {
        for (int32_t i = 0; !full && i < r->req.ntopics; i++) {
            const kproduce_topic_t *q = &r->req.topics[i];
            for (int32_t j = 0; !full && j < q->npartitions; j++) {
                struct tpart *p = (struct tpart *)seqtab_find(
                    &t->parts, q->name.ptr, (size_t)q->name.len, q->partitions[j].index);
                if (!p || p->tx_id != x->id)
                    continue;
                if (pass == 0)
                    p->want = 0;
                else
                    full = p->count + ++p->want > TXN_PART_BATCHES;
            }
        }
    }
    if (full) {
        close_open(t);
        x = tx_new(t);
    }
    return x;
}

static int add_batch(struct tx *x, struct tbatch *b)
{
    if (x->nb == x->capb) {
        size_t cap = x->capb ? x->capb * 2 : 16;
        struct tbatch **nb = realloc(x->b, cap * sizeof(*nb));
        if (!nb)
            return -1;
        x->b = nb;
        x->capb = cap;
    }
    x->b[x->nb++] = b;
    return 0;
}

/* Puts one partition of r into x, or sets its slot's error. */
static void submit_partition(struct txn *t, struct tx *x, struct treq *r, kstr_t topic,
                             const kproduce_partition_t *pp, kproduce_presp_t *slot,
                             int32_t node_id)
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
    struct tpart *p = part_get(t, topic, pp->index);
    struct tbatch *b = p ? calloc(1, sizeof(*b)) : NULL;
    if (p && p->tx_id == x->id && p->count >= TXN_PART_BATCHES) {
        slot->error_code = KERR_INVALID_REQUEST; /* one request naming it that often */
    } else if (!b || add_batch(x, b)) {
        slot->error_code = KERR_REQUEST_TIMED_OUT;
    } else {
        /* Not copied: the batch stays in r's bytes (counted with r). */
        uint8_t *data = r->buf->data + (pp->records.ptr + hdr.offset - r->buf->data);
        if (p->tx_id != x->id) {
            p->tx_id = x->id;
            p->count = 0;
            p->node_id = node_id;
        }
        reqbuf_hold(r->buf);
        *b = (struct tbatch){p, slot, data, hdr.size, hdr.record_count, p->count++, r->buf};
        p->queued++;
        x->bytes += hdr.size;
        return;
    }
    free(b);
}

/*
 * When r must have its answer: half its timeout from now (so it is
 * answered before the client gives up on it and sends it again), at least
 * 1 s, at most half the transaction timeout. Its transaction fails then
 * if it has not committed, whether it started or not.
 */
static uint64_t request_deadline(const struct txn *t, const struct treq *r)
{
    uint64_t cap = cfg(t)->transactions.timeout_ms / 2;
    uint64_t d = r->req.timeout_ms > 0 ? (uint64_t)r->req.timeout_ms / 2 : cap;
    if (d < TXN_MIN_DEADLINE_MS)
        d = TXN_MIN_DEADLINE_MS;
    return t->o.now_ms() + (d < cap ? d : cap);
}

static struct treq *treq_new(struct txn *t, const kreq_hdr_t *h, const uint8_t *frame, size_t len)
{
    struct treq *r = calloc(1, sizeof(*r));
    struct reqbuf *buf = r ? reqbuf_new(frame, len, NULL) : NULL;
    if (!buf) {
        free(r);
        return NULL;
    }
    r->buf = buf;
    r->ver = h->api_version;
    r->corr = h->correlation_id;
    t->nreqs++;
    t->bytes += len;
    if (kproduce_req_parse(r->ver, buf->data + h->body_off, len - h->body_off, &r->req, NULL) ||
        kproduce_resp_shape(&r->req, &r->resp)) {
        treq_free(t, r);
        return NULL;
    }
    return r;
}

/* txn_submit on one engine of the pool. */
static int submit_one(struct txn *t, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
                      size_t len, int acks_zero, uint64_t client_id, uint64_t token)
{
    if (h->api_version < KPRODUCE_MIN_VERSION)
        return KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    if (h->api_version > KPRODUCE_MAX_VERSION || h->body_off > len)
        return KERR_INVALID_REQUEST;
    if (t->state == TS_FENCED)
        return KERR_PRODUCER_FENCED;
    if (t->closing || t->nreqs >= t->o.max_requests || t->bytes + len > t->o.max_bytes)
        return KERR_REQUEST_TIMED_OUT;
    struct treq *r = treq_new(t, h, frame, len);
    if (!r)
        return KERR_INVALID_REQUEST;
    r->client_id = client_id;
    r->token = token;
    r->acks_zero = acks_zero;
    r->arrived_ms = t->o.now_ms();
    struct tx *x = open_for(t, r);
    if (!x) {
        treq_free(t, r);
        return KERR_REQUEST_TIMED_OUT;
    }
    size_t before = x->nb;
    for (int32_t i = 0; i < r->req.ntopics; i++) {
        const kproduce_topic_t *q = &r->req.topics[i];
        for (int32_t j = 0; j < q->npartitions; j++)
            submit_partition(t, x, r, q->name, &q->partitions[j], &r->resp.topics[i].partitions[j],
                             b ? b->node_id : -1);
    }
    if (x->nb == before) {
        /* Nothing to write (every slot has its error): answer at once. */
        TAILQ_INSERT_TAIL(&t->done, r, link);
    } else {
        TAILQ_INSERT_TAIL(&x->reqs, r, link);
        x->last_ms = r->arrived_ms;
        if (r->req.timeout_ms > 0 && r->req.timeout_ms < x->min_client_timeout_ms)
            x->min_client_timeout_ms = r->req.timeout_ms;
        uint64_t dl = request_deadline(t, r);
        if (dl < x->deadline_ms)
            x->deadline_ms = dl;
        if (x->bytes >= cfg(t)->transactions.max_bytes)
            close_open(t);
    }
    kick(t);
    return 0;
}

/* The engine of t's pool that takes the next request: a fenced one (it
 * refuses every write: the instance stops, as with one id), else the one
 * whose open transaction can grow, else the one with the fewest
 * transactions queued, in turn among equals. */
static struct txn *pick(struct txn *t)
{
    struct tpool *p = t->pool;
    if (!p)
        return t;
    for (size_t i = 0; i < p->n; i++)
        if (p->m[i]->state == TS_FENCED)
            return p->m[i];
    for (size_t i = 0; i < p->n; i++) {
        const struct tx *x = TAILQ_LAST(&p->m[i]->txs, tx_q);
        if (x && x->st == TX_OPEN && x->bytes < cfg(t)->transactions.max_bytes)
            return p->m[i];
    }
    size_t best = p->rr % p->n, least = SIZE_MAX;
    for (size_t k = 0; k < p->n && least; k++) {
        size_t i = (p->rr + k) % p->n, queued = 0;
        const struct tx *x;
        TAILQ_FOREACH(x, &p->m[i]->txs, link)
        queued++;
        if (queued < least) {
            least = queued;
            best = i;
        }
    }
    p->rr = best + 1;
    return p->m[best];
}

int txn_submit(struct txn *t, struct broker *b, const kreq_hdr_t *h, const uint8_t *frame,
               size_t len, int acks_zero, uint64_t client_id, uint64_t token)
{
    if (t->pool && !t->pool->started) {
        t->pool->started = 1;
        for (size_t i = 0; i < t->pool->n; i++)
            kick(t->pool->m[i]);
    }
    return submit_one(pick(t), b, h, frame, len, acks_zero, client_id, token);
}

static int engine_busy(struct txn *t)
{
    int busy =
        t->nclosed > (size_t)cfg(t)->transactions.max_inflight || t->bytes > t->o.max_bytes / 2;
    if (busy)
        t->busy = 1;
    return busy;
}

int txn_busy(const struct txn *t)
{
    struct txn *e = (struct txn *)t;
    if (!t->pool)
        return engine_busy(e);
    int busy = 0;
    for (size_t i = 0; i < t->pool->n; i++)
        busy |= engine_busy(t->pool->m[i]);
    return busy;
}

const char *txn_id(const struct txn *t)
{
    return t->id;
}

const char *txn_group(const struct txn *t)
{
    return t->group;
}

int txn_commit_submit(struct txn *t, const kreq_hdr_t *h, const uint8_t *frame, size_t len,
                      uint64_t client_id, uint64_t token)
{
    if (!t->group || h->body_off > len)
        return TXN_COMMIT_PASS;
    if (TAILQ_EMPTY(&t->txs) && !t->ktx_parts && !t->doomed) {
        t->refused = 0;
        return TXN_COMMIT_PASS; /* no output to bind: the plain commit is exact */
    }
    if (t->closing || t->nreqs >= t->o.max_requests || t->bytes + len > t->o.max_bytes)
        return TXN_COMMIT_BUSY;
    struct tcommit *tc = calloc(1, sizeof(*tc));
    struct tx *x = calloc(1, sizeof(*x));
    uint8_t *copy = malloc(len ? len : 1);
    if (!tc || !x || !copy) {
        free(tc);
        free(x);
        free(copy);
        return TXN_COMMIT_BUSY;
    }
    memcpy(copy, frame, len);
    *tc = (struct tcommit){.client_id = client_id,
                           .token = token,
                           .ver = h->api_version,
                           .corr = h->correlation_id,
                           .frame = copy,
                           .len = len};
    t->nreqs++;
    t->bytes += len;
    if (kcommit_req_parse(KAPI_OffsetCommit, h->api_version, copy + h->body_off, len - h->body_off,
                          &tc->c, NULL)) {
        tcommit_free(t, tc);
        free(x);
        return TXN_COMMIT_PASS; /* validated already: cannot happen */
    }
    close_open(t);
    x->id = ++t->next_tx_id;
    x->st = TX_CLOSED;
    x->created_ms = t->o.now_ms();
    x->deadline_ms = x->created_ms + (cfg(t)->transactions.timeout_ms / 2 < TXN_COMMIT_DEADLINE_MS
                                          ? cfg(t)->transactions.timeout_ms / 2
                                          : TXN_COMMIT_DEADLINE_MS);
    x->min_client_timeout_ms = INT32_MAX;
    x->commit = tc;
    TAILQ_INIT(&x->reqs);
    TAILQ_INSERT_TAIL(&t->txs, x, link);
    t->nclosed++;
    kick(t);
    return TXN_COMMIT_TAKEN;
}

void txn_group_rebalance(struct txn *t, const char *why)
{
    if (!t->group || t->state == TS_FENCED || (TAILQ_EMPTY(&t->txs) && !t->ktx_parts))
        return;
    /* Output sent before this point is of input the member reads again
     * (eager rebalances), or of input it may keep (cooperative, static):
     * every tx queued now is written, then the Kafka transaction aborted.
     * After a refusal the member rejoins with its partitions lost and
     * reads them again: no further refusal is needed, and one would
     * refuse an auto-committing consumer for ever (it produces between
     * its refused commit and its rejoin). */
    close_open(t);
    int doom = !t->refused;
    struct tx *last = TAILQ_LAST(&t->txs, tx_q);
    g_metrics.bind_rebalance_aborts++;
    log_info("txn %s: group \"%s\" rebalances (%s): its output so far is aborted%s", t->id,
             t->group, why, doom ? " and its next commit refused" : "");
    if (!last) {
        rebalance_abort(t, doom);
    } else if (t->naborts == TXN_MAX_ABORTS) {
        /* Merged with the newest: its abort waits for this one's txs, so
         * the commits queued between the two are refused. */
        uint64_t from = t->aborts[t->naborts - 1].upto;
        for (struct tx *x = TAILQ_FIRST(&t->txs); x; x = TAILQ_NEXT(x, link))
            if (x->commit && x->id > from)
                x->stale = 1;
        t->aborts[t->naborts - 1].upto = last->id;
        t->aborts[t->naborts - 1].doom |= doom;
    } else {
        t->aborts[t->naborts].upto = last->id;
        t->aborts[t->naborts++].doom = doom;
    }
    kick(t);
}

/* ---------------------------------------------------------------- life */

/* transactions.id, or "<service>-<host name>"; a bound engine's is that
 * and "-<group>", the k-th engine of the pool's (k > 0) that and ".k".
 * NULL on OOM. */
static char *make_id(const config_t *c, const char *group, int k)
{
    char host[256] = "localhost";
    if (!c->transactions.id && gethostname(host, sizeof(host) - 1))
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    size_t n = strlen(c->service) + strlen(host) +
               (c->transactions.id ? strlen(c->transactions.id) : 0) + (group ? strlen(group) : 0) +
               16;
    char *id = malloc(n);
    if (!id)
        return NULL;
    char pool[16] = "";
    if (k > 0)
        snprintf(pool, sizeof(pool), ".%d", k);
    if (c->transactions.id)
        snprintf(id, n, "%s%s%s%s", c->transactions.id, group ? "-" : "", group ? group : "", pool);
    else
        snprintf(id, n, "%s-%s%s%s%s", c->service, host, group ? "-" : "", group ? group : "",
                 pool);
    return id;
}

struct txn *txn_new(struct proxy *px)
{
    return txn_new_opts(px, NULL, NULL);
}

/* One engine: the k-th of a pool of n (k 0, n 1 alone), whose default
 * bounds are the n-th part of the engine's. */
static struct txn *engine_new(struct proxy *px, const char *group, const struct txn_opts *opts,
                              int k, int n)
{
    struct txn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->px = px;
    if (opts)
        t->o = *opts;
    t->o.max_requests = t->o.max_requests ? t->o.max_requests : TXN_MAX_REQUESTS / (size_t)n;
    t->o.max_bytes = t->o.max_bytes ? t->o.max_bytes : TXN_MAX_BYTES / (size_t)n;
    t->o.max_partitions = t->o.max_partitions ? t->o.max_partitions : TXN_MAX_PARTITIONS;
    t->o.now_ms = t->o.now_ms ? t->o.now_ms : clock_ms;
    t->o.slot_done = t->o.slot_done ? t->o.slot_done : px->done.slot_done;
    t->o.resume = t->o.resume ? t->o.resume : px->done.resume;
    t->o.slot_waiting = t->o.slot_waiting ? t->o.slot_waiting : px->done.slot_waiting;
    t->coord = -1;
    t->need_init = 1;
    t->pid = -1;
    t->epoch = -1;
    t->backoff_ms = TXN_BACKOFF_MS;
    TAILQ_INIT(&t->txs);
    TAILQ_INIT(&t->dead);
    TAILQ_INIT(&t->done);
    TAILQ_INIT(&t->cdone);
    t->ktx = 1;
    t->gcoord = -1;
    t->id = make_id(px->cfg, group, k);
    if (group && !(t->group = strdup(group))) {
        txn_free(t);
        return NULL;
    }
    t->kgroup = (kstr_t){t->group, group ? (int32_t)strlen(group) : -1};
    t->kick = event_new(px->base, -1, 0, kick_cb, t);
    t->wake = event_new(px->base, -1, 0, kick_cb, t);
    t->tick = event_new(px->base, -1, EV_PERSIST, tick_cb, t);
    if (!t->id || !t->kick || !t->wake || !t->tick ||
        seqtab_init(&t->parts, t->o.max_partitions, sizeof(struct tpart))) {
        txn_free(t);
        return NULL;
    }
    t->kid = (kstr_t){t->id, (int32_t)strlen(t->id)};
    struct timeval tv = {0, TXN_TICK_MS * 1000};
    event_add(t->tick, &tv);
    if (group)
        log_info("txn: transactional id \"%s\" for the output of group \"%s\" (bind_group)", t->id,
                 group);
    else
        log_info("txn: transactional id \"%s\" (transactions.id%s)", t->id,
                 n > 1 ? ", transactions.pool" : "");
    return t;
}

struct txn *txn_new_opts(struct proxy *px, const char *group, const struct txn_opts *opts)
{
    int n = group || px->cfg->transactions.pool < 1 ? 1 : px->cfg->transactions.pool;
    struct txn *t = engine_new(px, group, opts, 0, n);
    if (!t || n == 1)
        return t;
    struct tpool *p = calloc(1, sizeof(*p));
    struct txn **m = calloc((size_t)n, sizeof(*m));
    if (!p || !m) {
        free(p);
        free(m);
        txn_free(t);
        return NULL;
    }
    *p = (struct tpool){m, 1, 0, 0, 0};
    m[0] = t;
    t->pool = p;
    while (p->n < (size_t)n) {
        struct txn *e = engine_new(px, NULL, opts, (int)p->n, n);
        if (!e) {
            txn_free(t);
            return NULL;
        }
        e->pool = p;
        m[p->n++] = e;
    }
    return t;
}

static void engine_free(struct txn *t)
{
    t->closing = 1;
    /* Lanes fail their pending requests; the callbacks free their contexts
     * (op_take, flight_done) and touch nothing else while closing. */
    for (size_t i = 0; i < t->nlanes; i++)
        lane_free(t->lanes[i]);
    free(t->lanes);
    struct tx *x;
    while ((x = TAILQ_FIRST(&t->txs))) {
        TAILQ_REMOVE(&t->txs, x, link);
        tx_free(t, x);
    }
    while ((x = TAILQ_FIRST(&t->dead))) {
        TAILQ_REMOVE(&t->dead, x, link);
        tx_free(t, x);
    }
    struct treq *r;
    while ((r = TAILQ_FIRST(&t->done))) {
        TAILQ_REMOVE(&t->done, r, link);
        treq_free(t, r);
    }
    struct tcommit *tc;
    while ((tc = TAILQ_FIRST(&t->cdone))) {
        TAILQ_REMOVE(&t->cdone, tc, link);
        tcommit_free(t, tc);
    }
    seqtab_free(&t->parts);
    if (t->kick)
        event_free(t->kick);
    if (t->wake)
        event_free(t->wake);
    if (t->tick)
        event_free(t->tick);
    free(t->id);
    free(t->group);
    free(t);
}

void txn_free(struct txn *t)
{
    if (!t)
        return;
    struct tpool *p = t->pool;
    if (!p) {
        engine_free(t);
        return;
    }
    /* The first engine owns the pool: every one is closing before any is
     * freed, so no callback kicks a freed peer. */
    for (size_t i = 0; i < p->n; i++)
        p->m[i]->closing = 1;
    for (size_t i = p->n; i-- > 0;)
        engine_free(p->m[i]);
    free(p->m);
    free(p);
}
