/*
 * request.c - the request pipeline: one complete request frame from the
 * client, in this order (request_check):
 *   1. parse: the request header (kproto), ApiVersions answered here;
 *   2. login: before a connection has logged in, only the SASL exchange
 *      (login.c);
 *   3. validate: the version against the negotiated table, the body
 *      against its schema (kproto_validate_request); anything malformed
 *      closes the connection, nothing malformed is forwarded;
 *   4. track: OffsetCommit/TxnOffsetCommit/EndTxn seen by dedup;
 *   5. authorize: per-user topic ACLs (authorize.c);
 *   6. raise Fetch to read_committed for transactional topics;
 *   7. route: group requests of bound groups, ProduceRequests by their
 *      topics' policy (route.c); else a slot for the broker's answer.
 * client.c then forwards the frame, or drops it when it was answered here.
 */
#include "client_int.h"

#include "dedup.h"
#include "dlqprod.h"
#include "kfetch.h"
#include "metrics.h"
#include "proxy.h"

#include <stdlib.h>

/* Answers ApiVersions with what eosproxy can parse and the upstream serves. */
static int answer_apiversions(struct client *c, const kreq_hdr_t *h, const uint8_t *frame,
                              size_t len)
{
    const kapi_info_t *ai = kproto_api(KAPI_ApiVersions);
    int16_t ver = h->api_version;
    int16_t err = 0;
    if (!ai || ver > ai->max_ver) {
        ver = 0; /* as brokers do: a v0 answer with UNSUPPORTED_VERSION */
        err = 35;
    } else {
        size_t off;
        const char *why;
        if (kproto_validate_request(h, frame, len, &off, &why)) {
            client_protocol_error(c, h, off, why);
            return -1;
        }
    }
    kwriter_t w;
    kw_init(&w, 512);
    if (kproto_apiversions_build(&w, ver, h->correlation_id, err, c->px->versions)) {
        kw_free(&w);
        client_protocol_error(c, h, 0, "cannot build ApiVersions response");
        return -1;
    }
    client_answer_local(c, h, &w);
    return 0;
}

/* 1 if the negotiated table lets a client send (api, version). */
static int version_allowed(const struct proxy *px, const kreq_hdr_t *h)
{
    const kver_range_t *r = &px->versions[h->api_key];
    return h->api_version >= r->min_ver && h->api_version <= r->max_ver;
}

/*
 * Consumers of `transactional` topics read committed data only: a Fetch
 * (v4..v12) naming one gets IsolationLevel 1, in place. The flag sticks to
 * the connection, because a fetch session's later requests list only the
 * partitions that changed, often none, and the isolation level applies to
 * the whole session.
 */
static void fetch_read_committed(struct client *c, const kreq_hdr_t *h, uint8_t *frame, size_t size)
{
    /* ReplicaId MaxWaitMs MinBytes MaxBytes, then IsolationLevel (INT8). */
    size_t off = h->body_off + 16;
    if (h->api_version < KFETCH_MIN_VERSION || h->api_version > KFETCH_MAX_VERSION || off >= size ||
        frame[off] != 0)
        return;
    if (!c->read_committed) {
        kfetch_req_t req;
        if (kfetch_req_parse(h->api_version, frame + h->body_off, size - h->body_off, &req, NULL))
            return; /* validated already: cannot happen */
        const policy_t *pol = c->px->cfg->policy;
        for (int32_t i = 0; i < req.ntopics && !c->read_committed; i++)
            c->read_committed =
                policy_delivery(pol, req.topics[i].topic.ptr, (size_t)req.topics[i].topic.len) ==
                DELIVERY_TRANSACTIONAL;
        kfetch_req_free(&req);
        if (!c->read_committed)
            return;
    }
    frame[off] = 1;
    c->pending_drop_aborted = 1;
    g_metrics.txn_fetch_upgraded++;
}

/* Parses the request header into h. Returns 0, or -1 when c was closed. */
static int parse_header(struct client *c, const uint8_t *frame, size_t size, kreq_hdr_t *h)
{
    const char *why = NULL;
    if (kproto_parse_request_header(frame, size, h, &why)) {
        kreq_hdr_t raw = {.api_key = kbe16(frame),
                          .api_version = kbe16(frame + 2),
                          .correlation_id = kbe32(frame + 4)};
        client_protocol_error(c, &raw, 0, why ? why : "bad request header");
        return -1;
    }
    g_metrics.requests[h->api_key]++;
    g_metrics.request_bytes += size + 4;
    return 0;
}

/* 1 if the request belongs to the login exchange (login.c). */
static int in_login(const struct client *c, const kreq_hdr_t *h)
{
    return c->sasl &&
           (!c->authed || h->api_key == KAPI_SaslHandshake || h->api_key == KAPI_SaslAuthenticate);
}

/* The version against the negotiated table, then the body against its
 * schema. Returns 0, or -1 when c was closed. */
static int validate(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    if (!version_allowed(c->px, h)) {
        client_protocol_error(c, h, 0, "version not offered in ApiVersions");
        return -1;
    }
    size_t off;
    const char *why = NULL;
    if (kproto_validate_request(h, frame, size, &off, &why)) {
        client_protocol_error(c, h, off, why);
        return -1;
    }
    return 0;
}

/* Commits and transaction ends that dedup turns into done marks. */
static void track_commits(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    if (!c->px->dedup)
        return;
    if (h->api_key == KAPI_OffsetCommit || h->api_key == KAPI_TxnOffsetCommit)
        dedup_commit_request(c->px->dedup, h->api_key, h->api_version, frame, size, c->id,
                             h->correlation_id);
    else if (h->api_key == KAPI_EndTxn)
        dedup_endtxn_request(c->px->dedup, h->api_version, frame, size, c->id, h->correlation_id);
}

/*
 * auth.acls on an authenticated connection. REQ_FORWARD to go on, with
 * *frame and *size moved to c->repl when denied topics were taken out.
 */
static int authorize(struct client *c, const kreq_hdr_t *h, uint8_t **frame, size_t *size, int acks)
{
    if (!c->sasl || !c->px->cfg->auth.acl)
        return REQ_FORWARD;
    int rc = authorize_request(c, h, *frame, *size, acks);
    if (rc == REQ_FORWARD && c->repl) { /* same header bytes, fewer topics */
        *frame = c->repl + 4;
        *size = c->repl_len - 4;
    }
    return rc;
}

/* Where an authorized request goes: an engine (route.c) or the broker. */
static int route(struct client *c, const kreq_hdr_t *h, uint8_t *frame, size_t size, int acks)
{
    if (h->api_key == KAPI_Fetch && c->px->txn)
        fetch_read_committed(c, h, frame, size);
    int rc = REQ_FORWARD;
    if (c->px->nbinds && (h->api_key == KAPI_OffsetCommit || h->api_key == KAPI_JoinGroup ||
                          h->api_key == KAPI_LeaveGroup))
        rc = route_group(c, h, frame, size);
    if (rc != REQ_FORWARD)
        return rc;
    if (h->api_key == KAPI_Produce && (c->px->enforce || dlqprod_policy_active(c->px->cfg->policy)))
        return route_produce(c, h, frame, size, acks, 0);
    client_expect_response(c, h, acks);
    return REQ_FORWARD;
}

/* What the stages left for the next slot that no slot took: dropped. */
static void clear_pending(struct client *c)
{
    ksplit_free(c->pending_split); /* not taken by a slot: nothing to answer */
    c->pending_split = NULL;
    c->pending_hide = 0;
    c->pending_drop_aborted = 0;
    dlqprod_req_free(c->pending_dj);
    c->pending_dj = NULL;
}

int request_check(struct client *c, uint8_t *frame, size_t size)
{
    kreq_hdr_t h;
    if (parse_header(c, frame, size, &h))
        return REQ_CLOSED;
    if (h.api_key == KAPI_ApiVersions)
        return answer_apiversions(c, &h, frame, size) ? REQ_CLOSED : REQ_LOCAL;
    if (in_login(c, &h))
        return login_request(c, &h, frame, size);
    if (validate(c, &h, frame, size))
        return REQ_CLOSED;
    track_commits(c, &h, frame, size);
    int acks = h.api_key == KAPI_Produce ? kproto_produce_acks(&h, frame, size) : 1;
    int rc = authorize(c, &h, &frame, &size, acks);
    if (rc != REQ_FORWARD)
        return rc;
    rc = route(c, &h, frame, size, acks);
    if (rc != REQ_CLOSED)
        clear_pending(c);
    return rc;
}
