/*
 * lane.h - an eosproxy-owned connection to one upstream broker.
 *
 * The idempotent upgrade sends its own requests (Produce with its producer
 * id, InitProducerId) on "lanes", one per broker, never on a client's
 * connection, and its Metadata requests (for leaders) on one more lane of
 * their own. A lane numbers its requests with its own correlation ids and
 * matches the responses in order (Kafka answers a connection's requests in
 * the order they were sent). It connects lazily, holds what is sent while
 * it is down, and on any failure (connect error, close, a response that
 * does not match, a request overdue) fails every pending request at once
 * and reconnects after an exponential backoff
 * (upstream.reconnect_backoff .. reconnect_backoff_max).
 *
 * The broker's address is looked up (proxy_broker_find) at each connect,
 * so a broker that moved is followed.
 */
#ifndef EOSPROXY_LANE_H
#define EOSPROXY_LANE_H

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct lane;

/*
 * Called once per request: with the response frame (the bytes after the
 * size prefix, header included; valid only during the call), or with
 * frame NULL and len 0 when the request failed (connection lost, overdue,
 * or the lane is being freed). The callback may call lane_send on any lane
 * but must not free the lane.
 */
typedef void (*lane_cb)(void *arg, const uint8_t *frame, size_t len);

/* A lane to broker node_id. max_bytes bounds the bytes of pending requests.
 * NULL on OOM. */
struct lane *lane_new(struct proxy *px, int32_t node_id, size_t max_bytes);
/* Fails every pending request (callbacks with NULL), closes; NULL is safe. */
void lane_free(struct lane *l);

int32_t lane_node_id(const struct lane *l);
/* Bytes of requests sent or held and not yet answered. */
size_t lane_pending_bytes(const struct lane *l);
/* The correlation id the next request must carry. */
int32_t lane_next_correlation(struct lane *l);

/*
 * Sends a complete request frame (size prefix included) that carries
 * correlation id lane_next_correlation(l). Takes ownership of frame (a
 * malloc'd buffer, freed with free() once written or on failure). timeout_ms bounds the
 * wait for its response once written (0: upstream.request_timeout). cb is
 * called exactly once if this returns 0. Returns -1 (cb never called) when
 * the lane is over max_bytes or out of memory.
 */
int lane_send(struct lane *l, uint8_t *frame, size_t len, uint64_t timeout_ms, lane_cb cb,
              void *arg);

/*
 * As lane_send, for a frame assembled in an evbuffer (owned: freed here
 * in every case), e.g. from pieces added by reference. Its chains are
 * moved to the connection without a copy. Bytes it references must not
 * change before cb is called (then they have been written, or never will
 * be), and must stay allocated until their cleanup callback runs, which
 * may be after cb (a dropped connection is freed later).
 */
struct evbuffer;
int lane_send_buffer(struct lane *l, struct evbuffer *frame, uint64_t timeout_ms, lane_cb cb,
                     void *arg);

#endif
