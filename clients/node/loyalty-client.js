// loyalty-client.js -- a minimal Node.js client of the loyalty suite, for storefront back ends.
//
// The contract is loaded at run time from the suite's own .proto files (@grpc/proto-loader),
// so the client always matches proto/loyalty/v1. Field names stay as in the .proto
// (snake_case), int64 values (money in *_cents, points) are strings so that no amount loses
// precision, enums are their names. Every call has a deadline, the bearer token when one is
// configured and an x-request-id; failures reject with LoyaltyError carrying the gRPC code and
// the suite's machine-readable reason (trailing metadata `loyalty-error-reason`, docs/architecture.md#conventions).
// Requests are checked against the message types first: a misspelt field throws instead of
// being dropped silently.
//
//   const { LoyaltyClient } = require('./loyalty-client');
//   const client = new LoyaltyClient({ gateway: '127.0.0.1:50050', member: '127.0.0.1:50051' });
//   const member = await client.registerMember('shop-1', 'signup-42', { name: 'Ana Lima' });
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const DEFAULT_PROTO_DIR = path.join(__dirname, '..', '..', 'proto');
const PACKAGE = 'loyalty.v1';
const REASON_KEY = 'loyalty-error-reason';

class LoyaltyError extends Error {
  constructor(code, reason, details) {
    const name = Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
    super(reason ? `${name} ${reason}: ${details}` : `${name}: ${details}`);
    this.code = code; // a grpc.status number
    this.codeName = name; // "ALREADY_EXISTS"
    this.reason = reason; // "PHONE_TAKEN", or ""
    this.details = details;
  }
}

/** Loads every proto/loyalty/v1/*.proto into one package definition. */
function loadContract(protoDir = DEFAULT_PROTO_DIR) {
  const dir = path.join(protoDir, 'loyalty', 'v1');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort()
    .map((f) => `loyalty/v1/${f}`);
  return protoLoader.loadSync(files, {
    includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true,
    oneofs: true,
  });
}

// The message type a field refers to, by protobuf's scoping rules (innermost scope first).
function resolveType(def, scope, typeName) {
  if (typeName.startsWith('.')) return def[typeName.slice(1)] ? typeName.slice(1) : null;
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const name = [...parts.slice(0, i), typeName].join('.');
    if (def[name] && def[name].type) return name;
  }
  return null;
}

/** Throws when `obj` has a key that is not a field of message `typeName` (recursively). */
function checkFields(def, typeName, obj, where = 'request') {
  const type = def[typeName] && def[typeName].type;
  if (!type || obj === null || typeof obj !== 'object') return;
  const fields = new Map(type.field.map((f) => [f.name, f]));
  for (const [key, value] of Object.entries(obj)) {
    const f = fields.get(key);
    if (!f) throw new TypeError(`${where}: ${typeName} has no field "${key}"`);
    if (f.type !== 'TYPE_MESSAGE' || value === null || value === undefined) continue;
    const sub = resolveType(def, typeName, f.typeName);
    const repeated = f.label === 'LABEL_REPEATED';
    // Map fields are repeated entries on the wire and plain objects here: their keys are data.
    if (!sub || (repeated && !Array.isArray(value))) continue;
    const items = repeated ? value : [value];
    items.forEach((v, i) => checkFields(def, sub, v, `${where}.${key}${items === value ? `[${i}]` : ''}`));
  }
}

class LoyaltyClient {
  /**
   * @param {object} o
   * @param {string} [o.gateway]   address of the gateway (loyalty.v1.Gateway)
   * @param {string} [o.member]    address of member-svc (used while the gateway is not there)
   * @param {string} [o.token]     sent as `authorization: Bearer <token>`
   * @param {number} [o.timeoutMs] default deadline of every call (5000)
   * @param {Buffer} [o.rootCerts] PEM roots: use TLS
   * @param {string} [o.protoDir]  where loyalty/v1/*.proto are (the repository's proto/)
   */
  constructor({ gateway, member, token, timeoutMs = 5000, rootCerts, protoDir } = {}) {
    this.def = loadContract(protoDir);
    this.pkg = grpc.loadPackageDefinition(this.def).loyalty.v1;
    this.token = token;
    this.timeoutMs = timeoutMs;
    const creds = rootCerts ? grpc.credentials.createSsl(rootCerts)
      : grpc.credentials.createInsecure();
    this.clients = {};
    if (gateway && this.pkg.Gateway) this.clients.Gateway = new this.pkg.Gateway(gateway, creds);
    if (member) this.clients.MemberService = new this.pkg.MemberService(member, creds);
  }

  /** Whether a service is configured and has `method` in this build's contract. */
  has(service, method) {
    const c = this.clients[service];
    return Boolean(c && typeof c[method] === 'function');
  }

  /** Calls `service.method` with a plain object; resolves with the response object. */
  call(service, method, request, { timeoutMs, requestId } = {}) {
    const client = this.clients[service];
    if (!this.has(service, method)) {
      return Promise.reject(new Error(`${service}.${method} is not available`));
    }
    const methodDef = this.def[`${PACKAGE}.${service}`][method];
    try {
      checkFields(this.def, `${PACKAGE}.${methodDef.requestType.type.name}`, request);
    } catch (e) {
      return Promise.reject(e);
    }
    const md = new grpc.Metadata();
    md.set('x-request-id', requestId || `node-${crypto.randomBytes(8).toString('hex')}`);
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    const deadline = new Date(Date.now() + (timeoutMs || this.timeoutMs));
    return new Promise((resolve, reject) => {
      client[method](request, md, { deadline }, (err, resp) => {
        if (!err) return resolve(resp);
        const reason = (err.metadata && err.metadata.get(REASON_KEY)[0]) || '';
        return reject(new LoyaltyError(err.code, String(reason), err.details));
      });
    });
  }

  /**
   * Registers a customer; resolves with the new loyalty.v1.Member. Through the gateway's
   * RegisterMember saga (member + referral + welcome rewards) when the gateway is configured
   * and has it; otherwise straight to member-svc's CreateMember (profile only). The same
   * idempotency key returns the same member.
   */
  async registerMember(merchantId, idempotencyKey, profile, referralCode = '') {
    if (this.has('Gateway', 'RegisterMember')) {
      const resp = await this.call('Gateway', 'RegisterMember', {
        merchant_id: merchantId, idempotency_key: idempotencyKey, profile,
        referral_code: referralCode,
      });
      return resp.registration.member;
    }
    if (referralCode) throw new Error("a referral code needs the gateway's RegisterMember");
    const resp = await this.call('MemberService', 'CreateMember', {
      merchant_id: merchantId, idempotency_key: idempotencyKey, profile,
    });
    return resp.member;
  }

  /**
   * Runs a checkout through the gateway: BeginCheckout (prices the cart, reserves points,
   * wallet money and promotions; checkout.breakdown.amount_due_cents is what the storefront
   * must still collect), then CompleteCheckout once it has collected it (paymentRef names that
   * payment; required when something is due). `lines` are {sku, quantity, unit_price_cents}.
   * Idempotency keys derive from the order id, so retrying an order never applies it twice.
   * Resolves with {begin, complete}: the loyalty.v1.GatewayCheckout after each call.
   */
  async checkout(merchantId, memberId, orderId, lines, { redeemPoints = '0', walletCents = '0',
    paymentRef = '' } = {}) {
    if (!this.has('Gateway', 'BeginCheckout')) {
      throw new Error('checkout needs the gateway (loyalty.v1.Gateway), which this build does not have yet');
    }
    const cart = { lines: lines.map((l, i) => ({ line_id: String(i + 1), ...l })) };
    const begin = (await this.call('Gateway', 'BeginCheckout', {
      merchant_id: merchantId, idempotency_key: `${orderId}:begin`, order_id: orderId,
      member_id: memberId, cart,
      payment: { redeem_points: redeemPoints, wallet_cents: walletCents },
    })).checkout;
    const complete = (await this.call('Gateway', 'CompleteCheckout', {
      merchant_id: merchantId, idempotency_key: `${orderId}:complete`,
      checkout_id: begin.checkout_id, payment_ref: paymentRef,
    })).checkout;
    return { begin, complete };
  }

  close() {
    for (const c of Object.values(this.clients)) c.close();
  }
}

module.exports = { LoyaltyClient, LoyaltyError, loadContract, checkFields };
