/*
 * fuzz_ksplit.c - libFuzzer target for the per-topic ACL codec
 * (ksplit.c): request split, error answer, response merge, and the
 * refusal of admin requests; and the FetchRequest codec (kfetch.c).
 *
 * Input: one selector byte, then the data.
 *   selector bit 7 = 0: a request frame (no size prefix). Its header is
 *     parsed; the body goes through ksplit_request with every other topic
 *     allowed (bit 6 = 0: the 1st, 3rd, ... ; 1: the 2nd, 4th, ...), and
 *     through ksplit_refuse_all. Seeds: tests/fuzz/seeds/ksplit-req-* and
 *     ksplit-golden-* (written by test_ksplit with KSPLIT_SEED_DIR set).
 *   selector bit 7 = 1, k = (sel >> 4) & 7:
 *     k 0..3: a broker response (no size prefix) to a split request of API
 *       SPLIT[k] at version lo + (sel & 15) % (hi - lo + 1), built here
 *       with topics alpha and beta of which beta was denied; it goes
 *       through ksplit_merge. Seeds: ksplit-merge-*.
 *     k 4, 5: a Metadata response at version (sel & 15) % 13 to a split
 *       Metadata request [alpha, beta] with beta (4) or both (5: for v0 the
 *       merge drops the broker's topics) denied, through ksplit_merge.
 *       Seeds: ksplit-metadata-merge-*.
 *     k 6, 7: a Metadata response at version (sel & 15) % 13 through
 *       ksplit_filter_metadata, allowing every other named topic (6: the
 *       1st, 3rd, ...; 7: the 2nd, ...). Seeds: ksplit-metadata-filter-*.
 * Build: clang -fsanitize=fuzzer,address,undefined with the sources of proxy/codec and
 * -lz -lsnappy -llz4 -lzstd.
 *
 * Invariants (abort on violation):
 *  - ksplit_request and ksplit_refuse_all accept exactly the bodies that
 *    kproto_validate_request accepts, for the APIs and versions they serve;
 *  - ALLOWED and DENIED write nothing; ERROR returns no split; the split
 *    holds as many topics as allow() refused;
 *  - a PARTIAL request has a correct size prefix, the original header
 *    bytes, validates, and splits again (allow-all) as ALLOWED with the
 *    remaining topics; answering it locally and merging that answer gives
 *    a response the API's codec parses, with every topic of the original;
 *  - a DENIED answer parses with the codec, error 29 on every partition;
 *  - kfetch_req_parse accepts exactly the Fetch v4..v12 bodies kproto
 *    accepts, and kfetch_req_write_body writes them back byte for byte;
 *  - ksplit_merge accepts exactly the responses the codec accepts
 *    (Produce, Fetch, OffsetCommit), and its output parses with one topic
 *    more and the broker's bytes before the topic count unchanged.
 *  - Metadata: ksplit_request never returns DENIED; a PARTIAL request
 *    validates and re-splits as ALLOWED; the local answer and its merge
 *    read with the Metadata reader written here, with 29 on the removed
 *    topics. ksplit_merge and ksplit_filter_metadata accept exactly the
 *    responses that reader accepts; their outputs read again with the
 *    brokers, the bytes before the topic count and the bytes after the
 *    topics unchanged, the right topic count, and krewrite accepts them.
 */
#include "kcommit.h"
#include "kfetch.h"
#include "kproduce.h"
#include "kproto.h"
#include "krewrite.h"
#include "ksplit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    int16_t api, lo, hi;
} SPLIT[] = {
    {KAPI_Produce, 3, 9}, {KAPI_Fetch, 4, 12}, {KAPI_ListOffsets, 0, 8}, {KAPI_OffsetCommit, 0, 8}};

static int split_api(int16_t api, int16_t ver)
{
    if (api == KAPI_Metadata)
        return ver >= 0 && ver <= 12;
    for (size_t i = 0; i < 4; i++)
        if (SPLIT[i].api == api)
            return ver >= SPLIT[i].lo && ver <= SPLIT[i].hi;
    return 0;
}

static int refuse_api(int16_t api, int16_t ver)
{
    switch (api) {
    case KAPI_CreateTopics:
        return ver <= 7;
    case KAPI_DeleteTopics:
        return ver <= 6;
    case KAPI_CreatePartitions:
        return ver <= 3;
    case KAPI_DeleteRecords:
    case KAPI_DeleteGroups:
        return ver <= 2;
    }
    return 0;
}

/* allow(): every other call, starting with the first when odd == 0. */
typedef struct alt {
    int odd;
    int calls;
    int denied;
} alt_t;

static int allow_alt(void *ctx, const char *topic, size_t len)
{
    alt_t *a = ctx;
    int ok = (a->calls++ % 2) == a->odd;
    a->denied += !ok;
    return ok;
}

static int allow_all(void *ctx, const char *topic, size_t len)
{
    (*(int *)ctx)++;
    return 1;
}

static int deny_all(void *ctx, const char *topic, size_t len)
{
    (*(int *)ctx)++;
    return 0;
}

/*
 * Parses a response frame (no size prefix) with the API's codec: the
 * topic count, and in *all_err whether every partition has error err.
 * -1 if it does not parse, -2 when there is no codec (ListOffsets).
 */
static int codec_topics(int16_t api, int16_t ver, const uint8_t *frame, size_t len, int16_t err,
                        int *all_err)
{
    int n = -1;
    *all_err = 1;
    if (api == KAPI_Produce) {
        kproduce_resp_t r;
        if (kproduce_resp_parse(ver, frame, len, &r, NULL) != 0)
            return -1;
        n = r.ntopics;
        for (int32_t i = 0; i < r.ntopics; i++)
            for (int32_t j = 0; j < r.topics[i].npartitions; j++)
                *all_err &= r.topics[i].partitions[j].error_code == err;
        kproduce_resp_free(&r);
    } else if (api == KAPI_Fetch) {
        kfetch_resp_t r;
        if (kfetch_resp_parse(ver, frame, len, &r, NULL) != 0)
            return -1;
        n = r.ntopics;
        for (int32_t i = 0; i < r.ntopics; i++)
            for (int32_t j = 0; j < r.topics[i].npartitions; j++)
                *all_err &= r.topics[i].partitions[j].error_code == err;
        kfetch_resp_free(&r);
    } else if (api == KAPI_OffsetCommit) {
        int32_t corr;
        size_t off;
        kcommit_t c;
        if (kproto_parse_response_header(api, ver, frame, len, &corr, &off) != 0 ||
            kcommit_resp_parse(api, ver, frame + off, len - off, &c, NULL) != 0)
            return -1;
        n = c.ntopics;
        for (int32_t i = 0; i < c.ntopics; i++)
            for (int32_t j = 0; j < c.topics[i].npartitions; j++)
                *all_err &= c.topics[i].partitions[j].error_code == err;
        kcommit_free(&c);
    } else {
        return -2;
    }
    return n;
}

/* ---- Metadata ---- */

/* What md_read saw of a Metadata response. */
typedef struct md_info {
    int32_t ntopics;
    int32_t nerr29;   /* topics with ErrorCode 29 */
    int32_t nnamed;   /* topics with a name */
    size_t count_off; /* the topic count */
    size_t count_end;
    size_t end; /* after the last topic */
} md_info_t;

/* A strict MetadataResponse v0..v12 reader, field by field from Kafka's
 * MetadataResponse.json (independent of ksplit's tables). 0 or -1. */
static int md_read(int16_t ver, const uint8_t *frame, size_t len, md_info_t *m)
{
    int flex = ver >= 9;
    kreader_t r;
    memset(m, 0, sizeof(*m));
    kr_init(&r, frame, len);
    (void)kr_i32(&r);
    kr_tags_if(&r, flex);
    if (ver >= 3)
        (void)kr_i32(&r);
    int32_t nb = kr_array(&r, flex, 1);
    if (nb < 0)
        kr_fail(&r, KR_ENULL);
    for (int32_t i = 0; i < nb && kr_ok(&r); i++) {
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
    m->count_off = r.off;
    m->ntopics = kr_array(&r, flex, 1);
    m->count_end = r.off;
    if (m->ntopics < 0)
        kr_fail(&r, KR_ENULL);
    for (int32_t i = 0; i < m->ntopics && kr_ok(&r); i++) {
        int16_t err = kr_i16(&r);
        kstr_t name = ver >= 12 ? kr_str(&r, flex) : kr_str_nn(&r, flex);
        if (ver >= 10)
            (void)kr_skip(&r, 16);
        if (ver >= 1)
            (void)kr_i8(&r);
        int32_t np = kr_array(&r, flex, 1);
        if (np < 0)
            kr_fail(&r, KR_ENULL);
        for (int32_t p = 0; p < np && kr_ok(&r); p++) {
            (void)kr_skip(&r, ver >= 7 ? 14 : 10);
            for (int a = 0; a < (ver >= 5 ? 3 : 2) && kr_ok(&r); a++) {
                int32_t n = kr_array(&r, flex, 4);
                if (n < 0)
                    kr_fail(&r, KR_ENULL);
                (void)kr_skip(&r, (size_t)(n > 0 ? n : 0) * 4);
            }
            kr_tags_if(&r, flex);
        }
        if (ver >= 8)
            (void)kr_i32(&r);
        kr_tags_if(&r, flex);
        m->nerr29 += err == 29;
        m->nnamed += name.len >= 0;
    }
    m->end = r.off;
    if (ver >= 8 && ver <= 10)
        (void)kr_i32(&r);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    return kr_ok(&r) ? 0 : -1;
}

/* An output frame out (size prefix included) of ksplit_merge or
 * ksplit_filter_metadata for the input frame in: reads, keeps the bytes
 * before the topic count and after the topics, krewrite accepts it. */
static void md_check_out(int16_t ver, const uint8_t *in, size_t len, const md_info_t *mi,
                         const kwriter_t *out, int32_t ntopics, md_info_t *mo)
{
    if (out->len < 4 || kbe32(out->buf) != (int32_t)(out->len - 4) ||
        md_read(ver, out->buf + 4, out->len - 4, mo) != 0 || mo->ntopics != ntopics ||
        mo->count_off != mi->count_off || memcmp(out->buf + 4, in, mi->count_off) != 0 ||
        out->len - 4 - mo->end != len - mi->end ||
        memcmp(out->buf + 4 + mo->end, in + mi->end, len - mi->end) != 0)
        abort();
    kwriter_t rw;
    kw_init(&rw, out->len);
    const char *err;
    if (krewrite_response(KAPI_Metadata, ver, out->buf + 4, out->len - 4, NULL, NULL, &rw, &err) !=
        0)
        abort();
    kw_free(&rw);
}

/* A Metadata split (PARTIAL, request frame nf): its local answer reads
 * with 29 on every topic; merging s into an error-0 answer of its own
 * topics gives both sets (v0 drop-all: only the removed ones). */
static void md_check_split(const kreq_hdr_t *h, const ksplit_t *s, int all_denied)
{
    int16_t ver = h->api_version;
    int32_t n = (int32_t)ksplit_topic_count(s);
    kwriter_t ans, merged;
    kw_init(&ans, 64);
    kw_init(&merged, 64);
    md_info_t ma, mm;
    if (ksplit_answer(s, h->correlation_id, 29, &ans) != 0 ||
        kbe32(ans.buf + 4) != h->correlation_id ||
        md_read(ver, ans.buf + 4, ans.len - 4, &ma) != 0 || ma.ntopics != n || ma.nerr29 != n)
        abort();
    kw_reset(&ans);
    if (ksplit_answer(s, h->correlation_id, 0, &ans) != 0 ||
        md_read(ver, ans.buf + 4, ans.len - 4, &ma) != 0 || ma.nerr29 != 0 ||
        ksplit_merge(s, ans.buf + 4, ans.len - 4, 29, &merged) != 0)
        abort();
    int drop = ver == 0 && all_denied;
    md_check_out(ver, ans.buf + 4, ans.len - 4, &ma, &merged, drop ? n : 2 * n, &mm);
    if (mm.nerr29 != n)
        abort();
    kw_free(&ans);
    kw_free(&merged);
}

/* A Metadata request [alpha, beta]: the split of fuzz_md_merge. */
static void build_md_request(kwriter_t *w, int16_t ver)
{
    int flex = ver >= 9;
    static const uint8_t id[16] = {1};
    kproto_write_request_header(w, KAPI_Metadata, ver, 7, (kstr_t){"fz", 2});
    kw_array(w, flex, 2);
    for (int t = 0; t < 2; t++) {
        if (ver >= 10)
            kw_raw(w, id, sizeof(id));
        kw_str(w, flex, t ? "beta" : "alpha", t ? 4 : 5);
        if (flex)
            kw_tags_empty(w);
    }
    if (ver >= 4)
        kw_i8(w, 1);
    if (ver >= 8 && ver <= 10)
        kw_i8(w, 0);
    if (ver >= 8)
        kw_i8(w, 0);
    if (flex)
        kw_tags_empty(w);
}

static int deny_beta(void *ctx, const char *topic, size_t len)
{
    return !(len == 4 && memcmp(topic, "beta", 4) == 0);
}

static int deny_all_md(void *ctx, const char *topic, size_t len)
{
    return 0;
}

static void fuzz_md_merge(uint8_t sel, const uint8_t *data, size_t size)
{
    int16_t ver = (int16_t)((sel & 15) % 13);
    int all = (sel >> 4) & 1;
    kwriter_t req, w;
    kw_init(&req, 128);
    kw_init(&w, 256);
    build_md_request(&req, ver);
    kreq_hdr_t h;
    const char *err;
    ksplit_t *s = NULL;
    if (kproto_parse_request_header(req.buf, req.len, &h, &err) != 0 ||
        ksplit_request(&h, req.buf, req.len, all ? deny_all_md : deny_beta, NULL, &w, &s) !=
            KSPLIT_PARTIAL ||
        ksplit_topic_count(s) != (size_t)(all ? 2 : 1))
        abort();
    kw_reset(&w);
    md_info_t mi, mo;
    int ok = md_read(ver, data, size, &mi) == 0;
    int rc = ksplit_merge(s, data, size, 29, &w);
    if ((rc == 0) != ok || (rc != 0 && w.len != 0))
        abort();
    if (rc == 0) {
        int32_t added = (int32_t)ksplit_topic_count(s);
        int32_t kept = ver == 0 && all ? 0 : mi.ntopics;
        md_check_out(ver, data, size, &mi, &w, kept + added, &mo);
        if (mo.nerr29 != (ver == 0 && all ? 0 : mi.nerr29) + added)
            abort();
    }
    ksplit_free(s);
    kw_free(&req);
    kw_free(&w);
}

static void fuzz_md_filter(uint8_t sel, const uint8_t *data, size_t size)
{
    int16_t ver = (int16_t)((sel & 15) % 13);
    alt_t a = {(sel >> 4) & 1, 0, 0};
    kwriter_t w;
    kw_init(&w, 256);
    md_info_t mi, mo;
    int ok = md_read(ver, data, size, &mi) == 0;
    size_t removed = 99;
    int rc = ksplit_filter_metadata(ver, data, size, allow_alt, &a, &w, &removed);
    if ((rc == 0) != ok)
        abort();
    if (rc != 0 && (w.len != 0 || removed != 0 || a.calls != 0))
        abort();
    if (rc == 0) {
        if (a.calls != mi.nnamed || removed != (size_t)a.denied)
            abort();
        md_check_out(ver, data, size, &mi, &w, mi.ntopics - a.denied, &mo);
        if (mo.nnamed != mi.nnamed - a.denied)
            abort();
    }
    kw_free(&w);
}

/* Checks a PARTIAL result w for the request frame (h, data, size). */
static void check_partial(const kreq_hdr_t *h, const uint8_t *data, size_t size, const kwriter_t *w,
                          const ksplit_t *s, int calls)
{
    if (w->len < 4 + h->body_off || kbe32(w->buf) != (int32_t)(w->len - 4) ||
        memcmp(w->buf + 4, data, h->body_off) != 0)
        abort();
    const uint8_t *nf = w->buf + 4;
    size_t nlen = w->len - 4;
    kreq_hdr_t h2;
    const char *err;
    size_t err_off;
    if (kproto_parse_request_header(nf, nlen, &h2, &err) != 0 || h2.body_off != h->body_off ||
        kproto_validate_request(&h2, nf, nlen, &err_off, &err) != 0)
        abort();
    int n = 0;
    kwriter_t w2, ans, merged;
    kw_init(&w2, 64);
    kw_init(&ans, 64);
    kw_init(&merged, 64);
    ksplit_t *s2 = NULL;
    if (ksplit_request(&h2, nf, nlen, allow_all, &n, &w2, &s2) != KSPLIT_ALLOWED || s2 ||
        w2.len != 0 || (size_t)n + ksplit_topic_count(s) != (size_t)calls)
        abort();
    if (h->api_key == KAPI_Metadata) {
        md_check_split(h, s, n == 0);
        kw_free(&w2);
        kw_free(&ans);
        kw_free(&merged);
        return;
    }
    /* the broker's part answered locally (error 0), then merged */
    n = 0;
    if (ksplit_request(&h2, nf, nlen, deny_all, &n, &w2, &s2) != KSPLIT_DENIED ||
        ksplit_answer(s2, h->correlation_id, 0, &ans) != 0 ||
        ksplit_merge(s, ans.buf + 4, ans.len - 4, 29, &merged) != 0)
        abort();
    int all;
    int t = codec_topics(h->api_key, h->api_version, merged.buf + 4, merged.len - 4, 0, &all);
    if (t != -2 && t != calls)
        abort();
    ksplit_free(s2);
    kw_free(&w2);
    kw_free(&ans);
    kw_free(&merged);
}

/* Checks a DENIED split: its answer parses with 29 everywhere. */
static void check_denied(const kreq_hdr_t *h, const ksplit_t *s, int calls)
{
    kwriter_t ans;
    kw_init(&ans, 64);
    if ((size_t)calls != ksplit_topic_count(s) ||
        ksplit_answer(s, h->correlation_id, 29, &ans) != 0 ||
        kbe32(ans.buf) != (int32_t)(ans.len - 4) || kbe32(ans.buf + 4) != h->correlation_id)
        abort();
    int all;
    int t = codec_topics(h->api_key, h->api_version, ans.buf + 4, ans.len - 4, 29, &all);
    if (t != -2 && (t != calls || !all))
        abort();
    kw_free(&ans);
}

/* The FetchRequest codec agrees with kproto and round-trips byte for byte. */
static void fuzz_fetch_request(const kreq_hdr_t *h, const uint8_t *data, size_t size, int valid)
{
    if (h->api_key != KAPI_Fetch || h->api_version < KFETCH_MIN_VERSION ||
        h->api_version > KFETCH_MAX_VERSION)
        return;
    kfetch_req_t r;
    const uint8_t *body = data + h->body_off;
    size_t len = size - h->body_off;
    if ((kfetch_req_parse(h->api_version, body, len, &r, NULL) == 0) != valid)
        abort();
    if (!valid)
        return;
    kwriter_t w;
    kw_init(&w, len + 16);
    if (kfetch_req_write_body(&w, h->api_version, &r) != 0 || w.len != len ||
        memcmp(w.buf, body, len) != 0)
        abort();
    kw_free(&w);
    kfetch_req_free(&r);
}

static void fuzz_request(uint8_t sel, const uint8_t *data, size_t size)
{
    kreq_hdr_t h;
    const char *err = NULL;
    size_t err_off;
    if (kproto_parse_request_header(data, size, &h, &err) != 0)
        return;
    int valid = kproto_validate_request(&h, data, size, &err_off, &err) == 0;
    fuzz_fetch_request(&h, data, size, valid);
    kwriter_t w;
    kw_init(&w, 64);
    alt_t a = {(sel >> 6) & 1, 0, 0};
    ksplit_t *s = (ksplit_t *)&a;
    int rc = ksplit_request(&h, data, size, allow_alt, &a, &w, &s);
    if (!split_api(h.api_key, h.api_version)) {
        if (rc != KSPLIT_ERROR)
            abort();
    } else if ((rc == KSPLIT_ERROR) == valid) {
        abort();
    }
    if (rc == KSPLIT_ERROR && (s != NULL || a.calls != 0 || w.len != 0))
        abort();
    if (rc == KSPLIT_ALLOWED && (s != NULL || w.len != 0 || a.denied != 0))
        abort();
    if ((rc == KSPLIT_PARTIAL || rc == KSPLIT_DENIED) &&
        (!s || ksplit_topic_count(s) != (size_t)a.denied))
        abort();
    if (rc == KSPLIT_DENIED && (w.len != 0 || a.denied != a.calls || h.api_key == KAPI_Metadata))
        abort();
    if (rc == KSPLIT_PARTIAL)
        check_partial(&h, data, size, &w, s, a.calls);
    if (rc == KSPLIT_DENIED)
        check_denied(&h, s, a.calls);
    if (rc != KSPLIT_ERROR)
        ksplit_free(s);

    kw_reset(&w);
    int rr = ksplit_refuse_all(&h, data, size, &w);
    if (refuse_api(h.api_key, h.api_version) ? (rr == 0) != valid : rr != -1)
        abort();
    if (rr == 0 &&
        (w.len < 8 || kbe32(w.buf) != (int32_t)(w.len - 4) || kbe32(w.buf + 4) != h.correlation_id))
        abort();
    if (rr != 0 && w.len != 0)
        abort();
    kw_free(&w);
}

/* A request of (api, ver) naming alpha [0, 1] and beta [3]. */
static void build_request(kwriter_t *w, int16_t api, int16_t ver)
{
    int flex = kproto_is_flexible(api, ver);
    kproto_write_request_header(w, api, ver, 7, (kstr_t){"fz", 2});
    if (api == KAPI_Produce) {
        kw_str(w, flex, NULL, -1);
        kw_i16(w, 1);
        kw_i32(w, 1000);
    } else if (api == KAPI_Fetch) {
        kw_i32(w, -1);
        kw_i32(w, 0);
        kw_i32(w, 0);
        kw_i32(w, 0);
        kw_i8(w, 0);
        if (ver >= 7) {
            kw_i32(w, 0);
            kw_i32(w, -1);
        }
    } else if (api == KAPI_ListOffsets) {
        kw_i32(w, -1);
        if (ver >= 2)
            kw_i8(w, 0);
    } else {
        kw_str(w, flex, "g", 1);
        if (ver >= 1) {
            kw_i32(w, 1);
            kw_str(w, flex, "m", 1);
        }
        if (ver >= 7)
            kw_str(w, flex, NULL, -1);
        if (ver >= 2 && ver <= 4)
            kw_i64(w, -1);
    }
    kw_array(w, flex, 2);
    for (int t = 0; t < 2; t++) {
        kw_str(w, flex, t ? "beta" : "alpha", t ? 4 : 5);
        int np = t ? 1 : 2;
        kw_array(w, flex, np);
        for (int p = 0; p < np; p++) {
            kw_i32(w, t ? 3 : p);
            if (api == KAPI_Produce) {
                kw_bytes(w, flex, NULL, -1);
            } else if (api == KAPI_Fetch) {
                if (ver >= 9)
                    kw_i32(w, -1);
                kw_i64(w, 0);
                if (ver >= 12)
                    kw_i32(w, -1);
                if (ver >= 5)
                    kw_i64(w, -1);
                kw_i32(w, 1024);
            } else if (api == KAPI_ListOffsets) {
                if (ver >= 4)
                    kw_i32(w, -1);
                kw_i64(w, -1);
                if (ver == 0)
                    kw_i32(w, 1);
            } else {
                kw_i64(w, 5);
                if (ver >= 6)
                    kw_i32(w, -1);
                if (ver == 1)
                    kw_i64(w, -1);
                kw_str(w, flex, NULL, -1);
            }
            if (flex)
                kw_tags_empty(w);
        }
        if (flex)
            kw_tags_empty(w);
    }
    if (api == KAPI_Fetch && ver >= 7)
        kw_array(w, flex, 0);
    if (api == KAPI_Fetch && ver >= 11)
        kw_str(w, flex, "", 0);
    if (flex)
        kw_tags_empty(w);
}

static void fuzz_merge(uint8_t sel, const uint8_t *data, size_t size)
{
    size_t i = (sel >> 4) & 3;
    int16_t api = SPLIT[i].api;
    int16_t ver = (int16_t)(SPLIT[i].lo + (sel & 15) % (SPLIT[i].hi - SPLIT[i].lo + 1));
    kwriter_t req, w;
    kw_init(&req, 256);
    kw_init(&w, 256);
    build_request(&req, api, ver);
    kreq_hdr_t h;
    const char *err;
    ksplit_t *s = NULL;
    if (kproto_parse_request_header(req.buf, req.len, &h, &err) != 0 ||
        ksplit_request(&h, req.buf, req.len, deny_beta, NULL, &w, &s) != KSPLIT_PARTIAL)
        abort();
    kw_reset(&w);
    int rc = ksplit_merge(s, data, size, 29, &w);
    int all;
    int before = codec_topics(api, ver, data, size, 0, &all);
    if (before != -2 && (rc == 0) != (before >= 0))
        abort();
    if (rc == 0) {
        int after = codec_topics(api, ver, w.buf + 4, w.len - 4, 0, &all);
        if (kbe32(w.buf) != (int32_t)(w.len - 4) || (before >= 0 && after != before + 1) ||
            memcmp(w.buf + 4, data, 4) != 0)
            abort();
    } else if (w.len != 0) {
        abort();
    }
    ksplit_free(s);
    kw_free(&req);
    kw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    if ((sel & 0xe0) == 0xe0)
        fuzz_md_filter(sel, data + 1, size - 1);
    else if ((sel & 0xe0) == 0xc0)
        fuzz_md_merge(sel, data + 1, size - 1);
    else if (sel & 0x80)
        fuzz_merge(sel, data + 1, size - 1);
    else
        fuzz_request(sel, data + 1, size - 1);
    return 0;
}
