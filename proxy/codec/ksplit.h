/*
 * ksplit.h - per-topic authorization on the wire: take the topics a user
 * may not touch out of a request, answer them with an error, and merge
 * that answer into the broker's response for the rest.
 *
 * "A denied topic gets TOPIC_AUTHORIZATION_FAILED in that topic's
 * response slot, the rest of the request proceeds." For a request with
 * topics A (allowed) and B (denied), the caller forwards the request
 * without B (ksplit_request, PARTIAL) and, when the broker answers, hands
 * the answer to ksplit_merge, which adds B with the error code. When every
 * topic is denied nothing goes to the broker: ksplit_answer writes the
 * whole response. The bytes of the allowed topics are never re-encoded,
 * in the request or in the response: the client's and the broker's bytes
 * are copied as they are (records, unknown tagged fields and all).
 *
 * APIs and versions (request header as parsed by kproto):
 *   Produce v3..v9         (topics to produce to)
 *   Fetch v4..v12          (v13+ name topics by id: keep them from clients)
 *   ListOffsets v0..v8     (consume)
 *   OffsetCommit v0..v8    (consume)
 *   Metadata v0..v12       (describe; see below)
 * Which permission applies is the caller's choice (allow() decides).
 *
 * Metadata is the exception to "all denied: answer locally": eosproxy
 * cannot answer it without the broker list, so ksplit_request never
 * returns KSPLIT_DENIED for it.
 *   - A request for all topics (null array, v1+; empty array, v0) is
 *     KSPLIT_ALLOWED: the caller filters the broker's answer with
 *     ksplit_filter_metadata instead.
 *   - A v10+ topic named by id only (name null) cannot be checked: it is
 *     allowed and allow() is not called for it.
 *   - Some named topics denied: KSPLIT_PARTIAL, the request without them
 *     (so the broker never sees, nor auto-creates, a denied topic). If no
 *     topic is left the forwarded array is EMPTY: for v1+ that asks for
 *     no topics (brokers and cluster data only); for v0 it asks for all
 *     topics, so the split is marked and ksplit_merge drops every topic
 *     of the broker's answer before adding the denied ones.
 *   - The merge adds each denied topic as Kafka answers an unauthorized
 *     one: ErrorCode (29), its name, TopicId all zero (v10+), IsInternal
 *     false (v1+), no partitions, TopicAuthorizedOperations INT32_MIN
 *     (v8+), empty tags (v9+).
 *   - ksplit_answer for Metadata writes those topics with no brokers,
 *     ClusterId null, ControllerId -1 and ClusterAuthorizedOperations
 *     INT32_MIN (v8-10): well-formed, but not a useful answer on its own.
 *
 * Produce with acks=0: the broker sends no response and the client waits
 * for none (kproto_produce_acks), so the caller forwards a PARTIAL request
 * and expects nothing back, and for DENIED sends nothing.
 *
 * Fetch sessions (KIP-227, v7+): the removed topics never reach the broker,
 * so they are not in its session; the client is told 29 for them on every
 * fetch that names them. forgotten_topics_data is forwarded as it came.
 *
 * Admin APIs: ksplit_refuse_all answers a whole CreateTopics, DeleteTopics,
 * CreatePartitions, DeleteRecords or DeleteGroups request with the
 * authorization error for every topic (or group) in it.
 *
 * Memory is bounded by the frame: array counts are checked against the
 * bytes left (kr_array) before anything is allocated. Pure codec: no
 * libevent, no OpenSSL.
 */
#ifndef EOSPROXY_KSPLIT_H
#define EOSPROXY_KSPLIT_H

#include "kbuf.h"
#include "kproto.h"

#include <stddef.h>
#include <stdint.h>

/* 1 if the topic (len bytes, not NUL-terminated) is allowed, else 0. */
typedef int (*ksplit_allow_fn)(void *ctx, const char *topic, size_t len);

/* The topics taken out of one request, with their partition indexes
 * (copied: a ksplit_t does not point into the request frame). */
typedef struct ksplit ksplit_t;

enum { KSPLIT_ERROR = -1, KSPLIT_ALLOWED = 0, KSPLIT_PARTIAL = 1, KSPLIT_DENIED = 2 };

/*
 * Applies allow() to every topic of a request of one of the APIs above.
 * frame = request header + body (no size prefix), len its length, h its
 * parsed header (kproto_parse_request_header). allow() is called once per
 * topic entry, in order, only after the whole body has been read and found
 * well-formed; a topic listed twice is decided once per occurrence.
 *
 *   KSPLIT_ALLOWED  nothing denied (or no topics): nothing written, *out NULL.
 *   KSPLIT_PARTIAL  w gets the complete new request frame: 4-byte size
 *                   prefix, the original header bytes unchanged, the body
 *                   with the denied topics left out (every other byte as
 *                   it came; for Fetch, forgotten_topics_data kept as is);
 *                   *out the removed topics.
 *   KSPLIT_DENIED   every topic removed: *out set, nothing written to w
 *                   (never for Metadata: see above).
 *   KSPLIT_ERROR    malformed body, an API or version not listed above, or
 *                   out of memory: *out NULL, w as it was (unless w->err).
 *
 * The caller frees *out with ksplit_free.
 */
int ksplit_request(const kreq_hdr_t *h, const uint8_t *frame, size_t len, ksplit_allow_fn allow,
                   void *ctx, kwriter_t *w, ksplit_t **out);

/*
 * Appends a complete response frame (size prefix included, response header
 * v0, or v1 with empty tags for flexible versions) answering correlation
 * id corr with every removed topic/partition of s given error_code, and
 * throttle 0. Per partition:
 *   Produce:      base_offset -1, log_append_time -1, log_start_offset -1,
 *                 no record errors, error_message null;
 *   Fetch:        high_watermark -1, last_stable_offset -1,
 *                 log_start_offset -1, aborted transactions empty,
 *                 preferred_read_replica -1, records EMPTY (length 0, not
 *                 null: librdkafka rejects a whole Fetch response with a
 *                 null record set); top-level error 0, session_id 0;
 *   ListOffsets:  timestamp -1, offset -1, leader_epoch -1 (v0: no
 *                 old-style offsets);
 *   OffsetCommit: the error only.
 * Meant for DENIED; on a PARTIAL split it answers the removed topics only.
 * Returns 0, or -1 (s NULL, or the writer failed: w->err set).
 */
int ksplit_answer(const ksplit_t *s, int32_t corr, int16_t error_code, kwriter_t *w);

/*
 * For PARTIAL: appends one complete response frame (size prefix included)
 * made of the broker's response to the split request (frame: the bytes
 * after its size prefix, starting at the correlation id) with the removed
 * topics of s added after the broker's, answered as in ksplit_answer. The
 * broker's bytes are kept exactly: its header (correlation id, tags), its
 * topics (records untouched), throttle, for Fetch v7+ its top-level error
 * and session id, and its tagged fields; only the topic count changes.
 * Returns 0, or -1 if the broker's response is malformed (nothing
 * written), s is NULL, or the writer failed (w->err set).
 */
int ksplit_merge(const ksplit_t *s, const uint8_t *frame, size_t len, int16_t error_code,
                 kwriter_t *w);

/*
 * Filters a Metadata response (ver 0..12; frame: the bytes after its size
 * prefix, from the correlation id; krewrite may have rewritten it): every
 * topic whose name allow() refuses is left out. allow() is called once per
 * named topic, in order, after the whole frame was read and found
 * well-formed; a topic with a null name (v12+) is kept without a call.
 * Appends to w the complete new frame (size prefix included) even when
 * nothing was removed: every byte but the topic count and the removed
 * topics is the broker's (header, throttle, brokers, ClusterId,
 * ControllerId, ClusterAuthorizedOperations, tags). *removed (may be
 * NULL) gets how many topics were removed.
 * Returns 0, or -1 (nothing written, *removed 0) if the frame is
 * malformed, ver is out of range, or the writer failed (w->err set).
 */
int ksplit_filter_metadata(int16_t ver, const uint8_t *frame, size_t len, ksplit_allow_fn allow,
                           void *ctx, kwriter_t *w, size_t *removed);

/* API key and version of the request s came from (-1 for NULL). */
int16_t ksplit_api_key(const ksplit_t *s);
int16_t ksplit_api_version(const ksplit_t *s);

/* Number of removed topic entries, for metrics (0 for NULL). */
size_t ksplit_topic_count(const ksplit_t *s);

/* ksplit_free(NULL) is safe. */
void ksplit_free(ksplit_t *s);

/*
 * Refuses a whole admin request: appends a complete response frame (size
 * prefix, header v0 or v1 as the version needs, throttle 0) that answers
 * every entry of the request (frame and h as for ksplit_request) with an
 * authorization error:
 *   CreateTopics v0..v7       every topic: TOPIC_AUTHORIZATION_FAILED (29),
 *                             error_message null, topic_id zero (v7),
 *                             num_partitions -1, replication_factor -1 and
 *                             configs null (v5+);
 *   DeleteTopics v0..v6       every topic (v6: its name or null, and its
 *                             topic_id as sent): 29, error_message null (v5+);
 *   CreatePartitions v0..v3   every topic: 29, error_message null;
 *   DeleteRecords v0..v2      every partition: 29, low_watermark -1;
 *   DeleteGroups v0..v2       every group: GROUP_AUTHORIZATION_FAILED (30).
 * The body is read completely first. Returns 0, or -1 for a malformed
 * body or another API/version (nothing written), or a writer failure.
 */
int ksplit_refuse_all(const kreq_hdr_t *h, const uint8_t *frame, size_t len, kwriter_t *w);

#endif
