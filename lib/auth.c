/* auth.c -- bearer token check: case-insensitive scheme, constant-time token comparison. */
#include "auth.h"

#include <ctype.h>
#include <string.h>

bool auth_bearer_token(const char *header, size_t header_len, const char **token,
                       size_t *token_len) {
    static const char scheme[] = "bearer";
    const size_t scheme_len = sizeof scheme - 1;
    *token = NULL;
    *token_len = 0;
    if (header == NULL || header_len <= scheme_len || header[scheme_len] != ' ') {
        return false;
    }
    /* RFC 7235 §2.1: the scheme is case-insensitive ("Bearer", "bearer", "BEARER"), and one or
     * more spaces separate it from the credentials. Neither is secret, so both may branch. */
    for (size_t i = 0; i < scheme_len; i++) {
        if (tolower((unsigned char)header[i]) != scheme[i]) {
            return false;
        }
    }
    size_t start = scheme_len;
    while (start < header_len && header[start] == ' ') {
        start++;
    }
    *token = header + start;
    *token_len = header_len - start;
    return *token_len > 0;
}

bool auth_bearer_matches(const char *expected, const char *header, size_t header_len) {
    const char *token = NULL;
    size_t token_len = 0;
    if (!auth_bearer_token(header, header_len, &token, &token_len)) {
        return false;
    }
    size_t expected_len = strlen(expected);
    /* Compare over the expected length whatever was sent; fold every difference into `diff`. */
    unsigned int diff = (unsigned int)(token_len != expected_len);
    for (size_t i = 0; i < expected_len; i++) {
        unsigned char got = i < token_len ? (unsigned char)token[i] : 0;
        diff |= (unsigned int)((unsigned char)expected[i] ^ got);
    }
    return diff == 0 && expected_len > 0;
}
