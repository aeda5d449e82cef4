/*
 * dlqreplay.c - `eosproxy dlq replay`: the records of a dead-letter topic
 * written back to their original topic and partition (kafka_dlt-original-*
 * headers) with their key, value, timestamp and headers, minus the
 * kafka_dlt-* ones, plus eosproxy-replayed-from.
 *
 * Replay is idempotent. Its progress is the committed offsets of the
 * consumer group "eosproxy-dlq-replay-<dlq topic>", and every offset commit
 * rides in the same Kafka transaction (transactional.id
 * "eosproxy-dlq-replay-<dlq topic>") as the records it covers, every
 * --commit-every records. A replay killed half-way leaves an open
 * transaction: the next run's init_transactions aborts it, the records and
 * the progress of that transaction vanish together, and the run resumes at
 * the last committed progress. A read_committed reader of the original
 * topic therefore sees each replayed record exactly once.
 *
 * --again sets the progress back to --from while it runs and gives it back
 * when the range completes. --rate paces the records, a progress line goes
 * to stderr every second, and --metrics-file adds the records written to a
 * Prometheus textfile.
 */
#include "dlqreplay.h"

#include "dlqread.h"
#include "dlqshow.h"
#include "kdlt.h"
#include "rdkconf.h"
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DLQ_TXN_TIMEOUT_MS 60000 /* one commit (it flushes the transaction's records) */
#define DLQ_TXN_TRIES 3          /* attempts at a retriable transaction call */
#define DLQ_PROGRESS_MS 1000     /* between progress lines */
#define DLQ_ORIGINS_MAX 64       /* original topics whose partition count is cached */

/* ---------------------------------------------------------------- replay */

/* An original topic's partition count, looked up once per run. */
typedef struct origin_topic {
    char name[POLICY_TOPIC_MAX + 1];
    int parts;
} origin_topic_t;

/* One replay run. Arrays are parallel to spans[]. */
typedef struct replay {
    const dlq_opts_t *o;
    const config_t *cfg;
    const char *topic;
    rd_kafka_t *consumer, *producer; /* producer NULL on --dry-run */
    dlqread_span_t *spans;
    size_t nspans;
    int64_t *old;  /* the progress before the run (-1: none) */
    int64_t *cur;  /* the progress committed now */
    int64_t *next; /* the progress the records read so far make */
    int txn_open;
    int stopped; /* --max-records reached */
    int halted;  /* a record cannot be routed: commit what came before, then fail */
    long in_txn, produced, replayed, already, unroutable, total;
    origin_topic_t origins[DLQ_ORIGINS_MAX];
    size_t norigins;
    struct timespec started, last_line;
    long dr_failed;
    char dr_err[256];
    char err[1024];
} replay_t;

static long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    replay_t *rp = opaque;
    if (!m->err)
        return;
    if (rp->dr_failed++ == 0)
        snprintf(rp->dr_err, sizeof(rp->dr_err), "%s [%d]: %s", rd_kafka_topic_name(m->rkt),
                 (int)m->partition, rd_kafka_err2str(m->err));
}

/* The transactional producer of the replay of topic; NULL with rp->err. */
static rd_kafka_t *new_producer(replay_t *rp)
{
    char id[DLQ_NAME_MAX], *err = rp->err;
    size_t errlen = sizeof(rp->err);
    rd_kafka_conf_t *conf = rdkconf_new(rp->cfg, rp->cfg->upstream.bootstrap, err, errlen);
    if (!conf)
        return NULL;
    if (rdkconf_set(conf, "client.id", "eosproxy-dlq", err, errlen) ||
        rdkconf_set(conf, "transactional.id", dlqread_replay_id(rp->topic, id, sizeof(id)), err,
                    errlen) ||
        rdkconf_set(conf, "linger.ms", "5", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, dlqread_log_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, rp);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* 0 if e is NULL; else rp->err says what failed, e is destroyed, -1. */
static int txn_error(replay_t *rp, const char *what, rd_kafka_error_t *e)
{
    if (!e)
        return 0;
    snprintf(rp->err, sizeof(rp->err), "%s: %s%s", what, rd_kafka_error_string(e),
             rd_kafka_error_is_fatal(e) ? " (fatal)" : "");
    rd_kafka_error_destroy(e);
    return -1;
}

/* Aborts the open transaction, if any: its records and progress vanish. */
static void txn_abort(replay_t *rp)
{
    if (!rp->txn_open)
        return;
    rp->txn_open = 0;
    rp->produced -= rp->in_txn;
    rp->in_txn = 0;
    rd_kafka_error_t *e = rd_kafka_abort_transaction(rp->producer, DLQ_TXN_TIMEOUT_MS);
    if (e) {
        fprintf(stderr,
                "eosproxy dlq: abort_transaction: %s (the broker aborts it after "
                "transaction.timeout.ms, or the next run does)\n",
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static int txn_begin(replay_t *rp)
{
    if (rp->txn_open)
        return 0;
    if (txn_error(rp, "begin_transaction", rd_kafka_begin_transaction(rp->producer)))
        return -1;
    rp->txn_open = 1;
    return 0;
}

/*
 * The offsets to commit with the transaction: next[] (or, when final,
 * max(old, next): a completed --again range gives back the progress it
 * set back) where it differs from what is committed. NULL when none does.
 */
static rd_kafka_topic_partition_list_t *txn_offsets(replay_t *rp, int final)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < rp->nspans; i++) {
        int64_t want = final && rp->old[i] > rp->next[i] ? rp->old[i] : rp->next[i];
        if (want < 0 || want == rp->cur[i])
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new((int)rp->nspans);
        rd_kafka_topic_partition_list_add(l, rp->topic, rp->spans[i].partition)->offset = want;
    }
    return l;
}

/* Sends offs into the open transaction, retrying retriable errors. */
static int txn_send_offsets(replay_t *rp, const rd_kafka_topic_partition_list_t *offs)
{
    rd_kafka_error_t *e = NULL;
    for (int i = 0; i < DLQ_TXN_TRIES; i++) {
        rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata(rp->consumer);
        e = rd_kafka_send_offsets_to_transaction(rp->producer, offs, g, DLQ_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(g);
        if (!e || !rd_kafka_error_is_retriable(e) || i + 1 == DLQ_TXN_TRIES)
            break;
        rd_kafka_error_destroy(e);
    }
    return txn_error(rp, "send_offsets_to_transaction", e);
}

static int txn_commit_call(replay_t *rp)
{
    rd_kafka_error_t *e = NULL;
    for (int i = 0; i < DLQ_TXN_TRIES; i++) {
        e = rd_kafka_commit_transaction(rp->producer, DLQ_TXN_TIMEOUT_MS);
        if (!e || !rd_kafka_error_is_retriable(e) || i + 1 == DLQ_TXN_TRIES)
            break;
        rd_kafka_error_destroy(e);
    }
    return txn_error(rp, "commit_transaction", e);
}

/*
 * Commits the records produced since the last commit together with the
 * progress they make (one transaction). On failure the transaction is
 * aborted and -1 returned with rp->err.
 */
static int txn_commit(replay_t *rp, int final)
{
    rd_kafka_topic_partition_list_t *offs = txn_offsets(rp, final);
    int r = 0;
    if (offs || rp->txn_open) {
        r = txn_begin(rp);
        if (!r && offs)
            r = txn_send_offsets(rp, offs);
        if (!r)
            r = txn_commit_call(rp);
        if (!r && rp->dr_failed)
            r = -1, snprintf(rp->err, sizeof(rp->err), "delivery failed: %s", rp->dr_err);
    }
    if (r) {
        txn_abort(rp);
    } else if (rp->txn_open || offs) {
        for (int i = 0; offs && i < offs->cnt; i++)
            rp->cur[dlqread_span_of(rp->spans, rp->nspans, offs->elems[i].partition) - rp->spans] =
                offs->elems[i].offset;
        rp->txn_open = 0;
        rp->replayed += rp->in_txn;
        rp->in_txn = 0;
    }
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    return r;
}

static void progress_line(replay_t *rp, int force)
{
    if (rp->o->dry_run || (!force && ms_since(&rp->last_line) < DLQ_PROGRESS_MS))
        return;
    clock_gettime(CLOCK_MONOTONIC, &rp->last_line);
    long ms = ms_since(&rp->started);
    fprintf(stderr, "eosproxy dlq replay: %s: replayed %ld/%ld (%ld committed), %ld/s\n", rp->topic,
            rp->produced, rp->total, rp->replayed,
            ms > 0 ? (long)(rp->produced * 1000LL / ms) : 0L);
}

static int replay_tick(void *arg)
{
    replay_t *rp = arg;
    if (rp->producer)
        rd_kafka_poll(rp->producer, 0);
    progress_line(rp, 0);
    return 0;
}

/* Waits while more than --rate records a second would have gone out. */
static void pace(replay_t *rp)
{
    if (rp->o->rate <= 0)
        return;
    for (int i = 0; i < 1000; i++) {
        long due = (long)(rp->produced * 1000LL / rp->o->rate) - ms_since(&rp->started);
        if (due <= 0)
            return;
        if (rp->producer) {
            rd_kafka_poll(rp->producer, (int)(due < 100 ? due : 100));
        } else {
            struct timespec ts = {0, (due < 100 ? due : 100) * 1000000L};
            nanosleep(&ts, NULL);
        }
        progress_line(rp, 0);
    }
}

/* Partitions of an original topic (cached): > 0, 0 missing, -1 error. */
static int origin_partitions(replay_t *rp, const char *name)
{
    for (size_t i = 0; i < rp->norigins; i++) {
        if (strcmp(rp->origins[i].name, name) == 0)
            return rp->origins[i].parts;
    }
    int parts = dlqread_partitions(rp->consumer, name, rp->err, sizeof(rp->err));
    if (parts > 0 && rp->norigins < DLQ_ORIGINS_MAX) {
        origin_topic_t *ot = &rp->origins[rp->norigins++];
        snprintf(ot->name, sizeof(ot->name), "%s", name);
        ot->parts = parts;
    }
    return parts;
}

/* 1 if the header name is left out of a replayed record. */
static int dropped_header(const char *name)
{
    return strncmp(name, "kafka_dlt-", 10) == 0 || strcmp(name, KDLT_REPLAYED) == 0;
}

/* The replayed record's headers: m's minus kafka_dlt-*, plus KDLT_REPLAYED. */
static rd_kafka_headers_t *replay_headers(const rd_kafka_message_t *m, const char *from)
{
    rd_kafka_headers_t *in = NULL;
    size_t n = rd_kafka_message_headers(m, &in) ? 0 : rd_kafka_header_cnt(in);
    rd_kafka_headers_t *out = rd_kafka_headers_new(n + 1);
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; i < n && !rd_kafka_header_get_all(in, i, &name, &val, &len); i++) {
        if (!dropped_header(name))
            rd_kafka_header_add(out, name, -1, val, (ssize_t)len);
    }
    rd_kafka_header_add(out, KDLT_REPLAYED, -1, from, -1);
    return out;
}

/* Produces m to topic [partition] in the open transaction. 0, or -1. */
static int produce_copy(replay_t *rp, const rd_kafka_message_t *m, const char *topic,
                        int32_t partition, int64_t timestamp, const char *from)
{
    rd_kafka_headers_t *h = replay_headers(m, from);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    for (int i = 0; i < 600 && e == RD_KAFKA_RESP_ERR__QUEUE_FULL; i++) {
        e = rd_kafka_producev(
            rp->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_TIMESTAMP(timestamp),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rp->producer, 100);
    }
    if (e) {
        rd_kafka_headers_destroy(h);
        snprintf(rp->err, sizeof(rp->err), "produce to %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void print_would_write(const rd_kafka_message_t *m, const char *topic, int32_t partition,
                              int64_t timestamp, const char *from)
{
    rd_kafka_headers_t *h = replay_headers(m, from);
    size_t kept = rd_kafka_header_cnt(h) - 1; /* without KDLT_REPLAYED */
    rd_kafka_headers_destroy(h);
    printf("would write %s -> %s [", from, topic);
    printf(partition >= 0 ? "%" PRId32 "]" : "partitioner]", partition);
    printf(" timestamp %" PRId64 ", key ", timestamp);
    dlqshow_value_inline(stdout, m->key, m->key_len, 0);
    printf(", value %s%zu bytes, %zu header%s + %s\n", m->payload ? "" : "(null) ", m->len, kept,
           kept == 1 ? "" : "s", KDLT_REPLAYED);
}

/* A record without an original topic: left in place, counted, reported. */
static void skip_unroutable(replay_t *rp, const char *from)
{
    rp->unroutable++;
    fprintf(stderr, "eosproxy dlq replay: %s has no %s header; left in place\n", from,
            KDLT_ORIGINAL_TOPIC);
}

/*
 * Replays one DLQ record (dlqread_record_fn): routes it by its DLT headers,
 * produces it (or prints it on --dry-run), advances the progress and
 * commits every --commit-every records.
 */
static int replay_record(void *arg, const rd_kafka_message_t *m)
{
    replay_t *rp = arg;
    kdlt_origin_t o;
    char from[DLQ_NAME_MAX + 48], topic[POLICY_TOPIC_MAX + 1];
    size_t i = (size_t)(dlqread_span_of(rp->spans, rp->nspans, m->partition) - rp->spans);
    snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, rp->topic, m->partition, m->offset);
    dlqread_origin(m, &o);
    if (!o.topic || o.topic_len == 0 || o.topic_len > POLICY_TOPIC_MAX ||
        memchr(o.topic, '\0', o.topic_len)) {
        skip_unroutable(rp, from);
    } else {
        memcpy(topic, o.topic, o.topic_len);
        topic[o.topic_len] = '\0';
        int parts = origin_partitions(rp, topic);
        if (parts < 0)
            return -1;
        if (parts == 0) {
            snprintf(rp->err, sizeof(rp->err), "original topic %s of %s does not exist", topic,
                     from);
            rp->halted = 1;
            return 1;
        }
        int32_t part =
            o.partition >= 0 && o.partition < parts ? o.partition : RD_KAFKA_PARTITION_UA;
        int64_t ts = o.timestamp >= 0 ? o.timestamp : 0;
        if (rp->o->dry_run)
            print_would_write(m, topic, part, ts, from);
        else if (txn_begin(rp) || produce_copy(rp, m, topic, part, ts, from))
            return -1;
        rp->in_txn += !rp->o->dry_run;
        rp->produced++;
    }
    rp->next[i] = m->offset + 1;
    if (!rp->o->dry_run && rp->in_txn >= rp->o->commit_every && txn_commit(rp, 0))
        return -1;
    pace(rp);
    progress_line(rp, 0);
    if (rp->o->max_records > 0 && rp->produced >= rp->o->max_records) {
        rp->stopped = 1;
        return 1;
    }
    return 0;
}

/*
 * The spans to replay from the watermarks, --from/--to, --partition and the
 * committed progress (unless --again); counts what lies below the progress.
 */
static int replay_plan(replay_t *rp, const int64_t *progress)
{
    const dlq_opts_t *o = rp->o;
    for (size_t i = 0; i < rp->nspans; i++) {
        dlqread_span_t *s = &rp->spans[i];
        int64_t lo, hi;
        if (dlqread_watermarks(rp->consumer, rp->topic, s->partition, &lo, &hi, rp->err,
                               sizeof(rp->err)))
            return -1;
        int64_t from = o->from > lo ? o->from : lo;
        s->end = o->to >= 0 && o->to + 1 < hi ? o->to + 1 : hi;
        rp->old[i] = rp->cur[i] = progress[s->partition];
        s->start = from;
        if (!o->again && rp->old[i] > from) {
            s->start = rp->old[i];
            int64_t below = (rp->old[i] < s->end ? rp->old[i] : s->end) - from;
            rp->already += below > 0 ? below : 0;
        }
        rp->next[i] = o->again ? s->start : rp->old[i];
        rp->total += s->end > s->start ? s->end - s->start : 0;
    }
    return 0;
}

static void replay_summary(const replay_t *rp)
{
    printf("%s: %s %ld record%s to their original topics; %ld already replayed (offsets below "
           "the committed progress)",
           rp->topic, rp->o->dry_run ? "dry run, would replay" : "replayed",
           rp->o->dry_run ? rp->produced : rp->replayed,
           (rp->o->dry_run ? rp->produced : rp->replayed) == 1 ? "" : "s", rp->already);
    if (rp->unroutable)
        printf("; %ld without %s left in place", rp->unroutable, KDLT_ORIGINAL_TOPIC);
    printf("; progress");
    for (size_t i = 0; i < rp->nspans; i++) {
        if (rp->cur[i] >= 0)
            printf(" %" PRId32 ":%" PRId64, rp->spans[i].partition, rp->cur[i]);
        else
            printf(" %" PRId32 ":-", rp->spans[i].partition);
    }
    if (rp->stopped)
        printf("; stopped at --max-records %ld, run again to continue", rp->o->max_records);
    putchar('\n');
}

/* --------------------------------------------------------- metrics file */

#define METRIC_NAME "eosproxy_dlq_replayed_total"
#define METRIC_SAMPLE METRIC_NAME "{topic=\""

/* 1 if line (no '\n') is a sample of METRIC_NAME for topic; its value in *v. */
static int metric_line_is(const char *line, const char *topic, long long *v)
{
    size_t pl = strlen(METRIC_SAMPLE), tl = strlen(topic);
    if (strncmp(line, METRIC_SAMPLE, pl) != 0 || strncmp(line + pl, topic, tl) != 0 ||
        strncmp(line + pl + tl, "\"} ", 3) != 0)
        return 0;
    *v = strtoll(line + pl + tl + 3, NULL, 10);
    return 1;
}

/* Copies path's lines but ours for topic (its old value into *old) to out. */
static void metrics_copy_others(const char *path, const char *topic, FILE *out, long long *old)
{
    FILE *in = fopen(path, "r");
    char line[1024];
    if (!in)
        return;
    while (fgets(line, sizeof(line), in)) {
        long long v = 0;
        line[strcspn(line, "\n")] = '\0';
        if (metric_line_is(line, topic, &v))
            *old = v;
        else if (strncmp(line, "# HELP " METRIC_NAME " ", 8 + sizeof(METRIC_NAME) - 1) != 0 &&
                 strncmp(line, "# TYPE " METRIC_NAME " ", 8 + sizeof(METRIC_NAME) - 1) != 0 &&
                 line[0])
            fprintf(out, "%s\n", line);
    }
    fclose(in);
}

/*
 * Adds n to eosproxy_dlq_replayed_total{topic} in the Prometheus textfile
 * at path, keeping its other lines: written to path.tmp, then renamed, so a
 * collector never reads half a file. The topic name is a valid Kafka topic
 * name (no quote, backslash or newline to escape). 0, or -1 with err.
 */
static int metrics_add(const char *path, const char *topic, long n, char *err, size_t errlen)
{
    char tmp[4096];
    long long old = 0;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        snprintf(err, errlen, "--metrics-file path too long");
        return -1;
    }
    FILE *out = fopen(tmp, "w");
    if (!out) {
        snprintf(err, errlen, "%.400s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(out, "# HELP " METRIC_NAME " Records written back to their original topic by "
                 "`eosproxy dlq replay`.\n# TYPE " METRIC_NAME " counter\n");
    metrics_copy_others(path, topic, out, &old);
    fprintf(out, METRIC_SAMPLE "%s\"} %lld\n", topic, old + n);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%.400s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- replay */

/* Sets up rp (spans, producer, progress); 0 or an exit code. */
static int replay_open(replay_t *rp, int parts)
{
    const dlq_opts_t *o = rp->o;
    int64_t *progress = calloc((size_t)parts, sizeof(int64_t));
    rp->nspans = o->partition >= 0 ? 1 : (size_t)parts;
    rp->spans = calloc(rp->nspans, sizeof(*rp->spans));
    rp->old = calloc(rp->nspans, sizeof(int64_t));
    rp->cur = calloc(rp->nspans, sizeof(int64_t));
    rp->next = calloc(rp->nspans, sizeof(int64_t));
    if (!progress || !rp->spans || !rp->old || !rp->cur || !rp->next) {
        free(progress);
        return dlq_fail(DLQ_EXIT_FAILED, "out of memory");
    }
    for (size_t i = 0; i < rp->nspans; i++)
        rp->spans[i].partition = o->partition >= 0 ? o->partition : (int32_t)i;
    int code = 0;
    /* The producer first: init_transactions aborts what a killed run left
     * open, and only then is the committed progress final. */
    if (!o->dry_run && !(rp->producer = new_producer(rp)))
        code = dlq_fail(DLQ_EXIT_FAILED, "%s", rp->err);
    else if (rp->producer &&
             txn_error(rp, "init_transactions",
                       rd_kafka_init_transactions(rp->producer, DLQ_TXN_TIMEOUT_MS)))
        code = dlq_fail(DLQ_EXIT_FAILED, "%s", rp->err);
    else if (dlqread_committed(rp->consumer, rp->topic, parts, progress, rp->err,
                               sizeof(rp->err)) ||
             replay_plan(rp, progress))
        code = dlq_fail(DLQ_EXIT_FAILED, "%s", rp->err);
    free(progress);
    return code;
}

static void replay_close(replay_t *rp)
{
    if (rp->producer)
        rd_kafka_destroy(rp->producer);
    dlqread_consumer_close(rp->consumer);
    free(rp->spans);
    free(rp->old);
    free(rp->cur);
    free(rp->next);
}

/* Reads and replays the planned spans, then commits; 0 or an exit code. */
static int replay_run(replay_t *rp)
{
    clock_gettime(CLOCK_MONOTONIC, &rp->started);
    rp->last_line = rp->started;
    rp->err[0] = '\0';
    int r = dlqread_spans(rp->consumer, rp->topic, rp->spans, rp->nspans, replay_record,
                          replay_tick, rp, rp->err, sizeof(rp->err));
    if (!r && !rp->o->dry_run)
        r = txn_commit(rp, !rp->stopped && !rp->halted);
    r = r || rp->halted;
    if (r && rp->producer)
        txn_abort(rp);
    progress_line(rp, 1);
    replay_summary(rp);
    if (r)
        return dlq_fail(DLQ_EXIT_FAILED,
                        "replay of %s failed: %s (what was committed stays replayed; "
                        "run again to continue)",
                        rp->topic, rp->err);
    return rp->unroutable ? DLQ_EXIT_FAILED : DLQ_EXIT_DONE;
}

int dlqreplay_cmd(const dlq_opts_t *o, config_t *cfg)
{
    replay_t rp;
    int parts = 0;
    memset(&rp, 0, sizeof(rp));
    rp.o = o;
    rp.cfg = cfg;
    rp.topic = o->topic;
    if (o->from >= 0 && o->to >= 0 && o->from > o->to)
        return dlq_fail(DLQ_EXIT_USAGE, "--from %" PRId64 " is after --to %" PRId64, o->from,
                        o->to);
    if (o->again && o->from < 0)
        fprintf(stderr, "eosproxy dlq replay: --again without --from replays from the start\n");
    int code = dlq_open_topic(cfg, o->topic, o->partition, &rp.consumer, &parts);
    if (code)
        return code;
    code = replay_open(&rp, parts);
    if (!code)
        code = replay_run(&rp);
    if (o->metrics_file && !o->dry_run && rp.producer) {
        char err[512];
        if (metrics_add(o->metrics_file, o->topic, rp.replayed, err, sizeof(err)))
            code = dlq_fail(DLQ_EXIT_FAILED, "%s", err);
    }
    replay_close(&rp);
    return code;
}
