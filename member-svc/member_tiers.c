/* member_tiers.c -- the tier engine: ladders, orders, returns, period ends, cards. */
#include "member_tiers.h"

#include "validate.h"

#include <assert.h>
#include <stdio.h>

#define VALUE_CAP (INT64_MAX / 2)

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

static int max_int(int a, int b) {
    return a > b ? a : b;
}

status_t member_tier_check_fields(const char *prefix, const Loyalty__V1__MemberTier *t) {
    char field[64];
#define FIELD(name) (snprintf(field, sizeof field, "%s." name, prefix), field)
    status_t st = validate_text(FIELD("name"), t->name, 1, MEMBER_TIER_NAME_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (t->rank < 1 || t->rank > MEMBER_TIER_RANK_MAX) {
        return status_invalid_field(FIELD("rank"), "must be 1..%d", MEMBER_TIER_RANK_MAX);
    }
    if (t->upgrade_threshold < 0 || t->upgrade_threshold > MEMBER_THRESHOLD_MAX) {
        return status_invalid_field(FIELD("upgrade_threshold"), "must be 0..10^15");
    }
    if (t->retain_threshold < 0 || t->retain_threshold > t->upgrade_threshold) {
        return status_invalid_field(FIELD("retain_threshold"), "must be 0..upgrade_threshold");
    }
    if (t->period_months < 0 || t->period_months > MEMBER_PERIOD_MONTHS_MAX) {
        return status_invalid_field(FIELD("period_months"), "must be 0..%d",
                                    MEMBER_PERIOD_MONTHS_MAX);
    }
    if (t->express_spend_cents < 0 || t->express_spend_cents > MEMBER_THRESHOLD_MAX) {
        return status_invalid_field(FIELD("express_spend_cents"), "must be 0..10^15");
    }
    if (t->discount_bps < 0 || t->discount_bps > 10000) {
        return status_invalid_field(FIELD("discount_bps"), "must be 0..10000");
    }
    if (t->earn_multiplier_bps < MEMBER_EARN_MULTIPLIER_MIN_BPS ||
        t->earn_multiplier_bps > MEMBER_EARN_MULTIPLIER_MAX_BPS) {
        return status_invalid_field(FIELD("earn_multiplier_bps"), "must be %d..%d",
                                    MEMBER_EARN_MULTIPLIER_MIN_BPS, MEMBER_EARN_MULTIPLIER_MAX_BPS);
    }
    if (t->birthday_bonus_points < 0 || t->birthday_bonus_points > MEMBER_BIRTHDAY_POINTS_MAX) {
        return status_invalid_field(FIELD("birthday_bonus_points"), "must be 0..10^9");
    }
#undef FIELD
    return status_ok();
}

void member_ladder_sort(member_ladder_t *l) {
    assert(l->n >= 0 && l->n <= MEMBER_TIERS_MAX);
    for (int i = 1; i < l->n; i++) { /* insertion sort: n <= 10, stable */
        member_tier_rule_t t = l->tiers[i];
        int k = i;
        while (k > 0 && l->tiers[k - 1].rank > t.rank) {
            l->tiers[k] = l->tiers[k - 1];
            k--;
        }
        l->tiers[k] = t;
    }
}

status_t member_ladder_check(const member_ladder_t *l) {
    if (l->n < 0 || l->n > MEMBER_TIERS_MAX) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER, "at most %d tiers",
                           MEMBER_TIERS_MAX);
    }
    int64_t last_express = 0;
    for (int i = 0; i < l->n; i++) {
        const member_tier_rule_t *t = &l->tiers[i];
        if (t->retain_threshold > t->upgrade_threshold) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER,
                               "rank %d: retain threshold above its upgrade threshold", t->rank);
        }
        if (t->express_spend_cents > 0) {
            if (t->express_spend_cents <= last_express) {
                return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER,
                                   "rank %d: express amount must be above the lower tiers'",
                                   t->rank);
            }
            last_express = t->express_spend_cents;
        }
        if (i == 0) {
            continue;
        }
        const member_tier_rule_t *below = &l->tiers[i - 1];
        if (t->rank == below->rank) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER,
                               "two tiers have rank %d", t->rank);
        }
        if (t->upgrade_threshold <= below->upgrade_threshold) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER,
                               "rank %d: upgrade threshold must be above rank %d's", t->rank,
                               below->rank);
        }
        if (t->retain_threshold < below->retain_threshold) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_LADDER,
                               "rank %d: retain threshold below rank %d's", t->rank, below->rank);
        }
    }
    return status_ok();
}

int member_ladder_level_for_value(const member_ladder_t *l, int64_t value) {
    for (int i = l->n; i > 0; i--) {
        if (l->tiers[i - 1].upgrade_threshold <= value) {
            return i;
        }
    }
    return 0;
}

int member_ladder_level_for_express(const member_ladder_t *l, int64_t spend_cents) {
    for (int i = l->n; i > 0; i--) {
        int64_t e = l->tiers[i - 1].express_spend_cents;
        if (e > 0 && e <= spend_cents) {
            return i;
        }
    }
    return 0;
}

int64_t member_day_add_months(int64_t day, int32_t months) {
    assert(months >= 0);
    if (months == 0) {
        return MEMBER_DAY_NONE;
    }
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    int64_t month_index = (int64_t)y * 12 + (m - 1) + months;
    int ny = (int)(month_index / 12);
    int nm = (int)(month_index % 12) + 1;
    if (d <= date_days_in_month(ny, nm)) {
        return date_days_from_civil(ny, nm, d);
    }
    /* The target month is shorter: the period runs to its end, i.e. the next month's 1st. */
    return date_days_from_civil(ny, nm, date_days_in_month(ny, nm)) + 1;
}

static int32_t months_of(const member_ladder_t *l, int level) {
    return level > 0 ? l->tiers[level - 1].period_months : 0;
}

static int64_t retain_of(const member_ladder_t *l, int level) {
    return level > 0 ? l->tiers[level - 1].retain_threshold : 0;
}

/* The period end after reaching `level` by an upgrade on `today` (see member_tier_on_order). */
static int64_t end_after_upgrade(const member_ladder_t *l, const member_tier_state_t *s, int level,
                                 int64_t today) {
    int64_t new_end = member_day_add_months(today, months_of(l, level));
    if (new_end == MEMBER_DAY_NONE || s->level == 0 || s->period_end == MEMBER_DAY_NONE) {
        return new_end;
    }
    return max64(s->period_end, new_end);
}

static void event_set(member_tier_event_t *ev, int from, int to,
                      Loyalty__V1__MemberTierChangeReason reason, int64_t before, int64_t after,
                      int64_t day) {
    ev->from_level = from;
    ev->to_level = to;
    ev->reason = reason;
    ev->value_before = before;
    ev->value_after = after;
    ev->day = day;
}

bool member_tier_join(const member_ladder_t *l, int64_t today, member_tier_state_t *s,
                      member_tier_event_t *ev) {
    *s = (member_tier_state_t){
        .period_start = today,
        .period_end = MEMBER_DAY_NONE,
    };
    return member_tier_on_order(l, s, 0, 0, today, ev);
}

bool member_tier_on_order(const member_ladder_t *l, member_tier_state_t *s, int64_t value_delta,
                          int64_t spend_cents, int64_t today, member_tier_event_t *ev) {
    assert(value_delta >= 0 && spend_cents >= 0 && s->value >= 0);
    int64_t before = s->value;
    s->value = value_delta > VALUE_CAP - s->value ? VALUE_CAP : s->value + value_delta;
    int by_value = member_ladder_level_for_value(l, s->value);
    int by_express = member_ladder_level_for_express(l, spend_cents);
    s->express_level = max_int(s->express_level, by_express);
    int level = max_int(s->level, max_int(by_value, by_express));
    if (level == s->level) {
        return false;
    }
    Loyalty__V1__MemberTierChangeReason reason =
        by_express > max_int(s->level, by_value) ? MEMBER_REASON(EXPRESS) : MEMBER_REASON(UPGRADE);
    event_set(ev, s->level, level, reason, before, s->value, today);
    s->period_end = end_after_upgrade(l, s, level, today);
    s->level = level;
    return true;
}

bool member_tier_on_return(const member_ladder_t *l, member_tier_state_t *s, int64_t value_delta,
                           int64_t express_spend_max, int64_t today, member_tier_event_t *ev) {
    assert(value_delta >= 0 && s->value >= 0);
    int64_t before = s->value;
    s->value = value_delta >= s->value ? 0 : s->value - value_delta;
    int express = member_ladder_level_for_express(l, express_spend_max);
    if (express < s->express_level) {
        s->express_level = express;
    }
    int level = max_int(s->base_level,
                        max_int(member_ladder_level_for_value(l, s->value), s->express_level));
    if (level >= s->level) {
        return false; /* a return never raises the tier */
    }
    event_set(ev, s->level, level, MEMBER_REASON(RETURN), before, s->value, today);
    if (level == 0 || months_of(l, level) == 0) {
        s->period_end = MEMBER_DAY_NONE;
    }
    s->level = level;
    return true;
}

bool member_tier_period_due(const member_tier_state_t *s, int64_t today) {
    return s->level > 0 && s->period_end != MEMBER_DAY_NONE && s->period_end <= today;
}

int member_tier_on_period_end(const member_ladder_t *l, member_tier_state_t *s, int64_t today,
                              member_tier_event_t *ev, int max) {
    int n = 0;
    while (n < max && member_tier_period_due(s, today)) {
        int from = s->level;
        int64_t before = s->value;
        bool renew = s->value >= retain_of(l, from);
        int kept = renew ? from : from - 1;
        /* Carry-over: the kept tier's retain threshold is consumed, the rest carries over. For
         * a renewal value >= retain(kept), so carry = value - retain(kept) exactly; for a
         * downgrade the value may be below even the lower tier's retain threshold: then 0. */
        int64_t consumed = retain_of(l, kept);
        int64_t carry = s->value >= consumed ? s->value - consumed : 0;
        int64_t start = s->period_end;
        s->period_seq++;
        s->period_start = start;
        s->base_level = kept;
        s->express_level = 0;
        s->value = carry;
        s->level = kept;
        s->period_end = member_day_add_months(start, months_of(l, kept));
        event_set(&ev[n++], from, kept, renew ? MEMBER_REASON(RENEWAL) : MEMBER_REASON(DOWNGRADE),
                  before, carry, start);
        /* The carry is below the next tier's upgrade threshold unless the ladder changed during
         * the period; then the member gets what the carry earns, as any order would give. */
        if (n < max && member_tier_on_order(l, s, 0, 0, start, &ev[n])) {
            n++;
        }
    }
    return n;
}

bool member_card_valid(const member_card_t *c, int64_t today) {
    return c->kind != MEMBER_CARD(UNSPECIFIED) && c->valid_from <= today && today <= c->valid_to;
}

bool member_card_expired(const member_card_t *c, int64_t today) {
    return c->kind != MEMBER_CARD(UNSPECIFIED) && c->valid_to != MEMBER_DAY_NONE &&
           c->valid_to < today;
}

member_card_t member_card_purchase(const member_card_t *current, bool same_plan, int level,
                                   int32_t months, int64_t today) {
    assert(months >= 1);
    member_card_t c = {
        .kind = MEMBER_CARD(PAID),
        .level = level,
        .valid_from = today,
    };
    if (same_plan && current->kind == MEMBER_CARD(PAID) && member_card_valid(current, today) &&
        current->valid_to != MEMBER_DAY_NONE) {
        c.valid_from = current->valid_from;
        c.valid_to = member_day_add_months(current->valid_to + 1, months) - 1;
        return c;
    }
    c.valid_to = member_day_add_months(today, months) - 1;
    return c;
}

member_effective_t member_tier_effective(int earned_level, const member_card_t *card,
                                         int64_t today) {
    if (member_card_valid(card, today) && card->level > 0 && card->level >= earned_level) {
        return (member_effective_t){card->level, card->kind};
    }
    if (earned_level > 0) {
        return (member_effective_t){earned_level, MEMBER_CARD(TIER)};
    }
    return (member_effective_t){0, MEMBER_CARD(FREE)};
}
