/*
 * kcommit.h - OffsetCommit (api 8, v0..v8, flexible from v8) and
 * TxnOffsetCommit (api 28, v0..v3, flexible from v3): request and response
 * bodies, parsed for consumer dedup. eosproxy reads which offsets a
 * consumer commits, and which partitions the coordinator accepted, to turn
 * the eventIds it delivered below those offsets into *done* (dedup.c).
 * Nothing is re-encoded: the frames pass through unchanged.
 *
 * Ownership as in kproduce.h: a parsed kcommit_t owns its arrays (freed by
 * kcommit_free); kstr_t members are views into the parsed body.
 * Pure codec: no libevent.
 */
#ifndef EOSPROXY_KCOMMIT_H
#define EOSPROXY_KCOMMIT_H

#include "kbuf.h"

#include <stddef.h>
#include <stdint.h>

#define KCOMMIT_OFFSET_MAX_VERSION 8 /* OffsetCommit */
#define KCOMMIT_OFFSET_FLEX_VERSION 8
#define KCOMMIT_TXN_MAX_VERSION 3 /* TxnOffsetCommit */
#define KCOMMIT_TXN_FLEX_VERSION 3

/* One partition: a request's CommittedOffset, or a response's ErrorCode. */
typedef struct kcommit_partition {
    int32_t index;
    int64_t committed_offset;       /* request only; -1 in a response */
    int16_t error_code;             /* response only; 0 in a request */
    int32_t committed_leader_epoch; /* request, where the version has it; else -1 */
    kstr_t committed_metadata;      /* request only; nullable */
} kcommit_partition_t;

typedef struct kcommit_topic {
    kstr_t name;
    int32_t npartitions;
    kcommit_partition_t *partitions;
} kcommit_topic_t;

/* The fields dedup needs from either API, request or response. */
typedef struct kcommit {
    kstr_t group_id;          /* request only; null in a response */
    kstr_t transactional_id;  /* TxnOffsetCommit request only; else null */
    int32_t generation_id;    /* request; -1 where the version has none */
    kstr_t member_id;         /* request; "" where the version has none */
    kstr_t group_instance_id; /* request; null where the version has none */
    int32_t throttle_time_ms; /* response only (OffsetCommit v3+, TxnOffsetCommit v0+) */
    int32_t ntopics;
    kcommit_topic_t *topics;
} kcommit_t;

/*
 * Parses the request body (bytes after the request header) of api_key 8
 * (OffsetCommit) or 28 (TxnOffsetCommit), version ver, into *out (zeroed
 * first). Every field of the version is read (the ones dedup does not need
 * are skipped); trailing bytes are an error. Returns 0, or an enum kr_err
 * (KR_EINVALID for an unknown api or version) with *err_off (if not NULL)
 * the body offset of the bad field; on error out holds nothing to free.
 *
 *   OffsetCommitRequest => GroupId GenerationId(1+) MemberId(1+)
 *     GroupInstanceId(7+, nullable) RetentionTimeMs(2-4)
 *     [Topics => Name [Partitions => PartitionIndex CommittedOffset
 *       CommittedLeaderEpoch(6+) CommitTimestamp(1) CommittedMetadata]]
 *   TxnOffsetCommitRequest => TransactionalId GroupId ProducerId
 *     ProducerEpoch GenerationId(3+) MemberId(3+) GroupInstanceId(3+)
 *     [Topics => Name [Partitions => PartitionIndex CommittedOffset
 *       CommittedLeaderEpoch(2+) CommittedMetadata]]
 */
int kcommit_req_parse(int16_t api_key, int16_t ver, const uint8_t *body, size_t len, kcommit_t *out,
                      size_t *err_off);

/*
 * Parses the response body (bytes after the response header), same
 * contract:
 *
 *   OffsetCommitResponse => ThrottleTimeMs(3+)
 *     [Topics => Name [Partitions => PartitionIndex ErrorCode]]
 *   TxnOffsetCommitResponse => ThrottleTimeMs
 *     [Topics => Name [Partitions => PartitionIndex ErrorCode]]
 */
int kcommit_resp_parse(int16_t api_key, int16_t ver, const uint8_t *body, size_t len,
                       kcommit_t *out, size_t *err_off);

/*
 * Appends an OffsetCommitResponse frame (size prefix and header included)
 * for an OffsetCommit request c of version ver (0..KCOMMIT_OFFSET_MAX_
 * VERSION): every partition of c, in c's order, gets error_code.
 * Returns 0 or -1.
 */
int kcommit_resp_write(kwriter_t *w, int16_t ver, int32_t correlation_id, const kcommit_t *c,
                       int16_t error_code);

/* Frees the arrays; kcommit_free on a zeroed struct is safe. */
void kcommit_free(kcommit_t *c);

/*
 * EndTxn (api 26), versions 0..5 (flexible from 3), the fields dedup needs:
 *   EndTxnRequest  => TransactionalId ProducerId ProducerEpoch Committed
 *   EndTxnResponse => ThrottleTimeMs ErrorCode ...
 * kcommit_endtxn_req_parse: body after the request header; sets the id (a
 * view) and committed (0/1). Returns 0 or an enum kr_err.
 * kcommit_endtxn_resp_error: body after the response header; returns the
 * ErrorCode, or -1 if the body is too short.
 */
int kcommit_endtxn_req_parse(int16_t ver, const uint8_t *body, size_t len, kstr_t *txn_id,
                             int *committed);
int kcommit_endtxn_resp_error(int16_t ver, const uint8_t *body, size_t len);

#endif
