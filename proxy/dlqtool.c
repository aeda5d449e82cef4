/*
 * dlqtool.c - `eosproxy dlq list|show|replay`: the operator tools for
 * dead-letter topics. A separate process with its own librdkafka clients,
 * reaching the cluster the way the proxy does (rdkconf: upstream.*).
 *
 *   list     partitions, record counts, replay progress and the newest
 *            entries of each DLQ topic of the config (or of one topic)
 *   show     one record with its headers decoded (kdlt.h)
 *   replay   records written back to their original topic
 *
 * Replay is idempotent. Its progress is the committed offsets of the
 * consumer group "eosproxy-dlq-replay-<dlq topic>", and every offset commit
 * rides in the same Kafka transaction (transactional.id
 * "eosproxy-dlq-replay-<dlq topic>") as the records it covers. A replay
 * killed half-way leaves an open transaction: the next run's
 * init_transactions aborts it, the records and the progress of that
 * transaction vanish together, and the run resumes at the last committed
 * progress. A read_committed reader of the original topic therefore sees
 * each replayed record exactly once.
 *
 * Every read ends at the high watermark taken when it starts, at the end
 * of the partition, or after DLQ_IDLE_MS without progress.
 */
#include "dlqtool.h"

#include "config.h"
#include "kdlt.h"
#include "../policy/policy.h"
#include "rdkconf.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define DLQ_TIMEOUT_MS 15000 /* one metadata, watermark, offset or transaction call */
#define DLQ_IDLE_MS 15000    /* a read that gets nothing for this long fails */
#define DLQ_POLL_MS 100      /* one consumer poll */
#define DLQ_SHOW_MAX 4096    /* key/value bytes shown without --full */
#define DLQ_INLINE_MAX 200   /* header values and reasons on one line */
#define DLQ_COMMIT_EVERY 500 /* records per replay transaction (default) */
#define DLQ_NEWEST 5         /* entries per topic in `list` (default) */
#define DLQ_NEWEST_MAX 1000  /* --newest upper bound */
#define DLQ_GROUP_PREFIX "eosproxy-dlq-replay-"
#define DLQ_NAME_MAX (sizeof(DLQ_GROUP_PREFIX) + POLICY_TOPIC_MAX + 1)
#define DLQ_ORIGINS_MAX 64 /* original topics whose partition count is cached */

/* ------------------------------------------------------------------ help */

static const char help_dlq[] =
    "usage: eosproxy dlq list   -c FILE [TOPIC] [--newest N]\n"
    "       eosproxy dlq show   -c FILE TOPIC OFFSET [--partition N] [--full]\n"
    "       eosproxy dlq replay -c FILE TOPIC [--from OFFSET] [--to OFFSET] [--partition N]\n"
    "                           [--dry-run] [--again] [--commit-every N] [--max-records N]\n"
    "                           [--rate N] [--metrics-file PATH]\n"
    "\n"
    "Operator tools for dead-letter topics (Spring Kafka's kafka_dlt-* headers). They\n"
    "connect to the cluster of FILE (upstream.bootstrap, with its TLS and SASL settings);\n"
    "a config with upstream.mock_brokers has no cluster outside the proxy and is refused.\n"
    "`eosproxy dlq SUBCOMMAND --help` describes each one.\n"
    "\n"
    "examples:\n"
    "  eosproxy dlq list -c /etc/eosproxy.yaml\n"
    "  eosproxy dlq show -c /etc/eosproxy.yaml orders.DLT 42 --partition 1\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT --dry-run\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT\n"
    "\n"
    "exit: 0 done; 1 failed against the cluster, or a replay left records behind;\n"
    "      2 bad usage or input (config, topic or offset not found).\n";

static const char help_list[] =
    "usage: eosproxy dlq list -c FILE [TOPIC] [--newest N]\n"
    "\n"
    "Without TOPIC: every DLQ topic of the config that exists in the cluster: the\n"
    "dlq.topic names, and every topic \"T.DLT\" whose source T matches a rule with a dlq\n"
    "section. Per topic: partitions, records (high minus low watermark, summed), the\n"
    "replay progress (committed offsets of group eosproxy-dlq-replay-TOPIC), and the N\n"
    "newest entries (default 5, at most 1000) with original topic/partition/offset and\n"
    "reason.\n"
    "\n"
    "examples:\n"
    "  eosproxy dlq list -c /etc/eosproxy.yaml\n"
    "  eosproxy dlq list -c /etc/eosproxy.yaml orders.DLT --newest 20\n"
    "\n"
    "exit: 0 listed; 1 cluster error; 2 bad usage, bad config or TOPIC not found.\n";

static const char help_show[] =
    "usage: eosproxy dlq show -c FILE TOPIC OFFSET [--partition N] [--full]\n"
    "\n"
    "Prints the record at OFFSET of partition N (default 0) of TOPIC: timestamp, key and\n"
    "value (text when printable, else hex; cut at 4 KiB unless --full), every header,\n"
    "and the dead-letter fields decoded (original topic, partition, offset, timestamp\n"
    "and type, consumer group, exception, reason). Records of aborted transactions are\n"
    "not shown (read_committed).\n"
    "\n"
    "examples:\n"
    "  eosproxy dlq show -c /etc/eosproxy.yaml orders.DLT 0\n"
    "  eosproxy dlq show -c /etc/eosproxy.yaml orders.DLT 1234 --partition 2 --full\n"
    "\n"
    "exit: 0 shown; 1 cluster error; 2 bad usage, TOPIC, partition or OFFSET not found.\n";

static const char help_replay[] =
    "usage: eosproxy dlq replay -c FILE TOPIC [--from OFFSET] [--to OFFSET] [--partition N]\n"
    "                           [--dry-run] [--again] [--commit-every N] [--max-records N]\n"
    "                           [--rate N] [--metrics-file PATH]\n"
    "\n"
    "Writes the records of the DLQ topic TOPIC back to their original topic (header\n"
    "kafka_dlt-original-topic) and partition (kafka_dlt-original-partition, when that\n"
    "partition exists; else the partitioner), with their key, value, original timestamp\n"
    "and headers, without the kafka_dlt-* headers and with eosproxy-replayed-from:\n"
    "\"TOPIC/PARTITION/OFFSET\". --from and --to (inclusive) bound the offsets of every\n"
    "partition replayed (all, or --partition N). A progress line goes to stderr every\n"
    "second, the summary to stdout.\n"
    "\n"
    "Idempotent: the progress is the committed offsets of consumer group\n"
    "eosproxy-dlq-replay-TOPIC, committed inside the Kafka transaction (transactional.id\n"
    "eosproxy-dlq-replay-TOPIC) that writes the records, every --commit-every records\n"
    "(default 500). A run killed half-way leaves its last transaction open; the next run\n"
    "aborts it and resumes at the committed progress, so read_committed consumers of the\n"
    "original topic see each record once (read_uncommitted ones may also see aborted\n"
    "copies). Records below the progress are skipped and counted as already replayed,\n"
    "--from included; --again replays from --from anyway (the progress is set back to\n"
    "--from while it runs and restored when the range completes; resume an interrupted\n"
    "--again run by repeating it without --again). Two replays of one topic fence each\n"
    "other: the older one fails.\n"
    "\n"
    "  --dry-run          print what would be written; write and commit nothing\n"
    "  --max-records N    stop (committed) after N records; the next run continues\n"
    "  --rate N           at most N records per second\n"
    "  --metrics-file P   add the records written to eosproxy_dlq_replayed_total{topic=...}\n"
    "                     in P (Prometheus textfile-collector format, replaced atomically)\n"
    "\n"
    "examples:\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT --dry-run\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT --partition 0 --from 100 --to 199\n"
    "  eosproxy dlq replay -c /etc/eosproxy.yaml orders.DLT --from 0 --again --rate 200 \\\n"
    "      --metrics-file /var/lib/node_exporter/textfile/eosproxy_dlq.prom\n"
    "\n"
    "exit: 0 replayed (or nothing to do); 1 failed (what was committed stays replayed;\n"
    "      rerun to continue), or records without kafka_dlt-original-topic were skipped;\n"
    "      2 bad usage, bad config or TOPIC not found.\n";

/* --------------------------------------------------------------- options */

enum {
    OPT_PARTITION = 256,
    OPT_NEWEST,
    OPT_FULL,
    OPT_FROM,
    OPT_TO,
    OPT_DRY_RUN,
    OPT_AGAIN,
    OPT_COMMIT_EVERY,
    OPT_MAX_RECORDS,
    OPT_RATE,
    OPT_METRICS_FILE,
};

/* One subcommand's command line. -1 in a number means "not given". */
typedef struct dlq_opts {
    const char *config;
    const char *topic;
    int64_t offset;
    int32_t partition;
    int64_t from, to;
    long newest;
    long commit_every;
    long max_records;
    long rate;
    int full, dry_run, again;
    const char *metrics_file;
} dlq_opts_t;

typedef int (*dlq_cmd_fn)(const dlq_opts_t *o, config_t *cfg);

/* A subcommand: its name, options, positional arguments and help. */
typedef struct dlq_cmd {
    const char *name;
    const struct option *opts;
    int min_args, max_args; /* positional arguments after the subcommand */
    const char *help;
    dlq_cmd_fn run;
} dlq_cmd_t;

static const struct option list_opts[] = {{"config", required_argument, NULL, 'c'},
                                          {"newest", required_argument, NULL, OPT_NEWEST},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
static const struct option show_opts[] = {{"config", required_argument, NULL, 'c'},
                                          {"partition", required_argument, NULL, OPT_PARTITION},
                                          {"full", no_argument, NULL, OPT_FULL},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
static const struct option replay_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"partition", required_argument, NULL, OPT_PARTITION},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"again", no_argument, NULL, OPT_AGAIN},
    {"commit-every", required_argument, NULL, OPT_COMMIT_EVERY},
    {"max-records", required_argument, NULL, OPT_MAX_RECORDS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* The usage lines of a help text: up to its first blank line. */
static void print_usage(FILE *f, const char *help)
{
    const char *end = strstr(help, "\n\n");
    fprintf(f, "%.*s\n", end ? (int)(end - help) : (int)strlen(help), help);
}

/* Strict decimal in [min, max]: 0, or -1. */
static int parse_num(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int bad_number(const char *cmd, const char *opt, const char *arg, int64_t min, int64_t max)
{
    fprintf(stderr, "eosproxy dlq %s: %s takes a number in %" PRId64 "..%" PRId64 ", not '%s'\n",
            cmd, opt, min, max, arg);
    return -1;
}

/* One option into o; 0, or -1 after a message. */
static int take_opt(const char *cmd, int opt, const char *arg, dlq_opts_t *o)
{
    int64_t v = 0;
    switch (opt) {
    case 'c':
        o->config = arg;
        return 0;
    case OPT_FULL:
        o->full = 1;
        return 0;
    case OPT_DRY_RUN:
        o->dry_run = 1;
        return 0;
    case OPT_AGAIN:
        o->again = 1;
        return 0;
    case OPT_METRICS_FILE:
        o->metrics_file = arg;
        return 0;
    case OPT_PARTITION:
        if (parse_num(arg, 0, INT32_MAX, &v))
            return bad_number(cmd, "--partition", arg, 0, INT32_MAX);
        o->partition = (int32_t)v;
        return 0;
    case OPT_FROM:
    case OPT_TO:
        if (parse_num(arg, 0, INT64_MAX - 1, &v))
            return bad_number(cmd, opt == OPT_FROM ? "--from" : "--to", arg, 0, INT64_MAX - 1);
        *(opt == OPT_FROM ? &o->from : &o->to) = v;
        return 0;
    case OPT_NEWEST:
        if (parse_num(arg, 0, DLQ_NEWEST_MAX, &v))
            return bad_number(cmd, "--newest", arg, 0, DLQ_NEWEST_MAX);
        o->newest = (long)v;
        return 0;
    case OPT_COMMIT_EVERY:
    case OPT_MAX_RECORDS:
    case OPT_RATE:
        if (parse_num(arg, 1, 100000000, &v))
            return bad_number(cmd,
                              opt == OPT_RATE          ? "--rate"
                              : opt == OPT_MAX_RECORDS ? "--max-records"
                                                       : "--commit-every",
                              arg, 1, 100000000);
        *(opt == OPT_RATE          ? &o->rate
          : opt == OPT_MAX_RECORDS ? &o->max_records
                                   : &o->commit_every) = (long)v;
        return 0;
    }
    return -1;
}

/*
 * Parses argv (argv[0] the subcommand) into o. Returns 0, 1 when --help
 * was printed, or -1 after a message on stderr.
 */
static int parse_args(const dlq_cmd_t *c, int argc, char **argv, dlq_opts_t *o)
{
    int opt;
    optind = 0; /* glibc: a full re-initialisation */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:h", c->opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(c->help, stdout);
            return 1;
        }
        if (opt == ':' || opt == '?') {
            fprintf(stderr, "eosproxy dlq %s: %s %s (see eosproxy dlq %s --help)\n", c->name,
                    opt == ':' ? "missing value for" : "unknown option", argv[optind - 1], c->name);
            return -1;
        }
        if (take_opt(c->name, opt, optarg, o))
            return -1;
    }
    int npos = argc - optind;
    if (!o->config || npos < c->min_args || npos > c->max_args) {
        fprintf(stderr, "eosproxy dlq %s: %s\n", c->name,
                !o->config ? "-c FILE is required" : "wrong number of arguments");
        print_usage(stderr, c->help);
        return -1;
    }
    if (npos > 0)
        o->topic = argv[optind];
    if (npos > 1 && parse_num(argv[optind + 1], 0, INT64_MAX - 1, &o->offset)) {
        fprintf(stderr, "eosproxy dlq %s: OFFSET must be a number, not '%s'\n", c->name,
                argv[optind + 1]);
        return -1;
    }
    return 0;
}

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

/* A header value on one line: text in quotes, else hex. */
static void print_value_inline(FILE *f, const void *v, size_t len, int full)
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

/* --------------------------------------------------------- kafka clients */

/* librdkafka's errors (syslog level 3 and below); its retried warnings are
 * noise here, and what fails for good comes back as an error anyway. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        fprintf(stderr, "eosproxy dlq: librdkafka %s: %s\n", fac, buf);
}

/* "eosproxy-dlq-replay-<topic>": the replay's group and transactional id. */
static const char *replay_id(const char *topic, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", DLQ_GROUP_PREFIX, topic);
    return buf;
}

/*
 * A consumer of the cluster in cfg, in group "eosproxy-dlq-replay-<topic>"
 * (so that `committed` reads the replay progress; it never joins or
 * commits) or "eosproxy-dlq-tool" when topic is NULL, reading read_committed. NULL with err set on
 * failure.
 */
static rd_kafka_t *new_consumer(const config_t *cfg, const char *topic, char *err, size_t errlen)
{
    char group[DLQ_NAME_MAX];
    rd_kafka_conf_t *conf = rdkconf_new(cfg, cfg->upstream.bootstrap, err, errlen);
    if (!conf)
        return NULL;
    if (rdkconf_set(conf, "client.id", "eosproxy-dlq", err, errlen) ||
        rdkconf_set(conf, "group.id",
                    topic ? replay_id(topic, group, sizeof(group)) : "eosproxy-dlq-tool", err,
                    errlen) ||
        rdkconf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        rdkconf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        rdkconf_set(conf, "isolation.level", "read_committed", err, errlen) ||
        rdkconf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        rdkconf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        rdkconf_set(conf, "allow.auto.create.topics", "false", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void close_consumer(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/*
 * Partitions of topic: > 0, 0 if the cluster does not have it, -1 on error
 * (err). Asks a consumer, which never has a topic auto-created.
 */
static int topic_partitions(rd_kafka_t *rk, const char *topic, char *err, size_t errlen)
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

/* Low and high watermark of one partition; 0, or -1 with err. */
static int watermarks(rd_kafka_t *rk, const char *topic, int32_t p, int64_t *lo, int64_t *hi,
                      char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, lo, hi, DLQ_TIMEOUT_MS);
    if (e)
        snprintf(err, errlen, "watermarks of %s [%d]: %s", topic, (int)p, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/*
 * The committed offsets of the consumer's group for partitions [0, n) of
 * topic into out[] (-1 where none). 0, or -1 with err.
 */
static int committed(rd_kafka_t *rk, const char *topic, int n, int64_t *out, char *err,
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

/* Offsets [start, end) of one partition to read. */
typedef struct span {
    int32_t partition;
    int64_t start, end;
    int done;
} span_t;

/* Called per record read: 0 to go on, 1 to stop reading (done), -1 to fail. */
typedef int (*record_fn)(void *arg, const rd_kafka_message_t *m);
/* Called between polls: 0 to go on, -1 to fail. */
typedef int (*tick_fn)(void *arg);

static span_t *span_of(span_t *s, size_t n, int32_t partition)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].partition == partition)
            return &s[i];
    }
    return NULL;
}

static int spans_done(const span_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!s[i].done)
            return 0;
    }
    return 1;
}

static int assign_spans(rd_kafka_t *rk, const char *topic, span_t *s, size_t n, char *err,
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

/* One polled message against the spans: the record_fn's answer, or 0. */
static int take_message(span_t *s, size_t n, const rd_kafka_message_t *m, record_fn fn, void *arg,
                        char *lasterr, size_t errlen)
{
    span_t *sp = span_of(s, n, m->partition);
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

/*
 * Reads spans s[0..n) of topic with the consumer rk, calling fn for every
 * record in them, in offset order per partition. Ends when every span is
 * read (its end, or the end of what the partition serves), when fn says
 * stop, or fails when DLQ_IDLE_MS pass without a record or the end of a
 * span. Returns 0, or -1 with err.
 */
static int read_spans(rd_kafka_t *rk, const char *topic, span_t *s, size_t n, record_fn fn,
                      tick_fn tick, void *arg, char *err, size_t errlen)
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

/* The DLT fields of a record's headers (views into the message). */
static void record_origin(const rd_kafka_message_t *m, kdlt_origin_t *o)
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

/* ----------------------------------------------------------------- setup */

/* "eosproxy dlq: MESSAGE" on stderr; returns code. */
__attribute__((format(printf, 2, 3))) static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("eosproxy dlq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* The config at path, if it names a real cluster; NULL after a message. */
static config_t *load_config(const char *path)
{
    char err[512];
    config_t *cfg = config_load(path, err, sizeof(err));
    if (!cfg) {
        fail(EXIT_USAGE, "%s", err);
        return NULL;
    }
    if (cfg->upstream.mock_brokers > 0 || !cfg->upstream.bootstrap) {
        fail(EXIT_USAGE,
             "%s: upstream.mock_brokers: the embedded mock cluster lives inside the eosproxy "
             "process and cannot be reached from here; the dlq tools need a real cluster "
             "(upstream.bootstrap)",
             path);
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

/*
 * A consumer for topic and its partition count: 0 with *rk and *parts, or
 * the exit code after a message (2 when the topic does not exist).
 */
static int open_topic(const config_t *cfg, const char *topic, rd_kafka_t **rk, int *parts)
{
    char err[512];
    if (strlen(topic) > POLICY_TOPIC_MAX)
        return fail(EXIT_USAGE, "topic name longer than 249 bytes: %.60s...", topic);
    *rk = new_consumer(cfg, topic, err, sizeof(err));
    if (!*rk)
        return fail(EXIT_FAILED, "%s", err);
    *parts = topic_partitions(*rk, topic, err, sizeof(err));
    int code = *parts > 0 ? 0 : *parts == 0 ? EXIT_USAGE : EXIT_FAILED;
    if (*parts == 0)
        fail(code, "topic %s not found in the cluster at %s", topic, cfg->upstream.bootstrap);
    else if (*parts < 0)
        fail(code, "%s (cluster %s)", err, cfg->upstream.bootstrap);
    if (code) {
        close_consumer(*rk);
        *rk = NULL;
    }
    return code;
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
        print_value_inline(f, val, len, full);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_PARTITION) == 0) {
        fprintf(f, "%" PRId32 " (int32)", o.partition);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_OFFSET) == 0) {
        fprintf(f, "%" PRId64 " (int64)", o.offset);
    } else if (r > 0 && strcmp(name, KDLT_ORIGINAL_TIMESTAMP) == 0) {
        fprintf(f, "%" PRId64 " (%s)", o.timestamp, fmt_time(o.timestamp, ts, sizeof(ts)));
    } else {
        print_value_inline(f, val, len, full);
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
    record_origin(m, &o);
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

static int cmd_show(const dlq_opts_t *o, config_t *cfg)
{
    rd_kafka_t *rk = NULL;
    int parts = 0;
    int64_t lo, hi;
    char err[512] = "";
    int code = open_topic(cfg, o->topic, &rk, &parts);
    if (code)
        return code;
    if (o->partition >= parts) {
        code = fail(EXIT_USAGE, "%s has %d partitions (0..%d); there is no partition %d", o->topic,
                    parts, parts - 1, (int)o->partition);
    } else if (watermarks(rk, o->topic, o->partition, &lo, &hi, err, sizeof(err))) {
        code = fail(EXIT_FAILED, "%s", err);
    } else if (o->offset < lo || o->offset >= hi) {
        code = fail(EXIT_USAGE,
                    "offset %" PRId64 " is not in %s [%d], which holds %" PRId64 "..%" PRId64 "%s",
                    o->offset, o->topic, (int)o->partition, lo, hi - 1, lo == hi ? " (empty)" : "");
    } else {
        show_state_t st = {o->offset, -1, 0, o->full};
        span_t sp = {o->partition, o->offset, hi, 0};
        if (read_spans(rk, o->topic, &sp, 1, show_record, NULL, &st, err, sizeof(err)))
            code = fail(EXIT_FAILED, "%s", err);
        else if (!st.shown)
            code = fail(EXIT_USAGE,
                        "no record at offset %" PRId64 " of %s [%d] (a transaction marker, or "
                        "aborted or compacted); the next record is at offset %" PRId64,
                        o->offset, o->topic, (int)o->partition, st.found_next);
    }
    close_consumer(rk);
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

static int collect_entry(void *arg, const rd_kafka_message_t *m)
{
    newest_t *nw = arg;
    kdlt_origin_t o;
    if (nw->n == nw->cap)
        return 0;
    entry_t *e = &nw->e[nw->n++];
    record_origin(m, &o);
    e->partition = m->partition;
    e->offset = m->offset;
    e->timestamp = rd_kafka_message_timestamp(m, NULL);
    size_t tl = o.topic_len < POLICY_TOPIC_MAX ? o.topic_len : POLICY_TOPIC_MAX;
    memcpy(e->topic, o.topic ? o.topic : "", o.topic ? tl : 0);
    e->topic[o.topic ? tl : 0] = '\0';
    e->orig_partition = o.partition;
    e->orig_offset = o.offset;
    size_t rl = o.reason_len < DLQ_INLINE_MAX ? o.reason_len : DLQ_INLINE_MAX;
    memcpy(e->reason, o.reason ? o.reason : "", o.reason ? rl : 0);
    e->reason[o.reason ? rl : 0] = '\0';
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
        if (watermarks(rk, topic, p, &ts->lo[p], &ts->hi[p], err, errlen))
            return -1;
        ts->records += ts->hi[p] - ts->lo[p];
    }
    ts->progress_known = committed(rk, topic, ts->parts, ts->done, why, sizeof(why)) == 0;
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
    span_t *sp = calloc((size_t)ts->parts, sizeof(*sp));
    nw->cap = (size_t)want * (size_t)ts->parts;
    nw->e = calloc(nw->cap ? nw->cap : 1, sizeof(*nw->e));
    int r = -1;
    if (sp && nw->e) {
        for (int p = 0; p < ts->parts; p++) {
            sp[p].partition = p;
            sp[p].end = ts->hi[p];
            sp[p].start = ts->hi[p] - want > ts->lo[p] ? ts->hi[p] - want : ts->lo[p];
        }
        r = read_spans(rk, topic, sp, (size_t)ts->parts, collect_entry, NULL, nw, err, errlen);
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
    int code = open_topic(cfg, topic, &rk, &ts.parts);
    if (code)
        return code;
    ts.lo = calloc((size_t)ts.parts, sizeof(int64_t));
    ts.hi = calloc((size_t)ts.parts, sizeof(int64_t));
    ts.done = calloc((size_t)ts.parts, sizeof(int64_t));
    if (!ts.lo || !ts.hi || !ts.done)
        code = fail(EXIT_FAILED, "out of memory");
    else if (topic_stats(rk, topic, &ts, err, sizeof(err)) ||
             (want > 0 && topic_newest(rk, topic, &ts, want, &nw, err, sizeof(err))))
        code = fail(EXIT_FAILED, "%s", err);
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
    close_consumer(rk);
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
    rd_kafka_t *rk = new_consumer(cfg, NULL, err, sizeof(err));
    if (!rk)
        return fail(-1, "%s", err);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md, DLQ_TIMEOUT_MS);
    close_consumer(rk);
    if (e)
        return fail(-1, "metadata of the cluster at %s: %s", cfg->upstream.bootstrap,
                    rd_kafka_err2str(e));
    *out = calloc((size_t)(*md)->topic_cnt + 1, sizeof(char *));
    if (!*out)
        return fail(-1, "out of memory");
    int n = 0;
    for (int i = 0; i < (*md)->topic_cnt; i++) {
        const char *name = (*md)->topics[i].topic;
        if (!(*md)->topics[i].err && is_config_dlq(cfg->policy, name))
            (*out)[n++] = (char *)name;
    }
    qsort(*out, (size_t)n, sizeof(char *), name_cmp);
    return n;
}

static int cmd_list(const dlq_opts_t *o, config_t *cfg)
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
    int n = config_dlqs(cfg, &md, &names), code = n < 0 ? EXIT_FAILED : EXIT_DONE;
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
    return code == EXIT_USAGE ? EXIT_FAILED : code; /* a topic deleted meanwhile */
}

/* ---------------------------------------------------------------- replay */

#define DLQ_TXN_TIMEOUT_MS 60000 /* one commit (it flushes the transaction's records) */
#define DLQ_TXN_TRIES 3          /* attempts at a retriable transaction call */
#define DLQ_PROGRESS_MS 1000     /* between progress lines */

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
    span_t *spans;
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
        rdkconf_set(conf, "transactional.id", replay_id(rp->topic, id, sizeof(id)), err, errlen) ||
        rdkconf_set(conf, "linger.ms", "5", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
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
            rp->cur[span_of(rp->spans, rp->nspans, offs->elems[i].partition) - rp->spans] =
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
    int parts = topic_partitions(rp->consumer, name, rp->err, sizeof(rp->err));
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
    rd_kafka_headers_t *in = NULL;
    size_t nh = 0, kept = 0;
    const char *name;
    const void *val;
    size_t len;
    if (!rd_kafka_message_headers(m, &in))
        nh = rd_kafka_header_cnt(in);
    for (size_t i = 0; i < nh && !rd_kafka_header_get_all(in, i, &name, &val, &len); i++)
        kept += !dropped_header(name);
    printf("would write %s -> %s [", from, topic);
    printf(partition >= 0 ? "%" PRId32 "]" : "partitioner]", partition);
    printf(" timestamp %" PRId64 ", key ", timestamp);
    print_value_inline(stdout, m->key, m->key_len, 0);
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
 * Replays one DLQ record (record_fn): routes it by its DLT headers,
 * produces it (or prints it on --dry-run), advances the progress and
 * commits every --commit-every records.
 */
static int replay_record(void *arg, const rd_kafka_message_t *m)
{
    replay_t *rp = arg;
    kdlt_origin_t o;
    char from[DLQ_NAME_MAX + 48], topic[POLICY_TOPIC_MAX + 1];
    size_t i = (size_t)(span_of(rp->spans, rp->nspans, m->partition) - rp->spans);
    snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, rp->topic, m->partition, m->offset);
    record_origin(m, &o);
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
        span_t *s = &rp->spans[i];
        int64_t lo, hi;
        if (watermarks(rp->consumer, rp->topic, s->partition, &lo, &hi, rp->err, sizeof(rp->err)))
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
        return fail(EXIT_FAILED, "out of memory");
    }
    for (size_t i = 0; i < rp->nspans; i++)
        rp->spans[i].partition = o->partition >= 0 ? o->partition : (int32_t)i;
    int code = 0;
    /* The producer first: init_transactions aborts what a killed run left
     * open, and only then is the committed progress final. */
    if (!o->dry_run && !(rp->producer = new_producer(rp)))
        code = fail(EXIT_FAILED, "%s", rp->err);
    else if (rp->producer &&
             txn_error(rp, "init_transactions",
                       rd_kafka_init_transactions(rp->producer, DLQ_TXN_TIMEOUT_MS)))
        code = fail(EXIT_FAILED, "%s", rp->err);
    else if (committed(rp->consumer, rp->topic, parts, progress, rp->err, sizeof(rp->err)) ||
             replay_plan(rp, progress))
        code = fail(EXIT_FAILED, "%s", rp->err);
    free(progress);
    return code;
}

static void replay_close(replay_t *rp)
{
    if (rp->producer)
        rd_kafka_destroy(rp->producer);
    close_consumer(rp->consumer);
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
    int r = read_spans(rp->consumer, rp->topic, rp->spans, rp->nspans, replay_record, replay_tick,
                       rp, rp->err, sizeof(rp->err));
    if (!r && !rp->o->dry_run)
        r = txn_commit(rp, !rp->stopped && !rp->halted);
    r = r || rp->halted;
    if (r && rp->producer)
        txn_abort(rp);
    progress_line(rp, 1);
    replay_summary(rp);
    if (r)
        return fail(EXIT_FAILED,
                    "replay of %s failed: %s (what was committed stays replayed; "
                    "run again to continue)",
                    rp->topic, rp->err);
    return rp->unroutable ? EXIT_FAILED : EXIT_DONE;
}

static int cmd_replay(const dlq_opts_t *o, config_t *cfg)
{
    replay_t rp;
    int parts = 0;
    memset(&rp, 0, sizeof(rp));
    rp.o = o;
    rp.cfg = cfg;
    rp.topic = o->topic;
    if (o->from >= 0 && o->to >= 0 && o->from > o->to)
        return fail(EXIT_USAGE, "--from %" PRId64 " is after --to %" PRId64, o->from, o->to);
    if (o->again && o->from < 0)
        fprintf(stderr, "eosproxy dlq replay: --again without --from replays from the start\n");
    int code = open_topic(cfg, o->topic, &rp.consumer, &parts);
    if (code)
        return code;
    if (o->partition >= parts)
        code = fail(EXIT_USAGE, "%s has %d partitions (0..%d); there is no partition %d", o->topic,
                    parts, parts - 1, (int)o->partition);
    if (!code)
        code = replay_open(&rp, parts);
    if (!code)
        code = replay_run(&rp);
    if (o->metrics_file && !o->dry_run && rp.producer) {
        char err[512];
        if (metrics_add(o->metrics_file, o->topic, rp.replayed, err, sizeof(err)))
            code = fail(EXIT_FAILED, "%s", err);
    }
    replay_close(&rp);
    return code;
}

/* ------------------------------------------------------------- dispatch */

static const dlq_cmd_t commands[] = {
    {"list", list_opts, 0, 1, help_list, cmd_list},
    {"show", show_opts, 2, 2, help_show, cmd_show},
    {"replay", replay_opts, 1, 1, help_replay, cmd_replay},
};

int dlqtool_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(help_dlq, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(help_dlq, stdout);
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const dlq_cmd_t *c = &commands[i];
        if (strcmp(argv[1], c->name) != 0)
            continue;
        dlq_opts_t o = {
            .partition = -1, .from = -1, .to = -1, .newest = -1, .commit_every = DLQ_COMMIT_EVERY};
        int r = parse_args(c, argc - 1, argv + 1, &o);
        if (r)
            return r > 0 ? EXIT_DONE : EXIT_USAGE;
        if (c->run == cmd_show && o.partition < 0)
            o.partition = 0;
        config_t *cfg = load_config(o.config);
        if (!cfg)
            return EXIT_USAGE;
        int code = c->run(&o, cfg);
        config_free(cfg);
        return fflush(stdout) == 0 ? code : EXIT_FAILED;
    }
    fprintf(stderr, "eosproxy dlq: unknown subcommand '%s' (list, show or replay)\n\n", argv[1]);
    print_usage(stderr, help_dlq);
    return EXIT_USAGE;
}
