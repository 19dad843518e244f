/* auth.c -- constant-time bearer token comparison. */
#include "auth.h"

#include <string.h>

bool auth_bearer_matches(const char *expected, const char *header, size_t header_len) {
    static const char prefix[] = "Bearer ";
    const size_t prefix_len = sizeof prefix - 1;
    if (header == NULL) {
        return false;
    }
    size_t expected_len = strlen(expected);
    /* Compare over the expected length whatever was sent; fold every difference into `diff`. */
    unsigned int diff = (unsigned int)(header_len != prefix_len + expected_len);
    for (size_t i = 0; i < prefix_len + expected_len; i++) {
        unsigned char want =
            i < prefix_len ? (unsigned char)prefix[i] : (unsigned char)expected[i - prefix_len];
        unsigned char got = i < header_len ? (unsigned char)header[i] : 0;
        diff |= (unsigned int)(want ^ got);
    }
    return diff == 0 && expected_len > 0;
}
