-- Campaigns (issue 9): each merchant's configuration per kind, and one row per member and
-- period that makes every reward and message happen at most once, whatever the number of runs
-- or of gateway replicas running them.
CREATE TABLE campaigns (
    merchant_id text        NOT NULL,
    kind        smallint    NOT NULL,
    enabled     boolean     NOT NULL,
    config      bytea       NOT NULL, -- the packed loyalty.v1.Campaign as last set
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_run_at timestamptz,
    next_run_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, kind)
);
CREATE INDEX campaigns_due ON campaigns (next_run_at) WHERE enabled;

-- state CLAIMED: a runner holds the member until claimed_until (its rewards are issued with
-- idempotency keys, so a runner taking over after a crash issues nothing twice); DONE: rewarded
-- and the message written to the outbox in the same transaction.
CREATE TABLE campaign_deliveries (
    merchant_id      text        NOT NULL,
    kind             smallint    NOT NULL,
    period           text        NOT NULL,
    member_id        text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('CLAIMED', 'DONE')),
    claimed_until    timestamptz NOT NULL,
    points           bigint      NOT NULL DEFAULT 0,
    coupon_id        text        NOT NULL DEFAULT '',
    message_event_id text        NOT NULL DEFAULT '',
    skip_reason      text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    PRIMARY KEY (merchant_id, kind, period, member_id)
);
