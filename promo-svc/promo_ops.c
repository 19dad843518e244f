/* promo_ops.c -- gathering the inputs of the quote engine (see promo_ops.h). */
#include "promo_ops.h"

#include "promo_cache.h"
#include "promo_rules.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TRIGGER_CODE LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE
#define TRIGGER_AUTOMATIC LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC
#define CODE_UNIQUE LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE
#define CODE_SHARED LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_SHARED
#define SRC(x) LOYALTY__V1__PROMO_SOURCE_KIND__PROMO_SOURCE_KIND_##x

typedef Loyalty__V1__Promotion promotion_t;

/* Active promotions: Quote reads through the cache, Reserve reads PostgreSQL. Promotions that
 * ended since the entry was cached are dropped, so both paths see the same set. */
static status_t load_active(rpc_ctx_t *ctx, bool for_reserve, promotion_t ***out, size_t *n) {
    if (!for_reserve && promo_cache_active_get(ctx, out, n)) {
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++) {
            if ((*out)[i]->end_at == 0 || (*out)[i]->end_at > ctx->now_s) {
                (*out)[kept++] = (*out)[i];
            }
        }
        *n = kept;
        return status_ok();
    }
    status_t st =
        promo_store_promotions_active(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, out, n);
    if (status_is_ok(&st) && !for_reserve) {
        promo_cache_active_put(ctx, *out, *n);
    }
    return st;
}

/* The code's row (or, for Quote, the cached promotion of a shared code). Reserve locks unique
 * codes, never shared ones: every checkout with a shared code would queue on its row. */
static status_t lookup_code(rpc_ctx_t *ctx, const char *code, bool for_reserve, char **promotion_id,
                            promo_code_row_t *row, bool *found) {
    memset(row, 0, sizeof *row);
    if (!for_reserve && promo_cache_code_get(ctx, code, promotion_id)) {
        row->kind = CODE_SHARED;
        *found = true;
        return status_ok();
    }
    status_t st = promo_store_code_get(ctx->db, ctx->arena, ctx->merchant_id, code, ctx->now_s,
                                       false, row, found);
    if (status_is_ok(&st) && *found && for_reserve && row->kind == CODE_UNIQUE) {
        st = promo_store_code_get(ctx->db, ctx->arena, ctx->merchant_id, code, ctx->now_s, true,
                                  row, found);
    }
    if (!status_is_ok(&st) || !*found) {
        return st;
    }
    *promotion_id = row->promotion_id;
    if (!for_reserve && row->kind == CODE_SHARED) {
        promo_cache_code_put(ctx, code, row->promotion_id);
    }
    return status_ok();
}

static const promotion_t *find_promotion(promotion_t **list, size_t n, const char *id) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i]->id, id) == 0) {
            return list[i];
        }
    }
    return NULL;
}

/* The candidate brought in by cart code `code` (already normalised). */
static status_t code_candidate(rpc_ctx_t *ctx, promo_pricing_t *pc, promotion_t **active,
                               size_t n_active, const char *code, bool for_reserve) {
    size_t k = pc->n_cands++;
    promo_candidate_t *c = &pc->cands[k];
    *c = (promo_candidate_t){
        .code = code,
        .limit = {.blocked = PROMO_REASON(UNSPECIFIED), .budget_left_cents = INT64_MAX}};
    for (size_t j = 0; j < k; j++) {
        if (pc->cands[j].code && strcmp(pc->cands[j].code, code) == 0) {
            c->promotion = pc->cands[j].promotion;
            c->code_reason = PROMO_REASON(DUPLICATE);
            return status_ok();
        }
    }
    char *promotion_id = NULL;
    promo_code_row_t row;
    bool found = false;
    status_t st = lookup_code(ctx, code, for_reserve, &promotion_id, &row, &found);
    if (!status_is_ok(&st) || !found) {
        return st; /* no promotion: CODE_UNKNOWN */
    }
    const promotion_t *p = find_promotion(active, n_active, promotion_id);
    if (p == NULL) { /* paused or ended: still explained, with its reason */
        promotion_t *loaded = NULL;
        st = promo_store_promotion_get(ctx->db, ctx->arena, ctx->merchant_id, promotion_id, false,
                                       &loaded);
        if (st.code == STATUS_NOT_FOUND) {
            return status_ok();
        }
        if (!status_is_ok(&st)) {
            return st;
        }
        p = loaded;
    }
    if (p->trigger != TRIGGER_CODE) {
        return status_ok();
    }
    c->promotion = p;
    pc->code_kinds[k] = row.kind;
    for (size_t j = 0; j < k; j++) {
        if (pc->cands[j].promotion && strcmp(pc->cands[j].promotion->id, p->id) == 0) {
            c->code_reason = PROMO_REASON(DUPLICATE);
            return status_ok();
        }
    }
    if (row.kind == CODE_UNIQUE &&
        (row.status == LOYALTY__V1__PROMO_CODE_STATUS__PROMO_CODE_STATUS_USED || row.held_live)) {
        c->code_reason = PROMO_REASON(CODE_USED_UP);
    }
    return status_ok();
}

static status_t load_candidates(rpc_ctx_t *ctx, promo_pricing_t *pc, bool for_reserve,
                                const promo_preload_t *pre) {
    promotion_t **active = pre ? pre->active : NULL;
    size_t n_active = pre ? pre->n_active : 0;
    status_t st = pre ? status_ok() : load_active(ctx, for_reserve, &active, &n_active);
    if (!status_is_ok(&st)) {
        return st;
    }
    size_t cap = n_active + pc->cart.n_codes + 1;
    pc->cands = arena_alloc(ctx->arena, cap * sizeof *pc->cands);
    pc->code_kinds = arena_alloc(ctx->arena, cap * sizeof *pc->code_kinds);
    for (size_t i = 0; i < pc->cart.n_codes && status_is_ok(&st); i++) {
        st = code_candidate(ctx, pc, active, n_active, pc->cart.codes[i], for_reserve);
    }
    for (size_t i = 0; i < n_active; i++) {
        if (active[i]->trigger == TRIGGER_AUTOMATIC) {
            pc->cands[pc->n_cands++] = (promo_candidate_t){
                .promotion = active[i],
                .limit = {.blocked = PROMO_REASON(UNSPECIFIED), .budget_left_cents = INT64_MAX}};
        }
    }
    return st;
}

static status_t load_coupons(rpc_ctx_t *ctx, promo_pricing_t *pc, bool lock) {
    Loyalty__V1__PromoCoupon **found = NULL;
    bool *held = NULL;
    size_t n_found = 0;
    const size_t n_ids = pc->cart.n_coupon_ids;
    status_t st = promo_store_coupons_for_cart(
        ctx->db, ctx->arena, ctx->merchant_id, pc->cart.coupon_ids, n_ids, pc->cart.coupon_codes,
        pc->cart.n_coupon_codes, ctx->now_s, lock, &found, &held, &n_found);
    if (!status_is_ok(&st)) {
        return st;
    }
    pc->n_coupons = n_ids + pc->cart.n_coupon_codes;
    pc->coupons = arena_alloc(ctx->arena, (pc->n_coupons + 1) * sizeof *pc->coupons);
    for (size_t j = 0; j < pc->n_coupons; j++) {
        promo_coupon_input_t *in = &pc->coupons[j];
        in->coupon_id = j < n_ids ? pc->cart.coupon_ids[j] : "";
        in->code = j < n_ids ? "" : pc->cart.coupon_codes[j - n_ids];
        for (size_t k = 0; k < n_found; k++) {
            bool match = j < n_ids ? strcmp(found[k]->id, in->coupon_id) == 0
                                   : strcmp(found[k]->code, in->code) == 0;
            /* A code only finds the cart member's coupon: another member's code is unknown to
             * this cart, and its id is not shown. */
            if (match && j >= n_ids && strcmp(found[k]->member_id, pc->cart.member_id) != 0) {
                match = false;
            }
            if (match) {
                in->coupon = found[k];
                in->held_elsewhere = held[k];
                if (j >= n_ids) {
                    in->coupon_id = found[k]->id;
                }
            }
        }
    }
    return status_ok();
}

/* ---- limit counters ---- */

typedef struct keyed {
    promo_counter_t key;
    size_t temp; /* index before sorting */
} keyed_t;

/* Byte order, the COLLATE "C" order the lock queries use, so that every transaction takes the
 * counter rows in the same order. */
static int keyed_cmp(const void *x, const void *y) {
    return promo_rules_counter_cmp(&((const keyed_t *)x)->key, &((const keyed_t *)y)->key);
}

/* Sorts the keys and merges duplicates; temp_to_unique maps each original index. */
static void counters_unique(arena_t *a, keyed_t *keys, size_t m, promo_pricing_t *pc,
                            size_t *temp_to_unique) {
    qsort(keys, m, sizeof *keys, keyed_cmp);
    pc->counters = arena_alloc(a, (m + 1) * sizeof *pc->counters);
    pc->n_counters = 0;
    for (size_t i = 0; i < m; i++) {
        if (pc->n_counters == 0 ||
            promo_rules_counter_cmp(&pc->counters[pc->n_counters - 1], &keys[i].key) != 0) {
            pc->counters[pc->n_counters++] = keys[i].key;
        }
        temp_to_unique[keys[i].temp] = pc->n_counters - 1;
    }
}

static bool has_limits(const promo_pricing_t *pc, const promo_candidate_t *c) {
    return c->promotion != NULL && c->code_reason == PROMO_REASON(UNSPECIFIED) &&
           c->promotion->n_limits > 0 &&
           promo_quote_static_check(c->promotion, &pc->cart, pc->at) == PROMO_REASON(APPLIED);
}

static void fold_limits(arena_t *a, promo_pricing_t *pc, promo_reason_t **reasons) {
    for (size_t k = 0; k < pc->n_cands; k++) {
        if (pc->limit_counter[k] == NULL) {
            continue;
        }
        const promotion_t *p = pc->cands[k].promotion;
        int64_t *uses = arena_alloc(a, p->n_limits * sizeof *uses);
        int64_t *disc = arena_alloc(a, p->n_limits * sizeof *disc);
        for (size_t i = 0; i < p->n_limits; i++) {
            size_t idx = pc->limit_counter[k][i];
            if (idx != SIZE_MAX) {
                uses[i] = pc->counters[idx].uses;
                disc[i] = pc->counters[idx].discount_cents;
            }
        }
        pc->cands[k].limit = promo_rules_limit_state(p, reasons[k], uses, disc);
    }
}

/* Reads (Quote) or locks (Reserve) the counters of every candidate that may apply. */
static status_t load_limits(rpc_ctx_t *ctx, promo_pricing_t *pc, bool lock) {
    arena_t *a = ctx->arena;
    size_t cap = 0;
    for (size_t k = 0; k < pc->n_cands; k++) {
        cap += has_limits(pc, &pc->cands[k]) ? pc->cands[k].promotion->n_limits : 0;
    }
    pc->limit_counter = arena_alloc(a, (pc->n_cands + 1) * sizeof *pc->limit_counter);
    promo_reason_t **reasons = arena_alloc(a, (pc->n_cands + 1) * sizeof *reasons);
    keyed_t *keys = arena_alloc(a, (cap + 1) * sizeof *keys);
    size_t m = 0;
    for (size_t k = 0; k < pc->n_cands; k++) {
        if (!has_limits(pc, &pc->cands[k])) {
            continue;
        }
        const promotion_t *p = pc->cands[k].promotion;
        pc->limit_counter[k] = arena_alloc(a, p->n_limits * sizeof **pc->limit_counter);
        reasons[k] = arena_alloc(a, p->n_limits * sizeof **reasons);
        for (size_t i = 0; i < p->n_limits; i++) {
            char *scope = NULL;
            const char *period = NULL;
            reasons[k][i] =
                promo_rules_limit_key(a, p, i, &pc->cart, &pc->periods, &scope, &period);
            pc->limit_counter[k][i] = SIZE_MAX;
            if (reasons[k][i] == PROMO_REASON(UNSPECIFIED)) {
                keys[m] = (keyed_t){.key = {p->id, scope, period, 0, 0}, .temp = m};
                pc->limit_counter[k][i] = m++;
            }
        }
    }
    size_t *temp_to_unique = arena_alloc(a, (m + 1) * sizeof *temp_to_unique);
    counters_unique(a, keys, m, pc, temp_to_unique);
    for (size_t k = 0; k < pc->n_cands; k++) {
        for (size_t i = 0; pc->limit_counter[k] && i < pc->cands[k].promotion->n_limits; i++) {
            if (pc->limit_counter[k][i] != SIZE_MAX) {
                pc->limit_counter[k][i] = temp_to_unique[pc->limit_counter[k][i]];
            }
        }
    }
    status_t st =
        promo_store_counters_read(ctx->db, a, ctx->merchant_id, pc->counters, pc->n_counters, lock);
    if (status_is_ok(&st)) {
        fold_limits(a, pc, reasons);
    }
    return st;
}

status_t promo_ops_price(rpc_ctx_t *ctx, const Loyalty__V1__PromoCart *cart, bool for_reserve,
                         const promo_preload_t *pre, promo_pricing_t *pc) {
    memset(pc, 0, sizeof *pc);
    status_t st = promo_rules_check_cart(ctx->arena, cart, &pc->cart);
    if (!status_is_ok(&st)) {
        return st;
    }
    pc->at = for_reserve || pc->cart.at == 0 ? ctx->now_s : pc->cart.at;
    if (pre != NULL) {
        assert(for_reserve); /* read at the server's time, as Reserve prices */
        pc->settings = pre->settings;
        pc->periods = pre->periods;
    } else {
        st = promo_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, pc->at, &pc->settings,
                                      &pc->periods);
    }
    if (status_is_ok(&st)) {
        st = load_coupons(ctx, pc, for_reserve); /* lock order: coupons, codes, counters */
    }
    if (status_is_ok(&st)) {
        st = load_candidates(ctx, pc, for_reserve, pre);
    }
    if (status_is_ok(&st)) {
        st = load_limits(ctx, pc, for_reserve);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    promo_quote_input_t in = {.cart = &pc->cart,
                              .at = pc->at,
                              .candidates = pc->cands,
                              .n_candidates = pc->n_cands,
                              .coupons = pc->coupons,
                              .n_coupons = pc->n_coupons};
    return promo_quote(ctx->arena, &in, &pc->quote);
}

status_t promo_ops_check_requested(const promo_pricing_t *pc) {
    const Loyalty__V1__PromoQuoteResult *q = pc->quote;
    for (size_t i = 0; i < q->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = q->considered[i];
        if (c->applied) {
            continue;
        }
        if (c->kind == SRC(COUPON) && c->code[0] != '\0') {
            return status_make_relayed(STATUS_FAILED_PRECONDITION, promo_reason_name(c->reason),
                                       "coupon code %s cannot be applied: %s", c->code,
                                       promo_reason_name(c->reason));
        }
        if (c->kind == SRC(COUPON)) {
            return status_make_relayed(STATUS_FAILED_PRECONDITION, promo_reason_name(c->reason),
                                       "coupon %s cannot be applied: %s", c->coupon_id,
                                       promo_reason_name(c->reason));
        }
        if (c->code[0] != '\0') {
            return status_make_relayed(STATUS_FAILED_PRECONDITION, promo_reason_name(c->reason),
                                       "code %s cannot be applied: %s", c->code,
                                       promo_reason_name(c->reason));
        }
    }
    return status_ok();
}

/* The applied entry of promotion `id` in the quote, or NULL. */
static const Loyalty__V1__PromoConsidered *applied_entry(const Loyalty__V1__PromoQuoteResult *q,
                                                         const char *id) {
    for (size_t i = 0; i < q->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = q->considered[i];
        if (c->applied && c->kind == SRC(PROMOTION) && strcmp(c->promotion_id, id) == 0) {
            return c;
        }
    }
    return NULL;
}

void promo_ops_takes(arena_t *a, const promo_pricing_t *pc, promo_counter_t **out, size_t *n,
                     char ***codes, size_t *n_codes, char ***coupons, size_t *n_coupons) {
    promo_counter_t *d = arena_alloc(a, (pc->n_counters + 1) * sizeof *d);
    bool *touched = arena_alloc(a, pc->n_counters + 1);
    *codes = arena_alloc(a, (pc->n_cands + 1) * sizeof **codes);
    *n_codes = 0;
    for (size_t i = 0; i < pc->n_counters; i++) {
        d[i] = pc->counters[i];
        d[i].uses = d[i].discount_cents = 0;
    }
    for (size_t k = 0; k < pc->n_cands; k++) {
        const promo_candidate_t *c = &pc->cands[k];
        if (c->promotion == NULL || c->code_reason != PROMO_REASON(UNSPECIFIED)) {
            continue;
        }
        const Loyalty__V1__PromoConsidered *e = applied_entry(pc->quote, c->promotion->id);
        if (e == NULL) {
            continue;
        }
        memset(touched, 0, pc->n_counters + 1);
        for (size_t i = 0; pc->limit_counter[k] && i < c->promotion->n_limits; i++) {
            size_t idx = pc->limit_counter[k][i];
            if (idx != SIZE_MAX && !touched[idx]) { /* two limits on one counter count once */
                touched[idx] = true;
                d[idx].uses += 1;
                d[idx].discount_cents += e->discount_cents + e->shipping_discount_cents;
            }
        }
        if (pc->code_kinds[k] == CODE_UNIQUE) {
            (*codes)[(*n_codes)++] = (char *)c->code;
        }
    }
    *n = 0;
    for (size_t i = 0; i < pc->n_counters; i++) {
        if (d[i].uses > 0) {
            d[(*n)++] = d[i];
        }
    }
    *out = d;
    *coupons = arena_alloc(a, (pc->quote->n_considered + 1) * sizeof **coupons);
    *n_coupons = 0;
    for (size_t i = 0; i < pc->quote->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = pc->quote->considered[i];
        if (c->applied && c->kind == SRC(COUPON)) {
            (*coupons)[(*n_coupons)++] = c->coupon_id;
        }
    }
}

/* ---- merged batches ---- */

void promo_ops_batch_carts(arena_t *a, const Loyalty__V1__PromoCart *const *in, size_t n,
                           Loyalty__V1__PromoCart **carts, size_t *n_carts, char ***codes,
                           size_t *n_codes) {
    *carts = arena_alloc(a, (n + 1) * sizeof **carts);
    *codes = arena_alloc(a, (n * PROMO_CART_CODES_MAX + 1) * sizeof **codes);
    *n_carts = *n_codes = 0;
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__PromoCart *c = &(*carts)[*n_carts];
        status_t st = promo_rules_check_cart(a, in[i], c);
        if (!status_is_ok(&st)) {
            continue;
        }
        assert(c->n_codes <= PROMO_CART_CODES_MAX);
        for (size_t j = 0; j < c->n_codes; j++) {
            (*codes)[(*n_codes)++] = c->codes[j];
        }
        (*n_carts)++;
    }
}

/* Whether promotion `p` is a candidate of `cart`: automatic, or brought in by one of its codes. */
static bool batch_candidate(const promotion_t *p, const Loyalty__V1__PromoCart *cart,
                            char *const *codes, char *const *code_promotions, size_t n_codes) {
    if (p->trigger == TRIGGER_AUTOMATIC) {
        return true;
    }
    for (size_t i = 0; i < n_codes; i++) {
        if (code_promotions[i] == NULL || strcmp(code_promotions[i], p->id) != 0) {
            continue;
        }
        for (size_t j = 0; j < cart->n_codes; j++) {
            if (strcmp(cart->codes[j], codes[i]) == 0) {
                return true;
            }
        }
    }
    return false;
}

void promo_ops_batch_counters(arena_t *a, const Loyalty__V1__PromoCart *carts, size_t n_carts,
                              const promo_preload_t *pre, int64_t at, char *const *codes,
                              char *const *code_promotions, size_t n_codes, promo_counter_t **out,
                              size_t *n) {
    size_t cap = 0;
    for (size_t k = 0; k < pre->n_active; k++) {
        cap += pre->active[k]->n_limits;
    }
    cap *= n_carts;
    promo_counter_t *c = arena_alloc(a, (cap + 1) * sizeof *c);
    size_t m = 0;
    for (size_t i = 0; i < n_carts; i++) {
        for (size_t k = 0; k < pre->n_active; k++) {
            const promotion_t *p = pre->active[k];
            if (batch_candidate(p, &carts[i], codes, code_promotions, n_codes)) {
                m += promo_rules_reserve_counters(a, p, &carts[i], &pre->periods, at, &c[m]);
            }
        }
    }
    assert(m <= cap);
    *out = c;
    *n = promo_rules_counters_sort_unique(c, m);
}
