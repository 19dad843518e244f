/* promo_quote.c -- the quote engine (see promo_quote.h and the top of promo.proto): a tier
 * step, a promotion step that prices "all stackable promotions" against "each exclusive one
 * alone", a coupon step and a shipping step, each on the amounts the previous one left. */
#include "promo_quote.h"

#include "money.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SRC(x) LOYALTY__V1__PROMO_SOURCE_KIND__PROMO_SOURCE_KIND_##x
#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x
#define COUPON_KIND(x) LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_##x

typedef Loyalty__V1__Promotion promotion_t;
typedef Loyalty__V1__PromoCartLine cart_line_t;

typedef struct line_discount {
    Loyalty__V1__PromoSourceKind kind;
    const char *source_id;
    int64_t amount_cents;
} line_discount_t;

/* One cart line while it is priced: `amount` is what is left after the steps so far. */
typedef struct qline {
    const cart_line_t *in;
    int64_t list, amount, tier, promo, coupon;
    line_discount_t *discounts;
    size_t n_discounts, cap_discounts;
} qline_t;

/* What one promotion does to given amounts (not yet applied). */
typedef struct effect {
    promo_reason_t reason;
    int64_t *lines; /* per cart line; NULL when it gives no merchandise discount */
    int64_t merch_cents, shipping_cents, gift_value_cents;
} effect_t;

typedef struct cand {
    const promo_candidate_t *in;
    size_t index;          /* position in the input, for stable ordering */
    promo_reason_t reason; /* UNSPECIFIED while undecided */
    effect_t applied;      /* valid when reason is APPLIED */
} cand_t;

typedef struct coupon_state {
    const promo_coupon_input_t *in;
    promo_reason_t reason;
    int64_t discount_cents; /* what it would give (decided later) */
    bool shipping;          /* FREE_SHIPPING kind */
} coupon_state_t;

typedef struct quote {
    arena_t *a;
    const promo_quote_input_t *in;
    const Loyalty__V1__PromoCart *cart;
    size_t n_lines;
    qline_t *lines;
    cand_t *cands; /* in pricing order */
    size_t n_cands;
    coupon_state_t *coupons;
    int64_t shipping_left;
    bool overflow;
} quote_t;

const char *promo_reason_name(promo_reason_t r) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&loyalty__v1__promo_reason__descriptor, (int)r);
    if (v == NULL) {
        return "UNSPECIFIED";
    }
    const char *prefix = "PROMO_REASON_";
    size_t n = strlen(prefix);
    return strncmp(v->name, prefix, n) == 0 ? v->name + n : v->name;
}

static bool in_list(char *const *items, size_t n, const char *s, bool ignore_case) {
    for (size_t i = 0; i < n; i++) {
        if (ignore_case ? strcasecmp(items[i], s) == 0 : strcmp(items[i], s) == 0) {
            return true;
        }
    }
    return false;
}

bool promo_quote_line_eligible(const Loyalty__V1__PromoConditions *c, const cart_line_t *line) {
    if (c == NULL) {
        return true;
    }
    if (c->n_include_skus + c->n_include_categories > 0 &&
        !in_list(c->include_skus, c->n_include_skus, line->sku, false) &&
        !in_list(c->include_categories, c->n_include_categories, line->category, false)) {
        return false;
    }
    return !in_list(c->exclude_skus, c->n_exclude_skus, line->sku, false) &&
           !in_list(c->exclude_categories, c->n_exclude_categories, line->category, false);
}

/* The member price of `sku` for `tier_id` in a TIER_PRICE promotion, or -1. */
static int64_t tier_price_for(const promotion_t *p, const char *sku, const char *tier_id) {
    const Loyalty__V1__PromoTierPrice *tp = p->tier_price;
    for (size_t i = 0; tp && i < tp->n_prices; i++) {
        if (strcmp(tp->prices[i]->sku, sku) == 0 && strcmp(tp->prices[i]->tier_id, tier_id) == 0) {
            return tp->prices[i]->unit_price_cents;
        }
    }
    return -1;
}

static bool tier_price_has_tier(const promotion_t *p, const char *tier_id) {
    const Loyalty__V1__PromoTierPrice *tp = p->tier_price;
    for (size_t i = 0; tp && i < tp->n_prices; i++) {
        if (strcmp(tp->prices[i]->tier_id, tier_id) == 0) {
            return true;
        }
    }
    return false;
}

promo_reason_t promo_quote_static_check(const promotion_t *p, const Loyalty__V1__PromoCart *cart,
                                        int64_t at) {
    if (p->status != LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE) {
        return PROMO_REASON(PAUSED);
    }
    if (p->start_at != 0 && at < p->start_at) {
        return PROMO_REASON(NOT_STARTED);
    }
    if (p->end_at != 0 && at >= p->end_at) {
        return PROMO_REASON(ENDED);
    }
    const Loyalty__V1__PromoConditions *c = p->conditions;
    if (c != NULL) {
        if (c->n_tier_ids > 0 && !in_list(c->tier_ids, c->n_tier_ids, cart->tier_id, false)) {
            return PROMO_REASON(TIER_NOT_ELIGIBLE);
        }
        if (c->min_tier_rank > cart->tier_rank) {
            return PROMO_REASON(TIER_NOT_ELIGIBLE);
        }
        if (c->n_segments > 0 && !in_list(c->segments, c->n_segments, cart->segment, true)) {
            return PROMO_REASON(SEGMENT_NOT_ELIGIBLE);
        }
        if (c->n_store_ids > 0 && !in_list(c->store_ids, c->n_store_ids, cart->store_id, false)) {
            return PROMO_REASON(STORE_NOT_ELIGIBLE);
        }
    }
    if (p->rule_case == RULE(TIER_PRICE) && !tier_price_has_tier(p, cart->tier_id)) {
        return PROMO_REASON(TIER_NOT_ELIGIBLE);
    }
    return PROMO_REASON(APPLIED);
}

/* Pricing order: real promotions by priority (highest first), then the oldest (ids sort by
 * creation time), then input order; unknown codes last in input order. */
static int cand_cmp(const void *x, const void *y) {
    const cand_t *a = x, *b = y;
    const promotion_t *pa = a->in->promotion, *pb = b->in->promotion;
    if ((pa == NULL) != (pb == NULL)) {
        return pa == NULL ? 1 : -1;
    }
    if (pa != NULL) {
        if (pa->priority != pb->priority) {
            return pa->priority > pb->priority ? -1 : 1;
        }
        int c = strcmp(pa->id, pb->id);
        if (c != 0) {
            return c;
        }
    }
    return a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
}

static bool is_tier_price(const cand_t *c) {
    return c->in->promotion != NULL && c->in->promotion->rule_case == RULE(TIER_PRICE);
}

/* Which total of the line a discount counts in: the tier step (member discount or member
 * price), promotions, or coupons. */
typedef enum bucket { BUCKET_TIER, BUCKET_PROMOTION, BUCKET_COUPON } bucket_t;

static void line_discount(quote_t *q, size_t i, bucket_t bucket, Loyalty__V1__PromoSourceKind kind,
                          const char *id, int64_t amount) {
    qline_t *l = &q->lines[i];
    if (amount == 0) {
        return;
    }
    assert(amount > 0 && amount <= l->amount);
    if (l->n_discounts == l->cap_discounts) {
        size_t cap = l->cap_discounts ? l->cap_discounts * 2 : 4;
        line_discount_t *d = arena_alloc(q->a, cap * sizeof *d);
        if (l->n_discounts) {
            memcpy(d, l->discounts, l->n_discounts * sizeof *d);
        }
        l->discounts = d;
        l->cap_discounts = cap;
    }
    l->discounts[l->n_discounts++] = (line_discount_t){kind, id, amount};
    l->amount -= amount;
    *(bucket == BUCKET_TIER        ? &l->tier
      : bucket == BUCKET_PROMOTION ? &l->promo
                                   : &l->coupon) += amount;
}

/* Splits `total` over the lines selected by `mask` in proportion to `amounts` (exact, see the
 * rounding rule in promo.proto). The total never exceeds the selected amounts' sum, so no line
 * gets more than its amount. */
static int64_t *allocate(quote_t *q, const bool *mask, const int64_t *amounts, int64_t total) {
    int64_t *parts = arena_alloc(q->a, q->n_lines * sizeof *parts);
    int64_t *weights = arena_alloc(q->a, q->n_lines * sizeof *weights);
    size_t *index = arena_alloc(q->a, q->n_lines * sizeof *index);
    int64_t *out = arena_alloc(q->a, q->n_lines * sizeof *out);
    int n = 0;
    for (size_t i = 0; i < q->n_lines; i++) {
        if (mask == NULL || mask[i]) {
            weights[n] = amounts[i];
            index[n++] = i;
        }
    }
    if (!money_allocate(total, weights, n, parts)) {
        q->overflow = true;
        return out;
    }
    for (int k = 0; k < n; k++) {
        assert(parts[k] >= 0 && parts[k] <= weights[k]);
        out[index[k]] = parts[k];
    }
    return out;
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* Unit price of line i below that of line j, compared exactly (amount / quantity). */
static bool cheaper(const quote_t *q, const int64_t *amounts, size_t i, size_t j) {
    __int128 a = (__int128)amounts[i] * q->lines[j].in->quantity;
    __int128 b = (__int128)amounts[j] * q->lines[i].in->quantity;
    return a != b ? a < b : i < j;
}

/* BUY_X_GET_Y: the cheapest eligible units, as many as the complete bundles allow, are
 * discounted by get_discount_bps. */
static void eval_buy_x_get_y(quote_t *q, const promotion_t *p, const bool *mask,
                             const int64_t *amounts, effect_t *e) {
    const Loyalty__V1__PromoBuyXGetY *r = p->buy_x_get_y;
    int64_t units = 0;
    size_t *order = arena_alloc(q->a, q->n_lines * sizeof *order);
    size_t n = 0;
    for (size_t i = 0; i < q->n_lines; i++) {
        if (mask[i]) {
            units += q->lines[i].in->quantity;
            /* insertion sort by unit price: carts are small (at most 200 lines) */
            size_t k = n++;
            while (k > 0 && cheaper(q, amounts, i, order[k - 1])) {
                order[k] = order[k - 1];
                k--;
            }
            order[k] = i;
        }
    }
    int64_t bundles = units / (r->buy_quantity + r->get_quantity);
    if (r->max_applications > 0) {
        bundles = min64(bundles, r->max_applications);
    }
    if (bundles == 0) {
        e->reason = PROMO_REASON(NOT_ENOUGH_ITEMS);
        return;
    }
    int64_t free_units = bundles * r->get_quantity;
    e->lines = arena_alloc(q->a, q->n_lines * sizeof *e->lines);
    for (size_t k = 0; k < n && free_units > 0; k++) {
        size_t i = order[k];
        int64_t units_here = min64(free_units, q->lines[i].in->quantity);
        free_units -= units_here;
        int64_t d = 0;
        if (!money_mul_div(amounts[i], units_here * r->get_discount_bps,
                           q->lines[i].in->quantity * (int64_t)BPS_ONE, ROUND_FLOOR, &d)) {
            q->overflow = true;
            return;
        }
        e->lines[i] = d;
        e->merch_cents += d;
    }
}

/* The spend-threshold discount: the highest step reached, or -1 when none is. */
static int64_t spend_step_discount(const Loyalty__V1__PromoSpendThreshold *r, int64_t eligible) {
    int64_t d = -1;
    for (size_t i = 0; r && i < r->n_steps; i++) {
        if (eligible >= r->steps[i]->threshold_cents) {
            d = r->steps[i]->discount_cents;
        }
    }
    return d;
}

/* An order-level discount on the eligible lines: PERCENT_OFF, AMOUNT_OFF, SPEND_THRESHOLD. */
static void eval_order_discount(quote_t *q, const promotion_t *p, const bool *mask,
                                const int64_t *amounts, int64_t eligible, effect_t *e) {
    int64_t d = 0;
    switch (p->rule_case) {
    case RULE(PERCENT_OFF):
        if (!money_share_bps(eligible, p->percent_off->percent_off_bps, ROUND_FLOOR, &d)) {
            q->overflow = true;
            return;
        }
        if (p->percent_off->max_discount_cents > 0) {
            d = min64(d, p->percent_off->max_discount_cents);
        }
        break;
    case RULE(AMOUNT_OFF):
        d = min64(p->amount_off->amount_off_cents, eligible);
        break;
    default: /* SPEND_THRESHOLD */
        d = spend_step_discount(p->spend_threshold, eligible);
        if (d < 0) {
            e->reason = PROMO_REASON(BELOW_MIN_SPEND);
            return;
        }
        d = min64(d, eligible);
        break;
    }
    if (d > 0) {
        e->lines = allocate(q, mask, amounts, d);
        e->merch_cents = d;
    }
}

/* What promotion `c` would do to `amounts` and `shipping_left`, budget included. */
static effect_t eval_promotion(quote_t *q, const cand_t *c, const int64_t *amounts,
                               int64_t shipping_left) {
    const promotion_t *p = c->in->promotion;
    effect_t e = {.reason = PROMO_REASON(APPLIED)};
    bool *mask = arena_alloc(q->a, q->n_lines * sizeof *mask);
    bool any = false;
    int64_t eligible = 0;
    for (size_t i = 0; i < q->n_lines; i++) {
        mask[i] = promo_quote_line_eligible(p->conditions, q->lines[i].in);
        if (mask[i]) {
            any = true;
            eligible += amounts[i];
        }
    }
    if (!any) {
        e.reason = PROMO_REASON(NO_ELIGIBLE_ITEMS);
        return e;
    }
    if (p->conditions && eligible < p->conditions->min_spend_cents) {
        e.reason = PROMO_REASON(BELOW_MIN_SPEND);
        return e;
    }
    switch (p->rule_case) {
    case RULE(PERCENT_OFF):
    case RULE(AMOUNT_OFF):
    case RULE(SPEND_THRESHOLD):
        eval_order_discount(q, p, mask, amounts, eligible, &e);
        break;
    case RULE(BUY_X_GET_Y):
        eval_buy_x_get_y(q, p, mask, amounts, &e);
        break;
    case RULE(FREE_SHIPPING):
        e.shipping_cents = shipping_left;
        if (p->free_shipping->max_discount_cents > 0) {
            e.shipping_cents = min64(e.shipping_cents, p->free_shipping->max_discount_cents);
        }
        break;
    case RULE(FREE_GIFT):
        for (size_t i = 0; i < p->free_gift->n_gifts; i++) {
            e.gift_value_cents +=
                p->free_gift->gifts[i]->value_cents * p->free_gift->gifts[i]->quantity;
        }
        return e; /* a gift is always something, and costs no budget */
    default:
        assert(!"tier prices are priced in the tier step");
        break;
    }
    if (e.reason != PROMO_REASON(APPLIED)) {
        return e;
    }
    if (e.merch_cents + e.shipping_cents == 0) {
        e.reason = PROMO_REASON(NO_DISCOUNT);
    } else if (e.merch_cents + e.shipping_cents > c->in->limit.budget_left_cents) {
        e.reason = PROMO_REASON(BUDGET_EXHAUSTED);
    }
    return e;
}

/* The reason a candidate is out before any pricing, or UNSPECIFIED. */
static promo_reason_t precheck(const quote_t *q, const cand_t *c) {
    if (c->in->code_reason != PROMO_REASON(UNSPECIFIED)) {
        return c->in->code_reason;
    }
    promo_reason_t r = promo_quote_static_check(c->in->promotion, q->cart, q->in->at);
    if (r != PROMO_REASON(APPLIED)) {
        return r;
    }
    return c->in->limit.blocked;
}

/* ---- step 1: member discount or member price ---- */

/* The tier-price candidate giving line i its lowest amount below `best`, or -1. */
static long tier_price_owner(const quote_t *q, const bool *active, size_t i, int64_t *best) {
    long owner = -1;
    const cart_line_t *in = q->lines[i].in;
    for (size_t k = 0; k < q->n_cands; k++) {
        if (!active[k]) {
            continue;
        }
        const promotion_t *p = q->cands[k].in->promotion;
        int64_t unit = tier_price_for(p, in->sku, q->cart->tier_id);
        if (unit < 0 || !promo_quote_line_eligible(p->conditions, in)) {
            continue;
        }
        int64_t amount = unit * in->quantity; /* both bounded by validation */
        if (amount < *best) {
            *best = amount;
            owner = (long)k;
        }
    }
    return owner;
}

static void tier_step(quote_t *q) {
    int64_t *member_amount = arena_alloc(q->a, q->n_lines * sizeof *member_amount);
    for (size_t i = 0; i < q->n_lines; i++) {
        int64_t d = 0;
        if (!money_share_bps(q->lines[i].list, q->cart->tier_discount_bps, ROUND_FLOOR, &d)) {
            q->overflow = true;
        }
        member_amount[i] = q->lines[i].list - d;
    }
    bool *active = arena_alloc(q->a, q->n_cands * sizeof *active);
    for (size_t k = 0; k < q->n_cands; k++) {
        cand_t *c = &q->cands[k];
        if (!is_tier_price(c) || c->reason != PROMO_REASON(UNSPECIFIED)) {
            continue;
        }
        const promotion_t *p = c->in->promotion;
        int64_t eligible = 0;
        bool any = false;
        for (size_t i = 0; i < q->n_lines; i++) {
            if (tier_price_for(p, q->lines[i].in->sku, q->cart->tier_id) >= 0 &&
                promo_quote_line_eligible(p->conditions, q->lines[i].in)) {
                any = true;
                eligible += q->lines[i].list;
            }
        }
        if (!any) {
            c->reason = PROMO_REASON(NO_ELIGIBLE_ITEMS);
        } else if (p->conditions && eligible < p->conditions->min_spend_cents) {
            c->reason = PROMO_REASON(BELOW_MIN_SPEND);
        } else {
            active[k] = true;
        }
    }
    /* Lines go to the lowest price; a promotion whose total exceeds its budget drops out and
     * the lines are priced again without it (the active set only shrinks, so this ends). */
    long *owner = arena_alloc(q->a, q->n_lines * sizeof *owner);
    int64_t *best = arena_alloc(q->a, q->n_lines * sizeof *best);
    int64_t *total = arena_alloc(q->a, q->n_cands * sizeof *total);
    for (bool changed = true; changed;) {
        changed = false;
        memset(total, 0, q->n_cands * sizeof *total);
        for (size_t i = 0; i < q->n_lines; i++) {
            best[i] = member_amount[i];
            owner[i] = tier_price_owner(q, active, i, &best[i]);
            if (owner[i] >= 0) {
                total[owner[i]] += q->lines[i].list - best[i];
            }
        }
        for (size_t k = 0; k < q->n_cands; k++) {
            if (active[k] && total[k] > q->cands[k].in->limit.budget_left_cents) {
                active[k] = false;
                q->cands[k].reason = PROMO_REASON(BUDGET_EXHAUSTED);
                changed = true;
            }
        }
    }
    for (size_t i = 0; i < q->n_lines; i++) {
        if (owner[i] >= 0) {
            line_discount(q, i, BUCKET_TIER, SRC(PROMOTION), q->cands[owner[i]].in->promotion->id,
                          q->lines[i].list - best[i]);
        } else {
            line_discount(q, i, BUCKET_TIER, SRC(TIER_DISCOUNT), "", q->lines[i].list - best[i]);
        }
    }
    for (size_t k = 0; k < q->n_cands; k++) {
        if (active[k]) {
            q->cands[k].reason = total[k] > 0 ? PROMO_REASON(APPLIED) : PROMO_REASON(NO_DISCOUNT);
            q->cands[k].applied.merch_cents = total[k];
        }
    }
}

/* ---- step 2: promotions ---- */

static void apply_effect(quote_t *q, cand_t *c, const effect_t *e) {
    c->reason = PROMO_REASON(APPLIED);
    c->applied = *e;
    for (size_t i = 0; e->lines && i < q->n_lines; i++) {
        line_discount(q, i, BUCKET_PROMOTION, SRC(PROMOTION), c->in->promotion->id, e->lines[i]);
    }
    q->shipping_left -= e->shipping_cents;
    assert(q->shipping_left >= 0);
}

static int64_t benefit(const effect_t *e) {
    return e->merch_cents + e->shipping_cents + e->gift_value_cents;
}

static void promotion_step(quote_t *q) {
    int64_t *base = arena_alloc(q->a, q->n_lines * sizeof *base);
    int64_t *stacked = arena_alloc(q->a, q->n_lines * sizeof *stacked);
    for (size_t i = 0; i < q->n_lines; i++) {
        base[i] = stacked[i] = q->lines[i].amount;
    }
    effect_t *eff = arena_alloc(q->a, q->n_cands * sizeof *eff);
    int64_t stacked_shipping = q->shipping_left, stacked_benefit = 0;
    bool stacked_any = false;
    for (size_t k = 0; k < q->n_cands; k++) { /* all stackable ones, one after the other */
        cand_t *c = &q->cands[k];
        if (is_tier_price(c) || c->reason != PROMO_REASON(UNSPECIFIED) ||
            c->in->promotion->exclusive) {
            continue;
        }
        eff[k] = eval_promotion(q, c, stacked, stacked_shipping);
        if (eff[k].reason == PROMO_REASON(APPLIED)) {
            for (size_t i = 0; eff[k].lines && i < q->n_lines; i++) {
                stacked[i] -= eff[k].lines[i];
            }
            stacked_shipping -= eff[k].shipping_cents;
            stacked_benefit += benefit(&eff[k]);
            stacked_any = true;
        }
    }
    long winner = -1; /* -1: the stackable set */
    int64_t best = stacked_benefit;
    bool have = stacked_any;
    for (size_t k = 0; k < q->n_cands; k++) { /* each exclusive one alone */
        cand_t *c = &q->cands[k];
        if (is_tier_price(c) || c->reason != PROMO_REASON(UNSPECIFIED) ||
            !c->in->promotion->exclusive) {
            continue;
        }
        eff[k] = eval_promotion(q, c, base, q->shipping_left);
        if (eff[k].reason == PROMO_REASON(APPLIED) && (!have || benefit(&eff[k]) > best)) {
            have = true;
            best = benefit(&eff[k]);
            winner = (long)k;
        }
    }
    for (size_t k = 0; k < q->n_cands; k++) {
        cand_t *c = &q->cands[k];
        if (is_tier_price(c) || c->reason != PROMO_REASON(UNSPECIFIED)) {
            continue;
        }
        bool exclusive = c->in->promotion->exclusive;
        if (eff[k].reason != PROMO_REASON(APPLIED)) {
            c->reason = eff[k].reason;
        } else if ((winner < 0 && !exclusive) || winner == (long)k) {
            apply_effect(q, c, &eff[k]);
        } else {
            c->reason = PROMO_REASON(NOT_STACKABLE);
        }
    }
}

/* ---- steps 3 and 4: coupons, then the shipping coupon ---- */

/* What makes two cart coupons the same: the coupon found, else what the cart said. */
static const char *coupon_key(const promo_coupon_input_t *in) {
    if (in->coupon != NULL) {
        return in->coupon->id;
    }
    return in->code != NULL && in->code[0] != '\0' ? in->code : in->coupon_id;
}

static promo_reason_t coupon_precheck(const quote_t *q, size_t j) {
    const promo_coupon_input_t *in = &q->in->coupons[j];
    for (size_t k = 0; k < j; k++) {
        if (strcmp(coupon_key(&q->in->coupons[k]), coupon_key(in)) == 0) {
            return PROMO_REASON(DUPLICATE);
        }
    }
    const Loyalty__V1__PromoCoupon *c = in->coupon;
    if (c == NULL || q->cart->member_id[0] == '\0' || strcmp(c->member_id, q->cart->member_id)) {
        return PROMO_REASON(COUPON_NOT_FOUND);
    }
    if (c->status == LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED ||
        in->held_elsewhere) {
        return PROMO_REASON(COUPON_ALREADY_USED);
    }
    if (q->in->at < c->valid_from_at) {
        return PROMO_REASON(COUPON_NOT_YET_VALID);
    }
    if (q->in->at >= c->valid_until_at) {
        return PROMO_REASON(COUPON_EXPIRED);
    }
    return PROMO_REASON(UNSPECIFIED);
}

/* What coupon j would give on the current amounts, or a reason it gives nothing. */
static void coupon_evaluate(quote_t *q, size_t j, int64_t merchandise) {
    coupon_state_t *s = &q->coupons[j];
    s->reason = coupon_precheck(q, j);
    if (s->reason != PROMO_REASON(UNSPECIFIED)) {
        return;
    }
    const Loyalty__V1__PromoCoupon *c = s->in->coupon;
    if (merchandise < c->min_spend_cents) {
        s->reason = PROMO_REASON(BELOW_MIN_SPEND);
        return;
    }
    switch (c->kind) {
    case COUPON_KIND(AMOUNT_OFF):
        s->discount_cents = min64(c->amount_off_cents, merchandise);
        break;
    case COUPON_KIND(PERCENT_OFF):
        if (!money_share_bps(merchandise, c->percent_off_bps, ROUND_FLOOR, &s->discount_cents)) {
            q->overflow = true;
        }
        if (c->max_discount_cents > 0) {
            s->discount_cents = min64(s->discount_cents, c->max_discount_cents);
        }
        break;
    default: /* FREE_SHIPPING */
        s->shipping = true;
        s->discount_cents = q->shipping_left;
        if (c->max_discount_cents > 0) {
            s->discount_cents = min64(s->discount_cents, c->max_discount_cents);
        }
        break;
    }
    if (s->discount_cents == 0) {
        s->reason = PROMO_REASON(NO_DISCOUNT);
    }
}

/* Among the undecided coupons of one kind, the largest discount applies (the earlier on a
 * tie); the others are NOT_STACKABLE. Returns the winner or -1. */
static long coupon_pick(quote_t *q, bool shipping) {
    long winner = -1;
    for (size_t j = 0; j < q->in->n_coupons; j++) {
        coupon_state_t *s = &q->coupons[j];
        if (s->reason != PROMO_REASON(UNSPECIFIED) || s->shipping != shipping) {
            continue;
        }
        if (winner < 0 || s->discount_cents > q->coupons[winner].discount_cents) {
            winner = (long)j;
        }
    }
    for (size_t j = 0; j < q->in->n_coupons; j++) {
        coupon_state_t *s = &q->coupons[j];
        if (s->reason == PROMO_REASON(UNSPECIFIED) && s->shipping == shipping) {
            s->reason = (long)j == winner ? PROMO_REASON(APPLIED) : PROMO_REASON(NOT_STACKABLE);
        }
    }
    return winner;
}

static void coupon_step(quote_t *q) {
    int64_t merchandise = 0;
    int64_t *amounts = arena_alloc(q->a, q->n_lines * sizeof *amounts);
    for (size_t i = 0; i < q->n_lines; i++) {
        amounts[i] = q->lines[i].amount;
        merchandise += amounts[i];
    }
    for (size_t j = 0; j < q->in->n_coupons; j++) {
        q->coupons[j].in = &q->in->coupons[j];
        coupon_evaluate(q, j, merchandise);
    }
    long w = coupon_pick(q, false);
    if (w >= 0) {
        int64_t *parts = allocate(q, NULL, amounts, q->coupons[w].discount_cents);
        for (size_t i = 0; i < q->n_lines; i++) {
            line_discount(q, i, BUCKET_COUPON, SRC(COUPON), q->coupons[w].in->coupon_id, parts[i]);
        }
    }
    w = coupon_pick(q, true);
    if (w >= 0) {
        q->shipping_left -= q->coupons[w].discount_cents;
    }
}

/* ---- the result ---- */

static Loyalty__V1__PromoQuoteLine *result_line(quote_t *q, size_t i) {
    const qline_t *l = &q->lines[i];
    Loyalty__V1__PromoQuoteLine *out = arena_alloc(q->a, sizeof *out);
    loyalty__v1__promo_quote_line__init(out);
    out->line_id = (char *)l->in->line_id;
    out->sku = (char *)l->in->sku;
    out->quantity = l->in->quantity;
    out->list_amount_cents = l->list;
    out->tier_discount_cents = l->tier;
    out->promotion_discount_cents = l->promo;
    out->coupon_discount_cents = l->coupon;
    out->final_amount_cents = l->amount;
    out->discounts = arena_alloc(q->a, (l->n_discounts + 1) * sizeof *out->discounts);
    for (size_t k = 0; k < l->n_discounts; k++) {
        Loyalty__V1__PromoLineDiscount *d = arena_alloc(q->a, sizeof *d);
        loyalty__v1__promo_line_discount__init(d);
        d->kind = l->discounts[k].kind;
        d->source_id = (char *)l->discounts[k].source_id;
        d->amount_cents = l->discounts[k].amount_cents;
        out->discounts[out->n_discounts++] = d;
    }
    return out;
}

/* The type follows the rule (the stored `type` field is derived from it too). */
static Loyalty__V1__PromoType type_of(const promotion_t *p) {
    switch (p->rule_case) {
    case RULE(PERCENT_OFF):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_PERCENT_OFF;
    case RULE(AMOUNT_OFF):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_AMOUNT_OFF;
    case RULE(SPEND_THRESHOLD):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_SPEND_THRESHOLD;
    case RULE(FREE_SHIPPING):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_FREE_SHIPPING;
    case RULE(FREE_GIFT):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_FREE_GIFT;
    case RULE(TIER_PRICE):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_TIER_PRICE;
    case RULE(BUY_X_GET_Y):
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_BUY_X_GET_Y;
    default:
        return LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_UNSPECIFIED;
    }
}

static Loyalty__V1__PromoConsidered *considered_new(arena_t *a) {
    Loyalty__V1__PromoConsidered *c = arena_alloc(a, sizeof *c);
    loyalty__v1__promo_considered__init(c);
    return c;
}

static void result_promotions(quote_t *q, Loyalty__V1__PromoQuoteResult *r) {
    for (size_t k = 0; k < q->n_cands; k++) {
        const cand_t *c = &q->cands[k];
        const promotion_t *p = c->in->promotion;
        Loyalty__V1__PromoConsidered *o = considered_new(q->a);
        o->kind = SRC(PROMOTION);
        o->code = (char *)(c->in->code ? c->in->code : "");
        o->reason = c->reason;
        o->applied = c->reason == PROMO_REASON(APPLIED);
        if (p != NULL) {
            o->promotion_id = p->id;
            o->name = p->name;
            o->type = type_of(p);
        }
        if (o->applied) {
            o->discount_cents = c->applied.merch_cents;
            o->shipping_discount_cents = c->applied.shipping_cents;
            if (p->rule_case != RULE(TIER_PRICE)) { /* counted in tier_discount_cents */
                r->promotion_discount_cents += o->discount_cents;
            }
            r->shipping_discount_cents += o->shipping_discount_cents;
        }
        r->considered[r->n_considered++] = o;
        if (!o->applied || p->rule_case != RULE(FREE_GIFT)) {
            continue;
        }
        for (size_t g = 0; g < p->free_gift->n_gifts; g++) {
            Loyalty__V1__PromoGiftLine *gl = arena_alloc(q->a, sizeof *gl);
            loyalty__v1__promo_gift_line__init(gl);
            gl->sku = p->free_gift->gifts[g]->sku;
            gl->quantity = p->free_gift->gifts[g]->quantity;
            gl->promotion_id = p->id;
            r->gift_lines[r->n_gift_lines++] = gl;
        }
    }
}

static void result_coupons(quote_t *q, Loyalty__V1__PromoQuoteResult *r) {
    for (size_t j = 0; j < q->in->n_coupons; j++) {
        const coupon_state_t *s = &q->coupons[j];
        Loyalty__V1__PromoConsidered *o = considered_new(q->a);
        o->kind = SRC(COUPON);
        o->coupon_id = (char *)s->in->coupon_id;
        o->code = (char *)(s->in->code != NULL ? s->in->code : "");
        if (s->in->coupon != NULL && s->reason != PROMO_REASON(COUPON_NOT_FOUND)) {
            o->name = s->in->coupon->name;
        }
        o->reason = s->reason;
        o->applied = s->reason == PROMO_REASON(APPLIED);
        if (o->applied && s->shipping) {
            o->shipping_discount_cents = s->discount_cents;
            r->shipping_discount_cents += s->discount_cents;
        } else if (o->applied) {
            o->discount_cents = s->discount_cents;
        }
        r->considered[r->n_considered++] = o;
    }
}

static size_t gift_count(const quote_t *q) {
    size_t n = 0;
    for (size_t k = 0; k < q->n_cands; k++) {
        const promotion_t *p = q->cands[k].in->promotion;
        if (p != NULL && p->rule_case == RULE(FREE_GIFT) && p->free_gift != NULL) {
            n += p->free_gift->n_gifts;
        }
    }
    return n;
}

static Loyalty__V1__PromoQuoteResult *result_build(quote_t *q) {
    Loyalty__V1__PromoQuoteResult *r = arena_alloc(q->a, sizeof *r);
    loyalty__v1__promo_quote_result__init(r);
    r->lines = arena_alloc(q->a, (q->n_lines + 1) * sizeof *r->lines);
    r->gift_lines = arena_alloc(q->a, (gift_count(q) + 1) * sizeof *r->gift_lines);
    r->considered = arena_alloc(q->a, (q->n_cands + q->in->n_coupons + 1) * sizeof *r->considered);
    for (size_t i = 0; i < q->n_lines; i++) {
        r->lines[r->n_lines++] = result_line(q, i);
        r->subtotal_cents += q->lines[i].list;
        r->tier_discount_cents += q->lines[i].tier;
        r->coupon_discount_cents += q->lines[i].coupon;
        r->merchandise_cents += q->lines[i].amount;
    }
    result_promotions(q, r);
    result_coupons(q, r);
    r->shipping_cents = q->cart->shipping_cents;
    assert(r->shipping_discount_cents == r->shipping_cents - q->shipping_left);
    r->total_cents = r->merchandise_cents + q->shipping_left;
    r->priced_at = q->in->at;
    return r;
}

status_t promo_quote(arena_t *a, const promo_quote_input_t *in,
                     Loyalty__V1__PromoQuoteResult **out) {
    quote_t q = {.a = a, .in = in, .cart = in->cart, .n_lines = in->cart->n_lines};
    q.lines = arena_alloc(a, (q.n_lines + 1) * sizeof *q.lines);
    for (size_t i = 0; i < q.n_lines; i++) {
        const cart_line_t *l = in->cart->lines[i];
        q.lines[i].in = l;
        if (__builtin_mul_overflow(l->quantity, l->unit_price_cents, &q.lines[i].list)) {
            q.overflow = true;
        }
        q.lines[i].amount = q.lines[i].list;
    }
    q.shipping_left = in->cart->shipping_cents;
    q.n_cands = in->n_candidates;
    q.cands = arena_alloc(a, (q.n_cands + 1) * sizeof *q.cands);
    for (size_t k = 0; k < q.n_cands; k++) {
        q.cands[k] = (cand_t){.in = &in->candidates[k], .index = k};
    }
    qsort(q.cands, q.n_cands, sizeof *q.cands, cand_cmp);
    for (size_t k = 0; k < q.n_cands; k++) {
        const promo_candidate_t *c = q.cands[k].in;
        if (c->promotion != NULL) {
            q.cands[k].reason = precheck(&q, &q.cands[k]);
        } else {
            q.cands[k].reason = c->code_reason ? c->code_reason : PROMO_REASON(CODE_UNKNOWN);
        }
    }
    q.coupons = arena_alloc(a, (in->n_coupons + 1) * sizeof *q.coupons);
    tier_step(&q);
    promotion_step(&q);
    coupon_step(&q);
    if (q.overflow) {
        return status_make(STATUS_INTERNAL, REASON_AMOUNT_OVERFLOW, "an amount is out of range");
    }
    *out = result_build(&q);
    return status_ok();
}
