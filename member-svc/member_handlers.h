/* member_handlers.h -- the MemberService handlers beyond profiles, by concern (member_rpc.c
 * holds the table): settings, tiers, plans and a member's tier (member_rpc_tiers.c); tag rules
 * (member_rpc_tags.c); orders, returns and maintenance (member_rpc_order.c); the points balance
 * (member_rpc_points.c); lists, counts and import (member_rpc_list.c); and helpers they share. */
#ifndef MEMBER_HANDLERS_H
#define MEMBER_HANDLERS_H

#include "consume.h"
#include "member_ops.h"
#include "rpc.h"

#define MEMBER_ORDER_ID_MAX 128
#define MEMBER_REASON_TEXT_MAX 200
#define MEMBER_PLAN_NAME_MAX 100
#define MEMBER_AMOUNT_MAX 1000000000000LL /* 10^12 minor units or growth per order */
#define MEMBER_PRICE_MAX 1000000000000LL
#define MEMBER_QUANTITY_MAX 36
#define MEMBER_AT_MIN 946684800 /* 2000-01-01 */
#define MEMBER_CLOCK_SKEW_S 300
#define MEMBER_MAINTENANCE_LIMIT_DEFAULT 500
#define MEMBER_MAINTENANCE_LIMIT_MAX 1000
#define MEMBER_IMPORT_ITEMS_MAX 500

rpc_handler_t member_rpc_get_settings;
rpc_handler_t member_rpc_update_settings;
rpc_handler_t member_rpc_set_tag_rules;
rpc_handler_t member_rpc_list_tag_rules;
rpc_handler_t member_rpc_create_tier;
rpc_handler_t member_rpc_update_tier;
rpc_handler_t member_rpc_list_tiers;
rpc_handler_t member_rpc_create_plan;
rpc_handler_t member_rpc_update_plan;
rpc_handler_t member_rpc_list_plans;
rpc_handler_t member_rpc_get_tier;
rpc_handler_t member_rpc_get_stats;
rpc_handler_t member_rpc_list_history;
rpc_handler_t member_rpc_list_changes;
rpc_handler_t member_rpc_assign_tier;
rpc_handler_t member_rpc_purchase;
rpc_handler_t member_rpc_record_order;
rpc_handler_t member_rpc_record_return;
rpc_handler_t member_rpc_record_points_balance;
rpc_handler_t member_rpc_run_maintenance;
rpc_handler_t member_rpc_list_members;
rpc_handler_t member_rpc_count_members;
rpc_handler_t member_rpc_import_members;

/** The consumer of points-svc's balance events (member_points_events.c): the event's balance,
 *  when newer than the member's, with its automatic tags recomputed. */
status_t member_on_points_event(rpc_ctx_t *ctx, const consume_event_t *ev);
/* The events of one read at once: every balance in one statement, when no rule looks at it. */
status_t member_on_points_events(rpc_ctx_t *ctx, const consume_event_t *evs, int n, bool *taken);

/** The timer's tier maintenance, segment re-evaluation and RFM refresh for every merchant. */
status_t member_job_maintenance(rpc_ctx_t *ctx);

/** Drops the cached tier status of every member the scope changed (after commit). */
void member_rpc_invalidate_touched(rpc_ctx_t *ctx, const member_scope_t *s);

/** Sets up a new member's tier state, statistics, segment and counters (CreateMember,
 *  ImportMembers), in the transaction that inserted the profile. */
status_t member_rpc_init_state(rpc_ctx_t *ctx, const char *member_id);

/** The merchant's tiers for reading: from the cache, or the database (then cached). */
status_t member_rpc_tiers(rpc_ctx_t *ctx, member_tierset_t *ts,
                          Loyalty__V1__MemberTierBasis *basis);

#endif
