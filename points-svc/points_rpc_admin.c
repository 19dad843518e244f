/* points_rpc_admin.c -- PointsService rule handlers: settings, campaigns and QuoteEarn, plus the
 * checks and the order-earn computation shared with the member handlers. */
#include "points_handlers.h"

#include "cursor.h"
#include "fieldmask.h"
#include "ids.h"
#include "pb.h"
#include "points_cache.h"
#include "points_clock.h"
#include "points_rules.h"
#include "points_store.h"
#include "validate.h"

#include <string.h>

/* Orders may be stamped a little ahead of our clock (other machines); not more. */
#define POINTS_CLOCK_SKEW_S 300

status_t points_check_member(const char *field, const char *value) {
    return validate_token(field, value, POINTS_MEMBER_ID_MAX);
}

status_t points_check_reference(const char *field, const char *value, bool required) {
    if (!required && value[0] == '\0') {
        return status_ok();
    }
    return validate_token(field, value, POINTS_REFERENCE_MAX);
}

status_t points_check_event(const char *field, Loyalty__V1__PointsEventKind kind,
                            bool allow_check_in) {
    if ((int)kind < 1 || (int)kind > POINTS_EVENT_KIND_MAX) {
        return status_invalid_field(field, "unknown event kind %d", (int)kind);
    }
    if (!allow_check_in && kind == LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN) {
        return status_invalid_field(field, "check-ins are credited by CheckIn");
    }
    return status_ok();
}

status_t points_page(rpc_ctx_t *ctx, const Loyalty__V1__PageRequest *page, int32_t *size,
                     char **key, char **id) {
    status_t st =
        cursor_page_size("page.page_size", page ? page->page_size : 0, PAGE_SIZE_MAX, size);
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *cursor = page ? page->cursor : "";
    if (strlen(cursor) > CURSOR_MAX) {
        return status_invalid_field("page.cursor", "longer than %d characters", CURSOR_MAX);
    }
    return cursor_decode(ctx->arena, "page.cursor", cursor, key, id);
}

status_t points_compute_order_earn(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                                   const char *field, const Loyalty__V1__PointsOrderAmounts *o,
                                   Loyalty__V1__PointsEarnBreakdown *out) {
    status_t st = points_rules_check_order(field, o);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t at = o->ordered_at ? o->ordered_at : ctx->now_s;
    if (at > ctx->now_s + POINTS_CLOCK_SKEW_S) {
        char name[64];
        snprintf(name, sizeof name, "%s.ordered_at", field);
        return status_invalid_field(name, "in the future");
    }
    points_local_clock_t clock;
    st = points_clock_get(ctx->db, s->time_zone, at, 0, &clock);
    if (!status_is_ok(&st)) {
        return st;
    }
    points_campaign_window_t *c = NULL;
    size_t n = 0;
    st = points_store_campaigns_on(ctx->db, ctx->arena, ctx->merchant_id, clock.day, &c, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    int pick = points_rules_pick_campaign(c, n, o->tier_id, clock.day);
    return points_rules_earn_order(s, o, pick >= 0 ? c[pick].multiplier_bps : 0,
                                   pick >= 0 ? c[pick].id : "", out);
}

/* Every ledger operation reads the settings: from the cache (near cache, then Redis), filled
 * from PostgreSQL on a miss; UpdateSettings invalidates the entry in its code path. */
status_t points_load_settings(rpc_ctx_t *ctx, Loyalty__V1__PointsSettings **s) {
    if (points_cache_get_settings(ctx, s)) {
        return status_ok();
    }
    status_t st = points_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, s);
    if (status_is_ok(&st)) {
        points_cache_put_settings(ctx, *s);
    }
    return st;
}

status_t points_rpc_get_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    Loyalty__V1__PointsGetSettingsResponse *resp = (void *)resp_msg;
    return points_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, &resp->settings);
}

/* Every field but the output-only version and updated_at. */
static const char *const settings_updatable[] = {"time_zone",
                                                 "earn_unit_cents",
                                                 "earn_points_per_unit",
                                                 "event_rules",
                                                 "expiry_policy",
                                                 "expiry_days",
                                                 "expiry_months",
                                                 "pending_days",
                                                 "redeem_points",
                                                 "redeem_value_cents",
                                                 "redeem_min_points",
                                                 "redeem_max_order_share_bps",
                                                 "growth_per_point_bps",
                                                 "growth_per_unit",
                                                 NULL};

status_t points_rpc_update_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsUpdateSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsUpdateSettingsResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    status_t st = fieldmask_parse(req->update_mask, &loyalty__v1__points_settings__descriptor,
                                  settings_updatable, &mask);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    /* The current settings, under the lock every update takes, with the named fields changed. */
    Loyalty__V1__PointsSettings *s = NULL;
    st = db_lock_named(ctx->db, "points.settings", ctx->merchant_id);
    if (status_is_ok(&st)) {
        st = points_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    fieldmask_apply(&mask, &s->base, &req->settings->base);
    st = points_rules_check_settings(s);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool exists = false;
    st = points_store_time_zone_exists(ctx->db, s->time_zone, &exists);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!exists) {
        return status_invalid_field("settings.time_zone", "unknown time zone \"%s\"", s->time_zone);
    }
    bool has_expected =
        req->_expected_version_case ==
        LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    st = points_store_put_settings(ctx->db, ctx->arena, ctx->merchant_id, s, has_expected,
                                   req->expected_version, &resp->settings);
    if (status_is_ok(&st)) {
        points_cache_invalidate_settings(ctx);
    }
    return st;
}

status_t points_rpc_create_campaign(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsCreateCampaignRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsCreateCampaignResponse *resp = (void *)resp_msg;
    int64_t start = 0, end = 0;
    status_t st = points_rules_check_campaign(req->campaign, &start, &end);
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("cmp", id);
    return points_store_insert_campaign(ctx->db, ctx->arena, ctx->merchant_id, id, req->campaign,
                                        &resp->campaign);
}

status_t points_rpc_list_campaigns(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsListCampaignsRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsListCampaignsResponse *resp = (void *)resp_msg;
    int32_t size = 0;
    char *key = NULL, *after = NULL;
    status_t st = points_page(ctx, req->page, &size, &key, &after);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = points_store_list_campaigns(ctx->db, ctx->arena, ctx->merchant_id, after, size + 1,
                                     req->include_inactive, &resp->campaigns, &resp->n_campaigns);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (resp->n_campaigns > (size_t)size) {
        resp->n_campaigns = (size_t)size;
        resp->page_info->next_cursor = cursor_encode(ctx->arena, "", resp->campaigns[size - 1]->id);
    }
    return status_ok();
}

status_t points_rpc_end_campaign(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsEndCampaignRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsEndCampaignResponse *resp = (void *)resp_msg;
    status_t st = validate_token("campaign_id", req->campaign_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    return points_store_end_campaign(ctx->db, ctx->arena, ctx->merchant_id, req->campaign_id,
                                     &resp->campaign);
}

status_t points_rpc_quote_earn(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsQuoteEarnRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsQuoteEarnResponse *resp = (void *)resp_msg;
    Loyalty__V1__PointsSettings *s = NULL;
    status_t st;
    resp->breakdown = pb_new(ctx->arena, &loyalty__v1__points_earn_breakdown__descriptor);
    switch (req->what_case) {
    case LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__WHAT_ORDER:
        st = points_load_settings(ctx, &s);
        if (!status_is_ok(&st)) {
            return st;
        }
        return points_compute_order_earn(ctx, s, "order", req->order, resp->breakdown);
    case LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__WHAT_EVENT:
        st = points_check_event("event", req->event, true);
        if (!status_is_ok(&st)) {
            return st;
        }
        st = points_load_settings(ctx, &s);
        if (!status_is_ok(&st)) {
            return st;
        }
        points_rules_earn_event(s, req->event, resp->breakdown);
        return status_ok();
    default:
        return status_invalid_field("what", "one of order or event is required");
    }
}
