// render.js -- offline fallback for `kubectl kustomize DIR`, used by check_k8s.sh when kubectl
// (with kustomize >= 4) is not on the machine. It implements exactly the kustomize features that
// deploy/k8s uses, with kustomize v5's semantics, and refuses everything else by name, so that it
// cannot silently drift from the manifests: when a kustomization starts using a new field, this
// file fails until the feature is implemented here (and check_k8s_render.sh proves it against
// kubectl on a machine that has it).
//
// Implemented: `resources` (YAML files inside the kustomization's folder, and folders holding a
// kustomization), `components` (folders holding a `kind: Component`, applied in order to what the
// resources brought, before the kustomization's own generators and transformers), `namespace`,
// `labels` (pairs, includeSelectors: false: metadata.labels only), `configMapGenerator`/
// `secretGenerator` (name, envs, literals, files, options.labels, behavior
// create|merge|replace), the content-hash name suffix of generated objects (kustomize's hash,
// computed the same way) and
// the rewrite of references to them in pod specs, `images` (name, newTag), `patches` (target.kind
// with an inline JSON6902 patch of add/replace operations). Objects are printed in kustomize's
// legacy order, keys sorted.
//
// Usage: node render.js DIR                  (writes the rendered YAML to stdout)
//        node render.js --self-test          (checks the hash, the output and the refusals on a
//                                             built-in fixture)
//        node render.js --write-fixture DIR  (writes that fixture: DIR/base, DIR/overlay)
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const YAML = require('yaml');

class RenderError extends Error {}

function fail(msg) {
  throw new RenderError(msg);
}

function notImplemented(where, what) {
  fail(`${where}: ${what} is not implemented by the fallback renderer (tests/deploy/k8s/render.js); ` +
    'implement it there or render with kubectl kustomize');
}

// Kinds the renderer knows how to place: whether they are namespaced decides what `namespace`
// does, and pod specs are where generated names are referenced. Any other kind is refused.
const KINDS = {
  Namespace: { namespaced: false },
  ConfigMap: { namespaced: true },
  Secret: { namespaced: true },
  Service: { namespaced: true },
  Deployment: { namespaced: true, podSpec: ['spec', 'template', 'spec'] },
  HorizontalPodAutoscaler: { namespaced: true },
  PodDisruptionBudget: { namespaced: true },
  ServiceMonitor: { namespaced: true },
  PrometheusRule: { namespaced: true },
};

const KUSTOMIZATION_FIELDS = new Set([
  'apiVersion', 'kind', 'resources', 'components', 'namespace', 'labels', 'configMapGenerator',
  'secretGenerator', 'images', 'patches',
]);
const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function clone(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

function onlyFields(where, obj, allowed) {
  if (!isPlainObject(obj)) fail(`${where}: expected a mapping`);
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) notImplemented(where, `field "${k}"`);
  }
}

function requireString(where, v) {
  if (typeof v !== 'string') fail(`${where}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function requireStringList(where, v) {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(`${where}: expected a list`);
  return v.map((x, i) => requireString(`${where}[${i}]`, x));
}

// Files a kustomization reads must lie inside its folder (kustomize's default load restrictor).
function fileInside(dir, rel, where) {
  const p = path.resolve(dir, rel);
  if (!fs.existsSync(p)) fail(`${where}: ${p} does not exist`);
  const real = fs.realpathSync(p);
  const root = fs.realpathSync(dir);
  if (real !== root && !real.startsWith(root + path.sep)) {
    fail(`${where}: ${rel} is outside ${dir} (kustomize refuses that too)`);
  }
  return p;
}

function readUtf8(file, where) {
  const buf = fs.readFileSync(file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (e) {
    return notImplemented(where, `non-UTF-8 content (binaryData) in ${file}`);
  }
}

// Read as YAML 1.2 (as validate.js reads), and refused where a YAML 1.1 reader (the API
// server's, kustomize's printer keeps such scalars as written) would see something else: `yes`,
// `on`, 0755 and the like must be quoted or written unambiguously.
function parseYamlDocs(text, where) {
  const read = (version) => YAML.parseAllDocuments(text, { version }).map((d) => {
    if (d.errors.length) fail(`${where}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((d) => d !== null && d !== undefined);
  const docs = read('1.2');
  if (JSON.stringify(read('1.1')) !== JSON.stringify(docs)) {
    notImplemented(where, 'a scalar that YAML 1.1 and YAML 1.2 read differently (quote it)');
  }
  return docs;
}

// ---- resources ---------------------------------------------------------------------------

// An entry is one object plus what kustomize tracks beside it: whether it was generated (and
// so gets the hash suffix at the end).
function entryId(e) {
  const o = e.obj;
  const ns = (o.metadata.namespace === 'default' ? '' : o.metadata.namespace) || '';
  return `${o.apiVersion}|${o.kind}|${ns}|${o.metadata.name}`;
}

function checkObject(obj, where) {
  if (!isPlainObject(obj)) fail(`${where}: a resource must be a mapping`);
  const kind = obj.kind;
  if (typeof kind !== 'string' || typeof obj.apiVersion !== 'string') {
    fail(`${where}: a resource needs apiVersion and kind`);
  }
  if (kind.endsWith('List')) notImplemented(where, `the list kind ${kind}`);
  if (!KINDS[kind]) notImplemented(where, `the kind ${kind}`);
  if (!isPlainObject(obj.metadata) || typeof obj.metadata.name !== 'string' || !obj.metadata.name) {
    fail(`${where}: ${kind} without metadata.name`);
  }
  const ann = obj.metadata.annotations || {};
  for (const k of Object.keys(ann)) {
    if (k.startsWith('config.kubernetes.io/') || k.startsWith('internal.config.kubernetes.io/') ||
        k.startsWith('kustomize.config.k8s.io/')) {
      notImplemented(where, `the annotation ${k}`);
    }
  }
}

function addUnique(entries, e, where) {
  const id = entryId(e);
  if (entries.some((x) => entryId(x) === id)) {
    fail(`${where}: may not add resource with an already registered id ${id}`);
  }
  entries.push(e);
}

function loadResourceFile(file, where) {
  return parseYamlDocs(readUtf8(file, where), `${where} (${file})`).map((obj) => {
    checkObject(obj, `${where} (${file})`);
    return { obj, generated: false };
  });
}

// ---- generators --------------------------------------------------------------------------

const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

// An env file as kustomize reads it: lines split on \n (a trailing \r dropped), a UTF-8 BOM
// dropped from the first line, leading white space trimmed, blank lines and #-comments skipped,
// KEY=VALUE split at the first '=' with the value kept verbatim, a line without '=' an empty
// value.
function envFilePairs(file, where) {
  const text = readUtf8(file, where);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const pairs = [];
  lines.forEach((raw, i) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith('\uFEFF')) line = line.slice(1);
    line = line.replace(/^\s+/u, '');
    if (line === '' || line[0] === '#') return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    if (!ENV_VAR_NAME.test(key)) fail(`${where}: ${file}:${i + 1}: invalid env var name "${key}"`);
    pairs.push([key, eq < 0 ? '' : line.slice(eq + 1)]);
  });
  return pairs;
}

function literalPair(src, where) {
  const eq = src.indexOf('=');
  if (eq <= 0) fail(`${where}: invalid literal source ${src}, expected key=value`);
  let value = src.slice(eq + 1);
  if (value.length >= 2 && value[0] === value[value.length - 1] && (value[0] === '"' || value[0] === "'")) {
    value = value.slice(1, -1);
  }
  return [src.slice(0, eq), value];
}

// kustomize folds base64 Secret values at 70 characters, each line (the last too) ending in a
// newline, once the encoding reaches 70 characters; the hash is taken over the folded text.
function base64Folded(buf) {
  const enc = buf.toString('base64');
  if (enc.length < 70) return enc;
  let out = '';
  for (let i = 0; i < enc.length; i += 70) out += enc.slice(i, i + 70) + '\n';
  return out;
}

function generate(kind, args, dir, where) {
  onlyFields(where, args, ['name', 'behavior', 'envs', 'literals', 'files', 'options']);
  const name = requireString(`${where}.name`, args.name);
  if (!name) fail(`${where}: a generator needs a name`);
  const behavior = args.behavior === undefined ? 'create' : args.behavior;
  if (!['create', 'merge', 'replace'].includes(behavior)) {
    notImplemented(where, `behavior "${behavior}"`);
  }
  const pairs = [];
  for (const env of requireStringList(`${where}.envs`, args.envs)) {
    pairs.push(...envFilePairs(fileInside(dir, env, where), where));
  }
  for (const lit of requireStringList(`${where}.literals`, args.literals)) {
    pairs.push(literalPair(lit, where));
  }
  // A file's content, verbatim, under its base name or the key given as KEY=PATH.
  for (const src of requireStringList(`${where}.files`, args.files)) {
    const eq = src.indexOf('=');
    const key = eq < 0 ? path.basename(src) : src.slice(0, eq);
    const file = fileInside(dir, eq < 0 ? src : src.slice(eq + 1), where);
    if (fs.statSync(file).isDirectory()) notImplemented(where, `a folder in files (${src})`);
    pairs.push([key, readUtf8(file, where)]);
  }
  let labels;
  if (args.options !== undefined) {
    onlyFields(`${where}.options`, args.options, ['labels']);
    labels = args.options.labels;
    if (!isPlainObject(labels)) fail(`${where}.options.labels: expected a mapping`);
    for (const [k, v] of Object.entries(labels)) requireString(`${where}.options.labels.${k}`, v);
    if (behavior !== 'create') notImplemented(where, `options with behavior ${behavior}`);
  }
  const data = {};
  for (const [k, v] of pairs) {
    if (!DATA_KEY.test(k) || k.length > 253) fail(`${where}: invalid data key "${k}"`);
    if (Object.prototype.hasOwnProperty.call(data, k)) {
      fail(`${where}: ${kind} ${name} illegally repeats the key \`${k}\``);
    }
    data[k] = v;
  }
  const obj = { apiVersion: 'v1', kind, metadata: { name } };
  if (labels !== undefined) obj.metadata.labels = clone(labels);
  if (kind === 'Secret') {
    obj.type = 'Opaque';
    obj.data = {};
    for (const k of Object.keys(data)) obj.data[k] = base64Folded(Buffer.from(data[k], 'utf8'));
  } else if (Object.keys(data).length) {
    obj.data = data;
  }
  return { obj, generated: true, behavior };
}

// Adds a generated object: create must be new; merge and replace must find exactly the object of
// the same kind and name (from a base), take over its labels, annotations, name and namespace,
// and (merge) its data under the new values. As in kustomize, the object may be found under its
// current id or the id it had before a `namespace` moved it (a component merging into what a
// namespaced overlay brought).
function absorb(entries, e, where) {
  const id = entryId(e);
  const idx = entries.findIndex((x) => entryId(x) === id || x.orgId === id);
  if (e.behavior === 'create') {
    if (idx >= 0) fail(`${where}: ${id} exists; behavior must be merge or replace`);
    entries.push({ obj: e.obj, generated: true });
    return;
  }
  if (idx < 0) fail(`${where}: ${id} does not exist; cannot ${e.behavior}`);
  const old = entries[idx].obj;
  const obj = e.obj;
  const labels = Object.assign({}, old.metadata.labels || {}, obj.metadata.labels || {});
  const annotations = Object.assign({}, old.metadata.annotations || {}, obj.metadata.annotations || {});
  obj.metadata = Object.assign({}, obj.metadata, { name: old.metadata.name });
  if (old.metadata.namespace !== undefined) obj.metadata.namespace = old.metadata.namespace;
  if (Object.keys(labels).length) obj.metadata.labels = labels;
  if (Object.keys(annotations).length) obj.metadata.annotations = annotations;
  if (e.behavior === 'merge') {
    const data = Object.assign({}, old.data || {}, obj.data || {});
    if (Object.keys(data).length) obj.data = data;
  }
  // A merged or replaced object stays generated (hash suffix) if either side was.
  entries[idx] = { obj, generated: entries[idx].generated || e.generated, orgId: entries[idx].orgId };
}

// ---- transformers ------------------------------------------------------------------------

// JSON pointer (RFC 6901) into its reference tokens.
function pointer(p, where) {
  if (typeof p !== 'string' || !p.startsWith('/')) fail(`${where}: invalid JSON pointer ${p}`);
  return p.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(tok, len, where, allowEnd) {
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) fail(`${where}: invalid array index ${tok}`);
  const i = Number(tok);
  if (i > len || (!allowEnd && i === len)) fail(`${where}: array index ${tok} out of range`);
  return i;
}

function applyJson6902(doc, ops, where) {
  ops.forEach((op, n) => {
    const w = `${where} op ${n}`;
    onlyFields(w, op, ['op', 'path', 'value']);
    if (op.op !== 'add' && op.op !== 'replace') notImplemented(w, `the JSON6902 op "${op.op}"`);
    if (!Object.prototype.hasOwnProperty.call(op, 'value')) fail(`${w}: ${op.op} needs a value`);
    const toks = pointer(op.path, w);
    let parent = doc;
    for (const t of toks.slice(0, -1)) {
      if (Array.isArray(parent)) parent = parent[arrayIndex(t, parent.length, w, false)];
      else if (isPlainObject(parent) && Object.prototype.hasOwnProperty.call(parent, t)) parent = parent[t];
      else fail(`${w}: ${op.op} ${op.path}: ${t} does not exist`);
    }
    const last = toks[toks.length - 1];
    const value = clone(op.value);
    if (Array.isArray(parent)) {
      if (op.op === 'add') {
        if (last === '-') parent.push(value);
        else parent.splice(arrayIndex(last, parent.length, w, true), 0, value);
      } else {
        parent[arrayIndex(last, parent.length, w, false)] = value;
      }
    } else if (isPlainObject(parent)) {
      if (op.op === 'replace' && !Object.prototype.hasOwnProperty.call(parent, last)) {
        fail(`${w}: replace ${op.path}: ${last} does not exist`);
      }
      parent[last] = value;
    } else {
      fail(`${w}: ${op.op} ${op.path}: the parent is not an object or a list`);
    }
  });
}

function applyPatches(entries, patches, where) {
  patches.forEach((p, i) => {
    const w = `${where}: patches[${i}]`;
    onlyFields(w, p, ['target', 'patch']);
    if (p.target === undefined) notImplemented(w, 'a patch without target');
    onlyFields(`${w}.target`, p.target, ['kind']);
    const kind = requireString(`${w}.target.kind`, p.target.kind);
    if (/[\\^$.|?*+()[\]{}]/.test(kind)) notImplemented(w, `a regular expression in target.kind (${kind})`);
    const text = requireString(`${w}.patch`, p.patch);
    const docs = parseYamlDocs(text, w);
    if (docs.length !== 1 || !Array.isArray(docs[0])) {
      notImplemented(w, 'a strategic-merge patch (only inline JSON6902 lists are)');
    }
    for (const e of entries) {
      if (e.obj.kind === kind) applyJson6902(e.obj, docs[0], `${w} on ${e.obj.kind} ${e.obj.metadata.name}`);
    }
  });
}

function applyNamespace(entries, ns) {
  for (const e of entries) {
    if (!KINDS[e.obj.kind].namespaced) continue;
    if (e.orgId === undefined) e.orgId = entryId(e);
    e.obj.metadata.namespace = ns;
  }
}

function applyLabels(entries, labels, where) {
  labels.forEach((l, i) => {
    const w = `${where}: labels[${i}]`;
    onlyFields(w, l, ['pairs', 'includeSelectors', 'includeTemplates']);
    if (l.includeSelectors !== undefined && l.includeSelectors !== false) {
      notImplemented(w, 'includeSelectors: true');
    }
    if (l.includeTemplates !== undefined && l.includeTemplates !== false) {
      notImplemented(w, 'includeTemplates: true');
    }
    if (!isPlainObject(l.pairs)) fail(`${w}.pairs: expected a mapping`);
    for (const [k, v] of Object.entries(l.pairs)) requireString(`${w}.pairs.${k}`, v);
    for (const e of entries) {
      e.obj.metadata.labels = Object.assign(e.obj.metadata.labels || {}, l.pairs);
    }
  });
}

function escapeRegExp(s) {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

// kustomize's image update: every `image` of a `containers` or `initContainers` list anywhere in
// an object, when its name (before :tag / @sha256:digest) is the given one, gets the new tag
// (and loses a digest).
function applyImages(entries, images, where) {
  images.forEach((img, i) => {
    const w = `${where}: images[${i}]`;
    onlyFields(w, img, ['name', 'newTag']);
    const name = requireString(`${w}.name`, img.name);
    const tag = requireString(`${w}.newTag`, img.newTag);
    const re = new RegExp(`^${escapeRegExp(name)}(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$`);
    const walk = (node) => {
      if (Array.isArray(node)) {
        node.forEach(walk);
      } else if (isPlainObject(node)) {
        for (const [k, v] of Object.entries(node)) {
          walk(v);
          if ((k === 'containers' || k === 'initContainers') && Array.isArray(v)) {
            for (const c of v) {
              if (isPlainObject(c) && typeof c.image === 'string' && re.test(c.image)) {
                c.image = `${name}:${tag}`;
              }
            }
          }
        }
      }
    };
    for (const e of entries) walk(e.obj);
  });
}

// ---- one kustomization -------------------------------------------------------------------

function readKustomization(dir, asComponent) {
  const found = KUSTOMIZATION_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  if (found.length === 0) fail(`${dir}: no kustomization file (${KUSTOMIZATION_FILES.join(', ')})`);
  if (found.length > 1) fail(`${dir}: several kustomization files (${found.join(', ')})`);
  const file = path.join(dir, found[0]);
  const docs = parseYamlDocs(readUtf8(file, file), file);
  if (docs.length !== 1 || !isPlainObject(docs[0])) fail(`${file}: expected one mapping`);
  const k = docs[0];
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) notImplemented(file, `the kustomization field "${key}"`);
  }
  // A Component only in `components`, a Kustomization only as a resource or at the top (as
  // kustomize requires).
  const kind = k.kind === undefined ? 'Kustomization' : k.kind;
  if (kind !== 'Kustomization' && kind !== 'Component') notImplemented(file, `kind ${k.kind}`);
  if (asComponent && kind !== 'Component') fail(`${file}: listed in components but not a Component`);
  if (!asComponent && kind === 'Component') fail(`${file}: a Component may only be listed in components`);
  const apiVersion = kind === 'Component' ? 'kustomize.config.k8s.io/v1alpha1'
    : 'kustomize.config.k8s.io/v1beta1';
  if (k.apiVersion !== undefined && k.apiVersion !== apiVersion) {
    notImplemented(file, `apiVersion ${k.apiVersion} for kind ${kind}`);
  }
  return { file, k };
}

function listOf(where, v) {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${where}: expected a list`);
  return v;
}

// The kustomize order for one level: resources, then each component (which works on everything
// accumulated so far: its own resources, generators and transformers, in the same order), then
// generators (merged into what the resources brought), then the transformers patches,
// namespace, labels, images. A kustomization starts from nothing; a component from `entries`.
function build(dir, stack, entries = [], asComponent = false) {
  const real = fs.realpathSync(dir);
  if (stack.includes(real)) fail(`${dir}: cycle in resources (${stack.concat(real).join(' -> ')})`);
  const { file, k } = readKustomization(dir, asComponent);
  for (const r of requireStringList(`${file}: resources`, k.resources)) {
    const where = `${file}: resources ${r}`;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r) || r.startsWith('github.com/')) {
      notImplemented(where, `the remote resource ${r}`);
    }
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) fail(`${where}: ${p} does not exist`);
    // A folder (a base) may lie anywhere; a file must lie inside this kustomization's folder.
    const items = fs.statSync(p).isDirectory() ? build(p, stack.concat(real))
      : loadResourceFile(fileInside(dir, r, where), where);
    for (const e of items) addUnique(entries, e, where);
  }
  for (const c of requireStringList(`${file}: components`, k.components)) {
    const where = `${file}: components ${c}`;
    const p = path.resolve(dir, c);
    if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) fail(`${where}: ${p} is not a folder`);
    build(p, stack.concat(real), entries, true);
  }
  listOf(`${file}: configMapGenerator`, k.configMapGenerator).forEach((g, i) => {
    const where = `${file}: configMapGenerator[${i}]`;
    absorb(entries, generate('ConfigMap', g, dir, where), where);
  });
  listOf(`${file}: secretGenerator`, k.secretGenerator).forEach((g, i) => {
    const where = `${file}: secretGenerator[${i}]`;
    absorb(entries, generate('Secret', g, dir, where), where);
  });
  applyPatches(entries, listOf(`${file}: patches`, k.patches), file);
  if (k.namespace !== undefined) applyNamespace(entries, requireString(`${file}: namespace`, k.namespace));
  applyLabels(entries, listOf(`${file}: labels`, k.labels), file);
  applyImages(entries, listOf(`${file}: images`, k.images), file);
  return entries;
}

// ---- name hashes and references ----------------------------------------------------------

// Go's encoding/json as kustomize's hasher uses it: map keys sorted, and <, >, &, U+2028 and
// U+2029 escaped (JSON.stringify agrees with Go on everything else in valid UTF-8 text).
function goJSON(v) {
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e')
      .replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  }
  if (isPlainObject(v)) {
    return `{${Object.keys(v).sort().map((k) => `${goJSON(k)}:${goJSON(v[k])}`).join(',')}}`;
  }
  return fail(`cannot hash the value ${JSON.stringify(v)}`);
}

// kustomize's name hash (api/hasher): sha256 over the JSON of kind, name, data (and for a
// Secret its type), first 10 hex digits with 0 1 3 a e mapped to g h k m t. kustomize v5 looks
// the name up with a path that never matches, so "name" is always "" in what it hashes; the
// same is done here so that the suffixes agree (the self-test pins known values).
function nameHash(obj) {
  const m = { kind: obj.kind, name: '', data: obj.data === undefined ? '' : obj.data };
  if (obj.kind === 'Secret') m.type = obj.type === undefined ? '' : obj.type;
  const hex = crypto.createHash('sha256').update(goJSON(m)).digest('hex').slice(0, 10);
  return hex.replace(/[013ae]/g, (c) => ({ 0: 'g', 1: 'h', 3: 'k', a: 'm', e: 't' })[c]);
}

function at(obj, keys) {
  return keys.reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
}

// Every place in a pod spec that names a ConfigMap or a Secret (kustomize's nameReference for
// pods), as [holder object, field, kind].
function podSpecRefs(spec) {
  const refs = [];
  const containers = [].concat(spec.containers || [], spec.initContainers || [],
    spec.ephemeralContainers || []);
  for (const c of containers) {
    for (const ef of c.envFrom || []) {
      if (ef.configMapRef) refs.push([ef.configMapRef, 'name', 'ConfigMap']);
      if (ef.secretRef) refs.push([ef.secretRef, 'name', 'Secret']);
    }
    for (const ev of c.env || []) {
      const vf = ev.valueFrom || {};
      if (vf.configMapKeyRef) refs.push([vf.configMapKeyRef, 'name', 'ConfigMap']);
      if (vf.secretKeyRef) refs.push([vf.secretKeyRef, 'name', 'Secret']);
    }
  }
  for (const v of spec.volumes || []) {
    if (v.configMap) refs.push([v.configMap, 'name', 'ConfigMap']);
    if (v.secret) refs.push([v.secret, 'secretName', 'Secret']);
    for (const s of ((v.projected || {}).sources || [])) {
      if (s.configMap) refs.push([s.configMap, 'name', 'ConfigMap']);
      if (s.secret) refs.push([s.secret, 'name', 'Secret']);
    }
  }
  for (const ips of spec.imagePullSecrets || []) refs.push([ips, 'name', 'Secret']);
  return refs;
}

// Any string equal to a generated object's name left anywhere once references are rewritten is a
// reference this renderer does not know: refuse rather than print a dangling name.
function findLeftovers(node, names, where, out) {
  if (typeof node === 'string') {
    if (names.has(node)) out.push(`${where} = ${node}`);
  } else if (Array.isArray(node)) {
    node.forEach((v, i) => findLeftovers(v, names, `${where}[${i}]`, out));
  } else if (isPlainObject(node)) {
    for (const [k, v] of Object.entries(node)) findLeftovers(v, names, `${where}.${k}`, out);
  }
}

function hashNames(entries) {
  const renamed = []; // {kind, namespace, from, to}
  for (const e of entries) {
    if (!e.generated) continue;
    const from = e.obj.metadata.name;
    const to = `${from}-${nameHash(e.obj)}`;
    e.obj.metadata.name = to;
    renamed.push({ kind: e.obj.kind, namespace: e.obj.metadata.namespace || '', from, to, entry: e });
  }
  for (const e of entries) {
    const specPath = KINDS[e.obj.kind].podSpec;
    const spec = specPath && at(e.obj, specPath);
    if (!spec) continue;
    for (const [holder, field, kind] of podSpecRefs(spec)) {
      const r = renamed.find((x) => x.kind === kind && x.from === holder[field] &&
        x.namespace === (e.obj.metadata.namespace || ''));
      if (r) holder[field] = r.to;
    }
  }
  const names = new Set(renamed.map((r) => r.from));
  const leftovers = [];
  for (const e of entries) {
    const own = renamed.find((r) => r.entry === e);
    const copy = clone(e.obj);
    if (own) delete copy.metadata.name;
    findLeftovers(copy, names, `${e.obj.kind} ${e.obj.metadata.name}`, leftovers);
  }
  if (leftovers.length) {
    const more = leftovers.length > 3 ? `; and ${leftovers.length - 3} more` : '';
    const shown = leftovers.slice(0, 3).join('; ') + more;
    notImplemented('name references', `rewriting the reference(s) ${shown}`);
  }
  return renamed.map(({ kind, from, to }) => ({ kind, from, to }));
}

// ---- output ------------------------------------------------------------------------------

const ORDER_FIRST = ['Namespace', 'ResourceQuota', 'StorageClass', 'CustomResourceDefinition',
  'ServiceAccount', 'PodSecurityPolicy', 'Role', 'ClusterRole', 'RoleBinding',
  'ClusterRoleBinding', 'ConfigMap', 'Secret', 'Endpoints', 'Service', 'LimitRange',
  'PriorityClass', 'PersistentVolume', 'PersistentVolumeClaim', 'Deployment', 'StatefulSet',
  'CronJob', 'PodDisruptionBudget'];
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function kindRank(kind) {
  const f = ORDER_FIRST.indexOf(kind);
  if (f >= 0) return f - ORDER_FIRST.length;
  const l = ORDER_LAST.indexOf(kind);
  return l >= 0 ? 1 + l : 0;
}

function gvkSortString(obj) {
  const [g, v] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  return [g || '~G', v || '~V', obj.kind || '~K'].join('_');
}

function legacyLess(a, b) {
  if (a.apiVersion !== b.apiVersion || a.kind !== b.kind) {
    const ra = kindRank(a.kind);
    const rb = kindRank(b.kind);
    if (ra !== rb) return ra - rb;
    return gvkSortString(a) < gvkSortString(b) ? -1 : 1;
  }
  const ka = `${a.metadata.namespace || '~X'}|${a.metadata.name}`;
  const kb = `${b.metadata.namespace || '~X'}|${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isPlainObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

// Renders DIR: { docs (in output order), generated: [{kind, from, to}] }.
function render(dir) {
  const entries = build(path.resolve(dir), []);
  const generated = hashNames(entries);
  const docs = entries.map((e) => sortKeys(e.obj)).sort(legacyLess);
  return { docs, generated };
}

// Printed with YAML 1.1 quoting (as kubectl does: `n`, `yes`, `on` stay strings for YAML 1.1
// readers), and read back under both 1.1 and 1.2 to prove every reader gets the same objects.
function toYaml(docs) {
  const text = docs.map((d) => YAML.stringify(d, { version: '1.1', lineWidth: 0, indentSeq: false }))
    .join('---\n');
  for (const version of ['1.1', '1.2']) {
    const back = YAML.parseAllDocuments(text, { version }).map((d) => d.toJS());
    if (JSON.stringify(back) !== JSON.stringify(docs)) {
      fail(`the printed YAML does not read back as the same objects under YAML ${version}`);
    }
  }
  return text;
}

// ---- self-test ---------------------------------------------------------------------------

// The generated names that kubectl kustomize (kustomize v5.5.0) printed for the FIXTURE below:
// they pin the hash (escaping, folding, empty data, merge, replace, files) without kubectl on
// the machine. check_k8s_render.sh also compares the whole fixture with kubectl where it exists.
// `variant` includes the overlay (namespaced) and a component that merges into its ConfigMap.
const FIXTURE_NAMES = {
  base: ['fx-config-kbbt8mc8kf', 'fx-empty-6ct58987ht', 'fx-secret-7c7cdgf7hc'],
  overlay: ['fx-config-bkt2hdhgd9', 'fx-empty-6ct58987ht', 'fx-secret-tff92bc258'],
  variant: ['fx-config-gmt596k7gt', 'fx-empty-6ct58987ht', 'fx-files-cb476g5cf6',
    'fx-secret-tff92bc258'],
};
const FIXTURE = {
  'base/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources: [app.yaml]',
    'configMapGenerator:',
    '  - name: fx-config',
    '    envs: [a.env]',
    '    literals: ["HTML=<b> & \\"q\\"", "QUOTED=\'x y\'", "TAB=a\\tb"]',
    '  - name: fx-empty',
    'secretGenerator:',
    '  - name: fx-secret',
    '    literals:',
    '      - LONG=0123456789012345678901234567890123456789012345678901234567890123456789xyz',
    '      - SHORT=s',
  ].join('\n'),
  'base/a.env': '\uFEFFA=1\r\n  # comment\n\nB= spaced value \nEMPTY\nURL=dns:///x:1?a=b',
  'base/app.yaml': [
    'apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: app}', 'spec:',
    '  selector: {matchLabels: {app: x}}', '  template:', '    metadata: {labels: {app: x}}',
    '    spec:', '      containers:', '        - name: app', '          image: img/app@sha256:abc',
    '          envFrom: [{configMapRef: {name: fx-config}}, {secretRef: {name: fx-secret}}]',
    '          env:', '            - {name: E, valueFrom: {configMapKeyRef: {name: fx-empty, key: k}}}',
  ].join('\n'),
  'overlay/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources: [../base]',
    'namespace: fx',
    'configMapGenerator:',
    '  - {name: fx-config, behavior: merge, literals: [A=2, NEW=n]}',
    'secretGenerator:',
    '  - {name: fx-secret, behavior: replace, literals: [ONLY=o]}',
    'images:',
    '  - {name: img/app, newTag: v2}',
    'patches:',
    '  - target: {kind: Deployment}',
    '    patch: |-',
    '      - {op: add, path: /spec/replicas, value: 3}',
    '      - {op: replace, path: /spec/template/spec/containers/0/name, value: renamed}',
  ].join('\n'),
  'variant/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources: [../overlay]',
    'components: [../component]',
  ].join('\n'),
  'component/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1alpha1',
    'kind: Component',
    'resources: [sm.yaml]',
    'configMapGenerator:',
    '  - name: fx-files',
    '    files: [dash.json, renamed.txt=b.txt]',
    '    options: {labels: {grafana_dashboard: "1"}}',
    '  - {name: fx-config, behavior: merge, literals: [FROM_COMPONENT=c]}',
    'patches:',
    '  - target: {kind: Deployment}',
    '    patch: |-',
    '      - op: add',
    '        path: /spec/template/spec/containers/0/ports',
    '        value: [{name: m, containerPort: 9}]',
  ].join('\n'),
  'component/dash.json': '{\n  "title": "<fx> & co",\n  "panels": []\n}\n',
  'component/b.txt': 'line 1\n\tline 2',
  'component/sm.yaml': [
    'apiVersion: monitoring.coreos.com/v1', 'kind: ServiceMonitor', 'metadata: {name: fx}',
    'spec:', '  selector: {matchLabels: {app: x}}', '  endpoints: [{port: m}]',
  ].join('\n'),
};

// Each of these changes to the fixture's overlay must make rendering fail, naming the cause.
const REFUSALS = {
  'unknown field': ['overlay/kustomization.yaml', (t) => t + '\nnamePrefix: x-\n', /namePrefix/],
  'commonLabels': ['overlay/kustomization.yaml', (t) => t + '\ncommonLabels: {a: b}\n', /commonLabels/],
  'includeSelectors: true': ['overlay/kustomization.yaml',
    (t) => t + '\nlabels: [{pairs: {a: b}, includeSelectors: true}]\n', /includeSelectors/],
  'generator options': ['overlay/kustomization.yaml',
    (t) => t.replace('behavior: replace,', 'behavior: replace, options: {immutable: true},'), /options/],
  'generator files: a folder': ['overlay/kustomization.yaml',
    (t) => t.replace('literals: [ONLY=o]', 'files: [./]'), /folder in files/],
  'generator options on a merge': ['overlay/kustomization.yaml',
    (t) => t.replace('behavior: merge,', 'behavior: merge, options: {labels: {a: b}},'),
    /options with behavior/],
  'component as a resource': ['overlay/kustomization.yaml',
    (t) => t.replace('resources: [../base]', 'resources: [../base, ../component]'),
    /only be listed in components/],
  'kustomization as a component': ['overlay/kustomization.yaml',
    (t) => t + '\ncomponents: [../base]\n', /not a Component/],
  'image newName': ['overlay/kustomization.yaml',
    (t) => t.replace('newTag: v2', 'newName: other'), /newName/],
  'strategic-merge patch': ['overlay/kustomization.yaml',
    (t) => t.replace(/patch: \|-[^]*$/, 'patch: "spec: {replicas: 3}"\n'), /strategic-merge/],
  'remove op': ['overlay/kustomization.yaml',
    (t) => t.replace('op: add', 'op: remove'), /"remove"/],
  'target by name': ['overlay/kustomization.yaml',
    (t) => t.replace('{kind: Deployment}', '{kind: Deployment, name: app}'), /"name"/],
  'unknown kind': ['base/app.yaml', (t) => t.replace('kind: Deployment', 'kind: StatefulSet'), /StatefulSet/],
  'YAML 1.1 boolean': ['base/app.yaml', (t) => t + '\n      enableServiceLinks: yes\n', /YAML 1.1/],
  'unhandled reference': ['base/app.yaml',
    (t) => t + '\n      serviceAccountName: fx-config\n', /serviceAccountName = fx-config/],
  'merge of nothing': ['overlay/kustomization.yaml',
    (t) => t.replace('name: fx-config, behavior: merge', 'name: other, behavior: merge'), /does not exist/],
  'create twice': ['overlay/kustomization.yaml',
    (t) => t.replace('behavior: replace, ', ''), /exists; behavior must be merge or replace/],
  'repeated key': ['base/kustomization.yaml',
    (t) => t.replace('"TAB=a\\tb"', '"A=again"'), /repeats the key/],
  'replace of a missing path': ['overlay/kustomization.yaml',
    (t) => t.replace('containers/0/name', 'containers/0/nosuch'), /nosuch does not exist/],
};

function writeFixture(root, overrides) {
  for (const [rel, text] of Object.entries(Object.assign({}, FIXTURE, overrides))) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

function selfTest() {
  const problems = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'render-selftest-'));
  try {
    checkFixture(tmp, problems);
  } catch (e) {
    problems.push(`the fixture did not render: ${e.message}`);
  }
  try {
    refusals(tmp, problems);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  for (const p of problems) console.log(`render self-test: ${p}`);
  if (problems.length === 0) {
    console.log(`render self-test: fixture hashes and output as kustomize's, ` +
      `all ${Object.keys(REFUSALS).length} unsupported uses refused`);
  }
  return problems.length === 0;
}

function checkFixture(tmp, problems) {
  writeFixture(path.join(tmp, 'ok'), {});
  const base = render(path.join(tmp, 'ok', 'base'));
  const overlay = render(path.join(tmp, 'ok', 'overlay'));
  const variant = render(path.join(tmp, 'ok', 'variant'));
  for (const [name, r] of [['base', base], ['overlay', overlay], ['variant', variant]]) {
    const got = r.generated.map((g) => g.to).sort();
    if (got.join() !== FIXTURE_NAMES[name].join()) {
      problems.push(`generated names in the ${name}: ${got}, want ${FIXTURE_NAMES[name]}`);
    }
  }
  const od = overlay.docs;
  const cm = od.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('fx-config-'));
  const sec = od.find((d) => d.kind === 'Secret');
  const dep = od.find((d) => d.kind === 'Deployment');
  const expect = (what, got, want) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      problems.push(`${what}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  };
  expect('merged data', cm && cm.data, {
    A: '2', B: ' spaced value ', EMPTY: '', HTML: '<b> & "q"', NEW: 'n', QUOTED: 'x y',
    TAB: 'a\tb', URL: 'dns:///x:1?a=b',
  });
  expect('replaced secret data', sec && sec.data, { ONLY: 'bw==' });
  const c = dep.spec.template.spec.containers[0];
  expect('references', [c.envFrom[0].configMapRef.name, c.envFrom[1].secretRef.name,
    c.env[0].valueFrom.configMapKeyRef.name], [cm.metadata.name, sec.metadata.name,
    od.find((d) => d.metadata.name.startsWith('fx-empty-')).metadata.name]);
  expect('image', c.image, 'img/app:v2');
  expect('patch', [dep.spec.replicas, c.name], [3, 'renamed']);
  expect('namespace', od.map((d) => d.metadata.namespace), od.map(() => 'fx'));
  expect('order', od.map((d) => d.kind), ['ConfigMap', 'ConfigMap', 'Secret', 'Deployment']);
  const longSecret = base.docs.find((d) => d.kind === 'Secret').data.LONG;
  expect('folded base64', longSecret.split('\n').map((l) => l.length), [70, 30, 0]);
  const vd = variant.docs;
  const vcm = vd.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('fx-config-'));
  expect('component merge into a namespaced overlay',
    [vcm.metadata.namespace, vcm.data.FROM_COMPONENT, vcm.data.A], ['fx', 'c', '2']);
  const files = vd.find((d) => d.metadata.name.startsWith('fx-files-'));
  expect('files and options.labels',
    [Object.keys(files.data), files.data['renamed.txt'], files.metadata.labels],
    [['dash.json', 'renamed.txt'], 'line 1\n\tline 2', { grafana_dashboard: '1' }]);
  expect('component patch', vd.find((d) => d.kind === 'Deployment').spec.template.spec
    .containers[0].ports, [{ containerPort: 9, name: 'm' }]);
}

function refusals(tmp, problems) {
  for (const [name, [rel, change, want]] of Object.entries(REFUSALS)) {
    const dir = path.join(tmp, name.replace(/[^a-z0-9]+/gi, '-'));
    writeFixture(dir, { [rel]: change(FIXTURE[rel]) });
    try {
      render(path.join(dir, 'overlay'));
      problems.push(`refusal "${name}": rendered without error`);
    } catch (e) {
      if (!(e instanceof RenderError) || !want.test(e.message)) {
        problems.push(`refusal "${name}": wrong error: ${e.message}`);
      }
    }
  }
}

function main() {
  const args = process.argv.slice(2);
  if (args.length === 1 && args[0] === '--self-test') {
    process.exit(selfTest() ? 0 : 1);
  }
  if (args.length === 2 && args[0] === '--write-fixture') {
    writeFixture(args[1], {});
    return;
  }
  if (args.length !== 1) {
    console.error('usage: node render.js DIR | --self-test | --write-fixture DIR');
    process.exit(2);
  }
  try {
    process.stdout.write(toYaml(render(args[0]).docs));
  } catch (e) {
    if (!(e instanceof RenderError)) throw e;
    console.error(`render.js: ${e.message}`);
    process.exit(1);
  }
}

module.exports = { render, toYaml, RenderError };

if (require.main === module) main();
