-- An entry that moves points of one lot names that lot itself (lot_id, lot_points): no
-- entry_lots row. entry_lots keeps the shares of entries that touch several lots. The sum over
-- a lot, of entry_lots and of entries naming it, still equals its remaining (VerifyLedger).
ALTER TABLE entries ADD COLUMN lot_id text, ADD COLUMN lot_points bigint,
    ADD CONSTRAINT entries_lot_named CHECK ((lot_id IS NULL) = (lot_points IS NULL));

-- Existing entries with one share move it onto the entry.
WITH one AS (
    SELECT merchant_id, entry_id, min(lot_id) AS lot_id, sum(points) AS points
    FROM entry_lots GROUP BY merchant_id, entry_id HAVING count(*) = 1)
UPDATE entries e SET lot_id = one.lot_id, lot_points = one.points
FROM one WHERE e.merchant_id = one.merchant_id AND e.id = one.entry_id;
DELETE FROM entry_lots el USING entries e
WHERE e.merchant_id = el.merchant_id AND e.id = el.entry_id AND e.lot_id IS NOT NULL;
