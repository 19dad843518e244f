-- Relayed calls (Gateway.Relay, lib/rpc.h RPC_ON_BEHALF_OF_HEADER): a call the gateway relays
-- for an admin is recorded as that admin's (credential_id), and the credential it came through
-- (the gateway's service credential) is kept beside it. '' for a call made by credential_id
-- itself, and for every row recorded before this. lib/audit.c sets it as loyalty.audit_via
-- with the other settings, and the row trigger copies it like them.
ALTER TABLE audit_log ADD COLUMN via_credential_id text NOT NULL DEFAULT '';

CREATE OR REPLACE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
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
                   ' request_id, table_name, op, before, after, call_id, via_credential_id)'
                   ' VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', TG_TABLE_SCHEMA)
        USING current_setting('loyalty.audit_merchant', true),
              current_setting('loyalty.audit_credential', true),
              current_setting('loyalty.audit_rpc', true),
              current_setting('loyalty.audit_idempotency_key', true),
              current_setting('loyalty.audit_request_id', true),
              TG_TABLE_NAME, TG_OP, b, a,
              nullif(current_setting('loyalty.audit_call', true), '')::bigint,
              coalesce(current_setting('loyalty.audit_via', true), '');
    RETURN NULL;
END
$$;
