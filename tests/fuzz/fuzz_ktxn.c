/*
 * fuzz_ktxn.c - libFuzzer target for the transaction coordinator response
 * parsers (ktxn.h): FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn,
 * EndTxn and TxnOffsetCommit.
 *
 * Input: byte 0's low 4 bits give a key length k, bytes 1..k the key that
 * v4+ FindCoordinator responses are searched for; the rest is a response
 * frame without its size prefix. Every input is parsed as each of the five
 * responses at every version from -1 to max+1. Seeds:
 * tests/fuzz/seeds/ktxn-*.bin.
 *
 * Properties checked beyond "no crash, no out-of-bounds read, no leak":
 *  - versions outside an API's range give KR_EINVALID;
 *  - a failed parse leaves nothing to free (results NULL, count 0) and a
 *    reset coordinator;
 *  - parsed strings lie inside the frame;
 *  - a successful parse, written back with the response writer and parsed
 *    again, gives the same values.
 */
#include "kbuf.h"
#include "ktxn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t *g_frame;
static size_t g_len;

static void check_in_frame(kstr_t s)
{
    if (s.len < -1)
        abort();
    if (s.len <= 0)
        return;
    const uint8_t *p = (const uint8_t *)s.ptr;
    if (p < g_frame || p + s.len > g_frame + g_len)
        abort();
}

static int same_str(kstr_t a, kstr_t b)
{
    if (a.len != b.len)
        return 0;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

static int same_results(const ktxn_part_result_t *a, const ktxn_part_result_t *b, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (!same_str(a[i].topic, b[i].topic) || a[i].partition != b[i].partition ||
            a[i].error_code != b[i].error_code)
            return 0;
    return 1;
}

static void fuzz_findcoord(int16_t ver, kstr_t key)
{
    ktxn_coord_t c, again;
    int rc = ktxn_findcoord_resp_parse(ver, g_frame, g_len, key, &c);
    if (ver < 0 || ver > KTXN_FINDCOORD_MAX_VERSION) {
        if (rc != KR_EINVALID)
            abort();
        return;
    }
    if (rc != 0) {
        if (c.node_id != -1 || c.port != -1 || c.host.len != -1 || c.error_message.len != -1)
            abort();
        return;
    }
    check_in_frame(c.host);
    check_in_frame(c.error_message);
    if (c.host.len < 0 || (ver == 0 && c.error_message.len != -1))
        abort();
    kwriter_t w;
    kw_init(&w, 0);
    if (ktxn_findcoord_resp_write(&w, ver, 1, 0, &key, &c, 1) != 0)
        abort();
    if (ktxn_findcoord_resp_parse(ver, w.buf + 4, w.len - 4, key, &again) != 0)
        abort();
    if (again.error_code != c.error_code || again.node_id != c.node_id || again.port != c.port ||
        !same_str(again.host, c.host) || !same_str(again.error_message, c.error_message))
        abort();
    kw_free(&w);
}

static void fuzz_addparts(int16_t ver)
{
    ktxn_addparts_resp_t r, again;
    int rc = ktxn_addparts_resp_parse(ver, g_frame, g_len, &r);
    if (ver < 0 || ver > KTXN_ADDPARTS_MAX_VERSION) {
        if (rc != KR_EINVALID)
            abort();
        return;
    }
    if (rc != 0) {
        if (r.results != NULL || r.nresults != 0)
            abort();
        return;
    }
    if (r.nresults < 0 || (r.nresults > 0) != (r.results != NULL) ||
        (ver < KTXN_ADDPARTS_BATCH_VERSION && r.error_code != 0))
        abort();
    for (int32_t i = 0; i < r.nresults; i++)
        check_in_frame(r.results[i].topic);
    kwriter_t w;
    kw_init(&w, 0);
    if (ktxn_addparts_resp_write(&w, ver, (kstr_t){"t", 1}, &r) != 0)
        abort();
    if (ktxn_addparts_resp_parse(ver, w.buf + 4, w.len - 4, &again) != 0)
        abort();
    if (again.correlation_id != r.correlation_id || again.throttle_time_ms != r.throttle_time_ms ||
        again.error_code != r.error_code || again.nresults != r.nresults ||
        !same_results(again.results, r.results, r.nresults))
        abort();
    ktxn_addparts_resp_free(&again);
    ktxn_addparts_resp_free(&r);
    if (r.results != NULL || r.nresults != 0)
        abort();
    kw_free(&w);
}

static void fuzz_endtxn(int16_t ver)
{
    ktxn_endtxn_resp_t r, again;
    int rc = ktxn_endtxn_resp_parse(ver, g_frame, g_len, &r);
    if (ver < 0 || ver > KTXN_ENDTXN_MAX_VERSION) {
        if (rc != KR_EINVALID)
            abort();
        return;
    }
    if (rc != 0)
        return;
    if (ver < KTXN_ENDTXN_PID_VERSION && (r.producer_id != -1 || r.producer_epoch != -1))
        abort();
    kwriter_t w;
    kw_init(&w, 0);
    if (ktxn_endtxn_resp_write(&w, ver, &r) != 0)
        abort();
    if (ktxn_endtxn_resp_parse(ver, w.buf + 4, w.len - 4, &again) != 0)
        abort();
    if (again.correlation_id != r.correlation_id || again.throttle_time_ms != r.throttle_time_ms ||
        again.error_code != r.error_code || again.producer_id != r.producer_id ||
        again.producer_epoch != r.producer_epoch)
        abort();
    kw_free(&w);
}

static void fuzz_addoffsets(int16_t ver)
{
    ktxn_addoffsets_resp_t r, again;
    int rc = ktxn_addoffsets_resp_parse(ver, g_frame, g_len, &r);
    if (ver < 0 || ver > KTXN_ADDOFFSETS_MAX_VERSION) {
        if (rc != KR_EINVALID)
            abort();
        return;
    }
    if (rc != 0)
        return;
    kwriter_t w;
    kw_init(&w, 0);
    if (ktxn_addoffsets_resp_write(&w, ver, &r) != 0)
        abort();
    if (ktxn_addoffsets_resp_parse(ver, w.buf + 4, w.len - 4, &again) != 0)
        abort();
    if (again.correlation_id != r.correlation_id || again.throttle_time_ms != r.throttle_time_ms ||
        again.error_code != r.error_code)
        abort();
    kw_free(&w);
}

static void fuzz_txnoffset(int16_t ver)
{
    ktxn_txnoffset_resp_t r, again;
    int rc = ktxn_txnoffset_resp_parse(ver, g_frame, g_len, &r);
    if (ver < 0 || ver > KTXN_TXNOFFSET_MAX_VERSION) {
        if (rc != KR_EINVALID)
            abort();
        return;
    }
    if (rc != 0) {
        if (r.results != NULL || r.nresults != 0)
            abort();
        return;
    }
    for (int32_t i = 0; i < r.nresults; i++)
        check_in_frame(r.results[i].topic);
    kwriter_t w;
    kw_init(&w, 0);
    if (ktxn_txnoffset_resp_write(&w, ver, &r) != 0)
        abort();
    if (ktxn_txnoffset_resp_parse(ver, w.buf + 4, w.len - 4, &again) != 0)
        abort();
    if (again.correlation_id != r.correlation_id || again.throttle_time_ms != r.throttle_time_ms ||
        again.nresults != r.nresults || !same_results(again.results, r.results, r.nresults))
        abort();
    ktxn_txnoffset_resp_free(&again);
    ktxn_txnoffset_resp_free(&r);
    kw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t klen = data[0] & 0x0f;
    if (size < 1 + klen)
        return 0;
    /* private copies, so reads past either end hit ASan's redzone */
    char *key = malloc(klen ? klen : 1);
    size_t len = size - 1 - klen;
    uint8_t *frame = malloc(len ? len : 1);
    if (!key || !frame) {
        free(key);
        free(frame);
        return 0;
    }
    memcpy(key, data + 1, klen);
    memcpy(frame, data + 1 + klen, len);
    g_frame = frame;
    g_len = len;
    kstr_t k = {key, (int32_t)klen};

    for (int16_t v = -1; v <= KTXN_FINDCOORD_MAX_VERSION + 1; v++)
        fuzz_findcoord(v, k);
    for (int16_t v = -1; v <= KTXN_ADDPARTS_MAX_VERSION + 1; v++)
        fuzz_addparts(v);
    for (int16_t v = -1; v <= KTXN_ENDTXN_MAX_VERSION + 1; v++)
        fuzz_endtxn(v);
    for (int16_t v = -1; v <= KTXN_ADDOFFSETS_MAX_VERSION + 1; v++)
        fuzz_addoffsets(v);
    for (int16_t v = -1; v <= KTXN_TXNOFFSET_MAX_VERSION + 1; v++)
        fuzz_txnoffset(v);
    free(frame);
    free(key);
    return 0;
}
