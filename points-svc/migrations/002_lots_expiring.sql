-- Spendable lots by expiry across a merchant's members (ListExpiringPoints), so that finding
-- who holds points expiring in a window reads only those lots.
CREATE INDEX lots_expiring ON lots (merchant_id, expires_at) WHERE status = 2 AND remaining > 0;
