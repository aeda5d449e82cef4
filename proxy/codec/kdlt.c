/*
 * kdlt.c - dead-letter record headers in Spring Kafka's encodings. See kdlt.h.
 */
#include "kdlt.h"

#include <string.h>

void kdlt_put_be32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 3; i >= 0; i--, u >>= 8)
        p[i] = (uint8_t)u;
}

void kdlt_put_be64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        p[i] = (uint8_t)u;
}

int32_t kdlt_get_be32(const uint8_t *p)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u = (u << 8) | p[i];
    return (int32_t)u;
}

int64_t kdlt_get_be64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

const char *kdlt_timestamp_type_name(int timestamp_type)
{
    return timestamp_type == 1 ? "LogAppendTime" : "CreateTime";
}

static void add(kdlt_headers_t *out, const char *name, const void *value, size_t len)
{
    kdlt_header_t *h = &out->h[out->n++];
    h->name = name;
    h->value = value;
    h->len = len;
}

void kdlt_headers_build(const kdlt_origin_t *o, kdlt_headers_t *out)
{
    const char *tt = kdlt_timestamp_type_name(o->timestamp_type);
    out->n = 0;
    kdlt_put_be32(out->scratch, o->partition);
    kdlt_put_be64(out->scratch + 4, o->offset);
    kdlt_put_be64(out->scratch + 12, o->timestamp);
    add(out, KDLT_ORIGINAL_TOPIC, o->topic, o->topic_len);
    add(out, KDLT_ORIGINAL_PARTITION, out->scratch, 4);
    add(out, KDLT_ORIGINAL_OFFSET, out->scratch + 4, 8);
    add(out, KDLT_ORIGINAL_TIMESTAMP, out->scratch + 12, 8);
    add(out, KDLT_ORIGINAL_TIMESTAMP_TYPE, tt, strlen(tt));
    if (o->group)
        add(out, KDLT_ORIGINAL_CONSUMER_GROUP, o->group, o->group_len);
    add(out, KDLT_EXCEPTION_FQCN, KDLT_FQCN_VALUE, sizeof(KDLT_FQCN_VALUE) - 1);
    add(out, KDLT_EXCEPTION_MESSAGE, o->reason ? o->reason : "", o->reason ? o->reason_len : 0);
}

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

int kdlt_is_dlt_header(const char *name, size_t len)
{
    static const char *const all[] = {
        KDLT_ORIGINAL_TOPIC,     KDLT_ORIGINAL_PARTITION,      KDLT_ORIGINAL_OFFSET,
        KDLT_ORIGINAL_TIMESTAMP, KDLT_ORIGINAL_TIMESTAMP_TYPE, KDLT_ORIGINAL_CONSUMER_GROUP,
        KDLT_EXCEPTION_FQCN,     KDLT_EXCEPTION_MESSAGE,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (name_is(name, len, all[i]))
            return 1;
    }
    return 0;
}

int kdlt_header_parse(const char *name, size_t nlen, const uint8_t *value, size_t vlen,
                      kdlt_origin_t *o)
{
    if (!value && vlen)
        return -1;
    if (name_is(name, nlen, KDLT_ORIGINAL_TOPIC)) {
        o->topic = (const char *)value;
        o->topic_len = vlen;
    } else if (name_is(name, nlen, KDLT_ORIGINAL_PARTITION)) {
        if (vlen != 4)
            return -1;
        o->partition = kdlt_get_be32(value);
    } else if (name_is(name, nlen, KDLT_ORIGINAL_OFFSET)) {
        if (vlen != 8)
            return -1;
        o->offset = kdlt_get_be64(value);
    } else if (name_is(name, nlen, KDLT_ORIGINAL_TIMESTAMP)) {
        if (vlen != 8)
            return -1;
        o->timestamp = kdlt_get_be64(value);
    } else if (name_is(name, nlen, KDLT_ORIGINAL_TIMESTAMP_TYPE)) {
        if (vlen == 13 && memcmp(value, "LogAppendTime", 13) == 0)
            o->timestamp_type = 1;
        else if (vlen == 10 && memcmp(value, "CreateTime", 10) == 0)
            o->timestamp_type = 0;
        else
            return -1;
    } else if (name_is(name, nlen, KDLT_ORIGINAL_CONSUMER_GROUP)) {
        o->group = (const char *)value;
        o->group_len = vlen;
    } else if (name_is(name, nlen, KDLT_EXCEPTION_MESSAGE)) {
        o->reason = (const char *)value;
        o->reason_len = vlen;
    } else if (name_is(name, nlen, KDLT_EXCEPTION_FQCN)) {
        /* nothing to keep */
    } else {
        return 0;
    }
    return 1;
}
