/*
 * client.c - a client connection, its upstream twin, and the response FIFO.
 *
 * Data path, client to broker:
 *   client bytes -> frame cut (size prefix, max_frame_bytes) -> request
 *   header parsed -> version checked against the negotiated table -> body
 *   validated -> the frame's chains moved (no copy) to the upstream output.
 *   ApiVersions is answered here. Anything malformed closes the connection
 *   with one log line; nothing malformed is forwarded.
 *
 * Broker to client:
 *   upstream bytes -> frame cut -> matched against the oldest slot waiting
 *   for upstream (Kafka answers in order on a connection; the correlation id
 *   must match) -> rewritten when it carries broker addresses -> released
 *   to the client when every earlier slot has been released.
 *
 * Backpressure: reading from one side stops while the other side's output
 * holds more than listen.buffer_bytes, and while the FIFO is full
 * (listen.max_inflight); it resumes when the output drains to half.
 */
#include "client.h"

#include "../policy/acl.h"
#include "authworker.h"
#include "clock.h"
#include "dlqprod.h"
#include "kaborted.h"
#include "kcommit.h"
#include "kerror.h"
#include "kfetch.h"
#include "kproduce.h"
#include "kproto.h"
#include "krecord.h"
#include "krewrite.h"
#include "ksasl.h"
#include "ksplit.h"
#include "log.h"
#include "metrics.h"
#include "dedup.h"
#include "proxy.h"
#include "sasl.h"
#include "tls.h"
#include "txn.h"
#include "upgrade.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <unistd.h>

/* Responses are trusted more than requests but still bounded. */
#define MAX_RESPONSE_BYTES ((uint64_t)1 << 30)
/* How long a closed client's upstream may take to finish (start_linger). */
#define LINGER_TIMEOUT_MS 5000
/* How many acks=0 Produce correlation ids a connection remembers. */
#define ACKS0_CAP 4096
/* Request frames at least this large are read directly (see big_frame_start). */
#define BIG_FRAME (64 * 1024)
/* Bytes one write may send; libevent's default of 16 KiB costs a syscall each. */
#define MAX_SINGLE_WRITE (1024 * 1024)
/* Largest SASL token accepted before authentication (raw or in SaslAuthenticate). */
#define MAX_SASL_FRAME (64 * 1024)

/* Why reading from the client is paused (bit set). */
enum {
    PAUSE_INFLIGHT = 1,  /* FIFO full */
    PAUSE_UP_FULL = 2,   /* upstream output over the watermark */
    PAUSE_UPGRADE = 4,   /* the upgrade engine holds too much */
    PAUSE_UPCONNECT = 8, /* upstream login (SASL) still running: nothing may be written yet */
    PAUSE_AUTH = 16,     /* a client password is being checked */
    PAUSE_DLQ = 32,      /* a Produce waits for its DLQ writes (dlqprod): nothing may pass it */
};

enum slot_state {
    SLOT_UPSTREAM = 1, /* forwarded; the broker's response will fill it */
    SLOT_READY = 2,    /* response ready, waiting for earlier slots */
    SLOT_LOCAL = 3,    /* eosproxy answers it later (the upgrade engine) */
};

/* One request awaiting its response, in request order. */
struct slot {
    int32_t correlation_id;
    int16_t api_key;
    int16_t api_version;
    uint8_t state;
    struct evbuffer *resp; /* SLOT_READY and not yet released */
    uint64_t t0_us;
    ksplit_t *split;        /* topics auth.acls took out; answered in the response */
    uint8_t hide_topics;    /* Metadata: leave out topics the user may not use */
    uint8_t drop_aborted;   /* Fetch raised to read_committed: aborted batches go (kaborted.h) */
    struct dlqprod_req *dj; /* Produce: partitions dlqprod answers or keeps for the response */
};

struct client {
    TAILQ_ENTRY(client) link;
    uint64_t id;
    struct proxy *px;
    struct broker *broker;    /* NULL: bootstrap listener */
    struct broker *up_broker; /* the broker its upstream connection goes to */
    struct bufferevent *bev;  /* client side */
    struct bufferevent *up;   /* upstream side */
    char peer[64];

    struct slot *slots; /* ring of cap slots */
    uint32_t cap;
    uint64_t head, tail; /* absolute positions; head = oldest unreleased */
    uint64_t up_next;    /* oldest slot that may be waiting for upstream */

    int read_pause; /* PAUSE_* bits for the client side */
    int up_paused;  /* upstream reading paused: client output full */
    int draining;   /* stop reading; close once everything is out */
    int up_connected;
    int up_dead; /* the broker connection failed; held for upgrade answers (hold_for_upgrade) */
    int read_committed; /* a Fetch named a transactional topic: every Fetch is read_committed */

    /* Correlation ids of recent acks=0 Produce requests. Brokers send no
     * response to them, but some servers (librdkafka's mock cluster) do:
     * such a response is recognized here and dropped, not taken for an
     * out-of-order answer. */
    int32_t *acks0_ids; /* ring of ACKS0_CAP, allocated on first use */
    uint32_t acks0_head, acks0_count;

    int lingering;           /* client gone; flushing what it sent upstream */
    int linger_reason;       /* CLOSE_* to count when the linger ends */
    struct event *linger_ev; /* bounds the linger */
    struct event *big_ev;    /* reads a large frame straight into big */
    uint8_t *big;
    size_t big_len, big_have;

    /* Client authentication (auth.users_file set). */
    sasl_session_t *sasl; /* NULL: no authentication on this connection */
    int authed;           /* login done (always 1 without authentication) */
    int raw_tokens;       /* SaslHandshake v0: raw size-prefixed tokens follow */
    int auth_failed;      /* closing after a refused login */
    int tls;              /* the client side is TLS */
    int tls_up;           /* its handshake completed */
    int loopback;         /* peer is 127.0.0.0/8 or ::1 */
    char peer_ip[INET6_ADDRSTRLEN];
    struct event *auth_delay_ev; /* holds a failure answer (sasl_failure_delay) */
    struct event *login_ev;      /* auth.login_timeout */
    struct evbuffer *auth_resp;  /* the held answer */
    uint64_t auth_token;         /* its slot */

    /* auth.acls: the request rewritten without denied topics, and their record. */
    uint8_t *repl;
    size_t repl_len;
    ksplit_t *pending_split;  /* attached to the next slot pushed */
    int pending_hide;         /* likewise hide_topics */
    int pending_drop_aborted; /* likewise drop_aborted */

    /* Producer-path dead letters (dlqprod.h). */
    struct dlqprod_req *pending_dj; /* attached to the next slot pushed */
    int dlq_held;                   /* a Produce waits for its DLQ writes (PAUSE_DLQ) */
    ksplit_t *held_split;           /* its ACL split, until it goes on */
};

static struct slot *slot_at(struct client *c, uint64_t pos)
{
    return &c->slots[pos % c->cap];
}

static uint32_t inflight(const struct client *c)
{
    return (uint32_t)(c->tail - c->head);
}

/* ---- closing ---- */

static void close_client(struct client *c, int reason)
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
static void protocol_error(struct client *c, const kreq_hdr_t *h, size_t off, const char *what)
{
    if (h)
        log_warn("client %llu (%s): closing: %s (api %s v%d, correlation id %d, offset %zu)",
                 (unsigned long long)c->id, c->peer, what, kproto_api_name(h->api_key),
                 h->api_version, h->correlation_id, off);
    else
        log_warn("client %llu (%s): closing: %s", (unsigned long long)c->id, c->peer, what);
    close_client(c, CLOSE_PROTOCOL);
}

static void upstream_failed(struct client *c, int kind, const char *what)
{
    g_metrics.upstream_errors[kind]++;
    log_info("client %llu (%s): upstream %s; closing", (unsigned long long)c->id, c->peer, what);
    close_client(c, CLOSE_UPSTREAM);
}

static void start_linger(struct client *c, int reason);
static void update_client_read(struct client *c);

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
    update_client_read(c);
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
    close_client(c, CLOSE_UPSTREAM);
    return 1;
}

/* Closes the client if it is draining and has nothing left to send. */
static int maybe_finish_drain(struct client *c)
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
static void update_client_read(struct client *c)
{
    if ((c->read_pause & ~PAUSE_UPCONNECT) || c->draining || c->big)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

static void pause_client(struct client *c, int why)
{
    if (!(c->read_pause & why))
        g_metrics.backpressure_pauses++;
    c->read_pause |= why;
    update_client_read(c);
}

static void resume_client(struct client *c, int why)
{
    if (!(c->read_pause & why))
        return;
    c->read_pause &= ~why;
    update_client_read(c);
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

static void free_detached(const void *data, size_t len, void *arg)
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
    evbuffer_add_reference(out, buf, n, free_detached, NULL);
    return out;
}

static struct slot *slot_push(struct client *c, const kreq_hdr_t *h, int state)
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
        resume_client(c, PAUSE_INFLIGHT);
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

static int acl_allow_describe(void *ctx, const char *topic, size_t len);

/* A Metadata response without the topics the user may neither produce to
 * nor consume from (resp freed), or resp unchanged if it cannot be read. */
static struct evbuffer *hide_topics(struct client *c, const struct slot *s, struct evbuffer *resp)
{
    size_t len = evbuffer_get_length(resp), removed = 0;
    const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
    kwriter_t w;
    kw_init(&w, len);
    if (!p || ksplit_filter_metadata(s->api_version, p + 4, len - 4, acl_allow_describe, c, &w,
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
static void slot_complete(struct client *c, struct slot *s, struct evbuffer *resp)
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
static struct client *client_find(struct proxy *px, uint64_t id)
{
    struct client *c;
    TAILQ_FOREACH(c, &px->clients, link)
    {
        if (c->id == id)
            return c;
    }
    return NULL;
}

/* Answers ApiVersions with what eosproxy can parse and the upstream serves. */
static int answer_apiversions(struct client *c, const kreq_hdr_t *h, const uint8_t *frame,
                              size_t len)
{
    const kapi_info_t *ai = kproto_api(KAPI_ApiVersions);
    int16_t ver = h->api_version;
    int16_t err = 0;
    if (!ai || ver > ai->max_ver) {
        ver = 0; /* as brokers do: a v0 answer with UNSUPPORTED_VERSION */
        err = 35;
    } else {
        size_t off;
        const char *why;
        if (kproto_validate_request(h, frame, len, &off, &why)) {
            protocol_error(c, h, off, why);
            return -1;
        }
    }
    kwriter_t w;
    kw_init(&w, 512);
    if (kproto_apiversions_build(&w, ver, h->correlation_id, err, c->px->versions)) {
        kw_free(&w);
        protocol_error(c, h, 0, "cannot build ApiVersions response");
        return -1;
    }
    struct evbuffer *resp = evbuffer_new();
    evbuffer_add(resp, w.buf, w.len);
    kw_free(&w);
    g_metrics.local_responses++;
    slot_complete(c, slot_push(c, h, SLOT_READY), resp);
    return 0;
}

/* 1 if the negotiated table lets a client send (api, version). */
static int version_allowed(const struct proxy *px, const kreq_hdr_t *h)
{
    const kver_range_t *r = &px->versions[h->api_key];
    return h->api_version >= r->min_ver && h->api_version <= r->max_ver;
}

enum { REQ_FORWARD = 0, REQ_LOCAL = 1, REQ_CLOSED = -1 };

/*
 * Books what the upstream will answer for a forwarded request: a slot in
 * the FIFO, or for an acks=0 Produce nothing (but its correlation id is
 * queued; see acks0_ids).
 */
static void expect_response(struct client *c, const kreq_hdr_t *h, int acks)
{
    if (acks != 0) {
        slot_push(c, h, SLOT_UPSTREAM);
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

/* ---- produce routing (policy) ---- */

/* Topics of one ProduceRequest, as views into the frame. */
struct produce_view {
    kproduce_req_t req; /* v3+ only */
    size_t ntopics;
    const char **names;
    size_t *lens;
    int32_t *nparts; /* v0-v2: partitions per topic */
    int32_t *parts;  /* v0-v2: partition indexes, topic after topic */
};

static void produce_view_free(struct produce_view *v)
{
    kproduce_req_free(&v->req);
    free(v->names);
    free(v->lens);
    free(v->nparts);
    free(v->parts);
}

static int produce_view_alloc(struct produce_view *v, size_t ntopics)
{
    v->ntopics = ntopics;
    v->names = calloc(ntopics ? ntopics : 1, sizeof(*v->names));
    v->lens = calloc(ntopics ? ntopics : 1, sizeof(*v->lens));
    v->nparts = calloc(ntopics ? ntopics : 1, sizeof(*v->nparts));
    return v->names && v->lens && v->nparts ? 0 : -1;
}

/*
 * ProduceRequest v0-v2 (message format < 2), for the topic names:
 *   acks INT16, timeout_ms INT32,
 *   topic_data [name STRING, partition_data [index INT32, records BYTES]]
 */
static int produce_view_v0(struct produce_view *v, const uint8_t *body, size_t len)
{
    kreader_t r;
    kr_init(&r, body, len);
    kr_i16(&r);
    kr_i32(&r);
    int32_t nt = kr_array(&r, 0, 6);
    if (!kr_ok(&r) || nt < 0 || produce_view_alloc(v, (size_t)nt))
        return -1;
    v->parts = calloc(len / 8 + 1, sizeof(*v->parts));
    size_t np = 0;
    for (int32_t t = 0; t < nt && kr_ok(&r) && v->parts; t++) {
        kstr_t name = kr_str_nn(&r, 0);
        v->names[t] = name.ptr;
        v->lens[t] = (size_t)(name.len < 0 ? 0 : name.len);
        int32_t npart = kr_array(&r, 0, 8);
        v->nparts[t] = npart < 0 ? 0 : npart;
        for (int32_t p = 0; p < npart && kr_ok(&r); p++) {
            v->parts[np++] = kr_i32(&r);
            kr_bytes(&r, 0);
        }
    }
    return kr_ok(&r) && v->parts ? 0 : -1;
}

/* v3+: the full parse, plus whether any batch already has a producer id. */
static int produce_view_v3(struct produce_view *v, int16_t ver, const uint8_t *body, size_t len,
                           int *client_idempotent)
{
    if (kproduce_req_parse(ver, body, len, &v->req, NULL))
        return -1;
    if (produce_view_alloc(v, (size_t)v->req.ntopics))
        return -1;
    for (int32_t t = 0; t < v->req.ntopics; t++) {
        const kproduce_topic_t *tp = &v->req.topics[t];
        v->names[t] = tp->name.ptr;
        v->lens[t] = (size_t)(tp->name.len < 0 ? 0 : tp->name.len);
        for (int32_t p = 0; p < tp->npartitions; p++) {
            kbytes_t rec = tp->partitions[p].records;
            krecord_batch_t b;
            if (rec.len > 0 && krecord_batch_parse(rec.ptr, (size_t)rec.len, &b, 0) == KREC_OK &&
                b.producer_id != -1)
                *client_idempotent = 1;
        }
    }
    return 0;
}

/*
 * A ProduceResponse v0-v2 answering every partition of v with error_code:
 *   v0: [name, [index INT32, error_code INT16, base_offset INT64]]
 *   v1: + throttle_time_ms INT32 at the end; v2: + log_append_time INT64
 */
static int write_produce_v0_error(kwriter_t *w, int16_t ver, int32_t corr,
                                  const struct produce_view *v, int16_t error_code)
{
    kw_i32(w, 0);
    kw_i32(w, corr);
    kw_array(w, 0, (int32_t)v->ntopics);
    size_t np = 0;
    for (size_t t = 0; t < v->ntopics; t++) {
        kw_str(w, 0, v->names[t], (int32_t)v->lens[t]);
        kw_array(w, 0, v->nparts[t]);
        for (int32_t p = 0; p < v->nparts[t]; p++) {
            kw_i32(w, v->parts[np++]);
            kw_i16(w, error_code);
            kw_i64(w, -1);
            if (ver >= 2)
                kw_i64(w, -1);
        }
    }
    if (ver >= 1)
        kw_i32(w, 0);
    kw_patch_i32(w, 0, (int32_t)(w->len - 4));
    return w->err ? -1 : 0;
}

/* Queues a locally built response (in w, freed here) as a ready slot. */
static void answer_local(struct client *c, const kreq_hdr_t *h, kwriter_t *w)
{
    struct evbuffer *resp = evbuffer_new();
    evbuffer_add(resp, w->buf, w->len);
    kw_free(w);
    g_metrics.local_responses++;
    slot_complete(c, slot_push(c, h, SLOT_READY), resp);
}

/* Answers every partition of the request with error_code (acks != 0). */
static int answer_produce_error(struct client *c, const kreq_hdr_t *h, const struct produce_view *v,
                                int16_t error_code)
{
    kwriter_t w;
    kw_init(&w, 256);
    int rc = h->api_version >= KPRODUCE_MIN_VERSION
                 ? kproduce_resp_write_uniform(&w, h->api_version, h->correlation_id, &v->req,
                                               error_code, -1)
                 : write_produce_v0_error(&w, h->api_version, h->correlation_id, v, error_code);
    if (rc) {
        kw_free(&w);
        return -1;
    }
    answer_local(c, h, &w);
    return 0;
}

/*
 * At-most-once: acks becomes 0 in the frame itself (the request is then
 * forwarded as is) and the client, unless it sent acks=0 too, is answered
 * at once with offsets -1. transactional_id is null on this route, so acks
 * sits right after it: 2 bytes (INT16 -1) or 1 byte (compact null, v9).
 */
static int route_at_most_once(struct client *c, const kreq_hdr_t *h, uint8_t *frame,
                              const struct produce_view *v, int acks)
{
    size_t off = h->body_off + (kproto_is_flexible(KAPI_Produce, h->api_version) ? 1 : 2);
    frame[off] = 0;
    frame[off + 1] = 0;
    expect_response(c, h, 0);
    if (acks != 0 && answer_produce_error(c, h, v, 0))
        return REQ_CLOSED;
    return REQ_FORWARD;
}

/* The token of an acks=0 upgraded Produce: no slot has it, so its
 * completion (resp NULL) is dropped by client_slot_done. */
#define TOKEN_NO_SLOT UINT64_MAX

/*
 * The routes an engine carries out (the idempotent upgrade, or the
 * transactional engine txn when not NULL): the engine answers later
 * through the slot. Returns REQ_LOCAL, or REQ_CLOSED.
 */
static int route_engine(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                        const struct produce_view *v, int acks, struct txn *txn)
{
    /* acks=0 books no slot: c->tail would name the next request's slot,
     * and the engine's NULL completion would then close the client. */
    uint64_t token = acks != 0 ? c->tail : TOKEN_NO_SLOT;
    if (acks != 0)
        slot_push(c, h, SLOT_LOCAL);
    struct proxy *px = c->px;
    int err =
        txn ? txn_submit(txn, c->up_broker, h, frame, size, acks == 0, c->id, token)
            : upgrade_submit(px->upgrade, c->up_broker, h, frame, size, acks == 0, c->id, token);
    if (err == 0) {
        if (txn ? txn_busy(txn) : upgrade_busy(px->upgrade))
            pause_client(c, PAUSE_UPGRADE);
        return REQ_LOCAL;
    }
    if (acks != 0) {
        /* Refused at once: drop the waiting slot, answer in its place
         * (what the slot took for its answer goes to the next one). */
        struct slot *s = slot_at(c, --c->tail);
        c->pending_split = s->split;
        c->pending_dj = s->dj;
        s->split = NULL;
        s->dj = NULL;
        g_metrics.inflight--;
        if (answer_produce_error(c, h, v, (int16_t)err))
            return REQ_CLOSED;
    }
    return REQ_LOCAL;
}

/*
 * A request for a transactional topic goes to the engine of its rule's
 * bind_group (policy_bind_group), or to the unbound engine.
 */
static int route_txn(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                     const struct produce_view *v, int acks)
{
    struct proxy *px = c->px;
    const char *group = policy_bind_group(px->cfg->policy, v->names, v->lens, v->ntopics);
    struct txn *t = group ? proxy_bind(px, group, strlen(group), 1) : px->txn;
    if (!t)
        return acks != 0 && answer_produce_error(c, h, v, KERR_REQUEST_TIMED_OUT) ? REQ_CLOSED
                                                                                  : REQ_LOCAL;
    return route_engine(c, h, frame, size, v, acks, t);
}

/* The GroupId that opens the body of OffsetCommit, JoinGroup and
 * LeaveGroup (validated already). Its length is -1 if it cannot be read. */
static kstr_t group_id_of(const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kreader_t r;
    kr_init(&r, frame + h->body_off, size - h->body_off);
    kstr_t g = kr_str_nn(&r, kproto_is_flexible(h->api_key, h->api_version));
    return kr_ok(&r) ? g : (kstr_t){NULL, -1};
}

/* An OffsetCommit refused at the bound engine's limit: every partition
 * gets COORDINATOR_LOAD_IN_PROGRESS, which consumers retry. */
static int answer_commit_busy(struct client *c, const kreq_hdr_t *h, const uint8_t *frame,
                              size_t size)
{
    kcommit_t kc;
    kwriter_t w;
    kw_init(&w, 128);
    if (kcommit_req_parse(h->api_key, h->api_version, frame + h->body_off, size - h->body_off, &kc,
                          NULL) ||
        kcommit_resp_write(&w, h->api_version, h->correlation_id, &kc,
                           KERR_COORDINATOR_LOAD_IN_PROGRESS)) {
        kcommit_free(&kc);
        kw_free(&w);
        protocol_error(c, h, h->body_off, "cannot answer OffsetCommit");
        return REQ_CLOSED;
    }
    kcommit_free(&kc);
    answer_local(c, h, &w);
    return REQ_LOCAL;
}

/*
 * Group requests of a bind_group (OffsetCommit, JoinGroup, LeaveGroup)
 * go to its engine: an OffsetCommit with output pending is answered by
 * the engine once the output committed with it (REQ_LOCAL); a JoinGroup
 * or LeaveGroup aborts output no commit covers, and goes on. REQ_FORWARD
 * for everything else.
 */
static int route_group(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kstr_t g = group_id_of(h, frame, size);
    struct txn *t = g.len >= 0 ? proxy_bind(c->px, g.ptr, (size_t)g.len, 0) : NULL;
    if (!t)
        return REQ_FORWARD;
    if (h->api_key != KAPI_OffsetCommit) {
        txn_group_rebalance(t, h->api_key == KAPI_JoinGroup ? "JoinGroup" : "LeaveGroup");
        return REQ_FORWARD;
    }
    switch (txn_commit_submit(t, h, frame, size, c->id, c->tail)) {
    case TXN_COMMIT_TAKEN:
        slot_push(c, h, SLOT_LOCAL);
        return REQ_LOCAL;
    case TXN_COMMIT_BUSY:
        return answer_commit_busy(c, h, frame, size);
    default:
        return REQ_FORWARD;
    }
}

/* The producer-path dead-letter engine of px (made on first use: a live
 * reload may add the first rule that needs it), or NULL. */
static void dlq_hold_done(struct proxy *px, uint64_t client_id, struct dlqprod_req *req);
static struct dlqprod *dlq_engine(struct proxy *px)
{
    static const struct dlqprod_hooks hooks = {client_slot_done, dlq_hold_done};
    if (!px->dlqprod)
        px->dlqprod = dlqprod_new(px, &hooks);
    return px->dlqprod;
}

/*
 * The request of plan req, to go on with: *buf (malloc'ed, size prefix
 * included, *len bytes) and its header in *h. Returns the partitions in
 * it (0: none left, nothing written), or -1 when out of memory.
 */
static int dlq_plan_frame(struct dlqprod_req *req, uint8_t **buf, size_t *len, kreq_hdr_t *h)
{
    kwriter_t w;
    kw_init(&w, 1024);
    int n = dlqprod_req_frame(req, &w);
    const char *why = NULL;
    if (n > 0 && kproto_parse_request_header(w.buf + 4, w.len - 4, h, &why))
        n = -1; /* cannot happen: kproduce wrote it */
    if (n <= 0) {
        kw_free(&w);
        return n;
    }
    *buf = kw_detach(&w, len);
    return n;
}

/* Answers a request whose every partition dlqprod took out (acks != 0). */
static int dlq_answer_all(struct client *c, const kreq_hdr_t *h, struct dlqprod_req *req)
{
    kwriter_t w;
    kw_init(&w, 256);
    if (dlqprod_req_merge(req, h->api_version, h->correlation_id, NULL, 0, &w)) {
        kw_free(&w);
        protocol_error(c, h, 0, "out of memory answering a Produce request");
        return REQ_CLOSED;
    }
    answer_local(c, h, &w);
    return REQ_LOCAL;
}

/*
 * The rule's own checks (dlqprod_check) on a ProduceRequest. REQ_FORWARD
 * to go on, with *frame, *size and *h replaced when partitions were taken
 * out (the new frame is c->repl); REQ_LOCAL when answered here or held for
 * DLQ writes (the client stops reading until dlq_hold_done); REQ_CLOSED.
 */
static int dlq_check(struct client *c, kreq_hdr_t *h, uint8_t **frame, size_t *size, int acks)
{
    struct dlqprod *dp = dlq_engine(c->px);
    struct dlqprod_req *req = NULL;
    int v = dp ? dlqprod_check(dp, c->px->cfg->policy, h, *frame, *size, acks, c->id, &req)
               : DLQPROD_PASS;
    if (v == DLQPROD_PASS)
        return REQ_FORWARD;
    if (v == DLQPROD_HOLD) {
        c->dlq_held = 1;
        c->held_split = c->pending_split;
        c->pending_split = NULL;
        pause_client(c, PAUSE_DLQ);
        return REQ_LOCAL;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int n = dlq_plan_frame(req, &buf, &len, h);
    if (n < 0) {
        dlqprod_req_free(req);
        protocol_error(c, h, 0, "out of memory rewriting a Produce request");
        return REQ_CLOSED;
    }
    if (n == 0) {
        int rc = acks != 0 ? dlq_answer_all(c, h, req) : REQ_LOCAL;
        dlqprod_req_free(req);
        return rc;
    }
    free(c->repl); /* *frame pointed into it; the plan has its own copies */
    c->repl = buf;
    c->repl_len = len;
    *frame = buf + 4;
    *size = len - 4;
    if (acks != 0)
        c->pending_dj = req;
    else
        dlqprod_req_free(req);
    return REQ_FORWARD;
}

/*
 * On the routes that forward a Produce and answer from its response (pass
 * and the idempotent upgrade), batches of topics with on_produce_error dlq
 * are kept for that response. Returns 0, or -1 when the request was
 * refused at the bound (answered REQUEST_TIMED_OUT) or the client closed.
 */
static int dlq_keep(struct client *c, const kreq_hdr_t *h, const struct produce_view *v, int *rc)
{
    struct dlqprod *dp = dlq_engine(c->px);
    if (!dp || dlqprod_keep(dp, c->px->cfg->policy, &v->req, &c->pending_dj) == 0)
        return 0;
    *rc = answer_produce_error(c, h, v, KERR_REQUEST_TIMED_OUT) ? REQ_CLOSED : REQ_LOCAL;
    return -1;
}

/*
 * Applies the topic policy to a validated ProduceRequest. Returns
 * REQ_FORWARD (frame possibly changed in place: acks; or replaced by
 * c->repl when dlqprod took partitions out), REQ_LOCAL (handled here;
 * nothing to forward) or REQ_CLOSED. checked: the dlqprod checks ran
 * already (a request back from its DLQ writes).
 */
static int route_produce(struct client *c, const kreq_hdr_t *h0, uint8_t *frame, size_t size,
                         int acks, int checked)
{
    kreq_hdr_t hh = *h0;
    const kreq_hdr_t *h = &hh;
    const policy_t *pol = c->px->cfg->policy;
    int dlq = h->api_version >= KPRODUCE_MIN_VERSION && dlqprod_policy_active(pol);
    if (dlq && !checked) {
        int rc = dlq_check(c, &hh, &frame, &size, acks);
        if (rc != REQ_FORWARD)
            return rc;
    }
    struct produce_view v = {0};
    produce_facts_t f = {.version = h->api_version};
    const uint8_t *body = frame + h->body_off;
    size_t blen = size - h->body_off;
    int rc = h->api_version >= KPRODUCE_MIN_VERSION
                 ? produce_view_v3(&v, h->api_version, body, blen, &f.client_idempotent)
                 : produce_view_v0(&v, body, blen);
    if (rc) {
        produce_view_free(&v);
        protocol_error(c, h, h->body_off, "cannot decode ProduceRequest");
        return REQ_CLOSED;
    }
    f.transactional = h->api_version >= KPRODUCE_MIN_VERSION && v.req.transactional_id.len >= 0;
    f.strongest = policy_strongest(pol, v.names, v.lens, v.ntopics);
    produce_route_t route = policy_produce_route(&f);
    g_metrics.produce_routes[route]++;
    if (dlq && acks != 0 && (route == ROUTE_PASS || route == ROUTE_UPGRADE) &&
        dlq_keep(c, h, &v, &rc)) {
        produce_view_free(&v);
        return rc;
    }
    switch (route) {
    case ROUTE_AT_MOST_ONCE:
        rc = route_at_most_once(c, h, frame, &v, acks);
        break;
    case ROUTE_UPGRADE:
        rc = route_engine(c, h, frame, size, &v, acks, NULL);
        break;
    case ROUTE_TXN:
        rc = route_txn(c, h, frame, size, &v, acks);
        break;
    case ROUTE_REFUSE_FORMAT:
        log_info("client %llu (%s): refusing Produce v%d for an idempotent or transactional topic: "
                 "message format < 2 cannot be upgraded",
                 (unsigned long long)c->id, c->peer, h->api_version);
        rc = acks != 0 && answer_produce_error(c, h, &v, KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT)
                 ? REQ_CLOSED
                 : REQ_LOCAL;
        break;
    default:
        rc = REQ_FORWARD;
        expect_response(c, h, acks);
        break;
    }
    produce_view_free(&v);
    return rc;
}

/*
 * A Produce held for its DLQ writes (dlq_check) goes on: routed as if it
 * had just come, without the records now in the DLQ, then the client's
 * next requests are read. The client may have gone (req is freed then).
 */
static void dlq_hold_done(struct proxy *px, uint64_t client_id, struct dlqprod_req *req)
{
    struct client *c = client_find(px, client_id);
    if (!c || !c->dlq_held) {
        dlqprod_req_free(req);
        return;
    }
    c->dlq_held = 0;
    c->pending_split = c->held_split;
    c->held_split = NULL;
    if (c->lingering || !c->up) { /* closing: nothing goes upstream any more */
        dlqprod_req_free(req);
        ksplit_free(c->pending_split);
        c->pending_split = NULL;
        return;
    }
    int16_t ver;
    int32_t corr;
    int acks;
    dlqprod_req_info(req, &ver, &corr, &acks);
    kreq_hdr_t h = {.api_key = KAPI_Produce, .api_version = ver, .correlation_id = corr};
    uint8_t *buf = NULL;
    size_t len = 0;
    int n = dlq_plan_frame(req, &buf, &len, &h);
    int rc = REQ_LOCAL;
    if (n < 0) {
        dlqprod_req_free(req);
        protocol_error(c, &h, 0, "out of memory rewriting a Produce request");
        return;
    }
    if (n == 0) {
        rc = acks != 0 ? dlq_answer_all(c, &h, req) : REQ_LOCAL;
        dlqprod_req_free(req);
    } else {
        c->pending_dj = acks != 0 ? req : NULL;
        if (acks == 0)
            dlqprod_req_free(req);
        rc = route_produce(c, &h, buf + 4, len - 4, acks, 1);
    }
    if (rc == REQ_CLOSED) {
        free(buf);
        return;
    }
    if (rc == REQ_FORWARD)
        evbuffer_add_reference(bufferevent_get_output(c->up), buf, len, free_detached, NULL);
    else
        free(buf);
    dlqprod_req_free(c->pending_dj); /* not taken by a slot */
    c->pending_dj = NULL;
    ksplit_free(c->pending_split);
    c->pending_split = NULL;
    resume_client(c, PAUSE_DLQ);
}

/* ---- client authentication (SASL) ---- */

static int connect_upstream(struct client *c);

/* Queues a locally built frame (w, freed here) into the slot at token. */
static void complete_token(struct client *c, uint64_t token, kwriter_t *w)
{
    struct evbuffer *resp = evbuffer_new();
    evbuffer_add(resp, w->buf, w->len);
    kw_free(w);
    g_metrics.local_responses++;
    slot_complete(c, slot_at(c, token), resp);
}

/*
 * The answer to one SASL token: a SaslAuthenticate response, or after
 * SaslHandshake v0 the raw size-prefixed token (nothing at all for a
 * failure: the connection just closes, as Kafka does).
 */
static void write_auth_answer(const struct slot *s, int16_t err, const char *msg,
                              const uint8_t *reply, size_t rlen, kwriter_t *w)
{
    if (s->api_version < 0) {
        if (err == 0) {
            kw_i32(w, (int32_t)rlen);
            kw_raw(w, reply, rlen);
        }
        return;
    }
    ksasl_authenticate_resp_write(w, s->api_version, s->correlation_id, err, err ? msg : NULL,
                                  reply, rlen, 0);
}

static void auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    struct evbuffer *resp = c->auth_resp;
    c->auth_resp = NULL;
    g_metrics.local_responses++;
    slot_complete(c, slot_at(c, c->auth_token), resp);
    maybe_finish_drain(c);
}

/* A refused login: answer (after the source's failure delay), then close. */
static void auth_refuse(struct client *c, uint64_t token, const char *msg)
{
    struct slot *s = slot_at(c, token);
    kwriter_t w;
    kw_init(&w, 256);
    write_auth_answer(s, KERR_SASL_AUTHENTICATION_FAILED, msg, NULL, 0, &w);
    log_info("client %llu (%s): login refused (%s)", (unsigned long long)c->id, c->peer, msg);
    c->auth_failed = 1;
    c->draining = 1;
    update_client_read(c);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t delay =
        sasl_failure_delay(c->peer_ip, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
    c->auth_resp = evbuffer_new();
    evbuffer_add(c->auth_resp, w.buf, w.len);
    kw_free(&w);
    c->auth_token = token;
    c->auth_delay_ev = evtimer_new(c->px->base, auth_delay_cb, c);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
    if (!c->auth_delay_ev || evtimer_add(c->auth_delay_ev, &tv) < 0)
        auth_delay_cb(-1, 0, c);
}

/* Login succeeded: open the upstream connection and serve the client. */
static int auth_accept(struct client *c, uint64_t token, const uint8_t *reply, size_t rlen)
{
    kwriter_t w;
    kw_init(&w, rlen + 64);
    write_auth_answer(slot_at(c, token), 0, NULL, reply, rlen, &w);
    c->authed = 1;
    event_del(c->login_ev);
    log_info("client %llu (%s): authenticated as %s (%s%s%s)", (unsigned long long)c->id, c->peer,
             sasl_session_user(c->sasl), config_sasl_mech_name(sasl_session_mech(c->sasl)),
             c->tls ? ", TLS" : "", c->raw_tokens ? ", SaslHandshake v0" : "");
    c->raw_tokens = 0;
    complete_token(c, token, &w);
    if (connect_upstream(c)) {
        log_warn("client %llu (%s): cannot set up the upstream connection",
                 (unsigned long long)c->id, c->peer);
        close_client(c, CLOSE_UPSTREAM);
        return -1;
    }
    return 0;
}

/* Carries out one SASL step's outcome for the token in the slot at token. */
static int auth_outcome(struct client *c, uint64_t token, sasl_step_t st, const uint8_t *reply,
                        size_t rlen, const char *msg)
{
    kwriter_t w;
    switch (st) {
    case SASL_STEP_CONTINUE:
        kw_init(&w, rlen + 64);
        write_auth_answer(slot_at(c, token), 0, NULL, reply, rlen, &w);
        complete_token(c, token, &w);
        return 0;
    case SASL_STEP_DONE:
        return auth_accept(c, token, reply, rlen);
    case SASL_STEP_ASYNC:
        pause_client(c, PAUSE_AUTH);
        return 0;
    default:
        auth_refuse(c, token, msg);
        return 0;
    }
}

/* One client token (raw, or the auth_bytes of a SaslAuthenticate) in the slot at token. */
static int auth_token_step(struct client *c, uint64_t token, const uint8_t *tok, size_t len)
{
    uint8_t reply[1024];
    size_t rlen = 0;
    const char *msg = NULL;
    sasl_step_t st = sasl_session_step(c->sasl, tok, len, reply, sizeof(reply), &rlen, &msg);
    return auth_outcome(c, token, st, reply, rlen, msg);
}

void client_auth_result(struct proxy *px, uint64_t client_id, int ok)
{
    struct client *c = client_find(px, client_id);
    if (!c || !c->sasl || c->authed || c->auth_failed || c->head == c->tail)
        return;
    const char *msg = NULL;
    sasl_step_t st = sasl_session_plain_result(c->sasl, ok, &msg);
    /* The PLAIN token's slot is the newest: nothing is read while it is checked. */
    if (auth_outcome(c, c->tail - 1, st, NULL, 0, msg) == 0)
        resume_client(c, PAUSE_AUTH); /* still paused while a failure is answered */
}

static int answer_handshake(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t len)
{
    kstr_t mech;
    if (ksasl_handshake_req_parse(frame + h->body_off, len - h->body_off, &mech)) {
        protocol_error(c, h, h->body_off, "malformed SaslHandshake request");
        return REQ_CLOSED;
    }
    int16_t err = c->authed ? KERR_ILLEGAL_SASL_STATE
                            : sasl_session_handshake(c->sasl, mech.ptr, (size_t)mech.len);
    const char *names[4];
    size_t n = sasl_session_mechanisms(c->sasl, names, 4);
    if (err)
        log_info("client %llu (%s): SaslHandshake for \"%.*s\" refused (error %d)",
                 (unsigned long long)c->id, c->peer, mech.len > 32 ? 32 : (int)mech.len, mech.ptr,
                 err);
    kwriter_t w;
    kw_init(&w, 128);
    ksasl_handshake_resp_write(&w, h->correlation_id, err, names, n);
    answer_local(c, h, &w);
    if (err == 0 && h->api_version == 0)
        c->raw_tokens = 1;
    return REQ_LOCAL;
}

static int answer_authenticate(struct client *c, const kreq_hdr_t *h, const uint8_t *frame,
                               size_t len)
{
    kbytes_t tok;
    if (ksasl_authenticate_req_parse(h->api_version, frame + h->body_off, len - h->body_off,
                                     &tok) ||
        tok.len < 0) {
        protocol_error(c, h, h->body_off, "malformed SaslAuthenticate request");
        return REQ_CLOSED;
    }
    uint64_t token = c->tail;
    slot_push(c, h, SLOT_LOCAL);
    if (c->authed || c->raw_tokens || sasl_session_mech(c->sasl) == SASL_NONE) {
        auth_refuse(c, token, "Authentication failed: SaslAuthenticate out of order");
        return REQ_LOCAL;
    }
    return auth_token_step(c, token, tok.ptr, (size_t)tok.len) ? REQ_CLOSED : REQ_LOCAL;
}

/*
 * A request on a connection that has not logged in: ApiVersions and the
 * SASL exchange are served, anything else closes the connection.
 */
static int pre_auth_request(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t len)
{
    switch (h->api_key) {
    case KAPI_SaslHandshake:
        if (h->api_version > 1)
            break;
        return answer_handshake(c, h, frame, len);
    case KAPI_SaslAuthenticate:
        if (h->api_version > 2)
            break;
        return answer_authenticate(c, h, frame, len);
    default:
        break;
    }
    log_warn("client %llu (%s): closing: %s v%d before authentication", (unsigned long long)c->id,
             c->peer, kproto_api_name(h->api_key), h->api_version);
    close_client(c, CLOSE_AUTH);
    return REQ_CLOSED;
}

/* A raw token after SaslHandshake v0 (size bytes at the head of in). */
static int handle_raw_token(struct client *c, struct evbuffer *in, size_t size)
{
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    if (!p) {
        protocol_error(c, NULL, 0, "out of memory");
        return -1;
    }
    kreq_hdr_t raw = {.api_key = KAPI_SaslAuthenticate, .api_version = -1, .correlation_id = -1};
    uint64_t token = c->tail;
    slot_push(c, &raw, SLOT_LOCAL);
    int rc = auth_token_step(c, token, p + 4, size);
    if (rc == 0)
        evbuffer_drain(in, size + 4);
    return rc;
}

/* ---- per-user topic ACLs ---- */

/*
 * An admin request from a user without `admin: true`: every topic (or
 * group) answered with its AUTHORIZATION_FAILED error, nothing forwarded.
 */
static int refuse_admin(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kwriter_t w;
    kw_init(&w, 256);
    if (ksplit_refuse_all(h, frame, size, &w)) {
        kw_free(&w);
        protocol_error(c, h, h->body_off, "cannot decode the request's topics");
        return REQ_CLOSED;
    }
    log_info("client %llu (%s): %s refused: user %s has no admin: true in auth.acls",
             (unsigned long long)c->id, c->peer, kproto_api_name(h->api_key),
             sasl_session_user(c->sasl));
    answer_local(c, h, &w);
    return REQ_LOCAL;
}

/* 1 if the logged-in user of c may do op (ACL_PRODUCE, ACL_CONSUME) on topic. */
static int acl_allow(struct client *c, int op, const char *topic, size_t len)
{
    const char *u = sasl_session_user(c->sasl);
    return acl_allows(c->px->cfg->auth.acl, u, strlen(u), op, topic, len);
}

static int acl_allow_produce(void *ctx, const char *topic, size_t len)
{
    return acl_allow(ctx, ACL_PRODUCE, topic, len);
}

static int acl_allow_consume(void *ctx, const char *topic, size_t len)
{
    return acl_allow(ctx, ACL_CONSUME, topic, len);
}

/* Metadata: a topic is visible to a user who may produce to it or consume from it. */
static int acl_allow_describe(void *ctx, const char *topic, size_t len)
{
    return acl_allow_produce(ctx, topic, len) || acl_allow_consume(ctx, topic, len);
}

/*
 * ProduceRequest v0-v2 (message format < 2, no split codec): forwarded when
 * every topic is allowed, else refused whole, every partition answered with
 * TOPIC_AUTHORIZATION_FAILED.
 */
static int acl_produce_v0(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                          int acks)
{
    struct produce_view v = {0};
    if (produce_view_v0(&v, frame + h->body_off, size - h->body_off)) {
        produce_view_free(&v);
        protocol_error(c, h, h->body_off, "cannot decode ProduceRequest");
        return REQ_CLOSED;
    }
    size_t denied = 0;
    for (size_t t = 0; t < v.ntopics; t++)
        denied += !acl_allow_produce(c, v.names[t], v.lens[t]);
    int rc = REQ_FORWARD;
    if (denied) {
        g_metrics.acl_denied[KAPI_Produce] += denied;
        rc = acks != 0 && answer_produce_error(c, h, &v, KERR_TOPIC_AUTHORIZATION_FAILED)
                 ? REQ_CLOSED
                 : REQ_LOCAL;
    }
    produce_view_free(&v);
    return rc;
}

/* 1 for the topic administration APIs that need `admin: true`. */
static int is_admin_api(int16_t api)
{
    return api == KAPI_CreateTopics || api == KAPI_DeleteTopics || api == KAPI_DeleteRecords ||
           api == KAPI_CreatePartitions || api == KAPI_DeleteGroups;
}

/*
 * Applies auth.acls to a validated request. Produce, Fetch, ListOffsets,
 * OffsetCommit and Metadata lose their denied topics (c->repl then holds
 * the rewritten frame and c->pending_split what to answer for them); a
 * Metadata response is also marked to hide the user's other topics
 * (c->pending_hide). A request with every topic denied is answered here,
 * and admin APIs need `admin: true`. Returns REQ_FORWARD to go on,
 * REQ_LOCAL or REQ_CLOSED.
 */
static int apply_acl(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                     int acks)
{
    const char *u = sasl_session_user(c->sasl);
    if (is_admin_api(h->api_key)) {
        if (acl_is_admin(c->px->cfg->auth.acl, u, strlen(u)))
            return REQ_FORWARD;
        g_metrics.acl_denied[h->api_key]++;
        return refuse_admin(c, h, frame, size);
    }
    if (h->api_key != KAPI_Produce && h->api_key != KAPI_Fetch && h->api_key != KAPI_ListOffsets &&
        h->api_key != KAPI_OffsetCommit && h->api_key != KAPI_Metadata)
        return REQ_FORWARD;
    c->pending_hide = h->api_key == KAPI_Metadata;
    if (h->api_key == KAPI_Produce && h->api_version < KPRODUCE_MIN_VERSION)
        return acl_produce_v0(c, h, frame, size, acks);
    kwriter_t w;
    kw_init(&w, 0);
    ksplit_t *split = NULL;
    ksplit_allow_fn allow = h->api_key == KAPI_Produce    ? acl_allow_produce
                            : h->api_key == KAPI_Metadata ? acl_allow_describe
                                                          : acl_allow_consume;
    int rc = ksplit_request(h, frame, size, allow, c, &w, &split);
    if (rc == KSPLIT_ERROR) {
        kw_free(&w);
        protocol_error(c, h, h->body_off, "cannot decode the request's topics");
        return REQ_CLOSED;
    }
    if (rc == KSPLIT_ALLOWED) {
        kw_free(&w);
        return REQ_FORWARD;
    }
    g_metrics.acl_denied[h->api_key] += ksplit_topic_count(split);
    log_debug("client %llu (%s): %zu topic(s) of a %s request denied to %s",
              (unsigned long long)c->id, c->peer, ksplit_topic_count(split),
              kproto_api_name(h->api_key), u);
    if (rc == KSPLIT_DENIED) {
        kw_free(&w);
        if (acks != 0 &&
            ksplit_answer(split, h->correlation_id, KERR_TOPIC_AUTHORIZATION_FAILED, &w) == 0)
            answer_local(c, h, &w);
        else
            kw_free(&w);
        ksplit_free(split);
        return REQ_LOCAL;
    }
    c->repl = kw_detach(&w, &c->repl_len);
    c->pending_split = acks != 0 ? split : NULL;
    if (acks == 0)
        ksplit_free(split);
    return REQ_FORWARD;
}

struct evbuffer *client_produce_response(int16_t ver, const kproduce_resp_t *resp,
                                         uint64_t client_id)
{
    kwriter_t w;
    kw_init(&w, 256);
    struct evbuffer *out = NULL;
    if (kproduce_resp_write(&w, ver, resp) == 0 && (out = evbuffer_new()) &&
        evbuffer_add(out, w.buf, w.len)) {
        evbuffer_free(out);
        out = NULL;
    }
    if (!out)
        log_error("client %llu: cannot build a ProduceResponse (out of memory)",
                  (unsigned long long)client_id);
    kw_free(&w);
    return out;
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
        protocol_error(c, NULL, 0, "no response for an upgraded Produce request");
        return;
    }
    struct slot *s = slot_at(c, token);
    if (s->dj && dlqprod_req_keeps(s->dj)) {
        /* The engine's answer may name batches the broker refused for good. */
        size_t len = evbuffer_get_length(resp);
        const uint8_t *p = len >= 8 ? evbuffer_pullup(resp, (ev_ssize_t)len) : NULL;
        struct dlqprod *dp = dlq_engine(px);
        struct dlqprod_req *r = s->dj;
        s->dj = NULL;
        if (p && dp && dlqprod_response(dp, r, s->api_version, p + 4, len - 4, client_id, token)) {
            evbuffer_free(resp);
            return;
        }
        s->dj = r;
    }
    g_metrics.local_responses++;
    slot_complete(c, s, resp);
    maybe_finish_hold(c);
}

/*
 * Consumers of `transactional` topics read committed data only: a Fetch
 * (v4..v12) naming one gets IsolationLevel 1, in place. The flag sticks to
 * the connection, because a fetch session's later requests list only the
 * partitions that changed, often none, and the isolation level applies to
 * the whole session.
 */
static void fetch_read_committed(struct client *c, const kreq_hdr_t *h, uint8_t *frame, size_t size)
{
    /* ReplicaId MaxWaitMs MinBytes MaxBytes, then IsolationLevel (INT8). */
    size_t off = h->body_off + 16;
    if (h->api_version < KFETCH_MIN_VERSION || h->api_version > KFETCH_MAX_VERSION || off >= size ||
        frame[off] != 0)
        return;
    if (!c->read_committed) {
        kfetch_req_t req;
        if (kfetch_req_parse(h->api_version, frame + h->body_off, size - h->body_off, &req, NULL))
            return; /* validated already: cannot happen */
        const policy_t *pol = c->px->cfg->policy;
        for (int32_t i = 0; i < req.ntopics && !c->read_committed; i++)
            c->read_committed =
                policy_delivery(pol, req.topics[i].topic.ptr, (size_t)req.topics[i].topic.len) ==
                DELIVERY_TRANSACTIONAL;
        kfetch_req_free(&req);
        if (!c->read_committed)
            return;
    }
    frame[off] = 1;
    c->pending_drop_aborted = 1;
    g_metrics.txn_fetch_upgraded++;
}

/*
 * Checks one complete request frame (size bytes after the prefix, at
 * frame) and does the bookkeeping: REQ_FORWARD when the caller must send
 * the frame upstream (its slot is queued unless it is an acks=0 Produce),
 * REQ_LOCAL when it was answered here, REQ_CLOSED when the client was
 * closed (c is freed).
 */
static int check_request(struct client *c, uint8_t *frame, size_t size)
{
    kreq_hdr_t h;
    const char *why = NULL;
    if (kproto_parse_request_header(frame, size, &h, &why)) {
        kreq_hdr_t raw = {.api_key = kbe16(frame),
                          .api_version = kbe16(frame + 2),
                          .correlation_id = kbe32(frame + 4)};
        protocol_error(c, &raw, 0, why ? why : "bad request header");
        return REQ_CLOSED;
    }
    g_metrics.requests[h.api_key]++;
    g_metrics.request_bytes += size + 4;

    if (h.api_key == KAPI_ApiVersions)
        return answer_apiversions(c, &h, frame, size) ? REQ_CLOSED : REQ_LOCAL;
    if (c->sasl &&
        (!c->authed || h.api_key == KAPI_SaslHandshake || h.api_key == KAPI_SaslAuthenticate))
        return pre_auth_request(c, &h, frame, size);
    if (!version_allowed(c->px, &h)) {
        protocol_error(c, &h, 0, "version not offered in ApiVersions");
        return REQ_CLOSED;
    }
    size_t off;
    if (kproto_validate_request(&h, frame, size, &off, &why)) {
        protocol_error(c, &h, off, why);
        return REQ_CLOSED;
    }
    if (c->px->dedup && (h.api_key == KAPI_OffsetCommit || h.api_key == KAPI_TxnOffsetCommit))
        dedup_commit_request(c->px->dedup, h.api_key, h.api_version, frame, size, c->id,
                             h.correlation_id);
    if (c->px->dedup && h.api_key == KAPI_EndTxn)
        dedup_endtxn_request(c->px->dedup, h.api_version, frame, size, c->id, h.correlation_id);
    int acks = h.api_key == KAPI_Produce ? kproto_produce_acks(&h, frame, size) : 1;
    if (c->sasl && c->px->cfg->auth.acl) {
        int rc = apply_acl(c, &h, frame, size, acks);
        if (rc != REQ_FORWARD)
            return rc;
        if (c->repl) { /* same header bytes, fewer topics */
            frame = c->repl + 4;
            size = c->repl_len - 4;
        }
    }
    if (h.api_key == KAPI_Fetch && c->px->txn)
        fetch_read_committed(c, &h, frame, size);
    int rc = REQ_FORWARD;
    if (c->px->nbinds && (h.api_key == KAPI_OffsetCommit || h.api_key == KAPI_JoinGroup ||
                          h.api_key == KAPI_LeaveGroup))
        rc = route_group(c, &h, frame, size);
    if (rc == REQ_FORWARD) {
        if (h.api_key == KAPI_Produce &&
            (c->px->enforce || dlqprod_policy_active(c->px->cfg->policy)))
            rc = route_produce(c, &h, frame, size, acks, 0);
        else
            expect_response(c, &h, acks);
    }
    if (rc == REQ_CLOSED)
        return rc;
    ksplit_free(c->pending_split); /* not taken by a slot: nothing to answer */
    c->pending_split = NULL;
    c->pending_hide = 0;
    c->pending_drop_aborted = 0;
    dlqprod_req_free(c->pending_dj);
    c->pending_dj = NULL;
    return rc;
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
                                   free_detached, NULL);
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
        protocol_error(c, NULL, 0, "out of memory");
        return -1;
    }
    int rc = check_request(c, p + 4, size);
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
    int rc = check_request(c, buf + 4, len - 4);
    if (rc == REQ_CLOSED) {
        free(buf);
        return;
    }
    if (c->repl) {
        struct evbuffer *tmp = evbuffer_new();
        evbuffer_add_reference(tmp, buf, len, free_detached, NULL);
        forward_or_drop(c, tmp, len - 4, rc);
        evbuffer_free(tmp);
    } else if (rc == REQ_FORWARD) {
        evbuffer_add_reference(bufferevent_get_output(c->up), buf, len, free_detached, NULL);
    } else {
        free(buf);
    }
    update_client_read(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= 4)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void big_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    if (what & EV_TIMEOUT) {
        log_info("client %llu (%s): stalled mid-request, closing", (unsigned long long)c->id,
                 c->peer);
        close_client(c, CLOSE_IDLE);
        return;
    }
    ssize_t n = read(fd, c->big + c->big_have, c->big_len - c->big_have);
    if (n == 0) {
        start_linger(c, CLOSE_NORMAL); /* a partial frame is dropped; the rest is flushed */
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        close_client(c, CLOSE_NORMAL);
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
        protocol_error(c, NULL, 0, "out of memory for a large frame");
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
            pause_client(c, PAUSE_INFLIGHT);
            break;
        }
        if (c->up && evbuffer_get_length(bufferevent_get_output(c->up)) > high) {
            pause_client(c, PAUSE_UP_FULL);
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
            if (handle_raw_token(c, in, (size_t)size))
                return;
            continue;
        }
        if (size < KPROTO_MIN_REQUEST || (uint64_t)size > max_frame) {
            char msg[96];
            snprintf(msg, sizeof(msg), "frame size %d outside [%d, %llu]", size, KPROTO_MIN_REQUEST,
                     (unsigned long long)max_frame);
            protocol_error(c, NULL, 0, msg);
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
    struct dlqprod *dp = dlq_engine(c->px);
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
        slot_complete(c, s, resp);
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
    slot_complete(c, s, resp);
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
    maybe_finish_drain(c);
}

/* ---- write-side and events ---- */

/* Client output drained below the low watermark. */
static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    (void)bev;
    if (maybe_finish_hold(c) || maybe_finish_drain(c))
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
    resume_client(c, PAUSE_UP_FULL);
}

static void linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    log_info("client %llu (%s): broker did not finish within the linger time",
             (unsigned long long)c->id, c->peer);
    close_client(c, c->linger_reason);
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
        close_client(c, reason);
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
        close_client(c, CLOSE_TLS);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (inflight(c) == 0) {
            log_info("client %llu (%s): idle, closing", (unsigned long long)c->id, c->peer);
            close_client(c, CLOSE_IDLE);
        } else {
            update_client_read(c); /* a long poll is not idleness */
        }
        return;
    }
    if (what & BEV_EVENT_EOF)
        start_linger(c, CLOSE_NORMAL);
    else if (what & BEV_EVENT_ERROR)
        close_client(c, CLOSE_NORMAL);
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
            resume_client(c, PAUSE_UPCONNECT);
        }
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->lingering)
            close_client(c, c->linger_reason);
        else if (what & UPSTREAM_EVENT_COUNTED) /* TLS or login failure: logged and counted */
            close_client(c, CLOSE_UPSTREAM);
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

/* A connection that has not logged in within auth.login_timeout holds a
 * connection slot for nothing: closed. */
static void login_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    if (c->authed || c->auth_failed)
        return;
    log_info("client %llu (%s): no login within auth.login_timeout, closing",
             (unsigned long long)c->id, c->peer);
    close_client(c, CLOSE_AUTH);
}

/*
 * Sets up authentication for a new connection when auth.users_file is set:
 * the mechanisms it may use (PLAIN only over TLS or loopback unless
 * auth.allow_plaintext). Returns 0, or -1 when out of memory.
 */
static int setup_auth(struct client *c)
{
    struct proxy *px = c->px;
    if (!px->authw) {
        c->authed = 1;
        return 0;
    }
    unsigned mechs = px->cfg->auth.mechanisms;
    if (!c->tls && !c->loopback && !px->cfg->auth.allow_plaintext)
        mechs &= ~SASL_MECH_BIT(SASL_PLAIN);
    c->sasl = sasl_session_new(px->authw, mechs, c->peer_ip, c->id);
    c->login_ev = evtimer_new(px->base, login_timeout_cb, c);
    if (!c->sasl || !c->login_ev)
        return -1;
    uint64_t ms = px->cfg->auth.login_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return evtimer_add(c->login_ev, &tv);
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

static int connect_upstream(struct client *c)
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
    if (!c->slots || !c->bev || setup_auth(c) || (c->authed && connect_upstream(c))) {
        if (!c->bev)
            evutil_closesocket(fd);
        log_warn("client %llu (%s): cannot set up the connection", (unsigned long long)c->id,
                 c->peer);
        close_client(c, CLOSE_UPSTREAM);
        return NULL;
    }
    /* TLS records cannot be read around the bufferevent: no direct large-frame reads. */
    if (!c->tls && !(c->big_ev = event_new(px->base, fd, EV_READ | EV_PERSIST, big_read_cb, c))) {
        close_client(c, CLOSE_UPSTREAM);
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
        resume_client(c, PAUSE_UPGRADE);
    }
}

void client_drain_all(struct proxy *px)
{
    struct client *c, *next;
    for (c = TAILQ_FIRST(&px->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        c->draining = 1;
        update_client_read(c);
        maybe_finish_drain(c);
    }
}

void client_free_all(struct proxy *px)
{
    struct client *c;
    while ((c = TAILQ_FIRST(&px->clients)))
        close_client(c, CLOSE_DRAIN);
}
