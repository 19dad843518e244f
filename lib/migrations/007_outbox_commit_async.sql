-- Whether an outbox row's transaction committed without waiting for the disk (a saga step that
-- the gateway's own later commit makes durable: docs/architecture.md "Durability of saga
-- steps"). The publisher publishes such rows only once the WAL holding them is on disk, so a
-- database crash can never leave a published event whose change was lost. Filled by the
-- default: no writer names the column. IF NOT EXISTS: a database that ran this migration under its
-- first number (006) has the column already.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS commit_async boolean NOT NULL
    DEFAULT (current_setting('synchronous_commit') = 'off');
