/* wallet_ledger.c -- in-memory balances and transfers of one ledger transaction. */
#include "wallet_ledger.h"

#include <assert.h>
#include <string.h>

int64_t wallet_account_available(const wallet_account_t *a) {
    return a->credits_posted - a->debits_posted - a->debits_pending;
}

wallet_account_t *wallet_member_account(wallet_member_t *m, int code) {
    assert(wallet_code_is_member(code));
    return &m->acc[code == WALLET_ACC_PRINCIPAL ? 0 : 1];
}

int64_t wallet_member_balance(const wallet_member_t *m) {
    return m->acc[0].credits_posted - m->acc[0].debits_posted + m->acc[1].credits_posted -
           m->acc[1].debits_posted;
}

void wallet_member_due(wallet_member_t *m, int64_t at) {
    if (at != 0 && at < m->next_due_at) {
        m->next_due_at = at;
    }
}

int64_t wallet_member_held(const wallet_member_t *m) {
    return m->acc[0].debits_pending + m->acc[1].debits_pending;
}

int64_t wallet_member_available(const wallet_member_t *m) {
    return wallet_account_available(&m->acc[0]) + wallet_account_available(&m->acc[1]);
}

int64_t wallet_lot_available(const wallet_lot_t *l) {
    return l->credited_cents - l->debited_cents - l->held_cents;
}

wallet_lot_key_t wallet_lot_key(const wallet_lot_t *l) {
    return (wallet_lot_key_t){.expires_at = l->expires_at, .code = l->code, .id = l->id};
}

/* Grows an arena array of `size`-byte items to hold at least need items. */
static void *grow(arena_t *a, void *items, int *cap, int need, size_t size) {
    if (need <= *cap) {
        return items;
    }
    int n = *cap ? *cap * 2 : 16;
    while (n < need) {
        n *= 2;
    }
    void *bigger = arena_alloc(a, (size_t)n * size);
    if (items != NULL && *cap > 0) {
        memcpy(bigger, items, (size_t)*cap * size);
    }
    *cap = n;
    return bigger;
}

void wallet_tx_init(wallet_tx_t *tx, arena_t *a, int64_t now) {
    memset(tx, 0, sizeof *tx);
    tx->arena = a;
    tx->now = now;
    tx->open_xfer = -1;
}

wallet_member_t *wallet_tx_member(wallet_tx_t *tx, const char *member_id) {
    wallet_member_t *m = arena_alloc(tx->arena, sizeof *m);
    m->member_id = arena_strdup(tx->arena, member_id);
    m->shard = wallet_shard(member_id);
    m->next_due_at = m->next_due_loaded = WALLET_DUE_NEVER;
    tx->members =
        grow(tx->arena, tx->members, &tx->cap_members, tx->n_members + 1, sizeof *tx->members);
    tx->members[tx->n_members++] = m;
    return m;
}

void wallet_tx_add_lot(wallet_tx_t *tx, wallet_lot_t *lot) {
    assert(wallet_tx_find_lot(tx, lot->id) == NULL);
    tx->lots = grow(tx->arena, tx->lots, &tx->cap_lots, tx->n_lots + 1, sizeof *tx->lots);
    tx->lots[tx->n_lots++] = lot;
}

wallet_lot_t *wallet_tx_find_lot(const wallet_tx_t *tx, const char *id) {
    for (int i = 0; i < tx->n_lots; i++) {
        if (strcmp(tx->lots[i]->id, id) == 0) {
            return tx->lots[i];
        }
    }
    return NULL;
}

wallet_lot_t *wallet_tx_new_lot(wallet_tx_t *tx, wallet_member_t *m, int code, int origin,
                                const char *top_up_id, int64_t expires_at) {
    assert(wallet_code_is_member(code));
    wallet_lot_t *lot = arena_alloc(tx->arena, sizeof *lot);
    char id[ID_MAX];
    id_generate("lot", id);
    lot->id = arena_strdup(tx->arena, id);
    lot->member_id = m->member_id;
    lot->code = code;
    lot->origin = origin;
    lot->top_up_id = arena_strdup(tx->arena, top_up_id ? top_up_id : "");
    lot->expires_at = expires_at;
    lot->created_at = tx->now;
    lot->is_new = true;
    wallet_tx_add_lot(tx, lot);
    return lot;
}

wallet_xfer_t *wallet_xfer_begin(wallet_tx_t *tx, int kind, wallet_member_t *member) {
    assert(tx->open_xfer < 0);
    tx->xfers = grow(tx->arena, tx->xfers, &tx->cap_xfers, tx->n_xfers + 1, sizeof *tx->xfers);
    wallet_xfer_t *x = &tx->xfers[tx->n_xfers];
    memset(x, 0, sizeof *x);
    id_generate("trf", x->id);
    x->kind = kind;
    x->member = member;
    x->hold_id = x->top_up_id = x->reference = x->payment_ref = "";
    x->created_at = tx->now;
    x->first_line = tx->n_lines;
    tx->open_xfer = tx->n_xfers++;
    return x;
}

static void add_line(wallet_tx_t *tx, const char *member_id, int code, int shard,
                     const char *lot_id, bool debit, bool pending, int64_t amount_cents) {
    assert(tx->open_xfer >= 0);
    assert(amount_cents > 0);
    tx->lines = grow(tx->arena, tx->lines, &tx->cap_lines, tx->n_lines + 1, sizeof *tx->lines);
    tx->lines[tx->n_lines++] = (wallet_line_t){
        .xfer = tx->open_xfer,
        .member_id = member_id,
        .code = code,
        .shard = shard,
        .lot_id = lot_id,
        .pending = pending,
        .debit_cents = debit ? amount_cents : 0,
        .credit_cents = debit ? 0 : amount_cents,
    };
    tx->xfers[tx->open_xfer].n_lines++;
}

/* Applies one side of a line to a four-column balance. */
static void apply(wallet_account_t *a, bool debit, bool pending, int64_t amount_cents) {
    if (debit && pending) {
        a->debits_pending += amount_cents;
    } else if (debit) {
        a->debits_posted += amount_cents;
    } else if (pending) {
        a->credits_pending += amount_cents;
    } else {
        a->credits_posted += amount_cents;
    }
}

void wallet_post_member(wallet_tx_t *tx, wallet_member_t *m, int code, wallet_lot_t *lot,
                        bool debit, bool pending, int64_t amount_cents) {
    assert(!pending || debit); /* members are only ever debited pending (holds) */
    add_line(tx, m->member_id, code, 0, lot ? lot->id : NULL, debit, pending, amount_cents);
    wallet_account_t *a = wallet_member_account(m, code);
    apply(a, debit, pending, amount_cents);
    assert(wallet_account_available(a) >= 0); /* callers check funds before posting */
    if (lot != NULL) {
        assert(lot->code == code && strcmp(lot->member_id, m->member_id) == 0);
        if (pending) {
            lot->held_cents += amount_cents;
        } else if (debit) {
            lot->debited_cents += amount_cents;
            if (tx->xfers[tx->open_xfer].kind == WALLET_XFER_DEPOSIT_EXPIRY) {
                lot->expired_cents += amount_cents;
            }
        } else {
            lot->credited_cents += amount_cents;
            wallet_member_due(m, lot->expires_at); /* money available until it lapses */
        }
        assert(wallet_lot_available(lot) >= 0);
    }
}

void wallet_post_merchant(wallet_tx_t *tx, wallet_member_t *m, int code, bool debit, bool pending,
                          int64_t amount_cents) {
    assert(code >= WALLET_ACC_TOP_UP_FUNDING && code <= WALLET_ACC_BREAKAGE_BONUS);
    add_line(tx, "", code, m->shard, NULL, debit, pending, amount_cents);
    int c = code - WALLET_ACC_TOP_UP_FUNDING;
    apply(&tx->merchant[c][m->shard], debit, pending, amount_cents);
    tx->merchant_touched[c][m->shard] = true;
}

void wallet_release_pending(wallet_tx_t *tx, wallet_member_t *m, int code, wallet_lot_t *lot,
                            int merchant_code, int64_t amount_cents) {
    assert(amount_cents > 0);
    wallet_account_t *a = wallet_member_account(m, code);
    assert(a->debits_pending >= amount_cents);
    a->debits_pending -= amount_cents;
    if (lot != NULL) {
        assert(lot->held_cents >= amount_cents);
        lot->held_cents -= amount_cents;
        wallet_member_due(m, lot->expires_at); /* released money may lapse */
    }
    int c = merchant_code - WALLET_ACC_TOP_UP_FUNDING;
    assert(c >= 0 && c < WALLET_MERCHANT_CODES);
    /* May go negative in memory: the pending credit was made by an earlier transaction. */
    tx->merchant[c][m->shard].credits_pending -= amount_cents;
    tx->merchant_touched[c][m->shard] = true;
}

/* Sums of a transfer's lines: [0] posted debits, [1] posted credits, [2] pending debits,
 * [3] pending credits. */
static void xfer_sums(const wallet_tx_t *tx, const wallet_xfer_t *x, int64_t sums[4]) {
    memset(sums, 0, 4 * sizeof sums[0]);
    for (int i = x->first_line; i < x->first_line + x->n_lines; i++) {
        const wallet_line_t *l = &tx->lines[i];
        sums[l->pending ? 2 : 0] += l->debit_cents;
        sums[l->pending ? 3 : 1] += l->credit_cents;
    }
}

void wallet_xfer_end(wallet_tx_t *tx, int64_t held_delta) {
    assert(tx->open_xfer >= 0);
    wallet_xfer_t *x = &tx->xfers[tx->open_xfer];
    int64_t sums[4];
    xfer_sums(tx, x, sums);
    assert(sums[0] == sums[1] && sums[2] == sums[3]); /* every transfer balances */
    x->amount_cents = sums[0] + sums[2];
    x->held_delta_cents = held_delta;
    x->balance_after_cents = wallet_member_balance(x->member);
    x->held_after_cents = wallet_member_held(x->member);
    tx->open_xfer = -1;
}

bool wallet_tx_balanced(const wallet_tx_t *tx) {
    for (int i = 0; i < tx->n_xfers; i++) {
        int64_t sums[4];
        xfer_sums(tx, &tx->xfers[i], sums);
        if (sums[0] != sums[1] || sums[2] != sums[3]) {
            return false;
        }
    }
    return true;
}

int wallet_tx_merchant_deltas(const wallet_tx_t *tx, wallet_merchant_delta_t *out) {
    int n = 0;
    for (int c = 0; c < WALLET_MERCHANT_CODES; c++) {
        for (int s = 0; s < WALLET_SHARDS; s++) {
            if (tx->merchant_touched[c][s]) {
                out[n++] = (wallet_merchant_delta_t){
                    .code = WALLET_ACC_TOP_UP_FUNDING + c,
                    .shard = s,
                    .delta = tx->merchant[c][s],
                };
            }
        }
    }
    return n;
}

void wallet_tx_add_merchant(wallet_tx_t *to, const wallet_tx_t *from) {
    for (int c = 0; c < WALLET_MERCHANT_CODES; c++) {
        for (int s = 0; s < WALLET_SHARDS; s++) {
            if (!from->merchant_touched[c][s]) {
                continue;
            }
            wallet_account_t *t = &to->merchant[c][s];
            const wallet_account_t *f = &from->merchant[c][s];
            t->debits_pending += f->debits_pending;
            t->debits_posted += f->debits_posted;
            t->credits_pending += f->credits_pending;
            t->credits_posted += f->credits_posted;
            to->merchant_touched[c][s] = true;
        }
    }
}
