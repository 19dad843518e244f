/* fuzz_seed.c -- writes the request fuzzer's seed corpus: for every method (fuzz_methods.h
 * order) one valid request shaped like the integration tests' (merchant "m-1", a fresh
 * idempotency key, member ids, E.164 phones, dates, amounts in cents, one element in each list,
 * the first member of each oneof), filled from the descriptors so that a new method gets its
 * seed without editing this file. Each file is the method's index byte and the encoded request.
 * Every seed passes the runtime's request checks (request.h). Usage: fuzz_seed DIR */
#include "arena.h"
#include "fuzz_methods.h"
#include "pb.h"
#include "request.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SEED_DEPTH_MAX 4
#define SEED_BYTES_MAX 65536

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* A typical value for a string field, by its name. */
static const char *seed_string(const char *name) {
    static const struct {
        const char *name;
        const char *value;
    } by_name[] = {
        {"merchant_id", "m-1"},
        {"idempotency_key", "key-0001"},
        {"phone", "+6591234567"},
        {"email", "ann@example.com"},
        {"name", "Ann Lee"},
        {"currency", "SGD"},
        {"time_zone", "Asia/Singapore"},
        {"birthday", "1990-02-28"},
        {"code", "SAVE10"},
        {"country_code", "SG"},
        {"segment", "ACTIVE"},
        {"tier_id", "gold"},
        {"member_id", "mbr_01JD0000000000000000000000"},
        {"sku", "S1"},
        {"category", "c1"},
        {"store_id", "store-1"},
        {"reason", "goodwill"},
        {"page_token", ""},
        {"service", "loyalty.v1.MemberService"},
    };
    for (size_t i = 0; i < sizeof by_name / sizeof by_name[0]; i++) {
        if (strcmp(name, by_name[i].name) == 0) {
            return by_name[i].value;
        }
    }
    if (ends_with(name, "_date") || strcmp(name, "date") == 0 || ends_with(name, "_day")) {
        return "2025-01-31";
    }
    if (ends_with(name, "_id")) {
        return "id_01JD0000000000000000000001";
    }
    return "x";
}

static int64_t seed_int(const char *name) {
    if (ends_with(name, "_cents") || ends_with(name, "amount")) {
        return 1000;
    }
    if (ends_with(name, "_bps")) {
        return 500;
    }
    if (ends_with(name, "_at")) {
        return 1764000000;
    }
    if (strcmp(name, "page_size") == 0 || strcmp(name, "limit") == 0) {
        return 10;
    }
    return 2;
}

static void seed_fill(arena_t *a, ProtobufCMessage *m, int depth);

/* One value of field `f` written at `p` (an element of a repeated field, or the field). */
static void seed_value(arena_t *a, const ProtobufCFieldDescriptor *f, void *p, int depth) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = arena_strdup(a, seed_string(f->name));
        memcpy(p, &s, sizeof s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b = {.len = 1, .data = (uint8_t *)arena_strdup(a, "b")};
        memcpy(p, &b, sizeof b);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *d = f->descriptor;
        ProtobufCMessage *sub = arena_alloc(a, d->sizeof_message);
        protobuf_c_message_init(d, sub);
        seed_fill(a, sub, depth + 1);
        memcpy(p, &sub, sizeof sub);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        int v = e->n_values > 1 ? e->values[1].value : 0;
        memcpy(p, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = 1;
        memcpy(p, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        int32_t v = (int32_t)seed_int(f->name);
        memcpy(p, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = 1.5f;
        memcpy(p, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = 1.5;
        memcpy(p, &v, sizeof v);
        break;
    }
    default: { /* the 64-bit integers */
        int64_t v = seed_int(f->name);
        memcpy(p, &v, sizeof v);
        break;
    }
    }
}

static void seed_fill(arena_t *a, ProtobufCMessage *m, int depth) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth >= SEED_DEPTH_MAX) {
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != 0) {
                continue; /* the oneof's first member is set already */
            }
            which = f->id;
            memcpy(base + f->quantifier_offset, &which, sizeof which);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t one = 1;
            void *arr = arena_alloc(a, pb_value_size(f->type));
            seed_value(a, f, arr, depth);
            memcpy(base + f->quantifier_offset, &one, sizeof one);
            memcpy(base + f->offset, &arr, sizeof arr);
            continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
                   f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            protobuf_c_boolean has = 1;
            memcpy(base + f->quantifier_offset, &has, sizeof has);
        }
        seed_value(a, f, base + f->offset, depth);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    size_t n = fuzz_method_count();
    if (n > 256) {
        fprintf(stderr, "fuzz_seed: %zu methods, more than one index byte picks\n", n);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMethodDescriptor *m = fuzz_method(i);
        arena_t a;
        arena_init(&a);
        ProtobufCMessage *req = arena_alloc(&a, m->input->sizeof_message);
        protobuf_c_message_init(m->input, req);
        seed_fill(&a, req, 0);
        size_t len = protobuf_c_message_get_packed_size(req);
        if (len + 1 > SEED_BYTES_MAX) {
            fprintf(stderr, "fuzz_seed: %s is %zu bytes\n", m->name, len);
            return 1;
        }
        static uint8_t buf[SEED_BYTES_MAX];
        buf[0] = (uint8_t)i;
        size_t packed = protobuf_c_message_pack(req, buf + 1);
        /* A seed must pass the runtime's own checks, or it only seeds the refusals. */
        ProtobufCMessage *decoded = NULL;
        const char *merchant = NULL, *key = NULL;
        status_t st = request_decode(&a, m->input, buf + 1, packed, &decoded);
        if (status_is_ok(&st)) {
            bool has_merchant =
                protobuf_c_message_descriptor_get_field_by_name(m->input, "merchant_id") != NULL;
            bool has_key = protobuf_c_message_descriptor_get_field_by_name(
                               m->input, "idempotency_key") != NULL;
            st = request_check_ids(decoded, has_merchant, has_merchant && has_key, &merchant, &key);
        }
        if (!status_is_ok(&st)) {
            fprintf(stderr, "fuzz_seed: the seed of %s is refused: %s\n", m->name, st.message);
            return 1;
        }
        char path[512];
        snprintf(path, sizeof path, "%s/%03zu-%s", argv[1], i, m->name);
        FILE *out = fopen(path, "wb");
        if (out == NULL || fwrite(buf, 1, packed + 1, out) != packed + 1 || fclose(out) != 0) {
            fprintf(stderr, "fuzz_seed: cannot write %s\n", path);
            return 1;
        }
        arena_free(&a);
    }
    printf("%zu seeds written to %s\n", n, argv[1]);
    return 0;
}
