/* member_view.c -- rows to messages. */
#include "member_view.h"

#include "pb.h"
#include "validate.h"

char *member_view_date(arena_t *a, int64_t day) {
    if (day == MEMBER_DAY_NONE) {
        return "";
    }
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    return arena_printf(a, "%04d-%02d-%02d", y, m, d);
}

Loyalty__V1__MemberTierRef *member_view_ref(arena_t *a, const member_tierset_t *ts,
                                            const char *tier_id) {
    Loyalty__V1__MemberTierRef *ref = pb_new(a, &loyalty__v1__member_tier_ref__descriptor);
    ref->id = arena_strdup(a, tier_id ? tier_id : "");
    int level = member_tierset_level(ts, tier_id);
    if (level > 0) {
        ref->name = ts->defs[level - 1].name;
        ref->rank = ts->defs[level - 1].rank;
    }
    return ref;
}

static Loyalty__V1__MemberTierRef *ref_id(arena_t *a, const char *tier_id) {
    Loyalty__V1__MemberTierRef *ref = pb_new(a, &loyalty__v1__member_tier_ref__descriptor);
    ref->id = arena_strdup(a, tier_id);
    return ref;
}

Loyalty__V1__MemberTierStatus *member_view_status_raw(arena_t *a, const member_row_t *r) {
    Loyalty__V1__MemberTierStatus *st = pb_new(a, &loyalty__v1__member_tier_status__descriptor);
    st->member_id = arena_strdup(a, r->id);
    st->tier = ref_id(a, r->effective_tier_id);
    st->card_kind = r->effective_kind;
    st->earned_tier = ref_id(a, r->tier_id);
    st->period_start = r->period_start ? member_view_date(a, r->period_start) : "";
    bool has_end = r->tier_id[0] != '\0' && r->period_end != MEMBER_DAY_NONE;
    st->period_end = has_end ? member_view_date(a, r->period_end - 1) : "";
    st->period_value = r->period_value;
    st->segment = r->segment;
    if (r->card_kind != MEMBER_CARD(UNSPECIFIED)) {
        Loyalty__V1__MemberCard *c = pb_new(a, &loyalty__v1__member_card__descriptor);
        c->kind = r->card_kind;
        c->tier = ref_id(a, r->card_tier_id);
        c->plan_id = arena_strdup(a, r->card_plan_id);
        c->valid_from = member_view_date(a, r->card_valid_from);
        c->valid_to = member_view_date(a, r->card_valid_to);
        c->reason = arena_strdup(a, r->card_reason);
        st->card = c;
    }
    if (r->effective_kind == MEMBER_CARD(TIER)) {
        st->valid_to = st->period_end;
    } else if (st->card != NULL && (r->effective_kind == MEMBER_CARD(PAID) ||
                                    r->effective_kind == MEMBER_CARD(INTERNAL))) {
        st->valid_to = st->card->valid_to;
    }
    return st;
}

static void fill_ref(const member_tierset_t *ts, Loyalty__V1__MemberTierRef *ref) {
    int level = member_tierset_level(ts, ref->id);
    if (level > 0) {
        ref->name = ts->defs[level - 1].name;
        ref->rank = ts->defs[level - 1].rank;
    }
}

void member_view_status_compose(arena_t *a, const member_tierset_t *ts,
                                Loyalty__V1__MemberTierBasis basis,
                                Loyalty__V1__MemberTierStatus *st) {
    fill_ref(ts, st->tier);
    fill_ref(ts, st->earned_tier);
    if (st->card != NULL) {
        fill_ref(ts, st->card->tier);
    }
    st->basis = basis;
    int level = member_tierset_level(ts, st->tier->id);
    st->discount_bps = level > 0 ? ts->defs[level - 1].discount_bps : 0;
    st->earn_multiplier_bps = level > 0 ? ts->defs[level - 1].earn_multiplier_bps : 10000;
    st->birthday_bonus_points = level > 0 ? ts->defs[level - 1].birthday_bonus_points : 0;
    int earned = member_tierset_level(ts, st->earned_tier->id);
    if (earned > 0) {
        st->retain_threshold = ts->defs[earned - 1].retain_threshold;
        int64_t missing = st->retain_threshold - st->period_value;
        st->value_to_retain = missing > 0 ? missing : 0;
    }
    if (earned < ts->n) {
        const member_tier_def_t *next = &ts->defs[earned];
        st->next_tier = member_view_ref(a, ts, next->id);
        st->next_tier_threshold = next->upgrade_threshold;
        int64_t missing = next->upgrade_threshold - st->period_value;
        st->value_to_next_tier = missing > 0 ? missing : 0;
    }
}

Loyalty__V1__MemberTierStatus *member_view_status(arena_t *a, const member_tierset_t *ts,
                                                  Loyalty__V1__MemberTierBasis basis,
                                                  const member_row_t *r) {
    Loyalty__V1__MemberTierStatus *st = member_view_status_raw(a, r);
    member_view_status_compose(a, ts, basis, st);
    return st;
}

Loyalty__V1__MemberStats *member_view_stats(arena_t *a, const member_settings_t *s,
                                            const member_row_t *r) {
    Loyalty__V1__MemberStats *st = pb_new(a, &loyalty__v1__member_stats__descriptor);
    st->order_count = r->order_count;
    st->total_spend_cents = r->total_spend_cents;
    st->total_growth = r->total_growth;
    st->first_order_at = r->first_order_at;
    st->last_order_at = r->last_order_at;
    st->months_with_purchases = r->months_with_purchases;
    st->segment = r->segment;
    st->segment_since_at = r->segment_since;
    st->rfm = pb_new(a, &loyalty__v1__member_rfm__descriptor);
    bool have = s->have_rfm && r->order_count > 0;
    st->rfm->recency = member_rfm_score(r->last_order_at, s->rfm_recency, have);
    st->rfm->frequency = member_rfm_score(r->order_count, s->rfm_frequency, have);
    st->rfm->monetary = member_rfm_score(r->total_spend_cents, s->rfm_monetary, have);
    st->automatic_tags = r->auto_tags;
    st->n_automatic_tags = r->n_auto_tags;
    st->points_balance = r->points_balance;
    return st;
}

Loyalty__V1__MemberTier *member_view_tier(arena_t *a, const member_tier_def_t *d) {
    Loyalty__V1__MemberTier *t = pb_new(a, &loyalty__v1__member_tier__descriptor);
    t->id = d->id;
    t->name = d->name;
    t->rank = d->rank;
    t->upgrade_threshold = d->upgrade_threshold;
    t->retain_threshold = d->retain_threshold;
    t->period_months = d->period_months;
    t->express_spend_cents = d->express_spend_cents;
    t->discount_bps = d->discount_bps;
    t->earn_multiplier_bps = d->earn_multiplier_bps;
    t->birthday_bonus_points = d->birthday_bonus_points;
    t->created_at = d->created_at;
    t->updated_at = d->updated_at;
    return t;
}

void member_view_tierset(const Loyalty__V1__MemberListTiersResponse *in, member_tierset_t *out) {
    *out = (member_tierset_t){0};
    for (size_t i = 0; i < in->n_tiers && i < MEMBER_TIERS_MAX; i++) {
        const Loyalty__V1__MemberTier *t = in->tiers[i];
        out->defs[out->n++] = (member_tier_def_t){
            .id = t->id,
            .name = t->name,
            .rank = t->rank,
            .upgrade_threshold = t->upgrade_threshold,
            .retain_threshold = t->retain_threshold,
            .period_months = t->period_months,
            .express_spend_cents = t->express_spend_cents,
            .discount_bps = t->discount_bps,
            .earn_multiplier_bps = t->earn_multiplier_bps,
            .birthday_bonus_points = t->birthday_bonus_points,
            .created_at = t->created_at,
            .updated_at = t->updated_at,
        };
    }
    member_tierset_index(out);
}
