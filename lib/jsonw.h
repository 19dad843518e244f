/* jsonw.h -- a small JSON object writer into a caller-provided buffer (log lines, events).
 * Writes are bounded: the writer never writes past `cap`. When the buffer is too small,
 * `overflow` is set and jsonw_end leaves "" rather than a cut object, so no truncated JSON can
 * pass for a whole one (outbox_emit refuses "" as a payload). */
#ifndef LOYALTY_JSONW_H
#define LOYALTY_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jsonw {
    char *buf;
    size_t cap;
    size_t len;
    bool first; /* no member written yet in the current object */
    bool overflow;
} jsonw_t;

/** Starts an object ("{") in buf[cap]; cap must be at least 2. */
void jsonw_begin(jsonw_t *w, char *buf, size_t cap);
/** Closes the object ("}") and NUL-terminates; returns the length written. After an overflow
 *  the buffer holds "" and 0 is returned. */
size_t jsonw_end(jsonw_t *w);
void jsonw_str(jsonw_t *w, const char *key, const char *value);
void jsonw_strn(jsonw_t *w, const char *key, const char *value, size_t value_len);
void jsonw_int(jsonw_t *w, const char *key, int64_t value);
void jsonw_bool(jsonw_t *w, const char *key, bool value);
/** Appends `s` JSON-escaped (without quotes). */
void jsonw_escape(jsonw_t *w, const char *s, size_t n);

#endif
