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

/* Smallest power of two >= n (n >= 1), capped at 2^24. */
static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n && p < ((size_t)1 << 24))
        p <<= 1;
    return p;
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
    t->nbuckets = pow2_at_least(max / 2 + 1);
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

struct seqpart *seqtab_get(struct seqtab *t, const char *topic, size_t len, int32_t partition)
{
    struct seqpart *p = seqtab_find(t, topic, len, partition);
    if (p)
        return p;
    if (t->n >= t->max)
        return NULL;
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
    c->nbuckets = pow2_at_least(max);
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

void fpc_remove(struct fpcache *c, struct fpc_entry *e)
{
    struct fpc_entry **pp = &c->buckets[e->key & (c->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->state == FPC_DONE)
        lru_unlink(c, e);
    else
        c->ninflight--;
    c->n--;
    free(e);
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
    struct fpc_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = key;
    e->state = FPC_INFLIGHT;
    e->batch = batch;
    e->first_ms = now_ms;
    size_t i = key & (c->nbuckets - 1);
    e->hnext = c->buckets[i];
    c->buckets[i] = e;
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
