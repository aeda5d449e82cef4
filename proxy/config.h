/*
 * config.h - eosproxy's configuration: the YAML file (libyaml) turned into
 * one struct, with defaults, validation and ${ENV} expansion.
 *
 * Errors name file:line and the key ("conf/x.yaml:12: listen.port: must be
 * 1..65535"); unknown keys are errors. Durations accept "500ms", "10s",
 * "5m", "2h", "7d" or a bare number of milliseconds; sizes accept a bare
 * number of bytes or KiB/MiB/GiB suffixes. Every key is documented in
 * README.md ("Configuration reference") and conf/example.yaml.
 */
#ifndef EOSPROXY_CONFIG_H
#define EOSPROXY_CONFIG_H

#include "policy.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format_t;

/* redis.on_unavailable: what consumer dedup does while Redis is down. */
typedef enum redis_outage {
    REDIS_OUTAGE_BLOCK = 0, /* hold Fetch responses, then a retriable error */
    REDIS_OUTAGE_PASS = 1,  /* deliver unfiltered (counted) */
} redis_outage_t;

/* SASL mechanisms, as bits in auth.mechanisms and as upstream.sasl.mechanism. */
typedef enum sasl_mech {
    SASL_NONE = 0,
    SASL_PLAIN = 1,
    SASL_SCRAM_SHA_256 = 2,
    SASL_SCRAM_SHA_512 = 3,
} sasl_mech_t;
#define SASL_MECH_BIT(m) (1u << (m))

struct acl; /* policy/acl.h */

typedef struct config {
    char *path;    /* file it was loaded from */
    char *service; /* name of the app this sidecar serves (default "eosproxy") */

    struct {
        char *level; /* debug|info|warn|error (default info) */
        log_format_t format;
    } log;

    struct {
        char *host;               /* default 127.0.0.1 */
        int port;                 /* bootstrap port, default 9092 */
        char *advertised_host;    /* default: host */
        int broker_port_base;     /* broker N listens on base+N; default 19092 */
        int max_connections;      /* client connections, default 1024 */
        uint64_t idle_timeout_ms; /* default 10m, 0 = none */
        uint64_t max_frame_bytes; /* default 100 MiB */
        int max_inflight;         /* requests per client connection, default 256 */
        uint64_t buffer_bytes;    /* per-direction high watermark, default 16 MiB */
        struct {
            char *cert_file;      /* PEM chain; NULL: clients speak plaintext */
            char *key_file;       /* PEM private key */
            char *client_ca_file; /* set: clients must present a cert it signed (mTLS) */
            int ktls;             /* ask OpenSSL for kernel TLS; default 1 */
        } tls;
    } listen;

    struct {
        char *bootstrap;                   /* "host:port,host:port"; NULL if mock */
        int mock_brokers;                  /* >0: embedded librdkafka mock cluster */
        int mock_partitions;               /* auto-created topic partitions, default 4 */
        uint64_t connect_timeout_ms;       /* default 10s */
        uint64_t request_timeout_ms;       /* eosproxy's own requests, default 30s */
        uint64_t reconnect_backoff_ms;     /* default 100ms */
        uint64_t reconnect_backoff_max_ms; /* default 10s */
        uint64_t metadata_refresh_ms;      /* default 5m */
        struct {
            int enabled;     /* upstream.tls present */
            char *ca_file;   /* PEM CA bundle; NULL: the system's default store */
            int verify;      /* verify chain and host name; default 1 */
            char *cert_file; /* optional client certificate for the brokers */
            char *key_file;
            int ktls; /* ask OpenSSL for kernel TLS; default 1 */
        } tls;
        struct {
            sasl_mech_t mechanism; /* SASL_NONE: no upstream SASL */
            char *username;
            char *password; /* usually "${ENV}"; never logged */
        } sasl;
    } upstream;

    struct {
        char *listen;            /* "host:port"; NULL = admin endpoint disabled */
        uint64_t stall_abort_ms; /* loopwatch: abort after a stall this long; 0 = never */
    } admin;

    uint64_t drain_timeout_ms; /* default 10s */

    struct {
        char *url;                     /* "redis://host:port/db"; NULL if unset */
        redis_outage_t on_unavailable; /* block (default) or pass */
        uint64_t timeout_ms;           /* one Redis round trip, default 1s */
        uint64_t block_timeout_ms;     /* Fetch held while Redis is down, default 10s */
        uint64_t pending_ttl_ms;       /* lifetime of a pending mark, default 5m */
        int cache_entries;             /* in-process cache of done eventIds, default 100000 */
    } redis;

    struct {
        char *id;            /* transactional id; NULL: "<service>-<host name>" */
        uint64_t timeout_ms; /* transaction timeout sent to the coordinator, default 60s */
        uint64_t linger_ms;  /* an idle engine waits this long to group requests, 10ms */
        uint64_t quiet_ms;   /* ... or until no request came for this long, 1ms (0: off) */
        uint64_t max_bytes;  /* a transaction is closed at this many bytes, default 4 MiB */
        int max_inflight;    /* closed transactions queued behind the one under way, 4 */
        int pool;            /* transactional ids whose transactions overlap, default 2 */
    } transactions;
    struct {
        char *users_file;          /* NULL: clients are not authenticated */
        unsigned mechanisms;       /* SASL_MECH_BIT()s offered; default all three */
        int allow_plaintext;       /* PLAIN without TLS from non-loopback peers; default 0 */
        uint64_t login_timeout_ms; /* a connection must log in within this; default 30s */
        struct acl *acl;           /* auth.acls; NULL when the key is absent (no ACLs) */
    } auth;

    policy_t *policy; /* the `topics:` rules (never NULL after load) */
} config_t;

/*
 * Loads and validates path. On success returns a config owned by the caller
 * (free with config_free). On failure returns NULL and writes a one-line
 * message "file:line: key: what is wrong" into err[0..errlen).
 */
config_t *config_load(const char *path, char *err, size_t errlen);

/* Same, from an in-memory YAML document (name is used in messages). */
config_t *config_load_string(const char *name, const char *yaml, size_t len, char *err,
                             size_t errlen);

/*
 * Live reload: moves every key that can change at run time (log level and
 * format, client and upstream timeouts, redis outage policy and ttls, auth
 * mechanisms, login timeout and ACLs, the `topics:` rules) from next into
 * cur; next receives the old values, so config_free(next) frees them (the
 * old policy only once nothing holds a reference: policy_ref). Keys that
 * need a restart keep cur's value; those that differ are listed in
 * restart ("listen.port, redis.url"), empty when none.
 */
void config_reload(config_t *cur, config_t *next, char *restart, size_t rlen);

/* config_free(NULL) is safe. */
void config_free(config_t *c);

/* Parse helpers, exposed for tests: 0 on success, -1 if malformed. */
int config_parse_duration(const char *s, uint64_t *ms);
int config_parse_size(const char *s, uint64_t *bytes);
/* "PLAIN" -> SASL_PLAIN, "SCRAM-SHA-256", "SCRAM-SHA-512"; -1 otherwise. */
int config_parse_sasl_mech(const char *s);
/* The Kafka name of m ("PLAIN", ...), "NONE" for SASL_NONE. */
const char *config_sasl_mech_name(sasl_mech_t m);
/*
 * Writes the reference of every key as Markdown, one table per section
 * ("### listen" then | Key | Type | Default | Meaning |), from the key
 * tables themselves: `eosproxy config reference` prints it, and README's
 * "Configuration reference" is generated from it (tests/tools/reference.py).
 */
void config_reference(FILE *out);
/* 1 when every key has its one-line meaning; else 0 with the first
 * key without one written into missing. */
int config_reference_complete(char *missing, size_t len);

/* Splits "host:port" (also "[v6]:port"); host is malloc'd. */
int config_parse_hostport(const char *s, char **host, int *port);

#endif
