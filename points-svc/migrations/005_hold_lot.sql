-- A hold that took all its points from one lot names that lot itself (lot_id; lot_restored
-- counts what reversals gave back to it): no hold_lots row. hold_lots keeps the shares of
-- holds that took from several lots.
ALTER TABLE holds ADD COLUMN lot_id text, ADD COLUMN lot_restored bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT holds_lot_restored CHECK (lot_restored >= 0 AND lot_restored <= points
        AND (lot_id IS NOT NULL OR lot_restored = 0));

-- Existing holds with one share move it onto the hold.
WITH one AS (
    SELECT merchant_id, hold_id, min(lot_id) AS lot_id, sum(points) AS points,
        sum(restored) AS restored
    FROM hold_lots GROUP BY merchant_id, hold_id HAVING count(*) = 1)
UPDATE holds h SET lot_id = one.lot_id, lot_restored = one.restored
FROM one WHERE h.merchant_id = one.merchant_id AND h.id = one.hold_id AND h.points = one.points;
DELETE FROM hold_lots hl USING holds h
WHERE h.merchant_id = hl.merchant_id AND h.id = hl.hold_id AND h.lot_id IS NOT NULL;
