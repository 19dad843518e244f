/* test_reasons.c -- unit tests of the reason catalogue (lib/reasons.def as reason_id_t and
 * lib/reasons.h) and of the two ways a status gets its reason: status_make by id, and
 * status_make_relayed for a reason passed on as a string. The source scan that ties the
 * catalogue to the code is tools/reasons.py (ctest docs.reasons). */
#include "reasons.h"
#include "status.h"

#include <criterion/criterion.h>

#include <string.h>

Test(reasons, table_is_whole_and_names_are_tokens) {
    /* Goal: every id has a name, a meaning and an error code, the names are UPPER_SNAKE
     * tokens that fit a status_t, and no name is catalogued twice. */
    cr_assert_gt(REASON_COUNT, 100);
    for (int i = REASON_NONE + 1; i < REASON_COUNT; i++) {
        const reason_info_t *r = reason_info((reason_id_t)i);
        cr_assert_not_null(r->name, "id %d", i);
        cr_assert_gt(strlen(r->meaning), 0, "%s", r->name);
        cr_assert_neq(r->code, STATUS_OK, "%s", r->name);
        cr_assert_lt(strlen(r->name), STATUS_REASON_MAX, "%s", r->name);
        for (const char *p = r->name; *p; p++) {
            cr_assert((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_', "%s",
                      r->name);
        }
        cr_assert_eq(reason_find(r->name), r, "%s is catalogued twice", r->name);
        cr_assert_eq(reason_name((reason_id_t)i), r->name);
    }
}

Test(reasons, find_by_name) {
    /* Goal: the lookup finds a catalogued reason with its code, and nothing for others. */
    const reason_info_t *r = reason_find("INSUFFICIENT_POINTS");
    cr_assert_not_null(r);
    cr_assert_eq(r, reason_info(REASON_INSUFFICIENT_POINTS));
    cr_assert_eq(r->code, STATUS_FAILED_PRECONDITION);
    cr_assert_eq(reason_find("PHONE_TAKEN")->code, STATUS_ALREADY_EXISTS);
    cr_assert_null(reason_find("NO_SUCH_REASON"));
    cr_assert_null(reason_find("insufficient_points"));
    cr_assert_null(reason_find(""));
}

Test(reasons, family_of_invalid_fields_is_known) {
    /* Goal: status_invalid_field's INVALID_<FIELD> reasons belong to the catalogue's family;
     * the bare prefix and unrelated names do not. */
    status_t s = status_invalid_field("profile.email", "not an address");
    cr_assert_str_eq(s.reason, "INVALID_PROFILE_EMAIL");
    cr_assert(reason_is_known(s.reason));
    cr_assert(reason_is_known("HOLD_EXPIRED"));
    cr_assert_not(reason_is_known("INVALID_"));
    cr_assert_not(reason_is_known("NO_SUCH_REASON"));
}

Test(reasons, make_sends_the_name_of_the_id) {
    /* Goal: status_make sends the catalogued name of the id it is given; REASON_NONE is no
     * reason. */
    status_t s = status_make(STATUS_NOT_FOUND, REASON_MEMBER_NOT_FOUND, "member %d", 7);
    cr_assert_eq(s.code, STATUS_NOT_FOUND);
    cr_assert_str_eq(s.reason, "MEMBER_NOT_FOUND");
    cr_assert_str_eq(s.message, "member 7");
    s = status_make(STATUS_INTERNAL, REASON_NONE, "bug");
    cr_assert_str_eq(s.reason, "");
    cr_assert_str_eq(reason_name(REASON_NONE), "");
    cr_assert_str_eq(reason_name(REASON_COUNT), "");
}

Test(reasons, relayed_keeps_the_string_it_is_given) {
    /* Goal: a reason passed on from elsewhere is kept as it came, catalogued or not (the
     * producer, not the relay, answers for it); NULL and "" are no reason. */
    status_t s = status_make_relayed(STATUS_FAILED_PRECONDITION, "SOMEONE_ELSES", "passed on");
    cr_assert_eq(s.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(s.reason, "SOMEONE_ELSES");
    cr_assert_str_eq(s.message, "passed on");
    s = status_make_relayed(STATUS_INTERNAL, NULL, "bug");
    cr_assert_str_eq(s.reason, "");
    s = status_make_relayed(STATUS_INTERNAL, "", "bug");
    cr_assert_str_eq(s.reason, "");
}
