/* points_handlers.h -- what the handler files share: the admin and earning handlers (defined in
 * points_rpc_admin.c, registered in the table of points_rpc.c), field checks, paging, and the
 * earn computation used by both QuoteEarn and Earn. */
#ifndef POINTS_HANDLERS_H
#define POINTS_HANDLERS_H

#include "loyalty/v1/common.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "rpc.h"

#include <stdbool.h>

rpc_handler_t points_rpc_get_settings;
rpc_handler_t points_rpc_update_settings;
rpc_handler_t points_rpc_create_campaign;
rpc_handler_t points_rpc_list_campaigns;
rpc_handler_t points_rpc_end_campaign;
rpc_handler_t points_rpc_quote_earn;
/* points_rpc_expiring.c */
rpc_handler_t points_rpc_list_expiring;

/** member ids and references: tokens of bounded length; "" only when not required. */
status_t points_check_member(const char *field, const char *value);
status_t points_check_reference(const char *field, const char *value, bool required);

/** The page size and decoded cursor of a list request (page may be NULL). */
status_t points_page(rpc_ctx_t *ctx, const Loyalty__V1__PageRequest *page, int32_t *size,
                     char **key, char **id);

/** The merchant's settings (defaults when it has none), through the settings cache; in
 *  ctx->arena. */
status_t points_load_settings(rpc_ctx_t *ctx, Loyalty__V1__PointsSettings **s);

/** What an order earns under the settings on its local date: picks the campaign, applies the
 *  rules; `field` names the order in errors ("order"). ordered_at 0 means now. */
status_t points_compute_order_earn(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                                   const char *field, const Loyalty__V1__PointsOrderAmounts *o,
                                   Loyalty__V1__PointsEarnBreakdown *out);

/** Validates an event kind that Earn or QuoteEarn may use (not CHECK_IN for Earn). */
status_t points_check_event(const char *field, Loyalty__V1__PointsEventKind kind,
                            bool allow_check_in);

#endif
