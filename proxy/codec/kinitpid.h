/*
 * kinitpid.h - InitProducerIdRequest and InitProducerIdResponse, v0..v4.
 *
 * eosproxy asks the cluster for its own producer id (transactional id
 * null) to upgrade non-idempotent clients, and bumps its epoch (KIP-360,
 * v3+: the request carries the current ProducerId/ProducerEpoch) when a
 * broker fences or forgets it. Version 2 is the first flexible version
 * (request header v2, response header v1).
 *
 *   InitProducerIdRequest  => TransactionalId TransactionTimeoutMs
 *                             ProducerId@3+ ProducerEpoch@3+ TAG_BUFFER@2+
 *     TransactionalId      => NULLABLE_STRING (COMPACT in v2+)
 *     TransactionTimeoutMs => INT32
 *     ProducerId           => INT64 (default -1)
 *     ProducerEpoch        => INT16 (default -1)
 *   InitProducerIdResponse => ThrottleTimeMs ErrorCode ProducerId
 *                             ProducerEpoch TAG_BUFFER@2+
 *
 * Pure codec: no libevent. Parsed strings are views into the parsed frame.
 */
#ifndef EOSPROXY_KINITPID_H
#define EOSPROXY_KINITPID_H

#include "kbuf.h"

#include <stdint.h>

#define KINITPID_MIN_VERSION 0
#define KINITPID_MAX_VERSION 4
#define KINITPID_FLEX_VERSION 2
/* First version whose request carries ProducerId/ProducerEpoch (KIP-360). */
#define KINITPID_BUMP_VERSION 3

/* InitProducerIdRequest body. producer_id/epoch are -1 below v3. */
typedef struct kinitpid_req {
    kstr_t transactional_id; /* nullable */
    int32_t transaction_timeout_ms;
    int64_t producer_id;
    int16_t producer_epoch;
} kinitpid_req_t;

/* InitProducerIdResponse. */
typedef struct kinitpid_resp {
    int32_t correlation_id;
    int32_t throttle_time_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch;
} kinitpid_resp_t;

/*
 * Appends a complete InitProducerIdRequest frame (4-byte size prefix,
 * request header v1, or v2 with empty tags from v2, then the body) to w.
 * ProducerId/ProducerEpoch are written from v3 only; below v3 they must be
 * -1 (a bump cannot be expressed), else -1 is returned. Returns 0, or -1
 * if ver is outside 0..4 or the writer failed.
 */
int kinitpid_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                       const kinitpid_req_t *req);

/*
 * Parses an InitProducerIdRequest body (the bytes after the request
 * header) of version ver into *req. Trailing bytes are an error. Returns 0
 * or an enum kr_err (> 0); KR_EINVALID for a version outside 0..4.
 */
int kinitpid_req_parse(int16_t ver, const uint8_t *body, size_t len, kinitpid_req_t *req);

/*
 * Parses an InitProducerIdResponse frame (the bytes after the size prefix,
 * starting with the response header) of version ver into *resp. Unknown
 * tagged fields are skipped; trailing bytes are an error. Returns 0 or an
 * enum kr_err (> 0); KR_EINVALID for a version outside 0..4.
 */
int kinitpid_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kinitpid_resp_t *resp);

/*
 * Appends a complete InitProducerIdResponse frame (size prefix, response
 * header v0, or v1 with empty tags from v2, then the body). For tests and
 * local answers. Returns 0, or -1 on a bad version or writer failure.
 */
int kinitpid_resp_write(kwriter_t *w, int16_t ver, const kinitpid_resp_t *resp);

#endif
