/* test_points_orders.c -- points-svc order flows over real gRPC: earn rules with every factor
 * (QuoteEarn = Earn), campaigns, pending points, ReverseOrder (pro rata claw-back, restores into
 * the original lots, partial reversals capped at 100%, debt), check-in once a day, ImportLots,
 * Adjust, cash redemption rules on holds, settings, calendar expiry in the merchant's time zone,
 * and idempotent retries. Every test ends with a clean VerifyLedger. */
#include "points_it.h"

TestSuite(points_orders, .init = pt_setup, .fini = pt_teardown, .timeout = 120);

static Loyalty__V1__PointsEarnBreakdown *quote_order(const char *m, int64_t paid, const char *tier,
                                                     int64_t tier_bps) {
    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = paid;
    o.tier_id = (char *)tier;
    o.tier_multiplier_bps = tier_bps;
    Loyalty__V1__PointsQuoteEarnRequest req = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.what_case = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__WHAT_ORDER;
    req.order = &o;
    Loyalty__V1__PointsQuoteEarnResponse *r = NULL;
    assert_ok(pcall("QuoteEarn", &req, &r));
    return r->breakdown;
}

static Loyalty__V1__PointsCampaign *create_campaign(const char *m, const char *name, int64_t bps,
                                                    const char *start, const char *end,
                                                    char **tiers, size_t n_tiers) {
    Loyalty__V1__PointsCampaign c = LOYALTY__V1__POINTS_CAMPAIGN__INIT;
    c.name = (char *)name;
    c.multiplier_bps = bps;
    c.start_date = (char *)start;
    c.end_date = (char *)end;
    c.tier_ids = tiers;
    c.n_tier_ids = n_tiers;
    Loyalty__V1__PointsCreateCampaignRequest req =
        LOYALTY__V1__POINTS_CREATE_CAMPAIGN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.campaign = &c;
    Loyalty__V1__PointsCreateCampaignResponse *r = NULL;
    assert_ok(pcall("CreateCampaign", &req, &r));
    return r->campaign;
}

static const char *utc_day(int offset) {
    char off[16];
    snprintf(off, sizeof off, "%d", offset);
    return pt_sql_value("SELECT to_char((now() AT TIME ZONE 'UTC')::date + $1::int, "
                        "'YYYY-MM-DD')",
                        off, NULL);
}

Test(points_orders, quote_and_earn_show_every_factor) {
    /* Goal: an order of 123.45 at a 1.5x tier with a 100-point order bonus and 0.5 growth per
     * point plus 2 per unit: QuoteEarn and Earn agree on every factor; growth is returned for
     * member-svc and recorded in the growth history. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rules");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    Loyalty__V1__PointsEventRule bonus = LOYALTY__V1__POINTS_EVENT_RULE__INIT;
    bonus.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER;
    bonus.points = 100;
    Loyalty__V1__PointsEventRule *rules[] = {&bonus};
    s.event_rules = rules;
    s.n_event_rules = 1;
    s.growth_per_point_bps = 5000;
    s.growth_per_unit = 2;
    assert_ok(pt_put_settings(m, &s));
    Loyalty__V1__PointsEarnBreakdown *q = quote_order(m, 12345, "gold", 15000);
    cr_assert_eq(q->units, 123);
    cr_assert_eq(q->base_points, 123);
    cr_assert_eq(q->tier_multiplier_bps, 15000);
    cr_assert_eq(q->campaign_multiplier_bps, 10000);
    cr_assert_eq(q->multiplied_points, 184); /* 184.5 floors */
    cr_assert_eq(q->event_points, 100);
    cr_assert_eq(q->points, 284);
    cr_assert_eq(q->growth_from_points, 142);
    cr_assert_eq(q->growth_from_spend, 246);
    cr_assert_eq(q->growth, 388);

    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = 12345;
    o.tier_id = "gold";
    o.tier_multiplier_bps = 15000;
    Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = "mbr-1";
    req.reference = "order-77";
    req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER;
    req.order = &o;
    Loyalty__V1__PointsEarnResponse *e = NULL;
    assert_ok(pcall("Earn", &req, &e));
    cr_assert_eq(e->points, 284);
    cr_assert_eq(e->growth_delta, 388);
    cr_assert_eq(e->breakdown->multiplied_points, 184);
    cr_assert_eq(e->lot->source, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER);
    cr_assert_str_eq(e->lot->reference, "order-77");
    cr_assert_eq(e->balance->growth, 388);
    cr_assert_eq(e->balance->lifetime_earned, 284);

    Loyalty__V1__PointsListGrowthHistoryRequest g =
        LOYALTY__V1__POINTS_LIST_GROWTH_HISTORY_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.member_id = "mbr-1";
    Loyalty__V1__PointsListGrowthHistoryResponse *gr = NULL;
    assert_ok(pcall("ListGrowthHistory", &g, &gr));
    cr_assert_eq(gr->n_entries, 1);
    cr_assert_eq(gr->entries[0]->growth, 388);
    cr_assert_eq(gr->entries[0]->growth_after, 388);
    cr_assert_str_eq(gr->entries[0]->reference, "order-77");

    /* An order below one unit earns only the bonus; the same reference cannot earn twice. */
    cr_assert_eq(quote_order(m, 99, "", 0)->points, 100);
    req.idempotency_key = (char *)harness_key();
    assert_status(pcall("Earn", &req, NULL), STATUS_ALREADY_EXISTS, "ALREADY_EARNED");
    /* Event quotes. */
    Loyalty__V1__PointsQuoteEarnRequest ev = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__INIT;
    ev.merchant_id = (char *)m;
    ev.what_case = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__WHAT_EVENT;
    ev.event = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_BIRTHDAY;
    Loyalty__V1__PointsQuoteEarnResponse *er = NULL;
    assert_ok(pcall("QuoteEarn", &ev, &er));
    cr_assert_eq(er->breakdown->points, 0, "no birthday rule");
    pt_assert_ledger_clean(m);
}

Test(points_orders, highest_campaign_applies_until_ended) {
    /* Goal: overlapping campaigns do not compound (the highest applies), tier-limited ones only
     * for their tiers, ended ones no more; ListCampaigns pages newest first. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("camp");
    pt_configure(m);
    const char *today = utc_day(0), *week = utc_day(6);
    char *gold[] = {"gold"};
    Loyalty__V1__PointsCampaign *dbl = create_campaign(m, "Double", 20000, today, week, NULL, 0);
    Loyalty__V1__PointsCampaign *tri =
        create_campaign(m, "Gold triple", 30000, today, week, gold, 1);
    create_campaign(m, "Next month", 50000, utc_day(40), utc_day(45), NULL, 0);
    cr_assert(strncmp(dbl->id, "cmp_", 4) == 0);
    cr_assert(dbl->active);
    Loyalty__V1__PointsEarnBreakdown *q = quote_order(m, 1000, "silver", 0);
    cr_assert_eq(q->campaign_multiplier_bps, 20000);
    cr_assert_str_eq(q->campaign_id, dbl->id);
    cr_assert_eq(q->points, 20);
    q = quote_order(m, 1000, "gold", 12000);
    cr_assert_eq(q->campaign_multiplier_bps, 30000);
    cr_assert_str_eq(q->campaign_id, tri->id);
    cr_assert_eq(q->points, 36); /* 10 * 1.2 * 3 */

    Loyalty__V1__PointsEndCampaignRequest end = LOYALTY__V1__POINTS_END_CAMPAIGN_REQUEST__INIT;
    end.merchant_id = (char *)m;
    end.idempotency_key = (char *)harness_key();
    end.campaign_id = tri->id;
    Loyalty__V1__PointsEndCampaignResponse *er = NULL;
    assert_ok(pcall("EndCampaign", &end, &er));
    cr_assert(!er->campaign->active);
    cr_assert_eq(quote_order(m, 1000, "gold", 12000)->campaign_multiplier_bps, 20000);
    end.idempotency_key = (char *)harness_key();
    end.campaign_id = "cmp_nope";
    assert_status(pcall("EndCampaign", &end, NULL), STATUS_NOT_FOUND, "CAMPAIGN_NOT_FOUND");

    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 2;
    Loyalty__V1__PointsListCampaignsRequest list = LOYALTY__V1__POINTS_LIST_CAMPAIGNS_REQUEST__INIT;
    list.merchant_id = (char *)m;
    list.page = &page;
    Loyalty__V1__PointsListCampaignsResponse *lr = NULL;
    assert_ok(pcall("ListCampaigns", &list, &lr));
    cr_assert_eq(lr->n_campaigns, 2, "active ones only");
    cr_assert_str_eq(lr->campaigns[1]->id, dbl->id);
    cr_assert_str_eq(lr->page_info->next_cursor, "");
    list.include_inactive = true;
    assert_ok(pcall("ListCampaigns", &list, &lr));
    cr_assert_eq(lr->n_campaigns, 2);
    cr_assert_str_eq(lr->campaigns[1]->id, tri->id);
    page.cursor = lr->page_info->next_cursor;
    assert_ok(pcall("ListCampaigns", &list, &lr));
    cr_assert_eq(lr->n_campaigns, 1);
    cr_assert_str_eq(lr->campaigns[0]->id, dbl->id);

    Loyalty__V1__PointsCampaign bad = LOYALTY__V1__POINTS_CAMPAIGN__INIT;
    bad.name = "Bad";
    bad.multiplier_bps = 20000;
    bad.start_date = (char *)week;
    bad.end_date = (char *)today;
    Loyalty__V1__PointsCreateCampaignRequest creq =
        LOYALTY__V1__POINTS_CREATE_CAMPAIGN_REQUEST__INIT;
    creq.merchant_id = (char *)m;
    creq.idempotency_key = (char *)harness_key();
    creq.campaign = &bad;
    assert_status(pcall("CreateCampaign", &creq, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_CAMPAIGN_END_DATE");
}

Test(points_orders, pending_points_cannot_be_spent_until_the_window_ends) {
    /* Goal: order points stay PENDING for pending_days: shown, not spendable; after the window
     * they become available (lazily at the next read) with a MATURE entry. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("pend");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    s.pending_days = 7;
    assert_ok(pt_put_settings(m, &s));
    Loyalty__V1__PointsEarnResponse *e = NULL;
    assert_ok(pt_earn_order(m, "mbr-1", "ord-p1", 25000, NULL, &e));
    cr_assert_eq(e->lot->status, LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING);
    cr_assert(e->lot->available_at >= e->lot->earned_at + 7 * 86400 - 3700, "about 7 days");
    cr_assert_eq(e->breakdown->pending_days, 7);
    assert_balance(m, "mbr-1", 0, 0, 250);
    cr_assert_eq(pt_balance(m, "mbr-1")->lifetime_earned, 250);
    assert_status(pt_hold(m, "mbr-1", 1, "cart", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    /* Points granted with an explicit 0-day window are available at once. */
    Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = "mbr-1";
    req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    req.points = 5;
    req._pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
    req.pending_days = 0;
    assert_ok(pcall("Earn", &req, NULL));
    assert_balance(m, "mbr-1", 5, 0, 250);
    pt_age_pending(m, "mbr-1");
    assert_balance(m, "mbr-1", 255, 0, 0);
    Loyalty__V1__PointsListHistoryResponse *h = pt_history(m, "mbr-1");
    cr_assert_eq(h->entries[0]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_MATURE);
    cr_assert_eq(h->entries[0]->pending_delta, -250);
    cr_assert_eq(h->entries[0]->available_delta, 250);
    cr_assert_str_eq(h->entries[0]->reference, "ord-p1");
    assert_ok(pt_hold(m, "mbr-1", 255, "cart", 60, NULL));
    pt_assert_ledger_clean(m);
}

Test(points_orders, reverse_returns_pending_points_by_cancelling_them) {
    /* Goal: a return inside the window cancels pending points pro rata (50% + 50%), the lot
     * ends CANCELLED, growth is taken back, nothing else is touched. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("revp");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    s.pending_days = 14;
    assert_ok(pt_put_settings(m, &s));
    pt_earn_points(m, "mbr-1", 40, NULL);
    Loyalty__V1__PointsEarnResponse *e = NULL;
    assert_ok(pt_earn_order(m, "mbr-1", "ord-r1", 10100, NULL, &e));
    cr_assert_eq(e->points, 101);
    Loyalty__V1__PointsReverseOrderResponse *r = NULL;
    assert_ok(pt_reverse_key(m, "ord-r1", 5000, harness_key(), &r));
    cr_assert_eq(r->pending_cancelled, 50);
    cr_assert_eq(r->points_clawed_back, 0);
    cr_assert_eq(r->growth_delta, -50);
    cr_assert_eq(r->reversed_bps_total, 5000);
    assert_balance(m, "mbr-1", 40, 0, 51);
    assert_ok(pt_reverse_key(m, "ord-r1", 5000, harness_key(), &r));
    cr_assert_eq(r->pending_cancelled, 51, "the cumulative floor gives the rest");
    cr_assert_eq(r->growth_delta, -51);
    assert_balance(m, "mbr-1", 40, 0, 0);
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->growth, 0);
    cr_assert_eq(b->lifetime_earned, 40);
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", true);
    bool cancelled = false;
    for (size_t i = 0; i < lots->n_lots; i++) {
        if (strcmp(lots->lots[i]->id, e->lot->id) == 0) {
            cancelled = lots->lots[i]->status ==
                        LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_CANCELLED;
        }
    }
    cr_assert(cancelled);
    assert_status(pt_reverse_key(m, "ord-r1", 1, harness_key(), NULL), STATUS_FAILED_PRECONDITION,
                  "REVERSAL_EXCEEDS_ORDER");
    pt_assert_ledger_clean(m);
}

Test(points_orders, reverse_claws_back_and_restores_pro_rata) {
    /* Goal: an order earned 100 points and redeemed 50 (hold + commit on the same reference);
     * reversing 30% restores 15 into the lot they came from (with its expiry) and claws back
     * 30; then 70% more reverses exactly the rest; more than 100% is refused; replaying a
     * reversal's key answers the same without applying twice. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rev");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *old = pt_earn_points(m, "mbr-1", 60, "2030-12-31");
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 50, "ord-9", 60, &h));
    cr_assert_str_eq(h->lots[0]->lot_id, old->lot->id);
    assert_ok(pt_commit(m, h->id, NULL, NULL));
    Loyalty__V1__PointsEarnResponse *e = NULL;
    assert_ok(pt_earn_order(m, "mbr-1", "ord-9", 10000, NULL, &e));
    cr_assert_eq(e->points, 100);
    assert_balance(m, "mbr-1", 110, 0, 0); /* 10 left of the old lot + 100 */

    const char *key = harness_key();
    Loyalty__V1__PointsReverseOrderResponse *r = NULL;
    assert_ok(pt_reverse_key(m, "ord-9", 3000, key, &r));
    cr_assert_str_eq(r->member_id, "mbr-1");
    cr_assert_eq(r->points_restored, 15);
    cr_assert_eq(r->points_clawed_back, 30);
    cr_assert_eq(r->debt_added, 0);
    cr_assert_eq(r->growth_delta, -30);
    cr_assert_eq(r->balance->available, 95);
    Loyalty__V1__PointsReverseOrderResponse *again = NULL;
    assert_ok(pt_reverse_key(m, "ord-9", 3000, key, &again));
    cr_assert_eq(again->reversed_bps_total, 3000, "a replay does not reverse again");
    cr_assert_eq(again->balance->available, 95);
    assert_balance(m, "mbr-1", 95, 0, 0);
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", false);
    cr_assert_eq(lots->n_lots, 2);
    cr_assert_str_eq(lots->lots[0]->id, old->lot->id, "restored into the original lot");
    cr_assert_eq(lots->lots[0]->remaining, 25);
    cr_assert_str_eq(lots->lots[0]->expiry_date, "2030-12-31");
    cr_assert_str_eq(lots->lots[1]->id, e->lot->id);
    cr_assert_eq(lots->lots[1]->remaining, 70, "claw-back takes the order's own lot first");

    assert_ok(pt_reverse_key(m, "ord-9", 7000, harness_key(), &r));
    cr_assert_eq(r->points_restored, 35);
    cr_assert_eq(r->points_clawed_back, 70);
    cr_assert_eq(r->reversed_bps_total, 10000);
    assert_balance(m, "mbr-1", 60, 0, 0);
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->lifetime_earned, 60);
    cr_assert_eq(b->growth, 0);
    assert_status(pt_reverse_key(m, "ord-9", 1, harness_key(), NULL), STATUS_FAILED_PRECONDITION,
                  "REVERSAL_EXCEEDS_ORDER");
    assert_status(pt_reverse_key(m, "ord-none", 100, harness_key(), NULL), STATUS_NOT_FOUND,
                  "ORDER_NOT_FOUND");
    assert_status(pt_reverse_key(m, "ord-9", 0, harness_key(), NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SHARE_BPS");
    pt_assert_ledger_clean(m);
}

Test(points_orders, claw_back_of_spent_points_shows_debt) {
    /* Goal: when the points of a returned order were already spent, the claw-back makes the
     * balance negative (debt, shown), and the next points credited pay the debt first. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("debt");
    pt_configure(m);
    assert_ok(pt_earn_order(m, "mbr-1", "ord-d", 10000, NULL, NULL));
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 100, "ord-other", 60, &h));
    assert_ok(pt_commit(m, h->id, NULL, NULL));
    Loyalty__V1__PointsReverseOrderResponse *r = NULL;
    assert_ok(pt_reverse_key(m, "ord-d", 10000, harness_key(), &r));
    cr_assert_eq(r->points_clawed_back, 100);
    cr_assert_eq(r->debt_added, 100);
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->available, -100);
    cr_assert_eq(b->debt, 100);
    assert_status(pt_hold(m, "mbr-1", 1, "cart", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    pt_earn_points(m, "mbr-1", 30, NULL);
    b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->available, -70);
    cr_assert_eq(b->debt, 70);
    pt_earn_points(m, "mbr-1", 100, NULL);
    b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->available, 30);
    cr_assert_eq(b->debt, 0);
    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    cr_assert_eq(hist->entries[0]->kind,
                 LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_DEBT_REPAY);
    cr_assert_eq(hist->entries[0]->available_delta, 0);
    cr_assert_eq(hist->entries[0]->lots[0]->points, -70);
    pt_assert_ledger_clean(m);
}

Test(points_orders, check_in_once_per_day_with_streak) {
    /* Goal: CheckIn credits the CHECK_IN points once per local day; a second one that day is
     * ALREADY_CHECKED_IN; a retry with the same key replays; only today is accepted; the
     * streak continues from yesterday. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("chk");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    Loyalty__V1__PointsEventRule rule = LOYALTY__V1__POINTS_EVENT_RULE__INIT;
    rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN;
    rule.points = 5;
    Loyalty__V1__PointsEventRule *rules[] = {&rule};
    s.event_rules = rules;
    s.n_event_rules = 1;
    assert_ok(pt_put_settings(m, &s));
    Loyalty__V1__PointsCheckInRequest req = LOYALTY__V1__POINTS_CHECK_IN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = "mbr-1";
    Loyalty__V1__PointsCheckInResponse *r = NULL, *r2 = NULL;
    assert_ok(pcall("CheckIn", &req, &r));
    cr_assert_eq(r->points, 5);
    cr_assert_eq(r->streak_days, 1);
    cr_assert_str_eq(r->date, utc_day(0));
    cr_assert_eq(r->lot->source, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_CHECK_IN);
    cr_assert_eq(r->growth_delta, 5);
    assert_ok(pcall("CheckIn", &req, &r2)); /* same key: the same answer */
    cr_assert_str_eq(r2->lot->id, r->lot->id);
    req.idempotency_key = (char *)harness_key();
    assert_status(pcall("CheckIn", &req, NULL), STATUS_ALREADY_EXISTS, "ALREADY_CHECKED_IN");
    req.date = (char *)utc_day(0);
    assert_status(pcall("CheckIn", &req, NULL), STATUS_ALREADY_EXISTS, "ALREADY_CHECKED_IN");
    req.date = (char *)utc_day(-1);
    assert_status(pcall("CheckIn", &req, NULL), STATUS_FAILED_PRECONDITION,
                  "CHECK_IN_DATE_NOT_TODAY");
    req.date = "2026-02-30";
    assert_status(pcall("CheckIn", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_DATE");
    assert_balance(m, "mbr-1", 5, 0, 0);

    /* A member who checked in yesterday with a streak of 3 reaches 4. */
    pt_earn_points(m, "mbr-2", 1, NULL);
    pt_sql("UPDATE points.accounts SET last_check_in = (now() AT TIME ZONE 'UTC')::date - 1, "
           " check_in_streak = 3 WHERE merchant_id = $1 AND member_id = $2",
           m, "mbr-2", NULL);
    req.member_id = "mbr-2";
    req.date = "";
    req.idempotency_key = (char *)harness_key();
    assert_ok(pcall("CheckIn", &req, &r));
    cr_assert_eq(r->streak_days, 4);
    pt_assert_ledger_clean(m);
}

static Loyalty__V1__PointsImportLot *import_lot(const char *member, int64_t points,
                                                const char *earned, const char *expiry,
                                                const char *ext, int64_t growth) {
    Loyalty__V1__PointsImportLot *l = arena_alloc(&arena, sizeof *l);
    Loyalty__V1__PointsImportLot init = LOYALTY__V1__POINTS_IMPORT_LOT__INIT;
    *l = init;
    l->member_id = (char *)member;
    l->points = points;
    l->earned_date = (char *)earned;
    l->expiry_date = (char *)expiry;
    l->external_reference = (char *)ext;
    l->growth = growth;
    return l;
}

Test(points_orders, import_lots_once_per_batch) {
    /* Goal: ImportLots creates dated lots with their original expiry (or the policy's) and
     * opening growth; the same batch again replays, the same batch id with other lots is
     * BATCH_REUSED, an already-expired lot is refused naming the item. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("imp");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_YEAR;
    s.expiry_months = 24;
    assert_ok(pt_put_settings(m, &s));
    Loyalty__V1__PointsImportLot *items[] = {
        import_lot("mbr-1", 500, "2025-03-01", "2031-01-31", "legacy-1", 120),
        import_lot("mbr-1", 200, "2025-06-15", "", "legacy-2", 0),
        import_lot("mbr-2", 70, "", "", "", 0),
    };
    Loyalty__V1__PointsImportLotsRequest req = LOYALTY__V1__POINTS_IMPORT_LOTS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.batch_id = "opening-2026";
    req.lots = items;
    req.n_lots = 3;
    Loyalty__V1__PointsImportLotsResponse *r = NULL;
    assert_ok(pcall("ImportLots", &req, &r));
    cr_assert_eq(r->lots_imported, 3);
    cr_assert_eq(r->points_imported, 770);
    cr_assert_eq(r->growth_imported, 120);
    cr_assert(!r->replayed);
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->available, 700);
    cr_assert_eq(b->growth, 120);
    cr_assert_eq(b->lifetime_earned, 700);
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", false);
    cr_assert_eq(lots->n_lots, 2);
    cr_assert_str_eq(lots->lots[0]->expiry_date, "2027-12-31", "2025-06-15 + 24 months");
    cr_assert_str_eq(lots->lots[0]->reference, "legacy-2");
    cr_assert_eq(lots->lots[0]->source, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_IMPORT);
    cr_assert_str_eq(lots->lots[1]->expiry_date, "2031-01-31");
    cr_assert_str_eq(pt_sql_value("SELECT to_char(to_timestamp($1::bigint) AT TIME ZONE 'UTC', "
                                  "'YYYY-MM-DD HH24:MI')",
                                  arena_printf(&arena, "%lld", (long long)lots->lots[1]->earned_at),
                                  NULL),
                     "2025-03-01 00:00", "earned at the local start of its date");

    req.idempotency_key = (char *)harness_key();
    assert_ok(pcall("ImportLots", &req, &r));
    cr_assert(r->replayed);
    cr_assert_eq(r->points_imported, 770);
    assert_balance(m, "mbr-1", 700, 0, 0);
    req.idempotency_key = (char *)harness_key();
    req.n_lots = 2;
    assert_status(pcall("ImportLots", &req, NULL), STATUS_ALREADY_EXISTS, "BATCH_REUSED");

    Loyalty__V1__PointsImportLot *bad[] = {
        import_lot("mbr-3", 10, "", "", "", 0),
        import_lot("mbr-3", 10, "", "2020-01-01", "", 0),
    };
    req.batch_id = "bad-batch";
    req.lots = bad;
    req.n_lots = 2;
    req.idempotency_key = (char *)harness_key();
    status_t st = pcall("ImportLots", &req, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_LOTS_EXPIRY_DATE");
    cr_assert(strstr(st.message, "item 1") != NULL, "message: %s", st.message);
    assert_balance(m, "mbr-3", 0, 0, 0);
    req.n_lots = 0;
    assert_status(pcall("ImportLots", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_LOTS");
    pt_assert_ledger_clean(m);
}

static status_t adjust(const char *m, const char *member, int64_t points, int64_t growth,
                       const char *reason, Loyalty__V1__PointsAdjustResponse **out) {
    Loyalty__V1__PointsAdjustRequest req = LOYALTY__V1__POINTS_ADJUST_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member;
    req.points = points;
    req.growth = growth;
    req.reason = (char *)reason;
    req.operator_ = "ops@shop";
    return pcall("Adjust", &req, out);
}

Test(points_orders, adjustments_with_reason_and_operator) {
    /* Goal: positive and negative adjustments with reason and operator in the history; more
     * than available is INSUFFICIENT_POINTS; growth cannot go below 0; a reason is required;
     * adjustments are not lifetime earnings. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("adj");
    pt_configure(m);
    Loyalty__V1__PointsAdjustResponse *r = NULL;
    assert_ok(adjust(m, "mbr-1", 50, 10, "goodwill for late delivery", &r));
    cr_assert_eq(r->entry->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_ADJUST);
    cr_assert_eq(r->entry->available_delta, 50);
    cr_assert_str_eq(r->entry->operator_, "ops@shop");
    cr_assert_eq(r->growth_delta, 10);
    cr_assert_eq(r->balance->available, 50);
    cr_assert_eq(r->balance->lifetime_earned, 0);
    assert_ok(adjust(m, "mbr-1", -30, 0, "duplicate credit", &r));
    cr_assert_eq(r->entry->available_delta, -30);
    cr_assert_eq(r->entry->n_lots, 1);
    assert_status(adjust(m, "mbr-1", -21, 0, "too much", NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    assert_status(adjust(m, "mbr-1", 0, -11, "too much growth", NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_GROWTH");
    assert_status(adjust(m, "mbr-1", 5, 0, "", NULL), STATUS_INVALID_ARGUMENT, "INVALID_REASON");
    assert_status(adjust(m, "mbr-1", 0, 0, "nothing", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_POINTS");
    assert_ok(adjust(m, "mbr-1", 0, -10, "growth correction", &r));
    cr_assert_null(r->entry);
    cr_assert_eq(r->balance->growth, 0);
    Loyalty__V1__PointsListHistoryResponse *h = pt_history(m, "mbr-1");
    cr_assert_eq(h->n_entries, 2);
    cr_assert_str_eq(h->entries[0]->reason, "duplicate credit");
    pt_assert_ledger_clean(m);
}

Test(points_orders, quote_redeem_and_order_holds_follow_the_rules) {
    /* Goal: QuoteRedeem gives the most points usable on an order (50% cap, floor) and their
     * value, and the choice a Hold with choose_points would make of the points asked; a hold
     * with order_total_cents obeys the same minimum and cap. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("red");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 10000, NULL);
    Loyalty__V1__PointsQuoteRedeemRequest q = LOYALTY__V1__POINTS_QUOTE_REDEEM_REQUEST__INIT;
    q.merchant_id = (char *)m;
    q.member_id = "mbr-1";
    q.order_total_cents = 10001;
    Loyalty__V1__PointsQuoteRedeemResponse *qr = NULL;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_eq(qr->max_cash_cents, 5000);
    cr_assert_eq(qr->points, 5000);
    cr_assert_eq(qr->cash_value_cents, 5000);
    cr_assert_eq(qr->available, 10000);
    cr_assert_str_eq(qr->reason, "");
    cr_assert_eq(qr->chosen_points, 0, "nothing asked, nothing chosen");
    /* The choice a Hold with choose_points would make, and its value. */
    q.points = 6000;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_eq(qr->chosen_points, 5000);
    cr_assert_eq(qr->chosen_cash_cents, 5000);
    cr_assert_str_eq(qr->note, "CAPPED_BY_ORDER_SHARE");
    q.points = 250;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_eq(qr->chosen_points, 250);
    cr_assert_eq(qr->chosen_cash_cents, 250);
    cr_assert_str_eq(qr->note, "");
    q.points = 0;
    q.use_max_points = true;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_eq(qr->chosen_points, 5000);
    cr_assert_eq(qr->chosen_cash_cents, 5000);
    q.use_max_points = false;
    q.order_total_cents = 150;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_eq(qr->points, 0);
    cr_assert_str_eq(qr->reason, "BELOW_MINIMUM_REDEMPTION");
    q.member_id = "mbr-none";
    q.order_total_cents = 10000;
    assert_ok(pcall("QuoteRedeem", &q, &qr));
    cr_assert_str_eq(qr->reason, "NO_POINTS");

    Loyalty__V1__PointsHoldRequest h = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
    h.merchant_id = (char *)m;
    h.member_id = "mbr-1";
    h.reference = "ord-r";
    h._order_total_cents_case =
        LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS_ORDER_TOTAL_CENTS;
    h.order_total_cents = 10000;
    h.points = 5001;
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_FAILED_PRECONDITION, "EXCEEDS_ORDER_SHARE");
    h.points = 99;
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_FAILED_PRECONDITION, "BELOW_MINIMUM_REDEMPTION");
    h.points = 5000;
    h.idempotency_key = (char *)harness_key();
    Loyalty__V1__PointsHoldResponse *hr = NULL;
    assert_ok(pcall("Hold", &h, &hr));
    cr_assert_eq(hr->hold->cash_value_cents, 5000);
    cr_assert_eq(hr->balance->available, 5000);
    cr_assert_eq(hr->balance->held, 5000);
    pt_assert_ledger_clean(m);
}

Test(points_orders, hold_that_chooses_its_points) {
    /* Goal: a hold with choose_points holds the request capped by the order share (note
     * CAPPED_BY_ORDER_SHARE), or with use_max_points the most the order and the balance allow;
     * when nothing can be held it answers no hold and the quote's reason, and changes nothing;
     * the balance is no cap for an explicit request; malformed combinations are refused. The
     * shop: 100 points = 1.00, min 100, at most 50% of the order. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("cho");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 3000, NULL);
    Loyalty__V1__PointsHoldRequest h = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
    h.merchant_id = (char *)m;
    h.member_id = "mbr-1";
    h.choose_points = true;
    h._order_total_cents_case =
        LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS_ORDER_TOTAL_CENTS;
    h.order_total_cents = 4000; /* share: 20.00 = 2,000 points */
    h.points = 2500;
    h.reference = "ord-cap";
    h.idempotency_key = (char *)harness_key();
    Loyalty__V1__PointsHoldResponse *hr = NULL;
    assert_ok(pcall("Hold", &h, &hr));
    cr_assert_eq(hr->hold->points, 2000);
    cr_assert_eq(hr->hold->cash_value_cents, 2000);
    cr_assert_str_eq(hr->note, "CAPPED_BY_ORDER_SHARE");
    cr_assert_eq(hr->balance->available, 1000);
    cr_assert_eq(hr->balance->held, 2000);

    h.reference = "ord-max";
    h.points = 0;
    h.use_max_points = true;
    h.idempotency_key = (char *)harness_key();
    assert_ok(pcall("Hold", &h, &hr));
    cr_assert_eq(hr->hold->points, 1000, "the balance left binds");
    cr_assert_str_eq(hr->note, "");

    h.reference = "ord-none";
    h.idempotency_key = (char *)harness_key();
    assert_ok(pcall("Hold", &h, &hr));
    cr_assert_null(hr->hold, "nothing left to hold");
    cr_assert_str_eq(hr->note, "NO_POINTS");
    cr_assert_eq(hr->balance->available, 0);
    cr_assert_eq(hr->balance->held, 3000);

    h.member_id = "mbr-none"; /* no account at all */
    h.idempotency_key = (char *)harness_key();
    assert_ok(pcall("Hold", &h, &hr));
    cr_assert_null(hr->hold);
    cr_assert_str_eq(hr->note, "NO_POINTS");

    h.member_id = "mbr-1";
    h.reference = "ord-small";
    h.use_max_points = false;
    h.points = 500;
    h.order_total_cents = 100; /* share 0.50: less than the 100-point minimum's worth */
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_FAILED_PRECONDITION,
                  "BELOW_MINIMUM_REDEMPTION"); /* capped to 50, which the minimum refuses */

    h.order_total_cents = 4000;
    h.choose_points = false;
    h.use_max_points = true;
    h.points = 0;
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_INVALID_ARGUMENT, "INVALID_USE_MAX_POINTS");
    h.choose_points = true;
    h.points = 10;
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_INVALID_ARGUMENT, "INVALID_POINTS");
    h._order_total_cents_case = LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS__NOT_SET;
    h.points = 0;
    h.idempotency_key = (char *)harness_key();
    assert_status(pcall("Hold", &h, NULL), STATUS_INVALID_ARGUMENT, "INVALID_ORDER_TOTAL_CENTS");
    pt_assert_ledger_clean(m);
}

Test(points_orders, settings_round_trip_and_validation) {
    /* Goal: defaults at version 0; updates bump the version; an unknown time zone and a stale
     * expected_version are refused; an update shows at the next ledger operation. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("set");
    Loyalty__V1__PointsGetSettingsRequest g = LOYALTY__V1__POINTS_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    Loyalty__V1__PointsGetSettingsResponse *gr = NULL;
    assert_ok(pcall("GetSettings", &g, &gr));
    cr_assert_eq(gr->settings->version, 0);
    cr_assert_str_eq(gr->settings->time_zone, "UTC");
    cr_assert_eq(gr->settings->earn_points_per_unit, 0);
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    s.time_zone = "Mars/Olympus_Mons";
    assert_status(pt_put_settings(m, &s), STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_TIME_ZONE");
    s.time_zone = "Asia/Singapore";
    Loyalty__V1__PointsEventRule rule = LOYALTY__V1__POINTS_EVENT_RULE__INIT;
    rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_REGISTRATION;
    rule.points = 200;
    Loyalty__V1__PointsEventRule *rules[] = {&rule};
    s.event_rules = rules;
    s.n_event_rules = 1;
    Loyalty__V1__PointsUpdateSettingsRequest u = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &s;
    u.update_mask = HARNESS_MASK("time_zone", "event_rules", "redeem_max_order_share_bps");
    u._expected_version_case =
        LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    u.expected_version = 0;
    Loyalty__V1__PointsUpdateSettingsResponse *ur = NULL;
    assert_ok(pcall("UpdateSettings", &u, &ur));
    cr_assert_eq(ur->settings->version, 1);
    cr_assert_str_eq(ur->settings->time_zone, "Asia/Singapore");
    cr_assert_eq(ur->settings->n_event_rules, 1);
    cr_assert_eq(ur->settings->event_rules[0]->points, 200);
    u.idempotency_key = (char *)harness_key();
    assert_status(pcall("UpdateSettings", &u, NULL), STATUS_ABORTED, "SETTINGS_VERSION_MISMATCH");
    u.expected_version = 1;
    assert_ok(pcall("UpdateSettings", &u, &ur));
    cr_assert_eq(ur->settings->version, 2);
    assert_ok(pcall("GetSettings", &g, &gr));
    cr_assert_eq(gr->settings->version, 2);
    cr_assert_eq(gr->settings->redeem_max_order_share_bps, 5000);

    /* Registration points through Earn with an event. */
    Loyalty__V1__PointsEarnRequest e = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    e.merchant_id = (char *)m;
    e.idempotency_key = (char *)harness_key();
    e.member_id = "mbr-1";
    e.reference = "signup-mbr-1";
    e.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_EVENT;
    e.event = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_REGISTRATION;
    Loyalty__V1__PointsEarnResponse *er = NULL;
    assert_ok(pcall("Earn", &e, &er));
    cr_assert_eq(er->points, 200);
    cr_assert_eq(er->lot->source, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_EVENT);
    /* Ledger operations read the settings through a cache: a change shows at the next one. */
    rule.points = 300;
    u.idempotency_key = (char *)harness_key();
    u.expected_version = 2;
    assert_ok(pcall("UpdateSettings", &u, &ur));
    e.idempotency_key = (char *)harness_key();
    e.member_id = "mbr-2";
    e.reference = "signup-mbr-2";
    assert_ok(pcall("Earn", &e, &er));
    cr_assert_eq(er->points, 300, "the cached settings were invalidated by the update");
    e.idempotency_key = (char *)harness_key();
    e.event = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN;
    assert_status(pcall("Earn", &e, NULL), STATUS_INVALID_ARGUMENT, "INVALID_EVENT");
}

Test(points_orders, calendar_expiry_in_the_merchant_time_zone) {
    /* Goal: END_OF_MONTH expiry is the last day of the month in the merchant's time zone and
     * the lot expires at the following local midnight. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("tz");
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    s.time_zone = "Pacific/Auckland";
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_MONTH;
    s.expiry_months = 1;
    assert_ok(pt_put_settings(m, &s));
    Loyalty__V1__PointsEarnResponse *e = pt_earn_points(m, "mbr-1", 10, NULL);
    cr_assert_str_eq(e->lot->expiry_date,
                     pt_sql_value("SELECT to_char((date_trunc('month', (now() AT TIME ZONE "
                                  "$1)) + interval '2 months' - interval '1 day')::date, "
                                  "'YYYY-MM-DD')",
                                  "Pacific/Auckland", NULL));
    const char *local =
        pt_sql_value("SELECT to_char(to_timestamp($1::bigint) AT TIME ZONE 'Pacific/Auckland', "
                     "'YYYY-MM-DD HH24:MI:SS')",
                     arena_printf(&arena, "%lld", (long long)e->lot->expires_at), NULL);
    const char *next_day = pt_sql_value("SELECT to_char($1::date + 1, 'YYYY-MM-DD') || ' 00:00:00'",
                                        e->lot->expiry_date, NULL);
    cr_assert_str_eq(local, next_day, "expires at the local midnight after its last day");
    pt_assert_ledger_clean(m);
}

Test(points_orders, idempotent_retries_apply_once) {
    /* Goal: retrying Earn, Hold and CommitHold with the same key replays the first answer and
     * applies once; the same key with another request is IDEMPOTENCY_KEY_REUSED. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("idem");
    pt_configure(m);
    const char *key = harness_key();
    Loyalty__V1__PointsEarnResponse *a = NULL, *b = NULL;
    assert_ok(pt_earn_points_key(m, "mbr-1", 300, "ref-1", NULL, key, &a));
    assert_ok(pt_earn_points_key(m, "mbr-1", 300, "ref-1", NULL, key, &b));
    cr_assert_str_eq(a->lot->id, b->lot->id);
    assert_status(pt_earn_points_key(m, "mbr-1", 301, "ref-1", NULL, key, NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_balance(m, "mbr-1", 300, 0, 0);

    const char *hkey = harness_key();
    Loyalty__V1__PointsHold *h1 = NULL, *h2 = NULL;
    assert_ok(pt_hold_in(&arena, m, "mbr-1", 120, "cart-i", 60, hkey, &h1));
    assert_ok(pt_hold_in(&arena, m, "mbr-1", 120, "cart-i", 60, hkey, &h2));
    cr_assert_str_eq(h1->id, h2->id);
    assert_balance(m, "mbr-1", 180, 120, 0);

    Loyalty__V1__PointsCommitHoldRequest c = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__INIT;
    c.merchant_id = (char *)m;
    c.idempotency_key = (char *)harness_key();
    c.target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
    c.hold_id = h1->id;
    Loyalty__V1__PointsCommitHoldResponse *c1 = NULL, *c2 = NULL;
    assert_ok(pcall("CommitHold", &c, &c1));
    assert_ok(pcall("CommitHold", &c, &c2));
    cr_assert_eq(c1->hold->finished_at, c2->hold->finished_at);
    assert_balance(m, "mbr-1", 180, 0, 0);
    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    cr_assert_eq(hist->n_entries, 3, "EARN, HOLD, COMMIT once each");
    pt_assert_ledger_clean(m);
}

Test(points_orders, history_pages_newest_first_and_filters_kinds) {
    /* Goal: ListHistory and ListGrowthHistory page newest first with stable cursors (pages of
     * 2 over 5 entries: 2, 2, 1, then no cursor) and ListHistory filters by kind. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("page");
    pt_configure(m);
    for (int i = 1; i <= 3; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "ord-%d", i);
        assert_ok(pt_earn_order(m, "mbr-1", ref, i * 1000, NULL, NULL)); /* 10, 20, 30 points */
    }
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 5, "cart", 60, &h));
    assert_ok(pt_release(m, h->id, NULL, NULL));
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 2;
    Loyalty__V1__PointsListHistoryRequest req = LOYALTY__V1__POINTS_LIST_HISTORY_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = "mbr-1";
    req.page = &page;
    const Loyalty__V1__PointsEntryKind want[] = {
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_RELEASE,
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD,
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN,
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN,
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN,
    };
    size_t seen = 0;
    for (int p = 0; p < 3; p++) {
        Loyalty__V1__PointsListHistoryResponse *r = NULL;
        assert_ok(pcall("ListHistory", &req, &r));
        cr_assert_eq(r->n_entries, p < 2 ? 2u : 1u, "page %d", p);
        for (size_t i = 0; i < r->n_entries; i++, seen++) {
            cr_assert_eq(r->entries[i]->kind, want[seen], "entry %zu", seen);
        }
        page.cursor = r->page_info->next_cursor;
        cr_assert_eq(page.cursor[0] == '\0', p == 2, "cursor after page %d", p);
    }
    cr_assert_eq(seen, 5);
    Loyalty__V1__PointsEntryKind earn_only[] = {
        LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN};
    req.kinds = earn_only;
    req.n_kinds = 1;
    page.page_size = 0;
    page.cursor = "";
    Loyalty__V1__PointsListHistoryResponse *r = NULL;
    assert_ok(pcall("ListHistory", &req, &r));
    cr_assert_eq(r->n_entries, 3);
    cr_assert_eq(r->entries[0]->available_delta, 30, "newest first");
    cr_assert_str_eq(r->entries[0]->reference, "ord-3");
    page.cursor = "not-a-cursor!";
    assert_status(pcall("ListHistory", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_PAGE_CURSOR");
    page.cursor = "";
    page.page_size = 501;
    assert_status(pcall("ListHistory", &req, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_PAGE_SIZE");

    Loyalty__V1__PageRequest gpage = LOYALTY__V1__PAGE_REQUEST__INIT;
    gpage.page_size = 2;
    Loyalty__V1__PointsListGrowthHistoryRequest g =
        LOYALTY__V1__POINTS_LIST_GROWTH_HISTORY_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.member_id = "mbr-1";
    g.page = &gpage;
    Loyalty__V1__PointsListGrowthHistoryResponse *gr = NULL;
    assert_ok(pcall("ListGrowthHistory", &g, &gr));
    cr_assert_eq(gr->n_entries, 2);
    cr_assert_eq(gr->entries[0]->growth, 30);
    cr_assert_eq(gr->entries[0]->growth_after, 60);
    gpage.cursor = gr->page_info->next_cursor;
    assert_ok(pcall("ListGrowthHistory", &g, &gr));
    cr_assert_eq(gr->n_entries, 1);
    cr_assert_eq(gr->entries[0]->growth_after, 10);
    pt_assert_ledger_clean(m);
}

Test(points_orders, a_reference_of_another_member_refuses_the_earn_and_writes_nothing) {
    /* Goal: an order reference belongs to the member who first redeemed or earned with it;
     * another member's earn with it answers REFERENCE_MEMBER_MISMATCH (refused by the insert
     * of the earn's lot itself) and leaves nothing behind. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("refmine");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 100, "order-9", 600, &h));
    assert_ok(pt_commit(m, h->id, NULL, NULL));
    assert_status(pt_earn_order(m, "mbr-2", "order-9", 5000, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "REFERENCE_MEMBER_MISMATCH");
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-2");
    cr_assert_eq(b->available, 0);
    cr_assert_eq(b->lifetime_earned, 0);
    cr_assert_eq(pt_sql("SELECT 1 FROM points.lots WHERE merchant_id = $1 AND reference = $2 "
                        "UNION ALL SELECT 1 FROM points.earn_refs WHERE merchant_id = $1 "
                        " AND reference = $2",
                        m, "order-9", NULL),
                 0, "the refused earn's claim was committed");
    assert_ok(pt_earn_order(m, "mbr-1", "order-9", 5000, NULL, NULL)); /* its member may */
    pt_assert_ledger_clean(m);
}
