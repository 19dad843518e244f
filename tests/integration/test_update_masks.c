/* test_update_masks.c -- the update convention (docs/architecture.md#conventions), RPC by RPC
 * through real gRPC: an update naming one field in its update_mask changes that field alone
 * (every other field read back as it was, although the request carried other values for
 * them), its audit row records exactly that field before and after, and an update with a
 * missing or empty mask, an unknown path or an output-only field is refused and changes
 * nothing. */
#include "fieldmask.h"
#include "gateway_it.h"

#include <pthread.h>

static void setup(void) {
    it_setup();
}

static void teardown(void) {
    it_teardown();
}

TestSuite(update_masks, .init = setup, .fini = teardown, .timeout = 300);

/* Without background jobs (JOB_INTERVAL_S=0): one of them (member-svc's RFM bounds) would change
 * fields between a test's two reads of what it compares. */
static void start(int svc) {
    static const char *env[3];
    env[0] = svc_env()[0];
    env[1] = "JOB_INTERVAL_S=0";
    env[2] = NULL;
    harness_start(&procs[svc], svc_names[svc], env);
}

/* Fails unless `got` equals `want` in every field (compared as encodings); names the fields
 * that differ. */
static void assert_same(const ProtobufCMessage *want, const ProtobufCMessage *got,
                        const char *what) {
    const ProtobufCMessageDescriptor *d = want->descriptor;
    cr_assert_eq(got->descriptor, d);
    size_t wl = protobuf_c_message_get_packed_size(want);
    size_t gl = protobuf_c_message_get_packed_size(got);
    uint8_t *wb = arena_alloc(&arena, wl + 1), *gb = arena_alloc(&arena, gl + 1);
    protobuf_c_message_pack(want, wb);
    protobuf_c_message_pack(got, gb);
    if (wl == gl && memcmp(wb, gb, wl) == 0) {
        return;
    }
    /* Which fields: `want` with one field taken from `got` encodes differently. */
    char diff[512] = "";
    for (unsigned i = 0; i < d->n_fields; i++) {
        ProtobufCMessage *mix = arena_alloc(&arena, d->sizeof_message);
        memcpy(mix, want, d->sizeof_message);
        fieldmask_t one = {.desc = d, .fields = UINT64_C(1) << i};
        fieldmask_apply(&one, mix, got);
        size_t ml = protobuf_c_message_get_packed_size(mix);
        uint8_t *mb = arena_alloc(&arena, ml + 1);
        protobuf_c_message_pack(mix, mb);
        if (ml != wl || memcmp(mb, wb, wl) != 0) {
            size_t used = strlen(diff);
            snprintf(diff + used, sizeof diff - used, " %s", d->fields[i].name);
        }
    }
    cr_assert_fail("%s: fields differ:%s", what, diff);
}

/* The audit rows of the merchant's calls with idempotency key `key` in `schema`, one line each:
 * "op table changed-fields before after", where changed-fields are the keys of `before` but
 * the bookkeeping every write changes (updated_at, version, and the promotion's encoded
 * definition), and before/after are the values of `column` as text. */
static const char *audit_lines(const char *schema, const char *m, const char *key,
                               const char *column) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(op || ' ' || coalesce(table_name, '-') || ' ' ||"
             " coalesce((SELECT string_agg(k, ',' ORDER BY k) FROM"
             "  jsonb_object_keys(coalesce(before, '{}')) AS k"
             "  WHERE k NOT IN ('updated_at', 'version', 'definition')), '') || ' ' ||"
             " coalesce(before ->> $3, '') || ' ' || coalesce(after ->> $3, ''),"
             " E'\\n' ORDER BY id) FROM %s.audit_log"
             " WHERE merchant_id = $1 AND idempotency_key = $2",
             schema);
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    const char *params[3] = {m, key, column};
    PGresult *r = PQexecParams(pg, sql, 3, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    const char *v = "";
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        v = arena_strdup(&arena, PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(pg);
    return v;
}

/* The call with key `key` left its CALL row and one UPDATE of `table` that changed `column`
 * alone, from `from` to `to`. */
static void assert_audited_one_field(const char *schema, const char *m, const char *key,
                                     const char *table, const char *column, const char *from,
                                     const char *to) {
    char want[512];
    snprintf(want, sizeof want, "CALL -   \nUPDATE %s %s %s %s", table, column, from, to);
    cr_assert_str_eq(audit_lines(schema, m, key, column), want);
}

/* An update request's idempotency key and update mask, to vary them. */
typedef struct masked_call {
    int svc;
    const char *method;
    ProtobufCMessage *req;
    char **idempotency_key;
    Google__Protobuf__FieldMask **update_mask;
} masked_call_t;

static void assert_refused(const masked_call_t *c, Google__Protobuf__FieldMask *mask,
                           const char *reason, const char *named) {
    *c->idempotency_key = (char *)harness_key();
    *c->update_mask = mask;
    status_t st = call(c->svc, c->method, c->req, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, reason);
    if (named) {
        cr_assert(strstr(st.message, named) != NULL, "%s does not name %s", st.message, named);
    }
}

/* A missing mask, an empty one, an unknown path next to a valid one, and (when `output_only`
 * is not NULL) an output-only field are each refused. The caller reads back that nothing
 * changed. */
static void assert_bad_masks_refused(const masked_call_t *c, char *valid, char *output_only) {
    assert_refused(c, NULL, "UPDATE_MASK_REQUIRED", NULL);
    assert_refused(c, HARNESS_MASK_OF((char **)NULL, 0), "UPDATE_MASK_REQUIRED", NULL);
    assert_refused(c, HARNESS_MASK(valid, "no_such_field"), "UPDATE_MASK_UNKNOWN_FIELD",
                   "'no_such_field'");
    if (output_only) {
        assert_refused(c, HARNESS_MASK(valid, output_only), "UPDATE_MASK_IMMUTABLE_FIELD",
                       output_only);
    }
}

/* ---- points ---- */

static Loyalty__V1__PointsSettings *points_settings(const char *m) {
    Loyalty__V1__PointsGetSettingsRequest g = LOYALTY__V1__POINTS_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__PointsGetSettingsResponse *r = NULL;
    assert_ok(call(SVC_POINTS, "GetSettings", &g, &r));
    return r->settings;
}

Test(update_masks, points_update_settings_changes_the_named_field_alone) {
    start(SVC_POINTS);
    const char *m = harness_merchant("mask-points");
    set_points_rules(m, 100, 5, 0); /* every field named: not the defaults */
    Loyalty__V1__PointsSettings *before = points_settings(m);
    cr_assert_eq(before->pending_days, 0);

    /* Other values for every other field, but only pending_days named. */
    Loyalty__V1__PointsSettings in = *before;
    in.time_zone = "Asia/Tokyo";
    in.earn_unit_cents = 250;
    in.earn_points_per_unit = 3;
    in.event_rules = NULL;
    in.n_event_rules = 0;
    in.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_DAYS_AFTER_EARN;
    in.expiry_days = 30;
    in.redeem_points = 50;
    in.redeem_max_order_share_bps = 100;
    in.growth_per_unit = 9;
    in.pending_days = 7;
    in.version = 99;
    Loyalty__V1__PointsUpdateSettingsRequest u = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &in;
    u.update_mask = HARNESS_MASK("pending_days");
    const char *key = u.idempotency_key;
    Loyalty__V1__PointsUpdateSettingsResponse *ur = NULL;
    assert_ok(call(SVC_POINTS, "UpdateSettings", &u, &ur));

    Loyalty__V1__PointsSettings *after = points_settings(m);
    cr_assert_eq(after->version, before->version + 1);
    Loyalty__V1__PointsSettings want = *before;
    want.pending_days = 7;
    want.version = after->version;
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "points settings read back");
    assert_same(&want.base, &ur->settings->base, "points settings answered");
    assert_audited_one_field("points", m, key, "settings", "pending_days", "0", "7");

    masked_call_t c = {SVC_POINTS, "UpdateSettings", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "pending_days", "version");
    assert_same(&after->base, &points_settings(m)->base, "points settings after refusals");
}

/* ---- member ---- */

static Loyalty__V1__Member *get_member(const char *m, const char *id) {
    Loyalty__V1__GetMemberRequest g = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    g.member_id = (char *)id;
    Loyalty__V1__GetMemberResponse *r = NULL;
    assert_ok(call(SVC_MEMBER, "GetMember", &g, &r));
    return r->member;
}

Test(update_masks, member_update_member_changes_the_named_profile_field_alone) {
    start(SVC_MEMBER);
    const char *m = harness_merchant("mask-member");
    const char *id = create_member(m, "Ana Lima");
    /* A fuller profile first. */
    char *tags[] = {"vip"};
    Loyalty__V1__MemberProfile full = LOYALTY__V1__MEMBER_PROFILE__INIT;
    full.phone = "+6591234567";
    full.email = "ana@example.com";
    full.birthday = "1990-05-17";
    full.occupation = "Teacher";
    full.tags = tags;
    full.n_tags = 1;
    Loyalty__V1__UpdateMemberRequest u = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.member_id = (char *)id;
    u.profile = &full;
    u.update_mask = HARNESS_MASK("phone", "email", "birthday", "occupation", "tags");
    assert_ok(call(SVC_MEMBER, "UpdateMember", &u, NULL));
    Loyalty__V1__Member *before = get_member(m, id);

    /* Other values for every other profile field, but only occupation named. */
    char *other_tags[] = {"new", "other"};
    Loyalty__V1__MemberProfile in = LOYALTY__V1__MEMBER_PROFILE__INIT;
    in.name = "Zed";
    in.phone = "+6598765432";
    in.email = "zed@example.com";
    in.birthday = "1980-01-01";
    in.gender = LOYALTY__V1__GENDER__GENDER_MALE;
    in.occupation = "Baker";
    in.tags = other_tags;
    in.n_tags = 2;
    u.idempotency_key = (char *)harness_key();
    u.profile = &in;
    u.update_mask = HARNESS_MASK("occupation");
    Loyalty__V1__UpdateMemberResponse *ur = NULL;
    assert_ok(call(SVC_MEMBER, "UpdateMember", &u, &ur));

    Loyalty__V1__Member *after = get_member(m, id);
    cr_assert_eq(after->version, before->version + 1);
    Loyalty__V1__MemberProfile want_profile = *before->profile;
    want_profile.occupation = "Baker";
    Loyalty__V1__Member want = *before;
    want.profile = &want_profile;
    want.version = after->version;
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "member read back");
    assert_same(&want.base, &ur->member->base, "member answered");
    /* A profile is the member's data, not configuration: no audit rows (README "Audit trail"). */
    cr_assert_str_eq(audit_lines("member", m, u.idempotency_key, "occupation"), "");

    masked_call_t c = {SVC_MEMBER, "UpdateMember", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "occupation", NULL);
    assert_same(&after->base, &get_member(m, id)->base, "member after refusals");
}

static Loyalty__V1__MemberSettings *member_settings(const char *m) {
    Loyalty__V1__MemberGetSettingsRequest g = LOYALTY__V1__MEMBER_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__MemberGetSettingsResponse *r = NULL;
    assert_ok(call(SVC_MEMBER, "GetMemberSettings", &g, &r));
    return r->settings;
}

Test(update_masks, member_update_settings_changes_the_named_field_alone) {
    start(SVC_MEMBER);
    const char *m = harness_merchant("mask-msettings");
    Loyalty__V1__MemberLifecycleRules l = LOYALTY__V1__MEMBER_LIFECYCLE_RULES__INIT;
    l.new_days = 45;
    l.active_months_min = 2;
    l.sleeping_after_days = 120;
    l.lost_after_days = 200;
    l.sleeping_orders_max = 3;
    Loyalty__V1__MemberSettings first = LOYALTY__V1__MEMBER_SETTINGS__INIT;
    first.lifecycle = &l;
    Loyalty__V1__MemberUpdateSettingsRequest u = LOYALTY__V1__MEMBER_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &first;
    u.update_mask = HARNESS_MASK("lifecycle");
    assert_ok(call(SVC_MEMBER, "UpdateMemberSettings", &u, NULL));
    Loyalty__V1__MemberSettings *before = member_settings(m);
    cr_assert_str_eq(before->time_zone, "UTC");

    /* Other values for the other fields, but only time_zone named. */
    Loyalty__V1__MemberLifecycleRules other = l;
    other.new_days = 10;
    Loyalty__V1__MemberSettings in = LOYALTY__V1__MEMBER_SETTINGS__INIT;
    in.time_zone = "Asia/Singapore";
    in.tier_basis = LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_SPEND;
    in.lifecycle = &other;
    u.idempotency_key = (char *)harness_key();
    u.settings = &in;
    u.update_mask = HARNESS_MASK("time_zone");
    const char *key = u.idempotency_key;
    Loyalty__V1__MemberUpdateSettingsResponse *ur = NULL;
    assert_ok(call(SVC_MEMBER, "UpdateMemberSettings", &u, &ur));

    Loyalty__V1__MemberSettings *after = member_settings(m);
    Loyalty__V1__MemberSettings want = *before;
    want.time_zone = "Asia/Singapore";
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "member settings read back");
    assert_same(&want.base, &ur->settings->base, "member settings answered");
    assert_audited_one_field("member", m, key, "settings", "time_zone", "UTC", "Asia/Singapore");

    masked_call_t c = {SVC_MEMBER, "UpdateMemberSettings", &u.base, &u.idempotency_key,
                       &u.update_mask};
    assert_bad_masks_refused(&c, "time_zone", "rfm_computed_at");
    assert_same(&after->base, &member_settings(m)->base, "member settings after refusals");
}

static Loyalty__V1__MemberListTiersResponse *list_tiers(const char *m) {
    Loyalty__V1__MemberListTiersRequest g = LOYALTY__V1__MEMBER_LIST_TIERS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__MemberListTiersResponse *r = NULL;
    assert_ok(call(SVC_MEMBER, "ListTiers", &g, &r));
    return r;
}

Test(update_masks, member_update_tier_changes_the_named_field_alone) {
    start(SVC_MEMBER);
    const char *m = harness_merchant("mask-tier");
    Loyalty__V1__MemberTier *silver = create_tier(m, "Silver", 1, 1000, 300, 11000);
    create_tier(m, "Gold", 2, 5000, 500, 12000);
    Loyalty__V1__MemberListTiersResponse *before = list_tiers(m);
    cr_assert_eq(before->n_tiers, 2);

    /* Other values for every other field, but only discount_bps named. */
    Loyalty__V1__MemberTier in = *before->tiers[0];
    in.name = "Platinum";
    in.rank = 7;
    in.upgrade_threshold = 9000;
    in.retain_threshold = 10;
    in.period_months = 1;
    in.express_spend_cents = 777;
    in.discount_bps = 350;
    in.earn_multiplier_bps = 20000;
    in.birthday_bonus_points = 5;
    Loyalty__V1__MemberUpdateTierRequest u = LOYALTY__V1__MEMBER_UPDATE_TIER_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.tier_id = silver->id;
    u.tier = &in;
    u.update_mask = HARNESS_MASK("discount_bps");
    const char *key = u.idempotency_key;
    Loyalty__V1__MemberUpdateTierResponse *ur = NULL;
    assert_ok(call(SVC_MEMBER, "UpdateTier", &u, &ur));

    Loyalty__V1__MemberListTiersResponse *after = list_tiers(m);
    Loyalty__V1__MemberTier want_silver = *before->tiers[0];
    want_silver.discount_bps = 350;
    want_silver.updated_at = after->tiers[0]->updated_at;
    Loyalty__V1__MemberTier *want_tiers[2] = {&want_silver, before->tiers[1]};
    Loyalty__V1__MemberListTiersResponse want = *before;
    want.tiers = want_tiers;
    assert_same(&want.base, &after->base, "tiers read back");
    assert_same(&want_silver.base, &ur->tier->base, "tier answered");
    assert_audited_one_field("member", m, key, "tiers", "discount_bps", "300", "350");

    masked_call_t c = {SVC_MEMBER, "UpdateTier", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "discount_bps", "id");
    assert_same(&after->base, &list_tiers(m)->base, "tiers after refusals");
}

static Loyalty__V1__MemberListPlansResponse *list_plans(const char *m) {
    Loyalty__V1__MemberListPlansRequest g = LOYALTY__V1__MEMBER_LIST_PLANS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.include_inactive = true;
    Loyalty__V1__MemberListPlansResponse *r = NULL;
    assert_ok(call(SVC_MEMBER, "ListMembershipPlans", &g, &r));
    return r;
}

Test(update_masks, member_update_membership_plan_changes_the_named_field_alone) {
    start(SVC_MEMBER);
    const char *m = harness_merchant("mask-plan");
    Loyalty__V1__MemberTier *club = create_tier(m, "Club", 1, 0, 500, 10000);
    Loyalty__V1__MemberPlan p = LOYALTY__V1__MEMBER_PLAN__INIT;
    p.name = "Club monthly";
    p.tier_id = club->id;
    p.period = LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_MONTHLY;
    p.price_cents = 990;
    p.active = true;
    Loyalty__V1__MemberCreatePlanRequest cr = LOYALTY__V1__MEMBER_CREATE_PLAN_REQUEST__INIT;
    cr.merchant_id = (char *)m;
    cr.idempotency_key = (char *)harness_key();
    cr.plan = &p;
    Loyalty__V1__MemberCreatePlanResponse *created = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMembershipPlan", &cr, &created));
    Loyalty__V1__MemberListPlansResponse *before = list_plans(m);
    cr_assert_eq(before->n_plans, 1);

    /* Other values for every other field, but only price_cents named. */
    Loyalty__V1__MemberPlan in = LOYALTY__V1__MEMBER_PLAN__INIT;
    in.name = "Renamed";
    in.tier_id = "tier_nope";
    in.period = LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY;
    in.price_cents = 1290;
    in.active = false;
    Loyalty__V1__MemberUpdatePlanRequest u = LOYALTY__V1__MEMBER_UPDATE_PLAN_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.plan_id = created->plan->id;
    u.plan = &in;
    u.update_mask = HARNESS_MASK("price_cents");
    const char *key = u.idempotency_key;
    Loyalty__V1__MemberUpdatePlanResponse *ur = NULL;
    assert_ok(call(SVC_MEMBER, "UpdateMembershipPlan", &u, &ur));

    Loyalty__V1__MemberListPlansResponse *after = list_plans(m);
    Loyalty__V1__MemberPlan want_plan = *before->plans[0];
    want_plan.price_cents = 1290;
    want_plan.updated_at = after->plans[0]->updated_at;
    Loyalty__V1__MemberPlan *want_plans[1] = {&want_plan};
    Loyalty__V1__MemberListPlansResponse want = *before;
    want.plans = want_plans;
    assert_same(&want.base, &after->base, "plans read back");
    assert_same(&want_plan.base, &ur->plan->base, "plan answered");
    assert_audited_one_field("member", m, key, "plans", "price_cents", "990", "1290");

    masked_call_t c = {SVC_MEMBER, "UpdateMembershipPlan", &u.base, &u.idempotency_key,
                       &u.update_mask};
    assert_bad_masks_refused(&c, "price_cents", "created_at");
    assert_same(&after->base, &list_plans(m)->base, "plans after refusals");
}

/* ---- promo ---- */

static Loyalty__V1__Promotion *get_promotion(const char *m, const char *id) {
    Loyalty__V1__PromoGetPromotionRequest g = LOYALTY__V1__PROMO_GET_PROMOTION_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.promotion_id = (char *)id;
    Loyalty__V1__PromoGetPromotionResponse *r = NULL;
    assert_ok(call(SVC_PROMO, "GetPromotion", &g, &r));
    return r->promotion;
}

Test(update_masks, promo_update_promotion_changes_the_named_field_alone) {
    start(SVC_PROMO);
    const char *m = harness_merchant("mask-promo");
    Loyalty__V1__Promotion *created = create_code_promotion(m, "SAVE5", 500, 10);
    Loyalty__V1__Promotion *before = get_promotion(m, created->id);
    cr_assert_eq(before->priority, 0);

    /* Other values for every other field, but only priority named. */
    Loyalty__V1__PromoPercentOff off = LOYALTY__V1__PROMO_PERCENT_OFF__INIT;
    off.percent_off_bps = 2500;
    Loyalty__V1__Promotion in = LOYALTY__V1__PROMOTION__INIT;
    in.id = before->id;
    in.name = "Junk";
    in.description = "not to be kept";
    in.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    in.priority = 5;
    in.exclusive = true;
    in.end_at = 4102444800;
    in.rule_case = LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF;
    in.percent_off = &off;
    in.code = "OTHER";
    Loyalty__V1__PromoUpdatePromotionRequest u = LOYALTY__V1__PROMO_UPDATE_PROMOTION_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.promotion = &in;
    u.update_mask = HARNESS_MASK("priority");
    const char *key = u.idempotency_key;
    Loyalty__V1__PromoUpdatePromotionResponse *ur = NULL;
    assert_ok(call(SVC_PROMO, "UpdatePromotion", &u, &ur));

    Loyalty__V1__Promotion *after = get_promotion(m, before->id);
    cr_assert_eq(after->version, before->version + 1);
    Loyalty__V1__Promotion want = *before;
    want.priority = 5;
    want.version = after->version;
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "promotion read back");
    assert_same(&want.base, &ur->promotion->base, "promotion answered");
    /* The row also keeps the encoded definition, which changes with any field. */
    assert_audited_one_field("promo", m, key, "promotions", "priority", "0", "5");

    masked_call_t c = {SVC_PROMO, "UpdatePromotion", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "priority", "status");
    assert_same(&after->base, &get_promotion(m, before->id)->base, "promotion after refusals");
}

static Loyalty__V1__PromoSettings *promo_settings(const char *m) {
    Loyalty__V1__PromoGetSettingsRequest g = LOYALTY__V1__PROMO_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__PromoGetSettingsResponse *r = NULL;
    assert_ok(call(SVC_PROMO, "GetPromoSettings", &g, &r));
    return r->settings;
}

Test(update_masks, promo_update_settings_changes_the_named_field_alone) {
    start(SVC_PROMO);
    const char *m = harness_merchant("mask-psettings");
    Loyalty__V1__PromoSettings first = LOYALTY__V1__PROMO_SETTINGS__INIT;
    first.time_zone = "Asia/Singapore";
    first.refund_restores_usage = false;
    first.refund_restores_coupons = true;
    Loyalty__V1__PromoUpdateSettingsRequest u = LOYALTY__V1__PROMO_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &first;
    u.update_mask = HARNESS_MASK("time_zone", "refund_restores_usage", "refund_restores_coupons");
    assert_ok(call(SVC_PROMO, "UpdatePromoSettings", &u, NULL));
    Loyalty__V1__PromoSettings *before = promo_settings(m);

    /* Other values for the other fields, but only refund_restores_coupons named. */
    Loyalty__V1__PromoSettings in = LOYALTY__V1__PROMO_SETTINGS__INIT;
    in.time_zone = "Europe/Paris";
    in.refund_restores_usage = true;
    in.refund_restores_coupons = false;
    u.idempotency_key = (char *)harness_key();
    u.settings = &in;
    u.update_mask = HARNESS_MASK("refund_restores_coupons");
    const char *key = u.idempotency_key;
    Loyalty__V1__PromoUpdateSettingsResponse *ur = NULL;
    assert_ok(call(SVC_PROMO, "UpdatePromoSettings", &u, &ur));

    Loyalty__V1__PromoSettings *after = promo_settings(m);
    Loyalty__V1__PromoSettings want = *before;
    want.refund_restores_coupons = false;
    assert_same(&want.base, &after->base, "promo settings read back");
    assert_same(&want.base, &ur->settings->base, "promo settings answered");
    assert_audited_one_field("promo", m, key, "settings", "refund_restores_coupons", "true",
                             "false");

    masked_call_t c = {SVC_PROMO, "UpdatePromoSettings", &u.base, &u.idempotency_key,
                       &u.update_mask};
    assert_bad_masks_refused(&c, "refund_restores_coupons", NULL); /* every field can change */
    assert_same(&after->base, &promo_settings(m)->base, "promo settings after refusals");
}

/* ---- wallet ---- */

static Loyalty__V1__WalletSettings *wallet_settings(const char *m) {
    Loyalty__V1__WalletGetSettingsRequest g = LOYALTY__V1__WALLET_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__WalletGetSettingsResponse *r = NULL;
    assert_ok(call(SVC_WALLET, "GetSettings", &g, &r));
    return r->settings;
}

Test(update_masks, wallet_update_settings_changes_the_named_field_alone) {
    start(SVC_WALLET);
    const char *m = harness_merchant("mask-wsettings");
    Loyalty__V1__WalletSettings first = LOYALTY__V1__WALLET_SETTINGS__INIT;
    first.deposit_expiry_months = 12;
    first.time_zone = "Asia/Singapore";
    first.refund_grace_days = 30;
    Loyalty__V1__WalletUpdateSettingsRequest u = LOYALTY__V1__WALLET_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &first;
    u.update_mask = HARNESS_MASK("deposit_expiry_months", "time_zone", "refund_grace_days");
    assert_ok(call(SVC_WALLET, "UpdateSettings", &u, NULL));
    Loyalty__V1__WalletSettings *before = wallet_settings(m);

    /* Other values for the other fields, but only refund_grace_days named. */
    Loyalty__V1__WalletSettings in = LOYALTY__V1__WALLET_SETTINGS__INIT;
    in.deposit_expiry_months = 3;
    in.time_zone = "Europe/Paris";
    in.refund_grace_days = 14;
    u.idempotency_key = (char *)harness_key();
    u.settings = &in;
    u.update_mask = HARNESS_MASK("refund_grace_days");
    const char *key = u.idempotency_key;
    Loyalty__V1__WalletUpdateSettingsResponse *ur = NULL;
    assert_ok(call(SVC_WALLET, "UpdateSettings", &u, &ur));

    Loyalty__V1__WalletSettings *after = wallet_settings(m);
    Loyalty__V1__WalletSettings want = *before;
    want.refund_grace_days = 14;
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "wallet settings read back");
    assert_same(&want.base, &ur->settings->base, "wallet settings answered");
    assert_audited_one_field("wallet", m, key, "settings", "refund_grace_days", "30", "14");

    masked_call_t c = {SVC_WALLET, "UpdateSettings", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "refund_grace_days", "merchant_id");
    assert_same(&after->base, &wallet_settings(m)->base, "wallet settings after refusals");
}

static Loyalty__V1__WalletTopUpPlan *get_top_up_plan(const char *m, const char *id) {
    Loyalty__V1__WalletGetTopUpPlanRequest g = LOYALTY__V1__WALLET_GET_TOP_UP_PLAN_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.plan_id = (char *)id;
    Loyalty__V1__WalletGetTopUpPlanResponse *r = NULL;
    assert_ok(call(SVC_WALLET, "GetTopUpPlan", &g, &r));
    return r->plan;
}

Test(update_masks, wallet_update_top_up_plan_changes_the_named_field_alone) {
    start(SVC_WALLET);
    const char *m = harness_merchant("mask-topup");
    Loyalty__V1__WalletCreateTopUpPlanRequest cp =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    cp.merchant_id = (char *)m;
    cp.idempotency_key = (char *)harness_key();
    cp.name = "Gold pack";
    cp.pay_cents = 10000;
    cp.bonus_cents = 1000;
    cp._expiry_months_case =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST___EXPIRY_MONTHS_EXPIRY_MONTHS;
    cp.expiry_months = 6;
    cp.active_until_at = 4102444800; /* 2100-01-01 */
    Loyalty__V1__WalletCreateTopUpPlanResponse *created = NULL;
    assert_ok(call(SVC_WALLET, "CreateTopUpPlan", &cp, &created));
    Loyalty__V1__WalletTopUpPlan *before = get_top_up_plan(m, created->plan->id);

    /* Other values for every other field, but only name named. */
    Loyalty__V1__WalletTopUpPlan in = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    in.name = "Gold pack 2026";
    in.pay_cents = 5;
    in.bonus_cents = 50;
    in.active_from_at = 1;
    in.active_until_at = 2;
    in.enabled = false;
    Loyalty__V1__WalletUpdateTopUpPlanRequest u =
        LOYALTY__V1__WALLET_UPDATE_TOP_UP_PLAN_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.plan_id = before->id;
    u.plan = &in;
    u.update_mask = HARNESS_MASK("name");
    const char *key = u.idempotency_key;
    Loyalty__V1__WalletUpdateTopUpPlanResponse *ur = NULL;
    assert_ok(call(SVC_WALLET, "UpdateTopUpPlan", &u, &ur));

    Loyalty__V1__WalletTopUpPlan *after = get_top_up_plan(m, before->id);
    Loyalty__V1__WalletTopUpPlan want = *before;
    want.name = "Gold pack 2026";
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "top-up plan read back");
    assert_same(&want.base, &ur->plan->base, "top-up plan answered");
    assert_audited_one_field("wallet", m, key, "plans", "name", "Gold pack", "Gold pack 2026");

    masked_call_t c = {SVC_WALLET, "UpdateTopUpPlan", &u.base, &u.idempotency_key, &u.update_mask};
    assert_bad_masks_refused(&c, "name", "pay_cents"); /* amounts are fixed */
    assert_same(&after->base, &get_top_up_plan(m, before->id)->base, "plan after refusals");
}

/* ---- gateway ---- */

static Loyalty__V1__GatewaySettings *gateway_settings(const char *m) {
    Loyalty__V1__GatewayGetSettingsRequest g = LOYALTY__V1__GATEWAY_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__GatewayGetSettingsResponse *r = NULL;
    assert_ok(gw("GetGatewaySettings", &g, &r));
    return r->settings;
}

Test(update_masks, gateway_update_settings_changes_the_named_field_alone) {
    stack_start();
    const char *m = harness_merchant("mask-gw");
    char *first_ids[] = {"tpl_a", "tpl_b"};
    Loyalty__V1__GatewaySettings first = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    first.welcome_coupon_template_ids = first_ids;
    first.n_welcome_coupon_template_ids = 2;
    Loyalty__V1__GatewayUpdateSettingsRequest u =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &first;
    u.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(gw("UpdateGatewaySettings", &u, NULL));
    Loyalty__V1__GatewaySettings *before = gateway_settings(m);

    /* Its one changeable field; updated_at is output only. */
    char *ids[] = {"tpl_c"};
    Loyalty__V1__GatewaySettings in = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    in.welcome_coupon_template_ids = ids;
    in.n_welcome_coupon_template_ids = 1;
    in.updated_at = 1;
    u.idempotency_key = (char *)harness_key();
    u.settings = &in;
    const char *key = u.idempotency_key;
    Loyalty__V1__GatewayUpdateSettingsResponse *ur = NULL;
    assert_ok(gw("UpdateGatewaySettings", &u, &ur));

    Loyalty__V1__GatewaySettings *after = gateway_settings(m);
    Loyalty__V1__GatewaySettings want = *before;
    want.welcome_coupon_template_ids = ids;
    want.n_welcome_coupon_template_ids = 1;
    want.updated_at = after->updated_at;
    assert_same(&want.base, &after->base, "gateway settings read back");
    assert_same(&want.base, &ur->settings->base, "gateway settings answered");
    assert_audited_one_field("gateway", m, key, "settings", "welcome_coupon_template_ids",
                             "[\"tpl_a\", \"tpl_b\"]", "[\"tpl_c\"]");

    masked_call_t c = {SVC_GATEWAY, "UpdateGatewaySettings", &u.base, &u.idempotency_key,
                       &u.update_mask};
    assert_bad_masks_refused(&c, "welcome_coupon_template_ids", "updated_at");
    assert_same(&after->base, &gateway_settings(m)->base, "gateway settings after refusals");
}

/* ---- concurrent updates ---- */

enum { WRITERS = 6, ROUNDS = 4 };

static const char *const writer_field[WRITERS] = {
    "earn_unit_cents",      "earn_points_per_unit", "pending_days", "redeem_max_order_share_bps",
    "growth_per_point_bps", "growth_per_unit"};

typedef struct writer {
    const char *merchant;
    int field;
    int64_t value;
    const char *key; /* harness_key() is not for threads: made before they start */
    pthread_barrier_t *start;
    status_t st;
} writer_t;

static void settings_set(Loyalty__V1__PointsSettings *s, int field, int64_t v) {
    switch (field) {
    case 0:
        s->earn_unit_cents = v;
        break;
    case 1:
        s->earn_points_per_unit = v;
        break;
    case 2:
        s->pending_days = (int32_t)v;
        break;
    case 3:
        s->redeem_max_order_share_bps = v;
        break;
    case 4:
        s->growth_per_point_bps = v;
        break;
    default:
        s->growth_per_unit = v;
        break;
    }
}

static int64_t settings_get(const Loyalty__V1__PointsSettings *s, int field) {
    switch (field) {
    case 0:
        return s->earn_unit_cents;
    case 1:
        return s->earn_points_per_unit;
    case 2:
        return s->pending_days;
    case 3:
        return s->redeem_max_order_share_bps;
    case 4:
        return s->growth_per_point_bps;
    default:
        return s->growth_per_unit;
    }
}

static void *writer_main(void *arg) {
    writer_t *w = arg;
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PointsSettings s = LOYALTY__V1__POINTS_SETTINGS__INIT;
    settings_set(&s, w->field, w->value);
    Loyalty__V1__PointsUpdateSettingsRequest u = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)w->merchant;
    u.idempotency_key = (char *)w->key;
    u.settings = &s;
    u.update_mask = HARNESS_MASK_OF((char **)&writer_field[w->field], 1);
    pthread_barrier_wait(w->start);
    w->st = call_in(&a, SVC_POINTS, "UpdateSettings", &u, NULL);
    arena_free(&a);
    return NULL;
}

Test(update_masks, concurrent_updates_of_different_fields_all_land) {
    /* Each update reads the settings, changes its field and writes them back; were the read
     * not under the lock every update of them takes, a writer would put back the old value of a
     * field another had just changed. */
    start(SVC_POINTS);
    const char *m = harness_merchant("mask-race");
    set_points_rules(m, 0, 0, 0);
    for (int round = 1; round <= ROUNDS; round++) {
        pthread_barrier_t start_line;
        cr_assert_eq(pthread_barrier_init(&start_line, NULL, WRITERS), 0);
        writer_t w[WRITERS];
        pthread_t t[WRITERS];
        for (int i = 0; i < WRITERS; i++) {
            w[i] = (writer_t){.merchant = m,
                              .field = i,
                              .value = 10 * round + i,
                              .key = harness_key(),
                              .start = &start_line};
            cr_assert_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
        }
        for (int i = 0; i < WRITERS; i++) {
            pthread_join(t[i], NULL);
        }
        pthread_barrier_destroy(&start_line);
        for (int i = 0; i < WRITERS; i++) {
            cr_assert_eq(w[i].st.code, STATUS_OK, "%s: %s", w[i].st.reason, w[i].st.message);
        }
        Loyalty__V1__PointsSettings *s = points_settings(m);
        for (int i = 0; i < WRITERS; i++) {
            cr_assert_eq(settings_get(s, i), 10 * round + i, "round %d: %s lost its update", round,
                         writer_field[i]);
        }
    }
}
