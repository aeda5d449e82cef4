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
 * Replay is idempotent: its progress commits ride in the Kafka transactions
 * that write the records back (dlqreplay.c), so a read_committed reader of
 * the original topic sees each replayed record exactly once. Every read
 * ends at the high watermark taken when it starts, at the end of the
 * partition, or after a time without progress (dlqread.h).
 *
 * This file is the command line: help texts, options, the config, the
 * topic a subcommand opens, and dispatch. The subcommands are dlqshow.c
 * (list, show) and dlqreplay.c (replay); both read through dlqread.c.
 */
#include "dlqtool.h"

#include "dlqread.h"
#include "dlqreplay.h"
#include "dlqshow.h"
#include "policy.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_COMMIT_EVERY 500 /* records per replay transaction (default) */
#define DLQ_NEWEST_MAX 1000  /* --newest upper bound */

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

/* ----------------------------------------------------------------- setup */

int dlq_fail(int code, const char *fmt, ...)
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
        dlq_fail(DLQ_EXIT_USAGE, "%s", err);
        return NULL;
    }
    if (cfg->upstream.mock_brokers > 0 || !cfg->upstream.bootstrap) {
        dlq_fail(DLQ_EXIT_USAGE,
                 "%s: upstream.mock_brokers: the embedded mock cluster lives inside the eosproxy "
                 "process and cannot be reached from here; the dlq tools need a real cluster "
                 "(upstream.bootstrap)",
                 path);
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

int dlq_open_topic(const config_t *cfg, const char *topic, int32_t partition, rd_kafka_t **rk,
                   int *parts)
{
    char err[512];
    if (strlen(topic) > POLICY_TOPIC_MAX)
        return dlq_fail(DLQ_EXIT_USAGE, "topic name longer than 249 bytes: %.60s...", topic);
    *rk = dlqread_consumer_new(cfg, topic, err, sizeof(err));
    if (!*rk)
        return dlq_fail(DLQ_EXIT_FAILED, "%s", err);
    *parts = dlqread_partitions(*rk, topic, err, sizeof(err));
    int code = *parts > 0 ? 0 : *parts == 0 ? DLQ_EXIT_USAGE : DLQ_EXIT_FAILED;
    if (*parts == 0)
        dlq_fail(code, "topic %s not found in the cluster at %s", topic, cfg->upstream.bootstrap);
    else if (*parts < 0)
        dlq_fail(code, "%s (cluster %s)", err, cfg->upstream.bootstrap);
    else if (partition >= *parts)
        code = dlq_fail(DLQ_EXIT_USAGE, "%s has %d partitions (0..%d); there is no partition %d",
                        topic, *parts, *parts - 1, (int)partition);
    if (code) {
        dlqread_consumer_close(*rk);
        *rk = NULL;
    }
    return code;
}

/* ------------------------------------------------------------- dispatch */

static const dlq_cmd_t commands[] = {
    {"list", list_opts, 0, 1, help_list, dlqshow_cmd_list},
    {"show", show_opts, 2, 2, help_show, dlqshow_cmd_show},
    {"replay", replay_opts, 1, 1, help_replay, dlqreplay_cmd},
};

int dlqtool_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(help_dlq, stderr);
        return DLQ_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(help_dlq, stdout);
        return DLQ_EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const dlq_cmd_t *c = &commands[i];
        if (strcmp(argv[1], c->name) != 0)
            continue;
        dlq_opts_t o = {
            .partition = -1, .from = -1, .to = -1, .newest = -1, .commit_every = DLQ_COMMIT_EVERY};
        int r = parse_args(c, argc - 1, argv + 1, &o);
        if (r)
            return r > 0 ? DLQ_EXIT_DONE : DLQ_EXIT_USAGE;
        if (c->run == dlqshow_cmd_show && o.partition < 0)
            o.partition = 0;
        config_t *cfg = load_config(o.config);
        if (!cfg)
            return DLQ_EXIT_USAGE;
        int code = c->run(&o, cfg);
        config_free(cfg);
        return fflush(stdout) == 0 ? code : DLQ_EXIT_FAILED;
    }
    fprintf(stderr, "eosproxy dlq: unknown subcommand '%s' (list, show or replay)\n\n", argv[1]);
    print_usage(stderr, help_dlq);
    return DLQ_EXIT_USAGE;
}
