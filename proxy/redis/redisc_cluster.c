/*
 * redisc_cluster.c - redisc's Redis Cluster mode. See redisc_cluster.h.
 *
 * Nodes: one single-node redisc per address the cluster named (and per
 * seed), in a fixed table; slot[s] is the index of the master serving s.
 * A node that no longer serves slots and is not a seed is freed later
 * (from a timer, never inside its own callbacks) once nothing is in
 * flight through it.
 *
 * A batch ("cbatch") keeps the caller's redisc batch so that any command
 * can be sent again. Each command is PENDING, SENT or DONE. dispatch()
 * groups the PENDING ones by target node into per-node pipelines
 * ("csub"); each csub's replies are copied into the cbatch at their
 * command's index. A MOVED or ASK answer makes its command PENDING again
 * (at most RCC_MAX_REDIRECTS times); when every command is DONE the
 * caller's callback runs once with the replies in command order. When a
 * target node is known but still connecting (a replica just promoted),
 * the batch waits for it, polling every RCC_WAIT_STEP_MS, up to
 * redis.timeout. Anything else that stops a command (no master for its
 * slot, a node's connection lost, a CLUSTERDOWN answer) fails the whole
 * batch with REDISC_EDOWN (or REDISC_ETIMEOUT from a node's timeout); the
 * csubs still in flight are cancelled.
 *
 * Refreshes: CLUSTER SLOTS, one at a time, through any connected node
 * (round robin), at most every RCC_REFRESH_GAP_MS; requested on MOVED, on
 * a node's connection loss or failed pipeline, and periodically:
 * RCC_REFRESH_DEGRADED_MS while not ready, RCC_REFRESH_OK_MS while ready.
 */
#include "redisc_cluster.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "rcluster.h"
#include "redisurl.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define RCC_MAX_NODES (RCLUSTER_MAX_NODES + REDISURL_MAX_HOSTS)
#define RCC_NO_NODE RCLUSTER_NO_NODE
#define RCC_REFRESH_OK_MS 10000u
#define RCC_REFRESH_DEGRADED_MS 300u
#define RCC_REFRESH_GAP_MS 100u
#define RCC_WAIT_STEP_MS 20u

/* One cluster node (master, or a seed) and its connection. */
struct rnode {
    struct rcc *cl;
    size_t idx; /* in cl->nodes */
    char *host;
    int port;
    struct redisc *rc;
    int up;      /* its redisc said so last */
    int seed;    /* named in redis.url: kept while no map is known */
    int in_map;  /* serves slots in the current map */
    size_t busy; /* csubs and CLUSTER SLOTS in flight through it */
};

enum cmd_state { CMD_PENDING, CMD_SENT, CMD_DONE };

/* One command of a cluster batch. */
struct ccmd {
    enum cmd_state st;
    int keyed; /* it has a key: route by slot */
    unsigned slot;
    int redirects; /* MOVED/ASK followed so far */
    long ask_node; /* ASK target index (ASKING goes first), or -1 */
    long target;   /* node chosen by the current dispatch */
};

struct cbatch;

/* One per-node pipeline of a cbatch, in flight. */
struct csub {
    struct cbatch *cb;
    struct rnode *node;
    uint64_t id; /* its redisc batch id */
    size_t n;    /* commands in it */
    long *idx;   /* reply j -> command index, -1 for an ASKING */
    LIST_ENTRY(csub) link;
};

/* A batch the caller sent. */
struct cbatch {
    struct rcc *cl;
    uint64_t id;
    redisc_batch_cb *cb; /* NULL once cancelled */
    void *arg;
    redisc_batch_t *b; /* the commands, kept for resends */
    size_t n, done;
    struct ccmd *cmds;
    redisc_reply_t *replies;
    LIST_HEAD(, csub) subs;
    struct event *timer; /* a deferred failure, or waiting for a node */
    int err;             /* the deferred failure */
    uint64_t wait_until_us;
    LIST_ENTRY(cbatch) link;
};

struct rcc {
    struct event_base *base;
    uint64_t timeout_ms;
    redisc_state_cb *on_state;
    void *arg;
    struct rnode *nodes[RCC_MAX_NODES];
    uint16_t slot[RCLUSTER_SLOTS];
    size_t covered; /* slots with a node */
    int told;       /* readiness last told the owner */
    uint64_t next_id;
    LIST_HEAD(, cbatch) batches;
    struct event *refresh_ev, *notify_ev, *gc_ev;
    struct rnode *refreshing; /* asked CLUSTER SLOTS, or NULL */
    int refresh_again;
    uint64_t last_refresh_us;
    uint64_t refresh_due_us; /* when refresh_ev fires, while pending */
    const char *last_why;    /* why the last CLUSTER SLOTS was unusable */
    size_t rr;
    struct rcluster_map *scratch;
    size_t nseeds;
    struct redisurl_host seeds[REDISURL_MAX_HOSTS]; /* copies */
    int freeing;
};

/* ---------------------------------------------------------------- readiness */

/* Every slot has a master and every master is connected. */
static int compute_ready(const struct rcc *cl)
{
    if (cl->covered != RCLUSTER_SLOTS)
        return 0;
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        const struct rnode *nd = cl->nodes[i];
        if (nd && nd->in_map && !nd->up)
            return 0;
    }
    return 1;
}

int rcc_ready(const struct rcc *cl)
{
    return cl && !cl->freeing && compute_ready(cl);
}

/* Tells the owner about a change of readiness, from the loop. */
static void notify_later(struct rcc *cl)
{
    struct timeval tv = {0, 0};
    if (!cl->freeing)
        evtimer_add(cl->notify_ev, &tv);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rcc *cl = arg;
    (void)fd;
    (void)what;
    int ready = compute_ready(cl);
    g_metrics.redis_connected = ready;
    if (ready == cl->told)
        return;
    cl->told = ready;
    if (ready)
        log_info("redis cluster: ready (all 16384 slots served by connected masters)");
    else
        log_warn("redis cluster: not ready (%zu of 16384 slots mapped, or a master is not "
                 "connected)",
                 cl->covered);
    if (cl->on_state)
        cl->on_state(cl->arg, ready);
}

/* ---------------------------------------------------------------- nodes */

static void refresh_soon(struct rcc *cl);

static void node_state(void *arg, int up)
{
    struct rnode *nd = arg;
    struct rcc *cl = nd->cl;
    nd->up = up;
    if (!up || !compute_ready(cl))
        refresh_soon(cl);
    notify_later(cl);
}

static struct rnode *node_find(struct rcc *cl, const char *host, int port)
{
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        struct rnode *nd = cl->nodes[i];
        if (nd && nd->port == port && strcmp(nd->host, host) == 0)
            return nd;
    }
    return NULL;
}

/* The node for host:port, created (and connecting) if new; NULL when the
 * table is full or out of memory. */
static struct rnode *node_get(struct rcc *cl, const char *host, int port)
{
    struct rnode *nd = node_find(cl, host, port);
    if (nd)
        return nd;
    size_t i = 0;
    while (i < RCC_MAX_NODES && cl->nodes[i])
        i++;
    if (i == RCC_MAX_NODES || !(nd = calloc(1, sizeof(*nd))))
        return NULL;
    nd->cl = cl;
    nd->idx = i;
    nd->port = port;
    nd->host = strdup(host);
    nd->rc =
        nd->host ? redisc_new_node(cl->base, host, port, cl->timeout_ms, node_state, nd) : NULL;
    if (!nd->rc) {
        free(nd->host);
        free(nd);
        return NULL;
    }
    cl->nodes[i] = nd;
    return nd;
}

static void node_free(struct rnode *nd)
{
    nd->cl->nodes[nd->idx] = NULL;
    redisc_free(nd->rc);
    free(nd->host);
    free(nd);
}

/* Connects to the seeds that have no node (all of them at start, again
 * when no known node is reachable). 0, or -1 when none could be added. */
static int add_seeds(struct rcc *cl)
{
    int added = 0;
    for (size_t i = 0; i < cl->nseeds; i++) {
        struct rnode *nd = node_get(cl, cl->seeds[i].host, cl->seeds[i].port);
        if (nd) {
            nd->seed = 1;
            added = 1;
        }
    }
    return added ? 0 : -1;
}

/* Frees the nodes nothing needs any more (from a timer: never inside a
 * node's own callback). */
static void gc_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rcc *cl = arg;
    (void)fd;
    (void)what;
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        struct rnode *nd = cl->nodes[i];
        if (nd && !nd->in_map && (!nd->seed || cl->covered > 0) && nd->busy == 0 &&
            nd != cl->refreshing) {
            log_info("redis cluster: %s:%d serves no slot any more: closing it", nd->host,
                     nd->port);
            node_free(nd);
        }
    }
}

/* ---------------------------------------------------------------- slot map */

/* Makes m the slot map (m was read from node `from`). */
static void apply_map(struct rcc *cl, const struct rcluster_map *m, const struct rnode *from)
{
    uint16_t idx[RCLUSTER_MAX_NODES];
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        if (cl->nodes[i])
            cl->nodes[i]->in_map = 0;
    }
    for (size_t k = 0; k < m->nnodes; k++) {
        struct rnode *nd = node_get(cl, m->nodes[k].host, m->nodes[k].port);
        idx[k] = nd ? (uint16_t)nd->idx : RCC_NO_NODE;
        if (nd)
            nd->in_map = 1;
    }
    size_t covered = 0, changed = 0;
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++) {
        uint16_t v = m->slot[s] == RCLUSTER_NO_NODE ? RCC_NO_NODE : idx[m->slot[s]];
        changed += v != cl->slot[s];
        cl->slot[s] = v;
        covered += v != RCC_NO_NODE;
    }
    cl->covered = covered;
    g_metrics.redis_cluster_slots_served = (int64_t)covered;
    if (changed)
        log_info("redis cluster: slot map from %s:%d: %zu masters, %zu of 16384 slots served "
                 "(%zu slots moved)",
                 from->host, from->port, m->nnodes, covered, changed);
    struct timeval tv = {0, 0};
    evtimer_add(cl->gc_ev, &tv);
}

/* Arms the next refresh after delay_ms, unless one is due sooner. */
static void refresh_in(struct rcc *cl, uint64_t delay_ms)
{
    if (cl->freeing)
        return;
    uint64_t due = clock_us() + delay_ms * 1000;
    if (evtimer_pending(cl->refresh_ev, NULL) && cl->refresh_due_us <= due)
        return;
    cl->refresh_due_us = due;
    struct timeval tv = clock_tv(delay_ms);
    evtimer_add(cl->refresh_ev, &tv);
}

/* A refresh as soon as the rate bound allows. */
static void refresh_soon(struct rcc *cl)
{
    if (cl->refreshing) {
        cl->refresh_again = 1;
        return;
    }
    uint64_t next = cl->last_refresh_us + RCC_REFRESH_GAP_MS * 1000, now = clock_us();
    refresh_in(cl, next > now ? (next - now) / 1000 + 1 : 0);
}

/* The periodic refresh after one finished. */
static void refresh_next(struct rcc *cl)
{
    if (cl->refresh_again) {
        cl->refresh_again = 0;
        refresh_soon(cl);
        return;
    }
    refresh_in(cl, compute_ready(cl) ? RCC_REFRESH_OK_MS : RCC_REFRESH_DEGRADED_MS);
}

static void slots_reply(void *arg, const struct redisReply *reply)
{
    struct rnode *nd = arg;
    struct rcc *cl = nd->cl;
    nd->busy--;
    cl->refreshing = NULL;
    const char *why = "no answer";
    int ok = reply && rcluster_parse_slots(reply, nd->host, cl->scratch, &why) == 0;
    g_metrics.redis_cluster_refreshes[ok ? 0 : 1]++;
    if (ok) {
        apply_map(cl, cl->scratch, nd);
        cl->last_why = NULL;
    } else if (why != cl->last_why) { /* once per kind of trouble, not per retry */
        const char *detail =
            reply && reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str : NULL;
        log_warn("redis cluster: CLUSTER SLOTS from %s:%d unusable: %s%s%s", nd->host, nd->port,
                 why, detail ? ": " : "", detail ? detail : "");
        cl->last_why = why;
    }
    refresh_next(cl);
    notify_later(cl);
}

/* Asks a connected node (round robin) for the slot map. */
static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rcc *cl = arg;
    (void)fd;
    (void)what;
    if (cl->refreshing)
        return;
    static const char *const argv[] = {"CLUSTER", "SLOTS"};
    static const size_t lens[] = {7, 5};
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        struct rnode *nd = cl->nodes[(cl->rr + i) % RCC_MAX_NODES];
        if (!nd || !nd->up)
            continue;
        cl->rr = nd->idx + 1;
        if (!redisc_raw_send(nd->rc, 2, argv, lens, slots_reply, nd))
            continue;
        nd->busy++;
        cl->refreshing = nd;
        cl->last_refresh_us = clock_us();
        return;
    }
    /* Nobody connected: back to the seeds (a node coming up asks again,
     * from node_state). */
    add_seeds(cl);
    refresh_in(cl, RCC_REFRESH_DEGRADED_MS);
}

/* ---------------------------------------------------------------- batches */

static void cbatch_release(struct cbatch *cb)
{
    struct csub *sub;
    while ((sub = LIST_FIRST(&cb->subs))) {
        LIST_REMOVE(sub, link);
        redisc_cancel(sub->node->rc, sub->id);
        sub->node->busy--;
        free(sub->idx);
        free(sub);
    }
    LIST_REMOVE(cb, link);
    for (size_t i = 0; i < cb->n; i++)
        free(cb->replies[i].str);
    free(cb->replies);
    free(cb->cmds);
    redisc_batch_free(cb->b);
    if (cb->timer)
        event_free(cb->timer);
    free(cb);
}

/* Runs the caller's callback (unless cancelled) and frees the batch. */
static void cbatch_end(struct cbatch *cb, int err)
{
    redisc_batch_cb *fn = cb->cb;
    cb->cb = NULL;
    if (fn && !cb->cl->freeing)
        fn(cb->arg, err, err ? NULL : cb->replies, err ? 0 : cb->n);
    cbatch_release(cb);
}

/* The node a PENDING command goes to, or -1 (no master known). */
static long cmd_target(const struct rcc *cl, const struct ccmd *c)
{
    if (c->ask_node >= 0)
        return cl->nodes[c->ask_node] ? c->ask_node : -1;
    if (c->keyed)
        return cl->slot[c->slot] == RCC_NO_NODE ? -1 : (long)cl->slot[c->slot];
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        if (cl->nodes[i] && cl->nodes[i]->in_map && cl->nodes[i]->up)
            return (long)i;
    }
    return -1;
}

static void csub_cb(void *arg, int err, const redisc_reply_t *replies, size_t n);

/* Sends the PENDING commands bound for node t as one pipeline; 0, or -1. */
static int send_sub(struct cbatch *cb, long t)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    struct rnode *nd = cb->cl->nodes[t];
    struct csub *sub = calloc(1, sizeof(*sub));
    redisc_batch_t *b = redisc_batch_new();
    size_t need = 0; /* replies: one per command, one more per ASKING */
    for (size_t i = 0; i < cb->n; i++) {
        const struct ccmd *c = &cb->cmds[i];
        if (c->st == CMD_PENDING && c->target == t)
            need += c->ask_node >= 0 ? 2 : 1;
    }
    if (!sub || !b || !(sub->idx = calloc(need ? need : 1, sizeof(*sub->idx)))) {
        free(sub);
        redisc_batch_free(b);
        return -1;
    }
    for (size_t i = 0; i < cb->n; i++) {
        struct ccmd *c = &cb->cmds[i];
        if (c->st != CMD_PENDING || c->target != t)
            continue;
        size_t len;
        const char *resp = redisc_batch_command(cb->b, i, &len);
        if (c->ask_node >= 0) {
            if (redisc_batch_add_resp(b, asking, sizeof(asking) - 1))
                goto fail;
            sub->idx[sub->n++] = -1;
            c->ask_node = -1; /* ASK holds for this one attempt */
        }
        if (redisc_batch_add_resp(b, resp, len))
            goto fail;
        sub->idx[sub->n++] = (long)i;
        c->st = CMD_SENT;
    }
    sub->cb = cb;
    sub->node = nd;
    sub->id = redisc_batch_send(nd->rc, b, csub_cb, sub); /* takes b */
    if (!sub->id) {
        free(sub->idx);
        free(sub);
        return -1;
    }
    nd->busy++;
    LIST_INSERT_HEAD(&cb->subs, sub, link);
    return 0;
fail:
    redisc_batch_free(b);
    free(sub->idx);
    free(sub);
    return -1;
}

/*
 * Sends every PENDING command of cb, one pipeline per node. 0 when they
 * all went out (or none was pending); 1 when some target is connecting
 * (nothing sent: wait and call again); -1 when a command has no master or
 * a send failed (cb must fail).
 */
static int dispatch(struct cbatch *cb)
{
    struct rcc *cl = cb->cl;
    int waiting = 0;
    for (size_t i = 0; i < cb->n; i++) {
        struct ccmd *c = &cb->cmds[i];
        if (c->st != CMD_PENDING)
            continue;
        c->target = cmd_target(cl, c);
        if (c->target < 0)
            return -1;
        if (!redisc_ready(cl->nodes[c->target]->rc))
            waiting = 1;
    }
    if (waiting)
        return 1;
    for (size_t i = 0; i < cb->n; i++) {
        if (cb->cmds[i].st == CMD_PENDING && send_sub(cb, cb->cmds[i].target) < 0)
            return -1;
    }
    return 0;
}

/* Dispatches, and on 1 starts (or keeps) waiting; 0, or -1 (fail cb). */
static int dispatch_or_wait(struct cbatch *cb)
{
    int r = dispatch(cb);
    if (r <= 0)
        return r;
    uint64_t now = clock_us();
    if (!cb->wait_until_us)
        cb->wait_until_us = now + cb->cl->timeout_ms * 1000;
    if (now >= cb->wait_until_us)
        return -1;
    struct timeval tv = clock_tv(RCC_WAIT_STEP_MS);
    evtimer_add(cb->timer, &tv);
    return 0;
}

static void cbatch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cbatch *cb = arg;
    (void)fd;
    (void)what;
    if (cb->err) {
        cbatch_end(cb, cb->err);
        return;
    }
    if (dispatch_or_wait(cb) < 0)
        cbatch_end(cb, REDISC_EDOWN);
}

/* Command k was redirected by rd (answered by node `from`); 0, or -1 when
 * it must not be followed. */
static int follow(struct cbatch *cb, size_t k, const struct rcluster_redirect *rd,
                  const struct rnode *from)
{
    struct rcc *cl = cb->cl;
    struct ccmd *c = &cb->cmds[k];
    if (++c->redirects > RCC_MAX_REDIRECTS) {
        log_warn("redis cluster: slot %u redirected more than %d times; failing the batch",
                 rd->slot, RCC_MAX_REDIRECTS);
        return -1;
    }
    struct rnode *to = node_get(cl, rd->to.host[0] ? rd->to.host : from->host, rd->to.port);
    if (!to)
        return -1;
    log_debug("redis cluster: %s slot %u to %s:%d", rd->kind == RCLUSTER_MOVED ? "MOVED" : "ASK",
              rd->slot, to->host, to->port);
    g_metrics.redis_cluster_redirects[rd->kind == RCLUSTER_MOVED ? 0 : 1]++;
    c->st = CMD_PENDING;
    if (rd->kind == RCLUSTER_ASK) {
        c->ask_node = (long)to->idx;
        return 0;
    }
    c->ask_node = -1;
    if (cl->slot[rd->slot] == RCC_NO_NODE)
        g_metrics.redis_cluster_slots_served = (int64_t)++cl->covered;
    cl->slot[rd->slot] = (uint16_t)to->idx;
    if (!to->in_map) {
        to->in_map = 1;
        notify_later(cl);
    }
    refresh_soon(cl);
    return 0;
}

/* 1 for the answers that mean "the cluster cannot serve this slot now". */
static int is_unavailable(const redisc_reply_t *r)
{
    static const char *const prefixes[] = {"CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(r->str, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    }
    return 0;
}

/* Copies a node's reply into the batch's slot for it. 0, or -1 on OOM. */
static int keep_reply(redisc_reply_t *dst, const redisc_reply_t *src)
{
    *dst = *src;
    dst->str = NULL;
    if (!src->str)
        return 0;
    if (!(dst->str = malloc(src->len + 1)))
        return -1;
    memcpy(dst->str, src->str, src->len);
    dst->str[src->len] = '\0';
    return 0;
}

/* Reads one csub's replies into cb; 0, or -1 when cb must fail (EDOWN). */
static int take_replies(struct cbatch *cb, const struct csub *sub, const redisc_reply_t *replies,
                        size_t n)
{
    if (n != sub->n)
        return -1;
    for (size_t j = 0; j < n; j++) {
        long k = sub->idx[j];
        const redisc_reply_t *r = &replies[j];
        if (k < 0)
            continue; /* ASKING's +OK */
        if (r->type == REDISC_REPLY_ERROR && r->str) {
            struct rcluster_redirect rd;
            if (rcluster_parse_redirect(r->str, r->len, &rd) != RCLUSTER_NOT_REDIRECT) {
                if (follow(cb, (size_t)k, &rd, sub->node) < 0)
                    return -1;
                continue;
            }
            if (is_unavailable(r)) {
                log_warn("redis cluster %s:%d: %s", sub->node->host, sub->node->port, r->str);
                refresh_soon(cb->cl);
                return -1;
            }
        }
        if (keep_reply(&cb->replies[k], r) < 0)
            return -1;
        cb->cmds[k].st = CMD_DONE;
        cb->done++;
    }
    return 0;
}

/* A node answered (or failed) one pipeline of a batch. */
static void csub_cb(void *arg, int err, const redisc_reply_t *replies, size_t n)
{
    struct csub *sub = arg;
    struct cbatch *cb = sub->cb;
    LIST_REMOVE(sub, link);
    sub->node->busy--;
    if (err) {
        refresh_soon(cb->cl);
    } else if (take_replies(cb, sub, replies, n) < 0) {
        err = REDISC_EDOWN;
    }
    free(sub->idx);
    free(sub);
    if (err) {
        cbatch_end(cb, err);
        return;
    }
    if (cb->done == cb->n) {
        cbatch_end(cb, REDISC_OK);
        return;
    }
    if (!evtimer_pending(cb->timer, NULL) && dispatch_or_wait(cb) < 0)
        cbatch_end(cb, REDISC_EDOWN);
}

/* A new cbatch taking b, every command PENDING with its slot; NULL on OOM. */
static struct cbatch *cbatch_new(struct rcc *cl, redisc_batch_t *b)
{
    size_t n = redisc_batch_count(b);
    struct cbatch *cb = calloc(1, sizeof(*cb));
    if (!cb)
        return NULL;
    cb->cl = cl;
    cb->n = n;
    LIST_INIT(&cb->subs);
    cb->cmds = calloc(n, sizeof(*cb->cmds));
    cb->replies = calloc(n, sizeof(*cb->replies));
    cb->timer = evtimer_new(cl->base, cbatch_timer_cb, cb);
    if (!cb->cmds || !cb->replies || !cb->timer) {
        free(cb->cmds);
        free(cb->replies);
        if (cb->timer)
            event_free(cb->timer);
        free(cb);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len, klen;
        const char *key, *resp = redisc_batch_command(b, i, &len);
        struct ccmd *c = &cb->cmds[i];
        c->ask_node = -1;
        c->keyed = rcluster_command_key(resp, len, &key, &klen) == 1;
        c->slot = c->keyed ? rcluster_key_slot(key, klen) : 0;
    }
    cb->b = b;
    return cb;
}

uint64_t rcc_batch_send(struct rcc *cl, redisc_batch_t *b, redisc_batch_cb *cb, void *arg)
{
    struct cbatch *c = NULL;
    if (!b || redisc_batch_count(b) == 0 || !rcc_ready(cl) || !(c = cbatch_new(cl, b))) {
        redisc_batch_free(b);
        return 0;
    }
    c->id = ++cl->next_id;
    c->cb = cb;
    c->arg = arg;
    LIST_INSERT_HEAD(&cl->batches, c, link);
    if (dispatch_or_wait(c) < 0) {
        /* Never inside the send: the failure reaches the caller from the loop. */
        c->err = REDISC_EDOWN;
        struct timeval tv = {0, 0};
        evtimer_add(c->timer, &tv);
    }
    return c->id;
}

void rcc_cancel(struct rcc *cl, uint64_t id)
{
    struct cbatch *cb;
    LIST_FOREACH(cb, &cl->batches, link)
    {
        if (cb->id == id) {
            cb->cb = NULL;
            return;
        }
    }
}

/* ---------------------------------------------------------------- life */

struct rcc *rcc_new(struct event_base *base, const struct redisurl *u, uint64_t timeout_ms,
                    redisc_state_cb *on_state, void *arg)
{
    struct rcc *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->base = base;
    cl->timeout_ms = timeout_ms ? timeout_ms : 1000;
    cl->on_state = on_state;
    cl->arg = arg;
    LIST_INIT(&cl->batches);
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++)
        cl->slot[s] = RCC_NO_NODE;
    cl->scratch = malloc(sizeof(*cl->scratch));
    cl->refresh_ev = evtimer_new(base, refresh_cb, cl);
    cl->notify_ev = evtimer_new(base, notify_cb, cl);
    cl->gc_ev = evtimer_new(base, gc_cb, cl);
    int ok = cl->scratch && cl->refresh_ev && cl->notify_ev && cl->gc_ev;
    for (size_t i = 0; ok && i < u->nhosts && i < REDISURL_MAX_HOSTS; i++) {
        cl->seeds[i].host = strdup(u->hosts[i].host);
        cl->seeds[i].port = u->hosts[i].port;
        cl->nseeds = i + 1;
        ok = cl->seeds[i].host != NULL;
    }
    if (!ok || add_seeds(cl) < 0) {
        rcc_free(cl);
        return NULL;
    }
    return cl;
}

void rcc_free(struct rcc *cl)
{
    if (!cl)
        return;
    cl->freeing = 1;
    struct cbatch *cb;
    while ((cb = LIST_FIRST(&cl->batches)))
        cbatch_release(cb);
    for (size_t i = 0; i < RCC_MAX_NODES; i++) {
        if (cl->nodes[i])
            node_free(cl->nodes[i]);
    }
    if (cl->refresh_ev)
        event_free(cl->refresh_ev);
    if (cl->notify_ev)
        event_free(cl->notify_ev);
    if (cl->gc_ev)
        event_free(cl->gc_ev);
    free(cl->scratch);
    for (size_t i = 0; i < cl->nseeds; i++)
        free(cl->seeds[i].host);
    g_metrics.redis_connected = 0;
    free(cl);
}
