/* request.c -- decoding and the runtime's own checks of a request message. */
#include "request.h"

#include "pb.h"
#include "pbcheck.h"
#include "validate.h"

status_t request_decode(arena_t *a, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                        size_t len, ProtobufCMessage **out) {
    *out = NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, arena_pb_allocator(a), len, data);
    if (m == NULL) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST,
                           "request is not a valid %s", desc->name);
    }
    /* After the unpack, which is the authority on well-formed bytes: the walk then only has to
     * find strings, and both agree on what a malformed request is. */
    status_t st = pbcheck_strings(desc, data, len);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = m;
    return status_ok();
}

status_t request_check_ids(const ProtobufCMessage *req, bool has_merchant, bool mutates,
                           const char **merchant_id, const char **idempotency_key) {
    *merchant_id = "";
    *idempotency_key = NULL;
    if (has_merchant) {
        const char *m = pb_get_string_field(req, "merchant_id");
        status_t st = validate_merchant_id(m ? m : "");
        if (!status_is_ok(&st)) {
            return st;
        }
        *merchant_id = m;
    }
    if (mutates) {
        const char *k = pb_get_string_field(req, "idempotency_key");
        status_t st = validate_idempotency_key(k ? k : "");
        if (!status_is_ok(&st)) {
            return st;
        }
        *idempotency_key = k;
    }
    return status_ok();
}
