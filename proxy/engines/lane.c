/*
 * lane.c - eosproxy-owned upstream connections. See lane.h.
 */
#include "lane.h"

#include "clock.h"
#include "config.h"
#include "kbuf.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define LANE_MAX_RESPONSE (64u << 20)

/* One request waiting for its response. */
struct lane_req {
    int32_t correlation_id;
    size_t bytes;
    uint64_t timeout_ms;
    uint64_t deadline_ms; /* set once written to a live connection */
    lane_cb cb;
    void *arg;
    struct lane_req *next;
};

enum lane_state { LANE_DOWN, LANE_BACKOFF, LANE_CONNECTING, LANE_UP };

struct lane {
    struct proxy *px;
    int32_t node_id;
    enum lane_state state;
    struct bufferevent *bev;
    struct evbuffer *held; /* frames sent while not connected */
    struct event *timer;   /* reconnect backoff or request deadline */
    struct lane_req *head, *tail;
    size_t pending_bytes, max_bytes;
    int32_t next_corr;
    uint64_t backoff_ms;
};

static void arm(struct lane *l, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(l->timer, &tv);
}

/* Arms the timer for the oldest written request's deadline, if any. */
static void arm_deadline(struct lane *l)
{
    if (l->state != LANE_UP && l->state != LANE_CONNECTING)
        return;
    if (!l->head) {
        evtimer_del(l->timer);
        return;
    }
    uint64_t now = clock_ms();
    arm(l, l->head->deadline_ms > now ? l->head->deadline_ms - now : 0);
}

/* When r is overdue, if it goes out on a connection (being) made now. */
static uint64_t deadline(const struct lane *l, const struct lane_req *r, uint64_t now)
{
    const config_t *cfg = l->px->cfg;
    return now + cfg->upstream.connect_timeout_ms +
           (r->timeout_ms ? r->timeout_ms : cfg->upstream.request_timeout_ms) +
           cfg->upstream.request_timeout_ms;
}

/* Stamps the requests held while there was no connection (at connect). */
static void stamp_deadlines(struct lane *l)
{
    uint64_t now = clock_ms();
    for (struct lane_req *r = l->head; r; r = r->next)
        if (!r->deadline_ms)
            r->deadline_ms = deadline(l, r, now);
}

/* Fails every pending request; callbacks run after the list is detached. */
static void fail_all(struct lane *l)
{
    struct lane_req *r = l->head;
    l->head = l->tail = NULL;
    l->pending_bytes = 0;
    while (r) {
        struct lane_req *next = r->next;
        r->cb(r->arg, NULL, 0);
        free(r);
        r = next;
    }
}

static void lane_close(struct lane *l)
{
    if (l->bev) {
        upstream_free(l->bev);
        l->bev = NULL;
    }
    if (l->held)
        evbuffer_drain(l->held, evbuffer_get_length(l->held));
}

/* Drops the connection, fails what is pending, reconnects after backoff.
 * kind < 0: upstream.c has already counted why (UPSTREAM_EVENT_COUNTED). */
static void lane_fail(struct lane *l, int kind, const char *why)
{
    const config_t *cfg = l->px->cfg;
    if (kind >= 0)
        g_metrics.upstream_errors[kind]++;
    log_warn("lane to broker %d: %s; %s", (int)l->node_id, why,
             l->head ? "failing its pending requests" : "idle");
    lane_close(l);
    l->state = LANE_BACKOFF;
    arm(l, l->backoff_ms);
    l->backoff_ms *= 2;
    if (l->backoff_ms > cfg->upstream.reconnect_backoff_max_ms)
        l->backoff_ms = cfg->upstream.reconnect_backoff_max_ms;
    fail_all(l);
}

static void lane_connect(struct lane *l);

static void handle_frame(struct lane *l, const uint8_t *frame, size_t len)
{
    struct lane_req *r = l->head;
    l->head = r->next;
    if (!l->head)
        l->tail = NULL;
    l->pending_bytes -= r->bytes;
    l->backoff_ms = l->px->cfg->upstream.reconnect_backoff_ms;
    r->cb(r->arg, frame, len);
    free(r);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct lane *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (l->bev && evbuffer_get_length(in) >= 8) {
        uint8_t hdr[8];
        evbuffer_copyout(in, hdr, 8);
        int32_t size = kbe32(hdr);
        if (size < 4 || (uint32_t)size > LANE_MAX_RESPONSE) {
            lane_fail(l, UPERR_PROTOCOL, "bad response frame size");
            return;
        }
        if (evbuffer_get_length(in) < (size_t)size + 4)
            return;
        if (!l->head || kbe32(hdr + 4) != l->head->correlation_id) {
            lane_fail(l, UPERR_PROTOCOL, "response does not match the oldest request");
            return;
        }
        const uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)size + 4);
        if (!frame) {
            lane_fail(l, UPERR_PROTOCOL, "out of memory");
            return;
        }
        handle_frame(l, frame + 4, (size_t)size);
        if (l->bev == bev)
            evbuffer_drain(in, (size_t)size + 4);
    }
    if (l->bev)
        arm_deadline(l);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct lane *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        l->state = LANE_UP;
        /* What was held while the SASL login ran (empty otherwise). */
        evbuffer_add_buffer(bufferevent_get_output(bev), l->held);
        log_debug("lane to broker %d: connected", (int)l->node_id);
        return;
    }
    if (what & UPSTREAM_EVENT_COUNTED)
        lane_fail(l, -1, "TLS or SASL login failed");
    else
        lane_fail(l, l->state == LANE_CONNECTING ? UPERR_CONNECT : UPERR_CLOSED,
                  l->state == LANE_CONNECTING ? "connect failed" : "connection closed");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lane *l = arg;
    (void)fd;
    (void)what;
    if (l->state == LANE_BACKOFF) {
        l->state = LANE_DOWN;
        if (l->head || evbuffer_get_length(l->held))
            lane_connect(l);
        return;
    }
    if (l->head && l->head->deadline_ms && clock_ms() >= l->head->deadline_ms) {
        lane_fail(l, UPERR_TIMEOUT, "request overdue");
        return;
    }
    arm_deadline(l);
}

static void lane_connect(struct lane *l)
{
    struct broker *b = proxy_broker_find(l->px, l->node_id);
    if (!b) {
        lane_fail(l, UPERR_CONNECT, "broker unknown");
        return;
    }
    l->state = LANE_CONNECTING;
    l->bev = upstream_connect(l->px, b->host, b->port, 0, read_cb, NULL, event_cb, l);
    if (!l->bev) {
        lane_fail(l, UPERR_CONNECT, "connect failed");
        return;
    }
    /* libevent writes 16 KiB per syscall by default; lanes carry MiB-sized
     * ProduceRequests. */
    bufferevent_set_max_single_write(l->bev, 1024 * 1024);
    /* With an upstream SASL login, requests wait in held until CONNECTED. The
     * deadlines below leave connect_timeout + request_timeout for that. */
    if (!upstream_sec_holds_writes(l->px->upsec))
        evbuffer_add_buffer(bufferevent_get_output(l->bev), l->held);
    stamp_deadlines(l);
    arm_deadline(l);
}

struct lane *lane_new(struct proxy *px, int32_t node_id, size_t max_bytes)
{
    struct lane *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->px = px;
    l->node_id = node_id;
    l->max_bytes = max_bytes;
    l->backoff_ms = px->cfg->upstream.reconnect_backoff_ms;
    l->state = LANE_DOWN;
    l->held = evbuffer_new();
    l->timer = evtimer_new(px->base, timer_cb, l);
    if (!l->held || !l->timer) {
        lane_free(l);
        return NULL;
    }
    return l;
}

void lane_free(struct lane *l)
{
    if (!l)
        return;
    lane_close(l);
    if (l->timer)
        event_free(l->timer);
    l->timer = NULL;
    fail_all(l);
    if (l->held)
        evbuffer_free(l->held);
    free(l);
}

int32_t lane_node_id(const struct lane *l)
{
    return l->node_id;
}

size_t lane_pending_bytes(const struct lane *l)
{
    return l->pending_bytes;
}

int32_t lane_next_correlation(struct lane *l)
{
    return l->next_corr;
}

static void free_frame(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

int lane_send(struct lane *l, uint8_t *frame, size_t len, uint64_t timeout_ms, lane_cb cb,
              void *arg)
{
    struct evbuffer *buf = evbuffer_new();
    /* By reference: a ProduceRequest of a few MiB is not copied again. */
    if (!buf || evbuffer_add_reference(buf, frame, len, free_frame, NULL)) {
        if (buf)
            evbuffer_free(buf);
        free(frame);
        return -1;
    }
    return lane_send_buffer(l, buf, timeout_ms, cb, arg);
}

int lane_send_buffer(struct lane *l, struct evbuffer *frame, uint64_t timeout_ms, lane_cb cb,
                     void *arg)
{
    struct lane_req *r = NULL;
    size_t len = evbuffer_get_length(frame);
    if ((l->pending_bytes + len > l->max_bytes && l->head) || !(r = calloc(1, sizeof(*r)))) {
        evbuffer_free(frame);
        return -1;
    }
    /* Straight onto the connection, unless it is down or still logging in. */
    int direct = l->bev && (l->state == LANE_UP || !upstream_sec_holds_writes(l->px->upsec));
    struct evbuffer *out = direct ? bufferevent_get_output(l->bev) : l->held;
    /* Moves the chains: what the frame references is not copied. */
    int moved = evbuffer_add_buffer(out, frame) == 0;
    evbuffer_free(frame);
    if (!moved) {
        free(r);
        return -1;
    }
    r->correlation_id = l->next_corr;
    l->next_corr = l->next_corr == INT32_MAX ? 0 : l->next_corr + 1;
    r->bytes = len;
    r->timeout_ms = timeout_ms;
    r->cb = cb;
    r->arg = arg;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->pending_bytes += len;
    if (l->bev) {
        /* Those before it were stamped at connect or when sent: only this
         * one (a walk over all would cost O(pending) per send). */
        r->deadline_ms = deadline(l, r, clock_ms());
        if (!evtimer_pending(l->timer, NULL))
            arm_deadline(l);
    } else if (l->state == LANE_DOWN) {
        /* Connect from the timer, so cb never runs inside lane_send. */
        l->state = LANE_BACKOFF;
        arm(l, 0);
    }
    return 0;
}
