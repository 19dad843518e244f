-- checkout_monolith.sql -- pgbench script: one checkout as ONE PostgreSQL transaction, writing
-- the rows the checkout saga writes across the services (bench/README.md "gateway checkout"):
-- the saga log row, the promotion usage, the points redemption (account, history) and the
-- earning (account, lot, history), the wallet transfer (member and sharded merchant account,
-- transfer, two postings), the member's statistics, and three referral rewards (reward, the
-- beneficiary's account, lot and history each). Amounts close to bench/checkout_bench.c's cart
-- (100 points redeemed, 10.00 from the wallet, about 45 points earned and 45 / 22 / 9 points of
-- referral rewards). Schema: bench/checkout_monolith_schema.sql.
\set m random(4, 1000)
\set shard random(0, 15)
BEGIN;
WITH n AS (SELECT nextval('monolith.sagas_id_seq') AS id)
INSERT INTO monolith.sagas (id, order_id, member_id, state, request, context)
  SELECT id, 'o-' || id, :m, 4, decode(repeat('0a', 300), 'hex'), decode(repeat('1b', 900), 'hex')
  FROM n RETURNING id AS sid \gset
INSERT INTO monolith.promo_usages (order_id, promotion_id, member_id, discount)
  VALUES ('o-' || :sid, 1, :m, 550);
UPDATE monolith.points_accounts SET available = available - 100, updated_at = now()
  WHERE member_id = :m AND available >= 100;
INSERT INTO monolith.points_history (member_id, kind, delta, reference) VALUES (:m, 6, -100, 'o-' || :sid);
UPDATE monolith.points_accounts SET available = available + 45, growth = growth + 45,
  lifetime = lifetime + 45, updated_at = now() WHERE member_id = :m;
INSERT INTO monolith.points_lots (member_id, reference, points, remaining) VALUES (:m, 'o-' || :sid, 45, 45);
INSERT INTO monolith.points_history (member_id, kind, delta, reference) VALUES (:m, 1, 45, 'o-' || :sid);
UPDATE monolith.wallet_accounts SET balance = balance - 1000 WHERE member_id = :m AND balance >= 1000;
INSERT INTO monolith.wallet_transfers (reference, amount) VALUES ('o-' || :sid, 1000) RETURNING id AS tid \gset
INSERT INTO monolith.wallet_postings (transfer_id, account, amount)
  VALUES (:tid, 'member', -1000), (:tid, 'redeemed', 1000);
UPDATE monolith.member_stats SET order_count = order_count + 1, total_spend = total_spend + 4560,
  total_growth = total_growth + 45, last_order_at = now() WHERE member_id = :m;
INSERT INTO monolith.referral_rewards (order_id, beneficiary, level, points)
  VALUES ('o-' || :sid, :m - 1, 1, 45), ('o-' || :sid, :m - 2, 2, 22), ('o-' || :sid, :m - 3, 3, 9);
UPDATE monolith.points_accounts SET available = available + 45, lifetime = lifetime + 45 WHERE member_id = :m - 1;
INSERT INTO monolith.points_lots (member_id, reference, points, remaining) VALUES (:m - 1, 'rr:o-' || :sid, 45, 45);
INSERT INTO monolith.points_history (member_id, kind, delta, reference) VALUES (:m - 1, 1, 45, 'o-' || :sid);
UPDATE monolith.points_accounts SET available = available + 22, lifetime = lifetime + 22 WHERE member_id = :m - 2;
INSERT INTO monolith.points_lots (member_id, reference, points, remaining) VALUES (:m - 2, 'rr:o-' || :sid, 22, 22);
INSERT INTO monolith.points_history (member_id, kind, delta, reference) VALUES (:m - 2, 1, 22, 'o-' || :sid);
UPDATE monolith.points_accounts SET available = available + 9, lifetime = lifetime + 9 WHERE member_id = :m - 3;
INSERT INTO monolith.points_lots (member_id, reference, points, remaining) VALUES (:m - 3, 'rr:o-' || :sid, 9, 9);
INSERT INTO monolith.points_history (member_id, kind, delta, reference) VALUES (:m - 3, 1, 9, 'o-' || :sid);
-- The sharded merchant account last: every other row is locked in one order (buyer, then its
-- ancestors), so no two checkouts can wait on each other in a cycle.
UPDATE monolith.merchant_accounts SET balance = balance + 1000 WHERE shard = :shard;
COMMIT;
