/*
 * proxy.c - the proxy context: listeners, broker registry, readiness,
 * signals and graceful drain. See proxy.h.
 *
 * Port mapping: the bootstrap listener is listen.host:listen.port; upstream
 * broker node N is served on listen.host:(listen.broker_port_base + N), and
 * advertised to clients as listen.advertised_host:(base + N). The mapping
 * depends only on the node id, so it is the same across restarts and
 * across sidecars with the same config.
 */
#include "proxy.h"

#include "admin.h"
#include "authworker.h"
#include "client.h"
#include "control.h"
#include "dedup.h"
#include "dlqprod.h"
#include "dlqw.h"
#include "log.h"
#include "metrics.h"
#include "kfetch.h"
#include "mock.h"
#include "tls.h"
#include "txn.h"
#include "upgrade.h"
#include "upstream.h"
#include "users.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define LISTEN_BACKLOG 512

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg);
static void bootstrap_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                int socklen, void *arg);

/* Binds host:port (resolved numerically or by name, at start-up only). */
static struct evconnlistener *listen_on(struct proxy *px, const char *host, int port,
                                        evconnlistener_cb cb, void *arg)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) || !res) {
        log_error("cannot resolve listen address %s", host);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        px->base, cb, arg, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (!l)
        log_error("cannot listen on %s:%d: %s", host, port,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return l;
}

/* Common admission check; returns 1 if the connection may be served. */
static int admit(struct proxy *px, evutil_socket_t fd)
{
    if (px->draining) {
        evutil_closesocket(fd);
        return 0;
    }
    if (px->nclients >= px->cfg->listen.max_connections) {
        g_metrics.connections_rejected++;
        log_warn("refusing a connection: listen.max_connections (%d) reached",
                 px->cfg->listen.max_connections);
        evutil_closesocket(fd);
        return 0;
    }
    return 1;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct broker *b = arg;
    (void)l;
    if (admit(b->px, fd))
        client_new(b->px, fd, sa, socklen, b);
}

static void bootstrap_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                int socklen, void *arg)
{
    struct proxy *px = arg;
    (void)l;
    if (admit(px, fd))
        client_new(px, fd, sa, socklen, NULL);
}

struct broker *proxy_broker_find(struct proxy *px, int32_t node_id)
{
    for (size_t i = 0; i < px->nbrokers; i++) {
        if (px->brokers[i]->node_id == node_id)
            return px->brokers[i];
    }
    return NULL;
}

static void broker_free(struct broker *b)
{
    if (!b)
        return;
    if (b->listener)
        evconnlistener_free(b->listener);
    free(b->host);
    free(b);
}

/* Updates a known broker's real address if upstream metadata moved it. */
static void broker_update(struct broker *b, const char *host, size_t hlen, int port)
{
    if (b->port == port && strlen(b->host) == hlen && memcmp(b->host, host, hlen) == 0)
        return;
    char *h = strndup(host, hlen);
    if (!h)
        return;
    log_info("broker %d moved from %s:%d to %s:%d", b->node_id, b->host, b->port, h, port);
    free(b->host);
    b->host = h;
    b->port = port;
}

struct broker *proxy_broker_learn(struct proxy *px, int32_t node_id, const char *host, size_t hlen,
                                  int port)
{
    struct broker *b = proxy_broker_find(px, node_id);
    if (b) {
        broker_update(b, host, hlen, port);
        return b;
    }
    long lport = (long)px->cfg->listen.broker_port_base + node_id;
    if (node_id < 0 || lport < 1 || lport > 65535) {
        log_error("broker %d: listen port broker_port_base+%d is out of range; lower "
                  "listen.broker_port_base",
                  node_id, node_id);
        return NULL;
    }
    if (px->nbrokers == px->cap_brokers) {
        size_t cap = px->cap_brokers ? px->cap_brokers * 2 : 8;
        struct broker **nb = realloc(px->brokers, cap * sizeof(*nb));
        if (!nb)
            return NULL;
        px->brokers = nb;
        px->cap_brokers = cap;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->px = px;
    b->node_id = node_id;
    b->host = strndup(host, hlen);
    b->port = port;
    b->listen_port = (int)lport;
    if (!px->draining) {
        b->listener = listen_on(px, px->cfg->listen.host, b->listen_port, accept_cb, b);
        if (!b->listener) {
            broker_free(b);
            return NULL;
        }
    }
    px->brokers[px->nbrokers++] = b;
    g_metrics.brokers = (int64_t)px->nbrokers;
    log_info("broker %d (%s:%d) served on %s:%d", node_id, b->host, port,
             px->cfg->listen.advertised_host, b->listen_port);
    return b;
}

int proxy_map_endpoint(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                       int32_t *new_port)
{
    struct proxy *px = ctx;
    if (host.len < 0)
        return -1;
    struct broker *b = proxy_broker_learn(px, node_id, host.ptr, (size_t)host.len, port);
    if (!b)
        return -1;
    new_host->ptr = px->cfg->listen.advertised_host;
    new_host->len = (int32_t)strlen(px->cfg->listen.advertised_host);
    *new_port = b->listen_port;
    return 0;
}

void proxy_set_ready(struct proxy *px)
{
    if (px->ready || px->draining)
        return;
    px->bootstrap_listener =
        listen_on(px, px->cfg->listen.host, px->cfg->listen.port, bootstrap_accept_cb, px);
    if (!px->bootstrap_listener) {
        px->exit_code = 1;
        event_base_loopexit(px->base, NULL);
        return;
    }
    px->ready = 1;
    g_metrics.ready = 1;
    log_info("ready: bootstrap %s:%d, %zu brokers, service '%s'", px->cfg->listen.host,
             px->cfg->listen.port, px->nbrokers, px->cfg->service);
}

void proxy_client_gone(struct proxy *px)
{
    if (px->draining && px->nclients == 0)
        event_base_loopexit(px->base, NULL);
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *px = arg;
    (void)fd;
    (void)what;
    log_warn("drain timeout: closing %d connections with requests in flight", px->nclients);
    client_free_all(px);
    event_base_loopexit(px->base, NULL);
}

void proxy_drain(struct proxy *px)
{
    if (px->draining)
        return;
    px->draining = 1;
    g_metrics.ready = 0;
    log_info("draining: %d client connections, timeout %llu ms", px->nclients,
             (unsigned long long)px->cfg->drain_timeout_ms);
    if (px->bootstrap_listener) {
        evconnlistener_free(px->bootstrap_listener);
        px->bootstrap_listener = NULL;
    }
    for (size_t i = 0; i < px->nbrokers; i++) {
        if (px->brokers[i]->listener) {
            evconnlistener_free(px->brokers[i]->listener);
            px->brokers[i]->listener = NULL;
        }
    }
    uint64_t ms = px->cfg->drain_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    px->drain_timer = evtimer_new(px->base, drain_timeout_cb, px);
    evtimer_add(px->drain_timer, &tv);
    client_drain_all(px);
    if (px->nclients == 0)
        event_base_loopexit(px->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *px = arg;
    (void)what;
    if (px->draining) {
        log_warn("second signal %d: exiting now", (int)sig);
        client_free_all(px);
        event_base_loopexit(px->base, NULL);
        return;
    }
    log_info("signal %d: shutting down", (int)sig);
    proxy_drain(px);
}

/* PLAIN checks queued at once; more logins are refused until some finish. */
#define AUTH_QUEUE_MAX 256
#define AUTH_THREADS 2

static void auth_result_cb(void *arg, uint64_t job_id, int ok)
{
    client_auth_result(arg, job_id, ok);
}

/* Loads auth.users_file (logged on error). NULL on failure. */
static users_t *load_users(const config_t *cfg)
{
    char err[512];
    users_t *u = users_load(cfg->auth.users_file, err, sizeof(err));
    if (!u) {
        log_error("auth.users_file: %s", err);
        return NULL;
    }
    if (users_warning(u))
        log_warn("auth.users_file: %s", users_warning(u));
    return u;
}

/* listen.tls's server context (logged on error). NULL on failure. */
static SSL_CTX *load_tls(const config_t *cfg)
{
    char err[512];
    SSL_CTX *ctx = tls_server_ctx_new(cfg->listen.tls.cert_file, cfg->listen.tls.key_file,
                                      cfg->listen.tls.client_ca_file, err, sizeof(err));
    if (!ctx)
        log_error("listen.tls: %s", err);
    else
        tls_ctx_set_ktls(ctx, cfg->listen.tls.ktls);
    return ctx;
}

/* TLS, users and the upstream identity, before anything listens. */
static int start_security(struct proxy *px)
{
    const config_t *cfg = px->cfg;
    char err[512];
    px->upsec = upstream_sec_new(cfg, err, sizeof(err));
    if (!px->upsec) {
        log_error("upstream: %s", err);
        return -1;
    }
    if (cfg->listen.tls.cert_file && !(px->tls_ctx = load_tls(cfg)))
        return -1;
    if (cfg->auth.users_file) {
        users_t *u = load_users(cfg);
        if (!u)
            return -1;
        log_info("auth: %zu user(s) from %s; clients must authenticate", users_count(u),
                 cfg->auth.users_file);
        px->authw = authworker_new(px->base, u, AUTH_THREADS, AUTH_QUEUE_MAX, auth_result_cb, px);
        if (!px->authw)
            return -1;
    }
    return 0;
}

/* Creates the engines the rules of next need and px does not have yet
 * (a reload that adds the first idempotent or dedup rule). -1 (logged in
 * err) when one is needed but cannot be made: the reload is refused. */
static int engines_for(struct proxy *px, const config_t *next, char *err, size_t errlen)
{
    if (policy_enforces(next->policy) && !px->upgrade && !(px->upgrade = upgrade_new(px))) {
        snprintf(err, errlen, "%s: cannot start the idempotent upgrade", next->path);
        return -1;
    }
    if (policy_has_transactional(next->policy) && !px->txn && !(px->txn = txn_new(px))) {
        snprintf(err, errlen, "%s: cannot start transactional delivery", next->path);
        return -1;
    }
    if (policy_has_dlq(next->policy) && !px->dlqw &&
        !(px->dlqw = dlqw_new(px->base, px->cfg, px->bootstrap, DLQW_TIMEOUT_MS))) {
        snprintf(err, errlen, "%s: cannot start the dead-letter writer", next->path);
        return -1;
    }
    if (!(policy_has_dedup(next->policy) || policy_has_dlq(next->policy)) || px->dedup)
        return 0;
    if (!px->cfg->redis.url) {
        snprintf(err, errlen,
                 "%s: topics: a rule has dedup or dlq but redis.url is not set (redis.url takes "
                 "a restart)",
                 next->path);
        return -1;
    }
    if (!(px->dedup = dedup_new(px))) {
        snprintf(err, errlen, "%s: cannot start consumer dedup", next->path);
        return -1;
    }
    return 0;
}

int proxy_reload(struct proxy *px, char *err, size_t errlen, char *restart, size_t rlen)
{
    if (rlen)
        restart[0] = '\0';
    config_t *next = config_load(px->cfg->path, err, errlen);
    if (!next || engines_for(px, next, err, errlen)) {
        config_free(next);
        g_metrics.config_reloads[RELOAD_REFUSED]++;
        log_error("reload refused, the running config stays: %s", err);
        return -1;
    }
    config_reload(px->cfg, next, restart, rlen);
    config_free(next); /* the old rules live on while a dedup job holds them */
    enum log_level level = LOG_INFO;
    log_level_parse(px->cfg->log.level, &level);
    log_setup(level, px->cfg->log.format == LOG_FORMAT_JSON);
    px->enforce = policy_enforces(px->cfg->policy);
    proxy_adjust_versions(px);
    g_metrics.config_reloads[RELOAD_OK]++;
    log_info("reload: %s applied (%zu topic rule(s))", px->cfg->path, px->cfg->policy->n);
    if (restart[0])
        log_warn("reload: changed, but take effect only after a restart: %s", restart);
    return 0;
}

/*
 * SIGHUP: reload the config file's reloadable keys (proxy_reload), then
 * listen.tls's certificate and key, and the users file. Each is swapped
 * in only when it loads; open connections keep what they started with.
 */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *px = arg;
    (void)sig;
    (void)what;
    char err[512], restart[512];
    proxy_reload(px, err, sizeof(err), restart, sizeof(restart));
    const config_t *cfg = px->cfg;
    if (px->tls_ctx) {
        SSL_CTX *ctx = load_tls(cfg);
        if (ctx) {
            SSL_CTX_free(px->tls_ctx); /* connections hold their own reference */
            px->tls_ctx = ctx;
            g_metrics.tls_reloads++;
            log_info("SIGHUP: listen.tls certificate reloaded");
        } else {
            g_metrics.tls_reload_failures++;
            log_warn("SIGHUP: listen.tls reload failed; keeping the previous certificate");
        }
    }
    if (px->authw) {
        users_t *u = load_users(cfg);
        if (u) {
            log_info("SIGHUP: %zu user(s) reloaded from %s", users_count(u), cfg->auth.users_file);
            authworker_set_users(px->authw, u);
        } else {
            log_warn("SIGHUP: users file reload failed; keeping the previous users");
        }
    }
}

void proxy_adjust_versions(struct proxy *px)
{
    /* Dedup, ACLs and the read_committed upgrade decode Fetch up to v12:
     * v13+ name topics by id. */
    if ((px->dedup || px->txn || px->cfg->auth.acl) &&
        px->versions[KAPI_Fetch].max_ver > KFETCH_MAX_VERSION)
        px->versions[KAPI_Fetch].max_ver = KFETCH_MAX_VERSION;
    if (px->authw) { /* the exchange is eosproxy's own, whatever the brokers offer */
        px->versions[KAPI_SaslHandshake] = (kver_range_t){0, 1};
        px->versions[KAPI_SaslAuthenticate] = (kver_range_t){0, 2};
    } else if (upstream_sec_holds_writes(px->upsec)) {
        /* eosproxy already logged in upstream: a client's own login cannot pass through. */
        px->versions[KAPI_SaslHandshake] = (kver_range_t){1, 0};
        px->versions[KAPI_SaslAuthenticate] = (kver_range_t){1, 0};
    }
}

struct proxy *proxy_new(config_t *cfg, struct event_base *base)
{
    struct proxy *px = calloc(1, sizeof(*px));
    if (!px)
        return NULL;
    px->cfg = cfg;
    px->base = base;
    TAILQ_INIT(&px->clients);
    px->done = (struct engine_done){.slot_done = client_slot_done,
                                    .slot_waiting = client_slot_waiting,
                                    .resume = client_resume_upgrade_paused};
    px->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!px->dns) /* no resolv.conf: numeric addresses still work */
        px->dns = evdns_base_new(base, 0);
    for (int k = 0; k < KAPI_MAX; k++) {
        px->versions[k].min_ver = 1;
        px->versions[k].max_ver = 0;
    }
    return px;
}

int proxy_start(struct proxy *px)
{
    const config_t *cfg = px->cfg;
    signal(SIGPIPE, SIG_IGN);
    if (cfg->upstream.mock_brokers > 0) {
        px->mock = mock_new(cfg);
        if (!px->mock)
            return -1;
        px->bootstrap = strdup(mock_bootstrap(px->mock));
    } else {
        px->bootstrap = strdup(cfg->upstream.bootstrap);
    }
    if (start_security(px))
        return -1;
    px->enforce = policy_enforces(cfg->policy);
    if (px->enforce) {
        px->upgrade = upgrade_new(px);
        if (!px->upgrade)
            return -1;
    }
    if (policy_has_transactional(cfg->policy) && !(px->txn = txn_new(px)))
        return -1;
    if (policy_has_dlq(cfg->policy) &&
        !(px->dlqw = dlqw_new(px->base, cfg, px->bootstrap, DLQW_TIMEOUT_MS)))
        return -1;
    if (policy_has_dedup(cfg->policy) || policy_has_dlq(cfg->policy)) {
        if (!cfg->redis.url) {
            log_error("topics: a rule has dedup or dlq but redis.url is not set");
            return -1;
        }
        px->dedup = dedup_new(px);
        if (!px->dedup)
            return -1;
    }
    px->ctl = control_new(px, px->bootstrap);
    if (!px->ctl)
        return -1;
    if (cfg->admin.listen) {
        px->admin = admin_new(px, cfg->admin.listen);
        if (!px->admin)
            return -1;
    }
    px->sig_term = evsignal_new(px->base, SIGTERM, signal_cb, px);
    px->sig_int = evsignal_new(px->base, SIGINT, signal_cb, px);
    px->sig_hup = evsignal_new(px->base, SIGHUP, reload_cb, px);
    evsignal_add(px->sig_term, NULL);
    evsignal_add(px->sig_int, NULL);
    evsignal_add(px->sig_hup, NULL);
    log_info("eosproxy %s starting: upstream %s", EOSPROXY_VERSION, px->bootstrap);
    control_start(px->ctl);
    return 0;
}

struct txn *proxy_bind(struct proxy *px, const char *group, size_t len, int create)
{
    for (size_t i = 0; i < px->nbinds; i++) {
        const char *g = txn_group(px->binds[i]);
        if (strlen(g) == len && memcmp(g, group, len) == 0)
            return px->binds[i];
    }
    if (!create)
        return NULL;
    char *name = strndup(group, len);
    struct txn **nb = name ? realloc(px->binds, (px->nbinds + 1) * sizeof(*nb)) : NULL;
    struct txn *t = nb ? txn_new_opts(px, name, NULL) : NULL;
    free(name);
    if (nb)
        px->binds = nb;
    if (!t) {
        log_error("cannot start the transactional engine of bind_group \"%.*s\" (out of memory)",
                  (int)len, group);
        return NULL;
    }
    px->binds[px->nbinds++] = t;
    return t;
}

void proxy_free(struct proxy *px)
{
    if (!px)
        return;
    px->draining = 1; /* no bookkeeping callbacks while tearing down */
    client_free_all(px);
    dlqprod_free(px->dlqprod); /* before the writer: its requests answer clients now gone */
    control_free(px->ctl);
    txn_free(px->txn);
    for (size_t i = 0; i < px->nbinds; i++)
        txn_free(px->binds[i]);
    free(px->binds);
    upgrade_free(px->upgrade);
    dedup_free(px->dedup);
    dlqw_free(px->dlqw);
    admin_free(px->admin);
    if (px->bootstrap_listener)
        evconnlistener_free(px->bootstrap_listener);
    for (size_t i = 0; i < px->nbrokers; i++)
        broker_free(px->brokers[i]);
    free(px->brokers);
    if (px->sig_term)
        event_free(px->sig_term);
    if (px->sig_int)
        event_free(px->sig_int);
    if (px->sig_hup)
        event_free(px->sig_hup);
    if (px->drain_timer)
        event_free(px->drain_timer);
    if (px->dns)
        evdns_base_free(px->dns, 0);
    mock_free(px->mock);
    authworker_free(px->authw);
    upstream_sec_free(px->upsec);
    if (px->tls_ctx)
        SSL_CTX_free(px->tls_ctx);
    free(px->bootstrap);
    free(px);
}
