-- 051 indexed sagas by updated_at, which every write of the log changes: no saga update could be
-- HOT any more (bench/README.md, "gateway checkout"). The retention job finds its sagas by
-- created_at instead, which never changes, and marks the ones it has done so that it never
-- scans them again; the columns of this index change only when a saga finishes.
ALTER TABLE sagas ADD COLUMN steps_dropped boolean NOT NULL DEFAULT false;
DROP INDEX sagas_finished;
CREATE INDEX sagas_steps_to_drop ON sagas (created_at) WHERE state IN (4, 6) AND NOT steps_dropped;
