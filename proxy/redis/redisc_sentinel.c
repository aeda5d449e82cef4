/*
 * redisc_sentinel.c - the master's address from Redis Sentinel. See
 * redisc_sentinel.h.
 *
 * A lookup is a walk over the Sentinels, one short-lived hiredis
 * connection at a time, each bounded by timeout_ms (hiredis 0.14 has no
 * async timeouts): the first that names the master wins and becomes the
 * first asked next time. Every step goes through a zero-delay timer, so
 * the owner's callback never runs inside rsent_resolve.
 *
 *   SENTINEL get-master-addr-by-name <master>
 *     -> *2 $ip $port     the master
 *     -> nil              this Sentinel does not monitor it: ask the next
 *
 * The subscription connection reads
 *   *3 $message $+switch-master $"<master> <old-ip> <old-port> <new-ip> <new-port>"
 * and reports the new address for our master only.
 */
#include "redisc_sentinel.h"

#include "clock.h"
#include "log.h"
#include "redisurl.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define RSENT_SUB_RETRY_MS 5000u

struct rsent {
    struct event_base *base;
    uint64_t timeout_ms;
    size_t nhosts;
    struct redisurl_host hosts[REDISURL_MAX_HOSTS]; /* copies */
    char master[REDISURL_MAX_NAME + 1];
    rsent_switch_cb *on_switch;
    void *arg;
    /* the lookup under way */
    rsent_resolved_cb *cb; /* NULL when none */
    void *cb_arg;
    size_t tries; /* Sentinels asked in this lookup */
    size_t cur;   /* the one asked now, or next */
    size_t good;  /* the last one that answered */
    int have_good;
    redisAsyncContext *qac;
    struct event *step_ev, *timeout_ev;
    /* the +switch-master subscription */
    redisAsyncContext *sub;
    struct event *sub_ev;
};

const char *rsent_master(const struct rsent *s)
{
    return s->master;
}

/* Schedules the next step of the lookup (from the loop, never inline). */
static void step_later(struct rsent *s)
{
    struct timeval tv = {0, 0};
    evtimer_add(s->step_ev, &tv);
}

/* Moves on to the next Sentinel. */
static void ask_next(struct rsent *s)
{
    s->cur = (s->cur + 1) % s->nhosts;
    step_later(s);
}

/* Ends the lookup with host:port (host NULL: nobody knew). */
static void lookup_done(struct rsent *s, const char *host, int port)
{
    rsent_resolved_cb *cb = s->cb;
    s->cb = NULL;
    s->tries = 0;
    if (cb)
        cb(s->cb_arg, host, port);
}

/* A new async connection to Sentinel i on the loop; NULL on failure. */
static redisAsyncContext *connect_to(struct rsent *s, size_t i,
                                     void (*on_disc)(const redisAsyncContext *, int))
{
    redisAsyncContext *ac = redisAsyncConnect(s->hosts[i].host, s->hosts[i].port);
    if (!ac || ac->err) {
        log_warn("redis sentinel %s:%d: connect failed: %s", s->hosts[i].host, s->hosts[i].port,
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisAsyncSetDisconnectCallback(ac, on_disc);
    return ac;
}

/* ---------------------------------------------------------------- subscription */

/* "<master> <old-ip> <old-port> <new-ip> <new-port>": the new address if
 * the message is about our master. 0, or -1. */
static int parse_switch(const struct rsent *s, const char *msg, size_t len, char *host,
                        size_t hostcap, int *port)
{
    const char *f[5];
    size_t fl[5], nf = 0;
    const char *p = msg, *end = msg + len;
    while (p < end && nf < 5) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t n = sp ? (size_t)(sp - p) : (size_t)(end - p);
        f[nf] = p;
        fl[nf++] = n;
        p += n + (sp ? 1 : 0);
    }
    if (nf != 5 || p != end || fl[0] != strlen(s->master) || memcmp(f[0], s->master, fl[0]) != 0)
        return -1;
    if (fl[3] == 0 || fl[3] >= hostcap || fl[4] == 0 || fl[4] > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < fl[4]; i++) {
        if (f[4][i] < '0' || f[4][i] > '9')
            return -1;
        v = v * 10 + (f[4][i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    memcpy(host, f[3], fl[3]);
    host[fl[3]] = '\0';
    *port = (int)v;
    return 0;
}

static void sub_msg(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rsent *s = privdata;
    redisReply *reply = r;
    if (!reply || ac != s->sub)
        return; /* going away: sub_disconnect clears it */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !reply->element[0] ||
        !reply->element[2] || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "message"))
        return; /* the subscribe confirmation, or noise */
    char host[256];
    int port;
    if (parse_switch(s, reply->element[2]->str, (size_t)reply->element[2]->len, host, sizeof(host),
                     &port) < 0)
        return;
    log_warn("redis sentinel: +switch-master: %s is now at %s:%d", s->master, host, port);
    if (s->on_switch)
        s->on_switch(s->arg, host, port);
}

static void sub_disconnect(const redisAsyncContext *cac, int status)
{
    struct rsent *s = cac->data;
    (void)status;
    if (s && cac == s->sub) {
        s->sub = NULL;
        struct timeval tv = clock_tv(RSENT_SUB_RETRY_MS);
        evtimer_add(s->sub_ev, &tv);
    }
}

/* Keeps one connection to the last good Sentinel subscribed. */
static void ensure_sub(struct rsent *s)
{
    if (s->sub || !s->have_good)
        return;
    redisAsyncContext *ac = connect_to(s, s->good, sub_disconnect);
    if (!ac)
        return;
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    size_t lens[] = {9, 14};
    if (redisAsyncCommandArgv(ac, sub_msg, s, 2, argv, lens) != REDIS_OK) {
        redisAsyncFree(ac);
        return;
    }
    s->sub = ac;
}

static void sub_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ensure_sub(arg);
}

/* ---------------------------------------------------------------- lookup */

/* The answer of get-master-addr-by-name into host/port; 0, or -1. */
static int parse_addr(const redisReply *r, char *host, size_t hostcap, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0] || !r->element[1] ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return -1;
    const redisReply *h = r->element[0], *p = r->element[1];
    if (h->len == 0 || (size_t)h->len >= hostcap || memchr(h->str, ' ', (size_t)h->len) ||
        strlen(h->str) != (size_t)h->len || p->len == 0 || p->len > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < (size_t)p->len; i++) {
        if (p->str[i] < '0' || p->str[i] > '9')
            return -1;
        v = v * 10 + (p->str[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    memcpy(host, h->str, (size_t)h->len);
    host[h->len] = '\0';
    *port = (int)v;
    return 0;
}

static void q_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rsent *s = privdata;
    redisReply *reply = r;
    if (ac != s->qac)
        return;
    s->qac = NULL;
    event_del(s->timeout_ev);
    struct redisurl_host *h = &s->hosts[s->cur];
    if (!reply) { /* the connection failed: hiredis frees it */
        log_warn("redis sentinel %s:%d: no answer", h->host, h->port);
        ask_next(s);
        return;
    }
    char host[256];
    int port;
    int ok = parse_addr(reply, host, sizeof(host), &port) == 0;
    if (!ok)
        log_warn("redis sentinel %s:%d: does not name master %s (%s)", h->host, h->port, s->master,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "no address");
    redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    if (!ok) {
        ask_next(s);
        return;
    }
    s->good = s->cur;
    s->have_good = 1;
    ensure_sub(s);
    lookup_done(s, host, port);
}

static void q_disconnect(const redisAsyncContext *cac, int status)
{
    struct rsent *s = cac->data;
    (void)status;
    if (!s || cac != s->qac)
        return;
    s->qac = NULL;
    event_del(s->timeout_ev);
    ask_next(s);
}

static void q_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rsent *s = arg;
    (void)fd;
    (void)what;
    redisAsyncContext *ac = s->qac;
    if (!ac)
        return;
    s->qac = NULL;
    log_warn("redis sentinel %s:%d: no answer within redis.timeout", s->hosts[s->cur].host,
             s->hosts[s->cur].port);
    redisAsyncFree(ac); /* its callbacks see qac != ac and return */
    ask_next(s);
}

/* Asks Sentinel s->cur, or ends the lookup once every one was asked. */
static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rsent *s = arg;
    (void)fd;
    (void)what;
    if (!s->cb || s->qac)
        return;
    if (s->tries >= s->nhosts) {
        log_warn("redis sentinel: no Sentinel named a master for %s", s->master);
        lookup_done(s, NULL, 0);
        return;
    }
    s->tries++;
    redisAsyncContext *ac = connect_to(s, s->cur, q_disconnect);
    if (!ac) {
        ask_next(s);
        return;
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->master};
    size_t lens[] = {8, 23, strlen(s->master)};
    if (redisAsyncCommandArgv(ac, q_reply, s, 3, argv, lens) != REDIS_OK) {
        redisAsyncFree(ac);
        ask_next(s);
        return;
    }
    s->qac = ac;
    struct timeval tv = clock_tv(s->timeout_ms);
    evtimer_add(s->timeout_ev, &tv);
}

void rsent_resolve(struct rsent *s, rsent_resolved_cb *cb, void *arg)
{
    if (s->qac) { /* abandon the lookup under way */
        redisAsyncContext *ac = s->qac;
        s->qac = NULL;
        event_del(s->timeout_ev);
        redisAsyncFree(ac);
    }
    s->cb = cb;
    s->cb_arg = arg;
    s->tries = 0;
    s->cur = s->have_good ? s->good : 0;
    step_later(s);
}

/* ---------------------------------------------------------------- life */

struct rsent *rsent_new(struct event_base *base, const struct redisurl *u, uint64_t timeout_ms,
                        rsent_switch_cb *on_switch, void *arg)
{
    struct rsent *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    s->timeout_ms = timeout_ms;
    s->on_switch = on_switch;
    s->arg = arg;
    memcpy(s->master, u->master, sizeof(s->master));
    s->step_ev = evtimer_new(base, step_cb, s);
    s->timeout_ev = evtimer_new(base, q_timeout_cb, s);
    s->sub_ev = evtimer_new(base, sub_retry_cb, s);
    int ok = s->step_ev && s->timeout_ev && s->sub_ev && u->nhosts > 0;
    for (size_t i = 0; ok && i < u->nhosts && i < REDISURL_MAX_HOSTS; i++) {
        s->hosts[i].host = strdup(u->hosts[i].host);
        s->hosts[i].port = u->hosts[i].port;
        s->nhosts = i + 1;
        ok = s->hosts[i].host != NULL;
    }
    if (!ok) {
        rsent_free(s);
        return NULL;
    }
    return s;
}

void rsent_free(struct rsent *s)
{
    if (!s)
        return;
    s->cb = NULL;
    s->on_switch = NULL;
    if (s->qac) {
        redisAsyncContext *ac = s->qac;
        s->qac = NULL;
        redisAsyncFree(ac);
    }
    if (s->sub) {
        redisAsyncContext *ac = s->sub;
        s->sub = NULL;
        redisAsyncFree(ac);
    }
    if (s->step_ev)
        event_free(s->step_ev);
    if (s->timeout_ev)
        event_free(s->timeout_ev);
    if (s->sub_ev)
        event_free(s->sub_ev);
    for (size_t i = 0; i < s->nhosts; i++)
        free(s->hosts[i].host);
    free(s);
}
