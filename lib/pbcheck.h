/* pbcheck.h -- checks on a request's wire bytes that protobuf-c does not make. proto3 `string`
 * fields must be valid UTF-8 (other gRPC implementations refuse anything else at decode), and
 * protobuf-c hands strings over as NUL-terminated char*, so an embedded NUL would silently cut a
 * value ("m1\0x" read as "m1"). The check walks the encoded message with its descriptor, so it
 * sees every string of every nested message, repeated field, oneof and map entry. Pure: no I/O,
 * no allocation. */
#ifndef LOYALTY_PBCHECK_H
#define LOYALTY_PBCHECK_H

#include "status.h"

#include <protobuf-c/protobuf-c.h>

#include <stddef.h>
#include <stdint.h>

/* Nesting bound of the walk: deeper than any message of ours, and a limit on the recursion. */
#define PBCHECK_DEPTH_MAX 32
/* Longest dotted field path kept for the reason ("profile.address.line1"). */
#define PBCHECK_PATH_MAX 128

/** OK when every known `string` field in data[0..len) (an encoding of `desc`) is valid UTF-8
 *  without NUL bytes. Otherwise INVALID_ARGUMENT with reason INVALID_<FIELD>, where <FIELD> is
 *  the dotted path of the field upper-cased ("profile.name" -> INVALID_PROFILE_NAME, a map
 *  entry's key -> INVALID_<MAP>_KEY), as status_invalid_field names it; INVALID_ARGUMENT
 *  MALFORMED_REQUEST when the bytes are not a well-formed encoding. Unknown fields and `bytes`
 *  fields are not looked at. */
status_t pbcheck_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len);

#endif
