/*
 * test_rcluster.c - Redis Cluster slot routing (rcluster.c): the CRC16 and
 * hash slots Redis itself computes, hash tags, the key of RESP commands as
 * redisc batches encode them, CLUSTER SLOTS answers (Redis 6 and 7 shapes,
 * and broken ones) read through hiredis's own reply reader, and MOVED/ASK.
 */
#include "rcluster.h"
#include "redisc.h"
#include "unit.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>

/* The reply hiredis parses from RESP text (NULL if incomplete or bad). */
static redisReply *parse_resp(const char *resp)
{
    redisReader *r = redisReaderCreate();
    void *reply = NULL;
    if (redisReaderFeed(r, resp, strlen(resp)) != REDIS_OK ||
        redisReaderGetReply(r, &reply) != REDIS_OK)
        reply = NULL;
    redisReaderFree(r);
    return reply;
}

static void test_crc16_and_slots(void)
{
    CHECK_EQ(rcluster_crc16("123456789", 9), 0x31c3); /* the XMODEM check value */
    CHECK_EQ(rcluster_key_slot("foo", 3), 12182);     /* CLUSTER KEYSLOT foo */
    CHECK_EQ(rcluster_key_slot("bar", 3), 5061);
    CHECK_EQ(rcluster_key_slot("", 0), 0);
    /* {tag}: only the tag is hashed. */
    CHECK_EQ(rcluster_key_slot("{user1000}.following", 20), rcluster_key_slot("user1000", 8));
    CHECK_EQ(rcluster_key_slot("foo{bar}{zap}", 13), rcluster_key_slot("bar", 3));
    CHECK_EQ(rcluster_key_slot("foo{{bar}}zap", 13), rcluster_key_slot("{bar", 4));
    /* An empty or unclosed tag: the whole key. */
    CHECK_EQ(rcluster_key_slot("foo{}{bar}", 10), rcluster_crc16("foo{}{bar}", 10) & 16383);
    CHECK_EQ(rcluster_key_slot("foo{bar", 7), rcluster_crc16("foo{bar", 7) & 16383);
}

/* The key redisc_batch_add's encoding of argv routes by. */
static int key_of(int argc, const char *const *argv, const char **key, size_t *klen)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisc_batch_t *b = redisc_batch_new();
    redisc_batch_add(b, argc, argv, lens);
    size_t len;
    const char *resp = redisc_batch_command(b, 0, &len);
    static char copy[512];
    memcpy(copy, resp, len);
    redisc_batch_free(b);
    return rcluster_command_key(copy, len, key, klen);
}

static void test_command_key(void)
{
    const char *key;
    size_t klen;
    const char *set[] = {"SET", "eosproxy:s:e1", "p:t:0:5:1", "NX", "GET", "PX", "300000"};
    CHECK_EQ(key_of(7, set, &key, &klen), 1);
    CHECK(klen == 13 && memcmp(key, "eosproxy:s:e1", 13) == 0);
    const char *eval[] = {"EVAL", "return 1", "1", "eosproxy:s:e2", "a", "b", "1000"};
    CHECK_EQ(key_of(7, eval, &key, &klen), 1);
    CHECK(klen == 13 && memcmp(key, "eosproxy:s:e2", 13) == 0);
    const char *eval0[] = {"eval", "return 1", "0"};
    CHECK_EQ(key_of(3, eval0, &key, &klen), 0);
    const char *ping[] = {"PING"};
    CHECK_EQ(key_of(1, ping, &key, &klen), 0);

    static const char *const bad[] = {
        "",
        "*0\r\n",
        "*1\r\n$4\r\nPING",
        "*1\r\n$5\r\nPING\r\n",
        "*2\r\n$3\r\nGET\r\n",
        "*1\r\n:4\r\n",
        "*1\r\n$4\r\nPING\r\nextra",
        "*99999999999\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ(rcluster_command_key(bad[i], strlen(bad[i]), &key, &klen), -1);
}

static void test_cluster_slots(void)
{
    struct rcluster_map *m = malloc(sizeof(*m));
    const char *why = NULL;
    /* Redis 7: id and an empty metadata map per node; a replica. */
    redisReply *r = parse_resp("*2\r\n"
                               "*4\r\n:0\r\n:8191\r\n"
                               "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n"
                               "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nir\r\n*0\r\n"
                               "*3\r\n:8192\r\n:16383\r\n"
                               "*2\r\n$0\r\n\r\n:7001\r\n");
    CHECK(r != NULL);
    CHECK_EQ(rcluster_parse_slots(r, "10.0.0.9", m, &why), 0);
    CHECK_EQ(m->nnodes, 2);
    CHECK_STR(m->nodes[0].host, "127.0.0.1");
    CHECK_EQ(m->nodes[0].port, 7000);
    CHECK_STR(m->nodes[1].host, "10.0.0.9"); /* "" is the node that answered */
    CHECK_EQ(m->nodes[1].port, 7001);
    CHECK_EQ(m->slot[0], 0);
    CHECK_EQ(m->slot[8191], 0);
    CHECK_EQ(m->slot[8192], 1);
    CHECK_EQ(m->slot[16383], 1);
    CHECK_EQ(rcluster_map_covered(m), 16384);
    freeReplyObject(r);

    /* "?" and port 0: no endpoint, the range stays unserved. */
    r = parse_resp("*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\n?\r\n:7000\r\n"
                   "*3\r\n:100\r\n:199\r\n*2\r\n$1\r\nh\r\n:0\r\n");
    CHECK_EQ(rcluster_parse_slots(r, NULL, m, &why), 0);
    CHECK_EQ(m->nnodes, 0);
    CHECK_EQ(rcluster_map_covered(m), 0);
    freeReplyObject(r);

    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "$2\r\nok\r\n",
        "*1\r\n:5\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* end < start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* past the last slot */
        "*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:70000\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na b\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse_resp(bad[i]);
        why = NULL;
        CHECK(r != NULL);
        CHECK_EQ(rcluster_parse_slots(r, "h", m, &why), -1);
        CHECK(why != NULL);
        CHECK_EQ(rcluster_map_covered(m), 0);
        freeReplyObject(r);
    }
    CHECK_EQ(rcluster_parse_slots(NULL, "h", m, &why), -1);
    free(m);
}

static void test_redirects(void)
{
    struct rcluster_redirect rd;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    CHECK_EQ(rcluster_parse_redirect(moved, strlen(moved), &rd), RCLUSTER_MOVED);
    CHECK_EQ(rd.slot, 3999);
    CHECK_STR(rd.to.host, "127.0.0.1");
    CHECK_EQ(rd.to.port, 6381);
    const char *ask = "ASK 16383 ::1:7002";
    CHECK_EQ(rcluster_parse_redirect(ask, strlen(ask), &rd), RCLUSTER_ASK);
    CHECK_STR(rd.to.host, "::1");
    CHECK_EQ(rd.to.port, 7002);
    const char *same = "MOVED 1 :7002"; /* Redis 7: the endpoint the client used */
    CHECK_EQ(rcluster_parse_redirect(same, strlen(same), &rd), RCLUSTER_MOVED);
    CHECK_STR(rd.to.host, "");

    static const char *const bad[] = {
        "ERR unknown command", "MOVED",         "MOVED 16384 h:1", "MOVED x h:1",
        "MOVED 1 h",           "MOVED 1 h:",    "MOVED 1 h:0",     "MOVED 1 h:70000",
        "ASK 1 h:1x",          "MOVED 1 a b:1", "MOVED  1 h:1",    "MOVED 1234567 h:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ(rcluster_parse_redirect(bad[i], strlen(bad[i]), &rd), RCLUSTER_NOT_REDIRECT);
        CHECK_EQ(rd.kind, RCLUSTER_NOT_REDIRECT);
    }
}

int main(void)
{
    test_crc16_and_slots();
    test_command_key();
    test_cluster_slots();
    test_redirects();
    return unit_done("test_rcluster");
}
