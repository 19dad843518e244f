-- The audit trail keyed by merchant like every other table (docs/architecture.md#distributing-by-merchant):
-- a distributed PostgreSQL places each merchant's rows on one node only when the primary key
-- includes the distribution column.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey, ADD PRIMARY KEY (merchant_id, id);
