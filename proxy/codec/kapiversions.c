/*
 * kapiversions.c - ApiVersions responses (decode from a broker, intersect
 * with eosproxy's table, encode for a client) and the two requests eosproxy
 * sends on its own control connection: ApiVersions and a topic-less
 * Metadata. See kproto.h for the contracts.
 *
 * Layouts follow Kafka's message specs (clients/src/main/resources/common/
 * message/ApiVersions{Request,Response}.json, MetadataRequest.json,
 * RequestHeader.json). Pure codec: no libevent.
 */
#include "kerror.h"
#include "kproto.h"

#include <string.h>

#ifndef EOSPROXY_VERSION
#define EOSPROXY_VERSION "0.0.0"
#endif

/* First flexible version of ApiVersions (request and response body). */
#define APIVERSIONS_FLEX_VER 3
/* First flexible version of Metadata. */
#define METADATA_FLEX_VER 9

/* Marks every API absent (min 1 > max 0). */
static void ranges_clear(kver_range_t ranges[KAPI_MAX])
{
    for (int i = 0; i < KAPI_MAX; i++) {
        ranges[i].min_ver = 1;
        ranges[i].max_ver = 0;
    }
}

static int range_present(kver_range_t r)
{
    return r.min_ver <= r.max_ver;
}

/*
 * ApiKeys array of an ApiVersions response:
 *
 *   ApiKeys => [ApiKey MinVersion MaxVersion TAG_BUFFER(flex)]
 *     ApiKey => INT16
 *     MinVersion => INT16
 *     MaxVersion => INT16
 *
 * The array is COMPACT_ARRAY when flex, else ARRAY; it is never null.
 * Keys outside [0, KAPI_MAX) are skipped.
 */
static void read_api_keys(kreader_t *r, int flex, kver_range_t ranges[KAPI_MAX])
{
    int32_t n = kr_array(r, flex, flex ? 7 : 6);
    if (n < 0) {
        kr_fail(r, KR_ENULL);
        return;
    }
    for (int32_t i = 0; i < n && kr_ok(r); i++) {
        int16_t key = kr_i16(r);
        int16_t min_ver = kr_i16(r);
        int16_t max_ver = kr_i16(r);
        if (flex)
            kr_tags(r);
        if (kr_ok(r) && key >= 0 && key < KAPI_MAX) {
            ranges[key].min_ver = min_ver;
            ranges[key].max_ver = max_ver;
        }
    }
}

/*
 * ApiVersions response body (after the v0 header: CorrelationId INT32):
 *
 *   ApiVersionsResponse (v0-v2) => ErrorCode [ApiKeys] ThrottleTimeMs(v1+)
 *   ApiVersionsResponse (v3)    => ErrorCode [ApiKeys] ThrottleTimeMs
 *                                  TAG_BUFFER
 *     ErrorCode => INT16
 *     ThrottleTimeMs => INT32
 *
 * v3 arrays are compact and its tagged fields (SupportedFeatures,
 * FinalizedFeatures...) are skipped. Returns ErrorCode, or -1 if malformed.
 * Bytes after the body are ignored, as Kafka's clients do.
 */
static int parse_body(int16_t ver, kreader_t *r, kver_range_t ranges[KAPI_MAX])
{
    int flex = ver >= APIVERSIONS_FLEX_VER;
    int16_t error_code = kr_i16(r);
    read_api_keys(r, flex, ranges);
    if (ver >= 1)
        (void)kr_i32(r); /* ThrottleTimeMs */
    if (flex)
        kr_tags(r);
    return kr_ok(r) ? error_code : -1;
}

/*
 * A broker that does not support the requested version answers
 * UNSUPPORTED_VERSION with the v0 layout (KIP-511), listing at least its
 * ApiVersions range. Since the error code is the first body field at every
 * version, it is read before choosing the layout. If the v0 decode of such
 * an answer fails (some brokers, e.g. librdkafka's mock, encode it
 * differently) the ranges stay absent but the error is still returned:
 * the caller only needs it to retry with a lower version.
 */
int kproto_apiversions_parse(int16_t ver, const uint8_t *frame, size_t len,
                             kver_range_t ranges[KAPI_MAX])
{
    kreader_t r;

    ranges_clear(ranges);
    if (ver < 0 || ver > APIVERSIONS_FLEX_VER)
        return -1;
    kr_init(&r, frame, len);
    (void)kr_i32(&r); /* CorrelationId (header v0) */
    size_t body_off = r.off;
    int16_t error_code = kr_i16(&r);
    if (!kr_ok(&r))
        return -1;

    r.off = body_off;
    if (error_code != KERR_UNSUPPORTED_VERSION)
        return parse_body(ver, &r, ranges);
    if (parse_body(0, &r, ranges) < 0)
        ranges_clear(ranges);
    return KERR_UNSUPPORTED_VERSION;
}

void kproto_apiversions_intersect(const kver_range_t upstream[KAPI_MAX], kver_range_t out[KAPI_MAX])
{
    ranges_clear(out);
    for (int16_t key = 0; key < KAPI_MAX; key++) {
        const kapi_info_t *api = kproto_api(key);
        if (!api || !range_present(upstream[key]))
            continue;
        int16_t lo = api->min_ver > upstream[key].min_ver ? api->min_ver : upstream[key].min_ver;
        int16_t hi = api->max_ver < upstream[key].max_ver ? api->max_ver : upstream[key].max_ver;
        if (lo <= hi) {
            out[key].min_ver = lo;
            out[key].max_ver = hi;
        }
    }
}

/* Starts a frame: a 4-byte size placeholder. Returns its offset. */
static size_t frame_begin(kwriter_t *w)
{
    size_t off = w->len;
    kw_i32(w, 0);
    return off;
}

/* Patches the size prefix written by frame_begin; 0 or -1 on writer error. */
static int frame_end(kwriter_t *w, size_t off)
{
    if (w->err)
        return -1;
    kw_patch_i32(w, off, (int32_t)(w->len - off - 4));
    return 0;
}

/*
 * Response frame (header v0 at every version, even the flexible v3):
 *
 *   Size => INT32
 *   CorrelationId => INT32
 *   ErrorCode => INT16
 *   ApiKeys => [ApiKey MinVersion MaxVersion TAG_BUFFER(v3)]
 *   ThrottleTimeMs => INT32 (v1+), always 0
 *   TAG_BUFFER (v3), empty
 */
int kproto_apiversions_build(kwriter_t *w, int16_t ver, int32_t correlation_id, int16_t error_code,
                             const kver_range_t ranges[KAPI_MAX])
{
    int flex = ver >= APIVERSIONS_FLEX_VER;
    int32_t n = 0;

    if (ver < 0 || ver > APIVERSIONS_FLEX_VER)
        return -1;
    for (int key = 0; ranges && key < KAPI_MAX; key++)
        n += range_present(ranges[key]);

    size_t off = frame_begin(w);
    kw_i32(w, correlation_id);
    kw_i16(w, error_code);
    kw_array(w, flex, n);
    for (int16_t key = 0; ranges && key < KAPI_MAX; key++) {
        if (!range_present(ranges[key]))
            continue;
        kw_i16(w, key);
        kw_i16(w, ranges[key].min_ver);
        kw_i16(w, ranges[key].max_ver);
        if (flex)
            kw_tags_empty(w);
    }
    if (ver >= 1)
        kw_i32(w, 0);
    if (flex)
        kw_tags_empty(w);
    return frame_end(w, off);
}

/* ClientId as a view; NULL writes a null string. */
static kstr_t client_id_str(const char *client_id)
{
    return (kstr_t){client_id, client_id ? (int32_t)strnlen(client_id, INT16_MAX) : -1};
}

/*
 * ApiVersionsRequest (v0-v2) => (empty body), header v1
 * ApiVersionsRequest (v3)    => ClientSoftwareName ClientSoftwareVersion
 *                               TAG_BUFFER, header v2
 *   ClientSoftwareName => COMPACT_STRING ("eosproxy")
 *   ClientSoftwareVersion => COMPACT_STRING (EOSPROXY_VERSION)
 */
int kproto_apiversions_request(kwriter_t *w, int16_t ver, int32_t correlation_id,
                               const char *client_id)
{
    static const char name[] = "eosproxy";
    static const char version[] = EOSPROXY_VERSION;
    int flex = ver >= APIVERSIONS_FLEX_VER;

    if (ver < 0 || ver > APIVERSIONS_FLEX_VER)
        return -1;
    size_t off = frame_begin(w);
    kproto_write_request_header(w, KAPI_ApiVersions, ver, correlation_id, client_id_str(client_id));
    if (flex) {
        kw_str(w, 1, name, (int32_t)(sizeof(name) - 1));
        kw_str(w, 1, version, (int32_t)(sizeof(version) - 1));
        kw_tags_empty(w);
    }
    return frame_end(w, off);
}

/*
 * MetadataRequest, versions 1..12, header v1 (v2 from v9):
 *
 *   Topics => [TopicId(v10+) Name TAG_BUFFER(v9+)]   written empty (count
 *             0), which from v1 means "no topics": only brokers come back
 *   AllowAutoTopicCreation => BOOLEAN (v4+), false
 *   IncludeClusterAuthorizedOperations => BOOLEAN (v8-v10), false
 *   IncludeTopicAuthorizedOperations => BOOLEAN (v8+), false
 *   TAG_BUFFER (v9+)
 *
 * v0 is refused: there an empty array means "all topics".
 */
int kproto_metadata_request(kwriter_t *w, int16_t ver, int32_t correlation_id,
                            const char *client_id)
{
    int flex = ver >= METADATA_FLEX_VER;

    if (ver < 1 || ver > 12)
        return -1;
    size_t off = frame_begin(w);
    kproto_write_request_header(w, KAPI_Metadata, ver, correlation_id, client_id_str(client_id));
    kw_array(w, flex, 0);
    if (ver >= 4)
        kw_i8(w, 0);
    if (ver >= 8 && ver <= 10)
        kw_i8(w, 0);
    if (ver >= 8)
        kw_i8(w, 0);
    if (flex)
        kw_tags_empty(w);
    return frame_end(w, off);
}
