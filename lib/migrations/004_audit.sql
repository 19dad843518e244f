-- The audit trail of configuration changes (README "Audit trail"), one table per schema. The
-- runtime writes one CALL row for each audited call (lib/audit.c) and the audit triggers of the
-- service's configuration tables one row per changed row, with the fields that changed before
-- and after, all in the call's own transaction: a change and its record commit together. The
-- call's context comes from transaction-local settings (loyalty.audit_*), so a change made
-- outside an audited call (a job) is not recorded. Append-only: UPDATE, DELETE and TRUNCATE
-- are refused for every role but the owner, who alone could drop the triggers.
CREATE TABLE audit_log (
    id              bigserial   PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    merchant_id     text        NOT NULL,
    credential_id   text        NOT NULL,
    rpc             text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_id      text        NOT NULL,
    table_name      text,                 -- NULL on the CALL row
    op              text        NOT NULL, -- CALL, INSERT, UPDATE, DELETE
    before          jsonb,                -- the changed fields before (the row for DELETE)
    after           jsonb                 -- the changed fields after (the row for INSERT)
);
CREATE INDEX audit_log_merchant_at ON audit_log (merchant_id, at);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'LY001', MESSAGE = 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Row trigger of a configuration table: `WHEN (audit_active())` keeps it off every other path.
CREATE FUNCTION audit_active() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('loyalty.audit_rpc', true), '') <> ''
$$;

CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    n jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    b jsonb := o;
    a jsonb := n;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(t.k, o -> t.k), jsonb_object_agg(t.k, n -> t.k) INTO b, a
          FROM jsonb_object_keys(n) AS t(k)
         WHERE (o -> t.k) IS DISTINCT FROM (n -> t.k);
        IF b IS NULL THEN
            RETURN NULL; -- nothing changed
        END IF;
    END IF;
    EXECUTE format('INSERT INTO %I.audit_log (merchant_id, credential_id, rpc, idempotency_key,'
                   ' request_id, table_name, op, before, after)'
                   ' VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', TG_TABLE_SCHEMA)
        USING current_setting('loyalty.audit_merchant', true),
              current_setting('loyalty.audit_credential', true),
              current_setting('loyalty.audit_rpc', true),
              current_setting('loyalty.audit_idempotency_key', true),
              current_setting('loyalty.audit_request_id', true),
              TG_TABLE_NAME, TG_OP, b, a;
    RETURN NULL;
END
$$;
