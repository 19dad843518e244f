-- merchant_statements.sql -- run in a database the services used (pg_stat_statements loaded):
-- one line per statement that touches a table of the six schemas without filtering by
-- merchant_id, none when every one does (tests/pooler/soak_replicas.c runs it after its load;
-- docs/architecture.md#distributing-by-merchant). Filtering means `merchant_id = ...`,
-- `merchant_id IN ...`, `(merchant_id, ...) IN/= ...`, or an INSERT of a row with its merchant_id
-- (also after a WITH that only reads, such as the audit trail's settings).
-- Statements of the migrations (they begin with their comment) and the jobs' sweeps over every
-- merchant (listed below, with what they are) are not hot paths and are left out.
WITH sweeps (pattern, what) AS (VALUES
  ('FROM outbox WHERE published_at IS NULL', 'outbox publisher and its pending gauge'),
  ('^DELETE FROM (idempotency_keys|outbox) WHERE ctid IN', 'retention purges'),
  ('FROM sagas WHERE state IN', 'the gateway''s saga gauges'),
  ('FROM holds WHERE state = \S+ AND expires_at <=', 'expiry of holds'),
  ('FROM reservations WHERE status = \S+ AND expires_at <=', 'expiry of promo reservations'),
  ('FROM accounts WHERE next_due_at <=', 'settlement of accounts due'),
  ('FROM members WHERE maintenance_due_at <=', 'tier maintenance of members due'),
  ('FROM settings WHERE (rfm_computed_at|resegment_after)', 'segment recomputation of merchants'),
  ('FROM merchant_settings_pushes WHERE next_attempt_at <=', 'the gateway''s pushes of merchant settings'),
  ('FROM merchant_settings WHERE verified_at <=', 'the gateway''s verification of merchant settings')
),
service_tables AS (
  SELECT DISTINCT tablename FROM pg_tables
  WHERE schemaname IN ('member', 'points', 'wallet', 'referral', 'promo', 'gateway')
    AND tablename <> 'schema_migrations'
),
statements AS (
  SELECT DISTINCT btrim(regexp_replace(query, '\s+', ' ', 'g')) AS q
  FROM pg_stat_statements
  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
)
SELECT left(s.q, 300) FROM statements s
WHERE EXISTS (SELECT 1 FROM service_tables t
              WHERE s.q ~* ('\m(from|update|into|join)\s+(\w+\.)?' || t.tablename || '\M'))
  AND s.q !~* 'merchant_id\s*(=|IN\M)'
  AND s.q !~* '\(merchant_id,[^)]*\)\s*(=|IN\M)'
  AND s.q !~* '^(WITH \w+ AS \()?INSERT INTO \S+ (AS \w+ )?\(merchant_id'
  AND s.q !~* '^WITH \w+ AS \(SELECT [^;]*\) INSERT INTO \S+ \(merchant_id'
  AND s.q !~ '^--'
  AND NOT EXISTS (SELECT 1 FROM sweeps w WHERE s.q ~* w.pattern)
ORDER BY 1;
