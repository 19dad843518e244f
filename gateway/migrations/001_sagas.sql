-- The gateway's saga log (gateway.proto "SAGAS"): one row per flow and one per participant call.
-- kind and state hold the numbers of GatewaySagaKind and GatewaySagaState; direction and state
-- of a step those of GatewayStepDirection and GatewayStepState.
CREATE TABLE sagas (
    merchant_id     text        NOT NULL,
    id              text        NOT NULL,
    kind            smallint    NOT NULL,
    state           smallint    NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    bytea       NOT NULL,
    request         bytea       NOT NULL,
    -- A packed GatewaySagaContext: what the saga learnt so far.
    context         bytea       NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    error_code      smallint    NOT NULL DEFAULT 0,
    error_reason    text        NOT NULL DEFAULT '',
    error_message   text        NOT NULL DEFAULT '',
    order_id        text,
    member_id       text,
    lease_owner     text,
    lease_until     timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT sagas_idempotency_key UNIQUE (merchant_id, idempotency_key)
);

-- One checkout per order among those not CANCELLED (kind 2 = CHECKOUT, state 6 = CANCELLED).
CREATE UNIQUE INDEX sagas_checkout_order ON sagas (merchant_id, order_id)
    WHERE kind = 2 AND state <> 6;
CREATE INDEX sagas_by_order ON sagas (merchant_id, order_id, created_at) WHERE order_id IS NOT NULL;
-- What the recovery job scans: unfinished sagas (BEGINNING, RESERVED, COMPLETING, CANCELLING).
CREATE INDEX sagas_due ON sagas (next_attempt_at) WHERE state IN (1, 2, 3, 5);
CREATE INDEX sagas_by_state ON sagas (merchant_id, state, id);
CREATE INDEX sagas_by_merchant ON sagas (merchant_id, id);

CREATE TABLE saga_steps (
    merchant_id   text        NOT NULL,
    saga_id       text        NOT NULL,
    name          text        NOT NULL,
    seq           integer     NOT NULL,
    direction     smallint    NOT NULL,
    state         smallint    NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    -- The participant's packed response once DONE.
    response      bytea,
    error_code    smallint    NOT NULL DEFAULT 0,
    error_reason  text        NOT NULL DEFAULT '',
    error_message text        NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (merchant_id, saga_id, name)
);

-- Completed checkouts, with what refunds have given back so far (RefundOrder serializes on the
-- row with FOR UPDATE).
CREATE TABLE orders (
    merchant_id                 text        NOT NULL,
    order_id                    text        NOT NULL,
    checkout_id                 text        NOT NULL,
    member_id                   text        NOT NULL,
    total_cents                 bigint      NOT NULL,
    points_cash_cents           bigint      NOT NULL,
    wallet_cents                bigint      NOT NULL,
    external_cents              bigint      NOT NULL,
    spend_cents                 bigint      NOT NULL,
    refundable_cents            bigint      NOT NULL,
    refunded_cents              bigint      NOT NULL DEFAULT 0,
    refunded_points_cash_cents  bigint      NOT NULL DEFAULT 0,
    refunded_wallet_cents       bigint      NOT NULL DEFAULT 0,
    refunded_external_cents     bigint      NOT NULL DEFAULT 0,
    refunded_share_bps          bigint      NOT NULL DEFAULT 0,
    refunded_spend_cents        bigint      NOT NULL DEFAULT 0,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, order_id),
    CHECK (refunded_cents >= 0 AND refunded_cents <= refundable_cents),
    CHECK (refunded_share_bps >= 0 AND refunded_share_bps <= 10000)
);

CREATE TABLE order_lines (
    merchant_id        text    NOT NULL,
    order_id           text    NOT NULL,
    line_id            text    NOT NULL,
    idx                integer NOT NULL,
    kind               smallint NOT NULL,
    quantity           bigint  NOT NULL,
    final_amount_cents bigint  NOT NULL,
    refunded_quantity  bigint  NOT NULL DEFAULT 0,
    refunded_cents     bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, order_id, line_id),
    CHECK (refunded_quantity >= 0 AND refunded_quantity <= quantity)
);

CREATE TABLE settings (
    merchant_id                 text        NOT NULL PRIMARY KEY,
    welcome_coupon_template_ids text[]      NOT NULL DEFAULT '{}',
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- Merchants whose referral programme holds purchase rewards: the recovery job calls
-- ReleaseHeldRewards for them once due_at has passed.
CREATE TABLE referral_release_due (
    merchant_id text        NOT NULL PRIMARY KEY,
    due_at      timestamptz NOT NULL
);
