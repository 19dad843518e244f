-- A completed checkout's order lines live in its orders row (issue 16, "rows and bytes"): one
-- array of order_line written with the order, instead of an order_lines row per cart line; a
-- refund updates the order's totals and its lines in that one row. Orders written before this
-- migration have lines NULL and keep their order_lines rows, read and updated as before.
CREATE TYPE order_line AS (
    line_id            text,
    kind               smallint,
    quantity           bigint,
    final_amount_cents bigint,
    refunded_quantity  bigint,
    refunded_cents     bigint
);

-- What order_lines' CHECK said of each line.
CREATE FUNCTION order_lines_valid(lines order_line[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bool_and(l.refunded_quantity >= 0 AND l.refunded_quantity <= l.quantity), true)
    FROM unnest(lines) AS l
$$;

ALTER TABLE orders ADD COLUMN lines order_line[],
    ADD CONSTRAINT orders_lines_valid CHECK (order_lines_valid(lines));
