/*
 * redisc.h - a small asynchronous Redis client on eosproxy's event loop,
 * over hiredis 0.14's async API and its libevent adapter.
 *
 * One connection to redis://host:port/db (SELECT db after connect),
 * reconnected with exponential backoff whenever it fails; callers never
 * see hiredis. The same API serves the two other forms of redis.url
 * (redisurl.h): redis+sentinel:// asks the Sentinels for the master before
 * each connect, checks ROLE and follows +switch-master
 * (redisc_sentinel.h); redis+cluster:// routes each command to its slot's
 * master over one client per node (redisc_cluster.h), splitting a batch
 * into per-node pipelines and merging the replies back in command order. Work is sent as a *batch*:
 * commands pipelined in one write, answered by one callback once every reply is in (one round
 * trip). Each batch has a timeout (hiredis 0.14 has none for async contexts): a batch that is not
 * fully answered in time fails, and the connection is dropped and reopened, since a Redis that
 * stopped answering one pipeline will not answer the next one sooner.
 *
 * Batches are named by ids, not pointers: redisc_cancel(id) guarantees the
 * callback never runs, whatever hiredis still holds, so an engine can free
 * what the callback would have touched. At every (re)connect the client
 * reads CONFIG GET maxmemory-policy and warns unless it is noeviction
 * (evicted dedup marks mean duplicates delivered again).
 *
 * Everything runs on the event loop's thread.
 */
#ifndef EOSPROXY_REDISC_H
#define EOSPROXY_REDISC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisc;

/* Why a batch failed (the err argument of redisc_batch_cb). */
enum redisc_err {
    REDISC_OK = 0,
    REDISC_EDOWN,    /* not connected, or the connection dropped */
    REDISC_ETIMEOUT, /* not answered within the timeout */
};

/* One reply, copied out of hiredis. type is REDISC_REPLY_*. */
enum redisc_reply_type {
    REDISC_REPLY_NIL = 0,
    REDISC_REPLY_STRING, /* bulk string: str/len */
    REDISC_REPLY_STATUS, /* "+OK": str/len */
    REDISC_REPLY_ERROR,  /* "-ERR ...": str/len */
    REDISC_REPLY_INTEGER,
    REDISC_REPLY_ARRAY, /* elements are not kept; integer = element count */
};

typedef struct redisc_reply {
    int type;
    long long integer;
    char *str; /* NUL-terminated copy, or NULL */
    size_t len;
} redisc_reply_t;

/*
 * A batch's answer: err REDISC_OK with replies[0..n) in command order, or
 * an error with replies NULL and n 0. Called once per batch unless it was
 * cancelled; replies live until the callback returns.
 */
typedef void redisc_batch_cb(void *arg, int err, const redisc_reply_t *replies, size_t n);

/* Called with up = 1 when the connection becomes usable, 0 when it is lost. */
typedef void redisc_state_cb(void *arg, int up);

/*
 * Creates the client and starts connecting. url is "redis://host:port" or
 * "redis://host:port/db" (as config.c validates it); timeout_ms bounds a
 * connect and a round trip. NULL on a bad url or out of memory.
 */
struct redisc *redisc_new(struct event_base *base, const char *url, uint64_t timeout_ms,
                          redisc_state_cb *on_state, void *arg);
/* Closes the connection; no callback runs after. redisc_free(NULL) is safe.
 * Must not be called from inside a redisc callback. */
void redisc_free(struct redisc *rc);

/* 1 while connected (and SELECTed): a batch sent now goes out at once.
 * Sentinel: connected to a node whose ROLE is master. Cluster: the slot
 * map covers all 16384 slots and every master in it is connected. */
int redisc_ready(const struct redisc *rc);

/* A batch being built: commands encoded in RESP, not yet sent. */
typedef struct redisc_batch redisc_batch_t;

redisc_batch_t *redisc_batch_new(void);
/* Appends one command (argv[i][0..lens[i]) binary-safe). 0, or -1 on OOM. */
int redisc_batch_add(redisc_batch_t *b, int argc, const char *const *argv, const size_t *lens);
/* Number of commands added so far. */
size_t redisc_batch_count(const redisc_batch_t *b);
/* Frees a batch that was not sent; NULL is safe. */
void redisc_batch_free(redisc_batch_t *b);

/*
 * Sends b (taking it: it is freed either way) as one pipeline. Returns the
 * batch id (> 0): cb(arg, ...) will run exactly once, later, from the
 * loop, unless redisc_cancel(id) is called first. Returns 0 when Redis is
 * not ready or b is empty: cb never runs.
 */
uint64_t redisc_batch_send(struct redisc *rc, redisc_batch_t *b, redisc_batch_cb *cb, void *arg);

/* The batch's callback will not run. Unknown or finished ids are ignored. */
void redisc_cancel(struct redisc *rc, uint64_t id);

/* ---- for redisc's own modes (redisc_cluster.c); dedup never needs these */

struct redisReply; /* hiredis */

/* A raw command's answer: the reply as hiredis parsed it, or NULL when
 * the command failed (not connected, dropped, timed out). */
typedef void redisc_raw_cb(void *arg, const struct redisReply *reply);

/*
 * Sends one command (argv as in redisc_batch_add) whose reply reaches cb
 * unparsed; same id, timeout and cancel rules as a batch. Single-node
 * clients only (not a cluster or a Sentinel client). 0 when not ready.
 */
uint64_t redisc_raw_send(struct redisc *rc, int argc, const char *const *argv, const size_t *lens,
                         redisc_raw_cb *cb, void *arg);

/* A client for one cluster node host:port (database 0) that leaves the
 * global redis_connected metric to its cluster. NULL on OOM. */
struct redisc *redisc_new_node(struct event_base *base, const char *host, int port,
                               uint64_t timeout_ms, redisc_state_cb *on_state, void *arg);

/* Command i (< redisc_batch_count) of b as its RESP bytes; NULL past the end. */
const char *redisc_batch_command(const redisc_batch_t *b, size_t i, size_t *len);

/* Appends one command already encoded in RESP (from redisc_batch_command). */
int redisc_batch_add_resp(redisc_batch_t *b, const char *resp, size_t len);

#endif
