/* campaign_rules.c -- campaign configuration, periods, birthdays, keys and templates. */
#include "campaign_rules.h"

#include "validate.h"

#include <stdio.h>
#include <string.h>

static const char *const placeholders[] = {
    "name", "points", "coupon_code", "coupon_expires", "expiry_date", "expiring_points", "tier"};
#define PLACEHOLDER_COUNT (sizeof placeholders / sizeof placeholders[0])

const char *campaign_kind_name(Loyalty__V1__CampaignKind kind) {
    switch (kind) {
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY:
        return "BIRTHDAY";
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES:
        return "WELCOME_SERIES";
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK:
        return "WIN_BACK";
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER:
        return "POINTS_EXPIRY_REMINDER";
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION:
        return "TIER_PROMOTION";
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE:
        return "RE_ENGAGE";
    default:
        return "UNSPECIFIED";
    }
}

const char *campaign_channel_name(Loyalty__V1__CampaignChannel channel) {
    switch (channel) {
    case LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS:
        return "SMS";
    case LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_EMAIL:
        return "EMAIL";
    case LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_WHATSAPP:
        return "WHATSAPP";
    default:
        return "UNSPECIFIED";
    }
}

/* Length of the placeholder name at p (just after "{{"), or 0 when it is not a known one
 * followed by "}}". */
static size_t placeholder_at(const char *p, int *which) {
    for (size_t i = 0; i < PLACEHOLDER_COUNT; i++) {
        size_t n = strlen(placeholders[i]);
        if (strncmp(p, placeholders[i], n) == 0 && p[n] == '}' && p[n + 1] == '}') {
            *which = (int)i;
            return n;
        }
    }
    return 0;
}

status_t campaign_rules_check_template(const char *field, const char *tmpl) {
    status_t st = validate_text(field, tmpl, 1, CAMPAIGN_TEMPLATE_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '{' && p[1] == '{') {
            int which = 0;
            size_t n = placeholder_at(p + 2, &which);
            if (n == 0) {
                return status_invalid_field(field, "unknown placeholder near '%.20s'", p);
            }
            p += 2 + n + 1;
        } else if (p[0] == '}' && p[1] == '}') {
            return status_invalid_field(field, "'}}' without '{{'");
        }
    }
    return status_ok();
}

static status_t check_segments(const Loyalty__V1__Campaign *c, bool required) {
    if (c->n_segments > CAMPAIGN_SEGMENTS_MAX) {
        return status_invalid_field("campaign.segments", "at most %d", CAMPAIGN_SEGMENTS_MAX);
    }
    if (required && c->n_segments == 0) {
        return status_invalid_field("campaign.segments", "name at least one segment");
    }
    for (size_t i = 0; i < c->n_segments; i++) {
        int v = (int)c->segments[i];
        if (v == LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_UNSPECIFIED ||
            protobuf_c_enum_descriptor_get_value(&loyalty__v1__member_segment__descriptor, v) ==
                NULL) {
            return status_invalid_field("campaign.segments", "unknown segment %d", v);
        }
    }
    return status_ok();
}

static status_t check_kind_params(const Loyalty__V1__Campaign *c) {
    switch (c->kind) {
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY:
        if (c->birthday_timing !=
                LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY &&
            c->birthday_timing !=
                LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_IN_MONTH) {
            return status_invalid_field("campaign.birthday_timing", "ON_DAY or IN_MONTH");
        }
        return status_ok();
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES:
        if (c->welcome_reminder_days < 1 || c->welcome_reminder_days > 365) {
            return status_invalid_field("campaign.welcome_reminder_days", "1..365");
        }
        return status_ok();
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK:
        if (c->inactive_days < 0 || c->inactive_days > 3650) {
            return status_invalid_field("campaign.inactive_days", "0..3650");
        }
        if (c->inactive_days == 0 && c->n_segments == 0) {
            return status_invalid_field("campaign.inactive_days",
                                        "set inactive_days, segments, or both");
        }
        return check_segments(c, false);
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER:
        if (c->expiring_within_days < 1 || c->expiring_within_days > 365) {
            return status_invalid_field("campaign.expiring_within_days", "1..365");
        }
        return status_ok();
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION:
        return status_ok();
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE:
        return check_segments(c, true);
    default:
        return status_invalid_field("campaign.kind", "unknown kind %d", (int)c->kind);
    }
}

/* The shape of an IANA time zone name ("Asia/Singapore", "Etc/GMT+8"); whether PostgreSQL
 * knows it is checked when the campaign is stored. */
static status_t check_time_zone_shape(const char *tz) {
    size_t n = strlen(tz);
    if (n > 64) {
        return status_invalid_field("campaign.time_zone", "at most 64 characters");
    }
    for (size_t i = 0; i < n; i++) {
        char ch = tz[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '/' || ch == '+' || ch == '-';
        if (!ok) {
            return status_invalid_field("campaign.time_zone", "not an IANA time zone name");
        }
    }
    return status_ok();
}

status_t campaign_rules_validate(const Loyalty__V1__Campaign *c) {
    if (c == NULL) {
        return status_invalid_field("campaign", "required");
    }
    status_t st = check_kind_params(c);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (c->channel < LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS ||
        c->channel > LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_WHATSAPP) {
        return status_invalid_field("campaign.channel", "SMS, EMAIL or WHATSAPP");
    }
    st = campaign_rules_check_template("campaign.message_template", c->message_template);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (c->tag[0] != '\0') {
        st = validate_token("campaign.tag", c->tag, CAMPAIGN_TAG_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (c->kind == LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER ||
            c->kind == LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION) {
            return status_invalid_field(
                "campaign.tag", "only for BIRTHDAY, WELCOME_SERIES, WIN_BACK and RE_ENGAGE");
        }
    }
    if (c->time_zone[0] != '\0') {
        st = check_time_zone_shape(c->time_zone);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    const Loyalty__V1__CampaignReward *r = c->reward;
    if (r != NULL) {
        if (r->points < 0 || r->points > CAMPAIGN_POINTS_MAX) {
            return status_invalid_field("campaign.reward.points", "0..%lld",
                                        (long long)CAMPAIGN_POINTS_MAX);
        }
        if (r->points_valid_days < 0 || r->points_valid_days > 3650) {
            return status_invalid_field("campaign.reward.points_valid_days", "0..3650");
        }
        if (r->tier_birthday_points &&
            c->kind != LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY) {
            return status_invalid_field("campaign.reward.tier_birthday_points",
                                        "only for BIRTHDAY campaigns");
        }
        if (r->coupon_template_id[0] != '\0') {
            st = validate_token("campaign.reward.coupon_template_id", r->coupon_template_id, 64);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
    }
    return status_ok();
}

char *campaign_render(arena_t *a, const char *tmpl, const campaign_vars_t *vars) {
    const char *values[PLACEHOLDER_COUNT] = {
        vars->name,        vars->points,          vars->coupon_code, vars->coupon_expires,
        vars->expiry_date, vars->expiring_points, vars->tier};
    size_t cap = CAMPAIGN_MESSAGE_MAX + 1;
    char *out = arena_alloc(a, cap);
    size_t o = 0;
    bool truncated = false;
    for (const char *p = tmpl; *p;) {
        int which = 0;
        size_t n = p[0] == '{' && p[1] == '{' ? placeholder_at(p + 2, &which) : 0;
        const char *piece = n ? (values[which] ? values[which] : "") : p;
        size_t len = n ? strlen(piece) : 1;
        if (o + len > cap - 1) {
            len = cap - 1 - o;
            truncated = true;
        }
        memcpy(out + o, piece, len);
        o += len;
        if (truncated) {
            break;
        }
        p += n ? 2 + n + 2 : 1;
    }
    /* A cut message never ends inside a UTF-8 sequence (values are valid UTF-8). */
    while (truncated && o > 0 && !validate_utf8(out, o)) {
        o--;
    }
    out[o] = '\0';
    return out;
}

static bool parse_date(const char *s, int *y, int *m, int *d) {
    status_t st = validate_date("date", s, y, m, d);
    return status_is_ok(&st);
}

bool campaign_birthday_matches(const char *birthday, const char *local_date,
                               Loyalty__V1__CampaignBirthdayTiming timing) {
    int by, bm, bd, ty, tm, td;
    if (!parse_date(birthday, &by, &bm, &bd) || !parse_date(local_date, &ty, &tm, &td)) {
        return false;
    }
    if (bm != tm) {
        return false;
    }
    if (timing == LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_IN_MONTH) {
        return true;
    }
    if (bm == 2 && bd == 29 && date_days_in_month(ty, 2) == 28) {
        bd = 28;
    }
    return bd == td;
}

bool campaign_rules_is_promotion(const Loyalty__V1__MemberTierChange *ch) {
    int32_t from = ch->from_tier ? ch->from_tier->rank : 0;
    int32_t to = ch->to_tier ? ch->to_tier->rank : 0;
    if (to <= from) {
        return false; /* renewals, downgrades, removals */
    }
    bool by_rules =
        ch->reason == LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_UPGRADE;
    return from > 0 || !by_rules || ch->period_value > 0;
}

char *campaign_reward_key(arena_t *a, Loyalty__V1__CampaignKind kind, const char *period,
                          const char *member_id, const char *what) {
    return arena_printf(a, "campaign:%s:%s:%s:%s", campaign_kind_name(kind), period, member_id,
                        what);
}

void campaign_month_of(const char *date, char out[8]) {
    snprintf(out, 8, "%.7s", date);
}

bool campaign_date_add_days(const char *date, int64_t days, char out[11]) {
    int y, m, d;
    if (!parse_date(date, &y, &m, &d)) {
        return false;
    }
    date_civil_from_days(date_days_from_civil(y, m, d) + days, &y, &m, &d);
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
    return true;
}
