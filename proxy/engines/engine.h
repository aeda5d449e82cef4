/*
 * engine.h - how an engine hands its results back.
 *
 * The upgrade, transactional, dedup and dead-letter engines take a
 * client's request by id, (client id, slot token), and answer it later,
 * from the event loop, through these hooks. They never call into the
 * connection layer: the proxy fills px->done with the connection
 * layer's functions when it starts (conn/proxy.c), and a test gives an
 * engine hooks of its own.
 */
#ifndef EOSPROXY_ENGINE_H
#define EOSPROXY_ENGINE_H

#include "kbuf.h"

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct evbuffer;
struct kproduce_resp;
struct reqbuf;

struct engine_done {
    /* Fills the slot token of client client_id with resp, a complete
     * response frame (ownership taken). NULL resp: no answer could be
     * built; the client is closed. A client that has gone is not an
     * error: resp is freed. */
    void (*slot_done)(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp);
    /* 1 while that slot can still be answered: the client is connected
     * and the slot waits for an engine; 0 once the client has gone. */
    int (*slot_waiting)(struct proxy *px, uint64_t client_id, uint64_t token);
    /* An engine drained below its low watermark: clients that stopped
     * reading because it was busy may read again. */
    void (*resume)(struct proxy *px);
};

/*
 * The ProduceResponse frame (size prefix included) of resp at version
 * ver, in a new evbuffer for slot_done (the caller owns it). NULL when it
 * cannot be built (out of memory, logged with client_id).
 */
struct evbuffer *engine_produce_response(int16_t ver, const struct kproduce_resp *resp,
                                         uint64_t client_id);

/* One batch of a ProduceRequest an engine sends: size bytes at data, in buf. */
struct engine_batch {
    struct reqbuf *buf;
    const uint8_t *data;
    size_t size;
};

/*
 * The frame of a ProduceRequest for a lane (lane_send_buffer): w holds it
 * with the records left out at cuts[k] (kproduce_req_write_cut), and b[k]
 * is the k-th partition's batch, added from its reqbuf (reqbuf_add_to: by
 * reference when large), so the records are not copied. The bytes must
 * not change until the lane's callback. NULL on OOM.
 */
struct evbuffer *engine_produce_frame(const kwriter_t *w, const size_t *cuts,
                                      const struct engine_batch *b, size_t n);

#endif
