/* ctl_json.c -- any protobuf-c message as JSON on stdout, by walking its descriptor, for
 * loyaltyctl's `-o json`. Every field is written (scripts can rely on the keys being there):
 * absent messages as null, unset oneof members and unset proto3 `optional` fields left out;
 * enums by their full value name, 64-bit integers as numbers, maps as objects, bytes as base64,
 * indented by two spaces. */
#include "ctl.h"
#include "pb.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void indent(int depth) {
    for (int i = 0; i < depth; i++) {
        fputs("  ", stdout);
    }
}

static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"':
            fputs("\\\"", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        default:
            if (ch < 0x20) {
                printf("\\u%04x", ch);
            } else {
                putchar(ch); /* UTF-8 passes through: protobuf strings are valid UTF-8 */
            }
        }
    }
    putchar('"');
}

static void json_base64(const ProtobufCBinaryData *b) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (size_t i = 0; i < b->len; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16;
        size_t left = b->len - i;
        if (left > 1) {
            v |= (uint32_t)b->data[i + 1] << 8;
        }
        if (left > 2) {
            v |= b->data[i + 2];
        }
        putchar(alphabet[(v >> 18) & 63]);
        putchar(alphabet[(v >> 12) & 63]);
        putchar(left > 1 ? alphabet[(v >> 6) & 63] : '=');
        putchar(left > 2 ? alphabet[v & 63] : '=');
    }
    putchar('"');
}

static void json_message(const ProtobufCMessage *m, int depth);

/* One value of field f stored at p. */
static void json_value(const ProtobufCFieldDescriptor *f, const void *p, int depth) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        printf("%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        printf("%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        printf("%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        printf("%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double d = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)p : *(const double *)p;
        if (isfinite(d)) {
            printf("%.17g", d);
        } else {
            fputs("null", stdout); /* JSON has no NaN or infinity */
        }
        break;
    }
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)p ? "true" : "false", stdout);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, v);
        if (ev != NULL) {
            json_string(ev->name, strlen(ev->name));
        } else {
            printf("%d", v);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (s == NULL) {
            s = "";
        }
        json_string(s, strlen(s));
        break;
    }
    case PROTOBUF_C_TYPE_BYTES:
        json_base64((const ProtobufCBinaryData *)p);
        break;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL) {
            fputs("null", stdout);
        } else {
            json_message(sub, depth);
        }
        break;
    }
    }
}

/* A map field: protobuf-c keeps it as repeated entry messages with fields key (1), value (2). */
static bool is_map_entry(const ProtobufCFieldDescriptor *f) {
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED) {
        return false;
    }
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t n = strlen(d->name);
    return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2 &&
           strcmp(d->fields[0].name, "key") == 0 && d->fields[0].type == PROTOBUF_C_TYPE_STRING &&
           strcmp(d->fields[1].name, "value") == 0;
}

static void json_repeated(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, int depth) {
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    const char *arr = *(char *const *)((const char *)m + f->offset);
    bool map = is_map_entry(f);
    if (n == 0) {
        fputs(map ? "{}" : "[]", stdout);
        return;
    }
    putchar(map ? '{' : '[');
    size_t size = pb_value_size(f->type);
    const ProtobufCMessageDescriptor *entry = map ? f->descriptor : NULL;
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n" : "\n", stdout);
        indent(depth + 1);
        const void *p = arr + i * size;
        if (map) {
            const ProtobufCMessage *e = *(ProtobufCMessage *const *)p;
            const ProtobufCFieldDescriptor *kf = &entry->fields[0], *vf = &entry->fields[1];
            json_value(kf, (const char *)e + kf->offset, depth + 1);
            fputs(": ", stdout);
            json_value(vf, (const char *)e + vf->offset, depth + 1);
        } else {
            json_value(f, p, depth + 1);
        }
    }
    putchar('\n');
    indent(depth);
    putchar(map ? '}' : ']');
}

/* Whether a singular field is to be written: unset oneof members and unset optional scalars
 * are not. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    const char *base = (const char *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
            return *(void *const *)(base + f->offset) != NULL;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    }
    return true;
}

static void json_message(const ProtobufCMessage *m, int depth) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    bool first = true;
    putchar('{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED && !field_present(m, f)) {
            continue;
        }
        fputs(first ? "\n" : ",\n", stdout);
        first = false;
        indent(depth + 1);
        json_string(f->name, strlen(f->name));
        fputs(": ", stdout);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            json_repeated(m, f, depth + 1);
        } else {
            json_value(f, (const char *)m + f->offset, depth + 1);
        }
    }
    if (!first) {
        putchar('\n');
        indent(depth);
    }
    putchar('}');
}

void ctl_print_json(const ProtobufCMessage *m) {
    json_message(m, 0);
    putchar('\n');
}
