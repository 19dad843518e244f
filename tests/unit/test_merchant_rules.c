/* test_merchant_rules.c -- unit tests of the merchant settings record's pure rules: the shapes
 * of a time zone, an ISO 4217 currency and a BCP 47 locale (with its case normalised), and the
 * backoff of a failed push. */
#include "merchant_rules.h"

#include <criterion/criterion.h>

#include <string.h>

static bool ok(status_t st) {
    return status_is_ok(&st);
}

static void assert_refused(status_t st, const char *reason) {
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s", st.message);
    cr_assert_str_eq(st.reason, reason);
}

Test(merchant_rules, time_zone_shape) {
    cr_assert(ok(merchant_check_time_zone("Asia/Singapore")));
    cr_assert(ok(merchant_check_time_zone("Etc/GMT+8")));
    cr_assert(ok(merchant_check_time_zone("America/Port-au-Prince")));
    cr_assert(ok(merchant_check_time_zone("UTC")));
    assert_refused(merchant_check_time_zone(""), "INVALID_SETTINGS_TIME_ZONE");
    assert_refused(merchant_check_time_zone("Asia/Singapore "), "INVALID_SETTINGS_TIME_ZONE");
    assert_refused(merchant_check_time_zone("../etc/passwd."), "INVALID_SETTINGS_TIME_ZONE");
    char longest[MERCHANT_TIME_ZONE_MAX + 2];
    memset(longest, 'A', sizeof longest);
    longest[MERCHANT_TIME_ZONE_MAX] = '\0';
    cr_assert(ok(merchant_check_time_zone(longest)), "64 characters");
    longest[MERCHANT_TIME_ZONE_MAX] = 'A';
    longest[MERCHANT_TIME_ZONE_MAX + 1] = '\0';
    assert_refused(merchant_check_time_zone(longest), "INVALID_SETTINGS_TIME_ZONE");
}

Test(merchant_rules, currency_is_three_capital_letters) {
    cr_assert(ok(merchant_check_currency("SGD")));
    cr_assert(ok(merchant_check_currency("")), "not set");
    assert_refused(merchant_check_currency("sgd"), "INVALID_SETTINGS_CURRENCY");
    assert_refused(merchant_check_currency("SG"), "INVALID_SETTINGS_CURRENCY");
    assert_refused(merchant_check_currency("SGDX"), "INVALID_SETTINGS_CURRENCY");
    assert_refused(merchant_check_currency("S1D"), "INVALID_SETTINGS_CURRENCY");
}

static const char *normalized(const char *in) {
    static char out[MERCHANT_LOCALE_MAX + 1];
    status_t st = merchant_normalize_locale(in, out);
    cr_assert(status_is_ok(&st), "%s: %s", in, st.message);
    return out;
}

Test(merchant_rules, locale_is_a_bcp47_tag_with_its_usual_case) {
    cr_assert_str_eq(normalized(""), "");
    cr_assert_str_eq(normalized("en"), "en");
    cr_assert_str_eq(normalized("EN-sg"), "en-SG");
    cr_assert_str_eq(normalized("zh-hans-cn"), "zh-Hans-CN");
    cr_assert_str_eq(normalized("es-419"), "es-419");
    cr_assert_str_eq(normalized("de-CH-1996"), "de-CH-1996");
    cr_assert_str_eq(normalized("sl-rozaj-biske"), "sl-rozaj-biske");
    cr_assert_str_eq(normalized("en-US-u-ca-gregory"), "en-US-u-ca-gregory");
    cr_assert_str_eq(normalized("en-x-shop1"), "en-x-shop1");
    cr_assert_str_eq(normalized("fil-PH"), "fil-PH");
    char out[MERCHANT_LOCALE_MAX + 1];
    static const char *const bad[] = {
        "e",
        "english",
        "en_SG",
        "en-",
        "-en",
        "en--SG",
        "en-SG-Hans",
        "en-u",
        "en-x",
        "en-US-u-c",
        "1n-US",
        "en-S",
        "en-SG!",
        "en-123456789",
        "en-US-SG",
        "en-Hans-Latn",
        "en-aaaaaaaa-bbbbbbbb-cccccccc-dddddd", /* 36 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        status_t st = merchant_normalize_locale(bad[i], out);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s was accepted as %s", bad[i], out);
        cr_assert_str_eq(st.reason, "INVALID_SETTINGS_LOCALE");
    }
}

Test(merchant_rules, push_backoff_doubles_up_to_a_minute) {
    cr_assert_eq(merchant_push_backoff_s(0), 1);
    cr_assert_eq(merchant_push_backoff_s(1), 1);
    cr_assert_eq(merchant_push_backoff_s(2), 2);
    cr_assert_eq(merchant_push_backoff_s(3), 4);
    cr_assert_eq(merchant_push_backoff_s(6), 32);
    cr_assert_eq(merchant_push_backoff_s(7), MERCHANT_PUSH_BACKOFF_MAX_S);
    cr_assert_eq(merchant_push_backoff_s(1000), MERCHANT_PUSH_BACKOFF_MAX_S);
}
