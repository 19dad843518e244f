/* test_member_rules.c -- unit tests of member profile rules: masks and normalisation. */
#include "member_rules.h"
#include "validate.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

static arena_t a;
static void setup(void) {
    arena_init(&a);
}
static void teardown(void) {
    arena_free(&a);
}
TestSuite(member_rules, .init = setup, .fini = teardown);

static const int64_t TODAY = 20415; /* 2025-11-23 */

Test(member_rules, mask_names_map_to_fields) {
    unsigned mask;
    char *names[] = {"name", "tags", "custom_attributes"};
    Google__Protobuf__FieldMask m = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    m.paths = names;
    m.n_paths = 3;
    cr_assert_eq(member_rules_parse_mask(&m, &mask).code, STATUS_OK);
    cr_assert_eq(mask, MEMBER_FIELD_NAME | MEMBER_FIELD_TAGS | MEMBER_FIELD_CUSTOM_ATTRIBUTES);
    m.n_paths = 0;
    cr_assert_str_eq(member_rules_parse_mask(&m, &mask).reason, "UPDATE_MASK_REQUIRED");
    cr_assert_str_eq(member_rules_parse_mask(NULL, &mask).reason, "UPDATE_MASK_REQUIRED");
    char *bad[] = {"name", "points"};
    m.paths = bad;
    m.n_paths = 2;
    status_t st = member_rules_parse_mask(&m, &mask);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(st.reason, "UPDATE_MASK_UNKNOWN_FIELD");
    cr_assert(strstr(st.message, "'points'") != NULL);
}

Test(member_rules, normalises_contact_fields) {
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    char *tags[] = {"VIP", "Gold-Fan"};
    in.name = "Ana";
    in.phone = "+55 (11) 91234-5678";
    in.email = "Ana@Example.com";
    in.tags = tags;
    in.n_tags = 2;
    Loyalty__V1__MemberProfile out = LOYALTY__V1__MEMBER_PROFILE__INIT;
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_ALL, TODAY, &out).code,
                 STATUS_OK);
    cr_assert_str_eq(out.phone, "+5511912345678");
    cr_assert_str_eq(out.email, "ana@example.com");
    cr_assert_str_eq(out.tags[0], "vip");
    cr_assert_str_eq(out.tags[1], "gold-fan");
    cr_assert_null(out.address);
}

Test(member_rules, only_masked_fields_change) {
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    in.name = "New Name";
    in.email = "bad email"; /* not in the mask: neither checked nor copied */
    Loyalty__V1__MemberProfile out = LOYALTY__V1__MEMBER_PROFILE__INIT;
    out.name = "Old";
    out.email = "old@example.com";
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_NAME, TODAY, &out).code,
                 STATUS_OK);
    cr_assert_str_eq(out.name, "New Name");
    cr_assert_str_eq(out.email, "old@example.com");
    /* A masked field sent empty is cleared. */
    in.email = "";
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_EMAIL, TODAY, &out).code,
                 STATUS_OK);
    cr_assert_str_eq(out.email, "");
}

Test(member_rules, birthday_cannot_be_in_the_future) {
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    Loyalty__V1__MemberProfile out = LOYALTY__V1__MEMBER_PROFILE__INIT;
    int y, m, d;
    date_civil_from_days(TODAY, &y, &m, &d);
    char today[11], tomorrow[11];
    snprintf(today, sizeof today, "%04d-%02d-%02d", y, m, d);
    date_civil_from_days(TODAY + 1, &y, &m, &d);
    snprintf(tomorrow, sizeof tomorrow, "%04d-%02d-%02d", y, m, d);
    in.birthday = today;
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_BIRTHDAY, TODAY, &out).code,
                 STATUS_OK);
    in.birthday = tomorrow;
    status_t st = member_rules_normalize_profile(&a, &in, MEMBER_FIELD_BIRTHDAY, TODAY, &out);
    cr_assert_str_eq(st.reason, "INVALID_PROFILE_BIRTHDAY");
}

Test(member_rules, list_and_attribute_limits) {
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    Loyalty__V1__MemberProfile out = LOYALTY__V1__MEMBER_PROFILE__INIT;
    char *many[MEMBER_LIST_MAX + 1];
    char names[MEMBER_LIST_MAX + 1][8];
    for (int i = 0; i <= MEMBER_LIST_MAX; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        many[i] = names[i];
    }
    in.tags = many;
    in.n_tags = MEMBER_LIST_MAX;
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_TAGS, TODAY, &out).code,
                 STATUS_OK, "exactly the maximum");
    in.n_tags = MEMBER_LIST_MAX + 1;
    cr_assert_str_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_TAGS, TODAY, &out).reason,
                     "INVALID_PROFILE_TAGS");
    char *dup[] = {"vip", "VIP"};
    in.tags = dup;
    in.n_tags = 2;
    status_t st = member_rules_normalize_profile(&a, &in, MEMBER_FIELD_TAGS, TODAY, &out);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "tags equal after lower-casing are duplicates");

    Loyalty__V1__MemberProfile__CustomAttributesEntry e1 =
        LOYALTY__V1__MEMBER_PROFILE__CUSTOM_ATTRIBUTES_ENTRY__INIT;
    e1.key = "size";
    e1.value = "42";
    Loyalty__V1__MemberProfile__CustomAttributesEntry e2 = e1;
    Loyalty__V1__MemberProfile__CustomAttributesEntry *attrs[] = {&e1, &e2};
    in.custom_attributes = attrs;
    in.n_custom_attributes = 2;
    st = member_rules_normalize_profile(&a, &in, MEMBER_FIELD_CUSTOM_ATTRIBUTES, TODAY, &out);
    cr_assert_str_eq(st.reason, "INVALID_PROFILE_CUSTOM_ATTRIBUTES");
    e2.key = "bad key";
    st = member_rules_normalize_profile(&a, &in, MEMBER_FIELD_CUSTOM_ATTRIBUTES, TODAY, &out);
    cr_assert_str_eq(st.reason, "INVALID_PROFILE_CUSTOM_ATTRIBUTES_KEY");
}

Test(member_rules, address_country_and_gender) {
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    Loyalty__V1__MemberProfile out = LOYALTY__V1__MEMBER_PROFILE__INIT;
    Loyalty__V1__Address addr = LOYALTY__V1__ADDRESS__INIT;
    addr.country_code = "sg";
    in.address = &addr;
    cr_assert_str_eq(
        member_rules_normalize_profile(&a, &in, MEMBER_FIELD_ADDRESS, TODAY, &out).reason,
        "INVALID_PROFILE_ADDRESS_COUNTRY_CODE");
    addr.country_code = "SG";
    cr_assert_eq(member_rules_normalize_profile(&a, &in, MEMBER_FIELD_ADDRESS, TODAY, &out).code,
                 STATUS_OK);
    cr_assert_str_eq(out.address->country_code, "SG");
    in.gender = (Loyalty__V1__Gender)9;
    cr_assert_str_eq(
        member_rules_normalize_profile(&a, &in, MEMBER_FIELD_GENDER, TODAY, &out).reason,
        "INVALID_PROFILE_GENDER");
    cr_assert_eq(member_rules_check_external_id("").code, STATUS_OK);
    cr_assert_eq(member_rules_check_external_id("pos 1").code, STATUS_INVALID_ARGUMENT);
}
