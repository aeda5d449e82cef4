/*
 * reqbuf.c - a client request's bytes, shared and referenced. See reqbuf.h.
 */
#include "reqbuf.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

struct reqbuf *reqbuf_new(const uint8_t *frame, size_t len, uint8_t **take)
{
    struct reqbuf *f = malloc(sizeof(*f) + (take ? 0 : len ? len : 1));
    if (!f)
        return NULL;
    f->refs = f->holders = 1;
    f->len = len;
    if (take) {
        f->mem = *take;
        f->data = f->mem + (frame - f->mem);
        *take = NULL;
    } else {
        f->mem = NULL;
        f->data = (uint8_t *)(f + 1);
        memcpy(f->data, frame, len);
    }
    return f;
}

void reqbuf_hold(struct reqbuf *f)
{
    f->holders++;
    f->refs++;
}

void reqbuf_unref(struct reqbuf *f)
{
    if (--f->refs)
        return;
    free(f->mem);
    free(f);
}

size_t reqbuf_release(struct reqbuf *f)
{
    size_t gone = --f->holders == 0 ? f->len : 0;
    reqbuf_unref(f);
    return gone;
}

/* evbuffer cleanup of bytes referenced from a reqbuf (arg). */
static void ref_gone(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    reqbuf_unref(arg);
}

int reqbuf_add_to(struct evbuffer *out, struct reqbuf *f, const uint8_t *p, size_t n)
{
    if (n < REQBUF_REF_MIN)
        return evbuffer_add(out, p, n);
    f->refs++;
    if (evbuffer_add_reference(out, p, n, ref_gone, f) == 0)
        return 0;
    reqbuf_unref(f);
    return -1;
}
