/*
 * dlqreplay.h - `eosproxy dlq replay`: the records of a dead-letter topic
 * written back to their original topics, exactly once, by a transactional
 * producer whose transactions also carry the replay's progress (see
 * dlqreplay.c).
 */
#ifndef EOSPROXY_DLQREPLAY_H
#define EOSPROXY_DLQREPLAY_H

#include "config.h"
#include "dlqtool.h"

/*
 * `replay` of o->topic with the options in o (--from/--to, --partition,
 * --dry-run, --again, --commit-every, --max-records, --rate,
 * --metrics-file). A summary on stdout, progress on stderr. An exit code:
 * 1 also when records without an original topic were left in place.
 */
int dlqreplay_cmd(const dlq_opts_t *o, config_t *cfg);

#endif
