/*
 * ktxn.h - the transaction coordinator APIs eosproxy sends itself:
 * FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
 * TxnOffsetCommit, request
 * writers and response parsers (plus response writers, for tests and the
 * fuzz target's round trips).
 *
 * The transactional engine finds the transaction coordinator of its own
 * transactional id, adds the partitions it is about to produce to, commits
 * consumed offsets inside the transaction (consume-process-produce) and
 * ends the transaction. Every API here is flexible from version 3 (request
 * header v2, response header v1, compact strings and arrays, TAG_BUFFERs).
 * Field names are Kafka's (clients/src/main/resources/common/message/).
 *
 *   FindCoordinatorRequest (api 10, v0..v6) => Key@0-3 KeyType@1+
 *                                              CoordinatorKeys@4+ TAG_BUFFER@3+
 *     Key             => STRING
 *     KeyType         => INT8 (0 group, 1 transaction)
 *     CoordinatorKeys => [STRING]
 *   FindCoordinatorResponse => ThrottleTimeMs@1+ ErrorCode@0-3
 *                              ErrorMessage@1-3 NodeId@0-3 Host@0-3 Port@0-3
 *                              Coordinators@4+ TAG_BUFFER@3+
 *     ErrorMessage    => NULLABLE_STRING
 *     Coordinators    => [Key NodeId Host Port ErrorCode ErrorMessage TAG_BUFFER]
 *   (v5 adds the error TRANSACTION_ABORTABLE, v6 share groups: no field.)
 *
 *   AddPartitionsToTxnRequest (api 24, v0..v5) =>
 *       Transactions@4+ V3AndBelowTransactionalId@0-3
 *       V3AndBelowProducerId@0-3 V3AndBelowProducerEpoch@0-3
 *       V3AndBelowTopics@0-3 TAG_BUFFER@3+
 *     Transactions    => [TransactionalId ProducerId ProducerEpoch VerifyOnly
 *                         Topics TAG_BUFFER]
 *     Topics, V3AndBelowTopics => [Name [Partitions => INT32] TAG_BUFFER@3+]
 *     VerifyOnly      => BOOLEAN (eosproxy writes false)
 *   AddPartitionsToTxnResponse => ThrottleTimeMs ErrorCode@4+
 *       ResultsByTransaction@4+ ResultsByTopicV3AndBelow@0-3 TAG_BUFFER@3+
 *     ResultsByTransaction     => [TransactionalId TopicResults TAG_BUFFER]
 *     TopicResults, ResultsByTopicV3AndBelow =>
 *       [Name [ResultsByPartition => PartitionIndex PartitionErrorCode
 *              TAG_BUFFER@3+] TAG_BUFFER@3+]
 *
 *   AddOffsetsToTxnRequest (api 25, v0..v4) => TransactionalId ProducerId
 *                                     ProducerEpoch GroupId TAG_BUFFER@3+
 *   AddOffsetsToTxnResponse => ThrottleTimeMs ErrorCode TAG_BUFFER@3+
 *   (v4 adds the error TRANSACTION_ABORTABLE: no field.)
 *
 *   EndTxnRequest (api 26, v0..v5) => TransactionalId ProducerId
 *                                     ProducerEpoch Committed TAG_BUFFER@3+
 *     Committed       => BOOLEAN (true commit, false abort)
 *   EndTxnResponse => ThrottleTimeMs ErrorCode ProducerId@5+ ProducerEpoch@5+
 *                     TAG_BUFFER@3+   (v5: KIP-890 part 2, the bumped epoch)
 *
 *   TxnOffsetCommitRequest (api 28, v0..v5) => TransactionalId GroupId
 *       ProducerId ProducerEpoch GenerationId@3+ MemberId@3+
 *       GroupInstanceId@3+ Topics TAG_BUFFER@3+
 *     GroupInstanceId => NULLABLE_STRING
 *     Topics          => [Name [Partitions => PartitionIndex CommittedOffset
 *                         CommittedLeaderEpoch@2+ CommittedMetadata
 *                         TAG_BUFFER@3+] TAG_BUFFER@3+]
 *     CommittedMetadata => NULLABLE_STRING
 *   TxnOffsetCommitResponse => ThrottleTimeMs
 *       [Topics => Name [Partitions => PartitionIndex ErrorCode TAG_BUFFER@3+]
 *        TAG_BUFFER@3+] TAG_BUFFER@3+
 *   (v4 adds the error TRANSACTION_ABORTABLE; v5, Kafka 4.0, makes the
 *    commit add the offsets partition to the transaction itself, KIP-890
 *    part 2: the same wire format as v3.)
 *
 * Request writers append a complete frame: the 4-byte size prefix, the
 * request header (v1, or v2 with empty tags when flexible) and the body.
 * They return 0, or -1 (nothing appended) for a version outside the API's
 * range, an argument the version cannot express or the schema forbids
 * (a null non-nullable string, a string over 32767 bytes, a negative
 * count), or -1 when the writer fails.
 *
 * Response parsers take the frame: the bytes after the size prefix,
 * response header included. They skip unknown tagged fields, refuse
 * truncation and trailing bytes, bound every array count by the bytes left
 * (peer input never asserts nor over-allocates), and return 0 or an enum
 * kr_err (> 0); KR_EINVALID for a version outside the API's range.
 *
 * Pure codec: no libevent. Parsed strings are views into the parsed frame;
 * result arrays are malloc'd and freed by the matching _free.
 */
#ifndef EOSPROXY_KTXN_H
#define EOSPROXY_KTXN_H

#include "kbuf.h"

#include <stdint.h>

#define KTXN_FINDCOORD_MAX_VERSION 6
#define KTXN_FINDCOORD_FLEX_VERSION 3
#define KTXN_FINDCOORD_BATCH_VERSION 4 /* CoordinatorKeys / Coordinators (KIP-699) */
#define KTXN_ADDPARTS_MAX_VERSION 5
#define KTXN_ADDPARTS_FLEX_VERSION 3
#define KTXN_ADDPARTS_BATCH_VERSION 4 /* Transactions / ResultsByTransaction */
#define KTXN_ADDOFFSETS_MAX_VERSION 4
#define KTXN_ADDOFFSETS_FLEX_VERSION 3
#define KTXN_ENDTXN_MAX_VERSION 5
#define KTXN_ENDTXN_FLEX_VERSION 3
#define KTXN_ENDTXN_PID_VERSION 5 /* response ProducerId/ProducerEpoch (KIP-890) */
#define KTXN_TXNOFFSET_MAX_VERSION 5
#define KTXN_TXNOFFSET_FLEX_VERSION 3
#define KTXN_TXNOFFSET_EPOCH_VERSION 2  /* CommittedLeaderEpoch */
#define KTXN_TXNOFFSET_MEMBER_VERSION 3 /* GenerationId MemberId GroupInstanceId */

/* FindCoordinator KeyType values. */
#define KTXN_KEY_GROUP 0
#define KTXN_KEY_TRANSACTION 1

/* ---- FindCoordinator (api 10) ---- */

/*
 * Appends a FindCoordinatorRequest for key of type key_type. v0 has no
 * KeyType and can only ask for a group (key_type 0, else -1); v1..v3 write
 * Key and KeyType; v4+ write KeyType and CoordinatorKeys holding key alone.
 * key must not be null.
 */
int ktxn_findcoord_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                             int8_t key_type, kstr_t key);

/* One coordinator. host/error_message are views (error_message null when
 * absent: v0, or null on the wire). */
typedef struct ktxn_coord {
    int16_t error_code;
    int32_t node_id;
    kstr_t host;
    int32_t port;
    kstr_t error_message;
} ktxn_coord_t;

/*
 * Parses a FindCoordinatorResponse frame. v0..v3: the single coordinator
 * (key is not looked at); v4+: the first Coordinators entry whose Key
 * equals key, KR_EINVALID when none does (the whole frame is still
 * checked first). On error *out is reset (node_id and port -1, strings
 * null). Returns 0 or an enum kr_err.
 */
int ktxn_findcoord_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kstr_t key,
                              ktxn_coord_t *out);

/*
 * Appends a FindCoordinatorResponse frame (tests, fuzz round trips): v0..v3
 * need n == 1 (keys ignored, ErrorMessage dropped in v0, ThrottleTimeMs
 * from v1); v4+ write n Coordinators, keys[i] with coords[i]. Returns 0 or
 * -1 (bad version, n, or string).
 */
int ktxn_findcoord_resp_write(kwriter_t *w, int16_t ver, int32_t correlation_id,
                              int32_t throttle_time_ms, const kstr_t *keys,
                              const ktxn_coord_t *coords, int32_t n);

/* ---- AddPartitionsToTxn (api 24) ---- */

/* A topic and the indexes of its partitions to add to the transaction. */
typedef struct ktxn_topic {
    kstr_t name;
    int32_t npartitions;
    const int32_t *partitions;
} ktxn_topic_t;

/*
 * Appends an AddPartitionsToTxnRequest. v0..v3: the client form
 * (V3AndBelowTransactionalId ProducerId ProducerEpoch Topics); v4+: the
 * batched form with one transaction, VerifyOnly false. transactional_id
 * and topic names must not be null; ntopics >= 0 (topics may be NULL when
 * 0), npartitions >= 0.
 */
int ktxn_addparts_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                            kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                            const ktxn_topic_t *topics, int32_t ntopics);

/* One partition's result (AddPartitionsToTxn, TxnOffsetCommit). topic is a
 * view into the frame. */
typedef struct ktxn_part_result {
    kstr_t topic;
    int32_t partition;
    int16_t error_code;
} ktxn_part_result_t;

typedef struct ktxn_addparts_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int16_t error_code; /* top-level, v4+; 0 below */
    int32_t nresults;
    ktxn_part_result_t *results; /* malloc'd, freed by _free */
} ktxn_addparts_resp_t;

/*
 * Parses an AddPartitionsToTxnResponse frame into *out (zeroed first): every
 * partition result, flattened in wire order (v4+: of every transaction in
 * ResultsByTransaction; eosproxy sends one). On error out holds nothing to
 * free. Returns 0 or an enum kr_err.
 */
int ktxn_addparts_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                             ktxn_addparts_resp_t *out);
/* Frees the results and zeroes *r; NULL-safe. */
void ktxn_addparts_resp_free(ktxn_addparts_resp_t *r);

/*
 * Appends an AddPartitionsToTxnResponse frame (tests): consecutive results
 * of the same topic form one topic entry; v4+ put them all under one
 * ResultsByTransaction entry for transactional_id (ignored below v4).
 * Returns 0 or -1.
 */
int ktxn_addparts_resp_write(kwriter_t *w, int16_t ver, kstr_t transactional_id,
                             const ktxn_addparts_resp_t *r);

/* ---- AddOffsetsToTxn (api 25) ---- */

/* Appends an AddOffsetsToTxnRequest: the offsets partition of group_id's
 * coordinator joins the transaction (before TxnOffsetCommit).
 * transactional_id and group_id must not be null. */
int ktxn_addoffsets_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                              kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                              kstr_t group_id);

typedef struct ktxn_addoffsets_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int16_t error_code;
} ktxn_addoffsets_resp_t;

/* Parses an AddOffsetsToTxnResponse frame. Returns 0 or an enum kr_err
 * (*out zeroed on error). */
int ktxn_addoffsets_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                               ktxn_addoffsets_resp_t *out);

/* Appends an AddOffsetsToTxnResponse frame (tests). Returns 0 or -1. */
int ktxn_addoffsets_resp_write(kwriter_t *w, int16_t ver, const ktxn_addoffsets_resp_t *r);

/* ---- EndTxn (api 26) ---- */

/* Appends an EndTxnRequest; committed != 0 commits, 0 aborts.
 * transactional_id must not be null. */
int ktxn_endtxn_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                          kstr_t transactional_id, int64_t producer_id, int16_t producer_epoch,
                          int committed);

typedef struct ktxn_endtxn_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch; /* -1 below v5 */
} ktxn_endtxn_resp_t;

/* Parses an EndTxnResponse frame; producer_id/epoch are -1 below v5.
 * Returns 0 or an enum kr_err. */
int ktxn_endtxn_resp_parse(int16_t ver, const uint8_t *frame, size_t len, ktxn_endtxn_resp_t *out);

/* Appends an EndTxnResponse frame (tests; ProducerId/Epoch from v5).
 * Returns 0 or -1. */
int ktxn_endtxn_resp_write(kwriter_t *w, int16_t ver, const ktxn_endtxn_resp_t *r);

/* ---- TxnOffsetCommit (api 28) ---- */

/* One partition's offset to commit. */
typedef struct ktxn_offset_part {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch; /* v2+ (dropped below, Kafka's "ignorable"); -1 unknown */
    kstr_t committed_metadata;      /* nullable */
} ktxn_offset_part_t;

typedef struct ktxn_offset_topic {
    kstr_t name;
    int32_t npartitions;
    const ktxn_offset_part_t *partitions;
} ktxn_offset_topic_t;

/* A TxnOffsetCommitRequest body. */
typedef struct ktxn_txnoffset_req {
    kstr_t transactional_id;
    kstr_t group_id;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t generation_id;    /* v3+; -1 when not a group member */
    kstr_t member_id;         /* v3+; "" (or null, written "") when not a member */
    kstr_t group_instance_id; /* v3+; nullable */
    int32_t ntopics;
    const ktxn_offset_topic_t *topics;
} ktxn_txnoffset_req_t;

/*
 * Appends a TxnOffsetCommitRequest. Below v3 the group metadata cannot be
 * expressed: generation_id must be -1, member_id empty or null and
 * group_instance_id null, else -1 (as Kafka's client refuses, because the
 * coordinator could not fence a zombie member). CommittedLeaderEpoch is
 * written from v2 and dropped below. transactional_id, group_id and topic
 * names must not be null.
 */
int ktxn_txnoffset_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                             const ktxn_txnoffset_req_t *req);

typedef struct ktxn_txnoffset_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int32_t nresults;
    ktxn_part_result_t *results; /* malloc'd, freed by _free */
} ktxn_txnoffset_resp_t;

/* Parses a TxnOffsetCommitResponse frame into *out (zeroed first): every
 * partition's ErrorCode, flattened in wire order. On error out holds
 * nothing to free. Returns 0 or an enum kr_err. */
int ktxn_txnoffset_resp_parse(int16_t ver, const uint8_t *frame, size_t len,
                              ktxn_txnoffset_resp_t *out);
/* Frees the results and zeroes *r; NULL-safe. */
void ktxn_txnoffset_resp_free(ktxn_txnoffset_resp_t *r);

/* Appends a TxnOffsetCommitResponse frame (tests): consecutive results of
 * the same topic form one topic entry. Returns 0 or -1. */
int ktxn_txnoffset_resp_write(kwriter_t *w, int16_t ver, const ktxn_txnoffset_resp_t *r);

#endif
