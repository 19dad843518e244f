/* member_rpc_tiers.c -- handlers for settings, tiers, plans, a member's tier (the cached
 * checkout read), statistics, tier history, INTERNAL cards and PAID cards. */
#include "member_cache.h"
#include "member_handlers.h"
#include "member_view.h"

#include "cursor.h"
#include "fieldmask.h"
#include "ids.h"
#include "pb.h"
#include "validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void member_rpc_invalidate_touched(rpc_ctx_t *ctx, const member_scope_t *s) {
    for (int i = 0; i < s->touched_count; i++) {
        rpc_ctx_invalidate(ctx,
                           member_cache_tier_status_key(ctx->arena, s->merchant_id, s->touched[i]));
    }
}

status_t member_rpc_init_state(rpc_ctx_t *ctx, const char *member_id) {
    member_scope_t s;
    status_t st = member_settings_ensure(ctx->db, ctx->merchant_id);
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    member_row_t row;
    if (status_is_ok(&st)) {
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, member_id, true, &row);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    s.ctx = NULL; /* the tier a member joins in is no tier.changed: member.registered says it */
    member_tier_state_t t;
    member_tier_event_t ev;
    bool changed = member_tier_join(&s.tiers.ladder, s.today, &t, &ev);
    member_row_set_tier(&s, &row, &t);
    member_change_t ch = {.events = &ev, .event_count = changed ? 1 : 0};
    st = member_ops_save(ctx->db, ctx->arena, &s, NULL, &row, &ch);
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    return st; /* a new member has no cache entries to drop */
}

/* ---- settings ---- */

static Loyalty__V1__MemberSettings *settings_view(arena_t *a, const member_settings_t *s) {
    Loyalty__V1__MemberSettings *out = pb_new(a, &loyalty__v1__member_settings__descriptor);
    out->time_zone = arena_strdup(a, s->time_zone);
    out->tier_basis = s->basis;
    out->lifecycle = pb_new(a, &loyalty__v1__member_lifecycle_rules__descriptor);
    out->lifecycle->new_days = s->lifecycle.new_days;
    out->lifecycle->active_months_min = s->lifecycle.active_months_min;
    out->lifecycle->sleeping_after_days = s->lifecycle.sleeping_after_days;
    out->lifecycle->lost_after_days = s->lifecycle.lost_after_days;
    out->lifecycle->sleeping_orders_max = s->lifecycle.sleeping_orders_max;
    out->rfm_computed_at = s->rfm_computed_at;
    out->updated_at = s->updated_at;
    return out;
}

status_t member_rpc_get_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__MemberGetSettingsResponse *resp = (void *)resp_msg;
    member_settings_t s;
    status_t st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &s, NULL, NULL);
    if (status_is_ok(&st)) {
        resp->settings = settings_view(ctx->arena, &s);
    }
    return st;
}

enum { SETTING_TIME_ZONE = 1, SETTING_TIER_BASIS = 2, SETTING_LIFECYCLE = 4 };

static const char *const settings_updatable[] = {"time_zone", "tier_basis", "lifecycle", NULL};

static status_t settings_mask(const Google__Protobuf__FieldMask *update_mask, unsigned *mask) {
    *mask = 0;
    fieldmask_t m;
    status_t st = fieldmask_parse(update_mask, &loyalty__v1__member_settings__descriptor,
                                  settings_updatable, &m);
    if (!status_is_ok(&st)) {
        return st;
    }
    *mask = (fieldmask_has(&m, "time_zone") ? SETTING_TIME_ZONE : 0) |
            (fieldmask_has(&m, "tier_basis") ? SETTING_TIER_BASIS : 0) |
            (fieldmask_has(&m, "lifecycle") ? SETTING_LIFECYCLE : 0);
    return status_ok();
}

/* The shape of an IANA name ("Asia/Singapore", "Etc/GMT+8", "UTC"); PostgreSQL decides the rest. */
static status_t time_zone_check(const char *tz) {
    size_t n = strlen(tz);
    if (n == 0 || n > MEMBER_TIME_ZONE_MAX) {
        return status_invalid_field("settings.time_zone", "1..%d characters", MEMBER_TIME_ZONE_MAX);
    }
    for (const char *p = tz; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL) {
            return status_invalid_field("settings.time_zone", "not an IANA time zone");
        }
    }
    return status_ok();
}

/* Applies the masked fields of `in` to `s`; *resegment when the lifecycle rules changed. */
static status_t settings_apply(rpc_ctx_t *ctx, unsigned mask, const Loyalty__V1__MemberSettings *in,
                               member_settings_t *s, bool *resegment) {
    status_t st = status_ok();
    if (mask & SETTING_TIME_ZONE) {
        st = time_zone_check(in->time_zone);
        bool known = false;
        if (status_is_ok(&st)) {
            st = member_time_zone_known(ctx->db, in->time_zone, &known);
        }
        if (status_is_ok(&st) && !known) {
            st = status_invalid_field("settings.time_zone", "not an IANA time zone");
        }
        if (!status_is_ok(&st)) {
            return st;
        }
        snprintf(s->time_zone, sizeof s->time_zone, "%s", in->time_zone);
    }
    if (mask & SETTING_TIER_BASIS) {
        if (in->tier_basis != MEMBER_BASIS(GROWTH) && in->tier_basis != MEMBER_BASIS(SPEND)) {
            return status_invalid_field("settings.tier_basis", "GROWTH or SPEND");
        }
        if (in->tier_basis != s->basis) {
            member_tierset_t ts;
            st = member_tiers_load(ctx->db, ctx->arena, ctx->merchant_id, false, &ts);
            if (status_is_ok(&st) && ts.n > 0) {
                st = status_make(STATUS_FAILED_PRECONDITION, REASON_TIERS_EXIST,
                                 "the basis cannot change once tiers are configured");
            }
            if (!status_is_ok(&st)) {
                return st;
            }
        }
        s->basis = in->tier_basis;
    }
    if (mask & SETTING_LIFECYCLE) {
        member_lifecycle_t l;
        st = member_lifecycle_check("settings.lifecycle", in->lifecycle, &l);
        if (!status_is_ok(&st)) {
            return st;
        }
        *resegment = memcmp(&l, &s->lifecycle, sizeof l) != 0;
        s->lifecycle = l;
    }
    return st;
}

status_t member_rpc_update_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberUpdateSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberUpdateSettingsResponse *resp = (void *)resp_msg;
    unsigned mask = 0;
    status_t st = settings_mask(req->update_mask, &mask);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    st = member_settings_lock(ctx->db, ctx->merchant_id);
    member_settings_t s;
    if (status_is_ok(&st)) {
        st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &s, NULL, NULL);
    }
    bool resegment = false;
    if (status_is_ok(&st)) {
        st = settings_apply(ctx, mask, req->settings, &s, &resegment);
    }
    if (status_is_ok(&st)) {
        st = member_settings_save(ctx->db, ctx->merchant_id, &s, resegment);
    }
    if (status_is_ok(&st)) {
        st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &s, NULL, NULL);
    }
    if (status_is_ok(&st)) {
        member_cache_invalidate_tiers(ctx); /* holds the basis */
        resp->settings = settings_view(ctx->arena, &s);
    }
    return st;
}

/* ---- tiers ---- */

static void tier_def_from(member_tier_def_t *d, const Loyalty__V1__MemberTier *t) {
    d->name = t->name;
    d->rank = t->rank;
    d->upgrade_threshold = t->upgrade_threshold;
    d->retain_threshold = t->retain_threshold;
    d->period_months = t->period_months;
    d->express_spend_cents = t->express_spend_cents;
    d->discount_bps = t->discount_bps;
    d->earn_multiplier_bps = t->earn_multiplier_bps;
    d->birthday_bonus_points = t->birthday_bonus_points;
}

/* Reads the tier the merchant just wrote back (for its times). */
static status_t tier_reply(rpc_ctx_t *ctx, const char *id, Loyalty__V1__MemberTier **out) {
    member_tierset_t ts;
    status_t st = member_tiers_load(ctx->db, ctx->arena, ctx->merchant_id, false, &ts);
    if (!status_is_ok(&st)) {
        return st;
    }
    int level = member_tierset_level(&ts, id);
    if (level == 0) {
        return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "tier vanished");
    }
    *out = member_view_tier(ctx->arena, &ts.defs[level - 1]);
    member_cache_invalidate_tiers(ctx);
    return status_ok();
}

status_t member_rpc_create_tier(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberCreateTierRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberCreateTierResponse *resp = (void *)resp_msg;
    if (req->tier == NULL) {
        return status_invalid_field("tier", "required");
    }
    status_t st = member_tier_check_fields("tier", req->tier);
    if (status_is_ok(&st)) {
        st = member_settings_lock(ctx->db, ctx->merchant_id);
    }
    member_tierset_t ts;
    if (status_is_ok(&st)) {
        st = member_tiers_load(ctx->db, ctx->arena, ctx->merchant_id, true, &ts);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (ts.n == MEMBER_TIERS_MAX) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TIER_LIMIT_REACHED,
                           "the merchant already has %d tiers", MEMBER_TIERS_MAX);
    }
    char id[ID_MAX];
    id_generate("tier", id);
    member_tier_def_t *d = &ts.defs[ts.n++];
    *d = (member_tier_def_t){.id = id};
    tier_def_from(d, req->tier);
    member_tierset_index(&ts);
    st = member_ladder_check(&ts.ladder);
    if (status_is_ok(&st)) {
        st = member_tier_insert(ctx->db, ctx->merchant_id,
                                &ts.defs[member_tierset_level(&ts, id) - 1]);
    }
    if (status_is_ok(&st)) {
        st = tier_reply(ctx, id, &resp->tier);
    }
    return st;
}

/* Every field of a tier but its id and times. */
static const char *const tier_updatable[] = {"name",
                                             "rank",
                                             "upgrade_threshold",
                                             "retain_threshold",
                                             "period_months",
                                             "express_spend_cents",
                                             "discount_bps",
                                             "earn_multiplier_bps",
                                             "birthday_bonus_points",
                                             NULL};

status_t member_rpc_update_tier(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberUpdateTierRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberUpdateTierResponse *resp = (void *)resp_msg;
    status_t st = validate_token("tier_id", req->tier_id, ID_MAX);
    fieldmask_t mask;
    if (status_is_ok(&st)) {
        st = fieldmask_parse(req->update_mask, &loyalty__v1__member_tier__descriptor,
                             tier_updatable, &mask);
    }
    if (status_is_ok(&st) && req->tier == NULL) {
        st = status_invalid_field("tier", "required");
    }
    if (status_is_ok(&st)) {
        st = member_settings_lock(ctx->db, ctx->merchant_id);
    }
    member_tierset_t ts;
    if (status_is_ok(&st)) {
        st = member_tiers_load(ctx->db, ctx->arena, ctx->merchant_id, true, &ts);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int level = member_tierset_level(&ts, req->tier_id);
    if (level == 0) {
        return status_make(STATUS_NOT_FOUND, REASON_TIER_NOT_FOUND, "tier not found");
    }
    /* The tier as it is, with the named fields changed, checked whole. */
    Loyalty__V1__MemberTier *tier = member_view_tier(ctx->arena, &ts.defs[level - 1]);
    fieldmask_apply(&mask, &tier->base, &req->tier->base);
    st = member_tier_check_fields("tier", tier);
    if (!status_is_ok(&st)) {
        return st;
    }
    tier_def_from(&ts.defs[level - 1], tier);
    member_tierset_index(&ts);
    st = member_ladder_check(&ts.ladder);
    if (status_is_ok(&st)) {
        level = member_tierset_level(&ts, req->tier_id);
        st = member_tier_update(ctx->db, ctx->merchant_id, &ts.defs[level - 1]);
    }
    if (st.code == STATUS_ALREADY_EXISTS) { /* (merchant, rank): the ladder check saw it first */
        st = status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER, "two tiers have rank %d",
                         tier->rank);
    }
    if (status_is_ok(&st)) {
        st = tier_reply(ctx, req->tier_id, &resp->tier);
    }
    return st;
}

static Loyalty__V1__MemberListTiersResponse *tiers_message(arena_t *a, const member_tierset_t *ts,
                                                           Loyalty__V1__MemberTierBasis basis) {
    Loyalty__V1__MemberListTiersResponse *r =
        pb_new(a, &loyalty__v1__member_list_tiers_response__descriptor);
    r->tiers = arena_alloc(a, (size_t)(ts->n ? ts->n : 1) * sizeof *r->tiers);
    for (int i = 0; i < ts->n; i++) {
        r->tiers[i] = member_view_tier(a, &ts->defs[i]);
    }
    r->n_tiers = (size_t)ts->n;
    r->tier_basis = basis;
    return r;
}

status_t member_rpc_tiers(rpc_ctx_t *ctx, member_tierset_t *ts,
                          Loyalty__V1__MemberTierBasis *basis) {
    Loyalty__V1__MemberListTiersResponse *cached = NULL;
    if (member_cache_get_tiers(ctx, &cached)) {
        member_view_tierset(cached, ts);
        *basis = cached->tier_basis;
        return status_ok();
    }
    member_settings_t s;
    status_t st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &s, NULL, NULL);
    if (status_is_ok(&st)) {
        st = member_tiers_load(ctx->db, ctx->arena, ctx->merchant_id, false, ts);
    }
    if (status_is_ok(&st)) {
        *basis = s.basis;
        member_cache_put_tiers(ctx, tiers_message(ctx->arena, ts, s.basis));
    }
    return st;
}

status_t member_rpc_list_tiers(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__MemberListTiersResponse *resp = (void *)resp_msg;
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    status_t st = member_rpc_tiers(ctx, &ts, &basis);
    if (status_is_ok(&st)) {
        *resp = *tiers_message(ctx->arena, &ts, basis);
    }
    return st;
}

/* ---- plans ---- */

static status_t plan_check(const Loyalty__V1__MemberPlan *p) {
    if (p == NULL) {
        return status_invalid_field("plan", "required");
    }
    status_t st = validate_text("plan.name", p->name, 1, MEMBER_PLAN_NAME_MAX);
    if (status_is_ok(&st)) {
        st = validate_token("plan.tier_id", p->tier_id, ID_MAX);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (p->period != LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_MONTHLY &&
        p->period != LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY) {
        return status_invalid_field("plan.period", "MONTHLY or YEARLY");
    }
    if (p->price_cents < 0 || p->price_cents > MEMBER_PRICE_MAX) {
        return status_invalid_field("plan.price_cents", "must be 0..10^12");
    }
    return status_ok();
}

status_t member_rpc_create_plan(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberCreatePlanRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberCreatePlanResponse *resp = (void *)resp_msg;
    status_t st = plan_check(req->plan);
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("plan", id);
    Loyalty__V1__MemberPlan p = *req->plan;
    p.id = id;
    return member_plan_insert(ctx->db, ctx->arena, ctx->merchant_id, &p, &resp->plan);
}

static const char *const plan_updatable[] = {"name",        "tier_id", "period",
                                             "price_cents", "active",  NULL};

status_t member_rpc_update_plan(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberUpdatePlanRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberUpdatePlanResponse *resp = (void *)resp_msg;
    status_t st = validate_token("plan_id", req->plan_id, ID_MAX);
    fieldmask_t mask;
    if (status_is_ok(&st)) {
        st = fieldmask_parse(req->update_mask, &loyalty__v1__member_plan__descriptor,
                             plan_updatable, &mask);
    }
    if (status_is_ok(&st) && req->plan == NULL) {
        st = status_invalid_field("plan", "required");
    }
    /* The plan as it is (locked), with the named fields changed, checked whole. */
    Loyalty__V1__MemberPlan *p = NULL;
    if (status_is_ok(&st)) {
        st = db_lock_named(ctx->db, "member.plans", ctx->merchant_id);
    }
    if (status_is_ok(&st)) {
        st = member_plan_get(ctx->db, ctx->arena, ctx->merchant_id, req->plan_id, &p);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    fieldmask_apply(&mask, &p->base, &req->plan->base);
    st = plan_check(p);
    if (!status_is_ok(&st)) {
        return st;
    }
    p->id = req->plan_id;
    return member_plan_update(ctx->db, ctx->arena, ctx->merchant_id, p, &resp->plan);
}

status_t member_rpc_list_plans(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberListPlansRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberListPlansResponse *resp = (void *)resp_msg;
    return member_plan_list(ctx->db, ctx->arena, ctx->merchant_id, req->include_inactive,
                            &resp->plans, &resp->n_plans);
}

/* ---- a member's tier, statistics, history ---- */

/* How long a member's tier status may stay cached: never past its next due instant. */
static int64_t status_ttl(const rpc_ctx_t *ctx, const member_row_t *row) {
    int64_t due = row->tier_due_at;
    if (due == 0) {
        return 0; /* the default */
    }
    int64_t left = due - ctx->now_s;
    if (left < 1) {
        return 1; /* overdue: the maintenance is about to change it */
    }
    return left < ctx->config->cache_ttl_s ? left : 0;
}

status_t member_rpc_get_tier(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberGetTierRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberGetTierResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    if (status_is_ok(&st)) {
        st = member_rpc_tiers(ctx, &ts, &basis);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__MemberTierStatus *raw = NULL;
    if (!member_cache_get_tier_status(ctx, req->member_id, &raw)) {
        member_row_t row;
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, false, &row);
        if (!status_is_ok(&st)) {
            return st;
        }
        raw = member_view_status_raw(ctx->arena, &row);
        member_cache_put_tier_status(ctx, raw, status_ttl(ctx, &row));
    }
    member_view_status_compose(ctx->arena, &ts, basis, raw);
    resp->status = raw;
    return status_ok();
}

status_t member_rpc_get_stats(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberGetStatsRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberGetStatsResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    member_settings_t s;
    member_row_t row;
    if (status_is_ok(&st)) {
        st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &s, NULL, NULL);
    }
    if (status_is_ok(&st)) {
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, false, &row);
    }
    if (status_is_ok(&st)) {
        resp->stats = member_view_stats(ctx->arena, &s, &row);
    }
    return st;
}

static bool all_digits(const char *s) {
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

/* A page request of the history lists: its size, and its cursor's two parts, of which `number`
 * (one of them) must be the digits this service wrote there. */
static status_t read_page(arena_t *a, const Loyalty__V1__PageRequest *page, int32_t *size,
                          char **first, char **second, char **number) {
    status_t st =
        cursor_page_size("page.page_size", page ? page->page_size : 0, PAGE_SIZE_MAX, size);
    if (status_is_ok(&st)) {
        st = cursor_decode(a, "page.cursor", page ? page->cursor : "", first, second);
    }
    if (status_is_ok(&st) && (strlen(*number) >= MEMBER_SEQ_MAX || !all_digits(*number))) {
        st = status_invalid_field("page.cursor", "not a cursor returned by this service");
    }
    return st;
}

status_t member_rpc_list_history(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberListTierHistoryRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberListTierHistoryResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    int32_t size = 0;
    char *key = "", *seq = "";
    if (status_is_ok(&st)) {
        st = read_page(ctx->arena, req->page, &size, &key, &seq, &seq);
    }
    member_row_t row;
    if (status_is_ok(&st)) { /* NOT_FOUND for a member of another merchant */
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, false, &row);
    }
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    if (status_is_ok(&st)) {
        st = member_rpc_tiers(ctx, &ts, &basis);
    }
    char last[MEMBER_SEQ_MAX];
    if (status_is_ok(&st)) {
        st = member_history_list(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, seq, size,
                                 &resp->changes, &resp->n_changes, last);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    for (size_t i = 0; i < resp->n_changes; i++) {
        Loyalty__V1__MemberTierChange *c = resp->changes[i];
        c->from_tier = member_view_ref(ctx->arena, &ts, c->from_tier->id);
        c->to_tier = member_view_ref(ctx->arena, &ts, c->to_tier->id);
        c->earned_tier = member_view_ref(ctx->arena, &ts, c->earned_tier->id);
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    resp->page_info->next_cursor =
        resp->n_changes == (size_t)size ? cursor_encode(ctx->arena, "", last) : "";
    return status_ok();
}

/* ---- cards ---- */

/* Parses an optional "YYYY-MM-DD" into a day number; "" gives MEMBER_DAY_NONE. */
static status_t parse_day(const char *field, const char *value, int64_t *day) {
    *day = MEMBER_DAY_NONE;
    if (value[0] == '\0') {
        return status_ok();
    }
    int y, m, d;
    status_t st = validate_date(field, value, &y, &m, &d);
    if (status_is_ok(&st)) {
        *day = date_days_from_civil(y, m, d);
    }
    return st;
}

static void card_clear(member_row_t *row) {
    row->card_kind = MEMBER_CARD(UNSPECIFIED);
    row->card_tier_id = "";
    row->card_plan_id = "";
    row->card_reason = "";
}

/* Finishes a card change: save, counters, cache; then the response status. */
static status_t card_finish(rpc_ctx_t *ctx, member_scope_t *s, const member_row_t *old,
                            member_row_t *row, const member_change_t *ch,
                            Loyalty__V1__MemberTierStatus **out) {
    status_t st = member_ops_save(ctx->db, ctx->arena, s, old, row, ch);
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, s);
    }
    if (status_is_ok(&st)) {
        member_rpc_invalidate_touched(ctx, s);
        *out = member_view_status(ctx->arena, &s->tiers, s->settings.basis, row);
    }
    return st;
}

status_t member_rpc_assign_tier(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberAssignTierRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberAssignTierResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    if (status_is_ok(&st) && req->tier_id[0] != '\0') {
        st = validate_token("tier_id", req->tier_id, ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_text("reason", req->reason, 1, MEMBER_REASON_TEXT_MAX);
    }
    int64_t valid_to = MEMBER_DAY_NONE;
    if (status_is_ok(&st)) {
        st = parse_day("valid_to", req->valid_to, &valid_to);
    }
    member_scope_t s;
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    member_row_t row;
    if (status_is_ok(&st)) {
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, true, &row);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_row_t old = row;
    if (req->tier_id[0] == '\0') {
        if (row.card_kind != MEMBER_CARD(INTERNAL)) { /* nothing to remove */
            resp->status = member_view_status(ctx->arena, &s.tiers, s.settings.basis, &row);
            return status_ok();
        }
        card_clear(&row);
    } else {
        if (member_tierset_level(&s.tiers, req->tier_id) == 0) {
            return status_make(STATUS_NOT_FOUND, REASON_TIER_NOT_FOUND, "tier not found");
        }
        if (valid_to != MEMBER_DAY_NONE && valid_to < s.today) {
            return status_invalid_field("valid_to",
                                        "before today (%s) in the merchant's time "
                                        "zone",
                                        member_view_date(ctx->arena, s.today));
        }
        row.card_kind = MEMBER_CARD(INTERNAL);
        row.card_tier_id = req->tier_id;
        row.card_plan_id = "";
        row.card_valid_from = s.today;
        row.card_valid_to = valid_to;
        row.card_reason = req->reason;
    }
    member_change_t ch = {.card_reason = MEMBER_REASON(MANUAL), .note = req->reason};
    return card_finish(ctx, &s, &old, &row, &ch, &resp->status);
}

static int32_t plan_months(const Loyalty__V1__MemberPlan *plan, int32_t quantity) {
    return quantity *
           (plan->period == LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY ? 12 : 1);
}

static Loyalty__V1__MemberCard *card_view(arena_t *a, const member_tierset_t *ts,
                                          const member_row_t *row) {
    Loyalty__V1__MemberTierStatus *st = member_view_status_raw(a, row);
    if (st->card != NULL) {
        st->card->tier = member_view_ref(a, ts, row->card_tier_id);
    }
    return st->card;
}

static status_t purchase_check(const Loyalty__V1__MemberPurchaseRequest *req, int32_t quantity) {
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    if (status_is_ok(&st)) {
        st = validate_token("plan_id", req->plan_id, ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_token("order_id", req->order_id, MEMBER_ORDER_ID_MAX);
    }
    if (status_is_ok(&st) && (quantity < 1 || quantity > MEMBER_QUANTITY_MAX)) {
        st = status_invalid_field("quantity", "must be 1..%d", MEMBER_QUANTITY_MAX);
    }
    return st;
}

/* The order's purchase recorded before: *found and the first outcome (the card as it stands),
 * or ORDER_ALREADY_RECORDED when it was another purchase. */
static status_t purchase_replay(rpc_ctx_t *ctx, const member_scope_t *s, const member_row_t *row,
                                const Loyalty__V1__MemberPurchaseRequest *req, int32_t quantity,
                                Loyalty__V1__MemberPurchaseResponse *resp, bool *found) {
    member_purchase_t prev;
    status_t st = member_purchase_get(ctx->db, ctx->arena, ctx->merchant_id, req->order_id, &prev);
    *found = status_is_ok(&st);
    if (st.code == STATUS_NOT_FOUND) {
        return status_ok();
    }
    if (!*found) {
        return st;
    }
    if (strcmp(prev.member_id, req->member_id) != 0 || strcmp(prev.plan_id, req->plan_id) != 0 ||
        prev.quantity != quantity) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ALREADY_RECORDED,
                           "order already recorded for another purchase");
    }
    resp->already_recorded = true;
    resp->card = card_view(ctx->arena, &s->tiers, row);
    resp->status = member_view_status(ctx->arena, &s->tiers, s->settings.basis, row);
    return status_ok();
}

/* Puts the plan's PAID card on the row (extending the same plan's valid card) and records the
 * purchase. */
static status_t purchase_apply(rpc_ctx_t *ctx, const member_scope_t *s, member_row_t *row,
                               const Loyalty__V1__MemberPlan *plan, int32_t quantity,
                               const char *order_id, member_card_t *card) {
    member_card_t current = member_row_card(s, row);
    bool same_plan = strcmp(row->card_plan_id, plan->id) == 0;
    *card =
        member_card_purchase(&current, same_plan, member_tierset_level(&s->tiers, plan->tier_id),
                             plan_months(plan, quantity), s->today);
    row->card_kind = MEMBER_CARD(PAID);
    row->card_tier_id = plan->tier_id;
    row->card_plan_id = plan->id;
    row->card_valid_from = card->valid_from;
    row->card_valid_to = card->valid_to;
    row->card_reason = "";
    member_purchase_t pu = {
        .order_id = (char *)order_id,
        .member_id = row->id,
        .plan_id = plan->id,
        .quantity = quantity,
        .valid_from = card->valid_from,
        .valid_to = card->valid_to,
    };
    return member_purchase_insert(ctx->db, ctx->merchant_id, &pu);
}

status_t member_rpc_purchase(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberPurchaseRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberPurchaseResponse *resp = (void *)resp_msg;
    int32_t quantity = req->quantity == 0 ? 1 : req->quantity;
    status_t st = purchase_check(req, quantity);
    member_scope_t s;
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    member_row_t row;
    if (status_is_ok(&st)) { /* the member's lock serializes its purchases */
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, true, &row);
    }
    bool found = false;
    if (status_is_ok(&st)) {
        st = purchase_replay(ctx, &s, &row, req, quantity, resp, &found);
    }
    if (!status_is_ok(&st) || found) {
        return st;
    }
    Loyalty__V1__MemberPlan *plan = NULL;
    st = member_plan_get(ctx->db, ctx->arena, ctx->merchant_id, req->plan_id, &plan);
    if (status_is_ok(&st) && !plan->active) {
        st = status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_INACTIVE, "plan is not on sale");
    }
    member_row_t old = row;
    member_card_t card;
    if (status_is_ok(&st)) {
        st = purchase_apply(ctx, &s, &row, plan, quantity, req->order_id, &card);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_change_t ch = {
        .card_reason = MEMBER_REASON(PAID),
        .note = arena_printf(ctx->arena, "%s x%d, valid through %s", plan->name, (int)quantity,
                             member_view_date(ctx->arena, card.valid_to)),
        .order_id = req->order_id,
    };
    st = card_finish(ctx, &s, &old, &row, &ch, &resp->status);
    if (status_is_ok(&st)) {
        resp->card = card_view(ctx->arena, &s.tiers, &row);
    }
    return st;
}

status_t member_rpc_list_changes(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberListTierChangesRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberListTierChangesResponse *resp = (void *)resp_msg;
    status_t st = status_ok();
    if (req->from_at < 0 || req->to_at <= req->from_at ||
        req->to_at - req->from_at > 366LL * 86400) {
        st = status_invalid_field("to_at", "must be after from_at and at most 366 days on");
    }
    int32_t size = 0;
    char *at_us = "", *after_id = "";
    if (status_is_ok(&st)) {
        st = read_page(ctx->arena, req->page, &size, &at_us, &after_id, &at_us);
    }
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    if (status_is_ok(&st)) {
        st = member_rpc_tiers(ctx, &ts, &basis);
    }
    char last[MEMBER_SEQ_MAX];
    if (status_is_ok(&st)) {
        st = member_history_window(ctx->db, ctx->arena, ctx->merchant_id, req->from_at, req->to_at,
                                   at_us, after_id, size, &resp->changes, &resp->n_changes, last);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    for (size_t i = 0; i < resp->n_changes; i++) {
        Loyalty__V1__MemberTierChange *c = resp->changes[i];
        c->from_tier = member_view_ref(ctx->arena, &ts, c->from_tier->id);
        c->to_tier = member_view_ref(ctx->arena, &ts, c->to_tier->id);
        c->earned_tier = member_view_ref(ctx->arena, &ts, c->earned_tier->id);
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    resp->page_info->next_cursor =
        resp->n_changes == (size_t)size
            ? cursor_encode(ctx->arena, last, resp->changes[resp->n_changes - 1]->id)
            : "";
    return status_ok();
}
