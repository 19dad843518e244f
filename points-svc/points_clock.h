/* points_clock.h -- merchants' local clocks (their local day, the end of a pending window),
 * which every earn needs: answered in process from a cached local day of each time zone while
 * no time-zone rule is involved, else by PostgreSQL (points_store_local_clock). */
#ifndef POINTS_CLOCK_H
#define POINTS_CLOCK_H

#include "db.h"
#include "points_rules.h"
#include "status.h"

/** The local clock of at_s in tz, add_days local days later (points_local_clock_t).
 *  Thread-safe. */
status_t points_clock_get(db_t *db, const char *tz, int64_t at_s, int64_t add_days,
                          points_local_clock_t *out);

#endif
