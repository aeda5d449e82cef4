/*
 * krecords.c - records inside a RecordBatch v2: decompression (gzip,
 * snappy raw and xerial-framed, LZ4 frame, zstd), record decode, eventId
 * extraction and the filtered re-encode used by consumer dedup.
 * See krecords.h; the field layouts are Kafka's DefaultRecordBatch and
 * DefaultRecord (clients/src/main/java/org/apache/kafka/common/record/).
 *
 * ---- The empty batch: what a fully filtered batch becomes ----
 *
 * Dropping the batch is not an option: when it is the partition's tail
 * the client fetches the same offset again, eosproxy filters it again,
 * and the pair spins. The batch must stay and cover
 * [baseOffset, baseOffset + lastOffsetDelta] so the client's next fetch
 * offset moves past it. What each client does with the candidates (read
 * in their sources: librdkafka 2.0.2 src/rdkafka_msgset_reader.c,
 * kafka-python 2.0.2 kafka/consumer/fetcher.py and
 * kafka/record/default_records.py, kafkajs 2.2.4
 * src/protocol/requests/fetch/v4/decodeMessages.js,
 * src/protocol/recordBatch/v0/decoder.js, src/consumer/batch.js and
 * runner.js):
 *
 * (a) recordCount 0, lastOffsetDelta kept (KRECORDS_EMPTY_ZERO_RECORDS)
 *   - librdkafka: rd_kafka_msgset_reader_v2 sets msetr_next_offset =
 *     LastOffset + 1 for every v2 batch and _run() moves the fetch offset
 *     there: stepped past. But a partition chunk that yields no message
 *     and no control message doubles rktp_fetch_msg_max_bytes, and once
 *     that reaches 1 GiB it posts MSG_SIZE_TOO_LARGE consumer errors.
 *   - kafka-python: _unpack_message_set records base_offset +
 *     last_offset_delta, and _create_fetch_requests moves the position
 *     to it + 1: stepped past. But _parse_fetched_data then evaluates
 *     unpacked[-1].offset: when no batch of the chunk yields a record,
 *     that raises IndexError out of poll().
 *   - kafkajs: the batch decodes to no records; with no raw message at
 *     all Batch.isEmpty() is true but isEmptyDueToFiltering() is false,
 *     so runner.js only heartbeats and never resolves an offset: at the
 *     tail it fetches the same offset for ever (issues #594, #1072).
 * (b) a control batch whose one record is a COMMIT marker at offsetDelta
 *     lastOffsetDelta (KRECORDS_EMPTY_CONTROL)
 *   - librdkafka: the control record is read (key version 0, type 1:
 *     "always ignore"), enqueued as a control op (never delivered), counts
 *     as msetr_ctrl_cnt (no fetch-size growth) and the fetch offset moves
 *     to LastOffset + 1: stepped past cleanly.
 *   - kafkajs: the record is a raw message with isControlRecord, so
 *     isEmptyDueToFiltering() holds and runner.js resolves
 *     batch.lastOffset() (the marker's offset = the batch's last offset):
 *     stepped past.
 *   - Java: control batches are skipped and nextFetchOffset moves past.
 *   - kafka-python 2.0.2: nothing looks at is_control_batch; the marker
 *     is yielded as a ConsumerRecord (key 00 00 00 01): the application
 *     sees a bogus record. Wrong for it.
 * (c) BEHIND, for kafka-python only: one plain record at offsetDelta -1.
 *     It is unpacked (so unpacked[-1] exists), PartitionRecords skips it
 *     as below the fetch offset, and the position moves to lastOffset + 1
 *     as in (a). Needs baseOffset <= fetch offset, true of the first batch
 *     of a chunk; later fully filtered batches of that chunk can be (a).
 *     librdkafka and Java skip such a record too ("offset < fetch"), but
 *     kafkajs would advance by one offset per fetch: not for it.
 *
 * Decision: CONTROL for Fetch v5+ (librdkafka, kafkajs, Java), BEHIND /
 * ZERO_RECORDS for Fetch v4, which among the clients of the test matrix
 * only kafka-python 2.0.2 sends (its fetcher caps at v4):
 * krecords_empty_mode_for_fetch(). The control batch carries producerId,
 * producerEpoch and baseSequence -1 so that no client's transaction
 * state (aborted-transaction lists keyed by producer id) is touched, and
 * the transactional bit, as every broker-written control batch does.
 */
#include "krecords.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* Smallest encoded record: length, attributes, timestampDelta,
 * offsetDelta, key, value, header count: one byte each. */
#define MIN_RECORD 7
/* Nesting bound of the JSON scanner. */
#define JSON_MAX_DEPTH 64
/* Xerial snappy framing (as the Java client writes it). */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER 16
#define XERIAL_BLOCK (32u * 1024)

/* ---- bounded output buffer for decompression ---- */

typedef struct obuf {
    uint8_t *p;
    size_t len, cap;
} obuf_t;

/* Makes room for n more bytes; -1 past KRECORDS_MAX_INFLATED or on ENOMEM. */
static int ob_reserve(obuf_t *o, size_t n)
{
    if (n > KRECORDS_MAX_INFLATED - o->len)
        return -1;
    if (o->len + n <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n)
        cap *= 2;
    if (cap > KRECORDS_MAX_INFLATED)
        cap = KRECORDS_MAX_INFLATED;
    uint8_t *p = realloc(o->p, cap);
    if (!p)
        return -1;
    o->p = p;
    o->cap = cap;
    return 0;
}

static const char *const E_BOMB = "decompressed records exceed KRECORDS_MAX_INFLATED";

static uint32_t be32u(const uint8_t *p)
{
    return (uint32_t)kbe32(p);
}

/* ---- gzip ---- */

/* A gzip stream (one or more members), as Kafka's GZIPOutputStream writes. */
static const char *inflate_gzip(const uint8_t *in, size_t n, obuf_t *o)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return "gzip: inflateInit failed";
    const char *err = NULL;
    size_t off = 0;
    int ret = Z_OK;
    while (!err) {
        if (ob_reserve(o, 64 * 1024) && ob_reserve(o, 1)) {
            err = E_BOMB;
            break;
        }
        size_t room = o->cap - o->len;
        size_t in_chunk = n - off > UINT32_MAX ? UINT32_MAX : n - off;
        zs.next_in = (Bytef *)(uintptr_t)(in + off);
        zs.avail_in = (uInt)in_chunk;
        zs.next_out = o->p + o->len;
        zs.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
        ret = inflate(&zs, Z_NO_FLUSH);
        off += in_chunk - zs.avail_in;
        o->len = (size_t)(zs.next_out - o->p);
        if (ret == Z_STREAM_END) {
            if (off == n)
                break;
            inflateReset(&zs); /* another member follows */
            continue;
        }
        if (ret == Z_BUF_ERROR && zs.avail_out == 0)
            continue;
        if (ret != Z_OK)
            err = ret == Z_BUF_ERROR ? "gzip: truncated stream" : "gzip: corrupt stream";
        else if (off == n && zs.avail_out != 0)
            err = "gzip: truncated stream";
    }
    inflateEnd(&zs);
    return err;
}

/* ---- snappy ---- */

/* One raw snappy block appended to o. */
static const char *snappy_block(const uint8_t *in, size_t n, obuf_t *o)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)in, n, &ulen) != SNAPPY_OK)
        return "snappy: corrupt block";
    if (ob_reserve(o, ulen ? ulen : 1)) /* never a NULL destination */
        return E_BOMB;
    size_t got = ulen;
    if (snappy_uncompress((const char *)in, n, (char *)o->p + o->len, &got) != SNAPPY_OK ||
        got != ulen)
        return "snappy: corrupt block";
    o->len += got;
    return NULL;
}

/*
 * Snappy as Kafka clients write it: either one raw block, or xerial
 * framing (Java's SnappyOutputStream):
 *   magic "\x82SNAPPY\0" (8), version INT32, compatibleVersion INT32,
 *   then blocks [ length INT32 (big-endian), raw snappy block ]*
 */
static const char *inflate_snappy(const uint8_t *in, size_t n, obuf_t *o)
{
    if (n < XERIAL_HEADER || memcmp(in, xerial_magic, sizeof(xerial_magic)) != 0)
        return snappy_block(in, n, o);
    size_t off = XERIAL_HEADER;
    while (off < n) {
        if (n - off < 4)
            return "snappy: truncated xerial block length";
        uint32_t blen = be32u(in + off);
        off += 4;
        if (blen > n - off)
            return "snappy: truncated xerial block";
        const char *err = snappy_block(in + off, blen, o);
        if (err)
            return err;
        off += blen;
    }
    return NULL;
}

/* ---- lz4 ---- */

/* LZ4 frame format (lz4frame.h), one or more frames back to back. */
static const char *inflate_lz4(const uint8_t *in, size_t n, obuf_t *o)
{
    LZ4F_dctx *dctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return "lz4: context allocation failed";
    const char *err = NULL;
    size_t off = 0, hint = 1;
    while (!err && (off < n || hint != 0)) {
        if (off == n) {
            err = "lz4: truncated frame";
            break;
        }
        if (ob_reserve(o, 64 * 1024) && ob_reserve(o, 1)) {
            err = E_BOMB;
            break;
        }
        size_t dst = o->cap - o->len, src = n - off;
        hint = LZ4F_decompress(dctx, o->p + o->len, &dst, in + off, &src, NULL);
        if (LZ4F_isError(hint)) {
            err = "lz4: corrupt frame";
            break;
        }
        off += src;
        o->len += dst;
        if (src == 0 && dst == 0 && o->len == KRECORDS_MAX_INFLATED)
            err = E_BOMB;
        else if (src == 0 && dst == 0)
            err = "lz4: no progress";
    }
    LZ4F_freeDecompressionContext(dctx);
    return err;
}

/* ---- zstd ---- */

/* zstd frames (content size may be absent): ZSTD_decompressStream. */
static const char *inflate_zstd(const uint8_t *in, size_t n, obuf_t *o)
{
    ZSTD_DCtx *ds = ZSTD_createDCtx();
    if (!ds)
        return "zstd: context allocation failed";
    /* A frame may ask for a window up to 2^27 by default; nothing larger
     * than the output bound is needed. */
    ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, 26);
    ZSTD_inBuffer ib = {in, n, 0};
    const char *err = NULL;
    size_t ret = 1;
    while (!err && (ib.pos < ib.size || ret != 0)) {
        if (ob_reserve(o, 64 * 1024) && ob_reserve(o, 1)) {
            err = E_BOMB;
            break;
        }
        ZSTD_outBuffer ob = {o->p + o->len, o->cap - o->len, 0};
        size_t before = ib.pos;
        ret = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(ret)) {
            err = "zstd: corrupt frame";
            break;
        }
        o->len += ob.pos;
        if (ob.pos == 0 && ib.pos == before)
            err = ib.pos == ib.size                 ? "zstd: truncated frame"
                  : o->len == KRECORDS_MAX_INFLATED ? E_BOMB
                                                    : "zstd: no progress";
    }
    ZSTD_freeDCtx(ds);
    return err;
}

const char *krecords_inflate(int codec, const uint8_t *in, size_t in_len, uint8_t **out,
                             size_t *out_len)
{
    obuf_t o = {NULL, 0, 0};
    const char *err;
    *out = NULL;
    *out_len = 0;
    switch (codec) {
    case KRECORD_GZIP:
        err = inflate_gzip(in, in_len, &o);
        break;
    case KRECORD_SNAPPY:
        err = inflate_snappy(in, in_len, &o);
        break;
    case KRECORD_LZ4:
        err = inflate_lz4(in, in_len, &o);
        break;
    case KRECORD_ZSTD:
        err = inflate_zstd(in, in_len, &o);
        break;
    default:
        err = "unknown compression codec";
    }
    if (err) {
        free(o.p);
        return err;
    }
    *out = o.p;
    *out_len = o.len;
    return NULL;
}

/* ---- compression ---- */

/* A single gzip member (deflate with the gzip wrapper). */
static int deflate_gzip(const uint8_t *in, size_t n, kwriter_t *w)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (n > UINT32_MAX / 2 || deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                                           Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&zs, (uLong)n) + 32;
    uint8_t *buf = malloc(bound);
    int rc = -1;
    if (buf) {
        zs.next_in = (Bytef *)(uintptr_t)in;
        zs.avail_in = (uInt)n;
        zs.next_out = buf;
        zs.avail_out = (uInt)bound;
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END) {
            kw_raw(w, buf, zs.total_out);
            rc = w->err ? -1 : 0;
        }
    }
    deflateEnd(&zs);
    free(buf);
    return rc;
}

/* Xerial framing with 32 KiB blocks, as the Java client writes it. */
static int deflate_snappy(const uint8_t *in, size_t n, kwriter_t *w)
{
    static const uint8_t ver[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    char *buf = malloc(snappy_max_compressed_length(XERIAL_BLOCK));
    if (!buf)
        return -1;
    kw_raw(w, xerial_magic, sizeof(xerial_magic));
    kw_raw(w, ver, sizeof(ver));
    for (size_t off = 0; off < n && !w->err; off += XERIAL_BLOCK) {
        size_t chunk = n - off < XERIAL_BLOCK ? n - off : XERIAL_BLOCK;
        size_t clen = snappy_max_compressed_length(XERIAL_BLOCK);
        if (snappy_compress((const char *)in + off, chunk, buf, &clen) != SNAPPY_OK) {
            free(buf);
            return -1;
        }
        kw_i32(w, (int32_t)clen);
        kw_raw(w, buf, clen);
    }
    free(buf);
    return w->err ? -1 : 0;
}

/* One LZ4 frame: independent 64 KiB blocks, no checksums (Java's
 * KafkaLZ4BlockOutputStream writes the same shape). */
static int deflate_lz4(const uint8_t *in, size_t n, kwriter_t *w)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t bound = LZ4F_compressFrameBound(n, &prefs);
    uint8_t *buf = malloc(bound);
    if (!buf)
        return -1;
    size_t got = LZ4F_compressFrame(buf, bound, in, n, &prefs);
    int rc = -1;
    if (!LZ4F_isError(got)) {
        kw_raw(w, buf, got);
        rc = w->err ? -1 : 0;
    }
    free(buf);
    return rc;
}

/* One zstd frame with its content size (kafka-python's decompress()
 * needs it). */
static int deflate_zstd(const uint8_t *in, size_t n, kwriter_t *w)
{
    size_t bound = ZSTD_compressBound(n);
    uint8_t *buf = malloc(bound ? bound : 1);
    if (!buf)
        return -1;
    size_t got = ZSTD_compress(buf, bound, in, n, 3);
    int rc = -1;
    if (!ZSTD_isError(got)) {
        kw_raw(w, buf, got);
        rc = w->err ? -1 : 0;
    }
    free(buf);
    return rc;
}

int krecords_deflate(int codec, const uint8_t *in, size_t in_len, kwriter_t *w)
{
    switch (codec) {
    case KRECORD_NONE:
        kw_raw(w, in, in_len);
        return w->err ? -1 : 0;
    case KRECORD_GZIP:
        return deflate_gzip(in, in_len, w);
    case KRECORD_SNAPPY:
        return deflate_snappy(in, in_len, w);
    case KRECORD_LZ4:
        return deflate_lz4(in, in_len, w);
    case KRECORD_ZSTD:
        return deflate_zstd(in, in_len, w);
    }
    return -1;
}

/* ---- batch header ---- */

/*
 * The v2 batch header as a consumer reads it (see krecord.h for the
 * layout): magic 2, batchLength >= 49 and within size, recordCount >= 0.
 */
static const char *parse_header(const uint8_t *p, size_t size, krecord_batch_t *h)
{
    memset(h, 0, sizeof(*h));
    if (size < KRECORD_HEADER_SIZE)
        return "batch shorter than its header";
    if (p[KREC_OFF_MAGIC] != 2)
        return "not a v2 record batch";
    krecord_read_header(p, h);
    if (h->batch_length < KRECORD_MIN_BATCH_LENGTH || (size_t)h->batch_length != size - 12)
        return "batchLength does not match the batch size";
    if (h->record_count < 0 || h->last_offset_delta < 0)
        return "negative recordCount or lastOffsetDelta";
    if (krecord_batch_crc(p, size) != h->crc)
        return "CRC-32C mismatch";
    h->size = size;
    return NULL;
}

/* ---- records ---- */

/* A varint length: -1 null (if nullable), else 0..remaining. */
static int32_t read_len(kreader_t *r, int nullable)
{
    int32_t n = kr_varint(r);
    if (!kr_ok(r))
        return 0;
    if (n < -1 || (n == -1 && !nullable) || (n >= 0 && (size_t)n > kr_remaining(r))) {
        kr_fail(r, KR_ENEGLEN);
        return 0;
    }
    return n;
}

static kbytes_t read_vbytes(kreader_t *r)
{
    kbytes_t b = {NULL, -1};
    int32_t n = read_len(r, 1);
    if (!kr_ok(r) || n < 0)
        return b;
    b.ptr = kr_skip(r, (size_t)n);
    b.len = b.ptr ? n : -1;
    return b;
}

/*
 * Record (DefaultRecord), inside a batch's (decompressed) payload:
 *
 *   length VARINT (bytes after itself)
 *   attributes INT8
 *   timestampDelta VARLONG
 *   offsetDelta VARINT
 *   key VARINT length (-1 null) + bytes
 *   value VARINT length (-1 null) + bytes
 *   headers VARINT count, each [ key VARINT length + UTF-8, value VARINT
 *                                length (-1 null) + bytes ]
 *
 * With pool NULL, headers are only counted (*nheaders); else they are
 * stored at pool. The record must fill its length exactly.
 */
static void decode_record(kreader_t *r, krec_t *rec, krec_header_t *pool)
{
    int32_t len = read_len(r, 0);
    const uint8_t *raw = kr_skip(r, (size_t)len);
    if (!raw)
        return;
    kreader_t rr;
    kr_init(&rr, raw, (size_t)len);
    rec->raw = raw;
    rec->raw_len = (size_t)len;
    rec->attributes = kr_i8(&rr);
    rec->timestamp_delta = kr_varlong(&rr);
    rec->offset_delta = kr_varint(&rr);
    rec->key = read_vbytes(&rr);
    rec->value = read_vbytes(&rr);
    int32_t nh = kr_varint(&rr);
    if (kr_ok(&rr) && (nh < 0 || (size_t)nh > kr_remaining(&rr) / 2))
        kr_fail(&rr, KR_ECOUNT);
    for (int32_t i = 0; i < nh && kr_ok(&rr); i++) {
        int32_t kl = read_len(&rr, 0);
        const uint8_t *k = kr_skip(&rr, (size_t)kl);
        kbytes_t v = read_vbytes(&rr);
        if (pool && kr_ok(&rr)) {
            pool[i].key.ptr = (const char *)k;
            pool[i].key.len = kl;
            pool[i].value = v;
        }
    }
    rec->nheaders = kr_ok(&rr) ? nh : 0;
    rec->headers = pool && nh > 0 ? pool : NULL;
    if (kr_ok(&rr) && kr_remaining(&rr) != 0)
        kr_fail(&rr, KR_EINVALID);
    if (!kr_ok(&rr))
        kr_fail(r, rr.err);
}

/* Decodes all records of payload into b (two passes: count the headers,
 * then fill the pool). */
static const char *decode_records(const uint8_t *payload, size_t len, krecords_batch_t *b)
{
    int32_t n = b->hdr.record_count;
    if ((size_t)n > len / MIN_RECORD)
        return "recordCount exceeds the records bytes";
    if (n == 0)
        return len == 0 ? NULL : "bytes after the last record";
    b->records = calloc((size_t)n, sizeof(krec_t));
    if (!b->records)
        return "out of memory";
    kreader_t r;
    kr_init(&r, payload, len);
    size_t total = 0;
    for (int32_t i = 0; i < n && kr_ok(&r); i++) {
        decode_record(&r, &b->records[i], NULL);
        total += (size_t)b->records[i].nheaders;
    }
    if (!kr_ok(&r))
        return "malformed record";
    if (kr_remaining(&r) != 0)
        return "bytes after the last record";
    b->nrecords = n;
    if (total == 0)
        return NULL;
    b->header_pool = calloc(total, sizeof(krec_header_t));
    if (!b->header_pool)
        return "out of memory";
    kr_init(&r, payload, len);
    size_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        decode_record(&r, &b->records[i], b->header_pool + at);
        at += (size_t)b->records[i].nheaders;
    }
    return NULL;
}

int krecords_decode(const uint8_t *batch, size_t size, krecords_batch_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    const char *e = parse_header(batch, size, &out->hdr);
    if (!e) {
        const uint8_t *payload = batch + KRECORD_HEADER_SIZE;
        size_t plen = size - KRECORD_HEADER_SIZE;
        int codec = krecord_attrs(out->hdr.attributes).codec;
        if (codec != KRECORD_NONE) {
            e = krecords_inflate(codec, payload, plen, &out->inflated, &out->inflated_len);
            payload = out->inflated;
            plen = out->inflated_len;
        }
        if (!e)
            e = decode_records(payload, plen, out);
    }
    if (e) {
        krecords_batch_free(out);
        if (err)
            *err = e;
        return -1;
    }
    return 0;
}

void krecords_batch_free(krecords_batch_t *b)
{
    if (!b)
        return;
    free(b->inflated);
    free(b->records);
    free(b->header_pool);
    memset(b, 0, sizeof(*b));
}

/* ---- writing batches ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int krecords_write_batch(kwriter_t *w, const krecord_batch_t *hdr, int16_t attributes,
                         int32_t nrecords, const uint8_t *records, size_t records_len)
{
    size_t start = w->len;
    int codec = krecord_attrs(attributes).codec;
    kw_i64(w, hdr->base_offset);
    kw_i32(w, 0); /* batchLength, patched */
    kw_i32(w, hdr->partition_leader_epoch);
    kw_i8(w, 2);
    kw_i32(w, 0); /* crc, patched */
    kw_i16(w, attributes);
    kw_i32(w, hdr->last_offset_delta);
    kw_i64(w, hdr->base_timestamp);
    kw_i64(w, hdr->max_timestamp);
    kw_i64(w, hdr->producer_id);
    kw_i16(w, hdr->producer_epoch);
    kw_i32(w, hdr->base_sequence);
    kw_i32(w, nrecords);
    if (w->err || codec > KRECORD_ZSTD || krecords_deflate(codec, records, records_len, w) ||
        w->len - start - 12 > INT32_MAX) {
        if (!w->err)
            w->len = start;
        return -1;
    }
    uint8_t *b = w->buf + start;
    size_t size = w->len - start;
    put32(b + KREC_OFF_BATCH_LENGTH, (uint32_t)(size - 12));
    put32(b + KREC_OFF_CRC, krecord_batch_crc(b, size));
    return 0;
}

/* Appends one record (length-prefixed) at offset_delta with timestampDelta
 * 0, no headers, and key/value as given (len -1: null). */
static void write_record(kwriter_t *w, int32_t offset_delta, const uint8_t *key, int32_t klen,
                         const uint8_t *val, int32_t vlen)
{
    kwriter_t body;
    kw_init(&body, 32);
    kw_i8(&body, 0);      /* attributes */
    kw_varlong(&body, 0); /* timestampDelta */
    kw_varint(&body, offset_delta);
    kw_varint(&body, klen);
    if (klen > 0)
        kw_raw(&body, key, (size_t)klen);
    kw_varint(&body, vlen);
    if (vlen > 0)
        kw_raw(&body, val, (size_t)vlen);
    kw_varint(&body, 0); /* headers */
    if (body.err)
        w->err = 1;
    kw_varint(w, (int32_t)body.len);
    kw_raw(w, body.buf, body.len);
    kw_free(&body);
}

/* The empty-batch representations (see the comment at the top). */
int krecords_write_empty(kwriter_t *w, const krecord_batch_t *h, int mode)
{
    int16_t attrs = (int16_t)(h->attributes & ~KRECORD_ATTR_COMPRESSION_MASK);
    kwriter_t rec;
    int rc = -1;
    kw_init(&rec, 64);
    if (mode == KRECORDS_EMPTY_ZERO_RECORDS) {
        rc = krecords_write_batch(w, h, attrs, 0, NULL, 0);
    } else if (mode == KRECORDS_EMPTY_CONTROL) {
        /* EndTransactionMarker: key version 0, type 1 (COMMIT); value
         * version 0, coordinatorEpoch 0. */
        static const uint8_t key[4] = {0, 0, 0, 1};
        static const uint8_t val[6] = {0, 0, 0, 0, 0, 0};
        krecord_batch_t c = *h;
        c.producer_id = -1;
        c.producer_epoch = -1;
        c.base_sequence = -1;
        attrs = (int16_t)(attrs | KRECORD_ATTR_CONTROL | KRECORD_ATTR_TRANSACTIONAL);
        write_record(&rec, h->last_offset_delta, key, 4, val, 6);
        if (!rec.err)
            rc = krecords_write_batch(w, &c, attrs, 1, rec.buf, rec.len);
    } else if (mode == KRECORDS_EMPTY_BEHIND) {
        attrs = (int16_t)(attrs & ~KRECORD_ATTR_CONTROL);
        write_record(&rec, -1, NULL, -1, NULL, -1);
        if (!rec.err)
            rc = krecords_write_batch(w, h, attrs, 1, rec.buf, rec.len);
    }
    kw_free(&rec);
    return rc;
}

int krecords_filter(kwriter_t *w, const krecords_batch_t *b, const uint8_t *orig, size_t orig_size,
                    const uint8_t *keep, int empty_mode)
{
    int32_t kept = 0;
    for (int32_t i = 0; i < b->nrecords; i++)
        kept += keep[i] != 0;
    if (kept == b->nrecords && orig && orig_size == b->hdr.size) {
        kw_raw(w, orig, orig_size);
        return w->err ? -1 : 0;
    }
    if (kept == 0)
        return krecords_write_empty(w, &b->hdr, empty_mode);
    kwriter_t recs;
    kw_init(&recs, b->inflated_len ? b->inflated_len : 1024);
    for (int32_t i = 0; i < b->nrecords; i++) {
        if (!keep[i])
            continue;
        kw_varint(&recs, (int32_t)b->records[i].raw_len);
        kw_raw(&recs, b->records[i].raw, b->records[i].raw_len);
    }
    int rc = recs.err
                 ? -1
                 : krecords_write_batch(w, &b->hdr, b->hdr.attributes, kept, recs.buf, recs.len);
    kw_free(&recs);
    return rc;
}

int krecords_empty_mode_for_fetch(int16_t fetch_version, int first)
{
    if (fetch_version >= 5)
        return KRECORDS_EMPTY_CONTROL;
    return first ? KRECORDS_EMPTY_BEHIND : KRECORDS_EMPTY_ZERO_RECORDS;
}

/* ---- eventId ---- */

/* A small JSON scanner over [p, end): enough to find one top-level field
 * of an object and to check that the whole value is well-formed. */
typedef struct jscan {
    const uint8_t *p, *end;
    int bad;
} jscan_t;

static void jws(jscan_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits of a \u escape; -1 if malformed. */
static int32_t jhex4(jscan_t *j)
{
    if (j->end - j->p < 4)
        return -1;
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    j->p += 4;
    return v;
}

/* Appends UTF-8 of cp to out (if out_cap allows); counts in *n. */
static void put_utf8(uint32_t cp, uint8_t *out, size_t cap, size_t *n)
{
    uint8_t b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 4;
    }
    for (size_t i = 0; i < k; i++, (*n)++)
        if (out && *n < cap)
            out[*n] = b[i];
}

/* One escape after the backslash; returns the code point or -1. */
static int32_t jescape(jscan_t *j)
{
    if (j->p >= j->end)
        return -1;
    uint8_t c = *j->p++;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return -1;
    }
    int32_t cp = jhex4(j);
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1; /* lone low surrogate */
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
            return -1;
        j->p += 2;
        int32_t lo = jhex4(j);
        if (lo < 0xdc00 || lo > 0xdfff)
            return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return cp;
}

/*
 * A string at j->p (opening quote). The raw contents are [*raw, *raw +
 * *raw_len); *escaped says whether they hold escapes; when out is given
 * the unescaped bytes go there (up to cap) and *out_len is their count.
 */
static void jstring(jscan_t *j, const uint8_t **raw, size_t *raw_len, int *escaped, uint8_t *out,
                    size_t cap, size_t *out_len)
{
    size_t n = 0;
    *escaped = 0;
    if (j->p >= j->end || *j->p != '"') {
        j->bad = 1;
        return;
    }
    const uint8_t *s = ++j->p;
    while (!j->bad) {
        if (j->p >= j->end) {
            j->bad = 1;
            break;
        }
        uint8_t c = *j->p;
        if (c == '"')
            break;
        if (c < 0x20) {
            j->bad = 1;
            break;
        }
        if (c == '\\') {
            j->p++;
            *escaped = 1;
            int32_t cp = jescape(j);
            if (cp < 0)
                j->bad = 1;
            else
                put_utf8((uint32_t)cp, out, cap, &n);
            continue;
        }
        if (out && n < cap)
            out[n] = c;
        n++;
        j->p++;
    }
    if (j->bad)
        return;
    *raw = s;
    *raw_len = (size_t)(j->p - s);
    j->p++; /* closing quote */
    if (out_len)
        *out_len = n;
}

static void jvalue(jscan_t *j, int depth);

/* A number per JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static void jnumber(jscan_t *j)
{
    const uint8_t *p = j->p, *e = j->end;
#define DIGITS(min)                                                                                \
    do {                                                                                           \
        const uint8_t *d0 = p;                                                                     \
        while (p < e && *p >= '0' && *p <= '9')                                                    \
            p++;                                                                                   \
        if (p - d0 < (min))                                                                        \
            j->bad = 1;                                                                            \
    } while (0)
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else
        DIGITS(1);
    if (!j->bad && p < e && *p == '.') {
        p++;
        DIGITS(1);
    }
    if (!j->bad && p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        DIGITS(1);
    }
#undef DIGITS
    j->p = p;
}

static void jliteral(jscan_t *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        j->bad = 1;
    else
        j->p += n;
}

/* Skips an array or object at j->p, checking it. */
static void jcontainer(jscan_t *j, int depth)
{
    uint8_t close = *j->p == '{' ? '}' : ']';
    int obj = close == '}';
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return;
    }
    while (!j->bad) {
        if (obj) {
            const uint8_t *raw;
            size_t rl;
            int esc;
            jws(j);
            jstring(j, &raw, &rl, &esc, NULL, 0, NULL);
            jws(j);
            if (j->bad || j->p >= j->end || *j->p != ':') {
                j->bad = 1;
                return;
            }
            j->p++;
        }
        jvalue(j, depth + 1);
        jws(j);
        if (j->bad || j->p >= j->end) {
            j->bad = 1;
            return;
        }
        if (*j->p == close) {
            j->p++;
            return;
        }
        if (*j->p != ',') {
            j->bad = 1;
            return;
        }
        j->p++;
    }
}

/* Skips any value, checking it; nesting beyond JSON_MAX_DEPTH is bad. */
static void jvalue(jscan_t *j, int depth)
{
    jws(j);
    if (j->p >= j->end || depth > JSON_MAX_DEPTH) {
        j->bad = 1;
        return;
    }
    const uint8_t *raw;
    size_t rl;
    int esc;
    switch (*j->p) {
    case '{':
    case '[':
        jcontainer(j, depth);
        return;
    case '"':
        jstring(j, &raw, &rl, &esc, NULL, 0, NULL);
        return;
    case 't':
        jliteral(j, "true");
        return;
    case 'f':
        jliteral(j, "false");
        return;
    case 'n':
        jliteral(j, "null");
        return;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            jnumber(j);
        else
            j->bad = 1;
    }
}

int krecords_json_valid(const uint8_t *p, size_t len)
{
    jscan_t j = {p, p + len, 0};
    jws(&j);
    jvalue(&j, 0);
    jws(&j);
    return !j.bad && j.p == j.end;
}

/* 1 if the JSON string at j->p (a key) unescapes to name[0..nlen). */
static int jkey_is(jscan_t *j, const char *name, size_t nlen)
{
    uint8_t buf[256];
    const uint8_t *raw = NULL;
    size_t rl = 0, ul = 0;
    int esc;
    jstring(j, &raw, &rl, &esc, buf, sizeof(buf), &ul);
    if (j->bad)
        return 0;
    if (!esc)
        return rl == nlen && memcmp(raw, name, nlen) == 0;
    return ul == nlen && nlen <= sizeof(buf) && memcmp(buf, name, nlen) == 0;
}

/*
 * The top-level field `name` of the JSON object in [p, p+len): a string
 * (unescaped into scratch when it has escapes) or a number (its text).
 * The first occurrence wins; the whole document must be well-formed.
 */
static int json_field(const uint8_t *p, size_t len, const char *name, kbytes_t *id,
                      uint8_t *scratch, size_t scratch_len)
{
    jscan_t j = {p, p + len, 0};
    size_t nlen = strlen(name);
    int found = 0, usable = 0;
    jws(&j);
    if (j.p >= j.end || *j.p != '{')
        return 0;
    j.p++;
    jws(&j);
    int empty = j.p < j.end && *j.p == '}';
    if (empty)
        j.p++;
    while (!empty && !j.bad) {
        jws(&j);
        int match = jkey_is(&j, name, nlen) && !found;
        jws(&j);
        if (j.bad || j.p >= j.end || *j.p != ':')
            return 0;
        j.p++;
        jws(&j);
        if (match && j.p < j.end && *j.p == '"') {
            const uint8_t *raw = NULL;
            size_t rl = 0, ul = 0;
            int esc = 0;
            jstring(&j, &raw, &rl, &esc, scratch, scratch_len, &ul);
            found = 1;
            usable = !j.bad && (!esc || ul <= scratch_len);
            id->ptr = esc ? scratch : raw;
            id->len = (int32_t)(esc ? ul : rl);
        } else if (match && j.p < j.end && (*j.p == '-' || (*j.p >= '0' && *j.p <= '9'))) {
            const uint8_t *s = j.p;
            jnumber(&j);
            found = usable = 1;
            id->ptr = s;
            id->len = (int32_t)(j.p - s);
        } else {
            found |= match;
            jvalue(&j, 1);
        }
        jws(&j);
        if (j.bad || j.p >= j.end)
            return 0;
        if (*j.p == '}') {
            j.p++;
            break;
        }
        if (*j.p != ',')
            return 0;
        j.p++;
    }
    jws(&j);
    if (j.bad || j.p != j.end)
        return 0;
    return found && usable && id->len > 0;
}

int krecords_event_id(const krec_t *r, int src, const char *name, kbytes_t *id, uint8_t *scratch,
                      size_t scratch_len)
{
    id->ptr = NULL;
    id->len = -1;
    kbytes_t v = {NULL, -1};
    if (src == KRECORDS_ID_HEADER && name) {
        size_t nlen = strlen(name);
        for (int32_t i = 0; i < r->nheaders; i++) {
            const krec_header_t *h = &r->headers[i];
            if ((size_t)h->key.len == nlen && memcmp(h->key.ptr, name, nlen) == 0) {
                v = h->value;
                break;
            }
        }
    } else if (src == KRECORDS_ID_KEY) {
        v = r->key;
    } else if (src == KRECORDS_ID_JSON && name) {
        kbytes_t tmp = {NULL, -1};
        if (r->value.len > 0 &&
            json_field(r->value.ptr, (size_t)r->value.len, name, &tmp, scratch, scratch_len))
            v = tmp;
    }
    if (v.len <= 0)
        return 0;
    *id = v;
    return 1;
}
