/* member_store.h -- SQL for member profiles in the `member` schema. Every function takes the
 * merchant and never touches another merchant's rows. Results are built in the arena. */
#ifndef MEMBER_STORE_H
#define MEMBER_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/member.pb-c.h"
#include "sql_time.h"
#include "status.h"

/* The columns every read returns, in the order member_store_from_result expects. Custom
 * attributes come back as two arrays (keys, values) in key order. */
#define MEMBER_PROFILE_COLUMNS                                                                     \
    "id, coalesce(external_id, ''), name, coalesce(phone, ''), coalesce(email, ''), "              \
    "coalesce(to_char(birthday, 'YYYY-MM-DD'), ''), gender, has_address, address_line1, "          \
    "address_line2, address_city, address_region, address_postal_code, address_country_code, "     \
    "occupation, interests, "                                                                      \
    "(SELECT coalesce(array_agg(k ORDER BY k), '{}') FROM jsonb_object_keys(custom_attributes) "   \
    "k), "                                                                                         \
    "(SELECT coalesce(array_agg(v ORDER BY k), '{}') FROM jsonb_each_text(custom_attributes) "     \
    "e(k, v)), "                                                                                   \
    "tags, version, " SQL_EPOCH_S("created_at") ", " SQL_EPOCH_S("updated_at") ", merchant_id"
#define MEMBER_PROFILE_COLUMN_COUNT 23

/** The member in row `row` of a result whose first columns are MEMBER_PROFILE_COLUMNS. */
status_t member_store_from_result(arena_t *a, const PGresult *r, int row,
                                  Loyalty__V1__Member **out);

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

/** Inserts a member registered at `created_at` (imports); when its phone, e-mail or external
 *  id is taken nothing is inserted and *inserted is false. */
status_t member_store_insert_at(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                const char *external_id, const Loyalty__V1__MemberProfile *profile,
                                int64_t created_at, bool *inserted);

/** Reads one member; NOT_FOUND when absent. With for_update the row stays locked until the
 *  transaction ends. */
status_t member_store_get(db_t *db, arena_t *a, const char *merchant_id, member_lookup_t by,
                          const char *value, bool for_update, Loyalty__V1__Member **out);

/** Writes the whole profile of an existing member and increments its version. */
status_t member_store_update_profile(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                     const Loyalty__V1__MemberProfile *profile,
                                     Loyalty__V1__Member **out);

#endif
