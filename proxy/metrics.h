/*
 * metrics.h - process-wide counters, gauges and the request latency
 * histogram, rendered as Prometheus text for GET /metrics.
 *
 * Only the event-loop thread updates them, so they are plain integers.
 * The list of metrics with their meaning is in README.md ("Metrics").
 */
#ifndef EOSPROXY_METRICS_H
#define EOSPROXY_METRICS_H

#include "kproto.h"

#include <stdint.h>
#include <stdio.h>

struct evbuffer;

#define METRICS_LAT_BUCKETS 16

enum upstream_err_kind {
    UPERR_CONNECT = 0, /* connect failed or timed out */
    UPERR_CLOSED,      /* broker closed or reset an open connection */
    UPERR_PROTOCOL,    /* unparseable or unexpected response */
    UPERR_TIMEOUT,     /* eosproxy's own request timed out */
    UPERR_TLS,         /* TLS handshake or certificate verification failed */
    UPERR_AUTH,        /* the broker refused eosproxy's SASL login */
    UPERR_KINDS
};

enum client_close_kind {
    CLOSE_NORMAL = 0, /* client closed */
    CLOSE_PROTOCOL,   /* malformed or unsupported request */
    CLOSE_IDLE,       /* idle timeout */
    CLOSE_UPSTREAM,   /* its upstream connection failed */
    CLOSE_DRAIN,      /* shutdown */
    CLOSE_AUTH,       /* failed login, or a request before login */
    CLOSE_TLS,        /* TLS handshake failed (bad or missing client certificate) */
    CLOSE_KINDS
};

/* Why dedup dropped a record. */
enum dedup_drop_kind {
    DEDUP_DROP_DONE = 0,      /* done (Redis or the in-process cache) */
    DEDUP_DROP_IN_FLIGHT,     /* pending at another position */
    DEDUP_DROP_SAME_RESPONSE, /* a later occurrence within one Fetch response */
    DEDUP_DROP_KINDS
};

/* Redis trouble, by kind. */
enum redis_err_kind {
    REDIS_ERR_CONNECT = 0, /* connect failed or timed out */
    REDIS_ERR_CLOSED,      /* the connection dropped */
    REDIS_ERR_TIMEOUT,     /* a round trip exceeded redis.timeout */
    REDIS_ERR_REPLY,       /* an error reply (e.g. OOM, WRONGTYPE) */
    REDIS_ERR_KINDS
};

/* Idempotent upgrade: the bounds that answer REQUEST_TIMED_OUT (upgrade.c). */
enum upgrade_bound {
    UPG_BOUND_REQUESTS = 0, /* client requests held */
    UPG_BOUND_BYTES,        /* bytes held */
    UPG_BOUND_PARTITIONS,   /* partitions with sequences, none idle */
    UPG_BOUND_BATCHES,      /* batches in flight (fingerprint cache) */
    UPG_BOUNDS
};

/* Why a record went to a dead-letter topic. */
enum dlq_reason {
    DLQ_REASON_REDELIVERED = 0, /* consumer path: max_deliveries without a commit past it */
    DLQ_REASON_REFUSED,         /* producer path: the broker refused it for good */
    DLQ_REASON_NO_EVENT_ID,     /* producer path: dedup.require_event_id and none */
    DLQ_REASON_NOT_JSON,        /* producer path: json:FIELD and the value is not JSON */
    DLQ_REASONS
};

/* Distinct source topics counted by name in eosproxy_dlq_records_total;
 * later ones are counted under topic="_other". */
#define METRICS_DLQ_TOPICS 256

/* Live config reloads, by result. */
enum reload_result { RELOAD_OK = 0, RELOAD_REFUSED, RELOAD_RESULTS };

struct metrics {
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over listen.max_connections */
    int64_t connections_open;
    uint64_t connections_closed[CLOSE_KINDS];
    uint64_t requests[KAPI_MAX];
    uint64_t request_bytes;   /* client -> eosproxy */
    uint64_t response_bytes;  /* eosproxy -> client */
    uint64_t local_responses; /* answered by eosproxy itself */
    uint64_t upstream_errors[UPERR_KINDS];
    uint64_t backpressure_pauses;
    int64_t inflight;
    int64_t brokers;
    int64_t ready;
    uint64_t metadata_refreshes;
    uint64_t rewritten_responses;
    uint64_t produce_routes[5]; /* by produce_route_t (ROUTE_COUNT) */
    uint64_t acks0_responses_dropped;
    uint64_t twin_batches; /* upgrade: distinct batches with equal content */
    /* The idempotent upgrade (upgrade.c). */
    uint64_t upgraded_batches;            /* batches written with eosproxy's producer id */
    uint64_t upgraded_records;            /* records in those batches */
    uint64_t client_retries_absorbed;     /* client batches answered from the fingerprint cache */
    uint64_t upstream_retries;            /* batches eosproxy resent with the same sequence */
    uint64_t sequence_resets;             /* sequence restarts forced by an error or timeout */
    uint64_t producer_id_renewals;        /* new producer ids or epochs after the first */
    uint64_t upgrade_refused[UPG_BOUNDS]; /* partitions or requests refused by a bound */
    /* Transactional delivery (txn.c). */
    uint64_t txn_begun;             /* Kafka transactions begun (first partition added) */
    uint64_t txn_committed;         /* EndTxn(COMMIT) acknowledged */
    uint64_t txn_aborted;           /* given up: clients answered with an error, aborted */
    uint64_t txn_commit_unknown;    /* given up after EndTxn(COMMIT) went out unanswered */
    uint64_t txn_batches;           /* batches written inside committed transactions */
    uint64_t txn_requests;          /* client requests answered by committed transactions */
    uint64_t txn_fenced;            /* times another instance fenced eosproxy's transactional id */
    int64_t txn_fenced_now;         /* 1 while fenced: transactional writes are refused */
    uint64_t txn_coordinator_moves; /* coordinator looked up again (NOT_COORDINATOR, loss) */
    uint64_t txn_turn_waits;        /* transactions that waited for an earlier one's writes */
    uint64_t txn_fetch_upgraded;    /* Fetch requests raised to read_committed */
    uint64_t txn_fetch_aborted_batches; /* aborted batches taken out of their responses */
    uint64_t bind_commits;          /* bound OffsetCommits committed with their group's output */
    uint64_t bind_refused;          /* bound OffsetCommits refused: the consumer reads again */
    uint64_t bind_rebalance_aborts; /* bound output aborted because its group rebalanced */
    uint64_t bind_expired;          /* bound output aborted at transactions.timeout */
    uint64_t txn_lat_bucket[METRICS_LAT_BUCKETS]; /* transaction start -> commit acknowledged */
    uint64_t txn_lat_count;
    uint64_t txn_lat_sum_us;
    /* Consumer dedup (dedup.c) and its Redis client (redisc.c). */
    uint64_t dedup_responses;                 /* Fetch responses of dedup topics taken */
    uint64_t dedup_txn_aborted_commits;       /* TxnOffsetCommits of aborted transactions */
    uint64_t dedup_records_checked;           /* records of dedup topics examined */
    uint64_t dedup_dropped[DEDUP_DROP_KINDS]; /* records dropped as duplicates, by reason */
    uint64_t dedup_redelivered;               /* pending at the same position: delivered again */
    uint64_t dedup_no_event_id;               /* records without an eventId (passed) */
    uint64_t dedup_passed_unfiltered;         /* records delivered unchecked (Redis down, pass) */
    uint64_t dedup_passed_undecodable; /* batches passed unchecked (not v2, aborted, partial) */
    uint64_t dedup_cache_hits;         /* eventIds found done in the in-process cache */
    uint64_t dedup_kept_offset0;       /* duplicates kept: lone batch at offset 0, Fetch v4 */
    uint64_t dedup_error_partitions;   /* partitions answered with a retriable error (block) */
    uint64_t dedup_commit_marks;       /* eventIds marked done after a commit */
    uint64_t dedup_tracking_dropped;   /* delivered eventIds forgotten before a commit (bound) */
    uint64_t dedup_shared_marks;       /* done marks for deliveries of other eosproxy processes */
    uint64_t dedup_index_failures;     /* shared delivery index writes or sweeps that failed */
    uint64_t dedup_responses_cut;      /* responses cut at the per-response budget */
    uint64_t dedup_resp_unchecked;     /* passed unchecked: held bytes at their bound, pass */
    int64_t dedup_held;                /* Fetch responses held while Redis is down */
    /* Dead-letter routing (dedup.c, dlqw.c, client.c). Per-topic counts are
     * kept by metrics_dlq_record, outside this struct. */
    uint64_t dlq_write_failures; /* DLQ writes that failed (the record stays in the stream) */
    uint64_t dlq_refused;        /* DLQ writes refused by the writer's bounds */
    uint64_t dlq_skipped;        /* dead-lettered records left out of Fetch responses */
    uint64_t dlq_restarts;       /* due first records that started counting again */
    int64_t dlq_inflight;        /* DLQ writes awaiting the broker's acknowledgement */
    uint64_t
        dlq_deliveries_bucket[8]; /* deliveries of redelivered records: 2,3,4,5,10,20,50,+Inf */
    uint64_t dlq_deliveries_count;
    uint64_t dlq_deliveries_sum;
    int64_t redis_connected;    /* 1 while the Redis connection is up */
    uint64_t redis_round_trips; /* pipelines answered */
    uint64_t redis_commands;    /* commands in those pipelines */
    uint64_t redis_errors[REDIS_ERR_KINDS];
    uint64_t redis_lat_bucket[METRICS_LAT_BUCKETS];
    uint64_t redis_lat_count;
    uint64_t redis_lat_sum_us;
    /* redis.url: Redis Cluster (redisc_cluster.c) and Sentinel (redisc.c). */
    uint64_t redis_cluster_redirects[2]; /* MOVED, ASK followed */
    uint64_t redis_cluster_refreshes[2]; /* slot map reads: ok, unusable */
    int64_t redis_cluster_slots_served;  /* slots mapped to a master (16384 when whole) */
    uint64_t redis_sentinel_switches;    /* +switch-master to another address */
    /* Client authentication and ACLs (client.c, authworker.c). */
    uint64_t auth_successes[4];              /* logins by sasl_mech_t */
    uint64_t auth_failures[4];               /* refused logins by sasl_mech_t */
    uint64_t auth_throttled;                 /* failure answers delayed for a source */
    uint64_t auth_queue_full;                /* logins refused: too many PLAIN checks queued */
    uint64_t acl_denied[KAPI_MAX];           /* topics (or requests) refused by auth.acls, by API */
    uint64_t tls_handshakes;                 /* client TLS handshakes completed */
    uint64_t tls_reloads;                    /* certificate reloads on SIGHUP that took */
    uint64_t tls_reload_failures;            /* reloads refused (old certificate kept) */
    uint64_t config_reloads[RELOAD_RESULTS]; /* SIGHUP and POST /reload, by result */
    /* TLS handshakes by side (TLS_SIDE_*) and what kTLS took: none, send, recv, both */
    uint64_t tls_conns[2][4];
    /* The event loop (loopwatch.c): how late its 100 ms timer fires. */
    uint64_t loop_lag_bucket[METRICS_LAT_BUCKETS];
    uint64_t loop_lag_count;
    uint64_t loop_lag_sum_us;
    uint64_t lat_bucket[KAPI_MAX][METRICS_LAT_BUCKETS];
    uint64_t lat_count[KAPI_MAX];
    uint64_t lat_sum_us[KAPI_MAX];
};

extern struct metrics g_metrics;

/* Records one request's latency (received -> response queued to client). */
void metrics_observe_latency(int16_t api_key, uint64_t usec);

/* Records one Redis round trip's latency (pipeline sent -> last reply). */
void metrics_observe_redis_latency(uint64_t usec);

/* Records one transaction's commit latency (first request sent -> EndTxn answered). */
void metrics_observe_txn_latency(uint64_t usec);

/* Counts one record moved to a DLQ from source topic[0..len) for reason. */
void metrics_dlq_record(const char *topic, size_t len, enum dlq_reason reason);

/* Records the delivery count of a record delivered again at the same position. */
void metrics_observe_redelivery(long deliveries);

/* Records how late one turn of the event loop's lag timer was. */
void metrics_observe_loop_lag(uint64_t usec);

/* Appends the Prometheus text exposition of every metric to out. */
void metrics_render(struct evbuffer *out);

/*
 * Writes every metric family (name with its label names, type, help) as
 * one Markdown table under "### all", from the exposition itself:
 * `eosproxy metrics reference` prints it and README's "Metrics" table is
 * generated from it (tests/tools/reference.py). Leaves g_metrics as it was.
 */
void metrics_reference(FILE *out);

#endif
