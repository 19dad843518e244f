/* pgarray.h -- PostgreSQL text[] literals: encoding a list of strings as a query parameter and
 * decoding a text[] column, so that lists travel through parameterized queries. */
#ifndef LOYALTY_PGARRAY_H
#define LOYALTY_PGARRAY_H

#include "arena.h"

#include <stdbool.h>
#include <stddef.h>

/** The literal {"a","b\"c"} for items[0..n) in arena memory; every element is quoted. */
char *pgarray_encode(arena_t *a, char *const *items, size_t n);

/** Parses a one-dimensional text[] literal into arena strings; NULL elements become "".
 *  Returns false on malformed input. */
bool pgarray_decode(arena_t *a, const char *literal, char ***items, size_t *n);

#endif
