/*
 * rcluster.c - Redis Cluster slot routing, the pure part. See rcluster.h.
 *
 * CLUSTER SLOTS answers (Redis 3.0 to 7.x; 7.0 adds a fourth field, the
 * node's metadata map, which is skipped):
 *
 *   reply   = *N range...                         (N <= 16384)
 *   range   = *M start end master replica...      (M >= 3)
 *   start   = :0..16383        end = :start..16383
 *   master  = *K host port [id [metadata]]        (K >= 2)
 *   host    = $ip-or-name | $"" (the node asked) | $"?" (unknown)
 *   port    = :0..65535        (0: no usable endpoint)
 *
 * Redirections: "MOVED <slot> <host>:<port>" and "ASK <slot> <host>:<port>",
 * host possibly empty (Redis 7: the endpoint the client used) and possibly
 * an IPv6 address (the port follows the last ':').
 */
#include "rcluster.h"

#include <hiredis/hiredis.h>
#include <string.h>
#include <strings.h>

static const uint16_t crc16tab[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t rcluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc16tab[((crc >> 8) ^ p[i]) & 0xff]);
    return crc;
}

unsigned rcluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return rcluster_crc16(open + 1, (size_t)(close - open - 1)) & (RCLUSTER_SLOTS - 1);
    }
    return rcluster_crc16(key, len) & (RCLUSTER_SLOTS - 1);
}

/* ---------------------------------------------------------------- RESP */

/* Reads "<c><digits>\r\n" at *p (before end) into *n; 0, or -1. */
static int read_len(const char **p, const char *end, char c, size_t *n)
{
    const char *s = *p;
    if (s >= end || *s != c)
        return -1;
    s++;
    size_t v = 0, digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 9)
            return -1; /* no bulk or count here is near 10^9 */
        v = v * 10 + (size_t)(*s - '0');
        s++;
    }
    if (digits == 0 || end - s < 2 || s[0] != '\r' || s[1] != '\n')
        return -1;
    *p = s + 2;
    *n = v;
    return 0;
}

/* Reads one bulk string at *p into a view; 0, or -1. */
static int read_bulk(const char **p, const char *end, const char **s, size_t *n)
{
    if (read_len(p, end, '$', n) < 0 || (size_t)(end - *p) < *n + 2)
        return -1;
    *s = *p;
    if ((*p)[*n] != '\r' || (*p)[*n + 1] != '\n')
        return -1;
    *p += *n + 2;
    return 0;
}

/* 1 if name[0..n) is one of the scripting commands (keys after numkeys). */
static int is_script_cmd(const char *name, size_t n)
{
    static const char *const names[] = {"EVAL",       "EVALSHA", "EVAL_RO",
                                        "EVALSHA_RO", "FCALL",   "FCALL_RO"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
            return 1;
    }
    return 0;
}

/* numkeys[0..n) as a small decimal; -1 if it is not one. */
static long small_number(const char *s, size_t n)
{
    if (n == 0 || n > 6)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int rcluster_command_key(const char *resp, size_t len, const char **key, size_t *klen)
{
    const char *p = resp, *end = resp + len;
    size_t argc;
    if (read_len(&p, end, '*', &argc) < 0 || argc == 0)
        return -1;
    const char *argv[4] = {NULL, NULL, NULL, NULL};
    size_t lens[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < argc; i++) {
        const char *s;
        size_t n;
        if (read_bulk(&p, end, &s, &n) < 0)
            return -1;
        if (i < 4) {
            argv[i] = s;
            lens[i] = n;
        }
    }
    if (p != end)
        return -1;
    size_t at = 1;
    if (is_script_cmd(argv[0], lens[0])) {
        if (argc < 4 || small_number(argv[2], lens[2]) <= 0)
            return 0;
        at = 3;
    }
    if (argc <= at)
        return 0;
    *key = argv[at];
    *klen = lens[at];
    return 1;
}

/* ---------------------------------------------------------------- CLUSTER SLOTS */

size_t rcluster_map_covered(const struct rcluster_map *m)
{
    size_t n = 0;
    for (size_t i = 0; i < RCLUSTER_SLOTS; i++)
        n += m->slot[i] != RCLUSTER_NO_NODE;
    return n;
}

/* 1 if s[0..n) can be a host name or address (no blank, no control). */
static int host_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f)
            return 0;
    }
    return 1;
}

/* The index of host:port in m, added if new; -1 when m is full. */
static int node_index(struct rcluster_map *m, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hlen &&
            memcmp(m->nodes[i].host, host, hlen) == 0)
            return (int)i;
    }
    if (m->nnodes == RCLUSTER_MAX_NODES)
        return -1;
    struct rcluster_addr *a = &m->nodes[m->nnodes];
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    a->port = port;
    return (int)m->nnodes++;
}

/* One "range" element into m; 0, or -1 with *why. */
static int parse_range(const redisReply *e, const char *self_host, struct rcluster_map *m,
                       const char **why)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !e->element)
        return *why = "a slot range is not an array of start, end, master", -1;
    const redisReply *s = e->element[0], *t = e->element[1], *ma = e->element[2];
    if (!s || !t || !ma || s->type != REDIS_REPLY_INTEGER || t->type != REDIS_REPLY_INTEGER ||
        s->integer < 0 || t->integer < s->integer || t->integer >= RCLUSTER_SLOTS)
        return *why = "a slot range has a bad start or end", -1;
    if (ma->type != REDIS_REPLY_ARRAY || ma->elements < 2 || !ma->element || !ma->element[0] ||
        !ma->element[1] || ma->element[0]->type != REDIS_REPLY_STRING ||
        ma->element[1]->type != REDIS_REPLY_INTEGER)
        return *why = "a slot range's master is not host, port", -1;
    const char *host = ma->element[0]->str;
    size_t hlen = (size_t)ma->element[0]->len;
    long long port = ma->element[1]->integer;
    if (port < 0 || port > 65535)
        return *why = "a master's port is out of range", -1;
    if (hlen == 0 && self_host) {
        host = self_host;
        hlen = strlen(self_host);
    }
    if (hlen == 0 || (hlen == 1 && host[0] == '?') || port == 0)
        return 0; /* no usable endpoint: the range stays unserved */
    if (hlen > RCLUSTER_HOST_MAX || !host_chars_ok(host, hlen))
        return *why = "a master's host is too long or holds blanks", -1;
    int idx = node_index(m, host, hlen, (int)port);
    if (idx < 0)
        return *why = "more than 128 masters", -1;
    for (long long i = s->integer; i <= t->integer; i++)
        m->slot[i] = (uint16_t)idx;
    return 0;
}

int rcluster_parse_slots(const struct redisReply *r, const char *self_host, struct rcluster_map *m,
                         const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    m->nnodes = 0;
    for (size_t i = 0; i < RCLUSTER_SLOTS; i++)
        m->slot[i] = RCLUSTER_NO_NODE;
    if (!r || r->type != REDIS_REPLY_ARRAY || (r->elements && !r->element)) {
        *why = r && r->type == REDIS_REPLY_ERROR ? "the node answered an error"
                                                 : "the answer is not an array";
        return -1;
    }
    if (r->elements > RCLUSTER_SLOTS) {
        *why = "more slot ranges than slots";
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (!r->element[i] || parse_range(r->element[i], self_host, m, why) < 0) {
            if (!r->element[i])
                *why = "a slot range is missing";
            m->nnodes = 0;
            for (size_t k = 0; k < RCLUSTER_SLOTS; k++)
                m->slot[k] = RCLUSTER_NO_NODE;
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- redirections */

enum rcluster_redirect_kind rcluster_parse_redirect(const char *err, size_t len,
                                                    struct rcluster_redirect *r)
{
    memset(r, 0, sizeof(*r));
    enum rcluster_redirect_kind kind;
    size_t skip;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        kind = RCLUSTER_MOVED;
        skip = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        kind = RCLUSTER_ASK;
        skip = 4;
    } else {
        return RCLUSTER_NOT_REDIRECT;
    }
    const char *p = err + skip, *end = err + len;
    unsigned slot = 0;
    size_t digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
        slot = slot * 10 + (unsigned)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || slot >= RCLUSTER_SLOTS || p >= end || *p++ != ' ')
        return RCLUSTER_NOT_REDIRECT;
    const char *colon = NULL;
    for (const char *q = p; q < end; q++) {
        if (*q == ':')
            colon = q;
    }
    if (!colon)
        return RCLUSTER_NOT_REDIRECT;
    size_t hlen = (size_t)(colon - p);
    if (hlen > RCLUSTER_HOST_MAX || !host_chars_ok(p, hlen))
        return RCLUSTER_NOT_REDIRECT;
    long port = 0;
    digits = 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || ++digits > 5)
            return RCLUSTER_NOT_REDIRECT;
        port = port * 10 + (*q - '0');
    }
    if (digits == 0 || port < 1 || port > 65535)
        return RCLUSTER_NOT_REDIRECT;
    memcpy(r->to.host, p, hlen);
    r->to.host[hlen] = '\0';
    r->to.port = (int)port;
    r->slot = slot;
    r->kind = kind;
    return kind;
}
