/* test_points_ops.c -- points-svc over real gRPC against real PostgreSQL and Redis: earn,
 * two-phase holds (commit, release, TTL expiry lazily and by the job), FIFO by expiry across
 * lots with the history of which lots paid, expiry of lots (once), errors and their reasons.
 * Every test ends with a clean VerifyLedger. */
#include "points_it.h"

#include "grpc/health/v1/health.pb-c.h"

#include <time.h>
#include <unistd.h>

TestSuite(points_ledger, .init = pt_setup, .fini = pt_teardown, .timeout = 120);

Test(points_ledger, serves_health_for_points_service) {
    /* Goal: the binary migrates the points schema and answers Health for its service name. */
    harness_start(&svc, "points-svc", NULL);
    Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hreq.service = "loyalty.v1.PointsService";
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                           "Check", &hreq.base, &arena, &resp, NULL);
    assert_ok(st);
    cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

Test(points_ledger, earn_hold_commit) {
    /* Goal: earn 1000 -> hold 300 -> commit: available 700, held 0; the history shows EARN,
     * HOLD and COMMIT with their deltas and the lot that paid; growth follows the earn. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("ehc");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *e = NULL;
    assert_ok(pt_earn_points_key(m, "mbr-1", 1000, "promo-1", NULL, harness_key(), &e));
    cr_assert_eq(e->points, 1000);
    cr_assert_not_null(e->lot);
    cr_assert_eq(e->lot->remaining, 1000);
    cr_assert_eq(e->lot->status, LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_ACTIVE);
    cr_assert_eq(e->balance->available, 1000);
    cr_assert_eq(e->balance->lifetime_earned, 1000);
    cr_assert_eq(e->growth_delta, 0, "explicit points carry only the growth asked for");
    assert_balance(m, "mbr-1", 1000, 0, 0);

    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 300, "order-1", 60, &h));
    cr_assert(strncmp(h->id, "hld_", 4) == 0);
    cr_assert_eq(h->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE);
    cr_assert_eq(h->cash_value_cents, 300);
    cr_assert_eq(h->n_lots, 1);
    cr_assert_str_eq(h->lots[0]->lot_id, e->lot->id);
    cr_assert_eq(h->lots[0]->points, -300);
    cr_assert(h->expires_at >= h->created_at + 59 && h->expires_at <= h->created_at + 61);
    assert_balance(m, "mbr-1", 700, 300, 0);

    Loyalty__V1__PointsHold *c = NULL;
    assert_ok(pt_commit(m, h->id, NULL, &c));
    cr_assert_eq(c->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED);
    cr_assert(c->finished_at >= c->created_at);
    assert_balance(m, "mbr-1", 700, 0, 0);
    /* Committing again (another key) answers the committed hold; by reference too. */
    assert_ok(pt_commit(m, h->id, NULL, &c));
    assert_ok(pt_commit(m, NULL, "order-1", &c));
    cr_assert_str_eq(c->id, h->id);
    assert_balance(m, "mbr-1", 700, 0, 0);

    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    cr_assert_eq(hist->n_entries, 3);
    Loyalty__V1__PointsEntry **en = hist->entries; /* newest first */
    cr_assert_eq(en[0]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_COMMIT);
    cr_assert_eq(en[0]->held_delta, -300);
    cr_assert_eq(en[0]->available_after, 700);
    cr_assert_str_eq(en[0]->hold_id, h->id);
    cr_assert_eq(en[1]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD);
    cr_assert_eq(en[1]->available_delta, -300);
    cr_assert_eq(en[1]->held_delta, 300);
    cr_assert_str_eq(en[1]->reference, "order-1");
    cr_assert_eq(en[1]->n_lots, 1);
    cr_assert_eq(en[1]->lots[0]->points, -300);
    cr_assert_eq(en[2]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN);
    cr_assert_eq(en[2]->available_delta, 1000);
    cr_assert_eq(en[2]->source, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION);
    cr_assert_eq(en[2]->lots[0]->points, 1000);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, hold_release_and_state_errors) {
    /* Goal: release returns the points to the same lot; releasing twice is fine; committing a
     * released hold fails HOLD_RELEASED; releasing a committed hold fails HOLD_COMMITTED; a
     * second live hold on one reference is HOLD_EXISTS; unknown holds are HOLD_NOT_FOUND. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rel");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *e = pt_earn_points(m, "mbr-1", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL, *r = NULL;
    assert_ok(pt_hold(m, "mbr-1", 200, "cart-1", 60, &h));
    assert_status(pt_hold(m, "mbr-1", 10, "cart-1", 60, NULL), STATUS_ALREADY_EXISTS,
                  "HOLD_EXISTS");
    assert_ok(pt_release(m, h->id, NULL, &r));
    cr_assert_eq(r->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_RELEASED);
    assert_balance(m, "mbr-1", 500, 0, 0);
    assert_ok(pt_release(m, NULL, "cart-1", &r));
    cr_assert_eq(r->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_RELEASED);
    assert_balance(m, "mbr-1", 500, 0, 0);
    assert_status(pt_commit(m, h->id, NULL, NULL), STATUS_FAILED_PRECONDITION, "HOLD_RELEASED");

    /* A released reference may be held again, then committed; release then fails. */
    Loyalty__V1__PointsHold *h2 = NULL;
    assert_ok(pt_hold(m, "mbr-1", 100, "cart-1", 60, &h2));
    cr_assert_str_neq(h2->id, h->id);
    assert_ok(pt_commit(m, NULL, "cart-1", NULL));
    assert_status(pt_release(m, h2->id, NULL, NULL), STATUS_FAILED_PRECONDITION, "HOLD_COMMITTED");
    assert_status(pt_release(m, "hld_01J00000000000000000000000", NULL, NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    assert_status(pt_commit(m, NULL, "no-such-cart", NULL), STATUS_NOT_FOUND, "HOLD_NOT_FOUND");
    assert_balance(m, "mbr-1", 400, 0, 0);
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", false);
    cr_assert_eq(lots->n_lots, 1);
    cr_assert_str_eq(lots->lots[0]->id, e->lot->id);
    cr_assert_eq(lots->lots[0]->remaining, 400);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, insufficient_and_invalid_requests) {
    /* Goal: holds beyond available fail INSUFFICIENT_POINTS (also for a member with nothing);
     * bad input names the field. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("inv");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 100, NULL);
    assert_status(pt_hold(m, "mbr-1", 101, "c1", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    assert_ok(pt_hold(m, "mbr-1", 100, "c2", 60, NULL));
    assert_status(pt_hold(m, "mbr-1", 1, "c3", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    assert_status(pt_hold(m, "nobody", 1, "c4", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    assert_status(pt_hold(m, "mbr-1", 0, "c5", 60, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_POINTS");
    assert_status(pt_hold(m, "mbr-1", 1, "", 60, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFERENCE");
    assert_status(pt_hold(m, "mbr-1", 1, "c6", 604801, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_TTL_S");
    assert_status(pt_hold(m, "", 1, "c7", 60, NULL), STATUS_INVALID_ARGUMENT, "INVALID_MEMBER_ID");
    assert_status(pt_earn_points_key(m, "mbr-1", 0, NULL, NULL, harness_key(), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_POINTS");
    assert_status(pt_earn_points_key(m, "mbr-1", 1000000000001, NULL, NULL, harness_key(), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_POINTS");
    assert_status(pt_earn_points_key(m, "mbr-1", 5, NULL, "2020-01-01", harness_key(), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_EXPIRY_DATE");
    assert_status(pt_earn_order(m, "mbr-1", "", 1000, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFERENCE");
    Loyalty__V1__PointsEarnRequest none = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    none.merchant_id = (char *)m;
    none.idempotency_key = (char *)harness_key();
    none.member_id = "mbr-1";
    assert_status(pcall("Earn", &none, NULL), STATUS_INVALID_ARGUMENT, "INVALID_AMOUNT");
    /* A member with nothing has an all-zero balance, not NOT_FOUND. */
    assert_balance(m, "nobody", 0, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, hold_ttl_releases_lazily_at_read) {
    /* Goal: a hold whose TTL passed is released by the next read (no job running): GetBalance
     * shows the points back, GetHold says EXPIRED, commit fails HOLD_EXPIRED, release is fine. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("ttl");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    time_t held_at = time(NULL);
    assert_ok(pt_hold(m, "mbr-1", 200, "cart-ttl", 3, &h));
    Loyalty__V1__PointsBalance *before = pt_balance(m, "mbr-1");
    if (time(NULL) - held_at < 2) { /* read well before the TTL (a busy machine may be slower) */
        cr_assert_eq(before->available, 300);
        cr_assert_eq(before->held, 200);
    }
    sleep(4);
    assert_balance(m, "mbr-1", 500, 0, 0);
    Loyalty__V1__PointsHold *g = pt_get_hold(m, h->id);
    cr_assert_eq(g->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_EXPIRED);
    assert_status(pt_commit(m, h->id, NULL, NULL), STATUS_FAILED_PRECONDITION, "HOLD_EXPIRED");
    assert_ok(pt_release(m, h->id, NULL, NULL));
    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    cr_assert_eq(hist->entries[0]->kind,
                 LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD_EXPIRED);
    cr_assert_eq(hist->entries[0]->held_delta, -200);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, hold_ttl_commit_without_read_fails) {
    /* Goal: committing a hold past its TTL fails HOLD_EXPIRED even when nothing read the
     * member in between, and the points come back. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("ttlc");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 200, "cart-ttl", 1, &h));
    sleep(2);
    assert_status(pt_commit(m, h->id, NULL, NULL), STATUS_FAILED_PRECONDITION, "HOLD_EXPIRED");
    assert_status(pt_commit(m, NULL, "cart-ttl", NULL), STATUS_FAILED_PRECONDITION, "HOLD_EXPIRED");
    assert_balance(m, "mbr-1", 500, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, hold_ttl_released_by_the_job) {
    /* Goal: with the timer on, an expired hold is released without any call touching the
     * member (checked in the database). */
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    harness_start(&svc, "points-svc", env);
    const char *m = harness_merchant("job");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 200, "cart-job", 1, &h));
    const char *status = NULL;
    for (int i = 0; i < 50; i++) { /* up to 10 s */
        usleep(200 * 1000);
        status = pt_sql_value("SELECT status::text FROM points.holds WHERE merchant_id = $1 "
                              "AND id = $2",
                              m, h->id);
        if (strcmp(status, "4") == 0) {
            break;
        }
    }
    cr_assert_str_eq(status, "4", "the job did not expire the hold");
    cr_assert_str_eq(pt_sql_value("SELECT held::text || '/' || lots_points::text FROM "
                                  "points.accounts WHERE merchant_id = $1 AND member_id = $2",
                                  m, "mbr-1"),
                     "0/500");
    assert_balance(m, "mbr-1", 500, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, fifo_by_expiry_across_three_lots) {
    /* Goal: spending takes the soonest-expiring lot first, lots without expiry last, whatever
     * the order they were earned in; the hold and the history say which lots paid. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("fifo");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *never = pt_earn_points(m, "mbr-1", 100, NULL);
    Loyalty__V1__PointsEarnResponse *late = pt_earn_points(m, "mbr-1", 100, "2031-06-30");
    Loyalty__V1__PointsEarnResponse *soon = pt_earn_points(m, "mbr-1", 100, "2030-01-31");
    cr_assert_str_eq(soon->lot->expiry_date, "2030-01-31");
    cr_assert_str_eq(never->lot->expiry_date, "");
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", false);
    cr_assert_eq(lots->n_lots, 3);
    cr_assert_str_eq(lots->lots[0]->id, soon->lot->id);
    cr_assert_str_eq(lots->lots[1]->id, late->lot->id);
    cr_assert_str_eq(lots->lots[2]->id, never->lot->id);

    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 150, "cart-fifo", 60, &h));
    cr_assert_eq(h->n_lots, 2);
    cr_assert_str_eq(h->lots[0]->lot_id, soon->lot->id);
    cr_assert_eq(h->lots[0]->points, -100);
    cr_assert_str_eq(h->lots[0]->expiry_date, "2030-01-31");
    cr_assert_str_eq(h->lots[1]->lot_id, late->lot->id);
    cr_assert_eq(h->lots[1]->points, -50);
    assert_ok(pt_commit(m, h->id, NULL, NULL));

    lots = pt_lots(m, "mbr-1", false);
    cr_assert_eq(lots->n_lots, 2, "the emptied lot is closed");
    cr_assert_str_eq(lots->lots[0]->id, late->lot->id);
    cr_assert_eq(lots->lots[0]->remaining, 50);
    cr_assert_eq(lots->lots[1]->remaining, 100);
    Loyalty__V1__PointsHold *h2 = NULL;
    assert_ok(pt_hold(m, "mbr-1", 60, "cart-fifo-2", 60, &h2));
    cr_assert_eq(h2->n_lots, 2);
    cr_assert_str_eq(h2->lots[0]->lot_id, late->lot->id);
    cr_assert_eq(h2->lots[0]->points, -50);
    cr_assert_str_eq(h2->lots[1]->lot_id, never->lot->id);
    cr_assert_eq(h2->lots[1]->points, -10);

    /* Paging through lots with page_size 1 visits them in the same order. */
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 1;
    Loyalty__V1__PointsListLotsRequest req = LOYALTY__V1__POINTS_LIST_LOTS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = "mbr-1";
    req.include_closed = true;
    req.page = &page;
    const char *want[] = {soon->lot->id, late->lot->id, never->lot->id};
    for (int i = 0; i < 3; i++) {
        Loyalty__V1__PointsListLotsResponse *r = NULL;
        assert_ok(pcall("ListLots", &req, &r));
        cr_assert_eq(r->n_lots, 1);
        cr_assert_str_eq(r->lots[0]->id, want[i], "page %d", i);
        page.cursor = r->page_info->next_cursor;
        cr_assert(i == 2 || page.cursor[0] != '\0');
    }
    pt_assert_ledger_clean(m);
}

Test(points_ledger, expiry_job_expires_each_lot_once) {
    /* Goal: ExpirePoints expires lots past their date with one EXPIRE entry naming them and
     * one points.expired event, leaves others alone, and a second run finds nothing. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("exp");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *a = pt_earn_points(m, "mbr-1", 70, "2030-01-31");
    pt_earn_points(m, "mbr-1", 30, "2030-01-31");
    pt_earn_points(m, "mbr-2", 40, NULL);
    (void)a;
    pt_age_lots_expiry(m, "mbr-1");

    Loyalty__V1__PointsExpirePointsRequest req = LOYALTY__V1__POINTS_EXPIRE_POINTS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    Loyalty__V1__PointsExpirePointsResponse *r = NULL;
    assert_ok(pcall("ExpirePoints", &req, &r));
    cr_assert_eq(r->members_settled, 1, "settled %d members, %lld lots, %lld points, more %d",
                 (int)r->members_settled, (long long)r->lots_expired, (long long)r->points_expired,
                 (int)r->more);
    cr_assert_eq(r->lots_expired, 2);
    cr_assert_eq(r->points_expired, 100);
    cr_assert(!r->more);
    assert_balance(m, "mbr-1", 0, 0, 0);
    assert_balance(m, "mbr-2", 40, 0, 0);

    req.idempotency_key = (char *)harness_key();
    assert_ok(pcall("ExpirePoints", &req, &r));
    cr_assert_eq(r->lots_expired, 0, "nothing expires twice");
    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    int expire_entries = 0;
    for (size_t i = 0; i < hist->n_entries; i++) {
        if (hist->entries[i]->kind == LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EXPIRE) {
            expire_entries++;
            cr_assert_eq(hist->entries[i]->available_delta, -100);
            cr_assert_eq(hist->entries[i]->n_lots, 2);
        }
    }
    cr_assert_eq(expire_entries, 1);
    cr_assert_eq(pt_count_events(m, "points.expired", 1), 1, "one points.expired event");
    usleep(300 * 1000);
    cr_assert_eq(pt_count_events(m, "points.expired", 1), 1, "and never a second");
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr-1", true);
    cr_assert_eq(lots->n_lots, 2);
    cr_assert_eq(lots->lots[0]->status, LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_EXPIRED);
    cr_assert_eq(lots->lots[0]->remaining, 0);
    req.idempotency_key = (char *)harness_key();
    req._as_of_at_case = LOYALTY__V1__POINTS_EXPIRE_POINTS_REQUEST___AS_OF_AT_AS_OF_AT;
    req.as_of_at = 4102444800; /* 2100: the future is refused */
    assert_status(pcall("ExpirePoints", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_AS_OF_AT");
    pt_assert_ledger_clean(m);
}

Test(points_ledger, balance_shows_expiring_points_and_date) {
    /* Goal: points expiring within 30 days and the soonest expiry date with its points, in
     * reads and in a mutation's answer (omitted when the caller asks). */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("soon");
    pt_configure(m);
    const char *in_10 =
        pt_sql_value("SELECT to_char(current_date + $1::int, 'YYYY-MM-DD')", "10", NULL);
    const char *in_20 =
        pt_sql_value("SELECT to_char(current_date + $1::int, 'YYYY-MM-DD')", "20", NULL);
    const char *in_90 =
        pt_sql_value("SELECT to_char(current_date + $1::int, 'YYYY-MM-DD')", "90", NULL);
    pt_earn_points(m, "mbr-1", 11, in_10);
    pt_earn_points(m, "mbr-1", 22, in_20);
    pt_earn_points(m, "mbr-1", 44, in_90);
    pt_earn_points(m, "mbr-1", 5, in_10);
    Loyalty__V1__PointsBalance *b = pt_balance(m, "mbr-1");
    cr_assert_eq(b->available, 82);
    cr_assert_eq(b->expiring_points, 38);
    cr_assert_eq(b->expiring_within_days, 30);
    cr_assert_str_eq(b->next_expiry_date, in_10);
    cr_assert_eq(b->next_expiry_points, 16);
    b = pt_balance(m, "mbr-1"); /* cached copy: same figures */
    cr_assert_eq(b->expiring_points, 38);
    cr_assert_str_eq(b->next_expiry_date, in_10);
    /* A mutation's answer carries them too, unless the caller asks to omit them. */
    Loyalty__V1__PointsEarnRequest e = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    e.merchant_id = (char *)m;
    e.idempotency_key = (char *)harness_key();
    e.member_id = "mbr-1";
    e.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
    e.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    e.points = 1;
    e.expiry_date = (char *)in_10;
    Loyalty__V1__PointsEarnResponse *er = NULL;
    assert_ok(pcall("Earn", &e, &er));
    cr_assert_eq(er->balance->available, 83);
    cr_assert_eq(er->balance->expiring_points, 39);
    cr_assert_str_eq(er->balance->next_expiry_date, in_10);
    e.idempotency_key = (char *)harness_key();
    e.omit_expiring = true;
    assert_ok(pcall("Earn", &e, &er));
    cr_assert_eq(er->balance->available, 84);
    cr_assert_eq(er->balance->expiring_points, 0);
    cr_assert_str_eq(er->balance->next_expiry_date, "");
    cr_assert_eq(pt_balance(m, "mbr-1")->expiring_points, 40, "reads still show them");
}

Test(points_ledger, release_into_an_expired_lot_expires_the_points) {
    /* Goal: points of a hold whose lot expired meanwhile go back to the lot and expire at
     * once: RELEASE then EXPIRE entries, available unchanged, ledger clean. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("relexp");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 100, "2030-01-31");
    pt_earn_points(m, "mbr-1", 50, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 120, "cart-x", 600, &h));
    assert_balance(m, "mbr-1", 30, 120, 0);
    pt_age_lots_expiry(m, "mbr-1"); /* the 2030 lot (now empty) expires while held */
    assert_balance(m, "mbr-1", 30, 120, 0);
    assert_ok(pt_release(m, h->id, NULL, NULL));
    assert_balance(m, "mbr-1", 50, 0, 0); /* 100 returned to the expired lot and expired */
    Loyalty__V1__PointsListHistoryResponse *hist = pt_history(m, "mbr-1");
    cr_assert_eq(hist->entries[0]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EXPIRE);
    cr_assert_eq(hist->entries[0]->available_delta, -100);
    cr_assert_eq(hist->entries[1]->kind, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_RELEASE);
    cr_assert_eq(hist->entries[1]->available_delta, 120);
    pt_assert_ledger_clean(m);
}

Test(points_ledger, merchants_are_isolated) {
    /* Goal: another merchant sees none of a member's points or holds. */
    harness_start(&svc, "points-svc", NULL);
    const char *m1 = harness_merchant("iso1");
    const char *m2 = harness_merchant("iso2");
    pt_configure(m1);
    pt_configure(m2);
    pt_earn_points(m1, "mbr-1", 100, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m1, "mbr-1", 10, "cart", 60, &h));
    assert_balance(m2, "mbr-1", 0, 0, 0);
    assert_status(pt_commit(m2, h->id, NULL, NULL), STATUS_NOT_FOUND, "HOLD_NOT_FOUND");
    assert_status(pt_hold(m2, "mbr-1", 10, "cart", 60, NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    assert_balance(m1, "mbr-1", 90, 10, 0);
    pt_assert_ledger_clean(m1);
}

Test(points_ledger, spending_across_many_lots_keeps_fifo_order) {
    /* Goal: a spend that needs more lots than the first page read (40 one-point lots, hold 35)
     * still takes them soonest-expiring first. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("many");
    pt_configure(m);
    enum { LOTS = 40 };
    Loyalty__V1__PointsImportLot items[LOTS];
    Loyalty__V1__PointsImportLot *ptrs[LOTS];
    char dates[LOTS][11];
    for (int i = 0; i < LOTS; i++) {
        Loyalty__V1__PointsImportLot init = LOYALTY__V1__POINTS_IMPORT_LOT__INIT;
        items[i] = init;
        snprintf(dates[i], sizeof dates[i], "2031-%02d-%02d", 12 - i / 28, 28 - i % 28);
        items[i].member_id = "mbr-1";
        items[i].points = 1;
        items[i].expiry_date = dates[i]; /* later items expire sooner */
        ptrs[i] = &items[i];
    }
    Loyalty__V1__PointsImportLotsRequest req = LOYALTY__V1__POINTS_IMPORT_LOTS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.batch_id = "many-lots";
    req.lots = ptrs;
    req.n_lots = LOTS;
    assert_ok(pcall("ImportLots", &req, NULL));
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-1", 35, "cart-many", 60, &h));
    cr_assert_eq(h->n_lots, 35);
    for (size_t i = 0; i < h->n_lots; i++) {
        cr_assert_str_eq(h->lots[i]->expiry_date, dates[LOTS - 1 - i], "lot %zu", i);
        cr_assert_eq(h->lots[i]->points, -1);
    }
    assert_balance(m, "mbr-1", 5, 35, 0);
    pt_assert_ledger_clean(m);
}
