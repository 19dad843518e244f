/* cursor.h -- opaque paging cursors for List RPCs: the position after the last row returned,
 * as a sort key and an id (keyset pagination, so pages stay stable while rows are added).
 * Encoded as URL-safe base64 of "v1\n<key>\n<id>", so clients cannot depend on the layout. */
#ifndef LOYALTY_CURSOR_H
#define LOYALTY_CURSOR_H

#include "arena.h"
#include "status.h"

#include <stdint.h>

#define PAGE_SIZE_DEFAULT 50
#define PAGE_SIZE_MAX 500
#define CURSOR_MAX 512

/** The cursor after (key, id); key may be "" for id-only ordering. */
char *cursor_encode(arena_t *a, const char *key, const char *id);

/** Decodes a cursor from a request; "" gives key and id "" (the first page). A malformed
 *  cursor is INVALID_ARGUMENT naming `field`. */
status_t cursor_decode(arena_t *a, const char *field, const char *cursor, char **key, char **id);

/** The page size to use for a requested one: 0 -> PAGE_SIZE_DEFAULT; negative or above
 *  max_size -> INVALID_ARGUMENT naming `field`. */
status_t cursor_page_size(const char *field, int32_t requested, int32_t max_size, int32_t *out);

#endif
