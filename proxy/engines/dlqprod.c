/*
 * dlqprod.c - producer-path dead-letter routing. See dlqprod.h.
 *
 * A request that fails the rule's checks becomes a plan: owned copies of
 * its topics and partitions, each partition either kept (its records as
 * they go upstream, possibly re-encoded without the failing records) or
 * taken out with the ErrorCode eosproxy answers for it. The plan is
 * written back as a ProduceRequest (kproduce_req_write) and its answers
 * are merged into the response (dlqprod_resp_write).
 *
 * A request whose batches are kept for the response (on_produce_error
 * dlq) carries copies of them in its dlqprod_req, attached to the
 * client's FIFO slot. When the response names one of them refused for
 * good, the engine takes the request: every record of that batch goes to
 * the "rewriter" (a dlqw writer with DLQW_ONE_BY_ONE) for the same topic
 * and partition; the records refused again go to the DLQ through
 * px->dlqw. The last write's report builds the client's response.
 *
 * Each write in flight has a dp_write (the callback's argument) listed in
 * its request, so dlqprod_shutdown can cancel them all. Requests the
 * engine owns (held for DLQ writes, or rewriting) are listed in the engine.
 */
#include "dlqprod.h"

#include "policy.h"
#include "clock.h"
#include "dlqw.h"
#include "kdlt.h"
#include "kerror.h"
#include "krecord.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

/* Scratch for unescaping a JSON eventId (as dedup.c). */
#define DP_SCRATCH 4096
/* At most one log line per kind this often. */
#define DP_LOG_EVERY_MS 10000u

/* ---- pure parts ---- */

int dlqprod_classify(const krec_t *r, int src, const char *name)
{
    static uint8_t scratch[DP_SCRATCH];
    kbytes_t id;
    if (krecords_event_id(r, src, name, &id, scratch, sizeof(scratch)))
        return DLQPROD_OK;
    if (src == KRECORDS_ID_JSON &&
        (r->value.len <= 0 || !krecords_json_valid(r->value.ptr, (size_t)r->value.len)))
        return DLQPROD_NOT_JSON;
    return DLQPROD_NO_EVENT_ID;
}

int dlqprod_is_refusal(int16_t error_code)
{
    return error_code == KERR_CORRUPT_MESSAGE || error_code == KERR_MESSAGE_TOO_LARGE ||
           error_code == KERR_POLICY_VIOLATION || error_code == KERR_INVALID_RECORD;
}

const char *dlqprod_error_name(int16_t error_code)
{
    switch (error_code) {
    case KERR_CORRUPT_MESSAGE:
        return "CORRUPT_MESSAGE";
    case KERR_MESSAGE_TOO_LARGE:
        return "MESSAGE_TOO_LARGE";
    case KERR_POLICY_VIOLATION:
        return "POLICY_VIOLATION";
    case KERR_INVALID_RECORD:
        return "INVALID_RECORD";
    default:
        return "ERROR";
    }
}

/* Bytes of v as a zigzag varint (Kafka's varlong). */
static size_t varlong_size(int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;
    while (z >= 0x80) {
        z >>= 7;
        n++;
    }
    return n;
}

/*
 * Appends record r (length prefix included) with offsetDelta delta: the
 * record is
 *   length varint, attributes INT8, timestampDelta varlong,
 *   offsetDelta varint, keyLength varint, key, valueLength varint, value,
 *   headers count varint, headers
 * and everything after offsetDelta is copied as it is. *ts_delta gets its
 * timestampDelta. Returns 0, or -1 if r is malformed.
 */
static int append_renumbered(kwriter_t *w, const krec_t *r, int32_t delta, int64_t *ts_delta)
{
    kreader_t rd;
    kr_init(&rd, r->raw, r->raw_len);
    int8_t attrs = kr_i8(&rd);
    int64_t tsd = kr_varlong(&rd);
    kr_varint(&rd);
    if (!kr_ok(&rd))
        return -1;
    size_t rest = rd.len - rd.off;
    size_t body = 1 + varlong_size(tsd) + varlong_size(delta) + rest;
    if (body > INT32_MAX)
        return -1;
    kw_varint(w, (int32_t)body);
    kw_i8(w, attrs);
    kw_varlong(w, tsd);
    kw_varint(w, delta);
    kw_raw(w, rd.buf + rd.off, rest);
    *ts_delta = tsd;
    return w->err ? -1 : 0;
}

int dlqprod_rebatch(kwriter_t *w, const krecords_batch_t *b, const uint8_t *keep)
{
    size_t start = w->len;
    kwriter_t recs;
    kw_init(&recs, b->inflated_len ? b->inflated_len : 1024);
    int32_t kept = 0;
    int64_t max_ts = INT64_MIN;
    for (int32_t i = 0; i < b->nrecords; i++) {
        int64_t tsd = 0;
        if (!keep[i])
            continue;
        if (append_renumbered(&recs, &b->records[i], kept, &tsd)) {
            kw_free(&recs);
            return -1;
        }
        if (b->hdr.base_timestamp + tsd > max_ts)
            max_ts = b->hdr.base_timestamp + tsd;
        kept++;
    }
    if (kept == 0) {
        kw_free(&recs);
        return -1;
    }
    krecord_batch_t hdr = b->hdr;
    hdr.last_offset_delta = kept - 1;
    if (!(hdr.attributes & KRECORD_ATTR_TIMESTAMP_TYPE))
        hdr.max_timestamp = max_ts;
    int rc = krecords_write_batch(w, &hdr, b->hdr.attributes, kept, recs.buf, recs.len);
    kw_free(&recs);
    if (rc && !w->err)
        w->len = start;
    return rc;
}

/* The index of topic name[0..len) among t[0..n), or -1. */
static int32_t find_topic(const kproduce_tresp_t *t, int32_t n, const char *name, size_t len)
{
    for (int32_t i = 0; i < n; i++) {
        if (t[i].name.len >= 0 && (size_t)t[i].name.len == len &&
            memcmp(t[i].name.ptr, name, len) == 0)
            return i;
    }
    return -1;
}

/* Sets p to answer a. */
static void set_answer(kproduce_presp_t *p, const dlqprod_answer_t *a)
{
    p->index = a->partition;
    p->error_code = a->error_code;
    p->base_offset = a->base_offset;
    p->log_append_time_ms = -1;
    p->nrecord_errors = 0;
    p->record_errors = NULL;
    p->error_message.ptr = NULL;
    p->error_message.len = -1;
}

/* Puts answer a into topic t, which has room for it. */
static void place_answer(kproduce_tresp_t *t, const dlqprod_answer_t *a)
{
    for (int32_t i = 0; i < t->npartitions; i++) {
        if (t->partitions[i].index == a->partition) {
            set_answer(&t->partitions[i], a);
            return;
        }
    }
    kproduce_presp_t *p = &t->partitions[t->npartitions++];
    p->log_start_offset = -1;
    set_answer(p, a);
}

int dlqprod_resp_write(kwriter_t *w, int16_t ver, const kproduce_resp_t *base, int32_t corr,
                       const dlqprod_answer_t *ans, size_t n)
{
    int32_t nt0 = base ? base->ntopics : 0;
    size_t cap = (size_t)nt0 + n + 1;
    kproduce_tresp_t *topics = calloc(cap, sizeof(*topics));
    size_t *extra = calloc(cap, sizeof(*extra));
    int32_t *tix = calloc(n + 1, sizeof(*tix));
    int32_t nt = nt0;
    int rc = -1;
    if (!topics || !extra || !tix)
        goto out;
    for (int32_t t = 0; t < nt0; t++)
        topics[t].name = base->topics[t].name;
    for (size_t i = 0; i < n; i++) {
        int32_t j = find_topic(topics, nt, ans[i].topic, ans[i].topic_len);
        if (j < 0) {
            j = nt++;
            topics[j].name.ptr = ans[i].topic;
            topics[j].name.len = (int32_t)ans[i].topic_len;
        }
        tix[i] = j;
        extra[j]++;
    }
    for (int32_t t = 0; t < nt; t++) {
        int32_t np0 = t < nt0 ? base->topics[t].npartitions : 0;
        topics[t].partitions = calloc((size_t)np0 + extra[t] + 1, sizeof(kproduce_presp_t));
        if (!topics[t].partitions)
            goto out;
        if (np0)
            memcpy(topics[t].partitions, base->topics[t].partitions,
                   (size_t)np0 * sizeof(kproduce_presp_t));
        topics[t].npartitions = np0;
    }
    for (size_t i = 0; i < n; i++)
        place_answer(&topics[tix[i]], &ans[i]);
    kproduce_resp_t out = {.correlation_id = base ? base->correlation_id : corr,
                           .ntopics = nt,
                           .topics = topics,
                           .throttle_time_ms = base ? base->throttle_time_ms : 0};
    rc = kproduce_resp_write(w, ver, &out);
out:
    for (int32_t t = 0; topics && t < nt; t++)
        free(topics[t].partitions);
    free(topics);
    free(extra);
    free(tix);
    return rc;
}

/* ---- the engine's data ---- */

/* One partition of a plan. */
struct dp_part {
    int32_t index;
    uint8_t *records; /* owned: what goes upstream (NULL: null records, or taken out) */
    int32_t len;      /* -1: null */
    int removed;      /* taken out of the request; err answers it */
    int16_t err;
    int emptied;    /* every record went to the DLQ: answered 0 once they are there */
    int dlq_failed; /* a DLQ write failed or was refused: answered 87 */
};

struct dp_topic {
    char *name;
    size_t len;
    int32_t nparts;
    struct dp_part *parts;
};

/* A request rebuilt without what failed the checks. */
struct dp_plan {
    int16_t ver;
    int32_t corr;
    int acks;
    char *client_id; /* NULL: null */
    size_t client_id_len;
    char *txn_id; /* NULL: null */
    size_t txn_id_len;
    int16_t acks_field;
    int32_t timeout_ms;
    int32_t ntopics;
    struct dp_topic *topics;
};

/* A batch kept until the response. */
struct dp_kept {
    char *topic; /* NUL-terminated copy */
    size_t topic_len;
    int32_t partition;
    uint8_t *batch; /* owned copy of the records as sent */
    size_t len;
    char dlq[POLICY_TOPIC_MAX + 1];
    int16_t refused; /* the broker's ErrorCode when refused for good, else 0 */
    krecords_batch_t dec;
    int decoded;
    int failed; /* a write failed: the client gets the broker's error */
};

enum dp_write_kind {
    DPW_CHECK_DLQ = 1, /* a record that failed the checks, to the DLQ */
    DPW_REWRITE = 2,   /* a refused batch's record, to its own topic again */
    DPW_REFUSED_DLQ,   /* a record refused again, to the DLQ */
};

/* One write in flight: the argument of its dlqw callback. */
struct dp_write {
    TAILQ_ENTRY(dp_write) link;
    struct dlqprod_req *req;
    struct dlqw *w;
    uint64_t id;
    int kind;
    int32_t t, p; /* plan topic and partition (CHECK_DLQ), or kept index in p */
    int32_t rec;  /* record index in the kept batch (REWRITE) */
    enum dlq_reason reason;
};
TAILQ_HEAD(dp_writes, dp_write);

struct dlqprod_req {
    TAILQ_ENTRY(dlqprod_req) link; /* in the engine while it owns the request */
    struct dlqprod *dp;
    int engine_owned;
    uint64_t client_id, token;
    int has_plan;
    struct dp_plan plan;
    struct dp_kept *kept;
    size_t nkept;
    size_t kept_bytes; /* counted in dp->kept_bytes */
    uint8_t *resp;     /* the broker's response while rewriting */
    size_t resp_len;
    int16_t resp_ver;
    struct dp_writes writes;
    size_t pending;
};
TAILQ_HEAD(dp_reqs, dlqprod_req);

struct dlqprod {
    struct proxy *px;
    struct dlqprod_hooks hooks;
    struct dlqw *rewriter; /* DLQW_ONE_BY_ONE; made on first refusal */
    struct dp_reqs reqs;
    size_t kept_bytes;
    uint64_t last_log_ms[2];
};

/* 1 if the log line of kind may be written now (at most every 10 s). */
static int may_log(struct dlqprod *dp, int kind)
{
    uint64_t now = clock_ms();
    if (dp->last_log_ms[kind] && now - dp->last_log_ms[kind] < DP_LOG_EVERY_MS)
        return 0;
    dp->last_log_ms[kind] = now ? now : 1;
    return 1;
}

/* ---- requests ---- */

static struct dlqprod_req *req_new(struct dlqprod *dp)
{
    struct dlqprod_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->dp = dp;
    TAILQ_INIT(&r->writes);
    return r;
}

static void plan_free(struct dp_plan *p)
{
    for (int32_t t = 0; p->topics && t < p->ntopics; t++) {
        for (int32_t i = 0; i < p->topics[t].nparts; i++)
            free(p->topics[t].parts[i].records);
        free(p->topics[t].parts);
        free(p->topics[t].name);
    }
    free(p->topics);
    free(p->client_id);
    free(p->txn_id);
    memset(p, 0, sizeof(*p));
}

static void kept_free(struct dlqprod_req *r)
{
    for (size_t i = 0; i < r->nkept; i++) {
        if (r->kept[i].decoded)
            krecords_batch_free(&r->kept[i].dec);
        free(r->kept[i].topic);
        free(r->kept[i].batch);
    }
    free(r->kept);
    r->kept = NULL;
    r->nkept = 0;
    if (r->dp)
        r->dp->kept_bytes -= r->kept_bytes;
    r->kept_bytes = 0;
}

/* Frees r; its writes must be done or cancelled. */
static void req_destroy(struct dlqprod_req *r)
{
    struct dp_write *wr;
    while ((wr = TAILQ_FIRST(&r->writes))) {
        TAILQ_REMOVE(&r->writes, wr, link);
        dlqw_cancel(wr->w, wr->id);
        g_metrics.dlq_inflight--;
        free(wr);
    }
    if (r->engine_owned && r->dp)
        TAILQ_REMOVE(&r->dp->reqs, r, link);
    kept_free(r);
    if (r->has_plan)
        plan_free(&r->plan);
    free(r->resp);
    free(r);
}

void dlqprod_req_free(struct dlqprod_req *req)
{
    if (req)
        req_destroy(req);
}

/* The engine takes r (held or rewriting). */
static void engine_take(struct dlqprod_req *r)
{
    if (!r->engine_owned) {
        r->engine_owned = 1;
        TAILQ_INSERT_TAIL(&r->dp->reqs, r, link);
    }
}

/* The engine gives r back (hold_done). */
static void engine_release(struct dlqprod_req *r)
{
    if (r->engine_owned) {
        TAILQ_REMOVE(&r->dp->reqs, r, link);
        r->engine_owned = 0;
    }
}

/* ---- engine ---- */

struct dlqprod *dlqprod_new(struct proxy *px, const struct dlqprod_hooks *hooks)
{
    struct dlqprod *dp = calloc(1, sizeof(*dp));
    if (!dp) {
        log_error("dlq: out of memory for the producer-path engine");
        return NULL;
    }
    dp->px = px;
    dp->hooks = *hooks;
    TAILQ_INIT(&dp->reqs);
    return dp;
}

void dlqprod_free(struct dlqprod *dp)
{
    if (!dp)
        return;
    struct dlqprod_req *r;
    while ((r = TAILQ_FIRST(&dp->reqs)))
        req_destroy(r);
    dlqw_free(dp->rewriter);
    free(dp);
}

/* 1 if rule r asks for the require_event_id check. */
static int rule_checks(const policy_rule_t *r)
{
    return r && r->dedup.require_event_id && r->dedup.src != EVENTID_NONE;
}

/* 1 if rule r sends refused writes to the DLQ. */
static int rule_dlq(const policy_rule_t *r)
{
    return r && POLICY_HAS_DLQ(r) && r->dlq.on_produce_error == DLQ_ON_ERROR_DLQ;
}

int dlqprod_policy_active(const struct policy *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (rule_checks(&p->rules[i]) || rule_dlq(&p->rules[i]))
            return 1;
    }
    return 0;
}

/* ---- writing records ---- */

/*
 * Queues record i of b to topic/partition on w, with dlt headers (NULL:
 * none), the callback argument wr filled in and listed in its request.
 * Returns 0, or -1 when the writer refused it (*why says why).
 */
static void write_done(void *arg, uint64_t id, int err, const char *errstr, int64_t offset);

static int send_record(struct dp_write *wr, const char *topic, int32_t partition,
                       const krecords_batch_t *b, int32_t i, const kdlt_headers_t *dlt,
                       const char **why)
{
    const krec_t *r = &b->records[i];
    dlqw_header_t *hs = calloc((size_t)r->nheaders + 1, sizeof(*hs));
    if (!hs) {
        *why = "out of memory";
        return -1;
    }
    for (int32_t k = 0; k < r->nheaders; k++) {
        hs[k].name = r->headers[k].key.ptr;
        hs[k].name_len = (size_t)(r->headers[k].key.len < 0 ? 0 : r->headers[k].key.len);
        hs[k].value = r->headers[k].value.len >= 0 ? r->headers[k].value.ptr : NULL;
        hs[k].len = (size_t)(r->headers[k].value.len < 0 ? 0 : r->headers[k].value.len);
        if (hs[k].value == NULL && r->headers[k].value.len == 0)
            hs[k].value = (const uint8_t *)"";
    }
    static const uint8_t empty[1];
    dlqw_record_t rec = {
        .topic = topic,
        .partition = partition,
        .key = r->key.len >= 0 ? (r->key.ptr ? r->key.ptr : empty) : NULL,
        .key_len = (size_t)(r->key.len < 0 ? 0 : r->key.len),
        .value = r->value.len >= 0 ? (r->value.ptr ? r->value.ptr : empty) : NULL,
        .value_len = (size_t)(r->value.len < 0 ? 0 : r->value.len),
        .timestamp = b->hdr.base_timestamp + r->timestamp_delta,
        .headers = hs,
        .nheaders = (size_t)r->nheaders,
        .dlt = dlt,
    };
    uint64_t id = dlqw_send(wr->w, &rec, write_done, wr, why);
    free(hs);
    if (!id)
        return -1;
    wr->id = id;
    TAILQ_INSERT_TAIL(&wr->req->writes, wr, link);
    wr->req->pending++;
    g_metrics.dlq_inflight++;
    return 0;
}

/* The DLT headers of record i of b from topic/partition, for reason. */
static void dlt_for(const krecords_batch_t *b, int32_t i, const char *topic, size_t topic_len,
                    int32_t partition, const char *reason, kdlt_headers_t *out)
{
    kdlt_origin_t o = {
        .topic = topic,
        .topic_len = topic_len,
        .partition = partition,
        .offset = -1, /* never written to its topic: no offset */
        .timestamp = b->hdr.base_timestamp + b->records[i].timestamp_delta,
        .timestamp_type = (b->hdr.attributes & KRECORD_ATTR_TIMESTAMP_TYPE) ? 1 : 0,
        .reason = reason,
        .reason_len = strlen(reason),
    };
    kdlt_headers_build(&o, out);
}

/* ---- the checks ---- */

/* What the checks found in one partition. */
struct dp_found {
    int32_t t, p;
    krecords_batch_t dec;
    uint8_t *verdict; /* per record: enum dlqprod_verdict */
    int32_t failing;
    int to_dlq; /* on_produce_error dlq applies */
    const policy_rule_t *rule;
};

/* Checks one partition's records under rule; fills f when some fail.
 * Returns 1 if records fail, 0 if none (or it cannot tell). */
static int check_partition(const policy_rule_t *rule, kbytes_t rec, struct dp_found *f)
{
    const char *err = NULL;
    if (rec.len <= 0 || !rec.ptr)
        return 0;
    krecord_batch_t h;
    if (krecord_batch_parse(rec.ptr, (size_t)rec.len, &h, 0) != KREC_OK ||
        h.size != (size_t)rec.len)
        return 0; /* not exactly one v2 batch: the broker answers it */
    if (krecords_decode(rec.ptr, (size_t)rec.len, &f->dec, &err))
        return 0;
    f->verdict = calloc((size_t)f->dec.nrecords + 1, 1);
    if (!f->verdict) {
        krecords_batch_free(&f->dec);
        return 0;
    }
    f->failing = 0;
    for (int32_t i = 0; i < f->dec.nrecords; i++) {
        f->verdict[i] =
            (uint8_t)dlqprod_classify(&f->dec.records[i], (int)rule->dedup.src, rule->dedup.name);
        f->failing += f->verdict[i] != DLQPROD_OK;
    }
    if (f->failing)
        return 1;
    free(f->verdict);
    krecords_batch_free(&f->dec);
    return 0;
}

static void found_free(struct dp_found *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].verdict);
        krecords_batch_free(&f[i].dec);
    }
    free(f);
}

/* Runs the checks over req; *found gets the failing partitions. Returns
 * how many (0 also when out of memory). */
static size_t check_all(const policy_t *pol, const kproduce_req_t *req, struct dlqw *dlqw,
                        struct dp_found **found)
{
    size_t n = 0, cap = 0;
    struct dp_found *f = NULL;
    for (int32_t t = 0; t < req->ntopics; t++) {
        const kproduce_topic_t *tp = &req->topics[t];
        const policy_rule_t *rule = policy_lookup(pol, tp->name.ptr, (size_t)tp->name.len);
        if (!rule_checks(rule))
            continue;
        for (int32_t p = 0; p < tp->npartitions; p++) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                struct dp_found *g = realloc(f, ncap * sizeof(*f));
                if (!g) {
                    found_free(f, n);
                    return 0;
                }
                f = g;
                cap = ncap;
            }
            memset(&f[n], 0, sizeof(f[n]));
            if (!check_partition(rule, tp->partitions[p].records, &f[n]))
                continue;
            f[n].t = t;
            f[n].p = p;
            f[n].rule = rule;
            f[n].to_dlq = rule_dlq(rule) && dlqw && f[n].dec.hdr.producer_id == -1;
            n++;
        }
    }
    if (!n) {
        free(f);
        f = NULL;
    }
    *found = f;
    return n;
}

static char *dup_view(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* The plan of req: owned copies of everything, nothing taken out yet. */
static int plan_copy(struct dp_plan *pl, const kreq_hdr_t *h, const kproduce_req_t *req, int acks)
{
    pl->ver = h->api_version;
    pl->corr = h->correlation_id;
    pl->acks = acks;
    pl->acks_field = req->acks;
    pl->timeout_ms = req->timeout_ms;
    if (h->client_id.len >= 0 &&
        !(pl->client_id = dup_view(h->client_id.ptr, (size_t)h->client_id.len)))
        return -1;
    pl->client_id_len = (size_t)(h->client_id.len < 0 ? 0 : h->client_id.len);
    if (req->transactional_id.len >= 0 &&
        !(pl->txn_id = dup_view(req->transactional_id.ptr, (size_t)req->transactional_id.len)))
        return -1;
    pl->txn_id_len = (size_t)(req->transactional_id.len < 0 ? 0 : req->transactional_id.len);
    pl->topics = calloc((size_t)req->ntopics + 1, sizeof(*pl->topics));
    if (!pl->topics)
        return -1;
    pl->ntopics = req->ntopics;
    for (int32_t t = 0; t < req->ntopics; t++) {
        const kproduce_topic_t *tp = &req->topics[t];
        struct dp_topic *dt = &pl->topics[t];
        dt->len = (size_t)tp->name.len;
        dt->parts = calloc((size_t)tp->npartitions + 1, sizeof(*dt->parts));
        if (!(dt->name = dup_view(tp->name.ptr, dt->len)) || !dt->parts)
            return -1;
        dt->nparts = tp->npartitions;
        for (int32_t p = 0; p < tp->npartitions; p++) {
            kbytes_t rec = tp->partitions[p].records;
            dt->parts[p].index = tp->partitions[p].index;
            dt->parts[p].len = rec.len;
            if (rec.len > 0 && !(dt->parts[p].records = malloc((size_t)rec.len)))
                return -1;
            if (rec.len > 0)
                memcpy(dt->parts[p].records, rec.ptr, (size_t)rec.len);
        }
    }
    return 0;
}

/* Takes partition part out of the request, answered with err. */
static void part_remove(struct dp_part *part, int16_t err)
{
    free(part->records);
    part->records = NULL;
    part->len = -1;
    part->removed = 1;
    part->err = err;
}

/* The reason written into the DLT headers for verdict v under rule. */
static void reason_for(int v, const policy_rule_t *rule, char *buf, size_t cap)
{
    if (v == DLQPROD_NOT_JSON)
        snprintf(buf, cap, "value is not JSON (dedup.event_id json:%s)",
                 rule->dedup.name ? rule->dedup.name : "");
    else
        snprintf(buf, cap, "no eventId (dedup.require_event_id)");
}

/*
 * on_produce_error dlq for one failing partition: its failing records go
 * to the DLQ, the batch keeps the others. A refused write takes the
 * partition out (87) with what was queued already left to complete.
 */
static void dlq_partition(struct dlqprod *dp, struct dlqprod_req *r, struct dp_found *f)
{
    struct dp_topic *dt = &r->plan.topics[f->t];
    struct dp_part *part = &dt->parts[f->p];
    char buf[POLICY_TOPIC_MAX + 1];
    const char *dlq = policy_dlq_topic(f->rule, dt->name, dt->len, buf, sizeof(buf));
    if (!dlq) {
        part_remove(part, KERR_INVALID_RECORD);
        return;
    }
    for (int32_t i = 0; i < f->dec.nrecords; i++) {
        if (f->verdict[i] == DLQPROD_OK)
            continue;
        char reason[320];
        kdlt_headers_t dlt;
        const char *why = "out of memory";
        reason_for(f->verdict[i], f->rule, reason, sizeof(reason));
        dlt_for(&f->dec, i, dt->name, dt->len, part->index, reason, &dlt);
        struct dp_write *wr = calloc(1, sizeof(*wr));
        if (wr) {
            *wr = (struct dp_write){.req = r,
                                    .w = dp->px->dlqw,
                                    .kind = DPW_CHECK_DLQ,
                                    .t = f->t,
                                    .p = f->p,
                                    .rec = i,
                                    .reason = f->verdict[i] == DLQPROD_NOT_JSON
                                                  ? DLQ_REASON_NOT_JSON
                                                  : DLQ_REASON_NO_EVENT_ID};
        }
        if (!wr || send_record(wr, dlq, -1, &f->dec, i, &dlt, &why)) {
            free(wr);
            g_metrics.dlq_refused++;
            if (may_log(dp, 0))
                log_warn("dlq: cannot queue a record of %s [%d] for %s: %s; the partition is "
                         "refused (INVALID_RECORD)",
                         dt->name, (int)part->index, dlq, why);
            part->dlq_failed = 1;
            break;
        }
    }
    if (part->dlq_failed) {
        part_remove(part, KERR_INVALID_RECORD);
        return;
    }
    if (f->failing == f->dec.nrecords) {
        part->emptied = 1; /* answered once the DLQ has every record */
        return;
    }
    kwriter_t w;
    kw_init(&w, (size_t)part->len);
    uint8_t *keep = malloc((size_t)f->dec.nrecords + 1);
    for (int32_t i = 0; keep && i < f->dec.nrecords; i++)
        keep[i] = f->verdict[i] == DLQPROD_OK;
    if (!keep || dlqprod_rebatch(&w, &f->dec, keep)) {
        kw_free(&w);
        free(keep);
        part->dlq_failed = 1; /* the DLQ copies stay; the client is refused */
        return;
    }
    free(keep);
    size_t n;
    free(part->records);
    part->records = kw_detach(&w, &n);
    part->len = (int32_t)n;
}

/* Finishes a plan once its DLQ writes are done: failed partitions are
 * refused (87), emptied ones answered 0. */
static void plan_settle(struct dp_plan *pl)
{
    for (int32_t t = 0; t < pl->ntopics; t++) {
        for (int32_t p = 0; p < pl->topics[t].nparts; p++) {
            struct dp_part *part = &pl->topics[t].parts[p];
            if (part->removed)
                continue;
            if (part->dlq_failed)
                part_remove(part, KERR_INVALID_RECORD);
            else if (part->emptied)
                part_remove(part, KERR_NONE);
        }
    }
}

int dlqprod_check(struct dlqprod *dp, const struct policy *pol, const kreq_hdr_t *h,
                  const uint8_t *frame, size_t size, int acks, uint64_t client_id,
                  struct dlqprod_req **out)
{
    *out = NULL;
    kproduce_req_t req;
    if (h->api_version < KPRODUCE_MIN_VERSION ||
        kproduce_req_parse(h->api_version, frame + h->body_off, size - h->body_off, &req, NULL))
        return DLQPROD_PASS;
    struct dp_found *f = NULL;
    size_t n = check_all(pol, &req, dp->px->dlqw, &f);
    struct dlqprod_req *r = n ? req_new(dp) : NULL;
    if (!r || plan_copy(&r->plan, h, &req, acks)) {
        if (r)
            r->has_plan = 1;
        dlqprod_req_free(r);
        found_free(f, n);
        kproduce_req_free(&req);
        if (n)
            log_error("dlq: out of memory checking a ProduceRequest; passed unchecked");
        return DLQPROD_PASS;
    }
    r->has_plan = 1;
    r->client_id = client_id;
    for (size_t i = 0; i < n; i++) {
        struct dp_part *part = &r->plan.topics[f[i].t].parts[f[i].p];
        log_debug("dlq: client %llu: %d of %d record(s) of %s [%d] fail the checks: %s",
                  (unsigned long long)client_id, (int)f[i].failing, (int)f[i].dec.nrecords,
                  r->plan.topics[f[i].t].name, (int)part->index,
                  f[i].to_dlq ? "to the DLQ" : "refused (INVALID_RECORD)");
        if (f[i].to_dlq)
            dlq_partition(dp, r, &f[i]);
        else
            part_remove(part, KERR_INVALID_RECORD);
    }
    found_free(f, n);
    kproduce_req_free(&req);
    *out = r;
    if (r->pending) {
        r->client_id = client_id;
        engine_take(r);
        return DLQPROD_HOLD;
    }
    plan_settle(&r->plan);
    return DLQPROD_REWRITE;
}

/* A check-phase DLQ write is done. */
static void check_write_done(struct dp_write *wr, int err, const char *errstr)
{
    struct dlqprod_req *r = wr->req;
    struct dlqprod *dp = r->dp;
    struct dp_topic *dt = &r->plan.topics[wr->t];
    struct dp_part *part = &dt->parts[wr->p];
    if (err) {
        g_metrics.dlq_write_failures++;
        part->dlq_failed = 1;
        if (may_log(dp, 1))
            log_warn("dlq: a record of %s [%d] could not be written to the DLQ: %s; the partition "
                     "is refused (INVALID_RECORD)",
                     dt->name, (int)part->index, errstr ? errstr : "error");
    } else {
        metrics_dlq_record(dt->name, dt->len, wr->reason);
    }
    if (r->pending)
        return;
    plan_settle(&r->plan);
    engine_release(r);
    dp->hooks.hold_done(dp->px, r->client_id, r);
}

int dlqprod_req_frame(const struct dlqprod_req *req, kwriter_t *w)
{
    const struct dp_plan *pl = &req->plan;
    kproduce_req_t out = {
        .transactional_id = {pl->txn_id, pl->txn_id ? (int32_t)pl->txn_id_len : -1},
        .acks = pl->acks_field,
        .timeout_ms = pl->timeout_ms,
    };
    out.topics = calloc((size_t)pl->ntopics + 1, sizeof(*out.topics));
    if (!out.topics)
        return -1;
    int nparts = 0;
    for (int32_t t = 0; t < pl->ntopics; t++) {
        const struct dp_topic *dt = &pl->topics[t];
        kproduce_topic_t *ot = &out.topics[out.ntopics];
        ot->name.ptr = dt->name;
        ot->name.len = (int32_t)dt->len;
        ot->partitions = calloc((size_t)dt->nparts + 1, sizeof(*ot->partitions));
        if (!ot->partitions) {
            nparts = -1;
            break;
        }
        for (int32_t p = 0; p < dt->nparts; p++) {
            const struct dp_part *part = &dt->parts[p];
            if (part->removed)
                continue;
            kproduce_partition_t *op = &ot->partitions[ot->npartitions++];
            op->index = part->index;
            op->records.ptr = part->records;
            op->records.len = part->len;
        }
        if (ot->npartitions) {
            nparts += ot->npartitions;
            out.ntopics++;
        } else {
            free(ot->partitions);
            ot->partitions = NULL;
        }
    }
    kstr_t cid = {pl->client_id, pl->client_id ? (int32_t)pl->client_id_len : -1};
    if (nparts > 0 && kproduce_req_write(w, pl->ver, pl->corr, cid, &out))
        nparts = -1;
    for (int32_t t = 0; t < pl->ntopics; t++)
        free(out.topics[t].partitions);
    free(out.topics);
    return nparts;
}

void dlqprod_req_info(const struct dlqprod_req *req, int16_t *ver, int32_t *corr, int *acks)
{
    *ver = req->plan.ver;
    *corr = req->plan.corr;
    *acks = req->plan.acks;
}

/* ---- keeping batches for the response ---- */

/* 1 if the batch in rec should be kept (exactly one v2 batch, no producer id). */
static int keepable(kbytes_t rec)
{
    krecord_batch_t h;
    return rec.len > 0 && rec.ptr &&
           krecord_batch_parse(rec.ptr, (size_t)rec.len, &h, 0) == KREC_OK &&
           h.size == (size_t)rec.len && h.producer_id == -1;
}

/* Bytes and partitions preq would keep. */
static size_t keep_count(const policy_t *pol, const kproduce_req_t *preq, size_t *bytes)
{
    size_t n = 0;
    *bytes = 0;
    for (int32_t t = 0; t < preq->ntopics; t++) {
        const kproduce_topic_t *tp = &preq->topics[t];
        if (!rule_dlq(policy_lookup(pol, tp->name.ptr, (size_t)tp->name.len)))
            continue;
        for (int32_t p = 0; p < tp->npartitions; p++) {
            if (keepable(tp->partitions[p].records)) {
                n++;
                *bytes += (size_t)tp->partitions[p].records.len;
            }
        }
    }
    return n;
}

/* Copies one batch into k. */
static int keep_one(struct dp_kept *k, const policy_rule_t *rule, const kproduce_topic_t *tp,
                    const kproduce_partition_t *pp)
{
    k->topic_len = (size_t)tp->name.len;
    k->partition = pp->index;
    k->len = (size_t)pp->records.len;
    char buf[POLICY_TOPIC_MAX + 1];
    const char *dlq = policy_dlq_topic(rule, tp->name.ptr, k->topic_len, buf, sizeof(buf));
    if (!dlq || strlen(dlq) >= sizeof(k->dlq) ||
        !(k->topic = dup_view(tp->name.ptr, k->topic_len)) || !(k->batch = malloc(k->len)))
        return -1;
    memcpy(k->dlq, dlq, strlen(dlq) + 1);
    memcpy(k->batch, pp->records.ptr, k->len);
    return 0;
}

int dlqprod_keep(struct dlqprod *dp, const struct policy *pol, const kproduce_req_t *preq,
                 struct dlqprod_req **req)
{
    size_t bytes;
    size_t n = keep_count(pol, preq, &bytes);
    if (!n)
        return 0;
    struct dlqprod_req *r = *req ? *req : req_new(dp);
    struct dp_kept *k = r && !r->nkept ? calloc(n, sizeof(*k)) : NULL;
    if (!k || dp->kept_bytes + bytes > DLQPROD_MAX_KEPT_BYTES) {
        free(k);
        if (r != *req)
            dlqprod_req_free(r);
        g_metrics.dlq_refused++;
        if (may_log(dp, 0))
            log_warn("dlq: %zu bytes of batches kept for their responses, %zu more do not fit "
                     "(%u): the ProduceRequest is refused with REQUEST_TIMED_OUT",
                     dp->kept_bytes, bytes, DLQPROD_MAX_KEPT_BYTES);
        return -1;
    }
    r->kept = k;
    for (int32_t t = 0; t < preq->ntopics; t++) {
        const kproduce_topic_t *tp = &preq->topics[t];
        const policy_rule_t *rule = policy_lookup(pol, tp->name.ptr, (size_t)tp->name.len);
        if (!rule_dlq(rule))
            continue;
        for (int32_t p = 0; p < tp->npartitions; p++) {
            if (!keepable(tp->partitions[p].records))
                continue;
            int rc = keep_one(&r->kept[r->nkept], rule, tp, &tp->partitions[p]);
            r->nkept++;
            if (rc) {
                kept_free(r);
                if (r != *req)
                    dlqprod_req_free(r);
                return -1;
            }
        }
    }
    r->kept_bytes = bytes;
    dp->kept_bytes += bytes;
    *req = r;
    return 0;
}

int dlqprod_req_keeps(const struct dlqprod_req *req)
{
    return req && req->nkept > 0;
}

int dlqprod_req_answers(const struct dlqprod_req *req)
{
    if (!req || !req->has_plan)
        return 0;
    for (int32_t t = 0; t < req->plan.ntopics; t++)
        for (int32_t p = 0; p < req->plan.topics[t].nparts; p++)
            if (req->plan.topics[t].parts[p].removed)
                return 1;
    return 0;
}

/* ---- the response ---- */

/* Every answer of req: partitions taken out, refused batches rewritten. */
static dlqprod_answer_t *answers_of(const struct dlqprod_req *r, size_t *n)
{
    size_t cap = r->nkept + 1;
    for (int32_t t = 0; r->has_plan && t < r->plan.ntopics; t++)
        cap += (size_t)r->plan.topics[t].nparts;
    dlqprod_answer_t *a = calloc(cap, sizeof(*a));
    *n = 0;
    if (!a)
        return NULL;
    for (int32_t t = 0; r->has_plan && t < r->plan.ntopics; t++) {
        const struct dp_topic *dt = &r->plan.topics[t];
        for (int32_t p = 0; p < dt->nparts; p++) {
            if (dt->parts[p].removed)
                a[(*n)++] =
                    (dlqprod_answer_t){dt->name, dt->len, dt->parts[p].index, dt->parts[p].err, -1};
        }
    }
    for (size_t i = 0; i < r->nkept; i++) {
        const struct dp_kept *k = &r->kept[i];
        if (k->refused && !k->failed)
            a[(*n)++] = (dlqprod_answer_t){k->topic, k->topic_len, k->partition, 0, -1};
    }
    return a;
}

int dlqprod_req_merge(const struct dlqprod_req *req, int16_t ver, int32_t corr,
                      const uint8_t *frame, size_t len, kwriter_t *w)
{
    kproduce_resp_t resp;
    if (frame && kproduce_resp_parse(ver, frame, len, &resp, NULL))
        return -1;
    size_t n;
    dlqprod_answer_t *a = answers_of(req, &n);
    int rc = a ? dlqprod_resp_write(w, ver, frame ? &resp : NULL, corr, a, n) : -1;
    free(a);
    if (frame)
        kproduce_resp_free(&resp);
    return rc;
}

/* Every write of r is done: the client's answer goes out. */
static void rewrite_finish(struct dlqprod_req *r)
{
    struct dlqprod *dp = r->dp;
    kwriter_t w;
    kw_init(&w, r->resp_len + 256);
    struct evbuffer *out = evbuffer_new();
    if (out && dlqprod_req_merge(r, r->resp_ver, 0, r->resp, r->resp_len, &w) == 0) {
        evbuffer_add(out, w.buf, w.len);
    } else if (out) { /* cannot happen: it was parsed before; send the broker's */
        uint8_t szb[4] = {(uint8_t)(r->resp_len >> 24), (uint8_t)(r->resp_len >> 16),
                          (uint8_t)(r->resp_len >> 8), (uint8_t)r->resp_len};
        evbuffer_add(out, szb, 4);
        evbuffer_add(out, r->resp, r->resp_len);
    }
    kw_free(&w);
    uint64_t cid = r->client_id, tok = r->token;
    req_destroy(r);
    dp->hooks.slot_done(dp->px, cid, tok, out);
}

/* Record i of refused batch k goes to the DLQ. Returns 0 or -1. */
static int refused_to_dlq(struct dlqprod_req *r, size_t ki, int32_t i, int16_t code)
{
    struct dp_kept *k = &r->kept[ki];
    struct dlqw *dlqw = r->dp->px->dlqw;
    char reason[96];
    const char *why = "no dead-letter writer";
    snprintf(reason, sizeof(reason), "refused by the broker: %s (%d)", dlqprod_error_name(code),
             (int)code);
    kdlt_headers_t dlt;
    dlt_for(&k->dec, i, k->topic, k->topic_len, k->partition, reason, &dlt);
    struct dp_write *wr = dlqw ? calloc(1, sizeof(*wr)) : NULL;
    if (wr)
        *wr = (struct dp_write){.req = r,
                                .w = dlqw,
                                .kind = DPW_REFUSED_DLQ,
                                .p = (int32_t)ki,
                                .rec = i,
                                .reason = DLQ_REASON_REFUSED};
    if (!wr || send_record(wr, k->dlq, -1, &k->dec, i, &dlt, &why)) {
        free(wr);
        g_metrics.dlq_refused++;
        if (may_log(r->dp, 0))
            log_warn("dlq: cannot queue a refused record of %s [%d] for %s: %s", k->topic,
                     (int)k->partition, k->dlq, why);
        return -1;
    }
    return 0;
}

/* A rewrite or a refused record's DLQ write is done. */
static void rewrite_write_done(struct dp_write *wr, int err, const char *errstr)
{
    struct dlqprod_req *r = wr->req;
    struct dp_kept *k = &r->kept[wr->p];
    if (wr->kind == DPW_REWRITE && err > 0 && err < INT16_MAX && dlqprod_is_refusal((int16_t)err)) {
        if (refused_to_dlq(r, (size_t)wr->p, wr->rec, (int16_t)err))
            k->failed = 1;
    } else if (err) {
        k->failed = 1;
        if (wr->kind == DPW_REFUSED_DLQ)
            g_metrics.dlq_write_failures++;
        if (may_log(r->dp, 1))
            log_warn("dlq: %s of a record of %s [%d] failed: %s; the client gets the broker's "
                     "error for the partition",
                     wr->kind == DPW_REWRITE ? "the rewrite" : "the DLQ write", k->topic,
                     (int)k->partition, errstr ? errstr : "error");
    } else if (wr->kind == DPW_REFUSED_DLQ) {
        metrics_dlq_record(k->topic, k->topic_len, DLQ_REASON_REFUSED);
    }
    if (!r->pending)
        rewrite_finish(r);
}

static void write_done(void *arg, uint64_t id, int err, const char *errstr, int64_t offset)
{
    struct dp_write *wr = arg;
    struct dlqprod_req *r = wr->req;
    TAILQ_REMOVE(&r->writes, wr, link);
    r->pending--;
    g_metrics.dlq_inflight--;
    struct dp_write copy = *wr;
    free(wr);
    if (copy.kind == DPW_CHECK_DLQ)
        check_write_done(&copy, err, errstr);
    else
        rewrite_write_done(&copy, err, errstr);
}

/* The rewriter, made on first use. */
static struct dlqw *rewriter(struct dlqprod *dp)
{
    struct proxy *px = dp->px;
    if (!dp->rewriter)
        dp->rewriter =
            dlqw_new_flags(px->base, px->cfg, px->bootstrap, DLQW_TIMEOUT_MS, DLQW_ONE_BY_ONE);
    return dp->rewriter;
}

/* Queues every record of refused batch ki again, one by one. */
static void rewrite_batch(struct dlqprod_req *r, size_t ki)
{
    struct dp_kept *k = &r->kept[ki];
    const char *err = NULL;
    struct dlqw *w = rewriter(r->dp);
    if (!w || krecords_decode(k->batch, k->len, &k->dec, &err)) {
        k->failed = 1;
        return;
    }
    k->decoded = 1;
    for (int32_t i = 0; i < k->dec.nrecords; i++) {
        const char *why = "out of memory";
        struct dp_write *wr = calloc(1, sizeof(*wr));
        if (wr)
            *wr = (struct dp_write){
                .req = r, .w = w, .kind = DPW_REWRITE, .p = (int32_t)ki, .rec = i};
        if (!wr || send_record(wr, k->topic, k->partition, &k->dec, i, NULL, &why)) {
            free(wr);
            k->failed = 1;
            if (may_log(r->dp, 0))
                log_warn("dlq: cannot rewrite a record of %s [%d]: %s", k->topic, (int)k->partition,
                         why);
            return;
        }
    }
}

int dlqprod_response(struct dlqprod *dp, struct dlqprod_req *req, int16_t ver, const uint8_t *frame,
                     size_t len, uint64_t client_id, uint64_t token)
{
    if (!req || !req->nkept)
        return 0;
    kproduce_resp_t resp;
    if (kproduce_resp_parse(ver, frame, len, &resp, NULL))
        return 0;
    size_t refused = 0;
    kproduce_resp_pos_t pos = {0, 0};
    for (size_t i = 0; i < req->nkept; i++) {
        struct dp_kept *k = &req->kept[i];
        const kproduce_presp_t *p =
            kproduce_resp_find(&resp, &pos, k->topic, k->topic_len, k->partition);
        if (p && dlqprod_is_refusal(p->error_code)) {
            k->refused = p->error_code;
            refused++;
        }
    }
    kproduce_resp_free(&resp);
    if (!refused || !(req->resp = malloc(len)))
        return 0;
    memcpy(req->resp, frame, len);
    req->resp_len = len;
    req->resp_ver = ver;
    req->client_id = client_id;
    req->token = token;
    for (size_t i = 0; i < req->nkept; i++) {
        if (req->kept[i].refused) {
            log_info("dlq: client %llu: %s [%d] refused by the broker (%s); writing its records "
                     "again one by one",
                     (unsigned long long)client_id, req->kept[i].topic, (int)req->kept[i].partition,
                     dlqprod_error_name(req->kept[i].refused));
            rewrite_batch(req, i);
        }
    }
    if (!req->pending) { /* nothing could be queued: answer as the broker did */
        free(req->resp);
        req->resp = NULL;
        for (size_t i = 0; i < req->nkept; i++)
            req->kept[i].refused = 0;
        return 0;
    }
    engine_take(req);
    return 1;
}
