/* test_referral_rules.c -- unit tests of referral-svc's pure rules: programme validation,
 * codes, percent-encoding and share links, the tree rules of an attach, reward arithmetic
 * (floor rounding, caps, first-N, joining window, holds) and reversal/release arithmetic. */
#include "referral_rules.h"

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
TestSuite(referral_rules, .init = setup, .fini = teardown);

#define KIND_NONE LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_NONE
#define KIND_FIXED LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_FIXED
#define KIND_BPS LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS
#define RULE_WELCOME LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_WELCOME
#define RULE_REGISTRATION LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_REGISTRATION
#define RULE_FIXED LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_PURCHASE_FIXED
#define RULE_BPS LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_PURCHASE_BPS

static const int64_t NOW = 1790000000;

/* ---- percent-encoding, codes, links ---- */

Test(referral_rules, percent_encoding_keeps_only_unreserved) {
    /* Goal: RFC 3986 -- unreserved characters stay, every other byte is %XX in upper hex. */
    cr_assert_str_eq(referral_percent_encode(&a, ""), "");
    cr_assert_str_eq(referral_percent_encode(&a, "AZaz09-._~"), "AZaz09-._~");
    cr_assert_str_eq(referral_percent_encode(&a, "a b"), "a%20b", "space is %20, never +");
    cr_assert_str_eq(referral_percent_encode(&a, "https://x.io/j?r=AB&c=1#f"),
                     "https%3A%2F%2Fx.io%2Fj%3Fr%3DAB%26c%3D1%23f");
    cr_assert_str_eq(referral_percent_encode(&a, "+%!*'()"), "%2B%25%21%2A%27%28%29");
    cr_assert_str_eq(referral_percent_encode(&a, "Grüße 👋"), "Gr%C3%BC%C3%9Fe%20%F0%9F%91%8B");
    cr_assert_str_eq(referral_percent_encode(&a, "\x01\x7f\xff"), "%01%7F%FF");
}

Test(referral_rules, codes_are_short_from_an_unambiguous_alphabet) {
    /* Goal: generated codes have 8 characters, none of 0 O 1 I L, and do not repeat. */
    char codes[200][REFERRAL_CODE_LEN + 1];
    for (int i = 0; i < 200; i++) {
        referral_code_generate(codes[i]);
        cr_assert_eq(strlen(codes[i]), REFERRAL_CODE_LEN);
        cr_assert_eq(strspn(codes[i], REFERRAL_CODE_ALPHABET), REFERRAL_CODE_LEN, "%s", codes[i]);
        cr_assert_null(strpbrk(codes[i], "0O1IL"));
        for (int k = 0; k < i; k++) {
            cr_assert_str_neq(codes[i], codes[k]);
        }
    }
}

Test(referral_rules, code_lookup_input_is_normalised) {
    /* Goal: lookups are case-insensitive and tolerate surrounding spaces; anything else that
     * is not letters and digits, empty, or longer than 32 is INVALID_CODE. */
    char out[REFERRAL_CODE_INPUT_MAX + 1];
    cr_assert_eq(referral_code_normalize("code", "ab3k9mzq", out).code, STATUS_OK);
    cr_assert_str_eq(out, "AB3K9MZQ");
    cr_assert_eq(referral_code_normalize("code", "  Ab3K9mZq\t\n", out).code, STATUS_OK);
    cr_assert_str_eq(out, "AB3K9MZQ");
    const char *bad[] = {"", "   ", "AB 3K", "AB-3K", "ÄBC", "AB3K9MZQ;--"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        status_t st = referral_code_normalize("code", bad[i], out);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s", bad[i]);
        cr_assert_str_eq(st.reason, "INVALID_CODE");
    }
    char longest[34];
    memset(longest, 'a', 33);
    longest[33] = '\0';
    cr_assert_eq(referral_code_normalize("code", longest, out).code, STATUS_INVALID_ARGUMENT,
                 "33 characters");
    longest[32] = '\0';
    cr_assert_eq(referral_code_normalize("code", longest, out).code, STATUS_OK, "32 characters");
}

Test(referral_rules, url_templates_are_checked) {
    /* Goal: a share URL template is empty or an http(s) URL with {code}, printable ASCII,
     * at most 512 characters, and no other placeholder. */
    const char *f = "program.share_url_template";
    cr_assert_eq(referral_check_url_template(f, "").code, STATUS_OK);
    cr_assert_eq(referral_check_url_template(f, "https://s.io/j?ref={code}").code, STATUS_OK);
    cr_assert_eq(referral_check_url_template(f, "http://s.io/{code}/{code}").code, STATUS_OK);
    const char *bad[] = {"ftp://s.io/{code}",   "https://s.io/join",    "https://s.io/ {code}",
                         "https://s.io/{Code}", "https://s.io/{code}}", "s.io/{code}",
                         "https://s.io/é{code}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        status_t st = referral_check_url_template(f, bad[i]);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s", bad[i]);
        cr_assert_str_eq(st.reason, "INVALID_PROGRAM_SHARE_URL_TEMPLATE");
    }
    char t[600];
    snprintf(t, sizeof t, "https://s.io/{code}?p=");
    size_t len = strlen(t);
    memset(t + len, 'x', 512 - len);
    t[512] = '\0';
    cr_assert_eq(referral_check_url_template(f, t).code, STATUS_OK, "512 characters");
    t[512] = 'x';
    t[513] = '\0';
    cr_assert_eq(referral_check_url_template(f, t).code, STATUS_INVALID_ARGUMENT, "513");
}

Test(referral_rules, share_links_are_encoded) {
    /* Goal: the plain link fills {code}; WhatsApp carries the encoded message, Facebook the
     * encoded link; a message without {url} gets the link appended; no template, no links. */
    Loyalty__V1__ReferralShareLinks l = LOYALTY__V1__REFERRAL_SHARE_LINKS__INIT;
    referral_share_links(&a, "https://shop.example/join?ref={code}&src=share",
                         "Join me & get 100 points with {code}: {url}", "AB3K9MZQ", &l);
    cr_assert_str_eq(l.url, "https://shop.example/join?ref=AB3K9MZQ&src=share");
    cr_assert_str_eq(l.message, "Join me & get 100 points with AB3K9MZQ: "
                                "https://shop.example/join?ref=AB3K9MZQ&src=share");
    cr_assert_str_eq(l.whatsapp_url,
                     "https://wa.me/?text=Join%20me%20%26%20get%20100%20points%20with%20AB3K9MZQ"
                     "%3A%20https%3A%2F%2Fshop.example%2Fjoin%3Fref%3DAB3K9MZQ%26src%3Dshare");
    cr_assert_str_eq(l.facebook_url,
                     "https://www.facebook.com/sharer/sharer.php?u=https%3A%2F%2Fshop.example"
                     "%2Fjoin%3Fref%3DAB3K9MZQ%26src%3Dshare");

    referral_share_links(&a, "https://s.io/r/{code}", "Café über alles!", "ZZ22", &l);
    cr_assert_str_eq(l.message, "Café über alles! https://s.io/r/ZZ22");
    cr_assert_str_eq(l.whatsapp_url, "https://wa.me/?text=Caf%C3%A9%20%C3%BCber%20alles%21%20"
                                     "https%3A%2F%2Fs.io%2Fr%2FZZ22");
    referral_share_links(&a, "https://s.io/r/{code}", "", "ZZ22", &l);
    cr_assert_str_eq(l.message, "https://s.io/r/ZZ22", "empty message template means {url}");
    referral_share_links(&a, "", "anything", "ZZ22", &l);
    cr_assert_str_eq(l.url, "");
    cr_assert_str_eq(l.whatsapp_url, "");
    cr_assert_str_eq(l.facebook_url, "");
}

/* ---- programme validation ---- */

typedef struct prog_fixture {
    Loyalty__V1__ReferralProgram p;
    Loyalty__V1__ReferralLevelRule r[4];
    Loyalty__V1__ReferralLevelRule *rp[4];
} prog_fixture_t;

/* A valid 3-level programme: level 1 bps 500 capped 300, level 2 fixed 20, level 3 bps 100. */
static void prog_init(prog_fixture_t *f) {
    memset(f, 0, sizeof *f);
    f->p = (Loyalty__V1__ReferralProgram)LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    f->p.enabled = true;
    f->p.levels = 3;
    f->p.welcome_points = 50;
    for (int i = 0; i < 4; i++) {
        f->r[i] = (Loyalty__V1__ReferralLevelRule)LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
        f->rp[i] = &f->r[i];
    }
    /* given out of order: the normalised programme sorts them */
    f->r[0].level = 3;
    f->r[0].enabled = true;
    f->r[0].registration_points = 10;
    f->r[0].purchase_reward_kind = KIND_BPS;
    f->r[0].purchase_bps = 100;
    f->r[1].level = 1;
    f->r[1].enabled = true;
    f->r[1].registration_points = 100;
    f->r[1].purchase_reward_kind = KIND_BPS;
    f->r[1].purchase_bps = 500;
    f->r[1].purchase_cap_points = 300;
    f->r[2].level = 2;
    f->r[2].enabled = true;
    f->r[2].registration_points = 30;
    f->r[2].purchase_reward_kind = KIND_FIXED;
    f->r[2].purchase_fixed_points = 20;
    f->p.level_rules = f->rp;
    f->p.n_level_rules = 3;
    f->p.share_url_template = "https://s.io/{code}";
    f->p.share_message_template = "";
}

static status_t check(prog_fixture_t *f, Loyalty__V1__ReferralProgram *out) {
    return referral_rules_check_program(&a, &f->p, out);
}

#define expect_invalid(f, reason_)                                                                 \
    do {                                                                                           \
        Loyalty__V1__ReferralProgram out_ = LOYALTY__V1__REFERRAL_PROGRAM__INIT;                   \
        status_t st_ = check(f, &out_);                                                            \
        cr_assert_eq(st_.code, STATUS_INVALID_ARGUMENT, "want %s, got OK", reason_);               \
        cr_assert_str_eq(st_.reason, reason_);                                                     \
    } while (0)

#define expect_valid(f)                                                                            \
    do {                                                                                           \
        Loyalty__V1__ReferralProgram out_ = LOYALTY__V1__REFERRAL_PROGRAM__INIT;                   \
        status_t st_ = check(f, &out_);                                                            \
        cr_assert_eq(st_.code, STATUS_OK, "%s", st_.message);                                      \
    } while (0)

Test(referral_rules, program_is_normalised) {
    /* Goal: a valid programme comes back with its level rules sorted by level. */
    prog_fixture_t f;
    prog_init(&f);
    Loyalty__V1__ReferralProgram out = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    cr_assert_eq(check(&f, &out).code, STATUS_OK);
    cr_assert_eq(out.n_level_rules, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(out.level_rules[i]->level, i + 1);
        cr_assert_eq(referral_rules_level(&out, i + 1), out.level_rules[i]);
    }
    cr_assert_null(referral_rules_level(&out, 0));
    cr_assert_null(referral_rules_level(&out, 4));
    cr_assert_eq(out.level_rules[0]->purchase_bps, 500);
    cr_assert_eq(out.welcome_points, 50);
    cr_assert_str_eq(out.share_url_template, "https://s.io/{code}");
}

Test(referral_rules, program_levels_and_rule_count) {
    /* Goal: levels 1..3 with exactly one rule per level. */
    prog_fixture_t f;
    prog_init(&f);
    f.p.levels = 4;
    expect_invalid(&f, "INVALID_PROGRAM_LEVELS");
    f.p.levels = 0;
    expect_invalid(&f, "INVALID_PROGRAM_LEVELS");
    f.p.levels = 2;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES"); /* 3 rules for 2 levels */
    f.p.level_rules = &f.rp[1];                        /* levels 1 and 2 */
    f.p.n_level_rules = 2;
    expect_valid(&f);
    f.r[2].level = 1; /* level 1 twice */
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_LEVEL");
    f.r[2].level = 3; /* beyond levels */
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_LEVEL");
    cr_assert_eq(referral_rules_check_program(&a, NULL, &f.p).code, STATUS_INVALID_ARGUMENT);
}

Test(referral_rules, program_figures_at_their_bounds) {
    /* Goal: every configured figure is accepted at its bound and refused one beyond. */
    prog_fixture_t f;
    prog_init(&f);
    f.p.welcome_points = REFERRAL_POINTS_MAX;
    expect_valid(&f);
    f.p.welcome_points = REFERRAL_POINTS_MAX + 1;
    expect_invalid(&f, "INVALID_PROGRAM_WELCOME_POINTS");
    f.p.welcome_points = -1;
    expect_invalid(&f, "INVALID_PROGRAM_WELCOME_POINTS");
    prog_init(&f);
    f.p.purchase_hold_days = 365;
    expect_valid(&f);
    f.p.purchase_hold_days = 366;
    expect_invalid(&f, "INVALID_PROGRAM_PURCHASE_HOLD_DAYS");
    prog_init(&f);
    f.r[1].purchase_bps = 10000;
    expect_valid(&f);
    f.r[1].purchase_bps = 10001;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_BPS");
    f.r[1].purchase_bps = 0;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_BPS");
    prog_init(&f);
    f.r[2].purchase_fixed_points = REFERRAL_POINTS_MAX;
    expect_valid(&f);
    f.r[2].purchase_fixed_points = REFERRAL_POINTS_MAX + 1;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_FIXED_POINTS");
    f.r[2].purchase_fixed_points = 0;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_FIXED_POINTS");
    prog_init(&f);
    f.r[1].purchase_first_n = 10000;
    f.r[1].purchase_within_days = 3650;
    expect_valid(&f);
    f.r[1].purchase_first_n = 10001;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_FIRST_N");
    f.r[1].purchase_first_n = 0;
    f.r[1].purchase_within_days = 3651;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_WITHIN_DAYS");
    prog_init(&f);
    f.r[1].registration_points = -5;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_REGISTRATION_POINTS");
    prog_init(&f);
    f.r[1].purchase_cap_points = REFERRAL_POINTS_MAX + 1;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_CAP_POINTS");
}

Test(referral_rules, program_kind_fields_must_match) {
    /* Goal: a kind takes only its own figure; unknown kinds are refused. */
    prog_fixture_t f;
    prog_init(&f);
    f.r[1].purchase_fixed_points = 5; /* BPS with fixed points */
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_FIXED_POINTS");
    prog_init(&f);
    f.r[2].purchase_bps = 5; /* FIXED with bps */
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_BPS");
    prog_init(&f);
    f.r[2].purchase_reward_kind = KIND_NONE; /* NONE with fixed points */
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_REWARD_KIND");
    f.r[2].purchase_fixed_points = 0;
    expect_valid(&f);
    f.r[2].purchase_reward_kind = 7;
    expect_invalid(&f, "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_REWARD_KIND");
    prog_init(&f);
    f.p.share_url_template = "https://s.io/join";
    expect_invalid(&f, "INVALID_PROGRAM_SHARE_URL_TEMPLATE");
    prog_init(&f);
    f.p.share_message_template = "line\nbreak";
    expect_invalid(&f, "INVALID_PROGRAM_SHARE_MESSAGE_TEMPLATE");
}

/* ---- reward arithmetic ---- */

static int64_t points_of(int kind, int64_t fixed, int32_t bps, int64_t cap, int64_t paid,
                         bool *capped) {
    Loyalty__V1__ReferralLevelRule r = LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
    r.level = 1;
    r.enabled = true;
    r.purchase_reward_kind = kind;
    r.purchase_fixed_points = fixed;
    r.purchase_bps = bps;
    r.purchase_cap_points = cap;
    return referral_rules_purchase_points(&r, paid, capped);
}

Test(referral_rules, bps_rewards_round_down) {
    /* Goal: floor(paid * bps / 10000) at, one below and one above each whole point. */
    bool capped;
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 0, 199, &capped), 9, "9.95 -> 9");
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 0, 200, &capped), 10, "exactly 10");
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 0, 201, &capped), 10, "10.05 -> 10");
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 0, 19, &capped), 0, "0.95 -> 0");
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 0, 20, &capped), 1);
    cr_assert_eq(points_of(KIND_BPS, 0, 1, 0, 9999, &capped), 0, "0.9999 -> 0");
    cr_assert_eq(points_of(KIND_BPS, 0, 1, 0, 10000, &capped), 1);
    cr_assert_eq(points_of(KIND_BPS, 0, 10000, 0, 12345, &capped), 12345, "100%");
    cr_assert_eq(points_of(KIND_BPS, 0, 333, 0, 0, &capped), 0, "nothing paid");
    cr_assert_eq(points_of(KIND_BPS, 0, 10000, 0, REFERRAL_PAID_CENTS_MAX, &capped),
                 REFERRAL_PAID_CENTS_MAX, "the largest order does not overflow");
    cr_assert_not(capped);
}

Test(referral_rules, caps_cut_at_the_cap) {
    /* Goal: the cap applies after rounding: below and at the cap untouched, above cut. */
    bool capped;
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 300, 5980, &capped), 299); /* 299.0 */
    cr_assert_not(capped);
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 300, 6000, &capped), 300); /* exactly the cap */
    cr_assert_not(capped);
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 300, 6019, &capped), 300); /* 300.95 -> 300 */
    cr_assert_not(capped, "floor reaches the cap, the cap did not cut");
    cr_assert_eq(points_of(KIND_BPS, 0, 500, 300, 6020, &capped), 300); /* 301 -> 300 */
    cr_assert(capped);
    cr_assert_eq(points_of(KIND_FIXED, 40, 0, 30, 1, &capped), 30, "caps bind fixed too");
    cr_assert(capped);
    cr_assert_eq(points_of(KIND_FIXED, 40, 0, 0, 1, &capped), 40, "0 = no cap");
    cr_assert_not(capped);
    cr_assert_eq(points_of(KIND_NONE, 0, 0, 0, 100000, &capped), 0);
}

static referral_referee_t referee3(void) {
    referral_referee_t r = {.member_id = "mbr_d",
                            .ancestors = {"mbr_c", "mbr_b", "mbr_a"},
                            .attached_at_s = NOW - 86400,
                            .purchase_number = 1};
    return r;
}

Test(referral_rules, first_n_and_joining_window) {
    /* Goal: the Nth purchase is rewarded, the N+1th not; the window ends exactly N days after
     * attaching. */
    Loyalty__V1__ReferralLevelRule r = LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
    r.purchase_first_n = 3;
    referral_referee_t e = referee3();
    e.purchase_number = 3;
    cr_assert(referral_rules_purchase_eligible(&r, &e, NOW));
    e.purchase_number = 4;
    cr_assert_not(referral_rules_purchase_eligible(&r, &e, NOW));
    r.purchase_first_n = 0;
    e.purchase_number = 1000;
    cr_assert(referral_rules_purchase_eligible(&r, &e, NOW), "0 = every purchase");
    r.purchase_within_days = 30;
    e.attached_at_s = NOW - 30 * 86400 + 1;
    cr_assert(referral_rules_purchase_eligible(&r, &e, NOW), "one second before the end");
    e.attached_at_s = NOW - 30 * 86400;
    cr_assert_not(referral_rules_purchase_eligible(&r, &e, NOW), "at the end");
}

Test(referral_rules, registration_rewards_every_enabled_level_and_the_welcome) {
    /* Goal: registration gives the welcome to the referee and registration points up the tree,
     * in level order. */
    prog_fixture_t f;
    prog_init(&f);
    Loyalty__V1__ReferralProgram p = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    cr_assert_eq(check(&f, &p).code, STATUS_OK);
    referral_referee_t e = referee3();
    referral_reward_spec_t out[REFERRAL_REWARDS_PER_EVENT_MAX];
    int n = referral_rules_compute(&p, REFERRAL_EVENT_REGISTRATION, &e, 0, NOW, out);
    cr_assert_eq(n, 4);
    const char *who[] = {"mbr_d", "mbr_c", "mbr_b", "mbr_a"};
    int64_t pts[] = {50, 100, 30, 10};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(out[i].level, i);
        cr_assert_str_eq(out[i].beneficiary_id, who[i]);
        cr_assert_eq(out[i].points, pts[i]);
        cr_assert_eq(out[i].rule, i == 0 ? RULE_WELCOME : RULE_REGISTRATION);
    }
    /* A shallower tree rewards only the ancestors there are. */
    e.ancestors[1] = "";
    e.ancestors[2] = "";
    cr_assert_eq(referral_rules_compute(&p, REFERRAL_EVENT_REGISTRATION, &e, 0, NOW, out), 2);
    /* Not attached, or the programme off: nothing. */
    e.ancestors[0] = "";
    cr_assert_eq(referral_rules_compute(&p, REFERRAL_EVENT_REGISTRATION, &e, 0, NOW, out), 0);
    e = referee3();
    p.enabled = false;
    cr_assert_eq(referral_rules_compute(&p, REFERRAL_EVENT_REGISTRATION, &e, 0, NOW, out), 0);
}

Test(referral_rules, purchase_rewards_per_level) {
    /* Goal: a purchase at the bottom of a 4-generation chain rewards exactly 3 ancestors: bps
     * floor + cap, fixed, bps; a disabled level gives nothing while the one above still does;
     * `levels` limits the depth; 0-point rewards are left out. */
    prog_fixture_t f;
    prog_init(&f);
    Loyalty__V1__ReferralProgram p = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    cr_assert_eq(check(&f, &p).code, STATUS_OK);
    referral_referee_t e = referee3();
    referral_reward_spec_t out[REFERRAL_REWARDS_PER_EVENT_MAX];
    int n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 12345, NOW, out);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[0].level, 1);
    cr_assert_eq(out[0].points, 300, "617.25 capped at 300");
    cr_assert(out[0].capped);
    cr_assert_eq(out[0].rule, RULE_BPS);
    cr_assert_eq(out[0].base_cents, 12345);
    cr_assert_eq(out[0].rule_bps, 500);
    cr_assert_eq(out[1].points, 20);
    cr_assert_eq(out[1].rule, RULE_FIXED);
    cr_assert_eq(out[1].base_cents, 0);
    cr_assert_eq(out[2].points, 123, "123.45 -> 123");
    cr_assert_str_eq(out[2].beneficiary_id, "mbr_a");

    p.level_rules[1]->enabled = false; /* level 2 off */
    n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 12345, NOW, out);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].level, 1);
    cr_assert_eq(out[1].level, 3);
    p.level_rules[1]->enabled = true;
    p.levels = 2;
    cr_assert_eq(referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 12345, NOW, out), 2);
    p.levels = 3;
    /* 99 cents: level 1 gets 4 (4.95), level 2 its fixed 20, level 3 0.99 -> 0: left out. */
    n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 99, NOW, out);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].points, 4);
    cr_assert_eq(out[1].points, 20);
    /* No welcome on purchases. */
    p.welcome_points = 1000;
    n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 12345, NOW, out);
    cr_assert_eq(out[0].level, 1);
}

Test(referral_rules, purchase_limits_apply_per_level) {
    /* Goal: first-N and the joining window are checked per level. */
    prog_fixture_t f;
    prog_init(&f);
    f.r[1].purchase_first_n = 2;      /* level 1: first two purchases */
    f.r[2].purchase_within_days = 10; /* level 2: ten days */
    Loyalty__V1__ReferralProgram p = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    cr_assert_eq(check(&f, &p).code, STATUS_OK);
    referral_referee_t e = referee3();
    referral_reward_spec_t out[REFERRAL_REWARDS_PER_EVENT_MAX];
    e.purchase_number = 2;
    cr_assert_eq(referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 1000, NOW, out), 3);
    e.purchase_number = 3;
    int n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 1000, NOW, out);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].level, 2);
    e.attached_at_s = NOW - 10 * 86400;
    n = referral_rules_compute(&p, REFERRAL_EVENT_PURCHASE, &e, 1000, NOW, out);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].level, 3);
}

Test(referral_rules, holds) {
    /* Goal: the override wins when given (past or now = no hold); otherwise hold days. */
    prog_fixture_t f;
    prog_init(&f);
    f.p.purchase_hold_days = 14;
    cr_assert_eq(referral_rules_hold_until(&f.p, false, 0, NOW), NOW + 14 * 86400);
    cr_assert_eq(referral_rules_hold_until(&f.p, true, NOW, NOW), 0);
    cr_assert_eq(referral_rules_hold_until(&f.p, true, NOW - 1, NOW), 0);
    cr_assert_eq(referral_rules_hold_until(&f.p, true, 0, NOW), 0);
    cr_assert_eq(referral_rules_hold_until(&f.p, true, NOW + 1, NOW), NOW + 1);
    f.p.purchase_hold_days = 0;
    cr_assert_eq(referral_rules_hold_until(&f.p, false, 0, NOW), 0);
}

/* ---- reversal and release ---- */

Test(referral_rules, reversed_target_rounds_down_and_is_exact_in_full) {
    /* Goal: floor(points * share / 10000), exactly points at 10000; shares add up and cap. */
    cr_assert_eq(referral_rules_reversed_target(101, 5000), 50, "50.5 -> 50");
    cr_assert_eq(referral_rules_reversed_target(100, 5000), 50);
    cr_assert_eq(referral_rules_reversed_target(99, 5000), 49, "49.5 -> 49");
    cr_assert_eq(referral_rules_reversed_target(101, 9999), 100, "100.9899 -> 100");
    cr_assert_eq(referral_rules_reversed_target(101, 10000), 101);
    cr_assert_eq(referral_rules_reversed_target(101, 0), 0);
    cr_assert_eq(referral_rules_add_share(3000, 3000), 6000);
    cr_assert_eq(referral_rules_add_share(6000, 4000), 10000);
    cr_assert_eq(referral_rules_add_share(6000, 4001), 10000, "capped");
    cr_assert_eq(referral_rules_add_share(10000, 10000), 10000);
}

Test(referral_rules, partial_returns_of_a_granted_reward_claw_back_exactly_its_points) {
    /* Goal: 30% then 30% then the rest claw back 30+30+41 of 101: never more than granted. */
    referral_reward_money_t m = {
        .state = REFERRAL_STATE_GRANTED, .points = 101, .granted_points = 101};
    int64_t d, cb;
    referral_rules_reverse(&m, 3000, &d, &cb);
    cr_assert_eq(d, 30);
    cr_assert_eq(cb, 30);
    referral_rules_reverse(&m, 6000, &d, &cb);
    cr_assert_eq(d, 30, "60.6 -> 60 total");
    cr_assert_eq(cb, 30);
    referral_rules_reverse(&m, 6000, &d, &cb);
    cr_assert_eq(d, 0, "the same share again changes nothing");
    referral_rules_reverse(&m, 10000, &d, &cb);
    cr_assert_eq(d, 41);
    cr_assert_eq(cb, 41);
    cr_assert_eq(m.reversed_points, 101);
    cr_assert_eq(m.clawed_back_points, 101);
    referral_rules_reverse(&m, 10000, &d, &cb);
    cr_assert_eq(d + cb, 0);
}

Test(referral_rules, reversal_while_held_reduces_the_grant) {
    /* Goal: reversing a held reward claws nothing back; release grants the rest; reversing
     * after release claws back at most what was granted; a full reversal while held cancels. */
    referral_reward_money_t m = {.state = REFERRAL_STATE_HELD, .points = 200};
    int64_t d, cb;
    referral_rules_reverse(&m, 2500, &d, &cb);
    cr_assert_eq(d, 50);
    cr_assert_eq(cb, 0);
    cr_assert_eq(m.state, REFERRAL_STATE_HELD);
    cr_assert(referral_rules_release(&m));
    cr_assert_eq(m.state, REFERRAL_STATE_GRANTED);
    cr_assert_eq(m.granted_points, 150);
    referral_rules_reverse(&m, 10000, &d, &cb);
    cr_assert_eq(d, 150);
    cr_assert_eq(cb, 150, "all that was granted, no more");
    cr_assert_eq(m.clawed_back_points, m.granted_points);

    referral_reward_money_t h = {.state = REFERRAL_STATE_HELD, .points = 200};
    referral_rules_reverse(&h, 10000, &d, &cb);
    cr_assert_eq(d, 200);
    cr_assert_eq(cb, 0);
    cr_assert_eq(h.state, REFERRAL_STATE_CANCELLED);
    referral_rules_reverse(&h, 10000, &d, &cb);
    cr_assert_eq(d, 0, "a cancelled reward is never reversed again");

    referral_reward_money_t z = {.state = REFERRAL_STATE_HELD, .points = 7, .reversed_points = 7};
    cr_assert_not(referral_rules_release(&z), "nothing left to grant");
    cr_assert_eq(z.state, REFERRAL_STATE_CANCELLED);
}

/* ---- the tree ---- */

static referral_node_t node(const char *id, const char *r1, const char *r2, const char *r3,
                            const char *root) {
    referral_node_t n = {
        .member_id = id, .referrer_id = r1, .ancestor_2 = r2, .ancestor_3 = r3, .root_id = root};
    return n;
}

Test(referral_rules, attach_builds_the_closure) {
    /* Goal: the referee's ancestors are the referrer and the referrer's first two ancestors;
     * the root is the referrer's root. */
    referral_node_t e = node("E", "", "", "", "E");
    referral_attach_plan_t plan;
    referral_node_t d = node("D", "C", "B", "A", "A");
    cr_assert_eq(referral_rules_attach(&e, false, &d, &plan).code, STATUS_OK);
    cr_assert_eq(plan.n_ancestors, 3);
    cr_assert_str_eq(plan.ancestors[0], "D");
    cr_assert_str_eq(plan.ancestors[1], "C");
    cr_assert_str_eq(plan.ancestors[2], "B", "A is four levels up: beyond the closure");
    cr_assert_str_eq(plan.root_id, "A");
    referral_node_t top = node("A", "", "", "", "A");
    cr_assert_eq(referral_rules_attach(&e, false, &top, &plan).code, STATUS_OK);
    cr_assert_eq(plan.n_ancestors, 1);
    cr_assert_str_eq(plan.ancestors[1], "");
    cr_assert_str_eq(plan.root_id, "A");
    referral_node_t b = node("B", "A", "", "", "A");
    cr_assert_eq(referral_rules_attach(&e, false, &b, &plan).code, STATUS_OK);
    cr_assert_eq(plan.n_ancestors, 2);
}

Test(referral_rules, attach_refusals_in_order) {
    /* Goal: self, second referrer, cycle (at any depth, through the root) and a referee with a
     * downline are refused, each with its reason. */
    referral_attach_plan_t plan;
    referral_node_t a1 = node("A", "", "", "", "A");
    status_t st = referral_rules_attach(&a1, false, &a1, &plan);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "SELF_REFERRAL");

    referral_node_t e = node("E", "X", "", "", "X");
    referral_node_t other = node("O", "", "", "", "O");
    st = referral_rules_attach(&e, false, &other, &plan);
    cr_assert_eq(st.code, STATUS_ALREADY_EXISTS);
    cr_assert_str_eq(st.reason, "ALREADY_REFERRED");

    /* A -> B -> C -> D -> E -> F: attaching A below F closes a loop 5 levels deep. */
    referral_node_t f = node("F", "E", "D", "C", "A");
    st = referral_rules_attach(&a1, true, &f, &plan);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "REFERRAL_CYCLE");
    referral_node_t b = node("B", "A", "", "", "A");
    st = referral_rules_attach(&a1, true, &b, &plan);
    cr_assert_str_eq(st.reason, "REFERRAL_CYCLE");

    referral_node_t g = node("G", "", "", "", "G");
    st = referral_rules_attach(&a1, true, &g, &plan);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "REFEREE_HAS_DOWNLINE");
    cr_assert_eq(referral_rules_attach(&a1, false, &g, &plan).code, STATUS_OK);
}

Test(referral_rules, counter_changes_merge_by_member_and_level_and_sort_in_byte_order) {
    /* Goal: the counter changes of a batch (referral_stats_sum_t) keep one entry per (member,
     * level), with the figures summed, and sort by member id in byte order (COLLATE "C", where
     * "Zed" < "amy"), then level: the order every writer of downline_stats locks rows in. */
    referral_stats_sum_t s = {0};
    const referral_stats_delta_t changes[] = {
        {.member_id = "amy", .level = 2, .reward_points = 20},
        {.member_id = "Zed", .level = 1, .members = 1},
        {.member_id = "amy", .level = 1, .reward_points = 5},
        {.member_id = "amy", .level = 2, .reward_points = 7, .members = 1},
        {.member_id = "bob", .level = 3, .reward_points = 1},
    };
    for (size_t i = 0; i < 5; i++) {
        referral_rules_stats_add(&s, &a, &changes[i]);
    }
    for (int i = 0; i < 20; i++) { /* past the first capacity: the array grows */
        referral_stats_delta_t d = {.member_id = "bob", .level = 3, .reward_points = 1};
        referral_rules_stats_add(&s, &a, &d);
        d.member_id = arena_printf(&a, "m%02d", i);
        referral_rules_stats_add(&s, &a, &d);
    }
    cr_assert_eq(s.n, 4 + 20);
    referral_rules_stats_sort(&s);
    cr_assert_str_eq(s.deltas[0].member_id, "Zed");
    cr_assert_eq(s.deltas[0].members, 1);
    cr_assert_str_eq(s.deltas[1].member_id, "amy");
    cr_assert_eq(s.deltas[1].level, 1);
    cr_assert_eq(s.deltas[1].reward_points, 5);
    cr_assert_eq(s.deltas[2].level, 2);
    cr_assert_eq(s.deltas[2].reward_points, 27);
    cr_assert_eq(s.deltas[2].members, 1);
    cr_assert_str_eq(s.deltas[3].member_id, "bob");
    cr_assert_eq(s.deltas[3].reward_points, 21);
    for (size_t i = 1; i < s.n; i++) {
        int c = strcmp(s.deltas[i - 1].member_id, s.deltas[i].member_id);
        cr_assert(c < 0 || (c == 0 && s.deltas[i - 1].level < s.deltas[i].level));
    }
}
