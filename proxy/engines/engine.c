/*
 * engine.c - what the engines share to hand results back. See engine.h.
 */
#include "engine.h"

#include "kbuf.h"
#include "kproduce.h"
#include "log.h"
#include "reqbuf.h"

#include <event2/buffer.h>

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

struct evbuffer *engine_produce_frame(const kwriter_t *w, const size_t *cuts,
                                      const struct engine_batch *b, size_t n)
{
    struct evbuffer *out = evbuffer_new();
    size_t from = 0;
    int ok = out != NULL;
    for (size_t k = 0; ok && k < n; k++) {
        ok = evbuffer_add(out, w->buf + from, cuts[k] - from) == 0 &&
             reqbuf_add_to(out, b[k].buf, b[k].data, b[k].size) == 0;
        from = cuts[k];
    }
    ok = ok && evbuffer_add(out, w->buf + from, w->len - from) == 0;
    if (!ok && out) {
        evbuffer_free(out); /* drops the references taken */
        out = NULL;
    }
    return out;
}
