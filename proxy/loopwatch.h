/*
 * loopwatch.h - event-loop lag, and a watchdog that ends a process whose
 * loop has stopped turning.
 *
 * eosproxy is a sidecar: everything it does runs on one event loop, so a
 * callback that never returns (a probe that spins, a blocking write)
 * takes every client of the service down with it, and the process keeps
 * its ports open while answering nothing. loopwatch makes that visible
 * and short:
 *
 *  - a timer on the loop fires every LOOPWATCH_TICK_MS; how late it fires
 *    is the loop's lag (eosproxy_event_loop_lag_seconds), and each firing
 *    is a heartbeat;
 *  - a watchdog thread, the only other thread that looks at it, reads the
 *    heartbeat (an atomic) and, when it is older than stall_abort, writes
 *    one log line naming the stall and raises SIGABRT in the loop's
 *    thread, so the core dump shows the stuck stack and the container is
 *    restarted by its supervisor.
 *
 * The watchdog never touches loop objects.
 */
#ifndef EOSPROXY_LOOPWATCH_H
#define EOSPROXY_LOOPWATCH_H

#include <stdint.h>

struct event_base;
struct loopwatch;

#define LOOPWATCH_TICK_MS 100u

/*
 * Starts measuring lag on base and, when stall_abort_ms > 0, the watchdog
 * thread. Must be called from the loop's thread (the thread SIGABRT goes
 * to). NULL on error (logged).
 */
struct loopwatch *loopwatch_new(struct event_base *base, uint64_t stall_abort_ms);

/* Stops the watchdog (joins its thread) and the timer; NULL is safe. */
void loopwatch_free(struct loopwatch *lw);

#endif
