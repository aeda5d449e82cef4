/*
 * route.c - the policy route of a validated request: a ProduceRequest goes
 * by its topics' delivery mode (at-most-once forwarded as acks=1 or
 * answered, idempotent to the upgrade engine, transactional to the txn
 * engine) after the producer-path dead-letter checks (dlqprod); group
 * requests of bound groups go to the consume-process-produce engine.
 * Engines answer later through client_slot_done.
 */
#include "client_int.h"

#include "dlqprod.h"
#include "kcommit.h"
#include "kerror.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "txn.h"
#include "upgrade.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>

void route_view_free(struct produce_view *v)
{
    kproduce_req_free(&v->req);
    free(v->names);
    free(v->lens);
    free(v->nparts);
    free(v->parts);
}

static int produce_view_alloc(struct produce_view *v, size_t ntopics)
{
    v->ntopics = ntopics;
    v->names = calloc(ntopics ? ntopics : 1, sizeof(*v->names));
    v->lens = calloc(ntopics ? ntopics : 1, sizeof(*v->lens));
    v->nparts = calloc(ntopics ? ntopics : 1, sizeof(*v->nparts));
    return v->names && v->lens && v->nparts ? 0 : -1;
}

/*
 * ProduceRequest v0-v2 (message format < 2), for the topic names:
 *   acks INT16, timeout_ms INT32,
 *   topic_data [name STRING, partition_data [index INT32, records BYTES]]
 */
int route_view_v0(struct produce_view *v, const uint8_t *body, size_t len)
{
    kreader_t r;
    kr_init(&r, body, len);
    kr_i16(&r);
    kr_i32(&r);
    int32_t nt = kr_array(&r, 0, 6);
    if (!kr_ok(&r) || nt < 0 || produce_view_alloc(v, (size_t)nt))
        return -1;
    v->parts = calloc(len / 8 + 1, sizeof(*v->parts));
    size_t np = 0;
    for (int32_t t = 0; t < nt && kr_ok(&r) && v->parts; t++) {
        kstr_t name = kr_str_nn(&r, 0);
        v->names[t] = name.ptr;
        v->lens[t] = (size_t)(name.len < 0 ? 0 : name.len);
        int32_t npart = kr_array(&r, 0, 8);
        v->nparts[t] = npart < 0 ? 0 : npart;
        for (int32_t p = 0; p < npart && kr_ok(&r); p++) {
            v->parts[np++] = kr_i32(&r);
            kr_bytes(&r, 0);
        }
    }
    return kr_ok(&r) && v->parts ? 0 : -1;
}

/* v3+: the full parse, plus whether any batch already has a producer id. */
static int produce_view_v3(struct produce_view *v, int16_t ver, const uint8_t *body, size_t len,
                           int *client_idempotent)
{
    if (kproduce_req_parse(ver, body, len, &v->req, NULL))
        return -1;
    if (produce_view_alloc(v, (size_t)v->req.ntopics))
        return -1;
    for (int32_t t = 0; t < v->req.ntopics; t++) {
        const kproduce_topic_t *tp = &v->req.topics[t];
        v->names[t] = tp->name.ptr;
        v->lens[t] = (size_t)(tp->name.len < 0 ? 0 : tp->name.len);
        for (int32_t p = 0; p < tp->npartitions; p++) {
            kbytes_t rec = tp->partitions[p].records;
            krecord_batch_t b;
            if (rec.len > 0 && krecord_batch_parse(rec.ptr, (size_t)rec.len, &b, 0) == KREC_OK &&
                b.producer_id != -1)
                *client_idempotent = 1;
        }
    }
    return 0;
}

/*
 * A ProduceResponse v0-v2 answering every partition of v with error_code:
 *   v0: [name, [index INT32, error_code INT16, base_offset INT64]]
 *   v1: + throttle_time_ms INT32 at the end; v2: + log_append_time INT64
 */
static int write_produce_v0_error(kwriter_t *w, int16_t ver, int32_t corr,
                                  const struct produce_view *v, int16_t error_code)
{
    kw_i32(w, 0);
    kw_i32(w, corr);
    kw_array(w, 0, (int32_t)v->ntopics);
    size_t np = 0;
    for (size_t t = 0; t < v->ntopics; t++) {
        kw_str(w, 0, v->names[t], (int32_t)v->lens[t]);
        kw_array(w, 0, v->nparts[t]);
        for (int32_t p = 0; p < v->nparts[t]; p++) {
            kw_i32(w, v->parts[np++]);
            kw_i16(w, error_code);
            kw_i64(w, -1);
            if (ver >= 2)
                kw_i64(w, -1);
        }
    }
    if (ver >= 1)
        kw_i32(w, 0);
    kw_patch_i32(w, 0, (int32_t)(w->len - 4));
    return w->err ? -1 : 0;
}

/* Answers every partition of the request with error_code (acks != 0). */
int route_answer_error(struct client *c, const kreq_hdr_t *h, const struct produce_view *v,
                       int16_t error_code)
{
    kwriter_t w;
    kw_init(&w, 256);
    int rc = h->api_version >= KPRODUCE_MIN_VERSION
                 ? kproduce_resp_write_uniform(&w, h->api_version, h->correlation_id, &v->req,
                                               error_code, -1)
                 : write_produce_v0_error(&w, h->api_version, h->correlation_id, v, error_code);
    if (rc) {
        kw_free(&w);
        return -1;
    }
    client_answer_local(c, h, &w);
    return 0;
}

/*
 * At-most-once: acks becomes 0 in the frame itself (the request is then
 * forwarded as is) and the client, unless it sent acks=0 too, is answered
 * at once with offsets -1. transactional_id is null on this route, so acks
 * sits right after it: 2 bytes (INT16 -1) or 1 byte (compact null, v9).
 */
static int route_at_most_once(struct client *c, const kreq_hdr_t *h, uint8_t *frame,
                              const struct produce_view *v, int acks)
{
    size_t off = h->body_off + (kproto_is_flexible(KAPI_Produce, h->api_version) ? 1 : 2);
    frame[off] = 0;
    frame[off + 1] = 0;
    client_expect_response(c, h, 0);
    if (acks != 0 && route_answer_error(c, h, v, 0))
        return REQ_CLOSED;
    return REQ_FORWARD;
}

/* The token of an acks=0 upgraded Produce: no slot has it, so its
 * completion (resp NULL) is dropped by client_slot_done. */
#define TOKEN_NO_SLOT UINT64_MAX

/*
 * The routes an engine carries out (the idempotent upgrade, or the
 * transactional engine txn when not NULL): the engine answers later
 * through the slot. Returns REQ_LOCAL, or REQ_CLOSED.
 */
static int route_engine(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                        const struct produce_view *v, int acks, struct txn *txn)
{
    /* acks=0 books no slot: c->tail would name the next request's slot,
     * and the engine's NULL completion would then close the client. */
    uint64_t token = acks != 0 ? c->tail : TOKEN_NO_SLOT;
    if (acks != 0)
        client_slot_push(c, h, SLOT_LOCAL);
    struct proxy *px = c->px;
    /* A large frame as read (not rewritten) is handed over, not copied. */
    uint8_t **take = c->offer && *c->offer && frame == *c->offer + 4 ? c->offer : NULL;
    int err;
    if (txn)
        err = txn_submit(txn, c->up_broker, h, frame, size, acks == 0, c->id, token);
    else if (take)
        err = upgrade_submit_take(px->upgrade, c->up_broker, h, *take + 4, size, take, acks == 0,
                                  c->id, token);
    else
        err = upgrade_submit(px->upgrade, c->up_broker, h, frame, size, acks == 0, c->id, token);
    if (err == 0) {
        if (txn ? txn_busy(txn) : upgrade_busy(px->upgrade))
            client_pause(c, PAUSE_UPGRADE);
        return REQ_LOCAL;
    }
    if (acks != 0) {
        /* Refused at once: drop the waiting slot, answer in its place
         * (what the slot took for its answer goes to the next one). */
        struct slot *s = slot_at(c, --c->tail);
        c->pending_split = s->split;
        c->pending_dj = s->dj;
        s->split = NULL;
        s->dj = NULL;
        g_metrics.inflight--;
        if (route_answer_error(c, h, v, (int16_t)err))
            return REQ_CLOSED;
    }
    return REQ_LOCAL;
}

/*
 * A request for a transactional topic goes to the engine of its rule's
 * bind_group (policy_bind_group), or to the unbound engine.
 */
static int route_txn(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                     const struct produce_view *v, int acks)
{
    struct proxy *px = c->px;
    const char *group = policy_bind_group(px->cfg->policy, v->names, v->lens, v->ntopics);
    struct txn *t = group ? proxy_bind(px, group, strlen(group), 1) : px->txn;
    if (!t)
        return acks != 0 && route_answer_error(c, h, v, KERR_REQUEST_TIMED_OUT) ? REQ_CLOSED
                                                                                : REQ_LOCAL;
    return route_engine(c, h, frame, size, v, acks, t);
}

/* The GroupId that opens the body of OffsetCommit, JoinGroup and
 * LeaveGroup (validated already). Its length is -1 if it cannot be read. */
static kstr_t group_id_of(const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kreader_t r;
    kr_init(&r, frame + h->body_off, size - h->body_off);
    kstr_t g = kr_str_nn(&r, kproto_is_flexible(h->api_key, h->api_version));
    return kr_ok(&r) ? g : (kstr_t){NULL, -1};
}

/* An OffsetCommit refused at the bound engine's limit: every partition
 * gets COORDINATOR_LOAD_IN_PROGRESS, which consumers retry. */
static int answer_commit_busy(struct client *c, const kreq_hdr_t *h, const uint8_t *frame,
                              size_t size)
{
    kcommit_t kc;
    kwriter_t w;
    kw_init(&w, 128);
    if (kcommit_req_parse(h->api_key, h->api_version, frame + h->body_off, size - h->body_off, &kc,
                          NULL) ||
        kcommit_resp_write(&w, h->api_version, h->correlation_id, &kc,
                           KERR_COORDINATOR_LOAD_IN_PROGRESS)) {
        kcommit_free(&kc);
        kw_free(&w);
        client_protocol_error(c, h, h->body_off, "cannot answer OffsetCommit");
        return REQ_CLOSED;
    }
    kcommit_free(&kc);
    client_answer_local(c, h, &w);
    return REQ_LOCAL;
}

/*
 * Group requests of a bind_group (OffsetCommit, JoinGroup, LeaveGroup)
 * go to its engine: an OffsetCommit with output pending is answered by
 * the engine once the output committed with it (REQ_LOCAL); a JoinGroup
 * or LeaveGroup aborts output no commit covers, and goes on. REQ_FORWARD
 * for everything else.
 */
int route_group(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kstr_t g = group_id_of(h, frame, size);
    struct txn *t = g.len >= 0 ? proxy_bind(c->px, g.ptr, (size_t)g.len, 0) : NULL;
    if (!t)
        return REQ_FORWARD;
    if (h->api_key != KAPI_OffsetCommit) {
        txn_group_rebalance(t, h->api_key == KAPI_JoinGroup ? "JoinGroup" : "LeaveGroup");
        return REQ_FORWARD;
    }
    switch (txn_commit_submit(t, h, frame, size, c->id, c->tail)) {
    case TXN_COMMIT_TAKEN:
        client_slot_push(c, h, SLOT_LOCAL);
        return REQ_LOCAL;
    case TXN_COMMIT_BUSY:
        return answer_commit_busy(c, h, frame, size);
    default:
        return REQ_FORWARD;
    }
}

static void dlq_hold_done(struct proxy *px, uint64_t client_id, struct dlqprod_req *req);

/* The producer-path dead-letter engine of px (made on first use: a live
 * reload may add the first rule that needs it), or NULL. */
struct dlqprod *route_dlq_engine(struct proxy *px)
{
    static const struct dlqprod_hooks hooks = {client_slot_done, dlq_hold_done};
    if (!px->dlqprod)
        px->dlqprod = dlqprod_new(px, &hooks);
    return px->dlqprod;
}

/*
 * The request of plan req, to go on with: *buf (malloc'ed, size prefix
 * included, *len bytes) and its header in *h. Returns the partitions in
 * it (0: none left, nothing written), or -1 when out of memory.
 */
static int dlq_plan_frame(struct dlqprod_req *req, uint8_t **buf, size_t *len, kreq_hdr_t *h)
{
    kwriter_t w;
    kw_init(&w, 1024);
    int n = dlqprod_req_frame(req, &w);
    const char *why = NULL;
    if (n > 0 && kproto_parse_request_header(w.buf + 4, w.len - 4, h, &why))
        n = -1; /* cannot happen: kproduce wrote it */
    if (n <= 0) {
        kw_free(&w);
        return n;
    }
    *buf = kw_detach(&w, len);
    return n;
}

/* Answers a request whose every partition dlqprod took out (acks != 0). */
static int dlq_answer_all(struct client *c, const kreq_hdr_t *h, struct dlqprod_req *req)
{
    kwriter_t w;
    kw_init(&w, 256);
    if (dlqprod_req_merge(req, h->api_version, h->correlation_id, NULL, 0, &w)) {
        kw_free(&w);
        client_protocol_error(c, h, 0, "out of memory answering a Produce request");
        return REQ_CLOSED;
    }
    client_answer_local(c, h, &w);
    return REQ_LOCAL;
}

/*
 * The rule's own checks (dlqprod_check) on a ProduceRequest. REQ_FORWARD
 * to go on, with *frame, *size and *h replaced when partitions were taken
 * out (the new frame is c->repl); REQ_LOCAL when answered here or held for
 * DLQ writes (the client stops reading until dlq_hold_done); REQ_CLOSED.
 */
static int dlq_check(struct client *c, kreq_hdr_t *h, uint8_t **frame, size_t *size, int acks)
{
    struct dlqprod *dp = route_dlq_engine(c->px);
    struct dlqprod_req *req = NULL;
    int v = dp ? dlqprod_check(dp, c->px->cfg->policy, h, *frame, *size, acks, c->id, &req)
               : DLQPROD_PASS;
    if (v == DLQPROD_PASS)
        return REQ_FORWARD;
    if (v == DLQPROD_HOLD) {
        c->dlq_held = 1;
        c->held_split = c->pending_split;
        c->pending_split = NULL;
        client_pause(c, PAUSE_DLQ);
        return REQ_LOCAL;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int n = dlq_plan_frame(req, &buf, &len, h);
    if (n < 0) {
        dlqprod_req_free(req);
        client_protocol_error(c, h, 0, "out of memory rewriting a Produce request");
        return REQ_CLOSED;
    }
    if (n == 0) {
        int rc = acks != 0 ? dlq_answer_all(c, h, req) : REQ_LOCAL;
        dlqprod_req_free(req);
        return rc;
    }
    free(c->repl); /* *frame pointed into it; the plan has its own copies */
    c->repl = buf;
    c->repl_len = len;
    *frame = buf + 4;
    *size = len - 4;
    if (acks != 0)
        c->pending_dj = req;
    else
        dlqprod_req_free(req);
    return REQ_FORWARD;
}

/*
 * On the routes that forward a Produce and answer from its response (pass
 * and the idempotent upgrade), batches of topics with on_produce_error dlq
 * are kept for that response. Returns 0, or -1 when the request was
 * refused at the bound (answered REQUEST_TIMED_OUT) or the client closed.
 */
static int dlq_keep(struct client *c, const kreq_hdr_t *h, const struct produce_view *v, int *rc)
{
    struct dlqprod *dp = route_dlq_engine(c->px);
    if (!dp || dlqprod_keep(dp, c->px->cfg->policy, &v->req, &c->pending_dj) == 0)
        return 0;
    *rc = route_answer_error(c, h, v, KERR_REQUEST_TIMED_OUT) ? REQ_CLOSED : REQ_LOCAL;
    return -1;
}

/*
 * Applies the topic policy to a validated ProduceRequest. Returns
 * REQ_FORWARD (frame possibly changed in place: acks; or replaced by
 * c->repl when dlqprod took partitions out), REQ_LOCAL (handled here;
 * nothing to forward) or REQ_CLOSED. checked: the dlqprod checks ran
 * already (a request back from its DLQ writes).
 */
int route_produce(struct client *c, const kreq_hdr_t *h0, uint8_t *frame, size_t size, int acks,
                  int checked)
{
    kreq_hdr_t hh = *h0;
    const kreq_hdr_t *h = &hh;
    const policy_t *pol = c->px->cfg->policy;
    int dlq = h->api_version >= KPRODUCE_MIN_VERSION && dlqprod_policy_active(pol);
    if (dlq && !checked) {
        int rc = dlq_check(c, &hh, &frame, &size, acks);
        if (rc != REQ_FORWARD)
            return rc;
    }
    struct produce_view v = {0};
    produce_facts_t f = {.version = h->api_version};
    const uint8_t *body = frame + h->body_off;
    size_t blen = size - h->body_off;
    int rc = h->api_version >= KPRODUCE_MIN_VERSION
                 ? produce_view_v3(&v, h->api_version, body, blen, &f.client_idempotent)
                 : route_view_v0(&v, body, blen);
    if (rc) {
        route_view_free(&v);
        client_protocol_error(c, h, h->body_off, "cannot decode ProduceRequest");
        return REQ_CLOSED;
    }
    f.transactional = h->api_version >= KPRODUCE_MIN_VERSION && v.req.transactional_id.len >= 0;
    f.strongest = policy_strongest(pol, v.names, v.lens, v.ntopics);
    produce_route_t route = policy_produce_route(&f);
    g_metrics.produce_routes[route]++;
    if (dlq && acks != 0 && (route == ROUTE_PASS || route == ROUTE_UPGRADE) &&
        dlq_keep(c, h, &v, &rc)) {
        route_view_free(&v);
        return rc;
    }
    switch (route) {
    case ROUTE_AT_MOST_ONCE:
        rc = route_at_most_once(c, h, frame, &v, acks);
        break;
    case ROUTE_UPGRADE:
        rc = route_engine(c, h, frame, size, &v, acks, NULL);
        break;
    case ROUTE_TXN:
        rc = route_txn(c, h, frame, size, &v, acks);
        break;
    case ROUTE_REFUSE_FORMAT:
        log_info("client %llu (%s): refusing Produce v%d for an idempotent or transactional topic: "
                 "message format < 2 cannot be upgraded",
                 (unsigned long long)c->id, c->peer, h->api_version);
        rc = acks != 0 && route_answer_error(c, h, &v, KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT)
                 ? REQ_CLOSED
                 : REQ_LOCAL;
        break;
    default:
        rc = REQ_FORWARD;
        client_expect_response(c, h, acks);
        break;
    }
    route_view_free(&v);
    return rc;
}

/*
 * A Produce held for its DLQ writes (dlq_check) goes on: routed as if it
 * had just come, without the records now in the DLQ, then the client's
 * next requests are read. The client may have gone (req is freed then).
 */
static void dlq_hold_done(struct proxy *px, uint64_t client_id, struct dlqprod_req *req)
{
    struct client *c = client_find(px, client_id);
    if (!c || !c->dlq_held) {
        dlqprod_req_free(req);
        return;
    }
    c->dlq_held = 0;
    c->pending_split = c->held_split;
    c->held_split = NULL;
    if (c->lingering || !c->up) { /* closing: nothing goes upstream any more */
        dlqprod_req_free(req);
        ksplit_free(c->pending_split);
        c->pending_split = NULL;
        return;
    }
    int16_t ver;
    int32_t corr;
    int acks;
    dlqprod_req_info(req, &ver, &corr, &acks);
    kreq_hdr_t h = {.api_key = KAPI_Produce, .api_version = ver, .correlation_id = corr};
    uint8_t *buf = NULL;
    size_t len = 0;
    int n = dlq_plan_frame(req, &buf, &len, &h);
    int rc = REQ_LOCAL;
    if (n < 0) {
        dlqprod_req_free(req);
        client_protocol_error(c, &h, 0, "out of memory rewriting a Produce request");
        return;
    }
    if (n == 0) {
        rc = acks != 0 ? dlq_answer_all(c, &h, req) : REQ_LOCAL;
        dlqprod_req_free(req);
    } else {
        c->pending_dj = acks != 0 ? req : NULL;
        if (acks == 0)
            dlqprod_req_free(req);
        rc = route_produce(c, &h, buf + 4, len - 4, acks, 1);
    }
    if (rc == REQ_CLOSED) {
        free(buf);
        return;
    }
    if (rc == REQ_FORWARD)
        evbuffer_add_reference(bufferevent_get_output(c->up), buf, len, client_free_detached, NULL);
    else
        free(buf);
    dlqprod_req_free(c->pending_dj); /* not taken by a slot */
    c->pending_dj = NULL;
    ksplit_free(c->pending_split);
    c->pending_split = NULL;
    client_resume(c, PAUSE_DLQ);
}
