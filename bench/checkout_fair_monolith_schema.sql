-- checkout_fair_monolith_schema.sql -- the tables of the "fair monolith" (bench/README.md
-- "gateway checkout", bench/checkout_fair_monolith.sql): a copy of every service table a
-- checkout writes, made from the services' own tables (LIKE ... INCLUDING ALL: same columns,
-- defaults, constraints and indexes; no rows), so that writing a checkout's rows here costs the
-- index and constraint work it costs the services. Needs the services' migrations applied
-- (bench/checkout_bench.sh runs them first). Merchant "fair", members m1..m1000 with an account,
-- a lot and plenty of points and wallet money, referral rows and downline statistics, the
-- wallet's 16 merchant shards.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS fair CASCADE;
CREATE SCHEMA fair;
CREATE SEQUENCE fair.checkouts;

CREATE TABLE fair.gateway_sagas (LIKE gateway.sagas INCLUDING ALL);
CREATE TABLE fair.gateway_orders (LIKE gateway.orders INCLUDING ALL);
CREATE TABLE fair.gateway_order_lines (LIKE gateway.order_lines INCLUDING ALL);
CREATE TABLE fair.gateway_outbox (LIKE gateway.outbox INCLUDING ALL);

CREATE TABLE fair.member_idempotency_keys (LIKE member.idempotency_keys INCLUDING ALL);
CREATE TABLE fair.member_members (LIKE member.members INCLUDING ALL);
CREATE TABLE fair.member_orders (LIKE member.orders INCLUDING ALL);
CREATE TABLE fair.member_order_months (LIKE member.order_months INCLUDING ALL);

CREATE TABLE fair.points_idempotency_keys (LIKE points.idempotency_keys INCLUDING ALL);
CREATE TABLE fair.points_accounts (LIKE points.accounts INCLUDING ALL);
CREATE TABLE fair.points_holds (LIKE points.holds INCLUDING ALL);
CREATE TABLE fair.points_hold_lots (LIKE points.hold_lots INCLUDING ALL);
CREATE TABLE fair.points_lots (LIKE points.lots INCLUDING ALL);
CREATE TABLE fair.points_entries (LIKE points.entries INCLUDING ALL);
CREATE TABLE fair.points_entry_lots (LIKE points.entry_lots INCLUDING ALL);
CREATE TABLE fair.points_earn_refs (LIKE points.earn_refs INCLUDING ALL);
CREATE TABLE fair.points_orders (LIKE points.orders INCLUDING ALL);
CREATE TABLE fair.points_growth_entries (LIKE points.growth_entries INCLUDING ALL);
CREATE TABLE fair.points_outbox (LIKE points.outbox INCLUDING ALL);

CREATE TABLE fair.promo_idempotency_keys (LIKE promo.idempotency_keys INCLUDING ALL);
CREATE TABLE fair.promo_reservations (LIKE promo.reservations INCLUDING ALL);

CREATE TABLE fair.referral_idempotency_keys (LIKE referral.idempotency_keys INCLUDING ALL);
CREATE TABLE fair.referral_members (LIKE referral.referral_members INCLUDING ALL);
CREATE TABLE fair.referral_downline_stats (LIKE referral.downline_stats INCLUDING ALL);
CREATE TABLE fair.referral_reward_events (LIKE referral.reward_events INCLUDING ALL);
CREATE TABLE fair.referral_rewards (LIKE referral.rewards INCLUDING ALL);

CREATE TABLE fair.wallet_idempotency_keys (LIKE wallet.idempotency_keys INCLUDING ALL);
CREATE TABLE fair.wallet_accounts (LIKE wallet.accounts INCLUDING ALL);
CREATE TABLE fair.wallet_lots (LIKE wallet.lots INCLUDING ALL);
-- LIKE copies no storage parameters: the fill factor that keeps a lot's updates on its page.
ALTER TABLE fair.wallet_lots SET (fillfactor = 90);
CREATE TABLE fair.wallet_holds (LIKE wallet.holds INCLUDING ALL);
CREATE TABLE fair.wallet_transfers (LIKE wallet.transfers INCLUDING ALL);
CREATE TABLE fair.wallet_postings (LIKE wallet.postings INCLUDING ALL);
CREATE TABLE fair.wallet_spends (LIKE wallet.spends INCLUDING ALL);
CREATE TABLE fair.wallet_spend_lots (LIKE wallet.spend_lots INCLUDING ALL);

-- The members and what a checkout updates of theirs.
INSERT INTO fair.member_members (merchant_id, id, name, order_count, total_spend_cents, total_growth)
  SELECT 'fair', 'm' || i, 'Fair buyer', 0, 0, 0 FROM generate_series(1, 1000) i;
INSERT INTO fair.points_accounts (merchant_id, member_id, lots_points, lifetime_earned)
  SELECT 'fair', 'm' || i, 1000000000, 1000000000 FROM generate_series(1, 1000) i;
INSERT INTO fair.points_lots (merchant_id, id, member_id, source, reference, points, remaining,
                              status, earned_at, available_at)
  SELECT 'fair', 'lot-m' || i, 'm' || i, 2, 'opening', 1000000000, 1000000000, 2, now(), now()
  FROM generate_series(1, 1000) i;
INSERT INTO fair.referral_members (merchant_id, member_id, code, root_id, purchase_count)
  SELECT 'fair', 'm' || i, 'code-' || i, 'm1', 0 FROM generate_series(1, 1000) i;
INSERT INTO fair.referral_downline_stats (merchant_id, member_id, level, members, reward_points,
                                          reversed_points)
  SELECT 'fair', 'm' || i, l, 1, 0, 0 FROM generate_series(1, 1000) i, generate_series(1, 3) l;
INSERT INTO fair.wallet_accounts (merchant_id, member_id, code, shard, debits_pending,
                                  debits_posted, credits_pending, credits_posted)
  SELECT 'fair', 'm' || i, 1, 0, 0, 0, 0, 100000000000 FROM generate_series(1, 1000) i;
INSERT INTO fair.wallet_accounts (merchant_id, member_id, code, shard, debits_pending,
                                  debits_posted, credits_pending, credits_posted)
  SELECT 'fair', '', 12, s, 0, 0, 0, 0 FROM generate_series(0, 15) s;
INSERT INTO fair.wallet_lots (merchant_id, id, member_id, code, origin, credited_cents,
                              debited_cents, held_cents, expired_cents, created_at)
  SELECT 'fair', 'wlot-m' || i, 'm' || i, 1, 1, 100000000000, 0, 0, 0, now()
  FROM generate_series(1, 1000) i;
ANALYZE fair.member_members, fair.points_accounts, fair.points_lots, fair.referral_members,
  fair.referral_downline_stats, fair.wallet_accounts, fair.wallet_lots;
