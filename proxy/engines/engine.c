/*
 * engine.c - what the engines share to hand results back. See engine.h.
 */
#include "engine.h"

#include "kbuf.h"
#include "kproduce.h"
#include "log.h"
#include "reqbuf.h"

#include <event2/buffer.h>
#include <stdlib.h>

struct evbuffer *engine_produce_response(int16_t ver, const kproduce_resp_t *resp,
                                         uint64_t client_id)
{
    kwriter_t w;
    kw_init(&w, 256);
    struct evbuffer *out = NULL;
    if (kproduce_resp_write(&w, ver, resp) == 0 && (out = evbuffer_new()) &&
        evbuffer_add(out, w.buf, w.len)) {
        evbuffer_free(out);
        out = NULL;
    }
    if (!out)
        log_error("client %llu: cannot build a ProduceResponse (out of memory)",
                  (unsigned long long)client_id);
    kw_free(&w);
    return out;
}

/* The frame from w (the request with the records left out at cuts) and
 * the records of req's partitions, in order, from bufs. */
static struct evbuffer *splice_records(const kwriter_t *w, const size_t *cuts,
                                       const kproduce_req_t *req, struct reqbuf *const *bufs)
{
    struct evbuffer *out = evbuffer_new();
    size_t from = 0, k = 0;
    int ok = out != NULL;
    for (int32_t i = 0; ok && i < req->ntopics; i++)
        for (int32_t j = 0; ok && j < req->topics[i].npartitions; j++, k++) {
            kbytes_t r = req->topics[i].partitions[j].records;
            ok = evbuffer_add(out, w->buf + from, cuts[k] - from) == 0 &&
                 reqbuf_add_to(out, bufs[k], r.ptr, (size_t)r.len) == 0;
            from = cuts[k];
        }
    ok = ok && evbuffer_add(out, w->buf + from, w->len - from) == 0;
    if (!ok && out) {
        evbuffer_free(out); /* drops the references taken */
        out = NULL;
    }
    return out;
}

struct evbuffer *engine_produce_frame(int16_t ver, int32_t correlation_id, kstr_t client_id,
                                      const kproduce_req_t *req, struct reqbuf *const *bufs)
{
    size_t n = 0;
    for (int32_t i = 0; i < req->ntopics; i++)
        n += (size_t)(req->topics[i].npartitions > 0 ? req->topics[i].npartitions : 0);
    size_t *cuts = malloc((n ? n : 1) * sizeof(*cuts));
    kwriter_t w;
    kw_init(&w, 1024);
    struct evbuffer *out =
        cuts && kproduce_req_write_cut(&w, ver, correlation_id, client_id, req, cuts, n) == 0
            ? splice_records(&w, cuts, req, bufs)
            : NULL;
    kw_free(&w);
    free(cuts);
    return out;
}
