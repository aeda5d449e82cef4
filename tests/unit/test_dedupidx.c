/*
 * test_dedupidx.c - the shared delivery index (dedupidx.c) on a real event
 * loop. Redis is played by the dedup fuzz target's in-process stand-in
 * (tests/fuzz/fake_redisc.c, linked in place of redisc.c; see the
 * Makefile): every pipeline the index sends is read back command by
 * command and answered by hand, so each case asserts the exact argv sent
 * and exactly what reaches the found callback. The last case relays the
 * same pipelines to a real redis-server (started here on a Unix socket,
 * skipped when there is none), so the two Lua scripts are run as sent.
 *
 * Pins. Index: nothing is sent before dedupidx_send; one pipeline of
 * `EVAL <index script> 1 eosproxy:<scope>:@delivered <topic>/<p> <ttl>
 * 100000 "<20-digit offset> <tag>:<suffix>"...`, one command per run of
 * deliveries of one (scope, topic, partition) in delivery order
 * (p0,p0,p1,p0 gives three), at most DEDUPIDX_PER_CMD entries each; the
 * tag passed to dedupidx_new (a random one is 8 hex digits); an empty
 * send sends nothing; Redis down at send, a failed pipeline, or one with
 * an error reply counts one dedup_index_failures and queues nothing.
 * Sweeps: a commit sends `EVAL <sweep script> 1 <index key> <20-digit
 * offset> 1000` at once; the entries of the reply (one string,
 * '\n'-separated) under another 8-character tag reach found as
 * "eosproxy:<scope>:<suffix>" with the commit's ttl, own-tag and malformed
 * entries skipped, found not called for none; commits of one partition
 * waiting behind the sweep in flight merge (the higher offset and the
 * higher ttl win), other partitions (scope, topic) go as separate commands
 * of one pipeline, at most DEDUPIDX_PER_TRIP per pipeline, oldest first;
 * a reply of DEDUPIDX_SWEEP entries sends the same sweep again at once; an
 * error, a non-string reply or a failed pipeline calls nothing, counts,
 * and is sent again only at dedupidx_tick (so are a send refused and the
 * sweep of a dropped connection, once up), dropped (dedup_tracking_dropped
 * + 1) at its 100th failure, also while its partition keeps committing;
 * DEDUPIDX_SWEEPS sweeps wait at most, the oldest dropped and counted;
 * dedupidx_free cancels the sweep in flight (no callback after) and frees
 * what waits (ASan), an index pipeline answered after it touches nothing;
 * offsets <= 0 and NULL do nothing. Real Redis: RPUSH in delivery order +
 * PEXPIRE to the ttl + trim to the newest 100000; the sweep takes the
 * entries at the head strictly below the offset, stopping at the first
 * one at or past it, at most 1000, removes them, and answers them joined.
 */
#include "dedupidx.h"
#include "log.h"
#include "metrics.h"
#include "redisc.h"
#include "unit.h"
#include "../fuzz/fake_redisc.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TAG "t0000001"
#define OTHER "ffffffff"
#define AT "00000000000000000001 " /* an entry's offset, as the index writes it */

static struct event_base *base;
static struct redisc *rc;

/* What found was given, every call appended. */
static struct {
    int calls;
    size_t last_n;
    uint64_t ttl;
    void *arg;
    char **keys;
    size_t nkeys, cap;
} fnd;

static void on_found(void *arg, char **keys, const size_t *klens, size_t n, uint64_t ttl_ms)
{
    fnd.calls++;
    fnd.last_n = n;
    fnd.ttl = ttl_ms;
    fnd.arg = arg;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(strlen(keys[i]), klens[i]); /* NUL-terminated too */
        if (fnd.nkeys == fnd.cap) {
            fnd.cap = fnd.cap ? 2 * fnd.cap : 64;
            fnd.keys = realloc(fnd.keys, fnd.cap * sizeof(*fnd.keys));
        }
        fnd.keys[fnd.nkeys++] = keys[i]; /* ours now (freed by found_reset) */
    }
}

static void found_reset(void)
{
    for (size_t i = 0; i < fnd.nkeys; i++)
        free(fnd.keys[i]);
    free(fnd.keys);
    memset(&fnd, 0, sizeof(fnd));
}

static void turn(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static void env_open(void)
{
    base = event_base_new();
    rc = redisc_new(base, "redis://127.0.0.1:1", 1000, NULL, NULL);
    CHECK(rc != NULL);
    fake_redisc_set_up(1);
    turn();
    CHECK(redisc_ready(rc));
    found_reset();
}

static void env_close(void)
{
    redisc_free(rc);
    event_base_free(base);
    found_reset();
}

static struct dedupidx *idx_new(const char *tag)
{
    struct dedupidx *x = dedupidx_new(rc, on_found, &fnd, tag);
    CHECK(x != NULL);
    return x;
}

static kstr_t T(const char *s)
{
    return (kstr_t){s, (int32_t)strlen(s)};
}

/* Stages the delivery of "eosproxy:<scope>:<suffix>". */
static void add(struct dedupidx *x, const char *scope, const char *topic, int32_t p, int64_t offset,
                const char *suffix, uint64_t ttl)
{
    char key[256];
    int n = snprintf(key, sizeof(key), "eosproxy:%s:%s", scope, suffix);
    dedupidx_add(x, scope, T(topic), p, offset, key, (size_t)n, ttl);
}

/* ---------------------------------------------------------------- commands */

/* The command expected next: wv[0..wn). "\1IDX" and "\1SWP" stand for the
 * two scripts, checked by their content and equal at every use. */
static char *wv[2100];
static int wn;
static char *seen_index, *seen_sweep;

static void w_reset(void)
{
    for (int i = 0; i < wn; i++)
        free(wv[i]);
    wn = 0;
}

static void w_add(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    wv[wn++] = strdup(buf);
}

/* EVAL of the index script on (scope, topic, p), members to add after. */
static void w_index(const char *scope, const char *topic, int p, uint64_t ttl)
{
    w_reset();
    w_add("EVAL");
    w_add("\1IDX");
    w_add("1");
    w_add("eosproxy:%s:@delivered %s/%d", scope, topic, p);
    w_add("%llu", (unsigned long long)ttl);
    w_add("100000");
}

static void w_member(long long offset, const char *tag, const char *suffix)
{
    w_add("%020lld %s:%s", offset, tag, suffix);
}

static void w_sweep(const char *scope, const char *topic, int p, long long offset)
{
    w_reset();
    w_add("EVAL");
    w_add("\1SWP");
    w_add("1");
    w_add("eosproxy:%s:@delivered %s/%d", scope, topic, p);
    w_add("%020lld", offset);
    w_add("1000");
}

static int script_ok(const char *got, char **seen, const char *const *words)
{
    for (const char *const *w = words; *w; w++) {
        if (!strstr(got, *w))
            return 0;
    }
    if (!*seen)
        *seen = strdup(got);
    return strcmp(*seen, got) == 0;
}

/* Is command k of b exactly wv[0..wn)? Says where it is not. */
static int cmd_is(const redisc_batch_t *b, size_t k)
{
    static const char *const idx_words[] = {"RPUSH", "PEXPIRE", "LTRIM", NULL};
    static const char *const swp_words[] = {"LRANGE", "LTRIM", ">=ARGV[1]", "table.concat", NULL};
    static const char idx_head[] = "local n=redis.call('RPUSH'";
    static const char swp_head[] = "local it=redis.call('LRANGE'";
    if (k >= redisc_batch_count(b)) {
        fprintf(stderr, "  command %zu of %zu\n", k, redisc_batch_count(b));
        return 0;
    }
    const char *const *argv;
    const size_t *lens;
    int argc = fake_redisc_cmd(b, k, &argv, &lens);
    if (argc != wn) {
        fprintf(stderr, "  command %zu: %d arguments, not %d\n", k, argc, wn);
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        int ok;
        if (strcmp(wv[i], "\1IDX") == 0)
            ok = strncmp(argv[i], idx_head, sizeof(idx_head) - 1) == 0 &&
                 script_ok(argv[i], &seen_index, idx_words);
        else if (strcmp(wv[i], "\1SWP") == 0)
            ok = strncmp(argv[i], swp_head, sizeof(swp_head) - 1) == 0 &&
                 script_ok(argv[i], &seen_sweep, swp_words);
        else
            ok = lens[i] == strlen(wv[i]) && memcmp(argv[i], wv[i], lens[i]) == 0;
        if (!ok) {
            fprintf(stderr, "  command %zu argument %d: \"%.60s\", not \"%.60s\"\n", k, i, argv[i],
                    wv[i]);
            return 0;
        }
    }
    return 1;
}

/* The only unanswered batch, or NULL (counted as a failure). */
static const redisc_batch_t *only_batch(void)
{
    CHECK_EQ(fake_redisc_unanswered(), 1);
    return fake_redisc_unanswered() == 1 ? fake_redisc_unanswered_batch(0, NULL) : NULL;
}

/* ---------------------------------------------------------------- answers */

/* Is there a first unanswered batch of n commands? (else answering it
 * would abort) */
static int answerable(size_t n)
{
    int ok = fake_redisc_unanswered() > 0 &&
             redisc_batch_count(fake_redisc_unanswered_batch(0, NULL)) == n;
    CHECK(ok);
    return ok;
}

static void answer_strs(const char *const *s, size_t n)
{
    if (!answerable(n))
        return;
    redisc_reply_t *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++)
        r[i] =
            (redisc_reply_t){.type = REDISC_REPLY_STRING, .str = (char *)s[i], .len = strlen(s[i])};
    fake_redisc_answer(0, REDISC_OK, r, n);
    free(r);
}

static void answer_str(const char *s)
{
    answer_strs(&s, 1);
}

/* Answers every command of the first batch with "". */
static void answer_empty(void)
{
    size_t n =
        fake_redisc_unanswered() ? redisc_batch_count(fake_redisc_unanswered_batch(0, NULL)) : 0;
    const char **v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = "";
    answer_strs(v, n);
    free(v);
}

static void answer_type(int type, const char *s, long long integer)
{
    if (!answerable(1))
        return;
    redisc_reply_t r = {
        .type = type, .integer = integer, .str = (char *)s, .len = s ? strlen(s) : 0};
    fake_redisc_answer(0, REDISC_OK, &r, 1);
}

/* ---------------------------------------------------------------- index */

static void test_index(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);
    uint64_t fails = g_metrics.dedup_index_failures;
    CHECK_STR(dedupidx_tag(x), TAG);

    /* p0, p0, p1, p0: three commands, in delivery order */
    add(x, "s1", "d.a", 0, 10, "e1", 60000);
    add(x, "s1", "d.a", 0, 11, "e2", 60000);
    add(x, "s1", "d.a", 1, 5, "e3", 60000);
    add(x, "s1", "d.a", 0, 12, "sha256:ab", 60000);
    turn();
    CHECK_EQ(fake_redisc_unanswered(), 0); /* nothing before dedupidx_send */
    dedupidx_send(x);
    const redisc_batch_t *b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 3);
        w_index("s1", "d.a", 0, 60000);
        w_member(10, TAG, "e1");
        w_member(11, TAG, "e2");
        CHECK(cmd_is(b, 0));
        w_index("s1", "d.a", 1, 60000);
        w_member(5, TAG, "e3");
        CHECK(cmd_is(b, 1));
        w_index("s1", "d.a", 0, 60000);
        w_member(12, TAG, "sha256:ab");
        CHECK(cmd_is(b, 2));
        redisc_reply_t r[3] = {{.type = REDISC_REPLY_INTEGER, .integer = 2},
                               {.type = REDISC_REPLY_INTEGER, .integer = 1},
                               {.type = REDISC_REPLY_INTEGER, .integer = 1}};
        if (answerable(3))
            fake_redisc_answer(0, REDISC_OK, r, 3);
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(g_metrics.dedup_index_failures, fails);
    CHECK_EQ(fnd.calls, 0);

    /* nothing staged: nothing sent */
    dedupidx_send(x);
    dedupidx_send(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* 1001 entries of one partition: 1000 + 1; then another scope and
     * another topic of the same partition number: commands of their own */
    char sfx[16];
    for (int i = 0; i <= 1000; i++) {
        snprintf(sfx, sizeof(sfx), "k%04d", i);
        add(x, "s1", "d.b", 2, 100 + i, sfx, 5000);
    }
    add(x, "s2", "d.b", 2, 7, "z", 5000);
    add(x, "s1", "d.c", 2, 8, "y", 9000);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_send(x);
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 4);
        for (int c = 0; c < 2; c++) {
            w_index("s1", "d.b", 2, 5000);
            for (int i = 1000 * c; i < 1000 * (c + 1) && i <= 1000; i++) {
                snprintf(sfx, sizeof(sfx), "k%04d", i);
                w_member(100 + i, TAG, sfx);
            }
            CHECK_EQ(wn, c < 1 ? 6 + (int)DEDUPIDX_PER_CMD : 7);
            CHECK(cmd_is(b, (size_t)c));
        }
        w_index("s2", "d.b", 2, 5000);
        w_member(7, TAG, "z");
        CHECK(cmd_is(b, 2));
        w_index("s1", "d.c", 2, 9000);
        w_member(8, TAG, "y");
        CHECK(cmd_is(b, 3));
        /* one error reply among them: one failure */
        redisc_reply_t r[4];
        for (int i = 0; i < 4; i++)
            r[i] = (redisc_reply_t){.type = REDISC_REPLY_INTEGER, .integer = 1};
        r[2] = (redisc_reply_t){.type = REDISC_REPLY_ERROR, .str = "ERR x", .len = 5};
        if (answerable(4))
            fake_redisc_answer(0, REDISC_OK, r, 4);
        turn();
    }
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 1);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* a failed pipeline: one failure, not sent again */
    add(x, "s1", "d.a", 0, 13, "e4", 60000);
    dedupidx_send(x);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    if (answerable(1))
        fake_redisc_answer(0, REDISC_EDOWN, NULL, 0);
    turn();
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 2);
    dedupidx_tick(x);
    dedupidx_send(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* Redis down at send: counted, nothing kept for later */
    fake_redisc_set_up(0);
    turn();
    add(x, "s1", "d.a", 0, 14, "e5", 60000);
    add(x, "s1", "d.a", 1, 15, "e6", 60000);
    dedupidx_send(x);
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 3);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    fake_redisc_set_up(1);
    turn();
    dedupidx_send(x);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    add(x, "s1", "d.a", 0, 16, "e7", 60000);
    dedupidx_send(x);
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 1);
        w_index("s1", "d.a", 0, 60000);
        w_member(16, TAG, "e7");
        CHECK(cmd_is(b, 0));
        answer_type(REDISC_REPLY_INTEGER, NULL, 1);
        turn();
    }
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 3);

    /* a null topic, a NULL index: nothing */
    dedupidx_add(x, "s1", (kstr_t){NULL, -1}, 0, 1, "eosproxy:s1:q", 13, 1);
    dedupidx_send(x);
    dedupidx_add(NULL, "s1", T("d.a"), 0, 1, "eosproxy:s1:q", 13, 1);
    dedupidx_send(NULL);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(fnd.calls, 0);
    dedupidx_free(x);

    /* no tag given: a random one of 8 hex digits, another per process */
    struct dedupidx *r1 = idx_new(NULL), *r2 = idx_new(NULL);
    const char *t1 = dedupidx_tag(r1);
    CHECK_EQ(strlen(t1), 8);
    CHECK_EQ(strspn(t1, "0123456789abcdef"), 8);
    CHECK(strcmp(t1, dedupidx_tag(r2)) != 0);
    dedupidx_free(r1);
    dedupidx_free(r2);
    w_reset();
    env_close();
}

/* ---------------------------------------------------------------- sweeps */

static void test_sweep(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);
    uint64_t fails = g_metrics.dedup_index_failures, drops = g_metrics.dedup_tracking_dropped;

    dedupidx_commit(x, "s1", T("d.a"), 3, 42, 7000);
    const redisc_batch_t *b = only_batch(); /* at once, no loop turn */
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 1);
        w_sweep("s1", "d.a", 3, 42);
        CHECK(cmd_is(b, 0));
        answer_str(AT TAG ":e1\n" AT OTHER ":e2\n" AT OTHER ":sha256:ab\n\nzz\n" OTHER ":e3");
        CHECK_EQ(fnd.calls, 0); /* at the next turn */
        turn();
    }
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.nkeys, 2);
    if (fnd.nkeys == 2) {
        CHECK_STR(fnd.keys[0], "eosproxy:s1:e2");
        CHECK_STR(fnd.keys[1], "eosproxy:s1:sha256:ab");
    }
    CHECK_EQ(fnd.ttl, 7000);
    CHECK(fnd.arg == &fnd);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0); /* done: not sent again */

    /* malformed members: an empty suffix, a colon at 7, none; one valid
     * last member without a newline after it */
    found_reset();
    dedupidx_commit(x, "svc-2", T("orders"), 0, 9, 1);
    b = only_batch();
    if (b) {
        w_sweep("svc-2", "orders", 0, 9);
        CHECK(cmd_is(b, 0));
        answer_str(AT OTHER ":\n" AT "fffffff:xx\n" AT "ffffffffxyz\n0000000a:x\n"
                            "00000000000000000001" OTHER ":x\n" AT "0000000a:q");
        turn();
    }
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.nkeys, 1);
    if (fnd.nkeys == 1)
        CHECK_STR(fnd.keys[0], "eosproxy:svc-2:q");
    CHECK_EQ(fnd.ttl, 1);

    /* an empty answer, and one of own members only: found not called,
     * nothing sent again */
    found_reset();
    dedupidx_commit(x, "s1", T("d.a"), 3, 50, 7000);
    b = only_batch();
    if (b) {
        w_sweep("s1", "d.a", 3, 50);
        CHECK(cmd_is(b, 0));
        answer_str("");
        turn();
    }
    dedupidx_commit(x, "s1", T("d.a"), 3, 60, 7000);
    if (only_batch()) {
        answer_str(AT TAG ":a\n" AT TAG ":b");
        turn();
    }
    dedupidx_commit(x, "s1", T("d.a"), 3, 70, 7000);
    if (only_batch()) {
        answer_type(REDISC_REPLY_STRING, NULL, 0); /* a string without bytes */
        turn();
    }
    CHECK_EQ(fnd.calls, 0);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(g_metrics.dedup_index_failures, fails);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops);
    dedupidx_free(x);
    w_reset();
    env_close();
}

static void test_merge(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);

    /* behind the sweep in flight: p0 twice (20, then 15 with a longer
     * ttl) and p1 */
    dedupidx_commit(x, "s1", T("d.a"), 0, 10, 1000);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    dedupidx_commit(x, "s1", T("d.a"), 0, 20, 1000);
    dedupidx_commit(x, "s1", T("d.a"), 0, 15, 9000);
    dedupidx_commit(x, "s1", T("d.a"), 1, 5, 1000);
    CHECK_EQ(fake_redisc_unanswered(), 1); /* one pipeline in flight */
    answer_str("");
    turn();
    const redisc_batch_t *b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 2);
        w_sweep("s1", "d.a", 0, 20);
        CHECK(cmd_is(b, 0));
        w_sweep("s1", "d.a", 1, 5);
        CHECK(cmd_is(b, 1));
        const char *r[2] = {AT OTHER ":a", AT OTHER ":b"};
        answer_strs(r, 2);
        turn();
    }
    CHECK_EQ(fnd.calls, 2);
    CHECK_EQ(fnd.nkeys, 2);
    if (fnd.nkeys == 2) {
        CHECK_STR(fnd.keys[0], "eosproxy:s1:a");
        CHECK_STR(fnd.keys[1], "eosproxy:s1:b");
    }
    CHECK_EQ(fnd.ttl, 1000); /* the last call's: p1 */
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* the merged ttl is p0's 9000 */
    found_reset();
    dedupidx_commit(x, "s1", T("d.a"), 0, 30, 1); /* in flight */
    dedupidx_commit(x, "s1", T("d.a"), 0, 31, 1000);
    dedupidx_commit(x, "s1", T("d.a"), 0, 32, 9000);
    dedupidx_commit(x, "s1", T("d.a"), 0, 33, 2000);
    answer_str("");
    turn();
    b = only_batch();
    if (b) {
        w_sweep("s1", "d.a", 0, 33);
        CHECK(cmd_is(b, 0));
        answer_str(AT OTHER ":c");
        turn();
    }
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.ttl, 9000);

    /* another scope, another topic: not merged */
    dedupidx_commit(x, "s1", T("d.a"), 0, 40, 1);
    dedupidx_commit(x, "s2", T("d.a"), 0, 41, 1);
    dedupidx_commit(x, "s1", T("d.b"), 0, 42, 1);
    dedupidx_commit(x, "s1", T("d.a"), 0, 43, 1); /* the one in flight is not merged into */
    answer_str("");
    turn();
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 3);
        w_sweep("s2", "d.a", 0, 41);
        CHECK(cmd_is(b, 0));
        w_sweep("s1", "d.b", 0, 42);
        CHECK(cmd_is(b, 1));
        w_sweep("s1", "d.a", 0, 43);
        CHECK(cmd_is(b, 2));
        answer_empty();
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* 70 partitions waiting: 64 then 6, oldest first */
    dedupidx_commit(x, "s1", T("d.a"), 0, 50, 1);
    for (int p = 100; p < 170; p++)
        dedupidx_commit(x, "s1", T("d.a"), p, p, 1);
    answer_str("");
    turn();
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), DEDUPIDX_PER_TRIP);
        int ok = 1;
        for (int p = 100; p < 164; p++) {
            w_sweep("s1", "d.a", p, p);
            ok &= cmd_is(b, (size_t)(p - 100));
        }
        CHECK(ok);
        answer_empty();
        turn();
    }
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 6);
        w_sweep("s1", "d.a", 164, 164);
        CHECK(cmd_is(b, 0));
        w_sweep("s1", "d.a", 169, 169);
        CHECK(cmd_is(b, 5));
        answer_empty();
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_free(x);
    w_reset();
    env_close();
}

/* n members "<tag>:m0000"... joined by '\n' (malloc'd). */
static char *members(const char *tag, int from, int n)
{
    char *s = malloc((size_t)n * 56 + 1), *p = s;
    *p = 0;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%020d %s:m%04d", i ? "\n" : "", from + i, tag, from + i);
    return s;
}

static void test_more(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);

    /* DEDUPIDX_SWEEP members: the same sweep again, at once */
    dedupidx_commit(x, "s1", T("d.a"), 0, 5000, 77);
    char *m = members(OTHER, 0, DEDUPIDX_SWEEP);
    answer_str(m);
    free(m);
    turn();
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.last_n, DEDUPIDX_SWEEP);
    if (fnd.nkeys == DEDUPIDX_SWEEP) {
        CHECK_STR(fnd.keys[0], "eosproxy:s1:m0000");
        CHECK_STR(fnd.keys[999], "eosproxy:s1:m0999");
    }
    CHECK_EQ(fnd.ttl, 77);
    const redisc_batch_t *b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 1);
        w_sweep("s1", "d.a", 0, 5000);
        CHECK(cmd_is(b, 0));
        m = members(OTHER, 1000, DEDUPIDX_SWEEP - 1); /* the rest: done */
        answer_str(m);
        free(m);
        turn();
    }
    CHECK_EQ(fnd.calls, 2);
    CHECK_EQ(fnd.last_n, DEDUPIDX_SWEEP - 1);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* counted by members, own ones too: found not called, sent again */
    found_reset();
    dedupidx_commit(x, "s1", T("d.a"), 1, 9, 1);
    m = members(TAG, 0, DEDUPIDX_SWEEP);
    answer_str(m);
    free(m);
    turn();
    CHECK_EQ(fnd.calls, 0);
    b = only_batch();
    if (b) {
        w_sweep("s1", "d.a", 1, 9);
        CHECK(cmd_is(b, 0));
        answer_str("");
        turn();
    }

    /* with another partition waiting: both in the next pipeline */
    dedupidx_commit(x, "s1", T("d.a"), 2, 100, 1);
    dedupidx_commit(x, "s1", T("d.a"), 3, 200, 1);
    m = members(OTHER, 0, DEDUPIDX_SWEEP);
    answer_str(m);
    free(m);
    turn();
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 2);
        w_sweep("s1", "d.a", 3, 200);
        CHECK(cmd_is(b, 0));
        w_sweep("s1", "d.a", 2, 100);
        CHECK(cmd_is(b, 1));
        answer_empty();
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_free(x);
    w_reset();
    env_close();
}

/* ---------------------------------------------------------------- failures */

/* The sweep in flight fails by kind (0 error, 1 integer, 2 status, 3 nil,
 * 4 a failed pipeline). */
static void fail_one(int kind)
{
    switch (kind) {
    case 0:
        answer_type(REDISC_REPLY_ERROR, "ERR boom", 0);
        break;
    case 1:
        answer_type(REDISC_REPLY_INTEGER, NULL, 3);
        break;
    case 2:
        answer_type(REDISC_REPLY_STATUS, "OK", 0);
        break;
    case 3:
        answer_type(REDISC_REPLY_NIL, NULL, 0);
        break;
    default:
        if (answerable(1))
            fake_redisc_answer(0, REDISC_EDOWN, NULL, 0);
    }
}

static void test_failure(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);
    uint64_t fails = g_metrics.dedup_index_failures, drops = g_metrics.dedup_tracking_dropped;

    dedupidx_commit(x, "s1", T("d.a"), 0, 10, 3);
    int resent = 0;
    for (int a = 1; a <= 100; a++) {
        if (fake_redisc_unanswered() != 1)
            break;
        fail_one(a % 5);
        turn();
        turn();
        CHECK_EQ(fake_redisc_unanswered(), 0); /* only at the tick */
        dedupidx_tick(x);
        if (a < 100) {
            const redisc_batch_t *b = only_batch();
            w_sweep("s1", "d.a", 0, 10);
            resent += b && cmd_is(b, 0);
        }
    }
    CHECK_EQ(resent, 99);
    CHECK_EQ(fnd.calls, 0);
    CHECK_EQ(fake_redisc_unanswered(), 0); /* dropped at its 100th failure */
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 100);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 1);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* one of a pipeline fails: the others' found runs, the waiting sweep
     * and the failed one go at the tick */
    dedupidx_commit(x, "s1", T("d.a"), 1, 11, 3);
    dedupidx_commit(x, "s1", T("d.a"), 2, 12, 3);
    answer_type(REDISC_REPLY_ERROR, "ERR boom", 0);
    turn();
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_tick(x);
    const redisc_batch_t *b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 2);
        w_sweep("s1", "d.a", 2, 12);
        CHECK(cmd_is(b, 0));
        w_sweep("s1", "d.a", 1, 11);
        CHECK(cmd_is(b, 1));
        redisc_reply_t r[2] = {{.type = REDISC_REPLY_STRING, .str = AT OTHER ":x", .len = 31},
                               {.type = REDISC_REPLY_ERROR, .str = "ERR", .len = 3}};
        if (answerable(2))
            fake_redisc_answer(0, REDISC_OK, r, 2);
        turn();
    }
    CHECK_EQ(fnd.calls, 1);
    if (fnd.nkeys == 1)
        CHECK_STR(fnd.keys[0], "eosproxy:s1:x");
    CHECK_EQ(fake_redisc_unanswered(), 0);
    /* a commit merges into the failed one waiting, and sends at once */
    dedupidx_commit(x, "s1", T("d.a"), 1, 99, 3);
    b = only_batch();
    if (b) {
        CHECK_EQ(redisc_batch_count(b), 1);
        w_sweep("s1", "d.a", 1, 99);
        CHECK(cmd_is(b, 0));
        answer_str("");
        turn();
    }

    /* a send refused while Redis says ready: waits for the tick */
    fake_redisc_refuse_sends(1);
    dedupidx_commit(x, "s1", T("d.a"), 3, 33, 3);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_tick(x);
    b = only_batch();
    if (b) {
        w_sweep("s1", "d.a", 3, 33);
        CHECK(cmd_is(b, 0));
        answer_str("");
        turn();
    }

    /* the connection drops with a sweep in flight: retried once up */
    dedupidx_commit(x, "s1", T("d.a"), 4, 44, 3);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    fake_redisc_set_up(0);
    turn();
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0); /* not while down */
    fake_redisc_set_up(1);
    turn();
    dedupidx_tick(x);
    b = only_batch();
    if (b) {
        w_sweep("s1", "d.a", 4, 44);
        CHECK(cmd_is(b, 0));
        answer_str("");
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 1);

    /* a sweep that keeps failing while its partition keeps committing:
     * the failure count survives the merge into the newer commit, so it
     * is still dropped at its 100th failure (the commit that arrives then
     * starts its own count) */
    dedupidx_commit(x, "s1", T("d.a"), 5, 10, 3);
    int sends = 0;
    for (int a = 0; a < 100 && fake_redisc_unanswered() == 1; a++) {
        sends++;
        dedupidx_commit(x, "s1", T("d.a"), 5, 11 + a, 3); /* waits behind it */
        answer_type(REDISC_REPLY_ERROR, "WRONGTYPE", 0);
        turn();
        dedupidx_tick(x);
    }
    CHECK_EQ(sends, 100);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 2);
    const redisc_batch_t *last = only_batch(); /* the last commit, on its own */
    if (last) {
        w_sweep("s1", "d.a", 5, 110);
        CHECK(cmd_is(last, 0));
        answer_str("");
        turn();
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_free(x);
    w_reset();
    env_close();
}

static void test_bound(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);
    uint64_t drops = g_metrics.dedup_tracking_dropped;

    fake_redisc_set_up(0);
    turn();
    for (int p = 0; p < (int)DEDUPIDX_SWEEPS + 3; p++)
        dedupidx_commit(x, "s1", T("d.a"), p, p + 1, 1);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 3); /* p0, p1, p2 */
    dedupidx_commit(x, "s1", T("d.a"), 10, 999, 1);        /* merged: none dropped */
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 3);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);

    fake_redisc_set_up(1);
    turn();
    CHECK_EQ(fake_redisc_unanswered(), 0); /* the caller ticks on Redis up */
    dedupidx_tick(x);
    int batches = 0, cmds = 0, ok = 1, next = 3;
    while (fake_redisc_unanswered() == 1 && batches < 100) {
        const redisc_batch_t *b = fake_redisc_unanswered_batch(0, NULL);
        size_t n = redisc_batch_count(b);
        ok &= n == DEDUPIDX_PER_TRIP;
        for (size_t k = 0; k < n; k++, next++) {
            w_sweep("s1", "d.a", next, next == 10 ? 999 : next + 1);
            ok &= cmd_is(b, k);
        }
        cmds += (int)n;
        batches++;
        answer_empty();
        turn();
    }
    CHECK(ok);
    CHECK_EQ(batches, DEDUPIDX_SWEEPS / DEDUPIDX_PER_TRIP);
    CHECK_EQ(cmds, DEDUPIDX_SWEEPS);
    CHECK_EQ(next, DEDUPIDX_SWEEPS + 3);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(g_metrics.dedup_tracking_dropped, drops + 3);
    dedupidx_free(x);
    w_reset();
    env_close();
}

static void test_free(void)
{
    env_open();
    struct dedupidx *x = idx_new(TAG);

    /* a sweep in flight, two waiting, index commands staged */
    dedupidx_commit(x, "s1", T("d.a"), 0, 10, 1);
    dedupidx_commit(x, "s1", T("d.a"), 1, 10, 1);
    dedupidx_commit(x, "s1", T("d.a"), 2, 10, 1);
    add(x, "s1", "d.a", 0, 3, "e1", 1);
    add(x, "s1", "d.a", 1, 3, "e2", 1);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    dedupidx_free(x);
    int cancelled = 0;
    if (fake_redisc_unanswered() == 1) {
        fake_redisc_unanswered_batch(0, &cancelled);
        answer_str(AT OTHER ":late");
    }
    CHECK_EQ(cancelled, 1);
    turn();
    CHECK_EQ(fnd.calls, 0); /* no callback after free */
    CHECK_EQ(fake_redisc_unanswered(), 0);

    /* an index pipeline answered after free: counted, nothing touched */
    uint64_t fails = g_metrics.dedup_index_failures;
    x = idx_new(TAG);
    add(x, "s1", "d.a", 0, 3, "e1", 1);
    dedupidx_send(x);
    dedupidx_free(x);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    answer_type(REDISC_REPLY_ERROR, "ERR", 0);
    turn();
    CHECK_EQ(g_metrics.dedup_index_failures, fails + 1);

    /* offsets <= 0, a null topic, NULL: nothing */
    x = idx_new(TAG);
    dedupidx_commit(x, "s1", T("d.a"), 0, 0, 1);
    dedupidx_commit(x, "s1", T("d.a"), 0, -1, 1);
    dedupidx_commit(x, "s1", (kstr_t){NULL, -1}, 0, 5, 1);
    dedupidx_tick(x);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    dedupidx_commit(NULL, "s1", T("d.a"), 0, 5, 1);
    dedupidx_tick(NULL);
    dedupidx_free(NULL);
    dedupidx_free(x);
    CHECK_EQ(fnd.calls, 0);
    env_close();
}

/* ---------------------------------------------------------------- real Redis */

static pid_t redis_pid;
static char redis_dir[64] = "/tmp/dedupidx-XXXXXX";

/* A redis-server on a Unix socket in a fresh directory; NULL when none
 * can be started. */
static redisContext *redis_start(char *sock, size_t ssz)
{
    if (!mkdtemp(redis_dir))
        return NULL;
    snprintf(sock, ssz, "%s/redis.sock", redis_dir);
    redis_pid = fork();
    if (redis_pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
               "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
        _exit(127);
    }
    if (redis_pid < 0)
        return NULL;
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnectUnix(sock);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int up = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (up)
                return c;
        }
        redisFree(c);
        if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid) {
            redis_pid = 0;
            return NULL;
        }
        struct timespec ts = {0, 25000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void redis_stop(redisContext *c, const char *sock)
{
    redisFree(c);
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    unlink(sock);
    rmdir(redis_dir);
}

/* Runs every command of the first unanswered batch on the real Redis and
 * answers the batch with its replies. */
static void relay(redisContext *c)
{
    CHECK(fake_redisc_unanswered() > 0);
    if (!fake_redisc_unanswered())
        return;
    const redisc_batch_t *b = fake_redisc_unanswered_batch(0, NULL);
    size_t n = redisc_batch_count(b);
    redisReply **hr = calloc(n, sizeof(*hr));
    redisc_reply_t *r = calloc(n, sizeof(*r));
    for (size_t k = 0; k < n; k++) {
        const char *const *argv;
        const size_t *lens;
        int argc = fake_redisc_cmd(b, k, &argv, &lens);
        hr[k] = redisCommandArgv(c, argc, (const char **)argv, lens);
        CHECK(hr[k] != NULL);
        if (!hr[k])
            continue;
        switch (hr[k]->type) {
        case REDIS_REPLY_STRING:
            r[k].type = REDISC_REPLY_STRING;
            break;
        case REDIS_REPLY_INTEGER:
            r[k].type = REDISC_REPLY_INTEGER;
            break;
        case REDIS_REPLY_ERROR:
            r[k].type = REDISC_REPLY_ERROR;
            fprintf(stderr, "  Redis: %s\n", hr[k]->str);
            break;
        case REDIS_REPLY_STATUS:
            r[k].type = REDISC_REPLY_STATUS;
            break;
        case REDIS_REPLY_ARRAY:
            r[k].type = REDISC_REPLY_ARRAY;
            break;
        default:
            r[k].type = REDISC_REPLY_NIL;
        }
        r[k].integer = hr[k]->integer;
        r[k].str = hr[k]->str;
        r[k].len = hr[k]->str ? hr[k]->len : 0;
    }
    fake_redisc_answer(0, REDISC_OK, r, n);
    for (size_t k = 0; k < n; k++)
        freeReplyObject(hr[k]);
    free(hr);
    free(r);
}

/* An integer answer of the real Redis to a command (printf-like). */
static long long rint_(redisContext *c, const char *fmt, const char *key)
{
    redisReply *r = redisCommand(c, fmt, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

/* The entry at the head of key's list (the oldest). */
static void lowest(redisContext *c, const char *key, char *out, size_t osz)
{
    redisReply *r = redisCommand(c, "LINDEX %s 0", key);
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(out, osz, "%s", r->str);
    else
        snprintf(out, osz, "?");
    freeReplyObject(r);
}

static void test_real_redis(void)
{
    char sock[128], low[128];
    redisContext *c = redis_start(sock, sizeof(sock));
    if (!c) {
        fprintf(stderr, "dedupidx: no redis-server started: the real Redis case is skipped\n");
        if (redis_pid > 0)
            redis_stop(NULL, sock);
        else
            rmdir(redis_dir);
        return;
    }
    env_open();
    /* this process (a) and another one of the scope (o) */
    struct dedupidx *a = idx_new(TAG), *o = idx_new(OTHER);
    uint64_t fails = g_metrics.dedup_index_failures;
    const char *k0 = "eosproxy:s1:@delivered d.a/0", *k1 = "eosproxy:s1:@delivered d.a/1",
               *k2 = "eosproxy:s1:@delivered d.a/2";

    /* index: RPUSH in delivery order, PEXPIRE to the ttl */
    add(o, "s1", "d.a", 0, 10, "e10", 60000);
    add(o, "s1", "d.a", 0, 11, "e11", 60000);
    add(o, "s1", "d.a", 0, 12, "sha256:e12", 60000);
    add(o, "s1", "d.a", 0, 20, "e20", 60000);
    dedupidx_send(o);
    add(a, "s1", "d.a", 0, 13, "e13", 60000);
    dedupidx_send(a);
    CHECK_EQ(fake_redisc_unanswered(), 2);
    relay(c);
    relay(c);
    turn();
    CHECK_EQ(g_metrics.dedup_index_failures, fails);
    CHECK_EQ(rint_(c, "LLEN %s", k0), 5);
    long long pttl = rint_(c, "PTTL %s", k0);
    CHECK(pttl > 50000 && pttl <= 60000);
    lowest(c, k0, low, sizeof(low));
    CHECK_STR(low, "00000000000000000010 " OTHER ":e10");

    /* sweep: the head strictly below the offset (it stops at e20, so e13
     * behind it waits), removed, joined; found gets the other process's */
    dedupidx_commit(a, "s1", T("d.a"), 0, 13, 777);
    relay(c);
    turn();
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.nkeys, 3);
    if (fnd.nkeys == 3) {
        CHECK_STR(fnd.keys[0], "eosproxy:s1:e10");
        CHECK_STR(fnd.keys[1], "eosproxy:s1:e11");
        CHECK_STR(fnd.keys[2], "eosproxy:s1:sha256:e12");
    }
    CHECK_EQ(fnd.ttl, 777);
    CHECK_EQ(rint_(c, "LLEN %s", k0), 2);
    dedupidx_commit(a, "s1", T("d.a"), 0, 13, 777); /* again: an empty string */
    relay(c);
    turn();
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fake_redisc_unanswered(), 0);
    found_reset();
    dedupidx_commit(a, "s1", T("d.a"), 0, 21, 777); /* own e13 skipped, e20 found */
    relay(c);
    turn();
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.nkeys, 1);
    if (fnd.nkeys == 1)
        CHECK_STR(fnd.keys[0], "eosproxy:s1:e20");
    CHECK_EQ(rint_(c, "EXISTS %s", k0), 0); /* swept empty: gone */

    /* 1500 entries: swept 1000, then at once the 500 left */
    found_reset();
    char sfx[16];
    for (int i = 1; i <= 1500; i++) {
        snprintf(sfx, sizeof(sfx), "k%04d", i);
        add(o, "s1", "d.a", 1, i, sfx, 60000);
    }
    dedupidx_send(o);
    relay(c);
    turn();
    CHECK_EQ(rint_(c, "LLEN %s", k1), 1500);
    dedupidx_commit(a, "s1", T("d.a"), 1, 2000, 5);
    relay(c);
    turn();
    CHECK_EQ(fnd.calls, 1);
    CHECK_EQ(fnd.last_n, DEDUPIDX_SWEEP);
    CHECK_EQ(rint_(c, "LLEN %s", k1), 500);
    CHECK_EQ(fake_redisc_unanswered(), 1);
    if (fake_redisc_unanswered() == 1) {
        relay(c);
        turn();
    }
    CHECK_EQ(fnd.calls, 2);
    CHECK_EQ(fnd.last_n, 500);
    if (fnd.nkeys == 1500) {
        CHECK_STR(fnd.keys[0], "eosproxy:s1:k0001");
        CHECK_STR(fnd.keys[999], "eosproxy:s1:k1000");
        CHECK_STR(fnd.keys[1000], "eosproxy:s1:k1001");
        CHECK_STR(fnd.keys[1499], "eosproxy:s1:k1500");
    }
    CHECK_EQ(fake_redisc_unanswered(), 0);
    CHECK_EQ(rint_(c, "EXISTS %s", k1), 0);

    /* trim to the newest DEDUPIDX_CAP entries: a late low offset goes in
     * at the tail and the head makes room */
    for (int i = 1; i <= (int)DEDUPIDX_CAP + 1; i++) {
        snprintf(sfx, sizeof(sfx), "c%d", i);
        add(o, "s1", "d.a", 2, i, sfx, 60000);
    }
    dedupidx_send(o);
    relay(c);
    turn();
    CHECK_EQ(rint_(c, "LLEN %s", k2), DEDUPIDX_CAP);
    lowest(c, k2, low, sizeof(low));
    CHECK_STR(low, "00000000000000000002 " OTHER ":c2");
    add(o, "s1", "d.a", 2, 0, "c0", 60000);
    dedupidx_send(o);
    relay(c);
    turn();
    CHECK_EQ(rint_(c, "LLEN %s", k2), DEDUPIDX_CAP);
    lowest(c, k2, low, sizeof(low));
    CHECK_STR(low, "00000000000000000003 " OTHER ":c3");
    CHECK_EQ(g_metrics.dedup_index_failures, fails);

    dedupidx_free(a);
    dedupidx_free(o);
    env_close();
    redis_stop(c, sock);
}

int main(void)
{
    log_setup(LOG_ERROR, 0); /* failures on purpose */
    test_index();
    test_sweep();
    test_merge();
    test_more();
    test_failure();
    test_bound();
    test_free();
    test_real_redis();
    w_reset();
    free(seen_index);
    free(seen_sweep);
    return unit_done("dedupidx");
}
