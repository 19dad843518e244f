-- Member profiles (docs/domain.md#members-and-tiers). Keyed by merchant first (docs/architecture.md#scale-out);
-- phone, e-mail and the caller's external id are unique within a merchant when present.
CREATE TABLE members (
    merchant_id          text        NOT NULL,
    id                   text        NOT NULL,
    external_id          text,
    name                 text        NOT NULL,
    phone                text,
    email                text,
    birthday             date,
    gender               smallint    NOT NULL DEFAULT 0 CHECK (gender BETWEEN 0 AND 3),
    address_line1        text        NOT NULL DEFAULT '',
    address_line2        text        NOT NULL DEFAULT '',
    address_city         text        NOT NULL DEFAULT '',
    address_region       text        NOT NULL DEFAULT '',
    address_postal_code  text        NOT NULL DEFAULT '',
    address_country_code text        NOT NULL DEFAULT '',
    has_address          boolean     NOT NULL DEFAULT false,
    occupation           text        NOT NULL DEFAULT '',
    interests            text[]      NOT NULL DEFAULT '{}',
    custom_attributes    jsonb       NOT NULL DEFAULT '{}',
    tags                 text[]      NOT NULL DEFAULT '{}',
    version              bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

CREATE UNIQUE INDEX members_phone_key ON members (merchant_id, phone) WHERE phone IS NOT NULL;
CREATE UNIQUE INDEX members_email_key ON members (merchant_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX members_external_id_key ON members (merchant_id, external_id)
    WHERE external_id IS NOT NULL;
