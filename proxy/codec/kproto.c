/*
 * kproto.c - the API version table, request/response headers and request
 * body validation. See kproto.h for the contracts.
 *
 * Every API eosproxy accepts has one row below: its Kafka name, the version
 * range eosproxy parses, the first flexible version (KIP-482), and a schema
 * of its request body. The schema is data, written in a tiny language that
 * one walker interprets; it mirrors Kafka's JSON message specs
 * (clients/src/main/resources/common/message/<Name>Request.json), where
 * each field carries the range of versions it exists in.
 *
 * Schema grammar (fields separated by blanks):
 *
 *   schema  := field*
 *   field   := type nullable? present?
 *   type    := prim | prim '*' | '[' schema ']'
 *   prim    := 'i8' | 'i16' | 'i32' | 'i64' | 'bool' | 'uuid'
 *            | 's'     STRING       (COMPACT_STRING when flexible)
 *            | 'b'     BYTES/RECORDS (COMPACT_BYTES when flexible)
 *   nullable:= '?' range?          nullable in range (all versions if none)
 *   present := '@' range           field exists in range (all if absent)
 *   range   := N '+' | N '-' M | N
 *
 * "prim*" is an array of primitives ([]int32, []string); "[ ... ]" is an
 * array of structs. For flexible versions the walker reads every length
 * in its compact form and expects a TAGGED_FIELDS section at the end of
 * each struct element and of the body itself. Tagged fields of the spec
 * ("taggedVersions") are not listed: they live in that section, which is
 * checked for well-formed framing only.
 */
#include "kproto.h"

#include <stddef.h>
#include <string.h>

/* Struct nesting deeper than this is a schema bug; the walker stops. */
#define KSCHEMA_MAX_DEPTH 8

/* A table row: the public part and the request schema. */
typedef struct kapi_row {
    kapi_info_t info;
    const char *schema;
} kapi_row_t;

/*
 * The table. Ranges and flexible versions are Kafka's; each max is the
 * newest version whose request schema is written below. Produce stops at
 * v9 and Fetch at v15 on purpose: Produce v10 / Fetch v16 add KIP-951
 * NodeEndpoints to responses, which eosproxy would have to rewrite.
 */
static const kapi_row_t kapi_rows[KAPI_MAX] = {
    /* TransactionalId Acks TimeoutMs [Name [Index Records]] */
    [KAPI_Produce] = {{KAPI_Produce, "Produce", 0, 9, 9}, "s?@3+ i16 i32 [s [i32 b?]]"},
    /*
     * ReplicaId(0-14) MaxWaitMs MinBytes MaxBytes(3+) IsolationLevel(4+)
     * SessionId(7+) SessionEpoch(7+)
     * [Topic(0-12) TopicId(13+) [Partition CurrentLeaderEpoch(9+) FetchOffset
     *  LastFetchedEpoch(12+) LogStartOffset(5+) PartitionMaxBytes]]
     * ForgottenTopicsData(7+) [Topic(7-12) TopicId(13+) Partitions]
     * RackId(11+). ClusterId (tag 0) and ReplicaState (tag 1, v15+) are tagged.
     */
    [KAPI_Fetch] = {{KAPI_Fetch, "Fetch", 0, 15, 12},
                    "i32@0-14 i32 i32 i32@3+ i8@4+ i32@7+ i32@7+"
                    " [s@0-12 uuid@13+ [i32 i32@9+ i64 i32@12+ i64@5+ i32]]"
                    " [s@7-12 uuid@13+ i32*]@7+ s@11+"},
    /* ReplicaId IsolationLevel(2+)
     * [Name [PartitionIndex CurrentLeaderEpoch(4+) Timestamp MaxNumOffsets(0)]] */
    [KAPI_ListOffsets] = {{KAPI_ListOffsets, "ListOffsets", 0, 8, 6},
                          "i32 i8@2+ [s [i32 i32@4+ i64 i32@0]]"},
    /* Topics(nullable 1+) [TopicId(10+) Name(nullable 10+)] AllowAutoTopicCreation(4+)
     * IncludeClusterAuthorizedOperations(8-10) IncludeTopicAuthorizedOperations(8+) */
    [KAPI_Metadata] = {{KAPI_Metadata, "Metadata", 0, 12, 9},
                       "[uuid@10+ s?10+]?1+ bool@4+ bool@8-10 bool@8+"},
    /* GroupId GenerationId(1+) MemberId(1+) GroupInstanceId(7+) RetentionTimeMs(2-4)
     * [Name [PartitionIndex CommittedOffset CommittedLeaderEpoch(6+)
     *  CommitTimestamp(1) CommittedMetadata]] */
    [KAPI_OffsetCommit] = {{KAPI_OffsetCommit, "OffsetCommit", 0, 8, 8},
                           "s i32@1+ s@1+ s?@7+ i64@2-4 [s [i32 i64 i32@6+ i64@1 s?]]"},
    /* GroupId(0-7) Topics(0-7, nullable 2-7) [Name PartitionIndexes]
     * Groups(8+) [GroupId Topics(nullable) [Name PartitionIndexes]] RequireStable(7+) */
    [KAPI_OffsetFetch] = {{KAPI_OffsetFetch, "OffsetFetch", 0, 8, 6},
                          "s@0-7 [s i32*]?2-7@0-7 [s [s i32*]?]@8+ bool@7+"},
    /* Key(0-3) KeyType(1+) CoordinatorKeys(4+) */
    [KAPI_FindCoordinator] = {{KAPI_FindCoordinator, "FindCoordinator", 0, 4, 3},
                              "s@0-3 i8@1+ s*@4+"},
    /* GroupId SessionTimeoutMs RebalanceTimeoutMs(1+) MemberId GroupInstanceId(5+)
     * ProtocolType [Name Metadata] Reason(8+) */
    [KAPI_JoinGroup] = {{KAPI_JoinGroup, "JoinGroup", 0, 9, 6},
                        "s i32 i32@1+ s s?@5+ s [s b] s?@8+"},
    /* GroupId GenerationId MemberId GroupInstanceId(3+) */
    [KAPI_Heartbeat] = {{KAPI_Heartbeat, "Heartbeat", 0, 4, 4}, "s i32 s s?@3+"},
    /* GroupId MemberId(0-2) Members(3+) [MemberId GroupInstanceId Reason(5+)] */
    [KAPI_LeaveGroup] = {{KAPI_LeaveGroup, "LeaveGroup", 0, 5, 4}, "s s@0-2 [s s? s?@5+]@3+"},
    /* GroupId GenerationId MemberId GroupInstanceId(3+) ProtocolType(5+)
     * ProtocolName(5+) [MemberId Assignment] */
    [KAPI_SyncGroup] = {{KAPI_SyncGroup, "SyncGroup", 0, 5, 4}, "s i32 s s?@3+ s?@5+ s?@5+ [s b]"},
    /* Groups IncludeAuthorizedOperations(3+) */
    [KAPI_DescribeGroups] = {{KAPI_DescribeGroups, "DescribeGroups", 0, 5, 5}, "s* bool@3+"},
    /* no fields (StatesFilter is tagged in v4) */
    [KAPI_ListGroups] = {{KAPI_ListGroups, "ListGroups", 0, 4, 3}, ""},
    /* Mechanism */
    [KAPI_SaslHandshake] = {{KAPI_SaslHandshake, "SaslHandshake", 0, 1, -1}, "s"},
    /* ClientSoftwareName(3+) ClientSoftwareVersion(3+) */
    [KAPI_ApiVersions] = {{KAPI_ApiVersions, "ApiVersions", 0, 3, 3}, "s@3+ s@3+"},
    /* [Name NumPartitions ReplicationFactor [PartitionIndex BrokerIds] [Name Value]]
     * TimeoutMs ValidateOnly(1+) */
    [KAPI_CreateTopics] = {{KAPI_CreateTopics, "CreateTopics", 0, 7, 5},
                           "[s i32 i16 [i32 i32*] [s s?]] i32 bool@1+"},
    /* Topics(6+) [Name(nullable) TopicId] TopicNames(0-5) TimeoutMs */
    [KAPI_DeleteTopics] = {{KAPI_DeleteTopics, "DeleteTopics", 0, 6, 4}, "[s? uuid]@6+ s*@0-5 i32"},
    /* [Name [PartitionIndex Offset]] TimeoutMs */
    [KAPI_DeleteRecords] = {{KAPI_DeleteRecords, "DeleteRecords", 0, 2, 2}, "[s [i32 i64]] i32"},
    /* TransactionalId TransactionTimeoutMs ProducerId(3+) ProducerEpoch(3+) */
    [KAPI_InitProducerId] = {{KAPI_InitProducerId, "InitProducerId", 0, 4, 2},
                             "s? i32 i64@3+ i16@3+"},
    /* ReplicaId(3+) [Topic [Partition CurrentLeaderEpoch(2+) LeaderEpoch]] */
    [KAPI_OffsetForLeaderEpoch] = {{KAPI_OffsetForLeaderEpoch, "OffsetForLeaderEpoch", 0, 4, 4},
                                   "i32@3+ [s [i32 i32@2+ i32]]"},
    /* Transactions(4+) [TransactionalId ProducerId ProducerEpoch VerifyOnly
     *  [Name Partitions]] V3AndBelowTransactionalId(0-3) V3AndBelowProducerId(0-3)
     * V3AndBelowProducerEpoch(0-3) V3AndBelowTopics(0-3) [Name Partitions] */
    [KAPI_AddPartitionsToTxn] = {{KAPI_AddPartitionsToTxn, "AddPartitionsToTxn", 0, 5, 3},
                                 "[s i64 i16 bool [s i32*]]@4+ s@0-3 i64@0-3 i16@0-3"
                                 " [s i32*]@0-3"},
    /* TransactionalId ProducerId ProducerEpoch GroupId */
    [KAPI_AddOffsetsToTxn] = {{KAPI_AddOffsetsToTxn, "AddOffsetsToTxn", 0, 4, 3}, "s i64 i16 s"},
    /* TransactionalId ProducerId ProducerEpoch Committed */
    [KAPI_EndTxn] = {{KAPI_EndTxn, "EndTxn", 0, 5, 3}, "s i64 i16 bool"},
    /* TransactionalId GroupId ProducerId ProducerEpoch GenerationId(3+) MemberId(3+)
     * GroupInstanceId(3+) [Name [PartitionIndex CommittedOffset
     *  CommittedLeaderEpoch(2+) CommittedMetadata]] */
    [KAPI_TxnOffsetCommit] = {{KAPI_TxnOffsetCommit, "TxnOffsetCommit", 0, 3, 3},
                              "s s i64 i16 i32@3+ s@3+ s?@3+ [s [i32 i64 i32@2+ s?]]"},
    /* [ResourceType ResourceName ConfigurationKeys(nullable)] IncludeSynonyms(1+)
     * IncludeDocumentation(3+) */
    [KAPI_DescribeConfigs] = {{KAPI_DescribeConfigs, "DescribeConfigs", 0, 4, 4},
                              "[i8 s s*?] bool@1+ bool@3+"},
    /* AuthBytes */
    [KAPI_SaslAuthenticate] = {{KAPI_SaslAuthenticate, "SaslAuthenticate", 0, 2, 2}, "b"},
    /* [Name Count Assignments(nullable) [BrokerIds]] TimeoutMs ValidateOnly */
    [KAPI_CreatePartitions] = {{KAPI_CreatePartitions, "CreatePartitions", 0, 3, 2},
                               "[s i32 [i32*]?] i32 bool"},
    /* GroupsNames */
    [KAPI_DeleteGroups] = {{KAPI_DeleteGroups, "DeleteGroups", 0, 2, 2}, "s*"},
    /* IncludeClusterAuthorizedOperations EndpointType(1+) */
    [KAPI_DescribeCluster] = {{KAPI_DescribeCluster, "DescribeCluster", 0, 1, 0}, "bool i8@1+"},
};

/* ---- table lookups ---- */

static const kapi_row_t *row_of(int16_t api_key)
{
    if (api_key < 0 || api_key >= KAPI_MAX || kapi_rows[api_key].info.name == NULL)
        return NULL;
    return &kapi_rows[api_key];
}

const kapi_info_t *kproto_api(int16_t api_key)
{
    const kapi_row_t *row = row_of(api_key);
    return row ? &row->info : NULL;
}

const char *kproto_api_name(int16_t api_key)
{
    const kapi_info_t *a = kproto_api(api_key);
    return a ? a->name : "Unknown";
}

/* Flexibility follows flex_ver even above max_ver, so that an ApiVersions
 * request newer than the table is still read with a v2 header. */
int kproto_is_flexible(int16_t api_key, int16_t ver)
{
    const kapi_info_t *a = kproto_api(api_key);
    return a && a->flex_ver >= 0 && ver >= a->flex_ver;
}

int kproto_request_header_version(int16_t api_key, int16_t ver)
{
    /* ControlledShutdown v0 is the one request with header v0. It is not in
     * the table, but the fact costs one line. */
    if (api_key == 7 && ver == 0)
        return 0;
    return kproto_is_flexible(api_key, ver) ? 2 : 1;
}

void kproto_write_request_header(kwriter_t *w, int16_t api_key, int16_t ver, int32_t correlation_id,
                                 kstr_t client_id)
{
    kw_i16(w, api_key);
    kw_i16(w, ver);
    kw_i32(w, correlation_id);
    kw_kstr(w, 0, client_id);
    if (kproto_request_header_version(api_key, ver) >= 2)
        kw_tags_empty(w);
}

int kproto_response_header_version(int16_t api_key, int16_t ver)
{
    if (api_key == KAPI_ApiVersions)
        return 0;
    return kproto_is_flexible(api_key, ver) ? 1 : 0;
}

/* ---- headers ---- */

/*
 * Request header v1: api_key INT16, api_version INT16, correlation_id INT32,
 * client_id NULLABLE_STRING (INT16 length even in v2); v2 adds
 * TAGGED_FIELDS.
 */
int kproto_parse_request_header(const uint8_t *frame, size_t len, kreq_hdr_t *h, const char **err)
{
    kreader_t r;
    kr_init(&r, frame, len);
    h->api_key = kr_i16(&r);
    h->api_version = kr_i16(&r);
    h->correlation_id = kr_i32(&r);
    if (!kr_ok(&r)) {
        *err = "short request header";
        return -1;
    }
    const kapi_info_t *a = kproto_api(h->api_key);
    if (a == NULL) {
        *err = "unknown api key";
        return -1;
    }
    int above_ok = h->api_key == KAPI_ApiVersions && h->api_version > a->max_ver;
    if (h->api_version < a->min_ver || (h->api_version > a->max_ver && !above_ok)) {
        *err = "unsupported version";
        return -1;
    }
    h->client_id = kr_str(&r, 0);
    if (kproto_request_header_version(h->api_key, h->api_version) >= 2)
        kr_tags(&r);
    if (!kr_ok(&r)) {
        *err = "malformed request header";
        return -1;
    }
    h->body_off = r.off;
    return 0;
}

/* Response header v0: correlation_id INT32; v1 adds TAGGED_FIELDS. */
int kproto_parse_response_header(int16_t api_key, int16_t ver, const uint8_t *frame, size_t len,
                                 int32_t *correlation_id, size_t *body_off)
{
    kreader_t r;
    kr_init(&r, frame, len);
    int32_t corr = kr_i32(&r);
    if (kproto_response_header_version(api_key, ver) >= 1)
        kr_tags(&r);
    if (!kr_ok(&r))
        return -1;
    *correlation_id = corr;
    *body_off = r.off;
    return 0;
}

/* ---- schema interpreter ---- */

enum kfield_kind {
    KF_I8,
    KF_I16,
    KF_I32,
    KF_I64,
    KF_BOOL,
    KF_UUID,
    KF_STR,
    KF_BYTES,
    KF_STRUCT, /* '[' schema ']': always an array of structs */
};

/* One field spec, resolved for a version. */
typedef struct kfield {
    int kind;         /* enum kfield_kind */
    int prim_array;   /* prim '*' */
    int nullable;     /* in this version */
    int present;      /* in this version */
    const char *body; /* KF_STRUCT: first char of the element schema */
} kfield_t;

/* Walker state for one request body. */
typedef struct kwalk {
    kreader_t *r;
    int16_t ver;
    int flex;
    int schema_err; /* the schema text itself is malformed (a bug) */
} kwalk_t;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Parses "N+", "N-M" or "N" at *sp into [*lo, *hi]. Returns -1 if no
 * number is there.
 */
static int parse_range(const char **sp, int *lo, int *hi)
{
    const char *s = *sp;
    if (!is_digit(*s))
        return -1;
    int a = 0;
    while (is_digit(*s) && a < 100000)
        a = a * 10 + (*s++ - '0');
    int b = a;
    if (*s == '+') {
        s++;
        b = INT16_MAX;
    } else if (*s == '-') {
        s++;
        if (!is_digit(*s))
            return -1;
        b = 0;
        while (is_digit(*s) && b < 100000)
            b = b * 10 + (*s++ - '0');
    }
    *lo = a;
    *hi = b;
    *sp = s;
    return 0;
}

/* Returns the char just past the ']' matching the '[' before s, or NULL. */
static const char *skip_struct(const char *s)
{
    int depth = 1;
    for (; *s; s++) {
        if (*s == '[')
            depth++;
        else if (*s == ']' && --depth == 0)
            return s + 1;
    }
    return NULL;
}

static int kind_of(const char *name, size_t n)
{
    static const struct {
        const char *name;
        int kind;
    } prims[] = {
        {"i8", KF_I8},     {"i16", KF_I16},   {"i32", KF_I32}, {"i64", KF_I64},
        {"bool", KF_BOOL}, {"uuid", KF_UUID}, {"s", KF_STR},   {"b", KF_BYTES},
    };
    for (size_t i = 0; i < sizeof(prims) / sizeof(prims[0]); i++) {
        if (strlen(prims[i].name) == n && memcmp(prims[i].name, name, n) == 0)
            return prims[i].kind;
    }
    return -1;
}

/* Parses the "?range" and "@range" suffixes of a field for version ver. */
static int parse_modifiers(const char **sp, int16_t ver, kfield_t *f)
{
    const char *s = *sp;
    int lo = 0, hi = INT16_MAX;
    f->nullable = 0;
    f->present = 1;
    if (*s == '?') {
        s++;
        if (is_digit(*s) && parse_range(&s, &lo, &hi) < 0)
            return -1;
        f->nullable = ver >= lo && ver <= hi;
    }
    if (*s == '@') {
        s++;
        if (parse_range(&s, &lo, &hi) < 0)
            return -1;
        f->present = ver >= lo && ver <= hi;
    }
    if (*s != ' ' && *s != ']' && *s != '\0')
        return -1;
    *sp = s;
    return 0;
}

/*
 * Parses the next field spec at *sp for version ver. Returns 1 with *f
 * filled and *sp past the spec, 0 at the end of a struct (']' or end of
 * string, *sp left on it), -1 if the schema text is malformed.
 */
static int next_field(const char **sp, int16_t ver, kfield_t *f)
{
    const char *s = *sp;
    while (*s == ' ')
        s++;
    if (*s == ']' || *s == '\0') {
        *sp = s;
        return 0;
    }
    f->prim_array = 0;
    f->body = NULL;
    if (*s == '[') {
        f->kind = KF_STRUCT;
        f->body = s + 1;
        s = skip_struct(s + 1);
        if (s == NULL)
            return -1;
    } else {
        const char *name = s;
        while (*s && *s != ' ' && *s != '*' && *s != '?' && *s != '@' && *s != ']' && *s != '[')
            s++;
        f->kind = kind_of(name, (size_t)(s - name));
        if (f->kind < 0)
            return -1;
        if (*s == '*') {
            f->prim_array = 1;
            s++;
        }
    }
    if (parse_modifiers(&s, ver, f) < 0)
        return -1;
    *sp = s;
    return 1;
}

/* Smallest encoding of a primitive (a null string/bytes included). */
static size_t prim_min_size(int kind, int flex)
{
    switch (kind) {
    case KF_I8:
    case KF_BOOL:
        return 1;
    case KF_I16:
        return 2;
    case KF_I32:
        return 4;
    case KF_I64:
        return 8;
    case KF_UUID:
        return 16;
    case KF_STR:
        return flex ? 1 : 2;
    case KF_BYTES:
        return flex ? 1 : 4;
    }
    return 1;
}

/*
 * Smallest encoding of one struct element of schema body for (ver, flex):
 * used to bound array counts by the bytes left. At least 1.
 */
static size_t struct_min_size(const char *body, int16_t ver, int flex)
{
    size_t n = flex ? 1 : 0; /* TAGGED_FIELDS */
    kfield_t f;
    while (next_field(&body, ver, &f) == 1) {
        if (!f.present)
            continue;
        if (f.kind == KF_STRUCT || f.prim_array)
            n += flex ? 1 : 4;
        else
            n += prim_min_size(f.kind, flex);
    }
    return n ? n : 1;
}

/* Reads one primitive value; nulls allowed only when nullable. */
static void read_prim(kwalk_t *w, int kind, int nullable)
{
    kreader_t *r = w->r;
    switch (kind) {
    case KF_STR:
        if (nullable)
            (void)kr_str(r, w->flex);
        else
            (void)kr_str_nn(r, w->flex);
        return;
    case KF_BYTES: {
        kbytes_t b = kr_bytes(r, w->flex);
        if (kr_ok(r) && b.len < 0 && !nullable)
            kr_fail(r, KR_ENULL);
        return;
    }
    default:
        (void)kr_skip(r, prim_min_size(kind, w->flex));
        return;
    }
}

static void walk_struct(kwalk_t *w, const char *s, int depth);

/* Reads an array field (of primitives or of structs). */
static void read_array(kwalk_t *w, const kfield_t *f, int depth)
{
    kreader_t *r = w->r;
    size_t elem = f->kind == KF_STRUCT ? struct_min_size(f->body, w->ver, w->flex)
                                       : prim_min_size(f->kind, w->flex);
    int32_t n = kr_array(r, w->flex, elem);
    if (!kr_ok(r))
        return;
    if (n < 0) {
        if (!f->nullable)
            kr_fail(r, KR_ENULL);
        return;
    }
    for (int32_t i = 0; i < n && kr_ok(r) && !w->schema_err; i++) {
        if (f->kind == KF_STRUCT)
            walk_struct(w, f->body, depth + 1);
        else
            read_prim(w, f->kind, 0); /* array elements are never null */
    }
}

/*
 * Reads the fields of schema s (a struct body or the whole request body)
 * that exist in w->ver, then the struct's TAGGED_FIELDS when flexible.
 * Stops at the first reader error (sticky) or schema error.
 */
static void walk_struct(kwalk_t *w, const char *s, int depth)
{
    if (depth > KSCHEMA_MAX_DEPTH) {
        w->schema_err = 1;
        return;
    }
    kfield_t f;
    int rc;
    while (kr_ok(w->r) && (rc = next_field(&s, w->ver, &f)) != 0) {
        if (rc < 0) {
            w->schema_err = 1;
            return;
        }
        if (!f.present)
            continue;
        if (f.kind == KF_STRUCT || f.prim_array)
            read_array(w, &f, depth);
        else
            read_prim(w, f.kind, f.nullable);
        if (w->schema_err)
            return;
    }
    if (w->flex)
        kr_tags(w->r);
}

int kproto_validate_request(const kreq_hdr_t *h, const uint8_t *frame, size_t len, size_t *err_off,
                            const char **err)
{
    const kapi_row_t *row = row_of(h->api_key);
    *err_off = h->body_off;
    if (row == NULL) {
        *err = "unknown api key";
        return -1;
    }
    if (h->api_version < row->info.min_ver || h->api_version > row->info.max_ver) {
        *err = "unsupported version";
        return -1;
    }
    if (h->body_off > len) {
        *err = "body offset past end of frame";
        return -1;
    }
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = h->body_off;
    kwalk_t w = {&r, h->api_version, kproto_is_flexible(h->api_key, h->api_version), 0};
    walk_struct(&w, row->schema, 0);
    if (w.schema_err) {
        *err_off = r.off;
        *err = "internal error: bad request schema";
        return -1;
    }
    if (!kr_ok(&r)) {
        *err_off = r.err_off;
        *err = kr_strerror(r.err);
        return -1;
    }
    if (r.off != len) {
        *err_off = r.off;
        *err = "trailing bytes after request body";
        return -1;
    }
    return 0;
}

/*
 * Produce body head: v0-v2 Acks INT16 first; v3+ TransactionalId
 * NULLABLE_STRING (compact from v9) then Acks INT16.
 */
int kproto_produce_acks(const kreq_hdr_t *h, const uint8_t *frame, size_t len)
{
    if (h->api_key != KAPI_Produce || h->body_off > len)
        return -2;
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = h->body_off;
    if (h->api_version >= 3)
        (void)kr_str(&r, kproto_is_flexible(h->api_key, h->api_version));
    int16_t acks = kr_i16(&r);
    if (!kr_ok(&r) || acks < -1 || acks > 1)
        return -2;
    return acks;
}

/* ---- self-check ---- */

/* Checks the syntax of schema s for version ver; end is ']' or '\0'. */
static int check_struct(const char *s, int16_t ver, int depth, char end)
{
    if (depth > KSCHEMA_MAX_DEPTH)
        return -1;
    kfield_t f;
    int rc;
    while ((rc = next_field(&s, ver, &f)) == 1) {
        if (f.kind == KF_STRUCT && check_struct(f.body, ver, depth + 1, ']') < 0)
            return -1;
    }
    return rc == 0 && *s == end ? 0 : -1;
}

int kproto_schema_selfcheck(const char **err)
{
    for (int k = 0; k < KAPI_MAX; k++) {
        const kapi_row_t *row = &kapi_rows[k];
        if (row->info.name == NULL)
            continue;
        if (row->info.api_key != k || row->schema == NULL || row->info.min_ver < 0 ||
            row->info.min_ver > row->info.max_ver ||
            (row->info.flex_ver >= 0 && row->info.flex_ver > row->info.max_ver)) {
            *err = row->info.name;
            return -1;
        }
        for (int v = row->info.min_ver; v <= row->info.max_ver; v++) {
            if (check_struct(row->schema, (int16_t)v, 0, '\0') < 0) {
                *err = row->info.name;
                return -1;
            }
        }
    }
    return 0;
}
