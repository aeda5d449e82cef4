/*
 * login.c - the SASL exchange of a client connection (auth.users_file):
 * SaslHandshake and SaslAuthenticate, raw tokens after SaslHandshake v0,
 * the password check on the auth worker (client_auth_result), the delayed
 * failure answer and auth.login_timeout. The broker connection is opened
 * only once the client has logged in.
 */
#include "client_int.h"

#include "kerror.h"
#include "ksasl.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Queues a locally built frame (w, freed here) into the slot at token. */
static void complete_token(struct client *c, uint64_t token, kwriter_t *w)
{
    struct evbuffer *resp = evbuffer_new();
    evbuffer_add(resp, w->buf, w->len);
    kw_free(w);
    g_metrics.local_responses++;
    client_slot_complete(c, slot_at(c, token), resp);
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
    client_slot_complete(c, slot_at(c, c->auth_token), resp);
    client_maybe_finish_drain(c);
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
    client_update_read(c);
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
    if (client_connect_upstream(c)) {
        log_warn("client %llu (%s): cannot set up the upstream connection",
                 (unsigned long long)c->id, c->peer);
        client_close(c, CLOSE_UPSTREAM);
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
        client_pause(c, PAUSE_AUTH);
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
        client_resume(c, PAUSE_AUTH); /* still paused while a failure is answered */
}

static int answer_handshake(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t len)
{
    kstr_t mech;
    if (ksasl_handshake_req_parse(frame + h->body_off, len - h->body_off, &mech)) {
        client_protocol_error(c, h, h->body_off, "malformed SaslHandshake request");
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
    client_answer_local(c, h, &w);
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
        client_protocol_error(c, h, h->body_off, "malformed SaslAuthenticate request");
        return REQ_CLOSED;
    }
    uint64_t token = c->tail;
    client_slot_push(c, h, SLOT_LOCAL);
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
int login_request(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t len)
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
    client_close(c, CLOSE_AUTH);
    return REQ_CLOSED;
}

/* A raw token after SaslHandshake v0 (size bytes at the head of in). */
int login_raw_token(struct client *c, struct evbuffer *in, size_t size)
{
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(size + 4));
    if (!p) {
        client_protocol_error(c, NULL, 0, "out of memory");
        return -1;
    }
    kreq_hdr_t raw = {.api_key = KAPI_SaslAuthenticate, .api_version = -1, .correlation_id = -1};
    uint64_t token = c->tail;
    client_slot_push(c, &raw, SLOT_LOCAL);
    int rc = auth_token_step(c, token, p + 4, size);
    if (rc == 0)
        evbuffer_drain(in, size + 4);
    return rc;
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
    client_close(c, CLOSE_AUTH);
}

/*
 * Sets up authentication for a new connection when auth.users_file is set:
 * the mechanisms it may use (PLAIN only over TLS or loopback unless
 * auth.allow_plaintext). Returns 0, or -1 when out of memory.
 */
int login_setup(struct client *c)
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
