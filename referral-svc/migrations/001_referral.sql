-- Referral programme, tree and reward ledger (docs/domain.md#referral). Every key starts with the
-- merchant (docs/architecture.md#scale-out). States and enums are stored as the proto's numbers.

-- One programme per merchant; absent = disabled.
CREATE TABLE programs (
    merchant_id            text        NOT NULL,
    enabled                boolean     NOT NULL,
    levels                 smallint    NOT NULL CHECK (levels BETWEEN 1 AND 3),
    welcome_points         bigint      NOT NULL CHECK (welcome_points >= 0),
    purchase_hold_days     integer     NOT NULL CHECK (purchase_hold_days BETWEEN 0 AND 365),
    share_url_template     text        NOT NULL,
    share_message_template text        NOT NULL,
    version                bigint      NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id)
);

CREATE TABLE program_levels (
    merchant_id           text     NOT NULL,
    level                 smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    enabled               boolean  NOT NULL,
    registration_points   bigint   NOT NULL CHECK (registration_points >= 0),
    purchase_reward_kind  smallint NOT NULL CHECK (purchase_reward_kind BETWEEN 0 AND 2),
    purchase_fixed_points bigint   NOT NULL CHECK (purchase_fixed_points >= 0),
    purchase_bps          integer  NOT NULL CHECK (purchase_bps BETWEEN 0 AND 10000),
    purchase_cap_points   bigint   NOT NULL CHECK (purchase_cap_points >= 0),
    purchase_first_n      integer  NOT NULL CHECK (purchase_first_n >= 0),
    purchase_within_days  integer  NOT NULL CHECK (purchase_within_days >= 0),
    PRIMARY KEY (merchant_id, level)
);

-- A member known to the referral programme: its code, and its upline stored closure-style
-- (referrer, the referrer's referrer, the next one up) so that the upline is one row and each
-- level of a downline is one index range. root_id is the top of the member's tree: attaching
-- is only allowed to members without a downline, so it never changes for anyone else and a
-- cycle (the referrer's root is the referee) is found at any depth.
CREATE TABLE referral_members (
    merchant_id      text        NOT NULL,
    member_id        text        NOT NULL,
    code             text        NOT NULL,
    referrer_id      text,
    ancestor_2       text,
    ancestor_3       text,
    root_id          text        NOT NULL,
    attach_id        text,
    attached_at      timestamptz,
    purchase_count   bigint      NOT NULL DEFAULT 0,
    registration_ref text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, member_id),
    CHECK (referrer_id IS DISTINCT FROM member_id),
    CHECK ((referrer_id IS NULL) = (attach_id IS NULL) AND (attach_id IS NULL) = (attached_at IS NULL)),
    CHECK (ancestor_2 IS NULL OR referrer_id IS NOT NULL),
    CHECK (ancestor_3 IS NULL OR ancestor_2 IS NOT NULL)
);

CREATE UNIQUE INDEX referral_members_code_key ON referral_members (merchant_id, code);
CREATE INDEX referral_members_level1 ON referral_members (merchant_id, referrer_id, attach_id)
    WHERE referrer_id IS NOT NULL;
CREATE INDEX referral_members_level2 ON referral_members (merchant_id, ancestor_2, attach_id)
    WHERE ancestor_2 IS NOT NULL;
CREATE INDEX referral_members_level3 ON referral_members (merchant_id, ancestor_3, attach_id)
    WHERE ancestor_3 IS NOT NULL;

-- Counters per (member, level of its downline): members, and reward points from that level's
-- events and their reversed part. Kept in the transactions that attach, reward and reverse, so
-- counts are O(1) whatever the downline size.
CREATE TABLE downline_stats (
    merchant_id     text     NOT NULL,
    member_id       text     NOT NULL,
    level           smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    members         bigint   NOT NULL DEFAULT 0 CHECK (members >= 0),
    reward_points   bigint   NOT NULL DEFAULT 0 CHECK (reward_points >= 0),
    reversed_points bigint   NOT NULL DEFAULT 0 CHECK (reversed_points BETWEEN 0 AND reward_points),
    PRIMARY KEY (merchant_id, member_id, level)
);

-- One row per (event, reference): recorded once, even when no reward applies, so a retry
-- always returns the same rewards.
CREATE TABLE reward_events (
    merchant_id        text        NOT NULL,
    event              smallint    NOT NULL CHECK (event IN (1, 2)),
    reference          text        NOT NULL,
    member_id          text        NOT NULL,
    paid_cents         bigint      NOT NULL CHECK (paid_cents >= 0),
    purchase_number    bigint      NOT NULL DEFAULT 0,
    program_version    bigint      NOT NULL,
    reversed_share_bps integer     NOT NULL DEFAULT 0 CHECK (reversed_share_bps BETWEEN 0 AND 10000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, event, reference)
);

-- The reward ledger: at most one reward per (event, reference, beneficiary). The CHECKs are
-- the money invariants: nothing reversed beyond the points, nothing clawed back beyond what
-- was granted, nothing granted beyond the points.
CREATE TABLE rewards (
    merchant_id        text        NOT NULL,
    id                 text        NOT NULL,
    event              smallint    NOT NULL,
    reference          text        NOT NULL,
    source_member_id   text        NOT NULL,
    beneficiary_id     text        NOT NULL,
    level              smallint    NOT NULL CHECK (level BETWEEN 0 AND 3),
    rule               smallint    NOT NULL CHECK (rule BETWEEN 1 AND 4),
    points             bigint      NOT NULL CHECK (points > 0),
    base_cents         bigint      NOT NULL DEFAULT 0,
    rule_bps           integer     NOT NULL DEFAULT 0,
    capped             boolean     NOT NULL DEFAULT false,
    grant_now          boolean     NOT NULL,
    state              smallint    NOT NULL CHECK (state BETWEEN 1 AND 3),
    held_until         timestamptz,
    granted_points     bigint      NOT NULL DEFAULT 0,
    reversed_points    bigint      NOT NULL DEFAULT 0,
    clawed_back_points bigint      NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    granted_at         timestamptz,
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, event, reference, beneficiary_id),
    FOREIGN KEY (merchant_id, event, reference) REFERENCES reward_events,
    CHECK (reversed_points BETWEEN 0 AND points),
    CHECK (granted_points BETWEEN 0 AND points),
    CHECK (clawed_back_points BETWEEN 0 AND granted_points),
    CHECK (grant_now = (held_until IS NULL)),
    CHECK ((state = 2) = (granted_at IS NOT NULL))
);

CREATE INDEX rewards_held ON rewards (merchant_id, held_until, id) WHERE state = 1;
CREATE INDEX rewards_beneficiary ON rewards (merchant_id, beneficiary_id, id);
CREATE INDEX rewards_beneficiary_source ON rewards (merchant_id, beneficiary_id, source_member_id);

-- Every reversal of a reward: the ledger behind reversed_points and clawed_back_points.
CREATE TABLE reward_reversals (
    merchant_id     text        NOT NULL,
    id              text        NOT NULL,
    reward_id       text        NOT NULL,
    reversed_points bigint      NOT NULL CHECK (reversed_points > 0),
    clawback_points bigint      NOT NULL CHECK (clawback_points BETWEEN 0 AND reversed_points),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards
);
CREATE INDEX reward_reversals_reward ON reward_reversals (merchant_id, reward_id);
