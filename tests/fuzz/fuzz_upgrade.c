/*
 * fuzz_upgrade.c - libFuzzer target for the idempotent-upgrade engine
 * (proxy/engines/upgrade.c, proxy/engines/seqstate.c), driven through its public entry
 * points: upgrade_new_opts, upgrade_submit (and upgrade_submit_take),
 * upgrade_busy, upgrade_free.
 *
 * The engine is linked with everything but proxy/engines/lane.c; fake_lane.c
 * stands in for the lanes, and this file plays the clients, the clock and
 * a Kafka cluster that keeps a log per partition and the producer state a
 * broker keeps (last sequence and last five batches per producer id, the
 * current epoch per id), so that the answers are ones a broker could give.
 * The engine's hooks (upgrade_opts) send completions and resumes here and
 * read the fake clock; the engine's 50 ms tick is taken off the real
 * clock and fired by the harness when it moves the fake one.
 *
 * Input: three header bytes, then operations until the input ends; then
 * a drain phase in which the cluster answers everything normally while
 * the clock moves 250 ms a turn. Missing bytes read as 0 (normal).
 *   header: [0] upstream Produce version 3 + b % 7 (clients use no more)
 *           and InitProducerId version (b >> 3) % 5; [1] bounds profile
 *           (b % 4: defaults, tiny, small, defaults with short timers);
 *           [2] clock start, and Metadata version b % 13 (0: none the
 *           engine can use).
 *   op % 16:
 *     0-3  submit a ProduceRequest: client, version 2..9 (2: refused
 *          with 43), acks -1/0/1, timeout, the listener's broker, 0..3
 *          topic entries of 1..8 partitions (a partition may come
 *          twice); each partition a new batch (codec, record count 1..8
 *          or about 2^28, a few payload bytes), an earlier batch again
 *          (a twin or a retry: the engine cannot tell), or one that fails
 *          kproduce_check_records (bad CRC, bad count, null, two batches,
 *          garbage, zstd < v7) or already carries a producer id;
 *     4-6  the broker answers the oldest request on a lane. Produce: per
 *          partition, the broker's own logic (append, duplicate, out of
 *          order, fenced epoch), a forced "not written" ErrorCode from
 *          upgrade.c's table or any other, a retriable code with or
 *          without the write, a partition left out or doubled; or the
 *          whole response in the reverse order, malformed (truncated),
 *          lost (the lane fails all it has pending, after processing the
 *          first ones or not), or for the wrong correlation id (likewise).
 *          InitProducerId: a fresh id (epoch 0 or near INT16_MAX), a
 *          KIP-360 bump, an ErrorCode (e.g. 49 refusing the bump), ids
 *          < 0, malformed, lost. Metadata (the engine asks for leaders):
 *          leaders among the three brokers, or a broker eosproxy does
 *          not know, no leader, the topic unknown, malformed, lost (the
 *          cluster has no leaders: any broker takes any batch);
 *     7    the lane fails everything pending (disconnect / overdue);
 *     8    the clock moves (10 ms .. 11 min) and the tick fires;
 *     9    a client resends an earlier request, in flight or answered;
 *     10   the next lane_send calls are refused (lane out of memory);
 *     11   a client disconnects (its id is never seen again);
 *     12   (the byte 12 only: they are slow) one large case, sized by the
 *          second byte s as 2^(s % 11) times 10 partitions in one
 *          request, or as many topics, or 100 one-partition requests over
 *          1 + s % 64 partitions, or 100 requests of one same batch (a
 *          client with a fixed clock) answered as they go; so up to
 *          10,240 partitions or topics, or 102,400 requests;
 *     13   upgrade_free now, with work pending;
 *     14   the broker answers everything pending, normally;
 *     15   the event loop runs (it also runs after every operation).
 * Seeds: tests/fuzz/seeds/upgrade-*.bin.
 *
 * Invariants (abort on violation):
 *  - every accepted upgrade_submit gets exactly one completion, never
 *    inside upgrade_submit, resp NULL exactly for acks=0; after the drain
 *    every accepted request has completed (in a bounded number of turns,
 *    and the engine never keeps the loop busy or sends without end while
 *    no time passes);
 *  - every ProduceResponse parses in the request's version, answers its
 *    correlation id, and has exactly the request's topics and partitions
 *    in order; a batch that fails the broker's checks (or carries a
 *    producer id) gets the ErrorCode a broker gives;
 *  - a partition answered with ErrorCode 0 was written: the cluster holds
 *    its content, at the base offset given when there is one;
 *  - what the engine sends parses; a Metadata request (against the
 *    schema) names 1..64 topics, never all; a ProduceRequest has acks=-1,
 *    one batch per partition, valid CRCs, an issued producer id and
 *    epoch, and only content a client submitted for that partition;
 *    under one producer id and epoch a partition's sequences start at 0
 *    and have no gap, a batch is never sent again while its previous
 *    attempt is unanswered, and a sequence is never reused for other
 *    content unless every earlier attempt at it was answered "not
 *    written";
 *  - per client and partition, batches answered 0 were first written in
 *    the order the client sent them (for content sent once);
 *  - no content is appended more often than clients submitted it plus
 *    the appends whose success never reached the engine (the documented
 *    "retries across a renewal" limit): nothing the broker acknowledged
 *    is written again;
 *  - a client paused by upgrade_busy is resumed once the engine drains;
 *  - upgrade_free frees everything (ASan's leak check) and every lane.
 *
 * FUZZ_UPGRADE_TRACE=1 prints what the harness does; FUZZ_UPGRADE_LOG=
 * debug|info|warn sets eosproxy's log level (default: errors only).
 */
#include "config.h"
#include "kbuf.h"
#include "kinitpid.h"
#include "kproduce.h"
#include "kproto.h"
#include "krecord.h"
#include "lane.h"
#include "log.h"
#include "proxy.h"
#include "upgrade.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fake_lane.c, the harness side. */
extern void (*fake_lane_on_send)(struct lane *l, const uint8_t *frame, size_t len);
size_t fake_lane_count(void);
struct lane *fake_lane_at(size_t i);
size_t fake_lane_npending(const struct lane *l);
const uint8_t *fake_lane_pending(const struct lane *l, size_t i, size_t *len);
void fake_lane_answer(struct lane *l, const uint8_t *resp, size_t len);
void fake_lane_fail(struct lane *l);
void fake_lane_refuse(int n);

#define NCLIENTS 4
#define NBROKERS 3
#define DRAIN_STEP_MS 250
#define MAX_LOOP_PASSES 64
/* Requests answered in one instant before the engine counts as spinning. */
#define MAX_ANSWERS 1000000
/* Drain turns allowed past the delivery timeout (pid backoff, resets). */
#define UPG_DRAIN_SLACK_MS 60000

static int g_trace; /* FUZZ_UPGRADE_TRACE set: what the harness does, to stderr */

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (!g_trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void die(const char *why)
{
    fprintf(stderr, "fuzz_upgrade: invariant violated: %s\n", why);
    abort();
}

/* ---------------------------------------------------------------- input */

struct in {
    const uint8_t *p;
    size_t n, off;
};

static uint8_t in_u8(struct in *in)
{
    return in && in->off < in->n ? in->p[in->off++] : 0;
}

/* ---------------------------------------------------------------- containers */

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(p, c * elem);
    if (!q)
        abort();
    memset((char *)q + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return q;
}
#define PUSH(a, n, cap) ((a) = grow((a), &(cap), (n), sizeof(*(a))), &(a)[(n)++])

/* u64 -> u32, open addressing; grows before half full. */
struct hmap {
    uint64_t *keys; /* 0: empty */
    uint32_t *vals;
    size_t cap, n;
};

static uint64_t nz(uint64_t k)
{
    return k ? k : 1;
}

static uint32_t *hmap_find(const struct hmap *m, uint64_t key)
{
    key = nz(key);
    for (size_t i = key & (m->cap - 1), probes = 0; probes < m->cap;
         probes++, i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return &m->vals[i];
        if (!m->keys[i])
            return NULL;
    }
    return NULL;
}

static void hmap_put(struct hmap *m, uint64_t key, uint32_t val);

static void hmap_grow(struct hmap *m)
{
    struct hmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->n = 0;
    m->keys = calloc(m->cap, sizeof(*m->keys));
    m->vals = calloc(m->cap, sizeof(*m->vals));
    if (!m->keys || !m->vals)
        abort();
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            hmap_put(m, old.keys[i], old.vals[i]);
    free(old.keys);
    free(old.vals);
}

static void hmap_put(struct hmap *m, uint64_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap)
        hmap_grow(m);
    uint32_t *v = hmap_find(m, key);
    if (v) {
        *v = val;
        return;
    }
    key = nz(key);
    size_t i = key & (m->cap - 1);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
}

static void hmap_free(struct hmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static uint64_t key4(uint64_t tag, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t v[4] = {tag, a, b, c};
    return krecord_xxh64(v, sizeof(v), 0x5eed);
}

/* ---------------------------------------------------------------- state */

/* A producer's state in one partition, as a broker keeps it. */
struct bprod {
    int64_t pid;
    int16_t epoch; /* -1: none yet */
    int32_t last;  /* last sequence written; -1: none */
    int nrecent;
    struct {
        int32_t first, last;
        uint32_t entry;
    } recent[5]; /* oldest first */
};

/* A (topic, partition): the client side's and the cluster's view. */
struct bpart {
    char *topic;
    size_t tlen;
    int32_t partition;
    int64_t log_end;
    struct bprod *prods;
    size_t nprods, capprods;
    uint64_t seen; /* the request being checked has a batch of it */
};

/* A batch in a partition's log. */
struct lentry {
    uint32_t part;
    int64_t offset;
    uint64_t content;
    int acked; /* a success for it reached the engine */
};

/* How far a partition's sequences went under one producer id and epoch:
 * the end of the furthest batch sent, counted without wrapping. */
struct pepoch {
    uint64_t end;
};

/* What was sent at (partition, producer id, epoch, sequence). */
struct triple {
    uint64_t content;
    int32_t count;
    uint32_t pending;  /* attempts unanswered */
    int maybe_written; /* an attempt was written or its outcome was unclear */
};

/* Per (partition, content). */
struct cstat {
    uint32_t part;
    uint64_t content;
    uint64_t subs, appends, unacked;
    int64_t first_offset; /* of its first append */
};

/* One partition slot of a client request. */
struct cslot {
    uint32_t part;
    uint64_t content;
    int16_t expect; /* ErrorCode the slot must get; -1: the engine decides */
    int16_t result; /* the ErrorCode it got; -1: none (yet, or acks=0) */
};

/* A client request. */
struct creq {
    uint64_t client_id, token;
    int32_t corr;
    int16_t ver;
    int acks_zero, accepted, completed;
    uint8_t *frame; /* size prefix included */
    size_t len;
    uint32_t first_slot, nslots;
};

/* A batch a client made, for twins and retries. */
struct lbatch {
    uint32_t part;
    uint8_t *bytes;
    size_t len;
};

struct issued {
    int64_t pid;
    int16_t epoch; /* current; older ones are fenced */
    int lost;      /* an answer that issued it (or bumped it) never arrived */
};

struct run {
    struct upgrade *u;
    struct event *tick;
    uint64_t now;
    int freed;
    int in_submit;
    uint64_t uniq;
    uint64_t client_ids[NCLIENTS], next_client_id, tokens[NCLIENTS];
    int paused[NCLIENTS], busy_seen;
    int32_t corr;
    int blasted;
    uint64_t stamp;
    int64_t next_pid;
    struct bpart *parts;
    size_t nparts, capparts;
    struct lentry *log;
    size_t nlog, caplog;
    struct triple *triples;
    size_t ntriples, captriples;
    struct cstat *cstats;
    size_t ncstats, capcstats;
    struct cslot *slots;
    size_t nslots, capslots;
    struct creq *reqs;
    size_t nreqs, capreqs;
    struct lbatch *lb;
    size_t nlb, caplb;
    struct issued *pids;
    size_t npids, cappids;
    struct pepoch *pes;
    size_t npes, cappes;
    uint64_t accepted, completed;
    struct hmap m_part, m_triple, m_start, m_offset, m_content, m_req, m_pid, m_pe;
};

static struct event_base *g_base;
static config_t *g_cfg;
static struct proxy *g_px;
static struct run *g_run;

/* ---------------------------------------------------------------- lookups */

static uint32_t part_get(struct run *R, const char *topic, size_t len, int32_t partition)
{
    uint64_t k = krecord_xxh64(topic, len, (uint64_t)(uint32_t)partition + 1);
    uint32_t *v = hmap_find(&R->m_part, k);
    if (v) {
        struct bpart *p = &R->parts[*v];
        if (p->tlen != len || memcmp(p->topic, topic, len) || p->partition != partition)
            die("partition key collision");
        return *v;
    }
    struct bpart *p = PUSH(R->parts, R->nparts, R->capparts);
    p->topic = malloc(len + 1);
    if (!p->topic)
        abort();
    memcpy(p->topic, topic, len);
    p->topic[len] = 0;
    p->tlen = len;
    p->partition = partition;
    hmap_put(&R->m_part, k, (uint32_t)(R->nparts - 1));
    return (uint32_t)(R->nparts - 1);
}

static struct cstat *cstat_get(struct run *R, uint32_t part, uint64_t content)
{
    uint64_t k = key4(1, part, content, 0);
    uint32_t *v = hmap_find(&R->m_content, k);
    if (v)
        return &R->cstats[*v];
    struct cstat *c = PUSH(R->cstats, R->ncstats, R->capcstats);
    c->part = part;
    c->content = content;
    hmap_put(&R->m_content, k, (uint32_t)(R->ncstats - 1));
    return c;
}

static struct issued *pid_find(struct run *R, int64_t pid)
{
    uint32_t *v = hmap_find(&R->m_pid, key4(2, (uint64_t)pid, 0, 0));
    return v ? &R->pids[*v] : NULL;
}

#define SEQ_SPACE ((uint64_t)INT32_MAX + 1)

static struct pepoch *pe_get(struct run *R, uint32_t part, int64_t pid, int16_t epoch)
{
    uint64_t k = key4(7, part, (uint64_t)pid, (uint16_t)epoch);
    uint32_t *v = hmap_find(&R->m_pe, k);
    if (v)
        return &R->pes[*v];
    struct pepoch *e = PUSH(R->pes, R->npes, R->cappes);
    hmap_put(&R->m_pe, k, (uint32_t)(R->npes - 1));
    return e;
}

/*
 * Where a batch starting at seq lies, counted without wrapping: at or
 * before the end sent so far, less than one lap of 2^31 behind it (at most
 * five batches of at most 2^28 records are in flight). So sequences that
 * come round again after a wrap are told from the old ones.
 */
static uint64_t seq_abs(const struct pepoch *e, int32_t seq)
{
    uint64_t back = (e->end % SEQ_SPACE + SEQ_SPACE - (uint64_t)seq) % SEQ_SPACE;
    return back <= e->end ? e->end - back : UINT64_MAX; /* ahead of all: a gap */
}

/* A batch's place under a producer: (partition, id, epoch, first sequence
 * without wrapping, count), as a broker tells duplicates. */
static uint64_t triple_key(uint32_t part, int64_t pid, int16_t epoch, uint64_t abs, int32_t count)
{
    return key4(3, ((uint64_t)part << 32) | (uint32_t)count,
                (uint64_t)pid ^ ((uint64_t)(uint16_t)epoch << 48), abs);
}

/* The triple of an attempt; a pending one first: batches of about 2^28
 * records can carry a partition's sequence more than 2^31 past an attempt
 * before its answer, so its sequence is looked up a few wraps back too. */
static struct triple *triple_find(struct run *R, uint32_t part, int64_t pid, int16_t epoch,
                                  int32_t seq, int32_t count)
{
    uint64_t abs = seq_abs(pe_get(R, part, pid, epoch), seq);
    struct triple *found = NULL;
    for (int k = 0; k < 4 && abs != UINT64_MAX; k++) {
        uint32_t *v = hmap_find(&R->m_triple, triple_key(part, pid, epoch, abs, count));
        if (v && R->triples[*v].pending)
            return &R->triples[*v];
        if (v && !found)
            found = &R->triples[*v];
        if (abs < SEQ_SPACE)
            break;
        abs -= SEQ_SPACE;
    }
    return found;
}

/* Kafka's sequence arithmetic, written again here (not seqstate.c's). */
static int32_t seq_plus(int32_t seq, int32_t n)
{
    int64_t s = (int64_t)seq + n;
    return (int32_t)(s > INT32_MAX ? s - INT32_MAX - 1 : s);
}

/* The content of a batch: every byte but the fields a producer sets. */
static uint64_t content_of(const uint8_t *b, size_t size)
{
    uint8_t c[KRECORD_HEADER_SIZE];
    memcpy(c, b, sizeof(c));
    memset(c, 0, KREC_OFF_ATTRIBUTES);                                  /* offset, length, crc.. */
    c[KREC_OFF_ATTRIBUTES + 1] &= (uint8_t)~KRECORD_ATTR_TRANSACTIONAL; /* low byte */
    memset(c + KREC_OFF_PRODUCER_ID, 0, KREC_OFF_RECORD_COUNT - KREC_OFF_PRODUCER_ID);
    return krecord_xxh64(b + sizeof(c), size - sizeof(c), krecord_xxh64(c, sizeof(c), 7));
}

/* ---------------------------------------------------------------- engine hooks */

static uint64_t fake_now(void)
{
    return g_run->now;
}

static void on_resume(struct proxy *px)
{
    (void)px;
    memset(g_run->paused, 0, sizeof(g_run->paused));
}

/* The request's parsed body (views into its frame). */
static void parse_creq(const struct creq *q, kproduce_req_t *rq)
{
    kreq_hdr_t h;
    const char *err;
    if (kproto_parse_request_header(q->frame + 4, q->len - 4, &h, &err) ||
        kproduce_req_parse(q->ver, q->frame + 4 + h.body_off, q->len - 4 - h.body_off, rq, NULL))
        die("harness: a request it built does not parse");
}

/* A slot answered 0: the cluster holds its content (at base_offset). */
static void check_written(struct run *R, const struct cslot *s, const kproduce_presp_t *p)
{
    uint32_t *v = hmap_find(&R->m_content, key4(1, s->part, s->content, 0));
    if (!v || R->cstats[*v].appends == 0)
        die("ErrorCode 0 for a batch the cluster never wrote");
    if (p->base_offset < 0)
        return;
    uint32_t *e = hmap_find(&R->m_offset, key4(4, s->part, (uint64_t)p->base_offset, 0));
    if (!e || R->log[*e].content != s->content)
        die("base offset of another batch");
}

static void check_response(struct run *R, const struct creq *q, struct evbuffer *resp)
{
    size_t len = evbuffer_get_length(resp);
    const uint8_t *p = evbuffer_pullup(resp, -1);
    if (len < 8 || !p || (size_t)kbe32(p) != len - 4)
        die("response frame size");
    kproduce_resp_t rs;
    if (kproduce_resp_parse(q->ver, p + 4, len - 4, &rs, NULL))
        die("ProduceResponse does not parse in the request's version");
    kproduce_req_t rq;
    parse_creq(q, &rq);
    if (rs.correlation_id != q->corr || rs.ntopics != rq.ntopics)
        die("response correlation id or topic count");
    uint32_t k = 0;
    for (int32_t i = 0; i < rq.ntopics; i++) {
        const kproduce_topic_t *t = &rq.topics[i];
        const kproduce_tresp_t *tr = &rs.topics[i];
        if (tr->name.len != t->name.len || memcmp(tr->name.ptr, t->name.ptr, (size_t)t->name.len) ||
            tr->npartitions != t->npartitions)
            die("response topic differs from the request's");
        for (int32_t j = 0; j < t->npartitions; j++, k++) {
            const kproduce_presp_t *pr = &tr->partitions[j];
            struct cslot *s = &R->slots[q->first_slot + k];
            s->result = pr->error_code;
            if (pr->index != t->partitions[j].index)
                die("response partition differs from the request's");
            if (s->expect >= 0 && pr->error_code != s->expect)
                die("wrong ErrorCode for a batch that fails the broker's checks");
            if (s->expect < 0 && pr->error_code == 0)
                check_written(R, s, pr);
        }
    }
    kproduce_req_free(&rq);
    kproduce_resp_free(&rs);
}

static void on_slot_done(struct proxy *px, uint64_t client_id, uint64_t token,
                         struct evbuffer *resp)
{
    struct run *R = g_run;
    (void)px;
    if (R->in_submit)
        die("completion inside upgrade_submit");
    uint32_t *v = hmap_find(&R->m_req, key4(5, client_id, token, 0));
    if (!v)
        die("completion for a request never accepted");
    struct creq *q = &R->reqs[*v];
    if (!q->accepted || q->completed)
        die("a second completion");
    q->completed = 1;
    R->completed++;
    trace("completed client %llu token %llu\n", (unsigned long long)client_id,
          (unsigned long long)token);
    if (q->acks_zero != !resp)
        die("resp NULL must mean acks=0");
    if (resp) {
        check_response(R, q, resp);
        evbuffer_free(resp);
    }
}

/* ---------------------------------------------------------------- the loop */

static void run_loop(void)
{
    for (int i = 0; i < MAX_LOOP_PASSES; i++) {
        if (event_base_get_num_events(g_base, EVENT_BASE_COUNT_ACTIVE) == 0)
            return;
        event_base_loop(g_base, EVLOOP_NONBLOCK);
    }
    die("the engine keeps the event loop busy");
}

static void advance(struct run *R, uint64_t ms)
{
    R->now += ms;
    trace("clock +%llu ms\n", (unsigned long long)ms);
    if (R->freed)
        return;
    event_active(R->tick, EV_TIMEOUT, 1);
    run_loop();
    event_del(R->tick); /* libevent re-arms a persistent timer that ran */
}

/* Finds the engine's tick (its persistent timer) and takes it off the real
 * clock; the harness fires it when it moves the fake one. */
static int find_tick(const struct event_base *base, const struct event *ev, void *arg)
{
    struct run *R = arg;
    (void)base;
    if (event_get_callback_arg(ev) == R->u && (event_get_events(ev) & EV_PERSIST))
        R->tick = (struct event *)ev;
    return 0;
}

/* ---------------------------------------------------------------- client side */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* A v2 batch with its CRC; the payload stands for the records. */
static uint8_t *make_batch(struct run *R, int32_t count, int codec, size_t plen, size_t *size)
{
    *size = KRECORD_HEADER_SIZE + 8 + plen;
    uint8_t *b = calloc(1, *size);
    if (!b)
        abort();
    put32(b + KREC_OFF_BATCH_LENGTH, (uint32_t)(*size - 12));
    put32(b + KREC_OFF_LEADER_EPOCH, 0xffffffffu);
    b[KREC_OFF_MAGIC] = 2;
    b[KREC_OFF_ATTRIBUTES + 1] = (uint8_t)codec;
    put32(b + KREC_OFF_LAST_OFFSET_DELTA, (uint32_t)(count - 1));
    put64(b + KREC_OFF_BASE_TIMESTAMP, R->now);
    put64(b + KREC_OFF_MAX_TIMESTAMP, R->now);
    put64(b + KREC_OFF_PRODUCER_ID, UINT64_MAX);
    b[KREC_OFF_PRODUCER_EPOCH] = b[KREC_OFF_PRODUCER_EPOCH + 1] = 0xff;
    put32(b + KREC_OFF_BASE_SEQUENCE, 0xffffffffu);
    put32(b + KREC_OFF_RECORD_COUNT, (uint32_t)count);
    put64(b + KRECORD_HEADER_SIZE, ++R->uniq);
    for (size_t i = 0; i < plen; i++)
        b[KRECORD_HEADER_SIZE + 8 + i] = (uint8_t)(i * 31 + R->uniq);
    put32(b + KREC_OFF_CRC, krecord_batch_crc(b, *size));
    return b;
}

/* One slot of a request being built: records (owned) and partition. */
struct pslot {
    uint32_t part;
    uint8_t *rec; /* NULL: null records */
    int32_t len;
};

static const char *const topic_names[] = {"pay", "pay.b", "orders-eu-west-1-a-long-topic-name",
                                          "x"};
#define NTOPICS (sizeof(topic_names) / sizeof(topic_names[0]))

/* 1..8 records, or a batch that claims about 2^28 (a real one cannot come
 * near that; five never span 2^31 sequences, see seq_abs). */
static int32_t record_count(uint8_t c)
{
    return c < 240 ? 1 + c % 8 : (1 << 28) - (c & 7);
}

/* The records of one slot of kind s (see the header comment). */
static void make_slot(struct run *R, struct in *in, uint32_t part, int16_t ver, struct pslot *ps)
{
    uint8_t s = in_u8(in), c = in_u8(in);
    int kind = s % 16, codec = (s >> 4) % 5;
    size_t size;
    ps->part = part;
    if (kind >= 7 && kind <= 9 && R->nlb) {
        struct lbatch *lb = &R->lb[in_u8(in) % R->nlb];
        ps->part = lb->part;
        ps->len = (int32_t)lb->len;
        ps->rec = malloc(lb->len);
        if (!ps->rec)
            abort();
        memcpy(ps->rec, lb->bytes, lb->len);
        return;
    }
    if (codec == KRECORD_ZSTD && ver < 7 && !(c & 0x80))
        codec = 0; /* mostly legal */
    uint8_t *b = make_batch(R, record_count(c), codec, (c >> 3) % 24, &size);
    ps->rec = b;
    ps->len = (int32_t)size;
    switch (kind) {
    case 10:
        b[size - 1] ^= 1; /* bad CRC */
        break;
    case 11:
        put32(b + KREC_OFF_RECORD_COUNT, (uint32_t)record_count(c) + 1);
        put32(b + KREC_OFF_CRC, krecord_batch_crc(b, size));
        break;
    case 12:
        put64(b + KREC_OFF_PRODUCER_ID, 5);
        b[KREC_OFF_PRODUCER_EPOCH] = b[KREC_OFF_PRODUCER_EPOCH + 1] = 0;
        put32(b + KREC_OFF_BASE_SEQUENCE, 0);
        put32(b + KREC_OFF_CRC, krecord_batch_crc(b, size));
        break;
    case 13:
        free(b);
        ps->rec = NULL;
        ps->len = c & 1 ? -1 : 0;
        break;
    case 14: {
        uint8_t *two = malloc(2 * size);
        if (!two)
            abort();
        memcpy(two, b, size);
        memcpy(two + size, b, size);
        free(b);
        ps->rec = two;
        ps->len = (int32_t)(2 * size);
        break;
    }
    case 15:
        ps->len = (int32_t)(c % 40);
        break;
    default: {
        struct lbatch *lb = PUSH(R->lb, R->nlb, R->caplb);
        lb->part = part;
        lb->len = size;
        lb->bytes = malloc(size);
        if (!lb->bytes)
            abort();
        memcpy(lb->bytes, b, size);
    }
    }
}

/* What the engine must answer for these records (-1: it decides). */
static int16_t expected_error(int16_t ver, const struct pslot *ps, uint64_t *content)
{
    krecord_batch_t hdr;
    kbytes_t rec = {ps->rec, ps->len};
    int rc = kproduce_check_records(ver, rec, &hdr, 1);
    *content = 0;
    if (rc != KREC_OK)
        return krecord_kafka_error(rc);
    if (hdr.producer_id != -1)
        return 87; /* INVALID_RECORD */
    *content = content_of(ps->rec, (size_t)ps->len);
    return -1;
}

/* Encodes the slots as a ProduceRequest: consecutive slots of one topic
 * share a topic entry. Returns the frame (size prefix included). */
static uint8_t *encode_request(struct run *R, const struct pslot *ps, size_t n, int16_t ver,
                               int16_t acks, int32_t timeout, int32_t corr, size_t *len)
{
    kproduce_topic_t *topics = calloc(n ? n : 1, sizeof(*topics));
    kproduce_partition_t *parts = calloc(n ? n : 1, sizeof(*parts));
    if (!topics || !parts)
        abort();
    kproduce_req_t req = {{NULL, -1}, acks, timeout, 0, topics};
    for (size_t i = 0; i < n; i++) {
        const struct bpart *bp = &R->parts[ps[i].part];
        kproduce_topic_t *t = req.ntopics ? &topics[req.ntopics - 1] : NULL;
        if (!t || (size_t)t->name.len != bp->tlen || memcmp(t->name.ptr, bp->topic, bp->tlen)) {
            t = &topics[req.ntopics++];
            t->name = (kstr_t){bp->topic, (int32_t)bp->tlen};
            t->partitions = &parts[i];
        }
        parts[i] = (kproduce_partition_t){bp->partition, {ps[i].rec, ps[i].len}};
        t->npartitions++;
    }
    kwriter_t w;
    kw_init(&w, 256);
    int16_t wver = ver < KPRODUCE_MIN_VERSION ? KPRODUCE_MIN_VERSION : ver;
    if (kproduce_req_write(&w, wver, corr, (kstr_t){"app", 3}, &req))
        abort();
    free(topics);
    free(parts);
    uint8_t *frame = kw_detach(&w, len);
    if (ver < KPRODUCE_MIN_VERSION) {
        frame[6] = 0; /* message format < 2: the header says v2 */
        frame[7] = (uint8_t)ver;
    }
    return frame;
}

/* Hands a request to the engine as client.c's route_upgrade does. */
static void submit_frame(struct run *R, int client, uint8_t *frame, size_t len, int16_t ver,
                         int16_t acks, uint32_t first_slot, uint32_t nslots, struct broker *b)
{
    kreq_hdr_t h;
    const char *err;
    if (kproto_parse_request_header(frame + 4, len - 4, &h, &err))
        die("harness: request header");
    struct creq *q = PUSH(R->reqs, R->nreqs, R->capreqs);
    q->client_id = R->client_ids[client];
    q->token = R->tokens[client]++;
    q->corr = h.correlation_id;
    q->ver = ver;
    q->acks_zero = acks == 0;
    q->frame = frame;
    q->len = len;
    q->first_slot = first_slot;
    q->nslots = nslots;
    for (uint32_t i = 0; i < nslots; i++) {
        const struct cslot *s = &R->slots[first_slot + i];
        if (s->expect < 0)
            cstat_get(R, s->part, s->content)->subs++;
    }
    hmap_put(&R->m_req, key4(5, q->client_id, q->token, 0), (uint32_t)(R->nreqs - 1));
    trace("submit client %llu token %llu v%d acks %d: %u slots\n", (unsigned long long)q->client_id,
          (unsigned long long)q->token, (int)ver, (int)acks, nslots);
    for (uint32_t i = 0; i < nslots; i++)
        trace("  slot %s-%d content %016llx expect %d\n",
              R->parts[R->slots[first_slot + i].part].topic,
              (int)R->parts[R->slots[first_slot + i].part].partition,
              (unsigned long long)R->slots[first_slot + i].content,
              (int)R->slots[first_slot + i].expect);
    R->in_submit = 1;
    /* Every other request offers its buffer (upgrade_submit_take): taken
     * exactly when accepted. */
    uint8_t *own = q->token % 2 ? malloc(len) : NULL;
    int rc;
    if (own) {
        memcpy(own, frame, len);
        uint8_t *offered = own;
        rc = upgrade_submit_take(R->u, b, &h, offered + 4, len - 4, &own, acks == 0, q->client_id,
                                 q->token);
        if ((rc == 0) != (own == NULL))
            die("upgrade_submit_take: the buffer taken iff accepted");
        free(own);
    } else {
        rc = upgrade_submit(R->u, b, &h, frame + 4, len - 4, acks == 0, q->client_id, q->token);
    }
    R->in_submit = 0;
    if (rc < 0 || (ver < KPRODUCE_MIN_VERSION && rc != 43))
        die("upgrade_submit's answer");
    if (rc)
        return;
    q->accepted = 1;
    R->accepted++;
    if (upgrade_busy(R->u)) {
        R->paused[client] = 1;
        R->busy_seen = 1;
    }
}

/* The broker whose listener the request came in on (client.c's
 * up_broker, never NULL). */
static struct broker *pick_broker(uint8_t b)
{
    return g_px->brokers[b % NBROKERS];
}

static const int32_t timeouts[8] = {30000, 5000, 100, 0, -1, INT32_MAX, 1000, 120000};

static void op_submit(struct run *R, struct in *in)
{
    uint8_t b0 = in_u8(in), b1 = in_u8(in), b2 = in_u8(in);
    int client = b0 % NCLIENTS;
    if (R->paused[client])
        return; /* client.c stops reading from it */
    int16_t ver = (int16_t)(2 + (b0 >> 2) % 8);
    if (ver > g_px->versions[KAPI_Produce].max_ver)
        ver = g_px->versions[KAPI_Produce].max_ver; /* client.c allows no more */
    int16_t acks = (int16_t)(b1 % 3) - 1;
    int32_t timeout = timeouts[(b1 >> 2) % 8];
    struct pslot ps[24];
    size_t n = 0;
    for (int t = 0; t < b2 % 4; t++) {
        uint8_t tb = in_u8(in);
        const char *name = topic_names[tb % NTOPICS];
        for (int j = 0; j <= (tb >> 2) % 8; j++) {
            uint32_t part = part_get(R, name, strlen(name), (int32_t)(in_u8(in) % 8));
            make_slot(R, in, part, ver, &ps[n++]);
        }
    }
    uint32_t first = (uint32_t)R->nslots;
    for (size_t i = 0; i < n; i++) {
        struct cslot *s = PUSH(R->slots, R->nslots, R->capslots);
        s->part = ps[i].part;
        s->expect = expected_error(ver, &ps[i], &s->content);
        s->result = -1;
    }
    size_t len;
    uint8_t *frame = encode_request(R, ps, n, ver, acks, timeout, R->corr++, &len);
    for (size_t i = 0; i < n; i++)
        free(ps[i].rec);
    submit_frame(R, client, frame, len, ver, acks, first, (uint32_t)n, pick_broker(b2 >> 2));
}

/* A client sends an earlier request again (new correlation id). */
static void op_resend(struct run *R, struct in *in)
{
    uint8_t b0 = in_u8(in), b1 = in_u8(in);
    int client = b1 % NCLIENTS;
    if (!R->nreqs || R->paused[client])
        return;
    const struct creq *old = &R->reqs[b0 % R->nreqs];
    uint8_t *frame = malloc(old->len);
    if (!frame)
        abort();
    memcpy(frame, old->frame, old->len);
    put32(frame + 8, (uint32_t)R->corr++);
    uint32_t first = (uint32_t)R->nslots, n = old->nslots, from = old->first_slot;
    int16_t ver = old->ver, acks = (int16_t)(old->acks_zero ? 0 : -1);
    size_t len = old->len;
    for (uint32_t i = 0; i < n; i++) {
        struct cslot s = R->slots[from + i];
        s.result = -1;
        *PUSH(R->slots, R->nslots, R->capslots) = s;
    }
    submit_frame(R, client, frame, len, ver, acks, first, n, pick_broker(b1 >> 2));
}

/* The large cases, from two bytes (once per input). */
static void answer_all(struct run *R);

static void op_blast(struct run *R, struct in *in)
{
    uint8_t kind = in_u8(in) % 4, s = in_u8(in);
    if (R->blasted++)
        return;
    /* Sizes double with s % 11, so the largest cases are reachable but rare. */
    size_t scale = (size_t)1 << (s % 11);
    int many = kind == 1 || kind == 3;
    size_t nreq = many ? 100 * scale : 1, per = many ? 1 : 10 * scale;
    struct pslot *ps = calloc(per, sizeof(*ps));
    size_t same_len = 0;
    uint8_t *same = kind == 3 ? make_batch(R, 1, 0, 0, &same_len) : NULL;
    if (!ps)
        abort();
    for (size_t r = 0; r < nreq; r++) {
        int client = (int)(r % NCLIENTS);
        if (R->paused[client])
            continue;
        uint32_t first = (uint32_t)R->nslots;
        for (size_t i = 0; i < per; i++) {
            char name[32];
            int32_t partition = (int32_t)(kind == 1 ? r % (1u + s % 64) : i);
            snprintf(name, sizeof(name), "blast%zu", kind == 2 ? i : 0);
            ps[i].part = part_get(R, name, strlen(name), kind == 2 ? 0 : partition);
            size_t size = same_len;
            ps[i].rec = same ? malloc(same_len) : make_batch(R, 1, 0, 0, &size);
            if (!ps[i].rec)
                abort();
            if (same)
                memcpy(ps[i].rec, same, same_len);
            ps[i].len = (int32_t)size;
            struct cslot *cs = PUSH(R->slots, R->nslots, R->capslots);
            cs->part = ps[i].part;
            cs->expect = -1;
            cs->result = -1;
            cs->content = content_of(ps[i].rec, size);
        }
        size_t len;
        int16_t ver = g_px->versions[KAPI_Produce].max_ver;
        uint8_t *frame = encode_request(R, ps, per, ver, -1, 30000, R->corr++, &len);
        for (size_t i = 0; i < per; i++)
            free(ps[i].rec);
        submit_frame(R, client, frame, len, ver, -1, first, (uint32_t)per, g_px->brokers[r % 3]);
        if (r % 64 == 63 && kind == 3)
            answer_all(R); /* a steady stream, answered as it goes */
        else if (r % 64 == 63)
            run_loop();
    }
    free(same);
    free(ps);
}

/* ---------------------------------------------------------------- the cluster */

static struct bprod *prod_get(struct bpart *bp, int64_t pid)
{
    for (size_t i = 0; i < bp->nprods; i++)
        if (bp->prods[i].pid == pid)
            return &bp->prods[i];
    struct bprod *p = PUSH(bp->prods, bp->nprods, bp->capprods);
    p->pid = pid;
    p->epoch = -1;
    p->last = -1;
    return p;
}

/* One batch of the engine's, as it sits in a request. */
struct ebatch {
    uint32_t part;
    int64_t pid;
    int16_t epoch;
    int32_t seq, count;
    uint64_t content;
};

enum { APPLY_NOT, APPLY_APPEND, APPLY_DUP };

/*
 * What a broker does with b (ProducerStateManager's checks): fenced
 * epoch, a new epoch must start at 0, one of the last five batches is a
 * duplicate, any other sequence but the next is out of order. Sets the
 * ErrorCode and base offset to answer and *entry (APPEND/DUP).
 */
static int broker_apply(struct run *R, const struct ebatch *b, int dup_as_46, int16_t *err,
                        int64_t *offset, uint32_t *entry)
{
    struct bpart *bp = &R->parts[b->part];
    struct issued *is = pid_find(R, b->pid);
    *offset = -1;
    if (!is) {
        *err = 59;
        return APPLY_NOT;
    }
    if (b->epoch < is->epoch) {
        *err = 47;
        return APPLY_NOT;
    }
    struct bprod *p = prod_get(bp, b->pid);
    int32_t last = seq_plus(b->seq, b->count - 1);
    if (p->epoch != b->epoch) {
        if (b->seq != 0) {
            *err = 45;
            return APPLY_NOT;
        }
        p->epoch = b->epoch;
        p->nrecent = 0;
        p->last = -1;
    } else {
        for (int i = 0; i < p->nrecent; i++) {
            if (p->recent[i].first == b->seq && p->recent[i].last == last) {
                *entry = p->recent[i].entry;
                *err = dup_as_46 ? 46 : 0;
                *offset = dup_as_46 ? -1 : R->log[*entry].offset;
                return APPLY_DUP;
            }
        }
        if (b->seq != seq_plus(p->last, 1)) {
            *err = 45;
            return APPLY_NOT;
        }
    }
    struct lentry *e = PUSH(R->log, R->nlog, R->caplog);
    e->part = b->part;
    e->offset = bp->log_end;
    e->content = b->content;
    *entry = (uint32_t)(R->nlog - 1);
    hmap_put(&R->m_offset, key4(4, b->part, (uint64_t)e->offset, 0), *entry);
    bp->log_end += b->count;
    struct cstat *cs = cstat_get(R, b->part, b->content);
    if (!cs->appends++)
        cs->first_offset = e->offset;
    if (p->nrecent == 5)
        memmove(p->recent, p->recent + 1, 4 * sizeof(p->recent[0]));
    else
        p->nrecent++;
    p->recent[p->nrecent - 1].first = b->seq;
    p->recent[p->nrecent - 1].last = last;
    p->recent[p->nrecent - 1].entry = *entry;
    p->last = last;
    *err = 0;
    *offset = e->offset;
    return APPLY_APPEND;
}

/* The batches of one of the engine's ProduceRequests (frame with prefix).
 * Returns how many; *rq holds the parse (free it). */
static size_t engine_batches(struct run *R, const uint8_t *frame, size_t len, kreq_hdr_t *h,
                             kproduce_req_t *rq, struct ebatch **out)
{
    const char *err;
    if (kproto_parse_request_header(frame + 4, len - 4, h, &err) || h->api_key != KAPI_Produce ||
        kproduce_req_parse(h->api_version, frame + 4 + h->body_off, len - 4 - h->body_off, rq,
                           NULL))
        die("the engine sent a malformed ProduceRequest");
    size_t n = 0;
    for (int32_t i = 0; i < rq->ntopics; i++)
        n += (size_t)rq->topics[i].npartitions;
    struct ebatch *b = calloc(n ? n : 1, sizeof(*b));
    if (!b)
        abort();
    size_t k = 0;
    for (int32_t i = 0; i < rq->ntopics; i++) {
        const kproduce_topic_t *t = &rq->topics[i];
        if (t->name.len < 0)
            die("null topic name");
        for (int32_t j = 0; j < t->npartitions; j++, k++) {
            krecord_batch_t hdr;
            const kproduce_partition_t *pp = &t->partitions[j];
            if (kproduce_check_records(h->api_version, pp->records, &hdr, 1) != KREC_OK)
                die("the engine sent a batch that fails the broker's checks");
            b[k].part = part_get(R, t->name.ptr, (size_t)t->name.len, pp->index);
            b[k].pid = hdr.producer_id;
            b[k].epoch = hdr.producer_epoch;
            b[k].seq = hdr.base_sequence;
            b[k].count = hdr.record_count;
            b[k].content = content_of(pp->records.ptr, (size_t)pp->records.len);
            if (krecord_attrs(hdr.attributes).transactional)
                die("the engine sent a transactional batch");
        }
    }
    *out = b;
    return n;
}

/* lane_send's view: checks each batch before it reaches the cluster. */
static void check_sent_batch(struct run *R, const struct ebatch *b)
{
    struct bpart *bp = &R->parts[b->part];
    trace("  send %s-%d pid %lld/%d seq %d+%d content %016llx\n", bp->topic, (int)bp->partition,
          (long long)b->pid, (int)b->epoch, (int)b->seq, (int)b->count,
          (unsigned long long)b->content);
    struct issued *is = pid_find(R, b->pid);
    if (!is || b->epoch < 0 || b->epoch > is->epoch || b->seq < 0)
        die("a batch sent under a producer id or epoch never issued");
    uint32_t *cs = hmap_find(&R->m_content, key4(1, b->part, b->content, 0));
    if (!cs || R->cstats[*cs].subs == 0)
        die("the engine sent content no client submitted to that partition");
    /* Under one producer id and epoch, a partition starts at 0 and each
     * batch starts where one sent before starts or ends. */
    struct pepoch *pe = pe_get(R, b->part, b->pid, b->epoch);
    uint64_t abs = seq_abs(pe, b->seq);
    uint64_t sk = key4(6, b->part, (uint64_t)b->pid ^ ((uint64_t)(uint16_t)b->epoch << 48), abs);
    if (abs == UINT64_MAX || (abs && !hmap_find(&R->m_start, sk)))
        die("a gap in a partition's sequences");
    uint64_t tk = triple_key(b->part, b->pid, b->epoch, abs, b->count);
    uint32_t *v = hmap_find(&R->m_triple, tk);
    if (!v) {
        PUSH(R->triples, R->ntriples, R->captriples);
        hmap_put(&R->m_triple, tk, (uint32_t)(R->ntriples - 1));
        v = hmap_find(&R->m_triple, tk);
        R->triples[*v].content = b->content;
        R->triples[*v].count = b->count;
    }
    struct triple *t = &R->triples[*v];
    if (t->pending)
        die("a batch sent again while its previous attempt is unanswered");
    if (t->content != b->content) {
        if (t->maybe_written)
            die("a sequence reused for other content while the first may be written");
        t->content = b->content;
    }
    t->pending++;
    uint64_t end = abs + (uint64_t)b->count;
    if (end > pe->end)
        pe->end = end;
    hmap_put(&R->m_start, sk, 1);
    hmap_put(&R->m_start,
             key4(6, b->part, (uint64_t)b->pid ^ ((uint64_t)(uint16_t)b->epoch << 48), end), 1);
}

/* The topics of the engine's Metadata request (frame with prefix), views
 * into it; checks it against the schema first. Returns how many (at most
 * max). */
static int32_t metadata_topics(const uint8_t *frame, size_t len, kreq_hdr_t *h, kstr_t *topics,
                               int32_t max)
{
    const char *err;
    size_t off;
    if (kproto_parse_request_header(frame + 4, len - 4, h, &err) || h->api_key != KAPI_Metadata ||
        h->api_version < 1 || kproto_validate_request(h, frame + 4, len - 4, &off, &err))
        die("the engine sent a malformed Metadata request");
    int flex = h->api_version >= 9;
    kreader_t r;
    kr_init(&r, frame + 4, len - 4);
    r.off = h->body_off;
    int32_t n = kr_array(&r, flex, 1);
    if (n < 1 || n > max)
        die("the engine asked for no topic, all topics, or too many");
    for (int32_t i = 0; i < n; i++) {
        if (h->api_version >= 10)
            (void)kr_skip(&r, 16);
        topics[i] = kr_str(&r, flex);
        kr_tags_if(&r, flex);
        if (topics[i].len < 0)
            die("a null topic name in a Metadata request");
    }
    if (!kr_ok(&r))
        die("harness: a Metadata request that passed the schema does not parse");
    return n;
}

/* Topics in one of the engine's Metadata requests (its documented bound). */
#define MD_MAX_TOPICS 64

static void on_send(struct lane *l, const uint8_t *frame, size_t len)
{
    struct run *R = g_run;
    (void)l;
    int16_t api = kbe16(frame + 4);
    if (api == KAPI_InitProducerId)
        return; /* checked when answered */
    if (api == KAPI_Metadata) {
        kreq_hdr_t h;
        kstr_t topics[MD_MAX_TOPICS];
        metadata_topics(frame, len, &h, topics, MD_MAX_TOPICS);
        return;
    }
    kreq_hdr_t h;
    kproduce_req_t rq;
    struct ebatch *b;
    size_t n = engine_batches(R, frame, len, &h, &rq, &b);
    if (rq.acks != -1 || rq.transactional_id.len != -1)
        die("the engine's ProduceRequest is not acks=-1 without a transactional id");
    R->stamp++;
    for (size_t i = 0; i < n; i++) {
        if (R->parts[b[i].part].seen == R->stamp)
            die("two batches of one partition in a ProduceRequest");
        R->parts[b[i].part].seen = R->stamp;
    }
    for (size_t i = 0; i < n; i++)
        check_sent_batch(R, &b[i]);
    free(b);
    kproduce_req_free(&rq);
}

enum know { K_SUCCESS, K_AMBIGUOUS, K_NOT_WRITTEN };

/* What the engine learns of one attempt. */
static void learn(struct run *R, const struct ebatch *b, enum know k, int applied, uint32_t entry)
{
    struct triple *t = triple_find(R, b->part, b->pid, b->epoch, b->seq, b->count);
    if (!t || !t->pending)
        die("harness: an answer for an attempt never sent");
    t->pending--;
    if (applied != APPLY_NOT || k != K_NOT_WRITTEN)
        t->maybe_written = 1;
    if (k == K_SUCCESS)
        R->log[entry].acked = 1;
}

static int16_t class_code(uint8_t c, int cls)
{
    static const int16_t fail[] = {6, 3, 5, 74, 75, 56, 14, 2, 10, 18, 21, 29, 87, 76, 43, 15};
    static const int16_t reset[] = {45, 47, 59, 90};
    static const int16_t retry[] = {7, 13, 19};
    static const int16_t retry_written[] = {7, 13, 20};
    switch (cls) {
    case 0:
        return fail[c % 16];
    case 1:
        return reset[c % 4];
    case 2:
        return retry[c % 3];
    default:
        return retry_written[c % 3];
    }
}

static int is_retriable(int16_t e)
{
    return e == 7 || e == 13 || e == 19 || e == 20;
}

/*
 * One partition's outcome: applies it to the cluster (or not) and fills
 * the partition response p. Returns 0 normally, 1 to leave the partition
 * out of the response, 2 to put it in twice.
 */
static int answer_batch(struct run *R, const struct ebatch *b, struct in *in, int malformed,
                        kproduce_presp_t *p)
{
    uint8_t m = in_u8(in);
    int mode = m % 16, dup46 = (m >> 4) & 1, shape = 0;
    int16_t err = 0;
    int64_t offset = -1;
    uint32_t entry = 0;
    int applied = APPLY_NOT;
    enum know k;
    if (mode >= 8 && mode <= 10) {
        err = class_code(in_u8(in), mode - 8);
        k = is_retriable(err) ? K_AMBIGUOUS : K_NOT_WRITTEN;
    } else if (mode == 14) {
        err = (int16_t)(in_u8(in) | in_u8(in) << 8);
        if (err == 0 || err == 46)
            err = 1;
        k = is_retriable(err) ? K_AMBIGUOUS : K_NOT_WRITTEN;
    } else {
        applied = broker_apply(R, b, dup46, &err, &offset, &entry);
        k = applied != APPLY_NOT ? K_SUCCESS : K_NOT_WRITTEN;
        if (mode == 11 && applied != APPLY_NOT) {
            err = class_code(in_u8(in), 3);
            offset = -1;
            k = K_AMBIGUOUS;
        }
        if (mode == 12 || mode == 13)
            shape = mode - 11;
    }
    if (malformed || shape == 1)
        k = K_AMBIGUOUS;
    learn(R, b, k, applied, entry);
    memset(p, 0, sizeof(*p));
    trace("  answer %s-%d seq %d: ErrorCode %d offset %lld (%s%s)\n", R->parts[b->part].topic,
          (int)R->parts[b->part].partition, (int)b->seq, (int)err, (long long)offset,
          applied == APPLY_APPEND ? "appended"
          : applied == APPLY_DUP  ? "duplicate"
                                  : "not written",
          malformed    ? ", malformed"
          : shape == 1 ? ", left out"
                       : "");
    p->index = R->parts[b->part].partition;
    p->error_code = err;
    p->base_offset = offset;
    p->log_append_time_ms = (m & 0x40) ? (int64_t)R->now : -1;
    p->log_start_offset = (m & 0x80) ? 0 : -1;
    p->error_message = (kstr_t){NULL, -1};
    return shape;
}

/*
 * A broker's InitProducerId for the engine's request (frame with prefix):
 * a KIP-360 bump of the current epoch when asked and allowed (not when
 * `fresh`), else a new id, at epoch 0 or near INT16_MAX (fresh & 0x1e).
 */
static void pid_issue(struct run *R, const uint8_t *frame, size_t len, uint8_t fresh,
                      kinitpid_resp_t *r)
{
    kreq_hdr_t h;
    kinitpid_req_t rq;
    const char *err;
    if (kproto_parse_request_header(frame + 4, len - 4, &h, &err) ||
        h.api_key != KAPI_InitProducerId ||
        kinitpid_req_parse(h.api_version, frame + 4 + h.body_off, len - 4 - h.body_off, &rq) ||
        rq.transactional_id.len != -1)
        die("the engine sent a malformed InitProducerId");
    memset(r, 0, sizeof(*r));
    r->correlation_id = h.correlation_id;
    struct issued *is = rq.producer_id >= 0 ? pid_find(R, rq.producer_id) : NULL;
    if (rq.producer_id >= 0 &&
        (!is || rq.producer_epoch > is->epoch || (rq.producer_epoch < is->epoch && !is->lost)))
        die("an epoch bump for a producer id or epoch the engine does not hold");
    if (is && rq.producer_epoch < is->epoch)
        is = NULL; /* a bump whose answer was lost, asked again: a new id, as
                    * Kafka gives for a null transactional id */
    if (is && !(fresh & 1) && is->epoch < INT16_MAX - 1) {
        is->epoch++;
        trace("  InitProducerId: bump %lld to epoch %d\n", (long long)is->pid, (int)is->epoch);
        r->producer_id = is->pid;
        r->producer_epoch = is->epoch;
        return;
    }
    is = PUSH(R->pids, R->npids, R->cappids);
    is->pid = R->next_pid++;
    is->epoch = (fresh & 0x1e) == 0x1e ? (int16_t)(INT16_MAX - 1 - (fresh >> 7)) : 0;
    hmap_put(&R->m_pid, key4(2, (uint64_t)is->pid, 0, 0), (uint32_t)(R->npids - 1));
    r->producer_id = is->pid;
    r->producer_epoch = is->epoch;
    trace("  InitProducerId: new id %lld epoch %d\n", (long long)is->pid, (int)is->epoch);
}

/* A request that never gets its answer: maybe processed, then lost. */
static void lose_request(struct run *R, const uint8_t *frame, size_t len, int process)
{
    int16_t api = kbe16(frame + 4);
    if (api == KAPI_Metadata)
        return;
    if (api == KAPI_InitProducerId) {
        if (process) {
            kinitpid_resp_t r;
            pid_issue(R, frame, len, 0, &r);
            pid_find(R, r.producer_id)->lost = 1;
        }
        return;
    }
    kreq_hdr_t h;
    kproduce_req_t rq;
    struct ebatch *b;
    size_t n = engine_batches(R, frame, len, &h, &rq, &b);
    for (size_t i = 0; i < n; i++) {
        int16_t err;
        int64_t off;
        uint32_t entry = 0;
        int applied = process ? broker_apply(R, &b[i], 0, &err, &off, &entry) : APPLY_NOT;
        learn(R, &b[i], K_AMBIGUOUS, applied, entry);
        trace("  lost %s-%d seq %d (%s)\n", R->parts[b[i].part].topic,
              (int)R->parts[b[i].part].partition, (int)b[i].seq,
              applied == APPLY_APPEND ? "appended" : "not written");
    }
    free(b);
    kproduce_req_free(&rq);
}

/* The lane fails all it has pending (lost connection, overdue, or a
 * response for the wrong correlation id); the broker processed the first
 * `process` of them. */
static void fail_lane(struct run *R, struct lane *l, size_t process)
{
    size_t n = fake_lane_npending(l);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *f = fake_lane_pending(l, i, &len);
        lose_request(R, f, len, i < process);
    }
    fake_lane_fail(l);
}

/* Hands a response built in w to the oldest request of l, maybe cut short
 * (malformed: at least the correlation id is left). */
static void deliver(struct lane *l, kwriter_t *w, int malformed, uint8_t cut)
{
    if (w->err)
        abort();
    size_t len = w->len - 4;
    if (malformed)
        len = 4 + (len - 4) * cut / 256;
    fake_lane_answer(l, w->buf + 4, len);
    kw_free(w);
}

static void answer_pid(struct run *R, struct lane *l, const uint8_t *frame, size_t len,
                       struct in *in)
{
    uint8_t m = in_u8(in), x = in_u8(in);
    kinitpid_resp_t r;
    int16_t ver = kbe16(frame + 6);
    switch (m % 8) {
    case 4: {
        static const int16_t codes[] = {49, 15, 7, 51, 53, 1, 47, 90};
        kreq_hdr_t h;
        const char *err;
        if (kproto_parse_request_header(frame + 4, len - 4, &h, &err))
            die("the engine sent a malformed InitProducerId");
        memset(&r, 0, sizeof(r));
        r.correlation_id = h.correlation_id;
        r.error_code = codes[x % 8];
        r.producer_id = r.producer_epoch = -1;
        break;
    }
    case 5:
        pid_issue(R, frame, len, x, &r);
        pid_find(R, r.producer_id)->lost = 1; /* the engine cannot use the answer */
        if (x & 1)
            r.producer_id = -1;
        else
            r.producer_epoch = -1;
        break;
    case 7:
        fail_lane(R, l, m & 0x10 ? 1 : 0);
        return;
    default:
        pid_issue(R, frame, len, m % 8 == 3 ? x : 0, &r);
        if (m % 8 == 6)
            pid_find(R, r.producer_id)->lost = 1; /* malformed below */
        break;
    }
    kwriter_t w;
    kw_init(&w, 64);
    if (kinitpid_resp_write(&w, ver, &r))
        abort();
    deliver(l, &w, m % 8 == 6, x);
}

/* Partitions in each topic of a Metadata answer (the harness's go up to 63). */
#define MD_PARTITIONS 64

/*
 * A broker's Metadata answer for the engine's request, in its version:
 * the three brokers, and each topic asked for with MD_PARTITIONS
 * partitions whose leader is one of them, or (by the input) a broker
 * eosproxy does not know, none (LEADER_NOT_AVAILABLE), the topic unknown;
 * or the answer malformed or lost.
 */
static void answer_metadata(struct run *R, struct lane *l, const uint8_t *frame, size_t len,
                            struct in *in)
{
    uint8_t m = in_u8(in), x = in_u8(in);
    int mode = m % 8;
    if (mode == 7) {
        fail_lane(R, l, 0);
        return;
    }
    kreq_hdr_t h;
    kstr_t topics[MD_MAX_TOPICS];
    int32_t n = metadata_topics(frame, len, &h, topics, MD_MAX_TOPICS);
    int16_t ver = h.api_version;
    int flex = ver >= 9;
    static const uint8_t zero_id[16];
    kwriter_t w;
    kw_init(&w, 1024);
    size_t start = w.len;
    kw_i32(&w, 0);
    kw_i32(&w, h.correlation_id);
    if (flex)
        kw_tags_empty(&w);
    if (ver >= 3)
        kw_i32(&w, 0);
    kw_array(&w, flex, (int32_t)g_px->nbrokers);
    for (size_t i = 0; i < g_px->nbrokers; i++) {
        const struct broker *b = g_px->brokers[i];
        kw_i32(&w, b->node_id);
        kw_str(&w, flex, b->host, (int32_t)strlen(b->host));
        kw_i32(&w, b->port);
        kw_str(&w, flex, NULL, -1);
        if (flex)
            kw_tags_empty(&w);
    }
    if (ver >= 2)
        kw_str(&w, flex, NULL, -1);
    kw_i32(&w, 1);
    kw_array(&w, flex, n);
    for (int32_t i = 0; i < n; i++) {
        int unknown = mode == 5 && (x & 1);
        kw_i16(&w, unknown ? 3 : 0);
        kw_kstr(&w, flex, topics[i]);
        if (ver >= 10)
            kw_raw(&w, zero_id, sizeof(zero_id));
        kw_i8(&w, 0);
        kw_array(&w, flex, unknown ? 0 : MD_PARTITIONS);
        for (int32_t j = 0; !unknown && j < MD_PARTITIONS; j++) {
            int32_t leader = 1 + (int32_t)((x + (uint32_t)j) % NBROKERS);
            if (mode == 3 && (j + x) % 4 == 0)
                leader = NBROKERS + 1 + x % 4; /* not known to eosproxy */
            if (mode == 4 && (j + x) % 2 == 0)
                leader = -1;
            kw_i16(&w, leader < 0 ? 5 : (mode == 5 && j % 3 == 0) ? 9 : 0);
            kw_i32(&w, j);
            kw_i32(&w, leader);
            if (ver >= 7)
                kw_i32(&w, 7);
            for (int k = 0; k < 2; k++) {
                kw_array(&w, flex, 1);
                kw_i32(&w, leader);
            }
            if (ver >= 5)
                kw_array(&w, flex, 0);
            if (flex)
                kw_tags_empty(&w);
        }
        if (ver >= 8)
            kw_i32(&w, 0);
        if (flex)
            kw_tags_empty(&w);
    }
    if (ver >= 8 && ver <= 10)
        kw_i32(&w, 0);
    if (flex)
        kw_tags_empty(&w);
    if (kw_finish_frame(&w, start))
        abort();
    trace("  Metadata v%d: %d topic(s), mode %d\n", (int)ver, (int)n, mode);
    deliver(l, &w, mode == 6, x);
}

/* Topics and each topic's partitions in the reverse order (a broker need
 * not answer in the request's order). */
static void reverse_response(kproduce_resp_t *r)
{
    for (int32_t i = 0; i < r->ntopics / 2; i++) {
        kproduce_tresp_t t = r->topics[i];
        r->topics[i] = r->topics[r->ntopics - 1 - i];
        r->topics[r->ntopics - 1 - i] = t;
    }
    for (int32_t i = 0; i < r->ntopics; i++) {
        kproduce_presp_t *p = r->topics[i].partitions;
        for (int32_t j = 0, n = r->topics[i].npartitions; j < n / 2; j++) {
            kproduce_presp_t x = p[j];
            p[j] = p[n - 1 - j];
            p[n - 1 - j] = x;
        }
    }
}

static void answer_produce(struct run *R, struct lane *l, const uint8_t *frame, size_t len,
                           struct in *in)
{
    uint8_t m = in_u8(in), x = in_u8(in);
    int whole = m % 8;
    if (whole == 4 || whole == 6) {
        /* Lost, or answered for the wrong correlation id: lane.c fails
         * the lane either way. */
        fail_lane(R, l, x % 4);
        return;
    }
    kreq_hdr_t h;
    kproduce_req_t rq;
    struct ebatch *b;
    size_t n = engine_batches(R, frame, len, &h, &rq, &b);
    kproduce_tresp_t *topics = calloc(rq.ntopics ? (size_t)rq.ntopics : 1, sizeof(*topics));
    kproduce_presp_t *parts = calloc(2 * n + 1, sizeof(*parts));
    if (!topics || !parts)
        abort();
    kproduce_resp_t resp = {h.correlation_id, rq.ntopics, topics, (int32_t)(x & 3)};
    size_t k = 0, np = 0;
    for (int32_t i = 0; i < rq.ntopics; i++) {
        topics[i].name = rq.topics[i].name;
        topics[i].partitions = &parts[np];
        for (int32_t j = 0; j < rq.topics[i].npartitions; j++, k++) {
            kproduce_presp_t p;
            int shape = answer_batch(R, &b[k], in, whole == 5, &p);
            if (shape == 1)
                continue;
            parts[np++] = p;
            topics[i].npartitions++;
            if (shape == 2) {
                parts[np++] = p;
                topics[i].npartitions++;
            }
        }
    }
    if (whole == 7)
        reverse_response(&resp);
    kwriter_t w;
    kw_init(&w, 256);
    if (kproduce_resp_write(&w, h.api_version, &resp))
        abort();
    free(topics);
    free(parts);
    free(b);
    kproduce_req_free(&rq);
    deliver(l, &w, whole == 5, x);
}

/* 1 if node_id is a broker the proxy knows (else lane.c cannot connect). */
static int known_node(int32_t node_id)
{
    for (size_t i = 0; i < g_px->nbrokers; i++)
        if (g_px->brokers[i]->node_id == node_id)
            return 1;
    return 0;
}

/* The broker answers l's oldest request; in NULL: normally. */
static void answer_oldest(struct run *R, struct lane *l, struct in *in)
{
    size_t len;
    const uint8_t *f = fake_lane_pending(l, 0, &len);
    if (!f)
        return;
    if (!known_node(lane_node_id(l))) {
        fail_lane(R, l, 0); /* lane.c: "broker unknown" */
        return;
    }
    if (kbe16(f + 4) == KAPI_InitProducerId)
        answer_pid(R, l, f, len, in);
    else if (kbe16(f + 4) == KAPI_Metadata)
        answer_metadata(R, l, f, len, in);
    else
        answer_produce(R, l, f, len, in);
}

/* Answers everything pending, normally, and what the engine sends in
 * return, until the lanes are quiet (no time passes). */
static void answer_all(struct run *R)
{
    for (size_t answered = 0;;) {
        size_t before = answered;
        for (size_t i = 0; i < fake_lane_count(); i++) {
            struct lane *l = fake_lane_at(i);
            for (size_t n = fake_lane_npending(l); n > 0 && fake_lane_npending(l) > 0; n--) {
                answer_oldest(R, l, NULL);
                answered++;
            }
        }
        if (answered == before)
            return;
        if (answered > MAX_ANSWERS)
            die("the engine keeps sending while no time passes");
        run_loop();
    }
}

/* ---------------------------------------------------------------- operations */

static struct lane *pick_lane(struct in *in)
{
    uint8_t b = in_u8(in);
    size_t n = fake_lane_count();
    return n ? fake_lane_at(b % n) : NULL;
}

static void op_advance(struct run *R, struct in *in)
{
    static const uint64_t steps[8] = {10, 60, 120, 1000, 30000, 61000, 130000, 660000};
    advance(R, steps[in_u8(in) % 8]);
}

static void op_disconnect(struct run *R, struct in *in)
{
    int c = in_u8(in) % NCLIENTS;
    R->client_ids[c] = R->next_client_id++;
    R->tokens[c] = 0;
    R->paused[c] = 0;
}

/* One operation; returns 0 once the engine has been freed. */
static int op(struct run *R, struct in *in)
{
    struct lane *l;
    uint8_t code = in_u8(in);
    switch (code % 16) {
    case 0:
    case 1:
    case 2:
    case 3:
        op_submit(R, in);
        break;
    case 4:
    case 5:
    case 6:
        if ((l = pick_lane(in)))
            answer_oldest(R, l, in);
        break;
    case 7:
        if ((l = pick_lane(in)))
            fail_lane(R, l, in_u8(in) % 3);
        break;
    case 8:
        op_advance(R, in);
        break;
    case 9:
        op_resend(R, in);
        break;
    case 10:
        fake_lane_refuse(1 + in_u8(in) % 4);
        break;
    case 11:
        op_disconnect(R, in);
        break;
    case 12:
        if (code == 12) /* only this byte: the large cases are slow */
            op_blast(R, in);
        break;
    case 13:
        return 0;
    case 14:
        answer_all(R);
        break;
    default:
        break;
    }
    run_loop();
    return 1;
}

/* ---------------------------------------------------------------- one input */

static void set_bounds(struct upgrade_opts *o, uint8_t profile)
{
    switch (profile % 4) {
    case 1: /* tiny: every bound within a few operations */
        *o = (struct upgrade_opts){.max_requests = 6,
                                   .max_bytes = 3000,
                                   .high_bytes = 1500,
                                   .low_bytes = 400,
                                   .max_partitions = 5,
                                   .fpc_entries = 6,
                                   .lane_max_bytes = 1200,
                                   .flight_bytes = 300,
                                   .fpc_ttl_ms = 5000,
                                   .delivery_timeout_ms = 3000};
        break;
    case 2:
        *o = (struct upgrade_opts){.max_requests = 64,
                                   .max_bytes = 64 << 10,
                                   .high_bytes = 16 << 10,
                                   .low_bytes = 4 << 10,
                                   .max_partitions = 40,
                                   .fpc_entries = 64,
                                   .lane_max_bytes = 16 << 10,
                                   .flight_bytes = 2048,
                                   .fpc_ttl_ms = 60000,
                                   .delivery_timeout_ms = 20000};
        break;
    case 3:
        *o = (struct upgrade_opts){.fpc_ttl_ms = 30000, .delivery_timeout_ms = 10000};
        break;
    default:
        *o = (struct upgrade_opts){0};
        break;
    }
    o->now_ms = fake_now;
    o->slot_done = on_slot_done;
    o->resume = on_resume;
}

/* Every (partition, content): appended no more often than submitted plus
 * the appends whose success never reached the engine. */
static void check_appends(struct run *R)
{
    for (size_t i = 0; i < R->nlog; i++)
        if (!R->log[i].acked)
            cstat_get(R, R->log[i].part, R->log[i].content)->unacked++;
    for (size_t i = 0; i < R->ncstats; i++) {
        const struct cstat *c = &R->cstats[i];
        if (c->appends > c->subs + c->unacked)
            die("a batch the broker acknowledged was written again");
    }
}

/*
 * Per client and partition, the batches answered 0 were first written in
 * the order the client sent them (as a producer's own idempotence keeps
 * them). Only content submitted once counts: an equal batch cannot be
 * told apart, by the engine or here.
 */
static void check_order(struct run *R)
{
    struct hmap last = {0};
    int64_t *offs = NULL;
    size_t noffs = 0, capoffs = 0;
    for (size_t i = 0; i < R->nreqs; i++) {
        const struct creq *q = &R->reqs[i];
        for (uint32_t k = 0; k < q->nslots; k++) {
            const struct cslot *s = &R->slots[q->first_slot + k];
            uint32_t *v = hmap_find(&R->m_content, key4(1, s->part, s->content, 0));
            if (s->expect >= 0 || s->result != 0 || !v || R->cstats[*v].subs != 1)
                continue;
            int64_t off = R->cstats[*v].first_offset;
            uint64_t key = key4(8, q->client_id, s->part, 0);
            uint32_t *l = hmap_find(&last, key);
            if (l && offs[*l] >= off)
                die("a client's batches to a partition written out of order");
            if (l) {
                offs[*l] = off;
            } else {
                *PUSH(offs, noffs, capoffs) = off;
                hmap_put(&last, key, (uint32_t)(noffs - 1));
            }
        }
    }
    free(offs);
    hmap_free(&last);
}

/* The cluster answers everything until every request has completed. */
static void drain(struct run *R, uint64_t delivery_ms)
{
    uint64_t turns = (delivery_ms + UPG_DRAIN_SLACK_MS) / DRAIN_STEP_MS;
    for (uint64_t t = 0; R->completed < R->accepted; t++) {
        if (t > turns)
            die("requests still unanswered long after the delivery timeout");
        answer_all(R);
        advance(R, DRAIN_STEP_MS);
    }
    if (upgrade_busy(R->u))
        die("busy with nothing held");
    for (int c = 0; c < NCLIENTS; c++)
        if (R->paused[c])
            die("a paused client was never resumed");
}

static void free_run(struct run *R)
{
    for (size_t i = 0; i < R->nparts; i++) {
        free(R->parts[i].topic);
        free(R->parts[i].prods);
    }
    for (size_t i = 0; i < R->nreqs; i++)
        free(R->reqs[i].frame);
    for (size_t i = 0; i < R->nlb; i++)
        free(R->lb[i].bytes);
    free(R->parts);
    free(R->log);
    free(R->triples);
    free(R->cstats);
    free(R->slots);
    free(R->reqs);
    free(R->lb);
    free(R->pids);
    hmap_free(&R->m_part);
    hmap_free(&R->m_triple);
    hmap_free(&R->m_start);
    hmap_free(&R->m_offset);
    hmap_free(&R->m_content);
    hmap_free(&R->m_req);
    hmap_free(&R->m_pid);
    hmap_free(&R->m_pe);
    free(R->pes);
    free(R);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size, 0};
    uint8_t h0 = in_u8(&in), h1 = in_u8(&in), h2 = in_u8(&in);
    struct run *R = calloc(1, sizeof(*R));
    if (!R)
        abort();
    g_run = R;
    R->now = 1000000 + (uint64_t)h2 * 7919;
    R->next_pid = 1000;
    R->next_client_id = 1 + NCLIENTS;
    for (int c = 0; c < NCLIENTS; c++)
        R->client_ids[c] = (uint64_t)c + 1;
    g_px->versions[KAPI_Produce] = (kver_range_t){0, (int16_t)(3 + h0 % 7)};
    g_px->versions[KAPI_InitProducerId] = (kver_range_t){0, (int16_t)((h0 >> 3) % 5)};
    g_px->versions[KAPI_Metadata] = (kver_range_t){0, (int16_t)(h2 % 13)};
    struct upgrade_opts o;
    set_bounds(&o, h1);
    R->u = upgrade_new_opts(g_px, &o);
    if (!R->u)
        abort();
    event_base_foreach_event(g_base, find_tick, R);
    if (!R->tick)
        die("harness: the engine's tick not found");
    event_del(R->tick);
    int alive = 1;
    while (in.off < in.n && alive)
        alive = op(R, &in);
    if (alive)
        drain(R, o.delivery_timeout_ms ? o.delivery_timeout_ms : 120000);
    upgrade_free(R->u);
    R->freed = 1;
    run_loop();
    if (fake_lane_count() != 0)
        die("a lane outlived upgrade_free");
    check_appends(R);
    check_order(R);
    free_run(R);
    g_run = NULL;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char yaml[] = "upstream:\n"
                               "  bootstrap: 127.0.0.1:9092\n"
                               "topics:\n"
                               "  - match: \"*\"\n"
                               "    delivery: idempotent\n";
    char err[256];
    const char *lvl = getenv("FUZZ_UPGRADE_LOG");
    enum log_level level = LOG_ERROR;
    if (lvl && log_level_parse(lvl, &level))
        level = LOG_ERROR;
    log_setup(level, 0);
    g_trace = getenv("FUZZ_UPGRADE_TRACE") != NULL;
    g_base = event_base_new();
    g_cfg = config_load_string("fuzz_upgrade", yaml, sizeof(yaml) - 1, err, sizeof(err));
    if (!g_base || !g_cfg) {
        fprintf(stderr, "fuzz_upgrade: setup: %s\n", g_cfg ? "event_base_new" : err);
        abort();
    }
    for (size_t i = 0; i < NTOPICS; i++)
        if (policy_delivery(g_cfg->policy, topic_names[i], strlen(topic_names[i])) !=
            DELIVERY_IDEMPOTENT)
            abort();
    g_px = calloc(1, sizeof(*g_px));
    if (!g_px)
        abort();
    g_px->cfg = g_cfg;
    g_px->base = g_base;
    TAILQ_INIT(&g_px->clients);
    g_px->draining = 1; /* proxy_broker_learn opens no listener */
    for (int32_t i = 0; i < NBROKERS; i++)
        if (!proxy_broker_learn(g_px, i + 1, "127.0.0.1", 9, 9092 + i))
            abort();
    g_px->draining = 0;
    fake_lane_on_send = on_send;
    return 0;
}
