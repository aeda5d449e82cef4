/*
 * test_ksplit.c - unit tests for the per-topic request split, the error
 * answer and the response merge (proxy/codec/ksplit.c), over Produce v3..v9,
 * Fetch v4..v12, ListOffsets v0..v8 and OffsetCommit v0..v8, and for the
 * refusal of whole admin requests.
 *
 * Frames are built here field by field from Kafka's message specs,
 * independently of ksplit's layout tables; flexible versions carry
 * non-empty tagged fields (request header, partitions, topics, bodies)
 * that must come through byte for byte. For each version:
 *  - allow-all gives ALLOWED and writes nothing; deny-all gives DENIED and
 *    an answer equal to the one built here, which the codecs (kproduce,
 *    kfetch, kcommit) parse with error 29 on every partition;
 *  - denying one topic of three gives PARTIAL and exactly the request
 *    built here without it (header bytes identical), which kproto
 *    validates and the codecs parse; the merge of a broker response built
 *    here equals that response with the denied topic appended as an error;
 *  - a topic listed twice is decided (and removed) once per occurrence;
 *  - every truncation of a request or response fails cleanly (each prefix
 *    in a buffer of exactly that size, so ASan sees any over-read), as do
 *    a trailing byte, a null topic array and an unsupported version.
 * Golden requests from real clients (tests/unit/golden) go through
 * allow-all and deny-all, and golden responses through the merge.
 *
 * Metadata v0..v12 (request split, merge, local answer and
 * ksplit_filter_metadata), frames built here the same way: allow-all,
 * one of three denied (the request without it; the merge equals the
 * broker's response with the 29 entry appended), all denied (PARTIAL with
 * an empty array; v0 drops the broker's topics), a kept topic, duplicates,
 * null and empty arrays, topics named by id only (v10+) and unnamed
 * response topics (v12); the filter removing none, one and all topics.
 * Outputs are read back with a field-by-field Metadata reader written
 * here and with krewrite (which must see the brokers and give the same
 * bytes back), also after krewrite changed the broker addresses; every
 * truncation fails. Golden Metadata frames are split, merged and filtered.
 *
 * With KSPLIT_SEED_DIR set, frames are written there as fuzz seeds
 * ksplit-*.bin in the input format of tests/fuzz/fuzz_ksplit.c.
 */
#include "kcommit.h"
#include "kfetch.h"
#include "kproduce.h"
#include "kproto.h"
#include "krewrite.h"
#include "ksplit.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#define GOLDEN_DIR "tests/unit/golden"
#define AUTHZ 29

/* ---- test topics ---- */

typedef struct ttopic {
    const char *name;
    int np;
    int32_t parts[3];
} ttopic_t;

/* The usual request: beta (in the middle) is the one denied. */
static const ttopic_t T3[] = {{"alpha", 2, {0, 1}}, {"beta", 1, {3}}, {"gamma", 1, {2}}};
/* beta twice around alpha. */
static const ttopic_t TDUP[] = {{"beta", 1, {1}}, {"alpha", 1, {0}}, {"beta", 2, {2, 4}}};

/* The four split APIs with their version ranges. */
static const struct {
    int16_t api;
    int16_t lo, hi;
} SPLIT[] = {
    {KAPI_Produce, 3, 9}, {KAPI_Fetch, 4, 12}, {KAPI_ListOffsets, 0, 8}, {KAPI_OffsetCommit, 0, 8}};

/* ---- allow callbacks ---- */

typedef struct deny_ctx {
    const char *deny; /* NULL: allow all; "*": deny all; else that name */
    int calls;
} deny_ctx_t;

static int allow_cb(void *ctx, const char *topic, size_t len)
{
    deny_ctx_t *d = ctx;
    d->calls++;
    if (!d->deny)
        return 1;
    if (strcmp(d->deny, "*") == 0)
        return 0;
    return !(strlen(d->deny) == len && memcmp(d->deny, topic, len) == 0);
}

/* ---- building: common ---- */

/* A non-empty TAGGED_FIELDS section (one unknown tag 9 holding k) when
 * flexible; nothing otherwise. */
static void tags_extra(kwriter_t *w, int flex, int k)
{
    if (!flex)
        return;
    kw_uvarint(w, 1);
    kw_uvarint(w, 9);
    kw_uvarint(w, 1);
    kw_i8(w, (int8_t)k);
}

static void tags_empty(kwriter_t *w, int flex)
{
    if (flex)
        kw_tags_empty(w);
}

/* Request header v1 (v2 with a non-empty tag section when flexible). */
static void build_header(kwriter_t *w, int16_t api, int16_t ver, int32_t corr)
{
    kw_i16(w, api);
    kw_i16(w, ver);
    kw_i32(w, corr);
    kw_str(w, 0, "tester", 6);
    if (kproto_request_header_version(api, ver) >= 2) {
        kw_uvarint(w, 1);
        kw_uvarint(w, 5);
        kw_uvarint(w, 2);
        kw_raw(w, "hi", 2);
    }
}

/* "rec-<name>-<index>" as record bytes (nothing looks inside them). */
static void put_records(kwriter_t *w, int flex, const char *name, int32_t p)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "rec-%s-%d", name, p);
    kw_bytes(w, flex, buf, n);
}

/* ---- building: request bodies ---- */

static void produce_topic(kwriter_t *w, int16_t ver, int flex, const ttopic_t *t)
{
    kw_str(w, flex, t->name, (int32_t)strlen(t->name));
    kw_array(w, flex, t->np);
    for (int j = 0; j < t->np; j++) {
        kw_i32(w, t->parts[j]);
        if (t->parts[j] == 1)
            kw_bytes(w, flex, NULL, -1);
        else
            put_records(w, flex, t->name, t->parts[j]);
        tags_extra(w, flex, j);
    }
    tags_extra(w, flex, 0x20);
}

static void fetch_topic(kwriter_t *w, int16_t ver, int flex, const ttopic_t *t)
{
    kw_str(w, flex, t->name, (int32_t)strlen(t->name));
    kw_array(w, flex, t->np);
    for (int j = 0; j < t->np; j++) {
        kw_i32(w, t->parts[j]);
        if (ver >= 9)
            kw_i32(w, 5);
        kw_i64(w, 1000 + t->parts[j]);
        if (ver >= 12)
            kw_i32(w, 4);
        if (ver >= 5)
            kw_i64(w, 0);
        kw_i32(w, 1048576);
        tags_extra(w, flex, j);
    }
    tags_extra(w, flex, 0x21);
}

static void listoffsets_topic(kwriter_t *w, int16_t ver, int flex, const ttopic_t *t)
{
    kw_str(w, flex, t->name, (int32_t)strlen(t->name));
    kw_array(w, flex, t->np);
    for (int j = 0; j < t->np; j++) {
        kw_i32(w, t->parts[j]);
        if (ver >= 4)
            kw_i32(w, -1);
        kw_i64(w, -2); /* earliest */
        if (ver == 0)
            kw_i32(w, 1);
        tags_extra(w, flex, j);
    }
    tags_extra(w, flex, 0x22);
}

static void offsetcommit_topic(kwriter_t *w, int16_t ver, int flex, const ttopic_t *t)
{
    kw_str(w, flex, t->name, (int32_t)strlen(t->name));
    kw_array(w, flex, t->np);
    for (int j = 0; j < t->np; j++) {
        kw_i32(w, t->parts[j]);
        kw_i64(w, 42 + t->parts[j]);
        if (ver >= 6)
            kw_i32(w, 2);
        if (ver == 1)
            kw_i64(w, -1);
        if (j == 0)
            kw_str(w, flex, "md", 2);
        else
            kw_str(w, flex, NULL, -1);
        tags_extra(w, flex, j);
    }
    tags_extra(w, flex, 0x23);
}

/* Body fields before the topic array. */
static void req_head(kwriter_t *w, int16_t api, int16_t ver, int flex)
{
    switch (api) {
    case KAPI_Produce:
        if (ver % 2)
            kw_str(w, flex, "txn-1", 5);
        else
            kw_str(w, flex, NULL, -1);
        kw_i16(w, -1);
        kw_i32(w, 30000);
        break;
    case KAPI_Fetch:
        kw_i32(w, -1);
        kw_i32(w, 500);
        kw_i32(w, 1);
        kw_i32(w, 52428800);
        kw_i8(w, 1);
        if (ver >= 7) {
            kw_i32(w, 12);
            kw_i32(w, 3);
        }
        break;
    case KAPI_ListOffsets:
        kw_i32(w, -1);
        if (ver >= 2)
            kw_i8(w, 1);
        break;
    case KAPI_OffsetCommit:
        kw_str(w, flex, "grp", 3);
        if (ver >= 1) {
            kw_i32(w, 4);
            kw_str(w, flex, "m-1", 3);
        }
        if (ver >= 7)
            kw_str(w, flex, NULL, -1);
        if (ver >= 2 && ver <= 4)
            kw_i64(w, -1);
        break;
    }
}

/* Body fields after the topic array, and the body's tags. */
static void req_tail(kwriter_t *w, int16_t api, int16_t ver, int flex)
{
    if (api == KAPI_Fetch && ver >= 7) {
        kw_array(w, flex, 1);
        kw_str(w, flex, "gone", 4);
        kw_array(w, flex, 2);
        kw_i32(w, 1);
        kw_i32(w, 2);
        tags_extra(w, flex, 0x30);
    }
    if (api == KAPI_Fetch && ver >= 11)
        kw_str(w, flex, "rack-a", 6);
    if (api == KAPI_Fetch && flex) { /* ClusterId, tag 0: COMPACT_STRING "clu" */
        kw_uvarint(w, 1);
        kw_uvarint(w, 0);
        kw_uvarint(w, 4);
        kw_uvarint(w, 4);
        kw_raw(w, "clu", 3);
    } else {
        tags_extra(w, flex, 0x40);
    }
}

/* A request frame (no size prefix) naming t[idx[0..n)] in that order. */
static void build_req(kwriter_t *w, int16_t api, int16_t ver, const ttopic_t *t, const int *idx,
                      int n)
{
    int flex = kproto_is_flexible(api, ver);
    build_header(w, api, ver, 0x1234);
    req_head(w, api, ver, flex);
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++) {
        const ttopic_t *tt = &t[idx[i]];
        if (api == KAPI_Produce)
            produce_topic(w, ver, flex, tt);
        else if (api == KAPI_Fetch)
            fetch_topic(w, ver, flex, tt);
        else if (api == KAPI_ListOffsets)
            listoffsets_topic(w, ver, flex, tt);
        else
            offsetcommit_topic(w, ver, flex, tt);
    }
    req_tail(w, api, ver, flex);
}

/* ---- building: responses ---- */

/* One partition of a response: the broker's data, or (err) the answer. */
static void resp_partition(kwriter_t *w, int16_t api, int16_t ver, int flex, const char *name,
                           int32_t p, int err)
{
    kw_i32(w, p);
    kw_i16(w, err ? AUTHZ : 0);
    switch (api) {
    case KAPI_Produce:
        kw_i64(w, err ? -1 : 100 + p);
        kw_i64(w, err ? -1 : 1700000000000LL);
        if (ver >= 5)
            kw_i64(w, err ? -1 : 7);
        if (ver >= 8) {
            kw_array(w, flex, err ? 0 : 1);
            if (!err) {
                kw_i32(w, 0);
                kw_str(w, flex, "bad", 3);
                tags_extra(w, flex, 1);
            }
            if (err)
                kw_str(w, flex, NULL, -1);
            else
                kw_str(w, flex, "msg", 3);
        }
        break;
    case KAPI_Fetch:
        kw_i64(w, err ? -1 : 10);
        kw_i64(w, err ? -1 : 9);
        if (ver >= 5)
            kw_i64(w, err ? -1 : 0);
        if (err) {
            kw_array(w, flex, 0);
        } else if (p == 0) {
            kw_array(w, flex, 1);
            kw_i64(w, 1234);
            kw_i64(w, 3);
            tags_extra(w, flex, 2);
        } else {
            kw_array(w, flex, -1);
        }
        if (ver >= 11)
            kw_i32(w, -1);
        if (err)
            kw_bytes(w, flex, "", 0);
        else
            put_records(w, flex, name, p);
        break;
    case KAPI_ListOffsets:
        if (ver == 0) {
            kw_array(w, flex, err ? 0 : 2);
            if (!err) {
                kw_i64(w, 5);
                kw_i64(w, 3);
            }
        } else {
            kw_i64(w, -1);
            kw_i64(w, err ? -1 : 50 + p);
            if (ver >= 4)
                kw_i32(w, err ? -1 : 2);
        }
        break;
    }
    if (err)
        tags_empty(w, flex);
    else
        tags_extra(w, flex, 3);
}

/*
 * A response frame (no size prefix) with topics t[idx[i]], each the
 * broker's (err[i] 0) or the answer's (1). local: as ksplit_answer writes
 * it (throttle 0, session 0, no tags); else as a broker might (throttle
 * 7, session 77, tags everywhere).
 */
static void build_resp(kwriter_t *w, int16_t api, int16_t ver, int local, const ttopic_t *t,
                       const int *idx, const int *err, int n)
{
    int flex = kproto_is_flexible(api, ver);
    kw_i32(w, 0x1234);
    if (local)
        tags_empty(w, flex);
    else
        tags_extra(w, flex, 0x50);
    int32_t throttle = local ? 0 : 7;
    if (api == KAPI_Fetch) {
        kw_i32(w, throttle);
        if (ver >= 7) {
            kw_i16(w, 0);
            kw_i32(w, local ? 0 : 77);
        }
    } else if ((api == KAPI_ListOffsets && ver >= 2) || (api == KAPI_OffsetCommit && ver >= 3)) {
        kw_i32(w, throttle);
    }
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++) {
        const ttopic_t *tt = &t[idx[i]];
        kw_str(w, flex, tt->name, (int32_t)strlen(tt->name));
        kw_array(w, flex, tt->np);
        for (int j = 0; j < tt->np; j++)
            resp_partition(w, api, ver, flex, tt->name, tt->parts[j], err[i]);
        if (err[i])
            tags_empty(w, flex);
        else
            tags_extra(w, flex, 4);
    }
    if (api == KAPI_Produce)
        kw_i32(w, throttle);
    if (local)
        tags_empty(w, flex);
    else
        tags_extra(w, flex, 0x51);
}

/* ---- seeds ---- */

static void write_seed(const char *name, uint8_t sel, const uint8_t *frame, size_t len)
{
    const char *dir = getenv("KSPLIT_SEED_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/ksplit-%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(&sel, 1, 1, f);
    fwrite(frame, 1, len, f);
    fclose(f);
}

/* Merge-mode selector of tests/fuzz/fuzz_ksplit.c for (api, ver). */
static uint8_t merge_selector(int16_t api, int16_t ver)
{
    for (size_t i = 0; i < sizeof(SPLIT) / sizeof(SPLIT[0]); i++)
        if (SPLIT[i].api == api)
            return (uint8_t)(0x80 | (i << 4) | (size_t)(ver - SPLIT[i].lo));
    return 0;
}

/* ---- independent checks of answers ---- */

/* Error codes of every partition in a response frame (no size prefix),
 * read with the API's codec; -1 if it does not parse. Fills names and
 * partition indexes for comparison. */
typedef struct seen {
    int ntopics;
    char names[8][16];
    int np[8];
    int32_t parts[8][4];
    int16_t errs[8][4];
} seen_t;

static void seen_topic(seen_t *s, kstr_t name, int np)
{
    int i = s->ntopics++;
    if (i >= 8)
        return;
    snprintf(s->names[i], sizeof(s->names[i]), "%.*s", name.len, name.ptr);
    s->np[i] = np;
}

static void seen_part(seen_t *s, int j, int32_t index, int16_t err)
{
    int i = s->ntopics - 1;
    if (i < 8 && j < 4) {
        s->parts[i][j] = index;
        s->errs[i][j] = err;
    }
}

static int parse_resp(int16_t api, int16_t ver, const uint8_t *frame, size_t len, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    if (api == KAPI_Produce) {
        kproduce_resp_t r;
        if (kproduce_resp_parse(ver, frame, len, &r, NULL) != 0)
            return -1;
        for (int32_t i = 0; i < r.ntopics; i++) {
            seen_topic(s, r.topics[i].name, r.topics[i].npartitions);
            for (int32_t j = 0; j < r.topics[i].npartitions; j++)
                seen_part(s, j, r.topics[i].partitions[j].index,
                          r.topics[i].partitions[j].error_code);
        }
        kproduce_resp_free(&r);
        return 0;
    }
    if (api == KAPI_Fetch) {
        kfetch_resp_t r;
        if (kfetch_resp_parse(ver, frame, len, &r, NULL) != 0)
            return -1;
        for (int32_t i = 0; i < r.ntopics; i++) {
            seen_topic(s, r.topics[i].name, r.topics[i].npartitions);
            for (int32_t j = 0; j < r.topics[i].npartitions; j++)
                seen_part(s, j, r.topics[i].partitions[j].index,
                          r.topics[i].partitions[j].error_code);
        }
        kfetch_resp_free(&r);
        return 0;
    }
    if (api == KAPI_OffsetCommit) {
        int32_t corr;
        size_t off;
        kcommit_t c;
        if (kproto_parse_response_header(api, ver, frame, len, &corr, &off) != 0 ||
            kcommit_resp_parse(api, ver, frame + off, len - off, &c, NULL) != 0)
            return -1;
        for (int32_t i = 0; i < c.ntopics; i++) {
            seen_topic(s, c.topics[i].name, c.topics[i].npartitions);
            for (int32_t j = 0; j < c.topics[i].npartitions; j++)
                seen_part(s, j, c.topics[i].partitions[j].index,
                          c.topics[i].partitions[j].error_code);
        }
        kcommit_free(&c);
        return 0;
    }
    return -1; /* ListOffsets: no codec; compared byte for byte instead */
}

/* Topic count of a request body, read with the API's codec (-1: does
 * not parse; -2: no codec). */
static int parse_req_topics(int16_t api, int16_t ver, const uint8_t *body, size_t len)
{
    int n = -1;
    if (api == KAPI_Produce) {
        kproduce_req_t r;
        if (kproduce_req_parse(ver, body, len, &r, NULL) == 0) {
            n = r.ntopics;
            kproduce_req_free(&r);
        }
    } else if (api == KAPI_Fetch) {
        kfetch_req_t r;
        if (kfetch_req_parse(ver, body, len, &r, NULL) == 0) {
            n = r.ntopics;
            kfetch_req_free(&r);
        }
    } else if (api == KAPI_OffsetCommit) {
        kcommit_t c;
        if (kcommit_req_parse(api, ver, body, len, &c, NULL) == 0) {
            n = c.ntopics;
            kcommit_free(&c);
        }
    } else {
        n = -2;
    }
    return n;
}

/* w holds one frame with a correct size prefix equal to (4 + exp). */
static int same_frame(const kwriter_t *w, const kwriter_t *exp)
{
    return w->len == exp->len + 4 && kbe32(w->buf) == (int32_t)exp->len &&
           memcmp(w->buf + 4, exp->buf, exp->len) == 0;
}

/* ---- checks ---- */

/* Every strict prefix and one trailing byte: ERROR, nothing written, allow
 * never called. */
static void check_request_truncations(const uint8_t *frame, size_t len, const kreq_hdr_t *h)
{
    int all_error = 1, no_calls = 1, nothing = 1;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, frame, n);
        deny_ctx_t d = {"beta", 0};
        kwriter_t w;
        kw_init(&w, 64);
        ksplit_t *s = (ksplit_t *)&d; /* must be reset to NULL */
        int rc = ksplit_request(h, copy, n, allow_cb, &d, &w, &s);
        all_error &= rc == KSPLIT_ERROR && s == NULL;
        no_calls &= d.calls == 0;
        nothing &= w.len == 0;
        ksplit_free(rc == KSPLIT_ERROR ? NULL : s);
        kw_free(&w);
        free(copy);
    }
    CHECK(all_error);
    CHECK(no_calls);
    CHECK(nothing);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0;
    deny_ctx_t d = {NULL, 0};
    kwriter_t w;
    kw_init(&w, 64);
    ksplit_t *s = NULL;
    CHECK_EQ(ksplit_request(h, longer, len + 1, allow_cb, &d, &w, &s), KSPLIT_ERROR);
    CHECK(s == NULL && d.calls == 0);
    kw_free(&w);
    free(longer);
}

/* Every strict prefix and a trailing byte of a broker response: -1. */
static void check_merge_truncations(const ksplit_t *s, const uint8_t *frame, size_t len)
{
    int all_fail = 1, nothing = 1;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, frame, n);
        kwriter_t w;
        kw_init(&w, 64);
        all_fail &= ksplit_merge(s, copy, n, AUTHZ, &w) == -1;
        nothing &= w.len == 0;
        kw_free(&w);
        free(copy);
    }
    CHECK(all_fail);
    CHECK(nothing);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0;
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ksplit_merge(s, longer, len + 1, AUTHZ, &w), -1);
    kw_free(&w);
    free(longer);
}

/* A request frame and its parsed header; 0 on success. */
static int header_of(const kwriter_t *req, kreq_hdr_t *h)
{
    const char *err = NULL;
    int rc = kproto_parse_request_header(req->buf, req->len, h, &err);
    CHECK_EQ(rc, 0);
    return rc;
}

/* allow-all: ALLOWED, nothing written, allow called once per topic. */
static void check_allowed(const kreq_hdr_t *h, const uint8_t *frame, size_t len, int ntopics)
{
    deny_ctx_t d = {NULL, 0};
    kwriter_t w;
    kw_init(&w, 64);
    ksplit_t *s = (ksplit_t *)&d;
    CHECK_EQ(ksplit_request(h, frame, len, allow_cb, &d, &w, &s), KSPLIT_ALLOWED);
    CHECK(s == NULL);
    CHECK_EQ(w.len, 0);
    CHECK_EQ(d.calls, ntopics);
    kw_free(&w);
}

/* deny-all: DENIED, nothing written, the answer parses with error 29 on
 * every partition of the request (seen from its codec: req_seen). */
static ksplit_t *check_denied(const kreq_hdr_t *h, const uint8_t *frame, size_t len, int ntopics)
{
    deny_ctx_t d = {"*", 0};
    kwriter_t w;
    kw_init(&w, 64);
    ksplit_t *s = NULL;
    CHECK_EQ(ksplit_request(h, frame, len, allow_cb, &d, &w, &s), KSPLIT_DENIED);
    CHECK_EQ(w.len, 0);
    CHECK(s != NULL);
    CHECK_EQ(d.calls, ntopics);
    CHECK_EQ(ksplit_topic_count(s), (size_t)ntopics);
    CHECK_EQ(ksplit_api_key(s), h->api_key);
    CHECK_EQ(ksplit_api_version(s), h->api_version);
    kw_free(&w);
    return s;
}

/* The answer to a deny-all split: the codec sees every partition with 29
 * and the correlation id of the request. */
static void check_answer_parses(const ksplit_t *s, int16_t api, int16_t ver, int32_t corr,
                                int ntopics)
{
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(ksplit_answer(s, corr, AUTHZ, &w), 0);
    CHECK(w.len >= 8 && kbe32(w.buf) == (int32_t)(w.len - 4) && kbe32(w.buf + 4) == corr);
    seen_t seen;
    if (api != KAPI_ListOffsets) {
        CHECK_EQ(parse_resp(api, ver, w.buf + 4, w.len - 4, &seen), 0);
        CHECK_EQ(seen.ntopics, ntopics);
        int all29 = 1;
        for (int i = 0; i < seen.ntopics && i < 8; i++)
            for (int j = 0; j < seen.np[i] && j < 4; j++)
                all29 &= seen.errs[i][j] == AUTHZ;
        CHECK(all29);
    }
    kw_free(&w);
}

/* The PARTIAL request (w, size prefix first) seen through the codecs:
 * alpha's records and the body's other fields as the client sent them. */
static void check_kept_bytes(int16_t api, int16_t ver, const kwriter_t *w, size_t body_off)
{
    const uint8_t *body = w->buf + 4 + body_off;
    size_t len = w->len - 4 - body_off;
    if (api == KAPI_Produce) {
        kproduce_req_t r;
        CHECK_EQ(kproduce_req_parse(ver, body, len, &r, NULL), 0);
        if (r.ntopics != 2) {
            CHECK(0);
            kproduce_req_free(&r);
            return;
        }
        CHECK(r.topics[0].name.len == 5 && memcmp(r.topics[0].name.ptr, "alpha", 5) == 0);
        CHECK(r.topics[1].name.len == 5 && memcmp(r.topics[1].name.ptr, "gamma", 5) == 0);
        kbytes_t rec = r.topics[0].partitions[0].records;
        CHECK(rec.len == 11 && memcmp(rec.ptr, "rec-alpha-0", 11) == 0);
        CHECK_EQ(r.topics[0].partitions[1].records.len, -1);
        CHECK_EQ(r.acks, -1);
        CHECK_EQ(r.timeout_ms, 30000);
        CHECK_EQ(r.transactional_id.len, ver % 2 ? 5 : -1);
        kproduce_req_free(&r);
    } else if (api == KAPI_Fetch) {
        kfetch_req_t r;
        CHECK_EQ(kfetch_req_parse(ver, body, len, &r, NULL), 0);
        if (r.ntopics != 2) {
            CHECK(0);
            kfetch_req_free(&r);
            return;
        }
        CHECK(r.topics[1].topic.len == 5 && memcmp(r.topics[1].topic.ptr, "gamma", 5) == 0);
        CHECK_EQ(r.session_id, ver >= 7 ? 12 : 0);
        CHECK_EQ(r.nforgotten, ver >= 7 ? 1 : 0); /* forgotten topics kept as they came */
        CHECK_EQ(r.rack_id.len, ver >= 11 ? 6 : -1);
        CHECK_EQ(r.tags.len, ver >= 12 ? 7 : -1);
        kfetch_req_free(&r);
    }
}

/* The merged Fetch response (w) keeps the broker's topics as parsed from
 * broker: records, aborted transactions, session, tags. */
static void check_fetch_merge(int16_t ver, const kwriter_t *w, const kwriter_t *broker)
{
    kfetch_resp_t m, b;
    CHECK_EQ(kfetch_resp_parse(ver, w->buf + 4, w->len - 4, &m, NULL), 0);
    CHECK_EQ(kfetch_resp_parse(ver, broker->buf, broker->len, &b, NULL), 0);
    if (m.ntopics == 3 && b.ntopics == 2) {
        CHECK_EQ(m.session_id, ver >= 7 ? 77 : 0);
        CHECK_EQ(m.throttle_time_ms, 7);
        for (int i = 0; i < 2; i++) {
            const kfetch_partition_t *x = &m.topics[i].partitions[0];
            const kfetch_partition_t *y = &b.topics[i].partitions[0];
            CHECK(x->records.len == y->records.len && x->records.len > 0 &&
                  memcmp(x->records.ptr, y->records.ptr, (size_t)x->records.len) == 0);
            CHECK_EQ(x->naborted, y->naborted);
            CHECK_EQ(x->high_watermark, 10);
            CHECK_EQ(x->tags.len, y->tags.len);
        }
        const kfetch_partition_t *d = &m.topics[2].partitions[0];
        CHECK_EQ(d->index, 3);
        CHECK_EQ(d->error_code, AUTHZ);
        CHECK_EQ(d->high_watermark, -1);
        CHECK_EQ(d->last_stable_offset, -1);
        CHECK_EQ(d->log_start_offset, -1);
        CHECK_EQ(d->naborted, 0);
        CHECK_EQ(d->preferred_read_replica, -1);
        CHECK(d->records.len == 0 && d->records.ptr != NULL); /* empty, not null */
    } else {
        CHECK(0);
    }
    kfetch_resp_free(&m);
    kfetch_resp_free(&b);
}

/* The whole matrix for one (api, version) on hand-built frames. */
static void test_version(int16_t api, int16_t ver)
{
    static const int all[] = {0, 1, 2}, kept[] = {0, 2}, beta[] = {1};
    static const int ok2[] = {0, 0}, merged_err[] = {0, 0, 1}, err3[] = {1, 1, 1};
    static const int merged_idx[] = {0, 2, 1};
    kwriter_t req, exp, w;
    kw_init(&req, 256);
    kw_init(&exp, 256);
    kw_init(&w, 256);
    build_req(&req, api, ver, T3, all, 3);
    kreq_hdr_t h;
    const char *err = NULL;
    size_t err_off = 0;
    if (header_of(&req, &h) != 0)
        goto out;
    CHECK_EQ(kproto_validate_request(&h, req.buf, req.len, &err_off, &err), 0);
    CHECK_EQ(parse_req_topics(api, ver, req.buf + h.body_off, req.len - h.body_off) != -1, 1);
    char name[64];
    snprintf(name, sizeof(name), "req-%s-v%d", kproto_api_name(api), ver);
    write_seed(name, 0, req.buf, req.len);

    check_allowed(&h, req.buf, req.len, 3);

    /* deny-all: the answer equals the one built here */
    ksplit_t *s = check_denied(&h, req.buf, req.len, 3);
    CHECK_EQ(ksplit_answer(s, 0x1234, AUTHZ, &w), 0);
    build_resp(&exp, api, ver, 1, T3, all, err3, 3);
    CHECK(same_frame(&w, &exp));
    check_answer_parses(s, api, ver, 0x1234, 3);
    ksplit_free(s);

    /* deny beta: exactly the request without beta */
    deny_ctx_t d = {"beta", 0};
    kw_reset(&w);
    s = NULL;
    CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_PARTIAL);
    CHECK_EQ(d.calls, 3);
    CHECK_EQ(ksplit_topic_count(s), 1);
    kw_reset(&exp);
    build_req(&exp, api, ver, T3, kept, 2);
    CHECK(same_frame(&w, &exp));
    CHECK(w.len >= 4 + h.body_off && memcmp(w.buf + 4, req.buf, h.body_off) == 0);
    kreq_hdr_t h2;
    if (w.len > 4 && kproto_parse_request_header(w.buf + 4, w.len - 4, &h2, &err) == 0) {
        CHECK_EQ(h2.body_off, h.body_off);
        CHECK_EQ(kproto_validate_request(&h2, w.buf + 4, w.len - 4, &err_off, &err), 0);
        int n = parse_req_topics(api, ver, w.buf + 4 + h.body_off, w.len - 4 - h.body_off);
        CHECK(n == 2 || n == -2);
    } else {
        CHECK(0);
    }

    check_kept_bytes(api, ver, &w, h.body_off);

    /* the broker answers alpha and gamma; the merge adds beta */
    kwriter_t broker;
    kw_init(&broker, 256);
    build_resp(&broker, api, ver, 0, T3, kept, ok2, 2);
    snprintf(name, sizeof(name), "merge-%s-v%d", kproto_api_name(api), ver);
    write_seed(name, merge_selector(api, ver), broker.buf, broker.len);
    kw_reset(&w);
    CHECK_EQ(ksplit_merge(s, broker.buf, broker.len, AUTHZ, &w), 0);
    kw_reset(&exp);
    build_resp(&exp, api, ver, 0, T3, merged_idx, merged_err, 3);
    CHECK(same_frame(&w, &exp));
    if (api == KAPI_Fetch)
        check_fetch_merge(ver, &w, &broker);
    seen_t seen;
    if (api != KAPI_ListOffsets && parse_resp(api, ver, w.buf + 4, w.len - 4, &seen) == 0) {
        CHECK_EQ(seen.ntopics, 3);
        CHECK_STR(seen.names[2], "beta");
        CHECK_EQ(seen.parts[2][0], 3);
        CHECK_EQ(seen.errs[2][0], AUTHZ);
        CHECK_EQ(seen.errs[0][0], 0);
        CHECK_STR(seen.names[1], "gamma");
    } else {
        CHECK(api == KAPI_ListOffsets);
    }
    /* only the answer for beta, as a whole response */
    kw_reset(&w);
    kw_reset(&exp);
    CHECK_EQ(ksplit_answer(s, 0x1234, AUTHZ, &w), 0);
    build_resp(&exp, api, ver, 1, T3, beta, err3, 1);
    CHECK(same_frame(&w, &exp));
    check_merge_truncations(s, broker.buf, broker.len);
    kw_free(&broker);
    ksplit_free(s);

    check_request_truncations(req.buf, req.len, &h);
out:
    kw_free(&req);
    kw_free(&exp);
    kw_free(&w);
}

/* beta twice: both occurrences removed, allow asked three times. */
static void test_duplicates(int16_t api, int16_t ver)
{
    static const int all[] = {0, 1, 2}, alpha[] = {1}, dup_err[] = {1, 1};
    static const int merged_idx[] = {1, 0, 2}, merged_err[] = {0, 1, 1}, ok1[] = {0};
    kwriter_t req, exp, w, broker;
    kw_init(&req, 256);
    kw_init(&exp, 256);
    kw_init(&w, 256);
    kw_init(&broker, 256);
    build_req(&req, api, ver, TDUP, all, 3);
    kreq_hdr_t h;
    if (header_of(&req, &h) == 0) {
        deny_ctx_t d = {"beta", 0};
        ksplit_t *s = NULL;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_PARTIAL);
        CHECK_EQ(d.calls, 3);
        CHECK_EQ(ksplit_topic_count(s), 2);
        build_req(&exp, api, ver, TDUP, alpha, 1);
        CHECK(same_frame(&w, &exp));
        build_resp(&broker, api, ver, 0, TDUP, alpha, ok1, 1);
        kw_reset(&w);
        kw_reset(&exp);
        CHECK_EQ(ksplit_merge(s, broker.buf, broker.len, AUTHZ, &w), 0);
        build_resp(&exp, api, ver, 0, TDUP, merged_idx, merged_err, 3);
        CHECK(same_frame(&w, &exp));
        kw_reset(&w);
        kw_reset(&exp);
        CHECK_EQ(ksplit_answer(s, 0x1234, AUTHZ, &w), 0);
        static const int dups[] = {0, 2};
        build_resp(&exp, api, ver, 1, TDUP, dups, dup_err, 2);
        CHECK(same_frame(&w, &exp));
        ksplit_free(s);
    }
    kw_free(&req);
    kw_free(&exp);
    kw_free(&w);
    kw_free(&broker);
}

/* No topics at all: ALLOWED without a call. */
static void test_no_topics(int16_t api, int16_t ver)
{
    kwriter_t req;
    kw_init(&req, 64);
    build_req(&req, api, ver, T3, NULL, 0);
    kreq_hdr_t h;
    if (header_of(&req, &h) == 0)
        check_allowed(&h, req.buf, req.len, 0);
    kw_free(&req);
}

/* Versions outside the ranges, other APIs, a null topic array, bad args. */
static void test_rejects(void)
{
    static const int all[] = {0, 1, 2};
    static const struct {
        int16_t api, ver;
    } bad[] = {{KAPI_Produce, 2}, {KAPI_Fetch, 3}, {KAPI_Fetch, 13}, {KAPI_Metadata, 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kwriter_t req, w;
        kw_init(&req, 64);
        kw_init(&w, 64);
        build_header(&req, bad[i].api, bad[i].ver, 1);
        kw_i32(&req, 0);
        kreq_hdr_t h = {bad[i].api, bad[i].ver, 1, {"tester", 6}, 12};
        deny_ctx_t d = {"*", 0};
        ksplit_t *s = NULL;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
        CHECK(s == NULL && w.len == 0 && d.calls == 0);
        kw_free(&req);
        kw_free(&w);
    }
    /* Produce v7 with the topic array null (-1) */
    kwriter_t req, w;
    kw_init(&req, 64);
    kw_init(&w, 64);
    build_header(&req, KAPI_Produce, 7, 1);
    kw_str(&req, 0, NULL, -1);
    kw_i16(&req, 1);
    kw_i32(&req, 100);
    kw_i32(&req, -1);
    kreq_hdr_t h;
    if (header_of(&req, &h) == 0) {
        deny_ctx_t d = {NULL, 0};
        ksplit_t *s = NULL;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, NULL, &d, &w, &s), KSPLIT_ERROR);
        CHECK_EQ(ksplit_request(NULL, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, NULL), KSPLIT_ERROR);
    }
    /* a huge topic count */
    kw_reset(&req);
    build_header(&req, KAPI_Produce, 7, 1);
    kw_str(&req, 0, NULL, -1);
    kw_i16(&req, 1);
    kw_i32(&req, 100);
    kw_i32(&req, INT32_MAX);
    kw_i32(&req, 0);
    if (header_of(&req, &h) == 0) {
        deny_ctx_t d = {NULL, 0};
        ksplit_t *s = NULL;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
    }
    /* merge of a Fetch split with a null topic array in the response */
    kw_reset(&req);
    build_req(&req, KAPI_Fetch, 11, T3, all, 3);
    if (header_of(&req, &h) == 0) {
        deny_ctx_t d = {"beta", 0};
        ksplit_t *s = NULL;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_PARTIAL);
        uint8_t resp[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
        kw_reset(&w);
        CHECK_EQ(ksplit_merge(s, resp, sizeof(resp), AUTHZ, &w), -1);
        resp[14] = resp[15] = resp[16] = resp[17] = 0;
        CHECK_EQ(ksplit_merge(s, resp, sizeof(resp), AUTHZ, &w), 0);
        CHECK_EQ(ksplit_merge(NULL, resp, sizeof(resp), AUTHZ, &w), -1);
        CHECK_EQ(ksplit_answer(NULL, 1, AUTHZ, &w), -1);
        ksplit_free(s);
    }
    CHECK_EQ(ksplit_api_key(NULL), -1);
    CHECK_EQ(ksplit_topic_count(NULL), 0);
    ksplit_free(NULL);
    kw_free(&req);
    kw_free(&w);
}

/* ---- golden frames ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

static const char *const CLIENTS[] = {"librdkafka", "confluentkafka", "kafkapython", "kafkajs"};

/* Every golden request of the four APIs: allow-all, deny-all, truncations. */
static void test_golden_requests(void)
{
    static const char *const apis[] = {"Produce", "Fetch", "ListOffsets", "OffsetCommit"};
    int seen = 0;
    for (size_t c = 0; c < 4; c++)
        for (size_t a = 0; a < 4; a++)
            for (int v = 0; v <= 12; v++) {
                char path[256];
                snprintf(path, sizeof(path), "%s/%s-%s-v%d-req.bin", GOLDEN_DIR, CLIENTS[c],
                         apis[a], v);
                size_t len;
                uint8_t *frame = read_file(path, &len);
                if (!frame)
                    continue;
                seen++;
                kreq_hdr_t h;
                const char *err;
                CHECK_EQ(kproto_parse_request_header(frame, len, &h, &err), 0);
                int n = parse_req_topics(h.api_key, h.api_version, frame + h.body_off,
                                         len - h.body_off);
                CHECK(n >= 1 || n == -2);
                if (n == -2) /* ListOffsets: count the topics through a deny-all split */
                    n = 1;
                check_allowed(&h, frame, len, n);
                ksplit_t *s = check_denied(&h, frame, len, n);
                check_answer_parses(s, h.api_key, h.api_version, h.correlation_id, n);
                ksplit_free(s);
                check_request_truncations(frame, len, &h);
                char name[128];
                snprintf(name, sizeof(name), "golden-%s-%s-v%d", CLIENTS[c], apis[a], v);
                write_seed(name, 0, frame, len);
                free(frame);
            }
    CHECK(seen >= 16); /* 4 Produce, 4 Fetch, 4 ListOffsets, 4 OffsetCommit */
}

/* Where the topic array count sits in a golden response and how many
 * bytes follow the array (non-flexible versions only). */
static void golden_layout(int16_t api, int16_t ver, size_t *count_off, size_t *tail)
{
    *tail = 0;
    *count_off = 4;
    if (api == KAPI_Produce)
        *tail = 4;
    else if (api == KAPI_Fetch)
        *count_off = ver >= 7 ? 14 : 8;
    else if ((api == KAPI_ListOffsets && ver >= 2) || (api == KAPI_OffsetCommit && ver >= 3))
        *count_off = 8;
}

/* Every golden response of the four APIs merged with beta: the golden
 * bytes with the count one higher and beta's answer before the tail. */
static void test_golden_merge(void)
{
    static const char *const apis[] = {"Produce", "Fetch", "ListOffsets", "OffsetCommit"};
    static const int all[] = {0, 1, 2}, beta[] = {1}, err1[] = {1};
    int seen = 0;
    for (size_t c = 0; c < 4; c++)
        for (size_t a = 0; a < 4; a++)
            for (int v = 0; v <= 12; v++) {
                char path[256];
                snprintf(path, sizeof(path), "%s/%s-%s-v%d-resp.bin", GOLDEN_DIR, CLIENTS[c],
                         apis[a], v);
                size_t len;
                uint8_t *frame = read_file(path, &len);
                if (!frame)
                    continue;
                seen++;
                int16_t api = SPLIT[a].api;
                kwriter_t req, w, entry, exp;
                kw_init(&req, 256);
                kw_init(&w, 256);
                kw_init(&entry, 64);
                kw_init(&exp, 256);
                build_req(&req, api, (int16_t)v, T3, all, 3);
                kreq_hdr_t h;
                deny_ctx_t d = {"beta", 0};
                ksplit_t *s = NULL;
                if (header_of(&req, &h) == 0 &&
                    ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s) == KSPLIT_PARTIAL) {
                    kw_reset(&w);
                    CHECK_EQ(ksplit_merge(s, frame, len, AUTHZ, &w), 0);
                    /* beta's answer entry: a one-topic answer minus its frame */
                    build_resp(&entry, api, (int16_t)v, 1, T3, beta, err1, 1);
                    size_t count_off, tail;
                    golden_layout(api, (int16_t)v, &count_off, &tail);
                    size_t entry_len = entry.len - count_off - 4 - tail;
                    kw_raw(&exp, frame, count_off);
                    kw_i32(&exp, kbe32(frame + count_off) + 1);
                    kw_raw(&exp, frame + count_off + 4, len - count_off - 4 - tail);
                    kw_raw(&exp, entry.buf + count_off + 4, entry_len);
                    kw_raw(&exp, frame + len - tail, tail);
                    CHECK(same_frame(&w, &exp));
                    seen_t sn;
                    if (api != KAPI_ListOffsets) {
                        CHECK_EQ(parse_resp(api, (int16_t)v, w.buf + 4, w.len - 4, &sn), 0);
                        CHECK_STR(sn.names[sn.ntopics - 1], "beta");
                        CHECK_EQ(sn.errs[sn.ntopics - 1][0], AUTHZ);
                    }
                    check_merge_truncations(s, frame, len);
                    char name[128];
                    snprintf(name, sizeof(name), "golden-merge-%s-%s-v%d", CLIENTS[c], apis[a], v);
                    write_seed(name, merge_selector(api, (int16_t)v), frame, len);
                } else {
                    CHECK(0);
                }
                ksplit_free(s);
                kw_free(&req);
                kw_free(&w);
                kw_free(&entry);
                kw_free(&exp);
                free(frame);
            }
    CHECK(seen >= 16);
}

/* ---- admin refusals ---- */

/* Request body and the expected refusal for one admin (api, ver): two
 * entries ("t-one", "t-two"; for DeleteGroups "g-one", "g-two"). */
static void build_admin(kwriter_t *req, kwriter_t *exp, int16_t api, int16_t ver)
{
    int flex = kproto_is_flexible(api, ver);
    static const char *const names[] = {"t-one", "t-two"};
    static const char *const groups[] = {"g-one", "g-two"};
    static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    build_header(req, api, ver, 0x777);
    kw_i32(exp, 0x777);
    tags_empty(exp, flex);
    int throttle = api == KAPI_CreateTopics ? ver >= 2 : api == KAPI_DeleteTopics ? ver >= 1 : 1;
    if (throttle)
        kw_i32(exp, 0);
    kw_array(req, flex, 2);
    kw_array(exp, flex, 2);
    for (int i = 0; i < 2; i++) {
        const char *n = api == KAPI_DeleteGroups ? groups[i] : names[i];
        switch (api) {
        case KAPI_CreateTopics:
            kw_str(req, flex, n, 5);
            kw_i32(req, 3);
            kw_i16(req, 1);
            kw_array(req, flex, 1); /* one assignment */
            kw_i32(req, 0);
            kw_array(req, flex, 2);
            kw_i32(req, 1);
            kw_i32(req, 2);
            tags_extra(req, flex, 1);
            kw_array(req, flex, 1); /* one config */
            kw_str(req, flex, "cleanup.policy", 14);
            kw_str(req, flex, NULL, -1);
            tags_extra(req, flex, 2);
            tags_extra(req, flex, 3);
            kw_str(exp, flex, n, 5);
            if (ver >= 7)
                kw_raw(exp, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
            kw_i16(exp, AUTHZ);
            if (ver >= 1)
                kw_str(exp, flex, NULL, -1);
            if (ver >= 5) {
                kw_i32(exp, -1);
                kw_i16(exp, -1);
                kw_array(exp, flex, -1);
            }
            break;
        case KAPI_DeleteTopics:
            if (ver >= 6) {
                if (i == 0)
                    kw_str(req, flex, n, 5);
                else
                    kw_str(req, flex, NULL, -1); /* by id only */
                kw_raw(req, id, 16);
                tags_extra(req, flex, 1);
                if (i == 0)
                    kw_str(exp, flex, n, 5);
                else
                    kw_str(exp, flex, NULL, -1);
                kw_raw(exp, id, 16);
            } else {
                kw_str(req, flex, n, 5);
                kw_str(exp, flex, n, 5);
            }
            kw_i16(exp, AUTHZ);
            if (ver >= 5)
                kw_str(exp, flex, NULL, -1);
            break;
        case KAPI_CreatePartitions:
            kw_str(req, flex, n, 5);
            kw_i32(req, 6);
            if (i == 0) {
                kw_array(req, flex, 1);
                kw_array(req, flex, 1);
                kw_i32(req, 2);
                tags_extra(req, flex, 1);
            } else {
                kw_array(req, flex, -1);
            }
            tags_extra(req, flex, 2);
            kw_str(exp, flex, n, 5);
            kw_i16(exp, AUTHZ);
            kw_str(exp, flex, NULL, -1);
            break;
        case KAPI_DeleteRecords:
            kw_str(req, flex, n, 5);
            kw_array(req, flex, 2);
            kw_str(exp, flex, n, 5);
            kw_array(exp, flex, 2);
            for (int p = 0; p < 2; p++) {
                kw_i32(req, 4 + p + i);
                kw_i64(req, 100);
                tags_extra(req, flex, p);
                kw_i32(exp, 4 + p + i);
                kw_i64(exp, -1);
                kw_i16(exp, AUTHZ);
                tags_empty(exp, flex);
            }
            tags_extra(req, flex, 3);
            break;
        case KAPI_DeleteGroups:
            kw_str(req, flex, n, 5);
            kw_str(exp, flex, n, 5);
            kw_i16(exp, 30);
            break;
        }
        tags_empty(exp, flex); /* every response entry is a struct */
    }
    /* body tail */
    if (api == KAPI_CreateTopics) {
        kw_i32(req, 30000);
        if (ver >= 1)
            kw_i8(req, 0);
    } else if (api == KAPI_CreatePartitions) {
        kw_i32(req, 30000);
        kw_i8(req, 1);
    } else if (api != KAPI_DeleteGroups) {
        kw_i32(req, 30000);
    }
    tags_extra(req, flex, 9);
    tags_empty(exp, flex);
}

static void test_refuse_all(void)
{
    static const struct {
        int16_t api, lo, hi;
    } admin[] = {{KAPI_CreateTopics, 0, 7},
                 {KAPI_DeleteTopics, 0, 6},
                 {KAPI_CreatePartitions, 0, 3},
                 {KAPI_DeleteRecords, 0, 2},
                 {KAPI_DeleteGroups, 0, 2}};
    for (size_t a = 0; a < sizeof(admin) / sizeof(admin[0]); a++)
        for (int16_t v = admin[a].lo; v <= admin[a].hi; v++) {
            kwriter_t req, exp, w;
            kw_init(&req, 256);
            kw_init(&exp, 256);
            kw_init(&w, 256);
            build_admin(&req, &exp, admin[a].api, v);
            kreq_hdr_t h;
            const char *err = NULL;
            size_t err_off;
            if (header_of(&req, &h) == 0) {
                CHECK_EQ(kproto_validate_request(&h, req.buf, req.len, &err_off, &err), 0);
                CHECK_EQ(ksplit_refuse_all(&h, req.buf, req.len, &w), 0);
                CHECK(same_frame(&w, &exp));
                if (!same_frame(&w, &exp))
                    fprintf(stderr, "  refuse %s v%d\n", kproto_api_name(admin[a].api), v);
                int all_fail = 1;
                for (size_t n = 0; n < req.len; n++) {
                    uint8_t *copy = malloc(n ? n : 1);
                    memcpy(copy, req.buf, n);
                    kwriter_t t;
                    kw_init(&t, 64);
                    all_fail &= ksplit_refuse_all(&h, copy, n, &t) == -1 && t.len == 0;
                    kw_free(&t);
                    free(copy);
                }
                CHECK(all_fail);
                char name[64];
                snprintf(name, sizeof(name), "req-%s-v%d", kproto_api_name(admin[a].api), v);
                write_seed(name, 0, req.buf, req.len);
            }
            kw_free(&req);
            kw_free(&exp);
            kw_free(&w);
        }
    /* not an admin API */
    kwriter_t req, w;
    kw_init(&req, 64);
    kw_init(&w, 64);
    build_req(&req, KAPI_Produce, 7, T3, NULL, 0);
    kreq_hdr_t h;
    if (header_of(&req, &h) == 0)
        CHECK_EQ(ksplit_refuse_all(&h, req.buf, req.len, &w), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&req);
    kw_free(&w);
}

/* ---- FetchRequest codec (kfetch_req_*) ---- */

/* Parses a body and writes it back: byte-identical. */
static void check_fetch_req_roundtrip(int16_t ver, const uint8_t *body, size_t len)
{
    kfetch_req_t r;
    size_t off = 0;
    int e = kfetch_req_parse(ver, body, len, &r, &off);
    CHECK_EQ(e, 0);
    if (e) {
        fprintf(stderr, "  fetch req v%d error %d at %zu\n", ver, e, off);
        return;
    }
    kwriter_t w;
    kw_init(&w, 64);
    CHECK_EQ(kfetch_req_write_body(&w, ver, &r), 0);
    CHECK(w.len == len && memcmp(w.buf, body, len) == 0);
    kw_free(&w);
    kfetch_req_free(&r);
}

static void test_fetch_req_codec(void)
{
    static const int all[] = {0, 1, 2};
    for (int16_t v = 4; v <= 12; v++) {
        kwriter_t req;
        kw_init(&req, 256);
        build_req(&req, KAPI_Fetch, v, T3, all, 3);
        kreq_hdr_t h;
        if (header_of(&req, &h) != 0) {
            kw_free(&req);
            continue;
        }
        const uint8_t *body = req.buf + h.body_off;
        size_t len = req.len - h.body_off;
        check_fetch_req_roundtrip(v, body, len);
        kfetch_req_t r;
        if (kfetch_req_parse(v, body, len, &r, NULL) == 0) {
            CHECK_EQ(r.replica_id, -1);
            CHECK_EQ(r.max_wait_ms, 500);
            CHECK_EQ(r.min_bytes, 1);
            CHECK_EQ(r.max_bytes, 52428800);
            CHECK_EQ(r.isolation_level, 1);
            CHECK_EQ(r.session_id, v >= 7 ? 12 : 0);
            CHECK_EQ(r.session_epoch, v >= 7 ? 3 : 0);
            CHECK_EQ(r.ntopics, 3);
            CHECK(r.topics[1].topic.len == 4 && memcmp(r.topics[1].topic.ptr, "beta", 4) == 0);
            CHECK_EQ(r.topics[0].npartitions, 2);
            const kfetch_req_partition_t *p = &r.topics[0].partitions[1];
            CHECK_EQ(p->partition, 1);
            CHECK_EQ(p->current_leader_epoch, v >= 9 ? 5 : -1);
            CHECK_EQ(p->fetch_offset, 1001);
            CHECK_EQ(p->last_fetched_epoch, v >= 12 ? 4 : -1);
            CHECK_EQ(p->log_start_offset, v >= 5 ? 0 : -1);
            CHECK_EQ(p->partition_max_bytes, 1048576);
            CHECK_EQ(r.nforgotten, v >= 7 ? 1 : 0);
            if (v >= 7 && r.nforgotten == 1) {
                CHECK_EQ(r.forgotten[0].npartitions, 2);
                CHECK_EQ(r.forgotten[0].partitions[1], 2);
            }
            CHECK_EQ(r.rack_id.len, v >= 11 ? 6 : -1);
            CHECK_EQ(r.tags.len, v >= 12 ? 7 : -1); /* ClusterId tag */
            CHECK_EQ(p->tags.len, v >= 12 ? 4 : -1);
            /* a substituted struct writes what it holds */
            r.ntopics = 1;
            kwriter_t w;
            kw_init(&w, 64);
            CHECK_EQ(kfetch_req_write_body(&w, v, &r), 0);
            kfetch_req_t again;
            CHECK_EQ(kfetch_req_parse(v, w.buf, w.len, &again, NULL), 0);
            CHECK_EQ(again.ntopics, 1);
            kfetch_req_free(&again);
            r.topics[0].topic.len = -1; /* a null name is refused */
            size_t before = w.len;
            CHECK_EQ(kfetch_req_write_body(&w, v, &r), -1);
            CHECK_EQ(w.len, before);
            r.topics[0].topic.len = 5;
            r.ntopics = 3;
            kw_free(&w);
            kfetch_req_free(&r);
            kfetch_req_free(&r); /* zeroed: safe twice */
        } else {
            CHECK(0);
        }
        /* every truncation fails, a trailing byte too */
        int all_fail = 1;
        for (size_t n = 0; n < len; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, body, n);
            kfetch_req_t t;
            if (kfetch_req_parse(v, copy, n, &t, NULL) == 0) {
                all_fail = 0;
                kfetch_req_free(&t);
            }
            free(copy);
        }
        CHECK(all_fail);
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, body, len);
        longer[len] = 0;
        CHECK_EQ(kfetch_req_parse(v, longer, len + 1, &r, NULL), KR_EINVALID);
        free(longer);
        kw_free(&req);
    }
    /* golden Fetch requests */
    int seen = 0;
    for (size_t c = 0; c < 4; c++)
        for (int v = 4; v <= 12; v++) {
            char path[256];
            snprintf(path, sizeof(path), "%s/%s-Fetch-v%d-req.bin", GOLDEN_DIR, CLIENTS[c], v);
            size_t len;
            uint8_t *frame = read_file(path, &len);
            if (!frame)
                continue;
            seen++;
            kreq_hdr_t h;
            const char *err;
            if (kproto_parse_request_header(frame, len, &h, &err) == 0)
                check_fetch_req_roundtrip((int16_t)v, frame + h.body_off, len - h.body_off);
            else
                CHECK(0);
            free(frame);
        }
    CHECK_EQ(seen, 4);
    /* versions outside 4..12 */
    kfetch_req_t r;
    uint8_t body[64] = {0};
    CHECK_EQ(kfetch_req_parse(3, body, sizeof(body), &r, NULL), KR_EINVALID);
    CHECK_EQ(kfetch_req_parse(13, body, sizeof(body), &r, NULL), KR_EINVALID);
    kwriter_t w;
    kw_init(&w, 16);
    memset(&r, 0, sizeof(r));
    CHECK_EQ(kfetch_req_write_body(&w, 13, &r), -1);
    CHECK_EQ(w.len, 0);
    r.rack_id.len = -1; /* RackId is not nullable */
    CHECK_EQ(kfetch_req_write_body(&w, 11, &r), -1);
    CHECK_EQ(kfetch_req_write_body(&w, 10, &r), 0); /* ... and absent below v11 */
    r.ntopics = -1;
    CHECK_EQ(kfetch_req_write_body(&w, 10, &r), -1);
    kw_free(&w);
    kfetch_req_free(NULL);
}

/* ---- Metadata ---- */

/* A Metadata topic as the tests build it: a name (NULL: null name, only
 * where the version allows it), partitions, and whether it is the answer
 * eosproxy writes for a denied topic. */
typedef struct mtopic {
    const char *name;
    int np;
    int denied;
} mtopic_t;

static const mtopic_t M_ALPHA = {"alpha", 2, 0}, M_BETA = {"beta", 1, 0}, M_GAMMA = {"gamma", 3, 0},
                      M_DELTA = {"delta", 1, 0};

/* MetadataRequest of ver naming names[0..n) (NULL name: a v10+ topic by id
 * only), or a null array when n < 0. Non-empty tags when flexible. A
 * topic's id and tags follow from its name, so a request without some
 * topics is this request built from the others. */
static void md_build_req(kwriter_t *w, int16_t ver, const char *const *names, int n)
{
    int flex = ver >= 9;
    build_header(w, KAPI_Metadata, ver, 4242);
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++) {
        if (ver >= 10) {
            uint8_t id[16];
            memset(id, names[i] ? names[i][0] : 0xee, sizeof(id));
            kw_raw(w, id, sizeof(id));
        }
        kw_str(w, flex, names[i], names[i] ? (int32_t)strlen(names[i]) : -1);
        tags_extra(w, flex, names[i] ? names[i][0] + 1 : 0x6f);
    }
    if (ver >= 4)
        kw_i8(w, 1); /* AllowAutoTopicCreation */
    if (ver >= 8 && ver <= 10)
        kw_i8(w, 1); /* IncludeClusterAuthorizedOperations */
    if (ver >= 8)
        kw_i8(w, 1); /* IncludeTopicAuthorizedOperations */
    tags_extra(w, flex, 30);
}

/* One response topic: the broker's (with partitions and tags) or the
 * answer to a denied one (error 29, nothing else, empty tags). */
static void md_topic(kwriter_t *w, int16_t ver, const mtopic_t *t)
{
    int flex = ver >= 9;
    int k = t->name ? t->name[0] & 15 : 15; /* id and tags follow from the name */
    kw_i16(w, t->denied ? AUTHZ : 0);
    kw_str(w, flex, t->name, t->name ? (int32_t)strlen(t->name) : -1);
    if (ver >= 10) {
        uint8_t id[16];
        memset(id, t->denied ? 0 : 0x10 + k, sizeof(id));
        kw_raw(w, id, sizeof(id));
    }
    if (ver >= 1)
        kw_i8(w, 0); /* IsInternal */
    int np = t->denied ? 0 : t->np;
    kw_array(w, flex, np);
    for (int p = 0; p < np; p++) {
        kw_i16(w, 0);
        kw_i32(w, p);
        kw_i32(w, 1 + p % 2); /* LeaderId */
        if (ver >= 7)
            kw_i32(w, 5); /* LeaderEpoch */
        kw_array(w, flex, 2);
        kw_i32(w, 1);
        kw_i32(w, 2);
        kw_array(w, flex, 1);
        kw_i32(w, 1);
        if (ver >= 5) {
            kw_array(w, flex, 1);
            kw_i32(w, 2);
        }
        tags_extra(w, flex, 40 + p);
    }
    if (ver >= 8)
        kw_i32(w, t->denied ? INT32_MIN : 0x5f8);
    if (t->denied)
        tags_empty(w, flex);
    else
        tags_extra(w, flex, 50 + k);
}

/* MetadataResponse of ver (no size prefix): two brokers, cluster data,
 * topics t[0..n), non-empty tags everywhere when flexible. */
static void md_build_resp(kwriter_t *w, int16_t ver, const mtopic_t *const *t, int n)
{
    int flex = ver >= 9;
    kw_i32(w, 4242);
    tags_extra(w, flex, 1);
    if (ver >= 3)
        kw_i32(w, 17); /* ThrottleTimeMs */
    kw_array(w, flex, 2);
    for (int b = 0; b < 2; b++) {
        kw_i32(w, b + 1);
        kw_str(w, flex, b ? "broker-two" : "b1", b ? 10 : 2);
        kw_i32(w, 9092 + b);
        if (ver >= 1)
            kw_str(w, flex, b ? NULL : "rack-a", b ? -1 : 6);
        tags_extra(w, flex, 2 + b);
    }
    if (ver >= 2)
        kw_str(w, flex, "cluster-x", 9);
    if (ver >= 1)
        kw_i32(w, 2); /* ControllerId */
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++)
        md_topic(w, ver, t[i]);
    if (ver >= 8 && ver <= 10)
        kw_i32(w, 0x7f); /* ClusterAuthorizedOperations */
    tags_extra(w, flex, 60);
}

/* What an independent reading of a Metadata response sees. */
typedef struct md_seen {
    int32_t corr;
    int nbrokers;
    int ntopics;
    char names[8][16]; /* "(null)" for a null name */
    int16_t errs[8];
    int np[8];
    int32_t authops[8];
    int zero_id[8];
} md_seen_t;

/* Reads a whole Metadata response field by field (Kafka's
 * MetadataResponse.json); 0, or -1 if it does not parse to its end. */
static int md_parse(int16_t ver, const uint8_t *frame, size_t len, md_seen_t *s)
{
    memset(s, 0, sizeof(*s));
    int flex = ver >= 9;
    kreader_t r;
    kr_init(&r, frame, len);
    s->corr = kr_i32(&r);
    kr_tags_if(&r, flex);
    if (ver >= 3)
        (void)kr_i32(&r);
    s->nbrokers = kr_array(&r, flex, 1);
    for (int b = 0; b < s->nbrokers && kr_ok(&r); b++) {
        (void)kr_i32(&r);
        (void)kr_str_nn(&r, flex);
        (void)kr_i32(&r);
        if (ver >= 1)
            (void)kr_str(&r, flex);
        kr_tags_if(&r, flex);
    }
    if (ver >= 2)
        (void)kr_str(&r, flex);
    if (ver >= 1)
        (void)kr_i32(&r);
    s->ntopics = kr_array(&r, flex, 1);
    for (int i = 0; i < s->ntopics && kr_ok(&r); i++) {
        int16_t err = kr_i16(&r);
        kstr_t name = kr_str(&r, flex);
        const uint8_t *id = ver >= 10 ? kr_skip(&r, 16) : NULL;
        if (ver >= 1)
            (void)kr_i8(&r);
        int32_t np = kr_array(&r, flex, 1);
        for (int p = 0; p < np && kr_ok(&r); p++) {
            (void)kr_i16(&r);
            (void)kr_i32(&r);
            (void)kr_i32(&r);
            if (ver >= 7)
                (void)kr_i32(&r);
            for (int a = 0; a < (ver >= 5 ? 3 : 2) && kr_ok(&r); a++) {
                int32_t m = kr_array(&r, flex, 4);
                (void)kr_skip(&r, (size_t)(m > 0 ? m : 0) * 4);
            }
            kr_tags_if(&r, flex);
        }
        int32_t ops = ver >= 8 ? kr_i32(&r) : 0;
        kr_tags_if(&r, flex);
        if (i < 8 && kr_ok(&r)) {
            if (name.len < 0)
                snprintf(s->names[i], sizeof(s->names[i]), "(null)");
            else
                snprintf(s->names[i], sizeof(s->names[i]), "%.*s", name.len, name.ptr);
            s->errs[i] = err;
            s->np[i] = np;
            s->authops[i] = ops;
            static const uint8_t zero[16];
            s->zero_id[i] = id && memcmp(id, zero, 16) == 0;
        }
    }
    if (ver >= 8 && ver <= 10)
        (void)kr_i32(&r);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    return kr_ok(&r) ? 0 : -1;
}

/* krewrite's Metadata reader accepts the frame w (size prefix included),
 * sees its nbrokers brokers and, mapping each to itself, gives the same
 * bytes back. */
static int same_addr(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                     int32_t *new_port)
{
    (*(int *)ctx)++;
    return 0;
}

static void check_krewrite_reads(int16_t ver, const kwriter_t *w, int nbrokers)
{
    kwriter_t out;
    kw_init(&out, 256);
    const char *err = NULL;
    int seen = 0;
    CHECK_EQ(
        krewrite_response(KAPI_Metadata, ver, w->buf + 4, w->len - 4, same_addr, &seen, &out, &err),
        0);
    CHECK_EQ(seen, nbrokers);
    CHECK(out.len == w->len && memcmp(out.buf, w->buf, w->len) == 0);
    kw_free(&out);
}

/* ksplit_request on a Metadata request built from names; returns rc and
 * leaves the written frame in w and the split in *s. */
static int md_split(int16_t ver, const char *const *names, int n, const char *deny, kwriter_t *w,
                    ksplit_t **s, int *calls)
{
    kwriter_t req;
    kw_init(&req, 128);
    md_build_req(&req, ver, names, n);
    kreq_hdr_t h;
    int rc = KSPLIT_ERROR;
    deny_ctx_t d = {deny, 0};
    if (header_of(&req, &h) == 0) {
        size_t err_off;
        const char *err;
        CHECK_EQ(kproto_validate_request(&h, req.buf, req.len, &err_off, &err), 0);
        rc = ksplit_request(&h, req.buf, req.len, allow_cb, &d, w, s);
    }
    *calls = d.calls;
    kw_free(&req);
    return rc;
}

/* A PARTIAL request in w equals the request built from names, validates
 * with kproto, and splits again (allow-all) as ALLOWED. */
static void check_md_forwarded(int16_t ver, const kwriter_t *w, const char *const *names, int n)
{
    kwriter_t exp;
    kw_init(&exp, 128);
    md_build_req(&exp, ver, names, n);
    CHECK(same_frame(w, &exp));
    kreq_hdr_t h;
    const char *err;
    size_t err_off;
    CHECK_EQ(kproto_parse_request_header(w->buf + 4, w->len - 4, &h, &err), 0);
    CHECK_EQ(kproto_validate_request(&h, w->buf + 4, w->len - 4, &err_off, &err), 0);
    deny_ctx_t d = {NULL, 0};
    kwriter_t w2;
    kw_init(&w2, 64);
    ksplit_t *s = NULL;
    CHECK_EQ(ksplit_request(&h, w->buf + 4, w->len - 4, allow_cb, &d, &w2, &s), KSPLIT_ALLOWED);
    CHECK(s == NULL && w2.len == 0);
    kw_free(&w2);
    kw_free(&exp);
}

/* ksplit_merge(s) of the broker response of topics b[0..nb) equals the
 * response of topics e[0..ne); both parse, krewrite reads the result;
 * every truncation of the broker response fails. */
static void check_md_merge(const ksplit_t *s, int16_t ver, const mtopic_t *const *b, int nb,
                           const mtopic_t *const *e, int ne)
{
    kwriter_t broker, w, exp;
    kw_init(&broker, 256);
    kw_init(&w, 256);
    kw_init(&exp, 256);
    md_build_resp(&broker, ver, b, nb);
    md_build_resp(&exp, ver, e, ne);
    CHECK_EQ(ksplit_merge(s, broker.buf, broker.len, AUTHZ, &w), 0);
    CHECK(same_frame(&w, &exp));
    md_seen_t sn;
    CHECK_EQ(md_parse(ver, w.buf + 4, w.len - 4, &sn), 0);
    CHECK_EQ(sn.ntopics, ne);
    CHECK_EQ(sn.nbrokers, 2);
    CHECK_EQ(sn.corr, 4242);
    for (int i = 0; i < ne && i < 8; i++) {
        CHECK_STR(sn.names[i], e[i]->name);
        CHECK_EQ(sn.errs[i], e[i]->denied ? AUTHZ : 0);
        if (e[i]->denied) {
            CHECK_EQ(sn.np[i], 0);
            CHECK_EQ(sn.authops[i], ver >= 8 ? INT32_MIN : 0);
            CHECK_EQ(sn.zero_id[i], ver >= 10);
        }
    }
    check_krewrite_reads(ver, &w, 2);
    check_merge_truncations(s, broker.buf, broker.len);
    char name[64];
    snprintf(name, sizeof(name), "metadata-merge-v%d-%d-%d", ver, nb, ne);
    write_seed(name, (uint8_t)(0xc0 | ver), broker.buf, broker.len);
    kw_free(&broker);
    kw_free(&w);
    kw_free(&exp);
}

static void test_md_split(int16_t ver)
{
    static const char *const abg[] = {"alpha", "beta", "gamma"}, *const ag[] = {"alpha", "gamma"};
    const mtopic_t beta_denied = {"beta", 0, 1}, alpha_d = {"alpha", 0, 1},
                   gamma_d = {"gamma", 0, 1};
    kwriter_t w;
    kw_init(&w, 128);
    ksplit_t *s = (ksplit_t *)&w;
    int calls;

    /* all allowed */
    CHECK_EQ(md_split(ver, abg, 3, NULL, &w, &s, &calls), KSPLIT_ALLOWED);
    CHECK(s == NULL && w.len == 0);
    CHECK_EQ(calls, 3);

    /* beta denied: the request without it, the merge adds it */
    CHECK_EQ(md_split(ver, abg, 3, "beta", &w, &s, &calls), KSPLIT_PARTIAL);
    CHECK_EQ(calls, 3);
    CHECK_EQ(ksplit_topic_count(s), 1);
    CHECK_EQ(ksplit_api_key(s), KAPI_Metadata);
    CHECK_EQ(ksplit_api_version(s), ver);
    check_md_forwarded(ver, &w, ag, 2);
    {
        const mtopic_t *b[] = {&M_ALPHA, &M_GAMMA}, *e[] = {&M_ALPHA, &M_GAMMA, &beta_denied};
        check_md_merge(s, ver, b, 2, e, 3);
    }
    /* the local answer: no brokers, beta with 29 */
    kwriter_t ans;
    kw_init(&ans, 64);
    CHECK_EQ(ksplit_answer(s, 99, AUTHZ, &ans), 0);
    md_seen_t sn;
    CHECK(ans.len >= 8 && kbe32(ans.buf) == (int32_t)(ans.len - 4));
    CHECK_EQ(md_parse(ver, ans.buf + 4, ans.len - 4, &sn), 0);
    CHECK_EQ(sn.corr, 99);
    CHECK_EQ(sn.nbrokers, 0);
    CHECK_EQ(sn.ntopics, 1);
    CHECK_STR(sn.names[0], "beta");
    CHECK_EQ(sn.errs[0], AUTHZ);
    kw_free(&ans);
    ksplit_free(s);
    kw_reset(&w);

    /* every topic denied: PARTIAL with an empty array, never DENIED */
    CHECK_EQ(md_split(ver, abg, 3, "*", &w, &s, &calls), KSPLIT_PARTIAL);
    CHECK_EQ(calls, 3);
    CHECK_EQ(ksplit_topic_count(s), 3);
    check_md_forwarded(ver, &w, NULL, 0);
    {
        const mtopic_t *e[] = {&alpha_d, &beta_denied, &gamma_d};
        if (ver == 0) {
            /* v0: the broker answers every topic; all are dropped */
            const mtopic_t *b[] = {&M_ALPHA, &M_DELTA, &M_GAMMA, &M_BETA};
            check_md_merge(s, ver, b, 4, e, 3);
            check_md_merge(s, ver, NULL, 0, e, 3);
        } else {
            /* v1+: the broker answers no topic; one it sends anyway stays */
            const mtopic_t *b[] = {&M_DELTA}, *e2[] = {&M_DELTA, &alpha_d, &beta_denied, &gamma_d};
            check_md_merge(s, ver, NULL, 0, e, 3);
            check_md_merge(s, ver, b, 1, e2, 4);
        }
    }
    ksplit_free(s);
    kw_reset(&w);

    /* a PARTIAL split that keeps a topic is never drop-all, v0 included */
    CHECK_EQ(md_split(ver, abg, 3, "alpha", &w, &s, &calls), KSPLIT_PARTIAL);
    {
        const mtopic_t *b[] = {&M_BETA, &M_GAMMA}, *e[] = {&M_BETA, &M_GAMMA, &alpha_d};
        check_md_merge(s, ver, b, 2, e, 3);
    }
    ksplit_free(s);
    kw_reset(&w);

    /* empty array (v0: all topics; v1+: none), null array (v1+: all) */
    CHECK_EQ(md_split(ver, NULL, 0, "*", &w, &s, &calls), KSPLIT_ALLOWED);
    CHECK(s == NULL && w.len == 0 && calls == 0);
    if (ver >= 1) {
        CHECK_EQ(md_split(ver, NULL, -1, "*", &w, &s, &calls), KSPLIT_ALLOWED);
        CHECK(s == NULL && w.len == 0 && calls == 0);
    }

    /* a topic listed twice is decided and removed once per occurrence */
    static const char *const dup[] = {"beta", "alpha", "beta"}, *const a1[] = {"alpha"};
    CHECK_EQ(md_split(ver, dup, 3, "beta", &w, &s, &calls), KSPLIT_PARTIAL);
    CHECK_EQ(calls, 3);
    CHECK_EQ(ksplit_topic_count(s), 2);
    check_md_forwarded(ver, &w, a1, 1);
    ksplit_free(s);
    kw_reset(&w);

    /* v10+: a topic named by id only is allowed without asking */
    if (ver >= 10) {
        static const char *const mix[] = {"alpha", NULL, "beta"}, *const idonly[] = {NULL};
        CHECK_EQ(md_split(ver, mix, 3, "*", &w, &s, &calls), KSPLIT_PARTIAL);
        CHECK_EQ(calls, 2);
        CHECK_EQ(ksplit_topic_count(s), 2);
        check_md_forwarded(ver, &w, idonly, 1);
        ksplit_free(s);
        kw_reset(&w);
        CHECK_EQ(md_split(ver, idonly, 1, "*", &w, &s, &calls), KSPLIT_ALLOWED);
        CHECK(s == NULL && calls == 0);
    }
    kw_free(&w);
}

/* ksplit_filter_metadata of the response of topics t[0..n) with deny;
 * the output equals the response of the kept topics k[0..nk), krewrite
 * reads it, and every truncation fails without calling allow(). */
static void check_md_filter(int16_t ver, const mtopic_t *const *t, int n, const char *deny,
                            const mtopic_t *const *k, int nk, int ncalls)
{
    kwriter_t in, w, exp;
    kw_init(&in, 256);
    kw_init(&w, 256);
    kw_init(&exp, 256);
    md_build_resp(&in, ver, t, n);
    md_build_resp(&exp, ver, k, nk);
    deny_ctx_t d = {deny, 0};
    size_t removed = 99;
    CHECK_EQ(ksplit_filter_metadata(ver, in.buf, in.len, allow_cb, &d, &w, &removed), 0);
    CHECK_EQ(removed, (size_t)(n - nk));
    CHECK_EQ(d.calls, ncalls);
    CHECK(same_frame(&w, &exp));
    md_seen_t sn;
    CHECK_EQ(md_parse(ver, w.buf + 4, w.len - 4, &sn), 0);
    CHECK_EQ(sn.ntopics, nk);
    CHECK_EQ(sn.nbrokers, 2);
    check_krewrite_reads(ver, &w, 2);

    int all_fail = 1, nothing = 1, no_calls = 1;
    for (size_t len = 0; len < in.len; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, in.buf, len);
        kwriter_t o;
        kw_init(&o, 64);
        deny_ctx_t d2 = {deny, 0};
        size_t r2 = 7;
        all_fail &= ksplit_filter_metadata(ver, copy, len, allow_cb, &d2, &o, &r2) == -1 && r2 == 0;
        nothing &= o.len == 0;
        no_calls &= d2.calls == 0;
        kw_free(&o);
        free(copy);
    }
    CHECK(all_fail);
    CHECK(nothing);
    CHECK(no_calls);
    kw_i8(&in, 0); /* a trailing byte */
    kw_reset(&w);
    CHECK_EQ(ksplit_filter_metadata(ver, in.buf, in.len, allow_cb, &d, &w, NULL), -1);
    CHECK_EQ(w.len, 0);
    in.len--;
    char name[64];
    snprintf(name, sizeof(name), "metadata-filter-v%d-%d", ver, n);
    write_seed(name, (uint8_t)(0xe0 | ver), in.buf, in.len);
    kw_free(&in);
    kw_free(&w);
    kw_free(&exp);
}

static void test_md_filter(int16_t ver)
{
    const mtopic_t *abg[] = {&M_ALPHA, &M_BETA, &M_GAMMA}, *ag[] = {&M_ALPHA, &M_GAMMA};
    check_md_filter(ver, abg, 3, NULL, abg, 3, 3);
    check_md_filter(ver, abg, 3, "beta", ag, 2, 3);
    check_md_filter(ver, abg, 3, "*", NULL, 0, 3);
    check_md_filter(ver, NULL, 0, "*", NULL, 0, 0);
    if (ver >= 12) { /* a topic without a name is kept, allow() not asked */
        const mtopic_t unnamed = {NULL, 1, 0};
        const mtopic_t *t[] = {&M_ALPHA, &unnamed, &M_BETA}, *k[] = {&unnamed};
        check_md_filter(ver, t, 3, "*", k, 1, 2);
    }
}

/* Requests and responses that must fail, and argument checks. */
static void test_md_rejects(void)
{
    static const char *const abg[] = {"alpha", "beta", "gamma"};
    for (int16_t ver = 0; ver <= 12; ver++) {
        kwriter_t req;
        kw_init(&req, 128);
        md_build_req(&req, ver, abg, 3);
        kreq_hdr_t h;
        if (header_of(&req, &h) == 0)
            check_request_truncations(req.buf, req.len, &h);
        char name[64];
        snprintf(name, sizeof(name), "metadata-req-v%d", ver);
        write_seed(name, 0, req.buf, req.len);
        kw_free(&req);
    }
    /* v0 has no null array */
    kwriter_t req, w;
    kw_init(&req, 64);
    kw_init(&w, 64);
    md_build_req(&req, 0, NULL, -1);
    kreq_hdr_t h;
    ksplit_t *s = NULL;
    deny_ctx_t d = {"*", 0};
    if (header_of(&req, &h) == 0)
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
    CHECK(s == NULL && w.len == 0 && d.calls == 0);
    /* below v10 a null name is not allowed */
    static const char *const nul[] = {NULL};
    kw_reset(&req);
    md_build_req(&req, 9, nul, 1);
    if (header_of(&req, &h) == 0)
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
    /* v13 is not served */
    kw_reset(&req);
    md_build_req(&req, 12, abg, 3);
    if (header_of(&req, &h) == 0) {
        h.api_version = 13; /* kproto's table stops at 12: set by hand */
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
        h.api_version = -1;
        CHECK_EQ(ksplit_request(&h, req.buf, req.len, allow_cb, &d, &w, &s), KSPLIT_ERROR);
    }
    CHECK(s == NULL && w.len == 0 && d.calls == 0);
    kw_free(&req);
    /* filter: bad version, NULL arguments, null topic array, null name below v12 */
    kwriter_t resp;
    kw_init(&resp, 256);
    const mtopic_t *ab[] = {&M_ALPHA, &M_BETA};
    md_build_resp(&resp, 12, ab, 2);
    size_t removed = 5;
    CHECK_EQ(ksplit_filter_metadata(13, resp.buf, resp.len, allow_cb, &d, &w, &removed), -1);
    CHECK_EQ(removed, 0);
    CHECK_EQ(ksplit_filter_metadata(-1, resp.buf, resp.len, allow_cb, &d, &w, NULL), -1);
    CHECK_EQ(ksplit_filter_metadata(12, NULL, 0, allow_cb, &d, &w, NULL), -1);
    CHECK_EQ(ksplit_filter_metadata(12, resp.buf, resp.len, NULL, &d, &w, NULL), -1);
    CHECK_EQ(ksplit_filter_metadata(12, resp.buf, resp.len, allow_cb, &d, NULL, NULL), -1);
    CHECK_EQ(ksplit_filter_metadata(12, resp.buf, resp.len, allow_cb, &d, &w, NULL), 0);
    kw_reset(&resp);
    const mtopic_t unnamed = {NULL, 1, 0};
    const mtopic_t *u[] = {&unnamed};
    md_build_resp(&resp, 11, u, 1);
    kw_reset(&w);
    CHECK_EQ(ksplit_filter_metadata(11, resp.buf, resp.len, allow_cb, &d, &w, NULL), -1);
    CHECK_EQ(w.len, 0);
    /* a null topic array in a response */
    kw_reset(&resp);
    md_build_resp(&resp, 1, NULL, 0);
    resp.buf[resp.len - 1] = 0xff; /* the count is the last field of v1 */
    resp.buf[resp.len - 2] = 0xff;
    resp.buf[resp.len - 3] = 0xff;
    resp.buf[resp.len - 4] = 0xff;
    CHECK_EQ(ksplit_filter_metadata(1, resp.buf, resp.len, allow_cb, &d, &w, NULL), -1);
    CHECK_EQ(w.len, 0);
    kw_free(&resp);
    kw_free(&w);
}

/* Golden Metadata frames of real clients: their requests split, their
 * (mock broker) responses filtered and merged. */
static void test_md_golden(void)
{
    int seen = 0;
    for (size_t c = 0; c < 4; c++)
        for (int v = 0; v <= 12; v++) {
            char path[256];
            size_t len, rlen;
            snprintf(path, sizeof(path), "%s/%s-Metadata-v%d-req.bin", GOLDEN_DIR, CLIENTS[c], v);
            uint8_t *req = read_file(path, &len);
            snprintf(path, sizeof(path), "%s/%s-Metadata-v%d-resp.bin", GOLDEN_DIR, CLIENTS[c], v);
            uint8_t *resp = read_file(path, &rlen);
            if (!req || !resp) {
                free(req);
                free(resp);
                continue;
            }
            seen++;
            int16_t ver = (int16_t)v;
            kreq_hdr_t h;
            const char *err;
            CHECK_EQ(kproto_parse_request_header(req, len, &h, &err), 0);
            kwriter_t w;
            kw_init(&w, 256);
            ksplit_t *s = NULL;
            deny_ctx_t d = {"*", 0};
            int rc = ksplit_request(&h, req, len, allow_cb, &d, &w, &s);
            md_seen_t in, out;
            CHECK_EQ(md_parse(ver, resp, rlen, &in), 0);
            CHECK(in.nbrokers >= 1 && in.ntopics >= 1);
            if (d.calls == 0) { /* all topics: kafka-python v0 (empty), v1 (null) */
                CHECK_EQ(rc, KSPLIT_ALLOWED);
            } else {
                /* t1 named and denied: forwarded with no topics; the merge
                 * of the mock's answer adds t1 with 29 (v0: only t1) */
                CHECK_EQ(rc, KSPLIT_PARTIAL);
                CHECK_EQ(w.len, 4 + len - 4); /* "t1" (4 bytes) gone, count 1 -> 0 */
                kw_reset(&w);
                CHECK_EQ(ksplit_merge(s, resp, rlen, AUTHZ, &w), 0);
                CHECK_EQ(md_parse(ver, w.buf + 4, w.len - 4, &out), 0);
                CHECK_EQ(out.ntopics, ver == 0 ? 1 : in.ntopics + 1);
                CHECK_STR(out.names[out.ntopics - 1], "t1");
                CHECK_EQ(out.errs[out.ntopics - 1], AUTHZ);
                CHECK_EQ(out.nbrokers, in.nbrokers);
                check_krewrite_reads(ver, &w, in.nbrokers);
                check_merge_truncations(s, resp, rlen);
            }
            ksplit_free(s);
            check_request_truncations(req, len, &h);
            /* filter: t1 removed, the rest byte-identical up to the count */
            kw_reset(&w);
            d = (deny_ctx_t){"t1", 0};
            size_t removed = 0;
            CHECK_EQ(ksplit_filter_metadata(ver, resp, rlen, allow_cb, &d, &w, &removed), 0);
            CHECK_EQ(d.calls, in.ntopics);
            CHECK(removed >= 1);
            CHECK_EQ(md_parse(ver, w.buf + 4, w.len - 4, &out), 0);
            CHECK_EQ(out.ntopics, in.ntopics - (int)removed);
            CHECK_EQ(out.nbrokers, in.nbrokers);
            check_krewrite_reads(ver, &w, in.nbrokers);
            kw_reset(&w);
            d = (deny_ctx_t){NULL, 0};
            CHECK_EQ(ksplit_filter_metadata(ver, resp, rlen, allow_cb, &d, &w, &removed), 0);
            CHECK(removed == 0 && w.len == rlen + 4 && memcmp(w.buf + 4, resp, rlen) == 0);
            char name[128];
            snprintf(name, sizeof(name), "metadata-golden-%s-v%d", CLIENTS[c], v);
            write_seed(name, 0, req, len);
            snprintf(name, sizeof(name), "metadata-golden-filter-%s-v%d", CLIENTS[c], v);
            write_seed(name, (uint8_t)(0xe0 | v), resp, rlen);
            kw_free(&w);
            free(req);
            free(resp);
        }
    CHECK_EQ(seen, 5);
}

/* A broker address rewritten by krewrite (longer host) survives the merge
 * and the filter byte for byte. */
static int long_addr(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                     int32_t *new_port)
{
    static const char h[] = "eosproxy-listener.example.internal";
    *new_host = (kstr_t){h, (int32_t)sizeof(h) - 1};
    *new_port = 19000 + node_id;
    return 0;
}

static void test_md_rewritten(void)
{
    for (int16_t ver = 0; ver <= 12; ver++) {
        const mtopic_t *abg[] = {&M_ALPHA, &M_BETA, &M_GAMMA};
        kwriter_t resp, rw, w;
        kw_init(&resp, 256);
        kw_init(&rw, 256);
        kw_init(&w, 256);
        md_build_resp(&resp, ver, abg, 3);
        const char *err;
        CHECK_EQ(
            krewrite_response(KAPI_Metadata, ver, resp.buf, resp.len, long_addr, NULL, &rw, &err),
            0);
        deny_ctx_t d = {"beta", 0};
        size_t removed;
        CHECK_EQ(ksplit_filter_metadata(ver, rw.buf + 4, rw.len - 4, allow_cb, &d, &w, &removed),
                 0);
        CHECK_EQ(removed, 1);
        /* = the rewrite of the response without beta */
        const mtopic_t *ag[] = {&M_ALPHA, &M_GAMMA};
        kwriter_t resp2, exp;
        kw_init(&resp2, 256);
        kw_init(&exp, 256);
        md_build_resp(&resp2, ver, ag, 2);
        CHECK_EQ(krewrite_response(KAPI_Metadata, ver, resp2.buf, resp2.len, long_addr, NULL, &exp,
                                   &err),
                 0);
        CHECK(w.len == exp.len && memcmp(w.buf, exp.buf, w.len) == 0);
        CHECK(memmem(w.buf, w.len, "eosproxy-listener.example.internal", 34) != NULL);
        /* and the merge keeps them too: beta appended to the rewritten frame */
        static const char *const abg_n[] = {"alpha", "beta", "gamma"};
        ksplit_t *s = NULL;
        int calls;
        kwriter_t fw, mw;
        kw_init(&fw, 128);
        kw_init(&mw, 256);
        CHECK_EQ(md_split(ver, abg_n, 3, "beta", &fw, &s, &calls), KSPLIT_PARTIAL);
        CHECK_EQ(ksplit_merge(s, exp.buf + 4, exp.len - 4, AUTHZ, &mw), 0);
        md_seen_t sn;
        CHECK_EQ(md_parse(ver, mw.buf + 4, mw.len - 4, &sn), 0);
        CHECK(sn.ntopics == 3 && strcmp(sn.names[2], "beta") == 0 && sn.errs[2] == AUTHZ);
        const mtopic_t beta_d = {"beta", 0, 1};
        const mtopic_t *agb[] = {&M_ALPHA, &M_GAMMA, &beta_d};
        kw_reset(&resp2);
        kw_reset(&fw);
        md_build_resp(&resp2, ver, agb, 3);
        CHECK_EQ(
            krewrite_response(KAPI_Metadata, ver, resp2.buf, resp2.len, long_addr, NULL, &fw, &err),
            0);
        CHECK(mw.len == fw.len && memcmp(mw.buf, fw.buf, fw.len) == 0);
        ksplit_free(s);
        kw_free(&fw);
        kw_free(&mw);
        kw_free(&resp2);
        kw_free(&exp);
        kw_free(&resp);
        kw_free(&rw);
        kw_free(&w);
    }
}

int main(void)
{
    for (size_t a = 0; a < sizeof(SPLIT) / sizeof(SPLIT[0]); a++)
        for (int16_t v = SPLIT[a].lo; v <= SPLIT[a].hi; v++) {
            test_version(SPLIT[a].api, v);
            test_duplicates(SPLIT[a].api, v);
            test_no_topics(SPLIT[a].api, v);
        }
    test_rejects();
    test_golden_requests();
    test_golden_merge();
    test_refuse_all();
    test_fetch_req_codec();
    for (int16_t v = 0; v <= 12; v++) {
        test_md_split(v);
        test_md_filter(v);
    }
    test_md_rejects();
    test_md_golden();
    test_md_rewritten();
    return unit_done("test_ksplit");
}
