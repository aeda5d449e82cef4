/*
 * loopwatch.c - event-loop lag and the stall watchdog. See loopwatch.h.
 */
#include "loopwatch.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The watchdog looks at most this long apart (shorter for short limits). */
#define WATCH_PERIOD_MAX_MS 1000u
/* A stalled stderr must not keep the watchdog from aborting. */
#define WATCH_LOG_WAIT_MS 1000
/* If SIGABRT in the loop's thread has not ended the process by then. */
#define WATCH_ABORT_GRACE_S 5

struct loopwatch {
    struct event *tick;
    uint64_t last_tick_us; /* loop thread only */
    _Atomic uint64_t beat_ms;
    uint64_t stall_ms;
    pthread_t loop_thread;
    pthread_t thread;
    int have_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* under mu */
};

/* Loop thread: how late this tick is is the lag; it is also the heartbeat. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loopwatch *lw = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_us();
    uint64_t due = lw->last_tick_us + LOOPWATCH_TICK_MS * 1000u;
    metrics_observe_loop_lag(now > due ? now - due : 0);
    lw->last_tick_us = now;
    atomic_store_explicit(&lw->beat_ms, now / 1000u, memory_order_relaxed);
}

/*
 * Watchdog thread: one line to stderr, written only if stderr takes it
 * within WATCH_LOG_WAIT_MS (the loop may be stuck writing to it, holding
 * stdio's lock, so neither stdio nor log.c is used here).
 */
static void stall_log(uint64_t stalled_ms, uint64_t limit_ms)
{
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "error loopwatch: the event loop has not turned for %llu ms "
                     "(admin.stall_abort %llu ms): aborting with a core dump of the loop's "
                     "thread\n",
                     (unsigned long long)stalled_ms, (unsigned long long)limit_ms);
    struct pollfd p = {STDERR_FILENO, POLLOUT, 0};
    if (n > 0 && poll(&p, 1, WATCH_LOG_WAIT_MS) == 1 && (p.revents & POLLOUT)) {
        ssize_t w = write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line));
        (void)w;
    }
}

/* Sleeps up to ms; returns 1 when loopwatch_free asked the thread to stop. */
static int watch_sleep(struct loopwatch *lw, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lw->mu);
    int rc = 0;
    while (!lw->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&lw->cv, &lw->mu, &until);
    int stop = lw->stopping;
    pthread_mutex_unlock(&lw->mu);
    return stop;
}

static void *watch_main(void *arg)
{
    struct loopwatch *lw = arg;
    uint64_t period = lw->stall_ms / 4;
    if (period > WATCH_PERIOD_MAX_MS)
        period = WATCH_PERIOD_MAX_MS;
    if (period == 0)
        period = 1;
    uint64_t prev = clock_ms();
    while (!watch_sleep(lw, period)) {
        uint64_t beat = atomic_load_explicit(&lw->beat_ms, memory_order_relaxed);
        uint64_t now = clock_ms();
        /* Woken far too late: the whole process was stopped (SIGSTOP, a
         * paused container or VM); give the loop a turn before judging. */
        int overslept = now - prev > 2 * period + LOOPWATCH_TICK_MS;
        prev = now;
        if (overslept || now <= beat || now - beat < lw->stall_ms)
            continue;
        stall_log(now - beat, lw->stall_ms);
        pthread_kill(lw->loop_thread, SIGABRT);
        sleep(WATCH_ABORT_GRACE_S);
        abort();
    }
    return NULL;
}

/* SIGABRT must end the process with a core even if something ignored it. */
static void restore_sigabrt(void)
{
    struct sigaction sa;
    if (sigaction(SIGABRT, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
        signal(SIGABRT, SIG_DFL);
}

static int start_thread(struct loopwatch *lw)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
        pthread_cond_init(&lw->cv, &ca)) {
        pthread_condattr_destroy(&ca);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&lw->mu, NULL)) {
        pthread_cond_destroy(&lw->cv);
        return -1;
    }
    /* The watchdog takes no signals: they are the loop's (libevent's). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&lw->thread, NULL, watch_main, lw);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_mutex_destroy(&lw->mu);
        pthread_cond_destroy(&lw->cv);
        return -1;
    }
    lw->have_thread = 1;
    return 0;
}

struct loopwatch *loopwatch_new(struct event_base *base, uint64_t stall_abort_ms)
{
    struct loopwatch *lw = calloc(1, sizeof(*lw));
    if (!lw)
        return NULL;
    lw->stall_ms = stall_abort_ms;
    lw->loop_thread = pthread_self();
    lw->last_tick_us = clock_us();
    atomic_store(&lw->beat_ms, lw->last_tick_us / 1000u);
    struct timeval tv = {0, (suseconds_t)LOOPWATCH_TICK_MS * 1000};
    lw->tick = event_new(base, -1, EV_PERSIST, tick_cb, lw);
    if (!lw->tick || event_add(lw->tick, &tv)) {
        log_error("loopwatch: cannot start the lag timer");
        loopwatch_free(lw);
        return NULL;
    }
    if (stall_abort_ms == 0)
        return lw;
    restore_sigabrt();
    if (start_thread(lw)) {
        log_error("loopwatch: cannot start the watchdog thread");
        loopwatch_free(lw);
        return NULL;
    }
    log_info("loopwatch: the process aborts if its event loop stalls for %llu ms",
             (unsigned long long)stall_abort_ms);
    return lw;
}

void loopwatch_free(struct loopwatch *lw)
{
    if (!lw)
        return;
    if (lw->have_thread) {
        pthread_mutex_lock(&lw->mu);
        lw->stopping = 1;
        pthread_cond_signal(&lw->cv);
        pthread_mutex_unlock(&lw->mu);
        pthread_join(lw->thread, NULL);
        pthread_mutex_destroy(&lw->mu);
        pthread_cond_destroy(&lw->cv);
    }
    if (lw->tick)
        event_free(lw->tick);
    free(lw);
}
