/*
 * krecord.c - RecordBatch v2 headers, producer-field rewrite, fingerprint
 * and CRC-32C (SSE4.2 instruction in three interleaved lanes, with a
 * slicing-by-8 fallback).
 * See krecord.h for the contracts. No libevent, no allocation.
 */
#include "krecord.h"

#include "kbuf.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KRECORD_X86 1
#include <nmmintrin.h>
#endif

/* ---- CRC-32C ---- */

/* Reflected Castagnoli polynomial. */
#define CRC32C_POLY 0x82F63B78u

/* Bytes per lane of the hardware path's three-lane loop (crc_three_lanes). */
#define CRC_LANE 4096u

static uint32_t crc_table[8][256];
static int crc_ready;
static int crc_hw;
static uint32_t crc_lane_op; /* x^(8 CRC_LANE) mod P */

static uint32_t crc_mul(uint32_t a, uint32_t b);
static uint32_t crc_zeros_op(uint64_t n);

/* Fills the slicing-by-8 tables: table[k][b] is the CRC of byte b followed
 * by k zero bytes. */
static void crc_tables_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
}

/*
 * Runs before main (so before any thread exists): builds the tables and
 * probes the CPU once. __builtin_cpu_init is required in constructors.
 */
__attribute__((constructor)) static void crc_init(void)
{
    crc_tables_init();
    crc_lane_op = crc_zeros_op(CRC_LANE);
#ifdef KRECORD_X86
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    crc_ready = 1;
}

/* Little-endian loads: one unaligned load on little-endian hosts. */
static inline uint64_t load_le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

static inline uint32_t load_le32(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
#endif
}

uint32_t krecord_crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    if (!crc_ready)
        crc_init();
    crc = ~crc;
    while (n >= 8) {
        uint64_t w = load_le64(p) ^ crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#ifdef KRECORD_X86
#ifdef __x86_64__
/*
 * The CRC register after three lanes of CRC_LANE bytes each at p, from
 * register c: the crc32 instruction takes 3 cycles and issues one per
 * cycle, so three independent chains run about three times as fast as
 * one. The lanes after the first start from 0 and are joined by
 * linearity: R(c, A B) = R(c, A) * x^(8 |B|) + R(0, B).
 */
__attribute__((target("sse4.2"))) static uint32_t crc_three_lanes(uint32_t c, const uint8_t *p)
{
    uint64_t a = c, b = 0, d = 0;
    for (size_t i = 0; i < CRC_LANE; i += 8) {
        uint64_t va, vb, vd;
        memcpy(&va, p + i, 8);
        memcpy(&vb, p + CRC_LANE + i, 8);
        memcpy(&vd, p + 2 * CRC_LANE + i, 8);
        a = _mm_crc32_u64(a, va);
        b = _mm_crc32_u64(b, vb);
        d = _mm_crc32_u64(d, vd);
    }
    uint32_t ab = crc_mul(crc_lane_op, (uint32_t)a) ^ (uint32_t)b;
    return crc_mul(crc_lane_op, ab) ^ (uint32_t)d;
}
#endif

__attribute__((target("sse4.2"))) uint32_t krecord_crc32c_hw(uint32_t crc, const void *buf,
                                                             size_t n)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
#ifdef __x86_64__
    for (; n >= 3 * CRC_LANE; p += 3 * CRC_LANE, n -= 3 * CRC_LANE)
        c = crc_three_lanes(c, p);
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* x86 is little-endian, unaligned loads are fine */
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
#endif
    while (n >= 4) {
        c = _mm_crc32_u32(c, load_le32(p));
        p += 4;
        n -= 4;
    }
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return ~c;
}
#else
uint32_t krecord_crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
    return krecord_crc32c_sw(crc, buf, n);
}
#endif

int krecord_crc32c_hw_available(void)
{
    if (!crc_ready)
        crc_init();
    return crc_hw;
}

uint32_t krecord_crc32c(uint32_t crc, const void *p, size_t n)
{
    if (!crc_ready)
        crc_init();
    return crc_hw ? krecord_crc32c_hw(crc, p, n) : krecord_crc32c_sw(crc, p, n);
}

/* ---- XXH64 ---- */

#define XXP1 0x9E3779B185EBCA87ull
#define XXP2 0xC2B2AE3D27D4EB4Full
#define XXP3 0x165667B19E3779F9ull
#define XXP4 0x85EBCA77C2B2AE63ull
#define XXP5 0x27D4EB2F165667C5ull

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t xx_round(uint64_t acc, uint64_t in)
{
    acc += in * XXP2;
    return rotl64(acc, 31) * XXP1;
}

static inline uint64_t xx_merge(uint64_t acc, uint64_t v)
{
    acc ^= xx_round(0, v);
    return acc * XXP1 + XXP4;
}

/* The 32-byte stripe loop; returns the merged accumulators. */
static uint64_t xx_stripes(const uint8_t **pp, size_t *np, uint64_t seed)
{
    const uint8_t *p = *pp;
    size_t n = *np;
    uint64_t v1 = seed + XXP1 + XXP2, v2 = seed + XXP2, v3 = seed, v4 = seed - XXP1;
    while (n >= 32) {
        v1 = xx_round(v1, load_le64(p));
        v2 = xx_round(v2, load_le64(p + 8));
        v3 = xx_round(v3, load_le64(p + 16));
        v4 = xx_round(v4, load_le64(p + 24));
        p += 32;
        n -= 32;
    }
    uint64_t h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
    h = xx_merge(h, v1);
    h = xx_merge(h, v2);
    h = xx_merge(h, v3);
    h = xx_merge(h, v4);
    *pp = p;
    *np = n;
    return h;
}

uint64_t krecord_xxh64(const void *buf, size_t n, uint64_t seed)
{
    const uint8_t *p = buf;
    uint64_t total = n;
    uint64_t h = n >= 32 ? xx_stripes(&p, &n, seed) : seed + XXP5;
    h += total;
    for (; n >= 8; p += 8, n -= 8) {
        h ^= xx_round(0, load_le64(p));
        h = rotl64(h, 27) * XXP1 + XXP4;
    }
    if (n >= 4) {
        h ^= (uint64_t)load_le32(p) * XXP1;
        h = rotl64(h, 23) * XXP2 + XXP3;
        p += 4;
        n -= 4;
    }
    for (; n > 0; p++, n--) {
        h ^= *p * XXP5;
        h = rotl64(h, 11) * XXP1;
    }
    h ^= h >> 33;
    h *= XXP2;
    h ^= h >> 29;
    h *= XXP3;
    h ^= h >> 32;
    return h;
}

/* ---- errors and attributes ---- */

const char *krecord_strerror(int err)
{
    switch (err) {
    case KREC_OK:
        return "ok";
    case KREC_ESHORT:
        return "record batch runs past the end of the records";
    case KREC_EMAGIC:
        return "record batch magic is not 2 (message format < 2)";
    case KREC_ELENGTH:
        return "record batch length below the v2 header size";
    case KREC_ECOUNT:
        return "record count invalid or inconsistent with lastOffsetDelta";
    case KREC_ECRC:
        return "record batch CRC mismatch";
    case KREC_ETOOMANY:
        return "too many record batches";
    case KREC_ENOBATCH:
        return "no record batch";
    case KREC_EMULTI:
        return "more than one record batch per partition";
    case KREC_EZSTD:
        return "zstd compression needs Produce v7 or later";
    }
    return "unknown record batch error";
}

int16_t krecord_kafka_error(int err)
{
    switch (err) {
    case KREC_OK:
        return 0;
    case KREC_ECRC:
        return 2; /* CORRUPT_MESSAGE */
    case KREC_EZSTD:
        return 76; /* UNSUPPORTED_COMPRESSION_TYPE */
    default:
        return 87; /* INVALID_RECORD */
    }
}

krecord_attrs_t krecord_attrs(int16_t attributes)
{
    uint16_t a = (uint16_t)attributes;
    krecord_attrs_t r;
    r.codec = a & KRECORD_ATTR_COMPRESSION_MASK;
    r.log_append_time = (a & KRECORD_ATTR_TIMESTAMP_TYPE) != 0;
    r.transactional = (a & KRECORD_ATTR_TRANSACTIONAL) != 0;
    r.control = (a & KRECORD_ATTR_CONTROL) != 0;
    r.delete_horizon = (a & KRECORD_ATTR_DELETE_HORIZON) != 0;
    return r;
}

/* ---- batches ---- */

static int64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static void put_be64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)u;
        u >>= 8;
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

uint32_t krecord_batch_crc(const uint8_t *batch, size_t size)
{
    if (size < KRECORD_HEADER_SIZE)
        return 0;
    return krecord_crc32c(0, batch + KRECORD_CRC_START, size - KRECORD_CRC_START);
}

void krecord_read_header(const uint8_t *p, krecord_batch_t *b)
{
    b->base_offset = be64(p + KREC_OFF_BASE_OFFSET);
    b->batch_length = kbe32(p + KREC_OFF_BATCH_LENGTH);
    b->partition_leader_epoch = kbe32(p + KREC_OFF_LEADER_EPOCH);
    b->magic = (int8_t)p[KREC_OFF_MAGIC];
    b->crc = (uint32_t)kbe32(p + KREC_OFF_CRC);
    b->attributes = kbe16(p + KREC_OFF_ATTRIBUTES);
    b->last_offset_delta = kbe32(p + KREC_OFF_LAST_OFFSET_DELTA);
    b->base_timestamp = be64(p + KREC_OFF_BASE_TIMESTAMP);
    b->max_timestamp = be64(p + KREC_OFF_MAX_TIMESTAMP);
    b->producer_id = be64(p + KREC_OFF_PRODUCER_ID);
    b->producer_epoch = kbe16(p + KREC_OFF_PRODUCER_EPOCH);
    b->base_sequence = kbe32(p + KREC_OFF_BASE_SEQUENCE);
    b->record_count = kbe32(p + KREC_OFF_RECORD_COUNT);
}

/*
 * RecordBatch v2 (KIP-98), all big-endian:
 *
 *   baseOffset INT64, batchLength INT32 (bytes after this field),
 *   partitionLeaderEpoch INT32, magic INT8 (= 2), crc UINT32 (CRC-32C of
 *   attributes..end), attributes INT16, lastOffsetDelta INT32,
 *   baseTimestamp INT64, maxTimestamp INT64, producerId INT64,
 *   producerEpoch INT16, baseSequence INT32, recordCount INT32,
 *   records (recordCount records, possibly compressed as one blob)
 *
 * Legacy messages (magic 0/1) keep magic at the same offset 16, so the
 * magic is checked first and refused with its own error. recordCount is
 * checked as a broker checks a client's batch (LogValidator): > 0 and
 * equal to lastOffsetDelta + 1.
 */
int krecord_batch_parse(const uint8_t *p, size_t len, krecord_batch_t *b, int verify_crc)
{
    memset(b, 0, sizeof(*b));
    if (len <= KREC_OFF_MAGIC)
        return KREC_ESHORT;
    if (p[KREC_OFF_MAGIC] != 2)
        return KREC_EMAGIC;
    if (len < KRECORD_HEADER_SIZE)
        return KREC_ESHORT;
    krecord_read_header(p, b);
    if (b->batch_length < KRECORD_MIN_BATCH_LENGTH)
        return KREC_ELENGTH;
    if ((size_t)b->batch_length > len - 12)
        return KREC_ESHORT;
    b->size = 12 + (size_t)b->batch_length;
    if (b->record_count <= 0 || b->last_offset_delta != b->record_count - 1)
        return KREC_ECOUNT;
    if (verify_crc && krecord_batch_crc(p, b->size) != b->crc)
        return KREC_ECRC;
    return KREC_OK;
}

int krecord_batches(const uint8_t *blob, size_t len, krecord_batch_t *out, size_t max, size_t *n,
                    int verify_crc)
{
    size_t off = 0, count = 0;
    *n = 0;
    while (off < len) {
        krecord_batch_t b;
        int err = krecord_batch_parse(blob + off, len - off, &b, verify_crc);
        if (err != KREC_OK)
            return err;
        b.offset = off;
        if (out) {
            if (count >= max)
                return KREC_ETOOMANY;
            out[count] = b;
        }
        *n = ++count;
        off += b.size;
    }
    return KREC_OK;
}

/*
 * CRC-32C arithmetic on polynomials over GF(2) modulo Castagnoli's,
 * reflected (bit 31 is x^0), as zlib's crc32_combine does for CRC-32.
 * crc_mul: a * b mod P.
 */
static uint32_t crc_mul(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (int i = 0; i < 32; i++, m >>= 1) {
        if (a & m)
            p ^= b;
        b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return p;
}

/* x^(2^k) mod P for k = 0..30; x^(2^31) = x, so k wraps modulo 31. */
static const uint32_t crc_x2k[31] = {
    0x40000000, 0x20000000, 0x08000000, 0x00800000, 0x00008000, 0x82f63b78, 0x6ea2d55c, 0x18b8ea18,
    0x510ac59a, 0xb82be955, 0xb8fdb1e7, 0x88e56f72, 0x74c360a4, 0xe4172b16, 0x0d65762a, 0x35d73a62,
    0x28461564, 0xbf455269, 0xe2ea32dc, 0xfe7740e6, 0xf946610b, 0x3c204f8f, 0x538586e3, 0x59726915,
    0x734d5309, 0xbc1ac763, 0x7d0722cc, 0xd289cabe, 0xe94ca9bc, 0x05b74f3f, 0xa51e1f42,
};

/* x^(8n) mod P: what n zero bytes appended do to a CRC register. */
static uint32_t crc_zeros_op(uint64_t n)
{
    uint32_t p = 1u << 31; /* x^0 */
    for (unsigned k = 3; n; n >>= 1, k++) {
        if (n & 1)
            p = crc_mul(crc_x2k[k % 31], p);
    }
    return p;
}

/* Changes with a tail up to this long run the CRC over zero bytes (about
 * as fast as the tail itself); longer ones take crc_zeros_op's log steps. */
#define CRC_PATCH_RUN_MAX 8192u

uint32_t krecord_crc32c_patch(uint32_t crc, const uint8_t *old_bytes, const uint8_t *new_bytes,
                              size_t n, size_t tail)
{
    static const uint8_t zeros[CRC_PATCH_RUN_MAX];
    uint8_t delta[64];
    /* Started at ~0, krecord_crc32c runs the bare CRC register from 0 (no
     * initial value): reg = ~L(delta), L the CRC's linear part, and
     * CRC(new) = CRC(old) ^ L(delta followed by tail zero bytes). */
    uint32_t reg = 0xffffffffu;
    for (size_t off = 0; off < n; off += sizeof(delta)) {
        size_t k = n - off < sizeof(delta) ? n - off : sizeof(delta);
        for (size_t i = 0; i < k; i++)
            delta[i] = old_bytes[off + i] ^ new_bytes[off + i];
        reg = krecord_crc32c(reg, delta, k);
    }
    if (tail <= sizeof(zeros))
        return crc ^ ~krecord_crc32c(reg, zeros, tail);
    return crc ^ crc_mul(crc_zeros_op(tail), ~reg);
}

int krecord_set_producer(uint8_t *batch, size_t size, int64_t producer_id, int16_t epoch,
                         int32_t base_sequence, int transactional)
{
    if (size < KRECORD_HEADER_SIZE)
        return -1;
    /* attributes .. baseSequence: the only bytes of the CRC's range that change */
    enum { FIRST = KREC_OFF_ATTRIBUTES, END = KREC_OFF_RECORD_COUNT };
    uint8_t before[END - FIRST];
    memcpy(before, batch + FIRST, sizeof(before));
    put_be64(batch + KREC_OFF_PRODUCER_ID, producer_id);
    put_be16(batch + KREC_OFF_PRODUCER_EPOCH, (uint16_t)epoch);
    put_be32(batch + KREC_OFF_BASE_SEQUENCE, (uint32_t)base_sequence);
    if (transactional >= 0) {
        uint16_t a = (uint16_t)kbe16(batch + KREC_OFF_ATTRIBUTES);
        if (transactional)
            a |= KRECORD_ATTR_TRANSACTIONAL;
        else
            a &= (uint16_t)~KRECORD_ATTR_TRANSACTIONAL;
        put_be16(batch + KREC_OFF_ATTRIBUTES, a);
    }
    uint32_t crc = (uint32_t)kbe32(batch + KREC_OFF_CRC);
    put_be32(batch + KREC_OFF_CRC,
             krecord_crc32c_patch(crc, before, batch + FIRST, sizeof(before), size - END));
    return 0;
}

/*
 * Fingerprint = XXH64(records, seed = XXH64(header digest, 0)), where the
 * 26-byte header digest is attributes without the isTransactional bit,
 * then lastOffsetDelta, baseTimestamp, maxTimestamp (bytes 23..43) and
 * recordCount (57..61). The records' length is folded in by XXH64.
 *
 * Why XXH64 and not two CRC-32C lanes: CRC is linear, so two lanes that
 * differ only in their seed differ by a constant for a given length, and
 * carry 32 bits of information, not 64. XXH64 mixes non-linearly and
 * passes SMHasher; for inputs that are not built to collide, two distinct
 * batches share a fingerprint with probability about 2^-64 per comparison.
 * eosproxy compares a batch only with the few batches in flight or
 * recently acknowledged for the same producer session and partition, so
 * even at 10^9 comparisons the chance of a false "duplicate" is ~10^-10.
 * XXH64 is not a cryptographic hash: a client able to craft collisions can
 * only make its own retries look alike, which drops its own data, never
 * another client's (the fingerprint is keyed by the client's session).
 */
uint64_t krecord_fingerprint(const uint8_t *batch, size_t size)
{
    uint8_t d[26];
    if (size < KRECORD_HEADER_SIZE)
        return 0;
    uint16_t a = (uint16_t)kbe16(batch + KREC_OFF_ATTRIBUTES);
    put_be16(d, a & (uint16_t)~KRECORD_ATTR_TRANSACTIONAL);
    memcpy(d + 2, batch + KREC_OFF_LAST_OFFSET_DELTA,
           KREC_OFF_PRODUCER_ID - KREC_OFF_LAST_OFFSET_DELTA);
    memcpy(d + 22, batch + KREC_OFF_RECORD_COUNT, 4);
    uint64_t seed = krecord_xxh64(d, sizeof(d), 0);
    return krecord_xxh64(batch + KRECORD_HEADER_SIZE, size - KRECORD_HEADER_SIZE, seed);
}
