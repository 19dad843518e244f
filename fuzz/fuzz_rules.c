/* fuzz_rules.c -- libFuzzer target over the pure rule engines: member-svc's tier engine,
 * promo-svc's quote, points-svc's and wallet-svc's money rules. The first byte picks an engine,
 * the rest drives its inputs (bounded to what validation lets through), and each run checks the
 * engine's invariants and aborts when one breaks: nothing goes negative, parts add up to their
 * whole, and the same input gives the same output (every engine runs twice). */
#include "arena.h"
#include "member_tiers.h"
#include "money.h"
#include "points_rules.h"
#include "promo_quote.h"
#include "promo_rules.h"
#include "wallet_rules.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fuzz_check(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant broken: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define LOTS_MAX 8
#define OPS_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the fuzzer's bytes as bounded numbers; zeros once they run out. */
typedef struct input {
    const uint8_t *p;
    size_t n;
} input_t;

static uint64_t in_u64(input_t *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8 && in->n > 0; i++) {
        v = v << 8 | *in->p++;
        in->n--;
    }
    return v;
}

/* A number in 0..max: small byte-sized values most of the time, the edges sometimes. */
static int64_t in_range(input_t *in, int64_t max) {
    uint8_t sel = in->n ? *in->p : 0;
    if (in->n) {
        in->p++;
        in->n--;
    }
    switch (sel & 3u) {
    case 0:
        return max;
    case 1:
        return (int64_t)(in_u64(in) % ((uint64_t)max + 1));
    default:
        return (int64_t)((sel >> 2) % ((uint64_t)max + 1));
    }
}

/* ---- member-svc: the tier engine ---- */

static void tier_check_state(const member_ladder_t *l, const member_tier_state_t *s) {
    fuzz_check(s->value >= 0, "value %lld", (long long)s->value);
    fuzz_check(s->level >= 0 && s->level <= l->n, "level %d of %d", s->level, l->n);
    fuzz_check(s->base_level >= 0 && s->base_level <= s->level, "base %d level %d", s->base_level,
               s->level);
    fuzz_check(s->express_level >= 0 && s->express_level <= s->level, "express %d level %d",
               s->express_level, s->level);
    fuzz_check(s->level > 0 || s->period_end == MEMBER_DAY_NONE, "no tier, no period end");
}

/* One member's life on a ladder from the input; writes its final state. */
static bool tier_run(const uint8_t *data, size_t size, member_tier_state_t *out) {
    input_t in = {data, size};
    member_ladder_t l = {.n = (int)(1 + in_range(&in, MEMBER_TIERS_MAX - 1))};
    int64_t up = 0, retain = 0, express = 0;
    for (int i = 0; i < l.n; i++) {
        up += i == 0 ? in_range(&in, 1000) : 1 + in_range(&in, 100000);
        retain = retain + in_range(&in, up - retain > 0 ? up - retain : 0);
        express = in_range(&in, 1) ? express + 1 + in_range(&in, 100000) : 0;
        l.tiers[i] = (member_tier_rule_t){.rank = i + 1,
                                          .upgrade_threshold = up,
                                          .retain_threshold = retain < up ? retain : up,
                                          .period_months = (int32_t)in_range(&in, 24),
                                          .express_spend_cents = express,
                                          .ref = i};
    }
    status_t st = member_ladder_check(&l);
    if (!status_is_ok(&st)) {
        return false; /* the rpc layer never stores such a ladder */
    }
    int64_t today = 20000 + in_range(&in, 3000);
    member_tier_state_t s;
    member_tier_event_t ev[OPS_MAX * 2 + 2];
    member_tier_join(&l, today, &s, &ev[0]);
    tier_check_state(&l, &s);
    for (int op = 0; op < OPS_MAX && in.n > 0; op++) {
        int kind = (int)in_range(&in, 2);
        int64_t delta = in_range(&in, MEMBER_THRESHOLD_MAX);
        if (kind == 0) {
            member_tier_on_order(&l, &s, delta, in_range(&in, MEMBER_THRESHOLD_MAX), today, &ev[0]);
        } else if (kind == 1) {
            member_tier_on_return(&l, &s, delta, in_range(&in, MEMBER_THRESHOLD_MAX), today,
                                  &ev[0]);
        } else {
            today += in_range(&in, 800);
            int n = member_tier_on_period_end(&l, &s, today, ev, (int)(sizeof ev / sizeof ev[0]));
            fuzz_check(n >= 0 && n <= (int)(sizeof ev / sizeof ev[0]), "%d events", n);
            for (int k = 0; k < n; k++) {
                fuzz_check(ev[k].value_before >= 0 && ev[k].value_after >= 0, "event value");
                fuzz_check(ev[k].to_level >= 0 && ev[k].to_level <= l.n, "event level");
            }
        }
        tier_check_state(&l, &s);
    }
    *out = s;
    return true;
}

static void fuzz_tiers(const uint8_t *data, size_t size) {
    member_tier_state_t a, b;
    if (!tier_run(data, size, &a)) {
        return;
    }
    fuzz_check(tier_run(data, size, &b), "second run");
    fuzz_check(memcmp(&a, &b, sizeof a) == 0, "same input, same state");
}

/* ---- promo-svc: the quote ---- */

#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x
#define PROMOS_MAX 6
#define LINES_MAX 6

typedef struct promo_fx {
    Loyalty__V1__PromoCart cart;
    Loyalty__V1__PromoCartLine line_store[LINES_MAX];
    Loyalty__V1__PromoCartLine *lines[LINES_MAX];
    Loyalty__V1__Promotion promo_store[PROMOS_MAX];
    Loyalty__V1__PromoPercentOff pct[PROMOS_MAX];
    Loyalty__V1__PromoAmountOff amt[PROMOS_MAX];
    Loyalty__V1__PromoFreeShipping ship[PROMOS_MAX];
    Loyalty__V1__PromoBuyXGetY bxgy[PROMOS_MAX];
    Loyalty__V1__PromoConditions cond[PROMOS_MAX];
    promo_candidate_t cands[PROMOS_MAX];
    size_t n_cands;
} promo_fx_t;

static const char *const fx_ids[PROMOS_MAX] = {"p0", "p1", "p2", "p3", "p4", "p5"};
static const char *const fx_skus[] = {"S1", "S2", "S3"};
static const char *const fx_cats[] = {"c1", "c2", ""};

static void promo_build(input_t *in, promo_fx_t *f) {
    memset(f, 0, sizeof *f);
    loyalty__v1__promo_cart__init(&f->cart);
    f->cart.member_id = "mbr_1";
    f->cart.tier_id = "gold";
    f->cart.tier_rank = 2;
    f->cart.segment = "ACTIVE";
    f->cart.store_id = "store-1";
    f->cart.tier_discount_bps = in_range(in, 10000);
    f->cart.shipping_cents = in_range(in, 100000);
    f->cart.lines = f->lines;
    size_t n = 1 + (size_t)in_range(in, LINES_MAX - 1);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__PromoCartLine *l = &f->line_store[i];
        loyalty__v1__promo_cart_line__init(l);
        static const char *const ids[LINES_MAX] = {"L1", "L2", "L3", "L4", "L5", "L6"};
        l->line_id = (char *)ids[i];
        l->sku = (char *)fx_skus[in_range(in, 2)];
        l->category = (char *)fx_cats[in_range(in, 2)];
        l->quantity = 1 + in_range(in, 999);
        l->unit_price_cents = in_range(in, 10000000);
        f->lines[f->cart.n_lines++] = l;
    }
    size_t np = (size_t)in_range(in, PROMOS_MAX);
    for (size_t k = 0; k < np; k++) {
        Loyalty__V1__Promotion *p = &f->promo_store[k];
        loyalty__v1__promotion__init(p);
        p->id = (char *)fx_ids[k];
        p->name = "promotion";
        p->status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE;
        p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
        p->priority = (int32_t)in_range(in, 4) - 2;
        p->exclusive = in_range(in, 3) == 0;
        switch (in_range(in, 3)) {
        case 0:
            loyalty__v1__promo_percent_off__init(&f->pct[k]);
            f->pct[k].percent_off_bps = 1 + in_range(in, 9999);
            f->pct[k].max_discount_cents = in_range(in, 100000);
            p->rule_case = RULE(PERCENT_OFF);
            p->percent_off = &f->pct[k];
            break;
        case 1:
            loyalty__v1__promo_amount_off__init(&f->amt[k]);
            f->amt[k].amount_off_cents = 1 + in_range(in, 1000000);
            p->rule_case = RULE(AMOUNT_OFF);
            p->amount_off = &f->amt[k];
            break;
        case 2:
            loyalty__v1__promo_free_shipping__init(&f->ship[k]);
            f->ship[k].max_discount_cents = in_range(in, 1000);
            p->rule_case = RULE(FREE_SHIPPING);
            p->free_shipping = &f->ship[k];
            break;
        default:
            loyalty__v1__promo_buy_xget_y__init(&f->bxgy[k]);
            f->bxgy[k].buy_quantity = (int32_t)(1 + in_range(in, 4));
            f->bxgy[k].get_quantity = (int32_t)(1 + in_range(in, 3));
            f->bxgy[k].get_discount_bps = 1 + in_range(in, 9999);
            f->bxgy[k].max_applications = (int32_t)in_range(in, 3);
            p->rule_case = RULE(BUY_X_GET_Y);
            p->buy_x_get_y = &f->bxgy[k];
            break;
        }
        if (in_range(in, 2) == 0) {
            loyalty__v1__promo_conditions__init(&f->cond[k]);
            f->cond[k].min_spend_cents = in_range(in, 1000000);
            p->conditions = &f->cond[k];
        }
        f->cands[f->n_cands++] = (promo_candidate_t){
            .promotion = p,
            .limit = {.blocked = PROMO_REASON(UNSPECIFIED),
                      .budget_left_cents = in_range(in, 3) == 0 ? in_range(in, 5000) : INT64_MAX}};
    }
}

static void promo_check(const promo_fx_t *f, const Loyalty__V1__PromoQuoteResult *r) {
    int64_t subtotal = 0, merch = 0;
    fuzz_check(r->n_lines == f->cart.n_lines, "lines");
    for (size_t i = 0; i < r->n_lines; i++) {
        const Loyalty__V1__PromoQuoteLine *l = r->lines[i];
        fuzz_check(l->final_amount_cents >= 0 && l->tier_discount_cents >= 0 &&
                       l->promotion_discount_cents >= 0 && l->coupon_discount_cents >= 0,
                   "line %zu negative", i);
        fuzz_check(l->list_amount_cents == l->quantity * f->cart.lines[i]->unit_price_cents,
                   "list amount");
        fuzz_check(l->final_amount_cents == l->list_amount_cents - l->tier_discount_cents -
                                                l->promotion_discount_cents -
                                                l->coupon_discount_cents,
                   "line %zu does not add up", i);
        int64_t sum = 0;
        for (size_t k = 0; k < l->n_discounts; k++) {
            fuzz_check(l->discounts[k]->amount_cents > 0, "discount");
            sum += l->discounts[k]->amount_cents;
        }
        fuzz_check(sum == l->list_amount_cents - l->final_amount_cents, "discounts sum");
        subtotal += l->list_amount_cents;
        merch += l->final_amount_cents;
    }
    fuzz_check(r->subtotal_cents == subtotal, "subtotal");
    fuzz_check(r->merchandise_cents == merch, "merchandise");
    fuzz_check(r->shipping_discount_cents >= 0 && r->shipping_discount_cents <= r->shipping_cents,
               "shipping");
    fuzz_check(r->total_cents == merch + r->shipping_cents - r->shipping_discount_cents, "total");
    fuzz_check(r->total_cents >= 0, "total negative");
    fuzz_check(r->n_considered == f->n_cands, "considered");
}

static void fuzz_promo(const uint8_t *data, size_t size) {
    static promo_fx_t f;
    input_t in = {data, size};
    promo_build(&in, &f);
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PromoCart checked;
    loyalty__v1__promo_cart__init(&checked);
    status_t st = promo_rules_check_cart(&a, &f.cart, &checked);
    if (!status_is_ok(&st)) {
        arena_free(&a); /* Quote refuses such a cart before pricing it */
        return;
    }
    promo_quote_input_t q = {
        .cart = &checked, .at = 1764000000, .candidates = f.cands, .n_candidates = f.n_cands};
    Loyalty__V1__PromoQuoteResult *r1 = NULL, *r2 = NULL;
    st = promo_quote(&a, &q, &r1);
    fuzz_check(status_is_ok(&st), "%s %s", st.reason, st.message);
    promo_check(&f, r1);
    st = promo_quote(&a, &q, &r2);
    fuzz_check(status_is_ok(&st), "second quote");
    size_t n1 = protobuf_c_message_get_packed_size(&r1->base);
    size_t n2 = protobuf_c_message_get_packed_size(&r2->base);
    fuzz_check(n1 == n2, "same input, same quote size");
    uint8_t *b1 = arena_alloc(&a, n1 + 1), *b2 = arena_alloc(&a, n2 + 1);
    protobuf_c_message_pack(&r1->base, b1);
    protobuf_c_message_pack(&r2->base, b2);
    fuzz_check(memcmp(b1, b2, n1) == 0, "same input, same quote");
    arena_free(&a);
}

/* ---- points-svc and wallet-svc: lots, splits, redemption, refunds ---- */

static void fuzz_points(const uint8_t *data, size_t size) {
    input_t in = {data, size};
    int64_t remaining[LOTS_MAX], take[LOTS_MAX], take2[LOTS_MAX];
    size_t n = (size_t)in_range(&in, LOTS_MAX);
    int64_t held = 0;
    for (size_t i = 0; i < n; i++) {
        remaining[i] = in_range(&in, POINTS_MAX);
        held += remaining[i];
    }
    int64_t need = in_range(&in, POINTS_MAX);
    int64_t got = points_rules_take_in_order(remaining, n, need, take);
    fuzz_check(points_rules_take_in_order(remaining, n, need, take2) == got &&
                   memcmp(take, take2, n * sizeof *take) == 0,
               "same input, same take");
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        fuzz_check(take[i] >= 0 && take[i] <= remaining[i], "lot %zu", i);
        sum += take[i];
    }
    fuzz_check(sum == got, "takes add up");
    fuzz_check(got == (need < held ? need : held), "takes what there is, up to need");

    Loyalty__V1__PointsSettings s;
    loyalty__v1__points_settings__init(&s);
    points_rules_default_settings(&s);
    s.redeem_points = in_range(&in, POINTS_RATE_MAX);
    s.redeem_value_cents = in_range(&in, POINTS_RATE_MAX);
    s.redeem_min_points = in_range(&in, POINTS_MAX);
    s.redeem_max_order_share_bps = in_range(&in, 10000);
    status_t st = points_rules_check_settings(&s);
    if (status_is_ok(&st)) {
        int64_t available = in_range(&in, POINTS_MAX), total = in_range(&in, POINTS_CENTS_MAX);
        points_redeem_quote_t q1, q2;
        points_rules_quote_redeem(&s, available, total, &q1);
        points_rules_quote_redeem(&s, available, total, &q2);
        fuzz_check(q1.points == q2.points && q1.cash_value_cents == q2.cash_value_cents,
                   "same input, same quote");
        fuzz_check(q1.points >= 0 && q1.points <= available, "points %lld of %lld",
                   (long long)q1.points, (long long)available);
        fuzz_check(q1.cash_value_cents >= 0 && q1.cash_value_cents <= q1.max_cash_cents,
                   "cash %lld cap %lld", (long long)q1.cash_value_cents,
                   (long long)q1.max_cash_cents);
        fuzz_check(q1.cash_value_cents == points_rules_cash_value(&s, q1.points), "cash value");
        fuzz_check(points_rules_cash_value(&s, available) >= 0, "cash value negative");
    }

    /* Reversals of one order in steps: never more than the total, never negative. */
    int64_t total = in_range(&in, POINTS_MAX), bps = 0, done = 0;
    for (int k = 0; k < OPS_MAX && in.n > 0; k++) {
        int64_t after = 0;
        st = points_rules_reversal_bps(bps, 1 + in_range(&in, 9999), &after);
        if (!status_is_ok(&st)) {
            break;
        }
        int64_t step = points_rules_reversal_amount(total, after, done);
        fuzz_check(step >= 0, "reversal step");
        done += step;
        bps = after;
        fuzz_check(done <= total, "reversed %lld of %lld", (long long)done, (long long)total);
    }
    if (bps == 10000) {
        fuzz_check(done == total, "a full reversal moves everything");
    }
}

static void fuzz_wallet(const uint8_t *data, size_t size) {
    input_t in = {data, size};
    int64_t avail[LOTS_MAX], parts[LOTS_MAX], parts2[LOTS_MAX];
    int n = (int)in_range(&in, LOTS_MAX);
    int64_t sum_avail = 0;
    for (int i = 0; i < n; i++) {
        avail[i] = in_range(&in, WALLET_AMOUNT_MAX);
        sum_avail += avail[i];
    }
    int64_t amount = in_range(&in, WALLET_AMOUNT_MAX);
    bool ok = wallet_take_in_order(avail, n, amount, parts);
    fuzz_check(ok == (amount <= sum_avail), "take in order: %d", ok);
    if (ok) {
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            fuzz_check(parts[i] >= 0 && parts[i] <= avail[i], "part %d", i);
            sum += parts[i];
        }
        fuzz_check(sum == amount, "parts add up");
        fuzz_check(wallet_take_in_order(avail, n, amount, parts2) &&
                       memcmp(parts, parts2, (size_t)n * sizeof *parts) == 0,
                   "same input, same parts");
    }
    ok = wallet_split_pro_rata(avail, n, amount, parts);
    fuzz_check(ok == (amount >= 1 && amount <= sum_avail), "pro rata: %d", ok);
    if (ok) {
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            fuzz_check(parts[i] >= 0 && parts[i] <= avail[i], "share %d", i);
            sum += parts[i];
        }
        fuzz_check(sum == amount, "shares add up");
        fuzz_check(wallet_split_pro_rata(avail, n, amount, parts2) &&
                       memcmp(parts, parts2, (size_t)n * sizeof *parts) == 0,
                   "same input, same shares");
    }

    /* A top-up refunded in steps forfeits its bonus exactly once in all. */
    int64_t paid = 1 + in_range(&in, WALLET_AMOUNT_MAX - 1);
    int64_t bonus = in_range(&in, paid * WALLET_BONUS_FACTOR_MAX);
    int64_t refunded = 0, forfeited = 0;
    for (int k = 0; k < OPS_MAX && refunded < paid; k++) {
        int64_t now = k == OPS_MAX - 1 || in.n == 0 ? paid - refunded
                                                     : 1 + in_range(&in, paid - refunded - 1);
        int64_t refundable = wallet_top_up_refundable(paid, bonus, refunded, paid - refunded,
                                                      bonus - forfeited);
        fuzz_check(refundable >= 0 && refundable <= paid - refunded, "refundable %lld",
                   (long long)refundable);
        int64_t f = 0;
        fuzz_check(wallet_forfeit_cents(paid, bonus, refunded, now, &f), "forfeit refused");
        fuzz_check(f >= 0 && forfeited + f <= bonus, "forfeit %lld", (long long)f);
        refunded += now;
        forfeited += f;
    }
    fuzz_check(refunded == paid && forfeited == bonus, "full refund forfeits the bonus: %lld/%lld",
               (long long)forfeited, (long long)bonus);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_tiers(data + 1, size - 1);
        break;
    case 1:
        fuzz_promo(data + 1, size - 1);
        break;
    case 2:
        fuzz_points(data + 1, size - 1);
        break;
    default:
        fuzz_wallet(data + 1, size - 1);
        break;
    }
    return 0;
}
