/* ctl_programme_sections.c -- the sections of a programme file, in the order they are exported
 * and applied (the merchant settings record first; what others name comes first: tiers before
 * plans and points campaigns, coupon templates before campaigns and the welcome pack), each with
 * the participant's message one item is, the RPCs that read and write it (relayed by Gateway.Relay,
 * or the gateway's own), the fields the services own (skipped) or fix at creation, and the fields
 * that name another section's items (ids in the services, names in the file). */
#include "ctl_programme.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"

#include <string.h>

static const char *const skip_settings[] = {"version", "updated_at", NULL};
/* The services' own time_zone is the merchant record's, pushed to them by the gateway: it is
 * in `settings`, never in their sections (two owners would overwrite each other). */
static const char *const skip_member[] = {"time_zone", "rfm_computed_at", "updated_at", NULL};
static const char *const skip_tier[] = {"id", "created_at", "updated_at", NULL};
static const char *const skip_points[] = {"time_zone", "version", "updated_at", NULL};
static const char *const skip_points_campaign[] = {"id", "created_at", NULL};
static const char *const fixed_points_campaign[] = {"multiplier_bps", "start_date", "end_date",
                                                    "tier_ids", NULL};
static const char *const skip_referral[] = {"version", "updated_at", NULL};
static const char *const skip_wallet[] = {"merchant_id", "time_zone", "updated_at", NULL};
static const char *const skip_top_up[] = {"id", "merchant_id", "created_at", "updated_at", NULL};
static const char *const fixed_top_up[] = {"pay_cents", "bonus_cents", "expiry_months", NULL};
static const char *const skip_promo[] = {"time_zone", NULL};
static const char *const skip_promotion[] = {"id",         "merchant_id", "type", "created_at",
                                             "updated_at", "version",     NULL};
static const char *const skip_coupon[] = {"id", "merchant_id", "issued_count", "created_at", NULL};
static const char *const fixed_coupon[] = {
    "kind",       "amount_off_cents", "percent_off_bps", "max_discount_cents", "min_spend_cents",
    "valid_days", "valid_from_at",    "valid_until_at",  "per_member_max",     "total_max",
    NULL};
static const char *const skip_campaign[] = {"merchant_id", "time_zone",   "updated_at",
                                            "last_run_at", "next_run_at", NULL};
static const char *const skip_gateway[] = {"updated_at", NULL};

const prog_section_t prog_sections[] = {
    {.key = "settings",
     .service = &loyalty__v1__gateway__descriptor,
     .on_gateway = true,
     .item = &loyalty__v1__gateway_merchant_settings__descriptor,
     .skip = skip_settings,
     .read_method = "GetMerchantSettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__gateway_get_merchant_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateMerchantSettings",
     .write_item_field = "settings"},
    {.key = "member",
     .service = &loyalty__v1__member_service__descriptor,
     .item = &loyalty__v1__member_settings__descriptor,
     .skip = skip_member,
     .read_method = "GetMemberSettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__member_get_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateMemberSettings",
     .write_item_field = "settings"},
    {.key = "tiers",
     .service = &loyalty__v1__member_service__descriptor,
     .item = &loyalty__v1__member_tier__descriptor,
     .is_list = true,
     .key_field = "name",
     .order_field = "rank",
     .skip = skip_tier,
     .read_method = "ListTiers",
     .read_field = "tiers",
     .read_req = &loyalty__v1__member_list_tiers_request__descriptor,
     .create_method = "CreateTier",
     .create_field = "tier",
     .create_answer = "tier",
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateTier",
     .write_id_field = "tier_id",
     .write_item_field = "tier",
     .id_field = "id"},
    {.key = "membership_plans",
     .service = &loyalty__v1__member_service__descriptor,
     .item = &loyalty__v1__member_plan__descriptor,
     .is_list = true,
     .key_field = "name",
     .skip = skip_tier,
     .read_method = "ListMembershipPlans",
     .read_field = "plans",
     .read_req = &loyalty__v1__member_list_plans_request__descriptor,
     .read_flag = "include_inactive",
     .create_method = "CreateMembershipPlan",
     .create_field = "plan",
     .create_answer = "plan",
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateMembershipPlan",
     .write_id_field = "plan_id",
     .write_item_field = "plan",
     .id_field = "id"},
    {.key = "tag_rules",
     .service = &loyalty__v1__member_service__descriptor,
     .item = &loyalty__v1__member_tag_rule__descriptor,
     .is_list = true,
     .whole_list = true,
     .read_method = "ListTagRules",
     .read_field = "rules",
     .read_req = &loyalty__v1__member_list_tag_rules_request__descriptor,
     .write = PROG_WRITE_REPLACE,
     .write_method = "SetTagRules",
     .write_item_field = "rules"},
    {.key = "points",
     .service = &loyalty__v1__points_service__descriptor,
     .item = &loyalty__v1__points_settings__descriptor,
     .skip = skip_points,
     .read_method = "GetSettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__points_get_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateSettings",
     .write_item_field = "settings"},
    {.key = "points_campaigns",
     .service = &loyalty__v1__points_service__descriptor,
     .item = &loyalty__v1__points_campaign__descriptor,
     .is_list = true,
     .key_field = "name",
     .skip = skip_points_campaign,
     .fixed = fixed_points_campaign,
     .read_method = "ListCampaigns",
     .read_field = "campaigns",
     .read_req = &loyalty__v1__points_list_campaigns_request__descriptor,
     .read_flag = "include_inactive",
     .create_method = "CreateCampaign",
     .create_field = "campaign",
     .create_answer = "campaign",
     .write = PROG_WRITE_END,
     .write_method = "EndCampaign",
     .write_id_field = "campaign_id",
     .id_field = "id"},
    {.key = "referral",
     .service = &loyalty__v1__referral_service__descriptor,
     .item = &loyalty__v1__referral_program__descriptor,
     .skip = skip_referral,
     .read_method = "GetReferralProgram",
     .read_field = "program",
     .read_req = &loyalty__v1__referral_get_program_request__descriptor,
     .write = PROG_WRITE_REPLACE,
     .write_method = "SetReferralProgram",
     .write_item_field = "program"},
    {.key = "wallet",
     .service = &loyalty__v1__wallet_service__descriptor,
     .item = &loyalty__v1__wallet_settings__descriptor,
     .skip = skip_wallet,
     .read_method = "GetSettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__wallet_get_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateSettings",
     .write_item_field = "settings"},
    {.key = "top_up_plans",
     .service = &loyalty__v1__wallet_service__descriptor,
     .item = &loyalty__v1__wallet_top_up_plan__descriptor,
     .is_list = true,
     .key_field = "name",
     .skip = skip_top_up,
     .fixed = fixed_top_up,
     .read_method = "ListTopUpPlans",
     .read_field = "plans",
     .read_req = &loyalty__v1__wallet_list_top_up_plans_request__descriptor,
     .create_method = "CreateTopUpPlan",
     .create_answer = "plan",
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateTopUpPlan",
     .write_id_field = "plan_id",
     .write_item_field = "plan",
     .id_field = "id"},
    {.key = "promo",
     .service = &loyalty__v1__promo_service__descriptor,
     .item = &loyalty__v1__promo_settings__descriptor,
     .skip = skip_promo,
     .read_method = "GetPromoSettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__promo_get_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdatePromoSettings",
     .write_item_field = "settings"},
    {.key = "promotions",
     .service = &loyalty__v1__promo_service__descriptor,
     .item = &loyalty__v1__promotion__descriptor,
     .is_list = true,
     .key_field = "name",
     .skip = skip_promotion,
     .codes = true,
     .read_method = "ListPromotions",
     .read_field = "promotions",
     .read_req = &loyalty__v1__promo_list_promotions_request__descriptor,
     .create_method = "CreatePromotion",
     .create_field = "promotion",
     .create_answer = "promotion",
     .write = PROG_WRITE_MASK,
     .write_method = "UpdatePromotion",
     .write_item_field = "promotion",
     .id_field = "id",
     .toggle_field = "status",
     .toggle_off_value = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED,
     .toggle_on_method = "ResumePromotion",
     .toggle_off_method = "PausePromotion",
     .toggle_id_field = "promotion_id"},
    {.key = "coupon_templates",
     .service = &loyalty__v1__promo_service__descriptor,
     .item = &loyalty__v1__promo_coupon_template__descriptor,
     .is_list = true,
     .key_field = "name",
     .skip = skip_coupon,
     .fixed = fixed_coupon,
     .read_method = "ListCouponTemplates",
     .read_field = "templates",
     .read_req = &loyalty__v1__promo_list_coupon_templates_request__descriptor,
     .create_method = "CreateCouponTemplate",
     .create_field = "coupon_template",
     .create_answer = "coupon_template",
     .write = PROG_WRITE_ACTIVE,
     .write_method = "SetCouponTemplateActive",
     .write_id_field = "template_id",
     .id_field = "id"},
    {.key = "campaigns",
     .service = &loyalty__v1__campaign_service__descriptor,
     .on_gateway = true,
     .item = &loyalty__v1__campaign__descriptor,
     .is_list = true,
     .key_field = "kind",
     .skip = skip_campaign,
     .read_method = "ListCampaigns",
     .read_field = "campaigns",
     .read_req = &loyalty__v1__campaign_list_request__descriptor,
     .write = PROG_WRITE_REPLACE,
     .write_method = "SetCampaign",
     .write_item_field = "campaign"},
    {.key = "gateway",
     .service = &loyalty__v1__gateway__descriptor,
     .on_gateway = true,
     .item = &loyalty__v1__gateway_settings__descriptor,
     .skip = skip_gateway,
     .read_method = "GetGatewaySettings",
     .read_field = "settings",
     .read_req = &loyalty__v1__gateway_get_settings_request__descriptor,
     .write = PROG_WRITE_MASK,
     .write_method = "UpdateGatewaySettings",
     .write_item_field = "settings"},
};

const int prog_n_sections = (int)(sizeof prog_sections / sizeof prog_sections[0]);

const prog_ref_t prog_refs[] = {
    {&loyalty__v1__member_plan__descriptor, "tier_id", "tier", "tiers"},
    {&loyalty__v1__points_campaign__descriptor, "tier_ids", "tiers", "tiers"},
    {&loyalty__v1__promo_conditions__descriptor, "tier_ids", "tiers", "tiers"},
    {&loyalty__v1__promo_tier_price_entry__descriptor, "tier_id", "tier", "tiers"},
    {&loyalty__v1__campaign_reward__descriptor, "coupon_template_id", "coupon_template",
     "coupon_templates"},
    {&loyalty__v1__gateway_settings__descriptor, "welcome_coupon_template_ids",
     "welcome_coupon_templates", "coupon_templates"},
};

const int prog_n_refs = (int)(sizeof prog_refs / sizeof prog_refs[0]);

int prog_section_index(const char *key) {
    for (int i = 0; i < prog_n_sections; i++) {
        if (strcmp(prog_sections[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}
