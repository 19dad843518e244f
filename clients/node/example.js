// example.js -- a storefront's sign-up and checkout with the Node client (loyalty-client.js).
//
//   node clients/node/example.js --merchant shop-1 --gateway 127.0.0.1:50050 \
//        --member 127.0.0.1:50051 [--token TOKEN]
//
// Registers a member (and shows that retrying with the same idempotency key returns the same
// member, and how a domain error reads), then runs a checkout through the gateway when the
// gateway is there. Prints one JSON object with what happened.
'use strict';

const crypto = require('crypto');
const { LoyaltyClient, LoyaltyError } = require('./loyalty-client');
const { Reason } = require('./loyalty-reasons');

function parseArgs(argv) {
  const args = { phone: '+6591234567' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!['merchant', 'gateway', 'member', 'token', 'phone'].includes(key) || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    args[key] = argv[i + 1];
  }
  if (!args.merchant) throw new Error('--merchant is required');
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const client = new LoyaltyClient({ gateway: args.gateway, member: args.member, token: args.token });
  const out = {};
  try {
    const key = `signup-${crypto.randomBytes(6).toString('hex')}`;
    const profile = { name: 'Ana Lima', phone: args.phone, email: 'ana@example.com' };
    const member = await client.registerMember(args.merchant, key, profile);
    const again = await client.registerMember(args.merchant, key, profile);
    out.member_id = member.id;
    out.replayed_same_member = again.id === member.id;
    try {
      await client.registerMember(args.merchant, 'signup-other', { name: 'Ana Clone', phone: args.phone });
      out.duplicate = 'accepted';
    } catch (e) {
      if (!(e instanceof LoyaltyError)) throw e;
      out.duplicate = { code: e.codeName, reason: e.reason };
      out.duplicate_is_phone_taken = e.reason === Reason.PHONE_TAKEN;
    }
    try {
      const { begin, complete } = await client.checkout(args.merchant, member.id, `order-${key}`, [
        { sku: 'SKU-TEA', quantity: 2, unit_price_cents: '450' },
        { sku: 'SKU-CAKE', quantity: 1, unit_price_cents: '1200' },
      ], { paymentRef: `psp-${key}` });
      out.checkout = {
        checkout_id: begin.checkout_id,
        amount_due_cents: begin.breakdown.amount_due_cents,
        state: complete.state,
      };
    } catch (e) {
      if (e instanceof LoyaltyError && e.codeName !== 'UNIMPLEMENTED') throw e;
      out.checkout = `skipped: ${e instanceof LoyaltyError ? 'a service the gateway calls is not built yet' : ''}${e.message}`;
    }
  } finally {
    client.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
