-- The version of the points balance member-svc keeps for its points_balance tag rules
-- (PointsBalance.version, carried by points-svc's points.earned and points.balance events and
-- passed by the gateway with RecordOrder/RecordReturn/RecordPointsBalance): a balance is taken
-- only when newer than the one kept, so events and calls may arrive in any order or twice.
ALTER TABLE members ADD COLUMN points_version bigint NOT NULL DEFAULT 0;
