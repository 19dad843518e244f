/* member_view.h -- builds the API's messages from stored rows: tier references, a member's
 * MemberTierStatus (first the member's own part from its row, then the parts that come from the
 * merchant's tiers, so that the cache can keep the two apart), statistics with RFM scores, and
 * tiers. Everything is allocated in the arena. */
#ifndef MEMBER_VIEW_H
#define MEMBER_VIEW_H

#include "member_store_state.h"

/** "YYYY-MM-DD" of a day number; "" for MEMBER_DAY_NONE. */
char *member_view_date(arena_t *a, int64_t day);

/** The reference of a tier id ("" -> no tier; an unknown id keeps its id, rank 0). */
Loyalty__V1__MemberTierRef *member_view_ref(arena_t *a, const member_tierset_t *ts,
                                            const char *tier_id);

/** The member's own part of the status: ids, dates, values, card, segment. */
Loyalty__V1__MemberTierStatus *member_view_status_raw(arena_t *a, const member_row_t *r);

/** Completes a raw status in place with names, ranks, benefits and progress from the tiers. */
void member_view_status_compose(arena_t *a, const member_tierset_t *ts,
                                Loyalty__V1__MemberTierBasis basis,
                                Loyalty__V1__MemberTierStatus *st);

/** Both steps. */
Loyalty__V1__MemberTierStatus *member_view_status(arena_t *a, const member_tierset_t *ts,
                                                  Loyalty__V1__MemberTierBasis basis,
                                                  const member_row_t *r);

Loyalty__V1__MemberStats *member_view_stats(arena_t *a, const member_settings_t *s,
                                            const member_row_t *r);

Loyalty__V1__MemberTier *member_view_tier(arena_t *a, const member_tier_def_t *d);

/** The tiers as a tierset (for tiers read from the cache). */
void member_view_tierset(const Loyalty__V1__MemberListTiersResponse *in, member_tierset_t *out);

#endif
