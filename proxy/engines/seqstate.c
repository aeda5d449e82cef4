/*
 * seqstate.c - per-partition sequences and the fingerprint cache. See
 * seqstate.h.
 */
#include "seqstate.h"

#include "krecord.h"

#include <stdlib.h>
#include <string.h>

int32_t seq_add(int32_t seq, int32_t n)
{
    if (seq > INT32_MAX - n)
        return n - (INT32_MAX - seq) - 1;
    return seq + n;
}

/* Both tables start with this many buckets and double (rehashing) once
 * they hold as many entries, up to SEQ_MAX_BUCKETS; past that the chains
 * grow longer, never the loops unbounded. */
#define SEQ_MIN_BUCKETS 16
#define SEQ_MAX_BUCKETS ((size_t)1 << 24)

/* The bucket count to move to for n entries, or 0 to stay at have. */
static size_t buckets_for(size_t n, size_t have)
{
    return n >= have && have < SEQ_MAX_BUCKETS ? have * 2 : 0;
}

static uint64_t part_hash(const char *topic, size_t len, int32_t partition)
{
    return krecord_xxh64(topic, len, (uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15ull);
}

int seqtab_init(struct seqtab *t, size_t max, size_t elem_size)
{
    memset(t, 0, sizeof(*t));
    if (elem_size < sizeof(struct seqpart) || max == 0)
        return -1;
    t->nbuckets = SEQ_MIN_BUCKETS;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets)
        return -1;
    t->max = max;
    t->elem_size = elem_size;
    return 0;
}

void seqtab_free(struct seqtab *t)
{
    if (!t->buckets)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct seqpart *p = t->buckets[i];
        while (p) {
            struct seqpart *next = p->hnext;
            free(p->topic);
            free(p);
            p = next;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

struct seqpart *seqtab_find(const struct seqtab *t, const char *topic, size_t len,
                            int32_t partition)
{
    size_t i = part_hash(topic, len, partition) & (t->nbuckets - 1);
    for (struct seqpart *p = t->buckets[i]; p; p = p->hnext)
        if (p->partition == partition && p->topic_len == len && !memcmp(p->topic, topic, len))
            return p;
    return NULL;
}

/* Doubles the buckets when the table holds as many entries (best effort:
 * on OOM the chains just grow). */
static void seqtab_grow(struct seqtab *t)
{
    size_t nb = buckets_for(t->n, t->nbuckets);
    struct seqpart **b = nb ? calloc(nb, sizeof(*b)) : NULL;
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct seqpart *p = t->buckets[i], *next; p; p = next) {
            next = p->hnext;
            size_t j = part_hash(p->topic, p->topic_len, p->partition) & (nb - 1);
            p->hnext = b[j];
            b[j] = p;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

struct seqpart *seqtab_get(struct seqtab *t, const char *topic, size_t len, int32_t partition)
{
    struct seqpart *p = seqtab_find(t, topic, len, partition);
    if (p)
        return p;
    if (t->n >= t->max)
        return NULL;
    seqtab_grow(t);
    p = calloc(1, t->elem_size);
    if (!p)
        return NULL;
    p->topic = malloc(len + 1);
    if (!p->topic) {
        free(p);
        return NULL;
    }
    memcpy(p->topic, topic, len);
    p->topic[len] = '\0';
    p->topic_len = len;
    p->partition = partition;
    size_t i = part_hash(topic, len, partition) & (t->nbuckets - 1);
    p->hnext = t->buckets[i];
    t->buckets[i] = p;
    t->n++;
    return p;
}

size_t seqtab_sweep(struct seqtab *t, int (*drop)(struct seqpart *p, void *arg), void *arg)
{
    size_t dropped = 0;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct seqpart **pp = &t->buckets[i];
        while (*pp) {
            struct seqpart *p = *pp;
            if (!drop(p, arg)) {
                pp = &p->hnext;
                continue;
            }
            *pp = p->hnext;
            free(p->topic);
            free(p);
            t->n--;
            dropped++;
        }
    }
    return dropped;
}

int32_t seq_assign(struct seqpart *p, uint64_t gen, int32_t count)
{
    if (p->gen != gen) {
        p->gen = gen;
        p->next_seq = 0;
    }
    int32_t base = p->next_seq;
    p->next_seq = seq_add(base, count);
    return base;
}

int seq_rollback(struct seqpart *p, uint64_t gen, int32_t base_seq, int32_t count)
{
    if (p->gen != gen || p->next_seq != seq_add(base_seq, count))
        return 0;
    p->next_seq = base_seq;
    return 1;
}

/* ---------------------------------------------------------------- cache */

int fpc_init(struct fpcache *c, size_t max, uint64_t ttl_ms)
{
    memset(c, 0, sizeof(*c));
    if (max == 0)
        return -1;
    c->nbuckets = SEQ_MIN_BUCKETS;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets)
        return -1;
    c->max = max;
    c->ttl_ms = ttl_ms;
    return 0;
}

void fpc_free(struct fpcache *c)
{
    if (!c->buckets)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct fpc_entry *e = c->buckets[i];
        while (e) {
            struct fpc_entry *next = e->hnext;
            free(e);
            e = next;
        }
    }
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

uint64_t fpc_key(const char *topic, size_t len, int32_t partition, uint64_t batch_fp)
{
    uint64_t k = krecord_xxh64(topic, len, batch_fp);
    return k ^ ((uint64_t)(uint32_t)partition * 0xC2B2AE3D27D4EB4Full);
}

static void lru_unlink(struct fpcache *c, struct fpc_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else if (c->lru_head == e)
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else if (c->lru_tail == e)
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_append(struct fpcache *c, struct fpc_entry *e)
{
    e->lru_prev = c->lru_tail;
    e->lru_next = NULL;
    if (c->lru_tail)
        c->lru_tail->lru_next = e;
    else
        c->lru_head = e;
    c->lru_tail = e;
}

/* Puts e at the head of its bucket's chain. */
static void chain_insert(struct fpc_entry **buckets, size_t nbuckets, struct fpc_entry *e)
{
    struct fpc_entry **head = &buckets[e->key & (nbuckets - 1)];
    e->hnext = *head;
    if (e->hnext)
        e->hnext->hpprev = &e->hnext;
    e->hpprev = head;
    *head = e;
}

/*
 * Unlinks e in O(1): entries of equal content share a key, so one chain
 * may hold thousands of them (a client that sends the same batch again
 * and again), and walking it on every expiry or eviction would freeze
 * the loop.
 */
void fpc_remove(struct fpcache *c, struct fpc_entry *e)
{
    *e->hpprev = e->hnext;
    if (e->hnext)
        e->hnext->hpprev = e->hpprev;
    if (e->state == FPC_DONE)
        lru_unlink(c, e);
    else
        c->ninflight--;
    c->n--;
    free(e);
}

/* Doubles the buckets when the cache holds as many entries (best effort). */
static void fpc_grow(struct fpcache *c)
{
    size_t nb = buckets_for(c->n, c->nbuckets);
    struct fpc_entry **b = nb ? calloc(nb, sizeof(*b)) : NULL;
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        /* Oldest first, so each new chain keeps the newest entry of a key
         * ahead of older ones (fpc_find's contract). */
        struct fpc_entry *rev = NULL, *e, *next;
        for (e = c->buckets[i]; e; e = next) {
            next = e->hnext;
            e->hnext = rev;
            rev = e;
        }
        for (e = rev; e; e = next) {
            next = e->hnext;
            chain_insert(b, nb, e);
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

/* Drops done entries older than the TTL, oldest first. */
static void expire(struct fpcache *c, uint64_t now_ms)
{
    while (c->lru_head && c->lru_head->done_ms + c->ttl_ms <= now_ms)
        fpc_remove(c, c->lru_head);
}

struct fpc_entry *fpc_find(struct fpcache *c, uint64_t key, uint64_t now_ms)
{
    expire(c, now_ms);
    for (struct fpc_entry *e = c->buckets[key & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->key == key)
            return e;
    return NULL;
}

struct fpc_entry *fpc_add_inflight(struct fpcache *c, uint64_t key, void *batch, uint64_t now_ms)
{
    expire(c, now_ms);
    if (c->n >= c->max && c->lru_head)
        fpc_remove(c, c->lru_head);
    if (c->n >= c->max)
        return NULL;
    fpc_grow(c);
    struct fpc_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = key;
    e->state = FPC_INFLIGHT;
    e->batch = batch;
    e->first_ms = now_ms;
    chain_insert(c->buckets, c->nbuckets, e);
    c->n++;
    c->ninflight++;
    return e;
}

void fpc_complete(struct fpcache *c, struct fpc_entry *e, const struct fpc_result *r,
                  uint64_t now_ms)
{
    if (e->state != FPC_INFLIGHT)
        return;
    e->state = FPC_DONE;
    e->batch = NULL;
    e->result = *r;
    e->done_ms = now_ms;
    c->ninflight--;
    lru_append(c, e);
}
