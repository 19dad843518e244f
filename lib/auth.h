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

#endif
