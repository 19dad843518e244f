/* member_store.h -- SQL for member profiles in the `member` schema. Every function takes the
 * merchant and never touches another merchant's rows. Results are built in the arena. */
#ifndef MEMBER_STORE_H
#define MEMBER_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/member.pb-c.h"
#include "status.h"

typedef enum member_lookup {
    MEMBER_BY_ID,
    MEMBER_BY_PHONE,
    MEMBER_BY_EMAIL,
    MEMBER_BY_EXTERNAL_ID,
} member_lookup_t;

/** Inserts a member with a normalised profile. ALREADY_EXISTS with reason PHONE_TAKEN,
 *  EMAIL_TAKEN or EXTERNAL_ID_TAKEN when another member of the merchant holds the value. */
status_t member_store_insert(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                             const char *external_id, const Loyalty__V1__MemberProfile *profile,
                             Loyalty__V1__Member **out);

/** Reads one member; NOT_FOUND when absent. With for_update the row stays locked until the
 *  transaction ends. */
status_t member_store_get(db_t *db, arena_t *a, const char *merchant_id, member_lookup_t by,
                          const char *value, bool for_update, Loyalty__V1__Member **out);

/** Writes the whole profile of an existing member and increments its version. */
status_t member_store_update_profile(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *id, const Loyalty__V1__MemberProfile *profile,
                                     Loyalty__V1__Member **out);

#endif
