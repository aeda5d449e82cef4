/*
 * ksplit.c - per-topic authorization on the wire: split a request by
 * topic, answer the removed topics, merge the answer into the broker's
 * response, refuse whole admin requests. See ksplit.h.
 *
 * Each supported request and response is described as data: the fields
 * before its topic array ("head"), the fields of one partition, and the
 * fields after the array ("tail"), each with the versions it exists in,
 * following Kafka's <Name>Request.json / <Name>Response.json. Every topic
 * is "Name STRING, Partitions [partition]" closed by tagged fields when
 * flexible. One walker reads a layout (checking every length against the
 * frame), so the same tables serve validation, finding the byte span of
 * each topic, and writing an error answer from each field's default.
 *
 * Metadata does not fit that shape (request topics carry no partitions,
 * response topics start with their ErrorCode): it has its own small
 * readers below, built on the same walker for the fixed parts.
 */
#include "ksplit.h"

#include <stdlib.h>
#include <string.h>

#define TOPIC_AUTHORIZATION_FAILED 29
#define GROUP_AUTHORIZATION_FAILED 30

/* Versions are small: "every version from lo on" is lo..V_MAX. */
#define V_MAX 127

/* Field kinds. */
enum fkind {
    F_END = 0,
    F_INDEX, /* INT32 partition index: the first field of every partition */
    F_ERROR, /* INT16 ErrorCode of a response partition: the answer's code */
    F_I8,
    F_I16,
    F_I32,
    F_I64,
    F_UUID,
    F_STR,      /* STRING */
    F_NSTR,     /* NULLABLE_STRING */
    F_NBYTES,   /* NULLABLE_BYTES / RECORDS */
    F_I32S,     /* [INT32] */
    F_I64S,     /* [INT64] */
    F_STRUCTS,  /* [struct of sub], each element closed by tags when flexible */
    F_NSTRUCTS, /* the same, nullable */
};

/*
 * One field: kind, the versions it exists in, and the value an answer
 * writes (integers: that value; strings and bytes: -1 null, 0 empty;
 * arrays: -1 null, 0 empty).
 */
typedef struct kfield {
    uint8_t kind;
    int8_t lo;
    int8_t hi;
    int8_t def;
    const struct kfield *sub;
} kfield_t;

/* Table rows (clang-format would break these one-liners over four lines). */
// clang-format off
#define FIELD(kind, lo, hi, def) {kind, lo, hi, def, NULL}
#define STRUCTS(kind, lo, hi, def, sub) {kind, lo, hi, def, sub}
#define END {F_END, 0, 0, 0, NULL}
// clang-format on

/* ---- layouts ---- */

static const kfield_t none[] = {END};

/* ProduceRequest v3+: TransactionalId Acks TimeoutMs; partition: Index Records. */
static const kfield_t produce_req_head[] = {FIELD(F_NSTR, 3, V_MAX, -1), FIELD(F_I16, 0, V_MAX, 0),
                                            FIELD(F_I32, 0, V_MAX, 0), END};
static const kfield_t produce_req_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                            FIELD(F_NBYTES, 0, V_MAX, -1), END};

/* ProduceResponse: RecordErrors [BatchIndex BatchIndexErrorMessage] (v8+). */
static const kfield_t produce_record_error[] = {FIELD(F_I32, 0, V_MAX, 0),
                                                FIELD(F_NSTR, 0, V_MAX, -1), END};
/* Index ErrorCode BaseOffset LogAppendTimeMs LogStartOffset(5+) RecordErrors(8+)
 * ErrorMessage(8+); then ThrottleTimeMs after the topics. */
static const kfield_t produce_resp_part[] = {
    FIELD(F_INDEX, 0, V_MAX, 0), FIELD(F_ERROR, 0, V_MAX, 0),
    FIELD(F_I64, 0, V_MAX, -1),  FIELD(F_I64, 2, V_MAX, -1),
    FIELD(F_I64, 5, V_MAX, -1),  STRUCTS(F_STRUCTS, 8, V_MAX, 0, produce_record_error),
    FIELD(F_NSTR, 8, V_MAX, -1), END};
static const kfield_t produce_resp_tail[] = {FIELD(F_I32, 1, V_MAX, 0), END};

/* FetchRequest: ReplicaId MaxWaitMs MinBytes MaxBytes(3+) IsolationLevel(4+)
 * SessionId(7+) SessionEpoch(7+). */
static const kfield_t fetch_req_head[] = {FIELD(F_I32, 0, 14, 0),    FIELD(F_I32, 0, V_MAX, 0),
                                          FIELD(F_I32, 0, V_MAX, 0), FIELD(F_I32, 3, V_MAX, 0),
                                          FIELD(F_I8, 4, V_MAX, 0),  FIELD(F_I32, 7, V_MAX, 0),
                                          FIELD(F_I32, 7, V_MAX, 0), END};
/* Partition CurrentLeaderEpoch(9+) FetchOffset LastFetchedEpoch(12+)
 * LogStartOffset(5+) PartitionMaxBytes. */
static const kfield_t fetch_req_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                          FIELD(F_I32, 9, V_MAX, 0),
                                          FIELD(F_I64, 0, V_MAX, 0),
                                          FIELD(F_I32, 12, V_MAX, 0),
                                          FIELD(F_I64, 5, V_MAX, 0),
                                          FIELD(F_I32, 0, V_MAX, 0),
                                          END};
/* ForgottenTopicsData(7+) [Topic Partitions], RackId(11+). */
static const kfield_t fetch_forgotten[] = {FIELD(F_STR, 0, V_MAX, 0), FIELD(F_I32S, 0, V_MAX, 0),
                                           END};
static const kfield_t fetch_req_tail[] = {STRUCTS(F_STRUCTS, 7, V_MAX, 0, fetch_forgotten),
                                          FIELD(F_STR, 11, V_MAX, 0), END};

/* FetchResponse: ThrottleTimeMs ErrorCode(7+) SessionId(7+). */
static const kfield_t fetch_resp_head[] = {FIELD(F_I32, 1, V_MAX, 0), FIELD(F_I16, 7, V_MAX, 0),
                                           FIELD(F_I32, 7, V_MAX, 0), END};
static const kfield_t fetch_aborted[] = {FIELD(F_I64, 0, V_MAX, 0), FIELD(F_I64, 0, V_MAX, 0), END};
/* PartitionIndex ErrorCode HighWatermark LastStableOffset(4+) LogStartOffset(5+)
 * AbortedTransactions(4+, nullable) PreferredReadReplica(11+) Records. */
static const kfield_t fetch_resp_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                           FIELD(F_ERROR, 0, V_MAX, 0),
                                           FIELD(F_I64, 0, V_MAX, -1),
                                           FIELD(F_I64, 4, V_MAX, -1),
                                           FIELD(F_I64, 5, V_MAX, -1),
                                           STRUCTS(F_NSTRUCTS, 4, V_MAX, 0, fetch_aborted),
                                           FIELD(F_I32, 11, V_MAX, -1),
                                           FIELD(F_NBYTES, 0, V_MAX, 0),
                                           END};

/* ListOffsetsRequest: ReplicaId IsolationLevel(2+); partition: PartitionIndex
 * CurrentLeaderEpoch(4+) Timestamp MaxNumOffsets(0). */
static const kfield_t listoffsets_req_head[] = {FIELD(F_I32, 0, V_MAX, 0), FIELD(F_I8, 2, V_MAX, 0),
                                                END};
static const kfield_t listoffsets_req_part[] = {
    FIELD(F_INDEX, 0, V_MAX, 0), FIELD(F_I32, 4, V_MAX, 0), FIELD(F_I64, 0, V_MAX, 0),
    FIELD(F_I32, 0, 0, 0), END};
/* ListOffsetsResponse: ThrottleTimeMs(2+); partition: PartitionIndex ErrorCode
 * OldStyleOffsets(0) Timestamp(1+) Offset(1+) LeaderEpoch(4+). */
static const kfield_t listoffsets_resp_head[] = {FIELD(F_I32, 2, V_MAX, 0), END};
static const kfield_t listoffsets_resp_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                                 FIELD(F_ERROR, 0, V_MAX, 0),
                                                 FIELD(F_I64S, 0, 0, 0),
                                                 FIELD(F_I64, 1, V_MAX, -1),
                                                 FIELD(F_I64, 1, V_MAX, -1),
                                                 FIELD(F_I32, 4, V_MAX, -1),
                                                 END};

/* OffsetCommitRequest: GroupId GenerationIdOrMemberEpoch(1+) MemberId(1+)
 * GroupInstanceId(7+) RetentionTimeMs(2-4); partition: PartitionIndex
 * CommittedOffset CommittedLeaderEpoch(6+) CommitTimestamp(1)
 * CommittedMetadata. */
static const kfield_t offsetcommit_req_head[] = {
    FIELD(F_STR, 0, V_MAX, 0),  FIELD(F_I32, 1, V_MAX, 0), FIELD(F_STR, 1, V_MAX, 0),
    FIELD(F_NSTR, 7, V_MAX, 0), FIELD(F_I64, 2, 4, 0),     END};
static const kfield_t offsetcommit_req_part[] = {
    FIELD(F_INDEX, 0, V_MAX, 0), FIELD(F_I64, 0, V_MAX, 0),  FIELD(F_I32, 6, V_MAX, 0),
    FIELD(F_I64, 1, 1, 0),       FIELD(F_NSTR, 0, V_MAX, 0), END};
/* OffsetCommitResponse: ThrottleTimeMs(3+); partition: PartitionIndex ErrorCode. */
static const kfield_t offsetcommit_resp_head[] = {FIELD(F_I32, 3, V_MAX, 0), END};
static const kfield_t offsetcommit_resp_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                                  FIELD(F_ERROR, 0, V_MAX, 0), END};

/* One API ksplit handles: its versions and its request/response layouts
 * around "Topics [Name Partitions [partition]]". */
typedef struct split_api {
    int16_t key;
    int16_t lo;
    int16_t hi;
    const kfield_t *req_head, *req_part, *req_tail;
    const kfield_t *resp_head, *resp_part, *resp_tail;
} split_api_t;

static const split_api_t split_apis[] = {
    {KAPI_Produce, 3, 9, produce_req_head, produce_req_part, none, none, produce_resp_part,
     produce_resp_tail},
    {KAPI_Fetch, 4, 12, fetch_req_head, fetch_req_part, fetch_req_tail, fetch_resp_head,
     fetch_resp_part, none},
    {KAPI_ListOffsets, 0, 8, listoffsets_req_head, listoffsets_req_part, none,
     listoffsets_resp_head, listoffsets_resp_part, none},
    {KAPI_OffsetCommit, 0, 8, offsetcommit_req_head, offsetcommit_req_part, none,
     offsetcommit_resp_head, offsetcommit_resp_part, none},
};

static const split_api_t *split_api(int16_t key, int16_t ver)
{
    for (size_t i = 0; i < sizeof(split_apis) / sizeof(split_apis[0]); i++)
        if (split_apis[i].key == key)
            return ver >= split_apis[i].lo && ver <= split_apis[i].hi ? &split_apis[i] : NULL;
    return NULL;
}

/* ---- the walker ---- */

static int present(const kfield_t *f, int16_t ver)
{
    return ver >= f->lo && ver <= f->hi;
}

static size_t prim_min(int kind, int flex)
{
    switch (kind) {
    case F_I8:
        return 1;
    case F_I16:
    case F_ERROR:
        return 2;
    case F_I64:
        return 8;
    case F_UUID:
        return 16;
    case F_STR:
    case F_NSTR:
        return flex ? 1 : 2;
    case F_NBYTES:
    case F_I32S:
    case F_I64S:
    case F_STRUCTS:
    case F_NSTRUCTS:
        return flex ? 1 : 4;
    default: /* F_INDEX, F_I32 */
        return 4;
    }
}

/* Smallest encoding of one struct of layout f (tags included); >= 1. */
static size_t struct_min(const kfield_t *f, int16_t ver, int flex)
{
    size_t n = flex ? 1 : 0;
    for (; f->kind != F_END; f++)
        if (present(f, ver))
            n += prim_min(f->kind, flex);
    return n ? n : 1;
}

/* Smallest topic: Name, Partitions count (, tags). */
static size_t topic_min(int flex)
{
    return flex ? 3 : 6;
}

static void walk(kreader_t *r, const kfield_t *f, int16_t ver, int flex, int32_t *index);

/* Reads an array of primitives or of structs; nulls only where allowed. */
static void walk_array(kreader_t *r, const kfield_t *f, int16_t ver, int flex)
{
    int structs = f->kind == F_STRUCTS || f->kind == F_NSTRUCTS;
    size_t elem = structs ? struct_min(f->sub, ver, flex) : (f->kind == F_I32S ? 4 : 8);
    int32_t n = kr_array(r, flex, elem);
    if (n < 0 && f->kind != F_NSTRUCTS)
        kr_fail(r, KR_ENULL);
    for (int32_t i = 0; i < n && kr_ok(r); i++) {
        if (structs) {
            walk(r, f->sub, ver, flex, NULL);
            kr_tags_if(r, flex);
        } else {
            (void)kr_skip(r, elem);
        }
    }
}

/*
 * Reads the fields of layout f present in ver (not the closing tags:
 * the caller knows whether f is a struct). *index gets the F_INDEX value
 * when index is not NULL. Errors are left in r (sticky).
 */
static void walk(kreader_t *r, const kfield_t *f, int16_t ver, int flex, int32_t *index)
{
    for (; f->kind != F_END && kr_ok(r); f++) {
        if (!present(f, ver))
            continue;
        switch (f->kind) {
        case F_INDEX: {
            int32_t v = kr_i32(r);
            if (index)
                *index = v;
            break;
        }
        case F_STR:
            (void)kr_str_nn(r, flex);
            break;
        case F_NSTR:
            (void)kr_str(r, flex);
            break;
        case F_NBYTES:
            (void)kr_bytes(r, flex);
            break;
        case F_I32S:
        case F_I64S:
        case F_STRUCTS:
        case F_NSTRUCTS:
            walk_array(r, f, ver, flex);
            break;
        default:
            (void)kr_skip(r, prim_min(f->kind, flex));
            break;
        }
    }
}

/* Writes the answer's value of every field of f present in ver (no tags). */
static void write_defaults(kwriter_t *w, const kfield_t *f, int16_t ver, int flex, int32_t index,
                           int16_t code)
{
    static const uint8_t zero_uuid[16];
    for (; f->kind != F_END; f++) {
        if (!present(f, ver))
            continue;
        switch (f->kind) {
        case F_INDEX:
            kw_i32(w, index);
            break;
        case F_ERROR:
            kw_i16(w, code);
            break;
        case F_I8:
            kw_i8(w, f->def);
            break;
        case F_I16:
            kw_i16(w, f->def);
            break;
        case F_I64:
            kw_i64(w, f->def);
            break;
        case F_UUID:
            kw_raw(w, zero_uuid, sizeof(zero_uuid));
            break;
        case F_STR:
        case F_NSTR:
            kw_str(w, flex, "", f->def < 0 ? -1 : 0);
            break;
        case F_NBYTES:
            kw_bytes(w, flex, "", f->def < 0 ? -1 : 0);
            break;
        case F_I32S:
        case F_I64S:
        case F_STRUCTS:
        case F_NSTRUCTS:
            kw_array(w, flex, f->def < 0 ? -1 : 0);
            break;
        default: /* F_I32 */
            kw_i32(w, f->def);
            break;
        }
    }
}

/* ---- the split ---- */

/* One removed topic entry: its name and partition indexes, copied. */
struct ksplit_topic {
    char *name;
    int32_t name_len;
    int32_t npartitions;
    int32_t *partitions;
};

struct ksplit {
    int16_t api_key;
    int16_t api_version;
    int32_t ntopics;
    struct ksplit_topic *topics;
    int drop_all; /* Metadata v0, every named topic denied: drop the broker's topics */
};

/* Where one topic entry lies in the request frame. */
struct tspan {
    size_t start;     /* first byte of the entry (its name's length) */
    size_t parts_off; /* its Partitions count */
    size_t end;       /* one past its closing tags */
    kstr_t name;
    int denied;
};

/* Where the topic array lies in a body: count field, elements, end. */
struct tarray {
    size_t count_off;
    size_t count_end;
    size_t end;
    int32_t n;
};

/*
 * Reads a "Topics [Name Partitions [part]]" array at r into *ta and, when
 * spans is not NULL, into *spans: one entry per topic, allocated here
 * (the caller frees it, also on error). Returns 0, or -1 when the array
 * is malformed (error in r) or out of memory.
 */
static int walk_topics(kreader_t *r, const kfield_t *part, int16_t ver, int flex, struct tarray *ta,
                       struct tspan **spans)
{
    ta->count_off = r->off;
    ta->n = kr_array(r, flex, topic_min(flex));
    if (kr_ok(r) && ta->n < 0)
        kr_fail(r, KR_ENULL);
    ta->count_end = r->off;
    if (!kr_ok(r))
        return -1;
    if (spans) {
        *spans = calloc((size_t)ta->n + 1, sizeof(**spans));
        if (!*spans)
            return -1;
    }
    const kfield_t partitions[] = {STRUCTS(F_STRUCTS, 0, V_MAX, 0, part), END};
    for (int32_t i = 0; i < ta->n && kr_ok(r); i++) {
        struct tspan sp = {.start = r->off};
        sp.name = kr_str_nn(r, flex);
        sp.parts_off = r->off;
        walk(r, partitions, ver, flex, NULL);
        kr_tags_if(r, flex);
        sp.end = r->off;
        if (spans)
            (*spans)[i] = sp;
    }
    ta->end = r->off;
    return kr_ok(r) ? 0 : -1;
}

void ksplit_free(ksplit_t *s)
{
    if (!s)
        return;
    for (int32_t i = 0; i < s->ntopics && s->topics; i++) {
        free(s->topics[i].name);
        free(s->topics[i].partitions);
    }
    free(s->topics);
    free(s);
}

int16_t ksplit_api_key(const ksplit_t *s)
{
    return s ? s->api_key : -1;
}

int16_t ksplit_api_version(const ksplit_t *s)
{
    return s ? s->api_version : -1;
}

size_t ksplit_topic_count(const ksplit_t *s)
{
    return s ? (size_t)s->ntopics : 0;
}

/* Copies the name and partition indexes of the (well-formed) entry sp. */
static int copy_topic(const split_api_t *api, int16_t ver, int flex, const uint8_t *frame,
                      const struct tspan *sp, struct ksplit_topic *t)
{
    kreader_t r;
    kr_init(&r, frame, sp->end);
    r.off = sp->parts_off;
    t->name_len = sp->name.len;
    t->name = malloc((size_t)sp->name.len + 1);
    if (!t->name)
        return -1;
    memcpy(t->name, sp->name.ptr, (size_t)sp->name.len);
    t->name[sp->name.len] = '\0';
    int32_t n = kr_array(&r, flex, struct_min(api->req_part, ver, flex));
    if (!kr_ok(&r) || n < 0)
        return -1;
    t->partitions = calloc((size_t)n + 1, sizeof(int32_t));
    if (!t->partitions)
        return -1;
    t->npartitions = n;
    for (int32_t j = 0; j < n && kr_ok(&r); j++) {
        walk(&r, api->req_part, ver, flex, &t->partitions[j]);
        kr_tags_if(&r, flex);
    }
    return kr_ok(&r) ? 0 : -1;
}

/* The removed topics of a decided request, or NULL when out of memory. */
static ksplit_t *collect(const split_api_t *api, int16_t ver, int flex, const uint8_t *frame,
                         const struct tspan *spans, int32_t n, int32_t ndenied)
{
    ksplit_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->api_key = api->key;
    s->api_version = ver;
    s->topics = calloc((size_t)ndenied, sizeof(*s->topics));
    if (!s->topics) {
        free(s);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!spans[i].denied)
            continue;
        if (copy_topic(api, ver, flex, frame, &spans[i], &s->topics[s->ntopics++]) < 0) {
            ksplit_free(s);
            return NULL;
        }
    }
    return s;
}

/* The PARTIAL request: size, header and body head as they came, the kept
 * entries, the rest of the body as it came. */
static int write_partial(kwriter_t *w, const uint8_t *frame, size_t len, int flex,
                         const struct tarray *ta, const struct tspan *spans, int32_t nkept)
{
    size_t start = w->len;
    kw_i32(w, 0);
    kw_raw(w, frame, ta->count_off);
    kw_array(w, flex, nkept);
    for (int32_t i = 0; i < ta->n; i++)
        if (!spans[i].denied)
            kw_raw(w, frame + spans[i].start, spans[i].end - spans[i].start);
    kw_raw(w, frame + ta->end, len - ta->end);
    return kw_finish_frame(w, start);
}

/* ---- Metadata ---- */

/*
 * MetadataRequest v0-v12: Topics [TopicId(10+) Name] (null from v1: all
 * topics; v0: empty means all; Name nullable from v10) then
 * AllowAutoTopicCreation(4+) IncludeClusterAuthorizedOperations(8-10)
 * IncludeTopicAuthorizedOperations(8+).
 *
 * MetadataResponse v0-v12: ThrottleTimeMs(3+) Brokers [NodeId Host Port
 * Rack(1+)] ClusterId(2+, nullable) ControllerId(1+) Topics [ErrorCode Name
 * (nullable 12+) TopicId(10+) IsInternal(1+) Partitions [partition]
 * TopicAuthorizedOperations(8+)] ClusterAuthorizedOperations(8-10).
 * Flexible (both headers too) from v9.
 */
#define METADATA_MAX_VER 12

static const kfield_t metadata_req_tail[] = {FIELD(F_I8, 4, V_MAX, 0), FIELD(F_I8, 8, 10, 0),
                                             FIELD(F_I8, 8, V_MAX, 0), END};
static const kfield_t metadata_broker[] = {FIELD(F_I32, 0, V_MAX, 0), FIELD(F_STR, 0, V_MAX, 0),
                                           FIELD(F_I32, 0, V_MAX, 0), FIELD(F_NSTR, 1, V_MAX, 0),
                                           END};
static const kfield_t metadata_resp_head[] = {
    FIELD(F_I32, 3, V_MAX, 0), STRUCTS(F_STRUCTS, 0, V_MAX, 0, metadata_broker),
    FIELD(F_NSTR, 2, V_MAX, 0), FIELD(F_I32, 1, V_MAX, 0), END};
/* ErrorCode PartitionIndex LeaderId LeaderEpoch(7+) ReplicaNodes IsrNodes
 * OfflineReplicas(5+). */
static const kfield_t metadata_partition[] = {
    FIELD(F_I16, 0, V_MAX, 0),  FIELD(F_I32, 0, V_MAX, 0),
    FIELD(F_I32, 0, V_MAX, 0),  FIELD(F_I32, 7, V_MAX, 0),
    FIELD(F_I32S, 0, V_MAX, 0), FIELD(F_I32S, 0, V_MAX, 0),
    FIELD(F_I32S, 5, V_MAX, 0), END};
/* A response topic after its ErrorCode and Name. */
static const kfield_t metadata_topic_rest[] = {
    FIELD(F_UUID, 10, V_MAX, 0), FIELD(F_I8, 1, V_MAX, 0),
    STRUCTS(F_STRUCTS, 0, V_MAX, 0, metadata_partition), FIELD(F_I32, 8, V_MAX, 0), END};
static const kfield_t metadata_resp_tail[] = {FIELD(F_I32, 8, 10, 0), END};

/* Smallest request topic: TopicId(10+), then 2 bytes: a STRING's length,
 * or a COMPACT_STRING's and the tags. */
static size_t md_req_topic_min(int16_t ver)
{
    return (ver >= 10 ? 16 : 0) + 2;
}

/*
 * Reads the topic array of a Metadata request body at r into *ta and
 * *spans (allocated here, at least one element, once the count is read;
 * the caller frees it, also on error). A null array (v1+) gives ta->n -1. Returns 0 or -1.
 */
static int md_req_topics(kreader_t *r, int16_t ver, int flex, struct tarray *ta,
                         struct tspan **spans)
{
    ta->count_off = r->off;
    ta->n = kr_array(r, flex, md_req_topic_min(ver));
    if (kr_ok(r) && ta->n < 0 && ver < 1)
        kr_fail(r, KR_ENULL);
    ta->count_end = r->off;
    if (!kr_ok(r))
        return -1;
    *spans = calloc(ta->n > 0 ? (size_t)ta->n : 1, sizeof(**spans));
    if (!*spans)
        return -1;
    for (int32_t i = 0; i < ta->n && kr_ok(r); i++) {
        struct tspan *sp = &(*spans)[i];
        sp->start = r->off;
        if (ver >= 10)
            (void)kr_skip(r, 16); /* TopicId */
        sp->name = ver >= 10 ? kr_str(r, flex) : kr_str_nn(r, flex);
        kr_tags_if(r, flex);
        sp->end = r->off;
    }
    ta->end = r->off;
    return kr_ok(r) ? 0 : -1;
}

/* The denied topics of a Metadata request (names only), or NULL. */
static ksplit_t *md_collect(int16_t ver, const struct tspan *spans, int32_t n, int32_t ndenied)
{
    ksplit_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->api_key = KAPI_Metadata;
    s->api_version = ver;
    s->topics = calloc((size_t)ndenied, sizeof(*s->topics));
    if (!s->topics) {
        free(s);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!spans[i].denied)
            continue;
        struct ksplit_topic *t = &s->topics[s->ntopics++];
        t->name_len = spans[i].name.len;
        t->name = malloc((size_t)t->name_len + 1);
        if (!t->name) {
            ksplit_free(s);
            return NULL;
        }
        memcpy(t->name, spans[i].name.ptr, (size_t)t->name_len);
        t->name[t->name_len] = '\0';
    }
    return s;
}

/* ksplit_request for Metadata (see ksplit.h): never KSPLIT_DENIED. */
static int md_request(const kreq_hdr_t *h, const uint8_t *frame, size_t len, ksplit_allow_fn allow,
                      void *ctx, kwriter_t *w, ksplit_t **out)
{
    int16_t ver = h->api_version;
    if (ver < 0 || ver > METADATA_MAX_VER)
        return KSPLIT_ERROR;
    int flex = kproto_is_flexible(KAPI_Metadata, ver);
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = h->body_off;
    struct tarray ta;
    struct tspan *spans = NULL;
    if (md_req_topics(&r, ver, flex, &ta, &spans) == 0) {
        walk(&r, metadata_req_tail, ver, flex, NULL);
        kr_tags_if(&r, flex);
        kr_expect_end(&r);
    }
    if (!kr_ok(&r) || !spans) {
        free(spans);
        return KSPLIT_ERROR;
    }
    int32_t ndenied = 0;
    for (int32_t i = 0; i < ta.n; i++) {
        if (spans[i].name.len < 0)
            continue; /* named by id only: cannot be checked, allowed */
        spans[i].denied = !allow(ctx, spans[i].name.ptr, (size_t)spans[i].name.len);
        ndenied += spans[i].denied;
    }
    if (ndenied == 0) {
        free(spans);
        return KSPLIT_ALLOWED;
    }
    ksplit_t *s = md_collect(ver, spans, ta.n, ndenied);
    int rc = s ? KSPLIT_PARTIAL : KSPLIT_ERROR;
    /* v0: an empty array asks for every topic; the merge drops them all */
    if (s && ndenied == ta.n && ver == 0)
        s->drop_all = 1;
    if (s && write_partial(w, frame, len, flex, &ta, spans, ta.n - ndenied) < 0)
        rc = KSPLIT_ERROR;
    free(spans);
    if (rc == KSPLIT_ERROR)
        ksplit_free(s);
    else
        *out = s;
    return rc;
}

/* Smallest response topic: ErrorCode, Name, the rest (tags included). */
static size_t md_resp_topic_min(int16_t ver, int flex)
{
    return 2 + (flex ? 1 : 2) + struct_min(metadata_topic_rest, ver, flex);
}

/*
 * Reads a whole Metadata response frame (from the correlation id) into
 * *ta and, when spans is not NULL, *spans (one per topic, allocated here;
 * the caller frees it, also on error). Returns 0, or -1 if malformed or
 * out of memory.
 */
static int md_resp_read(int16_t ver, const uint8_t *frame, size_t len, struct tarray *ta,
                        struct tspan **spans)
{
    int flex = kproto_is_flexible(KAPI_Metadata, ver);
    kreader_t r;
    kr_init(&r, frame, len);
    (void)kr_i32(&r); /* CorrelationId */
    kr_tags_if(&r, flex);
    walk(&r, metadata_resp_head, ver, flex, NULL);
    ta->count_off = r.off;
    ta->n = kr_array(&r, flex, md_resp_topic_min(ver, flex));
    if (kr_ok(&r) && ta->n < 0)
        kr_fail(&r, KR_ENULL);
    ta->count_end = r.off;
    if (!kr_ok(&r))
        return -1;
    if (spans) {
        *spans = calloc((size_t)ta->n + 1, sizeof(**spans));
        if (!*spans)
            return -1;
    }
    for (int32_t i = 0; i < ta->n && kr_ok(&r); i++) {
        struct tspan sp = {.start = r.off};
        (void)kr_i16(&r); /* ErrorCode */
        sp.name = ver >= 12 ? kr_str(&r, flex) : kr_str_nn(&r, flex);
        walk(&r, metadata_topic_rest, ver, flex, NULL);
        kr_tags_if(&r, flex);
        sp.end = r.off;
        if (spans)
            (*spans)[i] = sp;
    }
    ta->end = r.off;
    walk(&r, metadata_resp_tail, ver, flex, NULL);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    return kr_ok(&r) ? 0 : -1;
}

/* The removed topics of s as Metadata response topics (no count). */
static void md_write_removed(kwriter_t *w, const ksplit_t *s, int flex, int16_t code)
{
    static const uint8_t zero_uuid[16];
    int16_t ver = s->api_version;
    for (int32_t i = 0; i < s->ntopics; i++) {
        kw_i16(w, code);
        kw_str(w, flex, s->topics[i].name, s->topics[i].name_len);
        if (ver >= 10)
            kw_raw(w, zero_uuid, sizeof(zero_uuid)); /* TopicId */
        if (ver >= 1)
            kw_i8(w, 0); /* IsInternal */
        kw_array(w, flex, 0);
        if (ver >= 8)
            kw_i32(w, INT32_MIN); /* TopicAuthorizedOperations: unknown */
        if (flex)
            kw_tags_empty(w);
    }
}

/* ksplit_answer for Metadata: no brokers, the removed topics only. */
static int md_answer(const ksplit_t *s, int32_t corr, int16_t code, kwriter_t *w)
{
    int16_t ver = s->api_version;
    int flex = kproto_is_flexible(KAPI_Metadata, ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, corr);
    if (flex)
        kw_tags_empty(w);
    if (ver >= 3)
        kw_i32(w, 0); /* ThrottleTimeMs */
    kw_array(w, flex, 0);
    if (ver >= 2)
        kw_str(w, flex, NULL, -1); /* ClusterId */
    if (ver >= 1)
        kw_i32(w, -1); /* ControllerId */
    kw_array(w, flex, s->ntopics);
    md_write_removed(w, s, flex, code);
    if (ver >= 8 && ver <= 10)
        kw_i32(w, INT32_MIN); /* ClusterAuthorizedOperations */
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

/* ksplit_merge for Metadata: the broker's topics (none when drop_all),
 * then the removed ones. */
static int md_merge(const ksplit_t *s, const uint8_t *frame, size_t len, int16_t code, kwriter_t *w)
{
    int16_t ver = s->api_version;
    int flex = kproto_is_flexible(KAPI_Metadata, ver);
    struct tarray ta;
    if (md_resp_read(ver, frame, len, &ta, NULL) < 0)
        return -1;
    int32_t kept = s->drop_all ? 0 : ta.n;
    if (kept > INT32_MAX - s->ntopics)
        return -1;
    size_t start = w->len;
    kw_i32(w, 0);
    kw_raw(w, frame, ta.count_off);
    kw_array(w, flex, kept + s->ntopics);
    if (!s->drop_all)
        kw_raw(w, frame + ta.count_end, ta.end - ta.count_end);
    md_write_removed(w, s, flex, code);
    kw_raw(w, frame + ta.end, len - ta.end);
    return kw_finish_frame(w, start);
}

int ksplit_filter_metadata(int16_t ver, const uint8_t *frame, size_t len, ksplit_allow_fn allow,
                           void *ctx, kwriter_t *w, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (ver < 0 || ver > METADATA_MAX_VER || !frame || !allow || !w)
        return -1;
    struct tarray ta;
    struct tspan *spans = NULL;
    if (md_resp_read(ver, frame, len, &ta, &spans) < 0) {
        free(spans);
        return -1;
    }
    int32_t nremoved = 0;
    for (int32_t i = 0; i < ta.n; i++) {
        if (spans[i].name.len < 0)
            continue; /* no name (v12+): nothing to decide on, kept */
        spans[i].denied = !allow(ctx, spans[i].name.ptr, (size_t)spans[i].name.len);
        nremoved += spans[i].denied;
    }
    int flex = kproto_is_flexible(KAPI_Metadata, ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_raw(w, frame, ta.count_off);
    kw_array(w, flex, ta.n - nremoved);
    for (int32_t i = 0; i < ta.n; i++)
        if (!spans[i].denied)
            kw_raw(w, frame + spans[i].start, spans[i].end - spans[i].start);
    kw_raw(w, frame + ta.end, len - ta.end);
    free(spans);
    if (kw_finish_frame(w, start) < 0)
        return -1;
    if (removed)
        *removed = (size_t)nremoved;
    return 0;
}

int ksplit_request(const kreq_hdr_t *h, const uint8_t *frame, size_t len, ksplit_allow_fn allow,
                   void *ctx, kwriter_t *w, ksplit_t **out)
{
    if (out)
        *out = NULL;
    if (!h || !frame || !allow || !w || !out || h->body_off > len)
        return KSPLIT_ERROR;
    if (h->api_key == KAPI_Metadata)
        return md_request(h, frame, len, allow, ctx, w, out);
    int16_t ver = h->api_version;
    const split_api_t *api = split_api(h->api_key, ver);
    if (!api)
        return KSPLIT_ERROR;
    int flex = kproto_is_flexible(h->api_key, ver);
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = h->body_off;
    walk(&r, api->req_head, ver, flex, NULL);
    struct tarray ta;
    struct tspan *spans = NULL;
    int rc = kr_ok(&r) ? walk_topics(&r, api->req_part, ver, flex, &ta, &spans) : -1;
    if (rc == 0) {
        walk(&r, api->req_tail, ver, flex, NULL);
        kr_tags_if(&r, flex);
        kr_expect_end(&r);
    }
    if (rc < 0 || !kr_ok(&r)) {
        free(spans);
        return KSPLIT_ERROR;
    }
    int32_t ndenied = 0;
    for (int32_t i = 0; i < ta.n; i++) {
        spans[i].denied = !allow(ctx, spans[i].name.ptr, (size_t)spans[i].name.len);
        ndenied += spans[i].denied;
    }
    if (ndenied == 0) {
        free(spans);
        return KSPLIT_ALLOWED;
    }
    ksplit_t *s = collect(api, ver, flex, frame, spans, ta.n, ndenied);
    rc = !s ? KSPLIT_ERROR : ndenied == ta.n ? KSPLIT_DENIED : KSPLIT_PARTIAL;
    if (rc == KSPLIT_PARTIAL && write_partial(w, frame, len, flex, &ta, spans, ta.n - ndenied) < 0)
        rc = KSPLIT_ERROR;
    free(spans);
    if (rc == KSPLIT_ERROR)
        ksplit_free(s);
    else
        *out = s;
    return rc;
}

/* ---- answers ---- */

/* The removed topics of s as response entries (no array count). */
static void write_removed(kwriter_t *w, const split_api_t *api, const ksplit_t *s, int flex,
                          int16_t code)
{
    for (int32_t i = 0; i < s->ntopics; i++) {
        const struct ksplit_topic *t = &s->topics[i];
        kw_str(w, flex, t->name, t->name_len);
        kw_array(w, flex, t->npartitions);
        for (int32_t j = 0; j < t->npartitions; j++) {
            write_defaults(w, api->resp_part, s->api_version, flex, t->partitions[j], code);
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
    }
}

int ksplit_answer(const ksplit_t *s, int32_t corr, int16_t error_code, kwriter_t *w)
{
    if (s && w && s->api_key == KAPI_Metadata)
        return md_answer(s, corr, error_code, w);
    const split_api_t *api = s ? split_api(s->api_key, s->api_version) : NULL;
    if (!api || !w)
        return -1;
    int16_t ver = s->api_version;
    int flex = kproto_is_flexible(s->api_key, ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, corr);
    if (flex)
        kw_tags_empty(w); /* response header v1 */
    write_defaults(w, api->resp_head, ver, flex, 0, 0);
    kw_array(w, flex, s->ntopics);
    write_removed(w, api, s, flex, error_code);
    write_defaults(w, api->resp_tail, ver, flex, 0, 0);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

int ksplit_merge(const ksplit_t *s, const uint8_t *frame, size_t len, int16_t error_code,
                 kwriter_t *w)
{
    if (s && frame && w && s->api_key == KAPI_Metadata)
        return md_merge(s, frame, len, error_code, w);
    const split_api_t *api = s ? split_api(s->api_key, s->api_version) : NULL;
    if (!api || !frame || !w)
        return -1;
    int16_t ver = s->api_version;
    int flex = kproto_is_flexible(s->api_key, ver);
    kreader_t r;
    kr_init(&r, frame, len);
    (void)kr_i32(&r); /* CorrelationId */
    kr_tags_if(&r, flex);
    walk(&r, api->resp_head, ver, flex, NULL);
    struct tarray ta;
    if (!kr_ok(&r) || walk_topics(&r, api->resp_part, ver, flex, &ta, NULL) < 0)
        return -1;
    walk(&r, api->resp_tail, ver, flex, NULL);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    if (!kr_ok(&r) || ta.n > INT32_MAX - s->ntopics)
        return -1;
    size_t start = w->len;
    kw_i32(w, 0);
    kw_raw(w, frame, ta.count_off);
    kw_array(w, flex, ta.n + s->ntopics);
    kw_raw(w, frame + ta.count_end, ta.end - ta.count_end);
    write_removed(w, api, s, flex, error_code);
    kw_raw(w, frame + ta.end, len - ta.end);
    return kw_finish_frame(w, start);
}

/* ---- admin requests: refuse everything ---- */

/* CreateTopics: Topics [Name NumPartitions ReplicationFactor
 * Assignments [PartitionIndex BrokerIds] Configs [Name Value]]. */
static const kfield_t createtopics_assignment[] = {FIELD(F_I32, 0, V_MAX, 0),
                                                   FIELD(F_I32S, 0, V_MAX, 0), END};
static const kfield_t createtopics_config[] = {FIELD(F_STR, 0, V_MAX, 0),
                                               FIELD(F_NSTR, 0, V_MAX, 0), END};
static const kfield_t createtopics_topic_rest[] = {
    FIELD(F_I32, 0, V_MAX, 0), FIELD(F_I16, 0, V_MAX, 0),
    STRUCTS(F_STRUCTS, 0, V_MAX, 0, createtopics_assignment),
    STRUCTS(F_STRUCTS, 0, V_MAX, 0, createtopics_config), END};
/* ... TimeoutMs ValidateOnly(1+). */
static const kfield_t createtopics_tail[] = {FIELD(F_I32, 0, V_MAX, 0), FIELD(F_I8, 1, V_MAX, 0),
                                             END};
/* Response topic after Name: TopicId(7+) ErrorCode ErrorMessage(1+)
 * NumPartitions(5+) ReplicationFactor(5+) Configs(5+, nullable). */
static const kfield_t createtopics_result[] = {FIELD(F_UUID, 7, V_MAX, 0),
                                               FIELD(F_ERROR, 0, V_MAX, 0),
                                               FIELD(F_NSTR, 1, V_MAX, -1),
                                               FIELD(F_I32, 5, V_MAX, -1),
                                               FIELD(F_I16, 5, V_MAX, -1),
                                               STRUCTS(F_NSTRUCTS, 5, V_MAX, -1, none),
                                               END};

/* CreatePartitions: Topics [Name Count Assignments(nullable) [BrokerIds]]
 * TimeoutMs ValidateOnly; result after Name: ErrorCode ErrorMessage. */
static const kfield_t createpartitions_assignment[] = {FIELD(F_I32S, 0, V_MAX, 0), END};
static const kfield_t createpartitions_topic_rest[] = {
    FIELD(F_I32, 0, V_MAX, 0), STRUCTS(F_NSTRUCTS, 0, V_MAX, 0, createpartitions_assignment), END};
static const kfield_t createpartitions_tail[] = {FIELD(F_I32, 0, V_MAX, 0),
                                                 FIELD(F_I8, 0, V_MAX, 0), END};
static const kfield_t error_and_message[] = {FIELD(F_ERROR, 0, V_MAX, 0),
                                             FIELD(F_NSTR, 0, V_MAX, -1), END};
/* DeleteGroups result after GroupId: ErrorCode. */
static const kfield_t error_only[] = {FIELD(F_ERROR, 0, V_MAX, 0), END};

/* DeleteRecords: Topics [Name Partitions [PartitionIndex Offset]] TimeoutMs;
 * result partition: PartitionIndex LowWatermark ErrorCode. */
static const kfield_t deleterecords_req_part[] = {FIELD(F_INDEX, 0, V_MAX, 0),
                                                  FIELD(F_I64, 0, V_MAX, 0), END};
static const kfield_t deleterecords_resp_part[] = {
    FIELD(F_INDEX, 0, V_MAX, 0), FIELD(F_I64, 0, V_MAX, -1), FIELD(F_ERROR, 0, V_MAX, 0), END};
static const kfield_t timeout_only[] = {FIELD(F_I32, 0, V_MAX, 0), END};

/* DeleteTopics response after Name: TopicId(6+) ErrorCode ErrorMessage(5+). */
static const kfield_t deletetopics_result[] = {FIELD(F_ERROR, 0, V_MAX, 0),
                                               FIELD(F_NSTR, 5, V_MAX, -1), END};

/* One entry of an admin request: its name (null for a DeleteTopics v6
 * topic named by id), its topic id (DeleteTopics v6) and, for
 * DeleteRecords, where its partitions start. */
struct entry {
    kstr_t name;
    const uint8_t *topic_id;
    size_t parts_off;
};

/* How an admin API's request is laid out. */
enum entry_form {
    E_NAMES,       /* [STRING]: DeleteTopics v0-5, DeleteGroups */
    E_STRUCTS,     /* [Name rest...]: CreateTopics, CreatePartitions */
    E_TOPIC_IDS,   /* [Name(nullable) TopicId]: DeleteTopics v6+ */
    E_PARTITIONED, /* [Name [partition]]: DeleteRecords */
};

typedef struct refuse_api {
    int16_t key;
    int16_t lo;
    int16_t hi;
    int16_t throttle_from; /* first version with ThrottleTimeMs in the response */
    int form;              /* enum entry_form */
    const kfield_t *rest;  /* E_STRUCTS: the entry after its name; E_PARTITIONED: a partition */
    const kfield_t *tail;  /* the body after the entries */
    const kfield_t *reply; /* the answer entry after its name (E_PARTITIONED: a partition) */
    int16_t code;
} refuse_api_t;

static const refuse_api_t refuse_apis[] = {
    {KAPI_CreateTopics, 0, 7, 2, E_STRUCTS, createtopics_topic_rest, createtopics_tail,
     createtopics_result, TOPIC_AUTHORIZATION_FAILED},
    {KAPI_DeleteTopics, 0, 5, 1, E_NAMES, NULL, timeout_only, deletetopics_result,
     TOPIC_AUTHORIZATION_FAILED},
    {KAPI_DeleteTopics, 6, 6, 1, E_TOPIC_IDS, NULL, timeout_only, deletetopics_result,
     TOPIC_AUTHORIZATION_FAILED},
    {KAPI_CreatePartitions, 0, 3, 0, E_STRUCTS, createpartitions_topic_rest, createpartitions_tail,
     error_and_message, TOPIC_AUTHORIZATION_FAILED},
    {KAPI_DeleteRecords, 0, 2, 0, E_PARTITIONED, deleterecords_req_part, timeout_only,
     deleterecords_resp_part, TOPIC_AUTHORIZATION_FAILED},
    {KAPI_DeleteGroups, 0, 2, 0, E_NAMES, NULL, none, error_only, GROUP_AUTHORIZATION_FAILED},
};

static const refuse_api_t *refuse_api(int16_t key, int16_t ver)
{
    for (size_t i = 0; i < sizeof(refuse_apis) / sizeof(refuse_apis[0]); i++)
        if (refuse_apis[i].key == key && ver >= refuse_apis[i].lo && ver <= refuse_apis[i].hi)
            return &refuse_apis[i];
    return NULL;
}

/* Smallest entry of an admin request, to bound its count. */
static size_t entry_min(const refuse_api_t *a, int16_t ver, int flex)
{
    switch (a->form) {
    case E_NAMES:
        return flex ? 1 : 2;
    case E_TOPIC_IDS:
        return 1 + 16 + 1;
    case E_PARTITIONED:
        return topic_min(flex);
    default:
        return (flex ? 1 : 2) + struct_min(a->rest, ver, flex);
    }
}

/* Reads one entry of an admin request into e. */
static void read_entry(kreader_t *r, const refuse_api_t *a, int16_t ver, int flex, struct entry *e)
{
    if (a->form == E_NAMES) {
        e->name = kr_str_nn(r, flex);
        return;
    }
    e->name = a->form == E_TOPIC_IDS ? kr_str(r, flex) : kr_str_nn(r, flex);
    if (a->form == E_TOPIC_IDS) {
        e->topic_id = kr_skip(r, 16);
    } else if (a->form == E_PARTITIONED) {
        const kfield_t partitions[] = {STRUCTS(F_STRUCTS, 0, V_MAX, 0, a->rest), END};
        e->parts_off = r->off;
        walk(r, partitions, ver, flex, NULL);
    } else {
        walk(r, a->rest, ver, flex, NULL);
    }
    kr_tags_if(r, flex);
}

/* Writes the answer entry for e (no count). */
static void write_refusal(kwriter_t *w, const refuse_api_t *a, int16_t ver, int flex,
                          const uint8_t *frame, size_t len, const struct entry *e)
{
    kw_kstr(w, flex, e->name);
    if (a->key == KAPI_DeleteTopics && ver >= 6) {
        static const uint8_t zero_uuid[16];
        kw_raw(w, e->topic_id ? e->topic_id : zero_uuid, 16);
    }
    if (a->form != E_PARTITIONED) {
        write_defaults(w, a->reply, ver, flex, 0, a->code);
    } else {
        kreader_t r;
        kr_init(&r, frame, len);
        r.off = e->parts_off;
        int32_t n = kr_array(&r, flex, 1);
        kw_array(w, flex, n);
        for (int32_t j = 0; j < n; j++) {
            int32_t index = 0;
            walk(&r, a->rest, ver, flex, &index);
            kr_tags_if(&r, flex);
            write_defaults(w, a->reply, ver, flex, index, a->code);
            if (flex)
                kw_tags_empty(w);
        }
    }
    if (flex)
        kw_tags_empty(w);
}

int ksplit_refuse_all(const kreq_hdr_t *h, const uint8_t *frame, size_t len, kwriter_t *w)
{
    if (!h || !frame || !w || h->body_off > len)
        return -1;
    int16_t ver = h->api_version;
    const refuse_api_t *a = refuse_api(h->api_key, ver);
    if (!a)
        return -1;
    int flex = kproto_is_flexible(h->api_key, ver);
    kreader_t r;
    kr_init(&r, frame, len);
    r.off = h->body_off;
    int32_t n = kr_array(&r, flex, entry_min(a, ver, flex));
    if (!kr_ok(&r) || n < 0) /* the entry arrays are not nullable */
        return -1;
    struct entry *e = calloc((size_t)n + 1, sizeof(*e));
    for (int32_t i = 0; e && i < n && kr_ok(&r); i++)
        read_entry(&r, a, ver, flex, &e[i]);
    walk(&r, a->tail, ver, flex, NULL);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    if (!e || !kr_ok(&r)) {
        free(e);
        return -1;
    }
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, h->correlation_id);
    if (flex)
        kw_tags_empty(w);
    if (ver >= a->throttle_from)
        kw_i32(w, 0); /* ThrottleTimeMs */
    kw_array(w, flex, n);
    for (int32_t i = 0; i < n; i++)
        write_refusal(w, a, ver, flex, frame, len, &e[i]);
    if (flex)
        kw_tags_empty(w);
    free(e);
    return kw_finish_frame(w, start);
}
