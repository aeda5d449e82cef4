/*
 * fuzz_dedup.c - libFuzzer target for the consumer-dedup engine (dedup.c),
 * driven through its public entry points (dedup_fetch_response,
 * dedup_commit_request/_response, dedup_endtxn_request/_response,
 * dedup_client_gone) on a real libevent loop. Redis is played by
 * fake_redisc.c (the whole redisc.h API, in process); the answers, the
 * clock and the dead-letter writer go through dedup's test hooks
 * (dedup_set_test_hooks), so neither the real client_slot_done (client.c,
 * linked) nor dlqw.c is ever reached.
 *
 * Input: "dd" (other inputs are skipped at once: the seed directory is
 * shared with the codec targets), two config bytes, then operations until
 * the input ends, each an opcode byte (% 16) and its parameter bytes
 * (bytes past the end read 0).
 *   config[0]: bit 0 on_unavailable pass; bits 1-2 block_timeout 1 ms,
 *     150 ms or 10 s; bits 3-4 cache_entries 0, 3, 1000, 100000; bit 5
 *     Redis up at start; bit 6 dedup.ttl of the json topic 150 ms (else 1h).
 *   config[1]: 0 keeps the real DEDUP_* bounds; else small per-job
 *     record and inflated budgets and a small held-bytes bound.
 *   Topics: h.a (eventId in a header), x.a (the key; with a dlq to
 *     dead.x), j.a (a JSON field), k.a (the key, another scope), q.a (a
 *     dlq, to q.a.DLT, and no dedup: every record is keyed by position),
 *     plain.a (neither). Both dlq rules have max_deliveries 2.
 *   FETCH: a Fetch response (v4..v12, sometimes v3/v13 or truncated) of
 *     1..3 topics, 1..3 partitions each (error codes, null records,
 *     aborted transactions, a partial trailing batch), 0..4 batches each,
 *     every one made from parameter bytes: codec (none, gzip, snappy, lz4,
 *     zstd), kind (plain, control, transactional, message format 1, bad
 *     CRC), record count (0..15, or 0xb0..0xb3 pick 1,000 / 20,000 /
 *     100,000 / 250,000), eventId pattern (unique, a pool of 1..8 so
 *     all-duplicate batches, none, mixed, long, non-printable, "sha256:", a
 *     pool shared across responses, JSON numbers) and value size and
 *     repetition (null to 1000 bytes, so compression up to ~1000:1; 4 MiB
 *     decompressed per batch, or 80 MiB, past the codec's 64 MiB bound, for
 *     0xa_). Large cases come from such parameters, never from raw bytes.
 *     Seeds: tests/fuzz/seeds/dedup-*.
 *   REFETCH: one of the last four answered responses again, the same
 *     records at the same offsets (a consumer that did not commit), when
 *     no held response covers those offsets: with the model's answers a
 *     record's delivery count climbs to max_deliveries and it turns poison.
 *   ANSWER / ANSWER_ALL: answers one / every Redis batch in flight: as a
 *     consistent Redis would (a model of SET NX GET, SET d, SET x, the EVAL
 *     compare-and-set), nil, "d", pending here (1..5 deliveries), pending
 *     elsewhere, a per-command mix with "x", garbage, malformed "p:", -OOM
 *     errors, integers, status and arrays, all errors, or REDISC_EDOWN /
 *     REDISC_ETIMEOUT.
 *   DLQ: the fake dead-letter writer acks or fails one write or all of
 *     them (the callback runs at the next loop turn, unless cancelled
 *     meanwhile), or refuses its next 1..2 sends (dlq_send returns 0); a
 *     write no DLQ op answers stays unanswered.
 *   STATE (Redis up or down), LOOP (event loop turns), TICK (advance the
 *     clock 1 ms .. 20 s, past DD_DLQ_WAIT_MS, run the engine's tick),
 *     COMMIT (OffsetCommit or TxnOffsetCommit request, then maybe its
 *     response: errors, malformed, another correlation id), ENDTXN
 *     (request and maybe response), GONE (dedup_client_gone), REFUSE (the
 *     next sends fail though Redis is ready), FREE (dedup_free at once,
 *     responses and dead-letter writes still held).
 * Then Redis comes up and answers from its model, the writer acks every
 * write, until every taken response is answered (at most 64 rounds), and
 * dedup_free runs.
 *
 * Invariants (abort on violation):
 *  - dedup_fetch_response takes (1) every well-formed response with a
 *    dedup or dlq partition under `block` (`pass` may pass it, 0), returns
 *    0 without one or for v0..v3/v13, -1 for a truncated frame;
 *  - every taken response is answered exactly once, from the loop (never
 *    inside dedup_fetch_response), and all are once Redis answers;
 *  - the answer parses as a Fetch response of the same version: same
 *    correlation id, topics and partitions in order; non-dedup
 *    partitions byte-identical;
 *  - dedup partitions: either all answer error 6 without records (block
 *    only), or each keeps a prefix of its batches (after a cut, counted,
 *    later dedup partitions have no records; the first one with batches
 *    keeps one); batches passed unchecked are byte-identical; filtered
 *    batches decode with their CRC, keep baseOffset and lastOffsetDelta,
 *    hold original records byte for byte in order, every record without
 *    eventId (of a rule without dlq), no eventId twice in the response and
 *    none that Redis answered "d" for this response (except the
 *    documented Fetch v4 batch ending at offset 0);
 *  - dlq: the engine writes a partition's record to the dead-letter topic
 *    exactly when the first record of the partition still to be processed
 *    (the first occurrence of its key that Redis answered nil, garbage or
 *    pending here) was pending here with >= max_deliveries deliveries,
 *    and no partition before it in the response had such a record: so at
 *    most one per response, from the loop, and the copy
 *    is the original record (key, value, headers, the DLT headers with its
 *    topic, partition, offset, CreateTime timestamp and the reason); the
 *    response is answered only once each of its writes is answered or
 *    given up, and given up only after DD_DLQ_WAIT_MS (and then at the
 *    next tick); a record whose write was acked is left out of the answer,
 *    one whose write failed, was refused or given up is in it, as is a
 *    position key Redis answered "d"; a record keyed by position is left
 *    out only when Redis answered "x" or pending elsewhere, or it was
 *    dead-lettered before (acked, or "x", hence maybe cached);
 *  - dlq_cancel only names a write outstanding (not answered to the
 *    engine, not cancelled), no callback follows it, and once the engine
 *    is freed no write is outstanding; the dlq_inflight gauge returns to
 *    its start value;
 *  - a pipeline never asks one key twice; a done mark (SET key d, or for
 *    a position key the EVAL that sets "d" unless the key holds "x") is
 *    only written for a key delivered at an offset below one committed on
 *    that partition; a dead mark (SET key x) only for a key whose dead-letter
 *    write was acked, with the rule's TTL (dedup.ttl, else 7 days);
 *  - the held-responses gauge returns to its start value; nothing leaks.
 */
#include "config.h"
#include "dedup.h"
#include "dlqw.h"
#include "fake_redisc.h"
#include "kbuf.h"
#include "kdlt.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_dedup: %s:%d: invariant broken: %s\n", __FILE__, __LINE__, #c);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NTOPICS 6
#define NPARTS 4
#define KERR_NOT_LEADER 6
#define MAX_RECORDS_PER_INPUT 300000u
#define MAX_INFLATED_PER_BATCH (4u << 20)
#define MAX_INFLATED_PER_HUGE_BATCH (80u << 20) /* past KRECORDS_MAX_INFLATED */
#define MAX_PLAIN_PER_BATCH (1u << 20)

static const char *const topic_names[NTOPICS] = {"h.a", "q.a", "x.a", "j.a", "k.a", "plain.a"};
/* Where the dlq topics' records go (see load_config), and after how many
 * deliveries. */
static const char *const dlq_names[NTOPICS] = {NULL, "q.a.DLT", "dead.x", NULL, NULL, NULL};
#define MAX_DELIVERIES 2
/* dedup.c's DD_DLQ_WAIT_MS: a job gives up on its writes after this. */
#define DLQ_WAIT_MS (DLQW_TIMEOUT_MS + 5000u)
#define DEAD_TTL_MS (7ull * 86400 * 1000)

enum op {
    OP_FETCH,
    OP_ANSWER,
    OP_ANSWER_ALL,
    OP_STATE,
    OP_LOOP,
    OP_TICK,
    OP_COMMIT,
    OP_ENDTXN,
    OP_GONE,
    OP_REFUSE,
    OP_FETCH2, /* a second opcode for FETCH: it is the one that matters */
    OP_FREE,
    OP_DLQ,
    OP_REFETCH,
    OP_DLQ2, /* DLQ and FETCH weigh more */
    OP_FETCH3,
    OP_COUNT
};

/* ---------------------------------------------------------------- input */

struct in {
    const uint8_t *p;
    size_t n, off;
};

static uint8_t u8(struct in *in)
{
    return in->off < in->n ? in->p[in->off++] : 0;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---------------------------------------------------------------- string map */

struct sent {
    char *k;
    size_t kl;
    uint64_t h;
    void *v;
};
struct smap {
    struct sent *e;
    size_t cap, n;
};

static struct sent *smap_slot(const struct smap *m, const char *k, size_t kl, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct sent *e = &m->e[i];
        if (!e->k || (e->h == h && e->kl == kl && memcmp(e->k, k, kl) == 0))
            return e;
    }
}

/* The value slot of k, or NULL when absent. */
static void **smap_get(const struct smap *m, const char *k, size_t kl)
{
    if (!m->cap)
        return NULL;
    struct sent *e = smap_slot(m, k, kl, krecord_xxh64(k, kl, 7));
    return e->k ? &e->v : NULL;
}

/* The value slot of k, created (NULL) when absent. */
static void **smap_put(struct smap *m, const char *k, size_t kl)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct smap g = {calloc(m->cap ? m->cap * 2 : 64, sizeof(struct sent)),
                         m->cap ? m->cap * 2 : 64, m->n};
        CHECK(g.e);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->e[i].k)
                *smap_slot(&g, m->e[i].k, m->e[i].kl, m->e[i].h) = m->e[i];
        }
        free(m->e);
        *m = g;
    }
    uint64_t h = krecord_xxh64(k, kl, 7);
    struct sent *e = smap_slot(m, k, kl, h);
    if (!e->k) {
        e->k = malloc(kl + 1);
        CHECK(e->k);
        memcpy(e->k, k, kl);
        e->k[kl] = 0;
        e->kl = kl;
        e->h = h;
        e->v = NULL;
        m->n++;
    }
    return &e->v;
}

static void smap_free(struct smap *m, int free_values)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->e[i].k);
        if (free_values)
            free(m->e[i].v);
    }
    free(m->e);
    memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------- state */

/* A place a record was delivered at. */
struct pos {
    int t; /* index in topic_names */
    int32_t p;
    int64_t off;
};
struct poslist {
    size_t n, cap;
    struct pos v[];
};

/* A commit request sent: the engine answers a response with the oldest
 * request of its (client, correlation id, api) it still holds. */
struct creq {
    uint64_t client_id;
    int32_t corr;
    int16_t api;
    int tx;
    int n;
    struct pos e[3];
};

/* One partition of a response as generated: its records' offsets. */
struct ent {
    int t; /* index in topic_names */
    int32_t p;
    int64_t lo, hi;
    int64_t cand; /* the offset the engine wrote to the DLQ in this response, -1 none */
};
#define MAX_ENTS 9

/* What Redis answered about a key asked for a response (struct resp's
 * cls), as dedup.c's apply_reply reads it. */
enum { C_NONE, C_NEW, C_AGAIN, C_DONE, C_DEAD, C_ELSEWHERE };
struct kcls {
    int c;
    long count; /* C_AGAIN: the delivery count read (1 when unreadable) */
};

/* A Fetch response the engine took and has not answered yet. */
struct resp {
    uint64_t client_id, token;
    int16_t ver;
    uint8_t *frame;
    size_t len;
    int64_t off_lo, off_hi; /* its batches' offsets, unique among held ones */
    struct smap dkeys;      /* keys Redis answered "d" for it */
    struct smap cls;        /* key -> struct kcls: the usable answer to its pipeline */
    uint64_t cuts_at_take;
    struct ent ents[MAX_ENTS];
    int nents;
};

/* An answered response, for REFETCH. */
struct past {
    uint64_t client_id;
    int16_t ver;
    uint8_t *frame;
    size_t len;
    int64_t off_lo, off_hi;
    struct ent ents[MAX_ENTS];
    int nents;
};
#define NPAST 4

/* One write the engine gave the fake dead-letter writer (dedup's dlq_send
 * hook). */
enum dw_state {
    DW_OUT,       /* waiting for an answer */
    DW_ANSWERED,  /* answered: the callback runs at the next loop turn */
    DW_DONE,      /* the callback ran (err says how) */
    DW_CANCELLED, /* dlq_cancel: no callback */
    DW_REFUSED,   /* dlq_send returned 0 */
};
struct dw {
    uint64_t id, token; /* the write, the response it holds */
    void (*cb)(void *cbarg, uint64_t id, int err, const char *errstr, int64_t offset);
    void *cbarg;
    char *key; /* the record's Redis key */
    size_t kl;
    int64_t off;
    uint64_t sent_ms, cancel_ms;
    int state, err;
};

static struct {
    struct dw *v;
    size_t n, cap;
    uint64_t next_id;
    int refuse; /* sends to refuse */
    struct event *ev;
} W;

static struct {
    struct event_base *base;
    config_t *cfg;
    struct proxy px;
    struct dedup *d;
    int pass;
    size_t max_records; /* the per-job record budget in force */
    uint64_t clock;
    struct resp **live;
    size_t nlive, cap_live;
    int in_take;
    uint64_t next_token;
    int32_t next_corr;
    int64_t next_off;
    int fetched;
    uint64_t ids;
    size_t records_made;
    struct smap model;     /* the Redis model: key -> value */
    struct smap lists;     /* ... its delivery index: key -> struct ilist */
    struct smap asked;     /* keys the engine asked about */
    char tag[9];           /* the engine's index tag, once seen */
    struct smap delivered; /* key -> struct poslist */
    int64_t committed[NTOPICS][NPARTS];
    struct pos *txn[2]; /* offsets of TxnOffsetCommits answered OK, per transaction */
    size_t ntxn[2], cap_txn[2];
    struct creq *creqs; /* every commit request sent */
    size_t ncreqs, cap_creqs;
    struct smap acked; /* keys whose dead-letter write was acked */
    int dead_seen;     /* some write was sent: counts may restart (find_poison) */
    struct smap dead;  /* ... and keys Redis answered "x": maybe cached dead */
    struct past past[NPAST];
    size_t npast;
    kwriter_t tmp;
} F;

static int topic_index(kstr_t name)
{
    for (int t = 0; t < NTOPICS; t++) {
        if ((size_t)name.len == strlen(topic_names[t]) &&
            memcmp(name.ptr, topic_names[t], (size_t)name.len) == 0)
            return t;
    }
    return -1;
}

/* The rule of a topic the engine checks (dedup or dlq), or NULL. */
static const policy_rule_t *dedup_rule(kstr_t name)
{
    const policy_rule_t *r = policy_lookup(F.cfg->policy, name.ptr, (size_t)name.len);
    return r && (r->dedup.src != EVENTID_NONE || POLICY_HAS_DLQ(r)) ? r : NULL;
}

/* The Redis key of eventId id in scope, as README "Keys" says; a position
 * id (raw) is never hashed. */
static size_t make_key(char *out, const char *scope, const uint8_t *id, size_t n, int raw)
{
    int hashed = !raw && (n > 128 || n == 0 || (n >= 7 && memcmp(id, "sha256:", 7) == 0));
    for (size_t i = 0; i < n && !hashed && !raw; i++)
        hashed = id[i] < 0x21 || id[i] > 0x7e;
    int len = sprintf(out, "eosproxy:%s:", scope);
    if (!hashed) {
        memcpy(out + len, id, n);
        return (size_t)len + n;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(id, n, md);
    len += sprintf(out + len, "sha256:");
    for (size_t i = 0; i < sizeof(md); i++)
        len += sprintf(out + len, "%02x", md[i]);
    return (size_t)len;
}

/* The key of record r of topic t, partition p, at offset off under rule,
 * or 0 when it has none (no eventId, no dlq); *pos: keyed by position
 * ("@pos <topic>/<partition>/<offset>", a dlq rule without an eventId). */
static size_t record_key(const policy_rule_t *rule, int t, int32_t p, int64_t off, const krec_t *r,
                         char *out, int *pos)
{
    static uint8_t scratch[4096];
    const char *scope = rule->dedup.scope ? rule->dedup.scope : F.cfg->service;
    kbytes_t id;
    *pos = 0;
    if (rule->dedup.src != EVENTID_NONE &&
        krecords_event_id(r, (int)rule->dedup.src, rule->dedup.name, &id, scratch,
                          sizeof(scratch)) &&
        id.len >= 0)
        return make_key(out, scope, id.ptr, (size_t)id.len, 0);
    if (!POLICY_HAS_DLQ(rule))
        return 0;
    char pid[300];
    int n = snprintf(pid, sizeof(pid), "@pos %s/%d/%lld", topic_names[t], (int)p, (long long)off);
    *pos = 1;
    return make_key(out, scope, (const uint8_t *)pid, (size_t)n, 1);
}

static struct resp *find_resp_by_offset(int64_t off)
{
    for (size_t i = 0; i < F.nlive; i++) {
        if (off >= F.live[i]->off_lo && off < F.live[i]->off_hi)
            return F.live[i];
    }
    return NULL;
}

static void resp_free(struct resp *r)
{
    free(r->frame);
    smap_free(&r->dkeys, 0);
    smap_free(&r->cls, 1);
    free(r);
}

static void turns(int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(F.base, EVLOOP_NONBLOCK);
}

/* ---------------------------------------------------------------- answer check */

/* The complete batches of a partition's records (as the engine cuts them). */
struct bview {
    const uint8_t *p;
    size_t size;
};

static size_t split_batches(kbytes_t rec, struct bview **out, size_t *tail_off)
{
    size_t len = rec.len > 0 ? (size_t)rec.len : 0, off = 0, n = 0, cap = 0;
    *out = NULL;
    while (len - off >= 12) {
        int32_t bl = kbe32(rec.ptr + off + KREC_OFF_BATCH_LENGTH);
        if (bl < 0 || (size_t)bl > len - off - 12)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = realloc(*out, cap * sizeof(**out));
            CHECK(*out);
        }
        (*out)[n++] = (struct bview){rec.ptr + off, 12 + (size_t)bl};
        off += 12 + (size_t)bl;
    }
    *tail_off = off;
    return n;
}

/* 1 (and b decoded) if the engine checks this batch's records. */
static int scanned(const struct bview *v, const kfetch_partition_t *p, krecords_batch_t *b)
{
    if (v->size < KRECORD_HEADER_SIZE || v->p[KREC_OFF_MAGIC] != 2)
        return 0;
    krecord_batch_t h;
    krecord_read_header(v->p, &h);
    if (h.attributes & KRECORD_ATTR_CONTROL)
        return 0;
    if ((h.attributes & KRECORD_ATTR_TRANSACTIONAL) && p->naborted > 0) {
        for (int32_t i = 0; i < p->naborted; i++) {
            if (p->aborted[i].producer_id == h.producer_id &&
                p->aborted[i].first_offset <= h.base_offset)
                return 0;
        }
    }
    if (h.record_count < 0 || (size_t)h.record_count > F.max_records)
        return 0;
    return krecords_decode(v->p, v->size, b, NULL) == 0;
}

static void note_delivered(const char *key, size_t kl, int t, int32_t p, int64_t off)
{
    struct poslist **pl = (struct poslist **)smap_put(&F.delivered, key, kl);
    if (!*pl || (*pl)->n == (*pl)->cap) {
        size_t cap = *pl ? (*pl)->cap * 2 : 2;
        struct poslist *n = realloc(*pl, sizeof(**pl) + cap * sizeof(struct pos));
        CHECK(n);
        if (!*pl)
            n->n = 0;
        n->cap = cap;
        *pl = n;
    }
    (*pl)->v[(*pl)->n++] = (struct pos){t, p, off};
}

/* The dead-letter write of key made for the response of token, or NULL. */
static const struct dw *dw_find(uint64_t token, const char *key, size_t kl)
{
    for (size_t i = 0; i < W.n; i++) {
        const struct dw *w = &W.v[i];
        if (w->token == token && w->kl == kl && memcmp(w->key, key, kl) == 0)
            return w;
    }
    return NULL;
}

/* What the answer check carries through one response's dedup partitions. */
struct actx {
    struct smap seen; /* keys kept so far */
    struct smap all;  /* keys met so far: the first occurrence decides */
    int cut, first;
};

/* ... and through one partition: its first record still to be processed. */
struct pctx {
    int64_t head; /* -1: none yet */
    int poison;   /* the head is due for the DLQ */
};

/*
 * The first occurrence in a response of key (a position key if pos), at
 * offset off, kept or not: what Redis answered about it for this response
 * and what became of its dead-letter write decide (see the header).
 */
static void check_first(const struct resp *r, const policy_rule_t *rule, const char *key, size_t kl,
                        int pos, int64_t off, int kept, int exempt, struct pctx *pc)
{
    void **v = smap_get(&r->cls, key, kl);
    const struct kcls *k = v ? *v : NULL;
    int c = k ? k->c : C_NONE;
    if (pc->head < 0 && (c == C_NEW || c == C_AGAIN)) {
        pc->head = off;
        pc->poison = POLICY_HAS_DLQ(rule) && c == C_AGAIN && k->count >= rule->dlq.max_deliveries;
    }
    const struct dw *w = dw_find(r->token, key, kl);
    CHECK(!w || (w->off == off && pc->head == off && pc->poison)); /* and the first: see cand */
    int acked = w && w->state == DW_DONE && w->err == 0;
    if (exempt)
        return; /* the Fetch v4 batch ending at offset 0 may be kept whole */
    if (w)
        CHECK(kept == !acked); /* acked: dead-lettered; failed, refused, given up: delivered */
    if (c == C_DEAD)
        CHECK(!kept);
    if ((c == C_NEW || c == C_AGAIN || (pos && c == C_DONE)) && !acked)
        CHECK(kept); /* delivered, again, or (position keys) uncounted */
    if (pos && !kept)
        CHECK(c == C_DEAD || c == C_ELSEWHERE || acked ||
              (c == C_NONE && smap_get(&F.dead, key, kl)));
}

/* A filtered batch ab of the scanned original ob: see the header. */
static void check_filtered(const struct resp *r, const policy_rule_t *rule, int t, int32_t part,
                           const krecords_batch_t *ob, const uint8_t *ob_raw,
                           const struct bview *av, int exempt, struct actx *ac, struct pctx *pc)
{
    krecords_batch_t ab;
    int same = av->size == ob->hdr.size && memcmp(av->p, ob_raw, av->size) == 0;
    if (same)
        ab = *ob; /* every record kept: the batch as it came */
    else
        CHECK(krecords_decode(av->p, av->size, &ab, NULL) == 0);
    CHECK(ab.hdr.base_offset == ob->hdr.base_offset);
    CHECK(ab.hdr.last_offset_delta == ob->hdr.last_offset_delta);
    int empty =
        ob->nrecords > 0 && ((ab.hdr.attributes & KRECORD_ATTR_CONTROL) || ab.nrecords == 0 ||
                             (ab.nrecords == 1 && ab.records[0].offset_delta == -1));
    char key[512];
    int32_t j = 0;
    for (int32_t i = 0; i < ob->nrecords; i++) {
        const krec_t *x = &ob->records[i];
        int64_t off = ob->hdr.base_offset + x->offset_delta;
        int pos;
        size_t kl = record_key(rule, t, part, off, x, key, &pos);
        int kept = 0;
        if (!empty && j < ab.nrecords) {
            const krec_t *y = &ab.records[j];
            if (x->raw_len == y->raw_len && x->offset_delta == y->offset_delta &&
                memcmp(x->raw, y->raw, x->raw_len) == 0) {
                kept = 1;
                j++;
            }
        }
        CHECK(kept || kl > 0); /* no record without a key is lost */
        if (kl == 0)
            continue;
        if (!smap_get(&ac->all, key, kl)) {
            *smap_put(&ac->all, key, kl) = (void *)1;
            check_first(r, rule, key, kl, pos, off, kept, exempt, pc);
        }
        if (!kept)
            continue;
        note_delivered(key, kl, t, part, off);
        if (exempt)
            continue;
        CHECK(pos || !smap_get(&r->dkeys, key, kl)); /* Redis said done */
        CHECK(!smap_get(&ac->seen, key, kl));        /* twice in one response */
        *smap_put(&ac->seen, key, kl) = (void *)1;
    }
    CHECK(empty || j == ab.nrecords);
    if (!same)
        krecords_batch_free(&ab);
}

/* One dedup partition of an answer that was not failed; *cand: the
 * offset of its head when that head is due for the DLQ, -1 for none. */
static void check_partition(const struct resp *r, const policy_rule_t *rule, int t,
                            const kfetch_partition_t *op, const kfetch_partition_t *ap,
                            struct actx *ac, int64_t *cand)
{
    *cand = -1;
    if (ac->cut) {
        CHECK(ap->records.len == 0);
        return;
    }
    struct bview *ob, *ab;
    size_t otail, atail;
    size_t nb = split_batches(op->records, &ob, &otail);
    size_t na = split_batches(ap->records, &ab, &atail);
    size_t alen = ap->records.len > 0 ? (size_t)ap->records.len : 0;
    struct pctx pc = {-1, 0};
    if (nb == 0) {
        CHECK(ap->records.len == op->records.len &&
              memcmp(ap->records.ptr, op->records.ptr, (size_t)op->records.len) == 0);
    } else {
        CHECK(na <= nb);
        CHECK(na > 0 || !ac->first); /* the first partition with batches moves on */
        ac->first = 0;
        if (na < nb) {
            ac->cut = 1;
            CHECK(atail == alen);
        } else {
            size_t tl = (size_t)op->records.len - otail;
            CHECK(alen - atail == tl &&
                  memcmp(ap->records.ptr + atail, op->records.ptr + otail, tl) == 0);
        }
        for (size_t k = 0; k < na; k++) {
            krecords_batch_t b;
            if (!scanned(&ob[k], op, &b)) {
                CHECK(ab[k].size == ob[k].size && memcmp(ab[k].p, ob[k].p, ob[k].size) == 0);
                continue;
            }
            int exempt = r->ver < 5 && b.hdr.base_offset + b.hdr.last_offset_delta == 0;
            check_filtered(r, rule, t, op->index, &b, ob[k].p, &ab[k], exempt, ac, &pc);
            krecords_batch_free(&b);
        }
    }
    if (pc.poison)
        *cand = pc.head;
    free(ob);
    free(ab);
}

/* Every dead-letter write of r was answered or given up (after
 * DD_DLQ_WAIT_MS) before r was. */
static void check_writes_over(const struct resp *r)
{
    for (size_t i = 0; i < W.n; i++) {
        const struct dw *w = &W.v[i];
        if (w->token != r->token)
            continue;
        CHECK(w->state == DW_DONE || w->state == DW_CANCELLED || w->state == DW_REFUSED);
        if (w->state == DW_CANCELLED)
            CHECK(w->cancel_ms - w->sent_ms >= DLQ_WAIT_MS);
    }
}

static void check_answer(struct resp *r, struct evbuffer *out)
{
    CHECK(out);
    check_writes_over(r);
    size_t n = evbuffer_get_length(out);
    CHECK(n >= 4);
    const uint8_t *buf = evbuffer_pullup(out, -1);
    CHECK(buf && (size_t)kbe32(buf) == n - 4);
    kfetch_resp_t a, o;
    CHECK(kfetch_resp_parse(r->ver, buf + 4, n - 4, &a, NULL) == 0);
    CHECK(kfetch_resp_parse(r->ver, r->frame, r->len, &o, NULL) == 0);
    CHECK(a.correlation_id == o.correlation_id && a.throttle_time_ms == o.throttle_time_ms &&
          a.error_code == o.error_code && a.session_id == o.session_id && a.ntopics == o.ntopics);
    int failed = 0;
    for (int32_t i = 0; i < o.ntopics; i++) {
        CHECK(a.topics[i].name.len == o.topics[i].name.len &&
              memcmp(a.topics[i].name.ptr, o.topics[i].name.ptr, (size_t)o.topics[i].name.len) ==
                  0);
        CHECK(a.topics[i].npartitions == o.topics[i].npartitions);
        for (int32_t k = 0; dedup_rule(o.topics[i].name) && k < o.topics[i].npartitions; k++) {
            const kfetch_partition_t *op = &o.topics[i].partitions[k],
                                     *ap = &a.topics[i].partitions[k];
            if (ap->error_code == KERR_NOT_LEADER && op->error_code != KERR_NOT_LEADER)
                failed = 1;
        }
    }
    CHECK(!failed || !F.pass);
    struct actx ac = {{0}, {0}, 0, 1};
    int e = 0, writes = 0, first_due = -1, due = 0;
    for (int32_t i = 0; i < o.ntopics; i++) {
        const policy_rule_t *rule = dedup_rule(o.topics[i].name);
        int t = topic_index(o.topics[i].name);
        for (int32_t k = 0; k < o.topics[i].npartitions; k++, e++) {
            const kfetch_partition_t *op = &o.topics[i].partitions[k],
                                     *ap = &a.topics[i].partitions[k];
            int64_t cand = -1;
            CHECK(ap->index == op->index && ap->high_watermark == op->high_watermark &&
                  ap->last_stable_offset == op->last_stable_offset &&
                  ap->log_start_offset == op->log_start_offset && ap->naborted == op->naborted &&
                  ap->preferred_read_replica == op->preferred_read_replica);
            if (rule && failed) {
                CHECK(ap->error_code == KERR_NOT_LEADER && ap->records.len == 0);
            } else if (rule && op->error_code == 0 && op->records.len > 0) {
                CHECK(ap->error_code == op->error_code);
                check_partition(r, rule, t, op, ap, &ac, &cand);
            } else {
                CHECK(ap->error_code == op->error_code);
                CHECK(ap->records.len == op->records.len &&
                      (op->records.len <= 0 ||
                       memcmp(ap->records.ptr, op->records.ptr, (size_t)op->records.len) == 0));
            }
            /* dead-letter writes: only a due head, at most one per response
             * (below); another than the first due one only where a commit
             * was seen on its partition (the engine's commit evidence), or
             * after a dead-letter, which restarts the counts of the heads
             * due then (dedup.c find_poison) */
            CHECK(e < r->nents && (r->ents[e].cand < 0 || r->ents[e].cand == cand));
            if (cand >= 0 && first_due < 0)
                first_due = e;
            due += cand >= 0;
            if (r->ents[e].cand >= 0) {
                writes++;
                CHECK(e == first_due || F.committed[t][op->index] != INT64_MIN || F.dead_seen);
            }
        }
    }
    /* one write when something is due, unless a dead-letter was decided
     * before: then the due heads may all restart their counts */
    CHECK(writes <= 1 && (writes == (due > 0) || (due > 0 && F.dead_seen)));
    CHECK(!ac.cut || g_metrics.dedup_responses_cut > r->cuts_at_take);
    smap_free(&ac.seen, 0);
    smap_free(&ac.all, 0);
    kfetch_resp_free(&a);
    kfetch_resp_free(&o);
}

/* Remembers an answered response for REFETCH (taking its frame). */
static void remember(struct resp *r)
{
    struct past *p = &F.past[F.npast < NPAST ? F.npast++ : (size_t)(r->token % NPAST)];
    free(p->frame);
    *p = (struct past){r->client_id, r->ver, r->frame, r->len, r->off_lo, r->off_hi, {{0}}, 0};
    memcpy(p->ents, r->ents, sizeof(p->ents));
    p->nents = r->nents;
    r->frame = NULL;
}

/* The engine's answer (dedup test hook, instead of client_slot_done). */
static void on_answer(void *arg, uint64_t client_id, uint64_t token, struct evbuffer *out)
{
    (void)arg;
    CHECK(!F.in_take);
    size_t i = 0;
    while (i < F.nlive && (F.live[i]->client_id != client_id || F.live[i]->token != token))
        i++;
    CHECK(i < F.nlive); /* taken, and answered once */
    struct resp *r = F.live[i];
    check_answer(r, out);
    evbuffer_free(out);
    F.live[i] = F.live[--F.nlive];
    remember(r);
    resp_free(r);
}

static uint64_t on_clock(void *arg)
{
    (void)arg;
    return F.clock;
}

/* ---------------------------------------------------------------- Redis */

/* CMD_DMARK: a position key's done mark, "d" unless it holds "x" (EVAL).
 * CMD_INDEX / CMD_SWEEP: the shared delivery index (dedupidx.c): append
 * entries, take the head entries below an offset. */
enum cmd_kind {
    CMD_ASK,
    CMD_MARK,
    CMD_XMARK,
    CMD_EVAL,
    CMD_DMARK,
    CMD_INDEX,
    CMD_SWEEP,
    CMD_OTHER
};

/* A model list of the shared delivery index: its entries in order. */
struct ilist {
    char **v;
    size_t n, cap;
};

static void ilist_free(struct ilist *l)
{
    for (size_t i = 0; l && i < l->n; i++)
        free(l->v[i]);
    if (l)
        free(l->v);
    free(l);
}

static void ilist_push(struct ilist *l, const char *e, size_t el)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        CHECK(l->v);
    }
    l->v[l->n] = malloc(el + 1);
    CHECK(l->v[l->n]);
    memcpy(l->v[l->n], e, el);
    l->v[l->n++][el] = 0;
}

static int arg_is(const char *const *argv, const size_t *lens, int i, const char *s)
{
    return lens[i] == strlen(s) && memcmp(argv[i], s, lens[i]) == 0;
}

static int cmd_kind(int argc, const char *const *argv, const size_t *lens)
{
    if (argc >= 6 && arg_is(argv, lens, 0, "EVAL") && arg_is(argv, lens, 2, "1") &&
        memmem(argv[3], lens[3], ":@delivered ", 12))
        return argc == 6 ? CMD_SWEEP : CMD_INDEX;
    if (argc == 7 && arg_is(argv, lens, 0, "SET") && arg_is(argv, lens, 3, "NX") &&
        arg_is(argv, lens, 4, "GET") && arg_is(argv, lens, 5, "PX"))
        return CMD_ASK;
    if (argc == 5 && arg_is(argv, lens, 0, "SET") && arg_is(argv, lens, 2, "d") &&
        arg_is(argv, lens, 3, "PX"))
        return CMD_MARK;
    if (argc == 5 && arg_is(argv, lens, 0, "SET") && arg_is(argv, lens, 2, "x") &&
        arg_is(argv, lens, 3, "PX"))
        return CMD_XMARK;
    if (argc == 7 && arg_is(argv, lens, 0, "EVAL"))
        return CMD_EVAL;
    if (argc == 5 && arg_is(argv, lens, 0, "EVAL") && arg_is(argv, lens, 2, "1"))
        return CMD_DMARK;
    return CMD_OTHER;
}

/* The offset in a pending value "p:<topic>:<partition>:<offset>:<n>". */
static int64_t value_offset(const char *v)
{
    const char *p = v;
    for (int colons = 0; colons < 3; p++) {
        CHECK(*p);
        colons += *p == ':';
    }
    return strtoll(p, NULL, 10);
}

/* An index command: "EVAL script 1 <key> <ttl> <cap> <entry>..." whose
 * entries are "<20-digit offset> <tag>:<key suffix>", one tag for the
 * whole run, keys of this scope that were asked about. */
static void check_index(int argc, const char *const *argv, const size_t *lens)
{
    const char *sc = memmem(argv[3], lens[3], ":@delivered ", 12);
    size_t pl = (size_t)(sc - argv[3]) + 1; /* "eosproxy:<scope>:" */
    for (int i = 6; i < argc; i++) {
        const char *e = argv[i];
        CHECK(lens[i] > 30 && e[20] == ' ' && e[29] == ':');
        for (int d = 0; d < 20; d++)
            CHECK(e[d] >= '0' && e[d] <= '9');
        if (!F.tag[0])
            memcpy(F.tag, e + 21, 8);
        CHECK(memcmp(F.tag, e + 21, 8) == 0);
        char key[600];
        CHECK(pl + lens[i] - 30 < sizeof(key));
        memcpy(key, argv[3], pl);
        memcpy(key + pl, e + 30, lens[i] - 30);
        CHECK(smap_get(&F.asked, key, pl + lens[i] - 30));
    }
}

/* What the engine's pipelines may hold: asks never repeat a key within a
 * pipeline, done marks only for delivered and committed keys, dead marks
 * only for keys whose dead-letter write was acked, with the rule's TTL. */
static void check_batch(const redisc_batch_t *b)
{
    struct smap keys = {0};
    for (size_t k = 0; k < redisc_batch_count(b); k++) {
        const char *const *argv;
        const size_t *lens;
        int argc = fake_redisc_cmd(b, k, &argv, &lens);
        int kind = cmd_kind(argc, argv, lens);
        CHECK(kind != CMD_OTHER);
        int ki = kind == CMD_EVAL || kind == CMD_DMARK || kind >= CMD_INDEX ? 3 : 1; /* the key */
        CHECK(lens[ki] > 9 && memcmp(argv[ki], "eosproxy:", 9) == 0);
        if (kind == CMD_INDEX) {
            check_index(argc, argv, lens);
        } else if (kind == CMD_ASK) {
            CHECK(!smap_get(&keys, argv[1], lens[1]));
            *smap_put(&keys, argv[1], lens[1]) = (void *)1;
            *smap_put(&F.asked, argv[1], lens[1]) = (void *)1;
        } else if (kind == CMD_MARK || kind == CMD_DMARK) {
            CHECK((kind == CMD_DMARK) == (memchr(argv[ki], ' ', lens[ki]) != NULL)); /* pos keys */
            struct poslist **pl = (struct poslist **)smap_get(&F.delivered, argv[ki], lens[ki]);
            int ok = 0;
            for (size_t i = 0; pl && i < (*pl)->n && !ok; i++) {
                const struct pos *q = &(*pl)->v[i];
                ok = q->t >= 0 && q->p >= 0 && q->p < NPARTS && q->off < F.committed[q->t][q->p];
            }
            CHECK(ok);
        } else if (kind == CMD_XMARK) {
            CHECK(smap_get(&F.acked, argv[1], lens[1]));
            /* scope s1: x.a (dedup.ttl 1h); svc: q.a (no dedup: 7 days) */
            uint64_t ttl =
                lens[1] > 12 && memcmp(argv[1], "eosproxy:s1:", 12) == 0 ? 3600000ull : DEAD_TTL_MS;
            CHECK(strtoull(argv[4], NULL, 10) == ttl);
        }
    }
    smap_free(&keys, 0);
}

/* How dedup.c's apply_reply reads reply r to "SET key val NX GET PX ttl"
 * (val "p:<topic>:<partition>:<offset>:1"). */
static struct kcls classify(const char *val, size_t vlen, const redisc_reply_t *r)
{
    if (r->type == REDISC_REPLY_NIL)
        return (struct kcls){C_NEW, 0};
    if (r->len == 1 && r->str[0] == 'd')
        return (struct kcls){C_DONE, 0};
    if (r->len == 1 && r->str[0] == 'x')
        return (struct kcls){C_DEAD, 0};
    if (r->len <= 2 || r->str[0] != 'p' || r->str[1] != ':')
        return (struct kcls){C_NEW, 0}; /* a value eosproxy never writes: delivered */
    size_t n = vlen - 2;                /* the position, without ":1" */
    if (r->len <= n || memcmp(r->str, val, n) != 0 || r->str[n] != ':')
        return (struct kcls){C_ELSEWHERE, 0};
    char *end;
    long c = strtol(r->str + n + 1, &end, 10);
    return (struct kcls){C_AGAIN, *end == 0 && c > 0 ? c : 1};
}

/* Called before a batch's callback runs: the answers of a usable pipeline
 * bind the response asked about ("d" ones, and every key's class). */
static void on_delivered(const redisc_batch_t *b, int err, const redisc_reply_t *r, size_t n)
{
    if (err)
        return;
    CHECK(n == redisc_batch_count(b));
    for (size_t k = 0; k < n; k++) {
        if (r[k].type != REDISC_REPLY_NIL && (r[k].type != REDISC_REPLY_STRING || !r[k].str))
            return; /* not usable: the engine treats Redis as unavailable */
    }
    struct resp *owner = NULL;
    for (size_t k = 0; k < n; k++) {
        const char *const *argv;
        const size_t *lens;
        int argc = fake_redisc_cmd(b, k, &argv, &lens);
        if (cmd_kind(argc, argv, lens) != CMD_ASK)
            return;
        struct resp *x = find_resp_by_offset(value_offset(argv[2]));
        CHECK(x && (!owner || x == owner)); /* one pipeline, one live response */
        owner = x;
        if (r[k].type == REDISC_REPLY_STRING && r[k].len == 1 && r[k].str[0] == 'd')
            *smap_put(&x->dkeys, argv[1], lens[1]) = (void *)1;
        struct kcls *c = malloc(sizeof(*c));
        CHECK(c);
        *c = classify(argv[2], lens[2], &r[k]);
        void **slot = smap_put(&x->cls, argv[1], lens[1]);
        free(*slot);
        *slot = c;
        if (c->c == C_DEAD)
            *smap_put(&F.dead, argv[1], lens[1]) = (void *)1;
    }
}

enum reply_kind {
    RK_MODEL,
    RK_NIL,
    RK_DONE,
    RK_SAME,
    RK_OTHER,
    RK_GARBAGE,
    RK_BADP,
    RK_ERROR,
    RK_INT,
    RK_STATUS,
    RK_ARRAY,
    RK_DEAD,
};

static char *xstrdup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    CHECK(p);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static void set_str(redisc_reply_t *r, int type, char *s)
{
    r->type = type;
    r->str = s;
    r->len = strlen(s);
}

/* The shared delivery index as Redis keeps it. Each entry added also
 * gets a twin under the tag "ffffffff": another sidecar that delivered the
 * same record, which the engine must mark done once a commit passes it
 * (and only then: the done-mark invariant of check_batch). A sweep takes
 * the head entries below its offset (their first 20 characters, the
 * offset's digits, compare with it as strings), stopping at the first one
 * that is not, at most its limit, joined by newlines. */
static void model_index(int kind, int argc, const char *const *argv, const size_t *lens,
                        redisc_reply_t *r)
{
    void **v = smap_put(&F.lists, argv[3], lens[3]);
    if (!*v) {
        *v = calloc(1, sizeof(struct ilist));
        CHECK(*v);
    }
    struct ilist *l = *v;
    if (kind == CMD_INDEX) {
        for (int i = 6; i < argc; i++) {
            ilist_push(l, argv[i], lens[i]);
            if (lens[i] > 30 && memcmp(argv[i] + 21, "ffffffff", 8) != 0) {
                char twin[600];
                CHECK(lens[i] < sizeof(twin));
                memcpy(twin, argv[i], lens[i]);
                memcpy(twin + 21, "ffffffff", 8);
                ilist_push(l, twin, lens[i]);
            }
        }
        r->type = REDISC_REPLY_INTEGER;
        r->integer = (long long)l->n;
        return;
    }
    size_t limit = (size_t)strtoull(argv[5], NULL, 10), k = 0, len = 0;
    while (k < l->n && k < limit && strncmp(l->v[k], argv[4], 20) < 0) /* as the script */
        len += strlen(l->v[k++]) + 1;
    char *out = malloc(len + 1), *p = out;
    CHECK(out);
    for (size_t i = 0; i < k; i++) {
        size_t el = strlen(l->v[i]);
        if (i)
            *p++ = '\n';
        memcpy(p, l->v[i], el);
        p += el;
        free(l->v[i]);
    }
    *p = 0;
    if (k) {
        memmove(l->v, l->v + k, (l->n - k) * sizeof(*l->v));
        l->n -= k;
    }
    r->type = REDISC_REPLY_STRING;
    r->str = out;
    r->len = (size_t)(p - out);
}

/* The reply of a consistent Redis; updates the model. */
static void model_reply(int kind, int argc, const char *const *argv, const size_t *lens,
                        redisc_reply_t *r)
{
    if (kind == CMD_INDEX || kind == CMD_SWEEP) {
        model_index(kind, argc, argv, lens, r);
        return;
    }
    int ki = kind == CMD_EVAL || kind == CMD_DMARK ? 3 : 1;
    void **v = smap_put(&F.model, argv[ki], lens[ki]);
    if (kind == CMD_ASK) {
        if (*v)
            set_str(r, REDISC_REPLY_STRING, xstrdup(*v, strlen(*v)));
        else
            *v = xstrdup(argv[2], lens[2]);
    } else if (kind == CMD_DMARK && *v && strcmp(*v, "x") == 0) {
        r->type = REDISC_REPLY_INTEGER; /* stays dead */
    } else if (kind == CMD_MARK || kind == CMD_XMARK || kind == CMD_DMARK) {
        free(*v);
        *v = xstrdup(kind == CMD_XMARK ? "x" : "d", 1);
        set_str(r, REDISC_REPLY_STATUS, xstrdup("OK", 2));
    } else if (*v && strlen(*v) == lens[4] && memcmp(*v, argv[4], lens[4]) == 0) {
        free(*v);
        *v = xstrdup(argv[5], lens[5]);
        set_str(r, REDISC_REPLY_STATUS, xstrdup("OK", 2));
    } else {
        r->type = REDISC_REPLY_INTEGER;
    }
}

static void make_reply(int rk, const char *const *argv, const size_t *lens, int argc, uint64_t *s,
                       redisc_reply_t *r)
{
    int kind = cmd_kind(argc, argv, lens);
    char buf[400];
    memset(r, 0, sizeof(*r));
    switch (rk) {
    case RK_MODEL:
        model_reply(kind, argc, argv, lens, r);
        return;
    case RK_NIL:
        return;
    case RK_DONE:
    case RK_DEAD: {
        int mark = kind == CMD_MARK || kind == CMD_XMARK || kind == CMD_DMARK;
        set_str(r, mark ? REDISC_REPLY_STATUS : REDISC_REPLY_STRING,
                xstrdup(mark            ? "OK"
                        : rk == RK_DONE ? "d"
                                        : "x",
                        mark ? 2 : 1));
        return;
    }
    case RK_SAME:
    case RK_OTHER:
    case RK_BADP:
        if (kind != CMD_ASK || lens[2] < 3 || lens[2] > 300) {
            set_str(r, REDISC_REPLY_STRING, xstrdup("p:", 2));
            return;
        }
        /* argv[2] is "p:<topic>:<partition>:<offset>:1" */
        memcpy(buf, argv[2], lens[2] - 2);
        buf[lens[2] - 2] = 0;
        if (rk == RK_SAME && rnd(s) % 8 == 0)
            strcat(buf, ":9223372036854775807"); /* a count no eosproxy wrote */
        else if (rk == RK_SAME)
            sprintf(buf + strlen(buf), ":%d", (int)(rnd(s) % 5) + 1);
        else if (rk == RK_OTHER)
            strcat(buf, rnd(s) & 1 ? "0:1" : ":7:1"); /* near miss, or one more field */
        else
            strcat(buf, rnd(s) & 1 ? ":x" : ":");
        set_str(r, REDISC_REPLY_STRING, xstrdup(buf, strlen(buf)));
        return;
    case RK_GARBAGE:
        set_str(r, REDISC_REPLY_STRING, xstrdup("zz", rnd(s) & 1 ? 2 : 0));
        return;
    case RK_ERROR:
        set_str(r, REDISC_REPLY_ERROR,
                xstrdup("OOM command not allowed when used memory > 'maxmemory'.", 55));
        return;
    case RK_INT:
        r->type = REDISC_REPLY_INTEGER;
        r->integer = (long long)(rnd(s) % 3);
        return;
    case RK_STATUS:
        set_str(r, REDISC_REPLY_STATUS, xstrdup("OK", 2));
        return;
    default:
        r->type = REDISC_REPLY_ARRAY;
        r->integer = 2;
        return;
    }
}

/* Answers the i-th unanswered batch in mode (see the header). */
static void answer_batch(size_t i, uint8_t mode, uint8_t seed)
{
    const redisc_batch_t *b = fake_redisc_unanswered_batch(i, NULL);
    check_batch(b);
    int m = mode % 10;
    if (m >= 8) {
        fake_redisc_answer(i, m == 8 ? REDISC_EDOWN : REDISC_ETIMEOUT, NULL, 0);
        return;
    }
    size_t n = redisc_batch_count(b);
    redisc_reply_t *r = calloc(n, sizeof(*r));
    CHECK(r);
    uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 8 | mode);
    for (size_t k = 0; k < n; k++) {
        const char *const *argv;
        const size_t *lens;
        int argc = fake_redisc_cmd(b, k, &argv, &lens);
        static const int mix[8] = {RK_MODEL, RK_NIL,     RK_DONE, RK_SAME,
                                   RK_OTHER, RK_GARBAGE, RK_BADP, RK_DEAD};
        int rk = m == 5   ? mix[rnd(&s) % 8]    /* usable answers, "x" and malformed p: */
                 : m == 6 ? (int)(rnd(&s) % 12) /* anything */
                 : m == 7 ? RK_ERROR
                          : m;
        make_reply(rk, argv, lens, argc, &s, &r[k]);
    }
    fake_redisc_answer(i, REDISC_OK, r, n);
    for (size_t k = 0; k < n; k++)
        free(r[k].str);
    free(r);
}

/* ---------------------------------------------------------------- dead-letter writer */

/* The entry of r holding offset off, or -1. */
static int ent_of(const struct resp *r, int64_t off)
{
    for (int e = 0; e < r->nents; e++) {
        if (off >= r->ents[e].lo && off < r->ents[e].hi)
            return e;
    }
    return -1;
}

static int bytes_is(kbytes_t b, const uint8_t *p, size_t n)
{
    if (b.len < 0)
        return p == NULL;
    return p && (size_t)b.len == n && memcmp(b.ptr, p, n) == 0;
}

/*
 * The dead-letter copy w of the record at offset off of r's partition e
 * is that record (key, value, headers, the CreateTime timestamp of
 * origin o); its key (out) and whether it is a position key.
 */
static size_t check_copy(const struct resp *r, int e, int64_t off, const dlqw_record_t *w,
                         const kdlt_origin_t *o, char *out)
{
    kfetch_resp_t resp;
    CHECK(kfetch_resp_parse(r->ver, r->frame, r->len, &resp, NULL) == 0);
    const kfetch_partition_t *p = NULL;
    for (int32_t i = 0, k = 0; i < resp.ntopics && !p; i++) {
        if (e - k < resp.topics[i].npartitions)
            p = &resp.topics[i].partitions[e - k];
        k += resp.topics[i].npartitions;
    }
    CHECK(p && p->index == r->ents[e].p);
    struct bview *bv;
    size_t tail, nb = split_batches(p->records, &bv, &tail), kl = 0;
    int found = 0;
    for (size_t k = 0; k < nb && !found; k++) {
        krecords_batch_t b;
        if (!scanned(&bv[k], p, &b))
            continue;
        for (int32_t i = 0; i < b.nrecords && !found; i++) {
            const krec_t *x = &b.records[i];
            if (b.hdr.base_offset + x->offset_delta != off)
                continue;
            found = 1;
            CHECK(bytes_is(x->key, w->key, w->key_len) &&
                  bytes_is(x->value, w->value, w->value_len));
            CHECK(x->nheaders == (int32_t)w->nheaders);
            for (int32_t h = 0; h < x->nheaders; h++) {
                const dlqw_header_t *y = &w->headers[h];
                CHECK(x->headers[h].key.len == (int32_t)y->name_len &&
                      memcmp(x->headers[h].key.ptr, y->name, y->name_len) == 0 &&
                      bytes_is(x->headers[h].value, y->value, y->len));
            }
            CHECK(o->timestamp_type == 0 &&
                  o->timestamp == b.hdr.base_timestamp + x->timestamp_delta &&
                  w->timestamp == o->timestamp);
            int pos;
            kl = record_key(policy_lookup(F.cfg->policy, topic_names[r->ents[e].t],
                                          strlen(topic_names[r->ents[e].t])),
                            r->ents[e].t, p->index, off, x, out, &pos);
        }
        krecords_batch_free(&b);
    }
    CHECK(found && kl > 0);
    free(bv);
    kfetch_resp_free(&resp);
    return kl;
}

/* dedup's dlq_send hook: dlqw_send's contract (an id, then the callback
 * once, from the loop, unless cancelled; 0: refused). */
static uint64_t on_dlq_send(void *arg, const dlqw_record_t *w,
                            void (*cb)(void *cbarg, uint64_t id, int err, const char *errstr,
                                       int64_t offset),
                            void *cbarg)
{
    (void)arg;
    CHECK(!F.in_take && w && cb && w->dlt && w->partition == -1);
    F.dead_seen = 1; /* decided: the counts of other due heads may restart */
    kdlt_origin_t o;
    memset(&o, 0, sizeof(o));
    o.offset = -1;
    int fqcn = 0;
    for (size_t i = 0; i < w->dlt->n; i++) {
        const kdlt_header_t *h = &w->dlt->h[i];
        CHECK(kdlt_header_parse(h->name, strlen(h->name), h->value, h->len, &o) == 1);
        fqcn += strcmp(h->name, KDLT_EXCEPTION_FQCN) == 0 && h->len == strlen(KDLT_FQCN_VALUE) &&
                memcmp(h->value, KDLT_FQCN_VALUE, h->len) == 0;
    }
    CHECK(fqcn == 1 && (!o.group || (o.group_len == 1 && o.group[0] == 'g'))); /* commits say "g" */
    struct resp *r = find_resp_by_offset(o.offset);
    CHECK(r); /* a held response's record */
    int e = ent_of(r, o.offset);
    CHECK(e >= 0);
    struct ent *en = &r->ents[e];
    CHECK(o.topic && o.topic_len == strlen(topic_names[en->t]) &&
          memcmp(o.topic, topic_names[en->t], o.topic_len) == 0 && o.partition == en->p);
    CHECK(dlq_names[en->t] && strcmp(w->topic, dlq_names[en->t]) == 0);
    CHECK(en->cand < 0); /* one write per partition per response */
    en->cand = o.offset;
    char key[512];
    size_t kl = check_copy(r, e, o.offset, w, &o, key);
    CHECK(!dw_find(r->token, key, kl));
    void **v = smap_get(&r->cls, key, kl);
    const struct kcls *c = v ? *v : NULL;
    CHECK(c && c->c == C_AGAIN && c->count >= MAX_DELIVERIES);
    char reason[96];
    int rl = snprintf(reason, sizeof(reason), "delivered %ld times without a commit past it",
                      c->count < LONG_MAX ? c->count : LONG_MAX - 1);
    CHECK(o.reason && o.reason_len == (size_t)rl && memcmp(o.reason, reason, (size_t)rl) == 0);
    if (W.n == W.cap) {
        W.cap = W.cap ? W.cap * 2 : 16;
        W.v = realloc(W.v, W.cap * sizeof(*W.v));
        CHECK(W.v);
    }
    struct dw *d = &W.v[W.n++];
    memset(d, 0, sizeof(*d));
    d->token = r->token;
    d->cb = cb;
    d->cbarg = cbarg;
    d->key = xstrdup(key, kl);
    d->kl = kl;
    d->off = o.offset;
    d->sent_ms = F.clock;
    if (W.refuse > 0) {
        W.refuse--;
        d->state = DW_REFUSED;
        return 0;
    }
    d->id = ++W.next_id;
    d->state = DW_OUT;
    return d->id;
}

/* dedup's dlq_cancel hook: only a write still outstanding for the
 * engine; its callback will not run. */
static void on_dlq_cancel(void *arg, uint64_t id)
{
    (void)arg;
    size_t i = 0;
    while (i < W.n && W.v[i].id != id)
        i++;
    CHECK(id && i < W.n);
    CHECK(W.v[i].state == DW_OUT || W.v[i].state == DW_ANSWERED);
    W.v[i].state = DW_CANCELLED;
    W.v[i].cancel_ms = F.clock;
}

/* Runs the callbacks of the writes answered (and not cancelled since). */
static void dw_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (size_t i = 0; i < W.n; i++) {
        if (W.v[i].state != DW_ANSWERED)
            continue;
        struct dw *d = &W.v[i];
        d->state = DW_DONE;
        if (!d->err)
            *smap_put(&F.acked, d->key, d->kl) = (void *)1;
        if (!d->err)
            *smap_put(&F.dead, d->key, d->kl) = (void *)1;
        d->cb(d->cbarg, d->id, d->err, d->err ? "Local: Message timed out" : NULL,
              d->err ? -1 : (int64_t)d->id);
    }
}

/* Answers outstanding write i (all when i is SIZE_MAX): acked, or failed. */
static void dw_answer(size_t i, int fail)
{
    for (size_t k = 0, n = 0; k < W.n; k++) {
        if (W.v[k].state != DW_OUT || (i != SIZE_MAX && n++ != i))
            continue;
        W.v[k].state = DW_ANSWERED;
        W.v[k].err = fail ? -192 /* RD_KAFKA_RESP_ERR__MSG_TIMED_OUT */ : 0;
    }
    event_active(W.ev, EV_TIMEOUT, 0);
}

static size_t dw_outstanding(void)
{
    size_t n = 0;
    for (size_t k = 0; k < W.n; k++)
        n += W.v[k].state == DW_OUT;
    return n;
}

/* After a tick: no write waits DD_DLQ_WAIT_MS or more (given up). */
static void check_given_up(void)
{
    for (size_t k = 0; k < W.n; k++) {
        const struct dw *d = &W.v[k];
        if (d->state == DW_OUT || d->state == DW_ANSWERED)
            CHECK(F.clock - d->sent_ms < DLQ_WAIT_MS);
    }
}

static void op_dlq(struct in *in)
{
    uint8_t b0 = u8(in), b1 = u8(in);
    size_t n = dw_outstanding();
    switch (b0 % 5) {
    case 0:
    case 1:
        if (n)
            dw_answer(b1 % n, b0 % 5);
        break;
    case 2:
    case 3:
        dw_answer(SIZE_MAX, b0 % 5 == 3);
        break;
    default:
        W.refuse = 1 + b1 % 2;
    }
}

/* ---------------------------------------------------------------- records */

/* One batch to generate. */
struct bspec {
    int codec, kind;
    int32_t n;
    int idmode, pool, gaps;
    size_t vsize;
    int vrep;
};

enum bkind { BK_PLAIN, BK_CONTROL, BK_TXN, BK_LEGACY, BK_BADCRC };

static void put_record(kwriter_t *w, int32_t delta, const void *key, int32_t kl, const void *val,
                       int32_t vl, const char *hname, const void *hval, int32_t hl)
{
    kwriter_t *t = &F.tmp;
    kw_reset(t);
    kw_i8(t, 0);
    kw_varlong(t, delta);
    kw_varint(t, delta);
    kw_varint(t, kl);
    if (kl > 0)
        kw_raw(t, key, (size_t)kl);
    kw_varint(t, vl);
    if (vl > 0)
        kw_raw(t, val, (size_t)vl);
    if (hname) {
        kw_varint(t, 1);
        kw_varint(t, (int32_t)strlen(hname));
        kw_raw(t, hname, strlen(hname));
        kw_varint(t, hl);
        if (hl > 0)
            kw_raw(t, hval, (size_t)hl);
    } else {
        kw_varint(t, 0);
    }
    CHECK(!t->err);
    kw_varint(w, (int32_t)t->len);
    kw_raw(w, t->buf, t->len);
}

/* The eventId of record i (into buf), or -1 for none. */
static int make_id(const struct bspec *s, int32_t i, char *buf, unsigned salt)
{
    switch (s->idmode) {
    case 0:
        return sprintf(buf, "u%llu", (unsigned long long)++F.ids);
    case 1:
        return sprintf(buf, "p%d", (int)(i % s->pool));
    case 2:
        return -1;
    case 3:
        return i % 3 == 0 ? -1 : sprintf(buf, "u%llu", (unsigned long long)++F.ids);
    case 4:
        memset(buf, 'L', 190);
        return 190 + sprintf(buf + 190, "%d", (int)(i % s->pool));
    case 5:
        return sprintf(buf, "\x01id%d", (int)(i % s->pool));
    case 6:
        return sprintf(buf, "sha256:%d", (int)(i % s->pool));
    case 7:
        return sprintf(buf, "g%u", (unsigned)((unsigned)i + salt) % 16);
    default:
        return sprintf(buf, "%d", (int)(i % s->pool) + 1);
    }
}

/* The value of record i: vsize bytes, repeated 'v' (or numbered first). */
static int32_t make_value(const struct bspec *s, int32_t i, char *buf)
{
    if (s->vsize == 0)
        return -1;
    memset(buf, 'v', s->vsize);
    if (!s->vrep) {
        char num[16];
        int k = sprintf(num, "%d-", (int)i * 7919);
        memcpy(buf, num, (size_t)k < s->vsize ? (size_t)k : s->vsize);
    }
    return (int32_t)s->vsize;
}

/* The records payload of a plain or transactional batch for topic t. */
static void make_payload(kwriter_t *w, const struct bspec *s, int t, unsigned salt)
{
    char id[256], *val = malloc(s->vsize + 300);
    CHECK(val);
    for (int32_t i = 0; i < s->n; i++) {
        int32_t delta = s->gaps ? 2 * i : i;
        int il = make_id(s, i, id, salt);
        int32_t vl = make_value(s, i, val);
        if (t == 3) { /* json:id */
            char *j = malloc((size_t)(vl > 0 ? vl : 0) + 1200);
            CHECK(j);
            int n = 0;
            if (s->idmode == 2 && (i & 1)) {
                n = sprintf(j, "{\"id\":\"x\",bad");
            } else {
                n = sprintf(j, "{");
                if (il >= 0 && s->idmode == 8) {
                    n += sprintf(j + n, "\"id\":%.*s,", il, id);
                } else if (il >= 0) {
                    n += sprintf(j + n, "\"id\":\"");
                    for (int k = 0; k < il; k++) {
                        unsigned char c = (unsigned char)id[k];
                        n += c < 0x20 || c == '"' || c == '\\' ? sprintf(j + n, "\\u%04x", c)
                                                               : sprintf(j + n, "%c", c);
                    }
                    n += sprintf(j + n, "\",");
                }
                n += sprintf(j + n, "\"v\":\"");
                if (vl > 0) {
                    memcpy(j + n, val, (size_t)vl);
                    n += vl;
                }
                n += sprintf(j + n, "\"}");
            }
            put_record(w, delta, NULL, -1, j, n, NULL, NULL, 0);
            free(j);
        } else if (t == 2 || t == 4) { /* key */
            put_record(w, delta, id, il, val, vl, NULL, NULL, 0);
        } else { /* header:eid (and the plain topic) */
            put_record(w, delta, NULL, -1, val, vl, il >= 0 ? "eid" : (i & 1 ? "other" : NULL), id,
                       il);
        }
    }
    free(val);
}

/* Appends one batch of spec s for topic t, partition p at F.next_off. */
static void make_batch(kwriter_t *w, const struct bspec *s, int t, int32_t p, unsigned salt)
{
    int64_t base = F.next_off;
    if (s->kind == BK_LEGACY) { /* a message format 1 message */
        kw_i64(w, base);
        kw_i32(w, 25);
        kw_i32(w, 0x12345678);
        kw_i8(w, 1);
        kw_i8(w, 0);
        kw_i64(w, 0);
        kw_i32(w, -1);
        kw_i32(w, 3);
        kw_raw(w, "abc", 3);
        F.next_off++;
        return;
    }
    kwriter_t pl;
    kw_init(&pl, 256);
    krecord_batch_t h = {0};
    h.base_offset = base;
    h.partition_leader_epoch = 1;
    h.base_timestamp = h.max_timestamp = 1700000000000;
    h.producer_id = -1;
    h.producer_epoch = -1;
    h.base_sequence = -1;
    int16_t attrs = (int16_t)s->codec;
    int32_t n = s->n;
    if (s->kind == BK_CONTROL) {
        static const uint8_t ckey[4] = {0, 0, 0, 1}, cval[6] = {0};
        put_record(&pl, 0, ckey, 4, cval, 6, NULL, NULL, 0);
        n = 1;
        attrs |= KRECORD_ATTR_CONTROL | KRECORD_ATTR_TRANSACTIONAL;
    } else {
        make_payload(&pl, s, t, salt);
        if (s->kind == BK_TXN)
            attrs |= KRECORD_ATTR_TRANSACTIONAL;
    }
    if (s->kind == BK_CONTROL || s->kind == BK_TXN) {
        h.producer_id = 7000 + p;
        h.producer_epoch = 0;
        h.base_sequence = 0;
    }
    h.last_offset_delta = n == 0 ? 0 : (s->gaps ? 2 * (n - 1) : n - 1);
    CHECK(!pl.err);
    size_t start = w->len;
    CHECK(krecords_write_batch(w, &h, attrs, n, pl.buf, pl.len) == 0);
    if (s->kind == BK_BADCRC)
        w->buf[start + KREC_OFF_CRC] ^= 0x5a;
    kw_free(&pl);
    F.next_off += h.last_offset_delta + 1;
    F.records_made += (size_t)n;
}

/* Reads a batch spec from four parameter bytes. */
static void read_spec(struct in *in, struct bspec *s)
{
    static const int32_t big[4] = {1000, 20000, 100000, 250000};
    static const size_t vsizes[4] = {0, 1, 16, 1000};
    uint8_t c0 = u8(in), c1 = u8(in), c2 = u8(in), c3 = u8(in);
    memset(s, 0, sizeof(*s));
    s->codec = c0 % 5;
    int k = (c0 >> 3) & 15;
    s->kind = k < 10    ? BK_PLAIN
              : k < 12  ? BK_TXN
              : k == 12 ? BK_CONTROL
              : k == 13 ? BK_LEGACY
                        : BK_BADCRC;
    s->n = c1 >= 0xb0 && c1 <= 0xb3 ? big[c1 - 0xb0] : c1 % 16; /* not 0xff: mutations love it */
    s->gaps = (c0 >> 7) & 1;
    s->idmode = c2 % 9;
    s->pool = 1 + (c2 >> 4) % 8;
    s->vsize = vsizes[c3 % 4];
    s->vrep = (c3 >> 2) & 1;
    /* Keep inputs affordable: 4 MiB inflated (80 MiB, past the codec's
     * 64 MiB bound, when c3 says so), 1 MiB uncompressed, 300,000
     * records per input. */
    size_t per = s->vsize + 40;
    size_t cap = !s->codec             ? MAX_PLAIN_PER_BATCH
                 : (c3 & 0xf0) == 0xa0 ? MAX_INFLATED_PER_HUGE_BATCH
                                       : MAX_INFLATED_PER_BATCH;
    if ((size_t)s->n * per > cap)
        s->n = (int32_t)(cap / per);
    if (F.records_made + (size_t)s->n > MAX_RECORDS_PER_INPUT)
        s->n = 0;
}

/* Builds one partition's records: batches, maybe a partial one. */
static void make_partition(struct in *in, kfetch_partition_t *p, int t, uint8_t pb, kwriter_t *w,
                           kfetch_aborted_t *ab)
{
    int nb = u8(in) % 5;
    int aborted = (pb >> 4) & 1;
    int64_t first_txn = -1;
    unsigned salt = u8(in);
    for (int b = 0; b < nb; b++) {
        struct bspec s;
        read_spec(in, &s);
        if (s.kind == BK_TXN && first_txn < 0)
            first_txn = F.next_off;
        make_batch(w, &s, t, p->index, salt);
    }
    if ((pb >> 5) & 1) { /* a partial batch at the end */
        kwriter_t x;
        kw_init(&x, 256);
        struct bspec s = {
            .codec = 0, .kind = BK_PLAIN, .n = 3, .idmode = 0, .pool = 1, .vsize = 16};
        make_batch(&x, &s, t, p->index, salt);
        size_t keep = 1 + u8(in) % (x.len - 1);
        kw_raw(w, x.buf, keep);
        kw_free(&x);
    }
    p->naborted = -1;
    if (aborted && first_txn >= 0) {
        ab->producer_id = 7000 + p->index;
        ab->first_offset = first_txn;
        p->naborted = 1;
        p->aborted = ab;
    } else if (pb & 0x80) {
        p->naborted = 0;
    }
}

/* ---------------------------------------------------------------- ops */

/*
 * Hands frame (a Fetch response of version ver, called as call_ver) to the
 * engine and checks what it says (see the header); a taken response is
 * held in F.live until answered. Its records are at offsets [lo,
 * F.next_off), in partitions ents.
 */
static void take(int16_t ver, int16_t call_ver, const uint8_t *frame, size_t len,
                 uint64_t client_id, int64_t lo, const struct ent *ents, int nents, int has_dedup,
                 int truncated)
{
    uint64_t token = ++F.next_token;
    uint64_t cuts = g_metrics.dedup_responses_cut;
    F.in_take = 1;
    int rc = dedup_fetch_response(F.d, call_ver, frame, len, client_id, token);
    F.in_take = 0;
    if (call_ver != ver || (!has_dedup && !truncated))
        CHECK(rc == 0);
    else if (truncated)
        CHECK(rc == -1);
    else
        CHECK(rc == 1 || (rc == 0 && F.pass));
    if (rc != 1)
        return;
    struct resp *r = calloc(1, sizeof(*r));
    CHECK(r);
    r->client_id = client_id;
    r->token = token;
    r->ver = ver;
    r->frame = malloc(len);
    CHECK(r->frame);
    memcpy(r->frame, frame, len);
    r->len = len;
    r->off_lo = lo;
    r->off_hi = F.next_off;
    r->cuts_at_take = cuts;
    memcpy(r->ents, ents, (size_t)nents * sizeof(*ents));
    r->nents = nents;
    for (int e = 0; e < nents; e++)
        r->ents[e].cand = -1;
    if (F.nlive == F.cap_live) {
        F.cap_live = F.cap_live ? F.cap_live * 2 : 8;
        F.live = realloc(F.live, F.cap_live * sizeof(*F.live));
        CHECK(F.live);
    }
    F.live[F.nlive++] = r;
}

/* One of the last answered responses again, at the same offsets, unless
 * a held response covers them (offsets name one held response). */
static void op_refetch(struct in *in)
{
    uint8_t b = u8(in);
    if (F.npast == 0)
        return;
    const struct past *p = &F.past[b % F.npast];
    for (size_t i = 0; i < F.nlive; i++) {
        if (F.live[i]->off_lo < p->off_hi && p->off_lo < F.live[i]->off_hi)
            return;
    }
    int64_t next = F.next_off;
    F.next_off = p->off_hi; /* take() reads the range from it */
    take(p->ver, p->ver, p->frame, p->len, p->client_id, p->off_lo, p->ents, p->nents, 1, 0);
    F.next_off = next;
}

static void op_fetch(struct in *in)
{
    uint8_t b0 = u8(in), b1 = u8(in);
    int16_t ver = (int16_t)(KFETCH_MIN_VERSION + b0 % 9);
    uint64_t client_id = 1 + (b0 >> 4) % 3;
    int ntopics = 1 + b1 % 3;
    if (!F.fetched && ((b1 >> 2) & 1))
        F.next_off = 0; /* the first response may start at offset 0 */
    F.fetched = 1;
    int64_t lo = F.next_off;
    kfetch_topic_t topics[3];
    kfetch_partition_t parts[3][3];
    kfetch_aborted_t aborted[3][3];
    kwriter_t recs[3][3];
    memset(topics, 0, sizeof(topics));
    memset(parts, 0, sizeof(parts));
    memset(aborted, 0, sizeof(aborted));
    struct ent ents[MAX_ENTS];
    int nents = 0;
    int has_dedup = 0;
    for (int i = 0; i < ntopics; i++) {
        uint8_t tb = u8(in);
        int t = tb % NTOPICS;
        topics[i].name = (kstr_t){topic_names[t], (int32_t)strlen(topic_names[t])};
        topics[i].npartitions = 1 + (tb >> 3) % 3;
        topics[i].partitions = parts[i];
        has_dedup |= dedup_rule(topics[i].name) != NULL;
        for (int k = 0; k < topics[i].npartitions; k++) {
            uint8_t pb = u8(in);
            kfetch_partition_t *p = &parts[i][k];
            p->index = pb % NPARTS;
            p->error_code = ((pb >> 2) & 3) == 3 ? 1 : 0;
            p->high_watermark = 1 << 30;
            p->last_stable_offset = ver >= 4 ? 1 << 30 : -1;
            p->log_start_offset = ver >= 5 ? 0 : -1;
            p->preferred_read_replica = ver >= 11 ? -1 : -1;
            kw_init(&recs[i][k], 256);
            ents[nents] = (struct ent){t, p->index, F.next_off, 0, -1};
            make_partition(in, p, t, pb, &recs[i][k], &aborted[i][k]);
            ents[nents++].hi = F.next_off;
            CHECK(!recs[i][k].err);
            p->records = (kbytes_t){recs[i][k].buf, (int32_t)recs[i][k].len};
            if (recs[i][k].len == 0 && ((pb >> 6) & 1))
                p->records = (kbytes_t){NULL, -1};
        }
    }
    kfetch_resp_t resp = {0};
    resp.correlation_id = F.next_corr++;
    resp.throttle_time_ms = (b1 >> 3) & 1;
    resp.session_id = ver >= 7 ? 42 : 0;
    resp.ntopics = ntopics;
    resp.topics = topics;
    kwriter_t w;
    kw_init(&w, 1024);
    CHECK(kfetch_resp_write(&w, ver, &resp) == 0 && !w.err);
    for (int i = 0; i < ntopics; i++)
        for (int k = 0; k < topics[i].npartitions; k++)
            kw_free(&recs[i][k]);
    const uint8_t *frame = w.buf + 4;
    size_t len = w.len - 4;
    int mangle = (b1 >> 4) & 15;
    int truncated = mangle == 15 && len > 1;
    int16_t call_ver = mangle == 14 ? (b1 & 0x40 ? 13 : 3) : ver;
    if (truncated)
        len -= 1 + u8(in) % (len - 1 < 255 ? len - 1 : 255);
    take(ver, call_ver, frame, len, client_id, lo, ents, nents, has_dedup, truncated);
    kw_free(&w);
}

/* Request header, then the body by the caller, for api/ver. */
static void req_header(kwriter_t *w, int16_t api, int16_t ver, int32_t corr)
{
    kproto_write_request_header(w, api, ver, corr, (kstr_t){"fz", 2});
}

static void resp_header(kwriter_t *w, int16_t api, int16_t ver, int32_t corr)
{
    kw_i32(w, corr);
    if (kproto_response_header_version(api, ver) >= 1)
        kw_tags_empty(w);
}

static void tags(kwriter_t *w, int flex)
{
    if (flex)
        kw_tags_empty(w);
}

/* A partition committed without error in the response to (client, corr,
 * api): every request of that name may be the one the engine matched, so
 * all their offsets for it count (a superset, for the done-mark check). */
static void note_committed(uint64_t client_id, int32_t corr, int16_t api, const struct pos *q)
{
    for (size_t r = 0; r < F.ncreqs; r++) {
        const struct creq *c = &F.creqs[r];
        if (c->client_id != client_id || c->corr != corr || c->api != api)
            continue;
        for (int i = 0; i < c->n; i++) {
            const struct pos *x = &c->e[i];
            if (x->t != q->t || x->p != q->p)
                continue;
            if (api == KAPI_OffsetCommit) {
                if (x->off > F.committed[x->t][x->p])
                    F.committed[x->t][x->p] = x->off;
                continue;
            }
            if (F.ntxn[c->tx] == F.cap_txn[c->tx]) {
                F.cap_txn[c->tx] = F.cap_txn[c->tx] ? F.cap_txn[c->tx] * 2 : 8;
                F.txn[c->tx] = realloc(F.txn[c->tx], F.cap_txn[c->tx] * sizeof(struct pos));
                CHECK(F.txn[c->tx]);
            }
            F.txn[c->tx][F.ntxn[c->tx]++] = *x;
        }
    }
}

/* An OffsetCommit / TxnOffsetCommit request and maybe its response. */
static void op_commit(struct in *in)
{
    uint8_t b0 = u8(in), b1 = u8(in), b2 = u8(in), b3 = u8(in);
    int txn = b0 & 1;
    int16_t api = txn ? KAPI_TxnOffsetCommit : KAPI_OffsetCommit;
    int16_t ver = (int16_t)((b0 >> 1) % (txn ? 4 : 9));
    int flex = txn ? ver >= 3 : ver >= 8;
    int tx = (b0 >> 7) & 1;
    const char *txn_id = tx ? "t2" : "t1";
    uint64_t client_id = 1 + b1 % 3;
    int32_t corr = (b1 & 0x80) && F.next_corr > 0 ? F.next_corr - 1 : F.next_corr++;
    int n = 1 + b2 % 3;
    struct pos e[3];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < n; i++) {
        uint8_t b = u8(in);
        e[i].t = b % NTOPICS;
        e[i].p = (b >> 3) % NPARTS;
        switch ((b >> 5) & 7) {
        case 4:
            e[i].off = F.next_off - 1 - u8(in) % 8;
            break;
        case 5:
            e[i].off = 0;
            break;
        case 6:
            e[i].off = -1;
            break;
        case 7:
            e[i].off = F.next_off / 2;
            break;
        default:
            e[i].off = F.next_off; /* past everything */
        }
    }
    kwriter_t w;
    kw_init(&w, 256);
    req_header(&w, api, ver, corr);
    if (txn) {
        kw_str(&w, flex, txn_id, 2);
        kw_str(&w, flex, "g", 1);
        kw_i64(&w, 7000);
        kw_i16(&w, 0);
        if (ver >= 3) {
            kw_i32(&w, 1);
            kw_str(&w, flex, "m", 1);
            kw_str(&w, flex, NULL, -1);
        }
    } else {
        kw_str(&w, flex, "g", 1);
        if (ver >= 1) {
            kw_i32(&w, 1);
            kw_str(&w, flex, "m", 1);
        }
        if (ver >= 7)
            kw_str(&w, flex, NULL, -1);
        if (ver >= 2 && ver <= 4)
            kw_i64(&w, -1);
    }
    kw_array(&w, flex, n); /* one topic per entry, topics may repeat */
    for (int i = 0; i < n; i++) {
        kw_str(&w, flex, topic_names[e[i].t], (int32_t)strlen(topic_names[e[i].t]));
        kw_array(&w, flex, 1);
        kw_i32(&w, e[i].p);
        kw_i64(&w, e[i].off);
        if (ver >= (txn ? 2 : 6))
            kw_i32(&w, 0);
        if (!txn && ver == 1)
            kw_i64(&w, 0);
        kw_str(&w, flex, "", 0);
        tags(&w, flex);
        tags(&w, flex);
    }
    tags(&w, flex);
    CHECK(!w.err);
    dedup_commit_request(F.d, api, ver, w.buf, w.len, client_id, corr);
    if (F.ncreqs == F.cap_creqs) {
        F.cap_creqs = F.cap_creqs ? F.cap_creqs * 2 : 8;
        F.creqs = realloc(F.creqs, F.cap_creqs * sizeof(*F.creqs));
        CHECK(F.creqs);
    }
    struct creq *cr = &F.creqs[F.ncreqs++];
    *cr = (struct creq){client_id, corr, api, tx, n, {e[0], e[1], e[2]}};
    if (b3 & 1) {
        kw_free(&w);
        return; /* the response never comes */
    }
    int other = (b3 >> 2) & 1, malformed = (b3 >> 1) & 1, errs = (b3 >> 3) & 3;
    kw_reset(&w);
    resp_header(&w, api, ver, other ? corr + 1000 : corr);
    if (txn || ver >= 3)
        kw_i32(&w, 0);
    kw_array(&w, flex, n);
    for (int i = 0; i < n; i++) {
        int16_t ec = errs == 1 || (errs == 2 && (i & 1)) ? 27 : 0;
        kw_str(&w, flex, topic_names[e[i].t], (int32_t)strlen(topic_names[e[i].t]));
        kw_array(&w, flex, 1);
        kw_i32(&w, e[i].p);
        kw_i16(&w, ec);
        tags(&w, flex);
        tags(&w, flex);
        if (!ec && !other && !malformed)
            note_committed(client_id, corr, api, &e[i]);
    }
    tags(&w, flex);
    CHECK(!w.err);
    size_t len = malformed ? w.len - 1 - u8(in) % 4 : w.len;
    dedup_commit_response(F.d, api, ver, w.buf, len, client_id, other ? corr + 1000 : corr);
    kw_free(&w);
}

static void op_endtxn(struct in *in)
{
    uint8_t b0 = u8(in), b1 = u8(in);
    int16_t ver = (int16_t)(b0 % 6);
    int flex = ver >= 3, tx = (b0 >> 3) & 1, committed = (b0 >> 4) & 1;
    uint64_t client_id = 1 + (b0 >> 5) % 3;
    int32_t corr = F.next_corr++;
    kwriter_t w;
    kw_init(&w, 128);
    req_header(&w, KAPI_EndTxn, ver, corr);
    kw_str(&w, flex, tx ? "t2" : "t1", 2);
    kw_i64(&w, 7000);
    kw_i16(&w, 0);
    kw_i8(&w, (int8_t)committed);
    tags(&w, flex);
    dedup_endtxn_request(F.d, ver, w.buf, w.len, client_id, corr);
    if (b1 & 1) {
        kw_free(&w);
        return;
    }
    int16_t ec = (b1 >> 1) & 1 ? 47 : 0;
    int malformed = (b1 >> 2) & 1;
    kw_reset(&w);
    resp_header(&w, KAPI_EndTxn, ver, corr);
    kw_i32(&w, 0);
    kw_i16(&w, ec);
    tags(&w, flex);
    if (!malformed && ec == 0 && committed) {
        for (size_t i = 0; i < F.ntxn[tx]; i++) {
            const struct pos *q = &F.txn[tx][i];
            if (q->off > F.committed[q->t][q->p])
                F.committed[q->t][q->p] = q->off;
        }
    }
    dedup_endtxn_response(F.d, ver, w.buf, malformed ? 3 : w.len, client_id, corr);
    kw_free(&w);
}

static void op_answer(struct in *in, int all)
{
    uint8_t b0 = u8(in), mode = u8(in), seed = u8(in);
    size_t n = fake_redisc_unanswered();
    if (n == 0)
        return;
    if (!all) {
        answer_batch(b0 % n, mode, seed);
        return;
    }
    while (fake_redisc_unanswered())
        answer_batch(0, mode, seed);
}

/* Redis up, every batch answered from the model, every dead-letter write
 * acked, until every taken response is answered. */
static void drain(void)
{
    fake_redisc_refuse_sends(0);
    fake_redisc_set_up(1);
    W.refuse = 0;
    for (int round = 0; round < 64; round++) {
        turns(2);
        while (fake_redisc_unanswered())
            answer_batch(0, RK_MODEL, 0);
        dw_answer(SIZE_MAX, 0);
        turns(2);
        if (F.nlive == 0 && fake_redisc_unanswered() == 0 && round >= 2)
            break;
        F.clock += 100;
        dedup_test_tick(F.d);
        check_given_up();
    }
    CHECK(F.nlive == 0);
}

/* ---------------------------------------------------------------- setup */

static config_t *load_config(uint8_t c0)
{
    static const char *const bt[4] = {"1ms", "150ms", "10s", "10s"};
    static const char *const ce[4] = {"0", "3", "1000", "100000"};
    char y[2048];
    snprintf(y, sizeof(y),
             "service: svc\n"
             "upstream:\n  mock_brokers: 1\n"
             "redis:\n"
             "  url: redis://127.0.0.1:6379/0\n"
             "  on_unavailable: %s\n"
             "  timeout: 1s\n"
             "  block_timeout: %s\n"
             "  pending_ttl: 5m\n"
             "  cache_entries: %s\n"
             "topics:\n"
             "  - match: \"q.*\"\n"
             "    delivery: at-least-once\n"
             "    dlq: {max_deliveries: %d}\n"
             "  - match: \"h.*\"\n"
             "    delivery: at-least-once\n"
             "    dedup: {event_id: \"header:eid\", ttl: 1h, scope: s1}\n"
             "  - match: \"x.*\"\n"
             "    delivery: at-least-once\n"
             "    dedup: {event_id: key, ttl: 1h, scope: s1}\n"
             "    dlq: {topic: dead.x, max_deliveries: %d}\n"
             "  - match: \"j.*\"\n"
             "    delivery: at-least-once\n"
             "    dedup: {event_id: \"json:id\", ttl: %s}\n"
             "  - match: \"k.*\"\n"
             "    delivery: at-least-once\n"
             "    dedup: {event_id: key, ttl: 1h, scope: s2}\n"
             "  - match: \"plain.*\"\n"
             "    delivery: at-least-once\n",
             c0 & 1 ? "pass" : "block", bt[(c0 >> 1) & 3], ce[(c0 >> 3) & 3], MAX_DELIVERIES,
             MAX_DELIVERIES, (c0 >> 6) & 1 ? "150ms" : "1h");
    char err[512];
    config_t *c = config_load_string("fuzz.yaml", y, strlen(y), err, sizeof(err));
    if (!c) {
        fprintf(stderr, "fuzz_dedup: config: %s\n", err);
        abort();
    }
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_ERROR, 0);
    F.base = event_base_new();
    CHECK(F.base);
    W.ev = event_new(F.base, -1, 0, dw_turn, NULL);
    CHECK(W.ev);
    fake_redisc_observer = on_delivered;
    return 0;
}

static void reset_state(void)
{
    for (size_t i = 0; i < F.nlive; i++)
        resp_free(F.live[i]);
    free(F.live);
    smap_free(&F.model, 1);
    for (size_t i = 0; i < F.lists.cap; i++)
        ilist_free(F.lists.e[i].v);
    smap_free(&F.lists, 0);
    smap_free(&F.asked, 0);
    memset(F.tag, 0, sizeof(F.tag));
    smap_free(&F.delivered, 1);
    free(F.txn[0]);
    free(F.txn[1]);
    free(F.creqs);
    smap_free(&F.acked, 0);
    smap_free(&F.dead, 0);
    for (size_t i = 0; i < F.npast; i++)
        free(F.past[i].frame);
    for (size_t i = 0; i < W.n; i++)
        free(W.v[i].key);
    W.n = 0;
    W.refuse = 0;
    kw_free(&F.tmp);
    config_free(F.cfg);
    struct event_base *base = F.base;
    memset(&F, 0, sizeof(F));
    F.base = base;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || data[0] != 'd' || data[1] != 'd')
        return 0;
    struct in in = {data + 2, size - 2, 0};
    uint8_t c0 = u8(&in), c1 = u8(&in);
    F.cfg = load_config(c0);
    F.pass = c0 & 1;
    F.next_off = 1000;
    F.next_corr = 1;
    kw_init(&F.tmp, 256);
    for (int t = 0; t < NTOPICS; t++)
        for (int p = 0; p < NPARTS; p++)
            F.committed[t][p] = INT64_MIN;
    F.px.cfg = F.cfg;
    F.px.base = F.base;
    int64_t held = g_metrics.dedup_held, inflight = g_metrics.dlq_inflight;
    F.d = dedup_new(&F.px);
    CHECK(F.d && fake_redisc());
    dedup_test_hooks_t hooks = {.answer = on_answer,
                                .dlq_send = on_dlq_send,
                                .dlq_cancel = on_dlq_cancel,
                                .now_ms = on_clock};
    F.max_records = DEDUP_JOB_MAX_RECORDS;
    if (c1) {
        static const size_t recs[4] = {1, 4, 30, 1000};
        static const size_t infl[4] = {64, 700, 5000, 1u << 20};
        static const size_t heldb[4] = {300, 3000, 100000, 64u << 20};
        hooks.job_max_records = F.max_records = recs[c1 & 3];
        hooks.job_max_inflated = infl[(c1 >> 2) & 3];
        hooks.max_held_bytes = heldb[(c1 >> 4) & 3];
    }
    dedup_set_test_hooks(F.d, &hooks);
    if ((c0 >> 5) & 1) {
        fake_redisc_set_up(1);
        turns(1);
    }
    int freed = 0;
    for (int ops = 0; in.off < in.n && ops < 200 && !freed; ops++) {
        switch (u8(&in) % OP_COUNT) {
        case OP_FETCH:
        case OP_FETCH2:
        case OP_FETCH3:
            op_fetch(&in);
            break;
        case OP_REFETCH:
            op_refetch(&in);
            break;
        case OP_DLQ:
        case OP_DLQ2:
            op_dlq(&in);
            break;
        case OP_ANSWER:
            op_answer(&in, 0);
            break;
        case OP_ANSWER_ALL:
            op_answer(&in, 1);
            break;
        case OP_STATE:
            fake_redisc_set_up(u8(&in) & 1);
            break;
        case OP_LOOP:
            turns(1 + u8(&in) % 4);
            break;
        case OP_TICK: {
            static const uint64_t steps[5] = {1, 50, 100, 1000, 20000};
            F.clock += steps[u8(&in) % 5];
            dedup_test_tick(F.d);
            check_given_up();
            break;
        }
        case OP_COMMIT:
            op_commit(&in);
            break;
        case OP_ENDTXN:
            op_endtxn(&in);
            break;
        case OP_GONE:
            dedup_client_gone(F.d, 1 + u8(&in) % 3);
            break;
        case OP_REFUSE:
            fake_redisc_refuse_sends(1 + u8(&in) % 2);
            break;
        case OP_FREE:
            freed = 1;
            break;
        }
    }
    if (!freed)
        drain();
    dedup_free(F.d);
    CHECK(fake_redisc() == NULL);
    CHECK(g_metrics.dedup_held == held);
    CHECK(g_metrics.dlq_inflight == inflight);
    for (size_t i = 0; i < W.n; i++) /* answered to the engine, refused, or cancelled */
        CHECK(W.v[i].state == DW_DONE || W.v[i].state == DW_REFUSED ||
              W.v[i].state == DW_CANCELLED);
    turns(1);
    reset_state();
    return 0;
}
