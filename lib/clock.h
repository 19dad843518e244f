/* clock.h -- the two clocks the runtime's threads wait on: an absolute CLOCK_REALTIME instant
 * for pthread_cond_timedwait, and CLOCK_MONOTONIC milliseconds for intervals. */
#ifndef LOYALTY_CLOCK_H
#define LOYALTY_CLOCK_H

#include <stdint.h>
#include <time.h>

/** The CLOCK_REALTIME instant `ms` milliseconds from now (ms >= 0), as
 *  pthread_cond_timedwait wants its deadline. */
struct timespec clock_realtime_after_ms(int64_t ms);

/** Milliseconds of CLOCK_MONOTONIC (for intervals: never jumps with the wall clock). */
int64_t clock_monotonic_ms(void);

#endif
