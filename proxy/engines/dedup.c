/*
 * dedup.c - consumer dedup by eventId, kept in Redis. See dedup.h.
 *
 * ---- Semantics (README "Consumer dedup") ----
 *
 * Scope: the rule's dedup.scope, else the config's `service`. All
 * consumers behind eosproxy instances of one scope share one view.
 * Key of an eventId: "eosproxy:<scope>:<eventId>", or
 * "eosproxy:<scope>:sha256:<hex>" when the eventId is longer than 128
 * bytes, holds a byte outside printable ASCII or itself starts with
 * "sha256:" (bounded, unambiguous keys).
 *
 * Values: "p:<topic>:<partition>:<offset>:<deliveries>" while *pending*
 * (expires after redis.pending_ttl), "d" once *done* (expires after the
 * rule's dedup.ttl).
 *
 * For each record of a dedup topic in a Fetch response, in order:
 *   - no eventId: delivered (counted);
 *   - an eventId seen earlier in the same response: dropped (the first
 *     occurrence decides for all);
 *   - done in the in-process cache: dropped, no Redis command;
 *   - else one `SET key p:... NX GET PX pending_ttl`, all of the response
 *     in one pipeline (one round trip):
 *       nil (it was unknown, now pending here)   -> delivered
 *       "d"                                      -> dropped (done)
 *       "p:" at this topic/partition/offset      -> delivered again (the
 *          consumer died before committing: at-least-once); its delivery
 *          count is bumped and the pending mark renewed with a
 *          compare-and-set (EVAL), in the next round trip, not waited on
 *       "p:" at another position                 -> dropped (a duplicate
 *          in flight; if that consumer dies, the pending mark expires and
 *          the next copy read after that is delivered)
 * A batch whose records are all dropped stays, empty, in the form the
 * codec says every client steps past (krecords_empty_mode_for_fetch).
 *
 * Done: a successful OffsetCommit / TxnOffsetCommit response (partition
 * ErrorCode 0) for a partition of a dedup topic turns every eventId this
 * process delivered on that partition below the committed offset into
 * `SET key d PX ttl` (one pipeline per commit response, retried while
 * Redis is down) and into the in-process cache of done eventIds (done is
 * final, so the cache can never be wrong within ttl). Delivered eventIds
 * are remembered per (scope, topic, partition) up to a bound; the oldest
 * are forgotten (counted) and then simply stay pending until they expire.
 * Each delivery of an eventId is also written to the scope's shared
 * delivery index in Redis (dedupidx.c), and each such commit sweeps it:
 * what other processes of the scope (or an earlier run of this one)
 * delivered below the offset is marked done the same way.
 *
 * Batches passed as they are (counted): message format < 2, control
 * batches, batches of aborted transactions (read_committed consumers drop
 * them; marking them would block the committed copy), batches that fail
 * to decode, the partial batch a broker may put at the end of a
 * partition's records, and a batch of more records than a response may
 * hold (below). Fetch v0..v3 responses are not touched.
 *
 * ---- Bounds ----
 *
 * A held response is scanned batch by batch within a budget (dedup.h:
 * DEDUP_JOB_MAX_RECORDS records, DEDUP_JOB_MAX_INFLATED decompressed
 * bytes); the first batch is always taken, so a partition always moves
 * on. Past the budget the partition is cut after its last batch taken
 * and later dedup partitions are answered without records (error 0): the
 * client fetches the rest again, as after any short answer (counted,
 * eosproxy_dedup_responses_cut_total). Frames, decompressed bytes and an
 * estimate per decoded record count into one engine-wide bound
 * (DEDUP_MAX_HELD_BYTES); a response that does not fit follows
 * redis.on_unavailable: block answers its dedup partitions with error 6
 * at once, pass delivers it unchecked (counted). Every other container
 * grows, evicts under a bound or refuses (counted): see the DD_* bounds.
 *
 * ---- Redis unavailable ----
 *
 * When Redis is down, a round trip fails or times out (redis.timeout), or
 * answers an error (e.g. OOM under noeviction):
 *   block (default): the response is held and retried when Redis is back;
 *     after redis.block_timeout the dedup partitions are answered with
 *     ErrorCode 6 NOT_LEADER_OR_FOLLOWER and no records (other partitions
 *     of the response are delivered). 6 is what a broker answers when it
 *     cannot serve a partition for the moment, and the one retriable Fetch
 *     error that every client of the test matrix handles silently: it
 *     refreshes metadata and fetches the same offset again (kafka-python
 *     2.0.2 raises KAFKA_STORAGE_ERROR 56 to the application, librdkafka
 *     reports unknown codes as consumer errors).
 *   pass: the response is delivered unfiltered at once (counted), and no
 *     mark is written; a round trip still unanswered after
 *     redis.block_timeout also lets the response go unfiltered (pass never
 *     answers an error).
 *
 * Completion is by id through px->done.slot_done (engine.h), from the event loop
 * (never inside dedup_fetch_response); Redis callbacks find their job by
 * id, and a job that goes away cancels its Redis batch first.
 */
#include "dedup.h"

#include "config.h"
#include "dedupidx.h"
#include "dlqw.h"
#include "kcommit.h"
#include "kdlt.h"
#include "kerror.h"
#include "kfetch.h"
#include "kproto.h"
#include "krecord.h"
#include "krecords.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "redisc.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

/* new_records of a partition answered without records (never freed). */
static const uint8_t dd_empty[1];

#define DD_KEY_PREFIX "eosproxy:"
#define DD_ID_RAW_MAX 128 /* longer eventIds are hashed */
#define DD_SCRATCH 4096   /* JSON eventId unescaping */
#define DD_TICK_MS 100    /* block timeouts and retries */
/* Bounds of the other containers; what happens when full is counted in
 * eosproxy_dedup_tracking_dropped_total (the eventIds then stay pending
 * until pending_ttl, which is safe). */
#define DD_TRACK_PER_PART 100000u /* delivered eventIds kept per partition: oldest dropped */
#define DD_TRACK_MAX 2000000u     /* ... and in all: the partition's oldest dropped */
#define DD_TRACK_PARTS 65536u     /* (scope, topic, partition) tracked: new ones refused */
#define DD_COMMITS_MAX 4096u      /* commit requests awaiting their response: oldest dropped */
#define DD_MARKS_MAX 1000000u     /* done marks waiting for Redis: oldest dropped */
#define DD_MARKS_PER_TRIP 10000u  /* done marks per pipeline */
/* How long a dead-lettered record stays known when its rule has no dedup
 * section (with one: dedup.ttl). */
#define DD_DEAD_TTL_MS (7ull * 86400 * 1000)
/* A job waiting for its dead-letter writes longer than this gives up on
 * them (the writer's own timeout should have answered long before). */
#define DD_DLQ_WAIT_MS (DLQW_TIMEOUT_MS + 5000u)

/* Decision about one eventId. */
enum ditem_state {
    DI_ASK = 0,    /* Redis must be asked */
    DI_NEW,        /* unknown before: pending here now, deliver */
    DI_AGAIN,      /* pending at this position: deliver again */
    DI_DONE,       /* done: drop */
    DI_IN_FLIGHT,  /* pending elsewhere: drop */
    DI_UNFILTERED, /* Redis unavailable, pass policy: deliver unchecked */
    DI_KEPT0,      /* a duplicate delivered anyway: see must_keep_batch() */
    DI_SEEN,       /* position key committed past before: deliver, not counted */
    DI_POISON,     /* dlq: being written to the dead-letter topic */
    DI_DEAD,       /* dlq: in the dead-letter topic: drop */
};

/* J_DLQ: waiting for the dead-letter writes of its poison records. */
enum djob_state { J_WAIT, J_SENT, J_DLQ, J_READY };

/* The record-level marks in dbatch.item. */
#define REC_NO_ID (-1)
#define REC_DUP (-2)

/* One batch of a dedup partition. */
struct dbatch {
    const uint8_t *raw; /* in the job's frame copy */
    size_t size;
    int decoded; /* 0: passed as it is */
    krecords_batch_t b;
    int32_t *item; /* per record: index in job->items, REC_NO_ID or REC_DUP */
};

/* One partition of a dedup topic in a held response. */
struct dpart {
    kfetch_partition_t *p;
    kstr_t topic;
    const policy_rule_t *rule;
    const char *scope;
    struct dbatch *batches;
    size_t nbatches;
    size_t whole;       /* bytes of records covered by the batches taken */
    int cut;            /* the job's budget ended it: nothing after its batches */
    struct ditem *head; /* dlq rules: its first record still to be processed */
};

/* One distinct eventId of a held response. */
struct ditem {
    char *key;
    size_t klen;
    struct dpart *part; /* its first occurrence */
    int64_t offset;
    int state;
    char *old; /* the pending value Redis returned (DI_AGAIN) */
    long deliveries;
    int pos;       /* keyed by position (dlq without an eventId), not by eventId */
    uint32_t bidx; /* its first occurrence: part->batches[bidx].b.records[ridx] */
    int32_t ridx;
    uint64_t dlq_id; /* DI_POISON: the dead-letter write */
};

/* A Fetch response being checked. */
struct djob {
    struct dedup *d;
    uint64_t id, client_id, token, redis_id;
    int16_t ver;
    uint8_t *frame;
    size_t len;
    kfetch_resp_t resp;
    struct dpart *parts;
    size_t nparts;
    struct ditem *items;
    size_t nitems, cap_items;
    size_t nask; /* items in DI_ASK */
    uint64_t start_ms;
    int state;
    int failed; /* block_timeout: answer dedup partitions with an error */
    /* The budget (DEDUP_JOB_MAX_*): what the batches taken cost. */
    size_t nbatches;         /* taken, decoded or not */
    size_t records;          /* their records, a batch counting one at least */
    size_t inflated;         /* decompressed bytes held */
    size_t held;             /* what this job adds to d->job_bytes */
    policy_t *policy;        /* a reference to the rules its partitions point into */
    int cut;                 /* budget reached: later dedup partitions get no records */
    size_t npoison;          /* dead-letter writes not yet answered (J_DLQ) */
    uint64_t dlq_start_ms;   /* when they were sent */
    struct evbuffer *answer; /* built when taken (held-bytes bound, block) */
    TAILQ_ENTRY(djob) link;
};
TAILQ_HEAD(djob_q, djob);

/* In-process cache of done keys: FIFO ring + chained hash. */
struct dcache_ent {
    char *key;
    uint64_t hash;
    uint64_t expires_ms;
    int32_t next; /* hash chain, -1 ends */
};
struct dcache {
    struct dcache_ent *ring;
    size_t cap, head, n;
    int32_t *buckets;
    size_t nbuckets; /* power of two */
};

/* Delivered eventIds of one (scope, topic, partition), oldest first. */
struct tent {
    int64_t offset;
    char *key;
    int pos; /* a position key: done means "deliver again, uncounted" */
};
struct track {
    char *scope; /* a copy: tracks outlive the rules of a live reload */
    char *topic;
    int32_t partition;
    uint64_t hash;
    struct tent *ents;
    size_t start, len, cap;
    struct track *hnext;
};

/* A commit request awaiting its response. */
struct cpart {
    char *topic;
    int32_t partition;
    int64_t offset;
};
struct dcommit {
    uint64_t client_id;
    int32_t corr;
    int16_t api_key;   /* OffsetCommit, TxnOffsetCommit or EndTxn */
    char *txn_id;      /* TxnOffsetCommit and EndTxn: the transaction */
    int txn_committed; /* EndTxn: Committed */
    int txn_waiting;   /* TxnOffsetCommit answered: waiting for EndTxn */
    struct cpart *parts;
    size_t nparts;
    TAILQ_ENTRY(dcommit) link;
};
TAILQ_HEAD(dcommit_q, dcommit);

/* The last offset committed on a (scope, topic, partition) through this
 * process, and when (a commit sequence number): a direct-mapped table by
 * hash, where a collision only loses a hint (dlq poison choice). */
#define DD_LASTCOMMIT_SLOTS 4096u
struct dlastcommit {
    uint64_t hash; /* 0: empty */
    int64_t offset;
    uint64_t seq;
};

/* Per (scope, topic), direct-mapped like dlastcommit: its last
 * dead-letter decision (a number from dedup.dead_seq, 0: none). */
#define DD_TOPICSTATE_SLOTS 1024u
struct dtopicstate {
    uint64_t hash; /* 0: empty */
    uint64_t dead_gen;
};

/* The records whose delivery count restarted (find_poison), with their
 * topic's dead_gen then: direct-mapped by the record's key hash, where a
 * collision only restarts a count once more. A due head without commit
 * evidence is taken only once its count restarted after its topic's last
 * dead-letter: a consumer that failed on the record moved aside never
 * reached it, whatever response it came in. */
#define DD_RESTART_SLOTS 4096u
struct drestart {
    uint64_t hash; /* 0: empty */
    uint64_t gen;
};

/* The consumer group last seen committing a topic of a scope through this
 * process (kafka_dlt-original-consumer-group). */
#define DD_GROUPS_MAX 256u /* then the oldest entry is replaced */
struct dgroup {
    char *scope, *topic, *group;
};

/* A mark waiting to be written: 'd' (done), 'x' (dead-lettered), or 'D':
 * done unless dead-lettered (position keys: a commit must not erase "x"). */
struct dmark {
    char *key;
    uint64_t ttl_ms;
    char val;
};

struct dedup {
    struct proxy *px;
    const config_t *cfg;
    struct redisc *rc;
    struct dedupidx *idx; /* deliveries shared with the scope's other processes */
    struct event *kick, *tick;
    struct djob_q jobs;
    uint64_t next_id;
    size_t job_bytes; /* held by all jobs: frames, inflated bytes, records */
    size_t max_records, max_inflated, max_held; /* DEDUP_JOB_MAX_*, DEDUP_MAX_HELD_BYTES */
    struct dcache cache;
    struct track **tracks;
    size_t ntrack_buckets, ntracks, tracked;
    struct dcommit_q commits;
    size_t ncommits;
    struct dmark *marks; /* FIFO ring of marks to write */
    size_t mstart, mlen, mcap;
    uint64_t marks_id;        /* the pipeline writing marks, 0 if none */
    struct dmark *marks_sent; /* its marks, re-queued if it fails */
    size_t nmarks_sent;
    int warned_old_fetch;
    int warned_held;                     /* the held-bytes bound was reached (reset below half) */
    struct dgroup groups[DD_GROUPS_MAX]; /* who commits a topic: the DLQ's group header */
    struct dlastcommit lastcommit[DD_LASTCOMMIT_SLOTS];
    struct dtopicstate topics[DD_TOPICSTATE_SLOTS];
    struct drestart restarts[DD_RESTART_SLOTS];
    uint64_t commit_seq;
    uint64_t dead_seq; /* dead-letter decisions so far (dtopicstate.dead_gen) */
    size_t ngroups, next_group;
    dedup_test_hooks_t hooks; /* dedup_set_test_hooks; zeroed: none */
};

/* The engine's clock: monotonic milliseconds (or the test hook's). */
static uint64_t now_ms(const struct dedup *d)
{
    if (d->hooks.now_ms)
        return d->hooks.now_ms(d->hooks.arg);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    return krecord_xxh64(p, n, 0x656f73ull);
}

/* ================================================================ cache */

static int cache_init(struct dcache *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    if (cap == 0)
        return 0;
    c->nbuckets = 1;
    while (c->nbuckets < cap * 2)
        c->nbuckets <<= 1;
    c->ring = calloc(cap, sizeof(*c->ring));
    c->buckets = malloc(c->nbuckets * sizeof(*c->buckets));
    if (!c->ring || !c->buckets)
        return -1;
    memset(c->buckets, 0xff, c->nbuckets * sizeof(*c->buckets));
    c->cap = cap;
    return 0;
}

static void cache_free(struct dcache *c)
{
    for (size_t i = 0; c->ring && i < c->cap; i++)
        free(c->ring[i].key);
    free(c->ring);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static struct dcache_ent *cache_find(struct dcache *c, const char *key, size_t klen, uint64_t h)
{
    if (!c->cap)
        return NULL;
    for (int32_t i = c->buckets[h & (c->nbuckets - 1)]; i >= 0; i = c->ring[i].next) {
        struct dcache_ent *e = &c->ring[i];
        if (e->hash == h && strlen(e->key) == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
    return NULL;
}

/* 1 if key is known done (and not expired at now). */
static int cache_has(struct dcache *c, const char *key, size_t klen, uint64_t now)
{
    if (c->n == 0)
        return 0;
    struct dcache_ent *e = cache_find(c, key, klen, hash_bytes(key, klen));
    return e && e->expires_ms > now;
}

/* Unlinks ring slot i from its hash chain. */
static void cache_unlink(struct dcache *c, size_t i)
{
    int32_t *pp = &c->buckets[c->ring[i].hash & (c->nbuckets - 1)];
    while (*pp >= 0 && *pp != (int32_t)i)
        pp = &c->ring[*pp].next;
    if (*pp == (int32_t)i)
        *pp = c->ring[i].next;
    free(c->ring[i].key);
    c->ring[i].key = NULL;
}

/* Remembers key as done until now + ttl; the oldest entry makes room. */
static void cache_put(struct dcache *c, const char *key, size_t klen, uint64_t ttl_ms, uint64_t now)
{
    if (!c->cap)
        return;
    uint64_t h = hash_bytes(key, klen);
    struct dcache_ent *e = cache_find(c, key, klen, h);
    if (e) {
        e->expires_ms = now + ttl_ms;
        return;
    }
    char *k = strndup(key, klen);
    if (!k)
        return;
    size_t i = (c->head + c->n) % c->cap;
    if (c->n == c->cap) {
        i = c->head;
        cache_unlink(c, i);
        c->head = (c->head + 1) % c->cap;
    } else {
        c->n++;
    }
    e = &c->ring[i];
    e->key = k;
    e->hash = h;
    e->expires_ms = now + ttl_ms;
    int32_t *b = &c->buckets[h & (c->nbuckets - 1)];
    e->next = *b;
    *b = (int32_t)i;
}

/* ================================================================ keys */

/* The scope of a rule: dedup.scope, else the service name. */
static const char *rule_scope(const struct dedup *d, const policy_rule_t *r)
{
    return r->dedup.scope ? r->dedup.scope : d->cfg->service;
}

static int id_needs_hash(const uint8_t *id, size_t n)
{
    if (n > DD_ID_RAW_MAX || n == 0 || (n >= 7 && memcmp(id, "sha256:", 7) == 0))
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (id[i] < 0x21 || id[i] > 0x7e)
            return 1;
    }
    return 0;
}

/* The Redis key of eventId id in scope (malloc'd, NUL-terminated); a
 * position id (pos) is used as it is: it holds a space, which a raw
 * eventId never does (id_needs_hash), so the two kinds cannot collide. */
static char *make_key(const char *scope, const uint8_t *id, size_t n, int pos, size_t *klen)
{
    size_t slen = strlen(scope);
    size_t plen = sizeof(DD_KEY_PREFIX) - 1;
    int hashed = !pos && id_needs_hash(id, n);
    size_t tail = hashed ? 7 + 2 * SHA256_DIGEST_LENGTH : n;
    char *k = malloc(plen + slen + 1 + tail + 1);
    if (!k)
        return NULL;
    char *p = k;
    memcpy(p, DD_KEY_PREFIX, plen);
    p += plen;
    memcpy(p, scope, slen);
    p += slen;
    *p++ = ':';
    if (hashed) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(id, n, md);
        memcpy(p, "sha256:", 7);
        p += 7;
        for (size_t i = 0; i < sizeof(md); i++) {
            static const char hex[] = "0123456789abcdef";
            *p++ = hex[md[i] >> 4];
            *p++ = hex[md[i] & 15];
        }
    } else {
        memcpy(p, id, n);
        p += n;
    }
    *p = 0;
    *klen = (size_t)(p - k);
    return k;
}

/* Appends the decimal form of v at p; returns the end. */
static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    memcpy(p, tmp + i, sizeof(tmp) - i);
    return p + (sizeof(tmp) - i);
}

/* "p:<topic>:<partition>:<offset>" into buf (no printf: once per
 * record); its length, or -1 if cap is too small. */
static int pending_pos(char *buf, size_t cap, kstr_t topic, int32_t partition, int64_t offset)
{
    if (topic.len < 0 || (size_t)topic.len + 2 + 1 + 11 + 1 + 20 + 1 > cap)
        return -1;
    char *p = buf;
    *p++ = 'p';
    *p++ = ':';
    memcpy(p, topic.ptr, (size_t)topic.len);
    p += topic.len;
    *p++ = ':';
    p = put_i64(p, partition);
    *p++ = ':';
    p = put_i64(p, offset);
    *p = 0;
    return (int)(p - buf);
}

/* ================================================================ tracking */

static uint64_t track_hash(const char *scope, kstr_t topic, int32_t partition)
{
    uint64_t h = hash_bytes(scope, strlen(scope));
    h ^= hash_bytes(topic.ptr, (size_t)topic.len) * 31;
    return h ^ ((uint64_t)(uint32_t)partition * 0x9e3779b97f4a7c15ull);
}

/* Doubles the bucket array once tracks outnumber buckets (chains moved,
 * nothing copied); out of memory the chains just get longer. */
static void tracks_grow(struct dedup *d)
{
    size_t n = d->ntrack_buckets * 2;
    struct track **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < d->ntrack_buckets; i++) {
        struct track *t = d->tracks[i], *next;
        for (; t; t = next) {
            next = t->hnext;
            t->hnext = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }
    free(d->tracks);
    d->tracks = b;
    d->ntrack_buckets = n;
}

/* The track of (scope, topic, partition); created when asked and the
 * DD_TRACK_PARTS bound allows (NULL otherwise, and on OOM). */
static struct track *track_get(struct dedup *d, const char *scope, kstr_t topic, int32_t partition,
                               int create)
{
    uint64_t h = track_hash(scope, topic, partition);
    struct track **b = &d->tracks[h & (d->ntrack_buckets - 1)];
    for (struct track *t = *b; t; t = t->hnext) {
        if (t->hash == h && t->partition == partition && strcmp(t->scope, scope) == 0 &&
            strlen(t->topic) == (size_t)topic.len && memcmp(t->topic, topic.ptr, topic.len) == 0)
            return t;
    }
    if (!create || d->ntracks >= DD_TRACK_PARTS)
        return NULL;
    if (d->ntracks >= d->ntrack_buckets) {
        tracks_grow(d);
        b = &d->tracks[h & (d->ntrack_buckets - 1)];
    }
    struct track *t = calloc(1, sizeof(*t));
    char *name = t ? strndup(topic.ptr, (size_t)topic.len) : NULL;
    char *sc = name ? strdup(scope) : NULL;
    if (!sc) {
        free(name);
        free(t);
        return NULL;
    }
    t->scope = sc;
    t->topic = name;
    t->partition = partition;
    t->hash = h;
    t->hnext = *b;
    *b = t;
    d->ntracks++;
    return t;
}

/* Forgets the oldest entry of t (it stays pending in Redis). */
static void track_drop_oldest(struct dedup *d, struct track *t)
{
    free(t->ents[t->start].key);
    t->start++;
    t->len--;
    d->tracked--;
    g_metrics.dedup_tracking_dropped++;
}

/* Remembers that key (a position key if pos) was delivered at offset
 * (pending until a commit). */
static void track_add(struct dedup *d, const struct dpart *dp, int64_t offset, const char *key,
                      size_t klen, int pos)
{
    struct track *t = track_get(d, dp->scope, dp->topic, dp->p->index, 1);
    if (!t) {
        g_metrics.dedup_tracking_dropped++;
        return;
    }
    if (t->len >= DD_TRACK_PER_PART || (d->tracked >= DD_TRACK_MAX && t->len > 0))
        track_drop_oldest(d, t);
    if (t->start + t->len == t->cap) {
        if (t->start > 0) {
            memmove(t->ents, t->ents + t->start, t->len * sizeof(*t->ents));
            t->start = 0;
        } else {
            size_t cap = t->cap ? t->cap * 2 : 64;
            struct tent *e = realloc(t->ents, cap * sizeof(*e));
            if (!e) {
                g_metrics.dedup_tracking_dropped++;
                return;
            }
            t->ents = e;
            t->cap = cap;
        }
    }
    char *k = strndup(key, klen);
    if (!k) {
        g_metrics.dedup_tracking_dropped++;
        return;
    }
    t->ents[t->start + t->len++] = (struct tent){offset, k, pos};
    d->tracked++;
}

/* Unlinks and frees t (emptied by a commit: the next delivery there
 * makes a new one), so tracks of partitions no longer read go away. */
static void track_remove(struct dedup *d, struct track *t)
{
    struct track **pp = &d->tracks[t->hash & (d->ntrack_buckets - 1)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    for (size_t j = 0; j < t->len; j++)
        free(t->ents[t->start + j].key);
    d->tracked -= t->len;
    free(t->ents);
    free(t->topic);
    free(t->scope);
    free(t);
    d->ntracks--;
}

static void tracks_free(struct dedup *d)
{
    for (size_t i = 0; d->tracks && i < d->ntrack_buckets; i++) {
        struct track *t = d->tracks[i];
        while (t) {
            struct track *next = t->hnext;
            for (size_t j = 0; j < t->len; j++)
                free(t->ents[t->start + j].key);
            free(t->ents);
            free(t->topic);
            free(t->scope);
            free(t);
            t = next;
        }
    }
    free(d->tracks);
    d->tracks = NULL;
}

/* ================================================================ marks */

static void flush_marks(struct dedup *d);

/* Queues a mark (taking key): val 'd' done, 'x' dead-lettered; the
 * oldest is dropped when full. */
static void mark_push(struct dedup *d, char *key, uint64_t ttl_ms, char val)
{
    if (d->mlen == DD_MARKS_MAX) {
        free(d->marks[d->mstart].key);
        d->mstart = (d->mstart + 1) % d->mcap;
        d->mlen--;
        g_metrics.dedup_tracking_dropped++;
    }
    if (d->mlen == d->mcap) {
        size_t cap = d->mcap ? d->mcap * 2 : 256;
        struct dmark *m = malloc(cap * sizeof(*m));
        if (!m) {
            free(key);
            g_metrics.dedup_tracking_dropped++;
            return;
        }
        for (size_t i = 0; i < d->mlen; i++)
            m[i] = d->marks[(d->mstart + i) % d->mcap];
        free(d->marks);
        d->marks = m;
        d->mcap = cap;
        d->mstart = 0;
    }
    d->marks[(d->mstart + d->mlen++) % d->mcap] = (struct dmark){key, ttl_ms, val};
}

static void marks_done(void *arg, int err, const redisc_reply_t *replies, size_t n)
{
    struct dedup *d = arg;
    struct dmark *sent = d->marks_sent;
    size_t nsent = d->nmarks_sent;
    d->marks_id = 0;
    d->marks_sent = NULL;
    d->nmarks_sent = 0;
    for (size_t i = 0; i < nsent; i++) {
        int ok = !err && i < n &&
                 (replies[i].type == REDISC_REPLY_STATUS ||
                  (sent[i].val == 'D' && replies[i].type == REDISC_REPLY_INTEGER));
        if (ok) {
            g_metrics.dedup_commit_marks++;
            free(sent[i].key);
        } else {
            mark_push(d, sent[i].key, sent[i].ttl_ms, sent[i].val); /* retried */
        }
    }
    free(sent);
    if (!err && d->mlen && !d->marks_id && n == nsent &&
        (replies[nsent - 1].type == REDISC_REPLY_STATUS ||
         replies[nsent - 1].type == REDISC_REPLY_INTEGER))
        flush_marks(d); /* more queued: next pipeline now; failures wait for the tick */
}

/* 'D' marks: "d" unless the key holds "x" (then 0, and it stays dead). */
static const char done_unless_dead[] = "if redis.call('GET',KEYS[1])=='x' then return 0 end "
                                       "return redis.call('SET',KEYS[1],'d','PX',ARGV[1])";

/* Writes queued done marks, one pipeline at a time, while Redis is up. */
static void flush_marks(struct dedup *d)
{
    if (d->marks_id || d->mlen == 0 || !redisc_ready(d->rc))
        return;
    size_t n = d->mlen < DD_MARKS_PER_TRIP ? d->mlen : DD_MARKS_PER_TRIP;
    struct dmark *sent = malloc(n * sizeof(*sent));
    redisc_batch_t *b = redisc_batch_new();
    if (!sent || !b) {
        free(sent);
        redisc_batch_free(b);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct dmark *m = &d->marks[(d->mstart + i) % d->mcap];
        char ttl[24];
        int tl = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)m->ttl_ms);
        const char val[2] = {m->val, 0};
        const char *argv[] = {"SET", m->key, val, "PX", ttl};
        const char *dargv[] = {"EVAL", done_unless_dead, "1", m->key, ttl};
        size_t lens[] = {3, strlen(m->key), 1, 2, (size_t)tl};
        size_t dlens[] = {4, sizeof(done_unless_dead) - 1, 1, strlen(m->key), (size_t)tl};
        if (m->val == 'D' ? redisc_batch_add(b, 5, dargv, dlens)
                          : redisc_batch_add(b, 5, argv, lens)) {
            free(sent);
            redisc_batch_free(b);
            return;
        }
        sent[i] = *m;
    }
    uint64_t id = redisc_batch_send(d->rc, b, marks_done, d);
    if (!id) {
        free(sent);
        return;
    }
    d->mstart = (d->mstart + n) % d->mcap;
    d->mlen -= n;
    d->marks_id = id;
    d->marks_sent = sent;
    d->nmarks_sent = n;
}

/* key (taken) is done for ttl_ms: cached now, written by the next
 * pipeline of marks. */
static void mark_done(struct dedup *d, char *key, size_t klen, uint64_t ttl_ms, uint64_t now)
{
    cache_put(&d->cache, key, klen, ttl_ms, now);
    mark_push(d, key, ttl_ms, 'd');
}

/* The state slot of (scope, topic), taken over when another topic held it. */
static struct dtopicstate *topic_state(struct dedup *d, const char *scope, kstr_t topic)
{
    uint64_t h = track_hash(scope, topic, -1) | 1;
    struct dtopicstate *t = &d->topics[h % DD_TOPICSTATE_SLOTS];
    if (t->hash != h)
        *t = (struct dtopicstate){h, 0};
    return t;
}

/*
 * A commit of (scope, topic, partition) at offset succeeded: every
 * eventId delivered there below offset becomes done. A position key
 * (dlq without an eventId) becomes done for redis.pending_ttl and is not
 * cached: done only resets its delivery count, a re-read delivers it.
 */
static void track_commit(struct dedup *d, const policy_rule_t *rule, kstr_t topic,
                         int32_t partition, int64_t offset)
{
    uint64_t h = track_hash(rule_scope(d, rule), topic, partition) | 1;
    d->lastcommit[h % DD_LASTCOMMIT_SLOTS] = (struct dlastcommit){h, offset, ++d->commit_seq};
    if (rule->dedup.src != EVENTID_NONE)
        dedupidx_commit(d->idx, rule_scope(d, rule), topic, partition, offset, rule->dedup.ttl_ms);
    struct track *t = track_get(d, rule_scope(d, rule), topic, partition, 0);
    if (!t)
        return;
    uint64_t now = now_ms(d);
    size_t w = t->start;
    for (size_t i = t->start; i < t->start + t->len; i++) {
        struct tent *e = &t->ents[i];
        if (e->offset < offset && e->pos) {
            mark_push(d, e->key, d->cfg->redis.pending_ttl_ms, 'D');
            d->tracked--;
        } else if (e->offset < offset) {
            mark_done(d, e->key, strlen(e->key), rule->dedup.ttl_ms, now);
            d->tracked--;
        } else {
            t->ents[w++] = *e;
        }
    }
    t->len = w - t->start;
    if (t->len == 0)
        track_remove(d, t);
}

/* A sweep of the shared delivery index found keys another process of
 * the scope delivered below a committed offset: done, as track_commit
 * makes this process's own. */
static void shared_found(void *arg, char **keys, const size_t *klens, size_t n, uint64_t ttl_ms)
{
    struct dedup *d = arg;
    uint64_t now = now_ms(d);
    for (size_t i = 0; i < n; i++)
        mark_done(d, keys[i], klens[i], ttl_ms, now);
    g_metrics.dedup_shared_marks += n;
    flush_marks(d);
}

/* ================================================================ groups */

static struct dgroup *group_find(struct dedup *d, const char *scope, kstr_t topic)
{
    for (size_t i = 0; i < d->ngroups; i++) {
        struct dgroup *g = &d->groups[i];
        if (g->scope && strcmp(g->scope, scope) == 0 && strlen(g->topic) == (size_t)topic.len &&
            memcmp(g->topic, topic.ptr, (size_t)topic.len) == 0)
            return g;
    }
    return NULL;
}

static void group_clear(struct dgroup *g)
{
    free(g->scope);
    free(g->topic);
    free(g->group);
    memset(g, 0, sizeof(*g));
}

/* Remembers that group commits topic of scope (bounded: the oldest entry
 * makes room; out of memory it is simply not remembered: the slot stays
 * empty and never matches). */
static void group_remember(struct dedup *d, const char *scope, kstr_t topic, kstr_t group)
{
    if (group.len <= 0)
        return;
    struct dgroup *g = group_find(d, scope, topic);
    if (g && strlen(g->group) == (size_t)group.len &&
        memcmp(g->group, group.ptr, (size_t)group.len) == 0)
        return;
    if (!g) {
        if (d->ngroups < DD_GROUPS_MAX) {
            g = &d->groups[d->ngroups++];
        } else {
            g = &d->groups[d->next_group];
            d->next_group = (d->next_group + 1) % DD_GROUPS_MAX;
        }
    }
    group_clear(g);
    g->scope = strdup(scope);
    g->topic = strndup(topic.ptr, (size_t)topic.len);
    g->group = strndup(group.ptr, (size_t)group.len);
    if (!g->scope || !g->topic || !g->group)
        group_clear(g);
}

/* ================================================================ jobs */

static void job_free(struct dedup *d, struct djob *j)
{
    if (j->redis_id)
        redisc_cancel(d->rc, j->redis_id);
    for (size_t i = 0; j->npoison && i < j->nitems; i++) {
        if (j->items[i].state != DI_POISON)
            continue;
        g_metrics.dlq_inflight--;
        if (d->hooks.dlq_cancel)
            d->hooks.dlq_cancel(d->hooks.arg, j->items[i].dlq_id);
        else
            dlqw_cancel(d->px->dlqw, j->items[i].dlq_id);
    }
    if (j->state == J_WAIT)
        g_metrics.dedup_held--;
    for (size_t i = 0; i < j->nparts; i++) {
        struct dpart *dp = &j->parts[i];
        for (size_t k = 0; k < dp->nbatches; k++) {
            if (dp->batches[k].decoded)
                krecords_batch_free(&dp->batches[k].b);
            free(dp->batches[k].item);
        }
        free(dp->batches);
        if (dp->p->new_records.ptr != dd_empty)
            free((void *)dp->p->new_records.ptr);
    }
    for (size_t i = 0; i < j->nitems; i++) {
        free(j->items[i].key);
        free(j->items[i].old);
    }
    free(j->items);
    free(j->parts);
    kfetch_resp_free(&j->resp);
    policy_free(j->policy);
    free(j->frame);
    if (j->answer)
        evbuffer_free(j->answer);
    d->job_bytes -= j->held;
    if (d->job_bytes < d->max_held / 2)
        d->warned_held = 0;
    TAILQ_REMOVE(&d->jobs, j, link);
    free(j);
}

static void kick(struct dedup *d)
{
    if (!event_pending(d->kick, EV_TIMEOUT, NULL))
        event_active(d->kick, EV_TIMEOUT, 0);
}

static void job_ready(struct dedup *d, struct djob *j)
{
    if (j->state == J_WAIT)
        g_metrics.dedup_held--;
    j->state = J_READY;
    kick(d);
}

/* Redis is unavailable for j: the outage policy decides. */
static void job_unavailable(struct dedup *d, struct djob *j)
{
    if (d->cfg->redis.on_unavailable == REDIS_OUTAGE_PASS) {
        for (size_t i = 0; i < j->nitems; i++) {
            if (j->items[i].state == DI_ASK)
                j->items[i].state = DI_UNFILTERED;
        }
        j->nask = 0;
        job_ready(d, j);
        return;
    }
    if (j->state != J_WAIT)
        g_metrics.dedup_held++;
    j->state = J_WAIT;
}

/* Same topic/partition/offset as the pending value v ("p:...:<n>")? */
static int same_position(const struct ditem *it, const char *v, size_t vlen, long *deliveries)
{
    char pos[320];
    int n = pending_pos(pos, sizeof(pos), it->part->topic, it->part->p->index, it->offset);
    if (n < 0 || vlen <= (size_t)n || memcmp(v, pos, (size_t)n) != 0 || v[n] != ':')
        return 0;
    char *end;
    long c = strtol(v + n + 1, &end, 10);
    *deliveries = (*end == 0 && c > 0) ? c : 1;
    return 1;
}

/* Applies Redis' answer to one DI_ASK item; -1 if the reply is unusable. */
static int apply_reply(struct ditem *it, const redisc_reply_t *r)
{
    if (r->type == REDISC_REPLY_NIL) {
        it->state = DI_NEW;
        it->deliveries = 1;
        return 0;
    }
    if (r->type != REDISC_REPLY_STRING || !r->str)
        return -1;
    if (r->len == 1 && r->str[0] == 'd') {
        it->state = it->pos ? DI_SEEN : DI_DONE;
        return 0;
    }
    if (r->len == 1 && r->str[0] == 'x') {
        it->state = DI_DEAD;
        return 0;
    }
    long n = 0;
    if (r->len > 2 && r->str[0] == 'p' && r->str[1] == ':') {
        if (same_position(it, r->str, r->len, &n)) {
            it->state = DI_AGAIN;
            it->deliveries = n < LONG_MAX ? n + 1 : n; /* a count no eosproxy wrote */
            it->old = strdup(r->str);
        } else {
            it->state = DI_IN_FLIGHT;
        }
        return 0;
    }
    return -1;
}

/* Redelivered items: bump the delivery count and renew the pending mark,
 * only if the mark is still the one read (compare-and-set). */
static void send_redeliveries(struct dedup *d, const struct djob *j)
{
    static const char script[] =
        "if redis.call('GET',KEYS[1])==ARGV[1] then "
        "return redis.call('SET',KEYS[1],ARGV[2],'PX',ARGV[3]) end return 0";
    redisc_batch_t *b = NULL;
    for (size_t i = 0; i < j->nitems; i++) {
        const struct ditem *it = &j->items[i];
        if (it->state != DI_AGAIN || !it->old)
            continue;
        if (!b && !(b = redisc_batch_new()))
            return;
        char pos[320], val[360], ttl[24];
        int n = pending_pos(pos, sizeof(pos), it->part->topic, it->part->p->index, it->offset);
        int vl = snprintf(val, sizeof(val), "%s:%ld", pos, it->deliveries);
        int tl =
            snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)d->cfg->redis.pending_ttl_ms);
        if (n < 0 || vl < 0 || (size_t)vl >= sizeof(val))
            continue;
        const char *argv[] = {"EVAL", script, "1", it->key, it->old, val, ttl};
        size_t lens[] = {4,          sizeof(script) - 1, 1, it->klen, strlen(it->old),
                         (size_t)vl, (size_t)tl};
        if (redisc_batch_add(b, 7, argv, lens))
            break;
    }
    if (b && redisc_batch_count(b))
        redisc_batch_send(d->rc, b, NULL, NULL); /* not waited on */
    else
        redisc_batch_free(b);
}

/* ---------------------------------------------------------------- dlq */

/* How long a dead-lettered record of rule r stays known. */
static uint64_t dead_ttl(const policy_rule_t *r)
{
    return r->dedup.src != EVENTID_NONE ? r->dedup.ttl_ms : DD_DEAD_TTL_MS;
}

/*
 * Finds, in each partition of a dlq rule, the first record still to be
 * processed (the first one delivered, new or again, in offset order: the
 * one a consumer that restarts from its committed offset meets first), and
 * counts a delivery again for it alone: the records after it in the
 * response were delivered as well (clients prefetch), but a consumer
 * failing on the first never reached them, so their counts stay as they
 * were (only their pending marks are renewed). Without this, each record
 * behind a poison one would arrive at max_deliveries with it and follow
 * it into the DLQ on the next re-read.
 */
static void find_heads(struct djob *j)
{
    for (size_t i = 0; i < j->nparts; i++) {
        struct dpart *dp = &j->parts[i];
        dp->head = NULL;
        if (!POLICY_HAS_DLQ(dp->rule))
            continue;
        for (size_t k = 0; k < dp->nbatches && !dp->head; k++) {
            const struct dbatch *db = &dp->batches[k];
            for (int32_t r = 0; db->decoded && r < db->b.nrecords && !dp->head; r++) {
                struct ditem *it = db->item[r] >= 0 ? &j->items[db->item[r]] : NULL;
                if (it && it->part == dp && (it->state == DI_NEW || it->state == DI_AGAIN))
                    dp->head = it;
            }
        }
    }
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state == DI_AGAIN && POLICY_HAS_DLQ(it->part->rule) && it != it->part->head &&
            it->deliveries > 1)
            it->deliveries--; /* as read: not counted */
    }
}

/* 1 if head it of dp counts towards a dead-letter without commit
 * evidence: its topic had none yet, or its count restarted after the last
 * one (struct drestart). */
static int counted_since_dead(struct dedup *d, const struct dpart *dp, const struct ditem *it)
{
    uint64_t gen = topic_state(d, dp->scope, dp->topic)->dead_gen;
    uint64_t h = hash_bytes(it->key, it->klen) | 1;
    const struct drestart *r = &d->restarts[h % DD_RESTART_SLOTS];
    return gen == 0 || (r->hash == h && r->gen == gen);
}

/* Notes that head it of dp counts from its topic's last dead-letter on. */
static void note_counted(struct dedup *d, const struct dpart *dp, const struct ditem *it)
{
    uint64_t h = hash_bytes(it->key, it->klen) | 1;
    d->restarts[h % DD_RESTART_SLOTS] =
        (struct drestart){h, topic_state(d, dp->scope, dp->topic)->dead_gen};
}

/* Head it of dp starts counting its deliveries again (written back to
 * Redis by send_redeliveries). */
static void restart_count(struct dedup *d, const struct dpart *dp, struct ditem *it)
{
    note_counted(d, dp, it);
    it->deliveries = 1;
    g_metrics.dlq_restarts++;
}

/* When the consumers of dp's scope last committed exactly at its head's
 * offset (they processed everything before it, then stopped there): that
 * commit's sequence number, else 0. */
static uint64_t commit_evidence(const struct dedup *d, const struct dpart *dp)
{
    uint64_t h = track_hash(dp->scope, dp->topic, dp->p->index) | 1;
    const struct dlastcommit *c = &d->lastcommit[h % DD_LASTCOMMIT_SLOTS];
    return c->hash == h && dp->head && c->offset == dp->head->offset ? c->seq : 0;
}

/*
 * Marks the poison record of j, if any: a partition's head (find_heads)
 * delivered dlq.max_deliveries times already. Only one per response: a
 * consumer that fails on one record never reaches the partitions it would
 * have processed after it, so their heads pile up deliveries too. Which
 * one: the head the consumers reached by committing up to it (the last
 * commit seen on its partition is its offset), the most recently
 * committed first; without such evidence, the first due head in the
 * response (clients process a response in about its order) whose count
 * went on after its topic's last dead-letter (counted_since_dead). The
 * others start counting again: they were delivered as often because the
 * consumer kept failing before reaching them; once the poison is gone it
 * reaches them (and commits past them), and one that is poison too is
 * moved after max_deliveries more deliveries. Returns 0 or 1.
 */
static size_t find_poison(struct djob *j)
{
    struct ditem *first = NULL, *best = NULL;
    uint64_t best_seq = 0;
    for (size_t i = 0; i < j->nparts; i++) {
        struct dpart *dp = &j->parts[i];
        struct ditem *head = dp->head;
        if (!head || head->state != DI_AGAIN || head->deliveries <= dp->rule->dlq.max_deliveries)
            continue;
        uint64_t seq = commit_evidence(j->d, dp);
        if (!seq && !counted_since_dead(j->d, dp, head)) {
            restart_count(j->d, dp, head); /* due from before the last dead-letter */
            continue;
        }
        if (!first)
            first = head;
        if (seq > best_seq) {
            best = head;
            best_seq = seq;
        }
    }
    struct ditem *poison = best ? best : first;
    if (!poison)
        return 0;
    poison->state = DI_POISON;
    topic_state(j->d, poison->part->scope, poison->part->topic)->dead_gen = ++j->d->dead_seq;
    note_counted(j->d, poison->part, poison); /* a failed write may retry at once */
    for (size_t i = 0; i < j->nparts; i++) {
        struct ditem *head = j->parts[i].head;
        if (!head || head == poison || head->state != DI_AGAIN)
            continue;
        if (head->deliveries > j->parts[i].rule->dlq.max_deliveries)
            restart_count(j->d, &j->parts[i], head);
        else if (head->deliveries == 1) /* restarted above, before this dead-letter */
            note_counted(j->d, &j->parts[i], head);
    }
    return 1;
}

/* A poison record's write is over: it is dead-lettered (left out, and
 * marked "x" in Redis) or, when the write failed, delivered again. */
static void dlq_settle(struct dedup *d, struct djob *j, struct ditem *it, int ok)
{
    it->dlq_id = 0;
    if (!ok) {
        it->state = DI_AGAIN;
        return;
    }
    const policy_rule_t *r = it->part->rule;
    char *k = strndup(it->key, it->klen);
    it->state = DI_DEAD;
    metrics_dlq_record(it->part->topic.ptr, (size_t)it->part->topic.len, DLQ_REASON_REDELIVERED);
    cache_put(&d->cache, it->key, it->klen, dead_ttl(r), now_ms(d));
    if (k)
        mark_push(d, k, dead_ttl(r), 'x');
}

/* One write of j fewer outstanding; the last makes j ready. */
static void dlq_one_less(struct dedup *d, struct djob *j)
{
    if (j->npoison && --j->npoison == 0) {
        flush_marks(d);
        job_ready(d, j);
    }
}

static void dlq_done(void *arg, uint64_t id, int err, const char *errstr, int64_t offset)
{
    struct djob *j = arg; /* valid: a job that goes away cancels its writes */
    struct dedup *d = j->d;
    g_metrics.dlq_inflight--;
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state != DI_POISON || it->dlq_id != id)
            continue;
        const struct dpart *dp = it->part;
        if (err) {
            g_metrics.dlq_write_failures++;
            log_warn("dlq: %.*s-%d offset %lld: the dead-letter write failed (%s); the record "
                     "stays in the stream",
                     (int)dp->topic.len, dp->topic.ptr, (int)dp->p->index, (long long)it->offset,
                     errstr ? errstr : "error");
        } else {
            log_info("dlq: %.*s-%d offset %lld delivered %ld times without a commit past it: "
                     "moved to the dead-letter topic (offset %lld there)",
                     (int)dp->topic.len, dp->topic.ptr, (int)dp->p->index, (long long)it->offset,
                     it->deliveries - 1, (long long)offset);
        }
        dlq_settle(d, j, it, !err);
        break;
    }
    dlq_one_less(d, j);
}

/* The original record's headers as the writer takes them; NULL on OOM. */
static dlqw_header_t *dlq_headers(const krec_t *rec)
{
    size_t n = rec->nheaders > 0 ? (size_t)rec->nheaders : 0;
    dlqw_header_t *hs = calloc(n ? n : 1, sizeof(*hs));
    for (size_t i = 0; hs && i < n; i++) {
        const krec_header_t *h = &rec->headers[i];
        hs[i] = (dlqw_header_t){h->key.ptr, h->key.len > 0 ? (size_t)h->key.len : 0,
                                h->value.len >= 0 ? h->value.ptr : NULL,
                                h->value.len > 0 ? (size_t)h->value.len : 0};
    }
    return hs;
}

/* Sends the dead-letter copy of poison item it; the write's id, 0 if the
 * writer refused it (why says why). */
static uint64_t dlq_send(struct dedup *d, struct djob *j, struct ditem *it, const char **why)
{
    const struct dpart *dp = it->part;
    const krecords_batch_t *b = &dp->batches[it->bidx].b;
    const krec_t *rec = &b->records[it->ridx];
    char name[POLICY_TOPIC_MAX + 8], reason[96];
    const char *dlq =
        policy_dlq_topic(dp->rule, dp->topic.ptr, (size_t)dp->topic.len, name, sizeof(name));
    dlqw_header_t *hs = dlq ? dlq_headers(rec) : NULL;
    if (!hs) {
        *why = dlq ? "out of memory" : "the dead-letter topic name is too long";
        return 0;
    }
    int log_append = (b->hdr.attributes & KRECORD_ATTR_TIMESTAMP_TYPE) != 0;
    int64_t ts = log_append ? b->hdr.max_timestamp : b->hdr.base_timestamp + rec->timestamp_delta;
    int rl = snprintf(reason, sizeof(reason), "delivered %ld times without a commit past it",
                      it->deliveries - 1);
    const struct dgroup *g = group_find(d, dp->scope, dp->topic);
    kdlt_origin_t o = {.topic = dp->topic.ptr,
                       .topic_len = (size_t)dp->topic.len,
                       .partition = dp->p->index,
                       .offset = it->offset,
                       .timestamp = ts,
                       .timestamp_type = log_append,
                       .group = g ? g->group : NULL,
                       .group_len = g ? strlen(g->group) : 0,
                       .reason = reason,
                       .reason_len = (size_t)rl};
    kdlt_headers_t dlt;
    kdlt_headers_build(&o, &dlt);
    dlqw_record_t r = {dlq,
                       -1,
                       rec->key.len >= 0 ? rec->key.ptr : NULL,
                       rec->key.len > 0 ? (size_t)rec->key.len : 0,
                       rec->value.len >= 0 ? rec->value.ptr : NULL,
                       rec->value.len > 0 ? (size_t)rec->value.len : 0,
                       ts,
                       hs,
                       rec->nheaders > 0 ? (size_t)rec->nheaders : 0,
                       &dlt};
    uint64_t id;
    if (d->hooks.dlq_send)
        id = d->hooks.dlq_send(d->hooks.arg, &r, dlq_done, j);
    else if (d->px->dlqw)
        id = dlqw_send(d->px->dlqw, &r, dlq_done, j, why);
    else
        id = 0, *why = "no dead-letter writer";
    free(hs);
    return id;
}

/*
 * Starts the dead-letter writes of j's poison records. A write the writer
 * refuses leaves its record delivered (counted). Returns how many are in
 * flight; when > 0, j waits in J_DLQ.
 */
static size_t dlq_start(struct dedup *d, struct djob *j)
{
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state != DI_POISON)
            continue;
        const char *why = "refused";
        it->dlq_id = dlq_send(d, j, it, &why);
        if (!it->dlq_id) {
            g_metrics.dlq_refused++;
            log_warn("dlq: %.*s-%d offset %lld: cannot write it to the dead-letter topic (%s); "
                     "it stays in the stream",
                     (int)it->part->topic.len, it->part->topic.ptr, (int)it->part->p->index,
                     (long long)it->offset, why);
            dlq_settle(d, j, it, 0);
            continue;
        }
        g_metrics.dlq_inflight++;
        j->npoison++;
    }
    if (j->npoison) {
        j->state = J_DLQ;
        j->dlq_start_ms = now_ms(d);
    }
    return j->npoison;
}

/* j waited DD_DLQ_WAIT_MS for its writes: they count as failed. */
static void dlq_give_up(struct dedup *d, struct djob *j)
{
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state != DI_POISON)
            continue;
        if (d->hooks.dlq_cancel)
            d->hooks.dlq_cancel(d->hooks.arg, it->dlq_id);
        else
            dlqw_cancel(d->px->dlqw, it->dlq_id);
        g_metrics.dlq_inflight--;
        g_metrics.dlq_write_failures++;
        dlq_settle(d, j, it, 0);
    }
    j->npoison = 1;
    dlq_one_less(d, j);
}

/* 1 if r is an answer SET NX GET can give (nil or a bulk string). */
static int reply_usable(const redisc_reply_t *r)
{
    return r->type == REDISC_REPLY_NIL || (r->type == REDISC_REPLY_STRING && r->str);
}

/*
 * The pipeline of job j answered (or failed). j is valid: a job that goes
 * away cancels its batch first. Either every reply is usable and applied,
 * or none is and the outage policy decides (the marks already set by this
 * pipeline then read as "pending here" on the retry: delivered).
 */
static void job_replies(void *arg, int err, const redisc_reply_t *replies, size_t n)
{
    struct djob *j = arg;
    struct dedup *d = j->d;
    j->redis_id = 0;
    if (!err && n != j->nask)
        err = 1;
    for (size_t k = 0; !err && k < n; k++) {
        if (!reply_usable(&replies[k])) {
            log_warn("dedup: Redis answered %s%s; treating Redis as unavailable",
                     replies[k].type == REDISC_REPLY_ERROR ? "an error: " : "an unexpected reply",
                     replies[k].type == REDISC_REPLY_ERROR && replies[k].str ? replies[k].str : "");
            err = 1;
        }
    }
    for (size_t i = 0, k = 0; !err && i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state != DI_ASK)
            continue;
        if (apply_reply(it, &replies[k++])) {
            /* A value eosproxy never writes: deliver (at-least-once); the
             * commit then overwrites it with "d". */
            it->state = DI_NEW;
            it->deliveries = 1;
        }
        if (it->state == DI_DONE)
            cache_put(&d->cache, it->key, it->klen, it->part->rule->dedup.ttl_ms, now_ms(d));
        else if (it->state == DI_DEAD)
            cache_put(&d->cache, it->key, it->klen, dead_ttl(it->part->rule), now_ms(d));
    }
    if (err) {
        job_unavailable(d, j);
        return;
    }
    j->nask = 0;
    find_heads(j);
    size_t npoison = find_poison(j);
    send_redeliveries(d, j);
    if (npoison && dlq_start(d, j) > 0)
        return; /* J_DLQ: ready once the dead-letter writes are answered */
    job_ready(d, j);
}

/* Sends the job's questions as one pipeline; 0, or -1 if Redis is not
 * usable now. */
static int job_send(struct dedup *d, struct djob *j)
{
    if (!redisc_ready(d->rc))
        return -1;
    redisc_batch_t *b = redisc_batch_new();
    if (!b)
        return -1;
    char ttl[24];
    int tl = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)d->cfg->redis.pending_ttl_ms);
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (it->state != DI_ASK)
            continue;
        char val[360];
        int n = pending_pos(val, sizeof(val) - 3, it->part->topic, it->part->p->index, it->offset);
        if (n < 0) {
            redisc_batch_free(b);
            return -1;
        }
        memcpy(val + n, ":1", 3);
        const char *argv[] = {"SET", it->key, val, "NX", "GET", "PX", ttl};
        size_t lens[] = {3, it->klen, (size_t)n + 2, 2, 3, 2, (size_t)tl};
        if (redisc_batch_add(b, 7, argv, lens)) {
            redisc_batch_free(b);
            return -1;
        }
    }
    uint64_t id = redisc_batch_send(d->rc, b, job_replies, j);
    if (!id)
        return -1;
    if (j->state == J_WAIT)
        g_metrics.dedup_held--;
    j->state = J_SENT;
    j->redis_id = id;
    return 0;
}

/* ---------------------------------------------------------------- decode */

/* Is this transactional batch part of an aborted transaction listed in
 * the partition's AbortedTransactions? */
static int batch_aborted(const kfetch_partition_t *p, const krecord_batch_t *h)
{
    if (!(h->attributes & KRECORD_ATTR_TRANSACTIONAL) || p->naborted <= 0)
        return 0;
    for (int32_t i = 0; i < p->naborted; i++) {
        if (p->aborted[i].producer_id == h->producer_id &&
            p->aborted[i].first_offset <= h->base_offset)
            return 1;
    }
    return 0;
}

/*
 * The distinct eventIds of one response: an open-addressing table of
 * indexes into the job's items. It starts small and doubles whenever it
 * would pass half full, so a probe always meets an empty slot: the number
 * of records in a response is not known from its size (compressed
 * batches of tiny records hold far more than size/64), and a table sized
 * from a guess once filled up and made the probe spin for ever.
 */
struct keyset {
    int32_t *slots;
    size_t n;    /* power of two */
    size_t used; /* slots taken; kept <= n / 2 */
};

#define KEYSET_MIN 64u

static int keyset_init(struct keyset *s)
{
    s->n = KEYSET_MIN;
    s->used = 0;
    s->slots = malloc(s->n * sizeof(*s->slots));
    if (!s->slots)
        return -1;
    memset(s->slots, 0xff, s->n * sizeof(*s->slots));
    return 0;
}

/* The first empty slot for hash h, or the slot holding key. */
static size_t keyset_slot(const struct keyset *s, const struct ditem *items, uint64_t h,
                          const char *key, size_t klen)
{
    size_t m = s->n - 1, i = h & m;
    for (size_t probes = 0; probes < s->n; probes++, i = (i + 1) & m) {
        int32_t v = s->slots[i];
        if (v < 0 || (items[v].klen == klen && memcmp(items[v].key, key, klen) == 0))
            return i;
    }
    return SIZE_MAX; /* unreachable while used <= n / 2 */
}

/* Doubles the table, placing every index again. -1 on OOM (s unchanged). */
static int keyset_grow(struct keyset *s, const struct ditem *items)
{
    if (s->n > SIZE_MAX / 2 / sizeof(*s->slots))
        return -1;
    struct keyset g = {malloc(s->n * 2 * sizeof(*s->slots)), s->n * 2, s->used};
    if (!g.slots)
        return -1;
    memset(g.slots, 0xff, g.n * sizeof(*g.slots));
    for (size_t i = 0; i < s->n; i++) {
        int32_t v = s->slots[i];
        if (v < 0)
            continue;
        const struct ditem *it = &items[v];
        g.slots[keyset_slot(&g, items, hash_bytes(it->key, it->klen), it->key, it->klen)] = v;
    }
    free(s->slots);
    *s = g;
    return 0;
}

/* The index of key among items, or -1 when it was absent and idx was
 * inserted for it; -2 on OOM (nothing inserted). */
static int32_t keyset_find_or_add(struct keyset *s, const struct ditem *items, const char *key,
                                  size_t klen, int32_t idx)
{
    if ((s->used + 1) * 2 > s->n && keyset_grow(s, items))
        return -2;
    size_t i = keyset_slot(s, items, hash_bytes(key, klen), key, klen);
    if (i == SIZE_MAX)
        return -2;
    if (s->slots[i] >= 0)
        return s->slots[i];
    s->slots[i] = idx;
    s->used++;
    return -1;
}

static struct ditem *item_new(struct djob *j)
{
    if (j->nitems == j->cap_items) {
        size_t cap = j->cap_items ? j->cap_items * 2 : 64;
        struct ditem *it = realloc(j->items, cap * sizeof(*it));
        if (!it)
            return NULL;
        j->items = it;
        j->cap_items = cap;
    }
    struct ditem *it = &j->items[j->nitems];
    memset(it, 0, sizeof(*it));
    return it;
}

/* The identity of a record without an eventId under a dlq rule:
 * "@pos <topic>/<partition>/<offset>" into buf; its length, or -1. */
#define DD_POS_ID_MAX (POLICY_TOPIC_MAX + 48)
static int32_t pos_id(char *buf, const struct dpart *dp, int64_t offset)
{
    int n = snprintf(buf, DD_POS_ID_MAX, "@pos %.*s/%d/%lld", (int)dp->topic.len, dp->topic.ptr,
                     (int)dp->p->index, (long long)offset);
    return n > 0 && n < DD_POS_ID_MAX ? n : -1;
}

/* Classifies every record of one decoded batch. -1 on OOM. */
static int scan_batch(struct dedup *d, struct djob *j, struct dpart *dp, struct dbatch *db,
                      struct keyset *ks)
{
    const policy_rule_t *rule = dp->rule;
    static uint8_t scratch[DD_SCRATCH];
    uint64_t now = now_ms(d);
    db->item = calloc(db->b.nrecords ? (size_t)db->b.nrecords : 1, sizeof(*db->item));
    if (!db->item)
        return -1;
    for (int32_t r = 0; r < db->b.nrecords; r++) {
        const krec_t *rec = &db->b.records[r];
        int64_t offset = db->b.hdr.base_offset + rec->offset_delta;
        kbytes_t id;
        char posid[DD_POS_ID_MAX];
        int pos = 0;
        g_metrics.dedup_records_checked++;
        if (rule->dedup.src == EVENTID_NONE ||
            !krecords_event_id(rec, (int)rule->dedup.src, rule->dedup.name, &id, scratch,
                               sizeof(scratch)) ||
            id.len < 0) {
            if (rule->dedup.src != EVENTID_NONE)
                g_metrics.dedup_no_event_id++;
            if (!POLICY_HAS_DLQ(rule) || (id.len = pos_id(posid, dp, offset)) < 0) {
                db->item[r] = REC_NO_ID;
                continue;
            }
            id.ptr = (const uint8_t *)posid;
            pos = 1;
        }
        size_t klen;
        char *key = make_key(dp->scope, id.ptr, (size_t)id.len, pos, &klen);
        struct ditem *it = key ? item_new(j) : NULL;
        if (!it) {
            free(key);
            return -1;
        }
        it->key = key;
        it->klen = klen;
        int32_t prev = keyset_find_or_add(ks, j->items, key, klen, (int32_t)j->nitems);
        if (prev == -2) {
            free(key);
            it->key = NULL;
            return -1;
        }
        if (prev >= 0) {
            free(key);
            it->key = NULL;
            db->item[r] = REC_DUP;
            g_metrics.dedup_dropped[DEDUP_DROP_SAME_RESPONSE]++;
            continue;
        }
        it->part = dp;
        it->offset = offset;
        it->pos = pos;
        it->bidx = (uint32_t)(db - dp->batches);
        it->ridx = r;
        if (cache_has(&d->cache, key, klen, now)) {
            it->state = pos ? DI_DEAD : DI_DONE; /* position keys are cached only dead */
            g_metrics.dedup_cache_hits++;
        } else {
            it->state = DI_ASK;
            j->nask++;
        }
        db->item[r] = (int32_t)j->nitems++;
    }
    return 0;
}

/* What take_batch decided about the next batch of a partition. */
enum take {
    TAKE_OK = 0, /* taken: decoded (db->decoded) or passed as it is */
    TAKE_CUT,    /* the job's budget ends the response before it */
    TAKE_OVER,   /* the engine-wide held-bytes bound, on the job's first batch */
};

/* What one decoded record is estimated to hold in a job (krec_t, its
 * item, its key), counted in the held bytes with the inflated ones. */
#define DD_RECORD_COST (sizeof(krec_t) + sizeof(struct ditem) + sizeof(int32_t) + 64)

/* Passes a batch as it is (counted), logging why at debug. */
static void pass_batch(const struct dpart *dp, const char *why)
{
    if (why)
        log_debug("dedup: %.*s-%d: batch passed unchecked: %s", (int)dp->topic.len, dp->topic.ptr,
                  (int)dp->p->index, why);
    g_metrics.dedup_passed_undecodable++;
}

/*
 * Decides about the complete batch db->raw[0..db->size) of dp against the
 * job's budget (DEDUP_JOB_MAX_*; dedup.h) and decodes it when its records
 * are to be checked. A batch costs its recordCount (one at least); it is
 * cut (TAKE_CUT) when it would take the job past max_records, or its
 * decompressed bytes past max_inflated or the engine past max_held, unless
 * it is the job's first batch, which is always taken so that the partition
 * moves on. A batch of more than max_records records is passed unchecked
 * (no job could hold it); a first batch that does not fit the engine-wide
 * bound gives TAKE_OVER (redis.on_unavailable decides). Control batches,
 * aborted transactions, message format < 2 and batches that fail to
 * decode are passed as they are. TAKE_OK sets db->decoded if the records
 * are to be checked.
 */
static int take_batch(struct dedup *d, struct djob *j, struct dpart *dp, struct dbatch *db)
{
    krecord_batch_t h = {0};
    const char *why = NULL;
    int check = db->size >= KRECORD_HEADER_SIZE && db->raw[KREC_OFF_MAGIC] == 2;
    if (check) {
        krecord_read_header(db->raw, &h);
        check = !(h.attributes & KRECORD_ATTR_CONTROL) && !batch_aborted(dp->p, &h);
    } else {
        why = db->raw[KREC_OFF_MAGIC] != 2 ? "message format < 2" : "shorter than its header";
    }
    size_t cost = check && h.record_count > 0 ? (size_t)h.record_count : 1;
    if (cost > d->max_records) {
        check = 0;
        cost = 1;
        why = "more records than a response may hold";
    }
    if (j->nbatches && j->records + cost > d->max_records)
        return TAKE_CUT;
    if (check && krecords_decode(db->raw, db->size, &db->b, &why) == 0) {
        size_t held = db->b.inflated_len + (size_t)db->b.nrecords * DD_RECORD_COST;
        int over_job = j->inflated + db->b.inflated_len > d->max_inflated;
        int over_all = d->job_bytes + held > d->max_held;
        if (over_all || (over_job && j->nbatches)) {
            krecords_batch_free(&db->b);
            return j->nbatches ? TAKE_CUT : TAKE_OVER;
        }
        db->decoded = 1;
        j->inflated += db->b.inflated_len;
        j->held += held;
        d->job_bytes += held;
    } else {
        pass_batch(dp, why); /* control or aborted batches: no reason logged */
    }
    j->nbatches++;
    j->records += cost;
    return TAKE_OK;
}

/*
 * Cuts a partition's records into batches and scans those it can, until
 * the job's budget stops it (then dp->cut, and nothing after its batches
 * reaches the client). Returns 0, TAKE_CUT, TAKE_OVER, or -1 on OOM.
 */
static int scan_partition(struct dedup *d, struct djob *j, struct dpart *dp, struct keyset *ks)
{
    const uint8_t *p = dp->p->records.ptr;
    size_t len = (size_t)dp->p->records.len, off = 0, cap = 0;
    while (len - off >= 12) {
        int32_t bl = kbe32(p + off + KREC_OFF_BATCH_LENGTH);
        if (bl < 0 || (size_t)bl > len - off - 12)
            break; /* the partial batch at the end: passed as it is */
        if (dp->nbatches == cap) {
            cap = cap ? cap * 2 : 8;
            struct dbatch *nb = realloc(dp->batches, cap * sizeof(*nb));
            if (!nb)
                return -1;
            dp->batches = nb;
        }
        struct dbatch *db = &dp->batches[dp->nbatches];
        memset(db, 0, sizeof(*db));
        db->raw = p + off;
        db->size = 12 + (size_t)bl;
        int rc = take_batch(d, j, dp, db);
        if (rc != TAKE_OK) {
            dp->cut = 1;
            dp->whole = off;
            return rc;
        }
        dp->nbatches++;
        off += db->size;
        if (db->decoded && scan_batch(d, j, dp, db, ks))
            return -1;
    }
    if (off < len)
        g_metrics.dedup_passed_undecodable++;
    dp->whole = off;
    return 0;
}

/* The rule of a topic this engine checks (dedup or dlq), or NULL. */
static const policy_rule_t *dedup_rule(const struct dedup *d, kstr_t topic)
{
    const policy_rule_t *r = policy_lookup(d->cfg->policy, topic.ptr, (size_t)topic.len);
    return r && (r->dedup.src != EVENTID_NONE || POLICY_HAS_DLQ(r)) ? r : NULL;
}

/* Counts the dedup partitions of resp (0: the response is not ours). */
static size_t count_dedup_parts(const struct dedup *d, const kfetch_resp_t *resp)
{
    size_t n = 0;
    for (int32_t t = 0; t < resp->ntopics; t++) {
        if (dedup_rule(d, resp->topics[t].name))
            n += (size_t)resp->topics[t].npartitions;
    }
    return n;
}

/* The job's budget cut it: counted, and said at debug. */
static void job_cut(struct djob *j, const struct dpart *dp)
{
    j->cut = 1;
    g_metrics.dedup_responses_cut++;
    log_debug("dedup: Fetch response for client %llu cut at %.*s-%d (%zu batches, %zu records, "
              "%zu bytes inflated): the client fetches the rest again",
              (unsigned long long)j->client_id, (int)dp->topic.len, dp->topic.ptr,
              (int)dp->p->index, j->nbatches, j->records, j->inflated);
}

/*
 * Builds the job's dedup partitions and items. Once the budget cut a
 * partition, later dedup partitions with records are answered without
 * any (error 0: the client fetches them again, as after any short
 * answer). Returns 0, TAKE_OVER (the engine-wide bound), or -1 on OOM.
 */
static int job_scan(struct dedup *d, struct djob *j, size_t nparts)
{
    j->parts = calloc(nparts, sizeof(*j->parts));
    struct keyset ks = {NULL, 0, 0};
    int rc = -1;
    if (!j->parts || keyset_init(&ks))
        goto out;
    for (int32_t t = 0; t < j->resp.ntopics; t++) {
        kfetch_topic_t *tp = &j->resp.topics[t];
        const policy_rule_t *r = dedup_rule(d, tp->name);
        if (!r)
            continue;
        for (int32_t i = 0; i < tp->npartitions; i++) {
            struct dpart *dp = &j->parts[j->nparts++];
            dp->p = &tp->partitions[i];
            dp->topic = tp->name;
            dp->rule = r;
            dp->scope = rule_scope(d, r);
            if (dp->p->error_code != 0 || dp->p->records.len <= 0)
                continue;
            if (j->cut) {
                dp->cut = 1;
                continue;
            }
            int s = scan_partition(d, j, dp, &ks);
            if (s == TAKE_CUT) {
                job_cut(j, dp);
            } else if (s) {
                rc = s;
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(ks.slots);
    return rc;
}

/* ---------------------------------------------------------------- answer */

/* Does record r of db reach the client? */
static int keep_record(const struct djob *j, const struct dbatch *db, int32_t r)
{
    int32_t i = db->item[r];
    if (i == REC_NO_ID)
        return 1;
    if (i == REC_DUP)
        return 0;
    int s = j->items[i].state;
    return s == DI_NEW || s == DI_AGAIN || s == DI_UNFILTERED || s == DI_SEEN;
}

/*
 * kafka-python 2.0.2, the Fetch v4 client, steps past records it is not
 * given only through last_offset_from_message_batch (the last batch's
 * baseOffset + lastOffsetDelta), which it tests for truth: when the chunk's
 * last batch ends at offset 0 it never moves off offset 0 and fetches it
 * for ever. The mock returns one batch per fetch, so this is any partition
 * whose first batch is a lone duplicate. No empty form helps (a record at
 * an offset >= 0 reaches the application), so for Fetch v4 such a batch
 * is delivered as it is: one duplicate, counted, rather than a stall.
 */
static int must_keep_batch(const struct djob *j, const struct dpart *dp, size_t k)
{
    const krecord_batch_t *h = &dp->batches[k].b.hdr;
    return j->ver < 5 && k + 1 == dp->nbatches && h->base_offset + h->last_offset_delta == 0;
}

/* Fills keep[] for batch k; every record when none would be kept but the
 * batch must be (its dropped items become DI_KEPT0). */
static void batch_keep(struct djob *j, struct dpart *dp, size_t k, uint8_t *keep)
{
    const struct dbatch *db = &dp->batches[k];
    int32_t kept = 0;
    for (int32_t r = 0; r < db->b.nrecords; r++)
        kept += keep[r] = (uint8_t)keep_record(j, db, r);
    if (kept || db->b.nrecords == 0 || !must_keep_batch(j, dp, k))
        return;
    for (int32_t r = 0; r < db->b.nrecords; r++) {
        keep[r] = 1;
        if (db->item[r] >= 0)
            j->items[db->item[r]].state = DI_KEPT0;
    }
}

/* Writes a partition's filtered records into new_records. -1 on OOM. */
static int write_partition(struct djob *j, struct dpart *dp)
{
    kwriter_t w;
    kw_init(&w, (size_t)dp->p->records.len + 64);
    for (size_t k = 0; k < dp->nbatches && !w.err; k++) {
        struct dbatch *db = &dp->batches[k];
        if (!db->decoded) {
            kw_raw(&w, db->raw, db->size);
            continue;
        }
        uint8_t *keep = malloc(db->b.nrecords ? (size_t)db->b.nrecords : 1);
        if (!keep) {
            kw_free(&w);
            return -1;
        }
        batch_keep(j, dp, k, keep);
        int rc = krecords_filter(&w, &db->b, db->raw, db->size, keep,
                                 krecords_empty_mode_for_fetch(j->ver, k == 0));
        free(keep);
        if (rc) {
            kw_free(&w);
            return -1;
        }
    }
    if (!dp->cut) /* the partial batch a broker may end with */
        kw_raw(&w, dp->p->records.ptr + dp->whole, (size_t)dp->p->records.len - dp->whole);
    if (w.err) {
        kw_free(&w);
        return -1;
    }
    size_t n;
    uint8_t *buf = kw_detach(&w, &n);
    if (!buf)
        return -1;
    dp->p->new_records = (kbytes_t){buf, (int32_t)n};
    return 0;
}

/* A delivery of item it, to be marked done at the commit past it: by
 * this process (track_add) or, through the shared index, by any process
 * of the scope (eventIds only: a position key is this process's). */
static void delivered(struct dedup *d, const struct ditem *it)
{
    track_add(d, it->part, it->offset, it->key, it->klen, it->pos);
    if (!it->pos)
        dedupidx_add(d->idx, it->part->scope, it->part->topic, it->part->p->index, it->offset,
                     it->key, it->klen, it->part->rule->dedup.ttl_ms);
}

/* Counts outcomes and remembers the deliveries for commit tracking. */
static void account(struct dedup *d, struct djob *j)
{
    for (size_t i = 0; i < j->nitems; i++) {
        struct ditem *it = &j->items[i];
        if (!it->key)
            continue;
        switch (it->state) {
        case DI_NEW:
            delivered(d, it);
            break;
        case DI_AGAIN:
            g_metrics.dedup_redelivered++;
            metrics_observe_redelivery(it->deliveries);
            delivered(d, it);
            break;
        case DI_DEAD:
            g_metrics.dlq_skipped++;
            break;
        case DI_DONE:
            g_metrics.dedup_dropped[DEDUP_DROP_DONE]++;
            break;
        case DI_IN_FLIGHT:
            g_metrics.dedup_dropped[DEDUP_DROP_IN_FLIGHT]++;
            break;
        case DI_UNFILTERED:
            g_metrics.dedup_passed_unfiltered++;
            break;
        case DI_KEPT0:
            g_metrics.dedup_kept_offset0++;
            break;
        default:
            break;
        }
    }
    dedupidx_send(d->idx);
}

/* Redis stayed unavailable (block), or the held responses reached their
 * bound: every dedup partition of resp answers the retriable error 6
 * with no records. */
static void fail_dedup_partitions(const struct dedup *d, kfetch_resp_t *resp)
{
    for (int32_t t = 0; t < resp->ntopics; t++) {
        kfetch_topic_t *tp = &resp->topics[t];
        if (!dedup_rule(d, tp->name))
            continue;
        for (int32_t i = 0; i < tp->npartitions; i++) {
            kfetch_partition_t *p = &tp->partitions[i];
            if (p->new_records.ptr != dd_empty)
                free((void *)p->new_records.ptr);
            p->error_code = KERR_NOT_LEADER_OR_FOLLOWER;
            p->new_records = (kbytes_t){dd_empty, 0};
            g_metrics.dedup_error_partitions++;
        }
    }
}

static void free_buf(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* The complete Fetch response frame of resp; NULL on OOM. */
static struct evbuffer *resp_answer(int16_t ver, const kfetch_resp_t *resp, size_t size_hint)
{
    kwriter_t w;
    kw_init(&w, size_hint + 256);
    struct evbuffer *out = NULL;
    if (kfetch_resp_write(&w, ver, resp) == 0 && !w.err && (out = evbuffer_new())) {
        size_t n;
        uint8_t *buf = kw_detach(&w, &n); /* handed over without a copy */
        if (!buf || evbuffer_add_reference(out, buf, n, free_buf, NULL)) {
            free(buf);
            evbuffer_free(out);
            out = NULL;
        }
    }
    kw_free(&w);
    return out;
}

/* Builds the answer of a ready job; NULL on OOM (the client is closed). */
static struct evbuffer *job_answer(struct dedup *d, struct djob *j)
{
    struct evbuffer *out = j->answer;
    if (out) {
        j->answer = NULL;
        return out;
    }
    if (j->failed) {
        fail_dedup_partitions(d, &j->resp);
    } else {
        for (size_t i = 0; i < j->nparts; i++) {
            struct dpart *dp = &j->parts[i];
            if ((dp->nbatches || dp->cut) && write_partition(j, dp))
                return NULL;
        }
        account(d, j);
    }
    return resp_answer(j->ver, &j->resp, j->len);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dedup *d = arg;
    (void)fd;
    (void)what;
    struct djob *j, *next;
    for (j = TAILQ_FIRST(&d->jobs); j; j = next) {
        next = TAILQ_NEXT(j, link);
        if (j->state != J_READY)
            continue;
        struct evbuffer *out = job_answer(d, j);
        if (!out)
            log_error("dedup: cannot build the Fetch response for client %llu (out of memory)",
                      (unsigned long long)j->client_id);
        uint64_t cid = j->client_id, tok = j->token;
        job_free(d, j);
        if (d->hooks.answer)
            d->hooks.answer(d->hooks.arg, cid, tok, out);
        else
            d->px->done.slot_done(d->px, cid, tok, out); /* takes out */
    }
}

/* Retries waiting jobs, expires held ones, writes pending done marks. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dedup *d = arg;
    (void)fd;
    (void)what;
    uint64_t now = now_ms(d);
    struct djob *j;
    struct djob *next;
    for (j = TAILQ_FIRST(&d->jobs); j; j = next) {
        next = TAILQ_NEXT(j, link);
        if (j->state == J_READY)
            continue;
        if (j->state == J_DLQ) {
            if (now - j->dlq_start_ms >= DD_DLQ_WAIT_MS)
                dlq_give_up(d, j);
            continue;
        }
        if (now - j->start_ms >= d->cfg->redis.block_timeout_ms) {
            if (j->redis_id)
                redisc_cancel(d->rc, j->redis_id);
            j->redis_id = 0;
            int pass = d->cfg->redis.on_unavailable == REDIS_OUTAGE_PASS;
            log_warn("dedup: Redis unavailable for %llu ms: client %llu gets %s",
                     (unsigned long long)(now - j->start_ms), (unsigned long long)j->client_id,
                     pass ? "its records unchecked" : "a retriable error");
            if (pass) {
                job_unavailable(d, j); /* a round trip still out: pass, never an error */
            } else {
                j->failed = 1;
                job_ready(d, j);
            }
        } else if (j->state == J_WAIT) {
            job_send(d, j);
        }
    }
    flush_marks(d);
    dedupidx_tick(d->idx);
}

static void on_redis_state(void *arg, int up)
{
    struct dedup *d = arg;
    if (up) {
        struct djob *j;
        TAILQ_FOREACH(j, &d->jobs, link)
        {
            if (j->state == J_WAIT)
                job_send(d, j);
        }
        flush_marks(d);
        dedupidx_tick(d->idx);
    }
}

/* ================================================================ API */

/* Frees a job that job_new made but that was never queued (nothing of it
 * held yet but its policy reference). NULL is safe. */
static void job_discard(struct djob *j)
{
    if (!j)
        return;
    policy_free(j->policy);
    free(j);
}

/* A new job for the response of (client_id, token), ready (no question
 * asked yet), not queued (job_discard, or job_free once queued). NULL on
 * OOM. */
static struct djob *job_new(struct dedup *d, int16_t ver, uint64_t client_id, uint64_t token)
{
    struct djob *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->d = d;
    j->id = ++d->next_id;
    j->client_id = client_id;
    j->token = token;
    j->policy = policy_ref(d->cfg->policy); /* a live reload may replace it meanwhile */
    j->ver = ver;
    j->start_ms = now_ms(d);
    j->state = J_READY;
    return j;
}

/*
 * The held responses reached their bound (DEDUP_MAX_HELD_BYTES): as when
 * Redis is unavailable, redis.on_unavailable decides. pass: the response
 * goes as it is (0, counted). block: its dedup partitions are answered
 * with the retriable error and no records, by a job holding only that
 * answer (1); the client fetches again. Out of memory it passes (0).
 */
static int over_held(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                     uint64_t client_id, uint64_t token)
{
    int pass = d->cfg->redis.on_unavailable == REDIS_OUTAGE_PASS;
    if (!d->warned_held) {
        d->warned_held = 1;
        log_warn("dedup: %zu bytes of Fetch responses held, the bound: further ones %s until "
                 "the held ones are answered",
                 d->job_bytes, pass ? "pass unchecked" : "get a retriable error");
    }
    kfetch_resp_t resp;
    struct djob *j = pass ? NULL : job_new(d, ver, client_id, token);
    if (j && kfetch_resp_parse(ver, frame, len, &resp, NULL) == 0) {
        fail_dedup_partitions(d, &resp);
        j->answer = resp_answer(ver, &resp, len);
        kfetch_resp_free(&resp);
    }
    if (!j || !j->answer) {
        job_discard(j);
        g_metrics.dedup_resp_unchecked++;
        return 0;
    }
    TAILQ_INSERT_TAIL(&d->jobs, j, link);
    g_metrics.dedup_responses++;
    kick(d);
    return 1;
}

int dedup_fetch_response(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                         uint64_t client_id, uint64_t token)
{
    if (!d)
        return 0;
    if (ver < KFETCH_MIN_VERSION || ver > KFETCH_MAX_VERSION) {
        if (!d->warned_old_fetch++)
            log_warn("dedup: Fetch v%d responses cannot be checked (v%d..v%d); passed as they are",
                     (int)ver, KFETCH_MIN_VERSION, KFETCH_MAX_VERSION);
        return 0;
    }
    kfetch_resp_t resp;
    size_t err_off = 0;
    int rc = kfetch_resp_parse(ver, frame, len, &resp, &err_off);
    if (rc) {
        log_warn("dedup: malformed Fetch v%d response (%s at byte %zu)", (int)ver, kr_strerror(rc),
                 err_off);
        return -1;
    }
    size_t nparts = count_dedup_parts(d, &resp);
    kfetch_resp_free(&resp);
    if (nparts == 0)
        return 0;
    if (d->job_bytes > d->max_held || len > d->max_held - d->job_bytes)
        return over_held(d, ver, frame, len, client_id, token);
    /* Ours: parse again over a copy, which the job keeps (every view of
     * the parsed response, tags included, points into it). */
    struct djob *j = job_new(d, ver, client_id, token);
    uint8_t *copy = j ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        job_discard(j);
        log_error("dedup: out of memory holding a Fetch response; passing it unchecked");
        return 0;
    }
    memcpy(copy, frame, len);
    if (kfetch_resp_parse(ver, copy, len, &j->resp, NULL)) {
        free(copy);
        job_discard(j);
        return -1;
    }
    j->frame = copy;
    j->len = len;
    j->held = len;
    d->job_bytes += len;
    TAILQ_INSERT_TAIL(&d->jobs, j, link);
    rc = job_scan(d, j, nparts);
    if (rc) {
        job_free(d, j);
        if (rc == TAKE_OVER)
            return over_held(d, ver, frame, len, client_id, token);
        log_error("dedup: out of memory checking a Fetch response; passing it unchecked");
        return 0;
    }
    g_metrics.dedup_responses++;
    if (j->nask == 0 || job_send(d, j) == 0) {
        if (j->nask == 0)
            job_ready(d, j);
        return 1;
    }
    job_unavailable(d, j);
    return 1;
}

static void commit_free(struct dedup *d, struct dcommit *c)
{
    TAILQ_REMOVE(&d->commits, c, link);
    d->ncommits--;
    for (size_t i = 0; i < c->nparts; i++)
        free(c->parts[i].topic);
    free(c->parts);
    free(c->txn_id);
    free(c);
}

void dedup_commit_request(struct dedup *d, int16_t api_key, int16_t ver, const uint8_t *frame,
                          size_t len, uint64_t client_id, int32_t correlation_id)
{
    if (!d)
        return;
    kreq_hdr_t h;
    const char *why = NULL;
    kcommit_t req;
    if (kproto_parse_request_header(frame, len, &h, &why) || h.body_off > len ||
        kcommit_req_parse(api_key, ver, frame + h.body_off, len - h.body_off, &req, NULL))
        return;
    size_t n = 0;
    for (int32_t t = 0; t < req.ntopics; t++) {
        if (dedup_rule(d, req.topics[t].name))
            n += (size_t)req.topics[t].npartitions;
    }
    struct dcommit *c = n ? calloc(1, sizeof(*c)) : NULL;
    if (c && !(c->parts = calloc(n, sizeof(*c->parts)))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        kcommit_free(&req);
        return;
    }
    c->client_id = client_id;
    c->corr = correlation_id;
    c->api_key = api_key;
    if (req.transactional_id.len >= 0)
        c->txn_id = strndup(req.transactional_id.ptr, (size_t)req.transactional_id.len);
    for (int32_t t = 0; t < req.ntopics; t++) {
        const kcommit_topic_t *tp = &req.topics[t];
        const policy_rule_t *r = dedup_rule(d, tp->name);
        if (!r)
            continue;
        group_remember(d, rule_scope(d, r), tp->name, req.group_id);
        for (int32_t i = 0; i < tp->npartitions; i++) {
            struct cpart *cp = &c->parts[c->nparts];
            cp->topic = strndup(tp->name.ptr, (size_t)tp->name.len);
            if (!cp->topic)
                continue;
            cp->partition = tp->partitions[i].index;
            cp->offset = tp->partitions[i].committed_offset;
            c->nparts++;
        }
    }
    kcommit_free(&req);
    if (d->ncommits >= DD_COMMITS_MAX)
        commit_free(d, TAILQ_FIRST(&d->commits));
    TAILQ_INSERT_TAIL(&d->commits, c, link);
    d->ncommits++;
}

void dedup_commit_response(struct dedup *d, int16_t api_key, int16_t ver, const uint8_t *frame,
                           size_t len, uint64_t client_id, int32_t correlation_id)
{
    if (!d)
        return;
    struct dcommit *c;
    TAILQ_FOREACH(c, &d->commits, link)
    {
        if (c->client_id == client_id && c->corr == correlation_id && c->api_key == api_key)
            break;
    }
    if (!c)
        return;
    int32_t corr;
    size_t body = 0;
    kcommit_t resp;
    if (kproto_parse_response_header(api_key, ver, frame, len, &corr, &body) < 0 || body > len ||
        kcommit_resp_parse(api_key, ver, frame + body, len - body, &resp, NULL)) {
        commit_free(d, c);
        return;
    }
    int txn = api_key == KAPI_TxnOffsetCommit && c->txn_id;
    for (int32_t t = 0; t < resp.ntopics; t++) {
        const kcommit_topic_t *tp = &resp.topics[t];
        const policy_rule_t *rule = dedup_rule(d, tp->name);
        if (!rule)
            continue;
        for (int32_t i = 0; i < tp->npartitions; i++) {
            for (size_t k = 0; k < c->nparts; k++) {
                struct cpart *cp = &c->parts[k];
                if (cp->partition != tp->partitions[i].index ||
                    strlen(cp->topic) != (size_t)tp->name.len ||
                    memcmp(cp->topic, tp->name.ptr, (size_t)tp->name.len) != 0 || cp->offset < 0)
                    continue;
                if (tp->partitions[i].error_code != 0)
                    cp->offset = -1; /* not committed */
                else if (!txn)
                    track_commit(d, rule, tp->name, cp->partition, cp->offset);
            }
        }
    }
    kcommit_free(&resp);
    if (txn) {
        /* Offsets committed in a transaction count only once EndTxn
         * commits it (an aborted transaction leaves its records pending). */
        c->txn_waiting = 1;
        return;
    }
    commit_free(d, c);
    flush_marks(d);
}

void dedup_endtxn_request(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                          uint64_t client_id, int32_t correlation_id)
{
    if (!d)
        return;
    kreq_hdr_t h;
    const char *why = NULL;
    kstr_t id;
    int committed;
    if (kproto_parse_request_header(frame, len, &h, &why) || h.body_off > len ||
        kcommit_endtxn_req_parse(ver, frame + h.body_off, len - h.body_off, &id, &committed))
        return;
    int waiting = 0;
    struct dcommit *c;
    TAILQ_FOREACH(c, &d->commits, link)
    {
        if (c->txn_waiting && strlen(c->txn_id) == (size_t)id.len &&
            memcmp(c->txn_id, id.ptr, (size_t)id.len) == 0)
            waiting = 1;
    }
    if (!waiting || !(c = calloc(1, sizeof(*c))))
        return;
    c->client_id = client_id;
    c->corr = correlation_id;
    c->api_key = KAPI_EndTxn;
    c->txn_id = strndup(id.ptr, (size_t)id.len);
    c->txn_committed = committed;
    if (!c->txn_id) {
        free(c);
        return;
    }
    if (d->ncommits >= DD_COMMITS_MAX)
        commit_free(d, TAILQ_FIRST(&d->commits));
    TAILQ_INSERT_TAIL(&d->commits, c, link);
    d->ncommits++;
}

/* Applies (commit) or forgets (abort) the offsets a transaction committed. */
static void end_transaction(struct dedup *d, const char *txn_id, int committed)
{
    struct dcommit *c, *next;
    for (c = TAILQ_FIRST(&d->commits); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (!c->txn_waiting || strcmp(c->txn_id, txn_id) != 0)
            continue;
        for (size_t k = 0; committed && k < c->nparts; k++) {
            struct cpart *cp = &c->parts[k];
            kstr_t topic = {cp->topic, (int32_t)strlen(cp->topic)};
            const policy_rule_t *rule = dedup_rule(d, topic);
            if (rule && cp->offset >= 0)
                track_commit(d, rule, topic, cp->partition, cp->offset);
        }
        if (!committed)
            g_metrics.dedup_txn_aborted_commits++;
        commit_free(d, c);
    }
}

void dedup_endtxn_response(struct dedup *d, int16_t ver, const uint8_t *frame, size_t len,
                           uint64_t client_id, int32_t correlation_id)
{
    if (!d)
        return;
    struct dcommit *c;
    TAILQ_FOREACH(c, &d->commits, link)
    {
        if (c->client_id == client_id && c->corr == correlation_id && c->api_key == KAPI_EndTxn)
            break;
    }
    if (!c)
        return;
    int32_t corr;
    size_t body = 0;
    int err = -1;
    if (kproto_parse_response_header(KAPI_EndTxn, ver, frame, len, &corr, &body) == 0 &&
        body <= len)
        err = kcommit_endtxn_resp_error(ver, frame + body, len - body);
    char *id = c->txn_id;
    int committed = c->txn_committed;
    c->txn_id = NULL;
    commit_free(d, c);
    if (err == 0)
        end_transaction(d, id, committed);
    free(id);
    flush_marks(d);
}

void dedup_client_gone(struct dedup *d, uint64_t client_id)
{
    if (!d)
        return;
    struct dcommit *c, *next;
    for (c = TAILQ_FIRST(&d->commits); c; c = next) {
        next = TAILQ_NEXT(c, link);
        /* A transaction's commits wait for its EndTxn on any connection. */
        if (c->client_id == client_id && !c->txn_waiting)
            commit_free(d, c);
    }
}

struct dedup *dedup_new(struct proxy *px)
{
    const config_t *cfg = px->cfg;
    if (!cfg->redis.url) {
        log_error("dedup: topics with `dedup` need redis.url");
        return NULL;
    }
    struct dedup *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->px = px;
    d->cfg = cfg;
    d->max_records = DEDUP_JOB_MAX_RECORDS;
    d->max_inflated = DEDUP_JOB_MAX_INFLATED;
    d->max_held = DEDUP_MAX_HELD_BYTES;
    TAILQ_INIT(&d->jobs);
    TAILQ_INIT(&d->commits);
    d->ntrack_buckets = 64;
    d->tracks = calloc(d->ntrack_buckets, sizeof(*d->tracks));
    d->kick = event_new(px->base, -1, 0, kick_cb, d);
    d->tick = event_new(px->base, -1, EV_PERSIST, tick_cb, d);
    if (!d->tracks || !d->kick || !d->tick ||
        cache_init(&d->cache, (size_t)cfg->redis.cache_entries)) {
        dedup_free(d);
        return NULL;
    }
    d->rc = redisc_new(px->base, cfg->redis.url, cfg->redis.timeout_ms, on_redis_state, d);
    if (!d->rc) {
        log_error("dedup: cannot use redis.url %s", cfg->redis.url);
        dedup_free(d);
        return NULL;
    }
    d->idx = dedupidx_new(d->rc, shared_found, d, NULL);
    if (!d->idx) {
        dedup_free(d);
        return NULL;
    }
    struct timeval tv = {0, DD_TICK_MS * 1000};
    event_add(d->tick, &tv);
    return d;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    dedupidx_free(d->idx); /* cancels its sweep: before the client goes */
    redisc_free(d->rc);    /* no callback runs after this */
    d->rc = NULL;
    struct djob *j;
    while ((j = TAILQ_FIRST(&d->jobs))) {
        j->redis_id = 0;
        job_free(d, j);
    }
    while (!TAILQ_EMPTY(&d->commits))
        commit_free(d, TAILQ_FIRST(&d->commits));
    for (size_t i = 0; i < d->mlen; i++)
        free(d->marks[(d->mstart + i) % d->mcap].key);
    free(d->marks);
    for (size_t i = 0; i < d->nmarks_sent; i++)
        free(d->marks_sent[i].key);
    free(d->marks_sent);
    tracks_free(d);
    cache_free(&d->cache);
    for (size_t i = 0; i < d->ngroups; i++)
        group_clear(&d->groups[i]);
    if (d->kick)
        event_free(d->kick);
    if (d->tick)
        event_free(d->tick);
    free(d);
}

void dedup_set_test_hooks(struct dedup *d, const dedup_test_hooks_t *hooks)
{
    d->hooks = *hooks;
    if (hooks->now_ms)
        event_del(d->tick);
    if (hooks->job_max_records)
        d->max_records = hooks->job_max_records;
    if (hooks->job_max_inflated)
        d->max_inflated = hooks->job_max_inflated;
    if (hooks->max_held_bytes)
        d->max_held = hooks->max_held_bytes;
}

void dedup_test_tick(struct dedup *d)
{
    tick_cb(-1, EV_TIMEOUT, d);
}
