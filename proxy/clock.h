/*
 * clock.h - the monotonic clock eosproxy's modules read (CLOCK_MONOTONIC:
 * never steps with the wall clock), and libevent timeouts from
 * milliseconds. Thread-safe (loopwatch reads it off the loop).
 */
#ifndef EOSPROXY_CLOCK_H
#define EOSPROXY_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

/* Monotonic time in microseconds / milliseconds. */
uint64_t clock_us(void);
uint64_t clock_ms(void);

/* ms as a struct timeval, for event_add(). */
struct timeval clock_tv(uint64_t ms);

#endif
