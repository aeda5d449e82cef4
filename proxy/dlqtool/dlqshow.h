/*
 * dlqshow.h - `eosproxy dlq list` and `eosproxy dlq show`: what is in a
 * dead-letter topic, printed for an operator (dlqtool.h), and the printing
 * of record bytes they share with the replay's --dry-run.
 */
#ifndef EOSPROXY_DLQSHOW_H
#define EOSPROXY_DLQSHOW_H

#include "config.h"
#include "dlqtool.h"

#include <stddef.h>
#include <stdio.h>

/* `list`: per DLQ topic (o->topic, or every one of cfg in the cluster) its
 * partitions, records, replay progress and newest entries. An exit code. */
int dlqshow_cmd_list(const dlq_opts_t *o, config_t *cfg);

/* `show`: the record at o->offset of o->topic [o->partition], headers
 * decoded. An exit code. */
int dlqshow_cmd_show(const dlq_opts_t *o, config_t *cfg);

/* A header value or key v[0..len) on one line: text in quotes, else hex;
 * cut at a few hundred bytes unless full. */
void dlqshow_value_inline(FILE *f, const void *v, size_t len, int full);

#endif
