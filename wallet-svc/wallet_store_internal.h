/* wallet_store_internal.h -- what the wallet_store*.c files share and nobody else uses: the
 * arena array helpers, the member-account and spend-claim SQL, and the
 * row readers of member accounts and lots. Not part of wallet_store.h's interface. */
#ifndef WALLET_STORE_INTERNAL_H
#define WALLET_STORE_INTERNAL_H

#include "sql_time.h"
#include "wallet_store.h"

#include <libpq-fe.h>

#include <stdint.h>

static inline int64_t *ints(arena_t *a, int n) {
    return arena_alloc(a, (size_t)(n ? n : 1) * sizeof(int64_t));
}

static inline char **strs(arena_t *a, int n) {
    return arena_alloc(a, (size_t)(n ? n : 1) * sizeof(char *));
}

#define MEMBER_COLUMNS                                                                             \
    "a.code, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, "             \
    "a.next_due_at"

#define MEMBER_ACCOUNTS_SQL                                                                        \
    "SELECT " MEMBER_COLUMNS " FROM accounts a "                                                   \
    "WHERE a.merchant_id = $1 AND a.member_id = $2 AND a.code IN (1, 2) AND a.shard = 0 "          \
    "ORDER BY a.code"

/* Claims a spend reference for a member: its owner back when new, no row when taken. */
#define SPEND_CLAIM_SQL                                                                            \
    "INSERT INTO spends (merchant_id, reference, member_id) VALUES ($1, $2, $3) "                  \
    "ON CONFLICT DO NOTHING RETURNING member_id"

/* Rows of MEMBER_COLUMNS (code, four balances, next_due_at) into m. */
void wallet_store_member_from_rows(wallet_member_t *m, const PGresult *r);

/* The lot of row `row` (LOT_COLUMNS from column c): the transaction's copy when it has one (it
 * is the current state), else a new registered copy. */
status_t wallet_store_lot_from_row_at(wallet_tx_t *tx, const PGresult *r, int row, int c,
                                      wallet_lot_t **out);

#endif
