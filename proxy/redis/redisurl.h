/*
 * redisurl.h - the three forms of redis.url, parsed once for config.c (which
 * reports what is wrong) and for redisc.c (which connects):
 *
 *   redis://host:port[/db]                                  one server
 *   redis+cluster://host:port[,host:port...]                Redis Cluster seeds
 *   redis+sentinel://host:port[,host:port...]/master[/db]   Sentinels and the
 *                                                           monitored master's name
 *
 * Hosts are names, IPv4 or [IPv6] as config_parse_hostport takes them. A
 * cluster has database 0 only, so its form has no path. Pure: no I/O.
 */
#ifndef EOSPROXY_REDISURL_H
#define EOSPROXY_REDISURL_H

#include <stddef.h>

/* At most this many seeds or sentinels in one url. */
#define REDISURL_MAX_HOSTS 16
/* Longest Sentinel master name accepted. */
#define REDISURL_MAX_NAME 128

enum redisurl_kind { REDISURL_SINGLE = 0, REDISURL_CLUSTER, REDISURL_SENTINEL };

/* One host:port of the url (host is a NUL-terminated copy, no brackets). */
struct redisurl_host {
    char *host;
    int port;
};

/* A parsed url; release with redisurl_free. */
struct redisurl {
    enum redisurl_kind kind;
    size_t nhosts; /* 1 for REDISURL_SINGLE */
    struct redisurl_host hosts[REDISURL_MAX_HOSTS];
    char master[REDISURL_MAX_NAME + 1]; /* REDISURL_SENTINEL only */
    int db;                             /* 0 unless given */
};

/*
 * Parses s into *u. Returns NULL on success (release u with
 * redisurl_free), or a sentence saying what is wrong (u then holds
 * nothing to release).
 */
const char *redisurl_parse(const char *s, struct redisurl *u);

/* Frees the host copies; u may be zeroed or already freed. */
void redisurl_free(struct redisurl *u);

#endif
