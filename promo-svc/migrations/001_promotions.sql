-- Promotions, promo codes, coupons, usage counters and checkout reservations
-- (docs/domain.md#promotions-and-coupons). Every key starts with merchant_id (docs/architecture.md#scale-out). Instants
-- are unix seconds (bigint), as in the API; enum columns hold the proto enum numbers.

-- Per-merchant rules: the calendar of limit periods and what a full refund gives back.
CREATE TABLE settings (
    merchant_id             text    NOT NULL PRIMARY KEY,
    time_zone               text    NOT NULL DEFAULT 'UTC',
    refund_restores_usage   boolean NOT NULL DEFAULT true,
    refund_restores_coupons boolean NOT NULL DEFAULT true,
    updated_at              bigint  NOT NULL
);

-- The definition (rule, conditions, limits) is the packed loyalty.v1.Promotion message; the
-- columns beside it are what queries filter and sort on.
CREATE TABLE promotions (
    merchant_id       text     NOT NULL,
    id                text     NOT NULL,
    status            smallint NOT NULL CHECK (status IN (1, 2)),
    trigger           smallint NOT NULL CHECK (trigger IN (1, 2)),
    code_kind         smallint NOT NULL DEFAULT 0,
    code              text,
    priority          integer  NOT NULL,
    start_at          bigint   NOT NULL DEFAULT 0,
    end_at            bigint   NOT NULL DEFAULT 0,
    definition        bytea    NOT NULL,
    unique_code_count bigint   NOT NULL DEFAULT 0,
    version           bigint   NOT NULL DEFAULT 1,
    created_at        bigint   NOT NULL,
    updated_at        bigint   NOT NULL,
    PRIMARY KEY (merchant_id, id)
);

CREATE INDEX promotions_active ON promotions (merchant_id, priority DESC, id) WHERE status = 1;

-- Every promo code, shared or unique, upper case. A shared code stays AVAILABLE; a unique code
-- goes AVAILABLE -> RESERVED -> USED with the checkout that holds it.
CREATE TABLE codes (
    merchant_id  text     NOT NULL,
    code         text     NOT NULL,
    promotion_id text     NOT NULL,
    kind         smallint NOT NULL CHECK (kind IN (1, 2)),
    batch_id     text,
    status       smallint NOT NULL DEFAULT 1 CHECK (status IN (1, 2, 3)),
    checkout_id  text,
    created_at   bigint   NOT NULL,
    PRIMARY KEY (merchant_id, code),
    FOREIGN KEY (merchant_id, promotion_id) REFERENCES promotions (merchant_id, id)
);

CREATE INDEX codes_by_promotion ON codes (merchant_id, promotion_id, code);
CREATE INDEX codes_by_checkout ON codes (merchant_id, checkout_id) WHERE checkout_id IS NOT NULL;

-- Uses and discount given per promotion, limit scope and period: scope_key is 'T' (total),
-- 'M:<member>' or 'S:<store>'; period_key is 'L' (lifetime), 'D<date>', 'W<iso week>' or
-- 'M<month>' in the merchant's time zone. Only ever changed under a row lock.
CREATE TABLE usage_counters (
    merchant_id    text   NOT NULL,
    promotion_id   text   NOT NULL,
    scope_key      text   NOT NULL,
    period_key     text   NOT NULL,
    uses           bigint NOT NULL DEFAULT 0 CHECK (uses >= 0),
    discount_cents bigint NOT NULL DEFAULT 0 CHECK (discount_cents >= 0),
    PRIMARY KEY (merchant_id, promotion_id, scope_key, period_key)
);

CREATE TABLE coupon_templates (
    merchant_id        text     NOT NULL,
    id                 text     NOT NULL,
    name               text     NOT NULL,
    kind               smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    amount_off_cents   bigint   NOT NULL DEFAULT 0,
    percent_off_bps    bigint   NOT NULL DEFAULT 0,
    max_discount_cents bigint   NOT NULL DEFAULT 0,
    min_spend_cents    bigint   NOT NULL DEFAULT 0,
    valid_days         integer  NOT NULL DEFAULT 0,
    valid_from_at      bigint   NOT NULL DEFAULT 0,
    valid_until_at     bigint   NOT NULL DEFAULT 0,
    per_member_max     integer  NOT NULL DEFAULT 0,
    total_max          bigint   NOT NULL DEFAULT 0,
    issued_count       bigint   NOT NULL DEFAULT 0,
    active             boolean  NOT NULL DEFAULT true,
    created_at         bigint   NOT NULL,
    PRIMARY KEY (merchant_id, id),
    CHECK (total_max = 0 OR issued_count <= total_max)
);

-- Coupons held per template and member, for per_member_max (changed under a row lock).
CREATE TABLE template_holdings (
    merchant_id text   NOT NULL,
    template_id text   NOT NULL,
    member_id   text   NOT NULL,
    issued      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, template_id, member_id)
);

-- Issued coupons carry a copy of their template's terms. EXPIRED is derived from
-- valid_until_at, never stored: status is 1 AVAILABLE, 2 RESERVED or 3 USED.
CREATE TABLE coupons (
    merchant_id        text     NOT NULL,
    id                 text     NOT NULL,
    member_id          text     NOT NULL,
    template_id        text     NOT NULL,
    name               text     NOT NULL,
    kind               smallint NOT NULL,
    amount_off_cents   bigint   NOT NULL,
    percent_off_bps    bigint   NOT NULL,
    max_discount_cents bigint   NOT NULL,
    min_spend_cents    bigint   NOT NULL,
    source             smallint NOT NULL,
    status             smallint NOT NULL DEFAULT 1 CHECK (status IN (1, 2, 3)),
    valid_from_at      bigint   NOT NULL,
    valid_until_at     bigint   NOT NULL,
    issued_at          bigint   NOT NULL,
    used_at            bigint   NOT NULL DEFAULT 0,
    checkout_id        text,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, template_id) REFERENCES coupon_templates (merchant_id, id)
);

CREATE INDEX coupons_by_member ON coupons (merchant_id, member_id, id DESC);
CREATE INDEX coupons_by_checkout ON coupons (merchant_id, checkout_id)
    WHERE checkout_id IS NOT NULL;

-- One per checkout: status 1 RESERVED, 2 CONFIRMED, 3 RELEASED, 4 EXPIRED, 5 REFUNDED. The
-- quote is the packed loyalty.v1.PromoQuoteResult the reservation was taken for.
CREATE TABLE reservations (
    merchant_id      text     NOT NULL,
    checkout_id      text     NOT NULL,
    member_id        text     NOT NULL DEFAULT '',
    status           smallint NOT NULL CHECK (status BETWEEN 1 AND 5),
    expires_at       bigint   NOT NULL,
    order_id         text,
    quote            bytea,
    usage_restored   boolean  NOT NULL DEFAULT false,
    coupons_restored boolean  NOT NULL DEFAULT false,
    created_at       bigint   NOT NULL,
    updated_at       bigint   NOT NULL,
    PRIMARY KEY (merchant_id, checkout_id)
);

CREATE UNIQUE INDEX reservations_order_key ON reservations (merchant_id, order_id)
    WHERE order_id IS NOT NULL;
CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 1;
CREATE INDEX reservations_expiring_by_merchant ON reservations (merchant_id, expires_at)
    WHERE status = 1;

-- Exactly what a reservation added to each counter, so that releasing it takes back the same.
CREATE TABLE reservation_usages (
    merchant_id    text   NOT NULL,
    checkout_id    text   NOT NULL,
    promotion_id   text   NOT NULL,
    scope_key      text   NOT NULL,
    period_key     text   NOT NULL,
    uses           bigint NOT NULL,
    discount_cents bigint NOT NULL,
    PRIMARY KEY (merchant_id, checkout_id, promotion_id, scope_key, period_key)
);
