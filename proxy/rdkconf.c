/*
 * rdkconf.c - upstream.* settings as a librdkafka configuration. See rdkconf.h.
 */
#include "rdkconf.h"

#include <stdio.h>

int rdkconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "librdkafka %s: %s", name, why);
    return -1;
}

static const char *mechanism_name(sasl_mech_t m)
{
    switch (m) {
    case SASL_PLAIN:
        return "PLAIN";
    case SASL_SCRAM_SHA_256:
        return "SCRAM-SHA-256";
    case SASL_SCRAM_SHA_512:
        return "SCRAM-SHA-512";
    default:
        return NULL;
    }
}

static int set_tls(rd_kafka_conf_t *conf, const config_t *cfg, char *err, size_t errlen)
{
    const char *ca = cfg->upstream.tls.ca_file;
    int verify = cfg->upstream.tls.verify;
    if (ca && rdkconf_set(conf, "ssl.ca.location", ca, err, errlen))
        return -1;
    if (rdkconf_set(conf, "enable.ssl.certificate.verification", verify ? "true" : "false", err,
                    errlen) ||
        rdkconf_set(conf, "ssl.endpoint.identification.algorithm", verify ? "https" : "none", err,
                    errlen))
        return -1;
    if (cfg->upstream.tls.cert_file &&
        (rdkconf_set(conf, "ssl.certificate.location", cfg->upstream.tls.cert_file, err, errlen) ||
         rdkconf_set(conf, "ssl.key.location", cfg->upstream.tls.key_file, err, errlen)))
        return -1;
    return 0;
}

static int set_security(rd_kafka_conf_t *conf, const config_t *cfg, char *err, size_t errlen)
{
    int tls = cfg->upstream.tls.enabled;
    const char *mech = mechanism_name(cfg->upstream.sasl.mechanism);
    const char *proto = mech ? (tls ? "sasl_ssl" : "sasl_plaintext") : (tls ? "ssl" : "plaintext");
    if (rdkconf_set(conf, "security.protocol", proto, err, errlen))
        return -1;
    if (tls && set_tls(conf, cfg, err, errlen))
        return -1;
    if (mech && (rdkconf_set(conf, "sasl.mechanisms", mech, err, errlen) ||
                 rdkconf_set(conf, "sasl.username", cfg->upstream.sasl.username, err, errlen) ||
                 rdkconf_set(conf, "sasl.password", cfg->upstream.sasl.password, err, errlen)))
        return -1;
    return 0;
}

rd_kafka_conf_t *rdkconf_new(const config_t *cfg, const char *bootstrap, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        snprintf(err, errlen, "librdkafka: out of memory");
        return NULL;
    }
    if (rdkconf_set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
        rdkconf_set(conf, "client.id", "eosproxy", err, errlen) ||
        rdkconf_set(conf, "log_level", "4", err, errlen) || set_security(conf, cfg, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}
