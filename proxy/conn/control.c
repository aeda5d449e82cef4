/*
 * control.c - the control connection: ApiVersions, Metadata, refresh,
 * reconnect with backoff. See control.h.
 */
#include "control.h"

#include "config.h"
#include "kproto.h"
#include "kfetch.h"
#include "krewrite.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define CTL_CLIENT_ID "eosproxy"
#define CTL_APIVERSIONS_VERSION 2
#define CTL_MAX_RESPONSE (64u << 20)

enum ctl_state { CTL_IDLE, CTL_CONNECTING, CTL_APIVERSIONS, CTL_METADATA, CTL_READY };

struct ctl_addr {
    char *host;
    int port;
};

struct control {
    struct proxy *px;
    struct ctl_addr *addrs; /* the bootstrap list */
    size_t naddrs;
    size_t attempt; /* counts connection attempts, picks the address */
    enum ctl_state state;
    struct bufferevent *bev;
    struct event *timer; /* reconnect, request timeout or refresh */
    uint64_t backoff_ms;
    int32_t correlation_id;
    int16_t md_version;
    const char *target; /* host of the current attempt, for logs */
    int target_port;
};

static void ctl_connect(struct control *ctl);

static void arm_timer(struct control *ctl, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ctl->timer, &tv);
}

static void ctl_disconnect(struct control *ctl)
{
    if (ctl->bev) {
        upstream_free(ctl->bev);
        ctl->bev = NULL;
    }
}

/* Gives up on the current connection and retries after the backoff. kind < 0:
 * upstream.c has already counted and logged why (UPSTREAM_EVENT_COUNTED). */
static void ctl_fail(struct control *ctl, int kind, const char *what)
{
    const config_t *cfg = ctl->px->cfg;
    if (kind >= 0) {
        g_metrics.upstream_errors[kind]++;
        log_warn("upstream %s:%d: %s; retrying in %llu ms", ctl->target ? ctl->target : "?",
                 ctl->target_port, what, (unsigned long long)ctl->backoff_ms);
    } else {
        log_info("upstream %s:%d: retrying in %llu ms", ctl->target ? ctl->target : "?",
                 ctl->target_port, (unsigned long long)ctl->backoff_ms);
    }
    ctl_disconnect(ctl);
    ctl->state = CTL_IDLE;
    arm_timer(ctl, ctl->backoff_ms);
    ctl->backoff_ms *= 2;
    if (ctl->backoff_ms > cfg->upstream.reconnect_backoff_max_ms)
        ctl->backoff_ms = cfg->upstream.reconnect_backoff_max_ms;
}

/* Sends a request frame built in w and arms the request timeout. */
static void ctl_send(struct control *ctl, kwriter_t *w, enum ctl_state next)
{
    if (w->err) {
        kw_free(w);
        ctl_fail(ctl, UPERR_PROTOCOL, "cannot build request");
        return;
    }
    bufferevent_write(ctl->bev, w->buf, w->len);
    kw_free(w);
    ctl->state = next;
    arm_timer(ctl, ctl->px->cfg->upstream.request_timeout_ms);
}

static void send_apiversions(struct control *ctl)
{
    kwriter_t w;
    kw_init(&w, 128);
    kproto_apiversions_request(&w, CTL_APIVERSIONS_VERSION, ++ctl->correlation_id, CTL_CLIENT_ID);
    ctl_send(ctl, &w, CTL_APIVERSIONS);
}

static void send_metadata(struct control *ctl)
{
    kwriter_t w;
    kw_init(&w, 128);
    kproto_metadata_request(&w, ctl->md_version, ++ctl->correlation_id, CTL_CLIENT_ID);
    ctl_send(ctl, &w, CTL_METADATA);
}

static int on_apiversions(struct control *ctl, const uint8_t *frame, size_t len)
{
    struct proxy *px = ctl->px;
    kver_range_t up[KAPI_MAX];
    int err = kproto_apiversions_parse(CTL_APIVERSIONS_VERSION, frame, len, up);
    if (err != 0) {
        ctl_fail(ctl, UPERR_PROTOCOL,
                 err < 0 ? "malformed ApiVersions response" : "ApiVersions returned an error");
        return -1;
    }
    kproto_apiversions_intersect(up, px->versions);
    proxy_adjust_versions(px);
    px->have_versions = 1;
    const kver_range_t *md = &px->versions[KAPI_Metadata];
    if (md->max_ver < 1 || md->min_ver > md->max_ver) {
        ctl_fail(ctl, UPERR_PROTOCOL, "broker offers no Metadata version eosproxy can use");
        return -1;
    }
    ctl->md_version = md->max_ver;
    send_metadata(ctl);
    return 0;
}

/* The map callback learns each broker; the rewritten copy is thrown away. */
static int on_metadata(struct control *ctl, const uint8_t *frame, size_t len)
{
    kwriter_t w;
    kw_init(&w, len + 256);
    const char *why = NULL;
    int rc = krewrite_response(KAPI_Metadata, ctl->md_version, frame, len, proxy_map_endpoint,
                               ctl->px, &w, &why);
    kw_free(&w);
    if (rc) {
        ctl_fail(ctl, UPERR_PROTOCOL, why ? why : "malformed Metadata response");
        return -1;
    }
    g_metrics.metadata_refreshes++;
    ctl->backoff_ms = ctl->px->cfg->upstream.reconnect_backoff_ms;
    ctl->state = CTL_READY;
    proxy_set_ready(ctl->px);
    arm_timer(ctl, ctl->px->cfg->upstream.metadata_refresh_ms);
    return 0;
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
    struct control *ctl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (ctl->bev && evbuffer_get_length(in) >= 4) {
        uint8_t szb[4];
        evbuffer_copyout(in, szb, 4);
        int32_t size = kbe32(szb);
        if (size < 4 || (uint32_t)size > CTL_MAX_RESPONSE) {
            /* A TLS record (alert or handshake, version 3.x) where a Kafka frame belongs. */
            int tls = (szb[0] == 0x15 || szb[0] == 0x16) && szb[1] == 0x03;
            ctl_fail(ctl, UPERR_PROTOCOL,
                     tls ? "the broker answered with TLS: this listener wants upstream.tls"
                         : "bad response frame size");
            return;
        }
        if (evbuffer_get_length(in) < (size_t)size + 4)
            return;
        const uint8_t *frame = evbuffer_pullup(in, size + 4) + 4;
        int16_t api = ctl->state == CTL_APIVERSIONS ? KAPI_ApiVersions : KAPI_Metadata;
        int16_t ver = api == KAPI_ApiVersions ? CTL_APIVERSIONS_VERSION : ctl->md_version;
        int32_t corr;
        size_t body;
        if ((ctl->state != CTL_APIVERSIONS && ctl->state != CTL_METADATA) ||
            kproto_parse_response_header(api, ver, frame, (size_t)size, &corr, &body) ||
            corr != ctl->correlation_id) {
            ctl_fail(ctl, UPERR_PROTOCOL, "unexpected response");
            return;
        }
        evtimer_del(ctl->timer);
        int rc = api == KAPI_ApiVersions ? on_apiversions(ctl, frame, (size_t)size)
                                         : on_metadata(ctl, frame, (size_t)size);
        if (rc)
            return;
        evbuffer_drain(in, size + 4);
    }
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct control *ctl = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        log_debug("upstream %s:%d: connected", ctl->target, ctl->target_port);
        send_apiversions(ctl);
        return;
    }
    if (what & UPSTREAM_EVENT_COUNTED)
        ctl_fail(ctl, -1, NULL);
    else if (ctl->state == CTL_CONNECTING)
        ctl_fail(ctl, UPERR_CONNECT, "connect failed");
    else if (ctl->state == CTL_APIVERSIONS || ctl->state == CTL_METADATA)
        /* What a broker does to a client that skips the TLS or SASL its listener
         * wants (a SASL listener answers ApiVersions, then closes at Metadata). */
        ctl_fail(ctl, UPERR_CLOSED,
                 ctl->state == CTL_APIVERSIONS
                     ? "connection closed before the broker answered ApiVersions (does this "
                       "listener want TLS or SASL? see upstream.tls and upstream.sasl)"
                     : "connection closed before the broker answered Metadata (does this "
                       "listener want TLS or SASL? see upstream.tls and upstream.sasl)");
    else
        ctl_fail(ctl, UPERR_CLOSED, "connection closed");
}

static void ctl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct control *ctl = arg;
    (void)fd;
    (void)what;
    switch (ctl->state) {
    case CTL_IDLE:
        ctl_connect(ctl);
        break;
    case CTL_READY:
        send_metadata(ctl); /* periodic refresh */
        break;
    case CTL_CONNECTING:
        ctl_fail(ctl, UPERR_CONNECT, "connect timed out");
        break;
    default:
        ctl_fail(ctl, UPERR_TIMEOUT, "request timed out");
        break;
    }
}

/* Next address to try: the bootstrap list first, then learned brokers. */
static void pick_target(struct control *ctl)
{
    struct proxy *px = ctl->px;
    size_t n = ctl->naddrs + px->nbrokers;
    size_t i = ctl->attempt++ % n;
    if (i < ctl->naddrs) {
        ctl->target = ctl->addrs[i].host;
        ctl->target_port = ctl->addrs[i].port;
    } else {
        struct broker *b = px->brokers[i - ctl->naddrs];
        ctl->target = b->host;
        ctl->target_port = b->port;
    }
}

static void ctl_connect(struct control *ctl)
{
    struct proxy *px = ctl->px;
    ctl_disconnect(ctl);
    pick_target(ctl);
    ctl->state = CTL_CONNECTING;
    /* Connecting ends once TLS and the SASL login (bounded by request_timeout) are done. */
    uint64_t ms = px->cfg->upstream.connect_timeout_ms;
    if (upstream_sec_holds_writes(px->upsec))
        ms += px->cfg->upstream.request_timeout_ms;
    arm_timer(ctl, ms);
    ctl->bev = upstream_connect(px, ctl->target, ctl->target_port, 0, ctl_read_cb, NULL,
                                ctl_event_cb, ctl);
    if (!ctl->bev)
        ctl_fail(ctl, UPERR_CONNECT, "connect failed");
}

struct control *control_new(struct proxy *px, const char *bootstrap)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    if (!ctl)
        return NULL;
    ctl->px = px;
    ctl->backoff_ms = px->cfg->upstream.reconnect_backoff_ms;
    char *list = strdup(bootstrap);
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        struct ctl_addr a;
        if (config_parse_hostport(tok, &a.host, &a.port)) {
            log_error("upstream.bootstrap: bad entry '%s'", tok);
            free(list);
            control_free(ctl);
            return NULL;
        }
        struct ctl_addr *na = realloc(ctl->addrs, (ctl->naddrs + 1) * sizeof(*na));
        if (!na) {
            free(a.host);
            free(list);
            control_free(ctl);
            return NULL;
        }
        ctl->addrs = na;
        ctl->addrs[ctl->naddrs++] = a;
    }
    free(list);
    ctl->timer = evtimer_new(px->base, ctl_timer_cb, ctl);
    if (ctl->naddrs == 0 || !ctl->timer) {
        control_free(ctl);
        return NULL;
    }
    return ctl;
}

void control_start(struct control *ctl)
{
    ctl_connect(ctl);
}

void control_free(struct control *ctl)
{
    if (!ctl)
        return;
    ctl_disconnect(ctl);
    if (ctl->timer)
        event_free(ctl->timer);
    for (size_t i = 0; i < ctl->naddrs; i++)
        free(ctl->addrs[i].host);
    free(ctl->addrs);
    free(ctl);
}
