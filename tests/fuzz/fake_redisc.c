/*
 * fake_redisc.c - an in-process stand-in for redisc.c: the whole redisc.h
 * API at the hiredis callback boundary, for the dedup engine's fuzz target
 * (fuzz_dedup.c, which declares the fake_redisc_* control functions).
 *
 * No socket and no hiredis. A batch sent is recorded with its commands
 * (kept as argv) and waits until the harness answers it
 * (fake_redisc_answer) with replies it made up, or with REDISC_EDOWN /
 * REDISC_ETIMEOUT. Everything reaches the engine later, from the event
 * loop, as redisc.h promises, in the order redisc.c produces it:
 *   - an answer runs the batch's callback (never after redisc_cancel, and
 *     never inside redisc_batch_send); on REDISC_OK there is one reply per
 *     command, in command order;
 *   - REDISC_ETIMEOUT runs its callback while still up, then the
 *     connection goes down as below (redisc.c drops the connection);
 *   - going down (fake_redisc_set_up(0)) calls on_state(0) first, then
 *     fails every batch in flight with REDISC_EDOWN; going up calls
 *     on_state(1).
 * fake_redisc_refuse_sends(n) makes the next n sends return 0 while
 * redisc_ready() says 1, as redisc.c does when hiredis is disconnecting.
 * A caller that breaks the contract (redisc_free inside a callback, a
 * second client, a bad batch) aborts.
 */
#include "fake_redisc.h"
#include "redisc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* One command: argv[i][0..lens[i]) (NUL-terminated copies). */
struct fcmd {
    int argc;
    char **argv;
    size_t *lens;
};

struct redisc_batch {
    struct fcmd *cmds;
    size_t n, cap;
};

/* A batch sent and not yet delivered. */
struct fbatch {
    uint64_t id;
    redisc_batch_cb *cb; /* NULL once cancelled */
    void *arg;
    redisc_batch_t *b;
    int answered; /* the harness answered: delivered at the next loop turn */
    int err;
    redisc_reply_t *replies;
    size_t nreplies;
    struct fbatch *next;
};

struct redisc {
    struct event_base *base;
    redisc_state_cb *on_state;
    void *arg;
    int up;
    int want; /* -1: no flip pending; 0 or 1: state to reach at the next turn */
    struct event *ev;
    uint64_t next_id;
    struct fbatch *head; /* in send order */
    int in_cb;
    int refuse;
};

/* The harness watches what the engine is told: called just before a
 * batch's callback runs (not for cancelled batches). */
void (*fake_redisc_observer)(const redisc_batch_t *b, int err, const redisc_reply_t *replies,
                             size_t n);

static struct redisc *g_rc;

/* ---------------------------------------------------------------- batches */

redisc_batch_t *redisc_batch_new(void)
{
    return calloc(1, sizeof(redisc_batch_t));
}

void redisc_batch_free(redisc_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        for (int k = 0; k < b->cmds[i].argc; k++)
            free(b->cmds[i].argv[k]);
        free(b->cmds[i].argv);
        free(b->cmds[i].lens);
    }
    free(b->cmds);
    free(b);
}

size_t redisc_batch_count(const redisc_batch_t *b)
{
    return b ? b->n : 0;
}

int redisc_batch_add(redisc_batch_t *b, int argc, const char *const *argv, const size_t *lens)
{
    if (!b || argc <= 0)
        return -1;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct fcmd *c = realloc(b->cmds, cap * sizeof(*c));
        if (!c)
            return -1;
        b->cmds = c;
        b->cap = cap;
    }
    struct fcmd *c = &b->cmds[b->n];
    c->argc = argc;
    c->argv = calloc((size_t)argc, sizeof(*c->argv));
    c->lens = calloc((size_t)argc, sizeof(*c->lens));
    if (!c->argv || !c->lens)
        abort();
    for (int k = 0; k < argc; k++) {
        c->argv[k] = malloc(lens[k] + 1);
        if (!c->argv[k])
            abort();
        memcpy(c->argv[k], argv[k], lens[k]);
        c->argv[k][lens[k]] = 0;
        c->lens[k] = lens[k];
    }
    b->n++;
    return 0;
}

int fake_redisc_cmd(const redisc_batch_t *b, size_t k, const char *const **argv,
                    const size_t **lens)
{
    if (k >= b->n)
        abort();
    *argv = (const char *const *)b->cmds[k].argv;
    *lens = b->cmds[k].lens;
    return b->cmds[k].argc;
}

/* ---------------------------------------------------------------- delivery */

static void free_replies(redisc_reply_t *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        free(r[i].str);
    free(r);
}

static void fbatch_free(struct fbatch *f)
{
    redisc_batch_free(f->b);
    free_replies(f->replies, f->nreplies);
    free(f);
}

static void unlink_batch(struct redisc *rc, struct fbatch *f)
{
    struct fbatch **pp = &rc->head;
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
}

/* Runs f's callback (unless cancelled) with its outcome, then frees it. */
static void deliver(struct redisc *rc, struct fbatch *f, int err)
{
    unlink_batch(rc, f);
    if (f->cb) {
        const redisc_reply_t *r = err ? NULL : f->replies;
        size_t n = err ? 0 : f->nreplies;
        if (fake_redisc_observer)
            fake_redisc_observer(f->b, err, r, n);
        rc->in_cb = 1;
        f->cb(f->arg, err, r, n);
        rc->in_cb = 0;
    }
    fbatch_free(f);
}

/* The connection is lost: on_state(0), then every batch fails. */
static void go_down(struct redisc *rc)
{
    int was_up = rc->up;
    rc->up = 0;
    if (was_up && rc->on_state) {
        rc->in_cb = 1;
        rc->on_state(rc->arg, 0);
        rc->in_cb = 0;
    }
    while (rc->head)
        deliver(rc, rc->head, REDISC_EDOWN);
}

static void go_up(struct redisc *rc)
{
    if (rc->up)
        return;
    rc->up = 1;
    if (rc->on_state) {
        rc->in_cb = 1;
        rc->on_state(rc->arg, 1);
        rc->in_cb = 0;
    }
}

static void turn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redisc *rc = arg;
    (void)fd;
    (void)what;
    for (;;) {
        struct fbatch *f = rc->head;
        while (f && !f->answered)
            f = f->next;
        if (!f)
            break;
        int err = f->err;
        deliver(rc, f, err);
        if (err == REDISC_ETIMEOUT)
            go_down(rc);
    }
    int want = rc->want;
    rc->want = -1;
    if (want == 0)
        go_down(rc);
    else if (want == 1)
        go_up(rc);
}

static void schedule(struct redisc *rc)
{
    if (!event_pending(rc->ev, EV_TIMEOUT, NULL))
        event_active(rc->ev, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- API */

uint64_t redisc_batch_send(struct redisc *rc, redisc_batch_t *b, redisc_batch_cb *cb, void *arg)
{
    if (!b)
        return 0;
    if (!rc || !rc->up || b->n == 0 || rc->refuse > 0) {
        if (rc && rc->up && b->n && rc->refuse > 0)
            rc->refuse--;
        redisc_batch_free(b);
        return 0;
    }
    struct fbatch *f = calloc(1, sizeof(*f));
    if (!f)
        abort();
    f->id = ++rc->next_id;
    f->cb = cb;
    f->arg = arg;
    /* the caller's batch is gone, as redisc.c frees it once encoded: a use
     * after send reads freed memory (ASan); the commands live on here */
    f->b = malloc(sizeof(*f->b));
    if (!f->b)
        abort();
    *f->b = *b;
    free(b);
    struct fbatch **pp = &rc->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = f;
    return f->id;
}

void redisc_cancel(struct redisc *rc, uint64_t id)
{
    if (!rc || !id)
        return;
    for (struct fbatch *f = rc->head; f; f = f->next) {
        if (f->id == id) {
            f->cb = NULL;
            return;
        }
    }
}

int redisc_ready(const struct redisc *rc)
{
    return rc && rc->up;
}

struct redisc *redisc_new(struct event_base *base, const char *url, uint64_t timeout_ms,
                          redisc_state_cb *on_state, void *arg)
{
    (void)timeout_ms;
    if (g_rc || !base || !url || strncmp(url, "redis://", 8) != 0)
        abort(); /* one client per engine, with a url config.c validated */
    struct redisc *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->base = base;
    rc->on_state = on_state;
    rc->arg = arg;
    rc->want = -1;
    rc->ev = event_new(base, -1, 0, turn_cb, rc);
    if (!rc->ev) {
        free(rc);
        return NULL;
    }
    g_rc = rc;
    return rc;
}

void redisc_free(struct redisc *rc)
{
    if (!rc)
        return;
    if (rc->in_cb || rc != g_rc)
        abort(); /* must not be called from inside a redisc callback */
    while (rc->head) {
        struct fbatch *f = rc->head;
        rc->head = f->next;
        fbatch_free(f);
    }
    event_free(rc->ev);
    free(rc);
    g_rc = NULL;
}

/* ---------------------------------------------------------------- control */

/* The client the engine created, or NULL. */
struct redisc *fake_redisc(void)
{
    return g_rc;
}

/* The connection comes up (1) or goes down (0) at the next loop turn. */
void fake_redisc_set_up(int up)
{
    if (!g_rc)
        return;
    g_rc->want = up ? 1 : 0;
    schedule(g_rc);
}

void fake_redisc_refuse_sends(int n)
{
    if (g_rc)
        g_rc->refuse = n;
}

static struct fbatch *nth_unanswered(size_t i)
{
    for (struct fbatch *f = g_rc ? g_rc->head : NULL; f; f = f->next) {
        if (!f->answered && i-- == 0)
            return f;
    }
    return NULL;
}

/* Batches sent and not answered yet (cancelled ones included). */
size_t fake_redisc_unanswered(void)
{
    size_t n = 0;
    for (struct fbatch *f = g_rc ? g_rc->head : NULL; f; f = f->next)
        n += !f->answered;
    return n;
}

const redisc_batch_t *fake_redisc_unanswered_batch(size_t i, int *cancelled)
{
    struct fbatch *f = nth_unanswered(i);
    if (!f)
        abort();
    if (cancelled)
        *cancelled = f->cb == NULL;
    return f->b;
}

/*
 * Answers the i-th unanswered batch: err, or REDISC_OK with replies[0..n)
 * (copied; n must be its command count). Delivered at the next loop turn.
 */
void fake_redisc_answer(size_t i, int err, const redisc_reply_t *replies, size_t n)
{
    struct fbatch *f = nth_unanswered(i);
    if (!f || (err == REDISC_OK && n != f->b->n))
        abort();
    f->answered = 1;
    f->err = err;
    if (err == REDISC_OK) {
        f->replies = calloc(n, sizeof(*f->replies));
        if (!f->replies)
            abort();
        f->nreplies = n;
        for (size_t k = 0; k < n; k++) {
            f->replies[k] = replies[k];
            f->replies[k].str = NULL;
            if (replies[k].str) {
                f->replies[k].str = malloc(replies[k].len + 1);
                if (!f->replies[k].str)
                    abort();
                memcpy(f->replies[k].str, replies[k].str, replies[k].len);
                f->replies[k].str[replies[k].len] = 0;
            }
        }
    }
    schedule(g_rc);
}
