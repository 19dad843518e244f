/* member_rpc_list.c -- ListMembers (filters, keyset cursor), CountMembers (counters) and
 * ImportMembers (validated batches, idempotent per batch id). */
#include "member_handlers.h"
#include "member_rules.h"
#include "member_store_list.h"
#include "member_view.h"

#include "cursor.h"
#include "ids.h"
#include "pb.h"
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ListMembers ---- */

static status_t range_check(const char *from_field, int64_t from, const char *to_field,
                            int64_t to) {
    if (from < 0) {
        return status_invalid_field(from_field, "must not be negative");
    }
    if (to < 0) {
        return status_invalid_field(to_field, "must not be negative");
    }
    if (from && to && to <= from) {
        return status_invalid_field(to_field, "must be after %s", from_field);
    }
    return status_ok();
}

static status_t filter_check(arena_t *a, const Loyalty__V1__MemberListFilter *f,
                             member_list_query_t *q) {
    if (f == NULL) {
        return status_ok();
    }
    status_t st = status_ok();
    if (f->_tier_id_case == LOYALTY__V1__MEMBER_LIST_FILTER___TIER_ID_TIER_ID) {
        q->tier_id = f->tier_id;
        if (f->tier_id[0] != '\0') {
            st = validate_token("filter.tier_id", f->tier_id, ID_MAX);
        }
    }
    if (status_is_ok(&st) && (f->card_kind < 0 || f->card_kind > MEMBER_CARD(INTERNAL))) {
        st = status_invalid_field("filter.card_kind", "unknown value %d", (int)f->card_kind);
    }
    if (status_is_ok(&st) && (f->segment < 0 || f->segment > MEMBER_SEGMENT(NO_PURCHASE))) {
        st = status_invalid_field("filter.segment", "unknown value %d", (int)f->segment);
    }
    if (status_is_ok(&st) && f->tag[0] != '\0') {
        st = validate_token("filter.tag", f->tag, MEMBER_TAG_MAX);
        char *tag = arena_strdup(a, f->tag);
        for (char *p = tag; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        q->tag = tag;
    }
    if (status_is_ok(&st) && (f->birthday_month < 0 || f->birthday_month > 12)) {
        st = status_invalid_field("filter.birthday_month", "must be 1..12 (0 = any)");
    }
    if (status_is_ok(&st) &&
        (f->birthday_day < 0 || f->birthday_day > 31 || (f->birthday_day && !f->birthday_month))) {
        st = status_invalid_field("filter.birthday_day", "must be 1..31 with a month (0 = any)");
    }
    if (status_is_ok(&st)) {
        st = range_check("filter.registered_from_at", f->registered_from_at,
                         "filter.registered_to_at", f->registered_to_at);
    }
    if (status_is_ok(&st)) {
        st = range_check("filter.last_order_from_at", f->last_order_from_at,
                         "filter.last_order_to_at", f->last_order_to_at);
    }
    q->card_kind = f->card_kind;
    q->segment = f->segment;
    q->birth_month = f->birthday_month;
    q->birth_day = f->birthday_day;
    q->registered_from = f->registered_from_at;
    q->registered_to = f->registered_to_at;
    q->last_order_from = f->last_order_from_at;
    q->last_order_to = f->last_order_to_at;
    return st;
}

/* The cursor key: "a:<us>" or "d:<us>" (the order is part of it, so that a cursor of one
 * order cannot continue a list in the other). */
static status_t cursor_check(arena_t *a, const Loyalty__V1__PageRequest *page,
                             member_list_query_t *q) {
    char *key = "", *id = "";
    status_t st = cursor_decode(a, "page.cursor", page ? page->cursor : "", &key, &id);
    if (!status_is_ok(&st) || key[0] == '\0') {
        return st;
    }
    char *end = NULL;
    char want = q->newest_first ? 'd' : 'a';
    long long us = strlen(key) > 2 ? strtoll(key + 2, &end, 10) : 0;
    if (key[0] != want || key[1] != ':' || end == NULL || *end != '\0' || id[0] == '\0') {
        return status_invalid_field("page.cursor", "not a cursor of this list order");
    }
    q->after_created_us = us;
    q->after_id = id;
    return status_ok();
}

status_t member_rpc_list_members(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberListRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberListResponse *resp = (void *)resp_msg;
    member_list_query_t q = {.newest_first = req->newest_first};
    status_t st = filter_check(ctx->arena, req->filter, &q);
    if (status_is_ok(&st)) {
        st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0, PAGE_SIZE_MAX,
                              &q.limit);
    }
    if (status_is_ok(&st)) {
        st = cursor_check(ctx->arena, req->page, &q);
    }
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    if (status_is_ok(&st)) {
        st = member_rpc_tiers(ctx, &ts, &basis);
    }
    member_settings_t settings;
    if (status_is_ok(&st)) {
        st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, &settings, NULL, NULL);
    }
    member_list_page_t page;
    if (status_is_ok(&st)) {
        st = member_list(ctx->db, ctx->arena, ctx->merchant_id, &q, &page);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->members = arena_alloc(ctx->arena, (size_t)(page.n ? page.n : 1) * sizeof *resp->members);
    for (int i = 0; i < page.n; i++) {
        Loyalty__V1__MemberListItem *it =
            pb_new(ctx->arena, &loyalty__v1__member_list_item__descriptor);
        it->member = page.members[i];
        it->tier = member_view_ref(ctx->arena, &ts, page.rows[i].effective_tier_id);
        it->card_kind = page.rows[i].effective_kind;
        it->stats = member_view_stats(ctx->arena, &settings, &page.rows[i]);
        resp->members[i] = it;
    }
    resp->n_members = (size_t)page.n;
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    resp->page_info->next_cursor = "";
    if (page.n == q.limit) {
        char *key = arena_printf(ctx->arena, "%c:%lld", q.newest_first ? 'd' : 'a',
                                 (long long)page.created_us[page.n - 1]);
        resp->page_info->next_cursor = cursor_encode(ctx->arena, key, page.members[page.n - 1]->id);
    }
    return status_ok();
}

/* ---- CountMembers ---- */

static int64_t count_of(const member_count_row_t *rows, int n, int dim, const char *key) {
    for (int i = 0; i < n; i++) {
        if (rows[i].dim == dim && strcmp(rows[i].key, key) == 0) {
            return rows[i].n;
        }
    }
    return 0;
}

status_t member_rpc_count_members(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__MemberCountResponse *resp = (void *)resp_msg;
    arena_t *a = ctx->arena;
    member_tierset_t ts;
    Loyalty__V1__MemberTierBasis basis;
    status_t st = member_rpc_tiers(ctx, &ts, &basis);
    member_count_row_t *rows = NULL;
    int n = 0;
    if (status_is_ok(&st)) {
        st = member_counts_read(ctx->db, a, ctx->merchant_id, &rows, &n);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->total = count_of(rows, n, MEMBER_DIM_TOTAL, "");
    int segments = MEMBER_SEGMENT(NO_PURCHASE);
    resp->by_segment = arena_alloc(a, (size_t)segments * sizeof *resp->by_segment);
    for (int s = 1; s <= segments; s++) {
        Loyalty__V1__MemberSegmentCount *c =
            pb_new(a, &loyalty__v1__member_segment_count__descriptor);
        c->segment = (Loyalty__V1__MemberSegment)s;
        c->count = count_of(rows, n, MEMBER_DIM_SEGMENT, arena_printf(a, "%d", s));
        resp->by_segment[resp->n_by_segment++] = c;
    }
    resp->by_tier = arena_alloc(a, (size_t)(ts.n + 1) * sizeof *resp->by_tier);
    for (int level = 0; level <= ts.n; level++) {
        Loyalty__V1__MemberTierCount *c = pb_new(a, &loyalty__v1__member_tier_count__descriptor);
        const char *id = member_tierset_id(&ts, level);
        c->tier = member_view_ref(a, &ts, id);
        c->count = count_of(rows, n, MEMBER_DIM_TIER, id);
        resp->by_tier[resp->n_by_tier++] = c;
    }
    resp->by_card_kind = arena_alloc(a, 4 * sizeof *resp->by_card_kind);
    for (int k = MEMBER_CARD(FREE); k <= MEMBER_CARD(INTERNAL); k++) {
        Loyalty__V1__MemberCardKindCount *c =
            pb_new(a, &loyalty__v1__member_card_kind_count__descriptor);
        c->card_kind = (Loyalty__V1__MemberCardKind)k;
        c->count = count_of(rows, n, MEMBER_DIM_KIND, arena_printf(a, "%d", k));
        resp->by_card_kind[resp->n_by_card_kind++] = c;
    }
    return status_ok();
}

/* ---- ImportMembers ---- */

/* One item, validated and normalised. */
typedef struct import_item {
    const Loyalty__V1__MemberImportItem *in;
    Loyalty__V1__MemberProfile profile;
    int64_t registered_at;
    int level;
    int64_t tier_end; /* exclusive day; MEMBER_DAY_NONE = one full period from today */
    Loyalty__V1__MemberCardKind card_kind;
    int card_level;
    int64_t card_from, card_to;
} import_item_t;

/* Rewrites an item's error so that it names the item: "items[3].profile.phone: ...". */
static status_t item_error(size_t i, status_t st) {
    status_t out = st;
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "items[%zu].", i);
    size_t keep = sizeof out.message - (size_t)n - 1; /* the tail of a long message is cut */
    memcpy(out.message, prefix, (size_t)n);
    memcpy(out.message + n, st.message, keep);
    out.message[sizeof out.message - 1] = '\0';
    return out;
}

static status_t parse_date_day(const char *field, const char *value, int64_t *day) {
    int y, m, d;
    status_t st = validate_date(field, value, &y, &m, &d);
    if (status_is_ok(&st)) {
        *day = date_days_from_civil(y, m, d);
    }
    return st;
}

static status_t item_stats_check(const Loyalty__V1__MemberStats *s) {
    if (s == NULL) {
        return status_ok();
    }
    const int64_t max = MEMBER_THRESHOLD_MAX;
    if (s->order_count < 0 || s->order_count > max) {
        return status_invalid_field("stats.order_count", "must be 0..10^15");
    }
    if (s->total_spend_cents < 0 || s->total_spend_cents > max) {
        return status_invalid_field("stats.total_spend_cents", "must be 0..10^15");
    }
    if (s->total_growth < 0 || s->total_growth > max) {
        return status_invalid_field("stats.total_growth", "must be 0..10^15");
    }
    if (s->first_order_at < 0 || s->last_order_at < s->first_order_at ||
        (s->first_order_at == 0) != (s->last_order_at == 0)) {
        return status_invalid_field("stats.first_order_at", "must be set with last_order_at "
                                                            "and not after it");
    }
    if ((s->order_count > 0) != (s->last_order_at > 0)) {
        return status_invalid_field("stats.order_count", "orders need a last_order_at and "
                                                         "the other way round");
    }
    if (s->months_with_purchases < 0 || s->months_with_purchases > s->order_count ||
        (s->order_count > 0 && s->months_with_purchases == 0)) {
        return status_invalid_field("stats.months_with_purchases", "must be 1..order_count "
                                                                   "when there are orders");
    }
    return status_ok();
}

static status_t item_card_check(const member_scope_t *s, const Loyalty__V1__MemberCard *c,
                                import_item_t *it) {
    it->card_kind = MEMBER_CARD(UNSPECIFIED);
    if (c == NULL) {
        return status_ok();
    }
    if (c->kind != MEMBER_CARD(PAID) && c->kind != MEMBER_CARD(INTERNAL)) {
        return status_invalid_field("card.kind", "PAID or INTERNAL");
    }
    it->card_level = member_tierset_level(&s->tiers, c->tier ? c->tier->id : "");
    if (it->card_level == 0) {
        return status_invalid_field("card.tier.id", "not a tier of this merchant");
    }
    status_t st = parse_date_day("card.valid_from", c->valid_from, &it->card_from);
    it->card_to = MEMBER_DAY_NONE;
    if (status_is_ok(&st) && (c->valid_to[0] != '\0' || c->kind == MEMBER_CARD(PAID))) {
        st = parse_date_day("card.valid_to", c->valid_to, &it->card_to);
    }
    if (status_is_ok(&st) && it->card_to < it->card_from) {
        st = status_invalid_field("card.valid_to", "before valid_from");
    }
    if (status_is_ok(&st) && c->kind == MEMBER_CARD(PAID)) {
        st = validate_token("card.plan_id", c->plan_id, ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_text("card.reason", c->reason, 0, MEMBER_REASON_TEXT_MAX);
    }
    it->card_kind = c->kind;
    return st;
}

static status_t item_tier_check(const member_scope_t *s, const Loyalty__V1__MemberImportItem *in,
                                import_item_t *it) {
    it->level = 0;
    it->tier_end = MEMBER_DAY_NONE;
    if (in->period_value < 0 || in->period_value > MEMBER_THRESHOLD_MAX) {
        return status_invalid_field("period_value", "must be 0..10^15");
    }
    if (in->tier_id[0] == '\0') {
        return in->tier_valid_to[0] == '\0'
                   ? status_ok()
                   : status_invalid_field("tier_valid_to", "needs a tier_id");
    }
    it->level = member_tierset_level(&s->tiers, in->tier_id);
    if (it->level == 0) {
        return status_invalid_field("tier_id", "not a tier of this merchant");
    }
    if (in->tier_valid_to[0] == '\0') {
        return status_ok();
    }
    int64_t last = 0;
    status_t st = parse_date_day("tier_valid_to", in->tier_valid_to, &last);
    it->tier_end = last + 1;
    return st;
}

static status_t item_check(rpc_ctx_t *ctx, const member_scope_t *s,
                           const Loyalty__V1__MemberImportItem *in, import_item_t *it) {
    it->in = in;
    status_t st = validate_token("external_id", in->external_id, MEMBER_EXTERNAL_ID_MAX);
    Loyalty__V1__MemberProfile empty = LOYALTY__V1__MEMBER_PROFILE__INIT;
    it->profile = empty;
    if (status_is_ok(&st)) {
        st = member_rules_normalize_profile(ctx->arena, in->profile, MEMBER_FIELD_ALL,
                                            ctx->now_s / 86400 + 1, &it->profile);
    }
    it->registered_at = in->registered_at ? in->registered_at : ctx->now_s;
    if (status_is_ok(&st) && (in->registered_at < 0 || it->registered_at > ctx->now_s + 300)) {
        st = status_invalid_field("registered_at", "must not be in the future");
    }
    if (status_is_ok(&st)) {
        st = item_tier_check(s, in, it);
    }
    if (status_is_ok(&st)) {
        st = item_stats_check(in->stats);
    }
    if (status_is_ok(&st)) {
        st = item_card_check(s, in->card, it);
    }
    return st;
}

static status_t import_validate(rpc_ctx_t *ctx, const member_scope_t *s,
                                const Loyalty__V1__MemberImportRequest *req, import_item_t *items) {
    for (size_t i = 0; i < req->n_items; i++) {
        status_t st = item_check(ctx, s, req->items[i], &items[i]);
        if (!status_is_ok(&st)) {
            return item_error(i, st);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(req->items[k]->external_id, req->items[i]->external_id) == 0) {
                return item_error(i, status_invalid_field("external_id", "repeats items[%zu]", k));
            }
        }
    }
    return status_ok();
}

/* The imported member's tier state, card and statistics, written like any change. */
static status_t import_state(rpc_ctx_t *ctx, member_scope_t *s, const import_item_t *it,
                             const char *id) {
    member_row_t row;
    status_t st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, id, true, &row);
    if (!status_is_ok(&st)) {
        return st;
    }
    int32_t months = it->level ? s->tiers.ladder.tiers[it->level - 1].period_months : 0;
    member_tier_state_t t = {
        .level = it->level,
        .base_level = it->level,
        .value = it->in->period_value,
        .period_start = s->today,
        .period_end = it->level == 0                    ? MEMBER_DAY_NONE
                      : it->tier_end != MEMBER_DAY_NONE ? it->tier_end
                                                        : member_day_add_months(s->today, months),
    };
    member_row_set_tier(s, &row, &t);
    const Loyalty__V1__MemberStats *stats = it->in->stats;
    if (stats != NULL) {
        row.order_count = stats->order_count;
        row.total_spend_cents = stats->total_spend_cents;
        row.total_growth = stats->total_growth;
        row.first_order_at = stats->first_order_at;
        row.last_order_at = stats->last_order_at;
        row.months_with_purchases = stats->months_with_purchases;
    }
    if (it->card_kind != MEMBER_CARD(UNSPECIFIED)) {
        row.card_kind = it->card_kind;
        row.card_tier_id = (char *)member_tierset_id(&s->tiers, it->card_level);
        row.card_plan_id = it->card_kind == MEMBER_CARD(PAID) ? it->in->card->plan_id : "";
        row.card_valid_from = it->card_from;
        row.card_valid_to = it->card_to;
        row.card_reason = it->in->card->reason;
    }
    member_change_t ch = {.card_reason = MEMBER_REASON(IMPORT), .note = "imported"};
    return member_ops_save(ctx->db, ctx->arena, s, NULL, &row, &ch);
}

static status_t import_one(rpc_ctx_t *ctx, member_scope_t *s, const import_item_t *it, size_t i,
                           Loyalty__V1__MemberImportResponse *resp) {
    Loyalty__V1__MemberImportResult *res =
        pb_new(ctx->arena, &loyalty__v1__member_import_result__descriptor);
    res->index = (int32_t)i;
    res->external_id = it->in->external_id;
    char id[ID_MAX];
    id_generate("mbr", id);
    bool inserted = false;
    char *existing = "";
    const char *reason = "";
    status_t st =
        member_import_insert(ctx->db, ctx->arena, ctx->merchant_id, id, it->in->external_id,
                             &it->profile, it->registered_at, &inserted, &existing, &reason);
    if (status_is_ok(&st) && inserted) {
        st = import_state(ctx, s, it, id);
        res->member_id = arena_strdup(ctx->arena, id);
        res->outcome = LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_CREATED;
        resp->created++;
    } else if (status_is_ok(&st)) {
        res->member_id = existing;
        res->reason = (char *)reason;
        res->outcome =
            existing[0] ? LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_ALREADY_EXISTS
                        : LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_CONFLICT;
        resp->skipped++;
    }
    resp->results[resp->n_results++] = res;
    return st;
}

status_t member_rpc_import_members(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberImportRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberImportResponse *resp = (void *)resp_msg;
    status_t st = validate_token("batch_id", req->batch_id, MEMBER_ORDER_ID_MAX);
    if (status_is_ok(&st) && (req->n_items == 0 || req->n_items > MEMBER_IMPORT_ITEMS_MAX)) {
        st = status_invalid_field("items", "1..%d members per batch", MEMBER_IMPORT_ITEMS_MAX);
    }
    if (status_is_ok(&st)) {
        st = member_settings_ensure(ctx->db, ctx->merchant_id);
    }
    member_scope_t s;
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    s.ctx = NULL; /* a migration: no tier.changed events for the tiers members arrive with */
    import_item_t *items = arena_alloc(ctx->arena, (req->n_items + 1) * sizeof *items);
    if (status_is_ok(&st)) {
        st = import_validate(ctx, &s, req, items);
    }
    /* The batch is identified by its items (not by the call's idempotency key). */
    Loyalty__V1__MemberImportRequest key_req = *req;
    key_req.merchant_id = "";
    key_req.idempotency_key = "";
    size_t key_len = 0;
    unsigned char *key_bytes = pb_pack_arena(ctx->arena, &key_req.base, &key_len);
    unsigned char *replay = NULL;
    size_t replay_len = 0;
    if (status_is_ok(&st)) {
        st = member_import_claim(ctx->db, ctx->arena, ctx->merchant_id, req->batch_id, key_bytes,
                                 key_len, &replay, &replay_len);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (replay != NULL) {
        Loyalty__V1__MemberImportResponse *prev = (void *)pb_unpack_arena(
            ctx->arena, &loyalty__v1__member_import_response__descriptor, replay, replay_len);
        if (prev == NULL) {
            return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR,
                               "cannot decode a stored batch");
        }
        *resp = *prev;
        return status_ok();
    }
    resp->results = arena_alloc(ctx->arena, req->n_items * sizeof *resp->results);
    for (size_t i = 0; i < req->n_items && status_is_ok(&st); i++) {
        st = import_one(ctx, &s, &items[i], i, resp);
    }
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (status_is_ok(&st)) {
        size_t len = 0;
        unsigned char *bytes = pb_pack_arena(ctx->arena, &resp->base, &len);
        st = member_import_store(ctx->db, ctx->merchant_id, req->batch_id, bytes, len);
    }
    return st;
}
