/*
 * authorize.c - per-user topic ACLs (auth.acls) applied to a validated
 * request: denied topics are taken out of the request and answered with
 * their AUTHORIZATION_FAILED error in the response (ksplit), a request
 * with every topic denied is answered here, Metadata hides topics the
 * user may not use, and admin APIs need `admin: true`.
 */
#include "client_int.h"

#include "acl.h"
#include "kerror.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

/*
 * An admin request from a user without `admin: true`: every topic (or
 * group) answered with its AUTHORIZATION_FAILED error, nothing forwarded.
 */
static int refuse_admin(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size)
{
    kwriter_t w;
    kw_init(&w, 256);
    if (ksplit_refuse_all(h, frame, size, &w)) {
        kw_free(&w);
        client_protocol_error(c, h, h->body_off, "cannot decode the request's topics");
        return REQ_CLOSED;
    }
    log_info("client %llu (%s): %s refused: user %s has no admin: true in auth.acls",
             (unsigned long long)c->id, c->peer, kproto_api_name(h->api_key),
             sasl_session_user(c->sasl));
    client_answer_local(c, h, &w);
    return REQ_LOCAL;
}

/* 1 if the logged-in user of c may do op (ACL_PRODUCE, ACL_CONSUME) on topic. */
static int acl_allow(struct client *c, int op, const char *topic, size_t len)
{
    const char *u = sasl_session_user(c->sasl);
    return acl_allows(c->px->cfg->auth.acl, u, strlen(u), op, topic, len);
}

static int acl_allow_produce(void *ctx, const char *topic, size_t len)
{
    return acl_allow(ctx, ACL_PRODUCE, topic, len);
}

static int acl_allow_consume(void *ctx, const char *topic, size_t len)
{
    return acl_allow(ctx, ACL_CONSUME, topic, len);
}

/* Metadata: a topic is visible to a user who may produce to it or consume from it. */
int authorize_describe(void *ctx, const char *topic, size_t len)
{
    return acl_allow_produce(ctx, topic, len) || acl_allow_consume(ctx, topic, len);
}

/*
 * ProduceRequest v0-v2 (message format < 2, no split codec): forwarded when
 * every topic is allowed, else refused whole, every partition answered with
 * TOPIC_AUTHORIZATION_FAILED.
 */
static int acl_produce_v0(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                          int acks)
{
    struct produce_view v = {0};
    if (route_view_v0(&v, frame + h->body_off, size - h->body_off)) {
        route_view_free(&v);
        client_protocol_error(c, h, h->body_off, "cannot decode ProduceRequest");
        return REQ_CLOSED;
    }
    size_t denied = 0;
    for (size_t t = 0; t < v.ntopics; t++)
        denied += !acl_allow_produce(c, v.names[t], v.lens[t]);
    int rc = REQ_FORWARD;
    if (denied) {
        g_metrics.acl_denied[KAPI_Produce] += denied;
        rc = acks != 0 && route_answer_error(c, h, &v, KERR_TOPIC_AUTHORIZATION_FAILED) ? REQ_CLOSED
                                                                                        : REQ_LOCAL;
    }
    route_view_free(&v);
    return rc;
}

/* 1 for the topic administration APIs that need `admin: true`. */
static int is_admin_api(int16_t api)
{
    return api == KAPI_CreateTopics || api == KAPI_DeleteTopics || api == KAPI_DeleteRecords ||
           api == KAPI_CreatePartitions || api == KAPI_DeleteGroups;
}

/*
 * Applies auth.acls to a validated request. Produce, Fetch, ListOffsets,
 * OffsetCommit and Metadata lose their denied topics (c->repl then holds
 * the rewritten frame and c->pending_split what to answer for them); a
 * Metadata response is also marked to hide the user's other topics
 * (c->pending_hide). A request with every topic denied is answered here,
 * and admin APIs need `admin: true`. Returns REQ_FORWARD to go on,
 * REQ_LOCAL or REQ_CLOSED.
 */
int authorize_request(struct client *c, const kreq_hdr_t *h, const uint8_t *frame, size_t size,
                      int acks)
{
    const char *u = sasl_session_user(c->sasl);
    if (is_admin_api(h->api_key)) {
        if (acl_is_admin(c->px->cfg->auth.acl, u, strlen(u)))
            return REQ_FORWARD;
        g_metrics.acl_denied[h->api_key]++;
        return refuse_admin(c, h, frame, size);
    }
    if (h->api_key != KAPI_Produce && h->api_key != KAPI_Fetch && h->api_key != KAPI_ListOffsets &&
        h->api_key != KAPI_OffsetCommit && h->api_key != KAPI_Metadata)
        return REQ_FORWARD;
    c->pending_hide = h->api_key == KAPI_Metadata;
    if (h->api_key == KAPI_Produce && h->api_version < KPRODUCE_MIN_VERSION)
        return acl_produce_v0(c, h, frame, size, acks);
    kwriter_t w;
    kw_init(&w, 0);
    ksplit_t *split = NULL;
    ksplit_allow_fn allow = h->api_key == KAPI_Produce    ? acl_allow_produce
                            : h->api_key == KAPI_Metadata ? authorize_describe
                                                          : acl_allow_consume;
    int rc = ksplit_request(h, frame, size, allow, c, &w, &split);
    if (rc == KSPLIT_ERROR) {
        kw_free(&w);
        client_protocol_error(c, h, h->body_off, "cannot decode the request's topics");
        return REQ_CLOSED;
    }
    if (rc == KSPLIT_ALLOWED) {
        kw_free(&w);
        return REQ_FORWARD;
    }
    g_metrics.acl_denied[h->api_key] += ksplit_topic_count(split);
    log_debug("client %llu (%s): %zu topic(s) of a %s request denied to %s",
              (unsigned long long)c->id, c->peer, ksplit_topic_count(split),
              kproto_api_name(h->api_key), u);
    if (rc == KSPLIT_DENIED) {
        kw_free(&w);
        if (acks != 0 &&
            ksplit_answer(split, h->correlation_id, KERR_TOPIC_AUTHORIZATION_FAILED, &w) == 0)
            client_answer_local(c, h, &w);
        else
            kw_free(&w);
        ksplit_free(split);
        return REQ_LOCAL;
    }
    c->repl = kw_detach(&w, &c->repl_len);
    c->pending_split = acks != 0 ? split : NULL;
    if (acks == 0)
        ksplit_free(split);
    return REQ_FORWARD;
}
