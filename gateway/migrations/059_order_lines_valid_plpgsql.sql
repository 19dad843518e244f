-- orders_lines_valid runs on every write of an order (the checkout's insert, each refund). As a
-- LANGUAGE sql function with a FROM clause it cannot be inlined, so PostgreSQL parsed and planned
-- its body again in every statement that wrote an order (about 0.1 ms each, bench/README.md).
-- PL/pgSQL compiles it once per session. Same answer: a line whose refunded_quantity is not
-- within [0, quantity] fails; NULLs pass, as bool_and ignored them; no lines pass. The loop
-- variable is a record so that the body resolves no type name through the caller's search_path.
CREATE OR REPLACE FUNCTION order_lines_valid(lines order_line[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    l record;
BEGIN
    FOREACH l IN ARRAY coalesce(lines, '{}') LOOP
        IF NOT (l.refunded_quantity >= 0 AND l.refunded_quantity <= l.quantity) THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
