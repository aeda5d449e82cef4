/*
 * fake_redisc.h - the controls of fake_redisc.c, the in-process stand-in
 * for redisc.c that the dedup fuzz target and the dedup unit tests link
 * in its place (contract in fake_redisc.c's header comment).
 */
#ifndef EOSPROXY_FAKE_REDISC_H
#define EOSPROXY_FAKE_REDISC_H

#include "redisc.h"

#include <stddef.h>

/* The one client the engine made (NULL before). */
struct redisc *fake_redisc(void);
/* Redis up or down, reached at the next loop turn. */
void fake_redisc_set_up(int up);
/* The next n sends return 0 while redisc_ready() says 1. */
void fake_redisc_refuse_sends(int n);
/* Batches sent and not yet answered, and the i-th of them (*cancelled:
 * its callback was cancelled). */
size_t fake_redisc_unanswered(void);
const redisc_batch_t *fake_redisc_unanswered_batch(size_t i, int *cancelled);
/* Command k of b: its argc, argv and lens. */
int fake_redisc_cmd(const redisc_batch_t *b, size_t k, const char *const **argv,
                    const size_t **lens);
/* Answers the i-th unanswered batch (delivered at the next loop turn). */
void fake_redisc_answer(size_t i, int err, const redisc_reply_t *replies, size_t n);
/* Called just before a batch's callback runs (not for cancelled ones). */
extern void (*fake_redisc_observer)(const redisc_batch_t *b, int err, const redisc_reply_t *replies,
                                    size_t n);

#endif
