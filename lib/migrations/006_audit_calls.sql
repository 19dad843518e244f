-- Each audit row names the call it belongs to (call_id: the id of the call's CALL row, which
-- names itself), so that a listing (AuditService.ListAuditLog) puts every changed row under
-- its call even when calls of one merchant run concurrently. lib/audit.c sets the call's id
-- as loyalty.audit_call with the other settings; rows recorded before this have none.
ALTER TABLE audit_log ADD COLUMN call_id bigint;
CREATE INDEX audit_log_merchant_call ON audit_log (merchant_id, call_id);

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
                   ' request_id, table_name, op, before, after, call_id)'
                   ' VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', TG_TABLE_SCHEMA)
        USING current_setting('loyalty.audit_merchant', true),
              current_setting('loyalty.audit_credential', true),
              current_setting('loyalty.audit_rpc', true),
              current_setting('loyalty.audit_idempotency_key', true),
              current_setting('loyalty.audit_request_id', true),
              TG_TABLE_NAME, TG_OP, b, a,
              nullif(current_setting('loyalty.audit_call', true), '')::bigint;
    RETURN NULL;
END
$$;
