-- The merchant settings record (Gateway/UpdateMerchantSettings; docs/architecture.md#merchant-settings):
-- time zone, currency and locale, set once, and per service that keeps a copy of the time zone how
-- far the pushes of the record have got.
CREATE TABLE merchant_settings (
    merchant_id text        NOT NULL PRIMARY KEY,
    time_zone   text        NOT NULL DEFAULT 'UTC',
    currency    text        NOT NULL DEFAULT '',
    locale      text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- when the job last read every service's copy back (MERCHANT_SETTINGS_VERIFY_S)
    verified_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_settings_verify ON merchant_settings (verified_at);

-- A push is due while applied_version < target_version (the version that last changed the time
-- zone) or resync_pending (a verification found the service's copy changed behind the record's
-- back; each one counts up resync, which is part of the push's idempotency key). In sync:
-- next_attempt_at is 'infinity'. A job that pushes holds lease_until (the pushes are calls,
-- never made inside a transaction).
CREATE TABLE merchant_settings_pushes (
    merchant_id     text        NOT NULL,
    service         text        NOT NULL,
    target_version  bigint      NOT NULL,
    applied_version bigint      NOT NULL DEFAULT 0,
    resync          integer     NOT NULL DEFAULT 0,
    resync_pending  boolean     NOT NULL DEFAULT false,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz NOT NULL DEFAULT '-infinity',
    applied_at      timestamptz,
    PRIMARY KEY (merchant_id, service)
);
CREATE INDEX merchant_settings_pushes_due ON merchant_settings_pushes (next_attempt_at);

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON merchant_settings
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
