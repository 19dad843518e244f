-- The steps of a saga live in its own row (issue 16, "rows and bytes"): one array of saga_step
-- written with the writes the saga does anyway, instead of a saga_steps row per participant call
-- and an update of it when the call returns. Times are unix seconds. A saga written before this
-- migration has steps NULL: its steps are still its saga_steps rows, read as before, and its next
-- write moves them all into the array (saga_steps then no longer counts for it). The retention
-- job empties the array (and drops any saga_steps rows left) of sagas finished long ago.
-- A gateway older than this migration reads steps from saga_steps only: it must not drive sagas
-- next to one that writes the array (stop the old replicas before the new ones start).
CREATE TYPE saga_step AS (
    name          text,
    seq           integer,
    direction     smallint,
    state         smallint,
    attempts      integer,
    response      bytea,    -- the participant's packed response once DONE
    error_code    smallint,
    error_reason  text,     -- NULL for ''
    error_message text,     -- NULL for ''
    started_at    bigint,
    finished_at   bigint    -- NULL while STARTED
);
ALTER TABLE sagas ADD COLUMN steps saga_step[];
