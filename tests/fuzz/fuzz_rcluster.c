/*
 * fuzz_rcluster.c - libFuzzer target for Redis Cluster slot routing
 * (proxy/redis/rcluster.c): the CLUSTER SLOTS reader, MOVED/ASK, the key of a
 * RESP command and the hash slot.
 *
 * The input is read every way eosproxy reads a Redis node's bytes: fed to
 * hiredis's reply reader (as redisc's connections do), every complete
 * reply (up to 8) is read as a CLUSTER SLOTS answer; the whole input is
 * read as an error reply's text (a redirection), as one RESP-encoded
 * command and as a key. Nothing may crash, read out of bounds, leak or
 * trip UBSan. Seeds: tests/fuzz/seeds/rcluster-*.
 *
 * Invariants checked (abort on violation, so the fuzzer reports them):
 *  - a parsed slot map names at most RCLUSTER_MAX_NODES masters, each
 *    with a non-empty, blank-free host and a port 1..65535, and every
 *    slot is RCLUSTER_NO_NODE or a valid index; a failed parse leaves no
 *    slot served;
 *  - a redirection has a slot < 16384, a port 1..65535 and a host that
 *    came from the input; anything else is RCLUSTER_NOT_REDIRECT;
 *  - a command's key lies inside the input; every slot is < 16384.
 */
#include "rcluster.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rcluster_map g_map;

static void check_map(int rc)
{
    if (g_map.nnodes > RCLUSTER_MAX_NODES)
        abort();
    for (size_t i = 0; i < g_map.nnodes; i++) {
        size_t hl = strnlen(g_map.nodes[i].host, sizeof(g_map.nodes[i].host));
        if (hl == 0 || hl > RCLUSTER_HOST_MAX || memchr(g_map.nodes[i].host, ' ', hl) ||
            g_map.nodes[i].port < 1 || g_map.nodes[i].port > 65535)
            abort();
    }
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++) {
        if (g_map.slot[s] != RCLUSTER_NO_NODE && g_map.slot[s] >= g_map.nnodes)
            abort();
    }
    if (rc < 0 && rcluster_map_covered(&g_map) != 0)
        abort();
}

static void replies(const uint8_t *data, size_t size)
{
    redisReader *r = redisReaderCreate();
    if (!r)
        return;
    if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 8; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(r, &reply) != REDIS_OK || !reply)
                break;
            const char *why = NULL;
            int rc = rcluster_parse_slots(reply, i & 1 ? NULL : "self", &g_map, &why);
            if (rc < 0 && !why)
                abort();
            check_map(rc);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(r);
}

static void redirect(const uint8_t *data, size_t size)
{
    struct rcluster_redirect rd;
    enum rcluster_redirect_kind k = rcluster_parse_redirect((const char *)data, size, &rd);
    if (k != rd.kind)
        abort();
    if (k == RCLUSTER_NOT_REDIRECT)
        return;
    size_t hl = strlen(rd.to.host);
    if (rd.slot >= RCLUSTER_SLOTS || rd.to.port < 1 || rd.to.port > 65535 ||
        hl > RCLUSTER_HOST_MAX || (hl && !memmem(data, size, rd.to.host, hl)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    replies(data, size);
    redirect(data, size);
    const char *key;
    size_t klen;
    if (rcluster_command_key((const char *)data, size, &key, &klen) == 1 &&
        (key < (const char *)data || key + klen > (const char *)data + size))
        abort();
    if (rcluster_key_slot((const char *)data, size) >= RCLUSTER_SLOTS)
        abort();
    return 0;
}
