/* points_store_internal.h -- what the points_store*.c files share and nobody else uses: the
 * time and day column macros, the cell copier and the lot-share array parameters. Not part of
 * points_store.h's interface. */
#ifndef POINTS_STORE_INTERNAL_H
#define POINTS_STORE_INTERNAL_H

#include "points_store.h"

#include <libpq-fe.h>

#define EPOCH(col) "floor(extract(epoch FROM " col "))::bigint"
#define DAY_TEXT(col) "coalesce(to_char(" col ", 'YYYY-MM-DD'), '')"

static inline char *cell(arena_t *a, const PGresult *r, int row, int c) {
    return arena_strdup(a, db_get_str(r, row, c));
}

/* Appends the lot ids and points of s[0..n) as a text[] and a bigint[] parameter. */
void points_store_share_params(arena_t *a, db_params_t *p, const points_share_t *s, int n);

#endif
