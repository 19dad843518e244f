/* test_pbcheck.c -- the runtime's string check on request wire bytes (pbcheck.h, request.h):
 * embedded NUL bytes and invalid UTF-8 refused in every kind of string field (top level,
 * nested, repeated, oneof, map entry) with the field's reason; malformed bytes refused. */
#include "arena.h"
#include "pbcheck.h"
#include "request.h"
#include "validate.h"

#include "loyalty/v1/member.pb-c.h"

#include <criterion/criterion.h>

#include <string.h>

/* A small wire writer: enough to put any byte sequence into a length-delimited field, which
 * protobuf-c's own packer cannot do for strings (it stops at the first NUL). */
typedef struct wire {
    uint8_t buf[512];
    size_t len;
} wire_t;

static void wire_bytes(wire_t *w, unsigned field, const void *data, size_t n) {
    cr_assert(field < 16 && n < 128 && w->len + n + 2 <= sizeof w->buf); /* one-byte tag, length */
    w->buf[w->len++] = (uint8_t)(field << 3 | 2u);
    w->buf[w->len++] = (uint8_t)n;
    memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static void wire_str(wire_t *w, unsigned field, const char *s) {
    wire_bytes(w, field, s, strlen(s));
}

static const ProtobufCMessageDescriptor *get_member = &loyalty__v1__get_member_request__descriptor;
static const ProtobufCMessageDescriptor *create_member =
    &loyalty__v1__create_member_request__descriptor;

static void assert_refused(const ProtobufCMessageDescriptor *d, const wire_t *w,
                           const char *reason) {
    status_t st = pbcheck_strings(d, w->buf, w->len);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s: got %s", reason,
                 status_code_name(st.code));
    cr_assert_str_eq(st.reason, reason);
    /* The decode the server uses refuses it the same way and hands out no message. */
    arena_t a;
    arena_init(&a);
    ProtobufCMessage *m = (ProtobufCMessage *)&a; /* must be overwritten */
    st = request_decode(&a, d, w->buf, w->len, &m);
    cr_assert_str_eq(st.reason, reason);
    cr_assert_null(m);
    arena_free(&a);
}

Test(pbcheck, accepts_valid_requests) {
    /* Goal: well-formed UTF-8 in every kind of field passes, and decodes to the same text. */
    wire_t w = {0};
    wire_str(&w, 1, "m-1");
    wire_str(&w, 2, "mbr_\xc3\xa9\xf0\x9f\x98\x80"); /* é and an emoji */
    status_t st = pbcheck_strings(get_member, w.buf, w.len);
    cr_assert(status_is_ok(&st), "%s", st.message);
    arena_t a;
    arena_init(&a);
    ProtobufCMessage *m = NULL;
    st = request_decode(&a, get_member, w.buf, w.len, &m);
    cr_assert(status_is_ok(&st), "%s", st.message);
    const Loyalty__V1__GetMemberRequest *req = (const Loyalty__V1__GetMemberRequest *)m;
    cr_assert_str_eq(req->merchant_id, "m-1");
    cr_assert_str_eq(req->member_id, "mbr_\xc3\xa9\xf0\x9f\x98\x80");
    arena_free(&a);
}

Test(pbcheck, refuses_nul_in_top_level_and_oneof_strings) {
    /* Goal: "<m1>\0x" is not read as "<m1>": the merchant and a oneof member both refused. */
    wire_t w = {0};
    wire_bytes(&w, 1, "m1\0x", 4);
    wire_str(&w, 2, "mbr_1");
    assert_refused(get_member, &w, "INVALID_MERCHANT_ID");
    wire_t o = {0};
    wire_str(&o, 1, "m1");
    wire_bytes(&o, 2, "mbr_1\0", 6); /* member_id, in oneof lookup */
    assert_refused(get_member, &o, "INVALID_MEMBER_ID");
}

Test(pbcheck, refuses_nul_in_nested_repeated_and_map_strings) {
    /* Goal: strings inside nested messages are walked and named by their dotted path, the
     * convention of the services' own reasons (INVALID_PROFILE_NAME). */
    wire_t name = {0};
    wire_bytes(&name, 1, "Bo\0b", 4);
    wire_t w = {0};
    wire_str(&w, 1, "m1");
    wire_str(&w, 2, "K1");
    wire_bytes(&w, 3, name.buf, name.len);
    assert_refused(create_member, &w, "INVALID_PROFILE_NAME");

    wire_t tags = {0};
    wire_str(&tags, 1, "Bob");
    wire_str(&tags, 10, "vip");
    wire_bytes(&tags, 10, "v\0p", 3); /* the second element of repeated tags */
    wire_t w2 = {0};
    wire_str(&w2, 1, "m1");
    wire_bytes(&w2, 3, tags.buf, tags.len);
    assert_refused(create_member, &w2, "INVALID_PROFILE_TAGS");

    wire_t entry = {0};
    wire_str(&entry, 1, "k");
    wire_bytes(&entry, 2, "a\0b", 3);
    wire_t attrs = {0};
    wire_bytes(&attrs, 9, entry.buf, entry.len); /* map<string,string> custom_attributes */
    wire_t w3 = {0};
    wire_bytes(&w3, 3, attrs.buf, attrs.len);
    assert_refused(create_member, &w3, "INVALID_PROFILE_CUSTOM_ATTRIBUTES_VALUE");
}

Test(pbcheck, refuses_invalid_utf8) {
    /* Goal: overlongs, surrogates, code points above U+10FFFF, stray continuation bytes and
     * truncated sequences are refused as proto3 requires; the boundaries just inside pass. */
    static const struct {
        const char *bytes;
        bool ok;
    } cases[] = {
        {"\xc0\x80", false},         {"\xe0\x80\xaf", false},     {"\xed\xa0\x80", false},
        {"\xf4\x90\x80\x80", false}, {"\x80", false},             {"\xe2\x82", false},
        {"\xff", false},             {"\xf8\x88\x80\x80\x80", false},
        {"\xed\x9f\xbf", true},      {"\xf4\x8f\xbf\xbf", true},  {"\xc2\x80", true},
        {"\xee\x80\x80", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wire_t w = {0};
        wire_str(&w, 1, "m1");
        wire_str(&w, 3, cases[i].bytes); /* phone, in oneof lookup */
        status_t st = pbcheck_strings(get_member, w.buf, w.len);
        if (cases[i].ok) {
            cr_assert(status_is_ok(&st), "case %zu: %s", i, st.message);
        } else {
            cr_assert_str_eq(st.reason, "INVALID_PHONE", "case %zu", i);
        }
    }
}

Test(pbcheck, ignores_unknown_and_bytes_fields) {
    /* Goal: only known string fields are checked; an unknown length-delimited field may hold
     * anything (it is never read). */
    wire_t w = {0};
    wire_str(&w, 1, "m1");
    wire_bytes(&w, 15, "\0\xff", 2);
    status_t st = pbcheck_strings(get_member, w.buf, w.len);
    cr_assert(status_is_ok(&st), "%s", st.message);
}

Test(pbcheck, refuses_malformed_wire) {
    /* Goal: a length past the end, a group wire type, field number 0 (also in the two-byte
     * form 80 00 that protobuf-c lets through, found by the request fuzzer) and a runaway
     * varint are MALFORMED_REQUEST, never a read past the buffer. */
    static const struct {
        uint8_t bytes[12];
        size_t len;
    } cases[] = {
        {{0x0a, 0x05, 'a'}, 3},
        {{0x0b}, 1},
        {{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 12},
        {{0x0a}, 1},
        {{0x02, 0x00}, 2},
        {{0x0a, 0x00, 0x80, 0x00, 0x0a}, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        status_t st = pbcheck_strings(get_member, cases[i].bytes, cases[i].len);
        cr_assert_str_eq(st.reason, "MALFORMED_REQUEST", "case %zu", i);
    }
    /* protobuf-c decodes the two-byte field 0; the runtime's decode still refuses it. */
    static const uint8_t zero[] = {0x0a, 0x00, 0x80, 0x00, 0x0a};
    arena_t a;
    arena_init(&a);
    ProtobufCMessage *m = NULL;
    status_t st = request_decode(&a, get_member, zero, sizeof zero, &m);
    cr_assert_str_eq(st.reason, "MALFORMED_REQUEST");
    cr_assert_null(m);
    arena_free(&a);
}

Test(pbcheck, check_ids_validates_merchant_and_key) {
    /* Goal: the runtime's own fields are validated after decode, merchant first. */
    Loyalty__V1__CreateMemberRequest req = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    req.merchant_id = "m 1";
    req.idempotency_key = "";
    const char *m, *k;
    status_t st = request_check_ids(&req.base, true, true, &m, &k);
    cr_assert_str_eq(st.reason, "INVALID_MERCHANT_ID");
    req.merchant_id = "m1";
    st = request_check_ids(&req.base, true, true, &m, &k);
    cr_assert_str_eq(st.reason, "INVALID_IDEMPOTENCY_KEY");
    req.idempotency_key = "K1";
    st = request_check_ids(&req.base, true, true, &m, &k);
    cr_assert(status_is_ok(&st));
    cr_assert_str_eq(m, "m1");
    cr_assert_str_eq(k, "K1");
    st = request_check_ids(&req.base, false, false, &m, &k);
    cr_assert_str_eq(m, "");
    cr_assert_null(k);
}
