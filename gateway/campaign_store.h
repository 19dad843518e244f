/* campaign_store.h -- SQL for campaigns in the gateway schema: configurations, the scheduler's
 * due list, and per-member deliveries (claim, finish). */
#ifndef CAMPAIGN_STORE_H
#define CAMPAIGN_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/** Inserts or replaces a merchant's campaign of c->kind; `next_run_at` becomes now when it is
 *  enabled. *out receives the stored campaign (with its timestamps). */
status_t campaign_store_put(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__Campaign *c, Loyalty__V1__Campaign **out);

/** NOT_FOUND (reason CAMPAIGN_NOT_FOUND) when the merchant has not set this kind. */
status_t campaign_store_get(db_t *db, arena_t *a, const char *merchant_id,
                            Loyalty__V1__CampaignKind kind, Loyalty__V1__Campaign **out);

status_t campaign_store_list(db_t *db, arena_t *a, const char *merchant_id,
                             Loyalty__V1__Campaign ***out, size_t *n);

/** Takes up to `max` enabled campaigns whose next run is due, moving their next run
 *  interval_s ahead in the same statement (so replicas do not pick the same ones). */
status_t campaign_store_take_due(db_t *db, arena_t *a, int64_t interval_s, int max,
                                 Loyalty__V1__Campaign ***out, size_t *n);

typedef enum campaign_claim {
    CAMPAIGN_CLAIMED,      /* ours now (new, or taken over after its holder's lease ran out) */
    CAMPAIGN_ALREADY_DONE, /* delivered in this period */
    CAMPAIGN_IN_PROGRESS,  /* another runner holds it */
} campaign_claim_t;

/** Claims (member, period) of a campaign for lease_s seconds, in its own statement. */
status_t campaign_store_claim(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                              const char *period, const char *member_id, int64_t lease_s,
                              campaign_claim_t *out);

/** The state of a delivery without claiming it (dry runs). */
status_t campaign_store_peek(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                             const char *period, const char *member_id, campaign_claim_t *out);

/** Marks a claimed delivery DONE with what it gave, inside the caller's transaction; NOT_FOUND
 *  when it is no longer ours (DONE by someone else meanwhile). */
status_t campaign_store_finish(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                               const char *period, const char *member_id, int64_t points,
                               const char *coupon_id, const char *message_event_id,
                               const char *skip_reason);

/** The local date ("YYYY-MM-DD") of unix instant `at` in IANA zone `tz`; INVALID_ARGUMENT
 *  (field campaign.time_zone) for an unknown zone. */
status_t campaign_store_local_date(db_t *db, int64_t at, const char *tz, char out[11]);

#endif
