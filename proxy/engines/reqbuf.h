/*
 * reqbuf.h - a client request's bytes, shared by an engine's request and
 * the batches taken from it, and referenced by the lanes while a batch is
 * being written.
 *
 * The upgrade and transactional engines copy a ProduceRequest once (or
 * take the buffer it was read into), point each batch into it, rewrite
 * batch headers there, and send batches from there by reference, so the
 * records are never copied again.
 *
 * Two counts: holders (the request and its live batches: what the engine
 * counts in its bytes-held bound, reqbuf_release) and refs (the holders
 * and the lanes' references: what keeps the memory, reqbuf_unref). A
 * lane's reference may outlive the engine.
 */
#ifndef EOSPROXY_REQBUF_H
#define EOSPROXY_REQBUF_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct reqbuf {
    size_t refs, holders, len;
    uint8_t *data; /* the frame: in mem, or right after this struct */
    uint8_t *mem;  /* a caller's buffer taken (reqbuf_new with take) */
};

/*
 * A reqbuf with one holder for len bytes at frame. take NULL: frame is
 * copied. Else *take is the malloc'd buffer frame lies in: it is taken
 * (set to NULL) and freed with the reqbuf. NULL on OOM (nothing taken).
 */
struct reqbuf *reqbuf_new(const uint8_t *frame, size_t len, uint8_t **take);

/* One more holder (a batch pointing into it). */
void reqbuf_hold(struct reqbuf *f);

/* A holder lets go. Returns f->len when it was the last holder (the
 * caller takes it off its bytes-held count), else 0. f may be freed. */
size_t reqbuf_release(struct reqbuf *f);

/* Drops a reference that is not a holder; the last one frees f. */
void reqbuf_unref(struct reqbuf *f);

/*
 * Appends n bytes at p (inside f) to out: by reference when n is at least
 * REQBUF_REF_MIN (f gets a reference, dropped when out lets go of them),
 * else copied (cheaper than a chain of their own). Returns 0 or -1.
 */
#ifndef REQBUF_REF_MIN
#define REQBUF_REF_MIN 4096u
#endif
int reqbuf_add_to(struct evbuffer *out, struct reqbuf *f, const uint8_t *p, size_t n);

#endif
