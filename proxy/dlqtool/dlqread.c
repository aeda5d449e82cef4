/*
 * dlqread.c - the bounded reader of a dead-letter topic for the `eosproxy
 * dlq` tools: consumer, metadata, watermarks, committed offsets, reading
 * offset ranges, and a record's kafka_dlt headers decoded. See dlqread.h.
 */
#include "dlqread.h"

#include "rdkconf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DLQ_IDLE_MS 15000 /* a read that gets nothing for this long fails */
#define DLQ_POLL_MS 100   /* one consumer poll */

/* --------------------------------------------------------- kafka clients */

/* librdkafka's errors (syslog level 3 and below); its retried warnings are
 * noise here, and what fails for good comes back as an error anyway. */
void dlqread_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        fprintf(stderr, "eosproxy dlq: librdkafka %s: %s\n", fac, buf);
}

const char *dlqread_replay_id(const char *topic, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", DLQ_GROUP_PREFIX, topic);
    return buf;
}

rd_kafka_t *dlqread_consumer_new(const config_t *cfg, const char *topic, char *err, size_t errlen)
{
    char group[DLQ_NAME_MAX];
    rd_kafka_conf_t *conf = rdkconf_new(cfg, cfg->upstream.bootstrap, err, errlen);
    if (!conf)
        return NULL;
    if (rdkconf_set(conf, "client.id", "eosproxy-dlq", err, errlen) ||
        rdkconf_set(conf, "group.id",
                    topic ? dlqread_replay_id(topic, group, sizeof(group)) : "eosproxy-dlq-tool",
                    err, errlen) ||
        rdkconf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        rdkconf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        rdkconf_set(conf, "isolation.level", "read_committed", err, errlen) ||
        rdkconf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        rdkconf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        rdkconf_set(conf, "allow.auto.create.topics", "false", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, dlqread_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

void dlqread_consumer_close(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int dlqread_partitions(rd_kafka_t *rk, const char *topic, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) {
        snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, DLQ_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (e) {
        snprintf(err, errlen, "metadata of %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    int n = -1;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        n = 0;
    else if (md->topic_cnt == 1 && md->topics[0].partition_cnt > 0)
        n = md->topics[0].partition_cnt;
    else
        snprintf(err, errlen, "metadata of %s: %s", topic,
                 rd_kafka_err2str(md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__NOENT));
    rd_kafka_metadata_destroy(md);
    return n;
}

int dlqread_watermarks(rd_kafka_t *rk, const char *topic, int32_t p, int64_t *lo, int64_t *hi,
                       char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, lo, hi, DLQ_TIMEOUT_MS);
    if (e)
        snprintf(err, errlen, "watermarks of %s [%d]: %s", topic, (int)p, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

int dlqread_committed(rd_kafka_t *rk, const char *topic, int n, int64_t *out, char *err,
                      size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, DLQ_TIMEOUT_MS);
    for (int p = 0; p < n && !e; p++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[p];
        if (tp->err)
            e = tp->err;
        out[tp->partition] = tp->offset >= 0 ? tp->offset : -1;
    }
    if (e)
        snprintf(err, errlen, "committed offsets of %s: %s", topic, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0;
}

/* ------------------------------------------------------- bounded reading */

dlqread_span_t *dlqread_span_of(dlqread_span_t *s, size_t n, int32_t partition)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].partition == partition)
            return &s[i];
    }
    return NULL;
}

static int spans_done(const dlqread_span_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!s[i].done)
            return 0;
    }
    return 1;
}

static int assign_spans(rd_kafka_t *rk, const char *topic, dlqread_span_t *s, size_t n, char *err,
                        size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        s[i].done = s[i].start >= s[i].end;
        if (!s[i].done)
            rd_kafka_topic_partition_list_add(l, topic, s[i].partition)->offset = s[i].start;
    }
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_assign(rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        snprintf(err, errlen, "assign %s: %s", topic, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* One polled message against the spans: fn's answer, or 0. */
static int take_message(dlqread_span_t *s, size_t n, const rd_kafka_message_t *m,
                        dlqread_record_fn fn, void *arg, char *lasterr, size_t errlen)
{
    dlqread_span_t *sp = dlqread_span_of(s, n, m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (sp)
            sp->done = 1; /* the end of what read_committed may see */
        return 0;
    }
    if (m->err) {
        snprintf(lasterr, errlen, "%s", rd_kafka_message_errstr(m));
        return 0;
    }
    if (!sp || sp->done || m->offset < sp->start)
        return 0;
    if (m->offset >= sp->end) {
        sp->done = 1;
        return 0;
    }
    int r = fn(arg, m);
    if (m->offset + 1 >= sp->end)
        sp->done = 1;
    return r;
}

int dlqread_spans(rd_kafka_t *rk, const char *topic, dlqread_span_t *s, size_t n,
                  dlqread_record_fn fn, dlqread_tick_fn tick, void *arg, char *err, size_t errlen)
{
    char lasterr[256] = "none";
    if (assign_spans(rk, topic, s, n, err, errlen))
        return -1;
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    int r = 0;
    while (r == 0 && !spans_done(s, n)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, DLQ_POLL_MS);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (m) {
            int got = !m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
            r = take_message(s, n, m, fn, arg, lasterr, sizeof(lasterr));
            rd_kafka_message_destroy(m);
            if (got) /* after fn: a transaction commit in it is not idleness */
                clock_gettime(CLOCK_MONOTONIC, &now), last = now;
        }
        if (r == 0 && tick && tick(arg))
            r = -1;
        long idle = (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000;
        if (r == 0 && idle > DLQ_IDLE_MS) {
            snprintf(err, errlen, "reading %s: nothing read for %d s (last error: %s)", topic,
                     DLQ_IDLE_MS / 1000, lasterr);
            r = -1;
        } else if (r < 0 && !err[0]) {
            snprintf(err, errlen, "reading %s failed", topic);
        }
    }
    rd_kafka_assign(rk, NULL);
    return r < 0 ? -1 : 0;
}

void dlqread_origin(const rd_kafka_message_t *m, kdlt_origin_t *o)
{
    rd_kafka_headers_t *hdrs = NULL;
    memset(o, 0, sizeof(*o));
    o->partition = -1;
    o->offset = -1;
    o->timestamp = -1;
    if (rd_kafka_message_headers(m, &hdrs))
        return;
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++)
        kdlt_header_parse(name, strlen(name), val, len, o);
}
