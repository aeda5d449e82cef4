/*
 * client_int.h - the state of one client connection, shared by the
 * modules that serve it. Not for use outside them: engines and the rest of
 * eosproxy go through client.h.
 *
 * A request passes through them in this order:
 *   client.c     the connection: bytes in, frames cut and bounded, then
 *                forwarded or dropped; responses matched, rewritten and
 *                released in order through the FIFO of slots; backpressure
 *   login.c      the SASL exchange before a connection has logged in
 *   request.c    one frame: header parsed, version checked, body validated,
 *                then authorize, then route (the pipeline, request_check)
 *   authorize.c  per-user topic ACLs (auth.acls)
 *   route.c      the policy route of ProduceRequests (at-most-once, the
 *                upgrade and transactional engines, producer-path dead
 *                letters) and of group requests (consume-process-produce)
 */
#ifndef EOSPROXY_CLIENT_INT_H
#define EOSPROXY_CLIENT_INT_H

#include "client.h"
#include "kbuf.h"
#include "kproduce.h"
#include "kproto.h"
#include "ksplit.h"
#include "sasl.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct bufferevent;
struct evbuffer;
struct dlqprod;
struct dlqprod_req;

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
    uint8_t **offer; /* while big_frame_done checks a large frame: its buffer,
                        which the upgrade engine may take instead of a copy */

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

/* What the pipeline did with a request frame. */
enum { REQ_FORWARD = 0, REQ_LOCAL = 1, REQ_CLOSED = -1 };

static inline struct slot *slot_at(struct client *c, uint64_t pos)
{
    return &c->slots[pos % c->cap];
}

static inline uint32_t inflight(const struct client *c)
{
    return (uint32_t)(c->tail - c->head);
}

/* ---- client.c: the connection and its FIFO ---- */

/* Counts the close under reason (CLOSE_*) and frees c. */
void client_close(struct client *c, int reason);

/* Malformed input: one log line naming what and where (h may be NULL),
 * then c is closed and freed. */
void client_protocol_error(struct client *c, const kreq_hdr_t *h, size_t off, const char *what);

/* Enables or disables reading from the client after read_pause changed. */
void client_update_read(struct client *c);

/* Sets or clears one PAUSE_* reason to stop reading from the client. */
void client_pause(struct client *c, int why);
void client_resume(struct client *c, int why);

/* Closes c (returns 1) if it is draining and has nothing left to send. */
int client_maybe_finish_drain(struct client *c);

/* evbuffer cleanup callback that frees the data (malloc'd). */
void client_free_detached(const void *data, size_t len, void *arg);

/*
 * Queues a slot for h in state (SLOT_*) at the tail of the FIFO; the
 * pending ACL split, hide and drop_aborted marks and the DLQ job of c go
 * with it. The caller has checked that the FIFO has room.
 */
struct slot *client_slot_push(struct client *c, const kreq_hdr_t *h, int state);

/* Marks s answered with resp (ownership taken) and releases what it can.
 * May not free c. */
void client_slot_complete(struct client *c, struct slot *s, struct evbuffer *resp);

/* Queues a locally built response (in w, freed here) as a ready slot. */
void client_answer_local(struct client *c, const kreq_hdr_t *h, kwriter_t *w);

/* Books what the upstream will answer for a forwarded request: a slot, or
 * for an acks=0 Produce only its correlation id. */
void client_expect_response(struct client *c, const kreq_hdr_t *h, int acks);

/* The open connection with this id, or NULL once it has gone. */
struct client *client_find(struct proxy *px, uint64_t id);

/* Opens c's broker connection (after login when auth is on). Returns 0,
 * or -1 when it cannot be set up (c is left for the caller to close). */
int client_connect_upstream(struct client *c);

/* ---- login.c: the SASL exchange ---- */

/* Sets up authentication for a new connection when auth.users_file is
 * set. Returns 0, or -1 when out of memory. */
int login_setup(struct client *c);

/* A request on a connection that has not logged in (or a SASL request):
 * REQ_LOCAL when answered, REQ_CLOSED when c was closed. */
int login_request(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t len);

/* A raw token after SaslHandshake v0, size bytes at the head of in (drained
 * here). Returns 0 to go on, nonzero when reading must stop (c may be freed). */
int login_raw_token(struct client *c, struct evbuffer *in, size_t size);

/* ---- request.c: the pipeline ---- */

/*
 * Takes one complete request frame (size bytes after the prefix, at
 * frame) through validation, authorization and the route: REQ_FORWARD
 * when the caller must send the frame (or c->repl) upstream, REQ_LOCAL
 * when it was answered here or taken by an engine, REQ_CLOSED when c was
 * closed (c is freed).
 */
int request_check(struct client *c, uint8_t *frame, size_t size);

/* ---- authorize.c: per-user topic ACLs ---- */

/* Applies auth.acls to a validated request: REQ_FORWARD to go on (maybe
 * with c->repl holding the request without denied topics), REQ_LOCAL or
 * REQ_CLOSED. */
int authorize_request(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                      int acks);

/* 1 if the user of ctx (a struct client) may see topic in Metadata. */
int authorize_describe(void *ctx, const char *topic, size_t len);

/* ---- route.c: the policy route ---- */

/* Topics of one ProduceRequest, as views into the frame. */
struct produce_view {
    kproduce_req_t req; /* v3+ only */
    size_t ntopics;
    const char **names;
    size_t *lens;
    int32_t *nparts; /* v0-v2: partitions per topic */
    int32_t *parts;  /* v0-v2: partition indexes, topic after topic */
};

/* Reads a ProduceRequest v0-v2 body's topics into v (views into body).
 * Returns 0, or -1 (v must still be freed). */
int route_view_v0(struct produce_view *v, const uint8_t *body, size_t len);
void route_view_free(struct produce_view *v);

/* Answers every partition of the request with error_code as a ready slot
 * (acks != 0). Returns 0, or -1 when the answer cannot be built. */
int route_answer_error(struct client *c, const kreq_hdr_t *h, const struct produce_view *v,
                       int16_t error_code);

/* Routes a validated ProduceRequest by the policy of its topics:
 * REQ_FORWARD, REQ_LOCAL or REQ_CLOSED. checked: the DLQ checks ran already. */
int route_produce(struct client *c, const kreq_hdr_t *h0, uint8_t *frame, size_t size, int acks,
                  int checked);

/* OffsetCommit, JoinGroup and LeaveGroup of a bound group (binds):
 * REQ_FORWARD, REQ_LOCAL or REQ_CLOSED. */
int route_group(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size);

/* The producer-path dead-letter engine of px (made on first use), or NULL. */
struct dlqprod *route_dlq_engine(struct proxy *px);

#endif
