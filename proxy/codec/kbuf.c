/*
 * kbuf.c - Kafka primitive types: sticky-error reader and growable writer.
 * See kbuf.h for the contract. No libevent here.
 */
#include "kbuf.h"

#include <stdlib.h>
#include <string.h>

#define KW_DEFAULT_MAX ((size_t)1 << 30)

void kr_init(kreader_t *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->off = 0;
    r->err = KR_OK;
    r->err_off = 0;
}

int kr_fail(kreader_t *r, int err)
{
    if (r->err == KR_OK) {
        r->err = err;
        r->err_off = r->off;
    }
    return 0;
}

const char *kr_strerror(int err)
{
    switch (err) {
    case KR_OK:
        return "ok";
    case KR_ESHORT:
        return "field runs past end of frame";
    case KR_EVARINT:
        return "malformed varint";
    case KR_ENEGLEN:
        return "negative length";
    case KR_ENULL:
        return "unexpected null";
    case KR_ECOUNT:
        return "array count exceeds frame";
    case KR_EINVALID:
        return "invalid value";
    }
    return "unknown error";
}

/* Returns a pointer to n readable bytes and advances, or NULL (error set). */
static const uint8_t *take(kreader_t *r, size_t n)
{
    if (r->err)
        return NULL;
    if (n > r->len - r->off) {
        kr_fail(r, KR_ESHORT);
        return NULL;
    }
    const uint8_t *p = r->buf + r->off;
    r->off += n;
    return p;
}

int8_t kr_i8(kreader_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t kr_i16(kreader_t *r)
{
    const uint8_t *p = take(r, 2);
    return p ? kbe16(p) : 0;
}

int32_t kr_i32(kreader_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? kbe32(p) : 0;
}

uint32_t kr_u32(kreader_t *r)
{
    return (uint32_t)kr_i32(r);
}

int64_t kr_i64(kreader_t *r)
{
    const uint8_t *p = take(r, 8);
    if (!p)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

/* Reads an unsigned LEB128 value of at most max_bytes bytes. */
static uint64_t read_uleb(kreader_t *r, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        v |= (uint64_t)(*p & 0x7f) << (7 * i);
        if (!(*p & 0x80))
            return v;
    }
    kr_fail(r, KR_EVARINT);
    return 0;
}

uint32_t kr_uvarint(kreader_t *r)
{
    uint64_t v = read_uleb(r, 5);
    if (v > UINT32_MAX) {
        kr_fail(r, KR_EVARINT);
        return 0;
    }
    return (uint32_t)v;
}

int32_t kr_varint(kreader_t *r)
{
    uint64_t v = read_uleb(r, 5);
    if (v > UINT32_MAX) {
        kr_fail(r, KR_EVARINT);
        return 0;
    }
    uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t kr_varlong(kreader_t *r)
{
    uint64_t u = read_uleb(r, 10);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Length prefix of a string/bytes: -1 for null, else the length. */
static int64_t read_len(kreader_t *r, int flex, int wide)
{
    if (flex) {
        uint32_t n = kr_uvarint(r);
        return (int64_t)n - 1;
    }
    return wide ? (int64_t)kr_i32(r) : (int64_t)kr_i16(r);
}

kstr_t kr_str(kreader_t *r, int flex)
{
    kstr_t s = {NULL, -1};
    int64_t n = read_len(r, flex, 0);
    if (r->err || n == -1)
        return s;
    if (n < -1 || n > INT16_MAX) {
        kr_fail(r, KR_ENEGLEN);
        return s;
    }
    const uint8_t *p = take(r, (size_t)n);
    if (p) {
        s.ptr = (const char *)p;
        s.len = (int32_t)n;
    }
    return s;
}

kstr_t kr_str_nn(kreader_t *r, int flex)
{
    kstr_t s = kr_str(r, flex);
    if (!r->err && s.len < 0)
        kr_fail(r, KR_ENULL);
    return s;
}

kbytes_t kr_bytes(kreader_t *r, int flex)
{
    kbytes_t b = {NULL, -1};
    int64_t n = read_len(r, flex, 1);
    if (r->err || n == -1)
        return b;
    if (n < -1 || n > INT32_MAX) {
        kr_fail(r, KR_ENEGLEN);
        return b;
    }
    const uint8_t *p = take(r, (size_t)n);
    if (p) {
        b.ptr = p;
        b.len = (int32_t)n;
    }
    return b;
}

const uint8_t *kr_skip(kreader_t *r, size_t n)
{
    return take(r, n);
}

int32_t kr_array(kreader_t *r, int flex, size_t min_elem_size)
{
    int64_t n = flex ? (int64_t)kr_uvarint(r) - 1 : (int64_t)kr_i32(r);
    if (r->err)
        return 0;
    if (n == -1)
        return -1;
    if (n < -1) {
        kr_fail(r, KR_ENEGLEN);
        return 0;
    }
    if (min_elem_size == 0)
        min_elem_size = 1;
    if ((uint64_t)n > (r->len - r->off) / min_elem_size) {
        kr_fail(r, KR_ECOUNT);
        return 0;
    }
    return (int32_t)n;
}

int32_t kr_array_alloc(kreader_t *r, int flex, int nullable, size_t min_elem_size, size_t elem_size,
                       void **out)
{
    *out = NULL;
    int32_t n = kr_array(r, flex, min_elem_size);
    if (!kr_ok(r))
        return 0;
    if (n < 0) {
        if (!nullable)
            kr_fail(r, KR_ENULL);
        return nullable ? -1 : 0;
    }
    if (n == 0)
        return 0;
    *out = calloc((size_t)n, elem_size);
    if (!*out) {
        kr_fail(r, KR_ECOUNT);
        return 0;
    }
    return n;
}

void kr_tags_if(kreader_t *r, int flex)
{
    if (flex)
        kr_tags(r);
}

void kr_expect_end(kreader_t *r)
{
    if (kr_ok(r) && r->off != r->len)
        kr_fail(r, KR_EINVALID);
}

void kr_tags(kreader_t *r)
{
    uint32_t n = kr_uvarint(r);
    if (n > kr_remaining(r) / 2) { /* each tag takes >= 2 bytes */
        kr_fail(r, KR_ECOUNT);
        return;
    }
    for (uint32_t i = 0; i < n && !r->err; i++) {
        (void)kr_uvarint(r); /* tag */
        uint32_t sz = kr_uvarint(r);
        take(r, sz);
    }
}

/* ---- writer ---- */

void kw_init(kwriter_t *w, size_t initial_cap)
{
    memset(w, 0, sizeof(*w));
    if (initial_cap) {
        w->buf = malloc(initial_cap);
        if (w->buf)
            w->cap = initial_cap;
        else
            w->err = 1;
    }
}

void kw_free(kwriter_t *w)
{
    if (!w)
        return;
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

uint8_t *kw_detach(kwriter_t *w, size_t *len)
{
    uint8_t *p = w->buf;
    if (len)
        *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return p;
}

void kw_reset(kwriter_t *w)
{
    w->len = 0;
    w->err = 0;
}

/* Makes room for n more bytes; returns 0 on success (err set otherwise). */
static int reserve(kwriter_t *w, size_t n)
{
    size_t max = w->max ? w->max : KW_DEFAULT_MAX;
    if (w->err)
        return -1;
    if (n > max - w->len) {
        w->err = 1;
        return -1;
    }
    if (w->len + n <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *p = realloc(w->buf, cap);
    if (!p) {
        w->err = 1;
        return -1;
    }
    w->buf = p;
    w->cap = cap;
    return 0;
}

void kw_raw(kwriter_t *w, const void *p, size_t n)
{
    if (n == 0 || reserve(w, n))
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void kw_i8(kwriter_t *w, int8_t v)
{
    uint8_t b = (uint8_t)v;
    kw_raw(w, &b, 1);
}

void kw_i16(kwriter_t *w, int16_t v)
{
    uint8_t b[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    kw_raw(w, b, 2);
}

void kw_i32(kwriter_t *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    uint8_t b[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u};
    kw_raw(w, b, 4);
}

void kw_i64(kwriter_t *w, int64_t v)
{
    uint8_t b[8];
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)u;
        u >>= 8;
    }
    kw_raw(w, b, 8);
}

static void write_uleb(kwriter_t *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        b[n++] = c | (v ? 0x80 : 0);
    } while (v);
    kw_raw(w, b, n);
}

void kw_uvarint(kwriter_t *w, uint32_t v)
{
    write_uleb(w, v);
}

void kw_varint(kwriter_t *w, int32_t v)
{
    write_uleb(w, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

void kw_varlong(kwriter_t *w, int64_t v)
{
    write_uleb(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void kw_str(kwriter_t *w, int flex, const char *s, int32_t len)
{
    if (len < 0) {
        if (flex)
            kw_uvarint(w, 0);
        else
            kw_i16(w, -1);
        return;
    }
    if (flex)
        kw_uvarint(w, (uint32_t)len + 1);
    else
        kw_i16(w, (int16_t)len);
    kw_raw(w, s, (size_t)len);
}

void kw_kstr(kwriter_t *w, int flex, kstr_t s)
{
    kw_str(w, flex, s.ptr, s.len);
}

void kw_bytes(kwriter_t *w, int flex, const void *p, int32_t len)
{
    if (len < 0) {
        if (flex)
            kw_uvarint(w, 0);
        else
            kw_i32(w, -1);
        return;
    }
    if (flex)
        kw_uvarint(w, (uint32_t)len + 1);
    else
        kw_i32(w, len);
    kw_raw(w, p, (size_t)len);
}

void kw_array(kwriter_t *w, int flex, int32_t n)
{
    if (flex)
        kw_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        kw_i32(w, n);
}

void kw_tags_empty(kwriter_t *w)
{
    kw_i8(w, 0);
}

void kw_patch_i32(kwriter_t *w, size_t off, int32_t v)
{
    if (w->err || off + 4 > w->len)
        return;
    uint32_t u = (uint32_t)v;
    w->buf[off] = (uint8_t)(u >> 24);
    w->buf[off + 1] = (uint8_t)(u >> 16);
    w->buf[off + 2] = (uint8_t)(u >> 8);
    w->buf[off + 3] = (uint8_t)u;
}

int kw_finish_frame(kwriter_t *w, size_t start)
{
    if (w->err || w->len - start - 4 > (size_t)INT32_MAX) {
        if (!w->err)
            w->len = start;
        return -1;
    }
    kw_patch_i32(w, start, (int32_t)(w->len - start - 4));
    return w->err ? -1 : 0;
}

int kr_result(const kreader_t *r, size_t *err_off)
{
    if (kr_ok(r))
        return 0;
    if (err_off)
        *err_off = r->err_off;
    return r->err;
}
