/* referral_rules.c -- programme validation, tree rules, reward, reversal and release
 * arithmetic. */
#include "referral_rules.h"

#include "money.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- programme ---- */

static status_t check_range(const char *field, int64_t v, int64_t min, int64_t max) {
    if (v < min || v > max) {
        return status_invalid_field(field, "must be between %lld and %lld", (long long)min,
                                    (long long)max);
    }
    return status_ok();
}

/* The figure a purchase reward kind takes, and the one it must leave at 0. */
static status_t check_purchase_kind(const Loyalty__V1__ReferralLevelRule *r) {
    switch (r->purchase_reward_kind) {
    case LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_NONE:
        if (r->purchase_fixed_points != 0 || r->purchase_bps != 0) {
            return status_invalid_field("program.level_rules.purchase_reward_kind",
                                        "NONE takes no fixed points or bps");
        }
        return status_ok();
    case LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_FIXED:
        if (r->purchase_bps != 0) {
            return status_invalid_field("program.level_rules.purchase_bps",
                                        "must be 0 for a FIXED reward");
        }
        return check_range("program.level_rules.purchase_fixed_points", r->purchase_fixed_points, 1,
                           REFERRAL_POINTS_MAX);
    case LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS:
        if (r->purchase_fixed_points != 0) {
            return status_invalid_field("program.level_rules.purchase_fixed_points",
                                        "must be 0 for a BPS reward");
        }
        return check_range("program.level_rules.purchase_bps", r->purchase_bps, 1, BPS_ONE);
    default:
        return status_invalid_field("program.level_rules.purchase_reward_kind", "unknown kind %d",
                                    (int)r->purchase_reward_kind);
    }
}

/* Validates one level rule of a programme with `levels` levels. */
static status_t check_level_rule(const Loyalty__V1__ReferralLevelRule *r, int levels) {
    static const struct {
        const char *field;
        size_t offset;
        bool is_int32;
        int64_t max;
    } figures[] = {
        {"program.level_rules.registration_points",
         offsetof(Loyalty__V1__ReferralLevelRule, registration_points), false, REFERRAL_POINTS_MAX},
        {"program.level_rules.purchase_cap_points",
         offsetof(Loyalty__V1__ReferralLevelRule, purchase_cap_points), false, REFERRAL_POINTS_MAX},
        {"program.level_rules.purchase_first_n",
         offsetof(Loyalty__V1__ReferralLevelRule, purchase_first_n), true, REFERRAL_FIRST_N_MAX},
        {"program.level_rules.purchase_within_days",
         offsetof(Loyalty__V1__ReferralLevelRule, purchase_within_days), true,
         REFERRAL_WITHIN_DAYS_MAX},
    };
    status_t st = check_range("program.level_rules.level", r->level, 1, levels);
    for (size_t i = 0; status_is_ok(&st) && i < sizeof figures / sizeof figures[0]; i++) {
        const char *p = (const char *)r + figures[i].offset;
        int64_t v = figures[i].is_int32 ? *(const int32_t *)(const void *)p
                                        : *(const int64_t *)(const void *)p;
        st = check_range(figures[i].field, v, 0, figures[i].max);
    }
    return status_is_ok(&st) ? check_purchase_kind(r) : st;
}

/* Copies the level rules into `rules` indexed by level - 1, refusing duplicates. */
static status_t check_level_rules(arena_t *a, const Loyalty__V1__ReferralProgram *in,
                                  Loyalty__V1__ReferralLevelRule **rules) {
    if (in->n_level_rules != (size_t)in->levels) {
        return status_invalid_field("program.level_rules", "needs exactly one rule per level (%d)",
                                    (int)in->levels);
    }
    for (size_t i = 0; i < in->n_level_rules; i++) {
        const Loyalty__V1__ReferralLevelRule *r = in->level_rules[i];
        status_t st = check_level_rule(r, in->levels);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (rules[r->level - 1] != NULL) {
            return status_invalid_field("program.level_rules.level", "level %d appears twice",
                                        (int)r->level);
        }
        Loyalty__V1__ReferralLevelRule *copy = arena_alloc(a, sizeof *copy);
        *copy = *r;
        copy->base.unknown_fields = NULL;
        copy->base.n_unknown_fields = 0;
        rules[r->level - 1] = copy;
    }
    return status_ok();
}

status_t referral_rules_check_program(arena_t *a, const Loyalty__V1__ReferralProgram *in,
                                      Loyalty__V1__ReferralProgram *out) {
    if (in == NULL) {
        return status_invalid_field("program", "is required");
    }
    status_t st = check_range("program.levels", in->levels, 1, REFERRAL_LEVELS_MAX);
    Loyalty__V1__ReferralLevelRule **rules = arena_alloc(a, REFERRAL_LEVELS_MAX * sizeof *rules);
    if (status_is_ok(&st)) {
        st = check_level_rules(a, in, rules);
    }
    if (status_is_ok(&st)) {
        st = check_range("program.welcome_points", in->welcome_points, 0, REFERRAL_POINTS_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_range("program.purchase_hold_days", in->purchase_hold_days, 0,
                         REFERRAL_HOLD_DAYS_MAX);
    }
    if (status_is_ok(&st)) {
        st = referral_check_url_template("program.share_url_template", in->share_url_template);
    }
    if (status_is_ok(&st)) {
        st = referral_check_message_template("program.share_message_template",
                                             in->share_message_template);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    out->enabled = in->enabled;
    out->levels = in->levels;
    out->level_rules = rules;
    out->n_level_rules = in->n_level_rules;
    out->welcome_points = in->welcome_points;
    out->purchase_hold_days = in->purchase_hold_days;
    out->share_url_template = arena_strdup(a, in->share_url_template);
    out->share_message_template = arena_strdup(a, in->share_message_template);
    out->version = 0;
    out->updated_at = 0;
    return status_ok();
}

const Loyalty__V1__ReferralLevelRule *referral_rules_level(const Loyalty__V1__ReferralProgram *p,
                                                           int level) {
    if (level < 1 || level > p->levels) {
        return NULL;
    }
    for (size_t i = 0; i < p->n_level_rules; i++) {
        if (p->level_rules[i]->level == level) {
            return p->level_rules[i];
        }
    }
    return NULL;
}

/* ---- the tree ---- */

status_t referral_rules_attach(const referral_node_t *referee, bool referee_has_downline,
                               const referral_node_t *referrer, referral_attach_plan_t *plan) {
    memset(plan, 0, sizeof *plan);
    if (strcmp(referee->member_id, referrer->member_id) == 0) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_SELF_REFERRAL,
                           "a member cannot use its own referral code");
    }
    if (referee->referrer_id[0] != '\0') {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ALREADY_REFERRED,
                           "the member already has a referrer");
    }
    /* The referee has no referrer, so it is the root of its own tree: the referrer is in its
     * downline exactly when the referrer's tree has the referee as root. The stored ancestors
     * are checked too, so that the rule holds even for a row whose root were wrong. */
    const char *up[] = {referrer->referrer_id, referrer->ancestor_2, referrer->ancestor_3};
    bool cycle = strcmp(referrer->root_id, referee->member_id) == 0;
    for (int i = 0; i < 3; i++) {
        cycle = cycle || strcmp(up[i], referee->member_id) == 0;
    }
    if (cycle) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REFERRAL_CYCLE,
                           "the referrer is in the member's own downline");
    }
    if (referee_has_downline) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REFEREE_HAS_DOWNLINE,
                           "a member who has referred others cannot be attached to a referrer");
    }
    plan->ancestors[0] = referrer->member_id;
    plan->ancestors[1] = referrer->referrer_id;
    plan->ancestors[2] = referrer->ancestor_2;
    plan->n_ancestors = 1 + (referrer->referrer_id[0] ? 1 : 0) + (referrer->ancestor_2[0] ? 1 : 0);
    plan->root_id = referrer->root_id[0] ? referrer->root_id : referrer->member_id;
    return status_ok();
}

/* ---- rewards ---- */

int64_t referral_rules_purchase_points(const Loyalty__V1__ReferralLevelRule *rule,
                                       int64_t paid_cents, bool *capped) {
    *capped = false;
    int64_t points = 0;
    switch (rule->purchase_reward_kind) {
    case LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_FIXED:
        points = rule->purchase_fixed_points;
        break;
    case LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS:
        /* Floor: never give away more than earned. The product is taken in 128 bits. */
        if (!money_share_bps(paid_cents, rule->purchase_bps, ROUND_FLOOR, &points)) {
            points = 0;
        }
        break;
    default:
        return 0;
    }
    if (points < 0) {
        points = 0;
    }
    if (rule->purchase_cap_points > 0 && points > rule->purchase_cap_points) {
        points = rule->purchase_cap_points;
        *capped = true;
    }
    return points;
}

bool referral_rules_purchase_eligible(const Loyalty__V1__ReferralLevelRule *rule,
                                      const referral_referee_t *referee, int64_t now_s) {
    if (rule->purchase_first_n > 0 && referee->purchase_number > rule->purchase_first_n) {
        return false;
    }
    if (rule->purchase_within_days > 0 &&
        now_s >= referee->attached_at_s + (int64_t)rule->purchase_within_days * 86400) {
        return false;
    }
    return true;
}

static void spec_add(referral_reward_spec_t *out, int *n, int level, const char *beneficiary,
                     Loyalty__V1__ReferralRewardRule rule, int64_t points) {
    if (points <= 0) {
        return; /* rewards of 0 points are not recorded */
    }
    assert(*n < REFERRAL_REWARDS_PER_EVENT_MAX);
    out[*n] = (referral_reward_spec_t){
        .level = level, .beneficiary_id = beneficiary, .rule = rule, .points = points};
    (*n)++;
}

/* Adds the purchase reward of one level when its conditions hold. */
static void purchase_add(const Loyalty__V1__ReferralLevelRule *rule,
                         const referral_referee_t *referee, int level, int64_t paid_cents,
                         int64_t now_s, referral_reward_spec_t *out, int *n) {
    if (!referral_rules_purchase_eligible(rule, referee, now_s)) {
        return;
    }
    bool capped = false;
    int64_t points = referral_rules_purchase_points(rule, paid_cents, &capped);
    bool bps = rule->purchase_reward_kind ==
               LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS;
    int before = *n;
    spec_add(out, n, level, referee->ancestors[level - 1],
             bps ? LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_PURCHASE_BPS
                 : LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_PURCHASE_FIXED,
             points);
    if (*n > before) {
        out[*n - 1].capped = capped;
        if (bps) {
            out[*n - 1].base_cents = paid_cents;
            out[*n - 1].rule_bps = rule->purchase_bps;
        }
    }
}

int referral_rules_compute(const Loyalty__V1__ReferralProgram *p, int event,
                           const referral_referee_t *referee, int64_t paid_cents, int64_t now_s,
                           referral_reward_spec_t out[REFERRAL_REWARDS_PER_EVENT_MAX]) {
    int n = 0;
    if (!p->enabled || referee->ancestors[0][0] == '\0') {
        return 0;
    }
    if (event == REFERRAL_EVENT_REGISTRATION) {
        spec_add(out, &n, 0, referee->member_id,
                 LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_WELCOME,
                 p->welcome_points);
    }
    for (int level = 1; level <= REFERRAL_LEVELS_MAX; level++) {
        const Loyalty__V1__ReferralLevelRule *rule = referral_rules_level(p, level);
        if (referee->ancestors[level - 1][0] == '\0') {
            break; /* the top of the tree */
        }
        if (rule == NULL || !rule->enabled) {
            continue; /* a disabled level gives nothing; the levels above it still do */
        }
        if (event == REFERRAL_EVENT_REGISTRATION) {
            spec_add(out, &n, level, referee->ancestors[level - 1],
                     LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_REGISTRATION,
                     rule->registration_points);
        } else {
            purchase_add(rule, referee, level, paid_cents, now_s, out, &n);
        }
    }
    return n;
}

int64_t referral_rules_hold_until(const Loyalty__V1__ReferralProgram *p, bool has_override,
                                  int64_t override_at, int64_t now_s) {
    if (has_override) {
        return override_at > now_s ? override_at : 0;
    }
    if (p->purchase_hold_days > 0) {
        return now_s + (int64_t)p->purchase_hold_days * 86400;
    }
    return 0;
}

/* ---- reversal and release ---- */

int32_t referral_rules_add_share(int32_t prev_bps, int32_t share_bps) {
    int64_t sum = (int64_t)prev_bps + share_bps;
    return sum >= BPS_ONE ? BPS_ONE : (int32_t)sum;
}

int64_t referral_rules_reversed_target(int64_t points, int32_t cumulative_share_bps) {
    if (cumulative_share_bps >= BPS_ONE) {
        return points;
    }
    int64_t target = 0;
    if (cumulative_share_bps <= 0 ||
        !money_share_bps(points, cumulative_share_bps, ROUND_FLOOR, &target)) {
        return 0;
    }
    return target;
}

void referral_rules_reverse(referral_reward_money_t *m, int32_t cumulative_share_bps,
                            int64_t *reversed_delta, int64_t *clawback) {
    *reversed_delta = 0;
    *clawback = 0;
    if (m->state == REFERRAL_STATE_CANCELLED) {
        return;
    }
    int64_t target = referral_rules_reversed_target(m->points, cumulative_share_bps);
    if (target <= m->reversed_points) {
        return; /* shares only grow; nothing new to reverse */
    }
    int64_t delta = target - m->reversed_points;
    m->reversed_points = target;
    *reversed_delta = delta;
    if (m->state == REFERRAL_STATE_GRANTED) {
        /* granted = points - reversed at release, so delta always fits; the min is a guard */
        int64_t room = m->granted_points - m->clawed_back_points;
        int64_t take = delta < room ? delta : room;
        m->clawed_back_points += take;
        *clawback = take;
    } else if (m->state == REFERRAL_STATE_HELD && m->reversed_points == m->points) {
        m->state = REFERRAL_STATE_CANCELLED;
    }
    assert(m->reversed_points <= m->points);
    assert(m->clawed_back_points <= m->granted_points);
}

bool referral_rules_release(referral_reward_money_t *m) {
    assert(m->state == REFERRAL_STATE_HELD);
    m->granted_points = m->points - m->reversed_points;
    m->state = m->granted_points > 0 ? REFERRAL_STATE_GRANTED : REFERRAL_STATE_CANCELLED;
    return m->granted_points > 0;
}

void referral_rules_stats_add(referral_stats_sum_t *s, arena_t *a,
                              const referral_stats_delta_t *change) {
    for (size_t i = 0; i < s->n; i++) {
        referral_stats_delta_t *d = &s->deltas[i];
        if (d->level == change->level && strcmp(d->member_id, change->member_id) == 0) {
            d->members += change->members;
            d->reward_points += change->reward_points;
            d->reversed_points += change->reversed_points;
            return;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        referral_stats_delta_t *grown = arena_alloc(a, cap * sizeof *grown);
        if (s->n > 0) {
            memcpy(grown, s->deltas, s->n * sizeof *grown);
        }
        s->deltas = grown;
        s->cap = cap;
    }
    s->deltas[s->n++] = *change;
}

static int stats_delta_cmp(const void *x, const void *y) {
    const referral_stats_delta_t *a = x, *b = y;
    int c = strcmp(a->member_id, b->member_id);
    return c != 0 ? c : (a->level > b->level) - (a->level < b->level);
}

void referral_rules_stats_sort(referral_stats_sum_t *s) {
    if (s->n > 1) {
        qsort(s->deltas, s->n, sizeof *s->deltas, stats_delta_cmp);
    }
}
