/*
 * kbuf.h - Kafka primitive types on the wire.
 *
 * A bounds-checked reader with a sticky error (every read becomes a no-op
 * returning zero once an error is set; the caller checks kr_ok() once at the
 * end) and a growable writer for the few bodies eosproxy re-encodes.
 *
 * Pure codec: no libevent, no I/O. All integers are big-endian as in Kafka.
 * Strings and bytes returned by the reader are views into the caller's
 * buffer: they live as long as that buffer does; copy what you keep.
 *
 * "flex" arguments select the compact encodings of KIP-482 (flexible
 * versions): lengths as unsigned varints holding N+1, 0 meaning null.
 */
#ifndef EOSPROXY_KBUF_H
#define EOSPROXY_KBUF_H

#include <stddef.h>
#include <stdint.h>

/* A view of a Kafka STRING / NULLABLE_STRING. len == -1 means null. */
typedef struct kstr {
    const char *ptr;
    int32_t len;
} kstr_t;

/* A view of Kafka BYTES / NULLABLE_BYTES / RECORDS. len == -1 means null. */
typedef struct kbytes {
    const uint8_t *ptr;
    int32_t len;
} kbytes_t;

/* Why a reader stopped. KR_OK is 0. */
enum kr_err {
    KR_OK = 0,
    KR_ESHORT,   /* a field runs past the end of the buffer */
    KR_EVARINT,  /* varint longer than allowed or overflowing */
    KR_ENEGLEN,  /* a negative length other than -1 (null) */
    KR_ENULL,    /* null where the schema does not allow it */
    KR_ECOUNT,   /* array count that cannot fit in the bytes left */
    KR_EINVALID, /* a value outside its domain (caller-set) */
};

/* Bounds-checked reader over [buf, buf+len). */
typedef struct kreader {
    const uint8_t *buf;
    size_t len;
    size_t off;     /* next byte to read */
    int err;        /* enum kr_err; sticky */
    size_t err_off; /* offset at which the first error was raised */
} kreader_t;

void kr_init(kreader_t *r, const void *buf, size_t len);
/* Sets the sticky error (first one wins) and returns 0 for convenience. */
int kr_fail(kreader_t *r, int err);
static inline int kr_ok(const kreader_t *r)
{
    return r->err == KR_OK;
}
static inline size_t kr_remaining(const kreader_t *r)
{
    return r->err ? 0 : r->len - r->off;
}
const char *kr_strerror(int err);

int8_t kr_i8(kreader_t *r);
int16_t kr_i16(kreader_t *r);
int32_t kr_i32(kreader_t *r);
int64_t kr_i64(kreader_t *r);
uint32_t kr_u32(kreader_t *r);
/* Unsigned varint, at most 5 bytes (Kafka's UNSIGNED_VARINT is 32-bit). */
uint32_t kr_uvarint(kreader_t *r);
/* Zig-zag signed varint, at most 5 bytes (Kafka VARINT). */
int32_t kr_varint(kreader_t *r);
/* Zig-zag signed varint, at most 10 bytes (Kafka VARLONG). */
int64_t kr_varlong(kreader_t *r);

/* STRING or COMPACT_STRING (flex). Null (len -1) is returned as such; use
 * kr_str_nn() where null is not allowed. */
kstr_t kr_str(kreader_t *r, int flex);
kstr_t kr_str_nn(kreader_t *r, int flex);
/* BYTES or COMPACT_BYTES (flex); null allowed (len -1). */
kbytes_t kr_bytes(kreader_t *r, int flex);
/* Returns a pointer to the next n bytes and skips them, or NULL on error. */
const uint8_t *kr_skip(kreader_t *r, size_t n);

/*
 * Array length: INT32 (or COMPACT uvarint N+1 when flex). Returns the count,
 * -1 for a null array (0 returned on error). The count is bounded by the
 * bytes left: count * min_elem_size must fit, so a hostile count can never
 * make a caller loop or allocate beyond the frame. min_elem_size >= 1.
 */
int32_t kr_array(kreader_t *r, int flex, size_t min_elem_size);

/*
 * Array count plus storage: reads the count (as kr_array) and callocs
 * count elements of elem_size into *out (NULL for 0 or null). A null
 * array gives -1 when nullable, else KR_ENULL; an allocation failure sets
 * KR_ECOUNT. Returns the count (0 on error). The caller frees *out.
 */
int32_t kr_array_alloc(kreader_t *r, int flex, int nullable, size_t min_elem_size, size_t elem_size,
                       void **out);

/* Skips a TAGGED_FIELDS section (only called for flexible versions). */
void kr_tags(kreader_t *r);
/* kr_tags when flex, nothing otherwise. */
void kr_tags_if(kreader_t *r, int flex);
/* Trailing bytes after a complete body are an error (KR_EINVALID). */
void kr_expect_end(kreader_t *r);
/*
 * The end of a parse: 0 when the reader is fine, else its error (enum
 * kr_err), with the offset where it was raised in *err_off (if not NULL).
 * The caller then frees what it had parsed.
 */
int kr_result(const kreader_t *r, size_t *err_off);

/* Growable output buffer. err is set (and sticky) on allocation failure or
 * when the buffer would grow past max. */
typedef struct kwriter {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len; 0 means 1 GiB */
    int err;
} kwriter_t;

void kw_init(kwriter_t *w, size_t initial_cap);
/* Frees the buffer; safe on a zeroed or already-freed writer. */
void kw_free(kwriter_t *w);
/* Hands the buffer to the caller (who frees it with free()); resets w. */
uint8_t *kw_detach(kwriter_t *w, size_t *len);
void kw_reset(kwriter_t *w);

void kw_raw(kwriter_t *w, const void *p, size_t n);
void kw_i8(kwriter_t *w, int8_t v);
void kw_i16(kwriter_t *w, int16_t v);
void kw_i32(kwriter_t *w, int32_t v);
void kw_i64(kwriter_t *w, int64_t v);
void kw_uvarint(kwriter_t *w, uint32_t v);
void kw_varint(kwriter_t *w, int32_t v);
void kw_varlong(kwriter_t *w, int64_t v);
/* STRING / COMPACT_STRING; len -1 writes null. */
void kw_str(kwriter_t *w, int flex, const char *s, int32_t len);
void kw_kstr(kwriter_t *w, int flex, kstr_t s);
/* BYTES / COMPACT_BYTES; len -1 writes null. */
void kw_bytes(kwriter_t *w, int flex, const void *p, int32_t len);
/* Array length; n -1 writes null. */
void kw_array(kwriter_t *w, int flex, int32_t n);
/* Empty TAGGED_FIELDS (a single 0 byte). */
void kw_tags_empty(kwriter_t *w);
/* Overwrites 4 bytes at off (already written) with v, big-endian. */
void kw_patch_i32(kwriter_t *w, size_t off, int32_t v);
/*
 * Ends a frame whose INT32 size prefix was written at start: patches the
 * prefix with the bytes after it. Returns 0, or -1 when the writer failed
 * or the frame passes INT32_MAX (w is then rolled back to start).
 */
int kw_finish_frame(kwriter_t *w, size_t start);

/* Big-endian loads for code that peeks at raw frames. */
static inline int32_t kbe32(const uint8_t *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}
static inline int16_t kbe16(const uint8_t *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

#endif
