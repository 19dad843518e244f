-- merchant_keys.sql -- the rules that let a distributed PostgreSQL (Citus) place each merchant's
-- rows on one node, read from the catalog of a database holding every service's schema: one
-- line per violation, none when the schema is ready (tests/distribution/check_merchant_keys).
-- schema_migrations is each service's own bookkeeping (no merchant's data): a local table.
WITH svc_tables AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND n.nspname IN ('member', 'points', 'wallet', 'referral', 'promo', 'gateway')
    AND c.relname <> 'schema_migrations'
),
merchant_col AS (
  SELECT t.oid, a.attnum, a.attnotnull
  FROM svc_tables t JOIN pg_attribute a ON a.attrelid = t.oid
  WHERE a.attname = 'merchant_id' AND NOT a.attisdropped
)
SELECT format('%s.%s: no merchant_id column', t.schema, t.name)
FROM svc_tables t WHERE NOT EXISTS (SELECT 1 FROM merchant_col m WHERE m.oid = t.oid)
UNION ALL
SELECT format('%s.%s: merchant_id may be NULL', t.schema, t.name)
FROM svc_tables t JOIN merchant_col m ON m.oid = t.oid WHERE NOT m.attnotnull
UNION ALL
SELECT format('%s.%s: %s %s does not include merchant_id', t.schema, t.name,
              CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint'
                               WHEN 'f' THEN 'foreign key' ELSE 'exclusion constraint' END,
              con.conname)
FROM svc_tables t JOIN pg_constraint con ON con.conrelid = t.oid
WHERE con.contype IN ('p', 'u', 'f', 'x')
  AND NOT EXISTS (SELECT 1 FROM merchant_col m WHERE m.oid = t.oid AND m.attnum = ANY (con.conkey))
UNION ALL
SELECT format('%s.%s: foreign key %s does not pair merchant_id with the referenced merchant_id',
              t.schema, t.name, con.conname)
FROM svc_tables t JOIN pg_constraint con ON con.conrelid = t.oid
JOIN merchant_col m ON m.oid = t.oid
WHERE con.contype = 'f' AND m.attnum = ANY (con.conkey)
  AND NOT EXISTS (
    SELECT 1 FROM generate_subscripts(con.conkey, 1) i
    JOIN pg_attribute ref ON ref.attrelid = con.confrelid AND ref.attnum = con.confkey[i]
    WHERE con.conkey[i] = m.attnum AND ref.attname = 'merchant_id')
UNION ALL
SELECT format('%s.%s: unique index %s does not include merchant_id', t.schema, t.name,
              ic.relname)
FROM svc_tables t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indisunique
  AND NOT EXISTS (SELECT 1 FROM merchant_col m WHERE m.oid = t.oid AND m.attnum = ANY (i.indkey))
UNION ALL
SELECT format('%s.%s: no primary key (a distributed table needs one with merchant_id)',
              t.schema, t.name)
FROM svc_tables t
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conrelid = t.oid AND con.contype = 'p')
ORDER BY 1;
