/*
 * upstream.c - connections to brokers: TCP, TLS, the SASL login, then the
 * hand-over to the caller. See upstream.h.
 *
 * A login in progress is a struct login, the arg of upstream.c's own
 * callbacks on the bufferevent; that is how upstream_free finds it. It
 * walks PH_CONNECTING (TCP connect and the TLS handshake) -> PH_HANDSHAKE
 * (SaslHandshake v1 sent) -> PH_AUTH_FIRST (the first SaslAuthenticate v1
 * sent) -> PH_AUTH_FINAL (SCRAM only: client-final sent). It ends in
 * exactly one of: hand_over (the caller's callbacks go on the bufferevent,
 * then its event callback hears BEV_EVENT_CONNECTED) or give_up (the
 * caller's event callback hears an error). The login is freed before the
 * caller's callback runs, since that callback may free the bufferevent.
 */
#include "upstream.h"

#include "kbuf.h"
#include "kerror.h"
#include "ksasl.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "scram.h"
#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define UP_CLIENT_ID "eosproxy"
#define UP_SASL_HANDSHAKE_VERSION 1
#define UP_SASL_AUTHENTICATE_VERSION 1
#define UP_MAX_SASL_FRAME (64u << 10) /* a SASL response larger than this is refused */
#define UP_MAX_MECHS 32               /* mechanisms of a SaslHandshake response kept */
#define UP_USERNAME_MAX 255
#define UP_PASSWORD_MAX 1024
#define UP_SCRAM_MSG_MAX 4096 /* client-first and client-final messages */
/* Kafka's brokers accept 4096..16384 SCRAM iterations (ScramMechanism). */
#define UP_SCRAM_MAX_ITERATIONS 16384
#define UP_HOST_MAX 255

struct upstream_sec {
    SSL_CTX *ssl_ctx; /* upstream.tls; NULL: plaintext */
    int verify;
    sasl_mech_t mech; /* SASL_NONE: no login */
    char *username;
    char *password; /* wiped on free; never logged */
    scram_salt_cache_t salt_cache;
};

enum login_phase { PH_CONNECTING, PH_HANDSHAKE, PH_AUTH_FIRST, PH_AUTH_FINAL };

struct login {
    struct upstream_sec *sec;
    struct bufferevent *bev;
    enum login_phase phase;
    int tls;
    int32_t corr; /* correlation id of the request in flight */
    uint64_t request_timeout_ms;
    struct event *timer; /* connect + TLS, then the whole SASL exchange */
    scram_client_t *scram;
    bufferevent_data_cb readcb, writecb; /* the caller's */
    bufferevent_event_cb eventcb;
    void *arg;
    int port;
    char host[UP_HOST_MAX + 1];
};

static void login_read_cb(struct bufferevent *bev, void *arg);
static void login_event_cb(struct bufferevent *bev, short what, void *arg);

/* Frees a string after overwriting it. */
static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* Copies at most cap bytes of a broker's string into out for a log line,
 * printable ASCII only ('?' for anything else). */
static void printable(const char *p, int32_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (int32_t i = 0; p && i < len && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)p[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

/* ---- the security settings ---- */

static int sec_load_sasl(struct upstream_sec *s, const config_t *cfg, char *err, size_t errlen)
{
    sasl_mech_t m = cfg->upstream.sasl.mechanism;
    if (m != SASL_PLAIN && m != SASL_SCRAM_SHA_256 && m != SASL_SCRAM_SHA_512) {
        set_err(err, errlen, "upstream.sasl.mechanism: unknown mechanism %d", (int)m);
        return -1;
    }
    const char *user = cfg->upstream.sasl.username;
    const char *pw = cfg->upstream.sasl.password;
    if (!user || !*user || strlen(user) > UP_USERNAME_MAX) {
        set_err(err, errlen, "upstream.sasl.username: required, at most %d bytes", UP_USERNAME_MAX);
        return -1;
    }
    if (!pw || !*pw || strlen(pw) > UP_PASSWORD_MAX) {
        set_err(err, errlen, "upstream.sasl.password: required, at most %d bytes", UP_PASSWORD_MAX);
        return -1;
    }
    s->mech = m;
    s->username = strdup(user);
    s->password = strdup(pw);
    if (!s->username || !s->password) {
        set_err(err, errlen, "upstream.sasl: out of memory");
        return -1;
    }
    return 0;
}

struct upstream_sec *upstream_sec_new(const config_t *cfg, char *err, size_t errlen)
{
    struct upstream_sec *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errlen, "upstream: out of memory");
        return NULL;
    }
    if (cfg->upstream.tls.enabled) {
        char why[512] = "";
        s->ssl_ctx = tls_client_ctx_new(cfg->upstream.tls.ca_file, cfg->upstream.tls.verify,
                                        cfg->upstream.tls.cert_file, cfg->upstream.tls.key_file,
                                        why, sizeof(why));
        if (!s->ssl_ctx) {
            set_err(err, errlen, "upstream.tls: %s", why);
            upstream_sec_free(s);
            return NULL;
        }
        tls_ctx_set_ktls(s->ssl_ctx, cfg->upstream.tls.ktls);
        s->verify = cfg->upstream.tls.verify;
        if (!s->verify)
            log_warn("upstream.tls.verify is off: broker certificates are not checked");
    }
    if (cfg->upstream.sasl.mechanism != SASL_NONE) {
        if (sec_load_sasl(s, cfg, err, errlen)) {
            upstream_sec_free(s);
            return NULL;
        }
        if (s->mech == SASL_PLAIN && !s->ssl_ctx)
            log_warn("upstream.sasl: PLAIN without upstream.tls sends the password in clear");
    }
    return s;
}

void upstream_sec_free(struct upstream_sec *s)
{
    if (!s)
        return;
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->username);
    wipe_free(s->password);
    OPENSSL_cleanse(&s->salt_cache, sizeof(s->salt_cache));
    free(s);
}

int upstream_sec_holds_writes(const struct upstream_sec *s)
{
    return s && s->mech != SASL_NONE;
}

/* ---- connecting ---- */

/* Records a synchronous failure of bufferevent_socket_connect_hostname. */
static void guard_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    *(short *)arg |= what;
}

/*
 * Starts connecting bev to host:port. An error libevent reports from
 * within the call (a socket that cannot be made, a refused numeric
 * address) lands on a guard callback instead of anybody's real one.
 * Returns 0, or -1 when the connect has already failed.
 */
static int start_connect(struct proxy *px, struct bufferevent *bev, const char *host, int port)
{
    short failed = 0;
    bufferevent_setcb(bev, NULL, NULL, guard_event_cb, &failed);
    int rc = bufferevent_socket_connect_hostname(bev, px->dns, AF_UNSPEC, host, port);
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    return rc || failed ? -1 : 0;
}

/* Arms the login's timer; 0 ms means no bound. */
static void arm(struct login *lg, uint64_t ms)
{
    if (ms == 0) {
        evtimer_del(lg->timer);
        return;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(lg->timer, &tv);
}

static void login_free(struct login *lg)
{
    if (!lg)
        return;
    if (lg->timer)
        event_free(lg->timer);
    scram_client_free(lg->scram);
    free(lg);
}

/*
 * Ends the login with the caller's event callback hearing what. The login
 * is freed and the bufferevent left without callbacks first: the caller
 * may free it from its callback.
 */
static void give_up(struct login *lg, short what)
{
    struct bufferevent *bev = lg->bev;
    bufferevent_event_cb eventcb = lg->eventcb;
    void *arg = lg->arg;
    login_free(lg);
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    if (eventcb)
        eventcb(bev, what, arg);
}

/* Logs and counts why the login failed, then gives up. */
static void fail(struct login *lg, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct login *lg, int kind, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    g_metrics.upstream_errors[kind]++;
    log_warn("upstream %s:%d: %s", lg->host, lg->port, why);
    give_up(lg, BEV_EVENT_ERROR | UPSTREAM_EVENT_COUNTED);
}

/*
 * The connection is usable: the caller's callbacks go on, then its event
 * callback hears BEV_EVENT_CONNECTED. Bytes the broker sent after the last
 * SASL frame stay in the input; a deferred read callback tells the caller.
 */
static void hand_over(struct login *lg)
{
    struct bufferevent *bev = lg->bev;
    bufferevent_event_cb eventcb = lg->eventcb;
    void *arg = lg->arg;
    bufferevent_setcb(bev, lg->readcb, lg->writecb, eventcb, arg);
    login_free(lg);
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    if (eventcb)
        eventcb(bev, BEV_EVENT_CONNECTED, arg);
}

/* Writes a request built in w (then wiped: it may hold credentials). 0 or -1 (failed, lg gone). */
static int send_frame(struct login *lg, kwriter_t *w, int rc, const char *what)
{
    int ok = rc == 0 && !w->err && bufferevent_write(lg->bev, w->buf, w->len) == 0;
    if (w->buf)
        OPENSSL_cleanse(w->buf, w->cap);
    kw_free(w);
    if (!ok) {
        fail(lg, UPERR_PROTOCOL, "cannot send %s", what);
        return -1;
    }
    return 0;
}

static void send_authenticate(struct login *lg, const uint8_t *auth, size_t alen,
                              enum login_phase next)
{
    kwriter_t w;
    kw_init(&w, alen + 64);
    int rc = ksasl_authenticate_req_write(&w, UP_SASL_AUTHENTICATE_VERSION, ++lg->corr,
                                          UP_CLIENT_ID, auth, alen);
    if (send_frame(lg, &w, rc, "SaslAuthenticate") == 0)
        lg->phase = next;
}

static void start_plain(struct login *lg)
{
    kwriter_t tok;
    kw_init(&tok, 64);
    int rc = ksasl_plain_write(&tok, lg->sec->username, lg->sec->password);
    if (rc || tok.err) {
        if (tok.buf)
            OPENSSL_cleanse(tok.buf, tok.cap);
        kw_free(&tok);
        fail(lg, UPERR_AUTH, "cannot build the SASL/PLAIN token");
        return;
    }
    uint8_t *buf = tok.buf;
    size_t cap = tok.cap;
    send_authenticate(lg, tok.buf, tok.len, PH_AUTH_FIRST);
    OPENSSL_cleanse(buf, cap);
    kw_free(&tok);
}

static void start_scram(struct login *lg)
{
    struct upstream_sec *sec = lg->sec;
    scram_mech_t m = sec->mech == SASL_SCRAM_SHA_256 ? SCRAM_SHA_256 : SCRAM_SHA_512;
    lg->scram = scram_client_new(m, sec->username, sec->password, &sec->salt_cache);
    char msg[UP_SCRAM_MSG_MAX];
    int n = lg->scram ? scram_client_first_message(lg->scram, msg, sizeof(msg)) : -1;
    if (n < 0) {
        fail(lg, UPERR_AUTH, "cannot build the SCRAM client-first message");
        return;
    }
    send_authenticate(lg, (const uint8_t *)msg, (size_t)n, PH_AUTH_FIRST);
}

/* TCP (and TLS) are up: SaslHandshake, under the login timeout. */
static void start_sasl(struct login *lg)
{
    lg->phase = PH_HANDSHAKE;
    arm(lg, lg->request_timeout_ms);
    kwriter_t w;
    kw_init(&w, 64);
    int rc = ksasl_handshake_req_write(&w, UP_SASL_HANDSHAKE_VERSION, ++lg->corr, UP_CLIENT_ID,
                                       config_sasl_mech_name(lg->sec->mech));
    send_frame(lg, &w, rc, "SaslHandshake");
}

/* "A, B, C" from the broker's mechanisms, printable and bounded. */
static void join_mechs(const kstr_t *mechs, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[64];
        printable(mechs[i].ptr, mechs[i].len, one, sizeof(one));
        size_t used = strlen(out);
        snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", one);
    }
    if (!out[0])
        snprintf(out, outlen, "none");
}

static void on_handshake(struct login *lg, const uint8_t *frame, size_t len)
{
    kstr_t mechs[UP_MAX_MECHS];
    size_t n = 0;
    int32_t corr = 0;
    int16_t ec = 0;
    if (ksasl_handshake_resp_parse(frame, len, &corr, &ec, mechs, UP_MAX_MECHS, &n) ||
        corr != lg->corr) {
        fail(lg, UPERR_PROTOCOL, "sent a malformed SaslHandshake response");
        return;
    }
    if (n > UP_MAX_MECHS)
        n = UP_MAX_MECHS;
    if (ec == KERR_UNSUPPORTED_SASL_MECHANISM) {
        char offered[512];
        join_mechs(mechs, n, offered, sizeof(offered));
        fail(lg, UPERR_AUTH, "SASL mechanism %s is not enabled on the broker (it offers: %s)",
             config_sasl_mech_name(lg->sec->mech), offered);
        return;
    }
    if (ec != KERR_NONE) {
        fail(lg, UPERR_AUTH, "SaslHandshake refused with ErrorCode %d%s", (int)ec,
             ec == KERR_ILLEGAL_SASL_STATE ? " (ILLEGAL_SASL_STATE: is it a SASL listener?)" : "");
        return;
    }
    if (lg->sec->mech == SASL_PLAIN)
        start_plain(lg);
    else
        start_scram(lg);
}

/*
 * The i= attribute of a SCRAM server-first message, -1 if absent or not a
 * number (scram.c then refuses the message). Read here first because
 * scram_client_final_message runs PBKDF2 on the event loop for that many
 * rounds.
 */
static long scram_iterations(const uint8_t *msg, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && msg[end] != ',')
            end++;
        if (end - i > 2 && msg[i] == 'i' && msg[i + 1] == '=') {
            long v = 0;
            for (size_t k = i + 2; k < end; k++) {
                if (msg[k] < '0' || msg[k] > '9')
                    return -1;
                v = v * 10 + (msg[k] - '0');
                if (v > 1000000000L)
                    return v;
            }
            return v;
        }
        i = end + 1;
    }
    return -1;
}

static void on_authenticate(struct login *lg, const uint8_t *frame, size_t len)
{
    int32_t corr = 0;
    int16_t ec = 0;
    kstr_t msg = {NULL, -1};
    kbytes_t auth = {NULL, -1};
    int64_t lifetime = 0;
    if (ksasl_authenticate_resp_parse(UP_SASL_AUTHENTICATE_VERSION, frame, len, &corr, &ec, &msg,
                                      &auth, &lifetime) ||
        corr != lg->corr) {
        fail(lg, UPERR_PROTOCOL, "sent a malformed SaslAuthenticate response");
        return;
    }
    if (ec != KERR_NONE) {
        char text[256];
        printable(msg.ptr, msg.len, text, sizeof(text));
        fail(lg, UPERR_AUTH, "SASL %s login as '%s' refused: %s (ErrorCode %d)",
             config_sasl_mech_name(lg->sec->mech), lg->sec->username, text[0] ? text : "no message",
             (int)ec);
        return;
    }
    const uint8_t *ab = auth.len > 0 ? auth.ptr : NULL;
    size_t alen = auth.len > 0 ? (size_t)auth.len : 0;
    if (lg->phase == PH_AUTH_FIRST && lg->sec->mech != SASL_PLAIN) {
        long iterations = scram_iterations(ab, alen);
        if (iterations > UP_SCRAM_MAX_ITERATIONS) {
            fail(lg, UPERR_AUTH, "asks for %ld SCRAM iterations (more than Kafka's %d)", iterations,
                 UP_SCRAM_MAX_ITERATIONS);
            return;
        }
        char out[UP_SCRAM_MSG_MAX];
        int n = scram_client_final_message(lg->scram, ab, alen, out, sizeof(out));
        if (n < 0) {
            fail(lg, UPERR_AUTH, "sent a SCRAM server-first message eosproxy cannot use");
            return;
        }
        send_authenticate(lg, (const uint8_t *)out, (size_t)n, PH_AUTH_FINAL);
        OPENSSL_cleanse(out, sizeof(out));
        return;
    }
    if (lg->phase == PH_AUTH_FINAL && scram_client_verify_server_final(lg->scram, ab, alen)) {
        fail(lg, UPERR_AUTH, "SCRAM server signature did not verify (wrong broker or password)");
        return;
    }
    log_debug("upstream %s:%d: logged in as '%s' (SASL %s, session lifetime %lld ms)", lg->host,
              lg->port, lg->sec->username, config_sasl_mech_name(lg->sec->mech),
              (long long)lifetime);
    hand_over(lg);
}

/* One whole response frame (size prefix stripped) of the login. */
static void on_frame(struct login *lg, const uint8_t *frame, size_t len)
{
    if (lg->phase == PH_HANDSHAKE)
        on_handshake(lg, frame, len);
    else if (lg->phase == PH_AUTH_FIRST || lg->phase == PH_AUTH_FINAL)
        on_authenticate(lg, frame, len);
    else
        fail(lg, UPERR_PROTOCOL, "sent data before the SASL login began");
}

/*
 * Reads one response per call: it is copied out and drained before it is
 * acted on, because acting may end the login (and the caller may then free
 * the bufferevent). The broker answers one request at a time, so a second
 * frame cannot legitimately be waiting; bytes after the last one are the
 * caller's (see hand_over).
 */
static void login_read_cb(struct bufferevent *bev, void *arg)
{
    struct login *lg = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in);
    if (have < 4)
        return;
    uint8_t szb[4];
    evbuffer_copyout(in, szb, 4);
    int32_t size = kbe32(szb);
    if (size < 4 || (uint32_t)size > UP_MAX_SASL_FRAME) {
        fail(lg, UPERR_PROTOCOL, "sent a bad frame size (%ld) during the SASL login", (long)size);
        return;
    }
    if (have < (size_t)size + 4)
        return;
    uint8_t *frame = malloc((size_t)size);
    if (!frame) {
        fail(lg, UPERR_PROTOCOL, "out of memory");
        return;
    }
    evbuffer_drain(in, 4);
    evbuffer_remove(in, frame, (size_t)size);
    on_frame(lg, frame, (size_t)size);
    free(frame);
}

/* 1 if fd's TCP connection was established (whatever happened since). */
static int tcp_connected(evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    return fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0;
}

static void login_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct login *lg = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (lg->phase != PH_CONNECTING)
            return;
        if (lg->tls)
            tls_note_ktls(bev, TLS_SIDE_UPSTREAM);
        if (lg->tls && log_enabled(LOG_DEBUG)) {
            char peer[128];
            SSL *ssl = bufferevent_openssl_get_ssl(bev);
            log_debug("upstream %s:%d: TLS established (%s, certificate CN %s)", lg->host, lg->port,
                      ssl ? SSL_get_version(ssl) : "?", tls_peer_name(bev, peer, sizeof(peer)));
        }
        if (lg->sec->mech == SASL_NONE)
            hand_over(lg);
        else
            start_sasl(lg);
        return;
    }
    if (lg->phase != PH_CONNECTING) {
        /* TLS 1.3 servers refuse a client certificate after the handshake:
         * the alert arrives while the login runs. */
        unsigned long tls_err = lg->tls ? bufferevent_get_openssl_error(bev) : 0;
        if (tls_err) {
            char why[256];
            ERR_error_string_n(tls_err, why, sizeof(why));
            fail(lg, UPERR_TLS, "TLS failed during the SASL login: %s", why);
            return;
        }
        fail(lg, UPERR_AUTH, "closed the connection during the SASL login%s",
             lg->phase == PH_HANDSHAKE ? " (is it a SASL listener?)" : "");
        return;
    }
    /* Failing to reach the broker at all (for TLS bufferevents a refused
     * connect may come as an EOF) is the caller's to report. */
    if (!lg->tls || !tcp_connected(bufferevent_getfd(bev))) {
        give_up(lg, what);
        return;
    }
    char why[300];
    if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "closed the connection (is it a TLS listener?)");
    else
        tls_describe_error(bev, why, sizeof(why));
    fail(lg, UPERR_TLS, "TLS handshake failed: %s", why);
}

static void login_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct login *lg = arg;
    (void)fd;
    (void)what;
    if (lg->phase != PH_CONNECTING) {
        fail(lg, UPERR_TIMEOUT, "SASL login timed out after %llu ms",
             (unsigned long long)lg->request_timeout_ms);
    } else if (lg->tls && tcp_connected(bufferevent_getfd(lg->bev))) {
        fail(lg, UPERR_TLS, "TLS handshake timed out");
    } else {
        log_debug("upstream %s:%d: connect timed out", lg->host, lg->port);
        give_up(lg, BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT);
    }
}

/* The bufferevent for a login: TLS (CONNECTING) on sec's context, or a plain socket. */
static struct bufferevent *login_bev(struct proxy *px, struct login *lg, const char *host, int opts)
{
    if (!lg->sec->ssl_ctx)
        return bufferevent_socket_new(px->base, -1, opts);
    SSL *ssl = tls_client_ssl_new(lg->sec->ssl_ctx, host, lg->sec->verify);
    if (!ssl)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(px->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* Brokers close without a TLS close_notify; that is an EOF, not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static struct bufferevent *connect_secured(struct proxy *px, const char *host, int port, int opts,
                                           bufferevent_data_cb readcb, bufferevent_data_cb writecb,
                                           bufferevent_event_cb eventcb, void *arg)
{
    struct login *lg = calloc(1, sizeof(*lg));
    if (!lg)
        return NULL;
    lg->sec = px->upsec;
    lg->tls = lg->sec->ssl_ctx != NULL;
    lg->phase = PH_CONNECTING;
    lg->request_timeout_ms = px->cfg->upstream.request_timeout_ms;
    lg->readcb = readcb;
    lg->writecb = writecb;
    lg->eventcb = eventcb;
    lg->arg = arg;
    lg->port = port;
    snprintf(lg->host, sizeof(lg->host), "%s", host);
    lg->timer = evtimer_new(px->base, login_timer_cb, lg);
    lg->bev = lg->timer ? login_bev(px, lg, host, opts) : NULL;
    if (!lg->bev || start_connect(px, lg->bev, host, port)) {
        if (lg->bev)
            bufferevent_free(lg->bev);
        login_free(lg);
        return NULL;
    }
    struct bufferevent *bev = lg->bev;
    bufferevent_setcb(bev, login_read_cb, NULL, login_event_cb, lg);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    arm(lg, px->cfg->upstream.connect_timeout_ms);
    return bev;
}

struct bufferevent *upstream_connect(struct proxy *px, const char *host, int port, int bev_opts,
                                     bufferevent_data_cb readcb, bufferevent_data_cb writecb,
                                     bufferevent_event_cb eventcb, void *arg)
{
    if (!px || !host || !*host || strlen(host) > UP_HOST_MAX || port < 1 || port > 65535)
        return NULL;
    int opts = bev_opts | BEV_OPT_CLOSE_ON_FREE;
    const struct upstream_sec *sec = px->upsec;
    if (sec && (sec->ssl_ctx || sec->mech != SASL_NONE))
        return connect_secured(px, host, port, opts, readcb, writecb, eventcb, arg);
    struct bufferevent *bev = bufferevent_socket_new(px->base, -1, opts);
    if (!bev)
        return NULL;
    if (start_connect(px, bev, host, port)) {
        bufferevent_free(bev);
        return NULL;
    }
    bufferevent_setcb(bev, readcb, writecb, eventcb, arg);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return bev;
}

void upstream_free(struct bufferevent *bev)
{
    if (!bev)
        return;
    bufferevent_event_cb eventcb = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, NULL, NULL, &eventcb, &arg);
    if (eventcb == login_event_cb)
        login_free(arg);
    bufferevent_free(bev);
}
