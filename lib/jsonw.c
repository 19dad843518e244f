/* jsonw.c -- bounded JSON object writer. */
#include "jsonw.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void jsonw_raw(jsonw_t *w, const char *s, size_t n) {
    /* Keep one byte for the closing brace and one for the NUL. */
    if (w->len + n + 2 > w->cap) {
        w->overflow = true;
        n = w->cap > w->len + 2 ? w->cap - w->len - 2 : 0;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void jsonw_begin(jsonw_t *w, char *buf, size_t cap) {
    assert(cap >= 2);
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->first = true;
    w->overflow = false;
    jsonw_raw(w, "{", 1);
}

size_t jsonw_end(jsonw_t *w) {
    assert(w->len + 2 <= w->cap);
    if (w->overflow) {
        /* A value was cut: closing the object would make it look whole. */
        w->buf[0] = '\0';
        w->len = 0;
        return 0;
    }
    w->buf[w->len++] = '}';
    w->buf[w->len] = '\0';
    return w->len;
}

void jsonw_escape(jsonw_t *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        jsonw_raw(w, s + start, i - start);
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            esc_len = 6;
        }
        jsonw_raw(w, esc, esc_len);
        start = i + 1;
    }
    jsonw_raw(w, s + start, n - start);
}

static void jsonw_key(jsonw_t *w, const char *key) {
    if (!w->first) {
        jsonw_raw(w, ",", 1);
    }
    w->first = false;
    jsonw_raw(w, "\"", 1);
    jsonw_escape(w, key, strlen(key));
    jsonw_raw(w, "\":", 2);
}

void jsonw_strn(jsonw_t *w, const char *key, const char *value, size_t value_len) {
    jsonw_key(w, key);
    jsonw_raw(w, "\"", 1);
    jsonw_escape(w, value, value_len);
    jsonw_raw(w, "\"", 1);
}

void jsonw_str(jsonw_t *w, const char *key, const char *value) {
    jsonw_strn(w, key, value ? value : "", value ? strlen(value) : 0);
}

void jsonw_int(jsonw_t *w, const char *key, int64_t value) {
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, value);
    jsonw_key(w, key);
    jsonw_raw(w, num, (size_t)n);
}

void jsonw_bool(jsonw_t *w, const char *key, bool value) {
    jsonw_key(w, key);
    jsonw_raw(w, value ? "true" : "false", value ? 4 : 5);
}
