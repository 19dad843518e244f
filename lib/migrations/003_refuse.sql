-- refuse(reason): a statement's own refusal. A write that must touch a given number of rows checks
-- it in SQL and calls refuse() otherwise, so that PostgreSQL itself fails the statement (SQLSTATE
-- LY001, the message is the reason) and the transaction cannot commit even when its COMMIT travels
-- in the same round trip as the write (lib/db.h, db_exec_deferred).
CREATE FUNCTION refuse(reason text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'LY001', MESSAGE = reason;
END
$$;
