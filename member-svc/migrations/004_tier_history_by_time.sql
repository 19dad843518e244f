-- Tier changes of a merchant by time (ListTierChanges for the tier-promotion campaign).
CREATE INDEX tier_history_by_time ON tier_history (merchant_id, created_at, id);
