/*
 * test_ksplit.c - unit tests for the per-topic request split, the error
 * answer and the response merge (proxy/ksplit.c), over Produce v3..v9,
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
 * With KSPLIT_SEED_DIR set, frames are written there as fuzz seeds
 * ksplit-*.bin in the input format of tests/fuzz/fuzz_ksplit.c.
 */
#include "kcommit.h"
#include "kfetch.h"
#include "kproduce.h"
#include "kproto.h"
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
    return unit_done("test_ksplit");
}
