/* test_validate.c -- unit tests of input validation and calendar arithmetic. */
#include "validate.h"

#include <criterion/criterion.h>

#include <string.h>

Test(validate, utf8_accepts_valid_and_rejects_malformed) {
    cr_assert(validate_utf8("plain", 5));
    cr_assert(validate_utf8("caf\xc3\xa9", 5));
    cr_assert(validate_utf8("\xe6\x97\xa5\xe6\x9c\xac", 6));
    cr_assert(validate_utf8("\xf0\x9f\x98\x80", 4));
    cr_assert_not(validate_utf8("\xc3", 1), "truncated");
    cr_assert_not(validate_utf8("\xc0\xaf", 2), "overlong");
    cr_assert_not(validate_utf8("\xed\xa0\x80", 3), "surrogate");
    cr_assert_not(validate_utf8("\xff", 1));
    cr_assert_eq(validate_utf8_length("caf\xc3\xa9"), 4);
}

Test(validate, text_bounds_count_characters_not_bytes) {
    cr_assert_eq(validate_text("name", "\xe6\x97\xa5\xe6\x9c\xac", 1, 2).code, STATUS_OK);
    status_t st = validate_text("name", "\xe6\x97\xa5\xe6\x9c\xac!", 1, 2);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, "name: at most 2 characters");
    st = validate_text("name", "", 1, 2);
    cr_assert_str_eq(st.message, "name: required");
    cr_assert_eq(validate_text("name", "tab\there", 0, 20).code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(validate_text("name", "\xff", 0, 20).code, STATUS_INVALID_ARGUMENT);
}

Test(validate, email_is_lowercased_and_checked) {
    char out[EMAIL_MAX + 1];
    cr_assert_eq(validate_email("email", "Ana.Lima+shop@Example.COM", out).code, STATUS_OK);
    cr_assert_str_eq(out, "ana.lima+shop@example.com");
    const char *bad[] = {"",     "plain",    "@example.com", "a@",       "a@b",
                         "a@b.", "a@@b.com", "a b@c.com",    "a@b..com", "a@.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(validate_email("email", bad[i], out).code, STATUS_INVALID_ARGUMENT, "%s",
                     bad[i]);
    }
    char longest[EMAIL_MAX + 2];
    memset(longest, 'a', sizeof longest);
    memcpy(longest, "x@", 2);
    memcpy(longest + EMAIL_MAX - 4, ".com", 5);
    cr_assert_eq(strlen(longest), EMAIL_MAX);
    cr_assert_eq(validate_email("email", longest, out).code, STATUS_OK, "exactly the maximum");
    memset(longest, 'a', sizeof longest);
    memcpy(longest, "x@", 2);
    memcpy(longest + EMAIL_MAX - 3, ".com", 5);
    cr_assert_eq(strlen(longest), EMAIL_MAX + 1);
    cr_assert_eq(validate_email("email", longest, out).code, STATUS_INVALID_ARGUMENT, "one over");
}

Test(validate, phone_is_normalised_to_e164) {
    char out[PHONE_MAX + 1];
    cr_assert_eq(validate_phone("phone", "+65 9123-4567", out).code, STATUS_OK);
    cr_assert_str_eq(out, "+6591234567");
    cr_assert_eq(validate_phone("phone", "+1 (415) 555.0100", out).code, STATUS_OK);
    cr_assert_str_eq(out, "+14155550100");
    cr_assert_eq(validate_phone("phone", "+123456789012345", out).code, STATUS_OK, "15 digits");
    const char *bad[] = {"91234567",      "+0123456789",  "+123456",     "+1234567890123456",
                         "+65 9123 abcd", "++6591234567", "+65+91234567"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(validate_phone("phone", bad[i], out).code, STATUS_INVALID_ARGUMENT, "%s",
                     bad[i]);
    }
}

Test(validate, dates_are_real_calendar_days) {
    int y, m, d;
    cr_assert_eq(validate_date("d", "2024-02-29", &y, &m, &d).code, STATUS_OK);
    cr_assert(y == 2024 && m == 2 && d == 29);
    const char *bad[] = {"2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31",  "24-01-01",
                         "2024/01/01", "2024-1-01",  "1899-12-31", "2024-01-01x", "20a4-01-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(validate_date("d", bad[i], &y, &m, &d).code, STATUS_INVALID_ARGUMENT, "%s",
                     bad[i]);
    }
    cr_assert_eq(validate_date("d", "1900-01-01", &y, &m, &d).code, STATUS_OK);
    cr_assert_eq(validate_date("d", "2000-02-29", &y, &m, &d).code, STATUS_OK);
    cr_assert_eq(validate_date("d", "2100-02-29", &y, &m, &d).code, STATUS_INVALID_ARGUMENT);
}

Test(validate, civil_day_arithmetic_round_trips) {
    cr_assert_eq(date_days_from_civil(1970, 1, 1), 0);
    cr_assert_eq(date_days_from_civil(2000, 3, 1), 11017);
    cr_assert_eq(date_days_from_civil(1969, 12, 31), -1);
    for (int64_t day = -800000; day < 800000; day += 997) {
        int y, m, d;
        date_civil_from_days(day, &y, &m, &d);
        cr_assert_eq(date_days_from_civil(y, m, d), day);
    }
    cr_assert_eq(date_days_in_month(2024, 2), 29);
    cr_assert_eq(date_days_in_month(2023, 2), 28);
    cr_assert_eq(date_days_in_month(2023, 12), 31);
}

Test(validate, tokens_and_keys) {
    cr_assert_eq(validate_merchant_id("shop-42_sg.main").code, STATUS_OK);
    status_t st = validate_merchant_id("");
    cr_assert_str_eq(st.reason, "INVALID_MERCHANT_ID");
    cr_assert_eq(validate_merchant_id("has space").code, STATUS_INVALID_ARGUMENT);
    char id[MERCHANT_ID_MAX + 2];
    memset(id, 'm', sizeof id);
    id[MERCHANT_ID_MAX] = '\0';
    cr_assert_eq(validate_merchant_id(id).code, STATUS_OK, "exactly the maximum");
    id[MERCHANT_ID_MAX] = 'm';
    id[MERCHANT_ID_MAX + 1] = '\0';
    cr_assert_eq(validate_merchant_id(id).code, STATUS_INVALID_ARGUMENT, "one over");
    cr_assert_eq(validate_idempotency_key("checkout/ck_1:points-hold").code, STATUS_OK);
    cr_assert_eq(validate_idempotency_key("with space").code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(validate_idempotency_key("").reason, "INVALID_IDEMPOTENCY_KEY");
}
