/*
 * fuzz_response.c - libFuzzer target for the response codecs: endpoint
 * rewriting (krewrite_response) and ApiVersions decoding
 * (kproto_apiversions_parse).
 *
 * Input: byte 0 picks the API (mod 4: Metadata, FindCoordinator,
 * DescribeCluster, ApiVersions), byte 1 the version (as a signed byte, so
 * out-of-range versions are tried too); the rest is a response frame
 * without its size prefix. Seeds: tests/fuzz/seeds/resp-*.bin.
 *
 * Properties checked beyond "no crash, no out-of-bounds read":
 *  - a successful rewrite has a correct size prefix and rewrites again
 *    (its output is well-formed) to the same bytes;
 *  - a failed rewrite leaves the output buffer as it was;
 *  - a successfully parsed ApiVersions response survives build and parse.
 */
#include "kbuf.h"
#include "kproto.h"
#include "krewrite.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const int16_t apis[4] = {KAPI_Metadata, KAPI_FindCoordinator, KAPI_DescribeCluster,
                                KAPI_ApiVersions};

/* Maps every endpoint to a host longer than most, and a fixed port. */
static int map_long(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                    int32_t *new_port)
{
    static const char h[] = "eosproxy-sidecar-endpoint.very-long-domain.example.internal";
    (void)ctx;
    (void)host;
    (void)port;
    new_host->ptr = h;
    new_host->len = (int32_t)(sizeof(h) - 1);
    *new_port = 19000 + (node_id & 0xff);
    return 0;
}

static void fuzz_rewrite(int16_t api, int16_t ver, const uint8_t *frame, size_t len)
{
    kwriter_t out, again;
    const char *err = NULL;

    kw_init(&out, 0);
    kw_i8(&out, 0x5a); /* pre-existing content must survive */
    if (krewrite_response(api, ver, frame, len, map_long, NULL, &out, &err) != 0) {
        if (out.len != 1 || err == NULL)
            abort();
        kw_free(&out);
        return;
    }
    if (out.len < 5 || (size_t)kbe32(out.buf + 1) != out.len - 5)
        abort();
    /* the output is well-formed and a fixed point of the same map */
    kw_init(&again, 0);
    if (krewrite_response(api, ver, out.buf + 5, out.len - 5, map_long, NULL, &again, &err) != 0)
        abort();
    if (again.len != out.len - 1 || memcmp(again.buf, out.buf + 1, again.len) != 0)
        abort();
    kw_free(&again);
    kw_free(&out);
}

static void fuzz_apiversions(int16_t ver, const uint8_t *frame, size_t len)
{
    kver_range_t r[KAPI_MAX], again[KAPI_MAX];
    kwriter_t w;

    int rc = kproto_apiversions_parse(ver, frame, len, r);
    if (rc < 0 || rc == 35)
        return;
    kw_init(&w, 0);
    if (kproto_apiversions_build(&w, ver, 1, (int16_t)rc, r) != 0)
        abort();
    if (kproto_apiversions_parse(ver, w.buf + 4, w.len - 4, again) != rc)
        abort();
    for (int i = 0; i < KAPI_MAX; i++) {
        int present = r[i].min_ver <= r[i].max_ver;
        if (present && memcmp(&r[i], &again[i], sizeof(r[i])) != 0)
            abort();
    }
    kproto_apiversions_intersect(r, again);
    kw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int16_t api = apis[data[0] % 4];
    int16_t ver = (int8_t)data[1];
    const uint8_t *frame = data + 2;
    size_t len = size - 2;

    /* a private copy, so reads past len hit ASan's redzone */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, frame, len);
    if (api == KAPI_ApiVersions)
        fuzz_apiversions(ver, copy, len);
    else
        fuzz_rewrite(api, ver, copy, len);
    /* a response of an API that needs no rewrite is copied unchanged */
    fuzz_rewrite(KAPI_Produce, ver, copy, len);
    free(copy);
    return 0;
}
