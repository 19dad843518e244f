// compare.js -- proves the fallback renderer (render.js) against kubectl kustomize: renders each
// DIR with render.js and compares the objects with what kubectl printed for it. Normalised
// before comparing: generated names (ConfigMap/Secret with a hash suffix) may differ only in
// their 10-character suffix, everywhere they appear; the line folding of Secret data is ignored;
// the order of objects is reported but not required. Anything else that differs is an error.
//
// Usage: node compare.js DIR KUBECTL_OUTPUT.yaml [DIR KUBECTL_OUTPUT.yaml ...]
'use strict';

const fs = require('fs');
const YAML = require('yaml');
const { render } = require('./render.js');

function load(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((d) => d !== null);
}

function foldless(docs) {
  for (const d of docs) {
    if (d.kind === 'Secret' && d.data) {
      for (const k of Object.keys(d.data)) d.data[k] = String(d.data[k]).replace(/\s+/g, '');
    }
  }
}

function replaceStrings(node, map) {
  if (typeof node === 'string') return map.has(node) ? map.get(node) : node;
  if (Array.isArray(node)) return node.map((v) => replaceStrings(v, map));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, replaceStrings(v, map)]));
  }
  return node;
}

function key(d) {
  return `${d.apiVersion} ${d.kind} ${(d.metadata || {}).namespace || ''}/${(d.metadata || {}).name}`;
}

function diffs(a, b, where, out) {
  if (out.length >= 20) return;
  const type = (v) => (v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v);
  const ta = type(a);
  const tb = type(b);
  if (ta !== tb || (ta !== 'object' && ta !== 'list')) {
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.push(`${where}: kubectl ${JSON.stringify(a)}, fallback ${JSON.stringify(b)}`);
    }
    return;
  }
  if (ta === 'list') {
    if (a.length !== b.length) out.push(`${where}: kubectl has ${a.length} items, fallback ${b.length}`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) diffs(a[i], b[i], `${where}[${i}]`, out);
    return;
  }
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    diffs(a[k], b[k], `${where}.${k}`, out);
  }
}

function compareOne(dir, kubectlFile) {
  const errors = [];
  const notes = [];
  const { docs: fb, generated } = render(dir);
  const kc = load(kubectlFile);
  foldless(fb);
  foldless(kc);

  // Each generated name maps to NAME-<hash> on both sides.
  const kcMap = new Map();
  const fbMap = new Map();
  let sameSuffix = 0;
  for (const g of generated) {
    const re = new RegExp(`^${g.from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[a-z0-9]{10}$`);
    const found = [...new Set(kc.filter((d) => d.kind === g.kind && re.test(d.metadata.name))
      .map((d) => d.metadata.name))];
    if (found.length !== 1) {
      errors.push(`generated ${g.kind} ${g.from}: kubectl printed ${found.length} matching names (${found})`);
      continue;
    }
    const placeholder = `${g.from}-<hash>`;
    kcMap.set(found[0], placeholder);
    fbMap.set(g.to, placeholder);
    if (found[0] === g.to) sameSuffix++;
  }
  const kcN = kc.map((d) => replaceStrings(d, kcMap));
  const fbN = fb.map((d) => replaceStrings(d, fbMap));

  const kcBy = new Map(kcN.map((d) => [key(d), d]));
  const fbBy = new Map(fbN.map((d) => [key(d), d]));
  if (kcBy.size !== kcN.length || fbBy.size !== fbN.length) errors.push('duplicate objects');
  for (const k of kcBy.keys()) if (!fbBy.has(k)) errors.push(`${k}: missing from the fallback`);
  for (const k of fbBy.keys()) if (!kcBy.has(k)) errors.push(`${k}: only in the fallback`);
  for (const [k, d] of kcBy) {
    if (fbBy.has(k)) {
      const out = [];
      diffs(d, fbBy.get(k), k, out);
      errors.push(...out);
    }
  }
  if (kcN.map(key).join('\n') !== fbN.map(key).join('\n')) notes.push('objects in another order');
  notes.push(`${sameSuffix} of ${generated.length} hash suffixes identical`);
  return { errors, notes, count: kcN.length };
}

function main() {
  const args = process.argv.slice(2);
  if (args.length === 0 || args.length % 2) {
    console.error('usage: node compare.js DIR KUBECTL_OUTPUT.yaml [DIR KUBECTL_OUTPUT.yaml ...]');
    process.exit(2);
  }
  let failed = false;
  for (let i = 0; i < args.length; i += 2) {
    let r;
    try {
      r = compareOne(args[i], args[i + 1]);
    } catch (e) {
      r = { errors: [String(e.message || e)], notes: [], count: 0 };
    }
    for (const e of r.errors) console.log(`${args[i]}: ${e}`);
    if (r.errors.length) failed = true;
    else console.log(`${args[i]}: ${r.count} objects identical to kubectl's (${r.notes.join('; ')})`);
  }
  process.exit(failed ? 1 : 0);
}

main();
