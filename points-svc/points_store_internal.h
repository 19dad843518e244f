/* points_store_internal.h -- what the points_store*.c files share and nobody else uses: the
 * day column macro and the lot-share array parameters. Not part of
 * points_store.h's interface. */
#ifndef POINTS_STORE_INTERNAL_H
#define POINTS_STORE_INTERNAL_H

#include "points_store.h"
#include "sql_time.h"

#include <libpq-fe.h>

#define DAY_TEXT(col) "coalesce(to_char(" col ", 'YYYY-MM-DD'), '')"

/* Appends the lot ids and points of s[0..n) as a text[] and a bigint[] parameter. */
void points_store_share_params(arena_t *a, db_params_t *p, const points_share_t *s, int n);

#endif
