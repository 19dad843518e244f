/* test_promo_admin.c -- promo-svc administration over real gRPC against real PostgreSQL and
 * Redis: promotions of every type (create, get, update, pause, resume, list), shared codes and
 * cache invalidation, per-store and per-member limits, coupon templates and issuing (stock,
 * per-member allowance, idempotency, paging), settings and the merchant's calendar, and the
 * Redis outage path. */
#include "promo_client.h"

#include <pthread.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "promo-svc did not exit cleanly; see %s", svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(promo_admin, .init = setup, .fini = teardown, .timeout = 300);

#define R(x) LOYALTY__V1__PROMO_REASON__PROMO_REASON_##x
#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x

static status_t set_paused(const char *m, const char *id, bool paused,
                           Loyalty__V1__Promotion **out) {
    Loyalty__V1__PromoPausePromotionRequest req = LOYALTY__V1__PROMO_PAUSE_PROMOTION_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.promotion_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    /* Pause and Resume requests have the same fields; only the method differs. */
    status_t st = promo_call(svc.addr, paused ? "PausePromotion" : "ResumePromotion", &req.base,
                             &arena, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoPausePromotionResponse *)resp)->promotion
                                 : NULL;
    }
    return st;
}

static Loyalty__V1__Promotion *get_promotion(const char *m, const char *id) {
    Loyalty__V1__PromoGetPromotionRequest req = LOYALTY__V1__PROMO_GET_PROMOTION_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.promotion_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetPromotion", &req.base, &arena, &resp), STATUS_OK, "");
    return ((Loyalty__V1__PromoGetPromotionResponse *)resp)->promotion;
}

Test(promo_admin, every_promotion_type_round_trips) {
    /* Goal: a promotion of each of the seven types is stored with all its rule fields, its
     * type derived, and read back identically. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("types");
    Loyalty__V1__Promotion *ps[7];
    for (int i = 0; i < 7; i++) {
        ps[i] = pt_promotion(&arena, "Typed", i);
    }
    pt_percent_off(&arena, ps[0], 1500);
    ps[0]->percent_off->max_discount_cents = 2000;
    pt_amount_off(&arena, ps[1], 300);
    Loyalty__V1__PromoSpendStep s1 = LOYALTY__V1__PROMO_SPEND_STEP__INIT,
                                s2 = LOYALTY__V1__PROMO_SPEND_STEP__INIT;
    s1.threshold_cents = 20000;
    s1.discount_cents = 2000;
    s2.threshold_cents = 50000;
    s2.discount_cents = 6000;
    Loyalty__V1__PromoSpendStep *steps[] = {&s1, &s2};
    Loyalty__V1__PromoSpendThreshold st = LOYALTY__V1__PROMO_SPEND_THRESHOLD__INIT;
    st.steps = steps;
    st.n_steps = 2;
    ps[2]->rule_case = RULE(SPEND_THRESHOLD);
    ps[2]->spend_threshold = &st;
    Loyalty__V1__PromoFreeShipping fs = LOYALTY__V1__PROMO_FREE_SHIPPING__INIT;
    fs.max_discount_cents = 800;
    ps[3]->rule_case = RULE(FREE_SHIPPING);
    ps[3]->free_shipping = &fs;
    Loyalty__V1__PromoGift g = LOYALTY__V1__PROMO_GIFT__INIT;
    g.sku = "TOTE";
    g.quantity = 1;
    g.value_cents = 1500;
    Loyalty__V1__PromoGift *gifts[] = {&g};
    Loyalty__V1__PromoFreeGift fg = LOYALTY__V1__PROMO_FREE_GIFT__INIT;
    fg.gifts = gifts;
    fg.n_gifts = 1;
    ps[4]->rule_case = RULE(FREE_GIFT);
    ps[4]->free_gift = &fg;
    Loyalty__V1__PromoTierPriceEntry e = LOYALTY__V1__PROMO_TIER_PRICE_ENTRY__INIT;
    e.sku = "SKU-1";
    e.tier_id = "gold";
    e.unit_price_cents = 850;
    Loyalty__V1__PromoTierPriceEntry *entries[] = {&e};
    Loyalty__V1__PromoTierPrice tp = LOYALTY__V1__PROMO_TIER_PRICE__INIT;
    tp.prices = entries;
    tp.n_prices = 1;
    ps[5]->rule_case = RULE(TIER_PRICE);
    ps[5]->tier_price = &tp;
    Loyalty__V1__PromoBuyXGetY bx = LOYALTY__V1__PROMO_BUY_XGET_Y__INIT;
    bx.buy_quantity = 2;
    bx.get_quantity = 1;
    bx.get_discount_bps = 10000;
    ps[6]->rule_case = RULE(BUY_X_GET_Y);
    ps[6]->buy_x_get_y = &bx;
    Loyalty__V1__PromoConditions cond = LOYALTY__V1__PROMO_CONDITIONS__INIT;
    char *tiers[] = {"gold", "platinum"}, *segments[] = {"ACTIVE"}, *cats[] = {"shoes"};
    cond.tier_ids = tiers;
    cond.n_tier_ids = 2;
    cond.segments = segments;
    cond.n_segments = 1;
    cond.include_categories = cats;
    cond.n_include_categories = 1;
    cond.min_spend_cents = 100;
    ps[0]->conditions = &cond;
    ps[0]->exclusive = true;
    ps[0]->start_at = 1700000000;
    ps[0]->end_at = 4000000000;
    pt_limit(&arena, ps[0], SCOPE_MEMBER, PERIOD_DAY, 1, 0);
    const Loyalty__V1__PromoType want[] = {
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_PERCENT_OFF,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_AMOUNT_OFF,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_SPEND_THRESHOLD,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_FREE_SHIPPING,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_FREE_GIFT,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_TIER_PRICE,
        LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_BUY_X_GET_Y,
    };
    for (int i = 0; i < 7; i++) {
        Loyalty__V1__Promotion *created = NULL;
        assert_status(pt_create(svc.addr, m, &arena, ps[i], &created), STATUS_OK, "");
        cr_assert(strncmp(created->id, "prm_", 4) == 0);
        cr_assert_eq(created->type, want[i]);
        cr_assert_eq(created->status, LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE);
        cr_assert_eq(created->version, 1);
        Loyalty__V1__Promotion *got = get_promotion(m, created->id);
        cr_assert_eq(protobuf_c_message_get_packed_size(&got->base),
                     protobuf_c_message_get_packed_size(&created->base));
        cr_assert_eq(got->type, want[i]);
    }
}

Test(promo_admin, invalid_definitions_name_the_field) {
    /* Goal: bad definitions are INVALID_ARGUMENT naming the field; a taken shared code is
     * ALREADY_EXISTS CODE_TAKEN (in this merchant only); unknown ids are NOT_FOUND. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("inv");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "", 0);
    pt_amount_off(&arena, p, 100);
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PROMOTION_NAME");
    p = pt_promotion(&arena, "No rule", 0);
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PROMOTION_RULE");
    pt_percent_off(&arena, p, 10001);
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PROMOTION_PERCENT_OFF_PERCENT_OFF_BPS");
    p->percent_off->percent_off_bps = 1000;
    pt_shared_code(p, "DUP");
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_OK, "");
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_ALREADY_EXISTS, "CODE_TAKEN");
    assert_status(pt_create(svc.addr, harness_merchant("inv2"), &arena, p, NULL), STATUS_OK, "");
    Loyalty__V1__PromoGetPromotionRequest g = LOYALTY__V1__PROMO_GET_PROMOTION_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.promotion_id = "prm_nope";
    assert_status(promo_call(svc.addr, "GetPromotion", &g.base, &arena, NULL), STATUS_NOT_FOUND,
                  "PROMOTION_NOT_FOUND");
    assert_status(set_paused(m, "prm_nope", true, NULL), STATUS_NOT_FOUND, "PROMOTION_NOT_FOUND");
    /* Codes only for promotions with unique codes. */
    Loyalty__V1__Promotion *automatic = NULL;
    p = pt_promotion(&arena, "Auto", 0);
    pt_amount_off(&arena, p, 100);
    assert_status(pt_create(svc.addr, m, &arena, p, &automatic), STATUS_OK, "");
    Loyalty__V1__PromoGeneratePromoCodesRequest gen =
        LOYALTY__V1__PROMO_GENERATE_PROMO_CODES_REQUEST__INIT;
    gen.merchant_id = (char *)m;
    gen.idempotency_key = (char *)harness_key();
    gen.promotion_id = automatic->id;
    gen.count = 1;
    assert_status(promo_call(svc.addr, "GeneratePromoCodes", &gen.base, &arena, NULL),
                  STATUS_FAILED_PRECONDITION, "NOT_CODE_PROMOTION");
}

Test(promo_admin, update_pause_resume_and_the_caches_follow) {
    /* Goal: an update replaces the definition (version checked), moves the shared code (the
     * old code becomes unknown at once, through the cache), and pause / resume take effect on
     * the very next quote; pausing twice answers the same. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("upd");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Spring", 0), *created = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "SPRING");
    assert_status(pt_create(svc.addr, m, &arena, p, &created), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_u");
    pt_line(&arena, cart, "SKU-1", 1, 1000);
    cart->codes[cart->n_codes++] = "SPRING";
    Loyalty__V1__PromoQuoteResult *q = NULL;
    for (int i = 0; i < 2; i++) { /* fill the caches */
        assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
        cr_assert_eq(q->promotion_discount_cents, 100);
    }
    Loyalty__V1__Promotion *next = pt_promotion(&arena, "Summer", 0);
    pt_amount_off(&arena, next, 250);
    pt_shared_code(next, "SUMMER");
    next->id = created->id;
    Loyalty__V1__PromoUpdatePromotionRequest up = LOYALTY__V1__PROMO_UPDATE_PROMOTION_REQUEST__INIT;
    up.merchant_id = (char *)m;
    up.idempotency_key = (char *)harness_key();
    up.promotion = next;
    up.update_mask = HARNESS_MASK("name", "description", "trigger", "priority", "exclusive",
                                  "start_at", "end_at", "conditions", "percent_off", "amount_off",
                                  "spend_threshold", "free_shipping", "free_gift", "tier_price",
                                  "buy_x_get_y", "code_kind", "code", "limits");
    up._expected_version_case =
        LOYALTY__V1__PROMO_UPDATE_PROMOTION_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    up.expected_version = 7;
    assert_status(promo_call(svc.addr, "UpdatePromotion", &up.base, &arena, NULL), STATUS_ABORTED,
                  "VERSION_MISMATCH");
    up.idempotency_key = (char *)harness_key();
    up.expected_version = 1;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "UpdatePromotion", &up.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__Promotion *updated =
        ((Loyalty__V1__PromoUpdatePromotionResponse *)resp)->promotion;
    cr_assert_eq(updated->version, 2);
    cr_assert_str_eq(updated->name, "Summer");
    cr_assert_eq(updated->created_at, created->created_at);
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->considered[0]->reason, R(CODE_UNKNOWN), "old code gone");
    cart->codes[0] = "summer";
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->promotion_discount_cents, 250);

    Loyalty__V1__Promotion *paused = NULL;
    assert_status(set_paused(m, created->id, true, &paused), STATUS_OK, "");
    cr_assert_eq(paused->status, LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED);
    assert_status(set_paused(m, created->id, true, &paused), STATUS_OK, "");
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->considered[0]->reason, R(PAUSED));
    assert_status(set_paused(m, created->id, false, NULL), STATUS_OK, "");
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->promotion_discount_cents, 250);

    /* An automatic promotion created after the active set was cached shows up at once. */
    Loyalty__V1__Promotion *a = pt_promotion(&arena, "Auto", 0);
    pt_amount_off(&arena, a, 5);
    assert_status(pt_create(svc.addr, m, &arena, a, NULL), STATUS_OK, "");
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->promotion_discount_cents, 255);
}

Test(promo_admin, unique_code_promotions_keep_their_kind) {
    /* Goal: a promotion with unique codes cannot switch to a shared code or automatic. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("ukind");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Mailing", 0), *created = NULL;
    pt_amount_off(&arena, p, 100);
    pt_unique_codes(p);
    assert_status(pt_create(svc.addr, m, &arena, p, &created), STATUS_OK, "");
    Loyalty__V1__Promotion *next = pt_promotion(&arena, "Mailing", 0);
    pt_amount_off(&arena, next, 100);
    pt_shared_code(next, "NOWSHARED");
    next->id = created->id;
    Loyalty__V1__PromoUpdatePromotionRequest up = LOYALTY__V1__PROMO_UPDATE_PROMOTION_REQUEST__INIT;
    up.merchant_id = (char *)m;
    up.idempotency_key = (char *)harness_key();
    up.promotion = next;
    up.update_mask = HARNESS_MASK("code_kind", "code");
    assert_status(promo_call(svc.addr, "UpdatePromotion", &up.base, &arena, NULL),
                  STATUS_FAILED_PRECONDITION, "UNIQUE_CODES_EXIST");
}

Test(promo_admin, list_promotions_pages_and_filters) {
    /* Goal: newest first, in pages that neither skip nor repeat, filtered by status and
     * trigger; a bad cursor or page size is INVALID_ARGUMENT. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("list");
    char *ids[7];
    for (int i = 0; i < 7; i++) {
        Loyalty__V1__Promotion *p = pt_promotion(&arena, "Listed", 0), *c = NULL;
        pt_amount_off(&arena, p, 100 + i);
        if (i % 2) {
            pt_shared_code(p, arena_printf(&arena, "CODE%d", i));
        }
        assert_status(pt_create(svc.addr, m, &arena, p, &c), STATUS_OK, "");
        ids[i] = c->id;
    }
    assert_status(set_paused(m, ids[0], true, NULL), STATUS_OK, "");
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 3;
    Loyalty__V1__PromoListPromotionsRequest req = LOYALTY__V1__PROMO_LIST_PROMOTIONS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.page = &page;
    int seen = 0;
    for (int pages = 0; pages < 5; pages++) {
        ProtobufCMessage *resp = NULL;
        assert_status(promo_call(svc.addr, "ListPromotions", &req.base, &arena, &resp), STATUS_OK,
                      "");
        Loyalty__V1__PromoListPromotionsResponse *lr = (void *)resp;
        for (size_t i = 0; i < lr->n_promotions; i++) {
            cr_assert_str_eq(lr->promotions[i]->id, ids[6 - seen], "newest first");
            seen++;
        }
        if (lr->page_info->next_cursor[0] == '\0') {
            break;
        }
        page.cursor = lr->page_info->next_cursor;
    }
    cr_assert_eq(seen, 7);
    req.page = NULL;
    req.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "ListPromotions", &req.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__PromoListPromotionsResponse *)resp)->n_promotions, 3);
    req.trigger = 0;
    req.status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED;
    assert_status(promo_call(svc.addr, "ListPromotions", &req.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__PromoListPromotionsResponse *)resp)->n_promotions, 1);
    page.page_size = 501;
    page.cursor = "";
    req.page = &page;
    assert_status(promo_call(svc.addr, "ListPromotions", &req.base, &arena, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_PAGE_PAGE_SIZE");
    page.page_size = 0;
    page.cursor = "not*a*cursor";
    assert_status(promo_call(svc.addr, "ListPromotions", &req.base, &arena, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_PAGE_CURSOR");
}

Test(promo_admin, at_most_200_active_promotions) {
    /* Goal: the 201st active promotion is RESOURCE_EXHAUSTED; pausing one makes room, and
     * resuming it again is refused while full. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("cap");
    char *first = NULL;
    for (int i = 0; i < 200; i++) {
        Loyalty__V1__Promotion *p = pt_promotion(&arena, "Many", 0), *c = NULL;
        pt_amount_off(&arena, p, 1);
        assert_status(pt_create(svc.addr, m, &arena, p, &c), STATUS_OK, "");
        first = first ? first : c->id;
    }
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "One too many", 0);
    pt_amount_off(&arena, p, 1);
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_RESOURCE_EXHAUSTED,
                  "TOO_MANY_PROMOTIONS");
    assert_status(set_paused(m, first, true, NULL), STATUS_OK, "");
    assert_status(pt_create(svc.addr, m, &arena, p, NULL), STATUS_OK, "");
    assert_status(set_paused(m, first, false, NULL), STATUS_RESOURCE_EXHAUSTED,
                  "TOO_MANY_PROMOTIONS");
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_cap");
    pt_line(&arena, cart, "SKU-1", 1, 100000);
    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->n_considered, 200);
    cr_assert_eq(q->promotion_discount_cents, 200);
}

Test(promo_admin, store_and_member_limits_need_their_key) {
    /* Goal: a per-store limit counts each store apart and a cart without a store cannot use
     * it (STORE_REQUIRED); a per-member limit needs a member (MEMBER_REQUIRED). */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("scope");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Store opening", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_limit(&arena, p, SCOPE_STORE, PERIOD_LIFETIME, 1, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "");
    pt_line(&arena, cart, "SKU-1", 1, 1000);
    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->considered[0]->reason, R(STORE_REQUIRED));
    Loyalty__V1__PromoReservation *r = NULL;
    cart->store_id = "s1";
    assert_status(pt_reserve(svc.addr, m, &arena, "s1-a", NULL, cart, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->quote->promotion_discount_cents, 100);
    assert_status(pt_reserve(svc.addr, m, &arena, "s1-b", NULL, cart, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->quote->promotion_discount_cents, 0, "store s1 used its one");
    cr_assert_eq(r->quote->considered[0]->reason, R(LIMIT_REACHED));
    cart->store_id = "s2";
    assert_status(pt_reserve(svc.addr, m, &arena, "s2-a", NULL, cart, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->quote->promotion_discount_cents, 100);

    Loyalty__V1__Promotion *mp = pt_promotion(&arena, "Members", 0);
    pt_amount_off(&arena, mp, 50);
    pt_shared_code(mp, "MEMBERS");
    pt_limit(&arena, mp, SCOPE_MEMBER, PERIOD_DAY, 1, 0);
    assert_status(pt_create(svc.addr, m, &arena, mp, NULL), STATUS_OK, "");
    cart->codes[cart->n_codes++] = "MEMBERS";
    assert_status(pt_reserve(svc.addr, m, &arena, "g-1", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "MEMBER_REQUIRED");
    cart->member_id = "mbr_day";
    assert_status(pt_reserve(svc.addr, m, &arena, "g-1", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "g-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "LIMIT_REACHED");
}

Test(promo_admin, day_periods_follow_the_merchants_time_zone) {
    /* Goal: settings default to UTC and refunds giving everything back; an unknown zone is
     * refused; a DAY limit counts in the merchant's calendar (the counter's period is today's
     * date in that zone). */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("tz");
    Loyalty__V1__PromoGetSettingsRequest g = LOYALTY__V1__PROMO_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetPromoSettings", &g.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoSettings *s = ((Loyalty__V1__PromoGetSettingsResponse *)resp)->settings;
    cr_assert_str_eq(s->time_zone, "UTC");
    cr_assert(s->refund_restores_usage && s->refund_restores_coupons);
    Loyalty__V1__PromoSettings ns = LOYALTY__V1__PROMO_SETTINGS__INIT;
    ns.time_zone = "Mars/Olympus_Mons";
    Loyalty__V1__PromoUpdateSettingsRequest up = LOYALTY__V1__PROMO_UPDATE_SETTINGS_REQUEST__INIT;
    up.merchant_id = (char *)m;
    up.idempotency_key = (char *)harness_key();
    up.settings = &ns;
    up.update_mask = HARNESS_MASK("time_zone", "refund_restores_usage", "refund_restores_coupons");
    assert_status(promo_call(svc.addr, "UpdatePromoSettings", &up.base, &arena, NULL),
                  STATUS_FAILED_PRECONDITION, "INVALID_TIME_ZONE");
    ns.time_zone = "Pacific/Kiritimati"; /* UTC+14: often a different date than UTC */
    up.idempotency_key = (char *)harness_key();
    assert_status(promo_call(svc.addr, "UpdatePromoSettings", &up.base, &arena, NULL), STATUS_OK,
                  "");
    assert_status(promo_call(svc.addr, "GetPromoSettings", &g.base, &arena, &resp), STATUS_OK, "");
    s = ((Loyalty__V1__PromoGetSettingsResponse *)resp)->settings;
    cr_assert_str_eq(s->time_zone, "Pacific/Kiritimati");
    cr_assert(!s->refund_restores_usage);

    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Daily", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_DAY, 5, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_tz");
    pt_line(&arena, cart, "SKU-1", 1, 1000);
    assert_status(pt_reserve(svc.addr, m, &arena, "tz-1", NULL, cart, 0, NULL), STATUS_OK, "");
    cr_assert_eq(pt_sql_int("SELECT count(*) FROM promo.usage_counters WHERE merchant_id = $1 "
                            "AND promotion_id = $2 AND period_key = 'D' || to_char(now() AT "
                            "TIME ZONE 'Pacific/Kiritimati', 'YYYY-MM-DD')",
                            m, promo->id),
                 1);
}

/* ---- coupon templates and issuing ---- */

typedef struct issue_arg {
    const char *addr, *merchant, *template_id;
    int index;
    status_t st;
} issue_arg_t;

static void *issue_main(void *p) {
    issue_arg_t *a = p;
    arena_t ar;
    arena_init(&ar);
    char member[32];
    snprintf(member, sizeof member, "mbr_%02d", a->index);
    a->st =
        pt_issue(a->addr, a->merchant, &ar, member, a->template_id, SOURCE_POINTS_MALL, NULL, NULL);
    arena_free(&ar);
    rpc_client_thread_cleanup();
    return NULL;
}

Test(promo_admin, coupon_stock_holds_under_parallel_issues) {
    /* Goal: a points-mall template with 20 in stock, 50 parallel IssueCoupon calls: exactly 20
     * coupons, the rest TEMPLATE_OUT_OF_STOCK, issued_count 20. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("stock");
    Loyalty__V1__PromoCouponTemplate *t = pt_amount_template(&arena, 500, 0), *created = NULL;
    t->total_max = 20;
    assert_status(pt_template(svc.addr, m, &arena, t, &created), STATUS_OK, "");
    issue_arg_t args[50];
    pthread_t threads[50];
    for (int i = 0; i < 50; i++) {
        args[i] = (issue_arg_t){svc.addr, m, created->id, i, {0}};
        cr_assert_eq(pthread_create(&threads[i], NULL, issue_main, &args[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        pthread_join(threads[i], NULL);
        if (status_is_ok(&args[i].st)) {
            ok++;
        } else {
            assert_status(args[i].st, STATUS_FAILED_PRECONDITION, "TEMPLATE_OUT_OF_STOCK");
        }
    }
    cr_assert_eq(ok, 20);
    Loyalty__V1__PromoGetCouponTemplateRequest g =
        LOYALTY__V1__PROMO_GET_COUPON_TEMPLATE_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.template_id = created->id;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetCouponTemplate", &g.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(
        ((Loyalty__V1__PromoGetCouponTemplateResponse *)resp)->coupon_template->issued_count, 20);
}

Test(promo_admin, issuing_coupons) {
    /* Goal: IssueCoupon copies the template's terms, validity counts from issue, the same key
     * issues once, a member's allowance and a paused template refuse; ListCoupons pages a
     * member's coupons newest first and filters by status. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("issue");
    Loyalty__V1__PromoCouponTemplate *t = pt_amount_template(&arena, 500, 2000), *tpl = NULL;
    t->per_member_max = 3;
    assert_status(pt_template(svc.addr, m, &arena, t, &tpl), STATUS_OK, "");
    cr_assert(tpl->active);
    Loyalty__V1__PromoCoupon *a = NULL, *b = NULL;
    assert_status(
        pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, SOURCE_WELCOME, "welcome-mbr_1", &a),
        STATUS_OK, "");
    assert_status(
        pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, SOURCE_WELCOME, "welcome-mbr_1", &b),
        STATUS_OK, "");
    cr_assert_str_eq(a->id, b->id, "the same key issues once");
    cr_assert_eq(a->amount_off_cents, 500);
    cr_assert_eq(a->min_spend_cents, 2000);
    cr_assert_eq(a->source, SOURCE_WELCOME);
    cr_assert_eq(a->valid_until_at - a->valid_from_at, 30 * 86400);
    cr_assert_eq(a->valid_from_at, a->issued_at);
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, 0, NULL, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SOURCE");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", "ctpl_nope", SOURCE_WELCOME, NULL, NULL),
                  STATUS_NOT_FOUND, "TEMPLATE_NOT_FOUND");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, SOURCE_POINTS_MALL, NULL, NULL),
                  STATUS_OK, "");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, SOURCE_POINTS_MALL, NULL, NULL),
                  STATUS_OK, "");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", tpl->id, SOURCE_POINTS_MALL, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_LIMIT_REACHED");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_2", tpl->id, SOURCE_POINTS_MALL, NULL, NULL),
                  STATUS_OK, "");

    Loyalty__V1__PromoSetCouponTemplateActiveRequest sa =
        LOYALTY__V1__PROMO_SET_COUPON_TEMPLATE_ACTIVE_REQUEST__INIT;
    sa.merchant_id = (char *)m;
    sa.idempotency_key = (char *)harness_key();
    sa.template_id = tpl->id;
    sa.active = false;
    assert_status(promo_call(svc.addr, "SetCouponTemplateActive", &sa.base, &arena, NULL),
                  STATUS_OK, "");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_3", tpl->id, SOURCE_WELCOME, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "TEMPLATE_PAUSED");

    /* mbr_1 holds 3: one reserved by a checkout, two available. */
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_1");
    pt_line(&arena, cart, "SKU-1", 1, 3000);
    cart->coupon_ids[cart->n_coupon_ids++] = a->id;
    assert_status(pt_reserve(svc.addr, m, &arena, "lc-1", NULL, cart, 0, NULL), STATUS_OK, "");
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 2;
    Loyalty__V1__PromoListCouponsRequest lc = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    lc.merchant_id = (char *)m;
    lc.member_id = "mbr_1";
    lc.page = &page;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "ListCoupons", &lc.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoListCouponsResponse *lr = (void *)resp;
    cr_assert_eq(lr->n_coupons, 2);
    cr_assert(strcmp(lr->coupons[0]->id, lr->coupons[1]->id) > 0, "newest first");
    cr_assert_neq(lr->page_info->next_cursor[0], '\0');
    page.cursor = lr->page_info->next_cursor;
    assert_status(promo_call(svc.addr, "ListCoupons", &lc.base, &arena, &resp), STATUS_OK, "");
    lr = (void *)resp;
    cr_assert_eq(lr->n_coupons, 1);
    cr_assert_str_eq(lr->coupons[0]->id, a->id, "the oldest last");
    cr_assert_eq(lr->coupons[0]->status,
                 LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_RESERVED);
    cr_assert_str_eq(lr->page_info->next_cursor, "");
    lc.page = NULL;
    lc.status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE;
    assert_status(promo_call(svc.addr, "ListCoupons", &lc.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__PromoListCouponsResponse *)resp)->n_coupons, 2);
    lc.member_id = "";
    assert_status(promo_call(svc.addr, "ListCoupons", &lc.base, &arena, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_MEMBER_ID");

    Loyalty__V1__PromoListCouponTemplatesRequest lt =
        LOYALTY__V1__PROMO_LIST_COUPON_TEMPLATES_REQUEST__INIT;
    lt.merchant_id = (char *)m;
    assert_status(promo_call(svc.addr, "ListCouponTemplates", &lt.base, &arena, &resp), STATUS_OK,
                  "");
    Loyalty__V1__PromoListCouponTemplatesResponse *tl = (void *)resp;
    cr_assert_eq(tl->n_templates, 1);
    cr_assert(!tl->templates[0]->active);
    cr_assert_eq(tl->templates[0]->issued_count, 4);
}

Test(promo_admin, quotes_survive_a_redis_outage) {
    /* Goal: with Redis stopped, Quote and Reserve work from PostgreSQL; a pause during the
     * outage is seen at once, and no stale entry is served after Redis returns. */
    redis_proc_t redis;
    harness_redis_start(&redis);
    char url_env[96];
    snprintf(url_env, sizeof url_env, "LOYALTY_REDIS_URL=%s", redis.url);
    const char *env[] = {url_env, NULL};
    harness_start(&svc, "promo-svc", env);
    const char *m = harness_merchant("redis");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Cached", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "CACHED");
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_r");
    pt_line(&arena, cart, "SKU-1", 1, 1000);
    cart->codes[cart->n_codes++] = "CACHED";
    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, ""); /* fills */
    harness_redis_stop(&redis);
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->promotion_discount_cents, 100);
    assert_status(set_paused(m, promo->id, true, NULL), STATUS_OK, "");
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->considered[0]->reason, R(PAUSED));
    assert_status(set_paused(m, promo->id, false, NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "r-1", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(set_paused(m, promo->id, true, NULL), STATUS_OK, "");
    harness_redis_restart(&redis);
    usleep(1200 * 1000); /* past the reconnect back-off */
    for (int i = 0; i < 3; i++) {
        assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
        cr_assert_eq(q->considered[0]->reason, R(PAUSED), "no stale active set");
    }
    cr_assert_eq(harness_stop(&svc), 0);
    harness_redis_stop(&redis);
}
