/* member_store_list.h -- SQL of member lists (keyset pages over registration time, one index
 * per main filter), member imports and import batches. */
#ifndef MEMBER_STORE_LIST_H
#define MEMBER_STORE_LIST_H

#include "member_store_state.h"

/** A validated list filter (MemberListFilter): NULL / 0 fields do not filter. */
typedef struct member_list_query {
    const char *tier_id; /* NULL = any; "" = no tier */
    int card_kind;
    int segment;
    const char *tag; /* lower case */
    int64_t registered_from, registered_to;
    int32_t birth_month, birth_day;
    int64_t last_order_from, last_order_to;
    bool newest_first;
    /* The position after which the page starts: registration time in microseconds and id;
     * after_id NULL = the first page. */
    int64_t after_created_us;
    const char *after_id;
    int32_t limit;
} member_list_query_t;

/** One page: profiles, rows, and each row's registration time in microseconds (the cursor). */
typedef struct member_list_page {
    int n;
    Loyalty__V1__Member **members;
    member_row_t *rows;
    int64_t *created_us;
} member_list_page_t;

status_t member_list(db_t *db, arena_t *a, const char *merchant_id, const member_list_query_t *q,
                     member_list_page_t *out);

/** The SQL and parameters member_list runs (for EXPLAIN in the benchmark). */
const char *member_list_sql(arena_t *a, const char *merchant_id, const member_list_query_t *q,
                            db_params_t *p);

/** Inserts an imported member unless its external id, phone or e-mail is taken: *inserted
 *  false then, with *existing_id the member holding the external id ("" when the conflict is
 *  on the phone or e-mail; *reason says which). */
status_t member_import_insert(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                              const char *external_id, const Loyalty__V1__MemberProfile *profile,
                              int64_t registered_at, bool *inserted, char **existing_id,
                              const char **reason);

/** Claims a batch id for `request` (its hash); *replay gets the stored response of an identical
 *  batch. ALREADY_EXISTS BATCH_ID_REUSED for a different batch under the same id. */
status_t member_import_claim(db_t *db, arena_t *a, const char *merchant_id, const char *batch_id,
                             const unsigned char *request, size_t len, unsigned char **replay,
                             size_t *replay_len);
status_t member_import_store(db_t *db, const char *merchant_id, const char *batch_id,
                             const unsigned char *response, size_t len);

#endif
