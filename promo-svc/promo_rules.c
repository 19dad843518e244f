/* promo_rules.c -- validation and normalisation of promotions, coupon templates and carts;
 * coupon validity; limit counter keys and states. */
#include "promo_rules.h"

#include "validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x
#define PTYPE(x) LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_##x
#define TRIGGER(x) LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_##x
#define CODE_KIND(x) LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_##x
#define SCOPE(x) LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_##x
#define PERIOD(x) LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_##x
#define COUPON_KIND(x) LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_##x
#define COUPON_STATUS(x) LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_##x

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        if (!status_is_ok(&st_)) {                                                                 \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

status_t promo_rules_normalize_code(const char *field, const char *code, char *out) {
    size_t n = strlen(code);
    if (n < PROMO_CODE_MIN || n > PROMO_CODE_MAX) {
        return status_invalid_field(field, "must be %d to %d characters", PROMO_CODE_MIN,
                                    PROMO_CODE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)code[i];
        if (!isalnum(c) && c != '_' && c != '-') {
            return status_invalid_field(field, "only letters, digits, '_' and '-' are allowed");
        }
        out[i] = (char)toupper(c);
    }
    out[n] = '\0';
    return status_ok();
}

status_t promo_rules_normalize_prefix(const char *prefix, char *out) {
    size_t n = strlen(prefix);
    if (n > PROMO_CODE_PREFIX_MAX) {
        return status_invalid_field("prefix", "at most %d characters", PROMO_CODE_PREFIX_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (!isalnum(c)) {
            return status_invalid_field("prefix", "only letters and digits are allowed");
        }
        out[i] = (char)toupper(c);
    }
    out[n] = '\0';
    return status_ok();
}

static status_t check_range(const char *field, int64_t v, int64_t min, int64_t max) {
    if (v < min || v > max) {
        return status_invalid_field(field, "must be between %lld and %lld", (long long)min,
                                    (long long)max);
    }
    return status_ok();
}

/* A token list: at most PROMO_CONDITION_LIST_MAX tokens of at most PROMO_TOKEN_MAX. */
static status_t check_tokens(const char *field, char *const *items, size_t n) {
    if (n > PROMO_CONDITION_LIST_MAX) {
        return status_invalid_field(field, "at most %d entries", PROMO_CONDITION_LIST_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        CHECK(validate_token(field, items[i], PROMO_TOKEN_MAX));
    }
    return status_ok();
}

/* An optional token: empty, or a token of at most PROMO_TOKEN_MAX. */
static status_t check_opt_token(const char *field, const char *value) {
    return value[0] == '\0' ? status_ok() : validate_token(field, value, PROMO_TOKEN_MAX);
}

static status_t check_conditions(const Loyalty__V1__PromoConditions *c) {
    if (c == NULL) {
        return status_ok();
    }
    CHECK(check_tokens("promotion.conditions.tier_ids", c->tier_ids, c->n_tier_ids));
    CHECK(check_range("promotion.conditions.min_tier_rank", c->min_tier_rank, 0,
                      PROMO_TIER_RANK_MAX));
    CHECK(check_tokens("promotion.conditions.segments", c->segments, c->n_segments));
    CHECK(check_tokens("promotion.conditions.store_ids", c->store_ids, c->n_store_ids));
    CHECK(check_range("promotion.conditions.min_spend_cents", c->min_spend_cents, 0,
                      PROMO_AMOUNT_MAX));
    CHECK(check_tokens("promotion.conditions.include_skus", c->include_skus, c->n_include_skus));
    CHECK(check_tokens("promotion.conditions.include_categories", c->include_categories,
                       c->n_include_categories));
    CHECK(check_tokens("promotion.conditions.exclude_skus", c->exclude_skus, c->n_exclude_skus));
    return check_tokens("promotion.conditions.exclude_categories", c->exclude_categories,
                        c->n_exclude_categories);
}

static status_t check_spend_threshold(const Loyalty__V1__PromoSpendThreshold *r) {
    const char *f = "promotion.spend_threshold.steps";
    if (r->n_steps == 0 || r->n_steps > PROMO_STEPS_MAX) {
        return status_invalid_field(f, "1 to %d steps", PROMO_STEPS_MAX);
    }
    for (size_t i = 0; i < r->n_steps; i++) {
        const Loyalty__V1__PromoSpendStep *s = r->steps[i];
        if (s->threshold_cents <= 0 || s->threshold_cents > PROMO_AMOUNT_MAX ||
            s->discount_cents <= 0 || s->discount_cents > PROMO_AMOUNT_MAX) {
            return status_invalid_field(f, "step %zu: threshold and discount must be positive",
                                        i + 1);
        }
        if (i > 0 && (s->threshold_cents <= r->steps[i - 1]->threshold_cents ||
                      s->discount_cents < r->steps[i - 1]->discount_cents)) {
            return status_invalid_field(
                f, "step %zu: thresholds must increase and discounts must not decrease", i + 1);
        }
    }
    return status_ok();
}

static status_t check_free_gift(const Loyalty__V1__PromoFreeGift *r) {
    const char *f = "promotion.free_gift.gifts";
    if (r->n_gifts == 0 || r->n_gifts > PROMO_GIFTS_MAX) {
        return status_invalid_field(f, "1 to %d gifts", PROMO_GIFTS_MAX);
    }
    for (size_t i = 0; i < r->n_gifts; i++) {
        CHECK(validate_token("promotion.free_gift.gifts.sku", r->gifts[i]->sku, PROMO_TOKEN_MAX));
        CHECK(check_range("promotion.free_gift.gifts.quantity", r->gifts[i]->quantity, 1,
                          PROMO_GIFT_QUANTITY_MAX));
        CHECK(check_range("promotion.free_gift.gifts.value_cents", r->gifts[i]->value_cents, 0,
                          PROMO_AMOUNT_MAX));
    }
    return status_ok();
}

static status_t check_tier_price(const Loyalty__V1__PromoTierPrice *r) {
    const char *f = "promotion.tier_price.prices";
    if (r->n_prices == 0 || r->n_prices > PROMO_TIER_PRICES_MAX) {
        return status_invalid_field(f, "1 to %d entries", PROMO_TIER_PRICES_MAX);
    }
    for (size_t i = 0; i < r->n_prices; i++) {
        const Loyalty__V1__PromoTierPriceEntry *e = r->prices[i];
        CHECK(validate_token("promotion.tier_price.prices.sku", e->sku, PROMO_TOKEN_MAX));
        CHECK(validate_token("promotion.tier_price.prices.tier_id", e->tier_id, PROMO_TOKEN_MAX));
        CHECK(check_range("promotion.tier_price.prices.unit_price_cents", e->unit_price_cents, 0,
                          PROMO_AMOUNT_MAX));
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->prices[k]->sku, e->sku) == 0 &&
                strcmp(r->prices[k]->tier_id, e->tier_id) == 0) {
                return status_invalid_field(f, "sku %s has two prices for tier %s", e->sku,
                                            e->tier_id);
            }
        }
    }
    return status_ok();
}

static status_t check_rule(const Loyalty__V1__Promotion *p, Loyalty__V1__PromoType *type) {
    switch (p->rule_case) {
    case RULE(PERCENT_OFF):
        *type = PTYPE(PERCENT_OFF);
        CHECK(check_range("promotion.percent_off.percent_off_bps", p->percent_off->percent_off_bps,
                          1, 10000));
        return check_range("promotion.percent_off.max_discount_cents",
                           p->percent_off->max_discount_cents, 0, PROMO_AMOUNT_MAX);
    case RULE(AMOUNT_OFF):
        *type = PTYPE(AMOUNT_OFF);
        return check_range("promotion.amount_off.amount_off_cents", p->amount_off->amount_off_cents,
                           1, PROMO_AMOUNT_MAX);
    case RULE(SPEND_THRESHOLD):
        *type = PTYPE(SPEND_THRESHOLD);
        return check_spend_threshold(p->spend_threshold);
    case RULE(FREE_SHIPPING):
        *type = PTYPE(FREE_SHIPPING);
        return check_range("promotion.free_shipping.max_discount_cents",
                           p->free_shipping->max_discount_cents, 0, PROMO_AMOUNT_MAX);
    case RULE(FREE_GIFT):
        *type = PTYPE(FREE_GIFT);
        return check_free_gift(p->free_gift);
    case RULE(TIER_PRICE):
        *type = PTYPE(TIER_PRICE);
        return check_tier_price(p->tier_price);
    case RULE(BUY_X_GET_Y):
        *type = PTYPE(BUY_X_GET_Y);
        CHECK(check_range("promotion.buy_x_get_y.buy_quantity", p->buy_x_get_y->buy_quantity, 1,
                          PROMO_BXGY_QUANTITY_MAX));
        CHECK(check_range("promotion.buy_x_get_y.get_quantity", p->buy_x_get_y->get_quantity, 1,
                          PROMO_BXGY_QUANTITY_MAX));
        CHECK(check_range("promotion.buy_x_get_y.get_discount_bps",
                          p->buy_x_get_y->get_discount_bps, 1, 10000));
        return check_range("promotion.buy_x_get_y.max_applications",
                           p->buy_x_get_y->max_applications, 0, PROMO_BXGY_APPLICATIONS_MAX);
    default:
        return status_invalid_field(
            "promotion.rule", "one of percent_off, amount_off, spend_threshold, "
                              "free_shipping, free_gift, tier_price, buy_x_get_y is required");
    }
}

/* Copies and normalises the limits: an unspecified period is LIFETIME. */
static status_t check_limits(arena_t *a, const Loyalty__V1__Promotion *in,
                             Loyalty__V1__Promotion *out) {
    const char *f = "promotion.limits";
    if (in->n_limits > PROMO_LIMITS_MAX) {
        return status_invalid_field(f, "at most %d limits", PROMO_LIMITS_MAX);
    }
    out->limits = arena_alloc(a, (in->n_limits + 1) * sizeof *out->limits);
    for (size_t i = 0; i < in->n_limits; i++) {
        const Loyalty__V1__PromoLimit *l = in->limits[i];
        if (l->scope < SCOPE(MEMBER) || l->scope > SCOPE(TOTAL)) {
            return status_invalid_field(f, "limit %zu: scope must be MEMBER, STORE or TOTAL",
                                        i + 1);
        }
        if (l->period < PERIOD(UNSPECIFIED) || l->period > PERIOD(MONTH)) {
            return status_invalid_field(f, "limit %zu: unknown period", i + 1);
        }
        if (l->max_uses < 0 || l->max_uses > PROMO_LIMIT_VALUE_MAX || l->max_discount_cents < 0 ||
            l->max_discount_cents > PROMO_LIMIT_VALUE_MAX ||
            l->max_uses + l->max_discount_cents == 0) {
            return status_invalid_field(
                f, "limit %zu: max_uses or max_discount_cents must be positive", i + 1);
        }
        Loyalty__V1__PromoLimit *copy = arena_alloc(a, sizeof *copy);
        *copy = *l;
        if (copy->period == PERIOD(UNSPECIFIED)) {
            copy->period = PERIOD(LIFETIME);
        }
        out->limits[i] = copy;
    }
    out->n_limits = in->n_limits;
    return status_ok();
}

static status_t check_trigger(arena_t *a, const Loyalty__V1__Promotion *in,
                              Loyalty__V1__Promotion *out) {
    out->code = "";
    if (in->trigger == TRIGGER(AUTOMATIC)) {
        if (in->code_kind != CODE_KIND(UNSPECIFIED) || in->code[0] != '\0') {
            return status_invalid_field("promotion.code", "automatic promotions have no code");
        }
        return status_ok();
    }
    if (in->trigger != TRIGGER(CODE)) {
        return status_invalid_field("promotion.trigger", "must be AUTOMATIC or CODE");
    }
    if (in->code_kind == CODE_KIND(UNIQUE)) {
        if (in->code[0] != '\0') {
            return status_invalid_field("promotion.code",
                                        "unique codes are generated by GeneratePromoCodes");
        }
        return status_ok();
    }
    if (in->code_kind != CODE_KIND(SHARED)) {
        return status_invalid_field("promotion.code_kind", "must be SHARED or UNIQUE");
    }
    char code[PROMO_CODE_MAX + 1];
    CHECK(promo_rules_normalize_code("promotion.code", in->code, code));
    out->code = arena_strdup(a, code);
    return status_ok();
}

status_t promo_rules_check_promotion(arena_t *a, const Loyalty__V1__Promotion *in,
                                     Loyalty__V1__Promotion *out) {
    if (in == NULL) {
        return status_invalid_field("promotion", "required");
    }
    *out = *in;
    CHECK(validate_text("promotion.name", in->name, 1, PROMO_NAME_MAX));
    CHECK(validate_text("promotion.description", in->description, 0, PROMO_DESCRIPTION_MAX));
    CHECK(check_trigger(a, in, out));
    CHECK(check_range("promotion.priority", in->priority, -PROMO_PRIORITY_MAX, PROMO_PRIORITY_MAX));
    CHECK(check_range("promotion.start_at", in->start_at, 0, INT64_MAX));
    if (in->end_at < 0 || (in->end_at != 0 && in->end_at <= in->start_at)) {
        return status_invalid_field("promotion.end_at", "must be 0 or after start_at");
    }
    CHECK(check_conditions(in->conditions));
    CHECK(check_rule(in, &out->type));
    return check_limits(a, in, out);
}

status_t promo_rules_check_template(const Loyalty__V1__PromoCouponTemplate *in,
                                    Loyalty__V1__PromoCouponTemplate *out) {
    if (in == NULL) {
        return status_invalid_field("coupon_template", "required");
    }
    *out = *in;
    CHECK(validate_text("coupon_template.name", in->name, 1, PROMO_NAME_MAX));
    switch (in->kind) {
    case COUPON_KIND(AMOUNT_OFF):
        CHECK(check_range("coupon_template.amount_off_cents", in->amount_off_cents, 1,
                          PROMO_AMOUNT_MAX));
        out->percent_off_bps = 0;
        out->max_discount_cents = 0;
        break;
    case COUPON_KIND(PERCENT_OFF):
        CHECK(check_range("coupon_template.percent_off_bps", in->percent_off_bps, 1, 10000));
        out->amount_off_cents = 0;
        break;
    case COUPON_KIND(FREE_SHIPPING):
        out->amount_off_cents = 0;
        out->percent_off_bps = 0;
        break;
    default:
        return status_invalid_field("coupon_template.kind",
                                    "must be AMOUNT_OFF, PERCENT_OFF or FREE_SHIPPING");
    }
    CHECK(check_range("coupon_template.max_discount_cents", in->max_discount_cents, 0,
                      PROMO_AMOUNT_MAX));
    CHECK(check_range("coupon_template.min_spend_cents", in->min_spend_cents, 0, PROMO_AMOUNT_MAX));
    if (in->valid_days != 0) {
        CHECK(check_range("coupon_template.valid_days", in->valid_days, 1,
                          PROMO_COUPON_VALID_DAYS_MAX));
        if (in->valid_from_at != 0 || in->valid_until_at != 0) {
            return status_invalid_field("coupon_template.valid_days",
                                        "either valid_days or fixed dates, not both");
        }
    } else if (in->valid_from_at < 0 || in->valid_until_at <= in->valid_from_at) {
        return status_invalid_field("coupon_template.valid_until_at",
                                    "valid_days, or valid_until_at after valid_from_at");
    }
    CHECK(check_range("coupon_template.per_member_max", in->per_member_max, 0,
                      PROMO_COUPON_PER_MEMBER_MAX));
    return check_range("coupon_template.total_max", in->total_max, 0, PROMO_COUPON_TOTAL_MAX);
}

static status_t check_cart_line(const Loyalty__V1__PromoCart *cart, size_t i) {
    const Loyalty__V1__PromoCartLine *l = cart->lines[i];
    CHECK(validate_token("cart.lines.line_id", l->line_id, PROMO_TOKEN_MAX));
    for (size_t k = 0; k < i; k++) {
        if (strcmp(cart->lines[k]->line_id, l->line_id) == 0) {
            return status_invalid_field("cart.lines.line_id", "line_id %s appears twice",
                                        l->line_id);
        }
    }
    CHECK(validate_token("cart.lines.sku", l->sku, PROMO_TOKEN_MAX));
    CHECK(check_opt_token("cart.lines.category", l->category));
    CHECK(check_range("cart.lines.quantity", l->quantity, 1, PROMO_QUANTITY_MAX));
    return check_range("cart.lines.unit_price_cents", l->unit_price_cents, 0, PROMO_AMOUNT_MAX);
}

status_t promo_rules_check_cart(arena_t *a, const Loyalty__V1__PromoCart *in,
                                Loyalty__V1__PromoCart *out) {
    if (in == NULL) {
        return status_invalid_field("cart", "required");
    }
    *out = *in;
    CHECK(check_opt_token("cart.member_id", in->member_id));
    CHECK(check_opt_token("cart.tier_id", in->tier_id));
    CHECK(check_range("cart.tier_rank", in->tier_rank, 0, PROMO_TIER_RANK_MAX));
    CHECK(check_range("cart.tier_discount_bps", in->tier_discount_bps, 0, 10000));
    CHECK(check_opt_token("cart.segment", in->segment));
    CHECK(check_opt_token("cart.store_id", in->store_id));
    if (in->n_lines == 0 || in->n_lines > PROMO_CART_LINES_MAX) {
        return status_invalid_field("cart.lines", "1 to %d lines", PROMO_CART_LINES_MAX);
    }
    for (size_t i = 0; i < in->n_lines; i++) {
        CHECK(check_cart_line(in, i));
    }
    CHECK(check_range("cart.shipping_cents", in->shipping_cents, 0, PROMO_AMOUNT_MAX));
    if (in->n_codes > PROMO_CART_CODES_MAX) {
        return status_invalid_field("cart.codes", "at most %d codes", PROMO_CART_CODES_MAX);
    }
    out->codes = arena_alloc(a, (in->n_codes + 1) * sizeof *out->codes);
    for (size_t i = 0; i < in->n_codes; i++) {
        char code[PROMO_CODE_MAX + 1];
        CHECK(promo_rules_normalize_code("cart.codes", in->codes[i], code));
        out->codes[i] = arena_strdup(a, code);
    }
    if (in->n_coupon_ids > PROMO_CART_COUPONS_MAX ||
        in->n_coupon_codes > PROMO_CART_COUPONS_MAX - in->n_coupon_ids) {
        return status_invalid_field(in->n_coupon_codes ? "cart.coupon_codes" : "cart.coupon_ids",
                                    "at most %d coupons (ids and codes together)",
                                    PROMO_CART_COUPONS_MAX);
    }
    for (size_t i = 0; i < in->n_coupon_ids; i++) {
        CHECK(validate_token("cart.coupon_ids", in->coupon_ids[i], PROMO_TOKEN_MAX));
    }
    out->coupon_codes = arena_alloc(a, (in->n_coupon_codes + 1) * sizeof *out->coupon_codes);
    for (size_t i = 0; i < in->n_coupon_codes; i++) {
        char code[PROMO_CODE_MAX + 1];
        CHECK(promo_rules_normalize_code("cart.coupon_codes", in->coupon_codes[i], code));
        out->coupon_codes[i] = arena_strdup(a, code);
    }
    return check_range("cart.at", in->at, 0, INT64_MAX);
}

status_t promo_rules_check_ttl(int64_t ttl_s, int64_t *out) {
    if (ttl_s == 0) {
        *out = PROMO_TTL_DEFAULT_S;
        return status_ok();
    }
    CHECK(check_range("ttl_s", ttl_s, 1, PROMO_TTL_MAX_S));
    *out = ttl_s;
    return status_ok();
}

void promo_rules_coupon_window(const Loyalty__V1__PromoCouponTemplate *t, int64_t issued_at,
                               int64_t *valid_from_at, int64_t *valid_until_at) {
    if (t->valid_days > 0) {
        *valid_from_at = issued_at;
        *valid_until_at = issued_at + (int64_t)t->valid_days * 86400;
    } else {
        *valid_from_at = t->valid_from_at;
        *valid_until_at = t->valid_until_at;
    }
}

Loyalty__V1__PromoCouponStatus promo_rules_coupon_status(Loyalty__V1__PromoCouponStatus stored,
                                                         bool reservation_live,
                                                         int64_t valid_until_at, int64_t now) {
    if (stored == COUPON_STATUS(RESERVED) && !reservation_live) {
        stored = COUPON_STATUS(AVAILABLE); /* its checkout let it go, or let it expire */
    }
    if (stored == COUPON_STATUS(AVAILABLE) && now >= valid_until_at) {
        return COUPON_STATUS(EXPIRED);
    }
    return stored;
}

promo_reason_t promo_rules_limit_key(arena_t *a, const Loyalty__V1__Promotion *p, size_t i,
                                     const Loyalty__V1__PromoCart *cart,
                                     const promo_periods_t *periods, char **scope_key,
                                     const char **period_key) {
    const Loyalty__V1__PromoLimit *l = p->limits[i];
    switch (l->period) {
    case PERIOD(DAY):
        *period_key = periods->day;
        break;
    case PERIOD(WEEK):
        *period_key = periods->week;
        break;
    case PERIOD(MONTH):
        *period_key = periods->month;
        break;
    default:
        *period_key = "L";
        break;
    }
    switch (l->scope) {
    case SCOPE(MEMBER):
        *scope_key = cart->member_id[0] ? arena_printf(a, "M:%s", cart->member_id) : NULL;
        return cart->member_id[0] ? PROMO_REASON(UNSPECIFIED) : PROMO_REASON(MEMBER_REQUIRED);
    case SCOPE(STORE):
        *scope_key = cart->store_id[0] ? arena_printf(a, "S:%s", cart->store_id) : NULL;
        return cart->store_id[0] ? PROMO_REASON(UNSPECIFIED) : PROMO_REASON(STORE_REQUIRED);
    default:
        *scope_key = arena_strdup(a, "T");
        return PROMO_REASON(UNSPECIFIED);
    }
}

promo_limit_state_t promo_rules_limit_state(const Loyalty__V1__Promotion *p,
                                            const promo_reason_t *key_reasons, const int64_t *uses,
                                            const int64_t *discount_cents) {
    promo_limit_state_t s = {.blocked = PROMO_REASON(UNSPECIFIED), .budget_left_cents = INT64_MAX};
    for (size_t i = 0; i < p->n_limits; i++) {
        const Loyalty__V1__PromoLimit *l = p->limits[i];
        if (key_reasons[i] != PROMO_REASON(UNSPECIFIED)) {
            s.blocked = key_reasons[i];
            return s;
        }
        if (l->max_uses > 0 && uses[i] >= l->max_uses) {
            s.blocked = l->scope == SCOPE(TOTAL) && p->trigger == TRIGGER(CODE)
                            ? PROMO_REASON(CODE_USED_UP)
                            : PROMO_REASON(LIMIT_REACHED);
            return s;
        }
        if (l->max_discount_cents > 0) {
            int64_t left = l->max_discount_cents - discount_cents[i];
            if (left <= 0) {
                s.blocked = PROMO_REASON(BUDGET_EXHAUSTED);
                return s;
            }
            if (left < s.budget_left_cents) {
                s.budget_left_cents = left;
            }
        }
    }
    return s;
}

int promo_rules_counter_cmp(const promo_counter_t *a, const promo_counter_t *b) {
    int c = strcmp(a->promotion_id, b->promotion_id);
    if (c == 0) {
        c = strcmp(a->scope_key, b->scope_key);
    }
    return c != 0 ? c : strcmp(a->period_key, b->period_key);
}

static int counter_qsort_cmp(const void *x, const void *y) {
    return promo_rules_counter_cmp(x, y);
}

size_t promo_rules_counters_sort_unique(promo_counter_t *c, size_t n) {
    if (n == 0) {
        return 0;
    }
    qsort(c, n, sizeof *c, counter_qsort_cmp);
    size_t kept = 1;
    for (size_t i = 1; i < n; i++) {
        if (promo_rules_counter_cmp(&c[kept - 1], &c[i]) != 0) {
            c[kept++] = c[i];
        }
    }
    return kept;
}

size_t promo_rules_reserve_counters(arena_t *a, const Loyalty__V1__Promotion *p,
                                    const Loyalty__V1__PromoCart *cart,
                                    const promo_periods_t *periods, int64_t at,
                                    promo_counter_t *out) {
    if (p->n_limits == 0 || promo_quote_static_check(p, cart, at) != PROMO_REASON(APPLIED)) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < p->n_limits; i++) {
        char *scope = NULL;
        const char *period = NULL;
        if (promo_rules_limit_key(a, p, i, cart, periods, &scope, &period) ==
            PROMO_REASON(UNSPECIFIED)) {
            out[n++] =
                (promo_counter_t){.promotion_id = p->id, .scope_key = scope, .period_key = period};
        }
    }
    return n;
}
