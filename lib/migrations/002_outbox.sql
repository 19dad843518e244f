-- Transactional outbox (issue 9): domain events and notifications are inserted in the same
-- transaction as the change they describe, then published to a Redis stream by the runtime's
-- publisher, so an event is never lost when Redis is down and never published for a change that
-- rolled back. Rows are kept a while after publication for audits and replays.
CREATE TABLE outbox (
    merchant_id  text        NOT NULL,
    id           text        NOT NULL,
    stream       text        NOT NULL,
    type         text        NOT NULL,
    subject_id   text        NOT NULL DEFAULT '',
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
