-- checkout_fair_monolith.sql -- pgbench script (run with -M prepared): the "fair monolith" of
-- bench/README.md "gateway checkout". One checkout as ONE transaction writing the rows the saga
-- writes today, idempotency records and outbox events included, into copies of the services'
-- own tables (schema: bench/checkout_fair_monolith_schema.sql). The list is the one
-- bench/checkout_bench.sh prints per table ("rows inserted/updated per checkout, by table"),
-- each row written once in its final state:
--   gateway   the saga row (completed; its steps array left out, see below), the order (its 2
--             lines in its row), 1 event;
--   member    the RecordOrder key, the member's order, its month, the member's totals;
--   points    3 keys (hold, settle: commit and the buyer's earn, the 3 referral grants), the
--             hold (committed, naming its one lot), the buyer's lot taken from, 6 entries
--             (hold, commit, earn, 3 grants; each names its one lot), 4 lots (each holding its
--             earn's claim), 1 growth entry, 4 events, 4 accounts (the buyer and three
--             ancestors);
--   promo     2 keys (reserve, confirm), the reservation (confirmed);
--   referral  1 key (compute rewards), the reward event, 3 rewards, the buyer's purchase count,
--             the three ancestors' downline statistics;
--   wallet    2 keys (hold, capture), the hold (captured), 2 transfers, 4 postings, the spend
--             and its lot share, the buyer's lot, the buyer's and a merchant shard's accounts.
-- Not written: what exists only because the checkout is a saga across services — the saga's
-- step records (the steps array of its row) and its repeated writes of the same rows (the saga
-- row, the holds, the accounts each service touches twice) — and the outbox publisher's later
-- delete of the events it published.
-- Byte sizes of the saga's request and context, the keys' stored responses and the events'
-- payloads are those of a real run. (A colon inside a literal is written ':' || '...': pgbench
-- would take ':name' for one of its variables.) Rows are locked in one order (buyer, then its ancestors from
-- the nearest, table by table; the merchant's wallet shard last), so checkouts cannot deadlock.
\set m random(4, 1000)
\set shard random(0, 15)
BEGIN;
-- gateway
INSERT INTO fair.gateway_sagas (merchant_id, id, kind, state, idempotency_key, request_hash,
    request, context, order_id, member_id)
  SELECT 'fair', 'chk-' || n, 2, 4, 'o-' || n, decode(repeat('5a', 32), 'hex'),
    decode(repeat('0a', 172), 'hex'), decode(repeat('1b', 589), 'hex'), 'o-' || n, 'm' || :m
  FROM (SELECT nextval('fair.checkouts') AS n) s
  RETURNING substr(id, 5) AS n \gset
INSERT INTO fair.gateway_orders (merchant_id, order_id, checkout_id, member_id, total_cents,
    points_cash_cents, wallet_cents, external_cents, spend_cents, refundable_cents, lines)
  VALUES ('fair', 'o-' || :n, 'chk-' || :n, 'm' || :m, 4868, 100, 1000, 3768, 4868, 4868,
    ARRAY[ROW('1', 1, 2, 2138, 0, 0)::gateway.order_line,
          ROW('2', 1, 1, 2565, 0, 0)::gateway.order_line]);
INSERT INTO fair.gateway_outbox (merchant_id, id, stream, type, subject_id, payload)
  VALUES ('fair', 'evt-o-' || :n, 'loyalty' || ':' || 'events', 'order.completed', 'o-' || :n, repeat('x', 226));
-- member
INSERT INTO fair.member_idempotency_keys (merchant_id, key, method, request_hash, response)
  VALUES ('fair', 'chk-' || :n || ':' || 'member_record_order', '/loyalty.v1.MemberService/RecordOrder',
    decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 275), 'hex'));
INSERT INTO fair.member_orders (merchant_id, order_id, member_id, spend_cents, growth_delta,
    period_seq, ordered_at, local_month)
  VALUES ('fair', 'o-' || :n, 'm' || :m, 4868, 48, 0, now(), date_trunc('month', now())::date);
INSERT INTO fair.member_order_months (merchant_id, member_id, month, orders)
  VALUES ('fair', 'm' || :m, date_trunc('month', now())::date, 1)
  ON CONFLICT (merchant_id, member_id, month) DO UPDATE SET orders = fair.member_order_months.orders + 1;
UPDATE fair.member_members SET order_count = order_count + 1,
    total_spend_cents = total_spend_cents + 4868, total_growth = total_growth + 48,
    first_order_at = coalesce(first_order_at, now()), last_order_at = now(),
    version = version + 1, updated_at = now()
  WHERE merchant_id = 'fair' AND id = 'm' || :m;
-- points: the buyer's redemption (hold, commit) and earn
INSERT INTO fair.points_idempotency_keys (merchant_id, key, method, request_hash, response)
  VALUES ('fair', 'chk-' || :n || ':' || 'points_hold', '/loyalty.v1.PointsService/Hold',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 204), 'hex')),
    ('fair', 'chk-' || :n || ':' || 'points_settle', '/loyalty.v1.PointsService/EarnBatch',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 405), 'hex')),
    ('fair', 'chk-' || :n || ':' || 'referral_grants', '/loyalty.v1.PointsService/EarnBatch',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 528), 'hex'));
UPDATE fair.points_accounts SET lots_points = lots_points - 100 + 48,
    lifetime_earned = lifetime_earned + 48, growth = growth + 48, version = version + 1,
    updated_at = now()
  WHERE merchant_id = 'fair' AND member_id = 'm' || :m;
UPDATE fair.points_lots SET remaining = remaining - 100
  WHERE merchant_id = 'fair' AND id = 'lot-m' || :m;
INSERT INTO fair.points_holds (merchant_id, id, member_id, reference, points, cash_value_cents,
    status, created_at, expires_at, finished_at, lot_id)
  VALUES ('fair', 'hld-' || :n, 'm' || :m, 'o-' || :n, 100, 100, 2, now(),
    now() + interval '1 hour', now(), 'lot-m' || :m);
INSERT INTO fair.points_lots (merchant_id, id, member_id, source, reference, points, remaining,
    status, earned_at, available_at, earn_growth)
  VALUES ('fair', 'lot-' || :n, 'm' || :m, 1, 'o-' || :n, 48, 48, 2, now(), now(), 48),
    ('fair', 'lot-' || :n || '-1', 'm' || (:m - 1), 1, 'rr:' || :n || '-1', 48, 48, 2, now(), now(), 0),
    ('fair', 'lot-' || :n || '-2', 'm' || (:m - 2), 1, 'rr:' || :n || '-2', 24, 24, 2, now(), now(), 0),
    ('fair', 'lot-' || :n || '-3', 'm' || (:m - 3), 1, 'rr:' || :n || '-3', 9, 9, 2, now(), now(), 0);
INSERT INTO fair.points_entries (merchant_id, id, member_id, kind, available_delta, held_delta,
    available_after, source, reference, hold_id, created_at, lot_id, lot_points)
  VALUES ('fair', 'pen-' || :n || '-h', 'm' || :m, 3, -100, 100, 999999900, 0, 'o-' || :n, 'hld-' || :n, now(), 'lot-m' || :m, -100),
    ('fair', 'pen-' || :n || '-c', 'm' || :m, 6, 0, -100, 999999900, 0, 'o-' || :n, 'hld-' || :n, now(), NULL, NULL),
    ('fair', 'pen-' || :n || '-e', 'm' || :m, 1, 48, 0, 999999948, 1, 'o-' || :n, '', now(), 'lot-' || :n, 48),
    ('fair', 'pen-' || :n || '-1', 'm' || (:m - 1), 1, 48, 0, 1000000048, 1, 'rr:' || :n || '-1', '', now(), 'lot-' || :n || '-1', 48),
    ('fair', 'pen-' || :n || '-2', 'm' || (:m - 2), 1, 24, 0, 1000000024, 1, 'rr:' || :n || '-2', '', now(), 'lot-' || :n || '-2', 24),
    ('fair', 'pen-' || :n || '-3', 'm' || (:m - 3), 1, 9, 0, 1000000009, 1, 'rr:' || :n || '-3', '', now(), 'lot-' || :n || '-3', 9);
INSERT INTO fair.points_growth_entries (merchant_id, id, member_id, kind, growth, growth_after,
    source, reference, created_at)
  VALUES ('fair', 'grw-' || :n, 'm' || :m, 1, 48, 48, 1, 'o-' || :n, now());
INSERT INTO fair.points_outbox (merchant_id, id, stream, type, subject_id, payload)
  VALUES ('fair', 'evt-pe-' || :n, 'loyalty' || ':' || 'events', 'points.earned', 'm' || :m, repeat('x', 226)),
    ('fair', 'evt-pe-' || :n || '-1', 'loyalty' || ':' || 'events', 'points.earned', 'm' || (:m - 1), repeat('x', 238)),
    ('fair', 'evt-pe-' || :n || '-2', 'loyalty' || ':' || 'events', 'points.earned', 'm' || (:m - 2), repeat('x', 238)),
    ('fair', 'evt-pe-' || :n || '-3', 'loyalty' || ':' || 'events', 'points.earned', 'm' || (:m - 3), repeat('x', 237));
-- points: the three referral grants (ancestors' accounts, nearest first)
UPDATE fair.points_accounts SET lots_points = lots_points + 48, lifetime_earned = lifetime_earned + 48,
    version = version + 1, updated_at = now()
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 1);
UPDATE fair.points_accounts SET lots_points = lots_points + 24, lifetime_earned = lifetime_earned + 24,
    version = version + 1, updated_at = now()
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 2);
UPDATE fair.points_accounts SET lots_points = lots_points + 9, lifetime_earned = lifetime_earned + 9,
    version = version + 1, updated_at = now()
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 3);
-- promo
INSERT INTO fair.promo_idempotency_keys (merchant_id, key, method, request_hash, response)
  VALUES ('fair', 'chk-' || :n || ':' || 'promo_reserve', '/loyalty.v1.PromoService/Reserve',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 347), 'hex')),
    ('fair', 'chk-' || :n || ':' || 'promo_confirm', '/loyalty.v1.PromoService/Confirm',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 370), 'hex'));
INSERT INTO fair.promo_reservations (merchant_id, checkout_id, member_id, status, expires_at,
    order_id, quote, created_at, updated_at)
  VALUES ('fair', 'chk-' || :n, 'm' || :m, 2, 1900000000, 'o-' || :n,
    decode(repeat('3d', 233), 'hex'), 1800000000, 1800000000);
-- referral
INSERT INTO fair.referral_idempotency_keys (merchant_id, key, method, request_hash, response)
  VALUES ('fair', 'chk-' || :n || ':' || 'referral_compute', '/loyalty.v1.ReferralService/ComputeRewards',
    decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 467), 'hex'));
INSERT INTO fair.referral_reward_events (merchant_id, event, reference, member_id, paid_cents,
    purchase_number, program_version)
  VALUES ('fair', 2, 'o-' || :n, 'm' || :m, 4868, 1, 1);
INSERT INTO fair.referral_rewards (merchant_id, id, event, reference, source_member_id,
    beneficiary_id, level, rule, points, base_cents, rule_bps, grant_now, state, granted_points,
    granted_at)
  VALUES ('fair', 'rwd-' || :n || '-1', 2, 'o-' || :n, 'm' || :m, 'm' || (:m - 1), 1, 1, 48, 4868, 100, true, 2, 48, now()),
    ('fair', 'rwd-' || :n || '-2', 2, 'o-' || :n, 'm' || :m, 'm' || (:m - 2), 2, 1, 24, 4868, 50, true, 2, 24, now()),
    ('fair', 'rwd-' || :n || '-3', 2, 'o-' || :n, 'm' || :m, 'm' || (:m - 3), 3, 1, 9, 4868, 20, true, 2, 9, now());
UPDATE fair.referral_members SET purchase_count = purchase_count + 1
  WHERE merchant_id = 'fair' AND member_id = 'm' || :m;
UPDATE fair.referral_downline_stats SET reward_points = reward_points + 48
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 1) AND level = 1;
UPDATE fair.referral_downline_stats SET reward_points = reward_points + 24
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 2) AND level = 2;
UPDATE fair.referral_downline_stats SET reward_points = reward_points + 9
  WHERE merchant_id = 'fair' AND member_id = 'm' || (:m - 3) AND level = 3;
-- wallet (the merchant's sharded account last)
INSERT INTO fair.wallet_idempotency_keys (merchant_id, key, method, request_hash, response)
  VALUES ('fair', 'chk-' || :n || ':' || 'wallet_hold', '/loyalty.v1.WalletService/Hold',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 211), 'hex')),
    ('fair', 'chk-' || :n || ':' || 'wallet_capture', '/loyalty.v1.WalletService/CaptureHold',
      decode(repeat('5a', 32), 'hex'), decode(repeat('2c', 285), 'hex'));
INSERT INTO fair.wallet_holds (merchant_id, id, member_id, reference, amount_cents, captured_cents,
    state, expires_at, transfer_id, created_at, updated_at)
  VALUES ('fair', 'whld-' || :n, 'm' || :m, 'o-' || :n, 1000, 1000, 2, now() + interval '1 hour',
    'trf-' || :n || '-h', now(), now());
INSERT INTO fair.wallet_transfers (merchant_id, id, member_id, kind, hold_id, reference, amount_cents,
    held_delta_cents, balance_after_cents, held_after_cents, created_at)
  VALUES ('fair', 'trf-' || :n || '-h', 'm' || :m, 3, 'whld-' || :n, 'o-' || :n, 1000, 1000, 100000000, 1000, now()),
    ('fair', 'trf-' || :n || '-c', 'm' || :m, 4, 'whld-' || :n, 'o-' || :n, 1000, -1000, 99999000, 0, now());
INSERT INTO fair.wallet_postings (merchant_id, transfer_id, line, member_id, code, shard, lot_id,
    pending, debit_cents, credit_cents)
  VALUES ('fair', 'trf-' || :n || '-h', 1, 'm' || :m, 1, 0, 'wlot-m' || :m, true, 1000, 0),
    ('fair', 'trf-' || :n || '-h', 2, '', 12, :shard, NULL, true, 0, 1000),
    ('fair', 'trf-' || :n || '-c', 1, 'm' || :m, 1, 0, 'wlot-m' || :m, false, 1000, 0),
    ('fair', 'trf-' || :n || '-c', 2, '', 12, :shard, NULL, false, 0, 1000);
INSERT INTO fair.wallet_spends (merchant_id, reference, member_id, captured_cents, refunded_cents)
  VALUES ('fair', 'o-' || :n, 'm' || :m, 1000, 0);
INSERT INTO fair.wallet_spend_lots (merchant_id, reference, lot_id, code, captured_cents, refunded_cents)
  VALUES ('fair', 'o-' || :n, 'wlot-m' || :m, 1, 1000, 0);
UPDATE fair.wallet_lots SET debited_cents = debited_cents + 1000
  WHERE merchant_id = 'fair' AND id = 'wlot-m' || :m;
UPDATE fair.wallet_accounts SET debits_posted = debits_posted + 1000
  WHERE merchant_id = 'fair' AND member_id = 'm' || :m AND code = 1 AND shard = 0;
UPDATE fair.wallet_accounts SET credits_posted = credits_posted + 1000
  WHERE merchant_id = 'fair' AND member_id = '' AND code = 12 AND shard = :shard;
COMMIT;
