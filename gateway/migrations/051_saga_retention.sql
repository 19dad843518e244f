-- Finished sagas by age, so that the retention job finds the step logs it may drop without
-- scanning the sagas in flight.
CREATE INDEX sagas_finished ON sagas (updated_at) WHERE state IN (4, 6);
