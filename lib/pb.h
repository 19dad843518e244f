/* pb.h -- glue between protobuf-c messages, gRPC byte buffers and arenas, and generic access to
 * fields by name (the runtime reads merchant_id and idempotency_key of any request). */
#ifndef LOYALTY_PB_H
#define LOYALTY_PB_H

#include "arena.h"

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/** Decodes a byte buffer into a message allocated in `a`; NULL when the bytes are not a valid
 *  encoding of `desc`. The buffer stays the caller's. */
ProtobufCMessage *pb_from_byte_buffer(arena_t *a, const ProtobufCMessageDescriptor *desc,
                                      grpc_byte_buffer *bb);

/** Encodes a message into a new byte buffer the caller destroys (grpc_byte_buffer_destroy). */
grpc_byte_buffer *pb_to_byte_buffer(const ProtobufCMessage *m);

/** Encodes a message into arena memory; *len_out receives the size. */
unsigned char *pb_pack_arena(arena_t *a, const ProtobufCMessage *m, size_t *len_out);

/** Decodes bytes into a message in `a`; NULL on malformed input. */
ProtobufCMessage *pb_unpack_arena(arena_t *a, const ProtobufCMessageDescriptor *desc,
                                  const unsigned char *data, size_t len);

/** A new initialised message of `desc` in `a`. */
void *pb_new(arena_t *a, const ProtobufCMessageDescriptor *desc);

/** The size of one value of a field of type t in a protobuf-c struct: a singular field, or one
 *  element of a repeated field's array (strings and messages are pointers). */
size_t pb_value_size(ProtobufCType t);

/** The value of a top-level `string` field by name, "" when empty, NULL when the message has
 *  no such string field. */
const char *pb_get_string_field(const ProtobufCMessage *m, const char *name);

/** The value of a top-level singular message field by name; NULL when unset or when the message
 *  has no such message field. */
const ProtobufCMessage *pb_get_message_field(const ProtobufCMessage *m, const char *name);

/** Sets a top-level singular `string` field by name to `value` (kept, not copied; a oneof
 *  member becomes the one set). False when the message has no such string field. */
bool pb_set_string_field(ProtobufCMessage *m, const char *name, char *value);

/** Sets a top-level singular message field by name to `value` (kept, not copied; a oneof member
 *  becomes the one set). False when the message has no such message field or `value` is not
 *  of that field's type. */
bool pb_set_message_field(ProtobufCMessage *m, const char *name, ProtobufCMessage *value);

#endif
