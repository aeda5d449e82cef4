/*
 * krewrite.c - rewriting broker endpoints in Metadata, FindCoordinator and
 * DescribeCluster responses. See krewrite.h for the contract.
 *
 * The rewriter walks the response with a bounds-checked reader up to the
 * last endpoint, and copies the input to the output in gaps: every byte
 * range between two rewritten (Host, Port) pairs is one memcpy, and so is
 * the tail after the last pair (for Metadata: ClusterId, ControllerId and
 * the whole Topics array, possibly thousands of partitions). Only Host and
 * Port are re-encoded. Layouts follow Kafka's message specs
 * (MetadataResponse.json, FindCoordinatorResponse.json,
 * DescribeClusterResponse.json). Pure codec: no libevent.
 */
#include "krewrite.h"

#include "kproto.h"

#include <string.h>

/* Highest versions whose layouts this file knows. */
#define METADATA_MAX_VER 12
#define FINDCOORDINATOR_MAX_VER 4
#define DESCRIBECLUSTER_MAX_VER 1

/* One rewrite in progress. */
typedef struct krw {
    kreader_t r;      /* over the input frame */
    kwriter_t *out;   /* output (frame appended after its size prefix) */
    size_t copied;    /* input bytes [0, copied) are already in out */
    kaddr_map_fn map; /* may be NULL: endpoints kept as they are */
    void *ctx;        /* for map */
    int flex;         /* compact strings and arrays, tagged fields */
    const char *err;  /* static reason for a semantic failure */
} krw_t;

/* A broker endpoint as found in the input. */
typedef struct kendpoint {
    int32_t node_id;
    kstr_t host;
    int32_t port;
    size_t host_off; /* input offset of the Host field */
    size_t end_off;  /* input offset just past the Port field */
} kendpoint_t;

int krewrite_needed(int16_t api_key)
{
    return api_key == KAPI_Metadata || api_key == KAPI_FindCoordinator ||
           api_key == KAPI_DescribeCluster;
}

/* Reads Host => STRING (COMPACT_STRING when flex), Port => INT32. */
static void read_host_port(krw_t *rw, int32_t node_id, kendpoint_t *ep)
{
    ep->node_id = node_id;
    ep->host_off = rw->r.off;
    ep->host = kr_str_nn(&rw->r, rw->flex);
    ep->port = kr_i32(&rw->r);
    ep->end_off = rw->r.off;
}

/* Copies input [copied, upto) to the output. */
static void copy_upto(krw_t *rw, size_t upto)
{
    kw_raw(rw->out, rw->r.buf + rw->copied, upto - rw->copied);
    rw->copied = upto;
}

/*
 * Replaces one endpoint: copies the gap before its Host, asks the map for
 * the new address and writes it. No-op once the reader has failed, so the
 * map is never called with a half-read endpoint.
 */
static void emit_endpoint(krw_t *rw, const kendpoint_t *ep)
{
    kstr_t host = ep->host;
    int32_t port = ep->port;

    if (!kr_ok(&rw->r) || rw->err || !rw->map)
        return;
    if (rw->map(rw->ctx, ep->node_id, ep->host, ep->port, &host, &port) != 0) {
        rw->err = "endpoint rejected";
        return;
    }
    if (host.len < 0 || host.len > INT16_MAX || (host.len > 0 && !host.ptr)) {
        rw->err = "mapped host invalid";
        return;
    }
    copy_upto(rw, ep->host_off);
    kw_kstr(rw->out, rw->flex, host);
    kw_i32(rw->out, port);
    rw->copied = ep->end_off;
}

/* Reads an endpoint preceded by its node id and rewrites it. */
static void endpoint(krw_t *rw)
{
    kendpoint_t ep;
    int32_t node_id = kr_i32(&rw->r);
    read_host_port(rw, node_id, &ep);
    emit_endpoint(rw, &ep);
}

/*
 * A Brokers array (Metadata, DescribeCluster):
 *
 *   Brokers => [NodeId Host Port Rack TAG_BUFFER(flex)]
 *     NodeId => INT32 (BrokerId in DescribeCluster)
 *     Host => STRING
 *     Port => INT32
 *     Rack => NULLABLE_STRING (when has_rack)
 *
 * Never null. Each element takes at least 10 bytes (12 with a rack).
 */
static void brokers(krw_t *rw, int has_rack)
{
    size_t min_elem = (rw->flex ? 1 : 2) + 8 + (has_rack ? (rw->flex ? 1 : 2) : 0) + rw->flex;
    int32_t n = kr_array(&rw->r, rw->flex, min_elem);
    if (n < 0)
        kr_fail(&rw->r, KR_ENULL);
    for (int32_t i = 0; i < n && kr_ok(&rw->r) && !rw->err; i++) {
        endpoint(rw);
        if (has_rack)
            (void)kr_str(&rw->r, rw->flex);
        if (rw->flex)
            kr_tags(&rw->r);
    }
}

/*
 * MetadataResponse v0-v12 (header v1 from v9):
 *
 *   ThrottleTimeMs => INT32 (v3+)
 *   Brokers => [NodeId Host Port Rack(v1+) TAG_BUFFER(v9+)]
 *   ClusterId(v2+) ControllerId(v1+) [Topics] ... : copied unchanged
 */
static void metadata(krw_t *rw, int16_t ver)
{
    if (ver >= 3)
        (void)kr_i32(&rw->r); /* ThrottleTimeMs */
    brokers(rw, ver >= 1);
}

/*
 * One FindCoordinator v4+ coordinator:
 *
 *   Key => COMPACT_STRING
 *   NodeId => INT32
 *   Host => COMPACT_STRING
 *   Port => INT32
 *   ErrorCode => INT16
 *   ErrorMessage => COMPACT_NULLABLE_STRING
 *   TAG_BUFFER
 *
 * An entry with an error (NodeId -1, Host "") is copied as it is.
 */
static void coordinator(krw_t *rw)
{
    kendpoint_t ep;
    (void)kr_str_nn(&rw->r, rw->flex); /* Key */
    int32_t node_id = kr_i32(&rw->r);
    read_host_port(rw, node_id, &ep);
    int16_t error_code = kr_i16(&rw->r);
    (void)kr_str(&rw->r, rw->flex); /* ErrorMessage */
    kr_tags(&rw->r);
    if (error_code == 0 && node_id >= 0)
        emit_endpoint(rw, &ep);
}

/*
 * FindCoordinatorResponse (header v1 from v3):
 *
 *   v0:    ErrorCode NodeId Host Port
 *   v1-v3: ThrottleTimeMs ErrorCode ErrorMessage NodeId Host Port
 *          TAG_BUFFER(v3)
 *   v4:    ThrottleTimeMs [Coordinators] TAG_BUFFER
 *     ThrottleTimeMs => INT32
 *     ErrorCode => INT16
 *     ErrorMessage => NULLABLE_STRING
 *     NodeId => INT32
 *     Host => STRING
 *     Port => INT32
 *
 * As in v4, an answer with an error is copied as it is.
 */
static void find_coordinator(krw_t *rw, int16_t ver)
{
    kendpoint_t ep;

    if (ver >= 1)
        (void)kr_i32(&rw->r); /* ThrottleTimeMs */
    if (ver >= 4) {
        /* Key(2) NodeId(4) Host(1) Port(4) ErrorCode(2) ErrorMessage(1) TAG_BUFFER(1) */
        int32_t n = kr_array(&rw->r, 1, 15);
        if (n < 0)
            kr_fail(&rw->r, KR_ENULL);
        for (int32_t i = 0; i < n && kr_ok(&rw->r) && !rw->err; i++)
            coordinator(rw);
        return;
    }
    int16_t error_code = kr_i16(&rw->r);
    if (ver >= 1)
        (void)kr_str(&rw->r, rw->flex); /* ErrorMessage */
    int32_t node_id = kr_i32(&rw->r);
    read_host_port(rw, node_id, &ep);
    if (error_code == 0 && node_id >= 0)
        emit_endpoint(rw, &ep);
}

/*
 * DescribeClusterResponse v0-v1 (flexible; header v1):
 *
 *   ThrottleTimeMs => INT32
 *   ErrorCode => INT16
 *   ErrorMessage => COMPACT_NULLABLE_STRING
 *   EndpointType => INT8 (v1+)
 *   ClusterId => COMPACT_STRING
 *   ControllerId => INT32
 *   Brokers => [BrokerId Host Port Rack TAG_BUFFER]
 *   ClusterAuthorizedOperations TAG_BUFFER : copied unchanged
 */
static void describe_cluster(krw_t *rw, int16_t ver)
{
    (void)kr_i32(&rw->r); /* ThrottleTimeMs */
    (void)kr_i16(&rw->r); /* ErrorCode */
    (void)kr_str(&rw->r, 1);
    if (ver >= 1)
        (void)kr_i8(&rw->r);    /* EndpointType */
    (void)kr_str_nn(&rw->r, 1); /* ClusterId */
    (void)kr_i32(&rw->r);       /* ControllerId */
    brokers(rw, 1);
}

/* Highest known version of an API that needs rewriting. */
static int16_t max_version(int16_t api_key)
{
    switch (api_key) {
    case KAPI_Metadata:
        return METADATA_MAX_VER;
    case KAPI_FindCoordinator:
        return FINDCOORDINATOR_MAX_VER;
    case KAPI_DescribeCluster:
        return DESCRIBECLUSTER_MAX_VER;
    }
    return -1;
}

/* Walks the body of a response that needs rewriting. */
static void rewrite_body(krw_t *rw, int16_t api_key, int16_t ver)
{
    switch (api_key) {
    case KAPI_Metadata:
        metadata(rw, ver);
        break;
    case KAPI_FindCoordinator:
        find_coordinator(rw, ver);
        break;
    case KAPI_DescribeCluster:
        describe_cluster(rw, ver);
        break;
    }
}

/* Drops what was appended to out since start and reports why. */
static int fail(kwriter_t *out, size_t start, const char **err, const char *why)
{
    out->len = start;
    if (err)
        *err = why;
    return -1;
}

int krewrite_response(int16_t api_key, int16_t ver, const uint8_t *frame, size_t len,
                      kaddr_map_fn map, void *ctx, kwriter_t *out, const char **err)
{
    krw_t rw = {.out = out, .map = map, .ctx = ctx};
    size_t start = out->len;
    size_t body_off;
    int32_t correlation_id;

    if (len > INT32_MAX)
        return fail(out, start, err, "frame too large");
    kr_init(&rw.r, frame, len);
    kw_i32(out, 0); /* size prefix, patched below */
    if (krewrite_needed(api_key)) {
        if (ver < 0 || ver > max_version(api_key))
            return fail(out, start, err, "unsupported version");
        if (kproto_parse_response_header(api_key, ver, frame, len, &correlation_id, &body_off) < 0)
            return fail(out, start, err, "malformed response header");
        rw.flex = kproto_is_flexible(api_key, ver);
        rw.r.off = body_off;
        rewrite_body(&rw, api_key, ver);
        if (!kr_ok(&rw.r))
            return fail(out, start, err, kr_strerror(rw.r.err));
        if (rw.err)
            return fail(out, start, err, rw.err);
    }
    copy_upto(&rw, len);
    if (out->err || out->len - start - 4 > INT32_MAX)
        return fail(out, start, err, "output buffer failed");
    kw_patch_i32(out, start, (int32_t)(out->len - start - 4));
    return 0;
}
