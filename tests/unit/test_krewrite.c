/*
 * test_krewrite.c - unit tests for krewrite.c: broker endpoint rewriting in
 * Metadata, FindCoordinator and DescribeCluster responses.
 *
 * Frames are built by hand with kwriter for flexible and non-flexible
 * versions, rewritten, then decoded again by an independent decoder written
 * here: hosts and ports must be replaced, node ids kept, every other byte
 * identical, the size prefix right. Truncated frames must fail cleanly.
 * Golden frames captured from real clients (tests/unit/golden) are
 * rewritten too. Run from the repository root.
 */
#include "kbuf.h"
#include "kproto.h"
#include "krewrite.h"
#include "unit.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_DIR "tests/unit/golden"
#define MAX_EPS 8

/* A broker endpoint as built into or decoded from a frame. */
typedef struct ep {
    int32_t node_id;
    const char *host;
    int32_t port;
    const char *rack; /* NULL: null rack */
} ep_t;

static const ep_t brokers3[] = {
    {1, "broker-1.kafka.internal", 9092, "rack-a"},
    {2, "b2", 9093, NULL},
    {3, "broker-three.kafka.internal.example", 9094, "r"},
};

/* Map modes: what the callback answers. */
enum { MAP_LONG, MAP_SHORT, MAP_SAME, MAP_REJECT };

/* Callback context: mode, calls seen, host storage. */
typedef struct mapctx {
    int mode;
    int calls;
    int32_t seen_ids[MAX_EPS];
    char hosts[MAX_EPS][64];
} mapctx_t;

static int map_cb(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                  int32_t *new_port)
{
    mapctx_t *m = ctx;
    int i = m->calls < MAX_EPS ? m->calls : MAX_EPS - 1;
    m->seen_ids[i] = node_id;
    m->calls++;
    if (m->mode == MAP_REJECT)
        return 1;
    if (m->mode == MAP_SAME) {
        *new_host = host;
        *new_port = port;
        return 0;
    }
    if (m->mode == MAP_LONG)
        snprintf(m->hosts[i], sizeof(m->hosts[i]), "eosproxy-node-%d.sidecar.localdomain", node_id);
    else
        snprintf(m->hosts[i], sizeof(m->hosts[i]), "p%d", node_id);
    new_host->ptr = m->hosts[i];
    new_host->len = (int32_t)strlen(m->hosts[i]);
    *new_port = 19000 + node_id;
    return 0;
}

/* Expected host for node_id in a mode. */
static void expected_host(int mode, int32_t node_id, char *buf, size_t n)
{
    if (mode == MAP_LONG)
        snprintf(buf, n, "eosproxy-node-%d.sidecar.localdomain", node_id);
    else
        snprintf(buf, n, "p%d", node_id);
}

/* ---- frame builders ---- */

static void w_str(kwriter_t *w, int flex, const char *s)
{
    kw_str(w, flex, s, s ? (int32_t)strlen(s) : -1);
}

/* Header: CorrelationId, plus TAG_BUFFER for response header v1. */
static void w_header(kwriter_t *w, int flex)
{
    kw_i32(w, 0x01020304);
    if (flex)
        kw_tags_empty(w);
}

static void w_int_array(kwriter_t *w, int flex, int n)
{
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++)
        kw_i32(w, i + 1);
}

/* A Metadata topics tail: ClusterId, ControllerId, Topics, ... */
static void w_metadata_tail(kwriter_t *w, int ver, int ntopics)
{
    int flex = ver >= 9;
    if (ver >= 2)
        w_str(w, flex, "cluster-xyz");
    if (ver >= 1)
        kw_i32(w, 2);
    kw_array(w, flex, ntopics);
    for (int t = 0; t < ntopics; t++) {
        char name[32];
        snprintf(name, sizeof(name), "topic-%d", t);
        kw_i16(w, 0);
        w_str(w, flex, name);
        if (ver >= 10)
            kw_raw(w, "0123456789abcdef", 16);
        if (ver >= 1)
            kw_i8(w, 0);
        kw_array(w, flex, 3);
        for (int p = 0; p < 3; p++) {
            kw_i16(w, 0);
            kw_i32(w, p);
            kw_i32(w, 1 + p % 3);
            if (ver >= 7)
                kw_i32(w, 5);
            w_int_array(w, flex, 3);
            w_int_array(w, flex, 2);
            if (ver >= 5)
                w_int_array(w, flex, 0);
            if (flex)
                kw_tags_empty(w);
        }
        if (ver >= 8)
            kw_i32(w, INT32_MIN);
        if (flex)
            kw_tags_empty(w);
    }
    if (ver >= 8 && ver <= 10)
        kw_i32(w, INT32_MIN);
    if (flex) {
        /* a non-empty tag section to check tags are copied verbatim */
        kw_uvarint(w, 1);
        kw_uvarint(w, 7);
        kw_uvarint(w, 2);
        kw_i16(w, 0x4242);
    }
}

static void w_brokers(kwriter_t *w, int flex, int has_rack, const ep_t *eps, int n)
{
    kw_array(w, flex, n);
    for (int i = 0; i < n; i++) {
        kw_i32(w, eps[i].node_id);
        w_str(w, flex, eps[i].host);
        kw_i32(w, eps[i].port);
        if (has_rack)
            w_str(w, flex, eps[i].rack);
        if (flex)
            kw_tags_empty(w);
    }
}

/* A built frame: bytes (no size prefix) and where the parsed part ends. */
typedef struct built {
    kwriter_t w;
    size_t parsed_end; /* offset just past the last field krewrite must parse */
    size_t tail_off;   /* offset where the copied tail starts */
} built_t;

static void build_metadata(built_t *b, int ver, const ep_t *eps, int n, int ntopics)
{
    int flex = ver >= 9;
    kw_init(&b->w, 256);
    w_header(&b->w, flex);
    if (ver >= 3)
        kw_i32(&b->w, 11);
    w_brokers(&b->w, flex, ver >= 1, eps, n);
    b->parsed_end = b->tail_off = b->w.len;
    w_metadata_tail(&b->w, ver, ntopics);
}

/* FindCoordinator v0-v3 with one coordinator (err != 0: an error answer). */
static void build_findcoord(built_t *b, int ver, const ep_t *ep, int16_t error_code)
{
    int flex = ver >= 3;
    kw_init(&b->w, 64);
    w_header(&b->w, flex);
    if (ver >= 1)
        kw_i32(&b->w, 0);
    kw_i16(&b->w, error_code);
    if (ver >= 1)
        w_str(&b->w, flex, error_code ? "not available" : NULL);
    kw_i32(&b->w, ep->node_id);
    w_str(&b->w, flex, ep->host);
    kw_i32(&b->w, ep->port);
    b->parsed_end = b->tail_off = b->w.len;
    if (flex)
        kw_tags_empty(&b->w);
}

/* FindCoordinator v4: eps[i] with node_id -1 are built as error entries. */
static void build_findcoord4(built_t *b, const ep_t *eps, int n)
{
    kw_init(&b->w, 64);
    w_header(&b->w, 1);
    kw_i32(&b->w, 0);
    kw_array(&b->w, 1, n);
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "group-%d", i);
        w_str(&b->w, 1, key);
        kw_i32(&b->w, eps[i].node_id);
        w_str(&b->w, 1, eps[i].host);
        kw_i32(&b->w, eps[i].port);
        kw_i16(&b->w, eps[i].node_id < 0 ? 15 : 0);
        w_str(&b->w, 1, eps[i].node_id < 0 ? "COORDINATOR_NOT_AVAILABLE" : NULL);
        kw_tags_empty(&b->w);
    }
    b->parsed_end = b->tail_off = b->w.len;
    kw_tags_empty(&b->w);
}

static void build_describecluster(built_t *b, int ver, const ep_t *eps, int n)
{
    kw_init(&b->w, 128);
    w_header(&b->w, 1);
    kw_i32(&b->w, 0);
    kw_i16(&b->w, 0);
    w_str(&b->w, 1, NULL);
    if (ver >= 1)
        kw_i8(&b->w, 1);
    w_str(&b->w, 1, "cluster-xyz");
    kw_i32(&b->w, 1);
    w_brokers(&b->w, 1, 1, eps, n);
    b->parsed_end = b->tail_off = b->w.len;
    kw_i32(&b->w, INT32_MIN);
    kw_tags_empty(&b->w);
}

/* ---- independent decoder of rewritten output ---- */

/* Decoded output: endpoints (host views into the output) and tail offset. */
typedef struct decoded {
    int n;
    int32_t node_id[MAX_EPS];
    kstr_t host[MAX_EPS];
    int32_t port[MAX_EPS];
    size_t tail_off;
} decoded_t;

static void d_ep(kreader_t *r, int flex, decoded_t *d)
{
    if (d->n >= MAX_EPS) {
        kr_fail(r, KR_EINVALID);
        return;
    }
    d->node_id[d->n] = kr_i32(r);
    d->host[d->n] = kr_str_nn(r, flex);
    d->port[d->n] = kr_i32(r);
    d->n++;
}

static void d_brokers(kreader_t *r, int flex, int has_rack, decoded_t *d)
{
    int32_t n = kr_array(r, flex, 1);
    for (int32_t i = 0; i < n && kr_ok(r); i++) {
        d_ep(r, flex, d);
        if (has_rack)
            kr_str(r, flex);
        if (flex)
            kr_tags(r);
    }
}

/* Decodes a frame (no size prefix) up to the end of its endpoints. */
static int decode(int16_t api, int ver, const uint8_t *p, size_t len, decoded_t *d)
{
    kreader_t r;
    int flex = kproto_is_flexible(api, (int16_t)ver);
    memset(d, 0, sizeof(*d));
    kr_init(&r, p, len);
    kr_i32(&r);
    if (flex)
        kr_tags(&r);
    if (api == KAPI_Metadata) {
        if (ver >= 3)
            kr_i32(&r);
        d_brokers(&r, flex, ver >= 1, d);
    } else if (api == KAPI_DescribeCluster) {
        kr_i32(&r);
        kr_i16(&r);
        kr_str(&r, 1);
        if (ver >= 1)
            kr_i8(&r);
        kr_str(&r, 1);
        kr_i32(&r);
        d_brokers(&r, 1, 1, d);
    } else if (api == KAPI_FindCoordinator && ver >= 4) {
        kr_i32(&r);
        int32_t n = kr_array(&r, 1, 1);
        for (int32_t i = 0; i < n && kr_ok(&r); i++) {
            kr_str(&r, 1);
            d_ep(&r, 1, d);
            kr_i16(&r);
            kr_str(&r, 1);
            kr_tags(&r);
        }
    } else if (api == KAPI_FindCoordinator) {
        if (ver >= 1)
            kr_i32(&r);
        kr_i16(&r);
        if (ver >= 1)
            kr_str(&r, flex);
        d_ep(&r, flex, d);
    }
    d->tail_off = r.off;
    return kr_ok(&r) ? 0 : -1;
}

/*
 * Rewrites in (built b) with a map mode; checks the output frame: size
 * prefix, endpoints mapped (or kept when the input entry is an error), node
 * ids kept, and the tail after the endpoints byte-identical.
 */
static void check_rewrite(int16_t api, int ver, built_t *b, int mode, const ep_t *eps, int n)
{
    kwriter_t out;
    mapctx_t m = {.mode = mode};
    const char *err = NULL;
    decoded_t in_d, out_d;
    int expect_calls = 0;

    kw_init(&out, 0);
    int rc = krewrite_response(api, (int16_t)ver, b->w.buf, b->w.len, map_cb, &m, &out, &err);
    CHECK_EQ(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  api %d v%d: %s\n", api, ver, err);
        kw_free(&out);
        return;
    }
    CHECK(out.len >= 4);
    CHECK_EQ(kbe32(out.buf), (int64_t)out.len - 4);
    CHECK_EQ(decode(api, ver, b->w.buf, b->w.len, &in_d), 0);
    CHECK_EQ(decode(api, ver, out.buf + 4, out.len - 4, &out_d), 0);
    CHECK_EQ(out_d.n, n);
    for (int i = 0; i < n && i < out_d.n; i++) {
        char want[64];
        CHECK_EQ(out_d.node_id[i], eps[i].node_id);
        if (eps[i].node_id < 0 || mode == MAP_SAME) {
            CHECK_EQ(out_d.port[i], eps[i].port);
            CHECK_EQ(out_d.host[i].len, (int32_t)strlen(eps[i].host));
            CHECK(memcmp(out_d.host[i].ptr, eps[i].host, strlen(eps[i].host)) == 0);
        } else {
            expected_host(mode, eps[i].node_id, want, sizeof(want));
            CHECK_EQ(out_d.port[i], 19000 + eps[i].node_id);
            CHECK_EQ(out_d.host[i].len, (int32_t)strlen(want));
            CHECK(out_d.host[i].len == (int32_t)strlen(want) &&
                  memcmp(out_d.host[i].ptr, want, strlen(want)) == 0);
        }
        if (eps[i].node_id >= 0)
            expect_calls++;
    }
    CHECK_EQ(m.calls, expect_calls);
    /* the tail (topics etc.) is byte-identical */
    CHECK_EQ(in_d.tail_off, b->tail_off);
    CHECK_EQ(out.len - 4 - out_d.tail_off, b->w.len - b->tail_off);
    CHECK(out.len - 4 - out_d.tail_off == b->w.len - b->tail_off &&
          memcmp(out.buf + 4 + out_d.tail_off, b->w.buf + b->tail_off, b->w.len - b->tail_off) ==
              0);
    /* the head before the first endpoint too: correlation id, throttle... */
    CHECK(memcmp(out.buf + 4, b->w.buf, 4) == 0);
    if (mode == MAP_SAME) {
        CHECK_EQ(out.len - 4, b->w.len);
        CHECK(memcmp(out.buf + 4, b->w.buf, b->w.len) == 0);
    }
    kw_free(&out);
}

/* Every strict prefix fails before parsed_end, succeeds from it on. */
static void check_truncation(int16_t api, int ver, built_t *b)
{
    kwriter_t out;
    int bad = 0;
    kw_init(&out, 0);
    for (size_t cut = 0; cut < b->w.len; cut++) {
        mapctx_t m = {.mode = MAP_LONG};
        const char *err = NULL;
        /* a fresh heap copy so ASan sees any read past the cut */
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b->w.buf, cut);
        kw_reset(&out);
        int rc = krewrite_response(api, (int16_t)ver, copy, cut, map_cb, &m, &out, &err);
        int want = cut < b->parsed_end ? -1 : 0;
        if (rc != want) {
            bad++;
            fprintf(stderr, "  api %d v%d cut %zu: rc %d want %d\n", api, ver, cut, rc, want);
        }
        if (rc < 0 && (out.len != 0 || err == NULL))
            bad++;
        free(copy);
    }
    CHECK_EQ(bad, 0);
    kw_free(&out);
}

static void run_all_modes(int16_t api, int ver, built_t *b, const ep_t *eps, int n)
{
    check_rewrite(api, ver, b, MAP_LONG, eps, n);
    check_rewrite(api, ver, b, MAP_SHORT, eps, n);
    check_rewrite(api, ver, b, MAP_SAME, eps, n);
    check_truncation(api, ver, b);
}

static void test_metadata(void)
{
    static const int vers[] = {0, 1, 2, 3, 5, 7, 8, 9, 10, 11, 12};
    for (size_t i = 0; i < sizeof(vers) / sizeof(vers[0]); i++) {
        built_t b;
        build_metadata(&b, vers[i], brokers3, 3, 2);
        run_all_modes(KAPI_Metadata, vers[i], &b, brokers3, 3);
        kw_free(&b.w);
        /* no brokers at all */
        build_metadata(&b, vers[i], brokers3, 0, 1);
        run_all_modes(KAPI_Metadata, vers[i], &b, brokers3, 0);
        kw_free(&b.w);
    }
}

static void test_findcoordinator(void)
{
    static const ep_t err_ep[] = {{-1, "", -1, NULL}};
    static const ep_t mixed[] = {
        {2, "b2", 9093, NULL}, {-1, "", -1, NULL}, {3, "broker-3", 9094, NULL}};
    for (int ver = 0; ver <= 3; ver++) {
        built_t b;
        build_findcoord(&b, ver, &brokers3[0], 0);
        run_all_modes(KAPI_FindCoordinator, ver, &b, brokers3, 1);
        kw_free(&b.w);
        /* an error answer is copied as it is, without calling the map */
        build_findcoord(&b, ver, &err_ep[0], 15);
        run_all_modes(KAPI_FindCoordinator, ver, &b, err_ep, 1);
        kw_free(&b.w);
    }
    built_t b;
    build_findcoord4(&b, mixed, 3);
    run_all_modes(KAPI_FindCoordinator, 4, &b, mixed, 3);
    kw_free(&b.w);
    build_findcoord4(&b, mixed, 0);
    run_all_modes(KAPI_FindCoordinator, 4, &b, mixed, 0);
    kw_free(&b.w);
}

static void test_describecluster(void)
{
    for (int ver = 0; ver <= 1; ver++) {
        built_t b;
        build_describecluster(&b, ver, brokers3, 3);
        run_all_modes(KAPI_DescribeCluster, ver, &b, brokers3, 3);
        kw_free(&b.w);
    }
}

/* Rejections, unsupported versions, pass-through of other APIs. */
static void test_edges(void)
{
    built_t b;
    kwriter_t out;
    mapctx_t m = {.mode = MAP_REJECT};
    const char *err = NULL;

    kw_init(&out, 0);
    build_metadata(&b, 1, brokers3, 3, 1);
    CHECK_EQ(krewrite_response(KAPI_Metadata, 1, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    CHECK(err && strcmp(err, "endpoint rejected") == 0);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(m.calls, 1);

    /* map NULL: copied unchanged */
    CHECK_EQ(krewrite_response(KAPI_Metadata, 1, b.w.buf, b.w.len, NULL, NULL, &out, &err), 0);
    CHECK(out.len == b.w.len + 4 && memcmp(out.buf + 4, b.w.buf, b.w.len) == 0);

    /* appends after existing content */
    m.mode = MAP_SHORT;
    size_t before = out.len;
    CHECK_EQ(krewrite_response(KAPI_Metadata, 1, b.w.buf, b.w.len, map_cb, &m, &out, &err), 0);
    CHECK_EQ(kbe32(out.buf + before), (int64_t)(out.len - before - 4));
    kw_reset(&out);

    CHECK_EQ(krewrite_response(KAPI_Metadata, 13, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    CHECK_EQ(krewrite_response(KAPI_Metadata, -1, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    CHECK_EQ(krewrite_response(KAPI_FindCoordinator, 5, b.w.buf, b.w.len, map_cb, &m, &out, &err),
             -1);
    CHECK_EQ(out.len, 0);

    /* a null Brokers array is malformed */
    kw_reset(&b.w);
    kw_i32(&b.w, 1);
    kw_array(&b.w, 0, -1);
    CHECK_EQ(krewrite_response(KAPI_Metadata, 0, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    /* a huge count */
    kw_reset(&b.w);
    kw_i32(&b.w, 1);
    kw_i32(&b.w, 0x7fffffff);
    CHECK_EQ(krewrite_response(KAPI_Metadata, 0, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    /* a null host is malformed */
    kw_reset(&b.w);
    kw_i32(&b.w, 1);
    kw_i32(&b.w, 1);
    kw_i32(&b.w, 1);
    kw_i16(&b.w, -1);
    kw_i32(&b.w, 9092);
    CHECK_EQ(krewrite_response(KAPI_Metadata, 0, b.w.buf, b.w.len, map_cb, &m, &out, &err), -1);
    kw_free(&b.w);

    /* other APIs are copied unchanged */
    static const uint8_t produce[] = {0, 0, 0, 9, 0, 0, 0, 0, 0xab};
    CHECK_EQ(krewrite_needed(KAPI_Produce), 0);
    CHECK_EQ(krewrite_needed(KAPI_Metadata), 1);
    CHECK_EQ(krewrite_needed(KAPI_FindCoordinator), 1);
    CHECK_EQ(krewrite_needed(KAPI_DescribeCluster), 1);
    CHECK_EQ(krewrite_response(KAPI_Produce, 7, produce, sizeof(produce), map_cb, &m, &out, &err),
             0);
    CHECK(out.len == sizeof(produce) + 4 && memcmp(out.buf + 4, produce, sizeof(produce)) == 0);
    CHECK_EQ(kbe32(out.buf), (int32_t)sizeof(produce));
    kw_free(&out);
}

/* A Metadata response with thousands of partitions rewrites quickly. */
static void test_large(void)
{
    built_t b;
    kwriter_t out;
    mapctx_t m = {.mode = MAP_LONG};
    const char *err = NULL;

    build_metadata(&b, 12, brokers3, 3, 3000);
    kw_init(&out, 0);
    for (int i = 0; i < 100; i++) {
        kw_reset(&out);
        m.calls = 0;
        CHECK_EQ(krewrite_response(KAPI_Metadata, 12, b.w.buf, b.w.len, map_cb, &m, &out, &err), 0);
    }
    check_rewrite(KAPI_Metadata, 12, &b, MAP_LONG, brokers3, 3);
    kw_free(&out);
    kw_free(&b.w);
}

/* ---- golden frames from real clients ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Parses "<client>-<Api>-v<N>-<req|resp>.bin". Returns 0 on success. */
static int golden_name(const char *name, int16_t *api, int *ver, int *is_resp)
{
    char api_name[64];
    const char *dash = strchr(name, '-');
    if (!dash || sscanf(dash + 1, "%63[A-Za-z]-v%d", api_name, ver) != 2)
        return -1;
    *is_resp = strstr(name, "-resp.bin") != NULL;
    for (int16_t k = 0; k < KAPI_MAX; k++) {
        if (strcmp(kproto_api_name(k), api_name) == 0) {
            *api = k;
            return 0;
        }
    }
    return -1;
}

static void golden_rewrite(const char *name, int16_t api, int ver, const uint8_t *p, size_t len)
{
    kwriter_t out;
    mapctx_t m = {.mode = MAP_LONG};
    const char *err = NULL;
    decoded_t in_d, out_d;

    kw_init(&out, 0);
    int rc = krewrite_response(api, (int16_t)ver, p, len, map_cb, &m, &out, &err);
    CHECK_EQ(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s: %s\n", name, err);
        kw_free(&out);
        return;
    }
    CHECK_EQ(kbe32(out.buf), (int64_t)out.len - 4);
    CHECK_EQ(decode(api, ver, p, len, &in_d), 0);
    CHECK_EQ(decode(api, ver, out.buf + 4, out.len - 4, &out_d), 0);
    CHECK_EQ(in_d.n, out_d.n);
    CHECK(in_d.n >= 1);
    CHECK_EQ(m.calls, in_d.n);
    for (int i = 0; i < out_d.n; i++) {
        char want[64];
        expected_host(MAP_LONG, in_d.node_id[i], want, sizeof(want));
        CHECK_EQ(out_d.node_id[i], in_d.node_id[i]);
        CHECK_EQ(out_d.port[i], 19000 + in_d.node_id[i]);
        CHECK(out_d.host[i].len == (int32_t)strlen(want) &&
              memcmp(out_d.host[i].ptr, want, strlen(want)) == 0);
    }
    CHECK(out.len - 4 - out_d.tail_off == len - in_d.tail_off &&
          memcmp(out.buf + 4 + out_d.tail_off, p + in_d.tail_off, len - in_d.tail_off) == 0);
    kw_free(&out);
}

/* Captured requests: the header names the file's API and version, and the
 * body passes kproto's validator (what the proxy checks before forwarding). */
static void golden_request(const char *name, int16_t api, int ver, const uint8_t *p, size_t len)
{
    kreq_hdr_t h;
    const char *err = NULL;
    size_t err_off = 0;
    int rc = kproto_parse_request_header(p, len, &h, &err);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(h.api_key, api);
        CHECK_EQ(h.api_version, ver);
        rc = kproto_validate_request(&h, p, len, &err_off, &err);
        CHECK_EQ(rc, 0);
    }
    if (rc != 0)
        fprintf(stderr, "  %s: %s at %zu\n", name, err, err_off);
}

static void test_golden(void)
{
    DIR *d = opendir(GOLDEN_DIR);
    int rewritten = 0, apiversions = 0, requests = 0;
    CHECK(d != NULL);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int16_t api;
        int ver, is_resp;
        char path[512];
        size_t len;
        if (!strstr(e->d_name, ".bin") || golden_name(e->d_name, &api, &ver, &is_resp) < 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, e->d_name);
        uint8_t *p = read_file(path, &len);
        CHECK(p != NULL);
        if (!p)
            continue;
        if (!is_resp) {
            golden_request(e->d_name, api, ver, p, len);
            requests++;
        } else if (krewrite_needed(api)) {
            golden_rewrite(e->d_name, api, ver, p, len);
            rewritten++;
        } else if (api == KAPI_ApiVersions) {
            kver_range_t ranges[KAPI_MAX];
            int rc = kproto_apiversions_parse((int16_t)ver, p, len, ranges);
            CHECK(rc == 0 || rc == 35);
            if (rc == 0)
                CHECK(ranges[KAPI_Produce].max_ver >= 7 && ranges[KAPI_Metadata].max_ver >= 1);
            apiversions++;
        } else {
            /* everything else passes through byte for byte */
            kwriter_t out;
            const char *err = NULL;
            kw_init(&out, 0);
            CHECK_EQ(krewrite_response(api, (int16_t)ver, p, len, NULL, NULL, &out, &err), 0);
            CHECK(out.len == len + 4 && memcmp(out.buf + 4, p, len) == 0);
            kw_free(&out);
        }
        free(p);
    }
    closedir(d);
    CHECK(rewritten >= 8);
    CHECK(apiversions >= 4);
    CHECK(requests >= 40);
    printf("golden: %d responses rewritten, %d ApiVersions parsed, %d requests validated\n",
           rewritten, apiversions, requests);
}

int main(void)
{
    test_metadata();
    test_findcoordinator();
    test_describecluster();
    test_edges();
    test_large();
    test_golden();
    return unit_done("krewrite");
}
