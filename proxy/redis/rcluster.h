/*
 * rcluster.h - Redis Cluster slot routing, the pure part: the hash slot of
 * a key (CRC16/XMODEM mod 16384, {hash tags} honoured), the key of a
 * command encoded in RESP, the slot map read from a CLUSTER SLOTS reply,
 * and the MOVED / ASK redirections read from an error reply.
 *
 * No I/O and no event loop: redisc_cluster.c carries the answers out.
 * Every input here comes from a peer (a Redis node) or from a batch, so
 * every parser bounds its lengths and counts and fails with a reason
 * instead of asserting.
 */
#ifndef EOSPROXY_RCLUSTER_H
#define EOSPROXY_RCLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct redisReply; /* hiredis */

#define RCLUSTER_SLOTS 16384
/* Masters a slot map can name; a larger cluster is refused (see .c). */
#define RCLUSTER_MAX_NODES 128
/* Longest node host (a name or an IP) accepted from a peer. */
#define RCLUSTER_HOST_MAX 255
/* rcluster_map.slot[] of a slot no master serves. */
#define RCLUSTER_NO_NODE 0xffffu

/* CRC16/XMODEM (polynomial 0x1021, init 0), as Redis Cluster uses it. */
uint16_t rcluster_crc16(const void *buf, size_t len);

/* The hash slot of key[0..len): of the part between the first '{' and the
 * next '}' when that part is not empty, else of the whole key. */
unsigned rcluster_key_slot(const char *key, size_t len);

/*
 * The key that routes one command encoded in RESP (resp[0..len), a whole
 * "*N\r\n$L\r\n...\r\n" array as redisc batches hold it): argument 1, or
 * for EVAL / EVALSHA / FCALL / FCALL_RO argument 3 when numkeys > 0.
 * Returns 1 with *key and *klen set (a view into resp), 0 for a command with
 * no key (it may go to any master), -1 when resp is not one well-formed
 * RESP array of bulk strings.
 */
int rcluster_command_key(const char *resp, size_t len, const char **key, size_t *klen);

/* A node address: host (NUL-terminated) and port. */
struct rcluster_addr {
    char host[RCLUSTER_HOST_MAX + 1];
    int port;
};

/* Which master serves each slot, as one CLUSTER SLOTS answer said. */
struct rcluster_map {
    size_t nnodes;                                  /* distinct masters */
    struct rcluster_addr nodes[RCLUSTER_MAX_NODES]; /* nodes[0..nnodes) */
    uint16_t slot[RCLUSTER_SLOTS];                  /* index into nodes, or RCLUSTER_NO_NODE */
};

/*
 * Fills m from a CLUSTER SLOTS reply. A master announced with an empty
 * host is the node that answered (self_host); one announced as "?" (no
 * known endpoint) or with port 0 leaves its slots unserved. Replicas are
 * ignored. Returns 0, or -1 with why set to a static sentence when the
 * reply is not a CLUSTER SLOTS answer (m is then all unserved).
 */
int rcluster_parse_slots(const struct redisReply *r, const char *self_host, struct rcluster_map *m,
                         const char **why);

/* Number of slots m assigns to some master (16384 when it covers all). */
size_t rcluster_map_covered(const struct rcluster_map *m);

enum rcluster_redirect_kind { RCLUSTER_NOT_REDIRECT = 0, RCLUSTER_MOVED, RCLUSTER_ASK };

/* A redirection: the slot and the node to ask (host empty: the same host
 * the command was sent to, as Redis 7 says when it knows no endpoint). */
struct rcluster_redirect {
    enum rcluster_redirect_kind kind;
    unsigned slot;
    struct rcluster_addr to;
};

/*
 * Reads an error reply's text err[0..len) ("MOVED 3999 127.0.0.1:6381",
 * "ASK 3999 127.0.0.1:6381"). Returns the kind: RCLUSTER_NOT_REDIRECT for
 * any other error and for a malformed redirection (then r->kind too).
 */
enum rcluster_redirect_kind rcluster_parse_redirect(const char *err, size_t len,
                                                    struct rcluster_redirect *r);

#endif
