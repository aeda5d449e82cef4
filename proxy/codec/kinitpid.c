/*
 * kinitpid.c - InitProducerId request/response codec. See kinitpid.h for
 * the field layout.
 */
#include "kinitpid.h"

#include "kproto.h"

static int version_ok(int16_t ver)
{
    return ver >= KINITPID_MIN_VERSION && ver <= KINITPID_MAX_VERSION;
}

static int is_flex(int16_t ver)
{
    return ver >= KINITPID_FLEX_VERSION;
}

int kinitpid_req_write(kwriter_t *w, int16_t ver, int32_t correlation_id, kstr_t client_id,
                       const kinitpid_req_t *req)
{
    if (!version_ok(ver))
        return -1;
    if (ver < KINITPID_BUMP_VERSION && (req->producer_id != -1 || req->producer_epoch != -1))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0); /* size, patched below */
    kproto_write_request_header(w, KAPI_InitProducerId, ver, correlation_id, client_id);
    kw_kstr(w, flex, req->transactional_id);
    kw_i32(w, req->transaction_timeout_ms);
    if (ver >= KINITPID_BUMP_VERSION) {
        kw_i64(w, req->producer_id);
        kw_i16(w, req->producer_epoch);
    }
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

int kinitpid_req_parse(int16_t ver, const uint8_t *body, size_t len, kinitpid_req_t *req)
{
    req->transactional_id = (kstr_t){NULL, -1};
    req->transaction_timeout_ms = 0;
    req->producer_id = -1;
    req->producer_epoch = -1;
    if (!version_ok(ver))
        return KR_EINVALID;
    int flex = is_flex(ver);
    kreader_t r;
    kr_init(&r, body, len);
    req->transactional_id = kr_str(&r, flex);
    req->transaction_timeout_ms = kr_i32(&r);
    if (ver >= KINITPID_BUMP_VERSION) {
        req->producer_id = kr_i64(&r);
        req->producer_epoch = kr_i16(&r);
    }
    if (flex)
        kr_tags(&r);
    if (kr_ok(&r) && kr_remaining(&r) != 0)
        kr_fail(&r, KR_EINVALID);
    return r.err;
}

int kinitpid_resp_parse(int16_t ver, const uint8_t *frame, size_t len, kinitpid_resp_t *resp)
{
    *resp = (kinitpid_resp_t){0, 0, 0, -1, -1};
    if (!version_ok(ver))
        return KR_EINVALID;
    int flex = is_flex(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    resp->correlation_id = kr_i32(&r);
    if (flex)
        kr_tags(&r); /* response header v1 */
    resp->throttle_time_ms = kr_i32(&r);
    resp->error_code = kr_i16(&r);
    resp->producer_id = kr_i64(&r);
    resp->producer_epoch = kr_i16(&r);
    if (flex)
        kr_tags(&r);
    if (kr_ok(&r) && kr_remaining(&r) != 0)
        kr_fail(&r, KR_EINVALID);
    return r.err;
}

int kinitpid_resp_write(kwriter_t *w, int16_t ver, const kinitpid_resp_t *resp)
{
    if (!version_ok(ver))
        return -1;
    int flex = is_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, resp->correlation_id);
    if (flex)
        kw_tags_empty(w);
    kw_i32(w, resp->throttle_time_ms);
    kw_i16(w, resp->error_code);
    kw_i64(w, resp->producer_id);
    kw_i16(w, resp->producer_epoch);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}
