/*
 * test_seqstate.c - sequence arithmetic, the per-partition sequence table
 * (growth, sweep) and the fingerprint cache (in flight, done, LRU
 * eviction, TTL, growth, many entries with one key).
 */
#include "seqstate.h"
#include "unit.h"

#include <stdint.h>
#include <stdio.h>

struct mypart {
    struct seqpart sp;
    int payload;
};

static void test_seq_add(void)
{
    CHECK_EQ(seq_add(0, 5), 5);
    CHECK_EQ(seq_add(INT32_MAX - 5, 5), INT32_MAX);
    /* Kafka wraps to 0 after INT32_MAX. */
    CHECK_EQ(seq_add(INT32_MAX - 4, 5), 0);
    CHECK_EQ(seq_add(INT32_MAX, 1), 0);
    CHECK_EQ(seq_add(INT32_MAX - 1, 10), 8);
}

static void test_seqtab(void)
{
    struct seqtab t;
    CHECK_EQ(seqtab_init(&t, 3, sizeof(struct mypart)), 0);
    CHECK(seqtab_find(&t, "a", 1, 0) == NULL);
    struct mypart *a0 = (struct mypart *)seqtab_get(&t, "a", 1, 0);
    struct mypart *a1 = (struct mypart *)seqtab_get(&t, "a", 1, 1);
    struct mypart *ab0 = (struct mypart *)seqtab_get(&t, "ab", 2, 0);
    CHECK(a0 && a1 && ab0 && a0 != a1 && a0 != ab0);
    CHECK_EQ(a0->payload, 0);
    a0->payload = 7;
    CHECK(seqtab_get(&t, "a", 1, 0) == &a0->sp);
    CHECK_EQ(((struct mypart *)seqtab_find(&t, "a", 1, 0))->payload, 7);
    CHECK_STR(ab0->sp.topic, "ab");
    /* Full: a fourth partition is refused, existing ones still found. */
    CHECK(seqtab_get(&t, "b", 1, 0) == NULL);
    CHECK(seqtab_get(&t, "a", 1, 1) == &a1->sp);

    /* Sequences per generation. */
    CHECK_EQ(seq_assign(&a0->sp, 1, 3), 0);
    CHECK_EQ(seq_assign(&a0->sp, 1, 2), 3);
    CHECK_EQ(a0->sp.next_seq, 5);
    /* Rollback only of the last batch, only in its generation. */
    CHECK_EQ(seq_rollback(&a0->sp, 1, 0, 3), 0);
    CHECK_EQ(seq_rollback(&a0->sp, 2, 3, 2), 0);
    CHECK_EQ(seq_rollback(&a0->sp, 1, 3, 2), 1);
    CHECK_EQ(a0->sp.next_seq, 3);
    CHECK_EQ(seq_assign(&a0->sp, 1, 4), 3); /* the retry reuses 3 */
    /* A new generation (new producer id/epoch) starts over at 0. */
    CHECK_EQ(seq_assign(&a0->sp, 2, 1), 0);
    CHECK_EQ(seq_assign(&a0->sp, 2, 1), 1);
    CHECK_EQ(a1->sp.next_seq, 0);
    /* Wrap-around. */
    a1->sp.gen = 5;
    a1->sp.next_seq = INT32_MAX - 1;
    CHECK_EQ(seq_assign(&a1->sp, 5, 4), INT32_MAX - 1);
    CHECK_EQ(a1->sp.next_seq, 2);
    CHECK_EQ(seq_rollback(&a1->sp, 5, INT32_MAX - 1, 4), 1);
    CHECK_EQ(a1->sp.next_seq, INT32_MAX - 1);
    seqtab_free(&t);
    CHECK_EQ(seqtab_init(&t, 4, sizeof(struct seqpart) - 1), -1);
}

static void test_fpc_basic(void)
{
    struct fpcache c;
    CHECK_EQ(fpc_init(&c, 3, 1000), 0);
    int b1, b2, b3, b4;
    struct fpc_entry *e1 = fpc_add_inflight(&c, 11, &b1, 0);
    struct fpc_entry *e2 = fpc_add_inflight(&c, 22, &b2, 0);
    CHECK(e1 && e2);
    CHECK(fpc_find(&c, 11, 1) == e1);
    CHECK(fpc_find(&c, 11, 1)->batch == &b1);
    CHECK_EQ(fpc_find(&c, 11, 1)->state, FPC_INFLIGHT);
    CHECK(fpc_find(&c, 33, 1) == NULL);
    struct fpc_result r = {0, 100, -1, 5};
    fpc_complete(&c, e1, &r, 10);
    struct fpc_entry *f = fpc_find(&c, 11, 20);
    CHECK(f == e1);
    CHECK_EQ(f->state, FPC_DONE);
    CHECK(f->batch == NULL);
    CHECK_EQ(f->result.base_offset, 100);
    CHECK_EQ(f->result.log_start_offset, 5);
    CHECK_EQ(c.ninflight, 1);
    /* Full with 11 (done), 22, 33 (in flight): 44 evicts the done 11. */
    CHECK(fpc_add_inflight(&c, 33, &b3, 30) != NULL);
    struct fpc_entry *e4 = fpc_add_inflight(&c, 44, &b4, 40);
    CHECK(e4 != NULL);
    CHECK(fpc_find(&c, 11, 41) == NULL);
    CHECK_EQ(c.n, 3);
    /* All three in flight: nothing can be evicted. */
    CHECK(fpc_add_inflight(&c, 55, &b1, 50) == NULL);
    /* Removal frees a slot. */
    fpc_remove(&c, e2);
    CHECK(fpc_find(&c, 22, 60) == NULL);
    CHECK(fpc_add_inflight(&c, 55, &b1, 60) != NULL);
    fpc_free(&c);
}

static void test_fpc_ttl_and_lru(void)
{
    struct fpcache c;
    CHECK_EQ(fpc_init(&c, 100, 1000), 0);
    int b;
    struct fpc_result r = {0, 1, -1, -1};
    for (uint64_t k = 1; k <= 10; k++) {
        struct fpc_entry *e = fpc_add_inflight(&c, k, &b, k * 100);
        fpc_complete(&c, e, &r, k * 100);
    }
    CHECK_EQ(c.n, 10);
    /* At 1250 the entries done at 100 and 200 are older than 1000 ms. */
    CHECK(fpc_find(&c, 5, 1250) != NULL);
    CHECK(fpc_find(&c, 1, 1250) == NULL);
    CHECK(fpc_find(&c, 2, 1250) == NULL);
    CHECK(fpc_find(&c, 3, 1250) != NULL);
    CHECK_EQ(c.n, 8);
    /* An in-flight entry never expires. */
    struct fpc_entry *e = fpc_add_inflight(&c, 99, &b, 0);
    CHECK(e != NULL);
    CHECK(fpc_find(&c, 99, 1000000) == e);
    CHECK_EQ(c.n, 1);
    fpc_free(&c);
}

/* The table grows with what it holds; a sweep frees room. */
static int drop_even(struct seqpart *p, void *arg)
{
    (*(int *)arg)++;
    return p->partition % 2 == 0;
}

static void test_seqtab_grow_and_sweep(void)
{
    struct seqtab t;
    CHECK_EQ(seqtab_init(&t, 20000, sizeof(struct mypart)), 0);
    CHECK_EQ(t.nbuckets, 16); /* sized by what it holds, not by max */
    char topic[16];
    int ok = 1;
    for (int32_t i = 0; i < 10000; i++) {
        snprintf(topic, sizeof(topic), "t%d", (int)(i % 7));
        struct mypart *p = (struct mypart *)seqtab_get(&t, topic, strlen(topic), i);
        ok = ok && p && p->payload == 0;
        if (p)
            p->payload = i + 1;
    }
    CHECK(ok);
    CHECK_EQ(t.n, 10000);
    CHECK(t.nbuckets >= 8192);
    for (int32_t i = 0; i < 10000; i++) {
        snprintf(topic, sizeof(topic), "t%d", (int)(i % 7));
        struct mypart *p = (struct mypart *)seqtab_find(&t, topic, strlen(topic), i);
        ok = ok && p && p->payload == i + 1;
    }
    CHECK(ok);
    int seen = 0;
    CHECK_EQ(seqtab_sweep(&t, drop_even, &seen), 5000);
    CHECK_EQ(seen, 10000);
    CHECK_EQ(t.n, 5000);
    CHECK(seqtab_find(&t, "t0", 2, 0) == NULL);
    CHECK(seqtab_find(&t, "t1", 2, 1) != NULL);
    /* Room again: a full table takes new partitions after a sweep. */
    struct seqtab f;
    CHECK_EQ(seqtab_init(&f, 2, sizeof(struct mypart)), 0);
    CHECK(seqtab_get(&f, "a", 1, 0) && seqtab_get(&f, "a", 1, 1));
    CHECK(seqtab_get(&f, "a", 1, 2) == NULL);
    seen = 0;
    CHECK_EQ(seqtab_sweep(&f, drop_even, &seen), 1);
    CHECK(seqtab_get(&f, "a", 1, 2) != NULL);
    seqtab_free(&f);
    seqtab_free(&t);
}

/*
 * Many entries of one key (a client that sends the same batch again and
 * again): the newest is found first, also after the buckets grew, and
 * expiry and eviction take the oldest without walking the chain.
 */
static void test_fpc_one_key(void)
{
    struct fpcache c;
    CHECK_EQ(fpc_init(&c, 3000, 10000), 0);
    int b[3000];
    struct fpc_entry *e[2000];
    struct fpc_result r = {0, 0, -1, -1};
    for (int i = 0; i < 2000; i++) {
        e[i] = fpc_add_inflight(&c, i < 1500 ? 42 : (uint64_t)i, &b[i], (uint64_t)i);
        CHECK(e[i] != NULL);
        r.base_offset = i;
        fpc_complete(&c, e[i], &r, (uint64_t)i);
    }
    CHECK(c.nbuckets >= 2048);
    CHECK(fpc_find(&c, 42, 1999) == e[1499]);
    /* At 10000 + 700 those done at 700 or before have expired, oldest
     * first. */
    CHECK(fpc_find(&c, 42, 10700) == e[1499]);
    CHECK_EQ(c.n, 1299);
    CHECK(c.lru_head == e[701]);
    fpc_remove(&c, e[1499]);
    CHECK(fpc_find(&c, 42, 10700) == e[1498]);
    /* Full: adding evicts the oldest done entry, one of key 42. */
    int ok = 1;
    for (int i = 0; i < 1702; i++)
        ok = ok && fpc_add_inflight(&c, 5000 + (uint64_t)i, &b[0], 10700) != NULL;
    CHECK(ok);
    CHECK_EQ(c.n, 3000);
    CHECK(fpc_add_inflight(&c, 7, &b[0], 10700) != NULL);
    CHECK_EQ(c.n, 3000);
    CHECK(c.lru_head == e[702]);
    CHECK(fpc_find(&c, 42, 10700) == e[1498]);
    fpc_free(&c);
}

/* Keys separate topics and partitions that share a batch fingerprint. */
static void test_fpc_key(void)
{
    uint64_t a = fpc_key("t", 1, 0, 12345);
    CHECK(a == fpc_key("t", 1, 0, 12345));
    CHECK(a != fpc_key("t", 1, 1, 12345));
    CHECK(a != fpc_key("u", 1, 0, 12345));
    CHECK(a != fpc_key("t", 1, 0, 12346));
}

int main(void)
{
    test_seq_add();
    test_seqtab();
    test_seqtab_grow_and_sweep();
    test_fpc_basic();
    test_fpc_ttl_and_lru();
    test_fpc_one_key();
    test_fpc_key();
    return unit_done("test_seqstate");
}
