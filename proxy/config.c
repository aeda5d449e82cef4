/*
 * config.c - loads eosproxy's YAML configuration into a config_t.
 *
 * The file is read with libyaml's document API and walked against static
 * tables of known keys (name, type, offset, default, range), as pgbouncer
 * does with its ini settings: a table row is the single place that says what
 * a key is called, where it lands, what it defaults to and what it accepts.
 * The same walker fills config_t and each `topics:` rule (policy_rule_t).
 *
 * Every error is one line "file:line: dotted.key: what is wrong". Unknown,
 * duplicate and reserved (not yet supported) keys are errors; nothing is
 * silently ignored. Scalars go through ${ENV} expansion before parsing.
 */
#include "config.h"
#include "redisurl.h"

#include "acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (4u << 20) /* largest config file accepted */
#define CONFIG_VALUE_MAX 4096      /* longest scalar, after ${ENV} expansion */
#define CONFIG_KEY_MAX 128         /* longest dotted key kept for messages */
#define CONFIG_TABLE_MAX 16        /* most rows in one key table */
#define CONFIG_SEEN_MAX 64         /* top-level keys whose line is remembered */
#define CONFIG_RULES_MAX 4096      /* most `topics:` rules */
#define TOPIC_NAME_MAX 249         /* Kafka's limit on a topic name */
#define ENV_NAME_MAX 255           /* longest ${NAME} */

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define SEC 1000ull
#define DAY (86400ull * SEC)
#define DURATION_MAX (365ull * DAY) /* no timeout or TTL is longer than a year */

/* The kinds of value a key can hold; each names the C type at its offset. */
typedef enum ftype {
    T_STRING,     /* char *, non-empty */
    T_HOST,       /* char *, host name, IPv4 or IPv6 address */
    T_HOSTPORT,   /* char *, "host:port" or "[v6]:port" */
    T_BOOTSTRAP,  /* char *, comma-separated "host:port" list */
    T_REDIS_URL,  /* char *, a redisurl.h form */
    T_LOG_LEVEL,  /* char *, debug|info|warn|error */
    T_LOG_FORMAT, /* log_format_t */
    T_OUTAGE,     /* redis_outage_t: block|pass */
    T_ON_ERROR,   /* dlq_on_error_t: reject|dlq */
    T_INT,        /* int in [min, max] */
    T_DURATION,   /* uint64_t milliseconds in [min, max] */
    T_SIZE,       /* uint64_t bytes in [min, max] */
    T_MATCH,      /* char *, topic name or glob (* and ?) */
    T_TOPIC,      /* char *, literal topic name */
    T_DELIVERY,   /* delivery_t */
    T_EVENT_ID,   /* policy_dedup_t (src and name) */
    T_SECTION,    /* nested map described by .sub, same base */
    T_TOPICS,     /* the `topics:` list of rules, into config_t.policy */
    T_PATH,       /* char *, a file name (checked to be readable by finish) */
    T_BOOL,       /* int 0/1: true|false */
    T_SASL_MECH,  /* sasl_mech_t: PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 */
    T_MECH_LIST,  /* unsigned SASL_MECH_BIT()s from a list of mechanism names */
    T_ACLS,       /* the `auth.acls:` list, into config_t.auth.acl */
    T_GLOB_LIST,  /* strlist_t: a list of topic names or globs */
    T_RESERVED,   /* a key kept for a later version: always an error */
} ftype_t;

#define F_REQUIRED 1u /* the enclosing map must set this key */
#define F_ALWAYS 2u   /* section: apply its defaults even when absent */
#define F_RELOAD 4u   /* takes effect on a live reload (SIGHUP, POST /reload) */

/* One known key. */
typedef struct field {
    const char *name;
    ftype_t type;
    size_t offset;           /* from the base the table is applied to */
    const char *def;         /* default, written as in YAML; NULL = none */
    uint64_t min, max;       /* T_INT, T_DURATION, T_SIZE */
    unsigned flags;          /* F_* */
    const struct field *sub; /* T_SECTION */
    const char *help;        /* one line for the reference (README, `config reference`) */
} field_t;

/* State of one load: where messages go and what has been seen. */
struct ctx {
    const char *file;
    char *err;
    size_t errlen;
    yaml_document_t *doc;
    config_t *cfg;
    int in_rule;     /* inside a `topics:` rule: lines are not remembered */
    const char *raw; /* current scalar as written, for messages */
    struct {
        char key[CONFIG_KEY_MAX];
        int line;
    } seen[CONFIG_SEEN_MAX];
    size_t nseen;
    char val[CONFIG_VALUE_MAX + 1]; /* current scalar after ${ENV} expansion */
};

/* ---- key tables --------------------------------------------------------- */

#define C(m) offsetof(config_t, m)
#define R(m) offsetof(policy_rule_t, m)

static const field_t log_fields[] = {
    {"level", T_LOG_LEVEL, C(log.level), "info", 0, 0, F_RELOAD, NULL,
     "Least severe level written to stderr."},
    {"format", T_LOG_FORMAT, C(log.format), "text", 0, 0, F_RELOAD, NULL,
     "`json` writes one JSON object per line."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t listen_tls_fields[] = {
    {"cert_file", T_PATH, C(listen.tls.cert_file), NULL, 0, 0, F_REQUIRED, NULL,
     "PEM certificate chain. Setting `listen.tls` makes every listener TLS-only (TLS 1.2+)."},
    {"key_file", T_PATH, C(listen.tls.key_file), NULL, 0, 0, F_REQUIRED, NULL,
     "PEM private key of that certificate."},
    {"client_ca_file", T_PATH, C(listen.tls.client_ca_file), NULL, 0, 0, 0, NULL,
     "When set, clients must present a certificate signed by this CA (mutual TLS)."},
    {"ktls", T_BOOL, C(listen.tls.ktls), "true", 0, 0, 0, NULL,
     "Let the kernel encrypt and decrypt client connections (kTLS) where it can: Linux with the "
     "`tls` module, an AES-GCM or ChaCha20 cipher. Otherwise OpenSSL does, as without it; "
     "`eosproxy_tls_connections_total{side=\"client\"}` says which."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t listen_fields[] = {
    {"host", T_HOST, C(listen.host), "127.0.0.1", 0, 0, 0, NULL,
     "Address to listen on (name, IPv4, or IPv6 without brackets, e.g. `::`)."},
    {"port", T_INT, C(listen.port), "9092", 1, 65535, 0, NULL,
     "Bootstrap port: what clients put in `bootstrap.servers`."},
    {"advertised_host", T_HOST, C(listen.advertised_host), NULL, 0, 0, 0, NULL,
     "Host eosproxy puts in the Metadata it returns to clients. Set it when clients reach the "
     "proxy by another name. Default: `listen.host`."},
    {"broker_port_base", T_INT, C(listen.broker_port_base), "19092", 1, 65535, 0, NULL,
     "Broker node N of the cluster is served on port `broker_port_base + N`. The mapping is a pure "
     "function of the node id, so it is stable across restarts and reconnects. Node ids must keep "
     "`base + N <= 65535`. With `mock_brokers`, nodes are 1..mock_brokers; a `listen.port` in that "
     "range is an error."},
    {"max_connections", T_INT, C(listen.max_connections), "1024", 1, 1000000, F_RELOAD, NULL,
     "Client connections at once; further connections are refused."},
    {"idle_timeout", T_DURATION, C(listen.idle_timeout_ms), "10m", 0, DURATION_MAX, F_RELOAD, NULL,
     "Close a client connection idle this long. `0` never closes."},
    {"max_frame_bytes", T_SIZE, C(listen.max_frame_bytes), "100MiB", KIB, 2 * GIB - 1, 0, NULL,
     "Largest Kafka request or response accepted; a larger frame closes the connection."},
    {"max_inflight", T_INT, C(listen.max_inflight), "256", 1, 100000, 0, NULL,
     "Pipelined requests per client connection."},
    {"buffer_bytes", T_SIZE, C(listen.buffer_bytes), "16MiB", KIB, 64 * GIB, 0, NULL,
     "Per-direction buffer high watermark: above it, eosproxy stops reading from the faster side."},
    {"tls", T_SECTION, 0, NULL, 0, 0, 0, listen_tls_fields,
     "TLS for every client listener; see its keys below."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t upstream_tls_fields[] = {
    {"ca_file", T_PATH, C(upstream.tls.ca_file), NULL, 0, 0, 0, NULL,
     "CA bundle that signed the brokers' certificates. Default: the system's CA store."},
    {"verify", T_BOOL, C(upstream.tls.verify), "true", 0, 0, 0, NULL,
     "Verify the chain and the broker's host name or IP. `false` only for tests."},
    {"cert_file", T_PATH, C(upstream.tls.cert_file), NULL, 0, 0, 0, NULL,
     "Client certificate for brokers that want mutual TLS. Both or neither."},
    {"key_file", T_PATH, C(upstream.tls.key_file), NULL, 0, 0, 0, NULL,
     "Private key of `upstream.tls.cert_file`. Both or neither."},
    {"ktls", T_BOOL, C(upstream.tls.ktls), "true", 0, 0, 0, NULL,
     "Kernel TLS for broker connections where the kernel offers it, as `listen.tls.ktls`."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t upstream_sasl_fields[] = {
    {"mechanism", T_SASL_MECH, C(upstream.sasl.mechanism), NULL, 0, 0, F_REQUIRED, NULL,
     "eosproxy logs into every broker connection with this. Not with "
     "`mock_brokers`."},
    {"username", T_STRING, C(upstream.sasl.username), NULL, 0, 0, F_REQUIRED, NULL,
     "User name for eosproxy's login."},
    {"password", T_STRING, C(upstream.sasl.password), NULL, 0, 0, F_REQUIRED, NULL,
     "Write it as `${ENV_VAR}`; it is never logged."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t upstream_fields[] = {
    {"bootstrap", T_BOOTSTRAP, C(upstream.bootstrap), NULL, 0, 0, 0, NULL,
     "The real cluster's bootstrap servers. Blanks after a comma are allowed."},
    {"mock_brokers", T_INT, C(upstream.mock_brokers), "0", 0, 16, 0, NULL,
     "When > 0, start an embedded librdkafka mock cluster of that many brokers (for demos and "
     "tests) instead of using `bootstrap`."},
    {"mock_partitions", T_INT, C(upstream.mock_partitions), "4", 1, 10000, 0, NULL,
     "Partitions of the topics that `topics` rules name exactly (no `*` or `?`); the embedded mock "
     "creates them at start. Other topics are auto-created by the mock on first use with its own "
     "default of 4 partitions (librdkafka 2.0.2 has no setting for that)."},
    {"connect_timeout", T_DURATION, C(upstream.connect_timeout_ms), "10s", 1, DURATION_MAX,
     F_RELOAD, NULL, "Connecting to a broker."},
    {"request_timeout", T_DURATION, C(upstream.request_timeout_ms), "30s", 1, DURATION_MAX,
     F_RELOAD, NULL, "eosproxy's own requests to the cluster."},
    {"reconnect_backoff", T_DURATION, C(upstream.reconnect_backoff_ms), "100ms", 1, DURATION_MAX,
     F_RELOAD, NULL,
     "First delay before reconnecting to a broker; doubles up to the max. Must not exceed "
     "`reconnect_backoff_max`."},
    {"reconnect_backoff_max", T_DURATION, C(upstream.reconnect_backoff_max_ms), "10s", 1,
     DURATION_MAX, F_RELOAD, NULL, "Longest reconnect delay."},
    {"metadata_refresh", T_DURATION, C(upstream.metadata_refresh_ms), "5m", SEC, DURATION_MAX,
     F_RELOAD, NULL, "How often cluster metadata is re-read."},
    {"tls", T_SECTION, 0, NULL, 0, 0, 0, upstream_tls_fields,
     "Present (even `{}`): TLS 1.2+ to every broker. Not with `mock_brokers`."},
    {"sasl", T_SECTION, 0, NULL, 0, 0, 0, upstream_sasl_fields,
     "eosproxy's own SASL login to every broker connection; see its keys below."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t auth_fields[] = {
    {"users_file", T_PATH, C(auth.users_file), NULL, 0, 0, F_REQUIRED, NULL,
     "Users and password hashes (`eosproxy passwd`). Every client must then "
     "log in with SASL. Reloaded on `kill -HUP`."},
    {"mechanisms", T_MECH_LIST, C(auth.mechanisms), NULL, 0, 0, F_RELOAD, NULL,
     "Mechanisms offered to clients. Default: all three."},
    {"allow_plaintext", T_BOOL, C(auth.allow_plaintext), "false", 0, 0, F_RELOAD, NULL,
     "Allow SASL/PLAIN without TLS from addresses that are not loopback."},
    {"login_timeout", T_DURATION, C(auth.login_timeout_ms), "30s", 1, DURATION_MAX, F_RELOAD, NULL,
     "A connection that has not logged in by then is closed (`reason=\"auth\"`), so strangers "
     "cannot hold `listen.max_connections` slots."},
    {"acls", T_ACLS, 0, NULL, 0, 0, F_RELOAD, NULL,
     "Absent: every authenticated user may do anything. Present: each user may do only what its "
     "rule allows, and a user without a rule (and without a `\"*\"` rule) may do nothing with "
     "topics."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t admin_fields[] = {
    {"listen", T_HOSTPORT, C(admin.listen), NULL, 0, 0, 0, NULL,
     "HTTP admin endpoint: `/metrics` (Prometheus), `/healthz`, `/readyz`. Must not use the Kafka "
     "listener's port on the same host. Absent: no admin endpoint."},
    {"stall_abort", T_DURATION, C(admin.stall_abort_ms), "30s", 0, DURATION_MAX, 0, NULL,
     "The watchdog aborts the process (SIGABRT, core dump of the event loop's thread, one log "
     "line) when the event loop has not turned for this long. `0` disables it. See [Lifecycle and "
     "logs](#lifecycle-and-logs)."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t redis_fields[] = {
    {"url", T_REDIS_URL, C(redis.url), NULL, 0, 0, 0, NULL,
     "Redis that keeps dedup eventIds: one server `redis://host:port[/db]`; a Redis Cluster "
     "`redis+cluster://host:port[,host:port...]` (seed nodes; database 0); or a primary found "
     "through Sentinel `redis+sentinel://host:port[,host:port...]/master[/db]` (Sentinels, then "
     "the monitored master's name). `db` is a database number; at most 16 hosts. Credentials in "
     "the URL (`user:pw@`) and `rediss://` are not supported by this version."},
    {"on_unavailable", T_OUTAGE, C(redis.on_unavailable), "block", 0, 0, F_RELOAD, NULL,
     "While Redis is down: `block` holds a Fetch response of a dedup topic (then answers its "
     "partitions with NOT_LEADER_OR_FOLLOWER after `block_timeout`); `pass` delivers it unfiltered "
     "and counts it."},
    {"timeout", T_DURATION, C(redis.timeout_ms), "1s", 1, DURATION_MAX, 0, NULL,
     "One Redis round trip (and the connect)."},
    {"block_timeout", T_DURATION, C(redis.block_timeout_ms), "10s", 1, DURATION_MAX, F_RELOAD, NULL,
     "How long `block` holds a response. Keep it below the clients' request timeout."},
    {"pending_ttl", T_DURATION, C(redis.pending_ttl_ms), "5m", 1, DURATION_MAX, F_RELOAD, NULL,
     "Lifetime of a pending mark, so a dead consumer never blocks delivery for good."},
    {"cache_entries", T_INT, C(redis.cache_entries), "100000", 0, 100000000, 0, NULL,
     "In-process cache of done eventIds (0: off)."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t txn_fields[] = {
    {"id", T_STRING, C(transactions.id), NULL, 0, 0, 0, NULL,
     "Transactional id eosproxy writes `transactional` topics under. Must be stable across "
     "restarts "
     "of one instance and unique among live instances: a restart fences the previous incarnation "
     "and aborts what it left open. Default: `<service>-<host name>` (a StatefulSet pod name is "
     "stable; see [Transactional delivery](#transactional-delivery))."},
    {"timeout", T_DURATION, C(transactions.timeout_ms), "60s", SEC, 15 * 60 * SEC, 0, NULL,
     "Transaction timeout given to the coordinator (InitProducerId): a transaction eosproxy left "
     "open is aborted by the cluster after this long. At most the broker's "
     "`transaction.max.timeout.ms`."},
    {"linger", T_DURATION, C(transactions.linger_ms), "10ms", 0, 60 * SEC, F_RELOAD, NULL,
     "How long an idle engine waits for more requests before it closes a transaction. Requests "
     "that arrive while one is being committed go into the next one without waiting."},
    {"quiet", T_DURATION, C(transactions.quiet_ms), "1ms", 0, 60 * SEC, F_RELOAD, NULL,
     "An open transaction also closes once no request has come for this long (`0`: only the "
     "linger closes it). A client that has all its requests in flight waits for their answers "
     "and sends nothing more, so waiting out the linger would only delay it."},
    {"max_bytes", T_SIZE, C(transactions.max_bytes), "4MiB", KIB, GIB, F_RELOAD, NULL,
     "A transaction is closed once its batches reach this many bytes."},
    {"max_inflight", T_INT, C(transactions.max_inflight), "4", 1, 1000, F_RELOAD, NULL,
     "Closed transactions queued behind the one being committed; beyond, clients are paused "
     "(backpressure)."},
    {"pool", T_INT, C(transactions.pool), "2", 1, 16, 0, NULL,
     "Transactional ids the unbound route writes under: `transactions.id` and, from the second, "
     "`<transactions.id>.1`, `<transactions.id>.2`... Kafka runs one transaction at a time per id; "
     "with two or more, one commits while the next is written, so throughput is no longer one "
     "transaction per commit round trip. Records of a partition are still written in the order "
     "they arrived. Every id is initialized at the first transactional request, which fences "
     "a previous incarnation on each; an id dropped by a smaller pool leaves what it had open "
     "to `transactions.timeout`. ACLs must allow every id (a prefixed ACL on `transactions.id`)."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t top_fields[] = {
    {"service", T_STRING, C(service), "eosproxy", 0, 0, 0, NULL,
     "Name of the application this sidecar serves. The default `dedup.scope`."},
    {"log", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, log_fields, "Logging; see below."},
    {"listen", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, listen_fields,
     "The side Kafka clients connect to; see below."},
    {"upstream", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, upstream_fields,
     "The Kafka cluster; see below. **Required** (bootstrap or mock_brokers)."},
    {"admin", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, admin_fields,
     "The HTTP admin endpoint and the stall watchdog; see below."},
    {"drain_timeout", T_DURATION, C(drain_timeout_ms), "10s", 0, DURATION_MAX, F_RELOAD, NULL,
     "On SIGTERM, how long to wait for in-flight requests before closing. `0` closes at once."},
    {"redis", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, redis_fields,
     "Where dedup keeps its eventIds; see below."},
    {"transactions", T_SECTION, 0, NULL, 0, 0, F_ALWAYS, txn_fields,
     "How `transactional` topics are written; see below."},
    {"topics", T_TOPICS, 0, NULL, 0, 0, F_RELOAD, NULL,
     "Per-topic delivery rules; see below. Absent: every topic is passed through as "
     "`at-least-once`."},
    {"auth", T_SECTION, 0, NULL, 0, 0, 0, auth_fields,
     "Client authentication and ACLs; see below. Absent: clients are not authenticated."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* A rule's dedup/dlq defaults apply only when the section is present. */
static const field_t dedup_fields[] = {
    {"event_id", T_EVENT_ID, R(dedup), NULL, 0, 0, F_REQUIRED, NULL,
     "Where a record's eventId comes from: record header `NAME`, the record key, or top-level "
     "field `FIELD` of a JSON value."},
    {"ttl", T_DURATION, R(dedup.ttl_ms), "7d", 1, DURATION_MAX, 0, NULL,
     "How long an eventId stays known."},
    {"scope", T_STRING, R(dedup.scope), NULL, 0, 0, 0, NULL,
     "EventIds are unique within a scope; rules (or services) sharing a scope share their "
     "eventIds. Default: the top-level `service`."},
    {"require_event_id", T_BOOL, R(dedup.require_event_id), "false", 0, 0, 0, NULL,
     "Producer path: a record without an eventId is refused (INVALID_RECORD), or written to "
     "the DLQ when `dlq.on_produce_error` is `dlq`."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t dlq_fields[] = {
    {"topic", T_TOPIC, R(dlq.topic), NULL, 0, 0, 0, NULL,
     "Dead-letter topic of the matched topics. Default: `<topic>.DLT` for each topic (Spring "
     "Kafka's convention)."},
    {"max_deliveries", T_INT, R(dlq.max_deliveries), "5", 1, 1000000, 0, NULL,
     "Deliveries of a record at the same position, with no commit past it, before it is moved "
     "to the DLQ (see \"Dead-letter topics\")."},
    {"on_produce_error", T_ON_ERROR, R(dlq.on_produce_error), "reject", 0, 0, 0, NULL,
     "Producer path: `reject` answers the client with the error; `dlq` writes records the "
     "broker refuses for good, or that fail the rule's own checks, to the DLQ and answers "
     "success."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t rule_txn_fields[] = {
    {"bind_group", T_STRING, R(bind_group), NULL, 0, 0, 0, NULL,
     "Consume-process-produce: records produced to the matched topics join a transaction that "
     "commits together with the next offset commit of this consumer group through eosproxy (see "
     "\"Exactly-once consume-process-produce\"). Needs `delivery: transactional`."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const field_t rule_fields[] = {
    {"match", T_MATCH, R(match), NULL, 0, 0, F_REQUIRED, NULL,
     "An exact topic name (compared fastest), or a glob: `*` matches any run of characters (also "
     "none), `?` exactly one. Topic characters `[a-zA-Z0-9._-]` plus `*` and `?`; at most 249 "
     "characters."},
    {"delivery", T_DELIVERY, R(delivery), NULL, 0, 0, F_REQUIRED, NULL,
     "The guarantee eosproxy enforces for the topic."},
    {"dedup", T_SECTION, 0, NULL, 0, 0, 0, dedup_fields,
     "Consumer dedup by eventId for the matched topics (see \"Consumer dedup\"). Needs "
     "`redis.url`."},
    {"dlq", T_SECTION, 0, NULL, 0, 0, 0, dlq_fields,
     "Dead-letter routing for the matched topics (see \"Dead-letter topics\"). Needs "
     "`redis.url`."},
    {"transactional", T_SECTION, 0, NULL, 0, 0, 0, rule_txn_fields,
     "Options of `delivery: transactional`."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* A list of strings, as parsed (T_GLOB_LIST). */
typedef struct strlist {
    char **v;
    size_t n;
} strlist_t;

/* One `auth.acls:` entry while it is parsed. */
typedef struct acl_entry {
    char *user;
    strlist_t produce, consume;
    int admin;
} acl_entry_t;

#define A(m) offsetof(acl_entry_t, m)
static const field_t acl_fields[] = {
    {"user", T_STRING, A(user), NULL, 0, 0, F_REQUIRED, NULL,
     "User name, or `\"*\"` for users without a rule of their own."},
    {"produce", T_GLOB_LIST, A(produce), NULL, 0, 0, 0, NULL, "Topics the user may produce to."},
    {"consume", T_GLOB_LIST, A(consume), NULL, 0, 0, 0, NULL, "Topics the user may fetch from."},
    {"admin", T_BOOL, A(admin), "false", 0, 0, 0, NULL,
     "May use CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords and DeleteGroups."},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};
#undef A

#undef C
#undef R

/* ---- messages ----------------------------------------------------------- */

/* Writes "file:line: key: <fmt>" into the caller's buffer; returns -1. */
__attribute__((format(printf, 4, 5))) static int fail(struct ctx *c, int line, const char *key,
                                                      const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0)
        return -1;
    int n = snprintf(c->err, c->errlen, "%s:%d: %s: ", c->file, line > 0 ? line : 1, key);
    if (n < 0 || (size_t)n >= c->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* "parent.key" (or "key" at the top) into out[CONFIG_KEY_MAX]. */
static void key_join(char *out, const char *parent, const char *key)
{
    if (parent[0] == '\0')
        snprintf(out, CONFIG_KEY_MAX, "%.100s", key);
    else
        snprintf(out, CONFIG_KEY_MAX, "%.60s.%.60s", parent, key);
}

/* 1-based line of a node. */
static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static int is_null(const yaml_node_t *n);

static const char *node_kind(const yaml_node_t *n)
{
    if (is_null(n))
        return "an empty value";
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a map";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* Renders ms as the largest unit that divides it ("10s", "7d", "250ms"). */
static void fmt_duration(uint64_t ms, char *buf, size_t n)
{
    static const struct {
        uint64_t mul;
        const char *unit;
    } units[] = {{DAY, "d"}, {3600 * SEC, "h"}, {60 * SEC, "m"}, {SEC, "s"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].mul == 0) {
            snprintf(buf, n, "%llu%s", (unsigned long long)(ms / units[i].mul), units[i].unit);
            return;
        }
    }
    snprintf(buf, n, "%llums", (unsigned long long)ms);
}

/* Renders bytes as the largest binary unit that divides it ("16MiB"). */
static void fmt_size(uint64_t b, char *buf, size_t n)
{
    static const struct {
        uint64_t mul;
        const char *unit;
    } units[] = {{GIB, "GiB"}, {MIB, "MiB"}, {KIB, "KiB"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (b != 0 && b % units[i].mul == 0) {
            snprintf(buf, n, "%llu%s", (unsigned long long)(b / units[i].mul), units[i].unit);
            return;
        }
    }
    snprintf(buf, n, "%llu", (unsigned long long)b);
}

/* Remembers the line of a top-level key, for cross-key messages. */
static void remember_line(struct ctx *c, const char *key, int line)
{
    if (c->in_rule || c->nseen == CONFIG_SEEN_MAX)
        return;
    snprintf(c->seen[c->nseen].key, CONFIG_KEY_MAX, "%s", key);
    c->seen[c->nseen].line = line;
    c->nseen++;
}

/* Line where key ("section.name") was set, else where its section was, else 1. */
static int line_of(const struct ctx *c, const char *key)
{
    size_t sect = strcspn(key, ".");
    int line = 1;
    for (size_t i = 0; i < c->nseen; i++) {
        if (strcmp(c->seen[i].key, key) == 0)
            return c->seen[i].line;
        if (strlen(c->seen[i].key) == sect && memcmp(c->seen[i].key, key, sect) == 0)
            line = c->seen[i].line;
    }
    return line;
}

/* 1 if key ("section.name") was set in the file. */
static int key_seen(const struct ctx *c, const char *key)
{
    for (size_t i = 0; i < c->nseen; i++) {
        if (strcmp(c->seen[i].key, key) == 0)
            return 1;
    }
    return 0;
}

/* ---- strict scalar parsers ---------------------------------------------- */

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Leading decimal digits of s into *v; returns the end, or NULL on none/overflow. */
static const char *parse_digits(const char *s, uint64_t *v)
{
    uint64_t acc = 0;
    const char *p = s;
    for (; is_digit(*p); p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return NULL;
        acc = acc * 10 + d;
    }
    if (p == s)
        return NULL;
    *v = acc;
    return p;
}

/* Optional '-' then digits, nothing else; fits in int64. */
static int parse_int(const char *s, int64_t *out)
{
    int neg = s[0] == '-';
    uint64_t v;
    const char *end = parse_digits(s + neg, &v);
    if (end == NULL || *end != '\0' || v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* digits * unit, where the suffix after the digits must be one of units[]. */
struct unit {
    const char *suffix;
    uint64_t mul;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n, uint64_t *out)
{
    uint64_t v;
    if (s == NULL)
        return -1;
    const char *end = parse_digits(s, &v);
    if (end == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            return 0;
        }
    }
    return -1;
}

int config_parse_duration(const char *s, uint64_t *ms)
{
    static const struct unit units[] = {
        {"", 1}, {"ms", 1}, {"s", SEC}, {"m", 60 * SEC}, {"h", 3600 * SEC}, {"d", DAY},
    };
    return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), ms);
}

/* Binary units (KiB...) are powers of 1024; SI units (KB...) powers of 1000. */
int config_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {
        {"", 1},      {"B", 1},        {"KiB", KIB},       {"MiB", MIB},
        {"GiB", GIB}, {"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull},
    };
    return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), bytes);
}

/* Port: 1..65535, digits only. */
static int parse_port(const char *s, int *port)
{
    uint64_t v;
    const char *end = parse_digits(s, &v);
    if (end == NULL || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* An IPv6 literal (optionally with a %zone), host[0..len). */
static int is_ipv6(const char *h, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    const char *pct = memchr(h, '%', len);
    size_t n = pct ? (size_t)(pct - h) : len;
    if (n == 0 || n >= sizeof(buf) || (pct && (size_t)(pct - h) + 1 == len))
        return 0;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

/* A host name or IPv4 address: letters, digits, '.', '-', '_'. */
static int is_hostname(const char *h, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        if (!(is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' ||
              ch == '-' || ch == '_'))
            return 0;
    }
    return 1;
}

/* A bare host as in listen.host: a name, IPv4 or unbracketed IPv6. */
static int is_host(const char *h)
{
    size_t len = strlen(h);
    return memchr(h, ':', len) ? is_ipv6(h, len) : is_hostname(h, len);
}

int config_parse_hostport(const char *s, char **host, int *port)
{
    const char *h, *hend, *p;
    if (s == NULL || host == NULL || port == NULL)
        return -1;
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (hend == NULL || hend[1] != ':' || !is_ipv6(h, (size_t)(hend - h)))
            return -1;
        p = hend + 2;
    } else {
        h = s;
        hend = strrchr(s, ':');
        if (hend == NULL || !is_hostname(h, (size_t)(hend - h)))
            return -1; /* also rejects unbracketed IPv6: ':' is not a host char */
        p = hend + 1;
    }
    int pv;
    if (parse_port(p, &pv) < 0)
        return -1;
    char *hs = strndup(h, (size_t)(hend - h));
    if (hs == NULL)
        return -1;
    *host = hs;
    *port = pv;
    return 0;
}

/* ---- value checkers: NULL when fine, else what is wrong ------------------ */

/* Kafka topic characters; wild also allows * and ?. */
static const char *check_topic(const char *s, int wild)
{
    size_t len = strlen(s);
    if (len > TOPIC_NAME_MAX)
        return "is longer than 249 characters (Kafka's topic name limit)";
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' ||
            ch == '_' || ch == '-')
            continue;
        if (wild && (ch == '*' || ch == '?'))
            continue;
        return wild ? "may only hold topic characters [a-zA-Z0-9._-] and the wildcards * and ?"
                    : "may only hold topic characters [a-zA-Z0-9._-]";
    }
    return NULL;
}

/* "host:port,host:port" (blanks after a comma are allowed). */
static const char *check_bootstrap(const char *s)
{
    char entry[CONFIG_VALUE_MAX + 1];
    const char *p = s;
    for (;;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0)
            return "has an empty entry (expected \"host:port,host:port\")";
        memcpy(entry, p, n);
        entry[n] = '\0';
        char *host;
        int port;
        if (config_parse_hostport(entry, &host, &port) < 0)
            return "each entry must be \"host:port\" or \"[ipv6]:port\" with port 1..65535";
        free(host);
        p += strcspn(p, ",");
        if (*p == '\0')
            return NULL;
        p++;
    }
}

/* redis.url in one of redisurl.h's three forms. */
static const char *check_redis_url(const char *s)
{
    struct redisurl u;
    const char *why = redisurl_parse(s, &u);
    redisurl_free(&u);
    return why;
}

static const char *check_log_level(const char *s)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(s, levels[i]) == 0)
            return NULL;
    }
    return "must be debug, info, warn or error";
}

/* ---- setting one scalar ------------------------------------------------- */

static void *at(void *base, const field_t *f)
{
    return (char *)base + f->offset;
}

/* Replaces the string at f's offset with a copy of s. */
static int set_string(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                      const char *key)
{
    char **dst = at(base, f);
    char *copy = strdup(s);
    if (copy == NULL)
        return fail(c, line, key, "out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

/* "...: <what> (got "raw")"; raw is the value as written, before ${ENV}. */
static int bad_value(struct ctx *c, int line, const char *key, const char *what)
{
    return fail(c, line, key, "%s (got \"%.64s%s\")", what, c->raw,
                strlen(c->raw) > 64 ? "..." : "");
}

static int set_int(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                   const char *key)
{
    int64_t v;
    if (parse_int(s, &v) < 0 || v < (int64_t)f->min || v > (int64_t)f->max) {
        char what[96];
        snprintf(what, sizeof(what), "must be an integer in %llu..%llu", (unsigned long long)f->min,
                 (unsigned long long)f->max);
        return bad_value(c, line, key, what);
    }
    *(int *)at(base, f) = (int)v;
    return 0;
}

static int set_duration(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                        const char *key)
{
    uint64_t v;
    char lo[32], hi[32], what[128];
    if (config_parse_duration(s, &v) < 0)
        return bad_value(c, line, key,
                         "must be a duration such as 500ms, 10s, 5m, 2h or 7d (bare number = ms)");
    if (v < f->min || v > f->max) {
        fmt_duration(f->min, lo, sizeof(lo));
        fmt_duration(f->max, hi, sizeof(hi));
        snprintf(what, sizeof(what), "must be between %s and %s", lo, hi);
        return bad_value(c, line, key, what);
    }
    *(uint64_t *)at(base, f) = v;
    return 0;
}

static int set_size(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                    const char *key)
{
    uint64_t v;
    char lo[32], hi[32], what[128];
    if (config_parse_size(s, &v) < 0)
        return bad_value(c, line, key,
                         "must be a size: bytes, or a number with KiB, MiB, GiB (or KB, MB, GB)");
    if (v < f->min || v > f->max) {
        fmt_size(f->min, lo, sizeof(lo));
        fmt_size(f->max, hi, sizeof(hi));
        snprintf(what, sizeof(what), "must be between %s and %s", lo, hi);
        return bad_value(c, line, key, what);
    }
    *(uint64_t *)at(base, f) = v;
    return 0;
}

/* String-valued kinds: check, then store a copy. */
static int set_checked_string(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                              const char *key)
{
    const char *why = NULL;
    char *host;
    int port;

    if (s[0] == '\0')
        return fail(c, line, key, "must not be empty");
    switch (f->type) {
    case T_HOST:
        if (!is_host(s))
            why = "must be a host name or IP address (no port)";
        break;
    case T_HOSTPORT:
        if (config_parse_hostport(s, &host, &port) < 0)
            why = "must be \"host:port\" or \"[ipv6]:port\" with port 1..65535";
        else
            free(host);
        break;
    case T_BOOTSTRAP:
        why = check_bootstrap(s);
        break;
    case T_REDIS_URL:
        why = check_redis_url(s);
        break;
    case T_LOG_LEVEL:
        why = check_log_level(s);
        break;
    case T_MATCH:
        why = check_topic(s, 1);
        break;
    case T_TOPIC:
        why = check_topic(s, 0);
        break;
    default:
        break;
    }
    if (why != NULL)
        return bad_value(c, line, key, why);
    return set_string(c, f, base, s, line, key);
}

/* Parses s (already expanded) into the field at f's offset. */
static int set_scalar(struct ctx *c, const field_t *f, void *base, const char *s, int line,
                      const char *key)
{
    const char *why;
    switch (f->type) {
    case T_INT:
        return set_int(c, f, base, s, line, key);
    case T_DURATION:
        return set_duration(c, f, base, s, line, key);
    case T_SIZE:
        return set_size(c, f, base, s, line, key);
    case T_LOG_FORMAT:
        if (strcmp(s, "text") != 0 && strcmp(s, "json") != 0)
            return bad_value(c, line, key, "must be text or json");
        *(log_format_t *)at(base, f) = s[0] == 't' ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
        return 0;
    case T_OUTAGE:
        if (strcmp(s, "block") != 0 && strcmp(s, "pass") != 0)
            return bad_value(c, line, key, "must be block or pass");
        *(redis_outage_t *)at(base, f) = s[0] == 'b' ? REDIS_OUTAGE_BLOCK : REDIS_OUTAGE_PASS;
        return 0;
    case T_ON_ERROR:
        if (strcmp(s, "reject") != 0 && strcmp(s, "dlq") != 0)
            return bad_value(c, line, key, "must be reject or dlq");
        *(dlq_on_error_t *)at(base, f) = s[0] == 'r' ? DLQ_ON_ERROR_REJECT : DLQ_ON_ERROR_DLQ;
        return 0;
    case T_DELIVERY:
        if (policy_delivery_parse(s, at(base, f)) < 0)
            return bad_value(c, line, key,
                             "must be at-most-once, at-least-once, idempotent or transactional");
        return 0;
    case T_EVENT_ID:
        if (policy_eventid_parse(s, at(base, f), &why) < 0)
            return bad_value(c, line, key, why);
        return 0;
    case T_BOOL:
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
            return bad_value(c, line, key, "must be true or false");
        *(int *)at(base, f) = s[0] == 't';
        return 0;
    case T_SASL_MECH: {
        int m = config_parse_sasl_mech(s);
        if (m < 0)
            return bad_value(c, line, key, "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
        *(sasl_mech_t *)at(base, f) = (sasl_mech_t)m;
        return 0;
    }
    default:
        return set_checked_string(c, f, base, s, line, key);
    }
}

/* ---- ${ENV} expansion ---------------------------------------------------- */

/* [A-Za-z_][A-Za-z0-9_]*, at most ENV_NAME_MAX characters. */
static int is_env_name(const char *s, size_t n)
{
    if (n == 0 || n > ENV_NAME_MAX || is_digit(s[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' || is_digit(ch)))
            return 0;
    }
    return 1;
}

/* Appends s[0..n) to c->val at *len, within CONFIG_VALUE_MAX. */
static int val_append(struct ctx *c, size_t *len, const char *s, size_t n, int line,
                      const char *key)
{
    if (n > CONFIG_VALUE_MAX - *len)
        return fail(c, line, key, "value is longer than %d bytes after ${ENV} expansion",
                    CONFIG_VALUE_MAX);
    memcpy(c->val + *len, s, n);
    *len += n;
    c->val[*len] = '\0';
    return 0;
}

/* Expands raw into c->val: "${NAME}" is the variable, "$${" a literal "${". */
static int expand_env(struct ctx *c, const char *raw, int line, const char *key)
{
    size_t len = 0;
    c->val[0] = '\0';
    for (const char *p = raw; *p != '\0';) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            if (val_append(c, &len, "${", 2, line, key) < 0)
                return -1;
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            size_t n = strcspn(p + 1, "$") + 1; /* up to the next '$' */
            if (val_append(c, &len, p, n, line, key) < 0)
                return -1;
            p += n;
            continue;
        }
        const char *name = p + 2;
        const char *close = strchr(name, '}');
        if (close == NULL)
            return fail(c, line, key, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
        size_t n = (size_t)(close - name);
        if (!is_env_name(name, n))
            return fail(c, line, key, "\"${%.*s}\" is not a valid variable name",
                        (int)(n > 64 ? 64 : n), name);
        char var[ENV_NAME_MAX + 1];
        memcpy(var, name, n);
        var[n] = '\0';
        const char *v = getenv(var);
        if (v == NULL)
            return fail(c, line, key, "${%.64s} is not set", var);
        if (val_append(c, &len, v, strlen(v), line, key) < 0)
            return -1;
        p = close + 1;
    }
    return 0;
}

/* ---- walking the document ----------------------------------------------- */

static int set_node(struct ctx *c, const field_t *f, void *base, yaml_node_t *val, int keyline,
                    const char *key);
static int expand_env(struct ctx *c, const char *raw, int line, const char *key);

/* A plain empty, "~" or "null" scalar: YAML's null. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A scalar value into the field: type and null checks, ${ENV}, parse. */
static int set_scalar_node(struct ctx *c, const field_t *f, void *base, yaml_node_t *val,
                           int keyline, const char *key)
{
    if (val->type != YAML_SCALAR_NODE)
        return fail(c, node_line(val), key, "expected a value, got %s", node_kind(val));
    if (is_null(val))
        return fail(c, keyline, key, "has no value");
    const char *raw = (const char *)val->data.scalar.value;
    if (strlen(raw) != val->data.scalar.length)
        return fail(c, node_line(val), key, "contains a NUL character");
    if (val->data.scalar.length > CONFIG_VALUE_MAX)
        return fail(c, node_line(val), key, "value is longer than %d bytes", CONFIG_VALUE_MAX);
    if (expand_env(c, raw, node_line(val), key) < 0)
        return -1;
    c->raw = raw;
    return set_scalar(c, f, base, c->val, node_line(val), key);
}

/* Applies the table's scalar defaults to base. */
static int apply_defaults(struct ctx *c, const field_t *tbl, void *base, const char *path)
{
    char key[CONFIG_KEY_MAX];
    for (const field_t *f = tbl; f->name != NULL; f++) {
        if (f->def == NULL)
            continue;
        key_join(key, path, f->name);
        c->raw = f->def;
        if (set_scalar(c, f, base, f->def, 0, key) < 0)
            return -1;
    }
    return 0;
}

static size_t tbl_len(const field_t *tbl)
{
    size_t n = 0;
    while (tbl[n].name != NULL)
        n++;
    return n;
}

static const field_t *find_field(const field_t *tbl, const char *name, size_t len)
{
    for (const field_t *f = tbl; f->name != NULL; f++) {
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

/* "a, b, c": the names in tbl, for "unknown key" messages. */
static void known_keys(const field_t *tbl, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const field_t *f = tbl; f->name != NULL && used < n; f++) {
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", f->name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* One "key: value" pair of a map described by tbl. first[] tracks duplicates. */
static int parse_pair(struct ctx *c, const field_t *tbl, void *base, yaml_node_pair_t *pair,
                      int *first, const char *path)
{
    yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
    yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
    char key[CONFIG_KEY_MAX];
    if (k == NULL || v == NULL)
        return fail(c, 1, path[0] ? path : "config", "malformed document");
    if (k->type != YAML_SCALAR_NODE)
        return fail(c, node_line(k), path[0] ? path : "config", "keys must be plain names, not %s",
                    node_kind(k));
    const char *name = (const char *)k->data.scalar.value;
    key_join(key, path, name);
    const field_t *f = find_field(tbl, name, k->data.scalar.length);
    if (f == NULL) {
        char known[256];
        known_keys(tbl, known, sizeof(known));
        return fail(c, node_line(k), key, "unknown key (known here: %s)", known);
    }
    int idx = (int)(f - tbl);
    if (first[idx])
        return fail(c, node_line(k), key, "duplicate key (first set on line %d)", first[idx]);
    first[idx] = node_line(k);
    remember_line(c, key, node_line(k));
    return set_node(c, f, base, v, node_line(k), key);
}

/*
 * Applies tbl to a map node (NULL: the section is absent): defaults first,
 * then each pair, then the checks for required keys and absent sections.
 * A missing required key is reported at line, where the map was introduced.
 */
static int parse_map(struct ctx *c, const field_t *tbl, void *base, yaml_node_t *node,
                     const char *path, int line)
{
    int first[CONFIG_TABLE_MAX] = {0};
    char key[CONFIG_KEY_MAX];
    const char *here = path[0] ? path : "config";

    if (tbl_len(tbl) > CONFIG_TABLE_MAX)
        return fail(c, 1, here, "internal error: key table too long");
    if (apply_defaults(c, tbl, base, path) < 0)
        return -1;
    if (node != NULL && node->type != YAML_MAPPING_NODE)
        return fail(c, node_line(node), here, "expected a map, got %s", node_kind(node));
    if (node != NULL) {
        for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
             pr < node->data.mapping.pairs.top; pr++) {
            if (parse_pair(c, tbl, base, pr, first, path) < 0)
                return -1;
        }
    }
    for (const field_t *f = tbl; f->name != NULL; f++) {
        if (first[f - tbl])
            continue;
        key_join(key, path, f->name);
        if ((f->flags & F_REQUIRED) && node != NULL)
            return fail(c, line, key, "is required");
        if (f->type == T_SECTION && (f->flags & F_ALWAYS) &&
            parse_map(c, f->sub, base, NULL, key, line) < 0)
            return -1;
    }
    return 0;
}

/* Frees every string a table's fields own in base, and clears them. */
static void free_fields(const field_t *tbl, void *base)
{
    for (const field_t *f = tbl; f->name != NULL; f++) {
        switch (f->type) {
        case T_STRING:
        case T_HOST:
        case T_HOSTPORT:
        case T_BOOTSTRAP:
        case T_REDIS_URL:
        case T_LOG_LEVEL:
        case T_MATCH:
        case T_PATH:
        case T_TOPIC: {
            char **s = at(base, f);
            free(*s);
            *s = NULL;
            break;
        }
        case T_EVENT_ID: {
            policy_dedup_t *d = at(base, f);
            free(d->name);
            d->name = NULL;
            break;
        }
        case T_GLOB_LIST: {
            strlist_t *l = at(base, f);
            for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
            free(l->v);
            l->v = NULL;
            l->n = 0;
            break;
        }
        case T_SECTION:
            free_fields(f->sub, base);
            break;
        default:
            break;
        }
    }
}

/* Checks a parsed rule against the rules before it. */
static int check_rule(struct ctx *c, const policy_rule_t *r, const char *path)
{
    const policy_t *p = c->cfg->policy;
    char key[CONFIG_KEY_MAX];
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->rules[i].match, r->match) == 0) {
            key_join(key, path, "match");
            return fail(c, r->line, key,
                        "\"%.64s\" repeats the rule on line %d; this rule would never apply",
                        r->match, p->rules[i].line);
        }
    }
    return 0;
}

/* One `topics:` entry: parsed into a local rule, then copied into the policy. */
static int parse_rule(struct ctx *c, yaml_node_t *item, size_t i)
{
    char path[CONFIG_KEY_MAX];
    policy_rule_t rule;
    memset(&rule, 0, sizeof(rule));
    snprintf(path, sizeof(path), "topics[%zu]", i);
    rule.line = node_line(item);

    int rc = parse_map(c, rule_fields, &rule, item, path, rule.line);
    if (rc == 0)
        rc = check_rule(c, &rule, path);
    if (rc == 0 && policy_add(c->cfg->policy, &rule) < 0)
        rc = fail(c, rule.line, path, "out of memory");
    free_fields(rule_fields, &rule);
    return rc;
}

/*
 * Parses each of the n map items of a list (topics:, auth.acls:) with one().
 * Lines inside items are not remembered: they repeat keys across items.
 */
static int parse_each(struct ctx *c, yaml_node_t *list, yaml_node_item_t *start, size_t n,
                      const char *key, int (*one)(struct ctx *, yaml_node_t *, size_t))
{
    int rc = 0;
    c->in_rule = 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        yaml_node_t *item = yaml_document_get_node(c->doc, start[i]);
        rc = item ? one(c, item, i) : fail(c, node_line(list), key, "malformed document");
    }
    c->in_rule = 0;
    return rc;
}

static int parse_topics(struct ctx *c, yaml_node_t *list, const char *key)
{
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(c, node_line(list), key, "expected a list of rules, got %s", node_kind(list));
    yaml_node_item_t *start = list->data.sequence.items.start;
    size_t n = (size_t)(list->data.sequence.items.top - start);
    if (n > CONFIG_RULES_MAX)
        return fail(c, node_line(list), key, "at most %d rules are allowed", CONFIG_RULES_MAX);
    return parse_each(c, list, start, n, key, parse_rule);
}

/* ---- lists: auth.mechanisms, auth.acls ----------------------------------- */

/* Items of a sequence node, or -1 (message written) if val is not one. */
static int seq_items(struct ctx *c, yaml_node_t *val, const char *key, const char *what,
                     yaml_node_item_t **start, size_t *n)
{
    if (val->type != YAML_SEQUENCE_NODE)
        return fail(c, node_line(val), key, "expected a list of %s, got %s", what, node_kind(val));
    *start = val->data.sequence.items.start;
    *n = (size_t)(val->data.sequence.items.top - *start);
    return 0;
}

/* Item i of a list as an expanded scalar in c->val, or -1. */
static int seq_scalar(struct ctx *c, yaml_node_t *val, yaml_node_item_t id, size_t i,
                      const char *key)
{
    char ikey[CONFIG_KEY_MAX];
    snprintf(ikey, sizeof(ikey), "%s[%zu]", key, i);
    yaml_node_t *it = yaml_document_get_node(c->doc, id);
    if (it == NULL || it->type != YAML_SCALAR_NODE || is_null(it))
        return fail(c, it ? node_line(it) : node_line(val), ikey, "expected a value");
    const char *raw = (const char *)it->data.scalar.value;
    if (strlen(raw) != it->data.scalar.length || it->data.scalar.length > CONFIG_VALUE_MAX)
        return fail(c, node_line(it), ikey, "malformed or too long");
    c->raw = raw;
    return expand_env(c, raw, node_line(it), ikey);
}

static const char *const sasl_mech_names[] = {"NONE", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};

int config_parse_sasl_mech(const char *s)
{
    for (int m = SASL_PLAIN; m <= SASL_SCRAM_SHA_512; m++) {
        if (strcmp(s, sasl_mech_names[m]) == 0)
            return m;
    }
    return -1;
}

const char *config_sasl_mech_name(sasl_mech_t m)
{
    return m >= SASL_PLAIN && m <= SASL_SCRAM_SHA_512 ? sasl_mech_names[m] : sasl_mech_names[0];
}

static int parse_mech_list(struct ctx *c, unsigned *bits, yaml_node_t *val, const char *key)
{
    yaml_node_item_t *start = NULL;
    size_t n = 0;
    if (seq_items(c, val, key, "mechanisms", &start, &n) < 0)
        return -1;
    if (n == 0)
        return fail(c, node_line(val), key, "must name at least one mechanism");
    *bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (seq_scalar(c, val, start[i], i, key) < 0)
            return -1;
        int m = config_parse_sasl_mech(c->val);
        if (m < 0)
            return bad_value(c, node_line(val), key,
                             "each must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
        *bits |= SASL_MECH_BIT(m);
    }
    return 0;
}

static int parse_glob_list(struct ctx *c, strlist_t *l, yaml_node_t *val, const char *key)
{
    yaml_node_item_t *start = NULL;
    size_t n = 0;
    if (seq_items(c, val, key, "topic names or globs", &start, &n) < 0)
        return -1;
    if (n > CONFIG_RULES_MAX)
        return fail(c, node_line(val), key, "at most %d patterns are allowed", CONFIG_RULES_MAX);
    if (n && !(l->v = calloc(n, sizeof(*l->v))))
        return fail(c, node_line(val), key, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (seq_scalar(c, val, start[i], i, key) < 0)
            return -1;
        const char *why = check_topic(c->val, 1);
        if (why)
            return bad_value(c, node_line(val), key, why);
        if (!(l->v[l->n++] = strdup(c->val)))
            return fail(c, node_line(val), key, "out of memory");
    }
    return 0;
}

/* One `auth.acls:` entry, parsed and added to the ACL table. */
static int parse_acl(struct ctx *c, yaml_node_t *item, size_t i)
{
    char path[CONFIG_KEY_MAX], why[256];
    acl_entry_t e;
    memset(&e, 0, sizeof(e));
    snprintf(path, sizeof(path), "auth.acls[%zu]", i);
    int rc = parse_map(c, acl_fields, &e, item, path, node_line(item));
    if (rc == 0 &&
        acl_add(c->cfg->auth.acl, e.user, (const char *const *)e.produce.v, e.produce.n,
                (const char *const *)e.consume.v, e.consume.n, e.admin, why, sizeof(why)) < 0)
        rc = fail(c, node_line(item), path, "%s", why);
    free_fields(acl_fields, &e);
    return rc;
}

static int parse_acls(struct ctx *c, yaml_node_t *val, const char *key)
{
    yaml_node_item_t *start = NULL;
    size_t n = 0;
    if (seq_items(c, val, key, "rules", &start, &n) < 0)
        return -1;
    if (!(c->cfg->auth.acl = acl_new()))
        return fail(c, node_line(val), key, "out of memory");
    return parse_each(c, val, start, n, key, parse_acl);
}

static int set_node(struct ctx *c, const field_t *f, void *base, yaml_node_t *val, int keyline,
                    const char *key)
{
    switch (f->type) {
    case T_SECTION:
        return parse_map(c, f->sub, base, val, key, keyline);
    case T_TOPICS:
        return parse_topics(c, val, key);
    case T_MECH_LIST:
        return parse_mech_list(c, at(base, f), val, key);
    case T_GLOB_LIST:
        return parse_glob_list(c, at(base, f), val, key);
    case T_ACLS:
        return parse_acls(c, val, key);
    case T_RESERVED:
        return fail(c, keyline, key, "not supported by this version of eosproxy");
    default:
        return set_scalar_node(c, f, base, val, keyline, key);
    }
}

/* ---- checks across keys ------------------------------------------------- */

static int check_upstream(struct ctx *c)
{
    config_t *cfg = c->cfg;
    int mock = cfg->upstream.mock_brokers > 0;
    if ((cfg->upstream.bootstrap != NULL) == mock) {
        const char *k = mock ? "upstream.bootstrap" : "upstream";
        return fail(c, line_of(c, k), k,
                    mock ? "set both bootstrap and mock_brokers; use exactly one"
                         : "set exactly one of bootstrap (a real cluster) or mock_brokers "
                           "(an embedded mock cluster)");
    }
    if (cfg->upstream.reconnect_backoff_ms > cfg->upstream.reconnect_backoff_max_ms)
        return fail(c, line_of(c, "upstream.reconnect_backoff"), "upstream.reconnect_backoff",
                    "must not exceed upstream.reconnect_backoff_max");
    return 0;
}

/* Dead-letter routing keeps its delivery counts in Redis. */
static int check_dlq(struct ctx *c)
{
    const policy_t *p = c->cfg->policy;
    char key[CONFIG_KEY_MAX];
    for (size_t i = 0; i < p->n && !c->cfg->redis.url; i++) {
        if (POLICY_HAS_DLQ(&p->rules[i])) {
            snprintf(key, sizeof(key), "topics[%zu].dlq", i);
            return fail(c, p->rules[i].line, key,
                        "needs redis.url (delivery counts are kept in Redis)");
        }
    }
    return 0;
}

/* A bound rule is a transactional one, and its group has a name. */
static int check_bind(struct ctx *c)
{
    const policy_t *p = c->cfg->policy;
    char key[CONFIG_KEY_MAX];
    for (size_t i = 0; p && i < p->n; i++) {
        const policy_rule_t *r = &p->rules[i];
        if (!r->bind_group)
            continue;
        snprintf(key, sizeof(key), "topics[%zu].transactional.bind_group", i);
        if (r->delivery != DELIVERY_TRANSACTIONAL)
            return fail(c, r->line, key, "needs delivery: transactional");
        if (!r->bind_group[0] || strlen(r->bind_group) > 249)
            return fail(c, r->line, key, "must be a group id of 1 to 249 characters");
    }
    return 0;
}

/* Mock brokers have node ids 1..mock_brokers, served on base+id. */
static int check_ports(struct ctx *c)
{
    config_t *cfg = c->cfg;
    int base = cfg->listen.broker_port_base, nb = cfg->upstream.mock_brokers;
    if (base + nb > 65535)
        return fail(c, line_of(c, "listen.broker_port_base"), "listen.broker_port_base",
                    "%d + %d mock brokers passes port 65535", base, nb);
    if (cfg->listen.port > base && cfg->listen.port <= base + nb)
        return fail(c, line_of(c, "listen.port"), "listen.port",
                    "%d is the port of mock broker %d (broker_port_base + node id)",
                    cfg->listen.port, cfg->listen.port - base);
    if (cfg->admin.listen == NULL)
        return 0;
    char *host;
    int port, clash;
    if (config_parse_hostport(cfg->admin.listen, &host, &port) < 0)
        return fail(c, line_of(c, "admin.listen"), "admin.listen", "out of memory");
    clash = strcmp(host, cfg->listen.host) == 0 &&
            (port == cfg->listen.port || (port > base && port <= base + nb));
    free(host);
    if (clash)
        return fail(c, line_of(c, "admin.listen"), "admin.listen",
                    "port %d is already used by the Kafka listener", port);
    return 0;
}

/* A file key that is set must name a readable file. */
static int check_readable(struct ctx *c, const char *key, const char *path)
{
    if (path == NULL || access(path, R_OK) == 0)
        return 0;
    return fail(c, line_of(c, key), key, "cannot read \"%.200s\": %s", path, strerror(errno));
}

/* TLS, SASL and auth: files readable, pairs complete, nothing the mock cannot do. */
static int check_security(struct ctx *c)
{
    config_t *cfg = c->cfg;
    cfg->upstream.tls.enabled = key_seen(c, "upstream.tls");
    if (cfg->upstream.mock_brokers > 0 &&
        (cfg->upstream.tls.enabled || cfg->upstream.sasl.mechanism != SASL_NONE)) {
        const char *k = cfg->upstream.tls.enabled ? "upstream.tls" : "upstream.sasl";
        return fail(
            c, line_of(c, k), k,
            "the embedded mock cluster speaks neither TLS nor SASL; use upstream.bootstrap");
    }
    if ((cfg->upstream.tls.cert_file == NULL) != (cfg->upstream.tls.key_file == NULL))
        return fail(c, line_of(c, "upstream.tls"), "upstream.tls",
                    "set both cert_file and key_file, or neither");
    if (cfg->auth.users_file && cfg->auth.mechanisms == 0)
        cfg->auth.mechanisms = SASL_MECH_BIT(SASL_PLAIN) | SASL_MECH_BIT(SASL_SCRAM_SHA_256) |
                               SASL_MECH_BIT(SASL_SCRAM_SHA_512);
    static const struct {
        const char *key;
        size_t off;
    } files[] = {
        {"listen.tls.cert_file", offsetof(config_t, listen.tls.cert_file)},
        {"listen.tls.key_file", offsetof(config_t, listen.tls.key_file)},
        {"listen.tls.client_ca_file", offsetof(config_t, listen.tls.client_ca_file)},
        {"upstream.tls.ca_file", offsetof(config_t, upstream.tls.ca_file)},
        {"upstream.tls.cert_file", offsetof(config_t, upstream.tls.cert_file)},
        {"upstream.tls.key_file", offsetof(config_t, upstream.tls.key_file)},
        {"auth.users_file", offsetof(config_t, auth.users_file)},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (check_readable(c, files[i].key, *(char **)((char *)cfg + files[i].off)) < 0)
            return -1;
    }
    return 0;
}

static int finish(struct ctx *c)
{
    config_t *cfg = c->cfg;
    if (check_security(c) < 0)
        return -1;
    if (cfg->listen.advertised_host == NULL) {
        cfg->listen.advertised_host = strdup(cfg->listen.host);
        if (cfg->listen.advertised_host == NULL)
            return fail(c, 1, "listen.advertised_host", "out of memory");
    }
    if (check_upstream(c) < 0 || check_dlq(c) < 0 || check_bind(c) < 0)
        return -1;
    return check_ports(c);
}

/* ---- loading ------------------------------------------------------------ */

/* 1-based line of byte offset off in yaml[0..len). */
static int line_at(const char *yaml, size_t len, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        line += yaml[i] == '\n';
    return line;
}

static int yaml_fail(struct ctx *c, yaml_parser_t *ps, const char *yaml, size_t len)
{
    if (ps->error == YAML_MEMORY_ERROR)
        return fail(c, 1, "yaml", "out of memory");
    int line = ps->error == YAML_READER_ERROR ? line_at(yaml, len, ps->problem_offset)
                                              : (int)ps->problem_mark.line + 1;
    if (ps->context != NULL)
        return fail(c, line, "yaml", "%s %s", ps->problem ? ps->problem : "syntax error",
                    ps->context);
    return fail(c, line, "yaml", "%s", ps->problem ? ps->problem : "syntax error");
}

/* Parses the single document of yaml into c->cfg. */
static int load_document(struct ctx *c, const char *yaml, size_t len)
{
    yaml_parser_t ps;
    yaml_document_t doc, extra;
    int rc = -1;

    if (!yaml_parser_initialize(&ps))
        return fail(c, 1, "yaml", "out of memory");
    yaml_parser_set_input_string(&ps, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&ps, &doc)) {
        rc = yaml_fail(c, &ps, yaml, len);
        yaml_parser_delete(&ps);
        return rc;
    }
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    rc = parse_map(c, top_fields, c->cfg, root, "", 1);
    if (rc == 0) {
        if (!yaml_parser_load(&ps, &extra)) {
            rc = yaml_fail(c, &ps, yaml, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2 != NULL)
                rc = fail(c, node_line(r2), "yaml", "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
    }
    c->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    return rc;
}

config_t *config_load_string(const char *name, const char *yaml, size_t len, char *err,
                             size_t errlen)
{
    struct ctx *c = calloc(1, sizeof(*c));
    config_t *cfg = calloc(1, sizeof(*cfg));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (name == NULL)
        name = "config";
    if (c == NULL || cfg == NULL || (cfg->policy = policy_new()) == NULL ||
        (cfg->path = strdup(name)) == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", name);
        free(c);
        config_free(cfg);
        return NULL;
    }
    c->file = name;
    c->err = err;
    c->errlen = errlen;
    c->cfg = cfg;
    if (load_document(c, yaml ? yaml : "", yaml ? len : 0) < 0 || finish(c) < 0) {
        config_free(cfg);
        cfg = NULL;
    }
    free(c);
    return cfg;
}

/* Reads path whole (at most CONFIG_FILE_MAX bytes) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    errno = 0;
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
        free(buf);
        buf = NULL;
    } else if (n > CONFIG_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than 4 MiB; not a configuration file?", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

config_t *config_load(const char *path, char *err, size_t errlen)
{
    char dummy[1];
    size_t len;
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (path == NULL) {
        snprintf(err, errlen, "config: no file given");
        return NULL;
    }
    char *yaml = read_file(path, &len, err, errlen);
    if (yaml == NULL)
        return NULL;
    config_t *cfg = config_load_string(path, yaml, len, err, errlen);
    free(yaml);
    return cfg;
}

void config_free(config_t *c)
{
    if (c == NULL)
        return;
    free_fields(top_fields, c);
    free(c->path);
    policy_free(c->policy);
    acl_free(c->auth.acl);
    free(c);
}

/* ---- live reload ---------------------------------------------------------- */

/* 1 for the key types held as a malloc'd char *. */
static int is_string(ftype_t t)
{
    return t == T_STRING || t == T_HOST || t == T_HOSTPORT || t == T_BOOTSTRAP ||
           t == T_REDIS_URL || t == T_LOG_LEVEL || t == T_MATCH || t == T_PATH || t == T_TOPIC;
}

/* Bytes a value of type t takes at its offset (0: not compared here). */
static size_t value_size(ftype_t t)
{
    switch (t) {
    case T_INT:
    case T_BOOL:
        return sizeof(int);
    case T_LOG_FORMAT:
        return sizeof(log_format_t);
    case T_OUTAGE:
        return sizeof(redis_outage_t);
    case T_ON_ERROR:
        return sizeof(dlq_on_error_t);
    case T_SASL_MECH:
        return sizeof(sasl_mech_t);
    case T_MECH_LIST:
        return sizeof(unsigned);
    case T_DURATION:
    case T_SIZE:
        return sizeof(uint64_t);
    default:
        return is_string(t) ? sizeof(char *) : 0;
    }
}

/* 1 when key f holds the same value in a and b. */
static int same_value(const field_t *f, const config_t *a, const config_t *b)
{
    const void *va = (const char *)a + f->offset, *vb = (const char *)b + f->offset;
    if (is_string(f->type)) {
        const char *sa = *(char *const *)va, *sb = *(char *const *)vb;
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
    }
    return memcmp(va, vb, value_size(f->type)) == 0;
}

/* Appends ", key" to list (truncated when full). */
static void list_key(char *list, size_t len, const char *prefix, const char *name)
{
    size_t n = strlen(list);
    if (n + 1 < len)
        snprintf(list + n, len - n, "%s%s%s", n ? ", " : "", prefix, name);
}

/*
 * Walks one key table: reloadable keys are swapped from next into cur
 * (next then holds, and frees, the old values); the others must be equal,
 * or their names are listed in restart.
 */
static void reload_fields(const field_t *tbl, const char *prefix, config_t *cur, config_t *next,
                          char *restart, size_t rlen)
{
    for (const field_t *f = tbl; f->name; f++) {
        if (f->type == T_SECTION) {
            char sub[CONFIG_KEY_MAX];
            snprintf(sub, sizeof(sub), "%s%s.", prefix, f->name);
            reload_fields(f->sub, sub, cur, next, restart, rlen);
            continue;
        }
        size_t n = value_size(f->type);
        if (f->flags & F_RELOAD) {
            if (n) {
                char tmp[sizeof(uint64_t) > sizeof(char *) ? sizeof(uint64_t) : sizeof(char *)];
                memcpy(tmp, (char *)cur + f->offset, n);
                memcpy((char *)cur + f->offset, (char *)next + f->offset, n);
                memcpy((char *)next + f->offset, tmp, n);
            }
        } else if (n && !same_value(f, cur, next)) {
            list_key(restart, rlen, prefix, f->name);
        }
    }
}

void config_reload(config_t *cur, config_t *next, char *restart, size_t rlen)
{
    if (rlen)
        restart[0] = '\0';
    reload_fields(top_fields, "", cur, next, restart, rlen);
    if (cur->upstream.tls.enabled != next->upstream.tls.enabled)
        list_key(restart, rlen, "", "upstream.tls");
    policy_t *p = cur->policy;
    cur->policy = next->policy;
    next->policy = p;
    struct acl *a = cur->auth.acl;
    cur->auth.acl = next->auth.acl;
    next->auth.acl = a;
}

/* ---- the reference (README "Configuration reference") ------------------- */

/* Writes v as a duration with the largest unit that divides it. */
static void ref_duration(FILE *out, uint64_t v)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{DAY, "d"}, {3600 * SEC, "h"}, {60 * SEC, "m"}, {SEC, "s"}, {1, "ms"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (v >= units[i].ms && v % units[i].ms == 0) {
            fprintf(out, "%llu%s", (unsigned long long)(v / units[i].ms), units[i].unit);
            return;
        }
    }
    fprintf(out, "%llu", (unsigned long long)v);
}

/* Writes v as a size in KiB/MiB/GiB (or one byte less than one). */
static void ref_size(FILE *out, uint64_t v)
{
    static const struct {
        uint64_t b;
        const char *unit;
    } units[] = {{GIB, "GiB"}, {MIB, "MiB"}, {KIB, "KiB"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        for (uint64_t off = 0; off < 2; off++) {
            if (v + off >= units[i].b && (v + off) % units[i].b == 0) {
                fprintf(out, "%llu%s%s", (unsigned long long)((v + off) / units[i].b),
                        units[i].unit, off ? "-1" : "");
                return;
            }
        }
    }
    fprintf(out, "%llu", (unsigned long long)v);
}

/* The Type column of key f. */
static void ref_type(FILE *out, const field_t *f)
{
    static const char *const names[] = {
        [T_STRING] = "string",
        [T_HOST] = "host",
        [T_HOSTPORT] = "host:port",
        [T_BOOTSTRAP] = "`host:port,host:port`",
        [T_REDIS_URL] = "`redis://`, `redis+cluster://` or `redis+sentinel://` URL",
        [T_LOG_LEVEL] = "`debug` \\| `info` \\| `warn` \\| `error`",
        [T_LOG_FORMAT] = "`text` \\| `json`",
        [T_OUTAGE] = "`block` \\| `pass`",
        [T_ON_ERROR] = "`reject` \\| `dlq`",
        [T_MATCH] = "topic name or glob",
        [T_TOPIC] = "topic name",
        [T_DELIVERY] = "`at-most-once` \\| `at-least-once` \\| `idempotent` \\| `transactional`",
        [T_EVENT_ID] = "`header:NAME` \\| `key` \\| `json:FIELD`",
        [T_SECTION] = "map",
        [T_TOPICS] = "list of rules",
        [T_PATH] = "file",
        [T_BOOL] = "`true` \\| `false`",
        [T_SASL_MECH] = "`PLAIN` \\| `SCRAM-SHA-256` \\| `SCRAM-SHA-512`",
        [T_MECH_LIST] = "list of `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`",
        [T_ACLS] = "list of rules",
        [T_GLOB_LIST] = "list of topic names or globs",
    };
    switch (f->type) {
    case T_INT:
        fprintf(out, "integer %llu..%llu", (unsigned long long)f->min, (unsigned long long)f->max);
        return;
    case T_DURATION:
        fputs("duration", out);
        if (f->min == 0 && f->max == DURATION_MAX)
            return;
        fputc(' ', out);
        ref_duration(out, f->min);
        fputs("..", out);
        if (f->max != DURATION_MAX)
            ref_duration(out, f->max);
        return;
    case T_SIZE:
        fputs("size ", out);
        ref_size(out, f->min);
        fputs("..", out);
        ref_size(out, f->max);
        return;
    default:
        fputs((size_t)f->type < sizeof(names) / sizeof(names[0]) && names[f->type] ? names[f->type]
                                                                                   : "?",
              out);
    }
}

/*
 * One row, then (below the top level) the rows of a section it opens.
 * reload: the table's keys are reloaded as a whole (a rule of `topics`,
 * an entry of `auth.acls`), whatever their own flags say.
 */
static void ref_rows(FILE *out, const field_t *tbl, const char *prefix, int nest, int reload)
{
    for (const field_t *f = tbl; f->name; f++) {
        if (f->type == T_RESERVED)
            continue;
        fprintf(out, "| `%s%s` | ", prefix, f->name);
        ref_type(out, f);
        if (f->flags & F_REQUIRED)
            fputs(" | **required** | ", out);
        else if (f->def)
            fprintf(out, " | `%s` | ", f->def);
        else
            fputs(f->type == T_SECTION ? " | | " : " | none | ", out);
        if (f->type == T_SECTION)
            fputs(reload ? "live | " : "| ", out);
        else
            fputs(reload || (f->flags & F_RELOAD) ? "live | " : "restart | ", out);
        fprintf(out, "%s |\n", f->help ? f->help : "");
        if (nest && f->type == T_SECTION && f->sub) {
            char sub[CONFIG_KEY_MAX];
            snprintf(sub, sizeof(sub), "%s%s.", prefix, f->name);
            ref_rows(out, f->sub, sub, 1, reload);
        }
    }
}

/* The sections of the reference, in README order. */
static const struct {
    const char *id;
    const field_t *tbl;
    const char *prefix;
    int nest, reload;
} ref_sections[] = {
    {"top", top_fields, "", 0, 0},
    {"log", log_fields, "log.", 1, 0},
    {"listen", listen_fields, "listen.", 1, 0},
    {"upstream", upstream_fields, "upstream.", 1, 0},
    {"admin", admin_fields, "admin.", 1, 0},
    {"redis", redis_fields, "redis.", 1, 0},
    {"transactions", txn_fields, "transactions.", 1, 0},
    {"auth", auth_fields, "auth.", 1, 0},
    {"auth.acls", acl_fields, "auth.acls[N].", 1, 1},
    {"topics", rule_fields, "", 1, 1},
};

void config_reference(FILE *out)
{
    for (size_t i = 0; i < sizeof(ref_sections) / sizeof(ref_sections[0]); i++) {
        fprintf(out,
                "%s### %s\n\n| Key | Type | Default | Reload | Meaning |\n|---|---|---|---|---|\n",
                i ? "\n" : "", ref_sections[i].id);
        ref_rows(out, ref_sections[i].tbl, ref_sections[i].prefix, ref_sections[i].nest,
                 ref_sections[i].reload);
    }
}

int config_reference_complete(char *missing, size_t len)
{
    for (size_t i = 0; i < sizeof(ref_sections) / sizeof(ref_sections[0]); i++) {
        for (const field_t *f = ref_sections[i].tbl; f->name; f++) {
            if (f->type != T_RESERVED && (!f->help || !*f->help)) {
                snprintf(missing, len, "%s%s", ref_sections[i].prefix, f->name);
                return 0;
            }
        }
    }
    return 1;
}
