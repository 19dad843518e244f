/* test_pb_fields.c -- the generic access to a message's fields by name (lib/pb.h): setting a
 * string or message field gives the same message, to the byte, as setting the C member; a
 * oneof member set by name becomes the case; a wrong name or type is refused. */
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "pb.h"

#include <criterion/criterion.h>

#include <string.h>

/* The bytes of m in a, as *n. */
static unsigned char *packed(arena_t *a, const ProtobufCMessage *m, size_t *n) {
    return pb_pack_arena(a, m, n);
}

Test(pb_fields, set_by_name_packs_as_set_by_member) {
    /* Goal: an update request filled by field name (as the gateway's merchant settings push
     * does) is the same on the wire as one filled through its C struct. */
    arena_t a;
    arena_init(&a);
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    char *paths[] = {"time_zone"};
    mask.paths = paths;
    mask.n_paths = 1;

    Loyalty__V1__WalletSettings s = LOYALTY__V1__WALLET_SETTINGS__INIT;
    s.merchant_id = "m-1";
    s.time_zone = "Asia/Singapore";
    Loyalty__V1__WalletUpdateSettingsRequest r = LOYALTY__V1__WALLET_UPDATE_SETTINGS_REQUEST__INIT;
    r.merchant_id = "m-1";
    r.idempotency_key = "merchant-settings:v1:r0";
    r.settings = &s;
    r.update_mask = &mask;

    ProtobufCMessage *gs = pb_new(&a, &loyalty__v1__wallet_settings__descriptor);
    ProtobufCMessage *gr = pb_new(&a, &loyalty__v1__wallet_update_settings_request__descriptor);
    cr_assert(pb_set_string_field(gs, "time_zone", "Asia/Singapore"));
    cr_assert(pb_set_string_field(gs, "merchant_id", "m-1"));
    cr_assert(pb_set_string_field(gr, "merchant_id", "m-1"));
    cr_assert(pb_set_string_field(gr, "idempotency_key", "merchant-settings:v1:r0"));
    cr_assert(pb_set_message_field(gr, "settings", gs));
    cr_assert(pb_set_message_field(gr, "update_mask", &mask.base));

    size_t n_want = 0, n_got = 0;
    unsigned char *want = packed(&a, &r.base, &n_want);
    unsigned char *got = packed(&a, gr, &n_got);
    cr_assert_gt(n_want, 0);
    cr_assert_eq(n_got, n_want);
    cr_assert_eq(memcmp(got, want, n_want), 0);
    cr_assert_str_eq(pb_get_string_field(pb_get_message_field(gr, "settings"), "time_zone"),
                     "Asia/Singapore");
    arena_free(&a);
}

Test(pb_fields, oneof_member_set_by_name_is_the_case) {
    /* Goal: a string in a oneof set by name is the oneof's case, and reads back. */
    arena_t a;
    arena_init(&a);
    Loyalty__V1__GatewayGetMemberDetailRequest *r =
        pb_new(&a, &loyalty__v1__gateway_get_member_detail_request__descriptor);
    cr_assert(pb_set_string_field(&r->base, "phone", "+6591000088"));
    cr_assert_eq(r->lookup_case, LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_PHONE);
    cr_assert_str_eq(r->phone, "+6591000088");
    cr_assert_str_eq(pb_get_string_field(&r->base, "phone"), "+6591000088");
    cr_assert_str_eq(pb_get_string_field(&r->base, "member_id"), "");
    arena_free(&a);
}

Test(pb_fields, wrong_name_or_type_is_refused) {
    /* Goal: no field of that name, a field of another type, or a message of another type than
     * the field's is refused and leaves the message as it was. */
    arena_t a;
    arena_init(&a);
    ProtobufCMessage *r = pb_new(&a, &loyalty__v1__wallet_update_settings_request__descriptor);
    ProtobufCMessage *other = pb_new(&a, &loyalty__v1__wallet_get_settings_request__descriptor);
    cr_assert_not(pb_set_string_field(r, "no_such_field", "x"));
    cr_assert_not(pb_set_string_field(r, "settings", "x"));
    cr_assert_not(pb_set_message_field(r, "merchant_id", other));
    cr_assert_not(pb_set_message_field(r, "settings", other));
    cr_assert_null(pb_get_message_field(r, "settings"));
    cr_assert_str_eq(pb_get_string_field(r, "merchant_id"), "");
    arena_free(&a);
}
