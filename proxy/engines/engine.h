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

/*
 * The frame of req as a ProduceRequest for a lane (lane_send_buffer),
 * without copying the records: the k-th partition's records (k counting
 * partitions in request order) lie in bufs[k] and are added from there
 * (reqbuf_add_to: by reference when large). They must not change until
 * the lane's callback. NULL when req cannot be written (as
 * kproduce_req_write_cut) or on OOM.
 */
struct kproduce_req;
struct evbuffer *engine_produce_frame(int16_t ver, int32_t correlation_id, kstr_t client_id,
                                      const struct kproduce_req *req, struct reqbuf *const *bufs);

#endif
