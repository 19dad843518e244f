/* request.h -- the runtime's checks of one incoming request message, in the server's order and
 * without gRPC: decode (with the string check of pbcheck.h), then the top-level merchant_id and
 * idempotency_key. rpc_server.c serves calls through these, and the request-path fuzzer
 * (fuzz/) drives exactly the same functions. */
#ifndef LOYALTY_REQUEST_H
#define LOYALTY_REQUEST_H

#include "arena.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Decodes data[0..len) as `desc` into `a` (*out), after refusing strings that are not valid
 *  UTF-8 or hold a NUL byte (INVALID_<FIELD>). INVALID_ARGUMENT MALFORMED_REQUEST when the
 *  bytes are not an encoding of `desc`; *out is NULL on any failure. */
status_t request_decode(arena_t *a, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                        size_t len, ProtobufCMessage **out);

/** The identifiers the runtime itself reads from a decoded request: merchant_id when
 *  `has_merchant` (validated; "" otherwise) and idempotency_key when `mutates` (validated;
 *  NULL otherwise). Returns the first field's INVALID_<FIELD> status. */
status_t request_check_ids(const ProtobufCMessage *req, bool has_merchant, bool mutates,
                           const char **merchant_id, const char **idempotency_key);

#endif
