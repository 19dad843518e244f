/* pb.c -- protobuf-c <-> byte buffer glue. */
#include "pb.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include <assert.h>
#include <string.h>

ProtobufCMessage *pb_from_byte_buffer(arena_t *a, const ProtobufCMessageDescriptor *desc,
                                      grpc_byte_buffer *bb) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        return NULL;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, arena_pb_allocator(a),
                                                    GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

grpc_byte_buffer *pb_to_byte_buffer(const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    size_t packed = protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    assert(packed == n);
    (void)packed;
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

unsigned char *pb_pack_arena(arena_t *a, const ProtobufCMessage *m, size_t *len_out) {
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *buf = arena_alloc(a, n ? n : 1);
    size_t packed = protobuf_c_message_pack(m, buf);
    assert(packed == n);
    *len_out = packed;
    return buf;
}

ProtobufCMessage *pb_unpack_arena(arena_t *a, const ProtobufCMessageDescriptor *desc,
                                  const unsigned char *data, size_t len) {
    return protobuf_c_message_unpack(desc, arena_pb_allocator(a), len, data);
}

void *pb_new(arena_t *a, const ProtobufCMessageDescriptor *desc) {
    ProtobufCMessage *m = arena_alloc(a, desc->sizeof_message);
    protobuf_c_message_init(desc, m);
    return m;
}

const char *pb_get_string_field(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED) {
        return NULL;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which;
        memcpy(&which, (const char *)m + f->quantifier_offset, sizeof which);
        if (which != f->id) {
            return "";
        }
    }
    const char *v;
    memcpy(&v, (const char *)m + f->offset, sizeof v);
    return v ? v : "";
}

const ProtobufCMessage *pb_get_message_field(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED) {
        return NULL;
    }
    const ProtobufCMessage *v;
    memcpy(&v, (const char *)m + f->offset, sizeof v);
    return v;
}

/* Field `name` of m when it is a singular field of type t; NULL otherwise. */
static const ProtobufCFieldDescriptor *singular_field(const ProtobufCMessage *m, const char *name,
                                                      ProtobufCType t) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != t || f->label == PROTOBUF_C_LABEL_REPEATED) {
        return NULL;
    }
    return f;
}

/* Stores the pointer `value` in field f of m, and marks f the oneof's case when it is in one. */
static void set_pointer(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, void *value) {
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which = f->id;
        memcpy((char *)m + f->quantifier_offset, &which, sizeof which);
    }
    memcpy((char *)m + f->offset, &value, sizeof value);
}

bool pb_set_string_field(ProtobufCMessage *m, const char *name, char *value) {
    const ProtobufCFieldDescriptor *f = singular_field(m, name, PROTOBUF_C_TYPE_STRING);
    if (f == NULL) {
        return false;
    }
    set_pointer(m, f, value);
    return true;
}

bool pb_set_message_field(ProtobufCMessage *m, const char *name, ProtobufCMessage *value) {
    const ProtobufCFieldDescriptor *f = singular_field(m, name, PROTOBUF_C_TYPE_MESSAGE);
    if (f == NULL || (value != NULL && value->descriptor != f->descriptor)) {
        return false;
    }
    set_pointer(m, f, value);
    return true;
}

size_t pb_value_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default: /* the 32-bit integers, float and enums */
        return 4;
    }
}
