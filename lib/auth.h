/* auth.h -- bearer-token check for incoming calls (docs/architecture.md#conventions). */
#ifndef LOYALTY_AUTH_H
#define LOYALTY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/** True when header[0..header_len) is "Bearer <expected>": the scheme in any letter case and
 *  one or more spaces before the token (RFC 7235 §2.1). The token comparison takes the same
 *  time whatever the content, so the token cannot be guessed byte by byte. NULL header is
 *  false. */
bool auth_bearer_matches(const char *expected, const char *header, size_t header_len);

/** The token of a "Bearer <token>" header (same parsing as auth_bearer_matches): true with
 *  *token pointing into header and *token_len > 0, false when the header is not one. */
bool auth_bearer_token(const char *header, size_t header_len, const char **token,
                       size_t *token_len);

#endif
