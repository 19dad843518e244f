/* member_store.c -- member profile rows <-> Loyalty__V1__Member. */
#include "member_store.h"

#include "pb.h"

#include <stdlib.h>
#include <string.h>

#define MEMBER_COLUMNS MEMBER_PROFILE_COLUMNS

/* MEMBER_PROFILE_COLUMNS (member_store.h) in three tables over the one row: the member's own
 * columns, its profile's, and the address's (read only when has_address, column 7). The two
 * custom attribute arrays (16, 17) are paired by member_store_from_result. */
static const db_col_t MEMBER_COL_TABLE[MEMBER_PROFILE_COLUMN_COUNT] = {
    [0] = DB_FIELD(DB_COL_TEXT, "id"),         [1] = DB_FIELD(DB_COL_TEXT, "external_id"),
    [19] = DB_FIELD(DB_COL_INT, "version"),    [20] = DB_FIELD(DB_COL_INT, "created_at"),
    [21] = DB_FIELD(DB_COL_INT, "updated_at"), [22] = DB_FIELD(DB_COL_TEXT, "merchant_id"),
};
static const db_col_t PROFILE_COL_TABLE[] = {
    [2] = DB_FIELD(DB_COL_TEXT, "name"),
    [3] = DB_FIELD(DB_COL_TEXT, "phone"),
    [4] = DB_FIELD(DB_COL_TEXT, "email"),
    [5] = DB_FIELD(DB_COL_TEXT, "birthday"),
    [6] = DB_FIELD(DB_COL_INT, "gender"),
    [14] = DB_FIELD(DB_COL_TEXT, "occupation"),
    [15] = DB_FIELD(DB_COL_TEXT_ARRAY, "interests"),
    [18] = DB_FIELD(DB_COL_TEXT_ARRAY, "tags"),
};
static const db_col_t ADDRESS_COL_TABLE[] = {
    [8] = DB_FIELD(DB_COL_TEXT, "line1"),        [9] = DB_FIELD(DB_COL_TEXT, "line2"),
    [10] = DB_FIELD(DB_COL_TEXT, "city"),        [11] = DB_FIELD(DB_COL_TEXT, "region"),
    [12] = DB_FIELD(DB_COL_TEXT, "postal_code"), [13] = DB_FIELD(DB_COL_TEXT, "country_code"),
};
static const db_cols_t MEMBER_COLS =
    DB_COLS_MESSAGE(MEMBER_COL_TABLE, &loyalty__v1__member__descriptor);
static const db_cols_t PROFILE_COLS =
    DB_COLS_MESSAGE(PROFILE_COL_TABLE, &loyalty__v1__member_profile__descriptor);
static const db_cols_t ADDRESS_COLS =
    DB_COLS_MESSAGE(ADDRESS_COL_TABLE, &loyalty__v1__address__descriptor);

/* The custom attributes from the keys and values arrays, paired in key order. */
static status_t custom_attributes_read(arena_t *a, const PGresult *r, int row,
                                       Loyalty__V1__MemberProfile *p) {
    size_t nk = 0, nv = 0;
    char **keys = db_get_text_array(a, r, row, 16, &nk);
    char **vals = db_get_text_array(a, r, row, 17, &nv);
    size_t n = nk < nv ? nk : nv;
    p->custom_attributes = arena_alloc(a, (n ? n : 1) * sizeof *p->custom_attributes);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__MemberProfile__CustomAttributesEntry *e =
            pb_new(a, &loyalty__v1__member_profile__custom_attributes_entry__descriptor);
        e->key = keys[i];
        e->value = vals[i];
        p->custom_attributes[i] = e;
    }
    p->n_custom_attributes = n;
    return status_ok();
}

status_t member_store_from_result(arena_t *a, const PGresult *r, int row,
                                  Loyalty__V1__Member **out) {
    Loyalty__V1__Member *m = NULL;
    Loyalty__V1__MemberProfile *p = NULL;
    status_t st = db_cols_read(a, &MEMBER_COLS, r, row, &m);
    if (status_is_ok(&st)) {
        st = db_cols_read(a, &PROFILE_COLS, r, row, &p);
    }
    if (status_is_ok(&st) && db_get_bool(r, row, 7)) {
        st = db_cols_read(a, &ADDRESS_COLS, r, row, &p->address);
    }
    if (status_is_ok(&st)) {
        st = custom_attributes_read(a, r, row, p);
    }
    if (status_is_ok(&st)) {
        m->profile = p;
        *out = m;
    }
    return st;
}

/* Appends the profile columns as parameters $k.. in the order of the INSERT/UPDATE below. */
static void profile_params(arena_t *a, db_params_t *p, const Loyalty__V1__MemberProfile *pr) {
    const Loyalty__V1__Address *addr = pr->address;
    DB_PARAM_TEXTS(p, pr->name, pr->phone[0] ? pr->phone : NULL, pr->email[0] ? pr->email : NULL,
                   pr->birthday[0] ? pr->birthday : NULL);
    db_param_int(p, pr->gender);
    db_param_bool(p, addr != NULL);
    db_param_text(p, addr ? addr->line1 : "");
    db_param_text(p, addr ? addr->line2 : "");
    db_param_text(p, addr ? addr->city : "");
    db_param_text(p, addr ? addr->region : "");
    db_param_text(p, addr ? addr->postal_code : "");
    db_param_text(p, addr ? addr->country_code : "");
    db_param_text(p, pr->occupation);
    db_param_text_array(p, a, pr->interests, pr->n_interests);
    char **keys = arena_alloc(a, (pr->n_custom_attributes + 1) * sizeof *keys);
    char **vals = arena_alloc(a, (pr->n_custom_attributes + 1) * sizeof *vals);
    for (size_t i = 0; i < pr->n_custom_attributes; i++) {
        keys[i] = pr->custom_attributes[i]->key;
        vals[i] = pr->custom_attributes[i]->value;
    }
    db_param_text_array(p, a, keys, pr->n_custom_attributes);
    db_param_text_array(p, a, vals, pr->n_custom_attributes);
    db_param_text_array(p, a, pr->tags, pr->n_tags);
}

/* Turns a unique violation into the reason naming the value that is taken. */
static status_t member_duplicate(const db_t *db, status_t st) {
    if (st.code != STATUS_ALREADY_EXISTS) {
        return st;
    }
    const char *c = db_last_constraint(db);
    if (strcmp(c, "members_phone_key") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_PHONE_TAKEN,
                           "another member already has this phone number");
    }
    if (strcmp(c, "members_email_key") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_EMAIL_TAKEN,
                           "another member already has this e-mail address");
    }
    if (strcmp(c, "members_external_id_key") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_EXTERNAL_ID_TAKEN,
                           "another member already has this external id");
    }
    return st;
}

static status_t member_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    return member_store_from_result(a, r, row, item);
}

static status_t member_one_row(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                               Loyalty__V1__Member **out) {
    return member_duplicate(db, db_row_get(db, a, sql, p, member_row, out, STATUS_NOT_FOUND,
                                           REASON_MEMBER_NOT_FOUND, "member not found"));
}

/* The profile columns of the INSERTs and their values $4..$20, as profile_params appends them. */
#define PROFILE_INSERT_COLUMNS                                                                     \
    "name, phone, email, birthday, gender, has_address, address_line1, address_line2, "            \
    "address_city, address_region, address_postal_code, address_country_code, occupation, "        \
    "interests, custom_attributes, tags"
#define PROFILE_INSERT_VALUES                                                                      \
    "$4, $5, $6, $7::date, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text[], "               \
    "jsonb_object($18::text[], $19::text[]), $20::text[]"

status_t member_store_insert(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                             const char *external_id, const Loyalty__V1__MemberProfile *profile,
                             Loyalty__V1__Member **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_text(&p, external_id[0] ? external_id : NULL);
    profile_params(a, &p, profile);
    return member_one_row(
        db, a,
        "INSERT INTO members (merchant_id, id, external_id, " PROFILE_INSERT_COLUMNS
        ") VALUES ($1, $2, $3, " PROFILE_INSERT_VALUES ") RETURNING " MEMBER_COLUMNS,
        &p, out);
}

status_t member_store_insert_at(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                const char *external_id, const Loyalty__V1__MemberProfile *profile,
                                int64_t created_at, bool *inserted) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_text(&p, external_id[0] ? external_id : NULL);
    profile_params(a, &p, profile);
    db_param_int(&p, created_at);
    /* ON CONFLICT without a target covers every unique index: the batch goes on. */
    return db_row_find(db, NULL,
                       "INSERT INTO members (merchant_id, id, external_id, " PROFILE_INSERT_COLUMNS
                       ", created_at, updated_at) VALUES ($1, $2, $3, " PROFILE_INSERT_VALUES
                       ", to_timestamp($21), now()) ON CONFLICT DO NOTHING RETURNING 1",
                       &p, NULL, NULL, inserted);
}

status_t member_store_get(db_t *db, arena_t *a, const char *merchant_id, member_lookup_t by,
                          const char *value, bool for_update, Loyalty__V1__Member **out) {
    static const char *const sql[4][2] = {
        {"SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND id = $2",
         "SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND id = $2 FOR UPDATE"},
        {"SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND phone = $2",
         "SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND phone = $2 FOR UPDATE"},
        {"SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND email = $2",
         "SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND email = $2 FOR UPDATE"},
        {"SELECT " MEMBER_COLUMNS " FROM members WHERE merchant_id = $1 AND external_id = $2",
         "SELECT " MEMBER_COLUMNS
         " FROM members WHERE merchant_id = $1 AND external_id = $2 FOR UPDATE"},
    };
    db_params_t p;
    db_params_key(&p, merchant_id, value);
    return member_one_row(db, a, sql[by][for_update ? 1 : 0], &p, out);
}

status_t member_store_update_profile(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                     const Loyalty__V1__MemberProfile *profile,
                                     Loyalty__V1__Member **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    profile_params(a, &p, profile);
    return member_one_row(
        db, a,
        "UPDATE members SET name = $3, phone = $4, email = $5, birthday = $6::date, gender = $7, "
        " has_address = $8, address_line1 = $9, address_line2 = $10, address_city = $11, "
        " address_region = $12, address_postal_code = $13, address_country_code = $14, "
        " occupation = $15, interests = $16::text[], "
        " custom_attributes = jsonb_object($17::text[], $18::text[]), tags = $19::text[], "
        " version = version + 1, updated_at = now() "
        "WHERE merchant_id = $1 AND id = $2 "
        "RETURNING " MEMBER_COLUMNS,
        &p, out);
}
