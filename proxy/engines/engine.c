/*
 * engine.c - what the engines share to hand results back. See engine.h.
 */
#include "engine.h"

#include "kbuf.h"
#include "kproduce.h"
#include "log.h"

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
