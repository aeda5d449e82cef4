/*
 * seqstate.h - sequence numbers per partition and the fingerprint cache
 * of the idempotent upgrade.
 *
 * The sequence table maps (topic, partition) to the next baseSequence
 * eosproxy will give a batch under its current producer id and epoch. It
 * is intrusive: the caller's per-partition struct starts with a struct
 * seqpart and the table allocates it at the caller's size. It holds at
 * most max entries; the caller frees room with seqtab_sweep.
 *
 * Both tables are chained hash tables that start small and double their
 * buckets as they fill (up to 2^24 buckets), so their size follows what
 * they hold, and no lookup walks more than one chain.
 *
 * The fingerprint cache maps a 64-bit fingerprint (topic, partition and
 * batch content) to the batch that is in flight for it, or to the result
 * that batch got (base offset etc.) for a while after it completed, so a
 * client's own retry is answered, never written twice. Completed entries
 * are evicted oldest first when the cache is full or older than the TTL;
 * in-flight entries are never evicted (the caller bounds them).
 *
 * Pure: no libevent, no clock (callers pass now_ms).
 */
#ifndef EOSPROXY_SEQSTATE_H
#define EOSPROXY_SEQSTATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Kafka's sequence arithmetic (DefaultRecordBatch.incrementSequence):
 * sequences wrap from INT32_MAX to 0. seq >= 0, n >= 0.
 */
int32_t seq_add(int32_t seq, int32_t n);

/* The head of a caller's per-partition struct. topic is owned by the table. */
struct seqpart {
    char *topic;
    size_t topic_len;
    int32_t partition;
    int32_t next_seq;      /* next baseSequence under generation gen */
    uint64_t gen;          /* producer generation next_seq belongs to */
    struct seqpart *hnext; /* private: hash chain */
};

struct seqtab {
    struct seqpart **buckets;
    size_t nbuckets; /* power of two */
    size_t n, max;
    size_t elem_size;
};

/*
 * Sets up an empty table for at most max partitions whose entries are
 * elem_size bytes (>= sizeof(struct seqpart)). Returns 0 or -1 on OOM.
 * Memory grows with the entries, not with max.
 */
int seqtab_init(struct seqtab *t, size_t max, size_t elem_size);
/* Frees every entry (the caller has released what they point to). */
void seqtab_free(struct seqtab *t);
/* The entry for (topic, partition), or NULL. */
struct seqpart *seqtab_find(const struct seqtab *t, const char *topic, size_t len,
                            int32_t partition);
/*
 * The entry for (topic, partition), created zeroed (next_seq 0, gen 0,
 * the rest of elem_size zero) if absent. NULL when the table is full or
 * out of memory. The entry lives until seqtab_free.
 */
struct seqpart *seqtab_get(struct seqtab *t, const char *topic, size_t len, int32_t partition);

/*
 * Removes and frees every entry for which drop(p, arg) returns 1 (drop
 * releases what the caller's part of the entry holds). O(entries +
 * buckets). Returns how many were removed.
 */
size_t seqtab_sweep(struct seqtab *t, int (*drop)(struct seqpart *p, void *arg), void *arg);

/*
 * Reserves count sequences for a batch of partition p under producer
 * generation gen: when p->gen != gen the partition starts over at 0 (a
 * new producer id or epoch). Returns the batch's baseSequence.
 */
int32_t seq_assign(struct seqpart *p, uint64_t gen, int32_t count);
/*
 * Gives back the sequences of the batch that took base_seq/count under
 * gen, if it is still the last one assigned (the broker wrote nothing, so
 * the next batch, typically the client's retry, reuses them). Returns 1 if
 * rolled back, 0 if not (another batch or generation came in between).
 */
int seq_rollback(struct seqpart *p, uint64_t gen, int32_t base_seq, int32_t count);

/* What a completed batch got from the broker. */
struct fpc_result {
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms;
    int64_t log_start_offset;
};

enum fpc_state { FPC_INFLIGHT = 1, FPC_DONE = 2 };

struct fpc_entry {
    uint64_t key;
    enum fpc_state state;
    void *batch;              /* FPC_INFLIGHT: the caller's batch; NULL once done */
    uint64_t first_ms;        /* when the batch was first submitted */
    int twin;                 /* a distinct batch with equal content was seen */
    int failed;               /* done with an error: a tombstone, never absorbs */
    uint32_t timeout_ms;      /* the client's request timeout for this batch */
    struct fpc_result result; /* FPC_DONE */
    uint64_t done_ms;
    struct fpc_entry *hnext, **hpprev;     /* hash chain (unlinked in O(1)) */
    struct fpc_entry *lru_prev, *lru_next; /* done entries, oldest first */
};

struct fpcache {
    struct fpc_entry **buckets;
    size_t nbuckets;
    size_t n, ninflight, max;
    uint64_t ttl_ms;
    struct fpc_entry *lru_head, *lru_tail;
};

/* Empty cache of at most max entries; done entries live ttl_ms. 0 / -1. */
int fpc_init(struct fpcache *c, size_t max, uint64_t ttl_ms);
/* Frees every entry; the batches they point to stay the caller's. */
void fpc_free(struct fpcache *c);
/*
 * The entry for key, or NULL. Done entries older than the TTL are dropped
 * first (expiry is lazy: here and in fpc_add_inflight).
 */
struct fpc_entry *fpc_find(struct fpcache *c, uint64_t key, uint64_t now_ms);
/*
 * Adds key as in flight for batch. The key may already be present (two
 * distinct batches with equal content): the newest entry is found first.
 * Evicts the oldest
 * done entry when full. NULL when every slot holds an in-flight entry or
 * on OOM. The entry lives until fpc_remove or eviction after completion.
 */
struct fpc_entry *fpc_add_inflight(struct fpcache *c, uint64_t key, void *batch, uint64_t now_ms);
/* Marks an in-flight entry done with result r; it is now evictable. */
void fpc_complete(struct fpcache *c, struct fpc_entry *e, const struct fpc_result *r,
                  uint64_t now_ms);
/* Removes and frees e (in flight or done). */
void fpc_remove(struct fpcache *c, struct fpc_entry *e);

/* Fingerprint key of a batch in (topic, partition): mixes them into fp. */
uint64_t fpc_key(const char *topic, size_t len, int32_t partition, uint64_t batch_fp);

#endif
