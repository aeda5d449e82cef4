/*
 * kaborted.c - aborted transactional batches taken out of a Fetch
 * response. See kaborted.h.
 */
#include "kaborted.h"

#include "kfetch.h"
#include "krecord.h"
#include "krecords.h"

#include <stdlib.h>
#include <string.h>

#define CONTROL_TYPE_ABORT 0 /* ControlRecordType: 0 ABORT, 1 COMMIT */

/*
 * 1 if the control batch b[0..size) holds an ABORT marker: its first
 * record's key is version (INT16) and type (INT16), type 0. Control
 * batches are never compressed.
 */
static int is_abort_marker(const uint8_t *b, size_t size)
{
    if (size <= KRECORD_HEADER_SIZE)
        return 0;
    kreader_t r;
    kr_init(&r, b + KRECORD_HEADER_SIZE, size - KRECORD_HEADER_SIZE);
    (void)kr_varint(&r);  /* length */
    (void)kr_i8(&r);      /* attributes */
    (void)kr_varlong(&r); /* timestampDelta */
    (void)kr_varint(&r);  /* offsetDelta */
    int32_t klen = kr_varint(&r);
    if (!kr_ok(&r) || klen < 4)
        return 0;
    (void)kr_i16(&r); /* version */
    int16_t type = kr_i16(&r);
    return kr_ok(&r) && type == CONTROL_TYPE_ABORT;
}

/*
 * 1 if p[0..avail) starts with a whole v2 batch, its header in *h (size
 * set). Only the framing is checked, as a consumer does: brokers serve
 * batches krecord_batch_parse would refuse (compacted counts, control).
 */
static int whole_batch(const uint8_t *p, size_t avail, krecord_batch_t *h)
{
    if (avail < KRECORD_HEADER_SIZE)
        return 0;
    krecord_read_header(p, h);
    if (h->magic != 2 || h->batch_length < KRECORD_MIN_BATCH_LENGTH ||
        (size_t)h->batch_length > avail - 12)
        return 0;
    h->size = 12 + (size_t)h->batch_length;
    return 1;
}

static int by_first_offset(const void *a, const void *b)
{
    const kfetch_aborted_t *x = a, *y = b;
    return (x->first_offset > y->first_offset) - (x->first_offset < y->first_offset);
}

/* The producers whose aborted transaction is open at the batch walked. */
struct aborting {
    int64_t *ids;
    size_t n;
};

static size_t find_id(const struct aborting *a, int64_t id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->ids[i] == id)
            return i;
    return a->n;
}

/*
 * Writes partition p's records into *out with its aborted batches in their
 * empty form (ver's, as dedup writes them). Returns the batches dropped
 * (*out set only then), or -1 on OOM.
 */
static long filter_partition(int16_t ver, const kfetch_partition_t *p, kbytes_t *out)
{
    size_t na = (size_t)p->naborted;
    kfetch_aborted_t *sorted = malloc(na * sizeof(*sorted));
    struct aborting act = {malloc(na * sizeof(int64_t)), 0};
    kwriter_t w;
    kw_init(&w, (size_t)p->records.len + 64);
    long dropped = 0;
    if (!sorted || !act.ids) {
        dropped = -1;
        goto done;
    }
    memcpy(sorted, p->aborted, na * sizeof(*sorted));
    qsort(sorted, na, sizeof(*sorted), by_first_offset);
    const uint8_t *rec = p->records.ptr;
    size_t len = (size_t)p->records.len, off = 0, next = 0;
    krecord_batch_t h;
    while (whole_batch(rec + off, len - off, &h)) {
        int64_t last = h.base_offset + h.last_offset_delta;
        for (; next < na && sorted[next].first_offset <= last; next++)
            if (find_id(&act, sorted[next].producer_id) == act.n)
                act.ids[act.n++] = sorted[next].producer_id;
        size_t at = find_id(&act, h.producer_id);
        if (h.attributes & KRECORD_ATTR_CONTROL) {
            if (at < act.n && is_abort_marker(rec + off, h.size))
                act.ids[at] = act.ids[--act.n];
            kw_raw(&w, rec + off, h.size);
        } else if ((h.attributes & KRECORD_ATTR_TRANSACTIONAL) && at < act.n) {
            krecords_write_empty(&w, &h, krecords_empty_mode_for_fetch(ver, off == 0));
            dropped++;
        } else {
            kw_raw(&w, rec + off, h.size);
        }
        off += h.size;
    }
    kw_raw(&w, rec + off, len - off); /* a partial batch at the end */
    if (w.err) {
        dropped = -1;
    } else if (dropped > 0) {
        size_t n;
        uint8_t *buf = kw_detach(&w, &n);
        *out = (kbytes_t){buf, (int32_t)n};
    }
done:
    kw_free(&w);
    free(sorted);
    free(act.ids);
    return dropped;
}

/* Frees the records the filter substituted. */
static void free_new_records(kfetch_resp_t *resp)
{
    for (int32_t i = 0; i < resp->ntopics; i++)
        for (int32_t j = 0; j < resp->topics[i].npartitions; j++)
            free((void *)resp->topics[i].partitions[j].new_records.ptr);
}

int kaborted_filter(int16_t ver, const uint8_t *frame, size_t len, kwriter_t *w, size_t *dropped)
{
    kfetch_resp_t resp;
    if (kfetch_resp_parse(ver, frame, len, &resp, NULL))
        return -1;
    size_t total = 0;
    int rc = 0;
    for (int32_t i = 0; i < resp.ntopics && rc == 0; i++) {
        for (int32_t j = 0; j < resp.topics[i].npartitions && rc == 0; j++) {
            kfetch_partition_t *p = &resp.topics[i].partitions[j];
            if (p->naborted <= 0 || p->records.len <= 0)
                continue;
            long n = filter_partition(ver, p, &p->new_records);
            if (n < 0)
                rc = -1;
            else
                total += (size_t)n;
        }
    }
    if (rc == 0 && total > 0)
        rc = kfetch_resp_write(w, ver, &resp) ? -1 : 1;
    free_new_records(&resp);
    kfetch_resp_free(&resp);
    if (rc == 1 && dropped)
        *dropped = total;
    return rc;
}
