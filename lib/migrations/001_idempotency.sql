-- Idempotency keys of mutating RPCs (docs/architecture.md#idempotency-keys), one table in every service schema. The row is
-- written in the same transaction as the change it protects, so a key is claimed exactly when
-- its change commits; the stored response is replayed to retries.
CREATE TABLE idempotency_keys (
    merchant_id  text        NOT NULL,
    key          text        NOT NULL,
    method       text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
