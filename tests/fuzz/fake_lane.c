/*
 * fake_lane.c - an in-process stand-in for proxy/engines/lane.c, linked into
 * tests/fuzz/fuzz_upgrade.c and tests/fuzz/fuzz_txn.c instead of it: the
 * whole lane.h API, with no socket and no timer. The fuzz harness plays the
 * brokers.
 *
 * lane_send checks the frame it is given (size prefix, correlation id
 * lane_next_correlation), keeps it (the lane owns it) and queues the
 * callback. Nothing is answered until the harness says so, so a callback
 * never runs inside lane_send. The harness answers a lane's oldest request
 * (fake_lane_answer), or fails every pending one with NULL as lane.c does
 * on a lost connection, an overdue request or a response for the wrong
 * correlation id (fake_lane_fail). lane_free fails what is pending too.
 * As lane.c, lane_send refuses (-1, frame freed, cb never called) when the
 * lane would pass max_bytes and something is pending, and the harness can
 * make it refuse as if out of memory (fake_lane_refuse).
 * lane_send_buffer copies the frame when sent, and keeps the evbuffer: the
 * bytes it references must still be the same when the request is answered
 * or failed (release), else the engine changed bytes lane.c would still
 * write.
 *
 * The harness side is declared in each harness (no header: two users).
 */
#include "kbuf.h"
#include "lane.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* One request waiting for the harness. */
struct fake_req {
    uint8_t *frame; /* as sent: size prefix included */
    size_t len;
    struct evbuffer *held; /* lane_send_buffer: the frame as handed over */
    lane_cb cb;
    void *arg;
    struct fake_req *next;
};

struct lane {
    struct proxy *px;
    int32_t node_id;
    size_t max_bytes, pending_bytes, npending;
    int32_t next_corr;
    struct fake_req *head, *tail;
    struct lane *next_lane; /* every live lane, oldest first */
};

static struct lane *g_lanes;
static int g_refuse;

/* Set by the harness: called for every accepted request, before queuing. */
void (*fake_lane_on_send)(struct lane *l, const uint8_t *frame, size_t len);

struct lane *lane_new(struct proxy *px, int32_t node_id, size_t max_bytes)
{
    struct lane *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->px = px;
    l->node_id = node_id;
    l->max_bytes = max_bytes;
    struct lane **pp = &g_lanes;
    while (*pp)
        pp = &(*pp)->next_lane;
    *pp = l;
    return l;
}

/*
 * lane_send_buffer's contract: the bytes a sent frame references do not
 * change until its callback has run. lane.c writes them after
 * lane_send_buffer returns, so a change would go on the wire; here the
 * frame was copied when sent, and the bytes still referenced must match
 * that copy when the lane lets them go (just before the callback).
 */
static void release(struct fake_req *r)
{
    if (!r->held)
        return;
    size_t n = evbuffer_get_length(r->held);
    const uint8_t *p = evbuffer_pullup(r->held, -1);
    if (n != r->len || (n && (!p || memcmp(p, r->frame, n) != 0)))
        abort();
    evbuffer_free(r->held);
    r->held = NULL;
}

/* Pops the oldest request (the caller runs its callback and frees it). */
static struct fake_req *pop(struct lane *l)
{
    struct fake_req *r = l->head;
    if (!r)
        return NULL;
    l->head = r->next;
    if (!l->head)
        l->tail = NULL;
    l->pending_bytes -= r->len;
    l->npending--;
    return r;
}

void fake_lane_fail(struct lane *l)
{
    /* Detached first, as lane.c's fail_all: what the callbacks send now
     * waits for the next answer. */
    struct fake_req *r = l->head;
    l->head = l->tail = NULL;
    l->pending_bytes = 0;
    l->npending = 0;
    while (r) {
        struct fake_req *next = r->next;
        release(r);
        r->cb(r->arg, NULL, 0);
        free(r->frame);
        free(r);
        r = next;
    }
}

void lane_free(struct lane *l)
{
    if (!l)
        return;
    struct lane **pp = &g_lanes;
    while (*pp != l)
        pp = &(*pp)->next_lane;
    *pp = l->next_lane;
    fake_lane_fail(l);
    free(l);
}

int32_t lane_node_id(const struct lane *l)
{
    return l->node_id;
}

size_t lane_pending_bytes(const struct lane *l)
{
    return l->pending_bytes;
}

int32_t lane_next_correlation(struct lane *l)
{
    return l->next_corr;
}

/* Queues a sent frame; held: the evbuffer lane_send_buffer was given, or NULL. */
static int queue_frame(struct lane *l, uint8_t *frame, size_t len, struct evbuffer *held,
                       lane_cb cb, void *arg)
{
    /* The contract: a whole frame with its size prefix, carrying the
     * correlation id the lane expects, and a callback. */
    if (!frame || len < 12 || (size_t)kbe32(frame) != len - 4 || kbe32(frame + 8) != l->next_corr ||
        !cb)
        abort();
    if ((l->pending_bytes + len > l->max_bytes && l->head) || g_refuse > 0) {
        if (g_refuse > 0)
            g_refuse--;
        free(frame);
        if (held)
            evbuffer_free(held);
        return -1;
    }
    struct fake_req *r = calloc(1, sizeof(*r));
    if (!r) {
        free(frame);
        if (held)
            evbuffer_free(held);
        return -1;
    }
    if (fake_lane_on_send)
        fake_lane_on_send(l, frame, len);
    r->frame = frame;
    r->len = len;
    r->held = held;
    r->cb = cb;
    r->arg = arg;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->pending_bytes += len;
    l->npending++;
    l->next_corr = l->next_corr == INT32_MAX ? 0 : l->next_corr + 1;
    return 0;
}

int lane_send(struct lane *l, uint8_t *frame, size_t len, uint64_t timeout_ms, lane_cb cb,
              void *arg)
{
    (void)timeout_ms;
    return queue_frame(l, frame, len, NULL, cb, arg);
}

int lane_send_buffer(struct lane *l, struct evbuffer *buf, uint64_t timeout_ms, lane_cb cb,
                     void *arg)
{
    (void)timeout_ms;
    size_t len = evbuffer_get_length(buf);
    uint8_t *frame = malloc(len ? len : 1);
    if (!frame) {
        evbuffer_free(buf);
        return -1;
    }
    evbuffer_copyout(buf, frame, len);
    return queue_frame(l, frame, len, buf, cb, arg);
}

/* ---------------------------------------------------------------- harness side */

size_t fake_lane_count(void)
{
    size_t n = 0;
    for (struct lane *l = g_lanes; l; l = l->next_lane)
        n++;
    return n;
}

/* The i-th live lane, oldest first; NULL past the end. */
struct lane *fake_lane_at(size_t i)
{
    struct lane *l = g_lanes;
    while (l && i--)
        l = l->next_lane;
    return l;
}

size_t fake_lane_npending(const struct lane *l)
{
    return l->npending;
}

/* The i-th pending request's frame (0: the oldest; size prefix included),
 * or NULL. */
const uint8_t *fake_lane_pending(const struct lane *l, size_t i, size_t *len)
{
    struct fake_req *r = l->head;
    while (r && i--)
        r = r->next;
    if (!r)
        return NULL;
    *len = r->len;
    return r->frame;
}

/* Answers the oldest pending request with resp (the bytes after the size
 * prefix, as lane.c passes them). */
void fake_lane_answer(struct lane *l, const uint8_t *resp, size_t len)
{
    struct fake_req *r = pop(l);
    if (!r)
        abort();
    release(r);
    r->cb(r->arg, resp, len);
    free(r->frame);
    free(r);
}

/* The next n lane_send calls are refused as if out of memory. */
void fake_lane_refuse(int n)
{
    g_refuse = n;
}
