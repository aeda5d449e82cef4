/*
 * test_reqbuf.c - the shared request buffer of the upgrade and
 * transactional engines (proxy/engines/reqbuf.c) and the lanes' Produce
 * frame built from it (engine_produce_frame): a copy or a taken buffer,
 * holders against references, bytes by reference or copied, and a frame
 * that is byte for byte kproduce_req_write's.
 */
#include "engine.h"
#include "kproduce.h"
#include "reqbuf.h"
#include "unit.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static void test_copy_and_take(void)
{
    uint8_t frame[32];
    for (size_t i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)i;
    struct reqbuf *c = reqbuf_new(frame, sizeof(frame), NULL);
    CHECK(c != NULL && c->data != frame && c->mem == NULL);
    CHECK(c && memcmp(c->data, frame, sizeof(frame)) == 0);
    CHECK_EQ(c ? reqbuf_release(c) : 0, sizeof(frame)); /* the only holder */

    uint8_t *mine = malloc(40);
    memcpy(mine + 4, frame, sizeof(frame));
    uint8_t *offered = mine;
    struct reqbuf *t = reqbuf_new(offered + 4, sizeof(frame), &mine);
    CHECK(t != NULL && mine == NULL);   /* taken */
    CHECK(t && t->data == offered + 4); /* not copied */
    CHECK(t && t->mem == offered);
    if (t) {
        reqbuf_hold(t);                  /* a batch */
        CHECK_EQ(reqbuf_release(t), 0);  /* the request goes first */
        CHECK_EQ(reqbuf_release(t), 32); /* the batch was the last holder: freed */
    }
}

static void test_references(void)
{
    size_t big = REQBUF_REF_MIN + 100;
    uint8_t *frame = malloc(big);
    memset(frame, 7, big);
    struct reqbuf *f = reqbuf_new(frame, big, NULL);
    free(frame);
    if (!f) {
        CHECK(f != NULL);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    CHECK_EQ(reqbuf_add_to(out, f, f->data, 10), 0); /* small: copied */
    CHECK_EQ(f->refs, 1);
    CHECK_EQ(reqbuf_add_to(out, f, f->data, big), 0); /* large: referenced */
    CHECK_EQ(f->refs, 2);
    CHECK_EQ(evbuffer_get_length(out), 10 + big);
    /* the holder goes, the reference keeps the memory (ASan would see a
     * use after free below otherwise) */
    CHECK_EQ(reqbuf_release(f), big);
    uint8_t b0 = 0;
    evbuffer_copyout(out, &b0, 1);
    CHECK_EQ(b0, 7);
    evbuffer_free(out); /* drops the reference: freed */
}

/* engine_produce_frame gives the bytes kproduce_req_write gives, with the
 * large batch by reference and the small one copied. */
static void test_produce_frame(void)
{
    size_t sizes[2] = {REQBUF_REF_MIN * 2, 100};
    uint8_t *frame = malloc(sizes[0] + sizes[1]);
    for (size_t i = 0; i < sizes[0] + sizes[1]; i++)
        frame[i] = (uint8_t)(i * 31 + 1);
    struct reqbuf *f = reqbuf_new(frame, sizes[0] + sizes[1], NULL);
    free(frame);
    if (!f) {
        CHECK(f != NULL);
        return;
    }
    kproduce_partition_t parts[2] = {{0, {f->data, (int32_t)sizes[0]}},
                                     {3, {f->data + sizes[0], (int32_t)sizes[1]}}};
    kproduce_topic_t topics[2] = {{{"a", 1}, 1, parts}, {{"bb", 2}, 1, parts + 1}};
    kproduce_req_t req = {{"tid", 3}, -1, 30000, 2, topics};
    struct reqbuf *bufs[2] = {f, f};
    for (int16_t ver = 3; ver <= 9; ver++) {
        kwriter_t whole;
        kw_init(&whole, 0);
        CHECK_EQ(kproduce_req_write(&whole, ver, 5, (kstr_t){"c", 1}, &req), 0);
        struct evbuffer *out = engine_produce_frame(ver, 5, (kstr_t){"c", 1}, &req, bufs);
        CHECK(out != NULL);
        CHECK_EQ(f->refs, 2); /* the large batch only */
        if (out) {
            size_t n = evbuffer_get_length(out);
            const uint8_t *p = evbuffer_pullup(out, -1);
            CHECK(n == whole.len && p && memcmp(p, whole.buf, n) == 0);
            evbuffer_free(out);
        }
        CHECK_EQ(f->refs, 1);
        kw_free(&whole);
    }
    CHECK(engine_produce_frame(2, 5, (kstr_t){"c", 1}, &req, bufs) == NULL); /* no v2 */
    CHECK_EQ(f->refs, 1);
    CHECK_EQ(reqbuf_release(f), sizes[0] + sizes[1]);
}

int main(void)
{
    test_copy_and_take();
    test_references();
    test_produce_frame();
    return unit_done("test_reqbuf");
}
