/*
 * kproto.h - Kafka protocol framing, request/response headers, the API
 * version table and request-body validation.
 *
 * The table of APIs eosproxy can parse (name, version range, first flexible
 * version) is data, and it is the source of eosproxy's ApiVersions answer:
 * a client is never told it may send a version eosproxy cannot decode.
 *
 * Every request body is validated against a schema for its (api, version)
 * before it is forwarded, so nothing malformed reaches a broker.
 *
 * Pure codec: no libevent. "frame" everywhere below means the bytes after
 * the 4-byte size prefix (i.e. starting at the header's first field).
 */
#ifndef EOSPROXY_KPROTO_H
#define EOSPROXY_KPROTO_H

#include "kbuf.h"

#include <stdint.h>

/* Kafka API keys (Kafka's own names). */
enum kapi_key {
    KAPI_Produce = 0,
    KAPI_Fetch = 1,
    KAPI_ListOffsets = 2,
    KAPI_Metadata = 3,
    KAPI_OffsetCommit = 8,
    KAPI_OffsetFetch = 9,
    KAPI_FindCoordinator = 10,
    KAPI_JoinGroup = 11,
    KAPI_Heartbeat = 12,
    KAPI_LeaveGroup = 13,
    KAPI_SyncGroup = 14,
    KAPI_DescribeGroups = 15,
    KAPI_ListGroups = 16,
    KAPI_SaslHandshake = 17,
    KAPI_ApiVersions = 18,
    KAPI_CreateTopics = 19,
    KAPI_DeleteTopics = 20,
    KAPI_DeleteRecords = 21,
    KAPI_InitProducerId = 22,
    KAPI_OffsetForLeaderEpoch = 23,
    KAPI_AddPartitionsToTxn = 24,
    KAPI_AddOffsetsToTxn = 25,
    KAPI_EndTxn = 26,
    KAPI_TxnOffsetCommit = 28,
    KAPI_DescribeConfigs = 32,
    KAPI_SaslAuthenticate = 36,
    KAPI_CreatePartitions = 37,
    KAPI_DeleteGroups = 42,
    KAPI_DescribeCluster = 60,
};

/* Highest API key eosproxy's tables are sized for (exclusive bound). */
#define KAPI_MAX 75

/* Frame size floor: anything smaller cannot hold a request header. */
#define KPROTO_MIN_REQUEST 8

/* One row of the version table. */
typedef struct kapi_info {
    int16_t api_key;
    const char *name; /* Kafka's name, e.g. "Produce" */
    int16_t min_ver;  /* lowest version eosproxy parses */
    int16_t max_ver;  /* highest version eosproxy parses */
    int16_t flex_ver; /* first flexible version, or -1 if none in range */
} kapi_info_t;

/* A version range as exchanged in ApiVersions. min > max means "absent". */
typedef struct kver_range {
    int16_t min_ver;
    int16_t max_ver;
} kver_range_t;

/* Row for api_key, or NULL when eosproxy does not know that API at all. */
const kapi_info_t *kproto_api(int16_t api_key);
/* Kafka's name for an API key ("Produce"), or "Unknown". Never NULL. */
const char *kproto_api_name(int16_t api_key);
/* 1 if (api_key, ver) uses flexible encodings (request and response body). */
int kproto_is_flexible(int16_t api_key, int16_t ver);
/* Request header version (0, 1 or 2) for (api_key, ver). */
int kproto_request_header_version(int16_t api_key, int16_t ver);
/* Response header version (0 or 1). ApiVersions responses always use 0. */
int kproto_response_header_version(int16_t api_key, int16_t ver);

/*
 * Appends a request header for (api_key, ver): RequestApiKey,
 * RequestApiVersion, CorrelationId, ClientId (INT16-length nullable string,
 * never compact), then an empty TAG_BUFFER when the version is flexible
 * (header v2). Used by every request eosproxy writes itself.
 */
void kproto_write_request_header(kwriter_t *w, int16_t api_key, int16_t ver, int32_t correlation_id,
                                 kstr_t client_id);

/* Parsed request header. Views point into the frame. */
typedef struct kreq_hdr {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kstr_t client_id; /* nullable */
    size_t body_off;  /* offset of the body in the frame */
} kreq_hdr_t;

/*
 * Parses the request header at the start of frame[0..len). The API must be
 * in the version table and api_version within [min_ver, max_ver] of that
 * table, else -1 with *err set to a static message. (ApiVersions requests
 * with a version above the table are accepted so the caller can answer
 * UNSUPPORTED_VERSION the way a broker does; see kproto_apiversions_*.)
 * Returns 0 on success.
 */
int kproto_parse_request_header(const uint8_t *frame, size_t len, kreq_hdr_t *h, const char **err);

/*
 * Validates the request body frame[h->body_off..len) against the schema of
 * (h->api_key, h->api_version): every field present, lengths in range,
 * tagged fields well-formed, no trailing bytes. Returns 0 if valid, else -1
 * with *err_off set to the offset (in frame) of the first bad field and
 * *err to a static message.
 */
int kproto_validate_request(const kreq_hdr_t *h, const uint8_t *frame, size_t len, size_t *err_off,
                            const char **err);

/*
 * Reads the acks field of a Produce request (any version in the table).
 * Returns acks (-1, 0 or 1) or -2 if the body is malformed (an acks value
 * outside -1..1 counts as malformed) or h is not a Produce request.
 */
int kproto_produce_acks(const kreq_hdr_t *h, const uint8_t *frame, size_t len);

/*
 * Response header: returns the correlation id and sets *body_off to the
 * offset of the response body (after the tagged fields for header v1).
 * Returns -1 if the frame is too short or the tags malformed.
 */
int kproto_parse_response_header(int16_t api_key, int16_t ver, const uint8_t *frame, size_t len,
                                 int32_t *correlation_id, size_t *body_off);

/*
 * Self-check of the built-in table, for tests: every row is consistent
 * (min <= max, flex_ver -1 or <= max) and its request schema parses for
 * every version in its range. Returns 0, or -1 with *err set to the name
 * of the first bad API.
 */
int kproto_schema_selfcheck(const char **err);

/*
 * Decodes an ApiVersions response (any version 0..3, header v0) from an
 * upstream broker into ranges[0..KAPI_MAX) (absent APIs: min 1, max 0).
 * Returns the response's ErrorCode (0 on success) or -1 if malformed.
 */
int kproto_apiversions_parse(int16_t ver, const uint8_t *frame, size_t len,
                             kver_range_t ranges[KAPI_MAX]);

/*
 * Intersects eosproxy's version table with the upstream's ranges into out.
 * APIs absent on either side are absent in out.
 */
void kproto_apiversions_intersect(const kver_range_t upstream[KAPI_MAX],
                                  kver_range_t out[KAPI_MAX]);

/*
 * Writes a complete ApiVersions response frame (including the 4-byte size
 * prefix) answering correlation_id at version ver with ErrorCode error_code
 * and the non-absent entries of ranges. For UNSUPPORTED_VERSION (35) the
 * caller passes ver 0, as brokers do. Returns 0, or -1 on writer error.
 */
int kproto_apiversions_build(kwriter_t *w, int16_t ver, int32_t correlation_id, int16_t error_code,
                             const kver_range_t ranges[KAPI_MAX]);

/*
 * Writes complete request frames (size prefix included) that eosproxy sends
 * on its own control connection: ApiVersions at ver (0..3) and a Metadata
 * request at ver asking for no topics (an empty topic array, v1+) so only
 * the brokers come back. client_id is eosproxy's. Return 0 or -1.
 */
int kproto_apiversions_request(kwriter_t *w, int16_t ver, int32_t correlation_id,
                               const char *client_id);
int kproto_metadata_request(kwriter_t *w, int16_t ver, int32_t correlation_id,
                            const char *client_id);

#endif
