// validate.js -- offline validation of rendered Kubernetes manifests (kubectl kustomize output):
// every object against the Kubernetes schemas (kubernetes-models), then the suite's own rules
// for each service's Deployment, Service, HPA and PDB, the ConfigMap and the Secret. Exits 1
// on any error. `--self-test` breaks a copy of the first file in known ways and requires each
// break to be caught, so that the checks themselves cannot silently pass everything.
//
// Usage: node validate.js [--self-test] RENDERED.yaml...
'use strict';

const fs = require('fs');
const YAML = require('yaml');

const SERVICES = {
  gateway: 50050, 'member-svc': 50051, 'points-svc': 50052, 'wallet-svc': 50053,
  'referral-svc': 50054, 'promo-svc': 50055,
};
const SECRET_KEYS = ['LOYALTY_PG_DSN', 'LOYALTY_REDIS_URL', 'LOYALTY_AUTH_TOKEN'];

// kubernetes-models/<group>/<version> for an apiVersion ("v1" is the core group).
function modelClass(apiVersion, kind) {
  const path = apiVersion.includes('/') ? apiVersion : `v1`;
  let mod;
  try {
    mod = require(`kubernetes-models/${path}`);
  } catch (e) {
    return null;
  }
  return mod[kind] || null;
}

function schemaErrors(doc) {
  const Cls = modelClass(doc.apiVersion || '', doc.kind || '');
  if (!Cls) {
    return [`unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`];
  }
  try {
    new Cls(doc).validate();
    return [];
  } catch (e) {
    return [String(e.message || e)];
  }
}

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function checkContainerSecurity(where, sc, errors) {
  if (!sc || sc.allowPrivilegeEscalation !== false) {
    errors.push(`${where}: allowPrivilegeEscalation must be false`);
  }
  if (!sc || sc.readOnlyRootFilesystem !== true) {
    errors.push(`${where}: readOnlyRootFilesystem must be true`);
  }
  if (!sc || !sc.capabilities || !(sc.capabilities.drop || []).includes('ALL')) {
    errors.push(`${where}: capabilities must drop ALL`);
  }
}

function checkResources(where, r, errors) {
  for (const kind of ['requests', 'limits']) {
    for (const res of ['cpu', 'memory']) {
      if (!r || !r[kind] || r[kind][res] === undefined) {
        errors.push(`${where}: resources.${kind}.${res} missing`);
      }
    }
  }
}

function envFromNames(c) {
  const out = { configMaps: [], secrets: [] };
  for (const e of c.envFrom || []) {
    if (e.configMapRef) out.configMaps.push(e.configMapRef.name);
    if (e.secretRef) out.secrets.push(e.secretRef.name);
  }
  return out;
}

function checkDeployment(d, docs, errors) {
  const name = d.metadata.name;
  const port = SERVICES[name];
  const where = `Deployment ${name}`;
  const spec = d.spec || {};
  const pod = (spec.template || {}).spec || {};
  const podLabels = ((spec.template || {}).metadata || {}).labels || {};
  if (!(spec.replicas >= 2)) errors.push(`${where}: replicas must be at least 2`);
  const psc = pod.securityContext || {};
  if (psc.runAsNonRoot !== true || !(psc.runAsUser > 0)) {
    errors.push(`${where}: pod must run as a non-root user (runAsNonRoot, runAsUser > 0)`);
  }
  const main = (pod.containers || []).find((c) => c.name === name);
  if (!main) {
    errors.push(`${where}: no container named ${name}`);
    return;
  }
  const tag = (main.image || '').split(':')[1];
  if (!tag || tag === 'latest') errors.push(`${where}: image needs a tag other than latest`);
  const grpcPort = (main.ports || []).find((p) => p.name === 'grpc');
  if (!grpcPort || grpcPort.containerPort !== port) {
    errors.push(`${where}: container port "grpc" must be ${port}`);
  }
  const listen = (main.env || []).find((e) => e.name === 'LISTEN_ADDR');
  if (!listen || listen.value !== `0.0.0.0:${port}`) {
    errors.push(`${where}: LISTEN_ADDR must be 0.0.0.0:${port}`);
  }
  const rp = main.readinessProbe || {};
  if (!rp.grpc || rp.grpc.port !== port || (rp.grpc.service || '') !== '') {
    errors.push(`${where}: readinessProbe must be grpc on ${port} for the whole server ("")`);
  }
  const lp = main.livenessProbe || {};
  if (!lp.grpc || lp.grpc.port !== port || lp.grpc.service !== 'liveness') {
    errors.push(`${where}: livenessProbe must be grpc on ${port}, service "liveness"`);
  }
  checkResources(`${where} container`, main.resources, errors);
  checkContainerSecurity(`${where} container`, main.securityContext, errors);

  // Shutdown: preStop delay + drain + grace must fit in the termination grace period.
  const pre = ((main.lifecycle || {}).preStop || {});
  let preStopS = 0;
  if (pre.sleep) preStopS = pre.sleep.seconds;
  else if (pre.exec && /sleep$/.test(pre.exec.command[0])) preStopS = Number(pre.exec.command[1]);
  if (!(preStopS > 0)) errors.push(`${where}: needs a preStop delay`);
  const refs = envFromNames(main);
  const cms = docs.filter((x) => x.kind === 'ConfigMap' && refs.configMaps.includes(x.metadata.name));
  const secrets = docs.filter((x) => x.kind === 'Secret' && refs.secrets.includes(x.metadata.name));
  if (cms.length !== refs.configMaps.length || cms.length === 0) {
    errors.push(`${where}: envFrom must name ConfigMaps that exist (${refs.configMaps})`);
  }
  if (secrets.length !== refs.secrets.length || secrets.length === 0) {
    errors.push(`${where}: envFrom must name Secrets that exist (${refs.secrets})`);
  }
  const conf = Object.assign({}, ...cms.map((c) => c.data || {}));
  const drainMs = Number(conf.SHUTDOWN_DRAIN_MS || 0);
  const graceMs = Number(conf.SHUTDOWN_GRACE_MS === undefined ? 10000 : conf.SHUTDOWN_GRACE_MS);
  const needed = preStopS + (drainMs + graceMs) / 1000 + 1;
  const tgps = pod.terminationGracePeriodSeconds === undefined ? 30
    : pod.terminationGracePeriodSeconds;
  if (tgps < needed) {
    errors.push(`${where}: terminationGracePeriodSeconds ${tgps} < preStop ${preStopS} s + ` +
      `drain ${drainMs} ms + grace ${graceMs} ms + 1 s`);
  }

  // Migrations run before the service starts: an init container of the same image.
  const migrate = (pod.initContainers || []).find((c) => (c.args || []).includes('--migrate'));
  if (!migrate || migrate.image !== main.image) {
    errors.push(`${where}: needs an init container running the same image with --migrate`);
  } else {
    checkResources(`${where} init container`, migrate.resources, errors);
    checkContainerSecurity(`${where} init container`, migrate.securityContext, errors);
  }

  const svc = docs.find((x) => x.kind === 'Service' && x.metadata.name === name);
  if (!svc || !matches(svc.spec.selector, podLabels) ||
      !(svc.spec.ports || []).some((p) => p.port === port &&
                                           (p.targetPort === 'grpc' || p.targetPort === port))) {
    errors.push(`${where}: needs a Service ${name} selecting its pods on port ${port}`);
  }
  const hpa = docs.find((x) => x.kind === 'HorizontalPodAutoscaler' &&
    x.spec.scaleTargetRef.kind === 'Deployment' && x.spec.scaleTargetRef.name === name);
  if (!hpa || !(hpa.spec.minReplicas >= 2) || !(hpa.spec.maxReplicas >= hpa.spec.minReplicas)) {
    errors.push(`${where}: needs a HorizontalPodAutoscaler with minReplicas >= 2`);
  }
  const pdb = docs.find((x) => x.kind === 'PodDisruptionBudget' &&
    matches((x.spec.selector || {}).matchLabels, podLabels));
  if (!pdb) errors.push(`${where}: needs a PodDisruptionBudget selecting its pods`);
}

function checkConfig(docs, errors) {
  for (const cm of docs.filter((x) => x.kind === 'ConfigMap')) {
    for (const k of SECRET_KEYS) {
      if ((cm.data || {})[k] !== undefined) errors.push(`ConfigMap ${cm.metadata.name}: ${k} is a secret`);
    }
  }
  for (const s of docs.filter((x) => x.kind === 'Secret')) {
    const data = Object.assign({}, s.data || {}, s.stringData || {});
    for (const k of SECRET_KEYS) {
      if (data[k] === undefined) errors.push(`Secret ${s.metadata.name}: ${k} missing`);
    }
  }
}

function check(docs) {
  const errors = [];
  docs.forEach((d, i) => {
    for (const e of schemaErrors(d)) {
      errors.push(`${d.kind || '?'} ${(d.metadata || {}).name || `#${i}`}: ${e}`);
    }
  });
  const deployments = docs.filter((x) => x.kind === 'Deployment');
  for (const name of Object.keys(SERVICES)) {
    const d = deployments.find((x) => x.metadata && x.metadata.name === name);
    if (!d) errors.push(`no Deployment ${name}`);
    else checkDeployment(d, docs, errors);
  }
  checkConfig(docs, errors);
  return errors;
}

function load(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const obj = d.toJS();
    // kustomize folds long base64 values over several lines; the API server's base64 decoder
    // ignores the line breaks, the schema's "byte" format does not.
    if (obj && obj.kind === 'Secret' && obj.data) {
      for (const k of Object.keys(obj.data)) obj.data[k] = String(obj.data[k]).replace(/\s+/g, '');
    }
    return obj;
  }).filter((d) => d !== null);
}

// Each break must make check() report at least one error.
const BREAKS = {
  'schema: port as text': (docs) => { dep(docs).spec.template.spec.containers[0].ports[0].containerPort = 'grpc'; },
  'one replica': (docs) => { dep(docs).spec.replicas = 1; },
  'no readiness probe': (docs) => { delete dep(docs).spec.template.spec.containers[0].readinessProbe; },
  'http liveness': (docs) => {
    dep(docs).spec.template.spec.containers[0].livenessProbe = { httpGet: { path: '/', port: 80 } };
  },
  'root user': (docs) => { dep(docs).spec.template.spec.securityContext.runAsNonRoot = false; },
  'writable root': (docs) => {
    dep(docs).spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
  },
  'privilege escalation': (docs) => {
    delete dep(docs).spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation;
  },
  'no limits': (docs) => { delete dep(docs).spec.template.spec.containers[0].resources.limits; },
  'short grace': (docs) => { dep(docs).spec.template.spec.terminationGracePeriodSeconds = 10; },
  'no migration': (docs) => { dep(docs).spec.template.spec.initContainers = []; },
  'no PDB': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'PodDisruptionBudget'), 1); },
  'no HPA': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'HorizontalPodAutoscaler'), 1); },
  'secret in ConfigMap': (docs) => {
    docs.find((x) => x.kind === 'ConfigMap').data.LOYALTY_AUTH_TOKEN = 'x';
  },
  'latest image': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.image = c.image.split(':')[0] + ':latest';
  },
  'missing service': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'Deployment'), 1); },
};

function dep(docs) {
  return docs.find((x) => x.kind === 'Deployment');
}

function main() {
  const args = process.argv.slice(2);
  const selfTest = args[0] === '--self-test';
  const files = selfTest ? args.slice(1) : args;
  if (files.length === 0) {
    console.error('usage: node validate.js [--self-test] RENDERED.yaml...');
    process.exit(2);
  }
  let failed = false;
  for (const file of files) {
    const docs = load(file);
    const errors = check(docs);
    for (const e of errors) console.log(`${file}: ${e}`);
    if (errors.length) failed = true;
    else console.log(`${file}: ${docs.length} objects valid`);
  }
  if (selfTest) {
    for (const [name, breakIt] of Object.entries(BREAKS)) {
      const docs = load(files[0]);
      breakIt(docs);
      if (check(docs).length === 0) {
        console.log(`self-test: the break "${name}" was not caught`);
        failed = true;
      }
    }
    if (!failed) console.log(`self-test: all ${Object.keys(BREAKS).length} breaks caught`);
  }
  process.exit(failed ? 1 : 0);
}

main();
