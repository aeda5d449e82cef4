/*
 * fuzz_request.c - libFuzzer target for the request path of the codec.
 *
 * The input is one request frame (the bytes after the 4-byte size prefix):
 * parse the header, validate the body, read Produce acks, the way the
 * proxy does for every client request. Nothing here may crash, read out of
 * bounds or trip UBSan, whatever the bytes. Seeds: tests/fuzz/seeds/req-*.
 *
 * Invariants checked (abort on violation, so the fuzzer reports them):
 *  - a frame that validates has body_off <= size;
 *  - Produce acks of a valid Produce request is -1, 0 or 1, or -2 only
 *    when the acks value itself is out of range (never "malformed");
 *  - the error offset of a rejected body lies within the frame (+1).
 */
#include "kproto.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kreq_hdr_t h;
    const char *err = NULL;
    if (kproto_parse_request_header(data, size, &h, &err) != 0) {
        if (err == NULL)
            abort();
        return 0;
    }
    if (h.body_off > size)
        abort();
    size_t err_off = 0;
    int valid = kproto_validate_request(&h, data, size, &err_off, &err) == 0;
    if (!valid && (err == NULL || err_off > size))
        abort();
    int acks = kproto_produce_acks(&h, data, size);
    if (acks < -2 || acks > 1)
        abort();
    if (valid && h.api_key == KAPI_Produce && acks == -2) {
        /* Only an out-of-domain acks value may give -2 on a valid body. */
        kreader_t r;
        kr_init(&r, data, size);
        r.off = h.body_off;
        if (h.api_version >= 3)
            (void)kr_str(&r, kproto_is_flexible(h.api_key, h.api_version));
        int16_t raw = kr_i16(&r);
        if (!kr_ok(&r) || (raw >= -1 && raw <= 1))
            abort();
    }

    /* The response header parser on the same bytes, for every API. */
    int32_t corr;
    size_t off;
    (void)kproto_parse_response_header(h.api_key, h.api_version, data, size, &corr, &off);
    return 0;
}
