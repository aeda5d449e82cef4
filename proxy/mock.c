/*
 * mock.c - embedded librdkafka mock cluster. See mock.h.
 */
#include "mock.h"

#include "log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

struct mock {
    rd_kafka_t *rk; /* the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mc;
};

/* 1 if a topic rule names one exact topic (no glob characters). */
static int is_exact(const char *match)
{
    return strpbrk(match, "*?") == NULL;
}

struct mock *mock_new(const config_t *cfg)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    struct mock *m = calloc(1, sizeof(*m));
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!m->rk) {
        log_error("mock: cannot create librdkafka handle: %s", err);
        rd_kafka_conf_destroy(conf);
        free(m);
        return NULL;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, cfg->upstream.mock_brokers);
    if (!m->mc) {
        log_error("mock: cannot start a %d-broker mock cluster", cfg->upstream.mock_brokers);
        mock_free(m);
        return NULL;
    }
    for (size_t i = 0; i < cfg->policy->n; i++) {
        const char *name = cfg->policy->rules[i].match;
        if (is_exact(name))
            rd_kafka_mock_topic_create(m->mc, name, cfg->upstream.mock_partitions,
                                       cfg->upstream.mock_brokers < 3 ? cfg->upstream.mock_brokers
                                                                      : 3);
    }
    log_info("mock: %d-broker librdkafka mock cluster at %s", cfg->upstream.mock_brokers,
             mock_bootstrap(m));
    return m;
}

const char *mock_bootstrap(const struct mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

void mock_free(struct mock *m)
{
    if (!m)
        return;
    if (m->mc)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    free(m);
}
