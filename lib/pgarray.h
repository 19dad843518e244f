/* pgarray.h -- PostgreSQL text[] literals: encoding a list of strings as a query parameter and
 * decoding a text[] column, so that lists travel through parameterized queries. */
#ifndef LOYALTY_PGARRAY_H
#define LOYALTY_PGARRAY_H

#include "arena.h"

#include <stdbool.h>
#include <stddef.h>

/** The literal {"a","b\"c"} for items[0..n) in arena memory; every element is quoted. */
char *pgarray_encode(arena_t *a, char *const *items, size_t n);

/** Parses a one-dimensional text[] literal into arena strings. Returns false on malformed
 *  input and on an array with a NULL element, which a list of strings cannot tell from ""
 *  (use pgarray_decode_nullable where NULL elements can occur). */
bool pgarray_decode(arena_t *a, const char *literal, char ***items, size_t *n);

/** As pgarray_decode, with NULL elements as NULL pointers (an unquoted NULL in any letter
 *  case, as PostgreSQL reads it; a quoted "NULL" is the text NULL). */
bool pgarray_decode_nullable(arena_t *a, const char *literal, char ***items, size_t *n);

#endif
