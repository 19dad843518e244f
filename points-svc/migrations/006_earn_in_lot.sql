-- The claim of an earn's (source, reference) lives in the lot the earn made: earn_growth is the
-- growth the earn added (NULL: the lot is no earn's claim, e.g. an import or an adjustment).
-- earn_refs keeps the claims of earns that made no lot (no points).
ALTER TABLE lots ADD COLUMN earn_growth bigint;

-- Existing claims with a lot move into it.
UPDATE lots l SET earn_growth = r.growth
FROM earn_refs r
WHERE r.lot_id <> '' AND l.merchant_id = r.merchant_id AND l.id = r.lot_id
  AND l.source = r.source AND l.reference = r.reference;
DELETE FROM earn_refs r USING lots l
WHERE l.merchant_id = r.merchant_id AND l.id = r.lot_id AND l.earn_growth IS NOT NULL;
-- One earn per (source, reference), whichever table holds its claim (the writers check the
-- other table; this index settles two earns that race).
CREATE UNIQUE INDEX lots_earn_claim ON lots (merchant_id, source, reference)
    WHERE earn_growth IS NOT NULL;

-- An order reference's row keeps only its reversals: what it earned is its claim's, what it
-- redeemed its COMMITTED hold's (one at most: holds_live_reference). Rows with nothing else go.
DELETE FROM orders
WHERE reversed_bps = 0 AND clawed_points = 0 AND clawed_growth = 0 AND restored_points = 0;
ALTER TABLE orders DROP COLUMN earned_points, DROP COLUMN earned_growth, DROP COLUMN earn_lot_id,
    DROP COLUMN redeemed_points;
