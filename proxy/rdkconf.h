/*
 * rdkconf.h - a librdkafka configuration that reaches the cluster the way
 * eosproxy's own connections do: upstream bootstrap, TLS and SASL settings
 * (upstream.*) mapped to librdkafka's properties.
 *
 * Used by the dead-letter writer (dlqw.c) and the `eosproxy dlq` operator
 * tools (dlqread.c, dlqreplay.c).
 */
#ifndef EOSPROXY_RDKCONF_H
#define EOSPROXY_RDKCONF_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/*
 * A new configuration for bootstrap ("host:port,..."; the mock's list when
 * upstream.mock_brokers is used) with cfg's upstream security. Returns a
 * conf the caller owns (rd_kafka_new takes it), or NULL with a message in
 * err[0..errlen).
 */
rd_kafka_conf_t *rdkconf_new(const config_t *cfg, const char *bootstrap, char *err, size_t errlen);

/* Sets one property; 0, or -1 with librdkafka's message in err. */
int rdkconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                size_t errlen);

#endif
