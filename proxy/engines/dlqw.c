/*
 * dlqw.c - the dead-letter writer on librdkafka. See dlqw.h.
 *
 * Each accepted write has an entry (id, callback) in a list; librdkafka
 * carries the entry as the message's opaque and returns it in the
 * delivery report, which runs from rd_kafka_poll on the loop's thread.
 * A cancelled entry stays in the list, with no callback, until its report
 * comes: the bytes and the in-flight bound stay counted until then.
 */
#include "dlqw.h"

#include "log.h"
#include "rdkconf.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

struct dlqw_entry {
    uint64_t id;
    dlqw_done_fn cb; /* NULL once cancelled */
    void *arg;
    size_t bytes;
    TAILQ_ENTRY(dlqw_entry) link;
};
TAILQ_HEAD(dlqw_entries, dlqw_entry);

struct dlqw {
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipe_rd, pipe_wr;
    struct event *ev;
    struct dlqw_entries entries;
    size_t n, bytes;
    uint64_t next_id;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct dlqw *w = opaque;
    struct dlqw_entry *e = m->_private;
    if (!e)
        return;
    TAILQ_REMOVE(&w->entries, e, link);
    w->n--;
    w->bytes -= e->bytes;
    if (e->cb)
        e->cb(e->arg, e->id, (int)m->err, m->err ? rd_kafka_err2name(m->err) : NULL, m->offset);
    free(e);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        log_error("dlq writer: %s: %s", fac, buf);
    else
        log_warn("dlq writer: %s: %s", fac, buf);
}

/* The pipe said the main queue has something: serve it (reports, logs). */
static void queue_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dlqw *w = arg;
    char drain[64];
    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    /* Bounded: each poll serves what is queued now. */
    for (int i = 0; i < 64 && rd_kafka_poll(w->rk, 0) > 0; i++)
        ;
}

static int make_pipe(struct dlqw *w)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    w->pipe_rd = fds[0];
    w->pipe_wr = fds[1];
    return 0;
}

/* The settings DLQW_ONE_BY_ONE changes (see dlqw.h). */
static int one_by_one_conf(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char max[32];
    snprintf(max, sizeof(max), "%u", DLQW_ONE_BY_ONE_MAX_BYTES);
    return rdkconf_set(conf, "enable.idempotence", "false", err, errlen) ||
           rdkconf_set(conf, "batch.num.messages", "1", err, errlen) ||
           rdkconf_set(conf, "linger.ms", "0", err, errlen) ||
           rdkconf_set(conf, "max.in.flight.requests.per.connection", "1", err, errlen) ||
           rdkconf_set(conf, "message.max.bytes", max, err, errlen);
}

static rd_kafka_conf_t *writer_conf(struct dlqw *w, const config_t *cfg, const char *bootstrap,
                                    uint64_t timeout_ms, unsigned flags, char *err, size_t errlen)
{
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%llu", (unsigned long long)timeout_ms);
    rd_kafka_conf_t *conf = rdkconf_new(cfg, bootstrap, err, errlen);
    if (!conf)
        return NULL;
    if (rdkconf_set(conf, "enable.idempotence", "true", err, errlen) ||
        rdkconf_set(conf, "acks", "all", err, errlen) ||
        rdkconf_set(conf, "linger.ms", "2", err, errlen) ||
        rdkconf_set(conf, "message.timeout.ms", tmo, err, errlen) ||
        rdkconf_set(conf, "log.queue", "true", err, errlen) ||
        ((flags & DLQW_ONE_BY_ONE) && one_by_one_conf(conf, err, errlen))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, w);
    return conf;
}

struct dlqw *dlqw_new(struct event_base *base, const config_t *cfg, const char *bootstrap,
                      uint64_t timeout_ms)
{
    return dlqw_new_flags(base, cfg, bootstrap, timeout_ms, 0);
}

struct dlqw *dlqw_new_flags(struct event_base *base, const config_t *cfg, const char *bootstrap,
                            uint64_t timeout_ms, unsigned flags)
{
    char err[512];
    struct dlqw *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    TAILQ_INIT(&w->entries);
    w->pipe_rd = w->pipe_wr = -1;
    rd_kafka_conf_t *conf = writer_conf(w, cfg, bootstrap, timeout_ms, flags, err, sizeof(err));
    if (!conf || make_pipe(w) != 0) {
        log_error("dlq writer: %s", conf ? strerror(errno) : err);
        if (conf)
            rd_kafka_conf_destroy(conf);
        dlqw_free(w);
        return NULL;
    }
    w->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!w->rk) {
        log_error("dlq writer: %s", err);
        rd_kafka_conf_destroy(conf);
        dlqw_free(w);
        return NULL;
    }
    w->mainq = rd_kafka_queue_get_main(w->rk);
    rd_kafka_set_log_queue(w->rk, w->mainq);
    rd_kafka_queue_io_event_enable(w->mainq, w->pipe_wr, "1", 1);
    w->ev = event_new(base, w->pipe_rd, EV_READ | EV_PERSIST, queue_cb, w);
    if (!w->ev || event_add(w->ev, NULL) != 0) {
        dlqw_free(w);
        return NULL;
    }
    return w;
}

void dlqw_free(struct dlqw *w)
{
    if (!w)
        return;
    struct dlqw_entry *e;
    TAILQ_FOREACH(e, &w->entries, link)
    e->cb = NULL;
    if (w->rk) {
        rd_kafka_purge(w->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(w->rk, 0); /* the purged reports free their entries */
    }
    if (w->ev)
        event_free(w->ev);
    if (w->mainq) {
        rd_kafka_queue_io_event_enable(w->mainq, -1, NULL, 0);
        rd_kafka_queue_destroy(w->mainq);
    }
    if (w->rk)
        rd_kafka_destroy(w->rk);
    while ((e = TAILQ_FIRST(&w->entries))) { /* reports that never came */
        TAILQ_REMOVE(&w->entries, e, link);
        free(e);
    }
    if (w->pipe_rd >= 0)
        close(w->pipe_rd);
    if (w->pipe_wr >= 0)
        close(w->pipe_wr);
    free(w);
}

static size_t record_bytes(const dlqw_record_t *r)
{
    size_t n = r->key_len + r->value_len;
    for (size_t i = 0; i < r->nheaders; i++)
        n += r->headers[i].name_len + r->headers[i].len;
    for (size_t i = 0; r->dlt && i < r->dlt->n; i++)
        n += strlen(r->dlt->h[i].name) + r->dlt->h[i].len;
    return n;
}

static rd_kafka_headers_t *make_headers(const dlqw_record_t *r)
{
    size_t n = r->nheaders + (r->dlt ? r->dlt->n : 0);
    rd_kafka_headers_t *hs = rd_kafka_headers_new(n ? n : 1);
    for (size_t i = 0; i < r->nheaders; i++) {
        const dlqw_header_t *h = &r->headers[i];
        rd_kafka_header_add(hs, h->name, (ssize_t)h->name_len, h->value,
                            h->value ? (ssize_t)h->len : 0);
    }
    for (size_t i = 0; r->dlt && i < r->dlt->n; i++) {
        const kdlt_header_t *h = &r->dlt->h[i];
        rd_kafka_header_add(hs, h->name, -1, h->value ? h->value : (const uint8_t *)"",
                            (ssize_t)h->len);
    }
    return hs;
}

uint64_t dlqw_send(struct dlqw *w, const dlqw_record_t *r, dlqw_done_fn cb, void *arg,
                   const char **why)
{
    size_t bytes = record_bytes(r);
    if (w->n >= DLQW_MAX_INFLIGHT || w->bytes + bytes > DLQW_MAX_BYTES) {
        if (why)
            *why = "too many dead-letter writes in flight";
        return 0;
    }
    struct dlqw_entry *e = calloc(1, sizeof(*e));
    if (!e) {
        if (why)
            *why = "out of memory";
        return 0;
    }
    rd_kafka_headers_t *hs = make_headers(r);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(r->partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(r->key, r->key ? r->key_len : 0),
        RD_KAFKA_V_VALUE((void *)r->value, r->value ? r->value_len : 0),
        RD_KAFKA_V_TIMESTAMP(r->timestamp), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(e),
        RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(hs);
        free(e);
        if (why)
            *why = rd_kafka_err2str(err);
        return 0;
    }
    e->id = ++w->next_id;
    e->cb = cb;
    e->arg = arg;
    e->bytes = bytes;
    TAILQ_INSERT_TAIL(&w->entries, e, link);
    w->n++;
    w->bytes += bytes;
    return e->id;
}

void dlqw_cancel(struct dlqw *w, uint64_t id)
{
    struct dlqw_entry *e;
    if (!w || !id)
        return;
    TAILQ_FOREACH(e, &w->entries, link)
    {
        if (e->id == id) {
            e->cb = NULL;
            return;
        }
    }
}

size_t dlqw_inflight(const struct dlqw *w)
{
    return w ? w->n : 0;
}
