/* campaign_rules.h -- pure rules of campaigns: validation of a merchant's configuration, the
 * period that makes a delivery unique, birthday matching, idempotency keys and message
 * rendering. No I/O; unit-tested in tests/unit/test_campaign_rules.c. */
#ifndef CAMPAIGN_RULES_H
#define CAMPAIGN_RULES_H

#include "arena.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

#define CAMPAIGN_TEMPLATE_MAX 1000
#define CAMPAIGN_SEGMENTS_MAX 8
#define CAMPAIGN_TAG_MAX 32 /* as member-svc tags */
#define CAMPAIGN_POINTS_MAX 1000000000LL
#define CAMPAIGN_PERIOD_MAX 64
#define CAMPAIGN_MESSAGE_MAX 4000

/** "BIRTHDAY", "WIN_BACK", ... ("UNSPECIFIED" for anything else). */
const char *campaign_kind_name(Loyalty__V1__CampaignKind kind);
/** "SMS", "EMAIL", "WHATSAPP". */
const char *campaign_channel_name(Loyalty__V1__CampaignChannel channel);

/** Checks a configuration sent by a merchant's admin: kind, channel, template and the
 *  parameters its kind needs, each INVALID_ARGUMENT naming the field ("campaign.<field>"). */
status_t campaign_rules_validate(const Loyalty__V1__Campaign *c);

/** Checks a message template: at most CAMPAIGN_TEMPLATE_MAX characters, only known
 *  placeholders, balanced braces. */
status_t campaign_rules_check_template(const char *field, const char *tmpl);

/** Values for the placeholders; NULL renders as "". */
typedef struct campaign_vars {
    const char *name;
    const char *points;
    const char *coupon_code;
    const char *coupon_expires;
    const char *expiry_date;
    const char *expiring_points;
    const char *tier;
} campaign_vars_t;

/** The message for one member, in arena memory, cut at CAMPAIGN_MESSAGE_MAX bytes on a UTF-8
 *  boundary. The template must have passed campaign_rules_check_template. */
char *campaign_render(arena_t *a, const char *tmpl, const campaign_vars_t *vars);

/** True when a member born on `birthday` ("YYYY-MM-DD") celebrates on `local_date` (ON_DAY) or
 *  in its month (IN_MONTH). A Feb 29 birthday is celebrated on Feb 28 in common years. */
bool campaign_birthday_matches(const char *birthday, const char *local_date,
                               Loyalty__V1__CampaignBirthdayTiming timing);

/** True for a tier change worth congratulating: to a higher rank, and not the base tier a new
 *  member starts in (a move up from no tier with no period value yet, by the rules). */
bool campaign_rules_is_promotion(const Loyalty__V1__MemberTierChange *ch);

/** The idempotency key of one reward: "campaign:<KIND>:<period>:<member_id>:<what>". */
char *campaign_reward_key(arena_t *a, Loyalty__V1__CampaignKind kind, const char *period,
                          const char *member_id, const char *what);

/** "YYYY-MM" of a "YYYY-MM-DD" date, into out[8]. */
void campaign_month_of(const char *date, char out[8]);

/** The date `days` days after "YYYY-MM-DD", into out[11]; false on a malformed date. */
bool campaign_date_add_days(const char *date, int64_t days, char out[11]);

#endif
