/* points_ops.c -- movements of a member's points (see points_ops.h). Invariants kept here:
 *   lots_points = sum of ACTIVE lots' remaining      held = sum of ACTIVE holds
 *   pending     = sum of PENDING lots' remaining     debt > 0 only while lots_points = 0
 *   every lot's remaining = the sum of its entry shares; every total = the sum of its deltas. */
#include "points_ops.h"

#include "ids.h"
#include "jsonw.h"
#include "outbox.h"
#include "pb.h"
#include "points_cache.h"

#include <assert.h>
#include <string.h>

#define LEDGER_CLOSE_ROUNDS_MAX 4

int64_t points_ops_available(const points_ledger_t *lg) {
    return lg->acct.lots_points - lg->acct.debt;
}

/* What holds of the totals after every movement if the code is right: each is a sum of lot
 * remainders or of history deltas that never goes below zero, and debt is only what the lots
 * could not cover (repaid as soon as they can, at close). */
static void ledger_assert_totals(const points_ledger_t *lg) {
    const points_account_t *a = &lg->acct;
    assert(a->lots_points >= 0 && a->held >= 0 && a->pending >= 0 && a->debt >= 0);
    assert(a->lifetime_earned >= 0 && a->growth >= 0);
    (void)a;
}

/* Appends a history entry; deltas were already applied to lg->acct. */
static status_t ledger_entry(points_ledger_t *lg, points_new_entry_t *e,
                             Loyalty__V1__PointsEntry **out) {
    ledger_assert_totals(lg);
    e->member_id = lg->member;
    e->available_after = points_ops_available(lg);
    e->now = lg->now;
    return points_store_insert_entry(lg->db, lg->a, lg->merchant, e, out);
}

/* A copy of shares with every amount negated (amounts taken out of lots and put back). */
static points_share_t *negated(arena_t *a, const points_share_t *s, int n) {
    points_share_t *out = arena_alloc(a, ((size_t)n + 1) * sizeof *out);
    for (int i = 0; i < n; i++) {
        out[i] = s[i];
        out[i].points = -s[i].points;
    }
    return out;
}

/* Adds shares to lots; points put back may land in a lot that already expired (due now). */
static status_t lots_add(points_ledger_t *lg, const points_share_t *shares, int n) {
    for (int i = 0; i < n; i++) {
        lg->lots_refilled |= shares[i].points > 0;
    }
    return points_store_add_to_lots(lg->db, lg->a, lg->merchant, shares, n);
}

/* Selects and takes `need` points from ACTIVE lots in spending order (skipping except_lot);
 * *shares receives the negative shares taken, *taken their total (may fall short). */
static status_t take_fifo(points_ledger_t *lg, int64_t need, const char *except_lot,
                          points_share_t **shares, int *n, int64_t *taken) {
    *n = 0;
    *taken = 0;
    *shares = NULL;
    if (need <= 0) {
        return status_ok();
    }
    points_share_t *lots = NULL;
    int count = 0;
    status_t st = points_store_spendable_lots(lg->db, lg->a, lg->merchant, lg->member, need,
                                              except_lot, &lots, &count);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t *rem = arena_alloc(lg->a, ((size_t)count + 1) * sizeof *rem);
    int64_t *take = arena_alloc(lg->a, ((size_t)count + 1) * sizeof *take);
    for (int i = 0; i < count; i++) {
        rem[i] = lots[i].points;
    }
    *taken = points_rules_take_in_order(rem, (size_t)count, need, take);
    for (int i = 0; i < count; i++) {
        lots[i].points = -take[i];
    }
    *shares = lots;
    *n = count;
    return lots_add(lg, lots, count);
}

static void ledger_init(points_ledger_t *lg, rpc_ctx_t *ctx, db_t *db, arena_t *a,
                        const char *merchant, const char *member, int64_t now) {
    memset(lg, 0, sizeof *lg);
    lg->ctx = ctx;
    lg->db = db;
    lg->a = a;
    lg->merchant = merchant;
    lg->member = member;
    lg->now = now;
}

/* Whatever fell due by now, settled before the operation. */
static status_t ledger_settle_due(points_ledger_t *lg) {
    if (lg->acct.has_due && lg->acct.next_due_at <= lg->now) {
        return points_ops_settle(lg);
    }
    return status_ok();
}

status_t points_ops_open(points_ledger_t *lg, rpc_ctx_t *ctx, db_t *db, arena_t *a,
                         const char *merchant, const char *member, int64_t now, bool create) {
    ledger_init(lg, ctx, db, a, merchant, member, now);
    status_t st =
        points_store_account_get(db, merchant, member, true, create, &lg->acct, &lg->found);
    if (!status_is_ok(&st) || !lg->found) {
        return st;
    }
    lg->available_opened = points_ops_available(lg);
    return ledger_settle_due(lg);
}

status_t points_ops_open_locked(points_ledger_t *lg, rpc_ctx_t *ctx, db_t *db, arena_t *a,
                                const char *merchant, const char *member, int64_t now,
                                const points_account_t *acct) {
    ledger_init(lg, ctx, db, a, merchant, member, now);
    lg->acct = *acct;
    lg->found = true;
    lg->available_opened = points_ops_available(lg);
    return ledger_settle_due(lg);
}

/* Lots pay off debt left by an earlier claw-back: available does not change (lots and debt
 * shrink together), but the lots that paid are recorded. */
static status_t repay_debt(points_ledger_t *lg) {
    int64_t x = lg->acct.debt < lg->acct.lots_points ? lg->acct.debt : lg->acct.lots_points;
    if (x <= 0) {
        return status_ok();
    }
    points_share_t *shares = NULL;
    int n = 0;
    int64_t taken = 0;
    status_t st = take_fifo(lg, x, "", &shares, &n, &taken);
    if (!status_is_ok(&st)) {
        return st;
    }
    assert(taken == x); /* lots_points says the lots hold at least x */
    lg->acct.lots_points -= x;
    lg->acct.debt -= x;
    points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_DEBT_REPAY,
                            .shares = shares,
                            .n_shares = n};
    return ledger_entry(lg, &e, NULL);
}

static status_t ledger_announce(points_ledger_t *lg);

status_t points_ops_close(points_ledger_t *lg) {
    assert(lg->found);
    for (int round = 0; round < LEDGER_CLOSE_ROUNDS_MAX; round++) {
        status_t st = repay_debt(lg);
        if (!status_is_ok(&st)) {
            return st;
        }
        ledger_assert_totals(lg);
        assert(lg->acct.debt == 0 || lg->acct.lots_points == 0); /* repay_debt just ran */
        bool deferred = lg->save_deferred && !lg->lots_refilled;
        st = points_store_account_save(lg->db, lg->merchant, lg->member, lg->now, deferred,
                                       &lg->acct);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (deferred || !lg->acct.has_due || lg->acct.next_due_at > lg->now) {
            break;
        }
        st = points_ops_settle(lg); /* e.g. points restored into an expired lot */
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (lg->ctx == NULL) {
        return status_ok();
    }
    points_cache_invalidate(lg->ctx, lg->merchant, lg->member);
    return ledger_announce(lg);
}

/* points.earned for integrations, in the transaction that creates the lot (so it is
 * published exactly when the points exist). With `balance`, it also carries the member's
 * available balance and the account version the close saved, so that member-svc's
 * points_balance tag rules learn a referrer's or a buyer's new balance from the event the earn
 * writes anyway (no event of its own on the checkout's path). */
static status_t ledger_emit_earned(points_ledger_t *lg, bool balance) {
    const points_credit_t *c = &lg->earned;
    const Loyalty__V1__PointsLot *l = lg->earned_lot;
    const ProtobufCEnumValue *source =
        protobuf_c_enum_descriptor_get_value(&loyalty__v1__points_source__descriptor, c->source);
    char payload[1024];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", lg->member);
    jsonw_str(&w, "lot_id", l->id);
    jsonw_int(&w, "points", c->points);
    jsonw_str(&w, "source", source ? source->name : "");
    jsonw_str(&w, "reference", c->reference ? c->reference : "");
    jsonw_bool(&w, "pending", c->pending);
    jsonw_int(&w, "available_at", c->available_at);
    jsonw_str(&w, "expiry_date", l->expiry_date);
    if (balance) {
        jsonw_int(&w, "available", points_ops_available(lg));
        jsonw_int(&w, "version", lg->acct.version);
    }
    jsonw_end(&w);
    lg->earned_waiting = false;
    return outbox_emit(lg->ctx, lg->merchant, OUTBOX_EVENTS_STREAM, "points.earned", lg->member,
                       payload, NULL);
}

/* The balance events of a closed ledger (see points_ledger_t.available_opened): the waiting
 * points.earned with the balance, or else points.balance when the balance moved and no other
 * report of it is on its way. lg->acct.version is the version the close just saved. */
static status_t ledger_announce(points_ledger_t *lg) {
    if (lg->earned_waiting) {
        return ledger_emit_earned(lg, true);
    }
    int64_t available = points_ops_available(lg);
    if (available == lg->available_opened || (lg->balance_quiet && !lg->settled_moved)) {
        return status_ok();
    }
    char payload[256];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", lg->member);
    jsonw_int(&w, "available", available);
    jsonw_int(&w, "version", lg->acct.version);
    jsonw_end(&w);
    return outbox_emit(lg->ctx, lg->merchant, OUTBOX_EVENTS_STREAM, "points.balance", lg->member,
                       payload, NULL);
}

void points_ops_new_lot(const points_credit_t *c, const char *member, const char *id,
                        points_new_lot_t *out) {
    *out = (points_new_lot_t){
        .id = id,
        .member_id = member,
        .source = c->source,
        .reference = c->reference ? c->reference : "",
        .points = c->points,
        .pending = c->pending,
        .earned_at = c->earned_at,
        .available_at = c->available_at,
        .has_expiry = c->has_expiry,
        .expiry_day = c->expiry_day,
        .time_zone = c->time_zone,
        .claim = c->claim,
        .claim_growth = c->claim_growth,
    };
}

status_t points_ops_credit(points_ledger_t *lg, const points_credit_t *c,
                           Loyalty__V1__PointsLot **lot, Loyalty__V1__PointsEntry **entry) {
    assert(lg->found && c->points > 0);
    Loyalty__V1__PointsLot *l = (Loyalty__V1__PointsLot *)c->made;
    status_t st = status_ok();
    if (l == NULL) {
        char id[ID_MAX];
        id_generate("lot", id);
        points_new_lot_t nl;
        points_ops_new_lot(c, lg->member, id, &nl);
        st = points_store_insert_lot(lg->db, lg->a, lg->merchant, &nl, &l);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    /* a lot made beforehand is this credit's own */
    assert(strcmp(l->member_id, lg->member) == 0 && l->points == c->points);
    points_new_entry_t e = {.kind = c->kind,
                            .source = c->source,
                            .reference = c->reference ? c->reference : "",
                            .reason = c->reason,
                            .operator_name = c->operator_name};
    if (c->pending) {
        lg->acct.pending += c->points;
        e.pending_delta = c->points;
    } else {
        lg->acct.lots_points += c->points;
        e.available_delta = c->points;
    }
    if (c->lifetime) {
        lg->acct.lifetime_earned += c->points;
    }
    points_share_t share = {.lot_id = l->id, .points = c->points, .expiry_date = l->expiry_date};
    e.shares = &share;
    e.n_shares = 1;
    if (lot) {
        *lot = l;
    }
    Loyalty__V1__PointsEntry *made = NULL;
    st = ledger_entry(lg, &e, &made);
    if (entry) {
        *entry = made;
    }
    if (!status_is_ok(&st) || c->kind != LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN ||
        lg->ctx == NULL) {
        return st;
    }
    /* A second earn in one ledger: the first one's event goes now, without the balance, which
     * the last one's carries at close. */
    if (lg->earned_waiting) {
        st = ledger_emit_earned(lg, false);
    }
    lg->earned = *c;
    lg->earned_lot = l;
    lg->earned_waiting = true;
    return st;
}

status_t points_ops_debit(points_ledger_t *lg, const points_debit_t *d, int64_t *debt_added,
                          Loyalty__V1__PointsEntry **entry) {
    assert(lg->found && d->points > 0);
    *debt_added = 0;
    if (!d->allow_debt && points_ops_available(lg) < d->points) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_INSUFFICIENT_POINTS,
                           "%lld points available, %lld needed",
                           (long long)points_ops_available(lg), (long long)d->points);
    }
    /* First from the named lot (the returned order's own lot), then soonest-expiring first. */
    points_share_t first = {0};
    int64_t from_first = 0;
    if (d->first_lot && d->first_lot[0]) {
        Loyalty__V1__PointsLot *l = NULL;
        status_t st = points_store_get_lot(lg->db, lg->a, lg->merchant, d->first_lot, &l);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (l && l->status == LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_ACTIVE &&
            l->remaining > 0 && strcmp(l->member_id, lg->member) == 0) {
            from_first = l->remaining < d->points ? l->remaining : d->points;
            first = (points_share_t){l->id, -from_first, l->expiry_date};
            st = lots_add(lg, &first, 1);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
    }
    points_share_t *rest = NULL;
    int n = 0;
    int64_t taken = 0;
    status_t st =
        take_fifo(lg, d->points - from_first, from_first ? first.lot_id : "", &rest, &n, &taken);
    if (!status_is_ok(&st)) {
        return st;
    }
    points_share_t *shares = arena_alloc(lg->a, ((size_t)n + 2) * sizeof *shares);
    int k = 0;
    if (from_first) {
        shares[k++] = first;
    }
    for (int i = 0; i < n; i++) {
        if (rest[i].points != 0) {
            shares[k++] = rest[i];
        }
    }
    int64_t covered = from_first + taken;
    lg->acct.lots_points -= covered;
    *debt_added = d->points - covered;
    lg->acct.debt += *debt_added;
    if (d->lifetime) {
        lg->acct.lifetime_earned -= d->points;
    }
    points_new_entry_t e = {.kind = d->kind,
                            .available_delta = -d->points,
                            .source = d->source,
                            .reference = d->reference,
                            .reason = d->reason,
                            .operator_name = d->operator_name,
                            .shares = shares,
                            .n_shares = k};
    return ledger_entry(lg, &e, entry);
}

static Loyalty__V1__PointsLotShare **share_messages(arena_t *a, const points_share_t *s, int n) {
    Loyalty__V1__PointsLotShare **out = arena_alloc(a, ((size_t)n + 1) * sizeof *out);
    for (int i = 0; i < n; i++) {
        out[i] = pb_new(a, &loyalty__v1__points_lot_share__descriptor);
        out[i]->lot_id = (char *)s[i].lot_id;
        out[i]->points = s[i].points;
        out[i]->expiry_date = (char *)s[i].expiry_date;
    }
    return out;
}

status_t points_ops_hold(points_ledger_t *lg, const char *hold_id, const char *reference,
                         int64_t points, int64_t cash_value_cents, int64_t expires_at,
                         Loyalty__V1__PointsHold **out) {
    int64_t available = lg->found ? points_ops_available(lg) : 0;
    if (available < points) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_INSUFFICIENT_POINTS,
                           "%lld points available, %lld needed", (long long)available,
                           (long long)points);
    }
    points_share_t *shares = NULL;
    int n = 0;
    int64_t taken = 0;
    status_t st = take_fifo(lg, points, "", &shares, &n, &taken);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (taken != points) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_MISMATCH,
                           "lots hold %lld points, the account says %lld", (long long)taken,
                           (long long)points);
    }
    st = points_store_insert_hold(lg->db, lg->merchant, hold_id, lg->member, reference, points,
                                  cash_value_cents, lg->now, expires_at, shares, n);
    if (!status_is_ok(&st)) {
        return st;
    }
    lg->acct.lots_points -= points;
    lg->acct.held += points;
    points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD,
                            .available_delta = -points,
                            .held_delta = points,
                            .reference = reference,
                            .hold_id = hold_id,
                            .shares = shares,
                            .n_shares = n};
    st = ledger_entry(lg, &e, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__PointsHold *h = pb_new(lg->a, &loyalty__v1__points_hold__descriptor);
    h->id = arena_strdup(lg->a, hold_id);
    h->member_id = (char *)lg->member;
    h->reference = (char *)reference;
    h->points = points;
    h->cash_value_cents = cash_value_cents;
    h->status = LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE;
    h->created_at = lg->now;
    h->expires_at = expires_at;
    h->lots = share_messages(lg->a, shares, n);
    h->n_lots = (size_t)n;
    *out = h;
    return status_ok();
}

status_t points_ops_release(points_ledger_t *lg, const Loyalty__V1__PointsHold *h, bool expired) {
    assert(h->status == LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE);
    int n = (int)h->n_lots;
    points_share_t *shares = arena_alloc(lg->a, ((size_t)n + 1) * sizeof *shares);
    for (int i = 0; i < n; i++) {
        shares[i] =
            (points_share_t){h->lots[i]->lot_id, -h->lots[i]->points, h->lots[i]->expiry_date};
    }
    status_t st = lots_add(lg, shares, n);
    if (!status_is_ok(&st)) {
        return st;
    }
    int status = expired ? LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_EXPIRED
                         : LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_RELEASED;
    st = points_store_finish_hold(lg->db, lg->merchant, h->id, status, lg->now);
    if (!status_is_ok(&st)) {
        return st;
    }
    lg->acct.held -= h->points;
    lg->acct.lots_points += h->points;
    points_new_entry_t e = {
        .kind = expired ? LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD_EXPIRED
                        : LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_RELEASE,
        .available_delta = h->points,
        .held_delta = -h->points,
        .reference = h->reference,
        .hold_id = h->id,
        .shares = shares,
        .n_shares = n};
    return ledger_entry(lg, &e, NULL);
}

status_t points_ops_commit(points_ledger_t *lg, const Loyalty__V1__PointsHold *h) {
    assert(h->status == LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE);
    status_t st = points_store_finish_hold(
        lg->db, lg->merchant, h->id, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED,
        lg->now);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* the committed hold is what the reference redeemed (ReverseOrder reads it there) */
    st = points_store_check_redeemer(lg->db, lg->merchant, h->reference, lg->member);
    if (!status_is_ok(&st)) {
        return st;
    }
    lg->acct.held -= h->points;
    points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_COMMIT,
                            .held_delta = -h->points,
                            .reference = h->reference,
                            .hold_id = h->id};
    return ledger_entry(lg, &e, NULL);
}

status_t points_ops_restore(points_ledger_t *lg, const char *reference, int64_t points,
                            const char *reason, int64_t *restored) {
    *restored = 0;
    if (points <= 0) {
        return status_ok();
    }
    points_share_t *lots = NULL;
    const char **hold_ids = NULL;
    int n = 0;
    status_t st = points_store_restorable(lg->db, lg->a, lg->merchant, lg->member, reference, &lots,
                                          &hold_ids, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t *rem = arena_alloc(lg->a, ((size_t)n + 1) * sizeof *rem);
    int64_t *give = arena_alloc(lg->a, ((size_t)n + 1) * sizeof *give);
    for (int i = 0; i < n; i++) {
        rem[i] = lots[i].points;
    }
    *restored = points_rules_take_in_order(rem, (size_t)n, points, give);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (give[i] == 0) {
            continue;
        }
        st = points_store_mark_restored(lg->db, lg->merchant, hold_ids[i], lots[i].lot_id, give[i]);
        if (!status_is_ok(&st)) {
            return st;
        }
        lots[k] = lots[i];
        lots[k++].points = give[i];
    }
    if (*restored == 0) {
        return status_ok();
    }
    st = lots_add(lg, lots, k);
    if (!status_is_ok(&st)) {
        return st;
    }
    lg->acct.lots_points += *restored;
    points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_RESTORE,
                            .available_delta = *restored,
                            .source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER,
                            .reference = reference,
                            .reason = reason,
                            .shares = lots,
                            .n_shares = k};
    return ledger_entry(lg, &e, NULL);
}

status_t points_ops_cancel_pending(points_ledger_t *lg, const char *lot_id, int64_t points,
                                   const char *reference, const char *reason) {
    Loyalty__V1__PointsLot *l = NULL;
    status_t st = points_store_get_lot(lg->db, lg->a, lg->merchant, lot_id, &l);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (l == NULL || l->status != LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING ||
        l->remaining < points) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_MISMATCH,
                           "pending lot %s cannot give %lld", lot_id, (long long)points);
    }
    points_share_t share = {l->id, -points, l->expiry_date};
    st = lots_add(lg, &share, 1);
    if (!status_is_ok(&st)) {
        return st;
    }
    lg->acct.pending -= points;
    lg->acct.lifetime_earned -= points;
    points_new_entry_t e = {.kind =
                                LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_CANCEL_PENDING,
                            .pending_delta = -points,
                            .source = l->source,
                            .reference = reference,
                            .reason = reason,
                            .shares = &share,
                            .n_shares = 1};
    return ledger_entry(lg, &e, NULL);
}

status_t points_ops_growth(points_ledger_t *lg, int kind, int64_t delta, int source,
                           const char *reference, const char *reason) {
    if (delta == 0) {
        return status_ok();
    }
    lg->acct.growth += delta;
    return points_store_insert_growth(lg->db, lg->merchant, lg->member, kind, delta,
                                      lg->acct.growth, source, reference, reason, lg->now);
}

static status_t settle_holds(points_ledger_t *lg) {
    char **ids = NULL;
    int n = 0;
    status_t st =
        points_store_expired_holds(lg->db, lg->a, lg->merchant, lg->member, lg->now, &ids, &n);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        Loyalty__V1__PointsHold *h = NULL;
        st = points_store_get_hold(lg->db, lg->a, lg->merchant, ids[i], NULL, &h);
        if (status_is_ok(&st)) {
            st = points_ops_release(lg, h, true);
            lg->stats.holds_expired++;
        }
    }
    return st;
}

static status_t settle_pending(points_ledger_t *lg) {
    Loyalty__V1__PointsLot **lots = NULL;
    int n = 0;
    status_t st =
        points_store_mature_lots(lg->db, lg->a, lg->merchant, lg->member, lg->now, &lots, &n);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        lg->acct.pending -= lots[i]->remaining;
        lg->acct.lots_points += lots[i]->remaining;
        lg->stats.lots_matured++;
        points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_MATURE,
                                .available_delta = lots[i]->remaining,
                                .pending_delta = -lots[i]->remaining,
                                .source = lots[i]->source,
                                .reference = lots[i]->reference};
        st = ledger_entry(lg, &e, NULL);
    }
    return st;
}

static status_t settle_expiry(points_ledger_t *lg) {
    points_share_t *lost = NULL;
    int n = 0;
    status_t st =
        points_store_expire_lots(lg->db, lg->a, lg->merchant, lg->member, lg->now, &lost, &n);
    if (!status_is_ok(&st) || n == 0) {
        return st;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        total += lost[i].points;
    }
    lg->acct.lots_points -= total;
    lg->stats.lots_expired += n;
    lg->stats.points_expired += total;
    points_new_entry_t e = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EXPIRE,
                            .available_delta = -total,
                            .shares = negated(lg->a, lost, n),
                            .n_shares = n};
    Loyalty__V1__PointsEntry *entry = NULL;
    st = ledger_entry(lg, &e, &entry);
    if (!status_is_ok(&st) || lg->ctx == NULL) {
        return st;
    }
    /* points.expired for integrations, in the same transaction: published once it commits, and
     * a settle that finds nothing due emits nothing, so no expiry is announced twice. */
    char payload[512];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", lg->member);
    jsonw_str(&w, "entry_id", entry->id);
    jsonw_int(&w, "points", total);
    jsonw_int(&w, "lots", n);
    jsonw_int(&w, "available_after", entry->available_after);
    jsonw_int(&w, "expired_at", lg->now);
    jsonw_end(&w);
    return outbox_emit(lg->ctx, lg->merchant, OUTBOX_EVENTS_STREAM, "points.expired", lg->member,
                       payload, NULL);
}

status_t points_ops_settle(points_ledger_t *lg) {
    int64_t before = points_ops_available(lg);
    /* Holds first: their points return to lots that the expiry step may then expire. */
    status_t st = settle_holds(lg);
    if (status_is_ok(&st)) {
        st = settle_pending(lg);
    }
    if (status_is_ok(&st)) {
        st = settle_expiry(lg);
    }
    lg->settled_moved |= points_ops_available(lg) != before;
    return st;
}

status_t points_balance_build(db_t *db, arena_t *a, const char *merchant, const char *member,
                              const points_account_t *acct, int64_t now, bool with_expiring,
                              Loyalty__V1__PointsBalance **out, int64_t *valid_until) {
    Loyalty__V1__PointsBalance *b = pb_new(a, &loyalty__v1__points_balance__descriptor);
    b->member_id = (char *)member;
    b->available = acct->lots_points - acct->debt;
    b->held = acct->held;
    b->pending = acct->pending;
    b->debt = acct->debt;
    b->lifetime_earned = acct->lifetime_earned;
    b->growth = acct->growth;
    b->expiring_within_days = POINTS_EXPIRING_WINDOW_DAYS;
    b->next_expiry_date = "";
    b->as_of_at = now;
    b->version = acct->version;
    *valid_until = acct->has_due ? acct->next_due_at : 0;
    if (with_expiring && acct->lots_points > 0) {
        points_expiring_t x;
        status_t st = points_store_expiring(db, a, merchant, member, now, &x);
        if (!status_is_ok(&st)) {
            return st;
        }
        b->expiring_points = x.within_window;
        b->next_expiry_date = (char *)x.next_date;
        b->next_expiry_points = x.next_points;
        if (x.window_changes_at && (*valid_until == 0 || x.window_changes_at < *valid_until)) {
            *valid_until = x.window_changes_at;
        }
    }
    *out = b;
    return status_ok();
}
