/*
 * redisurl.c - redis.url's three forms. See redisurl.h.
 *
 *   url      = scheme "://" hosts [ "/" path ]
 *   scheme   = "redis" | "redis+cluster" | "redis+sentinel"
 *   hosts    = hostport *( "," hostport )        (one for "redis")
 *   hostport = host ":" port | "[" ipv6 "]" ":" port
 *   path     = db                                 (redis)
 *            | name [ "/" db ]                    (redis+sentinel; none for cluster)
 */
#include "redisurl.h"

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char FORM[] =
    "must be \"redis://host:port[/db]\", \"redis+cluster://host:port[,host:port...]\" or "
    "\"redis+sentinel://host:port[,host:port...]/master[/db]\"";

void redisurl_free(struct redisurl *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->nhosts && i < REDISURL_MAX_HOSTS; i++) {
        free(u->hosts[i].host);
        u->hosts[i].host = NULL;
    }
    u->nhosts = 0;
}

/* "0".."2147483647" exactly; -1 otherwise. */
static int parse_db(const char *s, size_t n)
{
    if (n == 0 || n > 10)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v > 2147483647u ? -1 : (int)v;
}

/* The comma-separated host list a[0..n) into u->hosts. */
static const char *parse_hosts(const char *a, size_t n, struct redisurl *u)
{
    if (memchr(a, '@', n))
        return "credentials in the URL are not supported by this version of eosproxy";
    const char *p = a, *end = a + n;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        char entry[300];
        if (len == 0)
            return "has an empty host:port entry";
        if (len >= sizeof(entry))
            return "has a host:port entry that is too long";
        if (u->nhosts == REDISURL_MAX_HOSTS)
            return "names more than 16 hosts";
        memcpy(entry, p, len);
        entry[len] = '\0';
        struct redisurl_host *h = &u->hosts[u->nhosts];
        if (config_parse_hostport(entry, &h->host, &h->port) < 0)
            return "each host must be \"host:port\" or \"[ipv6]:port\" with port 1..65535";
        u->nhosts++;
        if (!comma)
            return NULL;
        p = comma + 1;
    }
}

/* A Sentinel master name: printable, no blank, no '/'. */
static const char *parse_master(const char *s, size_t n, struct redisurl *u)
{
    if (n == 0)
        return "needs the master's name: \"redis+sentinel://host:port/mymaster\"";
    if (n > REDISURL_MAX_NAME)
        return "has a master name longer than 128 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '@')
            return "has a master name with a blank or a character that is not printable";
    }
    memcpy(u->master, s, n);
    u->master[n] = '\0';
    return NULL;
}

/* The part after the hosts (path points at '/' or is empty). */
static const char *parse_path(const char *path, struct redisurl *u)
{
    if (u->kind == REDISURL_CLUSTER) {
        if (*path)
            return "a Redis Cluster has database 0 only: redis+cluster:// takes no /path";
        return NULL;
    }
    if (u->kind == REDISURL_SINGLE) {
        if (*path && (u->db = parse_db(path + 1, strlen(path + 1))) < 0)
            return "the /db part must be a database number";
        return NULL;
    }
    if (!*path)
        return "needs the master's name: \"redis+sentinel://host:port/mymaster\"";
    const char *name = path + 1;
    const char *slash = strchr(name, '/');
    size_t nlen = slash ? (size_t)(slash - name) : strlen(name);
    const char *why = parse_master(name, nlen, u);
    if (why)
        return why;
    if (slash && (u->db = parse_db(slash + 1, strlen(slash + 1))) < 0)
        return "the /db part after the master name must be a database number";
    return NULL;
}

const char *redisurl_parse(const char *s, struct redisurl *u)
{
    static const struct {
        const char *prefix;
        enum redisurl_kind kind;
    } schemes[] = {
        {"redis://", REDISURL_SINGLE},
        {"redis+cluster://", REDISURL_CLUSTER},
        {"redis+sentinel://", REDISURL_SENTINEL},
    };
    memset(u, 0, sizeof(*u));
    if (!s)
        return FORM;
    if (strncmp(s, "rediss:", 7) == 0 || strncmp(s, "rediss+", 7) == 0)
        return "rediss:// (TLS) is not supported by this version of eosproxy";
    const char *a = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(s, schemes[i].prefix, n) == 0) {
            a = s + n;
            u->kind = schemes[i].kind;
        }
    }
    if (!a)
        return FORM;
    size_t n = strcspn(a, "/");
    const char *why = parse_hosts(a, n, u);
    if (!why && u->kind == REDISURL_SINGLE && u->nhosts > 1)
        why = "redis:// takes one host:port (redis+cluster:// takes seed nodes)";
    if (!why)
        why = parse_path(a + n, u);
    if (why)
        redisurl_free(u);
    return why;
}
