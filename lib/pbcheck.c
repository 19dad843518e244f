/* pbcheck.c -- the wire walk behind pbcheck_strings: tags, lengths, strings, nested messages. */
#include "pbcheck.h"

#include "validate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define PBCHECK_VARINT_BYTES_MAX 10

typedef struct pbcheck_walk {
    char path[PBCHECK_PATH_MAX];
} pbcheck_walk_t;

static status_t pbcheck_malformed(void) {
    return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST,
                       "malformed request message");
}

/* Reads a varint at *pos; false when it runs past len or over 10 bytes. */
static bool pbcheck_varint(const uint8_t *data, size_t len, size_t *pos, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned i = 0; i < PBCHECK_VARINT_BYTES_MAX; i++) {
        if (*pos >= len) {
            return false;
        }
        uint8_t b = data[(*pos)++];
        v |= (uint64_t)(b & 0x7fu) << (7 * i);
        if ((b & 0x80u) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

static status_t pbcheck_string(const char *path, const uint8_t *s, size_t n) {
    if (memchr(s, '\0', n) != NULL) {
        return status_invalid_field(path, "contains a NUL byte");
    }
    if (!validate_utf8((const char *)s, n)) {
        return status_invalid_field(path, "not valid UTF-8");
    }
    return status_ok();
}

/* Appends ".name" (or "name" at the top) to the walk's path; returns the old length so the
 * caller can cut it back. A path too long for the buffer is truncated, never overflowed. */
static size_t pbcheck_path_push(pbcheck_walk_t *w, const char *name) {
    size_t old = strlen(w->path);
    snprintf(w->path + old, sizeof w->path - old, "%s%s", old ? "." : "", name);
    return old;
}

static status_t pbcheck_message(pbcheck_walk_t *w, const ProtobufCMessageDescriptor *desc,
                                const uint8_t *data, size_t len, int depth);

/* One length-delimited field: a string is checked, a message walked, anything else skipped. */
static status_t pbcheck_field(pbcheck_walk_t *w, const ProtobufCFieldDescriptor *f,
                              const uint8_t *value, size_t n, int depth) {
    if (f == NULL || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)) {
        return status_ok();
    }
    size_t old = pbcheck_path_push(w, f->name);
    status_t st = f->type == PROTOBUF_C_TYPE_STRING
                      ? pbcheck_string(w->path, value, n)
                      : pbcheck_message(w, f->descriptor, value, n, depth + 1);
    w->path[old] = '\0';
    return st;
}

/* Recursion bounded by PBCHECK_DEPTH_MAX, so a hostile nesting cannot exhaust the stack. */
static status_t pbcheck_message(pbcheck_walk_t *w, const ProtobufCMessageDescriptor *desc,
                                const uint8_t *data, size_t len, int depth) {
    if (depth > PBCHECK_DEPTH_MAX) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST,
                           "request nested deeper than %d messages", PBCHECK_DEPTH_MAX);
    }
    size_t pos = 0;
    while (pos < len) {
        uint64_t tag = 0;
        if (!pbcheck_varint(data, len, &pos, &tag) || (tag >> 3) > UINT32_MAX) {
            return pbcheck_malformed();
        }
        /* Field number 0 is invalid and other implementations refuse it; protobuf-c takes it
         * as an unknown field when its tag is written in two bytes (80 00), then re-encodes
         * it as 00, which it refuses: found by fuzz/fuzz_request. */
        if ((tag >> 3) == 0) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST,
                               "request has a field number 0");
        }
        uint64_t skip = 0;
        switch (tag & 7u) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!pbcheck_varint(data, len, &pos, &skip)) {
                return pbcheck_malformed();
            }
            skip = 0;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            skip = 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            skip = 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            if (!pbcheck_varint(data, len, &pos, &skip) || skip > len - pos) {
                return pbcheck_malformed();
            }
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
            status_t st = pbcheck_field(w, f, data + pos, (size_t)skip, depth);
            if (!status_is_ok(&st)) {
                return st;
            }
            break;
        }
        default: /* groups (3, 4) and 6, 7: protobuf-c refuses them too */
            return pbcheck_malformed();
        }
        if (skip > len - pos) {
            return pbcheck_malformed();
        }
        pos += (size_t)skip;
    }
    return status_ok();
}

status_t pbcheck_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len) {
    pbcheck_walk_t w;
    w.path[0] = '\0';
    return pbcheck_message(&w, desc, data, len, 0);
}
