/* member_ops.c -- the common end of every change of a member's tier, card or statistics. */
#include "member_ops.h"

#include "jsonw.h"
#include "outbox.h"

#include <string.h>

void member_scope_init(rpc_ctx_t *ctx, arena_t *a, const char *merchant_id, int64_t now,
                       member_scope_t *s) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->merchant_id = merchant_id;
    s->now = now;
    s->counts = arena_alloc(a, sizeof *s->counts);
}

status_t member_scope_load(rpc_ctx_t *ctx, db_t *db, arena_t *a, const char *merchant_id,
                           int64_t now, int64_t at, member_scope_t *s, int64_t *at_day) {
    member_scope_init(ctx, a, merchant_id, now, s);
    status_t st =
        member_settings_load(db, merchant_id, now, at ? at : now, &s->settings, &s->today, at_day);
    if (!status_is_ok(&st)) {
        return st;
    }
    return member_tiers_load(db, a, merchant_id, false, &s->tiers);
}

member_tier_state_t member_row_tier(const member_scope_t *s, const member_row_t *r) {
    member_tier_state_t t = {
        .level = member_tierset_level(&s->tiers, r->tier_id),
        .base_level = member_tierset_level(&s->tiers, r->base_tier_id),
        .express_level = member_tierset_level(&s->tiers, r->express_tier_id),
        .value = r->period_value,
        .period_seq = r->period_seq,
        .period_start = r->period_start,
        .period_end = r->period_end,
    };
    if (t.level == 0) {
        t.period_end = MEMBER_DAY_NONE; /* e.g. a tier id no longer known */
    }
    return t;
}

void member_row_set_tier(const member_scope_t *s, member_row_t *r, const member_tier_state_t *t) {
    r->tier_id = (char *)member_tierset_id(&s->tiers, t->level);
    r->base_tier_id = (char *)member_tierset_id(&s->tiers, t->base_level);
    r->express_tier_id = (char *)member_tierset_id(&s->tiers, t->express_level);
    r->period_value = t->value;
    r->period_seq = t->period_seq;
    r->period_start = t->period_start;
    r->period_end = t->period_end;
}

member_card_t member_row_card(const member_scope_t *s, const member_row_t *r) {
    if (r->card_kind == MEMBER_CARD(UNSPECIFIED)) {
        return (member_card_t){0};
    }
    return (member_card_t){
        .kind = r->card_kind,
        .level = member_tierset_level(&s->tiers, r->card_tier_id),
        .valid_from = r->card_valid_from,
        .valid_to = r->card_valid_to,
    };
}

static const char *tier_name(const member_scope_t *s, int level) {
    return level > 0 ? s->tiers.defs[level - 1].name : "no tier";
}

const char *member_event_note(arena_t *a, const member_scope_t *s, const member_tier_event_t *ev) {
    const member_ladder_t *l = &s->tiers.ladder;
    switch (ev->reason) {
    case MEMBER_REASON(UPGRADE):
        return arena_printf(a, "value %lld reached %s (%lld)", (long long)ev->value_after,
                            tier_name(s, ev->to_level),
                            ev->to_level ? (long long)l->tiers[ev->to_level - 1].upgrade_threshold
                                         : 0LL);
    case MEMBER_REASON(EXPRESS):
        return arena_printf(a, "one order reached the express amount of %s (%lld)",
                            tier_name(s, ev->to_level),
                            (long long)l->tiers[ev->to_level - 1].express_spend_cents);
    case MEMBER_REASON(RENEWAL):
        return arena_printf(
            a, "renewed: value %lld >= retain %lld; carried over %lld", (long long)ev->value_before,
            (long long)l->tiers[ev->from_level - 1].retain_threshold, (long long)ev->value_after);
    case MEMBER_REASON(DOWNGRADE):
        return arena_printf(a, "value %lld < retain %lld: down to %s; carried over %lld",
                            (long long)ev->value_before,
                            (long long)l->tiers[ev->from_level - 1].retain_threshold,
                            tier_name(s, ev->to_level), (long long)ev->value_after);
    case MEMBER_REASON(RETURN):
        return arena_printf(a, "a return took the value from %lld to %lld: back to %s",
                            (long long)ev->value_before, (long long)ev->value_after,
                            tier_name(s, ev->to_level));
    default:
        return "";
    }
}

static void touch(arena_t *a, member_scope_t *s, const char *member_id) {
    if (s->touched_count == s->touched_cap) {
        int cap = s->touched_cap ? s->touched_cap * 2 : 16;
        const char **grown = arena_alloc(a, (size_t)cap * sizeof *grown);
        if (s->touched_count) {
            memcpy(grown, s->touched, (size_t)s->touched_count * sizeof *grown);
        }
        s->touched = grown;
        s->touched_cap = cap;
    }
    s->touched[s->touched_count++] = member_id;
}

static const char *num_key(arena_t *a, int v) {
    return arena_printf(a, "%d", v);
}

/* Counter deltas between the old and the new row (old NULL: a new member). */
static void count_change(arena_t *a, member_scope_t *s, const member_row_t *old,
                         const member_row_t *row) {
    int shard = member_count_shard(row->id);
    member_counts_t *c = s->counts;
    if (old == NULL) {
        member_counts_add(c, MEMBER_DIM_TOTAL, "", shard, 1);
    }
    if (old == NULL || old->segment != row->segment) {
        if (old) {
            member_counts_add(c, MEMBER_DIM_SEGMENT, num_key(a, old->segment), shard, -1);
        }
        member_counts_add(c, MEMBER_DIM_SEGMENT, num_key(a, row->segment), shard, 1);
    }
    if (old == NULL || strcmp(old->effective_tier_id, row->effective_tier_id) != 0) {
        if (old) {
            member_counts_add(c, MEMBER_DIM_TIER, old->effective_tier_id, shard, -1);
        }
        member_counts_add(c, MEMBER_DIM_TIER, row->effective_tier_id, shard, 1);
    }
    if (old == NULL || old->effective_kind != row->effective_kind) {
        if (old) {
            member_counts_add(c, MEMBER_DIM_KIND, num_key(a, old->effective_kind), shard, -1);
        }
        member_counts_add(c, MEMBER_DIM_KIND, num_key(a, row->effective_kind), shard, 1);
    }
}

/* The enum value's name without its prefix ("UPGRADE" for MEMBER_TIER_CHANGE_REASON_UPGRADE). */
static const char *enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v == NULL) {
        return "UNSPECIFIED";
    }
    size_t n = strlen(prefix);
    return strncmp(v->name, prefix, n) == 0 ? v->name + n : v->name;
}

static int32_t rank_of(const member_scope_t *s, const char *tier_id) {
    int level = member_tierset_level(&s->tiers, tier_id);
    return level > 0 ? s->tiers.defs[level - 1].rank : 0;
}

/* A tier.changed event for a history row whose tier (the one the member gets) changed. */
static status_t emit_changed(member_scope_t *s, const member_history_t *h) {
    if (s->ctx == NULL || strcmp(h->from_tier_id, h->to_tier_id) == 0) {
        return status_ok();
    }
    char json[1024];
    jsonw_t w;
    jsonw_begin(&w, json, sizeof json);
    jsonw_str(&w, "member_id", h->member_id);
    jsonw_str(&w, "from_tier_id", h->from_tier_id);
    jsonw_int(&w, "from_rank", rank_of(s, h->from_tier_id));
    jsonw_str(&w, "to_tier_id", h->to_tier_id);
    jsonw_int(&w, "to_rank", rank_of(s, h->to_tier_id));
    jsonw_str(&w, "earned_tier_id", h->earned_tier_id);
    jsonw_str(&w, "reason",
              enum_name(&loyalty__v1__member_tier_change_reason__descriptor, h->reason,
                        "MEMBER_TIER_CHANGE_REASON_"));
    jsonw_str(
        &w, "card_kind",
        enum_name(&loyalty__v1__member_card_kind__descriptor, h->card_kind, "MEMBER_CARD_KIND_"));
    jsonw_str(&w, "order_id", h->order_id ? h->order_id : "");
    jsonw_end(&w);
    return outbox_emit(s->ctx, s->merchant_id, OUTBOX_EVENTS_STREAM, "tier.changed", h->member_id,
                       json, NULL);
}

/* One history row and its event. */
static status_t record_change(db_t *db, member_scope_t *s, const member_history_t *h) {
    status_t st = member_history_insert(db, s->merchant_id, h);
    if (status_is_ok(&st)) {
        st = emit_changed(s, h);
    }
    return st;
}

/* History rows: one per engine event (the tier the member gets before and after it, with the
 * card as it stands), then the card event. */
static status_t write_history(db_t *db, arena_t *a, member_scope_t *s, const char *old_effective,
                              const member_row_t *row, const member_change_t *ch) {
    member_card_t card = member_row_card(s, row);
    for (int i = 0; i < ch->event_count; i++) {
        const member_tier_event_t *ev = &ch->events[i];
        member_effective_t from = member_tier_effective(ev->from_level, &card, ev->day);
        member_effective_t to = member_tier_effective(ev->to_level, &card, ev->day);
        member_history_t h = {
            .member_id = row->id,
            .from_tier_id = member_tierset_id(&s->tiers, from.level),
            .to_tier_id = member_tierset_id(&s->tiers, to.level),
            .earned_tier_id = member_tierset_id(&s->tiers, ev->to_level),
            .reason = ev->reason,
            .card_kind = to.kind,
            .note = member_event_note(a, s, ev),
            .order_id = ch->order_id,
            .period_value = ev->value_after,
        };
        status_t st = record_change(db, s, &h);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (ch->card_reason == MEMBER_REASON(UNSPECIFIED)) {
        return status_ok();
    }
    member_history_t h = {
        .member_id = row->id,
        .from_tier_id = old_effective,
        .to_tier_id = row->effective_tier_id,
        .earned_tier_id = row->tier_id,
        .reason = ch->card_reason,
        .card_kind = row->effective_kind,
        .note = ch->note,
        .order_id = ch->order_id,
        .period_value = row->period_value,
    };
    return record_change(db, s, &h);
}

/* The automatic tags the merchant's rules give the row's figures now: every change of a member
 * passes here, so the tags move in the transaction that moves the figures (orders, returns,
 * points balance) and the re-evaluation walk re-tags everyone after the rules change. */
static void set_auto_tags(arena_t *a, const member_scope_t *s, member_row_t *row) {
    member_tag_figures_t f = {
        .orders_count = row->order_count,
        .total_spend_cents = row->total_spend_cents,
        .points_balance = row->points_balance,
    };
    const char *tags[MEMBER_TAG_RULES_MAX];
    size_t n = member_tags_compute(&s->settings.tag_rules, &f, tags, MEMBER_TAG_RULES_MAX);
    row->auto_tags = arena_alloc(a, (n ? n : 1) * sizeof *row->auto_tags);
    for (size_t i = 0; i < n; i++) {
        row->auto_tags[i] = arena_strdup(a, tags[i]);
    }
    row->n_auto_tags = n;
}

status_t member_ops_save(db_t *db, arena_t *a, member_scope_t *s, const member_row_t *old,
                         member_row_t *row, const member_change_t *ch) {
    member_card_t card = member_row_card(s, row);
    int earned = member_tierset_level(&s->tiers, row->tier_id);
    member_effective_t eff = member_tier_effective(earned, &card, s->today);
    const char *old_effective = old ? old->effective_tier_id : "";
    row->effective_tier_id = (char *)member_tierset_id(&s->tiers, eff.level);
    row->effective_kind = eff.kind;

    member_activity_t act = {
        .registered_at = row->created_at,
        .order_count = row->order_count,
        .last_order_at = row->last_order_at,
        .months_with_purchases = row->months_with_purchases,
    };
    /* Never evaluated before the member existed (the row's clock is PostgreSQL's). */
    int64_t now = s->now > row->created_at ? s->now : row->created_at;
    Loyalty__V1__MemberSegment seg =
        member_segment_compute(&s->settings.lifecycle, &act, now, &row->segment_due_at);
    if (old == NULL || seg != old->segment) {
        row->segment_since = now;
    }
    row->segment = seg;

    /* The next tier event: the period end, or the day after the card's last valid day. */
    int64_t due = earned > 0 ? row->period_end : MEMBER_DAY_NONE;
    if (card.kind != MEMBER_CARD(UNSPECIFIED) && card.valid_to != MEMBER_DAY_NONE &&
        card.valid_to + 1 < due) {
        due = card.valid_to + 1;
    }
    set_auto_tags(a, s, row);
    status_t st = write_history(db, a, s, old_effective, row, ch);
    if (status_is_ok(&st)) {
        st = member_row_save(db, a, s->merchant_id, s->settings.time_zone, row, due);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    count_change(a, s, old, row);
    touch(a, s, row->id);
    return status_ok();
}

status_t member_scope_finish(db_t *db, member_scope_t *s) {
    return member_counts_flush(db, s->merchant_id, s->counts);
}

status_t member_maintain_row(db_t *db, arena_t *a, member_scope_t *s, member_row_t *row,
                             member_maintenance_counts_t *counts) {
    member_row_t old = *row;
    member_tier_state_t t = member_row_tier(s, row);
    member_tier_event_t *ev = arena_alloc(a, MEMBER_CATCHUP_PERIODS_MAX * sizeof *ev);
    int n =
        member_tier_on_period_end(&s->tiers.ladder, &t, s->today, ev, MEMBER_CATCHUP_PERIODS_MAX);
    member_row_set_tier(s, row, &t);
    for (int i = 0; i < n; i++) {
        counts->renewed += ev[i].reason == MEMBER_REASON(RENEWAL);
        counts->downgraded += ev[i].reason == MEMBER_REASON(DOWNGRADE);
    }
    member_change_t ch = {.events = ev, .event_count = n};
    member_card_t card = member_row_card(s, row);
    if (member_card_expired(&card, s->today)) {
        ch.card_reason = MEMBER_REASON(EXPIRED);
        ch.note = arena_printf(a, "%s card ended",
                               row->card_kind == MEMBER_CARD(PAID) ? "paid" : "internal");
        row->card_kind = MEMBER_CARD(UNSPECIFIED);
        row->card_tier_id = "";
        row->card_plan_id = "";
        row->card_reason = "";
        counts->cards_expired++;
    }
    status_t st = member_ops_save(db, a, s, &old, row, &ch);
    if (status_is_ok(&st)) {
        counts->processed++;
        counts->segments_changed += row->segment != old.segment;
    }
    return st;
}
