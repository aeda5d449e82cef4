/*
 * metrics.c - Prometheus text rendering of g_metrics. See metrics.h.
 */
#include "metrics.h"

#include "config.h"

#include "policy.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics g_metrics;

/* Upper bounds of the latency buckets, in microseconds (+Inf implied). */
static const uint64_t lat_bounds_us[METRICS_LAT_BUCKETS] = {
    50,    100,   250,    500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 5000000, 10000000};

static const char *const uperr_names[UPERR_KINDS] = {"connect", "closed", "protocol",
                                                     "timeout", "tls",    "auth"};
static const char *const drop_names[DEDUP_DROP_KINDS] = {"done", "in_flight", "same_response"};
static const char *const redis_err_names[REDIS_ERR_KINDS] = {"connect", "closed", "timeout",
                                                             "reply"};
static const char *const reload_names[RELOAD_RESULTS] = {"ok", "refused"};
static const char *const bound_names[UPG_BOUNDS] = {"requests", "bytes", "partitions", "batches"};
static const char *const close_names[CLOSE_KINDS] = {"normal", "protocol", "idle", "upstream",
                                                     "drain",  "auth",     "tls"};

/* Counts usec in one latency histogram (buckets, count and sum). */
static void observe(uint64_t bucket[METRICS_LAT_BUCKETS], uint64_t *count, uint64_t *sum_us,
                    uint64_t usec)
{
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        if (usec <= lat_bounds_us[i]) {
            bucket[i]++;
            break;
        }
    }
    (*count)++;
    *sum_us += usec;
}

void metrics_observe_latency(int16_t api_key, uint64_t usec)
{
    if (api_key < 0 || api_key >= KAPI_MAX)
        return;
    observe(g_metrics.lat_bucket[api_key], &g_metrics.lat_count[api_key],
            &g_metrics.lat_sum_us[api_key], usec);
}

void metrics_observe_redis_latency(uint64_t usec)
{
    observe(g_metrics.redis_lat_bucket, &g_metrics.redis_lat_count, &g_metrics.redis_lat_sum_us,
            usec);
}

void metrics_observe_txn_latency(uint64_t usec)
{
    observe(g_metrics.txn_lat_bucket, &g_metrics.txn_lat_count, &g_metrics.txn_lat_sum_us, usec);
}

void metrics_observe_loop_lag(uint64_t usec)
{
    observe(g_metrics.loop_lag_bucket, &g_metrics.loop_lag_count, &g_metrics.loop_lag_sum_us, usec);
}

static void header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
                   long long v)
{
    header(out, name, type, help);
    evbuffer_add_printf(out, "%s %lld\n", name, v);
}

/* A counter with one label: one sample per names[i], value v[i]. */
static void labelled(struct evbuffer *out, const char *name, const char *help, const char *label,
                     const char *const *names, const uint64_t *v, int n)
{
    header(out, name, "counter", help);
    for (int i = 0; i < n; i++)
        evbuffer_add_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, names[i],
                            (unsigned long long)v[i]);
}

/*
 * The samples of one latency histogram; labels is "" or `api="Produce",`
 * (with the trailing comma) and goes before le in the buckets.
 */
static void histogram(struct evbuffer *out, const char *name, const char *labels,
                      const uint64_t bucket[METRICS_LAT_BUCKETS], uint64_t count, uint64_t sum_us)
{
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        cum += bucket[i];
        evbuffer_add_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
                            (double)lat_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                        (unsigned long long)count);
    /* sum and count carry the labels without the trailing comma */
    size_t n = strlen(labels);
    int ln = n ? (int)n - 1 : 0;
    evbuffer_add_printf(out, "%s_sum%s%.*s%s %.6f\n", name, n ? "{" : "", ln, labels, n ? "}" : "",
                        (double)sum_us / 1e6);
    evbuffer_add_printf(out, "%s_count%s%.*s%s %llu\n", name, n ? "{" : "", ln, labels,
                        n ? "}" : "", (unsigned long long)count);
}

static void render_connections(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    scalar(out, "eosproxy_client_connections", "gauge", "Open client connections.",
           m->connections_open);
    scalar(out, "eosproxy_client_connections_accepted_total", "counter",
           "Client connections accepted.", (long long)m->connections_accepted);
    scalar(out, "eosproxy_client_connections_rejected_total", "counter",
           "Client connections refused over listen.max_connections.",
           (long long)m->connections_rejected);
    labelled(out, "eosproxy_client_connections_closed_total",
             "Client connections closed, by reason.", "reason", close_names, m->connections_closed,
             CLOSE_KINDS);
}

/* A counter labelled by Kafka API; APIs never counted are left out. */
static void per_api(struct evbuffer *out, const char *name, const char *help,
                    const uint64_t v[KAPI_MAX])
{
    header(out, name, "counter", help);
    for (int k = 0; k < KAPI_MAX; k++) {
        if (v[k])
            evbuffer_add_printf(out, "%s{api=\"%s\"} %llu\n", name, kproto_api_name((int16_t)k),
                                (unsigned long long)v[k]);
    }
}

static void render_requests(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    per_api(out, "eosproxy_requests_total", "Client requests received, by Kafka API.", m->requests);
    scalar(out, "eosproxy_request_bytes_total", "counter", "Request bytes read from clients.",
           (long long)m->request_bytes);
    scalar(out, "eosproxy_response_bytes_total", "counter", "Response bytes written to clients.",
           (long long)m->response_bytes);
    scalar(out, "eosproxy_local_responses_total", "counter",
           "Responses eosproxy answered itself (e.g. ApiVersions).", (long long)m->local_responses);
    scalar(out, "eosproxy_rewritten_responses_total", "counter",
           "Responses whose broker addresses were rewritten.", (long long)m->rewritten_responses);
    scalar(out, "eosproxy_twin_batches_total", "counter",
           "Idempotent upgrade: distinct batches with equal content (their retries are written, "
           "not absorbed).",
           (long long)m->twin_batches);
    scalar(out, "eosproxy_acks0_responses_dropped_total", "counter",
           "Responses to acks=0 Produce requests (brokers send none; some servers do) dropped.",
           (long long)m->acks0_responses_dropped);
    scalar(out, "eosproxy_inflight_requests", "gauge", "Requests awaiting their response.",
           m->inflight);
    scalar(out, "eosproxy_backpressure_pauses_total", "counter",
           "Times reading from a peer was paused because the other side was full.",
           (long long)m->backpressure_pauses);
}

static void render_routes(struct evbuffer *out)
{
    const char *names[ROUTE_COUNT];
    for (int r = 0; r < ROUTE_COUNT; r++)
        names[r] = policy_route_name((produce_route_t)r);
    labelled(out, "eosproxy_produce_requests_total",
             "ProduceRequests by how the topic policy routed them.", "route", names,
             g_metrics.produce_routes, ROUTE_COUNT);
}

static void render_upgrade(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    scalar(out, "eosproxy_upgraded_batches_total", "counter",
           "Batches written with eosproxy's producer id (idempotent upgrade).",
           (long long)m->upgraded_batches);
    scalar(out, "eosproxy_upgraded_records_total", "counter", "Records in upgraded batches.",
           (long long)m->upgraded_records);
    scalar(out, "eosproxy_client_retries_absorbed_total", "counter",
           "Client batches answered from an in-flight or completed write, not written again.",
           (long long)m->client_retries_absorbed);
    scalar(out, "eosproxy_upstream_retries_total", "counter",
           "Upgraded batches eosproxy resent with the same producer id, epoch and sequence.",
           (long long)m->upstream_retries);
    scalar(out, "eosproxy_sequence_resets_total", "counter",
           "Sequence restarts (producer renewals) forced by a broker error or delivery timeout.",
           (long long)m->sequence_resets);
    scalar(out, "eosproxy_producer_id_renewals_total", "counter",
           "New producer ids or epochs obtained after the first.",
           (long long)m->producer_id_renewals);
    labelled(out, "eosproxy_upgrade_refused_total",
             "Idempotent upgrade: requests or partitions answered REQUEST_TIMED_OUT at a bound.",
             "bound", bound_names, m->upgrade_refused, UPG_BOUNDS);
}

static void render_txn(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    scalar(out, "eosproxy_txn_begun_total", "counter",
           "Transactions eosproxy began for `transactional` topics.", (long long)m->txn_begun);
    scalar(out, "eosproxy_txn_committed_total", "counter",
           "Transactions committed (EndTxn COMMIT acknowledged); their clients got success.",
           (long long)m->txn_committed);
    scalar(out, "eosproxy_txn_aborted_total", "counter",
           "Transactions given up: every client request in them got a retriable error.",
           (long long)m->txn_aborted);
    scalar(out, "eosproxy_txn_commit_unknown_total", "counter",
           "Transactions given up after an unanswered EndTxn(COMMIT): they may have committed, "
           "and the clients' retries may then write their records twice.",
           (long long)m->txn_commit_unknown);
    scalar(out, "eosproxy_txn_batches_total", "counter",
           "Batches written inside committed transactions.", (long long)m->txn_batches);
    scalar(out, "eosproxy_txn_requests_total", "counter",
           "Client ProduceRequests answered by committed transactions.",
           (long long)m->txn_requests);
    scalar(out, "eosproxy_txn_fenced_total", "counter",
           "Times another instance with the same transactions.id fenced this one.",
           (long long)m->txn_fenced);
    scalar(out, "eosproxy_txn_fenced", "gauge",
           "1 while fenced: transactional writes are refused until restart.",
           (long long)m->txn_fenced_now);
    scalar(out, "eosproxy_txn_coordinator_lookups_total", "counter",
           "Transaction coordinator lookups after the first (moved, unavailable, lost).",
           (long long)m->txn_coordinator_moves);
    scalar(out, "eosproxy_txn_turn_waits_total", "counter",
           "Transactions (transactions.pool) that waited for an earlier one's batches to be "
           "written before sending theirs, which keeps each partition's records in order.",
           (long long)m->txn_turn_waits);
    scalar(out, "eosproxy_fetch_read_committed_total", "counter",
           "Fetch requests naming a `transactional` topic raised to read_committed.",
           (long long)m->txn_fetch_upgraded);
    scalar(out, "eosproxy_fetch_aborted_batches_dropped_total", "counter",
           "Batches of aborted transactions taken out of Fetch responses eosproxy raised to "
           "read_committed (the client asked for read_uncommitted and would keep them).",
           (long long)m->txn_fetch_aborted_batches);
    scalar(out, "eosproxy_bind_commits_total", "counter",
           "Offset commits of a bind_group committed together with the group's output.",
           (long long)m->bind_commits);
    scalar(out, "eosproxy_bind_commits_refused_total", "counter",
           "Offset commits of a bind_group refused (ILLEGAL_GENERATION or the coordinator's "
           "error) because their output was aborted: the consumer reads that input again.",
           (long long)m->bind_refused);
    scalar(out, "eosproxy_bind_rebalance_aborts_total", "counter",
           "Open transactions of a bind_group aborted because the group rebalanced before "
           "committing.",
           (long long)m->bind_rebalance_aborts);
    scalar(out, "eosproxy_bind_expired_total", "counter",
           "Open transactions of a bind_group aborted after 9/10 of transactions.timeout without "
           "an offset commit.",
           (long long)m->bind_expired);
    header(out, "eosproxy_txn_commit_duration_seconds", "histogram",
           "From a transaction's first upstream request to its commit acknowledged.");
    histogram(out, "eosproxy_txn_commit_duration_seconds", "", m->txn_lat_bucket, m->txn_lat_count,
              m->txn_lat_sum_us);
}

static void render_latency(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    header(out, "eosproxy_request_duration_seconds", "histogram",
           "Time from a request's last byte to its response queued to the client, by API.");
    for (int k = 0; k < KAPI_MAX; k++) {
        if (!m->lat_count[k])
            continue;
        char labels[64];
        snprintf(labels, sizeof(labels), "api=\"%s\",", kproto_api_name((int16_t)k));
        histogram(out, "eosproxy_request_duration_seconds", labels, m->lat_bucket[k],
                  m->lat_count[k], m->lat_sum_us[k]);
    }
    labelled(out, "eosproxy_config_reload_total",
             "Live config reloads (SIGHUP, POST /reload), by result.", "result", reload_names,
             m->config_reloads, RELOAD_RESULTS);
    header(out, "eosproxy_event_loop_lag_seconds", "histogram",
           "How late the event loop's 100 ms timer fired: time the loop spent on other work.");
    histogram(out, "eosproxy_event_loop_lag_seconds", "", m->loop_lag_bucket, m->loop_lag_count,
              m->loop_lag_sum_us);
}

static void render_upstream(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    labelled(out, "eosproxy_upstream_errors_total", "Errors talking to brokers, by kind.", "kind",
             uperr_names, m->upstream_errors, UPERR_KINDS);
    scalar(out, "eosproxy_upstream_brokers", "gauge", "Brokers known from upstream metadata.",
           m->brokers);
    scalar(out, "eosproxy_metadata_refreshes_total", "counter",
           "Successful metadata fetches on eosproxy's control connection.",
           (long long)m->metadata_refreshes);
    scalar(out, "eosproxy_ready", "gauge",
           "1 once upstream metadata was fetched and listeners are up.", m->ready);
}

static void render_dedup(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    scalar(out, "eosproxy_dedup_responses_total", "counter",
           "Fetch responses of dedup topics checked against Redis.", (long long)m->dedup_responses);
    scalar(out, "eosproxy_dedup_records_checked_total", "counter",
           "Records of dedup topics examined.", (long long)m->dedup_records_checked);
    labelled(out, "eosproxy_dedup_records_dropped_total",
             "Records dropped as duplicates, by reason.", "reason", drop_names, m->dedup_dropped,
             DEDUP_DROP_KINDS);
    scalar(out, "eosproxy_dedup_records_redelivered_total", "counter",
           "Records pending at the same position, delivered again (consumer did not commit).",
           (long long)m->dedup_redelivered);
    scalar(out, "eosproxy_dedup_records_without_event_id_total", "counter",
           "Records of dedup topics without an eventId (passed).", (long long)m->dedup_no_event_id);
    scalar(out, "eosproxy_dedup_records_passed_unfiltered_total", "counter",
           "Records delivered unchecked because Redis was unavailable (on_unavailable: pass).",
           (long long)m->dedup_passed_unfiltered);
    scalar(out, "eosproxy_dedup_batches_passed_unchecked_total", "counter",
           "Batches passed as they are: message format < 2, aborted, control or partial.",
           (long long)m->dedup_passed_undecodable);
    scalar(out, "eosproxy_dedup_cache_hits_total", "counter",
           "eventIds found done in the in-process cache (no Redis command).",
           (long long)m->dedup_cache_hits);
    scalar(out, "eosproxy_dedup_records_kept_offset0_total", "counter",
           "Duplicates delivered anyway: a Fetch v4 (kafka-python) chunk ending with a fully "
           "filtered batch at offset 0, which that client cannot step past.",
           (long long)m->dedup_kept_offset0);
    scalar(out, "eosproxy_dedup_error_partitions_total", "counter",
           "Partitions answered with a retriable error after redis.block_timeout.",
           (long long)m->dedup_error_partitions);
    scalar(out, "eosproxy_dedup_txn_aborted_commits_total", "counter",
           "TxnOffsetCommits whose transaction aborted: their records stay pending.",
           (long long)m->dedup_txn_aborted_commits);
    scalar(out, "eosproxy_dedup_commit_marks_total", "counter",
           "eventIds marked done after a successful offset commit.",
           (long long)m->dedup_commit_marks);
    scalar(out, "eosproxy_dedup_responses_cut_total", "counter",
           "Fetch responses cut at the per-response budget (records or decompressed bytes); "
           "the client fetches the rest again.",
           (long long)m->dedup_responses_cut);
    scalar(out, "eosproxy_dedup_responses_unchecked_total", "counter",
           "Fetch responses delivered unchecked because the held responses reached their bound "
           "(on_unavailable: pass).",
           (long long)m->dedup_resp_unchecked);
    scalar(out, "eosproxy_dedup_tracking_dropped_total", "counter",
           "Delivered eventIds forgotten before their commit (tracking bound); they stay pending.",
           (long long)m->dedup_tracking_dropped);
    scalar(out, "eosproxy_dedup_shared_marks_total", "counter",
           "eventIds another eosproxy of the scope (or an earlier run of this one) delivered, "
           "marked done after a commit through this one (the shared delivery index).",
           (long long)m->dedup_shared_marks);
    scalar(out, "eosproxy_dedup_index_failures_total", "counter",
           "Writes or sweeps of the shared delivery index that Redis refused or did not answer "
           "(sweeps are retried).",
           (long long)m->dedup_index_failures);
    scalar(out, "eosproxy_dedup_held_responses", "gauge",
           "Fetch responses held while Redis is unavailable.", m->dedup_held);
}

static void render_redis(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    scalar(out, "eosproxy_redis_connected", "gauge", "1 while the Redis connection is up.",
           m->redis_connected);
    scalar(out, "eosproxy_redis_round_trips_total", "counter",
           "Pipelined Redis round trips answered.", (long long)m->redis_round_trips);
    scalar(out, "eosproxy_redis_commands_total", "counter", "Redis commands in those round trips.",
           (long long)m->redis_commands);
    labelled(out, "eosproxy_redis_errors_total", "Redis errors, by kind.", "kind", redis_err_names,
             m->redis_errors, REDIS_ERR_KINDS);
    static const char *const redirect_names[] = {"moved", "ask"};
    static const char *const refresh_names[] = {"ok", "unusable"};
    labelled(out, "eosproxy_redis_cluster_redirects_total",
             "Redis Cluster: MOVED and ASK redirections followed.", "kind", redirect_names,
             m->redis_cluster_redirects, 2);
    labelled(out, "eosproxy_redis_cluster_refreshes_total",
             "Redis Cluster: slot map reads (CLUSTER SLOTS), by result.", "result", refresh_names,
             m->redis_cluster_refreshes, 2);
    scalar(out, "eosproxy_redis_cluster_slots_served", "gauge",
           "Redis Cluster: hash slots mapped to a master (16384 when the map is whole).",
           m->redis_cluster_slots_served);
    scalar(out, "eosproxy_redis_sentinel_switches_total", "counter",
           "Redis Sentinel: master switches to another address followed.",
           (long long)m->redis_sentinel_switches);
    header(out, "eosproxy_redis_round_trip_seconds", "histogram",
           "Time from a pipeline written to Redis to its last reply.");
    histogram(out, "eosproxy_redis_round_trip_seconds", "", m->redis_lat_bucket, m->redis_lat_count,
              m->redis_lat_sum_us);
}

static void render_security(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    header(out, "eosproxy_auth_logins_total", "counter",
           "Client SASL logins, by mechanism and result.");
    for (int i = 1; i < 4; i++) {
        evbuffer_add_printf(
            out, "eosproxy_auth_logins_total{mechanism=\"%s\",result=\"ok\"} %llu\n",
            config_sasl_mech_name((sasl_mech_t)i), (unsigned long long)m->auth_successes[i]);
        evbuffer_add_printf(
            out, "eosproxy_auth_logins_total{mechanism=\"%s\",result=\"failed\"} %llu\n",
            config_sasl_mech_name((sasl_mech_t)i), (unsigned long long)m->auth_failures[i]);
    }
    scalar(out, "eosproxy_auth_throttled_total", "counter",
           "Failed-login answers delayed because the address failed before.",
           (long long)m->auth_throttled);
    scalar(out, "eosproxy_auth_queue_full_total", "counter",
           "Logins refused because too many PLAIN password checks were waiting.",
           (long long)m->auth_queue_full);
    per_api(out, "eosproxy_acl_denied_total",
            "Topics (Produce, Fetch, ListOffsets, OffsetCommit, Metadata) or requests (admin APIs) "
            "refused "
            "by auth.acls, by API.",
            m->acl_denied);
    scalar(out, "eosproxy_tls_handshakes_total", "counter", "Client TLS handshakes completed.",
           (long long)m->tls_handshakes);
    header(out, "eosproxy_tls_connections_total", "counter",
           "TLS handshakes completed, by side and by what kernel TLS (kTLS) took over: none "
           "(OpenSSL encrypts), send, recv or both.");
    for (int s = 0; s < 2; s++) {
        static const char *const sides[] = {"client", "upstream"};
        static const char *const ktls[] = {"none", "send", "recv", "both"};
        for (int k = 0; k < 4; k++)
            evbuffer_add_printf(out,
                                "eosproxy_tls_connections_total{side=\"%s\",ktls=\"%s\"} %llu\n",
                                sides[s], ktls[k], (unsigned long long)m->tls_conns[s][k]);
    }
    scalar(out, "eosproxy_tls_reloads_total", "counter",
           "listen.tls certificate reloads on SIGHUP that took.", (long long)m->tls_reloads);
    scalar(out, "eosproxy_tls_reload_failures_total", "counter",
           "listen.tls reloads refused (the previous certificate kept).",
           (long long)m->tls_reload_failures);
}

/* ---- dead-letter routing ------------------------------------------------- */

static const char *const dlq_reason_names[DLQ_REASONS] = {"redelivered", "refused", "no_event_id",
                                                          "not_json"};
static const long dlq_deliveries_bounds[7] = {2, 3, 4, 5, 10, 20, 50};

/* Per source topic; the last slot is "_other". Outside g_metrics so that
 * metrics_reference can fill g_metrics with ones. */
struct dlq_topic_count {
    char topic[250];
    uint64_t n[DLQ_REASONS];
};
static struct dlq_topic_count dlq_topics[METRICS_DLQ_TOPICS + 1];
static size_t n_dlq_topics;

void metrics_dlq_record(const char *topic, size_t len, enum dlq_reason reason)
{
    if ((unsigned)reason >= DLQ_REASONS)
        return;
    if (len >= sizeof(dlq_topics[0].topic))
        len = sizeof(dlq_topics[0].topic) - 1;
    size_t i = 0;
    while (i < n_dlq_topics &&
           !(strlen(dlq_topics[i].topic) == len && memcmp(dlq_topics[i].topic, topic, len) == 0))
        i++;
    if (i == n_dlq_topics) {
        if (n_dlq_topics == METRICS_DLQ_TOPICS) {
            i = METRICS_DLQ_TOPICS;
            strcpy(dlq_topics[i].topic, "_other");
        } else {
            memcpy(dlq_topics[i].topic, topic, len);
            dlq_topics[i].topic[len] = 0;
            n_dlq_topics++;
        }
    }
    dlq_topics[i].n[reason]++;
}

void metrics_observe_redelivery(long deliveries)
{
    struct metrics *m = &g_metrics;
    int b = 0;
    while (b < 7 && deliveries > dlq_deliveries_bounds[b])
        b++;
    m->dlq_deliveries_bucket[b]++;
    m->dlq_deliveries_count++;
    m->dlq_deliveries_sum += deliveries > 0 ? (uint64_t)deliveries : 0;
}

static void render_dlq(struct evbuffer *out)
{
    const struct metrics *m = &g_metrics;
    const char *name = "eosproxy_dlq_records_total";
    header(out, name, "counter",
           "Records moved to a dead-letter topic, by source topic and reason.");
    size_t n = n_dlq_topics + (dlq_topics[METRICS_DLQ_TOPICS].topic[0] ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        const struct dlq_topic_count *t = &dlq_topics[i < n_dlq_topics ? i : METRICS_DLQ_TOPICS];
        for (int r = 0; r < DLQ_REASONS; r++)
            evbuffer_add_printf(out, "%s{topic=\"%s\",reason=\"%s\"} %llu\n", name, t->topic,
                                dlq_reason_names[r], (unsigned long long)t->n[r]);
    }
    scalar(out, "eosproxy_dlq_write_failures_total", "counter",
           "Dead-letter writes that failed or timed out; the record stays in the stream.",
           (long long)m->dlq_write_failures);
    scalar(out, "eosproxy_dlq_writes_refused_total", "counter",
           "Dead-letter writes refused by the writer's in-flight bound; the record stays in the "
           "stream.",
           (long long)m->dlq_refused);
    scalar(out, "eosproxy_dlq_skipped_total", "counter",
           "Dead-lettered records left out of Fetch responses.", (long long)m->dlq_skipped);
    scalar(
        out, "eosproxy_dlq_count_restarts_total", "counter",
        "First records delivered dlq.max_deliveries times that started counting again instead of "
        "being moved: the consumer failed on another record first.",
        (long long)m->dlq_restarts);
    scalar(out, "eosproxy_dlq_writes_inflight", "gauge",
           "Dead-letter writes awaiting the broker's acknowledgement.", m->dlq_inflight);
    const char *h = "eosproxy_dlq_redelivery_count";
    header(out, h, "histogram",
           "Delivery count of records delivered again at the same position (2 = second delivery).");
    uint64_t cum = 0;
    for (int b = 0; b < 7; b++) {
        cum += m->dlq_deliveries_bucket[b];
        evbuffer_add_printf(out, "%s_bucket{le=\"%ld\"} %llu\n", h, dlq_deliveries_bounds[b],
                            (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", h,
                        (unsigned long long)m->dlq_deliveries_count);
    evbuffer_add_printf(out, "%s_sum %llu\n%s_count %llu\n", h,
                        (unsigned long long)m->dlq_deliveries_sum, h,
                        (unsigned long long)m->dlq_deliveries_count);
}

void metrics_render(struct evbuffer *out)
{
    render_security(out);
    render_connections(out);
    render_requests(out);
    render_routes(out);
    render_upgrade(out);
    render_txn(out);
    render_dedup(out);
    render_dlq(out);
    render_redis(out);
    render_latency(out);
    render_upstream(out);
}

/* ---- the reference (README "Metrics") ----------------------------------- */

/* One family of the exposition: its name, type, help and label names. */
struct ref_family {
    char name[96], type[16], labels[96];
    const char *help; /* into the rendered text */
    int help_len;
};

/* Adds the label names of sample line s (not "le") to f->labels. */
static void ref_labels(struct ref_family *f, const char *s, const char *end)
{
    const char *p = memchr(s, '{', (size_t)(end - s));
    while (p && p < end && *p != '}') {
        const char *name = p + 1, *eq = memchr(name, '=', (size_t)(end - name));
        if (!eq)
            return;
        int n = (int)(eq - name);
        char want[48];
        snprintf(want, sizeof(want), "%.*s", n, name);
        if (strcmp(want, "le") != 0 && !strstr(f->labels, want)) {
            size_t l = strlen(f->labels);
            snprintf(f->labels + l, sizeof(f->labels) - l, "%s%s", l ? "," : "", want);
        }
        p = strchr(eq + 2, '"'); /* the closing quote (values hold no quotes here) */
        p = p ? p + 1 : NULL;
    }
}

void metrics_reference(FILE *out)
{
    /* Every counter non-zero, so every labelled sample is rendered. */
    struct metrics saved = g_metrics;
    size_t saved_topics = n_dlq_topics;
    memset(&g_metrics, 1, sizeof(g_metrics));
    if (!n_dlq_topics) /* one sample, so the labels are listed */
        metrics_dlq_record("t", 1, DLQ_REASON_REDELIVERED);
    struct evbuffer *b = evbuffer_new();
    metrics_render(b);
    g_metrics = saved;
    if (!saved_topics) {
        memset(&dlq_topics[0], 0, sizeof(dlq_topics[0]));
        n_dlq_topics = 0;
    }
    size_t len = evbuffer_get_length(b);
    char *text = malloc(len + 1);
    struct ref_family *fam = calloc(256, sizeof(*fam));
    if (!text || !fam) {
        free(text);
        free(fam);
        evbuffer_free(b);
        return;
    }
    evbuffer_remove(b, text, len);
    text[len] = '\0';
    evbuffer_free(b);
    int n = 0;
    for (char *line = text, *end; *line; line = *end ? end + 1 : end) {
        end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        if (strncmp(line, "# HELP ", 7) == 0 && n < 256) {
            struct ref_family *f = &fam[n++];
            const char *sp = memchr(line + 7, ' ', (size_t)(end - line - 7));
            if (!sp)
                continue;
            snprintf(f->name, sizeof(f->name), "%.*s", (int)(sp - line - 7), line + 7);
            f->help = sp + 1;
            f->help_len = (int)(end - sp - 1);
        } else if (strncmp(line, "# TYPE ", 7) == 0 && n) {
            const char *sp = end;
            while (sp > line && sp[-1] != ' ')
                sp--;
            snprintf(fam[n - 1].type, sizeof(fam[n - 1].type), "%.*s", (int)(end - sp), sp);
        } else if (n && line[0] != '#') {
            ref_labels(&fam[n - 1], line, end);
        }
    }
    fputs("### all\n\n| Metric | Type | Meaning |\n|---|---|---|\n", out);
    for (int i = 0; i < n; i++)
        fprintf(out, "| `%s%s%s%s` | %s | %.*s |\n", fam[i].name, fam[i].labels[0] ? "{" : "",
                fam[i].labels, fam[i].labels[0] ? "}" : "", fam[i].type, fam[i].help_len,
                fam[i].help);
    free(fam);
    free(text);
}
