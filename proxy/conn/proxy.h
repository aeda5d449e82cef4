/*
 * proxy.h - the proxy context: config, event loop, listeners, the broker
 * registry, the control connection and the set of client connections.
 *
 * There is one proxy per process and one event loop; everything here is
 * touched only from that loop's thread.
 */
#ifndef EOSPROXY_PROXY_H
#define EOSPROXY_PROXY_H

#include "config.h"
#include "engine.h"
#include "kproto.h"

#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct evdns_base;
struct event;
struct evconnlistener;
struct client;
struct control;
struct admin;
struct mock;
struct upgrade;
struct txn;
struct dedup;
struct dlqw;
struct dlqprod;
struct upstream_sec;
struct authworker;
typedef struct ssl_ctx_st SSL_CTX;

/* One upstream broker and the local listener that stands for it. */
struct broker {
    int32_t node_id;
    char *host; /* the broker's real address, as upstream metadata says */
    int port;
    int listen_port; /* broker_port_base + node_id */
    struct evconnlistener *listener;
    struct proxy *px;
};

TAILQ_HEAD(client_list, client);

struct proxy {
    config_t *cfg;
    struct event_base *base;
    struct evdns_base *dns;
    struct evconnlistener *bootstrap_listener;
    struct broker **brokers; /* owned; unordered */
    size_t nbrokers, cap_brokers;
    size_t next_bootstrap; /* round-robin over brokers for bootstrap clients */
    struct control *ctl;
    struct admin *admin;
    struct mock *mock;
    struct upgrade *upgrade; /* the idempotent upgrade; NULL if no rule needs it */
    struct txn *txn;         /* transactional delivery; NULL until a rule needs it */
    struct txn **binds;      /* one bound engine per bind_group, made on first use */
    size_t nbinds;
    struct dedup *dedup;        /* consumer dedup; NULL if no rule has dedup or dlq */
    struct dlqw *dlqw;          /* dead-letter writer; NULL until a rule has dlq */
    struct dlqprod *dlqprod;    /* producer-path dead letters; made on first use (route.c) */
    struct engine_done done;    /* how engines answer clients (engine.h) */
    int enforce;                /* some topic rule is not at-least-once */
    struct upstream_sec *upsec; /* TLS and SASL towards brokers (upstream.c) */
    SSL_CTX *tls_ctx;           /* listen.tls; NULL: plaintext. Replaced on SIGHUP */
    struct authworker *authw; /* auth.users_file loaded; PLAIN checks off the loop. NULL: no auth */
    char *bootstrap;          /* upstream bootstrap list in use (config or mock) */

    kver_range_t versions[KAPI_MAX]; /* what clients may send: ours ∩ upstream */
    int have_versions;
    int ready; /* metadata fetched and listeners up */

    struct client_list clients;
    int nclients;
    uint64_t next_client_id;

    int draining;
    int exit_code;
    struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
};

/* Creates the proxy for cfg (borrowed; must outlive the proxy) on base. */
struct proxy *proxy_new(config_t *cfg, struct event_base *base);
/* Closes everything; proxy_free(NULL) is safe. */
void proxy_free(struct proxy *px);

/* The bound transactional engine of consumer group group[0..len) (txn.h),
 * made on first use when create is 1. NULL when there is none (or OOM).
 * Owned by px. */
struct txn *proxy_bind(struct proxy *px, const char *group, size_t len, int create);
/* Starts the mock (if configured), the control connection, admin and signals. */
int proxy_start(struct proxy *px);

/*
 * Records upstream broker node_id at host:port (creating its local listener
 * the first time) and returns it, or NULL when its listen port is out of
 * range or cannot be bound (logged).
 */
struct broker *proxy_broker_learn(struct proxy *px, int32_t node_id, const char *host, size_t hlen,
                                  int port);
struct broker *proxy_broker_find(struct proxy *px, int32_t node_id);

/*
 * kaddr_map_fn for krewrite_response: learns the broker and substitutes
 * eosproxy's advertised host and the broker's listen port. ctx is the proxy.
 */
int proxy_map_endpoint(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                       int32_t *new_port);

/* Called by the control connection once versions and metadata are known. */
void proxy_set_ready(struct proxy *px);

/* A client connection has gone away (drain bookkeeping). */
void proxy_client_gone(struct proxy *px);

/*
 * Adjusts the versions clients may use (px->versions, after intersecting
 * with the upstream's): Fetch capped at v12 when dedup or ACLs read topic
 * names, SaslHandshake/SaslAuthenticate offered when eosproxy
 * authenticates clients itself.
 */
void proxy_adjust_versions(struct proxy *px);

/*
 * Reads the config file again and applies what can change while running
 * (config_reload: topic rules, ACLs, timeouts, log level...), creating an
 * engine the new rules need. Returns 0, with the keys that changed but need
 * a restart listed in restart (empty if none); or -1 with "file:line: key:
 * what is wrong" in err, the running config untouched. Counted in
 * eosproxy_config_reload_total. Called on SIGHUP and POST /reload.
 */
int proxy_reload(struct proxy *px, char *err, size_t errlen, char *restart, size_t rlen);

/* Begins a graceful shutdown: stop accepting, finish in-flight, exit. */
void proxy_drain(struct proxy *px);

#endif
