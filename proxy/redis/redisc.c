/*
 * redisc.c - asynchronous Redis client over hiredis 0.14. See redisc.h.
 *
 * States: DOWN (waiting for the reconnect timer) -> CONNECTING (hiredis
 * connect in progress, guarded by a timer: hiredis 0.14 has no async
 * connect timeout) -> SELECTING (SELECT db sent) -> UP. Any failure goes
 * back to DOWN and arms the reconnect timer: 100 ms doubling to 5 s,
 * reset once a connection reaches UP.
 *
 * A batch sent is an "rbatch" referenced by hiredis once per command (its
 * privdata). hiredis calls every command's callback exactly once, with a
 * NULL reply when the connection goes away, so an rbatch is freed when
 * its last callback has run, never before. The caller's callback runs at
 * most once ("finished"): when the last reply arrives, on the first NULL
 * reply, or on the timeout. Cancelling only clears the callback.
 *
 * hiredis frees a reply as soon as its callback returns, so replies are
 * copied (they are small here: nil, "OK", "d", "p:..."). A raw command
 * (redisc_raw_send, for the cluster mode's CLUSTER SLOTS) is an rbatch of
 * one whose reply is handed over uncopied instead.
 *
 * The other two url forms: with redis+sentinel://, RESOLVING (asking the
 * Sentinels, redisc_sentinel.c) comes before every CONNECTING, and ROLE
 * must say master before SELECT; a +switch-master for another address, or
 * a READONLY reply (the master was demoted under us), drops the
 * connection so the next one asks again. With redis+cluster://, this
 * struct only holds the cluster client (redisc_cluster.c), which runs one
 * single-node redisc per master (redisc_new_node) and every public call is
 * handed to it.
 */
#include "redisc.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "redisc_cluster.h"
#include "redisc_sentinel.h"
#include "redisurl.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define RC_BACKOFF_MIN_MS 100u
#define RC_BACKOFF_MAX_MS 5000u

enum rc_state { RC_DOWN, RC_RESOLVING, RC_CONNECTING, RC_SELECTING, RC_UP };

/* A batch under construction: RESP bytes and where each command ends. */
struct redisc_batch {
    char *buf;
    size_t len, cap;
    size_t *ends;
    size_t n, capn;
};

/* A batch sent: lives until hiredis has called back once per command. */
struct rbatch {
    struct redisc *rc;
    uint64_t id;
    redisc_batch_cb *cb; /* NULL once finished or cancelled */
    void *arg;
    size_t n, got;
    redisc_reply_t *replies;
    int finished;
    int err_hint;       /* REDISC_ETIMEOUT when the timer gave up on it */
    redisc_raw_cb *raw; /* a raw command: its reply goes here, uncopied */
    uint64_t sent_us;
    struct event *timer;
    LIST_ENTRY(rbatch) link;
};
LIST_HEAD(rbatch_list, rbatch);

struct redisc {
    struct event_base *base;
    char *host;
    int port;
    int db;
    uint64_t timeout_ms;
    redisc_state_cb *on_state;
    void *arg;
    redisAsyncContext *ac; /* NULL while DOWN */
    enum rc_state state;
    uint64_t backoff_ms;
    uint64_t next_id;
    struct rbatch_list batches;
    struct event *reconnect_timer, *connect_timer;
    int freeing;
    int is_node;            /* a cluster node: the cluster owns redis_connected */
    struct rcc *cluster;    /* redis+cluster://: everything is handed to it */
    struct rsent *sentinel; /* redis+sentinel://: where the master is */
    int readonly_seen;      /* a READONLY reply: drop after this callback */
};

/* ---------------------------------------------------------------- url */

/* A redis:// url into rc->host/port/db; -1 if malformed. */
static int parse_single(struct redisc *rc, const struct redisurl *u)
{
    rc->host = strdup(u->hosts[0].host);
    rc->port = u->hosts[0].port;
    rc->db = u->db;
    return rc->host ? 0 : -1;
}

/* ---------------------------------------------------------------- state */

static void start_connect(struct redisc *rc);

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_connect(arg);
}

/* DOWN, and the reconnect timer armed with the next backoff step. */
static void schedule_reconnect(struct redisc *rc)
{
    rc->state = RC_DOWN;
    if (rc->freeing)
        return;
    struct timeval tv = clock_tv(rc->backoff_ms);
    evtimer_add(rc->reconnect_timer, &tv);
    rc->backoff_ms *= 2;
    if (rc->backoff_ms > RC_BACKOFF_MAX_MS)
        rc->backoff_ms = RC_BACKOFF_MAX_MS;
}

/* Leaves UP (telling the owner once) and forgets the context. */
static void set_down(struct redisc *rc)
{
    int was_up = rc->state == RC_UP;
    rc->state = RC_DOWN;
    if (!rc->is_node)
        g_metrics.redis_connected = 0;
    if (was_up && !rc->freeing && rc->on_state)
        rc->on_state(rc->arg, 0);
}

/*
 * Closes the current connection on eosproxy's initiative (timeout, failed
 * SELECT) and schedules a new one. Inside a hiredis callback the free is
 * deferred by hiredis itself until the callback returns.
 */
static void drop_connection(struct redisc *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;
    if (!ac)
        return;
    log_warn("redis %s:%d: closing the connection: %s", rc->host, rc->port, why);
    rc->ac = NULL;
    event_del(rc->connect_timer);
    set_down(rc);
    schedule_reconnect(rc);
    redisAsyncFree(ac); /* NULL replies fail the batches still in flight */
}

static void mark_up(struct redisc *rc)
{
    rc->state = RC_UP;
    rc->backoff_ms = RC_BACKOFF_MIN_MS;
    if (!rc->is_node)
        g_metrics.redis_connected = 1;
    log_info("redis %s:%d: connected (db %d)", rc->host, rc->port, rc->db);
    if (rc->on_state)
        rc->on_state(rc->arg, 1);
}

static void select_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redisc *rc = privdata;
    redisReply *reply = r;
    if (!reply || rc->ac != ac || rc->state != RC_SELECTING)
        return; /* the connection is going away; on_disconnect handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        g_metrics.redis_errors[REDIS_ERR_REPLY]++;
        log_error("redis %s:%d: SELECT %d failed: %s", rc->host, rc->port, rc->db, reply->str);
        drop_connection(rc, "SELECT failed");
        return;
    }
    mark_up(rc);
}

/* Warns unless Redis will refuse writes rather than evict dedup marks. */
static void config_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redisc *rc = privdata;
    redisReply *reply = r;
    (void)ac;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_info("redis %s:%d: cannot read maxmemory-policy (%s); make sure it is noeviction",
                 rc->host, rc->port, reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        log_info("redis %s:%d: unexpected CONFIG GET answer; make sure maxmemory-policy is "
                 "noeviction",
                 rc->host, rc->port);
        return;
    }
    if (strcmp(reply->element[1]->str, "noeviction") != 0)
        log_warn("redis %s:%d: maxmemory-policy is %s, not noeviction: Redis may evict dedup "
                 "marks and let duplicates through; use a dedicated Redis with noeviction",
                 rc->host, rc->port, reply->element[1]->str);
}

/* After connect (and ROLE): CONFIG GET, then SELECT unless db 0, then UP. */
static void handshake(struct redisc *rc, redisAsyncContext *ac)
{
    redisAsyncCommand(ac, config_cb, rc, "CONFIG GET maxmemory-policy");
    if (rc->db == 0) {
        mark_up(rc);
        return;
    }
    if (redisAsyncCommand(ac, select_cb, rc, "SELECT %d", rc->db) != REDIS_OK)
        drop_connection(rc, "cannot queue SELECT");
}

/* Sentinel mode: the node the Sentinels named must say it is the master
 * (during a failover they may name one that is not promoted yet). */
static void role_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redisc *rc = privdata;
    redisReply *reply = r;
    if (!reply || rc->ac != ac || rc->state != RC_SELECTING)
        return;
    const redisReply *role =
        reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 ? reply->element[0] : NULL;
    if (!role || role->type != REDIS_REPLY_STRING || strcmp(role->str, "master") != 0) {
        log_warn("redis %s:%d: Sentinel named it for %s but ROLE says %s", rc->host, rc->port,
                 rsent_master(rc->sentinel),
                 role && role->type == REDIS_REPLY_STRING ? role->str : "something else");
        drop_connection(rc, "not the master");
        return;
    }
    handshake(rc, ac);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redisc *rc = ac->data;
    if (!rc || rc->ac != ac)
        return;
    event_del(rc->connect_timer);
    if (status != REDIS_OK) {
        g_metrics.redis_errors[REDIS_ERR_CONNECT]++;
        log_warn("redis %s:%d: connect failed: %s; retrying in %llu ms", rc->host, rc->port,
                 ac->errstr, (unsigned long long)rc->backoff_ms);
        rc->ac = NULL; /* hiredis frees it after this callback */
        schedule_reconnect(rc);
        return;
    }
    rc->state = RC_SELECTING;
    if (rc->sentinel) {
        if (redisAsyncCommand(ac, role_cb, rc, "ROLE") != REDIS_OK)
            drop_connection(rc, "cannot queue ROLE");
        return;
    }
    handshake(rc, ac);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redisc *rc = ac->data;
    if (!rc || rc->ac != ac)
        return; /* a connection eosproxy dropped itself */
    g_metrics.redis_errors[REDIS_ERR_CLOSED]++;
    log_warn("redis %s:%d: connection lost%s%s", rc->host, rc->port, status == REDIS_OK ? "" : ": ",
             status == REDIS_OK ? "" : ac->errstr);
    rc->ac = NULL; /* hiredis frees it after this callback */
    set_down(rc);
    schedule_reconnect(rc);
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redisc *rc = arg;
    (void)fd;
    (void)what;
    g_metrics.redis_errors[REDIS_ERR_CONNECT]++;
    drop_connection(rc, "connect timed out");
}

static void connect_now(struct redisc *rc);

/* Sentinel mode: where the master is, then connect there. */
static void resolved_cb(void *arg, const char *host, int port)
{
    struct redisc *rc = arg;
    if (rc->state != RC_RESOLVING || rc->freeing)
        return;
    char *h = host ? strdup(host) : NULL;
    if (!h) {
        g_metrics.redis_errors[REDIS_ERR_CONNECT]++;
        schedule_reconnect(rc);
        return;
    }
    if (strcmp(h, rc->host) != 0 || port != rc->port)
        log_info("redis sentinel: master %s is at %s:%d", rsent_master(rc->sentinel), h, port);
    free(rc->host);
    rc->host = h;
    rc->port = port;
    connect_now(rc);
}

/* Connects (after asking the Sentinels, in Sentinel mode). */
static void start_connect(struct redisc *rc)
{
    if (rc->freeing || rc->ac || rc->state == RC_RESOLVING)
        return;
    if (rc->sentinel) {
        rc->state = RC_RESOLVING;
        rsent_resolve(rc->sentinel, resolved_cb, rc);
        return;
    }
    connect_now(rc);
}

static void connect_now(struct redisc *rc)
{
    if (rc->freeing || rc->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
    if (!ac || ac->err) {
        g_metrics.redis_errors[REDIS_ERR_CONNECT]++;
        log_warn("redis %s:%d: connect failed: %s", rc->host, rc->port,
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(rc);
        return;
    }
    ac->data = rc;
    if (redisLibeventAttach(ac, rc->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    struct timeval tv = clock_tv(rc->timeout_ms);
    evtimer_add(rc->connect_timer, &tv);
}

/* ---------------------------------------------------------------- batches */

redisc_batch_t *redisc_batch_new(void)
{
    return calloc(1, sizeof(redisc_batch_t));
}

void redisc_batch_free(redisc_batch_t *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b->ends);
    free(b);
}

size_t redisc_batch_count(const redisc_batch_t *b)
{
    return b ? b->n : 0;
}

static int grow(redisc_batch_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->buf, cap);
    if (!p)
        return -1;
    b->buf = p;
    b->cap = cap;
    return 0;
}

/* Room for one more command end; 0, or -1 on OOM. */
static int grow_ends(redisc_batch_t *b)
{
    if (b->n < b->capn)
        return 0;
    size_t capn = b->capn ? b->capn * 2 : 64;
    size_t *e = realloc(b->ends, capn * sizeof(*e));
    if (!e)
        return -1;
    b->ends = e;
    b->capn = capn;
    return 0;
}

/* Appends "<c><n>\r\n" (RESP array or bulk length); no printf: it runs
 * eight times per command. */
static void put_len(redisc_batch_t *b, char c, size_t n)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    char *p = b->buf + b->len;
    *p++ = c;
    memcpy(p, tmp + i, sizeof(tmp) - i);
    p += sizeof(tmp) - i;
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t)(p - b->buf);
}

int redisc_batch_add(redisc_batch_t *b, int argc, const char *const *argv, const size_t *lens)
{
    size_t need = 32;
    for (int i = 0; i < argc; i++)
        need += lens[i] + 32 + 2;
    if (argc <= 0 || grow(b, need))
        return -1;
    if (grow_ends(b))
        return -1;
    put_len(b, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        put_len(b, '$', lens[i]);
        memcpy(b->buf + b->len, argv[i], lens[i]);
        b->len += lens[i];
        memcpy(b->buf + b->len, "\r\n", 2);
        b->len += 2;
    }
    b->ends[b->n++] = b->len;
    return 0;
}

const char *redisc_batch_command(const redisc_batch_t *b, size_t i, size_t *len)
{
    if (!b || i >= b->n)
        return NULL;
    size_t start = i ? b->ends[i - 1] : 0;
    *len = b->ends[i] - start;
    return b->buf + start;
}

int redisc_batch_add_resp(redisc_batch_t *b, const char *resp, size_t len)
{
    if (len == 0 || grow(b, len))
        return -1;
    if (grow_ends(b))
        return -1;
    memcpy(b->buf + b->len, resp, len);
    b->len += len;
    b->ends[b->n++] = b->len;
    return 0;
}

static void rbatch_free(struct rbatch *rb)
{
    LIST_REMOVE(rb, link);
    for (size_t i = 0; i < rb->n; i++)
        free(rb->replies[i].str);
    free(rb->replies);
    if (rb->timer)
        event_free(rb->timer);
    free(rb);
}

/* Runs the caller's callback once (unless cancelled) with the outcome. */
static void finish(struct rbatch *rb, int err)
{
    if (rb->finished)
        return;
    rb->finished = 1;
    if (rb->timer)
        event_del(rb->timer);
    redisc_raw_cb *raw = rb->raw;
    rb->raw = NULL;
    if (raw) {
        if (!rb->rc->freeing)
            raw(rb->arg, NULL);
        return;
    }
    if (err == REDISC_OK) {
        g_metrics.redis_round_trips++;
        g_metrics.redis_commands += rb->n;
        metrics_observe_redis_latency(clock_us() - rb->sent_us);
    }
    redisc_batch_cb *cb = rb->cb;
    rb->cb = NULL;
    if (cb && !rb->rc->freeing)
        cb(rb->arg, err, err ? NULL : rb->replies, err ? 0 : rb->n);
}

static void copy_reply(redisc_reply_t *dst, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        dst->type = r->type == REDIS_REPLY_STRING   ? REDISC_REPLY_STRING
                    : r->type == REDIS_REPLY_STATUS ? REDISC_REPLY_STATUS
                                                    : REDISC_REPLY_ERROR;
        dst->str = malloc((size_t)r->len + 1);
        if (dst->str) {
            memcpy(dst->str, r->str, (size_t)r->len);
            dst->str[r->len] = 0;
            dst->len = (size_t)r->len;
        }
        if (r->type == REDIS_REPLY_ERROR)
            g_metrics.redis_errors[REDIS_ERR_REPLY]++;
        break;
    case REDIS_REPLY_INTEGER:
        dst->type = REDISC_REPLY_INTEGER;
        dst->integer = r->integer;
        break;
    case REDIS_REPLY_ARRAY:
        dst->type = REDISC_REPLY_ARRAY;
        dst->integer = (long long)r->elements;
        break;
    default:
        dst->type = REDISC_REPLY_NIL;
    }
}

/* A raw command's reply, handed over as hiredis parsed it. */
static void raw_reply(struct rbatch *rb, const redisReply *reply)
{
    if (rb->finished)
        return;
    rb->finished = 1;
    if (rb->timer)
        event_del(rb->timer);
    redisc_raw_cb *cb = rb->raw;
    rb->raw = NULL;
    if (cb && !rb->rc->freeing)
        cb(rb->arg, reply);
}

/* hiredis callback for each command of an rbatch. */
static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rbatch *rb = privdata;
    redisReply *reply = r;
    (void)ac;
    if (!reply) {
        /* The connection is going away: later commands will not answer. */
        if (rb->rc->state == RC_UP && rb->rc->ac == ac)
            set_down(rb->rc);
        finish(rb, rb->err_hint ? rb->err_hint : REDISC_EDOWN);
    } else if (rb->raw) {
        raw_reply(rb, reply);
    } else if (!rb->finished) {
        copy_reply(&rb->replies[rb->got], reply);
        if (reply->type == REDIS_REPLY_ERROR && rb->rc->sentinel &&
            strncmp(reply->str, "READONLY", 8) == 0)
            rb->rc->readonly_seen = 1;
    }
    struct redisc *rc = rb->rc;
    if (++rb->got == rb->n) {
        finish(rb, REDISC_OK);
        rbatch_free(rb);
    }
    if (rc->readonly_seen && rc->ac == ac) {
        rc->readonly_seen = 0;
        drop_connection(rc, "READONLY: the node is no longer the master");
    }
}

static void batch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rbatch *rb = arg;
    (void)fd;
    (void)what;
    struct redisc *rc = rb->rc;
    g_metrics.redis_errors[REDIS_ERR_TIMEOUT]++;
    rb->err_hint = REDISC_ETIMEOUT;
    finish(rb, REDISC_ETIMEOUT);
    drop_connection(rc, "a round trip exceeded redis.timeout");
}

/* Queues b's commands on the connection as rb (b is freed either way).
 * The rbatch's id, or 0 if nothing could be queued (rb then freed). */
static uint64_t queue_batch(struct redisc *rc, struct rbatch *rb, redisc_batch_t *b)
{
    rb->rc = rc;
    rb->id = ++rc->next_id;
    rb->n = b->n;
    rb->sent_us = clock_us();
    LIST_INSERT_HEAD(&rc->batches, rb, link);
    size_t start = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (redisAsyncFormattedCommand(rc->ac, reply_cb, rb, b->buf + start, b->ends[i] - start) !=
            REDIS_OK) {
            /* Only when hiredis is disconnecting: the queued commands will
             * get NULL replies; account for the ones never queued. */
            rb->n = i;
            rb->finished = 1;
            rb->cb = NULL;
            rb->raw = NULL;
            if (i == 0)
                rbatch_free(rb);
            redisc_batch_free(b);
            return 0;
        }
        start = b->ends[i];
    }
    redisc_batch_free(b);
    struct timeval tv = clock_tv(rc->timeout_ms);
    evtimer_add(rb->timer, &tv);
    return rb->id;
}

/* A new rbatch for n commands with its timer; NULL on OOM. */
static struct rbatch *rbatch_new(struct redisc *rc, size_t n)
{
    struct rbatch *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return NULL;
    rb->replies = calloc(n ? n : 1, sizeof(*rb->replies));
    rb->timer = rb->replies ? evtimer_new(rc->base, batch_timeout_cb, rb) : NULL;
    if (!rb->timer) {
        free(rb->replies);
        free(rb);
        return NULL;
    }
    return rb;
}

uint64_t redisc_raw_send(struct redisc *rc, int argc, const char *const *argv, const size_t *lens,
                         redisc_raw_cb *cb, void *arg)
{
    if (!rc || rc->cluster || rc->state != RC_UP || !rc->ac || !cb)
        return 0;
    redisc_batch_t *b = redisc_batch_new();
    struct rbatch *rb = NULL;
    if (!b || redisc_batch_add(b, argc, argv, lens) || !(rb = rbatch_new(rc, 1))) {
        redisc_batch_free(b);
        return 0;
    }
    rb->raw = cb;
    rb->arg = arg;
    return queue_batch(rc, rb, b);
}

uint64_t redisc_batch_send(struct redisc *rc, redisc_batch_t *b, redisc_batch_cb *cb, void *arg)
{
    if (!b)
        return 0;
    if (rc->cluster)
        return rcc_batch_send(rc->cluster, b, cb, arg);
    struct rbatch *rb = NULL;
    if (rc->state != RC_UP || !rc->ac || b->n == 0 || !(rb = rbatch_new(rc, b->n))) {
        redisc_batch_free(b);
        return 0;
    }
    rb->cb = cb;
    rb->arg = arg;
    return queue_batch(rc, rb, b);
}

void redisc_cancel(struct redisc *rc, uint64_t id)
{
    if (!rc || !id)
        return;
    if (rc->cluster) {
        rcc_cancel(rc->cluster, id);
        return;
    }
    struct rbatch *rb;
    LIST_FOREACH(rb, &rc->batches, link)
    {
        if (rb->id == id) {
            rb->cb = NULL;
            rb->raw = NULL;
            return;
        }
    }
}

int redisc_ready(const struct redisc *rc)
{
    if (rc && rc->cluster)
        return rcc_ready(rc->cluster);
    return rc && rc->state == RC_UP;
}

/* ---------------------------------------------------------------- life */

/* A client with its timers, not connecting yet; NULL on OOM. */
static struct redisc *alloc_client(struct event_base *base, uint64_t timeout_ms,
                                   redisc_state_cb *on_state, void *arg)
{
    struct redisc *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->base = base;
    rc->timeout_ms = timeout_ms ? timeout_ms : 1000;
    rc->on_state = on_state;
    rc->arg = arg;
    rc->backoff_ms = RC_BACKOFF_MIN_MS;
    LIST_INIT(&rc->batches);
    rc->reconnect_timer = evtimer_new(base, reconnect_cb, rc);
    rc->connect_timer = evtimer_new(base, connect_timeout_cb, rc);
    if (!rc->reconnect_timer || !rc->connect_timer) {
        redisc_free(rc);
        return NULL;
    }
    return rc;
}

/* Sentinel mode: a Sentinel announced a new master address. */
static void master_switched(void *arg, const char *host, int port)
{
    struct redisc *rc = arg;
    rc->backoff_ms = RC_BACKOFF_MIN_MS;
    if (rc->ac && (strcmp(host, rc->host) != 0 || port != rc->port)) {
        g_metrics.redis_sentinel_switches++;
        drop_connection(rc, "Sentinel switched the master");
    } else if (rc->state == RC_DOWN) {
        struct timeval tv = {0, 0};
        evtimer_add(rc->reconnect_timer, &tv); /* no need to wait out a backoff */
    }
}

/* The mode-specific part of redisc_new; 0, or -1. */
static int setup_mode(struct redisc *rc, const struct redisurl *u)
{
    switch (u->kind) {
    case REDISURL_CLUSTER:
        rc->cluster = rcc_new(rc->base, u, rc->timeout_ms, rc->on_state, rc->arg);
        return rc->cluster ? 0 : -1;
    case REDISURL_SENTINEL:
        rc->sentinel = rsent_new(rc->base, u, rc->timeout_ms, master_switched, rc);
        rc->db = u->db;
        rc->host = strdup(u->master); /* until the Sentinels answer */
        return rc->sentinel && rc->host ? 0 : -1;
    default:
        return parse_single(rc, u);
    }
}

struct redisc *redisc_new(struct event_base *base, const char *url, uint64_t timeout_ms,
                          redisc_state_cb *on_state, void *arg)
{
    struct redisurl u;
    if (redisurl_parse(url, &u) != NULL)
        return NULL;
    struct redisc *rc = alloc_client(base, timeout_ms, on_state, arg);
    if (!rc || setup_mode(rc, &u) < 0) {
        redisurl_free(&u);
        redisc_free(rc);
        return NULL;
    }
    redisurl_free(&u);
    if (!rc->cluster)
        start_connect(rc);
    return rc;
}

struct redisc *redisc_new_node(struct event_base *base, const char *host, int port,
                               uint64_t timeout_ms, redisc_state_cb *on_state, void *arg)
{
    struct redisc *rc = alloc_client(base, timeout_ms, on_state, arg);
    if (!rc)
        return NULL;
    rc->is_node = 1;
    rc->port = port;
    if (!(rc->host = strdup(host))) {
        redisc_free(rc);
        return NULL;
    }
    start_connect(rc);
    return rc;
}

void redisc_free(struct redisc *rc)
{
    if (!rc)
        return;
    rc->freeing = 1;
    rcc_free(rc->cluster);
    rsent_free(rc->sentinel);
    struct rbatch *rb;
    LIST_FOREACH(rb, &rc->batches, link)
    {
        rb->cb = NULL;
        rb->raw = NULL;
    }
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac); /* runs every reply_cb with NULL: rbatches freed */
    }
    while ((rb = LIST_FIRST(&rc->batches)))
        rbatch_free(rb); /* defensive: none should remain */
    if (rc->reconnect_timer)
        event_free(rc->reconnect_timer);
    if (rc->connect_timer)
        event_free(rc->connect_timer);
    if (!rc->is_node)
        g_metrics.redis_connected = 0;
    free(rc->host);
    free(rc);
}
