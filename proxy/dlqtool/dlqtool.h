/*
 * dlqtool.h - `eosproxy dlq`: the operator tools for dead-letter topics
 * (list, show, replay), run as a separate process against the real cluster
 * named by the config's upstream.* settings. See dlqtool.c.
 *
 * Below dlqtool_main: what the subcommands (dlqshow.c, dlqreplay.c) share
 * with the command line: the parsed options, the exit codes, error output
 * and opening the topic a subcommand works on.
 */
#ifndef EOSPROXY_DLQTOOL_H
#define EOSPROXY_DLQTOOL_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/*
 * Runs `eosproxy dlq SUBCOMMAND ...`: argv[0] is "dlq". Returns the process
 * exit code: 0 done, 1 failed against the cluster (or a replay left records
 * behind), 2 bad usage or input (unknown subcommand, missing argument,
 * unreadable config, a mock-cluster config, topic or offset not found).
 */
int dlqtool_main(int argc, char **argv);

#define DLQ_EXIT_DONE 0
#define DLQ_EXIT_FAILED 1
#define DLQ_EXIT_USAGE 2

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

/* "eosproxy dlq: MESSAGE" on stderr; returns code. */
__attribute__((format(printf, 2, 3))) int dlq_fail(int code, const char *fmt, ...);

/*
 * A consumer for topic and its partition count: 0 with *rk and *parts, or
 * the exit code after a message (2 when the topic does not exist, or has
 * no partition `partition`; -1 asks for none).
 */
int dlq_open_topic(const config_t *cfg, const char *topic, int32_t partition, rd_kafka_t **rk,
                   int *parts);

#endif
