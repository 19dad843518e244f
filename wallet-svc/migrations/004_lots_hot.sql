-- A lot's "has money available" as a stored column, so that holding and spending from a lot
-- update it in place. The partial indexes of lots over spendable and lapsing lots named
-- debited_cents and held_cents in their predicates, and PostgreSQL counts a predicate's columns
-- as indexed: every hold, capture or release of a lot wrote a new row version elsewhere plus an
-- entry in each index (about 600 bytes of WAL). Over has_available, which changes only when a
-- lot is emptied or refilled, such an update stays on its page (HOT; fillfactor 90 leaves the
-- room) and writes about 170. The indexes keep exactly the same rows.
ALTER TABLE lots ADD COLUMN has_available boolean
    GENERATED ALWAYS AS (debited_cents + held_cents < credited_cents) STORED;
ALTER TABLE lots SET (fillfactor = 90);
DROP INDEX lots_spendable;
DROP INDEX lots_lapsing;
DROP INDEX lots_lapsing_all;
CREATE INDEX lots_spendable ON lots (merchant_id, member_id, expires_at, code, id)
    WHERE has_available;
CREATE INDEX lots_lapsing ON lots (merchant_id, expires_at)
    WHERE expires_at IS NOT NULL AND has_available;
CREATE INDEX lots_lapsing_all ON lots (expires_at)
    WHERE expires_at IS NOT NULL AND has_available;
