/* test_campaign_rules.c -- unit tests of campaign rules: configuration checks, templates,
 * birthdays (Feb 29), periods' date arithmetic and reward keys. */
#include "campaign_rules.h"

#include <criterion/criterion.h>

#include <string.h>

static arena_t a;
static void setup(void) {
    arena_init(&a);
}
static void teardown(void) {
    arena_free(&a);
}
TestSuite(campaign_rules, .init = setup, .fini = teardown);

static Loyalty__V1__Campaign birthday_campaign(void) {
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY;
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    c.birthday_timing = LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY;
    c.message_template = "Happy birthday {{name}}! {{points}} points for you.";
    return c;
}

Test(campaign_rules, validates_each_kind_and_names_the_field) {
    Loyalty__V1__Campaign c = birthday_campaign();
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK);
    c.birthday_timing = LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_UNSPECIFIED;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_BIRTHDAY_TIMING");

    c = birthday_campaign();
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_UNSPECIFIED;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_CHANNEL");

    c = birthday_campaign();
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_WELCOME_REMINDER_DAYS");
    c.welcome_reminder_days = 7;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK);
    c.welcome_reminder_days = 366;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_INVALID_ARGUMENT, "one over");

    c = birthday_campaign();
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_INACTIVE_DAYS",
                     "neither days nor segments");
    Loyalty__V1__MemberSegment segments[] = {LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_SLEEPING};
    c.segments = segments;
    c.n_segments = 1;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK, "segments alone");
    segments[0] = LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_NO_PURCHASE;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK, "the last segment");
    segments[0] =
        (Loyalty__V1__MemberSegment)(LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_NO_PURCHASE + 1);
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_SEGMENTS",
                     "one past the last segment");
    segments[0] = LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_UNSPECIFIED;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_SEGMENTS",
                     "UNSPECIFIED is no segment");

    c = birthday_campaign();
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_SEGMENTS");

    c = birthday_campaign();
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER;
    c.expiring_within_days = 30;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK);

    c = birthday_campaign();
    Loyalty__V1__CampaignReward r = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    r.points = CAMPAIGN_POINTS_MAX + 1;
    c.reward = &r;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_REWARD_POINTS");
    r.points = CAMPAIGN_POINTS_MAX;
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK);
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION;
    r.tier_birthday_points = true;
    cr_assert_str_eq(campaign_rules_validate(&c).reason,
                     "INVALID_CAMPAIGN_REWARD_TIER_BIRTHDAY_POINTS");
    c.kind = (Loyalty__V1__CampaignKind)42;
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_KIND");

    /* IANA names have slashes and signs; PostgreSQL checks the name itself when it is stored. */
    c = birthday_campaign();
    c.time_zone = "Asia/Singapore";
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK, "Asia/Singapore");
    c.time_zone = "Etc/GMT+8";
    cr_assert_eq(campaign_rules_validate(&c).code, STATUS_OK, "Etc/GMT+8");
    c.time_zone = "Asia/Singapore; DROP";
    cr_assert_str_eq(campaign_rules_validate(&c).reason, "INVALID_CAMPAIGN_TIME_ZONE");
}

Test(campaign_rules, templates_accept_only_known_placeholders) {
    cr_assert_eq(campaign_rules_check_template("t", "Hi {{name}}, {{points}} pts").code, STATUS_OK);
    cr_assert_eq(campaign_rules_check_template("t", "Hi {{nom}}").code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(campaign_rules_check_template("t", "Hi {{name}").code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(campaign_rules_check_template("t", "Hi name}}").code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(campaign_rules_check_template("t", "").code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(campaign_rules_check_template("t", "single { brace } is fine").code, STATUS_OK);
    char big[CAMPAIGN_TEMPLATE_MAX + 2];
    memset(big, 'x', sizeof big);
    big[CAMPAIGN_TEMPLATE_MAX] = '\0';
    cr_assert_eq(campaign_rules_check_template("t", big).code, STATUS_OK, "exactly the maximum");
    big[CAMPAIGN_TEMPLATE_MAX] = 'x';
    big[CAMPAIGN_TEMPLATE_MAX + 1] = '\0';
    cr_assert_eq(campaign_rules_check_template("t", big).code, STATUS_INVALID_ARGUMENT);
}

Test(campaign_rules, renders_values_and_empties_missing_ones) {
    campaign_vars_t v = {.name = "Ana", .points = "200", .coupon_code = NULL};
    char *m = campaign_render(&a, "Hi {{name}}: {{points}} pts, code [{{coupon_code}}]", &v);
    cr_assert_str_eq(m, "Hi Ana: 200 pts, code []");
    v.name = "Zoë {{points}}"; /* values are not re-expanded */
    m = campaign_render(&a, "{{name}}!", &v);
    cr_assert_str_eq(m, "Zoë {{points}}!");
}

Test(campaign_rules, long_messages_are_cut_on_a_character_boundary) {
    char name[CAMPAIGN_MESSAGE_MAX + 10];
    size_t n = 0;
    while (n + 2 <= sizeof name - 1) { /* "é" = 2 bytes */
        name[n++] = (char)0xc3;
        name[n++] = (char)0xa9;
    }
    name[n] = '\0';
    campaign_vars_t v = {.name = name};
    char *m = campaign_render(&a, "x{{name}}", &v); /* 1 + even: cut would split a char */
    size_t len = strlen(m);
    cr_assert(len <= CAMPAIGN_MESSAGE_MAX);
    cr_assert_eq(len % 2, 1, "ends after a whole 'é' (length %zu)", len);
    m = campaign_render(&a, "short é", &v);
    cr_assert_str_eq(m, "short é", "an untruncated message keeps its last character");
}

Test(campaign_rules, birthdays_on_the_day_and_in_the_month) {
    Loyalty__V1__CampaignBirthdayTiming day =
        LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY;
    Loyalty__V1__CampaignBirthdayTiming month =
        LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_IN_MONTH;
    cr_assert(campaign_birthday_matches("1990-11-23", "2026-11-23", day));
    cr_assert_not(campaign_birthday_matches("1990-11-24", "2026-11-23", day));
    cr_assert(campaign_birthday_matches("1990-11-01", "2026-11-23", month));
    cr_assert_not(campaign_birthday_matches("1990-12-23", "2026-11-23", month));
    cr_assert(campaign_birthday_matches("1992-02-29", "2026-02-28", day), "common year");
    cr_assert_not(campaign_birthday_matches("1992-02-29", "2028-02-28", day), "leap year");
    cr_assert(campaign_birthday_matches("1992-02-29", "2028-02-29", day));
    cr_assert_not(campaign_birthday_matches("", "2026-11-23", month), "no birthday");
}

Test(campaign_rules, dates_keys_and_names) {
    char out[11];
    cr_assert(campaign_date_add_days("2026-12-25", 10, out));
    cr_assert_str_eq(out, "2027-01-04");
    cr_assert(campaign_date_add_days("2028-02-28", 1, out));
    cr_assert_str_eq(out, "2028-02-29");
    cr_assert_not(campaign_date_add_days("2026-13-01", 1, out));
    char month[8];
    campaign_month_of("2026-11-23", month);
    cr_assert_str_eq(month, "2026-11");
    char *k = campaign_reward_key(&a, LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK,
                                  "order:1700000000", "mbr_X", "points");
    cr_assert_str_eq(k, "campaign:WIN_BACK:order:1700000000:mbr_X:points");
    cr_assert_str_eq(
        campaign_channel_name(LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_WHATSAPP),
        "WHATSAPP");
}

Test(campaign_rules, promotions_are_moves_up_but_not_the_starting_tier) {
    Loyalty__V1__MemberTierRef none = LOYALTY__V1__MEMBER_TIER_REF__INIT;
    Loyalty__V1__MemberTierRef silver = LOYALTY__V1__MEMBER_TIER_REF__INIT;
    Loyalty__V1__MemberTierRef gold = LOYALTY__V1__MEMBER_TIER_REF__INIT;
    silver.rank = 1;
    gold.rank = 2;
    Loyalty__V1__MemberTierChange ch = LOYALTY__V1__MEMBER_TIER_CHANGE__INIT;
    ch.reason = LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_UPGRADE;
    ch.from_tier = &silver;
    ch.to_tier = &gold;
    cr_assert(campaign_rules_is_promotion(&ch));
    ch.from_tier = &none;
    ch.to_tier = &silver;
    cr_assert_not(campaign_rules_is_promotion(&ch), "joining the base tier");
    ch.period_value = 10;
    cr_assert(campaign_rules_is_promotion(&ch), "the first tier earned with value");
    ch.period_value = 0;
    ch.reason = LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_PAID;
    cr_assert(campaign_rules_is_promotion(&ch), "a bought card");
    ch.from_tier = &gold;
    ch.to_tier = &gold;
    ch.reason = LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_RENEWAL;
    cr_assert_not(campaign_rules_is_promotion(&ch));
    ch.to_tier = &silver;
    ch.reason = LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_DOWNGRADE;
    cr_assert_not(campaign_rules_is_promotion(&ch));
}
