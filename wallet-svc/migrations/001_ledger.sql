-- The wallet's double-entry ledger (docs/domain.md#wallet; the model is described in
-- proto/loyalty/v1/wallet.proto). Every table is keyed by merchant first (docs/architecture.md#scale-out).
--
-- Concurrency rule: every row that belongs to a member (its two accounts, lots, holds, top-ups,
-- spends, transfers) is written only while the member's two account rows are locked
-- (SELECT ... FOR UPDATE, principal then bonus). Merchant accounts are hot, so each is split
-- into WALLET_SHARDS rows chosen by a hash of the member, and a transaction applies its
-- merchant-account changes once, at its end, in (code, shard) order: no lock cycles.

CREATE TABLE settings (
    merchant_id           text        PRIMARY KEY,
    deposit_expiry_months integer     NOT NULL DEFAULT 0 CHECK (deposit_expiry_months BETWEEN 0 AND 120),
    time_zone             text        NOT NULL DEFAULT 'UTC',
    refund_grace_days     integer     NOT NULL DEFAULT 30 CHECK (refund_grace_days BETWEEN 0 AND 3650),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
    merchant_id     text        NOT NULL,
    id              text        NOT NULL,
    name            text        NOT NULL,
    pay_cents       bigint      NOT NULL CHECK (pay_cents > 0),
    bonus_cents     bigint      NOT NULL CHECK (bonus_cents >= 0),
    expiry_months   integer     CHECK (expiry_months BETWEEN 0 AND 120), -- NULL: merchant default
    active_from     timestamptz NOT NULL,
    active_until    timestamptz,                                         -- NULL: open-ended
    enabled         boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CHECK (active_until IS NULL OR active_until > active_from)
);

-- Balances in TigerBeetle's four columns. Member accounts (code 1 principal, 2 bonus; shard 0)
-- can never be overdrawn, which the database itself enforces; merchant accounts have
-- member_id '' and codes >= 10.
CREATE TABLE accounts (
    merchant_id     text     NOT NULL,
    member_id       text     NOT NULL,
    code            smallint NOT NULL,
    shard           smallint NOT NULL,
    debits_pending  bigint   NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint   NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint   NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint   NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    PRIMARY KEY (merchant_id, member_id, code, shard),
    CONSTRAINT accounts_kind CHECK ((member_id <> '' AND code IN (1, 2) AND shard = 0) OR
                                    (member_id = '' AND code BETWEEN 10 AND 15)),
    CONSTRAINT accounts_member_not_overdrawn
        CHECK (code NOT IN (1, 2) OR debits_posted + debits_pending <= credits_posted)
);

-- Deposits. available = credited - debited - held; expired is the part of debited that lapsed.
CREATE TABLE lots (
    merchant_id     text        NOT NULL,
    id              text        NOT NULL,
    member_id       text        NOT NULL,
    code            smallint    NOT NULL CHECK (code IN (1, 2)),
    origin          smallint    NOT NULL CHECK (origin IN (1, 2)),
    top_up_id       text,
    credited_cents  bigint      NOT NULL CHECK (credited_cents >= 0),
    debited_cents   bigint      NOT NULL DEFAULT 0 CHECK (debited_cents >= 0),
    held_cents      bigint      NOT NULL DEFAULT 0 CHECK (held_cents >= 0),
    expired_cents   bigint      NOT NULL DEFAULT 0 CHECK (expired_cents >= 0),
    expires_at      timestamptz,                       -- NULL: never
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT lots_not_negative CHECK (debited_cents + held_cents <= credited_cents),
    CHECK (expired_cents <= debited_cents)
);
-- Spending order over the lots that still have money available.
CREATE INDEX lots_spendable ON lots (merchant_id, member_id, expires_at, code, id)
    WHERE debited_cents + held_cents < credited_cents;
-- Lots that can lapse: per merchant (ExpireDeposits) and across merchants (the job).
CREATE INDEX lots_lapsing ON lots (merchant_id, expires_at)
    WHERE expires_at IS NOT NULL AND debited_cents + held_cents < credited_cents;
CREATE INDEX lots_lapsing_all ON lots (expires_at)
    WHERE expires_at IS NOT NULL AND debited_cents + held_cents < credited_cents;
CREATE INDEX lots_member ON lots (merchant_id, member_id, id);

CREATE TABLE top_ups (
    merchant_id           text        NOT NULL,
    id                    text        NOT NULL,
    member_id             text        NOT NULL,
    payment_ref           text        NOT NULL,
    plan_id               text,
    paid_cents            bigint      NOT NULL CHECK (paid_cents > 0),
    bonus_cents           bigint      NOT NULL CHECK (bonus_cents >= 0),
    principal_lot_id      text        NOT NULL,
    bonus_lot_id          text,
    expires_at            timestamptz,
    refunded_cents        bigint      NOT NULL DEFAULT 0,
    bonus_forfeited_cents bigint      NOT NULL DEFAULT 0,
    transfer_id           text        NOT NULL,
    created_at            timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    CHECK (refunded_cents BETWEEN 0 AND paid_cents),
    CHECK (bonus_forfeited_cents BETWEEN 0 AND bonus_cents)
);
CREATE UNIQUE INDEX top_ups_payment_ref_key ON top_ups (merchant_id, payment_ref);

CREATE TABLE holds (
    merchant_id    text        NOT NULL,
    id             text        NOT NULL,
    member_id      text        NOT NULL,
    reference      text        NOT NULL,
    amount_cents   bigint      NOT NULL CHECK (amount_cents > 0),
    captured_cents bigint      NOT NULL DEFAULT 0,
    state          smallint    NOT NULL CHECK (state BETWEEN 1 AND 4),
    expires_at     timestamptz NOT NULL,
    transfer_id    text        NOT NULL,  -- the HOLD transfer with the pending postings
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    CHECK (captured_cents BETWEEN 0 AND amount_cents),
    CHECK (state = 2 OR captured_cents = 0)
);
CREATE INDEX holds_pending_member ON holds (merchant_id, member_id, expires_at) WHERE state = 1;
CREATE INDEX holds_pending_all ON holds (expires_at) WHERE state = 1;

-- What was captured for a caller's reference, and refunded of it, in total and per lot.
CREATE TABLE spends (
    merchant_id    text        NOT NULL,
    reference      text        NOT NULL,
    member_id      text        NOT NULL,
    captured_cents bigint      NOT NULL DEFAULT 0,
    refunded_cents bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, reference),
    CONSTRAINT spends_refund_within_capture CHECK (refunded_cents BETWEEN 0 AND captured_cents)
);

CREATE TABLE spend_lots (
    merchant_id    text     NOT NULL,
    reference      text     NOT NULL,
    lot_id         text     NOT NULL,
    code           smallint NOT NULL,
    captured_cents bigint   NOT NULL,
    refunded_cents bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, reference, lot_id),
    CHECK (refunded_cents BETWEEN 0 AND captured_cents)
);

CREATE TABLE transfers (
    merchant_id         text        NOT NULL,
    id                  text        NOT NULL,
    member_id           text        NOT NULL,
    kind                smallint    NOT NULL CHECK (kind BETWEEN 1 AND 8),
    hold_id             text,
    top_up_id           text,
    reference           text,
    payment_ref         text,
    amount_cents        bigint      NOT NULL,  -- posted + pending debits of its lines
    held_delta_cents    bigint      NOT NULL DEFAULT 0,
    balance_after_cents bigint      NOT NULL,  -- member's posted principal + bonus after it
    held_after_cents    bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX transfers_member ON transfers (merchant_id, member_id, id);
CREATE INDEX transfers_kind_time ON transfers (merchant_id, kind, created_at);

-- The lines of a transfer: one debit or one credit each, on one account (and lot).
CREATE TABLE postings (
    merchant_id  text     NOT NULL,
    transfer_id  text     NOT NULL,
    line         smallint NOT NULL,
    member_id    text     NOT NULL,  -- '' for merchant accounts
    code         smallint NOT NULL,
    shard        smallint NOT NULL,
    lot_id       text,
    pending      boolean  NOT NULL,
    debit_cents  bigint   NOT NULL CHECK (debit_cents >= 0),
    credit_cents bigint   NOT NULL CHECK (credit_cents >= 0),
    PRIMARY KEY (merchant_id, transfer_id, line),
    FOREIGN KEY (merchant_id, transfer_id) REFERENCES transfers (merchant_id, id),
    CHECK ((debit_cents = 0) <> (credit_cents = 0))
);
CREATE INDEX postings_lot ON postings (merchant_id, lot_id) WHERE lot_id IS NOT NULL;

-- Applies merchant-account changes row by row in the order given (the caller sorts them by
-- code, then shard), so that concurrent transactions always lock these hot rows in the same
-- order. A missing row is created; it never starts negative, since a release only follows a
-- pending credit that created the row earlier.
CREATE FUNCTION apply_merchant_deltas(p_merchant text, p_code smallint[], p_shard smallint[],
                                      p_dp bigint[], p_dpo bigint[], p_cp bigint[],
                                      p_cpo bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_code, 1), 0) LOOP
        UPDATE accounts
           SET debits_pending = debits_pending + p_dp[i],
               debits_posted = debits_posted + p_dpo[i],
               credits_pending = credits_pending + p_cp[i],
               credits_posted = credits_posted + p_cpo[i]
         WHERE merchant_id = p_merchant AND member_id = '' AND code = p_code[i]
           AND shard = p_shard[i];
        IF NOT FOUND THEN
            INSERT INTO accounts (merchant_id, member_id, code, shard, debits_pending,
                                  debits_posted, credits_pending, credits_posted)
            VALUES (p_merchant, '', p_code[i], p_shard[i], p_dp[i], p_dpo[i], p_cp[i], p_cpo[i])
            ON CONFLICT (merchant_id, member_id, code, shard) DO UPDATE
               SET debits_pending = accounts.debits_pending + EXCLUDED.debits_pending,
                   debits_posted = accounts.debits_posted + EXCLUDED.debits_posted,
                   credits_pending = accounts.credits_pending + EXCLUDED.credits_pending,
                   credits_posted = accounts.credits_posted + EXCLUDED.credits_posted;
        END IF;
    END LOOP;
    RETURN coalesce(array_length(p_code, 1), 0);
END
$$;
