/* gen_batches.c - writes the batches of this directory (see README.md):
 * cc -std=c11 -D_GNU_SOURCE -Iproxy/codec tests/unit/golden/dedup/gen_batches.c
 *    proxy/codec/kbuf.c proxy/codec/krecord.c proxy/codec/krecords.c -lz -lsnappy -llz4 -lzstd
 * and run it in this directory. */
#include "krecords.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void put(const char *name, const uint8_t *p, size_t n)
{
    FILE *f = fopen(name, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}
int main(void)
{
    for (int codec = 0; codec <= 4; codec++) {
        kwriter_t recs;
        kw_init(&recs, 1024);
        for (int i = 0; i < 10; i++) {
            char v[32];
            int vl = snprintf(v, sizeof v, "{\"id\":\"e%d\"}", i);
            kwriter_t r;
            kw_init(&r, 64);
            kw_i8(&r, 0);
            kw_varlong(&r, i);
            kw_varint(&r, i);
            kw_varint(&r, 1);
            kw_i8(&r, (int8_t)('a' + i));
            kw_varint(&r, vl);
            kw_raw(&r, v, (size_t)vl);
            kw_varint(&r, 1);
            kw_varint(&r, 3);
            kw_raw(&r, "eid", 3);
            kw_varint(&r, 2);
            kw_raw(&r, v + 7, 2);
            kw_varint(&recs, (int32_t)r.len);
            kw_raw(&recs, r.buf, r.len);
            kw_free(&r);
        }
        krecord_batch_t h;
        memset(&h, 0, sizeof h);
        h.base_offset = 1000;
        h.partition_leader_epoch = 0;
        h.last_offset_delta = 9;
        h.base_timestamp = 1700000000000LL;
        h.max_timestamp = 1700000000009LL;
        h.producer_id = -1;
        h.producer_epoch = -1;
        h.base_sequence = -1;
        kwriter_t b;
        kw_init(&b, 1024);
        if (krecords_write_batch(&b, &h, (int16_t)codec, 10, recs.buf, recs.len))
            return 1;
        krecords_batch_t d;
        const char *e = NULL;
        if (krecords_decode(b.buf, b.len, &d, &e)) {
            fprintf(stderr, "%s\n", e);
            return 1;
        }
        uint8_t keep[10];
        for (int i = 0; i < 10; i++)
            keep[i] = (uint8_t)(i % 3 == 0);
        kwriter_t o;
        kw_init(&o, 1024);
        krecords_filter(&o, &d, b.buf, b.len, keep, KRECORDS_EMPTY_CONTROL);
        char name[64];
        snprintf(name, sizeof name, "orig-%d.bin", codec);
        put(name, b.buf, b.len);
        snprintf(name, sizeof name, "filt-%d.bin", codec);
        put(name, o.buf, o.len);
        memset(keep, 0, 10);
        for (int m = 0; m < 3; m++) {
            kw_reset(&o);
            krecords_filter(&o, &d, b.buf, b.len, keep, m);
            snprintf(name, sizeof name, "empty%d-%d.bin", m, codec);
            put(name, o.buf, o.len);
        }
        krecords_batch_free(&d);
        kw_free(&o);
        kw_free(&b);
        kw_free(&recs);
    }
    return 0;
}
