/*
 * dlqshow.c - `eosproxy dlq list` and `eosproxy dlq show`: a dead-letter
 * topic's partitions, records, replay progress and newest entries, or one
 * record with its key, value and headers, the kafka_dlt-* ones decoded.
 * Keys, values and header values print as text when they are UTF-8 text,
 * else as hex, and are cut unless --full. See dlqshow.h.
 */
#include "dlqshow.h"

#include "dlqread.h"
#include "kdlt.h"
#include "policy.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DLQ_SHOW_MAX 4096  /* key/value bytes shown without --full */
#define DLQ_INLINE_MAX 200 /* header values and reasons on one line */
#define DLQ_NEWEST 5       /* entries per topic in `list` (default) */

/* ------------------------------------------------------------- printing */

/* ms since the epoch as "2026-12-07T04:23:34.123Z" into buf[0..cap). */
static const char *fmt_time(int64_t ms, char *buf, size_t cap)
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, cap, "-");
        return buf;
    }
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

/* Length of the UTF-8 sequence at p[0..len), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t len)
{
    size_t n = p[0] < 0x80             ? 1
               : (p[0] & 0xE0) == 0xC0 ? 2
               : (p[0] & 0xF0) == 0xE0 ? 3
               : (p[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || n > len || (n == 2 && p[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

/* 1 if p[0..len) is UTF-8 text with no control characters but \t \n \r. */
static int is_text(const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(p + i, len - i);
        if (n == 0 || (n == 1 && ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') ||
                                  p[i] == 0x7F)))
            return 0;
        i += n;
    }
    return 1;
}

/* p[0..len) as hex pairs separated by spaces, on one line. */
static void print_hex_inline(FILE *f, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        fprintf(f, "%s%02x", i ? " " : "", p[i]);
}

/* p[0..len) as a hex dump, 16 bytes a line, each line indented. */
static void print_hex_dump(FILE *f, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i += 16) {
        size_t n = len - i < 16 ? len - i : 16;
        fprintf(f, "  %08zx  ", i);
        print_hex_inline(f, p + i, n);
        fputc('\n', f);
    }
}

/* Text on one line: control characters (newlines too) as '?'. */
static void print_oneline(FILE *f, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++)
        fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7F ? '?' : s[i], f);
    if (len > n)
        fputs("...", f);
}

/*
 * A key or value: "(null)", or its size and kind on the label line and the
 * bytes below (text as is, else a hex dump), cut at DLQ_SHOW_MAX unless full.
 */
static void print_payload(FILE *f, const char *label, const void *data, size_t len, int full)
{
    if (!data) {
        fprintf(f, "%-11s (null)\n", label);
        return;
    }
    int text = is_text(data, len);
    size_t shown = !full && len > DLQ_SHOW_MAX ? DLQ_SHOW_MAX : len;
    fprintf(f, "%-11s %zu bytes, %s", label, len, text ? "text" : "binary (hex)");
    if (shown < len)
        fprintf(f, ", first %zu shown (--full shows all)", shown);
    fputc('\n', f);
    if (text && shown)
        fprintf(f, "%.*s\n", (int)shown, (const char *)data);
    else if (shown)
        print_hex_dump(f, data, shown);
}

void dlqshow_value_inline(FILE *f, const void *v, size_t len, int full)
{
    size_t max = full ? len : DLQ_INLINE_MAX;
    if (!v) {
        fputs("(null)", f);
    } else if (is_text(v, len)) {
        fputc('"', f);
        print_oneline(f, v, len, max);
        fputc('"', f);
    } else {
        print_hex_inline(f, v, len < max ? len : max);
        fprintf(f, "%s (%zu bytes, hex)", len > max ? " ..." : "", len);
    }
}

/* ------------------------------------------------------------------ show */

/* One header: name = value, decoded when it is a DLT header. */
static void print_header(FILE *f, const char *name, const void *val, size_t len, int full)
{
    kdlt_origin_t o;
    char ts[40];
    memset(&o, 0, sizeof(o));
    int r = kdlt_header_parse(name, strlen(name), val, len, &o);
    fprintf(f, "  %s = ", name);
    if (r < 0) {
        fputs("(bad encoding) ", f);
        dlqshow_value_inline(f, val, len, full);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_PARTITION) == 0) {
        fprintf(f, "%" PRId32 " (int32)", o.partition);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_OFFSET) == 0) {
        fprintf(f, "%" PRId64 " (int64)", o.offset);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_TIMESTAMP) == 0) {
        fprintf(f, "%" PRId64 " (%s)", o.timestamp, fmt_time(o.timestamp, ts, sizeof(ts)));
    } else {
        dlqshow_value_inline(f, val, len, full);
    }
    fputc('\n', f);
}

/* A view as a line value, or "(absent)". */
static void print_field(FILE *f, const char *label, const char *s, size_t len, int full)
{
    fprintf(f, "  %-20s ", label);
    if (s)
        print_oneline(f, s, len, full ? len : DLQ_INLINE_MAX * 10);
    else
        fputs("(absent)", f);
    fputc('\n', f);
}

/* The decoded dead-letter fields of a record. */
static void print_origin(FILE *f, const rd_kafka_message_t *m, int full)
{
    kdlt_origin_t o;
    char ts[40];
    dlqread_origin(m, &o);
    fprintf(f, "dead letter:\n");
    print_field(f, "original topic:", o.topic, o.topic_len, full);
    if (o.partition >= 0)
        fprintf(f, "  %-20s %" PRId32 "\n", "original partition:", o.partition);
    else
        print_field(f, "original partition:", NULL, 0, full);
    if (o.offset >= 0)
        fprintf(f, "  %-20s %" PRId64 "\n", "original offset:", o.offset);
    else
        print_field(f, "original offset:", NULL, 0, full);
    if (o.timestamp >= 0)
        fprintf(f, "  %-20s %" PRId64 " (%s, %s)\n", "original timestamp:", o.timestamp,
                fmt_time(o.timestamp, ts, sizeof(ts)), kdlt_timestamp_type_name(o.timestamp_type));
    else
        print_field(f, "original timestamp:", NULL, 0, full);
    print_field(f, "consumer group:", o.group, o.group_len, full);
    print_field(f, "reason:", o.reason, o.reason_len, full);
}

/* Everything about one record, on f. */
static void print_record(FILE *f, const rd_kafka_message_t *m, int full)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    char when[40];
    rd_kafka_headers_t *hdrs = NULL;
    fprintf(f, "%-11s %s\n%-11s %" PRId32 "\n%-11s %" PRId64 "\n",
            "topic:", rd_kafka_topic_name(m->rkt), "partition:", m->partition,
            "offset:", m->offset);
    fprintf(f, "%-11s %" PRId64 " (%s, %s)\n", "timestamp:", ts, fmt_time(ts, when, sizeof(when)),
            tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime");
    print_payload(f, "key:", m->key, m->key_len, full);
    print_payload(f, "value:", m->payload, m->len, full);
    size_t n = 0;
    if (!rd_kafka_message_headers(m, &hdrs))
        n = rd_kafka_header_cnt(hdrs);
    fprintf(f, "headers:    %zu\n", n);
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; i < n && !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++)
        print_header(f, name, val, len, full);
    print_origin(f, m, full);
}

/* What `show` found: the record printed, or the next offset there is. */
typedef struct show_state {
    int64_t want;
    int64_t found_next; /* offset of the first record after want, or -1 */
    int shown;
    int full;
} show_state_t;

static int show_record(void *arg, const rd_kafka_message_t *m)
{
    show_state_t *st = arg;
    if (m->offset == st->want) {
        print_record(stdout, m, st->full);
        st->shown = 1;
    } else {
        st->found_next = m->offset;
    }
    return 1;
}

int dlqshow_cmd_show(const dlq_opts_t *o, config_t *cfg)
{
    rd_kafka_t *rk = NULL;
    int parts = 0;
    int64_t lo, hi;
    char err[512] = "";
    int code = dlq_open_topic(cfg, o->topic, o->partition, &rk, &parts);
    if (code)
        return code;
    if (dlqread_watermarks(rk, o->topic, o->partition, &lo, &hi, err, sizeof(err))) {
        code = dlq_fail(DLQ_EXIT_FAILED, "%s", err);
    } else if (o->offset < lo || o->offset >= hi) {
        code = dlq_fail(
            DLQ_EXIT_USAGE,
            "offset %" PRId64 " is not in %s [%d], which holds %" PRId64 "..%" PRId64 "%s",
            o->offset, o->topic, (int)o->partition, lo, hi - 1, lo == hi ? " (empty)" : "");
    } else {
        show_state_t st = {o->offset, -1, 0, o->full};
        dlqread_span_t sp = {o->partition, o->offset, hi, 0};
        if (dlqread_spans(rk, o->topic, &sp, 1, show_record, NULL, &st, err, sizeof(err)))
            code = dlq_fail(DLQ_EXIT_FAILED, "%s", err);
        else if (!st.shown)
            code = dlq_fail(DLQ_EXIT_USAGE,
                            "no record at offset %" PRId64 " of %s [%d] (a transaction marker, or "
                            "aborted or compacted); the next record is at offset %" PRId64,
                            o->offset, o->topic, (int)o->partition, st.found_next);
    }
    dlqread_consumer_close(rk);
    return code;
}

/* ------------------------------------------------------------------ list */

/* One of the newest entries of a DLQ topic, copied out of its record. */
typedef struct entry {
    int32_t partition;
    int64_t offset, timestamp;
    char topic[POLICY_TOPIC_MAX + 1]; /* original topic, "" if absent */
    int32_t orig_partition;
    int64_t orig_offset;
    char reason[DLQ_INLINE_MAX + 1];
    size_t reason_len; /* the whole reason's length */
} entry_t;

typedef struct newest {
    entry_t *e;
    size_t n, cap;
} newest_t;

/* The view s[0..len) (NULL: empty) into dst[0..cap), cut to cap - 1 bytes. */
static void copy_view(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = !s ? 0 : len < cap - 1 ? len : cap - 1;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

static int collect_entry(void *arg, const rd_kafka_message_t *m)
{
    newest_t *nw = arg;
    kdlt_origin_t o;
    if (nw->n == nw->cap)
        return 0;
    entry_t *e = &nw->e[nw->n++];
    dlqread_origin(m, &o);
    e->partition = m->partition;
    e->offset = m->offset;
    e->timestamp = rd_kafka_message_timestamp(m, NULL);
    copy_view(e->topic, sizeof(e->topic), o.topic, o.topic_len);
    e->orig_partition = o.partition;
    e->orig_offset = o.offset;
    copy_view(e->reason, sizeof(e->reason), o.reason, o.reason_len);
    e->reason_len = o.reason ? o.reason_len : 0;
    return 0;
}

/* Newest first: by timestamp, then partition and offset. */
static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->timestamp != y->timestamp)
        return x->timestamp < y->timestamp ? 1 : -1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? 1 : x->offset > y->offset ? -1 : 0;
}

static void print_entries(const entry_t *e, size_t n)
{
    char ts[40], where[32], orig[POLICY_TOPIC_MAX + 48];
    if (n == 0)
        return;
    printf("  %-14s %-24s %-30s %s\n", "PART/OFFSET", "TIMESTAMP", "ORIGINAL", "REASON");
    for (size_t i = 0; i < n; i++) {
        snprintf(where, sizeof(where), "%" PRId32 "/%" PRId64, e[i].partition, e[i].offset);
        if (e[i].topic[0])
            snprintf(orig, sizeof(orig), "%s/%" PRId32 "/%" PRId64, e[i].topic, e[i].orig_partition,
                     e[i].orig_offset);
        else
            snprintf(orig, sizeof(orig), "(no original topic)");
        printf("  %-14s %-24s %-30s ", where, fmt_time(e[i].timestamp, ts, sizeof(ts)), orig);
        print_oneline(stdout, e[i].reason, e[i].reason_len, strlen(e[i].reason));
        putchar('\n');
    }
}

/* Per-partition watermarks, and the sums `list` prints. */
typedef struct topic_stats {
    int parts;
    int64_t *lo, *hi, *done; /* done: the replay group's committed offset, or -1 */
    int64_t records, replayed;
    int progress_known;
} topic_stats_t;

static int topic_stats(rd_kafka_t *rk, const char *topic, topic_stats_t *ts, char *err,
                       size_t errlen)
{
    char why[256];
    for (int p = 0; p < ts->parts; p++) {
        if (dlqread_watermarks(rk, topic, p, &ts->lo[p], &ts->hi[p], err, errlen))
            return -1;
        ts->records += ts->hi[p] - ts->lo[p];
    }
    ts->progress_known = dlqread_committed(rk, topic, ts->parts, ts->done, why, sizeof(why)) == 0;
    for (int p = 0; ts->progress_known && p < ts->parts; p++) {
        int64_t d = ts->done[p];
        if (d > ts->lo[p])
            ts->replayed += (d < ts->hi[p] ? d : ts->hi[p]) - ts->lo[p];
    }
    if (!ts->progress_known)
        fprintf(stderr, "eosproxy dlq: %s\n", why);
    return 0;
}

/* The newest entries of a topic into nw (newest first). 0, or -1 with err. */
static int topic_newest(rd_kafka_t *rk, const char *topic, const topic_stats_t *ts, long want,
                        newest_t *nw, char *err, size_t errlen)
{
    dlqread_span_t *sp = calloc((size_t)ts->parts, sizeof(*sp));
    nw->cap = (size_t)want * (size_t)ts->parts;
    nw->e = calloc(nw->cap ? nw->cap : 1, sizeof(*nw->e));
    int r = -1;
    if (sp && nw->e) {
        for (int p = 0; p < ts->parts; p++) {
            sp[p].partition = p;
            sp[p].end = ts->hi[p];
            sp[p].start = ts->hi[p] - want > ts->lo[p] ? ts->hi[p] - want : ts->lo[p];
        }
        r = dlqread_spans(rk, topic, sp, (size_t)ts->parts, collect_entry, NULL, nw, err, errlen);
        qsort(nw->e, nw->n, sizeof(*nw->e), entry_cmp);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(sp);
    return r;
}

/* `list` of one topic; an exit code. */
static int list_topic(const config_t *cfg, const char *topic, long want)
{
    rd_kafka_t *rk = NULL;
    topic_stats_t ts;
    newest_t nw = {NULL, 0, 0};
    char err[512] = "";
    memset(&ts, 0, sizeof(ts));
    int code = dlq_open_topic(cfg, topic, -1, &rk, &ts.parts);
    if (code)
        return code;
    ts.lo = calloc((size_t)ts.parts, sizeof(int64_t));
    ts.hi = calloc((size_t)ts.parts, sizeof(int64_t));
    ts.done = calloc((size_t)ts.parts, sizeof(int64_t));
    if (!ts.lo || !ts.hi || !ts.done)
        code = dlq_fail(DLQ_EXIT_FAILED, "out of memory");
    else if (topic_stats(rk, topic, &ts, err, sizeof(err)) ||
             (want > 0 && topic_newest(rk, topic, &ts, want, &nw, err, sizeof(err))))
        code = dlq_fail(DLQ_EXIT_FAILED, "%s", err);
    if (!code) {
        printf("%s: %d partition%s, %" PRId64 " record%s", topic, ts.parts,
               ts.parts == 1 ? "" : "s", ts.records, ts.records == 1 ? "" : "s");
        if (ts.progress_known)
            printf(", %" PRId64 " replayed (group %s%s)\n", ts.replayed, DLQ_GROUP_PREFIX, topic);
        else
            printf(", replay progress unknown\n");
        print_entries(nw.e, nw.n < (size_t)want ? nw.n : (size_t)want);
    }
    free(nw.e);
    free(ts.lo);
    free(ts.hi);
    free(ts.done);
    dlqread_consumer_close(rk);
    return code;
}

/* 1 if the cluster topic name[] is a DLQ topic of the policy p. */
static int is_config_dlq(const policy_t *p, const char *name)
{
    size_t len = strlen(name), sfx = sizeof(".DLT") - 1;
    for (size_t i = 0; i < p->n; i++) {
        const policy_rule_t *r = &p->rules[i];
        if (POLICY_HAS_DLQ(r) && r->dlq.topic && strcmp(r->dlq.topic, name) == 0)
            return 1;
    }
    if (len <= sfx || strcmp(name + len - sfx, ".DLT") != 0)
        return 0;
    const policy_rule_t *r = policy_lookup(p, name, len - sfx);
    return r && POLICY_HAS_DLQ(r) && !r->dlq.topic;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The config's DLQ topics that exist in the cluster, sorted, into *out
 * (pointers into *md, which the caller destroys). Returns the count, or -1
 * after a message.
 */
static int config_dlqs(const config_t *cfg, const struct rd_kafka_metadata **md, char ***out)
{
    char err[512];
    rd_kafka_t *rk = dlqread_consumer_new(cfg, NULL, err, sizeof(err));
    if (!rk)
        return dlq_fail(-1, "%s", err);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md, DLQ_TIMEOUT_MS);
    dlqread_consumer_close(rk);
    if (e)
        return dlq_fail(-1, "metadata of the cluster at %s: %s", cfg->upstream.bootstrap,
                        rd_kafka_err2str(e));
    *out = calloc((size_t)(*md)->topic_cnt + 1, sizeof(char *));
    if (!*out)
        return dlq_fail(-1, "out of memory");
    int n = 0;
    for (int i = 0; i < (*md)->topic_cnt; i++) {
        const char *name = (*md)->topics[i].topic;
        if (!(*md)->topics[i].err && is_config_dlq(cfg->policy, name))
            (*out)[n++] = (char *)name;
    }
    qsort(*out, (size_t)n, sizeof(char *), name_cmp);
    return n;
}

int dlqshow_cmd_list(const dlq_opts_t *o, config_t *cfg)
{
    long want = o->newest >= 0 ? o->newest : DLQ_NEWEST;
    if (o->topic)
        return list_topic(cfg, o->topic, want);
    if (!policy_has_dlq(cfg->policy))
        fprintf(stderr,
                "eosproxy dlq: %s has no topics rule with a dlq section; name a TOPIC "
                "to list another\n",
                o->config);
    const struct rd_kafka_metadata *md = NULL;
    char **names = NULL;
    int n = config_dlqs(cfg, &md, &names), code = n < 0 ? DLQ_EXIT_FAILED : DLQ_EXIT_DONE;
    if (n == 0)
        printf("no DLQ topics of %s in the cluster at %s\n", o->config, cfg->upstream.bootstrap);
    for (int i = 0; i < n; i++) {
        int c = list_topic(cfg, names[i], want);
        code = c > code ? c : code;
        if (i + 1 < n)
            putchar('\n');
    }
    free(names);
    if (md)
        rd_kafka_metadata_destroy(md);
    return code == DLQ_EXIT_USAGE ? DLQ_EXIT_FAILED : code; /* a topic deleted meanwhile */
}
