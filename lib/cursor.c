/* cursor.c -- base64url cursors. */
#include "cursor.h"

#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_encode(arena_t *a, const unsigned char *in, size_t n) {
    char *out = arena_alloc(a, (n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = b64[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[o++] = b64[v & 63];
        }
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

static char *b64_decode(arena_t *a, const char *in, size_t *out_len) {
    size_t n = strlen(in);
    if (n % 4 == 1) {
        return NULL;
    }
    char *out = arena_alloc(a, n * 3 / 4 + 2);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

char *cursor_encode(arena_t *a, const char *key, const char *id) {
    char *plain = arena_printf(a, "v1\n%s\n%s", key, id);
    return b64_encode(a, (const unsigned char *)plain, strlen(plain));
}

status_t cursor_decode(arena_t *a, const char *field, const char *cursor, char **key, char **id) {
    *key = "";
    *id = "";
    if (cursor[0] == '\0') {
        return status_ok();
    }
    size_t len = 0;
    char *plain = strlen(cursor) <= CURSOR_MAX ? b64_decode(a, cursor, &len) : NULL;
    if (plain == NULL || strlen(plain) != len || strncmp(plain, "v1\n", 3) != 0) {
        return status_invalid_field(field, "not a cursor returned by this service");
    }
    char *k = plain + 3;
    char *nl = strchr(k, '\n');
    if (nl == NULL) {
        return status_invalid_field(field, "not a cursor returned by this service");
    }
    *nl = '\0';
    *key = k;
    *id = nl + 1;
    return status_ok();
}

status_t cursor_page_size(const char *field, int32_t requested, int32_t max_size, int32_t *out) {
    if (requested < 0 || requested > max_size) {
        return status_invalid_field(field, "must be between 0 and %d", (int)max_size);
    }
    *out =
        requested == 0 ? (PAGE_SIZE_DEFAULT < max_size ? PAGE_SIZE_DEFAULT : max_size) : requested;
    return status_ok();
}
