/*
 * mock.h - the embedded librdkafka mock cluster (upstream.mock_brokers).
 *
 * For `make run`, demos and tests: a Kafka-speaking cluster of N brokers
 * inside the eosproxy process, on its own librdkafka threads (it never
 * touches the event loop). Topics are auto-created on first use with the
 * mock's default partition count; exact-name topic rules are pre-created
 * with upstream.mock_partitions partitions.
 */
#ifndef EOSPROXY_MOCK_H
#define EOSPROXY_MOCK_H

#include "config.h"

struct mock;

/* Starts the cluster. Returns NULL (logged) on failure. */
struct mock *mock_new(const config_t *cfg);
/* "host:port,host:port" of the mock brokers; owned by the mock. */
const char *mock_bootstrap(const struct mock *m);
/* Stops the cluster; mock_free(NULL) is safe. */
void mock_free(struct mock *m);

#endif
