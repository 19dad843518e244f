/* promo_handlers.h -- the PromoService handlers, one function per RPC, gathered into the
 * handler table by promo_rpc.c; and the background jobs main.c registers. */
#ifndef PROMO_HANDLERS_H
#define PROMO_HANDLERS_H

#include "loyalty/v1/common.pb-c.h"
#include "rpc.h"

#include <stdbool.h>

/* promo_rpc_checkout.c */
rpc_handler_t promo_rpc_quote;
rpc_handler_t promo_rpc_reserve;
rpc_handler_t promo_rpc_confirm;
rpc_handler_t promo_rpc_release;
rpc_handler_t promo_rpc_release_usage;
rpc_handler_t promo_rpc_get_reservation;
/* Mergers of the methods that lock usage counters: every counter the batch's calls may lock,
 * in key order in one statement, then the calls in sequence. */
rpc_merger_t promo_merge_reserve;
rpc_merger_t promo_merge_release;
rpc_merger_t promo_merge_release_usage;

/* promo_rpc_coupons.c */
rpc_handler_t promo_rpc_create_coupon_template;
rpc_handler_t promo_rpc_get_coupon_template;
rpc_handler_t promo_rpc_list_coupon_templates;
rpc_handler_t promo_rpc_set_coupon_template_active;
rpc_handler_t promo_rpc_issue_coupon;
rpc_handler_t promo_rpc_get_coupon;
rpc_handler_t promo_rpc_list_coupons;

/** Paging shared by the List RPCs: the page size and the id (or code) to continue after. */
status_t promo_page_start(const Loyalty__V1__PageRequest *page, arena_t *a, int *limit,
                          char **after);
/** page_info for a page whose last row has key `last`; next_cursor "" when there is no more. */
Loyalty__V1__PageInfo *promo_page_next(arena_t *a, bool more, const char *last);

/** Returns what reservations past their TTL still hold (rpc_job_t; safe on many replicas). */
status_t promo_job_expire_reservations(rpc_ctx_t *ctx);

#endif
