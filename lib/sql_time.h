/* sql_time.h -- the one spelling of time in the stores' SQL text. Instants cross between C and
 * PostgreSQL as whole seconds since the Unix epoch (to_timestamp($n) on the way in,
 * SQL_EPOCH_S on the way out); calendar days as day numbers since 1970-01-01 (SQL_DAY_ZERO).
 * String-literal fragments, so a query stays one constant that the statement cache keys on. */
#ifndef LOYALTY_SQL_TIME_H
#define LOYALTY_SQL_TIME_H

/* Seconds since the epoch of a timestamp(tz) expression, rounded to the nearest second (a
 * numeric cast to bigint rounds). NULL stays NULL. */
#define SQL_EPOCH_S(ts) "extract(epoch FROM " ts ")::bigint"

/* As SQL_EPOCH_S, with NULL read as 0 (the API's "not set"). */
#define SQL_EPOCH_S_OR_0(ts) "coalesce(" SQL_EPOCH_S(ts) ", 0)"

/* Seconds since the epoch rounded down: for instants compared with the caller's clock, where
 * rounding up would place them in the future. */
#define SQL_EPOCH_S_FLOOR(ts) "floor(extract(epoch FROM " ts "))::bigint"

/* Microseconds since the epoch (keyset cursors that must order like the column). */
#define SQL_EPOCH_US(ts) "(extract(epoch FROM " ts ") * 1000000)::bigint"

/* The timestamptz of microseconds since the epoch in parameter `p` (e.g. "$3"). */
#define SQL_TS_OF_US(p) "(timestamptz 'epoch' + " p "::bigint * interval '1 microsecond')"

/* Day number 0; `date - SQL_DAY_ZERO` is a day number, `SQL_DAY_ZERO + n` its date. */
#define SQL_DAY_ZERO "date '1970-01-01'"

/* The date of the day number in parameter `p` (e.g. "$3"). */
#define SQL_DATE_OF_DAY(p) "(" SQL_DAY_ZERO " + " p "::int)"

#endif
