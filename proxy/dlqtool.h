/*
 * dlqtool.h - `eosproxy dlq`: the operator tools for dead-letter topics
 * (list, show, replay), run as a separate process against the real cluster
 * named by the config's upstream.* settings. See dlqtool.c.
 */
#ifndef EOSPROXY_DLQTOOL_H
#define EOSPROXY_DLQTOOL_H

/*
 * Runs `eosproxy dlq SUBCOMMAND ...`: argv[0] is "dlq". Returns the process
 * exit code: 0 done, 1 failed against the cluster (or a replay left records
 * behind), 2 bad usage or input (unknown subcommand, missing argument,
 * unreadable config, a mock-cluster config, topic or offset not found).
 */
int dlqtool_main(int argc, char **argv);

#endif
