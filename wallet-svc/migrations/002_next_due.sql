-- When a wallet next has something to settle: the earliest TTL of its pending holds and the
-- earliest expiry of its lots with money available, in unix seconds. It is kept on the member's
-- principal account row (the bonus row's copy is not maintained), which every operation locks
-- anyway, so that an operation learns whether it must settle the wallet without a query of its
-- own. Conservative: never later than the truth
-- (VerifyLedger checks it, NEXT_DUE), may be earlier; 0 = unknown (settle at the next touch),
-- 9223372036854775807 = nothing due.
ALTER TABLE accounts ADD COLUMN next_due_at bigint NOT NULL DEFAULT 0;
