/* fuzz_request.c -- libFuzzer target over the runtime's request path, for every method of
 * every service: the first byte picks the method, the rest is the request message. It runs
 * what rpc_server.c runs before a handler (request_decode with the wire string check,
 * request_check_ids for merchant_id and idempotency_key, auth_bearer_matches on a header cut
 * from the same input) and aborts when an invariant breaks:
 *   - the string check and protobuf-c agree on what a well-formed message is;
 *   - a decoded message re-encodes to bytes that decode again, re-encode identically, and
 *     pass the string check (no NUL, valid UTF-8 survived);
 *   - the ids check answers OK or INVALID_ARGUMENT naming its field, and an accepted merchant
 *     is 1..MERCHANT_ID_MAX token characters;
 *   - the constant-time token check agrees with a plain reference comparison. */
#include "arena.h"
#include "auth.h"
#include "fuzz_methods.h"
#include "pbcheck.h"
#include "request.h"
#include "validate.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TOKEN "s3cret-token"

#define fuzz_check(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant broken: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The plain reading of RFC 7235 §2.1 for a bearer token, to hold the constant-time one to. */
static bool reference_bearer(const char *expected, const uint8_t *h, size_t n) {
    static const char scheme[] = "bearer";
    if (n <= 6 || h[6] != ' ') {
        return false;
    }
    for (size_t i = 0; i < 6; i++) {
        if (tolower(h[i]) != scheme[i]) {
            return false;
        }
    }
    size_t i = 6;
    while (i < n && h[i] == ' ') {
        i++;
    }
    return n - i == strlen(expected) && strlen(expected) > 0 && memcmp(h + i, expected, n - i) == 0;
}

static bool has_string_field(const ProtobufCMessageDescriptor *d, const char *name) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    return f != NULL && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED;
}

static void fuzz_round_trip(arena_t *a, const ProtobufCMessageDescriptor *d,
                            const ProtobufCMessage *req) {
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *bytes = arena_alloc(a, n ? n : 1);
    fuzz_check(protobuf_c_message_pack(req, bytes) == n, "%s", d->name);
    ProtobufCMessage *again = NULL;
    status_t st = request_decode(a, d, bytes, n, &again);
    fuzz_check(status_is_ok(&st), "%s re-encoded: %s %s", d->name, st.reason, st.message);
    size_t n2 = protobuf_c_message_get_packed_size(again);
    fuzz_check(n2 == n, "%s: %zu then %zu bytes", d->name, n, n2);
    uint8_t *bytes2 = arena_alloc(a, n2 ? n2 : 1);
    fuzz_check(protobuf_c_message_pack(again, bytes2) == n2, "%s", d->name);
    fuzz_check(memcmp(bytes, bytes2, n) == 0, "%s: encoding not stable", d->name);
}

static void fuzz_ids(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *req) {
    bool has_merchant = has_string_field(d, "merchant_id");
    bool mutates = has_merchant && has_string_field(d, "idempotency_key");
    const char *merchant = NULL, *key = NULL;
    status_t st = request_check_ids(req, has_merchant, mutates, &merchant, &key);
    if (!status_is_ok(&st)) {
        fuzz_check(st.code == STATUS_INVALID_ARGUMENT, "%s", st.reason);
        fuzz_check(strcmp(st.reason, "INVALID_MERCHANT_ID") == 0 ||
                       strcmp(st.reason, "INVALID_IDEMPOTENCY_KEY") == 0,
                   "%s", st.reason);
        return;
    }
    fuzz_check(merchant != NULL, "merchant");
    if (has_merchant) {
        size_t n = strlen(merchant);
        fuzz_check(n >= 1 && n <= MERCHANT_ID_MAX, "merchant of %zu bytes", n);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)merchant[i];
            fuzz_check(isalnum(c) || strchr("_-.:", c) != NULL, "merchant byte %u", c);
        }
    }
    fuzz_check(mutates == (key != NULL), "idempotency key");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const ProtobufCMethodDescriptor *m = fuzz_method(data[0] % fuzz_method_count());
    const ProtobufCMessageDescriptor *d = m->input;
    const uint8_t *body = data + 1;
    size_t len = size - 1;

    /* The header the auth check sees: the last up-to-40 bytes, so both halves mutate. */
    size_t header_len = len < 40 ? len : 40;
    const uint8_t *header = body + len - header_len;
    fuzz_check(auth_bearer_matches(FUZZ_TOKEN, (const char *)header, header_len) ==
                   reference_bearer(FUZZ_TOKEN, header, header_len),
               "header of %zu bytes", header_len);

    arena_t a;
    arena_init(&a);
    ProtobufCMessage *req = NULL;
    status_t st = request_decode(&a, d, body, len, &req);
    ProtobufCMessage *plain = protobuf_c_message_unpack(d, arena_pb_allocator(&a), len, body);
    if (!status_is_ok(&st)) {
        fuzz_check(req == NULL, "a refused request has no message");
        fuzz_check(st.code == STATUS_INVALID_ARGUMENT, "%s", st.reason);
        bool malformed = strcmp(st.reason, "MALFORMED_REQUEST") == 0;
        /* Refused by the walk although protobuf-c decodes it: nesting past the bound, and
         * field number 0, which protobuf-c lets through in its two-byte form. */
        bool stricter = malformed && (strncmp(st.message, "request nested deeper", 21) == 0 ||
                                      strcmp(st.message, "request has a field number 0") == 0);
        /* Otherwise MALFORMED exactly when protobuf-c cannot decode it. */
        fuzz_check(malformed == (plain == NULL) || stricter, "%s: %s", d->name, st.message);
        fuzz_check(malformed || strncmp(st.reason, "INVALID_", 8) == 0, "%s", st.reason);
    } else {
        fuzz_check(plain != NULL, "%s accepted what protobuf-c refuses", d->name);
        fuzz_round_trip(&a, d, req);
        fuzz_ids(d, req);
    }
    arena_free(&a);
    return 0;
}
