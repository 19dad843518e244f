-- checkout_monolith_schema.sql -- the "monolith limit" of bench/README.md "gateway checkout":
-- the rows one checkout writes across the suite, as tables of one database, so that pgbench can
-- write them in a single transaction per checkout (bench/checkout_monolith.sql). 1,000 members
-- with plenty of points and wallet money; wallet merchant accounts sharded 16 ways as
-- wallet-svc shards them.
DROP SCHEMA IF EXISTS monolith CASCADE;
CREATE SCHEMA monolith;
SET search_path = monolith;

CREATE TABLE sagas (
    id         bigserial PRIMARY KEY,
    order_id   text NOT NULL,
    member_id  integer NOT NULL,
    state      smallint NOT NULL,
    request    bytea NOT NULL,
    context    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE promo_usages (
    order_id     text PRIMARY KEY,
    promotion_id integer NOT NULL,
    member_id    integer NOT NULL,
    discount     bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE points_accounts (
    member_id  integer PRIMARY KEY,
    available  bigint NOT NULL,
    growth     bigint NOT NULL DEFAULT 0,
    lifetime   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE points_lots (
    id         bigserial PRIMARY KEY,
    member_id  integer NOT NULL,
    reference  text NOT NULL,
    points     bigint NOT NULL,
    remaining  bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_lots_member ON points_lots (member_id, id);
CREATE TABLE points_history (
    id         bigserial PRIMARY KEY,
    member_id  integer NOT NULL,
    kind       smallint NOT NULL,
    delta      bigint NOT NULL,
    reference  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_history_member ON points_history (member_id, id);
CREATE TABLE wallet_accounts (
    member_id integer PRIMARY KEY,
    balance   bigint NOT NULL
);
CREATE TABLE merchant_accounts (
    shard   integer PRIMARY KEY,
    balance bigint NOT NULL
);
CREATE TABLE wallet_transfers (
    id         bigserial PRIMARY KEY,
    reference  text NOT NULL,
    amount     bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE wallet_postings (
    transfer_id bigint NOT NULL,
    account     text NOT NULL,
    amount      bigint NOT NULL
);
CREATE INDEX wallet_postings_transfer ON wallet_postings (transfer_id);
CREATE TABLE member_stats (
    member_id     integer PRIMARY KEY,
    order_count   bigint NOT NULL DEFAULT 0,
    total_spend   bigint NOT NULL DEFAULT 0,
    total_growth  bigint NOT NULL DEFAULT 0,
    last_order_at timestamptz
);
CREATE TABLE referral_rewards (
    id          bigserial PRIMARY KEY,
    order_id    text NOT NULL,
    beneficiary integer NOT NULL,
    level       integer NOT NULL,
    points      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, level)
);

INSERT INTO points_accounts (member_id, available) SELECT g, 10000000 FROM generate_series(1, 1000) g;
INSERT INTO wallet_accounts (member_id, balance) SELECT g, 100000000 FROM generate_series(1, 1000) g;
INSERT INTO member_stats (member_id) SELECT g FROM generate_series(1, 1000) g;
INSERT INTO merchant_accounts (shard, balance) SELECT g, 0 FROM generate_series(0, 15) g;
