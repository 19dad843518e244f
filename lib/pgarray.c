/* pgarray.c -- array literal encoding (text[], bigint[], boolean[]) and text[] / bigint[]
 * decoding. */
#include "pgarray.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t pgarray_quote(char *out, const char *s) {
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
        }
        out[o++] = *p;
    }
    out[o++] = '"';
    return o;
}

char *pgarray_encode_nullable(arena_t *a, char *const *items, size_t n) {
    size_t cap = 3;
    for (size_t i = 0; i < n; i++) {
        cap += (items[i] ? PGARRAY_QUOTED_MAX(strlen(items[i])) : 4) + 1;
    }
    char *out = arena_alloc(a, cap);
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            out[o++] = ',';
        }
        if (items[i] == NULL) {
            memcpy(out + o, "NULL", 4);
            o += 4;
        } else {
            o += pgarray_quote(out + o, items[i]);
        }
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

char *pgarray_encode(arena_t *a, char *const *items, size_t n) {
    return pgarray_encode_nullable(a, items, n); /* no item is NULL */
}

bool pgarray_decode_nullable(arena_t *a, const char *literal, char ***items, size_t *n) {
    *items = NULL;
    *n = 0;
    size_t len = strlen(literal);
    if (len < 2 || literal[0] != '{' || literal[len - 1] != '}') {
        return false;
    }
    size_t count = 0;
    if (len > 2) { /* upper bound on elements: commas + 1 */
        count = 1;
        for (size_t i = 1; i + 1 < len; i++) {
            count += literal[i] == ',';
        }
    }
    char **out = arena_alloc(a, (count ? count : 1) * sizeof *out);
    char *buf = arena_alloc(a, len + 1);
    size_t k = 0;
    const char *p = literal + 1;
    const char *end = literal + len - 1;
    while (p < end) {
        char *start = buf;
        size_t w = 0;
        bool is_null = false;
        if (*p == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                }
                start[w++] = *p++;
            }
            if (p >= end) {
                return false;
            }
            p++; /* closing quote */
        } else {
            while (p < end && *p != ',') {
                start[w++] = *p++;
            }
            /* PostgreSQL reads an unquoted NULL in any letter case as the null element, and
             * quotes a text that spells it. */
            is_null = w == 4 && strncasecmp(start, "NULL", 4) == 0;
        }
        start[w] = '\0';
        buf += w + 1;
        if (k == count) {
            return false;
        }
        out[k++] = is_null ? NULL : start;
        if (p < end) {
            if (*p != ',') {
                return false;
            }
            p++;
        }
    }
    *items = out;
    *n = k;
    return true;
}

bool pgarray_decode(arena_t *a, const char *literal, char ***items, size_t *n) {
    if (!pgarray_decode_nullable(a, literal, items, n)) {
        return false;
    }
    for (size_t i = 0; i < *n; i++) {
        if ((*items)[i] == NULL) {
            *items = NULL;
            *n = 0;
            return false;
        }
    }
    return true;
}

char *pgarray_encode_int64(arena_t *a, const int64_t *v, size_t n) {
    size_t cap = n * 21 + 3; /* "-9223372036854775808," is 21 */
    char *s = arena_alloc(a, cap);
    size_t len = 0;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i ? "," : "", v[i]);
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

char *pgarray_encode_bool(arena_t *a, const bool *v, size_t n) {
    char *s = arena_alloc(a, n * 2 + 3);
    size_t len = 0;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) {
            s[len++] = ',';
        }
        s[len++] = v[i] ? 't' : 'f';
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

bool pgarray_decode_int64(arena_t *a, const char *literal, int64_t **v, size_t *n) {
    *v = NULL;
    *n = 0;
    char **items = NULL;
    size_t count = 0;
    if (!pgarray_decode(a, literal, &items, &count)) {
        return false;
    }
    int64_t *out = arena_alloc(a, (count ? count : 1) * sizeof *out);
    for (size_t i = 0; i < count; i++) {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(items[i], &end, 10);
        if (items[i][0] == '\0' || *end != '\0' || errno == ERANGE) {
            return false;
        }
        out[i] = (int64_t)x;
    }
    *v = out;
    *n = count;
    return true;
}

char *pgarray_hex(arena_t *a, const unsigned char *bytes, size_t n) {
    static const char digits[] = "0123456789abcdef";
    char *out = arena_alloc(a, 2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}
