/*
 * client.c - a client connection, its upstream twin, and the response FIFO.
 *
 * Data path, client to broker:
 *   client bytes -> frame cut (size prefix, max_frame_bytes) -> the
 *   request pipeline (request.c: header, login, validation, ACLs, route)
 *   -> the frame's chains moved (no copy) to the upstream output, or
 *   dropped when the pipeline answered it or an engine took it.
 *   Anything malformed closes the connection with one log line; nothing
 *   malformed is forwarded.
 *
 * Broker to client:
 *   upstream bytes -> frame cut -> matched against the oldest slot waiting
 *   for upstream (Kafka answers in order on a connection; the correlation id
 *   must match) -> rewritten when it carries broker addresses, ACL splits or
 *   dedup and dead-letter work -> released to the client when every earlier
 *   slot has been released. Engines answer their slots through
 *   client_slot_done.
 *
 * Backpressure: reading from one side stops while the other side's output
 * holds more than listen.buffer_bytes, and while the FIFO is full
 * (listen.max_inflight); it resumes when the output drains to half.
 *
 * The connection's state (client_int.h) is shared with login.c, request.c,
 * authorize.c and route.c.
 */
#include "client_int.h"

#include "clock.h"
#include "dedup.h"
#include "dlqprod.h"
#include "kaborted.h"
#include "kerror.h"
#include "krewrite.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "tls.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- closing ---- */

void client_close(struct client *c, int reason)
{
    g_metrics.connections_closed[reason]++;
    client_free(c);
}

void client_free(struct client *c)
{
    if (!c)
        return;
    struct proxy *px = c->px;
    if (c->head < c->tail) {
        const struct slot *h = slot_at(c, c->head);
        log_debug("client %llu (%s): closing with %llu request(s) unanswered; the oldest, %s "
                  "(correlation id %d), waited %llu ms %s",
                  (unsigned long long)c->id, c->peer, (unsigned long long)(c->tail - c->head),
                  kproto_api_name(h->api_key), (int)h->correlation_id,
                  (unsigned long long)((clock_us() - h->t0_us) / 1000),
                  h->state == SLOT_LOCAL ? "for an engine" : "for the broker");
    }
    for (uint64_t p = c->head; p < c->tail; p++) {
        struct slot *s = slot_at(c, p);
        if (s->resp)
            evbuffer_free(s->resp);
        ksplit_free(s->split);
        dlqprod_req_free(s->dj);
    }
    dlqprod_req_free(c->pending_dj);
    ksplit_free(c->held_split);
    sasl_session_free(c->sasl);
    if (c->auth_delay_ev)
        event_free(c->auth_delay_ev);
    if (c->login_ev)
        event_free(c->login_ev);
    if (c->auth_resp)
        evbuffer_free(c->auth_resp);
    free(c->repl);
    ksplit_free(c->pending_split);
    g_metrics.inflight -= (int64_t)inflight(c);
    if (px->dedup)
        dedup_client_gone(px->dedup, c->id);
    free(c->slots);
    free(c->acks0_ids);
    if (c->big_ev)
        event_free(c->big_ev);
    if (c->linger_ev)
        event_free(c->linger_ev);
    free(c->big);
    if (c->bev)
        bufferevent_free(c->bev);
    upstream_free(c->up);
    TAILQ_REMOVE(&px->clients, c, link);
    px->nclients--;
    g_metrics.connections_open--;
    log_debug("client %llu (%s): closed", (unsigned long long)c->id, c->peer);
    free(c);
    proxy_client_gone(px);
}

/* Malformed input: one log line naming what and where, then close. */
void client_protocol_error(struct client *c, const kreq_hdr_t *h, size_t off, const char *what)
{
    if (h)
        log_warn("client %llu (%s): closing: %s (api %s v%d, correlation id %d, offset %zu)",
                 (unsigned long long)c->id, c->peer, what, kproto_api_name(h->api_key),
                 h->api_version, h->correlation_id, off);
    else
        log_warn("client %llu (%s): closing: %s", (unsigned long long)c->id, c->peer, what);
    client_close(c, CLOSE_PROTOCOL);
}

static void upstream_failed(struct client *c, int kind, const char *what)
{
    g_metrics.upstream_errors[kind]++;
    log_info("client %llu (%s): upstream %s; closing", (unsigned long long)c->id, c->peer, what);
    client_close(c, CLOSE_UPSTREAM);
}

static void start_linger(struct client *c, int reason);

/*
 * The broker connection of c failed (or never came up), but an engine (the
 * upgrade or transactions), which writes on connections of its own, still
 * owes c answers that come before any request the dead connection would
 * have answered. Closing now would make
 * the client resend records eosproxy may already have written; librdkafka
 * even puts them into new batches with newer records, which no retry check
 * can match, so they would land twice. So c stops reading and stays open
 * until those answers are out (maybe_finish_hold), then closes. Returns 1
 * when c is held.
 */
static int hold_for_upgrade(struct client *c, enum upstream_err_kind kind, const char *what)
{
    size_t owed = 0;
    for (uint64_t p = c->head; p < c->tail; p++) {
        uint8_t st = slot_at(c, p)->state;
        if (st == SLOT_UPSTREAM)
            break;
        owed += st == SLOT_LOCAL;
    }
    if (owed == 0)
        return 0;
    g_metrics.upstream_errors[kind]++;
    log_info("client %llu (%s): upstream %s; closing once the %zu Produce answers eosproxy's "
             "engines owe it are out",
             (unsigned long long)c->id, c->peer, what, owed);
    upstream_free(c->up);
    c->up = NULL;
    c->up_dead = 1;
    c->draining = 1;
    client_update_read(c);
    return 1;
}

/* Closes a held client (hold_for_upgrade) once nothing more can reach it:
 * the head of its FIFO is a request the dead connection owed, or nothing. */
static int maybe_finish_hold(struct client *c)
{
    if (!c->up_dead || c->lingering)
        return 0;
    if (c->head < c->tail && slot_at(c, c->head)->state == SLOT_LOCAL)
        return 0;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return 0; /* client_write_cb comes back when it is out */
    client_close(c, CLOSE_UPSTREAM);
    return 1;
}

/* Closes the client if it is draining and has nothing left to send. */
int client_maybe_finish_drain(struct client *c)
{
    if (!c->draining || c->lingering || inflight(c) ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return 0;
    /* flushes what the client sent that needs no answer */
    start_linger(c, c->auth_failed ? CLOSE_AUTH : CLOSE_DRAIN);
    return 1;
}

/* ---- flow control ---- */

/*
 * PAUSE_UPCONNECT only stops frame processing: the socket stays readable
 * (a TLS handshake may still be running) and the input is bounded by a
 * read watermark instead.
 */
void client_update_read(struct client *c)
{
    if ((c->read_pause & ~PAUSE_UPCONNECT) || c->draining || c->big)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

void client_pause(struct client *c, int why)
{
    if (!(c->read_pause & why))
        g_metrics.backpressure_pauses++;
    c->read_pause |= why;
    client_update_read(c);
}

void client_resume(struct client *c, int why)
{
    if (!(c->read_pause & why))
        return;
    c->read_pause &= ~why;
    client_update_read(c);
    /* Frames may already be buffered: process them without waiting for more bytes. */
    if (!c->read_pause && !c->draining && !c->big &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) >= 4)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void pause_upstream(struct client *c)
{
    if (!c->up_paused) {
        g_metrics.backpressure_pauses++;
        c->up_paused = 1;
        bufferevent_disable(c->up, EV_READ);
    }
}

static void resume_upstream(struct client *c)
{
    if (!c->up || !c->up_paused)
        return;
    c->up_paused = 0;
    bufferevent_enable(c->up, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->up)) >= 4)
        bufferevent_trigger(c->up, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- the response FIFO ---- */

void client_free_detached(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* A response built in w, handed over without a copy (w is reset). */
static struct evbuffer *evbuffer_from_writer(kwriter_t *w)
{
    size_t n;
    uint8_t *buf = kw_detach(w, &n);
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_reference(out, buf, n, client_free_detached, NULL);
    return out;
}

struct slot *client_slot_push(struct client *c, const kreq_hdr_t *h, int state)
{
    struct slot *s = slot_at(c, c->tail++);
    s->correlation_id = h->correlation_id;
    s->api_key = h->api_key;
    s->api_version = h->api_version;
    s->state = (uint8_t)state;
    s->resp = NULL;
    s->t0_us = clock_us();
    s->split = c->pending_split;
    c->pending_split = NULL;
    s->hide_topics = (uint8_t)c->pending_hide;
    c->pending_hide = 0;
    s->drop_aborted = (uint8_t)c->pending_drop_aborted;
    c->pending_drop_aborted = 0;
    s->dj = c->pending_dj;
    c->pending_dj = NULL;
    g_metrics.inflight++;
    return s;
}

/* Releases every ready slot at the head of the FIFO to the client. */
static void flush_ready(struct client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->head < c->tail) {
        struct slot *s = slot_at(c, c->head);
        if (s->state != SLOT_READY)
            break;
        if (s->resp) {
            g_metrics.response_bytes += evbuffer_get_length(s->resp);
            evbuffer_add_buffer(out, s->resp);
            evbuffer_free(s->resp);
            s->resp = NULL;
        }
        ksplit_free(s->split);
        s->split = NULL;
        dlqprod_req_free(s->dj);
        s->dj = NULL;
        c->head++;
        g_metrics.inflight--;
    }
    if (inflight(c) < c->cap)
        client_resume(c, PAUSE_INFLIGHT);
}

/*
 * The broker's answer to a request auth.acls split, plus the denied topics
 * answered with TOPIC_AUTHORIZATION_FAILED. Returns the merged response
 * (resp freed) or resp unchanged when it cannot be merged (logged).
 */
static struct evbuffer *merge_split(struct client *c, struct slot *s, struct evbuffer *resp)
{
    size_t len = evbuffer_get_length(resp);
    const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
    kwriter_t w;
    kw_init(&w, len + 256);
    if (!p || ksplit_merge(s->split, p + 4, len - 4, KERR_TOPIC_AUTHORIZATION_FAILED, &w)) {
        kw_free(&w);
        log_warn("client %llu (%s): cannot add the denied topics to a %s response",
                 (unsigned long long)c->id, c->peer, kproto_api_name(s->api_key));
        return resp;
    }
    evbuffer_free(resp);
    return evbuffer_from_writer(&w);
}

/* A Metadata response without the topics the user may neither produce to
 * nor consume from (resp freed), or resp unchanged if it cannot be read. */
static struct evbuffer *hide_topics(struct client *c, const struct slot *s, struct evbuffer *resp)
{
    size_t len = evbuffer_get_length(resp), removed = 0;
    const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
    kwriter_t w;
    kw_init(&w, len);
    if (!p || ksplit_filter_metadata(s->api_version, p + 4, len - 4, authorize_describe, c, &w,
                                     &removed)) {
        kw_free(&w);
        log_warn("client %llu (%s): cannot hide denied topics in a Metadata response",
                 (unsigned long long)c->id, c->peer);
        return resp;
    }
    g_metrics.acl_denied[KAPI_Metadata] += removed;
    evbuffer_free(resp);
    return evbuffer_from_writer(&w);
}

/*
 * A ProduceResponse with the partitions dlqprod took out of the request
 * answered as it decided (resp freed), or resp unchanged when there are
 * none or it cannot be read (logged).
 */
static struct evbuffer *merge_dlq(struct client *c, struct slot *s, struct evbuffer *resp)
{
    if (!dlqprod_req_answers(s->dj))
        return resp;
    size_t len = evbuffer_get_length(resp);
    const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
    kwriter_t w;
    kw_init(&w, len + 256);
    if (!p || dlqprod_req_merge(s->dj, s->api_version, s->correlation_id, p + 4, len - 4, &w)) {
        kw_free(&w);
        log_warn("client %llu (%s): cannot add the partitions eosproxy answers to a Produce "
                 "response",
                 (unsigned long long)c->id, c->peer);
        return resp;
    }
    evbuffer_free(resp);
    return evbuffer_from_writer(&w);
}

/* Marks s answered with resp (ownership taken) and releases what it can. */
void client_slot_complete(struct client *c, struct slot *s, struct evbuffer *resp)
{
    if (s->hide_topics && resp)
        resp = hide_topics(c, s, resp);
    if (s->split && resp)
        resp = merge_split(c, s, resp);
    if (s->dj && resp)
        resp = merge_dlq(c, s, resp);
    dlqprod_req_free(s->dj);
    s->dj = NULL;
    metrics_observe_latency(s->api_key, clock_us() - s->t0_us);
    s->state = SLOT_READY;
    s->resp = resp;
    flush_ready(c);
}

/* Queues a locally built response (in w, freed here) as a ready slot. */
void client_answer_local(struct client *c, const kreq_hdr_t *h, kwriter_t *w)
{
    struct evbuffer *resp = evbuffer_new();
    evbuffer_add(resp, w->buf, w->len);
    kw_free(w);
    g_metrics.local_responses++;
    client_slot_complete(c, client_slot_push(c, h, SLOT_READY), resp);
}

/* The oldest slot waiting for the upstream, or NULL. */
static struct slot *next_upstream_slot(struct client *c)
{
    if (c->up_next < c->head)
        c->up_next = c->head;
    while (c->up_next < c->tail) {
        struct slot *s = slot_at(c, c->up_next);
        if (s->state == SLOT_UPSTREAM)
            return s;
        c->up_next++;
    }
    return NULL;
}

/* ---- requests ---- */

/* The open connection with this id, or NULL once it has gone. */
struct client *client_find(struct proxy *px, uint64_t id)
{
    struct client *c;
    TAILQ_FOREACH(c, &px->clients, link)
    {
        if (c->id == id)
            return c;
    }
    return NULL;
}

/*
 * Books what the upstream will answer for a forwarded request: a slot in
 * the FIFO, or for an acks=0 Produce nothing (but its correlation id is
 * queued; see acks0_ids).
 */
void client_expect_response(struct client *c, const kreq_hdr_t *h, int acks)
{
    if (acks != 0) {
        client_slot_push(c, h, SLOT_UPSTREAM);
        return;
    }
    if (!c->acks0_ids && !(c->acks0_ids = malloc(ACKS0_CAP * sizeof(*c->acks0_ids))))
        return;
    if (c->acks0_count == ACKS0_CAP) { /* a broker that never answers: forget the oldest */
        c->acks0_head++;
        c->acks0_count--;
    }
    c->acks0_ids[(c->acks0_head + c->acks0_count++) % ACKS0_CAP] = h->correlation_id;
}

/*
 * 1 if corr answers a queued acks=0 Produce. Servers that answer them do so
 * in order, so older queued ids without a match are dropped on the way.
 */
static int take_acks0(struct client *c, int32_t corr)
{
    for (uint32_t i = 0; i < c->acks0_count; i++) {
        if (c->acks0_ids[(c->acks0_head + i) % ACKS0_CAP] == corr) {
            c->acks0_head += i + 1;
            c->acks0_count -= i + 1;
            return 1;
        }
    }
    return 0;
}

int client_slot_waiting(struct proxy *px, uint64_t client_id, uint64_t token)
{
    struct client *c = client_find(px, client_id);
    return c && token >= c->head && token < c->tail && slot_at(c, token)->state == SLOT_LOCAL;
}

void client_slot_done(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp)
{
    struct client *c = client_find(px, client_id);
    if (!c || token < c->head || token >= c->tail || slot_at(c, token)->state != SLOT_LOCAL) {
        if (resp)
            evbuffer_free(resp); /* the client has gone */
        return;
    }
    if (!resp) {
        client_protocol_error(c, NULL, 0, "no response for an upgraded Produce request");
        return;
    }
    struct slot *s = slot_at(c, token);
    if (s->dj && dlqprod_req_keeps(s->dj)) {
        /* The engine's answer may name batches the broker refused for good. */
        size_t len = evbuffer_get_length(resp);
        const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
        struct dlqprod *dp = route_dlq_engine(px);
        struct dlqprod_req *r = s->dj;
        s->dj = NULL;
        if (p && dp && dlqprod_response(dp, r, s->api_version, p + 4, len - 4, client_id, token)) {
            evbuffer_free(resp);
            return;
        }
        s->dj = r;
    }
    g_metrics.local_responses++;
    client_slot_complete(c, s, resp);
    maybe_finish_hold(c);
}

/*
 * Moves a checked request frame (size bytes after the prefix, at the head
 * of in, or the rewritten c->repl) to the upstream output, or drops it.
 */
static void forward_or_drop(struct client *c, struct evbuffer *in, size_t size, int rc)
{
    if (c->repl) {
        evbuffer_drain(in, size + 4);
        if (rc == REQ_FORWARD)
            evbuffer_add_reference(bufferevent_get_output(c->up), c->repl, c->repl_len,
                                   client_free_detached, NULL);
        else
            free(c->repl);
        c->repl = NULL;
        c->repl_len = 0;
        return;
    }
    if (rc == REQ_FORWARD)
        evbuffer_remove_buffer(in, bufferevent_get_output(c->up), size + 4);
    else
        evbuffer_drain(in, size + 4);
}

/*
 * Handles one complete request frame of size bytes (after the prefix) at
 * the head of in. Returns 0 to go on, -1 if the client was closed.
 */
static int handle_request(struct client *c, struct evbuffer *in, size_t size)
{
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    if (!p) {
        client_protocol_error(c, NULL, 0, "out of memory");
        return -1;
    }
    int rc = request_check(c, p + 4, size);
    if (rc == REQ_CLOSED)
        return -1;
    forward_or_drop(c, in, size, rc);
    return 0;
}

/*
 * Large frames are read straight from the socket into one buffer of their
 * own size: libevent 2.1 reads at most 4 KiB per wake-up, and assembling a
 * 1 MiB Produce request from 4 KiB chains would cost a syscall per chain
 * and a copy of the whole frame to make it contiguous. The buffer is then
 * validated in place and handed to the upstream output without a copy.
 * While it fills, the bufferevent does not read, so no byte of the next
 * frame is consumed early.
 */
static void big_frame_done(struct client *c)
{
    uint8_t *buf = c->big;
    size_t len = c->big_len;
    c->big = NULL;
    c->big_len = c->big_have = 0;
    event_del(c->big_ev);
    c->offer = &buf; /* NULL after the check when an engine took it */
    int rc = request_check(c, buf + 4, len - 4);
    if (rc == REQ_CLOSED) {
        free(buf);
        return;
    }
    c->offer = NULL;
    if (c->repl) {
        struct evbuffer *tmp = evbuffer_new();
        evbuffer_add_reference(tmp, buf, len, client_free_detached, NULL);
        forward_or_drop(c, tmp, len - 4, rc);
        evbuffer_free(tmp);
    } else if (rc == REQ_FORWARD) {
        evbuffer_add_reference(bufferevent_get_output(c->up), buf, len, client_free_detached, NULL);
    } else {
        free(buf);
    }
    client_update_read(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= 4)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void big_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    if (what & EV_TIMEOUT) {
        log_info("client %llu (%s): stalled mid-request, closing", (unsigned long long)c->id,
                 c->peer);
        client_close(c, CLOSE_IDLE);
        return;
    }
    ssize_t n = read(fd, c->big + c->big_have, c->big_len - c->big_have);
    if (n == 0) {
        start_linger(c, CLOSE_NORMAL); /* a partial frame is dropped; the rest is flushed */
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        client_close(c, CLOSE_NORMAL);
        return;
    }
    if (n < 0)
        return;
    c->big_have += (size_t)n;
    if (c->big_have == c->big_len)
        big_frame_done(c);
}

/* Starts reading a frame of total length len (prefix included), of which
 * everything in the input buffer is the beginning. Returns -1 if closed. */
static int big_frame_start(struct client *c, struct evbuffer *in, size_t len)
{
    c->big = malloc(len);
    if (!c->big) {
        client_protocol_error(c, NULL, 0, "out of memory for a large frame");
        return -1;
    }
    c->big_len = len;
    c->big_have = evbuffer_get_length(in);
    evbuffer_remove(in, c->big, c->big_have);
    bufferevent_disable(c->bev, EV_READ);
    uint64_t idle = c->px->cfg->listen.idle_timeout_ms;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)((idle % 1000) * 1000)};
    event_add(c->big_ev, idle ? &tv : NULL);
    return 0;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t high = (size_t)c->px->cfg->listen.buffer_bytes;

    while (!c->draining && !c->big &&
           !(c->read_pause & (PAUSE_UPCONNECT | PAUSE_AUTH | PAUSE_DLQ))) {
        if (inflight(c) >= c->cap) {
            client_pause(c, PAUSE_INFLIGHT);
            break;
        }
        if (c->up && evbuffer_get_length(bufferevent_get_output(c->up)) > high) {
            client_pause(c, PAUSE_UP_FULL);
            break;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail < 4)
            break;
        uint8_t szb[4];
        evbuffer_copyout(in, szb, 4);
        int32_t size = kbe32(szb);
        /* Before login, frames are small: a raw SASL token, or a request of the exchange. */
        uint64_t max_frame = c->authed ? c->px->cfg->listen.max_frame_bytes : MAX_SASL_FRAME;
        if (c->raw_tokens && size >= 0 && (uint64_t)size <= max_frame) {
            if (avail < (size_t)size + 4)
                return;
            if (login_raw_token(c, in, (size_t)size))
                return;
            continue;
        }
        if (size < KPROTO_MIN_REQUEST || (uint64_t)size > max_frame) {
            char msg[96];
            snprintf(msg, sizeof(msg), "frame size %d outside [%d, %llu]", size, KPROTO_MIN_REQUEST,
                     (unsigned long long)max_frame);
            client_protocol_error(c, NULL, 0, msg);
            return;
        }
        if (avail < (size_t)size + 4) {
            if ((size_t)size + 4 >= BIG_FRAME && c->big_ev)
                big_frame_start(c, in, (size_t)size + 4);
            return;
        }
        if (handle_request(c, in, (size_t)size))
            return;
    }
}

/* ---- responses ---- */

/* Rewrites broker addresses in a response frame at the head of in. */
static struct evbuffer *rewrite_response(struct client *c, struct slot *s, struct evbuffer *in,
                                         size_t size)
{
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    kwriter_t w;
    kw_init(&w, size + 256);
    const char *why = "out of memory";
    if (!p || krewrite_response(s->api_key, s->api_version, p + 4, size, proxy_map_endpoint, c->px,
                                &w, &why)) {
        kw_free(&w);
        log_warn("client %llu (%s): bad %s v%d response from broker: %s", (unsigned long long)c->id,
                 c->peer, kproto_api_name(s->api_key), s->api_version, why);
        return NULL;
    }
    evbuffer_drain(in, size + 4);
    g_metrics.rewritten_responses++;
    return evbuffer_from_writer(&w);
}

/*
 * A Fetch eosproxy raised to read_committed for a read_uncommitted client:
 * the batches of aborted transactions the broker still sends are replaced
 * by empty ones (the client would not drop them itself). The frame at the
 * head of in is replaced in place; *size becomes the new frame's. Returns
 * 0, or -1 when the response is malformed (c is closed).
 */
static int drop_aborted(struct client *c, const struct slot *s, struct evbuffer *in, size_t *size)
{
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(*size + 4));
    kwriter_t w;
    kw_init(&w, *size + 64);
    size_t dropped = 0;
    int rc = p ? kaborted_filter(s->api_version, p + 4, *size, &w, &dropped) : -1;
    if (rc < 0) {
        kw_free(&w);
        log_warn("client %llu (%s): bad Fetch v%d response from broker", (unsigned long long)c->id,
                 c->peer, s->api_version);
        upstream_failed(c, UPERR_PROTOCOL, "sent a malformed response");
        return -1;
    }
    if (rc == 1) {
        evbuffer_drain(in, *size + 4);
        if (evbuffer_prepend(in, w.buf, w.len)) {
            kw_free(&w);
            upstream_failed(c, UPERR_PROTOCOL, "out of memory");
            return -1;
        }
        *size = w.len - 4;
        g_metrics.txn_fetch_aborted_batches += dropped;
    }
    kw_free(&w);
    return 0;
}

/*
 * Consumer dedup hooks on the response side: a Fetch response may be taken
 * by the dedup engine (the slot then waits for client_slot_done), and a
 * commit response tells the engine which deliveries are done. Returns 1 if
 * the frame was consumed, 0 to go on as usual, -1 if c was closed.
 */
static int dedup_response(struct client *c, struct slot *s, uint64_t pos, struct evbuffer *in,
                          size_t size)
{
    int16_t api = s->api_key;
    if (api != KAPI_Fetch && api != KAPI_OffsetCommit && api != KAPI_TxnOffsetCommit &&
        api != KAPI_EndTxn)
        return 0;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    if (!p) {
        upstream_failed(c, UPERR_PROTOCOL, "out of memory");
        return -1;
    }
    if (api == KAPI_EndTxn) {
        dedup_endtxn_response(c->px->dedup, s->api_version, p + 4, size, c->id, s->correlation_id);
        return 0;
    }
    if (api != KAPI_Fetch) {
        dedup_commit_response(c->px->dedup, api, s->api_version, p + 4, size, c->id,
                              s->correlation_id);
        return 0;
    }
    int rc = dedup_fetch_response(c->px->dedup, s->api_version, p + 4, size, c->id, pos);
    if (rc < 0) {
        upstream_failed(c, UPERR_PROTOCOL, "sent a malformed Fetch response");
        return -1;
    }
    if (rc == 0)
        return 0;
    evbuffer_drain(in, size + 4);
    s->state = SLOT_LOCAL;
    return 1;
}

/*
 * A ProduceResponse to a request whose batches dlqprod keeps: when the
 * broker refused some for good, the engine takes the response (the slot
 * then waits for client_slot_done). Returns 1 if taken.
 */
static int dlq_response(struct client *c, struct slot *s, uint64_t pos, struct evbuffer *in,
                        size_t size)
{
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    struct dlqprod *dp = route_dlq_engine(c->px);
    struct dlqprod_req *r = s->dj;
    s->dj = NULL;
    if (p && dp && dlqprod_response(dp, r, s->api_version, p + 4, size, c->id, pos)) {
        evbuffer_drain(in, size + 4);
        s->state = SLOT_LOCAL;
        return 1;
    }
    s->dj = r;
    return 0;
}

/* Handles one complete response frame. Returns 0, or -1 if c was closed. */
static int handle_response(struct client *c, struct evbuffer *in, size_t size)
{
    uint8_t hdr[8];
    evbuffer_copyout(in, hdr, 8);
    int32_t corr = kbe32(hdr + 4);
    struct slot *s = next_upstream_slot(c);
    if ((!s || s->correlation_id != corr) && take_acks0(c, corr)) {
        g_metrics.acks0_responses_dropped++;
        evbuffer_drain(in, size + 4);
        return 0;
    }
    if (!s || s->correlation_id != corr) {
        log_warn("client %llu (%s): broker sent correlation id %d, expected %d",
                 (unsigned long long)c->id, c->peer, corr, s ? s->correlation_id : -1);
        upstream_failed(c, UPERR_PROTOCOL, "response out of order");
        return -1;
    }
    uint64_t pos = c->up_next++;
    if (s->drop_aborted && drop_aborted(c, s, in, &size))
        return -1;
    if (c->px->dedup) {
        int rc = dedup_response(c, s, pos, in, size);
        if (rc)
            return rc < 0 ? -1 : 0;
    }
    if (s->dj && dlqprod_req_keeps(s->dj) && dlq_response(c, s, pos, in, size))
        return 0;
    if (krewrite_needed(s->api_key)) {
        struct evbuffer *resp = rewrite_response(c, s, in, size);
        if (!resp) {
            upstream_failed(c, UPERR_PROTOCOL, "sent a malformed response");
            return -1;
        }
        client_slot_complete(c, s, resp);
        return 0;
    }
    if (s == slot_at(c, c->head) && !s->split && !s->dj) {
        /* Fast path: it is next in line, so move it straight to the client. */
        metrics_observe_latency(s->api_key, clock_us() - s->t0_us);
        g_metrics.response_bytes += size + 4;
        evbuffer_remove_buffer(in, bufferevent_get_output(c->bev), size + 4);
        s->state = SLOT_READY;
        flush_ready(c);
        return 0;
    }
    struct evbuffer *resp = evbuffer_new();
    evbuffer_remove_buffer(in, resp, size + 4);
    client_slot_complete(c, s, resp);
    return 0;
}

static void upstream_read_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->lingering) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t high = (size_t)c->px->cfg->listen.buffer_bytes;

    for (;;) {
        if (evbuffer_get_length(out) > high) {
            pause_upstream(c);
            break;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail < 8)
            break;
        uint8_t szb[4];
        evbuffer_copyout(in, szb, 4);
        int32_t size = kbe32(szb);
        if (size < 4 || (uint64_t)size > MAX_RESPONSE_BYTES) {
            upstream_failed(c, UPERR_PROTOCOL, "sent a bad frame size");
            return;
        }
        if (avail < (size_t)size + 4) {
            bufferevent_setwatermark(bev, EV_READ, (size_t)size + 4, 0);
            return;
        }
        if (handle_response(c, in, (size_t)size))
            return;
    }
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    client_maybe_finish_drain(c);
}

/* ---- write-side and events ---- */

/* Client output drained below the low watermark. */
static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    (void)bev;
    if (maybe_finish_hold(c) || client_maybe_finish_drain(c))
        return;
    resume_upstream(c);
}

/* Upstream output drained below the low watermark. */
static void upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    if (c->lingering) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            shutdown(bufferevent_getfd(bev), SHUT_WR);
        return;
    }
    client_resume(c, PAUSE_UP_FULL);
}

static void linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    log_info("client %llu (%s): broker did not finish within the linger time",
             (unsigned long long)c->id, c->peer);
    client_close(c, c->linger_reason);
}

/*
 * The client closed. What it sent may still sit in the upstream output
 * (an acks=0 producer closes right after its last write), and closing the
 * broker socket with responses unread would reset it, which makes the
 * broker drop requests it has not read yet. So: stop serving the client,
 * write out everything it sent, shut down the sending side, and read and
 * discard the broker's answers until it closes, for at most
 * LINGER_TIMEOUT_MS.
 */
static void start_linger(struct client *c, int reason)
{
    if (!c->up || !c->up_connected ||
        !(c->linger_ev = evtimer_new(c->px->base, linger_timeout_cb, c))) {
        client_close(c, reason);
        return;
    }
    c->lingering = 1;
    c->linger_reason = reason;
    c->draining = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->big_ev)
        event_del(c->big_ev);
    struct timeval tv = {LINGER_TIMEOUT_MS / 1000, (LINGER_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(c->linger_ev, &tv);
    c->up_paused = 0;
    bufferevent_setwatermark(c->up, EV_READ, 0, 0);
    bufferevent_setwatermark(c->up, EV_WRITE, 0, 0);
    bufferevent_enable(c->up, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(c->up)) == 0)
        shutdown(bufferevent_getfd(c->up), SHUT_WR);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;
    if (what & BEV_EVENT_CONNECTED) { /* the TLS handshake is done */
        char name[128];
        c->tls_up = 1;
        g_metrics.tls_handshakes++;
        tls_note_ktls(bev, TLS_SIDE_CLIENT);
        log_debug("client %llu (%s): TLS established (peer certificate: %s)",
                  (unsigned long long)c->id, c->peer, tls_peer_name(bev, name, sizeof(name)));
        return;
    }
    if (c->tls && !c->tls_up && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        char why[256];
        log_info("client %llu (%s): TLS handshake failed: %s", (unsigned long long)c->id, c->peer,
                 tls_describe_error(bev, why, sizeof(why)));
        client_close(c, CLOSE_TLS);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (inflight(c) == 0) {
            log_info("client %llu (%s): idle, closing", (unsigned long long)c->id, c->peer);
            client_close(c, CLOSE_IDLE);
        } else {
            client_update_read(c); /* a long poll is not idleness */
        }
        return;
    }
    if (what & BEV_EVENT_EOF)
        start_linger(c, CLOSE_NORMAL);
    else if (what & BEV_EVENT_ERROR)
        client_close(c, CLOSE_NORMAL);
}

static void upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->up_connected = 1;
        bufferevent_set_timeouts(bev, NULL, NULL);
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (c->read_pause & PAUSE_UPCONNECT) {
            bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
            client_resume(c, PAUSE_UPCONNECT);
        }
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->lingering)
            client_close(c, c->linger_reason);
        else if (what & UPSTREAM_EVENT_COUNTED) /* TLS or login failure: logged and counted */
            client_close(c, CLOSE_UPSTREAM);
        else if (!c->up_connected) {
            if (!hold_for_upgrade(c, UPERR_CONNECT, "connect failed"))
                upstream_failed(c, UPERR_CONNECT, "connect failed");
        } else if (!hold_for_upgrade(c, UPERR_CLOSED, "closed the connection"))
            upstream_failed(c, UPERR_CLOSED, "closed the connection");
    }
}

/* ---- setup ---- */

/* "ip:port" into c->peer, the address alone into c->peer_ip, and whether it is loopback. */
static void describe_peer(struct client *c, const struct sockaddr *sa)
{
    char *host = c->peer_ip;
    snprintf(host, sizeof(c->peer_ip), "?");
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(c->peer_ip));
        port = ntohs(in->sin_port);
        c->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(c->peer_ip));
        port = ntohs(in6->sin6_port);
        const uint8_t *a = in6->sin6_addr.s6_addr;
        c->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
                      (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
}

/* The client side's bufferevent: TLS (accepting) when listen.tls is set. */
static struct bufferevent *client_bev_new(struct client *c, evutil_socket_t fd)
{
    struct proxy *px = c->px;
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (!px->tls_ctx)
        return bufferevent_socket_new(px->base, fd, opts);
    SSL *ssl = SSL_new(px->tls_ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(px->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, opts);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->tls = 1;
    return bev;
}

/* Picks the broker a bootstrap client is relayed to (round-robin). */
static struct broker *pick_bootstrap_broker(struct proxy *px)
{
    if (px->nbrokers == 0)
        return NULL;
    return px->brokers[px->next_bootstrap++ % px->nbrokers];
}

int client_connect_upstream(struct client *c)
{
    struct proxy *px = c->px;
    struct broker *b = c->broker ? c->broker : pick_bootstrap_broker(px);
    if (!b)
        return -1;
    c->up_broker = b;
    /* With upstream SASL nothing may be written before the login is done. */
    if (upstream_sec_holds_writes(px->upsec)) {
        c->read_pause |= PAUSE_UPCONNECT;
        bufferevent_setwatermark(c->bev, EV_READ, 0, (size_t)px->cfg->listen.buffer_bytes);
    }
    c->up = upstream_connect(px, b->host, b->port, BEV_OPT_DEFER_CALLBACKS, upstream_read_cb,
                             upstream_write_cb, upstream_event_cb, c);
    if (!c->up)
        return -1;
    size_t high = (size_t)px->cfg->listen.buffer_bytes;
    bufferevent_set_max_single_write(c->up, MAX_SINGLE_WRITE);
    bufferevent_setwatermark(c->up, EV_WRITE, high / 2, 0);
    uint64_t ms = px->cfg->upstream.connect_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    bufferevent_set_timeouts(c->up, &tv, &tv);
    bufferevent_enable(c->up, EV_READ | EV_WRITE);
    return 0;
}

struct client *client_new(struct proxy *px, evutil_socket_t fd, const struct sockaddr *sa,
                          int socklen, struct broker *b)
{
    (void)socklen;
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return NULL;
    }
    c->id = ++px->next_client_id;
    c->px = px;
    c->broker = b;
    c->cap = (uint32_t)px->cfg->listen.max_inflight;
    c->slots = calloc(c->cap, sizeof(*c->slots));
    describe_peer(c, sa);
    TAILQ_INSERT_TAIL(&px->clients, c, link);
    px->nclients++;
    g_metrics.connections_open++;
    g_metrics.connections_accepted++;

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    c->bev = client_bev_new(c, fd);
    /* With authentication the upstream connection waits for the login:
     * a stranger costs no broker connection. */
    if (!c->slots || !c->bev || login_setup(c) || (c->authed && client_connect_upstream(c))) {
        if (!c->bev)
            evutil_closesocket(fd);
        log_warn("client %llu (%s): cannot set up the connection", (unsigned long long)c->id,
                 c->peer);
        client_close(c, CLOSE_UPSTREAM);
        return NULL;
    }
    /* TLS records cannot be read around the bufferevent: no direct large-frame reads. */
    if (!c->tls && !(c->big_ev = event_new(px->base, fd, EV_READ | EV_PERSIST, big_read_cb, c))) {
        client_close(c, CLOSE_UPSTREAM);
        return NULL;
    }
    bufferevent_set_max_single_write(c->bev, MAX_SINGLE_WRITE);
    size_t high = (size_t)px->cfg->listen.buffer_bytes;
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, high / 2, 0);
    uint64_t idle = px->cfg->listen.idle_timeout_ms;
    if (idle) {
        struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)((idle % 1000) * 1000)};
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    log_debug("client %llu (%s): accepted for %s", (unsigned long long)c->id, c->peer,
              b ? "a broker" : "bootstrap");
    return c;
}

void client_resume_upgrade_paused(struct proxy *px)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&px->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        client_resume(c, PAUSE_UPGRADE);
    }
}

void client_drain_all(struct proxy *px)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&px->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        c->draining = 1;
        client_update_read(c);
        client_maybe_finish_drain(c);
    }
}

void client_free_all(struct proxy *px)
{
    struct client *c;
    while ((c = TAILQ_FIRST(&px->clients)))
        client_close(c, CLOSE_DRAIN);
}
