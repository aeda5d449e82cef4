/*
 * upstream.h - every connection eosproxy opens to a broker: TCP, then TLS
 * (upstream.tls) and a SASL login (upstream.sasl) when configured.
 *
 * The caller gets an ordinary bufferevent. While TLS and the login run,
 * upstream.c's own callbacks are on it; the caller's event callback first
 * hears BEV_EVENT_CONNECTED once the connection is usable (certificate
 * verified, SaslHandshake v1 and SaslAuthenticate v1 rounds done), and its
 * own callbacks are on the bufferevent from then on. A failure reaches the
 * caller as BEV_EVENT_ERROR. The login uses client id "eosproxy" and its
 * own correlation ids; the password is never logged. Without TLS and SASL
 * nothing is added: a plain socket bufferevent with the caller's callbacks.
 *
 * Kafka's re-authentication (KIP-368) is not done: a broker with
 * connections.max.reauth.ms closes the connection at the end of the
 * session, and the caller reconnects as after any close.
 */
#ifndef EOSPROXY_UPSTREAM_H
#define EOSPROXY_UPSTREAM_H

#include "config.h"

#include <event2/bufferevent.h>
#include <stddef.h>

struct proxy;
struct upstream_sec;

/*
 * Set, together with BEV_EVENT_ERROR, in the `what` an upstream_connect
 * caller's event callback receives when upstream.c has already logged the
 * failure (with host:port and why) and counted it in
 * g_metrics.upstream_errors (tls, auth, protocol or timeout): the caller
 * need not log or count it again. Without it, the failure is the caller's
 * to report (the TCP connect or the name lookup failed, or the broker
 * closed an established connection).
 */
#define UPSTREAM_EVENT_COUNTED 0x1000

/*
 * Built once from the config: the client SSL_CTX (upstream.tls), the SASL
 * mechanism and a copy of the credentials, the SCRAM salt cache. Returns
 * an object even when neither TLS nor SASL is configured. NULL with a
 * one-line "upstream.<key>: what" in err on failure (a bad CA file, a
 * missing username...). cfg is not kept.
 */
struct upstream_sec *upstream_sec_new(const config_t *cfg, char *err, size_t errlen);
/* NULL safe; wipes the password copy and the cached SCRAM key. Only once no
 * login is in progress (every upstream_connect bufferevent freed). */
void upstream_sec_free(struct upstream_sec *s);

/*
 * 1 when upstream SASL is configured: the caller must not write to the
 * bufferevent before its event callback has seen BEV_EVENT_CONNECTED (its
 * frames would precede the login). 0 otherwise, also for s NULL (writing
 * early is fine: TLS holds the bytes until the handshake is done).
 */
int upstream_sec_holds_writes(const struct upstream_sec *s);

/*
 * Opens a connection to host:port on px->base using px->dns and px->upsec
 * (NULL: plaintext, no SASL), with the caller's callbacks and arg.
 * Plaintext without SASL: a socket bufferevent with the caller's callbacks
 * from the start (no overhead). Otherwise TLS (bufferevent_openssl,
 * CONNECTING) and/or SASL run first under upstream.c's callbacks; the
 * caller's event callback sees BEV_EVENT_CONNECTED only once the
 * connection is usable, and a failure as BEV_EVENT_ERROR (see
 * UPSTREAM_EVENT_COUNTED). The login is bounded by
 * upstream.request_timeout, TCP connect plus TLS handshake by
 * upstream.connect_timeout. None of the caller's callbacks runs before
 * this returns. bev_opts as for bufferevent_socket_new
 * (BEV_OPT_CLOSE_ON_FREE is always added). Returns the bufferevent, owned
 * by the caller (free it with upstream_free), or NULL on immediate
 * failure (out of memory, the connect failed at once).
 */
struct bufferevent *upstream_connect(struct proxy *px, const char *host, int port, int bev_opts,
                                     bufferevent_data_cb readcb, bufferevent_data_cb writecb,
                                     bufferevent_event_cb eventcb, void *arg);

/* Frees bev and any login still in progress on it (no callback runs).
 * NULL safe. Use instead of bufferevent_free for these bufferevents. */
void upstream_free(struct bufferevent *bev);

#endif
