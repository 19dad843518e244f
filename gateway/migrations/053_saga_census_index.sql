-- The gateway counts the sagas waiting for an operator at every recovery pass, for its metrics
-- (loyalty_sagas_needs_attention, docs/architecture.md#metrics); the unfinished ones are found
-- through sagas_due, these through this index instead of a read of every saga.
CREATE INDEX sagas_needs_attention ON sagas (created_at) WHERE state = 7;
