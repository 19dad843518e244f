/* pgarray.h -- PostgreSQL array literals: encoding a list of strings, integers or booleans as a
 * query parameter and decoding a text[] column, so that lists travel through parameterized
 * queries (unnest($1::bigint[]) ...). */
#ifndef LOYALTY_PGARRAY_H
#define LOYALTY_PGARRAY_H

#include "arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The most bytes pgarray_quote writes for a string of `len` bytes. */
#define PGARRAY_QUOTED_MAX(len) (2 * (len) + 2)

/** Writes s as one quoted element of an array literal ("b\"c"; no NUL) and returns its length,
 *  at most PGARRAY_QUOTED_MAX(strlen(s)). */
size_t pgarray_quote(char *out, const char *s);

/** The literal {"a","b\"c"} for items[0..n) in arena memory; every element is quoted. */
char *pgarray_encode(arena_t *a, char *const *items, size_t n);

/** As pgarray_encode, with a NULL item as the array's NULL element. */
char *pgarray_encode_nullable(arena_t *a, char *const *items, size_t n);

/** The literal {1,-2,3} of v[0..n) for a bigint[] parameter, in arena memory. */
char *pgarray_encode_int64(arena_t *a, const int64_t *v, size_t n);

/** The literal {t,f} of v[0..n) for a boolean[] parameter, in arena memory. */
char *pgarray_encode_bool(arena_t *a, const bool *v, size_t n);

/** Bytes as hex text (two lowercase digits a byte), which decode(x, 'hex') turns back into
 *  bytea: how bytea values travel inside a text[] parameter. In arena memory. */
char *pgarray_hex(arena_t *a, const unsigned char *bytes, size_t n);

/** Parses a one-dimensional text[] literal into arena strings. Returns false on malformed
 *  input and on an array with a NULL element, which a list of strings cannot tell from ""
 *  (use pgarray_decode_nullable where NULL elements can occur). */
bool pgarray_decode(arena_t *a, const char *literal, char ***items, size_t *n);

/** As pgarray_decode, with NULL elements as NULL pointers (an unquoted NULL in any letter
 *  case, as PostgreSQL reads it; a quoted "NULL" is the text NULL). */
bool pgarray_decode_nullable(arena_t *a, const char *literal, char ***items, size_t *n);

/** Parses a one-dimensional bigint[] literal ({1,-2,3}) into arena numbers. Returns false, with
 *  *v NULL and *n 0, on malformed input, a NULL element or a number out of int64 range. */
bool pgarray_decode_int64(arena_t *a, const char *literal, int64_t **v, size_t *n);

#endif
