-- Tiers, cards, purchase statistics, segments (docs/domain.md#members-and-tiers; the rules are in
-- member_tiers.c and member_segments.c, the contract in member.proto).

-- Per-merchant settings; a row is created with the defaults when the merchant's first member
-- is created, so that background jobs can find every merchant.
CREATE TABLE settings (
    merchant_id            text        PRIMARY KEY,
    time_zone              text        NOT NULL DEFAULT 'UTC',
    tier_basis             smallint    NOT NULL DEFAULT 1 CHECK (tier_basis IN (1, 2)),
    new_days               int         NOT NULL DEFAULT 30,
    active_months_min      int         NOT NULL DEFAULT 3,
    sleeping_after_days    int         NOT NULL DEFAULT 90,
    lost_after_days        int         NOT NULL DEFAULT 90,
    sleeping_orders_max    int         NOT NULL DEFAULT 4,
    -- Quintile boundaries (20/40/60/80th percentiles) over buying members; NULL = not computed.
    rfm_recency            bigint[],
    rfm_frequency          bigint[],
    rfm_monetary           bigint[],
    rfm_computed_at        timestamptz,
    -- While not NULL a re-evaluation of every member's segment is under way (after a change of
    -- the lifecycle thresholds): the id of the last member done ('' = none yet).
    resegment_after        text,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tiers (
    merchant_id            text        NOT NULL,
    id                     text        NOT NULL,
    name                   text        NOT NULL,
    rank                   smallint    NOT NULL CHECK (rank BETWEEN 1 AND 10),
    upgrade_threshold      bigint      NOT NULL CHECK (upgrade_threshold >= 0),
    retain_threshold       bigint      NOT NULL CHECK (retain_threshold BETWEEN 0 AND upgrade_threshold),
    period_months          int         NOT NULL CHECK (period_months >= 0),
    express_spend_cents    bigint      NOT NULL DEFAULT 0 CHECK (express_spend_cents >= 0),
    discount_bps           int         NOT NULL DEFAULT 0,
    earn_multiplier_bps    int         NOT NULL DEFAULT 10000,
    birthday_bonus_points  bigint      NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, rank)
);

CREATE TABLE plans (
    merchant_id            text        NOT NULL,
    id                     text        NOT NULL,
    name                   text        NOT NULL,
    tier_id                text        NOT NULL,
    period                 smallint    NOT NULL CHECK (period IN (1, 2)),
    price_cents            bigint      NOT NULL DEFAULT 0,
    active                 boolean     NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, tier_id) REFERENCES tiers (merchant_id, id)
);

-- The member's tier state (member_tier_state_t: days are dates on the merchant's calendar),
-- card, the tier they get now, statistics and segment. Tier ids are NULL for "no tier".
ALTER TABLE members
    ADD COLUMN birth_month        smallint GENERATED ALWAYS AS (extract(month FROM birthday)::smallint) STORED,
    ADD COLUMN birth_day          smallint GENERATED ALWAYS AS (extract(day FROM birthday)::smallint) STORED,
    ADD COLUMN tier_id            text,
    ADD COLUMN base_tier_id       text,
    ADD COLUMN express_tier_id    text,
    ADD COLUMN period_value       bigint   NOT NULL DEFAULT 0 CHECK (period_value >= 0),
    ADD COLUMN period_seq         int      NOT NULL DEFAULT 0,
    ADD COLUMN period_start       date,
    ADD COLUMN period_end         date,    -- exclusive; NULL = no end
    ADD COLUMN card_kind          smallint NOT NULL DEFAULT 0, -- 0 none, 3 PAID, 4 INTERNAL
    ADD COLUMN card_tier_id       text,
    ADD COLUMN card_plan_id       text,
    ADD COLUMN card_valid_from    date,
    ADD COLUMN card_valid_to      date,    -- inclusive; NULL = until removed
    ADD COLUMN card_reason        text     NOT NULL DEFAULT '',
    ADD COLUMN effective_tier_id  text,
    ADD COLUMN effective_kind     smallint NOT NULL DEFAULT 1, -- MemberCardKind
    ADD COLUMN order_count        bigint   NOT NULL DEFAULT 0,
    ADD COLUMN total_spend_cents  bigint   NOT NULL DEFAULT 0,
    ADD COLUMN total_growth       bigint   NOT NULL DEFAULT 0,
    ADD COLUMN first_order_at     timestamptz,
    ADD COLUMN last_order_at      timestamptz,
    ADD COLUMN months_with_purchases int   NOT NULL DEFAULT 0,
    ADD COLUMN segment            smallint NOT NULL DEFAULT 1, -- MemberSegment
    ADD COLUMN segment_since      timestamptz NOT NULL DEFAULT now(),
    -- When the tier state or card next needs the maintenance (a period end or card end at the
    -- merchant's midnight), and when the segment may next change with time alone.
    ADD COLUMN tier_due_at        timestamptz,
    ADD COLUMN segment_due_at     timestamptz,
    ADD COLUMN maintenance_due_at timestamptz GENERATED ALWAYS AS (least(tier_due_at, segment_due_at)) STORED;

-- Members created before this migration: evaluate their segment on the next maintenance run.
UPDATE members SET segment_due_at = now();

-- Listing (member_store_list): registration order within each filter, so that a filtered page
-- is an index range scan, newest or oldest first. Other filters refine one of these.
CREATE INDEX members_by_created ON members (merchant_id, created_at, id);
CREATE INDEX members_by_segment ON members (merchant_id, segment, created_at, id);
CREATE INDEX members_by_tier ON members (merchant_id, effective_tier_id, created_at, id);
CREATE INDEX members_by_kind ON members (merchant_id, effective_kind, created_at, id);
CREATE INDEX members_by_birthday ON members (merchant_id, birth_month, created_at, id);
CREATE INDEX members_by_tag ON members USING gin (tags);
-- Maintenance: the timer across merchants, RunTierMaintenance within one.
CREATE INDEX members_due ON members (maintenance_due_at) WHERE maintenance_due_at IS NOT NULL;
CREATE INDEX members_due_by_merchant ON members (merchant_id, maintenance_due_at)
    WHERE maintenance_due_at IS NOT NULL;

-- Orders recorded for tiers and statistics: idempotent per (merchant, order_id); returns
-- update the returned_* figures.
CREATE TABLE orders (
    merchant_id            text        NOT NULL,
    order_id               text        NOT NULL,
    member_id              text        NOT NULL,
    spend_cents            bigint      NOT NULL CHECK (spend_cents >= 0),
    growth_delta           bigint      NOT NULL CHECK (growth_delta >= 0),
    returned_spend_cents   bigint      NOT NULL DEFAULT 0 CHECK (returned_spend_cents BETWEEN 0 AND spend_cents),
    returned_growth        bigint      NOT NULL DEFAULT 0 CHECK (returned_growth BETWEEN 0 AND growth_delta),
    fully_returned         boolean     NOT NULL DEFAULT false,
    period_seq             int         NOT NULL,
    ordered_at             timestamptz NOT NULL,
    local_month            date        NOT NULL, -- first day of the month on the merchant's calendar
    -- The outcome, replayed when the same order is recorded again.
    old_tier_id            text,
    new_tier_id            text,
    reason                 smallint    NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, order_id)
);
CREATE INDEX orders_by_member ON orders (merchant_id, member_id, ordered_at);

-- Months with purchases: the number of orders (not fully returned) per member and month.
CREATE TABLE order_months (
    merchant_id            text        NOT NULL,
    member_id              text        NOT NULL,
    month                  date        NOT NULL,
    orders                 int         NOT NULL CHECK (orders >= 0),
    PRIMARY KEY (merchant_id, member_id, month)
);

-- PAID cards bought: idempotent per (merchant, order_id).
CREATE TABLE card_purchases (
    merchant_id            text        NOT NULL,
    order_id               text        NOT NULL,
    member_id              text        NOT NULL,
    plan_id                text        NOT NULL,
    quantity               int         NOT NULL,
    valid_from             date        NOT NULL,
    valid_to               date        NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, order_id)
);

CREATE TABLE tier_history (
    merchant_id            text        NOT NULL,
    member_id              text        NOT NULL,
    -- Order of the changes: a member's changes are made under its row lock, so seq follows
    -- them exactly (ids within one millisecond would not).
    seq                    bigint      GENERATED ALWAYS AS IDENTITY,
    id                     text        NOT NULL,
    from_tier_id           text,
    to_tier_id             text,
    earned_tier_id         text,
    reason                 smallint    NOT NULL,
    card_kind              smallint    NOT NULL,
    note                   text        NOT NULL DEFAULT '',
    order_id               text        NOT NULL DEFAULT '',
    period_value           bigint      NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, member_id, seq)
);

-- Counters behind CountMembers, kept in the transaction of every change so that counts are
-- O(1) at any size: dim 0 = all members (key ''), 1 = segment, 2 = tier id ('' = none),
-- 3 = card kind. Spread over 8 shards per key (by member id) so that concurrent changes of
-- different members rarely wait for each other; a count is the sum of its shards.
CREATE TABLE counts (
    merchant_id            text        NOT NULL,
    dim                    smallint    NOT NULL,
    key                    text        NOT NULL,
    shard                  smallint    NOT NULL,
    n                      bigint      NOT NULL,
    PRIMARY KEY (merchant_id, dim, key, shard)
);

-- Members that existed before this migration enter the counters.
INSERT INTO counts (merchant_id, dim, key, shard, n)
SELECT merchant_id, d.dim, d.key, 0, count(*)
FROM members,
     LATERAL (VALUES (0::smallint, ''), (1::smallint, segment::text), (2::smallint, ''),
                     (3::smallint, effective_kind::text)) AS d(dim, key)
GROUP BY merchant_id, d.dim, d.key;

INSERT INTO settings (merchant_id) SELECT DISTINCT merchant_id FROM members;

CREATE TABLE import_batches (
    merchant_id            text        NOT NULL,
    batch_id               text        NOT NULL,
    request_hash           bytea       NOT NULL,
    response               bytea,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, batch_id)
);
