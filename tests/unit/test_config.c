/*
 * test_config.c - unit tests for proxy/config.c: every key, the defaults,
 * the "file:line: key: what" form of every class of error, ${ENV}
 * expansion, the parse helpers, and loading conf/demo.yaml and
 * conf/example.yaml (run from the repository root).
 */
#include "config.h"
#include "acl.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#define MOCK "upstream:\n  mock_brokers: 1\n" /* the least a config needs */

static char err[512];

static config_t *load(const char *yaml)
{
    err[0] = '\0';
    return config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof(err));
}

/* Loads yaml, expects failure with want (e.g. "t.yaml:3: listen.port: ") in the message. */
static void expect_err_at(int line, const char *yaml, const char *want)
{
    config_t *c = load(yaml);
    if (c == NULL && strstr(err, want) != NULL) {
        unit_passed++;
        return;
    }
    unit_failed++;
    fprintf(stderr, "FAIL %s:%d: want error containing \"%s\", got %s \"%s\"\n", __FILE__, line,
            want, c ? "success" : "error", err);
    config_free(c);
}
#define EXPECT_ERR(yaml, want) expect_err_at(__LINE__, yaml, want)

/* Loads yaml, expects success; the caller frees. */
static config_t *expect_ok_at(int line, const char *yaml)
{
    config_t *c = load(yaml);
    if (c != NULL) {
        unit_passed++;
        return c;
    }
    unit_failed++;
    fprintf(stderr, "FAIL %s:%d: want success, got \"%s\"\n", __FILE__, line, err);
    return NULL;
}
#define EXPECT_OK(yaml) expect_ok_at(__LINE__, yaml)

/* ---- parse helpers ------------------------------------------------------ */

static void test_parse_duration(void)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {
        {"0", 0},        {"500ms", 500},
        {"10s", 10000},  {"5m", 300000},
        {"2h", 7200000}, {"7d", 604800000ull},
        {"123", 123},    {"0s", 0},
        {"007s", 7000},  {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        CHECK_EQ(config_parse_duration(ok[i].s, &v), 0);
        CHECK(v == ok[i].ms);
    }
    static const char *const bad[] = {"",
                                      "-1",
                                      "+1",
                                      "1.5s",
                                      "10 s",
                                      " 10s",
                                      "10s ",
                                      "10x",
                                      "s",
                                      "ms",
                                      "10S",
                                      "1h30m",
                                      "10sec",
                                      "0x10",
                                      "18446744073709551616",
                                      "213503982334601d",
                                      "5min"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        CHECK_EQ(config_parse_duration(bad[i], &v), -1);
        CHECK_EQ(v, 42);
    }
    uint64_t v;
    CHECK_EQ(config_parse_duration(NULL, &v), -1);
}

static void test_parse_size(void)
{
    static const struct {
        const char *s;
        uint64_t b;
    } ok[] = {
        {"0", 0},
        {"1024", 1024},
        {"5B", 5},
        {"1KiB", 1024},
        {"16MiB", 16ull << 20},
        {"2GiB", 2ull << 30},
        {"1KB", 1000},
        {"3MB", 3000000},
        {"1GB", 1000000000},
        {"100MiB", 100ull << 20},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        CHECK_EQ(config_parse_size(ok[i].s, &v), 0);
        CHECK(v == ok[i].b);
    }
    static const char *const bad[] = {"",    "-1",    "1K",    "1kib",           "1kb",  "1.5MiB",
                                      "MiB", "1 MiB", "1MiB ", "17179869184GiB", "1TiB", "1Mi"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        CHECK_EQ(config_parse_size(bad[i], &v), -1);
        CHECK_EQ(v, 42);
    }
}

static void test_parse_hostport(void)
{
    static const struct {
        const char *s, *host;
        int port;
    } ok[] = {
        {"localhost:9092", "localhost", 9092},
        {"10.0.0.1:1", "10.0.0.1", 1},
        {"kafka-1.example.com:65535", "kafka-1.example.com", 65535},
        {"[::1]:9092", "::1", 9092},
        {"[fe80::1%eth0]:19092", "fe80::1%eth0", 19092},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *host = NULL;
        int port = 0;
        CHECK_EQ(config_parse_hostport(ok[i].s, &host, &port), 0);
        CHECK(host != NULL && strcmp(host, ok[i].host) == 0);
        CHECK_EQ(port, ok[i].port);
        free(host);
    }
    static const char *const bad[] = {
        "localhost",
        "localhost:0",
        "localhost:65536",
        ":9092",
        "::1:9092",
        "[::1]",
        "[::1]:",
        "host:12a",
        "[]:9092",
        "host :9092",
        "[nothost]:9092",
        "host:-1",
        "host:+80",
        "",
        "a b:1",
        "[::1]9092",
        "h:99999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *host = NULL;
        int port = 7;
        CHECK_EQ(config_parse_hostport(bad[i], &host, &port), -1);
        CHECK(host == NULL);
        CHECK_EQ(port, 7);
    }
}

/* ---- keys and defaults -------------------------------------------------- */

static void test_defaults(void)
{
    config_t *c = EXPECT_OK(MOCK);
    if (c == NULL)
        return;
    CHECK_STR(c->path, "t.yaml");
    CHECK_STR(c->service, "eosproxy");
    CHECK_STR(c->log.level, "info");
    CHECK_EQ(c->log.format, LOG_FORMAT_TEXT);
    CHECK_STR(c->listen.host, "127.0.0.1");
    CHECK_EQ(c->listen.port, 9092);
    CHECK_STR(c->listen.advertised_host, "127.0.0.1");
    CHECK_EQ(c->listen.broker_port_base, 19092);
    CHECK_EQ(c->listen.max_connections, 1024);
    CHECK(c->listen.idle_timeout_ms == 600000);
    CHECK(c->listen.max_frame_bytes == 100ull << 20);
    CHECK_EQ(c->listen.max_inflight, 256);
    CHECK(c->listen.buffer_bytes == 16ull << 20);
    CHECK_EQ(c->transactions.pool, 2);
    CHECK(c->transactions.quiet_ms == 1);
    CHECK(c->upstream.bootstrap == NULL);
    CHECK_EQ(c->upstream.mock_brokers, 1);
    CHECK_EQ(c->upstream.mock_partitions, 4);
    CHECK(c->upstream.connect_timeout_ms == 10000);
    CHECK(c->upstream.request_timeout_ms == 30000);
    CHECK(c->upstream.reconnect_backoff_ms == 100);
    CHECK(c->upstream.reconnect_backoff_max_ms == 10000);
    CHECK(c->upstream.metadata_refresh_ms == 300000);
    CHECK(c->admin.listen == NULL);
    CHECK(c->drain_timeout_ms == 10000);
    CHECK(c->redis.url == NULL);
    CHECK(c->policy != NULL && c->policy->n == 0);
    config_free(c);
}

static const char full_yaml[] = "service: orders\n"
                                "log:\n"
                                "  level: debug\n"
                                "  format: json\n"
                                "listen:\n"
                                "  host: 0.0.0.0\n"
                                "  port: 9192\n"
                                "  advertised_host: proxy.local\n"
                                "  broker_port_base: 20000\n"
                                "  max_connections: 50\n"
                                "  idle_timeout: 0\n"
                                "  max_frame_bytes: 1KiB\n"
                                "  max_inflight: 100000\n"
                                "  buffer_bytes: 1MB\n"
                                "upstream:\n"
                                "  bootstrap: \"k1:9092, k2:9093,[::1]:9094\"\n"
                                "  mock_partitions: 8\n"
                                "  connect_timeout: 2s\n"
                                "  request_timeout: 1m\n"
                                "  reconnect_backoff: 50\n"
                                "  reconnect_backoff_max: 1h\n"
                                "  metadata_refresh: 1s\n"
                                "admin:\n"
                                "  listen: \"[::1]:9644\"\n"
                                "drain_timeout: 0s\n"
                                "redis:\n"
                                "  url: redis://127.0.0.1:6379/3\n"
                                "topics:\n"
                                "  - match: payments.captured\n"
                                "    delivery: transactional\n"
                                "    dedup:\n"
                                "      event_id: header:event-id\n"
                                "      ttl: 1d\n"
                                "      scope: pay\n"
                                "    dlq:\n"
                                "      topic: payments.dlq\n"
                                "      max_deliveries: 3\n"
                                "      on_produce_error: dlq\n"
                                "  - match: \"orders.*\"\n"
                                "    delivery: idempotent\n"
                                "    dedup: {event_id: json:orderId}\n"
                                "    dlq: {topic: orders.dlq}\n"
                                "  - {match: \"logs.?\", delivery: at-most-once}\n";

static void test_every_key(void)
{
    config_t *c = EXPECT_OK(full_yaml);
    if (c == NULL)
        return;
    CHECK_STR(c->service, "orders");
    CHECK_STR(c->log.level, "debug");
    CHECK_EQ(c->log.format, LOG_FORMAT_JSON);
    CHECK_STR(c->listen.host, "0.0.0.0");
    CHECK_EQ(c->listen.port, 9192);
    CHECK_STR(c->listen.advertised_host, "proxy.local");
    CHECK_EQ(c->listen.broker_port_base, 20000);
    CHECK_EQ(c->listen.max_connections, 50);
    CHECK(c->listen.idle_timeout_ms == 0);
    CHECK(c->listen.max_frame_bytes == 1024);
    CHECK_EQ(c->listen.max_inflight, 100000);
    CHECK(c->listen.buffer_bytes == 1000000);
    CHECK_STR(c->upstream.bootstrap, "k1:9092, k2:9093,[::1]:9094");
    CHECK_EQ(c->upstream.mock_brokers, 0);
    CHECK_EQ(c->upstream.mock_partitions, 8);
    CHECK(c->upstream.connect_timeout_ms == 2000);
    CHECK(c->upstream.request_timeout_ms == 60000);
    CHECK(c->upstream.reconnect_backoff_ms == 50);
    CHECK(c->upstream.reconnect_backoff_max_ms == 3600000);
    CHECK(c->upstream.metadata_refresh_ms == 1000);
    CHECK_STR(c->admin.listen, "[::1]:9644");
    CHECK(c->drain_timeout_ms == 0);
    CHECK_STR(c->redis.url, "redis://127.0.0.1:6379/3");

    policy_t *p = c->policy;
    CHECK_EQ(p->n, 3);
    if (p->n == 3) {
        const policy_rule_t *r = &p->rules[0];
        CHECK_STR(r->match, "payments.captured");
        CHECK_EQ(r->delivery, DELIVERY_TRANSACTIONAL);
        CHECK_EQ(r->dedup.src, EVENTID_HEADER);
        CHECK_STR(r->dedup.name, "event-id");
        CHECK(r->dedup.ttl_ms == 86400000);
        CHECK_STR(r->dedup.scope, "pay");
        CHECK_STR(r->dlq.topic, "payments.dlq");
        CHECK_EQ(r->dlq.max_deliveries, 3);
        CHECK_EQ(r->dlq.on_produce_error, DLQ_ON_ERROR_DLQ);
        CHECK_EQ(r->line, 29);

        r = &p->rules[1];
        CHECK_EQ(r->delivery, DELIVERY_IDEMPOTENT);
        CHECK_EQ(r->dedup.src, EVENTID_JSON);
        CHECK_STR(r->dedup.name, "orderId");
        CHECK(r->dedup.ttl_ms == 7 * 86400000ull); /* default */
        CHECK(r->dedup.scope == NULL);             /* = service */
        CHECK_STR(r->dlq.topic, "orders.dlq");
        CHECK_EQ(r->dlq.max_deliveries, 5); /* default */
        CHECK_EQ(r->dlq.on_produce_error, DLQ_ON_ERROR_REJECT);
        CHECK_EQ(r->dedup.require_event_id, 0);
        CHECK_EQ(r->line, 39);

        r = &p->rules[2];
        CHECK_EQ(r->delivery, DELIVERY_AT_MOST_ONCE);
        CHECK_EQ(r->dedup.src, EVENTID_NONE);
        CHECK(r->dedup.name == NULL && r->dlq.topic == NULL);
        CHECK(!POLICY_HAS_DLQ(r));
        CHECK_EQ(r->line, 43);
    }
    CHECK_EQ(policy_delivery(p, "payments.captured", 17), DELIVERY_TRANSACTIONAL);
    CHECK_EQ(policy_delivery(p, "orders.eu", 9), DELIVERY_IDEMPOTENT);
    CHECK_EQ(policy_delivery(p, "logs.1", 6), DELIVERY_AT_MOST_ONCE);
    CHECK_EQ(policy_delivery(p, "logs.12", 7), DELIVERY_AT_LEAST_ONCE);
    config_free(c);
}

static void test_values_accepted(void)
{
    static const char *const ok[] = {
        MOCK "listen:\n  host: \"::\"\n",
        MOCK "listen:\n  host: localhost\n  port: \"9093\"\n",
        MOCK "redis:\n  url: redis://localhost:6379\n",
        MOCK "redis:\n  url: \"redis://[::1]:6379/0\"\n",
        MOCK "log: {level: warn}\n",
        MOCK "log: {level: error, format: text}\n",
        MOCK "topics: []\n",
        "upstream:\n  bootstrap: k:1\n  mock_brokers: 0\n",
        "upstream:\n  mock_brokers: 16\n",
        /* Anchors and aliases are plain YAML and work. */
        MOCK "topics:\n  - {match: a, delivery: idempotent, dedup: &d {event_id: key}}\n"
             "  - {match: b, delivery: idempotent, dedup: *d}\n",
        /* Comments and an explicit document start. */
        "---\n# comment\n" MOCK "...\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        config_free(EXPECT_OK(ok[i]));

    config_t *c = EXPECT_OK(MOCK "listen:\n  host: 10.1.2.3\n");
    if (c != NULL)
        CHECK_STR(c->listen.advertised_host, "10.1.2.3"); /* defaults to host */
    config_free(c);
}

/* ---- errors ------------------------------------------------------------- */

static void test_structure_errors(void)
{
    EXPECT_ERR(MOCK "bogus: 1\n", "t.yaml:3: bogus: unknown key");
    EXPECT_ERR(MOCK "listen:\n  prot: 1\n", "t.yaml:4: listen.prot: unknown key");
    EXPECT_ERR(MOCK "listen:\n  prot: 1\n", "(known here: host, port,");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  mock_brokers: 2\n",
               "t.yaml:3: upstream.mock_brokers: duplicate key (first set on line 2)");
    EXPECT_ERR("service: a\nservice: b\n" MOCK, "t.yaml:2: service: duplicate key");
    EXPECT_ERR(MOCK "service:\n  x: 1\n", "t.yaml:4: service: expected a value, got a map");
    EXPECT_ERR(MOCK "service: [a, b]\n", "t.yaml:3: service: expected a value, got a list");
    EXPECT_ERR(MOCK "listen: 5\n", "t.yaml:3: listen: expected a map, got a scalar");
    EXPECT_ERR(MOCK "listen:\n  - port\n", "t.yaml:4: listen: expected a map, got a list");
    EXPECT_ERR(MOCK "admin:\n", "t.yaml:3: admin: expected a map, got an empty value");
    EXPECT_ERR(MOCK "topics: {match: a}\n",
               "t.yaml:3: topics: expected a list of rules, got a map");
    EXPECT_ERR("- a\n- b\n", "t.yaml:1: config: expected a map, got a list");
    EXPECT_ERR("just a string\n", "t.yaml:1: config: expected a map, got a scalar");
    EXPECT_ERR(MOCK "? [a, b]\n: 1\n", "t.yaml:3: config: keys must be plain names");
    EXPECT_ERR(MOCK "service:\n", "t.yaml:3: service: has no value");
    EXPECT_ERR(MOCK "service: ~\n", "t.yaml:3: service: has no value");
    EXPECT_ERR(MOCK "service: \"\"\n", "t.yaml:3: service: must not be empty");
    EXPECT_ERR(MOCK "service: \"a\\0b\"\n", "t.yaml:3: service: contains a NUL character");
    EXPECT_ERR(MOCK "---\nservice: x\n", "t.yaml:4: yaml: only one YAML document is allowed");
    /* An empty file has no upstream. */
    EXPECT_ERR("", "t.yaml:1: upstream: set exactly one of bootstrap");
    EXPECT_ERR("# nothing\n", "t.yaml:1: upstream: set exactly one of bootstrap");
}

static void test_syntax_errors(void)
{
    EXPECT_ERR(MOCK "listen: {port: 1\n", "t.yaml:4: yaml: ");
    EXPECT_ERR("service: a\n  bad: indent\n" MOCK, "t.yaml:2: yaml: ");
    EXPECT_ERR(MOCK "listen:\n\tport: 1\n", "t.yaml:4: yaml: ");
    EXPECT_ERR(MOCK "service: \"open\n", "t.yaml:4: yaml: ");
    EXPECT_ERR(MOCK "topics: *nope\n", "t.yaml:3: yaml: ");
    EXPECT_ERR(MOCK "---\nservice: [\n", "t.yaml:5: yaml: ");
    /* Invalid UTF-8: a reader error, located by byte offset. */
    EXPECT_ERR(MOCK "service: \"\xff\"\n", "t.yaml:3: yaml: ");
}

static void test_value_errors(void)
{
    EXPECT_ERR(MOCK "listen:\n  port: 70000\n",
               "t.yaml:4: listen.port: must be an integer in 1..65535 (got \"70000\")");
    EXPECT_ERR(MOCK "listen:\n  port: 0\n", "t.yaml:4: listen.port: must be an integer");
    EXPECT_ERR(MOCK "listen:\n  port: -1\n", "t.yaml:4: listen.port: must be an integer");
    EXPECT_ERR(MOCK "listen:\n  port: 9092x\n", "t.yaml:4: listen.port: must be an integer");
    EXPECT_ERR(MOCK "listen:\n  port: 9092.0\n", "t.yaml:4: listen.port: must be an integer");
    EXPECT_ERR(MOCK "listen:\n  port: 99999999999999999999999\n",
               "t.yaml:4: listen.port: must be an integer");
    EXPECT_ERR(MOCK "listen:\n  max_inflight: 0\n",
               "t.yaml:4: listen.max_inflight: must be an integer in 1..100000");
    EXPECT_ERR(MOCK "listen:\n  max_inflight: 100001\n", "t.yaml:4: listen.max_inflight:");
    EXPECT_ERR(MOCK "listen:\n  max_connections: 0\n", "t.yaml:4: listen.max_connections:");
    EXPECT_ERR(MOCK "transactions:\n  pool: 0\n",
               "t.yaml:4: transactions.pool: must be an integer in 1..16");
    EXPECT_ERR(MOCK "transactions:\n  pool: 17\n", "t.yaml:4: transactions.pool:");
    EXPECT_ERR("upstream:\n  mock_brokers: 17\n",
               "t.yaml:2: upstream.mock_brokers: must be an integer in 0..16");
    EXPECT_ERR(MOCK "upstream:\n  mock_partitions: 0\n", "t.yaml:3: upstream:");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  mock_partitions: 0\n",
               "t.yaml:3: upstream.mock_partitions: must be an integer in 1..10000");
    EXPECT_ERR(MOCK "listen:\n  host: \"127.0.0.1:9092\"\n",
               "t.yaml:4: listen.host: must be a host name or IP address");
    EXPECT_ERR(MOCK "listen:\n  advertised_host: \"a b\"\n", "t.yaml:4: listen.advertised_host:");
    EXPECT_ERR(MOCK "log:\n  level: verbose\n",
               "t.yaml:4: log.level: must be debug, info, warn or error (got \"verbose\")");
    EXPECT_ERR(MOCK "log:\n  format: xml\n", "t.yaml:4: log.format: must be text or json");
}

static void test_duration_size_errors(void)
{
    EXPECT_ERR(MOCK "drain_timeout: 10 s\n", "t.yaml:3: drain_timeout: must be a duration");
    EXPECT_ERR(MOCK "drain_timeout: -5s\n", "t.yaml:3: drain_timeout: must be a duration");
    EXPECT_ERR(MOCK "drain_timeout: 1.5s\n", "t.yaml:3: drain_timeout: must be a duration");
    EXPECT_ERR(MOCK "drain_timeout: 99999999999999999999\n", "t.yaml:3: drain_timeout:");
    EXPECT_ERR(MOCK "drain_timeout: 366d\n",
               "t.yaml:3: drain_timeout: must be between 0ms and 365d");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  metadata_refresh: 10ms\n",
               "t.yaml:3: upstream.metadata_refresh: must be between 1s and 365d");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  connect_timeout: 0\n",
               "t.yaml:3: upstream.connect_timeout: must be between 1ms and 365d");
    EXPECT_ERR(MOCK "listen:\n  idle_timeout: forever\n", "t.yaml:4: listen.idle_timeout:");
    EXPECT_ERR(MOCK "listen:\n  max_frame_bytes: 100\n",
               "t.yaml:4: listen.max_frame_bytes: must be between 1KiB and");
    EXPECT_ERR(MOCK "listen:\n  max_frame_bytes: 2GiB\n", "t.yaml:4: listen.max_frame_bytes:");
    EXPECT_ERR(MOCK "listen:\n  buffer_bytes: 16M\n",
               "t.yaml:4: listen.buffer_bytes: must be a size");
    EXPECT_ERR(MOCK "listen:\n  buffer_bytes: 65GiB\n", "t.yaml:4: listen.buffer_bytes:");
}

/* redis+cluster:// and redis+sentinel://: the accepted forms and one
 * clear sentence for each malformed one. */
static void test_redis_cluster_sentinel_urls(void)
{
    static const char *const good[] = {
        "redis+cluster://h:7000",
        "redis+cluster://h:7000,h:7001,[::1]:7002",
        "redis+sentinel://s1:26379/mymaster",
        "redis+sentinel://s1:26379,s2:26379,[::1]:26380/my-master.1/3",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), MOCK "redis:\n  url: \"%s\"\n", good[i]);
        config_t *c = EXPECT_OK(yaml);
        if (c) {
            CHECK_STR(c->redis.url, good[i]);
            config_free(c);
        }
    }
    static const struct {
        const char *url, *want;
    } bad[] = {
        {"redis+cluster://", "has an empty host:port entry"},
        {"redis+cluster://h:1,", "has an empty host:port entry"},
        {"redis+cluster://h:1,,h:2", "has an empty host:port entry"},
        {"redis+cluster://h:1,h", "each host must be \"host:port\""},
        {"redis+cluster://h:1/0", "a Redis Cluster has database 0 only"},
        {"redis+cluster://u:p@h:1", "credentials in the URL are not supported"},
        {"rediss+cluster://h:1", "rediss:// (TLS) is not supported"},
        {"redis+sentinel://s:1", "needs the master's name"},
        {"redis+sentinel://s:1/", "needs the master's name"},
        {"redis+sentinel://s:1/m/x", "the /db part after the master name must be a database"},
        {"redis+sentinel://s:1/m/1/2", "the /db part after the master name must be a database"},
        {"redis+sentinel://s:0/m", "each host must be"},
        {"redis+sentinel://s:1/m?x", "has a master name with a blank"},
        {"redis+sentinels://s:1/m", "must be \"redis://host:port[/db]\""},
        {"redis://a:1,b:2", "redis:// takes one host:port"},
        {"redis+cluster://a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,a:16,"
         "a:17",
         "names more than 16 hosts"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[512], want[256];
        snprintf(yaml, sizeof(yaml), MOCK "redis:\n  url: \"%s\"\n", bad[i].url);
        snprintf(want, sizeof(want), "t.yaml:4: redis.url: %s", bad[i].want);
        EXPECT_ERR(yaml, want);
    }
}

static void test_address_errors(void)
{
    EXPECT_ERR("upstream:\n  bootstrap: localhost\n",
               "t.yaml:2: upstream.bootstrap: each entry must be \"host:port\"");
    EXPECT_ERR("upstream:\n  bootstrap: \"a:1,,b:2\"\n",
               "t.yaml:2: upstream.bootstrap: has an empty entry");
    EXPECT_ERR("upstream:\n  bootstrap: \"a:1,\"\n", "t.yaml:2: upstream.bootstrap: has an empty");
    EXPECT_ERR("upstream:\n  bootstrap: \"a:1,b:0\"\n", "t.yaml:2: upstream.bootstrap: each");
    EXPECT_ERR(MOCK "admin:\n  listen: 9644\n", "t.yaml:4: admin.listen: must be \"host:port\"");
    EXPECT_ERR(MOCK "admin:\n  listen: \"::1:9644\"\n", "t.yaml:4: admin.listen:");

    static const char *const bad_redis[] = {
        "http://h:1", "redis://h",        "redis://h:0", "redis://h:6379/x", "redis://h:1/",
        "redis://:1", "redis://h:1?db=2", "redis//h:1",  "redis://h:1/2/3",  "redis://h:1/-1",
    };
    for (size_t i = 0; i < sizeof(bad_redis) / sizeof(bad_redis[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), MOCK "redis:\n  url: \"%s\"\n", bad_redis[i]);
        EXPECT_ERR(yaml, "t.yaml:4: redis.url: ");
    }
    EXPECT_ERR(MOCK "redis:\n  url: redis://user:pw@h:1\n",
               "t.yaml:4: redis.url: credentials in the URL are not supported");
    EXPECT_ERR(MOCK "redis:\n  url: rediss://h:1\n", "t.yaml:4: redis.url: rediss:// (TLS)");
    test_redis_cluster_sentinel_urls();
}

static void test_cross_key_errors(void)
{
    EXPECT_ERR("service: x\n", "t.yaml:1: upstream: set exactly one of bootstrap");
    EXPECT_ERR("service: x\nupstream:\n  connect_timeout: 1s\n",
               "t.yaml:2: upstream: set exactly one of bootstrap");
    EXPECT_ERR("upstream:\n  mock_brokers: 0\n", "t.yaml:1: upstream: set exactly one");
    EXPECT_ERR("upstream:\n  mock_brokers: 2\n  bootstrap: k:1\n",
               "t.yaml:3: upstream.bootstrap: set both bootstrap and mock_brokers");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  reconnect_backoff: 20s\n",
               "t.yaml:3: upstream.reconnect_backoff: must not exceed");
    EXPECT_ERR("upstream:\n  mock_brokers: 3\nlisten:\n  broker_port_base: 65533\n",
               "t.yaml:4: listen.broker_port_base: 65533 + 3 mock brokers passes port 65535");
    EXPECT_ERR("upstream:\n  mock_brokers: 3\nlisten:\n  port: 19093\n",
               "t.yaml:4: listen.port: 19093 is the port of mock broker 1");
    EXPECT_ERR("upstream:\n  mock_brokers: 3\nadmin:\n  listen: 127.0.0.1:9092\n",
               "t.yaml:4: admin.listen: port 9092 is already used");
    /* A different host may reuse the port. */
    config_free(EXPECT_OK("upstream:\n  mock_brokers: 3\nadmin:\n  listen: 10.0.0.1:9092\n"));
    config_free(EXPECT_OK("upstream:\n  mock_brokers: 3\nlisten:\n  broker_port_base: 65532\n"));
}

/* listen.tls, upstream.tls/sasl and auth: parsed, checked, and refused where they cannot work. */
static void test_security_keys(void)
{
#define BOOT "upstream:\n  bootstrap: k:9092\n"
    /* Files must exist; README.md stands for any readable file. */
    config_t *c = EXPECT_OK(BOOT "  tls: {}\n  sasl:\n    mechanism: SCRAM-SHA-512\n"
                                 "    username: sidecar\n    password: s3cret\n"
                                 "listen:\n  tls: {cert_file: README.md, key_file: README.md}\n");
    if (c) {
        CHECK_EQ(c->upstream.tls.enabled, 1);
        CHECK_EQ(c->upstream.tls.verify, 1);
        CHECK(c->upstream.tls.ca_file == NULL);
        CHECK_EQ(c->upstream.sasl.mechanism, SASL_SCRAM_SHA_512);
        CHECK_STR(c->upstream.sasl.username, "sidecar");
        CHECK_STR(c->listen.tls.cert_file, "README.md");
        CHECK(c->listen.tls.client_ca_file == NULL);
        CHECK(c->auth.users_file == NULL);
    }
    config_free(c);
    c = EXPECT_OK(MOCK "auth:\n  users_file: README.md\n");
    if (c) {
        CHECK_EQ(c->upstream.tls.enabled, 0);
        CHECK_EQ(c->upstream.sasl.mechanism, SASL_NONE);
        CHECK_EQ(c->auth.mechanisms, SASL_MECH_BIT(SASL_PLAIN) | SASL_MECH_BIT(SASL_SCRAM_SHA_256) |
                                         SASL_MECH_BIT(SASL_SCRAM_SHA_512));
        CHECK_EQ(c->auth.allow_plaintext, 0);
        CHECK_EQ(c->auth.login_timeout_ms, 30000);
        CHECK(c->auth.acl == NULL);
    }
    config_free(c);
    c = EXPECT_OK(MOCK "auth:\n  users_file: README.md\n  mechanisms: [SCRAM-SHA-256]\n"
                       "  allow_plaintext: true\n  login_timeout: 5s\n  acls:\n"
                       "    - {user: alice, produce: [\"orders.*\"], consume: [orders.a, p?]}\n"
                       "    - {user: \"*\", admin: true}\n");
    if (c) {
        CHECK_EQ(c->auth.mechanisms, SASL_MECH_BIT(SASL_SCRAM_SHA_256));
        CHECK_EQ(c->auth.allow_plaintext, 1);
        CHECK_EQ(c->auth.login_timeout_ms, 5000);
        CHECK(c->auth.acl != NULL);
        CHECK_EQ(acl_allows(c->auth.acl, "alice", 5, ACL_PRODUCE, "orders.x", 8), 1);
        CHECK_EQ(acl_allows(c->auth.acl, "alice", 5, ACL_PRODUCE, "pay", 3), 0);
        CHECK_EQ(acl_allows(c->auth.acl, "alice", 5, ACL_CONSUME, "p1", 2), 1);
        CHECK_EQ(acl_is_admin(c->auth.acl, "bob", 3), 1);
        CHECK_EQ(acl_is_admin(c->auth.acl, "alice", 5), 0);
    }
    config_free(c);

    EXPECT_ERR(MOCK "listen:\n  tls:\n    cert: x.pem\n",
               "t.yaml:5: listen.tls.cert: unknown key (known here: cert_file, key_file");
    EXPECT_ERR(MOCK "listen:\n  tls:\n    cert_file: README.md\n",
               "t.yaml:4: listen.tls.key_file: is required");
    EXPECT_ERR(MOCK "listen:\n  tls: {cert_file: nope.pem, key_file: README.md}\n",
               "listen.tls.cert_file: cannot read \"nope.pem\": No such file");
    EXPECT_ERR(MOCK "upstream:\n  tls: {}\n", "t.yaml:3: upstream: duplicate key");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  tls: {}\n",
               "t.yaml:3: upstream.tls: the embedded mock cluster speaks neither TLS nor SASL");
    EXPECT_ERR("upstream:\n  mock_brokers: 1\n  tls: true\n",
               "t.yaml:3: upstream.tls: expected a map");
    EXPECT_ERR(BOOT "  tls: {verify: yes}\n", "upstream.tls.verify: must be true or false");
    EXPECT_ERR(BOOT "  tls: {cert_file: README.md}\n",
               "upstream.tls: set both cert_file and key_file, or neither");
    EXPECT_ERR(BOOT "  sasl:\n    mechanism: PLAIN\n", "upstream.sasl.username: is required");
    EXPECT_ERR(
        BOOT "  sasl: {mechanism: GSSAPI, username: a, password: b}\n",
        "upstream.sasl.mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (got \"GSSAPI\")");
    EXPECT_ERR(
        BOOT "  sasl:\n    mechanism: PLAIN\n    username: a\n    password: ${EOSPROXY_UNSET_PW}\n",
        "${EOSPROXY_UNSET_PW} is not set");
    EXPECT_ERR(MOCK "auth:\n  allow_plaintext: false\n", "t.yaml:3: auth.users_file: is required");
    EXPECT_ERR(MOCK "auth:\n", "t.yaml:3: auth: expected a map, got an empty value");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  mechanisms: []\n",
               "auth.mechanisms: must name at least one mechanism");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  mechanisms: [PLAIN, KERBEROS]\n",
               "auth.mechanisms: each must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  mechanisms: PLAIN\n",
               "auth.mechanisms: expected a list of mechanisms");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  acls:\n    - {produce: [a]}\n",
               "auth.acls[0].user: is required");
    EXPECT_ERR(MOCK
               "auth:\n  users_file: README.md\n  acls:\n    - {user: a, produce: [\"a b\"]}\n",
               "auth.acls[0].produce:");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  acls:\n    - {user: a}\n    - {user: a}\n",
               "t.yaml:7: auth.acls[1]: acl: duplicate rule for user a");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  acls:\n    - {user: a, admin: 1}\n",
               "auth.acls[0].admin: must be true or false");
    EXPECT_ERR(MOCK "auth:\n  users_file: README.md\n  acls: {user: a}\n",
               "auth.acls: expected a list of rules");
#undef BOOT
}

/* transactional.bind_group lands in the rule, and policy_bind_group finds
 * it for a request's topics. */
static void test_bind_group(void)
{
    config_t *c = load(MOCK "topics:\n  - match: \"out.*\"\n    delivery: transactional\n"
                            "    transactional:\n      bind_group: invoicer\n"
                            "  - {match: plain, delivery: transactional}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    const char *names[] = {"plain", "out.x"};
    size_t lens[] = {5, 5};
    CHECK_STR(policy_bind_group(c->policy, names, lens, 2), "invoicer");
    CHECK(policy_bind_group(c->policy, names, lens, 1) == NULL);
    CHECK(policy_binds_group(c->policy, "invoicer", 8));
    CHECK(!policy_binds_group(c->policy, "invoice", 7));
    config_free(c);
}

static void test_topic_errors(void)
{
    EXPECT_ERR(MOCK "topics:\n  - delivery: idempotent\n",
               "t.yaml:4: topics[0].match: is required");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n", "t.yaml:4: topics[0].delivery: is required");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: exactly-once\n",
               "t.yaml:5: topics[0].delivery: must be at-most-once, at-least-once, idempotent or "
               "transactional (got \"exactly-once\")");
    EXPECT_ERR(MOCK "topics:\n  - {match: a, delivery: idempotent}\n  - {match: b, delivry: x}\n",
               "t.yaml:5: topics[1].delivry: unknown key");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    match: b\n",
               "t.yaml:5: topics[0].match: duplicate");
    EXPECT_ERR(MOCK "topics:\n  - payments\n", "t.yaml:4: topics[0]: expected a map, got a scalar");
    EXPECT_ERR(MOCK "topics:\n  - match: \"pay/*\"\n    delivery: idempotent\n",
               "t.yaml:4: topics[0].match: may only hold topic characters");
    EXPECT_ERR(MOCK "topics:\n  - match: \"\"\n    delivery: idempotent\n",
               "t.yaml:4: topics[0].match: must not be empty");
    EXPECT_ERR(MOCK "topics:\n  - {match: a, delivery: idempotent}\n"
                    "  - {match: b, delivery: idempotent}\n"
                    "  - {match: a, delivery: at-most-once}\n",
               "t.yaml:6: topics[2].match: \"a\" repeats the rule on line 4");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n      ttl: 1d\n",
               "t.yaml:6: topics[0].dedup.event_id: is required");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n"
                    "      event_id: \"header:\"\n",
               "t.yaml:7: topics[0].dedup.event_id: \"header:\" needs a header name");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n"
                    "      event_id: \"json:\"\n",
               "t.yaml:7: topics[0].dedup.event_id: \"json:\" needs a field name");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n"
                    "      event_id: value\n",
               "t.yaml:7: topics[0].dedup.event_id: must be \"header:NAME\", \"key\" or");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n"
                    "      event_id: key\n      ttl: 0\n",
               "t.yaml:8: topics[0].dedup.ttl: must be between 1ms and 365d");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dedup:\n"
                    "      event_id: key\n      scope: \"\"\n",
               "t.yaml:8: topics[0].dedup.scope: must not be empty");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dlq:\n"
                    "      max_deliveries: 2\n",
               "t.yaml:4: topics[0].dlq: needs redis.url (delivery counts are kept in Redis)");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dlq:\n"
                    "      on_produce_error: drop\n",
               "t.yaml:7: topics[0].dlq.on_produce_error: must be reject or dlq");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dlq:\n"
                    "      topic: a.dlq\n      max_deliveries: 0\n",
               "t.yaml:8: topics[0].dlq.max_deliveries: must be an integer in 1..1000000");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dlq:\n"
                    "      topic: \"a.*\"\n",
               "t.yaml:7: topics[0].dlq.topic: may only hold topic characters [a-zA-Z0-9._-]");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    dlq: a.dlq\n",
               "t.yaml:6: topics[0].dlq: expected a map, got a scalar");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: idempotent\n    transactional:\n"
                    "      bind_group: g\n",
               "t.yaml:4: topics[0].transactional.bind_group: needs delivery: transactional");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: transactional\n    transactional:\n"
                    "      bind_group: \"\"\n",
               "t.yaml:7: topics[0].transactional.bind_group: must not be empty");
    EXPECT_ERR(MOCK "topics:\n  - match: a\n    delivery: transactional\n    transactional:\n"
                    "      bind_grp: g\n",
               "t.yaml:7: topics[0].transactional.bind_grp: unknown key");
    /* A self-referencing alias must fail cleanly, not loop. */
    EXPECT_ERR(MOCK "topics: &t [*t]\n", "t.yaml:3: topics[0]: expected a map, got a list");

    char yaml[512];
    char longname[300];
    memset(longname, 'x', 250);
    longname[250] = '\0';
    snprintf(yaml, sizeof(yaml), MOCK "topics:\n  - {match: %s, delivery: idempotent}\n", longname);
    EXPECT_ERR(yaml, "t.yaml:4: topics[0].match: is longer than 249 characters");
}

/* ---- ${ENV} ------------------------------------------------------------- */

static void test_env(void)
{
    setenv("EOS_T_PORT", "9100", 1);
    setenv("EOS_T_NAME", "billing", 1);
    setenv("EOS_T_BAD", "nope", 1);
    setenv("EOS_T_EMPTY", "", 1);
    unsetenv("EOS_T_UNSET");

    config_t *c = EXPECT_OK(MOCK "listen:\n  port: ${EOS_T_PORT}\n"
                                 "service: \"pre-${EOS_T_NAME}-${EOS_T_NAME}\"\n"
                                 "redis:\n  url: \"redis://localhost:${EOS_T_PORT}/1\"\n");
    if (c != NULL) {
        CHECK_EQ(c->listen.port, 9100);
        CHECK_STR(c->service, "pre-billing-billing");
        CHECK_STR(c->redis.url, "redis://localhost:9100/1");
    }
    config_free(c);

    /* "$${" is a literal "${"; a lone '$' is just a '$'. */
    c = EXPECT_OK(MOCK "service: \"a$${EOS_T_NAME}b $x $$ $\"\n");
    if (c != NULL)
        CHECK_STR(c->service, "a${EOS_T_NAME}b $x $$ $");
    config_free(c);

    EXPECT_ERR(MOCK "redis:\n  url: \"redis://:${EOS_T_UNSET}@h:1\"\n",
               "t.yaml:4: redis.url: ${EOS_T_UNSET} is not set");
    EXPECT_ERR(MOCK "service: ${EOS_T_NAME\n", "t.yaml:3: service: unterminated \"${\"");
    EXPECT_ERR(MOCK "service: \"${}\"\n", "t.yaml:3: service: \"${}\" is not a valid variable");
    EXPECT_ERR(MOCK "service: \"${1A}\"\n", "t.yaml:3: service: \"${1A}\" is not a valid");
    EXPECT_ERR(MOCK "service: \"${A-B}\"\n", "t.yaml:3: service: \"${A-B}\" is not a valid");
    /* The message shows the value as written, not the expansion. */
    EXPECT_ERR(MOCK "listen:\n  port: ${EOS_T_BAD}\n",
               "t.yaml:4: listen.port: must be an integer in 1..65535 (got \"${EOS_T_BAD}\")");
    EXPECT_ERR(MOCK "service: ${EOS_T_EMPTY}\n", "t.yaml:3: service: must not be empty");
    /* Keys are not expanded. */
    EXPECT_ERR(MOCK "${EOS_T_NAME}: 1\n", "t.yaml:3: ${EOS_T_NAME}: unknown key");

    /* The expansion is bounded. */
    char *big = malloc(3000);
    memset(big, 'x', 2999);
    big[2999] = '\0';
    setenv("EOS_T_BIG", big, 1);
    free(big);
    config_free(EXPECT_OK(MOCK "service: ${EOS_T_BIG}\n"));
    EXPECT_ERR(MOCK "service: ${EOS_T_BIG}${EOS_T_BIG}\n",
               "t.yaml:3: service: value is longer than 4096 bytes after ${ENV} expansion");
    unsetenv("EOS_T_BIG");

    /* A scalar longer than the bound, before expansion. */
    size_t n = 5000;
    char *yaml = malloc(n + 64);
    int off = snprintf(yaml, n + 64, MOCK "service: ");
    memset(yaml + off, 'y', n);
    strcpy(yaml + off + n, "\n");
    EXPECT_ERR(yaml, "t.yaml:3: service: value is longer than 4096 bytes");
    free(yaml);
}

/* ---- files and the API edges -------------------------------------------- */

static void test_files(void)
{
    char e[512];
    config_t *c = config_load("conf/demo.yaml", e, sizeof(e));
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "conf/demo.yaml: %s\n", e);
    } else {
        CHECK_STR(c->path, "conf/demo.yaml");
        CHECK_STR(c->service, "demo");
        CHECK_STR(c->listen.host, "127.0.0.1");
        CHECK_EQ(c->listen.port, 9092);
        CHECK_EQ(c->listen.broker_port_base, 19092);
        CHECK_EQ(c->upstream.mock_brokers, 3);
        CHECK(c->upstream.bootstrap == NULL);
        CHECK_STR(c->admin.listen, "127.0.0.1:9644");
        CHECK_EQ(policy_delivery(c->policy, "payments.eu", 11), DELIVERY_IDEMPOTENT);
        CHECK_EQ(policy_delivery(c->policy, "logs.app", 8), DELIVERY_AT_MOST_ONCE);
    }
    config_free(c);

    c = config_load("conf/example.yaml", e, sizeof(e));
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "conf/example.yaml: %s\n", e);
    } else {
        CHECK(c->upstream.bootstrap != NULL);
        CHECK_EQ(c->upstream.mock_brokers, 0);
        CHECK(c->redis.url != NULL);
        CHECK(c->policy->n >= 3);
    }
    config_free(c);

    c = config_load("tests/unit/conf/valid.yaml", e, sizeof(e));
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_STR(c->service, "from-file");
    config_free(c);

    CHECK(config_load("tests/unit/conf/syntax_error.yaml", e, sizeof(e)) == NULL);
    CHECK(strstr(e, "tests/unit/conf/syntax_error.yaml:6: yaml: ") != NULL);

    CHECK(config_load("tests/unit/conf/unknown_key.yaml", e, sizeof(e)) == NULL);
    CHECK(strstr(e, "tests/unit/conf/unknown_key.yaml:7: listen.max_conections: unknown key") !=
          NULL);

    CHECK(config_load("tests/unit/conf/tls_no_key.yaml", e, sizeof(e)) == NULL);
    CHECK(strstr(e, "tests/unit/conf/tls_no_key.yaml:5: listen.tls.key_file: is required") != NULL);

    CHECK(config_load("tests/unit/conf/does-not-exist.yaml", e, sizeof(e)) == NULL);
    CHECK(strstr(e, "tests/unit/conf/does-not-exist.yaml: cannot open") != NULL);

    /* A file over the 4 MiB bound is refused before parsing. */
    char big[] = "/tmp/eosproxy-test-config-XXXXXX";
    int fd = mkstemp(big);
    CHECK(fd >= 0);
    if (fd >= 0) {
        FILE *f = fdopen(fd, "w");
        for (long i = 0; f != NULL && i <= (4L << 20); i += 8)
            fputs("#......\n", f); /* 8 bytes */
        if (f != NULL)
            fclose(f);
        CHECK(config_load(big, e, sizeof(e)) == NULL);
        CHECK(strstr(e, "larger than 4 MiB") != NULL);
        unlink(big);
    }

    CHECK(config_load("tests/unit/conf", e, sizeof(e)) == NULL); /* a directory */
    CHECK(strstr(e, "tests/unit/conf: cannot read: ") != NULL);
}

static void test_api_edges(void)
{
    config_free(NULL);

    /* A tiny or missing error buffer is never overrun. */
    char tiny[8];
    memset(tiny, 'Z', sizeof(tiny));
    CHECK(config_load_string("t.yaml", "bogus: 1\n", 9, tiny, sizeof(tiny)) == NULL);
    CHECK_EQ(tiny[7], '\0');
    CHECK(config_load_string("t.yaml", "bogus: 1\n", 9, NULL, 0) == NULL);
    config_t *ok = config_load("conf/demo.yaml", NULL, 0);
    CHECK(ok != NULL);
    config_free(ok);

    /* len bounds the input: the text after it is not read. */
    const char *s = MOCK "bogus: 1\n";
    config_t *c = config_load_string("t.yaml", s, strlen(MOCK), err, sizeof(err));
    CHECK(c != NULL);
    config_free(c);
    c = config_load_string("t.yaml", NULL, 0, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strstr(err, "t.yaml:1: upstream:") != NULL);
}

/* Every key has its meaning for the reference, and the reference prints
 * every section with the keys README's tables are generated from. */
static void test_reference(void)
{
    char missing[128] = "";
    CHECK(config_reference_complete(missing, sizeof(missing)));
    if (missing[0])
        fprintf(stderr, "key without help: %s\n", missing);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_reference(f);
    fclose(f);
    CHECK(strstr(text, "### listen\n") != NULL);
    CHECK(strstr(text, "| `admin.stall_abort` | duration | `30s` |") != NULL);
    CHECK(strstr(text, "| `listen.port` | integer 1..65535 | `9092` |") != NULL);
    CHECK(strstr(text, "| `listen.max_frame_bytes` | size 1KiB..2GiB-1 | `100MiB` |") != NULL);
    CHECK(strstr(text, "| `upstream.metadata_refresh` | duration 1s.. | `5m` |") != NULL);
    CHECK(strstr(text, "| `dedup.event_id` | `header:NAME` \\| `key` \\| `json:FIELD` | "
                       "**required** |") != NULL);
    CHECK(strstr(text, "| `auth.acls[N].user` |") != NULL);
    free(text);
}

/* A live reload swaps the reloadable keys, keeps and names the others,
 * and leaves the old rules to the caller's config_free(next). */
static void test_reload(void)
{
    config_t *cur = load("upstream: {bootstrap: \"k:9092\"}\n"
                         "listen: {port: 9092, idle_timeout: 1m}\n"
                         "log: {level: info}\n"
                         "topics:\n  - {match: a, delivery: at-least-once}\n");
    config_t *next = load("upstream: {bootstrap: \"k:9093\", request_timeout: 5s}\n"
                          "listen: {port: 9192, idle_timeout: 2m, max_inflight: 8}\n"
                          "log: {level: debug}\n"
                          "topics:\n  - {match: b, delivery: idempotent}\n"
                          "  - {match: c, delivery: at-most-once}\n");
    CHECK(cur && next);
    if (!cur || !next)
        return;
    policy_t *old_rules = next->policy;
    char restart[256];
    config_reload(cur, next, restart, sizeof(restart));
    /* live keys took the new values */
    CHECK_EQ(cur->listen.idle_timeout_ms, 120000);
    CHECK_EQ(cur->upstream.request_timeout_ms, 5000);
    CHECK_STR(cur->log.level, "debug");
    CHECK(cur->policy == old_rules);
    CHECK_EQ(cur->policy->n, 2);
    CHECK_EQ(policy_delivery(cur->policy, "b", 1), DELIVERY_IDEMPOTENT);
    /* restart keys kept theirs and are named */
    CHECK_EQ(cur->listen.port, 9092);
    CHECK_EQ(cur->listen.max_inflight, 256);
    CHECK_STR(cur->upstream.bootstrap, "k:9092");
    CHECK(strstr(restart, "listen.port") != NULL);
    CHECK(strstr(restart, "listen.max_inflight") != NULL);
    CHECK(strstr(restart, "upstream.bootstrap") != NULL);
    CHECK(strstr(restart, "idle_timeout") == NULL);
    CHECK(strstr(restart, "log.level") == NULL);
    /* next holds the old values: freeing it frees the old rules */
    CHECK_EQ(next->policy->n, 1);
    CHECK_STR(next->log.level, "info");
    config_free(next);

    /* nothing to restart: an empty list */
    config_t *same = load("upstream: {bootstrap: \"k:9092\"}\nlisten: {port: 9092}\n");
    config_reload(cur, same, restart, sizeof(restart));
    CHECK_STR(restart, "");
    config_free(same);
    config_free(cur);
}

int main(void)
{
    test_reference();
    test_reload();
    test_parse_duration();
    test_parse_size();
    test_parse_hostport();
    test_defaults();
    test_every_key();
    test_values_accepted();
    test_structure_errors();
    test_syntax_errors();
    test_value_errors();
    test_duration_size_errors();
    test_address_errors();
    test_cross_key_errors();
    test_security_keys();
    test_topic_errors();
    test_bind_group();
    test_env();
    test_files();
    test_api_edges();
    return unit_done("config");
}
