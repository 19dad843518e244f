/* ids.h -- server-generated identifiers and random tokens. Ids are "<prefix>_" followed by 26
 * Crockford base32 characters: 48 bits of milliseconds then 80 random bits, so that ids sort by
 * creation time (stable cursor paging) and cannot be guessed. */
#ifndef LOYALTY_IDS_H
#define LOYALTY_IDS_H

#include <stddef.h>
#include <stdint.h>

#define ID_PREFIX_MAX 8
#define ID_MAX (ID_PREFIX_MAX + 1 + 26 + 1)

/** Writes a new id into out[ID_MAX]; prefix is 1..8 lowercase letters. */
void id_generate(const char *prefix, char out[ID_MAX]);

/** Writes `n` random characters from `alphabet` (uniform, no modulo bias) and a NUL into out,
 *  which holds n+1 bytes. */
void id_random_token(const char *alphabet, size_t n, char *out);

/** Fills buf with cryptographically random bytes (getrandom). */
void id_random_bytes(void *buf, size_t n);

#endif
