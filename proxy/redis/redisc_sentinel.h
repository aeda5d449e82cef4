/*
 * redisc_sentinel.h - finds a Redis primary through Redis Sentinel, for
 * redisc.c's redis+sentinel:// mode.
 *
 * rsent_resolve asks the Sentinels one at a time (starting with the last
 * one that answered) "SENTINEL get-master-addr-by-name <master>" and hands
 * back the address; redisc then connects there and checks ROLE itself.
 * After an answer, one Sentinel connection stays subscribed to
 * +switch-master, so a failover is reported at once (rsent_switch_cb)
 * instead of when writes start failing. Everything runs on the loop.
 */
#ifndef EOSPROXY_REDISC_SENTINEL_H
#define EOSPROXY_REDISC_SENTINEL_H

#include <stdint.h>

struct event_base;
struct redisurl;
struct rsent;

/* The master's address, or host NULL when no Sentinel named one. */
typedef void rsent_resolved_cb(void *arg, const char *host, int port);
/* A Sentinel announced that the master moved to host:port. */
typedef void rsent_switch_cb(void *arg, const char *host, int port);

/* From a REDISURL_SENTINEL url; timeout_ms bounds each Sentinel's connect
 * and answer. NULL on OOM. */
struct rsent *rsent_new(struct event_base *base, const struct redisurl *u, uint64_t timeout_ms,
                        rsent_switch_cb *on_switch, void *arg);
/* No callback runs after. NULL is safe. Not from inside an rsent callback. */
void rsent_free(struct rsent *s);

/* Starts a lookup; cb(arg, ...) runs once, later, from the loop (unless
 * rsent_free first). A lookup already running is abandoned: its callback
 * never runs. */
void rsent_resolve(struct rsent *s, rsent_resolved_cb *cb, void *arg);

/* The monitored master's name, for log lines. */
const char *rsent_master(const struct rsent *s);

#endif
