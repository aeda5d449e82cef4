/*
 * dedupidx.c - the deliveries of a dedup scope, kept in Redis for every
 * eosproxy of the scope. See dedupidx.h for the keys and the protocol.
 */
#include "dedupidx.h"

#include "log.h"
#include "metrics.h"
#include "redisc.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDX_PREFIX "eosproxy:"
#define IDX_TAG_LEN 8

/* Append the entries, keep the key for ttl, keep the newest cap. */
static const char index_script[] = "local n=redis.call('RPUSH',KEYS[1],unpack(ARGV,3)) "
                                   "redis.call('PEXPIRE',KEYS[1],ARGV[1]) "
                                   "local c=tonumber(ARGV[2]) "
                                   "if n>c then redis.call('LTRIM',KEYS[1],n-c,-1) end "
                                   "return n";

/* Take the entries at the head below the offset ARGV[1] (20 digits: an
 * entry's first 20 characters compare with it as strings, digits only, so
 * Redis's collation locale does not matter), up to ARGV[2] of them; one
 * string, entries separated by newlines (no key suffix holds one). */
static const char sweep_script[] =
    "local it=redis.call('LRANGE',KEYS[1],0,tonumber(ARGV[2])-1) "
    "local k=0 "
    "for i,v in ipairs(it) do if string.sub(v,1,20)>=ARGV[1] then break end k=i end "
    "if k>0 then redis.call('LTRIM',KEYS[1],k,-1) end "
    "return table.concat(it,'\\n',1,k)";

#define IDX_OFF_DIGITS 20 /* an entry's offset, zero-padded */

/* One commit to sweep. */
struct sweep {
    char *scope, *topic;
    int32_t partition;
    int64_t offset;
    uint64_t ttl_ms;
    unsigned attempts; /* failed ones: dropped after SWEEP_ATTEMPTS */
};

#define SWEEP_ATTEMPTS 100u /* 10 s of ticks */

struct dedupidx {
    struct redisc *rc;
    dedupidx_found_cb *found;
    void *arg;
    char tag[IDX_TAG_LEN + 1];
    /* the index command being staged, and the pipeline it goes into */
    redisc_batch_t *batch;
    char *st_scope; /* its partition, NULL if none is staged */
    char *st_topic;
    int32_t st_partition;
    char st_ttl[24]; /* PEXPIRE */
    char *st_buf;    /* its entries end to end */
    size_t st_used, st_bcap;
    size_t *st_off; /* where each argument starts in st_buf, and its length */
    size_t *st_lens;
    size_t st_n, st_cap;
    /* sweeps waiting (oldest first), and the pipeline in flight */
    struct sweep *q;
    size_t nq;
    uint64_t sweep_id;
    struct sweep *sent;
    size_t nsent;
};

static void sweep_clear(struct sweep *s)
{
    free(s->scope);
    free(s->topic);
    memset(s, 0, sizeof(*s));
}

/* "eosproxy:<scope>:@delivered <topic>/<partition>" (malloc'd), or NULL. */
static char *index_key(const char *scope, const char *topic, size_t tlen, int32_t partition)
{
    size_t n = sizeof(IDX_PREFIX) + strlen(scope) + 12 + tlen + 12;
    char *k = malloc(n);
    if (k && snprintf(k, n, IDX_PREFIX "%s:@delivered %.*s/%d", scope, (int)tlen, topic,
                      (int)partition) < 0) {
        free(k);
        k = NULL;
    }
    return k;
}

struct dedupidx *dedupidx_new(struct redisc *rc, dedupidx_found_cb *found, void *arg,
                              const char *tag)
{
    struct dedupidx *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->rc = rc;
    x->found = found;
    x->arg = arg;
    x->q = calloc(DEDUPIDX_SWEEPS, sizeof(*x->q));
    if (!x->q) {
        free(x);
        return NULL;
    }
    if (tag) {
        snprintf(x->tag, sizeof(x->tag), "%-8.8s", tag);
    } else {
        unsigned char r[IDX_TAG_LEN / 2];
        if (RAND_bytes(r, sizeof(r)) != 1) { /* never seen; still one per process */
            uint32_t v = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
            memcpy(r, &v, sizeof(r));
        }
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(x->tag + 2 * i, 3, "%02x", r[i]);
    }
    return x;
}

static void stage_clear(struct dedupidx *x)
{
    x->st_n = 0;
    x->st_used = 0;
    free(x->st_scope);
    free(x->st_topic);
    x->st_scope = x->st_topic = NULL;
}

void dedupidx_free(struct dedupidx *x)
{
    if (!x)
        return;
    if (x->sweep_id)
        redisc_cancel(x->rc, x->sweep_id);
    stage_clear(x);
    free(x->st_buf);
    free(x->st_off);
    free(x->st_lens);
    redisc_batch_free(x->batch);
    for (size_t i = 0; i < x->nq; i++)
        sweep_clear(&x->q[i]);
    free(x->q);
    for (size_t i = 0; i < x->nsent; i++)
        sweep_clear(&x->sent[i]);
    free(x->sent);
    free(x);
}

const char *dedupidx_tag(const struct dedupidx *x)
{
    return x->tag;
}

/* ---------------------------------------------------------------- index */

/* Moves the staged command into the pipeline (dropped, counted, on OOM). */
static void stage_close(struct dedupidx *x)
{
    char *key = x->st_scope && x->st_n
                    ? index_key(x->st_scope, x->st_topic, strlen(x->st_topic), x->st_partition)
                    : NULL;
    if (!key) { /* nothing staged, or OOM (counted below) */
        if (x->st_scope && x->st_n)
            g_metrics.dedup_index_failures++;
        stage_clear(x);
        return;
    }
    size_t argc = 6 + x->st_n;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    char cap[24];
    int cl = snprintf(cap, sizeof(cap), "%u", DEDUPIDX_CAP);
    if (!x->batch)
        x->batch = redisc_batch_new();
    if (argv && lens && x->batch) {
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = index_script, lens[1] = sizeof(index_script) - 1;
        argv[2] = "1", lens[2] = 1;
        argv[3] = key, lens[3] = strlen(key);
        argv[4] = x->st_ttl, lens[4] = strlen(x->st_ttl);
        argv[5] = cap, lens[5] = (size_t)cl;
        for (size_t i = 0; i < x->st_n; i++)
            argv[6 + i] = x->st_buf + x->st_off[i], lens[6 + i] = x->st_lens[i];
    }
    if (!argv || !lens || !x->batch || redisc_batch_add(x->batch, (int)argc, argv, lens))
        g_metrics.dedup_index_failures++;
    free(argv);
    free(lens);
    free(key);
    stage_clear(x);
}

/* Starts staging a command for the index of (scope, topic, partition);
 * -1 on OOM. */
static int stage_open(struct dedupidx *x, const char *scope, kstr_t topic, int32_t partition,
                      uint64_t ttl_ms)
{
    x->st_scope = strdup(scope);
    x->st_topic = strndup(topic.ptr, (size_t)topic.len);
    x->st_partition = partition;
    if (!x->st_scope || !x->st_topic) {
        stage_clear(x);
        return -1;
    }
    snprintf(x->st_ttl, sizeof(x->st_ttl), "%llu", (unsigned long long)ttl_ms);
    return 0;
}

/* Is the staged command the one of this index key? */
static int stage_is(const struct dedupidx *x, const char *scope, kstr_t topic, int32_t partition)
{
    return x->st_scope && x->st_partition == partition && strcmp(x->st_scope, scope) == 0 &&
           strlen(x->st_topic) == (size_t)topic.len &&
           memcmp(x->st_topic, topic.ptr, (size_t)topic.len) == 0;
}

/* Appends one argument of n bytes (its bytes left to fill) to the staged
 * command; NULL on OOM (nothing appended). */
static char *stage_push(struct dedupidx *x, size_t n)
{
    if (x->st_n == x->st_cap) {
        size_t cap = x->st_cap ? x->st_cap * 2 : 64;
        size_t *o = realloc(x->st_off, cap * sizeof(*o));
        if (!o)
            return NULL;
        x->st_off = o;
        size_t *l = realloc(x->st_lens, cap * sizeof(*l));
        if (!l)
            return NULL;
        x->st_lens = l;
        x->st_cap = cap;
    }
    if (x->st_used + n > x->st_bcap) {
        size_t cap = x->st_bcap ? x->st_bcap : 4096;
        while (cap < x->st_used + n)
            cap *= 2;
        char *b = realloc(x->st_buf, cap);
        if (!b)
            return NULL;
        x->st_buf = b;
        x->st_bcap = cap;
    }
    x->st_off[x->st_n] = x->st_used;
    x->st_lens[x->st_n++] = n;
    x->st_used += n;
    return x->st_buf + x->st_used - n;
}

void dedupidx_add(struct dedupidx *x, const char *scope, kstr_t topic, int32_t partition,
                  int64_t offset, const char *key, size_t klen, uint64_t ttl_ms)
{
    if (!x || topic.len < 0)
        return;
    size_t plen = sizeof(IDX_PREFIX) - 1 + strlen(scope) + 1;
    if (klen <= plen || memcmp(key, IDX_PREFIX, sizeof(IDX_PREFIX) - 1) != 0)
        return; /* not a key of this scope: never happens */
    if (x->st_scope && (x->st_n >= DEDUPIDX_PER_CMD || !stage_is(x, scope, topic, partition)))
        stage_close(x);
    if (!x->st_scope && stage_open(x, scope, topic, partition, ttl_ms)) {
        g_metrics.dedup_index_failures++;
        return;
    }
    size_t slen = klen - plen;
    char *e = stage_push(x, IDX_OFF_DIGITS + 1 + IDX_TAG_LEN + 1 + slen);
    if (!e) {
        g_metrics.dedup_index_failures++;
        return;
    }
    char off[IDX_OFF_DIGITS + 2];
    snprintf(off, sizeof(off), "%0*lld ", IDX_OFF_DIGITS, (long long)(offset < 0 ? 0 : offset));
    memcpy(e, off, IDX_OFF_DIGITS + 1);
    e += IDX_OFF_DIGITS + 1;
    memcpy(e, x->tag, IDX_TAG_LEN);
    e[IDX_TAG_LEN] = ':';
    memcpy(e + IDX_TAG_LEN + 1, key + plen, slen);
}

static void index_done(void *arg, int err, const redisc_reply_t *replies, size_t n)
{
    (void)arg;
    size_t bad = 0;
    for (size_t i = 0; !err && i < n; i++)
        bad += replies[i].type != REDISC_REPLY_INTEGER;
    if (err || bad) {
        g_metrics.dedup_index_failures++;
        log_warn("dedup: the shared delivery index was not written (%s)",
                 err ? "Redis unavailable" : "Redis answered an error");
    }
}

void dedupidx_send(struct dedupidx *x)
{
    if (!x)
        return;
    stage_close(x);
    redisc_batch_t *b = x->batch;
    x->batch = NULL;
    if (!b)
        return;
    if (!redisc_batch_count(b)) {
        redisc_batch_free(b);
        return;
    }
    /* b is redisc's now, sent or freed */
    if (!redisc_batch_send(x->rc, b, index_done, NULL))
        g_metrics.dedup_index_failures++; /* Redis not ready: this shared view is lost */
}

/* ---------------------------------------------------------------- sweeps */

static int sweep_same(const struct sweep *a, const struct sweep *b)
{
    return a->partition == b->partition && strcmp(a->topic, b->topic) == 0 &&
           strcmp(a->scope, b->scope) == 0;
}

/* Queues s (taking its strings): merged into a waiting sweep of the same
 * partition (the higher offset wins), else appended; the oldest is
 * dropped (counted) when the queue is full. */
static void sweep_queue(struct dedupidx *x, struct sweep s)
{
    for (size_t i = 0; i < x->nq; i++) {
        if (sweep_same(&x->q[i], &s)) {
            if (s.offset > x->q[i].offset)
                x->q[i].offset = s.offset;
            if (s.ttl_ms > x->q[i].ttl_ms)
                x->q[i].ttl_ms = s.ttl_ms;
            if (s.attempts > x->q[i].attempts)
                x->q[i].attempts = s.attempts; /* a failing sweep stays bounded */
            sweep_clear(&s);
            return;
        }
    }
    if (x->nq == DEDUPIDX_SWEEPS) {
        sweep_clear(&x->q[0]);
        memmove(x->q, x->q + 1, (x->nq - 1) * sizeof(*x->q));
        x->nq--;
        g_metrics.dedup_tracking_dropped++;
    }
    x->q[x->nq++] = s;
}

static void sweep_flush(struct dedupidx *x);

/* Hands the foreign entries of one sweep's answer (v, len) to the caller;
 * returns how many entries the answer held. */
static size_t sweep_found(struct dedupidx *x, const struct sweep *s, const char *v, size_t len)
{
    size_t plen = sizeof(IDX_PREFIX) - 1 + strlen(s->scope) + 1;
    size_t total = 0, n = 0, max = 1;
    const char *p = v, *end = v + len;
    for (const char *q = v; (q = memchr(q, '\n', (size_t)(end - q))); q++)
        max++;
    char **keys = len ? malloc(max * sizeof(*keys)) : NULL;
    size_t *klens = keys ? malloc(max * sizeof(*klens)) : NULL;
    if (len && !klens) {
        free(keys);
        g_metrics.dedup_tracking_dropped += max;
        return max;
    }
    while (len && p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *m_end = nl ? nl : end;
        total++;
        /* "<offset> <tag>:<suffix>": the tag and the suffix from m */
        const char *m = p + IDX_OFF_DIGITS + 1;
        size_t mlen = m_end - p > IDX_OFF_DIGITS + 1 ? (size_t)(m_end - m) : 0;
        if (mlen > IDX_TAG_LEN + 1 && m[-1] == ' ' && m[IDX_TAG_LEN] == ':' &&
            memcmp(m, x->tag, IDX_TAG_LEN) != 0) {
            size_t slen = mlen - IDX_TAG_LEN - 1;
            char *k = malloc(plen + slen + 1);
            if (k) {
                snprintf(k, plen + 1, IDX_PREFIX "%s:", s->scope);
                memcpy(k + plen, m + IDX_TAG_LEN + 1, slen);
                k[plen + slen] = 0;
                keys[n] = k;
                klens[n++] = plen + slen;
            } else {
                g_metrics.dedup_tracking_dropped++;
            }
        }
        p = m_end + 1;
    }
    if (n)
        x->found(x->arg, keys, klens, n, s->ttl_ms); /* takes the keys */
    free(keys);
    free(klens);
    return total;
}

static void sweep_done(void *arg, int err, const redisc_reply_t *replies, size_t n)
{
    struct dedupidx *x = arg;
    struct sweep *sent = x->sent;
    size_t nsent = x->nsent;
    x->sweep_id = 0;
    x->sent = NULL;
    x->nsent = 0;
    int failed = 0;
    for (size_t i = 0; i < nsent; i++) {
        const redisc_reply_t *r = !err && i < n ? &replies[i] : NULL;
        if (!r || r->type != REDISC_REPLY_STRING) {
            failed++;
            if (r && r->type == REDISC_REPLY_ERROR && failed == 1)
                log_warn("dedup: a sweep of the shared delivery index failed: %s",
                         r->str ? r->str : "an error");
            if (++sent[i].attempts < SWEEP_ATTEMPTS) {
                sweep_queue(x, sent[i]); /* retried at the next tick */
            } else {
                sweep_clear(&sent[i]); /* what it covers stays pending (counted) */
                g_metrics.dedup_tracking_dropped++;
            }
            continue;
        }
        if (sweep_found(x, &sent[i], r->str ? r->str : "", r->str ? r->len : 0) >= DEDUPIDX_SWEEP) {
            sweep_queue(x, sent[i]); /* more below the offset: sent at once below */
            continue;
        }
        sweep_clear(&sent[i]);
    }
    free(sent);
    if (failed)
        g_metrics.dedup_index_failures += failed; /* everything waits for the tick */
    else
        sweep_flush(x);
}

/* Sends up to DEDUPIDX_PER_TRIP waiting sweeps as one pipeline, if none
 * is in flight and Redis is usable. */
static void sweep_flush(struct dedupidx *x)
{
    if (x->sweep_id || x->nq == 0 || !redisc_ready(x->rc))
        return;
    size_t n = x->nq < DEDUPIDX_PER_TRIP ? x->nq : DEDUPIDX_PER_TRIP;
    redisc_batch_t *b = redisc_batch_new();
    struct sweep *sent = malloc(n * sizeof(*sent));
    if (!b || !sent) {
        redisc_batch_free(b);
        free(sent);
        return;
    }
    char lim[24];
    int ll = snprintf(lim, sizeof(lim), "%u", DEDUPIDX_SWEEP);
    for (size_t i = 0; i < n; i++) {
        const struct sweep *s = &x->q[i];
        char *k = index_key(s->scope, s->topic, strlen(s->topic), s->partition);
        char off[IDX_OFF_DIGITS + 1];
        int ol = snprintf(off, sizeof(off), "%0*lld", IDX_OFF_DIGITS, (long long)s->offset);
        const char *argv[] = {"EVAL", sweep_script, "1", k, off, lim};
        size_t lens[] = {4, sizeof(sweep_script) - 1, 1, k ? strlen(k) : 0, (size_t)ol, (size_t)ll};
        int bad = !k || redisc_batch_add(b, 6, argv, lens);
        free(k);
        if (bad) {
            redisc_batch_free(b);
            free(sent);
            return;
        }
    }
    uint64_t id = redisc_batch_send(x->rc, b, sweep_done, x);
    if (!id) {
        free(sent);
        return;
    }
    memcpy(sent, x->q, n * sizeof(*sent));
    memmove(x->q, x->q + n, (x->nq - n) * sizeof(*x->q));
    x->nq -= n;
    x->sweep_id = id;
    x->sent = sent;
    x->nsent = n;
}

void dedupidx_commit(struct dedupidx *x, const char *scope, kstr_t topic, int32_t partition,
                     int64_t offset, uint64_t ttl_ms)
{
    if (!x || topic.len < 0 || offset <= 0)
        return;
    struct sweep s = {.scope = strdup(scope),
                      .topic = strndup(topic.ptr, (size_t)topic.len),
                      .partition = partition,
                      .offset = offset,
                      .ttl_ms = ttl_ms};
    if (!s.scope || !s.topic) {
        sweep_clear(&s);
        g_metrics.dedup_tracking_dropped++;
        return;
    }
    sweep_queue(x, s);
    sweep_flush(x);
}

void dedupidx_tick(struct dedupidx *x)
{
    if (x)
        sweep_flush(x);
}
