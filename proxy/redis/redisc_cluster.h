/*
 * redisc_cluster.h - redisc's redis+cluster:// mode: a Redis Cluster client
 * made of one single-node redisc per master (redisc_new_node) and the slot
 * map from CLUSTER SLOTS (rcluster.h).
 *
 * A batch is split by each command's hash slot into one pipeline per
 * master, and the replies are merged back in command order for the one
 * callback. MOVED updates the map, resends to the named node and asks for
 * a map refresh; ASK resends once to the named node after ASKING; both are
 * bounded (RCC_MAX_REDIRECTS per command). The map is refreshed on MOVED,
 * when a node's connection is lost, and periodically (often while the
 * cluster is not ready).
 *
 * Ready: the map covers all 16384 slots and every master in it is
 * connected. While a slot has no connected master (a master died and its
 * replica is not promoted yet), the client is not ready and a batch whose
 * commands need that master fails with REDISC_EDOWN, so dedup's
 * redis.on_unavailable policy applies; CLUSTERDOWN, TRYAGAIN and LOADING
 * answers fail the batch the same way. The owner's state callback hears
 * each change of readiness once, from the loop.
 *
 * The calls mirror redisc.h's and keep its contract (ids, cancel, one
 * callback per batch, never inside rcc_batch_send).
 */
#ifndef EOSPROXY_REDISC_CLUSTER_H
#define EOSPROXY_REDISC_CLUSTER_H

#include "redisc.h"

#include <stdint.h>

/* Redirections (MOVED or ASK) one command may follow before its batch fails. */
#define RCC_MAX_REDIRECTS 5

struct redisurl;
struct rcc;

/* From a REDISURL_CLUSTER url (its hosts are the seeds). NULL on OOM. */
struct rcc *rcc_new(struct event_base *base, const struct redisurl *u, uint64_t timeout_ms,
                    redisc_state_cb *on_state, void *arg);
/* No callback runs after. NULL is safe. Not from inside a callback. */
void rcc_free(struct rcc *cl);
int rcc_ready(const struct rcc *cl);
uint64_t rcc_batch_send(struct rcc *cl, redisc_batch_t *b, redisc_batch_cb *cb, void *arg);
void rcc_cancel(struct rcc *cl, uint64_t id);

#endif
