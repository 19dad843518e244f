/* test_reasons.c -- unit tests of the reason catalogue (lib/reasons.def as lib/reasons.h) and
 * of status_make's debug check against it. The source scan that ties the catalogue to the code
 * is tools/reasons.py (ctest docs.reasons). */
#include "reasons.h"
#include "status.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

Test(reasons, table_is_whole_and_names_are_tokens) {
    /* Goal: every id has a name, a meaning and an error code, the names are UPPER_SNAKE
     * tokens that fit a status_t, and no name is catalogued twice. */
    cr_assert_gt(REASON_COUNT, 100);
    for (int i = 0; i < REASON_COUNT; i++) {
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

Test(reasons, checked_make_accepts_catalogued_and_passed_on) {
    /* Goal: the debug check lets through a catalogued literal, no reason, and any reason that
     * is not a literal (a participant's, passed on). */
    status_t s = status_make_checked(true, STATUS_NOT_FOUND, "MEMBER_NOT_FOUND", "member %d", 7);
    cr_assert_eq(s.code, STATUS_NOT_FOUND);
    cr_assert_str_eq(s.reason, "MEMBER_NOT_FOUND");
    cr_assert_str_eq(s.message, "member 7");
    s = status_make_checked(true, STATUS_INTERNAL, NULL, "bug");
    cr_assert_str_eq(s.reason, "");
    s = status_make_checked(false, STATUS_FAILED_PRECONDITION, "SOMEONE_ELSES", "passed on");
    cr_assert_str_eq(s.reason, "SOMEONE_ELSES");
}

Test(reasons, checked_make_stops_on_an_uncatalogued_literal, .signal = SIGABRT) {
    /* Goal: a literal reason missing from lib/reasons.def stops the process (debug builds route
     * every status_make of lib/ and the services here). */
    status_make_checked(true, STATUS_FAILED_PRECONDITION, "NOT_IN_THE_CATALOGUE", "x");
}
