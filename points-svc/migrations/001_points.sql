-- Points and growth (docs/domain.md#points). Keyed by merchant first (docs/architecture.md#scale-out).
-- Enum columns hold the proto enum numbers (points.proto). The account row of a member is the
-- lock that serializes every change of that member's lots, holds and totals.

CREATE TABLE settings (
    merchant_id                text        NOT NULL PRIMARY KEY,
    time_zone                  text        NOT NULL,
    earn_unit_cents            bigint      NOT NULL CHECK (earn_unit_cents >= 1),
    earn_points_per_unit       bigint      NOT NULL CHECK (earn_points_per_unit >= 0),
    -- event_points[k] = fixed points of PointsEventKind k (1-based, like the enum numbers).
    event_points               bigint[]    NOT NULL DEFAULT '{}',
    expiry_policy              smallint    NOT NULL,
    expiry_days                integer     NOT NULL DEFAULT 0,
    expiry_months              integer     NOT NULL DEFAULT 0,
    pending_days               integer     NOT NULL DEFAULT 0,
    redeem_points              bigint      NOT NULL DEFAULT 0,
    redeem_value_cents         bigint      NOT NULL DEFAULT 0,
    redeem_min_points          bigint      NOT NULL DEFAULT 0,
    redeem_max_order_share_bps bigint      NOT NULL DEFAULT 0,
    growth_per_point_bps       bigint      NOT NULL DEFAULT 0,
    growth_per_unit            bigint      NOT NULL DEFAULT 0,
    version                    bigint      NOT NULL DEFAULT 1,
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    merchant_id    text        NOT NULL,
    id             text        NOT NULL,
    name           text        NOT NULL,
    multiplier_bps bigint      NOT NULL,
    start_date     date        NOT NULL,
    end_date       date        NOT NULL,
    tier_ids       text[]      NOT NULL DEFAULT '{}',
    active         boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CHECK (end_date >= start_date)
);
CREATE INDEX campaigns_window ON campaigns (merchant_id, start_date, end_date) WHERE active;

-- Maintained totals (GetBalance is one row read). available = lots_points - debt.
CREATE TABLE accounts (
    merchant_id     text        NOT NULL,
    member_id       text        NOT NULL,
    lots_points     bigint      NOT NULL DEFAULT 0 CHECK (lots_points >= 0),
    held            bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    pending         bigint      NOT NULL DEFAULT 0 CHECK (pending >= 0),
    debt            bigint      NOT NULL DEFAULT 0 CHECK (debt >= 0),
    lifetime_earned bigint      NOT NULL DEFAULT 0,
    growth          bigint      NOT NULL DEFAULT 0,
    -- The soonest instant something falls due (hold TTL, end of a pending window, a lot's
    -- expiry); NULL when nothing will. Reads settle the member lazily once it has passed.
    next_due_at     timestamptz,
    last_check_in   date,
    check_in_streak integer     NOT NULL DEFAULT 0,
    version         bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, member_id)
);
-- The settle job walks due accounts of every merchant.
CREATE INDEX accounts_due ON accounts (next_due_at) WHERE next_due_at IS NOT NULL;

CREATE TABLE lots (
    merchant_id  text        NOT NULL,
    id           text        NOT NULL,
    member_id    text        NOT NULL,
    source       smallint    NOT NULL,
    reference    text        NOT NULL DEFAULT '',
    points       bigint      NOT NULL CHECK (points > 0),
    remaining    bigint      NOT NULL,
    status       smallint    NOT NULL,
    earned_at    timestamptz NOT NULL,
    available_at timestamptz NOT NULL,
    expiry_date  date,
    expires_at   timestamptz,
    PRIMARY KEY (merchant_id, id),
    CHECK (remaining >= 0 AND remaining <= points),
    CHECK (status IN (1, 2) OR remaining = 0)
);
-- Spending order (FIFO by expiry) over lots with something left.
CREATE INDEX lots_spend ON lots (merchant_id, member_id, expires_at, earned_at, id)
    WHERE status = 2 AND remaining > 0;
CREATE INDEX lots_pending ON lots (merchant_id, member_id, available_at) WHERE status = 1;
CREATE INDEX lots_member ON lots (merchant_id, member_id, id);

CREATE TABLE holds (
    merchant_id      text        NOT NULL,
    id               text        NOT NULL,
    member_id        text        NOT NULL,
    reference        text        NOT NULL,
    points           bigint      NOT NULL CHECK (points > 0),
    cash_value_cents bigint      NOT NULL DEFAULT 0,
    status           smallint    NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX holds_live_reference ON holds (merchant_id, reference) WHERE status IN (1, 2);
CREATE INDEX holds_reference ON holds (merchant_id, reference, created_at);
CREATE INDEX holds_active ON holds (merchant_id, member_id, expires_at) WHERE status = 1;

-- Which lots a hold took its points from; restored counts what reversals gave back.
CREATE TABLE hold_lots (
    merchant_id text   NOT NULL,
    hold_id     text   NOT NULL,
    lot_id      text   NOT NULL,
    points      bigint NOT NULL CHECK (points > 0),
    restored    bigint NOT NULL DEFAULT 0 CHECK (restored >= 0 AND restored <= points),
    PRIMARY KEY (merchant_id, hold_id, lot_id)
);

-- The history. Deltas apply to the account's available / held / pending; seq orders it.
CREATE TABLE entries (
    merchant_id     text        NOT NULL,
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    id              text        NOT NULL,
    member_id       text        NOT NULL,
    kind            smallint    NOT NULL,
    available_delta bigint      NOT NULL DEFAULT 0,
    held_delta      bigint      NOT NULL DEFAULT 0,
    pending_delta   bigint      NOT NULL DEFAULT 0,
    available_after bigint      NOT NULL,
    source          smallint    NOT NULL DEFAULT 0,
    reference       text        NOT NULL DEFAULT '',
    hold_id         text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    operator        text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX entries_member ON entries (merchant_id, member_id, seq);

-- Lot shares of entries: the sum over a lot equals its remaining.
CREATE TABLE entry_lots (
    merchant_id text   NOT NULL,
    entry_id    text   NOT NULL,
    lot_id      text   NOT NULL,
    points      bigint NOT NULL,
    PRIMARY KEY (merchant_id, entry_id, lot_id)
);
CREATE INDEX entry_lots_lot ON entry_lots (merchant_id, lot_id);

CREATE TABLE growth_entries (
    merchant_id  text        NOT NULL,
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    id           text        NOT NULL,
    member_id    text        NOT NULL,
    kind         smallint    NOT NULL,
    growth       bigint      NOT NULL,
    growth_after bigint      NOT NULL,
    source       smallint    NOT NULL DEFAULT 0,
    reference    text        NOT NULL DEFAULT '',
    reason       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX growth_entries_member ON growth_entries (merchant_id, member_id, seq);

-- One earn per (source, reference): a retried or duplicated earn cannot credit twice.
CREATE TABLE earn_refs (
    merchant_id text        NOT NULL,
    source      smallint    NOT NULL,
    reference   text        NOT NULL,
    member_id   text        NOT NULL,
    lot_id      text        NOT NULL DEFAULT '',
    points      bigint      NOT NULL,
    growth      bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, source, reference)
);

-- What an order reference earned and redeemed, and how much of it was reversed so far.
CREATE TABLE orders (
    merchant_id     text   NOT NULL,
    reference       text   NOT NULL,
    member_id       text   NOT NULL,
    earned_points   bigint NOT NULL DEFAULT 0,
    earned_growth   bigint NOT NULL DEFAULT 0,
    earn_lot_id     text   NOT NULL DEFAULT '',
    redeemed_points bigint NOT NULL DEFAULT 0,
    reversed_bps    bigint NOT NULL DEFAULT 0 CHECK (reversed_bps BETWEEN 0 AND 10000),
    clawed_points   bigint NOT NULL DEFAULT 0,
    clawed_growth   bigint NOT NULL DEFAULT 0,
    restored_points bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, reference)
);

CREATE TABLE check_ins (
    merchant_id text        NOT NULL,
    member_id   text        NOT NULL,
    day         date        NOT NULL,
    points      bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, member_id, day)
);

CREATE TABLE import_batches (
    merchant_id  text        NOT NULL,
    batch_id     text        NOT NULL,
    request_hash bytea       NOT NULL,
    lots         bigint      NOT NULL,
    points       bigint      NOT NULL,
    growth       bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, batch_id)
);
